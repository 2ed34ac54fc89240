//! What sources observe beside certificates: key objects an HSM lists, container images a
//! cluster runs by a mutable tag.

use super::finding::Severity;

/// A container image referenced by a mutable tag instead of a digest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageFinding {
    pub namespace: String,
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `Job`, `CronJob` or `Pod`.
    pub workload_kind: String,
    pub workload: String,
    pub container: String,
    /// `container`, `initContainer` or `ephemeralContainer`.
    pub container_type: String,
    pub image: String,
    /// `latest`, `untagged` or `mutable-tag`.
    pub problem: String,
    pub severity: Severity,
}

/// A key object a source lists on its own (an HSM's private and public keys).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KeyObject {
    pub label: Option<String>,
    /// Hex (PKCS#11 CKA_ID).
    pub key_id: Option<String>,
    /// `private`, `public` or `secret`.
    pub class: String,
    pub algorithm: String,
    pub bits: Option<u32>,
    pub curve: Option<String>,
    /// SHA-256 of the DER SubjectPublicKeyInfo, when the public part is known: certificates
    /// pair with keys by it.
    pub spki_sha256: Option<String>,
    /// Source-specific attributes (extractable, sensitive, never_extractable, dates, …).
    pub attributes: serde_json::Value,
    /// The object's bytes when a later scan compares with them: a TUF root, whose next version
    /// must be signed by this one's root keys (`trust_roots` keeps it, `keys` does not).
    #[serde(skip)]
    pub document: Option<Vec<u8>>,
}
