//! Benchmark "revocation at scale", in two parts, printed as tables with ratios and written to
//! `target/bench-revocation.json`:
//!
//! * **CRL**: a CRL of 1,000,000 entries made by `openssl ca -gencrl`, then load + signature
//!   verification + index + 10,000 lookups (half listed, half not) by `certvigil crl`, by a Go
//!   program (`crypto/x509`), by Python `cryptography` (its lookup API, and a dict), and
//!   signature verification alone by `openssl crl`: wall time, CPU time, peak RSS, and peak RSS
//!   over the CRL's size.
//! * **OCSP**: 10,000 certificates whose AIA names a loopback responder (the real
//!   `openssl ocsp -index … -reqin … -respout …`, one process per request), scanned into a store;
//!   a cold `certvigil check` (every certificate asked, the configured concurrency of 8 never
//!   exceeded: the responder tracks requests in flight) and a warm one (every answer from the
//!   cache: the responder must see zero requests).
//!
//! A `harness = false` bench target: `cargo bench --bench revocation` (release build; cargo builds
//! the `certvigil` binary too and names it in `CARGO_BIN_EXE_certvigil`). Settings, all optional:
//!
//! | variable                        | meaning                                                   |
//! |---------------------------------|-----------------------------------------------------------|
//! | `CERTVIGIL_BENCH_CRL_ENTRIES`   | entries of the CRL (default 1000000)                      |
//! | `CERTVIGIL_BENCH_CRL_LOOKUPS`   | serials looked up, half of them listed (10000)            |
//! | `CERTVIGIL_BENCH_OCSP_CERTS`    | leaf certificates of the OCSP part (10000)                |
//! | `CERTVIGIL_BENCH_PARTS`         | `crl`, `ocsp` or `crl,ocsp` (both)                        |
//! | `CERTVIGIL_BENCH_PYTHON_API`    | `0` skips the slow Python row that uses cryptography's    |
//! |                                 | `get_revoked_certificate_by_serial_number` (on by default)|
//! | `CERTVIGIL_BENCH_RUNS`          | runs per tool; the median wall time is reported (1)       |
//! | `CERTVIGIL_BENCH_KEEP`          | `1` keeps the fixture directory and prints its path       |
//! | `CERTVIGIL_BENCH_SKIP_SETUP`    | `1` skips `benches/setup.sh`                              |
//! | `CERTVIGIL_BENCH_VENV`          | the venv setup.sh fills (`/opt/certvigil-bench-venv`)     |
//!
//! Every result is checked, so a tool that skipped work fails the benchmark instead of looking
//! fast: every CRL tool must verify the signature and (except `openssl crl`, which only verifies)
//! report the generator's entry count and listed serials and answer EVERY looked-up serial as
//! the generator wrote it: not listed, or revoked with its reason, revocation time and (for the
//! baselines, which write their answers to a file) invalidity date. `certvigil crl` prints each
//! answer only for up to 100 serials, so beyond that its answers come from unmeasured runs over
//! parts of the serials file; it prints no invalidity date, so certvigil's decoder is also asked,
//! in process, about every entry of the CRL. The baselines do certvigil's work: they decode every
//! entry whole (serial, revocation time, reasonCode, invalidityDate) before answering. Every OCSP
//! pass must answer each certificate exactly once with the status, reason and revocation time
//! of its index.txt line, the cold pass must reach and never exceed the configured concurrency,
//! the warm one make no request.
//! The targets (certvigil ≥ 5× faster than Go, peak RSS ≤ 1.5× the CRL) are printed as
//! met or MISSED, not enforced: they are meant for the default sizes, where fixed costs
//! (process start, the binary's own pages) no longer dominate.
//!
//! Under `cargo test --all-targets` (which runs a `harness = false` bench without the `--bench`
//! argument that `cargo bench` passes) it makes a smoke run instead: a CRL of 1,000 entries and
//! 100 lookups (every answer checked, every entry through the decoder), and 20 OCSP certificates
//! through scan, cold and warm check; no baselines, nothing installed, a few seconds, needing
//! only openssl.

#[path = "harness/mod.rs"]
mod harness;

use anyhow::{Context, Result, anyhow, bail, ensure};
use harness::{aia_ocsp, cores, go_build, mib, openssl, openssl_version, percent_decode, round, tail, timed};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The release binary under test, built by `cargo bench` alongside this harness.
const CERTVIGIL: &str = env!("CARGO_BIN_EXE_certvigil");
/// Targets of the issue: certvigil at least this many times faster than Go on the CRL…
const SPEEDUP_TARGET: f64 = 5.0;
/// …with a peak RSS of at most this multiple of the CRL file's size.
const RSS_PER_CRL_TARGET: f64 = 1.5;
/// `revocation.concurrency` of the OCSP part's configuration.
const OCSP_CONCURRENCY: u64 = 8;
/// Every tenth OCSP leaf (i % 10 == 3) is revoked in the responder's index…
const OCSP_REVOKED_EVERY: usize = 10;
/// …at 2025-06-01T00:00:00Z (`250601000000Z` in index.txt).
const OCSP_REVOKED_AT: i64 = 1_748_736_000;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench revocation: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Settings read from the environment.
struct Settings {
    crl_entries: usize,
    lookups: usize,
    ocsp_certs: usize,
    crl: bool,
    ocsp: bool,
    python_api: bool,
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
        let parts = std::env::var("CERTVIGIL_BENCH_PARTS").unwrap_or_else(|_| "crl,ocsp".into());
        let parts: Vec<&str> = parts.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
        if let Some(bad) = parts.iter().find(|p| !matches!(**p, "crl" | "ocsp")) {
            bail!("CERTVIGIL_BENCH_PARTS: unknown part `{bad}` (crl, ocsp)");
        }
        let s = Settings {
            crl_entries: number("CERTVIGIL_BENCH_CRL_ENTRIES", 1_000_000)?,
            lookups: number("CERTVIGIL_BENCH_CRL_LOOKUPS", 10_000)?,
            ocsp_certs: number("CERTVIGIL_BENCH_OCSP_CERTS", 10_000)?,
            crl: parts.contains(&"crl"),
            ocsp: parts.contains(&"ocsp"),
            python_api: !std::env::var("CERTVIGIL_BENCH_PYTHON_API").is_ok_and(|v| v == "0" || v == "false"),
            runs: number("CERTVIGIL_BENCH_RUNS", 1)?,
            keep: flag("CERTVIGIL_BENCH_KEEP"),
            skip_setup: flag("CERTVIGIL_BENCH_SKIP_SETUP"),
            venv: std::env::var_os("CERTVIGIL_BENCH_VENV").map_or_else(|| PathBuf::from("/opt/certvigil-bench-venv"), PathBuf::from),
        };
        ensure!(s.crl || s.ocsp, "CERTVIGIL_BENCH_PARTS names no part");
        ensure!(s.crl_entries >= 2, "CERTVIGIL_BENCH_CRL_ENTRIES must be at least 2");
        ensure!(s.lookups >= 2 && s.lookups / 2 <= s.crl_entries, "CERTVIGIL_BENCH_CRL_LOOKUPS must be 2 to twice the entries");
        ensure!(s.ocsp_certs >= 1, "CERTVIGIL_BENCH_OCSP_CERTS must be at least 1");
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
    let mut needed = vec![("/usr/bin/time", PathBuf::from("/usr/bin/time"))];
    if settings.crl {
        needed.extend([("python", python.clone()), ("go", go.clone())]);
    }
    for (tool, path) in &needed {
        ensure!(path.exists(), "{tool} not found at {}: run benches/setup.sh", path.display());
    }

    let tmp = tempfile::Builder::new().prefix("certvigil-bench-rev-").tempdir().context("creating the fixture directory")?;
    let work = tmp.path().to_path_buf();
    println!("certvigil revocation benchmark: {} run(s) per tool, {} cores, {}", settings.runs, cores(), openssl_version());

    let mut problems: Vec<String> = Vec::new();
    let mut report = json!({
        "benchmark": "revocation",
        "measured_at_unix": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "cores": cores(),
        "runs_per_tool": settings.runs,
        "openssl": openssl_version(),
    });

    if settings.crl {
        let part = crl_part(&settings, &work, &benches, &target_dir, &go, &python, &mut problems)?;
        report["crl"] = part;
    }
    if settings.ocsp {
        let part = ocsp_part(&settings, &work, &mut problems)?;
        report["ocsp"] = part;
    }
    report["checks_failed"] = json!(problems);

    let json_path = target_dir.join("bench-revocation.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)? + "\n")
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

/// The `cargo test` run: small fixtures, certvigil (and `openssl crl`) only, every answer checked.
fn smoke() -> Result<()> {
    const ENTRIES: usize = 1_000;
    const LOOKUPS: usize = 100; // ≤ 100: one `certvigil crl` run prints every answer
    const CERTS: usize = 20;
    let tmp = tempfile::Builder::new().prefix("certvigil-bench-rev-smoke-").tempdir().context("creating the fixture directory")?;
    let work = tmp.path();
    let mut problems = Vec::new();

    let crl = CrlFixture::generate(&work.join("crl"), ENTRIES, LOOKUPS)?;
    let row = run_certvigil_crl(&crl, false, &mut problems)?;
    problems.extend(row.mismatches(&crl));
    problems.extend(run_openssl_crl(&crl, false)?.mismatches(&crl));
    problems.extend(library_mismatches(&crl)?);

    let ocsp = OcspFixture::generate(&work.join("ocsp"), CERTS)?;
    let rows = run_ocsp_passes(&ocsp, 0, false)?;
    for r in &rows {
        problems.extend(r.mismatches(&ocsp, false));
    }
    ensure!(problems.is_empty(), "smoke run: {} check(s) failed:\n  {}", problems.len(), problems.join("\n  "));
    println!(
        "bench revocation smoke run: ok (CRL of {ENTRIES} entries, {LOOKUPS} lookups: every answer and every entry checked; \
         {CERTS} OCSP certificates, cold max {} in flight, warm 0 requests); \
         `cargo bench --bench revocation` measures",
        rows.iter().find(|r| r.phase == "check, cold").map_or(0, |r| r.max_in_flight)
    );
    Ok(())
}

// ───────────────────────────── measuring ─────────────────────────────

/// Runs `once` `runs` times and keeps the run with the median wall time.
fn median<T>(runs: usize, mut once: impl FnMut(usize) -> Result<T>, wall: impl Fn(&T) -> f64) -> Result<T> {
    let mut rows = (0..runs).map(&mut once).collect::<Result<Vec<_>>>()?;
    rows.sort_by(|a, b| wall(a).total_cmp(&wall(b)));
    let mid = rows.len() / 2;
    Ok(rows.swap_remove(mid))
}

/// Builds a Go baseline to `out` (its caches under target/bench-revocation/).
fn build_go(go: &Path, source: &Path, out: &Path, target_dir: &Path) -> Result<()> {
    let started = Instant::now();
    go_build(go, source, out, &target_dir.join("bench-revocation"))?;
    println!("built the Go baseline in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

// ───────────────────────────── CRL: fixture ─────────────────────────────

/// `openssl ca` configuration of the CRL part's CA (and of the OCSP part's index, which only
/// `openssl ocsp -index` reads).
const CA_CNF: &str = "\
[ ca ]
default_ca = benchca
[ benchca ]
dir = .
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
crlnumber = $dir/crlnumber
certificate = $dir/ca.crt
private_key = $dir/ca.key
default_md = sha256
default_crl_days = 7
policy = policy_any
unique_subject = no
[ policy_any ]
commonName = supplied
[ crl_ext ]
authorityKeyIdentifier = keyid
";

/// How entry `i` is revoked, in turn: what openssl's index.txt revocation field carries after
/// the time (`""`: nothing), and the reasonCode openssl then writes into the entry (`None`: no
/// reasonCode extension, which RFC 5280 §5.3.1 reads as unspecified). `keyTime` and `CAkeyTime`
/// make keyCompromise and cACompromise entries that also carry an invalidityDate (§5.3.2),
/// [`INVALIDITY_BEFORE_S`] before the revocation.
const CRL_REASONS: [(&str, Option<u8>); 10] = [
    ("", None),
    ("keyCompromise", Some(1)),
    ("superseded", Some(4)),
    ("cessationOfOperation", Some(5)),
    ("affiliationChanged", Some(3)),
    ("CACompromise", Some(2)),
    ("certificateHold", Some(6)),
    ("unspecified", Some(0)),
    ("keyTime", Some(1)),
    ("CAkeyTime", Some(2)),
];
/// How long before its revocation an entry with an invalidityDate became invalid.
const INVALIDITY_BEFORE_S: i64 = 3 * 86_400;

/// CRLReason names (RFC 5280 §5.3.1) as `certvigil crl` prints them, by code.
const REASON_NAMES: [(u8, &str); 10] = [
    (0, "unspecified"),
    (1, "keyCompromise"),
    (2, "cACompromise"),
    (3, "affiliationChanged"),
    (4, "superseded"),
    (5, "cessationOfOperation"),
    (6, "certificateHold"),
    (8, "removeFromCRL"),
    (9, "privilegeWithdrawn"),
    (10, "aACompromise"),
];

fn reason_name(code: u8) -> String {
    REASON_NAMES.iter().find(|(c, _)| *c == code).map_or_else(|| format!("reason {code}"), |(_, n)| n.to_string())
}

/// What the generator wrote for one listed serial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Revocation {
    /// The reasonCode extension, `None` when the entry has none.
    reason: Option<u8>,
    revoked_at: i64,
    invalidity: Option<i64>,
}

impl Revocation {
    fn describe(&self) -> String {
        let reason = self.reason.map_or_else(|| "unspecified: no reasonCode".into(), reason_name);
        let mut s = format!("revoked ({reason}) at {}", iso_time(self.revoked_at));
        if let Some(t) = self.invalidity {
            let _ = write!(s, ", invalid since {}", iso_time(t));
        }
        s
    }
}

/// One tool's answer for one looked-up serial.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    NotListed,
    /// `reason` is the effective code (no extension reads as unspecified, 0); `invalidity` is
    /// `None` when the tool does not report it (`certvigil crl` prints reason and time only).
    Revoked {
        reason: u8,
        revoked_at: i64,
        invalidity: Option<Option<i64>>,
    },
    /// A line the harness could not read, as printed.
    Garbled(String),
}

impl Answer {
    /// Whether this answer says what the generator wrote.
    fn matches(&self, want: Option<&Revocation>) -> bool {
        match (self, want) {
            (Answer::NotListed, None) => true,
            (Answer::Revoked { reason, revoked_at, invalidity }, Some(w)) => {
                *reason == w.reason.unwrap_or(0) && *revoked_at == w.revoked_at && invalidity.is_none_or(|i| i == w.invalidity)
            }
            _ => false,
        }
    }

    fn describe(&self) -> String {
        match self {
            Answer::NotListed => "not listed".into(),
            Answer::Revoked { reason, revoked_at, invalidity } => {
                let mut s = format!("revoked ({}) at {}", reason_name(*reason), iso_time(*revoked_at));
                match invalidity {
                    Some(Some(t)) => {
                        let _ = write!(s, ", invalid since {}", iso_time(*t));
                    }
                    Some(None) => s.push_str(", no invalidity date"),
                    None => {}
                }
                s
            }
            Answer::Garbled(line) => format!("unreadable answer {line:?}"),
        }
    }
}

// Civil time ↔ Unix seconds (proleptic Gregorian, UTC), written here rather than borrowed from
// the product so that the expected values do not share its code.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn unix_time(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s)
}

/// `YYYY-MM-DDTHH:MM:SSZ`, as `certvigil crl` prints times.
fn iso_time(t: i64) -> String {
    let (y, mo, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

fn parse_iso_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    Some(unix_time(i64::from(n(0..4)?), n(5..7)?, n(8..10)?, n(11..13)?, n(14..16)?, n(17..19)?))
}

/// The CRL, its CA and the serials to look up, with what a correct lookup finds.
struct CrlFixture {
    crl: PathBuf,
    ca: PathBuf,
    serials: PathBuf,
    entries: usize,
    bytes: u64,
    /// Every looked-up serial, as written to the serials file and in its order, with what the
    /// CRL says about it (`None`: not listed).
    lookups: Vec<(String, Option<Revocation>)>,
    listed: usize,
    /// Entries with a reasonCode extension, and with an invalidityDate.
    with_reason: usize,
    with_invalidity: usize,
    generation_s: f64,
}

/// A 16-byte serial (the size public CAs use), deterministic per (domain, i), positive and
/// without a leading zero octet, so that its hex is what `openssl ca` writes in index.txt.
fn crl_serial(domain: &str, i: usize) -> [u8; 16] {
    let digest = Sha256::digest(format!("certvigil-bench-crl-{domain}-{i}").as_bytes());
    let mut s = [0u8; 16];
    s.copy_from_slice(&digest[..16]);
    s[0] = (s[0] & 0x7f) | 0x01;
    s
}

/// Entry `i` of the CRL: its serial, its index.txt revocation field, and what it says. Revoked
/// during 2025 at a time that varies with the entry; the reason cycles through [`CRL_REASONS`].
fn crl_entry(i: usize) -> ([u8; 16], String, Revocation) {
    let (mo, d, h, mi, s) = (1 + i % 12, 1 + (i / 12) % 28, i % 24, (i / 7) % 60, (i / 3) % 60);
    let when = format!("25{mo:02}{d:02}{h:02}{mi:02}{s:02}Z");
    let revoked_at = unix_time(2025, mo as u32, d as u32, h as u32, mi as u32, s as u32);
    let (tail, reason) = CRL_REASONS[i % CRL_REASONS.len()];
    let (field, invalidity) = match tail {
        "" => (when, None),
        "keyTime" | "CAkeyTime" => {
            // openssl takes the invalidity time as a GeneralizedTime, YYYYMMDDHHMMSSZ.
            let t = revoked_at - INVALIDITY_BEFORE_S;
            let compact: String = iso_time(t).chars().filter(char::is_ascii_digit).collect();
            (format!("{when},{tail},{compact}Z"), Some(t))
        }
        reason => (format!("{when},{reason}"), None),
    };
    (crl_serial("listed", i), field, Revocation { reason, revoked_at, invalidity })
}

impl CrlFixture {
    /// Writes an index.txt of `entries` revoked certificates straight away (issuing them with
    /// `openssl ca` one by one would take hours), has `openssl ca -gencrl` sign the CRL, converts
    /// it to DER, and writes `lookups` serials: every other one listed (spread over the CRL and
    /// over every kind of entry), the rest not.
    fn generate(dir: &Path, entries: usize, lookups: usize) -> Result<CrlFixture> {
        let started = Instant::now();
        std::fs::create_dir_all(dir.join("newcerts")).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("ca.cnf"), CA_CNF)?;
        std::fs::write(dir.join("serial"), "1000\n")?;
        std::fs::write(dir.join("crlnumber"), "1000\n")?;
        std::fs::write(dir.join("index.txt.attr"), "unique_subject = no\n")?;
        // RSA-2048: what the CAs publishing the largest CRLs use.
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "3650",
                "-subj",
                "/O=certvigil bench/CN=certvigil bench CRL CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-addext",
                "subjectKeyIdentifier=hash",
            ],
        )?;

        // Listed serial k is entry k × stride plus an offset cycling with k, so that the listed
        // half covers every kind of entry (a plain multiple of the stride would hit one or two).
        let present = lookups / 2;
        let stride = entries / present;
        let offset = |k: usize| k % stride.min(CRL_REASONS.len());
        let mut listed: Vec<(String, Revocation)> = Vec::with_capacity(present);
        let (mut with_reason, mut with_invalidity) = (0, 0);
        let mut all: HashSet<[u8; 16]> = HashSet::with_capacity(entries);
        let mut index = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(dir.join("index.txt"))?);
        for i in 0..entries {
            let (serial, field, revocation) = crl_entry(i);
            ensure!(all.insert(serial), "duplicate generated serial at entry {i}");
            with_reason += usize::from(revocation.reason.is_some());
            with_invalidity += usize::from(revocation.invalidity.is_some());
            let hex = hex::encode_upper(serial);
            writeln!(index, "R\t360101000000Z\t{field}\t{hex}\tunknown\t/CN=revoked-{i}")?;
            let k = i / stride;
            if k < present && i == k * stride + offset(k) {
                listed.push((hex, revocation));
            }
        }
        index.flush()?;
        drop(index);
        ensure!(listed.len() == present, "picked {} listed serials, expected {present}", listed.len());

        let mut serials = String::with_capacity(lookups * 33);
        let mut expected = Vec::with_capacity(lookups);
        let mut listed = listed.into_iter();
        for k in 0..lookups {
            let next = if k.is_multiple_of(2) { listed.next() } else { None };
            let (hex, want) = match next {
                Some((hex, revocation)) => (hex, Some(revocation)),
                None => {
                    let absent = crl_serial("absent", k);
                    ensure!(!all.contains(&absent), "generated absent serial {k} is listed");
                    (hex::encode_upper(absent), None)
                }
            };
            serials.push_str(&hex);
            serials.push('\n');
            expected.push((hex, want));
        }
        std::fs::write(dir.join("serials.txt"), serials)?;

        openssl(dir, &["ca", "-config", "ca.cnf", "-gencrl", "-crlexts", "crl_ext", "-out", "crl.pem"])?;
        openssl(dir, &["crl", "-in", "crl.pem", "-outform", "DER", "-out", "crl.der"])?;
        std::fs::remove_file(dir.join("crl.pem"))?;
        let crl = dir.join("crl.der");
        let bytes = std::fs::metadata(&crl)?.len();
        Ok(CrlFixture {
            crl,
            ca: dir.join("ca.crt"),
            serials: dir.join("serials.txt"),
            entries,
            bytes,
            listed: present,
            lookups: expected,
            with_reason,
            with_invalidity,
            generation_s: started.elapsed().as_secs_f64(),
        })
    }
}

// ───────────────────────────── CRL: runs ─────────────────────────────

/// One measured run of one CRL tool, with what it reported.
struct CrlRow {
    tool: String,
    work: String,
    wall_s: f64,
    cpu_s: f64,
    peak_rss_kib: u64,
    verified: bool,
    /// Entries and listed serials, when the tool reports them (`openssl crl` only verifies).
    entries: Option<u64>,
    listed: Option<u64>,
    lookups: Option<u64>,
    /// Each looked-up serial's answer, in the serials file's order (none for `openssl crl`).
    answers: Vec<(String, Answer)>,
    /// Seconds per phase, as the baselines measure themselves.
    phases: Value,
}

impl CrlRow {
    fn who(&self) -> String {
        format!("{} ({})", self.tool, self.work)
    }

    fn rss_per_crl(&self, f: &CrlFixture) -> f64 {
        (self.peak_rss_kib * 1024) as f64 / f.bytes as f64
    }

    /// Every way this row disagrees with the generator: its counts, and (but for `openssl crl`,
    /// which only verifies) every looked-up serial's answer.
    fn mismatches(&self, f: &CrlFixture) -> Vec<String> {
        let who = self.who();
        let mut out = Vec::new();
        if !self.verified {
            out.push(format!("{who}: did not report the signature verified"));
        }
        if let Some(n) = self.entries.filter(|&n| n != f.entries as u64) {
            out.push(format!("{who}: {n} entries, expected {}", f.entries));
        }
        if let Some(n) = self.lookups.filter(|&n| n != f.lookups.len() as u64) {
            out.push(format!("{who}: {n} lookups, expected {}", f.lookups.len()));
        }
        if let Some(n) = self.listed.filter(|&n| n != f.listed as u64) {
            out.push(format!("{who}: {n} serials listed, expected {}", f.listed));
        }
        if self.tool != "openssl" {
            if self.entries.is_none() || self.listed.is_none() || self.lookups.is_none() {
                out.push(format!("{who}: did not report its entries, lookups and listed serials"));
            }
            out.extend(answer_mismatches(&who, &self.answers, f));
        }
        out
    }
}

/// Every looked-up serial must have exactly one answer, in order, saying what the generator
/// wrote: not listed, or revoked with its reason, revocation time and (when the tool reports
/// it) invalidity date. At most five disagreements are spelled out.
fn answer_mismatches(who: &str, answers: &[(String, Answer)], f: &CrlFixture) -> Vec<String> {
    let mut out = Vec::new();
    if answers.len() != f.lookups.len() {
        out.push(format!("{who}: {} answers for {} looked-up serials", answers.len(), f.lookups.len()));
    }
    let mut wrong = 0usize;
    for (k, ((serial, want), (got_serial, got))) in f.lookups.iter().zip(answers).enumerate() {
        let bad = if got_serial != serial {
            Some(format!("answer {k} is for {got_serial}, the serials file says {serial}"))
        } else if !got.matches(want.as_ref()) {
            Some(format!(
                "{serial}: {}, the generator wrote {}",
                got.describe(),
                want.map_or_else(|| "not listed".into(), |w| w.describe())
            ))
        } else {
            None
        };
        if let Some(msg) = bad {
            wrong += 1;
            if wrong <= 5 {
                out.push(format!("{who}: {msg}"));
            }
        }
    }
    if wrong > 5 {
        out.push(format!("{who}: {wrong} wrong answers in all"));
    }
    out
}

/// The per-serial lines `certvigil crl` prints when given at most [`CLI_VERBOSE_MAX`] serials:
/// `  SERIAL: revoked (REASON) at TIME` or `  SERIAL: not listed`.
fn parse_certvigil_answers(stdout: &str) -> Vec<(String, Answer)> {
    let mut out = Vec::new();
    for line in stdout.lines() {
        let Some((serial, rest)) = line.trim().split_once(": ") else { continue };
        let answer = if rest == "not listed" {
            Answer::NotListed
        } else if let Some(r) = rest.strip_prefix("revoked (") {
            let parsed = r.split_once(") at ").and_then(|(name, at)| {
                let code = REASON_NAMES.iter().find(|(_, n)| *n == name)?.0;
                Some(Answer::Revoked { reason: code, revoked_at: parse_iso_time(at)?, invalidity: None })
            });
            parsed.unwrap_or_else(|| Answer::Garbled(line.trim().to_string()))
        } else {
            continue;
        };
        out.push((serial.to_string(), answer));
    }
    out
}

/// `certvigil crl` prints each serial's answer only when given at most this many.
const CLI_VERBOSE_MAX: usize = 100;

/// Every looked-up serial's answer from `certvigil crl`. Up to [`CLI_VERBOSE_MAX`] serials the
/// measured run printed them; beyond, the serials file is split into files of that many and
/// each is run through the same command (unmeasured, on every core), each run verifying the
/// signature again.
fn certvigil_answers(f: &CrlFixture, measured_stdout: &str, problems: &mut Vec<String>) -> Result<Vec<(String, Answer)>> {
    if f.lookups.len() <= CLI_VERBOSE_MAX {
        return Ok(parse_certvigil_answers(measured_stdout));
    }
    let dir = f.serials.parent().context("the serials file has no directory")?.join("answers");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let chunks: Vec<&[(String, Option<Revocation>)]> = f.lookups.chunks(CLI_VERBOSE_MAX).collect();
    let threads = cores().min(chunks.len());
    type Part = (usize, Vec<(String, Answer)>, Option<String>);
    let results: Vec<Result<Vec<Part>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (chunks, dir) = (&chunks, &dir);
                scope.spawn(move || -> Result<Vec<Part>> {
                    let mut parts = Vec::new();
                    for c in (t..chunks.len()).step_by(threads) {
                        let file = dir.join(format!("serials-{c}.txt"));
                        let text: String = chunks[c].iter().map(|(s, _)| format!("{s}\n")).collect();
                        std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
                        let args: Vec<OsString> = vec![
                            "crl".into(),
                            f.crl.clone().into(),
                            "--issuer".into(),
                            f.ca.clone().into(),
                            "--serials-file".into(),
                            file.into(),
                        ];
                        let out = timed(Path::new(CERTVIGIL), &args, &[], "certvigil crl (answers)", false, None)?;
                        let unverified = (!out.stdout.lines().any(|l| l.trim_start().starts_with("verified:"))).then(|| {
                            format!("certvigil crl (answers, serials {}…): did not report the signature verified", c * CLI_VERBOSE_MAX)
                        });
                        parts.push((c, parse_certvigil_answers(&out.stdout), unverified));
                    }
                    Ok(parts)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("an answer thread panicked")))).collect()
    });
    let mut parts: Vec<Part> = Vec::with_capacity(chunks.len());
    for r in results {
        parts.extend(r?);
    }
    // Back in the serials file's order.
    parts.sort_by_key(|(c, _, _)| *c);
    let mut answers = Vec::with_capacity(f.lookups.len());
    for (_, part, unverified) in parts {
        problems.extend(unverified);
        answers.extend(part);
    }
    Ok(answers)
}

/// certvigil's CRL decoder (the library code `certvigil crl` and `check` run) asked about every
/// entry the generator wrote and every absent serial looked up, in process: revocation time,
/// reasonCode (an absent one and an explicit unspecified told apart) and invalidityDate, which
/// `certvigil crl` does not print. Not measured.
fn library_mismatches(f: &CrlFixture) -> Result<Vec<String>> {
    use certvigil::revocation::crl::{Crl, Reason};
    let who = "certvigil library (Crl::parse + lookup, every entry)";
    let bytes = std::fs::read(&f.crl).with_context(|| format!("reading {}", f.crl.display()))?;
    let crl = match Crl::parse(bytes, usize::MAX) {
        Ok(crl) => crl,
        Err(e) => return Ok(vec![format!("{who}: the CRL does not parse: {e}")]),
    };
    let mut out = Vec::new();
    if crl.len() != f.entries {
        out.push(format!("{who}: {} entries, expected {}", crl.len(), f.entries));
    }
    let mut wrong = 0usize;
    let mut note = |msg: String| {
        wrong += 1;
        if wrong <= 5 {
            out.push(format!("{who}: {msg}"));
        }
    };
    for i in 0..f.entries {
        let (serial, _, want) = crl_entry(i);
        let hex = hex::encode_upper(serial);
        match crl.lookup(&serial) {
            Ok(Some(e)) => {
                let reason = want.reason.map(|c| Reason::from_code(u64::from(c)));
                if e.revoked_at != want.revoked_at || e.reason != reason.flatten() || e.invalidity_date != want.invalidity {
                    note(format!(
                        "entry {i} ({hex}): revoked ({}) at {}, invalid since {}, the generator wrote {}",
                        e.reason.map_or("no reasonCode", |r| r.as_str()),
                        iso_time(e.revoked_at),
                        e.invalidity_date.map_or_else(|| "-".into(), iso_time),
                        want.describe()
                    ));
                }
            }
            Ok(None) => note(format!("entry {i} ({hex}) is not found")),
            Err(e) => note(format!("entry {i} ({hex}): {e}")),
        }
    }
    for (hex, want) in f.lookups.iter().filter(|(_, w)| w.is_none()) {
        let serial = hex::decode(hex).context("a generated serial is not hex")?;
        match crl.lookup(&serial) {
            Ok(None) => {}
            Ok(Some(_)) => note(format!("{hex} is found, the generator never listed it ({want:?})")),
            Err(e) => note(format!("{hex}: {e}")),
        }
    }
    if wrong > 5 {
        out.push(format!("{who}: {wrong} wrong answers in all"));
    }
    Ok(out)
}

/// `certvigil crl CRL --issuer CA --serials-file SERIALS`, whose output is
/// `FILE: N entries, …` / `  verified: signed by …` / (up to 100 serials, one line each) /
/// `  N of M serials listed`. Each serial's answer is then read from this run or, beyond 100
/// serials, from unmeasured runs over parts of the file (see [`certvigil_answers`]).
fn run_certvigil_crl(f: &CrlFixture, measure_rss: bool, problems: &mut Vec<String>) -> Result<CrlRow> {
    let args: Vec<OsString> =
        vec!["crl".into(), f.crl.clone().into(), "--issuer".into(), f.ca.clone().into(), "--serials-file".into(), f.serials.clone().into()];
    let t = timed(Path::new(CERTVIGIL), &args, &[], "certvigil crl", measure_rss, None)?;
    let first = t.stdout.lines().next().unwrap_or_default();
    let entries = first
        .split_once(": ")
        .and_then(|(_, rest)| rest.split_once(" entries"))
        .and_then(|(n, _)| n.trim().parse().ok())
        .with_context(|| format!("certvigil crl: no entry count in {first:?}"))?;
    let verified = t.stdout.lines().any(|l| l.trim_start().starts_with("verified:"));
    let (listed, lookups) = t
        .stdout
        .lines()
        .find_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 5 && w[1] == "of" && l.trim_end().ends_with("serials listed")).then(|| (w[0].parse().ok(), w[2].parse().ok()))
        })
        .with_context(|| format!("certvigil crl: no `N of M serials listed` line in:\n{}", tail(&t.stdout, 5)))?;
    let answers = certvigil_answers(f, &t.stdout, problems)?;
    Ok(CrlRow {
        tool: "certvigil".into(),
        work: "crl --issuer --serials-file".into(),
        wall_s: t.wall_s,
        cpu_s: t.cpu_s.unwrap_or(0.0),
        peak_rss_kib: t.peak_rss_kib.unwrap_or(0),
        verified,
        entries: Some(entries),
        listed,
        lookups,
        answers,
        phases: Value::Null,
    })
}

/// `openssl crl -in CRL -inform DER -noout -CAfile CA`: parse and verify only.
fn run_openssl_crl(f: &CrlFixture, measure_rss: bool) -> Result<CrlRow> {
    let args: Vec<OsString> = vec![
        "crl".into(),
        "-in".into(),
        f.crl.clone().into(),
        "-inform".into(),
        "DER".into(),
        "-noout".into(),
        "-CAfile".into(),
        f.ca.clone().into(),
    ];
    let t = timed(Path::new("openssl"), &args, &[], "openssl crl", measure_rss, None)?;
    let verified = t.stderr.contains("verify OK") || t.stdout.contains("verify OK");
    Ok(CrlRow {
        tool: "openssl".into(),
        work: "crl -noout -CAfile (verify only)".into(),
        wall_s: t.wall_s,
        cpu_s: t.cpu_s.unwrap_or(0.0),
        peak_rss_kib: t.peak_rss_kib.unwrap_or(0),
        verified,
        entries: None,
        listed: None,
        lookups: None,
        answers: Vec::new(),
        phases: Value::Null,
    })
}

/// The answers file a baseline writes: per looked-up serial, in order,
/// `SERIAL\tnot-listed` or `SERIAL\trevoked\tREASON_CODE\tREVOKED_UNIX\tINVALIDITY_UNIX|-`.
fn read_baseline_answers(path: &Path) -> Result<Vec<(String, Answer)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let answer = match f.as_slice() {
                [_, "not-listed"] => Some(Answer::NotListed),
                [_, "revoked", code, at, inv] => (|| {
                    let invalidity = if *inv == "-" { None } else { Some(inv.parse().ok()?) };
                    Some(Answer::Revoked { reason: code.parse().ok()?, revoked_at: at.parse().ok()?, invalidity: Some(invalidity) })
                })(),
                _ => None,
            };
            (f[0].to_string(), answer.unwrap_or_else(|| Answer::Garbled(line.to_string())))
        })
        .collect())
}

/// A baseline printing one JSON line (entries, verified, lookups, listed, phases_s); `args`
/// name `answers`, the file it writes each serial's answer to.
fn run_baseline(tool: &str, work: &str, program: &Path, args: &[OsString], answers: &Path) -> Result<CrlRow> {
    let what = format!("the {tool} baseline ({work})");
    let _ = std::fs::remove_file(answers);
    let t = timed(program, args, &[], &what, true, None)?;
    let v: Value = serde_json::from_str(t.stdout.trim()).with_context(|| format!("{what} printed {:?}, not its JSON line", t.stdout))?;
    Ok(CrlRow {
        tool: tool.into(),
        work: work.into(),
        wall_s: t.wall_s,
        cpu_s: t.cpu_s.unwrap_or(0.0),
        peak_rss_kib: t.peak_rss_kib.unwrap_or(0),
        verified: v["verified"].as_bool() == Some(true),
        entries: v["entries"].as_u64(),
        listed: v["listed"].as_u64(),
        lookups: v["lookups"].as_u64(),
        answers: read_baseline_answers(answers)?,
        phases: v["phases_s"].clone(),
    })
}

/// Runs a CRL tool `runs` times, checks every run against the generator (counts and every
/// answer), and keeps the run with the median wall time.
fn checked_median(
    runs: usize,
    f: &CrlFixture,
    problems: &mut Vec<String>,
    mut once: impl FnMut(&mut Vec<String>) -> Result<CrlRow>,
) -> Result<CrlRow> {
    let row = median(
        runs,
        |_| {
            let row = once(problems)?;
            problems.extend(row.mismatches(f));
            Ok(row)
        },
        |r: &CrlRow| r.wall_s,
    )?;
    println!("  {:<9} {:<40} {:>8.2} s", row.tool, row.work, row.wall_s);
    Ok(row)
}

fn crl_part(
    settings: &Settings,
    work: &Path,
    benches: &Path,
    target_dir: &Path,
    go: &Path,
    python: &Path,
    problems: &mut Vec<String>,
) -> Result<Value> {
    println!("\n── CRL: {} entries, {} lookups ──", settings.crl_entries, settings.lookups);
    let dir = work.join("crl");
    let f = CrlFixture::generate(&dir, settings.crl_entries, settings.lookups)?;
    println!(
        "fixture: {} entries ({} with a reasonCode, {} with an invalidityDate), {:.1} MiB DER, {} lookups ({} listed), made by openssl ca -gencrl in {:.1} s",
        f.entries,
        f.with_reason,
        f.with_invalidity,
        mib(f.bytes / 1024),
        f.lookups.len(),
        f.listed,
        f.generation_s
    );
    let go_bin = work.join("crl-go");
    build_go(go, &benches.join("baselines/crl.go"), &go_bin, target_dir)?;
    let py = benches.join("baselines/crl.py");
    let (crl, ca, serials): (OsString, OsString, OsString) = (f.crl.clone().into(), f.ca.clone().into(), f.serials.clone().into());

    let runs = settings.runs;
    let mut rows = Vec::new();
    rows.push(checked_median(runs, &f, problems, |p| run_certvigil_crl(&f, true, p))?);
    let answers = dir.join("answers-go.txt");
    let go_args: Vec<OsString> = vec![
        "-crl".into(),
        crl.clone(),
        "-ca".into(),
        ca.clone(),
        "-serials".into(),
        serials.clone(),
        "-answers".into(),
        answers.clone().into(),
    ];
    rows.push(checked_median(runs, &f, problems, |_| run_baseline("go", "ParseRevocationList + map", &go_bin, &go_args, &answers))?);
    let python_args = |lookup: &str, answers: &Path| -> Vec<OsString> {
        vec![
            py.clone().into(),
            "--lookup".into(),
            lookup.into(),
            "--answers".into(),
            answers.into(),
            crl.clone(),
            ca.clone(),
            serials.clone(),
        ]
    };
    if settings.python_api {
        println!("  (python with get_revoked_certificate_by_serial_number scans the CRL per lookup: minutes)");
        let answers = dir.join("answers-python-api.txt");
        let args = python_args("api", &answers);
        rows.push(checked_median(runs, &f, problems, |_| {
            run_baseline("python", "get_revoked_certificate_by_serial_number", python, &args, &answers)
        })?);
    }
    let answers = dir.join("answers-python-dict.txt");
    let args = python_args("dict", &answers);
    rows.push(checked_median(runs, &f, problems, |_| run_baseline("python", "dict of entries", python, &args, &answers))?);
    rows.push(checked_median(runs, &f, problems, |_| run_openssl_crl(&f, true))?);
    let started = Instant::now();
    problems.extend(library_mismatches(&f)?);
    let library_s = started.elapsed().as_secs_f64();

    // The table.
    println!();
    println!(
        "{:<10} {:<40} {:>8} {:>8} {:>13} {:>8} {:>8} {:>7} {:>8}",
        "tool", "work", "wall s", "cpu s", "peak RSS MiB", "RSS/CRL", "entries", "listed", "answers"
    );
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |n| n.to_string());
    for r in &rows {
        println!(
            "{:<10} {:<40} {:>8.2} {:>8.2} {:>13.1} {:>8.2} {:>8} {:>7} {:>8}",
            r.tool,
            r.work,
            r.wall_s,
            r.cpu_s,
            mib(r.peak_rss_kib),
            r.rss_per_crl(&f),
            opt(r.entries),
            opt(r.listed),
            if r.tool == "openssl" { "-".to_string() } else { r.answers.len().to_string() }
        );
    }
    println!(
        "work: every row but openssl decodes every entry whole (serial, revocationDate, reasonCode, invalidityDate) before\n\
         answering, and answers each looked-up serial (listed or not, reason, revocation time; invalidity date too for the\n\
         baselines); `answers` is how many of those were checked against the generator, all of them. openssl only parses\n\
         and verifies. certvigil crl prints no invalidity date: certvigil's decoder was asked about all {} entries\n\
         in process instead (reasonCode, revocation time, invalidityDate; {library_s:.1} s, not measured).",
        f.entries
    );
    if f.lookups.len() > CLI_VERBOSE_MAX {
        println!(
            "certvigil crl prints each answer only for up to {CLI_VERBOSE_MAX} serials: its answers were read from {} more runs over parts of\n\
             the serials file (not measured; the measured run's count was checked)",
            f.lookups.len().div_ceil(CLI_VERBOSE_MAX)
        );
    }
    println!();
    let cv = &rows[0];
    let mut ratios = serde_json::Map::new();
    for r in rows.iter().skip(1) {
        let name = format!("{} ({}) / certvigil, wall", r.tool, r.work);
        let v = r.wall_s / cv.wall_s;
        let verdict = if r.tool == "go" {
            format!("  (target ≥ {SPEEDUP_TARGET}: {})", if v >= SPEEDUP_TARGET { "met" } else { "MISSED" })
        } else {
            String::new()
        };
        println!("{name:<72} {v:>7.2}x{verdict}");
        ratios.insert(name, json!(round(v, 3)));
    }
    let rss_ratio = cv.rss_per_crl(&f);
    let rss_ok = rss_ratio <= RSS_PER_CRL_TARGET;
    println!(
        "{:<72} {rss_ratio:>7.2}   (target ≤ {RSS_PER_CRL_TARGET}: {})",
        "certvigil peak RSS / CRL file size",
        if rss_ok { "met" } else { "MISSED" }
    );
    for r in rows.iter().filter(|r| r.phases.is_object()) {
        let mut line = String::new();
        for k in ["parse", "verify", "index", "lookup"] {
            let _ = write!(line, "  {k} {:.2} s", r.phases[k].as_f64().unwrap_or(0.0));
        }
        println!("{} ({}) phases:{line}", r.tool, r.work);
    }

    let json_rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "tool": r.tool,
                "work": r.work,
                "wall_s": round(r.wall_s, 3),
                "cpu_s": round(r.cpu_s, 3),
                "peak_rss_mib": round(mib(r.peak_rss_kib), 1),
                "peak_rss_per_crl_size": round(r.rss_per_crl(&f), 3),
                "verified": r.verified,
                "entries": r.entries,
                "lookups": r.lookups,
                "listed": r.listed,
                "decodes_every_entry": r.tool != "openssl",
                "answers_checked": r.answers.len(),
                "phases_s": r.phases,
            })
        })
        .collect();
    Ok(json!({
        "fixture": {
            "entries": f.entries,
            "entries_with_reason_code": f.with_reason,
            "entries_with_invalidity_date": f.with_invalidity,
            "crl_bytes": f.bytes,
            "ca_key": "RSA-2048",
            "lookups": f.lookups.len(),
            "listed": f.listed,
            "generation_s": round(f.generation_s, 2),
        },
        "rows": json_rows,
        "library_check": { "entries": f.entries, "seconds": round(library_s, 2) },
        "ratios": ratios,
        "certvigil_peak_rss_per_crl_size": round(rss_ratio, 3),
        "targets": { "go_over_certvigil_wall_min": SPEEDUP_TARGET, "certvigil_rss_per_crl_size_max": RSS_PER_CRL_TARGET },
        "targets_met": {
            "speed": rows.iter().find(|r| r.tool == "go").map(|g| g.wall_s / cv.wall_s >= SPEEDUP_TARGET),
            "rss": rss_ok,
        },
    }))
}

// ───────────────────────────── OCSP: responder ─────────────────────────────

/// The responder's counters, read and reset between passes.
#[derive(Default)]
struct ResponderState {
    dir: PathBuf,
    requests: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    failures: AtomicU64,
    /// Microseconds spent in `openssl ocsp`, summed over requests.
    busy_us: AtomicU64,
    spool: AtomicU64,
    first_error: Mutex<Option<String>>,
}

/// An OCSP responder on 127.0.0.1 (an ephemeral port, loopback only: `openssl ocsp -port` would
/// bind every interface). Each request, GET (RFC 5019 §5) or POST, is answered by running
/// `openssl ocsp -index index.txt -CA ca.pem -rsigner ca.pem -rkey ca.key -reqin … -respout …`
/// in the fixture directory; a thread per connection, so the client's concurrency is what the
/// responder sees.
struct Responder {
    port: u16,
    state: Arc<ResponderState>,
}

/// What the responder saw during one pass.
struct Seen {
    requests: u64,
    max_in_flight: u64,
    failures: u64,
    busy_s: f64,
    first_error: Option<String>,
}

impl Responder {
    fn start(dir: &Path) -> Result<Responder> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the OCSP responder to 127.0.0.1")?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(ResponderState { dir: dir.to_path_buf(), ..ResponderState::default() });
        let st = Arc::clone(&state);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = Arc::clone(&st);
                std::thread::spawn(move || {
                    let _ = serve(conn, &st);
                });
            }
        });
        Ok(Responder { port, state })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/ocsp", self.port)
    }

    /// The counters since the last call, which resets them.
    fn take(&self) -> Seen {
        let s = &self.state;
        Seen {
            requests: s.requests.swap(0, Ordering::SeqCst),
            max_in_flight: s.max_in_flight.swap(0, Ordering::SeqCst),
            failures: s.failures.swap(0, Ordering::SeqCst),
            busy_s: s.busy_us.swap(0, Ordering::SeqCst) as f64 / 1e6,
            first_error: s.first_error.lock().unwrap_or_else(|p| p.into_inner()).take(),
        }
    }
}

fn respond(conn: &mut TcpStream, status: &str, content_type: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    conn.write_all(head.as_bytes())?;
    conn.write_all(body)?;
    conn.flush()
}

fn serve(mut conn: TcpStream, st: &ResponderState) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.trim().eq_ignore_ascii_case("content-length")
        {
            content_length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let mut body = vec![0; content_length.min(1 << 20)];
    reader.read_exact(&mut body)?;
    let Some(rest) = path.strip_prefix("/ocsp") else {
        return respond(&mut conn, "404 Not Found", "text/plain", b"not found");
    };
    let request = match method {
        "POST" => body,
        "GET" => {
            use base64ct::Encoding;
            match base64ct::Base64::decode_vec(&percent_decode(rest.trim_start_matches('/'))) {
                Ok(der) => der,
                Err(_) => return respond(&mut conn, "400 Bad Request", "text/plain", b"bad base64"),
            }
        }
        _ => return respond(&mut conn, "405 Method Not Allowed", "text/plain", b""),
    };

    // In flight from a complete request to its answer being ready: strictly inside the
    // client's own request, so the maximum can never exceed what the client allowed.
    let n = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    st.max_in_flight.fetch_max(n, Ordering::SeqCst);
    st.requests.fetch_add(1, Ordering::SeqCst);
    let started = Instant::now();
    let answer = run_openssl_ocsp(st, &request);
    st.busy_us.fetch_add(started.elapsed().as_micros() as u64, Ordering::SeqCst);
    st.in_flight.fetch_sub(1, Ordering::SeqCst);
    match answer {
        Ok(der) => respond(&mut conn, "200 OK", "application/ocsp-response", &der),
        Err(e) => {
            st.failures.fetch_add(1, Ordering::SeqCst);
            st.first_error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
            respond(&mut conn, "500 Internal Server Error", "text/plain", b"responder failed")
        }
    }
}

/// One answer from the real responder.
fn run_openssl_ocsp(st: &ResponderState, request: &[u8]) -> Result<Vec<u8>, String> {
    let n = st.spool.fetch_add(1, Ordering::SeqCst);
    harness::run_openssl_ocsp(&st.dir, &st.dir.join("spool"), n, request)
}

// ───────────────────────────── OCSP: fixture ─────────────────────────────

/// Serial of OCSP leaf `i`: 0x01 then `i` as four bytes, so its hex is `01` + 8 digits, what
/// openssl writes in index.txt and looks requests up by.
fn ocsp_serial(i: usize) -> [u8; 5] {
    let mut s = [0x01, 0, 0, 0, 0];
    s[1..].copy_from_slice(&(i as u32).to_be_bytes());
    s
}

/// The revocation reason of leaf `i` in the responder's index, when it is revoked.
fn ocsp_revocation(i: usize) -> Option<&'static str> {
    (i % OCSP_REVOKED_EVERY == 3).then_some(if (i / OCSP_REVOKED_EVERY).is_multiple_of(2) { "keyCompromise" } else { "superseded" })
}

/// The OCSP part's certificates, store configuration and responder.
struct OcspFixture {
    dir: PathBuf,
    certs_dir: PathBuf,
    certs: usize,
    /// Serial (hex, as certvigil reports it) → reason, for the revoked leaves.
    revoked: HashMap<String, &'static str>,
    responder: Responder,
    generation_s: f64,
}

impl OcspFixture {
    /// Starts the responder (its URL goes into every leaf), makes an ECDSA P-256 CA with rcgen,
    /// signs `certs` leaves with it on every core, writes them and the CA into `certs/`, and writes
    /// the responder's index.txt: a `V` line per leaf, an `R` line for every tenth.
    fn generate(dir: &Path, certs: usize) -> Result<OcspFixture> {
        let started = Instant::now();
        let certs_dir = dir.join("certs");
        for d in [&certs_dir, &dir.join("spool")] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let responder = Responder::start(dir)?;
        let url = responder.url();

        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("generating the CA key")?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
        ca.distinguished_name.push(DnType::OrganizationName, "certvigil bench");
        ca.distinguished_name.push(DnType::CommonName, "certvigil bench OCSP CA");
        ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        ca.not_before = rcgen::date_time_ymd(2024, 1, 1);
        ca.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let ca_cert = ca.self_signed(&ca_key).context("self-signing the CA")?;
        // For openssl ocsp (which signs its answers with the CA key), and for the scan: the
        // store must hold the issuer.
        std::fs::write(dir.join("ca.pem"), ca_cert.pem())?;
        std::fs::write(dir.join("ca.key"), ca_key.serialize_pem())?;
        std::fs::write(certs_dir.join("ca.pem"), ca_cert.pem())?;
        let issuer = Issuer::new(ca, ca_key);

        let mut index = String::with_capacity(certs * 48);
        let mut revoked = HashMap::new();
        for i in 0..certs {
            let serial = hex::encode_upper(ocsp_serial(i));
            match ocsp_revocation(i) {
                Some(reason) => {
                    let _ = writeln!(index, "R\t360101000000Z\t250601000000Z,{reason}\t{serial}\tunknown\t/CN=leaf-{i}");
                    revoked.insert(serial, reason);
                }
                None => {
                    let _ = writeln!(index, "V\t360101000000Z\t\t{serial}\tunknown\t/CN=leaf-{i}");
                }
            }
        }
        std::fs::write(dir.join("index.txt"), index)?;
        std::fs::write(dir.join("index.txt.attr"), "unique_subject = no\n")?;

        // Subject keys from a small pool: what is measured is the OCSP traffic, not key variety.
        let keys = (0..8)
            .map(|_| KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("generating a subject key"))
            .collect::<Result<Vec<_>>>()?;
        let threads = cores();
        let results: Vec<Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (keys, issuer, url, certs_dir) = (&keys, &issuer, &url, &certs_dir);
                    scope.spawn(move || -> Result<()> {
                        for i in (t..certs).step_by(threads) {
                            let name = format!("leaf-{i:05}.ocsp.bench.certvigil.test");
                            let mut p = CertificateParams::new(vec![name.clone()]).with_context(|| format!("parameters for {name}"))?;
                            p.distinguished_name.push(DnType::CommonName, name.clone());
                            p.serial_number = Some(SerialNumber::from_slice(&ocsp_serial(i)));
                            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                            p.use_authority_key_identifier_extension = true;
                            p.custom_extensions.push(aia_ocsp(url));
                            p.not_before = rcgen::date_time_ymd(2025, 1, 1);
                            p.not_after = rcgen::date_time_ymd(2036, 1, 1);
                            let cert = p.signed_by(&keys[i % keys.len()], issuer).with_context(|| format!("signing {name}"))?;
                            let path = certs_dir.join(format!("leaf-{i:05}.pem"));
                            std::fs::write(&path, cert.pem()).with_context(|| format!("writing {}", path.display()))?;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("a generator thread panicked")))).collect()
        });
        for r in results {
            r?;
        }
        Ok(OcspFixture { dir: dir.to_path_buf(), certs_dir, certs, revoked, responder, generation_s: started.elapsed().as_secs_f64() })
    }

    /// The configuration the issue names: a files source over the certificates and the CA,
    /// OCSP only, 8 requests in flight (all to the one responder host), no pacing.
    fn write_config(&self, run: usize) -> Result<(PathBuf, PathBuf)> {
        let store = self.dir.join(format!("store-{run}.db"));
        let yaml = format!(
            "store:\n  path: {}\nsources:\n  - name: bench\n    kind: files\n    paths: [{}]\n\
             revocation: {{prefer: ocsp, fallback: false, concurrency: {OCSP_CONCURRENCY}, per_host_concurrency: {OCSP_CONCURRENCY}, per_host_interval: 0ms}}\n",
            serde_json::to_string(&store.to_string_lossy())?,
            serde_json::to_string(&self.certs_dir.to_string_lossy())?,
        );
        let cfg = self.dir.join(format!("certvigil-{run}.yaml"));
        std::fs::write(&cfg, yaml).with_context(|| format!("writing {}", cfg.display()))?;
        Ok((cfg, store))
    }
}

// ───────────────────────────── OCSP: runs ─────────────────────────────

/// One certvigil command of the OCSP part, with what certvigil and the responder reported.
#[derive(Default)]
struct OcspRow {
    phase: String,
    wall_s: f64,
    cpu_s: f64,
    peak_rss_kib: u64,
    /// scan: certificates new to the store, and errors.
    certs_new: u64,
    scan_errors: u64,
    /// check: statuses by state, answers from the cache, and every disagreement with the index.
    states: HashMap<String, u64>,
    cached: u64,
    wrong: Vec<String>,
    /// The responder's side.
    requests: u64,
    max_in_flight: u64,
    failures: u64,
    responder_busy_s: f64,
    responder_error: Option<String>,
}

impl OcspRow {
    fn state(&self, s: &str) -> u64 {
        self.states.get(s).copied().unwrap_or(0)
    }

    /// Every way this pass disagrees with the fixture. `full`: the measured run, where the cold
    /// pass must also reach the configured concurrency (a smoke run of 20 may not).
    fn mismatches(&self, f: &OcspFixture, full: bool) -> Vec<String> {
        let who = format!("certvigil {}", self.phase);
        let n = f.certs as u64;
        let mut out = Vec::new();
        if self.failures > 0 {
            out.push(format!("{who}: the responder failed {} time(s): {}", self.failures, self.responder_error.as_deref().unwrap_or("")));
        }
        if self.phase == "scan" {
            if self.certs_new != n + 1 {
                out.push(format!("{who}: {} new certificates, expected {} (leaves and the CA)", self.certs_new, n + 1));
            }
            if self.scan_errors != 0 {
                out.push(format!("{who}: {} errors", self.scan_errors));
            }
            if self.requests != 0 {
                out.push(format!("{who}: {} OCSP requests", self.requests));
            }
            return out;
        }
        let revoked = f.revoked.len() as u64;
        let want = [("good", n - revoked), ("revoked", revoked), ("not-applicable", 1), ("unknown", 0)];
        for (state, count) in want {
            if self.state(state) != count {
                out.push(format!("{who}: {} {state}, expected {count}", self.state(state)));
            }
        }
        out.extend(self.wrong.iter().take(5).map(|w| format!("{who}: {w}")));
        if self.wrong.len() > 5 {
            out.push(format!("{who}: {} wrong answers in all", self.wrong.len()));
        }
        let cold = self.phase.ends_with("cold");
        if cold {
            if self.requests != n {
                out.push(format!("{who}: the responder saw {} requests, expected one per certificate ({n})", self.requests));
            }
            if self.max_in_flight > OCSP_CONCURRENCY {
                out.push(format!("{who}: {} requests in flight at once, configured concurrency {OCSP_CONCURRENCY}", self.max_in_flight));
            }
            if full && n >= OCSP_CONCURRENCY && self.max_in_flight < OCSP_CONCURRENCY {
                out.push(format!("{who}: at most {} requests in flight, never the configured {OCSP_CONCURRENCY}", self.max_in_flight));
            }
        } else {
            if self.requests != 0 {
                out.push(format!("{who}: the responder saw {} requests; every answer should come from the cache", self.requests));
            }
            if self.cached != n {
                out.push(format!("{who}: {} answers from the cache, expected {n}", self.cached));
            }
        }
        out
    }
}

/// Runs scan, cold check and warm check against a fresh store; the responder's counters are
/// taken around each.
fn run_ocsp_passes(f: &OcspFixture, run: usize, measure_rss: bool) -> Result<Vec<OcspRow>> {
    let (cfg, _store) = f.write_config(run)?;
    let _ = f.responder.take();
    let mut rows = Vec::new();

    let args: Vec<OsString> =
        vec!["-c".into(), cfg.clone().into(), "scan".into(), "--output".into(), "json".into(), "--no-progress".into()];
    let t = timed(Path::new(CERTVIGIL), &args, &[], "certvigil scan", measure_rss, None)?;
    let summary: Value =
        serde_json::from_str(&t.stdout).with_context(|| format!("certvigil scan: its JSON did not parse: {:?}", tail(&t.stdout, 5)))?;
    let mut row = OcspRow {
        phase: "scan".into(),
        wall_s: t.wall_s,
        cpu_s: t.cpu_s.unwrap_or(0.0),
        peak_rss_kib: t.peak_rss_kib.unwrap_or(0),
        certs_new: summary["run"]["certs_new"].as_u64().unwrap_or(0),
        scan_errors: summary["run"]["errors"].as_u64().unwrap_or(u64::MAX),
        ..OcspRow::default()
    };
    fill_responder(&mut row, f.responder.take());
    rows.push(row);

    for phase in ["check, cold", "check, warm"] {
        let args: Vec<OsString> = vec!["-c".into(), cfg.clone().into(), "check".into(), "-o".into(), "json".into()];
        let t = timed(Path::new(CERTVIGIL), &args, &[], &format!("certvigil {phase}"), measure_rss, None)?;
        let results: Value = serde_json::from_str(&t.stdout)
            .with_context(|| format!("certvigil {phase}: its JSON did not parse: {:?}", tail(&t.stdout, 5)))?;
        let results = results.as_array().with_context(|| format!("certvigil {phase}: expected a JSON array"))?;
        let mut row = OcspRow {
            phase: phase.into(),
            wall_s: t.wall_s,
            cpu_s: t.cpu_s.unwrap_or(0.0),
            peak_rss_kib: t.peak_rss_kib.unwrap_or(0),
            ..OcspRow::default()
        };
        let mut answered: HashMap<String, u32> = HashMap::with_capacity(f.certs);
        for r in results {
            let serial = r["serial"].as_str().unwrap_or_default();
            let rev = &r["revocation"];
            let state = rev["state"].as_str().unwrap_or("?");
            *row.states.entry(state.to_string()).or_default() += 1;
            if rev["detail"].as_str().is_some_and(|d| d.starts_with("cached answer")) {
                row.cached += 1;
            }
            if state == "not-applicable" {
                continue;
            }
            *answered.entry(serial.to_string()).or_default() += 1;
            let reason = rev["reason"].as_str();
            let at = rev["revoked_at"].as_i64();
            match (state, f.revoked.get(serial)) {
                ("good", None) => {}
                ("revoked", Some(&want)) if reason == Some(want) && at == Some(OCSP_REVOKED_AT) => {}
                ("revoked", Some(&want)) if reason == Some(want) => {
                    row.wrong.push(format!("{serial} revoked at {at:?}, index.txt says {OCSP_REVOKED_AT} (2025-06-01T00:00:00Z)"))
                }
                ("revoked", Some(&want)) => row.wrong.push(format!("{serial} revoked ({reason:?}), index.txt says {want}")),
                (s, want) => row.wrong.push(format!(
                    "{serial}: {s} ({}), index.txt says {}",
                    reason.unwrap_or(""),
                    want.map_or("good".to_string(), |w| format!("revoked ({w})"))
                )),
            }
            if rev["method"].as_str() != Some("ocsp") && state != "unknown" {
                row.wrong.push(format!("{serial}: answered by {:?}, not OCSP", rev["method"]));
            }
        }
        // Every leaf answered exactly once (the counts alone would let one stand for another).
        for i in 0..f.certs {
            let serial = hex::encode_upper(ocsp_serial(i));
            match answered.remove(&serial) {
                Some(1) => {}
                Some(n) => row.wrong.push(format!("{serial} answered {n} times")),
                None => row.wrong.push(format!("{serial} (leaf {i}) has no answer")),
            }
        }
        row.wrong.extend(answered.keys().map(|s| format!("{s}: an answer for a serial the fixture never issued")));
        fill_responder(&mut row, f.responder.take());
        rows.push(row);
    }
    Ok(rows)
}

fn fill_responder(row: &mut OcspRow, seen: Seen) {
    row.requests = seen.requests;
    row.max_in_flight = seen.max_in_flight;
    row.failures = seen.failures;
    row.responder_busy_s = seen.busy_s;
    row.responder_error = seen.first_error;
}

fn ocsp_part(settings: &Settings, work: &Path, problems: &mut Vec<String>) -> Result<Value> {
    println!("\n── OCSP: {} certificates, concurrency {OCSP_CONCURRENCY} ──", settings.ocsp_certs);
    let f = OcspFixture::generate(&work.join("ocsp"), settings.ocsp_certs)?;
    println!(
        "fixture: {} leaves ({} revoked) + the CA, signed with rcgen in {:.1} s; responder {} (openssl ocsp per request)",
        f.certs,
        f.revoked.len(),
        f.generation_s,
        f.responder.url()
    );
    // Each run is scan + cold + warm on a fresh store; per phase, the run with the median wall
    // time is reported.
    let mut runs: Vec<Vec<OcspRow>> = Vec::new();
    for r in 0..settings.runs {
        let rows = run_ocsp_passes(&f, r, true)?;
        for row in &rows {
            println!("  {:<9} {:<40} {:>8.2} s", "certvigil", row.phase, row.wall_s);
            problems.extend(row.mismatches(&f, true));
        }
        runs.push(rows);
    }
    let mut rows: Vec<OcspRow> = Vec::new();
    for phase in 0..3 {
        let mut of_phase: Vec<OcspRow> = runs.iter_mut().map(|r| std::mem::take(&mut r[phase])).collect();
        of_phase.sort_by(|a, b| a.wall_s.total_cmp(&b.wall_s));
        let mid = of_phase.len() / 2;
        rows.push(of_phase.swap_remove(mid));
    }

    println!();
    println!(
        "{:<14} {:>8} {:>8} {:>13} {:>9} {:>10} {:>7} {:>8} {:>8} {:>7}",
        "certvigil", "wall s", "cpu s", "peak RSS MiB", "requests", "max in fl.", "good", "revoked", "unknown", "cached"
    );
    for r in &rows {
        let (good, revoked, unknown) = if r.phase == "scan" {
            ("-".to_string(), "-".to_string(), "-".to_string())
        } else {
            (r.state("good").to_string(), r.state("revoked").to_string(), r.state("unknown").to_string())
        };
        println!(
            "{:<14} {:>8.2} {:>8.2} {:>13.1} {:>9} {:>10} {:>7} {:>8} {:>8} {:>7}",
            r.phase,
            r.wall_s,
            r.cpu_s,
            mib(r.peak_rss_kib),
            r.requests,
            r.max_in_flight,
            good,
            revoked,
            unknown,
            if r.phase == "scan" { "-".to_string() } else { r.cached.to_string() }
        );
    }
    println!();
    let cold = &rows[1];
    let warm = &rows[2];
    let per_request_ms = if cold.requests > 0 { cold.responder_busy_s * 1e3 / cold.requests as f64 } else { 0.0 };
    println!(
        "cold: {:.0} certificates/s; the responder spent {:.1} s in {} openssl ocsp runs ({per_request_ms:.1} ms each), max {} in flight (configured {OCSP_CONCURRENCY})",
        f.certs as f64 / cold.wall_s,
        cold.responder_busy_s,
        cold.requests,
        cold.max_in_flight
    );
    println!(
        "warm: {} requests, {} of {} answers from the cache, {:.2}x the cold wall time",
        warm.requests,
        warm.cached,
        f.certs,
        warm.wall_s / cold.wall_s
    );

    let json_rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "phase": r.phase,
                "wall_s": round(r.wall_s, 3),
                "cpu_s": round(r.cpu_s, 3),
                "peak_rss_mib": round(mib(r.peak_rss_kib), 1),
                "certs_new": (r.phase == "scan").then_some(r.certs_new),
                "states": r.states,
                "cached": r.cached,
                "responder": {
                    "requests": r.requests,
                    "max_in_flight": r.max_in_flight,
                    "failures": r.failures,
                    "busy_s": round(r.responder_busy_s, 3),
                },
            })
        })
        .collect();
    Ok(json!({
        "fixture": {
            "certs": f.certs,
            "revoked": f.revoked.len(),
            "ca_key": "ECDSA P-256",
            "concurrency": OCSP_CONCURRENCY,
            "per_host_concurrency": OCSP_CONCURRENCY,
            "per_host_interval": "0ms",
            "responder": "openssl ocsp -index per request, 127.0.0.1",
            "generation_s": round(f.generation_s, 2),
        },
        "rows": json_rows,
        "cold_certs_per_s": round(f.certs as f64 / cold.wall_s, 1),
        "responder_ms_per_request": round(per_request_ms, 2),
        "warm_over_cold_wall": round(warm.wall_s / cold.wall_s, 3),
    }))
}
