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
//!   OpenAPI schema, so they are listed in pages of at most `CRD_PAGE` (50).
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
//!
//! The object's owner goes into its meta when it is read: the `certvigil.io/owner` annotation,
//! else the label of that name, with `certvigil.io/owner-contact` (see `app::owners`).
//!
//! Listing is in `kubernetes/listing.rs`; what each kind contributes is in `secrets.rs`,
//! `configmaps.rs`, `bundles.rs` (webhooks, APIServices, CRDs) and `certmanager.rs`; signing
//! trust material in `trust.rs` and the image audit in `images.rs`.

use crate::net::kubernetes as access;
mod bundles;
mod certmanager;
mod configmaps;
pub mod images;
mod listing;
pub use listing::ListError;
mod secrets;
use super::trust;

use super::runtime::Exec;
use super::{Fetched, ImageFinding, Listing, Source, SourceError};
use crate::config::secret::Secret as Password;
use crate::config::sources::kubernetes::{KubernetesSpec, key_matches};
use certmanager::CmCertificate;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;

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

/// The objects of one page (location, stamp) and the next page's continue token.
pub type Page = (Vec<(String, String)>, Option<String>);

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

/// Why an object was not read.
#[derive(Debug, thiserror::Error)]
pub enum KubernetesError {
    /// The source's runtime could not be started (`reason` is the system's).
    #[error("cannot start the HTTP runtime: {reason}")]
    Runtime { reason: String },
    #[error(transparent)]
    Connect(#[from] access::AccessError),
    #[error("not a location of this source: {location}")]
    NotOurs { location: String },
    /// Reading the object by name failed; `kind` is its kind (`Secret`, `APIService`, …).
    #[error("{}", access::describe(.source))]
    Get {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("the {kind} has no key `{key}` any more")]
    NoKey { kind: &'static str, name: String, key: String },
    #[error("`{key}` {source}")]
    PublicKey {
        key: String,
        #[source]
        source: trust::TrustError,
    },
    #[error("`{key}`: {source}")]
    TrustRoot {
        key: String,
        #[source]
        source: trust::TrustError,
    },
    /// `kind` is the path of a namespaced kind asked for as a cluster-wide one.
    #[error("{kind} are namespaced")]
    Namespaced { kind: &'static str },
    #[error("`{name}` has no caBundle at `{hook}` any more")]
    NoBundle { name: String, hook: String },
}

impl KubernetesError {
    fn get(kind: Kind, name: &str) -> impl FnOnce(kube::Error) -> KubernetesError {
        let name = name.to_string();
        move |source| KubernetesError::Get { kind: kind.object(), name, source }
    }
}

pub struct KubernetesSource {
    spec: KubernetesSpec,
    /// The runtime, or why it could not be started.
    runtime: Result<Exec, String>,
    client: Mutex<Option<std::sync::Arc<Connected>>>,
    /// cert-manager Certificates by (namespace, secretName), filled while listing.
    certificates: Mutex<HashMap<(String, String), CmCertificate>>,
}

impl KubernetesSource {
    pub fn new(spec: KubernetesSpec) -> Self {
        let runtime = Exec::new("certvigil-k8s").map_err(|e| e.to_string());
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

    async fn fetch_async(&self, conn: &Connected, location: &str) -> Result<Fetched, KubernetesError> {
        let not_ours = || KubernetesError::NotOurs { location: location.to_string() };
        let (ns, kind, name, key) = parse_location(location, &conn.context).ok_or_else(not_ours)?;
        if ns.is_empty() {
            return self.fetch_webhook(conn, kind, name, key).await;
        }
        let mut passwords = Vec::new();
        let (bytes, object) = match kind {
            Kind::Secrets => {
                let api: Api<Secret> = Api::namespaced(conn.client.clone(), ns);
                let s = api.get(name).await.map_err(KubernetesError::get(kind, name))?;
                let mut data = s.data.unwrap_or_default();
                let value = data.remove(key).ok_or_else(|| KubernetesError::NoKey {
                    kind: kind.object(),
                    name: name.to_string(),
                    key: key.to_string(),
                })?;
                if crate::x509::pkcs12::looks_like_pkcs12(&value.0) || crate::x509::jks::looks_like_jks(&value.0) {
                    passwords = self.sibling_passwords(&data);
                }
                (value.0, s.metadata)
            }
            Kind::ConfigMaps => {
                let api: Api<ConfigMap> = Api::namespaced(conn.client.clone(), ns);
                let c = api.get(name).await.map_err(KubernetesError::get(kind, name))?;
                let text = c.data.and_then(|mut d| d.remove(key)).map(String::into_bytes);
                let value = text
                    .or_else(|| c.binary_data.and_then(|mut d| d.remove(key)).map(|b| b.0))
                    .ok_or_else(|| KubernetesError::NoKey { kind: kind.object(), name: name.to_string(), key: key.to_string() })?;
                (value, c.metadata)
            }
            _ => return Err(not_ours()),
        };
        let mut meta =
            json!({"namespace": ns, "kind": kind.object(), "name": name, "key": key, "resourceVersion": object.resource_version});
        add_owner(&mut meta, &object);
        if kind == Kind::Secrets
            && let Some(c) = self.certificate_of(ns, name)
        {
            meta["certManager"] = c.meta;
        }
        let key_object = match self.role(key) {
            Role::Certificates => None,
            Role::PublicKey => {
                Some(trust::public_key(&bytes).map_err(|source| KubernetesError::PublicKey { key: key.to_string(), source })?)
            }
            Role::TrustRoot => Some(trust::tuf_root(&bytes).map_err(|source| KubernetesError::TrustRoot { key: key.to_string(), source })?),
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
}

/// The annotation (or, without one, the label) that names an object's owner.
pub const OWNER_KEY: &str = "certvigil.io/owner";
/// The annotation (or label) with the owner's contact.
pub const OWNER_CONTACT_KEY: &str = "certvigil.io/owner-contact";

/// Records the owner an object names in its meta: `owner` from the `certvigil.io/owner`
/// annotation, else the label of that name (`owner_from` says which), and `owner_contact` from
/// `certvigil.io/owner-contact` (annotation first). An owner change changes the object's
/// resource version, so the object is read again and its meta rewritten.
fn add_owner(meta: &mut serde_json::Value, object: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) {
    let get = |map: &Option<std::collections::BTreeMap<String, String>>, key: &str| {
        map.as_ref().and_then(|m| m.get(key)).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    };
    let (owner, from) = match (get(&object.annotations, OWNER_KEY), get(&object.labels, OWNER_KEY)) {
        (Some(a), _) => (a, "annotation"),
        (None, Some(l)) => (l, "label"),
        (None, None) => return,
    };
    meta["owner"] = json!(owner);
    meta["owner_from"] = json!(from);
    if let Some(c) = get(&object.annotations, OWNER_CONTACT_KEY).or_else(|| get(&object.labels, OWNER_CONTACT_KEY)) {
        meta["owner_contact"] = json!(c);
    }
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
            Err(reason) => out(Listing::Unavailable {
                prefix: format!("k8s://{}/", self.context_hint()),
                message: KubernetesError::Runtime { reason: reason.clone() }.to_string(),
            }),
        }
    }

    fn fetch(&self, location: &str) -> Result<Fetched, SourceError> {
        let rt = self.runtime.as_ref().map_err(|reason| KubernetesError::Runtime { reason: reason.clone() })?;
        let conn = match self.connected() {
            Some(c) => c,
            None => std::sync::Arc::new(rt.block_on(self.connect()).map_err(KubernetesError::from)?),
        };
        Ok(rt.block_on(self.fetch_async(&conn, location))?)
    }

    fn passwords(&self) -> Result<Vec<Password>, SourceError> {
        super::resolve_passwords(&self.spec.name, &self.spec.passwords)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_annotation_wins_over_the_label() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        let map = |kv: &[(&str, &str)]| Some(kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        let owner = |annotations: &[(&str, &str)], labels: &[(&str, &str)]| {
            let mut meta = json!({"name": "x"});
            add_owner(&mut meta, &ObjectMeta { annotations: map(annotations), labels: map(labels), ..Default::default() });
            (meta.get("owner").cloned(), meta.get("owner_from").cloned(), meta.get("owner_contact").cloned())
        };
        let both = owner(&[(OWNER_KEY, "payments"), (OWNER_CONTACT_KEY, "pay@corp.example")], &[(OWNER_KEY, "web")]);
        assert_eq!(both, (Some(json!("payments")), Some(json!("annotation")), Some(json!("pay@corp.example"))));
        assert_eq!(owner(&[("other", "x")], &[(OWNER_KEY, "web")]), (Some(json!("web")), Some(json!("label")), None));
        // Blank values are no owner.
        assert_eq!(owner(&[(OWNER_KEY, " ")], &[]), (None, None, None));
        assert_eq!(owner(&[(OWNER_CONTACT_KEY, "a@b")], &[]), (None, None, None));
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
