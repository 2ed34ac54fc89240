//! Validated policy settings (`policy:` and `thresholds:`) and the choice of the rule that
//! applies to a certificate.

use crate::model::UnixTime;

/// Expiry thresholds. The window is the smaller of the days and the fraction of the lifetime,
/// so a 24-hour certificate is not "expiring" for its whole life while a one-year certificate
/// still warns 30 days ahead.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expiry {
    pub warning_days: u32,
    pub critical_days: u32,
    pub warning_fraction: f64,
    pub critical_fraction: f64,
}

impl Default for Expiry {
    fn default() -> Self {
        Expiry { warning_days: 30, critical_days: 7, warning_fraction: 0.33, critical_fraction: 0.1 }
    }
}

impl Expiry {
    /// (warning, critical) windows in seconds before notAfter, for a certificate of this lifetime.
    pub fn windows(&self, lifetime: i64) -> (i64, i64) {
        let lifetime = lifetime.max(0) as f64;
        let w = (i64::from(self.warning_days) * 86_400).min((self.warning_fraction * lifetime) as i64);
        let c = (i64::from(self.critical_days) * 86_400).min((self.critical_fraction * lifetime) as i64);
        (w, c.min(w))
    }
}

/// Which certificates a rule applies to; an empty list matches anything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Match {
    pub sources: Vec<String>,
    pub tags: Vec<String>,
    pub ekus: Vec<String>,
}

impl Match {
    pub fn matches(&self, sources: &[String], tags: &[String], ekus: &[String]) -> bool {
        let any = |want: &[String], have: &[String]| want.is_empty() || want.iter().any(|w| have.contains(w));
        any(&self.sources, sources) && any(&self.tags, tags) && any(&self.ekus, ekus)
    }
}

/// An override: expiry fields and key age for the certificates it matches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rule {
    pub matcher: Match,
    pub warning_days: Option<u32>,
    pub critical_days: Option<u32>,
    pub warning_fraction: Option<f64>,
    pub critical_fraction: Option<f64>,
    /// `Some(None)` turns a key-age limit off for the matched certificates.
    pub max_key_age: Option<Option<i64>>,
}

impl Rule {
    fn apply(&self, base: (Expiry, Option<i64>)) -> (Expiry, Option<i64>) {
        let (mut e, mut age) = base;
        e.warning_days = self.warning_days.unwrap_or(e.warning_days);
        e.critical_days = self.critical_days.unwrap_or(e.critical_days);
        e.warning_fraction = self.warning_fraction.unwrap_or(e.warning_fraction);
        e.critical_fraction = self.critical_fraction.unwrap_or(e.critical_fraction);
        if let Some(a) = self.max_key_age {
            age = a;
        }
        (e, age)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PolicySettings {
    pub expiry: Expiry,
    pub max_key_age: Option<i64>,
    /// Defaults for certificates with the codeSigning EKU (signing identities).
    pub code_signing: Rule,
    /// Overrides, first match wins (applied on top of the code-signing defaults for signers).
    pub rules: Vec<Rule>,
    pub min_rsa_bits: u32,
    pub min_ec_bits: u32,
    pub sha1_is_weak: bool,
    pub revocation_unknown_grace: i64,
    pub ignore_unknown_revocation: bool,
    pub superseded: bool,
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            expiry: Expiry::default(),
            max_key_age: None,
            code_signing: Rule {
                warning_days: Some(90),
                critical_days: Some(30),
                warning_fraction: Some(0.5),
                critical_fraction: Some(0.2),
                max_key_age: Some(Some(3 * 365 * 86_400)),
                ..Rule::default()
            },
            rules: Vec::new(),
            min_rsa_bits: 2048,
            min_ec_bits: 256,
            sha1_is_weak: true,
            revocation_unknown_grace: 86_400,
            ignore_unknown_revocation: false,
            superseded: true,
        }
    }
}

impl PolicySettings {
    /// The expiry thresholds and key-age limit for a certificate with these routing facts: the
    /// defaults, then the code-signing defaults for signers, then the first matching rule.
    pub fn effective_for(&self, sources: &[String], tags: &[String], ekus: &[String]) -> (Expiry, Option<i64>) {
        let mut base = (self.expiry, self.max_key_age);
        if ekus.iter().any(|e| e == "codeSigning") {
            base = self.code_signing.apply(base);
        }
        match self.rules.iter().find(|r| r.matcher.matches(sources, tags, ekus)) {
            Some(r) => r.apply(base),
            None => base,
        }
    }

    /// Seconds before notAfter from which a certificate counts as expiring (for `list`).
    pub fn warning_window(&self, sources: &[String], tags: &[String], ekus: &[String], not_before: UnixTime, not_after: UnixTime) -> i64 {
        self.effective_for(sources, tags, ekus).0.windows(not_after - not_before).0
    }
}
