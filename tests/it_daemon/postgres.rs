//! certvigil on a PostgreSQL store, through the real binary: the CLI's commands (each on its
//! own async runtime) and the daemon (scan and evaluate jobs, the API) on a fresh database of
//! the test run's cluster; what the configuration refuses about a PostgreSQL store, and that
//! its password never shows.

use crate::common;

use common::daemon::Daemon;
use common::postgres::{fresh_database, texts};
use common::*;
use std::time::Duration;

const TOKEN: &str = "postgres-daemon-token-0123456789";

/// The fixtures' certificates under `certs/` and a configuration whose store is `url`.
fn sandbox(url: &str, rest: &str) -> Sandbox {
    let sb = Sandbox::new();
    let f = fixtures();
    for (file, c) in [("valid", &f.valid), ("expired", &f.expired), ("expiring", &f.expiring), ("codesign", &f.codesign), ("rsa", &f.rsa)] {
        sb.write(&format!("certs/{file}.pem"), &c.cert.pem);
    }
    sb.write(
        "certvigil.yaml",
        format!("store:\n  url: {url}\nsources:\n  - name: files\n    kind: files\n    paths: [certs]\n{rest}"),
    );
    sb
}

#[test]
fn the_cli_scans_lists_and_audits_on_postgres() {
    let url = format!("{}?sslmode=disable", fresh_database("cli"));
    let sb = sandbox(&url, "");
    sb.run(&["scan"]).expect_code(0);
    let fps = texts(&url.replace("?sslmode=disable", ""), "SELECT fingerprint FROM certificates ORDER BY fingerprint");
    let f = fixtures();
    let mut want: Vec<String> = [&f.valid, &f.expired, &f.expiring, &f.codesign, &f.rsa].iter().map(|c| c.cert.fingerprint.clone()).collect();
    want.sort();
    assert_eq!(fps, want, "the five certificates, in the PostgreSQL database");
    let list = sb.run(&["list", "-o", "json"]).expect_code(0);
    let rows: serde_json::Value = serde_json::from_str(&list.stdout).expect("list JSON");
    assert_eq!(rows.as_array().map(Vec::len), Some(5), "{}", list.stdout);
    // A second scan reads nothing new and finds everything still there.
    sb.run(&["scan"]).expect_code(0);
    let runs = texts(&url.replace("?sslmode=disable", ""), "SELECT certs_seen FROM scan_runs ORDER BY id");
    assert_eq!(runs, ["5", "5"]);
    // Evaluation opens alerts (the expired and expiring certificates) in the same database.
    let r = sb.run(&["evaluate"]);
    assert!(r.code == 0 || r.code == 1, "{}{}", r.stdout, r.stderr);
    let kinds = texts(&url.replace("?sslmode=disable", ""), "SELECT DISTINCT kind FROM alerts ORDER BY kind");
    assert!(kinds.contains(&"expired".to_string()), "{kinds:?}");
    let verify = sb.run(&["audit", "verify"]).expect_code(0);
    assert!(verify.stdout.contains("intact"), "{}", verify.stdout);
}

#[test]
fn the_daemon_runs_its_jobs_and_serves_the_api_from_postgres() {
    let url = format!("{}?sslmode=disable", fresh_database("daemon"));
    let sb = sandbox(
        &url,
        "daemon:\n  token: \"${env:CV_TOKEN}\"\njobs:\n  - {name: scan, kind: scan, schedule: '@hourly'}\n  - {name: evaluate, kind: evaluate, schedule: '@hourly'}\n",
    );
    let d = Daemon::start(&sb, sb.command_at(NOW), TOKEN);
    d.wait_jobs_done(Duration::from_secs(60));
    let (code, body) = d.request("GET", "/api/v1/certificates");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let items = v.get("items").unwrap_or(&v);
    assert_eq!(items.as_array().map(Vec::len), Some(5), "{body}");
    let plain = url.replace("?sslmode=disable", "");
    assert_eq!(texts(&plain, "SELECT status FROM job_runs WHERE job = 'scan'"), ["ok"]);
    let actions = texts(&plain, "SELECT action FROM audit_log ORDER BY id");
    assert_eq!(actions.first().map(String::as_str), Some("daemon-start"), "{actions:?}");
    assert!(actions.iter().any(|a| a == "scan"), "{actions:?}");
    let (code, body) = d.get("/readyz", None);
    assert_eq!(code, 200, "{body}");
}

#[test]
fn the_configuration_refuses_what_a_postgres_store_cannot_use() {
    // A password written into the URL: refused with exit 2, and never echoed.
    let sb = sandbox("postgres://cv:hunter2secret@127.0.0.1:1/cv", "");
    let r = sb.run(&["config", "validate"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("store.url") && r.stderr.contains("store.password"), "{}", r.stderr);
    assert!(!r.stderr.contains("hunter2secret") && !r.stdout.contains("hunter2secret"), "{}", r.stderr);

    // Both a file and a database.
    let sb = Sandbox::new();
    sb.write("certvigil.yaml", "store:\n  path: s.db\n  url: postgres://cv@127.0.0.1/cv\n");
    let r = sb.run(&["config", "validate"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not both"), "{}", r.stderr);

    // A password reference that cannot be read: a configuration error (2) when the store opens.
    let url = fresh_database("badpw");
    let sb = sandbox(&format!("{url}?sslmode=disable"), "");
    let cfg = std::fs::read_to_string(sb.config_path()).unwrap();
    sb.write("certvigil.yaml", cfg.replace("store:\n", "store:\n  password: \"${env:CV_NO_SUCH_PASSWORD}\"\n"));
    let r = sb.run(&["list"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("store.password") && r.stderr.contains("CV_NO_SUCH_PASSWORD"), "{}", r.stderr);

    // Nothing listens: the error names the (redacted) database and the refusal, promptly.
    let sb = sandbox("postgres://cv@127.0.0.1:1/cv?sslmode=disable", "");
    let r = sb.run(&["list"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("127.0.0.1:1") && r.stderr.to_lowercase().contains("refused"), "{}", r.stderr);
}
