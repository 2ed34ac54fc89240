//! The TLS endpoint source against real servers on loopback: `openssl s_server` serving a
//! valid chain with a stapled OCSP response (made by `openssl ocsp` from an index file), an
//! expired leaf and a certificate for another host; aiosmtpd requiring STARTTLS; and a port
//! nothing listens on. The real `certvigil scan` inventories the served chains and records,
//! per endpoint, the protocol, the verification verdict and the stapled response.
//! Certificates are made at test time relative to the real clock: a TLS client verifies with
//! the real clock, not `--now`.

// Test helpers: a failed setup step should stop the test where it happened.
#![allow(clippy::unwrap_used)]

use crate::alerting;
use crate::common;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DAY: i64 = 86_400;

fn real_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn at(t: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t).unwrap()
}

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca(dir: &Path) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "certvigil TLS test CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.not_before = at(real_now() - 10 * DAY);
    p.not_after = at(real_now() + 365 * DAY);
    let cert = p.self_signed(&key).unwrap();
    std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("ca.key"), key.serialize_pem()).unwrap();
    Ca { pem: cert.pem(), issuer: Issuer::new(p, key) }
}

/// A leaf for `names`, valid from `from` to `to` (real time), written as NAME.pem/NAME.key.
fn leaf(dir: &Path, ca: &Ca, name: &str, names: &[&str], serial: u8, from: i64, to: i64) -> PathBuf {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, names[0]);
    p.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName((*n).try_into().unwrap()),
        })
        .collect();
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&[serial]));
    p.not_before = at(from);
    p.not_after = at(to);
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    dir.join(format!("{name}.pem"))
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("openssl is required (tests/run.sh installs it): {e}"));
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A DER OCSP response saying `good` for NAME.pem, signed by the CA, made by `openssl ocsp`
/// from an index file as a CA's responder would.
fn ocsp_response(dir: &Path, name: &str, serial: u8) -> PathBuf {
    std::fs::write(dir.join("index.txt"), format!("V\t351231000000Z\t\t{serial:02X}\tunknown\t/CN={name}\n")).unwrap();
    let cert = format!("{name}.pem");
    openssl(dir, &["ocsp", "-issuer", "ca.pem", "-cert", &cert, "-no_nonce", "-reqout", "req.der"]);
    let out = format!("{name}.ocsp.der");
    openssl(
        dir,
        &[
            "ocsp",
            "-index",
            "index.txt",
            "-rsigner",
            "ca.pem",
            "-rkey",
            "ca.key",
            "-CA",
            "ca.pem",
            "-reqin",
            "req.der",
            "-respout",
            &out,
            "-ndays",
            "2",
        ],
    );
    dir.join(out)
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `openssl s_server` on a free loopback port, serving NAME.pem with the CA as chain.
fn s_server(dir: &Path, name: &str, ocsp: Option<&Path>) -> (Server, u16) {
    for _ in 0..5 {
        let port = alerting::free_port();
        let accept = format!("127.0.0.1:{port}");
        let (cert, key) = (format!("{name}.pem"), format!("{name}.key"));
        let mut args = vec!["s_server", "-accept", &accept, "-cert", &cert, "-key", &key, "-cert_chain", "ca.pem", "-quiet"];
        let status_file;
        if let Some(o) = ocsp {
            status_file = o.to_string_lossy().into_owned();
            args.extend(["-status_file", &status_file]);
        }
        let child = Command::new("openssl")
            .args(&args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server (tests/run.sh installs openssl)");
        let mut server = Server(child);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (server, port);
            }
            if let Ok(Some(_)) = server.0.try_wait() {
                break; // the port was taken meanwhile: try another
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = server.0.kill();
    }
    panic!("openssl s_server did not start");
}

fn sighting_meta(sb: &Sandbox, fingerprint: &str) -> serde_json::Value {
    let show = sb.run(&["show", fingerprint, "-o", "json"]).expect_code(0).json();
    let sightings = show["sightings"].as_array().unwrap_or_else(|| panic!("no sightings: {show:#}"));
    sightings
        .iter()
        .find(|s| s["source"] == "endpoints")
        .and_then(|s| s.get("meta"))
        .cloned()
        .unwrap_or_else(|| panic!("no meta: {show:#}"))
}

fn fingerprint_of(pem: &Path) -> String {
    let der = rustls_pemfile_der(&std::fs::read_to_string(pem).unwrap());
    sha256_hex(&der)
}

fn rustls_pemfile_der(pem: &str) -> Vec<u8> {
    use base64ct::Encoding;
    let b64: String = pem.lines().take_while(|l| !l.starts_with("-----END")).filter(|l| !l.starts_with("-----")).collect();
    base64ct::Base64::decode_vec(&b64).unwrap()
}

#[test]
fn endpoints_chains_verification_stapling_and_starttls() {
    let sb = Sandbox::new();
    let dir = sb.path("pki");
    std::fs::create_dir_all(&dir).unwrap();
    let now = real_now();
    let ca = ca(&dir);
    let good = leaf(&dir, &ca, "good", &["localhost", "127.0.0.1"], 1, now - DAY, now + 30 * DAY);
    let expired = leaf(&dir, &ca, "expired", &["localhost", "127.0.0.1"], 2, now - 60 * DAY, now - DAY);
    let other = leaf(&dir, &ca, "other", &["other.example.test"], 3, now - DAY, now + 30 * DAY);
    let ocsp = ocsp_response(&dir, "good", 1);
    let (_s1, p_good) = s_server(&dir, "good", Some(&ocsp));
    let (_s2, p_expired) = s_server(&dir, "expired", None);
    let (_s3, p_other) = s_server(&dir, "other", None);
    let smtp_tls = alerting::smtp_tls_files(&sb.path("smtp"));
    let smtp = alerting::SmtpServer::start_tls(&smtp_tls);
    let closed = alerting::free_port();
    // One bundle trusting both test CAs.
    let bundle = format!("{}{}", ca.pem, std::fs::read_to_string(&smtp_tls.ca).unwrap());
    sb.write("trust.pem", bundle);
    sb.config(&format!(
        "sources:
  - name: endpoints
    kind: tls
    ca_bundle: trust.pem
    timeout: 5s
    targets:
      - {{address: '127.0.0.1:{p_good}', sni: localhost}}
      - {{address: '127.0.0.1:{p_expired}', sni: localhost}}
      - {{address: '127.0.0.1:{p_other}', sni: localhost}}
      - {{address: '127.0.0.1:{}', sni: localhost, starttls: smtp}}
      - '127.0.0.1:{closed}'
",
        smtp.port
    ));
    sb.run(&["config", "validate"]).expect_code(0);
    let scan = sb.run(&["scan", "-o", "json"]).expect_code(4).json();
    // Four endpoints answered; the closed port is one error naming it.
    assert_eq!(scan["run"]["errors"], 1, "{scan:#}");
    let errors = scan["errors"].as_array().unwrap();
    assert!(errors[0]["location"].as_str().unwrap().contains(&closed.to_string()), "{errors:?}");
    assert!(errors[0]["message"].as_str().unwrap().contains("connect"), "{errors:?}");

    let m = sighting_meta(&sb, &fingerprint_of(&good));
    assert_eq!(m["verified"], true, "{m:#}");
    assert_eq!(m["protocol"], "TLSv1_3", "{m:#}");
    assert_eq!(m["chain_length"], 2);
    assert_eq!(m["stapled_ocsp"]["present"], true, "{m:#}");
    assert_eq!(m["stapled_ocsp"]["status"], "good", "{m:#}");

    let m = sighting_meta(&sb, &fingerprint_of(&expired));
    assert_eq!(m["verified"], false, "{m:#}");
    assert!(m["verify_error"].as_str().unwrap_or("").to_lowercase().contains("expired"), "{m:#}");
    assert_eq!(m["stapled_ocsp"]["present"], false);

    let m = sighting_meta(&sb, &fingerprint_of(&other));
    assert_eq!(m["verified"], false, "{m:#}");
    assert!(m["verify_error"].as_str().unwrap_or("").contains("name"), "{m:#}");

    let m = sighting_meta(&sb, &fingerprint_of(&smtp_tls.cert));
    assert_eq!((m["verified"].as_bool(), m["starttls"].as_str()), (Some(true), Some("smtp")), "{m:#}");

    // The CA was served in every chain: one certificate, sighted at the three s_server endpoints.
    let ca_fp = sha256_hex(&rustls_pemfile_der(&ca.pem));
    let show = sb.run(&["show", &ca_fp, "-o", "json"]).expect_code(0).json();
    assert_eq!(show["sightings"].as_array().map(Vec::len), Some(3), "{show:#}");

    // Findings: the wrong-host leaf is served where clients reject it; the expired one is
    // reported as expired (once), the good one not at all.
    let plan = sb.run_at(now, &["plan", "-o", "json"]).expect_code(0).json();
    let kinds_of = |fp: &str| -> Vec<String> {
        plan["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["fingerprint"] == fp)
            .map(|f| f["kind"].as_str().unwrap().to_string())
            .collect()
    };
    let other_kinds = kinds_of(&fingerprint_of(&other));
    assert_eq!(other_kinds, vec!["untrusted-endpoint"], "{plan:#}");
    let reason = plan["findings"].as_array().unwrap().iter().find(|f| f["kind"] == "untrusted-endpoint").unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains(&format!("127.0.0.1:{p_other} (localhost)")), "{reason}");
    // (It is also superseded: the good leaf has the same subject and names and is newer.)
    let expired_kinds = kinds_of(&fingerprint_of(&expired));
    assert!(
        expired_kinds.contains(&"expired".to_string()) && !expired_kinds.contains(&"untrusted-endpoint".to_string()),
        "{expired_kinds:?}"
    );
    // (The good leaf may count as superseded by aiosmtpd's certificate, made later for the same
    // name: the check cannot know they are different services.)
    assert!(kinds_of(&fingerprint_of(&good)).iter().all(|k| k == "superseded"), "{plan:#}");

    // The expired leaf is listed as expired by the ordinary status, whatever the endpoint says.
    let list = sb.run_at(now, &["list", "-o", "json", "--status", "expired"]).expect_code(0).json();
    let fps: Vec<&str> = list.as_array().unwrap().iter().filter_map(|c| c["fingerprint"].as_str()).collect();
    assert_eq!(fps, vec![fingerprint_of(&expired).as_str()]);
}

#[test]
fn bad_endpoint_configuration_is_refused() {
    let sb = Sandbox::new();
    sb.config(
        "sources:
  - name: e
    kind: tls
    targets: ['no-port.example', {address: 'a.example:99999'}, 'c.example:443', 'c.example:443']
    timeout: 1h
",
    );
    let r = sb.run(&["config", "validate"]).expect_code(2);
    for want in [
        "sources[0].targets[0]: `no-port.example` has no port",
        "targets[1]",
        "targets[3]: `c.example:443` is listed twice",
        "sources[0].timeout",
    ] {
        assert!(r.stderr.contains(want), "missing {want:?} in:\n{}", r.stderr);
    }
    sb.config("sources:\n  - name: e\n    kind: tls\n    targets: [{address: 'b.example:110', starttls: pop3}]\n");
    let r = sb.run(&["config", "validate"]).expect_code(2);
    assert!(r.stderr.contains("sources[0].targets[0]"), "{}", r.stderr);
}

#[test]
fn the_example_configuration_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/sources-tls.yaml");
    let mut cmd = certvigil();
    cmd.arg("-c").arg(&example).args(["config", "validate"]);
    run_with_timeout(cmd, RUN_LIMIT).expect_code(0);
}
