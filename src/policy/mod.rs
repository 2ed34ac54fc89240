//! Policy: a chain of small named checks over each certificate and its state, each returning a
//! finding with its kind, severity, a one-line reason and the action to take. Pure: the state
//! and `now` are arguments; nothing here reads the clock, the store or the network.
//!
//! The shape to copy when adding a rule: one entry in `CHECKS` with a comment saying why, one
//! small function returning at most one finding. The input (`CertState`) is built by
//! `app::evaluate`; the policy never asks for more.

pub mod keys;
pub mod renewal;
pub use crate::config::policy::{Expiry, Match, PolicySpec, Rule};

pub use crate::model::finding::{Finding, Kind, Severity, SubjectKind, cert_subject, key_subject, managed_subject};
use crate::model::rows::CertRow;
use crate::model::{RevocationState, RevocationStatus, UnixTime, format_date, format_time, lifetime};

/// Everything the checks know about one certificate.
#[derive(Debug, Clone)]
pub struct CertState<'a> {
    pub cert: &'a CertRow,
    pub tags: Vec<String>,
    pub revocation: Option<&'a RevocationStatus>,
    /// Since when revocation has been continuously unknown.
    pub revocation_unknown_since: Option<UnixTime>,
    /// notBefore of the earliest certificate seen with the same public key.
    pub key_first_seen: UnixTime,
    /// A newer certificate for the same subject and names: (fingerprint, name, notBefore).
    pub superseded_by: Option<(String, UnixTime)>,
    /// TLS endpoints serving it as their leaf with a chain that does not verify: (endpoint,
    /// why).
    pub untrusted_at: Vec<(String, String)>,
    /// cert-manager Certificates producing a Secret that holds it and that are not Ready:
    /// (`namespace/name`, the Ready condition's status, reason and message).
    pub cert_manager_not_ready: Vec<(String, String)>,
    /// It is the installed certificate of a managed certificate: its renewal state.
    pub renewal: Option<&'a renewal::RenewalView>,
    /// Its chain leads to a root of the system's trust store (signatures verified), so the
    /// CA/Browser Forum's rules apply to it. Worked out by `app::evaluate` only for the
    /// certificates [`lifetime_over_limit_candidate`] picks.
    pub publicly_trusted: bool,
    /// What its CA's renewal information says (`app::ari`), when it is watched.
    pub ari: Option<&'a crate::model::rows::AriWatchRow>,
}

/// The expiry thresholds and key-age limit that apply to this certificate.
fn effective(policy: &PolicySpec, st: &CertState<'_>) -> (Expiry, Option<i64>) {
    policy.effective_for(&st.cert.sources, &st.tags, &st.cert.facts.ext_key_usage)
}

/// Context of one evaluation.
pub struct Ctx<'a> {
    pub policy: &'a PolicySpec,
    pub now: UnixTime,
}

type Check = fn(&Ctx<'_>, &CertState<'_>) -> Option<(Kind, Severity, String, String)>;

/// The checks, in order. Each is one small function returning at most one finding.
const CHECKS: &[(&str, Check)] = &[
    // A certificate used before its notBefore fails everywhere it is presented.
    ("not-yet-valid", not_yet_valid),
    // Past notAfter (RFC 5280 §4.1.2.5: notAfter itself is still valid).
    ("expired", expired),
    // Inside the warning or critical window (days, or a fraction of the lifetime).
    ("expiring", expiring),
    // On a verified CRL or OCSP response: retire the certificate and rotate its key.
    ("revoked", revoked),
    // No verified revocation answer for longer than the grace.
    ("revocation-unknown", revocation_unknown),
    // The CRL that answered was past nextUpdate (inside the stale grace).
    ("revocation-stale", revocation_stale),
    // The key has been in use longer than max_key_age.
    ("key-too-old", key_too_old),
    // RSA/DSA/EC keys below the configured sizes.
    ("weak-key", weak_key),
    // SHA-1 or MD5 signatures on anything but a self-signed trust anchor.
    ("weak-signature", weak_signature),
    // A newer certificate for the same subject and names exists, but this one is still deployed.
    ("superseded", superseded),
    // A TLS endpoint serves it with a chain clients reject (wrong name, missing intermediate).
    ("untrusted-endpoint", untrusted_endpoint),
    // cert-manager cannot issue or renew it: its Certificate's Ready condition is not True.
    ("cert-manager-not-ready", cert_manager_not_ready),
    // Its automatic renewal failed: warning, critical after repeated failures or close to expiry.
    ("renewal-failed", renewal::failed),
    // The CA's renewal window (RFC 9773) ended and it is still installed.
    ("renewal-overdue", renewal::overdue),
    // Publicly trusted, but valid longer than the CA/B Forum allowed when it was issued.
    ("lifetime-over-limit", lifetime_over_limit),
    // Its CA moved the suggested renewal window (RFC 9773) earlier or into the past: a
    // revocation is likely coming.
    ("ari-early-renewal", ari_early_renewal),
];

/// Runs every check over every certificate. Gone certificates only get a `retired` finding
/// (for 30 days after they vanished): they are deployed nowhere, so nothing else applies.
pub fn evaluate(policy: &PolicySpec, states: &[CertState<'_>], now: UnixTime) -> Vec<Finding> {
    let ctx = Ctx { policy, now };
    let mut out = Vec::new();
    for st in states {
        let c = st.cert;
        let mk = |(kind, severity, reason, action): (Kind, Severity, String, String)| Finding {
            subject: cert_subject(&c.facts.fingerprint.0),
            subject_kind: SubjectKind::Certificate,
            cert_id: Some(c.id),
            fingerprint: c.facts.fingerprint.0.clone(),
            name: c.facts.display_name(),
            kind,
            severity,
            reason,
            action,
            sources: c.sources.clone(),
            tags: st.tags.clone(),
            ekus: c.facts.ext_key_usage.clone(),
            not_after: c.facts.not_after,
            // The app puts the certificate's owner on it (`app::owners`).
            owner: None,
            owner_contact: None,
        };
        if let Some(gone) = c.gone_since {
            if now - gone <= 30 * 86_400 {
                out.push(mk((
                    Kind::Retired,
                    Severity::Info,
                    format!("no longer found in any source since {}", format_time(gone)),
                    "nothing to do if it was retired on purpose; otherwise find where it went".into(),
                )));
            }
            continue;
        }
        for (_, check) in CHECKS {
            if let Some(f) = check(&ctx, st) {
                out.push(mk(f));
            }
        }
    }
    out
}

fn days(secs: i64) -> String {
    let d = secs as f64 / 86_400.0;
    if d.abs() >= 2.0 { format!("{} days", d.floor() as i64) } else { format!("{} hours", (secs as f64 / 3600.0).floor() as i64) }
}

type Out = Option<(Kind, Severity, String, String)>;

fn not_yet_valid(ctx: &Ctx<'_>, st: &CertState<'_>) -> Out {
    let f = &st.cert.facts;
    (ctx.now < f.not_before).then(|| {
        (
            Kind::NotYetValid,
            Severity::Warning,
            format!("not valid until {} (in {})", format_time(f.not_before), days(f.not_before - ctx.now)),
            "check the issuing clock, or do not deploy it before then".into(),
        )
    })
}

fn expired(ctx: &Ctx<'_>, st: &CertState<'_>) -> Out {
    let f = &st.cert.facts;
    (ctx.now > f.not_after).then(|| {
        (
            Kind::Expired,
            Severity::Critical,
            format!("expired on {} ({} ago)", format_date(f.not_after), days(ctx.now - f.not_after)),
            if f.is_ca && f.self_issued {
                "remove it from the trust store (an expired anchor validates nothing) or update the bundle that ships it".into()
            } else {
                "renew and deploy a new certificate now, or remove this one from where it is deployed".into()
            },
        )
    })
}

fn expiring(ctx: &Ctx<'_>, st: &CertState<'_>) -> Out {
    let f = &st.cert.facts;
    if ctx.now > f.not_after || ctx.now < f.not_before {
        return None;
    }
    let (expiry, _) = effective(ctx.policy, st);
    let (warn, crit) = expiry.windows(f.not_after - f.not_before);
    let left = f.not_after - ctx.now;
    let severity = if left <= crit {
        Severity::Critical
    } else if left <= warn {
        Severity::Warning
    } else {
        return None;
    };
    let what = if st.cert.facts.is_code_signing() { "signing certificate" } else { "certificate" };
    let window = window_words(&expiry, f.not_after - f.not_before, severity);
    // A managed certificate whose renewal is scheduled and healthy needs nobody: no page.
    if let Some(at) = st.renewal.and_then(|r| r.healthy(f, ctx.now)) {
        return Some((
            Kind::Expiring,
            Severity::Info,
            format!(
                "{what} expires on {} (in {}){window}; automatic renewal scheduled at {}",
                format_time(f.not_after),
                days(left),
                format_time(at)
            ),
            "nothing to do: certvigil renews it".into(),
        ));
    }
    Some((
        Kind::Expiring,
        severity,
        format!("{what} expires on {} (in {}){window}", format_time(f.not_after), days(left)),
        if st.cert.facts.is_code_signing() {
            "renew the signing certificate and distribute the new one to every signer".into()
        } else {
            "renew it and deploy the new certificate before it expires".into()
        },
    ))
}

/// When the lifetime fraction, not the days, set the window that was entered: `; warning
/// window 1 day 23 h = 33% of its 6 days 16 h lifetime (not 30 days)`, so that a plan shows why a
/// short certificate warns late. Empty when the days applied.
fn window_words(expiry: &Expiry, life: i64, severity: Severity) -> String {
    let (name, days_limit, fraction) = match severity {
        Severity::Critical => ("critical", expiry.critical_days, expiry.critical_fraction),
        _ => ("warning", expiry.warning_days, expiry.warning_fraction),
    };
    let (w, c) = expiry.windows(life);
    let win = if severity == Severity::Critical { c } else { w };
    if win >= i64::from(days_limit) * 86_400 {
        return String::new();
    }
    format!(
        "; {name} window {} = {:.0}% of its {} lifetime (not {days_limit} days)",
        lifetime::lifetime_words(win),
        fraction * 100.0,
        lifetime::lifetime_words(lifetime::validity_period(0, life))
    )
}

/// Whether a certificate could be over the CA/B lifetime limit, from its own facts: a current TLS
/// server leaf (EKU serverAuth) valid longer than the limit in force on its notBefore. Only these
/// need their chain checked against the system's roots (`CertState::publicly_trusted`).
pub fn lifetime_over_limit_candidate(f: &crate::model::CertFacts, now: UnixTime) -> bool {
    let Some(limit) = lifetime::tls_limit_on(f.not_before) else { return false };
    !f.is_ca
        && now <= f.not_after
        && f.ext_key_usage.iter().any(|e| e == "serverAuth")
        && f.not_after > lifetime::latest_not_after(limit.limit, f.not_before)
}

fn lifetime_over_limit(ctx: &Ctx<'_>, st: &CertState<'_>) -> Out {
    let f = &st.cert.facts;
    if !st.publicly_trusted || !lifetime_over_limit_candidate(f, ctx.now) {
        return None;
    }
    let limit = lifetime::tls_limit_on(f.not_before)?;
    Some((
        Kind::LifetimeOverLimit,
        Severity::Critical,
        format!(
            "publicly trusted TLS certificate valid for {} from {}: more than the {} allowed for certificates issued then ({})",
            lifetime::lifetime_words(lifetime::validity_period(f.not_before, f.not_after)),
            format_date(f.not_before),
            lifetime::limit_words(limit.limit),
            limit.source
        ),
        "browsers may reject it and the CA must revoke it as misissued (BR §4.9.1.1): replace it now with a certificate within the limit"
            .into(),
    ))
}

fn ari_early_renewal(ctx: &Ctx<'_>, st: &CertState<'_>) -> Out {
    let a = st.ari?;
    let (start, end) = a.window?;
    if ctx.now > st.cert.facts.not_after {
        return None;
    }
    let explained = a.explanation_url.as_deref().map(|u| format!("; the CA explains: {u}")).unwrap_or_default();
    let action = format!(
        "renew it now and deploy the new certificate before {}: the CA is likely to revoke this one{}",
        format_time(end.max(ctx.now)),
        a.explanation_url.as_deref().map(|u| format!(" (read {u})")).unwrap_or_default()
    );
    // RFC 9773 §4.2: a window in the past means "renew immediately".
    if end <= ctx.now {
        return Some((
            Kind::AriEarlyRenewal,
            Severity::Critical,
            format!(
                "its CA's suggested renewal window ({} – {}) has passed: the CA wants it replaced now{explained}",
                format_time(start),
                format_time(end)
            ),
            action,
        ));
    }
    let (first_start, first_end) = a.first.filter(|(fs, _)| start < *fs)?;
    Some((
        Kind::AriEarlyRenewal,
        if a.explanation_url.is_some() { Severity::Critical } else { Severity::Warning },
        format!(
            "its CA moved the suggested renewal window earlier: now {} – {}, first {} – {}{explained}",
            format_time(start),
            format_time(end),
            format_time(first_start),
            format_time(first_end)
        ),
        action,
    ))
}

fn revoked(_: &Ctx<'_>, st: &CertState<'_>) -> Out {
    let r = st.revocation.filter(|r| r.state == RevocationState::Revoked)?;
    let reason = r.reason.clone().unwrap_or_else(|| "unspecified".into());
    Some((
        Kind::Revoked,
        Severity::Critical,
        format!("revoked ({reason}) at {} per {}", r.revoked_at.map(format_time).unwrap_or_default(), r.method),
        if reason == "keyCompromise" {
            "retire it now, generate a new key and reissue; treat everything the old key signed as suspect".into()
        } else {
            "retire it: reissue with a new key and replace it everywhere it is deployed".into()
        },
    ))
}

fn revocation_unknown(ctx: &Ctx<'_>, st: &CertState<'_>) -> Out {
    if ctx.policy.ignore_unknown_revocation {
        return None;
    }
    let r = st.revocation.filter(|r| r.state == RevocationState::Unknown)?;
    let since = st.revocation_unknown_since.unwrap_or(r.checked_at);
    (ctx.now - since >= ctx.policy.revocation_unknown_grace).then(|| {
        (
            Kind::RevocationUnknown,
            Severity::Warning,
            format!("revocation status unknown since {}: {}", format_time(since), r.reason.as_deref().unwrap_or("")),
            "make its CRL or OCSP responder reachable, or add the issuer to the inventory".into(),
        )
    })
}

fn revocation_stale(_: &Ctx<'_>, st: &CertState<'_>) -> Out {
    let r = st.revocation.filter(|r| r.stale && r.state != RevocationState::Unknown)?;
    Some((
        Kind::RevocationStale,
        Severity::Warning,
        format!("revocation status comes from a CRL past its nextUpdate ({})", r.next_update.map(format_time).unwrap_or_default()),
        "the CA has not published a fresh CRL: ask its operators".into(),
    ))
}

fn key_too_old(ctx: &Ctx<'_>, st: &CertState<'_>) -> Out {
    let (_, max_age) = effective(ctx.policy, st);
    let max_age = max_age?;
    let age = ctx.now - st.key_first_seen;
    (age > max_age).then(|| {
        (
            Kind::KeyTooOld,
            Severity::Warning,
            format!("key in use since {} ({}), longer than max_key_age ({})", format_date(st.key_first_seen), days(age), days(max_age)),
            "rotate: generate a new key and reissue the certificate".into(),
        )
    })
}

fn weak_key(ctx: &Ctx<'_>, st: &CertState<'_>) -> Out {
    let k = &st.cert.facts.key;
    let p = ctx.policy;
    let weak = match (k.algorithm.as_str(), k.bits) {
        ("RSA", Some(b)) if b < p.min_rsa_bits => Some(format!("RSA-{b} key, below {} bits", p.min_rsa_bits)),
        ("EC", Some(b)) if b < p.min_ec_bits => {
            Some(format!("EC key on {} ({b} bits), below {} bits", k.curve.as_deref().unwrap_or("?"), p.min_ec_bits))
        }
        ("DSA", _) => Some("DSA key (no longer accepted by browsers or current signing tools)".into()),
        _ => None,
    }?;
    Some((Kind::WeakKey, Severity::Warning, weak, "reissue with an RSA-3072+, P-256/P-384 or Ed25519 key".into()))
}

fn weak_signature(ctx: &Ctx<'_>, st: &CertState<'_>) -> Out {
    let f = &st.cert.facts;
    // A self-signed trust anchor's own signature is never checked by relying parties.
    if f.self_issued || !ctx.policy.sha1_is_weak {
        return None;
    }
    let alg = f.signature_algorithm.to_ascii_lowercase();
    (alg.contains("sha1") || alg.contains("md5")).then(|| {
        (
            Kind::WeakSignature,
            Severity::Warning,
            format!("signed with {}", f.signature_algorithm),
            "reissue it with a SHA-256 or stronger signature".into(),
        )
    })
}

fn superseded(ctx: &Ctx<'_>, st: &CertState<'_>) -> Out {
    if !ctx.policy.superseded || st.cert.facts.is_ca {
        return None;
    }
    let (newer, issued) = st.superseded_by.as_ref()?;
    Some((
        Kind::Superseded,
        Severity::Warning,
        format!(
            "superseded by {} (issued {}) but still deployed at {} place(s)",
            &newer[..12.min(newer.len())],
            format_date(*issued),
            st.cert.current_sightings
        ),
        "replace it with the newer certificate where it is still deployed".into(),
    ))
}

#[cfg(test)]
mod tests;

fn cert_manager_not_ready(_: &Ctx<'_>, st: &CertState<'_>) -> Out {
    // The CA certificate of the Secret (`ca.crt`) is not what cert-manager renews.
    if st.cert_manager_not_ready.is_empty() || st.cert.facts.is_ca {
        return None;
    }
    let what: Vec<String> = st.cert_manager_not_ready.iter().map(|(c, why)| format!("{c} ({why})")).collect();
    Some((
        Kind::CertManagerNotReady,
        Severity::Warning,
        format!("cert-manager Certificate {} is not Ready: it will not be renewed until fixed", what.join(", ")),
        "run `kubectl describe certificate` on it and fix what its Ready condition and events name (issuer, DNS, ACME challenge)".into(),
    ))
}

fn untrusted_endpoint(ctx: &Ctx<'_>, st: &CertState<'_>) -> Out {
    let f = &st.cert.facts;
    // An expired or not yet valid certificate already has its own finding.
    if st.untrusted_at.is_empty() || ctx.now > f.not_after || ctx.now < f.not_before {
        return None;
    }
    let places: Vec<String> = st.untrusted_at.iter().map(|(ep, why)| format!("{ep}: {why}")).collect();
    Some((
        Kind::UntrustedEndpoint,
        Severity::Warning,
        format!("served with a chain clients reject at {}", places.join("; ")),
        "fix what the server sends: the whole chain, a certificate for the name clients use, or an issuer they trust".into(),
    ))
}
