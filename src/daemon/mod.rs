//! `certvigil run`: the long-running service. Wires the store, the job loop, the HTTP server,
//! systemd notifications and signals together:
//!
//! - readiness (`READY=1`) only after the store is open and migrated, the API token resolved,
//!   the listener bound and every job's first fire time computed;
//! - SIGHUP reloads: the new configuration is validated first and, if invalid, the old one
//!   stays in force (the error is logged, audited and shown by `/readyz` and `/metrics`);
//! - SIGTERM/SIGINT: stop taking jobs, let the running ones finish within
//!   `daemon.shutdown_timeout`, checkpoint the store, exit 0.

pub mod cluster;
pub mod http;
pub mod metrics;
pub mod runner;
pub mod slots;
pub mod systemd;
pub mod ui;

use crate::config::secret::{Secret, SecretError};
use crate::config::{ConfigErrors, Settings};
use crate::model::store_location::{StoreLocation, StorePlace};
use crate::store::{Store, StoreError};
use runner::{Clock, Control, Exec, Live, Loop};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// Loads and validates the configuration again (for SIGHUP).
pub type Loader = Box<dyn Fn() -> Result<Settings, ConfigErrors> + Send + Sync>;

/// Why the daemon could not start, or why a reload was refused (the previous configuration
/// then stays in force, and this text is what `/readyz`, `/metrics` and the audit log show).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Runtime(std::io::Error),
    #[error("cannot open the store at {path}")]
    OpenStore {
        path: String,
        #[source]
        source: StoreError,
    },
    #[error("the host has no usable name to tell this daemon from the others sharing the store: set daemon.node_name")]
    NoNodeName,
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("daemon.{field}: {reason}")]
    Token { field: &'static str, reason: SecretError },
    #[error("daemon.{field}: the token from {reference} is shorter than 16 characters")]
    TokenTooShort { field: &'static str, reference: String },
    #[error("daemon.viewer_token: it is the same token as daemon.token; the read-only token must differ")]
    SameTokens,
    /// The reloaded configuration is invalid: every error, one per line.
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// The reload itself panicked or was cancelled.
    #[error("{0}")]
    Reload(tokio::task::JoinError),
}

pub struct Options {
    pub place: StorePlace,
    /// Overrides `daemon.listen`.
    pub listen: Option<Option<SocketAddr>>,
    /// Stop by itself after this long (tests, benchmarks).
    pub exit_after: Option<Duration>,
    /// Fixed start time (the hidden `--now`), advancing with the real clock.
    pub start_time: Option<crate::model::UnixTime>,
}

fn resolve_token(field: &'static str, r: Option<&crate::config::secret::SecretRef>) -> Result<Option<Secret>, DaemonError> {
    match r {
        None => Ok(None),
        Some(r) => {
            let t = r.resolve().map_err(|reason| DaemonError::Token { field, reason })?;
            // The rule `config validate` checks too (`config::secret::check_use`).
            if t.expose().trim().chars().count() < crate::config::secret::MIN_TOKEN_CHARS {
                return Err(DaemonError::TokenTooShort { field, reference: r.to_string() });
            }
            Ok(Some(Secret::new(t.expose().trim().to_string())))
        }
    }
}

fn resolve_tokens(s: &Settings) -> Result<http::Tokens, DaemonError> {
    let admin = resolve_token("token", s.daemon.token.as_ref())?;
    let viewer = resolve_token("viewer_token", s.daemon.viewer_token.as_ref())?;
    if let (Some(a), Some(v)) = (&admin, &viewer)
        && a.expose() == v.expose()
    {
        return Err(DaemonError::SameTokens);
    }
    Ok(http::Tokens { admin, viewer })
}

fn audit(at_store: &StoreLocation, at: i64, action: &str, detail: serde_json::Value) {
    let r = Store::open_at(at_store).and_then(|s| s.audit(at, action, "daemon", &detail));
    if let Err(e) = r {
        tracing::error!(error = %e, action, "cannot write the audit log");
    }
}

/// Runs the daemon until SIGTERM/SIGINT (or `exit_after`).
pub fn run(settings: Settings, loader: Loader, opts: Options) -> Result<(), DaemonError> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("certvigil").build().map_err(DaemonError::Runtime)?;
    runtime.block_on(main(settings, loader, opts))
}

async fn main(settings: Settings, loader: Loader, opts: Options) -> Result<(), DaemonError> {
    let notifier = Arc::new(systemd::Notifier::from_env());
    let clock: Arc<dyn Clock> = match opts.start_time {
        Some(t) => Arc::new(runner::TokioClock::new(t)),
        None => Arc::new(runner::SystemClock),
    };
    let place = opts.place.clone();
    let store_path = place.store.clone();
    let store = {
        // Opened off the runtime's threads, as every later store connection is.
        let at = store_path.clone();
        tokio::task::spawn_blocking(move || Store::open_at(&at))
            .await
            .map_err(|e| DaemonError::OpenStore { path: store_path.to_string(), source: StoreError::Postgres(e.to_string()) })?
            .map_err(|source| DaemonError::OpenStore { path: store_path.to_string(), source })?
    };
    // A PostgreSQL store may be shared by several daemons: they elect a leader through it.
    let cluster = match &place.store {
        StoreLocation::Postgres(_) => {
            let node = settings.daemon.node_name.clone().or_else(cluster::host_name).ok_or(DaemonError::NoNodeName)?;
            Some(cluster::Cluster::new(node, settings.daemon.lease, place.clone()))
        }
        StoreLocation::File(_) => None,
    };
    let store = match &cluster {
        Some(c) => store.with_node(&c.node),
        None => store,
    };
    let tokens = resolve_tokens(&settings)?;
    let listen = opts.listen.unwrap_or(settings.daemon.listen);
    let listener = match listen {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|source| DaemonError::Listen { addr, source })?),
        None => None,
    };
    let bound = listener.as_ref().and_then(|l| l.local_addr().ok());
    if tokens.admin.is_none() && bound.is_some() {
        tracing::warn!("daemon.token is not set: /api/v1 answers 401 to every request");
    }
    let settings = Arc::new(settings);
    let now = clock.now();
    audit(
        &store_path,
        now,
        "daemon-start",
        serde_json::json!({"version": env!("CARGO_PKG_VERSION"), "listen": bound.map(|a| a.to_string())}),
    );

    let ctx = Arc::new(match &cluster {
        Some(c) => crate::app::jobs::Context::with_fence(c.fence.clone()),
        None => crate::app::jobs::Context::default(),
    });
    let exec: Exec = {
        let (ctx, path, cluster) = (Arc::clone(&ctx), place.clone(), cluster.clone());
        Arc::new(move |job, settings, now, run_id| {
            let (ctx, path, cluster) = (Arc::clone(&ctx), path.clone(), cluster.clone());
            Box::pin(async move {
                match &cluster {
                    // Scans and revocation checks are shared out between the daemons.
                    Some(c) if matches!(job.kind, crate::config::JobKind::Scan | crate::config::JobKind::Revocation) => {
                        cluster::shared_job(c, &job, &settings, run_id, now).await
                    }
                    _ => crate::app::jobs::run(&job, &settings, &path, &ctx, now).await,
                }
            })
        })
    };
    let live = Arc::new(Live::default());
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
        ^ u64::from(std::process::id());
    let mut job_loop = Loop::new(Arc::clone(&settings), store, Arc::clone(&clock), exec, seed, Arc::clone(&live), Arc::clone(&notifier));
    let mut lease_keeper = None;
    if let Some(c) = &cluster {
        job_loop = job_loop.with_cluster(Arc::clone(c));
        lease_keeper = Some(c.keep_lease().map_err(DaemonError::Runtime)?);
        tracing::info!(node = %c.node, lease_s = c.lease.as_secs_f64(), "several daemons may share this store: electing a leader through it");
    }
    let (control_tx, control_rx) = mpsc::channel::<Control>(16);
    let state = Arc::new(http::State {
        store: store_path.clone(),
        settings: RwLock::new(Arc::clone(&settings)),
        tokens: RwLock::new(tokens),
        ui: ui::Ui::default(),
        live: Arc::clone(&live),
        control: control_tx.clone(),
        clock: Arc::clone(&clock),
        reload: Mutex::new(http::ReloadStatus { ok: true, last_success_at: Some(now), last_attempt_at: Some(now), error: None }),
        last_scrape_micros: Default::default(),
        cluster: cluster.clone(),
    });
    // Every daemon takes its share of the scans and revocation checks (with the settings of
    // the latest reload; its revocation checker keeps its CRLs between items).
    let worker = cluster.as_ref().map(|c| tokio::spawn(Arc::clone(c).work(Arc::clone(&state), Arc::clone(&ctx), Arc::clone(&clock))));
    let server = listener.map(|l| tokio::spawn(http::serve(l, Arc::clone(&state))));
    let signals = tokio::spawn(handle_signals(Arc::clone(&state), loader, Arc::clone(&notifier), ctx, control_tx.clone()));
    if let Some(after) = opts.exit_after {
        let tx = control_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.send(Control::Shutdown).await;
        });
    }
    drop(control_tx);
    tracing::info!(listen = ?bound, jobs = settings.jobs.len(), store = %store_path, "certvigil started");
    notifier.ready(&format!("ready: {} jobs{}", settings.jobs.len(), bound.map(|a| format!(", HTTP on {a}")).unwrap_or_default()));
    job_loop.run(control_rx, settings.daemon.shutdown_timeout).await;
    if let Some(c) = &cluster {
        c.stop();
    }
    if let Some(w) = worker {
        w.abort();
    }
    if let Some(k) = lease_keeper {
        // It lets the lease go on its way out.
        let _ = tokio::task::spawn_blocking(move || k.join()).await;
    }
    signals.abort();
    if let Some(s) = server {
        s.abort();
    }
    let now = clock.now();
    let path = store_path.clone();
    let _ = tokio::task::spawn_blocking(move || {
        // Fold the WAL into the database so a copy of the file alone is complete.
        if let Ok(s) = Store::open_at(&path)
            && let Err(e) = s.checkpoint()
        {
            tracing::warn!(error = %e, "WAL checkpoint at shutdown failed");
        }
        audit(&path, now, "daemon-stop", serde_json::json!({}));
    })
    .await;
    tracing::info!("certvigil stopped");
    Ok(())
}

async fn handle_signals(
    state: Arc<http::State>,
    loader: Loader,
    notifier: Arc<systemd::Notifier>,
    ctx: Arc<crate::app::jobs::Context>,
    control: mpsc::Sender<Control>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) =
        (signal(SignalKind::hangup()), signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    let loader = Arc::new(loader);
    loop {
        tokio::select! {
            _ = hup.recv() => {
                notifier.reloading();
                let loader = Arc::clone(&loader);
                let result = match tokio::task::spawn_blocking(move || loader()).await {
                    Ok(loaded) => loaded.map_err(DaemonError::Config),
                    Err(e) => Err(DaemonError::Reload(e)),
                };
                let now = state.clock.now();
                let outcome = result.and_then(|new| resolve_tokens(&new).map(|t| (new, t)));
                match outcome {
                    Ok((new, tokens)) => {
                        let old = Arc::clone(&state.settings.read().unwrap_or_else(|p| p.into_inner()));
                        if new.store_path != old.store_path || new.store_postgres != old.store_postgres {
                            tracing::warn!("store changed: it takes effect at the next restart");
                        }
                        if new.daemon.listen != old.daemon.listen {
                            tracing::warn!("daemon.listen changed: it takes effect at the next restart");
                        }
                        let new = Arc::new(new);
                        *state.settings.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&new);
                        *state.tokens.write().unwrap_or_else(|p| p.into_inner()) = tokens;
                        ctx.reset();
                        *state.reload.lock().unwrap_or_else(|p| p.into_inner()) =
                            http::ReloadStatus { ok: true, last_success_at: Some(now), last_attempt_at: Some(now), error: None };
                        let jobs: Vec<&str> = new.jobs.iter().map(|j| j.name.as_str()).collect();
                        let detail = serde_json::json!({"file": new.file.as_ref().map(|f| f.display().to_string()), "jobs": jobs, "sources": new.sources.len()});
                        let _ = control.send(Control::Reload(new)).await;
                        let path = state.store.clone();
                        let _ = tokio::task::spawn_blocking(move || audit(&path, now, "config-reload", detail)).await;
                        tracing::info!("configuration reloaded");
                        notifier.ready("configuration reloaded");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "configuration reload failed: the previous configuration stays in force");
                        {
                            let mut r = state.reload.lock().unwrap_or_else(|p| p.into_inner());
                            r.ok = false;
                            r.last_attempt_at = Some(now);
                            r.error = Some(e.to_string());
                        }
                        let path = state.store.clone();
                        let detail = serde_json::json!({"error": e.to_string()});
                        let _ = tokio::task::spawn_blocking(move || audit(&path, now, "config-reload-failed", detail)).await;
                        notifier.ready("reload failed: the previous configuration stays in force");
                    }
                }
            }
            _ = term.recv() => {
                tracing::info!("SIGTERM: stopping");
                let _ = control.send(Control::Shutdown).await;
            }
            _ = int.recv() => {
                tracing::info!("SIGINT: stopping");
                let _ = control.send(Control::Shutdown).await;
            }
        }
    }
}
