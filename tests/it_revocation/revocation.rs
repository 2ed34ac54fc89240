//! Revocation against real components: a CA run by `openssl ca`, its CRLs served over loopback
//! HTTP with ETags, and `openssl ocsp` answering behind a loopback wrapper (see `pki`).

#![allow(clippy::unwrap_used)]

use crate::common;
use crate::pki;

use certvigil::app::scan;
use certvigil::config;
use certvigil::model::{RevocationState, RevocationStatus};
use certvigil::revocation::{Checker, Stats};
use certvigil::sources;
use certvigil::store::Store;
use common::http::{HttpServer, refused_port};
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
    let report = scan::scan(&mut store, &srcs, true, now(), 1, &mut |_| {}).unwrap();
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
    e.store.lock().unwrap().conn().unwrap().execute("DELETE FROM ocsp_cache", []).unwrap();
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
fn a_delta_cannot_release_a_revocation_that_is_not_a_hold() {
    // §5.3.1: removeFromCRL releases a hold (or drops an expired certificate); a delta that
    // says it of a key compromise listed in the base does not make the certificate good.
    let (_d, ca) = ca(KeyKind::EcP256);
    let files = [ca.issue("compromised", "crl_only_ext"), ca.dir.join("ca.crt")];
    ca.revoke("compromised", "keyCompromise");
    let base_number = ca.publish_crl_with("crl_fresh_ext", "ca.crl");
    ca.publish_delta(&base_number, &[("compromised", "removeFromCRL")]);
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: crl, fallback: false}");
    let s = e.status_of(&e.check(), "compromised");
    assert_state(&s, RevocationState::Revoked, "crl+delta");
    assert_eq!(s.reason.as_deref(), Some("keyCompromise"));
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

/// A certificate's issuer is confirmed by its signature once per checker (the daemon's lives
/// across passes): the second pass verifies no certificate signature again, and still answers.
#[test]
fn issuer_signatures_are_verified_once_per_checker() {
    let (_d, ca) = ca(KeyKind::EcP256);
    let files = [ca.issue("a", "crl_only_ext"), ca.issue("b", "crl_only_ext"), ca.dir.join("ca.crt")];
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: crl, fallback: false}");
    let res = e.check();
    assert_state(&e.status_of(&res, "a"), RevocationState::Good, "crl");
    assert_eq!(Stats::get(&e.checker.stats.issuer_signatures), 2, "one verification per leaf");
    let res = e.check();
    assert_state(&e.status_of(&res, "b"), RevocationState::Good, "crl");
    assert_eq!(Stats::get(&e.checker.stats.issuer_signatures), 2, "none on the second pass");
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
fn certificate_without_crl_dp_or_aia_is_not_applicable() {
    let (_d, ca) = ca(KeyKind::EcP256);
    let files = [ca.issue("bare", "bare_ext"), ca.dir.join("ca.crt")];
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{}");
    let s = e.status_of(&e.check(), "bare");
    // Nothing can report it revoked: `unknown` would alarm about a question with no answer.
    assert_state(&s, RevocationState::NotApplicable, "none");
    let why = s.reason.unwrap();
    assert!(why.contains("no CRL distribution point and no OCSP URL"), "{why}");
    assert_eq!(ca.server.hits("/ca.crl") + ca.server.ocsp_requests(), 0, "nothing is asked");
}

/// Short-lived certificates (≤ 10 days, BR §1.6.1): where the CA keeps no revocation
/// information they are `not-applicable`, but an answer the CA does give still counts; a longer
/// certificate with the same dead pointers stays `unknown`.
#[test]
fn short_lived_certificates_are_not_applicable_unless_their_ca_answers() {
    let (_d, ca) = ca(KeyKind::EcP256);
    let files = [
        ca.issue_for_days("brief", "crl_only_ext", 6),
        ca.issue_for_days("pulled", "crl_only_ext", 6),
        ca.issue_for_days("tenday", "crl_only_ext", 10),
        ca.issue_for_days("eleven", "crl_only_ext", 11),
        ca.dir.join("ca.crt"),
    ];
    ca.revoke("pulled", "keyCompromise");
    ca.publish_crl();
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: crl, fallback: false}");
    let res = e.check();
    // The CA publishes a CRL: a revoked short-lived certificate is reported revoked.
    assert_state(&e.status_of(&res, "brief"), RevocationState::Good, "crl");
    assert_state(&e.status_of(&res, "pulled"), RevocationState::Revoked, "crl");
    // The CRL goes away (a fresh state directory: no cached copy): short-lived ones become
    // not-applicable, the 11-day one unknown.
    std::fs::remove_file(ca.dir.join("www/ca.crl")).unwrap();
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: crl, fallback: false}");
    let res = e.check();
    let brief = e.status_of(&res, "brief");
    assert_state(&brief, RevocationState::NotApplicable, "none");
    let why = brief.reason.clone().unwrap();
    assert!(why.starts_with("short-lived (6 days") && why.contains("its expiry is its revocation"), "{why}");
    assert!(brief.detail.as_deref().is_some_and(|d| d.starts_with("tried: ")), "{brief:#?}");
    // openssl's `-days 10` gives notAfter − notBefore = 10 days, one second over the BR's
    // inclusive 10 days: not short-lived.
    assert_state(&e.status_of(&res, "tenday"), RevocationState::Unknown, "none");
    assert_state(&e.status_of(&res, "eleven"), RevocationState::Unknown, "none");
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
    use certvigil::x509::verify::{VerifyError, verify_cert_signed_by};
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
    match verify_cert_signed_by(der, &spki, 2048) {
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

// ---------------------------------------------------------------------------------------------
// Hostile and unusual CRLs (RFC 5280 §5, §6.3.3). Each malformed CRL below is signed by the
// real CA key, served at the distribution point, and checked for a certificate it does not
// list: that certificate must read `unknown`, never `good`. The same builder without the
// defect gives `good`, so every case fails for its defect alone.
// ---------------------------------------------------------------------------------------------

use pki::{der, generalized_time, utc_time};

/// Everything a status says about why: its reason and detail.
fn why(s: &RevocationStatus) -> String {
    format!("{} {}", s.reason.clone().unwrap_or_default(), s.detail.clone().unwrap_or_default())
}

const OID_CN: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];

fn oid(content: &[u8]) -> Vec<u8> {
    der(0x06, &[content])
}

fn ext(oid_content: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let crit: &[u8] = if critical { &[0x01, 0x01, 0xff] } else { &[] };
    der(0x30, &[&oid(oid_content), crit, &der(0x04, &[value])])
}

fn serial_der(hex_serial: &str) -> Vec<u8> {
    let mut b = hex::decode(if hex_serial.len() % 2 == 1 { format!("0{hex_serial}") } else { hex_serial.to_string() }).unwrap();
    if b[0] & 0x80 != 0 {
        b.insert(0, 0);
    }
    der(0x02, &[&b])
}

fn reason_ext(code: u8) -> Vec<u8> {
    ext(&[0x55, 0x1d, 0x15], false, &der(0x0a, &[&[code]]))
}

fn entry(serial: &str, at: i64, exts: &[Vec<u8>]) -> Vec<u8> {
    let list = if exts.is_empty() { Vec::new() } else { der(0x30, &[&exts.concat()]) };
    der(0x30, &[&serial_der(serial), &utc_time(at), &list])
}

/// The fields of a well-formed v2 CRL from `ca`: version, signature, issuer, thisUpdate,
/// nextUpdate, one revoked entry (`listed`, keyCompromise), [0] { AKI, cRLNumber } plus
/// `crl_exts`. Tests edit the list to break one rule.
fn crl_fields(ca: &TestCa, listed: &str, crl_exts: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let t = now();
    let aki = ext(&[0x55, 0x1d, 0x23], false, &der(0x30, &[&der(0x80, &[&ca.ski()])]));
    let number = ext(&[0x55, 0x1d, 0x14], false, &der(0x02, &[&[0x10, 0x00]]));
    let exts: Vec<u8> = [aki, number].into_iter().chain(crl_exts.iter().cloned()).collect::<Vec<_>>().concat();
    vec![
        der(0x02, &[&[1]]),
        pki::ECDSA_SHA256.to_vec(),
        ca.subject_der(),
        utc_time(t - 3600),
        utc_time(t + 7 * 86_400),
        der(0x30, &[&entry(listed, t - 7200, &[reason_ext(1)])]),
        der(0xa0, &[&der(0x30, &[&exts])]),
    ]
}

fn publish_fields(ca: &TestCa, fields: &[Vec<u8>]) {
    let tbs = der(0x30, &[&fields.concat()]);
    std::fs::write(ca.dir.join("www/ca.crl"), ca.sign(&tbs)).unwrap();
}

/// A CA with `probe` (never revoked) and `listed` (revoked in every hand-built CRL), both with
/// the CA's CRL distribution point.
fn crl_case_ca() -> (tempfile::TempDir, TestCa, Vec<std::path::PathBuf>, String) {
    let (d, ca) = ca(KeyKind::EcP256);
    let files = vec![ca.issue("probe", "crl_only_ext"), ca.issue("listed", "crl_only_ext"), ca.dir.join("ca.crt")];
    let listed = ca.serial("listed");
    (d, ca, files, listed)
}

fn check_probe(files: &[std::path::PathBuf]) -> (RevocationStatus, RevocationStatus) {
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: crl, fallback: false}");
    let res = e.check();
    (e.status_of(&res, "probe"), e.status_of(&res, "listed"))
}

#[test]
fn a_hand_built_crl_is_usable_when_nothing_is_wrong_with_it() {
    let (_d, ca, files, listed) = crl_case_ca();
    publish_fields(&ca, &crl_fields(&ca, &listed, &[]));
    let (probe, gone) = check_probe(&files);
    assert_state(&probe, RevocationState::Good, "crl");
    assert_state(&gone, RevocationState::Revoked, "crl");
    assert_eq!(gone.reason.as_deref(), Some("keyCompromise"));
}

#[test]
fn a_crl_with_any_malformed_part_answers_for_no_serial() {
    let (_d, ca, files, listed) = crl_case_ca();
    let t = now();
    let base = crl_fields(&ca, &listed, &[]);
    let with_entries = |entries: &[Vec<u8>]| {
        let mut f = base.clone();
        f[5] = der(0x30, &[&entries.concat()]);
        f
    };
    let good_entry = entry(&listed, t - 7200, &[reason_ext(1)]);
    let mut cases: Vec<(&str, Vec<Vec<u8>>, &str)> = vec![
        // §5.3: one malformed entry anywhere makes the CRL unusable, not just that serial.
        (
            "an entry with a bad revocationDate",
            with_entries(&[good_entry.clone(), der(0x30, &[&serial_der("7777"), &der(0x17, &[b"99999999"])])]),
            "revocationDate",
        ),
        ("an entry with an undefined reason code", with_entries(&[good_entry.clone(), entry("7777", t, &[reason_ext(7)])]), "reasonCode"),
        (
            "an entry with fields after its extensions",
            with_entries(&[
                good_entry.clone(),
                der(0x30, &[&serial_der("7777"), &utc_time(t), &der(0x30, &[&reason_ext(1)]), &der(0x05, &[])]),
            ]),
            "after crlEntryExtensions",
        ),
        (
            "an unrecognised critical entry extension",
            with_entries(&[good_entry.clone(), entry("7777", t, &[ext(&[0x2a, 0x03, 0x04], true, &der(0x05, &[]))])]),
            "unrecognised critical extension",
        ),
        (
            "a certificateIssuer entry extension in a direct CRL",
            with_entries(&[entry("7777", t, &[ext(&[0x55, 0x1d, 0x1d], true, &der(0x30, &[]))]), good_entry.clone()]),
            "certificateIssuer",
        ),
        (
            "an invalidityDate that is a UTCTime",
            with_entries(&[good_entry.clone(), entry("7777", t, &[ext(&[0x55, 0x1d, 0x18], false, &utc_time(t))])]),
            "invalidityDate",
        ),
        ("an empty revokedCertificates", with_entries(&[]), "present but empty"),
        (
            "a serial listed twice",
            with_entries(&[good_entry.clone(), entry("7777", t, &[]), entry(&listed, t, &[reason_ext(4)])]),
            "listed twice",
        ),
        (
            "removeFromCRL in a complete CRL",
            with_entries(&[good_entry.clone(), entry("7777", t, &[reason_ext(8)])]),
            "removeFromCRL in a CRL that is not a delta",
        ),
    ];
    let mut f = base.clone();
    f.remove(0);
    cases.push(("a v1 CRL with extensions", f, "v1 CRL"));
    let mut f = base.clone();
    f[0] = der(0x02, &[&[0]]);
    cases.push(("an explicit version v1", f, "version"));
    let mut f = base.clone();
    f[0] = der(0x02, &[&[2]]);
    cases.push(("version v3", f, "version"));
    let mut f = base.clone();
    f.swap(4, 5);
    cases.push(("nextUpdate after revokedCertificates", f, "out of order"));
    let mut f = base.clone();
    f.insert(5, utc_time(t + 86_400));
    cases.push(("nextUpdate twice", f, "repeated"));
    let mut f = base.clone();
    f.push(der(0x05, &[]));
    cases.push(("a field after crlExtensions", f, "unexpected field"));
    let mut f = base.clone();
    // ecdsa-with-SHA384 inside, ecdsa-with-SHA256 outside (§5.1.1.2).
    f[1] = vec![0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
    cases.push(("signature algorithms that differ", f, "signatureAlgorithm differs"));
    let mut f = base.clone();
    f[6] = crl_fields(&ca, &listed, &[ext(&[0x55, 0x1d, 0x14], false, &der(0x02, &[&[0x10, 0x01]]))])[6].clone();
    cases.push(("cRLNumber twice", f, "appears twice"));
    let mut f = base.clone();
    f[6] = crl_fields(&ca, &listed, &[ext(&[0x2a, 0x03, 0x05], true, &der(0x05, &[]))])[6].clone();
    cases.push(("an unrecognised critical CRL extension", f, "unrecognised critical extension"));

    for (what, fields, expected) in cases {
        publish_fields(&ca, &fields);
        let (probe, gone) = check_probe(&files);
        assert_eq!(probe.state, RevocationState::Unknown, "{what}: the unlisted serial must not read good: {probe:#?}");
        assert!(why(&probe).contains(expected), "{what}: expected `{expected}` in {probe:#?}");
        assert_eq!(gone.state, RevocationState::Unknown, "{what}: an unusable CRL revokes nothing either: {gone:#?}");
    }
}

#[test]
fn a_crl_issued_in_the_future_is_refused_by_check_and_by_the_crl_command() {
    let (_d, ca, files, listed) = crl_case_ca();
    let mut f = crl_fields(&ca, &listed, &[]);
    f[3] = utc_time(now() + 3 * 3600);
    publish_fields(&ca, &f);
    let (probe, _) = check_probe(&files);
    assert_eq!(probe.state, RevocationState::Unknown, "{probe:#?}");
    assert!(why(&probe).contains("in the future"), "{probe:#?}");

    let crl = ca.dir.join("www/ca.crl");
    let out =
        cli(&["crl", &crl.to_string_lossy(), "--issuer", &ca.dir.join("ca.crt").to_string_lossy(), "--cert", &files[0].to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("NOT usable: CRL thisUpdate") && text.contains("in the future"), "{text}");
    assert!(!text.contains(": good"), "{text}");
    // Judged at a time after its thisUpdate (--at), the same file is usable and answers.
    let later = (now() + 4 * 3600).to_string();
    let out = cli(&[
        "crl",
        &crl.to_string_lossy(),
        "--issuer",
        &ca.dir.join("ca.crt").to_string_lossy(),
        "--cert",
        &files[0].to_string_lossy(),
        "--at",
        &later,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("probe.example.test (serial") && text.contains("good (not listed)"), "{text}");
}

fn cli(args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_certvigil"))
        .args(args)
        .env_remove("CERTVIGIL_CONFIG")
        .env_remove("CERTVIGIL_NOW")
        .env("CERTVIGIL_STORE", dir.path().join("cv.db"))
        .current_dir(dir.path())
        .output()
        .unwrap()
}

#[test]
fn crl_issuer_names_match_as_rfc_5280_compares_them() {
    // The CA's subject is CN=certvigil Test CA as a UTF8String; this CRL spells it as a
    // PrintableString in another case with extra inner and trailing spaces (§7.1, RFC 4518).
    let (_d, ca, files, listed) = crl_case_ca();
    let mut f = crl_fields(&ca, &listed, &[]);
    f[2] = der(0x30, &[&der(0x31, &[&der(0x30, &[&OID_CN, &der(0x13, &[b"CERTVIGIL  test CA "])])])]);
    publish_fields(&ca, &f);
    let (probe, gone) = check_probe(&files);
    assert_state(&probe, RevocationState::Good, "crl");
    assert_state(&gone, RevocationState::Revoked, "crl");
    // Another name is another issuer.
    f[2] = der(0x30, &[&der(0x31, &[&der(0x30, &[&OID_CN, &der(0x13, &[b"certvigil Test CA 2"])])])]);
    publish_fields(&ca, &f);
    let (probe, _) = check_probe(&files);
    assert_eq!(probe.state, RevocationState::Unknown, "{probe:#?}");
    assert!(why(&probe).contains("another issuer"), "{probe:#?}");
}

/// Publishes a CRL made by `openssl ca -gencrl` with an issuingDistributionPoint given as
/// openssl configuration (`value`, e.g. `critical, @idp` with `section`).
fn publish_with_idp(ca: &TestCa, value: &str, section: &str) {
    let cnf = std::fs::read_to_string(ca.dir.join("ca.cnf")).unwrap();
    let cnf = format!("{cnf}\n[ idp_ext ]\nauthorityKeyIdentifier = keyid\nissuingDistributionPoint = {value}\n{section}\n");
    std::fs::write(ca.dir.join("idp.cnf"), cnf).unwrap();
    pki::openssl(&ca.dir, &["ca", "-config", "idp.cnf", "-gencrl", "-crlexts", "idp_ext", "-out", "crl.pem"]);
    pki::openssl(&ca.dir, &["crl", "-in", "crl.pem", "-outform", "DER", "-out", "www/ca.crl"]);
}

#[test]
fn issuing_distribution_points_scope_the_crl() {
    let (_d, ca) = ca(KeyKind::EcP256);
    let files = [
        ca.issue("leaf", "crl_only_ext"),
        ca.issue("gone", "crl_only_ext"),
        ca.issue("subca", "subca_ext"),
        ca.issue("indirect", "crlissuer_ext"),
        ca.dir.join("ca.crt"),
    ];
    ca.revoke("gone", "keyCompromise");
    let url = ca.server.url("ca.crl");
    let run = |value: &str, section: &str| {
        publish_with_idp(&ca, value, section);
        let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: crl, fallback: false}");
        let res = e.check();
        (e.status_of(&res, "leaf"), e.status_of(&res, "gone"), e.status_of(&res, "subca"), e.status_of(&res, "indirect"))
    };
    let detail = why;

    // The distribution point's own name, every certificate: in scope.
    let (leaf, gone, subca, indirect) = run("critical, @idp", &format!("[ idp ]\nfullname = URI:{url}\n"));
    assert_state(&leaf, RevocationState::Good, "crl");
    assert_state(&gone, RevocationState::Revoked, "crl");
    assert_state(&subca, RevocationState::Good, "crl");
    // §4.2.1.13 cRLIssuer: the CRL at that point is indirect, which is said, not guessed.
    assert_eq!(indirect.state, RevocationState::Unknown, "{indirect:#?}");
    assert!(detail(&indirect).contains("cRLIssuer"), "{indirect:#?}");

    // Another distribution point's name: this CRL is a partition that does not cover them.
    let (leaf, gone, _, _) = run("critical, @idp", "[ idp ]\nfullname = URI:http://127.0.0.1:9/other.crl\n");
    assert_eq!(leaf.state, RevocationState::Unknown, "{leaf:#?}");
    assert!(detail(&leaf).contains("not the certificate's distribution point"), "{leaf:#?}");
    assert_eq!(gone.state, RevocationState::Unknown, "{gone:#?}");

    // onlyContainsCACerts: answers for the sub-CA, not for a leaf (§6.3.3 (b)(2)(ii)).
    let (leaf, _, subca, _) = run("critical, @idp", &format!("[ idp ]\nfullname = URI:{url}\nonlyCA = TRUE\n"));
    assert_eq!(leaf.state, RevocationState::Unknown, "{leaf:#?}");
    assert!(detail(&leaf).contains("onlyContainsCACerts"), "{leaf:#?}");
    assert_state(&subca, RevocationState::Good, "crl");
    // `certvigil crl --cert` decides the same way.
    let (crl, ca_crt) = (ca.dir.join("www/ca.crl").to_string_lossy().into_owned(), ca.dir.join("ca.crt").to_string_lossy().into_owned());
    let out = cli(&["crl", &crl, "--issuer", &ca_crt, "--cert", &files[0].to_string_lossy()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("leaf.example.test (serial") && text.contains("unknown: CRL does not cover this certificate"), "{text}");
    let out = cli(&["crl", &crl, "--issuer", &ca_crt, "--cert", &files[2].to_string_lossy()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("subca.example.test (serial") && text.contains("good (not listed)"), "{text}");

    // onlyContainsUserCerts: answers for leaves, not for the sub-CA (§6.3.3 (b)(2)(i)).
    let (leaf, gone, subca, _) = run("critical, @idp", &format!("[ idp ]\nfullname = URI:{url}\nonlyuser = TRUE\n"));
    assert_state(&leaf, RevocationState::Good, "crl");
    assert_state(&gone, RevocationState::Revoked, "crl");
    assert_eq!(subca.state, RevocationState::Unknown, "{subca:#?}");
    assert!(detail(&subca).contains("onlyContainsUserCerts"), "{subca:#?}");

    // onlySomeReasons: a listed serial is revoked; an unlisted one is not known to be good.
    let (leaf, gone, _, _) =
        run("critical, @idp", &format!("[ idp ]\nfullname = URI:{url}\nonlysomereasons = keyCompromise, CACompromise\n"));
    assert_state(&gone, RevocationState::Revoked, "crl");
    assert_eq!(leaf.state, RevocationState::Unknown, "{leaf:#?}");
    assert!(detail(&leaf).contains("only some revocation reasons (keyCompromise, cACompromise)"), "{leaf:#?}");

    // An indirect CRL is refused as unsupported.
    let (leaf, _, _, _) = run("critical, @idp", &format!("[ idp ]\nfullname = URI:{url}\nindirectCRL = TRUE\n"));
    assert_eq!(leaf.state, RevocationState::Unknown, "{leaf:#?}");
    assert!(detail(&leaf).contains("indirect CRL"), "{leaf:#?}");

    // Malformed IDPs (§5.2.5) make the CRL unusable: empty SEQUENCE, two onlyContains… TRUE,
    // trailing bytes after the SEQUENCE.
    for (der_value, expected) in [
        ("critical,DER:30:00", "empty SEQUENCE"),
        ("critical,DER:30:06:81:01:ff:82:01:ff", "more than one onlyContains"),
        ("critical,DER:30:03:81:01:ff:00", "trailing data"),
    ] {
        let (leaf, gone, subca, _) = run(der_value, "");
        for s in [&leaf, &gone, &subca] {
            assert_eq!(s.state, RevocationState::Unknown, "{der_value}: {s:#?}");
            assert!(detail(s).contains(expected), "{der_value}: expected `{expected}` in {s:#?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Weak issuer keys (RSA 1024): named as such, for SHA-1 and SHA-256, by `check`, `crl` and
// `ocsp`; `revocation.min_issuer_rsa_bits: 1024` accepts them.
// ---------------------------------------------------------------------------------------------

#[test]
fn rsa_1024_issuers_are_named_too_weak_not_forged() {
    for md in ["sha256", "sha1"] {
        let (_d, ca) = ca(KeyKind::Rsa1024);
        ca.use_digest(md);
        let files = [ca.issue("probe", "leaf_ext"), ca.issue("gone", "leaf_ext"), ca.dir.join("ca.crt")];
        ca.revoke("gone", "superseded");
        ca.publish_crl();
        ca.server.set_ocsp(OcspMode::ByCa);
        for prefer in ["crl", "ocsp"] {
            let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), &format!("{{prefer: {prefer}, fallback: false}}"));
            let res = e.check();
            for name in ["probe", "gone"] {
                let s = e.status_of(&res, name);
                assert_eq!(s.state, RevocationState::Unknown, "{md}/{prefer}/{name}: {s:#?}");
                let d = why(&s);
                assert!(d.contains("issuer key too weak (RSA 1024 < 2048)") && !d.contains("does not verify"), "{md}/{prefer}: {s:#?}");
            }
            let e = env(
                &files.iter().map(|p| p.as_path()).collect::<Vec<_>>(),
                &format!("{{prefer: {prefer}, fallback: false, min_issuer_rsa_bits: 1024}}"),
            );
            let res = e.check();
            assert_state(&e.status_of(&res, "probe"), RevocationState::Good, prefer);
            assert_state(&e.status_of(&res, "gone"), RevocationState::Revoked, prefer);
        }
        // The file commands say the same.
        let crl = ca.dir.join("www/ca.crl");
        let out = cli(&["crl", &crl.to_string_lossy(), "--issuer", &ca.dir.join("ca.crt").to_string_lossy()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.contains("NOT verified: CRL signature: issuer key too weak (RSA 1024 < 2048)"), "{md}: {text}");
    }
}

#[test]
fn an_rsa_1024_delegated_responder_is_named_too_weak() {
    // A P-256 CA whose delegated responder has an RSA-1024 key: the CA's signatures verify, the
    // responder's does not pass the floor (`check` and `certvigil ocsp` alike).
    let (_d, ca) = ca(KeyKind::EcP256);
    let files = [ca.issue("probe", "ocsp_only_ext"), ca.dir.join("ca.crt")];
    pki::openssl(
        &ca.dir,
        &["req", "-newkey", "rsa:1024", "-nodes", "-subj", "/CN=weak responder", "-keyout", "ocsp.key", "-out", "ocsp.csr"],
    );
    pki::openssl(&ca.dir, &["ca", "-batch", "-config", "ca.cnf", "-extensions", "ocsp_ext", "-in", "ocsp.csr", "-out", "ocsp.crt"]);
    pki::openssl(&ca.dir, &["x509", "-in", "ocsp.crt", "-out", "ocsp.crt"]);
    ca.server.set_ocsp(OcspMode::Delegated);
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: ocsp, fallback: false}");
    let s = e.status_of(&e.check(), "probe");
    assert_eq!(s.state, RevocationState::Unknown, "{s:#?}");
    assert!(
        why(&s).contains("response signature: issuer key too weak (RSA 1024 < 2048)") && !why(&s).contains("does not verify"),
        "{s:#?}"
    );
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: ocsp, fallback: false, min_issuer_rsa_bits: 1024}");
    assert_state(&e.status_of(&e.check(), "probe"), RevocationState::Good, "ocsp");

    let resp = ca.record_ocsp("probe");
    let (issuer, cert) = (ca.dir.join("ca.crt"), files[0].to_string_lossy().into_owned());
    let out = cli(&["ocsp", &resp.to_string_lossy(), "--issuer", &issuer.to_string_lossy(), "--cert", &cert]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("NOT verified: response signature: issuer key too weak (RSA 1024 < 2048)"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// OCSP responses as files (`certvigil ocsp`) and times with fractional seconds.
// ---------------------------------------------------------------------------------------------

const OCSP_BASIC: [u8; 11] = [0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01];

/// An OCSP response signed by the CA (responder byName) for the CertID openssl asks with,
/// its times carrying the fractional seconds given (as live responders send them).
fn hand_built_ocsp(ca: &TestCa, name: &str, status: &[u8], produced: Vec<u8>, this: Vec<u8>, next: Vec<u8>) -> Vec<u8> {
    let single = der(0x30, &[&ca.openssl_cert_id(name), status, &this, &der(0xa0, &[&next])]);
    let data = der(0x30, &[&der(0xa1, &[&ca.subject_der()]), &produced, &der(0x30, &[&single])]);
    let basic = ca.sign(&data);
    der(0x30, &[&der(0x0a, &[&[0]]), &der(0xa0, &[&der(0x30, &[&OCSP_BASIC, &der(0x04, &[&basic])])])])
}

#[test]
fn ocsp_times_with_fractional_seconds_are_read_by_check_and_by_the_ocsp_command() {
    let (_d, ca) = ca(KeyKind::EcP256);
    let files = [ca.issue("probe", "ocsp_only_ext"), ca.issue("gone", "ocsp_only_ext"), ca.dir.join("ca.crt")];
    let t = now();
    let good = hand_built_ocsp(
        &ca,
        "probe",
        &[0x80, 0x00],
        generalized_time(t - 60, Some("123456")),
        generalized_time(t - 60, Some("5")),
        generalized_time(t + 3600, Some("25")),
    );
    std::fs::write(ca.dir.join("www/ocsp.der"), &good).unwrap();
    ca.server.set_ocsp(OcspMode::Recorded);
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: ocsp, fallback: false}");
    let res = e.check();
    let probe = e.status_of(&res, "probe");
    assert_state(&probe, RevocationState::Good, "ocsp");
    assert_eq!(probe.next_update, Some(t + 3600), "the fraction is truncated, the second kept");
    // The same response does not answer for another certificate.
    assert_eq!(e.status_of(&res, "gone").state, RevocationState::Unknown);

    let resp = ca.dir.join("www/ocsp.der");
    let (resp_s, issuer_s) = (resp.to_string_lossy().into_owned(), ca.dir.join("ca.crt").to_string_lossy().into_owned());
    let (probe_s, gone_s) = (files[0].to_string_lossy().into_owned(), files[1].to_string_lossy().into_owned());
    // `certvigil ocsp www/ocsp.der --issuer ca.crt ARGS…`: its exit code and output.
    let ocsp = |args: &[&str]| {
        let out = cli(&[&["ocsp", resp_s.as_str(), "--issuer", issuer_s.as_str()][..], args].concat());
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, text) = ocsp(&["--cert", &probe_s]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("verified: producedAt") && text.contains("probe.example.test (serial") && text.contains("): good"), "{text}");
    // By serial, for the other certificate: no answer in it.
    let (code, text) = ocsp(&["--serial", &ca.serial("gone")]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("NOT verified: response has no answer for this certificate"), "{text}");
    // A nonce the response does not echo.
    let (_, text) = ocsp(&["--cert", &probe_s, "--nonce", "0011223344556677"]);
    assert!(text.contains("did not echo the request nonce"), "{text}");
    // Judged after its nextUpdate (--at): expired.
    let (_, text) = ocsp(&["--cert", &probe_s, "--at", &(t + 2 * 86_400).to_string()]);
    assert!(text.contains("NOT verified: response expired"), "{text}");

    // Revoked, with fractional revocationTime.
    let revoked_status = der(0xa1, &[&generalized_time(t - 7200, Some("75")), &der(0xa0, &[&der(0x0a, &[&[1]])])]);
    let revoked = hand_built_ocsp(
        &ca,
        "gone",
        &revoked_status,
        generalized_time(t, Some("9")),
        generalized_time(t, None),
        generalized_time(t + 3600, None),
    );
    std::fs::write(&resp, &revoked).unwrap();
    let (_, text) = ocsp(&["--cert", &gone_s]);
    assert!(text.contains("revoked (keyCompromise) at"), "{text}");

    // DER forbids a trailing zero in the fraction (X.690 §11.7.3): malformed, never good.
    let bad = hand_built_ocsp(
        &ca,
        "probe",
        &[0x80, 0x00],
        generalized_time(t, Some("120")),
        generalized_time(t, None),
        generalized_time(t + 3600, None),
    );
    std::fs::write(&resp, &bad).unwrap();
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{prefer: ocsp, fallback: false}");
    let res = e.check();
    let probe = e.status_of(&res, "probe");
    assert_eq!(probe.state, RevocationState::Unknown, "{probe:#?}");
    assert!(why(&probe).contains("malformed"), "{probe:#?}");
}

#[test]
fn the_ocsp_command_reads_a_response_recorded_from_the_real_responder() {
    let (_d, ca) = ca(KeyKind::EcP256);
    let probe = ca.issue("probe", "leaf_ext");
    let gone = ca.issue("gone", "leaf_ext");
    ca.revoke("gone", "keyCompromise");
    for (name, expect) in [("probe", "): good"), ("gone", "): revoked (keyCompromise) at")] {
        let resp = ca.record_ocsp(name);
        let cert = if name == "probe" { &probe } else { &gone };
        let out = cli(&[
            "ocsp",
            &resp.to_string_lossy(),
            "--issuer",
            &ca.dir.join("ca.crt").to_string_lossy(),
            "--cert",
            &cert.to_string_lossy(),
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{text}");
        assert!(text.contains(expect), "{name}: {text}");
    }
}

// ---------------------------------------------------------------------------------------------
// Every validity time RFC 5280 can encode is inventoried.
// ---------------------------------------------------------------------------------------------

#[test]
fn certificates_from_1950_to_9999_are_inventoried_with_their_encoded_dates() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (name, nb, na) in
        [("sixties", (1960, 1, 1), (1969, 12, 31)), ("forever", (2026, 1, 1), (9999, 12, 31)), ("year-zero", (0, 1, 1), (2049, 12, 31))]
    {
        let mut params = rcgen::CertificateParams::new(vec![format!("{name}.example.test")]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, format!("{name}.example.test"));
        params.not_before = rcgen::date_time_ymd(nb.0, nb.1, nb.2);
        params.not_after = rcgen::date_time_ymd(na.0, na.1, na.2);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let path = dir.path().join(format!("{name}.pem"));
        std::fs::write(&path, cert.pem()).unwrap();
        paths.push(path);
    }
    let e = env(&paths.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{}");
    let rows = e.store.lock().unwrap().certificates_with_der(None).unwrap();
    let dates: std::collections::BTreeMap<String, (String, String)> = rows
        .iter()
        .map(|(c, _)| {
            (
                c.facts.common_name.clone().unwrap(),
                (certvigil::model::format_time(c.facts.not_before), certvigil::model::format_time(c.facts.not_after)),
            )
        })
        .collect();
    assert_eq!(dates["sixties.example.test"], ("1960-01-01T00:00:00Z".into(), "1969-12-31T00:00:00Z".into()), "{dates:?}");
    assert_eq!(dates["forever.example.test"].1, "9999-12-31T00:00:00Z", "{dates:?}");
    assert_eq!(dates["year-zero.example.test"].0, "0000-01-01T00:00:00Z", "{dates:?}");
}

// ---------------------------------------------------------------------------------------------
// Planning and dead hosts: `prefer: auto`, hosts down for the rest of a pass (and backing off
// across passes), per-host concurrency.
// ---------------------------------------------------------------------------------------------

/// Adds an extension section to the CA's configuration whose CRL and OCSP URLs are on `port`.
fn dead_profile(ca: &TestCa, section: &str, port: u16) {
    let cnf = std::fs::read_to_string(ca.dir.join("ca.cnf")).unwrap();
    let add = format!(
        "\n[ {section} ]\nbasicConstraints = CA:FALSE\nkeyUsage = digitalSignature\nauthorityKeyIdentifier = keyid\n\
         authorityInfoAccess = OCSP;URI:http://127.0.0.1:{port}/ocsp\ncrlDistributionPoints = URI:http://127.0.0.1:{port}/ca.crl\n"
    );
    std::fs::write(ca.dir.join("ca.cnf"), cnf + &add).unwrap();
}

#[test]
fn a_responder_that_never_answers_costs_two_attempts_per_pass_not_one_per_certificate() {
    let (_d, ca) = ca(KeyKind::EcP256);
    // A listener on 127.0.0.1 that accepts connections, counts them and never answers.
    let silent = HttpServer::hanging();
    dead_profile(&ca, "silent_ext", silent.port);
    let mut files: Vec<std::path::PathBuf> = (0..20).map(|i| ca.issue(&format!("s{i}"), "silent_ext")).collect();
    files.push(ca.dir.join("ca.crt"));
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{timeout: 1s}");
    let res = e.check();
    let attempts = silent.accepted();
    assert_eq!(attempts, 2, "CRL and OCSP share the host: two attempts in all, not 40");
    let mut down = 0;
    for i in 0..20 {
        let s = e.status_of(&res, &format!("s{i}"));
        assert_eq!(s.state, RevocationState::Unknown, "{s:#?}");
        let w = why(&s);
        assert!(w.contains("timed out") || w.contains("responder host down"), "{s:#?}");
        down += usize::from(w.contains("responder host down: 127.0.0.1"));
    }
    assert!(down >= 18, "all but the certificates whose requests timed out see the host down at once ({down})");

    // The next pass, at once: the host is still backing off and is not asked.
    let res = e.check();
    assert_eq!(silent.accepted(), 2, "no attempt while backing off");
    let s = e.status_of(&res, "s0");
    assert!(why(&s).contains("down in an earlier pass, asked again after"), "{s:#?}");
    // After the backoff (60 s for a first failure) it is asked again, at most twice.
    e.check_at(now() + 120);
    assert_eq!(silent.accepted(), 4);
}

#[test]
fn a_refused_responder_is_down_for_the_rest_of_the_pass() {
    let (_d, ca) = ca(KeyKind::EcP256);
    dead_profile(&ca, "refused_ext", refused_port());
    let mut files: Vec<std::path::PathBuf> = (0..10).map(|i| ca.issue(&format!("r{i}"), "refused_ext")).collect();
    files.push(ca.dir.join("ca.crt"));
    for prefer in ["auto", "ocsp", "crl"] {
        let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), &format!("{{prefer: {prefer}}}"));
        let res = e.check();
        let mut down = 0;
        for i in 0..10 {
            let s = e.status_of(&res, &format!("r{i}"));
            assert_eq!(s.state, RevocationState::Unknown, "{prefer}: {s:#?}");
            let w = why(&s);
            assert!(w.contains("refused") || w.contains("responder host down"), "{prefer}: {s:#?}");
            down += usize::from(w.contains("responder host down: 127.0.0.1"));
        }
        assert!(down >= 8, "{prefer}: at most two requests met the refusal itself ({down} saw the host down)");
    }
}

#[test]
fn auto_asks_the_crl_where_there_is_one_and_ocsp_where_there_is_not() {
    let (_d, ca) = ca(KeyKind::EcP256);
    let files: Vec<std::path::PathBuf> = (0..6)
        .map(|i| ca.issue(&format!("both{i}"), "leaf_ext"))
        .chain([ca.issue("ocsponly", "ocsp_only_ext"), ca.dir.join("ca.crt")])
        .collect();
    let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{}");
    let res = e.check();
    for i in 0..6 {
        assert_state(&e.status_of(&res, &format!("both{i}")), RevocationState::Good, "crl");
    }
    assert_state(&e.status_of(&res, "ocsponly"), RevocationState::Good, "ocsp");
    assert_eq!(ca.server.hits("/ca.crl"), 1, "one CRL download answers for the six");
    assert_eq!(ca.server.ocsp_requests(), 1, "OCSP only for the certificate without a distribution point");
}

#[test]
fn per_host_concurrency_bounds_requests_in_flight() {
    for (config, limit) in [("{prefer: ocsp, per_host_concurrency: 2}", 2), ("{prefer: ocsp, hosts: {\"127.0.0.1\": {concurrency: 1}}}", 1)]
    {
        let (_d, ca) = ca(KeyKind::EcP256);
        let mut files: Vec<std::path::PathBuf> = (0..12).map(|i| ca.issue(&format!("o{i}"), "ocsp_only_ext")).collect();
        files.push(ca.dir.join("ca.crt"));
        let e = env(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), config);
        let res = e.check();
        for i in 0..12 {
            assert_state(&e.status_of(&res, &format!("o{i}")), RevocationState::Good, "ocsp");
        }
        assert_eq!(ca.server.ocsp_requests(), 12);
        // Once the host has answered, the queued requests go `limit` at a time, no more.
        assert_eq!(ca.server.max_in_flight(), limit, "{config}");
    }
}

#[test]
fn a_pass_holds_one_batch_at_a_time_and_saves_every_batch() {
    // 600 self-signed certificates: more than one batch, answered without any network.
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let paths: Vec<std::path::PathBuf> = (0..600)
        .map(|i| {
            let mut params = rcgen::CertificateParams::new(vec![format!("b{i}.example.test")]).unwrap();
            params.distinguished_name.push(rcgen::DnType::CommonName, format!("b{i}.example.test"));
            let path = dir.path().join(format!("b{i}.pem"));
            std::fs::write(&path, params.self_signed(&key).unwrap().pem()).unwrap();
            path
        })
        .collect();
    let e = env(&paths.iter().map(|p| p.as_path()).collect::<Vec<_>>(), "{}");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut batches = Vec::new();
    let checked = rt
        .block_on(e.checker.check_each(Arc::clone(&e.store), None, now(), |batch| {
            assert!(batch.iter().all(|(_, s)| s.state == RevocationState::NotApplicable), "{batch:#?}");
            batches.push(batch.len());
        }))
        .unwrap();
    assert_eq!(checked, 600);
    assert_eq!(batches, [certvigil::revocation::BATCH, 600 - certvigil::revocation::BATCH]);
    let saved: i64 = e.store.lock().unwrap().conn().unwrap().query_row("SELECT count(*) FROM revocation_status", [], |r| r.get(0)).unwrap();
    assert_eq!(saved, 600);
}
