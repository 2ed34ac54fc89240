//! The `renew` job of the real `certvigil run` daemon against a real Pebble: started as
//! systemd starts it (`$NOTIFY_SOCKET`, READY=1 carrying the HTTP port), the job triggered
//! through `POST /api/v1/jobs/renew/run`, its recorded run read back from
//! `GET /api/v1/jobs/renew/runs`, and the certificate checked on disk.

use crate::acme_support;
use crate::common;

use acme_support::*;
use common::Sandbox;
use common::daemon::Daemon;
use std::time::{Duration, Instant};

const TOKEN: &str = "test-token-0123456789abcdef";

fn log(sb: &Sandbox) -> String {
    std::fs::read_to_string(sb.path("daemon.log")).unwrap_or_default()
}

/// Starts `certvigil run` on the real clock (the ACME certificate must be valid "now") and
/// waits for READY=1; the HTTP port comes from its status.
fn start(sb: &Sandbox) -> Daemon {
    let mut cmd = common::certvigil();
    cmd.arg("-c").arg(sb.config_path()).current_dir(sb.dir.path());
    Daemon::start(sb, cmd, TOKEN)
}

/// One HTTP/1.1 request with the API token; returns the status and the body.
fn http(d: &Daemon, method: &str, path: &str) -> (u16, String) {
    let a = d.http(method, path, Some(TOKEN));
    assert!(!a.chunked(), "the API answers with a length: {}", a.head);
    (a.status, a.body)
}

/// Triggers the renew job and waits until its run is recorded as finished; returns that run.
fn trigger_and_wait(d: &Daemon, sb: &Sandbox) -> serde_json::Value {
    let (code, body) = http(d, "POST", "/api/v1/jobs/renew/run");
    assert_eq!(code, 202, "{body}");
    let accepted: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let id = accepted["run_id"].as_i64().unwrap_or_else(|| panic!("no run id: {body}"));
    let start = Instant::now();
    loop {
        let (code, body) = http(d, "GET", "/api/v1/jobs/renew/runs");
        assert_eq!(code, 200, "{body}");
        let runs: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        if let Some(run) = runs.as_array().into_iter().flatten().find(|r| r["id"].as_i64() == Some(id))
            && !run["finished_at"].is_null()
        {
            return run.clone();
        }
        assert!(start.elapsed() < Duration::from_secs(120), "run {id} not finished: {body}\nlog:\n{}", log(sb));
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_daemon_renew_job_issues_installs_and_then_reports_not_due() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    // The scheduled run is far away and a missed one is skipped: only the API triggers it.
    sb.config(&format!(
        "{}daemon:\n  token: \"${{env:CV_TOKEN}}\"\n  shutdown_timeout: 20s\njobs:\n  - {{name: renew, kind: renew, schedule: '@yearly', catch_up: skip}}\n",
        pebble.managed("daemon.certvigil.test", pebble.http_port)
    ));
    let d = start(&sb);
    let tls = sb.path("tls");
    assert!(!tls.join("cert.pem").exists(), "nothing renewed before the trigger");

    let run = trigger_and_wait(&d, &sb);
    assert_eq!(
        (run["kind"].as_str(), run["trigger"].as_str(), run["status"].as_str()),
        (Some("renew"), Some("api"), Some("ok")),
        "{run:#}\nlog:\n{}",
        log(&sb)
    );
    let summary = run["summary"].as_str().unwrap_or_default();
    assert!(summary.starts_with("1 managed certificates: 1 renewed (web: renewed (no certificate installed): serial "), "{summary}");
    let certs = &run["detail"]["certificates"];
    assert_eq!((certs[0]["name"].as_str(), certs[0]["action"].as_str()), (Some("web"), Some("renewed")), "{run:#}");

    // Installed: the chain verifies up to Pebble's root, the key is the certificate's, and the
    // serial is the one the run reported.
    let root = pebble.root.to_string_lossy().into_owned();
    let v = openssl(&["verify", "-CAfile", &root, "-untrusted", "chain.pem", "cert.pem"], &tls);
    assert!(v.contains("cert.pem: OK"), "{v}");
    assert_eq!(openssl(&["x509", "-noout", "-pubkey", "-in", "cert.pem"], &tls), openssl(&["pkey", "-pubout", "-in", "key.pem"], &tls));
    let serial = openssl(&["x509", "-noout", "-serial", "-in", "cert.pem"], &tls);
    let serial = serial.trim().trim_start_matches("serial=").to_ascii_lowercase();
    let reported = certs[0]["serial"].as_str().unwrap_or_default().replace(':', "").to_ascii_lowercase();
    assert_eq!(reported.trim_start_matches('0'), serial.trim_start_matches('0'), "{run:#}");
    let cert = read(&tls.join("cert.pem"));

    // Triggered again: not due, nothing replaced.
    let run = trigger_and_wait(&d, &sb);
    assert_eq!(run["status"].as_str(), Some("ok"), "{run:#}");
    let summary = run["summary"].as_str().unwrap_or_default();
    assert!(summary.starts_with("1 managed certificates: 1 not-due (web: not due (renewal at "), "{summary}");
    assert_eq!(read(&tls.join("cert.pem")), cert);
    assert!(!tls.join("cert.pem.previous").exists());
    drop(d);
}
