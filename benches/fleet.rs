//! Benchmark "the core loop at fleet scale, in one run": generates a fleet of certificate files
//! (two issuing CAs under a root, fullchains, expired, expiring and revoked leaves, every leaf
//! naming a loopback CRL distribution point and OCSP responder served by this harness), then
//! measures, side by side, each as a child process under `/usr/bin/time`:
//!
//! 1. `certvigil scan`, cold and warm, against the Go and Python parse-only baselines of
//!    benches/scan.rs;
//! 2. `certvigil check` over the whole inventory: (a) with CRLs (`prefer: auto`, the default),
//!    counting the CRL server's requests; (b) OCSP only, against the real `openssl ocsp` behind a
//!    loopback wrapper, on a subset, against a plain client posting the same requests with the
//!    same concurrency; (c) every responder host refusing connections; (d) every responder host
//!    accepting connections and never answering;
//! 3. `certvigil plan` and `certvigil evaluate` over the full store;
//! 4. the daemon (`certvigil run`): a scan, a revocation and an evaluate job triggered through
//!    the API, peak RSS sampled from /proc after each, and one `/metrics` scrape.
//!
//! Every figure is printed next to its target, and everything is checked against the
//! generator (certificates found, every status and reason, request counts), so a tool that
//! skipped work fails the benchmark instead of looking fast. Results also go to
//! `target/bench-fleet.json`.
//!
//! A `harness = false` bench target: `cargo bench --bench fleet` (release; cargo builds the
//! `certvigil` binary too and names it in `CARGO_BIN_EXE_certvigil`). Settings, all optional:
//!
//! | variable                           | meaning                                                 |
//! |------------------------------------|---------------------------------------------------------|
//! | `CERTVIGIL_BENCH_N`                | leaf files (default 100000)                             |
//! | `CERTVIGIL_BENCH_OCSP_N`           | leaves of the OCSP row's subset (default 8000)          |
//! | `CERTVIGIL_BENCH_OCSP_CONCURRENCY` | requests in flight to the responder (default 8)         |
//! | `CERTVIGIL_BENCH_PARTS`            | rows to run: scan,crl,ocsp,evaluate,hang,daemon,refused |
//! | `CERTVIGIL_BENCH_KEEP`             | `1` keeps the fixture directory and prints its path     |
//! | `CERTVIGIL_BENCH_SKIP_SETUP`       | `1` skips `benches/setup.sh`                            |
//! | `CERTVIGIL_BENCH_VENV`             | the venv setup.sh fills (`/opt/certvigil-bench-venv`)   |
//!
//! Under `cargo test --all-targets` (which runs a `harness = false` bench without the `--bench`
//! argument that `cargo bench` passes) it makes a smoke run instead: 200 leaves, scan (cold and
//! warm), check with CRLs, plan and evaluate, and the refused host, every count checked, nothing
//! measured, no baselines, nothing installed; it needs only openssl.

#[path = "fleet/fixture.rs"]
mod fixture;
#[path = "harness/mod.rs"]
mod harness;
#[path = "fleet/net.rs"]
mod net;

use anyhow::{Context, Result, bail, ensure};
use fixture::{Ca, Fleet, Tally};
use harness::{Timed, cores, go_build, mib, openssl, openssl_version, round, tail, timed};
use net::{ClientRequest, Mode, Seen, Server};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The release binary under test, built by `cargo bench` alongside this harness.
const CERTVIGIL: &str = env!("CARGO_BIN_EXE_certvigil");

/// Targets. Scan: those of the scan benchmark (benches/README.md).
const SCAN_VS_GO: f64 = 1.0 / 3.0;
const SCAN_VS_PYTHON: f64 = 0.5;
const WARM_VS_COLD: f64 = 0.1;
const SCAN_RSS_MIB: f64 = 64.0;
/// OCSP: certvigil's throughput over the plain client's.
const OCSP_RATIO: f64 = 0.8;
/// A pass against a dead host (refused or hung).
const DEAD_HOST_S: f64 = 60.0;
/// `evaluate` and `plan`.
const EVALUATE_S: f64 = 5.0;
const EVALUATE_MB: f64 = 100.0;
/// The daemon's peak RSS during each job.
const DAEMON_MB: f64 = 100.0;
/// No child may run longer than this (a hung pass fails the benchmark instead of hanging it).
const CHILD_DEADLINE: Duration = Duration::from_secs(900);
/// Every part, in the order they run.
const PARTS: [&str; 7] = ["scan", "crl", "evaluate", "ocsp", "hang", "daemon", "refused"];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench fleet: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Settings read from the environment (or the smoke run's).
struct Settings {
    smoke: bool,
    leaves: usize,
    ocsp_leaves: usize,
    concurrency: usize,
    parts: Vec<&'static str>,
    keep: bool,
    skip_setup: bool,
    venv: PathBuf,
}

impl Settings {
    fn from_env(smoke: bool) -> Result<Settings> {
        let number = |name: &str, default: usize| -> Result<usize> {
            match std::env::var(name) {
                Ok(v) if !smoke => v.trim().replace('_', "").parse().with_context(|| format!("{name}={v:?} is not a whole number")),
                _ => Ok(default),
            }
        };
        let flag = |name: &str| std::env::var(name).is_ok_and(|v| v == "1" || v == "true");
        let parts: Vec<&'static str> = if smoke {
            vec!["scan", "crl", "evaluate", "refused"]
        } else {
            let wanted = std::env::var("CERTVIGIL_BENCH_PARTS").unwrap_or_else(|_| PARTS.join(","));
            let wanted: Vec<&str> = wanted.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
            if let Some(bad) = wanted.iter().find(|p| !PARTS.contains(p)) {
                bail!("CERTVIGIL_BENCH_PARTS: unknown part `{bad}` ({})", PARTS.join(", "));
            }
            PARTS.into_iter().filter(|p| wanted.contains(p)).collect()
        };
        let s = Settings {
            smoke,
            leaves: number("CERTVIGIL_BENCH_N", if smoke { 200 } else { 100_000 })?,
            ocsp_leaves: number("CERTVIGIL_BENCH_OCSP_N", 8_000)?,
            concurrency: number("CERTVIGIL_BENCH_OCSP_CONCURRENCY", 8)?,
            parts,
            keep: flag("CERTVIGIL_BENCH_KEEP"),
            skip_setup: smoke || flag("CERTVIGIL_BENCH_SKIP_SETUP"),
            venv: std::env::var_os("CERTVIGIL_BENCH_VENV").map_or_else(|| PathBuf::from("/opt/certvigil-bench-venv"), PathBuf::from),
        };
        ensure!(s.leaves >= 40, "CERTVIGIL_BENCH_N must be at least 40 (every pattern of the fleet repeats every 20 leaves)");
        ensure!(s.ocsp_leaves >= 1, "CERTVIGIL_BENCH_OCSP_N must be at least 1");
        ensure!((1..=256).contains(&s.concurrency), "CERTVIGIL_BENCH_OCSP_CONCURRENCY must be 1 to 256");
        ensure!(!s.parts.is_empty(), "CERTVIGIL_BENCH_PARTS names no part");
        Ok(s)
    }
}

fn run() -> Result<()> {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let settings = Settings::from_env(smoke)?;
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
    if !smoke {
        ensure!(Path::new("/usr/bin/time").exists(), "/usr/bin/time not found: run benches/setup.sh");
    }

    let tmp = tempfile::Builder::new().prefix("certvigil-bench-fleet-").tempdir().context("creating the fixture directory")?;
    let work = tmp.path().to_path_buf();
    let started = Instant::now();
    let mut bench = Bench::new(&settings, &work, &benches, &target_dir)?;
    if !smoke {
        println!(
            "certvigil fleet benchmark: {} leaf files, parts {}, {} cores (load average {}), {}",
            settings.leaves,
            settings.parts.join(","),
            cores(),
            load_average(),
            openssl_version()
        );
        bench.print_fixture();
    }
    let outcome = bench.run_parts();
    if let Err(e) = &outcome {
        bench.problems.push(format!("aborted: {e:#}"));
    }

    if smoke {
        ensure!(bench.problems.is_empty(), "smoke run: {} check(s) failed:\n  {}", bench.problems.len(), bench.problems.join("\n  "));
        println!(
            "bench fleet smoke run: ok ({} leaves: scan, check with CRLs ({} revoked), plan, evaluate, refused host) in {:.1} s; \
             `cargo bench --bench fleet` measures",
            settings.leaves,
            bench.fleet.revoked,
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }

    bench.print_report();
    let json_path = target_dir.join("bench-fleet.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&bench.json())? + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    println!("\nwrote {} ({:.0} s in all)", json_path.display(), started.elapsed().as_secs_f64());
    let problems = std::mem::take(&mut bench.problems);
    drop(bench);
    if settings.keep {
        let kept = tmp.keep();
        println!("kept fixtures in {}", kept.display());
    }
    if !problems.is_empty() {
        bail!("{} check(s) failed:\n  {}", problems.len(), problems.join("\n  "));
    }
    Ok(())
}

// ───────────────────────────── running children ─────────────────────────────

/// `certvigil ARGS`, timed.
fn certvigil(args: &[&dyn AsRef<std::ffi::OsStr>], what: &str, measure: bool) -> Result<Timed> {
    let args: Vec<OsString> = args.iter().map(|a| a.as_ref().to_os_string()).collect();
    timed(Path::new(CERTVIGIL), &args, &[], what, measure, Some(CHILD_DEADLINE))
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

// ───────────────────────────── the report ─────────────────────────────

/// One line of the measurements table.
struct Row {
    part: &'static str,
    what: String,
    wall_s: f64,
    cpu_s: Option<f64>,
    peak_rss_kib: Option<u64>,
    /// Counts and what else the row found.
    note: String,
    extra: Value,
}

impl Row {
    fn new(part: &'static str, what: impl Into<String>, t: &Timed, note: impl Into<String>) -> Row {
        Row {
            part,
            what: what.into(),
            wall_s: t.wall_s,
            cpu_s: t.cpu_s,
            peak_rss_kib: t.peak_rss_kib,
            note: note.into(),
            extra: Value::Null,
        }
    }
}

/// One figure next to its target.
struct Target {
    part: &'static str,
    figure: String,
    value: String,
    target: String,
    met: bool,
}

/// The harness: the fleet, its servers, and what the parts measured and found.
struct Bench<'a> {
    settings: &'a Settings,
    work: PathBuf,
    benches: PathBuf,
    target_dir: PathBuf,
    fleet: Fleet,
    crl_server: Server,
    ocsp_server: Server,
    /// `fleet.yaml`: the store, one files source over the fleet, default revocation settings.
    config: PathBuf,
    /// The store of the cold and warm scans, copied (never changed) for each check row.
    main_store: Option<PathBuf>,
    /// The store of the CRL check (evaluate and plan run on it).
    checked_store: Option<PathBuf>,
    rows: Vec<Row>,
    targets: Vec<Target>,
    problems: Vec<String>,
    notes: Vec<String>,
    json: serde_json::Map<String, Value>,
}

impl<'a> Bench<'a> {
    /// Starts the CRL server and the OCSP responder (their ports go into every certificate),
    /// then generates the fleet.
    fn new(settings: &'a Settings, work: &Path, benches: &Path, target_dir: &Path) -> Result<Bench<'a>> {
        let ocsp_server = Server::start(net::ocsp_handler(work.join("ocsp")))?;
        // The CRL server starts with no CRL; it gets them once they are signed.
        let crls: std::sync::Arc<std::sync::Mutex<Option<Box<net::Handler>>>> = std::sync::Arc::default();
        let slot = std::sync::Arc::clone(&crls);
        let crl_server = Server::start(Box::new(move |req: &net::Request| match &*slot.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(handler) => handler(req),
            None => net::Response {
                status: "503 Service Unavailable",
                content_type: "text/plain",
                headers: Vec::new(),
                body: Vec::new(),
                failure: None,
            },
        }))?;
        let fleet = fixture::generate(work, settings.leaves, &crl_server.base(), &ocsp_server.base())?;
        let mut ders = Vec::new();
        for name in ["root", "rsa", "p384"] {
            let path = fleet.crl_path(name);
            ders.push((name.to_string(), std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?));
        }
        *crls.lock().unwrap_or_else(|p| p.into_inner()) = Some(net::crl_handler(ders));

        let config = work.join("fleet.yaml");
        write_config(&config, &work.join("stores/main/store.db"), std::slice::from_ref(&fleet.certs), "")?;
        Ok(Bench {
            settings,
            work: work.to_path_buf(),
            benches: benches.to_path_buf(),
            target_dir: target_dir.to_path_buf(),
            fleet,
            crl_server,
            ocsp_server,
            config,
            main_store: None,
            checked_store: None,
            rows: Vec::new(),
            targets: Vec::new(),
            problems: Vec::new(),
            notes: Vec::new(),
            json: serde_json::Map::new(),
        })
    }

    fn measure(&self) -> bool {
        !self.settings.smoke
    }

    fn target(&mut self, part: &'static str, figure: impl Into<String>, value: String, target: impl Into<String>, met: bool) {
        self.targets.push(Target { part, figure: figure.into(), value, target: target.into(), met });
    }

    fn problem(&mut self, p: impl Into<String>) {
        self.problems.push(p.into());
    }

    fn progress(&self, row: &Row) {
        if !self.settings.smoke {
            println!("  {:<9} {:<46} {:>8.2} s", row.part, row.what, row.wall_s);
        }
    }

    fn push(&mut self, row: Row) {
        self.progress(&row);
        self.rows.push(row);
    }

    fn print_fixture(&self) {
        let f = &self.fleet;
        println!(
            "fleet: {} leaf files + the root's ({} fullchain, {} expired, {} expiring within 30 days, {} revoked of which {} with an \
             invalidity date), {} certificates in {} files, {} MiB, generated in {:.1} s",
            f.leaves,
            f.fullchain,
            f.expired,
            f.expiring,
            f.revoked,
            f.with_invalidity,
            f.occurrences.certs,
            f.occurrences.files,
            f.bytes >> 20,
            f.generation_s
        );
        let crls: Vec<String> = f.crl_bytes.iter().map(|(n, b)| format!("{n} {:.1} KiB", *b as f64 / 1024.0)).collect();
        println!(
            "CAs: root (P-256) → RSA-2048 and P-384 issuing CAs; CRLs by openssl ca -gencrl ({}) at {}/crl/…; OCSP {}/ocsp/…",
            crls.join(", "),
            f.crl_base,
            f.ocsp_base
        );
    }

    fn run_parts(&mut self) -> Result<()> {
        for part in self.settings.parts.clone() {
            if !self.settings.smoke {
                println!("\n── {part} ──");
            }
            match part {
                "scan" => self.scan_part()?,
                "crl" => self.crl_part()?,
                "evaluate" => self.evaluate_part()?,
                "ocsp" => self.ocsp_part()?,
                "hang" => self.dead_host_part(false)?,
                "daemon" => self.daemon_part()?,
                "refused" => self.dead_host_part(true)?,
                other => bail!("unknown part {other}"),
            }
        }
        Ok(())
    }

    // ───────────────────────────── 1. scan ─────────────────────────────

    fn scan_part(&mut self) -> Result<()> {
        let measure = self.measure();
        if !self.settings.smoke {
            let go = self.settings.venv.join("bin/go");
            let python = self.settings.venv.join("bin/python");
            for (tool, path) in [("python", &python), ("go", &go)] {
                ensure!(path.exists(), "{tool} not found at {}: run benches/setup.sh", path.display());
            }
            let go_bin = build_go(&go, &self.benches.join("baselines/x509scan.go"), &self.work, &self.target_dir)?;
            let py: OsString = self.benches.join("baselines/x509scan.py").into();
            let certs: OsString = self.fleet.certs.clone().into();
            let n = cores().to_string();
            let runs: [(&str, &Path, Vec<OsString>, Option<&str>); 3] = [
                ("go x509scan, parallel", &go_bin, vec!["-workers".into(), n.clone().into(), certs.clone()], None),
                ("go x509scan, 1 thread", &go_bin, vec!["-workers".into(), "1".into(), certs.clone()], Some("1")),
                ("python x509scan (cryptography)", &python, vec![py, certs.clone()], None),
            ];
            for (what, program, args, gomaxprocs) in runs {
                let what = if what.ends_with("parallel") { format!("go x509scan, {n} workers") } else { what.to_string() };
                let t = match gomaxprocs {
                    // GOMAXPROCS=1 through env(1), so that the child is still timed by GNU time.
                    Some(p) => {
                        let mut a: Vec<OsString> = vec![format!("GOMAXPROCS={p}").into(), program.into()];
                        a.extend(args);
                        timed(Path::new("/usr/bin/env"), &a, &[], &what, measure, Some(CHILD_DEADLINE))?
                    }
                    None => timed(program, &args, &[], &what, measure, Some(CHILD_DEADLINE))?,
                };
                let found = baseline_tally(&t.stdout).with_context(|| format!("{what}: {:?}", tail(&t.stdout, 3)))?;
                for m in mismatches(&what, &found.0, found.1, &self.fleet.occurrences) {
                    self.problem(m);
                }
                let note = format!("{} certs in {} files", found.0.certs, found.0.files);
                self.push(Row::new("1 scan", what, &t, note));
            }
        }

        let store = self.work.join("stores/main/store.db");
        for phase in ["cold", "warm"] {
            let what = format!("certvigil scan, {phase}");
            let t = certvigil(&[&"-c", &self.config, &"scan", &"--output", &"json", &"--no-progress"], &what, measure)?;
            let summary: Value = serde_json::from_str(&t.stdout).with_context(|| format!("{what}: {:?}", tail(&t.stdout, 5)))?;
            let run = &summary["run"];
            let found = store_tally(&store)?;
            for m in mismatches(&what, &found, run["errors"].as_u64().unwrap_or(u64::MAX), &self.fleet.distinct) {
                self.problem(m);
            }
            let note = format!(
                "{} certs in the store; read {} of {} objects",
                found.certs,
                run["objects_read"].as_u64().unwrap_or(0),
                run["objects_seen"].as_u64().unwrap_or(0)
            );
            let mut row = Row::new("1 scan", what, &t, note);
            row.extra = json!({ "run": run });
            self.push(row);
        }
        self.main_store = Some(store);

        if self.settings.smoke {
            return Ok(());
        }
        let wall = |s: &Self, pred: &dyn Fn(&str) -> bool| s.rows.iter().find(|r| pred(&r.what)).map(|r| r.wall_s);
        let cold = wall(self, &|w| w == "certvigil scan, cold");
        let warm = wall(self, &|w| w == "certvigil scan, warm");
        let go = wall(self, &|w| w.starts_with("go x509scan") && w.ends_with("workers"));
        let python = wall(self, &|w| w.starts_with("python"));
        if let (Some(c), Some(g)) = (cold, go) {
            self.target(
                "1 scan",
                "cold scan wall / Go parallel wall",
                format!("{:.2}x", c / g),
                "≤ 0.33x (3× faster)",
                c / g <= SCAN_VS_GO,
            );
        }
        if let (Some(c), Some(p)) = (cold, python) {
            self.target("1 scan", "cold scan wall / Python wall", format!("{:.2}x", c / p), "≤ 0.5x (2× faster)", c / p <= SCAN_VS_PYTHON);
        }
        if let (Some(c), Some(w)) = (cold, warm) {
            self.target(
                "1 scan",
                "warm scan wall / cold scan wall",
                format!("{:.2}x", w / c),
                "≤ 0.1x (10× faster)",
                w / c <= WARM_VS_COLD,
            );
        }
        let rss: Vec<(String, u64)> = self
            .rows
            .iter()
            .filter(|r| r.what.starts_with("certvigil scan"))
            .filter_map(|r| r.peak_rss_kib.map(|k| (r.what.clone(), k)))
            .collect();
        for (what, kib) in rss {
            self.target("1 scan", format!("{what}: peak RSS"), format!("{:.1} MiB", mib(kib)), "≤ 64 MiB", mib(kib) <= SCAN_RSS_MIB);
        }
        Ok(())
    }

    /// The store of the scans, made by an unmeasured cold scan when the scan part did not run.
    fn main_store(&mut self) -> Result<PathBuf> {
        if let Some(s) = &self.main_store {
            return Ok(s.clone());
        }
        let t = certvigil(&[&"-c", &self.config, &"scan", &"--output", &"json", &"--no-progress"], "certvigil scan (setup)", false)?;
        let store = self.work.join("stores/main/store.db");
        let found = store_tally(&store)?;
        for m in mismatches("certvigil scan (setup)", &found, 0, &self.fleet.distinct) {
            self.problem(m);
        }
        self.notes.push(format!("the store was filled by an unmeasured scan ({:.1} s)", t.wall_s));
        self.main_store = Some(store.clone());
        Ok(store)
    }

    /// A copy of the scanned store in a directory of its own (its CRL cache is beside it), for
    /// one check row: every row starts from the scan, with no revocation state or cache.
    fn fresh_copy(&mut self, name: &str) -> Result<PathBuf> {
        let main = self.main_store()?;
        let dir = self.work.join("stores").join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let to = dir.join("store.db");
        std::fs::copy(&main, &to).with_context(|| format!("copying the store to {}", to.display()))?;
        for suffix in ["-wal", "-shm"] {
            let side = PathBuf::from(format!("{}{suffix}", main.display()));
            if side.exists() {
                std::fs::copy(&side, format!("{}{suffix}", to.display()))?;
            }
        }
        Ok(to)
    }

    // ───────────────────────────── 2a. CRL ─────────────────────────────

    fn crl_part(&mut self) -> Result<()> {
        let store = self.fresh_copy("crl")?;
        let _ = (self.crl_server.take(), self.ocsp_server.take());
        let what = "certvigil check (CRLs, prefer auto)";
        let t = certvigil(&[&"-c", &self.config, &"--store", &store, &"check"], what, self.measure())?;
        let (crl, ocsp) = (self.crl_server.take(), self.ocsp_server.take());
        let summary = t.stdout.lines().last().unwrap_or_default().to_string();
        let leaves: Vec<usize> = (0..self.fleet.leaves).collect();
        let states = self.verify_statuses(what, &store, &leaves, Expect::Answers { method: "crl", invalidity: true })?;
        self.server_failures(what, &crl);
        let crls = 3;
        let per_crl_ok = crl.requests == crls && crl.routes.values().all(|&n| n == 1);
        if !per_crl_ok {
            self.problem(format!("{what}: the CRL server saw {} requests ({:?}), expected one per CRL ({crls})", crl.requests, crl.routes));
        }
        if ocsp.requests != 0 {
            self.problem(format!("{what}: {} OCSP requests; every leaf has a distribution point", ocsp.requests));
        }
        let revoked = states.get("revoked").copied().unwrap_or(0);
        let note = format!("{}; CRL server: {} requests, OCSP: {}", states_line(&states), crl.requests, ocsp.requests);
        let mut row = Row::new("2a crl", what, &t, note);
        row.extra = json!({ "states": states, "crl_requests": crl.requests, "crl_routes": crl.routes, "ocsp_requests": ocsp.requests, "summary": summary });
        self.push(row);
        self.target(
            "2a crl",
            "CRL downloads (requests at the CRL server)",
            crl.requests.to_string(),
            format!("= {crls}, one per CRL"),
            per_crl_ok,
        );
        self.target(
            "2a crl",
            "certificates found revoked",
            revoked.to_string(),
            format!("= {} generated", self.fleet.revoked),
            revoked == self.fleet.revoked as u64,
        );
        self.checked_store = Some(store);
        Ok(())
    }

    /// Counts every failure a server's handler reported as a problem.
    fn server_failures(&mut self, what: &str, seen: &Seen) {
        if seen.failures > 0 {
            self.problem(format!("{what}: the server failed {} time(s): {}", seen.failures, seen.first_error.as_deref().unwrap_or("")));
        }
    }

    /// Reads every current certificate's revocation status from `store` and compares it with
    /// the fleet: `leaves` are the leaves in the store, the CAs are there when a fullchain
    /// file among them carries them, and the root is always there. Returns the count by state.
    fn verify_statuses(&mut self, what: &str, store: &Path, leaves: &[usize], expect: Expect) -> Result<BTreeMap<String, u64>> {
        let db = rusqlite::Connection::open_with_flags(store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening the store {}", store.display()))?;
        let mut stmt = db.prepare(
            "SELECT c.serial, c.self_issued, r.status, r.reason, r.revoked_at, r.invalidity_date, r.method
             FROM certificates c LEFT JOIN revocation_status r ON r.cert_id = c.id WHERE c.gone_since IS NULL",
        )?;
        type Found = (String, bool, Option<String>, Option<String>, Option<i64>, Option<i64>, Option<String>);
        let found: Vec<Found> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let wanted: HashMap<String, usize> = leaves.iter().map(|&i| (fixture::serial_hex(i), i)).collect();
        let cas: Vec<&str> = ["0201", "0202"]
            .into_iter()
            .zip(Ca::BOTH)
            .filter(|(_, ca)| leaves.iter().any(|&i| fixture::is_fullchain(i) && Ca::of(i) == *ca))
            .map(|(s, _)| s)
            .collect();
        let mut states: BTreeMap<String, u64> = BTreeMap::new();
        let mut wrong: Vec<String> = Vec::new();
        let mut seen = 0usize;
        for (serial, self_issued, state, reason, revoked_at, invalidity, method) in found {
            let serial = serial.replace(':', "").to_ascii_uppercase();
            let serial = serial.trim_start_matches("00").to_string();
            let state = state.unwrap_or_else(|| "(none)".into());
            *states.entry(state.clone()).or_default() += 1;
            seen += 1;
            let method = method.unwrap_or_default();
            if serial == "0301" && self_issued {
                if state != "not-applicable" {
                    wrong.push(format!("the root: {state}, expected not-applicable"));
                }
                continue;
            }
            let (label, want) = if cas.contains(&serial.as_str()) {
                (format!("CA {serial}"), None)
            } else if let Some(&i) = wanted.get(&serial) {
                (format!("leaf {i} ({serial})"), fixture::revocation(i, self.fleet.day0))
            } else {
                wrong.push(format!("certificate {serial} is not one the fleet generated"));
                continue;
            };
            match (&expect, want) {
                (Expect::AllUnknown, _) => {
                    if state != "unknown" {
                        wrong.push(format!("{label}: {state}, expected unknown"));
                    }
                }
                (Expect::Answers { method: m, .. }, None) => {
                    if state != "good" || method != *m {
                        wrong.push(format!("{label}: {state} by {method} ({}), expected good by {m}", reason.as_deref().unwrap_or("")));
                    }
                }
                (Expect::Answers { method: m, invalidity: check_invalidity }, Some(w)) => {
                    let reason_ok = reason.as_deref() == Some(w.reason) || (!w.coded && reason.is_none());
                    let invalidity_ok = !check_invalidity || invalidity == w.invalidity;
                    if state != "revoked" || method != *m || !reason_ok || revoked_at != Some(w.revoked_at) || !invalidity_ok {
                        wrong.push(format!(
                            "{label}: {state} by {method} ({:?}, at {revoked_at:?}, invalidity {invalidity:?}), expected revoked by {m} ({}, at {}, invalidity {:?})",
                            reason, w.reason, w.revoked_at, w.invalidity
                        ));
                    }
                }
            }
        }
        let expected = leaves.len() + cas.len() + 1;
        if seen != expected {
            wrong.push(format!("{seen} certificates in the store, expected {expected}"));
        }
        if !wrong.is_empty() {
            let n = wrong.len();
            for w in wrong.into_iter().take(5) {
                self.problem(format!("{what}: {w}"));
            }
            if n > 5 {
                self.problem(format!("{what}: … and {} more wrong statuses", n - 5));
            }
        }
        Ok(states)
    }

    // ───────────────────────────── 3. plan and evaluate ─────────────────────────────

    fn evaluate_part(&mut self) -> Result<()> {
        let store = match &self.checked_store {
            Some(s) => s.clone(),
            None => {
                // Evaluate needs revocation statuses: an unmeasured CRL check first.
                let store = self.fresh_copy("crl")?;
                certvigil(&[&"-c", &self.config, &"--store", &store, &"check"], "certvigil check (setup)", false)?;
                let _ = self.crl_server.take();
                self.notes.push("plan and evaluate ran on a store checked by an unmeasured CRL pass".into());
                self.checked_store = Some(store.clone());
                store
            }
        };
        let measure = self.measure();
        let f = &self.fleet;
        let expected: BTreeMap<&str, usize> =
            [("expired", f.expired), ("expiring", f.expiring), ("revoked", f.revoked)].into_iter().collect();
        let expected_total: usize = expected.values().sum();

        let t = certvigil(&[&"-c", &self.config, &"--store", &store, &"plan"], "certvigil plan", measure)?;
        let last = t.stdout.lines().last().unwrap_or_default().to_string();
        let findings: Option<usize> = last.split_whitespace().next().and_then(|n| n.parse().ok());
        if findings != Some(expected_total) {
            self.problem(format!("certvigil plan: {last:?}, expected {expected_total} findings"));
        }
        let mut row = Row::new("3 evaluate", "certvigil plan (dry run)", &t, last.clone());
        row.extra = json!({ "summary": last });
        self.push(row);

        for phase in ["first: opens every alert", "again: nothing changed"] {
            let what = format!("certvigil evaluate ({phase})");
            let t = certvigil(&[&"-c", &self.config, &"--store", &store, &"evaluate", &"-o", &"json"], &what, measure)?;
            let report: Value = serde_json::from_str(&t.stdout).with_context(|| format!("{what}: {:?}", tail(&t.stdout, 5)))?;
            let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
            for kinds in report["counts"].as_object().into_iter().flat_map(|m| m.values()) {
                for (kind, n) in kinds.as_object().into_iter().flatten() {
                    *by_kind.entry(kind.clone()).or_default() += n.as_u64().unwrap_or(0) as usize;
                }
            }
            let want: BTreeMap<String, usize> = expected.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            if by_kind != want {
                self.problem(format!("{what}: findings by kind {by_kind:?}, expected {want:?}"));
            }
            let opened = report["applied"]["opened"].as_u64().unwrap_or(0);
            let note = format!(
                "{} findings ({}); {opened} alerts opened",
                report["findings"].as_u64().unwrap_or(0),
                by_kind.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ")
            );
            let mut row = Row::new("3 evaluate", what, &t, note);
            row.extra = json!({ "findings": report["findings"], "counts": report["counts"], "applied": report["applied"] });
            self.push(row);
        }
        if !self.settings.smoke {
            let rows: Vec<(String, f64, Option<u64>)> =
                self.rows.iter().filter(|r| r.part == "3 evaluate").map(|r| (r.what.clone(), r.wall_s, r.peak_rss_kib)).collect();
            for (what, wall, rss) in rows {
                self.target("3 evaluate", format!("{what}: wall"), format!("{wall:.2} s"), format!("≤ {EVALUATE_S} s"), wall <= EVALUATE_S);
                if let Some(kib) = rss {
                    self.target(
                        "3 evaluate",
                        format!("{what}: peak RSS"),
                        format!("{:.1} MB", mb(kib)),
                        format!("≤ {EVALUATE_MB} MB"),
                        mb(kib) <= EVALUATE_MB,
                    );
                }
            }
        }
        Ok(())
    }

    // ───────────────────────────── 2b. OCSP ─────────────────────────────

    fn ocsp_part(&mut self) -> Result<()> {
        let c = self.settings.concurrency;
        let n = self.fleet.leaves;
        // The first `dirs` of the 1,000 leaf directories (a multiple of 20, so that the subset
        // holds every pattern of the fleet in its proportion).
        let dirs = if self.settings.ocsp_leaves >= n {
            fixture::DIRS
        } else {
            let per_dir = n as f64 / fixture::DIRS.min(n) as f64;
            (((self.settings.ocsp_leaves as f64 / per_dir).ceil() as usize).div_ceil(20) * 20).clamp(20, fixture::DIRS)
        };
        let leaves: Vec<usize> = self.fleet.subset(dirs).collect();
        let subset_note = if leaves.len() < n {
            format!("a subset: {} of the {n} leaves (the first {dirs} of {} directories)", leaves.len(), fixture::DIRS.min(n))
        } else {
            format!("all {n} leaves")
        };
        println!(
            "OCSP over {subset_note}; responder: openssl ocsp per request behind {}, index.txt of the subset; {c} requests in flight",
            self.fleet.ocsp_base
        );
        fixture::ocsp_databases(&self.fleet, &leaves)?;

        // The subset's own store: its directories and the root.
        let dir = self.work.join("stores/ocsp");
        let store = dir.join("store.db");
        let mut paths: Vec<PathBuf> = if dirs >= fixture::DIRS {
            vec![self.fleet.certs.clone()]
        } else {
            (0..dirs).map(|d| fixture::dir_of(&self.fleet.certs, d)).collect()
        };
        if dirs < fixture::DIRS {
            paths.push(self.fleet.root_file.clone());
        }
        let cfg = self.work.join("ocsp.yaml");
        let revocation =
            format!("revocation: {{prefer: ocsp, fallback: false, concurrency: {c}, per_host_concurrency: {c}, per_host_interval: 0ms}}\n");
        write_config(&cfg, &store, &paths, &revocation)?;
        let t = certvigil(&[&"-c", &cfg, &"scan", &"--output", &"json", &"--no-progress"], "certvigil scan (OCSP subset)", false)?;
        self.notes.push(format!("OCSP subset store filled by an unmeasured scan of {} leaves ({:.1} s)", leaves.len(), t.wall_s));

        // The certificates asked: the leaves, and the issuing CAs the subset's fullchains carry.
        let mut requests: Vec<ClientRequest> = Vec::new();
        for &i in &leaves {
            let ca = Ca::of(i);
            requests.push(ClientRequest {
                path: format!("/ocsp/{}", ca.name()),
                der: net::ocsp_request(&self.fleet.ca(ca).cert_der, &fixture::serial(i))?,
                serial: fixture::serial(i).to_vec(),
            });
        }
        for (serial, ca) in [([0x02u8, 0x01], Ca::Rsa), ([0x02, 0x02], Ca::P384)] {
            if leaves.iter().any(|&i| fixture::is_fullchain(i) && Ca::of(i) == ca) {
                requests.push(ClientRequest {
                    path: "/ocsp/root".into(),
                    der: net::ocsp_request(&self.fleet.root.cert_der, &serial)?,
                    serial: serial.to_vec(),
                });
            }
        }
        // The plain client's requests are the bytes `openssl ocsp -reqout` writes.
        for i in [leaves[0], leaves[1]] {
            let ca = self.fleet.ca(Ca::of(i));
            let out = self.work.join(format!("ocsp/openssl-req-{i}.der"));
            let serial = format!("0x{}", fixture::serial_hex(i));
            let out_s = out.to_string_lossy().into_owned();
            openssl(&ca.dir, &["ocsp", "-issuer", "ca.pem", "-serial", &serial, "-no_nonce", "-reqout", &out_s])?;
            if std::fs::read(&out)? != requests[leaves.iter().position(|&l| l == i).unwrap_or(0)].der {
                self.problem(format!("the plain client's OCSP request for leaf {i} differs from openssl ocsp -reqout's"));
            }
        }
        let asked = requests.len() as u64;
        let want_revoked: HashMap<String, Option<u8>> = leaves
            .iter()
            .filter_map(|&i| {
                fixture::revocation(i, self.fleet.day0).map(|r| (fixture::serial_hex(i), r.coded.then(|| reason_code(r.reason))))
            })
            .collect();

        // The plain client first, then certvigil, against the same responder.
        let _ = self.ocsp_server.take();
        let client = net::ocsp_client(self.ocsp_port(), &requests, c);
        let seen = self.ocsp_server.take();
        let what = format!("plain client: {c} threads POSTing pre-built requests");
        self.server_failures(&what, &seen);
        if client.errors > 0 {
            self.problem(format!("{what}: {} errors, first: {}", client.errors, client.first_error.as_deref().unwrap_or("")));
        }
        if client.revoked != want_revoked || client.good + client.revoked.len() as u64 != asked {
            self.problem(format!(
                "{what}: {} good, {} revoked, {} unknown; expected {} good, {} revoked with index.txt's reasons",
                client.good,
                client.revoked.len(),
                client.unknown,
                asked - want_revoked.len() as u64,
                want_revoked.len()
            ));
        }
        self.check_in_flight(&what, &seen, asked, c);
        let client_rate = asked as f64 / client.wall_s;
        let client_t = Timed { wall_s: client.wall_s, cpu_s: None, peak_rss_kib: None, stdout: String::new(), stderr: String::new() };
        let mut row = Row::new(
            "2b ocsp",
            what,
            &client_t,
            format!(
                "{asked} requests, {} good, {} revoked; {client_rate:.0} certs/s; {}",
                client.good,
                client.revoked.len(),
                responder_line(&seen, c)
            ),
        );
        row.extra = responder_json(&seen, c, client_rate);
        self.push(row);

        let what = "certvigil check (OCSP only)".to_string();
        let t = certvigil(&[&"-c", &cfg, &"check"], &what, self.measure())?;
        let seen = self.ocsp_server.take();
        self.server_failures(&what, &seen);
        let states = self.verify_statuses(&what, &store, &leaves, Expect::Answers { method: "ocsp", invalidity: false })?;
        if seen.requests != asked {
            self.problem(format!("{what}: the responder saw {} requests, expected one per certificate ({asked})", seen.requests));
        }
        self.check_in_flight(&what, &seen, asked, c);
        let rate = asked as f64 / t.wall_s;
        let mut row = Row::new(
            "2b ocsp",
            what,
            &t,
            format!("{}; {} requests; {rate:.0} certs/s; {}", states_line(&states), seen.requests, responder_line(&seen, c)),
        );
        row.extra = responder_json(&seen, c, rate);
        row.extra["states"] = json!(states);
        self.push(row);
        let ratio = rate / client_rate;
        self.target(
            "2b ocsp",
            format!("OCSP throughput, certvigil / plain client ({c} in flight, {})", if leaves.len() < n { "subset" } else { "all" }),
            format!("{rate:.0} / {client_rate:.0} certs/s = {:.0}%", ratio * 100.0),
            format!("≥ {:.0}%", OCSP_RATIO * 100.0),
            ratio >= OCSP_RATIO,
        );
        self.json.insert(
            "ocsp".into(),
            json!({ "subset_leaves": leaves.len(), "subset_dirs": dirs, "certificates_asked": asked, "concurrency": c,
                    "certvigil_certs_per_s": round(rate, 1), "client_certs_per_s": round(client_rate, 1), "ratio": round(ratio, 3) }),
        );
        Ok(())
    }

    fn ocsp_port(&self) -> u16 {
        self.fleet.ocsp_base.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0)
    }

    /// The responder never saw more than `c` requests at once, and saw `c` when there were
    /// enough.
    fn check_in_flight(&mut self, what: &str, seen: &Seen, asked: u64, c: usize) {
        let c = c as u64;
        if seen.max_in_flight > c {
            self.problem(format!("{what}: {} requests in flight at once, configured {c}", seen.max_in_flight));
        }
        if asked >= 10 * c && seen.max_in_flight < c {
            self.problem(format!("{what}: at most {} requests in flight, never the configured {c}", seen.max_in_flight));
        }
    }

    // ───────────────────────────── 2c/2d. dead hosts ─────────────────────────────

    /// Every URL's host refusing connections (`refused`: both listeners closed for good) or
    /// accepting and never answering (both servers holding every connection).
    fn dead_host_part(&mut self, refused: bool) -> Result<()> {
        let (part, name, what) = if refused {
            ("2c refused", "refused", "certvigil check (every host refusing connections)")
        } else {
            ("2d hang", "hang", "certvigil check (every host accepting, never answering)")
        };
        let store = self.fresh_copy(name)?;
        let _ = (self.crl_server.take(), self.ocsp_server.take());
        if refused {
            self.crl_server.close()?;
            self.ocsp_server.close()?;
        } else {
            self.crl_server.set_mode(Mode::Hang);
            self.ocsp_server.set_mode(Mode::Hang);
        }
        let t = certvigil(&[&"-c", &self.config, &"--store", &store, &"check"], what, self.measure());
        if !refused {
            self.crl_server.set_mode(Mode::Serve);
            self.ocsp_server.set_mode(Mode::Serve);
        }
        let t = t?;
        let (crl, ocsp) = (self.crl_server.take(), self.ocsp_server.take());
        let leaves: Vec<usize> = (0..self.fleet.leaves).collect();
        let states = self.verify_statuses(what, &store, &leaves, Expect::AllUnknown)?;
        let note = if refused {
            format!("{}; default settings (timeout 10 s, fallback on)", states_line(&states))
        } else {
            format!("{}; connections held: CRL host {}, OCSP host {}", states_line(&states), crl.connections, ocsp.connections)
        };
        let mut row = Row::new(part, what, &t, note);
        row.extra = json!({ "states": states, "crl_connections": crl.connections, "ocsp_connections": ocsp.connections });
        self.push(row);
        if !self.settings.smoke {
            let wall = t.wall_s;
            self.target(
                part,
                format!("{what}: wall"),
                format!("{wall:.1} s"),
                format!("≤ {DEAD_HOST_S} s, all unknown"),
                wall <= DEAD_HOST_S,
            );
        }
        Ok(())
    }

    // ───────────────────────────── 4. the daemon ─────────────────────────────

    fn daemon_part(&mut self) -> Result<()> {
        let dir = self.work.join("daemon");
        std::fs::create_dir_all(&dir)?;
        let token = "fleet-bench-token-0123456789abcdef";
        std::fs::write(dir.join("token"), token)?;
        let cfg = dir.join("certvigil.yaml");
        let never = "'0 0 1 1 *'";
        let extra = format!(
            "daemon: {{token: {}}}\njobs:\n  - {{name: scan, kind: scan, schedule: {never}, catch_up: skip}}\n  \
             - {{name: revocation, kind: revocation, schedule: {never}, catch_up: skip}}\n  \
             - {{name: evaluate, kind: evaluate, schedule: {never}, catch_up: skip}}\n",
            serde_json::to_string(&format!("${{file:{}}}", dir.join("token").display()))?
        );
        let store = dir.join("state/store.db");
        write_config(&cfg, &store, std::slice::from_ref(&self.fleet.certs), &extra)?;
        let _ = (self.crl_server.take(), self.ocsp_server.take());
        let mut daemon = Daemon::start(&dir, &cfg)?;
        let result = self.drive_daemon(&mut daemon, token, &store);
        daemon.stop();
        result
    }

    fn drive_daemon(&mut self, d: &mut Daemon, token: &str, store: &Path) -> Result<()> {
        let pid = d.child.id();
        let idle = proc_kib(pid, "VmRSS")?;
        let reset = reset_peak(pid);
        if !reset {
            self.notes.push("/proc/PID/clear_refs could not reset the peak: each job's VmHWM includes the jobs before it".into());
        }
        println!("daemon pid {pid} on 127.0.0.1:{}, idle RSS {:.1} MB", d.port, mb(idle));
        let mut jobs = Vec::new();
        for job in ["scan", "revocation", "evaluate"] {
            reset_peak(pid);
            let cpu_before = proc_cpu_s(pid)?;
            let started = Instant::now();
            let (status, body) = net::http(d.port, "POST", &format!("/api/v1/jobs/{job}/run"), Some(token))?;
            ensure!(status == 202, "POST /api/v1/jobs/{job}/run: HTTP {status}: {}", String::from_utf8_lossy(&body));
            let accepted: Value = serde_json::from_slice(&body)?;
            let id = accepted["run_id"].as_i64().with_context(|| format!("no run_id in {accepted}"))?;
            let run = loop {
                std::thread::sleep(Duration::from_millis(100));
                let (status, body) = net::http(d.port, "GET", &format!("/api/v1/jobs/{job}/runs"), Some(token))?;
                ensure!(status == 200, "GET /api/v1/jobs/{job}/runs: HTTP {status}");
                let runs: Value = serde_json::from_slice(&body)?;
                let this = runs.as_array().and_then(|a| a.iter().find(|r| r["id"].as_i64() == Some(id))).cloned();
                if let Some(r) = this.filter(|r| r["status"] != "running") {
                    break r;
                }
                ensure!(started.elapsed() < CHILD_DEADLINE, "job {job} still running after {} s", CHILD_DEADLINE.as_secs());
                ensure!(d.child.try_wait()?.is_none(), "the daemon exited during job {job}");
            };
            let wall = started.elapsed().as_secs_f64();
            let cpu = proc_cpu_s(pid)? - cpu_before;
            let (hwm, rss) = (proc_kib(pid, "VmHWM")?, proc_kib(pid, "VmRSS")?);
            if run["status"] != "ok" {
                self.problem(format!("daemon job {job}: {} ({})", run["status"], run["error"]));
            }
            let summary = run["summary"].as_str().unwrap_or_default().to_string();
            let t = Timed { wall_s: wall, cpu_s: Some(cpu), peak_rss_kib: Some(hwm), stdout: String::new(), stderr: String::new() };
            let mut row = Row::new(
                "4 daemon",
                format!("job `{job}` (API trigger → run finished)"),
                &t,
                format!("RSS after {:.1} MB; {summary}", mb(rss)),
            );
            row.extra = json!({ "run": run, "vm_hwm_mb": round(mb(hwm), 1), "vm_rss_after_mb": round(mb(rss), 1) });
            self.push(row);
            self.target(
                "4 daemon",
                format!("daemon peak RSS (VmHWM) during `{job}`"),
                format!("{:.1} MB", mb(hwm)),
                format!("≤ {DAEMON_MB} MB"),
                mb(hwm) <= DAEMON_MB,
            );
            jobs.push(json!({ "job": job, "wall_s": round(wall, 2), "vm_hwm_mb": round(mb(hwm), 1), "vm_rss_mb": round(mb(rss), 1) }));
        }
        let (crl, ocsp) = (self.crl_server.take(), self.ocsp_server.take());
        if crl.requests != 3 || ocsp.requests != 0 {
            self.problem(format!(
                "daemon revocation job: {} CRL requests ({:?}) and {} OCSP requests ({:?}), expected one per CRL (3) and none",
                crl.requests, crl.routes, ocsp.requests, ocsp.routes
            ));
        }
        let found = store_tally(store)?;
        for m in mismatches("daemon scan job", &found, 0, &self.fleet.distinct) {
            self.problem(m);
        }

        reset_peak(pid);
        let cpu_before = proc_cpu_s(pid)?;
        let started = Instant::now();
        let (status, body) = net::http(d.port, "GET", "/metrics", None)?;
        let wall = started.elapsed().as_secs_f64();
        let cpu = proc_cpu_s(pid)? - cpu_before;
        ensure!(status == 200, "GET /metrics: HTTP {status}");
        let hwm = proc_kib(pid, "VmHWM")?;
        let text = String::from_utf8_lossy(&body);
        let series = text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).count();
        let sightings = text.lines().filter(|l| l.starts_with("x509_cert_not_after{")).count();
        let revoked = text.lines().filter(|l| l.starts_with("certvigil_cert_revoked{") && l.ends_with(" 1")).count();
        let want_sightings = self.fleet.occurrences.certs as usize;
        if sightings != want_sightings {
            self.problem(format!("/metrics: {sightings} x509_cert_not_after series, expected one per sighting ({want_sightings})"));
        }
        if revoked != self.fleet.revoked {
            self.problem(format!("/metrics: {revoked} certificates with certvigil_cert_revoked 1, expected {}", self.fleet.revoked));
        }
        let t = Timed { wall_s: wall, cpu_s: Some(cpu), peak_rss_kib: Some(hwm), stdout: String::new(), stderr: String::new() };
        let note = format!("{:.1} MiB, {series} series, {revoked} revoked", body.len() as f64 / 1048576.0);
        self.push(Row::new("4 daemon", "GET /metrics (one scrape)", &t, note));
        self.target(
            "4 daemon",
            "daemon peak RSS (VmHWM) during the /metrics scrape",
            format!("{:.1} MB", mb(hwm)),
            format!("≤ {DAEMON_MB} MB"),
            mb(hwm) <= DAEMON_MB,
        );
        self.json.insert(
            "daemon".into(),
            json!({ "idle_rss_mb": round(mb(idle), 1), "peak_reset_per_job": reset, "jobs": jobs,
                    "metrics": { "wall_s": round(wall, 3), "bytes": body.len(), "series": series, "vm_hwm_mb": round(mb(hwm), 1) } }),
        );
        Ok(())
    }

    // ───────────────────────────── output ─────────────────────────────

    /// Rows in the order of the report (1, 2a–2d, 3, 4), whatever order the parts ran in.
    fn sorted_rows(&self) -> Vec<&Row> {
        let mut rows: Vec<&Row> = self.rows.iter().collect();
        rows.sort_by_key(|r| r.part);
        rows
    }

    fn sorted_targets(&self) -> Vec<&Target> {
        let mut targets: Vec<&Target> = self.targets.iter().collect();
        targets.sort_by_key(|t| t.part);
        targets
    }

    fn print_report(&self) {
        println!(
            "\n══ certvigil at fleet scale: {} leaf files, {} cores (load average now {}) ══\n",
            self.fleet.leaves,
            cores(),
            load_average()
        );
        println!("{:<10} {:<52} {:>8} {:>8} {:>9}  found", "row", "measurement", "wall s", "cpu s", "peak MiB");
        for r in self.sorted_rows() {
            let cpu = r.cpu_s.map_or_else(|| "-".to_string(), |c| format!("{c:.2}"));
            let rss = r.peak_rss_kib.map_or_else(|| "-".to_string(), |k| format!("{:.1}", mib(k)));
            println!("{:<10} {:<52} {:>8.2} {:>8} {:>9}  {}", r.part, r.what, r.wall_s, cpu, rss, r.note);
        }
        println!("\n{:<10} {:<72} {:>24}  {:<26}", "row", "figure", "value", "target");
        for t in self.sorted_targets() {
            println!("{:<10} {:<72} {:>24}  {:<26} {}", t.part, t.figure, t.value, t.target, if t.met { "met" } else { "MISSED" });
        }
        for n in &self.notes {
            println!("note: {n}");
        }
        if !self.problems.is_empty() {
            println!("\n{} check(s) failed:", self.problems.len());
            for p in &self.problems {
                println!("  {p}");
            }
        }
    }

    fn json(&self) -> Value {
        let f = &self.fleet;
        let rows: Vec<Value> = self
            .sorted_rows()
            .into_iter()
            .map(|r| {
                json!({ "part": r.part, "measurement": r.what, "wall_s": round(r.wall_s, 3), "cpu_s": r.cpu_s.map(|c| round(c, 3)),
                        "peak_rss_mib": r.peak_rss_kib.map(|k| round(mib(k), 1)), "found": r.note, "extra": r.extra })
            })
            .collect();
        let targets: Vec<Value> = self
            .sorted_targets()
            .into_iter()
            .map(|t| json!({ "part": t.part, "figure": t.figure, "value": t.value, "target": t.target, "met": t.met }))
            .collect();
        let mut out = json!({
            "benchmark": "fleet",
            "measured_at_unix": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            "cores": cores(),
            "load_average_at_end": load_average(),
            "openssl": openssl_version(),
            "parts": self.settings.parts,
            "fleet": {
                "leaf_files": f.leaves, "files": f.occurrences.files, "certificate_occurrences": f.occurrences.certs,
                "distinct_certificates": f.distinct.certs, "fullchain": f.fullchain, "expired": f.expired, "expiring": f.expiring,
                "revoked": f.revoked, "revoked_with_invalidity_date": f.with_invalidity, "bytes": f.bytes,
                "crl_bytes": f.crl_bytes.iter().map(|(n, b)| (n.to_string(), *b)).collect::<BTreeMap<_, _>>(),
                "generation_s": round(f.generation_s, 2),
            },
            "rows": rows,
            "targets": targets,
            "targets_met": self.targets.iter().all(|t| t.met),
            "notes": self.notes,
            "checks_failed": self.problems,
        });
        for (k, v) in &self.json {
            out[k] = v.clone();
        }
        out
    }
}

/// What a check row expects of every certificate.
enum Expect {
    /// Every leaf answered by `method` with its generated status and reason (and its
    /// invalidity date, when `invalidity`); the CAs good; the root not applicable.
    Answers { method: &'static str, invalidity: bool },
    /// Everything but the root unknown.
    AllUnknown,
}

/// The responder's side of an OCSP pass: requests in flight (at most, and on average from the
/// first request to the last answer) and how long `openssl ocsp` took per request.
fn responder_line(seen: &Seen, c: usize) -> String {
    let o = seen.occupancy(c);
    format!(
        "responder: max {} in flight, mean {:.2} over {:.1} s ({:.1} s with fewer than {c}), {:.1} ms per answer",
        seen.max_in_flight,
        o.mean_in_flight,
        o.window_s,
        o.below_limit_s,
        seen.busy_s * 1e3 / seen.requests.max(1) as f64
    )
}

fn responder_json(seen: &Seen, c: usize, rate: f64) -> Value {
    let o = seen.occupancy(c);
    json!({
        "requests": seen.requests, "certs_per_s": round(rate, 1), "max_in_flight": seen.max_in_flight,
        "mean_in_flight": round(o.mean_in_flight, 3), "window_s": round(o.window_s, 3), "idle_s": round(o.idle_s, 3),
        "below_limit_s": round(o.below_limit_s, 3), "responder_busy_s": round(seen.busy_s, 2),
        "responder_ms_per_answer": round(seen.busy_s * 1e3 / seen.requests.max(1) as f64, 2),
    })
}

fn states_line(states: &BTreeMap<String, u64>) -> String {
    states.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ")
}

/// The CRLReason code of a reason name (RFC 5280 §5.3.1).
fn reason_code(reason: &str) -> u8 {
    match reason {
        "keyCompromise" => 1,
        "cACompromise" => 2,
        "affiliationChanged" => 3,
        "superseded" => 4,
        "cessationOfOperation" => 5,
        "certificateHold" => 6,
        _ => 0,
    }
}

/// The configuration: a store, one `files` source named `fleet` over `paths`, and `extra`
/// (top-level YAML).
fn write_config(path: &Path, store: &Path, paths: &[PathBuf], extra: &str) -> Result<()> {
    let paths: Vec<String> = paths.iter().map(|p| serde_json::to_string(&p.to_string_lossy())).collect::<Result<_, _>>()?;
    let yaml = format!(
        "store:\n  path: {}\nsources:\n  - name: fleet\n    kind: files\n    paths: [{}]\n{extra}",
        serde_json::to_string(&store.to_string_lossy())?,
        paths.join(", ")
    );
    std::fs::write(path, yaml).with_context(|| format!("writing {}", path.display()))
}

// ───────────────────────────── scan checks ─────────────────────────────

/// A baseline's JSON line (benches/baselines/x509scan.*): its tally and error count.
fn baseline_tally(stdout: &str) -> Result<(Tally, u64)> {
    let v: Value = serde_json::from_str(stdout.trim()).context("not the baseline's JSON line")?;
    let int = |k: &str| v[k].as_i64().with_context(|| format!("no integer `{k}` in {v}"));
    let xor = v["fingerprint_xor"]
        .as_str()
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .with_context(|| format!("bad fingerprint_xor in {v}"))?;
    let tally =
        Tally { files: int("files")? as u64, certs: int("certs")? as u64, fingerprint_xor: xor, not_after_sum: int("not_after_sum")? };
    Ok((tally, int("errors")? as u64))
}

/// What a store holds: current certificates (fingerprints, notAfter) and objects with
/// certificates, read straight from the SQLite file.
fn store_tally(store: &Path) -> Result<Tally> {
    let db = rusqlite::Connection::open_with_flags(store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening the store {}", store.display()))?;
    let mut found = Tally::default();
    let mut stmt = db.prepare("SELECT fingerprint, not_after FROM certificates WHERE gone_since IS NULL")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let fingerprint: String = r.get(0)?;
        let bytes = hex::decode(&fingerprint).with_context(|| format!("fingerprint {fingerprint:?} in the store is not hex"))?;
        found.add_fingerprint(&bytes, r.get(1)?);
    }
    found.files = db.query_row("SELECT count(*) FROM objects WHERE source = 'fleet' AND certs > 0", [], |r| r.get::<_, i64>(0))? as u64;
    Ok(found)
}

/// Every way `found` disagrees with `expected`.
fn mismatches(who: &str, found: &Tally, errors: u64, expected: &Tally) -> Vec<String> {
    let mut out = Vec::new();
    if found.files != expected.files {
        out.push(format!("{who}: {} files, expected {}", found.files, expected.files));
    }
    if found.certs != expected.certs {
        out.push(format!("{who}: {} certificates, expected {}", found.certs, expected.certs));
    }
    if found.fingerprint_xor != expected.fingerprint_xor {
        out.push(format!("{who}: the fingerprints' XOR differs from the generator's"));
    }
    if found.not_after_sum != expected.not_after_sum {
        out.push(format!("{who}: notAfter sum {} differs from the generator's {}", found.not_after_sum, expected.not_after_sum));
    }
    if errors != 0 {
        out.push(format!("{who}: {errors} errors"));
    }
    out
}

/// Builds the Go baseline into `work` (its caches under target/bench-fleet/).
fn build_go(go: &Path, source: &Path, work: &Path, target_dir: &Path) -> Result<PathBuf> {
    let out = work.join("x509scan-go");
    go_build(go, source, &out, &target_dir.join("bench-fleet"))?;
    Ok(out)
}

// ───────────────────────────── the daemon ─────────────────────────────

struct Daemon {
    child: Child,
    port: u16,
}

impl Daemon {
    /// `certvigil run --listen 127.0.0.1:0`; readiness and the port come over a NOTIFY_SOCKET.
    fn start(dir: &Path, cfg: &Path) -> Result<Daemon> {
        let sock = dir.join("notify.sock");
        let rx = UnixDatagram::bind(&sock)?;
        rx.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut child = Command::new(CERTVIGIL)
            .arg("-c")
            .arg(cfg)
            .args(["run", "--listen", "127.0.0.1:0"])
            .env("NOTIFY_SOCKET", &sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("daemon.log"))?)
            .spawn()
            .context("starting certvigil run")?;
        let mut buf = [0u8; 1024];
        loop {
            let len = match rx.recv(&mut buf) {
                Ok(len) => len,
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!(
                        "no READY=1 from the daemon ({e}); its log: {}",
                        tail(&std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default(), 10)
                    );
                }
            };
            let m = String::from_utf8_lossy(&buf[..len]).into_owned();
            if m.starts_with("READY=1") {
                let port = m
                    .split("HTTP on 127.0.0.1:")
                    .nth(1)
                    .and_then(|p| p.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok());
                let Some(port) = port else {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("no port in the daemon's READY message {m:?}");
                };
                return Ok(Daemon { child, port });
            }
        }
    }

    /// SIGTERM, then SIGKILL after 60 s.
    fn stop(&mut self) {
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A field of /proc/PID/status, in KiB.
fn proc_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// User + system CPU time of a process so far, in seconds (/proc/PID/stat, proc(5)).
fn proc_cpu_s(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks =
        |k: usize| fields.get(k).and_then(|v| v.parse::<f64>().ok()).with_context(|| format!("no field {} in /proc/{pid}/stat", k + 3));
    Ok((ticks(11)? + ticks(12)?) / clock_ticks())
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|t: &f64| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// The machine's load average (1, 5 and 15 minutes): the cores are shared, and this says with
/// how much.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

/// Resets the process's peak RSS (VmHWM) to its current RSS (Linux 4.0+, proc(5) clear_refs).
fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}
