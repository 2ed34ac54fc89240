//! The certificate trees of the scan benchmarks (`benches/scan.rs`, `benches/cluster.rs`,
//! included with `#[path = "harness/tree.rs"]` beside `harness/mod.rs`): the generator, and the
//! digest ([`Tally`]) that a correct scan must reproduce.
//!
//! An ECDSA P-256 CA signs every certificate; subject keys come from a small pool (RSA-2048 made
//! once per run by `openssl genpkey`, because ring cannot generate RSA keys; ECDSA P-256 and
//! Ed25519 by ring); validity is relative to a fixed date so a tree holds the same mix of expired
//! and valid certificates on every run. File number `i` decides everything about a file: its
//! kind (2% PEM bundles of 3–5 certificates, 2% DER, the rest one PEM certificate), its name,
//! its certificates' names, serials and dates. Several trees can be written in one call (the
//! sources of `cluster`), numbered on from one another, so every certificate is distinct.

#![allow(dead_code)]

use anyhow::{Context, Result, anyhow, ensure};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Subject keys of each algorithm in the pool.
const POOL_SIZE: usize = 8;

/// Files and certificates with an order-independent digest of them: what the generator wrote,
/// and what each tool reports, so the two can be compared.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub files: u64,
    pub certs: u64,
    /// XOR of the SHA-256 of every certificate's DER.
    pub fingerprint_xor: [u8; 32],
    /// Sum of every notAfter, Unix seconds.
    pub not_after_sum: i64,
    pub bytes: u64,
}

impl Tally {
    pub fn add_cert(&mut self, der: &[u8], not_after: i64) {
        self.add_digest(&Sha256::digest(der), not_after);
    }

    /// A certificate by its SHA-256 as a store keeps it (hex).
    pub fn add_fingerprint(&mut self, fingerprint: &str, not_after: i64) -> Result<()> {
        let bytes = hex::decode(fingerprint).with_context(|| format!("fingerprint {fingerprint:?} in the store is not hex"))?;
        self.add_digest(&bytes, not_after);
        Ok(())
    }

    fn add_digest(&mut self, digest: &[u8], not_after: i64) {
        for (x, b) in self.fingerprint_xor.iter_mut().zip(digest) {
            *x ^= b;
        }
        self.not_after_sum += not_after;
        self.certs += 1;
    }

    pub fn merge(&mut self, other: &Tally) {
        self.files += other.files;
        self.certs += other.certs;
        self.not_after_sum += other.not_after_sum;
        self.bytes += other.bytes;
        for (x, b) in self.fingerprint_xor.iter_mut().zip(other.fingerprint_xor) {
            *x ^= b;
        }
    }

    /// Every way `found` (what `who` reported) disagrees with this, the generator's tally.
    pub fn mismatches(&self, who: &str, found: &Tally) -> Vec<String> {
        let mut out = Vec::new();
        if found.files != self.files {
            out.push(format!("{who}: {} files, expected {}", found.files, self.files));
        }
        if found.certs != self.certs {
            out.push(format!("{who}: {} certificates, expected {}", found.certs, self.certs));
        }
        if found.fingerprint_xor != self.fingerprint_xor {
            out.push(format!(
                "{who}: fingerprint XOR {} differs from the generator's {}",
                hex::encode(found.fingerprint_xor),
                hex::encode(self.fingerprint_xor)
            ));
        }
        if found.not_after_sum != self.not_after_sum {
            out.push(format!("{who}: notAfter sum {} differs from the generator's {}", found.not_after_sum, self.not_after_sum));
        }
        out
    }
}

/// Directories of a tree: `top` directories `dNN` of `sub` subdirectories `sNN` each; file
/// number `k` of the tree goes to directory `k mod (top × sub)`.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub top: usize,
    pub sub: usize,
}

impl Layout {
    /// The scan benchmark's: 100 × 10 directories (100 files each at 100,000 files).
    pub const SCAN: Layout = Layout { top: 100, sub: 10 };

    /// About 100 files a directory, as in the scan benchmark's tree at its default size, with up
    /// to 10 subdirectories in each top directory.
    pub fn for_files(files: usize) -> Layout {
        let dirs = files.div_ceil(100).max(1);
        let sub = dirs.min(10);
        Layout { top: dirs.div_ceil(sub), sub }
    }

    fn dirs(self) -> usize {
        self.top * self.sub
    }

    /// Directory number `d`: `root/dNN/sNN`.
    fn dir(self, root: &Path, d: usize) -> PathBuf {
        root.join(format!("d{:02}", d / self.sub)).join(format!("s{:02}", d % self.sub))
    }
}

/// One tree to write: files numbered `first .. first + files` under `root`.
#[derive(Debug, Clone)]
pub struct Tree {
    pub root: PathBuf,
    pub first: usize,
    pub files: usize,
    pub layout: Layout,
}

/// How file number `i` is written: ~96% one PEM certificate, 2% PEM bundles of 3–5
/// certificates, 2% DER `.crt` files.
#[derive(Clone, Copy)]
enum FileKind {
    Pem,
    Bundle(usize),
    Der,
}

fn file_kind(i: usize) -> FileKind {
    match i % 50 {
        0 => FileKind::Bundle(3 + (i / 50) % 3),
        25 => FileKind::Der,
        _ => FileKind::Pem,
    }
}

/// The pool of subject keys, shared by all generator threads.
struct KeyPool {
    rsa: Vec<KeyPair>,
    ecdsa: Vec<KeyPair>,
    ed25519: Vec<KeyPair>,
}

impl KeyPool {
    fn new(work: &Path) -> Result<KeyPool> {
        let ring = |alg: &'static rcgen::SignatureAlgorithm, what: &str| -> Result<Vec<KeyPair>> {
            (0..POOL_SIZE).map(|_| KeyPair::generate_for(alg).with_context(|| format!("generating a {what} key"))).collect()
        };
        Ok(KeyPool {
            rsa: rsa_keys(work)?,
            ecdsa: ring(&rcgen::PKCS_ECDSA_P256_SHA256, "P-256")?,
            ed25519: ring(&rcgen::PKCS_ED25519, "Ed25519")?,
        })
    }

    /// The subject key of certificate `n`: the three algorithms in turn, cycling through the pool.
    fn key(&self, n: usize) -> &KeyPair {
        let pool = match n % 3 {
            0 => &self.rsa,
            1 => &self.ecdsa,
            _ => &self.ed25519,
        };
        &pool[(n / 3) % pool.len()]
    }
}

/// RSA-2048 subject keys from `openssl genpkey` (PKCS#8 PEM), generated concurrently.
fn rsa_keys(work: &Path) -> Result<Vec<KeyPair>> {
    let children = (0..POOL_SIZE)
        .map(|k| {
            let out = work.join(format!("rsa-{k}.key"));
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
            KeyPair::from_pem(&pem).with_context(|| format!("loading the RSA key {}", out.display()))
        })
        .collect()
}

/// Writes `files` certificate files under `certs_dir` in the scan benchmark's layout and returns
/// what a correct scan must find.
pub fn generate(work: &Path, certs_dir: &Path, files: usize) -> Result<Tally> {
    let tree = Tree { root: certs_dir.to_path_buf(), first: 0, files, layout: Layout::SCAN };
    generate_trees(work, &[tree])?.pop().context("no tally")
}

/// Writes every tree (the CA beside them, as `work/ca.pem`) and returns, tree by tree, what a
/// correct scan must find.
pub fn generate_trees(work: &Path, trees: &[Tree]) -> Result<Vec<Tally>> {
    let keys = KeyPool::new(work)?;

    // The CA: ECDSA P-256, so signing 100,000 certificates takes seconds.
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("generating the CA key")?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
    ca.distinguished_name.push(DnType::CommonName, "certvigil bench CA");
    ca.distinguished_name.push(DnType::OrganizationName, "certvigil bench");
    ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = rcgen::date_time_ymd(2024, 1, 1);
    ca.not_after = rcgen::date_time_ymd(2034, 1, 1);
    let ca_cert = ca.self_signed(&ca_key).context("self-signing the CA")?;
    // Beside the trees, not in them: the trees hold only the leaves the tools must count.
    std::fs::write(work.join("ca.pem"), ca_cert.pem()).context("writing ca.pem")?;
    let issuer = Issuer::new(ca, ca_key);

    for tree in trees {
        for d in 0..tree.layout.dirs() {
            let dir = tree.layout.dir(&tree.root, d);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }

    // The files of all trees, counted in order, are dealt to the threads in turn (position p to
    // thread p % threads); each thread keeps its own digest per tree, merged at the end.
    let threads = crate::harness::cores();
    let parts: Vec<Result<Vec<Tally>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (keys, issuer) = (&keys, &issuer);
                scope.spawn(move || -> Result<Vec<Tally>> {
                    let mut digests = vec![Tally::default(); trees.len()];
                    let mut before = 0;
                    for (tree, digest) in trees.iter().zip(&mut digests) {
                        let start = (t + threads - before % threads) % threads;
                        for k in (start..tree.files).step_by(threads) {
                            write_file(tree, k, keys, issuer, digest)?;
                        }
                        before += tree.files;
                    }
                    Ok(digests)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("a generator thread panicked")))).collect()
    });
    let mut totals = vec![Tally::default(); trees.len()];
    for part in parts {
        for (total, digest) in totals.iter_mut().zip(part?) {
            total.merge(&digest);
        }
    }
    Ok(totals)
}

/// Writes file `k` of `tree` (file number `tree.first + k`), spreading files round-robin over
/// the tree's directories.
fn write_file(tree: &Tree, k: usize, keys: &KeyPool, issuer: &Issuer<'_, KeyPair>, digest: &mut Tally) -> Result<()> {
    let i = tree.first + k;
    let dir = tree.layout.dir(&tree.root, k % tree.layout.dirs());
    let (path, bytes) = match file_kind(i) {
        FileKind::Pem => {
            let (cert, not_after) = leaf(i, 0, keys, issuer)?;
            digest.add_cert(cert.der(), not_after);
            (dir.join(format!("svc-{i:06}.pem")), cert.pem().into_bytes())
        }
        FileKind::Der => {
            let (cert, not_after) = leaf(i, 0, keys, issuer)?;
            digest.add_cert(cert.der(), not_after);
            (dir.join(format!("svc-{i:06}.crt")), cert.der().to_vec())
        }
        FileKind::Bundle(count) => {
            let mut pem = String::new();
            for j in 0..count {
                let (cert, not_after) = leaf(i, j, keys, issuer)?;
                digest.add_cert(cert.der(), not_after);
                pem.push_str(&cert.pem());
            }
            (dir.join(format!("bundle-{i:06}.pem")), pem.into_bytes())
        }
    };
    std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    digest.files += 1;
    digest.bytes += bytes.len() as u64;
    Ok(())
}

/// Certificate `j` of file `i`, with its notAfter in Unix seconds. Validity is relative to
/// 2026-01-01T00:00:00Z: issued up to two years before it, for 90, 397 or 825 days, so a
/// little under half (44%) have expired by then.
fn leaf(i: usize, j: usize, keys: &KeyPool, issuer: &Issuer<'_, KeyPair>) -> Result<(rcgen::Certificate, i64)> {
    const DAY: u64 = 86_400;
    let name = format!("svc-{i:06}-{j}.bench.certvigil.test");
    let mut p = CertificateParams::new(vec![name.clone()]).with_context(|| format!("parameters for {name}"))?;
    p.distinguished_name.push(DnType::CommonName, name.clone());
    p.distinguished_name.push(DnType::OrganizationName, "certvigil bench");
    // Unique and positive: 0x01, the file number, the position in the file.
    let mut serial = vec![0x01];
    serial.extend_from_slice(&(i as u32).to_be_bytes());
    serial.push(j as u8);
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    let age_days = ((i * 7919 + j * 31) % 730) as u64;
    let lifetime_days = [90u64, 397, 825][(i + j) % 3];
    p.not_before = rcgen::date_time_ymd(2026, 1, 1) - Duration::from_secs(age_days * DAY);
    p.not_after = p.not_before + Duration::from_secs(lifetime_days * DAY);
    let not_after = p.not_after.unix_timestamp();
    let cert = p.signed_by(keys.key(i + j), issuer).with_context(|| format!("signing {name}"))?;
    Ok((cert, not_after))
}
