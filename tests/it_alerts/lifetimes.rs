//! Lifetimes through the binary: a publicly trusted TLS certificate valid longer than the CA/B
//! limit of its issue date is a `lifetime-over-limit` finding and a private one is not; a
//! short-lived certificate with no CRL or OCSP pointer is revocation `not-applicable`; and `plan`
//! says when the lifetime fraction, not the days, set an expiry window.
//!
//! "Publicly trusted" means chaining to the system's trust store; the test points it at its own
//! root with `SSL_CERT_FILE` (honoured by `rustls-native-certs`, which then reads nothing else),
//! and runs the same inventory with an empty store for the other side of the rule.

#![allow(clippy::unwrap_used)]

use crate::common::{DAY, Issued, KeyKind, NOW, Run, Sandbox, Spec, fixtures, issue, run_with_timeout};
use rcgen::KeyUsagePurpose as K;
use serde_json::Value;

fn cv(sb: &Sandbox, roots: &std::path::Path, args: &[&str]) -> Run {
    let mut cmd = sb.command_at(NOW);
    cmd.args(args).env("SSL_CERT_FILE", roots).env("SSL_CERT_DIR", sb.path("no-such-dir")).env_remove("CERTVIGIL_FAULT");
    run_with_timeout(cmd, crate::common::RUN_LIMIT)
}

fn ca(name: &'static str, cn: &'static str, serial: &'static [u8], parent: Option<&Issued>) -> Issued {
    issue(
        Spec {
            ca_path_len: Some(if parent.is_some() { 0 } else { 1 }),
            key_usage: vec![K::DigitalSignature, K::KeyCertSign, K::CrlSign],
            eku: vec![],
            sans: vec![],
            ..Spec::leaf(name, cn, serial, -400 * DAY, 3650 * DAY, KeyKind::P256)
        },
        parent,
    )
}

/// Findings of `plan -o json` as (kind, common name) pairs, with the JSON.
fn findings(sb: &Sandbox, roots: &std::path::Path) -> (Vec<(String, String)>, Value) {
    let json = cv(sb, roots, &["plan", "-o", "json"]).expect_code(0).json();
    let mut out: Vec<(String, String)> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["kind"].as_str().unwrap().to_string(), f["name"].as_str().unwrap().to_string()))
        .collect();
    out.sort();
    (out, json)
}

#[test]
fn lifetime_limits_bind_public_tls_certificates_and_short_lived_ones_need_no_revocation() {
    let f = fixtures();
    // The public hierarchy: the fixtures' root (in the test's "system" store) and an
    // intermediate under it; a private root that is in no store.
    let inter = ca("life-inter", "certvigil Lifetime Issuing CA", &[0x40, 0x01], Some(&f.root));
    let private = ca("life-private", "certvigil Private Root", &[0x40, 0x02], None);
    // NOW is 2026-06-01; notBefore 2026-05-22 falls under the 200-day limit (from 2026-03-15).
    let over = issue(Spec::leaf("over", "over.example.test", &[0x41, 0x01], -10 * DAY, 240 * DAY, KeyKind::P256), Some(&inter));
    let at_limit =
        issue(Spec::leaf("at_limit", "limit.example.test", &[0x41, 0x02], -10 * DAY, 190 * DAY - 1, KeyKind::P256), Some(&inter));
    let private_over =
        issue(Spec::leaf("private_over", "private.example.test", &[0x41, 0x03], -10 * DAY, 240 * DAY, KeyKind::P256), Some(&private));
    // Six days, no CRL distribution point, no OCSP URL (Let's Encrypt's short-lived profile).
    let short = issue(Spec::leaf("short", "short.example.test", &[0x41, 0x04], -5 * DAY, DAY, KeyKind::P256), Some(&inter));

    let sb = Sandbox::new();
    for c in [&inter, &private, &over, &at_limit, &private_over, &short] {
        sb.write(&format!("certs/{}.pem", c.cert.name), &c.cert.pem);
    }
    let roots = sb.write("roots.pem", &f.root.cert.pem);
    let empty = sb.write("empty-roots.pem", "");
    sb.config("sources:\n  - name: web\n    kind: files\n    paths: [certs]\nalerts:\n  receivers: []\n  routes: []\n");
    cv(&sb, &roots, &["scan", "--no-progress"]).expect_code(0);

    // Revocation: the short-lived certificate is not-applicable, with the reason.
    let checked = cv(&sb, &roots, &["check", "-o", "json"]).expect_code(0).json();
    let short_status = checked.as_array().unwrap().iter().find(|c| c["name"] == "short.example.test").unwrap()["revocation"].clone();
    assert_eq!(short_status["state"], "not-applicable", "{short_status:#}");
    let why = short_status["reason"].as_str().unwrap();
    assert!(why.starts_with("short-lived (6 days) with no CRL distribution point and no OCSP URL"), "{why}");

    let (found, json) = findings(&sb, &roots);
    let over_limit: Vec<&str> = found.iter().filter(|(k, _)| k == "lifetime-over-limit").map(|(_, n)| n.as_str()).collect();
    assert_eq!(over_limit, ["over.example.test"], "{found:?}");
    let finding = json["findings"].as_array().unwrap().iter().find(|f| f["kind"] == "lifetime-over-limit").unwrap();
    assert_eq!(finding["severity"], "critical");
    let reason = finding["reason"].as_str().unwrap();
    assert!(reason.contains("valid for 250 days from 2026-05-22") && reason.contains("more than the 200 days allowed"), "{reason}");
    assert!(reason.contains("SC-081"), "{reason}");
    // Nothing about revocation for the short-lived one: it is not `unknown`.
    assert!(!found.contains(&("revocation-unknown".into(), "short.example.test".into())), "{found:?}");
    // The plan explains the short certificate's late warning by its lifetime.
    let plan = cv(&sb, &roots, &["plan"]).expect_code(0).stdout;
    assert!(
        plan.contains("short.example.test") && plan.contains("; warning window 1 day 23 h = 33% of its 6 days lifetime (not 30 days)"),
        "{plan}"
    );

    // The same inventory when the system trusts none of it: no CA/B finding at all.
    let (found, _) = findings(&sb, &empty);
    assert!(!found.iter().any(|(k, _)| k == "lifetime-over-limit"), "{found:?}");
}
