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
//! - APIServices (`apiregistration.k8s.io/v1`, with `api_services`): `spec.caBundle`, at
//!   `k8s://<context>/apiservices/<name>#caBundle`; CustomResourceDefinitions (with
//!   `crd_conversion`): `spec.conversion.webhook.clientConfig.caBundle`, at
//!   `k8s://<context>/customresourcedefinitions/<name>#conversion`. CRDs carry their whole
//!   OpenAPI schema, so they are listed in pages of at most [`CRD_PAGE`].
//! - Keys matching `public_key_keys` (cosign's `cosign.pub`) are read as PEM public keys and
//!   keys matching `trust_root_keys` as TUF `root.json`: both become key objects (`keys` table),
//!   the TUF root with its `expires` as `not_after` (see `kubernetes/trust.rs`).
//! - A PKCS#12 or JKS value of a Secret is opened with the Secret's own password keys
//!   (`password_keys`) first, then the source's `passwords`; values are never logged.
//! - cert-manager `Certificate`s (`cert-manager.io/v1`, read as dynamic objects, with
//!   `cert_manager`) of each namespace are listed before its Secrets; the Secret a Certificate
//!   names in `spec.secretName` carries its desired names, renewal time, notAfter and Ready
//!   condition in its meta (`certManager`), and its stamp includes the Certificate's resource
//!   version, so a Certificate that changes state is read again. A 404 on the group means
//!   cert-manager is not installed: nothing is reported.
//! - With `image_audit`, Deployments, StatefulSets, DaemonSets, Jobs (not those a CronJob
//!   owns), CronJobs and bare Pods (no ownerReferences) are listed page by page and only the
//!   images of their pod templates that are not pinned by digest are kept (`kubernetes/images.rs`);
//!   the result goes out as one [`Listing::ImageAudit`] when the source could be listed.
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
//! the other kinds and namespaces are still listed. A kind that may not be listed across all
//! namespaces (403, RBAC granted per namespace through RoleBindings) is listed namespace by
//! namespace instead, and only the namespaces that refuse it are reported. Refused credentials (401) and an
//! unreachable API server make the whole source unavailable.
//!
//! A key whose value holds no certificate is an error of that object (reported by the scan),
//! never a failure of the list.

use crate::net::kubernetes as access;
pub mod images;
pub mod trust;

use super::{Fetched, ImageFinding, Listing, Source, SourceError};
use crate::config::secret::Secret as Password;
use crate::config::sources::kubernetes::{KubernetesSpec, key_matches};
use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, PodSpec, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, ObjectList};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// Largest page of CustomResourceDefinitions: each carries its whole OpenAPI schema.
const CRD_PAGE: u32 = 50;

const TLS_TYPE: &str = "kubernetes.io/tls";
const TLS_KEYS: [&str; 2] = ["tls.crt", "ca.crt"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Secrets,
    ConfigMaps,
    ValidatingWebhooks,
    MutatingWebhooks,
    ApiServices,
    Crds,
    Certificates,
    Deployments,
    StatefulSets,
    DaemonSets,
    Jobs,
    CronJobs,
    Pods,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Secrets => "secrets",
            Kind::ConfigMaps => "configmaps",
            Kind::ValidatingWebhooks => "validatingwebhookconfigurations",
            Kind::MutatingWebhooks => "mutatingwebhookconfigurations",
            Kind::ApiServices => "apiservices",
            Kind::Crds => "customresourcedefinitions",
            Kind::Certificates => "certificates.cert-manager.io",
            Kind::Deployments => "deployments",
            Kind::StatefulSets => "statefulsets",
            Kind::DaemonSets => "daemonsets",
            Kind::Jobs => "jobs",
            Kind::CronJobs => "cronjobs",
            Kind::Pods => "pods",
        }
    }
    fn object(self) -> &'static str {
        match self {
            Kind::Secrets => "Secret",
            Kind::ConfigMaps => "ConfigMap",
            Kind::ValidatingWebhooks => "ValidatingWebhookConfiguration",
            Kind::MutatingWebhooks => "MutatingWebhookConfiguration",
            Kind::ApiServices => "APIService",
            Kind::Crds => "CustomResourceDefinition",
            Kind::Certificates => "Certificate",
            Kind::Deployments => "Deployment",
            Kind::StatefulSets => "StatefulSet",
            Kind::DaemonSets => "DaemonSet",
            Kind::Jobs => "Job",
            Kind::CronJobs => "CronJob",
            Kind::Pods => "Pod",
        }
    }
    const WORKLOADS: [Kind; 6] = [Kind::Deployments, Kind::StatefulSets, Kind::DaemonSets, Kind::Jobs, Kind::CronJobs, Kind::Pods];
}

/// Why a list stopped.
enum Stop {
    /// This kind in this scope only (a 410 after the one restart, another API error).
    Part(String),
    /// The credentials may not list this kind in this scope (403).
    Forbidden(String),
    /// The kind does not exist on this server (404): an optional add-on not installed.
    Absent,
    /// Every further request would fail the same way (401, connection).
    Source(String),
}

/// The objects of one page (location, stamp) and the next page's continue token.
pub type Page = (Vec<(String, String)>, Option<String>);

/// What a scan learns besides objects: the image findings, kept until the list ends.
#[derive(Default)]
struct Sink {
    images: Vec<ImageFinding>,
    cert_manager_absent: bool,
}

/// What the source knows about a cert-manager Certificate, kept by (namespace, secretName)
/// from the list until the Secret is fetched.
#[derive(Debug, Clone)]
struct CmCertificate {
    resource_version: String,
    meta: serde_json::Value,
}

/// How a key of a Secret or ConfigMap is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Certificates,
    PublicKey,
    TrustRoot,
}

struct Connected {
    client: kube::Client,
    context: String,
}

pub struct KubernetesSource {
    spec: KubernetesSpec,
    runtime: Result<tokio::runtime::Runtime, String>,
    client: Mutex<Option<std::sync::Arc<Connected>>>,
    /// cert-manager Certificates by (namespace, secretName), filled while listing.
    certificates: Mutex<HashMap<(String, String), CmCertificate>>,
}

impl KubernetesSource {
    pub fn new(spec: KubernetesSpec) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("certvigil-k8s")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the HTTP runtime: {e}"));
        KubernetesSource { spec, runtime, client: Mutex::new(None), certificates: Mutex::new(HashMap::new()) }
    }

    /// The context named in locations before a connection is made.
    fn context_hint(&self) -> String {
        match (self.spec.in_cluster, &self.spec.context) {
            (Some(true), _) => access::IN_CLUSTER.into(),
            (_, Some(c)) => c.clone(),
            (_, None) => "default".into(),
        }
    }

    async fn connect(&self) -> Result<Connected, access::AccessError> {
        let access::Connection { client, context } = access::connect(&self.spec.access()).await?;
        Ok(Connected { client, context })
    }

    fn connected(&self) -> Option<std::sync::Arc<Connected>> {
        self.client.lock().ok().and_then(|c| c.clone())
    }

    async fn list_all(&self, out: &mut dyn FnMut(Listing)) {
        let conn = match self.connect().await {
            Ok(c) => std::sync::Arc::new(c),
            Err(e) => {
                let context = e.context().map_or_else(|| self.context_hint(), str::to_string);
                out(Listing::Unavailable { prefix: format!("k8s://{context}/"), message: e.to_string() });
                return;
            }
        };
        if let Ok(mut slot) = self.client.lock() {
            *slot = Some(std::sync::Arc::clone(&conn));
        }
        if let Ok(mut c) = self.certificates.lock() {
            c.clear();
        }
        let whole = format!("k8s://{}/", conn.context);
        let scopes: Vec<Option<String>> = match self.namespaces(&conn).await {
            Ok(Some(names)) => names.into_iter().map(Some).collect(),
            Ok(None) => vec![None],
            Err(Stop::Source(message) | Stop::Part(message) | Stop::Forbidden(message)) => {
                out(Listing::Unavailable { prefix: whole, message });
                return;
            }
            Err(Stop::Absent) => {
                out(Listing::Unavailable { prefix: whole, message: "the API server has no namespaces resource".into() });
                return;
            }
        };
        let mut sink = Sink::default();
        let mut cluster = Vec::new();
        if self.spec.webhooks {
            cluster.extend([Kind::ValidatingWebhooks, Kind::MutatingWebhooks]);
        }
        if self.spec.api_services {
            cluster.push(Kind::ApiServices);
        }
        if self.spec.crd_conversion {
            cluster.push(Kind::Crds);
        }
        for kind in cluster {
            match self.list_kind(&conn, None, kind, out, &mut sink).await {
                Ok(()) => {}
                Err(Stop::Part(message) | Stop::Forbidden(message)) => {
                    out(Listing::Unavailable { prefix: format!("k8s://{}/{}/", conn.context, kind.path()), message })
                }
                // The aggregation layer or CRDs switched off: nothing of this kind to read.
                Err(Stop::Absent) => {}
                Err(Stop::Source(message)) => {
                    out(Listing::Unavailable { prefix: whole, message });
                    return;
                }
            }
        }
        let mut kinds = Vec::new();
        if self.spec.cert_manager {
            // Before the Secrets: their meta and stamps need the Certificates.
            kinds.push(Kind::Certificates);
        }
        kinds.push(Kind::Secrets);
        if !self.spec.configmap_keys.is_empty() || !self.spec.public_key_keys.is_empty() || !self.spec.trust_root_keys.is_empty() {
            kinds.push(Kind::ConfigMaps);
        }
        if self.spec.image_audit {
            kinds.extend(Kind::WORKLOADS);
        }
        // Every namespace, read when a kind may not be listed across all of them.
        let mut every_namespace: Option<Vec<String>> = None;
        for scope in &scopes {
            for &kind in &kinds {
                if kind == Kind::Certificates && sink.cert_manager_absent {
                    continue;
                }
                let failed = match self.list_kind(&conn, scope.as_deref(), kind, out, &mut sink).await {
                    Ok(()) => continue,
                    Err(stop) => stop,
                };
                match (failed, scope) {
                    (Stop::Absent, _) => {
                        if kind == Kind::Certificates {
                            tracing::info!(source = %self.spec.name, "cert-manager is not installed (no certificates.cert-manager.io)");
                            sink.cert_manager_absent = true;
                        }
                    }
                    (Stop::Source(message), _) => {
                        out(Listing::Unavailable { prefix: whole, message });
                        return;
                    }
                    (Stop::Part(message) | Stop::Forbidden(message), Some(ns)) => {
                        out(Listing::Unavailable { prefix: format!("k8s://{}/{ns}/{}/", conn.context, kind.path()), message })
                    }
                    (Stop::Part(message), None) => out(Listing::Unavailable { prefix: whole.clone(), message }),
                    (Stop::Forbidden(message), None) => {
                        // RBAC granted per namespace: list the namespaces one by one.
                        if every_namespace.is_none() {
                            match self.namespace_names(&conn, None).await {
                                Ok(names) => every_namespace = Some(names),
                                Err(Stop::Source(m)) => {
                                    out(Listing::Unavailable { prefix: whole, message: m });
                                    return;
                                }
                                Err(Stop::Part(m) | Stop::Forbidden(m)) => {
                                    let message = format!("{message}; and the namespaces cannot be listed to read them one by one: {m}");
                                    out(Listing::Unavailable { prefix: whole.clone(), message });
                                    continue;
                                }
                                Err(Stop::Absent) => {
                                    out(Listing::Unavailable { prefix: whole.clone(), message });
                                    continue;
                                }
                            }
                        }
                        tracing::info!(source = %self.spec.name, kind = kind.path(), "not allowed across all namespaces: listing each namespace");
                        for ns in every_namespace.iter().flatten() {
                            match self.list_kind(&conn, Some(ns), kind, out, &mut sink).await {
                                Ok(()) | Err(Stop::Absent) => {}
                                Err(Stop::Part(m) | Stop::Forbidden(m)) => out(Listing::Unavailable {
                                    prefix: format!("k8s://{}/{ns}/{}/", conn.context, kind.path()),
                                    message: m,
                                }),
                                Err(Stop::Source(m)) => {
                                    out(Listing::Unavailable { prefix: whole, message: m });
                                    return;
                                }
                            }
                        }
                    }
                }
            }
        }
        if self.spec.image_audit {
            out(Listing::ImageAudit { findings: std::mem::take(&mut sink.images) });
        }
    }

    /// The names of the cluster's namespaces, all or those matching `selector`, page by page.
    async fn namespace_names(&self, conn: &Connected, selector: Option<&str>) -> Result<Vec<String>, Stop> {
        let api: Api<Namespace> = Api::all(conn.client.clone());
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut lp = ListParams::default().limit(self.spec.page_size);
            if let Some(sel) = selector {
                lp = lp.labels(sel);
            }
            lp.continue_token = token.take();
            let page = api.list_metadata(&lp).await.map_err(|e| classify(e, "namespaces", None))?;
            names.extend(page.items.iter().filter_map(|n| n.metadata.name.clone()));
            match next_token(&page.metadata) {
                Some(c) => token = Some(c),
                None => break,
            }
        }
        names.sort();
        Ok(names)
    }

    /// The namespaces to list one by one, or `None` to list across all namespaces.
    async fn namespaces(&self, conn: &Connected) -> Result<Option<Vec<String>>, Stop> {
        let Some(selector) = &self.spec.namespace_selector else {
            return Ok((!self.spec.namespaces.is_empty()).then(|| self.spec.namespaces.clone()));
        };
        let mut names = self.namespace_names(conn, Some(selector)).await?;
        if !self.spec.namespaces.is_empty() {
            names.retain(|n| self.spec.namespaces.contains(n));
        }
        Ok(Some(names))
    }

    async fn list_kind(
        &self,
        conn: &Connected,
        ns: Option<&str>,
        kind: Kind,
        out: &mut dyn FnMut(Listing),
        sink: &mut Sink,
    ) -> Result<(), Stop> {
        let mut seen: HashSet<String> = HashSet::new();
        let mut restarted = false;
        let mut token: Option<String> = None;
        let mut sizer = PageSizer::new(self.spec.page_size);
        loop {
            let limit = match kind {
                Kind::Secrets => sizer.limit,
                Kind::Crds => self.spec.page_size.min(CRD_PAGE),
                _ => self.spec.page_size,
            };
            let mut lp = ListParams::default().limit(limit);
            lp.continue_token = token.take();
            let had_token = lp.continue_token.is_some();
            let sev = images::Severities { tag: self.spec.image_tag_severity, latest: self.spec.image_latest_severity };
            let images = &mut sink.images;
            let page: Result<Page, kube::Error> = match kind {
                Kind::Secrets => secret_page(conn, ns, &lp).await.map(|(p, bytes)| {
                    sizer.observe(bytes, p.items.len());
                    self.secret_keys(&conn.context, p)
                }),
                Kind::ConfigMaps => self.page::<ConfigMap>(conn, ns, &lp).await.map(|p| self.configmap_keys(&conn.context, p)),
                Kind::ValidatingWebhooks => {
                    bundle_page(conn, kind, &lp, |w: &ValidatingWebhookConfiguration| {
                        w.webhooks.iter().flatten().filter(|h| h.client_config.ca_bundle.is_some()).map(|h| h.name.clone()).collect()
                    })
                    .await
                }
                Kind::MutatingWebhooks => {
                    bundle_page(conn, kind, &lp, |w: &MutatingWebhookConfiguration| {
                        w.webhooks.iter().flatten().filter(|h| h.client_config.ca_bundle.is_some()).map(|h| h.name.clone()).collect()
                    })
                    .await
                }
                Kind::ApiServices => {
                    bundle_page(conn, kind, &lp, |a: &APIService| {
                        let has = a.spec.as_ref().is_some_and(|s| s.ca_bundle.as_ref().is_some_and(|b| !b.0.is_empty()));
                        has.then(|| "caBundle".to_string()).into_iter().collect()
                    })
                    .await
                }
                Kind::Crds => {
                    bundle_page(conn, kind, &lp, |c: &CustomResourceDefinition| {
                        crd_bundle(c).is_some_and(|b| !b.is_empty()).then(|| "conversion".to_string()).into_iter().collect()
                    })
                    .await
                }
                Kind::Certificates => {
                    let gvk = GroupVersionKind::gvk("cert-manager.io", "v1", "Certificate");
                    let ar = ApiResource::from_gvk_with_plural(&gvk, "certificates");
                    let api: Api<DynamicObject> = match ns {
                        Some(ns) => Api::namespaced_with(conn.client.clone(), ns, &ar),
                        None => Api::all_with(conn.client.clone(), &ar),
                    };
                    api.list(&lp).await.map(|p| {
                        self.remember_certificates(&p.items);
                        (Vec::new(), next_token(&p.metadata))
                    })
                }
                Kind::Deployments => self.page::<Deployment>(conn, ns, &lp).await.map(|p| {
                    audit_templates(&p.items, kind, sev, images, |d| (&d.metadata, d.spec.as_ref().and_then(|s| s.template.spec.as_ref())));
                    (Vec::new(), next_token(&p.metadata))
                }),
                Kind::StatefulSets => self.page::<StatefulSet>(conn, ns, &lp).await.map(|p| {
                    audit_templates(&p.items, kind, sev, images, |d| (&d.metadata, d.spec.as_ref().and_then(|s| s.template.spec.as_ref())));
                    (Vec::new(), next_token(&p.metadata))
                }),
                Kind::DaemonSets => self.page::<DaemonSet>(conn, ns, &lp).await.map(|p| {
                    audit_templates(&p.items, kind, sev, images, |d| (&d.metadata, d.spec.as_ref().and_then(|s| s.template.spec.as_ref())));
                    (Vec::new(), next_token(&p.metadata))
                }),
                Kind::Jobs => self.page::<Job>(conn, ns, &lp).await.map(|p| {
                    // A CronJob's Jobs run its template: the CronJob is reported, once.
                    let owned = |j: &Job| j.metadata.owner_references.iter().flatten().any(|o| o.kind == "CronJob");
                    for j in p.items.iter().filter(|j| !owned(j)) {
                        let spec = j.spec.as_ref().and_then(|s| s.template.spec.as_ref());
                        audit_pods(&j.metadata, kind, spec, sev, images);
                    }
                    (Vec::new(), next_token(&p.metadata))
                }),
                Kind::CronJobs => self.page::<CronJob>(conn, ns, &lp).await.map(|p| {
                    for c in &p.items {
                        let spec = c.spec.as_ref().and_then(|s| s.job_template.spec.as_ref()).and_then(|j| j.template.spec.as_ref());
                        audit_pods(&c.metadata, kind, spec, sev, images);
                    }
                    (Vec::new(), next_token(&p.metadata))
                }),
                Kind::Pods => self.page::<Pod>(conn, ns, &lp).await.map(|p| {
                    // Pods a controller owns are audited through their controller.
                    for pod in p.items.iter().filter(|pod| pod.metadata.owner_references.as_ref().is_none_or(|o| o.is_empty())) {
                        audit_pods(&pod.metadata, kind, pod.spec.as_ref(), sev, images);
                    }
                    (Vec::new(), next_token(&p.metadata))
                }),
            };
            let (objects, next) = match page {
                Ok(p) => p,
                Err(kube::Error::Api(e)) if e.code == 410 && had_token && !restarted => {
                    tracing::info!(source = %self.spec.name, kind = kind.path(), "continue token expired: listing again from the start");
                    restarted = true;
                    if Kind::WORKLOADS.contains(&kind) {
                        // The findings of the pages already read come again.
                        let at = ns.unwrap_or("");
                        sink.images.retain(|f| !(f.workload_kind == kind.object() && (at.is_empty() || f.namespace == at)));
                    }
                    continue;
                }
                Err(kube::Error::Api(e)) if e.code == 404 && !had_token => return Err(Stop::Absent),
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

    /// Keeps what the Secrets of these Certificates need: names, times, the Ready condition.
    fn remember_certificates(&self, items: &[DynamicObject]) {
        let Ok(mut map) = self.certificates.lock() else { return };
        for c in items {
            let (Some(ns), Some(name)) = (c.metadata.namespace.as_deref(), c.metadata.name.as_deref()) else { continue };
            let Some(summary) = cert_manager_summary(name, &c.data) else { continue };
            let Some(secret) = summary.get("secretName").and_then(|s| s.as_str()).map(str::to_string) else { continue };
            let rv = c.metadata.resource_version.clone().unwrap_or_default();
            map.insert((ns.to_string(), secret), CmCertificate { resource_version: rv, meta: summary });
        }
    }

    /// The Certificate that produces this Secret, if cert-manager is read.
    fn certificate_of(&self, ns: &str, secret: &str) -> Option<CmCertificate> {
        self.certificates.lock().ok()?.get(&(ns.to_string(), secret.to_string())).cloned()
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

    /// One page body of a Secrets list read as listing reads it (names, types, resource versions
    /// and key names; values skipped): the listed objects and the next token. No request is made,
    /// so the page parser can be tested and fuzzed without a cluster.
    pub fn read_secret_page(&self, context: &str, body: &[u8]) -> Result<Page, serde_json::Error> {
        Ok(self.secret_keys(context, parse_secret_page(body)?))
    }

    /// The same for a page of a ConfigMaps list (which the API client decodes whole).
    pub fn read_configmap_page(&self, context: &str, body: &[u8]) -> Result<Page, serde_json::Error> {
        Ok(self.configmap_keys(context, serde_json::from_slice(body)?))
    }

    /// The listed objects of a page of Secrets (values dropped with the page), and the next token.
    fn secret_keys(&self, context: &str, page: SecretKeysList) -> (Vec<(String, String)>, Option<String>) {
        let mut objects = Vec::new();
        for s in &page.items {
            let keys = s.data.as_ref().map(|d| d.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
            let tls = s.type_.as_deref() == Some(TLS_TYPE);
            let wanted = keys.into_iter().filter(|k| {
                if tls {
                    TLS_KEYS.contains(&k.as_str())
                } else {
                    self.wanted(&self.spec.secret_keys, k) || self.role(k) != Role::Certificates
                }
            });
            // A Secret cert-manager manages is read again when its Certificate changes.
            let extra = match (s.metadata.namespace.as_deref(), s.metadata.name.as_deref()) {
                (Some(ns), Some(name)) => self.certificate_of(ns, name).map(|c| format!("+cm{}", c.resource_version)),
                _ => None,
            };
            push_keys(&mut objects, context, Kind::Secrets, &s.metadata, extra.as_deref().unwrap_or(""), wanted);
        }
        (objects, next_token(&page.metadata))
    }

    fn configmap_keys(&self, context: &str, page: ObjectList<ConfigMap>) -> (Vec<(String, String)>, Option<String>) {
        let mut objects = Vec::new();
        for c in &page.items {
            let mut keys: Vec<String> = c.data.iter().flat_map(|d| d.keys().cloned()).collect();
            keys.extend(c.binary_data.iter().flat_map(|d| d.keys().cloned()));
            keys.sort();
            keys.dedup();
            let wanted = keys.into_iter().filter(|k| self.wanted(&self.spec.configmap_keys, k) || self.role(k) != Role::Certificates);
            push_keys(&mut objects, context, Kind::ConfigMaps, &c.metadata, "", wanted);
        }
        (objects, next_token(&page.metadata))
    }

    fn wanted(&self, patterns: &[String], key: &str) -> bool {
        patterns.iter().any(|p| key_matches(p, key))
    }

    /// How a listed key is read: a TUF root, a public key, or certificates.
    fn role(&self, key: &str) -> Role {
        if self.wanted(&self.spec.trust_root_keys, key) {
            Role::TrustRoot
        } else if self.wanted(&self.spec.public_key_keys, key) {
            Role::PublicKey
        } else {
            Role::Certificates
        }
    }

    async fn fetch_async(&self, conn: &Connected, location: &str) -> Result<Fetched, String> {
        let (ns, kind, name, key) =
            parse_location(location, &conn.context).ok_or_else(|| format!("not a location of this source: {location}"))?;
        if ns.is_empty() {
            return self.fetch_webhook(conn, kind, name, key).await;
        }
        let mut passwords = Vec::new();
        let (bytes, rv) = match kind {
            Kind::Secrets => {
                let api: Api<Secret> = Api::namespaced(conn.client.clone(), ns);
                let s = api.get(name).await.map_err(|e| describe(&e))?;
                let mut data = s.data.unwrap_or_default();
                let value = data.remove(key).ok_or_else(|| format!("the Secret has no key `{key}` any more"))?;
                if crate::x509::pkcs12::looks_like_pkcs12(&value.0) || crate::x509::jks::looks_like_jks(&value.0) {
                    passwords = self.sibling_passwords(&data);
                }
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
            _ => return Err(format!("not a location of this source: {location}")),
        };
        let mut meta = json!({"namespace": ns, "kind": kind.object(), "name": name, "key": key, "resourceVersion": rv});
        if kind == Kind::Secrets
            && let Some(c) = self.certificate_of(ns, name)
        {
            meta["certManager"] = c.meta;
        }
        let key_object = match self.role(key) {
            Role::Certificates => None,
            Role::PublicKey => Some(trust::public_key(&bytes).map_err(|e| format!("`{key}` {e}"))?),
            Role::TrustRoot => Some(trust::tuf_root(&bytes).map_err(|e| format!("`{key}`: {e}"))?),
        };
        if let Some(mut k) = key_object {
            k.label = Some(match k.label.take() {
                Some(l) => format!("{l} ({ns}/{name}#{key})"),
                None => format!("{ns}/{name}#{key}"),
            });
            return Ok(Fetched { bytes: Vec::new(), meta: Some(meta), key: Some(k), passwords: Vec::new() });
        }
        Ok(Fetched { bytes, meta: Some(meta), key: None, passwords })
    }

    /// The values of the Secret's password keys, in the configured order, each also without a
    /// trailing newline (`kubectl create secret --from-file` keeps the file's).
    fn sibling_passwords(&self, data: &std::collections::BTreeMap<String, k8s_openapi::ByteString>) -> Vec<Password> {
        let mut out: Vec<String> = Vec::new();
        for pattern in &self.spec.password_keys {
            for v in data.iter().filter(|(k, _)| key_matches(pattern, k)).map(|(_, v)| v) {
                let Ok(text) = std::str::from_utf8(&v.0) else { continue };
                for candidate in [text, text.trim_end_matches(['\r', '\n'])] {
                    if !out.iter().any(|o| o == candidate) {
                        out.push(candidate.to_string());
                    }
                }
            }
        }
        out.into_iter().map(Password::new).collect()
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
            Kind::ApiServices => {
                let api: Api<APIService> = Api::all(conn.client.clone());
                let a = api.get(name).await.map_err(|e| describe(&e))?;
                (a.spec.and_then(|s| s.ca_bundle), a.metadata.resource_version)
            }
            Kind::Crds => {
                let api: Api<CustomResourceDefinition> = Api::all(conn.client.clone());
                let c = api.get(name).await.map_err(|e| describe(&e))?;
                (crd_bundle(&c).map(|b| k8s_openapi::ByteString(b.to_vec())), c.metadata.resource_version)
            }
            _ => return Err(format!("{} are namespaced", kind.path())),
        };
        let bundle = bundle.ok_or_else(|| format!("`{name}` has no caBundle at `{hook}` any more"))?;
        let meta = json!({"kind": kind.object(), "name": name, "key": hook, "resourceVersion": rv});
        Ok(Fetched { bytes: bundle.0, meta: Some(meta), key: None, passwords: Vec::new() })
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
    let page = parse_secret_page(&buf).map_err(kube::Error::SerdeError)?;
    Ok((page, buf.len()))
}

fn parse_secret_page(body: &[u8]) -> Result<SecretKeysList, serde_json::Error> {
    serde_json::from_slice(body)
}

/// The objects of one webhook configuration: one per webhook carrying a `caBundle`.
/// One page of a cluster-scoped kind whose objects carry CA bundles; `bundles` names those an
/// object holds (webhook names, `caBundle`, `conversion`), each one object of the source.
async fn bundle_page<K>(conn: &Connected, kind: Kind, lp: &ListParams, bundles: impl Fn(&K) -> Vec<String>) -> Result<Page, kube::Error>
where
    K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope, DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::all(conn.client.clone());
    api.list(lp).await.map(|p| {
        let next = next_token(&p.metadata);
        let objects = p.items.iter().flat_map(|o| webhook_keys(&conn.context, kind, o.meta(), bundles(o).into_iter())).collect();
        (objects, next)
    })
}

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
    stamp_suffix: &str,
    keys: impl Iterator<Item = String>,
) {
    let (Some(ns), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else { return };
    let stamp = format!("{}{stamp_suffix}", meta.resource_version.as_deref().unwrap_or_default());
    for key in keys {
        objects.push((format!("k8s://{context}/{ns}/{}/{name}#{key}", kind.path()), stamp.clone()));
    }
}

fn next_token(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta) -> Option<String> {
    meta.continue_.clone().filter(|c| !c.is_empty())
}

/// The conversion webhook's CA bundle of a CRD (`spec.conversion.webhook.clientConfig.caBundle`).
fn crd_bundle(c: &CustomResourceDefinition) -> Option<&[u8]> {
    let conversion = c.spec.conversion.as_ref()?;
    let config = conversion.webhook.as_ref()?.client_config.as_ref()?;
    config.ca_bundle.as_ref().map(|b| b.0.as_slice())
}

/// The images of a workload's pod template that are not pinned by digest.
/// Audits the pod templates of a page of workloads (`parts` gives each one's metadata and
/// template spec).
fn audit_templates<K>(
    items: &[K],
    kind: Kind,
    sev: images::Severities,
    out: &mut Vec<ImageFinding>,
    parts: impl Fn(&K) -> (&k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, Option<&PodSpec>),
) {
    for item in items {
        let (meta, spec) = parts(item);
        audit_pods(meta, kind, spec, sev, out);
    }
}

fn audit_pods(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    kind: Kind,
    spec: Option<&PodSpec>,
    sev: images::Severities,
    out: &mut Vec<ImageFinding>,
) {
    let (Some(ns), Some(name), Some(spec)) = (meta.namespace.as_deref(), meta.name.as_deref(), spec) else { return };
    images::audit(ns, kind.object(), name, spec, sev, out);
}

/// What the Secret of a cert-manager Certificate records about it (cert-manager.io/v1:
/// `spec.secretName`, `spec.dnsNames`, `status.renewalTime`, `status.notAfter`, the `Ready`
/// condition). `None` when the object has no `spec.secretName`.
fn cert_manager_summary(name: &str, data: &serde_json::Value) -> Option<serde_json::Value> {
    let secret = data.pointer("/spec/secretName")?.as_str()?;
    let ready = data
        .pointer("/status/conditions")
        .and_then(|c| c.as_array())
        .and_then(|c| c.iter().find(|c| c.get("type").and_then(|t| t.as_str()) == Some("Ready")));
    let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_string);
    Some(json!({
        "certificate": name,
        "secretName": secret,
        "dnsNames": data.pointer("/spec/dnsNames").cloned().unwrap_or_else(|| json!([])),
        "renewalTime": text(data.pointer("/status/renewalTime")),
        "notAfter": text(data.pointer("/status/notAfter")),
        // "True", "False" or "Unknown"; "Unknown" too when the condition is not there yet.
        "ready": text(ready.and_then(|r| r.get("status"))).unwrap_or_else(|| "Unknown".into()),
        "reason": text(ready.and_then(|r| r.get("reason"))),
        "message": text(ready.and_then(|r| r.get("message"))),
    }))
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
        ["apiservices", name] => Some(("", Kind::ApiServices, name, key)),
        ["customresourcedefinitions", name] => Some(("", Kind::Crds, name, key)),
        [ns, "secrets", name] => Some((ns, Kind::Secrets, name, key)),
        [ns, "configmaps", name] => Some((ns, Kind::ConfigMaps, name, key)),
        _ => None,
    }
}

fn describe(e: &kube::Error) -> String {
    access::describe(e)
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
        kube::Error::Api(s) if s.code == 403 => Stop::Forbidden(format!("forbidden to list {what} {scope} (403): {}", s.message)),
        kube::Error::Api(s) if s.code == 410 => Stop::Part(format!("listing {what} {scope}: continue token expired twice (410)")),
        kube::Error::Api(s) => Stop::Part(format!("listing {what} {scope}: {} ({}): {}", s.reason, s.code, s.message)),
        other => Stop::Source(format!("listing {what} {scope}: {}", access::describe(other))),
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
            None => std::sync::Arc::new(rt.block_on(self.connect()).map_err(|e| e.to_string())?),
        };
        rt.block_on(self.fetch_async(&conn, location))
    }

    fn passwords(&self) -> Result<Vec<Password>, SourceError> {
        super::resolve_passwords(&self.spec.name, &self.spec.passwords)
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
