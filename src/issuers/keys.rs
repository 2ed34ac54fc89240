//! The certificate key of a managed certificate: generated (ECDSA, Ed25519 through ring; RSA
//! through the RustCrypto `rsa` crate, since ring cannot generate RSA keys) or reused from the
//! installed key file when the rotation policy allows.
//!
//! When a key is generated its SPKI hash and creation time are recorded in the state directory
//! (`managed/key-<name>.json`), which is how `rotate: {max_age: …}` knows the installed key's age.
//! A key of unknown age is replaced.

use crate::config::managed::{InstallSpec, KeyRotation, KeyType, ManagedSpec};
use crate::x509::cert;
use rcgen::PublicKeyData;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("cannot generate a {kind} key: {reason}")]
    Generate { kind: &'static str, reason: String },
    #[error("cannot record the key in {path}: {reason}")]
    Record { path: PathBuf, reason: String },
}

/// What is known about the key currently installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledKey {
    /// Same type and size as configured.
    pub type_matches: bool,
    /// Pairs with the installed leaf certificate.
    pub matches_leaf: bool,
    /// When certvigil generated it (from the record), if known.
    pub created: Option<i64>,
}

/// Whether to keep the installed key, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyDecision {
    Reuse(String),
    Generate(String),
}

/// The rotation policy applied to what is installed. Pure.
pub fn decide(rotation: KeyRotation, installed: Option<&InstalledKey>, now: i64) -> KeyDecision {
    let usable = match installed {
        _ if rotation == KeyRotation::Always => return KeyDecision::Generate("rotate: always".into()),
        None => return KeyDecision::Generate("no key installed".into()),
        Some(k) if !k.type_matches => return KeyDecision::Generate("the installed key is not of the configured type".into()),
        Some(k) if !k.matches_leaf => return KeyDecision::Generate("the installed key does not match the installed certificate".into()),
        Some(k) => k,
    };
    match rotation {
        KeyRotation::Always => KeyDecision::Generate("rotate: always".into()),
        KeyRotation::Never => KeyDecision::Reuse("rotate: never".into()),
        KeyRotation::MaxAge(max) => match usable.created {
            None => KeyDecision::Generate("the installed key's age is unknown".into()),
            Some(c) if now.saturating_sub(c) >= i64::try_from(max.as_secs()).unwrap_or(i64::MAX) => {
                KeyDecision::Generate(format!("the installed key is older than max_age ({}s)", max.as_secs()))
            }
            Some(c) => KeyDecision::Reuse(format!("the installed key is {}s old, under max_age", now.saturating_sub(c))),
        },
    }
}

/// ring's system RNG as a `rand_core` generator for the `rsa` crate.
struct RingRng(ring::rand::SystemRandom);

#[derive(Debug)]
struct RngFailed;

impl std::fmt::Display for RngFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the system random number generator failed")
    }
}

impl std::error::Error for RngFailed {}

impl rand_core::TryRng for RingRng {
    type Error = RngFailed;

    fn try_next_u32(&mut self) -> Result<u32, RngFailed> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, RngFailed> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), RngFailed> {
        ring::rand::SecureRandom::fill(&self.0, dst).map_err(|_| RngFailed)
    }
}

impl rand_core::TryCryptoRng for RingRng {}

/// A new key of `kind`. RSA generation takes a while (seconds for 4096 bits): call it off the
/// async executor.
pub fn generate(kind: KeyType) -> Result<rcgen::KeyPair, KeyError> {
    let err = |reason: String| KeyError::Generate { kind: kind.as_str(), reason };
    let alg = match kind {
        KeyType::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyType::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyType::Ed25519 => &rcgen::PKCS_ED25519,
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
            use rsa::pkcs8::EncodePrivateKey;
            let bits = kind.rsa_bits().unwrap_or(2048);
            let key = rsa::PrivateKey::new(&mut RingRng(ring::rand::SystemRandom::new()), bits).map_err(|e| err(e.to_string()))?;
            let der = key.to_pkcs8_der().map_err(|e| err(e.to_string()))?;
            return rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der.as_bytes().into(), &rcgen::PKCS_RSA_SHA256)
                .map_err(|e| err(e.to_string()));
        }
    };
    rcgen::KeyPair::generate_for(alg).map_err(|e| err(e.to_string()))
}

fn type_matches(key: &rcgen::KeyPair, kind: KeyType) -> bool {
    let alg = key.algorithm();
    match kind {
        KeyType::P256 => alg == &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyType::P384 => alg == &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyType::Ed25519 => alg == &rcgen::PKCS_ED25519,
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
            use rsa::pkcs8::DecodePublicKey;
            use rsa::traits::PublicKeyParts;
            rsa::PublicKey::from_public_key_der(&key.subject_public_key_info())
                .is_ok_and(|k| Some(k.n().bit_width() as usize) == kind.rsa_bits())
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    spki_sha256: String,
    created: i64,
}

fn record_path(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join("managed").join(format!("key-{name}.json"))
}

fn spki_hash(key: &rcgen::KeyPair) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.subject_public_key_info()))
}

/// The installed key (PEM) and what is known about it, if it can be read.
pub fn installed(install: &InstallSpec, kind: KeyType, state_dir: &Path, name: &str) -> Option<(String, InstalledKey)> {
    let pem = std::fs::read_to_string(install.key.as_ref()?).ok()?;
    let key = rcgen::KeyPair::from_pem(&pem).ok()?;
    let leaf_file = install.leaf_file();
    let matches_leaf = leaf_file
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| crate::install::files::chain_ders(&t).ok())
        .and_then(|ders| cert::raw_parts(&ders[0]).ok().map(|p| p.spki.to_vec()))
        .is_some_and(|spki| spki == key.subject_public_key_info());
    let created = std::fs::read(record_path(state_dir, name))
        .ok()
        .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
        .filter(|r| r.spki_sha256 == spki_hash(&key))
        .map(|r| r.created);
    Some((pem, InstalledKey { type_matches: type_matches(&key, kind), matches_leaf, created }))
}

/// The key for the next certificate of `spec` and whether it is the installed one.
pub async fn certificate_key(spec: &ManagedSpec, state_dir: &Path, now: i64) -> Result<(rcgen::KeyPair, bool), KeyError> {
    let current = installed(&spec.install, spec.key, state_dir, &spec.name);
    match decide(spec.rotate, current.as_ref().map(|c| &c.1), now) {
        KeyDecision::Reuse(why) => {
            if let Some(key) = current.and_then(|(pem, _)| rcgen::KeyPair::from_pem(&pem).ok()) {
                tracing::info!(name = %spec.name, reason = %why, "reusing the installed certificate key");
                return Ok((key, true));
            }
        }
        KeyDecision::Generate(why) => tracing::debug!(name = %spec.name, reason = %why, "generating a new certificate key"),
    }
    let kind = spec.key;
    let key = tokio::task::spawn_blocking(move || generate(kind))
        .await
        .map_err(|e| KeyError::Generate { kind: kind.as_str(), reason: e.to_string() })??;
    let path = record_path(state_dir, &spec.name);
    let json = serde_json::to_vec(&Record { spki_sha256: spki_hash(&key), created: now }).unwrap_or_default();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| KeyError::Record { path: path.clone(), reason: e.to_string() })?;
    }
    write_private(&path, &json).map_err(|e| KeyError::Record { path: path.clone(), reason: e.to_string() })?;
    Ok((key, false))
}

/// Writes `bytes` to `path` with mode 0600 (temp file, fsync, rename).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("file")));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const DAY: i64 = 86_400;

    fn k(created: Option<i64>) -> InstalledKey {
        InstalledKey { type_matches: true, matches_leaf: true, created }
    }

    #[test]
    fn rotation_policy() {
        let now = 1_000 * DAY;
        let max = KeyRotation::MaxAge(Duration::from_secs(30 * DAY as u64));
        assert!(matches!(decide(KeyRotation::Always, Some(&k(Some(now))), now), KeyDecision::Generate(_)));
        assert!(matches!(decide(KeyRotation::Never, Some(&k(None)), now), KeyDecision::Reuse(_)));
        assert!(matches!(decide(KeyRotation::Never, None, now), KeyDecision::Generate(_)));
        let wrong = InstalledKey { type_matches: false, ..k(None) };
        assert!(matches!(decide(KeyRotation::Never, Some(&wrong), now), KeyDecision::Generate(_)));
        let unpaired = InstalledKey { matches_leaf: false, ..k(None) };
        assert!(matches!(decide(KeyRotation::Never, Some(&unpaired), now), KeyDecision::Generate(_)));
        assert!(matches!(decide(max, Some(&k(Some(now - 29 * DAY))), now), KeyDecision::Reuse(_)));
        assert!(matches!(decide(max, Some(&k(Some(now - 30 * DAY))), now), KeyDecision::Generate(_)));
        assert!(matches!(decide(max, Some(&k(None)), now), KeyDecision::Generate(_)));
    }

    #[test]
    fn generates_each_type() {
        for kind in [KeyType::P256, KeyType::P384, KeyType::Ed25519, KeyType::Rsa2048] {
            let key = generate(kind).unwrap();
            assert!(type_matches(&key, kind), "{kind:?}");
            // The key signs a CSR (the RSA key through ring).
            let params = rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap();
            params.serialize_request(&key).unwrap();
            // And round-trips through PEM.
            assert!(type_matches(&rcgen::KeyPair::from_pem(&key.serialize_pem()).unwrap(), kind));
        }
        assert!(!type_matches(&generate(KeyType::P256).unwrap(), KeyType::P384));
        assert!(!type_matches(&generate(KeyType::Rsa2048).unwrap(), KeyType::Rsa3072));
    }
}
