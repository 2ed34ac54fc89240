//! Benchmark "several daemons on one PostgreSQL store": 30 sources (folders) of generated
//! certificate files, each a tree of the `scan` benchmark's shape, scanned in full by one daemon
//! and by three daemons sharing one PostgreSQL database; then the leader is killed (`kill -9`)
//! and the time until another daemon leads is measured. Prints a table, the three-daemon / one-
//! daemon ratio against its target (< 1), the failover times, and `target/bench-cluster.json`.
//!
//! Each daemon is `certvigil run --listen 127.0.0.1:0` with its own `daemon.node_name`,
//! `daemon.lease: 2s`, the 30 `files` sources and a scan job that never fires by itself. The
//! leader is the daemon whose `/readyz` says `cluster.is_leader`; the scan is started with
//! `POST /api/v1/jobs/scan/run` on it, which queues one work item per source that every daemon
//! (the leader too) claims in turn, and is over when `GET /api/v1/jobs/scan/runs` shows the run
//! finished. The figures are the run's own `duration_ms` (the leader's clock, from the job's
//! start to its last item's end) and the harness's wall time from the POST to the answer that
//! showed it finished; every measured scan is cold (a fresh database), and one and three daemons
//! take turns run by run, so both meet the same machine.
//!
//! A `harness = false` bench target: `cargo bench --bench cluster` (release; cargo builds the
//! `certvigil` binary too). It needs a PostgreSQL server (15 or newer) and its admin URL:
//!
//! | variable                            | meaning                                                   |
//! |-------------------------------------|-----------------------------------------------------------|
//! | `CERTVIGIL_BENCH_POSTGRES`          | admin URL (else `CERTVIGIL_TEST_POSTGRES`); required      |
//! | `CERTVIGIL_BENCH_SOURCES`           | sources (30)                                              |
//! | `CERTVIGIL_BENCH_FILES_PER_SOURCE`  | certificate files in each (3000)                          |
//! | `CERTVIGIL_BENCH_DAEMONS`           | daemons of the shared case (3)                            |
//! | `CERTVIGIL_BENCH_RUNS`              | scans of each case; medians are reported (3)             |
//! | `CERTVIGIL_BENCH_FAILOVERS`         | leader kills after each shared scan (3)                   |
//! | `CERTVIGIL_BENCH_KEEP`              | `1` keeps the fixtures, the daemons' logs and databases   |
//!
//! Everything is checked, every run: the job run `ok` and run by the leader; exactly one work
//! item per source, each claimed once (`attempts` 1) and `ok`; with several daemons, items
//! taken by more than one of them; per source, one scan run whose counters say it listed and
//! read every generated file, found every certificate new, none gone, no error; the store's
//! current certificates equal to the generator's (count, XOR of the SHA-256 fingerprints, sum of
//! notAfter); after each kill, a different daemon leads and the lease's fencing token grew by
//! exactly one. A failed check fails the benchmark; the targets (three daemons faster than
//! one, failover within two lease periods) are printed as met or MISSED, not enforced.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it makes a smoke run instead: 30 ×
//! 5 files, one scan by three daemons, one failover, every check above, nothing measured (the
//! one-daemon case runs the same code with one node). It needs the PostgreSQL server too (`tests/run.sh` starts one and exports
//! `CERTVIGIL_TEST_POSTGRES`); without it it fails, saying how to get one, as the store's tests do.

#[path = "harness/daemon.rs"]
mod daemon;
#[path = "harness/mod.rs"]
mod harness;
#[allow(dead_code)]
#[path = "fleet/net.rs"]
mod net;
#[path = "harness/pg.rs"]
mod pg;
#[path = "harness/tree.rs"]
mod tree;

use anyhow::{Context, Result, bail, ensure};
use daemon::Daemon;
use harness::{cores, round};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};
use tree::{Layout, Tally, Tree};

/// The release binary under test, built by `cargo bench` alongside this harness.
const CERTVIGIL: &str = env!("CARGO_BIN_EXE_certvigil");
/// `daemon.lease` of every daemon.
const LEASE: Duration = Duration::from_secs(2);
/// The longest a full scan may take before the harness gives up.
const SCAN_DEADLINE: Duration = Duration::from_secs(1800);
/// The longest the harness waits for a leader (at start, and after a kill).
const LEADER_DEADLINE: Duration = Duration::from_secs(30);
const TOKEN: &str = "cluster-bench-token-0123456789abcdef";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench cluster: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Settings read from the environment (smaller defaults for the smoke run).
struct Settings {
    smoke: bool,
    sources: usize,
    per_source: usize,
    daemons: usize,
    runs: usize,
    failovers: usize,
    keep: bool,
    admin: String,
}

impl Settings {
    fn from_env(smoke: bool) -> Result<Settings> {
        let number = |name: &str, full: usize, small: usize| -> Result<usize> {
            if smoke {
                return Ok(small);
            }
            match std::env::var(name) {
                Ok(v) => v.trim().replace('_', "").parse().with_context(|| format!("{name}={v:?} is not a whole number")),
                Err(_) => Ok(full),
            }
        };
        let admin = pg::admin_url().context(
            "no PostgreSQL server: set CERTVIGIL_BENCH_POSTGRES (or CERTVIGIL_TEST_POSTGRES) to an admin URL; \
             `bash tests/postgres.sh start DIR` starts a throwaway cluster and prints one (tests/run.sh does this for the tests)",
        )?;
        let s = Settings {
            smoke,
            sources: number("CERTVIGIL_BENCH_SOURCES", 30, 30)?,
            per_source: number("CERTVIGIL_BENCH_FILES_PER_SOURCE", 3000, 5)?,
            daemons: number("CERTVIGIL_BENCH_DAEMONS", 3, 3)?,
            runs: number("CERTVIGIL_BENCH_RUNS", 3, 1)?,
            failovers: number("CERTVIGIL_BENCH_FAILOVERS", 3, 1)?,
            keep: !smoke && std::env::var("CERTVIGIL_BENCH_KEEP").is_ok_and(|v| v == "1" || v == "true"),
            admin,
        };
        ensure!(s.sources >= 1 && s.per_source >= 1, "at least one source of at least one file");
        ensure!(s.daemons >= 2, "CERTVIGIL_BENCH_DAEMONS must be at least 2 (the shared case)");
        ensure!(s.runs >= 1, "CERTVIGIL_BENCH_RUNS must be at least 1");
        Ok(s)
    }
}

fn run() -> Result<()> {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let settings = Settings::from_env(smoke)?;
    let started = Instant::now();
    let tmp = tempfile::Builder::new().prefix("certvigil-bench-cluster-").tempdir().context("creating the fixture directory")?;
    let work = tmp.path().to_path_buf();

    let trees: Vec<Tree> = (0..settings.sources)
        .map(|k| Tree {
            root: work.join("fleet").join(source_name(k)),
            first: k * settings.per_source,
            files: settings.per_source,
            layout: Layout::for_files(settings.per_source),
        })
        .collect();
    let generated = Instant::now();
    let expected = tree::generate_trees(&work, &trees)?;
    let generation_s = generated.elapsed().as_secs_f64();
    let mut total = Tally::default();
    for t in &expected {
        total.merge(t);
    }
    std::fs::write(work.join("token"), TOKEN)?;
    let server = pg::Server::find(&settings.admin);
    if !smoke {
        println!(
            "certvigil cluster benchmark: {} sources × {} files ({} files, {} certificates, {} MiB, generated in {:.1} s), \
             lease {} s, {} run(s) of each case, {} failover(s) per shared run, {} cores (load average {})",
            settings.sources,
            settings.per_source,
            total.files,
            total.certs,
            total.bytes >> 20,
            generation_s,
            LEASE.as_secs(),
            settings.runs,
            settings.failovers,
            cores(),
            load_average()
        );
        println!(
            "PostgreSQL: {} ({})",
            server_version(&settings.admin).unwrap_or_else(|e| format!("version unknown: {e:#}")),
            if server.is_some() {
                "on this machine: its CPU time is measured"
            } else {
                "not on this machine: its CPU time is not measured"
            }
        );
    }

    let mut bench = Bench {
        settings: &settings,
        work: &work,
        expected: &expected,
        total: &total,
        server,
        scans: Vec::new(),
        failovers: Vec::new(),
        problems: Vec::new(),
        next_node: 0,
    };
    for r in 0..settings.runs {
        // One and several daemons take turns going first; the smoke run checks the shared case.
        let cases = match (smoke, r % 2) {
            (true, _) => vec![settings.daemons],
            (false, 0) => vec![1, settings.daemons],
            (false, _) => vec![settings.daemons, 1],
        };
        for daemons in cases {
            bench.scan_run(daemons, r)?;
        }
    }

    if smoke {
        ensure!(bench.problems.is_empty(), "smoke run: {} check(s) failed:\n  {}", bench.problems.len(), bench.problems.join("\n  "));
        let shared = bench.scans.iter().find(|s| s.daemons > 1).map(|s| by_node_line(&s.by_node)).unwrap_or_default();
        println!(
            "bench cluster smoke run: ok ({} sources × {} files scanned by {} daemons ({shared}), each source once, \
             {} failover(s) to another daemon, token +1 each; {:.1} s); `cargo bench --bench cluster` measures",
            settings.sources,
            settings.per_source,
            settings.daemons,
            bench.failovers.len(),
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }

    let report = bench.report();
    bench.print(&report);
    let target_dir =
        Path::new(CERTVIGIL).parent().and_then(Path::parent).context("CARGO_BIN_EXE_certvigil has no target directory")?.to_path_buf();
    let json_path = target_dir.join("bench-cluster.json");
    let json = bench.json(&report, generation_s);
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)? + "\n").with_context(|| format!("writing {}", json_path.display()))?;
    println!("\nwrote {} ({:.0} s in all)", json_path.display(), started.elapsed().as_secs_f64());
    let problems = std::mem::take(&mut bench.problems);
    if settings.keep {
        println!("kept fixtures and the daemons' logs in {}", tmp.keep().display());
    }
    if !problems.is_empty() {
        bail!("{} check(s) failed:\n  {}", problems.len(), problems.join("\n  "));
    }
    Ok(())
}

fn source_name(k: usize) -> String {
    format!("s{k:02}")
}

/// One full scan, measured.
struct Scan {
    daemons: usize,
    run: usize,
    /// From the POST to the answer that showed the run finished.
    wall_s: f64,
    /// The job run's own duration (the leader's clock).
    job_s: f64,
    /// CPU seconds of all the daemons, and of the PostgreSQL server, over the scan.
    daemons_cpu_s: f64,
    server_cpu_s: Option<f64>,
    /// Sources scanned by each daemon.
    by_node: BTreeMap<String, usize>,
}

/// One leader killed, and the time until another daemon's /readyz said it leads.
struct Failover {
    run: usize,
    seconds: f64,
    from: String,
    to: String,
}

struct Bench<'a> {
    settings: &'a Settings,
    work: &'a Path,
    /// What each source holds, and all of them.
    expected: &'a [Tally],
    total: &'a Tally,
    server: Option<pg::Server>,
    scans: Vec<Scan>,
    failovers: Vec<Failover>,
    problems: Vec<String>,
    /// Daemons started so far (each gets a new node name).
    next_node: usize,
}

impl Bench<'_> {
    /// A fresh database, `daemons` daemons on it, one full scan through the leader, its checks,
    /// and with several daemons the failovers.
    fn scan_run(&mut self, daemons: usize, run: usize) -> Result<()> {
        let mut db = pg::Database::create(&self.settings.admin, &format!("cluster_{daemons}"))?;
        if self.settings.keep {
            db.keep();
        }
        let mut nodes = Vec::new();
        for _ in 0..daemons {
            nodes.push(self.start_node(&db)?);
        }
        let leader = one_leader(&nodes, LEADER_DEADLINE)?;
        let cpu_before: f64 = nodes.iter().map(Node::cpu_s).sum();
        let server_before = self.server.as_ref().and_then(pg::Server::cpu_s);
        let pids: Vec<(String, u32)> = nodes.iter().map(|n| (n.name.clone(), n.daemon.child.id())).collect();
        let mut all_running = || -> Result<()> {
            for (name, pid) in &pids {
                ensure!(!exited(*pid), "daemon {name} exited during the scan");
            }
            Ok(())
        };
        let (job, wall_s) = nodes[leader].daemon.run_job("scan", TOKEN, Duration::from_millis(50), SCAN_DEADLINE, &mut all_running)?;
        let daemons_cpu_s = nodes.iter().map(Node::cpu_s).sum::<f64>() - cpu_before;
        let server_cpu_s = self.server.as_ref().and_then(pg::Server::cpu_s).zip(server_before).map(|(a, b)| a - b);
        let who = format!("run {}, {daemons} daemon(s)", run + 1);
        if job["status"] != "ok" {
            self.problems.push(format!("{who}: the scan job ended {} ({})", job["status"], job["error"]));
        }
        if job["node"].as_str() != Some(nodes[leader].name.as_str()) {
            self.problems.push(format!("{who}: the job ran on {}, not on the leader {}", job["node"], nodes[leader].name));
        }
        let job_s = job["duration_ms"].as_f64().map(|ms| ms / 1000.0);
        if job_s.is_none() {
            self.problems.push(format!("{who}: the job run has no duration_ms: {job}"));
        }
        let id = job["id"].as_i64().with_context(|| format!("no id in the job run {job}"))?;
        let by_node = self.check_scan(&who, &db, id, daemons)?;
        if !self.settings.smoke {
            println!(
                "  {who}: {:.2} s (job {:.2} s), daemons' CPU {daemons_cpu_s:.1} s{}; {}",
                wall_s,
                job_s.unwrap_or(f64::NAN),
                server_cpu_s.map(|s| format!(", server's {s:.1} s")).unwrap_or_default(),
                by_node_line(&by_node)
            );
        }
        self.scans.push(Scan { daemons, run, wall_s, job_s: job_s.unwrap_or(f64::NAN), daemons_cpu_s, server_cpu_s, by_node });
        if daemons > 1 {
            for _ in 0..self.settings.failovers {
                self.failover(&who, run, &db, &mut nodes)?;
            }
        }
        for n in &mut nodes {
            n.daemon.stop(Duration::from_secs(30));
        }
        if self.settings.keep {
            println!("  kept the database {}", db.name);
        }
        Ok(())
    }

    fn start_node(&mut self, db: &pg::Database) -> Result<Node> {
        self.next_node += 1;
        let name = format!("n{}", self.next_node);
        let dir = self.work.join("daemons").join(&name);
        std::fs::create_dir_all(&dir)?;
        let mut cfg = db.store_yaml()?;
        cfg.push_str(&format!(
            "daemon:\n  token: {}\n  node_name: {name}\n  lease: {}s\nsources:\n",
            serde_json::to_string(&format!("${{file:{}}}", self.work.join("token").display()))?,
            LEASE.as_secs()
        ));
        for k in 0..self.settings.sources {
            let root = self.work.join("fleet").join(source_name(k));
            cfg.push_str(&format!(
                "  - name: {}\n    kind: files\n    paths: [{}]\n",
                source_name(k),
                serde_json::to_string(&root.to_string_lossy())?
            ));
        }
        cfg.push_str("jobs:\n  - {name: scan, kind: scan, schedule: '0 0 1 1 *', catch_up: skip}\n");
        let path = dir.join("certvigil.yaml");
        std::fs::write(&path, cfg)?;
        Node::start(&name, &dir, &path, &db.env())
    }

    /// The scan's work items, scan runs and the store, against the generator. Returns the
    /// sources scanned by each daemon.
    fn check_scan(&mut self, who: &str, db: &pg::Database, run_id: i64, daemons: usize) -> Result<BTreeMap<String, usize>> {
        let mut c = db.client()?;
        let mut by_node: BTreeMap<String, usize> = BTreeMap::new();
        let mut keys: BTreeMap<String, usize> = BTreeMap::new();
        for row in c.query(
            "SELECT key, COALESCE(status, '-'), attempts, COALESCE(claimed_by, '-'), finished_at IS NOT NULL FROM work_items WHERE run_id = $1",
            &[&run_id],
        )? {
            let (key, status, attempts, node, finished): (String, String, i64, String, bool) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?, row.try_get(4)?);
            if status != "ok" || attempts != 1 || !finished {
                self.problems.push(format!("{who}: work item {key}: status {status}, {attempts} attempt(s), finished {finished}; expected ok, 1, true"));
            }
            *keys.entry(key).or_default() += 1;
            *by_node.entry(node).or_default() += 1;
        }
        let want: Vec<String> = (0..self.settings.sources).map(source_name).collect();
        if keys.keys().cloned().collect::<Vec<_>>() != want || keys.values().any(|&n| n != 1) {
            self.problems.push(format!("{who}: work items by source {keys:?}, expected one for each of the {} sources", want.len()));
        }
        if daemons > 1 && by_node.len() < 2 {
            self.problems.push(format!("{who}: every source was scanned by one daemon ({by_node:?}): nothing was shared"));
        }
        // One scan run per source, its counters those of a cold scan of that source.
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for row in
            c.query("SELECT sources, objects_seen, objects_read, certs_seen, certs_new, certs_gone, errors, status FROM scan_runs", &[])?
        {
            let sources: Vec<String> = serde_json::from_str(row.try_get(0)?).context("scan_runs.sources")?;
            let [source] = sources.as_slice() else {
                self.problems.push(format!("{who}: a scan run of {sources:?}, expected one source per run"));
                continue;
            };
            *seen.entry(source.clone()).or_default() += 1;
            let Some(k) = want.iter().position(|w| w == source) else {
                self.problems.push(format!("{who}: a scan run of an unknown source {source}"));
                continue;
            };
            let (files, certs) = (self.expected[k].files as i64, self.expected[k].certs as i64);
            let got: Vec<i64> = (1..7).map(|i| row.try_get(i)).collect::<Result<_, _>>()?;
            let status: String = row.try_get(7)?;
            if got != [files, files, certs, certs, 0, 0] || status != "ok" {
                self.problems.push(format!(
                    "{who}: the scan run of {source} counted (objects seen, read, certificates seen, new, gone, errors) {got:?} \
                     with status {status}; expected {:?}, ok",
                    [files, files, certs, certs, 0, 0]
                ));
            }
        }
        if seen.len() != want.len() || seen.values().any(|&n| n != 1) {
            self.problems.push(format!("{who}: scan runs by source {seen:?}, expected one for each of the {} sources", want.len()));
        }
        let found = db.tally(&[])?;
        self.problems.extend(self.total.mismatches(&format!("{who}: the store"), &found));
        Ok(by_node)
    }

    /// Kills the leader (SIGKILL) and times how long until another daemon's /readyz says it
    /// leads; then starts a new daemon in its place.
    fn failover(&mut self, who: &str, run: usize, db: &pg::Database, nodes: &mut Vec<Node>) -> Result<()> {
        let leader = one_leader(nodes, LEADER_DEADLINE)?;
        let token_before = lease(db)?.1;
        let from = nodes[leader].name.clone();
        // Killed at spread-out points of the lease's renewal cycle (the golden-ratio sequence
        // over one lease), not always just after the previous failover.
        let phase = (self.failovers.len() as f64 * 0.618_034).fract();
        std::thread::sleep(LEASE.mul_f64(phase));
        let t0 = Instant::now();
        nodes[leader].daemon.kill();
        let (seconds, to) = loop {
            if let Some(n) = nodes.iter().find(|n| n.alive() && n.leads()) {
                break (t0.elapsed().as_secs_f64(), n.name.clone());
            }
            ensure!(
                t0.elapsed() < LEADER_DEADLINE,
                "{who}: no daemon leads {} s after the leader {from} was killed",
                LEADER_DEADLINE.as_secs()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let (holder, token) = lease(db)?;
        if holder != to || token != token_before + 1 {
            self.problems.push(format!(
                "{who}: after killing {from}, the lease is {holder}'s with token {token}; expected {to}'s with token {}",
                token_before + 1
            ));
        }
        if !self.settings.smoke {
            println!("  {who}: killed the leader {from}; {to} leads after {seconds:.2} s");
        }
        self.failovers.push(Failover { run, seconds, from, to });
        nodes.remove(leader);
        let replacement = self.start_node(db)?;
        nodes.push(replacement);
        Ok(())
    }

    fn report(&self) -> Report {
        let median_of =
            |daemons: usize, f: &dyn Fn(&Scan) -> f64| median(self.scans.iter().filter(|s| s.daemons == daemons).map(f).collect());
        let shared = self.settings.daemons;
        let one_wall = median_of(1, &|s| s.wall_s);
        let many_wall = median_of(shared, &|s| s.wall_s);
        let one_job = median_of(1, &|s| s.job_s);
        let many_job = median_of(shared, &|s| s.job_s);
        let failover = median(self.failovers.iter().map(|f| f.seconds).collect());
        Report { one_wall, many_wall, one_job, many_job, ratio: many_job / one_job, failover }
    }

    fn print(&self, r: &Report) {
        let shared = self.settings.daemons;
        println!(
            "\n{:<8} {:>4} {:>12} {:>9} {:>14} {:>13} {:>10}  sources by daemon",
            "daemons", "run", "job run s", "wall s", "daemons cpu s", "server cpu s", "cpu/core"
        );
        for s in &self.scans {
            let cpu = s.daemons_cpu_s + s.server_cpu_s.unwrap_or(0.0);
            println!(
                "{:<8} {:>4} {:>12.2} {:>9.2} {:>14.1} {:>13} {:>9.0}%  {}",
                s.daemons,
                s.run + 1,
                s.job_s,
                s.wall_s,
                s.daemons_cpu_s,
                s.server_cpu_s.map_or_else(|| "-".into(), |v| format!("{v:.1}")),
                100.0 * cpu / (s.job_s * cores() as f64),
                by_node_line(&s.by_node)
            );
        }
        println!();
        let line = |figure: String, value: String, rest: String| println!("{figure:<46} {value:>8}  {rest}");
        line("full scan, one daemon (median job run)".into(), format!("{:.2} s", r.one_job), format!("(wall {:.2} s)", r.one_wall));
        line(
            format!("full scan, {shared} daemons (median job run)"),
            format!("{:.2} s", r.many_job),
            format!("(wall {:.2} s)", r.many_wall),
        );
        line(
            format!("{shared} daemons / one daemon"),
            format!("{:.2}x", r.ratio),
            format!("(target < 1: {})", if r.ratio < 1.0 { "met" } else { "MISSED" }),
        );
        let mut times: Vec<f64> = self.failovers.iter().map(|f| f.seconds).collect();
        times.sort_by(f64::total_cmp);
        if let (Some(min), Some(max)) = (times.first(), times.last()) {
            let lease = LEASE.as_secs_f64();
            line(
                format!("leader failover after kill -9 (lease {lease} s)"),
                format!("{:.2} s", r.failover),
                format!(
                    "median of {}, {min:.2}–{max:.2} s (target ≤ 2 leases, {} s: {})",
                    times.len(),
                    2.0 * lease,
                    if *max <= 2.0 * lease { "met" } else { "MISSED" }
                ),
            );
        }
        println!(
            "\nWhat the figures mean: the daemons and the PostgreSQL server share this machine's {} cores. A scan is CPU work \
             (parsing in the daemons, inserts in the server), so {shared} daemons on one host can beat one only by using \
             what one leaves idle while it waits on its store's round trips; the speed-up is bounded by the cores \
             (cpu/core = the daemons' and the server's CPU over job run × cores), and on separate hosts each daemon \
             would bring its own. A killed leader is replaced when its lease has run out (at most one lease after its \
             last renewal, renewed every third of a lease) at another daemon's next try (every third of a lease): \
             between 2/3 and 4/3 of a lease after the kill.",
            cores()
        );
    }

    fn json(&self, r: &Report, generation_s: f64) -> Value {
        let measured_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        json!({
            "benchmark": "cluster",
            "measured_at_unix": measured_at,
            "cores": cores(),
            "load_average_at_end": load_average(),
            "lease_s": LEASE.as_secs_f64(),
            "fixtures": {
                "sources": self.settings.sources,
                "files_per_source": self.settings.per_source,
                "files": self.total.files,
                "certs": self.total.certs,
                "bytes": self.total.bytes,
                "generation_s": round(generation_s, 2),
            },
            "scans": self.scans.iter().map(|s| json!({
                "daemons": s.daemons, "run": s.run + 1, "job_s": round(s.job_s, 3), "wall_s": round(s.wall_s, 3),
                "daemons_cpu_s": round(s.daemons_cpu_s, 2), "server_cpu_s": s.server_cpu_s.map(|v| round(v, 2)), "by_node": s.by_node,
            })).collect::<Vec<_>>(),
            "failovers": self.failovers.iter().map(|f| json!({ "run": f.run + 1, "seconds": round(f.seconds, 3), "from": f.from, "to": f.to })).collect::<Vec<_>>(),
            "median": {
                "one_daemon_job_s": round(r.one_job, 3), "one_daemon_wall_s": round(r.one_wall, 3),
                "shared_job_s": round(r.many_job, 3), "shared_wall_s": round(r.many_wall, 3),
                "failover_s": round(r.failover, 3),
            },
            "targets": {
                "shared_over_one_daemon": { "value": round(r.ratio, 3), "target": "< 1", "met": r.ratio < 1.0 },
                "failover_max_s": { "value": self.failovers.iter().map(|f| f.seconds).fold(0.0, f64::max), "target": 2.0 * LEASE.as_secs_f64(),
                                    "met": self.failovers.iter().all(|f| f.seconds <= 2.0 * LEASE.as_secs_f64()) },
            },
            "checks_failed": self.problems,
        })
    }
}

/// The medians of the report (scans: the job run's duration, which is the daemons' own figure).
struct Report {
    one_wall: f64,
    many_wall: f64,
    one_job: f64,
    many_job: f64,
    /// Several daemons' median job run over one daemon's.
    ratio: f64,
    failover: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 }
}

fn by_node_line(by_node: &BTreeMap<String, usize>) -> String {
    by_node.iter().map(|(n, c)| format!("{n}: {c}")).collect::<Vec<_>>().join(", ")
}

/// The leader lease's holder and fencing token, as the store has them.
fn lease(db: &pg::Database) -> Result<(String, i64)> {
    let row = db.client()?.query_one("SELECT holder, token FROM leases WHERE name = 'leader'", &[]).context("reading the leader lease")?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// Waits until exactly one of the running `nodes` says it leads; its index.
fn one_leader(nodes: &[Node], limit: Duration) -> Result<usize> {
    let t0 = Instant::now();
    loop {
        let leading: Vec<usize> = (0..nodes.len()).filter(|&i| nodes[i].alive() && nodes[i].leads()).collect();
        ensure!(leading.len() <= 1, "two daemons say they lead: {:?}", leading.iter().map(|&i| &nodes[i].name).collect::<Vec<_>>());
        if let [one] = leading.as_slice() {
            return Ok(*one);
        }
        ensure!(t0.elapsed() < limit, "no daemon leads after {} s", limit.as_secs());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn server_version(admin: &str) -> Result<String> {
    let row = postgres::Client::connect(admin, postgres::NoTls)?.query_one("SHOW server_version", &[])?;
    Ok(format!("PostgreSQL {}", row.try_get::<_, String>(0)?))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

// ───────────────────────────── the daemons ─────────────────────────────

/// One daemon of the cluster, by its node name.
struct Node {
    name: String,
    daemon: Daemon,
}

impl Node {
    /// `certvigil -c cfg run --listen 127.0.0.1:0`, its state directory and log in `dir`.
    fn start(name: &str, dir: &Path, cfg: &Path, env: &[(&'static str, String)]) -> Result<Node> {
        let mut cmd = Command::new(CERTVIGIL);
        cmd.arg("-c").arg(cfg).args(["run", "--listen", "127.0.0.1:0"]).env("STATE_DIRECTORY", dir).envs(env.iter().map(|(k, v)| (k, v)));
        let daemon = Daemon::start(cmd, dir).with_context(|| format!("daemon {name}"))?;
        Ok(Node { name: name.to_string(), daemon })
    }

    fn alive(&self) -> bool {
        self.daemon.running()
    }

    /// `/readyz` says this daemon leads.
    fn leads(&self) -> bool {
        net::http(self.daemon.port, "GET", "/readyz", None)
            .ok()
            .and_then(|(_, body)| serde_json::from_slice::<Value>(&body).ok())
            .is_some_and(|v| v["cluster"]["is_leader"] == true)
    }

    fn cpu_s(&self) -> f64 {
        pg::process_cpu_s(self.daemon.child.id()).unwrap_or(0.0)
    }
}

/// The process has ended (gone, or a zombie not yet reaped).
fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(true)
}
