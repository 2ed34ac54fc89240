//! `kind: tls` — TLS endpoints: the chain a server presents.

use super::super::PathedError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// TLS endpoints to connect to.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsSource {
    /// Unique name of this source (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// `host:port` lines.
    pub targets: Vec<String>,
    /// Labels attached to every certificate seen by this source.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Validated TLS source.
#[derive(Debug, Clone)]
pub struct TlsSpec {
    pub name: String,
    pub tags: Vec<String>,
    pub targets: Vec<String>,
}

pub fn validate(t: &TlsSource, _base: &std::path::Path, at: &dyn Fn(&str) -> Vec<String>, errs: &mut Vec<PathedError>) -> Option<TlsSpec> {
    if t.targets.is_empty() {
        errs.push((at("targets"), "at least one target is required".into()));
        return None;
    }
    Some(TlsSpec { name: t.name.clone(), tags: t.tags.clone(), targets: t.targets.clone() })
}
