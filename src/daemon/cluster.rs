//! Several daemons on one PostgreSQL store. One of them leads, elected through a lease row in
//! the store (see `store::coordination`): it runs the scheduled jobs — evaluation, digests,
//! renewals, revocation checks — and alone passes the fence that sending a notification or
//! installing a certificate requires. Scans and revocation checks are shared: when such a job
//! fires the leader queues work items — one per source for a scan, one per share of the
//! certificates (grouped by issuer, so that each CRL is fetched by one daemon) for a
//! revocation check — and every daemon (the leader too) claims items with
//! `FOR UPDATE SKIP LOCKED`, keeping its claim alive while it works; a dead daemon's claim
//! expires and another takes the item. The leader's job run waits for its items and sums them up.
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

/// Work items of this kind are scans of one source (the key is the source's name).
pub const SCAN: &str = "scan";
/// Work items of this kind are revocation checks of one share of the certificates (the key is
/// `k/n`: share `k` of `n`).
pub const REVOCATION: &str = "revocation";
/// The shares a revocation check is cut into: enough for a few daemons to balance, few enough
/// that each share's certificates still share their CRLs.
pub const REVOCATION_SHARES: u32 = 8;

/// The kinds a worker claims, in this order (scans first: a revocation check reads what they find).
const KINDS: [&str; 2] = [SCAN, REVOCATION];

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
    /// The connection for the worker's and the leader's polls (claims, heartbeats, progress),
    /// opened on first use and dropped after an error; the lease keeper has its own.
    polls: Arc<Mutex<Option<Store>>>,
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
            polls: Arc::new(Mutex::new(None)),
        })
    }

    /// Runs `f` on the polling connection, on a blocking thread.
    async fn poll<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store, &str, i64) -> crate::store::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        let (polls, place, node, lease_ms) = (Arc::clone(&self.polls), self.place.clone(), self.node.clone(), self.lease_ms());
        tokio::task::spawn_blocking(move || {
            let mut slot = polls.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some(Store::connect_at(&place.store).map_err(|e| e.to_string())?);
            }
            let store = slot.as_ref().ok_or("no connection")?;
            let out = f(store, &node, lease_ms);
            if out.is_err() {
                // A fresh connection next time: this one may be broken.
                *slot = None;
            }
            out.map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| format!("ended abnormally: {e}"))?
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

    /// Claims and runs work items until [`Cluster::stop`]: one at a time, scans before
    /// revocation checks, its claim renewed a third of the lease at a time while it runs.
    pub async fn work(
        self: Arc<Self>,
        state: Arc<super::http::State>,
        ctx: Arc<crate::app::jobs::Context>,
        clock: Arc<dyn super::runner::Clock>,
    ) {
        while !self.stop.load(Ordering::SeqCst) {
            let claimed = self
                .poll(|s, node, lease_ms| {
                    for kind in KINDS {
                        if let Some(item) = s.claim_work(kind, node, lease_ms)? {
                            return Ok(Some(item));
                        }
                    }
                    Ok(None)
                })
                .await;
            let item = match claimed {
                Ok(Some(item)) => item,
                Ok(None) => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim work");
                    tokio::time::sleep(self.lease / 3).await;
                    continue;
                }
            };
            self.set_claims(Some(&item));
            let current = Arc::clone(&state.settings.read().unwrap_or_else(|p| p.into_inner()));
            self.run_item(item, current, &ctx, clock.now()).await;
            self.set_claims(None);
        }
    }

    fn set_claims(&self, item: Option<&WorkItem>) {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).claims = item.into_iter().cloned().collect();
    }

    async fn run_item(self: &Arc<Self>, item: WorkItem, settings: Arc<Settings>, ctx: &crate::app::jobs::Context, now: UnixTime) {
        tracing::info!(node = %self.node, kind = %item.kind, key = %item.key, item = item.id, attempt = item.attempts, "running a claimed work item");
        // The claim stays alive while the item runs.
        let beat = {
            let me = Arc::clone(self);
            let id = item.id;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(me.lease / 3).await;
                    let kept = me.poll(move |s, node, lease_ms| s.extend_claim(id, node, lease_ms)).await;
                    if !matches!(kept, Ok(true)) {
                        tracing::warn!(item = id, "the claim on a work item could not be renewed: another daemon may take it");
                    }
                }
            })
        };
        let outcome = match item.kind.as_str() {
            SCAN => {
                let place = self.place.clone();
                let source = item.key.clone();
                tokio::task::spawn_blocking(move || crate::app::jobs::scan_sources(&settings, &place.store, &[source], now))
                    .await
                    .unwrap_or_else(|e| Err(crate::app::jobs::JobError::new(format!("the scan ended abnormally: {e}"))))
            }
            REVOCATION => match parse_share(&item.key) {
                Some(share) => crate::app::jobs::check_revocation(&settings, &self.place, ctx, Some(share), now).await,
                None => Err(crate::app::jobs::JobError::new(format!("`{}` is not a share (k/n)", item.key))),
            },
            other => Err(crate::app::jobs::JobError::new(format!("this daemon does not know work items of kind `{other}`"))),
        };
        beat.abort();
        let (error, summary) = match &outcome {
            Ok(o) => (None, o.summary.clone()),
            Err(e) => (Some(e.message.clone()), String::new()),
        };
        let id = item.id;
        let finished = self.poll(move |s, node, _| s.finish_work(id, node, now, error.as_deref(), &summary)).await;
        match finished {
            Ok(true) => {
                self.items_done.fetch_add(1, Ordering::Relaxed);
                tracing::info!(node = %self.node, kind = %item.kind, key = %item.key, item = item.id, "claimed work item finished");
            }
            Ok(false) => {
                tracing::warn!(item = item.id, "the claim was lost before the work item finished: another daemon ran it too")
            }
            Err(e) => tracing::error!(item = item.id, error = %e, "cannot record the end of a claimed work item"),
        }
    }
}

/// `k/n` with `k < n`: share `k` of `n`.
fn parse_share(key: &str) -> Option<(u32, u32)> {
    let (k, n) = key.split_once('/')?;
    let (k, n) = (k.parse::<u32>().ok()?, n.parse::<u32>().ok()?);
    (k < n).then_some((k, n))
}

/// The leader's run of a scan or revocation job, shared out: one work item per source (scan)
/// or per share (revocation), then it waits until every item is finished — by whichever daemons
/// took them, or by others when a claim expired — and sums them up.
pub async fn shared_job(
    cluster: &Arc<Cluster>,
    job: &crate::config::Job,
    settings: &Settings,
    run_id: i64,
    now: UnixTime,
) -> Result<crate::app::jobs::Outcome, crate::app::jobs::JobError> {
    use crate::app::jobs::JobError;
    use crate::config::JobKind;
    let (kind, keys, what) = match job.kind {
        JobKind::Scan => {
            let sources = settings
                .sources
                .iter()
                .map(|s| s.name().to_string())
                .filter(|n| job.sources.is_empty() || job.sources.contains(n))
                .collect::<Vec<_>>();
            (SCAN, sources, "sources scanned")
        }
        JobKind::Revocation => (REVOCATION, (0..REVOCATION_SHARES).map(|k| format!("{k}/{REVOCATION_SHARES}")).collect(), "shares"),
        other => return Err(JobError::new(format!("a {other:?} job is not shared out"))),
    };
    let (queue, name) = (keys.clone(), job.name.clone());
    let queued = cluster
        .poll(move |s, _, _| s.queue_work(kind, &queue, &name, Some(run_id), now))
        .await
        .map_err(|e| JobError::new(format!("queueing the {kind} work: {e}")))?;
    tracing::info!(job = %job.name, run = run_id, items = keys.len(), queued, "{kind} shared out between the daemons");
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let items = match cluster.poll(move |s, _, _| s.run_work(run_id)).await {
            Ok(items) => items,
            // The items stand in the store; the next poll (on a new connection) reads them.
            Err(e) => {
                tracing::warn!(job = %job.name, error = %e, "cannot read the progress of shared work");
                continue;
            }
        };
        if items.iter().all(|i| i.finished_at.is_some()) {
            return sum_up(&items, what, kind == REVOCATION).map_err(|(message, detail)| JobError { message, detail: Some(detail) });
        }
    }
}

/// The job run's outcome from its finished items: how many, by which daemons; for revocation
/// checks the certificates checked, from each item's summary (`N certificates checked: …`).
fn sum_up(items: &[WorkItem], what: &str, count_checked: bool) -> Result<crate::app::jobs::Outcome, (String, serde_json::Value)> {
    let failed: Vec<String> = items
        .iter()
        .filter(|i| i.status.as_deref() == Some("failed"))
        .map(|i| format!("{}: {}", i.key, i.error.as_deref().unwrap_or("")))
        .collect();
    let mut by: std::collections::BTreeMap<String, usize> = Default::default();
    for i in items {
        *by.entry(i.claimed_by.clone().unwrap_or_default()).or_default() += 1;
    }
    let mut summary = format!(
        "{} {what} by {} daemons ({})",
        items.len(),
        by.len(),
        by.iter().map(|(n, c)| format!("{n}: {c}")).collect::<Vec<_>>().join(", ")
    );
    let mut detail = serde_json::json!({ "items": items, "by_node": by });
    if count_checked {
        let checked: usize = items.iter().filter_map(|i| i.summary.as_deref()?.split_whitespace().next()?.parse::<usize>().ok()).sum();
        summary = format!("{checked} certificates checked in {summary}");
        detail["checked"] = checked.into();
    }
    if !failed.is_empty() {
        return Err((format!("{summary}; failed: {}", failed.join("; ")), detail));
    }
    Ok(crate::app::jobs::Outcome { summary, detail })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(key: &str, by: &str, status: &str, summary: &str) -> WorkItem {
        WorkItem {
            id: 1,
            kind: REVOCATION.into(),
            key: key.into(),
            job: "revocation".into(),
            run_id: Some(1),
            queued_at: 0,
            claimed_by: Some(by.into()),
            claim_expires_at_ms: None,
            attempts: 1,
            finished_at: Some(1),
            status: Some(status.into()),
            summary: Some(summary.into()),
            error: (status == "failed").then(|| "store: gone".into()),
        }
    }

    #[test]
    fn shares_are_k_of_n() {
        assert_eq!(parse_share("3/8"), Some((3, 8)));
        for bad in ["8/8", "3", "a/8", "3/", "-1/8", "3/8/9"] {
            assert_eq!(parse_share(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_shared_revocation_check_sums_its_shares_and_fails_with_any() {
        let items = [
            item("0/8", "a", "ok", "12 certificates checked: 12 good"),
            item("1/8", "b", "ok", "0 certificates checked: "),
            item("2/8", "a", "ok", "5 certificates checked: 4 good, 1 revoked"),
        ];
        let o = sum_up(&items, "shares", true).unwrap();
        assert_eq!(o.summary, "17 certificates checked in 3 shares by 2 daemons (a: 2, b: 1)");
        assert_eq!(o.detail["checked"], 17);
        let mut with_failure = items.to_vec();
        with_failure.push(item("3/8", "b", "failed", ""));
        let (message, detail) = sum_up(&with_failure, "shares", true).unwrap_err();
        assert!(message.ends_with("; failed: 3/8: store: gone"), "{message}");
        assert_eq!(detail["by_node"]["b"], 2);
    }
}
