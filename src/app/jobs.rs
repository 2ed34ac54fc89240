//! One run of a scheduled job — scan, revocation, renew, evaluate, digest — against the store, as the
//! daemon (and `POST /api/v1/jobs/NAME/run`) starts it. Each run opens its own store
//! connection: SQLite in WAL mode lets a scan, an evaluation and the HTTP readers proceed
//! side by side, and writes are short batched transactions.

use crate::config::{Job, JobKind, Settings};
use crate::model::UnixTime;
use crate::model::fence::Fence;
use crate::model::store_location::{StoreLocation, StorePlace};
use crate::revocation::Checker;
use crate::store::Store;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What a run did: a line for people and JSON for metrics and the API.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Outcome {
    pub summary: String,
    pub detail: serde_json::Value,
}

/// Why a run failed, in a sentence an operator can act on.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct JobError {
    pub message: String,
    /// What the run did before failing (an evaluation whose notifications failed still has
    /// findings to count).
    pub detail: Option<serde_json::Value>,
}

impl JobError {
    pub fn new(message: impl Into<String>) -> JobError {
        JobError { message: message.into(), detail: None }
    }

    pub fn from<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> JobError + '_ {
        move |e| JobError::new(format!("{what}: {e}"))
    }
}

/// Long-lived state shared by runs: the revocation checker keeps parsed CRLs in memory.
#[derive(Debug, Default)]
pub struct Context {
    checker: Mutex<Option<Arc<Checker>>>,
    /// The leader's fence, with several daemons on one store (open otherwise): sending
    /// notifications and installing certificates pass it.
    pub fence: Fence,
}

impl Context {
    /// A context whose sending and installing pass `fence`.
    pub fn with_fence(fence: Fence) -> Context {
        Context { fence, ..Context::default() }
    }

    /// Drops cached state built from the old configuration (after a reload).
    pub fn reset(&self) {
        *self.checker.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn checker(&self, settings: &Settings, state_dir: PathBuf) -> Result<Arc<Checker>, JobError> {
        let mut slot = self.checker.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = slot.as_ref() {
            return Ok(Arc::clone(c));
        }
        let c = Arc::new(Checker::new(settings.revocation.clone(), state_dir).map_err(JobError::from("revocation"))?);
        *slot = Some(Arc::clone(&c));
        Ok(c)
    }
}

fn open(store: &StoreLocation) -> Result<Store, JobError> {
    Store::open_at(store).map_err(JobError::from("store"))
}

/// Runs `job` once at `now`.
pub async fn run(job: &Job, settings: &Arc<Settings>, place: &StorePlace, ctx: &Context, now: UnixTime) -> Result<Outcome, JobError> {
    let (store_at, state_dir) = (&place.store, &place.state_dir);
    match job.kind {
        JobKind::Scan => {
            let (settings, at, only) = (Arc::clone(settings), store_at.clone(), job.sources.clone());
            tokio::task::spawn_blocking(move || scan_sources(&settings, &at, &only, now))
                .await
                .map_err(|e| JobError::new(format!("scan task ended abnormally: {e}")))?
        }
        JobKind::Revocation => check_revocation(settings, place, ctx, None, now).await,
        JobKind::Renew => {
            let mut store = open(store_at)?;
            let specs: Vec<&crate::config::managed::ManagedSpec> = settings.managed.iter().collect();
            let opts = crate::renewal::engine::Options::default();
            let outcomes = crate::renewal::engine::run_all(&specs, &mut store, state_dir, now, opts, &ctx.fence).await;
            renew_outcome(&outcomes, now)
        }
        JobKind::Evaluate => {
            let store = Arc::new(Mutex::new(open(store_at)?));
            let report = crate::app::evaluate::evaluate(&store, settings, now, &ctx.fence).await.map_err(JobError::from("evaluate"))?;
            let ap = &report.applied;
            let summary = format!(
                "{} findings: {} alerts opened, {} resolved, {} escalated; {} notifications queued, {} sent, {} failed",
                report.findings, ap.opened, ap.resolved, ap.escalated, ap.notifications, report.delivery.sent, report.delivery.failed
            );
            let detail = serde_json::to_value(&report).unwrap_or_default();
            if report.delivery.failed > 0 {
                // The outbox keeps them and retries with backoff; the run still says so.
                return Err(JobError { message: format!("{summary} ({})", report.delivery.errors.join("; ")), detail: Some(detail) });
            }
            Ok(Outcome { summary, detail })
        }
        JobKind::Digest => {
            let store = Arc::new(Mutex::new(open(store_at)?));
            let d = crate::notify::send_digests(&store, &settings.alerts, None, now, &ctx.fence).await.map_err(JobError::from("digest"))?;
            let summary = format!("{} digests sent, {} failed", d.sent, d.failed);
            if d.failed > 0 {
                return Err(JobError::new(format!("{summary} ({})", d.errors.join("; "))));
            }
            Ok(Outcome { summary, detail: serde_json::to_value(&d).unwrap_or_default() })
        }
    }
}

/// Checks the revocation of every current certificate, or of share `k` of `n` (`Some((k, n))`,
/// see `store::revocation_share`: with several daemons on one store each checks shares).
pub async fn check_revocation(
    settings: &Settings,
    place: &StorePlace,
    ctx: &Context,
    share: Option<(u32, u32)>,
    now: UnixTime,
) -> Result<Outcome, JobError> {
    let store = open(&place.store)?;
    let ids = match share {
        Some((k, n)) => Some(store.current_certificate_ids_in_share(k, n).map_err(JobError::from("revocation"))?),
        None => None,
    };
    let checker = ctx.checker(settings, place.state_dir.clone())?;
    // Counted batch by batch: the pass never holds the whole inventory.
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    let checked = checker
        .check_each(Arc::new(Mutex::new(store)), ids, now, |batch| {
            for (_, r) in batch {
                *counts.entry(r.state.as_str()).or_default() += 1;
            }
        })
        .await
        .map_err(JobError::from("revocation"))?;
    let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let mut summary = format!("{checked} certificates checked: {}", parts.join(", "));
    // The ARI watch goes with the whole pass, or with its first share when several daemons
    // share it (one of them asks, once).
    let mut ari = None;
    if share.is_none_or(|(k, _)| k == 0) {
        let store = Arc::new(Mutex::new(open(&place.store)?));
        let r = crate::app::ari::watch(settings, &store, now).await.map_err(JobError::from("ari"))?;
        if r.asked > 0 || !r.problems.is_empty() {
            summary.push_str(&format!("; {}", r.summary()));
        }
        ari = Some(r);
    }
    Ok(Outcome { summary, detail: serde_json::json!({ "checked": checked, "states": counts, "ari": ari }) })
}

/// The renew job's summary: counts by action, then each certificate's outcome line (`web:
/// renewed (…)`, `web: not due (…)`). A failed renewal fails the run (its backoff and alert
/// are recorded by the engine and the policy).
fn renew_outcome(outcomes: &[crate::renewal::engine::CertOutcome], now: UnixTime) -> Result<Outcome, JobError> {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for o in outcomes {
        *counts.entry(o.action.as_str()).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let lines: Vec<String> = outcomes.iter().map(|o| o.line(now)).collect();
    let summary = if outcomes.is_empty() {
        "no managed certificates".to_string()
    } else {
        format!("{} managed certificates: {} ({})", outcomes.len(), parts.join(", "), lines.join("; "))
    };
    let detail = serde_json::json!({ "counts": counts, "certificates": outcomes });
    if outcomes.iter().any(|o| o.action == crate::renewal::engine::Action::Failed) {
        return Err(JobError { message: summary, detail: Some(detail) });
    }
    Ok(Outcome { summary, detail })
}

/// Scans the sources named in `only` (every configured one when empty) into the store at
/// `store_at`. Sources the configuration no longer has are retired only by a scan of all.
pub fn scan_sources(settings: &Settings, store_at: &StoreLocation, only: &[String], now: UnixTime) -> Result<Outcome, JobError> {
    let chosen: Vec<Box<dyn crate::sources::Source>> =
        settings.sources.iter().filter(|s| only.is_empty() || only.iter().any(|n| n == s.name())).map(crate::sources::build).collect();
    let mut store = open(store_at)?;
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let report = crate::app::scan::scan(&mut store, &chosen, only.is_empty(), now, workers, &mut |_| {}).map_err(JobError::from("scan"))?;
    let r = &report.run;
    Ok(Outcome {
        summary: format!(
            "{} objects ({} read), {} certificate sightings ({} new, {} gone), {} errors",
            r.objects_seen, r.objects_read, r.certs_seen, r.certs_new, r.certs_gone, r.errors
        ),
        detail: serde_json::json!({ "run": r, "sources": report.sources }),
    })
}
