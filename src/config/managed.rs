//! `managed:` — certificates certvigil obtains and renews itself (ACME), and where it installs
//! them.

use super::{DurationSpec, PathedError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One managed certificate.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManagedConfig {
    /// Unique name (letters, digits, -, _, .); `certvigil renew NAME` selects it.
    pub name: String,
    /// DNS names the certificate covers; the first is its subject.
    pub identifiers: Vec<String>,
    /// The ACME server that issues it.
    pub issuer: IssuerConfig,
    /// Key type of the certificate's key, freshly generated at each renewal.
    #[serde(default)]
    pub key: KeyType,
    /// How control of the identifiers is proven.
    pub challenge: ChallengeConfig,
    /// Where the certificate, chain and key are written.
    pub install: InstallConfig,
    /// Renew this long before expiry; default: once two thirds of the lifetime have passed.
    /// When the CA offers ACME Renewal Information (RFC 9773), its window decides instead.
    #[serde(default)]
    pub renew_before: Option<DurationSpec>,
    /// Renewal alerts: while the renewal is scheduled and healthy, expiry findings are only
    /// information; a failed renewal pages, critical once less than this is left (default 7d).
    #[serde(default)]
    pub alert_margin: Option<DurationSpec>,
}

/// An ACME directory.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Directory URL (`https://…/directory`).
    pub directory: String,
    /// Account contacts (`mailto:…`).
    #[serde(default)]
    pub contact: Vec<String>,
    /// PEM file of the CA certificates trusted for the ACME server's HTTPS (instead of the
    /// system roots).
    #[serde(default)]
    pub ca_bundle: Option<String>,
}

/// Key type of a managed certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    #[default]
    P256,
    P384,
    Ed25519,
    /// Not supported: RSA keys cannot be generated; listed so the error says so.
    Rsa,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::P256 => "p256",
            KeyType::P384 => "p384",
            KeyType::Ed25519 => "ed25519",
            KeyType::Rsa => "rsa",
        }
    }
}

/// Challenge type and its parameters.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChallengeConfig {
    /// Only `http-01`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Address of the built-in HTTP-01 listener (the ACME server validates on port 80 of each
    /// identifier; forward that port here).
    #[serde(default = "default_listen")]
    pub listen: String,
}

fn default_listen() -> String {
    "127.0.0.1:5002".into()
}

/// Install paths. At least `fullchain` or `cert` must be given, and `key` always.
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
    /// The private key (PKCS#8 PEM); always written with mode 0600.
    pub key: String,
    /// Mode of the certificate files, in octal (`0640` or `"0640"`).
    #[serde(default)]
    pub mode: Option<ModeSpec>,
}

/// A file mode, octal digits as a number (0640 read as 640) or as text.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ModeSpec {
    Number(u32),
    Text(String),
}

/// A validated managed certificate.
#[derive(Debug, Clone)]
pub struct ManagedSpec {
    pub name: String,
    pub identifiers: Vec<String>,
    pub directory: String,
    pub contact: Vec<String>,
    pub ca_bundle: Option<PathBuf>,
    pub key: KeyType,
    pub listen: SocketAddr,
    pub install: InstallSpec,
    /// `None`: at two thirds of the lifetime.
    pub renew_before: Option<Duration>,
    /// See [`ManagedConfig::alert_margin`].
    pub alert_margin: Duration,
}

#[derive(Debug, Clone)]
pub struct InstallSpec {
    pub cert: Option<PathBuf>,
    pub chain: Option<PathBuf>,
    pub fullchain: Option<PathBuf>,
    pub key: PathBuf,
    pub mode: u32,
}

fn dns_name_ok(n: &str) -> bool {
    let n = n.strip_prefix("*.").unwrap_or(n);
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn parse_mode(m: &ModeSpec) -> Result<u32, String> {
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

pub(crate) fn validate(list: &[ManagedConfig], base: &Path, errs: &mut Vec<PathedError>) -> Vec<ManagedSpec> {
    let mut out = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let idx = i.to_string();
        let at = |parts: &[&str]| {
            let mut v = vec!["managed".to_string(), idx.clone()];
            v.extend(parts.iter().map(|s| s.to_string()));
            v
        };
        let before = errs.len();
        let name = m.name.as_str();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            errs.push((at(&["name"]), format!("`{name}` is not a valid name (letters, digits, -, _, .)")));
        } else if names.contains(&name) {
            errs.push((at(&["name"]), format!("duplicate managed certificate name `{name}`")));
        }
        names.push(name);
        if m.identifiers.is_empty() {
            errs.push((at(&["identifiers"]), "at least one DNS name is required".into()));
        }
        let mut identifiers = Vec::new();
        for (j, id) in m.identifiers.iter().enumerate() {
            let id = id.trim().to_ascii_lowercase();
            if !dns_name_ok(&id) {
                errs.push((at(&["identifiers", &j.to_string()]), format!("`{id}` is not a DNS name")));
            } else if id.starts_with("*.") {
                errs.push((at(&["identifiers", &j.to_string()]), "wildcards need dns-01, which is not supported yet".into()));
            } else if identifiers.contains(&id) {
                errs.push((at(&["identifiers", &j.to_string()]), format!("duplicate identifier `{id}`")));
            } else {
                identifiers.push(id);
            }
        }
        let dir = m.issuer.directory.trim();
        match reqwest::Url::parse(dir) {
            Ok(u) if u.scheme() == "https" => {}
            Ok(u) => errs.push((at(&["issuer", "directory"]), format!("scheme `{}` is not https", u.scheme()))),
            Err(e) => errs.push((at(&["issuer", "directory"]), format!("`{dir}` is not a URL: {e}"))),
        }
        for (j, c) in m.issuer.contact.iter().enumerate() {
            let ok = c.strip_prefix("mailto:").is_some_and(|a| a.contains('@') && !a.contains(char::is_whitespace));
            if !ok {
                errs.push((at(&["issuer", "contact", &j.to_string()]), format!("`{c}` is not a mailto: address")));
            }
        }
        let ca_bundle = match m.issuer.ca_bundle.as_deref() {
            Some("") => {
                errs.push((at(&["issuer", "ca_bundle"]), "must not be empty".into()));
                None
            }
            Some(p) => Some(base.join(p)),
            None => None,
        };
        if m.key == KeyType::Rsa {
            errs.push((at(&["key"]), "RSA keys cannot be generated by certvigil's crypto provider; use p256, p384 or ed25519".into()));
        }
        if m.challenge.kind != "http-01" {
            errs.push((at(&["challenge", "type"]), format!("`{}` is not supported (only http-01)", m.challenge.kind)));
        }
        let listen = match m.challenge.listen.trim().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                errs.push((
                    at(&["challenge", "listen"]),
                    format!("`{}` is not an address:port (example: 127.0.0.1:5002)", m.challenge.listen),
                ));
                None
            }
        };
        let path = |v: &Option<String>, field: &str, errs: &mut Vec<PathedError>| match v.as_deref() {
            Some("") => {
                errs.push((at(&["install", field]), "must not be empty".into()));
                None
            }
            Some(p) => Some(base.join(p)),
            None => None,
        };
        let cert = path(&m.install.cert, "cert", errs);
        let chain = path(&m.install.chain, "chain", errs);
        let fullchain = path(&m.install.fullchain, "fullchain", errs);
        let key = path(&Some(m.install.key.clone()), "key", errs);
        if m.install.cert.is_none() && m.install.fullchain.is_none() {
            errs.push((at(&["install"]), "give at least one of cert or fullchain".into()));
        }
        let all: Vec<&PathBuf> = [&cert, &chain, &fullchain, &key].into_iter().flatten().collect();
        for (a, p) in all.iter().enumerate() {
            if all[..a].contains(p) {
                errs.push((at(&["install"]), format!("{} is used for two files", p.display())));
            }
        }
        let mode = match m.install.mode.as_ref().map(parse_mode) {
            None => 0o644,
            Some(Ok(v)) => v,
            Some(Err(msg)) => {
                errs.push((at(&["install", "mode"]), msg));
                0o644
            }
        };
        let renew_before = match m.renew_before.as_ref().map(DurationSpec::duration) {
            None => None,
            Some(Ok(d)) if d.is_zero() => {
                errs.push((at(&["renew_before"]), "must be more than 0".into()));
                None
            }
            Some(Ok(d)) => Some(d),
            Some(Err(msg)) => {
                errs.push((at(&["renew_before"]), msg));
                None
            }
        };
        let alert_margin = match m.alert_margin.as_ref().map(DurationSpec::duration) {
            None => Duration::from_secs(7 * 86_400),
            Some(Ok(d)) => d,
            Some(Err(msg)) => {
                errs.push((at(&["alert_margin"]), msg));
                Duration::ZERO
            }
        };
        if errs.len() != before {
            continue;
        }
        if let (Some(listen), Some(key)) = (listen, key) {
            out.push(ManagedSpec {
                name: name.to_string(),
                identifiers,
                directory: dir.to_string(),
                contact: m.issuer.contact.clone(),
                ca_bundle,
                key: m.key,
                listen,
                install: InstallSpec { cert, chain, fullchain, key, mode },
                renew_before,
                alert_margin,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(yaml_extra: &str) -> Result<Vec<ManagedSpec>, Vec<PathedError>> {
        let text = format!(
            "- name: web\n  identifiers: [www.example.org]\n  issuer: {{directory: 'https://acme.example/dir', contact: ['mailto:a@example.org']}}\n  challenge: {{type: http-01}}\n  install: {{fullchain: f.pem, key: k.pem, mode: '0640'}}\n{yaml_extra}"
        );
        let list: Vec<ManagedConfig> = serde_saphyr::from_str(&text).map_err(|e| vec![(vec![], e.to_string())])?;
        let mut errs = Vec::new();
        let out = validate(&list, Path::new("/etc/x"), &mut errs);
        if errs.is_empty() { Ok(out) } else { Err(errs) }
    }

    #[test]
    fn defaults_and_paths() {
        let s = one("").unwrap();
        assert_eq!(s[0].key, KeyType::P256);
        assert_eq!(s[0].install.mode, 0o640);
        assert_eq!(s[0].install.key, PathBuf::from("/etc/x/k.pem"));
        assert_eq!(s[0].listen.port(), 5002);
        assert!(s[0].renew_before.is_none());
        assert_eq!(s[0].alert_margin, Duration::from_secs(7 * 86_400));
        assert_eq!(one("  alert_margin: 3d\n").unwrap()[0].alert_margin, Duration::from_secs(3 * 86_400));
        assert_eq!(one("  alert_margin: soon\n").unwrap_err()[0].0, vec!["managed", "0", "alert_margin"]);
    }

    #[test]
    fn rsa_is_refused_with_a_reason() {
        let e = one("  key: rsa\n").unwrap_err();
        assert_eq!(e[0].0, vec!["managed", "0", "key"]);
        assert!(e[0].1.contains("RSA"), "{e:?}");
    }

    #[test]
    fn bad_fields_are_named() {
        let e = one("  renew_before: 3x\n").unwrap_err();
        assert_eq!(e[0].0, vec!["managed", "0", "renew_before"]);
    }
}
