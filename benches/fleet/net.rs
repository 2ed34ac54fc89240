//! Loopback HTTP of the `fleet` benchmark: one small server type whose mode the harness switches
//! (serve; accept and never answer; closed, so that connections are refused), with the CRL and
//! OCSP handlers behind it; the plain OCSP client baseline; and a minimal client for the daemon's
//! API. Everything listens on and connects to 127.0.0.1 only.

use crate::harness::{der_tlv, percent_decode, run_openssl_ocsp};
use anyhow::{Context, Result, anyhow, bail, ensure};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// ───────────────────────────── the server ─────────────────────────────

/// What a listening server does with a connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Read the request and answer it.
    Serve,
    /// Accept the connection and hold it without reading or answering (a hung host).
    Hang,
}

pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub struct Response {
    pub status: &'static str,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Why the handler failed (counted, and the first kept).
    pub failure: Option<String>,
}

impl Response {
    fn new(status: &'static str, content_type: &'static str, body: Vec<u8>) -> Response {
        Response { status, content_type, headers: Vec::new(), body, failure: None }
    }
}

pub type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// Counters since the last [`Server::take`].
#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    requests: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    failures: AtomicU64,
    /// Microseconds handlers spent, summed over requests.
    busy_us: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// Requests by route (the path's first two segments).
    routes: Mutex<BTreeMap<String, u64>>,
    /// When each request was complete and when its answer was ready.
    spans: Mutex<Vec<(Instant, Instant)>>,
}

/// What a server saw between two [`Server::take`] calls.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub connections: u64,
    pub requests: u64,
    pub max_in_flight: u64,
    pub failures: u64,
    pub busy_s: f64,
    pub first_error: Option<String>,
    pub routes: BTreeMap<String, u64>,
    pub spans: Vec<(Instant, Instant)>,
}

struct Shared {
    mode: Mutex<Mode>,
    closing: AtomicBool,
    held: Mutex<Vec<TcpStream>>,
    counters: Counters,
    handler: Box<Handler>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An HTTP/1.1 server on 127.0.0.1 (an ephemeral port), a thread per connection, one request
/// per connection (`Connection: close`).
pub struct Server {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(handler: Box<Handler>) -> Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback server")?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Serve),
            closing: AtomicBool::new(false),
            held: Mutex::new(Vec::new()),
            counters: Counters::default(),
            handler,
        });
        let sh = Arc::clone(&shared);
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sh.closing.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                sh.counters.connections.fetch_add(1, Ordering::SeqCst);
                match *lock(&sh.mode) {
                    Mode::Hang => lock(&sh.held).push(conn),
                    Mode::Serve => {
                        let sh = Arc::clone(&sh);
                        std::thread::spawn(move || {
                            let _ = serve(conn, &sh);
                        });
                    }
                }
            }
            // The listener is dropped here: from now on connections are refused.
        });
        Ok(Server { port, shared, accept: Some(accept) })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Switches the mode; connections held while hanging are closed when serving again.
    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.shared.mode) = mode;
        if mode == Mode::Serve {
            lock(&self.shared.held).clear();
        }
    }

    /// Closes the listener for good (and every held connection): connections are refused from
    /// now on. Checked by connecting.
    pub fn close(&mut self) -> Result<()> {
        let Some(accept) = self.accept.take() else { return Ok(()) };
        self.shared.closing.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which sees `closing` and drops the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        accept.join().map_err(|_| anyhow!("the accept thread of port {} panicked", self.port))?;
        lock(&self.shared.held).clear();
        match TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_secs(2)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
            Err(e) => bail!("port {} after closing: {e}, expected connection refused", self.port),
            Ok(_) => bail!("port {} still accepts connections after closing", self.port),
        }
    }

    /// The counters since the last call, which resets them.
    pub fn take(&self) -> Seen {
        let c = &self.shared.counters;
        Seen {
            connections: c.connections.swap(0, Ordering::SeqCst),
            requests: c.requests.swap(0, Ordering::SeqCst),
            max_in_flight: c.max_in_flight.swap(0, Ordering::SeqCst),
            failures: c.failures.swap(0, Ordering::SeqCst),
            busy_s: c.busy_us.swap(0, Ordering::SeqCst) as f64 / 1e6,
            first_error: lock(&c.first_error).take(),
            routes: std::mem::take(&mut *lock(&c.routes)),
            spans: std::mem::take(&mut *lock(&c.spans)),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

fn read_request(conn: &TcpStream) -> std::io::Result<Request> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = Vec::new();
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim().to_string(), v.trim().to_string());
            if k.eq_ignore_ascii_case("content-length") {
                content_length = v.parse().unwrap_or(0);
            }
            headers.push((k, v));
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("/").to_string());
    let mut body = vec![0; content_length.min(1 << 20)];
    reader.read_exact(&mut body)?;
    Ok(Request { method, path, headers, body })
}

fn serve(mut conn: TcpStream, sh: &Shared) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let req = read_request(&conn)?;
    let c = &sh.counters;
    // In flight from a complete request to its answer being ready: strictly inside the
    // client's own request, so the maximum can never exceed what the client allowed.
    let n = c.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    c.max_in_flight.fetch_max(n, Ordering::SeqCst);
    c.requests.fetch_add(1, Ordering::SeqCst);
    let route: String = req.path.split('/').take(3).collect::<Vec<_>>().join("/");
    *lock(&c.routes).entry(route).or_default() += 1;
    let started = Instant::now();
    let resp = (sh.handler)(&req);
    c.busy_us.fetch_add(started.elapsed().as_micros() as u64, Ordering::SeqCst);
    c.in_flight.fetch_sub(1, Ordering::SeqCst);
    lock(&c.spans).push((started, Instant::now()));
    if let Some(e) = resp.failure {
        c.failures.fetch_add(1, Ordering::SeqCst);
        lock(&c.first_error).get_or_insert(e);
    }
    let mut head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        resp.status,
        resp.content_type,
        resp.body.len()
    );
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    conn.write_all(&resp.body)?;
    conn.flush()
}

// ───────────────────────────── CRL distribution ─────────────────────────────

/// Serves `/crl/<name>.crl` (DER, with an ETag; a matching If-None-Match gets 304).
pub fn crl_handler(crls: Vec<(String, Vec<u8>)>) -> Box<Handler> {
    let crls: HashMap<String, (Vec<u8>, String)> = crls
        .into_iter()
        .map(|(name, der)| {
            let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&der)[..8]));
            (format!("/crl/{name}.crl"), (der, etag))
        })
        .collect();
    Box::new(move |req: &Request| {
        if req.method != "GET" {
            return Response::new("405 Method Not Allowed", "text/plain", Vec::new());
        }
        let Some((der, etag)) = crls.get(req.path.as_str()) else {
            return Response::new("404 Not Found", "text/plain", b"no such CRL".to_vec());
        };
        let mut resp = if req.header("if-none-match") == Some(etag.as_str()) {
            Response::new("304 Not Modified", "application/pkix-crl", Vec::new())
        } else {
            Response::new("200 OK", "application/pkix-crl", der.clone())
        };
        resp.headers.push(("ETag", etag.clone()));
        resp
    })
}

// ───────────────────────────── the OCSP responder ─────────────────────────────

/// The real responder behind the server: `/ocsp/<ca>` (POST, or GET `/ocsp/<ca>/<base64>`,
/// RFC 5019) runs `openssl ocsp -index index.txt -CA ca.pem -rsigner ca.pem -rkey ca.key -ndays 1
/// -reqin … -respout …` in `<base>/<ca>/`, one process per request: the CA answers for itself.
/// (`openssl ocsp -port` is not used: it binds every interface.)
pub fn ocsp_handler(base: PathBuf) -> Box<Handler> {
    let spool = base.join("spool");
    let _ = std::fs::create_dir_all(&spool);
    let counter = AtomicU64::new(0);
    Box::new(move |req: &Request| {
        let mut segments = req.path.trim_start_matches('/').splitn(3, '/');
        let (first, ca, rest) = (segments.next(), segments.next(), segments.next());
        let Some(ca) = ca.filter(|c| first == Some("ocsp") && matches!(*c, "root" | "rsa" | "p384")) else {
            return Response::new("404 Not Found", "text/plain", b"not found".to_vec());
        };
        let request = match (req.method.as_str(), rest) {
            ("POST", _) => req.body.clone(),
            ("GET", Some(b64)) => {
                use base64ct::Encoding;
                match base64ct::Base64::decode_vec(&percent_decode(b64)) {
                    Ok(der) => der,
                    Err(_) => return Response::new("400 Bad Request", "text/plain", b"bad base64".to_vec()),
                }
            }
            _ => return Response::new("405 Method Not Allowed", "text/plain", Vec::new()),
        };
        let n = counter.fetch_add(1, Ordering::SeqCst);
        match run_openssl_ocsp(&base.join(ca), &spool, n, &request) {
            Ok(der) => Response::new("200 OK", "application/ocsp-response", der),
            Err(e) => {
                let mut r = Response::new("500 Internal Server Error", "text/plain", b"responder failed".to_vec());
                r.failure = Some(e);
                r
            }
        }
    })
}

// ───────────────────────────── DER and OCSP messages ─────────────────────────────

/// A DER element: (tag, content, the whole element, what follows it).
pub type Element<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

/// The next DER element of `b`.
pub fn der_next(b: &[u8]) -> Option<Element<'_>> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for k in 0..n {
            len = (len << 8) | usize::from(*b.get(2 + k)?);
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    (end <= b.len()).then(|| (tag, &b[header..end], &b[..end], &b[end..]))
}

fn expect<'a>(b: &'a [u8], tag: u8, what: &str) -> Result<(&'a [u8], &'a [u8], &'a [u8])> {
    match der_next(b) {
        Some((t, content, whole, rest)) if t == tag => Ok((content, whole, rest)),
        Some((t, ..)) => bail!("{what}: tag {t:#04x}, expected {tag:#04x}"),
        None => bail!("{what}: truncated"),
    }
}

/// An OCSP request (RFC 6960 §4.1.1) for one certificate: a SHA-1 CertID of the issuer's
/// subject name and key, and the serial; no nonce, no extensions.
pub fn ocsp_request(issuer_der: &[u8], serial: &[u8]) -> Result<Vec<u8>> {
    let (cert, _, _) = expect(issuer_der, 0x30, "issuer certificate")?;
    let (mut tbs, _, _) = expect(cert, 0x30, "tbsCertificate")?;
    if tbs.first() == Some(&0xa0) {
        tbs = expect(tbs, 0xa0, "version")?.2;
    }
    let rest = expect(tbs, 0x02, "serialNumber")?.2;
    let rest = expect(rest, 0x30, "signature")?.2;
    let rest = expect(rest, 0x30, "issuer")?.2;
    let rest = expect(rest, 0x30, "validity")?.2;
    let (_, subject, rest) = expect(rest, 0x30, "subject")?;
    let (spki, _, _) = expect(rest, 0x30, "subjectPublicKeyInfo")?;
    let (key, _, _) = expect(expect(spki, 0x30, "algorithm")?.2, 0x03, "subjectPublicKey")?;
    let key = key.get(1..).context("empty subjectPublicKey")?;
    const SHA1_ALG: [u8; 11] = [0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00];
    let cert_id = der_tlv(
        0x30,
        &[&SHA1_ALG[..], &der_tlv(0x04, &Sha1::digest(subject)), &der_tlv(0x04, &Sha1::digest(key)), &der_tlv(0x02, serial)].concat(),
    );
    let request = der_tlv(0x30, &cert_id);
    let tbs_request = der_tlv(0x30, &der_tlv(0x30, &request));
    Ok(der_tlv(0x30, &tbs_request))
}

/// The status an OCSP response gives its first certificate, with the serial it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OcspAnswer {
    Good,
    /// With the CRLReason code, when there is one.
    Revoked(Option<u8>),
    Unknown,
}

/// Reads a response far enough to know what it says (nothing verified: the baseline is a
/// plain client).
pub fn ocsp_answer(resp: &[u8]) -> Result<(OcspAnswer, Vec<u8>)> {
    let (outer, _, _) = expect(resp, 0x30, "OCSPResponse")?;
    let (status, _, rest) = expect(outer, 0x0a, "responseStatus")?;
    ensure!(status == [0], "responseStatus {status:?} (not successful)");
    let (bytes, _, _) = expect(rest, 0xa0, "responseBytes")?;
    let (bytes, _, _) = expect(bytes, 0x30, "ResponseBytes")?;
    let (basic, _, _) = expect(expect(bytes, 0x06, "responseType")?.2, 0x04, "response")?;
    let (basic, _, _) = expect(basic, 0x30, "BasicOCSPResponse")?;
    let (mut data, _, _) = expect(basic, 0x30, "tbsResponseData")?;
    while let Some((tag, _, _, rest)) = der_next(data) {
        if tag == 0x30 {
            break;
        }
        data = rest;
    }
    let (responses, _, _) = expect(data, 0x30, "responses")?;
    let (single, _, _) = expect(responses, 0x30, "SingleResponse")?;
    let (cert_id, _, rest) = expect(single, 0x30, "certID")?;
    let mut id = cert_id;
    for what in ["hashAlgorithm", "issuerNameHash", "issuerKeyHash"] {
        id = der_next(id).with_context(|| format!("{what}: truncated"))?.3;
    }
    let (serial, _, _) = expect(id, 0x02, "serialNumber")?;
    let answer = match der_next(rest) {
        Some((0x80, ..)) => OcspAnswer::Good,
        Some((0xa1, info, ..)) => {
            let after_time = expect(info, 0x18, "revocationTime")?.2;
            let reason = match der_next(after_time) {
                Some((0xa0, r, ..)) => expect(r, 0x0a, "revocationReason")?.0.first().copied(),
                _ => None,
            };
            OcspAnswer::Revoked(reason)
        }
        Some((0x82, ..)) => OcspAnswer::Unknown,
        other => bail!("certStatus: unexpected {:?}", other.map(|o| o.0)),
    };
    Ok((answer, serial.to_vec()))
}

/// One request of the plain client: the path to POST to, the request, the serial it asks for.
pub struct ClientRequest {
    pub path: String,
    pub der: Vec<u8>,
    pub serial: Vec<u8>,
}

/// What the plain client got.
#[derive(Debug, Default)]
pub struct ClientResult {
    pub wall_s: f64,
    pub good: u64,
    /// Serial (hex) → reason code.
    pub revoked: HashMap<String, Option<u8>>,
    pub unknown: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// The plain client baseline: `concurrency` threads POSTing pre-built requests to the
/// responder, one connection per request (the responder closes after each answer, for
/// certvigil too), reading each answer's status.
pub fn ocsp_client(port: u16, requests: &[ClientRequest], concurrency: usize) -> ClientResult {
    let next = AtomicUsize::new(0);
    let result = Mutex::new(ClientResult::default());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..concurrency {
            scope.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::SeqCst);
                    let Some(r) = requests.get(k) else { break };
                    let outcome = post(port, &r.path, &r.der).and_then(|body| ocsp_answer(&body)).and_then(|(answer, serial)| {
                        ensure!(serial == r.serial, "answer for serial {}, asked {}", hex::encode(&serial), hex::encode(&r.serial));
                        Ok(answer)
                    });
                    let mut res = lock(&result);
                    match outcome {
                        Ok(OcspAnswer::Good) => res.good += 1,
                        Ok(OcspAnswer::Revoked(reason)) => {
                            res.revoked.insert(hex::encode_upper(&r.serial), reason);
                        }
                        Ok(OcspAnswer::Unknown) => res.unknown += 1,
                        Err(e) => {
                            res.errors += 1;
                            res.first_error.get_or_insert(format!("{e:#}"));
                        }
                    }
                }
            });
        }
    });
    let mut res = result.into_inner().unwrap_or_else(|p| p.into_inner());
    res.wall_s = started.elapsed().as_secs_f64();
    res
}

fn post(port: u16, path: &str, body: &[u8]) -> Result<Vec<u8>> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).context("connecting to the responder")?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/ocsp-request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let (status, body) = read_response(s)?;
    ensure!(status == 200, "HTTP {status}");
    Ok(body)
}

// ───────────────────────────── a client for the daemon ─────────────────────────────

/// Reads an HTTP/1.1 response to the end of the connection: status and body (chunked or not).
fn read_response(mut s: TcpStream) -> Result<(u16, Vec<u8>)> {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").context("no end of the HTTP head")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status: u16 =
        head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).with_context(|| format!("bad status line in {head:?}"))?;
    let mut body = &raw[split + 4..];
    let chunked = head.lines().any(|l| {
        l.split_once(':')
            .is_some_and(|(k, v)| k.trim().eq_ignore_ascii_case("transfer-encoding") && v.trim().eq_ignore_ascii_case("chunked"))
    });
    if !chunked {
        return Ok((status, body.to_vec()));
    }
    let mut out = Vec::with_capacity(body.len());
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").context("truncated chunk size")?;
        let size = usize::from_str_radix(String::from_utf8_lossy(&body[..line_end]).split(';').next().unwrap_or("").trim(), 16)
            .context("bad chunk size")?;
        body = &body[line_end + 2..];
        if size == 0 {
            break;
        }
        ensure!(body.len() >= size + 2, "truncated chunk");
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
    Ok((status, out))
}

/// One request to the daemon's HTTP server; `token` for `/api/v1`.
pub fn http(port: u16, method: &str, path: &str, token: Option<&str>) -> Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let length = if method == "POST" { "Content-Length: 0\r\n" } else { "" };
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}{length}Connection: close\r\n\r\n")?;
    read_response(s)
}

/// How busy a responder was over a pass, from the requests' spans.
#[derive(Debug, Default, Clone, Copy)]
pub struct Occupancy {
    /// From the first request to the last answer.
    pub window_s: f64,
    /// Mean requests in flight over the window.
    pub mean_in_flight: f64,
    /// Time in the window with no request in flight, and with fewer than `limit`.
    pub idle_s: f64,
    pub below_limit_s: f64,
}

impl Seen {
    pub fn occupancy(&self, limit: usize) -> Occupancy {
        let mut events: Vec<(Instant, i64)> = self.spans.iter().flat_map(|&(a, b)| [(a, 1), (b, -1)]).collect();
        events.sort();
        let (Some(first), Some(last)) = (events.first().map(|e| e.0), events.last().map(|e| e.0)) else { return Occupancy::default() };
        let (mut level, mut at, mut busy, mut idle, mut below) = (0i64, first, 0.0, 0.0, 0.0);
        for (t, delta) in events {
            let dt = t.duration_since(at).as_secs_f64();
            busy += dt * level as f64;
            if level == 0 {
                idle += dt;
            }
            if level < limit as i64 {
                below += dt;
            }
            level += delta;
            at = t;
        }
        let window_s = last.duration_since(first).as_secs_f64();
        Occupancy { window_s, mean_in_flight: if window_s > 0.0 { busy / window_s } else { 0.0 }, idle_s: idle, below_limit_s: below }
    }
}
