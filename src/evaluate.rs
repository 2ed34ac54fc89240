//! One evaluation: read the inventory, run the policy, step the alert state machine, write the
//! changes and their notifications in one transaction, then deliver what is due.

use crate::config::Settings;
use crate::model::UnixTime;
use crate::notify::state::{self, Change};
use crate::notify::{self, Delivery};
use crate::policy::{self, CertState, Finding};
use crate::store::{Applied, CertRow, Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The policy's findings over everything in the store at `now`.
pub fn findings(store: &Store, settings: &Settings, now: UnixTime) -> Result<Vec<Finding>, StoreError> {
    let policy = &settings.policy;
    let certs = store.certificates(true)?;
    let tags = store.source_tags()?;
    let revocation = store.revocation_statuses()?;
    let unknown_since = store.revocation_unknown_since()?;
    let untrusted = store.untrusted_endpoints()?;
    let not_ready = store.cert_manager_not_ready()?;
    let renewals = renewal_views(store, &settings.managed)?;
    let mut states = states(&certs, &tags, &revocation, &unknown_since, now);
    for st in &mut states {
        if let Some(u) = untrusted.get(&st.cert.facts.fingerprint.0) {
            st.untrusted_at = u.clone();
        }
        if let Some(n) = not_ready.get(&st.cert.id) {
            st.cert_manager_not_ready = n.clone();
        }
        st.renewal = renewals.get(&st.cert.facts.fingerprint.0).filter(|_| st.cert.gone_since.is_none());
    }
    let mut out = policy::evaluate(policy, &states, now);
    // Key problems (PKCS#11 keys) on the certificates they concern.
    let mut review = policy::keys::review(&store.keys(None)?, &store.token_certificates()?, &states);
    policy::keys::check_trust_roots(&mut review, &policy.expiry, now);
    out.extend(policy::keys::findings(&review, &states));
    // Key objects without a certificate, and trust roots: findings about the key itself.
    out.extend(policy::keys::subject_findings(&review, &tags));
    // Managed certificates whose issuance fails with no certificate in the inventory.
    let current: std::collections::HashSet<&str> =
        certs.iter().filter(|c| c.gone_since.is_none()).map(|c| c.facts.fingerprint.0.as_str()).collect();
    for u in uninstalled(store, &settings.managed, &current)? {
        out.extend(policy::renewal::failed_without_certificate(&u));
    }
    Ok(out)
}

/// The renewal state of each configured managed certificate with no current certificate in
/// the inventory.
fn uninstalled(
    store: &Store,
    managed: &[crate::config::managed::ManagedSpec],
    current: &std::collections::HashSet<&str>,
) -> Result<Vec<policy::renewal::Uninstalled>, StoreError> {
    let mut out = Vec::new();
    for m in managed {
        let Some(row) = store.renewal(&m.name)? else { continue };
        if row.fingerprint.as_deref().is_some_and(|fp| current.contains(fp)) {
            continue;
        }
        out.push(policy::renewal::Uninstalled {
            name: m.name.clone(),
            failures: row.failures,
            last_error: row.last_error.clone(),
            next_attempt: row.next_attempt,
            installed: row.fingerprint.clone(),
        });
    }
    Ok(out)
}

/// The renewal state of each configured managed certificate, by the fingerprint of what it has
/// installed (the engine clears the ARI window when that changes, so the window is this
/// certificate's).
fn renewal_views(
    store: &Store,
    managed: &[crate::config::managed::ManagedSpec],
) -> Result<HashMap<String, policy::renewal::RenewalView>, StoreError> {
    let mut out = HashMap::new();
    for m in managed {
        let Some(row) = store.renewal(&m.name)? else { continue };
        let Some(fp) = row.fingerprint.clone() else { continue };
        let view = policy::renewal::RenewalView {
            name: m.name.clone(),
            failures: row.failures,
            last_error: row.last_error.clone(),
            next_attempt: row.next_attempt,
            renew_at: row.renew_at,
            ari_end: row.ari_end,
            alert_margin: m.alert_margin.as_secs() as i64,
        };
        out.insert(fp, view);
    }
    Ok(out)
}

/// Every current key with the certificates it pairs with and its problems, and the token
/// certificates without a key (`certvigil keys`, `plan`).
pub fn key_review(store: &Store, policy: &policy::PolicySettings, now: UnixTime) -> Result<policy::keys::Review, StoreError> {
    let certs = store.certificates(true)?;
    let tags = store.source_tags()?;
    let (revocation, unknown_since) = (HashMap::new(), HashMap::new());
    let states = states(&certs, &tags, &revocation, &unknown_since, now);
    let mut review = policy::keys::review(&store.keys(None)?, &store.token_certificates()?, &states);
    policy::keys::check_trust_roots(&mut review, &policy.expiry, now);
    Ok(review)
}

/// Builds each certificate's policy inputs. Pure.
pub fn states<'a>(
    certs: &'a [CertRow],
    tags: &HashMap<String, Vec<String>>,
    revocation: &'a HashMap<i64, crate::model::RevocationStatus>,
    unknown_since: &HashMap<i64, UnixTime>,
    now: UnixTime,
) -> Vec<CertState<'a>> {
    // Key age runs from the first certificate ever seen with the key.
    let mut key_first: HashMap<&str, UnixTime> = HashMap::new();
    for c in certs {
        let e = key_first.entry(c.facts.spki_sha256.as_str()).or_insert(c.facts.not_before);
        *e = (*e).min(c.facts.not_before);
    }
    // The newest current, unexpired end-entity certificate per (subject, names).
    let ident = |c: &CertRow| {
        let mut sans = c.facts.sans.clone();
        sans.sort();
        (c.facts.subject.clone(), sans)
    };
    let mut newest: HashMap<(String, Vec<String>), &CertRow> = HashMap::new();
    for c in certs.iter().filter(|c| c.gone_since.is_none() && !c.facts.is_ca && c.facts.not_after > now) {
        let e = newest.entry(ident(c)).or_insert(c);
        if c.facts.not_before > e.facts.not_before {
            *e = c;
        }
    }
    certs
        .iter()
        .map(|c| {
            let mut t: Vec<String> = c.sources.iter().flat_map(|s| tags.get(s).cloned().unwrap_or_default()).collect();
            t.sort();
            t.dedup();
            let superseded_by = newest
                .get(&ident(c))
                .filter(|n| n.id != c.id && n.facts.not_before > c.facts.not_before && c.gone_since.is_none())
                .map(|n| (n.facts.fingerprint.0.clone(), n.facts.not_before));
            CertState {
                cert: c,
                tags: t,
                revocation: revocation.get(&c.id),
                revocation_unknown_since: unknown_since.get(&c.id).copied(),
                key_first_seen: key_first.get(c.facts.spki_sha256.as_str()).copied().unwrap_or(c.facts.not_before),
                superseded_by,
                untrusted_at: Vec::new(),
                cert_manager_not_ready: Vec::new(),
                renewal: None,
            }
        })
        .collect()
}

/// The findings and the changes an evaluation would make, without making them.
pub fn plan(store: &Store, settings: &Settings, now: UnixTime) -> Result<(Vec<Finding>, Vec<Change>), StoreError> {
    let findings = findings(store, settings, now)?;
    let open = store.open_alerts()?;
    let silences = store.silences(now, false)?;
    let changes = state::step(&findings, &open, &silences, &settings.alerts.routes, now);
    Ok((findings, changes))
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub findings: usize,
    /// Findings counted by `severity` then `kind`.
    pub counts: std::collections::BTreeMap<String, std::collections::BTreeMap<String, usize>>,
    pub applied: Applied,
    pub delivery: Delivery,
}

/// Test hook: set to `exit-after-outbox-write` to end the process (as `kill -9` would) right
/// after the notifications are committed and before any is sent.
pub const FAULT_ENV: &str = "CERTVIGIL_FAULT";

/// Evaluates and applies, then delivers due notifications.
pub async fn evaluate(store: &Arc<Mutex<Store>>, settings: &Settings, now: UnixTime) -> Result<Report, StoreError> {
    let applied = {
        let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
        let (findings, changes) = plan(&s, settings, now)?;
        let applied = s.apply_alert_changes(&changes, &findings, now)?;
        let mut counts: std::collections::BTreeMap<String, std::collections::BTreeMap<String, usize>> = Default::default();
        for f in &findings {
            *counts.entry(f.severity.as_str().to_string()).or_default().entry(f.kind.as_str().to_string()).or_default() += 1;
        }
        (findings.len(), applied, counts)
    };
    if std::env::var(FAULT_ENV).as_deref() == Ok("exit-after-outbox-write") {
        std::process::abort();
    }
    let delivery = notify::deliver(store, &settings.alerts, now).await?;
    Ok(Report { findings: applied.0, applied: applied.1, counts: applied.2, delivery })
}
