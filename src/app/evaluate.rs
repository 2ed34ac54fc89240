//! One evaluation: read the inventory, run the policy, step the alert state machine, write the
//! changes and their notifications in one transaction, then deliver what is due.

use crate::config::Settings;
use crate::model::RevocationStatus;
use crate::model::UnixTime;
use crate::notify::state::{self, Change};
use crate::notify::{self, Delivery};
use crate::policy::{self, CertState, Finding};
use crate::store::{Applied, CertIdentity, CertRow, Store, StoreError};
use sha2::{Digest as _, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Certificates read, checked and dropped together: an evaluation holds one batch of the
/// inventory, never all of it.
const BATCH: usize = 512;

/// The policy's findings over everything in the store at `now`. The inventory streams from the
/// store in batches of [`BATCH`]; what each certificate's inputs need of the rest of it (when its
/// key was first seen, whether a newer certificate replaces it) is gathered first in one light
/// pass ([`Fleet`]).
pub fn findings(store: &Store, settings: &Settings, now: UnixTime) -> Result<Vec<Finding>, StoreError> {
    let mut out = Vec::new();
    each_findings_batch(store, settings, now, |batch| {
        out.extend_from_slice(batch);
        Ok::<_, StoreError>(())
    })?;
    Ok(out)
}

/// [`findings`], handed to `each` batch by batch as they are made, so that a caller that
/// consumes them (evaluate) never holds all of them.
pub fn each_findings_batch<E: From<StoreError>>(
    store: &Store,
    settings: &Settings,
    now: UnixTime,
    mut each: impl FnMut(&[Finding]) -> Result<(), E>,
) -> Result<(), E> {
    let policy = &settings.policy;
    let fleet = Fleet::gather(store, now)?;
    let tags = store.source_tags()?;
    let untrusted = store.untrusted_endpoints()?;
    let not_ready = store.cert_manager_not_ready()?;
    let renewals = renewal_views(store, &settings.managed)?;
    let owners = super::owners::Owners::load(store, &settings.owners)?;
    let inputs = Inputs { fleet: &fleet, tags: &tags, now };
    // Managed certificates whose installed certificate is current.
    let mut installed_current: HashSet<String> = HashSet::new();
    let mut batch: Vec<CertRow> = Vec::with_capacity(BATCH);
    // The system's roots, read when the first certificate needs them.
    let mut trust: Option<super::public_trust::PublicTrust> = None;
    let mut run = |batch: &mut Vec<CertRow>| -> Result<(), E> {
        let ids: Vec<i64> = batch.iter().map(|c| c.id).collect();
        let revocation = store.revocation_statuses_of(&ids)?;
        let unknown_since = store.revocation_unknown_since_of(&ids)?;
        let public = publicly_trusted(store, &mut trust, batch, now)?;
        let ari = store.ari_watch_of(&ids)?;
        let states: Vec<CertState<'_>> = batch
            .iter()
            .map(|c| {
                let mut st = inputs.state(c, revocation.get(&c.id), unknown_since.get(&c.id).copied());
                if let Some(u) = untrusted.get(&c.facts.fingerprint.0) {
                    st.untrusted_at = u.clone();
                }
                if let Some(n) = not_ready.get(&c.id) {
                    st.cert_manager_not_ready = n.clone();
                }
                st.renewal = renewals.get(&c.facts.fingerprint.0).filter(|_| c.gone_since.is_none());
                st.publicly_trusted = public.contains(&c.id);
                st.ari = ari.get(&c.id);
                st
            })
            .collect();
        let mut found = policy::evaluate(policy, &states, now);
        drop(states);
        owners.attribute(&mut found, batch);
        each(&found)?;
        batch.clear();
        Ok(())
    };
    store.each_certificate(true, |c| {
        if c.gone_since.is_none() && renewals.contains_key(&c.facts.fingerprint.0) {
            installed_current.insert(c.facts.fingerprint.0.clone());
        }
        batch.push(c);
        if batch.len() == BATCH {
            run(&mut batch)?;
        }
        Ok::<_, E>(())
    })?;
    run(&mut batch)?;
    // Key problems (PKCS#11 keys) on the certificates they concern.
    let (review, keyed) = review_keys(store, &inputs, policy)?;
    let keyed_states: Vec<CertState<'_>> = keyed.iter().map(|c| inputs.state(c, None, None)).collect();
    let mut out = policy::keys::findings(&review, &keyed_states);
    drop(keyed_states);
    owners.attribute(&mut out, &keyed);
    // Key objects without a certificate, and trust roots: findings about the key itself.
    out.extend(policy::keys::subject_findings(&review, &tags));
    // Managed certificates whose issuance fails with no certificate in the inventory.
    for u in uninstalled(store, &settings.managed, &installed_current)? {
        out.extend(policy::renewal::failed_without_certificate(&u));
    }
    each(&out)
}

/// The policy's findings about one certificate at `now` (its page): the same checks as
/// [`findings`] (key objects on tokens aside), with the fleet-wide facts they need (when its key
/// was first seen, whether a newer certificate replaces it) from one light pass.
pub fn findings_of(store: &Store, settings: &Settings, now: UnixTime, cert: &CertRow) -> Result<Vec<Finding>, StoreError> {
    let fleet = Fleet::gather(store, now)?;
    let tags = store.source_tags()?;
    let renewals = renewal_views(store, &settings.managed)?;
    let inputs = Inputs { fleet: &fleet, tags: &tags, now };
    let revocation = store.revocation_statuses_of(&[cert.id])?;
    let unknown_since = store.revocation_unknown_since_of(&[cert.id])?;
    let mut st = inputs.state(cert, revocation.get(&cert.id), unknown_since.get(&cert.id).copied());
    if let Some(u) = store.untrusted_endpoints()?.remove(&cert.facts.fingerprint.0) {
        st.untrusted_at = u;
    }
    if let Some(n) = store.cert_manager_not_ready()?.remove(&cert.id) {
        st.cert_manager_not_ready = n;
    }
    st.renewal = renewals.get(&cert.facts.fingerprint.0).filter(|_| cert.gone_since.is_none());
    st.publicly_trusted = publicly_trusted(store, &mut None, std::slice::from_ref(cert), now)?.contains(&cert.id);
    let ari = store.ari_watch_of(&[cert.id])?;
    st.ari = ari.get(&cert.id);
    Ok(policy::evaluate(&settings.policy, &[st], now))
}

/// The ids of the certificates of `batch` that a lifetime check needs to know about and that
/// chain to a root of the system's trust store (read into `trust` the first time it is needed).
fn publicly_trusted(
    store: &Store,
    trust: &mut Option<super::public_trust::PublicTrust>,
    batch: &[CertRow],
    now: UnixTime,
) -> Result<HashSet<i64>, StoreError> {
    let ids: Vec<i64> =
        batch.iter().filter(|c| c.gone_since.is_none() && policy::lifetime_over_limit_candidate(&c.facts, now)).map(|c| c.id).collect();
    let mut out = HashSet::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let trust = trust.get_or_insert_with(super::public_trust::PublicTrust::load);
    for (c, der) in store.certificates_with_der(Some(&ids))? {
        if trust.is_public(store, &c, &der)? {
            out.insert(c.id);
        }
    }
    Ok(out)
}

/// The key review over the certificates it concerns (those on a token with a key, and those
/// sharing a key's public key), with those certificates.
fn review_keys(
    store: &Store,
    inputs: &Inputs<'_>,
    policy: &policy::PolicySpec,
) -> Result<(policy::keys::Review, Vec<CertRow>), StoreError> {
    let keys = store.keys(None)?;
    let token_certs = store.token_certificates()?;
    let ids: Vec<i64> = token_certs.iter().map(|c| c.cert_id).collect();
    let mut spkis: Vec<&str> = keys.iter().filter_map(|k| k.spki_sha256.as_deref()).collect();
    spkis.sort_unstable();
    spkis.dedup();
    let keyed = if keys.is_empty() && token_certs.is_empty() { Vec::new() } else { store.certificates_for_keys(&ids, &spkis)? };
    let states: Vec<CertState<'_>> = keyed.iter().map(|c| inputs.state(c, None, None)).collect();
    let mut review = policy::keys::review(&keys, &token_certs, &states);
    policy::keys::check_trust_roots(&mut review, &policy.expiry, inputs.now);
    policy::keys::check_trust_root_signatures(&mut review);
    drop(states);
    Ok((review, keyed))
}

/// The renewal state of each configured managed certificate with no current certificate in
/// the inventory.
fn uninstalled(
    store: &Store,
    managed: &[crate::config::managed::ManagedSpec],
    current: &HashSet<String>,
) -> Result<Vec<policy::renewal::Uninstalled>, StoreError> {
    let mut out = Vec::new();
    for m in managed {
        let Some(row) = store.renewal(&m.name)? else { continue };
        if row.fingerprint.as_ref().is_some_and(|fp| current.contains(fp)) {
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
pub fn key_review(store: &Store, policy: &policy::PolicySpec, now: UnixTime) -> Result<policy::keys::Review, StoreError> {
    // The review pairs keys with certificates by id and public key only: it needs no key age
    // nor supersession, so no pass over the inventory.
    let fleet = Fleet::default();
    let tags = store.source_tags()?;
    let inputs = Inputs { fleet: &fleet, tags: &tags, now };
    let mut review = review_keys(store, &inputs, policy)?.0;
    review.retired_keys = store.key_history(None)?.into_iter().filter(|k| k.gone_since.is_some()).collect();
    Ok(review)
}

/// A 256-bit digest standing for a key in the fleet maps (SHA-256: no two inputs share one).
type Digest = [u8; 32];

/// What each certificate's policy inputs need of the rest of the inventory, gathered in one
/// pass over [`CertIdentity`] rows (about 100 bytes per certificate, not the whole row).
#[derive(Debug, Default)]
pub struct Fleet {
    /// notBefore of the first certificate ever seen with each public key (gone ones included).
    key_first: HashMap<Digest, UnixTime>,
    /// The newest current, unexpired end-entity certificate per (subject, sorted names).
    newest: HashMap<Digest, Newest>,
}

#[derive(Debug)]
struct Newest {
    not_before: UnixTime,
    not_after: UnixTime,
    id: i64,
    fingerprint: String,
}

fn spki_digest(spki_sha256: &str) -> Digest {
    Sha256::digest(spki_sha256.as_bytes()).into()
}

/// The certificate's identity for supersession: its subject and its names, in any order.
fn ident_digest<S: AsRef<str>>(subject: &str, sans: &[S]) -> Digest {
    let mut sorted: Vec<&str> = sans.iter().map(AsRef::as_ref).collect();
    sorted.sort_unstable();
    let mut h = Sha256::new();
    // Length-prefixed, so that no two different lists hash the same bytes.
    for part in std::iter::once(subject).chain(sorted) {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

impl Fleet {
    /// Reads the aggregates from the store.
    pub fn gather(store: &Store, now: UnixTime) -> Result<Fleet, StoreError> {
        let mut fleet = Fleet::default();
        store.each_certificate_identity(|c| fleet.add(&c, now))?;
        Ok(fleet)
    }

    /// Counts one certificate in. Pure.
    pub fn add(&mut self, c: &CertIdentity, now: UnixTime) {
        let e = self.key_first.entry(spki_digest(&c.spki_sha256)).or_insert(c.not_before);
        *e = (*e).min(c.not_before);
        if c.gone || c.is_ca || c.not_after <= now {
            return;
        }
        let candidate = Newest { not_before: c.not_before, not_after: c.not_after, id: c.id, fingerprint: c.fingerprint.clone() };
        match self.newest.entry(ident_digest(&c.subject, &c.sans)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(candidate);
            }
            // The latest notBefore wins; on a tie, the first in listing order (notAfter, then
            // fingerprint), whatever order the rows come in.
            std::collections::hash_map::Entry::Occupied(mut o) => {
                let cur = o.get();
                if (candidate.not_before, std::cmp::Reverse((candidate.not_after, &candidate.fingerprint)))
                    > (cur.not_before, std::cmp::Reverse((cur.not_after, &cur.fingerprint)))
                {
                    o.insert(candidate);
                }
            }
        }
    }

    fn key_first_seen(&self, c: &CertRow) -> UnixTime {
        self.key_first.get(&spki_digest(&c.facts.spki_sha256)).copied().unwrap_or(c.facts.not_before)
    }

    /// The newer certificate that replaces `c`: (fingerprint, notBefore).
    fn superseded_by(&self, c: &CertRow) -> Option<(String, UnixTime)> {
        if c.gone_since.is_some() {
            return None;
        }
        let n = self.newest.get(&ident_digest(&c.facts.subject, &c.facts.sans))?;
        (n.id != c.id && n.not_before > c.facts.not_before).then(|| (n.fingerprint.clone(), n.not_before))
    }
}

/// What every certificate's policy inputs are built from.
struct Inputs<'a> {
    fleet: &'a Fleet,
    tags: &'a HashMap<String, Vec<String>>,
    now: UnixTime,
}

impl Inputs<'_> {
    /// One certificate's policy inputs (the source-specific ones left empty).
    fn state<'c>(&self, c: &'c CertRow, revocation: Option<&'c RevocationStatus>, unknown_since: Option<UnixTime>) -> CertState<'c> {
        let mut tags: Vec<String> = c.sources.iter().flat_map(|s| self.tags.get(s).cloned().unwrap_or_default()).collect();
        tags.sort();
        tags.dedup();
        CertState {
            cert: c,
            tags,
            revocation,
            revocation_unknown_since: unknown_since,
            key_first_seen: self.fleet.key_first_seen(c),
            superseded_by: self.fleet.superseded_by(c),
            untrusted_at: Vec::new(),
            cert_manager_not_ready: Vec::new(),
            renewal: None,
            publicly_trusted: false,
            ari: None,
        }
    }
}

/// The findings and the changes an evaluation would make, without making them.
pub fn plan(store: &Store, settings: &Settings, now: UnixTime) -> Result<(Vec<Finding>, Vec<Change>), StoreError> {
    let findings = findings(store, settings, now)?;
    let open = store.open_alerts()?;
    let silences = store.silences(now, false)?;
    let changes = state::step(&findings, &open, &silences, &settings.alerts.routes, now);
    Ok((findings, changes))
}

/// A key problem that no certificate's finding carries, as a dry run lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyProblem {
    /// A finding about the key itself will alert; otherwise (an orphan key whose certificate is
    /// deployed elsewhere) it is only listed.
    pub alerted: bool,
    pub key_id: Option<String>,
    pub label: Option<String>,
    pub location: String,
    pub name: String,
    pub problem: policy::keys::Problem,
    pub source: String,
    pub subject: String,
}

/// Key problems with no certificate to attach a finding to.
pub fn key_problems(store: &Store, policy: &policy::PolicySpec, now: UnixTime) -> Result<Vec<KeyProblem>, StoreError> {
    let review = key_review(store, policy, now)?;
    Ok(policy::keys::unattached(&review)
        .into_iter()
        .map(|(k, p)| KeyProblem {
            alerted: policy::keys::alerted(k, p, &review),
            key_id: k.key_id.clone(),
            label: k.label.clone(),
            location: k.location.clone(),
            name: policy::keys::key_name(k),
            problem: p.clone(),
            source: k.source.clone(),
            subject: policy::key_subject(&k.source, &k.location),
        })
        .collect())
}

/// A dry run of an evaluation, streamed: `batch` gets each batch of findings with, for each
/// finding, the notifications it would cause. Returns the alerts that would resolve, each with
/// the routes that would get the notice. Nothing is written.
pub fn plan_each<E: From<StoreError>>(
    store: &Store,
    settings: &Settings,
    now: UnixTime,
    mut batch: impl FnMut(&[Finding], Vec<Vec<state::Notify>>) -> Result<(), E>,
) -> Result<Vec<(i64, Vec<String>)>, E> {
    let open = store.open_alerts()?;
    let silences = store.silences(now, false)?;
    let mut stepper = state::Stepper::new(&open, &silences, &settings.alerts.routes, now);
    each_findings_batch(store, settings, now, |findings| {
        let mut planned: Vec<Vec<state::Notify>> = vec![Vec::new(); findings.len()];
        for c in stepper.step(findings) {
            if let Change::Open { finding, notify } | Change::Update { finding, notify, .. } = c {
                planned[finding].extend(notify);
            }
        }
        batch(findings, planned)
    })?;
    Ok(stepper
        .finish()
        .into_iter()
        .filter_map(|c| match c {
            Change::Resolve { alert_id, notify } => Some((alert_id, notify.into_iter().map(|n| n.route).collect())),
            _ => None,
        })
        .collect())
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub findings: usize,
    /// Findings counted by `severity` then `kind`.
    pub counts: std::collections::BTreeMap<String, std::collections::BTreeMap<String, usize>>,
    pub applied: Applied,
    pub delivery: Delivery,
}

impl Report {
    /// One line, as `certvigil evaluate` prints it and the daemon logs it.
    pub fn summary(&self) -> String {
        let ap = &self.applied;
        format!(
            "{} findings: {} alerts opened, {} resolved, {} escalated; {} notifications queued, {} sent, {} failed",
            self.findings, ap.opened, ap.resolved, ap.escalated, ap.notifications, self.delivery.sent, self.delivery.failed
        )
    }
}

/// Why an evaluation stopped.
#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Delivery(#[from] notify::DeliveryError),
}

/// Test hook, compiled only with the `failpoints` feature (the test command's; never in a
/// release or package build): set to `exit-after-outbox-write` to end the process (as
/// `kill -9` would) right after the notifications are committed and before any is sent, or to
/// `stop-after-outbox-write` to stop it there with SIGSTOP (a paused leader).
pub const FAULT_ENV: &str = "CERTVIGIL_FAULT";

/// Evaluates and applies, then delivers due notifications. Findings are stepped and applied
/// batch by batch inside one transaction: an evaluation holds one batch of findings, the open
/// alerts and their index, never every finding.
pub async fn evaluate(
    store: &Arc<Mutex<Store>>,
    settings: &Settings,
    now: UnixTime,
    fence: &crate::model::fence::Fence,
) -> Result<Report, EvaluateError> {
    let (total, applied, counts) = {
        let s = store.lock().unwrap_or_else(|p| p.into_inner());
        let open = s.open_alerts()?;
        let silences = s.silences(now, false)?;
        let mut stepper = state::Stepper::new(&open, &silences, &settings.alerts.routes, now);
        let mut tx = s.begin_alert_changes(now, &notify::payload::json)?;
        let mut counts: std::collections::BTreeMap<String, std::collections::BTreeMap<String, usize>> = Default::default();
        let mut total = 0;
        each_findings_batch(&s, settings, now, |batch| {
            tx.apply(&stepper.step(batch), batch)?;
            for f in batch {
                *counts.entry(f.severity.as_str().to_string()).or_default().entry(f.kind.as_str().to_string()).or_default() += 1;
            }
            total += batch.len();
            Ok::<_, StoreError>(())
        })?;
        tx.apply(&stepper.finish(), &[])?;
        (total, tx.commit()?, counts)
    };
    #[cfg(feature = "failpoints")]
    match std::env::var(FAULT_ENV).as_deref() {
        Ok("exit-after-outbox-write") => std::process::abort(),
        Ok("stop-after-outbox-write") => {
            tracing::warn!("test failpoint reached: stopping (SIGSTOP)");
            let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::STOP);
        }
        _ => {}
    }
    // With several daemons on the store, only the leader sends: the others (and a leader that
    // lost its lease meanwhile) leave the queued notifications to it.
    let delivery = if fence.is_leader() {
        notify::deliver(store, &settings.alerts, now, fence).await?
    } else {
        tracing::info!("not the leader: the queued notifications are left to the leader to send");
        notify::Delivery::default()
    };
    Ok(Report { findings: total, applied, counts, delivery })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RevocationState;
    use crate::policy::Kind;
    use crate::store::ObjectOutcome;

    const NOW: UnixTime = 1_800_000_000;
    const DAY: i64 = 86_400;

    fn identity(id: i64, fp: &str, subject: &str, sans: &[&str], not_before: UnixTime, not_after: UnixTime) -> CertIdentity {
        CertIdentity {
            id,
            fingerprint: fp.into(),
            subject: subject.into(),
            sans: sans.iter().map(|s| s.to_string()).collect(),
            spki_sha256: format!("key-{id}"),
            not_before,
            not_after,
            is_ca: false,
            gone: false,
        }
    }

    #[test]
    fn fleet_keeps_the_newest_per_subject_and_names_whatever_the_row_order() {
        let rows = vec![
            identity(1, "aa", "CN=a", &["DNS:a", "DNS:b"], NOW - 90 * DAY, NOW + 10 * DAY),
            identity(2, "bb", "CN=a", &["DNS:b", "DNS:a"], NOW - 5 * DAY, NOW + 80 * DAY),
            // Same notBefore as 2: the first in listing order (notAfter, fingerprint) stays.
            identity(3, "ab", "CN=a", &["DNS:a", "DNS:b"], NOW - 5 * DAY, NOW + 80 * DAY),
            // Newer, but expired, gone or a CA: never the replacement.
            identity(4, "cc", "CN=a", &["DNS:a", "DNS:b"], NOW - DAY, NOW - 1),
            CertIdentity { gone: true, ..identity(5, "dd", "CN=a", &["DNS:a", "DNS:b"], NOW - DAY, NOW + 80 * DAY) },
            CertIdentity { is_ca: true, ..identity(6, "ee", "CN=a", &["DNS:a", "DNS:b"], NOW - DAY, NOW + 80 * DAY) },
            // Other names: another identity.
            identity(7, "ff", "CN=a", &["DNS:a"], NOW, NOW + 80 * DAY),
        ];
        let mut orders = vec![rows.clone(), rows.iter().rev().cloned().collect::<Vec<_>>()];
        orders.push({
            let mut r = rows.clone();
            r.swap(1, 2);
            r
        });
        for order in orders {
            let mut fleet = Fleet::default();
            for r in &order {
                fleet.add(r, NOW);
            }
            let n = fleet.newest.get(&ident_digest("CN=a", &["DNS:b", "DNS:a"])).expect("newest");
            assert_eq!((n.id, n.fingerprint.as_str()), (3, "ab"), "order {:?}", order.iter().map(|r| r.id).collect::<Vec<_>>());
            assert_eq!(fleet.newest.get(&ident_digest("CN=a", &["DNS:a"])).map(|n| n.id), Some(7));
            assert_eq!(fleet.newest.len(), 2);
        }
        // Names are hashed as a list, not as a concatenation.
        assert_ne!(ident_digest("CN=a", &["DNS:ab"]), ident_digest("CN=a", &["DNS:a", "b"]));
        assert_ne!(ident_digest("CN=a", &["x"]), ident_digest("CN=ax", &[] as &[&str]));
    }

    #[test]
    fn key_age_runs_from_the_first_certificate_with_the_key_gone_ones_included() {
        let mut fleet = Fleet::default();
        let mut old = identity(1, "aa", "CN=a", &[], NOW - 900 * DAY, NOW - 500 * DAY);
        old.spki_sha256 = "k".into();
        old.gone = true;
        let mut new = identity(2, "bb", "CN=b", &[], NOW - 10 * DAY, NOW + 80 * DAY);
        new.spki_sha256 = "k".into();
        fleet.add(&new, NOW);
        fleet.add(&old, NOW);
        assert_eq!(fleet.key_first.get(&spki_digest("k")), Some(&(NOW - 900 * DAY)));
        assert_eq!(fleet.key_first.len(), 1);
    }

    /// 1,200 certificates, three batches and more: every old certificate is superseded by its
    /// own newer one and every revoked one is found, whichever batch holds which.
    #[test]
    fn findings_stream_in_batches_and_miss_nothing_across_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let pairs = 600usize;
        let at = |secs: i64| time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
        let mut w = store.begin_scan(NOW, &["files".to_string()]).unwrap();
        w.register_source("files", "files", &[]).unwrap();
        let mut fingerprints = Vec::new();
        for i in 0..pairs {
            let name = format!("host{i}.example.test");
            let mut fps = Vec::new();
            for (age, serial) in [(100, 2 * i as u64 + 1), (10, 2 * i as u64 + 2)] {
                let mut params = rcgen::CertificateParams::new(vec![name.clone()]).unwrap();
                params.distinguished_name.push(rcgen::DnType::CommonName, name.clone());
                params.not_before = at(NOW - age * DAY);
                params.not_after = at(NOW + (200 - age) * DAY);
                params.serial_number = Some(rcgen::SerialNumber::from(serial));
                let der = params.self_signed(&key).unwrap().der().to_vec();
                let parsed = crate::x509::parse_object(&der, &[]);
                fps.push(parsed.certs[0].facts.fingerprint.0.clone());
                let location = format!("/pki/{name}-{age}.der");
                w.record("files", &location, None, ObjectOutcome::Parsed { stamp: "s", content_sha256: "00", parsed: &parsed }).unwrap();
            }
            fingerprints.push(fps);
        }
        w.finish().unwrap();
        let id_of: HashMap<String, i64> = store.certificates(false).unwrap().into_iter().map(|c| (c.facts.fingerprint.0, c.id)).collect();
        assert_eq!(id_of.len(), 2 * pairs);
        let revoked: Vec<i64> = (0..pairs).step_by(7).map(|i| id_of[&fingerprints[i][0]]).collect();
        let statuses: Vec<(i64, RevocationStatus)> = revoked
            .iter()
            .map(|&id| {
                let mut st = RevocationStatus::unknown("x", NOW);
                (st.state, st.reason, st.method, st.revoked_at) =
                    (RevocationState::Revoked, Some("superseded".into()), "crl".into(), Some(NOW - DAY));
                (id, st)
            })
            .collect();
        store.save_revocations(&statuses).unwrap();

        let settings = crate::config::parse_str("sources: []\n", "t.yaml", dir.path()).unwrap();
        let found = findings(&store, &settings, NOW).unwrap();
        let of_kind = |k: Kind| found.iter().filter(|f| f.kind == k).collect::<Vec<_>>();
        let superseded = of_kind(Kind::Superseded);
        assert_eq!(superseded.len(), pairs);
        for fps in &fingerprints {
            let f = superseded.iter().find(|f| f.fingerprint == fps[0]).expect("the older certificate is superseded");
            assert!(f.reason.contains(&fps[1][..12]), "{}", f.reason);
        }
        let mut revoked_found: Vec<i64> = of_kind(Kind::Revoked).iter().map(|f| f.cert_id.unwrap()).collect();
        revoked_found.sort_unstable();
        assert_eq!(revoked_found, revoked);
    }
}
