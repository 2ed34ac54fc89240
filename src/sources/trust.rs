//! Signing trust material kept in Kubernetes Secrets and ConfigMaps or in files: PEM public keys
//! (cosign's `cosign.pub`) and TUF root metadata (Sigstore's `root.json`). Pure: bytes in, a
//! [`KeyObject`] out, for the `keys` table.
//!
//! A TUF root has no certificate to hang its expiry on, so it is recorded as a key object of
//! class `trust-root` whose attributes carry `not_after` (Unix seconds) from the signed
//! metadata's `expires` (TUF specification §4.3, "expires"); the key policy checks it like a
//! certificate's notAfter (`trust-root-expiring`, `trust-root-expired`). Its signatures are
//! checked against its own root keys (`verified`, `valid_signatures`); the chain to the previous
//! version seen at the same place is the scan's to check (`app::trust`), from `document`.

use crate::sources::KeyObject;
use crate::x509::{ber, tuf};
use serde_json::json;
use sha2::Digest;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("holds no PEM `PUBLIC KEY` block")]
    NoPublicKey,
    #[error("PEM `PUBLIC KEY` block {index}: {message}")]
    BadPublicKey { index: usize, message: String },
    #[error("not TUF metadata: {0}")]
    NotJson(String),
    #[error("TUF metadata of type `{0}`, not `root`")]
    NotRoot(String),
    #[error("TUF root: `signed.expires` {0}")]
    Expires(String),
}

/// The first PEM `PUBLIC KEY` (SubjectPublicKeyInfo, RFC 5280 §4.1.2.7) of `data`, as a public
/// key object with its algorithm, size and SPKI hash.
pub fn public_key(data: &[u8]) -> Result<KeyObject, TrustError> {
    let block = crate::x509::pem::scan(data).into_iter().find(|b| b.label == "PUBLIC KEY").ok_or(TrustError::NoPublicKey)?;
    let bad = |message: String| TrustError::BadPublicKey { index: block.index, message };
    let der = block.body.clone().map_err(bad)?;
    let spki = ber::single(&der).and_then(|t| t.expect(ber::SEQUENCE, "SubjectPublicKeyInfo")).map_err(|e| bad(e.to_string()))?;
    let mut k = spki.children();
    let alg = k.required("algorithm").map_err(|e| bad(e.to_string()))?;
    let bits = k.required("subjectPublicKey").map_err(|e| bad(e.to_string()))?;
    if bits.tag != 0x03 || bits.content.is_empty() {
        return Err(bad("subjectPublicKey is not a BIT STRING".into()));
    }
    let mut a = alg.children();
    let oid = a.required("algorithm OID").and_then(|t| ber::oid_string(&t)).map_err(|e| bad(e.to_string()))?;
    let params = a.next_tlv().map_err(|e| bad(e.to_string()))?;
    let facts = crate::x509::cert::key_facts(&oid, params.as_ref(), &bits.content[1..]);
    Ok(KeyObject {
        label: None,
        key_id: None,
        class: "public".into(),
        algorithm: facts.algorithm,
        bits: facts.bits,
        curve: facts.curve,
        spki_sha256: Some(hex::encode(sha2::Sha256::digest(&der))),
        attributes: json!({"format": "pem"}),
        document: None,
    })
}

/// A TUF root metadata file (`{"signed": {"_type": "root", "version", "expires", "keys",
/// "roles", …}, "signatures": […]}`) as a trust-root object, its signatures checked against its
/// own root keys and threshold (TUF specification §5.3.4, [`crate::x509::tuf`]). The expiry is
/// read even when the root cannot be verified: clients stop accepting it at `expires` either way.
/// `document` keeps the bytes: the scan verifies the next version against this one's keys.
pub fn tuf_root(data: &[u8]) -> Result<KeyObject, TrustError> {
    let v: serde_json::Value = serde_json::from_slice(data).map_err(|e| TrustError::NotJson(e.to_string()))?;
    let signed = v.get("signed").ok_or_else(|| TrustError::NotJson("no `signed` object".into()))?;
    let kind = signed.get("_type").and_then(|t| t.as_str()).unwrap_or("");
    if !kind.eq_ignore_ascii_case("root") {
        return Err(TrustError::NotRoot(kind.to_string()));
    }
    let expires = signed.get("expires").and_then(|e| e.as_str()).ok_or_else(|| TrustError::Expires("is missing".into()))?;
    let not_after = expires
        .parse::<jiff::Timestamp>()
        .map_err(|e| TrustError::Expires(format!("`{expires}` is not an RFC 3339 time: {e}")))?
        .as_second();
    let version = signed.get("version").and_then(|n| n.as_u64());
    let keys = signed.get("keys").and_then(|k| k.as_object()).map(|k| k.len()).unwrap_or(0);
    let root_threshold = signed.pointer("/roles/root/threshold").and_then(|n| n.as_u64());
    let signatures = v.get("signatures").and_then(|s| s.as_array()).map(|s| s.len()).unwrap_or(0);
    let mut attributes = json!({
        "not_after": not_after,
        "expires": expires,
        "version": version,
        "spec_version": signed.get("spec_version"),
        "keys": keys,
        "root_threshold": root_threshold,
        "signatures": signatures,
        "content_sha256": hex::encode(sha2::Sha256::digest(data)),
    });
    match tuf::parse_root(data) {
        Ok(root) => {
            let own = tuf::count(&root, &root);
            attributes["valid_signatures"] = own.valid.into();
            attributes["verified"] = own.met().into();
            attributes["signed_sha256"] = hex::encode(sha2::Sha256::digest(&root.canonical)).into();
        }
        Err(e) => {
            attributes["verified"] = false.into();
            attributes["verify_error"] = e.to_string().into();
        }
    }
    Ok(KeyObject {
        label: Some(match version {
            Some(n) => format!("TUF root v{n}"),
            None => "TUF root".into(),
        }),
        key_id: None,
        class: "trust-root".into(),
        algorithm: "TUF".into(),
        bits: None,
        curve: None,
        spki_sha256: None,
        attributes,
        document: Some(data.to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_keys_of_each_algorithm() {
        for (alg, want) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, ("EC", Some(256), Some("P-256"))),
            (&rcgen::PKCS_ECDSA_P384_SHA384, ("EC", Some(384), Some("P-384"))),
            (&rcgen::PKCS_ED25519, ("Ed25519", Some(256), None)),
        ] {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let k = public_key(key.public_key_pem().as_bytes()).unwrap();
            assert_eq!((k.algorithm.as_str(), k.bits, k.curve.as_deref()), want);
            assert_eq!(k.class, "public");
            assert_eq!(k.spki_sha256, Some(hex::encode(sha2::Sha256::digest(rcgen::PublicKeyData::subject_public_key_info(&key)))));
        }
        assert_eq!(public_key(b"not pem"), Err(TrustError::NoPublicKey));
        let cert = rcgen::CertificateParams::new(vec!["x".into()]).unwrap().self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap();
        assert_eq!(public_key(cert.pem().as_bytes()), Err(TrustError::NoPublicKey), "a certificate is not a bare public key");
    }

    /// The shape of Sigstore's production root (root-signing repository, `root.json` v10).
    pub const SIGSTORE_ROOT: &str = r#"{
 "signed": {
  "_type": "root",
  "spec_version": "1.0",
  "version": 10,
  "expires": "2025-08-19T14:33:09Z",
  "keys": {
   "6f260089d5923daf20166ca657c543af618346ab971884a99962b01988bbe0c3": {
    "keytype": "ecdsa",
    "scheme": "ecdsa-sha2-nistp256",
    "keyid_hash_algorithms": ["sha256", "sha512"],
    "keyval": {"public": "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEohqIdE+yTl4OxpX8ZxNUPrg3SL9H\nBDnhZuceKkxy2oMhUOxhWweZeG3bfM1T4ZLnJimC6CAYVU5+F5jZCoftRw==\n-----END PUBLIC KEY-----\n"},
    "x-tuf-on-ci-keyowner": "@bobcallaway"
   }
  },
  "roles": {
   "root": {"keyids": ["6f260089d5923daf20166ca657c543af618346ab971884a99962b01988bbe0c3"], "threshold": 3},
   "snapshot": {"keyids": ["aa61e09f6af7662ac686cf0c6364079f63d3e7a86836684eeced93eace3acd81"], "threshold": 1, "x-tuf-on-ci-expiry-period": 21, "x-tuf-on-ci-signing-period": 7},
   "targets": {"keyids": ["6f260089d5923daf20166ca657c543af618346ab971884a99962b01988bbe0c3"], "threshold": 3},
   "timestamp": {"keyids": ["61643838125b440b40db6942f5cb5a31c0dc04368316eb2aaa58b95904a58222"], "threshold": 1}
  },
  "consistent_snapshot": true,
  "x-tuf-on-ci-expiry-period": 197,
  "x-tuf-on-ci-signing-period": 46
 },
 "signatures": [
  {"keyid": "6f260089d5923daf20166ca657c543af618346ab971884a99962b01988bbe0c3", "sig": "30450221008b78f894c3cfed3bd486379c4e0e0dfb3e7dd8cbc4d5598d2818eea1ba3c7550022029d3d06e89d04d37849985dc46c0e10dc5b1fc68dc70af1ec9910303a1f3ee2f"}
 ]
}"#;

    #[test]
    fn a_sigstore_root_gives_its_expiry() {
        let k = tuf_root(SIGSTORE_ROOT.as_bytes()).unwrap();
        assert_eq!(k.class, "trust-root");
        assert_eq!(k.label.as_deref(), Some("TUF root v10"));
        // 2025-08-19T14:33:09Z
        assert_eq!(k.attributes["not_after"], 1_755_613_989);
        assert_eq!(k.attributes["expires"], "2025-08-19T14:33:09Z");
        assert_eq!((k.attributes["keys"].as_u64(), k.attributes["root_threshold"].as_u64()), (Some(1), Some(3)));
        // Trimmed from the real root, its one signature no longer holds (and one of three would not
        // reach the threshold): not verified, and said so.
        assert_eq!((k.attributes["verified"].as_bool(), k.attributes["valid_signatures"].as_u64()), (Some(false), Some(0)));
        assert_eq!(k.document.as_deref(), Some(SIGSTORE_ROOT.as_bytes()));
        let real = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tuf/14.root.json")).unwrap();
        let k = tuf_root(&real).unwrap();
        assert_eq!((k.attributes["verified"].as_bool(), k.attributes["valid_signatures"].as_u64()), (Some(true), Some(4)));
        // A root whose root role is malformed still gives its expiry, unverified with the reason.
        let k =
            tuf_root(br#"{"signed": {"_type": "root", "version": 2, "expires": "2030-01-01T00:00:00Z", "roles": {}}, "signatures": []}"#)
                .unwrap();
        assert_eq!(k.attributes["verified"], false);
        assert!(k.attributes["verify_error"].as_str().unwrap().contains("roles.root"), "{}", k.attributes);
        assert!(matches!(tuf_root(b"{\"signed\": {\"_type\": \"timestamp\"}}"), Err(TrustError::NotRoot(t)) if t == "timestamp"));
        assert!(matches!(tuf_root(b"{\"signed\": {\"_type\": \"root\", \"expires\": \"soon\"}}"), Err(TrustError::Expires(_))));
        assert!(matches!(tuf_root(b"[1"), Err(TrustError::NotJson(_))));
    }
}
