//! OpenBao / HashiCorp Vault (one HTTP API): certificates of PKI mounts and PEM certificates held
//! in KV version 2 secrets.
//!
//! Listing is cheap and fetches nothing that a stamp can vouch for:
//! - PKI: `LIST <mount>/certs` (paged with `after`/`limit` where the server supports it, else
//!   one list) gives the serials; the stamp is the serial (a certificate is immutable), marked
//!   `;revoked` for the serials of `LIST <mount>/certs/revoked`, so a revocation is read once.
//!   Issuers (`LIST <mount>/issuers`, `GET <mount>/issuer/<id>`, `GET <mount>/config/urls`) are
//!   read while listing: they are few, and their stamp must cover their CRL and OCSP settings.
//! - KV v2: the folder tree under the prefix, with each secret's current version from
//!   `LIST <mount>/detailed-metadata/<folder>` (OpenBao: one request per folder) or, where the
//!   server has no such path (Vault), `LIST <mount>/metadata/<folder>` and `GET
//!   <mount>/metadata/<path>` per secret. The stamp is the version: an unchanged secret is not
//!   read again.
//!
//! Locations: `vault:<mount>/cert/<serial>`, `vault:<mount>/issuer/<issuer id>` and
//! `vault:<mount>/<secret path>`. A mount (or KV folder) that cannot be listed is reported as
//! unavailable under `vault:<mount>/…`, so what was seen there before is not taken for gone.
//!
//! Every request goes through one semaphore (`concurrency`), has the configured timeout and a
//! 16 MiB answer limit, and is counted. Tokens are renewed before their TTL runs out
//! (`renew-self` when renewable, else a new login); a 401/403 that turns out to come from a
//! dead token (checked with `lookup-self`) triggers one new login and one retry. Tokens are
//! never logged and are sent as sensitive header values.

use super::{Fetched, Listing, Source, SourceError};
use crate::config::secret::{Secret, SecretRef};
use crate::config::sources::vault::{AuthSpec, KvSpec, Value as ConfigValue, VaultSpec};
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest answer read from the server.
const MAX_RESPONSE: usize = 16 << 20;
/// Largest service-account token file read.
const MAX_JWT: u64 = 64 * 1024;
/// Transient failures (connection, 429, 502–504) are retried this many times.
const RETRIES: u32 = 2;

pub struct VaultSource {
    spec: VaultSpec,
    /// The client, or why it could not be built (reported by `list`).
    inner: Result<Arc<Inner>, String>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl VaultSource {
    pub fn new(spec: VaultSpec) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("certvigil-vault")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the HTTP runtime: {e}"));
        let inner = runtime.as_ref().map_err(Clone::clone).and_then(|_| Inner::new(spec.clone()).map(Arc::new));
        VaultSource { spec, inner, runtime: runtime.ok() }
    }

    fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> Option<T> {
        self.runtime.as_ref().map(|rt| rt.block_on(f))
    }

    /// Where each configured mount lists, for reporting a failure of the whole source.
    fn prefixes(&self) -> Vec<String> {
        let pki = self.spec.pki_mounts.iter().map(|m| format!("vault:{m}/"));
        pki.chain(self.spec.kv_mounts.iter().map(|k| format!("vault:{}/{}", k.mount, k.prefix))).collect()
    }
}

impl Drop for VaultSource {
    fn drop(&mut self) {
        if let Ok(inner) = &self.inner {
            let requests = inner.requests.load(Ordering::Relaxed);
            if requests > 0 {
                tracing::info!(
                    source = %self.spec.name,
                    requests,
                    logins = inner.logins.load(Ordering::Relaxed),
                    renewals = inner.renewals.load(Ordering::Relaxed),
                    "{requests} requests in all"
                );
            }
        }
        // Dropping a runtime may block; the daemon drops sources on its own runtime's threads.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Source for VaultSource {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn kind(&self) -> &'static str {
        "vault"
    }

    fn tags(&self) -> &[String] {
        &self.spec.tags
    }

    fn list(&self, out: &mut dyn FnMut(Listing)) {
        let inner = match &self.inner {
            Ok(i) => Arc::clone(i),
            Err(e) => {
                for prefix in self.prefixes() {
                    out(Listing::Unavailable { prefix, message: e.clone() });
                }
                return;
            }
        };
        inner.reset();
        let before = inner.requests.load(Ordering::Relaxed);
        self.block_on(async {
            // A login that fails fails every mount the same way: say so once per mount.
            if let Err(e) = inner.token().await {
                for prefix in self.prefixes() {
                    out(Listing::Unavailable { prefix, message: e.to_string() });
                }
                return;
            }
            for mount in &self.spec.pki_mounts {
                inner.list_pki(mount, out).await;
            }
            for kv in &self.spec.kv_mounts {
                Arc::clone(&inner).list_kv(kv, out).await;
            }
        });
        let n = inner.requests.load(Ordering::Relaxed) - before;
        tracing::info!(source = %self.spec.name, requests = n, "listing done: {n} requests");
    }

    fn fetch(&self, location: &str) -> Result<Fetched, String> {
        let inner = self.inner.as_ref().map_err(Clone::clone)?;
        match self.block_on(inner.fetch(location)) {
            Some(r) => r.map_err(|e| e.to_string()),
            None => Err("no HTTP runtime".into()),
        }
    }

    fn passwords(&self) -> Result<Vec<Secret>, SourceError> {
        Ok(Vec::new())
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

#[derive(Debug, Clone, PartialEq, Eq)]
enum ApiError {
    /// The server answered with an error status and its `errors` array.
    Status { method: &'static str, path: String, status: u16, errors: Vec<String> },
    /// No answer (connection, TLS, timeout), or an unreadable one.
    Transport { method: &'static str, path: String, message: String },
    /// Logging in (or reading the credentials to) failed.
    Auth(String),
    /// The answer lacks what it should hold.
    Answer { path: String, message: String },
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Status { method, path, status, errors } if errors.is_empty() => write!(f, "{method} {path}: HTTP {status}"),
            ApiError::Status { method, path, status, errors } => write!(f, "{method} {path}: HTTP {status}: {}", errors.join("; ")),
            ApiError::Transport { method, path, message } => write!(f, "{method} {path}: {message}"),
            ApiError::Auth(m) => f.write_str(m),
            ApiError::Answer { path, message } => write!(f, "{path}: {message}"),
        }
    }
}

impl ApiError {
    fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Vault answers a LIST of an empty or absent folder with 404 and no errors.
    fn is_empty_list(&self) -> bool {
        matches!(self, ApiError::Status { status: 404, errors, .. } if errors.is_empty())
    }

    fn is_denied(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }
}

/// Vault wraps some messages as `1 error occurred:\n\t* permission denied\n\n`: keep the items.
fn clean_error(e: &str) -> String {
    let body = match e.split_once("occurred:") {
        Some((head, rest)) if head.trim().ends_with("error") || head.trim().ends_with("errors") => rest,
        _ => e,
    };
    let items: Vec<&str> = body.split('\n').map(|l| l.trim().trim_start_matches("* ").trim()).filter(|l| !l.is_empty()).collect();
    items.join("; ")
}

// ---------------------------------------------------------------------------------------------
// Client and authentication

#[derive(Clone)]
struct Token {
    secret: Secret,
    /// Changes with every new token (not with a renewal), so concurrent requests that failed
    /// with the same dead token cause one login between them.
    generation: u64,
    /// When to renew or log in again; `None`: never (no TTL, or nothing can be done).
    refresh_at: Option<Instant>,
    renewable: bool,
    /// The TTL the token had when obtained.
    ttl: Duration,
}

#[derive(Default)]
struct AuthState {
    token: Option<Token>,
    generation: u64,
    /// A login that failed during this scan is not tried again for every object.
    failed: Option<ApiError>,
    warned_not_renewable: bool,
}

struct Inner {
    spec: VaultSpec,
    http: reqwest::Client,
    base: reqwest::Url,
    permits: tokio::sync::Semaphore,
    requests: AtomicU64,
    logins: AtomicU64,
    renewals: AtomicU64,
    auth: Mutex<AuthState>,
    /// Held while a token is obtained, renewed or checked: one at a time.
    refresh: tokio::sync::Mutex<()>,
    /// Issuers read while listing, handed out by `fetch` without another request.
    issuers: Mutex<HashMap<String, Fetched>>,
    /// The version each KV secret was listed at: `fetch` reads exactly that version.
    versions: Mutex<HashMap<String, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The TTL of an auth answer (`lease_duration`) or a lookup (`ttl`), in seconds.
fn seconds(v: &Value) -> Duration {
    Duration::from_secs(v.as_u64().or_else(|| v.as_i64().map(|n| n.max(0) as u64)).unwrap_or(0))
}

/// Renew (or log in again) after two thirds of the TTL, as Vault's own agent does.
fn refresh_at(obtained: Instant, ttl: Duration) -> Option<Instant> {
    (!ttl.is_zero()).then(|| obtained + ttl * 2 / 3)
}

impl Inner {
    fn new(spec: VaultSpec) -> Result<Self, String> {
        crate::net::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(spec.timeout)
            .connect_timeout(spec.timeout)
            // A standby node redirects to the active one; a token must not follow a redirect
            // to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(spec.concurrency)
            .user_agent(concat!("certvigil/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &spec.ca_bundle {
            let what = |e: String| format!("ca_bundle {}: {e}", path.display());
            let meta = std::fs::metadata(path).map_err(|e| what(e.to_string()))?;
            if meta.len() > 4 << 20 {
                return Err(what("larger than 4 MiB".into()));
            }
            let pem = std::fs::read(path).map_err(|e| what(e.to_string()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| what(e.to_string()))?;
            if certs.is_empty() {
                return Err(what("holds no PEM certificate".into()));
            }
            builder = builder.tls_certs_only(certs);
        }
        let http = builder.build().map_err(|e| format!("cannot set up the HTTP client: {}", chain(&e)))?;
        let base = reqwest::Url::parse(&spec.address).map_err(|e| format!("address {}: {e}", spec.address))?;
        Ok(Inner {
            permits: tokio::sync::Semaphore::new(spec.concurrency.max(1)),
            spec,
            http,
            base,
            requests: AtomicU64::new(0),
            logins: AtomicU64::new(0),
            renewals: AtomicU64::new(0),
            auth: Mutex::new(AuthState::default()),
            refresh: tokio::sync::Mutex::new(()),
            issuers: Mutex::new(HashMap::new()),
            versions: Mutex::new(HashMap::new()),
        })
    }

    /// A new scan: a login that failed last time is tried again.
    fn reset(&self) {
        lock(&self.auth).failed = None;
        lock(&self.issuers).clear();
        lock(&self.versions).clear();
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> reqwest::Url {
        let mut url = self.base.clone();
        if let Ok(mut segs) = url.path_segments_mut() {
            segs.clear().push("v1").extend(path.split('/'));
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// One request, without authentication logic. Transient failures are retried.
    async fn send(
        &self,
        method: &'static str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        token: Option<&Secret>,
    ) -> Result<Value, ApiError> {
        let mut attempt = 0;
        loop {
            let r = self.send_once(method, path, query, body, token).await;
            let transient = match &r {
                Err(ApiError::Transport { .. }) => true,
                Err(e) => matches!(e.status(), Some(429 | 502 | 503 | 504)),
                Ok(_) => false,
            };
            if !transient || attempt >= RETRIES {
                return r;
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
        }
    }

    async fn send_once(
        &self,
        method: &'static str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        token: Option<&Secret>,
    ) -> Result<Value, ApiError> {
        let transport = |message: String| ApiError::Transport { method, path: path.to_string(), message };
        let m = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| transport(e.to_string()))?;
        let mut req = self.http.request(m, self.url(path, query)).header("X-Vault-Request", "true");
        if let Some(t) = token {
            let mut v = reqwest::header::HeaderValue::from_str(t.expose())
                .map_err(|_| transport("the token is not a valid header value".into()))?;
            v.set_sensitive(true);
            req = req.header("X-Vault-Token", v);
        }
        if let Some(ns) = &self.spec.namespace {
            req = req.header("X-Vault-Namespace", ns.as_str());
        }
        if let Some(b) = body {
            req = req.header(reqwest::header::CONTENT_TYPE, "application/json").body(b.to_string());
        }
        let _permit = self.permits.acquire().await.map_err(|e| transport(e.to_string()))?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut resp = req.send().await.map_err(|e| transport(chain(&e)))?;
        let status = resp.status();
        if resp.content_length().is_some_and(|n| n as usize > MAX_RESPONSE) {
            return Err(transport(format!("answer larger than {} MiB", MAX_RESPONSE >> 20)));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| transport(chain(&e)))? {
            if bytes.len() + chunk.len() > MAX_RESPONSE {
                return Err(transport(format!("answer larger than {} MiB", MAX_RESPONSE >> 20)));
            }
            bytes.extend_from_slice(&chunk);
        }
        let json: Option<Value> = if bytes.iter().all(u8::is_ascii_whitespace) { None } else { serde_json::from_slice(&bytes).ok() };
        if status.is_success() {
            return match json {
                Some(v) => Ok(v),
                None if status == reqwest::StatusCode::NO_CONTENT || bytes.is_empty() => Ok(Value::Null),
                None => Err(transport(format!("HTTP {}: the answer is not JSON", status.as_u16()))),
            };
        }
        let mut errors: Vec<String> = json
            .as_ref()
            .and_then(|j| j.get("errors"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(clean_error).filter(|e| !e.is_empty()).collect())
            .unwrap_or_default();
        if status.is_redirection() {
            let to = resp.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok()).unwrap_or("?");
            errors.push(format!("redirected to {to}: point `address` at the active node or its load balancer"));
        }
        Err(ApiError::Status { method, path: path.to_string(), status: status.as_u16(), errors })
    }

    /// An authenticated request; a 401/403 caused by a dead token means one new login and one
    /// retry.
    async fn call(&self, method: &'static str, path: &str, query: &[(&str, &str)]) -> Result<Value, ApiError> {
        let token = self.token().await?;
        match self.send(method, path, query, None, Some(&token.secret)).await {
            Err(e) if e.is_denied() && self.can_login() => match self.replace_dead(&token).await? {
                Some(fresh) => self.send(method, path, query, None, Some(&fresh.secret)).await,
                None => Err(e),
            },
            r => r,
        }
    }

    fn can_login(&self) -> bool {
        !matches!(self.spec.auth, AuthSpec::Token { .. })
    }

    fn method(&self) -> &'static str {
        self.spec.auth.method()
    }

    /// A token that is good for now: the current one, renewed or replaced when due.
    async fn token(&self) -> Result<Token, ApiError> {
        let fresh = |t: &Token| t.refresh_at.is_none_or(|at| Instant::now() < at);
        {
            let st = lock(&self.auth);
            if let Some(e) = &st.failed {
                return Err(e.clone());
            }
            if let Some(t) = st.token.as_ref().filter(|t| fresh(t)) {
                return Ok(t.clone());
            }
        }
        let _one = self.refresh.lock().await;
        let current = {
            let st = lock(&self.auth);
            if let Some(e) = &st.failed {
                return Err(e.clone());
            }
            match &st.token {
                Some(t) if fresh(t) => return Ok(t.clone()),
                t => t.clone(),
            }
        };
        let got = match current {
            None => self.first_token().await,
            Some(t) => self.refresh_token(t).await,
        };
        let mut st = lock(&self.auth);
        match got {
            Ok(t) => {
                st.token = Some(t.clone());
                Ok(t)
            }
            Err(e) => {
                st.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    fn next_generation(&self) -> u64 {
        let mut st = lock(&self.auth);
        st.generation += 1;
        st.generation
    }

    async fn first_token(&self) -> Result<Token, ApiError> {
        match &self.spec.auth {
            AuthSpec::Token { token } => {
                let secret = resolve(token, "token", "token")?;
                // The TTL and renewability, when the token may look itself up.
                let obtained = Instant::now();
                let (ttl, renewable) = match self.send("GET", "auth/token/lookup-self", &[], None, Some(&secret)).await {
                    Ok(v) => (seconds(&v["data"]["ttl"]), v["data"]["renewable"].as_bool().unwrap_or(false)),
                    // A token without the default policy may not look itself up: use it as it
                    // is (a dead one shows as refusals on the mounts).
                    Err(e) if e.is_denied() => {
                        tracing::debug!(source = %self.spec.name, error = %e, "token lookup refused: its TTL is unknown");
                        (Duration::ZERO, false)
                    }
                    Err(e) => return Err(ApiError::Auth(format!("token auth: {e}"))),
                };
                let generation = self.next_generation();
                Ok(Token { secret, generation, refresh_at: refresh_at(obtained, ttl), renewable, ttl })
            }
            _ => self.login().await,
        }
    }

    /// Renews the token when it can (and the renewal is not cut short by its max TTL), else
    /// logs in again.
    async fn refresh_token(&self, t: Token) -> Result<Token, ApiError> {
        if t.renewable {
            let obtained = Instant::now();
            self.renewals.fetch_add(1, Ordering::Relaxed);
            match self.send("POST", "auth/token/renew-self", &[], Some(&json!({})), Some(&t.secret)).await {
                Ok(v) => {
                    let ttl = seconds(&v["auth"]["lease_duration"]);
                    let renewable = v["auth"]["renewable"].as_bool().unwrap_or(false);
                    tracing::debug!(source = %self.spec.name, ttl = ttl.as_secs(), "token renewed");
                    // Near its max TTL a renewal grants less than the TTL: a new login is better
                    // than a token that dies sooner and sooner.
                    if !self.can_login() || ttl >= t.ttl {
                        return Ok(Token { refresh_at: refresh_at(obtained, ttl), renewable, ..t });
                    }
                }
                Err(e) if !self.can_login() => return Err(ApiError::Auth(format!("token auth: renewal failed: {e}"))),
                Err(e) => tracing::debug!(source = %self.spec.name, error = %e, "token renewal failed; logging in again"),
            }
        }
        if self.can_login() {
            return self.login().await;
        }
        let mut st = lock(&self.auth);
        if !st.warned_not_renewable {
            st.warned_not_renewable = true;
            tracing::warn!(source = %self.spec.name, "the configured token is not renewable: it stops working at the end of its TTL");
        }
        Ok(Token { refresh_at: None, ..t })
    }

    /// After a 401/403 with `used`: `Some(token)` to retry with when `used` is dead (and a new
    /// login worked), `None` when `used` is alive and the refusal is a real one.
    async fn replace_dead(&self, used: &Token) -> Result<Option<Token>, ApiError> {
        let _one = self.refresh.lock().await;
        let current = lock(&self.auth).token.clone();
        if let Some(c) = current.filter(|c| c.generation != used.generation) {
            return Ok(Some(c)); // another request already logged in again
        }
        match self.send("GET", "auth/token/lookup-self", &[], None, Some(&used.secret)).await {
            Ok(_) => return Ok(None),
            Err(e) if !e.is_denied() => return Ok(None),
            Err(_) => {}
        }
        tracing::info!(source = %self.spec.name, method = self.method(), "token no longer valid: logging in again");
        match self.login().await {
            Ok(t) => {
                lock(&self.auth).token = Some(t.clone());
                Ok(Some(t))
            }
            Err(e) => {
                lock(&self.auth).failed = Some(e.clone());
                Err(e)
            }
        }
    }

    async fn login(&self) -> Result<Token, ApiError> {
        let method = self.method();
        let (mount, body) = match &self.spec.auth {
            AuthSpec::Token { .. } => return Err(ApiError::Auth("token auth cannot log in".into())),
            AuthSpec::AppRole { role_id, secret_id, mount } => {
                let role_id = match role_id {
                    ConfigValue::Plain(s) => s.clone(),
                    ConfigValue::Secret(r) => resolve(r, method, "role_id")?.expose().to_string(),
                };
                let secret_id = resolve(secret_id, method, "secret_id")?;
                (mount, json!({"role_id": role_id, "secret_id": secret_id.expose()}))
            }
            AuthSpec::Kubernetes { role, jwt_path, mount } => {
                let what = |e: String| ApiError::Auth(format!("kubernetes login: service-account token {}: {e}", jwt_path.display()));
                let meta = std::fs::metadata(jwt_path).map_err(|e| what(e.to_string()))?;
                if meta.len() > MAX_JWT {
                    return Err(what(format!("larger than {MAX_JWT} bytes")));
                }
                let jwt = std::fs::read_to_string(jwt_path).map_err(|e| what(e.to_string()))?;
                (mount, json!({"role": role, "jwt": jwt.trim()}))
            }
        };
        let path = format!("auth/{mount}/login");
        let obtained = Instant::now();
        self.logins.fetch_add(1, Ordering::Relaxed);
        let v =
            self.send("POST", &path, &[], Some(&body), None).await.map_err(|e| ApiError::Auth(format!("{method} login failed: {e}")))?;
        let auth = &v["auth"];
        let Some(token) = auth["client_token"].as_str().filter(|t| !t.is_empty()) else {
            return Err(ApiError::Auth(format!("{method} login at {path}: the answer holds no client token")));
        };
        let ttl = seconds(&auth["lease_duration"]);
        tracing::debug!(source = %self.spec.name, method, ttl = ttl.as_secs(), "logged in");
        Ok(Token {
            secret: Secret::new(token.to_string()),
            generation: self.next_generation(),
            refresh_at: refresh_at(obtained, ttl),
            renewable: auth["renewable"].as_bool().unwrap_or(false),
            ttl,
        })
    }

    // -----------------------------------------------------------------------------------------
    // Listing

    /// All keys of a LIST, following `after`/`limit` pages where the server honours them.
    /// `key_info`, when the server gives it, is merged. An absent folder is empty.
    async fn paged_list(&self, path: &str, serials: bool) -> Result<(Vec<String>, serde_json::Map<String, Value>), ApiError> {
        let page_size = self.spec.page_size.max(1);
        let mut keys: Vec<String> = Vec::new();
        let mut info = serde_json::Map::new();
        let mut after: Option<String> = None;
        let mut seen: HashSet<String> = HashSet::new();
        let limit = page_size.to_string();
        loop {
            let mut query = vec![("limit", limit.as_str())];
            if let Some(a) = &after {
                query.push(("after", a.as_str()));
            }
            let v = match self.call("LIST", path, &query).await {
                Err(e) if e.is_empty_list() => break,
                r => r?,
            };
            let page: Vec<String> =
                v["data"]["keys"].as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect()).unwrap_or_default();
            if let Some(i) = v["data"]["key_info"].as_object() {
                info.extend(i.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            // A server that ignores `after` answers from the start again: what we have is all.
            // (Keys are compared by identity, not order: PKI serials are stored with `-` and
            // listed with `:`, so their listed order is not their lexical order.)
            if after.is_some() && page.first().is_some_and(|k| seen.contains(k)) {
                break;
            }
            seen.extend(page.iter().cloned());
            let n = page.len();
            after = page.last().map(|k| if serials { after_serial(k) } else { k.clone() });
            keys.extend(page);
            // More than asked for: the server ignores `limit` and gave everything.
            if n != page_size {
                break;
            }
        }
        Ok((keys, info))
    }

    /// Whether `mount` is the engine it is configured as: a KV version 1 mount (or a PKI mount
    /// under kv_mounts) would otherwise list as empty. When the server does not say (the
    /// token may not read the mount's description), the listing goes ahead.
    async fn check_engine(&self, mount: &str, kv: bool) -> Result<(), String> {
        let Ok(token) = self.token().await else { return Ok(()) };
        let Ok(v) = self.send("GET", &format!("sys/internal/ui/mounts/{mount}"), &[], None, Some(&token.secret)).await else {
            return Ok(());
        };
        let d = &v["data"];
        let (kind, version) = (d["type"].as_str().unwrap_or_default(), d["options"]["version"].as_str().unwrap_or("1"));
        // A nested path resolves to the mount above it.
        let at = d["path"].as_str().map(|p| p.trim_end_matches('/')).unwrap_or(mount);
        match (kv, kind) {
            _ if at != mount => Err(format!("no secrets engine is mounted at `{mount}` (the path lies in mount `{at}`)")),
            (true, "kv") if version == "2" => Ok(()),
            (true, "kv") => Err(format!("`{mount}` is a KV version {version} mount; kv_mounts takes KV version 2 mounts")),
            (false, "pki") => Ok(()),
            (true, other) | (false, other) if other.is_empty() => Ok(()),
            (true, other) => Err(format!("`{mount}` is a {other} mount, not KV version 2")),
            (false, other) => Err(format!("`{mount}` is a {other} mount, not PKI")),
        }
    }

    async fn list_pki(&self, mount: &str, out: &mut dyn FnMut(Listing)) {
        let prefix = format!("vault:{mount}/");
        if let Err(message) = self.check_engine(mount, false).await {
            out(Listing::Unavailable { prefix, message });
            return;
        }
        let certs = match self.paged_list(&format!("{mount}/certs/"), true).await {
            Ok((keys, _)) => keys,
            Err(e) => {
                out(Listing::Unavailable { prefix, message: e.to_string() });
                return;
            }
        };
        let revoked: HashSet<String> = match self.paged_list(&format!("{mount}/certs/revoked/"), true).await {
            Ok((keys, _)) => keys.into_iter().collect(),
            Err(e) => {
                // Certificates are still listed; their revocation is read when they are.
                out(Listing::Error { location: format!("vault:{mount}/certs/revoked"), message: e.to_string() });
                HashSet::new()
            }
        };
        for l in self.list_issuers(mount).await {
            out(l);
        }
        for serial in certs {
            let stamp = if revoked.contains(&serial) { format!("{serial};revoked") } else { serial.clone() };
            out(Listing::Object { location: format!("vault:{mount}/cert/{serial}"), stamp });
        }
    }

    /// Reads the mount's issuers (certificate, CRL and OCSP settings, the mount's URLs): their
    /// stamp is a digest of all of it, and `fetch` hands out what was read here.
    async fn list_issuers(&self, mount: &str) -> Vec<Listing> {
        let (ids, info) = match self.paged_list(&format!("{mount}/issuers/"), false).await {
            Ok(r) => r,
            // Before multiple issuers (Vault < 1.11) there is no such path: nothing to add.
            Err(e) if e.status() == Some(404) || e.status() == Some(405) => return Vec::new(),
            Err(e) => return vec![Listing::Error { location: format!("vault:{mount}/issuers"), message: e.to_string() }],
        };
        if ids.is_empty() {
            return Vec::new();
        }
        let urls = match self.call("GET", &format!("{mount}/config/urls"), &[]).await {
            Ok(v) => v["data"].clone(),
            Err(e) => json!({"error": e.to_string()}),
        };
        let mut listed = Vec::new();
        for id in ids {
            let location = format!("vault:{mount}/issuer/{id}");
            match self.read_issuer(mount, &id, info.get(&id), &urls).await {
                Ok(fetched) => {
                    let mut h = sha2::Sha256::new();
                    h.update(&fetched.bytes);
                    h.update(fetched.meta.as_ref().map(Value::to_string).unwrap_or_default().as_bytes());
                    let stamp = format!("issuer:{}", &hex::encode(h.finalize())[..32]);
                    lock(&self.issuers).insert(location.clone(), fetched);
                    listed.push(Listing::Object { location, stamp });
                }
                Err(e) => listed.push(Listing::Error { location, message: e.to_string() }),
            }
        }
        listed
    }

    async fn read_issuer(&self, mount: &str, id: &str, info: Option<&Value>, urls: &Value) -> Result<Fetched, ApiError> {
        let path = format!("{mount}/issuer/{id}");
        let v = self.call("GET", &path, &[]).await?;
        let d = &v["data"];
        let pem = d["certificate"]
            .as_str()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ApiError::Answer { path: path.clone(), message: "no certificate in the answer".into() })?;
        let list = |k: &str| d.get(k).cloned().filter(|v| !v.is_null()).unwrap_or_else(|| json!([]));
        let meta = json!({
            "mount": mount,
            "issuer_id": id,
            "issuer_name": d["issuer_name"],
            "key_id": d["key_id"],
            "is_default": info.and_then(|i| i.get("is_default")).cloned().unwrap_or(Value::Null),
            "revoked": d["revoked"].as_bool().unwrap_or(false),
            "usage": d["usage"],
            "leaf_not_after_behavior": d["leaf_not_after_behavior"],
            "crl_distribution_points": list("crl_distribution_points"),
            "delta_crl_distribution_points": list("delta_crl_distribution_points"),
            "issuing_certificates": list("issuing_certificates"),
            "ocsp_servers": list("ocsp_servers"),
            "mount_urls": urls,
        });
        Ok(Fetched { bytes: certificate_blocks(pem).into_bytes(), meta: Some(meta), key: None, passwords: Vec::new() })
    }

    async fn list_kv(self: Arc<Self>, kv: &KvSpec, out: &mut dyn FnMut(Listing)) {
        let mount = kv.mount.as_str();
        if let Err(message) = self.check_engine(mount, true).await {
            out(Listing::Unavailable { prefix: format!("vault:{mount}/{}", kv.prefix), message });
            return;
        }
        // OpenBao lists versions with the keys; Vault needs one metadata read per secret.
        let mut detailed = true;
        let mut folders: Vec<String> = vec![kv.prefix.clone()];
        while let Some(folder) = folders.pop() {
            let listed = if detailed {
                match self.paged_list(&format!("{mount}/detailed-metadata/{folder}"), false).await {
                    Err(e) if matches!(e.status(), Some(404 | 405)) => {
                        detailed = false;
                        tracing::debug!(source = %self.spec.name, mount, "no detailed-metadata listing: reading metadata per secret");
                        self.paged_list(&format!("{mount}/metadata/{folder}"), false).await
                    }
                    r => r,
                }
            } else {
                self.paged_list(&format!("{mount}/metadata/{folder}"), false).await
            };
            let (keys, info) = match listed {
                Ok(r) => r,
                Err(e) => {
                    out(Listing::Unavailable { prefix: format!("vault:{mount}/{folder}"), message: e.to_string() });
                    continue;
                }
            };
            let mut sub: Vec<String> = Vec::new();
            let mut secrets: Vec<(String, Option<Value>)> = Vec::new();
            for k in keys {
                if k.ends_with('/') {
                    sub.push(format!("{folder}{k}"));
                } else {
                    let meta = info.get(&k).cloned();
                    secrets.push((format!("{folder}{k}"), meta));
                }
            }
            // Metadata for the secrets the listing did not describe, read concurrently (the
            // semaphore bounds the requests).
            let mut tasks = tokio::task::JoinSet::new();
            for (i, (path, meta)) in secrets.iter().enumerate() {
                if meta.is_none() {
                    let me = Arc::clone(&self);
                    let p = format!("{mount}/metadata/{path}");
                    tasks.spawn(async move { (i, me.call("GET", &p, &[]).await.map(|v| v["data"].clone())) });
                }
            }
            let mut read: BTreeMap<usize, Result<Value, ApiError>> = BTreeMap::new();
            while let Some(done) = tasks.join_next().await {
                if let Ok((i, r)) = done {
                    read.insert(i, r);
                }
            }
            for (i, (path, meta)) in secrets.into_iter().enumerate() {
                let location = format!("vault:{mount}/{path}");
                let meta = match meta.map(Ok).or_else(|| read.remove(&i)) {
                    Some(Ok(m)) => m,
                    Some(Err(e)) if e.is_empty_list() => continue, // deleted meanwhile
                    Some(Err(e)) => {
                        out(Listing::Error { location, message: e.to_string() });
                        continue;
                    }
                    None => {
                        out(Listing::Error { location, message: "metadata read did not finish".into() });
                        continue;
                    }
                };
                let version = meta["current_version"].as_u64().unwrap_or(0);
                if version == 0 {
                    continue; // metadata without any version: nothing to read
                }
                let v = &meta["versions"][version.to_string()];
                let gone = v["destroyed"].as_bool().unwrap_or(false) || v["deletion_time"].as_str().is_some_and(|t| !t.is_empty());
                lock(&self.versions).insert(location.clone(), version);
                let stamp = if gone { format!("v{version};deleted") } else { format!("v{version}") };
                out(Listing::Object { location, stamp });
            }
            // Depth first, in name order.
            folders.extend(sub.into_iter().rev());
        }
    }

    // -----------------------------------------------------------------------------------------
    // Reading

    async fn fetch(&self, location: &str) -> Result<Fetched, ApiError> {
        if let Some(f) = lock(&self.issuers).get(location) {
            return Ok(f.clone());
        }
        let rest = location
            .strip_prefix("vault:")
            .ok_or_else(|| ApiError::Answer { path: location.into(), message: "not a vault location".into() })?;
        // The longest configured mount the location lies in (mounts may nest: `a`, `a/b`).
        let pki = self.spec.pki_mounts.iter().filter(|m| rest.starts_with(&format!("{m}/"))).max_by_key(|m| m.len());
        let kv =
            self.spec.kv_mounts.iter().filter(|k| rest.starts_with(&format!("{}/{}", k.mount, k.prefix))).max_by_key(|k| k.mount.len());
        match (pki, kv) {
            (Some(m), kv) if kv.is_none_or(|k| k.mount.len() < m.len()) => {
                let tail = &rest[m.len() + 1..];
                if let Some(serial) = tail.strip_prefix("cert/") {
                    self.read_cert(m, serial).await
                } else if let Some(id) = tail.strip_prefix("issuer/") {
                    let urls = self.call("GET", &format!("{m}/config/urls"), &[]).await.map(|v| v["data"].clone()).unwrap_or(Value::Null);
                    self.read_issuer(m, id, None, &urls).await
                } else {
                    Err(ApiError::Answer { path: location.into(), message: "not a certificate or issuer location".into() })
                }
            }
            (_, Some(k)) => self.read_secret(k, &rest[k.mount.len() + 1..]).await,
            _ => Err(ApiError::Answer { path: location.into(), message: "no configured mount holds this location".into() }),
        }
    }

    async fn read_cert(&self, mount: &str, serial: &str) -> Result<Fetched, ApiError> {
        let path = format!("{mount}/cert/{serial}");
        let v = self.call("GET", &path, &[]).await?;
        let d = &v["data"];
        let pem = d["certificate"]
            .as_str()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ApiError::Answer { path: path.clone(), message: "no certificate in the answer".into() })?;
        let revoked_at = d["revocation_time"].as_i64().filter(|t| *t > 0);
        let mut meta = json!({
            "mount": mount,
            "serial": serial,
            "revoked": revoked_at.is_some(),
            "revocation_time": revoked_at,
        });
        if let Some(t) = d["revocation_time_rfc3339"].as_str().filter(|t| !t.is_empty()) {
            meta["revocation_time_rfc3339"] = json!(t);
        }
        if let Some(id) = d["issuer_id"].as_str().filter(|t| !t.is_empty()) {
            meta["issuer_id"] = json!(id);
        }
        Ok(Fetched { bytes: certificate_blocks(pem).into_bytes(), meta: Some(meta), key: None, passwords: Vec::new() })
    }

    /// The certificates of one KV secret, at the version it was listed at: every field holding
    /// PEM certificates (or the named fields, each of which must).
    async fn read_secret(&self, kv: &KvSpec, path: &str) -> Result<Fetched, ApiError> {
        let location = format!("vault:{}/{path}", kv.mount);
        let version = lock(&self.versions).get(&location).copied();
        let api = format!("{}/data/{path}", kv.mount);
        let v = version.map(|v| v.to_string());
        let query: Vec<(&str, &str)> = v.as_deref().map(|v| vec![("version", v)]).unwrap_or_default();
        let answer = match self.call("GET", &api, &query).await {
            Ok(a) => a,
            // A deleted or destroyed version answers 404 with its metadata: nothing to read.
            Err(e) if e.status() == Some(404) => {
                let meta = json!({"mount": kv.mount, "path": path, "version": version, "deleted": true, "fields": []});
                return Ok(Fetched { bytes: Vec::new(), meta: Some(meta), key: None, passwords: Vec::new() });
            }
            Err(e) => return Err(e),
        };
        let data = &answer["data"]["data"];
        let read_version = answer["data"]["metadata"]["version"].as_u64().or(version);
        let Some(fields) = data.as_object() else {
            let meta = json!({"mount": kv.mount, "path": path, "version": read_version, "fields": []});
            return Ok(Fetched { bytes: Vec::new(), meta: Some(meta), key: None, passwords: Vec::new() });
        };
        let mut pem = String::new();
        let mut found: Vec<&str> = Vec::new();
        let mut problems: Vec<String> = Vec::new();
        // serde_json's map is ordered by key: the concatenation is stable.
        for (name, value) in fields {
            let named = kv.fields.iter().any(|f| f == name);
            if !kv.fields.is_empty() && !named {
                continue;
            }
            let blocks = value.as_str().map(certificate_blocks).unwrap_or_default();
            if blocks.is_empty() {
                if named {
                    problems.push(format!("field `{name}` holds no PEM certificate"));
                }
                continue; // a password, a key, JSON: not a certificate, not an error
            }
            found.push(name);
            pem.push_str(&blocks);
        }
        if !problems.is_empty() {
            return Err(ApiError::Answer { path: format!("{api} (version {})", read_version.unwrap_or(0)), message: problems.join("; ") });
        }
        let meta = json!({"mount": kv.mount, "path": path, "version": read_version, "fields": found});
        Ok(Fetched { bytes: pem.into_bytes(), meta: Some(meta), key: None, passwords: Vec::new() })
    }
}

/// The `after` of the next page of a PKI serial listing. The server lists serials with `:`
/// but stores, orders and pages them by their storage form, with `-` (OpenBao 2.x): `after`
/// written with colons would skip the rest of the serials that share its first byte.
fn after_serial(serial: &str) -> String {
    serial.replace(':', "-")
}

/// A secret reference resolved for a login, with the method and field in the error.
fn resolve(r: &SecretRef, method: &str, field: &str) -> Result<Secret, ApiError> {
    r.resolve().map_err(|e| ApiError::Auth(format!("{method} auth: {field} {r}: {e}")))
}

/// An error with its causes (reqwest hides the interesting part in `source()`).
fn chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let s_text = s.to_string();
        if !message.contains(&s_text) {
            message = format!("{message}: {s_text}");
        }
        src = s.source();
    }
    message
}

/// The certificate blocks of a PEM text, each ending in a newline (see
/// [`crate::x509::pem::certificate_blocks`]).
fn certificate_blocks(text: &str) -> String {
    crate::x509::pem::certificate_blocks(text).into_iter().map(|b| b + "\n").collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_blocks_keep_certificates_only() {
        let text = "junk\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n\
                    -----BEGIN PRIVATE KEY-----\nSECRET\n-----END PRIVATE KEY-----\n\
                    -----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----";
        let got = certificate_blocks(text);
        assert_eq!(
            got,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n"
        );
        assert!(!got.contains("SECRET"));
        assert_eq!(certificate_blocks("hunter2"), "");
        assert_eq!(certificate_blocks("{\"a\": 1}"), "");
        assert_eq!(certificate_blocks("-----BEGIN RSA PRIVATE KEY-----\nX\n-----END RSA PRIVATE KEY-----\n"), "");
        // An unterminated certificate is handed on for the parser to report.
        assert_eq!(certificate_blocks("-----BEGIN CERTIFICATE-----\nAAAA\n"), "-----BEGIN CERTIFICATE-----\nAAAA\n");
    }

    #[test]
    fn serial_pages_continue_from_the_storage_form() {
        assert_eq!(after_serial("68:77:df:a2"), "68-77-df-a2");
        assert_eq!(after_serial("68-77-df-a2"), "68-77-df-a2");
    }

    #[test]
    fn vault_error_wrapping_is_removed() {
        assert_eq!(clean_error("1 error occurred:\n\t* permission denied\n\n"), "permission denied");
        assert_eq!(clean_error("2 errors occurred:\n\t* a\n\t* b\n\n"), "a; b");
        assert_eq!(clean_error("permission denied"), "permission denied");
        assert_eq!(clean_error("invalid role or secret ID"), "invalid role or secret ID");
    }

    #[test]
    fn api_errors_name_the_request_and_the_server_errors() {
        let e = ApiError::Status { method: "LIST", path: "pki/certs/".into(), status: 403, errors: vec!["permission denied".into()] };
        assert_eq!(e.to_string(), "LIST pki/certs/: HTTP 403: permission denied");
        assert!(e.is_denied() && !e.is_empty_list());
        let empty = ApiError::Status { method: "LIST", path: "secret/metadata/x/".into(), status: 404, errors: vec![] };
        assert!(empty.is_empty_list());
        assert_eq!(empty.to_string(), "LIST secret/metadata/x/: HTTP 404");
    }

    #[test]
    fn refresh_after_two_thirds_of_the_ttl() {
        let t0 = Instant::now();
        assert_eq!(refresh_at(t0, Duration::from_secs(3)), Some(t0 + Duration::from_secs(2)));
        assert_eq!(refresh_at(t0, Duration::ZERO), None);
    }
}
