//! `certvigil renew` against a real Pebble ACME server (Debian's `pebble` package, installed by
//! `tests/components/acme.sh`). Each test starts its own pebble-challtestsrv (a DNS server that
//! answers 127.0.0.1 for every name) and Pebble on ephemeral loopback ports, with Pebble's
//! HTTP-01 validation port set to the port of certvigil's built-in challenge listener. Pebble's
//! default of rejecting 5% of nonces is left on: retrying them is the ACME client's job.

mod common;

use common::{Run, Sandbox, certvigil, run_with_timeout};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn require(bin: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain(["/usr/bin", "/usr/sbin"]) {
        let p = Path::new(dir).join(bin);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{bin}` is required by the ACME tests and is not installed. Run tests/components/acme.sh (or tests/run.sh)")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn free_udp_tcp_port() -> u16 {
    loop {
        let p = free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(port: u16, what: &str, log: &Path) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(30) {
            panic!("{what} did not listen on {port}; log:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Pebble {
    _dns: Kill,
    _pebble: Kill,
    dir: tempfile::TempDir,
    directory: String,
    /// Trust for Pebble's own HTTPS listener.
    tls_ca: PathBuf,
    /// The root of the certificates Pebble issues (new at every start).
    root: PathBuf,
    /// Where Pebble validates HTTP-01.
    http_port: u16,
}

impl Pebble {
    fn start() -> Pebble {
        let pebble = require("pebble");
        let challtestsrv = require("pebble-challtestsrv");
        require("openssl");
        let dir = tempfile::tempdir().expect("tempdir");
        // Pebble's HTTPS certificate.
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params.subject_alt_names.push(rcgen::SanType::IpAddress("127.0.0.1".parse().expect("ip")));
        let cert = params.self_signed(&key).expect("self-signed");
        let tls_ca = dir.path().join("pebble-tls.pem");
        std::fs::write(&tls_ca, cert.pem()).expect("write");
        std::fs::write(dir.path().join("pebble-tls.key"), key.serialize_pem()).expect("write");

        let (listen, mgmt, http_port, tls_port) = (free_port(), free_port(), free_port(), free_port());
        let (dns, dns_mgmt) = (free_udp_tcp_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt}"),
            "certificate": dir.path().join("pebble-tls.pem"),
            "privateKey": dir.path().join("pebble-tls.key"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        std::fs::write(dir.path().join("pebble.json"), config.to_string()).expect("write");
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).expect("log");
        let dns_child = Command::new(challtestsrv)
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}"), "-management", &format!("127.0.0.1:{dns_mgmt}")])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .expect("start pebble-challtestsrv");
        let dns_child = Kill(dns_child);
        wait_port(dns_mgmt, "pebble-challtestsrv", &dir.path().join("challtestsrv.err"));
        let child = Command::new(pebble)
            .arg("-config")
            .arg(dir.path().join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env_remove("PEBBLE_WFE_NONCEREJECT")
            .env_remove("PEBBLE_VA_ALWAYS_VALID")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start pebble");
        let child = Kill(child);
        wait_port(listen, "pebble", &dir.path().join("pebble.log"));
        wait_port(mgmt, "pebble management", &dir.path().join("pebble.log"));
        let root = dir.path().join("pebble-root.pem");
        let out = Command::new("openssl")
            .args(["s_client", "-quiet", "-connect", &format!("127.0.0.1:{mgmt}"), "-servername", "localhost", "-verify_return_error"])
            .arg("-CAfile")
            .arg(&tls_ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().expect("stdin").write_all(b"GET /roots/0 HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
                c.wait_with_output()
            })
            .expect("fetch Pebble's root");
        let text = String::from_utf8_lossy(&out.stdout);
        let pem = text.find("-----BEGIN CERTIFICATE-----").map(|i| &text[i..]).expect("root PEM in /roots/0");
        std::fs::write(&root, pem).expect("write root");
        Pebble { _dns: dns_child, _pebble: child, directory: format!("https://127.0.0.1:{listen}/dir"), tls_ca, root, http_port, dir }
    }

    fn managed(&self, identifier: &str, listen_port: u16) -> String {
        format!(
            "managed:
  - name: web
    identifiers: [{identifier}]
    issuer:
      directory: {}
      contact: ['mailto:ops@example.org']
      ca_bundle: {}
    key: p256
    challenge: {{type: http-01, listen: '127.0.0.1:{listen_port}'}}
    install:
      cert: tls/cert.pem
      chain: tls/chain.pem
      fullchain: tls/fullchain.pem
      key: tls/key.pem
      mode: '0640'
sources:
  - name: tls
    kind: files
    paths: [tls]
",
            self.directory,
            self.tls_ca.display()
        )
    }
}

fn renew(sb: &Sandbox, args: &[&str]) -> Run {
    let mut cmd = certvigil();
    cmd.arg("-c").arg(sb.config_path()).arg("renew").args(args).current_dir(sb.dir.path());
    run_with_timeout(cmd, Duration::from_secs(180))
}

fn openssl(args: &[&str], dir: &Path) -> String {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn account_files(sb: &Sandbox) -> Vec<PathBuf> {
    match std::fs::read_dir(sb.path("state/acme")) {
        Ok(rd) => rd.map(|e| e.expect("entry").path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn renew_issues_installs_reuses_the_account_and_keeps_previous_files() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    let port = pebble.http_port;
    sb.config(&pebble.managed("web.certvigil.test", port));
    let tls = sb.path("tls");

    // First run: nothing installed, so it is due.
    let run = renew(&sb, &[]).expect_code(0);
    assert!(run.stdout.contains("web: renewed (no certificate installed)"), "{}", run.stdout);

    // The fullchain verifies up to Pebble's root; cert/chain split it correctly.
    let root = pebble.root.to_string_lossy().into_owned();
    let v = openssl(&["verify", "-CAfile", &root, "-untrusted", "chain.pem", "cert.pem"], &tls);
    assert!(v.contains("cert.pem: OK"), "{v}");
    let full = String::from_utf8(read(&tls.join("fullchain.pem"))).expect("utf8");
    let cert = String::from_utf8(read(&tls.join("cert.pem"))).expect("utf8");
    let chain = String::from_utf8(read(&tls.join("chain.pem"))).expect("utf8");
    assert_eq!(full, format!("{cert}{chain}"));
    // The key is private and matches the certificate.
    let mode = |f: &str| std::fs::metadata(tls.join(f)).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode("key.pem"), 0o600);
    assert_eq!(mode("cert.pem"), 0o640);
    let cert_pub = openssl(&["x509", "-noout", "-pubkey", "-in", "cert.pem"], &tls);
    let key_pub = openssl(&["pkey", "-pubout", "-in", "key.pem"], &tls);
    assert_eq!(cert_pub, key_pub);
    let subject = openssl(&["x509", "-noout", "-ext", "subjectAltName", "-in", "cert.pem"], &tls);
    assert!(subject.contains("DNS:web.certvigil.test"), "{subject}");

    // One account, stored 0600.
    let accounts = account_files(&sb);
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert_eq!(std::fs::metadata(&accounts[0]).expect("stat").permissions().mode() & 0o777, 0o600);
    let account = read(&accounts[0]);

    // Not due: nothing happens.
    let run = renew(&sb, &[]).expect_code(0);
    assert!(run.stdout.contains("web: not due"), "{}", run.stdout);
    assert_eq!(read(&tls.join("cert.pem")), cert.as_bytes());
    assert!(!tls.join("cert.pem.previous").exists());

    // Forced: a new certificate and key; the old ones are kept as .previous.
    let old_key = read(&tls.join("key.pem"));
    let run = renew(&sb, &["web", "--force"]).expect_code(0);
    assert!(run.stdout.contains("web: renewed (forced)"), "{}", run.stdout);
    assert_eq!(read(&tls.join("cert.pem.previous")), cert.as_bytes());
    assert_eq!(read(&tls.join("fullchain.pem.previous")), full.as_bytes());
    assert_eq!(read(&tls.join("key.pem.previous")), old_key);
    assert_eq!(mode("key.pem.previous"), 0o600);
    assert_ne!(read(&tls.join("cert.pem")), cert.as_bytes());
    assert_ne!(read(&tls.join("key.pem")), old_key);
    let v = openssl(&["verify", "-CAfile", &root, "-untrusted", "chain.pem", "cert.pem"], &tls);
    assert!(v.contains("cert.pem: OK"), "{v}");
    assert_eq!(openssl(&["x509", "-noout", "-pubkey", "-in", "cert.pem"], &tls), openssl(&["pkey", "-pubout", "-in", "key.pem"], &tls));

    // The account was reused, not registered again.
    assert_eq!(account_files(&sb), accounts);
    assert_eq!(read(&accounts[0]), account);

    // Each renewal is in the audit log.
    let audit = sb
        .db()
        .prepare("SELECT detail FROM audit_log WHERE action = 'renew' ORDER BY id")
        .expect("prepare")
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows");
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(audit[0].contains("\"new_account\":true") && audit[1].contains("\"new_account\":false"), "{audit:?}");

    // A scan of the install directory puts the new certificate in the inventory.
    sb.run_at(unix_now(), &["scan"]).expect_code(0);
    let fp = openssl(&["x509", "-noout", "-fingerprint", "-sha256", "-in", "cert.pem"], &tls);
    let fp = fp.trim().rsplit('=').next().expect("fingerprint").replace(':', "").to_ascii_lowercase();
    let list = sb.run_at(unix_now(), &["list", "-o", "json"]).expect_code(0).json();
    let fps: Vec<String> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["fingerprint"].as_str().unwrap_or_default().replace(':', "").to_ascii_lowercase())
        .collect();
    assert!(fps.contains(&fp), "{fp} not in {fps:?}");
    drop(pebble.dir);
}

#[test]
fn failed_order_leaves_installed_files_untouched() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    sb.config(&pebble.managed("good.certvigil.test", pebble.http_port));
    renew(&sb, &[]).expect_code(0);
    let tls = sb.path("tls");
    let before: Vec<(String, Vec<u8>)> =
        ["cert.pem", "chain.pem", "fullchain.pem", "key.pem"].iter().map(|f| (f.to_string(), read(&tls.join(f)))).collect();

    // The listener is on a port Pebble does not validate: the challenge fails. A new
    // identifier, so no earlier authorization can be reused.
    let elsewhere = free_port();
    sb.config(&pebble.managed("other.certvigil.test", elsewhere));
    let run = renew(&sb, &["--force"]).expect_code(1);
    assert!(run.stderr.contains("web: renewal failed"), "{}", run.stderr);
    let e = run.stderr.to_ascii_lowercase();
    assert!(e.contains("invalid") || e.contains("connection"), "{}", run.stderr);
    for (f, bytes) in &before {
        assert_eq!(&read(&tls.join(f)), bytes, "{f} changed");
        assert!(!tls.join(format!("{f}.previous")).exists(), "{f}.previous written");
    }
    let names: Vec<String> =
        std::fs::read_dir(&tls).expect("dir").map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 4, "stray files: {names:?}");
    let failed: i64 = sb.db().query_row("SELECT count(*) FROM audit_log WHERE action = 'renew-failed'", [], |r| r.get(0)).expect("count");
    assert_eq!(failed, 1);
}
