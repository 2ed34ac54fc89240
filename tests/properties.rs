//! Property tests: whatever bytes arrive — random, or real PEM/DER/PKCS#7/PKCS#12/JKS samples
//! with bits flipped, cut short or with bytes inserted — the parsers return a value or an error
//! and never panic, hang or recurse without bound. The same for configuration text.
//!
//! Case counts are modest (256–384) so the suite stays quick in a debug build.

mod common;

use certvigil::x509::{self, ber, cert, jks, pem, pkcs7, pkcs12};
use common::*;
use proptest::prelude::*;
use proptest::sample::Index;
use std::path::Path;
use std::sync::OnceLock;

/// Real samples, generated once per run.
fn samples() -> &'static Vec<(&'static str, Vec<u8>)> {
    static S: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    S.get_or_init(|| {
        let f = fixtures();
        let c = containers();
        let bundle = format!("{}{}{}", f.valid.cert.pem, f.valid.cert.key_pem, f.root.cert.pem);
        vec![
            ("pem bundle", bundle.into_bytes()),
            ("pem with junk", pem_bundle_with_junk(&[&f.inter.cert, &f.rsa.cert]).into_bytes()),
            ("der p256", f.valid.cert.der.clone()),
            ("der rsa", f.rsa.cert.der.clone()),
            ("der ed25519", f.timestamp.cert.der.clone()),
            ("pkcs7 der", c.pkcs7_der.clone()),
            ("pkcs7 pem", c.pkcs7_pem.clone()),
            ("p12 plain", c.p12_plain.clone()),
            ("p12 modern", c.p12_modern.clone()),
            ("p12 legacy", c.p12_legacy.clone()),
            ("p12 no mac", c.p12_encrypted_no_mac.clone()),
            ("jks trust", c.jks_trust.clone()),
            ("jks key", c.jks_key.clone()),
            ("trusted pem", c.trusted_pem.clone()),
        ]
    })
}

const PASSWORDS: &[&str] = &[P12_PASSWORD, JKS_PASSWORD];

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: Index, bit: u8 },
    Set { at: Index, byte: u8 },
    Truncate { at: Index },
    Insert { at: Index, bytes: Vec<u8> },
    Remove { at: Index, len: u8 },
    Duplicate { at: Index, len: u8 },
}

fn interesting_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..8),
        Just(vec![0x00]),
        Just(vec![0x80]),
        Just(vec![0xff, 0xff, 0xff, 0xff]),
        Just(vec![0x30, 0x80]),
        Just(vec![0x84, 0xff, 0xff, 0xff, 0xff]),
        Just(vec![0x24, 0x80, 0x04, 0x00]),
        Just(b"\n-----BEGIN CERTIFICATE-----\n".to_vec()),
        Just(b"\n-----END CERTIFICATE-----\n".to_vec()),
        Just(b"Proc-Type: 4,ENCRYPTED\n".to_vec()),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        1 => any::<Index>().prop_map(|at| Mutation::Truncate { at }),
        2 => (any::<Index>(), interesting_bytes()).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (any::<Index>(), 1u8..64).prop_map(|(at, len)| Mutation::Remove { at, len }),
        1 => (any::<Index>(), 1u8..64).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
    ]
}

fn apply(data: &mut Vec<u8>, m: &Mutation) {
    if data.is_empty() {
        if let Mutation::Insert { bytes, .. } = m {
            data.extend_from_slice(bytes);
        }
        return;
    }
    match m {
        Mutation::Flip { at, bit } => {
            let i = at.index(data.len());
            data[i] ^= 1 << bit;
        }
        Mutation::Set { at, byte } => {
            let i = at.index(data.len());
            data[i] = *byte;
        }
        Mutation::Truncate { at } => data.truncate(at.index(data.len())),
        Mutation::Insert { at, bytes } => {
            let i = at.index(data.len() + 1);
            data.splice(i..i, bytes.iter().copied());
        }
        Mutation::Remove { at, len } => {
            let i = at.index(data.len());
            let end = (i + usize::from(*len)).min(data.len());
            data.drain(i..end);
        }
        Mutation::Duplicate { at, len } => {
            let i = at.index(data.len());
            let end = (i + usize::from(*len)).min(data.len());
            let copy: Vec<u8> = data[i..end].to_vec();
            data.splice(i..i, copy);
        }
    }
}

/// Walks every element reachable from `r` (to a depth of 64; `Tlv::children` starts a fresh
/// reader, so the bound on this walk is the walker's own), touching every accessor.
fn walk(r: &mut ber::Reader<'_>, depth: usize) {
    if depth > 64 {
        return;
    }
    while let Ok(Some(t)) = r.next_tlv() {
        assert!(t.content.len() <= t.raw.len());
        let _ = t.small_uint();
        let _ = ber::oid_string(&t);
        let _ = t.octets();
        let _ = t.expect(ber::SEQUENCE, "x");
        if t.constructed() {
            walk(&mut t.children(), depth + 1);
        }
    }
}

/// Feeds `data` to every parser and uses what comes back.
fn exercise(data: &[u8]) {
    let parsed = x509::parse_object(data, PASSWORDS);
    for found in &parsed.certs {
        let f = &found.facts;
        assert_eq!(f.fingerprint.0, sha256_hex(&found.der), "fingerprint is always the SHA-256 of the DER");
        let _ = f.display_name();
        let _ = f.key.to_string();
        let _ = certvigil::model::format_time(f.not_after);
        let _ = serde_json::to_string(f).expect("facts serialize");
    }
    for e in &parsed.errors {
        assert!(!e.to_string().is_empty());
        assert!(!e.to_string().contains(P12_PASSWORD), "a password leaked into an error: {e}");
    }
    for b in pem::scan(data) {
        assert!(b.index >= 1 && b.line >= 1);
    }
    walk(&mut ber::Reader::new(data), 0);
    let _ = ber::single(data);
    let _ = jks::parse(data, PASSWORDS);
    let _ = pkcs12::parse(data, PASSWORDS);
    let _ = pkcs12::looks_like_pkcs12(data);
    let _ = pkcs7::looks_like_pkcs7(data);
    let _ = pkcs7::certificates(data);
    let _ = cert::parse_der(data);
    if let Ok(parts) = cert::raw_parts(data) {
        assert!(parts.serial.len() <= data.len() && parts.spki.len() <= data.len());
    }
    let _ = cert::has_extension(data, "2.5.29.19");
}

/// The revocation decoders are pure parsers too.
fn exercise_crl(data: &[u8]) {
    let f = fixtures();
    let root = certvigil::x509::parse_object(&f.root.cert.der, &[]).certs.remove(0).facts;
    let parts = cert::raw_parts(&f.root.cert.der).expect("root parts");
    if let Ok(crl) = certvigil::revocation::crl::Crl::parse(data.to_vec(), 1 << 20) {
        for serial in [&[0x10u8, 0x01][..], &[0x00, 0x8f, 0xab], &[0x01], &[], &[0x00]] {
            let _ = crl.lookup(serial);
        }
        let _ = crl.verify(parts.subject, parts.spki, None, &root.key_usage, 2048);
        let _ = crl.is_delta();
    }
    let _ = certvigil::x509::verify::key_info(data);
    if let Ok(t) = ber::single(data) {
        let _ = certvigil::x509::verify::split_signed(&t);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn mutated_real_samples_never_panic(which in any::<Index>(), mutations in prop::collection::vec(mutation(), 1..6)) {
        let all = samples();
        let (_name, original) = &all[which.index(all.len())];
        let mut data = original.clone();
        for m in &mutations {
            apply(&mut data, m);
        }
        exercise(&data);
    }
}

fn crl_sample() -> &'static Vec<u8> {
    static C: OnceLock<Vec<u8>> = OnceLock::new();
    C.get_or_init(|| {
        let f = fixtures();
        crl(&f.root, &[&[0x10, 0x01], &[0x8f, 0xab], &[0x10, 0x04]])
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_crl_never_panics(mutations in prop::collection::vec(mutation(), 1..6)) {
        let mut data = crl_sample().clone();
        for m in &mutations {
            apply(&mut data, m);
        }
        exercise_crl(&data);
        exercise(&data);
    }

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&data);
        exercise_crl(&data);
    }

    /// Random bytes behind the headers each format is recognised by, so that the deeper parsers
    /// (not only the sniffers) see them.
    #[test]
    fn random_bodies_behind_real_magic(kind in 0usize..5, body in prop::collection::vec(any::<u8>(), 0..1024)) {
        let mut data = match kind {
            0 => vec![0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2],
            1 => vec![0xce, 0xce, 0xce, 0xce, 0, 0, 0, 2],
            2 => vec![0x30, 0x80, 0x02, 0x01, 0x03, 0x30, 0x80],
            3 => vec![0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0, 0x80],
            _ => b"-----BEGIN CERTIFICATE-----\n".to_vec(),
        };
        data.extend_from_slice(&body);
        exercise(&data);
    }

    /// Every prefix of a real sample is handled (an interrupted copy of a keystore).
    #[test]
    fn prefixes_of_real_samples_never_panic(which in any::<Index>(), cut in any::<Index>()) {
        let all = samples();
        let (_name, original) = &all[which.index(all.len())];
        exercise(&original[..cut.index(original.len() + 1)]);
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration text

const CONFIG_SAMPLE: &str = "store:\n  path: state/db\nthresholds:\n  warning_days: 30\n  critical_days: 7\nsources:\n  - name: etc\n    kind: files\n    paths: [/etc/ssl/certs, 'certs/**/*.pem']\n    recursive: true\n    include: ['*.pem', '*.crt']\n    exclude: ['*.key']\n    tags: [prod, web]\n    passwords: ['${env:P12_PASS}', '${file:/run/secrets/p}']\n    max_file_size: 16MiB\n    max_depth: 4\n  - {name: two, kind: files, paths: [x], follow_symlinks: false}\n";

fn yaml_token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "sources:",
        "\n",
        "  ",
        "- ",
        "name: a",
        "kind: files",
        "kind: s3",
        "paths: [x]",
        "paths:",
        "thresholds:",
        "warning_days: ",
        "critical_days: ",
        "store:",
        "path: ",
        "max_file_size: ",
        "16MiB",
        "99999999999999999999999",
        "-1",
        "0x10",
        "&a ",
        "*a",
        "<<: ",
        "!!binary ",
        "!!str ",
        "---",
        "...",
        "~",
        "null",
        "true",
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "? ",
        "|",
        ">",
        "'",
        "\"",
        "#",
        "%YAML 1.2",
        "${env:X}",
        "\t",
        "\u{feff}",
        "é",
        "\r\n",
        "include: ['[z']",
        "passwords: [pw]",
    ])
}

fn check_config(text: &str) {
    match certvigil::config::parse_str(text, "p.yaml", Path::new("/cfg")) {
        Ok(_) => {}
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error result carries at least one error");
            for e in &errors.0 {
                assert_eq!(e.file, "p.yaml");
                assert!(!e.message.is_empty());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn config_token_soup_never_panics(tokens in prop::collection::vec(yaml_token(), 0..60)) {
        check_config(&tokens.concat());
    }

    #[test]
    fn mutated_config_never_panics(mutations in prop::collection::vec(mutation(), 1..6)) {
        let mut data = CONFIG_SAMPLE.as_bytes().to_vec();
        for m in &mutations {
            apply(&mut data, m);
        }
        check_config(&String::from_utf8_lossy(&data));
    }

    #[test]
    fn random_config_text_never_panics(chars in prop::collection::vec(any::<char>(), 0..400)) {
        check_config(&chars.into_iter().collect::<String>());
    }
}

#[test]
fn the_config_sample_is_valid() {
    // Otherwise the mutation property above would only ever mutate an invalid file.
    let s = certvigil::config::parse_str(CONFIG_SAMPLE, "p.yaml", Path::new("/cfg")).expect("sample config is valid");
    assert_eq!(s.sources.len(), 2);
}

#[test]
fn the_crl_sample_parses_and_verifies_before_mutation() {
    let f = fixtures();
    let root = certvigil::x509::parse_object(&f.root.cert.der, &[]).certs.remove(0).facts;
    let parts = cert::raw_parts(&f.root.cert.der).expect("root parts");
    let crl = certvigil::revocation::crl::Crl::parse(crl_sample().clone(), 1 << 20).expect("CRL parses");
    crl.verify(parts.subject, parts.spki, None, &root.key_usage, 2048).expect("CRL verifies against its issuer");
    assert!(crl.lookup(&[0x10, 0x01]).expect("lookup").is_some());
    assert!(crl.lookup(&[0x10, 0x05]).expect("lookup").is_none());
}

#[test]
fn every_sample_parses_cleanly_before_mutation() {
    // Otherwise the mutation property would only ever mutate inputs that already fail.
    for (name, data) in samples() {
        let p = x509::parse_object(data, PASSWORDS);
        assert!(p.errors.is_empty(), "{name}: {:?}", p.errors);
        assert!(!p.certs.is_empty(), "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile inputs with a known shape

#[test]
fn yaml_alias_bomb_is_rejected_quickly() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = format!("*a{}", i - 1);
        text.push_str(&format!("a{i}: &a{i} [{}]\n", [prev.as_str(); 10].join(", ")));
    }
    text.push_str("sources: *a11\n");
    let start = std::time::Instant::now();
    let errors = certvigil::config::parse_str(&text, "bomb.yaml", Path::new("/")).expect_err("an alias bomb is not a configuration");
    assert!(start.elapsed() < std::time::Duration::from_secs(20), "took {:?}", start.elapsed());
    assert!(!errors.0.is_empty());
}

#[test]
fn deeply_nested_yaml_is_an_error_not_a_stack_overflow() {
    for depth in [100usize, 10_000] {
        let text = format!("sources: {}{}\n", "[".repeat(depth), "]".repeat(depth));
        let errors = certvigil::config::parse_str(&text, "deep.yaml", Path::new("/")).expect_err("too deep");
        assert!(!errors.0.is_empty());
        let text = format!("sources:\n{}", (0..depth.min(2_000)).map(|i| format!("{}- \n", "  ".repeat(i))).collect::<String>());
        let _ = certvigil::config::parse_str(&text, "deep.yaml", Path::new("/"));
    }
}

#[test]
fn deeply_nested_ber_is_bounded() {
    for opener in [[0x30u8, 0x80], [0x24, 0x80], [0xa0, 0x80]] {
        let mut data = Vec::new();
        for _ in 0..100_000 {
            data.extend_from_slice(&opener);
        }
        for _ in 0..100_000 {
            data.extend_from_slice(&[0, 0]);
        }
        assert!(ber::single(&data).is_err());
        exercise(&data);
    }
    // Definite lengths, nested 10 000 deep.
    let mut data = vec![0x04, 0x00];
    for _ in 0..10_000 {
        let len = data.len();
        let mut outer = vec![0x30, 0x83, (len >> 16) as u8, (len >> 8) as u8, len as u8];
        outer.extend_from_slice(&data);
        data = outer;
    }
    exercise(&data);
}

#[test]
fn jks_claiming_a_million_entries_is_an_error() {
    let mut data = vec![0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2, 0x00, 0x0f, 0x42, 0x40];
    data.extend_from_slice(&[0, 0, 0, 2, 0, 1, b'a']);
    let err = jks::parse(&data, &[]).expect_err("truncated");
    assert!(err.to_string().contains("truncated"), "{err}");
    let mut huge = vec![0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff];
    huge.extend_from_slice(&[0; 64]);
    assert!(jks::parse(&huge, &[]).is_err());
}

// ---------------------------------------------------------------------------------------------
// The fuzz targets' corpus and regressions, replayed (fuzz/README.md)

#[path = "../fuzz/targets.rs"]
mod targets;

/// The inputs stored for `target` under `fuzz/<kind>/<target>/`, by file name.
fn stored_inputs(kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).expect("read a stored fuzz input")))
        .filter(|(name, _)| name != "README.md")
        .collect();
    out.sort();
    out
}

/// Every stored fuzz input goes through its target's body, as `cargo fuzz run` would: none may
/// panic. Each target must have a corpus worth the name, so a lost directory fails here.
#[test]
fn fuzz_corpus_and_regressions_replay() {
    const MIN_CORPUS: usize = 20;
    let start = std::time::Instant::now();
    let mut failures = Vec::new();
    for (target, body) in targets::TARGETS {
        let corpus = stored_inputs("corpus", target);
        assert!(corpus.len() >= MIN_CORPUS, "fuzz/corpus/{target}/ holds {} inputs; expected at least {MIN_CORPUS}", corpus.len());
        let regressions = stored_inputs("regressions", target);
        for (kind, name, data) in corpus.iter().map(|(n, d)| ("corpus", n, d)).chain(regressions.iter().map(|(n, d)| ("regressions", n, d)))
        {
            if std::panic::catch_unwind(|| body(data)).is_err() {
                failures.push(format!("fuzz/{kind}/{target}/{name}"));
            }
        }
        eprintln!("{target}: {} corpus inputs, {} regressions replayed", corpus.len(), regressions.len());
    }
    assert!(failures.is_empty(), "these stored fuzz inputs panic: {failures:#?}");
    eprintln!("replayed in {:?}", start.elapsed());
}

/// The corpus seeds: `cargo test --test properties -- --ignored write_fuzz_seeds` writes them
/// to `fuzz/seeds/<target>/` (or under `$FUZZ_SEEDS`), from the fixtures the tests generate and
/// from the fuzz fixture CA, with `openssl ca` and `openssl ocsp` for the CRLs and responses.
#[test]
#[ignore = "writes the fuzz seeds; run by hand (fuzz/README.md)"]
fn write_fuzz_seeds() {
    let root = std::env::var_os("FUZZ_SEEDS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds"));
    let put = |target: &str, name: &str, data: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("seed directory");
        std::fs::write(dir.join(name), data).expect("write a seed");
    };
    seeds::objects(&put);
    let pki = seeds::FuzzPki::new();
    seeds::crls(&pki, &put);
    seeds::ocsp(&pki, &put);
    seeds::configs(&put);
    seeds::acme(&put);
    seeds::kubernetes(&pki, &put);
    seeds::http_api(&put);
    seeds::dns(&put);
    // Every seed goes through its target once here, so that a seed that panics is seen now.
    for (target, body) in targets::TARGETS {
        for entry in std::fs::read_dir(root.join(target)).expect("seeds written") {
            body(&std::fs::read(entry.expect("entry").path()).expect("read seed"));
        }
    }
}

mod seeds {
    use super::common::*;
    use super::targets;
    use std::path::{Path, PathBuf};

    type Put<'a> = dyn Fn(&str, &str, &[u8]) + 'a;

    pub fn objects(put: &Put<'_>) {
        for (name, data) in super::samples() {
            put("parse_object", &name.replace(' ', "-"), data);
        }
        let c = containers();
        put("parse_object", "jks-genkeypair", &c.jks_gen);
        put("parse_object", "csr-pem", csr_pem().as_bytes());
        put("parse_object", "crl-der", super::crl_sample());
        put("parse_object", "fuzz-ca-pem", targets::CA_PEM);
        put("parse_object", "fuzz-ca-key-pem", targets::CA_KEY_PEM);
    }

    /// The fuzz fixture CA run by `openssl ca` in a temporary directory: leaves 0x1000–0x1005,
    /// of which 0x1001 is revoked (keyCompromise), 0x1002 on hold, 0x1005 superseded; 0x1003
    /// is good and 0x1004 unknown to the OCSP responder.
    pub struct FuzzPki {
        _tmp: tempfile::TempDir,
        dir: PathBuf,
    }

    const CNF: &str = "[ ca ]\ndefault_ca = fuzzca\n[ fuzzca ]\ndir = .\ndatabase = $dir/index.txt\nnew_certs_dir = $dir/newcerts\nserial = $dir/serial\ncrlnumber = $dir/crlnumber\ncertificate = $dir/ca.crt\nprivate_key = $dir/ca.key\ndefault_md = sha256\ndefault_days = 36500\ndefault_crl_days = 36500\npolicy = any\ncopy_extensions = copy\nunique_subject = no\n[ any ]\ncommonName = supplied\n[ leaf_ext ]\nbasicConstraints = CA:FALSE\nkeyUsage = digitalSignature\nextendedKeyUsage = serverAuth\nauthorityKeyIdentifier = keyid\nauthorityInfoAccess = OCSP;URI:http://127.0.0.1:8080/ocsp\ncrlDistributionPoints = URI:http://127.0.0.1:8080/ca.crl\n[ crl_ext ]\nauthorityKeyIdentifier = keyid\n[ crl_fresh_ext ]\nauthorityKeyIdentifier = keyid\nfreshestCRL = URI:http://127.0.0.1:8080/delta.crl\n[ crl_idp_ext ]\nauthorityKeyIdentifier = keyid\nissuingDistributionPoint = critical,@idp\n[ idp ]\nfullname = URI:http://127.0.0.1:8080/ca.crl\nonlyuser = TRUE\n";

    impl FuzzPki {
        pub fn new() -> FuzzPki {
            let tmp = tempfile::tempdir().expect("temporary directory");
            let dir = tmp.path().to_path_buf();
            std::fs::create_dir_all(dir.join("newcerts")).expect("newcerts");
            std::fs::write(dir.join("ca.crt"), targets::CA_PEM).expect("write");
            std::fs::write(dir.join("ca.key"), targets::CA_KEY_PEM).expect("write");
            std::fs::write(dir.join("ocsp.crt"), targets::RESPONDER_PEM).expect("write");
            std::fs::write(dir.join("ocsp.key"), targets::RESPONDER_KEY_PEM).expect("write");
            std::fs::write(dir.join("index.txt"), "").expect("write");
            std::fs::write(dir.join("serial"), "1000\n").expect("write");
            std::fs::write(dir.join("crlnumber"), "1000\n").expect("write");
            std::fs::write(dir.join("ca.cnf"), CNF).expect("write");
            let pki = FuzzPki { _tmp: tmp, dir };
            for i in 0..6 {
                let subj = format!("/CN=leaf{i}.example.test");
                let (key, csr, crt) = (format!("leaf{i}.key"), format!("leaf{i}.csr"), format!("leaf{i}.crt"));
                pki.openssl(&[
                    "req",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-subj",
                    &subj,
                    "-keyout",
                    &key,
                    "-out",
                    &csr,
                ]);
                pki.openssl(&["ca", "-batch", "-config", "ca.cnf", "-extensions", "leaf_ext", "-in", &csr, "-out", &crt]);
            }
            pki
        }

        fn openssl(&self, args: &[&str]) -> Vec<u8> {
            tool("openssl", args, &self.dir)
        }

        pub fn read(&self, name: &str) -> Vec<u8> {
            std::fs::read(self.dir.join(name)).expect("read an openssl output")
        }

        fn gencrl(&self, dir: &Path, exts: &str, out: &str) -> Vec<u8> {
            tool("openssl", &["ca", "-config", "ca.cnf", "-gencrl", "-crlexts", exts, "-out", "crl.pem"], dir);
            tool("openssl", &["crl", "-in", "crl.pem", "-outform", "DER", "-out", out], dir);
            std::fs::read(dir.join(out)).expect("read a CRL")
        }

        fn revoke(&self, leaf: usize, reason: &str) {
            let crt = format!("leaf{leaf}.crt");
            if reason == "certificateHold" {
                self.openssl(&["ca", "-config", "ca.cnf", "-revoke", &crt, "-crl_hold", "holdInstructionReject"]);
            } else {
                self.openssl(&["ca", "-config", "ca.cnf", "-revoke", &crt, "-crl_reason", reason]);
            }
        }
    }

    fn framed(base: &[u8], delta: Option<&[u8]>) -> Vec<u8> {
        let mut out = match delta {
            Some(_) => u16::try_from(base.len()).expect("seed CRLs are small").to_be_bytes().to_vec(),
            None => vec![0xff, 0xff],
        };
        out.extend_from_slice(base);
        out.extend_from_slice(delta.unwrap_or_default());
        out
    }

    pub fn crls(pki: &FuzzPki, put: &Put<'_>) {
        let empty = pki.gencrl(&pki.dir, "crl_ext", "empty.crl");
        pki.revoke(1, "keyCompromise");
        pki.revoke(2, "certificateHold");
        pki.revoke(5, "superseded");
        let base = pki.gencrl(&pki.dir, "crl_ext", "base.crl");
        let fresh = pki.gencrl(&pki.dir, "crl_fresh_ext", "fresh.crl");
        let idp = pki.gencrl(&pki.dir, "crl_idp_ext", "idp.crl");
        // A delta (deltaCRLIndicator: the base's number 0x1000) releasing the hold on 0x1002 and
        // revoking 0x1003, from a database holding only those changes.
        let delta_dir = pki.dir.join("delta");
        std::fs::create_dir_all(delta_dir.join("newcerts")).expect("delta dir");
        for f in ["ca.crt", "ca.key", "crlnumber", "serial"] {
            std::fs::copy(pki.dir.join(f), delta_dir.join(f)).expect("copy");
        }
        let index = String::from_utf8(pki.read("index.txt")).expect("index");
        let mut lines = Vec::new();
        for l in index.lines() {
            let f: Vec<&str> = l.split('\t').collect();
            let when = "261204000000Z";
            match f[3] {
                "1002" => lines.push(format!("R\t{}\t{},removeFromCRL\t{}", f[1], when, f[3..].join("\t"))),
                "1003" => lines.push(format!("R\t{}\t{},keyCompromise\t{}", f[1], when, f[3..].join("\t"))),
                _ => {}
            }
        }
        std::fs::write(delta_dir.join("index.txt"), lines.join("\n") + "\n").expect("write");
        let cnf = format!("{CNF}\n[ delta_ext ]\nauthorityKeyIdentifier = keyid\n2.5.29.27 = critical,DER:02:02:10:00\n");
        std::fs::write(delta_dir.join("ca.cnf"), cnf).expect("write");
        let delta = pki.gencrl(&delta_dir, "delta_ext", "delta.crl");
        let pem = tool("openssl", &["crl", "-inform", "DER", "-in", "base.crl"], &pki.dir);
        put("crl", "base-and-delta", &framed(&base, Some(&delta)));
        put("crl", "base", &framed(&base, None));
        put("crl", "empty-and-delta", &framed(&empty, Some(&delta)));
        put("crl", "freshest", &framed(&fresh, None));
        put("crl", "idp-only-user-certs", &framed(&idp, None));
        put("crl", "pem", &framed(&pem, None));
        put("crl", "rcgen", &framed(super::crl_sample(), None));
        put("crl", "delta-as-base", &framed(&delta, Some(&base)));
    }

    pub fn ocsp(pki: &FuzzPki, put: &Put<'_>) {
        use certvigil::revocation::ocsp::{Issuer, build_request, cert_id};
        let ca = targets::pem_body(targets::CA_PEM);
        let parts = certvigil::x509::cert::raw_parts(&ca).expect("CA parts");
        let issuer = Issuer { subject_der: parts.subject, spki_der: parts.spki };
        // The responder does not know 0x1004.
        let index = String::from_utf8(pki.read("index.txt")).expect("index");
        let known: Vec<&str> = index.lines().filter(|l| !l.contains("\t1004\t")).collect();
        std::fs::write(pki.dir.join("ocsp-index.txt"), known.join("\n") + "\n").expect("write");
        for serial_ix in 0u8..4 {
            let serial = [0x10, 0x01 + serial_ix];
            let id = cert_id(&issuer, &serial).expect("CertID");
            for nonce in [false, true] {
                let req = build_request(&id, nonce.then_some(targets::OCSP_NONCE));
                std::fs::write(pki.dir.join("req.der"), &req).expect("write");
                for (signer, key, extra) in [("ca.crt", "ca.key", &["-resp_no_certs"][..]), ("ocsp.crt", "ocsp.key", &["-resp_key_id"][..])]
                {
                    let mut args = vec!["ocsp", "-index", "ocsp-index.txt", "-CA", "ca.crt", "-rsigner", signer, "-rkey", key];
                    args.extend_from_slice(&["-ndays", "36500", "-reqin", "req.der", "-respout", "resp.der"]);
                    args.extend_from_slice(extra);
                    pki.openssl(&args);
                    let resp = pki.read("resp.der");
                    let sel = (serial_ix << 3) | if nonce { 4 } else { 0 };
                    let name = format!(
                        "{:x}-{}-{}",
                        0x1001 + u32::from(serial_ix),
                        signer.trim_end_matches(".crt"),
                        if nonce { "nonce" } else { "plain" }
                    );
                    put("ocsp", &format!("{name}-raw"), &[&[sel][..], &resp].concat());
                    // The ResponseData alone, for the re-signing selectors.
                    let tbs = response_data(&resp);
                    let resign = if signer == "ca.crt" { 2 } else { 3 };
                    put("ocsp", &format!("{name}-tbs"), &[&[sel | resign][..], &tbs].concat());
                }
            }
        }
        put("ocsp", "try-later", &[0, 0x30, 0x03, 0x0a, 0x01, 0x03]);
        put("ocsp", "unauthorized", &[0, 0x30, 0x03, 0x0a, 0x01, 0x06]);
    }

    /// The tbsResponseData of a DER OCSPResponse.
    fn response_data(resp: &[u8]) -> Vec<u8> {
        use certvigil::x509::ber;
        let outer = ber::single(resp).expect("response");
        let mut r = outer.children();
        r.required("status").expect("status");
        let bytes = r.required("responseBytes").expect("bytes").children().required("ResponseBytes").expect("rb");
        let mut rb = bytes.children();
        rb.required("type").expect("type");
        let basic_octets = rb.required("response").expect("response").octets().expect("octets");
        let basic = ber::single(&basic_octets).expect("basic");
        basic.children().required("tbs").expect("tbs").raw.to_vec()
    }

    pub fn configs(put: &Put<'_>) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        put("config", "certvigil.yaml", &std::fs::read(root.join("config/certvigil.yaml")).expect("default config"));
        for e in std::fs::read_dir(root.join("config/examples")).expect("examples") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "yaml") {
                put("config", &p.file_name().expect("name").to_string_lossy(), &std::fs::read(&p).expect("read"));
            }
        }
        put("config", "sample.yaml", super::CONFIG_SAMPLE.as_bytes());
        put("config", "empty.yaml", b"");
        put("config", "jobs.yaml", b"jobs:\n  - name: nightly\n    kind: scan\n    schedule: '0 3 * * 1-5'\n    timezone: Europe/Paris\n    jitter: 5m\n  - {name: leap, kind: evaluate, schedule: '0 0 29 2 *'}\n  - {name: secs, kind: revocation, schedule: '*/10 * * * * *'}\n");
    }

    pub fn acme(put: &Put<'_>) {
        let with = |sel: u8, text: &str| [&[sel][..], text.as_bytes()].concat();
        put("acme", "directory", &with(0, targets::ACME_DIRECTORY));
        put(
            "acme",
            "directory-pebble",
            &with(
                0,
                r#"{"keyChange":"https://127.0.0.1:14000/rollover-account-key","meta":{"externalAccountRequired":false,"termsOfService":"data:text/plain,Do%20what%20thou%20wilt"},"newAccount":"https://127.0.0.1:14000/sign-me-up","newNonce":"https://127.0.0.1:14000/nonce-plz","newOrder":"https://127.0.0.1:14000/order-plz","revokeCert":"https://127.0.0.1:14000/revoke-cert"}"#,
            ),
        );
        put(
            "acme",
            "ari",
            &with(
                1,
                "200 21600\n{\"suggestedWindow\":{\"start\":\"2025-01-02T04:00:00Z\",\"end\":\"2025-01-03T04:00:00Z\"},\"explanationURL\":\"http://127.0.0.1:9/docs/ari\"}",
            ),
        );
        put(
            "acme",
            "ari-http-date",
            &with(
                1,
                "200 Wed, 21 Oct 2026 07:28:00 GMT\n{\"suggestedWindow\":{\"start\":\"2027-01-20T00:00:00+01:00\",\"end\":\"2027-01-20T00:00:00.5Z\"}}",
            ),
        );
        put(
            "acme",
            "ari-problem",
            &with(1, "404 60\n{\"type\":\"urn:ietf:params:acme:error:malformed\",\"detail\":\"unknown certificate\",\"status\":404}"),
        );
        put(
            "acme",
            "order-pending",
            &with(
                2,
                "200\n{\"status\":\"pending\",\"expires\":\"2027-01-22T00:00:00Z\",\"identifiers\":[{\"type\":\"dns\",\"value\":\"www.example.test\"}],\"authorizations\":[\"https://127.0.0.1/acme/authz/1\"],\"finalize\":\"https://127.0.0.1/acme/order/1/finalize\",\"replaces\":\"aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE\",\"profile\":\"tlsserver\"}",
            ),
        );
        put(
            "acme",
            "order-valid",
            &with(
                2,
                "200\n{\"status\":\"valid\",\"identifiers\":[{\"type\":\"ip\",\"value\":\"127.0.0.1\"}],\"authorizations\":[],\"finalize\":\"https://127.0.0.1/acme/order/1/finalize\",\"certificate\":\"https://127.0.0.1/acme/cert/1\"}",
            ),
        );
        put(
            "acme",
            "order-invalid",
            &with(
                2,
                "200\n{\"status\":\"invalid\",\"identifiers\":[],\"authorizations\":[],\"finalize\":\"\",\"error\":{\"type\":\"urn:ietf:params:acme:error:rejectedIdentifier\",\"detail\":\"no\",\"subproblems\":[{\"type\":\"urn:ietf:params:acme:error:caa\",\"detail\":\"CAA forbids\",\"identifier\":{\"type\":\"dns\",\"value\":\"a.example.test\"}}]}}",
            ),
        );
        put(
            "acme",
            "order-gone",
            &with(2, "404\n{\"type\":\"urn:ietf:params:acme:error:malformed\",\"detail\":\"No order for ID 1\",\"status\":404}"),
        );
        put("acme", "revoke-ok", &with(3, "200\n"));
        put(
            "acme",
            "revoke-already",
            &with(
                3,
                "400\n{\"type\":\"urn:ietf:params:acme:error:alreadyRevoked\",\"detail\":\"Certificate already revoked\",\"status\":400}",
            ),
        );
        put(
            "acme",
            "revoke-bad-nonce",
            &with(
                3,
                "400\n{\"type\":\"urn:ietf:params:acme:error:badNonce\",\"detail\":\"JWS has an invalid anti-replay nonce\",\"status\":400}",
            ),
        );
        put(
            "acme",
            "authorization",
            &with(
                4,
                r#"{"status":"pending","expires":"2027-01-22T00:00:00Z","identifier":{"type":"dns","value":"www.example.test"},"challenges":[{"url":"https://127.0.0.1/acme/chall/1","type":"http-01","status":"pending","token":"DGyRejmCefe7v4NfDGDKfA"},{"url":"https://127.0.0.1/acme/chall/2","type":"dns-01","status":"valid","token":"DGyRejmCefe7v4NfDGDKfA","validated":"2027-01-15T00:00:00Z"},{"url":"https://127.0.0.1/acme/chall/3","type":"tls-alpn-01","status":"invalid","token":"x","error":{"type":"urn:ietf:params:acme:error:connection"}}],"wildcard":false}"#,
            ),
        );
        put(
            "acme",
            "credentials",
            &with(
                4,
                r#"{"id":"https://127.0.0.1/acme/acct/1","key_pkcs8":"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg","directory":"https://127.0.0.1/acme/directory","urls":{"newNonce":"a","newAccount":"b","newOrder":"c"}}"#,
            ),
        );
    }

    pub fn kubernetes(pki: &FuzzPki, put: &Put<'_>) {
        use base64ct::{Base64, Encoding};
        let b64 = |d: &[u8]| Base64::encode_string(d);
        let leaf = pki.read("leaf3.crt");
        let c = containers();
        let secrets = serde_json::json!({
            "kind": "SecretList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "123456", "continue": "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTIzNDU2LCJzdGFydCI6InRlYW0vYiJ9", "remainingItemCount": 42},
            "items": [
                {"metadata": {"name": "site-tls", "namespace": "web", "uid": "4a2c6f8e-0d4b-4c43-9a8e-2f1d3c4b5a69", "resourceVersion": "1001", "creationTimestamp": "2026-11-01T00:00:00Z",
                    "labels": {"app": "web"}, "annotations": {"cert-manager.io/certificate-name": "site"},
                    "managedFields": [{"manager": "cert-manager", "operation": "Apply", "apiVersion": "v1", "time": "2026-11-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {".": {}, "f:tls.crt": {}}}}]},
                 "type": "kubernetes.io/tls", "data": {"tls.crt": b64(&leaf), "tls.key": b64(b"-----BEGIN EC PRIVATE KEY-----\n"), "ca.crt": b64(targets::CA_PEM)}},
                {"metadata": {"name": "keystore", "namespace": "payments", "resourceVersion": "1002"}, "type": "Opaque",
                 "data": {"keystore.p12": b64(&c.p12_modern), "password": b64(b"p12-S3cret!\n"), "truststore.jks": b64(&c.jks_trust), "cosign.pub": "", "root.json": b64(b"{}")}},
                {"metadata": {"name": "sh.helm.release.v1.web.v7", "namespace": "web", "resourceVersion": "1003", "labels": {"owner": "helm"}}, "type": "helm.sh/release.v1",
                 "data": {"release": b64(&[b'H'; 2048])}},
                {"metadata": {"name": "no-data", "namespace": "web", "resourceVersion": "1004"}, "type": "Opaque"},
                {"metadata": {"name": "immutable", "namespace": "kube-system", "resourceVersion": "1005"}, "immutable": true, "stringData": {"x.pem": "y"}, "data": null}
            ]
        });
        put("kubernetes", "secrets", &[&[0u8][..], &serde_json::to_vec_pretty(&secrets).expect("json")].concat());
        put(
            "kubernetes",
            "secrets-last-page",
            &[&[0u8][..], br#"{"kind":"SecretList","apiVersion":"v1","metadata":{"resourceVersion":"9"},"items":[]}"#].concat(),
        );
        let configmaps = serde_json::json!({
            "kind": "ConfigMapList", "apiVersion": "v1", "metadata": {"resourceVersion": "77", "continue": ""},
            "items": [
                {"metadata": {"name": "kube-root-ca.crt", "namespace": "default", "resourceVersion": "10"}, "data": {"ca.crt": String::from_utf8_lossy(targets::CA_PEM)}},
                {"metadata": {"name": "bundle", "namespace": "web", "resourceVersion": "11"}, "data": {"a.pem": "x", "other": "y"}, "binaryData": {"b.pem": b64(&leaf), "cosign.pub": b64(b"k")}},
                {"metadata": {"name": "sigstore", "namespace": "tuf", "resourceVersion": "12"}, "data": {"root.json": "{}"}}
            ]
        });
        put("kubernetes", "configmaps", &[&[1u8][..], &serde_json::to_vec(&configmaps).expect("json")].concat());
        let public = tool("openssl", &["pkey", "-in", "ca.key", "-pubout"], &pki.dir);
        put("kubernetes", "cosign-pub", &[&[2u8][..], &public].concat());
        let root = serde_json::json!({
            "signatures": [{"keyid": "6f260089d5923daf20166ca657c543af618346ab971884a99962b01988bbe0c3", "sig": "30450221"}],
            "signed": {"_type": "root", "spec_version": "1.0", "version": 5, "expires": "2027-10-02T13:21:11Z", "consistent_snapshot": true,
                "keys": {"6f26": {"keytype": "ecdsa", "scheme": "ecdsa-sha2-nistp256", "keyid_hash_algorithms": ["sha256", "sha512"], "keyval": {"public": String::from_utf8_lossy(&public)}}},
                "roles": {"root": {"keyids": ["6f26"], "threshold": 1}, "snapshot": {"keyids": ["6f26"], "threshold": 1}, "targets": {"keyids": ["6f26"], "threshold": 1}, "timestamp": {"keyids": ["6f26"], "threshold": 1}}}
        });
        put("kubernetes", "tuf-root", &[&[3u8][..], &serde_json::to_vec_pretty(&root).expect("json")].concat());
    }

    pub fn http_api(put: &Put<'_>) {
        let ca_fp = sha256_hex(&targets::pem_body(targets::CA_PEM));
        let auth = format!("Authorization: Bearer {}\r\n", targets::API_TOKEN);
        let get =
            |target: &str, auth: &str| format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1:9797\r\n{auth}Accept: application/json\r\n\r\n");
        let post = |target: &str, auth: &str, body: &str| {
            format!(
                "POST {target} HTTP/1.1\r\nHost: 127.0.0.1:9797\r\n{auth}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        let requests: Vec<(&str, String)> = vec![
            ("healthz", get("/healthz", "")),
            ("readyz", get("/readyz", "")),
            ("metrics", get("/metrics", "")),
            ("certificates", get("/api/v1/certificates?limit=10&offset=0&expiring_within=30d&source=files&include_gone=true", &auth)),
            ("certificates-all", get("/api/v1/certificates", &auth)),
            ("certificates-bad-limit", get("/api/v1/certificates?limit=0&offset=x", &auth)),
            ("certificate", get(&format!("/api/v1/certificates/{}", &ca_fp[..12]), &auth)),
            ("certificate-full", get(&format!("/api/v1/certificates/{ca_fp}"), &auth)),
            ("findings", get("/api/v1/findings?severity=warning", &auth)),
            ("jobs", get("/api/v1/jobs/", &auth)),
            ("runs", get("/api/v1/jobs/scan/runs", &auth)),
            ("trigger", format!("POST /api/v1/jobs/scan/run HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 0\r\n\r\n")),
            (
                "trigger-unknown",
                format!(
                    "POST /api/v1/jobs/nope/run HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n"
                ),
            ),
            ("unauthorized", get("/api/v1/certificates", "Authorization: Bearer wrong\r\n")),
            ("not-found", get("/nothing/here", "")),
            ("wrong-method", format!("DELETE /api/v1/certificates HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n")),
            ("head", "HEAD /healthz HTTP/1.0\r\n\r\n".to_string()),
            ("pipelined", format!("{}{}", get("/healthz", ""), get("/api/v1/jobs", &auth))),
            ("absolute-form", get("http://127.0.0.1:9797/api/v1/findings", &auth)),
            ("long-query", get(&format!("/api/v1/certificates?{}", "a=b&".repeat(600)), &auth)),
            // The status page: pages by bearer token, the sign-in form, a form write, a cookie.
            ("ui-overview", get("/ui/?by=owner", &auth)),
            (
                "ui-list",
                get(
                    "/ui/certificates?q=ca%20x&status=expired&status=critical&revocation=good&eku=codeSigning&sort=name&order=desc&per_page=2&page=2&expires=2026-12-10",
                    &auth,
                ),
            ),
            ("ui-certificate", get(&format!("/ui/certificates/{}", &ca_fp[..12]), &auth)),
            ("ui-csv", get("/ui/certificates.csv?sort=issuer", &auth)),
            ("ui-json", get("/ui/certificates.json?q=%ZZ%", &auth)),
            ("ui-alerts", get("/ui/alerts?state=all", &auth)),
            ("ui-audit", get("/ui/audit?page=1", &auth)),
            ("ui-login-page", get("/ui/login?next=%2Fui%2Falerts", "")),
            ("ui-anonymous", get("/ui/certificates", "")),
            ("ui-login", post("/ui/login", "", &format!("token={}&next=%2Fui%2F", targets::API_TOKEN))),
            ("ui-ack", post("/ui/alerts/1/ack", &auth, "note=on+it&by=ops&return=%2Fui%2F")),
            ("ui-silence", post("/ui/alerts/1/silence", &auth, "reason=maintenance&duration=24h&by=ops")),
            ("ui-cookie", get("/ui/alerts", "Cookie: certvigil_session=00ff; other=1\r\n")),
        ];
        for (name, text) in requests {
            put("http_api", name, text.as_bytes());
        }
    }

    /// A DNS answer to `id` with `flags`, the question for `_acme-challenge.example.test`, and
    /// `records` (type, data) with compressed owner names.
    fn dns_message(id: u16, flags: u16, records: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut m = certvigil::issuers::dns::query(id, "_acme-challenge.www.example.test.").expect("query");
        m[2..4].copy_from_slice(&flags.to_be_bytes());
        m[6..8].copy_from_slice(&u16::try_from(records.len()).expect("few").to_be_bytes());
        for (kind, data) in records {
            m.extend_from_slice(&[0xc0, 12]);
            m.extend_from_slice(&kind.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            m.extend_from_slice(&u16::try_from(data.len()).expect("short").to_be_bytes());
            m.extend_from_slice(data);
        }
        m
    }

    pub fn dns(put: &Put<'_>) {
        let txt = |strings: &[&str]| -> Vec<u8> { strings.iter().flat_map(|s| std::iter::once(s.len() as u8).chain(s.bytes())).collect() };
        let token = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";
        put("dns", "txt", &dns_message(0x1234, 0x8180, &[(16, txt(&[token]))]));
        put("dns", "txt-split", &dns_message(0x1234, 0x8180, &[(16, txt(&["abc", "def"])), (16, txt(&[token]))]));
        put("dns", "cname-then-txt", &dns_message(0x0001, 0x8180, &[(5, b"\x03www\xc0\x10".to_vec()), (16, txt(&[token]))]));
        put("dns", "nxdomain", &dns_message(0x4242, 0x8183, &[]));
        put("dns", "servfail", &dns_message(0x4242, 0x8182, &[]));
        put("dns", "truncated", &dns_message(0x4242, 0x8380, &[]));
        put("dns", "name", b"_acme-challenge.www.example.test.");
    }
}
