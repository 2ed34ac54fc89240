//! Signature verification for CRLs, OCSP responses and certificate chains (pure).
//!
//! The signature algorithm identifier and the signer's SubjectPublicKeyInfo decide the ring
//! verification algorithm: RSA PKCS#1 v1.5 (SHA-1 legacy, SHA-2), RSASSA-PSS (SHA-2, MGF1 with
//! the same hash, RFC 4055), ECDSA on P-256/P-384 with SHA-256/384, and Ed25519. Anything else is
//! an explicit "unsupported" error, which callers turn into status `unknown`, never `good`.

use super::ber::{self, Tlv};
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("signature does not verify with the issuer's key")]
    BadSignature,
    #[error("unsupported signature algorithm {0}")]
    Unsupported(String),
    #[error("malformed key or algorithm: {0}")]
    Malformed(String),
    /// The key is too short for the configured floor: named as such, because a correct
    /// signature by a weak key is not a forgery and an operator fixes it differently.
    #[error("issuer key too weak (RSA {bits} < {min})")]
    WeakKey { bits: u32, min: u32 },
}

/// The smallest RSA signer key accepted by default (`revocation.min_issuer_rsa_bits`): the
/// CA/Browser Forum and NIST SP 800-131A floor.
pub const DEFAULT_MIN_RSA_BITS: u32 = 2048;
/// The smallest floor that can be configured: ring verifies nothing shorter.
pub const LOWEST_MIN_RSA_BITS: u32 = 1024;

const RSA: &str = "1.2.840.113549.1.1.1";
const RSA_PSS: &str = "1.2.840.113549.1.1.10";
const EC: &str = "1.2.840.10045.2.1";
const ED25519: &str = "1.3.101.112";
const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";

/// The key's algorithm OID, curve OID (EC) and raw key bits, from a DER SubjectPublicKeyInfo.
pub struct KeyInfo<'a> {
    alg: String,
    curve: Option<String>,
    bits: &'a [u8],
}

pub fn key_info(spki_der: &[u8]) -> Result<KeyInfo<'_>, VerifyError> {
    let bad = |e: ber::BerError| VerifyError::Malformed(e.to_string());
    let spki = ber::single(spki_der).map_err(bad)?;
    let mut r = spki.children();
    let alg = r.required("SPKI has no algorithm").map_err(bad)?;
    let key = r.required("SPKI has no key").map_err(bad)?;
    let mut a = alg.children();
    let oid = ber::oid_string(&a.required("algorithm has no OID").map_err(bad)?).map_err(bad)?;
    let curve = match a.next_tlv().map_err(bad)? {
        Some(p) if p.tag == ber::OID => Some(ber::oid_string(&p).map_err(bad)?),
        _ => None,
    };
    // BIT STRING: first content octet is the unused-bit count (0 for keys).
    let bits = key
        .content
        .split_first()
        .filter(|(unused, _)| **unused == 0)
        .map(|(_, b)| b)
        .ok_or(VerifyError::Malformed("key BIT STRING".into()))?;
    Ok(KeyInfo { alg: oid, curve, bits })
}

/// The hash named by an RSASSA-PSS parameter set (RFC 4055 §3.1). SHA-1 (the default) is
/// refused, and the salt must be as long as the hash (RFC 4055 §3.1's recommendation and the
/// only form ring verifies); anything else is reported as unsupported, not as a bad signature.
fn pss_hash(params: Option<Tlv<'_>>) -> Result<&'static str, VerifyError> {
    let m = |e: ber::BerError| VerifyError::Malformed(e.to_string());
    let params = params.ok_or(VerifyError::Unsupported("RSASSA-PSS without parameters (SHA-1)".into()))?;
    let mut r = params.children();
    let mut hash = None;
    let mut salt: u64 = 20;
    while let Some(field) = r.next_tlv().map_err(m)? {
        match field.tag {
            0xa0 => {
                let alg = field.children().required("hashAlgorithm").map_err(m)?;
                let oid = ber::oid_string(&alg.children().required("hash OID").map_err(m)?).map_err(m)?;
                hash = Some(match oid.as_str() {
                    "2.16.840.1.101.3.4.2.1" => ("sha256", 32),
                    "2.16.840.1.101.3.4.2.2" => ("sha384", 48),
                    "2.16.840.1.101.3.4.2.3" => ("sha512", 64),
                    other => return Err(VerifyError::Unsupported(format!("RSASSA-PSS hash {other}"))),
                });
            }
            0xa2 => salt = field.children().required("saltLength").map_err(m)?.small_uint().map_err(m)?,
            _ => {}
        }
    }
    let (name, len) = hash.ok_or(VerifyError::Unsupported("RSASSA-PSS with SHA-1".into()))?;
    if salt != len {
        return Err(VerifyError::Unsupported(format!("RSASSA-PSS with a {salt}-byte salt (only salt length = hash length, {len} bytes)")));
    }
    Ok(name)
}

/// Verifies `signature` over `message`. `alg_der` is the DER AlgorithmIdentifier that names the
/// signature algorithm; `spki_der` the signer's SubjectPublicKeyInfo. An RSA key shorter than
/// `min_rsa_bits` is refused as [`VerifyError::WeakKey`] whatever the hash (SHA-1 included),
/// before any verification; at or above it, keys from 1024 bits verify with SHA-1, SHA-256
/// and SHA-512 (ring's legacy algorithms below 2048 bits).
pub fn verify(alg_der: &[u8], spki_der: &[u8], message: &[u8], signature: &[u8], min_rsa_bits: u32) -> Result<(), VerifyError> {
    let bad = |e: ber::BerError| VerifyError::Malformed(e.to_string());
    let alg = ber::single(alg_der).map_err(bad)?;
    let mut a = alg.children();
    let sig_oid = ber::oid_string(&a.required("algorithm has no OID").map_err(bad)?).map_err(bad)?;
    let params = a.next_tlv().map_err(bad)?;
    let key = key_info(spki_der)?;
    let mut short_rsa = false;
    if key.alg == RSA || key.alg == RSA_PSS {
        let bits = super::cert::rsa_modulus_bits(key.bits).ok_or(VerifyError::Malformed("RSA public key".into()))?;
        if bits < min_rsa_bits.max(LOWEST_MIN_RSA_BITS) {
            return Err(VerifyError::WeakKey { bits, min: min_rsa_bits.max(LOWEST_MIN_RSA_BITS) });
        }
        short_rsa = bits < 2048;
    }
    let algorithm: &'static dyn VerificationAlgorithm = match (sig_oid.as_str(), key.alg.as_str(), key.curve.as_deref()) {
        ("1.2.840.113549.1.1.5", RSA, _) => &signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
        ("1.2.840.113549.1.1.11", RSA, _) if short_rsa => &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
        ("1.2.840.113549.1.1.13", RSA, _) if short_rsa => &signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
        ("1.2.840.113549.1.1.11", RSA, _) => &signature::RSA_PKCS1_2048_8192_SHA256,
        ("1.2.840.113549.1.1.12", RSA, _) if !short_rsa => &signature::RSA_PKCS1_2048_8192_SHA384,
        ("1.2.840.113549.1.1.13", RSA, _) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (RSA_PSS, RSA | RSA_PSS, _) if !short_rsa => match pss_hash(params)? {
            "sha256" => &signature::RSA_PSS_2048_8192_SHA256,
            "sha384" => &signature::RSA_PSS_2048_8192_SHA384,
            _ => &signature::RSA_PSS_2048_8192_SHA512,
        },
        ("1.2.840.10045.4.3.2", EC, Some(P256)) => &signature::ECDSA_P256_SHA256_ASN1,
        ("1.2.840.10045.4.3.3", EC, Some(P256)) => &signature::ECDSA_P256_SHA384_ASN1,
        ("1.2.840.10045.4.3.2", EC, Some(P384)) => &signature::ECDSA_P384_SHA256_ASN1,
        ("1.2.840.10045.4.3.3", EC, Some(P384)) => &signature::ECDSA_P384_SHA384_ASN1,
        (ED25519, ED25519, _) => &signature::ED25519,
        (s, RSA | RSA_PSS, _) if short_rsa => {
            return Err(VerifyError::Unsupported(format!(
                "{} with an RSA key under 2048 bits (only PKCS#1 v1.5 with SHA-1, SHA-256 or SHA-512 is verified for such keys)",
                super::cert::oid_name(s)
            )));
        }
        (s, k, c) => {
            return Err(VerifyError::Unsupported(format!(
                "{} with a {} key{}",
                super::cert::oid_name(s),
                super::cert::oid_name(k),
                c.map(|c| format!(" on curve {c}")).unwrap_or_default()
            )));
        }
    };
    UnparsedPublicKey::new(algorithm, key.bits).verify(message, signature).map_err(|_| VerifyError::BadSignature)
}

/// The parts of a signed structure `SEQUENCE { tbs, AlgorithmIdentifier, BIT STRING }`
/// (certificates, CRLs, BasicOCSPResponse): the exact signed bytes, the algorithm's DER and the
/// signature value.
pub struct Signed<'a> {
    pub tbs: Tlv<'a>,
    pub alg: &'a [u8],
    pub signature: &'a [u8],
}

pub fn split_signed<'a>(t: &Tlv<'a>) -> Result<Signed<'a>, ber::BerError> {
    let mut r = t.children();
    let tbs = r.required("missing to-be-signed part")?.expect(ber::SEQUENCE, "to-be-signed part must be a SEQUENCE")?;
    let alg = r.required("missing signature algorithm")?.expect(ber::SEQUENCE, "signature algorithm must be a SEQUENCE")?;
    let sig = r.required("missing signature")?;
    if sig.tag != 0x03 {
        return Err(ber::BerError { offset: sig.offset, what: "signature must be a BIT STRING" });
    }
    let signature = sig
        .content
        .split_first()
        .filter(|(u, _)| **u == 0)
        .map(|(_, s)| s)
        .ok_or(ber::BerError { offset: sig.offset, what: "signature BIT STRING has unused bits" })?;
    Ok(Signed { tbs, alg: alg.raw, signature })
}

/// Verifies that `cert_der` was signed by the key in `issuer_spki_der` (an RSA key of at least
/// `min_rsa_bits`).
pub fn verify_cert_signed_by(cert_der: &[u8], issuer_spki_der: &[u8], min_rsa_bits: u32) -> Result<(), VerifyError> {
    let t = ber::single(cert_der).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    let s = split_signed(&t).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    verify(s.alg, issuer_spki_der, s.tbs.raw, s.signature, min_rsa_bits)
}
