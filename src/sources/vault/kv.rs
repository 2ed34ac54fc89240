//! KV version 2 mounts: listing the folder tree with each secret's current version and owner,
//! and reading the PEM certificates of a secret at the version it was listed at.
//!
//! The owner is in the secret's custom metadata (`owner`, or `certvigil.io/owner`; the contact
//! in `owner_contact` or `certvigil.io/owner-contact`), which the listing already reads with
//! the version: no request is added. Changing custom metadata makes no new version, so the
//! owner is part of the stamp (`v3;owner=payments`): a secret whose owner changed is read again,
//! an unchanged one still is not.

use super::client::{ApiError, Inner};
use super::{Fetched, Listing, certificate_blocks, lock};
use crate::config::sources::vault::KvSpec;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

impl Inner {
    pub(super) async fn list_kv(self: Arc<Self>, kv: &KvSpec, out: &mut dyn FnMut(Listing)) {
        let mount = kv.mount.as_str();
        if let Err(e) = self.check_engine(mount, true).await {
            out(Listing::Unavailable { prefix: format!("vault:{mount}/{}", kv.prefix), message: e.to_string() });
            return;
        }
        // OpenBao lists versions with the keys; Vault needs one metadata read per secret.
        let mut detailed = true;
        let mut folders: Vec<String> = vec![kv.prefix.clone()];
        while let Some(folder) = folders.pop() {
            let listed = if detailed {
                match self.paged_list(&format!("{mount}/detailed-metadata/{folder}"), false).await {
                    Err(e) if matches!(e.status(), Some(404 | 405)) => {
                        detailed = false;
                        tracing::debug!(source = %self.spec.name, mount, "no detailed-metadata listing: reading metadata per secret");
                        self.paged_list(&format!("{mount}/metadata/{folder}"), false).await
                    }
                    r => r,
                }
            } else {
                self.paged_list(&format!("{mount}/metadata/{folder}"), false).await
            };
            let (keys, info) = match listed {
                Ok(r) => r,
                Err(e) => {
                    out(Listing::Unavailable { prefix: format!("vault:{mount}/{folder}"), message: e.to_string() });
                    continue;
                }
            };
            let mut sub: Vec<String> = Vec::new();
            let mut secrets: Vec<(String, Option<Value>)> = Vec::new();
            for k in keys {
                if k.ends_with('/') {
                    sub.push(format!("{folder}{k}"));
                } else {
                    let meta = info.get(&k).cloned();
                    secrets.push((format!("{folder}{k}"), meta));
                }
            }
            // Metadata for the secrets the listing did not describe, read concurrently (the
            // semaphore bounds the requests).
            let mut tasks = tokio::task::JoinSet::new();
            for (i, (path, meta)) in secrets.iter().enumerate() {
                if meta.is_none() {
                    let me = Arc::clone(&self);
                    let p = format!("{mount}/metadata/{path}");
                    tasks.spawn(async move { (i, me.call("GET", &p, &[]).await.map(|v| v["data"].clone())) });
                }
            }
            let mut read: BTreeMap<usize, Result<Value, ApiError>> = BTreeMap::new();
            while let Some(done) = tasks.join_next().await {
                if let Ok((i, r)) = done {
                    read.insert(i, r);
                }
            }
            for (i, (path, meta)) in secrets.into_iter().enumerate() {
                let location = format!("vault:{mount}/{path}");
                let meta = match meta.map(Ok).or_else(|| read.remove(&i)) {
                    Some(Ok(m)) => m,
                    Some(Err(e)) if e.is_empty_list() => continue, // deleted meanwhile
                    Some(Err(e)) => {
                        out(Listing::Error { location, message: e.to_string() });
                        continue;
                    }
                    None => {
                        out(Listing::Error { location, message: "metadata read did not finish".into() });
                        continue;
                    }
                };
                let version = meta["current_version"].as_u64().unwrap_or(0);
                if version == 0 {
                    continue; // metadata without any version: nothing to read
                }
                let v = &meta["versions"][version.to_string()];
                let gone = v["destroyed"].as_bool().unwrap_or(false) || v["deletion_time"].as_str().is_some_and(|t| !t.is_empty());
                lock(&self.versions).insert(location.clone(), version);
                let mut stamp = if gone { format!("v{version};deleted") } else { format!("v{version}") };
                if let Some(owner) = KvOwner::of(&meta["custom_metadata"]) {
                    stamp.push_str(&owner.stamp());
                    lock(&self.owners).insert(location.clone(), owner);
                }
                out(Listing::Object { location, stamp });
            }
            // Depth first, in name order.
            folders.extend(sub.into_iter().rev());
        }
    }

    /// The certificates of one KV secret, at the version it was listed at: every field holding
    /// PEM certificates (or the named fields, each of which must).
    pub(super) async fn read_secret(&self, kv: &KvSpec, path: &str) -> Result<Fetched, ApiError> {
        let location = format!("vault:{}/{path}", kv.mount);
        let version = lock(&self.versions).get(&location).copied();
        let owner = lock(&self.owners).get(&location).cloned();
        let with_owner = |mut meta: Value| {
            if let Some(o) = &owner {
                o.record(&mut meta);
            }
            Some(meta)
        };
        let api = format!("{}/data/{path}", kv.mount);
        let v = version.map(|v| v.to_string());
        let query: Vec<(&str, &str)> = v.as_deref().map(|v| vec![("version", v)]).unwrap_or_default();
        let answer = match self.call("GET", &api, &query).await {
            Ok(a) => a,
            // A deleted or destroyed version answers 404 with its metadata: nothing to read.
            Err(e) if e.status() == Some(404) => {
                let meta = json!({"mount": kv.mount, "path": path, "version": version, "deleted": true, "fields": []});
                return Ok(Fetched { bytes: Vec::new(), meta: with_owner(meta), key: None, passwords: Vec::new() });
            }
            Err(e) => return Err(e),
        };
        let data = &answer["data"]["data"];
        let read_version = answer["data"]["metadata"]["version"].as_u64().or(version);
        let Some(fields) = data.as_object() else {
            let meta = json!({"mount": kv.mount, "path": path, "version": read_version, "fields": []});
            return Ok(Fetched { bytes: Vec::new(), meta: with_owner(meta), key: None, passwords: Vec::new() });
        };
        let mut pem = String::new();
        let mut found: Vec<&str> = Vec::new();
        let mut problems: Vec<String> = Vec::new();
        // serde_json's map is ordered by key: the concatenation is stable.
        for (name, value) in fields {
            let named = kv.fields.iter().any(|f| f == name);
            if !kv.fields.is_empty() && !named {
                continue;
            }
            let blocks = value.as_str().map(certificate_blocks).unwrap_or_default();
            if blocks.is_empty() {
                if named {
                    problems.push(format!("field `{name}` holds no PEM certificate"));
                }
                continue; // a password, a key, JSON: not a certificate, not an error
            }
            found.push(name);
            pem.push_str(&blocks);
        }
        if !problems.is_empty() {
            return Err(ApiError::Answer { path: format!("{api} (version {})", read_version.unwrap_or(0)), message: problems.join("; ") });
        }
        let meta = json!({"mount": kv.mount, "path": path, "version": read_version, "fields": found});
        Ok(Fetched { bytes: pem.into_bytes(), meta: with_owner(meta), key: None, passwords: Vec::new() })
    }
}

/// The owner a KV secret's custom metadata names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KvOwner {
    name: String,
    contact: Option<String>,
}

impl KvOwner {
    /// From `custom_metadata` (a map of strings): `owner` or `certvigil.io/owner`, and
    /// `owner_contact` or `certvigil.io/owner-contact`; blank values count as absent.
    pub(super) fn of(custom: &Value) -> Option<KvOwner> {
        let get = |keys: [&str; 2]| {
            keys.iter().find_map(|k| custom.get(*k).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string))
        };
        let name = get(["owner", "certvigil.io/owner"])?;
        Some(KvOwner { name, contact: get(["owner_contact", "certvigil.io/owner-contact"]) })
    }

    /// What the owner adds to the secret's stamp.
    fn stamp(&self) -> String {
        format!(";owner={};contact={}", self.name, self.contact.as_deref().unwrap_or(""))
    }

    /// Writes `owner`, `owner_contact` and `owner_from` into the object's meta.
    fn record(&self, meta: &mut Value) {
        meta["owner"] = json!(self.name);
        meta["owner_from"] = json!("custom_metadata");
        if let Some(c) = &self.contact {
            meta["owner_contact"] = json!(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_in_custom_metadata() {
        let o = KvOwner::of(&json!({"owner": "payments", "owner_contact": "pay@corp.example", "other": "x"})).unwrap();
        assert_eq!((o.name.as_str(), o.contact.as_deref()), ("payments", Some("pay@corp.example")));
        assert_eq!(o.stamp(), ";owner=payments;contact=pay@corp.example");
        let o = KvOwner::of(&json!({"certvigil.io/owner": "web", "certvigil.io/owner-contact": "web@corp.example"})).unwrap();
        assert_eq!((o.name.as_str(), o.contact.as_deref()), ("web", Some("web@corp.example")));
        assert_eq!(KvOwner::of(&json!({"owner": "  "})), None);
        assert_eq!(KvOwner::of(&Value::Null), None);
        let mut meta = json!({"version": 2});
        KvOwner::of(&json!({"owner": "web"})).unwrap().record(&mut meta);
        assert_eq!(meta, json!({"version": 2, "owner": "web", "owner_from": "custom_metadata"}));
    }
}
