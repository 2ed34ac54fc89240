//! OpenBao / HashiCorp Vault (one HTTP API): certificates of PKI mounts and PEM certificates held
//! in KV version 2 secrets.
//!
//! Listing is cheap and fetches nothing that a stamp can vouch for:
//! - PKI: `LIST <mount>/certs` (paged with `after`/`limit` where the server supports it, else
//!   one list) gives the serials; the stamp is the serial (a certificate is immutable), marked
//!   `;revoked` for the serials of `LIST <mount>/certs/revoked`, so a revocation is read once.
//!   Issuers (`LIST <mount>/issuers`, `GET <mount>/issuer/<id>`, `GET <mount>/config/urls`) are
//!   read while listing: they are few, and their stamp must cover their CRL and OCSP settings.
//! - KV v2: the folder tree under the prefix, with each secret's current version from
//!   `LIST <mount>/detailed-metadata/<folder>` (OpenBao: one request per folder) or, where the
//!   server has no such path (Vault), `LIST <mount>/metadata/<folder>` and `GET
//!   <mount>/metadata/<path>` per secret. The stamp is the version (and the owner named in the
//!   secret's custom metadata, see `vault/kv.rs`): an unchanged secret is not read again.
//!
//! Locations: `vault:<mount>/cert/<serial>`, `vault:<mount>/issuer/<issuer id>` and
//! `vault:<mount>/<secret path>`. A mount (or KV folder) that cannot be listed is reported as
//! unavailable under `vault:<mount>/…`, so what was seen there before is not taken for gone.
//!
//! Every request goes through one semaphore (`concurrency`), has the configured timeout and a
//! 16 MiB answer limit, and is counted. Tokens are renewed before their TTL runs out
//! (`renew-self` when renewable, else a new login); a 401/403 that turns out to come from a
//! dead token (checked with `lookup-self`) triggers one new login and one retry. Tokens are
//! never logged and are sent as sensitive header values.
//!
//! The client and authentication are in `vault/client.rs`, PKI mounts in `vault/pki.rs`, KV
//! mounts in `vault/kv.rs`.

mod client;
mod kv;
mod pki;

use super::runtime::Exec;
use super::{Fetched, Listing, Source, SourceError};
use crate::config::secret::Secret;
use crate::config::sources::vault::VaultSpec;
use client::Inner;
pub use client::{ApiError, AuthError, MountError};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Why the source could not be set up, or an object not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Api(#[from] ApiError),
    /// `reason` is the system's.
    #[error("cannot start the HTTP runtime: {reason}")]
    Runtime { reason: String },
    /// The configured CA bundle is unreadable, too large or holds no certificate.
    #[error("ca_bundle {}: {reason}", .path.display())]
    CaBundle { path: PathBuf, reason: String },
    #[error("cannot set up the HTTP client: {reason}")]
    HttpClient { reason: String },
    #[error("address {address}: {reason}")]
    Address { address: String, reason: String },
    #[error("no HTTP runtime")]
    NoRuntime,
}

pub struct VaultSource {
    spec: VaultSpec,
    /// The client, or why it could not be built (reported by `list`).
    inner: Result<Arc<Inner>, VaultError>,
    runtime: Option<Exec>,
}

impl VaultSource {
    pub fn new(spec: VaultSpec) -> Self {
        let runtime = Exec::new("certvigil-vault").map_err(|e| VaultError::Runtime { reason: e.to_string() });
        let inner = runtime.as_ref().map_err(Clone::clone).and_then(|_| Inner::new(spec.clone()).map(Arc::new));
        VaultSource { spec, inner, runtime: runtime.ok() }
    }

    fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> Option<T> {
        self.runtime.as_ref().map(|rt| rt.block_on(f))
    }

    /// Where each configured mount lists, for reporting a failure of the whole source.
    fn prefixes(&self) -> Vec<String> {
        let pki = self.spec.pki_mounts.iter().map(|m| format!("vault:{m}/"));
        pki.chain(self.spec.kv_mounts.iter().map(|k| format!("vault:{}/{}", k.mount, k.prefix))).collect()
    }
}

impl Drop for VaultSource {
    fn drop(&mut self) {
        if let Ok(inner) = &self.inner {
            let requests = inner.requests.load(Ordering::Relaxed);
            if requests > 0 {
                tracing::info!(
                    source = %self.spec.name,
                    requests,
                    logins = inner.logins.load(Ordering::Relaxed),
                    renewals = inner.renewals.load(Ordering::Relaxed),
                    "{requests} requests in all"
                );
            }
        }
    }
}

impl Source for VaultSource {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn kind(&self) -> &'static str {
        "vault"
    }

    fn tags(&self) -> &[String] {
        &self.spec.tags
    }

    fn list(&self, out: &mut dyn FnMut(Listing)) {
        let inner = match &self.inner {
            Ok(i) => Arc::clone(i),
            Err(e) => {
                for prefix in self.prefixes() {
                    out(Listing::Unavailable { prefix, message: e.to_string() });
                }
                return;
            }
        };
        inner.reset();
        let before = inner.requests.load(Ordering::Relaxed);
        self.block_on(async {
            // A login that fails fails every mount the same way: say so once per mount.
            if let Err(e) = inner.token().await {
                for prefix in self.prefixes() {
                    out(Listing::Unavailable { prefix, message: e.to_string() });
                }
                return;
            }
            for mount in &self.spec.pki_mounts {
                inner.list_pki(mount, out).await;
            }
            for kv in &self.spec.kv_mounts {
                Arc::clone(&inner).list_kv(kv, out).await;
            }
        });
        let n = inner.requests.load(Ordering::Relaxed) - before;
        tracing::info!(source = %self.spec.name, requests = n, "listing done: {n} requests");
    }

    fn fetch(&self, location: &str) -> Result<Fetched, SourceError> {
        let inner = self.inner.as_ref().map_err(Clone::clone)?;
        match self.block_on(inner.fetch(location)) {
            Some(r) => Ok(r.map_err(VaultError::from)?),
            None => Err(VaultError::NoRuntime.into()),
        }
    }

    fn passwords(&self) -> Result<Vec<Secret>, SourceError> {
        Ok(Vec::new())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    async fn fetch(&self, location: &str) -> Result<Fetched, ApiError> {
        if let Some(f) = lock(&self.issuers).get(location) {
            return Ok(f.clone());
        }
        let rest = location
            .strip_prefix("vault:")
            .ok_or_else(|| ApiError::Answer { path: location.into(), message: "not a vault location".into() })?;
        // The longest configured mount the location lies in (mounts may nest: `a`, `a/b`).
        let pki = self.spec.pki_mounts.iter().filter(|m| rest.starts_with(&format!("{m}/"))).max_by_key(|m| m.len());
        let kv =
            self.spec.kv_mounts.iter().filter(|k| rest.starts_with(&format!("{}/{}", k.mount, k.prefix))).max_by_key(|k| k.mount.len());
        match (pki, kv) {
            (Some(m), kv) if kv.is_none_or(|k| k.mount.len() < m.len()) => {
                let tail = &rest[m.len() + 1..];
                if let Some(serial) = tail.strip_prefix("cert/") {
                    self.read_cert(m, serial).await
                } else if let Some(id) = tail.strip_prefix("issuer/") {
                    let urls = self.call("GET", &format!("{m}/config/urls"), &[]).await.map(|v| v["data"].clone()).unwrap_or(Value::Null);
                    self.read_issuer(m, id, None, &urls).await
                } else {
                    Err(ApiError::Answer { path: location.into(), message: "not a certificate or issuer location".into() })
                }
            }
            (_, Some(k)) => self.read_secret(k, &rest[k.mount.len() + 1..]).await,
            _ => Err(ApiError::Answer { path: location.into(), message: "no configured mount holds this location".into() }),
        }
    }
}

/// The certificate blocks of a PEM text, each ending in a newline (see
/// [`crate::x509::pem::certificate_blocks`]).
fn certificate_blocks(text: &str) -> String {
    crate::x509::pem::certificate_blocks(text).into_iter().map(|b| b + "\n").collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_blocks_keep_certificates_only() {
        let text = "junk\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n\
                    -----BEGIN PRIVATE KEY-----\nSECRET\n-----END PRIVATE KEY-----\n\
                    -----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----";
        let got = certificate_blocks(text);
        assert_eq!(
            got,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n"
        );
        assert!(!got.contains("SECRET"));
        assert_eq!(certificate_blocks("hunter2"), "");
        assert_eq!(certificate_blocks("{\"a\": 1}"), "");
        assert_eq!(certificate_blocks("-----BEGIN RSA PRIVATE KEY-----\nX\n-----END RSA PRIVATE KEY-----\n"), "");
        // An unterminated certificate is handed on for the parser to report.
        assert_eq!(certificate_blocks("-----BEGIN CERTIFICATE-----\nAAAA\n"), "-----BEGIN CERTIFICATE-----\nAAAA\n");
    }
}
