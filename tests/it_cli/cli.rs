//! The real `certvigil` binary, run as an operator runs it: configuration checks, scans of
//! directories holding every format, the inventory commands and their filters and exit codes,
//! and the inventory's life over several scans (unchanged, touched, deleted, restored,
//! unreachable). Every run uses the fixed clock through the hidden `--now`.

use crate::common;

use common::*;
use std::path::Path;
use std::process::Command;

const P12_ENV: &str = "CV_TEST_P12_PASSWORD";
const JKS_ENV: &str = "CV_TEST_JKS_PASSWORD";

/// `certvigil ARGS` at `now` with extra environment variables.
pub(crate) fn run_env(sb: &Sandbox, now: i64, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = sb.command_at(now);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_with_timeout(cmd, RUN_LIMIT)
}

/// Both passwords set, as a deployment would.
fn with_passwords(sb: &Sandbox, now: i64, args: &[&str]) -> Run {
    run_env(sb, now, &[(P12_ENV, P12_PASSWORD), (JKS_ENV, JKS_PASSWORD)], args)
}

const TWO_SOURCES: &str = "sources:
  - name: web
    kind: files
    paths: [certs/web]
    tags: [prod, tls]
    passwords: ['${env:CV_TEST_P12_PASSWORD}', '${env:CV_TEST_JKS_PASSWORD}']
  - name: signing
    kind: files
    paths: [certs/signing]
    tags: [codesign]
";

/// Writes every format into two source directories:
///
/// | file | content |
/// |---|---|
/// | web/bundle.pem | valid + inter + root, junk between blocks |
/// | web/chain.p7b | PKCS#7 DER: valid + root |
/// | web/modern.p12 | PKCS#12 (password): valid + root + key |
/// | web/plain.p12 | PKCS#12 (no password): valid + root + key |
/// | web/legacy.pfx | PKCS#12 legacy (password): expiring + root + key |
/// | web/trust.jks | JKS: root + inter |
/// | web/key.jks | JKS key entry: valid + root |
/// | web/tomcat.keystore | JKS made by keytool -genkeypair (tomcat, expiring in 29 days) |
/// | web/rsa.crt | RSA-2048 self-signed |
/// | web/old/expired.pem | expired |
/// | web/future.pem | not yet valid |
/// | web/README.txt | not a certificate name: skipped |
/// | signing/codesign.der | code signing (DER) |
/// | signing/tsa.cer | time stamping, Ed25519 (PEM) |
///
/// 13 objects, 21 sightings, 10 distinct certificates.
fn populate(sb: &Sandbox) {
    let f = fixtures();
    let c = containers();
    sb.write("certs/web/bundle.pem", pem_bundle_with_junk(&[&f.valid.cert, &f.inter.cert, &f.root.cert]));
    sb.write("certs/web/chain.p7b", &c.pkcs7_der);
    sb.write("certs/web/modern.p12", &c.p12_modern);
    sb.write("certs/web/plain.p12", &c.p12_plain);
    sb.write("certs/web/legacy.pfx", &c.p12_legacy);
    sb.write("certs/web/trust.jks", &c.jks_trust);
    sb.write("certs/web/key.jks", &c.jks_key);
    sb.write("certs/web/tomcat.keystore", &c.jks_gen);
    sb.write("certs/web/rsa.crt", &f.rsa.cert.pem);
    sb.write("certs/web/old/expired.pem", &f.expired.cert.pem);
    sb.write("certs/web/future.pem", &f.not_yet_valid.cert.pem);
    sb.write("certs/web/README.txt", "not a certificate\n");
    sb.write("certs/signing/codesign.der", &f.codesign.cert.der);
    sb.write("certs/signing/tsa.cer", &f.timestamp.cert.pem);
}

/// A sandbox holding the full inventory, scanned once at [`NOW`].
fn scanned() -> Sandbox {
    let sb = Sandbox::new();
    sb.config(TWO_SOURCES);
    populate(&sb);
    with_passwords(&sb, NOW, &["scan"]).expect_code(0);
    sb
}

fn list_json(sb: &Sandbox, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["list", "-o", "json"];
    all.extend_from_slice(args);
    let out = sb.run(&all).expect_code(0);
    out.json().as_array().expect("a JSON array").clone()
}

fn names(rows: &[serde_json::Value]) -> Vec<String> {
    rows.iter().map(|r| r["name"].as_str().expect("name").to_string()).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn tomcat_fingerprint() -> String {
    let p = certvigil::x509::parse_object(&containers().jks_gen, &[]);
    p.certs[0].facts.fingerprint.0.clone()
}

// ---------------------------------------------------------------------------------------------
// config validate / config schema

#[test]
fn config_validate_accepts_a_good_file() {
    let sb = Sandbox::new();
    let cfg = sb.config(TWO_SOURCES);
    let out = with_passwords(&sb, NOW, &["config", "validate"]).expect_code(0);
    assert_eq!(out.stdout.trim(), format!("{}: OK (2 sources, 2 secret references resolved)", cfg.display()));
    assert!(!sb.store_path().exists(), "validate must not create the store");
}

/// `file:line:col` of the first `token` on 1-based `line` of the configuration file.
fn pos(cfg: &Path, line: usize, token: &str) -> String {
    let text = std::fs::read_to_string(cfg).expect("read config");
    let l = text.lines().nth(line - 1).unwrap_or_else(|| panic!("no line {line}"));
    let col = l.find(token).unwrap_or_else(|| panic!("no `{token}` on line {line}: {l}")) + 1;
    format!("{}:{line}:{col}", cfg.display())
}

#[test]
fn config_validate_reports_every_structural_error_with_position_and_key_path() {
    let sb = Sandbox::new();
    let cfg = sb.config(concat!(
        "thresholds:\n",           // 3
        "  warning_dayz: 5\n",     // 4
        "  critical_days: soon\n", // 5
        "sources:\n",              // 6
        "  - name: a\n",           // 7
        "    kind: files\n",       // 8
        "    paths: [x]\n",        // 9
        "    recursve: true\n",    // 10
        "    max_depth: deep\n",   // 11
        "  - kind: s3\n",          // 12
        "    name: b\n",           // 13
        "  - name: c\n",           // 14
        "    kind: files\n",       // 15
    ));
    let out = sb.run(&["config", "validate"]).expect_code(2);
    let expected = [
        format!("{}: thresholds.warning_dayz: unknown key `warning_dayz`; did you mean `warning_days`?", pos(&cfg, 4, "warning_dayz")),
        format!("{}: thresholds.critical_days: expected a whole number, found `soon`", pos(&cfg, 5, "soon")),
        format!("{}: sources[0].recursve: unknown key `recursve`; did you mean `recursive`?", pos(&cfg, 10, "recursve")),
        format!("{}: sources[0].max_depth: expected a whole number", pos(&cfg, 11, "deep")),
        format!("{}: sources[1].kind: unknown kind `s3`; expected one of: files", pos(&cfg, 12, "s3")),
        format!("{}: sources[2]: missing required key `paths`", pos(&cfg, 14, "name")),
    ];
    for e in &expected {
        assert!(out.stderr.lines().any(|l| l.contains(e.as_str())), "missing `{e}` in:\n{}", out.stderr);
    }
    let file = cfg.display().to_string();
    let reported = out.stderr.lines().filter(|l| l.contains(&file)).count();
    assert_eq!(reported, expected.len(), "exactly one line per error:\n{}", out.stderr);
    assert!(out.stdout.is_empty(), "errors go to stderr: {}", out.stdout);
}

#[test]
fn config_validate_reports_every_semantic_error_with_position_and_key_path() {
    let sb = Sandbox::new();
    let cfg = sb.config(concat!(
        "thresholds: {warning_days: 5, critical_days: 9}\n",              // 3
        "sources:\n",                                                     // 4
        "  - {name: a, kind: files, paths: [x], passwords: [hunter2]}\n", // 5
        "  - {name: a, kind: files, paths: [], include: ['[z'], max_file_size: 12 parsecs, tags: [a b]}\n", // 6
        "  - {name: 'bad name', kind: files, paths: [z], passwords: ['${file:relative}']}\n", // 7
    ));
    let out = sb.run(&["config", "validate"]).expect_code(2);
    let expected = [
        format!("{}: thresholds.critical_days: critical_days (9) exceeds warning_days (5)", pos(&cfg, 3, "9")),
        format!("{}: sources[0].passwords[0]: secrets are not written inline", pos(&cfg, 5, "hunter2")),
        format!("{}: sources[1].name: duplicate source name `a`", pos(&cfg, 6, "a,")),
        format!("{}: sources[1].paths: at least one path is required", pos(&cfg, 6, "[]")),
        format!("{}: sources[1].include[0]: bad pattern", pos(&cfg, 6, "'[z'")),
        format!("{}: sources[1].max_file_size: unknown size unit", pos(&cfg, 6, "12 parsecs")),
        format!("{}: sources[1].tags[0]: `a b` is not a valid tag", pos(&cfg, 6, "a b")),
        format!("{}: sources[2].name: `bad name` is not a valid source name", pos(&cfg, 7, "'bad name'")),
        format!("{}: sources[2].passwords[0]: a ${{file:…}} secret reference needs an absolute path", pos(&cfg, 7, "'${file")),
    ];
    for e in &expected {
        assert!(out.stderr.lines().any(|l| l.contains(e.as_str())), "missing `{e}` in:\n{}", out.stderr);
    }
    let file = cfg.display().to_string();
    assert_eq!(out.stderr.lines().filter(|l| l.contains(&file)).count(), expected.len(), "{}", out.stderr);
    assert!(!out.stderr.contains("hunter2"), "an inline secret must never be echoed:\n{}", out.stderr);
}

/// A password written inline by mistake must never be repeated back (it would land in CI logs
/// and terminals), whatever else is wrong with it — also when it is a string instead of a list.
#[test]
fn config_validate_never_echoes_an_inline_password() {
    for passwords in ["[hunter2]", "hunter2", "'hunter2'", "[[hunter2]]", "{hunter2: x}"] {
        let sb = Sandbox::new();
        sb.config(&format!("sources:\n  - {{name: a, kind: files, paths: [x], passwords: {passwords}}}\n"));
        let out = sb.run(&["config", "validate"]).expect_code(2);
        assert!(out.stderr.contains("sources[0].passwords"), "{passwords}: {}", out.stderr);
        assert!(!out.stderr.contains("hunter2"), "`passwords: {passwords}` is echoed back:\n{}", out.stderr);
    }
}

/// Values YAML could read as booleans or numbers (`y`, `no`, `on`, `2024`) in places that take
/// text. Accepting them as text or rejecting them are both fine; what is not fine is an error
/// without its line, column and key path (or one error that hides all the others).
#[test]
fn config_values_that_look_like_booleans_or_numbers() {
    for (yaml, key) in [
        ("sources:\n  - {name: a, kind: files, paths: [y]}\n", "sources[0].paths[0]"),
        ("sources:\n  - {name: no, kind: files, paths: [x]}\n", "sources[0].name"),
        ("sources:\n  - {name: a, kind: files, paths: [x], tags: [on, 2024]}\n", "sources[0].tags"),
        ("sources:\n  - {name: a, kind: files, paths: [x], include: ['*.pem', 1]}\n", "sources[0].include[1]"),
    ] {
        let sb = Sandbox::new();
        let cfg = sb.config(yaml);
        let out = sb.run(&["config", "validate"]);
        match out.code {
            0 => {}
            2 => {
                let prefix = format!("{}:", cfg.display());
                for line in out.stderr.lines().filter(|l| !l.trim().is_empty()) {
                    let rest = line.trim_start_matches("certvigil: ").strip_prefix(&prefix);
                    let positioned = rest.and_then(|r| r.split(':').next()).and_then(|l| l.parse::<usize>().ok()).is_some_and(|l| l > 0);
                    assert!(
                        positioned && line.contains(key),
                        "`{}`: an error without line:column or key path `{key}`:\n{}",
                        yaml.trim(),
                        out.stderr
                    );
                }
            }
            other => panic!("`{}`: exit {other}\n{}", yaml.trim(), out.stderr),
        }
    }
}

#[test]
fn config_validate_reports_yaml_syntax_errors_with_position() {
    let sb = Sandbox::new();
    let cfg = sb.config("sources:\n  - name: a\n    paths: [x, y\n  - name: b\n");
    let out = sb.run(&["config", "validate"]).expect_code(2);
    let line = out.stderr.lines().find(|l| l.contains("YAML syntax")).unwrap_or_else(|| panic!("no syntax error:\n{}", out.stderr));
    let prefix = format!("certvigil: {}:", cfg.display());
    let rest = line.strip_prefix(&prefix).unwrap_or_else(|| panic!("`{line}` does not start with `{prefix}`"));
    let mut pos = rest.splitn(3, ':');
    let l: usize = pos.next().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no line number in `{line}`"));
    let c: usize = pos.next().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no column in `{line}`"));
    assert!((5..=6).contains(&l) && c >= 1, "position {l}:{c} should point at the unclosed list (lines 5-6): {line}");
}

#[test]
fn config_validate_without_a_file_is_a_usage_error() {
    let sb = Sandbox::new();
    let out = sb.run(&["config", "validate"]).expect_code(2);
    assert!(out.stderr.contains("certvigil.yaml") && out.stderr.contains("cannot read"), "{}", out.stderr);
}

#[test]
fn shipped_configurations_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    for dir in [root.clone(), root.join("examples")] {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(p);
            }
        }
    }
    assert!(files.iter().any(|p| p.ends_with("config/certvigil.yaml")), "the default configuration is shipped: {files:?}");
    for f in files {
        // The examples name secrets of the hosts they are for: checked as files alone. The
        // default configuration names none and validates in full.
        let mut cmd = certvigil();
        cmd.arg("-c").arg(&f).args(["config", "validate"]);
        if !f.ends_with("config/certvigil.yaml") {
            cmd.arg("--offline");
        }
        let out = run_with_timeout(cmd, RUN_LIMIT);
        assert_eq!(out.code, 0, "{} does not validate:\n{}", f.display(), out.stderr);
    }
}

#[test]
fn config_schema_matches_the_committed_file() {
    let committed_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/config.schema.json");
    let regenerate = "regenerate it with: cargo run -q -- config schema > schema/config.schema.json";
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_else(|e| panic!("{}: {e}; {regenerate}", committed_path.display()));
    let mut cmd = certvigil();
    cmd.args(["config", "schema"]);
    let out = run_with_timeout(cmd, RUN_LIMIT).expect_code(0);
    let generated: serde_json::Value = serde_json::from_str(&out.stdout).expect("schema output is JSON");
    let on_disk: serde_json::Value =
        serde_json::from_str(&committed).unwrap_or_else(|e| panic!("{} is not JSON ({e}); {regenerate}", committed_path.display()));
    assert!(generated == on_disk, "schema/config.schema.json is stale: the configuration types changed; {regenerate}");
    assert_eq!(out.stdout.trim_end(), committed.trim_end(), "schema/config.schema.json differs in formatting; {regenerate}");
    // The schema is what an editor validates with: it must describe the real keys.
    assert_eq!(generated["additionalProperties"], serde_json::Value::Bool(false));
    assert!(generated["properties"]["sources"].is_object());
}

// ---------------------------------------------------------------------------------------------
// scan

#[test]
fn scan_of_every_format_summarises_and_exits_zero() {
    let sb = Sandbox::new();
    sb.config(TWO_SOURCES);
    populate(&sb);
    let out = with_passwords(&sb, NOW, &["scan"]).expect_code(0);
    let first = out.stdout.lines().next().unwrap_or_default();
    assert_eq!(first, "scan 1: 13 objects (13 read), 21 certificate sightings (10 new certificates, 0 gone), 0 errors", "{}", out.stdout);
    assert!(out.stdout.contains("  web (files): 11 objects, 11 read, 0 errors, 0 vanished"), "{}", out.stdout);
    assert!(out.stdout.contains("  signing (files): 2 objects, 2 read, 0 errors, 0 vanished"), "{}", out.stdout);
    assert!(!out.stdout.contains("errors:"), "{}", out.stdout);

    // Every certificate of every format is in the inventory, with its fingerprint.
    let f = fixtures();
    let rows = list_json(&sb, &[]);
    let mut fps: Vec<String> = rows.iter().map(|r| r["fingerprint"].as_str().expect("fp").to_string()).collect();
    fps.sort();
    let mut want: Vec<String> = f.all().iter().map(|c| c.fingerprint.clone()).collect();
    want.push(tomcat_fingerprint());
    want.sort();
    assert_eq!(fps, want);

    // The store was created where the configuration says, private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(sb.store_path()).expect("store exists").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(sb.path("state")).expect("state dir").permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
}

#[test]
fn scan_json_summary() {
    let sb = Sandbox::new();
    sb.config(TWO_SOURCES);
    populate(&sb);
    let out = with_passwords(&sb, NOW, &["scan", "-o", "json"]).expect_code(0);
    let v = out.json();
    let run = &v["run"];
    assert_eq!(run["objects_seen"], 13);
    assert_eq!(run["objects_read"], 13);
    assert_eq!(run["certs_seen"], 21);
    assert_eq!(run["certs_new"], 10);
    assert_eq!(run["certs_gone"], 0);
    assert_eq!(run["errors"], 0);
    assert_eq!(run["status"], "ok");
    assert_eq!(run["started_at"], NOW);
    assert_eq!(v["sources"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["errors"].as_array().map(Vec::len), Some(0));
}

#[test]
fn scan_of_a_single_named_source() {
    let sb = Sandbox::new();
    sb.config(TWO_SOURCES);
    populate(&sb);
    let out = sb.run(&["scan", "--source", "signing", "-o", "json"]).expect_code(0);
    assert_eq!(out.json()["run"]["objects_seen"], 2);
    assert_eq!(sorted(names(&list_json(&sb, &[]))), ["certvigil Code Signing", "certvigil Time Stamping"]);
    let out = sb.run(&["scan", "--source", "nope"]).expect_code(2);
    assert!(out.stderr.contains("no source named `nope`") && out.stderr.contains("web, signing"), "{}", out.stderr);
}

#[test]
fn broken_file_exits_4_and_is_shown_by_errors() {
    let f = fixtures();
    let sb = Sandbox::new();
    sb.config("sources:\n  - {name: web, kind: files, paths: [certs]}\n");
    // Block 2 of 3 has a broken base64 body.
    let mut mid = f.inter.cert.pem.clone();
    mid.insert(mid.find('\n').expect("newline") + 1, '*');
    let broken = sb.write("certs/bundle.pem", format!("{}{}{}", f.valid.cert.pem, mid, f.root.cert.pem));
    sb.write("certs/good.pem", &f.codesign.cert.pem);
    let out = sb.run(&["scan"]).expect_code(4);
    assert!(out.stdout.contains("1 error\n") || out.stdout.contains(", 1 error"), "{}", out.stdout);
    let line = format!("  web: {}: block 2 (CERTIFICATE, line ", broken.display());
    assert!(out.stdout.contains(&line), "scan output names the file and the block:\n{}", out.stdout);

    let errs = sb.run(&["errors"]).expect_code(0);
    let want = format!("web: {}: block 2 (CERTIFICATE, line ", broken.display());
    assert!(errs.stdout.lines().any(|l| l.starts_with(&want) && l.contains("invalid base64")), "{}", errs.stdout);
    assert_eq!(errs.stdout.lines().count(), 1, "{}", errs.stdout);

    // Blocks 1 and 3 are still inventoried, and the good file too.
    let got = sorted(names(&list_json(&sb, &[])));
    assert_eq!(got, ["certvigil Code Signing", "certvigil Test Root CA", "valid.example.test"]);
    // The table mentions the unreadable object.
    let table = sb.run(&["list"]).expect_code(0);
    assert!(table.stdout.contains("1 object could not be read; see `certvigil errors`"), "{}", table.stdout);

    // Fixed: the next scan reads it again and the error is gone.
    sb.write("certs/bundle.pem", format!("{}{}{}", f.valid.cert.pem, f.inter.cert.pem, f.root.cert.pem));
    sb.run_at(NOW + 60, &["scan"]).expect_code(0);
    assert_eq!(sb.run(&["errors"]).expect_code(0).stdout.trim(), "no read errors");
    assert_eq!(list_json(&sb, &[]).len(), 4);
}

// ---------------------------------------------------------------------------------------------
// list

#[test]
fn list_table_in_expiry_order_with_status() {
    let sb = scanned();
    let out = sb.run(&["list"]).expect_code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("NAME") && lines[0].contains("STATUS") && lines[0].contains("FINGERPRINT"), "{}", out.stdout);
    let rows = &lines[1..];
    assert_eq!(rows.len(), 10, "{}", out.stdout);
    let expect = [
        ("expired.example.test", "expired", "-11"),
        ("expiring.example.test", "expiring", "10"),
        // A 30-day certificate with 29 days left is not "expiring": the warning window is the
        // smaller of warning_days and a third of the lifetime, so short-lived certificates do
        // not warn for their whole life.
        ("tomcat.example.test", "valid", "29"),
        ("rsa.example.test", "valid", "60"),
        ("certvigil Time Stamping", "valid", "90"),
        ("certvigil Code Signing", "valid", "200"),
        ("valid.example.test", "valid", "364"),
        ("future.example.test", "not-yet-valid", "400"),
        ("certvigil Test Issuing CA", "valid", "1825"),
        ("certvigil Test Root CA", "valid", "10950"),
    ];
    for (row, (name, status, days)) in rows.iter().zip(expect) {
        assert!(row.starts_with(name), "row order: expected {name} in `{row}`\n{}", out.stdout);
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert!(cells.contains(&status), "{name}: status {status} in `{row}`");
        assert!(cells.contains(&days), "{name}: {days} days in `{row}`");
    }
    let f = fixtures();
    let valid_row = rows.iter().find(|r| r.starts_with("valid.example.test")).expect("valid row");
    assert!(valid_row.contains(&f.valid.cert.fingerprint[..12]), "{valid_row}");
    assert!(valid_row.contains("2027-05-31"), "{valid_row}");
    // Sightings: bundle, p7b, both PKCS#12 and the key store.
    assert!(valid_row.split_whitespace().any(|c| c == "5"), "{valid_row}");
    assert!(!out.stdout.contains('\x1b'), "no ANSI escapes when stdout is not a terminal");
}

#[test]
fn list_json_fields() {
    let sb = scanned();
    let f = fixtures();
    let rows = list_json(&sb, &[]);
    assert_eq!(rows.len(), 10);
    let valid = rows.iter().find(|r| r["fingerprint"] == f.valid.cert.fingerprint.as_str()).expect("valid");
    assert_eq!(valid["name"], "valid.example.test");
    assert_eq!(valid["serial"], "1001");
    assert_eq!(valid["not_before"], f.valid.cert.not_before);
    assert_eq!(valid["not_after"], f.valid.cert.not_after);
    assert_eq!(valid["not_after_rfc3339"], "2027-05-31T23:59:59Z");
    assert_eq!(valid["status"], "valid");
    assert_eq!(valid["days_left"], 364);
    assert_eq!(valid["current_sightings"], 5);
    assert_eq!(valid["sources"], serde_json::json!(["web"]));
    assert_eq!(valid["tags"], serde_json::json!(["prod", "tls"]));
    assert_eq!(valid["spki_sha256"], f.valid.cert.spki_sha256.as_str());
    assert_eq!(valid["ext_key_usage"], serde_json::json!(["serverAuth", "clientAuth"]));
    assert_eq!(valid["key"], serde_json::json!({"algorithm": "EC", "bits": 256, "curve": "P-256"}));
    assert_eq!(valid["first_seen"], NOW);
    assert!(valid["gone_since"].is_null());
    let expired = rows.iter().find(|r| r["name"] == "expired.example.test").expect("expired");
    assert_eq!(expired["status"], "expired");
    assert_eq!(expired["days_left"], -11, "days left round towards negative infinity");
    assert_eq!(expired["serial"], "008FAB");
    let root = rows.iter().find(|r| r["name"] == "certvigil Test Root CA").expect("root");
    assert_eq!(root["current_sightings"], 7);
    assert_eq!(root["is_ca"], true);
    assert_eq!(root["path_len"], 1);
}

/// Splits one CSV record (RFC 4180 quoting).
fn csv_record(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

#[test]
fn list_csv() {
    let sb = scanned();
    let f = fixtures();
    let out = sb.run(&["list", "-o", "csv"]).expect_code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let header = csv_record(lines[0]);
    assert_eq!(
        header,
        [
            "fingerprint",
            "name",
            "subject",
            "issuer",
            "serial",
            "not_before",
            "not_after",
            "days_left",
            "status",
            "revocation",
            "key",
            "signature_algorithm",
            "ext_key_usage",
            "sightings",
            "sources",
            "tags",
            "owner",
            "owner_contact"
        ]
    );
    assert_eq!(lines.len(), 11);
    let records: Vec<Vec<String>> = lines[1..].iter().map(|l| csv_record(l)).collect();
    assert!(records.iter().all(|r| r.len() == header.len()), "every record has every column:\n{}", out.stdout);
    let valid = records.iter().find(|r| r[0] == f.valid.cert.fingerprint).expect("valid row");
    assert_eq!(valid[1], "valid.example.test");
    assert_eq!(valid[2], "CN=valid.example.test,O=certvigil tests", "a field with a comma is quoted");
    assert_eq!(valid[4], "1001");
    assert_eq!(valid[6], "2027-05-31T23:59:59Z");
    assert_eq!(valid[8], "valid");
    assert_eq!(valid[9], "", "revocation not checked yet");
    assert_eq!(valid[10], "EC P-256");
    assert_eq!(valid[12], "serverAuth clientAuth");
    assert_eq!(valid[13], "5");
    assert_eq!(valid[14], "web");
    assert_eq!(valid[15], "prod tls");
    let rsa = records.iter().find(|r| r[0] == f.rsa.cert.fingerprint).expect("rsa row");
    assert_eq!(rsa[10], "RSA-2048");
    assert_eq!(rsa[11], "sha256WithRSAEncryption");
}

#[test]
fn list_filters() {
    let sb = scanned();
    let n = |args: &[&str]| sorted(names(&list_json(&sb, args)));
    assert_eq!(n(&["--expiring-within", "30d"]), ["expired.example.test", "expiring.example.test", "tomcat.example.test"]);
    assert_eq!(n(&["--expiring-within", "2w"]), ["expired.example.test", "expiring.example.test"]);
    assert_eq!(n(&["--status", "expired"]), ["expired.example.test"]);
    assert_eq!(n(&["--status", "expiring"]), ["expiring.example.test"], "tomcat's 30-day lifetime makes its window 10 days");
    assert_eq!(n(&["--status", "expired", "--status", "not-yet-valid"]), ["expired.example.test", "future.example.test"]);
    assert_eq!(n(&["--eku", "codesigning"]), ["certvigil Code Signing"]);
    assert_eq!(n(&["--eku", "code-signing"]), ["certvigil Code Signing"]);
    assert_eq!(n(&["--eku", "1.3.6.1.5.5.7.3.3"]), ["certvigil Code Signing"]);
    assert_eq!(n(&["--eku", "timestamping"]), ["certvigil Time Stamping"]);
    assert_eq!(n(&["--eku", "codesigning", "--eku", "timestamping"]), ["certvigil Code Signing", "certvigil Time Stamping"]);
    assert_eq!(n(&["--source", "signing"]), ["certvigil Code Signing", "certvigil Time Stamping"]);
    assert_eq!(n(&["--tag", "codesign"]), ["certvigil Code Signing", "certvigil Time Stamping"]);
    assert_eq!(n(&["--tag", "prod"]).len(), 8);
    assert_eq!(
        n(&["--tag", "tls", "--eku", "serverauth"]),
        ["expired.example.test", "expiring.example.test", "future.example.test", "rsa.example.test", "valid.example.test"]
    );
    assert_eq!(n(&["--source", "web", "--status", "expiring", "--expiring-within", "20d"]), ["expiring.example.test"]);
    assert!(n(&["--tag", "nope"]).is_empty());
    // The same filters in the table and CSV outputs.
    let table = sb.run(&["list", "--eku", "codesigning"]).expect_code(0);
    assert_eq!(table.stdout.lines().count(), 2, "{}", table.stdout);
    let csv = sb.run(&["list", "-o", "csv", "--status", "expired"]).expect_code(0);
    assert_eq!(csv.stdout.lines().count(), 2, "{}", csv.stdout);
}

#[test]
fn list_fail_if_any() {
    let sb = scanned();
    let out = sb.run(&["list", "--status", "expired", "--fail-if-any"]).expect_code(3);
    assert!(out.stdout.contains("expired.example.test"), "the matches are still printed:\n{}", out.stdout);
    sb.run(&["list", "--expiring-within", "30d", "--fail-if-any", "-o", "json"]).expect_code(3);
    let none = sb.run(&["list", "--eku", "1.2.3.4", "--fail-if-any"]).expect_code(0);
    assert_eq!(none.stdout.lines().count(), 1, "header only:\n{}", none.stdout);
    // The expired leaf's notAfter is NOW - 10 days - 5 s: before it, nothing has expired.
    sb.run_at(NOW - 11 * DAY, &["list", "--status", "expired", "--fail-if-any"]).expect_code(0);
    sb.run_at(NOW - 10 * DAY, &["list", "--status", "expired", "--fail-if-any"]).expect_code(3);
}

#[test]
fn list_status_follows_the_clock() {
    let sb = scanned();
    // A year later the valid leaf (notAfter 2027-05-31T23:59:59Z) has expired.
    let later = NOW + 366 * DAY;
    let rows = {
        let out = sb.run_at(later, &["list", "-o", "json", "--status", "expired"]).expect_code(0);
        out.json().as_array().expect("array").clone()
    };
    assert!(names(&rows).contains(&"valid.example.test".to_string()), "{rows:?}");
    // One second before notAfter it is expiring; at notAfter still valid-period (RFC 5280).
    let f = fixtures();
    let at = |t: i64| {
        let out = sb.run_at(t, &["list", "-o", "json", "--status", "expired"]).expect_code(0);
        names(out.json().as_array().expect("array")).contains(&"valid.example.test".to_string())
    };
    assert!(!at(f.valid.cert.not_after));
    assert!(at(f.valid.cert.not_after + 1));
}

#[test]
fn list_of_an_empty_store_says_so() {
    let sb = Sandbox::new();
    sb.config(TWO_SOURCES);
    let out = sb.run(&["list"]).expect_code(0);
    assert!(out.stdout.contains("run `certvigil scan` first"), "{}", out.stdout);
    sb.run(&["list", "--fail-if-any"]).expect_code(0);
}

fn run_in_pty(sb: &Sandbox, no_color: Option<&str>, args: &str) -> Run {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let inner =
        format!("{} -c {} --now {NOW} {args}", quote(env!("CARGO_BIN_EXE_certvigil")), quote(&sb.config_path().display().to_string()));
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &inner, "/dev/null"]);
    for var in ["CERTVIGIL_CONFIG", "CERTVIGIL_STORE", "CERTVIGIL_NOW", "NO_COLOR", "RUST_LOG"] {
        cmd.env_remove(var);
    }
    if let Some(v) = no_color {
        cmd.env("NO_COLOR", v);
    }
    // Fail loudly if util-linux `script` is missing (same rule as openssl and keytool).
    tool("script", &["--version"], Path::new("."));
    run_with_timeout(cmd, RUN_LIMIT)
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let sb = scanned();
    // On a terminal: the expired row is red, the expiring ones yellow.
    let tty = run_in_pty(&sb, None, "list").expect_code(0);
    assert!(tty.stdout.contains("\x1b[31mexpired.example.test"), "expected colour on a terminal:\n{:?}", tty.stdout);
    assert!(tty.stdout.contains("\x1b[33mexpiring.example.test"), "{:?}", tty.stdout);
    // NO_COLOR (any non-empty value) turns it off even on a terminal.
    let plain = run_in_pty(&sb, Some("1"), "list").expect_code(0);
    assert!(plain.stdout.contains("expired.example.test"), "{:?}", plain.stdout);
    assert!(!plain.stdout.contains('\x1b'), "NO_COLOR output has ANSI escapes:\n{:?}", plain.stdout);
    // Not a terminal: no escapes in any command's output, on stdout or stderr.
    for args in
        [&["list"][..], &["list", "-o", "csv"], &["list", "-o", "json"], &["errors"], &["show", &fixtures().valid.cert.fingerprint[..16]]]
    {
        let out = sb.run(args).expect_code(0);
        assert!(!out.stdout.contains('\x1b') && !out.stderr.contains('\x1b'), "{args:?}:\n{:?}", out.stdout);
    }
    let scan = with_passwords(&sb, NOW + 1, &["scan"]).expect_code(0);
    assert!(!scan.stdout.contains('\x1b') && !scan.stderr.contains('\x1b'), "{:?}{:?}", scan.stdout, scan.stderr);
}

// ---------------------------------------------------------------------------------------------
// show

/// The value of a `  Key   value` line of `show`.
fn field<'a>(show: &'a str, key: &str) -> &'a str {
    show.lines()
        .find_map(|l| l.strip_prefix("  ").and_then(|r| r.strip_prefix(key)).filter(|r| r.starts_with(' ')).map(str::trim))
        .unwrap_or_else(|| panic!("no `{key}` in:\n{show}"))
}

#[test]
fn show_by_fingerprint_prefix_prints_fields_sightings_and_history() {
    let sb = scanned();
    let f = fixtures();
    let c = &f.valid.cert;
    let out = sb.run(&["show", &c.fingerprint[..10]]).expect_code(0);
    let s = &out.stdout;
    assert!(s.starts_with(&format!("Certificate {}\n", c.fingerprint)), "{s}");
    assert_eq!(field(s, "Subject"), "CN=valid.example.test,O=certvigil tests");
    assert_eq!(field(s, "Issuer"), "CN=certvigil Test Root CA,O=certvigil tests");
    assert_eq!(field(s, "Serial"), "10:01");
    assert_eq!(field(s, "Not before"), "2026-05-02T00:00:17Z");
    assert_eq!(field(s, "Not after"), "2027-05-31T23:59:59Z (364 days left, valid)");
    assert_eq!(field(s, "Key"), format!("EC P-256 (SPKI SHA-256 {})", c.spki_sha256));
    assert_eq!(field(s, "Signature algorithm"), "ecdsa-with-SHA384");
    assert_eq!(field(s, "CA"), "no");
    assert_eq!(field(s, "Key usage"), "digitalSignature, keyEncipherment");
    assert_eq!(field(s, "Extended key usage"), "serverAuth, clientAuth");
    assert!(field(s, "Subject alt names").starts_with("DNS:valid.example.test, DNS:*.valid.example.test, IP:192.0.2.10"), "{s}");
    assert_eq!(field(s, "OCSP"), "http://ocsp.example.test/root");
    assert_eq!(
        field(s, "CRL distribution"),
        "http://crl.example.test/root.crl, http://crl2.example.test/root.crl, ldap://ldap.example.test/cn=crl"
    );
    assert_eq!(field(s, "Authority key id"), c.aki.as_deref().expect("aki"));
    assert_eq!(field(s, "Subject key id"), c.ski.as_deref().expect("ski"));
    assert_eq!(field(s, "First seen"), "2026-06-01T00:00:00Z");
    assert!(s.contains("Sightings (5 current, 0 gone):"), "{s}");
    for file in ["bundle.pem", "chain.p7b", "modern.p12", "plain.p12", "key.jks"] {
        let loc = sb.path(&format!("certs/web/{file}"));
        assert!(s.contains(&format!("  web: {} [", loc.display())), "sighting in {file}:\n{s}");
    }
    assert!(s.contains("[block 1]") && s.contains("[alias \"web\"]"), "sighting details name the block and alias:\n{s}");
    let history: Vec<&str> = s.split("History:").nth(1).expect("history section").lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(history.len(), 5, "discovered once, then sighted in four more objects:\n{s}");
    assert_eq!(history.iter().filter(|l| l.contains(" discovered web: ")).count(), 1, "{s}");
    assert_eq!(history.iter().filter(|l| l.contains(" sighted web: ")).count(), 4, "{s}");
    assert!(history.iter().all(|l| l.trim_start().starts_with("2026-06-01T00:00:00Z")), "{s}");

    // Upper case, colons, and the JSON form.
    let colons: String = c.fingerprint[..12]
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let out = sb.run(&["show", &colons, "-o", "json"]).expect_code(0);
    let v = out.json();
    assert_eq!(v["certificate"]["fingerprint"], c.fingerprint.as_str());
    assert_eq!(v["status"], "valid");
    assert_eq!(v["days_left"], 364);
    assert_eq!(v["sightings"].as_array().map(Vec::len), Some(5));
    assert_eq!(v["history"][0]["event"], "discovered");
}

#[test]
fn show_by_serial_and_as_pem() {
    let sb = scanned();
    let f = fixtures();
    let out = sb.run(&["show", "1005"]).expect_code(0);
    assert!(out.stdout.starts_with(&format!("Certificate {}", f.codesign.cert.fingerprint)), "{}", out.stdout);
    assert!(field(&out.stdout, "Extended key usage").contains("[code signing identity]"), "{}", out.stdout);
    assert_eq!(field(&out.stdout, "Key"), format!("EC P-384 (SPKI SHA-256 {})", f.codesign.cert.spki_sha256));
    // A serial with its sign octet, or without it as openssl prints it, or lower case.
    for q in ["008FAB", "8FAB", "8fab"] {
        let out = sb.run(&["show", q]).expect_code(0);
        assert!(out.stdout.starts_with(&format!("Certificate {}", f.expired.cert.fingerprint)), "{q}: {}", out.stdout);
        assert_eq!(field(&out.stdout, "Not after"), "2026-05-21T23:59:55Z (-11 days left, expired)", "{q}");
    }
    let ca = sb.run(&["show", &f.root.cert.fingerprint[..8]]).expect_code(0);
    assert_eq!(field(&ca.stdout, "CA"), "yes, path length 1");
    assert_eq!(field(&ca.stdout, "Self-issued"), "yes");
    let pem = sb.run(&["show", "--pem", &f.rsa.cert.fingerprint[..8]]).expect_code(0);
    let p = certvigil::x509::parse_object(pem.stdout.as_bytes(), &[]);
    assert_eq!(p.certs.len(), 1);
    assert_eq!(p.certs[0].der, f.rsa.cert.der, "show --pem returns the stored DER exactly");
}

#[test]
fn show_ambiguous_unknown_and_too_short_queries() {
    let f = fixtures();
    let sb = Sandbox::new();
    sb.config("sources:\n  - {name: web, kind: files, paths: [certs]}\n");
    // Two certificates whose fingerprints share 4 hex digits.
    let (a, b, prefix) = fingerprint_twins(4);
    sb.write("certs/a.pem", &a.pem);
    sb.write("certs/b.pem", &b.pem);
    // Two issuers may use the same serial: `show SERIAL` is then ambiguous too.
    let same_serial = issue(Spec::leaf("same-serial", "other.example.test", &[0x10, 0x01], -DAY, 30 * DAY, KeyKind::P256), Some(&f.inter));
    sb.write("certs/valid.pem", &f.valid.cert.pem);
    sb.write("certs/same-serial.pem", &same_serial.cert.pem);
    sb.run(&["scan"]).expect_code(0);

    let out = sb.run(&["show", &prefix]).expect_code(2);
    assert!(out.stderr.contains(&format!("`{prefix}` matches 2 certificates")), "{}", out.stderr);
    assert!(out.stderr.contains(&a.fingerprint) && out.stderr.contains(&b.fingerprint), "both candidates listed:\n{}", out.stderr);
    // One more digit disambiguates (the twins differ somewhere after the prefix).
    let longer = &a.fingerprint[..a.fingerprint.chars().zip(b.fingerprint.chars()).take_while(|(x, y)| x == y).count() + 1];
    sb.run(&["show", longer]).expect_code(0);

    let out = sb.run(&["show", "1001"]).expect_code(2);
    assert!(out.stderr.contains("matches 2 certificates"), "{}", out.stderr);

    // Too short for a fingerprint prefix, and no certificate's name: said what is accepted.
    let out = sb.run(&["show", "abc"]).expect_code(1);
    assert!(out.stderr.contains("no certificate matches `abc`") && out.stderr.contains("4+ hex digits"), "{}", out.stderr);
    let out = sb.run(&["show", "ffffffffffffffffffff"]).expect_code(1);
    assert!(out.stderr.contains("no certificate matches"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------------
// The inventory over several scans

const CERT_ROWS: &str = "SELECT * FROM certificates ORDER BY id";
const SIGHTING_ROWS: &str = "SELECT * FROM sightings ORDER BY id";
const HISTORY_ROWS: &str = "SELECT * FROM cert_history ORDER BY id";
const OBJECT_ROWS: &str = "SELECT * FROM objects ORDER BY source, location";

#[test]
fn rescan_of_unchanged_files_reads_and_rewrites_nothing() {
    let sb = scanned();
    let before = {
        let db = sb.db();
        (dump(&db, CERT_ROWS), dump(&db, SIGHTING_ROWS), dump(&db, HISTORY_ROWS), dump(&db, OBJECT_ROWS))
    };
    let later = NOW + 3600;
    let out = with_passwords(&sb, later, &["scan", "-o", "json"]).expect_code(0);
    let v = out.json();
    assert_eq!(v["run"]["objects_read"], 0, "{v}");
    assert_eq!(v["run"]["objects_seen"], 13);
    assert_eq!(v["run"]["certs_seen"], 21, "unchanged objects still count their certificates");
    assert_eq!(v["run"]["certs_new"], 0);
    let after = {
        let db = sb.db();
        (dump(&db, CERT_ROWS), dump(&db, SIGHTING_ROWS), dump(&db, HISTORY_ROWS), dump(&db, OBJECT_ROWS))
    };
    assert_eq!(before.0, after.0, "certificates rows rewritten");
    assert_eq!(before.1, after.1, "sightings rows rewritten (last_seen must not be touched per scan)");
    assert_eq!(before.2, after.2, "history grew on an unchanged rescan");
    assert_eq!(before.3, after.3, "objects rows rewritten");
    let last_seen: Vec<i64> = {
        let db = sb.db();
        let mut stmt = db.prepare("SELECT last_seen FROM sightings").expect("prepare");
        stmt.query_map([], |r| r.get(0)).expect("query").collect::<Result<_, _>>().expect("rows")
    };
    assert!(last_seen.iter().all(|t| *t == NOW), "{last_seen:?}");
    // ... yet the sightings are reported as confirmed by the latest scan.
    let f = fixtures();
    let show = sb.run(&["show", &f.valid.cert.fingerprint[..12], "-o", "json"]).expect_code(0).json();
    let sightings = show["sightings"].as_array().expect("sightings");
    assert_eq!(sightings.len(), 5, "the valid leaf is in five places: {show:#}");
    for s in sightings {
        assert_eq!(s["last_seen"], later, "{s}");
        assert_eq!(s["first_seen"], NOW, "{s}");
    }
    let db = sb.db();
    let runs: i64 = db.query_row("SELECT COUNT(*) FROM scan_runs WHERE status = 'ok'", [], |r| r.get(0)).expect("count");
    assert_eq!(runs, 2);
}

#[test]
fn touched_file_with_same_content_is_read_but_not_parsed() {
    let sb = scanned();
    let history_before = dump(&sb.db(), HISTORY_ROWS);
    let certs_before = dump(&sb.db(), CERT_ROWS);
    // Rewrite identical bytes: new mtime/ctime, same content.
    let p = sb.path("certs/web/bundle.pem");
    let bytes = std::fs::read(&p).expect("read");
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&p, bytes).expect("rewrite");
    let v = with_passwords(&sb, NOW + 60, &["scan", "-o", "json"]).expect_code(0).json();
    assert_eq!(v["run"]["objects_read"], 1, "{v}");
    assert_eq!(v["run"]["certs_seen"], 21);
    assert_eq!(dump(&sb.db(), HISTORY_ROWS), history_before);
    assert_eq!(dump(&sb.db(), CERT_ROWS), certs_before);
    // And the next scan reads nothing again.
    let v = with_passwords(&sb, NOW + 120, &["scan", "-o", "json"]).expect_code(0).json();
    assert_eq!(v["run"]["objects_read"], 0, "{v}");
}

fn history_events(sb: &Sandbox, query: &str) -> Vec<String> {
    let v = sb.run(&["show", query, "-o", "json"]).expect_code(0).json();
    v["history"].as_array().expect("history").iter().map(|h| h["event"].as_str().expect("event").to_string()).collect()
}

#[test]
fn deleted_file_marks_its_certificate_gone_and_restoring_it_returns() {
    let sb = scanned();
    let f = fixtures();
    let rsa_fp = &f.rsa.cert.fingerprint[..16];
    let rsa_file = sb.path("certs/web/rsa.crt");
    std::fs::remove_file(&rsa_file).expect("delete");
    // The bundle goes too: its certificates stay current through their other sightings.
    std::fs::remove_file(sb.path("certs/web/bundle.pem")).expect("delete");
    let t1 = NOW + 3600;
    let v = with_passwords(&sb, t1, &["scan", "-o", "json"]).expect_code(0).json();
    assert_eq!(v["run"]["certs_gone"], 1, "{v}");
    let web = v["sources"].as_array().expect("sources").iter().find(|s| s["name"] == "web").expect("web").clone();
    assert_eq!(web["vanished"], 2);

    // Gone, not deleted.
    let current = names(&list_json(&sb, &[]));
    assert!(!current.contains(&"rsa.example.test".to_string()), "{current:?}");
    assert_eq!(current.len(), 9);
    let all = list_json(&sb, &["--all"]);
    let rsa = all.iter().find(|r| r["name"] == "rsa.example.test").expect("listed with --all");
    assert_eq!(rsa["gone_since"], t1);
    assert_eq!(rsa["current_sightings"], 0);
    assert_eq!(rsa["sources"], serde_json::json!(["web"]), "a gone certificate still says where it was");
    let table = sb.run(&["list", "--all"]).expect_code(0);
    let row = table.stdout.lines().find(|l| l.starts_with("rsa.example.test")).expect("row");
    assert!(row.split_whitespace().any(|c| c == "gone"), "{row}");
    let db = sb.db();
    let n: i64 =
        db.query_row("SELECT COUNT(*) FROM certificates WHERE fingerprint = ?1", [&f.rsa.cert.fingerprint], |r| r.get(0)).expect("count");
    assert_eq!(n, 1, "the row is kept");
    assert_eq!(history_events(&sb, rsa_fp), ["discovered", "unsighted", "gone"]);
    let show = sb.run(&["show", rsa_fp]).expect_code(0);
    assert_eq!(field(&show.stdout, "Gone since"), "2026-06-01T01:00:00Z");
    assert!(show.stdout.contains("Sightings (0 current, 1 gone):"), "{}", show.stdout);
    assert!(show.stdout.contains("gone since 2026-06-01T01:00:00Z"), "{}", show.stdout);

    // The valid leaf lost one of five sightings and is not gone.
    let valid = sb.run(&["show", &f.valid.cert.fingerprint[..16]]).expect_code(0);
    assert!(valid.stdout.contains("Sightings (4 current, 1 gone):"), "{}", valid.stdout);
    assert!(!valid.stdout.contains("Gone since"), "{}", valid.stdout);
    assert_eq!(history_events(&sb, &f.valid.cert.fingerprint[..16]).last().map(String::as_str), Some("unsighted"));

    // A scan later, still gone, and nothing new in its history.
    with_passwords(&sb, t1 + 60, &["scan"]).expect_code(0);
    assert_eq!(history_events(&sb, rsa_fp), ["discovered", "unsighted", "gone"]);

    // Restored: it returns, with its first sighting time kept.
    std::fs::write(&rsa_file, &f.rsa.cert.pem).expect("restore");
    let t2 = NOW + 7200;
    let v = with_passwords(&sb, t2, &["scan", "-o", "json"]).expect_code(0).json();
    assert_eq!(v["run"]["certs_new"], 0, "a returning certificate is not new");
    let events = history_events(&sb, rsa_fp);
    assert_eq!(&events[..3], ["discovered", "unsighted", "gone"]);
    assert!(events[3..].contains(&"returned".to_string()), "{events:?}");
    let rows = list_json(&sb, &[]);
    let rsa = rows.iter().find(|r| r["name"] == "rsa.example.test").expect("listed again");
    assert!(rsa["gone_since"].is_null());
    assert_eq!(rsa["first_seen"], NOW);
    assert_eq!(rsa["current_sightings"], 1);
}

#[test]
fn same_certificate_in_two_files_is_one_certificate_with_two_sightings() {
    let f = fixtures();
    let sb = Sandbox::new();
    sb.config("sources:\n  - {name: a, kind: files, paths: [one]}\n  - {name: b, kind: files, paths: [two]}\n");
    sb.write("one/x.pem", &f.valid.cert.pem);
    sb.write("one/copy.der", &f.valid.cert.der);
    sb.write("two/y.crt", &f.valid.cert.pem);
    let v = sb.run(&["scan", "-o", "json"]).expect_code(0).json();
    assert_eq!(v["run"]["certs_seen"], 3);
    assert_eq!(v["run"]["certs_new"], 1);
    let db = sb.db();
    let certs: i64 = db.query_row("SELECT COUNT(*) FROM certificates", [], |r| r.get(0)).expect("count");
    assert_eq!(certs, 1);
    let sightings = dump(&db, "SELECT source, location, detail FROM sightings ORDER BY source, location");
    let t = |s: &str| format!("Text({s:?})");
    let loc = |rel: &str| t(&sb.path(rel).display().to_string());
    assert_eq!(
        sightings,
        [
            [t("a"), loc("one/copy.der"), t("certificate")],
            [t("a"), loc("one/x.pem"), t("block 1")],
            [t("b"), loc("two/y.crt"), t("block 1")],
        ]
    );
    let rows = list_json(&sb, &[]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["current_sightings"], 3);
    let mut sources: Vec<&str> = rows[0]["sources"].as_array().expect("sources").iter().filter_map(|s| s.as_str()).collect();
    sources.sort_unstable();
    assert_eq!(sources, ["a", "b"]);
    let show = sb.run(&["show", &f.valid.cert.fingerprint[..8]]).expect_code(0);
    assert!(show.stdout.contains("Sightings (3 current, 0 gone):"), "{}", show.stdout);
    // The same certificate twice in one file is one sighting.
    sb.write("two/y.crt", format!("{}{}", f.valid.cert.pem, f.valid.cert.pem));
    let v = sb.run_at(NOW + 60, &["scan", "-o", "json"]).expect_code(0).json();
    assert_eq!(v["run"]["certs_seen"], 3, "{v}");
    let n: i64 = sb.db().query_row("SELECT COUNT(*) FROM sightings", [], |r| r.get(0)).expect("count");
    assert_eq!(n, 3);
}

#[test]
fn unreachable_directory_is_an_error_and_does_not_mark_its_certificates_gone() {
    let f = fixtures();
    let sb = Sandbox::new();
    sb.config("sources:\n  - {name: web, kind: files, paths: [certs/a, certs/b]}\n");
    sb.write("certs/a/one.pem", &f.valid.cert.pem);
    sb.write("certs/a/two.pem", &f.rsa.cert.pem);
    sb.write("certs/b/three.pem", &f.codesign.cert.pem);
    sb.run(&["scan"]).expect_code(0);
    // certs/b disappears (an unmounted share); in certs/a one file is really deleted.
    std::fs::rename(sb.path("certs/b"), sb.path("certs/b.unmounted")).expect("rename");
    std::fs::remove_file(sb.path("certs/a/two.pem")).expect("delete");
    let t1 = NOW + 600;
    let out = sb.run_at(t1, &["scan", "-o", "json"]).expect_code(4);
    let v = out.json();
    assert_eq!(v["run"]["errors"], 1, "{v}");
    assert_eq!(v["run"]["certs_gone"], 1, "only the deleted file's certificate: {v}");
    let errors = v["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["location"], sb.path("certs/b").display().to_string());
    assert!(
        errors[0]["message"].as_str().is_some_and(|m| m.starts_with("cannot list: ") && m.contains("No such file or directory")),
        "{errors:?}"
    );
    let text = sb.run_at(t1 + 1, &["scan"]).expect_code(4);
    assert!(text.stdout.contains(&format!("  web: {}: cannot list: ", sb.path("certs/b").display())), "{}", text.stdout);

    // Unknown is not gone.
    let current = sorted(names(&list_json(&sb, &[])));
    assert_eq!(current, ["certvigil Code Signing", "valid.example.test"]);
    let db = sb.db();
    let gone: Option<i64> = db
        .query_row(
            "SELECT s.gone_since FROM sightings s JOIN certificates c ON c.id = s.cert_id WHERE c.fingerprint = ?1",
            [&f.codesign.cert.fingerprint],
            |r| r.get(0),
        )
        .expect("sighting");
    assert_eq!(gone, None);
    assert_eq!(history_events(&sb, &f.codesign.cert.fingerprint[..12]), ["discovered"]);
    assert_eq!(history_events(&sb, &f.rsa.cert.fingerprint[..12]), ["discovered", "unsighted", "gone"]);

    // Back again: read normally, nothing returned because nothing was gone.
    std::fs::rename(sb.path("certs/b.unmounted"), sb.path("certs/b")).expect("rename back");
    sb.run_at(t1 + 60, &["scan"]).expect_code(0);
    assert_eq!(history_events(&sb, &f.codesign.cert.fingerprint[..12]), ["discovered"]);
}

/// After a scan that exited 4, `certvigil errors` must say why — also when the problem was a
/// directory that could not be listed or a secret that could not be resolved, not only an
/// unreadable file.
#[test]
fn errors_explains_every_problem_of_the_last_scan() {
    let f = fixtures();
    let sb = Sandbox::new();
    sb.config("sources:\n  - {name: web, kind: files, paths: [certs/a, certs/missing], passwords: ['${env:CV_TEST_SURELY_UNSET}']}\n");
    sb.write("certs/a/one.pem", &f.valid.cert.pem);
    let mut cmd = sb.command_at(NOW);
    cmd.arg("scan").env_remove("CV_TEST_SURELY_UNSET");
    let scan = run_with_timeout(cmd, RUN_LIMIT).expect_code(4);
    assert!(scan.stdout.contains("cannot list") && scan.stdout.contains("CV_TEST_SURELY_UNSET"), "{}", scan.stdout);
    let errs = sb.run(&["errors"]).expect_code(0);
    assert!(
        errs.stdout.contains(&sb.path("certs/missing").display().to_string()),
        "`certvigil errors` after a scan that exited 4 does not mention the directory it could not list:\n{}",
        errs.stdout
    );
    assert!(errs.stdout.contains("CV_TEST_SURELY_UNSET"), "`certvigil errors` does not mention the unresolved secret:\n{}", errs.stdout);
}

#[test]
fn fifo_in_the_scanned_directory_does_not_hang_the_scan() {
    let f = fixtures();
    let sb = Sandbox::new();
    sb.write("certs/a.pem", &f.valid.cert.pem);
    tool("mkfifo", &[sb.path("certs/pipe.pem").to_str().expect("utf-8 path")], Path::new("."));
    // Named in the tree and named explicitly.
    sb.config("sources:\n  - {name: dir, kind: files, paths: [certs]}\n  - {name: direct, kind: files, paths: [certs/pipe.pem]}\n");
    let start = std::time::Instant::now();
    let v = sb.run(&["scan", "-o", "json"]).expect_code(0).json();
    assert!(start.elapsed() < std::time::Duration::from_secs(60));
    assert_eq!(v["run"]["objects_seen"], 1, "the FIFO is not an object: {v}");
    assert_eq!(v["run"]["certs_new"], 1);
}

/// Linux file names are bytes: one that is not UTF-8 is read like any other and shown lossily,
/// in a plain directory and under a glob; two names that differ only in their invalid bytes
/// stay two objects.
#[test]
fn file_names_that_are_not_utf8_are_read_and_shown_lossily() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let f = fixtures();
    let sb = Sandbox::new();
    let (certs, twins) = (sb.path("certs"), sb.path("twins"));
    std::fs::create_dir_all(&certs).expect("mkdir");
    std::fs::create_dir_all(&twins).expect("mkdir");
    std::fs::write(certs.join(OsStr::from_bytes(b"cert-\xff.pem")), &f.valid.cert.pem).expect("write");
    std::fs::write(twins.join(OsStr::from_bytes(b"twin-\xfe.pem")), &f.rsa.cert.pem).expect("write");
    std::fs::write(twins.join(OsStr::from_bytes(b"twin-\xff.pem")), &f.codesign.cert.pem).expect("write");
    sb.config(
        "sources:\n  - {name: dir, kind: files, paths: [certs]}\n  - {name: glob, kind: files, paths: ['certs/*.pem']}\n  - {name: twins, kind: files, paths: [twins]}\n",
    );
    let v = sb.run(&["scan", "-o", "json"]).expect_code(0).json();
    assert_eq!(v["run"]["errors"], 0, "{v}");
    assert_eq!(v["run"]["objects_seen"], 4, "{v}");
    assert_eq!(v["run"]["certs_new"], 3, "{v}");
    assert_eq!(sorted(names(&list_json(&sb, &[]))), ["certvigil Code Signing", "rsa.example.test", "valid.example.test"]);

    let lossy = format!("{}/cert-\u{FFFD}.pem", certs.display());
    let show = sb.run(&["show", &f.valid.cert.fingerprint[..16]]).expect_code(0).stdout;
    assert!(show.contains(&format!("  dir: {lossy} [")) && show.contains(&format!("  glob: {lossy} [")), "{show}");
    // Listed in name order, \xFE first: it is shown lossily; \xFF would then read the same,
    // so its invalid byte is shown as an escape.
    let show = sb.run(&["show", &f.rsa.cert.fingerprint[..16]]).expect_code(0).stdout;
    assert!(show.contains(&format!("  twins: {}/twin-\u{FFFD}.pem [", twins.display())), "{show}");
    let show = sb.run(&["show", &f.codesign.cert.fingerprint[..16]]).expect_code(0).stdout;
    assert!(show.contains(&format!("  twins: {}/twin-\\xFF.pem [", twins.display())), "{show}");

    // A rescan finds the same objects under the same locations: nothing is gone.
    let v = sb.run_at(NOW + 60, &["scan", "-o", "json"]).expect_code(0).json();
    assert_eq!(v["run"]["errors"], 0, "{v}");
    assert_eq!(v["run"]["certs_gone"], 0, "{v}");
    assert_eq!(names(&list_json(&sb, &[])).len(), 3);
}

#[test]
fn file_larger_than_max_file_size_is_a_clear_error() {
    let f = fixtures();
    let sb = Sandbox::new();
    sb.config("sources:\n  - {name: web, kind: files, paths: [certs], max_file_size: 2KiB}\n");
    let big = sb.write("certs/big.pem", pem_bundle_with_junk(&[&f.valid.cert, &f.inter.cert, &f.root.cert]));
    sb.write("certs/small.der", &f.codesign.cert.der);
    let size = std::fs::metadata(&big).expect("meta").len();
    assert!(size > 2048, "fixture must exceed the limit");
    let out = sb.run(&["scan"]).expect_code(4);
    let msg = format!("{}: file is {size} bytes, larger than max_file_size (2048 bytes); not read", big.display());
    assert!(out.stdout.contains(&msg), "{}", out.stdout);
    let errs = sb.run(&["errors"]).expect_code(0);
    assert_eq!(errs.stdout.trim(), format!("web: {msg}"));
    assert_eq!(names(&list_json(&sb, &[])), ["certvigil Code Signing"]);
}

#[test]
fn symlink_loops_do_not_stop_the_scan() {
    let f = fixtures();
    let sb = Sandbox::new();
    sb.config("sources:\n  - {name: web, kind: files, paths: [certs]}\n");
    sb.write("certs/a.pem", &f.valid.cert.pem);
    sb.write("certs/sub/b.pem", &f.rsa.cert.pem);
    std::os::unix::fs::symlink("..", sb.path("certs/sub/up")).expect("symlink");
    std::os::unix::fs::symlink(".", sb.path("certs/self")).expect("symlink");
    // A second name for a file: the same file is read once per scan.
    std::os::unix::fs::symlink("a.pem", sb.path("certs/alias.pem")).expect("symlink");
    let v = sb.run(&["scan", "-o", "json"]).expect_code(0).json();
    assert_eq!(v["run"]["objects_seen"], 2, "{v}");
    assert_eq!(v["run"]["certs_new"], 2);
    assert_eq!(v["run"]["errors"], 0);

    // A loop of file links (a.pem -> b.pem -> a.pem) is reported, and the scan still finishes.
    std::os::unix::fs::symlink("loop2.pem", sb.path("certs/loop1.pem")).expect("symlink");
    std::os::unix::fs::symlink("loop1.pem", sb.path("certs/loop2.pem")).expect("symlink");
    let v = sb.run_at(NOW + 60, &["scan", "-o", "json"]).expect_code(4).json();
    assert_eq!(v["run"]["objects_seen"], 4, "{v}");
    assert_eq!(v["run"]["errors"], 2, "{v}");
    assert_eq!(v["run"]["certs_gone"], 0);
}

#[test]
fn pkcs12_password_from_the_environment() {
    let f = fixtures();
    let c = containers();
    let sb = Sandbox::new();
    sb.config("sources:\n  - name: web\n    kind: files\n    paths: [certs]\n    passwords: [\"${env:CV_TEST_P12_PASSWORD}\"]\n");
    sb.write("certs/web.p12", &c.p12_modern);

    // Not set: the secret error and the wrong-password error are both reported.
    let out = run_env(&sb, NOW, &[], &["scan"]).expect_code(4);
    assert!(
        out.stdout.contains(
            "web: (configuration): source web: secret ${env:CV_TEST_P12_PASSWORD}: environment variable CV_TEST_P12_PASSWORD is not set"
        ),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("PKCS#12: wrong password"), "{}", out.stdout);
    let errs = sb.run(&["errors"]).expect_code(0);
    assert!(errs.stdout.contains(&format!("web: {}: PKCS#12: wrong password", sb.path("certs/web.p12").display())), "{}", errs.stdout);
    assert!(list_json(&sb, &[]).is_empty());

    // Set: the same file opens (it is re-read because its last read failed).
    let out = run_env(&sb, NOW + 60, &[(P12_ENV, P12_PASSWORD)], &["scan", "-o", "json"]).expect_code(0);
    assert_eq!(out.json()["run"]["certs_new"], 2);
    assert!(!out.stdout.contains(P12_PASSWORD), "the password never appears in output");
    let got = sorted(names(&list_json(&sb, &[])));
    assert_eq!(got, ["certvigil Test Root CA", "valid.example.test"]);
    assert_eq!(sb.run(&["errors"]).expect_code(0).stdout.trim(), "no read errors");
    let show = sb.run(&["show", &f.valid.cert.fingerprint[..8]]).expect_code(0);
    assert!(show.stdout.contains("[bag ") && show.stdout.contains("\"web\"]"), "{}", show.stdout);
}

/// A PKCS#12 whose key derivation would cost more than the per-file budget is an error for
/// that file alone: the scan reads everything else and finishes promptly.
#[test]
fn pkcs12_over_the_key_derivation_budget_is_an_error_and_the_scan_goes_on() {
    let f = fixtures();
    let sb = Sandbox::new();
    sb.write("certs/leaf.pem", &f.valid.cert.pem);
    sb.write("certs/leaf.key", &f.valid.cert.key_pem);
    let pass = format!("pass:{P12_PASSWORD}");
    let args = ["pkcs12", "-export", "-in", "leaf.pem", "-inkey", "leaf.key", "-out", "hostile.p12", "-passout", &pass];
    tool("openssl", &[&args[..], &["-iter", "9000000", "-certpbe", "NONE", "-keypbe", "NONE"]].concat(), &sb.path("certs"));
    std::fs::remove_file(sb.path("certs/leaf.key")).expect("rm");
    sb.config(
        "sources:\n  - name: web\n    kind: files\n    paths: [certs]\n    passwords: ['${env:CV_W1}', '${env:CV_W2}', '${env:CV_W3}', '${env:CV_TEST_P12_PASSWORD}']\n",
    );
    let env = [("CV_W1", "one"), ("CV_W2", "two"), ("CV_W3", "three"), (P12_ENV, P12_PASSWORD)];
    let start = std::time::Instant::now();
    let out = run_env(&sb, NOW, &env, &["scan"]).expect_code(4);
    // Loose on purpose: uncapped, this file took seconds in a release build, and far longer here.
    assert!(start.elapsed() < std::time::Duration::from_secs(30), "{:?}", start.elapsed());
    let errs = sb.run(&["errors"]).expect_code(0).stdout;
    let hostile = sb.path("certs/hostile.p12");
    assert!(
        errs.contains(&format!(
            "web: {}: PKCS#12: key derivation over the per-file cap: MAC check with password 1 of 5",
            hostile.display()
        )) && errs.contains("iteration count 9000000"),
        "{errs}\n{}",
        out.stdout
    );
    assert_eq!(names(&list_json(&sb, &[])), ["valid.example.test"]);
}

#[test]
fn now_accepts_rfc3339_as_documented() {
    let sb = scanned();
    let unix = sb.run(&["list", "-o", "json"]).expect_code(0).json();
    let mut cmd = certvigil();
    cmd.arg("-c").arg(sb.config_path()).args(["--now", "2026-06-01T00:00:00Z", "list", "-o", "json"]);
    let rfc = run_with_timeout(cmd, RUN_LIMIT).expect_code(0).json();
    assert_eq!(unix, rfc);
    let mut cmd = certvigil();
    cmd.arg("-c").arg(sb.config_path()).args(["--now", "yesterday", "list"]);
    let bad = run_with_timeout(cmd, RUN_LIMIT);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("neither Unix seconds nor RFC 3339"), "{}", bad.stderr);
    // CERTVIGIL_NOW works like --now.
    let mut cmd = certvigil();
    cmd.arg("-c")
        .arg(sb.config_path())
        .env("CERTVIGIL_NOW", (NOW + 366 * DAY).to_string())
        .args(["list", "-o", "json", "--status", "expired"]);
    let later = run_with_timeout(cmd, RUN_LIMIT).expect_code(0).json();
    assert!(names(later.as_array().expect("array")).contains(&"valid.example.test".to_string()));
}

// ---------------------------------------------------------------------------------------------
// inspect

#[test]
fn inspect_reads_files_without_the_store() {
    let f = fixtures();
    let c = containers();
    let sb = Sandbox::new();
    let good = sb.write("x/chain.p7b", &c.pkcs7_der);
    let p12 = sb.write("x/web.p12", &c.p12_modern);
    let mut cmd = certvigil();
    cmd.args(["--now", &NOW.to_string(), "inspect"]).arg(&good).arg(&p12).args(["--password-env", P12_ENV]).env(P12_ENV, P12_PASSWORD);
    let out = run_with_timeout(cmd, RUN_LIMIT).expect_code(0);
    assert!(out.stdout.contains(&format!("{} (PKCS#7): 2 certificate(s), 0 key(s)", good.display())), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("{} (PKCS#12): 2 certificate(s), 1 key(s)", p12.display())), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("valid.example.test  expires 2027-05-31 (364 days)  EC P-256  sha256 {}", f.valid.cert.fingerprint)),
        "{}",
        out.stdout
    );
    assert!(!sb.store_path().exists());

    // Without the password: exit 4 and the error, JSON form.
    let mut cmd = certvigil();
    cmd.args(["--now", &NOW.to_string(), "inspect", "-o", "json"]).arg(&p12);
    let out = run_with_timeout(cmd, RUN_LIMIT).expect_code(4);
    let v = out.json();
    assert_eq!(v[0]["format"], "Pkcs12");
    assert!(v[0]["errors"][0].as_str().is_some_and(|e| e.contains("wrong password")), "{v}");
    // A missing password variable is a usage error.
    let mut cmd = certvigil();
    cmd.args(["inspect", "--password-env", "CV_TEST_SURELY_UNSET"]).arg(&p12).env_remove("CV_TEST_SURELY_UNSET");
    run_with_timeout(cmd, RUN_LIMIT).expect_code(2);
}

#[test]
fn schedule_lists_jobs_with_their_next_fire_times_in_their_zone() {
    let sb = Sandbox::new();
    sb.config(
        "sources: []\njobs:\n  - {name: nightly, kind: scan, schedule: '30 2 * * *', timezone: Europe/Berlin, jitter: 5m}\n  - {name: quarter, kind: evaluate, schedule: '0 */15 * * * *'}\n",
    );
    // 2026-03-28T12:00:00Z: the next night has no 02:30 in Berlin (DST starts), so the run
    // happens right after the gap.
    let out = run_env(&sb, 1774699200, &[], &["schedule", "--count", "2", "-o", "json"]).expect_code(0).json();
    let jobs = out.as_array().expect("array");
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0]["name"], "nightly");
    assert_eq!(jobs[0]["jitter_seconds"], 300);
    assert_eq!(jobs[0]["next"][0], "2026-03-29T01:00:00Z");
    assert_eq!(jobs[0]["next"][1], "2026-03-30T00:30:00Z");
    assert_eq!(jobs[1]["next"][0], "2026-03-28T12:15:00Z", "six fields: seconds first");
    assert!(
        jobs[0]["description"].as_str().unwrap_or("").contains("02:30") || jobs[0]["description"].as_str().unwrap_or("").contains("2:30"),
        "{}",
        jobs[0]["description"]
    );
    sb.config("jobs: [{name: x, kind: scan, schedule: 'every day'}]\n");
    let bad = sb.run(&["config", "validate"]).expect_code(2);
    assert!(bad.stderr.contains("jobs[0].schedule"), "{}", bad.stderr);
}

#[test]
fn audit_log_records_actions_and_verify_names_a_tampered_entry() {
    let sb = scanned();
    let f = fixtures();
    sb.run(&["silence", "add", &f.valid.cert.fingerprint[..16], "--for", "1d", "--reason", "maintenance", "--by", "alice"]).expect_code(0);
    let entries = sb.run(&["audit", "list", "-o", "json"]).expect_code(0).json();
    let actions: Vec<&str> = entries.as_array().expect("array").iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions.first(), Some(&"scan"), "{actions:?}");
    assert!(actions.contains(&"silence"), "{actions:?}");
    let silence = entries.as_array().expect("array").iter().find(|e| e["action"] == "silence").expect("silence entry");
    assert_eq!(silence["actor"], "alice");
    let intact = sb.run(&["audit", "verify"]).expect_code(0);
    assert!(intact.stdout.contains("intact"), "{}", intact.stdout);
    {
        let db = sb.db();
        assert!(db.execute("UPDATE audit_log SET actor = 'mallory' WHERE action = 'silence'", []).is_err(), "append-only");
        db.execute_batch("DROP TRIGGER audit_log_no_update").expect("drop trigger");
        db.execute("UPDATE audit_log SET actor = 'mallory' WHERE action = 'silence'", []).expect("tamper");
    }
    let id = silence["id"].as_i64().expect("id");
    let broken = sb.run(&["audit", "verify"]).expect_code(1);
    assert!(broken.stdout.contains(&format!("BROKEN at entry {id}")), "{}", broken.stdout);
}
