//! Revocation through the `certvigil` binary, against real components on 127.0.0.1:
//!
//! * a CA run by `openssl ca` (`tests/pki`): revocations with reasons, CRLs from
//!   `openssl ca -gencrl` and the real `openssl ocsp` responder behind the loopback HTTP server
//!   of `tests/pki` (CRLs with a Content-Length, OCSP GET and POST);
//! * a second loopback HTTP server in this file that sends CRLs without a Content-Length
//!   (chunked), and a chunked CRL that never ends;
//! * aiosmtpd (`tests/alerting`) for the daemon's alert mail.
//!
//! `openssl ca` issues with the real clock, so every run here judges at the wall clock (or at
//! an offset from it, through the global clock option that `Sandbox::run_at` passes and the
//! file commands' `--at`), never at the fixed clock of the other CLI tests; the daemon runs on
//! the real clock. Every URL a certificate or configuration carries is
//! `http://127.0.0.1:<ephemeral port>/…`. A missing component fails the test.

#![allow(clippy::unwrap_used)]

use crate::alerting;
use crate::common;
use crate::pki;

use alerting::SmtpServer;
use common::daemon::Daemon;
use common::http::{Body, ChunkWriter, HttpServer, Response};
use common::{RUN_LIMIT, Run, Sandbox, run_with_timeout};
use pki::{KeyKind, OcspMode, TestCa, der, utc_time};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DAY: i64 = 86_400;

fn wall_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A CA (EC P-256) with its loopback HTTP server.
fn new_ca() -> (tempfile::TempDir, TestCa) {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(&dir.path().join("ca"), KeyKind::EcP256);
    (dir, ca)
}

/// A sandbox whose files source `pki` scans `certs/` (holding copies of `files`), with the
/// configuration's `revocation:` set to `revocation` (a YAML flow mapping) plus `extra`; the
/// configuration is validated and the certificates scanned.
fn sandbox(files: &[&Path], revocation: &str, extra: &str) -> Sandbox {
    let sb = Sandbox::new();
    for f in files {
        sb.write(&format!("certs/{}", f.file_name().unwrap().to_string_lossy()), std::fs::read(f).unwrap());
    }
    sb.config(&format!("sources:\n  - {{name: pki, kind: files, paths: [certs]}}\nrevocation: {revocation}\n{extra}"));
    cv(&sb, &["config", "validate"]).expect_code(0);
    cv(&sb, &["scan", "--no-progress"]).expect_code(0);
    sb
}

/// The binary at the wall clock.
fn cv(sb: &Sandbox, args: &[&str]) -> Run {
    sb.run_at(wall_now(), args)
}

/// `check -o json` at `at`: each certificate's JSON by name.
fn check_at(sb: &Sandbox, at: i64) -> BTreeMap<String, Value> {
    let out = sb.run_at(at, &["check", "-o", "json"]).expect_code(0).json();
    out.as_array().unwrap().iter().map(|c| (c["name"].as_str().unwrap().to_string(), c.clone())).collect()
}

fn check(sb: &Sandbox) -> BTreeMap<String, Value> {
    check_at(sb, wall_now())
}

/// The revocation status of `name` (`<name>.example.test`) in a `check -o json` result.
#[track_caller]
fn status<'a>(results: &'a BTreeMap<String, Value>, name: &str) -> &'a Value {
    let cn = format!("{name}.example.test");
    &results.get(&cn).unwrap_or_else(|| panic!("no result for {cn}: {results:#?}"))["revocation"]
}

/// Everything a status says about why: its reason and detail.
fn why(s: &Value) -> String {
    format!("{} {}", s["reason"].as_str().unwrap_or(""), s["detail"].as_str().unwrap_or(""))
}

#[track_caller]
fn assert_state(s: &Value, state: &str, method: &str) {
    assert_eq!((s["state"].as_str(), s["method"].as_str()), (Some(state), Some(method)), "{s:#}");
}

/// `unknown` (never `good`, never `revoked`) with `expected` in its reason or detail.
#[track_caller]
fn assert_unknown_because(s: &Value, expected: &str) {
    assert_eq!(s["state"].as_str(), Some("unknown"), "expected unknown because `{expected}`: {s:#}");
    assert!(why(s).contains(expected), "expected `{expected}` in {s:#}");
}

/// SHA-256 fingerprint of a PEM certificate as openssl computes it (lower-case hex).
fn fingerprint(cert: &Path) -> String {
    let out = pki::openssl(cert.parent().unwrap(), &["x509", "-in", &cert.to_string_lossy(), "-noout", "-fingerprint", "-sha256"]);
    out.trim().rsplit('=').next().unwrap().replace(':', "").to_lowercase()
}

/// When `openssl ca` recorded `name`'s revocation (index.txt, `YYMMDDHHMMSSZ`), as RFC 3339.
fn revoked_at(ca: &TestCa, name: &str) -> String {
    let serial = ca.serial(name);
    let index = std::fs::read_to_string(ca.dir.join("index.txt")).unwrap();
    let line = index.lines().find(|l| l.split('\t').nth(3).is_some_and(|s| s.eq_ignore_ascii_case(&serial))).unwrap();
    let t = line.split('\t').nth(2).unwrap().split(',').next().unwrap();
    format!("20{}-{}-{}T{}:{}:{}Z", &t[0..2], &t[2..4], &t[4..6], &t[6..8], &t[8..10], &t[10..12])
}

/// The real responder's answer (`openssl ocsp`, delegated responder unless `by_ca`, valid for
/// one day) to openssl's own request for `name`, written to `out`.
fn record_ocsp(ca: &TestCa, name: &str, by_ca: bool, out: &str) -> PathBuf {
    record_ocsp_valid_for(ca, name, by_ca, out, Some("1"))
}

/// [`record_ocsp`] with nextUpdate `days` after thisUpdate, or no nextUpdate at all (`None`).
fn record_ocsp_valid_for(ca: &TestCa, name: &str, by_ca: bool, out: &str, days: Option<&str>) -> PathBuf {
    let crt = format!("{name}.crt");
    pki::openssl(&ca.dir, &["ocsp", "-issuer", "ca.crt", "-cert", &crt, "-no_nonce", "-reqout", "rec-req.der"]);
    let (signer, key) = if by_ca { ("ca.crt", "ca.key") } else { ("ocsp.crt", "ocsp.key") };
    let mut args = vec!["ocsp", "-index", "index.txt", "-CA", "ca.crt", "-rsigner", signer, "-rkey", key];
    if let Some(days) = days {
        args.extend(["-ndays", days]);
    }
    args.extend(["-reqin", "rec-req.der", "-respout", out]);
    pki::openssl(&ca.dir, &args);
    ca.dir.join(out)
}

/// `certvigil ocsp FILE --issuer ca.crt ARGS…` at the wall clock (no store needed).
fn ocsp_cmd(sb: &Sandbox, ca: &TestCa, file: &Path, args: &[&str]) -> Run {
    let (file, issuer) = (file.to_string_lossy().into_owned(), ca.dir.join("ca.crt").to_string_lossy().into_owned());
    cv(sb, &[&["ocsp", file.as_str(), "--issuer", issuer.as_str()][..], args].concat())
}

/// `certvigil crl FILE --issuer ca.crt ARGS…` at the wall clock.
fn crl_cmd(sb: &Sandbox, ca: &TestCa, file: &Path, args: &[&str]) -> Run {
    let (file, issuer) = (file.to_string_lossy().into_owned(), ca.dir.join("ca.crt").to_string_lossy().into_owned());
    cv(sb, &[&["crl", file.as_str(), "--issuer", issuer.as_str()][..], args].concat())
}

/// Publishes `www/ca.crl` made by `openssl ca -gencrl` with the CRL extensions of `section`
/// (appended to the CA's configuration as written).
fn publish_crl_with_section(ca: &TestCa, section_name: &str, section: &str) {
    let cnf = std::fs::read_to_string(ca.dir.join("ca.cnf")).unwrap();
    std::fs::write(ca.dir.join("extra.cnf"), format!("{cnf}\n{section}\n")).unwrap();
    pki::openssl(&ca.dir, &["ca", "-config", "extra.cnf", "-gencrl", "-crlexts", section_name, "-out", "crl.pem"]);
    pki::openssl(&ca.dir, &["crl", "-in", "crl.pem", "-outform", "DER", "-out", "www/ca.crl"]);
}

/// Adds a leaf profile `section` whose only CRL distribution point is `url`.
fn crl_profile(ca: &TestCa, section: &str, url: &str) {
    let cnf = std::fs::read_to_string(ca.dir.join("ca.cnf")).unwrap();
    let add = format!(
        "\n[ {section} ]\nbasicConstraints = CA:FALSE\nkeyUsage = digitalSignature\nauthorityKeyIdentifier = keyid\n\
         crlDistributionPoints = URI:{url}\n"
    );
    std::fs::write(ca.dir.join("ca.cnf"), cnf + &add).unwrap();
}

// ---------------------------------------------------------------------------------------------
// 1. `check`, `check --fail-if-revoked` and `list --revocation` over a scanned inventory.
// ---------------------------------------------------------------------------------------------

#[test]
fn check_names_the_revoked_certificate_and_fail_if_revoked_exits_3_only_then() {
    let (_d, ca) = new_ca();
    let good = ca.issue("good", "leaf_ext");
    let bad = ca.issue("bad", "leaf_ext");
    let ca_crt = ca.dir.join("ca.crt");
    ca.publish_crl(); // lists nothing yet
    let (good_fp, bad_fp) = (fingerprint(&good), fingerprint(&bad));
    let sb = sandbox(&[&good, &bad, &ca_crt], "{}", "");

    // Nothing revoked: both good from the CRL, `--fail-if-revoked` exits 0.
    let r = cv(&sb, &["check", "--fail-if-revoked"]).expect_code(0);
    let line = |r: &Run, fp: &str| r.stdout.lines().find(|l| l.starts_with(&fp[..12])).map(str::to_string).unwrap_or_default();
    assert!(line(&r, &bad_fp).contains("bad.example.test") && line(&r, &bad_fp).ends_with(" good"), "{}", r.stdout);
    assert!(r.stdout.contains("3 certificates checked: 2 good, 1 not-applicable"), "{}", r.stdout);

    // `bad` is revoked for key compromise and the CA publishes a new CRL.
    ca.revoke("bad", "keyCompromise");
    ca.publish_crl();
    let when = revoked_at(&ca, "bad");
    // Without the flag, a revoked certificate is reported and the exit code stays 0.
    let r = cv(&sb, &["check"]).expect_code(0);
    let bad_line = line(&r, &bad_fp);
    assert!(bad_line.contains("bad.example.test"), "{}", r.stdout);
    assert!(bad_line.contains(&format!("revoked (keyCompromise) at {when}")), "{}", r.stdout);
    assert!(line(&r, &good_fp).contains("good.example.test") && line(&r, &good_fp).ends_with(" good"), "{}", r.stdout);
    assert!(r.stdout.contains("3 certificates checked: 1 good, 1 not-applicable, 1 revoked"), "{}", r.stdout);
    // With it: 3 while one checked certificate is revoked, 0 when the checked ones are not.
    cv(&sb, &["check", "--fail-if-revoked"]).expect_code(3);
    cv(&sb, &["check", "--fail-if-revoked", &bad_fp[..16]]).expect_code(3);
    cv(&sb, &["check", "--fail-if-revoked", &good_fp[..16]]).expect_code(0);

    // The status as `check -o json` gives it, against what openssl's CA recorded.
    let res = check(&sb);
    let s = status(&res, "bad");
    assert_state(s, "revoked", "crl");
    assert_eq!(s["reason"], "keyCompromise", "{s:#}");
    assert_eq!(res["bad.example.test"]["serial"].as_str().map(str::to_uppercase), Some(ca.serial("bad").to_uppercase()));
    let crl_sha = pki::sha256_hex(&std::fs::read(ca.dir.join("www/ca.crl")).unwrap());
    assert_eq!(s["evidence_sha256"].as_str(), Some(crl_sha.as_str()), "{s:#}");
    assert_eq!(s["source_url"].as_str(), Some(ca.server.url("ca.crl").as_str()), "{s:#}");
    assert_state(status(&res, "good"), "good", "crl");

    // `list --revocation revoked`: exactly the revoked certificate, with its stored status.
    let r = cv(&sb, &["list", "--revocation", "revoked"]).expect_code(0);
    let rows: Vec<&str> = r.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{}", r.stdout);
    assert!(rows[0].starts_with("bad.example.test") && rows[0].contains("revoked") && rows[0].contains(&bad_fp[..12]), "{}", r.stdout);
    let listed = cv(&sb, &["list", "--revocation", "revoked", "-o", "json"]).expect_code(0).json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["name"], "bad.example.test");
    assert!(listed[0].to_string().contains(&bad_fp), "{:#}", listed[0]);
    let rev = &listed[0]["revocation"];
    assert_eq!(
        (rev["state"].as_str(), rev["reason"].as_str(), rev["method"].as_str()),
        (Some("revoked"), Some("keyCompromise"), Some("crl"))
    );
    assert_eq!(rev["evidence_sha256"].as_str(), Some(crl_sha.as_str()), "{rev:#}");
    let goods = cv(&sb, &["list", "--revocation", "good", "-o", "json"]).expect_code(0).json();
    let names: Vec<&str> = goods.as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["good.example.test"]);
    cv(&sb, &["list", "--revocation", "revoked", "--fail-if-any"]).expect_code(3);

    // The same through the real OCSP responder (a fresh store: no answer cached before the
    // revocation).
    let sb = sandbox(&[&good, &bad, &ca_crt], "{prefer: ocsp, fallback: false}", "");
    let r = cv(&sb, &["check", "--fail-if-revoked"]).expect_code(3);
    let bad_line = line(&r, &bad_fp);
    assert!(bad_line.contains(" ocsp ") && bad_line.contains(&format!("revoked (keyCompromise) at {when}")), "{}", r.stdout);
    let res = check(&sb);
    assert_state(status(&res, "bad"), "revoked", "ocsp");
    assert_eq!(status(&res, "bad")["reason"], "keyCompromise");
    assert_state(status(&res, "good"), "good", "ocsp");
    let names: Vec<String> = cv(&sb, &["list", "--revocation", "revoked", "-o", "json"])
        .expect_code(0)
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["bad.example.test"]);
}

// ---------------------------------------------------------------------------------------------
// 2. The daemon: a revocation job and an evaluate job started through the API end in mail.
// ---------------------------------------------------------------------------------------------

const TOKEN: &str = "revocation-cli-token-0123456789";

/// Starts `run --listen 127.0.0.1:0` as systemd starts it (READY=1 on `$NOTIFY_SOCKET` names
/// the port); killed when dropped. No clock override: `run` acts on the real clock (and refuses
/// one outside test builds).
fn start_daemon(sb: &Sandbox) -> Daemon {
    let mut cmd = common::certvigil();
    cmd.arg("-c").arg(sb.config_path()).current_dir(sb.path("."));
    Daemon::start(sb, cmd, TOKEN)
}

/// Starts job `name` through the API, waits for that run to end and checks it ended `ok`.
fn run_job(d: &Daemon, name: &str) -> Value {
    let run = d.run_job(name, Duration::from_secs(60));
    assert_eq!(run["status"], "ok", "run of {name}: {run:#}\nlog:\n{}", d.log_text());
    run
}

#[test]
fn the_daemons_revocation_job_leads_to_a_revoked_alert_by_mail() {
    let (_d, ca) = new_ca();
    let good = ca.issue("good", "leaf_ext");
    let bad = ca.issue("bad", "leaf_ext");
    ca.revoke("bad", "keyCompromise");
    ca.publish_crl();
    let bad_fp = fingerprint(&bad);
    let smtp = SmtpServer::start();

    let jobs = ["scan", "revocation", "evaluate"]
        .iter()
        .map(|k| format!("  - {{name: {k}, kind: {k}, schedule: '@yearly', catch_up: skip}}\n"))
        .collect::<String>();
    let extra = format!(
        "alerts:\n  receivers:\n    - name: ops-mail\n      kind: email\n      to: [ops@example.test]\n      from: certvigil@example.test\n      \
         smtp: {{host: 127.0.0.1, port: {}, tls: none, timeout: 10s}}\n  routes:\n    - name: ops\n      receivers: [ops-mail]\n\
         daemon:\n  token: \"${{env:CV_TOKEN}}\"\n  shutdown_timeout: 20s\njobs:\n{jobs}",
        smtp.port
    );
    // Written into the store only by the daemon's own jobs: the sandbox is not scanned first.
    let sb = Sandbox::new();
    for f in [&good, &bad, &ca.dir.join("ca.crt")] {
        sb.write(&format!("certs/{}", f.file_name().unwrap().to_string_lossy()), std::fs::read(f).unwrap());
    }
    sb.config(&format!("sources:\n  - {{name: pki, kind: files, paths: [certs]}}\nrevocation: {{prefer: crl, fallback: false}}\n{extra}"));
    let mut validate = sb.command_at(wall_now());
    validate.args(["config", "validate"]).env("CV_TOKEN", TOKEN);
    run_with_timeout(validate, RUN_LIMIT).expect_code(0);

    let d = start_daemon(&sb);
    run_job(&d, "scan");
    let (code, body) = d.request("GET", &format!("/api/v1/certificates/{}", &bad_fp[..16]));
    assert_eq!(code, 200, "{body}");
    assert!(!body.contains("\"revoked\""), "nothing is known revoked before the revocation job: {body}");

    let run = run_job(&d, "revocation");
    assert_eq!(run["trigger"], "api", "{run:#}");
    assert!(run["summary"].as_str().unwrap_or("").contains("3 certificates checked"), "{run:#}");
    assert!(run["summary"].as_str().unwrap_or("").contains("1 revoked"), "{run:#}");
    let (code, body) = d.request("GET", &format!("/api/v1/certificates/{}", &bad_fp[..16]));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"revoked\"") && body.contains("keyCompromise"), "the API shows the stored status: {body}");
    assert_eq!(smtp.count(), 0, "no mail before the evaluation");

    run_job(&d, "evaluate");
    let start = Instant::now();
    while smtp.count() == 0 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mails = smtp.messages();
    let revoked: Vec<&alerting::Mail> = mails.iter().filter(|m| m.subject().contains("revoked")).collect();
    assert_eq!(revoked.len(), 1, "one revoked alert: {:?}", mails.iter().map(|m| m.subject()).collect::<Vec<_>>());
    let m = revoked[0];
    let when = revoked_at(&ca, "bad");
    assert_eq!(m.subject(), format!("[certvigil] CRITICAL revoked: bad.example.test — revoked (keyCompromise) at {when} per crl on pki"));
    assert_eq!(m.rcpt_to(), ["ops@example.test"]);
    let text = m.text();
    assert!(text.contains("revoked") && text.contains(&format!("certificate: bad.example.test (sha256 {bad_fp})")), "{text}");
    assert!(text.contains("keyCompromise"), "{text}");
    assert!(mails.iter().all(|m| !m.raw.contains("good.example.test")), "nothing about the good certificate: {mails:#?}");
}

// ---------------------------------------------------------------------------------------------
// 3. What never yields `good`: stale, premature or misdirected OCSP answers; CRLs with an
//    unknown critical extension, indirect CRLs, CRLs over `max_crl_size`. Each case first shows
//    the same setup answering (so it fails for its defect alone), then the defect.
// ---------------------------------------------------------------------------------------------

#[test]
fn an_ocsp_response_past_its_next_update_is_unknown() {
    let (_d, ca) = new_ca();
    let probe = ca.issue("probe", "ocsp_only_ext");
    let sb = sandbox(&[&probe, &ca.dir.join("ca.crt")], "{prefer: ocsp, fallback: false}", "");
    // The responder signs answers valid for one day.
    assert_state(status(&check(&sb), "probe"), "good", "ocsp");
    let asked = ca.server.ocsp_requests();

    // Two days later the cached answer has run out and the responder's answer (made by the
    // real clock, nextUpdate = now + 1 day) is past its nextUpdate.
    let later = wall_now() + 2 * DAY;
    let s = status(&check_at(&sb, later), "probe").clone();
    assert_unknown_because(&s, "response expired at");
    assert!(why(&s).contains(&format!("OCSP {}", ca.server.url("ocsp"))), "{s:#}");
    assert_eq!(ca.server.ocsp_requests(), asked + 1, "the expired cached answer is not reused; the responder is asked again");
    let r = sb.run_at(later, &["check"]).expect_code(0);
    assert!(
        r.stdout.contains("probe.example.test") && r.stdout.contains("unknown: OCSP") && r.stdout.contains("(nextUpdate)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("1 unknown") && !r.stdout.contains(" good"), "{}", r.stdout);

    // A response recorded from the responder, read by `certvigil ocsp`: verified now, expired at
    // `--at` two days on.
    let resp = record_ocsp(&ca, "probe", false, "probe-resp.der");
    let cert = probe.to_string_lossy().into_owned();
    let r = ocsp_cmd(&sb, &ca, &resp, &["--cert", &cert]).expect_code(0);
    assert!(r.stdout.contains("probe.example.test (serial") && r.stdout.contains("): good"), "{}", r.stdout);
    let r = ocsp_cmd(&sb, &ca, &resp, &["--cert", &cert, "--at", &later.to_string()]).expect_code(1);
    assert!(r.stdout.contains("NOT verified: response expired at"), "{}", r.stdout);
    assert!(r.stdout.contains("): unknown") && !r.stdout.contains("good"), "{}", r.stdout);
}

/// RFC 6960 §4.2.2.1: an answer without nextUpdate says newer information is always
/// available, so it is current for a day after its thisUpdate, not for ever (without a nonce it
/// could otherwise be replayed indefinitely).
#[test]
fn an_ocsp_response_without_next_update_is_current_for_a_day_only() {
    let (_d, ca) = new_ca();
    let probe = ca.issue("probe", "ocsp_only_ext");
    let sb = sandbox(&[&probe, &ca.dir.join("ca.crt")], "{prefer: ocsp, fallback: false}", "");
    // No -ndays/-nmin: openssl leaves nextUpdate out.
    let resp = record_ocsp_valid_for(&ca, "probe", true, "nonext.der", None);
    let text = pki::openssl(&ca.dir, &["ocsp", "-respin", "nonext.der", "-resp_text", "-noverify"]);
    assert!(text.contains("This Update") && !text.contains("Next Update"), "{text}");
    let cert = probe.to_string_lossy().into_owned();
    let r = ocsp_cmd(&sb, &ca, &resp, &["--cert", &cert, "--at", &(wall_now() + 3_600).to_string()]).expect_code(0);
    assert!(r.stdout.contains("): good"), "{}", r.stdout);
    let r = ocsp_cmd(&sb, &ca, &resp, &["--cert", &cert, "--at", &(wall_now() + 2 * DAY).to_string()]).expect_code(1);
    assert!(r.stdout.contains("no nextUpdate") && r.stdout.contains("more than a day old"), "{}", r.stdout);
    assert!(!r.stdout.contains("good"), "{}", r.stdout);
}

#[test]
fn an_ocsp_response_from_the_future_beyond_clock_skew_is_unknown() {
    let (_d, ca) = new_ca();
    let probe = ca.issue("probe", "ocsp_only_ext");
    // Signed by the CA itself: no responder certificate whose own validity would be judged.
    ca.server.set_ocsp(OcspMode::ByCa);
    let files = [probe.as_path(), &ca.dir.join("ca.crt")];
    let sb = sandbox(&files, "{prefer: ocsp, fallback: false}", "");

    // The checker's clock an hour behind the responder's: its thisUpdate is an hour ahead.
    let s = status(&check_at(&sb, wall_now() - 3600), "probe").clone();
    assert_unknown_because(&s, "response thisUpdate");
    assert!(why(&s).contains("is in the future"), "{s:#}");
    // Two minutes behind is within the default clock_skew (5m)…
    let tight = sandbox(&files, "{prefer: ocsp, fallback: false, clock_skew: 1m}", "");
    assert_state(status(&check_at(&sb, wall_now() - 120), "probe"), "good", "ocsp");
    // …and beyond a clock_skew of 1m.
    let s = status(&check_at(&tight, wall_now() - 120), "probe").clone();
    assert_unknown_because(&s, "is in the future");

    // `certvigil ocsp` judges a recorded answer the same way.
    let resp = record_ocsp(&ca, "probe", true, "probe-resp.der");
    let cert = probe.to_string_lossy().into_owned();
    let r = ocsp_cmd(&sb, &ca, &resp, &["--cert", &cert, "--at", &(wall_now() - 3600).to_string()]).expect_code(1);
    assert!(r.stdout.contains("NOT verified: response thisUpdate") && r.stdout.contains("is in the future"), "{}", r.stdout);
    assert!(!r.stdout.contains("good"), "{}", r.stdout);
}

#[test]
fn an_ocsp_answer_about_another_certificate_is_unknown() {
    let (_d, ca) = new_ca();
    let probe = ca.issue("probe", "ocsp_only_ext");
    let other = ca.issue("other", "ocsp_only_ext");
    ca.revoke("probe", "keyCompromise");
    // Whatever is asked, the endpoint serves the real responder's (good) answer about `other`.
    let resp = record_ocsp(&ca, "other", false, "www/ocsp.der");
    ca.server.set_ocsp(OcspMode::Recorded);
    let sb = sandbox(&[&probe, &other, &ca.dir.join("ca.crt")], "{prefer: ocsp, fallback: false}", "");
    let res = check(&sb);
    // The answer verifies and answers for `other`…
    assert_state(status(&res, "other"), "good", "ocsp");
    // …and says nothing about `probe`, which must not read good.
    assert_unknown_because(status(&res, "probe"), "response has no answer for this certificate");
    cv(&sb, &["check", "--fail-if-revoked"]).expect_code(0);

    let r = ocsp_cmd(&sb, &ca, &resp, &["--cert", &probe.to_string_lossy()]).expect_code(1);
    assert!(r.stdout.contains("NOT verified: response has no answer for this certificate"), "{}", r.stdout);
    assert!(!r.stdout.contains("good"), "{}", r.stdout);
    let r = ocsp_cmd(&sb, &ca, &resp, &["--serial", &ca.serial("probe")]).expect_code(1);
    assert!(r.stdout.contains("NOT verified: response has no answer for this certificate"), "{}", r.stdout);
    let r = ocsp_cmd(&sb, &ca, &resp, &["--cert", &other.to_string_lossy()]).expect_code(0);
    assert!(r.stdout.contains("other.example.test (serial") && r.stdout.contains("): good"), "{}", r.stdout);
}

/// 1.3.6.1.4.1.55555.1: an extension no implementation knows.
const PRIVATE_OID: &str = "1.3.6.1.4.1.55555.1";
const PRIVATE_OID_DER: [u8; 9] = [0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xb2, 0x03, 0x01];

fn ext(oid_content: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let crit: &[u8] = if critical { &[0x01, 0x01, 0xff] } else { &[] };
    der(0x30, &[&der(0x06, &[oid_content]), crit, &der(0x04, &[value])])
}

fn serial_der(hex_serial: &str) -> Vec<u8> {
    let mut b = hex::decode(if hex_serial.len() % 2 == 1 { format!("0{hex_serial}") } else { hex_serial.to_string() }).unwrap();
    if b[0] & 0x80 != 0 {
        b.insert(0, 0);
    }
    der(0x02, &[&b])
}

/// A v2 CRL of `ca`, signed with its key, listing `listed` (keyCompromise) and serial 7777
/// with the private entry extension, marked critical when `critical`.
fn crl_with_entry_extension(ca: &TestCa, listed: &str, critical: bool) -> Vec<u8> {
    let t = wall_now();
    let reason = ext(&[0x55, 0x1d, 0x15], false, &der(0x0a, &[&[1]]));
    let entries = [
        der(0x30, &[&serial_der(listed), &utc_time(t - 7200), &der(0x30, &[&reason])]),
        der(0x30, &[&serial_der("7777"), &utc_time(t - 7200), &der(0x30, &[&ext(&PRIVATE_OID_DER, critical, &der(0x05, &[]))])]),
    ];
    let aki = ext(&[0x55, 0x1d, 0x23], false, &der(0x30, &[&der(0x80, &[&ca.ski()])]));
    let number = ext(&[0x55, 0x1d, 0x14], false, &der(0x02, &[&[0x20, 0x00]]));
    let tbs = der(
        0x30,
        &[
            &der(0x02, &[&[1]]),
            &pki::ECDSA_SHA256,
            &ca.subject_der(),
            &utc_time(t - 3600),
            &utc_time(t + 7 * DAY),
            &der(0x30, &[&entries.concat()]),
            &der(0xa0, &[&der(0x30, &[&aki, &number])]),
        ],
    );
    ca.sign(&tbs)
}

#[test]
fn a_crl_with_an_unrecognised_critical_extension_is_unknown() {
    let (_d, ca) = new_ca();
    let probe = ca.issue("probe", "crl_only_ext");
    let listed = ca.issue("listed", "crl_only_ext");
    ca.revoke("listed", "keyCompromise");
    let serial = ca.serial("listed");
    let crl = ca.dir.join("www/ca.crl");
    let sb = sandbox(&[&probe, &listed, &ca.dir.join("ca.crt")], "{prefer: crl, fallback: false}", "");
    let probe_s = probe.to_string_lossy().into_owned();

    // A CRL extension marked critical, written by `openssl ca -gencrl` from the configuration.
    // Without `critical` the same CRL answers.
    for critical in [false, true] {
        let value = if critical { "critical,DER:05:00" } else { "DER:05:00" };
        publish_crl_with_section(
            &ca,
            "private_ext",
            &format!("[ private_ext ]\nauthorityKeyIdentifier = keyid\n{PRIVATE_OID} = {value}\n"),
        );
        let res = check(&sb);
        if critical {
            assert_unknown_because(status(&res, "probe"), "unrecognised critical extension");
            assert_unknown_because(status(&res, "listed"), "unrecognised critical extension");
            let r = crl_cmd(&sb, &ca, &crl, &["--cert", &probe_s]);
            assert_eq!(r.code, 1, "{r:?}");
            assert!(format!("{}{}", r.stdout, r.stderr).contains("unrecognised critical extension"), "{r:?}");
            assert!(!r.stdout.contains("good"), "{r:?}");
        } else {
            assert_state(status(&res, "probe"), "good", "crl");
            assert_state(status(&res, "listed"), "revoked", "crl");
            let r = crl_cmd(&sb, &ca, &crl, &["--cert", &probe_s]).expect_code(0);
            assert!(r.stdout.contains("good (not listed)"), "{}", r.stdout);
        }
    }

    // A critical entry extension on another entry (built by DER, signed by the CA key): one bad
    // entry makes the whole CRL unusable.
    for critical in [false, true] {
        std::fs::write(&crl, crl_with_entry_extension(&ca, &serial, critical)).unwrap();
        let res = check(&sb);
        if critical {
            assert_unknown_because(status(&res, "probe"), "unrecognised critical extension");
            assert_unknown_because(status(&res, "listed"), "unrecognised critical extension");
            let r = crl_cmd(&sb, &ca, &crl, &["--cert", &probe_s]);
            assert_eq!(r.code, 1, "{r:?}");
            assert!(!r.stdout.contains("good"), "{r:?}");
        } else {
            assert_state(status(&res, "probe"), "good", "crl");
            let s = status(&res, "listed");
            assert_state(s, "revoked", "crl");
            assert_eq!(s["reason"], "keyCompromise", "{s:#}");
        }
    }
    cv(&sb, &["check", "--fail-if-revoked"]).expect_code(0);
}

#[test]
fn an_indirect_crl_is_unknown() {
    let (_d, ca) = new_ca();
    let probe = ca.issue("probe", "crl_only_ext");
    let gone = ca.issue("gone", "crl_only_ext");
    // Its distribution point names a cRLIssuer (CN=certvigil CRL Issuer).
    let via = ca.issue("via", "crlissuer_ext");
    ca.revoke("gone", "keyCompromise");
    ca.publish_crl();
    let sb = sandbox(&[&probe, &gone, &via, &ca.dir.join("ca.crt")], "{prefer: crl, fallback: false}", "");

    // A direct CRL answers for the certificates whose distribution point it is…
    let res = check(&sb);
    assert_state(status(&res, "probe"), "good", "crl");
    assert_state(status(&res, "gone"), "revoked", "crl");
    // …but not for one whose distribution point says another issuer's CRL is there.
    let s = status(&res, "via");
    assert_unknown_because(s, "cRLIssuer");
    assert!(why(s).contains("indirect"), "{s:#}");

    // The CA marks its CRL indirect (issuingDistributionPoint indirectCRL TRUE).
    let url = ca.server.url("ca.crl");
    publish_crl_with_section(
        &ca,
        "idp_ext",
        &format!(
            "[ idp_ext ]\nauthorityKeyIdentifier = keyid\nissuingDistributionPoint = critical, @idp\n[ idp ]\nfullname = URI:{url}\nindirectCRL = TRUE\n"
        ),
    );
    let res = check(&sb);
    for name in ["probe", "gone"] {
        assert_unknown_because(status(&res, name), "indirect CRL");
    }
    assert_unknown_because(status(&res, "via"), "indirect");
    // `certvigil crl` refuses to read it at all.
    let r = crl_cmd(&sb, &ca, &ca.dir.join("www/ca.crl"), &["--cert", &probe.to_string_lossy()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("not supported: indirect CRL"), "{r:?}");
    assert!(!r.stdout.contains("good"), "{r:?}");
}

/// A loopback HTTP server that sends every body chunked, without a Content-Length:
/// `/big.crl` is the CRL it is given, `/endless.crl` a CRL header followed by zeros, sent until
/// the client goes away (or 1 GiB).
struct ChunkedServer {
    http: HttpServer,
    crl: Arc<Mutex<Vec<u8>>>,
    endless_sent: Arc<AtomicU64>,
    endless_cut: Arc<AtomicBool>,
}

const ENDLESS_LIMIT: u64 = 1 << 30;

impl ChunkedServer {
    fn start() -> ChunkedServer {
        let crl: Arc<Mutex<Vec<u8>>> = Arc::default();
        let (sent, cut) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let (c, s, k) = (Arc::clone(&crl), Arc::clone(&sent), Arc::clone(&cut));
        let http = HttpServer::start(move |req| Self::answer(req.target.as_str(), &c, &s, &k));
        ChunkedServer { http, crl, endless_sent: sent, endless_cut: cut }
    }

    fn url(&self, path: &str) -> String {
        self.http.url(path)
    }

    fn answer(path: &str, crl: &Mutex<Vec<u8>>, sent: &Arc<AtomicU64>, cut: &Arc<AtomicBool>) -> Response {
        let body: ChunkWriter = match path {
            "/big.crl" => {
                let body = crl.lock().unwrap().clone();
                Box::new(move |out| {
                    for part in body.chunks(1000) {
                        out.send(part)?;
                    }
                    Ok(())
                })
            }
            "/endless.crl" => {
                let (sent, cut) = (Arc::clone(sent), Arc::clone(cut));
                Box::new(move |out| {
                    // SEQUENCE of 1 GiB: a CRL that is too large, announced only by its own bytes.
                    let mut first = vec![0x30, 0x84, 0x40, 0x00, 0x00, 0x00];
                    first.resize(16 * 1024, 0);
                    let zeros = vec![0u8; 16 * 1024];
                    let mut block: &[u8] = &first;
                    while sent.load(Ordering::SeqCst) < ENDLESS_LIMIT {
                        if let Err(e) = out.send(block) {
                            cut.store(true, Ordering::SeqCst);
                            return Err(e);
                        }
                        sent.fetch_add(block.len() as u64, Ordering::SeqCst);
                        block = &zeros;
                    }
                    Ok(())
                })
            }
            _ => return Response::empty(404),
        };
        Response { status: 200, headers: vec![("Content-Type".into(), "application/pkix-crl".into())], body: Body::Chunked(body) }
    }
}

#[test]
fn max_crl_size_is_enforced_while_streaming_with_or_without_a_content_length() {
    let (_d, ca) = new_ca();
    let chunked = ChunkedServer::start();
    crl_profile(&ca, "chunked_ext", &chunked.url("big.crl"));
    crl_profile(&ca, "endless_ext", &chunked.url("endless.crl"));
    let probe = ca.issue("probe", "crl_only_ext");
    let listed = ca.issue("listed", "crl_only_ext");
    let streamed = ca.issue("streamed", "chunked_ext");
    let endless = ca.issue("endless", "endless_ext");
    ca.revoke("listed", "keyCompromise");
    // 300 more revocations in the CA's database make a CRL of about 12 KB.
    let mut index = std::fs::read_to_string(ca.dir.join("index.txt")).unwrap();
    for i in 0..300 {
        index.push_str(&format!("R\t491231235959Z\t250101000000Z,superseded\t{:06X}\tunknown\t/CN=old{i}\n", 0xA00000 + i));
    }
    std::fs::write(ca.dir.join("index.txt"), index).unwrap();
    ca.publish_crl();
    let crl_path = ca.dir.join("www/ca.crl");
    let crl = std::fs::read(&crl_path).unwrap();
    assert!(crl.len() > 8 * 1024, "the CRL is {} bytes", crl.len());
    *chunked.crl.lock().unwrap() = crl.clone();
    let ca_crt = ca.dir.join("ca.crt");

    // Under the default limit (256MiB) the CRL answers, with and without a Content-Length.
    let sb = sandbox(&[&probe, &listed, &streamed, &ca_crt], "{prefer: crl, fallback: false}", "");
    let res = check(&sb);
    assert_state(status(&res, "probe"), "good", "crl");
    assert_state(status(&res, "listed"), "revoked", "crl");
    let s = status(&res, "streamed");
    assert_state(s, "good", "crl");
    assert_eq!(s["source_url"].as_str(), Some(chunked.url("big.crl").as_str()), "{s:#}");

    // `max_crl_size: 4KiB`: refused, the limit named, from the declared length and while
    // streaming a chunked body alike — also one that would never end.
    let limited = "{prefer: crl, fallback: false, max_crl_size: 4KiB, timeout: 30s}";
    let sb = sandbox(&[&probe, &listed, &streamed, &endless, &ca_crt], limited, "");
    let started = Instant::now();
    let res = check(&sb);
    let took = started.elapsed();
    for (name, url) in [
        ("probe", ca.server.url("ca.crl")),
        ("listed", ca.server.url("ca.crl")),
        ("streamed", chunked.url("big.crl")),
        ("endless", chunked.url("endless.crl")),
    ] {
        let s = status(&res, name);
        assert_unknown_because(s, &format!("{url}: larger than 4096 bytes"));
    }
    let start = Instant::now();
    while !chunked.endless_cut.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = chunked.endless_sent.load(Ordering::SeqCst);
    assert!(chunked.endless_cut.load(Ordering::SeqCst), "the client never hung up on the endless CRL ({sent} bytes sent)");
    assert!(sent < 64 << 20, "the endless CRL was read far past the limit: {sent} bytes sent");
    assert!(took < Duration::from_secs(25), "the check took {took:?}");
    let r = cv(&sb, &["check"]).expect_code(0);
    assert!(r.stdout.contains("larger than 4096 bytes") && !r.stdout.contains(" good"), "{}", r.stdout);
    assert!(r.stdout.contains("5 certificates checked: 1 not-applicable, 4 unknown"), "{}", r.stdout);

    // `certvigil crl --max-size` refuses the file the same way.
    let r = crl_cmd(&sb, &ca, &crl_path, &["--cert", &probe.to_string_lossy(), "--max-size", "4KiB"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("4096"), "{r:?}");
    assert!(!r.stdout.contains("good"), "{r:?}");
    crl_cmd(&sb, &ca, &crl_path, &["--cert", &probe.to_string_lossy()]).expect_code(0);
}
