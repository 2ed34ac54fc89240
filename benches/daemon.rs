//! Benchmark "the daemon with 100,000 certificates": fills a store by scanning generated
//! certificate files, starts `certvigil run` (release build) on it with no job due, and
//! measures its idle RSS and the `/metrics` scrape (wall time, size, series), then the RSS after
//! scraping. The baseline, measured in the same run on the same store, is a Python program
//! (standard library only) that reads the same rows and renders the same exposition text: what
//! a straightforward exporter costs.
//!
//! `cargo bench --bench daemon` (release). Settings: `CERTVIGIL_BENCH_N` certificates (default
//! 100000), `CERTVIGIL_BENCH_RUNS` scrapes (default 5; the median is reported). Results also go
//! to `target/bench-daemon.json`.
//!
//! What was served is checked before anything is reported, and a difference fails the run:
//! every per-certificate series (`x509_cert_not_after`, `_not_before`, `_expired`) of the last
//! scrape against the generator (serial number, dates, expiry at the scrape's time) and against
//! the baseline's rendering of the same store rows (the same label sets with the same values),
//! and the inventory totals.
//!
//! Then the status page: the overview, inventory pages (first, last, filtered, searched) and a
//! certificate page, each checked, with the API's page of 100 as the baseline.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it makes a smoke run: 200
//! certificates, one scrape, the same checks (the baseline runs once, with the system python3).

use anyhow::{Context, Result, bail, ensure};
use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair, SerialNumber};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const CERTVIGIL: &str = env!("CARGO_BIN_EXE_certvigil");
/// Targets of the issue.
const IDLE_RSS_TARGET_MIB: f64 = 30.0;
const SCRAPE_TARGET_S: f64 = 1.0;
/// The overview and a 100-row inventory page, server-side.
const PAGE_TARGET_MS: f64 = 150.0;
/// The daemon's API token in the benchmark.
const TOKEN: &str = "bench-token-0123456789abcdef";
/// 2026-06-01T00:00:00Z: validity is relative to it so the mix of expired and valid is fixed.
const BASE: i64 = 1_780_272_000;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench daemon: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn number(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v.trim().replace('_', "").parse().with_context(|| format!("{name}={v:?} is not a whole number")),
        Err(_) => Ok(default),
    }
}

fn run() -> Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { number("CERTVIGIL_BENCH_N", 100_000)? } else { 200 };
    let runs = if full { number("CERTVIGIL_BENCH_RUNS", 5)?.max(1) } else { 1 };
    let tmp = tempfile::Builder::new().prefix("certvigil-bench-daemon-").tempdir()?;
    // CERTVIGIL_BENCH_KEEP=1 keeps the generated files and store for profiling.
    let tmp_keep;
    let work = if std::env::var_os("CERTVIGIL_BENCH_KEEP").is_some() {
        tmp_keep = tmp.keep();
        eprintln!("keeping {}", tmp_keep.display());
        tmp_keep.as_path()
    } else {
        tmp.path()
    };
    let t = Instant::now();
    generate(&work.join("certs"), n)?;
    let gen_s = t.elapsed().as_secs_f64();
    let store = work.join("state/certvigil.db");
    let cfg = work.join("certvigil.yaml");
    std::fs::write(
        &cfg,
        format!(
            "store: {{path: {}}}\nsources: [{{name: bench, kind: files, paths: [{}]}}]\n\
             jobs: [{{name: scan, kind: scan, schedule: '0 0 1 1 *', catch_up: skip}}]\n\
             daemon: {{token: '${{env:CV_TOKEN}}'}}\n",
            store.display(),
            work.join("certs").display()
        ),
    )?;
    let t = Instant::now();
    let out = Command::new(CERTVIGIL).args(["-c"]).arg(&cfg).args(["scan", "--no-progress"]).output()?;
    ensure!(out.status.success(), "scan failed: {}", String::from_utf8_lossy(&out.stderr));
    let scan_s = t.elapsed().as_secs_f64();

    let mut d = start(work, &cfg)?;
    std::thread::sleep(Duration::from_secs(if full { 3 } else { 0 }));
    let idle_rss = rss_mib(d.child.id(), "VmRSS")?;
    let mut scrapes = Vec::new();
    let mut body = String::new();
    // When the last scrape started and ended, Unix seconds: the daemon's `now` for
    // x509_cert_expired lies between them.
    let mut window = (0, 0);
    for _ in 0..runs {
        let t = Instant::now();
        let from = unix_now();
        body = scrape(d.port)?;
        window = (from, unix_now() + 1);
        scrapes.push(t.elapsed().as_secs_f64());
    }
    let after_rss = rss_mib(d.child.id(), "VmRSS")?;
    let peak_rss = rss_mib(d.child.id(), "VmHWM")?;
    let (pages, pages_rss) = status_pages(d.port, d.child.id(), n, runs)?;
    let api_rss = rss_mib(d.child.id(), "VmHWM")?;
    let _ = Command::new("kill").args(["-TERM", &d.child.id().to_string()]).status();
    let _ = d.child.wait();

    let series = body.lines().filter(|l| !l.starts_with('#')).count();
    scrapes.sort_by(f64::total_cmp);
    let scrape_s = scrapes[scrapes.len() / 2];

    // What was served is checked before anything is reported: every per-certificate series
    // against the generator, then every one against the baseline's rendering of the same rows
    // (label set and value), then the inventory totals.
    let mut problems = generator_mismatches(&body, n, window);
    let py_text = work.join("baseline-metrics.txt");
    let (py_s, py_series) = python_baseline(&store, if full { runs } else { 1 }, &py_text, window.0)?;
    problems.extend(baseline_mismatches(&body, &py_text, window)?);
    problems.extend(total_mismatches(&body, n));
    if !problems.is_empty() {
        bail!("/metrics: {} check(s) failed:\n  {}", problems.len(), problems.join("\n  "));
    }

    if !full {
        println!("bench daemon smoke run: status pages ok ({} pages checked)", pages.len());
        println!(
            "bench daemon smoke run: ok ({n} certificates, {series} series; all {} per-certificate values equal the generator's and the Python baseline's); \
             `cargo bench --bench daemon` measures",
            3 * n
        );
        return Ok(());
    }
    println!("certvigil daemon benchmark: {n} certificates (generated in {gen_s:.1} s, scanned in {scan_s:.1} s)");
    println!("  idle RSS after start:      {idle_rss:.1} MiB (target ≤ {IDLE_RSS_TARGET_MIB} MiB)");
    println!(
        "  /metrics scrape (median of {runs}): {scrape_s:.3} s, {:.1} MiB, {series} series (target < {SCRAPE_TARGET_S} s)",
        body.len() as f64 / 1048576.0
    );
    println!("  RSS after the scrapes:     {after_rss:.1} MiB (peak {peak_rss:.1} MiB)");
    println!(
        "  baseline, Python sqlite3 rendering the same text: {py_s:.3} s ({py_series} series) → certvigil {:.1}× faster",
        py_s / scrape_s
    );
    println!("  status page (median of {runs}, server-side and loopback; target ≤ {PAGE_TARGET_MS} ms):");
    for p in &pages {
        println!("    {:<44} {:>7.1} ms  {:>8} bytes", p.name, p.median_ms, p.bytes);
    }
    println!("  peak RSS after the status pages: {pages_rss:.1} MiB (after the API's listing: {api_rss:.1} MiB)");
    println!(
        "  checked: all {} per-certificate series served equal the generator's values and the baseline's label sets and values",
        3 * n
    );
    let json = serde_json::json!({
        "certificates": n, "idle_rss_mib": idle_rss, "rss_after_scrapes_mib": after_rss, "peak_rss_mib": peak_rss,
        "scrape_seconds": scrape_s, "scrape_bytes": body.len(), "series": series, "python_baseline_seconds": py_s,
        "series_checked_against_generator_and_baseline": 3 * n,
        "status_pages": pages.iter().map(|p| serde_json::json!({"page": p.name, "median_ms": p.median_ms, "bytes": p.bytes})).collect::<Vec<_>>(),
        "peak_rss_after_pages_mib": pages_rss,
        "peak_rss_after_api_listing_mib": api_rss,
        "targets": {"idle_rss_mib": IDLE_RSS_TARGET_MIB, "scrape_seconds": SCRAPE_TARGET_S},
    });
    let target_dir = Path::new(CERTVIGIL).parent().and_then(Path::parent).context("no target directory")?;
    std::fs::write(target_dir.join("bench-daemon.json"), serde_json::to_string_pretty(&json)? + "\n")?;
    let page_missed = pages.iter().any(|p| p.target && p.median_ms > PAGE_TARGET_MS);
    if idle_rss > IDLE_RSS_TARGET_MIB || scrape_s >= SCRAPE_TARGET_S || page_missed {
        println!("  TARGET MISSED");
    }
    Ok(())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Certificate `i`'s validity, as [`generate`] writes it: (notBefore, notAfter).
fn validity(i: usize) -> (i64, i64) {
    let start = BASE - 200 * 86_400 + (i as i64 % 300) * 86_400;
    (start, start + 365 * 86_400)
}

/// The per-certificate families, whose series the checks compare one by one.
const PER_CERT: [&str; 3] = ["x509_cert_not_after", "x509_cert_not_before", "x509_cert_expired"];

/// One sample line of the exposition format: family, label pairs (values unescaped), value.
type Sample<'a> = (&'a str, Vec<(String, String)>, &'a str);

fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let end = line.find(['{', ' '])?;
    let (family, mut rest) = line.split_at(end);
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let (name, r) = rest.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = r.char_indices();
            let close = loop {
                match chars.next()? {
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    (k, '"') => break k,
                    (_, c) => value.push(c),
                }
            };
            labels.push((name.to_string(), value));
            rest = &r[close + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    Some((family, labels, rest.strip_prefix(' ')?.trim()))
}

/// Whether x509_cert_expired may read either way: the certificate's notAfter falls inside the
/// scrape (the daemon's clock and the checker's differ by up to its duration).
fn expiry_ambiguous(not_after: i64, window: (i64, i64)) -> bool {
    (window.0..=window.1).contains(&not_after)
}

/// Every per-certificate series served against the generator: one series per certificate and
/// family, found by its subject CN (`hostI.example.com`), with the serial number `I + 1`, the
/// generated notBefore and notAfter, and `expired` as notAfter against the scrape's time.
fn generator_mismatches(body: &str, n: usize, window: (i64, i64)) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = vec![[0u32; 3]; n];
    let mut wrong = 0usize;
    let mut note = |msg: String| {
        wrong += 1;
        if wrong <= 10 {
            out.push(msg);
        }
    };
    for line in body.lines().filter(|l| PER_CERT.iter().any(|f| l.starts_with(f))) {
        let Some((family, labels, value)) = parse_sample(line) else {
            note(format!("unreadable sample {line:?}"));
            continue;
        };
        let Some(f) = PER_CERT.iter().position(|f| *f == family) else { continue };
        let label = |k: &str| labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let i = label("subject_CN").and_then(|cn| cn.strip_prefix("host")?.strip_suffix(".example.com")?.parse::<usize>().ok());
        let Some(i) = i.filter(|&i| i < n) else {
            note(format!("{family}: a series for no generated certificate: {line}"));
            continue;
        };
        seen[i][f] += 1;
        let (not_before, not_after) = validity(i);
        if label("serial_number") != Some((i + 1).to_string().as_str()) {
            note(format!("{family} of host{i}: serial_number {:?}, generated {}", label("serial_number"), i + 1));
        }
        let want = match family {
            "x509_cert_not_after" => Some(not_after),
            "x509_cert_not_before" => Some(not_before),
            _ if expiry_ambiguous(not_after, window) => None,
            _ => Some(i64::from(window.0 > not_after)),
        };
        match (value.parse::<i64>(), want) {
            (Ok(v), Some(w)) if v != w => note(format!("{family} of host{i}: {v}, generated {w}")),
            (Err(_), _) => note(format!("{family} of host{i}: value {value:?} is not a whole number")),
            _ => {}
        }
    }
    for (i, counts) in seen.iter().enumerate() {
        for (f, &c) in counts.iter().enumerate() {
            if c != 1 {
                note(format!("{}: {c} series for host{i} (one expected)", PER_CERT[f]));
            }
        }
    }
    if wrong > 10 {
        out.push(format!("{wrong} disagreements with the generator in all"));
    }
    out
}

/// The family and label set of a sample, labels sorted by name (their order means nothing).
fn series_key(family: &str, labels: &mut [(String, String)]) -> String {
    labels.sort();
    let mut key = family.to_string();
    for (k, v) in labels.iter() {
        let _ = write!(key, "|{k}={v}");
    }
    key
}

/// Every per-certificate series served against the baseline's rendering of the same store rows:
/// the same label sets, each with the same value (`expired` may differ only for a notAfter
/// inside the scrape: the baseline rendered with the scrape's start as `now`).
fn baseline_mismatches(body: &str, baseline: &Path, window: (i64, i64)) -> Result<Vec<String>> {
    let mut served: HashMap<String, i64> = HashMap::new();
    let mut not_after: HashMap<String, i64> = HashMap::new();
    let mut out = Vec::new();
    for line in body.lines().filter(|l| PER_CERT.iter().any(|f| l.starts_with(f))) {
        let Some((family, mut labels, value)) = parse_sample(line) else { continue };
        let Ok(v) = value.parse::<i64>() else { continue };
        if family == "x509_cert_not_after" {
            not_after.insert(series_key("", &mut labels.clone()), v);
        }
        if served.insert(series_key(family, &mut labels), v).is_some() {
            out.push(format!("served twice: {line}"));
        }
    }
    let text = std::fs::read_to_string(baseline).with_context(|| format!("reading {}", baseline.display()))?;
    let (mut compared, mut wrong) = (0usize, 0usize);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((family, mut labels, value)) = parse_sample(line) else {
            out.push(format!("baseline: unreadable sample {line:?}"));
            continue;
        };
        let theirs: i64 = value.parse().with_context(|| format!("baseline: value of {line:?}"))?;
        let na = not_after.get(&series_key("", &mut labels.clone())).copied();
        let key = series_key(family, &mut labels);
        compared += 1;
        let msg = match served.remove(&key) {
            None => Some(format!("the baseline renders a series certvigil did not serve: {line}")),
            Some(ours) if ours == theirs => None,
            Some(_) if family == "x509_cert_expired" && na.is_some_and(|na| expiry_ambiguous(na, window)) => None,
            Some(ours) => Some(format!("{family}: certvigil serves {ours}, the baseline computes {theirs} for {line}")),
        };
        if let Some(m) = msg {
            wrong += 1;
            if wrong <= 10 {
                out.push(m);
            }
        }
    }
    if wrong > 10 {
        out.push(format!("{wrong} disagreements with the baseline in all"));
    }
    for key in served.keys().take(10) {
        out.push(format!("certvigil serves a series the baseline does not render: {key}"));
    }
    if compared == 0 {
        out.push("the baseline rendered no series".into());
    }
    Ok(out)
}

/// The inventory totals served: `n` current certificates, none gone, no read errors.
fn total_mismatches(body: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for (series, want) in [
        ("certvigil_certificates{state=\"current\"}", n.to_string()),
        ("certvigil_certificates{state=\"gone\"}", "0".to_string()),
        ("x509_read_errors", "0".to_string()),
    ] {
        let got = body.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' '));
        if got != Some(want.as_str()) {
            out.push(format!("{series}: {got:?}, expected {want}"));
        }
    }
    out
}

fn generate(dir: &Path, n: usize) -> Result<()> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name.push(DnType::CommonName, "Bench CA");
    ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate()?;
    for i in 0..n {
        let sub = dir.join(format!("{:03}", i % 1000));
        if i < 1000 {
            std::fs::create_dir_all(&sub)?;
        }
        let mut p = CertificateParams::new(vec![format!("host{i}.example.com")])?;
        p.distinguished_name.push(DnType::CommonName, format!("host{i}.example.com"));
        p.distinguished_name.push(DnType::OrganizationName, "Bench Org");
        p.serial_number = Some(SerialNumber::from_slice(&(i as u64 + 1).to_be_bytes()));
        let (not_before, not_after) = validity(i);
        p.not_before = time::OffsetDateTime::from_unix_timestamp(not_before)?;
        p.not_after = time::OffsetDateTime::from_unix_timestamp(not_after)?;
        let cert = p.signed_by(&key, &issuer)?;
        std::fs::write(sub.join(format!("c{i}.pem")), cert.pem())?;
    }
    Ok(())
}

struct Daemon {
    child: Child,
    port: u16,
}

fn start(work: &Path, cfg: &Path) -> Result<Daemon> {
    let sock = work.join("notify.sock");
    let rx = UnixDatagram::bind(&sock)?;
    rx.set_read_timeout(Some(Duration::from_secs(60)))?;
    let child = Command::new(CERTVIGIL)
        .arg("-c")
        .arg(cfg)
        .args(["run", "--listen", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", &sock)
        .env("CV_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut buf = [0u8; 1024];
    loop {
        let len = rx.recv(&mut buf).context("no READY=1 from the daemon")?;
        let m = String::from_utf8_lossy(&buf[..len]).into_owned();
        if m.starts_with("READY=1") {
            let port = m.split("HTTP on 127.0.0.1:").nth(1).and_then(|p| p.trim().parse().ok()).context("no port in READY")?;
            return Ok(Daemon { child, port });
        }
    }
}

/// Checks a page's body.
type Check = Box<dyn Fn(&str) -> Result<()>>;

/// One status page's figures.
struct PageFigure {
    name: String,
    median_ms: f64,
    bytes: usize,
    /// Held to [`PAGE_TARGET_MS`] (the issue names the overview and a 100-row page).
    target: bool,
}

/// GET with the bearer token; the status and body.
fn get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8(raw)?;
    let Some((head, body)) = text.split_once("\r\n\r\n") else { bail!("no HTTP head") };
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, body.to_string()))
}

/// The status page's overview, inventory pages (first, deep, filtered, searched), a
/// certificate page and the API's page of 100 as the baseline, each `runs` times (median); every
/// answer is checked (row counts, totals, the searched certificate) before it counts.
fn status_pages(port: u16, pid: u32, n: usize, runs: usize) -> Result<(Vec<PageFigure>, f64)> {
    let last = (n / 2).max(1);
    let probe = format!("host{last}.example.com");
    let deep = n.div_ceil(100).max(1);
    let cases: Vec<(String, String, bool, Check)> = vec![
        (
            "overview".into(),
            "/ui/".into(),
            true,
            Box::new(move |b: &str| {
                ensure!(b.contains(&format!("<span class=\"n\">{n}</span><span class=\"l\">current certificates")), "overview total");
                Ok(())
            }),
        ),
        ("inventory, page 1 of 100 rows".into(), "/ui/certificates".into(), true, Box::new(move |b: &str| rows(b, 100.min(n), n))),
        (
            format!("inventory, last page ({deep})"),
            format!("/ui/certificates?page={deep}"),
            true,
            Box::new(move |b: &str| rows(b, n - (deep - 1) * 100, n)),
        ),
        (
            "inventory, expired, sorted by name".into(),
            "/ui/certificates?status=expired&sort=name".into(),
            true,
            Box::new(|b: &str| {
                ensure!(b.contains("data-fingerprint"), "no expired rows");
                Ok(())
            }),
        ),
        (
            "inventory, search by name".into(),
            format!("/ui/certificates?q={probe}"),
            true,
            Box::new({
                let probe = probe.clone();
                move |b: &str| {
                    ensure!(b.contains(&format!(">{probe}<")), "search did not find {probe}");
                    Ok(())
                }
            }),
        ),
    ];
    let mut out = Vec::new();
    for (name, path, target, check) in cases {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            let (status, body) = get(port, &path)?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            ensure!(status == 200, "{path}: HTTP {status}");
            check(&body).with_context(|| path.clone())?;
            bytes = body.len();
        }
        times.sort_by(f64::total_cmp);
        out.push(PageFigure { name, median_ms: times[times.len() / 2], bytes, target });
    }
    // A certificate's page: the searched one, by the fingerprint the inventory links to.
    let (_, body) = get(port, &format!("/ui/certificates?q={probe}"))?;
    let fp: String = body.split("data-fingerprint=\"").nth(1).map(|r| r.chars().take(64).collect()).context("no row to open")?;
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let (status, body) = get(port, &format!("/ui/certificates/{fp}"))?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        ensure!(status == 200 && body.contains(&probe), "certificate page of {fp}: HTTP {status}");
        bytes = body.len();
    }
    times.sort_by(f64::total_cmp);
    out.push(PageFigure { name: "certificate page".into(), median_ms: times[times.len() / 2], bytes, target: false });
    // The daemon's peak memory so far is the pages'; the API's listing, measured last, loads
    // every row.
    let pages_peak = rss_mib(pid, "VmHWM")?;
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let (status, body) = get(port, "/api/v1/certificates?limit=100")?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        ensure!(status == 200 && body.contains(&format!("\"total\": {n}")), "API page: HTTP {status}");
        bytes = body.len();
    }
    times.sort_by(f64::total_cmp);
    out.push(PageFigure { name: "API certificates?limit=100 (baseline)".into(), median_ms: times[times.len() / 2], bytes, target: false });
    Ok((out, pages_peak))
}

/// An inventory page with `want` rows of `total`.
fn rows(body: &str, want: usize, total: usize) -> Result<()> {
    let got = body.matches("data-fingerprint=").count();
    ensure!(got == want, "{got} rows, expected {want}");
    ensure!(body.contains(&format!("{total} certificates match")), "total {total} not shown");
    Ok(())
}

fn rss_mib(pid: u32, field: &str) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    Ok(kib / 1024.0)
}

fn scrape(port: u16) -> Result<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8(raw)?;
    let Some((head, mut body)) = text.split_once("\r\n\r\n") else { bail!("no HTTP head") };
    ensure!(head.starts_with("HTTP/1.1 200"), "scrape: {head}");
    let mut out = String::with_capacity(body.len());
    while let Some((size, rest)) = body.split_once("\r\n") {
        let len = usize::from_str_radix(size.trim(), 16)?;
        if len == 0 {
            break;
        }
        out.push_str(&rest[..len]);
        body = &rest[len + 2..];
    }
    Ok(out)
}

/// The same rows, the same labels, rendered by Python's standard library. The text of the
/// last run is written to `text_out` (after its time is taken), rendered with `now` for
/// x509_cert_expired, so that the harness can compare it with what certvigil served.
fn python_baseline(store: &Path, runs: usize, text_out: &Path, now: i64) -> Result<(f64, usize)> {
    let script = r##"
import sqlite3, sys, time
def attrs(dn):
    out, cur, esc = {}, "", False
    parts = []
    for ch in dn:
        if esc: cur += ch; esc = False
        elif ch == "\\": esc = True
        elif ch in ",+": parts.append(cur); cur = ""
        else: cur += ch
    parts.append(cur)
    for p in parts:
        if "=" in p:
            k, v = p.split("=", 1); out[k.strip()] = out[k.strip()] + "," + v if k.strip() in out else v
    return out
best = []
for _ in range(int(sys.argv[2])):
    t = time.time()
    db = sqlite3.connect(sys.argv[1])
    rows = db.execute("SELECT c.fingerprint, c.subject, c.issuer, c.serial, c.not_before, c.not_after, s.source, s.location FROM sightings s JOIN certificates c ON c.id = s.cert_id WHERE s.gone_since IS NULL ORDER BY s.cert_id, s.id").fetchall()
    now = int(sys.argv[4]); out = []; n = 0
    for fam in ("x509_cert_not_after", "x509_cert_not_before", "x509_cert_expired"):
        out.append("# TYPE %s gauge" % fam)
        for fp, subj, iss, serial, nb, na, src, loc in rows:
            s, i = attrs(subj), attrs(iss)
            labels = [("filename", loc.rsplit("/", 1)[-1]), ("filepath", loc)]
            labels += [("issuer_" + k, i.get(k, "")) for k in ("CN", "O", "OU", "C", "L", "ST")]
            labels.append(("serial_number", str(int(serial, 16))))
            labels += [("subject_" + k, s.get(k, "")) for k in ("CN", "O", "OU", "C", "L", "ST")]
            labels += [("source", src), ("fingerprint", fp)]
            l = ",".join('%s="%s"' % (k, v.replace("\\", "\\\\").replace('"', '\\"')) for k, v in labels if v)
            v = na if fam.endswith("after") else nb if fam.endswith("before") else int(now > na)
            out.append("%s{%s} %d" % (fam, l, v)); n += 1
    text = "\n".join(out)
    best.append(time.time() - t)
with open(sys.argv[3], "w") as f:
    f.write(text + "\n")
best.sort()
print(best[len(best) // 2], n)
"##;
    let out = Command::new("python3").arg("-c").arg(script).arg(store).arg(runs.to_string()).arg(text_out).arg(now.to_string()).output()?;
    ensure!(out.status.success(), "python baseline failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout)?;
    let mut it = text.split_whitespace();
    let s: f64 = it.next().context("no time")?.parse()?;
    let n: usize = it.next().context("no count")?.parse()?;
    Ok((s, n))
}
