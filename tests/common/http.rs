//! The one loopback HTTP server of the integration tests, and the client side of the daemon's
//! HTTP interface.
//!
//! [`HttpServer`] listens on 127.0.0.1 at an ephemeral port (or a given one: Pebble validates
//! HTTP-01 on 5002), answers each request through a handler that returns a canned or computed
//! [`Response`], records every request it read, and can be put in a "network down" state:
//! [`Mode::Refuse`] closes each connection without an answer, [`Mode::Hang`] accepts and never
//! answers. [`refused_port`] is a port nobody listens on. A TLS front (the Kubernetes API
//! fixture) is a function from the accepted TCP stream to a stream of bytes, given to
//! [`HttpServer::start_with`].
//!
//! One request per connection (`Connection: close`); bodies by `Content-Length`, answers with a
//! length or chunked ([`Body::Chunked`]). Dropping the server stops its listener.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as the server read it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target as sent: path and query.
    pub target: String,
    /// Lower-case names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// The identity a TLS front verified (a client certificate's user), if any.
    pub client: Option<String>,
}

impl Request {
    /// The target without its query string.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target.as_str(), |(p, _)| p)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
}

/// Writes the chunks of a [`Body::Chunked`] answer.
pub struct Chunks<'a> {
    out: &'a mut dyn Write,
}

impl Chunks<'_> {
    /// Sends `data` as one chunk (an empty slice sends nothing: it would end the body).
    pub fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        write!(self.out, "{:x}\r\n", data.len())?;
        self.out.write_all(data)?;
        self.out.write_all(b"\r\n")?;
        self.out.flush()
    }
}

/// Produces a chunked body; the server writes the final empty chunk when it returns `Ok`.
pub type ChunkWriter = Box<dyn FnOnce(&mut Chunks<'_>) -> std::io::Result<()> + Send>;

pub enum Body {
    Bytes(Vec<u8>),
    /// Pieces written one after the other, with their total as the length (large JSON lists
    /// built from shared parts).
    Pieces(Vec<Arc<str>>),
    /// `Transfer-Encoding: chunked`, without a length.
    Chunked(ChunkWriter),
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Response {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response { status, headers: Vec::new(), body: Body::Bytes(body.into()) }
    }

    pub fn ok(body: impl Into<Vec<u8>>) -> Response {
        Self::new(200, body)
    }

    pub fn empty(status: u16) -> Response {
        Self::new(status, Vec::new())
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Self::new(status, value.to_string()).header("Content-Type", "application/json")
    }

    pub fn pieces(status: u16, pieces: Vec<Arc<str>>) -> Response {
        Response { status, headers: Vec::new(), body: Body::Pieces(pieces) }
    }

    pub fn chunked(status: u16, write: impl FnOnce(&mut Chunks<'_>) -> std::io::Result<()> + Send + 'static) -> Response {
        Response { status, headers: Vec::new(), body: Body::Chunked(Box::new(write)) }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// How the server treats a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Reads the request and answers it.
    Serve,
    /// Closes the connection without reading or answering (the client sees it closed).
    Refuse,
    /// Keeps the connection open and never reads nor answers.
    Hang,
}

/// A stream the server reads requests from and writes answers to (TCP, or TLS over TCP).
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;
/// Turns an accepted connection into the stream to serve and the client identity it verified;
/// `None` drops the connection (a failed handshake).
pub type Front = dyn Fn(TcpStream) -> Option<(Box<dyn Stream>, Option<String>)> + Send + Sync;

struct Shared {
    handler: Box<Handler>,
    front: Option<Box<Front>>,
    mode: Mutex<Mode>,
    requests: Mutex<Vec<Request>>,
    accepted: AtomicU64,
    held: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
}

/// A loopback HTTP server; see the module documentation.
pub struct HttpServer {
    pub port: u16,
    shared: Arc<Shared>,
}

impl HttpServer {
    /// Serves `handler` on an ephemeral port of 127.0.0.1.
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> HttpServer {
        Self::listen(0, None, Box::new(handler))
    }

    /// Serves `handler` on 127.0.0.1:`port`.
    pub fn start_on(port: u16, handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> HttpServer {
        Self::listen(port, None, Box::new(handler))
    }

    /// Serves `handler` behind `front` (TLS) on an ephemeral port of 127.0.0.1.
    pub fn start_with(
        front: impl Fn(TcpStream) -> Option<(Box<dyn Stream>, Option<String>)> + Send + Sync + 'static,
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> HttpServer {
        Self::listen(0, Some(Box::new(front)), Box::new(handler))
    }

    /// A listener that accepts connections, counts them ([`HttpServer::accepted`]) and never
    /// answers.
    pub fn hanging() -> HttpServer {
        let server = Self::start(|_| Response::empty(500));
        server.set_mode(Mode::Hang);
        server
    }

    fn listen(port: u16, front: Option<Box<Front>>, handler: Box<Handler>) -> HttpServer {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| panic!("bind 127.0.0.1:{port}: {e}"));
        let port = listener.local_addr().expect("local addr").port();
        let shared = Arc::new(Shared {
            handler,
            front,
            mode: Mutex::new(Mode::Serve),
            requests: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
            held: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let st = Arc::clone(&shared);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                st.accepted.fetch_add(1, Ordering::SeqCst);
                let mode = *st.mode.lock().expect("mode");
                match mode {
                    Mode::Refuse => drop(conn),
                    Mode::Hang => st.held.lock().expect("held").push(conn),
                    Mode::Serve => {
                        let st = Arc::clone(&st);
                        std::thread::spawn(move || serve(conn, &st));
                    }
                }
            }
        });
        HttpServer { port, shared }
    }

    /// `http://127.0.0.1:<port>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{}", self.port, path.trim_start_matches('/'))
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().expect("mode") = mode;
    }

    /// Every request read so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().expect("requests").clone()
    }

    pub fn count(&self) -> usize {
        self.shared.requests.lock().expect("requests").len()
    }

    /// Requests whose target was exactly `target`.
    pub fn hits(&self, target: &str) -> u64 {
        self.shared.requests.lock().expect("requests").iter().filter(|r| r.target == target).count() as u64
    }

    /// Connections accepted, whatever the mode.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which sees the flag and closes the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A port on 127.0.0.1 that refuses connections (bound, then closed).
pub fn refused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().expect("local addr").port()
}

fn serve(conn: TcpStream, st: &Shared) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let (stream, client): (Box<dyn Stream>, Option<String>) = match &st.front {
        None => (Box::new(conn), None),
        Some(front) => match front(conn) {
            Some(s) => s,
            None => return,
        },
    };
    let mut reader = BufReader::new(stream);
    let Some(mut request) = read_request(&mut reader) else { return };
    request.client = client;
    st.requests.lock().expect("requests").push(request.clone());
    let response = (st.handler)(&request);
    let mut out = std::io::BufWriter::with_capacity(1 << 16, reader.into_inner());
    let _ = write_response(&mut out, response);
}

fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Request { method, target, headers, body, client: None })
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn write_response(out: &mut impl Write, response: Response) -> std::io::Result<()> {
    let Response { status, headers, body } = response;
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    match &body {
        Body::Bytes(b) => head.push_str(&format!("Content-Length: {}\r\n", b.len())),
        Body::Pieces(p) => head.push_str(&format!("Content-Length: {}\r\n", p.iter().map(|p| p.len()).sum::<usize>())),
        Body::Chunked(_) => head.push_str("Transfer-Encoding: chunked\r\n"),
    }
    head.push_str("Connection: close\r\n");
    for (k, v) in &headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    match body {
        Body::Bytes(b) => out.write_all(&b)?,
        Body::Pieces(pieces) => {
            for p in &pieces {
                out.write_all(p.as_bytes())?;
            }
        }
        Body::Chunked(write) => {
            out.flush()?;
            write(&mut Chunks { out: &mut *out })?;
            out.write_all(b"0\r\n\r\n")?;
        }
    }
    out.flush()
}

/// What a plain HTTP/1.1 client read back.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The status line and headers.
    pub head: String,
    /// The body, its chunks joined when it was sent chunked.
    pub body: String,
}

impl Answer {
    pub fn chunked(&self) -> bool {
        self.head.to_ascii_lowercase().contains("transfer-encoding: chunked")
    }
}

/// Sends `raw` (a whole request) to 127.0.0.1:`port` over a fresh connection and reads the
/// answer to the end.
pub fn exchange(port: u16, raw: &[u8]) -> Answer {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    s.write_all(raw).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    let body = if chunked { dechunk(body) } else { body.to_string() };
    Answer { status, head: head.to_string(), body }
}

/// One request without a body, with the bearer `token` when given.
pub fn request(port: u16, method: &str, path: &str, token: Option<&str>) -> Answer {
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let raw = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n");
    exchange(port, raw.as_bytes())
}

/// Joins the chunks of a chunked body.
pub fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
