//! Kubernetes: certificates held in Secrets and ConfigMaps.
//!
//! Listing streams the API page by page (`limit`/`continue`) and keeps of each page only the
//! names, resource versions and which keys hold certificates; key values are never kept:
//! - Secrets of type `kubernetes.io/tls`: `tls.crt` and `ca.crt`; Secrets of any other type:
//!   the keys matching `secret_keys`.
//! - ConfigMaps: the keys (`data` and `binaryData`) matching `configmap_keys`.
//! - Validating and mutating webhook configurations (cluster-wide, with `webhooks`): the
//!   `clientConfig.caBundle` of each webhook that has one, at
//!   `k8s://<context>/<validating|mutating>webhookconfigurations/<name>#<webhook name>`.
//!
//! One object is listed per key, at `k8s://<context>/<namespace>/<secrets|configmaps>/<name>#<key>`,
//! stamped with the resource version of its Secret or ConfigMap: a rescan of unchanged objects
//! reads nothing. A changed object is read again by name (`GET`), so only changed keys are
//! transferred twice.
//!
//! Secrets are listed in pages of about `SECRET_PAGE_BYTES` rather than `page_size` objects:
//! a cluster's Secrets are mostly values certvigil never reads (Helm releases of 50–100 KiB,
//! up to 1 MiB each), so a page of 500 could weigh 50 MB. The page's body is read into one
//! buffer and parsed without its values (key names only); the next page's `limit` follows from
//! the bytes per Secret seen so far (growing at most twofold per page), at most `page_size`.
//! The bound is adaptive, not absolute: a page is at most `limit` Secrets of whatever size.
//!
//! A continue token that expired mid-list (410 Gone) restarts that list once from the start;
//! objects already listed are not listed twice. A kind the credentials may not list in a
//! namespace (403) is reported unavailable under `k8s://<context>/<namespace>/<kind>/`, and
//! the other kinds and namespaces are still listed. Refused credentials (401) and an
//! unreachable API server make the whole source unavailable.
//!
//! A key whose value holds no certificate is an error of that object (reported by the scan),
//! never a failure of the list.

use super::{Fetched, Listing, Source, SourceError};
use crate::config::secret::Secret as Password;
use crate::config::sources::kubernetes::{KubernetesSpec, key_matches};
use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, ListParams, ObjectList};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Mutex;

const TLS_TYPE: &str = "kubernetes.io/tls";
const TLS_KEYS: [&str; 2] = ["tls.crt", "ca.crt"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Secrets,
    ConfigMaps,
    ValidatingWebhooks,
    MutatingWebhooks,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Secrets => "secrets",
            Kind::ConfigMaps => "configmaps",
            Kind::ValidatingWebhooks => "validatingwebhookconfigurations",
            Kind::MutatingWebhooks => "mutatingwebhookconfigurations",
        }
    }
    fn object(self) -> &'static str {
        match self {
            Kind::Secrets => "Secret",
            Kind::ConfigMaps => "ConfigMap",
            Kind::ValidatingWebhooks => "ValidatingWebhookConfiguration",
            Kind::MutatingWebhooks => "MutatingWebhookConfiguration",
        }
    }
}

/// Why a list stopped.
enum Stop {
    /// This kind in this scope only (403, or a 410 after the one restart).
    Part(String),
    /// Every further request would fail the same way (401, connection).
    Source(String),
}

struct Connected {
    client: kube::Client,
    context: String,
}

pub struct KubernetesSource {
    spec: KubernetesSpec,
    runtime: Result<tokio::runtime::Runtime, String>,
    client: Mutex<Option<std::sync::Arc<Connected>>>,
}

impl KubernetesSource {
    pub fn new(spec: KubernetesSpec) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("certvigil-k8s")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the HTTP runtime: {e}"));
        KubernetesSource { spec, runtime, client: Mutex::new(None) }
    }

    /// The context named in locations before a connection is made.
    fn context_hint(&self) -> String {
        self.spec.context.clone().unwrap_or_else(|| "default".into())
    }

    async fn connect(&self) -> Result<Connected, String> {
        let file = match &self.spec.kubeconfig {
            Some(p) => {
                Some(kube::config::Kubeconfig::read_from(p).map_err(|e| format!("cannot read the kubeconfig {}: {e}", p.display()))?)
            }
            // A kubeconfig that exists but cannot be read is an error, not a reason to try the
            // in-cluster service account.
            None => match kube::config::Kubeconfig::read() {
                Ok(kc) => Some(kc),
                Err(e) if default_kubeconfig_exists() => return Err(format!("cannot read the kubeconfig: {e}")),
                Err(_) => None,
            },
        };
        let (mut config, context) = match file {
            Some(kc) => {
                let context = match self.spec.context.clone().or_else(|| kc.current_context.clone()) {
                    Some(c) => c,
                    None => return Err("the kubeconfig names no current context: set `context`".into()),
                };
                let options = kube::config::KubeConfigOptions { context: Some(context.clone()), ..Default::default() };
                let config =
                    kube::Config::from_custom_kubeconfig(kc, &options).await.map_err(|e| format!("kubeconfig context `{context}`: {e}"))?;
                (config, context)
            }
            None => {
                let config = kube::Config::incluster()
                    .map_err(|e| format!("no kubeconfig ($KUBECONFIG, ~/.kube/config) and not running in a pod: {e}"))?;
                (config, "in-cluster".to_string())
            }
        };
        config.connect_timeout = Some(self.spec.timeout);
        config.read_timeout = Some(self.spec.timeout);
        config.write_timeout = Some(self.spec.timeout);
        let client = kube::Client::try_from(config).map_err(|e| format!("cannot build the Kubernetes client: {e}"))?;
        Ok(Connected { client, context })
    }

    fn connected(&self) -> Option<std::sync::Arc<Connected>> {
        self.client.lock().ok().and_then(|c| c.clone())
    }

    async fn list_all(&self, out: &mut dyn FnMut(Listing)) {
        let conn = match self.connect().await {
            Ok(c) => std::sync::Arc::new(c),
            Err(message) => {
                out(Listing::Unavailable { prefix: format!("k8s://{}/", self.context_hint()), message });
                return;
            }
        };
        if let Ok(mut slot) = self.client.lock() {
            *slot = Some(std::sync::Arc::clone(&conn));
        }
        let whole = format!("k8s://{}/", conn.context);
        let scopes: Vec<Option<String>> = match self.namespaces(&conn).await {
            Ok(Some(names)) => names.into_iter().map(Some).collect(),
            Ok(None) => vec![None],
            Err(Stop::Source(message) | Stop::Part(message)) => {
                out(Listing::Unavailable { prefix: whole, message });
                return;
            }
        };
        let mut kinds = vec![Kind::Secrets];
        if !self.spec.configmap_keys.is_empty() {
            kinds.push(Kind::ConfigMaps);
        }
        if self.spec.webhooks {
            for kind in [Kind::ValidatingWebhooks, Kind::MutatingWebhooks] {
                match self.list_kind(&conn, None, kind, out).await {
                    Ok(()) => {}
                    Err(Stop::Part(message)) => {
                        out(Listing::Unavailable { prefix: format!("k8s://{}/{}/", conn.context, kind.path()), message })
                    }
                    Err(Stop::Source(message)) => {
                        out(Listing::Unavailable { prefix: whole, message });
                        return;
                    }
                }
            }
        }
        for scope in &scopes {
            for &kind in &kinds {
                match self.list_kind(&conn, scope.as_deref(), kind, out).await {
                    Ok(()) => {}
                    Err(Stop::Part(message)) => {
                        let prefix = match scope {
                            Some(ns) => format!("k8s://{}/{ns}/{}/", conn.context, kind.path()),
                            None => whole.clone(),
                        };
                        out(Listing::Unavailable { prefix, message });
                    }
                    Err(Stop::Source(message)) => {
                        out(Listing::Unavailable { prefix: whole, message });
                        return;
                    }
                }
            }
        }
    }

    /// The namespaces to list one by one, or `None` to list across all namespaces.
    async fn namespaces(&self, conn: &Connected) -> Result<Option<Vec<String>>, Stop> {
        let Some(selector) = &self.spec.namespace_selector else {
            return Ok((!self.spec.namespaces.is_empty()).then(|| self.spec.namespaces.clone()));
        };
        let api: Api<Namespace> = Api::all(conn.client.clone());
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut lp = ListParams::default().labels(selector).limit(self.spec.page_size);
            lp.continue_token = token.take();
            let page = api.list_metadata(&lp).await.map_err(|e| classify(e, "namespaces", None))?;
            names.extend(page.items.iter().filter_map(|n| n.metadata.name.clone()));
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(c) => token = Some(c),
                None => break,
            }
        }
        if !self.spec.namespaces.is_empty() {
            names.retain(|n| self.spec.namespaces.contains(n));
        }
        names.sort();
        Ok(Some(names))
    }

    async fn list_kind(&self, conn: &Connected, ns: Option<&str>, kind: Kind, out: &mut dyn FnMut(Listing)) -> Result<(), Stop> {
        let mut seen: HashSet<String> = HashSet::new();
        let mut restarted = false;
        let mut token: Option<String> = None;
        let mut sizer = PageSizer::new(self.spec.page_size);
        loop {
            let limit = if kind == Kind::Secrets { sizer.limit } else { self.spec.page_size };
            let mut lp = ListParams::default().limit(limit);
            lp.continue_token = token.take();
            let had_token = lp.continue_token.is_some();
            let page = match kind {
                Kind::Secrets => secret_page(conn, ns, &lp).await.map(|(p, bytes)| {
                    sizer.observe(bytes, p.items.len());
                    self.secret_keys(conn, p)
                }),
                Kind::ConfigMaps => self.page::<ConfigMap>(conn, ns, &lp).await.map(|p| self.configmap_keys(conn, p)),
                Kind::ValidatingWebhooks => {
                    let api: Api<ValidatingWebhookConfiguration> = Api::all(conn.client.clone());
                    api.list(&lp).await.map(|p| {
                        let next = p.metadata.continue_.clone().filter(|c| !c.is_empty());
                        let objects = p.items.iter().flat_map(|w| {
                            let names = w.webhooks.iter().flatten().filter(|h| h.client_config.ca_bundle.is_some()).map(|h| h.name.clone());
                            webhook_keys(&conn.context, kind, &w.metadata, names)
                        });
                        (objects.collect(), next)
                    })
                }
                Kind::MutatingWebhooks => {
                    let api: Api<MutatingWebhookConfiguration> = Api::all(conn.client.clone());
                    api.list(&lp).await.map(|p| {
                        let next = p.metadata.continue_.clone().filter(|c| !c.is_empty());
                        let objects = p.items.iter().flat_map(|w| {
                            let names = w.webhooks.iter().flatten().filter(|h| h.client_config.ca_bundle.is_some()).map(|h| h.name.clone());
                            webhook_keys(&conn.context, kind, &w.metadata, names)
                        });
                        (objects.collect(), next)
                    })
                }
            };
            let (objects, next) = match page {
                Ok(p) => p,
                Err(kube::Error::Api(e)) if e.code == 410 && had_token && !restarted => {
                    tracing::info!(source = %self.spec.name, kind = kind.path(), "continue token expired: listing again from the start");
                    restarted = true;
                    continue;
                }
                Err(e) => return Err(classify(e, kind.path(), ns)),
            };
            for (location, stamp) in objects {
                if seen.insert(location.clone()) {
                    out(Listing::Object { location, stamp });
                }
            }
            match next {
                Some(c) => token = Some(c),
                None => return Ok(()),
            }
        }
    }

    async fn page<K>(&self, conn: &Connected, ns: Option<&str>, lp: &ListParams) -> Result<ObjectList<K>, kube::Error>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = match ns {
            Some(ns) => Api::namespaced(conn.client.clone(), ns),
            None => Api::all(conn.client.clone()),
        };
        api.list(lp).await
    }

    /// The listed objects of a page of Secrets (values dropped with the page), and the next token.
    fn secret_keys(&self, conn: &Connected, page: SecretKeysList) -> (Vec<(String, String)>, Option<String>) {
        let mut objects = Vec::new();
        for s in &page.items {
            let keys = s.data.as_ref().map(|d| d.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
            let tls = s.type_.as_deref() == Some(TLS_TYPE);
            let wanted =
                keys.into_iter().filter(|k| if tls { TLS_KEYS.contains(&k.as_str()) } else { self.wanted(&self.spec.secret_keys, k) });
            push_keys(&mut objects, &conn.context, Kind::Secrets, &s.metadata, wanted);
        }
        (objects, page.metadata.continue_.filter(|c| !c.is_empty()))
    }

    fn configmap_keys(&self, conn: &Connected, page: ObjectList<ConfigMap>) -> (Vec<(String, String)>, Option<String>) {
        let mut objects = Vec::new();
        for c in &page.items {
            let mut keys: Vec<String> = c.data.iter().flat_map(|d| d.keys().cloned()).collect();
            keys.extend(c.binary_data.iter().flat_map(|d| d.keys().cloned()));
            keys.sort();
            keys.dedup();
            let wanted = keys.into_iter().filter(|k| self.wanted(&self.spec.configmap_keys, k));
            push_keys(&mut objects, &conn.context, Kind::ConfigMaps, &c.metadata, wanted);
        }
        (objects, page.metadata.continue_.filter(|c| !c.is_empty()))
    }

    fn wanted(&self, patterns: &[String], key: &str) -> bool {
        patterns.iter().any(|p| key_matches(p, key))
    }

    async fn fetch_async(&self, conn: &Connected, location: &str) -> Result<Fetched, String> {
        let (ns, kind, name, key) =
            parse_location(location, &conn.context).ok_or_else(|| format!("not a location of this source: {location}"))?;
        if ns.is_empty() {
            return self.fetch_webhook(conn, kind, name, key).await;
        }
        let (bytes, rv) = match kind {
            Kind::Secrets => {
                let api: Api<Secret> = Api::namespaced(conn.client.clone(), ns);
                let s = api.get(name).await.map_err(|e| describe(&e))?;
                let value = s.data.and_then(|mut d| d.remove(key)).ok_or_else(|| format!("the Secret has no key `{key}` any more"))?;
                (value.0, s.metadata.resource_version)
            }
            Kind::ConfigMaps => {
                let api: Api<ConfigMap> = Api::namespaced(conn.client.clone(), ns);
                let c = api.get(name).await.map_err(|e| describe(&e))?;
                let text = c.data.and_then(|mut d| d.remove(key)).map(String::into_bytes);
                let value = text
                    .or_else(|| c.binary_data.and_then(|mut d| d.remove(key)).map(|b| b.0))
                    .ok_or_else(|| format!("the ConfigMap has no key `{key}` any more"))?;
                (value, c.metadata.resource_version)
            }
            Kind::ValidatingWebhooks | Kind::MutatingWebhooks => return Err(format!("not a location of this source: {location}")),
        };
        let meta = json!({"namespace": ns, "kind": kind.object(), "name": name, "key": key, "resourceVersion": rv});
        Ok(Fetched { bytes, meta: Some(meta), key: None })
    }
}

impl KubernetesSource {
    async fn fetch_webhook(&self, conn: &Connected, kind: Kind, name: &str, hook: &str) -> Result<Fetched, String> {
        let (bundle, rv) = match kind {
            Kind::ValidatingWebhooks => {
                let api: Api<ValidatingWebhookConfiguration> = Api::all(conn.client.clone());
                let w = api.get(name).await.map_err(|e| describe(&e))?;
                let bundle = w.webhooks.into_iter().flatten().find(|h| h.name == hook).and_then(|h| h.client_config.ca_bundle);
                (bundle, w.metadata.resource_version)
            }
            Kind::MutatingWebhooks => {
                let api: Api<MutatingWebhookConfiguration> = Api::all(conn.client.clone());
                let w = api.get(name).await.map_err(|e| describe(&e))?;
                let bundle = w.webhooks.into_iter().flatten().find(|h| h.name == hook).and_then(|h| h.client_config.ca_bundle);
                (bundle, w.metadata.resource_version)
            }
            Kind::Secrets | Kind::ConfigMaps => return Err(format!("{} are namespaced", kind.path())),
        };
        let bundle = bundle.ok_or_else(|| format!("the webhook `{hook}` has no caBundle any more"))?;
        let meta = json!({"kind": kind.object(), "name": name, "key": hook, "resourceVersion": rv});
        Ok(Fetched { bytes: bundle.0, meta: Some(meta), key: None })
    }
}

/// About this many bytes of Secrets per list page.
const SECRET_PAGE_BYTES: usize = 4 << 20;
/// Secrets in the first page, before their size is known (4 MiB at the 1 MiB a Secret can hold
/// is 4; most are far smaller, and the next page grows).
const FIRST_SECRET_PAGE: u32 = 50;

/// The `limit` of the next page of Secrets, from the bytes per Secret seen so far.
#[derive(Debug)]
struct PageSizer {
    max: u32,
    limit: u32,
    bytes: usize,
    items: usize,
}

impl PageSizer {
    fn new(max: u32) -> Self {
        PageSizer { max, limit: max.clamp(1, FIRST_SECRET_PAGE), bytes: 0, items: 0 }
    }

    fn observe(&mut self, bytes: usize, items: usize) {
        self.bytes = self.bytes.saturating_add(bytes);
        self.items = self.items.saturating_add(items);
        if self.items == 0 {
            return;
        }
        // The largest of the mean so far and this page's mean: a run of large Secrets shrinks
        // the pages at once; small ones grow them at most twofold per page, so that a switch
        // from small to large Secrets costs one page of at most twice the budget's count.
        let mean = (self.bytes / self.items).max(bytes / items.max(1)).max(1);
        let fit = u32::try_from(SECRET_PAGE_BYTES / mean).unwrap_or(u32::MAX);
        self.limit = fit.min(self.limit.saturating_mul(2)).clamp(1, self.max.max(1));
    }
}

/// A page of Secrets as certvigil reads it: names, types, resource versions and key names;
/// the values are skipped by the parser, never held.
#[derive(serde::Deserialize)]
struct SecretKeysList {
    #[serde(default)]
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta,
    #[serde(default)]
    items: Vec<SecretKeys>,
}

#[derive(serde::Deserialize)]
struct SecretKeys {
    #[serde(default)]
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    #[serde(rename = "type", default)]
    type_: Option<String>,
    #[serde(default)]
    data: Option<std::collections::BTreeMap<String, serde::de::IgnoredAny>>,
}

/// One page of Secrets, and the size of its body. The body is read into one buffer (kube's
/// `Api::list` would hold it twice, then the decoded values).
async fn secret_page(conn: &Connected, ns: Option<&str>, lp: &ListParams) -> Result<(SecretKeysList, usize), kube::Error> {
    use http_body_util::BodyExt;
    use hyper::body::Body as _;
    let path = match ns {
        Some(ns) => format!("/api/v1/namespaces/{ns}/secrets"),
        None => "/api/v1/secrets".to_string(),
    };
    let mut req = kube::core::Request::new(path).list(lp).map_err(kube::Error::BuildRequest)?;
    req.extensions_mut().insert("list");
    let res = conn.client.send(req.map(kube::client::Body::from)).await?;
    let code = res.status();
    let mut body = res.into_body();
    let mut buf: Vec<u8> = Vec::with_capacity(usize::try_from(body.size_hint().lower()).unwrap_or(0).min(64 << 20));
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            buf.extend_from_slice(&data);
        }
    }
    if code.is_client_error() || code.is_server_error() {
        let status = serde_json::from_slice::<kube::core::Status>(&buf).unwrap_or_else(|_| {
            kube::core::Status::failure(String::from_utf8_lossy(&buf).trim(), "Failed to parse error data").with_code(code.as_u16())
        });
        return Err(kube::Error::Api(status.boxed()));
    }
    let page = serde_json::from_slice(&buf).map_err(kube::Error::SerdeError)?;
    Ok((page, buf.len()))
}

/// The objects of one webhook configuration: one per webhook carrying a `caBundle`.
fn webhook_keys(
    context: &str,
    kind: Kind,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    hooks: impl Iterator<Item = String>,
) -> Vec<(String, String)> {
    let Some(name) = meta.name.as_deref() else { return Vec::new() };
    let stamp = meta.resource_version.clone().unwrap_or_default();
    hooks.map(|h| (format!("k8s://{context}/{}/{name}#{h}", kind.path()), stamp.clone())).collect()
}

fn push_keys(
    objects: &mut Vec<(String, String)>,
    context: &str,
    kind: Kind,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    keys: impl Iterator<Item = String>,
) {
    let (Some(ns), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else { return };
    let stamp = meta.resource_version.clone().unwrap_or_default();
    for key in keys {
        objects.push((format!("k8s://{context}/{ns}/{}/{name}#{key}", kind.path()), stamp.clone()));
    }
}

/// Whether `$KUBECONFIG` is set or `~/.kube/config` exists.
fn default_kubeconfig_exists() -> bool {
    std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty())
        || std::env::var_os("HOME").is_some_and(|h| std::path::Path::new(&h).join(".kube/config").exists())
}

/// `(namespace, kind, name, key)` of a location of this context; the namespace is empty for
/// the cluster-wide webhook configurations.
fn parse_location<'a>(location: &'a str, context: &str) -> Option<(&'a str, Kind, &'a str, &'a str)> {
    let rest = location.strip_prefix("k8s://")?.strip_prefix(context)?.strip_prefix('/')?;
    let (path, key) = rest.split_once('#')?;
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["validatingwebhookconfigurations", name] => Some(("", Kind::ValidatingWebhooks, name, key)),
        ["mutatingwebhookconfigurations", name] => Some(("", Kind::MutatingWebhooks, name, key)),
        [ns, "secrets", name] => Some((ns, Kind::Secrets, name, key)),
        [ns, "configmaps", name] => Some((ns, Kind::ConfigMaps, name, key)),
        _ => None,
    }
}

fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({}): {}", s.reason, s.code, s.message),
        other => other.to_string(),
    }
}

/// Whether a failed list stops this kind in this scope or the whole source.
fn classify(e: kube::Error, what: &str, ns: Option<&str>) -> Stop {
    let scope = match ns {
        Some(ns) => format!("in namespace {ns}"),
        None => "across all namespaces".into(),
    };
    match &e {
        kube::Error::Api(s) if s.code == 401 => {
            Stop::Source(format!("the API server refused the credentials (401 Unauthorized): {}", s.message))
        }
        kube::Error::Api(s) if s.code == 403 => Stop::Part(format!("forbidden to list {what} {scope} (403): {}", s.message)),
        kube::Error::Api(s) if s.code == 410 => Stop::Part(format!("listing {what} {scope}: continue token expired twice (410)")),
        kube::Error::Api(s) => Stop::Part(format!("listing {what} {scope}: {} ({}): {}", s.reason, s.code, s.message)),
        other => Stop::Source(format!("listing {what} {scope}: {other}")),
    }
}

impl Drop for KubernetesSource {
    fn drop(&mut self) {
        // Dropping a runtime may block; the daemon drops sources on its own runtime's threads.
        let rt = std::mem::replace(&mut self.runtime, Err(String::new()));
        if let Ok(rt) = rt {
            rt.shutdown_background();
        }
    }
}

impl Source for KubernetesSource {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    fn tags(&self) -> &[String] {
        &self.spec.tags
    }

    fn list(&self, out: &mut dyn FnMut(Listing)) {
        match &self.runtime {
            Ok(rt) => rt.block_on(self.list_all(out)),
            Err(message) => out(Listing::Unavailable { prefix: format!("k8s://{}/", self.context_hint()), message: message.clone() }),
        }
    }

    fn fetch(&self, location: &str) -> Result<Fetched, String> {
        let rt = self.runtime.as_ref().map_err(Clone::clone)?;
        let conn = match self.connected() {
            Some(c) => c,
            None => std::sync::Arc::new(rt.block_on(self.connect())?),
        };
        rt.block_on(self.fetch_async(&conn, location))
    }

    fn passwords(&self) -> Result<Vec<Password>, SourceError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_pages_follow_the_bytes_per_secret() {
        let mut p = PageSizer::new(500);
        assert_eq!(p.limit, FIRST_SECRET_PAGE);
        // Small TLS Secrets: pages grow twofold up to the configured page size.
        p.observe(50 * 4_000, 50);
        assert_eq!(p.limit, 100);
        for _ in 0..3 {
            p.observe(p.limit as usize * 4_000, p.limit as usize);
        }
        assert_eq!(p.limit, 500);
        // Then Helm releases of 80 KiB: about 4 MiB per page.
        p.observe(500 * 80 * 1024, 500);
        assert_eq!(p.limit, 51);
        assert!(p.limit as usize * 80 * 1024 <= SECRET_PAGE_BYTES);
        // Secrets of 1 MiB: one or a few at a time, never zero.
        p.observe(51 << 20, 51);
        assert_eq!(p.limit, 4);
        p.observe(40 << 20, 1);
        assert_eq!(p.limit, 1);
        assert_eq!(PageSizer::new(10).limit, 10);
        let mut empty = PageSizer::new(500);
        empty.observe(100, 0);
        assert_eq!(empty.limit, FIRST_SECRET_PAGE);
    }

    #[test]
    fn locations() {
        let l = "k8s://prod/web/secrets/site-tls#tls.crt";
        let (ns, kind, name, key) = parse_location(l, "prod").unwrap();
        assert_eq!((ns, kind, name, key), ("web", Kind::Secrets, "site-tls", "tls.crt"));
        assert!(parse_location(l, "dev").is_none());
        assert!(parse_location("k8s://prod/web/pods/x#k", "prod").is_none());
        assert!(parse_location("k8s://prod/web/secrets/x", "prod").is_none());
        let (ns, kind, name, key) = parse_location("k8s://prod/validatingwebhookconfigurations/policy#check.example.com", "prod").unwrap();
        assert_eq!((ns, kind, name, key), ("", Kind::ValidatingWebhooks, "policy", "check.example.com"));
    }
}
