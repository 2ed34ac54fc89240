//! `kind: vault` — OpenBao / HashiCorp Vault: PKI mounts and KV v2 mounts.

use super::super::{DurationSpec, PathedError, secret::SecretRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An OpenBao or Vault server (same HTTP API).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VaultSource {
    /// Unique name of this source (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Server address, e.g. `https://vault.example.com:8200`.
    pub address: String,
    /// Labels attached to every certificate seen by this source.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Validated vault source.
#[derive(Debug, Clone)]
pub struct VaultSpec {
    pub name: String,
    pub tags: Vec<String>,
    pub address: String,
}

/// Validates one entry; `at(field)` is the key path of a field for error messages.
pub fn validate(
    v: &VaultSource,
    _base: &std::path::Path,
    at: &dyn Fn(&str) -> Vec<String>,
    errs: &mut Vec<PathedError>,
) -> Option<VaultSpec> {
    let _ = (&DurationSpec::Seconds(0), std::marker::PhantomData::<SecretRef>);
    if v.address.is_empty() {
        errs.push((at("address"), "must not be empty".into()));
        return None;
    }
    Some(VaultSpec { name: v.name.clone(), tags: v.tags.clone(), address: v.address.clone() })
}
