//! `kind: kubernetes` — Secrets, ConfigMaps and webhook configurations of a Kubernetes cluster:
//! the YAML type, its validation and the validated spec. Credentials come from the kubeconfig
//! or the pod's service account (`in_cluster`) at scan time (`sources/kubernetes/access.rs`).

use super::super::secret::SecretRef;
use super::super::{DurationSpec, PathedError};
use crate::model::finding::Severity;
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
    /// Context of the kubeconfig to use. Default: its current context. A context the
    /// kubeconfig does not have makes the source unavailable, naming the contexts it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// `true`: use the pod's service account (token and CA under
    /// `/var/run/secrets/kubernetes.io/serviceaccount`, `KUBERNETES_SERVICE_HOST`) and never a
    /// kubeconfig; cannot be combined with `kubeconfig` or `context`. `false`: use the kubeconfig
    /// only, never the service account. Default (unset): the kubeconfig, else the service account
    /// when there is no kubeconfig at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_cluster: Option<bool>,
    /// Accept a kubeconfig context whose cluster sets `insecure-skip-tls-verify: true`: the API
    /// server's certificate is then not checked and anyone on the path can read the credentials
    /// and forge answers. Refused by default; when allowed, every connection logs a warning.
    #[serde(default)]
    pub allow_insecure_skip_tls_verify: bool,
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
    /// Read the `spec.caBundle` of `apiregistration.k8s.io/v1` APIServices (cluster-wide; needs
    /// `list` and `get` on them). Default: true when neither `namespaces` nor `namespace_selector`
    /// limits the source, else false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_services: Option<bool>,
    /// Read the conversion-webhook `caBundle` of CustomResourceDefinitions (cluster-wide; needs
    /// `list` and `get` on them). Default: true when neither `namespaces` nor `namespace_selector`
    /// limits the source, else false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crd_conversion: Option<bool>,
    /// Read cert-manager `Certificate` resources (`cert-manager.io/v1`) when cert-manager is
    /// installed: their desired names, Secret, renewal time and Ready condition are recorded with
    /// the Secret they produce, and a Certificate that is not Ready is a finding
    /// (`cert-manager-not-ready`). Default: true.
    #[serde(default = "yes")]
    pub cert_manager: bool,
    /// Patterns of the Secret and ConfigMap keys that hold signing public keys (PEM `PUBLIC KEY`,
    /// e.g. cosign's), recorded as public keys. Empty: none are read.
    #[serde(default = "default_public_key_keys")]
    pub public_key_keys: Vec<String>,
    /// Patterns of the Secret and ConfigMap keys that hold a TUF `root.json` (Sigstore trust
    /// root): its `expires` is tracked like a certificate's expiry. Empty: none are read.
    #[serde(default = "default_trust_root_keys")]
    pub trust_root_keys: Vec<String>,
    /// Keys of a Secret whose value is the password of a PKCS#12 or JKS keystore held in another
    /// key of the same Secret. Tried before `passwords`.
    #[serde(default = "default_password_keys")]
    pub password_keys: Vec<String>,
    /// Passwords to try on PKCS#12 and JKS keystores (`${env:X}`, `${file:/path}` or literal).
    /// The empty password is always tried.
    #[serde(default)]
    pub passwords: Vec<String>,
    /// Audit the images of Deployments, StatefulSets, DaemonSets, Jobs, CronJobs and bare Pods:
    /// every image referenced by a mutable tag instead of a digest is reported
    /// (`certvigil audit images`). Needs `list` on them. Default: true.
    #[serde(default = "yes")]
    pub image_audit: bool,
    /// Severity of an image referenced by a tag other than `latest`. Default: warning.
    #[serde(default = "default_severity")]
    pub image_tag_severity: String,
    /// Severity of an image referenced by `:latest` or by no tag at all. Default: warning.
    #[serde(default = "default_severity")]
    pub image_latest_severity: String,
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

fn yes() -> bool {
    true
}

fn default_public_key_keys() -> Vec<String> {
    ["cosign.pub", "*.pub"].map(String::from).to_vec()
}

fn default_trust_root_keys() -> Vec<String> {
    vec!["root.json".into()]
}

fn default_password_keys() -> Vec<String> {
    ["password", "keystore-password", "truststore-password"].map(String::from).to_vec()
}

fn default_severity() -> String {
    "warning".into()
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
    pub in_cluster: Option<bool>,
    pub allow_insecure_skip_tls_verify: bool,
    pub namespaces: Vec<String>,
    pub namespace_selector: Option<String>,
    pub secret_keys: Vec<String>,
    pub configmap_keys: Vec<String>,
    pub webhooks: bool,
    pub api_services: bool,
    pub crd_conversion: bool,
    pub cert_manager: bool,
    pub public_key_keys: Vec<String>,
    pub trust_root_keys: Vec<String>,
    pub password_keys: Vec<String>,
    pub passwords: Vec<SecretRef>,
    pub image_audit: bool,
    pub image_tag_severity: Severity,
    pub image_latest_severity: Severity,
    pub page_size: u32,
    pub timeout: Duration,
}

/// Where the credentials come from and how long a request may take.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Kubeconfig file; `None`: `$KUBECONFIG`, else `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// Context of the kubeconfig; `None`: its current context.
    pub context: Option<String>,
    /// `Some(true)`: service account only; `Some(false)`: kubeconfig only; `None`: the
    /// kubeconfig, else the service account when there is no kubeconfig at all.
    pub in_cluster: Option<bool>,
    /// Accept a context with `insecure-skip-tls-verify: true` (warned about at each connection).
    pub allow_insecure_skip_tls_verify: bool,
    /// Connect, read and write timeout of each request.
    pub timeout: Duration,
}

impl KubernetesSpec {
    /// How the source reaches its cluster.
    pub fn access(&self) -> Access {
        Access {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            in_cluster: self.in_cluster,
            allow_insecure_skip_tls_verify: self.allow_insecure_skip_tls_verify,
            timeout: self.timeout,
        }
    }
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
    if k.in_cluster == Some(true) {
        if k.kubeconfig.is_some() {
            errs.push((at("kubeconfig"), "cannot be combined with `in_cluster: true`".into()));
        }
        if k.context.is_some() {
            errs.push((at("context"), "cannot be combined with `in_cluster: true`".into()));
        }
        if k.allow_insecure_skip_tls_verify {
            errs.push((
                at("allow_insecure_skip_tls_verify"),
                "has no effect with `in_cluster: true` (the service account's CA is always checked)".into(),
            ));
        }
    }
    for n in &k.namespaces {
        if !namespace_ok(n) {
            errs.push((at("namespaces"), format!("`{n}` is not a namespace name (lower-case letters, digits and `-`)")));
        }
    }
    if k.namespace_selector.as_deref().is_some_and(|s| s.trim().is_empty()) {
        errs.push((at("namespace_selector"), "must not be empty (leave it out to read every namespace)".into()));
    }
    for (field, keys) in [
        ("secret_keys", &k.secret_keys),
        ("configmap_keys", &k.configmap_keys),
        ("public_key_keys", &k.public_key_keys),
        ("trust_root_keys", &k.trust_root_keys),
        ("password_keys", &k.password_keys),
    ] {
        if keys.iter().any(|p| p.is_empty()) {
            errs.push((at(field), "a pattern must not be empty".into()));
        }
    }
    if k.page_size == 0 || k.page_size > MAX_PAGE {
        errs.push((at("page_size"), format!("must be between 1 and {MAX_PAGE}")));
    }
    let mut passwords = Vec::new();
    for (j, p) in k.passwords.iter().enumerate() {
        match SecretRef::parse(p) {
            Ok(r) => passwords.push(r),
            Err(m) => {
                let mut path = at("passwords");
                path.push(j.to_string());
                errs.push((path, m));
            }
        }
    }
    let mut severity = |field: &str, text: &str| {
        Severity::parse(text).unwrap_or_else(|| {
            errs.push((at(field), format!("`{text}` is not a severity (info, warning, critical)")));
            Severity::Warning
        })
    };
    let image_tag_severity = severity("image_tag_severity", &k.image_tag_severity);
    let image_latest_severity = severity("image_latest_severity", &k.image_latest_severity);
    let timeout = super::timeout(&k.timeout, Duration::from_secs(300), at("timeout"), errs);
    if errs.len() > before {
        return None;
    }
    let cluster_wide = k.namespaces.is_empty() && k.namespace_selector.is_none();
    let mut namespaces = k.namespaces.clone();
    namespaces.sort();
    namespaces.dedup();
    Some(KubernetesSpec {
        name: k.name.clone(),
        tags: k.tags.clone(),
        kubeconfig: k.kubeconfig.as_ref().map(|p| base.join(p)),
        context: k.context.clone(),
        in_cluster: k.in_cluster,
        allow_insecure_skip_tls_verify: k.allow_insecure_skip_tls_verify,
        namespaces,
        namespace_selector: k.namespace_selector.clone(),
        secret_keys: k.secret_keys.clone(),
        configmap_keys: k.configmap_keys.clone(),
        webhooks: k.webhooks.unwrap_or(cluster_wide),
        api_services: k.api_services.unwrap_or(cluster_wide),
        crd_conversion: k.crd_conversion.unwrap_or(cluster_wide),
        cert_manager: k.cert_manager,
        public_key_keys: k.public_key_keys.clone(),
        trust_root_keys: k.trust_root_keys.clone(),
        password_keys: k.password_keys.clone(),
        passwords,
        image_audit: k.image_audit,
        image_tag_severity,
        image_latest_severity,
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
        let s = check("name: k\nnamespaces: [a]\nwebhooks: true\n").unwrap();
        assert!(!s.api_services && !s.crd_conversion, "limited to namespaces: no cluster-wide reads by default");
        assert!(check("name: k\nnamespaces: [a]\napi_services: true\n").unwrap().api_services);
        let s = check("name: k\n").unwrap();
        assert!(s.api_services && s.crd_conversion && s.cert_manager && s.image_audit);
        assert_eq!((s.image_tag_severity, s.image_latest_severity), (Severity::Warning, Severity::Warning));
        assert_eq!(s.password_keys, ["password", "keystore-password", "truststore-password"]);
        assert_eq!(
            (s.public_key_keys.as_slice(), s.trust_root_keys.as_slice()),
            (&["cosign.pub".to_string(), "*.pub".into()][..], &["root.json".to_string()][..])
        );
        let s = check("name: k\ncrd_conversion: false\nimage_latest_severity: critical\n").unwrap();
        assert!(!s.crd_conversion && s.api_services && s.image_latest_severity == Severity::Critical);
    }

    #[test]
    fn every_error_is_reported() {
        let errs =
            check("name: k\ncontext: ''\nnamespaces: [Bad_NS]\nnamespace_selector: ' '\nsecret_keys: ['']\npage_size: 0\ntimeout: 0s\nimage_tag_severity: loud\n")
                .unwrap_err();
        let keys: Vec<&str> = errs.iter().map(|(p, _)| p[2].as_str()).collect();
        assert_eq!(
            keys,
            ["context", "namespaces", "namespace_selector", "secret_keys", "page_size", "image_tag_severity", "timeout"],
            "{errs:?}"
        );
    }

    #[test]
    fn in_cluster_excludes_the_kubeconfig_settings() {
        let s = check("name: k\nin_cluster: true\n").unwrap();
        assert_eq!((s.in_cluster, s.allow_insecure_skip_tls_verify), (Some(true), false));
        let a = s.access();
        assert_eq!((a.in_cluster, a.kubeconfig, a.timeout), (Some(true), None, Duration::from_secs(30)));
        assert_eq!(check("name: k\n").unwrap().in_cluster, None);
        let s = check("name: k\nin_cluster: false\nkubeconfig: k.yaml\ncontext: a\nallow_insecure_skip_tls_verify: true\n").unwrap();
        assert_eq!((s.in_cluster, s.allow_insecure_skip_tls_verify), (Some(false), true));
        let errs = check("name: k\nin_cluster: true\nkubeconfig: k.yaml\ncontext: a\nallow_insecure_skip_tls_verify: true\n").unwrap_err();
        let keys: Vec<&str> = errs.iter().map(|(p, _)| p[2].as_str()).collect();
        assert_eq!(keys, ["kubeconfig", "context", "allow_insecure_skip_tls_verify"], "{errs:?}");
        assert!(errs[0].1.contains("in_cluster: true"), "{errs:?}");
    }

    #[test]
    fn patterns() {
        assert!(key_matches("*.crt", "tls.crt") && key_matches("*.crt", ".crt") && key_matches("ca.crt", "ca.crt"));
        assert!(key_matches("cert-?.pem", "cert-1.pem") && !key_matches("cert-?.pem", "cert-10.pem"));
        assert!(!key_matches("*.crt", "tls.key") && !key_matches("ca.crt", "xca.crt"));
    }
}
