//! A real test PKI for revocation tests: a CA run by `openssl ca` (index.txt database,
//! revocations with reasons, CRLs from `openssl ca -gencrl`, delta CRLs with a deltaCRLIndicator,
//! a delegated OCSP responder certificate) and, on the shared loopback HTTP server of
//! `tests/common/http.rs`, an endpoint that
//!
//! * serves CRL files with a strong ETag and answers `If-None-Match` with 304, as web servers
//!   and CDNs do for static CRLs;
//! * answers OCSP GET (RFC 5019) and POST requests by running the real responder,
//!   `openssl ocsp -index … -reqin … -respout …` (we don't use `openssl ocsp -port`, which binds
//!   every interface);
//! * can be told to misbehave: refuse (down), stall past the client timeout, return garbage,
//!   sign with an unrelated key, or replay an earlier response (wrong nonce);
//! * counts the requests it receives per path.
//!
//! Nothing here fakes a status: every CRL and OCSP response is produced by openssl from its CA
//! database. If openssl is missing the tests fail.

#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use crate::common::http::{HttpServer, Mode, Request, Response};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl must be installed (tests/run.sh installs it)");
    assert!(out.status.success(), "openssl {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How the OCSP endpoint behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcspMode {
    /// The real responder, signing with the delegated responder certificate.
    Delegated,
    /// The real responder, signing with the CA key itself.
    ByCa,
    /// Signed by a responder certificate from an unrelated CA.
    UnrelatedKey,
    /// Replays the first response it produced (its nonce will not match later requests).
    Replay,
    /// Answers with bytes that are not an OCSP response.
    Garbage,
    /// Waits 5 s before answering (longer than the tests' client timeout).
    Slow,
    /// Answers `tryLater`.
    TryLater,
    /// Serves the recorded response in `www/ocsp.der`, whatever was asked.
    Recorded,
}

struct State {
    dir: PathBuf,
    ocsp_mode: Mutex<OcspMode>,
    first_response: Mutex<Option<Vec<u8>>>,
    ocsp_requests: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

/// The CA's loopback HTTP server (the shared one of `tests/common/http.rs`).
pub struct Server {
    pub port: u16,
    http: HttpServer,
    state: Arc<State>,
}

impl Server {
    pub fn start(dir: &Path) -> Server {
        let state = Arc::new(State {
            dir: dir.to_path_buf(),
            ocsp_mode: Mutex::new(OcspMode::Delegated),
            first_response: Mutex::new(None),
            ocsp_requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
        });
        let st = Arc::clone(&state);
        let http = HttpServer::start(move |req| handle(req, &st));
        Server { port: http.port, http, state }
    }

    pub fn url(&self, path: &str) -> String {
        self.http.url(path)
    }

    pub fn set_ocsp(&self, mode: OcspMode) {
        *self.state.ocsp_mode.lock().unwrap() = mode;
    }

    /// While down, every connection is closed without an answer.
    pub fn set_down(&self, down: bool) {
        self.http.set_mode(if down { Mode::Refuse } else { Mode::Serve });
    }

    pub fn hits(&self, path: &str) -> u64 {
        self.http.hits(path)
    }

    pub fn ocsp_requests(&self) -> u64 {
        self.state.ocsp_requests.load(Ordering::SeqCst)
    }

    pub fn max_in_flight(&self) -> u64 {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
}

fn handle(req: &Request, st: &State) -> Response {
    let path = req.target.as_str();
    if path.starts_with("/ocsp") {
        let n = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        st.max_in_flight.fetch_max(n, Ordering::SeqCst);
        st.ocsp_requests.fetch_add(1, Ordering::SeqCst);
        let ocsp_req = if req.method == "POST" {
            req.body.clone()
        } else {
            let b64 = path.trim_start_matches("/ocsp").trim_start_matches('/').replace("%2B", "+").replace("%2F", "/").replace("%3D", "=");
            decode_b64(&b64)
        };
        let result = ocsp_answer(st, &ocsp_req);
        st.in_flight.fetch_sub(1, Ordering::SeqCst);
        return match result {
            Some(resp) => Response::ok(resp).header("Content-Type", "application/ocsp-response"),
            None => Response::empty(400),
        };
    }
    let file = st.dir.join("www").join(path.trim_start_matches('/'));
    match std::fs::read(&file) {
        Ok(data) => {
            let etag = format!("\"{}\"", sha256_hex(&data));
            if req.header("if-none-match") == Some(etag.as_str()) {
                return Response::empty(304).header("ETag", etag);
            }
            Response::ok(data).header("ETag", etag).header("Content-Type", "application/pkix-crl")
        }
        Err(_) => Response::new(404, "not found"),
    }
}

fn ocsp_answer(st: &State, req: &[u8]) -> Option<Vec<u8>> {
    let mode = *st.ocsp_mode.lock().unwrap();
    match mode {
        OcspMode::Garbage => return Some(b"<html>not an OCSP response</html>".to_vec()),
        OcspMode::TryLater => return Some(vec![0x30, 0x03, 0x0a, 0x01, 0x03]),
        OcspMode::Recorded => return std::fs::read(st.dir.join("www/ocsp.der")).ok(),
        OcspMode::Slow => std::thread::sleep(Duration::from_secs(5)),
        OcspMode::Replay => {
            if let Some(first) = st.first_response.lock().unwrap().clone() {
                return Some(first);
            }
        }
        _ => {}
    }
    let tmp = tempfile::tempdir().ok()?;
    let (reqf, respf) = (tmp.path().join("req.der"), tmp.path().join("resp.der"));
    std::fs::write(&reqf, req).ok()?;
    let d = &st.dir;
    let (signer, key) = match mode {
        OcspMode::ByCa => (d.join("ca.crt"), d.join("ca.key")),
        OcspMode::UnrelatedKey => (d.join("other/ocsp.crt"), d.join("other/ocsp.key")),
        _ => (d.join("ocsp.crt"), d.join("ocsp.key")),
    };
    let out = Command::new("openssl")
        .args(["ocsp", "-index"])
        .arg(d.join("index.txt"))
        .arg("-CA")
        .arg(d.join("ca.crt"))
        .arg("-rsigner")
        .arg(&signer)
        .arg("-rkey")
        .arg(&key)
        .args(["-ndays", "1", "-reqin"])
        .arg(&reqf)
        .arg("-respout")
        .arg(&respf)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("openssl ocsp failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let resp = std::fs::read(&respf).ok()?;
    st.first_response.lock().unwrap().get_or_insert_with(|| resp.clone());
    Some(resp)
}

fn decode_b64(s: &str) -> Vec<u8> {
    use base64ct::{Base64, Encoding};
    Base64::decode_vec(s).unwrap_or_default()
}

/// Signing options for a CA with an RSA-PSS key: PSS padding with a hash-length salt.
fn pss_opts(dir: &Path) -> Vec<&'static str> {
    if dir.join("pss").exists() { vec!["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"] } else { vec![] }
}

/// AlgorithmIdentifier ecdsa-with-SHA256 (RFC 5758 §3.2: no parameters).
pub const ECDSA_SHA256: [u8; 12] = [0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];

/// One DER TLV holding the concatenated parts.
pub fn der(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    certvigil::x509::ber::encode(tag, &parts.concat())
}

/// DER UTCTime / GeneralizedTime of a Unix time; `fraction` appends `.fraction` (digits).
pub fn utc_time(t: i64) -> Vec<u8> {
    let (y, mo, d, h, mi, s) = certvigil::model::civil_from_unix(t).unwrap();
    der(0x17, &[format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z", y % 100).as_bytes()])
}

pub fn generalized_time(t: i64, fraction: Option<&str>) -> Vec<u8> {
    let (y, mo, d, h, mi, s) = certvigil::model::civil_from_unix(t).unwrap();
    let frac = fraction.map(|f| format!(".{f}")).unwrap_or_default();
    der(0x18, &[format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}{frac}Z").as_bytes()])
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Key algorithm of a test CA.
#[derive(Debug, Clone, Copy)]
pub enum KeyKind {
    EcP256,
    EcP384,
    Rsa1024,
    Rsa2048,
    RsaPss,
    Ed25519,
}

impl KeyKind {
    fn args(self) -> Vec<&'static str> {
        match self {
            KeyKind::EcP256 => vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            KeyKind::EcP384 => vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
            KeyKind::Rsa1024 => vec!["-newkey", "rsa:1024"],
            KeyKind::Rsa2048 => vec!["-newkey", "rsa:2048"],
            KeyKind::RsaPss => vec!["-newkey", "rsa-pss", "-pkeyopt", "rsa_keygen_bits:2048"],
            KeyKind::Ed25519 => vec!["-newkey", "ed25519"],
        }
    }
}

/// A CA run by `openssl ca`, with its HTTP endpoint.
pub struct TestCa {
    pub dir: PathBuf,
    pub server: Server,
    crl_counter: Mutex<u32>,
    /// Validity of the next certificate issued, in days (`None`: the CA's default of 60).
    days: Mutex<Option<u32>>,
}

const CNF: &str = r#"
[ ca ]
default_ca = testca
[ testca ]
dir = .
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
crlnumber = $dir/crlnumber
certificate = $dir/ca.crt
private_key = $dir/ca.key
default_md = sha256
default_days = 60
default_crl_days = 7
policy = policy_any
copy_extensions = copy
unique_subject = no
[ policy_any ]
commonName = supplied
[ leaf_ext ]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
authorityKeyIdentifier = keyid
authorityInfoAccess = OCSP;URI:http://127.0.0.1:PORT/ocsp, caIssuers;URI:http://127.0.0.1:PORT/ca.crt
crlDistributionPoints = URI:http://127.0.0.1:PORT/ca.crl
[ crl_only_ext ]
basicConstraints = CA:FALSE
keyUsage = digitalSignature
authorityKeyIdentifier = keyid
crlDistributionPoints = URI:http://127.0.0.1:PORT/ca.crl
[ ocsp_only_ext ]
basicConstraints = CA:FALSE
keyUsage = digitalSignature
authorityKeyIdentifier = keyid
authorityInfoAccess = OCSP;URI:http://127.0.0.1:PORT/ocsp
[ bare_ext ]
basicConstraints = CA:FALSE
keyUsage = digitalSignature
authorityKeyIdentifier = keyid
[ ocsp_ext ]
basicConstraints = CA:FALSE
keyUsage = digitalSignature
extendedKeyUsage = OCSPSigning
noCheck = ignored
authorityKeyIdentifier = keyid
[ subca_ext ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
authorityKeyIdentifier = keyid
subjectKeyIdentifier = hash
crlDistributionPoints = URI:http://127.0.0.1:PORT/ca.crl
[ crlissuer_ext ]
basicConstraints = CA:FALSE
keyUsage = digitalSignature
authorityKeyIdentifier = keyid
crlDistributionPoints = crldp_indirect
[ crldp_indirect ]
fullname = URI:http://127.0.0.1:PORT/ca.crl
CRLissuer = dirName:crl_issuer_dn
[ crl_issuer_dn ]
CN = certvigil CRL Issuer
[ crl_ext ]
authorityKeyIdentifier = keyid
[ crl_fresh_ext ]
authorityKeyIdentifier = keyid
freshestCRL = URI:http://127.0.0.1:PORT/delta.crl
"#;

impl TestCa {
    /// Creates the CA in `dir` (with an unrelated second CA in `dir/other` for forgery tests)
    /// and starts its HTTP endpoint.
    pub fn new(dir: &Path, kind: KeyKind) -> TestCa {
        std::fs::create_dir_all(dir.join("www")).unwrap();
        let server = Server::start(dir);
        let ca = TestCa { dir: dir.to_path_buf(), server, crl_counter: Mutex::new(0), days: Mutex::new(None) };
        ca.init(dir, kind, "certvigil Test CA");
        // Same subject name, different key: what a forger would present.
        let other = dir.join("other");
        ca.init(&other, KeyKind::EcP256, "certvigil Test CA");
        ca.issue_in(&other, "ocsp", "ocsp_ext");
        ca.issue("ocsp", "ocsp_ext");
        std::fs::copy(dir.join("ca.crt"), dir.join("www/ca.crt")).unwrap();
        ca.publish_crl();
        ca
    }

    fn init(&self, dir: &Path, kind: KeyKind, cn: &str) {
        std::fs::create_dir_all(dir.join("newcerts")).unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "1000\n").unwrap();
        std::fs::write(dir.join("crlnumber"), "1000\n").unwrap();
        std::fs::write(dir.join("ca.cnf"), CNF.replace("PORT", &self.server.port.to_string())).unwrap();
        let mut args = vec!["req", "-x509"];
        args.extend(kind.args());
        if matches!(kind, KeyKind::RsaPss) {
            // RFC 4055's recommended salt (= hash length); OpenSSL's default is the maximum.
            args.extend(["-sigopt", "rsa_pss_saltlen:digest"]);
            std::fs::write(dir.join("pss"), "").unwrap();
        }
        let subj = format!("/CN={cn}");
        args.extend(["-nodes", "-days", "365", "-subj", &subj, "-keyout", "ca.key", "-out", "ca.crt"]);
        args.extend([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "subjectKeyIdentifier=hash",
        ]);
        openssl(dir, &args);
    }

    fn issue_in(&self, dir: &Path, name: &str, ext: &str) -> PathBuf {
        let subj = format!("/CN={name}.example.test");
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                &subj,
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        let mut args = vec!["ca", "-batch", "-config", "ca.cnf", "-extensions", ext];
        let days = self.days.lock().unwrap().map(|d| d.to_string());
        if let Some(d) = &days {
            args.extend(["-days", d.as_str()]);
        }
        args.extend(pss_opts(dir));
        let (csr, crt) = (format!("{name}.csr"), format!("{name}.crt"));
        args.extend(["-in", &csr, "-out", &crt]);
        openssl(dir, &args);
        openssl(dir, &["x509", "-in", &format!("{name}.crt"), "-out", &format!("{name}.crt")]);
        dir.join(format!("{name}.crt"))
    }

    /// Issues a leaf with CRL DP, OCSP and caIssuers pointing at this CA's endpoint (`ext`
    /// picks another profile: `crl_only_ext`, `ocsp_only_ext`, `bare_ext`).
    pub fn issue(&self, name: &str, ext: &str) -> PathBuf {
        self.issue_in(&self.dir, name, ext)
    }

    /// [`issue`](Self::issue) valid for `days` days from now instead of the CA's 60 (a
    /// short-lived certificate at 10 or fewer).
    pub fn issue_for_days(&self, name: &str, ext: &str, days: u32) -> PathBuf {
        *self.days.lock().unwrap() = Some(days);
        let p = self.issue_in(&self.dir, name, ext);
        *self.days.lock().unwrap() = None;
        p
    }

    /// Revokes with a reason (`keyCompromise`, `superseded`, `certificateHold`, …).
    pub fn revoke(&self, name: &str, reason: &str) {
        let crt = format!("{name}.crt");
        if reason == "certificateHold" {
            openssl(&self.dir, &["ca", "-config", "ca.cnf", "-revoke", &crt, "-crl_hold", "holdInstructionReject"]);
        } else {
            openssl(&self.dir, &["ca", "-config", "ca.cnf", "-revoke", &crt, "-crl_reason", reason]);
        }
    }

    /// Takes a certificate off hold: its index.txt line becomes valid again (what a CA does
    /// when it releases a hold; the next CRL no longer lists it).
    pub fn release(&self, name: &str) {
        let serial = self.serial(name);
        let index = std::fs::read_to_string(self.dir.join("index.txt")).unwrap();
        let lines: Vec<String> = index
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                if f.len() >= 4 && f[3].eq_ignore_ascii_case(&serial) && f[0] == "R" {
                    format!("V\t{}\t\t{}", f[1], f[3..].join("\t"))
                } else {
                    l.to_string()
                }
            })
            .collect();
        std::fs::write(self.dir.join("index.txt"), lines.join("\n") + "\n").unwrap();
    }

    pub fn serial(&self, name: &str) -> String {
        openssl(&self.dir, &["x509", "-in", &format!("{name}.crt"), "-noout", "-serial"]).trim().trim_start_matches("serial=").to_string()
    }

    /// Regenerates `ca.crl` from the database and publishes it; returns its CRL number.
    pub fn publish_crl(&self) -> String {
        self.publish_crl_with("crl_ext", "ca.crl")
    }

    pub fn publish_crl_with(&self, exts: &str, name: &str) -> String {
        let number = std::fs::read_to_string(self.dir.join("crlnumber")).unwrap().trim().to_string();
        let mut args = vec!["ca", "-config", "ca.cnf", "-gencrl", "-crlexts", exts, "-out", "crl.pem"];
        args.extend(pss_opts(&self.dir));
        openssl(&self.dir, &args);
        openssl(&self.dir, &["crl", "-in", "crl.pem", "-outform", "DER", "-out", &format!("www/{name}")]);
        *self.crl_counter.lock().unwrap() += 1;
        number
    }

    /// Publishes a delta CRL (deltaCRLIndicator = `base_number`) listing exactly `changes`
    /// (name, reason), generated by `openssl ca -gencrl` from a database holding only them.
    pub fn publish_delta(&self, base_number_hex: &str, changes: &[(&str, &str)]) {
        let delta_dir = self.dir.join("delta");
        std::fs::create_dir_all(delta_dir.join("newcerts")).unwrap();
        for f in ["ca.crt", "ca.key", "crlnumber", "serial"] {
            std::fs::copy(self.dir.join(f), delta_dir.join(f)).unwrap();
        }
        let index = std::fs::read_to_string(self.dir.join("index.txt")).unwrap();
        let serials: Vec<String> = changes.iter().map(|(n, _)| self.serial(n)).collect();
        let mut lines = Vec::new();
        for l in index.lines() {
            let f: Vec<&str> = l.split('\t').collect();
            if let Some(i) = serials.iter().position(|s| f.len() >= 4 && f[3].eq_ignore_ascii_case(s)) {
                let reason = changes[i].1;
                let when = f[2].split(',').next().filter(|w| !w.is_empty()).map(str::to_string).unwrap_or_else(|| f[1].to_string());
                lines.push(format!("R\t{}\t{},{}\t{}", f[1], when, reason, f[3..].join("\t")));
            }
        }
        std::fs::write(delta_dir.join("index.txt"), lines.join("\n") + "\n").unwrap();
        let digits = if base_number_hex.len() % 2 == 1 { format!("0{base_number_hex}") } else { base_number_hex.to_string() };
        let mut bytes: Vec<String> = digits.as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).to_string()).collect();
        if u8::from_str_radix(&bytes[0], 16).unwrap() >= 0x80 {
            bytes.insert(0, "00".into());
        }
        let der = format!("02:{:02x}:{}", bytes.len(), bytes.join(":"));
        let cnf = CNF.replace("PORT", &self.server.port.to_string())
            + &format!("\n[ delta_ext ]\nauthorityKeyIdentifier = keyid\n2.5.29.27 = critical,DER:{der}\n");
        std::fs::write(delta_dir.join("ca.cnf"), cnf).unwrap();
        openssl(&delta_dir, &["ca", "-config", "ca.cnf", "-gencrl", "-crlexts", "delta_ext", "-out", "delta.pem"]);
        openssl(&delta_dir, &["crl", "-in", "delta.pem", "-outform", "DER", "-out", &self.dir.join("www/delta.crl").to_string_lossy()]);
        // Keep CRL numbers increasing across base and delta.
        std::fs::copy(delta_dir.join("crlnumber"), self.dir.join("crlnumber")).unwrap();
    }

    /// A CRL for this CA's name signed by the unrelated CA's key; with `with_aki` false it
    /// carries no authority key identifier, so only the signature can expose it.
    pub fn publish_forged_crl(&self, with_aki: bool) {
        let other = self.dir.join("other");
        let mut args = vec!["ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem"];
        if with_aki {
            args.extend(["-crlexts", "crl_ext"]);
        }
        openssl(&other, &args);
        openssl(&other, &["crl", "-in", "crl.pem", "-outform", "DER", "-out", &self.dir.join("www/ca.crl").to_string_lossy()]);
    }

    /// Signs with the CA's own digest from now on (`sha1`, `sha256`, …): CRLs and
    /// certificates it issues afterwards.
    pub fn use_digest(&self, md: &str) {
        let cnf = std::fs::read_to_string(self.dir.join("ca.cnf")).unwrap();
        std::fs::write(self.dir.join("ca.cnf"), cnf.replace("default_md = sha256", &format!("default_md = {md}"))).unwrap();
    }

    /// Signs `tbs` (DER) with the CA key (an EC P-256 CA: ecdsa-with-SHA256, by `openssl dgst`)
    /// and returns `SEQUENCE { tbs, AlgorithmIdentifier, BIT STRING }`: how hand-built CRLs
    /// and OCSP responses get a real signature.
    pub fn sign(&self, tbs: &[u8]) -> Vec<u8> {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("tbs.der"), tbs).unwrap();
        let key = self.dir.join("ca.key");
        openssl(tmp.path(), &["dgst", "-sha256", "-sign", &key.to_string_lossy(), "-out", "sig.der", "tbs.der"]);
        let sig = std::fs::read(tmp.path().join("sig.der")).unwrap();
        let mut bits = vec![0u8];
        bits.extend(sig);
        der(0x30, &[tbs, &ECDSA_SHA256, &der(0x03, &[&bits])])
    }

    /// The DER of the CA certificate's subject Name.
    pub fn subject_der(&self) -> Vec<u8> {
        let pem = std::fs::read(self.dir.join("ca.crt")).unwrap();
        let parsed = certvigil::x509::parse_object(&pem, &[]);
        certvigil::x509::cert::raw_parts(&parsed.certs[0].der).unwrap().subject.to_vec()
    }

    /// The CA's subject key identifier.
    pub fn ski(&self) -> Vec<u8> {
        let pem = std::fs::read(self.dir.join("ca.crt")).unwrap();
        let parsed = certvigil::x509::parse_object(&pem, &[]);
        hex::decode(parsed.certs[0].facts.ski.as_ref().unwrap()).unwrap()
    }

    /// An OCSP request for `name` made by `openssl ocsp` (SHA-1 CertID, no nonce), and the
    /// DER CertID inside it: responses built by hand answer for exactly what openssl asks.
    pub fn openssl_cert_id(&self, name: &str) -> Vec<u8> {
        let crt = format!("{name}.crt");
        openssl(&self.dir, &["ocsp", "-issuer", "ca.crt", "-cert", &crt, "-no_nonce", "-reqout", "req.der"]);
        let req = std::fs::read(self.dir.join("req.der")).unwrap();
        use certvigil::x509::ber;
        let outer = ber::single(&req).unwrap();
        let tbs = outer.children().required("tbs").unwrap();
        let list = tbs.children().required("requestList").unwrap();
        let one = list.children().required("Request").unwrap();
        one.children().required("CertID").unwrap().raw.to_vec()
    }

    /// The response the real responder (`openssl ocsp`, signing with the delegated responder
    /// `ocsp.crt`) gives to openssl's own request for `name`, recorded in `resp.der`.
    pub fn record_ocsp(&self, name: &str) -> PathBuf {
        self.openssl_cert_id(name); // leaves openssl's request in req.der
        openssl(
            &self.dir,
            &[
                "ocsp",
                "-index",
                "index.txt",
                "-CA",
                "ca.crt",
                "-rsigner",
                "ocsp.crt",
                "-rkey",
                "ocsp.key",
                "-reqin",
                "req.der",
                "-respout",
                "resp.der",
            ],
        );
        self.dir.join("resp.der")
    }

    /// A CRL whose nextUpdate is one hour after its thisUpdate.
    pub fn publish_short_crl(&self) {
        openssl(&self.dir, &["ca", "-config", "ca.cnf", "-gencrl", "-crlhours", "1", "-crlexts", "crl_ext", "-out", "crl.pem"]);
        openssl(&self.dir, &["crl", "-in", "crl.pem", "-outform", "DER", "-out", "www/ca.crl"]);
    }
}
