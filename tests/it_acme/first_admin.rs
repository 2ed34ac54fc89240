//! What a new admin of a private ACME CA meets, against a real Pebble: a directory whose TLS
//! certificate the system does not trust is named as such with the setting that fixes it,
//! `renew` prints times and serials in the one human form, and a revocation shows in `list`
//! and `show` at once, even when no scan ever read the certificate.

use crate::acme_support;
use crate::common;

use acme_support::*;
use common::Sandbox;

#[test]
fn an_untrusted_acme_directory_says_to_set_ca_bundle() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    let bundle = format!("      ca_bundle: {}\n", pebble.tls_ca.display());
    let config = pebble.managed("untrusted.certvigil.test", pebble.http_port);
    assert!(config.contains(&bundle), "{config}");
    // Pebble's TLS certificate comes from its own test CA, which no trust store holds.
    sb.config(&config.replace(&bundle, ""));
    let r = renew(&sb, &[]).expect_code(1);
    assert!(
        r.stderr.contains(
            "web: renewal failed: the ACME directory's TLS certificate is not trusted (UnknownIssuer): set issuer.ca_bundle to the PEM certificate of the CA that issued it"
        ),
        "{}",
        r.stderr
    );
    // The underlying error is still there, after the advice.
    assert!(r.stderr.contains("invalid peer certificate: UnknownIssuer"), "{}", r.stderr);
    assert!(!sb.path("tls/fullchain.pem").exists());
    // With the bundle, the same configuration issues.
    sb.config(&config);
    renew(&sb, &[]).expect_code(0);
    drop(pebble.dir);
}

#[test]
fn renew_prints_one_form_and_a_revocation_is_in_the_inventory_at_once() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    sb.config(&pebble.managed("inventory.certvigil.test", pebble.http_port));
    let r = renew(&sb, &[]).expect_code(0);
    // `web: renewed (…): serial 0A:1B:…, expires 2027-…T…Z (in 364 d)`: no Unix seconds, the
    // serial as `show` prints it.
    let line = r.stdout.lines().find(|l| l.starts_with("web: renewed")).unwrap_or_else(|| panic!("{}", r.stdout));
    let serial = line.split("serial ").nth(1).and_then(|s| s.split(',').next()).expect("serial");
    assert!(
        serial.len() >= 2 && serial.split(':').all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())),
        "{line}"
    );
    let expires = line.split("expires ").nth(1).expect("expires");
    assert!(
        expires.len() > 22 && expires.as_bytes()[4] == b'-' && expires[..20].ends_with('Z') && expires[20..].starts_with(" (in "),
        "{line}"
    );

    // Nothing scanned yet: the inventory is empty.
    let list = sb.run_at(unix_now(), &["list", "-o", "json"]).expect_code(0).json();
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list:#}");
    let r = certvigil_in(&sb, &["revoke", "web", "--reason", "superseded"]).expect_code(0);
    assert!(r.stdout.contains(&format!("web: serial {serial} revoked (superseded)")), "{}", r.stdout);

    // Revoked and in the inventory at once, without a scan: `list` (also filtered on the
    // revocation), `show` by the serial in lower case without colons, and the history says how
    // it got there.
    let list = sb.run_at(unix_now(), &["list", "--revocation", "revoked", "-o", "json"]).expect_code(0).json();
    let rows = list.as_array().expect("list");
    assert_eq!(rows.len(), 1, "{list:#}");
    assert_eq!(
        rows[0]["serial"].as_str().map(|s| s.trim_start_matches("00").to_string()),
        Some(serial.replace(':', "").trim_start_matches("00").to_string())
    );
    let typed = serial.replace(':', "").to_lowercase();
    let show = sb.run_at(unix_now(), &["show", &typed]).expect_code(0).stdout;
    assert!(show.contains("revoked") && show.contains("superseded") && show.contains(serial), "{show}");
    assert!(show.contains("managed:web"), "the history names where it came from: {show}");
    // A later scan finds the same certificate in the install files: one certificate, now
    // sighted, still revoked.
    sb.run_at(unix_now(), &["scan", "--no-progress"]).expect_code(0);
    let list = sb.run_at(unix_now(), &["list", "--revocation", "revoked", "-o", "json"]).expect_code(0).json();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list:#}");
    drop(pebble.dir);
}
