//! PKI mounts: listing serials (revoked ones marked in the stamp) and issuers, and reading a
//! certificate or an issuer with its CRL and OCSP settings.

use super::client::{ApiError, Inner};
use super::{Fetched, Listing, certificate_blocks, lock};
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::HashSet;

impl Inner {
    pub(super) async fn list_pki(&self, mount: &str, out: &mut dyn FnMut(Listing)) {
        let prefix = format!("vault:{mount}/");
        if let Err(e) = self.check_engine(mount, false).await {
            out(Listing::Unavailable { prefix, message: e.to_string() });
            return;
        }
        let certs = match self.paged_list(&format!("{mount}/certs/"), true).await {
            Ok((keys, _)) => keys,
            Err(e) => {
                out(Listing::Unavailable { prefix, message: e.to_string() });
                return;
            }
        };
        let revoked: HashSet<String> = match self.paged_list(&format!("{mount}/certs/revoked/"), true).await {
            Ok((keys, _)) => keys.into_iter().collect(),
            Err(e) => {
                // Certificates are still listed; their revocation is read when they are.
                out(Listing::Error { location: format!("vault:{mount}/certs/revoked"), message: e.to_string() });
                HashSet::new()
            }
        };
        for l in self.list_issuers(mount).await {
            out(l);
        }
        for serial in certs {
            let stamp = if revoked.contains(&serial) { format!("{serial};revoked") } else { serial.clone() };
            out(Listing::Object { location: format!("vault:{mount}/cert/{serial}"), stamp });
        }
    }

    /// Reads the mount's issuers (certificate, CRL and OCSP settings, the mount's URLs): their
    /// stamp is a digest of all of it, and `fetch` hands out what was read here.
    pub(super) async fn list_issuers(&self, mount: &str) -> Vec<Listing> {
        let (ids, info) = match self.paged_list(&format!("{mount}/issuers/"), false).await {
            Ok(r) => r,
            // Before multiple issuers (Vault < 1.11) there is no such path: nothing to add.
            Err(e) if e.status() == Some(404) || e.status() == Some(405) => return Vec::new(),
            Err(e) => return vec![Listing::Error { location: format!("vault:{mount}/issuers"), message: e.to_string() }],
        };
        if ids.is_empty() {
            return Vec::new();
        }
        let urls = match self.call("GET", &format!("{mount}/config/urls"), &[]).await {
            Ok(v) => v["data"].clone(),
            Err(e) => json!({"error": e.to_string()}),
        };
        let mut listed = Vec::new();
        for id in ids {
            let location = format!("vault:{mount}/issuer/{id}");
            match self.read_issuer(mount, &id, info.get(&id), &urls).await {
                Ok(fetched) => {
                    let mut h = sha2::Sha256::new();
                    h.update(&fetched.bytes);
                    h.update(fetched.meta.as_ref().map(Value::to_string).unwrap_or_default().as_bytes());
                    let stamp = format!("issuer:{}", &hex::encode(h.finalize())[..32]);
                    lock(&self.issuers).insert(location.clone(), fetched);
                    listed.push(Listing::Object { location, stamp });
                }
                Err(e) => listed.push(Listing::Error { location, message: e.to_string() }),
            }
        }
        listed
    }

    pub(super) async fn read_issuer(&self, mount: &str, id: &str, info: Option<&Value>, urls: &Value) -> Result<Fetched, ApiError> {
        let path = format!("{mount}/issuer/{id}");
        let v = self.call("GET", &path, &[]).await?;
        let d = &v["data"];
        let pem = d["certificate"]
            .as_str()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ApiError::Answer { path: path.clone(), message: "no certificate in the answer".into() })?;
        let list = |k: &str| d.get(k).cloned().filter(|v| !v.is_null()).unwrap_or_else(|| json!([]));
        let meta = json!({
            "mount": mount,
            "issuer_id": id,
            "issuer_name": d["issuer_name"],
            "key_id": d["key_id"],
            "is_default": info.and_then(|i| i.get("is_default")).cloned().unwrap_or(Value::Null),
            "revoked": d["revoked"].as_bool().unwrap_or(false),
            "usage": d["usage"],
            "leaf_not_after_behavior": d["leaf_not_after_behavior"],
            "crl_distribution_points": list("crl_distribution_points"),
            "delta_crl_distribution_points": list("delta_crl_distribution_points"),
            "issuing_certificates": list("issuing_certificates"),
            "ocsp_servers": list("ocsp_servers"),
            "mount_urls": urls,
        });
        Ok(Fetched { bytes: certificate_blocks(pem).into_bytes(), meta: Some(meta), key: None, passwords: Vec::new() })
    }

    pub(super) async fn read_cert(&self, mount: &str, serial: &str) -> Result<Fetched, ApiError> {
        let path = format!("{mount}/cert/{serial}");
        let v = self.call("GET", &path, &[]).await?;
        let d = &v["data"];
        let pem = d["certificate"]
            .as_str()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ApiError::Answer { path: path.clone(), message: "no certificate in the answer".into() })?;
        let revoked_at = d["revocation_time"].as_i64().filter(|t| *t > 0);
        let mut meta = json!({
            "mount": mount,
            "serial": serial,
            "revoked": revoked_at.is_some(),
            "revocation_time": revoked_at,
        });
        if let Some(t) = d["revocation_time_rfc3339"].as_str().filter(|t| !t.is_empty()) {
            meta["revocation_time_rfc3339"] = json!(t);
        }
        if let Some(id) = d["issuer_id"].as_str().filter(|t| !t.is_empty()) {
            meta["issuer_id"] = json!(id);
        }
        Ok(Fetched { bytes: certificate_blocks(pem).into_bytes(), meta: Some(meta), key: None, passwords: Vec::new() })
    }
}
