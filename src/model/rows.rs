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

/// A source as the status page shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourceStatus {
    pub name: String,
    pub kind: String,
    pub tags: Vec<String>,
    pub last_scan_at: Option<UnixTime>,
    /// Objects it lists but currently cannot read.
    pub errors: i64,
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

/// A TUF root seen at a location (`trust_roots`): what its own signatures and its chain to the
/// location's trusted root gave when it was first seen.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TrustRootRow {
    pub source: String,
    pub location: String,
    pub version: i64,
    pub content_sha256: String,
    /// The root.json as read.
    #[serde(skip)]
    pub document: String,
    pub valid_signatures: i64,
    pub threshold: i64,
    /// `first`, `same`, `verified`, `broken`, `gap` or `rollback`.
    pub chain: String,
    /// The trusted version it was checked against.
    pub chain_from: Option<i64>,
    /// Its own threshold met and its chain holds: the next version is checked against it.
    pub trusted: bool,
    pub first_seen: UnixTime,
    pub last_seen: UnixTime,
}

/// A public key a key object held at its location (`key_history`): a rotated key is a new row
/// and the old one is gone.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyHistoryRow {
    pub source: String,
    pub location: String,
    pub spki_sha256: String,
    pub class: String,
    pub algorithm: String,
    pub label: Option<String>,
    pub first_seen: UnixTime,
    pub last_seen: UnixTime,
    pub gone_since: Option<UnixTime>,
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

/// An alert row for listing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AlertRow {
    pub id: i64,
    /// `cert:<sha256>`, `key:<source>:<location>` or `managed:<name>`.
    pub subject: String,
    /// certificate | key | managed
    pub subject_kind: String,
    /// Certificate subjects only.
    pub cert_id: Option<i64>,
    /// Certificate subjects only.
    pub fingerprint: Option<String>,
    /// The certificate's name, or the subject's readable name.
    pub name: String,
    pub kind: String,
    pub severity: String,
    pub state: String,
    pub reason: String,
    pub action: String,
    pub opened_at: UnixTime,
    pub last_notified_at: Option<UnixTime>,
    pub notifications: i64,
    pub escalated_at: Option<UnixTime>,
    pub acked_at: Option<UnixTime>,
    pub acked_by: Option<String>,
    pub resolved_at: Option<UnixTime>,
}

/// An outbox row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub key: String,
    pub alert_id: Option<i64>,
    pub route: String,
    pub receiver: String,
    pub event: String,
    pub severity: String,
    pub payload: serde_json::Value,
    pub held: bool,
    pub created_at: UnixTime,
    pub next_attempt_at: UnixTime,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<UnixTime>,
}

/// What applying one evaluation did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Applied {
    pub opened: usize,
    pub resolved: usize,
    pub escalated: usize,
    pub notifications: usize,
}

/// One image finding of the last audit of a source.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageFindingRow {
    pub source: String,
    pub namespace: String,
    pub workload_kind: String,
    pub workload: String,
    pub container: String,
    pub container_type: String,
    pub image: String,
    pub problem: String,
    pub severity: String,
    pub seen_at: UnixTime,
}

/// One run of a job.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobRun {
    pub id: i64,
    pub job: String,
    pub kind: String,
    pub trigger: String,
    pub scheduled_at: Option<UnixTime>,
    pub started_at: UnixTime,
    pub finished_at: Option<UnixTime>,
    pub duration_ms: Option<i64>,
    pub status: String,
    pub summary: String,
    pub detail: Option<serde_json::Value>,
    pub error: Option<String>,
    /// The daemon that ran it, with several on one store.
    pub node: Option<String>,
}

/// A lease as the store holds it, with the database's clock when it was read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeaseRow {
    pub name: String,
    pub holder: String,
    /// The fencing token: one more at each change of holder.
    pub token: i64,
    pub acquired_at_ms: i64,
    pub renewed_at_ms: i64,
    pub expires_at_ms: i64,
    /// The database's clock at the read, in the same unit.
    pub now_ms: i64,
}

impl LeaseRow {
    /// Still held at the time of the read.
    pub fn live(&self) -> bool {
        self.expires_at_ms > self.now_ms
    }
}

/// A piece of work shared out between daemons (the scan of one source).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorkItem {
    pub id: i64,
    pub kind: String,
    pub key: String,
    pub job: String,
    pub run_id: Option<i64>,
    pub queued_at: UnixTime,
    pub claimed_by: Option<String>,
    pub claim_expires_at_ms: Option<i64>,
    pub attempts: i64,
    pub finished_at: Option<UnixTime>,
    pub status: Option<String>,
    pub summary: Option<String>,
    pub error: Option<String>,
}

/// What `/metrics` and `schedule` say about a job.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct JobStats {
    pub last: Option<JobRun>,
    pub last_success_at: Option<UnixTime>,
    pub overruns: i64,
}

/// One managed certificate's renewal state. `Default` is the state of a name never seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RenewalRow {
    pub name: String,
    pub fingerprint: Option<String>,
    pub serial: Option<String>,
    pub not_after: Option<UnixTime>,
    /// `idle`, `scheduled`, `in-flight` or `failed`.
    pub state: String,
    pub failures: i64,
    /// Digest of the managed entry the failures were counted for: a changed entry starts afresh.
    pub spec_digest: Option<String>,
    pub next_attempt: Option<UnixTime>,
    pub last_attempt: Option<UnixTime>,
    pub last_outcome: Option<String>,
    pub last_error: Option<String>,
    pub ari_cert_id: Option<String>,
    pub ari_start: Option<UnixTime>,
    pub ari_end: Option<UnixTime>,
    pub ari_explanation: Option<String>,
    pub ari_next_poll: Option<UnixTime>,
    pub renew_at: Option<UnixTime>,
    pub order_url: Option<String>,
    pub order_directory: Option<String>,
    pub pending_key: Option<String>,
    pub pending_chain: Option<String>,
    /// A revocation in progress (`certvigil revoke`): the certificate's fingerprint.
    pub revoke_fingerprint: Option<String>,
    /// RFC 5280 §5.3.1 reason code.
    pub revoke_reason: Option<i64>,
    /// Reissue with a new key once revoked.
    pub revoke_rotate: bool,
    /// `requested`, `revoked` or `done`.
    pub revoke_step: Option<String>,
    pub revoke_requested_at: Option<UnixTime>,
    pub updated_at: UnixTime,
}

impl RenewalRow {
    pub fn new(name: &str) -> RenewalRow {
        RenewalRow { name: name.to_string(), state: "idle".into(), ..RenewalRow::default() }
    }
}

/// A cached, verified OCSP answer.
#[derive(Debug, Clone)]
pub struct CachedOcsp {
    pub responder: String,
    pub status: String,
    pub revoked_at: Option<UnixTime>,
    pub reason: Option<String>,
    pub this_update: UnixTime,
    pub next_update: Option<UnixTime>,
    pub cache_until: UnixTime,
    pub sha256: String,
}

#[derive(Debug, Clone)]
pub struct CrlCacheRow {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub sha256: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RevocationHistoryRow {
    pub at: UnixTime,
    pub status: String,
    pub reason: Option<String>,
    pub method: String,
    pub evidence_sha256: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: UnixTime,
    pub action: String,
    pub actor: String,
    pub detail: serde_json::Value,
    pub hash: String,
}

/// What inventory-wide aggregates need of a certificate ([`Store::each_certificate_identity`]).
#[derive(Debug, Clone)]
pub struct CertIdentity {
    pub id: i64,
    pub fingerprint: String,
    pub subject: String,
    pub sans: Vec<String>,
    pub spki_sha256: String,
    pub not_before: UnixTime,
    pub not_after: UnixTime,
    pub is_ca: bool,
    pub gone: bool,
}

/// What the ACME Renewal Information watch (RFC 9773) knows about one inventoried certificate:
/// the window its CA suggests now, the first window seen (the normal schedule), and the last
/// answer's problem. One row of `ari_watch`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AriWatchRow {
    pub cert_id: i64,
    /// The ACME directory asked.
    pub directory: String,
    /// RFC 9773 §4.1 certificate identifier.
    pub ari_id: String,
    /// The suggested window now: (start, end).
    pub window: Option<(UnixTime, UnixTime)>,
    pub explanation_url: Option<String>,
    /// The first window seen for this certificate.
    pub first: Option<(UnixTime, UnixTime)>,
    /// When the window was first seen starting earlier than the first one.
    pub moved_at: Option<UnixTime>,
    pub polled_at: UnixTime,
    pub next_poll: UnixTime,
    /// The last answer's problem; `None` after a good answer.
    pub error: Option<String>,
}
