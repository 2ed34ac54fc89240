//! Where certificates live. Each kind of source is one file behind the [`Source`] trait: it
//! lists objects cheaply with a change-detection stamp, and fetches an object's bytes on demand.
//! Parsing, storing and concurrency belong to the scan driver (`inventory`), not to sources.

pub mod aws;
pub mod files;
pub mod kubernetes;
pub mod pkcs11;
pub mod runtime;
pub mod tls;
pub mod trust;
pub mod vault;

use crate::config::SourceSpec;
use crate::config::secret::Secret;

/// One object a source lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// An object and its stamp: equal stamps mean unchanged content.
    Object { location: String, stamp: String },
    /// An object that exists but cannot be listed or read (permission, size limit).
    Error { location: String, message: String },
    /// A part of the source (a directory, a mount) could not be listed at all. Objects
    /// previously seen under `prefix` are not marked gone: their state is unknown, not absent.
    Unavailable { prefix: String, message: String },
    /// The complete result of an image audit of the source (a Kubernetes cluster): replaces the
    /// image findings stored for the source. Sent once per scan, only when the audit ran.
    ImageAudit { findings: Vec<ImageFinding> },
}

pub use crate::model::observed::{ImageFinding, KeyObject};

/// What reading one object gave.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    /// Certificate bytes in any supported format. Empty for a key object, and for an object
    /// that holds no certificate when `meta` says what was read (a secret holding a password):
    /// such an object is recorded without certificates, not as an error.
    pub bytes: Vec<u8>,
    /// What the source knows about the object beyond its bytes (a TLS endpoint's protocol and
    /// verification result, a secret's version); stored with the object, shown with its
    /// sightings, rewritten on every read.
    pub meta: Option<serde_json::Value>,
    /// Set when the object is a key rather than certificates.
    pub key: Option<KeyObject>,
    /// Passwords that belong to this object (a keystore's password kept beside it in the same
    /// Kubernetes Secret), tried before the source's own. Never logged (`Secret` hides its
    /// value in `Debug`).
    pub passwords: Vec<Secret>,
}

impl Fetched {
    pub fn bytes(bytes: Vec<u8>) -> Fetched {
        Fetched { bytes, meta: None, key: None, passwords: Vec::new() }
    }
}

/// Why a source, or one of its objects, could not be read. A kind's own failures keep their
/// type (and their text, which the scan stores as the object's error and `errors` shows).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source {source_name}: {location}: {message}")]
    Object { source_name: String, location: String, message: String },
    /// A configured secret reference (a password) could not be resolved.
    #[error("source {source_name}: secret {reference}: {source}")]
    Secret {
        source_name: String,
        reference: String,
        #[source]
        source: crate::config::secret::SecretError,
    },
    #[error(transparent)]
    Files(#[from] files::FilesError),
    #[error(transparent)]
    Vault(#[from] vault::VaultError),
    #[error(transparent)]
    Pkcs11(#[from] pkcs11::Pkcs11Error),
    #[error(transparent)]
    Aws(#[from] aws::AwsError),
    #[error(transparent)]
    Kubernetes(#[from] kubernetes::KubernetesError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// A place certificates are inventoried from. Object-safe, shareable across worker threads.
pub trait Source: Send + Sync {
    fn name(&self) -> &str;
    fn kind(&self) -> &'static str;
    fn tags(&self) -> &[String];
    /// Streams the objects the source holds, in a stable order.
    fn list(&self, out: &mut dyn FnMut(Listing));
    /// Reads one listed object. The error's text is what the scan records for the object.
    fn fetch(&self, location: &str) -> Result<Fetched, SourceError>;
    /// Passwords to try on protected containers (PKCS#12, JKS).
    fn passwords(&self) -> Result<Vec<Secret>, SourceError>;
}

/// Resolves a source's configured password references, naming the source and the reference
/// (never the value) in the error.
pub fn resolve_passwords(source_name: &str, refs: &[crate::config::secret::SecretRef]) -> Result<Vec<Secret>, SourceError> {
    refs.iter()
        .map(|r| {
            r.resolve().map_err(|source| SourceError::Secret { source_name: source_name.to_string(), reference: r.to_string(), source })
        })
        .collect()
}

/// Builds the source for a validated configuration entry.
pub fn build(spec: &SourceSpec) -> Box<dyn Source> {
    match spec {
        SourceSpec::Files(f) => Box::new(files::FilesSource::new(f.clone())),
        SourceSpec::Vault(v) => Box::new(vault::VaultSource::new(v.clone())),
        SourceSpec::Pkcs11(p) => Box::new(pkcs11::Pkcs11Source::new(p.clone())),
        SourceSpec::Aws(a) => Box::new(aws::AwsSource::new(a.clone())),
        SourceSpec::Kubernetes(k) => Box::new(kubernetes::KubernetesSource::new(k.clone())),
        SourceSpec::Tls(t) => Box::new(tls::TlsSource::new(t.clone())),
    }
}
