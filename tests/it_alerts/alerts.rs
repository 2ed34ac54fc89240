//! Alerting end to end: the real `certvigil` binary (scan, plan, evaluate, digest, outbox, ack,
//! silence, alert test) against real receivers on 127.0.0.1 — aiosmtpd writing a Maildir (plain
//! and STARTTLS with a test CA), and loopback HTTP endpoints standing in for a signed webhook,
//! Slack and PagerDuty (`tests/alerting`). Every run uses the fixed clock through `--now`; the
//! certificates come from `tests/common`'s fixtures, written into each test's own sandbox.
//!
//! Every assertion is about what the receivers actually got (messages in the Maildir, requests
//! on the wire) and what the outbox says, never about certvigil's own view of having sent.

use crate::alerting;
use crate::common;

use alerting::*;
use common::*;
use serde_json::Value;
use sha2::Digest;
use std::collections::BTreeMap;

const HOOK_SECRET_ENV: &str = "CV_TEST_HOOK_SECRET";
const HOOK_SECRET: &str = "whsec_certvigil-test-7c1d";
const PD_KEY_ENV: &str = "CV_TEST_PD_ROUTING_KEY";
const PD_KEY: &str = "R0UT1NGKEY0123456789abcdefABCDEF";
const HOUR: i64 = 3_600;

/// The binary at `now` with the receivers' secrets in its environment (and no fault hook).
fn cv_env(sb: &Sandbox, now: i64, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = sb.command_at(now);
    cmd.args(args).env(HOOK_SECRET_ENV, HOOK_SECRET).env(PD_KEY_ENV, PD_KEY).env_remove("CERTVIGIL_FAULT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_with_timeout(cmd, RUN_LIMIT)
}

fn cv(sb: &Sandbox, now: i64, args: &[&str]) -> Run {
    cv_env(sb, now, &[], args)
}

#[track_caller]
fn scan(sb: &Sandbox, now: i64) -> Run {
    cv(sb, now, &["scan", "--no-progress"]).expect_code(0)
}

#[track_caller]
fn evaluate(sb: &Sandbox, now: i64, code: i32) -> Run {
    cv(sb, now, &["evaluate"]).expect_code(code)
}

/// Notifications not yet sent (`outbox -o json`).
fn pending(sb: &Sandbox) -> Vec<Value> {
    cv(sb, NOW, &["outbox", "-o", "json"]).expect_code(0).json().as_array().expect("array").clone()
}

/// Every notification (`outbox --all -o json`), oldest first.
fn outbox_all(sb: &Sandbox) -> Vec<Value> {
    let mut v = cv(sb, NOW, &["outbox", "--all", "-o", "json"]).expect_code(0).json().as_array().expect("array").clone();
    v.sort_by_key(|r| r["id"].as_i64());
    v
}

/// Alerts by certificate fingerprint (`alerts --all -o json`).
fn alerts_by_fp(sb: &Sandbox) -> BTreeMap<String, Value> {
    let rows = cv(sb, NOW, &["alerts", "--all", "-o", "json"]).expect_code(0).json();
    rows.as_array().expect("array").iter().map(|a| (a["fingerprint"].as_str().expect("fp").to_string(), a.clone())).collect()
}

fn alert_id(sb: &Sandbox, fp: &str) -> i64 {
    alerts_by_fp(sb)[fp]["id"].as_i64().expect("alert id")
}

/// The Message-ID certvigil derives from an idempotency key (so a resend carries the same one).
fn message_id(key: &str) -> String {
    format!("<{}@certvigil>", hex::encode(&sha2::Sha256::digest(key.as_bytes())[..16]))
}

fn put(sb: &Sandbox, name: &str, cert: &TestCert) {
    sb.write(&format!("certs/{name}.pem"), &cert.pem);
}

// --- configuration -----------------------------------------------------------------------------

fn mail_rx(name: &str, port: u16) -> String {
    format!(
        "    - name: {name}\n      kind: email\n      to: [ops@example.test, pki@example.test]\n      from: certvigil@example.test\n      \
         smtp: {{host: 127.0.0.1, port: {port}, tls: none, timeout: 10s}}\n"
    )
}

fn starttls_rx(name: &str, port: u16, ca_file: Option<&std::path::Path>) -> String {
    let ca = ca_file.map(|p| format!(", ca_file: '{}'", p.display())).unwrap_or_default();
    format!(
        "    - name: {name}\n      kind: email\n      to: [ops@example.test]\n      from: certvigil@example.test\n      \
         smtp: {{host: 127.0.0.1, port: {port}, tls: starttls, timeout: 10s{ca}}}\n"
    )
}

fn hook_rx(name: &str, url: &str) -> String {
    format!("    - name: {name}\n      kind: webhook\n      url: {url}\n      secret: '${{env:{HOOK_SECRET_ENV}}}'\n      timeout: 10s\n")
}

fn slack_rx(name: &str, url: &str) -> String {
    format!("    - name: {name}\n      kind: slack\n      url: {url}\n      timeout: 10s\n")
}

fn pd_rx(name: &str, url: &str) -> String {
    format!("    - name: {name}\n      kind: pagerduty\n      routing_key: '${{env:{PD_KEY_ENV}}}'\n      url: {url}\n      timeout: 10s\n")
}

/// `certvigil.yaml`: one files source `web` over `certs/`, the receivers and the routes.
fn configure(sb: &Sandbox, receivers: &[String], routes: &str) {
    let cfg = format!(
        "sources:\n  - name: web\n    kind: files\n    paths: [certs]\nalerts:\n  retry_initial: 30s\n  retry_max: 1h\n  receivers:\n{}  routes:\n{routes}",
        receivers.concat()
    );
    sb.config(&cfg);
    cv(sb, NOW, &["config", "validate"]).expect_code(0);
}

// --- expected texts at NOW ---------------------------------------------------------------------

const EXPIRED_SUBJECT: &str = "[certvigil] CRITICAL expired: expired.example.test — expired on 2026-05-21 (10 days ago) on web";
const EXPIRING_SUBJECT: &str =
    "[certvigil] WARNING expiring: expiring.example.test — certificate expires on 2026-06-11T01:00:00Z (in 10 days) on web";

/// Everything a finding's email must carry.
/// `what` is (event, severity, kind, route).
#[track_caller]
fn assert_finding_mail(m: &Mail, subject: &str, key: &str, what: (&str, &str, &str, &str), cert: &TestCert) {
    let (event, severity, kind, route) = what;
    assert_eq!(m.subject(), subject, "{}", m.raw);
    assert_eq!(m.must("From"), "certvigil@example.test");
    assert_eq!(m.must("To"), "ops@example.test, pki@example.test");
    assert_eq!(m.rcpt_to(), vec!["ops@example.test".to_string(), "pki@example.test".to_string()]);
    assert_eq!(m.must("X-Certvigil-Key"), key);
    assert_eq!(m.must("Message-ID"), message_id(key));
    assert_eq!(m.content_type, "multipart/alternative", "{}", m.raw);
    let types: Vec<&str> = m.parts.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, vec!["text/plain", "text/html"], "{}", m.raw);
    let text = m.text();
    assert!(text.starts_with(&format!("{} {severity} {kind} [{route}]\n", event.to_uppercase())), "{text}");
    assert!(text.contains(&format!("certificate: {} (sha256 {})", cert.cn, cert.fingerprint)), "{text}");
    assert!(text.contains("  action: "), "{text}");
    assert!(text.contains("seen in: web"), "{text}");
    let html = m.html();
    assert!(html.starts_with("<html>") && html.contains("<table"), "{html}");
    assert!(html.contains(&format!("<b>{}</b>", severity.to_uppercase())), "{html}");
    assert!(html.contains(&format!("<td>{event} {kind}</td>")), "{html}");
    assert!(html.contains(&format!("<code>{}</code>", cert.fingerprint)), "{html}");
}

fn mail_with_key<'a>(mails: &'a [Mail], key: &str) -> &'a Mail {
    let found: Vec<&Mail> = mails.iter().filter(|m| m.header("X-Certvigil-Key") == Some(key)).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one message with key {key}; keys: {:?}",
        mails.iter().map(|m| m.header("X-Certvigil-Key")).collect::<Vec<_>>()
    );
    found[0]
}

// --- the tests ---------------------------------------------------------------------------------

#[test]
fn evaluate_emails_each_new_finding_once_and_reminds_after_the_interval() {
    let f = fixtures();
    let smtp = SmtpServer::start();
    let sb = Sandbox::new();
    put(&sb, "expired", &f.expired.cert);
    put(&sb, "expiring", &f.expiring.cert);
    configure(&sb, &[mail_rx("ops-mail", smtp.port)], "    - name: ops\n      receivers: [ops-mail]\n      renotify: {critical: 6h}\n");

    scan(&sb, NOW);
    let ev = evaluate(&sb, NOW, 0);
    assert!(
        ev.stdout.contains("2 findings: 2 alerts opened, 0 resolved, 0 escalated; 2 notifications queued, 2 sent, 0 failed"),
        "{}",
        ev.stdout
    );
    let mails = smtp.messages();
    assert_eq!(mails.len(), 2, "one email per new finding");
    let expired_id = alert_id(&sb, &f.expired.cert.fingerprint);
    let expiring_id = alert_id(&sb, &f.expiring.cert.fingerprint);
    let k1 = format!("alert/{expired_id}/1/ops/ops-mail/firing");
    let k2 = format!("alert/{expiring_id}/1/ops/ops-mail/firing");
    assert_finding_mail(mail_with_key(&mails, &k1), EXPIRED_SUBJECT, &k1, ("firing", "critical", "expired", "ops"), &f.expired.cert);
    assert_finding_mail(mail_with_key(&mails, &k2), EXPIRING_SUBJECT, &k2, ("firing", "warning", "expiring", "ops"), &f.expiring.cert);
    assert!(mail_with_key(&mails, &k1).text().contains("expired on 2026-05-21 (10 days ago)"));

    // Duplicate scans and evaluations inside the re-notify interval: nothing more is sent.
    for _ in 0..2 {
        scan(&sb, NOW + HOUR);
        let ev = evaluate(&sb, NOW + HOUR, 0);
        assert!(ev.stdout.contains("0 alerts opened, 0 resolved, 0 escalated; 0 notifications queued, 0 sent"), "{}", ev.stdout);
    }
    assert_eq!(smtp.count(), 2, "no duplicate notification for an unchanged finding");

    // Past the 6 h critical interval: one reminder, for the critical finding only (warnings
    // re-notify after the default 7 days).
    scan(&sb, NOW + 7 * HOUR);
    evaluate(&sb, NOW + 7 * HOUR, 0);
    let mails = smtp.messages();
    assert_eq!(mails.len(), 3, "exactly one reminder");
    let k3 = format!("alert/{expired_id}/2/ops/ops-mail/reminder");
    assert_finding_mail(mail_with_key(&mails, &k3), EXPIRED_SUBJECT, &k3, ("reminder", "critical", "expired", "ops"), &f.expired.cert);
    // And not again until the next interval.
    scan(&sb, NOW + 8 * HOUR);
    evaluate(&sb, NOW + 8 * HOUR, 0);
    assert_eq!(smtp.count(), 3);
    assert!(pending(&sb).is_empty());
}

#[test]
fn starttls_delivery_needs_the_ca_and_a_tls_failure_stays_pending() {
    let f = fixtures();
    let tmp = tempfile::tempdir().expect("tempdir");
    let tls = smtp_tls_files(tmp.path());
    let smtp = SmtpServer::start_tls(&tls);
    // The server refuses mail before STARTTLS, so anything it accepts came over TLS.
    smtp.assert_refuses_plain_mail();
    let sb = Sandbox::new();
    put(&sb, "expired", &f.expired.cert);
    let routes = "    - name: ops\n      receivers: [ops-mail]\n";

    // Without ca_file the server's certificate is not trusted: nothing is sent.
    configure(&sb, &[starttls_rx("ops-mail", smtp.port, None)], routes);
    scan(&sb, NOW);
    let ev = evaluate(&sb, NOW, 1);
    assert!(ev.stdout.contains("0 sent, 1 failed"), "{}", ev.stdout);
    let rows = pending(&sb);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["attempts"], 1);
    assert_eq!(rows[0]["sent_at"], Value::Null);
    assert_eq!(rows[0]["next_attempt_at"], NOW + 30);
    let err = rows[0]["last_error"].as_str().expect("last_error");
    assert!(err.starts_with(&format!("SMTP 127.0.0.1:{}: ", smtp.port)), "{err}");
    assert!(err.contains("invalid peer certificate: UnknownIssuer"), "a TLS error naming the cause: {err}");
    let text = cv(&sb, NOW, &["outbox"]).expect_code(0).stdout;
    assert!(text.contains("pending, attempt 2 at 2026-06-01T00:00:30Z") && text.contains("last error: "), "{text}");
    assert_eq!(smtp.count(), 0);

    // With the test CA: delivered over STARTTLS at the next attempt.
    configure(&sb, &[starttls_rx("ops-mail", smtp.port, Some(&tls.ca))], routes);
    let ev = evaluate(&sb, NOW + 31, 0);
    assert!(ev.stdout.contains("1 sent, 0 failed"), "{}", ev.stdout);
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    let key = rows[0]["key"].as_str().expect("key");
    assert_eq!(mails[0].must("X-Certvigil-Key"), key);
    assert_eq!(mails[0].must("Message-ID"), message_id(key));
    assert_eq!(mails[0].subject(), EXPIRED_SUBJECT);
    assert_eq!(mails[0].rcpt_to(), vec!["ops@example.test".to_string()]);
    assert!(pending(&sb).is_empty());
    let all = outbox_all(&sb);
    assert_eq!(
        (all[0]["attempts"].clone(), all[0]["last_error"].clone(), all[0]["sent_at"].clone()),
        (2.into(), Value::Null, (NOW + 31).into())
    );
}

#[test]
fn digest_route_holds_warnings_for_one_email_and_sends_criticals_at_once() {
    let f = fixtures();
    let specs: [(&'static [u8], &'static str, i64); 3] = [
        (&[0x30, 0x10], "soon10.example.test", 10),
        (&[0x30, 0x12], "soon12.example.test", 12),
        (&[0x30, 0x14], "soon14.example.test", 14),
    ];
    let soon: Vec<Issued> = specs
        .into_iter()
        .map(|(serial, cn, days)| issue(Spec::leaf("soon", cn, serial, -300 * DAY, days * DAY, KeyKind::P256), Some(&f.root)))
        .collect();
    let smtp = SmtpServer::start();
    let sb = Sandbox::new();
    put(&sb, "expired", &f.expired.cert);
    for s in &soon {
        put(&sb, &s.cert.cn, &s.cert);
    }
    configure(&sb, &[mail_rx("ops-mail", smtp.port)], "    - name: weekly\n      mode: digest\n      receivers: [ops-mail]\n");

    scan(&sb, NOW);
    let ev = evaluate(&sb, NOW, 0);
    assert!(
        ev.stdout.contains("4 findings: 4 alerts opened") && ev.stdout.contains("4 notifications queued, 1 sent, 0 failed"),
        "{}",
        ev.stdout
    );
    // The critical finding went out at once, on its own.
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    let k = format!("alert/{}/1/weekly/ops-mail/firing", alert_id(&sb, &f.expired.cert.fingerprint));
    assert_finding_mail(&mails[0], EXPIRED_SUBJECT, &k, ("firing", "critical", "expired", "weekly"), &f.expired.cert);
    // The warnings wait for the digest.
    let held = pending(&sb);
    assert_eq!(held.len(), 3, "{held:?}");
    assert!(held.iter().all(|r| r["held"] == true && r["severity"] == "warning" && r["attempts"] == 0), "{held:?}");
    let text = cv(&sb, NOW, &["outbox"]).expect_code(0).stdout;
    assert_eq!(text.matches("held for digest").count(), 3, "{text}");
    // Evaluations do not send held notifications.
    evaluate(&sb, NOW + HOUR, 0);
    assert_eq!(smtp.count(), 1);

    let d = cv(&sb, NOW + 2 * HOUR, &["digest"]).expect_code(0);
    assert!(d.stdout.contains("1 digests sent, 0 failed"), "{}", d.stdout);
    let mails = smtp.messages();
    assert_eq!(mails.len(), 2, "one digest email for the three warnings");
    let digest = &mails[1];
    assert_eq!(digest.subject(), "[certvigil] 3 certificates expire within 14 days on web");
    assert!(digest.must("X-Certvigil-Key").starts_with("digest/weekly/ops-mail/"), "{}", digest.raw);
    assert_eq!(digest.must("Message-ID"), message_id(digest.must("X-Certvigil-Key")));
    assert_eq!(digest.rcpt_to(), vec!["ops@example.test".to_string(), "pki@example.test".to_string()]);
    assert_eq!(digest.content_type, "multipart/alternative");
    let (text, html) = (digest.text(), digest.html());
    assert_eq!(text.matches("FIRING warning expiring [weekly]").count(), 3, "{text}");
    for s in &soon {
        assert!(text.contains(&format!("certificate: {} (sha256 {})", s.cert.cn, s.cert.fingerprint)), "{text}");
        assert!(html.contains(&format!("<code>{}</code>", s.cert.fingerprint)), "{html}");
    }
    assert!(!text.contains("expired.example.test"), "the critical one is not repeated in the digest");
    assert!(pending(&sb).is_empty());

    // Nothing left to digest, nothing sent twice.
    let d = cv(&sb, NOW + 3 * HOUR, &["digest"]).expect_code(0);
    assert!(d.stdout.contains("0 digests sent"), "{}", d.stdout);
    evaluate(&sb, NOW + 3 * HOUR, 0);
    assert_eq!(smtp.count(), 2);
}

#[test]
fn webhook_is_signed_slack_has_blocks_and_pagerduty_triggers_then_resolves() {
    let f = fixtures();
    let hook = HttpReceiver::signed(HOOK_SECRET);
    let slack = HttpReceiver::start();
    let pd = HttpReceiver::start();
    let sb = Sandbox::new();
    put(&sb, "expired", &f.expired.cert);
    put(&sb, "expiring", &f.expiring.cert);
    configure(
        &sb,
        &[
            hook_rx("hook", &hook.url("/certvigil")),
            slack_rx("slack", &slack.url("/services/T0/B0/xyz")),
            pd_rx("pd", &pd.url("/v2/enqueue")),
        ],
        "    - name: page\n      match: {severity: [critical]}\n      receivers: [hook, slack, pd]\n",
    );
    let fp = &f.expired.cert.fingerprint;
    let dedup = format!("certvigil:{}:expired", &fp[..16]);

    scan(&sb, NOW);
    let ev = evaluate(&sb, NOW, 0);
    assert!(ev.stdout.contains("3 notifications queued, 3 sent, 0 failed"), "{}", ev.stdout);

    // Generic webhook: signed (verified by the receiver), keyed, the finding as JSON.
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!((r.method.as_str(), r.path.as_str(), r.status, r.rejected.clone()), ("POST", "/certvigil", 200, None), "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let sig = r.header("x-certvigil-signature").expect("signed");
    assert_eq!(sig.split(',').next(), Some(format!("t={}", r.header("x-certvigil-timestamp").expect("timestamp header")).as_str()));
    let body = r.json();
    let key = format!("alert/{}/1/page/hook/firing", alert_id(&sb, fp));
    assert_eq!(body["key"], key.as_str());
    assert_eq!(r.header("idempotency-key"), Some(key.as_str()));
    assert_eq!(body["subject"], EXPIRED_SUBJECT);
    assert_eq!(body["severity"], "critical");
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(
        (&items[0]["event"], &items[0]["kind"], &items[0]["severity"], &items[0]["route"], &items[0]["certificate"]["fingerprint"]),
        (&"firing".into(), &"expired".into(), &"critical".into(), &"page".into(), &Value::from(fp.as_str()))
    );
    assert_eq!(items[0]["certificate"]["not_after"], f.expired.cert.not_after);

    // Slack: Block Kit, a header with the subject and one section per finding; not signed.
    let reqs = slack.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/services/T0/B0/xyz");
    assert_eq!(reqs[0].header("x-certvigil-signature"), None);
    let body = reqs[0].json();
    assert_eq!(body["text"], EXPIRED_SUBJECT);
    let blocks = body["blocks"].as_array().expect("blocks");
    assert_eq!(blocks.len(), 2, "{body}");
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert_eq!(blocks[0]["text"]["text"], EXPIRED_SUBJECT);
    assert_eq!(blocks[1]["type"], "section");
    assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
    let line = blocks[1]["text"]["text"].as_str().expect("text");
    assert!(line.starts_with("*CRITICAL* expired — `expired.example.test`\nexpired on 2026-05-21 (10 days ago)\n_"), "{line}");

    // PagerDuty: a trigger with the routing key from the environment and a stable dedup key.
    let reqs = pd.requests();
    assert_eq!(reqs.len(), 1);
    let trigger = reqs[0].json();
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["routing_key"], PD_KEY);
    assert_eq!(trigger["dedup_key"], dedup.as_str());
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(trigger["payload"]["source"], "certvigil");
    assert_eq!(trigger["payload"]["summary"], EXPIRED_SUBJECT);
    assert_eq!(trigger["payload"]["custom_details"]["fingerprint"], fp.as_str());
    // The warning finding matched no route: nobody was told.
    assert_eq!(hook.count() + slack.count() + pd.count(), 3);

    // The expired certificate is removed; the rescan marks it gone and the alert resolves.
    std::fs::remove_file(sb.path("certs/expired.pem")).expect("rm");
    let s = scan(&sb, NOW + HOUR);
    assert!(s.stdout.contains("1 gone"), "{}", s.stdout);
    let ev = evaluate(&sb, NOW + HOUR, 0);
    assert!(ev.stdout.contains("1 resolved") && ev.stdout.contains("3 sent, 0 failed"), "{}", ev.stdout);
    let reqs = pd.requests();
    assert_eq!(reqs.len(), 2);
    let resolve = reqs[1].json();
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], trigger["dedup_key"], "resolve with the trigger's dedup_key");
    assert_eq!(resolve["routing_key"], PD_KEY);
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!((reqs[1].status, reqs[1].rejected.clone()), (200, None));
    let body = reqs[1].json();
    assert_eq!(body["items"][0]["event"], "resolved");
    assert_eq!(body["items"][0]["certificate"]["fingerprint"], fp.as_str());
    assert!(body["subject"].as_str().expect("subject").starts_with("[certvigil] RESOLVED expired: expired.example.test"), "{body}");
    let reqs = slack.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[1].json()["text"].as_str().expect("text").starts_with("[certvigil] RESOLVED expired: expired.example.test"));
    assert_eq!(alerts_by_fp(&sb)[fp]["state"], "resolved");

    // Nothing more afterwards.
    scan(&sb, NOW + 2 * HOUR);
    evaluate(&sb, NOW + 2 * HOUR, 0);
    assert_eq!((hook.count(), slack.count(), pd.count()), (2, 2, 2));
}

#[test]
fn smtp_down_is_retried_after_the_backoff_and_delivered_exactly_once() {
    let f = fixtures();
    let port = free_port();
    let sb = Sandbox::new();
    put(&sb, "expired", &f.expired.cert);
    configure(&sb, &[mail_rx("ops-mail", port)], "    - name: ops\n      receivers: [ops-mail]\n");
    scan(&sb, NOW);

    // Nothing listens: the evaluation fails, the notification stays in the outbox.
    let ev = evaluate(&sb, NOW, 1);
    assert!(
        ev.stdout.contains("0 sent, 1 failed") && ev.stdout.contains(&format!("failed: ops-mail: SMTP 127.0.0.1:{port}")),
        "{}",
        ev.stdout
    );
    let rows = pending(&sb);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["attempts"], 1);
    assert_eq!(rows[0]["next_attempt_at"], NOW + 30);
    assert!(rows[0]["last_error"].as_str().expect("last_error").contains(&format!("SMTP 127.0.0.1:{port}")), "{rows:?}");
    let key = rows[0]["key"].as_str().expect("key").to_string();

    let smtp = SmtpServer::start_on(port);
    // Before the backoff has passed nothing is tried.
    let ev = evaluate(&sb, NOW + 10, 0);
    assert!(ev.stdout.contains("0 sent, 0 failed"), "{}", ev.stdout);
    assert_eq!(smtp.count(), 0);
    assert_eq!(pending(&sb)[0]["attempts"], 1);
    // After it: delivered once.
    let ev = evaluate(&sb, NOW + 31, 0);
    assert!(ev.stdout.contains("1 sent, 0 failed"), "{}", ev.stdout);
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].must("X-Certvigil-Key"), key);
    assert_eq!(mails[0].subject(), EXPIRED_SUBJECT);
    // And never again.
    evaluate(&sb, NOW + 120, 0);
    evaluate(&sb, NOW + 2 * HOUR, 0);
    assert_eq!(smtp.count(), 1);
    assert!(pending(&sb).is_empty());
    let all = outbox_all(&sb);
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0]["attempts"].clone(), all[0]["sent_at"].clone(), all[0]["last_error"].clone()),
        (2.into(), (NOW + 31).into(), Value::Null)
    );
}

#[test]
fn receiver_error_then_success_is_delivered_once_after_the_retry() {
    let f = fixtures();
    let hook = HttpReceiver::signed(HOOK_SECRET);
    hook.fail_next(1, 500);
    let sb = Sandbox::new();
    put(&sb, "expired", &f.expired.cert);
    configure(&sb, &[hook_rx("hook", &hook.url("/in"))], "    - name: ops\n      receivers: [hook]\n");
    scan(&sb, NOW);

    let ev = evaluate(&sb, NOW, 1);
    assert!(ev.stdout.contains("0 sent, 1 failed"), "{}", ev.stdout);
    let rows = pending(&sb);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["attempts"], 1);
    assert!(rows[0]["last_error"].as_str().expect("last_error").contains("HTTP 500"), "{rows:?}");
    assert_eq!(hook.requests().len(), 1);
    assert_eq!((hook.requests()[0].status, hook.requests()[0].rejected.clone()), (500, None), "a properly signed request that got 500");

    let ev = evaluate(&sb, NOW + 31, 0);
    assert!(ev.stdout.contains("1 sent, 0 failed"), "{}", ev.stdout);
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(hook.accepted().len(), 1, "delivered once");
    // The retry is the same notification: same idempotency key, same body.
    assert_eq!(reqs[0].header("idempotency-key"), reqs[1].header("idempotency-key"));
    assert_eq!(reqs[0].header("idempotency-key"), rows[0]["key"].as_str());
    assert_eq!(reqs[0].json(), reqs[1].json());

    evaluate(&sb, NOW + 300, 0);
    evaluate(&sb, NOW + 2 * HOUR, 0);
    assert_eq!(hook.count(), 2);
    assert!(pending(&sb).is_empty());
}

#[test]
fn crash_after_the_outbox_write_delivers_each_notification_exactly_once_on_the_next_run() {
    use std::os::unix::process::ExitStatusExt;
    let f = fixtures();
    let smtp = SmtpServer::start();
    let hook = HttpReceiver::signed(HOOK_SECRET);
    let sb = Sandbox::new();
    put(&sb, "expired", &f.expired.cert);
    put(&sb, "expiring", &f.expiring.cert);
    configure(
        &sb,
        &[mail_rx("ops-mail", smtp.port), hook_rx("hook", &hook.url("/in"))],
        "    - name: ops\n      receivers: [ops-mail, hook]\n",
    );
    scan(&sb, NOW);

    // The process dies (abort, as kill -9 would) right after committing the outbox.
    if !cfg!(feature = "failpoints") {
        panic!("the crash tests need the test hooks: cargo test --features failpoints (tests/run.sh)");
    }
    let mut cmd = sb.command_at(NOW);
    cmd.arg("evaluate").env(HOOK_SECRET_ENV, HOOK_SECRET).env("CERTVIGIL_FAULT", "exit-after-outbox-write");
    let out = cmd.output().expect("run certvigil");
    assert_eq!(out.status.code(), None, "must die by a signal: {:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.signal(), Some(6), "SIGABRT");
    assert_eq!((smtp.count(), hook.count()), (0, 0), "nothing was sent");
    let rows = pending(&sb);
    assert_eq!(rows.len(), 4, "2 findings x 2 receivers committed: {rows:?}");
    assert!(rows.iter().all(|r| r["attempts"] == 0 && r["sent_at"].is_null() && r["held"] == false), "{rows:?}");

    // Restart: every pending notification goes out once.
    let ev = evaluate(&sb, NOW + 5, 0);
    assert!(ev.stdout.contains("0 alerts opened") && ev.stdout.contains("0 notifications queued, 4 sent, 0 failed"), "{}", ev.stdout);
    let keys = |rx: &str| {
        let mut k: Vec<String> = rows.iter().filter(|r| r["receiver"] == rx).map(|r| r["key"].as_str().expect("key").to_string()).collect();
        k.sort();
        k
    };
    let mails = smtp.messages();
    let mut got: Vec<String> = mails.iter().map(|m| m.must("X-Certvigil-Key").to_string()).collect();
    got.sort();
    assert_eq!(got, keys("ops-mail"));
    for m in &mails {
        assert_eq!(m.must("Message-ID"), message_id(m.must("X-Certvigil-Key")));
    }
    let mut got: Vec<String> = hook.accepted().iter().map(|r| r.header("idempotency-key").expect("key").to_string()).collect();
    got.sort();
    assert_eq!(got, keys("hook"));
    assert_eq!(hook.count(), 2, "no request was refused or repeated");

    evaluate(&sb, NOW + 60, 0);
    evaluate(&sb, NOW + HOUR, 0);
    assert_eq!((smtp.count(), hook.count()), (2, 2));
    assert!(pending(&sb).is_empty());
}

const ESCALATION_ROUTES: &str = "    - name: ops
      receivers: [ops-hook]
      escalate_after: 1h
      escalate_to: oncall
    - name: oncall
      escalation_only: true
      receivers: [oncall-pd]
";

fn escalation_sandbox(hook: &HttpReceiver, pd: &HttpReceiver) -> Sandbox {
    let f = fixtures();
    let sb = Sandbox::new();
    put(&sb, "expired", &f.expired.cert);
    configure(&sb, &[hook_rx("ops-hook", &hook.url("/ops")), pd_rx("oncall-pd", &pd.url("/v2/enqueue"))], ESCALATION_ROUTES);
    scan(&sb, NOW);
    let ev = evaluate(&sb, NOW, 0);
    assert!(ev.stdout.contains("1 sent"), "{}", ev.stdout);
    assert_eq!((hook.accepted().len(), pd.count()), (1, 0));
    sb
}

#[test]
fn unacknowledged_critical_alert_escalates_once_after_the_deadline() {
    let f = fixtures();
    let (hook, pd) = (HttpReceiver::signed(HOOK_SECRET), HttpReceiver::start());
    let sb = escalation_sandbox(&hook, &pd);
    let fp = &f.expired.cert.fingerprint;

    let ev = evaluate(&sb, NOW + HOUR / 2, 0);
    assert!(ev.stdout.contains("0 escalated"), "{}", ev.stdout);
    assert_eq!(pd.count(), 0, "not before escalate_after");

    let ev = evaluate(&sb, NOW + 2 * HOUR, 0);
    assert!(ev.stdout.contains("1 escalated") && ev.stdout.contains("1 sent"), "{}", ev.stdout);
    let reqs = pd.requests();
    assert_eq!(reqs.len(), 1);
    let body = reqs[0].json();
    assert_eq!(body["event_action"], "trigger");
    assert_eq!(body["routing_key"], PD_KEY);
    assert_eq!(body["payload"]["custom_details"]["event"], "escalation");
    assert!(
        body["payload"]["summary"].as_str().expect("summary").starts_with("[certvigil] ESCALATED CRITICAL expired: expired.example.test"),
        "{body}"
    );
    assert_eq!(hook.count(), 1, "the first route is not re-notified by the escalation");
    assert_eq!(alerts_by_fp(&sb)[fp]["escalated_at"], NOW + 2 * HOUR);

    // Once only.
    evaluate(&sb, NOW + 3 * HOUR, 0);
    evaluate(&sb, NOW + 5 * HOUR, 0);
    assert_eq!((hook.count(), pd.count()), (1, 1));
}

/// The escalation target was told about the alert, so it must hear that it is over: a
/// PagerDuty incident opened by an escalation is resolved with the same dedup key when the
/// finding goes away (otherwise it stays open forever).
#[test]
fn escalated_pagerduty_incident_is_resolved_when_the_finding_goes() {
    let f = fixtures();
    let (hook, pd) = (HttpReceiver::signed(HOOK_SECRET), HttpReceiver::start());
    let sb = escalation_sandbox(&hook, &pd);
    evaluate(&sb, NOW + 2 * HOUR, 0);
    assert_eq!(pd.count(), 1, "escalated");
    let trigger = pd.requests()[0].json();
    assert_eq!(trigger["event_action"], "trigger");

    std::fs::remove_file(sb.path("certs/expired.pem")).expect("rm");
    assert!(scan(&sb, NOW + 3 * HOUR).stdout.contains("1 gone"));
    let ev = evaluate(&sb, NOW + 3 * HOUR, 0);
    assert!(ev.stdout.contains("1 resolved"), "{}", ev.stdout);
    assert_eq!(alerts_by_fp(&sb)[&f.expired.cert.fingerprint]["state"], "resolved");
    // The first route hears of the resolution (and, as it matches everything, of the gone
    // certificate's new `retired` finding).
    let events: Vec<(String, String)> = hook.accepted()[1..]
        .iter()
        .map(|r| {
            let b = r.json();
            (b["items"][0]["event"].as_str().unwrap_or("").into(), b["items"][0]["kind"].as_str().unwrap_or("").into())
        })
        .collect();
    assert!(events.contains(&("resolved".into(), "expired".into())), "{events:?}");
    let reqs = pd.requests();
    assert_eq!(reqs.len(), 2, "the escalation target (PagerDuty) must get a resolve for the incident it opened");
    let resolve = reqs[1].json();
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
}

#[test]
fn acknowledged_alert_does_not_escalate() {
    let f = fixtures();
    let (hook, pd) = (HttpReceiver::signed(HOOK_SECRET), HttpReceiver::start());
    let sb = escalation_sandbox(&hook, &pd);
    let fp = &f.expired.cert.fingerprint;

    let ack = cv(&sb, NOW + HOUR / 2, &["ack", fp, "--by", "alice", "--note", "renewing"]).expect_code(0);
    assert!(ack.stdout.contains("1 alert acknowledged by alice"), "{}", ack.stdout);
    let ev = evaluate(&sb, NOW + 2 * HOUR, 0);
    assert!(ev.stdout.contains("0 escalated") && ev.stdout.contains("0 sent"), "{}", ev.stdout);
    evaluate(&sb, NOW + 30 * HOUR, 0);
    assert_eq!((hook.count(), pd.count()), (1, 0), "no escalation, and no reminder to an acknowledged alert");
    let a = &alerts_by_fp(&sb)[fp];
    assert_eq!(
        (a["state"].clone(), a["acked_by"].clone(), a["escalated_at"].clone()),
        ("acknowledged".into(), "alice".into(), Value::Null)
    );
}

#[test]
fn silence_holds_back_a_certificate_until_it_expires() {
    let f = fixtures();
    let smtp = SmtpServer::start();
    let sb = Sandbox::new();
    put(&sb, "expired", &f.expired.cert);
    put(&sb, "expiring", &f.expiring.cert);
    configure(&sb, &[mail_rx("ops-mail", smtp.port)], "    - name: ops\n      receivers: [ops-mail]\n");
    scan(&sb, NOW);
    let fp = &f.expired.cert.fingerprint;

    let s = cv(&sb, NOW, &["silence", "add", fp, "--for", "1d", "--reason", "test", "--by", "bob"]).expect_code(0);
    assert!(s.stdout.contains("until 2026-06-02T00:00:00Z"), "{}", s.stdout);
    let list = cv(&sb, NOW, &["silence", "list"]).expect_code(0).stdout;
    assert!(list.contains(&format!("fingerprint={fp}")) && list.contains("by bob: test"), "{list}");

    // Only the unsilenced certificate is told.
    evaluate(&sb, NOW, 0);
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].subject(), EXPIRING_SUBJECT);
    evaluate(&sb, NOW + 12 * HOUR, 0);
    evaluate(&sb, NOW + DAY - 60, 0);
    assert_eq!(smtp.count(), 1, "nothing for the silenced certificate while the silence lasts");

    // The silence is over: the alert is told for the first time.
    let after = NOW + DAY + 60;
    assert!(cv(&sb, after, &["silence", "list"]).expect_code(0).stdout.contains("no silences"));
    scan(&sb, after);
    evaluate(&sb, after, 0);
    let mails = smtp.messages();
    assert_eq!(mails.len(), 2);
    // Opened silently (seq 0): its first notification is state change 1.
    let key = format!("alert/{}/1/ops/ops-mail/firing", alert_id(&sb, fp));
    assert_finding_mail(
        mail_with_key(&mails, &key),
        "[certvigil] CRITICAL expired: expired.example.test — expired on 2026-05-21 (11 days ago) on web",
        &key,
        ("firing", "critical", "expired", "ops"),
        &f.expired.cert,
    );
    evaluate(&sb, after + HOUR, 0);
    assert_eq!(smtp.count(), 2);
}

#[test]
fn alert_test_reaches_every_receiver_of_the_route_and_an_unknown_route_is_a_usage_error() {
    let smtp = SmtpServer::start();
    let hook = HttpReceiver::signed(HOOK_SECRET);
    let sb = Sandbox::new();
    configure(
        &sb,
        &[mail_rx("ops-mail", smtp.port), hook_rx("ops-hook", &hook.url("/in"))],
        "    - name: ops\n      receivers: [ops-mail, ops-hook]\n",
    );

    let t = cv(&sb, NOW, &["alert", "test", "--route", "ops"]).expect_code(0);
    assert!(t.stdout.contains("test to route ops: 2 sent, 0 failed"), "{}", t.stdout);
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m.subject(), "[certvigil] TEST: notifications to route ops work");
    assert_eq!(m.rcpt_to(), vec!["ops@example.test".to_string(), "pki@example.test".to_string()]);
    assert_eq!(m.content_type, "multipart/alternative");
    assert!(m.text().starts_with("TEST info test [ops]\n  a test message from certvigil to route ops\n"), "{}", m.text());
    assert!(m.html().contains("<table"));
    assert_eq!(m.must("Message-ID"), message_id(m.must("X-Certvigil-Key")));
    let reqs = hook.accepted();
    assert_eq!(reqs.len(), 1);
    let body = reqs[0].json();
    assert_eq!(body["subject"], "[certvigil] TEST: notifications to route ops work");
    assert_eq!(body["items"][0]["event"], "test");
    assert_eq!(body["items"][0]["route"], "ops");

    let bad = cv(&sb, NOW, &["alert", "test", "--route", "nope"]).expect_code(2);
    assert!(bad.stderr.contains("no route named `nope`"), "{}", bad.stderr);
    assert_eq!((smtp.count(), hook.count()), (1, 1));
}

/// Each `alert test` is a new message: running it again (here at the same second, which the
/// fixed clock makes certain) must reach the receivers again, not report "0 sent" with exit 0.
#[test]
fn alert_test_sends_a_new_message_every_time_it_is_run() {
    let smtp = SmtpServer::start();
    let sb = Sandbox::new();
    configure(&sb, &[mail_rx("ops-mail", smtp.port)], "    - name: ops\n      receivers: [ops-mail]\n");
    cv(&sb, NOW, &["alert", "test", "--route", "ops"]).expect_code(0);
    assert_eq!(smtp.count(), 1);
    let again = cv(&sb, NOW, &["alert", "test", "--route", "ops"]).expect_code(0);
    assert!(again.stdout.contains("test to route ops: 1 sent, 0 failed"), "{}", again.stdout);
    assert_eq!(smtp.count(), 2, "the second test message was never sent");
}

#[test]
fn plan_prints_findings_and_would_be_notifications_and_sends_nothing() {
    let f = fixtures();
    let smtp = SmtpServer::start();
    let hook = HttpReceiver::signed(HOOK_SECRET);
    let sb = Sandbox::new();
    put(&sb, "expired", &f.expired.cert);
    put(&sb, "expiring", &f.expiring.cert);
    configure(
        &sb,
        &[mail_rx("ops-mail", smtp.port), hook_rx("ops-hook", &hook.url("/in"))],
        "    - name: ops\n      match: {severity: [critical]}\n      receivers: [ops-mail, ops-hook]\n    - name: weekly\n      mode: digest\n      receivers: [ops-mail]\n",
    );
    scan(&sb, NOW);

    let plan = cv(&sb, NOW, &["plan"]).expect_code(0).stdout;
    let json = cv(&sb, NOW, &["plan", "-o", "json"]).expect_code(0).json();
    let findings = json["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 2, "{json}");
    for (cert, sev, kind) in [(&f.expired.cert, "CRITICAL", "expired"), (&f.expiring.cert, "WARNING", "expiring")] {
        let head = format!("{sev:<8}  {kind:<18}  {}  {}", &cert.fingerprint[..12], cert.cn);
        assert!(plan.contains(&head), "missing `{head}` in\n{plan}");
        let fj = findings.iter().find(|x| x["fingerprint"] == cert.fingerprint.as_str()).expect("finding in JSON");
        let (reason, action) = (fj["reason"].as_str().expect("reason"), fj["action"].as_str().expect("action"));
        assert!(!reason.is_empty() && !action.is_empty());
        assert!(plan.contains(&format!("{head}\n          {reason}\n          action: {action}\n")), "{plan}");
    }
    assert!(plan.contains("          expired on 2026-05-21 (10 days ago)\n"), "{plan}");
    assert!(plan.contains("          would send: firing → route ops (ops-mail, ops-hook)\n"), "{plan}");
    assert!(
        plan.contains("          would send: firing → route weekly (ops-mail)\n"),
        "critical goes out at once on the digest route:\n{plan}"
    );
    assert!(plan.contains("          would send: firing → route weekly (ops-mail), held for the digest\n"), "{plan}");
    assert!(plan.contains("2 findings, 3 notifications planned, 0 alerts to resolve (dry run: nothing sent)"), "{plan}");
    assert_eq!(json["notifications"].as_array().expect("notifications").len(), 3);

    // A dry run: nothing received, nothing stored; planning again gives the same answer.
    assert_eq!((smtp.count(), hook.count()), (0, 0));
    assert!(cv(&sb, NOW, &["outbox", "--all"]).expect_code(0).stdout.contains("the outbox is empty"));
    assert!(cv(&sb, NOW, &["alerts", "--all"]).expect_code(0).stdout.contains("no alerts"));
    assert_eq!(cv(&sb, NOW, &["plan"]).expect_code(0).stdout, plan);

    // The plan was right: evaluate does exactly that.
    let ev = evaluate(&sb, NOW, 0);
    assert!(ev.stdout.contains("4 notifications queued, 3 sent, 0 failed"), "{}", ev.stdout);
    assert_eq!((smtp.count(), hook.accepted().len()), (2, 1));
    assert_eq!(pending(&sb).len(), 1, "the warning is held for the digest");
}

/// The webhook receiver is a real check, not a rubber stamp: stale, future, forged and
/// unsigned requests are refused.
#[test]
fn webhook_receiver_refuses_stale_forged_and_unsigned_requests() {
    use hmac::{KeyInit, Mac};
    let sign = |secret: &str, ts: i64, body: &str| {
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(format!("{ts}.{body}").as_bytes());
        format!("t={ts},v1={}", hex::encode(mac.finalize().into_bytes()))
    };
    let now = 1_800_000_000;
    let body = r#"{"key":"k"}"#;
    let s = HOOK_SECRET.as_bytes();
    assert_eq!(verify_signature(s, Some(&sign(HOOK_SECRET, now - 10, body)), body, now), Ok(()));
    assert!(verify_signature(s, Some(&sign(HOOK_SECRET, now - MAX_SIGNATURE_AGE - 1, body)), body, now).is_err(), "stale");
    assert!(verify_signature(s, Some(&sign(HOOK_SECRET, now + MAX_SIGNATURE_AGE + 1, body)), body, now).is_err(), "future");
    assert!(verify_signature(s, Some(&sign("other", now, body)), body, now).is_err(), "wrong key");
    assert!(verify_signature(s, Some(&sign(HOOK_SECRET, now, body)), r#"{"key":"x"}"#, now).is_err(), "altered body");
    assert!(verify_signature(s, None, body, now).is_err(), "unsigned");
}

#[test]
fn routes_choose_by_owner_and_the_owner_is_in_the_mail_and_the_payload() {
    let f = fixtures();
    let smtp = SmtpServer::start();
    let sb = Sandbox::new();
    // The expiring certificate is the payments team's (a path rule); the expired one has no owner.
    sb.write("certs/payments/expiring.pem", &f.expiring.cert.pem);
    put(&sb, "expired", &f.expired.cert);
    let rx = |name: &str, to: &str| {
        format!(
            "    - name: {name}\n      kind: email\n      to: [{to}]\n      from: certvigil@example.test\n      \
             smtp: {{host: 127.0.0.1, port: {}, tls: none, timeout: 10s}}\n",
            smtp.port
        )
    };
    sb.config(&format!(
        "sources:\n  - name: web\n    kind: files\n    paths: [certs]\n\
         owners:\n  teams:\n    - {{name: payments, contact: payments-oncall@example.test}}\n  \
         rules:\n    - {{owner: payments, match: {{path: ['**/certs/payments/*.pem']}}}}\n\
         alerts:\n  receivers:\n{}{}  routes:\n    \
         - {{name: payments, match: {{owner: [payments]}}, receivers: [payments-mail]}}\n    \
         - {{name: orphans, match: {{owner: [none]}}, receivers: [ops-mail]}}\n",
        rx("payments-mail", "payments-oncall@example.test"),
        rx("ops-mail", "ops@example.test")
    ));
    cv(&sb, NOW, &["config", "validate"]).expect_code(0);
    scan(&sb, NOW);
    evaluate(&sb, NOW, 0);

    let mails = smtp.messages();
    assert_eq!(mails.len(), 2, "one mail per finding, each to its route's receiver");
    let to = |addr: &str| -> Vec<&Mail> { mails.iter().filter(|m| m.rcpt_to() == [addr.to_string()]).collect() };
    let (payments, ops) = (to("payments-oncall@example.test"), to("ops@example.test"));
    assert_eq!(
        (payments.len(), ops.len()),
        (1, 1),
        "{:?}",
        mails.iter().map(|m| (m.rcpt_to(), m.subject().to_string())).collect::<Vec<_>>()
    );
    let m = payments[0];
    assert_eq!(m.subject(), EXPIRING_SUBJECT);
    assert!(m.text().contains(&format!("certificate: {} (sha256 {})", f.expiring.cert.cn, f.expiring.cert.fingerprint)), "{}", m.text());
    assert!(m.text().contains("  owner: payments <payments-oncall@example.test>\n"), "{}", m.text());
    assert!(m.html().contains("<td>payments &lt;payments-oncall@example.test&gt;</td>"), "{}", m.html());
    // The orphan's mail goes to the other route only, and names no owner.
    let m = ops[0];
    assert_eq!(m.subject(), EXPIRED_SUBJECT);
    assert!(!m.text().contains("owner:"), "{}", m.text());
    assert!(
        !mails.iter().any(|m| m.rcpt_to().contains(&"ops@example.test".to_string()) && m.text().contains(&f.expiring.cert.fingerprint))
    );

    // The payload (what webhooks get) carries the owner and its contact; the orphan's neither.
    let sent = outbox_all(&sb);
    assert_eq!(sent.len(), 2);
    for row in &sent {
        let p = &row["payload"];
        match row["route"].as_str() {
            Some("payments") => {
                assert_eq!(
                    (p["owner"].as_str(), p["owner_contact"].as_str()),
                    (Some("payments"), Some("payments-oncall@example.test")),
                    "{p:#}"
                );
                assert_eq!(p["certificate"]["fingerprint"], f.expiring.cert.fingerprint.as_str());
            }
            _ => {
                assert_eq!(row["route"], "orphans", "{row:#}");
                assert!(p.get("owner").is_none() && p.get("owner_contact").is_none(), "{p:#}");
            }
        }
    }
    // `plan` shows the owner on the finding.
    let plan = cv(&sb, NOW, &["plan", "-o", "json"]).expect_code(0).json();
    let findings = plan["findings"].as_array().or_else(|| plan.as_array()).cloned().unwrap_or_default();
    let owned: Vec<&Value> = findings.iter().filter(|x| x["owner"] == "payments").collect();
    assert_eq!(owned.len(), 1, "{plan:#}");
    assert_eq!(owned[0]["fingerprint"], f.expiring.cert.fingerprint.as_str());
}
