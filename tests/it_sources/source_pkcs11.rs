//! The PKCS#11 source against a real SoftHSM2 token, through the real `certvigil` binary.
//!
//! Each test creates its own token in a temporary directory (its own SOFTHSM2_CONF, given to
//! both the tools and certvigil) and fills it with the real tools an HSM operator uses:
//! `softhsm2-util --init-token` and `pkcs11-tool` (certificates and PKCS#8 private keys
//! written with `--write-object`, key pairs generated on the token with `--keypairgen`).
//! Certificates are issued at test time with rcgen, also for public keys generated on the
//! token. Expected public key hashes come from the tools (`pkcs11-tool --read-object`,
//! `openssl pkey -pubout`), never from certvigil.
//!
//! SoftHSM2 and OpenSC are installed by `tests/components/pkcs11.sh`; when they are missing the
//! tests fail saying so.

use crate::common;

use common::{RUN_LIMIT, Run, Sandbox, run_with_timeout, sha256_hex};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PublicKeyData, SignatureAlgorithm};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const INSTALL: &str = "run tests/components/pkcs11.sh (installs softhsm2 and opensc)";
const PIN: &str = "4711-user";
const SO_PIN: &str = "0815-so-pin";
const PIN_ENV: &str = "CERTVIGIL_TEST_HSM_PIN";

/// The SoftHSM2 module where Debian, Ubuntu or Fedora put it.
fn module() -> PathBuf {
    let candidates =
        ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so", "/usr/lib64/pkcs11/libsofthsm2.so"];
    candidates.iter().map(PathBuf::from).find(|p| p.exists()).unwrap_or_else(|| panic!("libsofthsm2.so not found: {INSTALL}"))
}

/// A SoftHSM2 token of its own, in a temporary directory.
struct Token {
    _dir: tempfile::TempDir,
    conf: PathBuf,
    work: PathBuf,
    label: String,
    module: PathBuf,
}

impl Token {
    fn new(label: &str) -> Token {
        let dir = tempfile::tempdir().expect("tempdir");
        let tokens = dir.path().join("tokens");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&tokens).expect("mkdir");
        std::fs::create_dir_all(&work).expect("mkdir");
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .expect("write softhsm2.conf");
        let t = Token { _dir: dir, conf, work, label: label.to_string(), module: module() };
        t.run("softhsm2-util", &["--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", SO_PIN]);
        t
    }

    /// Runs a tool with this token's SOFTHSM2_CONF; a missing tool names the install script.
    fn run(&self, program: &str, args: &[&str]) -> Vec<u8> {
        let out = Command::new(program)
            .args(args)
            .current_dir(&self.work)
            .env("SOFTHSM2_CONF", &self.conf)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run `{program}` ({e}): {INSTALL}"));
        assert!(
            out.status.success(),
            "`{program} {}` failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// pkcs11-tool, logged in to this token.
    fn p11(&self, args: &[&str]) -> Vec<u8> {
        let module = self.module.display().to_string();
        let mut all = vec!["--module", module.as_str(), "--token-label", self.label.as_str(), "--login", "--pin", PIN];
        all.extend_from_slice(args);
        self.run("pkcs11-tool", &all)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.work.join(name);
        std::fs::write(&p, bytes).expect("write");
        p.display().to_string()
    }

    fn write_cert(&self, der: &[u8], id: &str, label: &str) {
        let f = self.file(&format!("{label}.crt.der"), der);
        self.p11(&["--write-object", &f, "--type", "cert", "--id", id, "--label", label]);
    }

    /// Imports a PKCS#8 DER private key (pkcs11-tool marks it sensitive, not extractable).
    fn write_private_key(&self, pkcs8: &[u8], id: &str, label: &str) {
        let f = self.file(&format!("{label}.key.der"), pkcs8);
        self.p11(&["--write-object", &f, "--type", "privkey", "--id", id, "--label", label]);
    }

    /// Generates a key pair on the token; returns its public key as pkcs11-tool shows it (the
    /// CKA_EC_POINT OCTET STRING's content: `pkcs11-tool --read-object` cannot export P-384).
    fn generate(&self, key_type: &str, id: &str, label: &str, extractable: bool, alg: &'static SignatureAlgorithm) -> TokenPublicKey {
        let mut args = vec!["--keypairgen", "--key-type", key_type, "--id", id, "--label", label];
        if extractable {
            args.push("--extractable");
        }
        self.p11(&args);
        let listing = String::from_utf8(self.p11(&["--list-objects", "--type", "pubkey"])).expect("text");
        for block in listing.split("Public Key Object").skip(1) {
            let field = |name: &str| block.lines().find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()));
            if field("ID:").as_deref() == Some(id) {
                let wrapped = hex::decode(field("EC_POINT:").expect("EC_POINT shown")).expect("hex");
                // DER OCTET STRING: tag, one length byte (points here are < 128 bytes), content.
                assert_eq!((wrapped[0], wrapped[1] as usize), (0x04, wrapped.len() - 2), "CKA_EC_POINT is an OCTET STRING");
                return TokenPublicKey { point: wrapped[2..].to_vec(), alg };
            }
        }
        panic!("public key {id} not listed:\n{listing}");
    }
}

/// A public key held by the token, for rcgen to put into a certificate (and to compute the
/// expected SubjectPublicKeyInfo).
struct TokenPublicKey {
    point: Vec<u8>,
    alg: &'static SignatureAlgorithm,
}

impl PublicKeyData for TokenPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    der: Vec<u8>,
}

fn ca() -> Ca {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, "HSM test CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let der = params.self_signed(&key).expect("self-sign").der().to_vec();
    Ca { params, key, der }
}

/// A code-signing leaf for `public`, issued by the CA.
fn leaf(ca: &Ca, cn: &str, public: &impl PublicKeyData) -> Vec<u8> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning];
    params.signed_by(public, &Issuer::from_params(&ca.params, &ca.key)).expect("sign leaf").der().to_vec()
}

fn config(sb: &Sandbox, token: &Token, source: &str, token_label: &str) {
    sb.config(&format!(
        "sources:\n  - name: {source}\n    kind: pkcs11\n    module: {}\n    token_label: {token_label}\n    pin: ${{env:{PIN_ENV}}}\n    tags: [hsm]\n",
        token.module.display()
    ));
}

fn certvigil(sb: &Sandbox, token: &Token, pin: &str, args: &[&str]) -> Run {
    let mut cmd = sb.command_at(common::NOW);
    cmd.env("SOFTHSM2_CONF", &token.conf).env(PIN_ENV, pin).args(args);
    run_with_timeout(cmd, RUN_LIMIT)
}

fn by_fingerprint<'a>(list: &'a Value, der: &[u8]) -> &'a Value {
    let fp = sha256_hex(der);
    list.as_array()
        .and_then(|a| a.iter().find(|c| c["fingerprint"].as_str().is_some_and(|f| f.eq_ignore_ascii_case(&fp))))
        .unwrap_or_else(|| panic!("certificate {fp} not listed: {list:#}"))
}

fn key<'a>(keys: &'a Value, class: &str, id: &str) -> &'a Value {
    keys["keys"]
        .as_array()
        .and_then(|a| a.iter().find(|k| k["class"] == class && k["key_id"] == id))
        .unwrap_or_else(|| panic!("no {class} key with CKA_ID {id}: {keys:#}"))
}

#[test]
fn inventories_certificates_and_keys_and_reports_key_problems() {
    let token = Token::new("cv-signing");
    let ca = ca();
    token.write_cert(&ca.der, "10", "ca");

    // 01: a P-256 key made outside the token and imported (never_extractable false) with its
    // certificate.
    let imported = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let imported_cert = leaf(&ca, "imported signer", &imported);
    token.write_private_key(&imported.serialize_der(), "01", "imported");
    token.write_cert(&imported_cert, "01", "imported");

    // 02: generated on the token, never extractable, with its certificate.
    let generated = token.generate("EC:prime256v1", "02", "generated", false, &rcgen::PKCS_ECDSA_P256_SHA256);
    let generated_spki = generated.subject_public_key_info();
    let generated_cert = leaf(&ca, "generated signer", &generated);
    token.write_cert(&generated_cert, "02", "generated");

    // 03: generated on the token as extractable (P-384), with its certificate.
    let exportable = token.generate("EC:secp384r1", "03", "exportable", true, &rcgen::PKCS_ECDSA_P384_SHA384);
    let exportable_spki = exportable.subject_public_key_info();
    let exportable_cert = leaf(&ca, "exportable signer", &exportable);
    token.write_cert(&exportable_cert, "03", "exportable");

    // 04: an RSA-2048 key with no certificate anywhere.
    let rsa_pem = token.run("openssl", &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
    let rsa_pem_file = token.file("rsa.pem", &rsa_pem);
    let rsa_pkcs8 = token.run("openssl", &["pkcs8", "-topk8", "-nocrypt", "-in", &rsa_pem_file, "-outform", "DER"]);
    let rsa_spki = token.run("openssl", &["pkey", "-in", &rsa_pem_file, "-pubout", "-outform", "DER"]);
    token.write_private_key(&rsa_pkcs8, "04", "orphan");

    // 05: a certificate whose key is not on the token.
    let elsewhere = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let keyless_cert = leaf(&ca, "keyless signer", &elsewhere);
    token.write_cert(&keyless_cert, "05", "keyless");

    // 06: an Ed25519 key pair generated on the token (CKK_EC_EDWARDS), no certificate.
    let ed_spki = token.generate("EC:edwards25519", "06", "ed", false, &rcgen::PKCS_ED25519).subject_public_key_info();

    let sb = Sandbox::new();
    config(&sb, &token, "hsm", &token.label);
    let scan = certvigil(&sb, &token, PIN, &["scan", "-o", "json"]).expect_code(0);
    let scan = scan.json();
    // 5 certificates, 5 private keys, 3 public keys (the generated pairs).
    assert_eq!(scan["run"]["objects_seen"], 13, "{scan:#}");
    assert_eq!(scan["errors"].as_array().map(Vec::len), Some(0), "{scan:#}");

    // Certificates: inventoried with their token, CKA_ID and CKA_LABEL, and whether the key is there.
    let list = certvigil(&sb, &token, PIN, &["list", "-o", "json"]).expect_code(0).json();
    assert_eq!(list.as_array().map(Vec::len), Some(5), "{list:#}");
    for (der, id, label, key_present) in [
        (&imported_cert, "01", "imported", true),
        (&generated_cert, "02", "generated", true),
        (&exportable_cert, "03", "exportable", true),
        (&keyless_cert, "05", "keyless", false),
        (&ca.der, "10", "ca", false),
    ] {
        let fp = sha256_hex(der);
        let show = certvigil(&sb, &token, PIN, &["show", &fp, "-o", "json"]).expect_code(0).json();
        let sightings = show["sightings"].as_array().expect("sightings");
        assert_eq!(sightings.len(), 1, "{show:#}");
        let s = &sightings[0];
        assert_eq!(s["source"], "hsm");
        assert_eq!(s["location"], format!("pkcs11:token=cv-signing;id=%{id};object={label};type=cert"), "{s:#}");
        assert_eq!(s["meta"]["token"], "cv-signing", "{s:#}");
        assert_eq!(s["meta"]["id"], id, "{s:#}");
        assert_eq!(s["meta"]["label"], label, "{s:#}");
        assert_eq!(s["meta"]["key_present"], key_present, "{label}: {s:#}");
        by_fingerprint(&list, der);
    }

    // Keys: type, size, curve, attributes and the public key hash that pairs them.
    let keys = certvigil(&sb, &token, PIN, &["keys", "-o", "json"]).expect_code(0).json();
    assert_eq!(keys["keys"].as_array().map(Vec::len), Some(8), "{keys:#}");
    let k1 = key(&keys, "private", "01");
    assert_eq!((k1["algorithm"].as_str(), k1["curve"].as_str(), k1["bits"].as_u64()), (Some("EC"), Some("P-256"), Some(256)));
    assert_eq!(k1["location"], "pkcs11:token=cv-signing;id=%01;object=imported;type=private");
    assert_eq!(k1["spki_sha256"], sha256_hex(&imported.subject_public_key_info()), "{k1:#}");
    assert_eq!(k1["attributes"]["sign"], true);
    assert_eq!(k1["attributes"]["extractable"], false);
    assert_eq!(k1["attributes"]["sensitive"], true);
    assert_eq!(k1["attributes"]["never_extractable"], false, "an imported key was outside the token once");
    assert!(k1["attributes"].get("start_date").is_none(), "empty CKA_START_DATE is absent: {k1:#}");
    assert_eq!(k1["certificates"][0]["fingerprint"], sha256_hex(&imported_cert));

    let k2 = key(&keys, "private", "02");
    assert_eq!(k2["attributes"]["never_extractable"], true);
    assert_eq!(k2["attributes"]["always_sensitive"], true);
    assert_eq!(k2["attributes"]["extractable"], false);
    assert_eq!(k2["spki_sha256"], sha256_hex(&generated_spki), "{k2:#}");
    assert_eq!(key(&keys, "public", "02")["spki_sha256"], sha256_hex(&generated_spki));
    assert_eq!(k2["certificates"][0]["by"], "id and public key", "{k2:#}");

    let k3 = key(&keys, "private", "03");
    assert_eq!((k3["curve"].as_str(), k3["bits"].as_u64()), (Some("P-384"), Some(384)));
    assert_eq!(k3["attributes"]["extractable"], true);
    assert_eq!(k3["spki_sha256"], sha256_hex(&exportable_spki));

    let k4 = key(&keys, "private", "04");
    assert_eq!((k4["algorithm"].as_str(), k4["bits"].as_u64(), k4["curve"].as_str()), (Some("RSA"), Some(2048), None));
    assert_eq!(k4["spki_sha256"], sha256_hex(&rsa_spki), "the SPKI is rebuilt from CKA_MODULUS and CKA_PUBLIC_EXPONENT");
    let problems = |k: &Value| -> Vec<(String, String)> {
        k["problems"]
            .as_array()
            .map(|a| {
                a.iter().map(|p| (p["kind"].as_str().unwrap_or("").to_string(), p["severity"].as_str().unwrap_or("").to_string())).collect()
            })
            .unwrap_or_default()
    };
    assert!(problems(k4).contains(&("orphan-key".into(), "info".into())), "{k4:#}");

    let k6 = key(&keys, "private", "06");
    assert_eq!((k6["algorithm"].as_str(), k6["bits"].as_u64()), (Some("Ed25519"), Some(256)), "{k6:#}");
    assert_eq!(key(&keys, "public", "06")["spki_sha256"], sha256_hex(&ed_spki));
    assert_eq!(problems(k6), vec![("orphan-key".to_string(), "info".to_string())], "never extractable: only orphaned");
    assert!(problems(k2).is_empty(), "{k2:#}");

    let keyless = keys["certificates_without_key"].as_array().expect("certificates_without_key");
    assert_eq!(keyless.len(), 1, "the CA certificate is not expected to have its key here: {keys:#}");
    assert_eq!(keyless[0]["fingerprint"], sha256_hex(&keyless_cert));

    // Findings: the extractable signing keys are findings on their certificates, the
    // never-extractable one is not; the keyless certificate is an info finding; orphan keys
    // (no certificate to alert on) are listed under key_problems.
    let plan = certvigil(&sb, &token, PIN, &["plan", "-o", "json"]).expect_code(0).json();
    let findings = plan["findings"].as_array().expect("findings");
    let finding = |der: &[u8], kind: &str| -> Option<&Value> {
        let fp = sha256_hex(der);
        findings.iter().find(|f| f["kind"] == kind && f["fingerprint"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(&fp)))
    };
    let f3 = finding(&exportable_cert, "key-extractable").unwrap_or_else(|| panic!("extractable key not a finding: {plan:#}"));
    assert_eq!(f3["severity"], "warning");
    assert!(f3["reason"].as_str().is_some_and(|r| r.contains("CKA_EXTRACTABLE true") && r.contains("exportable")), "{f3:#}");
    let f1 = finding(&imported_cert, "key-extractable").unwrap_or_else(|| panic!("imported key not a finding: {plan:#}"));
    assert!(f1["reason"].as_str().is_some_and(|r| r.contains("CKA_NEVER_EXTRACTABLE false")), "{f1:#}");
    assert_eq!(f1["severity"], "warning");
    assert!(finding(&generated_cert, "key-extractable").is_none(), "a never-extractable key is no finding: {plan:#}");
    let f5 = finding(&keyless_cert, "key-not-on-token").unwrap_or_else(|| panic!("keyless certificate not reported: {plan:#}"));
    assert_eq!(f5["severity"], "info");
    assert!(finding(&ca.der, "key-not-on-token").is_none());
    let unattached: Vec<(String, String)> = plan["key_problems"]
        .as_array()
        .expect("key_problems")
        .iter()
        .map(|p| (p["key_id"].as_str().unwrap_or("").to_string(), p["problem"]["kind"].as_str().unwrap_or("").to_string()))
        .collect();
    for want in [("04", "orphan-key"), ("04", "key-extractable"), ("06", "orphan-key")] {
        assert!(unattached.contains(&(want.0.to_string(), want.1.to_string())), "{want:?} missing from {unattached:?}");
    }

    // Findings on certificates become alerts like any other (alerts are per certificate).
    certvigil(&sb, &token, PIN, &["evaluate"]).expect_code(0);
    let alerts = certvigil(&sb, &token, PIN, &["alerts", "-o", "json"]).expect_code(0).json();
    let alerted: Vec<(String, String)> = alerts
        .as_array()
        .expect("alerts")
        .iter()
        .map(|a| (a["fingerprint"].as_str().unwrap_or("").to_ascii_lowercase(), a["kind"].as_str().unwrap_or("").to_string()))
        .collect();
    assert!(alerted.contains(&(sha256_hex(&exportable_cert), "key-extractable".into())), "{alerts:#}");
    assert!(alerted.contains(&(sha256_hex(&keyless_cert), "key-not-on-token".into())), "{alerts:#}");

    // Nothing changed on the token: the rescan lists every object and reads none.
    let again = certvigil(&sb, &token, PIN, &["scan", "-o", "json"]).expect_code(0).json();
    assert_eq!(again["run"]["objects_seen"], 13, "{again:#}");
    assert_eq!(again["run"]["objects_read"], 0, "{again:#}");

    // A changed attribute changes the stamp: only that object is read again.
    token.p11(&["--set-id", "07", "--id", "05", "--type", "cert"]);
    let changed = certvigil(&sb, &token, PIN, &["scan", "-o", "json"]).expect_code(0).json();
    assert_eq!(changed["run"]["objects_read"], 1, "{changed:#}");
}

#[test]
fn the_example_configuration_validates() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/sources-pkcs11.yaml");
    let mut cmd = common::certvigil();
    // Its PIN is a secret of the host it is written for: the file alone is checked.
    cmd.arg("-c").arg(&example).args(["config", "validate", "--offline"]);
    let out = run_with_timeout(cmd, RUN_LIMIT).expect_code(0);
    assert!(out.stdout.contains("OK (2 sources, "), "{}", out.stdout);
}

#[test]
fn login_and_token_errors_name_the_source_and_token() {
    let token = Token::new("cv-errors");
    let ca = ca();
    token.write_cert(&ca.der, "01", "root");
    let sb = Sandbox::new();
    config(&sb, &token, "vault-hsm", &token.label);
    certvigil(&sb, &token, PIN, &["scan"]).expect_code(0);

    // Wrong PIN: the scan fails for this source with CKR_PIN_INCORRECT, naming the source and
    // the token, never printing the PIN; what was inventoried is not marked gone.
    let wrong = "9753-wrong";
    let out = certvigil(&sb, &token, wrong, &["scan"]);
    assert_eq!(out.code, 4, "scan errors exit 4\n{}\n{}", out.stdout, out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("vault-hsm") && all.contains("cv-errors") && all.contains("CKR_PIN_INCORRECT"), "{all}");
    assert!(!all.contains(wrong) && !all.contains(PIN), "the PIN is printed: {all}");
    let list = certvigil(&sb, &token, wrong, &["list", "-o", "json"]).expect_code(0).json();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "a failed login is not a disappearance: {list:#}");
    let _ = by_fingerprint(&list, &ca.der);

    // Unknown token label: the error lists the labels the module has.
    config(&sb, &token, "vault-hsm", "no-such-token");
    let out = certvigil(&sb, &token, PIN, &["scan"]);
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("vault-hsm") && all.contains("`no-such-token` not found") && all.contains("`cv-errors`"), "{all}");

    // A module that cannot be loaded names its path.
    let missing = Path::new(env!("CARGO_MANIFEST_DIR")).join("no-such-module.so");
    sb.config(&format!("sources:\n  - name: vault-hsm\n    kind: pkcs11\n    module: {}\n    token_label: cv-errors\n", missing.display()));
    let out = certvigil(&sb, &token, PIN, &["scan"]);
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    assert!(format!("{}{}", out.stdout, out.stderr).contains(&missing.display().to_string()), "{}", out.stdout);
}
