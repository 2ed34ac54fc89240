//! Runs the renewal of managed certificates: reads each one's stored state and installed
//! certificate, asks the CA for renewal information (RFC 9773) when it is time to, decides
//! ([`super::decide`]), runs or resumes the ACME order while recording every step in the
//! store, installs, and records the outcome (state row, audit log). `certvigil renew` and the
//! daemon's `renew` job both call [`run_all`].
//!
//! Install targets: the files, then the Kubernetes Secret (`install.kubernetes_secret`). The
//! installed certificate the decision looks at is the files' when there are files, else the
//! Secret's. When both are configured and the Secret holds another certificate than the files
//! (its write failed after the files were replaced, or someone changed it), the next run past
//! any backoff writes the files' certificate into the Secret without contacting the CA.
//!
//! Crash safety: the order URL is stored as soon as the order exists, the new key is written
//! (0600, `<state>/acme/pending/`) before the order is finalized, and the downloaded chain
//! before anything is installed. The next run resumes from whatever was recorded; a chain
//! already downloaded is installed without contacting the CA.

use super::{Decision, Inputs, Reason, backoff_delay, decide};
use crate::config::managed::{KeyRotation, ManagedSpec};
use crate::install::files::InstallError;
use crate::install::kubernetes::{SecretInstallError, SecretInstalled, SecretTarget};
use crate::issuers::acme::{AcmeError, Journal, OrderDone, OrderPlan, Session, error_chain};
use crate::model::{CertFacts, UnixTime, display, format_time};
use crate::store::{RenewalRow, Store, StoreError};
use std::path::{Path, PathBuf};

/// Why the renewal of a managed certificate failed. The text (with its causes, as
/// [`error_chain`] prints them) is the outcome's `error`, the row's `last_error` and the audit
/// log's.
#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ACME account, order or certificate.
    #[error(transparent)]
    Acme(#[from] AcmeError),
    #[error("cannot read the installed certificate: {reason}")]
    ReadSecret { reason: SecretInstallError },
    #[error("cannot read the downloaded chain {path}")]
    ReadChain {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the pending key {path}")]
    ReadPendingKey {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install the files' certificate in Secret {secret}: {reason}")]
    SecretMaterial { secret: String, reason: InstallError },
    #[error(transparent)]
    Secret(#[from] SecretInstallError),
    #[error("serial {serial} installed in the files, not in the Secret (retried at the next run): {reason}")]
    SecretBehind { serial: String, reason: SecretInstallError },
    #[error("not installed: {reason}")]
    NotInstalled { reason: InstallError },
}

type Result<T, E = RenewError> = std::result::Result<T, E>;

/// Test hook (used by `tests/it_acme/acme.rs`), compiled only with the `failpoints` feature (the test
/// command's; never in a release or package build): `renew-after-order`,
/// `renew-after-download` or `revoke-after-ca` ends the process with `abort()` — no
/// destructors, no flushing, as `kill -9` would — right after that step has been recorded.
pub const FAILPOINT_ENV: &str = "CERTVIGIL_FAILPOINT";

#[cfg(feature = "failpoints")]
pub(crate) fn failpoint(name: &str) {
    if std::env::var(FAILPOINT_ENV).as_deref() == Ok(name) {
        tracing::warn!(failpoint = name, "test failpoint reached: aborting");
        std::process::abort();
    }
}

#[cfg(not(feature = "failpoints"))]
pub(crate) fn failpoint(_: &str) {}

/// How a run is asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Renew even when not due, and ignore backoff.
    pub force: bool,
    /// Create the order and get the authorizations valid, without finalizing; nothing is stored.
    pub dry_run: bool,
}

/// What happened to one managed certificate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Renewed,
    NotDue,
    Backoff,
    Failed,
    /// Dry run: the order is ready to be finalized.
    WouldRenew,
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Renewed => "renewed",
            Action::NotDue => "not-due",
            Action::Backoff => "backoff",
            Action::Failed => "failed",
            Action::WouldRenew => "would-renew",
        }
    }
}

/// The outcome for one managed certificate: a line for people, fields for the job summary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CertOutcome {
    pub name: String,
    pub action: Action,
    /// Why it was renewed (or would be), or when it is due.
    pub reason: String,
    pub serial: Option<String>,
    pub not_after: Option<UnixTime>,
    pub error: Option<String>,
    /// Consecutive failures after this run.
    pub failures: i64,
    /// Backoff: no attempt before this.
    pub next_attempt: Option<UnixTime>,
    pub order_url: Option<String>,
    pub resumed: bool,
}

impl CertOutcome {
    fn new(name: &str, action: Action, reason: String) -> CertOutcome {
        CertOutcome {
            name: name.to_string(),
            action,
            reason,
            serial: None,
            not_after: None,
            error: None,
            failures: 0,
            next_attempt: None,
            order_url: None,
            resumed: false,
        }
    }

    /// One line for people, times in RFC 3339 with their distance from `now` and serials as
    /// `model::display` prints them everywhere.
    pub fn line(&self, now: UnixTime) -> String {
        let serial = self.serial.as_deref().map(display::serial);
        match self.action {
            Action::Renewed => format!(
                "{}: renewed ({}): serial {}, expires {}",
                self.name,
                self.reason,
                serial.as_deref().unwrap_or("?"),
                self.not_after.map(|t| display::when(t, now)).unwrap_or_else(|| "?".into())
            ),
            Action::NotDue => format!("{}: not due ({})", self.name, self.reason),
            Action::Backoff => {
                let installed = match (serial, self.not_after) {
                    (Some(s), Some(t)) => format!("installed: serial {s}, expires {}", display::when(t, now)),
                    _ => "nothing installed yet".to_string(),
                };
                let last = self.error.as_deref().map(|e| format!("; last error: {e}")).unwrap_or_default();
                format!("{}: {} ({installed}){last}", self.name, self.reason)
            }
            Action::Failed => format!("{}: renewal failed: {}", self.name, self.error.as_deref().unwrap_or("")),
            Action::WouldRenew => format!("{}: would renew ({})", self.name, self.reason),
        }
    }
}

/// Where the pending key and chain of `name` are kept.
pub fn pending_paths(state_dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let dir = state_dir.join("acme").join("pending");
    (dir.join(format!("{name}.key.pem")), dir.join(format!("{name}.chain.pem")))
}

/// Records each order step in the renewal row, committed before the next step.
struct StoreJournal<'a> {
    store: &'a mut Store,
    row: &'a mut RenewalRow,
    directory: &'a str,
    now: UnixTime,
}

impl Journal for StoreJournal<'_> {
    fn order_created(&mut self, url: &str) -> Result<(), StoreError> {
        self.row.order_url = Some(url.to_string());
        self.row.order_directory = Some(self.directory.to_string());
        self.row.pending_chain = None;
        self.row.pending_key = None;
        self.row.state = "in-flight".into();
        self.store.put_renewal(self.row, self.now)?;
        failpoint("renew-after-order");
        Ok(())
    }

    fn key_saved(&mut self, path: &Path) -> Result<(), StoreError> {
        self.row.pending_key = Some(path.display().to_string());
        self.store.put_renewal(self.row, self.now)?;
        Ok(())
    }

    fn chain_saved(&mut self, path: &Path) -> Result<(), StoreError> {
        self.row.pending_chain = Some(path.display().to_string());
        self.store.put_renewal(self.row, self.now)?;
        failpoint("renew-after-download");
        Ok(())
    }
}

/// Brings the row in line with what is installed: a different certificate (renewed by hand,
/// restored from backup) starts a new schedule.
/// Digest of everything configured for `spec` (secret references, never their values).
fn spec_digest(spec: &ManagedSpec) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(format!("{spec:?}").as_bytes()))
}

fn sync_installed(row: &mut RenewalRow, installed: Option<&CertFacts>) {
    let fp = installed.map(|c| c.fingerprint.0.clone());
    if row.fingerprint != fp {
        row.fingerprint = fp;
        row.serial = installed.map(|c| c.serial.clone());
        row.not_after = installed.map(|c| c.not_after);
        row.renew_at = None;
        row.ari_cert_id = None;
        row.ari_start = None;
        row.ari_end = None;
        row.ari_explanation = None;
        row.ari_next_poll = None;
    }
}

/// A uniformly random draw for the choice inside an ARI window (scheduler side: the decision
/// itself stays deterministic).
fn random_u64() -> u64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    u64::from_le_bytes(b)
}

/// Asks the CA for the installed certificate's renewal window when it is time to, and stores
/// it; a new window gets a new random renewal time inside it.
async fn poll_ari(session: &Session, row: &mut RenewalRow, installed: &CertFacts, name: &str, now: UnixTime) {
    let Some(id) = super::cert_id_of(installed) else { return };
    match session.renewal_info(&id).await {
        Ok(Some(w)) => {
            let changed = row.ari_cert_id.as_deref() != Some(id.as_str()) || row.ari_start != Some(w.start) || row.ari_end != Some(w.end);
            row.ari_cert_id = Some(id.clone());
            row.ari_start = Some(w.start);
            row.ari_end = Some(w.end);
            row.ari_explanation = w.explanation_url.clone();
            row.ari_next_poll = Some(super::next_ari_poll(now, w.retry_after));
            if changed || !row.renew_at.is_some_and(|t| (w.start..=w.end).contains(&t)) {
                row.renew_at = Some(super::pick_in_window(w.start, w.end, random_u64()));
            }
            tracing::info!(
                cert = name, ari_id = %id, start = %format_time(w.start), end = %format_time(w.end),
                renew_at = %row.renew_at.map(format_time).unwrap_or_default(), explanation = w.explanation_url.as_deref().unwrap_or(""),
                "renewal window from the CA"
            );
        }
        Ok(None) => {
            row.ari_cert_id = Some(id);
            row.ari_start = None;
            row.ari_end = None;
            row.ari_explanation = None;
            row.ari_next_poll = Some(now + super::ARI_UNSUPPORTED_RECHECK);
        }
        Err(e) => {
            // Not a renewal failure: the lifetime rule or the last window still applies.
            tracing::warn!(cert = name, ari_id = %id, error = %error_chain(&e), "cannot fetch renewal information");
            row.ari_next_poll = Some(super::next_ari_poll(now, 3600));
        }
    }
}

/// Runs the renewal of every spec in turn at `now`.
pub async fn run_all(
    specs: &[&ManagedSpec],
    store: &mut Store,
    state_dir: &Path,
    now: UnixTime,
    opts: Options,
    fence: &crate::model::fence::Fence,
) -> Vec<CertOutcome> {
    let mut out = Vec::new();
    for spec in specs {
        // With several daemons, only the leader orders and installs: a daemon that lost the
        // lease (or slept through it) stops before the next certificate.
        if let Err(e) = still_leader(store, fence) {
            tracing::warn!(cert = %spec.name, error = %e, "renewals stop here: another daemon leads");
            break;
        }
        // A revocation an earlier run left unfinished goes first (it may reissue).
        if !opts.dry_run {
            match super::revoke::resume(spec, store, state_dir, now).await {
                Ok(Some(r)) => tracing::info!(cert = %spec.name, serial = %r.serial, step = %r.step, "revocation resumed"),
                Ok(None) => {}
                Err(e) => tracing::error!(cert = %spec.name, error = %error_chain(&e), "cannot resume the revocation"),
            }
        }
        let o = match run_one(spec, store, state_dir, now, opts).await {
            Ok(o) => o,
            Err(e) => {
                // Only the store itself failing ends up here.
                let mut o = CertOutcome::new(&spec.name, Action::Failed, String::new());
                o.error = Some(error_chain(&e));
                o
            }
        };
        out.push(o);
    }
    out
}

/// The fence's grant, then the lease's token in the store.
fn still_leader(store: &Store, fence: &crate::model::fence::Fence) -> std::result::Result<(), String> {
    match fence.token() {
        Err(e) => Err(e.to_string()),
        Ok(None) => Ok(()),
        Ok(Some(token)) => match store.lease_current(crate::model::fence::LEADER_LEASE, token) {
            Ok(true) => Ok(()),
            Ok(false) => {
                fence.revoke();
                Err(crate::model::fence::NotLeader.to_string())
            }
            Err(e) => Err(format!("cannot check the leader lease: {e}")),
        },
    }
}

/// Runs the renewal of one managed certificate at `now`.
pub async fn run_one(spec: &ManagedSpec, store: &mut Store, state_dir: &Path, now: UnixTime, opts: Options) -> Result<CertOutcome> {
    let name = spec.name.as_str();
    let mut row = store.renewal(name)?.unwrap_or_else(|| RenewalRow::new(name));
    // A changed entry (a fixed hook, a new EAB key, another CA) deserves a prompt new attempt,
    // as cert-manager does when a Certificate's spec changes: failures and backoff start afresh.
    let digest = spec_digest(spec);
    if row.spec_digest.as_deref() != Some(digest.as_str()) {
        if row.failures > 0 {
            tracing::info!(cert = name, failures = row.failures, "the managed entry changed: its failures and backoff start afresh");
        }
        row.failures = 0;
        row.next_attempt = None;
        row.spec_digest = Some(digest);
    }
    // Backoff first: nothing, not even renewal information, is asked of the CA (nor is the
    // cluster read). The rule only looks at the row.
    let pre = Inputs { renew_before: None, installed: None, row: &row, revoked: false, force: opts.force };
    if let Decision::Backoff { until, failures } = decide(&pre, now) {
        return Ok(backoff(name, until, failures, &row));
    }
    let files_leaf = if spec.install.has_files() { crate::install::files::current_leaf(&spec.install) } else { None };
    let secret_leaf = match &spec.install.kubernetes_secret {
        None => None,
        Some(t) => match crate::install::kubernetes::current_leaf(t).await {
            Ok(leaf) => Some(leaf),
            Err(reason) => {
                let e = RenewError::ReadSecret { reason };
                return failed(spec, store, &mut row, &"reading the Secret install target", e, now, opts);
            }
        },
    };
    let installed = if spec.install.has_files() { files_leaf } else { secret_leaf.clone().flatten() };
    sync_installed(&mut row, installed.as_ref());
    // Files and Secret disagree, nothing is in flight: the Secret gets the files' certificate.
    if !opts.dry_run
        && !opts.force
        && row.order_url.is_none()
        && row.pending_chain.is_none()
        && let (Some(target), Some(in_secret), Some(in_files)) = (&spec.install.kubernetes_secret, &secret_leaf, &installed)
        && spec.install.has_files()
        && in_secret.as_ref().map(|c| &c.fingerprint) != Some(&in_files.fingerprint)
        && in_files.not_before <= now + 300
        && now <= in_files.not_after
    {
        return sync_secret(spec, store, &mut row, target, now).await;
    }
    // Revoked per the store's CRL/OCSP status, or by certvigil itself (`certvigil revoke`),
    // which is known before any scan puts the certificate in the inventory.
    let revoked = match installed.as_ref() {
        Some(c) => {
            store.is_revoked(&c.fingerprint.0)?
                || (row.revoke_fingerprint.as_deref() == Some(c.fingerprint.0.as_str())
                    && matches!(row.revoke_step.as_deref(), Some("revoked" | "done")))
        }
        None => false,
    };
    // The key of a revoked certificate is never used again (it may be the reason it was
    // revoked): its renewal always generates a new one, whatever the rotation policy.
    let fresh_key;
    let spec = if revoked && spec.rotate != KeyRotation::Always {
        fresh_key = ManagedSpec { rotate: KeyRotation::Always, ..spec.clone() };
        &fresh_key
    } else {
        spec
    };
    let inputs = |row: &RenewalRow| -> Decision {
        let i = Inputs {
            renew_before: spec.renew_before.map(|d| d.as_secs() as i64),
            installed: installed.as_ref(),
            row,
            revoked,
            force: opts.force,
        };
        decide(&i, now)
    };

    // A chain downloaded by an interrupted run is installed without contacting the CA.
    if !opts.dry_run
        && let (Some(chain_path), Some(key_path)) = (row.pending_chain.clone(), row.pending_key.clone())
    {
        let o = install_pending(spec, store, &mut row, Path::new(&chain_path), Path::new(&key_path), now).await;
        return Ok(o);
    }

    let mut session = None;
    let in_flight = row.order_url.is_some();
    if !opts.force
        && !in_flight
        && let Some(c) = installed.as_ref()
        && super::ari_poll_due(&row, Some(c), now)
    {
        match Session::open(spec, state_dir).await {
            Ok(s) => {
                poll_ari(&s, &mut row, c, name, now).await;
                session = Some(s);
            }
            Err(e) => tracing::warn!(cert = name, error = %error_chain(&e), "cannot reach the ACME server for renewal information"),
        }
    }
    let decision = inputs(&row);
    let reason = match decision {
        Decision::Renew(r) => r,
        Decision::Wait { until, ari } => {
            if !opts.dry_run {
                row.renew_at = Some(until);
                row.state = "scheduled".into();
                store.put_renewal(&row, now)?;
            }
            let what = if ari { "inside the CA's renewal window" } else { "by the lifetime rule" };
            let mut o = CertOutcome::new(name, Action::NotDue, format!("renewal at {} {what}", format_time(until)));
            o.failures = row.failures;
            return Ok(o);
        }
        Decision::Backoff { until, failures } => return Ok(backoff(name, until, failures, &row)),
    };
    let session = match session {
        Some(s) => s,
        None => match Session::open(spec, state_dir).await {
            Ok(s) => s,
            Err(e) => return failed(spec, store, &mut row, &reason, e.into(), now, opts),
        },
    };
    // `replaces` only when the CA offers ARI for the installed certificate (RFC 9773 §5).
    let replaces = installed.as_ref().filter(|c| super::ari_window(&row, c).is_some()).and_then(super::cert_id_of);
    let (key_path, chain_path) = pending_paths(state_dir, name);
    let order_url = row.order_url.clone().filter(|_| row.order_directory.as_deref() == Some(spec.directory.as_str()));
    let plan = OrderPlan {
        resume: order_url.as_deref(),
        key_path: key_path.clone(),
        chain_path,
        replaces: replaces.as_deref(),
        dry_run: opts.dry_run,
        now,
    };
    row.last_attempt = Some(now);
    let done = if opts.dry_run {
        session.order(spec, &plan, &mut crate::issuers::acme::NoJournal).await
    } else {
        let mut journal = StoreJournal { store, row: &mut row, directory: &spec.directory, now };
        session.order(spec, &plan, &mut journal).await
    };
    match done {
        Ok(OrderDone::Authorized { order_url, resumed }) => {
            let mut o = CertOutcome::new(
                name,
                Action::WouldRenew,
                format!("{reason}; order {order_url} is ready to finalize, not finalized (dry run)"),
            );
            (o.order_url, o.resumed) = (Some(order_url), resumed);
            Ok(o)
        }
        Ok(OrderDone::Issued { chain_pem, key_pem, order_url, resumed, .. }) => {
            let mut o = finish_install(spec, store, &mut row, &chain_pem, &key_pem, &reason.to_string(), now, session.new_account).await;
            (o.order_url, o.resumed) = (Some(order_url), resumed);
            Ok(o)
        }
        Err(e) if opts.dry_run => {
            let mut o = CertOutcome::new(name, Action::Failed, reason.to_string());
            o.error = Some(error_chain(&e));
            Ok(o)
        }
        Err(e) => failed(spec, store, &mut row, &reason, e.into(), now, opts),
    }
}

fn backoff(name: &str, until: UnixTime, failures: i64, row: &RenewalRow) -> CertOutcome {
    let mut o = CertOutcome::new(name, Action::Backoff, format!("backing off after {failures} failure(s) until {}", format_time(until)));
    (o.failures, o.next_attempt, o.error) = (failures, Some(until), row.last_error.clone());
    // What is installed, as the last run that read it recorded.
    (o.serial, o.not_after) = (row.serial.clone(), row.not_after);
    o
}

fn failed(
    spec: &ManagedSpec,
    store: &mut Store,
    row: &mut RenewalRow,
    reason: &dyn std::fmt::Display,
    e: RenewError,
    now: UnixTime,
    opts: Options,
) -> Result<CertOutcome> {
    let msg = error_chain(&e);
    if opts.dry_run {
        let mut o = CertOutcome::new(&spec.name, Action::Failed, reason.to_string());
        o.error = Some(msg);
        return Ok(o);
    }
    row.failures += 1;
    row.next_attempt = Some(now + backoff_delay(row.failures));
    row.last_attempt = Some(now);
    row.last_outcome = Some("failed".into());
    row.last_error = Some(msg.clone());
    row.state = "failed".into();
    store.put_renewal(row, now)?;
    tracing::error!(
        cert = %spec.name, failures = row.failures, next_attempt = %row.next_attempt.map(format_time).unwrap_or_default(),
        error = %msg, "renewal failed"
    );
    let detail = serde_json::json!({
        "name": spec.name, "reason": reason.to_string(), "directory": spec.directory, "error": msg,
        "failures": row.failures, "next_attempt": row.next_attempt, "order_url": row.order_url,
    });
    store.audit(now, "renew-failed", "renewal", &detail)?;
    let mut o = CertOutcome::new(&spec.name, Action::Failed, reason.to_string());
    (o.error, o.failures, o.next_attempt, o.order_url) = (Some(msg), row.failures, row.next_attempt, row.order_url.clone());
    Ok(o)
}

/// Installs a chain downloaded by an interrupted run.
async fn install_pending(
    spec: &ManagedSpec,
    store: &mut Store,
    row: &mut RenewalRow,
    chain: &Path,
    key: &Path,
    now: UnixTime,
) -> CertOutcome {
    let read = std::fs::read_to_string(chain).map_err(|source| RenewError::ReadChain { path: chain.to_path_buf(), source }).and_then(|c| {
        Ok((c, std::fs::read_to_string(key).map_err(|source| RenewError::ReadPendingKey { path: key.to_path_buf(), source })?))
    });
    match read {
        Ok((chain_pem, key_pem)) => {
            let reason = "installing the chain downloaded by an interrupted run";
            let mut o = finish_install(spec, store, row, &chain_pem, &key_pem, reason, now, false).await;
            o.resumed = true;
            o
        }
        Err(e) => {
            // Unusable leftovers: forget them, the next run orders again.
            row.pending_chain = None;
            row.pending_key = None;
            row.order_url = None;
            match failed(spec, store, row, &Reason::Resume, e, now, Options::default()) {
                Ok(o) => o,
                Err(e) => {
                    let mut o = CertOutcome::new(&spec.name, Action::Failed, String::new());
                    o.error = Some(error_chain(&e));
                    o
                }
            }
        }
    }
}

/// The Secret's part of the audit detail.
fn secret_detail(done: &SecretInstalled) -> serde_json::Value {
    serde_json::json!({
        "namespace": done.namespace, "name": done.name, "resource_version": done.resource_version,
        "created": done.created, "attempts": done.attempts,
    })
}

/// A failure outcome when even recording the failure failed.
fn unrecorded(spec: &ManagedSpec, reason: &str, e: RenewError) -> CertOutcome {
    let mut o = CertOutcome::new(&spec.name, Action::Failed, reason.to_string());
    o.error = Some(error_chain(&e));
    o
}

/// Writes the certificate of the installed files into the Secret, which holds another one.
async fn sync_secret(
    spec: &ManagedSpec,
    store: &mut Store,
    row: &mut RenewalRow,
    target: &SecretTarget,
    now: UnixTime,
) -> Result<CertOutcome> {
    let secret = target.display();
    let reason = format!("Secret {secret} did not hold the installed certificate");
    tracing::info!(cert = %spec.name, secret = %secret, "the Secret differs from the installed files: installing the files' certificate in it");
    let (chain_pem, key_pem) = match crate::install::files::current_material(&spec.install) {
        Ok(m) => m,
        Err(e) => {
            let e = RenewError::SecretMaterial { secret: secret.clone(), reason: e };
            return failed(spec, store, row, &reason, e, now, Options::default());
        }
    };
    let done = match crate::install::kubernetes::install_secret(target, &chain_pem, &key_pem, None, now).await {
        Ok(d) => d,
        Err(e) => return failed(spec, store, row, &reason, e.into(), now, Options::default()),
    };
    row.failures = 0;
    row.next_attempt = None;
    row.last_attempt = Some(now);
    row.last_outcome = Some("renewed".into());
    row.last_error = None;
    row.state = "idle".into();
    let detail = serde_json::json!({
        "name": spec.name, "reason": reason, "serial": done.serial, "not_after": done.not_after,
        "files": [], "kubernetes_secret": secret_detail(&done),
    });
    store.put_renewal(row, now)?;
    store.audit(now, "renew", "renewal", &detail)?;
    let mut o = CertOutcome::new(&spec.name, Action::Renewed, reason);
    (o.serial, o.not_after) = (Some(done.serial), Some(done.not_after));
    Ok(o)
}

/// The files were installed (or there are none) and the Secret write failed.
#[allow(clippy::too_many_arguments)]
fn secret_failed(
    spec: &ManagedSpec,
    store: &mut Store,
    row: &mut RenewalRow,
    files: Option<&crate::install::files::Installed>,
    e: SecretInstallError,
    reason: &str,
    now: UnixTime,
) -> CertOutcome {
    let err = match files {
        Some(inst) => {
            // The files hold the new certificate: nothing is pending any more, and the next run
            // past the backoff sees the Secret differ from the files and installs it there.
            for p in [row.pending_key.take(), row.pending_chain.take()].into_iter().flatten() {
                let _ = std::fs::remove_file(p);
            }
            row.order_url = None;
            row.order_directory = None;
            let installed = crate::install::files::current_leaf(&spec.install);
            sync_installed(row, installed.as_ref());
            RenewError::SecretBehind { serial: inst.serial.clone(), reason: e }
        }
        None if matches!(e, SecretInstallError::Invalid { .. }) => {
            // Unusable chain or key: dropped, the next attempt orders again.
            for p in [row.pending_key.take(), row.pending_chain.take()].into_iter().flatten() {
                let _ = std::fs::remove_file(p);
            }
            row.order_url = None;
            RenewError::Secret(e)
        }
        // The downloaded chain and key stay pending: the next attempt installs them without a
        // new order.
        None => RenewError::Secret(e),
    };
    match failed(spec, store, row, &reason, err, now, Options::default()) {
        Ok(o) => o,
        Err(e) => unrecorded(spec, reason, e),
    }
}

#[allow(clippy::too_many_arguments)]
async fn finish_install(
    spec: &ManagedSpec,
    store: &mut Store,
    row: &mut RenewalRow,
    chain_pem: &str,
    key_pem: &str,
    reason: &str,
    now: UnixTime,
    new_account: bool,
) -> CertOutcome {
    let files = if spec.install.has_files() {
        match crate::install::files::install(&spec.install, chain_pem, key_pem, now) {
            Ok(inst) => Some(inst),
            Err(e) => return files_failed(spec, store, row, e, reason, now),
        }
    } else {
        None
    };
    let secret = match &spec.install.kubernetes_secret {
        None => None,
        Some(target) => match crate::install::kubernetes::install_secret(target, chain_pem, key_pem, None, now).await {
            Ok(done) => Some(done),
            Err(e) => return secret_failed(spec, store, row, files.as_ref(), e, reason, now),
        },
    };
    let (serial, not_after) = match (&files, &secret) {
        (Some(f), _) => (f.serial.clone(), f.not_after),
        (None, Some(s)) => (s.serial.clone(), s.not_after),
        (None, None) => (String::new(), 0),
    };
    for p in [row.pending_key.take(), row.pending_chain.take()].into_iter().flatten() {
        let _ = std::fs::remove_file(p);
    }
    let order_url = row.order_url.take();
    row.order_directory = None;
    let installed = if files.is_some() {
        crate::install::files::current_leaf(&spec.install)
    } else {
        crate::install::files::chain_ders(chain_pem).ok().and_then(|d| crate::x509::cert::parse_der(&d[0]).ok())
    };
    sync_installed(row, installed.as_ref());
    row.failures = 0;
    row.next_attempt = None;
    row.last_attempt = Some(now);
    row.last_outcome = Some("renewed".into());
    row.last_error = None;
    row.ari_next_poll = None;
    row.renew_at = None;
    row.state = "idle".into();
    let detail = serde_json::json!({
        "name": spec.name, "reason": reason, "directory": spec.directory, "serial": serial,
        "not_after": not_after, "files": files.as_ref().map(|f| f.files.clone()).unwrap_or_default(),
        "kubernetes_secret": secret.as_ref().map(secret_detail),
        "new_account": new_account, "order_url": order_url,
    });
    let stored = store.put_renewal(row, now).and_then(|()| store.audit(now, "renew", "renewal", &detail));
    if let Err(e) = stored {
        tracing::error!(cert = %spec.name, error = %error_chain(&e), "renewed and installed, but the store could not record it");
    }
    tracing::info!(
        cert = %spec.name, serial = %serial, not_after = %format_time(not_after), reason,
        secret = %spec.install.kubernetes_secret.as_ref().map(SecretTarget::display).unwrap_or_default(),
        "certificate renewed and installed"
    );
    let mut o = CertOutcome::new(&spec.name, Action::Renewed, reason.to_string());
    (o.serial, o.not_after, o.order_url) = (Some(serial), Some(not_after), order_url);
    o
}

/// The files could not be installed (they are untouched or rolled back).
fn files_failed(spec: &ManagedSpec, store: &mut Store, row: &mut RenewalRow, e: InstallError, reason: &str, now: UnixTime) -> CertOutcome {
    // The files are untouched (install checks everything first); the chain or key is
    // unusable, so it is dropped and the next attempt orders again.
    for p in [row.pending_key.take(), row.pending_chain.take()].into_iter().flatten() {
        let _ = std::fs::remove_file(p);
    }
    row.order_url = None;
    let err = RenewError::NotInstalled { reason: e };
    match failed(spec, store, row, &Reason::Resume, err, now, Options::default()) {
        Ok(mut o) => {
            o.reason = reason.to_string();
            o
        }
        Err(e) => unrecorded(spec, reason, e),
    }
}
