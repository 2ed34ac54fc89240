//! `certvigil renew` against a real Pebble ACME server (Debian's `pebble` package, installed by
//! `tests/components/acme.sh`). Each test starts its own pebble-challtestsrv (a DNS server that
//! answers 127.0.0.1 for every name) and Pebble on ephemeral loopback ports, with Pebble's
//! HTTP-01 validation port set to the port of certvigil's built-in challenge listener. Pebble's
//! default of rejecting 5% of nonces is left on: retrying them is the ACME client's job.

mod acme_support;
mod common;

use acme_support::*;
use common::Sandbox;
use std::os::unix::fs::PermissionsExt;

#[test]
fn renew_issues_installs_reuses_the_account_and_keeps_previous_files() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    let port = pebble.http_port;
    sb.config(&pebble.managed("web.certvigil.test", port));
    let tls = sb.path("tls");

    // First run: nothing installed, so it is due.
    let run = renew(&sb, &[]).expect_code(0);
    assert!(run.stdout.contains("web: renewed (no certificate installed)"), "{}", run.stdout);

    // The fullchain verifies up to Pebble's root; cert/chain split it correctly.
    let root = pebble.root.to_string_lossy().into_owned();
    let v = openssl(&["verify", "-CAfile", &root, "-untrusted", "chain.pem", "cert.pem"], &tls);
    assert!(v.contains("cert.pem: OK"), "{v}");
    let full = String::from_utf8(read(&tls.join("fullchain.pem"))).expect("utf8");
    let cert = String::from_utf8(read(&tls.join("cert.pem"))).expect("utf8");
    let chain = String::from_utf8(read(&tls.join("chain.pem"))).expect("utf8");
    assert_eq!(full, format!("{cert}{chain}"));
    // The key is private and matches the certificate.
    let mode = |f: &str| std::fs::metadata(tls.join(f)).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode("key.pem"), 0o600);
    assert_eq!(mode("cert.pem"), 0o640);
    let cert_pub = openssl(&["x509", "-noout", "-pubkey", "-in", "cert.pem"], &tls);
    let key_pub = openssl(&["pkey", "-pubout", "-in", "key.pem"], &tls);
    assert_eq!(cert_pub, key_pub);
    let subject = openssl(&["x509", "-noout", "-ext", "subjectAltName", "-in", "cert.pem"], &tls);
    assert!(subject.contains("DNS:web.certvigil.test"), "{subject}");

    // One account, stored 0600.
    let accounts = account_files(&sb);
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert_eq!(std::fs::metadata(&accounts[0]).expect("stat").permissions().mode() & 0o777, 0o600);
    let account = read(&accounts[0]);

    // Not due: nothing happens.
    let run = renew(&sb, &[]).expect_code(0);
    assert!(run.stdout.contains("web: not due"), "{}", run.stdout);
    assert_eq!(read(&tls.join("cert.pem")), cert.as_bytes());
    assert!(!tls.join("cert.pem.previous").exists());

    // Forced: a new certificate and key; the old ones are kept as .previous.
    let old_key = read(&tls.join("key.pem"));
    let run = renew(&sb, &["web", "--force"]).expect_code(0);
    assert!(run.stdout.contains("web: renewed (forced)"), "{}", run.stdout);
    assert_eq!(read(&tls.join("cert.pem.previous")), cert.as_bytes());
    assert_eq!(read(&tls.join("fullchain.pem.previous")), full.as_bytes());
    assert_eq!(read(&tls.join("key.pem.previous")), old_key);
    assert_eq!(mode("key.pem.previous"), 0o600);
    assert_ne!(read(&tls.join("cert.pem")), cert.as_bytes());
    assert_ne!(read(&tls.join("key.pem")), old_key);
    let v = openssl(&["verify", "-CAfile", &root, "-untrusted", "chain.pem", "cert.pem"], &tls);
    assert!(v.contains("cert.pem: OK"), "{v}");
    assert_eq!(openssl(&["x509", "-noout", "-pubkey", "-in", "cert.pem"], &tls), openssl(&["pkey", "-pubout", "-in", "key.pem"], &tls));

    // The account was reused, not registered again.
    assert_eq!(account_files(&sb), accounts);
    assert_eq!(read(&accounts[0]), account);

    // Each renewal is in the audit log.
    let audit = sb
        .db()
        .prepare("SELECT detail FROM audit_log WHERE action = 'renew' ORDER BY id")
        .expect("prepare")
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows");
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(audit[0].contains("\"new_account\":true") && audit[1].contains("\"new_account\":false"), "{audit:?}");

    // A scan of the install directory puts the new certificate in the inventory.
    sb.run_at(unix_now(), &["scan"]).expect_code(0);
    let fp = openssl(&["x509", "-noout", "-fingerprint", "-sha256", "-in", "cert.pem"], &tls);
    let fp = fp.trim().rsplit('=').next().expect("fingerprint").replace(':', "").to_ascii_lowercase();
    let list = sb.run_at(unix_now(), &["list", "-o", "json"]).expect_code(0).json();
    let fps: Vec<String> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["fingerprint"].as_str().unwrap_or_default().replace(':', "").to_ascii_lowercase())
        .collect();
    assert!(fps.contains(&fp), "{fp} not in {fps:?}");
    drop(pebble.dir);
}

#[test]
fn failed_order_leaves_installed_files_untouched() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    sb.config(&pebble.managed("good.certvigil.test", pebble.http_port));
    renew(&sb, &[]).expect_code(0);
    let tls = sb.path("tls");
    let before: Vec<(String, Vec<u8>)> =
        ["cert.pem", "chain.pem", "fullchain.pem", "key.pem"].iter().map(|f| (f.to_string(), read(&tls.join(f)))).collect();

    // The listener is on a port Pebble does not validate: the challenge fails. A new
    // identifier, so no earlier authorization can be reused.
    let elsewhere = free_port();
    sb.config(&pebble.managed("other.certvigil.test", elsewhere));
    let run = renew(&sb, &["--force"]).expect_code(1);
    assert!(run.stderr.contains("web: renewal failed"), "{}", run.stderr);
    let e = run.stderr.to_ascii_lowercase();
    assert!(e.contains("invalid") || e.contains("connection"), "{}", run.stderr);
    for (f, bytes) in &before {
        assert_eq!(&read(&tls.join(f)), bytes, "{f} changed");
        assert!(!tls.join(format!("{f}.previous")).exists(), "{f}.previous written");
    }
    let names: Vec<String> =
        std::fs::read_dir(&tls).expect("dir").map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 4, "stray files: {names:?}");
    let failed: i64 = sb.db().query_row("SELECT count(*) FROM audit_log WHERE action = 'renew-failed'", [], |r| r.get(0)).expect("count");
    assert_eq!(failed, 1);
}
