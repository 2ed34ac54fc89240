//! Certificate lifetimes as the CA/Browser Forum counts them, and the rules that follow from a
//! lifetime: what a short-lived certificate is, when a certificate of that lifetime is renewed by
//! default, and the longest lifetime a publicly trusted TLS certificate may have on the day it
//! was issued. One place for the dates, so revocation, renewal and policy agree. Pure.

use super::{UnixTime, unix_from_civil};

/// The Baseline Requirements' validity period: "the period of time from notBefore through
/// notAfter, inclusive" (BR §1.6.1, "Validity Period"), so one second more than the difference.
/// A certificate valid 00:00:00 to 23:59:59 of one day is exactly 86,400 seconds.
pub fn validity_period(not_before: UnixTime, not_after: UnixTime) -> i64 {
    (not_after - not_before).saturating_add(1).max(0)
}

/// Longest validity period of a short-lived certificate: 10 days, 864,000 seconds (BR §1.6.1,
/// "Short-lived Subscriber Certificate", from ballot SC-063). Such certificates may carry no CRL
/// distribution point and no OCSP URL: their expiry does what a revocation would. Since
/// 2026-03-15 newly issued ones must be at most 7 days; the 10-day line is kept so certificates
/// issued under the earlier rule count too. Let's Encrypt's short-lived profile issues 160-hour
/// certificates.
pub const SHORT_LIVED_MAX: i64 = 10 * 86_400;

/// Whether a certificate is short-lived in the BR's sense.
pub fn is_short_lived(not_before: UnixTime, not_after: UnixTime) -> bool {
    validity_period(not_before, not_after) <= SHORT_LIVED_MAX
}

/// The default renewal point as a fraction (numerator, denominator) of the lifetime: half for a
/// short-lived certificate, two thirds otherwise — the guidance Let's Encrypt gives for its
/// 6-day and 90/45-day certificates, which leaves a short certificate days, not hours, to recover
/// from a failed renewal.
pub fn renewal_fraction(not_before: UnixTime, not_after: UnixTime) -> (i64, i64) {
    if is_short_lived(not_before, not_after) { (1, 2) } else { (2, 3) }
}

/// The default renewal time: [`renewal_fraction`] into the lifetime.
pub fn default_renewal_time(not_before: UnixTime, not_after: UnixTime) -> UnixTime {
    let (n, d) = renewal_fraction(not_before, not_after);
    not_before + (not_after - not_before).max(0) / d * n + (not_after - not_before).max(0) % d * n / d
}

/// "half" or "two thirds", for messages.
pub fn fraction_words((n, d): (i64, i64)) -> &'static str {
    match (n, d) {
        (1, 2) => "half",
        (2, 3) => "two thirds",
        _ => "a fraction",
    }
}

/// The longest lifetime of a publicly trusted TLS server certificate, by the date it was issued
/// (its notBefore): BR §6.3.2 and the ballots that set each step. `months` for the limit stated
/// in months, `days` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsLimit {
    /// First notBefore (UTC, 00:00:00) this limit applies to.
    pub from: (i64, u32, u32),
    pub limit: Limit,
    /// Where the limit comes from.
    pub source: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Months(u32),
    Days(i64),
}

/// The table, oldest first. Before 2015-04-01 the BR allowed 60 months; 39 months is the first
/// step kept here (certificates issued under 60 months have all expired).
pub const TLS_LIMITS: &[TlsLimit] = &[
    TlsLimit { from: (2015, 4, 1), limit: Limit::Months(39), source: "Baseline Requirements §6.3.2 (39 months)" },
    TlsLimit { from: (2018, 3, 1), limit: Limit::Days(825), source: "ballot 193 (825 days from 2018-03-01)" },
    TlsLimit { from: (2020, 9, 1), limit: Limit::Days(398), source: "ballot SC31 (398 days from 2020-09-01)" },
    TlsLimit { from: (2026, 3, 15), limit: Limit::Days(200), source: "ballot SC-081 (200 days from 2026-03-15)" },
    TlsLimit { from: (2027, 3, 15), limit: Limit::Days(100), source: "ballot SC-081 (100 days from 2027-03-15)" },
    TlsLimit { from: (2029, 3, 15), limit: Limit::Days(47), source: "ballot SC-081 (47 days from 2029-03-15)" },
];

/// The limit in force on `not_before`, if any (certificates older than the table have none here).
pub fn tls_limit_on(not_before: UnixTime) -> Option<&'static TlsLimit> {
    TLS_LIMITS.iter().rev().find(|l| unix_from_civil(l.from.0, l.from.1, l.from.2, 0, 0, 0).is_some_and(|t| not_before >= t))
}

/// The latest notAfter allowed under `limit` for a certificate whose notBefore is `not_before`.
/// Days: the validity period (inclusive, [`validity_period`]) is at most `days` × 86,400
/// seconds. Months: notAfter no later than the same day and time `months` later (the end of
/// that month when the day does not exist in it).
pub fn latest_not_after(limit: Limit, not_before: UnixTime) -> UnixTime {
    match limit {
        Limit::Days(d) => not_before + d * 86_400 - 1,
        Limit::Months(m) => {
            let Some((y, mo, day, h, mi, s)) = super::civil_from_unix(not_before) else { return UnixTime::MAX };
            let total = y * 12 + i64::from(mo - 1) + i64::from(m);
            let (ny, nm) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u32);
            let last =
                (28..=31).rev().find(|d| unix_from_civil(ny, nm, *d, 0, 0, 0).and_then(super::civil_from_unix).is_some_and(|c| c.2 == *d));
            unix_from_civil(ny, nm, day.min(last.unwrap_or(28)), h, mi, s).unwrap_or(UnixTime::MAX)
        }
    }
}

/// `825 days`, `39 months`.
pub fn limit_words(limit: Limit) -> String {
    match limit {
        Limit::Days(d) => format!("{d} days"),
        Limit::Months(m) => format!("{m} months"),
    }
}

/// A lifetime for messages: `6 days 16 h`, `90 days`, `47 h`.
pub fn lifetime_words(secs: i64) -> String {
    let (d, h) = (secs / 86_400, secs % 86_400 / 3600);
    let day = |d: i64| if d == 1 { "1 day".to_string() } else { format!("{d} days") };
    match (d, h) {
        (0, h) => format!("{h} h"),
        (d, 0) => day(d),
        (d, h) => format!("{} {h} h", day(d)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i64, m: u32, d: u32) -> UnixTime {
        unix_from_civil(y, m, d, 0, 0, 0).unwrap()
    }

    #[test]
    fn the_validity_period_counts_both_ends() {
        // One full day, 00:00:00 through 23:59:59.
        assert_eq!(validity_period(0, 86_399), 86_400);
        // Exactly ten days inclusive is short-lived; one second more is not.
        assert!(is_short_lived(0, SHORT_LIVED_MAX - 1));
        assert!(!is_short_lived(0, SHORT_LIVED_MAX));
        // Let's Encrypt's 160-hour profile (notAfter − notBefore = 160 h − 1 s).
        assert!(is_short_lived(0, 160 * 3600 - 1));
        assert_eq!(validity_period(10, 0), 0, "a negative lifetime is nothing, not a wrap");
    }

    #[test]
    fn renewal_is_at_half_below_ten_days_and_two_thirds_above() {
        let six_days = 6 * 86_400;
        assert_eq!(renewal_fraction(0, six_days), (1, 2));
        assert_eq!(default_renewal_time(1000, 1000 + six_days), 1000 + 3 * 86_400);
        let ninety = 90 * 86_400;
        assert_eq!(renewal_fraction(0, ninety), (2, 3));
        assert_eq!(default_renewal_time(0, ninety), 60 * 86_400);
        // The boundary follows the short-lived definition, to the second.
        assert_eq!(renewal_fraction(0, SHORT_LIVED_MAX - 1), (1, 2));
        assert_eq!(renewal_fraction(0, SHORT_LIVED_MAX), (2, 3));
        // No overflow on absurd lifetimes.
        assert!(default_renewal_time(0, i64::MAX / 2) > 0);
    }

    #[test]
    fn the_limit_follows_the_issue_date() {
        let words = |t| tls_limit_on(t).map(|l| limit_words(l.limit));
        assert_eq!(words(at(2015, 3, 31)), None);
        assert_eq!(words(at(2017, 6, 1)).as_deref(), Some("39 months"));
        assert_eq!(words(at(2018, 3, 1) - 1).as_deref(), Some("39 months"));
        assert_eq!(words(at(2018, 3, 1)).as_deref(), Some("825 days"));
        assert_eq!(words(at(2020, 9, 1) - 1).as_deref(), Some("825 days"));
        assert_eq!(words(at(2020, 9, 1)).as_deref(), Some("398 days"));
        assert_eq!(words(at(2026, 3, 15) - 1).as_deref(), Some("398 days"));
        assert_eq!(words(at(2026, 3, 15)).as_deref(), Some("200 days"));
        assert_eq!(words(at(2027, 3, 15)).as_deref(), Some("100 days"));
        assert_eq!(words(at(2029, 3, 14)).as_deref(), Some("100 days"));
        assert_eq!(words(at(2029, 3, 15)).as_deref(), Some("47 days"));
        assert_eq!(words(at(2040, 1, 1)).as_deref(), Some("47 days"));
    }

    #[test]
    fn the_latest_not_after_of_each_kind_of_limit() {
        // 398 days inclusive: notAfter = notBefore + 398 days − 1 s.
        let nb = at(2021, 1, 1);
        assert_eq!(latest_not_after(Limit::Days(398), nb), nb + 398 * 86_400 - 1);
        assert_eq!(validity_period(nb, latest_not_after(Limit::Days(398), nb)), 398 * 86_400);
        // 39 months from 2016-01-31 12:00:00 is 2019-04-30 12:00:00 (April has 30 days).
        let nb = unix_from_civil(2016, 1, 31, 12, 0, 0).unwrap();
        assert_eq!(latest_not_after(Limit::Months(39), nb), unix_from_civil(2019, 4, 30, 12, 0, 0).unwrap());
        // 39 months from 2015-11-29 is 2019-02-28 (not a leap year).
        assert_eq!(latest_not_after(Limit::Months(39), at(2015, 11, 29)), at(2019, 2, 28));
        assert_eq!(latest_not_after(Limit::Months(39), at(2016, 5, 10)), at(2019, 8, 10));
    }

    #[test]
    fn lifetimes_in_words() {
        assert_eq!(lifetime_words(160 * 3600), "6 days 16 h");
        assert_eq!(lifetime_words(90 * 86_400), "90 days");
        assert_eq!(lifetime_words(47 * 3600), "1 day 23 h");
        assert_eq!(lifetime_words(5 * 3600), "5 h");
        assert_eq!(fraction_words((1, 2)), "half");
    }
}
