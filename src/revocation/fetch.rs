//! HTTP and file access for revocation data: timeouts, a body size limit enforced while
//! reading, conditional GET, bounded concurrency overall and per host (with an optional minimum
//! interval per host), and a per-pass record of hosts that are down ([`PassHosts`]).

use crate::config::HostLimits;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Transport failures after which a host is down for the rest of a pass: the first attempt
/// may meet a transient fault, the second confirms it.
pub const MAX_ATTEMPTS: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: timed out after {secs}s")]
    Timeout { url: String, secs: u64 },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("{url}: {message}")]
    Network { url: String, message: String },
    #[error("{url}: only http, https and file locations are fetched")]
    Scheme { url: String },
    #[error("{url}: responder host down: {host} ({reason})")]
    HostDown { url: String, host: String, reason: String },
}

impl FetchError {
    /// No HTTP answer came back (DNS, connection, TLS, timeout, a connection closed early):
    /// the host, not the request, is at fault.
    fn is_transport(&self) -> bool {
        matches!(self, FetchError::Timeout { .. } | FetchError::Network { .. })
    }
}

/// `host:port` of a URL, lower-case: the unit of per-host limits and of being down.
pub fn host_key(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(|h| format!("{}:{}", h.to_ascii_lowercase(), u.port_or_known_default().unwrap_or(0))))
        .unwrap_or_default()
}

/// One host as seen during one pass.
#[derive(Debug)]
struct HostState {
    /// Serialises requests until the host has answered once in this pass, so that a dead host
    /// costs at most [`MAX_ATTEMPTS`] connection attempts however many certificates depend on it.
    probe: Semaphore,
    up: AtomicBool,
    failures: AtomicU32,
    down: Mutex<Option<String>>,
}

/// The hosts of one revocation pass. A host that fails [`MAX_ATTEMPTS`] times in a row at the
/// transport level is down until the pass ends: every later request to it fails at once with
/// [`FetchError::HostDown`], without touching the network.
#[derive(Debug, Default)]
pub struct PassHosts {
    map: Mutex<HashMap<String, Arc<HostState>>>,
}

impl PassHosts {
    /// A pass in which `down` hosts (from earlier passes, still backing off) start down.
    pub fn with_down(down: impl IntoIterator<Item = (String, String)>) -> Self {
        let hosts = PassHosts::default();
        for (host, reason) in down {
            let st = hosts.state(&host);
            st.failures.store(MAX_ATTEMPTS, Ordering::Relaxed);
            *st.down.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
        }
        hosts
    }

    fn state(&self, host: &str) -> Arc<HostState> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(map.entry(host.to_string()).or_insert_with(|| {
            Arc::new(HostState {
                probe: Semaphore::new(1),
                up: AtomicBool::new(false),
                failures: AtomicU32::new(0),
                down: Mutex::new(None),
            })
        }))
    }

    /// The hosts that went down in this pass, with the reason, and those that answered.
    pub fn outcome(&self) -> (Vec<(String, String)>, Vec<String>) {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let mut down = Vec::new();
        let mut up = Vec::new();
        for (host, st) in map.iter() {
            match st.down.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                Some(reason) => down.push((host.clone(), reason)),
                None if st.up.load(Ordering::Relaxed) => up.push(host.clone()),
                None => {}
            }
        }
        (down, up)
    }
}

impl HostState {
    fn down_error(&self, url: &str, host: &str) -> Option<FetchError> {
        let down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        down.as_ref().map(|reason| FetchError::HostDown { url: url.to_string(), host: host.to_string(), reason: reason.clone() })
    }
}

/// A fetched body, or "not modified" for a conditional GET.
#[derive(Debug)]
pub enum Fetched {
    Body { bytes: Vec<u8>, etag: Option<String>, last_modified: Option<String> },
    NotModified,
}

/// A name's addresses or why it has none, once looked up.
type Answer = tokio::sync::OnceCell<Result<Vec<SocketAddr>, String>>;

/// How a name is turned into addresses (the system resolver, or a table in tests).
type Lookup =
    Arc<dyn Fn(String) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<SocketAddr>, String>> + Send>> + Send + Sync>;

/// DNS answers, each name looked up once until [`DnsCache::clear`] (at the start of every
/// revocation pass): 100,000 certificates naming one responder make one query, not 100,000.
/// Failures are kept too, so a name that does not resolve is not asked again in the pass.
/// Concurrent requests for a name wait for the one lookup in flight. (Addresses in URLs, such
/// as 127.0.0.1, never reach it.)
pub struct DnsCache {
    answers: Mutex<HashMap<String, Arc<Answer>>>,
    lookups: AtomicU32,
    lookup: Lookup,
}

impl DnsCache {
    /// Over the system resolver (`getaddrinfo`, through tokio).
    pub fn system() -> DnsCache {
        DnsCache::with_lookup(Arc::new(|name: String| {
            Box::pin(
                async move { tokio::net::lookup_host((name.as_str(), 0)).await.map(|a| a.collect::<Vec<_>>()).map_err(|e| e.to_string()) },
            )
        }))
    }

    fn with_lookup(lookup: Lookup) -> DnsCache {
        DnsCache { answers: Mutex::new(HashMap::new()), lookups: AtomicU32::new(0), lookup }
    }

    /// Forgets every answer: the next request for each name looks it up again.
    pub fn clear(&self) {
        self.answers.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Lookups made so far.
    pub fn lookups(&self) -> u32 {
        self.lookups.load(Ordering::Relaxed)
    }

    async fn resolve(&self, name: &str) -> Result<Vec<SocketAddr>, String> {
        let name = name.to_ascii_lowercase();
        let cell = Arc::clone(self.answers.lock().unwrap_or_else(|p| p.into_inner()).entry(name.clone()).or_default());
        cell.get_or_init(|| {
            self.lookups.fetch_add(1, Ordering::Relaxed);
            (self.lookup)(name)
        })
        .await
        .clone()
    }
}

/// reqwest's resolver over a shared [`DnsCache`].
struct CachedResolver(Arc<DnsCache>);

impl reqwest::dns::Resolve for CachedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let cache = Arc::clone(&self.0);
        let name = name.as_str().to_string();
        Box::pin(async move {
            match cache.resolve(&name).await {
                Ok(addrs) if !addrs.is_empty() => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                Ok(_) => Err(format!("{name}: no addresses").into()),
                Err(e) => Err(e.into()),
            }
        })
    }
}

pub struct Http {
    client: reqwest::Client,
    /// The client's DNS answers, cleared at each pass ([`Http::new_pass`]).
    dns: Arc<DnsCache>,
    timeout: Duration,
    permits: Semaphore,
    per_host: HostLimits,
    overrides: BTreeMap<String, HostLimits>,
    host_permits: Mutex<HashMap<String, Arc<Semaphore>>>,
    next_slot: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http").field("timeout", &self.timeout).finish()
    }
}

impl Http {
    /// `overrides` are keyed by `host` or `host:port` (lower-case).
    pub fn new(
        timeout: Duration,
        concurrency: usize,
        per_host: HostLimits,
        overrides: BTreeMap<String, HostLimits>,
    ) -> Result<Self, FetchError> {
        Http::with_dns(timeout, concurrency, per_host, overrides, Arc::new(DnsCache::system()))
    }

    fn with_dns(
        timeout: Duration,
        concurrency: usize,
        per_host: HostLimits,
        overrides: BTreeMap<String, HostLimits>,
        dns: Arc<DnsCache>,
    ) -> Result<Self, FetchError> {
        crate::net::install_crypto_provider();
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(CachedResolver(Arc::clone(&dns))))
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("certvigil/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Network { url: String::new(), message: e.to_string() })?;
        Ok(Http {
            client,
            dns,
            timeout,
            permits: Semaphore::new(concurrency.max(1)),
            per_host,
            overrides,
            host_permits: Mutex::new(HashMap::new()),
            next_slot: Mutex::new(HashMap::new()),
        })
    }

    /// Starts a pass: DNS answers of earlier passes are forgotten.
    pub fn new_pass(&self) {
        self.dns.clear();
    }

    /// DNS lookups made so far.
    pub fn dns_lookups(&self) -> u32 {
        self.dns.lookups()
    }

    /// The limits of a host (`host:port`) and the key they are counted under: its own
    /// `host:port` entry, else its name's entry (shared by every port of that name), else the
    /// default (per `host:port`).
    fn limits(&self, host: &str) -> (String, HostLimits) {
        let name = host.rsplit_once(':').map_or(host, |(n, _)| n);
        match (self.overrides.get(host), self.overrides.get(name)) {
            (Some(l), _) => (host.to_string(), *l),
            (None, Some(l)) => (name.to_string(), *l),
            (None, None) => (host.to_string(), self.per_host),
        }
    }

    /// Waits for this host's next free slot, so no host sees more than one request per interval.
    async fn pace(&self, host: &str, interval: Duration) {
        if interval.is_zero() {
            return;
        }
        let wait_until = {
            let mut slots = self.next_slot.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let slot = slots.get(host).copied().filter(|s| *s > now).unwrap_or(now);
            slots.insert(host.to_string(), slot + interval);
            slot
        };
        tokio::time::sleep_until(wait_until).await;
    }

    /// Runs one request to `url`'s host within its limits and the pass's record of it: refused
    /// at once when the host is down, one at a time until the host has answered in this pass,
    /// then up to its concurrency; a transport failure counts towards the host being down.
    async fn guarded<T>(
        &self,
        url: &str,
        hosts: &PassHosts,
        request: impl std::future::Future<Output = Result<T, FetchError>>,
    ) -> Result<T, FetchError> {
        let host = host_key(url);
        let st = hosts.state(&host);
        if let Some(e) = st.down_error(url, &host) {
            return Err(e);
        }
        // One request at a time until the host has answered in this pass; once it has, those
        // still queued on the probe pass straight through.
        let probe = if st.up.load(Ordering::Acquire) { None } else { Some(st.probe.acquire().await) };
        let _probe = probe.filter(|_| !st.up.load(Ordering::Acquire));
        if let Some(e) = st.down_error(url, &host) {
            return Err(e);
        }
        let (limits_key, limits) = self.limits(&host);
        let host_permits = {
            let mut map = self.host_permits.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(map.entry(limits_key.clone()).or_insert_with(|| Arc::new(Semaphore::new(limits.concurrency.max(1)))))
        };
        let _host_permit = host_permits.acquire().await;
        let _permit = self.permits.acquire().await;
        self.pace(&limits_key, limits.interval).await;
        let result = request.await;
        match &result {
            // Consecutive transport failures: a host that answers now and then stays up.
            Err(e) if e.is_transport() => {
                if st.failures.fetch_add(1, Ordering::AcqRel) + 1 >= MAX_ATTEMPTS {
                    let mut down = st.down.lock().unwrap_or_else(|p| p.into_inner());
                    if down.is_none() {
                        tracing::warn!(host, error = %e, "responder host down for the rest of this revocation pass");
                        *down = Some(e.to_string().trim_start_matches(&format!("{url}: ")).to_string());
                    }
                }
            }
            _ => {
                st.failures.store(0, Ordering::Release);
                st.up.store(true, Ordering::Release);
            }
        }
        result
    }

    fn map_err(&self, url: &str, e: reqwest::Error) -> FetchError {
        if e.is_timeout() {
            FetchError::Timeout { url: url.to_string(), secs: self.timeout.as_secs() }
        } else {
            let mut message = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                message = format!("{message}: {s}");
                src = s.source();
            }
            FetchError::Network { url: url.to_string(), message }
        }
    }

    async fn read_limited(&self, url: &str, mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, FetchError> {
        let too_large = || FetchError::TooLarge { url: url.to_string(), limit };
        let declared = resp.content_length().map(|n| n as usize);
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        // Exact pre-allocation when the length is declared: no doubling overshoot in memory.
        let mut body = Vec::with_capacity(declared.unwrap_or(0));
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.map_err(url, e))? {
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// GET with an optional conditional (ETag, Last-Modified). `file://` URLs and absolute
    /// paths are read from disk.
    pub async fn get(
        &self,
        url: &str,
        limit: usize,
        conditional: Option<(Option<&str>, Option<&str>)>,
        hosts: &PassHosts,
    ) -> Result<Fetched, FetchError> {
        if let Some(path) = url.strip_prefix("file://").or_else(|| url.starts_with('/').then_some(url)) {
            return read_file(url, Path::new(path), limit).map(|bytes| Fetched::Body { bytes, etag: None, last_modified: None });
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(FetchError::Scheme { url: url.to_string() });
        }
        self.guarded(url, hosts, self.get_now(url, limit, conditional)).await
    }

    async fn get_now(&self, url: &str, limit: usize, conditional: Option<(Option<&str>, Option<&str>)>) -> Result<Fetched, FetchError> {
        let mut req = self.client.get(url);
        if let Some((etag, lm)) = conditional {
            if let Some(e) = etag {
                req = req.header(reqwest::header::IF_NONE_MATCH, e);
            }
            if let Some(l) = lm {
                req = req.header(reqwest::header::IF_MODIFIED_SINCE, l);
            }
        }
        let resp = req.send().await.map_err(|e| self.map_err(url, e))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_MODIFIED && conditional.is_some() {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            return Err(FetchError::Status { url: url.to_string(), status: status.as_u16() });
        }
        let header = |h: reqwest::header::HeaderName| resp.headers().get(h).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (etag, last_modified) = (header(reqwest::header::ETAG), header(reqwest::header::LAST_MODIFIED));
        let bytes = self.read_limited(url, resp, limit).await?;
        Ok(Fetched::Body { bytes, etag, last_modified })
    }

    /// POST `body` with `content_type`; returns the response body.
    pub async fn post(&self, url: &str, body: Vec<u8>, content_type: &str, limit: usize, hosts: &PassHosts) -> Result<Vec<u8>, FetchError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(FetchError::Scheme { url: url.to_string() });
        }
        self.guarded(url, hosts, self.post_now(url, body, content_type, limit)).await
    }

    async fn post_now(&self, url: &str, body: Vec<u8>, content_type: &str, limit: usize) -> Result<Vec<u8>, FetchError> {
        let resp = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| self.map_err(url, e))?;
        if !resp.status().is_success() {
            return Err(FetchError::Status { url: url.to_string(), status: resp.status().as_u16() });
        }
        self.read_limited(url, resp, limit).await
    }
}

fn read_file(url: &str, path: &Path, limit: usize) -> Result<Vec<u8>, FetchError> {
    use std::io::Read;
    let err = |e: std::io::Error| FetchError::Network { url: url.to_string(), message: e.to_string() };
    let file = std::fs::File::open(path).map_err(err)?;
    let len = file.metadata().map_err(err)?.len() as usize;
    if len > limit {
        return Err(FetchError::TooLarge { url: url.to_string(), limit });
    }
    let mut buf = Vec::with_capacity(len);
    file.take(limit as u64 + 1).read_to_end(&mut buf).map_err(err)?;
    if buf.len() > limit {
        return Err(FetchError::TooLarge { url: url.to_string(), limit });
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A loopback HTTP server answering every request with 200 and closing the connection (so
    /// that each request needs a new connection, hence a resolution); counts connections.
    async fn server() -> (u16, Arc<AtomicU32>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicU32::new(0));
        let seen = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                seen.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok").await;
                });
            }
        });
        (port, connections)
    }

    /// Names from a table (never the system resolver): `crl.example.test` is 127.0.0.1, any
    /// other name does not exist.
    fn table() -> Arc<DnsCache> {
        Arc::new(DnsCache::with_lookup(Arc::new(|name: String| {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                match name.as_str() {
                    "crl.example.test" => Ok(vec![SocketAddr::from(([127, 0, 0, 1], 0))]),
                    _ => Err(format!("{name}: no such name")),
                }
            })
        })))
    }

    #[tokio::test]
    async fn one_lookup_per_name_per_pass_for_answers_and_failures() {
        let (port, connections) = server().await;
        let limits = HostLimits { concurrency: 4, interval: Duration::ZERO };
        let http = Arc::new(Http::with_dns(Duration::from_secs(5), 16, limits, BTreeMap::new(), table()).unwrap());
        let hosts = Arc::new(PassHosts::default());
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..20 {
            let (http, hosts) = (Arc::clone(&http), Arc::clone(&hosts));
            // The name in any case is the same name.
            let url = format!("http://{}:{port}/crl{i}", if i % 2 == 0 { "crl.example.test" } else { "CRL.Example.TEST" });
            tasks.spawn(async move { http.get(&url, 100, None, &hosts).await });
        }
        while let Some(r) = tasks.join_next().await {
            assert!(matches!(r.unwrap(), Ok(Fetched::Body { .. })));
        }
        assert_eq!(connections.load(Ordering::Relaxed), 20, "each request had its own connection");
        assert_eq!(http.dns_lookups(), 1);

        // A name that does not resolve: looked up once; the host is down after two failures.
        let mut errors = Vec::new();
        for i in 0..10 {
            errors.push(http.get(&format!("http://nowhere.example.test:{port}/{i}"), 100, None, &hosts).await.unwrap_err());
        }
        assert_eq!(http.dns_lookups(), 2);
        assert!(matches!(errors[0], FetchError::Network { .. }), "{:?}", errors[0]);
        assert!(errors[2..].iter().all(|e| matches!(e, FetchError::HostDown { .. })), "{errors:?}");

        // A new pass asks again.
        http.new_pass();
        let hosts = PassHosts::default();
        assert!(http.get(&format!("http://crl.example.test:{port}/again"), 100, None, &hosts).await.is_ok());
        assert_eq!(http.dns_lookups(), 3);
        // Addresses are not names: no lookup.
        assert!(http.get(&format!("http://127.0.0.1:{port}/ip"), 100, None, &hosts).await.is_ok());
        assert_eq!(http.dns_lookups(), 3);
    }
}
