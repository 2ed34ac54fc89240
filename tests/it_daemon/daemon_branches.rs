//! Branches of the `certvigil run` daemon that `tests/it_daemon/daemon.rs` does not reach: SIGTERM while
//! a real scan job triggered through the API is writing a large inventory (the run recorded
//! `interrupted`, its committed batches kept, the WAL folded into the database, exit 0 after
//! `daemon.shutdown_timeout`), a second trigger of a running job (409), and the HTTP limits of
//! `src/daemon/http.rs` (a query string over 2,048 bytes: 400; a request head over the 64 KiB
//! read buffer: 431).

use crate::common;

use common::daemon::Daemon;
use common::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const TOKEN: &str = "branch-token-0123456789abcdef";
/// The scan writer's transaction size (`src/store/scan.rs`).
const STORE_BATCH: usize = 10_000;

fn log(sb: &Sandbox) -> String {
    std::fs::read_to_string(sb.path("daemon.log")).unwrap_or_default()
}

/// Starts `certvigil run` at the fixed clock and waits for READY=1.
fn start(sb: &Sandbox) -> Daemon {
    Daemon::start(sb, sb.command_at(NOW), TOKEN)
}

/// Sends `raw` (a whole request) over a fresh connection; returns the status and the body.
fn exchange(port: u16, raw: &[u8]) -> (u16, String) {
    let a = common::http::exchange(port, raw);
    (a.status, a.body)
}

fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    let a = common::http::request(port, method, path, Some(TOKEN));
    (a.status, a.body)
}

/// `n` distinct certificates as PEM: one self-signed template whose 16-byte serial is
/// rewritten in place (same length, so the DER stays well-formed; the signature no longer
/// verifies, which an inventory records all the same). Each has its own fingerprint.
fn many_certificates(n: usize) -> Vec<String> {
    use base64ct::{Base64, Encoding};
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["bulk.certvigil.test".to_string()]).expect("params");
    let marker = [0x5a_u8; 16];
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&marker));
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let der = params.self_signed(&key).expect("self-signed").der().to_vec();
    let at = der.windows(marker.len()).position(|w| w == marker).expect("the serial in the DER");
    (0..n)
        .map(|i| {
            let mut d = der.clone();
            d[at + 8..at + 16].copy_from_slice(&(i as u64).to_be_bytes());
            let b64 = Base64::encode_string(&d);
            let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
            for line in b64.as_bytes().chunks(64) {
                pem.push_str(std::str::from_utf8(line).expect("ascii"));
                pem.push('\n');
            }
            pem.push_str("-----END CERTIFICATE-----\n");
            pem
        })
        .collect()
}

fn config(sb: &Sandbox, shutdown_timeout: &str) {
    sb.config(&format!(
        "sources:
  - name: bulk
    kind: files
    paths: [certs]
daemon:
  token: \"${{env:CV_TOKEN}}\"
  shutdown_timeout: {shutdown_timeout}
jobs:
  - {{name: scan, kind: scan, schedule: '@yearly', catch_up: skip}}
"
    ));
}

fn count(db: &rusqlite::Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |r| r.get(0)).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// SIGTERM while a scan triggered through the API is writing 60,000 certificates: the daemon
/// refuses a second trigger of the running job (409), passes its 1 s shutdown deadline and
/// exits 0, records the run `interrupted`, keeps the batches committed before the signal (whole
/// batches, each certificate with its sighting, none marked gone), and leaves no WAL behind.
#[test]
fn sigterm_during_a_scan_keeps_committed_batches_and_checkpoints() {
    const FILES: usize = 60_000;
    let sb = Sandbox::new();
    let certs = many_certificates(FILES);
    for (i, pem) in certs.iter().enumerate() {
        sb.write(&format!("certs/{:02}/c{i:05}.pem", i % 100), pem);
    }
    config(&sb, "1s");
    let mut d = start(&sb);
    // No catch-up run: the store has no certificate yet.
    let db = sb.db();
    assert_eq!(count(&db, "SELECT COUNT(*) FROM certificates"), 0);

    let (code, body) = http(d.port, "POST", "/api/v1/jobs/scan/run");
    assert_eq!(code, 202, "{body}");
    let run_id = serde_json::from_str::<serde_json::Value>(&body).expect("JSON")["run_id"].as_i64().expect("run_id");
    // The same job again while it runs: 409, naming the run in progress.
    let (code, body) = http(d.port, "POST", "/api/v1/jobs/scan/run");
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("scan"), "{body}");

    // Wait for the first committed batch, then stop the daemon.
    let t0 = Instant::now();
    let seen = loop {
        let n = count(&db, "SELECT COUNT(*) FROM certificates");
        if n > 0 {
            break n as usize;
        }
        let st: String = db.query_row("SELECT status FROM job_runs WHERE id = ?1", [run_id], |r| r.get(0)).expect("run row");
        assert_eq!(st, "running", "the scan ended before any batch was seen; log:\n{}", log(&sb));
        assert!(t0.elapsed() < Duration::from_secs(120), "no batch committed in 120 s; log:\n{}", log(&sb));
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(db);
    let signalled = Instant::now();
    let st = std::process::Command::new("kill").args(["-TERM", &d.child.id().to_string()]).status().expect("kill");
    assert!(st.success());
    let status = loop {
        if let Some(st) = d.child.try_wait().expect("wait") {
            break st;
        }
        assert!(signalled.elapsed() < Duration::from_secs(30), "the daemon did not stop; log:\n{}", log(&sb));
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "exit status {status}; log:\n{}", log(&sb));
    // Within the 30 s systemd's default stop timeout would wait.
    assert!(took < Duration::from_secs(30), "stopping took {took:?}; log:\n{}", log(&sb));
    let text = log(&sb);
    assert!(text.contains("shutdown deadline passed"), "the scan finished within the timeout: make it larger\n{text}");

    // The WAL was folded into the database: absent or empty.
    let wal = sb.path("state/certvigil.db-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal_len, 0, "{} holds {wal_len} bytes after exit; log:\n{text}", wal.display());

    let db = sb.db();
    let ok: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("integrity_check");
    assert_eq!(ok, "ok");
    let (st, finished): (String, Option<i64>) =
        db.query_row("SELECT status, finished_at FROM job_runs WHERE id = ?1", [run_id], |r| Ok((r.get(0)?, r.get(1)?))).expect("run row");
    assert_eq!(st, "interrupted", "log:\n{text}");
    assert!(finished.is_some(), "the interrupted run has an end time");
    let sched = sb.run(&["schedule", "-o", "json"]).expect_code(0).json();
    let scan = sched.as_array().expect("array").iter().find(|j| j["name"] == "scan").expect("scan job");
    assert_eq!(scan["last_run"]["status"], "interrupted", "{scan:#}");

    // Committed work kept: at least the batch seen before the signal, only whole batches.
    let stored = count(&db, "SELECT COUNT(*) FROM certificates") as usize;
    assert!(stored >= seen && stored <= FILES, "{stored} of {FILES} certificates stored, {seen} before the signal");
    let sightings = count(&db, "SELECT COUNT(*) FROM sightings") as usize;
    assert_eq!(sightings, stored, "one sighting per certificate");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM certificates c WHERE NOT EXISTS (SELECT 1 FROM sightings s WHERE s.cert_id = c.id)"), 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM sightings s WHERE NOT EXISTS (SELECT 1 FROM certificates c WHERE c.id = s.cert_id)"), 0);
    assert_eq!(stored % STORE_BATCH, 0, "only whole batches of {STORE_BATCH} are kept: {stored}");
    // Nothing of the interrupted scan marked anything gone.
    assert_eq!(count(&db, "SELECT COUNT(*) FROM sightings WHERE gone_since IS NOT NULL"), 0);
    // Every stored sighting is one of the files, with its own certificate.
    let mut stmt = db.prepare("SELECT s.location, c.serial FROM sightings s JOIN certificates c ON c.id = s.cert_id").expect("prepare");
    let rows: Vec<(String, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).expect("query").collect::<Result<_, _>>().expect("rows");
    for (location, serial) in rows.iter().take(200) {
        let i: usize = location
            .rsplit('/')
            .next()
            .and_then(|f| f.strip_prefix('c'))
            .and_then(|f| f.strip_suffix(".pem"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected location {location}"));
        let want = format!("{i:016x}");
        assert!(serial.replace(':', "").to_ascii_lowercase().ends_with(&want), "{location}: serial {serial}, want …{want}");
    }
}

/// The HTTP limits the server enforces itself: a query string over 2,048 bytes gets 400, and a
/// request head larger than the 64 KiB read buffer gets 431; the daemon keeps serving afterwards.
#[test]
fn oversized_query_and_request_head_are_refused() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path("certs")).expect("mkdir");
    config(&sb, "5s");
    let d = start(&sb);

    let (code, body) = http(d.port, "GET", &format!("/api/v1/certificates?source={}", "a".repeat(2048)));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("2048"), "{body}");
    // Just under the limit is fine.
    let (code, body) = http(d.port, "GET", &format!("/api/v1/certificates?source={}", "a".repeat(2040)));
    assert_eq!(code, 200, "{body}");

    // A request head larger than the 64 KiB read buffer: 431, whether it comes at once (1 MiB)
    // or a head already past the limit stalls before its end.
    let big = format!("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Padding: {}\r\nConnection: close\r\n\r\n", "p".repeat(1024 * 1024));
    assert_eq!(exchange(d.port, big.as_bytes()).0, 431, "log:\n{}", log(&sb));
    let mut s = std::net::TcpStream::connect(("127.0.0.1", d.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    s.write_all(format!("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Padding: {}", "p".repeat(70 * 1024)).as_bytes()).expect("write");
    std::thread::sleep(Duration::from_millis(300));
    let _ = s.write_all(b"\r\nConnection: close\r\n\r\n");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 431 "), "{}", &text[..text.len().min(300)]);

    assert_eq!(http(d.port, "GET", "/healthz").0, 200);
}
