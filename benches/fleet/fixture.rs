//! The fleet of the `fleet` benchmark: a root CA, two issuing CAs (RSA-2048 and ECDSA P-384) and
//! N leaf files in nested directories, with the `openssl ca` databases and CRLs describing which
//! leaves are revoked, and what a correct tool must find in it.
//!
//! Everything is a pure function of the leaf number `i` and of the day the run starts (`day0`,
//! midnight UTC): which CA signs it, whether its file is a fullchain, whether it has expired, is
//! expiring or is revoked (with which reason, when, and whether with an invalidity date). Keys
//! and signatures are random, so fingerprints differ between runs; counts, names, serials and
//! dates do not.

use crate::harness::{aia_ocsp, openssl};
use anyhow::{Context, Result, anyhow, ensure};
use rcgen::{
    CertificateParams, CrlDistributionPoint, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

pub const DAY: i64 = 86_400;
/// Leaf directories: `certs/dNN/sN/` (100 × 10); leaf `i` goes to directory `i % 1000`.
pub const DIRS: usize = 1000;
/// Lifetime of every leaf, in days (long enough that "expiring" means the 30-day window).
const LIFETIME_DAYS: i64 = 397;

/// The two issuing CAs; leaf `i` is signed by `Ca::of(i)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ca {
    Rsa,
    P384,
}

impl Ca {
    pub const BOTH: [Ca; 2] = [Ca::Rsa, Ca::P384];

    /// Half the leaves each, with every pattern below (which go by `i % 20`, reasons by
    /// `i / 20 % 6`) spread over both CAs: the parity flips with every block of 20 and of 120.
    pub fn of(i: usize) -> Ca {
        if (i + i / 20 + i / 120).is_multiple_of(2) { Ca::Rsa } else { Ca::P384 }
    }

    /// The name in URLs and directories.
    pub fn name(self) -> &'static str {
        match self {
            Ca::Rsa => "rsa",
            Ca::P384 => "p384",
        }
    }
}

/// Where a leaf's notAfter lies relative to the run's day.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Expiry {
    Valid,
    /// Past notAfter (1–300 days ago).
    Expired,
    /// Valid for 2–28 more days: inside the default 30-day warning window.
    Expiring,
}

/// 15% of the files hold the leaf and its issuing CA.
pub fn is_fullchain(i: usize) -> bool {
    i % 20 < 3
}

/// 5% expired, 5% expiring; disjoint from the revoked 5%.
pub fn expiry(i: usize) -> Expiry {
    match i % 20 {
        7 => Expiry::Expired,
        17 => Expiry::Expiring,
        _ => Expiry::Valid,
    }
}

/// A revoked leaf: what `openssl ca` and `openssl ocsp` read from index.txt, and what a
/// correct checker reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// The reason as certvigil names it (RFC 5280 §5.3.1); an entry without a reason code reads
    /// as unspecified.
    pub reason: &'static str,
    /// Whether the entry carries a reason code at all.
    pub coded: bool,
    pub revoked_at: i64,
    pub invalidity: Option<i64>,
}

/// 5% of the leaves are revoked; reasons cycle through none, keyCompromise, superseded,
/// cessationOfOperation, keyCompromise with an invalidity date, affiliationChanged.
pub fn revocation(i: usize, day0: i64) -> Option<Revocation> {
    if i % 20 != 9 {
        return None;
    }
    let k = i / 20;
    let revoked_at = day0 - (1 + (k % 90) as i64) * DAY + (k % 24) as i64 * 3600;
    let (reason, coded, invalidity) = match k % 6 {
        0 => ("unspecified", false, None),
        1 => ("keyCompromise", true, None),
        2 => ("superseded", true, None),
        3 => ("cessationOfOperation", true, None),
        4 => ("keyCompromise", true, Some(revoked_at - 3 * DAY)),
        _ => ("affiliationChanged", true, None),
    };
    Some(Revocation { reason, coded, revoked_at, invalidity })
}

/// Leaf `i`'s validity (notBefore, notAfter), Unix seconds.
pub fn validity(i: usize, day0: i64) -> (i64, i64) {
    let k = (i / 20) as i64;
    let not_after = match expiry(i) {
        Expiry::Valid => day0 + (45 + (i as i64 * 7) % 320) * DAY,
        Expiry::Expired => day0 - (1 + k % 300) * DAY,
        Expiry::Expiring => day0 + (2 + k % 27) * DAY,
    };
    (not_after - LIFETIME_DAYS * DAY, not_after)
}

/// Leaf `i`'s serial: 0x01 then `i` as four bytes (hex `01` + 8 digits, as index.txt has it).
pub fn serial(i: usize) -> [u8; 5] {
    let mut s = [0x01, 0, 0, 0, 0];
    s[1..].copy_from_slice(&(i as u32).to_be_bytes());
    s
}

pub fn serial_hex(i: usize) -> String {
    hex::encode_upper(serial(i))
}

pub fn leaf_name(i: usize) -> String {
    format!("svc-{i:06}.fleet.certvigil.test")
}

/// The directory of leaf directory number `d` (0..1000).
pub fn dir_of(certs: &Path, d: usize) -> PathBuf {
    certs.join(format!("d{:02}", d / 10)).join(format!("s{}", d % 10))
}

pub fn leaf_path(certs: &Path, i: usize) -> PathBuf {
    let file = if is_fullchain(i) { format!("svc-{i:06}-fullchain.pem") } else { format!("svc-{i:06}.pem") };
    dir_of(certs, i % DIRS).join(file)
}

/// An `openssl ca` time: UTCTime `YYMMDDHHMMSSZ` (`generalized`: `YYYYMMDDHHMMSSZ`).
pub fn asn1_time(t: i64, generalized: bool) -> Result<String> {
    let d = time::OffsetDateTime::from_unix_timestamp(t).with_context(|| format!("time {t} out of range"))?;
    let year = if generalized { format!("{:04}", d.year()) } else { format!("{:02}", d.year() % 100) };
    Ok(format!("{year}{:02}{:02}{:02}{:02}{:02}Z", u8::from(d.month()), d.day(), d.hour(), d.minute(), d.second()))
}

/// Files and certificates with an order-independent digest of them (as benches/scan.rs
/// counts them), so a tool's findings can be compared with what was written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub files: u64,
    pub certs: u64,
    /// XOR of the SHA-256 of every certificate's DER.
    pub fingerprint_xor: [u8; 32],
    /// Sum of every notAfter, Unix seconds.
    pub not_after_sum: i64,
}

impl Tally {
    pub fn add_cert(&mut self, der: &[u8], not_after: i64) {
        self.add_fingerprint(&Sha256::digest(der), not_after);
    }

    pub fn add_fingerprint(&mut self, fingerprint: &[u8], not_after: i64) {
        for (x, b) in self.fingerprint_xor.iter_mut().zip(fingerprint) {
            *x ^= b;
        }
        self.not_after_sum += not_after;
        self.certs += 1;
    }

    fn merge(&mut self, other: &Tally) {
        self.files += other.files;
        self.certs += other.certs;
        self.not_after_sum += other.not_after_sum;
        for (x, b) in self.fingerprint_xor.iter_mut().zip(other.fingerprint_xor) {
            *x ^= b;
        }
    }
}

/// One CA: its certificate and key on disk (for `openssl ca` and `openssl ocsp`), its
/// certificate's DER (for OCSP CertIDs) and, for the issuing CAs, the directory holding its
/// `openssl ca` database.
pub struct CaFiles {
    pub name: &'static str,
    pub dir: PathBuf,
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub not_after: i64,
}

/// The generated fleet and what a correct tool finds in it.
pub struct Fleet {
    pub work: PathBuf,
    pub certs: PathBuf,
    pub leaves: usize,
    pub day0: i64,
    pub root: CaFiles,
    pub rsa: CaFiles,
    pub p384: CaFiles,
    /// The root's file, `certs/root-ca.pem`.
    pub root_file: PathBuf,
    /// Every certificate occurrence in every file (what the parse-only baselines count).
    pub occurrences: Tally,
    /// Every distinct certificate (what the store holds: the CAs in fullchain files are one
    /// certificate each).
    pub distinct: Tally,
    pub fullchain: usize,
    pub expired: usize,
    pub expiring: usize,
    pub revoked: usize,
    /// Revoked leaves with an invalidity date.
    pub with_invalidity: usize,
    pub bytes: u64,
    pub crl_bytes: Vec<(&'static str, u64)>,
    pub generation_s: f64,
    pub crl_base: String,
    pub ocsp_base: String,
}

impl Fleet {
    pub fn ca(&self, ca: Ca) -> &CaFiles {
        match ca {
            Ca::Rsa => &self.rsa,
            Ca::P384 => &self.p384,
        }
    }

    /// The leaves whose directory is one of the first `dirs` (a subset of the fleet spread
    /// like the whole: every residue of the patterns above appears when `dirs` is a multiple
    /// of 20).
    pub fn subset(&self, dirs: usize) -> impl Iterator<Item = usize> {
        (0..self.leaves).filter(move |i| i % DIRS < dirs)
    }

    /// The CRL of each CA, DER, as served (root, rsa, p384).
    pub fn crl_path(&self, name: &str) -> PathBuf {
        self.work.join("ca").join(name).join("crl.der")
    }
}

/// `openssl ca` configuration of every CA directory.
fn ca_cnf(md: &str) -> String {
    format!(
        "[ ca ]\ndefault_ca = fleetca\n[ fleetca ]\ndir = .\ndatabase = $dir/index.txt\nnew_certs_dir = $dir\nserial = $dir/serial\n\
         crlnumber = $dir/crlnumber\ncertificate = $dir/ca.pem\nprivate_key = $dir/ca.key\ndefault_md = {md}\ndefault_crl_days = 7\n\
         policy = policy_any\nunique_subject = no\n[ policy_any ]\ncommonName = supplied\n[ crl_ext ]\nauthorityKeyIdentifier = keyid\n"
    )
}

/// RSA-2048 keys from `openssl genpkey` (PKCS#8 PEM; ring cannot generate RSA keys), made
/// concurrently.
fn rsa_keys(dir: &Path, n: usize) -> Result<Vec<(PathBuf, KeyPair)>> {
    let children = (0..n)
        .map(|k| {
            let out = dir.join(format!("rsa-{k}.key"));
            let child = Command::new("openssl")
                .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
                .arg(&out)
                .stderr(Stdio::piped())
                .spawn()
                .context("running openssl genpkey (is openssl installed? benches/setup.sh installs it)")?;
            Ok((out, child))
        })
        .collect::<Result<Vec<_>>>()?;
    children
        .into_iter()
        .map(|(out, child)| {
            let done = child.wait_with_output().context("waiting for openssl genpkey")?;
            ensure!(done.status.success(), "openssl genpkey failed: {}", String::from_utf8_lossy(&done.stderr).trim());
            let pem = std::fs::read_to_string(&out).with_context(|| format!("reading {}", out.display()))?;
            let key = KeyPair::from_pem(&pem).with_context(|| format!("loading the RSA key {}", out.display()))?;
            Ok((out, key))
        })
        .collect()
}

fn ts(t: i64) -> Result<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(t).with_context(|| format!("time {t} out of range"))
}

/// Parameters of a CA certificate named `cn`, valid 2024–2040.
fn ca_params(cn: &str, serial: &[u8]) -> Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
    p.distinguished_name.push(DnType::OrganizationName, "certvigil bench");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.serial_number = Some(SerialNumber::from_slice(serial));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2040, 1, 1);
    Ok(p)
}

/// Writes a CA directory for `openssl ca` (certificate, PKCS#8 key, configuration, counters).
fn ca_dir(work: &Path, name: &'static str, cert: &rcgen::Certificate, key_pem: &str, md: &str, not_after: i64) -> Result<CaFiles> {
    let dir = work.join("ca").join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("ca.pem"), cert.pem())?;
    std::fs::write(dir.join("ca.key"), key_pem)?;
    std::fs::write(dir.join("ca.cnf"), ca_cnf(md))?;
    std::fs::write(dir.join("serial"), "1000\n")?;
    std::fs::write(dir.join("crlnumber"), "1000\n")?;
    std::fs::write(dir.join("index.txt.attr"), "unique_subject = no\n")?;
    Ok(CaFiles { name, dir, cert_pem: cert.pem(), cert_der: cert.der().to_vec(), not_after })
}

/// One index.txt line: `V` or `R`, expiry, revocation field, serial, file, subject.
fn index_line(serial_hex: &str, not_after: i64, revoked: Option<&Revocation>, cn: &str) -> Result<String> {
    let expiry = asn1_time(not_after, false)?;
    Ok(match revoked {
        None => format!("V\t{expiry}\t\t{serial_hex}\tunknown\t/CN={cn}\n"),
        Some(r) => {
            let when = asn1_time(r.revoked_at, false)?;
            let field = match (r.coded, r.invalidity) {
                (false, _) => when,
                // openssl ca's keyTime: keyCompromise with an invalidity date (GeneralizedTime).
                (true, Some(inv)) => format!("{when},keyTime,{}", asn1_time(inv, true)?),
                (true, None) => format!("{when},{}", r.reason),
            };
            format!("R\t{expiry}\t{field}\t{serial_hex}\tunknown\t/CN={cn}\n")
        }
    })
}

/// What one generator thread wrote.
#[derive(Default)]
struct Part {
    occurrences: Tally,
    distinct: Tally,
    bytes: u64,
    /// (leaf number, CA, index.txt line).
    lines: Vec<(usize, Ca, String)>,
}

/// Generates the fleet under `work`: CAs, `leaves` leaf files under `work/certs`, the CA
/// databases, and each CA's CRL signed by `openssl ca -gencrl`. `crl_base` and `ocsp_base` are
/// the loopback URLs (`http://127.0.0.1:PORT`) of the harness's CRL server and OCSP responder.
pub fn generate(work: &Path, leaves: usize, crl_base: &str, ocsp_base: &str) -> Result<Fleet> {
    let started = Instant::now();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let day0 = now - now.rem_euclid(DAY);
    let certs = work.join("certs");
    let keys_dir = work.join("keys");
    std::fs::create_dir_all(&keys_dir).with_context(|| format!("creating {}", keys_dir.display()))?;

    // Keys: the RSA issuing CA's and four RSA subject keys from openssl, the rest from ring.
    let mut rsa = rsa_keys(&keys_dir, 5)?;
    let (rsa_ca_path, rsa_ca_key) = rsa.remove(0);
    let rsa_subjects: Vec<KeyPair> = rsa.into_iter().map(|(_, k)| k).collect();
    let ec_subjects = (0..8)
        .map(|_| KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("generating a P-256 key"))
        .collect::<Result<Vec<_>>>()?;
    let subject_key = |i: usize| if i % 4 == 3 { &rsa_subjects[(i / 4) % rsa_subjects.len()] } else { &ec_subjects[i % ec_subjects.len()] };

    // The root: ECDSA P-256, self-signed.
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("generating the root key")?;
    let mut root_params = ca_params("certvigil fleet root CA", &[0x03, 0x01])?;
    root_params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let root_cert = root_params.self_signed(&root_key).context("self-signing the root")?;
    let root_not_after = rcgen::date_time_ymd(2040, 1, 1).unix_timestamp();
    let root = ca_dir(work, "root", &root_cert, &root_key.serialize_pem(), "sha256", root_not_after)?;
    let root_issuer = Issuer::new(root_params, root_key);

    // The issuing CAs, each with the root's CRL and OCSP URLs.
    let intermediate = |cn: &str, serial: u8, name: &str, key: &KeyPair| -> Result<(CertificateParams, rcgen::Certificate)> {
        let mut p = ca_params(cn, &[0x02, serial])?;
        p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        p.use_authority_key_identifier_extension = true;
        p.crl_distribution_points = vec![CrlDistributionPoint { uris: vec![format!("{crl_base}/crl/root.crl")] }];
        p.custom_extensions.push(aia_ocsp(&format!("{ocsp_base}/ocsp/root")));
        let cert = p.signed_by(key, &root_issuer).with_context(|| format!("signing the {name} CA"))?;
        Ok((p, cert))
    };
    let (rsa_params, rsa_cert) = intermediate("certvigil fleet RSA issuing CA", 1, "rsa", &rsa_ca_key)?;
    let rsa_key_pem = std::fs::read_to_string(&rsa_ca_path)?;
    let rsa_files = ca_dir(work, "rsa", &rsa_cert, &rsa_key_pem, "sha256", root_not_after)?;
    let p384_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).context("generating the P-384 CA key")?;
    let (p384_params, p384_cert) = intermediate("certvigil fleet P-384 issuing CA", 2, "p384", &p384_key)?;
    let p384_files = ca_dir(work, "p384", &p384_cert, &p384_key.serialize_pem(), "sha384", root_not_after)?;
    let issuers = [(Issuer::new(rsa_params, rsa_ca_key), &rsa_files), (Issuer::new(p384_params, p384_key), &p384_files)];

    for d in 0..DIRS.min(leaves) {
        let dir = dir_of(&certs, d);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let root_file = certs.join("root-ca.pem");
    std::fs::write(&root_file, root_cert.pem()).with_context(|| format!("writing {}", root_file.display()))?;

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let parts: Vec<Result<Part>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (issuers, certs, subject_key) = (&issuers, &certs, &subject_key);
                scope.spawn(move || -> Result<Part> {
                    let mut part = Part::default();
                    for i in (t..leaves).step_by(threads) {
                        let ca = Ca::of(i);
                        let (issuer, ca_files) = &issuers[usize::from(ca == Ca::P384)];
                        let name = leaf_name(i);
                        let (not_before, not_after) = validity(i, day0);
                        let mut p = CertificateParams::new(vec![name.clone()]).with_context(|| format!("parameters for {name}"))?;
                        p.distinguished_name.push(DnType::CommonName, name.clone());
                        p.distinguished_name.push(DnType::OrganizationName, "certvigil bench");
                        p.serial_number = Some(SerialNumber::from_slice(&serial(i)));
                        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                        p.use_authority_key_identifier_extension = true;
                        p.crl_distribution_points = vec![CrlDistributionPoint { uris: vec![format!("{crl_base}/crl/{}.crl", ca.name())] }];
                        p.custom_extensions.push(aia_ocsp(&format!("{ocsp_base}/ocsp/{}", ca.name())));
                        p.not_before = ts(not_before)?;
                        p.not_after = ts(not_after)?;
                        let cert = p.signed_by(subject_key(i), issuer).with_context(|| format!("signing {name}"))?;
                        let mut pem = cert.pem();
                        part.occurrences.add_cert(cert.der(), not_after);
                        part.distinct.add_cert(cert.der(), not_after);
                        if is_fullchain(i) {
                            pem.push_str(&ca_files.cert_pem);
                            part.occurrences.add_cert(&ca_files.cert_der, ca_files.not_after);
                        }
                        let path = leaf_path(certs, i);
                        std::fs::write(&path, &pem).with_context(|| format!("writing {}", path.display()))?;
                        part.occurrences.files += 1;
                        part.distinct.files += 1;
                        part.bytes += pem.len() as u64;
                        part.lines.push((i, ca, index_line(&serial_hex(i), not_after, revocation(i, day0).as_ref(), &name)?));
                    }
                    Ok(part)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("a generator thread panicked")))).collect()
    });

    let mut occurrences = Tally::default();
    let mut distinct = Tally::default();
    let mut bytes = root_cert.pem().len() as u64;
    let mut lines = Vec::with_capacity(leaves);
    for part in parts {
        let part = part?;
        occurrences.merge(&part.occurrences);
        distinct.merge(&part.distinct);
        bytes += part.bytes;
        lines.extend(part.lines);
    }
    // The root file, and the CAs as distinct certificates of the store.
    occurrences.files += 1;
    distinct.files += 1;
    occurrences.add_cert(root_cert.der(), root_not_after);
    distinct.add_cert(root_cert.der(), root_not_after);
    let fullchain = (0..leaves).filter(|&i| is_fullchain(i)).count();
    for ca in Ca::BOTH {
        // A CA is in the store when some fullchain file carries it.
        if (0..leaves).any(|i| is_fullchain(i) && Ca::of(i) == ca) {
            let f = [&rsa_files, &p384_files][usize::from(ca == Ca::P384)];
            distinct.add_cert(&f.cert_der, f.not_after);
        }
    }

    // The CA databases, in leaf order, then a CRL from each by `openssl ca -gencrl`.
    lines.sort_by_key(|(i, _, _)| *i);
    for ca in Ca::BOTH {
        let mut index = String::with_capacity(lines.len() / 2 * 80);
        for (_, _, line) in lines.iter().filter(|(_, c, _)| *c == ca) {
            index.push_str(line);
        }
        std::fs::write([&rsa_files, &p384_files][usize::from(ca == Ca::P384)].dir.join("index.txt"), index)?;
    }
    let mut root_index = String::new();
    for (serial, cn) in [("0201", "certvigil fleet RSA issuing CA"), ("0202", "certvigil fleet P-384 issuing CA")] {
        let _ = writeln!(root_index, "V\t{}\t\t{serial}\tunknown\t/CN={cn}", asn1_time(root_not_after, false)?);
    }
    std::fs::write(root.dir.join("index.txt"), root_index)?;
    let mut crl_bytes = Vec::new();
    for ca in [&root, &rsa_files, &p384_files] {
        openssl(&ca.dir, &["ca", "-config", "ca.cnf", "-gencrl", "-crlexts", "crl_ext", "-out", "crl.pem"])?;
        openssl(&ca.dir, &["crl", "-in", "crl.pem", "-outform", "DER", "-out", "crl.der"])?;
        crl_bytes.push((ca.name, std::fs::metadata(ca.dir.join("crl.der"))?.len()));
    }

    let all: Vec<usize> = (0..leaves).collect();
    let count = |f: &dyn Fn(usize) -> bool| all.iter().filter(|&&i| f(i)).count();
    Ok(Fleet {
        work: work.to_path_buf(),
        certs,
        leaves,
        day0,
        root,
        rsa: rsa_files,
        p384: p384_files,
        root_file,
        occurrences,
        distinct,
        fullchain,
        expired: count(&|i| expiry(i) == Expiry::Expired),
        expiring: count(&|i| expiry(i) == Expiry::Expiring),
        revoked: count(&|i| revocation(i, day0).is_some()),
        with_invalidity: count(&|i| revocation(i, day0).is_some_and(|r| r.invalidity.is_some())),
        bytes,
        crl_bytes,
        generation_s: started.elapsed().as_secs_f64(),
        crl_base: crl_base.to_string(),
        ocsp_base: ocsp_base.to_string(),
    })
}

/// Writes the responder's database for the OCSP row under `work/ocsp/<ca>/`: each issuing CA's
/// index.txt restricted to `leaves` (`openssl ocsp` reads its whole index on every request, so
/// its cost grows with the index), and the root's (both issuing CAs). Returns the directory.
pub fn ocsp_databases(fleet: &Fleet, leaves: &[usize]) -> Result<PathBuf> {
    let base = fleet.work.join("ocsp");
    for ca in [&fleet.root, &fleet.rsa, &fleet.p384] {
        let dir = base.join(ca.name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for f in ["ca.pem", "ca.key", "index.txt.attr"] {
            std::fs::copy(ca.dir.join(f), dir.join(f)).with_context(|| format!("copying {f} of the {} CA", ca.name))?;
        }
    }
    std::fs::copy(fleet.root.dir.join("index.txt"), base.join("root/index.txt"))?;
    for ca in Ca::BOTH {
        let mut index = String::new();
        for &i in leaves.iter().filter(|&&i| Ca::of(i) == ca) {
            index.push_str(&index_line(&serial_hex(i), validity(i, fleet.day0).1, revocation(i, fleet.day0).as_ref(), &leaf_name(i))?);
        }
        std::fs::write(base.join(ca.name()).join("index.txt"), index)?;
    }
    Ok(base)
}
