//! Alerts about subjects that are not certificates, end to end with the real binary: a Sigstore
//! TUF root in a Kubernetes ConfigMap (the fixture API server of `tests/kube`) and a managed
//! certificate whose first issuance fails against a real Pebble (`tests/acme_support`). The
//! receivers are real: aiosmtpd writing a Maildir and a loopback webhook endpoint
//! (`tests/alerting`). Assertions are about what the receivers got and what the store says.

use crate::acme_support;
use crate::alerting;
use crate::common;
use crate::kube;

use alerting::{HttpReceiver, SmtpServer};
use common::{NOW, RUN_LIMIT, Run, Sandbox, run_with_timeout};
use kube::{ApiServer, TOKEN};
use serde_json::Value;

const DAY: i64 = 86_400;
const SUBJECT: &str = "key:k8s:k8s://fixture/sigstore/configmaps/trust#root.json";
const NAME: &str = "root.json in configmap sigstore/trust (version 10)";

/// A Sigstore-shaped TUF root (root-signing's `root.json`), version `version`, expiring at
/// `expires`, signed (Ed25519, threshold 1) by one fixed root key: it verifies against itself
/// and each version chains to the one before, so what these tests see is about expiry alone.
fn tuf_root_v(version: u64, expires: i64) -> String {
    use ring::signature::KeyPair;
    let kp = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).expect("key");
    let public = hex::encode(kp.public_key().as_ref());
    let expires = jiff::Timestamp::from_second(expires).expect("time").to_string();
    let role = serde_json::json!({"keyids": ["k1"], "threshold": 1});
    let signed = serde_json::json!({
        "_type": "root", "spec_version": "1.0", "version": version, "expires": expires, "consistent_snapshot": true,
        "keys": {"k1": {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": public}}},
        "roles": {"root": role, "snapshot": role, "targets": role, "timestamp": role}
    });
    let sig = hex::encode(kp.sign(&certvigil::x509::tuf::canonical(&signed).expect("canonical")).as_ref());
    serde_json::to_string_pretty(&serde_json::json!({"signed": signed, "signatures": [{"keyid": "k1", "sig": sig}]})).expect("json")
}

/// Version 10 of that root.
fn tuf_root(expires: i64) -> String {
    tuf_root_v(10, expires)
}

fn cv(sb: &Sandbox, now: i64, args: &[&str]) -> Run {
    let mut cmd = sb.command_at(now);
    cmd.env_remove("KUBECONFIG").env_remove("CERTVIGIL_FAULT").env("HOME", sb.dir.path()).args(args);
    run_with_timeout(cmd, RUN_LIMIT)
}

fn alerts(sb: &Sandbox, now: i64) -> Vec<Value> {
    cv(sb, now, &["alerts", "--all", "-o", "json"]).expect_code(0).json().as_array().expect("alerts").clone()
}

/// Every notification the webhook accepted (each request carries `items`), in order.
fn payloads(hook: &HttpReceiver) -> Vec<Value> {
    hook.accepted().iter().flat_map(|r| r.json()["items"].as_array().cloned().unwrap_or_default()).collect()
}

#[test]
fn an_expiring_tuf_root_alerts_once_dedupes_and_resolves_when_replaced() {
    let api = ApiServer::start();
    api.with(|s| s.put_configmap("sigstore", "trust", &[("root.json", &tuf_root(NOW + 10 * DAY))]));
    let (smtp, hook) = (SmtpServer::start(), HttpReceiver::start());
    let sb = Sandbox::new();
    sb.write("kubeconfig.yaml", api.kubeconfig(TOKEN));
    sb.config(&format!(
        "sources:\n  - name: k8s\n    kind: kubernetes\n    kubeconfig: kubeconfig.yaml\n    tags: [cluster]\n\
         alerts:\n  receivers:\n    - name: mail\n      kind: email\n      to: [ops@example.test]\n      from: certvigil@example.test\n      \
         smtp: {{host: 127.0.0.1, port: {}, tls: none, timeout: 10s}}\n    - name: hook\n      kind: webhook\n      url: {}\n      timeout: 10s\n  \
         routes:\n    - name: cluster\n      match: {{tag: [cluster], kind: [trust-root-expiring, trust-root-expired]}}\n      receivers: [mail, hook]\n",
        smtp.port,
        hook.url("/in")
    ));
    cv(&sb, NOW, &["config", "validate"]).expect_code(0);
    cv(&sb, NOW, &["scan", "--no-progress"]).expect_code(0);

    // `plan` names the root and what would be sent; the problem is marked as alerted.
    let plan = cv(&sb, NOW, &["plan", "-o", "json"]).expect_code(0).json();
    let f: Vec<&Value> = plan["findings"].as_array().expect("findings").iter().filter(|f| f["subject"] == SUBJECT).collect();
    assert_eq!(f.len(), 1, "{plan:#}");
    assert_eq!(
        (f[0]["kind"].as_str(), f[0]["severity"].as_str(), f[0]["name"].as_str()),
        (Some("trust-root-expiring"), Some("warning"), Some(NAME))
    );
    assert_eq!((&f[0]["cert_id"], f[0].get("fingerprint")), (&Value::Null, None), "{:#}", f[0]);
    let kp = plan["key_problems"].as_array().expect("key_problems");
    assert!(kp.iter().any(|k| k["problem"]["kind"] == "trust-root-expiring" && k["alerted"] == true), "{plan:#}");
    let text = cv(&sb, NOW, &["plan"]).expect_code(0).stdout;
    assert!(text.contains(&format!("trust-root-expiring  key           {NAME}")), "{text}");
    assert!(text.contains("would send: firing → route cluster"), "{text}");

    // One evaluation: one alert, one mail and one webhook call, naming the root.
    cv(&sb, NOW, &["evaluate"]).expect_code(0);
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let m = &mails[0];
    assert!(m.subject().starts_with(&format!("[certvigil] WARNING trust-root-expiring: {NAME} — trust root")), "{}", m.subject());
    assert!(m.subject().ends_with(" on k8s"), "{}", m.subject());
    assert!(m.text().contains(&format!("key: {NAME} ({SUBJECT})")), "{}", m.text());
    assert!(m.text().contains("expires: 2026-06-11T00:00:00Z"), "{}", m.text());
    assert!(m.html().contains(&format!("<code>{}</code>", SUBJECT.replace('"', "&quot;"))), "{}", m.html());
    let sent = payloads(&hook);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    let p = &sent[0];
    assert_eq!(
        (p["event"].as_str(), p["kind"].as_str(), p["severity"].as_str()),
        (Some("firing"), Some("trust-root-expiring"), Some("warning"))
    );
    assert_eq!(p["certificate"], Value::Null, "{p:#}");
    assert_eq!(
        (p["subject"]["kind"].as_str(), p["subject"]["id"].as_str(), p["subject"]["name"].as_str()),
        (Some("key"), Some(SUBJECT), Some(NAME))
    );
    assert_eq!(p["subject"]["not_after"], NOW + 10 * DAY);
    assert_eq!(p["sources"], serde_json::json!(["k8s"]));
    assert_eq!(p["dedup_key"], format!("certvigil:{SUBJECT}:trust-root-expiring"));

    let list = alerts(&sb, NOW);
    assert_eq!(list.len(), 1, "{list:#?}");
    let a = &list[0];
    assert_eq!(
        (a["subject"].as_str(), a["subject_kind"].as_str(), a["name"].as_str(), a["state"].as_str()),
        (Some(SUBJECT), Some("key"), Some(NAME), Some("firing"))
    );
    assert_eq!((&a["cert_id"], &a["fingerprint"]), (&Value::Null, &Value::Null));
    let text = cv(&sb, NOW, &["alerts"]).expect_code(0).stdout;
    assert!(text.contains(&format!("trust-root-expiring  firing         key           {NAME}")), "{text}");
    assert!(text.contains(&format!("subject {SUBJECT}")), "{text}");

    // The next evaluation (the root unchanged): the same alert, nothing sent.
    cv(&sb, NOW + 3600, &["scan", "--no-progress"]).expect_code(0);
    cv(&sb, NOW + 3600, &["evaluate"]).expect_code(0);
    assert_eq!((smtp.count(), hook.accepted().len()), (1, 1), "deduplicated");
    assert_eq!(alerts(&sb, NOW + 3600).len(), 1);

    // Acknowledged by subject.
    let ack = cv(&sb, NOW + 3600, &["ack", SUBJECT, "--by", "ops"]).expect_code(0);
    assert!(ack.stdout.contains("1 alert acknowledged by ops"), "{}", ack.stdout);
    assert_eq!(alerts(&sb, NOW + 3600)[0]["state"], "acknowledged");

    // The root is replaced by one that expires much later: resolved, with a notice.
    // (The next version: a TUF root version is never rewritten.)
    api.with(|s| s.put_configmap("sigstore", "trust", &[("root.json", &tuf_root_v(11, NOW + 400 * DAY))]));
    cv(&sb, NOW + 7200, &["scan", "--no-progress"]).expect_code(0);
    cv(&sb, NOW + 7200, &["evaluate"]).expect_code(0);
    let a = &alerts(&sb, NOW + 7200)[0];
    assert_eq!((a["state"].as_str(), a["resolved_at"].as_i64()), (Some("resolved"), Some(NOW + 7200)), "{a:#}");
    let sent = payloads(&hook);
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert_eq!((sent[1]["event"].as_str(), sent[1]["subject"]["id"].as_str()), (Some("resolved"), Some(SUBJECT)));
    assert_eq!(sent[1]["certificate"], Value::Null);
    assert_eq!(sent[1]["dedup_key"], sent[0]["dedup_key"], "the same incident key resolves it");
    let mails = smtp.messages();
    assert_eq!(mails.len(), 2);
    assert!(mails.iter().any(|m| m.subject().starts_with(&format!("[certvigil] RESOLVED trust-root-expiring: {NAME}"))), "{mails:?}");
    cv(&sb, NOW + 7300, &["evaluate"]).expect_code(0);
    assert_eq!((smtp.count(), hook.accepted().len()), (2, 2), "nothing more once resolved");
}

#[test]
fn a_subject_silence_mutes_only_that_subject() {
    let api = ApiServer::start();
    api.with(|s| {
        s.put_configmap("sigstore", "trust", &[("root.json", &tuf_root(NOW + 10 * DAY))]);
        s.put_configmap("other", "trust", &[("root.json", &tuf_root(NOW - DAY))]);
    });
    let hook = HttpReceiver::start();
    let sb = Sandbox::new();
    sb.write("kubeconfig.yaml", api.kubeconfig(TOKEN));
    sb.config(&format!(
        "sources:\n  - name: k8s\n    kind: kubernetes\n    kubeconfig: kubeconfig.yaml\n\
         alerts:\n  receivers:\n    - name: hook\n      kind: webhook\n      url: {}\n      timeout: 10s\n  routes:\n    - name: all\n      receivers: [hook]\n",
        hook.url("/in")
    ));
    cv(&sb, NOW, &["scan", "--no-progress"]).expect_code(0);
    let bad = cv(&sb, NOW, &["silence", "add", "managed:", "--for", "1d", "--reason", "x"]).expect_code(2);
    assert!(bad.stderr.contains("is not a subject"), "{}", bad.stderr);
    let out = cv(&sb, NOW, &["silence", "add", SUBJECT, "--for", "7d", "--reason", "new root ships Friday"]).expect_code(0);
    assert!(out.stdout.starts_with("silence 1 until"), "{}", out.stdout);
    let listed = cv(&sb, NOW, &["silence", "list"]).expect_code(0).stdout;
    assert!(listed.contains(&format!("subject={SUBJECT}")), "{listed}");
    cv(&sb, NOW, &["evaluate"]).expect_code(0);
    let sent = payloads(&hook);
    let ids: Vec<(&str, &str)> =
        sent.iter().map(|p| (p["subject"]["id"].as_str().unwrap_or(""), p["kind"].as_str().unwrap_or(""))).collect();
    assert_eq!(ids, [("key:k8s:k8s://fixture/other/configmaps/trust#root.json", "trust-root-expired")], "{sent:#?}");
    let text = cv(&sb, NOW, &["alerts"]).expect_code(0).stdout;
    assert!(text.contains(&format!("trust-root-expiring  silenced       key           {NAME}")), "{text}");
}

mod acme {
    use super::*;
    use acme_support::{Pebble, free_port, renew, unix_now};

    fn config(sb: &Sandbox, pebble: &Pebble, listen_port: u16, hook: &HttpReceiver) {
        sb.config(&format!(
            "{}alerts:\n  receivers:\n    - name: hook\n      kind: webhook\n      url: {}\n      timeout: 10s\n  routes:\n    - name: page\n      match: {{kind: [renewal-failed]}}\n      receivers: [hook]\n",
            pebble.managed("web.certvigil.test", listen_port),
            hook.url("/in")
        ));
    }

    fn evaluate(sb: &Sandbox) {
        sb.run_at(unix_now(), &["scan", "--no-progress"]).expect_code(0);
        sb.run_at(unix_now(), &["evaluate"]).expect_code(0);
    }

    fn alerts(sb: &Sandbox) -> Vec<Value> {
        sb.run_at(unix_now(), &["alerts", "--all", "-o", "json"]).expect_code(0).json().as_array().expect("alerts").clone()
    }

    #[test]
    fn a_first_issuance_that_keeps_failing_alerts_without_a_certificate_and_resolves_once_issued() {
        let pebble = Pebble::start();
        let hook = HttpReceiver::start();
        let sb = Sandbox::new();
        std::fs::create_dir_all(sb.path("tls")).expect("install directory");
        // The challenge listener is on a port Pebble does not validate: the order fails, and
        // nothing was ever installed.
        config(&sb, &pebble, free_port(), &hook);
        let run = renew(&sb, &[]).expect_code(1);
        assert!(run.stderr.contains("web: renewal failed"), "{}", run.stderr);
        assert!(!sb.path("tls/cert.pem").exists(), "nothing installed");
        evaluate(&sb);

        let list = alerts(&sb);
        assert_eq!(list.len(), 1, "{list:#?}");
        let a = &list[0];
        assert_eq!(
            (a["subject"].as_str(), a["subject_kind"].as_str(), a["name"].as_str(), a["kind"].as_str(), a["severity"].as_str()),
            (Some("managed:web"), Some("managed"), Some("managed certificate web"), Some("renewal-failed"), Some("warning"))
        );
        assert_eq!(a["cert_id"], Value::Null);
        assert!(a["reason"].as_str().is_some_and(|r| r.contains("issuance of managed certificate `web` failed 1 time(s)")), "{a:#}");
        let sent = payloads(&hook);
        assert_eq!(sent.len(), 1, "{sent:#?}");
        assert_eq!(
            (sent[0]["event"].as_str(), sent[0]["subject"]["kind"].as_str(), sent[0]["subject"]["name"].as_str()),
            (Some("firing"), Some("managed"), Some("managed certificate web"))
        );
        assert_eq!(sent[0]["certificate"], Value::Null);
        assert_eq!(sent[0]["dedup_key"], "certvigil:managed:web:renewal-failed");

        // Deduplicated; two more forced failures make it critical, which notifies again.
        evaluate(&sb);
        assert_eq!(hook.accepted().len(), 1);
        for _ in 0..2 {
            renew(&sb, &["--force"]).expect_code(1);
        }
        evaluate(&sb);
        let sent = payloads(&hook);
        assert_eq!(sent.len(), 2, "{sent:#?}");
        assert_eq!((sent[1]["event"].as_str(), sent[1]["severity"].as_str()), (Some("firing"), Some("critical")));
        assert_eq!(alerts(&sb).len(), 1, "still one alert");

        // The cause fixed, it is issued: the managed alert resolves and no certificate alert opens.
        config(&sb, &pebble, pebble.http_port, &hook);
        let run = renew(&sb, &["--force"]).expect_code(0);
        assert!(run.stdout.contains("web: renewed"), "{}", run.stdout);
        evaluate(&sb);
        let list = alerts(&sb);
        assert_eq!(list.len(), 1, "{list:#?}");
        assert_eq!((list[0]["subject"].as_str(), list[0]["state"].as_str()), (Some("managed:web"), Some("resolved")));
        let sent = payloads(&hook);
        assert_eq!(sent.len(), 3, "{sent:#?}");
        assert_eq!((sent[2]["event"].as_str(), sent[2]["subject"]["id"].as_str()), (Some("resolved"), Some("managed:web")));
    }
}
