//! `/metrics` of the real daemon in each `daemon.metrics.compat` mode: which families it
//! exposes (exactly `metrics::families(mode)`), and that the x509-certificate-exporter v4
//! families carry what the store knows — a source up or down after its scan, its objects, its
//! errors by reason, and a CRL the revocation job downloaded from a loopback server and
//! verified, judged stale or not at the daemon's clock.

use crate::common;

use certvigil::config::MetricsCompat;
use common::daemon::Daemon;
use common::http::{HttpServer, Response};
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const TOKEN: &str = "test-token-0123456789abcdef";

/// Series → value, and the families that have a HELP line.
fn parse(text: &str) -> (BTreeMap<String, f64>, BTreeSet<String>) {
    let mut samples = BTreeMap::new();
    let mut families = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            families.insert(rest.split_whitespace().next().unwrap_or("").to_string());
        } else if !line.starts_with('#') && !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
            assert!(samples.insert(series.to_string(), value).is_none(), "duplicate series {line:?}");
        }
    }
    (samples, families)
}

struct Setup {
    root: tempfile::TempDir,
    crl_url: String,
    _server: HttpServer,
    ca_cn: &'static str,
}

/// A CA and a leaf whose CRL distribution point is on a loopback server serving the CA's CRL
/// (thisUpdate NOW, nextUpdate NOW + 7 days, number 42), in `certs/` with a broken PEM file.
fn setup() -> Setup {
    let ca_cn = "certvigil Metrics CA";
    let ca = issue(Spec::issuing_ca("metrics-ca", ca_cn, &[0x51, 1], -365 * DAY, 5 * 365 * DAY, KeyKind::P256), None);
    let der = crl(&ca, &[]);
    let server = HttpServer::start(move |req| if req.path() == "/ca.crl" { Response::ok(der.clone()) } else { Response::empty(404) });
    let crl_url = server.url("/ca.crl");
    let url: &'static str = Box::leak(crl_url.clone().into_boxed_str());
    let leaf = issue(
        Spec { crl: vec![vec![url]], ..Spec::leaf("metrics-leaf", "leaf.metrics.example.test", &[0x52, 1], -DAY, 60 * DAY, KeyKind::P256) },
        Some(&ca),
    );
    let root = tempfile::tempdir().unwrap();
    let certs = root.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("ca.pem"), &ca.cert.pem).unwrap();
    std::fs::write(certs.join("leaf.pem"), &leaf.cert.pem).unwrap();
    std::fs::write(certs.join("broken.pem"), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
    Setup { root, crl_url, _server: server, ca_cn }
}

/// Starts a daemon at `now` with `compat` over the setup's files and a source whose path does
/// not exist, and waits for its first scan and revocation check.
fn daemon(s: &Setup, compat: &str, now: i64) -> (Sandbox, Daemon) {
    let sb = Sandbox::new();
    let root = s.root.path().display();
    // `config` puts the store in the sandbox: each daemon starts from an empty one.
    sb.config(&format!(
        "sources:
  - {{name: certs, kind: files, paths: ['{root}/certs']}}
  - {{name: gone, kind: files, paths: ['{root}/missing']}}
revocation: {{prefer: crl, fallback: false}}
daemon:
  token: \"${{env:CV_TOKEN}}\"
  metrics: {{compat: {compat}}}
jobs:
  - {{name: scan, kind: scan, schedule: '@hourly'}}
  - {{name: revocation, kind: revocation, schedule: '@hourly'}}
"
    ));
    let d = Daemon::start(&sb, sb.command_at(now), TOKEN);
    let start = Instant::now();
    loop {
        let (code, body) = d.get("/api/v1/jobs", Some(TOKEN));
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let done = ["scan", "revocation"].iter().all(|n| {
            v.as_array().into_iter().flatten().any(|j| j["name"] == *n && j["last_run"]["status"] == "ok" && j["running_since"].is_null())
        });
        if done {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "jobs did not finish: {v:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
    (sb, d)
}

fn scrape(d: &Daemon) -> (BTreeMap<String, f64>, BTreeSet<String>) {
    let (code, text) = d.get("/metrics", None);
    assert_eq!(code, 200, "{text}");
    parse(&text)
}

fn wanted(compat: MetricsCompat) -> BTreeSet<String> {
    certvigil::daemon::metrics::families(compat).into_iter().map(String::from).collect()
}

#[test]
fn each_mode_exposes_its_families_with_what_the_store_knows() {
    let s = setup();
    let now = NOW + DAY;
    let crl_labels = format!(r#"{{crl_number="42",issuer_CN="{}",issuer_O="certvigil tests",url="{}"}}"#, s.ca_cn, s.crl_url);

    // v3: exactly the v3 families; the scan's errors in x509_read_errors.
    let (_sb, d) = daemon(&s, "v3", now);
    let (m, families) = scrape(&d);
    assert_eq!(families, wanted(MetricsCompat::V3));
    // broken.pem, and the missing path of `gone`.
    assert_eq!(m["x509_read_errors"], 2.0, "{m:#?}");
    assert!(!m.keys().any(|k| k.starts_with("x509_source_") || k.starts_with("x509_crl_")), "{m:#?}");
    drop(d);

    // v4: exactly the v4 families, per source and per CRL.
    let (_sb, d) = daemon(&s, "v4", now);
    let (m, families) = scrape(&d);
    assert_eq!(families, wanted(MetricsCompat::V4));
    assert!(!m.contains_key("x509_read_errors"));
    let want = [
        (r#"x509_source_up{source_kind="file",source_name="certs"}"#.to_string(), 1.0),
        (r#"x509_source_up{source_kind="file",source_name="gone"}"#.to_string(), 0.0),
        (r#"x509_source_bundles{source_kind="file",source_name="certs"}"#.to_string(), 3.0),
        (r#"x509_source_bundles{source_kind="file",source_name="gone"}"#.to_string(), 0.0),
        (r#"x509_source_errors_total{source_kind="file",source_name="certs",reason="bad_pem"}"#.to_string(), 1.0),
        (r#"x509_source_errors_total{source_kind="file",source_name="gone",reason="not_found"}"#.to_string(), 1.0),
        (format!("x509_crl_next_update{crl_labels}"), (NOW + 7 * DAY) as f64),
        (format!("x509_crl_this_update{crl_labels}"), NOW as f64),
        (format!("x509_crl_number{crl_labels}"), 42.0),
        (format!("x509_crl_stale{crl_labels}"), 0.0),
        (format!("x509_crl_stale_in_seconds{crl_labels}"), (6 * DAY) as f64),
        (format!("x509_crl_fresh_since_seconds{crl_labels}"), DAY as f64),
    ];
    let got: Vec<(String, f64)> =
        m.iter().filter(|(k, _)| k.starts_with("x509_source_") || k.starts_with("x509_crl_")).map(|(k, v)| (k.clone(), *v)).collect();
    let mut want_sorted = want.to_vec();
    want_sorted.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want_sorted);
    drop(d);

    // both: every family, v3's and v4's.
    let (_sb, d) = daemon(&s, "both", now);
    let (m, families) = scrape(&d);
    assert_eq!(families, wanted(MetricsCompat::Both));
    assert_eq!(m["x509_read_errors"], 2.0);
    assert_eq!(m[&format!("x509_crl_stale{crl_labels}")], 0.0);
    drop(d);

    // Eight days on, past nextUpdate: the CRL still verifies and is stale.
    let (_sb, d) = daemon(&s, "v4", NOW + 8 * DAY);
    let (m, _) = scrape(&d);
    assert_eq!(m[&format!("x509_crl_stale{crl_labels}")], 1.0, "{m:#?}");
    assert_eq!(m[&format!("x509_crl_stale_in_seconds{crl_labels}")], -(DAY as f64));
}
