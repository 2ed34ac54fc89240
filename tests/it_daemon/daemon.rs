//! The real `certvigil run` daemon as systemd runs it: `$NOTIFY_SOCKET` points at a unix
//! datagram socket this test binds, so READY=1, the WATCHDOG=1 cadence, RELOADING=1 on
//! SIGHUP and STOPPING=1 on SIGTERM are observed as systemd would see them. The HTTP server
//! is scraped and queried over loopback; metrics are parsed and compared with the store.

use crate::common;

use common::daemon::Daemon;
use common::*;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const TOKEN: &str = "test-token-0123456789abcdef";

/// Starts the daemon at the fixed clock with the given watchdog interval and waits for READY=1.
fn start(sb: &Sandbox, watchdog_usec: u64) -> Daemon {
    let mut cmd = sb.command_at(NOW);
    cmd.env("WATCHDOG_USEC", watchdog_usec.to_string());
    Daemon::start(sb, cmd, TOKEN)
}

fn log(sb: &Sandbox) -> String {
    std::fs::read_to_string(sb.path("daemon.log")).unwrap_or_default()
}

/// One HTTP/1.1 request over a fresh connection; returns the status and the body (chunks joined).
fn http(port: u16, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let a = common::http::request(port, method, path, token);
    (a.status, a.body)
}

/// Parses the exposition format into (name, labels) → value, checking every line's syntax.
fn parse_metrics(text: &str) -> (HashMap<(String, String), f64>, Vec<String>) {
    let mut samples = HashMap::new();
    let mut helped = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.push(rest.split_whitespace().next().unwrap_or("").to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n.to_string(), l.trim_end_matches('}').to_string()),
            None => (series.to_string(), String::new()),
        };
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "bad metric name in {line:?}");
        assert!(samples.insert((name, labels), value).is_none(), "duplicate series {line:?}");
    }
    (samples, helped)
}

fn find<'a>(samples: &'a HashMap<(String, String), f64>, name: &str, label: &str) -> Vec<(&'a String, f64)> {
    samples.iter().filter(|((n, l), _)| n == name && l.contains(label)).map(|((_, l), v)| (l, *v)).collect()
}

fn config(sb: &Sandbox, extra_jobs: &str) {
    sb.config(&format!(
        "sources:
  - name: certs
    kind: files
    paths: [certs]
daemon:
  token: \"${{env:CV_TOKEN}}\"
  shutdown_timeout: 20s
jobs:
  - {{name: scan, kind: scan, schedule: '@hourly'}}
  - {{name: evaluate, kind: evaluate, schedule: '@hourly'}}
{extra_jobs}"
    ));
}

fn wait_jobs_ok(d: &Daemon, names: &[&str], sb: &Sandbox) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let (code, body) = d.get("/api/v1/jobs", Some(TOKEN));
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("jobs JSON");
        let done = names.iter().all(|n| {
            v.as_array().into_iter().flatten().any(|j| j["name"] == *n && j["last_run"]["status"] == "ok" && j["running_since"].is_null())
        });
        if done {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "jobs {names:?} did not finish: {v:#}\nlog:\n{}", log(sb));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn systemd_protocol_metrics_api_reload_and_stop() {
    let f = fixtures();
    let sb = Sandbox::new();
    sb.write("certs/valid.pem", &f.valid.cert.pem);
    sb.write("certs/expired.pem", &f.expired.cert.pem);
    sb.write("certs/expiring.pem", &f.expiring.cert.pem);
    sb.write("certs/chain/inter.pem", &f.inter.cert.pem);
    config(&sb, "");

    // A 1 s watchdog: pings every 0.5 s.
    let mut d = start(&sb, 1_000_000);
    // Missed runs (a fresh store) catch up at start: scan, then evaluate.
    let jobs = wait_jobs_ok(&d, &["scan", "evaluate"], &sb);
    let triggers: Vec<&str> = jobs.as_array().unwrap().iter().map(|j| j["last_run"]["trigger"].as_str().unwrap_or("")).collect();
    assert_eq!(triggers, vec!["catch_up", "catch_up"]);

    // Watchdog cadence: pings every half of the 1 s timeout (systemd's advice), and they keep
    // coming. The times are when this test read each datagram, so a stall of the test (or of
    // the daemon) on a loaded machine shows as one long gap followed by short ones: the median
    // gap is the daemon's cadence whatever the load. Pinging at the timeout itself (1 s), or
    // only at start, fails; the bound on the longest gap only catches pings that stop and is
    // generous for the reason above.
    // Pings sent while the jobs ran wait in the socket: read them first, so that only pings
    // read as they come are timed.
    d.notify.set_nonblocking(true).expect("nonblocking");
    while d.receive().is_some() {}
    d.notify.set_nonblocking(false).expect("blocking");
    let t0 = Instant::now();
    let first = d.messages.len();
    while t0.elapsed() < Duration::from_secs(4) {
        d.receive();
    }
    let pings: Vec<Instant> = d.messages[first..].iter().filter(|(_, m)| m == "WATCHDOG=1").map(|(t, _)| *t).collect();
    assert!(pings.len() >= 5, "only {} WATCHDOG=1 pings in 4 s: {:?}", pings.len(), d.messages);
    let mut gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    let median = gaps[gaps.len() / 2];
    assert!(
        (Duration::from_millis(350)..=Duration::from_millis(700)).contains(&median),
        "pings every {median:?}, not every 0.5 s: {gaps:?}"
    );
    let worst = gaps[gaps.len() - 1];
    assert!(worst < Duration::from_millis(2500), "pings stopped for {worst:?}: {gaps:?}");

    // /healthz and /readyz need no token.
    assert_eq!(d.get("/healthz", None).0, 200);
    let (code, body) = d.get("/readyz", None);
    assert_eq!(code, 200, "{body}");

    // Metrics: names and values match the store.
    let (code, text) = d.get("/metrics", None);
    assert_eq!(code, 200);
    let (m, helped) = parse_metrics(&text);
    for (name, _, _) in certvigil::daemon::metrics::FAMILIES {
        assert!(helped.iter().any(|h| h == name), "family {name} has no HELP line");
    }
    for (cert, expired) in [(&f.valid.cert, 0.0), (&f.expired.cert, 1.0), (&f.expiring.cert, 0.0), (&f.inter.cert, 0.0)] {
        let label = format!("fingerprint=\"{}\"", cert.fingerprint);
        let na = find(&m, "x509_cert_not_after", &label);
        assert_eq!(na.len(), 1, "{}: {na:?}", cert.name);
        assert_eq!(na[0].1, cert.not_after as f64, "{}", cert.name);
        assert!(na[0].0.contains(&format!("subject_CN=\"{}\"", cert.cn)), "{}", na[0].0);
        assert!(na[0].0.contains("filepath=\"") && na[0].0.contains("source=\"certs\""), "{}", na[0].0);
        assert_eq!(find(&m, "x509_cert_not_before", &label)[0].1, cert.not_before as f64);
        assert_eq!(find(&m, "x509_cert_expired", &label)[0].1, expired, "{}", cert.name);
    }
    let db = sb.db();
    let current: i64 = db.query_row("SELECT COUNT(*) FROM certificates WHERE gone_since IS NULL", [], |r| r.get(0)).unwrap();
    assert_eq!(current, 4);
    assert_eq!(m[&("certvigil_certificates".to_string(), "state=\"current\"".to_string())], current as f64);
    let critical_expired = find(&m, "certvigil_findings", "severity=\"critical\",kind=\"expired\"");
    assert_eq!(critical_expired.len(), 1, "{critical_expired:?}");
    let stored: f64 =
        db.query_row("SELECT COUNT(*) FROM alerts WHERE state != 'resolved' AND severity = 'critical'", [], |r| r.get(0)).unwrap();
    assert_eq!(find(&m, "certvigil_alerts_open", "severity=\"critical\"")[0].1, stored);
    assert!(stored >= 1.0);
    assert_eq!(find(&m, "certvigil_job_last_failed", "job=\"scan\"")[0].1, 0.0);
    assert!(find(&m, "certvigil_job_last_success_timestamp_seconds", "job=\"evaluate\"")[0].1 >= NOW as f64);
    assert_eq!(m[&("x509_read_errors".to_string(), String::new())], 0.0);

    // The API needs the token.
    assert_eq!(d.get("/api/v1/certificates", None).0, 401);
    assert_eq!(d.get("/api/v1/certificates", Some("wrong-token-0123456789")).0, 401);
    assert_eq!(http(d.port, "POST", "/api/v1/jobs/scan/run", None).0, 401);
    let (code, body) = d.get("/api/v1/certificates?limit=2", Some(TOKEN));
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((v["total"].as_i64(), v["items"].as_array().map(Vec::len)), (Some(4), Some(2)));
    let (code, body) = d.get("/api/v1/certificates?expiring_within=60d", Some(TOKEN));
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let fps: Vec<&str> = v["items"].as_array().unwrap().iter().filter_map(|c| c["fingerprint"].as_str()).collect();
    assert!(fps.contains(&f.expired.cert.fingerprint.as_str()) && fps.contains(&f.expiring.cert.fingerprint.as_str()), "{fps:?}");
    assert!(!fps.contains(&f.valid.cert.fingerprint.as_str()));
    assert_eq!(d.get("/api/v1/certificates?limit=zero", Some(TOKEN)).0, 400);
    let (code, body) = d.get(&format!("/api/v1/certificates/{}", &f.valid.cert.fingerprint[..16]), Some(TOKEN));
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["fingerprint"], f.valid.cert.fingerprint.as_str());
    assert_eq!(v["sightings"].as_array().map(Vec::len), Some(1));
    assert_eq!(d.get("/api/v1/certificates/00000000deadbeef", Some(TOKEN)).0, 404);
    let (code, body) = d.get("/api/v1/findings?severity=critical", Some(TOKEN));
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["items"].as_array().unwrap().iter().any(|f2| f2["fingerprint"] == f.expired.cert.fingerprint.as_str()), "{v:#}");
    assert_eq!(d.get("/api/v1/nothing", Some(TOKEN)).0, 404);
    assert_eq!(d.get("/api/v1/jobs/scan/run", Some(TOKEN)).0, 405);
    assert_eq!(http(d.port, "POST", "/api/v1/jobs/nope/run", Some(TOKEN)).0, 404);

    // Trigger a scan through the API after adding a certificate: it shows up.
    sb.write("certs/rsa.pem", &f.rsa.cert.pem);
    let (code, body) = http(d.port, "POST", "/api/v1/jobs/scan/run", Some(TOKEN));
    assert_eq!(code, 202, "{body}");
    let run_id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["run_id"].as_i64().unwrap();
    let start = Instant::now();
    loop {
        let (_, text) = d.get("/metrics", None);
        if text.contains(&f.rsa.cert.fingerprint) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the triggered scan {run_id} did not add the certificate");
        std::thread::sleep(Duration::from_millis(100));
    }

    // SIGHUP with a broken configuration: RELOADING=1, then READY=1, and the old one stays.
    let good = std::fs::read_to_string(sb.config_path()).unwrap();
    std::fs::write(sb.config_path(), format!("{good}  - {{name: bad, kind: scan, schedule: '61 * * * *'}}\n")).unwrap();
    d.signal("-HUP");
    d.wait_for(|m| m.starts_with("RELOADING=1"), Duration::from_secs(10));
    d.wait_for(|m| m.starts_with("READY=1"), Duration::from_secs(10));
    let (_, body) = d.get("/readyz", None);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["config"]["ok"], false, "{v:#}");
    let err = v["config"]["error"].as_str().unwrap_or("");
    assert!(err.contains("certvigil.yaml:") && err.contains("jobs[2].schedule"), "{err}");
    let (_, text) = d.get("/metrics", None);
    assert!(text.contains("certvigil_config_last_reload_successful 0"), "reload failure not in metrics");
    let (_, body) = d.get("/api/v1/jobs", Some(TOKEN));
    assert!(!body.contains("\"bad\""), "the invalid configuration was applied: {body}");

    // A valid one adds a job.
    config(&sb, "  - {name: nightly-digest, kind: digest, schedule: '0 8 * * *', timezone: Europe/Berlin}\n");
    d.signal("-HUP");
    d.wait_for(|m| m.starts_with("RELOADING=1"), Duration::from_secs(10));
    d.wait_for(|m| m.starts_with("READY=1"), Duration::from_secs(10));
    let (_, body) = d.get("/api/v1/jobs", Some(TOKEN));
    assert!(body.contains("\"nightly-digest\"") && body.contains("Europe/Berlin"), "{body}");
    let (_, text) = d.get("/metrics", None);
    assert!(text.contains("certvigil_config_last_reload_successful 1"));

    // SIGTERM: STOPPING=1 and exit 0.
    d.signal("-TERM");
    d.wait_for(|m| m.starts_with("STOPPING=1"), Duration::from_secs(10));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = d.child.try_wait().unwrap() {
            break st;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the daemon did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}; log:\n{}", log(&sb));

    // The audit trail has the reloads and the API trigger, and the chain is intact.
    let entries = sb.run(&["audit", "list", "-o", "json"]).expect_code(0).json();
    let actions: Vec<&str> = entries.as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    for a in ["daemon-start", "scan", "job-triggered", "config-reload-failed", "config-reload", "daemon-stop"] {
        assert!(actions.contains(&a), "no {a} in the audit log: {actions:?}");
    }
    sb.run(&["audit", "verify"]).expect_code(0);

    // `schedule` shows each job's last outcome from the recorded runs.
    let sched = sb.run(&["schedule", "-o", "json"]).expect_code(0).json();
    let scan = sched.as_array().unwrap().iter().find(|j| j["name"] == "scan").expect("scan job");
    assert_eq!((scan["last_run"]["status"].as_str(), scan["last_run"]["trigger"].as_str()), (Some("ok"), Some("api")), "{scan:#}");
    assert!(scan["last"].as_str().unwrap_or("").starts_with("ok at "), "{scan:#}");
}

#[test]
fn unsafe_daemon_settings_are_refused() {
    let sb = Sandbox::new();
    sb.config("daemon:\n  listen: 0.0.0.0:9797\n  token: hunter2-inline\n  shutdown_timeout: soon\n");
    let r = sb.run(&["config", "validate"]).expect_code(2);
    assert!(r.stderr.contains("daemon.listen") && r.stderr.contains("allow_remote"), "{}", r.stderr);
    assert!(r.stderr.contains("daemon.token"), "{}", r.stderr);
    assert!(!r.stderr.contains("hunter2"), "the inline secret was echoed: {}", r.stderr);
    assert!(r.stderr.contains("daemon.shutdown_timeout"), "{}", r.stderr);

    // A token too short to be one: a configuration error — `run` refuses to start (exit 2)
    // before it opens the store.
    sb.config("daemon:\n  token: \"${env:CV_SHORT}\"\n");
    let mut cmd = sb.command_at(NOW);
    cmd.args(["run", "--listen", "127.0.0.1:0"]).env("CV_SHORT", "short");
    let r = run_with_timeout(cmd, RUN_LIMIT).expect_code(2);
    assert!(r.stderr.contains("shorter than 16"), "{}", r.stderr);
    assert!(!sb.store_path().exists(), "the store was created before the refusal");
    assert!(!r.stderr.contains("short\n"), "{}", r.stderr);
}

#[test]
fn restart_marks_an_unfinished_run_interrupted() {
    let sb = Sandbox::new();
    sb.write("certs/valid.pem", &fixtures().valid.cert.pem);
    config(&sb, "");
    let d = start(&sb, 0);
    wait_jobs_ok(&d, &["scan", "evaluate"], &sb);
    drop(d); // SIGKILL
    // A run row left `running` by a killed process, as a crash mid-scan leaves it.
    sb.db()
        .execute("INSERT INTO job_runs (job, kind, trigger, started_at, status) VALUES ('scan', 'scan', 'schedule', 1, 'running')", [])
        .unwrap();
    let _ = std::fs::remove_file(sb.path("notify.sock"));
    let d = start(&sb, 0);
    let (code, body) = d.get("/readyz", None);
    assert_eq!(code, 503, "an interrupted last run is not ready: {body}");
    assert!(body.contains("interrupted"), "{body}");
    let status: String = sb.db().query_row("SELECT status FROM job_runs WHERE started_at = 1", [], |r| r.get(0)).unwrap();
    assert_eq!(status, "interrupted");
}

/// Raises the file-descriptor soft limit to `need` (within the hard limit) when it is lower:
/// the flood below holds about 1,100 sockets, and many systems default to 1,024.
fn ensure_fd_limit(need: u64) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|c| c < need) {
        limit.current = Some(limit.maximum.map_or(need, |m| m.min(need)));
        setrlimit(Resource::Nofile, limit).expect("raise RLIMIT_NOFILE");
    }
    let now = getrlimit(Resource::Nofile);
    assert!(now.current.is_none_or(|c| c >= need), "this test needs {need} file descriptors; the hard limit allows {:?}", now.maximum);
}

/// `GET /healthz` on a new connection, as a kubelet probes: the whole answer, or why none came.
fn probe(port: u16) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

/// Issue 13: 1,000 connections that send half a request head and stall, re-opened as soon as
/// the daemon closes them, while a probe opens a new connection for each request. Every probe
/// gets 200: a connection from the flood, all from the probe's own address, gives way to the
/// probe (the one that has waited longest for its head is closed), instead of the probe being
/// refused until the header timeout frees a slot.
#[test]
fn a_flood_of_half_open_connections_does_not_take_health_down() {
    use std::net::TcpStream;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    const FLOOD: usize = 1000;
    ensure_fd_limit(FLOOD as u64 + 256);
    let sb = Sandbox::new();
    config(&sb, "");
    let d = start(&sb, 0);
    let port = d.port;

    let stop = Arc::new(AtomicBool::new(false));
    let open_now = Arc::new(AtomicU64::new(0));
    let attacker = {
        let (stop, open_now) = (Arc::clone(&stop), Arc::clone(&open_now));
        std::thread::spawn(move || {
            let open = || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                // Half a head; the write may fail if the daemon has closed it already.
                let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost:");
                s.set_nonblocking(true).expect("nonblocking");
                s
            };
            let mut socks: Vec<TcpStream> = (0..FLOOD).map(|_| open()).collect();
            let (mut opened, mut closed) = (FLOOD as u64, 0u64);
            open_now.store(FLOOD as u64, Ordering::SeqCst);
            while !stop.load(Ordering::SeqCst) {
                for s in &mut socks {
                    let mut buf = [0u8; 256];
                    let gone = match s.read(&mut buf) {
                        Ok(0) => true,
                        Ok(_) => panic!("the daemon answered half a request head"),
                        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                    };
                    if gone {
                        closed += 1;
                        *s = open();
                        opened += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (opened, closed)
        })
    };
    while open_now.load(Ordering::SeqCst) < FLOOD as u64 {
        std::thread::sleep(Duration::from_millis(10));
    }

    // A probe loop as a kubelet runs it, faster: a new connection per probe, for 5 s and at
    // least 20 probes (however slowly a loaded machine runs them).
    let start = Instant::now();
    let mut probes = 0;
    while start.elapsed() < Duration::from_secs(5) || probes < 20 {
        assert!(start.elapsed() < Duration::from_secs(120), "{probes} probes in {:?}", start.elapsed());
        let answer = probe(port);
        assert!(
            answer.as_ref().is_ok_and(|a| a.starts_with("HTTP/1.1 200 ") && a.ends_with("\r\n\r\nok\n")),
            "probe {probes}, {:?} into the flood, got {answer:?}; log:\n{}",
            start.elapsed(),
            log(&sb)
        );
        probes += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    let (opened, closed) = attacker.join().expect("attacker thread");
    // The flood really pressed on the slots: the daemon closed most of it, again and again.
    assert!(closed >= FLOOD as u64, "the daemon closed only {closed} of {opened} flood connections");
    assert!(log(&sb).contains("HTTP connection slots full"), "the eviction is logged:\n{}", log(&sb));
    // The daemon is still well: an API request on a fresh connection works.
    assert_eq!(d.get("/api/v1/jobs", Some(TOKEN)).0, 200);
}
