//! Several daemons on one PostgreSQL store. One of them leads, elected through a lease row in
//! the store (see `store::coordination`): it runs the scheduled jobs — evaluation, digests,
//! renewals, revocation checks — and alone passes the fence that sending a notification or
//! installing a certificate requires. Scans are shared: the leader queues one work item per
//! source when a scan job fires, and every daemon (the leader too) claims items with
//! `FOR UPDATE SKIP LOCKED`, keeping its claim alive while it scans; a dead daemon's claim
//! expires and another takes the source.
//!
//! The lease is kept on a thread of its own, not on the async runtime: renewals go on however
//! busy the jobs keep the runtime. Leadership is granted to the fence until the renewal time
//! plus the lease less a fifth (the margin for the database round trip and clock rates), on the
//! monotonic clock, so a daemon that was stopped (SIGSTOP, a frozen VM) finds itself no longer
//! leader when it wakes, before it writes anything.

use crate::config::Settings;
use crate::model::UnixTime;
use crate::model::fence::{Fence, LEADER_LEASE};
use crate::model::rows::{LeaseRow, WorkItem};
use crate::model::store_location::StorePlace;
use crate::store::Store;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Work items of this kind are scans of one source.
pub const SCAN: &str = "scan";

/// What `/readyz`, `/metrics` and `schedule` say about the cluster.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ClusterStatus {
    pub node: String,
    pub lease_seconds: f64,
    pub is_leader: bool,
    /// The lease as last read: who holds it, its token, since when.
    pub lease: Option<LeaseRow>,
    /// How long ago (ms) this daemon last renewed or read the lease successfully.
    pub last_contact_ms: Option<u64>,
    /// Times this daemon became leader.
    pub terms: u64,
    /// The work items this daemon holds now.
    pub claims: Vec<WorkItem>,
    pub items_done: u64,
}

pub struct Cluster {
    pub node: String,
    /// This process: the node name, the pid and the start time.
    instance: String,
    pub lease: Duration,
    pub fence: Fence,
    place: StorePlace,
    status: Mutex<ClusterStatus>,
    last_contact: Mutex<Option<Instant>>,
    leading: watch::Sender<bool>,
    stop: AtomicBool,
    items_done: AtomicU64,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node", &self.node).field("lease", &self.lease).field("fence", &self.fence).finish()
    }
}

/// The host's name (uname(2), which systemd's `ProcSubset=pid` does not hide), the default
/// node name; `None` when the host has none that is usable, and the configuration must then
/// name the daemon: two daemons falling back to one constant would both take the lease as theirs.
pub fn host_name() -> Option<String> {
    let uts = rustix::system::uname();
    let name = uts.nodename().to_string_lossy().trim().to_string();
    let usable = !name.is_empty()
        && name != "(none)"
        && name != "localhost"
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    usable.then_some(name)
}

/// This process among daemons that may (wrongly) share a node name: the lease is renewed only
/// by the very process that took it.
fn instance_id(node: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{node}/{}/{nanos:x}", std::process::id())
}

impl Cluster {
    pub fn new(node: String, lease: Duration, place: StorePlace) -> Arc<Cluster> {
        let (leading, _) = watch::channel(false);
        let status = ClusterStatus { node: node.clone(), lease_seconds: lease.as_secs_f64(), ..Default::default() };
        Arc::new(Cluster {
            instance: instance_id(&node),
            node,
            lease,
            fence: Fence::leased(),
            place,
            status: Mutex::new(status),
            last_contact: Mutex::new(None),
            leading,
            stop: AtomicBool::new(false),
            items_done: AtomicU64::new(0),
        })
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// Tells when this daemon becomes or stops being the leader.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.leading.subscribe()
    }

    pub fn status(&self) -> ClusterStatus {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner()).clone();
        s.is_leader = self.fence.is_leader();
        s.last_contact_ms = self.last_contact.lock().unwrap_or_else(|p| p.into_inner()).map(|t| t.elapsed().as_millis() as u64);
        s.items_done = self.items_done.load(Ordering::Relaxed);
        s
    }

    fn contact(&self) {
        *self.last_contact.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// Starts the lease keeper's thread; it runs until [`Cluster::stop`].
    pub fn keep_lease(self: &Arc<Self>) -> std::io::Result<std::thread::JoinHandle<()>> {
        let me = Arc::clone(self);
        std::thread::Builder::new().name("certvigil-lease".into()).spawn(move || me.lease_loop())
    }

    fn lease_loop(&self) {
        let every = self.lease / 3;
        let mut store: Option<Store> = None;
        let mut was_leader = false;
        while !self.stop.load(Ordering::SeqCst) {
            let asked = Instant::now();
            if store.is_none() {
                match Store::connect_at(&self.place.store) {
                    Ok(s) => store = Some(s.with_node(&self.node)),
                    Err(e) => tracing::warn!(error = %e, "leader lease: cannot reach the store"),
                }
            }
            let outcome = store
                .as_ref()
                .map(|s| s.try_lease(LEADER_LEASE, &self.node, &self.instance, self.lease_ms()).map(|mine| (mine, s.lease(LEADER_LEASE))));
            match outcome {
                Some(Ok((Some(mine), _))) => {
                    self.contact();
                    // Granted from before the round trip, less a fifth of the lease.
                    self.fence.grant(mine.token, asked + self.lease - self.lease / 5);
                    if !was_leader {
                        tracing::info!(node = %self.node, token = mine.token, "this daemon leads now");
                        self.status.lock().unwrap_or_else(|p| p.into_inner()).terms += 1;
                        let _ = self.leading.send(true);
                    }
                    was_leader = true;
                    self.status.lock().unwrap_or_else(|p| p.into_inner()).lease = Some(mine);
                }
                Some(Ok((None, current))) => {
                    self.contact();
                    self.fence.revoke();
                    let current = current.ok().flatten();
                    if was_leader {
                        tracing::warn!(node = %self.node, leader = ?current.as_ref().map(|l| &l.holder), "the leader lease passed to another daemon");
                        let _ = self.leading.send(false);
                    }
                    was_leader = false;
                    self.status.lock().unwrap_or_else(|p| p.into_inner()).lease = current;
                }
                Some(Err(e)) => {
                    // The grant runs out by itself if this goes on; a fresh connection next time.
                    tracing::warn!(error = %e, "leader lease: cannot renew");
                    store = None;
                }
                None => {}
            }
            if was_leader && !self.fence.is_leader() {
                tracing::warn!(node = %self.node, "the leader lease ran out before it could be renewed");
                was_leader = false;
                let _ = self.leading.send(false);
            }
            let slept = asked.elapsed();
            std::thread::sleep(every.saturating_sub(slept).max(Duration::from_millis(10)));
        }
        // A clean stop lets the lease go at once: the next leader need not wait it out.
        if let (Some(s), Ok(Some(token))) = (store.as_ref(), self.fence.token()) {
            self.fence.revoke();
            match s.release_lease(LEADER_LEASE, &self.instance, token) {
                Ok(true) => tracing::info!(node = %self.node, "leader lease released"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot release the leader lease"),
            }
        }
    }

    /// Ends the lease keeper (releasing the lease) and the worker.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Claims and runs scan items until [`Cluster::stop`]: one at a time, its claim renewed a
    /// third of the lease at a time while the source is scanned.
    pub async fn work(self: Arc<Self>, state: Arc<super::http::State>, clock: Arc<dyn super::runner::Clock>) {
        while !self.stop.load(Ordering::SeqCst) {
            let me = Arc::clone(&self);
            let claimed = tokio::task::spawn_blocking(move || {
                Store::connect_at(&me.place.store).and_then(|s| s.claim_work(SCAN, &me.node, me.lease_ms()))
            })
            .await;
            let item = match claimed {
                Ok(Ok(Some(item))) => item,
                Ok(Ok(None)) => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot claim work");
                    tokio::time::sleep(self.lease / 3).await;
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "claiming work ended abnormally");
                    tokio::time::sleep(self.lease / 3).await;
                    continue;
                }
            };
            self.set_claims(Some(&item));
            let current = Arc::clone(&state.settings.read().unwrap_or_else(|p| p.into_inner()));
            self.run_item(item, current, clock.now()).await;
            self.set_claims(None);
        }
    }

    fn set_claims(&self, item: Option<&WorkItem>) {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).claims = item.into_iter().cloned().collect();
    }

    async fn run_item(self: &Arc<Self>, item: WorkItem, settings: Arc<Settings>, now: UnixTime) {
        tracing::info!(node = %self.node, source = %item.key, item = item.id, attempt = item.attempts, "scanning a claimed source");
        // The claim stays alive while the scan runs.
        let beat = {
            let me = Arc::clone(self);
            let id = item.id;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(me.lease / 3).await;
                    let m = Arc::clone(&me);
                    let kept = tokio::task::spawn_blocking(move || {
                        Store::connect_at(&m.place.store).and_then(|s| s.extend_claim(id, &m.node, m.lease_ms()))
                    })
                    .await;
                    if !matches!(kept, Ok(Ok(true))) {
                        tracing::warn!(item = id, "the claim on a scan could not be renewed: another daemon may take the source");
                    }
                }
            })
        };
        let place = self.place.clone();
        let source = item.key.clone();
        let outcome = tokio::task::spawn_blocking(move || crate::app::jobs::scan_sources(&settings, &place.store, &[source], now))
            .await
            .unwrap_or_else(|e| Err(crate::app::jobs::JobError::new(format!("the scan ended abnormally: {e}"))));
        beat.abort();
        let (error, summary) = match &outcome {
            Ok(o) => (None, o.summary.clone()),
            Err(e) => (Some(e.message.clone()), String::new()),
        };
        let me = Arc::clone(self);
        let id = item.id;
        let finished = tokio::task::spawn_blocking(move || {
            Store::connect_at(&me.place.store).and_then(|s| s.finish_work(id, &me.node, now, error.as_deref(), &summary))
        })
        .await;
        match finished {
            Ok(Ok(true)) => {
                self.items_done.fetch_add(1, Ordering::Relaxed);
                tracing::info!(node = %self.node, source = %item.key, item = item.id, "claimed scan finished");
            }
            Ok(Ok(false)) => tracing::warn!(item = item.id, "the claim was lost before the scan finished: another daemon scanned it too"),
            Ok(Err(e)) => tracing::error!(item = item.id, error = %e, "cannot record the end of a claimed scan"),
            Err(e) => tracing::error!(item = item.id, error = %e, "recording a claimed scan ended abnormally"),
        }
    }
}

/// The leader's scan job: one work item per source, then waits until every daemon that took
/// one has finished it (or the items were taken back and finished by others).
pub async fn scan_job(
    cluster: &Arc<Cluster>,
    job: &crate::config::Job,
    settings: &Settings,
    run_id: i64,
    now: UnixTime,
) -> Result<crate::app::jobs::Outcome, crate::app::jobs::JobError> {
    use crate::app::jobs::{JobError, Outcome};
    let sources: Vec<String> =
        settings.sources.iter().map(|s| s.name().to_string()).filter(|n| job.sources.is_empty() || job.sources.contains(n)).collect();
    let place = cluster.place.clone();
    let (keys, name) = (sources.clone(), job.name.clone());
    let queued = tokio::task::spawn_blocking(move || {
        Store::connect_at(&place.store).and_then(|s| s.queue_work(SCAN, &keys, &name, Some(run_id), now))
    })
    .await
    .map_err(|e| JobError::new(format!("queueing the scan ended abnormally: {e}")))?
    .map_err(JobError::from("scan"))?;
    tracing::info!(job = %job.name, run = run_id, sources = sources.len(), queued, "scan shared out between the daemons");
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let place = cluster.place.clone();
        let items = tokio::task::spawn_blocking(move || Store::connect_at(&place.store).and_then(|s| s.run_work(run_id)))
            .await
            .map_err(|e| JobError::new(format!("reading the scan's progress ended abnormally: {e}")))?
            .map_err(JobError::from("scan"))?;
        if items.iter().all(|i| i.finished_at.is_some()) {
            let failed: Vec<String> = items
                .iter()
                .filter(|i| i.status.as_deref() == Some("failed"))
                .map(|i| format!("{}: {}", i.key, i.error.as_deref().unwrap_or("")))
                .collect();
            let mut by: std::collections::BTreeMap<String, usize> = Default::default();
            for i in &items {
                *by.entry(i.claimed_by.clone().unwrap_or_default()).or_default() += 1;
            }
            let summary = format!(
                "{} sources scanned by {} daemons ({})",
                items.len(),
                by.len(),
                by.iter().map(|(n, c)| format!("{n}: {c}")).collect::<Vec<_>>().join(", ")
            );
            let detail = serde_json::json!({ "items": items, "by_node": by });
            if !failed.is_empty() {
                return Err(JobError { message: format!("{summary}; failed: {}", failed.join("; ")), detail: Some(detail) });
            }
            return Ok(Outcome { summary, detail });
        }
    }
}
