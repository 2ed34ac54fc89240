//! `kind: vault` — OpenBao / HashiCorp Vault (same HTTP API): PKI mounts and KV v2 mounts.
//!
//! Everything is checked here, purely: the address is an http(s) URL (plain http only to a
//! loopback host unless `allow_insecure_http` says otherwise), secrets are `${env:…}` or
//! `${file:…}` references and never inline, mounts and KV prefixes are paths Vault accepts.

use super::super::{DurationSpec, PathedError, secret::SecretRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// An OpenBao or Vault server.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VaultSource {
    /// Unique name of this source (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Server address, e.g. `https://vault.example.com:8200`. Plain `http://` only to a loopback
    /// address unless `allow_insecure_http` is set.
    pub address: String,
    /// Enterprise / OpenBao namespace, sent as `X-Vault-Namespace` (e.g. `team-a`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// PEM file of CA certificates trusted for the server's TLS certificate, instead of the
    /// system's trust store. Relative paths are relative to this configuration file.
    #[serde(default)]
    pub ca_bundle: Option<String>,
    /// Allow `http://` to a non-loopback address: tokens and secrets then cross the network in
    /// clear text.
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Per-request timeout (connect, send and read the whole answer).
    #[serde(default = "default_timeout")]
    pub timeout: DurationSpec,
    /// Requests in flight at once against the server.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 256))]
    pub concurrency: u32,
    /// Keys asked for per page of a LIST (OpenBao pages PKI and KV listings with `after` and
    /// `limit`; a server that does not returns everything at once).
    #[serde(default = "default_page_size")]
    #[schemars(range(min = 1, max = 100000))]
    pub page_size: u32,
    /// How certvigil logs in.
    pub auth: VaultAuth,
    /// PKI secrets engines whose issued certificates and issuers are inventoried (e.g. `pki`,
    /// `pki_int`).
    #[serde(default)]
    pub pki_mounts: Vec<String>,
    /// KV version 2 secrets engines walked for secrets holding PEM certificates.
    #[serde(default)]
    pub kv_mounts: Vec<KvMount>,
    /// Labels attached to every certificate seen by this source.
    #[serde(default)]
    pub tags: Vec<String>,
}

fn default_timeout() -> DurationSpec {
    DurationSpec::Text("10s".into())
}

fn default_concurrency() -> u32 {
    8
}

fn default_page_size() -> u32 {
    1000
}

/// The login method.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum VaultAuth {
    /// A token given as a secret reference (renewed when renewable).
    Token(TokenAuth),
    /// AppRole login (`POST /v1/auth/<mount>/login`).
    Approle(AppRoleAuth),
    /// Kubernetes service-account login (`POST /v1/auth/<mount>/login`).
    Kubernetes(KubernetesAuth),
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenAuth {
    /// `${env:NAME}` or `${file:/path}`.
    pub token: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppRoleAuth {
    /// The role ID: written as is, or a secret reference.
    pub role_id: String,
    /// `${env:NAME}` or `${file:/path}`.
    pub secret_id: String,
    /// Where the AppRole auth method is mounted.
    #[serde(default = "default_approle_mount")]
    pub mount: String,
}

fn default_approle_mount() -> String {
    "approle".into()
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesAuth {
    /// The Vault role bound to this service account.
    pub role: String,
    /// The service-account token file, read at each login (it is rotated by the kubelet).
    #[serde(default = "default_jwt_path")]
    pub jwt_path: String,
    /// Where the Kubernetes auth method is mounted.
    #[serde(default = "default_kubernetes_mount")]
    pub mount: String,
}

fn default_jwt_path() -> String {
    "/var/run/secrets/kubernetes.io/serviceaccount/token".into()
}

fn default_kubernetes_mount() -> String {
    "kubernetes".into()
}

/// A KV version 2 mount and the part of it to walk.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KvMount {
    /// The mount path (e.g. `secret`).
    pub mount: String,
    /// The folder walked recursively (e.g. `certs/`); empty: the whole mount.
    #[serde(default)]
    pub prefix: String,
    /// Only these fields of each secret; a named field that holds no PEM certificate is an
    /// error. Empty: every field whose value holds a PEM certificate (others are skipped).
    #[serde(default)]
    pub fields: Vec<String>,
}

/// A value that may be written as is or given as a secret reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Plain(String),
    Secret(SecretRef),
}

/// Validated login method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthSpec {
    Token { token: SecretRef },
    AppRole { role_id: Value, secret_id: SecretRef, mount: String },
    Kubernetes { role: String, jwt_path: PathBuf, mount: String },
}

impl AuthSpec {
    /// The method's name as configured (`token`, `approle`, `kubernetes`).
    pub fn method(&self) -> &'static str {
        match self {
            AuthSpec::Token { .. } => "token",
            AuthSpec::AppRole { .. } => "approle",
            AuthSpec::Kubernetes { .. } => "kubernetes",
        }
    }
}

/// A validated KV mount: `prefix` is empty or ends with `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvSpec {
    pub mount: String,
    pub prefix: String,
    pub fields: Vec<String>,
}

/// Validated vault source.
#[derive(Debug, Clone)]
pub struct VaultSpec {
    pub name: String,
    pub tags: Vec<String>,
    /// Scheme, host and port, without a trailing slash (`https://vault.example.com:8200`).
    pub address: String,
    pub namespace: Option<String>,
    pub ca_bundle: Option<PathBuf>,
    pub timeout: Duration,
    pub concurrency: usize,
    pub page_size: usize,
    pub auth: AuthSpec,
    pub pki_mounts: Vec<String>,
    pub kv_mounts: Vec<KvSpec>,
}

/// A mount or auth mount path: `a`, `team/pki`; no empty, `.` or `..` segment.
fn mount_path(raw: &str) -> Result<String, String> {
    let m = raw.trim_matches('/');
    if m.is_empty() {
        return Err("empty mount path".into());
    }
    if m.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(format!("`{raw}` is not a mount path (segments separated by single `/`, no `.` or `..`)"));
    }
    if !m.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b)) {
        return Err(format!("`{raw}` is not a mount path (letters, digits, `-`, `_`, `.` and `/`)"));
    }
    Ok(m.to_string())
}

/// A KV folder: empty or `a/b/`. Written without the trailing slash it is taken as a folder.
fn kv_prefix(raw: &str) -> Result<String, String> {
    if raw.is_empty() || raw == "/" {
        return Ok(String::new());
    }
    if raw.starts_with('/') {
        return Err(format!("`{raw}`: a prefix is relative to the mount (no leading `/`)"));
    }
    let p = raw.trim_end_matches('/');
    if p.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(format!("`{raw}` is not a folder path (segments separated by single `/`, no `.` or `..`)"));
    }
    if p.chars().any(|c| c.is_control()) {
        return Err("a prefix cannot hold control characters".into());
    }
    Ok(format!("{p}/"))
}

/// The address as `scheme://host[:port]`; `http` only to loopback unless allowed.
fn address(raw: &str, allow_insecure_http: bool) -> Result<String, String> {
    let url =
        reqwest::Url::parse(raw.trim()).map_err(|e| format!("`{raw}` is not a URL: {e} (example: https://vault.example.com:8200)"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{raw}`: only http and https addresses"));
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else { return Err(format!("`{raw}` has no host")) };
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the address cannot hold credentials: configure them under `auth`".into());
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{raw}`: give the server's address only (scheme, host and port), without a path"));
    }
    if url.scheme() == "http" && !allow_insecure_http {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = bare.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(format!(
                "`{raw}` is plain http to a non-loopback host: tokens would cross the network in clear text; use https, or set allow_insecure_http: true"
            ));
        }
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Validates one entry; `at(field)` is the key path of a field for error messages.
pub fn validate(v: &VaultSource, base: &Path, at: &dyn Fn(&str) -> Vec<String>, errs: &mut Vec<PathedError>) -> Option<VaultSpec> {
    let before = errs.len();
    let sub = |parts: &[&str]| {
        let mut p = at(parts[0]);
        p.extend(parts[1..].iter().map(|s| s.to_string()));
        p
    };
    let addr = address(&v.address, v.allow_insecure_http).map_err(|m| errs.push((at("address"), m))).ok();
    if let Some(ns) = &v.namespace {
        let n = ns.trim_matches('/');
        if n.is_empty()
            || n.split('/').any(|s| s.is_empty() || s == "." || s == "..")
            || n.bytes().any(|b| b.is_ascii_control() || b == b' ')
        {
            errs.push((at("namespace"), format!("`{ns}` is not a namespace path (e.g. `team-a` or `parent/child`)")));
        }
    }
    if v.ca_bundle.as_deref().is_some_and(str::is_empty) {
        errs.push((at("ca_bundle"), "empty path".into()));
    } else if v.ca_bundle.is_some() && addr.as_deref().is_some_and(|a| a.starts_with("http://")) {
        errs.push((at("ca_bundle"), "a CA bundle needs an https address".into()));
    }
    let timeout = super::timeout(&v.timeout, Duration::from_secs(600), at("timeout"), errs);
    if v.concurrency == 0 || v.concurrency > 256 {
        errs.push((at("concurrency"), "must be between 1 and 256".into()));
    }
    if v.page_size == 0 || v.page_size > 100_000 {
        errs.push((at("page_size"), "must be between 1 and 100000".into()));
    }
    let secret =
        |field: &[&str], raw: &str, errs: &mut Vec<PathedError>| SecretRef::parse(raw).map_err(|m| errs.push((sub(field), m))).ok();
    let auth = match &v.auth {
        VaultAuth::Token(t) => secret(&["auth", "token"], &t.token, errs).map(|token| AuthSpec::Token { token }),
        VaultAuth::Approle(a) => {
            let role_id = if a.role_id.trim().is_empty() {
                errs.push((sub(&["auth", "role_id"]), "must not be empty".into()));
                None
            } else if a.role_id.starts_with("${") {
                secret(&["auth", "role_id"], &a.role_id, errs).map(Value::Secret)
            } else {
                Some(Value::Plain(a.role_id.clone()))
            };
            let secret_id = secret(&["auth", "secret_id"], &a.secret_id, errs);
            let mount = mount_path(&a.mount).map_err(|m| errs.push((sub(&["auth", "mount"]), m))).ok();
            match (role_id, secret_id, mount) {
                (Some(role_id), Some(secret_id), Some(mount)) => Some(AuthSpec::AppRole { role_id, secret_id, mount }),
                _ => None,
            }
        }
        VaultAuth::Kubernetes(k) => {
            if k.role.trim().is_empty() {
                errs.push((sub(&["auth", "role"]), "must not be empty".into()));
            }
            if k.jwt_path.is_empty() {
                errs.push((sub(&["auth", "jwt_path"]), "empty path".into()));
            }
            let mount = mount_path(&k.mount).map_err(|m| errs.push((sub(&["auth", "mount"]), m))).ok();
            mount.map(|mount| AuthSpec::Kubernetes { role: k.role.clone(), jwt_path: base.join(&k.jwt_path), mount })
        }
    };
    if v.pki_mounts.is_empty() && v.kv_mounts.is_empty() {
        errs.push((at("pki_mounts"), "give at least one PKI mount (pki_mounts) or KV mount (kv_mounts)".into()));
    }
    let mut pki_mounts: Vec<String> = Vec::new();
    for (i, m) in v.pki_mounts.iter().enumerate() {
        match mount_path(m) {
            Ok(m) if pki_mounts.contains(&m) => errs.push((sub(&["pki_mounts", &i.to_string()]), format!("mount `{m}` is listed twice"))),
            Ok(m) => pki_mounts.push(m),
            Err(e) => errs.push((sub(&["pki_mounts", &i.to_string()]), e)),
        }
    }
    let mut kv_mounts: Vec<KvSpec> = Vec::new();
    for (i, k) in v.kv_mounts.iter().enumerate() {
        let idx = i.to_string();
        let mount = mount_path(&k.mount).map_err(|m| errs.push((sub(&["kv_mounts", &idx, "mount"]), m))).ok();
        let prefix = kv_prefix(&k.prefix).map_err(|m| errs.push((sub(&["kv_mounts", &idx, "prefix"]), m))).ok();
        let mut fields: Vec<String> = Vec::new();
        for (j, f) in k.fields.iter().enumerate() {
            if f.is_empty() {
                errs.push((sub(&["kv_mounts", &idx, "fields", &j.to_string()]), "empty field name".into()));
            } else if fields.contains(f) {
                errs.push((sub(&["kv_mounts", &idx, "fields", &j.to_string()]), format!("field `{f}` is listed twice")));
            } else {
                fields.push(f.clone());
            }
        }
        if let (Some(mount), Some(prefix)) = (mount, prefix) {
            if pki_mounts.contains(&mount) {
                errs.push((
                    sub(&["kv_mounts", &idx, "mount"]),
                    format!("`{mount}` is also listed under pki_mounts: a mount is one engine"),
                ));
            } else if kv_mounts.iter().any(|o| o.mount == mount && (o.prefix.starts_with(&prefix) || prefix.starts_with(&o.prefix))) {
                errs.push((
                    sub(&["kv_mounts", &idx, "prefix"]),
                    format!("overlaps another entry of mount `{mount}`: a secret would be listed twice"),
                ));
            } else {
                kv_mounts.push(KvSpec { mount, prefix, fields });
            }
        }
    }
    // Vault mounts never nest, and a location names its mount by its path: `a` and `a/b`
    // cannot both be mounts.
    let all: Vec<(&String, Vec<String>)> = pki_mounts
        .iter()
        .enumerate()
        .map(|(i, m)| (m, sub(&["pki_mounts", &i.to_string()])))
        .chain(kv_mounts.iter().map(|k| (&k.mount, sub(&["kv_mounts"]))))
        .collect();
    for (m, path) in &all {
        if let Some((outer, _)) = all.iter().find(|(o, _)| m.starts_with(&format!("{o}/"))) {
            errs.push((path.clone(), format!("`{m}` lies inside mount `{outer}`: secrets engines do not nest")));
        }
    }
    if errs.len() > before {
        return None;
    }
    Some(VaultSpec {
        name: v.name.clone(),
        tags: v.tags.clone(),
        address: addr?,
        namespace: v.namespace.as_ref().map(|n| n.trim_matches('/').to_string()),
        ca_bundle: v.ca_bundle.as_ref().map(|p| base.join(p)),
        timeout,
        concurrency: v.concurrency as usize,
        page_size: v.page_size as usize,
        auth: auth?,
        pki_mounts,
        kv_mounts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SourceSpec, parse_str};

    fn spec(text: &str) -> VaultSpec {
        let s = parse_str(text, "t.yaml", Path::new("/cfg")).unwrap_or_else(|e| panic!("{e}"));
        match s.sources.into_iter().next() {
            Some(SourceSpec::Vault(v)) => v,
            other => panic!("not a vault source: {other:?}"),
        }
    }

    fn errors(text: &str) -> Vec<String> {
        parse_str(text, "t.yaml", Path::new("/cfg")).unwrap_err().0.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn defaults_and_normalisation() {
        let v = spec(concat!(
            "sources:\n",
            "  - name: bao\n    kind: vault\n    address: https://bao.example.com:8200/\n",
            "    auth: {method: approle, role_id: r-1, secret_id: \"${file:/run/sid}\"}\n",
            "    pki_mounts: [/pki/, team/pki]\n",
            "    kv_mounts: [{mount: secret, prefix: certs}, {mount: kv}]\n",
            "    ca_bundle: ca.pem\n",
        ));
        assert_eq!(v.address, "https://bao.example.com:8200");
        assert_eq!(v.timeout, Duration::from_secs(10));
        assert_eq!(v.concurrency, 8);
        assert_eq!(v.page_size, 1000);
        assert_eq!(v.ca_bundle, Some(PathBuf::from("/cfg/ca.pem")));
        assert_eq!(v.pki_mounts, ["pki", "team/pki"]);
        assert_eq!(v.kv_mounts[0], KvSpec { mount: "secret".into(), prefix: "certs/".into(), fields: vec![] });
        assert_eq!(v.kv_mounts[1].prefix, "");
        assert_eq!(
            v.auth,
            AuthSpec::AppRole {
                role_id: Value::Plain("r-1".into()),
                secret_id: SecretRef::File("/run/sid".into()),
                mount: "approle".into()
            }
        );
        let k = spec(
            "sources: [{name: k, kind: vault, address: 'http://[::1]:8200', auth: {method: kubernetes, role: cv}, pki_mounts: [pki]}]",
        );
        assert_eq!(
            k.auth,
            AuthSpec::Kubernetes {
                role: "cv".into(),
                jwt_path: "/var/run/secrets/kubernetes.io/serviceaccount/token".into(),
                mount: "kubernetes".into()
            }
        );
        let local = spec(
            "sources: [{name: l, kind: vault, address: 'http://localhost:8200', auth: {method: token, token: '${env:T}'}, kv_mounts: [{mount: secret}]}]",
        );
        assert_eq!(local.address, "http://localhost:8200");
    }

    #[test]
    fn every_error_is_reported_and_no_secret_is_repeated() {
        let e = errors(concat!(
            "sources:\n",
            "  - name: a\n    kind: vault\n    address: http://vault.example.com:8200/v1\n",
            "    auth: {method: approle, role_id: '', secret_id: hunter2, mount: ../x}\n",
            "    pki_mounts: [pki, pki/, a/../b]\n",
            "    kv_mounts: [{mount: pki}, {mount: kv, prefix: a/, fields: [x, x]}, {mount: kv, prefix: a/b}]\n",
            "  - name: b\n    kind: vault\n    address: http://10.1.2.3:8200\n    auth: {method: token, token: s.hunter3}\n",
            "  - name: c\n    kind: vault\n    address: http://127.0.0.1:8200\n    ca_bundle: ca.pem\n    timeout: 0s\n",
            "    auth: {method: token, token: '${env:T}'}\n    kv_mounts: [{mount: secret, prefix: /abs}]\n",
            "  - {name: d, kind: vault, address: 'https://v', auth: {method: token, token: '${env:T}'}, pki_mounts: [a, a/b]}\n",
        ));
        let has = |needle: &str| assert!(e.iter().any(|m| m.contains(needle)), "no `{needle}` in {e:#?}");
        has("sources[0].address: `http://vault.example.com:8200/v1`: give the server's address only");
        has("sources[0].auth.role_id: must not be empty");
        has("sources[0].auth.secret_id: secrets are not written inline");
        has("sources[0].auth.mount: `../x` is not a mount path");
        has("sources[0].pki_mounts[1]: mount `pki` is listed twice");
        has("sources[0].pki_mounts[2]: `a/../b` is not a mount path");
        has("sources[0].kv_mounts[0].mount: `pki` is also listed under pki_mounts");
        has("sources[0].kv_mounts[1].fields[1]: field `x` is listed twice");
        has("sources[0].kv_mounts[2].prefix: overlaps another entry of mount `kv`");
        has("sources[3].pki_mounts[1]: `a/b` lies inside mount `a`: secrets engines do not nest");
        has("sources[1].address: `http://10.1.2.3:8200` is plain http to a non-loopback host");
        has("sources[1].auth.token: secrets are not written inline");
        has("sources[1].pki_mounts: give at least one PKI mount");
        has("sources[2].ca_bundle: a CA bundle needs an https address");
        has("sources[2].timeout: must be between 100ms and 10m");
        has("sources[2].kv_mounts[0].prefix: `/abs`: a prefix is relative to the mount");
        assert!(e.iter().all(|m| !m.contains("hunter")), "{e:#?}");
    }

    #[test]
    fn insecure_http_is_an_explicit_choice_and_the_method_is_checked_by_name() {
        let ok = spec(
            "sources: [{name: b, kind: vault, address: 'http://10.1.2.3:8200', allow_insecure_http: true, auth: {method: token, token: '${env:T}'}, pki_mounts: [pki]}]",
        );
        assert_eq!(ok.address, "http://10.1.2.3:8200");
        let e =
            errors("sources: [{name: b, kind: vault, address: 'https://v:8200', auth: {method: ldap, username: u}, pki_mounts: [pki]}]");
        assert!(
            e.iter().any(|m| m.contains("sources[0].auth.method: unknown method `ldap`; expected one of: token, approle, kubernetes")),
            "{e:#?}"
        );
        let e =
            errors("sources: [{name: b, kind: vault, address: 'ftp://v', auth: {method: token, token: '${env:T}'}, pki_mounts: [pki]}]");
        assert!(e.iter().any(|m| m.contains("only http and https addresses")), "{e:#?}");
    }
}
