//! The Kubernetes Secret install target against the fixture API server of `tests/kube`
//! (create 201 / 409, replace 200 / 409 on a stale resourceVersion, 403, 404): created when
//! absent, replaced conditionally, retried after a conflict without clobbering the other
//! writer's change, refused cleanly when forbidden.

use crate::kube;

use certvigil::install::kubernetes::{
    ANNOTATION_NOT_AFTER, ANNOTATION_RENEWED_AT, ANNOTATION_SERIAL, MAX_ATTEMPTS, SecretInstallError, SecretTarget, TLS_TYPE,
    install_secret,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::{ApiServer, TOKEN};
use std::time::Duration;

struct Issued {
    ca_pem: String,
    chain_pem: String,
    key_pem: String,
    serial_hex: String,
}

fn issue(cn: &str) -> Issued {
    let ca_key = rcgen::KeyPair::generate().expect("test fixture");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("test fixture");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "Fixture CA");
    let ca_cert = ca.self_signed(&ca_key).expect("test fixture");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().expect("test fixture");
    let mut p = rcgen::CertificateParams::new(vec![cn.to_string()]).expect("test fixture");
    let serial: Vec<u8> = cn.bytes().chain([0x11, 0x22]).collect();
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let leaf = p.signed_by(&key, &issuer).expect("test fixture");
    Issued {
        ca_pem: ca_cert.pem(),
        chain_pem: format!("{}{}", leaf.pem(), ca_cert.pem()),
        key_pem: key.serialize_pem(),
        serial_hex: hex::encode(&serial),
    }
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

struct Fixture {
    api: ApiServer,
    _dir: tempfile::TempDir,
    target: SecretTarget,
}

fn fixture(namespace: &str, name: &str) -> Fixture {
    let api = ApiServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    std::fs::write(&kubeconfig, api.kubeconfig(TOKEN)).expect("write kubeconfig");
    let target = SecretTarget {
        kubeconfig: Some(kubeconfig),
        context: None,
        in_cluster: false,
        namespace: namespace.into(),
        name: name.into(),
        timeout: Duration::from_secs(10),
    };
    Fixture { api, _dir: dir, target }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

fn stored(f: &Fixture) -> Option<Secret> {
    f.api.with(|s| s.secrets.get(&(f.target.namespace.clone(), f.target.name.clone())).cloned())
}

fn text(s: &Secret, key: &str) -> Option<String> {
    s.data.as_ref()?.get(key).map(|b| String::from_utf8_lossy(&b.0).into_owned())
}

fn annotation(s: &Secret, key: &str) -> Option<String> {
    s.metadata.annotations.as_ref()?.get(key).cloned()
}

/// The request lines served (an empty query string, which kube sends as a bare `?`, left out).
fn requests(f: &Fixture) -> Vec<String> {
    f.api.with(|s| s.requests.iter().map(|r| r.trim_end_matches('?').to_string()).collect())
}

fn writes(f: &Fixture) -> Vec<String> {
    requests(f).into_iter().filter(|r| !r.starts_with("GET ")).collect()
}

#[test]
fn an_absent_secret_is_created_with_the_full_chain_key_ca_and_annotations() {
    let f = fixture("web", "site-tls");
    let c = issue("site.example");
    let t = now();
    let done = runtime().block_on(install_secret(&f.target, &c.chain_pem, &c.key_pem, Some(&c.ca_pem), t)).expect("installed");
    assert!(done.created && done.attempts == 1, "{done:?}");
    assert_eq!(done.serial, c.serial_hex);
    let s = stored(&f).expect("created");
    assert_eq!(s.type_.as_deref(), Some(TLS_TYPE));
    assert_eq!(text(&s, "tls.crt"), Some(c.chain_pem.clone()), "tls.crt is the full chain, leaf first");
    assert_eq!(text(&s, "tls.key"), Some(c.key_pem.clone()));
    assert_eq!(text(&s, "ca.crt"), Some(c.ca_pem.clone()));
    assert_eq!(annotation(&s, ANNOTATION_SERIAL), Some(c.serial_hex.clone()));
    assert_eq!(annotation(&s, ANNOTATION_NOT_AFTER), Some(certvigil::model::format_time(done.not_after)));
    assert_eq!(annotation(&s, ANNOTATION_RENEWED_AT), Some(certvigil::model::format_time(t)));
    assert_eq!(s.metadata.resource_version.as_deref(), Some(done.resource_version.as_str()));
    assert_eq!(writes(&f), ["POST /api/v1/namespaces/web/secrets"]);
}

#[test]
fn an_existing_secret_is_replaced_keeping_its_labels_annotations_and_other_keys() {
    let f = fixture("web", "site-tls");
    let old = issue("old.example");
    f.api.with(|s| {
        s.put_secret(
            "web",
            "site-tls",
            TLS_TYPE,
            &[("tls.crt", old.chain_pem.as_bytes()), ("tls.key", old.key_pem.as_bytes()), ("extra", b"keep me")],
        );
        let secret = s.secrets.get_mut(&("web".into(), "site-tls".into())).expect("put");
        secret.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        secret.metadata.annotations = Some([("team".to_string(), "payments".to_string())].into());
    });
    let rv_before = stored(&f).and_then(|s| s.metadata.resource_version).expect("rv");
    let c = issue("site.example");
    let done = runtime().block_on(install_secret(&f.target, &c.chain_pem, &c.key_pem, None, now())).expect("installed");
    assert!(!done.created && done.attempts == 1, "{done:?}");
    let s = stored(&f).expect("present");
    assert_eq!(text(&s, "tls.crt"), Some(c.chain_pem.clone()));
    assert_eq!(text(&s, "tls.key"), Some(c.key_pem.clone()));
    assert_eq!(text(&s, "extra").as_deref(), Some("keep me"));
    assert_eq!(s.metadata.labels.as_ref().and_then(|l| l.get("app")).map(String::as_str), Some("web"));
    assert_eq!(annotation(&s, "team").as_deref(), Some("payments"));
    assert_eq!(annotation(&s, ANNOTATION_SERIAL), Some(c.serial_hex.clone()));
    assert_ne!(s.metadata.resource_version, Some(rv_before));
    assert_eq!(writes(&f), ["PUT /api/v1/namespaces/web/secrets/site-tls"]);
}

#[test]
fn a_conflicting_write_is_read_again_and_retried_without_losing_the_other_change() {
    let f = fixture("web", "site-tls");
    let old = issue("old.example");
    f.api.with(|s| {
        s.put_secret("web", "site-tls", TLS_TYPE, &[("tls.crt", old.chain_pem.as_bytes()), ("tls.key", old.key_pem.as_bytes())]);
        // Another writer changes the Secret between certvigil's read and its first write.
        s.interfering_writes = 1;
    });
    let c = issue("site.example");
    let done = runtime().block_on(install_secret(&f.target, &c.chain_pem, &c.key_pem, None, now())).expect("installed");
    assert_eq!(done.attempts, 2, "{done:?}");
    let s = stored(&f).expect("present");
    assert_eq!(text(&s, "tls.crt"), Some(c.chain_pem.clone()));
    assert!(annotation(&s, "other-writer").is_some(), "the other writer's change survives: {:?}", s.metadata.annotations);
    assert_eq!(
        requests(&f),
        [
            "GET /api/v1/namespaces/web/secrets/site-tls",
            "PUT /api/v1/namespaces/web/secrets/site-tls",
            "GET /api/v1/namespaces/web/secrets/site-tls",
            "PUT /api/v1/namespaces/web/secrets/site-tls",
        ]
    );
}

#[test]
fn a_secret_created_meanwhile_by_someone_else_is_read_and_replaced_not_overwritten_blindly() {
    let f = fixture("web", "site-tls");
    f.api.with(|s| s.interfering_writes = 1);
    let c = issue("site.example");
    let done = runtime().block_on(install_secret(&f.target, &c.chain_pem, &c.key_pem, None, now())).expect("installed");
    assert!(!done.created && done.attempts == 2, "{done:?}");
    let s = stored(&f).expect("present");
    assert_eq!(text(&s, "tls.crt"), Some(c.chain_pem.clone()));
    assert!(annotation(&s, "other-writer").is_some(), "{:?}", s.metadata.annotations);
    assert_eq!(writes(&f), ["POST /api/v1/namespaces/web/secrets", "PUT /api/v1/namespaces/web/secrets/site-tls"]);
}

#[test]
fn a_secret_that_keeps_changing_is_left_alone_after_the_bounded_attempts() {
    let f = fixture("web", "site-tls");
    let old = issue("old.example");
    f.api.with(|s| {
        s.put_secret("web", "site-tls", TLS_TYPE, &[("tls.crt", old.chain_pem.as_bytes()), ("tls.key", old.key_pem.as_bytes())]);
        s.interfering_writes = 1000;
    });
    let c = issue("site.example");
    let e = runtime().block_on(install_secret(&f.target, &c.chain_pem, &c.key_pem, None, now())).expect_err("never written");
    assert_eq!(e, SecretInstallError::Conflict { secret: "web/site-tls".into(), attempts: MAX_ATTEMPTS });
    assert_eq!(text(&stored(&f).expect("present"), "tls.crt"), Some(old.chain_pem.clone()), "not clobbered");
    assert_eq!(writes(&f).len(), MAX_ATTEMPTS as usize);
}

#[test]
fn a_forbidden_namespace_is_a_clear_error_and_nothing_is_written() {
    let f = fixture("locked", "site-tls");
    f.api.with(|s| {
        s.forbidden_writes.insert("locked".into());
    });
    let c = issue("site.example");
    let e = runtime().block_on(install_secret(&f.target, &c.chain_pem, &c.key_pem, None, now())).expect_err("forbidden");
    match &e {
        SecretInstallError::Forbidden { secret, verb, message } => {
            assert_eq!((secret.as_str(), *verb), ("locked/site-tls", "create"));
            assert!(message.contains("cannot create resource \"secrets\""), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("forbidden to create Secret locked/site-tls (403)"), "{e}");
    assert!(stored(&f).is_none());
    // Not even readable: the read is what fails.
    let f = fixture("hidden", "site-tls");
    f.api.with(|s| {
        s.forbidden.insert("hidden".into());
    });
    let e = runtime().block_on(install_secret(&f.target, &c.chain_pem, &c.key_pem, None, now())).expect_err("forbidden");
    assert!(matches!(&e, SecretInstallError::Forbidden { verb: "get", .. }), "{e:?}");
    assert!(writes(&f).is_empty());
}

#[test]
fn a_wrong_key_or_a_secret_of_another_type_is_refused_before_any_write() {
    let f = fixture("web", "site-tls");
    let (a, b) = (issue("a.example"), issue("b.example"));
    let e = runtime().block_on(install_secret(&f.target, &a.chain_pem, &b.key_pem, None, now())).expect_err("mismatch");
    assert!(matches!(&e, SecretInstallError::Invalid { reason, .. } if reason.contains("does not match")), "{e:?}");
    assert!(f.api.with(|s| s.requests.is_empty()), "checked before any request");

    f.api.with(|s| s.put_secret("web", "site-tls", "Opaque", &[("password", b"hunter2")]));
    let e = runtime().block_on(install_secret(&f.target, &a.chain_pem, &a.key_pem, None, now())).expect_err("wrong type");
    assert_eq!(e, SecretInstallError::WrongType { secret: "web/site-tls".into(), found: "Opaque".into() });
    let s = stored(&f).expect("present");
    assert_eq!(s.data.and_then(|d| d.get("password").cloned()), Some(ByteString(b"hunter2".to_vec())));
    assert!(writes(&f).is_empty());
}

#[test]
fn the_installed_leaf_is_read_back_for_the_renewal_decision() {
    let f = fixture("web", "site-tls");
    let rt = runtime();
    assert!(rt.block_on(certvigil::install::kubernetes::current_leaf(&f.target)).expect("read").is_none());
    let c = issue("site.example");
    let done = rt.block_on(install_secret(&f.target, &c.chain_pem, &c.key_pem, None, now())).expect("installed");
    let leaf = rt.block_on(certvigil::install::kubernetes::current_leaf(&f.target)).expect("read").expect("present");
    assert_eq!(leaf.not_after, done.not_after);
    assert_eq!(leaf.serial.to_lowercase(), c.serial_hex);
}

/// The install target connects through the source's connection code: a context with
/// `insecure-skip-tls-verify` is refused before any request (a Secret holds a private key),
/// and an unknown context names the ones the kubeconfig has.
#[test]
fn the_target_connects_like_the_source_refusing_insecure_contexts_and_unknown_ones() {
    let f = fixture("web", "site-tls");
    let c = issue("site.example");
    let insecure = api_kubeconfig_insecure(&f.api);
    let path = f._dir.path().join("insecure.yaml");
    std::fs::write(&path, insecure).expect("write kubeconfig");
    let target = SecretTarget { kubeconfig: Some(path), ..f.target.clone() };
    let err = runtime().block_on(install_secret(&target, &c.chain_pem, &c.key_pem, None, now())).expect_err("refused");
    match &err {
        SecretInstallError::Connect { secret, reason } => {
            assert_eq!(secret, "web/site-tls");
            assert!(reason.contains("insecure-skip-tls-verify") && reason.contains("refused"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let target = SecretTarget { context: Some("elsewhere".into()), ..f.target.clone() };
    let err = runtime().block_on(install_secret(&target, &c.chain_pem, &c.key_pem, None, now())).expect_err("refused");
    assert!(err.to_string().contains("the kubeconfig has no context `elsewhere` (it has: fixture)"), "{err}");
    assert!(requests(&f).is_empty(), "{:?}", requests(&f));
    assert!(stored(&f).is_none());
}

fn api_kubeconfig_insecure(api: &ApiServer) -> String {
    api.kubeconfig(TOKEN).replace("    server:", "    insecure-skip-tls-verify: true\n    server:")
}
