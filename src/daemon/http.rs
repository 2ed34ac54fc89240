//! The HTTP server: `/healthz`, `/readyz`, `/metrics` (no token), `/api/v1/…` (bearer token)
//! and the status page under `/ui/` (`ui/`, with its own sign-in). HTTP/1.1 only, on loopback
//! unless configured otherwise; request heads must arrive within [`HEADER_TIMEOUT`], at most
//! [`MAX_CONNECTIONS`] connections are held at once and [`MAX_CONNECTIONS_PER_PEER`] per peer, a
//! new connection that finds no free slot takes the one of the connection that has waited
//! longest for a request head (see `slots.rs` for why), request bodies are never read except
//! the status page's small forms (bounded), and query strings are bounded. Each request reads
//! the store through its own SQLite connection (WAL mode: readers never wait for a scan).

use super::metrics;
use super::runner::{Clock, Control, Live, TriggerError};
use super::slots::{Admission, Busy, Slots};
use crate::app::owners::Owners;
use crate::app::queries::{CertFilter, InventoryView, Lookup, Naming, find_certificate};
use crate::config::Settings;
use crate::config::secret::Secret;
use crate::model::UnixTime;
use crate::store::{Store, StoreError};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{Method, Request, Response, StatusCode, body::Incoming};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Connections held at once: each is a file descriptor and a task, so this bounds both.
pub const MAX_CONNECTIONS: usize = 64;
/// Connections one peer (an IPv4 address, an IPv6 /64) may hold: a flood from one address
/// churns its own connections, never another peer's.
pub const MAX_CONNECTIONS_PER_PEER: usize = 16;
/// Time for a request head to arrive, from the connection's start or its last response. Short:
/// a probe or a scraper sends its head at once, and a connection waiting longer only holds a
/// slot (it is evicted first when the slots run out).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Warnings about evicted or refused connections: at most one per this interval.
const WARN_EVERY: Duration = Duration::from_secs(10);
const MAX_QUERY: usize = 2048;
/// Rows per chunk of a streamed `/metrics` body.
const CHUNK_BYTES: usize = 64 * 1024;

pub(super) type Body = BoxBody<Bytes, Infallible>;

/// The outcome of the last configuration (re)load.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReloadStatus {
    pub ok: bool,
    pub last_success_at: Option<UnixTime>,
    pub last_attempt_at: Option<UnixTime>,
    pub error: Option<String>,
}

/// The tokens the server checks.
#[derive(Default)]
pub struct Tokens {
    /// `daemon.token`: the API, and the status page with its writes.
    pub admin: Option<Secret>,
    /// `daemon.viewer_token`: the status page, read-only.
    pub viewer: Option<Secret>,
}

/// What request handlers share with the daemon.
pub struct State {
    pub store: crate::model::store_location::StoreLocation,
    /// Several daemons on one store: the lease, the claims, who leads.
    pub cluster: Option<Arc<super::cluster::Cluster>>,
    pub settings: RwLock<Arc<Settings>>,
    pub tokens: RwLock<Tokens>,
    /// Status-page sessions.
    pub ui: super::ui::Ui,
    pub live: Arc<Live>,
    pub control: mpsc::Sender<Control>,
    pub clock: Arc<dyn Clock>,
    pub reload: Mutex<ReloadStatus>,
    pub last_scrape_micros: AtomicU64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("store", &self.store).finish()
    }
}

/// A response body fed by a channel, so `/metrics` streams in bounded chunks.
pub(super) struct ChannelBody(pub(super) mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

pub(super) fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r.headers_mut().insert(hyper::header::CACHE_CONTROL, hyper::header::HeaderValue::from_static("no-store"));
    r
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response<Body> {
    full(status, "application/json", serde_json::to_vec_pretty(v).unwrap_or_default())
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "error": message }))
}

/// A response body that keeps its connection marked busy until it is sent (or dropped).
struct Tracked {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Serves until the task is aborted.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<State>) {
    let slots = Slots::new(MAX_CONNECTIONS, MAX_CONNECTIONS_PER_PEER);
    let (mut evicted, mut refused) = (0u64, 0u64);
    let mut last_warning: Option<Instant> = None;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "cannot accept an HTTP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match slots.admit(peer.ip()) {
            Admission::Free(slot) => slot,
            Admission::Evicted { slot, from } => {
                evicted += 1;
                tracing::debug!(%peer, %from, "HTTP connection slots full: closed the connection waiting longest for a request head");
                slot
            }
            Admission::Refused => {
                refused += 1;
                tracing::debug!(%peer, "every HTTP connection slot is answering a request: closing this connection");
                continue;
            }
        };
        if (evicted > 0 || refused > 0) && last_warning.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            tracing::warn!(
                evicted,
                refused,
                held = slots.held(),
                "HTTP connection slots full: closed connections still waiting for a request head (a flood, or too many idle clients)"
            );
            (evicted, refused, last_warning) = (0, 0, Some(Instant::now()));
        }
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let tracker = slot.tracker();
            let service = hyper::service::service_fn(move |req| {
                // Called as soon as a request head is parsed: from here until the response is
                // sent, the connection is not evicted.
                let busy = tracker.busy();
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(handle(req, &state).await.map(|body| Tracked { body, _busy: busy }.boxed())) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(64 * 1024)
                .serve_connection(hyper_util::rt::TokioIo::new(slot.watch(stream)), service);
            let mut conn = std::pin::pin!(conn);
            let mut slot = slot;
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = &mut slot.evicted => {
                    if !slot.is_busy() {
                        return; // dropping the connection closes it
                    }
                    // Chosen just as its request arrived: answer it, then close.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        });
        // Let the new connection read what has already arrived (a whole request, or the part
        // of a head that marks a stalled one), and the I/O driver report connections whose
        // bytes arrived since, before accepting the next: eviction then sees what each
        // connection has sent. (yield_now defers this task until the driver has been polled.)
        tokio::task::yield_now().await;
    }
}

/// Compares in time independent of where the first difference is.
pub(super) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
}

fn authorized(req: &Request<Incoming>, state: &State) -> bool {
    let tokens = state.tokens.read().unwrap_or_else(|p| p.into_inner());
    let Some(token) = tokens.admin.as_ref() else { return false };
    let given = req.headers().get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    given.is_some_and(|g| same_secret(g.trim().as_bytes(), token.expose().as_bytes()))
}

/// A query string longer than the API reads.
#[derive(Debug, thiserror::Error)]
#[error("query string longer than {MAX_QUERY} bytes")]
struct QueryTooLong;

/// Why a metrics scrape stopped before its end.
#[derive(Debug, thiserror::Error)]
enum ScrapeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("scraper went away")]
    Gone,
}

fn query_params(req: &Request<Incoming>) -> Result<Vec<(String, String)>, QueryTooLong> {
    let q = req.uri().query().unwrap_or("");
    if q.len() > MAX_QUERY {
        return Err(QueryTooLong);
    }
    Ok(q.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, ""))).map(|(k, v)| (k.into(), v.into())).collect())
}

pub(super) async fn blocking<T: Send + 'static>(
    state: &State,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response<Body>> {
    let path = state.store.clone();
    match tokio::task::spawn_blocking(move || {
        let store = Store::open_reader_at(&path)?;
        f(&store)
    })
    .await
    {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "HTTP request failed on the store");
            Err(error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))
        }
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
    }
}

pub async fn handle(req: Request<Incoming>, state: &Arc<State>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let get_only = |resp: Response<Body>| {
        if method == Method::GET || method == Method::HEAD {
            resp
        } else {
            let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "use GET");
            r.headers_mut().insert(hyper::header::ALLOW, hyper::header::HeaderValue::from_static("GET, HEAD"));
            r
        }
    };
    match segments.as_slice() {
        ["healthz"] => get_only(full(StatusCode::OK, "text/plain", "ok\n")),
        ["readyz"] if method == Method::GET => readyz(state).await,
        ["metrics"] if method == Method::GET => metrics(state).await,
        ["readyz"] | ["metrics"] => get_only(error(StatusCode::METHOD_NOT_ALLOWED, "")),
        ["ui", ..] => super::ui::handle(req, state).await,
        ["api", "v1", rest @ ..] => {
            if !authorized(&req, state) {
                let mut r = error(StatusCode::UNAUTHORIZED, "a valid bearer token is required (daemon.token in the configuration)");
                r.headers_mut()
                    .insert(hyper::header::WWW_AUTHENTICATE, hyper::header::HeaderValue::from_static("Bearer realm=\"certvigil\""));
                return r;
            }
            let params = match query_params(&req) {
                Ok(p) => p,
                Err(m) => return error(StatusCode::BAD_REQUEST, &m.to_string()),
            };
            match (rest, &method) {
                (["certificates"], &Method::GET) => certificates(state, &params).await,
                (["certificates", fp], &Method::GET) => certificate(state, fp).await,
                (["findings"], &Method::GET) => findings(state, &params).await,
                (["jobs"], &Method::GET) => jobs(state).await,
                (["jobs", name, "runs"], &Method::GET) => runs(state, name).await,
                (["jobs", name, "run"], &Method::POST) => trigger(state, name).await,
                (["jobs", _, "run"], _) => {
                    let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "use POST");
                    r.headers_mut().insert(hyper::header::ALLOW, hyper::header::HeaderValue::from_static("POST"));
                    r
                }
                (["certificates"] | ["certificates", _] | ["findings"] | ["jobs"] | ["jobs", _, "runs"], _) => {
                    get_only(error(StatusCode::METHOD_NOT_ALLOWED, ""))
                }
                _ => error(StatusCode::NOT_FOUND, &format!("no such endpoint: {path}")),
            }
        }
        _ => error(StatusCode::NOT_FOUND, &format!("no such endpoint: {path}")),
    }
}

async fn readyz(state: &Arc<State>) -> Response<Body> {
    if state.live.shutting_down.load(Ordering::SeqCst) {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    let names: Vec<String> = state.live.jobs.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|j| j.name.clone()).collect();
    let reload = state.reload.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let failing = blocking(state, move |s| {
        let mut failing = Vec::new();
        for n in names {
            let st = s.job_stats(&n)?;
            if let Some(r) = st.last.filter(|r| r.status == "failed" || r.status == "interrupted") {
                failing.push(serde_json::json!({"job": n, "status": r.status, "error": r.error}));
            }
        }
        Ok(failing)
    })
    .await;
    // With several daemons: who this is, who leads, what it holds.
    let cluster = state.cluster.as_ref().map(|c| {
        let s = c.status();
        serde_json::json!({
            "node": s.node,
            "leader": s.lease.as_ref().filter(|l| l.live()).map(|l| l.holder.clone()),
            "is_leader": s.is_leader,
            "token": s.lease.as_ref().map(|l| l.token),
            "lease_seconds": s.lease_seconds,
            "claims": s.claims.iter().map(|w| &w.key).collect::<Vec<_>>(),
        })
    });
    // Job runs are shared by the daemons on one store and run on the leader: a failing job
    // makes the leader unready, not every replica at once.
    let judged_here = state.cluster.as_ref().is_none_or(|c| c.fence.is_leader());
    match failing {
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the store cannot be read"),
        Ok(f) if !f.is_empty() && !judged_here => {
            json(StatusCode::OK, &serde_json::json!({"ready": true, "failing_jobs": f, "config": reload, "cluster": cluster}))
        }
        Ok(f) if !f.is_empty() => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"ready": false, "failing_jobs": f, "config": reload, "cluster": cluster}),
        ),
        Ok(_) => json(StatusCode::OK, &serde_json::json!({"ready": true, "config": reload, "cluster": cluster})),
    }
}

async fn metrics(state: &Arc<State>) -> Response<Body> {
    let t0 = std::time::Instant::now();
    let now = state.clock.now();
    let live: Vec<(String, String, bool)> = state
        .live
        .jobs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|j| (j.name.clone(), j.kind.to_string(), j.running_since.is_some()))
        .collect();
    let reload = state.reload.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let previous = state.last_scrape_micros.load(Ordering::Relaxed) as f64 / 1e6;
    let (compat, configured) = {
        let settings = state.settings.read().unwrap_or_else(|p| p.into_inner());
        (settings.daemon.metrics_compat, settings.sources.iter().map(|s| s.name().to_string()).collect::<Vec<_>>())
    };
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let path = state.store.clone();
    let st = Arc::clone(state);
    tokio::task::spawn_blocking(move || {
        let result = (|| -> Result<(), ScrapeError> {
            let store = Store::open_reader_at(&path)?;
            let mut summary = metrics::Summary {
                counts: store.counts()?,
                reload_ok: reload.ok,
                reload_success_at: reload.last_success_at,
                previous_scrape_seconds: previous,
                cluster: st.cluster.as_ref().map(|c| c.status()),
                ..Default::default()
            };
            if let Some(d) = store.last_job_detail("evaluate")? {
                summary.findings = serde_json::from_value(d["counts"].clone()).unwrap_or_default();
            }
            for (name, kind, running) in live {
                let stats = store.job_stats(&name)?;
                summary.jobs.push(metrics::JobFigures { name, kind, stats, running });
            }
            let mut buf = String::with_capacity(CHUNK_BYTES + 4096);
            metrics::render_summary(&mut buf, &summary, compat);
            if compat.v4() {
                metrics::render_sources(&mut buf, &store.source_samples()?, &store.source_error_samples()?, &configured);
                metrics::render_crls(&mut buf, &store.crl_samples(now)?, now);
            }
            let send = |buf: &mut String, force: bool| -> Result<(), ScrapeError> {
                if force || buf.len() >= CHUNK_BYTES {
                    let chunk = Bytes::from(std::mem::take(buf));
                    tx.blocking_send(chunk).map_err(|_| ScrapeError::Gone)?;
                }
                Ok(())
            };
            for family in ["x509_cert_not_after", "x509_cert_not_before", "x509_cert_expired"] {
                metrics::header(&mut buf, family);
                let mut err = Ok(());
                store.for_each_sighting(|s| {
                    if err.is_ok() {
                        metrics::sighting_sample(&mut buf, family, s, now, compat);
                        err = send(&mut buf, false);
                    }
                })?;
                err?;
            }
            for family in ["certvigil_cert_revoked", "certvigil_cert_revocation_unknown"] {
                metrics::header(&mut buf, family);
                let mut err = Ok(());
                store.for_each_revocation(|r| {
                    if err.is_ok() {
                        metrics::revocation_sample(&mut buf, family, r);
                        err = send(&mut buf, false);
                    }
                })?;
                err?;
            }
            send(&mut buf, true)
        })();
        st.last_scrape_micros.store(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        if let Err(e) = result {
            tracing::warn!(error = %e, "metrics scrape incomplete");
        }
    });
    let mut r = Response::new(ChannelBody(rx).boxed());
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(metrics::CONTENT_TYPE));
    r
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

async fn certificates(state: &Arc<State>, params: &[(String, String)]) -> Response<Body> {
    let include_gone = matches!(param(params, "include_gone"), Some("true" | "1"));
    let limit = match param(params, "limit").map(str::parse::<usize>) {
        None => 1000,
        Some(Ok(n)) if (1..=100_000).contains(&n) => n,
        _ => return error(StatusCode::BAD_REQUEST, "limit: a number from 1 to 100000"),
    };
    let offset = match param(params, "offset").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) => n,
        _ => return error(StatusCode::BAD_REQUEST, "offset: a number"),
    };
    let within = match param(params, "expiring_within").map(crate::config::parse_duration) {
        None => None,
        Some(Ok(d)) => Some(d.as_secs() as i64),
        Some(Err(m)) => return error(StatusCode::BAD_REQUEST, &format!("expiring_within: {m}")),
    };
    let filter = CertFilter {
        expiring_within: within,
        sources: param(params, "source").map(str::to_string).into_iter().collect(),
        owners: params.iter().filter(|(k, _)| k == "owner").map(|(_, v)| v.clone()).collect(),
        ..Default::default()
    };
    let settings = Arc::clone(&state.settings.read().unwrap_or_else(|p| p.into_inner()));
    let now = state.clock.now();
    let r = blocking(state, move |s| {
        // Every item shows its owner: they are loaded whatever the filter.
        let view = InventoryView::for_filter(s, &settings, now, &filter)?.with_owners(s)?;
        let all = s.certificates(include_gone)?;
        let statuses = s.revocation_statuses()?;
        let matching: Vec<_> = all.iter().filter(|c| filter.matches(c, &view)).collect();
        let total = matching.len();
        let items: Vec<serde_json::Value> = matching
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|c| {
                let mut v = serde_json::to_value(c).unwrap_or_default();
                v["revocation"] = serde_json::to_value(statuses.get(&c.id)).unwrap_or_default();
                v["owner"] = serde_json::to_value(view.owner_of(c)).unwrap_or_default();
                v
            })
            .collect();
        Ok(serde_json::json!({ "total": total, "offset": offset, "limit": limit, "items": items }))
    })
    .await;
    match r {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => e,
    }
}

async fn certificate(state: &Arc<State>, fp: &str) -> Response<Body> {
    if fp.len() < 8 || fp.len() > 64 || !fp.chars().all(|c| c.is_ascii_hexdigit()) {
        return error(StatusCode::BAD_REQUEST, "give at least 8 hex digits of the SHA-256 fingerprint");
    }
    let fp = fp.to_ascii_lowercase();
    let settings = Arc::clone(&state.settings.read().unwrap_or_else(|p| p.into_inner()));
    let r = blocking(state, move |s| match find_certificate(s, &fp, Naming::Fingerprint)? {
        Lookup::None => Ok(None),
        Lookup::One(c) => {
            let sightings = s.sightings(c.id)?;
            let history = s.history(c.id)?;
            let revocation = s.revocation_statuses()?.remove(&c.id);
            let owners = Owners::load_for(s, &settings.owners, &[c.id])?;
            let mut v = serde_json::to_value(&c).unwrap_or_default();
            v["owner"] = serde_json::to_value(owners.owner_of(&c)).unwrap_or_default();
            v["sightings"] = serde_json::to_value(sightings).unwrap_or_default();
            v["history"] = serde_json::to_value(history).unwrap_or_default();
            v["revocation"] = serde_json::to_value(revocation).unwrap_or_default();
            Ok(Some(Ok(v)))
        }
        Lookup::Many(many) => Ok(Some(Err(many.len()))),
    })
    .await;
    match r {
        Ok(None) => error(StatusCode::NOT_FOUND, "no certificate with that fingerprint"),
        Ok(Some(Err(n))) => error(StatusCode::CONFLICT, &format!("{n} certificates match: give more of the fingerprint")),
        Ok(Some(Ok(v))) => json(StatusCode::OK, &v),
        Err(e) => e,
    }
}

async fn findings(state: &Arc<State>, params: &[(String, String)]) -> Response<Body> {
    let severity = param(params, "severity").map(str::to_string);
    if let Some(s) = &severity
        && !["info", "warning", "critical"].contains(&s.as_str())
    {
        return error(StatusCode::BAD_REQUEST, "severity: info, warning or critical");
    }
    let settings = Arc::clone(&state.settings.read().unwrap_or_else(|p| p.into_inner()));
    let now = state.clock.now();
    let r = blocking(state, move |s| {
        let f = crate::app::evaluate::findings(s, &settings, now)?;
        let f: Vec<_> = f.into_iter().filter(|x| severity.as_deref().is_none_or(|sev| x.severity.as_str() == sev)).collect();
        Ok(serde_json::json!({ "at": crate::model::format_time(now), "total": f.len(), "items": f }))
    })
    .await;
    match r {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => e,
    }
}

async fn jobs(state: &Arc<State>) -> Response<Body> {
    let statuses = state.live.jobs.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let r = blocking(state, move |s| {
        let mut out = Vec::new();
        for j in statuses {
            let stats = s.job_stats(&j.name)?;
            let mut v = serde_json::to_value(&j).unwrap_or_default();
            v["last_run"] = serde_json::to_value(&stats.last).unwrap_or_default();
            v["last_success_at"] = serde_json::to_value(stats.last_success_at).unwrap_or_default();
            v["overruns"] = stats.overruns.into();
            out.push(v);
        }
        Ok(serde_json::Value::Array(out))
    })
    .await;
    match r {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => e,
    }
}

async fn runs(state: &Arc<State>, name: &str) -> Response<Body> {
    let name = name.to_string();
    let r = blocking(state, move |s| Ok(serde_json::to_value(s.job_runs(Some(&name), 100)?).unwrap_or_default())).await;
    match r {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => e,
    }
}

async fn trigger(state: &Arc<State>, name: &str) -> Response<Body> {
    let (reply, rx) = oneshot::channel();
    if state.control.send(Control::Trigger { job: name.to_string(), reply }).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the daemon is shutting down");
    }
    match rx.await {
        Ok(Ok(run)) => json(StatusCode::ACCEPTED, &serde_json::json!({ "job": name, "run_id": run, "status": "running" })),
        Ok(Err(e @ TriggerError::Unknown(_))) => error(StatusCode::NOT_FOUND, &e.to_string()),
        Ok(Err(e @ TriggerError::Running(..))) | Ok(Err(e @ TriggerError::NotLeader(_))) => error(StatusCode::CONFLICT, &e.to_string()),
        Ok(Err(e @ TriggerError::ShuttingDown)) | Ok(Err(e @ TriggerError::Store(_))) => {
            error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
        }
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the daemon is shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secret_comparison() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
        assert!(!same_secret(b"a", b""));
    }
}
