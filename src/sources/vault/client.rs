//! The HTTP client of the Vault API and its authentication: one request with retries, the
//! answer limit and the semaphore (`send`); authenticated calls that log in again once when a
//! token died (`call`); obtaining, renewing and replacing tokens (token, AppRole and Kubernetes
//! auth); paged `LIST`s; and the check that a mount is the engine it is configured as.

use super::{Fetched, VaultError, lock};
use crate::config::secret::{Secret, SecretError, SecretRef};
use crate::config::sources::vault::{AuthSpec, Value as ConfigValue, VaultSpec};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Largest answer read from the server.
const MAX_RESPONSE: usize = 16 << 20;
/// Largest service-account token file read.
const MAX_JWT: u64 = 64 * 1024;
/// Transient failures (connection, 429, 502–504) are retried this many times.
const RETRIES: u32 = 2;

// ---------------------------------------------------------------------------------------------
// Errors

/// What went wrong with one request (or the login before it). Clone: a failed login is kept
/// and answered to every request of the scan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The server answered with an error status and its `errors` array.
    #[error("{method} {path}: HTTP {status}{}", server_errors(.errors))]
    Status { method: &'static str, path: String, status: u16, errors: Vec<String> },
    /// No answer (connection, TLS, timeout), or an unreadable one.
    #[error("{method} {path}: {message}")]
    Transport { method: &'static str, path: String, message: String },
    /// Logging in (or reading the credentials to) failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The answer lacks what it should hold.
    #[error("{path}: {message}")]
    Answer { path: String, message: String },
}

/// `: a; b` after the status when the server said why, nothing when it did not.
fn server_errors(errors: &[String]) -> String {
    if errors.is_empty() { String::new() } else { format!(": {}", errors.join("; ")) }
}

/// Why no token could be had. `method` is the auth method (`token`, `approle`, `kubernetes`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A credential's secret reference could not be resolved.
    #[error("{method} auth: {field} {reference}: {source}")]
    Secret {
        method: &'static str,
        field: &'static str,
        reference: String,
        #[source]
        source: SecretError,
    },
    /// The configured token could not look itself up (for another reason than a refusal).
    #[error("token auth: {0}")]
    Lookup(#[source] Box<ApiError>),
    #[error("token auth: renewal failed: {0}")]
    Renewal(#[source] Box<ApiError>),
    #[error("token auth cannot log in")]
    CannotLogin,
    /// The service-account token file could not be read (`reason`: the system's words, or its size).
    #[error("kubernetes login: service-account token {}: {reason}", .path.display())]
    ServiceAccountToken { path: PathBuf, reason: String },
    #[error("{method} login failed: {source}")]
    Login {
        method: &'static str,
        #[source]
        source: Box<ApiError>,
    },
    #[error("{method} login at {path}: the answer holds no client token")]
    NoClientToken { method: &'static str, path: String },
}

/// A mount that is not the secrets engine it is configured as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    #[error("no secrets engine is mounted at `{mount}` (the path lies in mount `{within}`)")]
    Nested { mount: String, within: String },
    #[error("`{mount}` is a KV version {version} mount; kv_mounts takes KV version 2 mounts")]
    KvVersion { mount: String, version: String },
    #[error("`{mount}` is a {engine} mount, not KV version 2")]
    NotKv { mount: String, engine: String },
    #[error("`{mount}` is a {engine} mount, not PKI")]
    NotPki { mount: String, engine: String },
}

impl ApiError {
    pub(super) fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Vault answers a LIST of an empty or absent folder with 404 and no errors.
    pub(super) fn is_empty_list(&self) -> bool {
        matches!(self, ApiError::Status { status: 404, errors, .. } if errors.is_empty())
    }

    pub(super) fn is_denied(&self) -> bool {
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
pub(super) struct Token {
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

pub(super) struct Inner {
    pub(super) spec: VaultSpec,
    http: reqwest::Client,
    base: reqwest::Url,
    permits: tokio::sync::Semaphore,
    pub(super) requests: AtomicU64,
    pub(super) logins: AtomicU64,
    pub(super) renewals: AtomicU64,
    auth: Mutex<AuthState>,
    /// Held while a token is obtained, renewed or checked: one at a time.
    refresh: tokio::sync::Mutex<()>,
    /// Issuers read while listing, handed out by `fetch` without another request.
    pub(super) issuers: Mutex<HashMap<String, Fetched>>,
    /// The version each KV secret was listed at: `fetch` reads exactly that version.
    pub(super) versions: Mutex<HashMap<String, u64>>,
    /// The owner (and contact) in each KV secret's custom metadata, as listed.
    pub(super) owners: Mutex<HashMap<String, super::kv::KvOwner>>,
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
    pub(super) fn new(spec: VaultSpec) -> Result<Self, VaultError> {
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
            let what = |reason: String| VaultError::CaBundle { path: path.clone(), reason };
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
        let http = builder.build().map_err(|e| VaultError::HttpClient { reason: chain(&e) })?;
        let base =
            reqwest::Url::parse(&spec.address).map_err(|e| VaultError::Address { address: spec.address.clone(), reason: e.to_string() })?;
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
            owners: Mutex::new(HashMap::new()),
        })
    }

    /// A new scan: a login that failed last time is tried again.
    pub(super) fn reset(&self) {
        lock(&self.auth).failed = None;
        lock(&self.issuers).clear();
        lock(&self.versions).clear();
        lock(&self.owners).clear();
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
    pub(super) async fn call(&self, method: &'static str, path: &str, query: &[(&str, &str)]) -> Result<Value, ApiError> {
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
    pub(super) async fn token(&self) -> Result<Token, ApiError> {
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
                    Err(e) => return Err(AuthError::Lookup(Box::new(e)).into()),
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
                Err(e) if !self.can_login() => return Err(AuthError::Renewal(Box::new(e)).into()),
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
            AuthSpec::Token { .. } => return Err(AuthError::CannotLogin.into()),
            AuthSpec::AppRole { role_id, secret_id, mount } => {
                let role_id = match role_id {
                    ConfigValue::Plain(s) => s.clone(),
                    ConfigValue::Secret(r) => resolve(r, method, "role_id")?.expose().to_string(),
                };
                let secret_id = resolve(secret_id, method, "secret_id")?;
                (mount, json!({"role_id": role_id, "secret_id": secret_id.expose()}))
            }
            AuthSpec::Kubernetes { role, jwt_path, mount } => {
                let what = |reason: String| ApiError::from(AuthError::ServiceAccountToken { path: jwt_path.clone(), reason });
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
        let v = self.send("POST", &path, &[], Some(&body), None).await.map_err(|e| AuthError::Login { method, source: Box::new(e) })?;
        let auth = &v["auth"];
        let Some(token) = auth["client_token"].as_str().filter(|t| !t.is_empty()) else {
            return Err(AuthError::NoClientToken { method, path }.into());
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
    pub(super) async fn paged_list(&self, path: &str, serials: bool) -> Result<(Vec<String>, serde_json::Map<String, Value>), ApiError> {
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
    pub(super) async fn check_engine(&self, mount: &str, kv: bool) -> Result<(), MountError> {
        let Ok(token) = self.token().await else { return Ok(()) };
        let Ok(v) = self.send("GET", &format!("sys/internal/ui/mounts/{mount}"), &[], None, Some(&token.secret)).await else {
            return Ok(());
        };
        let d = &v["data"];
        let (kind, version) = (d["type"].as_str().unwrap_or_default(), d["options"]["version"].as_str().unwrap_or("1"));
        // A nested path resolves to the mount above it.
        let at = d["path"].as_str().map(|p| p.trim_end_matches('/')).unwrap_or(mount);
        match (kv, kind) {
            _ if at != mount => Err(MountError::Nested { mount: mount.to_string(), within: at.to_string() }),
            (true, "kv") if version == "2" => Ok(()),
            (true, "kv") => Err(MountError::KvVersion { mount: mount.to_string(), version: version.to_string() }),
            (false, "pki") => Ok(()),
            (true, other) | (false, other) if other.is_empty() => Ok(()),
            (true, other) => Err(MountError::NotKv { mount: mount.to_string(), engine: other.to_string() }),
            (false, other) => Err(MountError::NotPki { mount: mount.to_string(), engine: other.to_string() }),
        }
    }
}

/// The `after` of the next page of a PKI serial listing. The server lists serials with `:`
/// but stores, orders and pages them by their storage form, with `-` (OpenBao 2.x): `after`
/// written with colons would skip the rest of the serials that share its first byte.
fn after_serial(serial: &str) -> String {
    serial.replace(':', "-")
}

/// A secret reference resolved for a login, with the method and field in the error.
fn resolve(r: &SecretRef, method: &'static str, field: &'static str) -> Result<Secret, ApiError> {
    r.resolve().map_err(|source| AuthError::Secret { method, field, reference: r.to_string(), source }.into())
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

#[cfg(test)]
mod tests {
    use super::*;

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
