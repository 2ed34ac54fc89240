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
    sb.write("certvigil.yaml", format!("store:\n  url: {url}\nsources:\n  - name: files\n    kind: files\n    paths: [certs]\n{rest}"));
    sb
}

#[test]
fn the_cli_scans_lists_and_audits_on_postgres() {
    let url = format!("{}?sslmode=disable", fresh_database("cli"));
    let sb = sandbox(&url, "");
    sb.run(&["scan"]).expect_code(0);
    let fps = texts(&url.replace("?sslmode=disable", ""), "SELECT fingerprint FROM certificates ORDER BY fingerprint");
    let f = fixtures();
    let mut want: Vec<String> =
        [&f.valid, &f.expired, &f.expiring, &f.codesign, &f.rsa].iter().map(|c| c.cert.fingerprint.clone()).collect();
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

/// A private PostgreSQL cluster of this test's own, serving TLS with a certificate for
/// 127.0.0.1 signed by a CA made here; stopped when dropped.
struct TlsCluster {
    dir: std::path::PathBuf,
    url: String,
    ca_pem: String,
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash").arg("tests/postgres.sh").arg("stop").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ca(name: &str) -> (rcgen::Issuer<'static, rcgen::KeyPair>, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    let pem = p.self_signed(&key).unwrap().pem();
    (rcgen::Issuer::new(p, key), pem)
}

fn tls_cluster() -> TlsCluster {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // A fresh directory the cluster's unprivileged user can reach (tests/postgres.sh).
    let out = std::process::Command::new("mktemp").arg("-d").output().unwrap();
    let dir = std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let started = std::process::Command::new("bash").arg("tests/postgres.sh").arg("start").arg(&dir).output().unwrap();
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));
    let admin = String::from_utf8(started.stdout).unwrap().trim().to_string();
    let (issuer, ca_pem) = ca("certvigil test database CA");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    p.subject_alt_names.push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = p.signed_by(&key, &issuer).unwrap();
    let (crt, keyf) = (dir.join("server.crt"), dir.join("server.key"));
    std::fs::write(&crt, cert.pem()).unwrap();
    std::fs::write(&keyf, key.serialize_pem()).unwrap();
    std::fs::set_permissions(&keyf, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The server runs as the data directory's owner and must own its key.
    let owner = std::fs::metadata(dir.join("data")).unwrap();
    for f in [&crt, &keyf] {
        std::os::unix::fs::chown(f, Some(owner.uid()), Some(owner.gid())).unwrap();
    }
    let mut c = common::postgres::client(&admin);
    for stmt in [
        format!("ALTER SYSTEM SET ssl_cert_file = '{}'", crt.display()),
        format!("ALTER SYSTEM SET ssl_key_file = '{}'", keyf.display()),
        "ALTER SYSTEM SET ssl = on".to_string(),
        "SELECT pg_reload_conf()".to_string(),
    ] {
        c.batch_execute(&stmt).unwrap_or_else(|e| panic!("{stmt}: {e}"));
    }
    let t0 = std::time::Instant::now();
    while c.query_one("SHOW ssl", &[]).unwrap().get::<_, String>(0) != "on" {
        assert!(t0.elapsed() < Duration::from_secs(10), "the cluster did not turn TLS on");
        std::thread::sleep(Duration::from_millis(50));
    }
    c.batch_execute("CREATE DATABASE cv_tls").unwrap();
    let url = admin.rsplit_once('/').map(|(base, _)| format!("{base}/cv_tls")).unwrap();
    TlsCluster { dir, url, ca_pem }
}

#[test]
fn tls_to_the_database_is_verified_against_the_configured_ca() {
    let tls = tls_cluster();
    let sb = sandbox(&format!("{}?sslmode=require", tls.url), "");
    let cfg = std::fs::read_to_string(sb.config_path()).unwrap();
    let with_ca = |pem: &str| {
        sb.write("db-ca.pem", pem);
        sb.write("certvigil.yaml", cfg.replace("store:\n", "store:\n  ca_file: db-ca.pem\n"));
    };
    // The right CA: the store works over TLS, and the server says the session is encrypted.
    with_ca(&tls.ca_pem);
    sb.run(&["scan"]).expect_code(0);
    assert_eq!(sb.run(&["list", "-o", "json"]).expect_code(0).json().as_array().map(Vec::len), Some(5));
    let ssl_used = texts(&tls.url, "SELECT count(*) FROM pg_stat_ssl WHERE ssl");
    assert_eq!(ssl_used.len(), 1);
    // Another CA: refused, saying why; nothing is read or written.
    let (_, other) = ca("another CA");
    with_ca(&other);
    let r = sb.run(&["list"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stderr.contains("UnknownIssuer") || r.stderr.to_lowercase().contains("certificate"), "{}", r.stderr);
    // No CA file: the system's roots do not know this CA either.
    sb.write("certvigil.yaml", &cfg);
    let r = sb.run(&["list"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("UnknownIssuer") || r.stderr.to_lowercase().contains("certificate"), "{}", r.stderr);
    // sslmode=require against a server without TLS (the test run's cluster) is refused too.
    let plain = fresh_database("notls");
    let sb2 = sandbox(&format!("{plain}?sslmode=require"), "");
    let r = sb2.run(&["list"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.to_lowercase().contains("tls") || r.stderr.to_lowercase().contains("ssl"), "{}", r.stderr);
}
