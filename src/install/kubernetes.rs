//! Installs a certificate as a Kubernetes Secret of type `kubernetes.io/tls`: `tls.crt` is the
//! full chain (leaf first), `tls.key` the key, `ca.crt` the CA certificates when given.
//!
//! Everything is checked before the API is called, as for files (`files::check`: the key
//! matches the leaf, the chain links by signature, the leaf is valid now). Then:
//! - an absent Secret is created (`POST`); one created meanwhile by someone else (409
//!   `AlreadyExists`) is read and replaced as below;
//! - a present Secret is replaced (`PUT`) with the `metadata.resourceVersion` it was read at:
//!   the API server refuses the write (409 `Conflict`) if anyone changed it since, and it is
//!   read again and the write retried, at most `MAX_ATTEMPTS` times in all — a Secret is
//!   never overwritten blindly. Its labels, annotations, owner references and other data keys
//!   are kept; certvigil's annotations (serial, notAfter, renewal time) are added. An existing
//!   `ca.crt` is kept when no CA is given.
//! - a Secret of another type is not touched (a Secret's type is immutable).
//!
//! Needs `get`, `create` and `update` on `secrets` in the target namespace. Key material is never
//! logged.

use super::files;
use crate::model::{CertFacts, UnixTime, format_time};
use crate::net::kubernetes::{self as access, Access};
use crate::x509::cert;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use std::collections::BTreeMap;

pub const TLS_TYPE: &str = "kubernetes.io/tls";
/// Hex serial of the certificate certvigil installed.
pub const ANNOTATION_SERIAL: &str = "certvigil.io/serial";
/// Its notAfter (RFC 3339, UTC).
pub const ANNOTATION_NOT_AFTER: &str = "certvigil.io/not-after";
/// When certvigil wrote it (RFC 3339, UTC).
pub const ANNOTATION_RENEWED_AT: &str = "certvigil.io/renewed-at";
/// Reads and writes of one install, conflicts included.
pub const MAX_ATTEMPTS: u32 = 5;

pub use crate::config::managed::SecretTarget;

/// What an install did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SecretInstalled {
    pub serial: String,
    pub not_after: UnixTime,
    pub namespace: String,
    pub name: String,
    /// The Secret's resourceVersion after the write.
    pub resource_version: String,
    /// Created (true) or replaced (false).
    pub created: bool,
    /// Reads-and-writes needed (more than 1 after conflicts with other writers).
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretInstallError {
    #[error("not installed in Secret {secret}: {reason}")]
    Invalid { secret: String, reason: String },
    #[error("cannot reach the Kubernetes API for Secret {secret}: {reason}")]
    Connect { secret: String, reason: String },
    #[error("forbidden to {verb} Secret {secret} (403): {message}")]
    Forbidden { secret: String, verb: &'static str, message: String },
    #[error("Secret {secret} exists with type `{found}`, not kubernetes.io/tls: not replaced (a Secret's type cannot change)")]
    WrongType { secret: String, found: String },
    #[error("Secret {secret} was changed by someone else during each of {attempts} attempts: not replaced")]
    Conflict { secret: String, attempts: u32 },
    #[error("Secret {secret}: {verb} failed: {reason}")]
    Api { secret: String, verb: &'static str, reason: String },
}

/// The checked material of one install.
struct Material {
    fullchain: String,
    key: String,
    ca: Option<String>,
    serial: String,
    not_after: UnixTime,
}

fn material(chain_pem: &str, key_pem: &str, ca_pem: Option<&str>, now: UnixTime) -> Result<Material, files::InstallError> {
    let ders = files::chain_ders(chain_pem)?;
    let facts = files::check(&ders, key_pem, now)?;
    let ca = match ca_pem {
        Some(text) => {
            let cas = files::chain_ders(text).map_err(|e| files::InstallError::InFile { path: "ca.crt".into(), inner: Box::new(e) })?;
            Some(cas.iter().map(|d| files::to_pem(d)).collect())
        }
        None => None,
    };
    let serial = hex::encode(cert::raw_parts(&ders[0]).map(|p| p.serial).unwrap_or_default());
    Ok(Material {
        fullchain: ders.iter().map(|d| files::to_pem(d)).collect(),
        key: key_pem.to_string(),
        ca,
        serial,
        not_after: facts.not_after,
    })
}

/// The Secret to write: `existing` (as read, resourceVersion included, so the write is
/// conditional) with the TLS keys and certvigil's annotations set, or a new one.
fn desired(existing: Option<Secret>, target: &SecretTarget, m: &Material, now: UnixTime) -> Secret {
    let mut s = existing.unwrap_or_else(|| {
        let mut s = Secret::default();
        s.metadata.name = Some(target.name.clone());
        s.metadata.namespace = Some(target.namespace.clone());
        s
    });
    s.type_ = Some(TLS_TYPE.into());
    // Fields the server owns and that a write must not carry.
    s.metadata.managed_fields = None;
    let data = s.data.get_or_insert_with(BTreeMap::new);
    data.insert("tls.crt".into(), ByteString(m.fullchain.clone().into_bytes()));
    data.insert("tls.key".into(), ByteString(m.key.clone().into_bytes()));
    if let Some(ca) = &m.ca {
        data.insert("ca.crt".into(), ByteString(ca.clone().into_bytes()));
    }
    // `stringData` is write-only and would override `data`.
    s.string_data = None;
    let notes = s.metadata.annotations.get_or_insert_with(BTreeMap::new);
    notes.insert(ANNOTATION_SERIAL.into(), m.serial.clone());
    notes.insert(ANNOTATION_NOT_AFTER.into(), format_time(m.not_after));
    notes.insert(ANNOTATION_RENEWED_AT.into(), format_time(now));
    s
}

/// A client for the target's cluster, through the same connection code as the `kubernetes`
/// source. `in_cluster: false` means the kubeconfig only; a context with
/// `insecure-skip-tls-verify` is refused (a Secret holds a private key).
pub async fn client(target: &SecretTarget) -> Result<kube::Client, access::AccessError> {
    let access = Access {
        kubeconfig: target.kubeconfig.clone(),
        context: target.context.clone(),
        in_cluster: Some(target.in_cluster),
        allow_insecure_skip_tls_verify: false,
        timeout: target.timeout,
    };
    access::connect(&access).await.map(|c| c.client)
}

/// Checks the certificate, chain and key, then creates or replaces the Secret.
pub async fn install_secret(
    target: &SecretTarget,
    chain_pem: &str,
    key_pem: &str,
    ca_pem: Option<&str>,
    now: UnixTime,
) -> Result<SecretInstalled, SecretInstallError> {
    let secret = target.display();
    let m = material(chain_pem, key_pem, ca_pem, now)
        .map_err(|e| SecretInstallError::Invalid { secret: secret.clone(), reason: e.to_string() })?;
    let client = client(target).await.map_err(|e| SecretInstallError::Connect { secret: secret.clone(), reason: e.to_string() })?;
    install_with(client, target, &m, now).await
}

async fn install_with(
    client: kube::Client,
    target: &SecretTarget,
    m: &Material,
    now: UnixTime,
) -> Result<SecretInstalled, SecretInstallError> {
    let secret = target.display();
    let api: Api<Secret> = Api::namespaced(client, &target.namespace);
    let fail = |verb: &'static str, e: kube::Error| match e {
        kube::Error::Api(s) if s.code == 403 => SecretInstallError::Forbidden { secret: secret.clone(), verb, message: s.message },
        kube::Error::Api(s) => {
            SecretInstallError::Api { secret: secret.clone(), verb, reason: format!("{} ({}): {}", s.reason, s.code, s.message) }
        }
        other => SecretInstallError::Connect { secret: secret.clone(), reason: access::describe(&other) },
    };
    let done = |s: Secret, created: bool, attempts: u32| SecretInstalled {
        serial: m.serial.clone(),
        not_after: m.not_after,
        namespace: target.namespace.clone(),
        name: target.name.clone(),
        resource_version: s.metadata.resource_version.unwrap_or_default(),
        created,
        attempts,
    };
    for attempt in 1..=MAX_ATTEMPTS {
        let current = api.get_opt(&target.name).await.map_err(|e| fail("get", e))?;
        match current {
            None => match api.create(&PostParams::default(), &desired(None, target, m, now)).await {
                Ok(s) => {
                    tracing::info!(secret = %secret, serial = %m.serial, "certificate installed in a new Secret");
                    return Ok(done(s, true, attempt));
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    tracing::info!(secret = %secret, attempt, "the Secret was created meanwhile: reading it again");
                }
                Err(e) => return Err(fail("create", e)),
            },
            Some(existing) => {
                let found = existing.type_.clone().unwrap_or_else(|| "Opaque".into());
                if found != TLS_TYPE {
                    return Err(SecretInstallError::WrongType { secret: secret.clone(), found });
                }
                // `desired` keeps the resourceVersion read: the replace is conditional on it.
                match api.replace(&target.name, &PostParams::default(), &desired(Some(existing), target, m, now)).await {
                    Ok(s) => {
                        tracing::info!(secret = %secret, serial = %m.serial, "certificate installed in the Secret");
                        return Ok(done(s, false, attempt));
                    }
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        tracing::info!(secret = %secret, attempt, "the Secret changed since it was read: reading it again");
                    }
                    Err(e) => return Err(fail("update", e)),
                }
            }
        }
    }
    tracing::warn!(secret = %secret, attempts = MAX_ATTEMPTS, "the Secret kept changing: certificate not installed");
    Err(SecretInstallError::Conflict { secret, attempts: MAX_ATTEMPTS })
}

/// The leaf currently in the Secret's `tls.crt`, if the Secret exists and holds one: what the
/// renewal decision compares against. A missing Secret is `Ok(None)`.
pub async fn current_leaf(target: &SecretTarget) -> Result<Option<CertFacts>, SecretInstallError> {
    let secret = target.display();
    let client = client(target).await.map_err(|e| SecretInstallError::Connect { secret: secret.clone(), reason: e.to_string() })?;
    let api: Api<Secret> = Api::namespaced(client, &target.namespace);
    let found = api.get_opt(&target.name).await.map_err(|e| match e {
        kube::Error::Api(s) if s.code == 403 => SecretInstallError::Forbidden { secret: secret.clone(), verb: "get", message: s.message },
        kube::Error::Api(s) => {
            SecretInstallError::Api { secret: secret.clone(), verb: "get", reason: format!("{} ({}): {}", s.reason, s.code, s.message) }
        }
        other => SecretInstallError::Connect { secret: secret.clone(), reason: access::describe(&other) },
    })?;
    let Some(crt) = found.and_then(|s| s.data).and_then(|mut d| d.remove("tls.crt")) else { return Ok(None) };
    let text = String::from_utf8_lossy(&crt.0);
    Ok(files::chain_ders(&text).ok().and_then(|ders| cert::parse_der(&ders[0]).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> SecretTarget {
        SecretTarget {
            kubeconfig: None,
            context: None,
            in_cluster: false,
            namespace: "web".into(),
            name: "site-tls".into(),
            timeout: std::time::Duration::from_secs(5),
        }
    }

    fn material() -> Material {
        Material { fullchain: "FULLCHAIN".into(), key: "KEY".into(), ca: None, serial: "0a".into(), not_after: 1_800_000_000 }
    }

    #[test]
    fn desired_keeps_metadata_and_other_keys_and_the_resource_version() {
        let mut existing = Secret::default();
        existing.metadata.name = Some("site-tls".into());
        existing.metadata.resource_version = Some("41".into());
        existing.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        existing.metadata.annotations = Some([("owner".to_string(), "team-a".to_string())].into());
        existing.type_ = Some(TLS_TYPE.into());
        existing.data = Some(
            [("tls.crt", "old"), ("ca.crt", "old-ca"), ("extra", "x")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.into())))
                .collect(),
        );
        let s = desired(Some(existing), &target(), &material(), 1_700_000_000);
        assert_eq!(s.metadata.resource_version.as_deref(), Some("41"));
        assert_eq!(s.metadata.labels.as_ref().and_then(|l| l.get("app")).map(String::as_str), Some("web"));
        let notes = s.metadata.annotations.unwrap_or_default();
        assert_eq!(notes.get("owner").map(String::as_str), Some("team-a"));
        assert_eq!(notes.get(ANNOTATION_SERIAL).map(String::as_str), Some("0a"));
        assert_eq!(notes.get(ANNOTATION_NOT_AFTER).map(String::as_str), Some("2027-01-15T08:00:00Z"));
        assert_eq!(notes.get(ANNOTATION_RENEWED_AT).map(String::as_str), Some("2023-11-14T22:13:20Z"));
        let data = s.data.unwrap_or_default();
        let get = |k: &str| data.get(k).map(|b| String::from_utf8_lossy(&b.0).into_owned());
        assert_eq!(get("tls.crt").as_deref(), Some("FULLCHAIN"));
        assert_eq!(get("tls.key").as_deref(), Some("KEY"));
        assert_eq!(get("ca.crt").as_deref(), Some("old-ca"), "no CA given: the existing one is kept");
        assert_eq!(get("extra").as_deref(), Some("x"));
    }

    #[test]
    fn a_new_secret_is_named_typed_and_unconditional() {
        let s = desired(None, &target(), &Material { ca: Some("CA".into()), ..material() }, 1_700_000_000);
        assert_eq!((s.metadata.namespace.as_deref(), s.metadata.name.as_deref()), (Some("web"), Some("site-tls")));
        assert_eq!(s.type_.as_deref(), Some(TLS_TYPE));
        assert!(s.metadata.resource_version.is_none());
        assert_eq!(s.data.unwrap_or_default().get("ca.crt").map(|b| b.0.clone()), Some(b"CA".to_vec()));
    }

    #[test]
    fn problems_name_their_fields() {
        assert!(target().problems().is_empty());
        let bad = SecretTarget {
            namespace: "Web".into(),
            name: "-x".into(),
            in_cluster: true,
            kubeconfig: Some("k".into()),
            context: Some("c".into()),
            ..target()
        };
        let fields: Vec<&str> = bad.problems().iter().map(|p| p.0).collect();
        assert_eq!(fields, ["namespace", "name", "kubeconfig", "context"]);
        assert!(SecretTarget { name: "a.b-c".into(), ..target() }.problems().is_empty());
    }
}
