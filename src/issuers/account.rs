//! The stored ACME account of a directory: what `certvigil account show` prints (never the
//! private key) and the account key rollover of RFC 8555 §7.3.5.

use super::acme::{ReqwestHttp, StoredAccount, account_path, http_client, load_account, write_private};
use crate::config::managed::ManagedSpec;
use anyhow::{Context, Result, anyhow, bail};
use base64ct::{Base64UrlUnpadded, Encoding};
use instant_acme::Account;
use std::path::{Path, PathBuf};

/// What is known about a stored account, without its key.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AccountInfo {
    pub directory: String,
    /// The account URL (`kid`).
    pub url: String,
    /// The contacts configured for it.
    pub contacts: Vec<String>,
    /// RFC 7638 JWK thumbprint of the account key.
    pub thumbprint: String,
    pub file: PathBuf,
}

/// RFC 7638 thumbprint of a P-256 account key given as PKCS#8 (the only kind instant-acme makes).
pub fn thumbprint(pkcs8: &[u8]) -> Result<String> {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
        .map_err(|_| anyhow!("the account key is not a P-256 PKCS#8 key"))?;
    let point = key.public_key().as_ref();
    if point.len() != 65 || point[0] != 4 {
        bail!("unexpected P-256 public key encoding");
    }
    // §3: the required members in lexicographic order, no whitespace.
    let jwk = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        Base64UrlUnpadded::encode_string(&point[1..33]),
        Base64UrlUnpadded::encode_string(&point[33..])
    );
    use sha2::Digest;
    Ok(Base64UrlUnpadded::encode_string(&sha2::Sha256::digest(jwk.as_bytes())))
}

/// The stored account for `spec`'s directory, or `None` when none is registered yet.
pub fn show(spec: &ManagedSpec, state_dir: &Path) -> Result<Option<AccountInfo>> {
    let path = account_path(state_dir, &spec.directory);
    if !path.exists() {
        return Ok(None);
    }
    let stored = load_account(&path)?;
    let creds = serde_json::to_value(&stored.credentials)?;
    let url = creds.get("id").and_then(|v| v.as_str()).unwrap_or_default().to_string();
    Ok(Some(AccountInfo {
        directory: stored.directory,
        url,
        contacts: spec.contact.clone(),
        thumbprint: thumbprint(stored.credentials.private_key().secret_pkcs8_der())?,
        file: path,
    }))
}

/// Replaces the account key (§7.3.5) and stores the new credentials: written to a temporary
/// file (0600, fsynced) and renamed over the old one. Returns the old and new thumbprints.
pub async fn rollover(spec: &ManagedSpec, state_dir: &Path) -> Result<(String, String)> {
    let path = account_path(state_dir, &spec.directory);
    if !path.exists() {
        bail!("no ACME account is registered for {} yet (no {})", spec.directory, path.display());
    }
    let stored = load_account(&path)?;
    let old = thumbprint(stored.credentials.private_key().secret_pkcs8_der())?;
    let http = http_client(spec.ca_bundle.as_deref())?;
    let mut account = Account::builder_with_http(Box::new(ReqwestHttp(http)))
        .from_credentials(stored.credentials)
        .await
        .with_context(|| format!("ACME directory {}", spec.directory))?;
    let credentials =
        super::acme::fresh_nonce!(account.update_key().await).with_context(|| format!("the key change at {} failed", spec.directory))?;
    let new = thumbprint(credentials.private_key().secret_pkcs8_der())?;
    let json = serde_json::to_vec_pretty(&StoredAccount { directory: stored.directory, credentials })?;
    write_private(&path, &json).with_context(|| {
        format!("the account key was changed at the CA but the new credentials could not be written to {}", path.display())
    })?;
    tracing::info!(directory = %spec.directory, account = %account.id(), old_thumbprint = %old, new_thumbprint = %new, "ACME account key rolled over");
    Ok((old, new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_is_rfc7638_of_the_public_key() {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let t = thumbprint(pkcs8.as_ref()).unwrap();
        assert_eq!(t.len(), 43);
        assert_eq!(t, thumbprint(pkcs8.as_ref()).unwrap());
        assert!(thumbprint(b"not a key").is_err());
    }
}
