//! Revocation against real components: a CA run by `openssl ca`, its CRLs served over loopback
//! HTTP with ETags, and `openssl ocsp` answering behind a loopback wrapper (see `pki`).

#![allow(clippy::unwrap_used)]

mod pki;

use certvigil::config;
use certvigil::inventory;
use certvigil::model::{RevocationState, RevocationStatus};
use certvigil::revocation::{Checker, Stats};
use certvigil::sources;
use certvigil::store::Store;
use pki::{KeyKind, OcspMode, TestCa};
use std::path::Path;
use std::sync::{Arc, Mutex};

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A store with the certificates found in `certs` and a checker configured by `revocation`
/// (YAML mapping body).
struct Env {
    store: Arc<Mutex<Store>>,
    checker: Arc<Checker>,
    _dir: tempfile::TempDir,
}

fn env(certs: &[&Path], revocation: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let certdir = dir.path().join("certs");
    std::fs::create_dir_all(&certdir).unwrap();
    for c in certs {
        std::fs::copy(c, certdir.join(c.file_name().unwrap())).unwrap();
    }
    let yaml = format!("store: {{path: state/cv.db}}\nsources:\n  - {{name: t, kind: files, paths: [certs]}}\nrevocation: {revocation}\n");
    let settings = config::parse_str(&yaml, "test.yaml", dir.path()).unwrap();
    let mut store = Store::open(&dir.path().join("state/cv.db")).unwrap();
    let srcs: Vec<Box<dyn sources::Source>> = settings.sources.iter().map(sources::build).collect();
    let report = inventory::scan(&mut store, &srcs, true, now(), 1, &mut |_| {}).unwrap();
    assert_eq!(report.run.errors, 0, "fixture scan has errors");
    let checker = Arc::new(Checker::new(settings.revocation.clone(), dir.path().join("state")).unwrap());
    Env { store: Arc::new(Mutex::new(store)), checker, _dir: dir }
}

impl Env {
    fn check_at(&self, at: i64) -> Vec<(String, RevocationStatus)> {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let out = rt.block_on(self.checker.check(Arc::clone(&self.store), None, at)).unwrap();
        out.into_iter().map(|(c, s)| (c.facts.common_name.unwrap_or_default(), s)).collect()
    }

    fn check(&self) -> Vec<(String, RevocationStatus)> {
        self.check_at(now())
    }

    fn status_of(&self, results: &[(String, RevocationStatus)], name: &str) -> RevocationStatus {
        let cn = format!("{name}.example.test");
        results.iter().find(|(n, _)| *n == cn).map(|(_, s)| s.clone()).unwrap_or_else(|| panic!("no result for {cn}: {results:#?}"))
    }
}

fn ca(kind: KeyKind) -> (tempfile::TempDir, TestCa) {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(&dir.path().join("ca"), kind);
    (dir, ca)
}

fn assert_state(s: &RevocationStatus, state: RevocationState, method: &str) {
    assert_eq!(s.state, state, "{s:#?}");
    assert_eq!(s.method, method, "{s:#?}");
}

#[test]
fn crl_good_and_every_revocation_reason() {
    let (_d, ca) = ca(KeyKind::EcP256);
    let reasons =
        ["unspecified", "keyCompromise", "CACompromise", "affiliationChanged", "superseded", "cessationOfOperation", "certificateHold"];
    let mut files = vec![ca.issue("good", "leaf_ext"), ca.dir.join("ca.crt")];
    for (i, _) in reasons.iter().enumerate() {
        files.push(ca.issue(&format!("r{i}"), "leaf_ext"));
    }
    for (i, r) in reasons.iter().enumerate() {
        ca.revoke(&format!("r{i}"), r);
    }
    ca.publish_crl();
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: crl, fallback: false}");
    let res = e.check();
    let good = e.status_of(&res, "good");
    assert_state(&good, RevocationState::Good, "crl");
    assert_eq!(good.evidence_sha256.as_deref(), Some(pki::sha256_hex(&std::fs::read(ca.dir.join("www/ca.crl")).unwrap()).as_str()));
    assert!(good.next_update.is_some());
    let expected =
        ["unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded", "cessationOfOperation", "certificateHold"];
    for (i, want) in expected.iter().enumerate() {
        let s = e.status_of(&res, &format!("r{i}"));
        assert_state(&s, RevocationState::Revoked, "crl");
        assert_eq!(s.reason.as_deref(), Some(*want), "r{i}");
        assert!(s.revoked_at.is_some_and(|t| (t - now()).abs() < 600));
    }
    let root = res.iter().find(|(n, _)| n == "certvigil Test CA").unwrap();
    assert_eq!(root.1.state, RevocationState::NotApplicable);
    // The status is stored with its history.
    let store = e.store.lock().unwrap();
    let certs = store.certificates(false).unwrap();
    let revoked = certs.iter().find(|c| c.facts.common_name.as_deref() == Some("r1.example.test")).unwrap();
    let st = store.revocation_status(revoked.id).unwrap().unwrap();
    assert_eq!(st.state, RevocationState::Revoked);
    assert_eq!(store.revocation_history(revoked.id).unwrap().len(), 1);
}

#[test]
fn ocsp_good_revoked_and_cached() {
    let (_d, ca) = ca(KeyKind::EcP256);
    let files = [ca.issue("good", "leaf_ext"), ca.issue("bad", "leaf_ext"), ca.dir.join("ca.crt")];
    ca.revoke("bad", "keyCompromise");
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: ocsp, fallback: false}");
    let res = e.check();
    assert_state(&e.status_of(&res, "good"), RevocationState::Good, "ocsp");
    let bad = e.status_of(&res, "bad");
    assert_state(&bad, RevocationState::Revoked, "ocsp");
    assert_eq!(bad.reason.as_deref(), Some("keyCompromise"));
    let before = ca.server.ocsp_requests();
    assert_eq!(before, 2, "one request per certificate");
    // Cached until nextUpdate: a second pass asks nobody.
    let res2 = e.check();
    assert_eq!(ca.server.ocsp_requests(), before, "cached OCSP answers must not be re-requested");
    assert_state(&e.status_of(&res2, "bad"), RevocationState::Revoked, "ocsp");
    assert!(Stats::get(&e.checker.stats.ocsp_cache_hits) >= 2);
}

#[test]
fn ocsp_by_ca_key_and_with_nonce() {
    let (_d, ca) = ca(KeyKind::EcP256);
    ca.server.set_ocsp(OcspMode::ByCa);
    let files = [ca.issue("good", "ocsp_only_ext"), ca.dir.join("ca.crt")];
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: ocsp, fallback: false, ocsp_nonce: true}");
    assert_state(&e.status_of(&e.check(), "good"), RevocationState::Good, "ocsp");
}

#[test]
fn ocsp_replayed_response_fails_the_nonce_check() {
    let (_d, ca) = ca(KeyKind::EcP256);
    let files = [ca.issue("a", "ocsp_only_ext"), ca.dir.join("ca.crt")];
    ca.server.set_ocsp(OcspMode::Replay);
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: ocsp, fallback: false, ocsp_nonce: true}");
    // The first answer carries the first request's nonce and is accepted.
    assert_state(&e.status_of(&e.check(), "a"), RevocationState::Good, "ocsp");
    // Later answers replay it: the nonce no longer matches.
    e.store.lock().unwrap().conn().execute("DELETE FROM ocsp_cache", []).unwrap();
    let s = e.status_of(&e.check(), "a");
    assert_state(&s, RevocationState::Unknown, "none");
    assert!(s.reason.as_deref().unwrap().contains("nonce does not match"), "{s:#?}");
}

#[test]
fn ocsp_failures_are_unknown_with_their_reason() {
    let (_d, ca) = ca(KeyKind::EcP256);
    let files = [ca.issue("a", "ocsp_only_ext"), ca.dir.join("ca.crt")];
    let cases = [
        (OcspMode::UnrelatedKey, "neither the issuer nor a responder it authorised"),
        (OcspMode::Garbage, "malformed OCSP response"),
        (OcspMode::TryLater, "tryLater"),
        (OcspMode::Slow, "timed out"),
    ];
    for (mode, want) in cases {
        ca.server.set_ocsp(mode);
        let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: ocsp, fallback: false, timeout: 1s}");
        let s = e.status_of(&e.check(), "a");
        assert_state(&s, RevocationState::Unknown, "none");
        assert!(s.reason.as_deref().unwrap().contains(want), "{mode:?}: {s:#?}");
    }
    ca.server.set_ocsp(OcspMode::Delegated);
    ca.server.set_down(true);
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: ocsp, fallback: false, timeout: 2s}");
    let s = e.status_of(&e.check(), "a");
    assert_state(&s, RevocationState::Unknown, "none");
    assert!(s.reason.as_deref().unwrap().starts_with("OCSP http://127.0.0.1"), "{s:#?}");
}

#[test]
fn hold_then_release() {
    let (_d, ca) = ca(KeyKind::EcP256);
    let files = [ca.issue("h", "crl_only_ext"), ca.dir.join("ca.crt")];
    ca.revoke("h", "certificateHold");
    ca.publish_crl();
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: crl}");
    let s = e.status_of(&e.check(), "h");
    assert_state(&s, RevocationState::Revoked, "crl");
    assert_eq!(s.reason.as_deref(), Some("certificateHold"));
    ca.release("h");
    ca.publish_crl();
    assert_state(&e.status_of(&e.check(), "h"), RevocationState::Good, "crl");
    let store = e.store.lock().unwrap();
    let id = store.certificates(false).unwrap().iter().find(|c| c.facts.common_name.as_deref() == Some("h.example.test")).unwrap().id;
    let hist: Vec<String> = store.revocation_history(id).unwrap().into_iter().map(|h| h.status).collect();
    assert_eq!(hist, ["revoked", "good"]);
}

#[test]
fn delta_crl_adds_revocations_and_releases_holds() {
    let (_d, ca) = ca(KeyKind::EcP256);
    let files = [ca.issue("late", "crl_only_ext"), ca.issue("held", "crl_only_ext"), ca.issue("ok", "crl_only_ext"), ca.dir.join("ca.crt")];
    ca.revoke("held", "certificateHold");
    let base_number = ca.publish_crl_with("crl_fresh_ext", "ca.crl");
    // After the base: `late` is compromised, `held` is released.
    ca.revoke("late", "keyCompromise");
    ca.publish_delta(&base_number, &[("late", "keyCompromise"), ("held", "removeFromCRL")]);
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: crl, fallback: false}");
    let res = e.check();
    let late = e.status_of(&res, "late");
    assert_state(&late, RevocationState::Revoked, "crl+delta");
    assert_eq!(late.reason.as_deref(), Some("keyCompromise"));
    let held = e.status_of(&res, "held");
    assert_state(&held, RevocationState::Good, "crl+delta");
    assert!(held.detail.as_deref().unwrap().contains("released from hold"), "{held:#?}");
    assert_state(&e.status_of(&res, "ok"), RevocationState::Good, "crl+delta");
    assert!(ca.server.hits("/delta.crl") >= 1);
}

#[test]
fn stale_crl_is_unknown_after_the_grace() {
    let (_d, ca) = ca(KeyKind::EcP256);
    let files = [ca.issue("a", "crl_only_ext"), ca.dir.join("ca.crt")];
    ca.publish_short_crl(); // nextUpdate = thisUpdate + 1h
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: crl, fallback: false, stale_grace: 1h, clock_skew: 1m}");
    let within = e.status_of(&e.check_at(now() + 90 * 60), "a");
    assert_state(&within, RevocationState::Good, "crl");
    assert!(within.stale, "past nextUpdate but within the grace: {within:#?}");
    let after = e.status_of(&e.check_at(now() + 3 * 3600), "a");
    assert_state(&after, RevocationState::Unknown, "none");
    assert!(after.stale);
    assert!(after.reason.as_deref().unwrap().contains("stale"), "{after:#?}");
}

#[test]
fn forged_crl_is_rejected() {
    let (_d, ca) = ca(KeyKind::EcP256);
    let files = [ca.issue("victim", "crl_only_ext"), ca.dir.join("ca.crt")];
    ca.revoke("victim", "keyCompromise");
    // Same issuer name, lists nothing, signed by another key.
    ca.publish_forged_crl(true);
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: crl, fallback: false}");
    let s = e.status_of(&e.check(), "victim");
    assert_state(&s, RevocationState::Unknown, "none");
    assert!(s.reason.as_deref().unwrap().contains("authority key identifier"), "{s:#?}");
    // Without an AKI to give it away, the signature does.
    ca.publish_forged_crl(false);
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: crl, fallback: false}");
    let s = e.status_of(&e.check(), "victim");
    assert_state(&s, RevocationState::Unknown, "none");
    assert!(s.reason.as_deref().unwrap().contains("signature does not verify"), "{s:#?}");
}

#[test]
fn not_modified_crl_is_not_parsed_again() {
    let (_d, ca) = ca(KeyKind::EcP256);
    let files = [ca.issue("a", "crl_only_ext"), ca.issue("b", "crl_only_ext"), ca.dir.join("ca.crt")];
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: crl, fallback: false}");
    e.check();
    assert_eq!(ca.server.hits("/ca.crl"), 1, "one download for both certificates");
    assert_eq!(Stats::get(&e.checker.stats.crl_parses), 1);
    let res = e.check();
    assert_eq!(ca.server.hits("/ca.crl"), 2, "a conditional GET on the second pass");
    assert_eq!(Stats::get(&e.checker.stats.crl_not_modified), 1);
    assert_eq!(Stats::get(&e.checker.stats.crl_parses), 1, "304 must cost no parse");
    assert_state(&e.status_of(&res, "a"), RevocationState::Good, "crl");
    // A changed CRL is downloaded and parsed.
    ca.revoke("b", "superseded");
    ca.publish_crl();
    let res = e.check();
    assert_eq!(Stats::get(&e.checker.stats.crl_parses), 2);
    assert_state(&e.status_of(&res, "b"), RevocationState::Revoked, "crl");
}

#[test]
fn certificate_without_crl_dp_or_aia_is_unknown() {
    let (_d, ca) = ca(KeyKind::EcP256);
    let files = [ca.issue("bare", "bare_ext"), ca.dir.join("ca.crt")];
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{}");
    let s = e.status_of(&e.check(), "bare");
    assert_state(&s, RevocationState::Unknown, "none");
    let why = s.reason.unwrap();
    assert!(why.contains("no OCSP responder URL") && why.contains("no CRL distribution point"), "{why}");
}

#[test]
fn issuer_fetched_from_aia_when_not_inventoried() {
    let (_d, ca) = ca(KeyKind::EcP256);
    let files = [ca.issue("orphan", "leaf_ext")]; // the CA certificate is not scanned
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: crl}");
    assert_state(&e.status_of(&e.check(), "orphan"), RevocationState::Good, "crl");
    assert_eq!(ca.server.hits("/ca.crt"), 1);
    let e2 = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: crl, fetch_issuers: false}");
    let s = e2.status_of(&e2.check(), "orphan");
    assert_state(&s, RevocationState::Unknown, "none");
    assert!(s.reason.unwrap().contains("not found in the inventory"));
}

#[test]
fn crl_signatures_of_every_key_type_verify() {
    for kind in [KeyKind::Rsa2048, KeyKind::RsaPss, KeyKind::EcP384, KeyKind::Ed25519] {
        let (_d, ca) = ca(kind);
        let files = [ca.issue("ok", "crl_only_ext"), ca.issue("gone", "crl_only_ext"), ca.dir.join("ca.crt")];
        ca.revoke("gone", "superseded");
        ca.publish_crl();
        let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: crl, fallback: false}");
        let res = e.check();
        assert_state(&e.status_of(&res, "ok"), RevocationState::Good, "crl");
        assert_state(&e.status_of(&res, "gone"), RevocationState::Revoked, "crl");
    }
}

#[test]
fn pss_with_an_unsupported_salt_is_unknown_not_good() {
    use certvigil::revocation::verify::{VerifyError, verify_cert_signed_by};
    let dir = tempfile::tempdir().unwrap();
    // OpenSSL's default PSS salt is the maximum length, which ring cannot verify.
    pki::openssl(
        dir.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa-pss",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=pss",
            "-keyout",
            "k.pem",
            "-out",
            "c.pem",
        ],
    );
    let pem = std::fs::read(dir.path().join("c.pem")).unwrap();
    let parsed = certvigil::x509::parse_object(&pem, &[]);
    let der = &parsed.certs[0].der;
    let spki = certvigil::x509::cert::raw_parts(der).unwrap().spki.to_vec();
    match verify_cert_signed_by(der, &spki) {
        Err(VerifyError::Unsupported(m)) => assert!(m.contains("salt"), "{m}"),
        other => panic!("expected an unsupported-salt error, got {other:?}"),
    }
}

#[test]
fn crls_named_in_the_configuration_cover_certificates_without_a_distribution_point() {
    let (_d, ca) = ca(KeyKind::EcP256);
    let files = [ca.issue("plain", "bare_ext"), ca.issue("pulled", "bare_ext"), ca.dir.join("ca.crt")];
    ca.revoke("pulled", "cessationOfOperation");
    ca.publish_crl();
    let url = ca.server.url("ca.crl");
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), &format!("{{prefer: crl, fallback: false, crls: [\"{url}\"]}}"));
    let res = e.check();
    let plain = e.status_of(&res, "plain");
    assert_state(&plain, RevocationState::Good, "crl");
    assert_eq!(plain.source_url.as_deref(), Some(url.as_str()));
    let pulled = e.status_of(&res, "pulled");
    assert_state(&pulled, RevocationState::Revoked, "crl");
    assert_eq!(pulled.reason.as_deref(), Some("cessationOfOperation"));
    assert_eq!(ca.server.hits("/ca.crl"), 1, "one download serves every certificate of the issuer");
}
