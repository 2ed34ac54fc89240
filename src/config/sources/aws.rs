//! `kind: aws` — AWS Certificate Manager and Secrets Manager: the YAML type, its validation and
//! the validated spec. Credentials are never in this file: they come from the standard AWS
//! chain (environment, web identity, shared files, instance metadata) at scan time.

use super::super::{DurationSpec, PathedError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// An AWS account and region (ACM and Secrets Manager). Credentials come from the standard AWS
/// chain: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, then web identity
/// (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`), then `~/.aws/credentials` and
/// `~/.aws/config` (`AWS_PROFILE`, else `default`), then EC2 instance metadata (IMDSv2;
/// `AWS_EC2_METADATA_DISABLED=true` turns it off).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsSource {
    /// Unique name of this source (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Region, e.g. `eu-west-1`.
    pub region: String,
    /// Endpoint used for both ACM and Secrets Manager instead of the regional AWS endpoints
    /// (a VPC endpoint, or an emulator in tests). `https://`; `http://` only on a loopback address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Profile of the shared credentials/config files to use. When set, only those files are
    /// consulted (like the AWS CLI's `--profile`). Default: the standard chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Inventory the certificates of AWS Certificate Manager. Default: true.
    #[serde(default = "yes")]
    pub acm: bool,
    /// Inventory certificates kept in Secrets Manager (PEM in the secret string, in a field of a
    /// JSON secret, or DER/PKCS#12 in the secret binary). Off when absent; `{}` reads every secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_manager: Option<SecretsManagerConfig>,
    /// Timeout of one API request. Default: 10s.
    #[serde(default = "default_timeout")]
    pub timeout: DurationSpec,
    /// API requests in flight at once. Default: 4.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Labels attached to every certificate seen by this source.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Which secrets to read.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretsManagerConfig {
    /// Only secrets whose name starts with this, e.g. `certs/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
    /// Only secrets carrying every one of these tags (key: value; an empty value matches any value).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

fn default_timeout() -> DurationSpec {
    DurationSpec::Text("10s".into())
}

fn default_concurrency() -> usize {
    4
}

/// Validated secrets filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretsFilter {
    pub name_prefix: Option<String>,
    pub tags: Vec<(String, String)>,
}

/// Validated AWS source.
#[derive(Debug, Clone)]
pub struct AwsSpec {
    pub name: String,
    pub tags: Vec<String>,
    pub region: String,
    pub endpoint: Option<String>,
    pub profile: Option<String>,
    pub acm: bool,
    pub secrets_manager: Option<SecretsFilter>,
    pub timeout: Duration,
    pub concurrency: usize,
}

const MAX_CONCURRENCY: usize = 64;

fn region_ok(r: &str) -> bool {
    // Region names: lower-case letters, digits and dashes (us-east-1, us-gov-west-1, cn-north-1).
    !r.is_empty() && r.len() <= 32 && r.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') && r.contains('-')
}

fn check_endpoint(e: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(e).map_err(|err| format!("`{e}` is not a URL: {err}"))?;
    let host = url.host_str().ok_or_else(|| format!("`{e}` has no host"))?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "`{e}`: plain http would send signed requests and secret values in clear; use https (http is accepted on loopback only)"
            ));
        }
        s => return Err(format!("`{e}`: unsupported scheme `{s}` (https)")),
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{e}`: no credentials, query or fragment in the endpoint"));
    }
    Ok(())
}

/// Validates one entry; `at(field)` is the key path of a field for error messages.
pub fn validate(a: &AwsSource, _base: &std::path::Path, at: &dyn Fn(&str) -> Vec<String>, errs: &mut Vec<PathedError>) -> Option<AwsSpec> {
    let before = errs.len();
    if !region_ok(&a.region) {
        errs.push((at("region"), format!("`{}` is not a region name (example: eu-west-1)", a.region)));
    }
    if let Some(Err(m)) = a.endpoint.as_deref().map(check_endpoint) {
        errs.push((at("endpoint"), m));
    }
    if a.profile.as_deref().is_some_and(|p| p.trim().is_empty()) {
        errs.push((at("profile"), "must not be empty (leave it out to use the standard credential chain)".into()));
    }
    let timeout = super::timeout(&a.timeout, Duration::from_secs(300), at("timeout"), errs);
    if a.concurrency == 0 || a.concurrency > MAX_CONCURRENCY {
        errs.push((at("concurrency"), format!("must be between 1 and {MAX_CONCURRENCY}")));
    }
    let secrets_manager = a.secrets_manager.as_ref().map(|s| {
        let sm_at = |f: &str| {
            let mut p = at("secrets_manager");
            p.push(f.to_string());
            p
        };
        if s.name_prefix.as_deref().is_some_and(str::is_empty) {
            errs.push((sm_at("name_prefix"), "must not be empty (leave it out to read every secret)".into()));
        }
        for k in s.tags.keys() {
            if k.is_empty() {
                errs.push((sm_at("tags"), "a tag key must not be empty".into()));
            }
        }
        SecretsFilter { name_prefix: s.name_prefix.clone(), tags: s.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect() }
    });
    if !a.acm && secrets_manager.is_none() {
        errs.push((at("acm"), "the source reads nothing: enable acm or configure secrets_manager".into()));
    }
    if errs.len() > before {
        return None;
    }
    Some(AwsSpec {
        name: a.name.clone(),
        tags: a.tags.clone(),
        region: a.region.clone(),
        endpoint: a.endpoint.clone(),
        profile: a.profile.clone(),
        acm: a.acm,
        secrets_manager,
        timeout,
        concurrency: a.concurrency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> Result<AwsSpec, Vec<PathedError>> {
        let a: AwsSource = serde_saphyr::from_str(yaml).unwrap();
        let mut errs = Vec::new();
        let at = |f: &str| vec!["sources".to_string(), "0".to_string(), f.to_string()];
        validate(&a, std::path::Path::new("."), &at, &mut errs).ok_or(errs)
    }

    #[test]
    fn defaults() {
        let s = check("name: a\nregion: eu-west-1\n").unwrap();
        assert!(s.acm && s.secrets_manager.is_none() && s.endpoint.is_none() && s.profile.is_none());
        assert_eq!((s.timeout, s.concurrency), (Duration::from_secs(10), 4));
        let s = check("name: a\nregion: eu-west-1\nsecrets_manager: {name_prefix: certs/, tags: {team: web}}\n").unwrap();
        assert_eq!(
            s.secrets_manager,
            Some(SecretsFilter { name_prefix: Some("certs/".into()), tags: vec![("team".into(), "web".into())] })
        );
    }

    #[test]
    fn endpoints() {
        assert!(check("name: a\nregion: us-east-1\nendpoint: http://127.0.0.1:5000\n").is_ok());
        assert!(check("name: a\nregion: us-east-1\nendpoint: https://vpce-1.acm.us-east-1.vpce.amazonaws.com\n").is_ok());
        let errs = check("name: a\nregion: us-east-1\nendpoint: http://acm.example.com\n").unwrap_err();
        assert_eq!(errs[0].0, ["sources", "0", "endpoint"]);
        assert!(errs[0].1.contains("loopback"), "{errs:?}");
    }

    #[test]
    fn every_error_is_reported() {
        let errs = check("name: a\nregion: Mars\nprofile: ''\ntimeout: 0s\nconcurrency: 0\nacm: false\n").unwrap_err();
        let keys: Vec<&str> = errs.iter().map(|(p, _)| p[2].as_str()).collect();
        assert_eq!(keys, ["region", "profile", "timeout", "concurrency", "acm"], "{errs:?}");
    }
}
