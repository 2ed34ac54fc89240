//! Rows as the store returns them: the inventory, sightings, history, scan runs, key objects.
//! Plain data, so the pure layers (policy) can take them without depending on persistence.

use super::{CertFacts, UnixTime};

/// A certificate as stored, with its inventory state.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CertRow {
    #[serde(skip)]
    pub id: i64,
    #[serde(flatten)]
    pub facts: CertFacts,
    pub first_seen: UnixTime,
    pub gone_since: Option<UnixTime>,
    pub current_sightings: i64,
    /// Sources with a current sighting (all sources for a gone certificate).
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SightingRow {
    pub source: String,
    pub location: String,
    pub detail: String,
    pub first_seen: UnixTime,
    pub last_seen: UnixTime,
    pub gone_since: Option<UnixTime>,
    /// What the source reported about the object (TLS verification, secret version, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<serde_json::Value>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryRow {
    pub at: UnixTime,
    pub event: String,
    pub source: Option<String>,
    pub location: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ObjectError {
    pub source: String,
    pub location: String,
    pub message: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRow {
    pub id: i64,
    pub started_at: UnixTime,
    pub finished_at: Option<UnixTime>,
    pub objects_seen: i64,
    pub objects_read: i64,
    pub certs_seen: i64,
    pub certs_new: i64,
    pub certs_gone: i64,
    pub errors: i64,
    pub status: String,
}

/// A current key object.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KeyRow {
    pub id: i64,
    pub source: String,
    /// RFC 7512 URI for PKCS#11 keys.
    pub location: String,
    pub label: Option<String>,
    /// Hex CKA_ID.
    pub key_id: Option<String>,
    /// `private`, `public` or `secret`.
    pub class: String,
    pub algorithm: String,
    pub bits: Option<u32>,
    pub curve: Option<String>,
    pub spki_sha256: Option<String>,
    /// Source-specific attributes (extractable, sensitive, never_extractable, sign, dates, …).
    pub attributes: serde_json::Value,
    pub first_seen: UnixTime,
    pub last_seen: UnixTime,
}

impl KeyRow {
    /// A boolean attribute, when the source reported it.
    pub fn flag(&self, name: &str) -> Option<bool> {
        self.attributes.get(name).and_then(serde_json::Value::as_bool)
    }
}

/// A current sighting of a certificate in an object of a PKCS#11 source, with the object's
/// CKA_ID and CKA_LABEL (from the object's meta).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TokenCertRow {
    pub cert_id: i64,
    pub fingerprint: String,
    pub spki_sha256: String,
    pub is_ca: bool,
    pub source: String,
    pub location: String,
    pub token: Option<String>,
    /// Hex CKA_ID.
    pub key_id: Option<String>,
    pub label: Option<String>,
}
