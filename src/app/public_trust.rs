//! Which certificates are publicly trusted: their chain leads, signature by signature, to a root
//! of the system's trust store (`rustls-native-certs`: the platform's store, or the file and
//! directory `SSL_CERT_FILE` / `SSL_CERT_DIR` name). The CA/Browser Forum's rules — the lifetime
//! limits of `model::lifetime` — bind only those.
//!
//! Asked only for the few certificates a policy check picks (`lifetime_over_limit_candidate`),
//! and remembered per issuer, so a fleet of 100,000 private certificates costs nothing and a
//! fleet of public ones costs one verification per certificate plus one per intermediate.

use crate::model::rows::CertRow;
use crate::store::{Store, StoreError};
use crate::x509::cert::raw_parts;
use crate::x509::verify;
use std::collections::HashMap;

/// Intermediates between a leaf and a root: BR-issued chains have one or two.
const MAX_DEPTH: usize = 4;

/// A root of the system's trust store.
struct Root {
    subject: Vec<u8>,
    spki: Vec<u8>,
    ski: Option<String>,
}

/// The system's roots and what was found out about issuers so far.
pub struct PublicTrust {
    roots: Vec<Root>,
    /// Per issuing certificate (fingerprint): whether it chains to a root.
    issuers: HashMap<String, bool>,
}

impl PublicTrust {
    /// Reads the system's trust store. An unreadable or empty store means nothing is public
    /// (logged once): the checks that need it find nothing rather than guessing.
    pub fn load() -> PublicTrust {
        let found = rustls_native_certs::load_native_certs();
        if let Some(e) = found.errors.first() {
            tracing::debug!(error = %e, "system trust store partly unreadable");
        }
        let roots: Vec<Root> = found
            .certs
            .iter()
            .filter_map(|c| {
                let p = raw_parts(c.as_ref()).ok()?;
                let facts = crate::x509::cert::parse_der(c.as_ref()).ok();
                Some(Root { subject: p.subject.to_vec(), spki: p.spki.to_vec(), ski: facts.and_then(|f| f.ski) })
            })
            .collect();
        if roots.is_empty() {
            tracing::warn!("no system trust store: no certificate is treated as publicly trusted");
        }
        PublicTrust { roots, issuers: HashMap::new() }
    }

    /// A set of roots given directly (tests, and callers with their own store).
    pub fn from_roots(ders: &[Vec<u8>]) -> PublicTrust {
        let roots = ders
            .iter()
            .filter_map(|d| {
                let p = raw_parts(d).ok()?;
                let ski = crate::x509::cert::parse_der(d).ok().and_then(|f| f.ski);
                Some(Root { subject: p.subject.to_vec(), spki: p.spki.to_vec(), ski })
            })
            .collect();
        PublicTrust { roots, issuers: HashMap::new() }
    }

    /// Whether the certificate (`der`, with its row) chains to a system root.
    pub fn is_public(&mut self, store: &Store, cert: &CertRow, der: &[u8]) -> Result<bool, StoreError> {
        self.chains(store, cert.facts.aki.as_deref(), der, MAX_DEPTH)
    }

    fn chains(&mut self, store: &Store, aki: Option<&str>, der: &[u8], depth: usize) -> Result<bool, StoreError> {
        let Ok(parts) = raw_parts(der) else { return Ok(false) };
        // Issued by a root itself: the root's key verifies it (RFC 5280 §6.1.3 (a)(1)).
        let by_root = self.roots.iter().any(|r| {
            let named = r.subject == parts.issuer || (aki.is_some() && r.ski.as_deref() == aki);
            named && verify::verify_cert_signed_by(der, &r.spki, verify::LOWEST_MIN_RSA_BITS).is_ok()
        });
        if by_root || depth == 0 || self.roots.is_empty() {
            return Ok(by_root);
        }
        // Else through an intermediate in the inventory whose key verifies it.
        for (issuer, issuer_der) in store.issuer_candidates(aki, parts.issuer)? {
            if !issuer.facts.is_ca {
                continue;
            }
            let Ok(ip) = raw_parts(&issuer_der) else { continue };
            if verify::verify_cert_signed_by(der, ip.spki, verify::LOWEST_MIN_RSA_BITS).is_err() {
                continue;
            }
            let fp = issuer.facts.fingerprint.0.clone();
            let known = match self.issuers.get(&fp) {
                Some(v) => *v,
                None => {
                    // Marked first, so a cycle of cross-signed certificates ends.
                    self.issuers.insert(fp.clone(), false);
                    let v = self.chains(store, issuer.facts.aki.as_deref(), &issuer_der, depth - 1)?;
                    self.issuers.insert(fp, v);
                    v
                }
            };
            if known {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
