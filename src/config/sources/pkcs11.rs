//! `kind: pkcs11` — a PKCS#11 token (an HSM, SoftHSM2): the YAML entry, its validated form and
//! the pure validation between them.

use super::super::{PathedError, secret::SecretRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A PKCS#11 token. Certificates (CKO_CERTIFICATE) and keys (CKO_PRIVATE_KEY, CKO_PUBLIC_KEY)
/// are inventoried through a read-only session.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Source {
    /// Unique name of this source (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// The PKCS#11 module (shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so` or the
    /// vendor's library. A relative path is relative to this configuration file.
    pub module: String,
    /// Label of the token to open (CK_TOKEN_INFO.label). Exactly one of `token_label` and
    /// `slot` is required; the label is preferred because slot numbers change when tokens are
    /// added or re-initialised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_label: Option<String>,
    /// Index of the slot in the module's list of slots with a token present (0 is the first),
    /// instead of `token_label`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
    /// User PIN as a secret reference (`${env:NAME}` or `${file:/path}`), never inline. Without
    /// it the session is not logged in and only public objects are listed (private keys are
    /// usually CKA_PRIVATE and stay invisible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// Labels attached to every certificate seen by this source.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// How the token is found among the module's slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSelector {
    Label(String),
    /// Index into the slots with a token present.
    SlotIndex(u32),
}

/// Validated PKCS#11 source.
#[derive(Debug, Clone)]
pub struct Pkcs11Spec {
    pub name: String,
    pub tags: Vec<String>,
    pub module: std::path::PathBuf,
    pub token: TokenSelector,
    pub pin: Option<SecretRef>,
}

/// PKCS#11 v2.40 §3.2 CK_TOKEN_INFO: the label is 32 bytes, blank padded.
const MAX_LABEL: usize = 32;

/// Validates one entry; `at(field)` is the key path of a field for error messages.
pub fn validate(
    p: &Pkcs11Source,
    base: &std::path::Path,
    at: &dyn Fn(&str) -> Vec<String>,
    errs: &mut Vec<PathedError>,
) -> Option<Pkcs11Spec> {
    let before = errs.len();
    if p.module.trim().is_empty() {
        errs.push((at("module"), "must not be empty: the path of the PKCS#11 shared library".into()));
    }
    let token = match (&p.token_label, p.slot) {
        (Some(_), Some(_)) => {
            errs.push((at("slot"), "give either token_label or slot, not both".into()));
            None
        }
        (None, None) => {
            errs.push((at("token_label"), "required (or `slot`): which token of the module to open".into()));
            None
        }
        (Some(l), None) if l.trim().is_empty() => {
            errs.push((at("token_label"), "must not be empty".into()));
            None
        }
        (Some(l), None) if l.trim_end().len() > MAX_LABEL => {
            errs.push((at("token_label"), format!("is {} bytes; a PKCS#11 token label has at most {MAX_LABEL}", l.trim_end().len())));
            None
        }
        // Token labels are blank padded on the token: trailing blanks never distinguish two.
        (Some(l), None) => Some(TokenSelector::Label(l.trim_end().to_string())),
        (None, Some(i)) => Some(TokenSelector::SlotIndex(i)),
    };
    // The error never echoes the value: a PIN written inline by mistake must not be printed.
    let pin = p.pin.as_deref().and_then(|s| SecretRef::parse(s).map_err(|m| errs.push((at("pin"), m))).ok());
    if errs.len() > before {
        return None;
    }
    Some(Pkcs11Spec { name: p.name.clone(), tags: p.tags.clone(), module: base.join(&p.module), token: token?, pin })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(yaml_fields: &[(&str, &str)]) -> Pkcs11Source {
        let mut p = Pkcs11Source {
            name: "hsm".into(),
            module: "/usr/lib/softhsm/libsofthsm2.so".into(),
            token_label: None,
            slot: None,
            pin: None,
            tags: Vec::new(),
        };
        for (k, v) in yaml_fields {
            match *k {
                "module" => p.module = v.to_string(),
                "token_label" => p.token_label = Some(v.to_string()),
                "slot" => p.slot = v.parse().ok(),
                "pin" => p.pin = Some(v.to_string()),
                _ => unreachable!(),
            }
        }
        p
    }

    fn check(p: &Pkcs11Source) -> (Option<Pkcs11Spec>, Vec<PathedError>) {
        let mut errs = Vec::new();
        let at = |f: &str| vec!["sources".to_string(), "0".to_string(), f.to_string()];
        let spec = validate(p, std::path::Path::new("/etc/certvigil"), &at, &mut errs);
        (spec, errs)
    }

    #[test]
    fn accepts_label_and_pin_reference() {
        let (spec, errs) = check(&entry(&[("token_label", "signing  "), ("pin", "${env:HSM_PIN}")]));
        assert!(errs.is_empty(), "{errs:?}");
        let spec = spec.unwrap();
        assert_eq!(spec.token, TokenSelector::Label("signing".into()));
        assert_eq!(spec.pin, Some(SecretRef::Env("HSM_PIN".into())));
        let (spec, _) = check(&entry(&[("slot", "2"), ("module", "lib/vendor.so")]));
        let spec = spec.unwrap();
        assert_eq!(spec.token, TokenSelector::SlotIndex(2));
        assert_eq!(spec.module, std::path::Path::new("/etc/certvigil/lib/vendor.so"));
        assert_eq!(spec.pin, None);
    }

    #[test]
    fn reports_every_error_without_echoing_the_pin() {
        let (spec, errs) = check(&entry(&[("module", " "), ("pin", "123456")]));
        assert!(spec.is_none());
        let fields: Vec<&str> = errs.iter().map(|(p, _)| p[2].as_str()).collect();
        assert_eq!(fields, ["module", "token_label", "pin"], "{errs:?}");
        assert!(errs.iter().all(|(_, m)| !m.contains("123456")), "{errs:?}");
        let (_, errs) = check(&entry(&[("token_label", "a"), ("slot", "0")]));
        assert_eq!(errs[0].0[2], "slot");
        let (_, errs) = check(&entry(&[("token_label", &"x".repeat(33))]));
        assert!(errs[0].1.contains("at most 32"), "{errs:?}");
    }
}
