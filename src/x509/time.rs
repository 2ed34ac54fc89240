//! DER times (X.690 §11.7–11.8, RFC 5280 §4.1.2.5) to Unix seconds. Pure.
//!
//! Two rule sets, because the RFCs differ:
//! - [`Rules::Rfc5280`] for certificates and CRLs: UTCTime `YYMMDDHHMMSSZ` (years 50–99 are
//!   1950–1999, §4.1.2.5.1) and GeneralizedTime `YYYYMMDDHHMMSSZ` with seconds and without
//!   fractional seconds (§4.1.2.5.2, §5.1.2.4–6).
//! - [`Rules::Der`] for OCSP (RFC 6960 only asks for DER): GeneralizedTime may also carry
//!   fractional seconds as DER allows them — a `.`, at least one digit, no trailing zero
//!   (X.690 §11.7.3–11.7.4). Live responders send producedAt with microseconds.
//!
//! Both are strict where DER is: `Z` only (no offsets, X.690 §11.7.1, §11.8.1), seconds always
//! present, every field in range. The result is whole seconds (fractions truncate); any year
//! 0000–9999 is representable, so a certificate from 1969 or valid until 9999 is inventoried.

use crate::model::{UnixTime, unix_from_civil};

pub const UTC_TIME: u8 = 0x17;
pub const GENERALIZED_TIME: u8 = 0x18;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    Rfc5280,
    Der,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("time has tag {0:#04x}, neither UTCTime nor GeneralizedTime")]
    NotATime(u8),
    #[error("`{0}` is not a DER {1}")]
    Syntax(String, &'static str),
    #[error("`{0}` has fractional seconds, which RFC 5280 §4.1.2.5.2 does not allow here")]
    Fraction(String),
    #[error("`{0}` is not a valid date and time")]
    OutOfRange(String),
}

fn digits(s: &[u8]) -> Option<u32> {
    s.iter().try_fold(0u32, |acc, &b| b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0')))
}

/// A time from its tag and content octets.
pub fn parse(tag: u8, content: &[u8], rules: Rules) -> Result<UnixTime, TimeError> {
    let text = || String::from_utf8_lossy(content).into_owned();
    let (year, rest, kind) = match tag {
        UTC_TIME => {
            if content.len() != 13 {
                return Err(TimeError::Syntax(text(), "UTCTime (YYMMDDHHMMSSZ)"));
            }
            let yy = digits(&content[..2]).ok_or_else(|| TimeError::Syntax(text(), "UTCTime (YYMMDDHHMMSSZ)"))?;
            (i64::from(if yy >= 50 { 1900 + yy } else { 2000 + yy }), &content[2..], "UTCTime (YYMMDDHHMMSSZ)")
        }
        GENERALIZED_TIME => {
            if content.len() < 15 {
                return Err(TimeError::Syntax(text(), "GeneralizedTime (YYYYMMDDHHMMSSZ)"));
            }
            let yyyy = digits(&content[..4]).ok_or_else(|| TimeError::Syntax(text(), "GeneralizedTime (YYYYMMDDHHMMSSZ)"))?;
            (i64::from(yyyy), &content[4..], "GeneralizedTime (YYYYMMDDHHMMSSZ)")
        }
        other => return Err(TimeError::NotATime(other)),
    };
    // MMDDHHMMSS, then `Z` or (GeneralizedTime) `.fraction Z`.
    let fields =
        rest.get(..10).and_then(|f| Some([digits(&f[..2])?, digits(&f[2..4])?, digits(&f[4..6])?, digits(&f[6..8])?, digits(&f[8..10])?]));
    let Some([month, day, hour, minute, second]) = fields else {
        return Err(TimeError::Syntax(text(), kind));
    };
    match &rest[10..] {
        b"Z" => {}
        [b'.', fraction @ .., b'Z'] if tag == GENERALIZED_TIME => {
            let well_formed = !fraction.is_empty() && fraction.iter().all(u8::is_ascii_digit) && fraction.last() != Some(&b'0');
            if !well_formed {
                return Err(TimeError::Syntax(text(), "GeneralizedTime (fraction: digits without a trailing zero)"));
            }
            if rules == Rules::Rfc5280 {
                return Err(TimeError::Fraction(text()));
            }
        }
        _ => return Err(TimeError::Syntax(text(), kind)),
    }
    unix_from_civil(year, month, day, hour, minute, second).ok_or_else(|| TimeError::OutOfRange(text()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> Result<UnixTime, TimeError> {
        parse(UTC_TIME, s.as_bytes(), Rules::Rfc5280)
    }
    fn gen_der(s: &str) -> Result<UnixTime, TimeError> {
        parse(GENERALIZED_TIME, s.as_bytes(), Rules::Der)
    }

    #[test]
    fn utc_time_pivots_at_1950() {
        // RFC 5280 §4.1.2.5.1: YY ≥ 50 is 19YY, YY < 50 is 20YY.
        assert_eq!(utc("500101000000Z"), Ok(-631_152_000));
        assert_eq!(utc("691231235959Z"), Ok(-1));
        assert_eq!(utc("700101000000Z"), Ok(0));
        assert_eq!(utc("491231235959Z"), Ok(2_524_607_999));
        assert!(utc("5001010000Z").is_err(), "seconds are required");
        assert!(utc("500101000000+0100").is_err(), "only Z");
        assert!(utc("500101000000").is_err());
    }

    #[test]
    fn generalized_time_years_and_fractions() {
        assert_eq!(gen_der("00000101000000Z"), Ok(-62_167_219_200));
        assert_eq!(gen_der("99991231235959Z"), Ok(253_402_300_799));
        assert_eq!(gen_der("20261204102030Z"), Ok(1_796_379_630));
        // X.690 §11.7.3: fractional seconds, truncated to whole seconds.
        assert_eq!(gen_der("20261204102030.123456Z"), Ok(1_796_379_630));
        assert_eq!(gen_der("20261204102030.5Z"), Ok(1_796_379_630));
        // X.690 §11.7.3–4: no trailing zero, no empty fraction, '.' only.
        assert!(gen_der("20261204102030.120Z").is_err());
        assert!(gen_der("20261204102030.Z").is_err());
        assert!(gen_der("20261204102030,5Z").is_err());
        assert!(gen_der("202612041020Z").is_err(), "seconds are required");
        assert!(gen_der("20261204102030+0000").is_err());
        // RFC 5280 §4.1.2.5.2: no fractions in certificates and CRLs.
        assert!(matches!(parse(GENERALIZED_TIME, b"20261204102030.5Z", Rules::Rfc5280), Err(TimeError::Fraction(_))));
        assert_eq!(parse(GENERALIZED_TIME, b"20261204102030Z", Rules::Rfc5280), Ok(1_796_379_630));
    }

    #[test]
    fn fields_out_of_range_are_refused() {
        for bad in ["20261304000000Z", "20260230000000Z", "20260101240000Z", "20260101006000Z", "20260101000060Z", "2026010100000aZ"] {
            assert!(gen_der(bad).is_err(), "{bad}");
        }
        assert_eq!(parse(0x02, b"1", Rules::Der), Err(TimeError::NotATime(0x02)));
    }
}
