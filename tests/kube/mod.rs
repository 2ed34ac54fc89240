//! A fixture Kubernetes API server for the `kind: kubernetes` tests: plain HTTP/1.1 on
//! 127.0.0.1 (its routing on the shared loopback server of `tests/common/http.rs`, one thread
//! per connection), bearer-token authentication; or,
//! started with [`ApiServer::start_tls`], HTTPS (rustls, ring) with client-certificate
//! authentication besides the token.
//!
//! It reproduces the parts of the real API certvigil depends on, with the real wire forms:
//! - `GET /api/v1/{secrets,configmaps}` and `/api/v1/namespaces/{ns}/{secrets,configmaps}`
//!   answer `{"kind":"SecretList","apiVersion":"v1","metadata":{"resourceVersion","continue"},
//!   "items":[…]}`, items being `k8s-openapi` `Secret`/`ConfigMap` values serialised with
//!   serde_json (so `apiVersion`/`kind` on each item, `data` in base64 for Secrets), ordered by
//!   namespace then name like etcd's key order;
//! - `GET /api/v1/namespaces/{ns}/{secrets,configmaps}/{name}` answers one object, or 404;
//! - `GET /api/v1/namespaces?labelSelector=k=v` lists namespaces (equality selectors only);
//! - `GET /apis/admissionregistration.k8s.io/v1/{validating,mutating}webhookconfigurations`
//!   (and `/{name}`): cluster-scoped lists and objects, `caBundle` in base64;
//! - `limit` + `continue` pagination (an opaque token; `continue` is absent on the last page);
//! - a continue token can be made to expire: the request carrying it answers 410 with a
//!   `Status` of reason `Expired`, as the API server does once etcd compacted the revision;
//! - forbidden namespaces answer 403 with a `Status` of reason `Forbidden`; so does the
//!   cluster-wide list of a kind named in `forbidden_cluster_wide` (RBAC granted through
//!   RoleBindings only), while its per-namespace lists answer;
//! - `GET /apis/apiregistration.k8s.io/v1/apiservices` and
//!   `/apis/apiextensions.k8s.io/v1/customresourcedefinitions` (and `/{name}`): cluster-scoped,
//!   paginated, `spec.caBundle` and `spec.conversion.webhook.clientConfig.caBundle` in base64;
//! - `GET /apis/cert-manager.io/v1[/namespaces/{ns}]/certificates`: cert-manager `Certificate`
//!   objects (apiVersion `cert-manager.io/v1`, spec and status as cert-manager writes them),
//!   paginated; 404 with a `Status` of reason `NotFound` when cert-manager is not installed,
//!   as for any resource the server does not serve;
//! - `GET /apis/apps/v1[/namespaces/{ns}]/{deployments,statefulsets,daemonsets}`,
//!   `/apis/batch/v1[/namespaces/{ns}]/{jobs,cronjobs}` and `/api/v1[/namespaces/{ns}]/pods`:
//!   `k8s-openapi` workload objects, paginated like the rest;
//! - a missing or wrong bearer token answers 401 with a `Status` of reason `Unauthorized`
//!   (each server has its own token: `State::token`);
//! - over TLS, like the API server's x509 client-cert authenticator: the server asks for a
//!   client certificate without requiring one at the handshake (Go's `RequestClientCert`), then
//!   verifies it against the client CA; a valid one authenticates the user named by its subject
//!   CN (recorded in `State::users`), one that does not verify (another CA, expired) authenticates
//!   no one, so a request without a valid token answers 401 `Unauthorized`, not a handshake
//!   failure;
//! - `POST /api/v1/namespaces/{ns}/secrets` creates a Secret: 201 with the stored object, 409
//!   `AlreadyExists` when the name is taken, 403 `Forbidden` in a namespace refused for writes;
//! - `PUT /api/v1/namespaces/{ns}/secrets/{name}` replaces one: 200, 404 `NotFound` when it is
//!   absent, 409 `Conflict` when the body's `metadata.resourceVersion` is not the stored one
//!   (optimistic concurrency; a body without one replaces unconditionally, as the API allows
//!   for Secrets), 422 `Invalid` when the body changes the immutable `type`, 403 when refused.
//!   Another writer can be simulated: it creates or changes the Secret just before the next
//!   writes arrive.
//!
//! Every object carries a `metadata.resourceVersion` from one global counter, bumped on change,
//! and the `metadata.annotations` and `metadata.labels` set on it (`State::set_metadata`),
//! served in lists and single objects alike, absent when there are none, as the API serves them.
//!
//! Large fixtures (the `kubernetes` benchmark) add Secrets already serialised
//! (`put_raw_secret`), whose JSON pieces may be shared between objects: a list page is then
//! written to the socket piece by piece, without building the page in memory, so serving 50,000
//! Secrets of 100 KiB costs about what copying them does.

// Shared by several test and bench crates, each using a part.
#![allow(dead_code)]

use crate::common::http::{HttpServer, Request, Response, Stream};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Container, EphemeralContainer, Namespace, Pod, PodSpec, PodTemplateSpec, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::{APIService, APIServiceSpec};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

pub const TOKEN: &str = "fixture-token-0123456789";

#[derive(Default)]
pub struct State {
    /// (namespace, name) → Secret.
    pub secrets: BTreeMap<(String, String), Secret>,
    pub configmaps: BTreeMap<(String, String), ConfigMap>,
    pub validating: BTreeMap<String, ValidatingWebhookConfiguration>,
    pub mutating: BTreeMap<String, MutatingWebhookConfiguration>,
    pub apiservices: BTreeMap<String, APIService>,
    pub crds: BTreeMap<String, apiext::CustomResourceDefinition>,
    /// cert-manager Certificates by (namespace, name); `None`: cert-manager is not installed.
    pub certificates: Option<BTreeMap<(String, String), Value>>,
    /// Workloads by (kind path, namespace, name), serialised.
    pub workloads: BTreeMap<(String, String, String), Value>,
    /// Kinds (`secrets`, `pods`, …) whose cluster-wide list is forbidden.
    pub forbidden_cluster_wide: BTreeSet<String>,
    /// Namespace → labels.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    pub forbidden: BTreeSet<String>,
    /// The next request carrying a continue token answers 410 this many times.
    pub expire_continues: u32,
    pub revision: u64,
    /// Secrets added already serialised: (namespace, name) → JSON pieces of the object.
    pub raw_secrets: BTreeMap<(String, String), Vec<Arc<str>>>,
    /// Namespaces where creating and replacing Secrets answers 403.
    pub forbidden_writes: BTreeSet<String>,
    /// The next this-many writes find their Secret changed by another writer just before they
    /// arrive: a PUT finds an annotation `other-writer` set and the resourceVersion bumped, a
    /// POST finds the Secret created (with that annotation and no data).
    pub interfering_writes: u32,
    /// Request lines served ("GET /api/v1/…?…"), in order.
    pub requests: Vec<String>,
    /// The bearer token this server accepts; `None`: [`TOKEN`].
    pub token: Option<String>,
    /// The users authenticated by a client certificate (its subject CN), one per request.
    pub users: Vec<String>,
}

impl State {
    fn next_rv(&mut self) -> String {
        self.revision += 1;
        self.revision.to_string()
    }

    fn ensure_ns(&mut self, ns: &str) {
        self.namespaces.entry(ns.to_string()).or_default();
    }

    pub fn put_secret(&mut self, ns: &str, name: &str, type_: &str, data: &[(&str, &[u8])]) {
        self.ensure_ns(ns);
        let rv = self.next_rv();
        let secret = Secret {
            metadata: meta(ns, name, rv),
            type_: Some(type_.to_string()),
            data: Some(data.iter().map(|(k, v)| (k.to_string(), ByteString(v.to_vec()))).collect()),
            ..Default::default()
        };
        self.secrets.insert((ns.into(), name.into()), secret);
    }

    /// A validating (or mutating) webhook configuration whose webhooks have these CA bundles.
    pub fn put_webhooks(&mut self, mutating: bool, name: &str, hooks: &[(&str, Option<&[u8]>)]) {
        let rv = self.next_rv();
        let mut metadata = meta("", name, rv);
        metadata.namespace = None;
        let config = |h: &Option<&[u8]>| WebhookClientConfig { ca_bundle: h.map(|b| ByteString(b.to_vec())), ..Default::default() };
        let versions = vec!["v1".to_string()];
        if mutating {
            let webhooks = hooks
                .iter()
                .map(|(n, b)| MutatingWebhook {
                    name: n.to_string(),
                    client_config: config(b),
                    admission_review_versions: versions.clone(),
                    side_effects: "None".into(),
                    ..Default::default()
                })
                .collect();
            self.mutating.insert(name.into(), MutatingWebhookConfiguration { metadata, webhooks: Some(webhooks) });
        } else {
            let webhooks = hooks
                .iter()
                .map(|(n, b)| ValidatingWebhook {
                    name: n.to_string(),
                    client_config: config(b),
                    admission_review_versions: versions.clone(),
                    side_effects: "None".into(),
                    ..Default::default()
                })
                .collect();
            self.validating.insert(name.into(), ValidatingWebhookConfiguration { metadata, webhooks: Some(webhooks) });
        }
    }

    /// A Secret given as the JSON pieces of its serialised form (concatenated on the wire).
    pub fn put_raw_secret(&mut self, ns: &str, name: &str, pieces: Vec<Arc<str>>) {
        self.ensure_ns(ns);
        self.revision += 1;
        self.raw_secrets.insert((ns.into(), name.into()), pieces);
    }

    pub fn put_configmap(&mut self, ns: &str, name: &str, data: &[(&str, &str)]) {
        self.ensure_ns(ns);
        let rv = self.next_rv();
        let cm = ConfigMap {
            metadata: meta(ns, name, rv),
            data: Some(data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Default::default()
        };
        self.configmaps.insert((ns.into(), name.into()), cm);
    }
}

/// Object metadata as `kubectl annotate` and `kubectl label` change it.
impl State {
    /// Replaces the annotations and labels of an object (`kind`: `secrets`, `configmaps`,
    /// `validatingwebhookconfigurations` or `mutatingwebhookconfigurations`, the last two with
    /// `ns` empty) and bumps its resource version, as the API server does on any change. Empty
    /// lists leave the object without the field, as the API serves it.
    pub fn set_metadata(&mut self, kind: &str, ns: &str, name: &str, annotations: &[(&str, &str)], labels: &[(&str, &str)]) {
        let rv = self.next_rv();
        let map = |kv: &[(&str, &str)]| (!kv.is_empty()).then(|| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        let key = (ns.to_string(), name.to_string());
        let meta = match kind {
            "secrets" => self.secrets.get_mut(&key).map(|s| &mut s.metadata),
            "configmaps" => self.configmaps.get_mut(&key).map(|c| &mut c.metadata),
            "validatingwebhookconfigurations" => self.validating.get_mut(name).map(|w| &mut w.metadata),
            "mutatingwebhookconfigurations" => self.mutating.get_mut(name).map(|w| &mut w.metadata),
            other => panic!("set_metadata: not a kind the fixture annotates: {other}"),
        };
        let meta = meta.unwrap_or_else(|| panic!("set_metadata: no {kind} {ns}/{name}"));
        meta.annotations = map(annotations);
        meta.labels = map(labels);
        meta.resource_version = Some(rv);
    }
}

/// Workloads, APIServices, CRDs and cert-manager Certificates (the inventory extensions).
impl State {
    pub fn put_apiservice(&mut self, name: &str, ca_bundle: Option<&[u8]>) {
        let rv = self.next_rv();
        let mut metadata = meta("", name, rv);
        metadata.namespace = None;
        let (version, group) = name.split_once('.').unwrap_or((name, ""));
        let spec = APIServiceSpec {
            ca_bundle: ca_bundle.map(|b| ByteString(b.to_vec())),
            group: Some(group.into()),
            version: Some(version.into()),
            group_priority_minimum: 1000,
            version_priority: 15,
            ..Default::default()
        };
        self.apiservices.insert(name.into(), APIService { metadata, spec: Some(spec), status: None });
    }

    /// A CRD `plural.group` whose conversion is a webhook with this CA bundle (or `None`
    /// strategy when `ca_bundle` is `None`).
    pub fn put_crd(&mut self, name: &str, ca_bundle: Option<&[u8]>) {
        let rv = self.next_rv();
        let mut metadata = meta("", name, rv);
        metadata.namespace = None;
        let (plural, group) = name.split_once('.').expect("plural.group");
        let conversion = match ca_bundle {
            Some(b) => apiext::CustomResourceConversion {
                strategy: "Webhook".into(),
                webhook: Some(apiext::WebhookConversion {
                    client_config: Some(apiext::WebhookClientConfig { ca_bundle: Some(ByteString(b.to_vec())), ..Default::default() }),
                    conversion_review_versions: vec!["v1".into()],
                }),
            },
            None => apiext::CustomResourceConversion { strategy: "None".into(), webhook: None },
        };
        let spec = apiext::CustomResourceDefinitionSpec {
            conversion: Some(conversion),
            group: group.into(),
            names: apiext::CustomResourceDefinitionNames { plural: plural.into(), kind: "Widget".into(), ..Default::default() },
            scope: "Namespaced".into(),
            versions: vec![apiext::CustomResourceDefinitionVersion {
                name: "v1".into(),
                served: true,
                storage: true,
                schema: Some(apiext::CustomResourceValidation {
                    open_api_v3_schema: Some(apiext::JSONSchemaProps { type_: Some("object".into()), ..Default::default() }),
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        self.crds.insert(name.into(), apiext::CustomResourceDefinition { metadata, spec, status: None });
    }

    /// A cert-manager Certificate writing `secret`, with the Ready condition's status
    /// (`"True"`, `"False"`, or `None` for no condition yet).
    pub fn put_certificate(&mut self, ns: &str, name: &str, secret: &str, dns: &[&str], ready: Option<(&str, &str, &str)>) {
        self.ensure_ns(ns);
        let rv = self.next_rv();
        let mut status = json!({"notAfter": "2030-01-01T00:00:00Z", "renewalTime": "2029-12-02T00:00:00Z", "revision": 1});
        if let Some((st, reason, message)) = ready {
            status["conditions"] = json!([{
                "type": "Ready", "status": st, "reason": reason, "message": message,
                "lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": 1
            }]);
        }
        let cert = json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": serde_json::to_value(meta(ns, name, rv)).expect("serialise"),
            "spec": {
                "secretName": secret,
                "dnsNames": dns,
                "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer", "group": "cert-manager.io"},
                "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}
            },
            "status": status
        });
        self.certificates.get_or_insert_with(BTreeMap::new).insert((ns.into(), name.into()), cert);
    }

    /// A workload of `kind` (`deployments`, `statefulsets`, `daemonsets`, `jobs`, `cronjobs`,
    /// `pods`) whose pod template has these containers: (`container`, `init` or `ephemeral`,
    /// name, image); `owner` sets an ownerReference of that kind.
    pub fn put_workload(&mut self, kind: &str, ns: &str, name: &str, all: &[(&str, &str, &str)], owner: Option<&str>) {
        let of = |t: &str| -> Vec<(&str, &str)> { all.iter().filter(|c| c.0 == t).map(|c| (c.1, c.2)).collect() };
        let (containers, init, ephemeral) = (of("container"), of("init"), of("ephemeral"));
        self.ensure_ns(ns);
        let rv = self.next_rv();
        let mut metadata = meta(ns, name, rv);
        if let Some(kind) = owner {
            metadata.owner_references = Some(vec![OwnerReference {
                api_version: if kind == "CronJob" { "batch/v1" } else { "apps/v1" }.into(),
                kind: kind.into(),
                name: format!("{name}-owner"),
                uid: format!("uid-owner-{name}"),
                controller: Some(true),
                ..Default::default()
            }]);
        }
        let c = |list: &[(&str, &str)]| -> Vec<Container> {
            list.iter().map(|(n, i)| Container { name: n.to_string(), image: Some(i.to_string()), ..Default::default() }).collect()
        };
        let pod = PodSpec {
            containers: c(&containers),
            init_containers: (!init.is_empty()).then(|| c(&init)),
            ephemeral_containers: (!ephemeral.is_empty()).then(|| {
                ephemeral
                    .iter()
                    .map(|(n, i)| EphemeralContainer { name: n.to_string(), image: Some(i.to_string()), ..Default::default() })
                    .collect()
            }),
            ..Default::default()
        };
        let template = PodTemplateSpec { metadata: None, spec: Some(pod.clone()) };
        let job = JobSpec { template: template.clone(), ..Default::default() };
        let value = match kind {
            "deployments" => {
                serde_json::to_value(Deployment { metadata, spec: Some(DeploymentSpec { template, ..Default::default() }), status: None })
            }
            "statefulsets" => {
                serde_json::to_value(StatefulSet { metadata, spec: Some(StatefulSetSpec { template, ..Default::default() }), status: None })
            }
            "daemonsets" => {
                serde_json::to_value(DaemonSet { metadata, spec: Some(DaemonSetSpec { template, ..Default::default() }), status: None })
            }
            "jobs" => serde_json::to_value(Job { metadata, spec: Some(job), status: None }),
            "cronjobs" => serde_json::to_value(CronJob {
                metadata,
                spec: Some(CronJobSpec {
                    schedule: "0 3 * * *".into(),
                    job_template: JobTemplateSpec { metadata: None, spec: Some(job) },
                    ..Default::default()
                }),
                status: None,
            }),
            "pods" => serde_json::to_value(Pod { metadata, spec: Some(pod), status: None }),
            other => panic!("not a workload kind: {other}"),
        }
        .expect("serialise");
        self.workloads.insert((kind.into(), ns.into(), name.into()), value);
    }
}

/// 403 for a cluster-wide list the credentials may not make (RBAC granted per namespace only).
fn cluster_wide_forbidden(kind: &str) -> (u16, Value) {
    status(
        403,
        "Forbidden",
        &format!(
            "{kind} is forbidden: User \"system:serviceaccount:certvigil:certvigil\" cannot list resource \"{kind}\" in API group \"\" at the cluster scope"
        ),
    )
}

/// Routes of the inventory extensions; `None` falls through to the base routes.
fn route_inventory(st: &mut State, segs: &[&str], q: &BTreeMap<String, String>) -> Option<(u16, Value)> {
    let workloads = |st: &mut State, kind: &str, ns: Option<&str>, list_kind: &str, api_version: &str| {
        let items: Vec<Value> =
            st.workloads.iter().filter(|((k, n, _), _)| k == kind && ns.is_none_or(|x| x == n)).map(|(_, v)| v.clone()).collect();
        paged(st, list_kind, api_version, items, q)
    };
    let list_kind_of = |kind: &str| match kind {
        "deployments" => "DeploymentList",
        "statefulsets" => "StatefulSetList",
        "daemonsets" => "DaemonSetList",
        "jobs" => "JobList",
        "cronjobs" => "CronJobList",
        _ => "PodList",
    };
    Some(match segs {
        ["api", "v1", kind @ ("secrets" | "configmaps" | "pods")]
        | ["apis", "apps" | "batch", "v1", kind @ ("deployments" | "statefulsets" | "daemonsets" | "jobs" | "cronjobs")]
        | ["apis", "cert-manager.io", "v1", kind @ "certificates"]
            if st.forbidden_cluster_wide.contains(*kind) =>
        {
            cluster_wide_forbidden(kind)
        }
        ["api", "v1", "pods"] => workloads(st, "pods", None, "PodList", "v1"),
        ["api", "v1", "namespaces", ns, "pods"] => {
            if st.forbidden.contains(*ns) {
                return Some(forbidden("pods", ns, "list"));
            }
            workloads(st, "pods", Some(ns), "PodList", "v1")
        }
        ["apis", group @ ("apps" | "batch"), "v1", kind @ ("deployments" | "statefulsets" | "daemonsets" | "jobs" | "cronjobs")] => {
            workloads(st, kind, None, list_kind_of(kind), &format!("{group}/v1"))
        }
        [
            "apis",
            group @ ("apps" | "batch"),
            "v1",
            "namespaces",
            ns,
            kind @ ("deployments" | "statefulsets" | "daemonsets" | "jobs" | "cronjobs"),
        ] => {
            if st.forbidden.contains(*ns) {
                return Some(forbidden(kind, ns, "list"));
            }
            workloads(st, kind, Some(ns), list_kind_of(kind), &format!("{group}/v1"))
        }
        ["apis", "cert-manager.io", "v1", rest @ ..] => {
            let ns = match rest {
                ["certificates"] => None,
                ["namespaces", ns, "certificates"] => Some(*ns),
                _ => return Some(status(404, "NotFound", "the server could not find the requested resource")),
            };
            let Some(certs) = &st.certificates else {
                return Some(status(404, "NotFound", "the server could not find the requested resource"));
            };
            if let Some(ns) = ns
                && st.forbidden.contains(ns)
            {
                return Some(forbidden("certificates", ns, "list"));
            }
            let items: Vec<Value> = certs.iter().filter(|((n, _), _)| ns.is_none_or(|x| x == n)).map(|(_, v)| v.clone()).collect();
            paged(st, "CertificateList", "cert-manager.io/v1", items, q)
        }
        ["apis", "apiregistration.k8s.io", "v1", "apiservices"] => {
            let items = st.apiservices.values().map(|a| serde_json::to_value(a).expect("serialise")).collect();
            paged(st, "APIServiceList", "apiregistration.k8s.io/v1", items, q)
        }
        ["apis", "apiregistration.k8s.io", "v1", "apiservices", name] => match st.apiservices.get(*name) {
            Some(a) => (200, serde_json::to_value(a).expect("serialise")),
            None => status(404, "NotFound", &format!("apiservices.apiregistration.k8s.io \"{name}\" not found")),
        },
        ["apis", "apiextensions.k8s.io", "v1", "customresourcedefinitions"] => {
            let items = st.crds.values().map(|c| serde_json::to_value(c).expect("serialise")).collect();
            paged(st, "CustomResourceDefinitionList", "apiextensions.k8s.io/v1", items, q)
        }
        ["apis", "apiextensions.k8s.io", "v1", "customresourcedefinitions", name] => match st.crds.get(*name) {
            Some(c) => (200, serde_json::to_value(c).expect("serialise")),
            None => status(404, "NotFound", &format!("customresourcedefinitions.apiextensions.k8s.io \"{name}\" not found")),
        },
        _ => return None,
    })
}

fn meta(ns: &str, name: &str, rv: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(ns.into()),
        resource_version: Some(rv),
        uid: Some(format!("uid-{ns}-{name}")),
        ..Default::default()
    }
}

pub struct ApiServer {
    pub state: Arc<Mutex<State>>,
    pub port: u16,
    /// Serves HTTPS.
    pub tls: bool,
    _http: HttpServer,
}

/// The TLS side of [`ApiServer::start_tls`], all PEM.
pub struct Tls {
    /// The server's certificate chain (leaf first); its leaf must name `IP:127.0.0.1`.
    pub chain: String,
    pub key: String,
    /// The CA that client certificates must chain to.
    pub client_ca: String,
}

impl ApiServer {
    pub fn start() -> ApiServer {
        Self::listen(None)
    }

    /// An HTTPS server presenting `tls.chain` and authenticating client certificates issued
    /// by `tls.client_ca` as well as the bearer token.
    pub fn start_tls(tls: &Tls) -> ApiServer {
        Self::listen(Some(tls::server_config(tls)))
    }

    fn listen(tls: Option<(Arc<rustls::ServerConfig>, Arc<dyn rustls::server::danger::ClientCertVerifier>)>) -> ApiServer {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let is_tls = tls.is_some();
        let handler = move |req: &Request| serve(req, &shared);
        let http = match tls {
            None => HttpServer::start(handler),
            Some((config, clients)) => HttpServer::start_with(
                move |tcp| {
                    let (stream, user) = tls::accept(tcp, Arc::clone(&config), clients.as_ref())?;
                    Some((Box::new(stream) as Box<dyn Stream>, user))
                },
                handler,
            ),
        };
        ApiServer { state, port: http.port, tls: is_tls, _http: http }
    }

    /// `http://127.0.0.1:<port>` or `https://…`.
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", if self.tls { "https" } else { "http" }, self.port)
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("fixture state"))
    }

    /// A kubeconfig whose current context `fixture` reaches this server with `token`.
    pub fn kubeconfig(&self, token: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fx\n  cluster:\n    server: {}\n\
             users:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: fixture\n  context:\n    cluster: fx\n    user: u\n\
             current-context: fixture\n",
            self.url()
        )
    }
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}),
    )
}

/// Answers one request; `req.client` is the user a verified client certificate names.
fn serve(req: &Request, state: &Mutex<State>) -> Response {
    let (method, target) = (req.method.as_str(), req.target.as_str());
    let user = req.client.clone();
    let auth = req.header("authorization");
    let (code, pieces): (u16, Vec<Arc<str>>) = {
        let mut st = state.lock().expect("fixture state");
        st.requests.push(format!("{method} {target}"));
        let token = format!("Bearer {}", st.token.as_deref().unwrap_or(TOKEN));
        if let Some(u) = &user {
            st.users.push(u.clone());
        }
        let reply = if user.is_none() && auth != Some(token.as_str()) {
            json_reply(status(401, "Unauthorized", "Unauthorized"))
        } else if method == "GET" {
            match secrets_get(&mut st, target) {
                Some(reply) => reply,
                None => json_reply(route(&mut st, target)),
            }
        } else if method == "POST" || method == "PUT" {
            json_reply(write_route(&mut st, method, target, &req.body))
        } else {
            json_reply(status(405, "MethodNotAllowed", "the fixture serves GET, POST and PUT only"))
        };
        match reply {
            (code, Reply::Json(v)) => (code, vec![Arc::from(v.to_string())]),
            (code, Reply::Raw(p)) => (code, p),
        }
    };
    Response::pieces(code, pieces).header("Content-Type", "application/json")
}

/// A response body: a JSON value, or JSON pieces written one after the other.
pub enum Reply {
    Json(Value),
    Raw(Vec<Arc<str>>),
}

fn json_reply((code, v): (u16, Value)) -> (u16, Reply) {
    (code, Reply::Json(v))
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("serialise")
}

/// `GET` of Secrets, typed and raw together (one object, or a list page in etcd's key order):
/// only the objects of the page served are serialised.
fn secrets_get(st: &mut State, target: &str) -> Option<(u16, Reply)> {
    let (path, q) = query(target);
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ns = match segs.as_slice() {
        ["api", "v1", "secrets"] if st.forbidden_cluster_wide.contains("secrets") => {
            return Some(json_reply(cluster_wide_forbidden("secrets")));
        }
        ["api", "v1", "secrets"] => None,
        ["api", "v1", "namespaces", ns, "secrets"] => Some(ns.to_string()),
        ["api", "v1", "namespaces", ns, "secrets", name] => {
            if st.forbidden.contains(*ns) {
                return Some(json_reply(forbidden("secrets", ns, "get")));
            }
            let key = (ns.to_string(), name.to_string());
            if let Some(s) = st.secrets.get(&key) {
                return Some((200, Reply::Json(to_json(s))));
            }
            if let Some(p) = st.raw_secrets.get(&key) {
                return Some((200, Reply::Raw(p.clone())));
            }
            return Some(json_reply(status(404, "NotFound", &format!("secrets \"{name}\" not found"))));
        }
        _ => return None,
    };
    if let Some(ns) = &ns
        && st.forbidden.contains(ns)
    {
        return Some(json_reply(forbidden("secrets", ns, "list")));
    }
    let in_scope = |k: &(String, String)| ns.as_ref().is_none_or(|n| n == &k.0);
    let total = st.secrets.keys().filter(|k| in_scope(k)).count() + st.raw_secrets.keys().filter(|k| in_scope(k)).count();
    let (start, end, metadata) = match window(st, &q, total) {
        Ok(w) => w,
        Err(e) => return Some(json_reply(e)),
    };
    let mut typed = st.secrets.iter().filter(|(k, _)| in_scope(k)).peekable();
    let mut raw = st.raw_secrets.iter().filter(|(k, _)| in_scope(k)).peekable();
    let mut pieces: Vec<Arc<str>> =
        vec![Arc::from(format!("{{\"kind\":\"SecretList\",\"apiVersion\":\"v1\",\"metadata\":{metadata},\"items\":["))];
    let comma: Arc<str> = Arc::from(",");
    for i in 0..end {
        let take_typed = match (typed.peek(), raw.peek()) {
            (Some((a, _)), Some((b, _))) => a <= b,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if i > start {
            pieces.push(Arc::clone(&comma));
        }
        if take_typed {
            if let Some((_, s)) = typed.next()
                && i >= start
            {
                pieces.push(Arc::from(to_json(s).to_string()));
            }
        } else if let Some((_, p)) = raw.next()
            && i >= start
        {
            pieces.extend(p.iter().cloned());
        }
    }
    pieces.push(Arc::from("]}"));
    Some((200, Reply::Raw(pieces)))
}

/// `POST` (create) and `PUT` (replace) of Secrets.
fn write_route(st: &mut State, method: &str, target: &str, body: &[u8]) -> (u16, Value) {
    let (path, _) = query(target);
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (ns, url_name) = match (method, segs.as_slice()) {
        ("POST", ["api", "v1", "namespaces", ns, "secrets"]) => (ns.to_string(), None),
        ("PUT", ["api", "v1", "namespaces", ns, "secrets", name]) => (ns.to_string(), Some(name.to_string())),
        _ => return status(405, "MethodNotAllowed", "the fixture writes Secrets only"),
    };
    let verb = if url_name.is_some() { "update" } else { "create" };
    if st.forbidden.contains(&ns) || st.forbidden_writes.contains(&ns) {
        return forbidden("secrets", &ns, verb);
    }
    let mut secret: Secret = match serde_json::from_slice(body) {
        Ok(s) => s,
        Err(e) => return status(400, "BadRequest", &format!("the body is not a Secret: {e}")),
    };
    let Some(name) = secret.metadata.name.clone() else {
        return status(422, "Invalid", "Secret \"\" is invalid: metadata.name: Required value: name or generateName is required");
    };
    if secret.metadata.namespace.as_deref().is_some_and(|n| n != ns) {
        return status(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request");
    }
    let key = (ns.clone(), name.clone());
    let Some(url_name) = url_name else {
        if st.interfering_writes > 0 && !st.secrets.contains_key(&key) {
            st.interfering_writes -= 1;
            let rv = st.next_rv();
            let mut other = Secret { metadata: meta(&ns, &name, rv.clone()), type_: secret.type_.clone(), ..Default::default() };
            other.metadata.annotations = Some([("other-writer".to_string(), rv)].into());
            st.secrets.insert(key.clone(), other);
        }
        if st.secrets.contains_key(&key) || st.raw_secrets.contains_key(&key) {
            return status(409, "AlreadyExists", &format!("secrets \"{name}\" already exists"));
        }
        st.ensure_ns(&ns);
        let rv = st.next_rv();
        secret.metadata.namespace = Some(ns.clone());
        secret.metadata.resource_version = Some(rv);
        secret.metadata.uid = Some(format!("uid-{ns}-{name}"));
        secret.type_.get_or_insert_with(|| "Opaque".into());
        st.secrets.insert(key, secret.clone());
        return (201, to_json(&secret));
    };
    if url_name != name {
        return status(400, "BadRequest", &format!("the name of the object ({name}) does not match the name on the URL ({url_name})"));
    }
    if !st.secrets.contains_key(&key) {
        return status(404, "NotFound", &format!("secrets \"{name}\" not found"));
    }
    if st.interfering_writes > 0 {
        st.interfering_writes -= 1;
        let rv = st.next_rv();
        if let Some(current) = st.secrets.get_mut(&key) {
            current.metadata.annotations.get_or_insert_with(Default::default).insert("other-writer".into(), rv.clone());
            current.metadata.resource_version = Some(rv);
        }
    }
    let Some(current) = st.secrets.get(&key) else {
        return status(404, "NotFound", &format!("secrets \"{name}\" not found"));
    };
    if secret.metadata.resource_version.as_ref().is_some_and(|rv| Some(rv) != current.metadata.resource_version.as_ref()) {
        return status(
            409,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on secrets \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
        );
    }
    let type_ = secret.type_.clone().unwrap_or_else(|| "Opaque".into());
    if Some(&type_) != current.type_.as_ref() {
        return status(422, "Invalid", &format!("Secret \"{name}\" is invalid: type: Invalid value: \"{type_}\": field is immutable"));
    }
    secret.type_ = Some(type_);
    secret.metadata.namespace = Some(ns);
    secret.metadata.uid = current.metadata.uid.clone();
    secret.metadata.resource_version = Some(st.next_rv());
    st.secrets.insert(key, secret.clone());
    (200, to_json(&secret))
}

fn query(target: &str) -> (String, BTreeMap<String, String>) {
    let (path, q) = target.split_once('?').unwrap_or((target, ""));
    let params = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), unescape(v))
        })
        .collect();
    (path.to_string(), params)
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn route(st: &mut State, target: &str) -> (u16, Value) {
    let (path, q) = query(target);
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if let Some(answer) = route_inventory(st, &segs, &q) {
        return answer;
    }
    match segs.as_slice() {
        ["api", "v1", "namespaces"] => {
            let sel = q.get("labelSelector").cloned().unwrap_or_default();
            let items: Vec<Value> = st
                .namespaces
                .iter()
                .filter(|(_, labels)| {
                    sel.split(',').filter(|t| !t.is_empty()).all(|t| {
                        let (k, v) = t.split_once('=').unwrap_or((t, ""));
                        labels.get(k).map(String::as_str) == Some(v)
                    })
                })
                .map(|(name, labels)| {
                    let ns = Namespace {
                        metadata: ObjectMeta {
                            name: Some(name.clone()),
                            labels: Some(labels.clone()),
                            resource_version: Some("1".into()),
                            ..Default::default()
                        },
                        ..Default::default()
                    };
                    serde_json::to_value(ns).expect("serialise")
                })
                .collect();
            (
                200,
                json!({"kind": "NamespaceList", "apiVersion": "v1", "metadata": {"resourceVersion": st.revision.to_string()}, "items": items}),
            )
        }
        ["api", "v1", kind @ ("secrets" | "configmaps")] => list(st, None, kind, &q),
        ["api", "v1", "namespaces", ns, kind @ ("secrets" | "configmaps")] => {
            if st.forbidden.contains(*ns) {
                return forbidden(kind, ns, "list");
            }
            list(st, Some(ns), kind, &q)
        }
        ["api", "v1", "namespaces", ns, kind @ ("secrets" | "configmaps"), name] => {
            if st.forbidden.contains(*ns) {
                return forbidden(kind, ns, "get");
            }
            let key = (ns.to_string(), name.to_string());
            let found = match *kind {
                "secrets" => st.secrets.get(&key).map(|s| serde_json::to_value(s).expect("serialise")),
                _ => st.configmaps.get(&key).map(|c| serde_json::to_value(c).expect("serialise")),
            };
            match found {
                Some(v) => (200, v),
                None => status(404, "NotFound", &format!("{kind} \"{name}\" not found")),
            }
        }
        ["apis", "admissionregistration.k8s.io", "v1", kind @ ("validatingwebhookconfigurations" | "mutatingwebhookconfigurations")] => {
            let (list_kind, items): (&str, Vec<Value>) = if *kind == "validatingwebhookconfigurations" {
                (
                    "ValidatingWebhookConfigurationList",
                    st.validating.values().map(|w| serde_json::to_value(w).expect("serialise")).collect(),
                )
            } else {
                ("MutatingWebhookConfigurationList", st.mutating.values().map(|w| serde_json::to_value(w).expect("serialise")).collect())
            };
            paged(st, list_kind, "admissionregistration.k8s.io/v1", items, &q)
        }
        [
            "apis",
            "admissionregistration.k8s.io",
            "v1",
            kind @ ("validatingwebhookconfigurations" | "mutatingwebhookconfigurations"),
            name,
        ] => {
            let found = if *kind == "validatingwebhookconfigurations" {
                st.validating.get(*name).map(|w| serde_json::to_value(w).expect("serialise"))
            } else {
                st.mutating.get(*name).map(|w| serde_json::to_value(w).expect("serialise"))
            };
            match found {
                Some(v) => (200, v),
                None => status(404, "NotFound", &format!("{kind} \"{name}\" not found")),
            }
        }
        _ => status(404, "NotFound", "the server could not find the requested resource"),
    }
}

fn forbidden(kind: &str, ns: &str, verb: &str) -> (u16, Value) {
    status(
        403,
        "Forbidden",
        &format!(
            "{kind} is forbidden: User \"system:serviceaccount:certvigil:certvigil\" cannot {verb} resource \"{kind}\" in API group \"\" in the namespace \"{ns}\""
        ),
    )
}

fn list(st: &mut State, ns: Option<&str>, kind: &str, q: &BTreeMap<String, String>) -> (u16, Value) {
    let items: Vec<Value> = match kind {
        "secrets" => st
            .secrets
            .iter()
            .filter(|((n, _), _)| ns.is_none_or(|x| x == n))
            .map(|(_, s)| serde_json::to_value(s).expect("serialise"))
            .collect(),
        _ => st
            .configmaps
            .iter()
            .filter(|((n, _), _)| ns.is_none_or(|x| x == n))
            .map(|(_, c)| serde_json::to_value(c).expect("serialise"))
            .collect(),
    };
    let list_kind = if kind == "secrets" { "SecretList" } else { "ConfigMapList" };
    paged(st, list_kind, "v1", items, q)
}

/// One page of `items` as a list of kind `list_kind`, after `limit` and `continue`.
fn paged(st: &mut State, list_kind: &str, api_version: &str, items: Vec<Value>, q: &BTreeMap<String, String>) -> (u16, Value) {
    let (start, end, metadata) = match window(st, q, items.len()) {
        Ok(w) => w,
        Err(e) => return e,
    };
    let page: Vec<Value> = items.get(start..end).map(<[Value]>::to_vec).unwrap_or_default();
    (200, json!({"kind": list_kind, "apiVersion": api_version, "metadata": metadata, "items": page}))
}

/// The range of a list of `total` items that `limit` and `continue` select, and the list's
/// metadata; or the error answer (410 for an expired token, 400 for a malformed one).
fn window(st: &mut State, q: &BTreeMap<String, String>, total: usize) -> Result<(usize, usize, Value), (u16, Value)> {
    let start: usize = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            if st.expire_continues > 0 {
                st.expire_continues -= 1;
                return Err(status(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                ));
            }
            match token.strip_prefix("fixture-continue-").and_then(|n| n.parse().ok()) {
                Some(n) => n,
                None => return Err(status(400, "BadRequest", "invalid continue token")),
            }
        }
        None => 0,
    };
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).filter(|&l| l > 0).unwrap_or(usize::MAX);
    let end = start.saturating_add(limit).min(total);
    let start = start.min(end);
    let mut metadata = json!({"resourceVersion": st.revision.to_string()});
    if end < total {
        metadata["continue"] = json!(format!("fixture-continue-{end}"));
        metadata["remainingItemCount"] = json!(total - end);
    }
    Ok((start, end, metadata))
}

/// HTTPS: the server's rustls config and the x509 client-cert authenticator.
mod tls {
    use super::Tls;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
    use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
    use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
    use std::net::TcpStream;
    use std::sync::Arc;

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// Asks every client for a certificate and accepts any at the handshake (the proof of
    /// possession, the handshake signature, is still checked); whether it authenticates anyone
    /// is decided after, by the client CA, as the API server's x509 authenticator does.
    #[derive(Debug)]
    struct RequestClientCert(Arc<rustls::crypto::CryptoProvider>);

    impl ClientCertVerifier for RequestClientCert {
        fn offer_client_auth(&self) -> bool {
            true
        }
        fn client_auth_mandatory(&self) -> bool {
            false
        }
        fn root_hint_subjects(&self) -> &[DistinguishedName] {
            &[]
        }
        fn verify_client_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: UnixTime,
        ) -> Result<ClientCertVerified, rustls::Error> {
            Ok(ClientCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    pub fn server_config(tls: &Tls) -> (Arc<rustls::ServerConfig>, Arc<dyn ClientCertVerifier>) {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(tls.chain.as_bytes()).collect::<Result<_, _>>().expect("server chain PEM");
        let key = PrivateKeyDer::from_pem_slice(tls.key.as_bytes()).expect("server key PEM");
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(tls.client_ca.as_bytes()) {
            roots.add(ca.expect("client CA PEM")).expect("client CA");
        }
        let clients =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build().expect("client verifier");
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_client_cert_verifier(Arc::new(RequestClientCert(provider())))
            .with_single_cert(chain, key)
            .expect("server certificate");
        (Arc::new(config), clients)
    }

    /// The handshake, then the user a valid client certificate names (its subject CN). `None`
    /// when the handshake fails (the client refused the server's certificate).
    pub fn accept(
        tcp: TcpStream,
        config: Arc<rustls::ServerConfig>,
        clients: &dyn ClientCertVerifier,
    ) -> Option<(rustls::StreamOwned<rustls::ServerConnection, TcpStream>, Option<String>)> {
        let conn = rustls::ServerConnection::new(config).ok()?;
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock).ok()?;
        }
        let user = stream.conn.peer_certificates().and_then(|certs| {
            let (leaf, rest) = certs.split_first()?;
            clients.verify_client_cert(leaf, rest, UnixTime::now()).ok()?;
            certvigil::x509::cert::parse_der(leaf).ok()?.common_name
        });
        Some((stream, user))
    }
}
