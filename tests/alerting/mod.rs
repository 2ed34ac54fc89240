//! Real receivers for the alerting tests (`tests/it_alerts/alerts.rs`), all on 127.0.0.1:
//!
//! * [`SmtpServer`]: aiosmtpd (PyPI) writing a Maildir, plain or with STARTTLS required, started
//!   per test on its own port. Messages are read back with Python's own `email` package (policy
//!   `default`: RFC 2047 subjects, quoted-printable and base64 bodies decoded), so nothing here
//!   parses MIME by hand and nothing of certvigil's is used to check certvigil.
//! * [`HttpReceiver`]: an endpoint on the shared loopback HTTP server (`tests/common/http.rs`)
//!   standing in for a webhook,
//!   Slack or PagerDuty endpoint: it records every request, can be told to answer errors first,
//!   and — given a secret — verifies `X-Certvigil-Signature: t=<ts>,v1=<hex>` as a receiver must
//!   (HMAC-SHA256 over `<ts>.<body>`, timestamps older than 5 minutes rejected), answering 401
//!   to anything that fails.
//! * [`smtp_tls_files`]: a test CA and a server certificate for 127.0.0.1/localhost, made by
//!   `openssl`.
//!
//! aiosmtpd lives in the venv that `tests/run.sh` creates (`$CERTVIGIL_TEST_VENV`, default
//! `/opt/certvigil-test-venv`). If it is missing the tests fail, saying how to install it.

#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use crate::common::http::{self, HttpServer, Response};
use hmac::{KeyInit, Mac};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// aiosmtpd

/// The venv's Python, with aiosmtpd importable. Fails the test when it is not there.
pub fn venv_python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let venv = std::env::var_os("CERTVIGIL_TEST_VENV")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/opt/certvigil-test-venv"));
        let py = venv.join("bin/python");
        let ok = Command::new(&py)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "aiosmtpd is required by the alerting tests and {} cannot import it. Run tests/run.sh (it creates the venv and \
             installs it), or: python3 -m venv {v} && {v}/bin/pip install aiosmtpd==1.4.6",
            py.display(),
            v = venv.display()
        );
        py
    })
    .clone()
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// STARTTLS material for aiosmtpd.
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("`openssl` is required by the alerting tests ({e}). Install it: apt-get install openssl"));
    assert!(out.status.success(), "openssl {} failed:\n{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// A test CA (P-256) and a server certificate it issued for `IP:127.0.0.1` and `DNS:localhost`,
/// valid now by the real clock (TLS verification uses the real clock, not `--now`).
pub fn smtp_tls_files(dir: &Path) -> TlsFiles {
    std::fs::create_dir_all(dir).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=certvigil SMTP test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n\
         subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "7",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
    TlsFiles { ca: dir.join("ca.pem"), cert: dir.join("server.pem"), key: dir.join("server.key") }
}

/// aiosmtpd with the Mailbox handler, killed when dropped.
pub struct SmtpServer {
    pub port: u16,
    pub maildir: PathBuf,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    /// Plain SMTP on a free port.
    pub fn start() -> SmtpServer {
        Self::start_any(None)
    }

    /// STARTTLS required (aiosmtpd's default once `--tlscert` is given).
    pub fn start_tls(tls: &TlsFiles) -> SmtpServer {
        Self::start_any(Some(tls))
    }

    fn start_any(tls: Option<&TlsFiles>) -> SmtpServer {
        // The port is chosen before aiosmtpd binds it: try again if another process took it.
        let mut last = String::new();
        for _ in 0..5 {
            match Self::try_start(free_port(), tls) {
                Ok(s) => return s,
                Err(e) => last = e,
            }
        }
        panic!("aiosmtpd did not start: {last}");
    }

    /// Plain SMTP on `port` (for tests that first need the port to be down).
    pub fn start_on(port: u16) -> SmtpServer {
        Self::try_start(port, None).unwrap_or_else(|e| panic!("aiosmtpd did not start on port {port}: {e}"))
    }

    fn try_start(port: u16, tls: Option<&TlsFiles>) -> Result<SmtpServer, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let maildir = dir.path().join("Maildir");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).expect("maildir");
        }
        let log = dir.path().join("aiosmtpd.log");
        let mut cmd = Command::new(venv_python());
        cmd.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")]);
        if let Some(t) = tls {
            cmd.arg("--tlscert").arg(&t.cert).arg("--tlskey").arg(&t.key);
        }
        cmd.args(["-c", "aiosmtpd.handlers.Mailbox"]).arg(&maildir);
        let logf = std::fs::File::create(&log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("log"))
            .stderr(logf)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", venv_python().display()))?;
        let mut server = SmtpServer { port, maildir, child, log, _dir: dir };
        let start = Instant::now();
        loop {
            if let Some(st) = server.child.try_wait().expect("wait") {
                return Err(format!("aiosmtpd exited ({st}):\n{}", std::fs::read_to_string(&server.log).unwrap_or_default()));
            }
            if smtp_banner(port).is_some_and(|b| b.starts_with("220")) {
                return Ok(server);
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(format!("no SMTP banner on port {port} after 30 s:\n{}", server.log_text()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Every message delivered so far, oldest first.
    pub fn messages(&self) -> Vec<Mail> {
        read_maildir(&self.maildir)
    }

    pub fn count(&self) -> usize {
        ["new", "cur"].iter().map(|d| std::fs::read_dir(self.maildir.join(d)).map(|r| r.count()).unwrap_or(0)).sum()
    }

    /// Talks SMTP by hand: `MAIL FROM` before `STARTTLS` must be refused with 530, which proves
    /// that whatever this server accepted came over TLS.
    pub fn assert_refuses_plain_mail(&self) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let read_reply = |r: &mut BufReader<TcpStream>| -> String {
            let mut all = String::new();
            loop {
                let mut line = String::new();
                r.read_line(&mut line).expect("read SMTP reply");
                all.push_str(&line);
                if line.len() < 4 || line.as_bytes()[3] != b'-' {
                    return all;
                }
            }
        };
        assert!(read_reply(&mut r).starts_with("220"));
        s.write_all(b"EHLO test.example\r\n").unwrap();
        let ehlo = read_reply(&mut r);
        assert!(ehlo.contains("STARTTLS"), "the server must offer STARTTLS: {ehlo}");
        s.write_all(b"MAIL FROM:<probe@example.test>\r\n").unwrap();
        let mail = read_reply(&mut r);
        assert!(mail.starts_with("530"), "the server must refuse mail before STARTTLS: {mail}");
        s.write_all(b"QUIT\r\n").ok();
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn smtp_banner(port: u16) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut line = String::new();
    BufReader::new(s.try_clone().ok()?).read_line(&mut line).ok()?;
    s.write_all(b"QUIT\r\n").ok();
    Some(line)
}

/// One message as Python's `email` package reads it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub file: String,
    /// Every header, decoded (RFC 2047), in order; aiosmtpd adds X-Peer, X-MailFrom, X-RcptTo.
    pub headers: Vec<(String, String)>,
    pub content_type: String,
    /// Leaf parts: (content type, decoded body).
    pub parts: Vec<(String, String)>,
    pub raw: String,
}

impl Mail {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    #[track_caller]
    pub fn must(&self, name: &str) -> &str {
        self.header(name).unwrap_or_else(|| panic!("no {name} header in\n{}", self.raw))
    }

    pub fn subject(&self) -> &str {
        self.must("Subject")
    }

    /// Envelope recipients, as the server saw them.
    pub fn rcpt_to(&self) -> Vec<String> {
        let mut v: Vec<String> = self.must("X-RcptTo").split(',').map(|s| s.trim().to_string()).collect();
        v.sort();
        v
    }

    #[track_caller]
    pub fn part(&self, content_type: &str) -> &str {
        let found: Vec<&(String, String)> = self.parts.iter().filter(|(t, _)| t == content_type).collect();
        assert_eq!(found.len(), 1, "expected one {content_type} part in\n{}", self.raw);
        &found[0].1
    }

    pub fn text(&self) -> &str {
        self.part("text/plain")
    }

    pub fn html(&self) -> &str {
        self.part("text/html")
    }
}

const READ_MAILDIR: &str = r#"
import json, os, sys
from email import policy
from email.parser import BytesParser
d = sys.argv[1]
files = [os.path.join(d, sub, n) for sub in ("new", "cur") for n in os.listdir(os.path.join(d, sub))]
files.sort(key=lambda f: (os.stat(f).st_mtime_ns, os.path.basename(f)))
out = []
for f in files:
    with open(f, "rb") as fh:
        raw = fh.read()
    m = BytesParser(policy=policy.default).parsebytes(raw)
    parts = [[p.get_content_type(), p.get_content()] for p in m.walk() if not p.is_multipart()]
    out.append({"file": f, "headers": [[k, str(v)] for k, v in m.items()], "content_type": m.get_content_type(),
                "parts": parts, "raw": raw.decode("utf-8", "replace")})
json.dump(out, sys.stdout)
"#;

pub fn read_maildir(maildir: &Path) -> Vec<Mail> {
    let out = Command::new(venv_python()).args(["-c", READ_MAILDIR]).arg(maildir).output().expect("run python");
    assert!(out.status.success(), "reading the Maildir failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON from the Maildir reader");
    let pair = |p: &serde_json::Value| (p[0].as_str().unwrap_or("").to_string(), p[1].as_str().unwrap_or("").to_string());
    v.as_array()
        .expect("array")
        .iter()
        .map(|m| Mail {
            file: m["file"].as_str().unwrap_or("").to_string(),
            headers: m["headers"].as_array().expect("headers").iter().map(pair).collect(),
            content_type: m["content_type"].as_str().unwrap_or("").to_string(),
            parts: m["parts"].as_array().expect("parts").iter().map(pair).collect(),
            raw: m["raw"].as_str().unwrap_or("").to_string(),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// HTTP receivers

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: HashMap<String, String>,
    pub body: String,
    /// What the receiver answered.
    pub status: u16,
    /// For a receiver with a secret: why the signature was refused.
    pub rejected: Option<String>,
}

impl Request {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

struct RxState {
    requests: Mutex<Vec<Request>>,
    script: Mutex<VecDeque<u16>>,
    secret: Option<Vec<u8>>,
}

/// Largest accepted age of a signed request's timestamp (replay protection).
pub const MAX_SIGNATURE_AGE: i64 = 300;

/// A loopback endpoint (on the shared HTTP server) that records what it receives.
pub struct HttpReceiver {
    pub port: u16,
    http: HttpServer,
    state: Arc<RxState>,
}

impl HttpReceiver {
    /// Accepts everything (Slack, PagerDuty).
    pub fn start() -> HttpReceiver {
        Self::with(None)
    }

    /// A generic webhook endpoint: only requests signed with `secret` are accepted.
    pub fn signed(secret: &str) -> HttpReceiver {
        Self::with(Some(secret.as_bytes().to_vec()))
    }

    fn with(secret: Option<Vec<u8>>) -> HttpReceiver {
        let state = Arc::new(RxState { requests: Mutex::new(Vec::new()), script: Mutex::new(VecDeque::new()), secret });
        let st = Arc::clone(&state);
        let http = HttpServer::start(move |req| handle(req, &st));
        HttpReceiver { port: http.port, http, state }
    }

    pub fn url(&self, path: &str) -> String {
        self.http.url(path)
    }

    /// The next `n` requests get `status` (then 200 again).
    pub fn fail_next(&self, n: usize, status: u16) {
        self.state.script.lock().unwrap().extend(std::iter::repeat_n(status, n));
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Requests answered 2xx.
    pub fn accepted(&self) -> Vec<Request> {
        self.requests().into_iter().filter(|r| (200..300).contains(&r.status)).collect()
    }

    pub fn count(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// What a receiver of certvigil's webhooks does: recompute the HMAC over `<t>.<body>` and
/// refuse stale timestamps.
pub fn verify_signature(secret: &[u8], header: Option<&str>, body: &str, now: i64) -> Result<(), String> {
    let h = header.ok_or("no X-Certvigil-Signature header")?;
    let mut t = None;
    let mut v1 = None;
    for part in h.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.to_string()),
            Some(("v1", v)) => v1 = Some(v.to_string()),
            _ => return Err(format!("unexpected signature part `{part}`")),
        }
    }
    let t = t.ok_or("no t= in the signature")?;
    let ts: i64 = t.parse().map_err(|_| format!("t=`{t}` is not a number"))?;
    if now - ts > MAX_SIGNATURE_AGE {
        return Err(format!("timestamp {ts} is {} s old", now - ts));
    }
    if ts - now > MAX_SIGNATURE_AGE {
        return Err(format!("timestamp {ts} is in the future"));
    }
    let sig = hex::decode(v1.ok_or("no v1= in the signature")?).map_err(|e| format!("v1 is not hex: {e}"))?;
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret).expect("any key length");
    mac.update(format!("{t}.{body}").as_bytes());
    mac.verify_slice(&sig).map_err(|_| "signature mismatch".to_string())
}

fn handle(req: &http::Request, st: &RxState) -> Response {
    let body = req.text();
    let rejected = st.secret.as_ref().and_then(|s| verify_signature(s, req.header("x-certvigil-signature"), &body, unix_now()).err());
    let status = if rejected.is_some() { 401 } else { st.script.lock().unwrap().pop_front().unwrap_or(200) };
    let answer = match (status, &rejected) {
        (_, Some(why)) => why.clone(),
        (200..=299, None) => "ok".to_string(),
        _ => "scripted failure".to_string(),
    };
    let (method, path, headers) = (req.method.clone(), req.target.clone(), req.headers.clone());
    st.requests.lock().unwrap().push(Request { method, path, headers, body, status, rejected });
    Response::new(status, answer).header("Content-Type", "text/plain")
}
