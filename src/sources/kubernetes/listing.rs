//! Listing a cluster: the namespaces to read, each kind page by page (`limit`/`continue`, one
//! restart after a 410), the fallback to namespace-by-namespace listing where RBAC is granted
//! per namespace, what a failed list stops (the kind in a scope, or the whole source), and the
//! image audit of workload pod templates.

use super::bundles::{bundle_page, crd_bundle};
use super::secrets::{PageSizer, secret_page};
use super::{Connected, ImageFinding, Kind, KubernetesSource, Listing, Page, access, images, next_token};
use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, PodSpec};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, ObjectList};
use std::collections::HashSet;

/// Largest page of CustomResourceDefinitions: each carries its whole OpenAPI schema.
const CRD_PAGE: u32 = 50;

/// Why a list of one kind (`what`: its path) failed, in a namespace or across all of them.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("the API server refused the credentials (401 Unauthorized): {message}")]
    Unauthorized { message: String },
    #[error("forbidden to list {what} {} (403): {message}", scope(.namespace))]
    Forbidden { what: &'static str, namespace: Option<String>, message: String },
    #[error("listing {what} {}: continue token expired twice (410)", scope(.namespace))]
    Expired { what: &'static str, namespace: Option<String> },
    /// Another status of the API server, with its reason and message.
    #[error("listing {what} {}: {reason} ({code}): {message}", scope(.namespace))]
    Api { what: &'static str, namespace: Option<String>, reason: String, code: u16, message: String },
    /// No answer (connection, TLS, credentials plugin).
    #[error("listing {what} {}: {}", scope(.namespace), access::describe(.source))]
    Request {
        what: &'static str,
        namespace: Option<String>,
        #[source]
        source: kube::Error,
    },
}

/// `in namespace web` or `across all namespaces`.
fn scope(namespace: &Option<String>) -> String {
    match namespace {
        Some(ns) => format!("in namespace {ns}"),
        None => "across all namespaces".into(),
    }
}

/// Why a list stopped.
enum Stop {
    /// This kind in this scope only (a 410 after the one restart, another API error).
    Part(ListError),
    /// The credentials may not list this kind in this scope (403).
    Forbidden(ListError),
    /// The kind does not exist on this server (404): an optional add-on not installed.
    Absent,
    /// Every further request would fail the same way (401, connection).
    Source(ListError),
}

/// What a scan learns besides objects: the image findings, kept until the list ends.
#[derive(Default)]
struct Sink {
    images: Vec<ImageFinding>,
    cert_manager_absent: bool,
}

impl KubernetesSource {
    pub(super) async fn list_all(&self, out: &mut dyn FnMut(Listing)) {
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
            Err(Stop::Source(e) | Stop::Part(e) | Stop::Forbidden(e)) => {
                out(Listing::Unavailable { prefix: whole, message: e.to_string() });
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
                Err(Stop::Part(e) | Stop::Forbidden(e)) => {
                    out(Listing::Unavailable { prefix: format!("k8s://{}/{}/", conn.context, kind.path()), message: e.to_string() })
                }
                // The aggregation layer or CRDs switched off: nothing of this kind to read.
                Err(Stop::Absent) => {}
                Err(Stop::Source(e)) => {
                    out(Listing::Unavailable { prefix: whole, message: e.to_string() });
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
                    (Stop::Source(e), _) => {
                        out(Listing::Unavailable { prefix: whole, message: e.to_string() });
                        return;
                    }
                    (Stop::Part(e) | Stop::Forbidden(e), Some(ns)) => out(Listing::Unavailable {
                        prefix: format!("k8s://{}/{ns}/{}/", conn.context, kind.path()),
                        message: e.to_string(),
                    }),
                    (Stop::Part(e), None) => out(Listing::Unavailable { prefix: whole.clone(), message: e.to_string() }),
                    (Stop::Forbidden(e), None) => {
                        // RBAC granted per namespace: list the namespaces one by one.
                        if every_namespace.is_none() {
                            match self.namespace_names(&conn, None).await {
                                Ok(names) => every_namespace = Some(names),
                                Err(Stop::Source(m)) => {
                                    out(Listing::Unavailable { prefix: whole, message: m.to_string() });
                                    return;
                                }
                                Err(Stop::Part(m) | Stop::Forbidden(m)) => {
                                    let message = format!("{e}; and the namespaces cannot be listed to read them one by one: {m}");
                                    out(Listing::Unavailable { prefix: whole.clone(), message });
                                    continue;
                                }
                                Err(Stop::Absent) => {
                                    out(Listing::Unavailable { prefix: whole.clone(), message: e.to_string() });
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
                                    message: m.to_string(),
                                }),
                                Err(Stop::Source(m)) => {
                                    out(Listing::Unavailable { prefix: whole, message: m.to_string() });
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

/// Whether a failed list stops this kind in this scope or the whole source.
fn classify(e: kube::Error, what: &'static str, ns: Option<&str>) -> Stop {
    let namespace = ns.map(str::to_string);
    match e {
        kube::Error::Api(s) if s.code == 401 => Stop::Source(ListError::Unauthorized { message: s.message }),
        kube::Error::Api(s) if s.code == 403 => Stop::Forbidden(ListError::Forbidden { what, namespace, message: s.message }),
        kube::Error::Api(s) if s.code == 410 => Stop::Part(ListError::Expired { what, namespace }),
        kube::Error::Api(s) => Stop::Part(ListError::Api { what, namespace, reason: s.reason, code: s.code, message: s.message }),
        source => Stop::Source(ListError::Request { what, namespace, source }),
    }
}
