//! The vocabulary shared by every module: fingerprints, certificate facts, locations and the
//! expiry status derived from them. Plain data; no I/O and no clock.

use serde::Serialize;
use std::fmt;

/// Seconds since the Unix epoch, UTC. Every stored and compared time is whole seconds.
pub type UnixTime = i64;

/// SHA-256 of a certificate's DER encoding, lower-case hex. The identity of a certificate:
/// the same bytes found in a file, a vault and a cluster are one certificate.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Fingerprint(pub String);

impl Fingerprint {
    pub fn of_der(der: &[u8]) -> Self {
        use sha2::Digest;
        Fingerprint(hex::encode(sha2::Sha256::digest(der)))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The public key of a certificate, as an operator compares it against policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyFacts {
    /// `RSA`, `EC`, `Ed25519`, `Ed448`, `DSA`, or the dotted OID of anything else.
    pub algorithm: String,
    /// Modulus size for RSA/DSA, field size for EC, fixed size for EdDSA.
    pub bits: Option<u32>,
    /// Named curve for EC keys (`P-256`, `P-384`, `P-521`, `secp256k1`, or the OID).
    pub curve: Option<String>,
}

impl fmt::Display for KeyFacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.curve, self.bits) {
            (Some(c), _) => write!(f, "{} {}", self.algorithm, c),
            (None, Some(_)) if self.algorithm.starts_with("Ed") => f.write_str(&self.algorithm),
            (None, Some(b)) => write!(f, "{}-{}", self.algorithm, b),
            (None, None) => f.write_str(&self.algorithm),
        }
    }
}

/// Everything certvigil knows about one certificate from its bytes alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertFacts {
    pub fingerprint: Fingerprint,
    /// RFC 4514 string of the subject DN.
    pub subject: String,
    pub issuer: String,
    /// Subject CN when present: the name an operator recognises.
    pub common_name: Option<String>,
    /// Upper-case hex of the serial's DER integer bytes, without separators.
    pub serial: String,
    pub not_before: UnixTime,
    pub not_after: UnixTime,
    /// SHA-256 of the DER SubjectPublicKeyInfo: the key's identity across certificates.
    pub spki_sha256: String,
    pub key: KeyFacts,
    pub signature_algorithm: String,
    pub is_ca: bool,
    pub path_len: Option<u32>,
    pub key_usage: Vec<String>,
    /// Names such as `serverAuth`, `codeSigning`, `timeStamping`, or dotted OIDs.
    pub ext_key_usage: Vec<String>,
    /// `DNS:…`, `IP:…`, `email:…`, `URI:…`, `DirName:…`, `other:…`.
    pub sans: Vec<String>,
    pub ocsp_urls: Vec<String>,
    pub ca_issuers_urls: Vec<String>,
    pub crl_urls: Vec<String>,
    /// Authority key identifier, lower-case hex.
    pub aki: Option<String>,
    /// Subject key identifier, lower-case hex.
    pub ski: Option<String>,
    /// Subject and issuer DER are identical.
    pub self_issued: bool,
    /// Extensions that were present but could not be decoded; the certificate is still kept.
    pub warnings: Vec<String>,
}

impl CertFacts {
    /// The name shown in tables: CN, else the first SAN, else the whole subject.
    pub fn display_name(&self) -> String {
        if let Some(cn) = &self.common_name {
            return cn.clone();
        }
        if let Some(san) = self.sans.first() {
            return san.split_once(':').map(|(_, v)| v.to_string()).unwrap_or_else(|| san.clone());
        }
        if self.subject.is_empty() { "(empty subject)".into() } else { self.subject.clone() }
    }

    pub fn is_code_signing(&self) -> bool {
        self.ext_key_usage.iter().any(|e| e == "codeSigning")
    }

    pub fn is_time_stamping(&self) -> bool {
        self.ext_key_usage.iter().any(|e| e == "timeStamping")
    }
}

/// Where a certificate lives inside one object: `block 3`, `alias "tomcat"`, `bag 2`.
pub type Detail = String;

/// Expiry status relative to a moment and the warning threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ExpiryStatus {
    Valid,
    Expiring,
    Expired,
    NotYetValid,
}

impl ExpiryStatus {
    /// Pure: `now` and the warning window (seconds) are arguments.
    pub fn at(not_before: UnixTime, not_after: UnixTime, now: UnixTime, warning_secs: i64) -> Self {
        if now < not_before {
            ExpiryStatus::NotYetValid
        } else if now > not_after {
            // RFC 5280 §4.1.2.5: the validity period includes notAfter itself.
            ExpiryStatus::Expired
        } else if not_after - now <= warning_secs {
            ExpiryStatus::Expiring
        } else {
            ExpiryStatus::Valid
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExpiryStatus::Valid => "valid",
            ExpiryStatus::Expiring => "expiring",
            ExpiryStatus::Expired => "expired",
            ExpiryStatus::NotYetValid => "not-yet-valid",
        }
    }
}

impl fmt::Display for ExpiryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whole days left until `not_after`, rounded towards negative infinity (−1 the day after).
pub fn days_left(not_after: UnixTime, now: UnixTime) -> i64 {
    (not_after - now).div_euclid(86_400)
}

/// RFC 3339 rendering of a Unix time (UTC, `Z`). Times outside 1970..9999 print as seconds.
pub fn format_time(t: UnixTime) -> String {
    u64::try_from(t)
        .ok()
        .and_then(|s| der::DateTime::from_unix_duration(std::time::Duration::from_secs(s)).ok())
        .map(|d| d.to_string())
        .unwrap_or_else(|| format!("@{t}"))
}

/// Date only (`YYYY-MM-DD`), for tables.
pub fn format_date(t: UnixTime) -> String {
    let s = format_time(t);
    if s.len() >= 10 && !s.starts_with('@') { s[..10].to_string() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_boundaries() {
        let nb = 1_000;
        let na = 1_000_000;
        assert_eq!(ExpiryStatus::at(nb, na, 999, 10), ExpiryStatus::NotYetValid);
        assert_eq!(ExpiryStatus::at(nb, na, 1_000, 10), ExpiryStatus::Valid);
        assert_eq!(ExpiryStatus::at(nb, na, na - 11, 10), ExpiryStatus::Valid);
        assert_eq!(ExpiryStatus::at(nb, na, na - 10, 10), ExpiryStatus::Expiring);
        assert_eq!(ExpiryStatus::at(nb, na, na, 10), ExpiryStatus::Expiring);
        assert_eq!(ExpiryStatus::at(nb, na, na + 1, 10), ExpiryStatus::Expired);
    }

    #[test]
    fn days_left_rounds_down() {
        assert_eq!(days_left(86_400 * 2, 0), 2);
        assert_eq!(days_left(86_400 * 2 - 1, 0), 1);
        assert_eq!(days_left(0, 1), -1);
    }

    #[test]
    fn formats_times() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(format_date(1_700_000_000), "2023-11-14");
        assert_eq!(format_time(-5), "@-5");
    }
}

/// Revocation state of a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationState {
    Good,
    Revoked,
    /// No verified answer; `reason` says why. Never silently treated as good.
    Unknown,
    /// A self-signed trust anchor: nothing above it can revoke it.
    NotApplicable,
}

impl RevocationState {
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationState::Good => "good",
            RevocationState::Revoked => "revoked",
            RevocationState::Unknown => "unknown",
            RevocationState::NotApplicable => "not-applicable",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [RevocationState::Good, RevocationState::Revoked, RevocationState::Unknown, RevocationState::NotApplicable]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

impl fmt::Display for RevocationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A revocation status with the evidence it rests on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RevocationStatus {
    pub state: RevocationState,
    /// The revocation reason (`keyCompromise`, …) or why the state is unknown.
    pub reason: Option<String>,
    pub revoked_at: Option<UnixTime>,
    pub invalidity_date: Option<UnixTime>,
    /// `ocsp`, `crl`, `crl+delta` or `none`.
    pub method: String,
    pub source_url: Option<String>,
    /// SHA-256 of the CRL or OCSP response that decided.
    pub evidence_sha256: Option<String>,
    pub checked_at: UnixTime,
    pub next_update: Option<UnixTime>,
    /// The evidence was past its nextUpdate (a CRL within its grace, or the reason for unknown).
    pub stale: bool,
    /// What else was tried and any notes.
    pub detail: Option<String>,
}

impl RevocationStatus {
    pub fn unknown(reason: impl Into<String>, checked_at: UnixTime) -> Self {
        RevocationStatus {
            state: RevocationState::Unknown,
            reason: Some(reason.into()),
            revoked_at: None,
            invalidity_date: None,
            method: "none".into(),
            source_url: None,
            evidence_sha256: None,
            checked_at,
            next_update: None,
            stale: false,
            detail: None,
        }
    }
}
