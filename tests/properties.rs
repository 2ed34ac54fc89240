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
    let _ = certvigil::revocation::verify::key_info(data);
    if let Ok(t) = ber::single(data) {
        let _ = certvigil::revocation::verify::split_signed(&t);
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
