//! Every container format certvigil reads, built by the real tools from certificates generated
//! at test time, parses to exactly the facts that were generated; broken inputs give clear
//! errors that name the broken part, and never a panic.

use crate::common;

use certvigil::x509::{Format, Found, Parsed, parse_object};
use common::*;
use std::time::{Duration, Instant};

/// Asserts that `found` carries every fact of `want`.
#[track_caller]
fn assert_facts(found: &Found, want: &TestCert) {
    let f = &found.facts;
    let who = want.name;
    assert_eq!(found.der, want.der, "{who}: DER round trip");
    assert_eq!(f.fingerprint.0, want.fingerprint, "{who}: fingerprint is SHA-256 of the DER");
    assert_eq!(f.common_name.as_deref(), Some(want.cn.as_str()), "{who}: CN");
    assert_eq!(f.subject, want.subject, "{who}: subject");
    assert_eq!(f.issuer, want.issuer, "{who}: issuer");
    assert_eq!(f.serial, want.serial, "{who}: serial");
    assert_eq!(f.not_before, want.not_before, "{who}: notBefore");
    assert_eq!(f.not_after, want.not_after, "{who}: notAfter");
    assert_eq!(f.spki_sha256, want.spki_sha256, "{who}: SPKI SHA-256");
    assert_eq!(f.key.algorithm, want.key_algorithm, "{who}: key algorithm");
    assert_eq!(f.key.bits, want.key_bits, "{who}: key bits");
    assert_eq!(f.key.curve.as_deref(), want.key_curve, "{who}: curve");
    assert_eq!(f.signature_algorithm, want.signature_algorithm, "{who}: signature algorithm");
    assert_eq!(f.is_ca, want.is_ca, "{who}: CA flag");
    assert_eq!(f.path_len, want.path_len, "{who}: path length");
    assert_eq!(f.key_usage, want.key_usage, "{who}: key usage");
    assert_eq!(f.ext_key_usage, want.ext_key_usage, "{who}: extended key usage");
    assert_eq!(f.sans, want.sans, "{who}: subject alternative names");
    assert_eq!(f.ocsp_urls, want.ocsp_urls, "{who}: OCSP");
    assert_eq!(f.ca_issuers_urls, want.ca_issuers_urls, "{who}: caIssuers");
    assert_eq!(f.crl_urls, want.crl_urls, "{who}: CRL distribution points");
    assert_eq!(f.aki, want.aki, "{who}: authority key identifier");
    assert_eq!(f.ski, want.ski, "{who}: subject key identifier");
    assert_eq!(f.self_issued, want.self_issued, "{who}: self-issued");
    assert!(f.warnings.is_empty(), "{who}: unexpected warnings {:?}", f.warnings);
}

#[track_caller]
fn no_errors(p: &Parsed) {
    assert!(p.errors.is_empty(), "unexpected errors: {:?}", p.errors);
}

fn details(p: &Parsed) -> Vec<&str> {
    p.certs.iter().map(|c| c.detail.as_str()).collect()
}

fn error_text(p: &Parsed) -> Vec<String> {
    p.errors.iter().map(ToString::to_string).collect()
}

// ---------------------------------------------------------------------------------------------
// Single certificates

#[test]
fn every_generated_certificate_parses_from_der_to_its_exact_facts() {
    for want in fixtures().all() {
        let p = parse_object(&want.der, &[]);
        no_errors(&p);
        assert_eq!(p.format, Some(Format::Der), "{}", want.name);
        assert_eq!(p.certs.len(), 1, "{}", want.name);
        assert_eq!(p.certs[0].detail, "certificate");
        assert_facts(&p.certs[0], want);
    }
}

#[test]
fn every_generated_certificate_parses_from_pem_to_its_exact_facts() {
    for want in fixtures().all() {
        let p = parse_object(want.pem.as_bytes(), &[]);
        no_errors(&p);
        assert_eq!(p.format, Some(Format::Pem), "{}", want.name);
        assert_eq!(details(&p), ["block 1"], "{}", want.name);
        assert_facts(&p.certs[0], want);
    }
}

/// The literal facts, spelled out once, so that a wrong fixture helper cannot hide a parser bug.
#[test]
fn literal_facts_of_the_valid_leaf() {
    let f = fixtures();
    let p = parse_object(&f.valid.cert.der, &[]);
    let c = &p.certs[0].facts;
    assert_eq!(c.common_name.as_deref(), Some("valid.example.test"));
    assert_eq!(c.subject, "CN=valid.example.test,O=certvigil tests");
    assert_eq!(c.issuer, "CN=certvigil Test Root CA,O=certvigil tests");
    assert_eq!(c.serial, "1001");
    // 2026-05-02T00:00:17Z and 2027-05-31T23:59:59Z.
    assert_eq!(c.not_before, 1_777_680_017);
    assert_eq!(c.not_after, 1_811_807_999);
    assert_eq!(c.key.to_string(), "EC P-256");
    assert_eq!(c.signature_algorithm, "ecdsa-with-SHA384");
    assert!(!c.is_ca);
    assert_eq!(c.path_len, None);
    assert_eq!(c.key_usage, ["digitalSignature", "keyEncipherment"]);
    assert_eq!(c.ext_key_usage, ["serverAuth", "clientAuth"]);
    assert_eq!(
        c.sans,
        [
            "DNS:valid.example.test",
            "DNS:*.valid.example.test",
            "IP:192.0.2.10",
            "IP:2001:db8::10",
            "email:ops@example.test",
            "URI:https://valid.example.test/id"
        ]
    );
    assert_eq!(c.ocsp_urls, ["http://ocsp.example.test/root"]);
    assert_eq!(c.ca_issuers_urls, ["http://pki.example.test/root.cer", "ldap://ldap.example.test/cn=root"]);
    assert_eq!(c.crl_urls, ["http://crl.example.test/root.crl", "http://crl2.example.test/root.crl", "ldap://ldap.example.test/cn=crl"]);
    assert_eq!(c.aki.as_ref().map(String::len), Some(40), "20-byte key identifier as hex");
    assert_eq!(c.aki, p.certs[0].facts.aki);
    assert!(!c.self_issued);
    assert_eq!(c.display_name(), "valid.example.test");
    assert!(!c.is_code_signing() && !c.is_time_stamping());
}

#[test]
fn ca_flags_path_length_and_key_identifiers_chain_up() {
    let f = fixtures();
    let root = &parse_object(&f.root.cert.der, &[]).certs[0].facts;
    let inter = &parse_object(&f.inter.cert.der, &[]).certs[0].facts;
    let leaf = &parse_object(&f.codesign.cert.der, &[]).certs[0].facts;
    assert!(root.is_ca && root.self_issued);
    assert_eq!(root.path_len, Some(1));
    assert_eq!(root.key_usage, ["digitalSignature", "keyCertSign", "cRLSign"]);
    assert_eq!(root.aki, None, "rcgen writes no AKI on a self-signed root");
    assert!(inter.is_ca && !inter.self_issued);
    assert_eq!(inter.path_len, Some(0));
    assert_eq!(inter.key_usage, ["keyCertSign", "cRLSign"]);
    assert_eq!(inter.aki, root.ski, "intermediate's AKI is the root's SKI");
    assert_eq!(leaf.aki, inter.ski, "leaf's AKI is the intermediate's SKI");
    assert_ne!(root.ski, inter.ski);
    assert_eq!(inter.crl_urls, ["http://crl.example.test/root.crl"]);
    assert_eq!(inter.ca_issuers_urls, ["http://pki.example.test/root.cer"]);
    assert!(inter.ocsp_urls.is_empty());
}

#[test]
fn key_types_and_signature_algorithms() {
    let f = fixtures();
    let facts = |c: &TestCert| parse_object(&c.der, &[]).certs.remove(0).facts;
    let p256 = facts(&f.valid.cert);
    assert_eq!((p256.key.algorithm.as_str(), p256.key.bits, p256.key.curve.as_deref()), ("EC", Some(256), Some("P-256")));
    let p384 = facts(&f.codesign.cert);
    assert_eq!((p384.key.algorithm.as_str(), p384.key.bits, p384.key.curve.as_deref()), ("EC", Some(384), Some("P-384")));
    assert_eq!(p384.signature_algorithm, "ecdsa-with-SHA256", "signed by the P-256 intermediate");
    let ed = facts(&f.timestamp.cert);
    assert_eq!((ed.key.algorithm.as_str(), ed.key.curve.as_deref()), ("Ed25519", None));
    assert_eq!(ed.signature_algorithm, "Ed25519");
    assert_eq!(ed.key.to_string(), "Ed25519");
    let rsa = facts(&f.rsa.cert);
    assert_eq!((rsa.key.algorithm.as_str(), rsa.key.bits, rsa.key.curve.as_deref()), ("RSA", Some(2048), None));
    assert_eq!(rsa.signature_algorithm, "sha256WithRSAEncryption");
    assert_eq!(rsa.key.to_string(), "RSA-2048");
    let root = facts(&f.root.cert);
    assert_eq!(root.signature_algorithm, "ecdsa-with-SHA384");
}

/// The SPKI hash must match what openssl computes from the certificate: a parser that hashed the
/// wrong bytes would still agree with itself.
#[test]
fn spki_hash_matches_openssl() {
    let f = fixtures();
    for c in [&f.rsa.cert, &f.valid.cert, &f.timestamp.cert] {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("c.pem"), &c.pem).expect("write");
        let pubkey = tool("openssl", &["x509", "-in", "c.pem", "-noout", "-pubkey"], dir.path());
        std::fs::write(dir.path().join("pub.pem"), pubkey).expect("write");
        let spki = tool("openssl", &["pkey", "-pubin", "-in", "pub.pem", "-outform", "DER"], dir.path());
        let facts = &parse_object(&c.der, &[]).certs[0].facts;
        assert_eq!(facts.spki_sha256, sha256_hex(&spki), "{}", c.name);
    }
}

#[test]
fn code_signing_and_time_stamping_ekus() {
    let f = fixtures();
    let cs = &parse_object(&f.codesign.cert.der, &[]).certs[0].facts;
    assert_eq!(cs.ext_key_usage, ["codeSigning"]);
    assert!(cs.is_code_signing() && !cs.is_time_stamping());
    let ts = &parse_object(&f.timestamp.cert.der, &[]).certs[0].facts;
    assert_eq!(ts.ext_key_usage, ["timeStamping"]);
    assert_eq!(ts.key_usage, ["digitalSignature", "nonRepudiation"]);
    assert!(ts.is_time_stamping() && !ts.is_code_signing());
    assert_eq!(certvigil::x509::cert::normalise_eku("codesigning"), "codeSigning");
}

#[test]
fn serial_with_high_bit_keeps_its_sign_octet() {
    let p = parse_object(&fixtures().expired.cert.der, &[]);
    assert_eq!(p.certs[0].facts.serial, "008FAB");
}

#[test]
fn validity_is_exact_to_the_second_for_utc_and_generalized_time() {
    let f = fixtures();
    let root = &parse_object(&f.root.cert.der, &[]).certs[0].facts;
    // notAfter 2056: GeneralizedTime.
    assert_eq!(root.not_after, NOW + 30 * 365 * DAY);
    assert!(certvigil::model::format_time(root.not_after).starts_with("2056-"));
    let expired = &parse_object(&f.expired.cert.der, &[]).certs[0].facts;
    assert_eq!(expired.not_after, NOW - 10 * DAY - 5);
    let expiring = &parse_object(&f.expiring.cert.der, &[]).certs[0].facts;
    assert_eq!(expiring.not_after, NOW + 10 * DAY + 3600);
    let future = &parse_object(&f.not_yet_valid.cert.der, &[]).certs[0].facts;
    assert_eq!(future.not_before, NOW + 10 * DAY);
    use certvigil::model::ExpiryStatus as S;
    let status = |c: &TestCert| S::at(c.not_before, c.not_after, NOW, 30 * DAY);
    assert_eq!(status(&f.expired.cert), S::Expired);
    assert_eq!(status(&f.expiring.cert), S::Expiring);
    assert_eq!(status(&f.not_yet_valid.cert), S::NotYetValid);
    assert_eq!(status(&f.valid.cert), S::Valid);
}

// ---------------------------------------------------------------------------------------------
// PEM bundles

#[test]
fn pem_bundle_with_junk_between_blocks() {
    let f = fixtures();
    let certs = [&f.valid.cert, &f.inter.cert, &f.root.cert];
    let text = pem_bundle_with_junk(&certs);
    let p = parse_object(text.as_bytes(), &[]);
    no_errors(&p);
    assert_eq!(p.format, Some(Format::Pem));
    assert_eq!(details(&p), ["block 1", "block 2", "block 3"]);
    for (found, want) in p.certs.iter().zip(certs) {
        assert_facts(found, want);
    }
    // Windows line endings and indentation do not change anything.
    let crlf = text.replace('\n', "\r\n");
    let p = parse_object(crlf.as_bytes(), &[]);
    no_errors(&p);
    assert_eq!(p.certs.len(), 3);
    assert_eq!(p.certs[2].facts.fingerprint.0, f.root.cert.fingerprint);
}

#[test]
fn mixed_bundle_counts_certificates_keys_and_other_content() {
    let f = fixtures();
    let text = format!(
        "junk before\n{}{}\nmore junk\n{}{}{}-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n",
        f.valid.cert.pem,
        f.valid.cert.key_pem,
        csr_pem(),
        f.inter.cert.pem,
        f.root.cert.pem
    );
    let p = parse_object(text.as_bytes(), &[]);
    no_errors(&p);
    assert_eq!(details(&p), ["block 1", "block 4", "block 5"]);
    assert_eq!(p.keys, ["block 2 (PRIVATE KEY)"]);
    assert_eq!(p.other, ["block 3 (CERTIFICATE REQUEST)", "block 6 (X509 CRL)"]);
    assert_facts(&p.certs[0], &f.valid.cert);
    assert_facts(&p.certs[1], &f.inter.cert);
    assert_facts(&p.certs[2], &f.root.cert);
}

#[test]
fn openssl_trusted_certificate_block() {
    let c = containers();
    let text = String::from_utf8(c.trusted_pem.clone()).expect("PEM text");
    assert!(text.contains("-----BEGIN TRUSTED CERTIFICATE-----"), "fixture is a trusted certificate:\n{text}");
    let p = parse_object(&c.trusted_pem, &[]);
    no_errors(&p);
    assert_eq!(details(&p), ["block 1"]);
    assert_facts(&p.certs[0], &fixtures().root.cert);
}

// ---------------------------------------------------------------------------------------------
// PKCS#7

#[test]
fn pkcs7_der_bundle() {
    let f = fixtures();
    let p = parse_object(&containers().pkcs7_der, &[]);
    no_errors(&p);
    assert_eq!(p.format, Some(Format::Pkcs7));
    assert_eq!(details(&p), ["cert 1", "cert 2"]);
    let mut by_fp: Vec<&Found> = p.certs.iter().collect();
    by_fp.sort_by_key(|c| c.facts.common_name.clone());
    // crl2pkcs7 keeps the order of -certfile arguments; compare by content anyway.
    let want = [&f.root.cert, &f.valid.cert];
    for (found, want) in by_fp.iter().zip(want) {
        assert_facts(found, want);
    }
}

#[test]
fn pkcs7_pem_bundle() {
    let f = fixtures();
    let c = containers();
    assert!(String::from_utf8_lossy(&c.pkcs7_pem).contains("-----BEGIN PKCS7-----"));
    let p = parse_object(&c.pkcs7_pem, &[]);
    no_errors(&p);
    assert_eq!(p.format, Some(Format::Pem));
    assert_eq!(details(&p), ["block 1 cert 1", "block 1 cert 2", "block 1 cert 3"]);
    let mut fps: Vec<&str> = p.certs.iter().map(|c| c.facts.fingerprint.0.as_str()).collect();
    fps.sort_unstable();
    let mut want = vec![f.codesign.cert.fingerprint.as_str(), f.inter.cert.fingerprint.as_str(), f.root.cert.fingerprint.as_str()];
    want.sort_unstable();
    assert_eq!(fps, want);
    let cs = p.certs.iter().find(|c| c.facts.fingerprint.0 == f.codesign.cert.fingerprint).expect("code signing cert");
    assert_facts(cs, &f.codesign.cert);
}

// ---------------------------------------------------------------------------------------------
// PKCS#12

#[track_caller]
fn assert_p12_holds(p: &Parsed, leaf: &TestCert, chain: &[&TestCert]) {
    no_errors(p);
    assert_eq!(p.format, Some(Format::Pkcs12));
    assert_eq!(p.certs.len(), 1 + chain.len(), "certificates: {:?}", details(p));
    let leaf_found = p.certs.iter().find(|c| c.facts.fingerprint.0 == leaf.fingerprint).expect("leaf in the PKCS#12");
    assert_facts(leaf_found, leaf);
    assert!(
        leaf_found.detail.starts_with("bag ") && leaf_found.detail.ends_with("\"web\""),
        "leaf detail names the friendly name: {}",
        leaf_found.detail
    );
    for c in chain {
        let found = p.certs.iter().find(|x| x.facts.fingerprint.0 == c.fingerprint).expect("chain cert in the PKCS#12");
        assert_facts(found, c);
    }
    assert_eq!(p.keys.len(), 1, "one key bag: {:?}", p.keys);
    assert!(p.keys[0].starts_with("bag ") && p.keys[0].ends_with("\"web\""), "{:?}", p.keys);
}

#[test]
fn pkcs12_without_password_encryption_or_mac() {
    let f = fixtures();
    let p = parse_object(&containers().p12_plain, &[]);
    assert_p12_holds(&p, &f.valid.cert, &[&f.root.cert]);
    assert_eq!(p.notes, ["PKCS#12 has no integrity MAC"]);
}

#[test]
fn pkcs12_modern_openssl3_default_needs_the_password_from_the_list() {
    let f = fixtures();
    let c = containers();
    let info = pkcs12_info(&c.p12_modern, P12_PASSWORD);
    assert!(
        info.contains("PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC") && info.contains("sha256"),
        "fixture is PBES2/AES-256 with a SHA-256 MAC:\n{info}"
    );

    let p = parse_object(&c.p12_modern, &["not it", P12_PASSWORD, "also not"]);
    assert_p12_holds(&p, &f.valid.cert, &[&f.root.cert]);
    assert!(p.notes.is_empty(), "{:?}", p.notes);

    for passwords in [&[][..], &["Xq9-not-it"][..], &["Xq9-not-it", "P12-S3CRET!"][..]] {
        let p = parse_object(&c.p12_modern, passwords);
        assert_eq!(p.format, Some(Format::Pkcs12));
        assert!(p.certs.is_empty() && p.keys.is_empty());
        let errors = error_text(&p);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("wrong password"), "{errors:?}");
        assert!(
            errors[0].contains(&format!("{} password(s) tried", passwords.len() + 1)),
            "the empty password is always tried too: {errors:?}"
        );
        assert!(passwords.iter().all(|pw| !errors[0].contains(pw)), "passwords never appear in errors: {errors:?}");
    }
}

#[test]
fn pkcs12_legacy_rc2_and_3des() {
    let f = fixtures();
    let c = containers();
    let info = pkcs12_info(&c.p12_legacy, P12_PASSWORD);
    if legacy_provider_available() {
        assert!(info.contains("RC2-40") || info.contains("40BitRC2"), "fixture uses RC2-40:\n{info}");
    }
    assert!(info.contains("3DES") || info.contains("3-KeyTripleDES"), "fixture uses 3DES:\n{info}");
    assert!(info.contains("sha1"), "fixture has a SHA-1 MAC:\n{info}");
    let p = parse_object(&c.p12_legacy, &[P12_PASSWORD]);
    assert_p12_holds(&p, &f.expiring.cert, &[&f.root.cert]);
    let wrong = parse_object(&c.p12_legacy, &["nope"]);
    assert!(error_text(&wrong).iter().any(|e| e.contains("wrong password")), "{:?}", wrong.errors);
}

#[test]
fn pkcs12_encrypted_without_mac_finds_the_password_by_decrypting() {
    let f = fixtures();
    let c = containers();
    let info = pkcs12_info(&c.p12_encrypted_no_mac, P12_PASSWORD);
    assert!(
        info.contains("MAC is absent") && info.contains("PKCS7 Encrypted data"),
        "fixture has encrypted certificates and no MAC:\n{info}"
    );
    let p = parse_object(&c.p12_encrypted_no_mac, &["first", P12_PASSWORD]);
    assert_p12_holds(&p, &f.codesign.cert, &[&f.inter.cert]);
    assert_eq!(p.notes, ["PKCS#12 has no integrity MAC"]);
    let wrong = parse_object(&c.p12_encrypted_no_mac, &["first"]);
    assert!(wrong.certs.is_empty());
    let errors = error_text(&wrong);
    assert!(errors.len() == 1 && errors[0].contains("cannot decrypt"), "{errors:?}");
}

#[test]
fn pkcs12_module_directly() {
    let c = containers();
    let contents = certvigil::x509::pkcs12::parse(&c.p12_modern, &[P12_PASSWORD]).expect("parses");
    assert!(contents.mac_verified);
    assert_eq!(contents.certs.len(), 2);
    let err = certvigil::x509::pkcs12::parse(&c.p12_modern, &[]).expect_err("no password");
    assert_eq!(err, certvigil::x509::pkcs12::P12Error::WrongPassword { tried: 1 });
    assert!(certvigil::x509::pkcs12::looks_like_pkcs12(&c.p12_legacy));
    assert!(!certvigil::x509::pkcs12::looks_like_pkcs12(&c.pkcs7_der));
}

/// A PKCS#12 of the valid certificate and its key, written by `openssl pkcs12 -export -iter N`
/// (OpenSSL 3: SHA-256 MAC with N iterations, and PBES2 with PBKDF2-HMAC-SHA256 and N
/// iterations for the bags unless `mac_only`, which leaves them in clear so that a huge N costs
/// openssl itself little).
fn p12_with_iterations(iterations: u32, mac_only: bool) -> Vec<u8> {
    let f = fixtures();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("leaf.pem"), &f.valid.cert.pem).expect("write");
    std::fs::write(dir.path().join("leaf.key"), &f.valid.cert.key_pem).expect("write");
    let (iter, pass) = (iterations.to_string(), format!("pass:{P12_PASSWORD}"));
    let mut args = vec!["pkcs12", "-export", "-in", "leaf.pem", "-inkey", "leaf.key", "-name", "web", "-out", "out.p12"];
    args.extend(["-iter", &iter, "-passout", &pass]);
    if mac_only {
        args.extend(["-certpbe", "NONE", "-keypbe", "NONE"]);
    }
    tool("openssl", &args, dir.path());
    std::fs::read(dir.path().join("out.p12")).expect("read p12")
}

const WRONG: [&str; 4] = ["wrong-1", "wrong-2", "wrong-3", "wrong-4"];

/// Issue 13's hostile file: 9,000,000 MAC iterations and four configured passwords took 3.7 s
/// per file. One derivation alone is over the per-file budget, so it is refused before any key
/// derivation runs, with the iteration count and the cap — the right password among the
/// configured ones changes nothing.
#[test]
fn pkcs12_iteration_count_over_the_budget_is_refused_before_any_work() {
    use certvigil::x509::pkcs12::{KDF_BUDGET, P12Error, parse};
    let p12 = p12_with_iterations(9_000_000, true);
    for passwords in [WRONG, ["wrong-1", "wrong-2", "wrong-3", P12_PASSWORD]] {
        let start = Instant::now();
        let err = parse(&p12, &passwords).expect_err("refused");
        let P12Error::TooCostly { iterations, spent, cap, ref kdf, .. } = err else { panic!("{err}") };
        assert_eq!((iterations, spent, cap), (9_000_000, 0, KDF_BUDGET), "{err}");
        assert_eq!(kdf, "PKCS#12 KDF, SHA-256");
        // No derivation ran (`spent` is 0 above). The bound only catches the 9,000,000
        // iterations running anyway (seconds in a release build, far longer in this debug
        // one) and is loose on purpose: a loaded machine can stall the test for seconds, and
        // timing belongs in benchmarks.
        assert!(start.elapsed() < Duration::from_secs(30), "{:?}", start.elapsed());

        let p = parse_object(&p12, &passwords);
        assert_eq!(p.format, Some(Format::Pkcs12));
        assert!(p.certs.is_empty() && p.keys.is_empty());
        let errors = error_text(&p);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("PKCS#12: key derivation over the per-file cap: MAC check with password 1 of 5")
                && errors[0].contains("iteration count 9000000")
                && errors[0].contains(&format!("cap {KDF_BUDGET} units")),
            "{errors:?}"
        );
    }
}

/// Every password tried spends from the same per-file budget: 2,000,000 MAC iterations against
/// four wrong passwords stops after two derivations (4M units of 5M), never running the
/// remaining three.
#[test]
fn pkcs12_passwords_tried_share_one_budget() {
    use certvigil::x509::pkcs12::{KDF_BUDGET, P12Error, parse};
    let p12 = p12_with_iterations(2_000_000, true);
    let err = parse(&p12, &WRONG).expect_err("refused");
    let P12Error::TooCostly { ref purpose, iterations, cost, spent, cap, .. } = err else { panic!("{err}") };
    assert_eq!(purpose, "MAC check with password 3 of 5", "{err}");
    assert_eq!((iterations, cost, spent, cap), (2_000_000, 2_000_000, 4_000_000, KDF_BUDGET), "{err}");
    assert!(spent <= cap);
    // The right password first: one derivation opens it.
    let c = parse(&p12, &[P12_PASSWORD, "wrong-1"]).expect("opens");
    assert!(c.mac_verified);
    assert_eq!(c.certs.len(), 1);
}

/// Files real writers make are not refused: 600,000 iterations (Bouncy Castle's default, the
/// OWASP figure) for the MAC and the PBES2-SHA256 certificate bag, opened by the fifth of five
/// configured passwords: 5 × 600,000 + 3 × 600,000 = 4.8M units.
#[test]
fn pkcs12_with_600000_iterations_still_reads() {
    let f = fixtures();
    let p12 = p12_with_iterations(600_000, false);
    let info = pkcs12_info(&p12, P12_PASSWORD);
    assert!(info.contains("Iteration 600000") && info.contains("PBES2, PBKDF2, AES-256-CBC"), "{info}");
    let mut passwords = WRONG.to_vec();
    passwords.push(P12_PASSWORD);
    let p = parse_object(&p12, &passwords);
    no_errors(&p);
    assert_eq!(p.certs.len(), 1);
    assert_facts(&p.certs[0], &f.valid.cert);
    assert_eq!(p.keys.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// JKS

#[test]
fn jks_truststore_with_and_without_integrity() {
    let f = fixtures();
    let c = containers();
    let verified = parse_object(&c.jks_trust, &["other", JKS_PASSWORD]);
    no_errors(&verified);
    assert_eq!(verified.format, Some(Format::Jks));
    assert!(verified.notes.is_empty(), "{:?}", verified.notes);
    let mut d = details(&verified);
    d.sort_unstable();
    assert_eq!(d, ["alias \"inter\"", "alias \"root\""]);
    for found in &verified.certs {
        let want = if found.detail == "alias \"root\"" { &f.root.cert } else { &f.inter.cert };
        assert_facts(found, want);
    }
    assert!(verified.keys.is_empty());

    // Certificates are stored in clear: read even when no password verifies the digest.
    let unverified = parse_object(&c.jks_trust, &["wrong"]);
    no_errors(&unverified);
    assert_eq!(unverified.certs.len(), 2);
    assert_eq!(unverified.notes, ["keystore integrity not verified: no configured password matches its digest"]);

    let ks = certvigil::x509::jks::parse(&c.jks_trust, &[JKS_PASSWORD]).expect("parses");
    assert!(ks.integrity_verified && !ks.jceks);
    let ks = certvigil::x509::jks::parse(&c.jks_trust, &[]).expect("parses");
    assert!(!ks.integrity_verified);
}

#[test]
fn jks_private_key_entry_with_chain() {
    let f = fixtures();
    let p = parse_object(&containers().jks_key, &[JKS_PASSWORD]);
    no_errors(&p);
    assert_eq!(p.format, Some(Format::Jks));
    assert_eq!(p.keys, ["alias \"web\""]);
    assert_eq!(details(&p), ["alias \"web\"", "alias \"web\" chain 2"]);
    assert_facts(&p.certs[0], &f.valid.cert);
    assert_facts(&p.certs[1], &f.root.cert);
    assert!(p.notes.is_empty(), "{:?}", p.notes);
}

#[test]
fn jks_generated_by_keytool_genkeypair() {
    let p = parse_object(&containers().jks_gen, &[JKS_PASSWORD]);
    no_errors(&p);
    assert_eq!(p.keys, ["alias \"tomcat\""]);
    assert_eq!(p.certs.len(), 1);
    let c = &p.certs[0].facts;
    assert_eq!(c.common_name.as_deref(), Some("tomcat.example.test"));
    assert_eq!(c.subject, "CN=tomcat.example.test");
    assert!(c.self_issued);
    assert_eq!(c.not_before, GENKEYPAIR_NOT_BEFORE);
    assert_eq!(c.not_after, GENKEYPAIR_NOT_AFTER);
    assert_eq!((c.key.algorithm.as_str(), c.key.curve.as_deref()), ("EC", Some("P-256")));
    assert_eq!(c.signature_algorithm, "ecdsa-with-SHA256");
    assert_eq!(c.fingerprint.0, sha256_hex(&p.certs[0].der));
}

// ---------------------------------------------------------------------------------------------
// Malformed input

#[test]
fn zero_length_file() {
    let p = parse_object(b"", &[]);
    assert_eq!(p.format, None);
    assert!(p.certs.is_empty());
    assert_eq!(error_text(&p), ["empty file"]);
}

#[test]
fn truncated_der() {
    let der = &fixtures().valid.cert.der;
    for cut in [1, 2, 10, der.len() / 2, der.len() - 1] {
        let p = parse_object(&der[..cut], &[]);
        assert!(p.certs.is_empty(), "cut at {cut}");
        let errors = error_text(&p);
        assert_eq!(errors.len(), 1, "cut at {cut}: {errors:?}");
        assert!(errors[0].contains("truncated") || errors[0].contains("not a"), "cut at {cut}: {errors:?}");
    }
    let p = parse_object(&der[..der.len() / 2], &[]);
    assert_eq!(p.format, Some(Format::Der));
    assert!(error_text(&p)[0].starts_with("not a DER certificate: malformed ASN.1 at byte 0: truncated"), "{:?}", p.errors);
}

#[test]
fn der_with_trailing_data() {
    let mut der = fixtures().valid.cert.der.clone();
    der.extend_from_slice(b"\x00\x01garbage");
    let p = parse_object(&der, &[]);
    assert!(p.certs.is_empty());
    assert_eq!(error_text(&p), ["DER certificate followed by 9 bytes of trailing data"]);
}

#[test]
fn der_that_is_not_a_certificate() {
    // A well-formed SEQUENCE that is no certificate.
    let p = parse_object(&[0x30, 0x03, 0x02, 0x01, 0x05], &[]);
    assert!(p.certs.is_empty());
    let errors = error_text(&p);
    assert!(errors.len() == 1 && errors[0].contains("not a valid X.509 certificate"), "{errors:?}");
}

#[test]
fn pem_with_bad_base64() {
    let pem = &fixtures().valid.cert.pem;
    let lines: Vec<&str> = pem.lines().collect();
    let broken = format!("{}\n{}\n!!!! not base64 ****\n{}\n", lines[0], lines[1], lines[2..].join("\n"));
    let p = parse_object(format!("comment\n{broken}").as_bytes(), &[]);
    assert!(p.certs.is_empty());
    assert_eq!(p.errors.len(), 1);
    assert_eq!(p.errors[0].detail.as_deref(), Some("block 1 (CERTIFICATE, line 2)"));
    assert!(p.errors[0].message.contains("invalid base64"), "{:?}", p.errors);
}

#[test]
fn pem_without_end_line() {
    let f = fixtures();
    let pem = &f.valid.cert.pem;
    let cut = pem.find("-----END").expect("END line");
    let text = format!("{}{}", f.root.cert.pem, &pem[..cut]);
    let p = parse_object(text.as_bytes(), &[]);
    assert_eq!(details(&p), ["block 1"], "the complete block is still read");
    assert_facts(&p.certs[0], &f.root.cert);
    assert_eq!(p.errors.len(), 1);
    let e = &p.errors[0];
    assert!(e.detail.as_deref().is_some_and(|d| d.starts_with("block 2 (CERTIFICATE, line ")), "{e:?}");
    assert!(e.message.contains("no END line"), "{e:?}");
}

#[test]
fn pem_bundle_where_block_two_of_three_is_broken() {
    let f = fixtures();
    let mid = f.inter.cert.pem.clone();
    // Drop one base64 character from the middle block: valid base64 alphabet, wrong length.
    let body_start = mid.find('\n').expect("newline") + 1;
    let mut broken = mid.clone();
    broken.remove(body_start + 10);
    let text = format!("{}{}{}", f.valid.cert.pem, broken, f.root.cert.pem);
    let p = parse_object(text.as_bytes(), &[]);
    assert_eq!(details(&p), ["block 1", "block 3"]);
    assert_facts(&p.certs[0], &f.valid.cert);
    assert_facts(&p.certs[1], &f.root.cert);
    assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
    let e = p.errors[0].to_string();
    assert!(e.starts_with("block 2 (CERTIFICATE, line "), "{e}");

    // Valid base64 but not a certificate: still block 2, and the others still read.
    let junk = "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n";
    let text = format!("{}{}{}", f.valid.cert.pem, junk, f.root.cert.pem);
    let p = parse_object(text.as_bytes(), &[]);
    assert_eq!(details(&p), ["block 1", "block 3"]);
    assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
    assert_eq!(p.errors[0].detail.as_deref(), Some("block 2"));
    assert!(p.errors[0].message.contains("not a valid X.509 certificate"), "{:?}", p.errors);
}

#[test]
fn mismatched_end_label() {
    let pem = fixtures().valid.cert.pem.replace("-----END CERTIFICATE-----", "-----END PRIVATE KEY-----");
    let p = parse_object(pem.as_bytes(), &[]);
    assert!(p.certs.is_empty());
    assert!(error_text(&p)[0].contains("does not match"), "{:?}", p.errors);
}

#[test]
fn truncated_containers_are_errors_not_panics() {
    let c = containers();
    for (name, data) in [("pkcs7", &c.pkcs7_der), ("p12", &c.p12_modern), ("p12 legacy", &c.p12_legacy), ("jks", &c.jks_trust)] {
        for cut in [data.len() - 25, data.len() / 2, 40] {
            let p = parse_object(&data[..cut], &[P12_PASSWORD, JKS_PASSWORD]);
            assert!(p.certs.is_empty(), "{name} cut at {cut}: {:?}", details(&p));
            assert_eq!(p.errors.len(), 1, "{name} cut at {cut}: {:?}", p.errors);
        }
    }
    let jks = &c.jks_trust;
    let p = parse_object(&jks[..jks.len() - 25], &[]);
    assert_eq!(p.format, Some(Format::Jks));
    assert!(error_text(&p)[0].starts_with("JKS: truncated keystore at byte"), "{:?}", p.errors);
}

/// An interrupted copy of a `.p7b` or `.p12` must be reported as a truncated PKCS#7 / PKCS#12,
/// not as "not a DER certificate": the operator needs to know which file kind is damaged.
#[test]
fn truncated_containers_are_reported_as_their_format() {
    let c = containers();
    for (name, data, format, label) in [
        ("pkcs7", &c.pkcs7_der, Format::Pkcs7, "PKCS#7"),
        ("p12", &c.p12_modern, Format::Pkcs12, "PKCS#12"),
        ("p12 legacy", &c.p12_legacy, Format::Pkcs12, "PKCS#12"),
    ] {
        let p = parse_object(&data[..data.len() - 25], &[P12_PASSWORD]);
        let errors = error_text(&p);
        assert_eq!(p.format, Some(format), "{name}: {errors:?}");
        assert!(errors[0].contains(label) && errors[0].contains("truncated"), "{name}: {errors:?}");
    }
}

#[test]
fn not_a_certificate_file_at_all() {
    let p = parse_object(b"hello, world\nthis is a README\n", &[]);
    assert_eq!(p.format, None);
    assert_eq!(error_text(&p), ["not a certificate file: no PEM block and not DER, PKCS#7, PKCS#12 or JKS"]);
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
fn garbage(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn fifty_megabytes_of_garbage_is_a_fast_error() {
    const SIZE: usize = 50 * 1024 * 1024;
    let mut data = garbage(SIZE, 0x5eed);
    for (first, what) in [(0x42u8, "unrecognised"), (0x30, "DER-looking"), (0xfe, "JKS-magic-looking")] {
        data[0] = first;
        if first == 0xfe {
            data[..4].copy_from_slice(&[0xfe, 0xed, 0xfe, 0xed]);
        }
        let start = Instant::now();
        let p = parse_object(&data, &[P12_PASSWORD]);
        let took = start.elapsed();
        assert!(p.certs.is_empty(), "{what}");
        assert_eq!(p.errors.len(), 1, "{what}: {:?}", p.errors);
        // Linear work only. A debug build needs about a second for 50 MB; anything
        // quadratic in the length would need hours. The bound sits between the two, far from
        // the linear time so that a loaded machine cannot fail it.
        assert!(took < Duration::from_secs(60), "{what}: parsing 50 MB of garbage took {took:?}");
    }
}
