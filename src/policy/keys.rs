//! Key policy: checks over the key objects sources list (PKCS#11 private keys) and the
//! certificates stored beside them on the same token. Pure: the keys, the token's certificates
//! and the certificates' policy states are arguments.
//!
//! A key problem about a key that has a certificate becomes a [`Finding`] on that certificate
//! (so it is alerted like any other). A key with no certificate anywhere, and a TUF trust root,
//! get findings of their own, about the key object (subject `key:<source>:<location>`,
//! [`subject_findings`]). `certvigil keys` and `plan`'s `key_problems` list every problem.

use super::{CertState, Finding, Kind, Severity, SubjectKind};
use crate::model::rows::{KeyHistoryRow, KeyRow, TokenCertRow};
use serde::Serialize;
use std::collections::HashMap;

/// What is wrong with a key or with a certificate's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// A signing key that can leave, or once could leave, the token.
    KeyExtractable,
    /// A private key with no certificate on its token.
    OrphanKey,
    /// A certificate on a token whose private key is not on that token.
    KeyNotOnToken,
    /// A TUF trust root (Sigstore `root.json`) inside its expiry warning window.
    TrustRootExpiring,
    /// A TUF trust root past its `expires`: clients refuse it and every verification fails.
    TrustRootExpired,
    /// A TUF trust root without a threshold of valid signatures by its own root keys.
    TrustRootUnverified,
    /// A TUF trust root older than the trusted one seen at the same place (or the same version
    /// with other content).
    TrustRootRollback,
    /// A new TUF root version not signed by a threshold of the previous one's root keys, or one
    /// that skips versions never seen (its chain cannot be checked).
    TrustRootChainBroken,
}

impl ProblemKind {
    /// The name operators read (and the JSON carries).
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::KeyExtractable => "key-extractable",
            ProblemKind::OrphanKey => "orphan-key",
            ProblemKind::KeyNotOnToken => "key-not-on-token",
            ProblemKind::TrustRootExpiring => "trust-root-expiring",
            ProblemKind::TrustRootExpired => "trust-root-expired",
            ProblemKind::TrustRootUnverified => "trust-root-unverified",
            ProblemKind::TrustRootRollback => "trust-root-rollback",
            ProblemKind::TrustRootChainBroken => "trust-root-chain-broken",
        }
    }

    /// The finding kind, when the problem can be a finding.
    fn finding_kind(self) -> Option<Kind> {
        match self {
            ProblemKind::KeyExtractable => Some(Kind::KeyExtractable),
            ProblemKind::KeyNotOnToken => Some(Kind::KeyNotOnToken),
            ProblemKind::OrphanKey
            | ProblemKind::TrustRootExpiring
            | ProblemKind::TrustRootExpired
            | ProblemKind::TrustRootUnverified
            | ProblemKind::TrustRootRollback
            | ProblemKind::TrustRootChainBroken => None,
        }
    }

    /// The finding kind about the key object itself, when it has no certificate to carry it.
    fn key_finding_kind(self) -> Option<Kind> {
        match self {
            ProblemKind::KeyExtractable => Some(Kind::KeyExtractable),
            ProblemKind::OrphanKey => Some(Kind::KeyWithoutCertificate),
            ProblemKind::TrustRootExpiring => Some(Kind::TrustRootExpiring),
            ProblemKind::TrustRootExpired => Some(Kind::TrustRootExpired),
            ProblemKind::TrustRootUnverified => Some(Kind::TrustRootUnverified),
            ProblemKind::TrustRootRollback => Some(Kind::TrustRootRollback),
            ProblemKind::TrustRootChainBroken => Some(Kind::TrustRootChainBroken),
            ProblemKind::KeyNotOnToken => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub severity: Severity,
    /// One line: what is wrong.
    pub reason: String,
    /// One line: what to do.
    pub action: String,
}

/// A certificate paired with a key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Paired {
    #[serde(skip)]
    pub cert_id: i64,
    pub fingerprint: String,
    pub name: String,
    /// `id` (same CKA_ID on the token), `public key` (same SPKI), or both.
    pub by: String,
    /// Stored on the key's token, or found elsewhere in the inventory.
    pub on_token: bool,
}

/// One key with its certificates and problems.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyReport {
    #[serde(flatten)]
    pub key: KeyRow,
    pub certificates: Vec<Paired>,
    pub problems: Vec<Problem>,
}

/// A certificate on a token without its private key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeylessCert {
    #[serde(skip)]
    pub cert_id: i64,
    pub fingerprint: String,
    pub source: String,
    pub location: String,
    pub problem: Problem,
}

/// Every key with its pairing and problems, and the token certificates without a key.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Review {
    pub keys: Vec<KeyReport>,
    pub certificates_without_key: Vec<KeylessCert>,
    /// Public keys that were replaced at their location (a rotated `cosign.pub`) or whose
    /// object is gone, with when they were first and last seen: listed, not a problem.
    pub retired_keys: Vec<KeyHistoryRow>,
}

type Check = fn(&KeyRow, &str) -> Option<Problem>;

/// The checks on one private key, in order; `what` names the key in messages.
const KEY_CHECKS: &[(&str, Check)] = &[
    // PKCS#11 v2.40 §4.9: CKA_EXTRACTABLE true with CKA_SENSITIVE false lets anyone logged in
    // read the private key in plaintext (C_GetAttributeValue).
    ("extractable-plaintext", extractable_plaintext),
    // CKA_EXTRACTABLE true: the key can be wrapped out of the token with any wrapping key.
    ("extractable", extractable),
    // CKA_NEVER_EXTRACTABLE false: the key was extractable at some point (or imported), so
    // copies may exist outside the token.
    ("once-extractable", once_extractable),
];

/// Only keys that sign: a signing key that leaves the HSM defeats the reason for the HSM.
fn signs(k: &KeyRow) -> bool {
    k.class == "private" && k.flag("sign") == Some(true)
}

fn extractable_plaintext(k: &KeyRow, what: &str) -> Option<Problem> {
    (signs(k) && k.flag("extractable") == Some(true) && k.flag("sensitive") == Some(false)).then(|| Problem {
        kind: ProblemKind::KeyExtractable,
        severity: Severity::Critical,
        reason: format!("signing key {what} can be read out in plaintext (CKA_EXTRACTABLE true, CKA_SENSITIVE false)"),
        action: "treat it as exposed: generate a new non-extractable key on the token, reissue its certificates, destroy this key".into(),
    })
}

fn extractable(k: &KeyRow, what: &str) -> Option<Problem> {
    (signs(k) && k.flag("extractable") == Some(true)).then(|| Problem {
        kind: ProblemKind::KeyExtractable,
        severity: Severity::Warning,
        reason: format!("signing key {what} can be exported from the token (CKA_EXTRACTABLE true)"),
        action: "set CKA_EXTRACTABLE to false now, and rotate to a key generated non-extractable on the token".into(),
    })
}

fn once_extractable(k: &KeyRow, what: &str) -> Option<Problem> {
    (signs(k) && k.flag("extractable") == Some(false) && k.flag("never_extractable") == Some(false)).then(|| Problem {
        kind: ProblemKind::KeyExtractable,
        severity: Severity::Warning,
        reason: format!("signing key {what} was extractable or imported (CKA_NEVER_EXTRACTABLE false): copies may exist outside the token"),
        action: "rotate to a key generated on the token as non-extractable, then reissue its certificates".into(),
    })
}

/// `"label" (CKA_ID 01) in source hsm`
fn describe(label: Option<&str>, key_id: Option<&str>, source: &str) -> String {
    let mut s = String::new();
    if let Some(l) = label {
        s.push_str(&format!("\"{l}\" "));
    }
    if let Some(id) = key_id {
        s.push_str(&format!("(CKA_ID {id}) "));
    }
    s.push_str(&format!("in source {source}"));
    s
}

/// Pairs keys with certificates and runs the checks.
pub fn review(keys: &[KeyRow], token_certs: &[TokenCertRow], states: &[CertState<'_>]) -> Review {
    let current: Vec<&CertState<'_>> = states.iter().filter(|s| s.cert.gone_since.is_none()).collect();
    let name_of = |cert_id: i64| current.iter().find(|s| s.cert.id == cert_id).map(|s| s.cert.facts.display_name()).unwrap_or_default();
    let same_id = |k: &KeyRow, c: &TokenCertRow| k.source == c.source && k.key_id.is_some() && k.key_id == c.key_id;
    let same_spki = |k: &KeyRow, spki: &str| k.spki_sha256.as_deref() == Some(spki);
    let mut out = Review::default();
    for k in keys {
        let mut certificates: Vec<Paired> = Vec::new();
        for c in token_certs.iter().filter(|c| c.source == k.source) {
            let by = match (same_id(k, c), same_spki(k, &c.spki_sha256)) {
                (true, true) => "id and public key",
                (true, false) => "id",
                (false, true) => "public key",
                (false, false) => continue,
            };
            if !certificates.iter().any(|p| p.cert_id == c.cert_id) {
                certificates.push(Paired {
                    cert_id: c.cert_id,
                    fingerprint: c.fingerprint.clone(),
                    name: name_of(c.cert_id),
                    by: by.into(),
                    on_token: true,
                });
            }
        }
        let on_token = !certificates.is_empty();
        // The same public key elsewhere in the inventory (a certificate deployed in files, a
        // vault): the key's problems concern those certificates too.
        for s in current.iter().filter(|s| same_spki(k, &s.cert.facts.spki_sha256)) {
            if !certificates.iter().any(|p| p.cert_id == s.cert.id) {
                certificates.push(Paired {
                    cert_id: s.cert.id,
                    fingerprint: s.cert.facts.fingerprint.0.clone(),
                    name: s.cert.facts.display_name(),
                    by: "public key".into(),
                    on_token: false,
                });
            }
        }
        let what = describe(k.label.as_deref(), k.key_id.as_deref(), &k.source);
        let mut problems: Vec<Problem> = KEY_CHECKS.iter().find_map(|(_, check)| check(k, &what)).into_iter().collect();
        if k.class == "private" && !on_token {
            problems.push(Problem {
                kind: ProblemKind::OrphanKey,
                severity: Severity::Info,
                reason: format!("private key {what} has no certificate on its token"),
                action: "store its certificate on the token with the same CKA_ID, or destroy the key if nothing uses it".into(),
            });
        }
        out.keys.push(KeyReport { key: k.clone(), certificates, problems });
    }
    for c in token_certs {
        // A CA certificate on a token is usually the chain of a leaf, not a key holder.
        if c.is_ca {
            continue;
        }
        let has_key = keys.iter().any(|k| k.class == "private" && k.source == c.source && (same_id(k, c) || same_spki(k, &c.spki_sha256)));
        if !has_key {
            let what = describe(c.label.as_deref(), c.key_id.as_deref(), &c.source);
            out.certificates_without_key.push(KeylessCert {
                cert_id: c.cert_id,
                fingerprint: c.fingerprint.clone(),
                source: c.source.clone(),
                location: c.location.clone(),
                problem: Problem {
                    kind: ProblemKind::KeyNotOnToken,
                    severity: Severity::Info,
                    reason: format!("certificate {what} has no private key on its token (none with its CKA_ID or public key)"),
                    action: "nothing if the key lives elsewhere on purpose; otherwise find the key or remove the stale certificate".into(),
                },
            });
        }
    }
    out
}

type RootCheck = fn(&KeyRow, &str) -> Option<Problem>;

/// The checks on one TUF trust root's signatures and chain, in order; `what` names the root.
/// The attributes come from the scan: `verified` and `valid_signatures` from its own root keys
/// (`sources::trust`), `chain*` from the previous root seen at the same place (`app::trust`).
const ROOT_CHECKS: &[(&str, RootCheck)] = &[
    // TUF §5.3.4: a root must be signed by a threshold of its own root keys; below it, clients
    // refuse it (or, worse, a client trusting it on first use would trust a forgery).
    ("own-threshold", root_unverified),
    // TUF §5.3.5: a root version lower than the trusted one is a rollback attack (or a stale copy).
    ("rollback", root_rollback),
    // TUF §5.3.4: version N+1 must be signed by a threshold of version N's root keys.
    ("chain", root_chain),
];

fn text<'a>(k: &'a KeyRow, name: &str) -> Option<&'a str> {
    k.attributes.get(name).and_then(serde_json::Value::as_str)
}

fn int(k: &KeyRow, name: &str) -> Option<i64> {
    k.attributes.get(name).and_then(serde_json::Value::as_i64)
}

fn root_unverified(k: &KeyRow, what: &str) -> Option<Problem> {
    if k.flag("verified") != Some(false) {
        return None;
    }
    let why = match text(k, "verify_error") {
        Some(e) => format!("cannot be verified: {e}"),
        None => format!(
            "has {} valid signatures by its own root keys where its threshold is {}",
            int(k, "valid_signatures").unwrap_or(0),
            int(k, "root_threshold").unwrap_or(0)
        ),
    };
    Some(Problem {
        kind: ProblemKind::TrustRootUnverified,
        severity: Severity::Critical,
        reason: format!("trust root {what} {why}: clients refuse it, or trust a root nobody signed"),
        action: "replace it with the root.json its TUF repository publishes (for Sigstore, sigstore/root-signing) and find out who changed this copy".into(),
    })
}

fn root_rollback(k: &KeyRow, what: &str) -> Option<Problem> {
    if text(k, "chain") != Some("rollback") {
        return None;
    }
    let from = int(k, "chain_from").unwrap_or(0);
    let version = int(k, "version").unwrap_or(0);
    let reason = if version == from {
        format!("trust root {what} is version {version} with other content than the version {from} seen before at this place")
    } else {
        format!("trust root {what} is version {version}, older than version {from} seen before at this place: a rollback")
    };
    Some(Problem {
        kind: ProblemKind::TrustRootRollback,
        severity: Severity::Critical,
        reason,
        action: format!(
            "put version {from} or later back; find out what wrote the older root (a replayed root brings back keys that were retired)"
        ),
    })
}

fn root_chain(k: &KeyRow, what: &str) -> Option<Problem> {
    let from = int(k, "chain_from").unwrap_or(0);
    let version = int(k, "version").unwrap_or(0);
    match text(k, "chain")? {
        "broken" => Some(Problem {
            kind: ProblemKind::TrustRootChainBroken,
            severity: Severity::Critical,
            reason: format!(
                "trust root {what} is not signed by a threshold of version {from}'s root keys ({} of {}): it does not follow from the root trusted before",
                int(k, "chain_valid_signatures").unwrap_or(0),
                int(k, "chain_threshold").unwrap_or(0)
            ),
            action: format!("do not distribute it: compare it with the repository's {version}.root.json and put the genuine one back"),
        }),
        "gap" => Some(Problem {
            kind: ProblemKind::TrustRootChainBroken,
            severity: Severity::Warning,
            reason: format!("trust root {what}: chain not verifiable (v {from} → v {version}): the versions between were never seen"),
            action: "let a source read the roots between (the repository's N.root.json files), or check this root against the repository by hand".into(),
        }),
        _ => None,
    }
}

/// Adds the signature and chain problems of trust roots ([`ROOT_CHECKS`]), each that applies.
/// Pure.
pub fn check_trust_root_signatures(review: &mut Review) {
    for r in review.keys.iter_mut().filter(|r| r.key.class == "trust-root") {
        let what = format!("{} at {}", r.key.label.as_deref().unwrap_or("trust root"), r.key.location);
        let found: Vec<Problem> = ROOT_CHECKS.iter().filter_map(|(_, check)| check(&r.key, &what)).collect();
        r.problems.extend(found);
    }
}

/// Adds the expiry problems of trust roots (key objects of class `trust-root` with a
/// `not_after` attribute): expired, or inside the warning window of `expiry` (days only: a
/// trust root has no notBefore, so no lifetime to take a fraction of). Pure.
pub fn check_trust_roots(review: &mut Review, expiry: &super::Expiry, now: crate::model::UnixTime) {
    for r in review.keys.iter_mut().filter(|r| r.key.class == "trust-root") {
        let Some(not_after) = r.key.attributes.get("not_after").and_then(serde_json::Value::as_i64) else { continue };
        let what = format!("{} at {}", r.key.label.as_deref().unwrap_or("trust root"), r.key.location);
        let when = crate::model::format_time(not_after);
        let left = not_after - now;
        let (warning, critical) = (i64::from(expiry.warning_days) * 86_400, i64::from(expiry.critical_days) * 86_400);
        let problem = if left < 0 {
            Problem {
                kind: ProblemKind::TrustRootExpired,
                severity: Severity::Critical,
                reason: format!("trust root {what} expired at {when}: clients refuse it and every signature verification fails"),
                action: "publish a new root (sign a new root.json version) and update the copy in the cluster".into(),
            }
        } else if left <= warning {
            Problem {
                kind: ProblemKind::TrustRootExpiring,
                severity: if left <= critical { Severity::Critical } else { Severity::Warning },
                reason: format!("trust root {what} expires at {when} ({} days left)", left / 86_400),
                action: "update the copy in the cluster to the current root.json (or sign a new root version) before it expires".into(),
            }
        } else {
            continue;
        };
        r.problems.push(problem);
    }
}

/// The review's problems that concern a current certificate, as findings on it; at most one
/// per (certificate, kind), the most severe (one alert exists per certificate and kind).
pub fn findings(review: &Review, states: &[CertState<'_>]) -> Vec<Finding> {
    let by_id: HashMap<i64, &CertState<'_>> = states.iter().filter(|s| s.cert.gone_since.is_none()).map(|s| (s.cert.id, s)).collect();
    let mut best: Vec<(i64, &Problem)> = Vec::new();
    let mut candidates: Vec<(i64, &Problem)> = Vec::new();
    for r in &review.keys {
        for p in &r.problems {
            for c in &r.certificates {
                candidates.push((c.cert_id, p));
            }
        }
    }
    for c in &review.certificates_without_key {
        candidates.push((c.cert_id, &c.problem));
    }
    for (cert_id, p) in candidates {
        if p.kind.finding_kind().is_none() || !by_id.contains_key(&cert_id) {
            continue;
        }
        match best.iter_mut().find(|(id, q)| *id == cert_id && q.kind == p.kind) {
            Some(slot) if p.severity > slot.1.severity => slot.1 = p,
            Some(_) => {}
            None => best.push((cert_id, p)),
        }
    }
    best.into_iter()
        .filter_map(|(cert_id, p)| {
            let st = by_id.get(&cert_id)?;
            let c = st.cert;
            Some(Finding {
                subject: super::cert_subject(&c.facts.fingerprint.0),
                subject_kind: SubjectKind::Certificate,
                cert_id: Some(cert_id),
                fingerprint: c.facts.fingerprint.0.clone(),
                name: c.facts.display_name(),
                kind: p.kind.finding_kind()?,
                severity: p.severity,
                reason: p.reason.clone(),
                action: p.action.clone(),
                sources: c.sources.clone(),
                tags: st.tags.clone(),
                ekus: c.facts.ext_key_usage.clone(),
                not_after: c.facts.not_after,
                owner: None,
                owner_contact: None,
            })
        })
        .collect()
}

/// Whether a key's problem is a finding about the key object itself: the key has no
/// certificate anywhere in the inventory (a trust root never has one). An orphan key whose
/// certificate is deployed elsewhere is not: its certificate exists, `keys` lists the problem.
fn about_the_key(r: &KeyReport, p: &Problem) -> bool {
    r.certificates.is_empty() && p.kind.key_finding_kind().is_some()
}

/// What operators read for a key object: `root.json in configmap sigstore/trust (version 10)`
/// for a Kubernetes object, else `"label" (CKA_ID 01) in source hsm at <location>`.
pub fn key_name(k: &KeyRow) -> String {
    if let Some(rest) = k.location.strip_prefix("k8s://") {
        // k8s://<context>/<namespace>/<plural>/<name>#<data key>
        let (path, entry) = rest.split_once('#').unwrap_or((rest, ""));
        let parts: Vec<&str> = path.split('/').collect();
        if let [_, ns, plural, name] = parts.as_slice() {
            let singular = plural.strip_suffix('s').unwrap_or(plural);
            let version =
                k.attributes.get("version").and_then(serde_json::Value::as_i64).map(|v| format!(" (version {v})")).unwrap_or_default();
            return format!("{entry} in {singular} {ns}/{name}{version}");
        }
    }
    match k.class.as_str() {
        "private" => format!("private key {}", describe(k.label.as_deref(), k.key_id.as_deref(), &k.source)),
        _ => format!("{} at {}", k.label.as_deref().unwrap_or(&k.class), k.location),
    }
}

/// Findings about key objects that have no certificate (an orphan private key, the
/// extractability of a key nothing certifies) and about trust roots: at most one per (key,
/// kind), the most severe. `tags` are each source's tags, for routing. Pure.
pub fn subject_findings(review: &Review, tags: &HashMap<String, Vec<String>>) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    for r in &review.keys {
        for p in r.problems.iter().filter(|p| about_the_key(r, p)) {
            let Some(kind) = p.kind.key_finding_kind() else { continue };
            let subject = super::key_subject(&r.key.source, &r.key.location);
            if let Some(prev) = out.iter_mut().find(|f| f.subject == subject && f.kind == kind) {
                if p.severity > prev.severity {
                    (prev.severity, prev.reason, prev.action) = (p.severity, p.reason.clone(), p.action.clone());
                }
                continue;
            }
            out.push(Finding {
                subject,
                subject_kind: SubjectKind::Key,
                cert_id: None,
                fingerprint: String::new(),
                name: key_name(&r.key),
                kind,
                severity: p.severity,
                reason: p.reason.clone(),
                action: p.action.clone(),
                sources: vec![r.key.source.clone()],
                tags: tags.get(&r.key.source).cloned().unwrap_or_default(),
                ekus: Vec::new(),
                not_after: r.key.attributes.get("not_after").and_then(serde_json::Value::as_i64).unwrap_or(0),
                owner: None,
                owner_contact: None,
            });
        }
    }
    out
}

/// Whether `unattached`'s problem is alerted (as a finding about the key itself).
pub fn alerted(key: &KeyRow, p: &Problem, review: &Review) -> bool {
    review.keys.iter().any(|r| std::ptr::eq(&r.key, key) && about_the_key(r, p))
}

/// The problems that cannot be findings on a certificate (no certificate to attach them to),
/// for `plan`: most are findings about the key itself ([`alerted`]).
pub fn unattached(review: &Review) -> Vec<(&KeyRow, &Problem)> {
    review
        .keys
        .iter()
        .flat_map(|r| {
            r.problems.iter().filter(move |p| p.kind.finding_kind().is_none() || r.certificates.is_empty()).map(move |p| (&r.key, p))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_kind_names_are_their_json_names() {
        for k in [
            ProblemKind::KeyExtractable,
            ProblemKind::OrphanKey,
            ProblemKind::KeyNotOnToken,
            ProblemKind::TrustRootExpiring,
            ProblemKind::TrustRootExpired,
            ProblemKind::TrustRootUnverified,
            ProblemKind::TrustRootRollback,
            ProblemKind::TrustRootChainBroken,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), serde_json::Value::from(k.as_str()));
        }
    }
    use crate::model::rows::CertRow;
    use crate::model::{CertFacts, Fingerprint, KeyFacts};

    fn cert(id: i64, is_ca: bool) -> CertRow {
        CertRow {
            id,
            facts: CertFacts {
                fingerprint: Fingerprint(format!("{id:064x}")),
                subject: format!("CN=c{id}"),
                issuer: "CN=CA".into(),
                common_name: Some(format!("c{id}")),
                serial: format!("{id:02X}"),
                not_before: 0,
                not_after: 1 << 40,
                spki_sha256: format!("spki{id}"),
                key: KeyFacts { algorithm: "EC".into(), bits: Some(256), curve: Some("P-256".into()) },
                signature_algorithm: "ecdsa-with-SHA256".into(),
                is_ca,
                path_len: None,
                key_usage: vec![],
                ext_key_usage: vec!["codeSigning".into()],
                sans: vec![],
                ocsp_urls: vec![],
                ca_issuers_urls: vec![],
                crl_urls: vec![],
                aki: None,
                ski: None,
                self_issued: false,
                warnings: vec![],
            },
            first_seen: 0,
            gone_since: None,
            current_sightings: 1,
            sources: vec!["hsm".into()],
        }
    }

    fn state(c: &CertRow) -> CertState<'_> {
        CertState {
            cert: c,
            tags: vec![],
            revocation: None,
            revocation_unknown_since: None,
            key_first_seen: 0,
            superseded_by: None,
            untrusted_at: vec![],
            cert_manager_not_ready: vec![],
            renewal: None,
            publicly_trusted: false,
            ari: None,
        }
    }

    fn key(id: &str, spki: Option<&str>, attributes: serde_json::Value) -> KeyRow {
        KeyRow {
            id: 0,
            source: "hsm".into(),
            location: format!("pkcs11:token=t;id=%{id};type=private"),
            label: Some(format!("k{id}")),
            key_id: Some(id.into()),
            class: "private".into(),
            algorithm: "EC".into(),
            bits: Some(256),
            curve: Some("P-256".into()),
            spki_sha256: spki.map(str::to_string),
            attributes,
            first_seen: 0,
            last_seen: 0,
        }
    }

    fn on_token(c: &CertRow, id: &str) -> TokenCertRow {
        TokenCertRow {
            cert_id: c.id,
            fingerprint: c.facts.fingerprint.0.clone(),
            spki_sha256: c.facts.spki_sha256.clone(),
            is_ca: c.facts.is_ca,
            source: "hsm".into(),
            location: format!("pkcs11:token=t;id=%{id};type=cert"),
            token: Some("t".into()),
            key_id: Some(id.into()),
            label: None,
        }
    }

    fn kinds(review: &Review, states: &[CertState<'_>]) -> Vec<(i64, Kind, Severity)> {
        findings(review, states).into_iter().map(|f| (f.cert_id.unwrap_or(0), f.kind, f.severity)).collect()
    }

    #[test]
    fn extractability_severities() {
        let c = cert(1, false);
        let states = [state(&c)];
        let certs = [on_token(&c, "01")];
        let table: &[(serde_json::Value, Option<Severity>)] = &[
            // Readable in plaintext.
            (
                serde_json::json!({"sign": true, "extractable": true, "sensitive": false, "never_extractable": false}),
                Some(Severity::Critical),
            ),
            // Exportable wrapped.
            (
                serde_json::json!({"sign": true, "extractable": true, "sensitive": true, "never_extractable": false}),
                Some(Severity::Warning),
            ),
            // Imported or once extractable.
            (
                serde_json::json!({"sign": true, "extractable": false, "sensitive": true, "never_extractable": false}),
                Some(Severity::Warning),
            ),
            // Generated on the token, never extractable.
            (serde_json::json!({"sign": true, "extractable": false, "sensitive": true, "never_extractable": true}), None),
            // Not a signing key.
            (serde_json::json!({"sign": false, "extractable": true, "sensitive": false}), None),
            // Attributes unknown (not reported by the token): no guess.
            (serde_json::json!({"sign": true}), None),
        ];
        for (attrs, want) in table {
            let r = review(&[key("01", None, attrs.clone())], &certs, &states);
            let got: Vec<Severity> = kinds(&r, &states).into_iter().filter(|f| f.1 == Kind::KeyExtractable).map(|f| f.2).collect();
            assert_eq!(got, want.iter().copied().collect::<Vec<_>>(), "{attrs}");
        }
    }

    #[test]
    fn pairing_orphans_and_keyless_certificates() {
        let (leaf, ca, elsewhere, keyless) = (cert(1, false), cert(2, true), cert(3, false), cert(4, false));
        let states = [state(&leaf), state(&ca), state(&elsewhere), state(&keyless)];
        let token = [on_token(&leaf, "01"), on_token(&ca, "02"), on_token(&keyless, "04")];
        let once = serde_json::json!({"sign": true, "extractable": false, "never_extractable": false});
        let keys = [
            // Paired by public key although the CKA_ID differs.
            key("09", Some("spki1"), serde_json::json!({"sign": true, "never_extractable": true, "extractable": false})),
            // No certificate on the token, but its certificate is deployed elsewhere.
            key("03", Some("spki3"), once.clone()),
            // No certificate at all.
            key("05", None, once),
        ];
        let r = review(&keys, &token, &states);
        assert_eq!(
            r.keys[0].certificates.iter().map(|p| (p.cert_id, p.by.as_str(), p.on_token)).collect::<Vec<_>>(),
            [(1, "public key", true)]
        );
        let problem_kinds = |i: usize| r.keys[i].problems.iter().map(|p| p.kind).collect::<Vec<_>>();
        assert_eq!(problem_kinds(0), []);
        assert_eq!(problem_kinds(1), [ProblemKind::KeyExtractable, ProblemKind::OrphanKey]);
        assert_eq!(r.keys[1].certificates.iter().map(|p| (p.cert_id, p.on_token)).collect::<Vec<_>>(), [(3, false)]);
        assert_eq!(problem_kinds(2), [ProblemKind::KeyExtractable, ProblemKind::OrphanKey]);
        // The CA certificate is chain, not a key holder: only the leaf without key is reported.
        assert_eq!(r.certificates_without_key.iter().map(|c| c.cert_id).collect::<Vec<_>>(), [4]);
        // The deployed certificate gets the key's finding; the certificate-less key's problems
        // are left for `plan`'s key_problems.
        assert_eq!(kinds(&r, &states), [(3, Kind::KeyExtractable, Severity::Warning), (4, Kind::KeyNotOnToken, Severity::Info)]);
        let left: Vec<(Option<&str>, ProblemKind)> = unattached(&r).into_iter().map(|(k, p)| (k.key_id.as_deref(), p.kind)).collect();
        assert_eq!(
            left,
            [(Some("03"), ProblemKind::OrphanKey), (Some("05"), ProblemKind::KeyExtractable), (Some("05"), ProblemKind::OrphanKey)]
        );
        // The key with no certificate anywhere is alerted about itself; key 03's certificate
        // exists (deployed elsewhere), so its missing token copy is only listed.
        let tags = HashMap::from([("hsm".to_string(), vec!["prod".to_string()])]);
        type About = (String, Kind, Severity, Option<i64>, Vec<String>);
        let about_keys: Vec<About> =
            subject_findings(&r, &tags).into_iter().map(|f| (f.subject, f.kind, f.severity, f.cert_id, f.tags)).collect();
        let subject = "key:hsm:pkcs11:token=t;id=%05;type=private".to_string();
        assert_eq!(
            about_keys,
            [
                (subject.clone(), Kind::KeyExtractable, Severity::Warning, None, vec!["prod".to_string()]),
                (subject, Kind::KeyWithoutCertificate, Severity::Info, None, vec!["prod".to_string()]),
            ]
        );
        let alerted_left: Vec<bool> = unattached(&r).into_iter().map(|(k, p)| alerted(k, p, &r)).collect();
        assert_eq!(alerted_left, [false, true, true]);
        assert_eq!(key_name(&keys[2]), "private key \"k05\" (CKA_ID 05) in source hsm");
    }

    #[test]
    fn one_finding_per_certificate_and_kind_the_most_severe() {
        let c = cert(1, false);
        let states = [state(&c)];
        let token = [on_token(&c, "01")];
        let keys = [
            key("01", Some("spki1"), serde_json::json!({"sign": true, "extractable": false, "never_extractable": false})),
            key("02", Some("spki1"), serde_json::json!({"sign": true, "extractable": true, "sensitive": false})),
        ];
        let r = review(&keys, &token, &states);
        assert_eq!(kinds(&r, &states), [(1, Kind::KeyExtractable, Severity::Critical)]);
    }

    #[test]
    fn trust_roots_expire_like_certificates() {
        let day = 86_400;
        let root = |not_after: i64| KeyRow {
            class: "trust-root".into(),
            algorithm: "TUF".into(),
            bits: None,
            curve: None,
            key_id: None,
            label: Some("TUF root v5".into()),
            attributes: serde_json::json!({"not_after": not_after, "version": 5}),
            location: "k8s://prod/sigstore/configmaps/trust#root.json".into(),
            ..key("01", None, serde_json::json!({}))
        };
        let now = 1_000 * day;
        let expiry = crate::policy::Expiry::default();
        let table = [
            (now + 60 * day, None),
            (now + 20 * day, Some((ProblemKind::TrustRootExpiring, Severity::Warning))),
            (now + 3 * day, Some((ProblemKind::TrustRootExpiring, Severity::Critical))),
            (now - 1, Some((ProblemKind::TrustRootExpired, Severity::Critical))),
        ];
        for (not_after, want) in table {
            let mut r = review(&[root(not_after)], &[], &[]);
            check_trust_roots(&mut r, &expiry, now);
            let got = r.keys[0].problems.iter().map(|p| (p.kind, p.severity)).next();
            assert_eq!(got, want, "not_after {not_after}");
            // Not a certificate's problem: a finding about the root itself.
            assert!(findings(&r, &[]).is_empty());
            assert_eq!(unattached(&r).len(), usize::from(want.is_some()));
            let about: Vec<(Kind, Severity, String, i64)> =
                subject_findings(&r, &HashMap::new()).into_iter().map(|f| (f.kind, f.severity, f.subject, f.not_after)).collect();
            let kind = |p: ProblemKind| if p == ProblemKind::TrustRootExpired { Kind::TrustRootExpired } else { Kind::TrustRootExpiring };
            let subject = "key:hsm:k8s://prod/sigstore/configmaps/trust#root.json".to_string();
            assert_eq!(about, want.into_iter().map(|(p, sev)| (kind(p), sev, subject.clone(), not_after)).collect::<Vec<_>>());
        }
        let mut r = review(&[root(now + day)], &[], &[]);
        r.keys[0].key.location = "k8s://prod/sigstore/configmaps/trust#root.json".into();
        assert_eq!(key_name(&r.keys[0].key), "root.json in configmap sigstore/trust (version 5)");
        check_trust_roots(&mut r, &expiry, now);
        assert_eq!(subject_findings(&r, &HashMap::new())[0].name, "root.json in configmap sigstore/trust (version 5)");
    }

    #[test]
    fn trust_root_signatures_and_chain_are_checked() {
        let root = |attributes: serde_json::Value| KeyRow {
            class: "trust-root".into(),
            algorithm: "TUF".into(),
            bits: None,
            curve: None,
            key_id: None,
            label: Some("TUF root v14".into()),
            attributes,
            location: "/etc/sigstore/root.json".into(),
            ..key("01", None, serde_json::json!({}))
        };
        use ProblemKind::*;
        use Severity::*;
        type Case = (serde_json::Value, &'static [(ProblemKind, Severity)], &'static str);
        let table: &[Case] = &[
            (serde_json::json!({"version": 14, "verified": true, "chain": "verified", "chain_from": 13}), &[], ""),
            (serde_json::json!({"version": 14, "verified": true, "chain": "first"}), &[], ""),
            (serde_json::json!({"version": 14, "verified": true, "chain": "same"}), &[], ""),
            // Attributes of a root read before signatures were checked: nothing to say.
            (serde_json::json!({"version": 14}), &[], ""),
            (
                serde_json::json!({"version": 14, "verified": false, "valid_signatures": 2, "root_threshold": 3, "chain": "first"}),
                &[(TrustRootUnverified, Critical)],
                "2 valid signatures by its own root keys where its threshold is 3",
            ),
            (
                serde_json::json!({"version": 14, "verified": false, "verify_error": "TUF root: no `signed.roles.root`"}),
                &[(TrustRootUnverified, Critical)],
                "no `signed.roles.root`",
            ),
            (
                serde_json::json!({"version": 12, "verified": true, "chain": "rollback", "chain_from": 14}),
                &[(TrustRootRollback, Critical)],
                "version 12, older than version 14",
            ),
            (
                serde_json::json!({"version": 14, "verified": false, "valid_signatures": 0, "root_threshold": 3, "chain": "rollback", "chain_from": 14}),
                &[(TrustRootUnverified, Critical), (TrustRootRollback, Critical)],
                "version 14 with other content",
            ),
            (
                serde_json::json!({"version": 14, "verified": true, "chain": "broken", "chain_from": 13, "chain_valid_signatures": 1, "chain_threshold": 3}),
                &[(TrustRootChainBroken, Critical)],
                "not signed by a threshold of version 13's root keys (1 of 3)",
            ),
            (
                serde_json::json!({"version": 14, "verified": true, "chain": "gap", "chain_from": 11}),
                &[(TrustRootChainBroken, Warning)],
                "chain not verifiable (v 11 → v 14)",
            ),
        ];
        for (attrs, want, says) in table {
            let mut r = review(&[root(attrs.clone())], &[], &[]);
            check_trust_root_signatures(&mut r);
            let got: Vec<(ProblemKind, Severity)> = r.keys[0].problems.iter().map(|p| (p.kind, p.severity)).collect();
            assert_eq!(got, *want, "{attrs}");
            assert!(says.is_empty() || r.keys[0].problems.iter().any(|p| p.reason.contains(says)), "{attrs}: {:?}", r.keys[0].problems);
            // Each is a finding about the root itself, routed like any alert.
            let kinds: Vec<Kind> = subject_findings(&r, &HashMap::new()).into_iter().map(|f| f.kind).collect();
            let expected: Vec<Kind> = want.iter().filter_map(|(p, _)| p.key_finding_kind()).collect();
            assert_eq!(kinds, expected, "{attrs}");
        }
    }
}
