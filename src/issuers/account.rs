//! The stored ACME account of a directory: what `certvigil account show` prints (never the
//! private key) and the account key rollover of RFC 8555 §7.3.5.

use super::acme::{AcmeError, ReqwestHttp, StoredAccount, account_path, http_client, load_account};
use super::keys::write_private;
use crate::config::managed::ManagedSpec;
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
pub fn thumbprint(pkcs8: &[u8]) -> Result<String, AcmeError> {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng).map_err(|_| AcmeError::AccountKey)?;
    let point = key.public_key().as_ref();
    if point.len() != 65 || point[0] != 4 {
        return Err(AcmeError::AccountKeyEncoding);
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
pub fn show(spec: &ManagedSpec, state_dir: &Path) -> Result<Option<AccountInfo>, AcmeError> {
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
pub async fn rollover(spec: &ManagedSpec, state_dir: &Path) -> Result<(String, String), AcmeError> {
    let path = account_path(state_dir, &spec.directory);
    if !path.exists() {
        return Err(AcmeError::NoAccount { directory: spec.directory.clone(), path });
    }
    let stored = load_account(&path)?;
    let old = thumbprint(stored.credentials.private_key().secret_pkcs8_der())?;
    let http = http_client(spec.ca_bundle.as_deref())?;
    let mut account = Account::builder_with_http(Box::new(ReqwestHttp(http)))
        .from_credentials(stored.credentials)
        .await
        .map_err(|source| AcmeError::Directory { directory: spec.directory.clone(), source })?;
    let credentials = super::nonce::fresh_nonce!(account.update_key().await)
        .map_err(|source| AcmeError::KeyChange { directory: spec.directory.clone(), source })?;
    let new = thumbprint(credentials.private_key().secret_pkcs8_der())?;
    let json = serde_json::to_vec_pretty(&StoredAccount { directory: stored.directory, credentials })?;
    write_private(&path, &json).map_err(|source| AcmeError::KeyChangeNotSaved { path: path.clone(), source })?;
    tracing::info!(directory = %spec.directory, account = %account.id(), old_thumbprint = %old, new_thumbprint = %new, "ACME account key rolled over");
    Ok((old, new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x509::ber;

    /// RFC 7638 §3, step by step, as the test's own reference: the required members of the
    /// key type (§3.2), ordered by member name, without whitespace, as UTF-8; SHA-256; then
    /// base64url without padding (§3.1 ends with that encoding).
    fn rfc7638(jwk: &serde_json::Value) -> String {
        let required: &[&str] = match jwk["kty"].as_str() {
            Some("RSA") => &["e", "kty", "n"],
            Some("EC") => &["crv", "kty", "x", "y"],
            other => panic!("no required members known for kty {other:?}"),
        };
        let mut names = required.to_vec();
        names.sort_unstable();
        let members: Vec<String> =
            names.iter().map(|n| format!("{}:{}", serde_json::to_string(n).unwrap(), serde_json::to_string(&jwk[*n]).unwrap())).collect();
        let json = format!("{{{}}}", members.join(","));
        use sha2::Digest;
        Base64UrlUnpadded::encode_string(&sha2::Sha256::digest(json.as_bytes()))
    }

    /// RFC 7638 §3.1: the RSA key of the example (with its `alg` and `kid`, which are not
    /// required members) and its published thumbprint.
    #[test]
    fn the_reference_procedure_gives_rfc7638_section_3_1s_thumbprint() {
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(rfc7638(&jwk), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    /// PKCS#8 (RFC 5208) of a P-256 key given as the JWK members `d`, `x` and `y`, in the form
    /// ring writes and reads: ecPublicKey with the prime256v1 curve, and an ECPrivateKey (RFC
    /// 5915) holding the private scalar and the uncompressed public point.
    fn p256_pkcs8(d: &str, x: &str, y: &str) -> Vec<u8> {
        let b = |s: &str| Base64UrlUnpadded::decode_vec(s).unwrap();
        let point = [vec![0x04], b(x), b(y)].concat();
        let alg = ber::encode(ber::SEQUENCE, &[ber::encode_oid("1.2.840.10045.2.1"), ber::encode_oid("1.2.840.10045.3.1.7")].concat());
        let ec_private_key = ber::encode(
            ber::SEQUENCE,
            &[
                ber::encode(ber::INTEGER, &[1]),
                ber::encode(ber::OCTET_STRING, &b(d)),
                ber::encode(0xa1, &ber::encode(0x03, &[&[0u8][..], &point].concat())),
            ]
            .concat(),
        );
        ber::encode(ber::SEQUENCE, &[ber::encode(ber::INTEGER, &[0]), alg, ber::encode(ber::OCTET_STRING, &ec_private_key)].concat())
    }

    /// certvigil's thumbprint of an account key is the RFC 7638 thumbprint of its JWK: for the
    /// published P-256 key of RFC 7515 Appendix A.3 (the JWK members as printed there, not as
    /// derived from the key) and for freshly generated keys.
    #[test]
    fn thumbprint_is_rfc7638_of_the_public_key() {
        let jwk = serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
            "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"
        });
        let pkcs8 = p256_pkcs8(jwk["d"].as_str().unwrap(), jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap());
        assert_eq!(thumbprint(&pkcs8).unwrap(), rfc7638(&jwk));

        let rng = ring::rand::SystemRandom::new();
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        for _ in 0..4 {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
            let point = key.public_key().as_ref();
            let jwk = serde_json::json!({
                "kty": "EC",
                "crv": "P-256",
                "x": Base64UrlUnpadded::encode_string(&point[1..33]),
                "y": Base64UrlUnpadded::encode_string(&point[33..]),
            });
            assert_eq!(thumbprint(pkcs8.as_ref()).unwrap(), rfc7638(&jwk));
        }
        assert!(thumbprint(b"not a key").is_err());
    }
}
