//! Findings: what the policy says about a subject (a certificate, a key object, a managed
//! certificate), with its kind and severity. The vocabulary that policy produces, the store
//! persists, the alert state machine routes and every receiver renders.

use super::UnixTime;
use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Severity::Info, Severity::Warning, Severity::Critical].into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a finding is about. One alert exists per (subject, kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Expired,
    Expiring,
    NotYetValid,
    Revoked,
    RevocationUnknown,
    RevocationStale,
    KeyTooOld,
    WeakKey,
    WeakSignature,
    Superseded,
    Retired,
    UntrustedEndpoint,
    /// A signing key on a token that can be exported, or once could (`policy::keys`).
    KeyExtractable,
    /// A certificate on a token whose private key is not on that token (`policy::keys`).
    KeyNotOnToken,
    /// The cert-manager Certificate that produces it is not Ready (Kubernetes sources).
    CertManagerNotReady,
    /// Renewing a managed certificate failed (`policy::renewal`).
    RenewalFailed,
    /// A managed certificate is still installed after the CA's renewal window ended.
    RenewalOverdue,
    /// A TUF trust root (Sigstore `root.json`) inside its expiry window (`policy::keys`).
    TrustRootExpiring,
    /// A TUF trust root past its `expires` (`policy::keys`).
    TrustRootExpired,
    /// A private key on a token with no certificate anywhere in the inventory (`policy::keys`).
    KeyWithoutCertificate,
    /// A publicly trusted TLS certificate valid for longer than the CA/Browser Forum allowed on
    /// the day it was issued (`model::lifetime`).
    LifetimeOverLimit,
    /// Its CA's suggested renewal window (RFC 9773) moved earlier or into the past: a revocation
    /// early warning (`revocation.ari_watch`).
    AriEarlyRenewal,
    /// A TUF trust root not signed by a threshold of its own root keys (`policy::keys`).
    TrustRootUnverified,
    /// A TUF trust root older than the one seen before at the same place, or the same version
    /// with other content (`policy::keys`).
    TrustRootRollback,
    /// A new TUF root version not signed by a threshold of the previous root's keys, or that
    /// skips versions never seen (`policy::keys`).
    TrustRootChainBroken,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Expired => "expired",
            Kind::Expiring => "expiring",
            Kind::NotYetValid => "not-yet-valid",
            Kind::Revoked => "revoked",
            Kind::RevocationUnknown => "revocation-unknown",
            Kind::RevocationStale => "revocation-stale",
            Kind::KeyTooOld => "key-too-old",
            Kind::WeakKey => "weak-key",
            Kind::WeakSignature => "weak-signature",
            Kind::Superseded => "superseded",
            Kind::Retired => "retired",
            Kind::UntrustedEndpoint => "untrusted-endpoint",
            Kind::KeyExtractable => "key-extractable",
            Kind::KeyNotOnToken => "key-not-on-token",
            Kind::CertManagerNotReady => "cert-manager-not-ready",
            Kind::RenewalFailed => "renewal-failed",
            Kind::RenewalOverdue => "renewal-overdue",
            Kind::TrustRootExpiring => "trust-root-expiring",
            Kind::TrustRootExpired => "trust-root-expired",
            Kind::KeyWithoutCertificate => "key-without-certificate",
            Kind::LifetimeOverLimit => "lifetime-over-limit",
            Kind::AriEarlyRenewal => "ari-early-renewal",
            Kind::TrustRootUnverified => "trust-root-unverified",
            Kind::TrustRootRollback => "trust-root-rollback",
            Kind::TrustRootChainBroken => "trust-root-chain-broken",
        }
    }

    pub const ALL: [Kind; 25] = [
        Kind::Expired,
        Kind::Expiring,
        Kind::NotYetValid,
        Kind::Revoked,
        Kind::RevocationUnknown,
        Kind::RevocationStale,
        Kind::KeyTooOld,
        Kind::WeakKey,
        Kind::WeakSignature,
        Kind::Superseded,
        Kind::Retired,
        Kind::UntrustedEndpoint,
        Kind::KeyExtractable,
        Kind::KeyNotOnToken,
        Kind::CertManagerNotReady,
        Kind::RenewalFailed,
        Kind::RenewalOverdue,
        Kind::TrustRootExpiring,
        Kind::TrustRootExpired,
        Kind::KeyWithoutCertificate,
        Kind::LifetimeOverLimit,
        Kind::AriEarlyRenewal,
        Kind::TrustRootUnverified,
        Kind::TrustRootRollback,
        Kind::TrustRootChainBroken,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of thing an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubjectKind {
    /// A certificate in the inventory: subject `cert:<sha256>`.
    Certificate,
    /// A key object a source lists (PKCS#11 private key, TUF trust root): `key:<source>:<location>`.
    Key,
    /// A managed certificate (`managed:`) with no installed certificate: `managed:<name>`.
    Managed,
}

impl SubjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Certificate => "certificate",
            SubjectKind::Key => "key",
            SubjectKind::Managed => "managed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [SubjectKind::Certificate, SubjectKind::Key, SubjectKind::Managed].into_iter().find(|k| k.as_str() == s)
    }

    /// The kind of a subject string, by its scheme.
    pub fn of(subject: &str) -> Option<Self> {
        match subject.split_once(':')?.0 {
            "cert" => Some(SubjectKind::Certificate),
            "key" => Some(SubjectKind::Key),
            "managed" => Some(SubjectKind::Managed),
            _ => None,
        }
    }
}

/// The subject string of a certificate.
pub fn cert_subject(fingerprint: &str) -> String {
    format!("cert:{}", fingerprint.to_ascii_lowercase())
}

/// The subject string of a key object.
pub fn key_subject(source: &str, location: &str) -> String {
    format!("key:{source}:{location}")
}

/// The subject string of a managed certificate.
pub fn managed_subject(name: &str) -> String {
    format!("managed:{name}")
}

/// One finding about one subject: a certificate, a key object, or a managed certificate with
/// no certificate installed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// `cert:<sha256>`, `key:<source>:<location>` or `managed:<name>`: one alert per
    /// (subject, kind).
    pub subject: String,
    pub subject_kind: SubjectKind,
    /// The certificate's row, for certificate subjects.
    pub cert_id: Option<i64>,
    /// The certificate's SHA-256; empty (and not serialized) for other subjects.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fingerprint: String,
    /// What operators read: the certificate's name, `"label" at <location>`, `managed certificate web`.
    pub name: String,
    pub kind: Kind,
    pub severity: Severity,
    /// One line: what is wrong, with the numbers.
    pub reason: String,
    /// One line: what to do.
    pub action: String,
    /// Routing facts.
    pub sources: Vec<String>,
    pub tags: Vec<String>,
    pub ekus: Vec<String>,
    /// When the subject expires (a certificate's notAfter, a trust root's `expires`); 0 when
    /// it has no expiry (a key, a managed certificate with nothing installed).
    pub not_after: UnixTime,
    /// The certificate's owner (`app::owners`: from its sources, else `owners.rules`), for
    /// routing and for people to read; none for orphans and for other subjects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// How to reach the owner, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_contact: Option<String>,
}

impl Finding {
    /// A short column for listings: the certificate's fingerprint prefix, else the subject kind.
    pub fn short(&self) -> &str {
        if self.fingerprint.is_empty() { self.subject_kind.as_str() } else { &self.fingerprint[..12.min(self.fingerprint.len())] }
    }
}
