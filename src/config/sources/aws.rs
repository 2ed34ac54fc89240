//! `kind: aws` — AWS Certificate Manager and Secrets Manager.

use super::super::PathedError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An AWS account and region (ACM and Secrets Manager).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsSource {
    /// Unique name of this source (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Region, e.g. `eu-west-1`.
    pub region: String,
    /// Labels attached to every certificate seen by this source.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Validated AWS source.
#[derive(Debug, Clone)]
pub struct AwsSpec {
    pub name: String,
    pub tags: Vec<String>,
    pub region: String,
}

pub fn validate(a: &AwsSource, _base: &std::path::Path, at: &dyn Fn(&str) -> Vec<String>, errs: &mut Vec<PathedError>) -> Option<AwsSpec> {
    if a.region.is_empty() {
        errs.push((at("region"), "must not be empty".into()));
        return None;
    }
    Some(AwsSpec { name: a.name.clone(), tags: a.tags.clone(), region: a.region.clone() })
}
