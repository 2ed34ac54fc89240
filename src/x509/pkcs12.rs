//! PKCS#12 / PFX (RFC 7292): certificates from cert bags, plaintext or password-protected; and
//! [`write`], which builds a PFX for installing a renewed certificate with its key.
//!
//! Supported protection, which covers what OpenSSL 1.x/3.x, Java keytool and Windows write:
//! MAC with HMAC-SHA-1/SHA-2 over the PKCS#12 KDF (§B.2); encryption with PBES2 (PBKDF2 +
//! AES-CBC or 3DES, RFC 8018) or the PKCS#12 PBE schemes (3DES, 40/128-bit RC2, §C). Keys in
//! shrouded key bags are counted, never decrypted: certvigil needs to know a key is there, not
//! what it is. Passwords never appear in errors.
//!
//! Key derivation is the only costly step, and its cost is chosen by whoever wrote the file (the
//! iteration counts) times the number of passwords configured. Each file gets a fixed budget
//! ([`KDF_BUDGET`]) for all its derivations together — MAC, every encrypted bag, every password —
//! charged before each derivation runs, so a hostile file is refused after a bounded amount of
//! work (or none, when one derivation alone would exceed it) and a legitimate one is not.

use super::ber::{self, BerError, Tlv};
use cbc::cipher::{BlockModeDecrypt, InnerIvInit, KeyIvInit, block_padding::Pkcs7};
use sha2::Digest;

const DATA: &str = "1.2.840.113549.1.7.1";
const ENCRYPTED_DATA: &str = "1.2.840.113549.1.7.6";
const KEY_BAG: &str = "1.2.840.113549.1.12.10.1.1";
const SHROUDED_KEY_BAG: &str = "1.2.840.113549.1.12.10.1.2";
const CERT_BAG: &str = "1.2.840.113549.1.12.10.1.3";
const SAFE_CONTENTS_BAG: &str = "1.2.840.113549.1.12.10.1.6";
const X509_CERT: &str = "1.2.840.113549.1.9.22.1";
const FRIENDLY_NAME: &str = "1.2.840.113549.1.9.20";
const PBES2: &str = "1.2.840.113549.1.5.13";
const PBKDF2: &str = "1.2.840.113549.1.5.12";
const PBE_SHA1_3DES: &str = "1.2.840.113549.1.12.1.3";
const PBE_SHA1_RC2_128: &str = "1.2.840.113549.1.12.1.5";
const PBE_SHA1_RC2_40: &str = "1.2.840.113549.1.12.1.6";

/// Key-derivation work one file may cost, in units of one iteration of the PKCS#12 KDF with
/// SHA-1 or SHA-256 (one hash of one block: about 50 ns on current x86-64, so the whole budget
/// is about a quarter of a second, twice that on a busy machine). Other derivations are charged
/// by their cost relative to that unit ([`Kdf::unit_cost`]), per output block.
///
/// What real writers use: OpenSSL 3 2048 iterations (MAC and PBES2 alike), Java 10,000 (50,000
/// and a 100,000-iteration MAC before JDK 8u301/11.0.12), Windows 2,000, Bouncy Castle 1.86
/// 600,000 (the OWASP figure for PBKDF2-HMAC-SHA256). The budget opens a 600,000-iteration
/// OpenSSL-style file (SHA-256 MAC, PBES2-SHA256 certificates) whose password is the fifth of
/// those configured: 5 × 600,000 + 600,000 × 3 = 4.8M units.
pub const KDF_BUDGET: u64 = 5_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum P12Error {
    #[error("malformed PKCS#12: {0}")]
    Malformed(#[from] BerError),
    #[error("wrong password: MAC verification failed with each of the {tried} password(s) tried")]
    WrongPassword { tried: usize },
    #[error("cannot decrypt: none of the {tried} password(s) tried opens the encrypted certificates")]
    DecryptFailed { tried: usize },
    #[error("unsupported PKCS#12 feature: {0}")]
    Unsupported(String),
    #[error(
        "key derivation over the per-file cap: {purpose} ({kdf}) with iteration count {iterations} costs {cost} units, \
         {spent} already spent on this file, cap {cap} units (one unit: one SHA-1/SHA-256 iteration of the PKCS#12 KDF); not read"
    )]
    TooCostly { purpose: String, kdf: String, iterations: u64, cost: u64, spent: u64, cap: u64 },
}

/// What a PFX holds.
#[derive(Debug, Default, Clone)]
pub struct Contents {
    /// (certificate DER, where in the file: `bag 2 "friendly name"`).
    pub certs: Vec<(Vec<u8>, String)>,
    /// One entry per private key bag.
    pub keys: Vec<String>,
    /// Whether a MAC was present and verified.
    pub mac_verified: bool,
}

/// True when `data` starts like a PFX: SEQUENCE { INTEGER 3, SEQUENCE { OID, ... } }.
pub fn looks_like_pkcs12(data: &[u8]) -> bool {
    let Some((ber::SEQUENCE, body)) = ber::outer_prefix(data) else { return false };
    match ber::Reader::new(body).next_tlv() {
        // The authSafe may itself be cut short: its tag is enough.
        Ok(Some(v)) if v.small_uint() == Ok(3) => body.get(v.raw.len()) == Some(&ber::SEQUENCE),
        _ => false,
    }
}

/// Parses a PFX, trying the empty password and then each of `passwords`.
pub fn parse(data: &[u8], passwords: &[&str]) -> Result<Contents, P12Error> {
    let pfx = ber::single(data)?.expect(ber::SEQUENCE, "PFX must be a SEQUENCE")?;
    let mut fields = pfx.children();
    let version = fields.required("PFX has no version")?.small_uint()?;
    if version != 3 {
        return Err(P12Error::Unsupported(format!("PFX version {version} (expected 3)")));
    }
    let auth_safe = fields.required("PFX has no authSafe")?.expect(ber::SEQUENCE, "authSafe must be a ContentInfo")?;
    let mut ci = auth_safe.children();
    let ctype = ber::oid_string(&ci.required("authSafe has no contentType")?)?;
    if ctype != DATA {
        return Err(P12Error::Unsupported(format!("public-key integrity mode (authSafe content type {ctype})")));
    }
    let content = ci.required("authSafe has no content")?.expect(0xa0, "authSafe content must be [0] EXPLICIT")?;
    let auth_safe_octets = content
        .children()
        .required("authSafe content is empty")?
        .expect(ber::OCTET_STRING, "authSafe content must be an OCTET STRING")?
        .octets()?;

    // The configured passwords first, then the empty one: a protected file is opened by its
    // first matching derivation, not after two empty-password derivations.
    let mut candidates: Vec<&str> = passwords.iter().copied().filter(|p| !p.is_empty()).collect();
    candidates.push("");
    let mut budget = Budget::default();

    // Integrity first: the MAC tells which password is right (§5.1).
    let mut mac_verified = false;
    let mut password: Option<Vec<u8>> = None;
    if let Some(mac_data) = fields.next_tlv()? {
        let mac = MacData::parse(&mac_data)?;
        for (i, p) in candidates.iter().enumerate() {
            for bmp in bmp_variants(p) {
                let purpose = || format!("MAC check with password {} of {}", i + 1, candidates.len());
                budget.charge(Kdf::Pkcs12(mac.hash), mac.iterations, 1, purpose)?;
                if mac.verify(&bmp, &auth_safe_octets)? {
                    mac_verified = true;
                    password = Some(bmp);
                    break;
                }
            }
            if mac_verified {
                break;
            }
        }
        if !mac_verified {
            return Err(P12Error::WrongPassword { tried: candidates.len() });
        }
    }

    let mut out = Contents { mac_verified, ..Contents::default() };
    let list = ber::single(&auth_safe_octets)?.expect(ber::SEQUENCE, "AuthenticatedSafe must be a SEQUENCE")?;
    let mut infos = list.children();
    let mut bag_no = 0usize;
    while let Some(info) = infos.next_tlv()? {
        let mut r = info.children();
        let ctype = ber::oid_string(&r.required("ContentInfo has no contentType")?)?;
        let body = r.required("ContentInfo has no content")?.expect(0xa0, "ContentInfo content must be [0] EXPLICIT")?;
        let inner = body.children().required("ContentInfo content is empty")?;
        let safe_contents = match ctype.as_str() {
            DATA => inner.expect(ber::OCTET_STRING, "data content must be an OCTET STRING")?.octets()?.into_owned(),
            ENCRYPTED_DATA => decrypt_encrypted_data(&inner, password.as_deref(), &candidates, &mut budget)?,
            other => return Err(P12Error::Unsupported(format!("content type {other} (only data and encryptedData are read)"))),
        };
        read_safe_contents(&safe_contents, &mut out, &mut bag_no, 0)?;
    }
    Ok(out)
}

/// The BMPString forms of a password (§B.1): UTF-16BE plus a two-byte NUL terminator; the
/// empty password is also tried as zero bytes, which some writers use.
fn bmp_variants(p: &str) -> Vec<Vec<u8>> {
    let mut v: Vec<u8> = p.encode_utf16().flat_map(u16::to_be_bytes).collect();
    v.extend([0, 0]);
    if p.is_empty() { vec![v, Vec::new()] } else { vec![v] }
}

fn utf8_from_bmp(bmp: &[u8]) -> String {
    let units: Vec<u16> = bmp.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).take_while(|&u| u != 0).collect();
    String::from_utf16_lossy(&units)
}

fn read_safe_contents(data: &[u8], out: &mut Contents, bag_no: &mut usize, depth: usize) -> Result<(), P12Error> {
    if depth > 4 {
        return Err(P12Error::Unsupported("safe contents nested more than 4 levels".into()));
    }
    let seq = ber::single(data)?.expect(ber::SEQUENCE, "SafeContents must be a SEQUENCE")?;
    let mut bags = seq.children();
    while let Some(bag) = bags.next_tlv()? {
        *bag_no += 1;
        let mut r = bag.children();
        let bag_id = ber::oid_string(&r.required("SafeBag has no bagId")?)?;
        let value = r.required("SafeBag has no bagValue")?.expect(0xa0, "bagValue must be [0] EXPLICIT")?;
        let value = value.children().required("bagValue is empty")?;
        let name = r.next_tlv()?.and_then(|attrs| friendly_name(&attrs));
        let detail = match &name {
            Some(n) => format!("bag {} \"{}\"", bag_no, n),
            None => format!("bag {bag_no}"),
        };
        match bag_id.as_str() {
            CERT_BAG => {
                let mut c = value.children();
                let cert_type = ber::oid_string(&c.required("CertBag has no certId")?)?;
                if cert_type != X509_CERT {
                    continue; // SDSI certificates are not X.509.
                }
                let v = c.required("CertBag has no certValue")?.expect(0xa0, "certValue must be [0] EXPLICIT")?;
                let octets = v
                    .children()
                    .required("certValue is empty")?
                    .expect(ber::OCTET_STRING, "certValue must be an OCTET STRING")?
                    .octets()?;
                out.certs.push((octets.into_owned(), detail));
            }
            KEY_BAG | SHROUDED_KEY_BAG => out.keys.push(detail),
            SAFE_CONTENTS_BAG => read_safe_contents(value.raw, out, bag_no, depth + 1)?,
            _ => {} // CRL and secret bags carry no certificates.
        }
    }
    Ok(())
}

fn friendly_name(attrs: &Tlv<'_>) -> Option<String> {
    let mut r = attrs.children();
    while let Ok(Some(attr)) = r.next_tlv() {
        let mut a = attr.children();
        let oid = a.next_tlv().ok().flatten()?;
        if ber::oid_string(&oid).ok()? == FRIENDLY_NAME {
            let set = a.next_tlv().ok().flatten()?;
            let v = set.children().next_tlv().ok().flatten()?;
            if v.tag == ber::BMP_STRING {
                return Some(utf8_from_bmp(v.content));
            }
        }
    }
    None
}

#[derive(Clone, Copy, Debug)]
enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn from_oid(oid: &str) -> Result<Self, P12Error> {
        Ok(match oid {
            "1.3.14.3.2.26" | "1.2.840.113549.2.7" => Hash::Sha1,
            "2.16.840.1.101.3.4.2.1" | "1.2.840.113549.2.9" => Hash::Sha256,
            "2.16.840.1.101.3.4.2.2" | "1.2.840.113549.2.10" => Hash::Sha384,
            "2.16.840.1.101.3.4.2.3" | "1.2.840.113549.2.11" => Hash::Sha512,
            other => return Err(P12Error::Unsupported(format!("digest algorithm {other}"))),
        })
    }

    fn block_len(self) -> usize {
        match self {
            Hash::Sha1 | Hash::Sha256 => 64,
            Hash::Sha384 | Hash::Sha512 => 128,
        }
    }

    fn out_len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    /// `H^iterations(data)`: the PKCS#12 KDF's inner loop, without an allocation per round.
    fn iterate(self, data: &[u8], iterations: u64) -> Vec<u8> {
        fn run<H: Digest>(data: &[u8], iterations: u64) -> Vec<u8> {
            let mut a = H::digest(data);
            for _ in 1..iterations {
                a = H::digest(&a);
            }
            a.to_vec()
        }
        match self {
            Hash::Sha1 => run::<sha1::Sha1>(data, iterations),
            Hash::Sha256 => run::<sha2::Sha256>(data, iterations),
            Hash::Sha384 => run::<sha2::Sha384>(data, iterations),
            Hash::Sha512 => run::<sha2::Sha512>(data, iterations),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Hash::Sha1 => "SHA-1",
            Hash::Sha256 => "SHA-256",
            Hash::Sha384 => "SHA-384",
            Hash::Sha512 => "SHA-512",
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        use hmac::{KeyInit, Mac};
        macro_rules! run {
            ($h:ty) => {{
                let mut m = <hmac::Hmac<$h> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }};
        }
        match self {
            Hash::Sha1 => run!(sha1::Sha1),
            Hash::Sha256 => run!(sha2::Sha256),
            Hash::Sha384 => run!(sha2::Sha384),
            Hash::Sha512 => run!(sha2::Sha512),
        }
    }

    fn pbkdf2(self, password: &[u8], salt: &[u8], rounds: u32, out: &mut [u8]) {
        match self {
            Hash::Sha1 => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, rounds, out),
            Hash::Sha256 => pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, rounds, out),
            Hash::Sha384 => pbkdf2::pbkdf2_hmac::<sha2::Sha384>(password, salt, rounds, out),
            Hash::Sha512 => pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password, salt, rounds, out),
        }
    }
}

/// The PKCS#12 key derivation function, RFC 7292 Appendix B.2. `id` is 1 (key), 2 (IV), 3 (MAC).
fn kdf(hash: Hash, password: &[u8], salt: &[u8], id: u8, iterations: u64, out_len: usize) -> Vec<u8> {
    let v = hash.block_len();
    let fill = |s: &[u8]| -> Vec<u8> {
        if s.is_empty() {
            return Vec::new();
        }
        let len = v * s.len().div_ceil(v);
        s.iter().copied().cycle().take(len).collect()
    };
    let d = vec![id; v];
    let mut i_buf = fill(salt);
    i_buf.extend(fill(password));
    let mut out = Vec::with_capacity(out_len);
    while out.len() < out_len {
        let a = hash.iterate(&[d.as_slice(), i_buf.as_slice()].concat(), iterations);
        let b: Vec<u8> = a.iter().copied().cycle().take(v).collect();
        // Ij = (Ij + B + 1) mod 2^(8v), big-endian.
        for chunk in i_buf.chunks_mut(v) {
            let mut carry: u16 = 1;
            for k in (0..v).rev() {
                let sum = u16::from(chunk[k]) + u16::from(b[k]) + carry;
                chunk[k] = (sum & 0xff) as u8;
                carry = sum >> 8;
            }
        }
        out.extend_from_slice(&a);
    }
    out.truncate(out_len);
    out
}

/// A key derivation function with its hash, for charging the budget.
#[derive(Clone, Copy, Debug)]
enum Kdf {
    /// RFC 7292 Appendix B.2: one hash of one block per iteration.
    Pkcs12(Hash),
    /// PBKDF2 (RFC 8018 §5.2) with HMAC: two hashes per iteration, plus the HMAC's copying.
    Pbkdf2(Hash),
}

impl Kdf {
    /// Budget units one iteration costs per output block: its time relative to the unit,
    /// measured with the hash crates used here (release build, x86-64 with SHA extensions,
    /// best of five runs: PKCS#12 KDF 51 ns with SHA-1, 48 with SHA-256, 251 with SHA-512;
    /// PBKDF2 141 with HMAC-SHA-1, 140 with HMAC-SHA-256, 547 with HMAC-SHA-512), rounded up.
    /// SHA-1 and SHA-256 are hardware accelerated there and SHA-384/512 are not, which makes
    /// the latter dearer than their 128-byte block alone would.
    fn unit_cost(self) -> u64 {
        match self {
            Kdf::Pkcs12(Hash::Sha1 | Hash::Sha256) => 1,
            Kdf::Pkcs12(Hash::Sha384 | Hash::Sha512) => 5,
            Kdf::Pbkdf2(Hash::Sha1 | Hash::Sha256) => 3,
            Kdf::Pbkdf2(Hash::Sha384 | Hash::Sha512) => 11,
        }
    }

    fn name(self) -> String {
        match self {
            Kdf::Pkcs12(h) => format!("PKCS#12 KDF, {}", h.name()),
            Kdf::Pbkdf2(h) => format!("PBKDF2-HMAC-{}", h.name()),
        }
    }

    /// Output blocks (one run of the iterations each) a derivation of `len` bytes takes.
    fn blocks(self, len: usize) -> u64 {
        let (Kdf::Pkcs12(h) | Kdf::Pbkdf2(h)) = self;
        len.div_ceil(h.out_len()).max(1) as u64
    }
}

/// The key-derivation work spent on one file, against [`KDF_BUDGET`].
#[derive(Debug, Default)]
struct Budget {
    spent: u64,
}

impl Budget {
    /// Charges a derivation of `blocks` output blocks before it runs; refuses it, spending
    /// nothing, when it would take the file over the budget.
    fn charge(&mut self, kdf: Kdf, iterations: u64, blocks: u64, purpose: impl FnOnce() -> String) -> Result<(), P12Error> {
        let cost = iterations.saturating_mul(kdf.unit_cost()).saturating_mul(blocks);
        if self.spent.saturating_add(cost) > KDF_BUDGET {
            return Err(P12Error::TooCostly { purpose: purpose(), kdf: kdf.name(), iterations, cost, spent: self.spent, cap: KDF_BUDGET });
        }
        self.spent += cost;
        Ok(())
    }
}

struct MacData {
    hash: Hash,
    digest: Vec<u8>,
    salt: Vec<u8>,
    iterations: u64,
}

impl MacData {
    fn parse(t: &Tlv<'_>) -> Result<Self, P12Error> {
        let mut r = t.expect(ber::SEQUENCE, "MacData must be a SEQUENCE")?.children();
        let digest_info = r.required("MacData has no mac")?;
        let mut di = digest_info.children();
        let alg = di.required("DigestInfo has no algorithm")?;
        let oid = ber::oid_string(&alg.children().required("AlgorithmIdentifier has no OID")?)?;
        if oid == "1.2.840.113549.1.5.14" {
            return Err(P12Error::Unsupported("PBMAC1 integrity (RFC 9579)".into()));
        }
        let hash = Hash::from_oid(&oid)?;
        let digest =
            di.required("DigestInfo has no digest")?.expect(ber::OCTET_STRING, "digest must be an OCTET STRING")?.octets()?.into_owned();
        let salt = r.required("MacData has no salt")?.expect(ber::OCTET_STRING, "macSalt must be an OCTET STRING")?.octets()?.into_owned();
        let iterations = match r.next_tlv()? {
            Some(t) => t.small_uint()?,
            None => 1,
        };
        check_iterations(iterations)?;
        Ok(MacData { hash, digest, salt, iterations })
    }

    fn verify(&self, bmp_password: &[u8], content: &[u8]) -> Result<bool, P12Error> {
        let key = kdf(self.hash, bmp_password, &self.salt, 3, self.iterations, self.hash.out_len());
        Ok(self.hash.hmac(&key, content) == self.digest)
    }
}

/// Iteration counts are `INTEGER (1..MAX)`; large ones are left to the [`Budget`].
fn check_iterations(n: u64) -> Result<(), P12Error> {
    if n == 0 {
        return Err(P12Error::Unsupported("iteration count 0 (must be at least 1)".into()));
    }
    Ok(())
}

/// EncryptedData ::= SEQUENCE { version, EncryptedContentInfo } (RFC 5652 §8).
fn decrypt_encrypted_data(t: &Tlv<'_>, mac_password: Option<&[u8]>, candidates: &[&str], budget: &mut Budget) -> Result<Vec<u8>, P12Error> {
    let mut r = t.expect(ber::SEQUENCE, "EncryptedData must be a SEQUENCE")?.children();
    r.required("EncryptedData has no version")?;
    let eci = r.required("EncryptedData has no EncryptedContentInfo")?;
    let mut e = eci.children();
    e.required("EncryptedContentInfo has no contentType")?;
    let alg = e.required("EncryptedContentInfo has no algorithm")?;
    let ciphertext = match e.next_tlv()? {
        // [0] IMPLICIT OCTET STRING, primitive (0x80) or constructed (0xa0) segments.
        Some(t) if t.tag == 0x80 => t.content.to_vec(),
        Some(t) if t.tag == 0xa0 => {
            let mut buf = Vec::new();
            let mut seg = t.children();
            while let Some(s) = seg.next_tlv()? {
                buf.extend_from_slice(&s.octets()?);
            }
            buf
        }
        _ => return Err(P12Error::Unsupported("encrypted content is absent".into())),
    };
    let scheme = Scheme::parse(&alg)?;
    // With a verified MAC the password is known; without a MAC, try each candidate and accept
    // the one whose plaintext has valid padding and parses as a SEQUENCE.
    let tries: Vec<Vec<u8>> = match mac_password {
        Some(bmp) => vec![bmp.to_vec()],
        None => candidates.iter().flat_map(|p| bmp_variants(p)).collect(),
    };
    for (i, bmp) in tries.iter().enumerate() {
        scheme.charge(budget, || match mac_password {
            Some(_) => "certificate decryption with the MAC's password".into(),
            None => format!("certificate decryption, attempt {} of {}", i + 1, tries.len()),
        })?;
        if let Some(plain) = scheme.decrypt(bmp, &ciphertext).filter(|p| ber::single(p).is_ok_and(|t| t.tag == ber::SEQUENCE)) {
            return Ok(plain);
        }
    }
    Err(P12Error::DecryptFailed { tried: candidates.len() })
}

enum Scheme {
    Pkcs12Pbe { cipher: Cipher, salt: Vec<u8>, iterations: u64 },
    Pbes2 { prf: Hash, salt: Vec<u8>, iterations: u64, cipher: Cipher, iv: Vec<u8> },
}

#[derive(Clone, Copy)]
enum Cipher {
    Aes128,
    Aes192,
    Aes256,
    TripleDes,
    Rc2 { key_len: usize, effective_bits: usize },
}

impl Cipher {
    fn key_len(self) -> usize {
        match self {
            Cipher::Aes128 => 16,
            Cipher::Aes192 => 24,
            Cipher::Aes256 => 32,
            Cipher::TripleDes => 24,
            Cipher::Rc2 { key_len, .. } => key_len,
        }
    }

    fn decrypt(self, key: &[u8], iv: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
        match self {
            Cipher::Aes128 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv).ok()?.decrypt_padded_vec::<Pkcs7>(ct).ok(),
            Cipher::Aes192 => cbc::Decryptor::<aes::Aes192>::new_from_slices(key, iv).ok()?.decrypt_padded_vec::<Pkcs7>(ct).ok(),
            Cipher::Aes256 => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv).ok()?.decrypt_padded_vec::<Pkcs7>(ct).ok(),
            Cipher::TripleDes => cbc::Decryptor::<des::TdesEde3>::new_from_slices(key, iv).ok()?.decrypt_padded_vec::<Pkcs7>(ct).ok(),
            Cipher::Rc2 { effective_bits, .. } => {
                let inner = rc2::Rc2::new_with_eff_key_len(key, effective_bits);
                cbc::Decryptor::<rc2::Rc2>::inner_iv_slice_init(inner, iv).ok()?.decrypt_padded_vec::<Pkcs7>(ct).ok()
            }
        }
    }
}

impl Scheme {
    fn parse(alg: &Tlv<'_>) -> Result<Self, P12Error> {
        let mut r = alg.children();
        let oid = ber::oid_string(&r.required("AlgorithmIdentifier has no OID")?)?;
        let params = r.required("encryption algorithm has no parameters")?;
        match oid.as_str() {
            PBE_SHA1_3DES | PBE_SHA1_RC2_128 | PBE_SHA1_RC2_40 => {
                let mut p = params.children();
                let salt = p.required("PBE parameters have no salt")?.octets()?.into_owned();
                let iterations = p.required("PBE parameters have no iteration count")?.small_uint()?;
                check_iterations(iterations)?;
                let cipher = match oid.as_str() {
                    PBE_SHA1_3DES => Cipher::TripleDes,
                    PBE_SHA1_RC2_128 => Cipher::Rc2 { key_len: 16, effective_bits: 128 },
                    _ => Cipher::Rc2 { key_len: 5, effective_bits: 40 },
                };
                Ok(Scheme::Pkcs12Pbe { cipher, salt, iterations })
            }
            PBES2 => {
                let mut p = params.children();
                let kdf_alg = p.required("PBES2 has no key derivation function")?;
                let enc_alg = p.required("PBES2 has no encryption scheme")?;
                let mut k = kdf_alg.children();
                let kdf_oid = ber::oid_string(&k.required("KDF has no OID")?)?;
                if kdf_oid != PBKDF2 {
                    return Err(P12Error::Unsupported(format!("PBES2 key derivation {kdf_oid} (only PBKDF2)")));
                }
                let mut kp = k.required("PBKDF2 has no parameters")?.children();
                let salt = kp.required("PBKDF2 has no salt")?.octets()?.into_owned();
                let iterations = kp.required("PBKDF2 has no iteration count")?.small_uint()?;
                check_iterations(iterations)?;
                let mut prf = Hash::Sha1; // RFC 8018 default: hmacWithSHA1
                while let Some(t) = kp.next_tlv()? {
                    if t.tag == ber::SEQUENCE {
                        prf = Hash::from_oid(&ber::oid_string(&t.children().required("PRF has no OID")?)?)?;
                    }
                }
                let mut e = enc_alg.children();
                let enc_oid = ber::oid_string(&e.required("encryption scheme has no OID")?)?;
                let cipher = match enc_oid.as_str() {
                    "2.16.840.1.101.3.4.1.2" => Cipher::Aes128,
                    "2.16.840.1.101.3.4.1.22" => Cipher::Aes192,
                    "2.16.840.1.101.3.4.1.42" => Cipher::Aes256,
                    "1.2.840.113549.3.7" => Cipher::TripleDes,
                    other => return Err(P12Error::Unsupported(format!("PBES2 cipher {other}"))),
                };
                let iv = e.required("cipher has no IV")?.octets()?.into_owned();
                Ok(Scheme::Pbes2 { prf, salt, iterations, cipher, iv })
            }
            other => Err(P12Error::Unsupported(format!("encryption algorithm {other}"))),
        }
    }

    /// Charges one [`Scheme::decrypt`] to the file's budget.
    fn charge(&self, budget: &mut Budget, purpose: impl FnOnce() -> String) -> Result<(), P12Error> {
        match self {
            Scheme::Pkcs12Pbe { cipher, iterations, .. } => {
                // The key and the 8-byte IV are two derivations (§B.2, IDs 1 and 2).
                let kdf = Kdf::Pkcs12(Hash::Sha1);
                budget.charge(kdf, *iterations, kdf.blocks(cipher.key_len()) + kdf.blocks(8), purpose)
            }
            Scheme::Pbes2 { prf, iterations, cipher, .. } => {
                let kdf = Kdf::Pbkdf2(*prf);
                budget.charge(kdf, *iterations, kdf.blocks(cipher.key_len()), purpose)
            }
        }
    }

    /// `bmp` is the BMPString password; PBES2 takes the UTF-8 form instead (as OpenSSL does).
    fn decrypt(&self, bmp: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
        match self {
            Scheme::Pkcs12Pbe { cipher, salt, iterations } => {
                let key = kdf(Hash::Sha1, bmp, salt, 1, *iterations, cipher.key_len());
                let iv = kdf(Hash::Sha1, bmp, salt, 2, *iterations, 8);
                cipher.decrypt(&key, &iv, ct)
            }
            Scheme::Pbes2 { prf, salt, iterations, cipher, iv } => {
                let utf8 = utf8_from_bmp(bmp);
                let mut key = vec![0u8; cipher.key_len()];
                // Charged to the budget first, which holds far less than u32::MAX.
                prf.pbkdf2(utf8.as_bytes(), salt, u32::try_from(*iterations).unwrap_or(u32::MAX), &mut key);
                cipher.decrypt(&key, iv, ct)
            }
        }
    }
}

/// PBKDF2 and MAC iteration count of the files [`write`] produces.
pub const WRITE_ITERATIONS: u32 = 100_000;

mod enc {
    //! The few DER encodings the writer needs.

    pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let n = content.len();
        if n < 0x80 {
            out.push(n as u8);
        } else {
            let bytes: Vec<u8> = n.to_be_bytes().into_iter().skip_while(|&b| b == 0).collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }

    pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
        tlv(0x30, &parts.concat())
    }

    pub fn set(parts: &[&[u8]]) -> Vec<u8> {
        tlv(0x31, &parts.concat())
    }

    pub fn octets(b: &[u8]) -> Vec<u8> {
        tlv(0x04, b)
    }

    /// `[0] EXPLICIT`.
    pub fn explicit0(inner: &[u8]) -> Vec<u8> {
        tlv(0xa0, inner)
    }

    pub fn int(n: u32) -> Vec<u8> {
        let mut b: Vec<u8> = n.to_be_bytes().into_iter().skip_while(|&b| b == 0).collect();
        if b.first().is_none_or(|&f| f & 0x80 != 0) {
            b.insert(0, 0);
        }
        tlv(0x02, &b)
    }

    pub fn oid(dotted: &str) -> Vec<u8> {
        match const_oid::ObjectIdentifier::new(dotted) {
            Ok(o) => tlv(0x06, o.as_bytes()),
            // Only called with the constants of this module.
            Err(_) => tlv(0x06, &[]),
        }
    }

    pub const NULL: [u8; 2] = [0x05, 0x00];
}

const LOCAL_KEY_ID: &str = "1.2.840.113549.1.9.21";
const HMAC_SHA256: &str = "1.2.840.113549.2.9";
const AES256_CBC: &str = "2.16.840.1.101.3.4.1.42";
const SHA256: &str = "2.16.840.1.101.3.4.2.1";

/// PBES2 (RFC 8018 §6.2) with PBKDF2-HMAC-SHA256 and AES-256-CBC: the AlgorithmIdentifier and
/// the ciphertext.
fn pbes2_encrypt(password: &str, plain: &[u8], rng: &dyn ring::rand::SecureRandom) -> Result<(Vec<u8>, Vec<u8>), P12Error> {
    use cbc::cipher::BlockModeEncrypt;
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    rng.fill(&mut salt).map_err(|_| P12Error::Unsupported("the random number generator failed".into()))?;
    rng.fill(&mut iv).map_err(|_| P12Error::Unsupported("the random number generator failed".into()))?;
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), &salt, WRITE_ITERATIONS, &mut key);
    let ct = cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, &iv)
        .map_err(|_| P12Error::Unsupported("AES-256-CBC key setup".into()))?
        .encrypt_padded_vec::<Pkcs7>(plain);
    use enc::*;
    let prf = seq(&[&oid(HMAC_SHA256), &NULL]);
    let kdf = seq(&[&oid(PBKDF2), &seq(&[&octets(&salt), &int(WRITE_ITERATIONS), &prf])]);
    let scheme = seq(&[&oid(AES256_CBC), &octets(&iv)]);
    Ok((seq(&[&oid(PBES2), &seq(&[&kdf, &scheme])]), ct))
}

/// Builds a PFX holding `key_pkcs8` (a PKCS#8 private key, in a shrouded key bag) and `certs`
/// (leaf first), protected by `password`: PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC for
/// both the key and the certificates, and an HMAC-SHA-256 MAC over the PKCS#12 KDF — what
/// OpenSSL 3 writes by default, readable by OpenSSL, Java 11+ and Windows 10+.
pub fn write(key_pkcs8: &[u8], certs: &[Vec<u8>], password: &str) -> Result<Vec<u8>, P12Error> {
    use enc::*;
    let rng = ring::rand::SystemRandom::new();
    let Some(leaf) = certs.first() else {
        return Err(P12Error::Unsupported("no certificate to write".into()));
    };
    // localKeyId pairs the key with its certificate (RFC 7292 §4.2): the leaf's SHA-1, as
    // OpenSSL uses.
    let key_id = sha1::Sha1::digest(leaf);
    let key_id_attr = set(&[&seq(&[&oid(LOCAL_KEY_ID), &set(&[&octets(&key_id)])])]);

    let cert_bags: Vec<Vec<u8>> = certs
        .iter()
        .enumerate()
        .map(|(i, der)| {
            let value = explicit0(&seq(&[&oid(X509_CERT), &explicit0(&octets(der))]));
            if i == 0 { seq(&[&oid(CERT_BAG), &value, &key_id_attr]) } else { seq(&[&oid(CERT_BAG), &value]) }
        })
        .collect();
    let cert_safe = seq(&cert_bags.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let (alg, ct) = pbes2_encrypt(password, &cert_safe, &rng)?;
    let eci = seq(&[&oid(DATA), &alg, &tlv(0x80, &ct)]);
    let encrypted_ci = seq(&[&oid(ENCRYPTED_DATA), &explicit0(&seq(&[&int(0), &eci]))]);

    let (alg, ct) = pbes2_encrypt(password, key_pkcs8, &rng)?;
    let key_bag = seq(&[&oid(SHROUDED_KEY_BAG), &explicit0(&seq(&[&alg, &octets(&ct)])), &key_id_attr]);
    let data_ci = seq(&[&oid(DATA), &explicit0(&octets(&seq(&[&key_bag])))]);

    let auth_safe = seq(&[&encrypted_ci, &data_ci]);
    let mut mac_salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&rng, &mut mac_salt).map_err(|_| P12Error::Unsupported("the random number generator failed".into()))?;
    let bmp = bmp_variants(password).remove(0);
    let mac_key = kdf(Hash::Sha256, &bmp, &mac_salt, 3, u64::from(WRITE_ITERATIONS), 32);
    let mac = Hash::Sha256.hmac(&mac_key, &auth_safe);
    let mac_data = seq(&[&seq(&[&seq(&[&oid(SHA256), &NULL]), &octets(&mac)]), &octets(&mac_salt), &int(WRITE_ITERATIONS)]);
    Ok(seq(&[&int(3), &seq(&[&oid(DATA), &explicit0(&octets(&auth_safe))]), &mac_data]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdf_matches_known_vector() {
        // Known answer for SHA-1, password "smeg", salt 0A58CF64530D823F, id 1, 1 iteration, 24
        // bytes (the widely used PKCS#12 KDF test vector).
        let pw = bmp_variants("smeg").remove(0);
        let salt = hex::decode("0A58CF64530D823F").unwrap();
        let key = kdf(Hash::Sha1, &pw, &salt, 1, 1, 24);
        assert_eq!(hex::encode_upper(key), "8AAAE6297B6CB04642AB5B077851284EB7128F1A2A7FBCA3");
        let iv = kdf(Hash::Sha1, &pw, &salt, 2, 1, 8);
        assert_eq!(hex::encode_upper(iv), "79993DFE048D3B76");
    }

    #[test]
    fn written_pfx_reads_back() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = p.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(p, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap().signed_by(&key, &issuer).unwrap();
        let certs = vec![leaf.der().to_vec(), ca.der().to_vec()];
        let pfx = write(&key.serialize_der(), &certs, "pässword").unwrap();
        assert!(looks_like_pkcs12(&pfx));
        let c = parse(&pfx, &["pässword"]).unwrap();
        assert!(c.mac_verified);
        assert_eq!(c.certs.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>(), certs);
        assert_eq!(c.keys.len(), 1);
        assert!(matches!(parse(&pfx, &["wrong"]), Err(P12Error::WrongPassword { .. })));
    }

    #[test]
    fn budget_refuses_before_spending_and_charges_by_cost() {
        let mut b = Budget::default();
        let err = b.charge(Kdf::Pkcs12(Hash::Sha256), KDF_BUDGET + 1, 1, || "MAC".into()).unwrap_err();
        assert!(matches!(err, P12Error::TooCostly { spent: 0, cost, .. } if cost == KDF_BUDGET + 1), "{err}");
        assert_eq!(b.spent, 0, "a refused derivation spends nothing");
        // u64::MAX iterations do not overflow.
        assert!(b.charge(Kdf::Pbkdf2(Hash::Sha512), u64::MAX, 3, String::new).is_err());
        // AES-256 from PBKDF2-HMAC-SHA-1: two 20-byte blocks, three units per iteration.
        let kdf = Kdf::Pbkdf2(Hash::Sha1);
        b.charge(kdf, 1000, kdf.blocks(32), String::new).unwrap();
        assert_eq!(b.spent, 6000);
        // 3DES key (24 bytes) and IV (8 bytes) from the SHA-1 PKCS#12 KDF: 2 + 1 blocks.
        let kdf = Kdf::Pkcs12(Hash::Sha1);
        assert_eq!(kdf.blocks(24) + kdf.blocks(8), 3);
    }

    #[test]
    fn written_pfx_opens_with_its_password_last_of_many() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap().self_signed(&key).unwrap();
        let pfx = write(&key.serialize_der(), &[cert.der().to_vec()], "right").unwrap();
        let mut passwords = vec!["w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8"];
        passwords.push("right");
        assert_eq!(parse(&pfx, &passwords).unwrap().certs.len(), 1);
    }

    #[test]
    fn not_pkcs12() {
        assert!(!looks_like_pkcs12(b"hello"));
        assert!(parse(b"\x30\x03\x02\x01\x02", &[]).is_err());
    }
}
