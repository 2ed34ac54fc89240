//! Where certificates live. Each kind of source is one file behind the [`Source`] trait: it
//! lists objects cheaply with a change-detection stamp, and fetches an object's bytes on demand.
//! Parsing, storing and concurrency belong to the scan driver (`inventory`), not to sources.

pub mod files;

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
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("source {source_name}: {location}: {message}")]
    Object { source_name: String, location: String, message: String },
    #[error("source {source_name}: secret {reference}: {message}")]
    Secret { source_name: String, reference: String, message: String },
}

/// A place certificates are inventoried from. Object-safe, shareable across worker threads.
pub trait Source: Send + Sync {
    fn name(&self) -> &str;
    fn kind(&self) -> &'static str;
    fn tags(&self) -> &[String];
    /// Streams the objects the source holds, in a stable order.
    fn list(&self, out: &mut dyn FnMut(Listing));
    /// Reads one listed object.
    fn fetch(&self, location: &str) -> Result<Vec<u8>, String>;
    /// Passwords to try on protected containers (PKCS#12, JKS).
    fn passwords(&self) -> Result<Vec<Secret>, SourceError>;
}

/// Builds the source for a validated configuration entry.
pub fn build(spec: &SourceSpec) -> Box<dyn Source> {
    match spec {
        SourceSpec::Files(f) => Box::new(files::FilesSource::new(f.clone())),
    }
}
