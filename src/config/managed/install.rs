//! `managed[].install`: where an issued certificate goes (files, PKCS#12, a Kubernetes Secret)
//! and the hooks that run after.

use super::*;

/// Install targets: files, a Kubernetes Secret, or both. Files: at least one of `cert`,
/// `fullchain`, `combined` or `pkcs12`, and `key`. With a Secret alone, no file is written.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallConfig {
    /// The leaf certificate alone.
    #[serde(default)]
    pub cert: Option<String>,
    /// The intermediates, without the leaf.
    #[serde(default)]
    pub chain: Option<String>,
    /// The leaf followed by the intermediates.
    #[serde(default)]
    pub fullchain: Option<String>,
    /// The private key (PKCS#8 PEM); always written with mode 0600. Required with any other
    /// file; leave it out only when `kubernetes_secret` is the sole target.
    #[serde(default)]
    pub key: Option<String>,
    /// The key followed by the full chain in one PEM file (as HAProxy reads it); mode 0600.
    #[serde(default)]
    pub combined: Option<String>,
    /// A PKCS#12 file with the key and the full chain (PBES2 AES-256-CBC, PBKDF2-HMAC-SHA256,
    /// SHA-256 MAC); mode 0600.
    #[serde(default)]
    pub pkcs12: Option<Pkcs12Config>,
    /// Mode of the certificate files, in octal (`0640` or `"0640"`).
    #[serde(default)]
    pub mode: Option<ModeSpec>,
    /// Owner of every installed file, by user name (needs root).
    #[serde(default)]
    pub owner: Option<String>,
    /// Group of every installed file, by group name.
    #[serde(default)]
    pub group: Option<String>,
    /// Run after all files are in place, in order. When one fails, every file is rolled back
    /// to its previous version.
    #[serde(default)]
    pub hooks: Vec<HookConfig>,
    /// A Secret of type `kubernetes.io/tls` (`tls.crt` the full chain, `tls.key` the key),
    /// written after the files, created when absent, replaced under its resourceVersion
    /// otherwise (labels, annotations and other keys kept). Needs `get`, `create` and `update`
    /// on `secrets` in its namespace.
    #[serde(default)]
    pub kubernetes_secret: Option<KubernetesSecretConfig>,
}

/// `install.kubernetes_secret`: where in which cluster the certificate goes.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSecretConfig {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub name: String,
    /// Kubeconfig file (relative paths are read from the configuration's directory). Default:
    /// `$KUBECONFIG`, else `~/.kube/config`.
    #[serde(default)]
    pub kubeconfig: Option<String>,
    /// Context of the kubeconfig. Default: its current context.
    #[serde(default)]
    pub context: Option<String>,
    /// Use the pod's service account instead of a kubeconfig (certvigil running in the cluster).
    #[serde(default)]
    pub in_cluster: bool,
    /// Time limit of each API request (default 30s, at most 5m).
    #[serde(default)]
    pub timeout: Option<DurationSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pkcs12Config {
    pub path: String,
    /// Password, as a secret reference: `${env:NAME}` or `${file:/path}`.
    pub password: String,
}

/// A post-install hook: `run: [argv…]` or `reload: UNIT` (`systemctl reload UNIT`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// Command and arguments (no shell). It sees CERTVIGIL_CERT,
    /// CERTVIGIL_CHAIN, CERTVIGIL_FULLCHAIN, CERTVIGIL_KEY, CERTVIGIL_COMBINED,
    /// CERTVIGIL_PKCS12 for the files configured.
    #[serde(default)]
    pub run: Option<Vec<String>>,
    /// A systemd unit to reload.
    #[serde(default)]
    pub reload: Option<String>,
    /// How long the hook may take (default 60s).
    #[serde(default)]
    pub timeout: Option<DurationSpec>,
}

/// A file mode, octal digits as a number (0640 read as 640) or as text.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ModeSpec {
    Number(u32),
    Text(String),
}

#[derive(Debug, Clone)]
pub struct Pkcs12Spec {
    pub path: PathBuf,
    pub password: SecretRef,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSpec {
    pub argv: Vec<String>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct InstallSpec {
    pub cert: Option<PathBuf>,
    pub chain: Option<PathBuf>,
    pub fullchain: Option<PathBuf>,
    /// Present whenever any other file is (validation requires it).
    pub key: Option<PathBuf>,
    pub combined: Option<PathBuf>,
    pub pkcs12: Option<Pkcs12Spec>,
    pub mode: u32,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub hooks: Vec<HookSpec>,
    pub kubernetes_secret: Option<SecretTarget>,
}

impl InstallSpec {
    /// The file whose first certificate is the installed leaf: the full chain, else the
    /// certificate, else the combined key and chain.
    pub fn leaf_file(&self) -> Option<&std::path::Path> {
        self.fullchain.as_deref().or(self.cert.as_deref()).or(self.combined.as_deref())
    }

    /// Whether any file is written (otherwise the Secret is the only target).
    pub fn has_files(&self) -> bool {
        self.key.is_some()
            || self.cert.is_some()
            || self.chain.is_some()
            || self.fullchain.is_some()
            || self.combined.is_some()
            || self.pkcs12.is_some()
    }
}

/// Default time limit of each Kubernetes API request of a Secret install.
pub const DEFAULT_SECRET_TIMEOUT: Duration = Duration::from_secs(30);

/// Default time limit of hook commands.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) fn parse_mode(m: &ModeSpec) -> Result<u32, String> {
    let text = match m {
        ModeSpec::Number(n) => n.to_string(),
        ModeSpec::Text(t) => t.trim().to_string(),
    };
    let digits = text.strip_prefix("0o").unwrap_or(&text);
    match u32::from_str_radix(digits, 8) {
        Ok(v) if v <= 0o777 => Ok(v),
        _ => Err(format!("`{text}` is not an octal file mode (example: 0640)")),
    }
}

pub(crate) fn argv_ok(argv: &[String]) -> Result<(), String> {
    match argv.first() {
        None => Err("needs at least the command".into()),
        Some(c) if c.trim().is_empty() => Err("the command must not be empty".into()),
        Some(_) => Ok(()),
    }
}

pub(crate) fn validate_hooks(hooks: &[HookConfig], at: &dyn Fn(&[&str]) -> Vec<String>, errs: &mut Vec<PathedError>) -> Vec<HookSpec> {
    let mut out = Vec::new();
    for (i, h) in hooks.iter().enumerate() {
        let idx = i.to_string();
        let here = |f: &str| at(&["install", "hooks", &idx, f]);
        let timeout = match opt_duration(&h.timeout) {
            Ok(Some(d)) if d.is_zero() => {
                errs.push((here("timeout"), "must be more than 0".into()));
                continue;
            }
            Ok(d) => d.unwrap_or(DEFAULT_HOOK_TIMEOUT),
            Err(e) => {
                errs.push((here("timeout"), e));
                continue;
            }
        };
        match (&h.run, &h.reload) {
            (Some(_), Some(_)) | (None, None) => errs.push((at(&["install", "hooks", &idx]), "give exactly one of run or reload".into())),
            (Some(argv), None) => match argv_ok(argv) {
                Ok(()) => out.push(HookSpec { argv: argv.clone(), timeout }),
                Err(e) => errs.push((here("run"), e)),
            },
            (None, Some(unit)) => {
                let unit = unit.trim();
                if unit.is_empty() || unit.starts_with('-') || !unit.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@:\\".contains(&b)) {
                    errs.push((here("reload"), format!("`{unit}` is not a systemd unit name")));
                } else {
                    out.push(HookSpec { argv: vec!["systemctl".into(), "reload".into(), unit.to_string()], timeout });
                }
            }
        }
    }
    out
}

/// `install.kubernetes_secret`, with the target's own checks ([`SecretTarget::problems`])
/// reported under its key path.
///
/// [`SecretTarget::problems`]: SecretTarget::problems
pub(crate) fn validate_secret(
    k: Option<&KubernetesSecretConfig>,
    base: &Path,
    at: &dyn Fn(&[&str]) -> Vec<String>,
    errs: &mut Vec<PathedError>,
) -> Option<SecretTarget> {
    let k = k?;
    let here = |f: &str| at(&["install", "kubernetes_secret", f]);
    let timeout = match opt_duration(&k.timeout) {
        Ok(None) => DEFAULT_SECRET_TIMEOUT,
        Ok(Some(d)) if d >= Duration::from_millis(100) && d <= Duration::from_secs(300) => d,
        Ok(Some(_)) => {
            errs.push((here("timeout"), "must be between 100ms and 5m".into()));
            DEFAULT_SECRET_TIMEOUT
        }
        Err(e) => {
            errs.push((here("timeout"), e));
            DEFAULT_SECRET_TIMEOUT
        }
    };
    let target = SecretTarget {
        // An empty path stays empty so that `problems` names it.
        kubeconfig: k.kubeconfig.as_deref().map(|p| if p.trim().is_empty() { PathBuf::new() } else { base.join(p.trim()) }),
        context: k.context.clone(),
        in_cluster: k.in_cluster,
        namespace: k.namespace.trim().to_string(),
        name: k.name.trim().to_string(),
        timeout,
    };
    let problems = target.problems();
    let ok = problems.is_empty();
    for (field, msg) in problems {
        errs.push((here(field), msg));
    }
    ok.then_some(target)
}

/// Where a certificate goes: a Secret of a cluster reached through a kubeconfig or, in a pod,
/// through its service account.
#[derive(Debug, Clone)]
pub struct SecretTarget {
    /// Kubeconfig file; `None`: `$KUBECONFIG`, else `~/.kube/config` (ignored with `in_cluster`).
    pub kubeconfig: Option<PathBuf>,
    /// Context of the kubeconfig; `None`: its current context.
    pub context: Option<String>,
    /// Use the pod's service account (token and CA under
    /// `/var/run/secrets/kubernetes.io/serviceaccount`) instead of a kubeconfig.
    pub in_cluster: bool,
    pub namespace: String,
    pub name: String,
    /// Timeout of each API request.
    pub timeout: Duration,
}

impl SecretTarget {
    /// `namespace/name`, as messages name the Secret.
    pub fn display(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Every problem of the target, as (field, message): for configuration validation, which
    /// prefixes the field with its key path.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !dns_label(&self.namespace) {
            out.push(("namespace", format!("`{}` is not a namespace name (lower-case letters, digits and `-`)", self.namespace)));
        }
        if !dns_subdomain(&self.name) {
            out.push(("name", format!("`{}` is not a Secret name (lower-case letters, digits, `-` and `.`)", self.name)));
        }
        if self.in_cluster && self.kubeconfig.is_some() {
            out.push(("kubeconfig", "cannot be combined with `in_cluster: true`".into()));
        }
        if self.in_cluster && self.context.is_some() {
            out.push(("context", "cannot be combined with `in_cluster: true`".into()));
        }
        if self.kubeconfig.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            out.push(("kubeconfig", "must not be empty (leave it out for the default)".into()));
        }
        if self.context.as_deref().is_some_and(|c| c.trim().is_empty()) {
            out.push(("context", "must not be empty (leave it out for the current context)".into()));
        }
        out
    }
}

pub(crate) fn dns_label(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 63
        && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !n.starts_with('-')
        && !n.ends_with('-')
}

pub(crate) fn dns_subdomain(n: &str) -> bool {
    n.len() <= 253 && n.split('.').all(dns_label)
}
