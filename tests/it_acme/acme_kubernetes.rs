//! `certvigil renew` through a real Pebble into a Kubernetes Secret of the fixture API server of
//! `tests/kube` (`install.kubernetes_secret`): created when absent, replaced under its
//! resourceVersion on renewal with its labels and annotations kept, a forbidden namespace
//! failing the renewal with a clear error and a recorded backoff, and a Secret left behind
//! the files brought up to date by the next run without a new order.

use crate::acme_support;
use crate::common;
use crate::kube;

use acme_support::*;
use common::{Run, Sandbox, run_with_timeout};
use k8s_openapi::api::core::v1::Secret;
use kube::{ApiServer, TOKEN};
use std::path::Path;
use std::time::Duration;

const TLS_TYPE: &str = "kubernetes.io/tls";

/// A managed entry for `pebble` installing into Secret `namespace/site-tls`, with `files` (YAML
/// lines under `install:`) besides; the kubeconfig is `kube.yaml` beside the configuration.
fn config(pebble: &Pebble, identifier: &str, namespace: &str, files: &str) -> String {
    format!(
        "managed:
  - name: web
    identifiers: [{identifier}]
{issuer}    key: p256
    challenge: {{type: http-01, listen: '127.0.0.1:{port}'}}
    install:
{files}      kubernetes_secret: {{namespace: {namespace}, name: site-tls, kubeconfig: kube.yaml, timeout: 10s}}
",
        issuer = pebble.issuer_yaml(""),
        port = pebble.http_port,
    )
}

fn sandbox(api: &ApiServer, pebble: &Pebble, identifier: &str, namespace: &str, files: &str) -> Sandbox {
    let sb = Sandbox::new();
    sb.write("kube.yaml", api.kubeconfig(TOKEN));
    sb.config(&config(pebble, identifier, namespace, files));
    sb
}

/// `renew` at `now`, run from another directory than the configuration's: the relative
/// kubeconfig path must be resolved against the configuration's directory.
fn renew_at(sb: &Sandbox, now: i64, args: &[&str]) -> Run {
    let mut cmd = common::certvigil();
    cmd.arg("-c").arg(sb.config_path()).arg("--now").arg(now.to_string()).arg("renew").args(args).current_dir("/");
    run_with_timeout(cmd, Duration::from_secs(180))
}

fn stored(api: &ApiServer, ns: &str) -> Option<Secret> {
    api.with(|s| s.secrets.get(&(ns.to_string(), "site-tls".to_string())).cloned())
}

fn text(s: &Secret, key: &str) -> String {
    s.data.as_ref().and_then(|d| d.get(key)).map(|b| String::from_utf8_lossy(&b.0).into_owned()).unwrap_or_default()
}

fn writes(api: &ApiServer) -> Vec<String> {
    api.with(|s| s.requests.iter().filter(|r| !r.starts_with("GET ")).map(|r| r.trim_end_matches('?').to_string()).collect())
}

fn request_count(api: &ApiServer) -> usize {
    api.with(|s| s.requests.len())
}

fn pebble_orders(pebble: &Pebble) -> usize {
    std::fs::read_to_string(pebble.dir.path().join("pebble.log")).unwrap_or_default().matches("Added order").count()
}

/// Writes the Secret's chain and key to `dir` and checks them with openssl: the chain verifies
/// up to Pebble's root, the key is the certificate's. Returns the leaf's SANs.
fn check_secret_material(pebble: &Pebble, s: &Secret, dir: &Path) -> String {
    let crt = text(s, "tls.crt");
    let blocks: Vec<&str> = crt.split_inclusive("-----END CERTIFICATE-----\n").collect();
    assert!(blocks.len() >= 2, "tls.crt is the full chain, leaf first: {crt}");
    std::fs::write(dir.join("leaf.pem"), blocks[0]).expect("write");
    std::fs::write(dir.join("rest.pem"), blocks[1..].concat()).expect("write");
    std::fs::write(dir.join("key.pem"), text(s, "tls.key")).expect("write");
    let root = pebble.root.to_string_lossy().into_owned();
    let v = openssl(&["verify", "-CAfile", &root, "-untrusted", "rest.pem", "leaf.pem"], dir);
    assert!(v.contains("leaf.pem: OK"), "{v}");
    assert_eq!(openssl(&["x509", "-noout", "-pubkey", "-in", "leaf.pem"], dir), openssl(&["pkey", "-pubout", "-in", "key.pem"], dir));
    openssl(&["x509", "-noout", "-ext", "subjectAltName", "-in", "leaf.pem"], dir)
}

fn audit(sb: &Sandbox, action: &str) -> Vec<serde_json::Value> {
    sb.db()
        .prepare("SELECT detail FROM audit_log WHERE action = ?1 ORDER BY id")
        .expect("prepare")
        .query_map([action], |r| r.get::<_, String>(0))
        .expect("query")
        .map(|d| serde_json::from_str(&d.expect("row")).expect("json detail"))
        .collect()
}

/// failures, next_attempt, state, pending_chain of `web`.
fn renewal_row(sb: &Sandbox) -> (i64, Option<i64>, String, Option<String>) {
    sb.db()
        .query_row("SELECT failures, next_attempt, state, pending_chain FROM renewals WHERE name = 'web'", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .expect("renewal row")
}

#[test]
fn issues_into_a_new_secret_then_replaces_it_under_its_resource_version() {
    let pebble = Pebble::start();
    let api = ApiServer::start();
    let sb = sandbox(&api, &pebble, "site.certvigil.test", "web", "");
    let work = tempfile::tempdir().expect("tempdir");

    // Nothing in the cluster: due, issued, and the Secret created.
    let run = renew_at(&sb, unix_now(), &[]).expect_code(0);
    assert!(run.stdout.contains("web: renewed (no certificate installed)"), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(writes(&api), ["POST /api/v1/namespaces/web/secrets"]);
    let first = stored(&api, "web").expect("created");
    assert_eq!(first.type_.as_deref(), Some(TLS_TYPE));
    let sans = check_secret_material(&pebble, &first, work.path());
    assert!(sans.contains("DNS:site.certvigil.test"), "{sans}");
    let rv1 = first.metadata.resource_version.clone().expect("resourceVersion");
    let a = audit(&sb, "renew");
    assert_eq!(a.len(), 1, "{a:?}");
    let k = &a[0]["kubernetes_secret"];
    assert_eq!((k["namespace"].as_str(), k["name"].as_str()), (Some("web"), Some("site-tls")), "{a:?}");
    assert_eq!((k["created"].as_bool(), k["attempts"].as_u64()), (Some(true), Some(1)), "{a:?}");
    assert_eq!(k["resource_version"].as_str(), Some(rv1.as_str()), "{a:?}");
    assert_eq!(a[0]["files"], serde_json::json!([]), "no file target: {a:?}");
    assert!(!sb.path("tls").exists());

    // The installed leaf is read back from the Secret: not due, nothing written.
    let run = renew_at(&sb, unix_now(), &[]).expect_code(0);
    assert!(run.stdout.contains("web: not due"), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(writes(&api).len(), 1);

    // Someone labels and annotates the Secret; another writer changes it between certvigil's
    // read and its write: the replace is refused (stale resourceVersion), read again, retried.
    api.with(|s| {
        let secret = s.secrets.get_mut(&("web".into(), "site-tls".into())).expect("present");
        secret.metadata.labels = Some([("app".to_string(), "site".to_string())].into());
        secret.metadata.annotations.get_or_insert_with(Default::default).insert("team".into(), "payments".into());
        s.interfering_writes = 1;
    });
    let rv_labelled = stored(&api, "web").and_then(|s| s.metadata.resource_version).expect("rv");
    let run = renew_at(&sb, unix_now(), &["--force"]).expect_code(0);
    assert!(run.stdout.contains("web: renewed (forced)"), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        writes(&api),
        [
            "POST /api/v1/namespaces/web/secrets",
            "PUT /api/v1/namespaces/web/secrets/site-tls",
            "PUT /api/v1/namespaces/web/secrets/site-tls"
        ]
    );
    let second = stored(&api, "web").expect("present");
    assert_ne!(text(&second, "tls.crt"), text(&first, "tls.crt"), "a new certificate");
    assert_ne!(text(&second, "tls.key"), text(&first, "tls.key"), "a new key (rotate: always)");
    check_secret_material(&pebble, &second, work.path());
    assert_eq!(second.metadata.labels.as_ref().and_then(|l| l.get("app")).map(String::as_str), Some("site"));
    let notes = second.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(notes.get("team").map(String::as_str), Some("payments"));
    assert!(notes.contains_key("other-writer"), "the other writer's change survives: {notes:?}");
    let rv2 = second.metadata.resource_version.clone().expect("rv");
    assert!(rv2 != rv1 && rv2 != rv_labelled);
    let a = audit(&sb, "renew");
    assert_eq!(a.len(), 2, "{a:?}");
    let k = &a[1]["kubernetes_secret"];
    assert_eq!((k["created"].as_bool(), k["attempts"].as_u64()), (Some(false), Some(2)), "{a:?}");
    assert_eq!(k["resource_version"].as_str(), Some(rv2.as_str()), "{a:?}");
}

#[test]
fn a_forbidden_namespace_fails_the_renewal_with_a_backoff_then_the_kept_chain_is_installed() {
    let pebble = Pebble::start();
    let api = ApiServer::start();
    api.with(|s| {
        s.forbidden_writes.insert("locked".into());
    });
    let sb = sandbox(&api, &pebble, "locked.certvigil.test", "locked", "");
    let now = unix_now();
    let run = renew_at(&sb, now, &[]).expect_code(1);
    assert!(
        run.stderr.contains("web: renewal failed") && run.stderr.contains("forbidden to create Secret locked/site-tls (403)"),
        "{}",
        run.stderr
    );
    assert!(stored(&api, "locked").is_none());
    let (failures, next_attempt, state, pending) = renewal_row(&sb);
    assert_eq!((failures, next_attempt, state.as_str()), (1, Some(now + 60), "failed"));
    assert!(pending.is_some(), "the downloaded chain is kept for the next attempt");
    let failed = audit(&sb, "renew-failed");
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["error"].as_str().unwrap_or_default().contains("locked/site-tls"), "{failed:?}");
    assert_eq!(pebble_orders(&pebble), 1);

    // Inside the backoff nothing is attempted, not even a read of the Secret.
    let requests = request_count(&api);
    let run = renew_at(&sb, now + 30, &[]).expect_code(5);
    assert!(run.stderr.contains("web: backing off after 1 failure(s)"), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(request_count(&api), requests);

    // Access granted: after the backoff the kept chain is installed without a new order.
    api.with(|s| s.forbidden_writes.clear());
    let run = renew_at(&sb, now + 61, &[]).expect_code(0);
    assert!(run.stdout.contains("web: renewed"), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(pebble_orders(&pebble), 1, "no second order");
    let s = stored(&api, "locked").expect("created");
    check_secret_material(&pebble, &s, tempfile::tempdir().expect("tempdir").path());
    let (failures, next_attempt, state, pending) = renewal_row(&sb);
    assert_eq!((failures, next_attempt, state.as_str(), pending), (0, None, "idle", None));
}

#[test]
fn an_unreadable_secret_fails_before_any_order() {
    let pebble = Pebble::start();
    let api = ApiServer::start();
    api.with(|s| {
        s.forbidden.insert("hidden".into());
    });
    let sb = sandbox(&api, &pebble, "hidden.certvigil.test", "hidden", "");
    let now = unix_now();
    let run = renew_at(&sb, now, &[]).expect_code(1);
    assert!(run.stderr.contains("cannot read the installed certificate: forbidden to get Secret hidden/site-tls (403)"), "{}", run.stderr);
    assert_eq!(pebble_orders(&pebble), 0, "no order is placed for a target that cannot be read");
    let (failures, next_attempt, _, _) = renewal_row(&sb);
    assert_eq!((failures, next_attempt), (1, Some(now + 60)));
}

#[test]
fn files_first_then_a_secret_left_behind_is_brought_up_to_date_without_a_new_order() {
    let pebble = Pebble::start();
    let api = ApiServer::start();
    api.with(|s| {
        s.forbidden_writes.insert("locked".into());
    });
    let files = "      fullchain: tls/fullchain.pem\n      key: tls/key.pem\n";
    let sb = sandbox(&api, &pebble, "both.certvigil.test", "locked", files);
    let now = unix_now();
    let run = renew_at(&sb, now, &[]).expect_code(1);
    assert!(
        run.stderr.contains("installed in the files, not in the Secret")
            && run.stderr.contains("forbidden to create Secret locked/site-tls (403)"),
        "{}",
        run.stderr
    );
    let fullchain = std::fs::read_to_string(sb.path("tls/fullchain.pem")).expect("the files were installed");
    let key = std::fs::read_to_string(sb.path("tls/key.pem")).expect("key installed");
    let (failures, next_attempt, state, pending) = renewal_row(&sb);
    assert_eq!((failures, next_attempt, state.as_str(), pending), (1, Some(now + 60), "failed", None));

    // After the backoff, the Secret differs from the files: it gets their certificate.
    api.with(|s| s.forbidden_writes.clear());
    let run = renew_at(&sb, now + 61, &[]).expect_code(0);
    assert!(
        run.stdout.contains("web: renewed (Secret locked/site-tls did not hold the installed certificate)"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(pebble_orders(&pebble), 1, "no second order");
    let s = stored(&api, "locked").expect("created");
    assert_eq!((text(&s, "tls.crt"), text(&s, "tls.key")), (fullchain.clone(), key));
    let a = audit(&sb, "renew");
    assert_eq!(a.last().map(|d| d["kubernetes_secret"]["created"].as_bool()), Some(Some(true)), "{a:?}");

    // In step: not due, nothing written.
    let before = writes(&api).len();
    let run = renew_at(&sb, now + 62, &[]).expect_code(0);
    assert!(run.stdout.contains("web: not due"), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(writes(&api).len(), before);
    assert_eq!(std::fs::read_to_string(sb.path("tls/fullchain.pem")).expect("read"), fullchain);
}
