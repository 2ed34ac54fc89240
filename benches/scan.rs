//! Benchmark "scan of 100,000 certificate files": generates a certificate tree, then measures
//! `certvigil scan` (cold: fresh store; warm: second run, nothing changed) against a Go
//! (`crypto/x509`) and a Python (`cryptography`) program doing the same parsing work, and prints
//! wall time, CPU time and peak RSS of each as a table, ratios, and `target/bench-scan.json`.
//!
//! A `harness = false` bench target: `cargo bench --bench scan` (release build; cargo builds the
//! `certvigil` binary too and names it in `CARGO_BIN_EXE_certvigil`). Settings, all optional:
//!
//! | variable                     | meaning                                                  |
//! |------------------------------|----------------------------------------------------------|
//! | `CERTVIGIL_BENCH_N`          | certificate files to generate (default 100000)           |
//! | `CERTVIGIL_BENCH_RUNS`       | runs per tool; the median wall time is reported (1)      |
//! | `CERTVIGIL_BENCH_KEEP`       | `1` keeps the fixture directory and prints its path      |
//! | `CERTVIGIL_BENCH_SKIP_SETUP` | `1` skips `benches/setup.sh`                             |
//! | `CERTVIGIL_BENCH_VENV`       | the venv setup.sh fills (`/opt/certvigil-bench-venv`)    |
//!
//! Every tool's result is checked against the generator: the number of files and certificates,
//! the XOR of all SHA-256 fingerprints and the sum of all notAfter times must match, so a tool
//! that skipped or misparsed something fails the benchmark instead of looking fast. certvigil's
//! own run counters must also say it did the work being timed: the cold scan read every
//! generated object, the warm scan read none (`objects_read == 0`, every object listed and
//! unchanged), neither reported an error. Every run is checked, not only the median one.
//!
//! Under `cargo test --all-targets` (which runs a `harness = false` bench without the `--bench`
//! argument that `cargo bench` passes) it makes a smoke run instead: 120 files, certvigil's cold
//! and warm scans checked against the generator and their counters, no baselines, no setup,
//! about a second, so CI notices when the harness and the CLI or store drift apart.
//!
//! Fixtures (see benches/README.md): an ECDSA P-256 CA signs every certificate; subject keys come
//! from a small pool (RSA-2048 made once per run by `openssl genpkey`, because ring cannot
//! generate RSA keys; ECDSA P-256 and Ed25519 by ring); validity is relative to a fixed date so
//! the tree holds the same mix of expired and valid certificates on every run.

#[path = "harness/mod.rs"]
mod harness;

use anyhow::{Context, Result, anyhow, bail, ensure};
use harness::{cores, go_build, round, tail, timed};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The release binary under test, built by `cargo bench` alongside this harness.
const CERTVIGIL: &str = env!("CARGO_BIN_EXE_certvigil");
/// The peak-RSS target of the issue, in MiB.
const RSS_TARGET_MIB: f64 = 64.0;
/// Top-level directories of the fixture tree, and subdirectories in each.
const TOP_DIRS: usize = 100;
const SUB_DIRS: usize = 10;
/// Subject keys of each algorithm in the pool.
const POOL_SIZE: usize = 8;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench scan: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Settings read from the environment.
struct Settings {
    files: usize,
    runs: usize,
    keep: bool,
    skip_setup: bool,
    venv: PathBuf,
}

impl Settings {
    fn from_env() -> Result<Settings> {
        let number = |name: &str, default: usize| -> Result<usize> {
            match std::env::var(name) {
                Ok(v) => v.trim().replace('_', "").parse().with_context(|| format!("{name}={v:?} is not a whole number")),
                Err(_) => Ok(default),
            }
        };
        let flag = |name: &str| std::env::var(name).is_ok_and(|v| v == "1" || v == "true");
        let s = Settings {
            files: number("CERTVIGIL_BENCH_N", 100_000)?,
            runs: number("CERTVIGIL_BENCH_RUNS", 1)?,
            keep: flag("CERTVIGIL_BENCH_KEEP"),
            skip_setup: flag("CERTVIGIL_BENCH_SKIP_SETUP"),
            venv: std::env::var_os("CERTVIGIL_BENCH_VENV").map_or_else(|| PathBuf::from("/opt/certvigil-bench-venv"), PathBuf::from),
        };
        ensure!(s.files >= 1, "CERTVIGIL_BENCH_N must be at least 1");
        ensure!(s.runs >= 1, "CERTVIGIL_BENCH_RUNS must be at least 1");
        Ok(s)
    }
}

fn run() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        return smoke();
    }
    let settings = Settings::from_env()?;
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let benches = manifest_dir.join("benches");
    // target/release/certvigil → target/: where cargo put this build, CARGO_TARGET_DIR included.
    let target_dir =
        Path::new(CERTVIGIL).parent().and_then(Path::parent).context("CARGO_BIN_EXE_certvigil has no target directory")?.to_path_buf();

    if !settings.skip_setup {
        let status = Command::new("bash")
            .arg(benches.join("setup.sh"))
            .env("CERTVIGIL_BENCH_VENV", &settings.venv)
            .status()
            .context("running benches/setup.sh")?;
        ensure!(status.success(), "benches/setup.sh failed ({status}); run it by hand to see why");
    }
    let python = settings.venv.join("bin/python");
    let go = settings.venv.join("bin/go");
    for (tool, path) in [("/usr/bin/time", Path::new("/usr/bin/time")), ("python", &python), ("go", &go)] {
        ensure!(path.exists(), "{tool} not found at {}: run benches/setup.sh", path.display());
    }

    let tmp = tempfile::Builder::new().prefix("certvigil-bench-").tempdir().context("creating the fixture directory")?;
    let work = tmp.path().to_path_buf();
    let certs_dir = work.join("certs");

    println!("certvigil scan benchmark: {} files, {} run(s) per tool, {} cores", settings.files, settings.runs, cores());
    let started = Instant::now();
    let expected = generate(&work, &certs_dir, settings.files)?;
    let generation_s = started.elapsed().as_secs_f64();
    println!(
        "fixtures: {} files, {} certificates, {} MiB, in {:.1} s ({})",
        expected.files,
        expected.certs,
        expected.bytes >> 20,
        generation_s,
        certs_dir.display()
    );

    let go_bin = build_go(&go, &benches.join("baselines/x509scan.go"), &work, &target_dir)?;
    let py_script = benches.join("baselines/x509scan.py");

    let mut rows: Vec<Row> = Vec::new();
    // Every run of every tool is checked, not only the median one that is reported.
    let mut problems: Vec<String> = Vec::new();

    let cores = cores().to_string();
    let go_parallel = measure(settings.runs, &expected, &mut problems, || {
        run_baseline("go", &format!("parallel ({cores} workers)"), &go_bin, &["-workers", &cores], &[], &certs_dir)
    })?;
    rows.push(go_parallel);
    let go_single = measure(settings.runs, &expected, &mut problems, || {
        run_baseline("go", "1 thread", &go_bin, &["-workers", "1"], &[("GOMAXPROCS", "1")], &certs_dir)
    })?;
    rows.push(go_single);
    let python_row = measure(settings.runs, &expected, &mut problems, || {
        run_baseline("python", "1 thread", &python, &[py_script.as_os_str().to_str().context("non-UTF-8 bench path")?], &[], &certs_dir)
    })?;
    rows.push(python_row);

    // Each run pair gets a fresh store: cold fills it, warm rescans the unchanged tree.
    let mut colds = Vec::new();
    let mut warms = Vec::new();
    for r in 0..settings.runs {
        let store = work.join(format!("store-{r}.db"));
        let cfg = write_config(&work, &store, &certs_dir, r)?;
        for (phase, runs) in [("cold", &mut colds), ("warm", &mut warms)] {
            let row = run_certvigil(phase, &cfg, &store, true)?;
            problems.extend(row.mismatches(&expected));
            runs.push(row);
        }
    }
    rows.push(median(colds));
    rows.push(median(warms));

    let report = Report { settings: &settings, expected: &expected, generation_s, rows: &rows, problems: &problems };
    report.print();
    let json_path = target_dir.join("bench-scan.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&report.json())? + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    println!("\nwrote {}", json_path.display());

    if settings.keep {
        let kept = tmp.keep();
        println!("kept fixtures in {}", kept.display());
    }
    if !problems.is_empty() {
        bail!("{} check(s) failed:\n  {}", problems.len(), problems.join("\n  "));
    }
    Ok(())
}

/// The `cargo test` run: generator and certvigil only, checked, nothing measured.
fn smoke() -> Result<()> {
    const FILES: usize = 120; // includes bundles (i % 50 == 0) and DER files (i % 50 == 25)
    let tmp = tempfile::Builder::new().prefix("certvigil-bench-smoke-").tempdir().context("creating the fixture directory")?;
    let (work, certs_dir) = (tmp.path(), tmp.path().join("certs"));
    let expected = generate(work, &certs_dir, FILES)?;
    let store = work.join("store.db");
    let cfg = write_config(work, &store, &certs_dir, 0)?;
    let mut problems = Vec::new();
    let mut reads = Vec::new();
    for phase in ["cold", "warm"] {
        let row = run_certvigil(phase, &cfg, &store, false)?;
        problems.extend(row.mismatches(&expected));
        reads.push(format!("{phase} read {} of {}", row.extra["run"]["objects_read"], row.extra["run"]["objects_seen"]));
    }
    ensure!(problems.is_empty(), "smoke run: {} check(s) failed:\n  {}", problems.len(), problems.join("\n  "));
    println!(
        "bench scan smoke run: ok ({FILES} files, {} certificates; {}); `cargo bench --bench scan` measures",
        expected.certs,
        reads.join(", ")
    );
    Ok(())
}

// ───────────────────────────── fixtures ─────────────────────────────

/// Files and certificates with an order-independent digest of them: what the generator wrote,
/// and what each tool reports, so the two can be compared.
#[derive(Debug, Default, Clone)]
struct Tally {
    files: u64,
    certs: u64,
    /// XOR of the SHA-256 of every certificate's DER.
    fingerprint_xor: [u8; 32],
    /// Sum of every notAfter, Unix seconds.
    not_after_sum: i64,
    bytes: u64,
}

impl Tally {
    fn add_cert(&mut self, der: &[u8], not_after: i64) {
        for (x, b) in self.fingerprint_xor.iter_mut().zip(Sha256::digest(der).iter()) {
            *x ^= b;
        }
        self.not_after_sum += not_after;
        self.certs += 1;
    }

    fn merge(&mut self, other: &Tally) {
        self.files += other.files;
        self.certs += other.certs;
        self.not_after_sum += other.not_after_sum;
        self.bytes += other.bytes;
        for (x, b) in self.fingerprint_xor.iter_mut().zip(other.fingerprint_xor) {
            *x ^= b;
        }
    }
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

/// Writes `files` certificate files under `certs_dir` and returns what a correct scan must find.
fn generate(work: &Path, certs_dir: &Path, files: usize) -> Result<Tally> {
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
    // Beside the tree, not in it: the tree holds only the leaves the tools must count.
    std::fs::write(work.join("ca.pem"), ca_cert.pem()).context("writing ca.pem")?;
    let issuer = Issuer::new(ca, ca_key);

    for top in 0..TOP_DIRS {
        for sub in 0..SUB_DIRS {
            let dir = leaf_dir(certs_dir, top * SUB_DIRS + sub);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }

    // File i goes to thread i % threads; each thread keeps its own digest, merged at the end.
    let threads = cores();
    let parts: Vec<Result<Tally>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (keys, issuer) = (&keys, &issuer);
                scope.spawn(move || -> Result<Tally> {
                    let mut digest = Tally::default();
                    for i in (t..files).step_by(threads) {
                        write_file(certs_dir, i, keys, issuer, &mut digest)?;
                    }
                    Ok(digest)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("a generator thread panicked")))).collect()
    });
    let mut total = Tally::default();
    for part in parts {
        total.merge(&part?);
    }
    Ok(total)
}

/// Directory number `d` (0 ≤ d < TOP_DIRS × SUB_DIRS): `certs/dNN/sNN`.
fn leaf_dir(certs_dir: &Path, d: usize) -> PathBuf {
    certs_dir.join(format!("d{:02}", d / SUB_DIRS)).join(format!("s{:02}", d % SUB_DIRS))
}

/// Writes file number `i`, spreading files round-robin over the leaf directories.
fn write_file(certs_dir: &Path, i: usize, keys: &KeyPool, issuer: &Issuer<'_, KeyPair>, digest: &mut Tally) -> Result<()> {
    let dir = leaf_dir(certs_dir, i % (TOP_DIRS * SUB_DIRS));
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

// ───────────────────────────── measuring ─────────────────────────────

/// One measured run of one tool, with what it reported.
#[derive(Debug, Clone)]
struct Row {
    tool: String,
    phase: String,
    wall_s: f64,
    cpu_s: f64,
    peak_rss_kib: u64,
    /// What the tool found (`bytes` unused).
    found: Tally,
    errors: u64,
    /// Tool-specific facts for the JSON report (certvigil's run counters).
    extra: Value,
}

impl Row {
    fn peak_rss_mib(&self) -> f64 {
        self.peak_rss_kib as f64 / 1024.0
    }

    /// Every way this row disagrees with the generator.
    fn mismatches(&self, expected: &Tally) -> Vec<String> {
        let who = format!("{} {}", self.tool, self.phase);
        let mut out = Vec::new();
        if self.found.files != expected.files {
            out.push(format!("{who}: {} files, expected {}", self.found.files, expected.files));
        }
        if self.found.certs != expected.certs {
            out.push(format!("{who}: {} certificates, expected {}", self.found.certs, expected.certs));
        }
        if self.found.fingerprint_xor != expected.fingerprint_xor {
            out.push(format!(
                "{who}: fingerprint XOR {} differs from the generator's {}",
                hex::encode(self.found.fingerprint_xor),
                hex::encode(expected.fingerprint_xor)
            ));
        }
        if self.found.not_after_sum != expected.not_after_sum {
            out.push(format!("{who}: notAfter sum {} differs from the generator's {}", self.found.not_after_sum, expected.not_after_sum));
        }
        if self.errors != 0 {
            out.push(format!("{who}: {} errors", self.errors));
        }
        if self.tool == "certvigil" {
            out.extend(run_counter_mismatches(&who, &self.phase, &self.extra, expected));
        }
        out
    }
}

/// What certvigil's own run counters (its `--output json` summary) must say. A cold scan (fresh
/// store) lists and reads every generated file and finds every certificate new; a warm scan
/// (same store, nothing changed) lists every file and reads none: every object is unchanged, so
/// the warm figure is the cost of noticing that, not of parsing again.
fn run_counter_mismatches(who: &str, phase: &str, extra: &Value, expected: &Tally) -> Vec<String> {
    let mut out = Vec::new();
    let run = &extra["run"];
    let mut want = |field: &str, value: &Value, expect: u64| match value.as_u64() {
        Some(v) if v == expect => {}
        Some(v) => out.push(format!("{who}: run counter {field} = {v}, expected {expect}")),
        None => out.push(format!("{who}: the summary has no counter {field} (got {value})")),
    };
    let (files, certs) = (expected.files, expected.certs);
    let read = if phase == "cold" { files } else { 0 };
    let new = if phase == "cold" { certs } else { 0 };
    want("run.objects_seen", &run["objects_seen"], files);
    want("run.objects_read", &run["objects_read"], read);
    want("run.certs_seen", &run["certs_seen"], certs);
    want("run.certs_new", &run["certs_new"], new);
    want("run.certs_gone", &run["certs_gone"], 0);
    want("run.errors", &run["errors"], 0);
    // The one source, by its own counts: the same listing, the same reads, nothing vanished.
    match extra["sources"].as_array().map(Vec::as_slice) {
        Some([src]) => {
            want("sources[bench].objects", &src["objects"], files);
            want("sources[bench].read", &src["read"], read);
            want("sources[bench].errors", &src["errors"], 0);
            want("sources[bench].vanished", &src["vanished"], 0);
        }
        _ => out.push(format!("{who}: the summary should list exactly one source, got {}", extra["sources"])),
    }
    if run["status"] != "ok" {
        out.push(format!("{who}: run status {}, expected \"ok\"", run["status"]));
    }
    match extra["errors"].as_array() {
        Some(errors) if errors.is_empty() => {}
        _ => out.push(format!("{who}: the summary lists errors: {}", extra["errors"])),
    }
    out
}

/// Runs `once` `runs` times, checks every run against the generator, and keeps the run with the
/// median wall time.
fn measure(runs: usize, expected: &Tally, problems: &mut Vec<String>, mut once: impl FnMut() -> Result<Row>) -> Result<Row> {
    let rows = (0..runs).map(|_| once()).collect::<Result<Vec<_>>>()?;
    for row in &rows {
        problems.extend(row.mismatches(expected));
    }
    Ok(median(rows))
}

fn median(mut rows: Vec<Row>) -> Row {
    rows.sort_by(|a, b| a.wall_s.total_cmp(&b.wall_s));
    let mid = rows.len() / 2;
    rows.swap_remove(mid)
}

/// Builds the Go baseline into `work` (its caches under target/bench-scan/).
fn build_go(go: &Path, source: &Path, work: &Path, target_dir: &Path) -> Result<PathBuf> {
    let out = work.join("x509scan-go");
    let started = Instant::now();
    go_build(go, source, &out, &target_dir.join("bench-scan"))?;
    println!("built the Go baseline in {:.1} s", started.elapsed().as_secs_f64());
    Ok(out)
}

/// Runs a baseline (they share one output format: a JSON line with their digest).
fn run_baseline(tool: &str, phase: &str, program: &Path, args: &[&str], env: &[(&str, &str)], certs_dir: &Path) -> Result<Row> {
    let mut argv: Vec<OsString> = args.iter().map(OsString::from).collect();
    argv.push(certs_dir.into());
    let what = format!("the {tool} baseline ({phase})");
    let t = timed(program, &argv, env, &what, true, None)?;
    let v: Value = serde_json::from_str(t.stdout.trim()).with_context(|| format!("{what} printed {:?}, not its JSON line", t.stdout))?;
    let int = |k: &str| v[k].as_i64().with_context(|| format!("{what}: no integer `{k}` in {v}"));
    let xor = v["fingerprint_xor"]
        .as_str()
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .with_context(|| format!("{what}: bad fingerprint_xor in {v}"))?;
    let found = Tally {
        files: int("files")? as u64,
        certs: int("certs")? as u64,
        fingerprint_xor: xor,
        not_after_sum: int("not_after_sum")?,
        bytes: 0,
    };
    println!("  {tool:<9} {phase:<22} {:>8.2} s", t.wall_s);
    Ok(Row {
        tool: tool.into(),
        phase: phase.into(),
        wall_s: t.wall_s,
        cpu_s: t.cpu_s.unwrap_or(0.0),
        peak_rss_kib: t.peak_rss_kib.unwrap_or(0),
        found,
        errors: int("errors")? as u64,
        extra: json!({ "workers": v["workers"] }),
    })
}

/// The configuration the issue names: one store, one files source over the tree.
fn write_config(work: &Path, store: &Path, certs_dir: &Path, run: usize) -> Result<PathBuf> {
    let yaml = format!(
        "store:\n  path: {}\nsources:\n  - name: bench\n    kind: files\n    paths: [{}]\n",
        serde_json::to_string(&store.to_string_lossy())?,
        serde_json::to_string(&certs_dir.to_string_lossy())?,
    );
    let path = work.join(format!("certvigil-{run}.yaml"));
    std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Runs `certvigil -c cfg scan`, then reads what it stored (the current certificates' digest)
/// straight from the SQLite file, read-only.
fn run_certvigil(phase: &str, cfg: &Path, store: &Path, measure_rss: bool) -> Result<Row> {
    let what = format!("certvigil scan ({phase})");
    let args: Vec<OsString> = vec!["-c".into(), cfg.into(), "scan".into(), "--output".into(), "json".into()];
    let t = timed(Path::new(CERTVIGIL), &args, &[], &what, measure_rss, None)?;
    let summary: Value = serde_json::from_str(&t.stdout)
        .with_context(|| format!("{what}: its --output json summary did not parse: {:?}", tail(&t.stdout, 5)))?;
    let run = &summary["run"];

    let db = rusqlite::Connection::open_with_flags(store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening the store {}", store.display()))?;
    let mut found = Tally::default();
    let mut stmt = db.prepare("SELECT fingerprint, not_after FROM certificates WHERE gone_since IS NULL").context("querying the store")?;
    let mut rows = stmt.query([]).context("querying the store")?;
    while let Some(r) = rows.next().context("reading the store")? {
        let fingerprint: String = r.get(0)?;
        let not_after: i64 = r.get(1)?;
        let bytes = hex::decode(&fingerprint).with_context(|| format!("fingerprint {fingerprint:?} in the store is not hex"))?;
        for (x, b) in found.fingerprint_xor.iter_mut().zip(bytes) {
            *x ^= b;
        }
        found.not_after_sum += not_after;
        found.certs += 1;
    }
    found.files = db
        .query_row("SELECT count(*) FROM objects WHERE source = 'bench' AND certs > 0", [], |r| r.get::<_, i64>(0))
        .context("counting stored objects")? as u64;
    // A summary without the counter fails run_counter_mismatches; it is not read as zero here.
    let errors = run["errors"].as_u64().unwrap_or(0);
    println!("  {:<9} {phase:<22} {:>8.2} s", "certvigil", t.wall_s);
    Ok(Row {
        tool: "certvigil".into(),
        phase: phase.into(),
        wall_s: t.wall_s,
        cpu_s: t.cpu_s.unwrap_or(0.0),
        peak_rss_kib: t.peak_rss_kib.unwrap_or(0),
        found,
        errors,
        extra: json!({ "run": run, "sources": summary["sources"], "errors": summary["errors"] }),
    })
}

// ───────────────────────────── reporting ─────────────────────────────

struct Report<'a> {
    settings: &'a Settings,
    expected: &'a Tally,
    generation_s: f64,
    rows: &'a [Row],
    problems: &'a [String],
}

impl Report<'_> {
    fn row(&self, tool: &str, phase_prefix: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.tool == tool && r.phase.starts_with(phase_prefix))
    }

    /// The wall-time ratios the issue asks for, by name; a ratio whose rows are missing is left out.
    fn ratios(&self) -> Vec<(&'static str, f64)> {
        let ratio = |a: Option<&Row>, b: Option<&Row>| a.zip(b).map(|(a, b)| a.wall_s / b.wall_s);
        let cold = self.row("certvigil", "cold");
        let mut out = Vec::new();
        for (name, value) in [
            ("certvigil cold / Go parallel", ratio(cold, self.row("go", "parallel"))),
            ("certvigil cold / Go 1 thread", ratio(cold, self.row("go", "1 thread"))),
            ("certvigil cold / Python", ratio(cold, self.row("python", ""))),
            ("certvigil warm / certvigil cold", ratio(self.row("certvigil", "warm"), cold)),
        ] {
            if let Some(v) = value {
                out.push((name, v));
            }
        }
        out
    }

    fn print(&self) {
        println!();
        println!("{:<10} {:<22} {:>9} {:>9} {:>14} {:>8}", "tool", "phase", "wall s", "cpu s", "peak RSS MiB", "certs");
        for r in self.rows {
            println!("{:<10} {:<22} {:>9.2} {:>9.2} {:>14.1} {:>8}", r.tool, r.phase, r.wall_s, r.cpu_s, r.peak_rss_mib(), r.found.certs);
        }
        println!();
        for (name, v) in self.ratios() {
            println!("{name:<34} {v:>7.2}x");
        }
        for r in self.rows.iter().filter(|r| r.tool == "certvigil") {
            let verdict = if r.peak_rss_mib() <= RSS_TARGET_MIB { "within" } else { "OVER" };
            println!("certvigil {:<5} peak RSS / 64 MiB {:>8.2}  ({verdict} target)", r.phase, r.peak_rss_mib() / RSS_TARGET_MIB);
        }
        for r in self.rows.iter().filter(|r| r.tool == "certvigil") {
            let run = &r.extra["run"];
            println!(
                "certvigil {:<5} read {} of {} objects (checked: cold reads all, warm none)",
                r.phase, run["objects_read"], run["objects_seen"]
            );
        }
    }

    fn json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                json!({
                    "tool": r.tool,
                    "phase": r.phase,
                    "wall_s": round(r.wall_s, 3),
                    "cpu_s": round(r.cpu_s, 3),
                    "peak_rss_mib": round(r.peak_rss_mib(), 1),
                    "certs": r.found.certs,
                    "files": r.found.files,
                    "errors": r.errors,
                    "extra": r.extra,
                })
            })
            .collect();
        let ratios: serde_json::Map<String, Value> = self.ratios().into_iter().map(|(k, v)| (k.to_string(), json!(round(v, 3)))).collect();
        let rss: serde_json::Map<String, Value> = self
            .rows
            .iter()
            .filter(|r| r.tool == "certvigil")
            .map(|r| (format!("certvigil {} peak RSS / 64 MiB", r.phase), json!(round(r.peak_rss_mib() / RSS_TARGET_MIB, 3))))
            .collect();
        let measured_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        json!({
            "benchmark": "scan",
            "measured_at_unix": measured_at,
            "cores": cores(),
            "runs_per_tool": self.settings.runs,
            "fixtures": {
                "files": self.expected.files,
                "certs": self.expected.certs,
                "bytes": self.expected.bytes,
                "generation_s": round(self.generation_s, 2),
            },
            "rss_target_mib": RSS_TARGET_MIB,
            "rows": rows,
            "ratios": ratios,
            "rss_vs_target": rss,
            "checks_failed": self.problems,
        })
    }
}
