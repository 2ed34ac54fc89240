//! cert-manager `Certificate`s (`cert-manager.io/v1`, read as dynamic objects): what the Secret
//! a Certificate names in `spec.secretName` records about it, kept from the list until the
//! Secret is read.

use super::KubernetesSource;
use kube::api::DynamicObject;
use serde_json::json;

/// What the source knows about a cert-manager Certificate, kept by (namespace, secretName)
/// from the list until the Secret is fetched.
#[derive(Debug, Clone)]
pub(super) struct CmCertificate {
    pub(super) resource_version: String,
    pub(super) meta: serde_json::Value,
}

impl KubernetesSource {
    /// Keeps what the Secrets of these Certificates need: names, times, the Ready condition.
    pub(super) fn remember_certificates(&self, items: &[DynamicObject]) {
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
    pub(super) fn certificate_of(&self, ns: &str, secret: &str) -> Option<CmCertificate> {
        self.certificates.lock().ok()?.get(&(ns.to_string(), secret.to_string())).cloned()
    }
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
