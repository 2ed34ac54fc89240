//! Pebble harness shared by the ACME test binaries: starts pebble-challtestsrv (a DNS server
//! that answers 127.0.0.1 for every name, with a management API for TXT records) and Pebble on
//! ephemeral loopback ports, with Pebble's HTTP-01 validation port set to a port certvigil's
//! built-in challenge listener can use. Pebble's default of rejecting 5% of nonces is left on.

#![allow(dead_code, clippy::unwrap_used)]

use crate::common::{Run, Sandbox, certvigil, run_with_timeout};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub fn require(bin: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain(["/usr/bin", "/usr/sbin"]) {
        let p = Path::new(dir).join(bin);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{bin}` is required by the ACME tests and is not installed. Run tests/components/acme.sh (or tests/run.sh)")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub fn free_udp_tcp_port() -> u16 {
    loop {
        let p = free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64
}

pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn wait_port(port: u16, what: &str, log: &Path) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(30) {
            panic!("{what} did not listen on {port}; log:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub struct Pebble {
    pub _dns: Kill,
    pub _pebble: Kill,
    pub dir: tempfile::TempDir,
    pub directory: String,
    /// Trust for Pebble's own HTTPS listener.
    pub tls_ca: PathBuf,
    /// The root of the certificates Pebble issues (new at every start).
    pub root: PathBuf,
    /// Where Pebble validates HTTP-01.
    pub http_port: u16,
    /// pebble-challtestsrv's management API (`/set-txt`, `/clear-txt`).
    pub dns_mgmt: u16,
    /// pebble-challtestsrv's DNS server (UDP and TCP), for other CAs' resolvers.
    pub dns_port: u16,
    /// Pebble's management API (HTTPS: `/roots/0`, `/cert-status-by-serial/<hex>`).
    pub mgmt: u16,
}

impl Pebble {
    pub fn start() -> Pebble {
        Pebble::start_with(serde_json::json!({}))
    }

    /// Starts Pebble with `options` merged into the `pebble` object of its configuration (for
    /// example `externalAccountBindingRequired` and `externalAccountMACKeys`).
    pub fn start_with(options: serde_json::Value) -> Pebble {
        Pebble::start_full(options, 0)
    }

    /// Starts Pebble refusing `percent`% of the nonces it is given (`badNonce`, RFC 8555 §6.5).
    /// The other tests keep Pebble from refusing any, so that only this one depends on retries.
    pub fn start_refusing_nonces(percent: u8) -> Pebble {
        Pebble::start_full(serde_json::json!({}), percent)
    }

    fn start_full(options: serde_json::Value, nonce_reject: u8) -> Pebble {
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
        let mut config = config;
        if let (Some(obj), Some(extra)) = (config["pebble"].as_object_mut(), options.as_object()) {
            for (k, v) in extra {
                obj.insert(k.clone(), v.clone());
            }
        }
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
            .env("PEBBLE_WFE_NONCEREJECT", nonce_reject.to_string())
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
        Pebble {
            _dns: dns_child,
            _pebble: child,
            directory: format!("https://127.0.0.1:{listen}/dir"),
            tls_ca,
            root,
            http_port,
            dns_mgmt,
            dns_port: dns,
            mgmt,
            dir,
        }
    }

    pub fn managed(&self, identifier: &str, listen_port: u16) -> String {
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

pub fn renew(sb: &Sandbox, args: &[&str]) -> Run {
    renew_env(sb, args, &[])
}

pub fn openssl(args: &[&str], dir: &Path) -> String {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The stored ACME accounts (`state/acme/account-*.json`).
pub fn account_files(sb: &Sandbox) -> Vec<PathBuf> {
    match std::fs::read_dir(sb.path("state/acme")) {
        Ok(rd) => {
            let mut v: Vec<PathBuf> = rd
                .map(|e| e.expect("entry").path())
                .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("account-")))
                .collect();
            v.sort();
            v
        }
        Err(_) => Vec::new(),
    }
}

/// The issuer block of a managed certificate for this Pebble (YAML, indented for `issuer:`).
impl Pebble {
    pub fn issuer_yaml(&self, extra: &str) -> String {
        format!(
            "    issuer:\n      directory: {}\n      contact: ['mailto:ops@example.org']\n      ca_bundle: {}\n{extra}",
            self.directory,
            self.tls_ca.display()
        )
    }
}

/// `renew` with extra environment variables (secret references).
pub fn renew_env(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = certvigil();
    cmd.arg("-c").arg(sb.config_path()).arg("renew").args(args).current_dir(sb.dir.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_with_timeout(cmd, Duration::from_secs(180))
}

/// Any `certvigil` subcommand against the sandbox's configuration.
pub fn certvigil_in(sb: &Sandbox, args: &[&str]) -> Run {
    let mut cmd = certvigil();
    cmd.arg("-c").arg(sb.config_path()).args(args).current_dir(sb.dir.path());
    run_with_timeout(cmd, Duration::from_secs(180))
}

/// A dns-01 hook script (lego's exec interface) that sets and clears TXT records through
/// pebble-challtestsrv's management API and logs each call to `<dir>/hook.log`.
pub fn dns_hook_script(dir: &Path, mgmt_port: u16) -> PathBuf {
    let log = dir.join("hook.log");
    let script = format!(
        r#"#!/bin/sh
set -eu
echo "$1 $2 $3" >> '{log}'
case "$1" in
  present) curl -fsS -X POST -d "{{\"host\":\"$2\",\"value\":\"$3\"}}" http://127.0.0.1:{mgmt_port}/set-txt ;;
  cleanup) curl -fsS -X POST -d "{{\"host\":\"$2\"}}" http://127.0.0.1:{mgmt_port}/clear-txt ;;
  *) echo "unknown action $1" >&2; exit 2 ;;
esac
"#,
        log = log.display()
    );
    let path = dir.join("dns-hook.sh");
    std::fs::write(&path, script).expect("write hook");
    path
}

/// Names of the entries of `dir`, sorted (empty when it does not exist).
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}
