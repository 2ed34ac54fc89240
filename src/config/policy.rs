//! Validated policy settings (`policy:` and `thresholds:`) and the choice of the rule that
//! applies to a certificate.

use super::*;
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
pub struct PolicySpec {
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

impl Default for PolicySpec {
    fn default() -> Self {
        PolicySpec {
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

impl PolicySpec {
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

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Days before notAfter from which a certificate is `expiring` (warning).
    #[serde(default = "default_warning_days")]
    #[schemars(range(min = 1, max = 3650))]
    pub warning_days: u32,
    /// Days before notAfter from which an expiring certificate is critical.
    #[serde(default = "default_critical_days")]
    #[schemars(range(min = 0, max = 3650))]
    pub critical_days: u32,
    /// Warning window as a fraction of the certificate's lifetime; the smaller of this and
    /// `warning_days` applies, so short-lived certificates are not "expiring" all their life.
    #[serde(default = "default_warning_fraction")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub warning_fraction: f64,
    /// Critical window as a fraction of the lifetime (the smaller of this and `critical_days`).
    #[serde(default = "default_critical_fraction")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub critical_fraction: f64,
}

pub(crate) fn default_warning_fraction() -> f64 {
    0.33
}
pub(crate) fn default_critical_fraction() -> f64 {
    0.1
}

/// Findings policy beyond expiry thresholds.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Key age and strength.
    #[serde(default, deserialize_with = "null_is_default")]
    pub keys: KeyPolicyConfig,
    /// Defaults for certificates with the codeSigning EKU (signing identities); fields left out
    /// keep the built-in signer defaults (warning 90 days, critical 30 days, key age 3 years).
    #[serde(default, deserialize_with = "null_is_default")]
    pub code_signing: PolicyRule,
    /// How long revocation may stay unknown before it is a finding.
    #[serde(default = "default_unknown_grace")]
    pub revocation_unknown_grace: DurationSpec,
    /// Report certificates superseded by a newer one for the same subject and names that are
    /// still deployed.
    #[serde(default = "yes")]
    pub superseded: bool,
    /// Overrides for matching certificates; the first match wins.
    #[serde(default)]
    pub rules: Vec<PolicyRule>,
}

pub(crate) fn default_unknown_grace() -> DurationSpec {
    DurationSpec::Text("24h".into())
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            keys: KeyPolicyConfig::default(),
            code_signing: PolicyRule::default(),
            revocation_unknown_grace: default_unknown_grace(),
            superseded: true,
            rules: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyPolicyConfig {
    /// A key older than this (from the notBefore of the first certificate seen with it) should
    /// be rotated. Unset: no limit (signers keep their own default).
    #[serde(default)]
    pub max_age: Option<DurationSpec>,
    /// RSA keys below this size are weak.
    #[serde(default = "default_min_rsa")]
    pub min_rsa_bits: u32,
    /// EC keys below this size are weak.
    #[serde(default = "default_min_ec")]
    pub min_ec_bits: u32,
    /// SHA-1 and MD5 signatures are weak (except on self-signed trust anchors).
    #[serde(default = "yes")]
    pub sha1_is_weak: bool,
}

pub(crate) fn default_min_rsa() -> u32 {
    2048
}
pub(crate) fn default_min_ec() -> u32 {
    256
}

impl Default for KeyPolicyConfig {
    fn default() -> Self {
        KeyPolicyConfig { max_age: None, min_rsa_bits: 2048, min_ec_bits: 256, sha1_is_weak: true }
    }
}

/// Which certificates a rule or route applies to; every list given must match (an empty or
/// absent list matches anything).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Source names.
    #[serde(default)]
    pub source: Vec<String>,
    /// Source tags.
    #[serde(default)]
    pub tag: Vec<String>,
    /// Extended key usages (`codeSigning`, `serverAuth`, an OID; spelling is forgiving).
    #[serde(default)]
    pub eku: Vec<String>,
}

/// Thresholds for matching certificates (a rule) or for signing identities (`code_signing`);
/// fields left out are inherited.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    /// Which certificates a rule applies to (absent: all). Not used by `code_signing`.
    #[serde(default, rename = "match")]
    pub matcher: MatchConfig,
    #[serde(default)]
    pub warning_days: Option<u32>,
    #[serde(default)]
    pub critical_days: Option<u32>,
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub warning_fraction: Option<f64>,
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub critical_fraction: Option<f64>,
    /// Key age limit for the matched certificates.
    #[serde(default)]
    pub max_key_age: Option<DurationSpec>,
}

pub(crate) fn default_warning_days() -> u32 {
    30
}
pub(crate) fn default_critical_days() -> u32 {
    7
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            warning_days: default_warning_days(),
            critical_days: default_critical_days(),
            warning_fraction: default_warning_fraction(),
            critical_fraction: default_critical_fraction(),
        }
    }
}

pub(crate) fn validate_policy(config: &Config, revocation: &RevocationSpec, errs: &mut Vec<PathedError>) -> policy::PolicySpec {
    use policy::{Expiry, Match, PolicySpec, Rule};
    let p = &config.policy;
    let t = &config.thresholds;
    let path = |parts: &[&str]| parts.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for (field, v) in [("warning_fraction", t.warning_fraction), ("critical_fraction", t.critical_fraction)] {
        if !(0.0..=1.0).contains(&v) {
            errs.push((path(&["thresholds", field]), format!("{v} is not a fraction between 0 and 1")));
        }
    }
    let secs = |d: &DurationSpec, at: Vec<String>, errs: &mut Vec<PathedError>| -> i64 {
        d.duration().map(|d| d.as_secs() as i64).unwrap_or_else(|m| {
            errs.push((at, m));
            0
        })
    };
    let rule = |body: &PolicyRule, matcher: Match, at: &[&str], errs: &mut Vec<PathedError>| -> Rule {
        for (field, v) in [("warning_fraction", body.warning_fraction), ("critical_fraction", body.critical_fraction)] {
            if v.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
                let mut here = path(at);
                here.push(field.into());
                errs.push((here, "not a fraction between 0 and 1".into()));
            }
        }
        let max_key_age = body.max_key_age.as_ref().map(|d| {
            let mut here = path(at);
            here.push("max_key_age".into());
            Some(secs(d, here, errs))
        });
        Rule {
            matcher,
            warning_days: body.warning_days,
            critical_days: body.critical_days,
            warning_fraction: body.warning_fraction,
            critical_fraction: body.critical_fraction,
            max_key_age,
        }
    };
    let defaults = PolicySpec::default();
    let mut code_signing = defaults.code_signing.clone();
    let m = &p.code_signing.matcher;
    if !(m.source.is_empty() && m.tag.is_empty() && m.eku.is_empty()) {
        errs.push((
            path(&["policy", "code_signing", "match"]),
            "code_signing applies to codeSigning certificates; use policy.rules to match others".into(),
        ));
    }
    let cs = rule(&p.code_signing, Match::default(), &["policy", "code_signing"], errs);
    code_signing.warning_days = cs.warning_days.or(code_signing.warning_days);
    code_signing.critical_days = cs.critical_days.or(code_signing.critical_days);
    code_signing.warning_fraction = cs.warning_fraction.or(code_signing.warning_fraction);
    code_signing.critical_fraction = cs.critical_fraction.or(code_signing.critical_fraction);
    code_signing.max_key_age = cs.max_key_age.or(code_signing.max_key_age);
    let rules = p
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let idx = i.to_string();
            let m = Match {
                sources: r.matcher.source.clone(),
                tags: r.matcher.tag.clone(),
                ekus: r.matcher.eku.iter().map(|e| crate::model::eku::normalise_eku(e)).collect(),
            };
            rule(r, m, &["policy", "rules", &idx], errs)
        })
        .collect();
    PolicySpec {
        expiry: Expiry {
            warning_days: t.warning_days,
            critical_days: t.critical_days,
            warning_fraction: t.warning_fraction,
            critical_fraction: t.critical_fraction,
        },
        max_key_age: p.keys.max_age.as_ref().map(|d| secs(d, path(&["policy", "keys", "max_age"]), errs)),
        code_signing,
        rules,
        min_rsa_bits: p.keys.min_rsa_bits,
        min_ec_bits: p.keys.min_ec_bits,
        sha1_is_weak: p.keys.sha1_is_weak,
        revocation_unknown_grace: secs(&p.revocation_unknown_grace, path(&["policy", "revocation_unknown_grace"]), errs),
        ignore_unknown_revocation: revocation.unknown == UnknownPolicy::Ignore,
        superseded: p.superseded,
    }
}
