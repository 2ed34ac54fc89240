//! Shared fixtures for the integration tests (`tests/it_cli/formats.rs`, `tests/properties.rs`,
//! `tests/it_cli/cli.rs`).
//!
//! Everything is generated at test time, relative to the fixed clock [`NOW`]: a root CA, an
//! intermediate and leaves (expired, not yet valid, expiring, valid, code signing, time
//! stamping; P-256, P-384, Ed25519 and RSA-2048 keys) with rcgen, and the containers built from
//! them with the real tools an operator uses: `openssl` (PKCS#7, PKCS#12 in three protection
//! modes, OpenSSL trusted certificates, the RSA key) and `keytool` (JKS trust and key stores).
//! A missing tool fails the test with a message saying what to install; nothing is skipped.
//!
//! The expected facts of each certificate are computed here from what was asked of rcgen and
//! from the generated DER itself (SHA-256), never by certvigil's own parser.

#![allow(dead_code)]

pub mod daemon;
pub mod http;
pub mod postgres;
pub mod webdriver;

use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The fixed clock of every test: 2026-06-01T00:00:00Z.
pub const NOW: i64 = 1_780_272_000;
pub const DAY: i64 = 86_400;

/// Password of the password-protected PKCS#12 files.
pub const P12_PASSWORD: &str = "p12-S3cret!";
/// Store password of every JKS file.
pub const JKS_PASSWORD: &str = "changeit";

/// `2026-06-01T00:00:00Z` shifted by `offset` seconds, in rcgen's time type (whose crate is not
/// a dependency of this package, so the type is never named).
fn shifted<T>(base: T, offset: i64) -> T
where
    T: std::ops::Add<Duration, Output = T> + std::ops::Sub<Duration, Output = T>,
{
    if offset >= 0 { base + Duration::from_secs(offset as u64) } else { base - Duration::from_secs(offset.unsigned_abs()) }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    P256,
    P384,
    Ed25519,
    Rsa2048,
}

/// One generated certificate and every fact certvigil is expected to report for it.
#[derive(Debug, Clone)]
pub struct TestCert {
    pub name: &'static str,
    pub cn: String,
    /// RFC 4514 form, most specific RDN first.
    pub subject: String,
    pub issuer: String,
    pub der: Vec<u8>,
    pub pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// Upper-case hex of the serial's DER INTEGER content octets.
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
    /// SHA-256 of `der`, lower-case hex.
    pub fingerprint: String,
    /// SHA-256 of the DER SubjectPublicKeyInfo, lower-case hex.
    pub spki_sha256: String,
    pub key_algorithm: &'static str,
    pub key_bits: Option<u32>,
    pub key_curve: Option<&'static str>,
    pub signature_algorithm: &'static str,
    pub is_ca: bool,
    pub path_len: Option<u32>,
    pub key_usage: Vec<&'static str>,
    pub ext_key_usage: Vec<&'static str>,
    pub sans: Vec<String>,
    pub ocsp_urls: Vec<String>,
    pub ca_issuers_urls: Vec<String>,
    pub crl_urls: Vec<String>,
    pub aki: Option<String>,
    pub ski: Option<String>,
    pub self_issued: bool,
}

/// A certificate together with what is needed to issue others from it.
pub struct Issued {
    pub cert: TestCert,
    params: CertificateParams,
    key: KeyPair,
}

/// What to generate.
pub struct Spec {
    pub name: &'static str,
    pub cn: &'static str,
    pub serial: &'static [u8],
    /// Offsets from [`NOW`], in seconds.
    pub not_before: i64,
    pub not_after: i64,
    pub key: KeyKind,
    /// `Some(n)`: a CA with path length constraint `n`.
    pub ca_path_len: Option<u8>,
    pub key_usage: Vec<KeyUsagePurpose>,
    pub eku: Vec<ExtendedKeyUsagePurpose>,
    pub sans: Vec<SanType>,
    pub ocsp: Vec<&'static str>,
    pub ca_issuers: Vec<&'static str>,
    /// One inner list per distribution point.
    pub crl: Vec<Vec<&'static str>>,
}

impl Spec {
    pub fn leaf(name: &'static str, cn: &'static str, serial: &'static [u8], not_before: i64, not_after: i64, key: KeyKind) -> Self {
        Spec {
            name,
            cn,
            serial,
            not_before,
            not_after,
            key,
            ca_path_len: None,
            key_usage: vec![KeyUsagePurpose::DigitalSignature],
            eku: vec![ExtendedKeyUsagePurpose::ServerAuth],
            sans: vec![SanType::DnsName(cn.try_into().expect("DNS name"))],
            ocsp: Vec::new(),
            ca_issuers: Vec::new(),
            crl: Vec::new(),
        }
    }

    /// An issuing CA: pathLen 0, keyCertSign and cRLSign, no EKU and no SAN.
    pub fn issuing_ca(name: &'static str, cn: &'static str, serial: &'static [u8], not_before: i64, not_after: i64, key: KeyKind) -> Self {
        Spec {
            ca_path_len: Some(0),
            key_usage: vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
            eku: vec![],
            sans: vec![],
            ..Spec::leaf(name, cn, serial, not_before, not_after, key)
        }
    }
}

const ORG: &str = "certvigil tests";

fn new_key(kind: KeyKind) -> KeyPair {
    match kind {
        KeyKind::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key"),
        KeyKind::P384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("P-384 key"),
        KeyKind::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("Ed25519 key"),
        KeyKind::Rsa2048 => {
            // ring cannot generate RSA keys: the real openssl does, and rcgen signs with it.
            let pem = tool("openssl", &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], Path::new("."));
            KeyPair::from_pem(&String::from_utf8(pem).expect("PEM is text")).expect("openssl's RSA key loads in rcgen")
        }
    }
}

fn key_facts(kind: KeyKind) -> (&'static str, Option<u32>, Option<&'static str>) {
    match kind {
        KeyKind::P256 => ("EC", Some(256), Some("P-256")),
        KeyKind::P384 => ("EC", Some(384), Some("P-384")),
        KeyKind::Ed25519 => ("Ed25519", Some(256), None),
        KeyKind::Rsa2048 => ("RSA", Some(2048), None),
    }
}

fn signature_name(signer: KeyKind) -> &'static str {
    match signer {
        KeyKind::P256 => "ecdsa-with-SHA256",
        KeyKind::P384 => "ecdsa-with-SHA384",
        KeyKind::Ed25519 => "Ed25519",
        KeyKind::Rsa2048 => "sha256WithRSAEncryption",
    }
}

fn ku_name(k: &KeyUsagePurpose) -> (usize, &'static str) {
    match k {
        KeyUsagePurpose::DigitalSignature => (0, "digitalSignature"),
        KeyUsagePurpose::ContentCommitment => (1, "nonRepudiation"),
        KeyUsagePurpose::KeyEncipherment => (2, "keyEncipherment"),
        KeyUsagePurpose::DataEncipherment => (3, "dataEncipherment"),
        KeyUsagePurpose::KeyAgreement => (4, "keyAgreement"),
        KeyUsagePurpose::KeyCertSign => (5, "keyCertSign"),
        KeyUsagePurpose::CrlSign => (6, "cRLSign"),
        KeyUsagePurpose::EncipherOnly => (7, "encipherOnly"),
        KeyUsagePurpose::DecipherOnly => (8, "decipherOnly"),
    }
}

fn eku_name(e: &ExtendedKeyUsagePurpose) -> &'static str {
    match e {
        ExtendedKeyUsagePurpose::Any => "anyExtendedKeyUsage",
        ExtendedKeyUsagePurpose::ServerAuth => "serverAuth",
        ExtendedKeyUsagePurpose::ClientAuth => "clientAuth",
        ExtendedKeyUsagePurpose::CodeSigning => "codeSigning",
        ExtendedKeyUsagePurpose::EmailProtection => "emailProtection",
        ExtendedKeyUsagePurpose::TimeStamping => "timeStamping",
        ExtendedKeyUsagePurpose::OcspSigning => "OCSPSigning",
        ExtendedKeyUsagePurpose::Other(_) => panic!("fixtures use named EKUs only"),
    }
}

fn san_text(s: &SanType) -> String {
    match s {
        SanType::DnsName(n) => format!("DNS:{}", n.as_str()),
        SanType::Rfc822Name(n) => format!("email:{}", n.as_str()),
        SanType::URI(n) => format!("URI:{}", n.as_str()),
        SanType::IpAddress(ip) => format!("IP:{ip}"),
        other => panic!("fixtures do not use {other:?}"),
    }
}

/// DER TLV with a definite length.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n <= 0xff {
        out.extend([0x81, n as u8]);
    } else {
        assert!(n <= 0xffff, "fixture TLV too long");
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// AuthorityInfoAccessSyntax (RFC 5280 §4.2.2.1), which rcgen has no field for.
fn aia_extension(ocsp: &[&str], ca_issuers: &[&str]) -> CustomExtension {
    const OCSP: [u8; 8] = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];
    const CA_ISSUERS: [u8; 8] = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x02];
    let mut body = Vec::new();
    for (oid, uri) in ocsp.iter().map(|u| (OCSP, u)).chain(ca_issuers.iter().map(|u| (CA_ISSUERS, u))) {
        let mut ad = tlv(0x06, &oid);
        ad.extend(tlv(0x86, uri.as_bytes())); // [6] IMPLICIT IA5String uniformResourceIdentifier
        body.extend(tlv(0x30, &ad));
    }
    CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], tlv(0x30, &body))
}

/// Serial as certvigil reports it: the DER INTEGER content octets, upper-case hex (a leading
/// 00 is part of the encoding when the high bit is set).
fn serial_hex(serial: &[u8]) -> String {
    let trimmed: Vec<u8> = serial.iter().copied().skip_while(|b| *b == 0).collect();
    let mut content = if trimmed.is_empty() { vec![0] } else { trimmed };
    if content[0] & 0x80 != 0 {
        content.insert(0, 0);
    }
    hex::encode_upper(content)
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Generates one certificate, self-signed or issued by `issuer`.
pub fn issue(spec: Spec, issuer: Option<&Issued>) -> Issued {
    let key = new_key(spec.key);
    let mut params = CertificateParams::default();
    // The default name holds a CN already; start from an empty one so that the DER order is O, CN.
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, ORG);
    params.distinguished_name.push(DnType::CommonName, spec.cn);
    params.serial_number = Some(SerialNumber::from_slice(spec.serial));
    params.not_before = shifted(rcgen::date_time_ymd(2026, 6, 1), spec.not_before);
    params.not_after = shifted(rcgen::date_time_ymd(2026, 6, 1), spec.not_after);
    assert_eq!(params.not_before.unix_timestamp(), NOW + spec.not_before, "fixture clock");
    assert_eq!(params.not_after.unix_timestamp(), NOW + spec.not_after, "fixture clock");
    // ExplicitNoCa makes rcgen write basicConstraints and the subject key identifier on leaves.
    params.is_ca = match spec.ca_path_len {
        Some(n) => IsCa::Ca(BasicConstraints::Constrained(n)),
        None => IsCa::ExplicitNoCa,
    };
    params.key_usages = spec.key_usage.clone();
    params.extended_key_usages = spec.eku.clone();
    params.subject_alt_names = spec.sans.clone();
    params.crl_distribution_points =
        spec.crl.iter().map(|uris| CrlDistributionPoint { uris: uris.iter().map(|u| u.to_string()).collect() }).collect();
    if !spec.ocsp.is_empty() || !spec.ca_issuers.is_empty() {
        params.custom_extensions.push(aia_extension(&spec.ocsp, &spec.ca_issuers));
    }
    params.use_authority_key_identifier_extension = issuer.is_some();

    let cert = match issuer {
        Some(i) => params.signed_by(&key, &Issuer::from_params(&i.params, &i.key)).expect("issue certificate"),
        None => params.self_signed(&key).expect("self-sign certificate"),
    };
    let der = cert.der().to_vec();
    let (key_algorithm, key_bits, key_curve) = key_facts(spec.key);
    let mut ku: Vec<(usize, &'static str)> = spec.key_usage.iter().map(ku_name).collect();
    ku.sort();
    let subject = format!("CN={},O={ORG}", spec.cn);
    let tc = TestCert {
        name: spec.name,
        cn: spec.cn.to_string(),
        issuer: issuer.map(|i| i.cert.subject.clone()).unwrap_or_else(|| subject.clone()),
        subject,
        pem: cert.pem(),
        key_pem: key.serialize_pem(),
        serial: serial_hex(spec.serial),
        not_before: NOW + spec.not_before,
        not_after: NOW + spec.not_after,
        fingerprint: sha256_hex(&der),
        spki_sha256: sha256_hex(&key.subject_public_key_info()),
        key_algorithm,
        key_bits,
        key_curve,
        signature_algorithm: signature_name(issuer.map(|i| i.key_kind()).unwrap_or(spec.key)),
        is_ca: spec.ca_path_len.is_some(),
        path_len: spec.ca_path_len.map(u32::from),
        key_usage: ku.into_iter().map(|(_, n)| n).collect(),
        ext_key_usage: spec.eku.iter().map(eku_name).collect(),
        sans: spec.sans.iter().map(san_text).collect(),
        ocsp_urls: spec.ocsp.iter().map(|s| s.to_string()).collect(),
        ca_issuers_urls: spec.ca_issuers.iter().map(|s| s.to_string()).collect(),
        crl_urls: spec.crl.iter().flatten().map(|s| s.to_string()).collect(),
        aki: issuer.map(|i| hex::encode(i.params.key_identifier(&i.key))),
        ski: Some(hex::encode(params.key_identifier(&key))),
        self_issued: issuer.is_none(),
        der,
    };
    Issued { cert: tc, params, key }
}

impl Issued {
    fn key_kind(&self) -> KeyKind {
        match (self.cert.key_algorithm, self.cert.key_curve) {
            ("EC", Some("P-256")) => KeyKind::P256,
            ("EC", Some("P-384")) => KeyKind::P384,
            ("Ed25519", _) => KeyKind::Ed25519,
            _ => KeyKind::Rsa2048,
        }
    }
}

/// The certificate set every test shares.
pub struct Fixtures {
    pub root: Issued,
    pub inter: Issued,
    pub valid: Issued,
    pub expired: Issued,
    pub not_yet_valid: Issued,
    pub expiring: Issued,
    pub codesign: Issued,
    pub timestamp: Issued,
    pub rsa: Issued,
}

impl Fixtures {
    /// Every certificate, in a fixed order.
    pub fn all(&self) -> Vec<&TestCert> {
        [
            &self.root,
            &self.inter,
            &self.valid,
            &self.expired,
            &self.not_yet_valid,
            &self.expiring,
            &self.codesign,
            &self.timestamp,
            &self.rsa,
        ]
        .into_iter()
        .map(|i| &i.cert)
        .collect()
    }
}

pub fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        use ExtendedKeyUsagePurpose as E;
        use KeyUsagePurpose as K;
        let root = issue(
            Spec {
                ca_path_len: Some(1),
                key_usage: vec![K::DigitalSignature, K::KeyCertSign, K::CrlSign],
                eku: vec![],
                sans: vec![],
                // 30 years: notAfter in 2056, encoded as GeneralizedTime (RFC 5280 §4.1.2.5).
                ..Spec::leaf("root", "certvigil Test Root CA", &[0x01], -3650 * DAY, 30 * 365 * DAY, KeyKind::P384)
            },
            None,
        );
        let inter = issue(
            Spec {
                crl: vec![vec!["http://crl.example.test/root.crl"]],
                ca_issuers: vec!["http://pki.example.test/root.cer"],
                ..Spec::issuing_ca("inter", "certvigil Test Issuing CA", &[0x02], -365 * DAY, 5 * 365 * DAY, KeyKind::P256)
            },
            Some(&root),
        );
        let valid = issue(
            Spec {
                key_usage: vec![K::DigitalSignature, K::KeyEncipherment],
                eku: vec![E::ServerAuth, E::ClientAuth],
                sans: vec![
                    SanType::DnsName("valid.example.test".try_into().expect("dns")),
                    SanType::DnsName("*.valid.example.test".try_into().expect("dns")),
                    SanType::IpAddress("192.0.2.10".parse::<IpAddr>().expect("ip")),
                    SanType::IpAddress("2001:db8::10".parse::<IpAddr>().expect("ip")),
                    SanType::Rfc822Name("ops@example.test".try_into().expect("email")),
                    SanType::URI("https://valid.example.test/id".try_into().expect("uri")),
                ],
                ocsp: vec!["http://ocsp.example.test/root"],
                ca_issuers: vec!["http://pki.example.test/root.cer", "ldap://ldap.example.test/cn=root"],
                crl: vec![
                    vec!["http://crl.example.test/root.crl", "http://crl2.example.test/root.crl"],
                    vec!["ldap://ldap.example.test/cn=crl"],
                ],
                // Offsets with odd seconds: validity must come back to the second.
                ..Spec::leaf("valid", "valid.example.test", &[0x10, 0x01], -30 * DAY + 17, 365 * DAY - 1, KeyKind::P256)
            },
            Some(&root),
        );
        let expired = issue(
            // High bit set: the DER INTEGER carries a leading 00.
            Spec::leaf("expired", "expired.example.test", &[0x8f, 0xab], -400 * DAY, -10 * DAY - 5, KeyKind::P256),
            Some(&root),
        );
        let not_yet_valid =
            issue(Spec::leaf("not_yet_valid", "future.example.test", &[0x10, 0x03], 10 * DAY, 400 * DAY, KeyKind::P256), Some(&inter));
        let expiring =
            issue(Spec::leaf("expiring", "expiring.example.test", &[0x10, 0x04], -300 * DAY, 10 * DAY + 3600, KeyKind::P256), Some(&root));
        let codesign = issue(
            Spec {
                eku: vec![E::CodeSigning],
                sans: vec![],
                ..Spec::leaf("codesign", "certvigil Code Signing", &[0x10, 0x05], -10 * DAY, 200 * DAY, KeyKind::P384)
            },
            Some(&inter),
        );
        let timestamp = issue(
            Spec {
                key_usage: vec![K::DigitalSignature, K::ContentCommitment],
                eku: vec![E::TimeStamping],
                sans: vec![],
                ..Spec::leaf("timestamp", "certvigil Time Stamping", &[0x10, 0x06], -5 * DAY, 90 * DAY, KeyKind::Ed25519)
            },
            None,
        );
        let rsa = issue(Spec::leaf("rsa", "rsa.example.test", &[0x10, 0x07], -DAY, 60 * DAY, KeyKind::Rsa2048), None);
        Fixtures { root, inter, valid, expired, not_yet_valid, expiring, codesign, timestamp, rsa }
    })
}

/// A CRL (DER) issued by `issuer` at [`NOW`] (next update in 7 days), revoking `serials`.
pub fn crl(issuer: &Issued, serials: &[&[u8]]) -> Vec<u8> {
    let params = rcgen::CertificateRevocationListParams {
        this_update: shifted(rcgen::date_time_ymd(2026, 6, 1), 0),
        next_update: shifted(rcgen::date_time_ymd(2026, 6, 1), 7 * DAY),
        crl_number: SerialNumber::from_slice(&[0x2a]),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|s| rcgen::RevokedCertParams {
                serial_number: SerialNumber::from_slice(s),
                revocation_time: shifted(rcgen::date_time_ymd(2026, 6, 1), -DAY),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    params.signed_by(&Issuer::from_params(&issuer.params, &issuer.key)).expect("sign CRL").der().to_vec()
}

// ---------------------------------------------------------------------------------------------
// External tools

/// Runs a required external tool in `dir` and returns its stdout. A missing tool or a failure
/// fails the test, saying what to install.
pub fn tool(program: &str, args: &[&str], dir: &Path) -> Vec<u8> {
    tool_env(program, args, dir, &[])
}

pub fn tool_env(program: &str, args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Vec<u8> {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(dir).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{program}` is required by the certvigil tests and was not found on PATH ({e}). Install it: {}",
            match program {
                "openssl" => "apt-get install openssl",
                "keytool" => "apt-get install openjdk-17-jre-headless (keytool ships with every JRE)",
                "script" | "mkfifo" => "apt-get install util-linux coreutils",
                _ => "see tests/common/mod.rs",
            }
        ),
        Err(e) => panic!("cannot run `{program}`: {e}"),
    };
    assert!(
        out.status.success(),
        "`{program} {}` failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// How the PKCS#12 files are protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum P12Mode {
    /// No password, no encryption, no MAC (`-certpbe NONE -keypbe NONE -nomac -passout pass:`).
    Plain,
    /// OpenSSL 3's default: PBES2 (PBKDF2-SHA256, AES-256-CBC), SHA-256 MAC.
    Modern,
    /// `-legacy`: RC2-40 for certificates, 3DES for the key, SHA-1 MAC.
    Legacy,
    /// Encrypted (OpenSSL 3 default) but without a MAC: only decryption tells a right password.
    EncryptedNoMac,
}

/// Whether this openssl can load the legacy provider (RC2); otherwise 3DES throughout.
pub fn legacy_provider_available() -> bool {
    Command::new("openssl")
        .args(["list", "-providers", "-provider", "legacy"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("legacy"))
        .unwrap_or(false)
}

/// A PKCS#12 of `leaf` (friendly name `web`) with its key and `chain`, written by openssl.
pub fn pkcs12(leaf: &TestCert, chain: &[&TestCert], mode: P12Mode) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("leaf.pem"), &leaf.pem).expect("write");
    std::fs::write(d.join("leaf.key"), &leaf.key_pem).expect("write");
    let chain_pem: String = chain.iter().map(|c| c.pem.as_str()).collect();
    std::fs::write(d.join("chain.pem"), chain_pem).expect("write");
    let pass = format!("pass:{P12_PASSWORD}");
    let mut args: Vec<&str> = vec!["pkcs12", "-export", "-in", "leaf.pem", "-inkey", "leaf.key", "-name", "web", "-out", "out.p12"];
    if !chain.is_empty() {
        args.extend(["-certfile", "chain.pem"]);
    }
    match mode {
        P12Mode::Plain => args.extend(["-certpbe", "NONE", "-keypbe", "NONE", "-nomac", "-passout", "pass:"]),
        P12Mode::Modern => args.extend(["-passout", &pass]),
        // RC2-40 certificates and a 3DES key, as Windows and old Java write them: only OpenSSL's
        // legacy provider writes RC2. Without it the case would silently become 3DES only, so
        // it fails instead.
        P12Mode::Legacy => {
            assert!(
                legacy_provider_available(),
                "OpenSSL's legacy provider is required to write the RC2 PKCS#12 fixture (Debian ships it with libssl3: \
                 `openssl list -providers -provider legacy` must list it)"
            );
            args.extend(["-legacy", "-passout", &pass])
        }
        // With -nomac, OpenSSL 3.0 leaves the certificates in clear unless -certpbe is given.
        P12Mode::EncryptedNoMac => args.extend(["-nomac", "-certpbe", "AES-256-CBC", "-keypbe", "AES-256-CBC", "-passout", &pass]),
    }
    tool("openssl", &args, d);
    std::fs::read(d.join("out.p12")).expect("read p12")
}

/// `openssl pkcs12 -info` of a file: the algorithms it really uses (stderr and stdout).
pub fn pkcs12_info(p12: &[u8], password: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("x.p12"), p12).expect("write");
    let mut args = vec!["pkcs12", "-info", "-in", "x.p12", "-nokeys", "-nocerts", "-passin"];
    let pass = format!("pass:{password}");
    args.push(&pass);
    if legacy_provider_available() {
        args.push("-legacy");
    }
    let out = Command::new("openssl")
        .args(&args)
        .current_dir(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("`openssl` is required by the certvigil tests ({e}). Install it: apt-get install openssl"));
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A certs-only PKCS#7 of `certs`, DER or PEM, written by `openssl crl2pkcs7`.
pub fn pkcs7(certs: &[&TestCert], pem: bool) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args: Vec<String> = vec!["crl2pkcs7".into(), "-nocrl".into()];
    for (i, c) in certs.iter().enumerate() {
        let name = format!("c{i}.pem");
        std::fs::write(dir.path().join(&name), &c.pem).expect("write");
        args.extend(["-certfile".into(), name]);
    }
    if !pem {
        args.extend(["-outform".into(), "DER".into()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tool("openssl", &args, dir.path())
}

/// OpenSSL's "TRUSTED CERTIFICATE" form (certificate + trust settings).
pub fn trusted_pem(cert: &TestCert) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("c.pem"), &cert.pem).expect("write");
    tool("openssl", &["x509", "-in", "c.pem", "-trustout", "-addtrust", "serverAuth", "-setalias", "certvigil-root"], dir.path())
}

/// A JKS trust store (store password [`JKS_PASSWORD`]) with one trusted-certificate entry per
/// `(alias, cert)`, written by `keytool -importcert`.
pub fn jks_truststore(entries: &[(&str, &TestCert)]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    for (alias, cert) in entries {
        let file = format!("{alias}.pem");
        std::fs::write(dir.path().join(&file), &cert.pem).expect("write");
        keytool(
            &[
                "-importcert",
                "-noprompt",
                "-storetype",
                "JKS",
                "-keystore",
                "trust.jks",
                "-storepass",
                JKS_PASSWORD,
                "-alias",
                alias,
                "-file",
                &file,
            ],
            dir.path(),
        );
    }
    std::fs::read(dir.path().join("trust.jks")).expect("read jks")
}

/// A JKS with a private key entry `web` (the leaf, its key and its chain), converted by
/// `keytool -importkeystore` from a PKCS#12 written by openssl.
pub fn jks_keystore(leaf: &TestCert, chain: &[&TestCert]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.p12"), pkcs12(leaf, chain, P12Mode::Modern)).expect("write");
    keytool(
        &[
            "-importkeystore",
            "-noprompt",
            "-srckeystore",
            "in.p12",
            "-srcstoretype",
            "PKCS12",
            "-srcstorepass",
            P12_PASSWORD,
            "-destkeystore",
            "key.jks",
            "-deststoretype",
            "JKS",
            "-deststorepass",
            JKS_PASSWORD,
            "-destkeypass",
            JKS_PASSWORD,
        ],
        dir.path(),
    );
    std::fs::read(dir.path().join("key.jks")).expect("read jks")
}

/// Start of the certificate `keytool -genkeypair` makes in [`jks_genkeypair`]:
/// 2026-05-01T00:00:00Z, valid 60 days (so expiring 29 days after [`NOW`]).
pub const GENKEYPAIR_NOT_BEFORE: i64 = NOW - 31 * DAY;
pub const GENKEYPAIR_NOT_AFTER: i64 = GENKEYPAIR_NOT_BEFORE + 60 * DAY;

/// A JKS whose private key entry `tomcat` was generated by keytool itself (EC P-256,
/// self-signed `CN=tomcat.example.test`), as admins do for Tomcat.
pub fn jks_genkeypair() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    keytool(
        &[
            "-genkeypair",
            "-storetype",
            "JKS",
            "-keystore",
            "gen.jks",
            "-storepass",
            JKS_PASSWORD,
            "-keypass",
            JKS_PASSWORD,
            "-alias",
            "tomcat",
            "-keyalg",
            "EC",
            "-groupname",
            "secp256r1",
            "-dname",
            "CN=tomcat.example.test",
            "-startdate",
            "2026/05/01 00:00:00",
            "-validity",
            "60",
        ],
        dir.path(),
    );
    std::fs::read(dir.path().join("gen.jks")).expect("read jks")
}

fn keytool(args: &[&str], dir: &Path) {
    // keytool reads -startdate in the JVM's time zone: pin it to UTC.
    let mut all = vec!["-J-Duser.timezone=UTC"];
    all.extend_from_slice(args);
    tool_env("keytool", &all, dir, &[("TZ", "UTC")]);
}

/// Every container built once per test binary.
pub struct Containers {
    pub pkcs7_der: Vec<u8>,
    pub pkcs7_pem: Vec<u8>,
    pub p12_plain: Vec<u8>,
    pub p12_modern: Vec<u8>,
    pub p12_legacy: Vec<u8>,
    pub p12_encrypted_no_mac: Vec<u8>,
    pub jks_trust: Vec<u8>,
    pub jks_key: Vec<u8>,
    pub jks_gen: Vec<u8>,
    pub trusted_pem: Vec<u8>,
}

pub fn containers() -> &'static Containers {
    static C: OnceLock<Containers> = OnceLock::new();
    C.get_or_init(|| {
        let f = fixtures();
        Containers {
            pkcs7_der: pkcs7(&[&f.valid.cert, &f.root.cert], false),
            pkcs7_pem: pkcs7(&[&f.codesign.cert, &f.inter.cert, &f.root.cert], true),
            p12_plain: pkcs12(&f.valid.cert, &[&f.root.cert], P12Mode::Plain),
            p12_modern: pkcs12(&f.valid.cert, &[&f.root.cert], P12Mode::Modern),
            p12_legacy: pkcs12(&f.expiring.cert, &[&f.root.cert], P12Mode::Legacy),
            p12_encrypted_no_mac: pkcs12(&f.codesign.cert, &[&f.inter.cert], P12Mode::EncryptedNoMac),
            jks_trust: jks_truststore(&[("root", &f.root.cert), ("inter", &f.inter.cert)]),
            jks_key: jks_keystore(&f.valid.cert, &[&f.root.cert]),
            jks_gen: jks_genkeypair(),
            trusted_pem: trusted_pem(&f.root.cert),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// PEM text

/// A PEM bundle as found on real systems: OpenSSL "Bag Attributes", `subject=`/`issuer=`
/// lines, comments and blank lines between blocks.
pub fn pem_bundle_with_junk(certs: &[&TestCert]) -> String {
    let mut s = String::from("# bundle written for certvigil tests\n\n");
    for c in certs {
        s.push_str("Bag Attributes\n    friendlyName: some name\n    localKeyID: 01 02 03 04\n");
        s.push_str(&format!("subject={}\nissuer={}\n", c.subject, c.issuer));
        s.push_str(&c.pem);
        s.push_str("\nthis line is not PEM: -----END nothing\n\n");
    }
    s
}

/// `CSR` PEM for a fresh key (content certvigil should count as "other", not as a certificate).
pub fn csr_pem() -> String {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::new(vec!["csr.example.test".to_string()]).expect("params");
    params.distinguished_name.push(DnType::CommonName, "csr.example.test");
    params.serialize_request(&key).expect("csr").pem().expect("csr pem")
}

/// Two certificates whose SHA-256 fingerprints share their first `hex_digits` hex digits
/// (found by issuing until the birthday bound is met), with that common prefix.
pub fn fingerprint_twins(hex_digits: usize) -> (TestCert, TestCert, String) {
    let f = fixtures();
    let mut seen: std::collections::HashMap<String, TestCert> = std::collections::HashMap::new();
    for i in 0u32..200_000 {
        let serial: &'static [u8] = Box::leak(Box::new([0x20, (i >> 16) as u8, (i >> 8) as u8, i as u8]));
        let mut spec = Spec::leaf("twin", "twin.example.test", serial, -DAY, 100 * DAY, KeyKind::P256);
        spec.sans = vec![];
        // Reuse the intermediate's key material via issue(): each call makes a new leaf key.
        let c = issue(spec, Some(&f.inter)).cert;
        let prefix = c.fingerprint[..hex_digits].to_string();
        if let Some(other) = seen.remove(&prefix) {
            return (other, c, prefix);
        }
        seen.insert(prefix, c);
    }
    panic!("no fingerprint twins found");
}

// ---------------------------------------------------------------------------------------------
// Running the real binary

/// Output of one `certvigil` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Fails with both streams shown unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(self.code, code, "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\n--- stderr\n{}", self.stdout, self.stderr))
    }
}

/// The binary under test — always the one cargo built for these tests, never a stand-in — with
/// the environment cleared of everything that would change its behaviour (configuration,
/// store, clock, colour, log level).
pub fn certvigil() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_certvigil"));
    for var in ["CERTVIGIL_CONFIG", "CERTVIGIL_STORE", "CERTVIGIL_NOW", "NO_COLOR", "RUST_LOG", "STATE_DIRECTORY", "XDG_STATE_HOME"] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to completion; a run that outlives `limit` is killed and fails the test (a scan
/// must never hang, whatever is in the directory).
pub fn run_with_timeout(mut cmd: Command, limit: Duration) -> Run {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn certvigil");
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut s).ok();
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut s).ok();
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > limit {
            child.kill().ok();
            child.wait().ok();
            panic!("certvigil did not finish within {limit:?}: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = String::from_utf8_lossy(&t_out.join().expect("stdout thread")).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().expect("stderr thread")).into_owned();
    Run { code: status.code().unwrap_or(-1), stdout, stderr }
}

pub const RUN_LIMIT: Duration = Duration::from_secs(120);

/// A temporary directory holding a configuration (`certvigil.yaml`), the certificate files the
/// test writes, and the store (`state/certvigil.db`, set by the configuration).
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    pub fn new() -> Self {
        Sandbox { dir: tempfile::tempdir().expect("tempdir") }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file (creating parent directories) and returns its absolute path.
    pub fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, bytes).expect("write fixture file");
        p
    }

    pub fn config_path(&self) -> PathBuf {
        self.path("certvigil.yaml")
    }

    pub fn store_path(&self) -> PathBuf {
        self.path("state/certvigil.db")
    }

    /// Writes `certvigil.yaml`: the store under `state/` plus `rest` (thresholds, sources).
    pub fn config(&self, rest: &str) -> PathBuf {
        self.write("certvigil.yaml", format!("store:\n  path: state/certvigil.db\n{rest}"))
    }

    /// A command with `-c certvigil.yaml --now <now>` already given.
    pub fn command_at(&self, now: i64) -> Command {
        let mut cmd = certvigil();
        cmd.arg("-c").arg(self.config_path()).arg("--now").arg(now.to_string()).current_dir(self.dir.path());
        cmd
    }

    pub fn run_at(&self, now: i64, args: &[&str]) -> Run {
        let mut cmd = self.command_at(now);
        cmd.args(args);
        run_with_timeout(cmd, RUN_LIMIT)
    }

    /// Runs certvigil at the fixed clock.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_at(NOW, args)
    }

    /// The store, opened directly.
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.store_path()).expect("open store")
    }
}

/// Query rows as strings, for before/after comparisons.
pub fn dump(conn: &rusqlite::Connection, sql: &str) -> Vec<Vec<String>> {
    let mut stmt = conn.prepare(sql).expect("prepare");
    let n = stmt.column_count();
    let rows = stmt
        .query_map([], |r| {
            (0..n)
                .map(|i| {
                    let v: rusqlite::types::Value = r.get(i)?;
                    Ok(format!("{v:?}"))
                })
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .expect("query");
    rows.collect::<rusqlite::Result<Vec<_>>>().expect("rows")
}
