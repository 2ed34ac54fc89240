//! What a new PKI admin meets first, through the real binary: exit codes that tell a failing
//! managed certificate from a healthy one, `config validate` resolving secrets the way `run`
//! does (and `run` refusing before it touches the store), the names `list` and `alerts` print
//! accepted by `show`, `ack`, `silence` and `check`, one form for serials and times, and the
//! bundled example certificates never sending anything off the host.

use crate::common;

use crate::cli::run_env;
use common::*;
use std::os::unix::fs::PermissionsExt;

/// A managed certificate whose ACME directory refuses connections (a port nothing listens on).
fn managed_at_refused_port(sb: &Sandbox) {
    let port = common::http::refused_port();
    sb.config(&format!(
        "managed:\n  - name: web\n    identifiers: [web.certvigil.test]\n    issuer: {{directory: 'https://127.0.0.1:{port}/dir'}}\n    \
         challenge: {{type: http-01, listen: '127.0.0.1:0'}}\n    install: {{fullchain: tls/fullchain.pem, key: tls/key.pem}}\n"
    ));
}

#[test]
fn renew_exits_non_zero_while_a_certificate_keeps_failing() {
    let sb = Sandbox::new();
    managed_at_refused_port(&sb);
    // The first attempt fails now: 1.
    let r = sb.run_at(NOW, &["renew"]).expect_code(1);
    assert!(r.stderr.contains("web: renewal failed"), "{}", r.stderr);
    // The next run backs off — nothing attempted, nothing installed: 5, not 0, and it says so
    // on stderr with the time in RFC 3339 and its distance.
    // (The first failure backs off for a minute.)
    let r = sb.run_at(NOW + 30, &["renew"]).expect_code(5);
    assert!(r.stderr.contains("web: backing off after 1 failure(s) until 2026-06-01T00:01:00Z"), "{}", r.stderr);
    assert!(r.stderr.contains("(nothing installed yet); last error:"), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    // Forced past the backoff, it fails again now: 1 (a failure now wins over a backoff).
    sb.run_at(NOW + 40, &["renew", "--force"]).expect_code(1);
    let r = sb.run_at(NOW + 100, &["renew"]).expect_code(5);
    assert!(r.stderr.contains("backing off after 2 failure(s)"), "{}", r.stderr);
    // A healthy configuration says 0.
    sb.config("managed: []\n");
    sb.run_at(NOW + 200, &["renew"]).expect_code(0);
}

#[test]
fn validate_resolves_secrets_as_run_does_and_run_refuses_before_the_store() {
    let sb = Sandbox::new();
    let missing = sb.path("secrets/missing");
    sb.config(&format!(
        "daemon:\n  token: \"${{env:CV_TEST_UNSET_TOKEN}}\"\nsources:\n  - name: web\n    kind: files\n    paths: [certs]\n    \
         passwords: ['${{file:{}}}']\n",
        missing.display()
    ));
    let cfg = sb.config_path().display().to_string();
    let r = sb.run(&["config", "validate"]).expect_code(2);
    assert!(r.stderr.contains(&format!("{cfg}:4:10: daemon.token: environment variable CV_TEST_UNSET_TOKEN is not set")), "{}", r.stderr);
    assert!(r.stderr.contains("sources[0].passwords[0]: cannot read secret file") && r.stderr.contains("missing"), "{}", r.stderr);
    // On another host the secrets are not here: --offline checks the file only.
    let r = sb.run(&["config", "validate", "--offline"]).expect_code(0);
    assert!(r.stdout.contains("2 secret references not resolved: --offline"), "{}", r.stdout);
    // `run` refuses with the same errors and exit 2, having created nothing.
    let r = run_env(&sb, NOW, &[], &["run", "--listen", "127.0.0.1:0"]).expect_code(2);
    assert!(r.stderr.contains("CV_TEST_UNSET_TOKEN"), "{}", r.stderr);
    assert!(!sb.store_path().exists(), "run touched the store before refusing");
    assert!(!sb.path("state").exists(), "run created its state directory before refusing");

    // Set, but too short for a token; an empty file: both refused, the values never printed.
    std::fs::create_dir_all(sb.path("secrets")).expect("mkdir");
    std::fs::write(&missing, "\n").expect("write");
    std::fs::set_permissions(&missing, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let r = run_env(&sb, NOW, &[("CV_TEST_UNSET_TOKEN", "tiny-token")], &["config", "validate"]).expect_code(2);
    assert!(r.stderr.contains("daemon.token: the token in ${env:CV_TEST_UNSET_TOKEN} is shorter than 16 characters"), "{}", r.stderr);
    assert!(r.stderr.contains("sources[0].passwords[0]: ${file:") && r.stderr.contains(" is empty"), "{}", r.stderr);
    assert!(!r.stderr.contains("tiny-token"), "a secret was printed: {}", r.stderr);

    // A secret file anyone may rewrite is refused; one anyone may read is a warning.
    let token = [("CV_TEST_UNSET_TOKEN", "a-token-long-enough-0123")];
    std::fs::write(&missing, "p12-password\n").expect("write");
    std::fs::set_permissions(&missing, std::fs::Permissions::from_mode(0o646)).expect("chmod");
    let r = run_env(&sb, NOW, &token, &["config", "validate"]).expect_code(2);
    assert!(r.stderr.contains("is writable by every user (mode 0646)"), "{}", r.stderr);
    std::fs::set_permissions(&missing, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let r = run_env(&sb, NOW, &token, &["config", "validate"]).expect_code(0);
    assert!(r.stderr.contains("warning: ") && r.stderr.contains("is readable by every user (mode 0644)"), "{}", r.stderr);
    assert!(r.stdout.contains("2 secret references resolved"), "{}", r.stdout);
    std::fs::set_permissions(&missing, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let r = run_env(&sb, NOW, &token, &["config", "validate"]).expect_code(0);
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    assert!(!r.stdout.contains("p12-password") && !r.stdout.contains("a-token-long"), "{}", r.stdout);

    // Two references that resolve to the same token: refused by validate and by run alike.
    sb.config("daemon:\n  token: \"${env:CV_TEST_UNSET_TOKEN}\"\n  viewer_token: \"${env:CV_TEST_VIEWER}\"\n");
    let same = [token[0], ("CV_TEST_VIEWER", token[0].1)];
    let r = run_env(&sb, NOW, &same, &["config", "validate"]).expect_code(2);
    assert!(r.stderr.contains("daemon.viewer_token: it is the same token as daemon.token"), "{}", r.stderr);
    run_env(&sb, NOW, &same, &["run", "--listen", "127.0.0.1:0"]).expect_code(2);
    assert!(!sb.store_path().exists(), "run touched the store before refusing");
}

/// `expiring.example.test` twice: the fixture about to expire (alerting) and a long-lived
/// certificate for the same name (no alert), plus the expired fixture.
fn named_inventory(sb: &Sandbox) -> (TestCert, Issued) {
    let f = fixtures();
    let twin = common::issue(Spec::leaf("twin", "expiring.example.test", &[0x20, 0x01], -DAY, 300 * DAY, KeyKind::P256), Some(&f.root));
    sb.write("certs/expiring.pem", &f.expiring.cert.pem);
    sb.write("certs/expired.pem", &f.expired.cert.pem);
    sb.write("certs/twin.pem", &twin.cert.pem);
    sb.config("sources:\n  - name: web\n    kind: files\n    paths: [certs]\n");
    sb.run(&["scan", "--no-progress"]).expect_code(0);
    sb.run(&["evaluate"]).expect_code(0);
    (f.expiring.cert.clone(), twin)
}

fn alert_of<'a>(alerts: &'a [serde_json::Value], fingerprint: &str) -> &'a serde_json::Value {
    alerts
        .iter()
        .find(|a| a["fingerprint"].as_str() == Some(fingerprint))
        .unwrap_or_else(|| panic!("no alert for {fingerprint}: {alerts:#?}"))
}

#[test]
fn show_ack_silence_and_check_accept_every_name_the_tool_prints() {
    let sb = Sandbox::new();
    let (expiring, twin) = named_inventory(&sb);
    let expired = &fixtures().expired.cert;

    // What `list` and `alerts` display is what they print as the name.
    let list = sb.run(&["list"]).expect_code(0).stdout;
    assert!(list.contains("expiring.example.test") && list.contains("expired.example.test"), "{list}");

    // `show` by each displayed form of the expired certificate (its serial 8FAB has the high
    // bit set: stored with the DER's leading 00).
    let spaced_dn = expired.subject.replace(',', ", ").to_lowercase();
    for form in [
        "expired.example.test".to_string(),
        "EXPIRED.example.TEST".to_string(),
        "CN=expired.example.test".to_string(),
        expired.subject.clone(),
        spaced_dn,
        "8fab".to_string(),
        "00:8f:ab".to_string(),
        "0x008FAB".to_string(),
        expired.fingerprint[..12].to_string(),
        expired.fingerprint[..12].to_uppercase(),
    ] {
        let r = sb.run(&["show", &form]).expect_code(0);
        assert!(r.stdout.contains(&expired.fingerprint), "show {form}: {}", r.stdout);
        // One serial form in human output: upper-case pairs joined by colons.
        assert!(r.stdout.contains("00:8F:AB"), "show {form}: {}", r.stdout);
    }

    // A name two certificates carry: `show` lists both, with fingerprints to choose by.
    let r = sb.run(&["show", "expiring.example.test"]).expect_code(2);
    assert!(r.stderr.contains("`expiring.example.test` matches 2 certificates; name one by its fingerprint"), "{}", r.stderr);
    assert!(r.stderr.contains(&expiring.fingerprint[..16]) && r.stderr.contains(&twin.cert.fingerprint[..16]), "{}", r.stderr);
    assert!(r.stderr.contains("serial 10:04") && r.stderr.contains("serial 20:01"), "{}", r.stderr);

    // `ack` by that name: only one of the two has an open alert, so it is the one. Who
    // acknowledged is the invoking user, not "unknown".
    let r = run_env(&sb, NOW, &[("USER", "alice"), ("SUDO_USER", "")], &["ack", "expiring.example.test"]).expect_code(0);
    assert!(r.stdout.contains("acknowledged by alice"), "{}", r.stdout);
    let alerts = sb.run(&["alerts", "--all", "-o", "json"]).expect_code(0).json();
    let alerts = alerts.as_array().expect("alerts");
    let a = alert_of(alerts, &expiring.fingerprint);
    assert_eq!((a["state"].as_str(), a["acked_by"].as_str()), (Some("acknowledged"), Some("alice")), "{a:#}");
    // The expired certificate, acknowledged by its subject DN as `show` prints it, spaced.
    let dn = expired.subject.replace(',', ", ");
    let r = run_env(&sb, NOW, &[("USER", "root"), ("SUDO_USER", "bob")], &["ack", &dn]).expect_code(0);
    assert!(r.stdout.contains("acknowledged by bob"), "{}", r.stdout);
    let alerts = sb.run(&["alerts", "--all", "-o", "json"]).expect_code(0).json();
    let a = alert_of(alerts.as_array().expect("alerts"), &expired.fingerprint);
    assert_eq!((a["state"].as_str(), a["acked_by"].as_str()), (Some("acknowledged"), Some("bob")), "{a:#}");
    // Named but nothing firing: said so.
    let r = sb.run(&["ack", "00:8f:ab"]).expect_code(2);
    assert!(r.stderr.contains("no firing alert matches `00:8f:ab`"), "{}", r.stderr);

    // `silence add` by name: both carriers of the name are current, so the candidates are
    // listed; by the serial `list` never hides, it silences the one.
    let r = sb.run(&["silence", "add", "expiring.example.test", "--for", "1d", "--reason", "x"]).expect_code(2);
    assert!(r.stderr.contains("matches 2 certificates"), "{}", r.stderr);
    sb.run(&["silence", "add", "20:01", "--for", "1d", "--reason", "twin retired Friday"]).expect_code(0);
    let listed = sb.run(&["silence", "list"]).expect_code(0).stdout;
    assert!(listed.contains(&twin.cert.fingerprint), "{listed}");

    // `check` takes the same names.
    let r = sb.run(&["check", "expired.example.test", "-o", "json"]).expect_code(0).json();
    assert_eq!(r.as_array().map(Vec::len), Some(1), "{r:#}");
}

#[test]
fn the_bundled_examples_name_only_loopback_urls_and_ask_nothing_of_the_network() {
    let sb = Sandbox::new();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/certs");
    sb.config(&format!("sources:\n  - name: examples\n    kind: files\n    paths: ['{}']\n", examples.display()));
    sb.run(&["scan", "--no-progress"]).expect_code(0);
    let list = sb.run(&["list", "-o", "json"]).expect_code(0).json();
    let certs = list.as_array().expect("list");
    assert!(certs.len() >= 3, "{list:#}");
    let mut urls = Vec::new();
    for c in certs {
        for field in ["crl_urls", "ocsp_urls", "ca_issuers_urls"] {
            urls.extend(c[field].as_array().expect(field).iter().map(|u| u.as_str().expect("url").to_string()));
        }
    }
    assert!(!urls.is_empty(), "the web example shows CRL and OCSP pointers: {list:#}");
    for u in &urls {
        assert!(u.starts_with("http://127.0.0.1:1/"), "an example certificate names {u}: checking it would leave the host");
    }
    // Checked, they are `unknown` (the leaves: nothing listens there) or `not-applicable`
    // (roots), and what was tried names only the loopback port.
    let checked = sb.run(&["check", "-o", "json"]).expect_code(0).json();
    let mut unknown = 0;
    for r in checked.as_array().expect("results") {
        let state = r["revocation"]["state"].as_str().unwrap_or("");
        assert!(matches!(state, "unknown" | "not-applicable"), "{r:#}");
        if state == "unknown" {
            unknown += 1;
            let detail = r.to_string();
            assert!(detail.contains("127.0.0.1:1"), "{r:#}");
        }
    }
    assert!(unknown >= 2, "{checked:#}");
    // The default configuration says why, in one line beside its revocation settings.
    let default = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/certvigil.yaml")).expect("read");
    assert!(default.contains("127.0.0.1:1, where nothing\n  # listens: their status is `unknown`"), "{default}");
}
