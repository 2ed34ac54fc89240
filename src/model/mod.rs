//! The vocabulary shared by every module: fingerprints, certificate facts, locations and the
//! expiry status derived from them. Plain data; no I/O and no clock.

pub mod alert;
pub mod display;
pub mod eku;
pub mod exporter;
pub mod fence;
pub mod finding;
pub mod lifetime;
pub mod observed;
pub mod rows;
pub mod store_location;

use serde::Serialize;
use std::fmt;

/// Seconds since the Unix epoch, UTC. Every stored and compared time is whole seconds.
pub type UnixTime = i64;

/// SHA-256 of a certificate's DER encoding, lower-case hex. The identity of a certificate:
/// the same bytes found in a file, a vault and a cluster are one certificate.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Fingerprint(pub String);

impl Fingerprint {
    pub fn of_der(der: &[u8]) -> Self {
        use sha2::Digest;
        Fingerprint(hex::encode(sha2::Sha256::digest(der)))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The public key of a certificate, as an operator compares it against policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyFacts {
    /// `RSA`, `EC`, `Ed25519`, `Ed448`, `DSA`, or the dotted OID of anything else.
    pub algorithm: String,
    /// Modulus size for RSA/DSA, field size for EC, fixed size for EdDSA.
    pub bits: Option<u32>,
    /// Named curve for EC keys (`P-256`, `P-384`, `P-521`, `secp256k1`, or the OID).
    pub curve: Option<String>,
}

impl fmt::Display for KeyFacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.curve, self.bits) {
            (Some(c), _) => write!(f, "{} {}", self.algorithm, c),
            (None, Some(_)) if self.algorithm.starts_with("Ed") => f.write_str(&self.algorithm),
            (None, Some(b)) => write!(f, "{}-{}", self.algorithm, b),
            (None, None) => f.write_str(&self.algorithm),
        }
    }
}

/// Everything certvigil knows about one certificate from its bytes alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertFacts {
    pub fingerprint: Fingerprint,
    /// RFC 4514 string of the subject DN.
    pub subject: String,
    pub issuer: String,
    /// Subject CN when present: the name an operator recognises.
    pub common_name: Option<String>,
    /// Upper-case hex of the serial's DER integer bytes, without separators.
    pub serial: String,
    pub not_before: UnixTime,
    pub not_after: UnixTime,
    /// SHA-256 of the DER SubjectPublicKeyInfo: the key's identity across certificates.
    pub spki_sha256: String,
    pub key: KeyFacts,
    pub signature_algorithm: String,
    pub is_ca: bool,
    pub path_len: Option<u32>,
    pub key_usage: Vec<String>,
    /// Names such as `serverAuth`, `codeSigning`, `timeStamping`, or dotted OIDs.
    pub ext_key_usage: Vec<String>,
    /// `DNS:…`, `IP:…`, `email:…`, `URI:…`, `DirName:…`, `other:…`.
    pub sans: Vec<String>,
    pub ocsp_urls: Vec<String>,
    pub ca_issuers_urls: Vec<String>,
    pub crl_urls: Vec<String>,
    /// Authority key identifier, lower-case hex.
    pub aki: Option<String>,
    /// Subject key identifier, lower-case hex.
    pub ski: Option<String>,
    /// Subject and issuer DER are identical.
    pub self_issued: bool,
    /// Extensions that were present but could not be decoded; the certificate is still kept.
    pub warnings: Vec<String>,
}

impl CertFacts {
    /// The name shown in tables: CN, else the first SAN, else the whole subject.
    pub fn display_name(&self) -> String {
        if let Some(cn) = &self.common_name {
            return cn.clone();
        }
        if let Some(san) = self.sans.first() {
            return san.split_once(':').map(|(_, v)| v.to_string()).unwrap_or_else(|| san.clone());
        }
        if self.subject.is_empty() { "(empty subject)".into() } else { self.subject.clone() }
    }

    pub fn is_code_signing(&self) -> bool {
        self.ext_key_usage.iter().any(|e| e == "codeSigning")
    }

    pub fn is_time_stamping(&self) -> bool {
        self.ext_key_usage.iter().any(|e| e == "timeStamping")
    }
}

/// Where a certificate lives inside one object: `block 3`, `alias "tomcat"`, `bag 2`.
pub type Detail = String;

/// Expiry status relative to a moment and the warning threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ExpiryStatus {
    Valid,
    Expiring,
    Expired,
    NotYetValid,
}

impl ExpiryStatus {
    /// Pure: `now` and the warning window (seconds) are arguments.
    pub fn at(not_before: UnixTime, not_after: UnixTime, now: UnixTime, warning_secs: i64) -> Self {
        if now < not_before {
            ExpiryStatus::NotYetValid
        } else if now > not_after {
            // RFC 5280 §4.1.2.5: the validity period includes notAfter itself.
            ExpiryStatus::Expired
        } else if not_after - now <= warning_secs {
            ExpiryStatus::Expiring
        } else {
            ExpiryStatus::Valid
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExpiryStatus::Valid => "valid",
            ExpiryStatus::Expiring => "expiring",
            ExpiryStatus::Expired => "expired",
            ExpiryStatus::NotYetValid => "not-yet-valid",
        }
    }
}

impl fmt::Display for ExpiryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whole days left until `not_after`, rounded towards negative infinity (−1 the day after).
pub fn days_left(not_after: UnixTime, now: UnixTime) -> i64 {
    (not_after - now).div_euclid(86_400)
}

/// RFC 3339 rendering of a Unix time (UTC, `Z`), for every year 0000–9999 of the proleptic
/// Gregorian calendar that certificate times can encode (RFC 5280 §4.1.2.5); times outside
/// that range print as `@seconds`.
pub fn format_time(t: UnixTime) -> String {
    match civil_from_unix(t) {
        Some((y, mo, d, h, mi, s)) => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
        None => format!("@{t}"),
    }
}

/// Seconds since the epoch of a UTC civil time (proleptic Gregorian), or `None` when a field is
/// out of range (month 1–12, day within its month, hour 0–23, minute and second 0–59, year
/// 0–9999).
pub fn unix_from_civil(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> Option<UnixTime> {
    if !(0..=9999).contains(&year) || !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if day == 0 || day > month_days[month as usize - 1] {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + i64::from(hour * 3600 + minute * 60 + second))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the era arithmetic of H. Hinnant's
/// `days_from_civil`, valid for every year used here).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The UTC civil time of a Unix time: (year, month, day, hour, minute, second), for years
/// 0000–9999 only.
pub fn civil_from_unix(t: UnixTime) -> Option<(i64, u32, u32, u32, u32, u32)> {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (0..=9999).contains(&year).then_some((year, month, day, secs / 3600, secs / 60 % 60, secs % 60))
}

/// Date only (`YYYY-MM-DD`), for tables.
pub fn format_date(t: UnixTime) -> String {
    let s = format_time(t);
    if s.len() >= 10 && !s.starts_with('@') { s[..10].to_string() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_times_round_trip_over_every_encodable_year() {
        // Reference points computed independently (e.g. `date -u -d @SECONDS`).
        assert_eq!(unix_from_civil(1970, 1, 1, 0, 0, 0), Some(0));
        assert_eq!(unix_from_civil(2000, 2, 29, 12, 0, 0), Some(951_825_600));
        assert_eq!(unix_from_civil(1950, 1, 1, 0, 0, 0), Some(-631_152_000));
        assert_eq!(unix_from_civil(9999, 12, 31, 23, 59, 59), Some(253_402_300_799));
        assert_eq!(unix_from_civil(0, 1, 1, 0, 0, 0), Some(-62_167_219_200));
        assert_eq!(format_time(-631_152_000), "1950-01-01T00:00:00Z");
        assert_eq!(format_time(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(format_time(-62_167_219_200), "0000-01-01T00:00:00Z");
        assert_eq!(format_time(253_402_300_800), "@253402300800");
        // Calendar rules: 1900 is not a leap year, 2000 and year 0 are.
        assert_eq!(unix_from_civil(1900, 2, 29, 0, 0, 0), None);
        assert!(unix_from_civil(0, 2, 29, 0, 0, 0).is_some());
        assert_eq!(unix_from_civil(2026, 4, 31, 0, 0, 0), None);
        assert_eq!(unix_from_civil(2026, 1, 1, 24, 0, 0), None);
        assert_eq!(unix_from_civil(2026, 1, 1, 0, 0, 60), None);
        for t in (-62_167_219_200i64..253_402_300_800).step_by(7_777_777) {
            let (y, mo, d, h, mi, s) = civil_from_unix(t).expect("in range");
            assert_eq!(unix_from_civil(y, mo, d, h, mi, s), Some(t));
        }
    }

    #[test]
    fn status_boundaries() {
        let nb = 1_000;
        let na = 1_000_000;
        assert_eq!(ExpiryStatus::at(nb, na, 999, 10), ExpiryStatus::NotYetValid);
        assert_eq!(ExpiryStatus::at(nb, na, 1_000, 10), ExpiryStatus::Valid);
        assert_eq!(ExpiryStatus::at(nb, na, na - 11, 10), ExpiryStatus::Valid);
        assert_eq!(ExpiryStatus::at(nb, na, na - 10, 10), ExpiryStatus::Expiring);
        assert_eq!(ExpiryStatus::at(nb, na, na, 10), ExpiryStatus::Expiring);
        assert_eq!(ExpiryStatus::at(nb, na, na + 1, 10), ExpiryStatus::Expired);
    }

    #[test]
    fn days_left_rounds_down() {
        assert_eq!(days_left(86_400 * 2, 0), 2);
        assert_eq!(days_left(86_400 * 2 - 1, 0), 1);
        assert_eq!(days_left(0, 1), -1);
    }

    #[test]
    fn formats_times() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(format_date(1_700_000_000), "2023-11-14");
        assert_eq!(format_time(-5), "1969-12-31T23:59:55Z");
        assert_eq!(format_time(i64::MIN), format!("@{}", i64::MIN));
    }
}

/// Revocation state of a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationState {
    Good,
    Revoked,
    /// No verified answer; `reason` says why. Never silently treated as good.
    Unknown,
    /// A self-signed trust anchor: nothing above it can revoke it.
    NotApplicable,
}

impl RevocationState {
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationState::Good => "good",
            RevocationState::Revoked => "revoked",
            RevocationState::Unknown => "unknown",
            RevocationState::NotApplicable => "not-applicable",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [RevocationState::Good, RevocationState::Revoked, RevocationState::Unknown, RevocationState::NotApplicable]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

impl fmt::Display for RevocationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A revocation status with the evidence it rests on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RevocationStatus {
    pub state: RevocationState,
    /// The revocation reason (`keyCompromise`, …) or why the state is unknown.
    pub reason: Option<String>,
    pub revoked_at: Option<UnixTime>,
    pub invalidity_date: Option<UnixTime>,
    /// `ocsp`, `crl`, `crl+delta` or `none`.
    pub method: String,
    pub source_url: Option<String>,
    /// SHA-256 of the CRL or OCSP response that decided.
    pub evidence_sha256: Option<String>,
    pub checked_at: UnixTime,
    pub next_update: Option<UnixTime>,
    /// The evidence was past its nextUpdate (a CRL within its grace, or the reason for unknown).
    pub stale: bool,
    /// What else was tried and any notes.
    pub detail: Option<String>,
}

impl RevocationStatus {
    pub fn unknown(reason: impl Into<String>, checked_at: UnixTime) -> Self {
        RevocationStatus {
            state: RevocationState::Unknown,
            reason: Some(reason.into()),
            revoked_at: None,
            invalidity_date: None,
            method: "none".into(),
            source_url: None,
            evidence_sha256: None,
            checked_at,
            next_update: None,
            stale: false,
            detail: None,
        }
    }
}
