//! `kind: kubernetes` — Secrets, ConfigMaps and webhook configurations of a Kubernetes cluster:
//! the YAML type, its validation and the validated spec. Credentials come from the kubeconfig
//! (or the pod's service account when running in a cluster) at scan time.

use super::super::{DurationSpec, PathedError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// A Kubernetes cluster. Reads Secrets of type `kubernetes.io/tls` (`tls.crt`, `ca.crt`),
/// other Secrets and ConfigMaps whose keys match the configured patterns, and the `caBundle`s of
/// validating and mutating webhook configurations. Needs `list` and `get` on what it reads.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSource {
    /// Unique name of this source (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Kubeconfig file. Default: `$KUBECONFIG`, else `~/.kube/config`, else the in-cluster
    /// service account when running in a pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// Context of the kubeconfig to use. Default: its current context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Namespaces to read. Empty (default): every namespace (or those `namespace_selector` selects).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Label selector of the namespaces to read, e.g. `team=web`. Combined with `namespaces`,
    /// a namespace must be named and selected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<String>,
    /// Patterns (`*` and `?`) of the keys of Secrets not of type `kubernetes.io/tls` that hold
    /// certificates. TLS secrets are always read for `tls.crt` and `ca.crt`.
    #[serde(default = "default_secret_keys")]
    pub secret_keys: Vec<String>,
    /// Patterns of the ConfigMap keys that hold certificates. Empty: ConfigMaps are not read.
    #[serde(default = "default_configmap_keys")]
    pub configmap_keys: Vec<String>,
    /// Read the `caBundle`s of validating and mutating webhook configurations (cluster-wide; needs
    /// `list` and `get` on them). Default: true when neither `namespaces` nor
    /// `namespace_selector` limits the source, else false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<bool>,
    /// Objects per list request (`limit`). Default: 500.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Timeout of one API request. Default: 30s.
    #[serde(default = "default_timeout")]
    pub timeout: DurationSpec,
    /// Labels attached to every certificate seen by this source.
    #[serde(default)]
    pub tags: Vec<String>,
}

fn default_secret_keys() -> Vec<String> {
    ["*.crt", "*.pem", "ca.crt", "tls.crt", "*.p12", "*.jks"].map(String::from).to_vec()
}

fn default_configmap_keys() -> Vec<String> {
    ["ca.crt", "ca-bundle.crt", "*.pem"].map(String::from).to_vec()
}

fn default_page_size() -> u32 {
    500
}

fn default_timeout() -> DurationSpec {
    DurationSpec::Text("30s".into())
}

/// Validated Kubernetes source.
#[derive(Debug, Clone)]
pub struct KubernetesSpec {
    pub name: String,
    pub tags: Vec<String>,
    /// Resolved against the configuration's directory.
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub namespaces: Vec<String>,
    pub namespace_selector: Option<String>,
    pub secret_keys: Vec<String>,
    pub configmap_keys: Vec<String>,
    pub webhooks: bool,
    pub page_size: u32,
    pub timeout: Duration,
}

const MAX_PAGE: u32 = 10_000;

/// A DNS-1123 label: what a namespace name is.
fn namespace_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 63
        && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !n.starts_with('-')
        && !n.ends_with('-')
}

/// Whether `key` matches `pattern` (`*`: any run of characters, `?`: one character).
pub fn key_matches(pattern: &str, key: &str) -> bool {
    fn go(p: &[char], k: &[char]) -> bool {
        match p.split_first() {
            None => k.is_empty(),
            Some(('*', rest)) => (0..=k.len()).any(|i| go(rest, &k[i..])),
            Some(('?', rest)) => !k.is_empty() && go(rest, &k[1..]),
            Some((c, rest)) => k.first() == Some(c) && go(rest, &k[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let k: Vec<char> = key.chars().collect();
    go(&p, &k)
}

/// Validates one entry; `at(field)` is the key path of a field for error messages.
pub fn validate(
    k: &KubernetesSource,
    base: &std::path::Path,
    at: &dyn Fn(&str) -> Vec<String>,
    errs: &mut Vec<PathedError>,
) -> Option<KubernetesSpec> {
    let before = errs.len();
    if k.kubeconfig.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
        errs.push((at("kubeconfig"), "must not be empty (leave it out for the default)".into()));
    }
    if k.context.as_deref().is_some_and(|c| c.trim().is_empty()) {
        errs.push((at("context"), "must not be empty (leave it out for the current context)".into()));
    }
    for n in &k.namespaces {
        if !namespace_ok(n) {
            errs.push((at("namespaces"), format!("`{n}` is not a namespace name (lower-case letters, digits and `-`)")));
        }
    }
    if k.namespace_selector.as_deref().is_some_and(|s| s.trim().is_empty()) {
        errs.push((at("namespace_selector"), "must not be empty (leave it out to read every namespace)".into()));
    }
    for (field, keys) in [("secret_keys", &k.secret_keys), ("configmap_keys", &k.configmap_keys)] {
        if keys.iter().any(|p| p.is_empty()) {
            errs.push((at(field), "a pattern must not be empty".into()));
        }
    }
    if k.page_size == 0 || k.page_size > MAX_PAGE {
        errs.push((at("page_size"), format!("must be between 1 and {MAX_PAGE}")));
    }
    let timeout = super::timeout(&k.timeout, Duration::from_secs(300), at("timeout"), errs);
    if errs.len() > before {
        return None;
    }
    let mut namespaces = k.namespaces.clone();
    namespaces.sort();
    namespaces.dedup();
    Some(KubernetesSpec {
        name: k.name.clone(),
        tags: k.tags.clone(),
        kubeconfig: k.kubeconfig.as_ref().map(|p| base.join(p)),
        context: k.context.clone(),
        namespaces,
        namespace_selector: k.namespace_selector.clone(),
        secret_keys: k.secret_keys.clone(),
        configmap_keys: k.configmap_keys.clone(),
        webhooks: k.webhooks.unwrap_or(k.namespaces.is_empty() && k.namespace_selector.is_none()),
        page_size: k.page_size,
        timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> Result<KubernetesSpec, Vec<PathedError>> {
        let k: KubernetesSource = serde_saphyr::from_str(yaml).unwrap();
        let mut errs = Vec::new();
        let at = |f: &str| vec!["sources".to_string(), "0".to_string(), f.to_string()];
        validate(&k, std::path::Path::new("/etc/certvigil"), &at, &mut errs).ok_or(errs)
    }

    #[test]
    fn defaults() {
        let s = check("name: k\n").unwrap();
        assert!(s.kubeconfig.is_none() && s.context.is_none() && s.namespaces.is_empty() && s.namespace_selector.is_none());
        assert_eq!((s.page_size, s.timeout), (500, Duration::from_secs(30)));
        assert_eq!(s.secret_keys, ["*.crt", "*.pem", "ca.crt", "tls.crt", "*.p12", "*.jks"]);
        assert_eq!(s.configmap_keys, ["ca.crt", "ca-bundle.crt", "*.pem"]);
        let s = check("name: k\nkubeconfig: kube.yaml\nnamespaces: [b, a, b]\n").unwrap();
        assert_eq!(s.kubeconfig, Some(PathBuf::from("/etc/certvigil/kube.yaml")));
        assert_eq!(s.namespaces, ["a", "b"]);
        assert!(!s.webhooks, "limited to namespaces: no cluster-wide reads by default");
        assert!(check("name: k\n").unwrap().webhooks);
        assert!(check("name: k\nnamespaces: [a]\nwebhooks: true\n").unwrap().webhooks);
    }

    #[test]
    fn every_error_is_reported() {
        let errs =
            check("name: k\ncontext: ''\nnamespaces: [Bad_NS]\nnamespace_selector: ' '\nsecret_keys: ['']\npage_size: 0\ntimeout: 0s\n")
                .unwrap_err();
        let keys: Vec<&str> = errs.iter().map(|(p, _)| p[2].as_str()).collect();
        assert_eq!(keys, ["context", "namespaces", "namespace_selector", "secret_keys", "page_size", "timeout"], "{errs:?}");
    }

    #[test]
    fn patterns() {
        assert!(key_matches("*.crt", "tls.crt") && key_matches("*.crt", ".crt") && key_matches("ca.crt", "ca.crt"));
        assert!(key_matches("cert-?.pem", "cert-1.pem") && !key_matches("cert-?.pem", "cert-10.pem"));
        assert!(!key_matches("*.crt", "tls.key") && !key_matches("ca.crt", "xca.crt"));
    }
}
