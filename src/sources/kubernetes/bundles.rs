//! CA bundles of cluster-scoped objects: webhook configurations (one object per webhook with a
//! `caBundle`), APIServices (`spec.caBundle`) and CRD conversion webhooks; listed page by page and
//! read again by name.

use super::{Connected, Fetched, Kind, KubernetesError, KubernetesSource, Page, next_token};
use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, ListParams};
use serde_json::json;

impl KubernetesSource {
    pub(super) async fn fetch_webhook(&self, conn: &Connected, kind: Kind, name: &str, hook: &str) -> Result<Fetched, KubernetesError> {
        let (bundle, object) = match kind {
            Kind::ValidatingWebhooks => {
                let api: Api<ValidatingWebhookConfiguration> = Api::all(conn.client.clone());
                let w = api.get(name).await.map_err(KubernetesError::get(kind, name))?;
                let bundle = w.webhooks.into_iter().flatten().find(|h| h.name == hook).and_then(|h| h.client_config.ca_bundle);
                (bundle, w.metadata)
            }
            Kind::MutatingWebhooks => {
                let api: Api<MutatingWebhookConfiguration> = Api::all(conn.client.clone());
                let w = api.get(name).await.map_err(KubernetesError::get(kind, name))?;
                let bundle = w.webhooks.into_iter().flatten().find(|h| h.name == hook).and_then(|h| h.client_config.ca_bundle);
                (bundle, w.metadata)
            }
            Kind::ApiServices => {
                let api: Api<APIService> = Api::all(conn.client.clone());
                let a = api.get(name).await.map_err(KubernetesError::get(kind, name))?;
                (a.spec.and_then(|s| s.ca_bundle), a.metadata)
            }
            Kind::Crds => {
                let api: Api<CustomResourceDefinition> = Api::all(conn.client.clone());
                let c = api.get(name).await.map_err(KubernetesError::get(kind, name))?;
                (crd_bundle(&c).map(|b| k8s_openapi::ByteString(b.to_vec())), c.metadata)
            }
            _ => return Err(KubernetesError::Namespaced { kind: kind.path() }),
        };
        let bundle = bundle.ok_or_else(|| KubernetesError::NoBundle { name: name.to_string(), hook: hook.to_string() })?;
        let mut meta = json!({"kind": kind.object(), "name": name, "key": hook, "resourceVersion": object.resource_version});
        super::add_owner(&mut meta, &object);
        Ok(Fetched { bytes: bundle.0, meta: Some(meta), key: None, passwords: Vec::new() })
    }
}

/// The objects of one webhook configuration: one per webhook carrying a `caBundle`.
/// One page of a cluster-scoped kind whose objects carry CA bundles; `bundles` names those an
/// object holds (webhook names, `caBundle`, `conversion`), each one object of the source.
pub(super) async fn bundle_page<K>(
    conn: &Connected,
    kind: Kind,
    lp: &ListParams,
    bundles: impl Fn(&K) -> Vec<String>,
) -> Result<Page, kube::Error>
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

/// The conversion webhook's CA bundle of a CRD (`spec.conversion.webhook.clientConfig.caBundle`).
pub(super) fn crd_bundle(c: &CustomResourceDefinition) -> Option<&[u8]> {
    let conversion = c.spec.conversion.as_ref()?;
    let config = conversion.webhook.as_ref()?.client_config.as_ref()?;
    config.ca_bundle.as_ref().map(|b| b.0.as_slice())
}
