//! TUF root metadata (`root.json`, as Sigstore ships it) verified, not just dated: its
//! signatures over the canonical JSON of `signed` checked against its own root keys and
//! threshold, and a new version against the previous one's keys (the chain of roots). Pure:
//! bytes in, verdicts out.
//!
//! The TUF specification (v1.0, "The Update Framework Specification"): §4.3 root.json format
//! (`signed.roles.root.{keyids, threshold}`, `signed.keys`), §4.2 signatures over the canonical
//! JSON of `signed` (OLPC canonical JSON as securesystemslib encodes it), §5.3.4 a new root must
//! be signed by a threshold of the trusted root's root keys and by a threshold of its own, §5.3.5
//! its version must be the trusted version + 1 (a lower one is a rollback).
//!
//! Key types: `ecdsa` / `ecdsa-sha2-nistp256` (scheme `ecdsa-sha2-nistp256`, PEM SPKI public key,
//! hex DER signature), `ed25519` (hex raw public key and signature), `rsa` (scheme
//! `rsassa-pss-sha256`, PEM SPKI, salt as long as the hash: the only form ring verifies). A key of
//! another type or a malformed one counts for nothing; it never makes verification fail open.

use super::verify;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TufError {
    #[error("not TUF metadata: {0}")]
    NotJson(String),
    #[error("TUF metadata of type `{0}`, not `root`")]
    NotRoot(String),
    #[error("TUF root: {0}")]
    Malformed(String),
    /// Canonical JSON has no floating-point numbers (securesystemslib refuses them).
    #[error("TUF root: `signed` holds a number that is not an integer ({0}), which canonical JSON cannot encode")]
    NotCanonical(String),
}

/// A public key of the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub keytype: String,
    pub scheme: String,
    pub public: String,
}

/// A parsed root: what verification needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    pub version: u64,
    /// `signed.expires`, Unix seconds.
    pub expires: i64,
    pub threshold: usize,
    /// The root role's key ids.
    pub root_keyids: Vec<String>,
    pub keys: BTreeMap<String, Key>,
    /// The canonical JSON of `signed`: the signed bytes.
    pub canonical: Vec<u8>,
    /// (keyid, signature bytes) as listed; undecodable signatures are kept empty.
    pub signatures: Vec<(String, Vec<u8>)>,
}

/// How many of `by`'s root keys signed `meta` validly, and the threshold they must reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub valid: usize,
    pub threshold: usize,
}

impl Count {
    pub fn met(self) -> bool {
        self.threshold > 0 && self.valid >= self.threshold
    }
}

/// Encodes a JSON value as canonical JSON (securesystemslib `encode_canonical`): objects with
/// their keys sorted by code point, no whitespace, strings with only `\` and `"` escaped (every
/// other character as itself, UTF-8), integers only.
pub fn canonical(v: &serde_json::Value) -> Result<Vec<u8>, TufError> {
    let mut out = Vec::new();
    write_canonical(v, &mut out)?;
    Ok(out)
}

fn write_canonical(v: &serde_json::Value, out: &mut Vec<u8>) -> Result<(), TufError> {
    use serde_json::Value;
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => out.extend_from_slice(i.to_string().as_bytes()),
            (None, Some(u)) => out.extend_from_slice(u.to_string().as_bytes()),
            _ => return Err(TufError::NotCanonical(n.to_string())),
        },
        Value::String(s) => write_string(s, out),
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(x, out)?;
            }
            out.push(b']');
        }
        Value::Object(o) => {
            // Byte order of UTF-8 is code point order.
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                if let Some(x) = o.get(k) {
                    write_canonical(x, out)?;
                }
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '\\' => out.extend_from_slice(b"\\\\"),
            '"' => out.extend_from_slice(b"\\\""),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// Parses a root metadata file.
pub fn parse_root(data: &[u8]) -> Result<Root, TufError> {
    let v: serde_json::Value = serde_json::from_slice(data).map_err(|e| TufError::NotJson(e.to_string()))?;
    let signed = v.get("signed").ok_or_else(|| TufError::NotJson("no `signed` object".into()))?;
    let kind = signed.get("_type").and_then(|t| t.as_str()).unwrap_or("");
    if !kind.eq_ignore_ascii_case("root") {
        return Err(TufError::NotRoot(kind.to_string()));
    }
    let bad = |m: &str| TufError::Malformed(m.to_string());
    let version = signed.get("version").and_then(|n| n.as_u64()).ok_or_else(|| bad("`signed.version` is not a positive integer"))?;
    let expires = signed
        .get("expires")
        .and_then(|e| e.as_str())
        .and_then(|e| e.parse::<jiff::Timestamp>().ok())
        .ok_or_else(|| bad("`signed.expires` is not an RFC 3339 time"))?
        .as_second();
    let role = signed.pointer("/roles/root").ok_or_else(|| bad("no `signed.roles.root`"))?;
    let threshold = role
        .get("threshold")
        .and_then(|n| n.as_u64())
        .filter(|n| *n >= 1)
        .ok_or_else(|| bad("root threshold is not a positive integer"))?;
    let root_keyids: Vec<String> = role
        .get("keyids")
        .and_then(|k| k.as_array())
        .ok_or_else(|| bad("root role has no `keyids`"))?
        .iter()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    let mut keys = BTreeMap::new();
    if let Some(o) = signed.get("keys").and_then(|k| k.as_object()) {
        for (id, k) in o {
            let s = |f: &str| k.get(f).and_then(|x| x.as_str()).unwrap_or("").to_string();
            let public = k.pointer("/keyval/public").and_then(|x| x.as_str()).unwrap_or("").to_string();
            keys.insert(id.clone(), Key { keytype: s("keytype"), scheme: s("scheme"), public });
        }
    }
    let signatures = v
        .get("signatures")
        .and_then(|s| s.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| {
                    let id = s.get("keyid")?.as_str()?.to_string();
                    let sig = s.get("sig").and_then(|x| x.as_str()).and_then(|h| hex::decode(h).ok()).unwrap_or_default();
                    Some((id, sig))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Root { version, expires, threshold: threshold as usize, root_keyids, keys, canonical: canonical(signed)?, signatures })
}

/// The DER AlgorithmIdentifier of ecdsa-with-SHA256 (RFC 5758 §3.2).
const ECDSA_SHA256: &[u8] = &[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
/// RSASSA-PSS with SHA-256, MGF1-SHA-256, a 32-byte salt (RFC 4055 §3.1).
const RSA_PSS_SHA256: &[u8] = &[
    0x30, 0x41, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30, 0x34, 0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60,
    0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d,
    0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01,
    0x20,
];

/// Whether `sig` is `key`'s signature over `message`.
fn key_signed(key: &Key, message: &[u8], sig: &[u8]) -> bool {
    if sig.is_empty() {
        return false;
    }
    let pem_spki = || crate::x509::pem::scan(key.public.as_bytes()).into_iter().find(|b| b.label == "PUBLIC KEY").and_then(|b| b.body.ok());
    match (key.keytype.as_str(), key.scheme.as_str()) {
        ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => {
            pem_spki().is_some_and(|spki| verify::verify(ECDSA_SHA256, &spki, message, sig, verify::DEFAULT_MIN_RSA_BITS).is_ok())
        }
        ("ed25519", "ed25519") => hex::decode(&key.public).is_ok_and(|raw| {
            raw.len() == 32 && ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &raw).verify(message, sig).is_ok()
        }),
        ("rsa", "rsassa-pss-sha256") => {
            pem_spki().is_some_and(|spki| verify::verify(RSA_PSS_SHA256, &spki, message, sig, verify::DEFAULT_MIN_RSA_BITS).is_ok())
        }
        _ => false,
    }
}

/// Counts the distinct root keys of `by` whose signature on `meta` verifies (TUF §5.3.4: each key
/// counts once, only keys the role lists, only with a valid signature).
pub fn count(meta: &Root, by: &Root) -> Count {
    let mut signed: BTreeSet<&str> = BTreeSet::new();
    for (id, sig) in &meta.signatures {
        if signed.contains(id.as_str()) || !by.root_keyids.iter().any(|k| k == id) {
            continue;
        }
        if let Some(key) = by.keys.get(id)
            && key_signed(key, &meta.canonical, sig)
        {
            signed.insert(id);
        }
    }
    Count { valid: signed.len(), threshold: by.threshold }
}

/// What the chain of roots says about `new` against the last root trusted at its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chain {
    /// No earlier root to compare with.
    First,
    /// The same version as the trusted one, with the same signed content.
    Same,
    /// Version N+1, signed by a threshold of version N's root keys.
    Verified { from: u64 },
    /// Version N+1 without a threshold of version N's root keys.
    Broken { from: u64, count: Count },
    /// A later version that skips some: the roots between were never seen.
    Gap { from: u64 },
    /// A lower version, or the same version with other content: a rollback or a forgery.
    Rollback { from: u64 },
}

/// `new` against the trusted root `trusted` (TUF §5.3.4–§5.3.5).
pub fn chain(trusted: Option<&Root>, new: &Root) -> Chain {
    let Some(t) = trusted else { return Chain::First };
    match new.version.cmp(&t.version) {
        std::cmp::Ordering::Less => Chain::Rollback { from: t.version },
        std::cmp::Ordering::Equal if new.canonical == t.canonical => Chain::Same,
        std::cmp::Ordering::Equal => Chain::Rollback { from: t.version },
        std::cmp::Ordering::Greater if new.version == t.version + 1 => {
            let c = count(new, t);
            if c.met() { Chain::Verified { from: t.version } } else { Chain::Broken { from: t.version, count: c } }
        }
        std::cmp::Ordering::Greater => Chain::Gap { from: t.version },
    }
}

/// `new` against the trusted root `trusted`, stepping through the roots `seen` for the versions in
/// between when `new` skips some (TUF §5.3: a client moves one version at a time, each new root
/// signed by a threshold of the previous one's root keys and of its own). A skipped version no
/// root of `seen` fills (signed by the step before) leaves the chain [`Chain::Gap`].
pub fn chain_via(trusted: Option<&Root>, seen: &[Root], new: &Root) -> Chain {
    let Some(t) = trusted else { return Chain::First };
    if new.version <= t.version.saturating_add(1) {
        return chain(Some(t), new);
    }
    let mut current = t;
    for v in t.version + 1..new.version {
        match seen.iter().find(|r| r.version == v && count(r, r).met() && count(r, current).met()) {
            Some(r) => current = r,
            None => return Chain::Gap { from: t.version },
        }
    }
    match chain(Some(current), new) {
        Chain::Verified { .. } => Chain::Verified { from: t.version },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real(v: u32) -> Vec<u8> {
        std::fs::read(format!("{}/tests/data/tuf/{v}.root.json", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn canonical_json_as_securesystemslib_encodes_it() {
        let v: serde_json::Value = serde_json::from_str(r#"{"b": [1, -2, true, null], "a": "q\"\\\n\u00e9", "A": {}, "é": 0}"#).unwrap();
        // Sorted by code point ("A" < "a" < "b" < "é"), no whitespace, only \ and " escaped.
        assert_eq!(
            String::from_utf8(canonical(&v).unwrap()).unwrap(),
            "{\"A\":{},\"a\":\"q\\\"\\\\\n\u{e9}\",\"b\":[1,-2,true,null],\"\u{e9}\":0}"
        );
        assert!(matches!(canonical(&serde_json::json!({"x": 1.5})), Err(TufError::NotCanonical(_))));
        assert_eq!(canonical(&serde_json::json!(18446744073709551615u64)).unwrap(), b"18446744073709551615");
    }

    #[test]
    fn every_real_sigstore_root_verifies_itself_and_chains_to_the_next() {
        let mut previous: Option<Root> = None;
        for v in 5..=15 {
            let r = parse_root(&real(v)).unwrap();
            assert_eq!(r.version, u64::from(v));
            let own = count(&r, &r);
            assert!(own.met(), "v{v}: {own:?}");
            match chain(previous.as_ref(), &r) {
                Chain::First => assert_eq!(v, 5),
                Chain::Verified { from } => assert_eq!(from, u64::from(v - 1)),
                other => panic!("v{v}: {other:?}"),
            }
            previous = Some(r);
        }
    }

    #[test]
    fn tampering_rollback_gaps_and_missing_signatures_are_caught() {
        let (v13, v14) = (parse_root(&real(13)).unwrap(), parse_root(&real(14)).unwrap());
        // One byte of `signed` changed: no signature holds.
        let text = String::from_utf8(real(14)).unwrap().replacen("2026-06-22T13:27:01Z", "2027-06-22T13:27:01Z", 1);
        let forged = parse_root(text.as_bytes()).unwrap();
        assert_eq!(count(&forged, &forged).valid, 0);
        assert!(matches!(chain(Some(&v13), &forged), Chain::Broken { from: 13, .. }));
        // Signatures removed until below the threshold (3).
        let mut thin = v14.clone();
        let good: Vec<(String, Vec<u8>)> = thin.signatures.iter().filter(|(_, s)| !s.is_empty()).cloned().collect();
        thin.signatures = good[..2].to_vec();
        assert_eq!(count(&thin, &thin), Count { valid: 2, threshold: 3 });
        // The same signature listed three times counts once.
        thin.signatures = vec![good[0].clone(), good[0].clone(), good[0].clone()];
        assert_eq!(count(&thin, &thin).valid, 1);
        // A signature by a key the root role does not list does not count.
        let mut stranger = v14.clone();
        stranger.root_keyids.retain(|k| *k != good[0].0);
        assert_eq!(count(&v14, &stranger).valid, count(&v14, &v14).valid - 1);
        // Older after newer is a rollback; same version, other content too; a skipped version is a gap.
        assert_eq!(chain(Some(&v14), &v13), Chain::Rollback { from: 14 });
        assert_eq!(chain(Some(&v14), &forged), Chain::Rollback { from: 14 });
        assert_eq!(chain(Some(&v14), &v14), Chain::Same);
        let v12 = parse_root(&real(12)).unwrap();
        assert_eq!(chain(Some(&v12), &v14), Chain::Gap { from: 12 });
        // With the root between seen, the skip is verified step by step; a forged one between
        // does not fill the gap.
        assert_eq!(chain_via(Some(&v12), std::slice::from_ref(&v13), &v14), Chain::Verified { from: 12 });
        let mut fake13 = v13.clone();
        fake13.canonical.push(b' ');
        assert_eq!(chain_via(Some(&v12), &[fake13], &v14), Chain::Gap { from: 12 });
        assert_eq!(chain_via(None, &[], &v14), Chain::First);
        assert_eq!(chain_via(Some(&v13), &[], &v14), Chain::Verified { from: 13 });
        // Step by step, the last step must hold too.
        let v11 = parse_root(&real(11)).unwrap();
        assert!(matches!(chain_via(Some(&v11), &[v12.clone(), v13.clone()], &forged), Chain::Broken { from: 13, .. }));
    }

    #[test]
    fn ed25519_roots_sign_and_verify() {
        use ring::signature::KeyPair;
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let kp = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let public = hex::encode(kp.public_key().as_ref());
        let signed = serde_json::json!({
            "_type": "root", "spec_version": "1.0", "version": 1, "expires": "2030-01-01T00:00:00Z", "consistent_snapshot": true,
            "keys": {"k1": {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": public}}},
            "roles": {"root": {"keyids": ["k1"], "threshold": 1}}
        });
        let sig = hex::encode(kp.sign(&canonical(&signed).unwrap()).as_ref());
        let doc = serde_json::json!({"signed": signed, "signatures": [{"keyid": "k1", "sig": sig}]});
        let r = parse_root(doc.to_string().as_bytes()).unwrap();
        assert!(count(&r, &r).met());
        // Pretty-printed or reordered, the canonical form is the same.
        let r2 = parse_root(serde_json::to_string_pretty(&doc).unwrap().as_bytes()).unwrap();
        assert!(count(&r2, &r2).met());
        // An unknown key type counts for nothing, without an error.
        let mut odd = r.clone();
        odd.keys.get_mut("k1").unwrap().keytype = "sphincs".into();
        assert_eq!(count(&odd, &odd).valid, 0);
    }
}
