//! The job loop: fires each job at its cron time plus jitter, runs missed jobs once at start,
//! never runs a job twice at once (a fire time that comes while the previous run is still going
//! is counted as an overrun and skipped, not stacked), records every run, pings the watchdog, and
//! takes triggers, reloads and shutdown through a control channel.
//!
//! Time comes from a [`Clock`], so tests drive the loop with tokio's paused clock. The loop
//! sleeps at most [`MAX_SLEEP`] at a time and re-reads the wall clock when it wakes: a machine
//! that was suspended (the monotonic clock stopped) or whose clock was stepped still fires on
//! time. Keep time injected: nothing in the loop may read the system clock directly.

use crate::app::jobs::{JobError, Outcome};
use crate::config::schedule;
use crate::config::{CatchUp, Job, JobKind, Settings};
use crate::model::UnixTime;
use crate::store::Store;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The longest the loop sleeps before looking at the clock again.
pub const MAX_SLEEP: Duration = Duration::from_secs(30);

/// Wall-clock time.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64;
    /// Whole seconds since the Unix epoch.
    fn now(&self) -> UnixTime {
        self.now_millis().div_euclid(1000)
    }
}

/// The system clock.
#[derive(Debug)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }
}

/// A clock that starts at `base` and advances with tokio's clock (paused in tests).
#[derive(Debug)]
pub struct TokioClock {
    base: UnixTime,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn new(base: UnixTime) -> TokioClock {
        TokioClock { base, start: tokio::time::Instant::now() }
    }
}

impl Clock for TokioClock {
    fn now_millis(&self) -> i64 {
        self.base * 1000 + self.start.elapsed().as_millis() as i64
    }
}

pub type JobFuture = Pin<Box<dyn Future<Output = Result<Outcome, JobError>> + Send>>;
/// Runs one job: (job, its settings, the moment it starts, its run id).
pub type Exec = Arc<dyn Fn(Job, Arc<Settings>, UnixTime, i64) -> JobFuture + Send + Sync>;

/// Why a job started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    CatchUp,
    Api,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::CatchUp => "catch_up",
            Trigger::Api => "api",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    #[error("no job named `{0}`")]
    Unknown(String),
    #[error("job `{0}` is already running (run {1})")]
    Running(String, i64),
    #[error("the daemon is shutting down")]
    ShuttingDown,
    #[error("cannot record the run: {0}")]
    Store(String),
    /// Several daemons share the store and another one leads: jobs run there.
    #[error("this daemon is not the leader{}: jobs run on the leader", .0.as_ref().map(|l| format!(" ({l} is)")).unwrap_or_default())]
    NotLeader(Option<String>),
}

/// Messages to the loop.
#[derive(Debug)]
pub enum Control {
    /// Run a job now; the reply carries the run id.
    Trigger { job: String, reply: oneshot::Sender<Result<i64, TriggerError>> },
    /// Apply a new, already validated configuration.
    Reload(Arc<Settings>),
    /// Stop taking jobs, let running ones finish (up to the deadline), then return.
    Shutdown,
}

/// What the HTTP server shows about each job.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobStatus {
    pub name: String,
    pub kind: &'static str,
    pub schedule: String,
    pub timezone: String,
    pub description: String,
    pub jitter_seconds: i64,
    pub next_fire: Option<UnixTime>,
    pub next_run: Option<UnixTime>,
    pub running_since: Option<UnixTime>,
    pub run_id: Option<i64>,
    pub queued_for_catch_up: bool,
}

/// State shared with the HTTP server.
#[derive(Debug, Default)]
pub struct Live {
    pub jobs: Mutex<Vec<JobStatus>>,
    pub shutting_down: std::sync::atomic::AtomicBool,
}

struct Slot {
    job: Job,
    /// The next cron fire time, and the moment (fire + jitter) it runs.
    next_fire: Option<UnixTime>,
    due: Option<UnixTime>,
    running: Option<(i64, UnixTime)>,
}

struct Done {
    name: String,
    run_id: i64,
    result: Result<Outcome, JobError>,
    elapsed: Duration,
}

pub struct Loop {
    settings: Arc<Settings>,
    slots: Vec<Slot>,
    catch_up: VecDeque<String>,
    catch_up_running: Option<String>,
    store: Store,
    clock: Arc<dyn Clock>,
    exec: Exec,
    rng: u64,
    live: Arc<Live>,
    notifier: Arc<super::systemd::Notifier>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    last_ping: tokio::time::Instant,
    /// Runs started and not yet finished, including those of jobs a reload removed.
    in_flight: usize,
    /// Several daemons on one store: only the leader starts jobs.
    cluster: Option<Arc<super::cluster::Cluster>>,
    leadership: Option<tokio::sync::watch::Receiver<bool>>,
}

/// Catch-up runs go in this order, one at a time: inventory first, then what reads it.
fn kind_order(k: JobKind) -> u8 {
    match k {
        JobKind::Scan => 0,
        JobKind::Revocation => 1,
        JobKind::Renew => 2,
        JobKind::Evaluate => 3,
        JobKind::Digest => 4,
    }
}

impl Loop {
    /// Builds the loop, marks runs a previous process left unfinished as interrupted, computes
    /// every job's first fire time and queues the missed ones (`catch_up: once`).
    pub fn new(
        settings: Arc<Settings>,
        store: Store,
        clock: Arc<dyn Clock>,
        exec: Exec,
        seed: u64,
        live: Arc<Live>,
        notifier: Arc<super::systemd::Notifier>,
    ) -> Loop {
        let now = clock.now();
        match store.jobs_interrupted(now) {
            Ok(0) => {}
            Ok(n) => tracing::warn!(runs = n, "runs left unfinished by the previous process are marked interrupted"),
            Err(e) => tracing::error!(error = %e, "cannot mark interrupted runs"),
        }
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let mut l = Loop {
            settings: Arc::clone(&settings),
            slots: Vec::new(),
            catch_up: VecDeque::new(),
            catch_up_running: None,
            store,
            clock,
            exec,
            rng: seed | 1,
            live,
            notifier,
            done_tx,
            done_rx,
            last_ping: tokio::time::Instant::now(),
            in_flight: 0,
            cluster: None,
            leadership: None,
        };
        l.install(&settings, now);
        l.catch_up = l.missed(now);
        l.publish();
        l
    }

    /// Several daemons on one store: jobs start only while this daemon leads, and a daemon that
    /// becomes leader runs what was missed meanwhile (once, as a restarted daemon does).
    pub fn with_cluster(mut self, cluster: Arc<super::cluster::Cluster>) -> Loop {
        self.leadership = Some(cluster.leadership());
        self.cluster = Some(cluster);
        self.catch_up.clear();
        self.publish();
        self
    }

    fn leads(&self) -> bool {
        self.cluster.as_ref().is_none_or(|c| c.fence.is_leader())
    }

    /// The jobs whose runs were missed (`catch_up: once`), in dependency order.
    fn missed(&self, now: UnixTime) -> VecDeque<String> {
        let l = self;
        let mut missed: Vec<&Slot> = l
            .slots
            .iter()
            .filter(|s| s.job.catch_up == CatchUp::Once)
            .filter(|s| {
                let last = l.store.job_last_started(&s.job.name).unwrap_or_else(|e| {
                    tracing::error!(job = %s.job.name, error = %e, "cannot read the last run; assuming none");
                    None
                });
                schedule::missed(&s.job.schedule, last, now)
            })
            .collect();
        missed.sort_by_key(|s| kind_order(s.job.kind));
        let names: VecDeque<String> = missed.iter().map(|s| s.job.name.clone()).collect();
        if !names.is_empty() {
            tracing::info!(jobs = ?names, "runs were missed while the daemon was down: running each once now");
        }
        names
    }

    fn random(&mut self) -> f64 {
        // xorshift64*: jitter only needs spread, not unpredictability.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn plan(&mut self, job: &Job, after: UnixTime) -> (Option<UnixTime>, Option<UnixTime>) {
        let fire = job.schedule.next_after(after);
        let r = self.random();
        (fire, fire.map(|f| schedule::with_jitter(f, job.jitter, r)))
    }

    /// Replaces the jobs, keeping the plan of those whose schedule did not change and the
    /// running state of all.
    fn install(&mut self, settings: &Settings, now: UnixTime) {
        let mut old: Vec<Slot> = std::mem::take(&mut self.slots);
        for job in &settings.jobs {
            let kept = old.iter().position(|s| s.job.name == job.name).map(|i| old.swap_remove(i));
            let slot = match kept {
                Some(s)
                    if s.job.schedule.expression() == job.schedule.expression()
                        && s.job.schedule.time_zone() == job.schedule.time_zone()
                        && s.job.jitter == job.jitter =>
                {
                    Slot { job: job.clone(), ..s }
                }
                kept => {
                    let (next_fire, due) = self.plan(job, now);
                    Slot { job: job.clone(), next_fire, due, running: kept.and_then(|s| s.running) }
                }
            };
            self.slots.push(slot);
        }
        // Removed jobs that are still running finish on their own; they are no longer shown.
        self.catch_up.retain(|n| settings.jobs.iter().any(|j| &j.name == n));
    }

    fn publish(&self) {
        let statuses = self
            .slots
            .iter()
            .map(|s| JobStatus {
                name: s.job.name.clone(),
                kind: s.job.kind.as_str(),
                schedule: s.job.schedule.expression().to_string(),
                timezone: s.job.schedule.time_zone().to_string(),
                description: s.job.schedule.describe(),
                jitter_seconds: s.job.jitter,
                next_fire: s.next_fire,
                next_run: s.due,
                running_since: s.running.map(|r| r.1),
                run_id: s.running.map(|r| r.0),
                queued_for_catch_up: self.catch_up.contains(&s.job.name),
            })
            .collect();
        *self.live.jobs.lock().unwrap_or_else(|p| p.into_inner()) = statuses;
    }

    fn start(&mut self, idx: usize, trigger: Trigger, scheduled_at: Option<UnixTime>, now: UnixTime) -> Result<i64, TriggerError> {
        let job = self.slots[idx].job.clone();
        if let Some((run, _)) = self.slots[idx].running {
            return Err(TriggerError::Running(job.name, run));
        }
        let run_id = self
            .store
            .job_started(&job.name, job.kind.as_str(), trigger.as_str(), scheduled_at, now)
            .map_err(|e| TriggerError::Store(e.to_string()))?;
        if trigger == Trigger::Api {
            let detail = serde_json::json!({"job": job.name, "run": run_id});
            if let Err(e) = self.store.audit(now, "job-triggered", "api", &detail) {
                tracing::error!(error = %e, "cannot write the audit log");
            }
        }
        self.slots[idx].running = Some((run_id, now));
        self.in_flight += 1;
        tracing::info!(job = %job.name, kind = job.kind.as_str(), run = run_id, trigger = trigger.as_str(), "job started");
        self.notifier.status(&format!("running {} ({})", job.name, trigger.as_str()));
        let fut = (self.exec)(job.clone(), Arc::clone(&self.settings), now, run_id);
        let tx = self.done_tx.clone();
        tokio::spawn(async move {
            let t0 = tokio::time::Instant::now();
            // A panicking job must not take the loop down, nor leave its run marked running.
            let result = match tokio::spawn(fut).await {
                Ok(r) => r,
                Err(e) => Err(JobError::new(format!("the job ended abnormally: {e}"))),
            };
            let _ = tx.send(Done { name: job.name, run_id, result, elapsed: t0.elapsed() });
        });
        self.publish();
        Ok(run_id)
    }

    fn finish(&mut self, d: Done) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let now = self.clock.now();
        let ms = d.elapsed.as_millis() as i64;
        let (error, summary, detail) = match &d.result {
            Ok(o) => (None, o.summary.as_str(), Some(&o.detail)),
            Err(e) => (Some(e.message.as_str()), "", e.detail.as_ref()),
        };
        if let Err(e) = self.store.job_finished(d.run_id, now, ms, error, summary, detail) {
            tracing::error!(job = %d.name, run = d.run_id, error = %e, "cannot record the end of a run");
        }
        match &d.result {
            Ok(o) => tracing::info!(job = %d.name, run = d.run_id, duration_ms = ms, "job finished: {}", o.summary),
            Err(e) => tracing::error!(job = %d.name, run = d.run_id, duration_ms = ms, error = %e, "job failed"),
        }
        if let Some(s) = self.slots.iter_mut().find(|s| s.job.name == d.name && s.running.map(|r| r.0) == Some(d.run_id)) {
            s.running = None;
        }
        if self.catch_up_running.as_deref() == Some(d.name.as_str()) {
            self.catch_up_running = None;
        }
        self.notifier.status(&self.status_line());
        self.publish();
    }

    fn status_line(&self) -> String {
        let running: Vec<&str> = self.slots.iter().filter(|s| s.running.is_some()).map(|s| s.job.name.as_str()).collect();
        let next = self.slots.iter().filter_map(|s| s.due.map(|d| (d, s.job.name.as_str()))).min();
        match (running.is_empty(), next) {
            (false, _) => format!("running {}", running.join(", ")),
            (true, Some((at, name))) => format!("idle; next: {name} at {}", crate::model::format_time(at)),
            (true, None) => "idle; nothing scheduled".into(),
        }
    }

    /// Starts what is due at `now`; returns when to look again.
    fn tick(&mut self, now: UnixTime) -> UnixTime {
        let leads = self.leads();
        for idx in 0..self.slots.len() {
            let Some(due) = self.slots[idx].due.filter(|d| *d <= now) else { continue };
            let fire = self.slots[idx].next_fire.unwrap_or(due);
            let name = self.slots[idx].job.name.clone();
            if !leads {
                tracing::debug!(job = %name, "not the leader: the leader runs this one");
            } else if let Some((run, since)) = self.slots[idx].running {
                tracing::warn!(job = %name, run, running_for_s = now - since, "job still running at its next fire time: skipped, not stacked");
                if let Err(e) = self.store.job_overrun(&name, now) {
                    tracing::error!(error = %e, "cannot record an overrun");
                }
            } else {
                // A scheduled run stands for a queued catch-up of the same job.
                self.catch_up.retain(|n| n != &name);
                if let Err(e) = self.start(idx, Trigger::Schedule, Some(fire), now) {
                    tracing::error!(job = %name, error = %e, "cannot start a job");
                }
            }
            // Fire times that passed meanwhile (a long sleep, a suspended machine) are not
            // replayed one by one: the run just started covers them.
            let job = self.slots[idx].job.clone();
            let (next_fire, due) = self.plan(&job, fire.max(now));
            self.slots[idx].next_fire = next_fire;
            self.slots[idx].due = due;
        }
        if self.catch_up_running.is_none() && leads {
            while let Some(name) = self.catch_up.pop_front() {
                let Some(idx) = self.slots.iter().position(|s| s.job.name == name) else { continue };
                if self.slots[idx].running.is_some() {
                    continue;
                }
                match self.start(idx, Trigger::CatchUp, None, now) {
                    Ok(_) => {
                        self.catch_up_running = Some(name);
                        break;
                    }
                    Err(e) => tracing::error!(job = %name, error = %e, "cannot start a catch-up run"),
                }
            }
        }
        self.publish();
        self.slots.iter().filter_map(|s| s.due).min().unwrap_or(now + MAX_SLEEP.as_secs() as i64)
    }

    fn ping(&mut self, force: bool) {
        if let Some(every) = self.notifier.watchdog_interval()
            && (force || self.last_ping.elapsed() >= every)
        {
            self.notifier.watchdog();
            self.last_ping = tokio::time::Instant::now();
        }
    }

    fn next_ping(&self) -> tokio::time::Instant {
        match self.notifier.watchdog_interval() {
            Some(every) => self.last_ping + every,
            None => tokio::time::Instant::now() + MAX_SLEEP,
        }
    }

    /// Runs until [`Control::Shutdown`] (or the control channel closes), then waits up to
    /// `shutdown_timeout` for running jobs.
    pub async fn run(mut self, mut control: mpsc::Receiver<Control>, shutdown_timeout: Duration) {
        self.notifier.status(&self.status_line());
        self.ping(true);
        loop {
            let now = self.clock.now();
            let next = self.tick(now);
            self.ping(false);
            // Wake at the next due time (to the millisecond), the next watchdog ping, or after
            // MAX_SLEEP to re-read the wall clock, whichever comes first.
            let until_due = Duration::from_millis((next * 1000 - self.clock.now_millis()).max(0) as u64);
            let wake = (tokio::time::Instant::now() + until_due.min(MAX_SLEEP)).min(self.next_ping());
            let mut leadership = self.leadership.clone();
            let led = async {
                match leadership.as_mut() {
                    Some(rx) => rx.changed().await.map(|()| *rx.borrow()).unwrap_or(false),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                now_leads = led => {
                    if let Some(rx) = &mut self.leadership {
                        rx.borrow_and_update();
                    }
                    if now_leads {
                        // What the previous leader left undone (it died, or this daemon was
                        // the only one and was down) runs once now: its unfinished runs, then
                        // what was missed.
                        let now = self.clock.now();
                        let node = self.cluster.as_ref().map(|c| c.node.clone()).unwrap_or_default();
                        let taken = self.store.take_over_runs(&node, now).unwrap_or_else(|e| {
                            tracing::error!(error = %e, "cannot take over the previous leader's runs");
                            Vec::new()
                        });
                        if !taken.is_empty() {
                            tracing::warn!(jobs = ?taken, "the previous leader left runs unfinished: running them again");
                        }
                        let mut again: Vec<String> = taken;
                        again.extend(self.missed(now));
                        again.sort_by_key(|n| self.slots.iter().find(|s| &s.job.name == n).map(|s| kind_order(s.job.kind)).unwrap_or(u8::MAX));
                        for name in again {
                            if !self.catch_up.contains(&name) {
                                self.catch_up.push_back(name);
                            }
                        }
                    }
                }
                Some(d) = self.done_rx.recv() => self.finish(d),
                msg = control.recv() => match msg {
                    Some(Control::Trigger { job, reply }) => {
                        let now = self.clock.now();
                        let r = match self.slots.iter().position(|s| s.job.name == job) {
                            None => Err(TriggerError::Unknown(job)),
                            Some(_) if !self.leads() => Err(TriggerError::NotLeader(
                                self.cluster.as_ref().and_then(|c| c.status().lease).filter(|l| l.live()).map(|l| l.holder),
                            )),
                            Some(idx) => self.start(idx, Trigger::Api, None, now),
                        };
                        let _ = reply.send(r);
                    }
                    Some(Control::Reload(settings)) => {
                        let now = self.clock.now();
                        self.install(&settings, now);
                        self.settings = settings;
                        self.publish();
                        tracing::info!(jobs = self.slots.len(), "configuration reloaded");
                    }
                    Some(Control::Shutdown) | None => break,
                },
            }
        }
        self.live.shutting_down.store(true, std::sync::atomic::Ordering::SeqCst);
        self.notifier.stopping();
        let deadline = tokio::time::Instant::now() + shutdown_timeout;
        while self.in_flight > 0 {
            self.ping(false);
            let ping_at = self.next_ping();
            tokio::select! {
                Some(d) = self.done_rx.recv() => self.finish(d),
                _ = tokio::time::sleep_until(deadline) => {
                    let names: Vec<String> = self.slots.iter().filter(|s| s.running.is_some()).map(|s| s.job.name.clone()).collect();
                    tracing::warn!(jobs = ?names, "shutdown deadline passed: leaving running jobs (their committed work is kept)");
                    break;
                }
                _ = tokio::time::sleep_until(ping_at) => {}
                // Triggers during shutdown are refused.
                Some(msg) = control.recv() => if let Control::Trigger { reply, .. } = msg {
                    let _ = reply.send(Err(TriggerError::ShuttingDown));
                },
            }
        }
        let now = self.clock.now();
        if let Err(e) = self.store.jobs_interrupted(now) {
            tracing::error!(error = %e, "cannot mark interrupted runs");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const BASE: i64 = 1_780_272_000; // 2026-06-01T00:00:00Z

    struct Harness {
        starts: Arc<Mutex<Vec<(String, UnixTime)>>>,
        max_parallel: Arc<AtomicUsize>,
        dir: tempfile::TempDir,
    }

    /// A loop whose jobs record when they start and take `secs(job)` seconds.
    fn harness(yaml: &str, secs: fn(&str) -> u64, prepare: impl FnOnce(&Store)) -> (Harness, Loop, Arc<dyn Clock>) {
        let settings = Arc::new(crate::config::parse_str(yaml, "test.yaml", std::path::Path::new(".")).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        prepare(&store);
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::new(BASE));
        let starts = Arc::new(Mutex::new(Vec::new()));
        let running = Arc::new(AtomicUsize::new(0));
        let max_parallel = Arc::new(AtomicUsize::new(0));
        let exec: Exec = {
            let (starts, running, max_parallel, clock) = (starts.clone(), running.clone(), max_parallel.clone(), clock.clone());
            Arc::new(move |job: Job, _settings, now, _run| {
                starts.lock().unwrap().push((job.name.clone(), now));
                let n = running.fetch_add(1, Ordering::SeqCst) + 1;
                max_parallel.fetch_max(n, Ordering::SeqCst);
                let (running, _clock) = (running.clone(), clock.clone());
                Box::pin(async move {
                    tokio::time::sleep(Duration::from_secs(secs(&job.name))).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(Outcome { summary: "done".into(), detail: serde_json::Value::Null })
                })
            })
        };
        let l = Loop::new(
            settings,
            store,
            Arc::clone(&clock),
            exec,
            42,
            Arc::new(Live::default()),
            Arc::new(super::super::systemd::Notifier::disabled()),
        );
        (Harness { starts, max_parallel, dir }, l, clock)
    }

    fn reopen(h: &Harness) -> Store {
        Store::open(&h.dir.path().join("s.db")).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn an_overrunning_job_is_skipped_not_stacked() {
        let yaml = "jobs: [{name: slow, kind: scan, schedule: '*/10 * * * * *', catch_up: skip}]";
        let (h, l, _) = harness(yaml, |_| 25, |_| {});
        let (tx, rx) = mpsc::channel(4);
        let task = tokio::spawn(l.run(rx, Duration::from_secs(60)));
        tokio::time::sleep(Duration::from_millis(55_500)).await;
        tx.send(Control::Shutdown).await.unwrap();
        task.await.unwrap();
        let starts: Vec<i64> = h.starts.lock().unwrap().iter().map(|s| s.1 - BASE).collect();
        // Fires at 10, 20, 30, 40, 50: the run from 10 lasts until 35, the one from 40 until 65.
        assert_eq!(starts, vec![10, 40]);
        assert_eq!(h.max_parallel.load(Ordering::SeqCst), 1);
        let stats = reopen(&h).job_stats("slow").unwrap();
        assert_eq!(stats.overruns, 3, "20, 30 and 50 were skipped");
        // Shutdown waited for the run from 40 to finish (at 65) instead of cutting it.
        assert_eq!(stats.last.unwrap().status, "ok");
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_delays_within_its_bound() {
        let yaml = "jobs: [{name: j, kind: evaluate, schedule: '0 * * * *', jitter: 10m, catch_up: skip}]";
        let (h, l, _) = harness(yaml, |_| 1, |_| {});
        let (tx, rx) = mpsc::channel(4);
        let task = tokio::spawn(l.run(rx, Duration::from_secs(5)));
        tokio::time::sleep(Duration::from_secs(8 * 3600 + 1200)).await;
        tx.send(Control::Shutdown).await.unwrap();
        task.await.unwrap();
        let offsets: Vec<i64> = h.starts.lock().unwrap().iter().map(|s| (s.1 - BASE) % 3600).collect();
        assert_eq!(offsets.len(), 8, "one run per hour: {offsets:?}");
        assert!(offsets.iter().all(|o| (0..=600).contains(o)), "{offsets:?}");
        let mut distinct = offsets.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() >= 4, "jitter spreads runs: {offsets:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn missed_runs_catch_up_once_in_dependency_order() {
        let yaml = "jobs: [
            {name: digest, kind: digest, schedule: '0 8 * * *'},
            {name: eval, kind: evaluate, schedule: '5 * * * *'},
            {name: scan, kind: scan, schedule: '0 */6 * * *'},
            {name: quiet, kind: scan, schedule: '0 * * * *', catch_up: skip},
            {name: fresh, kind: revocation, schedule: '0 0 1 * *'}]";
        let (h, l, _) = harness(
            yaml,
            |name| if name == "scan" { 120 } else { 5 },
            |store| {
                // Every job last ran two days ago, except `fresh`, whose monthly run is done.
                for job in ["digest", "eval", "scan", "quiet"] {
                    let id = store.job_started(job, "scan", "schedule", Some(BASE - 2 * 86_400), BASE - 2 * 86_400).unwrap();
                    store.job_finished(id, BASE - 2 * 86_400 + 1, 1000, None, "", None).unwrap();
                }
                let id = store.job_started("fresh", "revocation", "schedule", Some(BASE), BASE).unwrap();
                store.job_finished(id, BASE, 1000, None, "", None).unwrap();
            },
        );
        let (tx, rx) = mpsc::channel(4);
        let task = tokio::spawn(l.run(rx, Duration::from_secs(5)));
        tokio::time::sleep(Duration::from_secs(200)).await;
        tx.send(Control::Shutdown).await.unwrap();
        task.await.unwrap();
        let starts = h.starts.lock().unwrap().clone();
        let rel: Vec<(&str, i64)> = starts.iter().map(|(n, t)| (n.as_str(), t - BASE)).collect();
        // Scan first; evaluate when it has finished; then the digest. `quiet` (skip) and
        // `fresh` (not missed) wait for their schedules.
        assert_eq!(rel, vec![("scan", 0), ("eval", 120), ("digest", 125)]);
        let runs = reopen(&h).job_runs(Some("eval"), 5).unwrap();
        assert_eq!(runs[0].trigger, "catch_up");
    }

    #[tokio::test(start_paused = true)]
    async fn triggers_reloads_and_shutdown_deadline() {
        let yaml = "jobs: [{name: a, kind: scan, schedule: '@daily', catch_up: skip}, {name: b, kind: evaluate, schedule: '@daily', catch_up: skip}]";
        let (h, l, _) = harness(yaml, |n| if n == "a" { 100 } else { 1 }, |_| {});
        let (tx, rx) = mpsc::channel(4);
        let task = tokio::spawn(l.run(rx, Duration::from_secs(10)));
        let trigger = |name: &str| {
            let (reply, rx) = oneshot::channel();
            (Control::Trigger { job: name.into(), reply }, rx)
        };
        let (m, r) = trigger("a");
        tx.send(m).await.unwrap();
        let first = r.await.unwrap().unwrap();
        let (m, r) = trigger("a");
        tx.send(m).await.unwrap();
        assert_eq!(r.await.unwrap(), Err(TriggerError::Running("a".into(), first)));
        let (m, r) = trigger("nope");
        tx.send(m).await.unwrap();
        assert_eq!(r.await.unwrap(), Err(TriggerError::Unknown("nope".into())));
        // A reload that drops `b` and adds `c`.
        let new = crate::config::parse_str(
            "jobs: [{name: a, kind: scan, schedule: '@daily'}, {name: c, kind: digest, schedule: '@hourly'}]",
            "t",
            std::path::Path::new("."),
        )
        .unwrap();
        tx.send(Control::Reload(Arc::new(new))).await.unwrap();
        let (m, r) = trigger("b");
        tx.send(m).await.unwrap();
        assert_eq!(r.await.unwrap(), Err(TriggerError::Unknown("b".into())));
        let (m, r) = trigger("c");
        tx.send(m).await.unwrap();
        assert!(r.await.unwrap().is_ok());
        tokio::time::sleep(Duration::from_secs(5)).await;
        // `a` is still running (100 s): the 10 s deadline leaves it interrupted.
        tx.send(Control::Shutdown).await.unwrap();
        task.await.unwrap();
        let store = reopen(&h);
        assert_eq!(store.job_stats("a").unwrap().last.unwrap().status, "interrupted");
        assert_eq!(store.job_stats("c").unwrap().last.unwrap().status, "ok");
        let audit = store.audit_entries(0, 10).unwrap();
        assert_eq!(audit.iter().filter(|e| e.action == "job-triggered" && e.actor == "api").count(), 2);
    }
}
