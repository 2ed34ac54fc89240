//! Benchmark "scan of 100,000 certificate files": generates a certificate tree, then measures
//! `certvigil scan` (cold: fresh store; warm: second run, nothing changed) against a Go
//! (`crypto/x509`) and a Python (`cryptography`) program doing the same parsing work, and prints
//! wall time, CPU time and peak RSS of each as a table, ratios, and `target/bench-scan.json`.
//! Given a PostgreSQL server, certvigil's cold and warm scans also run into a fresh PostgreSQL
//! database (`certvigil --store postgres://…/DB?sslmode=disable scan`), with the same checks,
//! and the PostgreSQL / SQLite cold ratio is reported against its target (≤ 2×).
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
//! | `CERTVIGIL_BENCH_POSTGRES`   | admin URL of a PostgreSQL server (else `CERTVIGIL_TEST_POSTGRES`, which `tests/run.sh` exports); unset: SQLite only |
//!
//! Every tool's result is checked against the generator: the number of files and certificates,
//! the XOR of all SHA-256 fingerprints and the sum of all notAfter times must match, so a tool
//! that skipped or misparsed something fails the benchmark instead of looking fast. certvigil's
//! own run counters must also say it did the work being timed: the cold scan read every
//! generated object, the warm scan read none (`objects_read == 0`, every object listed and
//! unchanged), neither reported an error. Every run is checked, not only the median one.
//! The targets (the peak RSS, the PostgreSQL / SQLite ratio) are printed as met or
//! missed, not enforced, as in the other benchmarks; failed checks fail the benchmark.
//!
//! Under `cargo test --all-targets` (which runs a `harness = false` bench without the `--bench`
//! argument that `cargo bench` passes) it makes a smoke run instead: 120 files, certvigil's cold
//! and warm scans checked against the generator and their counters — into SQLite, and into
//! PostgreSQL too when a server is given — no baselines, no setup, a second or two, so CI
//! notices when the harness and the CLI or store drift apart.
//!
//! Fixtures: `harness/tree.rs` (see benches/README.md).

#[path = "harness/mod.rs"]
mod harness;
#[path = "harness/pg.rs"]
mod pg;
#[path = "harness/tree.rs"]
mod tree;

use anyhow::{Context, Result, bail, ensure};
use harness::{cores, go_build, round, tail, timed};
use serde_json::{Value, json};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;
use tree::{Tally, generate};

/// The release binary under test, built by `cargo bench` alongside this harness.
const CERTVIGIL: &str = env!("CARGO_BIN_EXE_certvigil");
/// The peak-RSS target of the issue, in MiB.
const RSS_TARGET_MIB: f64 = 64.0;
/// The target for the cold scan into PostgreSQL (loopback): at most this many times the
/// SQLite cold scan's wall time.
const POSTGRES_TARGET: f64 = 2.0;
/// The two stores certvigil's rows are measured with.
const SQLITE: &str = "SQLite";
const POSTGRES: &str = "PostgreSQL";

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
    /// Admin URL of a PostgreSQL server: certvigil is measured on it too.
    postgres: Option<String>,
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
            postgres: pg::admin_url(),
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

    println!(
        "certvigil scan benchmark: {} files, {} run(s) per tool, {} cores, stores: {}",
        settings.files,
        settings.runs,
        cores(),
        if settings.postgres.is_some() { "SQLite and PostgreSQL" } else { "SQLite (no PostgreSQL URL given)" }
    );
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

    // Each run pair gets a fresh store: cold fills it, warm rescans the unchanged tree. With
    // PostgreSQL, each SQLite pair is followed by a PostgreSQL pair, so both see the same load.
    let server = settings.postgres.as_deref().and_then(pg::Server::find);
    let mut runs: Vec<(&str, &str, Vec<Row>)> = Vec::new();
    for r in 0..settings.runs {
        let mut stores = vec![Store::Sqlite(work.join(format!("store-{r}.db")))];
        if let Some(admin) = &settings.postgres {
            stores.push(Store::Postgres(pg::Database::create(admin, "scan")?, server));
        }
        for store in &stores {
            let cfg = write_config(&work, store, &certs_dir, r)?;
            for phase in ["cold", "warm"] {
                let row = run_certvigil(phase, &cfg, store, true)?;
                problems.extend(row.mismatches(&expected));
                match runs.iter_mut().find(|(p, s, _)| *p == phase && *s == store.name()) {
                    Some((_, _, rows)) => rows.push(row),
                    None => runs.push((phase, store.name(), vec![row])),
                }
            }
        }
    }
    rows.extend(runs.into_iter().map(|(_, _, r)| median(r)));

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

/// The `cargo test` run: generator and certvigil only (into SQLite, and into PostgreSQL when a
/// server is given), checked, nothing measured.
fn smoke() -> Result<()> {
    const FILES: usize = 120; // includes bundles (i % 50 == 0) and DER files (i % 50 == 25)
    let tmp = tempfile::Builder::new().prefix("certvigil-bench-smoke-").tempdir().context("creating the fixture directory")?;
    let (work, certs_dir) = (tmp.path(), tmp.path().join("certs"));
    let expected = generate(work, &certs_dir, FILES)?;
    let mut stores = vec![Store::Sqlite(work.join("store.db"))];
    if let Some(admin) = pg::admin_url() {
        stores.push(Store::Postgres(pg::Database::create(&admin, "scan_smoke")?, None));
    }
    let mut problems = Vec::new();
    let mut reads = Vec::new();
    for store in &stores {
        let cfg = write_config(work, store, &certs_dir, 0)?;
        for phase in ["cold", "warm"] {
            let row = run_certvigil(phase, &cfg, store, false)?;
            problems.extend(row.mismatches(&expected));
            reads.push(format!(
                "{} {phase} read {} of {}",
                store.name(),
                row.extra["run"]["objects_read"],
                row.extra["run"]["objects_seen"]
            ));
        }
    }
    ensure!(problems.is_empty(), "smoke run: {} check(s) failed:\n  {}", problems.len(), problems.join("\n  "));
    println!(
        "bench scan smoke run: ok ({FILES} files, {} certificates; {}){}; `cargo bench --bench scan` measures",
        expected.certs,
        reads.join(", "),
        if stores.len() == 1 { " (no PostgreSQL: set CERTVIGIL_TEST_POSTGRES to scan into it too)" } else { "" }
    );
    Ok(())
}

// ───────────────────────────── measuring ─────────────────────────────

/// One measured run of one tool, with what it reported.
#[derive(Debug, Clone)]
struct Row {
    tool: String,
    phase: String,
    /// certvigil's store (SQLite or PostgreSQL); none for the baselines.
    store: Option<&'static str>,
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

    /// The phase column: certvigil's rows name their store.
    fn label(&self) -> String {
        match self.store {
            Some(store) => format!("{}, {store}", self.phase),
            None => self.phase.clone(),
        }
    }

    /// Every way this row disagrees with the generator.
    fn mismatches(&self, expected: &Tally) -> Vec<String> {
        let who = format!("{} {}", self.tool, self.label());
        let mut out = expected.mismatches(&who, &self.found);
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
        store: None,
        wall_s: t.wall_s,
        cpu_s: t.cpu_s.unwrap_or(0.0),
        peak_rss_kib: t.peak_rss_kib.unwrap_or(0),
        found,
        errors: int("errors")? as u64,
        extra: json!({ "workers": v["workers"] }),
    })
}

/// Where certvigil's scans go: a SQLite file, or a fresh PostgreSQL database (with the server,
/// when it runs here, for its CPU time).
enum Store {
    Sqlite(PathBuf),
    Postgres(pg::Database, Option<pg::Server>),
}

impl Store {
    fn name(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => SQLITE,
            Store::Postgres(..) => POSTGRES,
        }
    }

    /// The digest of the current certificates in the store, and the objects holding any.
    fn tally(&self) -> Result<Tally> {
        let path = match self {
            Store::Sqlite(path) => path,
            Store::Postgres(db, _) => return db.tally(&["bench"]),
        };
        let db = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening the store {}", path.display()))?;
        let mut found = Tally::default();
        let mut stmt =
            db.prepare("SELECT fingerprint, not_after FROM certificates WHERE gone_since IS NULL").context("querying the store")?;
        let mut rows = stmt.query([]).context("querying the store")?;
        while let Some(r) = rows.next().context("reading the store")? {
            found.add_fingerprint(&r.get::<_, String>(0)?, r.get(1)?)?;
        }
        found.files = db
            .query_row("SELECT count(*) FROM objects WHERE source = 'bench' AND certs > 0", [], |r| r.get::<_, i64>(0))
            .context("counting stored objects")? as u64;
        Ok(found)
    }
}

/// The configuration the issue names: one store, one files source over the tree. For
/// PostgreSQL the store is also named on the command line (`--store`), as a person would.
fn write_config(work: &Path, store: &Store, certs_dir: &Path, run: usize) -> Result<PathBuf> {
    let store_yaml = match store {
        Store::Sqlite(path) => format!("store:\n  path: {}\n", serde_json::to_string(&path.to_string_lossy())?),
        Store::Postgres(db, _) => db.store_yaml()?,
    };
    let yaml = format!(
        "{store_yaml}sources:\n  - name: bench\n    kind: files\n    paths: [{}]\n",
        serde_json::to_string(&certs_dir.to_string_lossy())?,
    );
    let path = work.join(format!("certvigil-{run}-{}.yaml", store.name().to_lowercase()));
    std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Runs `certvigil -c cfg scan` (with `--store URL` for PostgreSQL), then reads what it stored
/// (the current certificates' digest) straight from the store. For PostgreSQL on this machine,
/// the server's CPU time over the run goes into the row's `extra.server_cpu_s`.
fn run_certvigil(phase: &str, cfg: &Path, store: &Store, measure_rss: bool) -> Result<Row> {
    let what = format!("certvigil scan ({phase}, {})", store.name());
    let mut args: Vec<OsString> = vec!["-c".into(), cfg.into()];
    let mut env: Vec<(&str, String)> = Vec::new();
    let mut server = None;
    if let Store::Postgres(db, s) = store {
        args.extend(["--store".into(), db.url.clone().into()]);
        env = db.env();
        // Nothing is kept beside a PostgreSQL store, but a state directory is still chosen.
        env.push(("STATE_DIRECTORY", cfg.parent().unwrap_or(cfg).to_string_lossy().into_owned()));
        server = s.as_ref();
    }
    args.extend(["scan".into(), "--output".into(), "json".into()]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server_before = server.and_then(pg::Server::cpu_s);
    let t = timed(Path::new(CERTVIGIL), &args, &env, &what, measure_rss, None)?;
    let server_cpu_s = server.and_then(pg::Server::cpu_s).zip(server_before).map(|(after, before)| round(after - before, 2));
    let summary: Value = serde_json::from_str(&t.stdout)
        .with_context(|| format!("{what}: its --output json summary did not parse: {:?}", tail(&t.stdout, 5)))?;
    let run = &summary["run"];
    let found = store.tally()?;
    // A summary without the counter fails run_counter_mismatches; it is not read as zero here.
    let errors = run["errors"].as_u64().unwrap_or(0);
    let label = format!("{phase}, {}", store.name());
    println!("  {:<9} {label:<22} {:>8.2} s", "certvigil", t.wall_s);
    Ok(Row {
        tool: "certvigil".into(),
        phase: phase.into(),
        store: Some(store.name()),
        wall_s: t.wall_s,
        cpu_s: t.cpu_s.unwrap_or(0.0),
        peak_rss_kib: t.peak_rss_kib.unwrap_or(0),
        found,
        errors,
        extra: json!({ "run": run, "sources": summary["sources"], "errors": summary["errors"], "server_cpu_s": server_cpu_s }),
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

    /// certvigil's row of `phase` on `store`.
    fn certvigil(&self, phase: &str, store: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.tool == "certvigil" && r.phase == phase && r.store == Some(store))
    }

    /// The wall-time ratios the issue asks for, by name; a ratio whose rows are missing is left
    /// out. certvigil against the baselines is its SQLite run (the default store).
    fn ratios(&self) -> Vec<(&'static str, f64)> {
        let ratio = |a: Option<&Row>, b: Option<&Row>| a.zip(b).map(|(a, b)| a.wall_s / b.wall_s);
        let cold = self.certvigil("cold", SQLITE);
        let mut out = Vec::new();
        for (name, value) in [
            ("certvigil cold / Go parallel", ratio(cold, self.row("go", "parallel"))),
            ("certvigil cold / Go 1 thread", ratio(cold, self.row("go", "1 thread"))),
            ("certvigil cold / Python", ratio(cold, self.row("python", ""))),
            ("certvigil warm / certvigil cold", ratio(self.certvigil("warm", SQLITE), cold)),
            ("certvigil cold, PostgreSQL / SQLite", ratio(self.certvigil("cold", POSTGRES), cold)),
            ("certvigil warm, PostgreSQL / SQLite", ratio(self.certvigil("warm", POSTGRES), self.certvigil("warm", SQLITE))),
        ] {
            if let Some(v) = value {
                out.push((name, v));
            }
        }
        out
    }

    /// The PostgreSQL target: (figure, value, met), when PostgreSQL was measured.
    fn postgres_target(&self) -> Option<(&'static str, f64, bool)> {
        let (pg, sqlite) = (self.certvigil("cold", POSTGRES)?, self.certvigil("cold", SQLITE)?);
        let v = pg.wall_s / sqlite.wall_s;
        Some(("certvigil cold, PostgreSQL / SQLite", v, v <= POSTGRES_TARGET))
    }

    fn print(&self) {
        println!();
        println!("{:<10} {:<22} {:>9} {:>9} {:>14} {:>8}", "tool", "phase", "wall s", "cpu s", "peak RSS MiB", "certs");
        for r in self.rows {
            println!("{:<10} {:<22} {:>9.2} {:>9.2} {:>14.1} {:>8}", r.tool, r.label(), r.wall_s, r.cpu_s, r.peak_rss_mib(), r.found.certs);
        }
        println!();
        let target = self.postgres_target();
        for (name, v) in self.ratios() {
            match target {
                Some((figure, _, met)) if figure == name => {
                    println!("{name:<38} {v:>7.2}x  (target ≤ {POSTGRES_TARGET}x: {})", if met { "met" } else { "MISSED" })
                }
                _ => println!("{name:<38} {v:>7.2}x"),
            }
        }
        for r in self.rows.iter().filter(|r| r.store == Some(POSTGRES)) {
            if let Some(server) = r.extra["server_cpu_s"].as_f64() {
                println!(
                    "PostgreSQL server CPU during the {} scan: {server:.2} s (certvigil's own: {:.2} s; both on the same {} cores)",
                    r.phase,
                    r.cpu_s,
                    cores()
                );
            }
        }
        for r in self.rows.iter().filter(|r| r.tool == "certvigil") {
            let verdict = if r.peak_rss_mib() <= RSS_TARGET_MIB { "within" } else { "OVER" };
            println!("certvigil {:<16} peak RSS / 64 MiB {:>8.2}  ({verdict} target)", r.label(), r.peak_rss_mib() / RSS_TARGET_MIB);
        }
        for r in self.rows.iter().filter(|r| r.tool == "certvigil") {
            let run = &r.extra["run"];
            println!(
                "certvigil {:<16} read {} of {} objects (checked: cold reads all, warm none)",
                r.label(),
                run["objects_read"],
                run["objects_seen"]
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
                    "store": r.store,
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
            .map(|r| (format!("certvigil {} peak RSS / 64 MiB", r.label()), json!(round(r.peak_rss_mib() / RSS_TARGET_MIB, 3))))
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
            "postgres_target": self.postgres_target().map(|(figure, v, met)| json!({
                "figure": figure, "value": round(v, 3), "target_max": POSTGRES_TARGET, "met": met,
            })),
            "checks_failed": self.problems,
        })
    }
}
