//! `kind: pkcs11` — a PKCS#11 token (an HSM, SoftHSM2).

use super::super::PathedError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A PKCS#11 token.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Source {
    /// Unique name of this source (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// The PKCS#11 module (shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: String,
    /// Labels attached to every certificate seen by this source.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Validated PKCS#11 source.
#[derive(Debug, Clone)]
pub struct Pkcs11Spec {
    pub name: String,
    pub tags: Vec<String>,
    pub module: std::path::PathBuf,
}

pub fn validate(
    p: &Pkcs11Source,
    base: &std::path::Path,
    at: &dyn Fn(&str) -> Vec<String>,
    errs: &mut Vec<PathedError>,
) -> Option<Pkcs11Spec> {
    if p.module.is_empty() {
        errs.push((at("module"), "must not be empty".into()));
        return None;
    }
    Some(Pkcs11Spec { name: p.name.clone(), tags: p.tags.clone(), module: base.join(&p.module) })
}
