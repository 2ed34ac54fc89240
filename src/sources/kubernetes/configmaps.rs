//! ConfigMaps: which keys of a ConfigMap (`data` and `binaryData`) are listed.

use super::{Kind, KubernetesSource, Page, Role, next_token, push_keys};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectList;

impl KubernetesSource {
    /// The same for a page of a ConfigMaps list (which the API client decodes whole).
    pub fn read_configmap_page(&self, context: &str, body: &[u8]) -> Result<Page, serde_json::Error> {
        Ok(self.configmap_keys(context, serde_json::from_slice(body)?))
    }

    pub(super) fn configmap_keys(&self, context: &str, page: ObjectList<ConfigMap>) -> (Vec<(String, String)>, Option<String>) {
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
}
