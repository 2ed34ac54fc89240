//! `managed:` — certificates certvigil obtains and renews itself (ACME), how it proves control
//! of their names, and where it installs them.

mod challenge;
mod install;

pub use challenge::*;
pub use install::*;

use super::secret::SecretRef;
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
    /// DNS names the certificate covers; the first is its subject. Wildcards (`*.example.org`)
    /// need the dns-01 challenge.
    pub identifiers: Vec<String>,
    /// The ACME server that issues it.
    pub issuer: IssuerConfig,
    /// Key type of the certificate's key.
    #[serde(default)]
    pub key: KeyType,
    /// When the certificate's key is replaced: `always` (default: a new key at each renewal),
    /// `never` (keep the installed key while it matches), or `{max_age: 90d}`.
    #[serde(default)]
    pub rotate: Option<RotateConfig>,
    /// How control of the identifiers is proven.
    pub challenge: ChallengeConfig,
    /// Where the certificate, chain and key are written, and what runs afterwards.
    pub install: InstallConfig,
    /// Renew this long before expiry; default: once half the lifetime of a short-lived certificate
    /// (≤ 10 days) or two thirds of a longer one have passed.
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
    /// External Account Binding (RFC 8555 §7.3.4), for CAs that tie ACME accounts to an
    /// existing customer account. Used only when the account is registered.
    #[serde(default)]
    pub eab: Option<EabConfig>,
    /// ACME profile to order (the directory's `meta.profiles`, e.g. `shortlived`); the order
    /// fails when the CA does not offer it.
    #[serde(default)]
    pub profile: Option<String>,
}

/// External Account Binding credentials as the CA hands them out.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EabConfig {
    /// Key identifier.
    pub kid: String,
    /// The MAC key, base64url as CAs give it, as a secret reference: `${env:NAME}` or
    /// `${file:/path}`.
    pub hmac_key: String,
}

/// Key type of a managed certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    #[default]
    P256,
    P384,
    Ed25519,
    /// RSA with a 2048-bit modulus (`rsa` means the same).
    #[serde(alias = "rsa")]
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::P256 => "p256",
            KeyType::P384 => "p384",
            KeyType::Ed25519 => "ed25519",
            KeyType::Rsa2048 => "rsa2048",
            KeyType::Rsa3072 => "rsa3072",
            KeyType::Rsa4096 => "rsa4096",
        }
    }

    /// RSA modulus size, for RSA types.
    pub fn rsa_bits(self) -> Option<usize> {
        match self {
            KeyType::Rsa2048 => Some(2048),
            KeyType::Rsa3072 => Some(3072),
            KeyType::Rsa4096 => Some(4096),
            _ => None,
        }
    }
}

/// `rotate:` — a word, or `{max_age: DURATION}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RotateConfig {
    /// `always` or `never`.
    Word(String),
    MaxAge(MaxAge),
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaxAge {
    /// Replace the key once it is this old; until then renewals reuse it.
    pub max_age: DurationSpec,
}

/// When the certificate key is replaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyRotation {
    #[default]
    Always,
    Never,
    MaxAge(Duration),
}

/// EAB credentials, validated; the key is resolved only when an account is registered.
#[derive(Debug, Clone)]
pub struct EabSpec {
    pub kid: String,
    pub hmac_key: SecretRef,
}

/// A validated managed certificate.
#[derive(Debug, Clone)]
pub struct ManagedSpec {
    pub name: String,
    pub identifiers: Vec<String>,
    pub directory: String,
    pub contact: Vec<String>,
    pub ca_bundle: Option<PathBuf>,
    pub eab: Option<EabSpec>,
    pub profile: Option<String>,
    pub key: KeyType,
    pub rotate: KeyRotation,
    pub challenge: ChallengeSpec,
    pub install: InstallSpec,
    /// `None`: at half the lifetime of a short-lived certificate, two thirds of a longer one.
    pub renew_before: Option<Duration>,
    /// See [`ManagedConfig::alert_margin`].
    pub alert_margin: Duration,
}

pub(crate) fn dns_name_ok(n: &str) -> bool {
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

/// A user or group name as useradd accepts it.
pub(crate) fn account_name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 32
        && !n.starts_with('-')
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b) || b == b'$')
}

/// `Ok(None)` when absent; `Err` with the message otherwise.
pub(crate) fn opt_duration(d: &Option<DurationSpec>) -> Result<Option<Duration>, String> {
    d.as_ref().map(DurationSpec::duration).transpose()
}

pub(crate) fn validate_rotate(r: &Option<RotateConfig>) -> Result<KeyRotation, String> {
    match r {
        None => Ok(KeyRotation::Always),
        Some(RotateConfig::Word(w)) => match w.trim() {
            "always" => Ok(KeyRotation::Always),
            "never" => Ok(KeyRotation::Never),
            other => Err(format!("`{other}` is not a rotation policy (always, never, or {{max_age: 90d}})")),
        },
        Some(RotateConfig::MaxAge(m)) => match m.max_age.duration() {
            Ok(d) if d.is_zero() => Err("max_age must be more than 0".into()),
            Ok(d) => Ok(KeyRotation::MaxAge(d)),
            Err(e) => Err(e),
        },
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
        let challenge = validate_challenge(&m.challenge, base, &at, errs);
        let mut identifiers = Vec::new();
        for (j, id) in m.identifiers.iter().enumerate() {
            let id = id.trim().to_ascii_lowercase();
            if !dns_name_ok(&id) {
                errs.push((at(&["identifiers", &j.to_string()]), format!("`{id}` is not a DNS name")));
            } else if id.starts_with("*.") && m.challenge.kind != "dns-01" {
                // RFC 8555 §7.1.3: CAs validate wildcard names through DNS only.
                errs.push((at(&["identifiers", &j.to_string()]), "wildcard names need the dns-01 challenge".into()));
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
        let eab = match &m.issuer.eab {
            None => None,
            Some(e) => {
                if e.kid.trim().is_empty() {
                    errs.push((at(&["issuer", "eab", "kid"]), "must not be empty".into()));
                }
                match SecretRef::parse(e.hmac_key.trim()) {
                    Ok(hmac_key) => Some(EabSpec { kid: e.kid.trim().to_string(), hmac_key }),
                    Err(msg) => {
                        errs.push((at(&["issuer", "eab", "hmac_key"]), msg));
                        None
                    }
                }
            }
        };
        let profile = match m.issuer.profile.as_deref().map(str::trim) {
            Some("") => {
                errs.push((at(&["issuer", "profile"]), "must not be empty".into()));
                None
            }
            Some(p) if !p.bytes().all(|b| b.is_ascii_graphic()) => {
                errs.push((at(&["issuer", "profile"]), format!("`{p}` is not a profile name")));
                None
            }
            p => p.map(str::to_string),
        };
        let rotate = validate_rotate(&m.rotate).unwrap_or_else(|msg| {
            errs.push((at(&["rotate"]), msg));
            KeyRotation::Always
        });
        let path = |v: Option<&str>, field: &[&str], errs: &mut Vec<PathedError>| match v {
            Some("") => {
                let mut p = vec!["install"];
                p.extend_from_slice(field);
                errs.push((at(&p), "must not be empty".into()));
                None
            }
            Some(p) => Some(base.join(p)),
            None => None,
        };
        let inst = &m.install;
        let cert = path(inst.cert.as_deref(), &["cert"], errs);
        let chain = path(inst.chain.as_deref(), &["chain"], errs);
        let fullchain = path(inst.fullchain.as_deref(), &["fullchain"], errs);
        let key = path(inst.key.as_deref(), &["key"], errs);
        let combined = path(inst.combined.as_deref(), &["combined"], errs);
        let pkcs12 = match &inst.pkcs12 {
            None => None,
            Some(p) => {
                let file = path(Some(p.path.as_str()), &["pkcs12", "path"], errs);
                match SecretRef::parse(p.password.trim()) {
                    Ok(password) => file.map(|path| Pkcs12Spec { path, password }),
                    Err(msg) => {
                        errs.push((at(&["install", "pkcs12", "password"]), msg));
                        None
                    }
                }
            }
        };
        let secret = validate_secret(inst.kubernetes_secret.as_ref(), base, &at, errs);
        let has_files = [inst.cert.is_some(), inst.chain.is_some(), inst.fullchain.is_some(), inst.key.is_some()]
            .into_iter()
            .chain([inst.combined.is_some(), inst.pkcs12.is_some()])
            .any(|b| b);
        let has_leaf_file = inst.cert.is_some() || inst.fullchain.is_some() || inst.combined.is_some() || inst.pkcs12.is_some();
        if !has_files && inst.kubernetes_secret.is_none() {
            errs.push((
                at(&["install"]),
                "no install target: give files (cert or fullchain, and key) or kubernetes_secret, or both".into(),
            ));
        } else if has_files && !has_leaf_file {
            errs.push((at(&["install"]), "give at least one of cert, fullchain, combined or pkcs12".into()));
        }
        if has_files && inst.key.is_none() {
            errs.push((at(&["install", "key"]), "the key file is required with the certificate files".into()));
        }
        if inst.kubernetes_secret.is_some() && has_files && inst.cert.is_none() && inst.fullchain.is_none() && inst.combined.is_none() {
            // The Secret is brought up to date from the files when it differs from them.
            errs.push((
                at(&["install"]),
                "with kubernetes_secret, the files must include cert, fullchain or combined (a PKCS#12 file alone cannot be read back)"
                    .into(),
            ));
        }
        if !has_files {
            let why = "only for file targets (the Secret is the only target)";
            for (field, present) in [
                ("mode", inst.mode.is_some()),
                ("owner", inst.owner.is_some()),
                ("group", inst.group.is_some()),
                ("hooks", !inst.hooks.is_empty()),
            ] {
                if present {
                    errs.push((at(&["install", field]), why.into()));
                }
            }
            if m.rotate.is_some() && rotate != KeyRotation::Always {
                errs.push((at(&["rotate"]), "keeping the key needs install.key: the installed key is read from that file".into()));
            }
        }
        let p12_path = pkcs12.as_ref().map(|p| &p.path);
        let all: Vec<&PathBuf> =
            [cert.as_ref(), chain.as_ref(), fullchain.as_ref(), key.as_ref(), combined.as_ref(), p12_path].into_iter().flatten().collect();
        for (a, p) in all.iter().enumerate() {
            if all[..a].contains(p) {
                errs.push((at(&["install"]), format!("{} is used for two files", p.display())));
            }
        }
        let mode = match inst.mode.as_ref().map(parse_mode) {
            None => 0o644,
            Some(Ok(v)) => v,
            Some(Err(msg)) => {
                errs.push((at(&["install", "mode"]), msg));
                0o644
            }
        };
        for (field, v) in [("owner", &inst.owner), ("group", &inst.group)] {
            if let Some(n) = v
                && !account_name_ok(n)
            {
                errs.push((at(&["install", field]), format!("`{n}` is not a user or group name")));
            }
        }
        let hooks = validate_hooks(&inst.hooks, &at, errs);
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
        if let Some(challenge) = challenge {
            out.push(ManagedSpec {
                name: name.to_string(),
                identifiers,
                directory: dir.to_string(),
                contact: m.issuer.contact.clone(),
                ca_bundle,
                eab,
                profile,
                key: m.key,
                rotate,
                challenge,
                install: InstallSpec {
                    cert,
                    chain,
                    fullchain,
                    key,
                    combined,
                    pkcs12,
                    mode,
                    owner: inst.owner.clone(),
                    group: inst.group.clone(),
                    hooks,
                    kubernetes_secret: secret,
                },
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

    fn with(challenge: &str, extra: &str) -> Result<Vec<ManagedSpec>, Vec<PathedError>> {
        let text = format!(
            "- name: web\n  identifiers: [www.example.org]\n  issuer: {{directory: 'https://acme.example/dir', contact: ['mailto:a@example.org']}}\n  challenge: {challenge}\n  install: {{fullchain: f.pem, key: k.pem, mode: '0640'}}\n{extra}"
        );
        let list: Vec<ManagedConfig> = serde_saphyr::from_str(&text).map_err(|e| vec![(vec![], e.to_string())])?;
        let mut errs = Vec::new();
        let out = validate(&list, Path::new("/etc/x"), &mut errs);
        if errs.is_empty() { Ok(out) } else { Err(errs) }
    }

    fn one(extra: &str) -> Result<Vec<ManagedSpec>, Vec<PathedError>> {
        with("{type: http-01}", extra)
    }

    fn raw(yaml: &str) -> Result<Vec<ManagedSpec>, Vec<PathedError>> {
        let list: Vec<ManagedConfig> = serde_saphyr::from_str(yaml).map_err(|e| vec![(vec![], e.to_string())])?;
        let mut errs = Vec::new();
        let out = validate(&list, Path::new("/etc/x"), &mut errs);
        if errs.is_empty() { Ok(out) } else { Err(errs) }
    }

    fn paths(e: &[PathedError]) -> Vec<String> {
        e.iter().map(|(p, _)| p.join(".")).collect()
    }

    #[test]
    fn defaults_and_paths() {
        let s = one("").unwrap();
        assert_eq!(s[0].key, KeyType::P256);
        assert_eq!(s[0].rotate, KeyRotation::Always);
        assert_eq!(s[0].install.mode, 0o640);
        assert_eq!(s[0].install.key, Some(PathBuf::from("/etc/x/k.pem")));
        assert!(s[0].install.kubernetes_secret.is_none() && s[0].install.has_files());
        assert_eq!(s[0].challenge, ChallengeSpec::Http01Listener { listen: default_listen() });
        assert!(s[0].renew_before.is_none() && s[0].eab.is_none() && s[0].profile.is_none());
        assert_eq!(s[0].alert_margin, Duration::from_secs(7 * 86_400));
        assert_eq!(one("  alert_margin: 3d\n").unwrap()[0].alert_margin, Duration::from_secs(3 * 86_400));
        assert_eq!(one("  alert_margin: soon\n").unwrap_err()[0].0, vec!["managed", "0", "alert_margin"]);
    }

    #[test]
    fn rsa_sizes() {
        assert_eq!(one("  key: rsa\n").unwrap()[0].key, KeyType::Rsa2048);
        assert_eq!(one("  key: rsa4096\n").unwrap()[0].key.rsa_bits(), Some(4096));
        assert!(one("  key: rsa1024\n").is_err());
    }

    #[test]
    fn bad_fields_are_named() {
        let e = one("  renew_before: 3x\n").unwrap_err();
        assert_eq!(e[0].0, vec!["managed", "0", "renew_before"]);
    }

    #[test]
    fn webroot_and_listen() {
        let s = with("{type: http-01, webroot: www}", "").unwrap();
        assert_eq!(s[0].challenge, ChallengeSpec::Http01Webroot { webroot: PathBuf::from("/etc/x/www") });
        let e = with("{type: http-01, webroot: www, listen: '127.0.0.1:80'}", "").unwrap_err();
        assert_eq!(paths(&e), ["managed.0.challenge.webroot"]);
        let e = with("{type: http-01, listen: 'nope'}", "").unwrap_err();
        assert_eq!(paths(&e), ["managed.0.challenge.listen"]);
        let e = with("{type: http-01, hook: [x]}", "").unwrap_err();
        assert_eq!(paths(&e), ["managed.0.challenge.hook"]);
        let e = with("{type: tls-alpn-01}", "").unwrap_err();
        assert_eq!(paths(&e), ["managed.0.challenge.type"]);
    }

    #[test]
    fn dns01_hook_and_wildcards() {
        let s = with("{type: dns-01, hook: [/usr/local/bin/dns, --zone, x], hook_timeout: 5s, propagation_delay: 2s}", "").unwrap();
        assert_eq!(
            s[0].challenge,
            ChallengeSpec::Dns01 {
                hook: vec!["/usr/local/bin/dns".into(), "--zone".into(), "x".into()],
                timeout: Duration::from_secs(5),
                propagation_delay: Duration::from_secs(2),
                check: None,
            }
        );
        let e = with("{type: dns-01}", "").unwrap_err();
        assert_eq!(paths(&e), ["managed.0.challenge.hook"]);
        let e = with("{type: dns-01, hook: []}", "").unwrap_err();
        assert_eq!(paths(&e), ["managed.0.challenge.hook"]);
        let e = with("{type: dns-01, hook: [x], listen: '127.0.0.1:1', hook_timeout: 0s}", "").unwrap_err();
        assert_eq!(paths(&e), ["managed.0.challenge.listen", "managed.0.challenge.hook_timeout"]);
        let s = with("{type: dns-01, hook: [h], resolvers: ['192.0.2.53:53', '[2001:db8::53]:53'], propagation_timeout: 30s}", "").unwrap();
        let ChallengeSpec::Dns01 { check: Some(check), .. } = &s[0].challenge else { panic!("{:?}", s[0].challenge) };
        assert_eq!(check.resolvers.len(), 2);
        assert_eq!(check.timeout, Duration::from_secs(30));
        let s = with("{type: dns-01, hook: [h], resolvers: ['192.0.2.53:53']}", "").unwrap();
        let ChallengeSpec::Dns01 { check: Some(check), .. } = &s[0].challenge else { panic!("{:?}", s[0].challenge) };
        assert_eq!(check.timeout, DEFAULT_PROPAGATION_TIMEOUT);
        let e = with("{type: dns-01, hook: [h], resolvers: ['192.0.2.53:53', ns1.example], propagation_timeout: 0s}", "").unwrap_err();
        assert_eq!(paths(&e), ["managed.0.challenge.resolvers.1", "managed.0.challenge.propagation_timeout"]);
        let e = with("{type: dns-01, hook: [h], propagation_timeout: 1m}", "").unwrap_err();
        assert_eq!(paths(&e), ["managed.0.challenge.propagation_timeout"]);
        let e = with("{type: http-01, resolvers: ['192.0.2.53:53']}", "").unwrap_err();
        assert_eq!(paths(&e), ["managed.0.challenge.resolvers"]);

        let wild = "- name: w\n  identifiers: ['*.example.org', example.org]\n  issuer: {directory: 'https://a/d'}\n  challenge: {type: CH}\n  install: {fullchain: f.pem, key: k.pem}\n";
        let s = raw(&wild.replace("CH", "dns-01, hook: [h]")).unwrap();
        assert_eq!(s[0].identifiers, ["*.example.org", "example.org"]);
        let e = raw(&wild.replace("CH", "http-01")).unwrap_err();
        assert_eq!(paths(&e), ["managed.0.identifiers.0"]);
        assert!(e[0].1.contains("dns-01"), "{e:?}");
    }

    #[test]
    fn eab_profile_and_rotation() {
        let s = raw("- name: w\n  identifiers: [a.example]\n  issuer: {directory: 'https://a/d', eab: {kid: k1, hmac_key: '${env:EAB}'}, profile: shortlived}\n  challenge: {type: http-01}\n  rotate: {max_age: 30d}\n  install: {fullchain: f.pem, key: k.pem}\n").unwrap();
        let eab = s[0].eab.as_ref().unwrap();
        assert_eq!((eab.kid.as_str(), &eab.hmac_key), ("k1", &SecretRef::Env("EAB".into())));
        assert_eq!(s[0].profile.as_deref(), Some("shortlived"));
        assert_eq!(s[0].rotate, KeyRotation::MaxAge(Duration::from_secs(30 * 86400)));
        assert_eq!(one("  rotate: never\n").unwrap()[0].rotate, KeyRotation::Never);

        let e = raw("- name: w\n  identifiers: [a.example]\n  issuer: {directory: 'https://a/d', eab: {kid: '', hmac_key: 'c2VjcmV0'}, profile: ''}\n  challenge: {type: http-01}\n  rotate: sometimes\n  install: {fullchain: f.pem, key: k.pem}\n").unwrap_err();
        assert_eq!(
            paths(&e),
            ["managed.0.issuer.eab.kid", "managed.0.issuer.eab.hmac_key", "managed.0.issuer.profile", "managed.0.rotate"]
        );
        // An inline key is refused without being echoed.
        assert!(!e[1].1.contains("c2VjcmV0"), "{e:?}");
    }

    #[test]
    fn install_targets_owner_and_hooks() {
        let s = raw("- name: w\n  identifiers: [a.example]\n  issuer: {directory: 'https://a/d'}\n  challenge: {type: http-01}\n  install:\n    key: k.pem\n    combined: haproxy.pem\n    pkcs12: {path: c.p12, password: '${file:/run/p}'}\n    owner: www-data\n    group: ssl-cert\n    hooks:\n      - run: [/bin/true, x]\n        timeout: 5s\n      - reload: nginx.service\n").unwrap();
        let i = &s[0].install;
        assert_eq!(i.combined.as_deref(), Some(Path::new("/etc/x/haproxy.pem")));
        assert_eq!(i.pkcs12.as_ref().unwrap().password, SecretRef::File("/run/p".into()));
        assert_eq!((i.owner.as_deref(), i.group.as_deref()), (Some("www-data"), Some("ssl-cert")));
        assert_eq!(
            i.hooks,
            [
                HookSpec { argv: vec!["/bin/true".into(), "x".into()], timeout: Duration::from_secs(5) },
                HookSpec { argv: vec!["systemctl".into(), "reload".into(), "nginx.service".into()], timeout: DEFAULT_HOOK_TIMEOUT },
            ]
        );

        let e = raw("- name: w\n  identifiers: [a.example]\n  issuer: {directory: 'https://a/d'}\n  challenge: {type: http-01}\n  install:\n    key: k.pem\n    pkcs12: {path: k.pem, password: hunter2}\n    owner: 'bad name'\n    hooks:\n      - {run: [x], reload: y}\n      - run: []\n      - reload: '-x'\n      - {run: [x], timeout: soon}\n").unwrap_err();
        assert_eq!(
            paths(&e),
            [
                "managed.0.install.pkcs12.password",
                "managed.0.install.owner",
                "managed.0.install.hooks.0",
                "managed.0.install.hooks.1.run",
                "managed.0.install.hooks.2.reload",
                "managed.0.install.hooks.3.timeout",
            ]
        );
        let e = raw("- name: w\n  identifiers: [a.example]\n  issuer: {directory: 'https://a/d'}\n  challenge: {type: http-01}\n  install: {key: k.pem}\n").unwrap_err();
        assert_eq!(paths(&e), ["managed.0.install"]);
    }

    #[test]
    fn kubernetes_secret_alone_or_beside_files() {
        let head = "- name: w\n  identifiers: [a.example]\n  issuer: {directory: 'https://a/d'}\n  challenge: {type: http-01}\n";
        let s = raw(&format!(
            "{head}  install:\n    kubernetes_secret: {{namespace: web, name: site-tls, kubeconfig: kube.yaml, context: prod}}\n"
        ))
        .unwrap();
        let i = &s[0].install;
        assert!(!i.has_files() && i.key.is_none());
        let t = i.kubernetes_secret.as_ref().unwrap();
        assert_eq!((t.namespace.as_str(), t.name.as_str(), t.context.as_deref()), ("web", "site-tls", Some("prod")));
        assert_eq!(t.kubeconfig.as_deref(), Some(Path::new("/etc/x/kube.yaml")));
        assert_eq!((t.in_cluster, t.timeout), (false, DEFAULT_SECRET_TIMEOUT));

        let s = raw(&format!(
            "{head}  install:\n    fullchain: f.pem\n    key: k.pem\n    kubernetes_secret: {{namespace: web, name: site-tls, in_cluster: true, timeout: 5s}}\n"
        ))
        .unwrap();
        assert!(s[0].install.has_files());
        assert_eq!(s[0].install.kubernetes_secret.as_ref().unwrap().timeout, Duration::from_secs(5));

        // The target's own checks, under the key path.
        let e = raw(&format!(
            "{head}  install:\n    kubernetes_secret: {{namespace: Web, name: '-x', in_cluster: true, kubeconfig: k.yaml, timeout: 0s}}\n"
        ))
        .unwrap_err();
        assert_eq!(
            paths(&e),
            [
                "managed.0.install.kubernetes_secret.timeout",
                "managed.0.install.kubernetes_secret.namespace",
                "managed.0.install.kubernetes_secret.name",
                "managed.0.install.kubernetes_secret.kubeconfig",
            ]
        );
        assert!(e[1].1.contains("`Web` is not a namespace name"), "{e:?}");
        let e = raw(&format!("{head}  install:\n    kubernetes_secret: {{namespace: web, name: s, colour: blue}}\n")).unwrap_err();
        assert!(e[0].1.contains("colour"), "{e:?}");

        // No target at all, a key file alone, files without a key.
        let e = raw(&format!("{head}  install: {{}}\n")).unwrap_err();
        assert_eq!(paths(&e), ["managed.0.install"]);
        assert!(e[0].1.contains("no install target"), "{e:?}");
        let e = raw(&format!("{head}  install: {{key: k.pem}}\n")).unwrap_err();
        assert_eq!(paths(&e), ["managed.0.install"]);
        assert!(e[0].1.contains("at least one of cert, fullchain"), "{e:?}");
        let e = raw(&format!("{head}  install: {{fullchain: f.pem, kubernetes_secret: {{namespace: web, name: s}}}}\n")).unwrap_err();
        assert_eq!(paths(&e), ["managed.0.install.key"]);

        // Settings that only files have, and key reuse, need files.
        let e = raw(&format!(
            "{head}  rotate: never\n  install:\n    mode: '0640'\n    hooks: [{{reload: x.service}}]\n    kubernetes_secret: {{namespace: web, name: s}}\n"
        ))
        .unwrap_err();
        assert_eq!(paths(&e), ["managed.0.install.mode", "managed.0.install.hooks", "managed.0.rotate"]);
        // A PKCS#12 file cannot be read back to bring the Secret up to date.
        let e = raw(&format!(
            "{head}  install:\n    key: k.pem\n    pkcs12: {{path: c.p12, password: '${{env:P}}'}}\n    kubernetes_secret: {{namespace: web, name: s}}\n"
        ))
        .unwrap_err();
        assert_eq!(paths(&e), ["managed.0.install"]);
    }
}
