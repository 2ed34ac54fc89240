//! A real browser for the status-page tests: a minimal W3C WebDriver client (WebDriver Level 2)
//! driving Debian's headless Chromium through ChromeDriver, both started by the test.
//!
//! [`Browser::start`] runs `chromedriver` on an ephemeral port of 127.0.0.1 in a process group
//! of its own, waits until `/status` says it is ready and opens a session with a fresh profile
//! directory. Dropping the [`Browser`] ends the session and kills the whole group (ChromeDriver,
//! the browser and its helper processes) on every path, then removes the profile.
//!
//! Everything the browser does stays on this machine: ChromeDriver listens on loopback only
//! (its default; `--allowed-ips` would make it listen on every interface), the browser resolves
//! no name at all (`--host-resolver-rules` maps every name to NOTFOUND and excludes 127.0.0.1
//! only, so no DNS query is made), connects directly whatever proxy the environment names, and
//! the background services that call home are switched off.
//!
//! [`Browser::save_screenshot`] writes `<target dir>/ui-screenshots/<name>.png` and fails when the
//! picture is not of the page's size or is blank, returning the decoded [`ScreenshotStats`].
//! Every failing call returns a [`WdError`] naming what was asked (URL, selector) and
//! ChromeDriver's own error code and message.

#![allow(dead_code)]

use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key of a web element reference (WebDriver, "Elements": the web element identifier).
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The outer size of every new browser window. In headless mode the page (the viewport) is
/// smaller: the window keeps room for the browser's own toolbars (1280×657 with Chromium 156).
pub const WINDOW: (u32, u32) = (1280, 800);

/// How long ChromeDriver may take to be ready, and then the browser to start.
const START_LIMIT: Duration = Duration::from_secs(30);

/// The page-load limit of the session (WebDriver, "Timeouts"); a slower page fails the command
/// with the WebDriver error `timeout`.
const PAGE_LOAD_MS: u64 = 30_000;

/// The HTTP client's limit for one command: above the page-load limit, so that a slow page is
/// reported by ChromeDriver rather than cut off here.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// Debian's browser binary. `/usr/bin/chromium` is a shell wrapper that sources
/// `/etc/chromium.d` (remote extensions on, Google API keys in the environment, and a
/// `/dev/shm` size test that prints a shell error when two mounts are stacked there); the tests
/// start the binary itself with their own flags. Elsewhere ChromeDriver finds its browser.
const DEBIAN_CHROMIUM: &str = "/usr/lib/chromium/chromium";

/// A screenshot is blank unless at least this share of its pixels (per mille) differs from
/// its most common colour...
const MIN_INK_PER_MILLE: usize = 1;
/// ...and it has at least this many distinct colours (text is anti-aliased).
const MIN_COLOURS: usize = 4;

/// What went wrong, with what was asked.
#[derive(Debug, Clone)]
pub enum WdError {
    /// ChromeDriver could not be reached, or answered something that is not what WebDriver
    /// defines.
    Transport { what: String, message: String },
    /// A WebDriver error ("Handling errors"): `error` is its code (`no such element`, `timeout`,
    /// `javascript error`, `unknown error` for a page that failed to load, …).
    WebDriver { what: String, error: String, message: String },
    /// A screenshot that is not a PNG, not of the page's size, or blank.
    Screenshot { path: PathBuf, message: String },
}

impl WdError {
    /// The WebDriver error code, `transport` or `screenshot`.
    pub fn code(&self) -> &str {
        match self {
            WdError::Transport { .. } => "transport",
            WdError::WebDriver { error, .. } => error,
            WdError::Screenshot { .. } => "screenshot",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            WdError::Transport { message, .. } | WdError::WebDriver { message, .. } | WdError::Screenshot { message, .. } => message,
        }
    }
}

impl fmt::Display for WdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WdError::Transport { what, message } => write!(f, "{what}: {message}"),
            WdError::WebDriver { what, error, message } => write!(f, "{what}: {error}: {message}"),
            WdError::Screenshot { path, message } => write!(f, "screenshot {}: {message}", path.display()),
        }
    }
}

impl std::error::Error for WdError {}

pub type WdResult<T> = Result<T, WdError>;

/// A cookie as the browser holds it (WebDriver, "Cookies": a serialized cookie).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Cookie {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub http_only: bool,
    #[serde(default)]
    pub secure: bool,
    /// `Strict`, `Lax` or `None`.
    #[serde(default)]
    pub same_site: Option<String>,
    /// Seconds since the epoch; absent for a session cookie.
    #[serde(default)]
    pub expiry: Option<u64>,
}

/// What a saved screenshot holds.
#[derive(Debug, Clone)]
pub struct ScreenshotStats {
    pub path: PathBuf,
    /// Size of the PNG file.
    pub png_bytes: usize,
    pub width: u32,
    pub height: u32,
    /// The most common colour (RGB), taken as the background.
    pub background: [u8; 3],
    /// Pixels whose colour is not the background's.
    pub ink_pixels: usize,
    /// Distinct RGB colours.
    pub colours: usize,
}

/// A headless Chromium driven through ChromeDriver; see the module documentation.
pub struct Browser {
    driver: Child,
    port: u16,
    /// `http://127.0.0.1:<port>/session/<id>`.
    session_url: String,
    session: String,
    http: reqwest::Client,
    /// ChromeDriver's log and the browser's profile; removed after the processes are gone.
    dir: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session closes the browser cleanly; killing the process group then takes
        // ChromeDriver and whatever is left, on every path (the browser and its helpers share
        // ChromeDriver's group, and a killed ChromeDriver alone would leave them running; the
        // crash handlers live in sessions of their own and exit when the browser is gone).
        if !self.session.is_empty() {
            delete_session(self.port, &self.session);
        }
        kill_group(&mut self.driver);
    }
}

/// `DELETE /session/<id>` (WebDriver, "Delete Session") as a blocking request, since a drop
/// cannot await. ChromeDriver keeps the connection open after its answer even when asked to close
/// it, so the answer is read up to its `Content-Length`, not to the end of the stream.
fn delete_session(port: u16, session: &str) {
    let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) else { return };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!("DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n");
    if conn.write_all(request.as_bytes()).is_err() {
        return;
    }
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n @ 1..) = conn.read(&mut chunk) {
        answer.extend_from_slice(&chunk[..n]);
        let Some(head_end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&answer[..head_end]).to_ascii_lowercase();
        let length = head.lines().find_map(|l| l.strip_prefix("content-length:")?.trim().parse::<usize>().ok()).unwrap_or(0);
        if answer.len() >= head_end + 4 + length {
            return;
        }
    }
}

fn kill_group(child: &mut Child) {
    let _ = rustix::process::kill_process_group(rustix::process::Pid::from_child(child), rustix::process::Signal::KILL);
    let _ = child.kill();
    let _ = child.wait();
}

/// The first executable `name` on `PATH` (or in /usr/bin); a missing one fails the test with
/// what to install.
fn require(name: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    for dir in path.split(':').chain(["/usr/bin"]) {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{name}` is required by the browser tests and is not installed: apt-get install chromium chromium-driver (tests/run.sh does)")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().expect("local addr").port()
}

/// Polls ChromeDriver's `/status` (WebDriver, "Status") until it says it is ready: `false` when
/// the process exits first (its port was taken) or after [`START_LIMIT`].
async fn wait_ready(http: &reqwest::Client, port: u16, driver: &mut Child) -> bool {
    let start = Instant::now();
    let url = format!("http://127.0.0.1:{port}/status");
    while start.elapsed() < START_LIMIT {
        if let Ok(Some(_)) = driver.try_wait() {
            return false;
        }
        if let Ok(r) = http.get(&url).timeout(Duration::from_secs(2)).send().await
            && let Ok(body) = r.bytes().await
            && let Ok(status) = serde_json::from_slice::<Value>(&body)
            && status["value"]["ready"] == true
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The last `n` lines of a log file.
fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The browser's flags.
fn browser_args(profile: &Path) -> Vec<String> {
    vec![
        "--headless=new".into(),
        // Chromium will not start as root with its sandbox on: without this flag the browser
        // exits at once and ChromeDriver reports only "Chrome instance exited".
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        // Shared memory in /tmp: /dev/shm is small in many containers.
        "--disable-dev-shm-usage".into(),
        format!("--window-size={},{}", WINDOW.0, WINDOW.1),
        format!("--user-data-dir={}", profile.display()),
        // No first-run pages and no background requests: updates, sync, translation,
        // optimisation hints, media router discovery, autofill's server.
        "--no-first-run".into(),
        "--no-default-browser-check".into(),
        "--disable-background-networking".into(),
        "--disable-sync".into(),
        "--disable-component-update".into(),
        "--disable-default-apps".into(),
        "--disable-extensions".into(),
        "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication".into(),
        // Every name fails as not found before any resolver is asked; IP literals pass through
        // the rules too, so 127.0.0.1 is excluded to stay reachable (localhost and [::1] are not).
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1".into(),
        // Direct connections only, whatever proxy the environment names.
        "--no-proxy-server".into(),
    ]
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium session; fails the test, with ChromeDriver's
    /// log, when either is missing or does not start.
    pub async fn start() -> Browser {
        let chromedriver = require("chromedriver");
        certvigil::net::install_crypto_provider();
        let http = reqwest::Client::builder().no_proxy().timeout(COMMAND_LIMIT).build().expect("HTTP client");
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("chromedriver.log");
        let profile = dir.path().join("profile");
        std::fs::create_dir(&profile).expect("profile directory");

        // The port is free when picked but could be taken before ChromeDriver binds it: then
        // ChromeDriver exits and another port is tried.
        let mut started = None;
        for _attempt in 0..3 {
            let port = free_port();
            let mut driver = Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // A group of its own, so that dropping the browser kills every process it made.
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", chromedriver.display()));
            if wait_ready(&http, port, &mut driver).await {
                started = Some((driver, port));
                break;
            }
            kill_group(&mut driver);
        }
        let Some((driver, port)) = started else {
            panic!("ChromeDriver did not become ready within {START_LIMIT:?}; log:\n{}", log_tail(&log, 40));
        };

        let mut browser = Browser { driver, port, session_url: String::new(), session: String::new(), http, dir };
        let mut options = json!({ "args": browser_args(&profile) });
        if Path::new(DEBIAN_CHROMIUM).is_file() {
            options["binary"] = json!(DEBIAN_CHROMIUM);
        }
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": { "pageLoad": PAGE_LOAD_MS, "script": PAGE_LOAD_MS, "implicit": 0 },
            "goog:chromeOptions": options,
        }}});
        let url = format!("http://127.0.0.1:{port}/session");
        let created = browser.send(reqwest::Method::POST, url, Some(capabilities), "new session").await;
        let session = match created.as_ref().ok().and_then(|v| v["sessionId"].as_str()) {
            Some(id) => id.to_string(),
            None => panic!(
                "the browser did not start ({}); is `chromium` installed (apt-get install chromium chromium-driver)? \
                 ChromeDriver log:\n{}",
                created.map_or_else(|e| e.to_string(), |v| v.to_string()),
                log_tail(&browser.dir.path().join("chromedriver.log"), 40)
            ),
        };
        browser.session_url = format!("http://127.0.0.1:{port}/session/{session}");
        browser.session = session;
        browser
    }

    /// ChromeDriver's port on 127.0.0.1.
    pub fn driver_port(&self) -> u16 {
        self.port
    }

    /// One WebDriver command: the `value` of a success, or the error it names.
    async fn send(&self, method: reqwest::Method, url: String, body: Option<Value>, what: &str) -> WdResult<Value> {
        let transport = |message: String| WdError::Transport { what: what.to_string(), message };
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.header("Content-Type", "application/json; charset=utf-8").body(body.to_string());
        }
        let response = request.send().await.map_err(|e| transport(e.to_string()))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| transport(e.to_string()))?;
        let mut answer: Value = serde_json::from_slice(&bytes)
            .map_err(|e| transport(format!("HTTP {status}, not JSON ({e}): {}", String::from_utf8_lossy(&bytes))))?;
        let value = answer["value"].take();
        if status.is_success() {
            return Ok(value);
        }
        let error = value["error"].as_str().unwrap_or("unknown error").to_string();
        // ChromeDriver appends "(Session info: chrome=…)" and a native stack trace: dropped.
        let message = value["message"].as_str().unwrap_or_default();
        let message = message.split("\n  (Session info").next().unwrap_or_default().trim().to_string();
        Err(WdError::WebDriver { what: what.to_string(), error, message })
    }

    /// A command of the session (`path` after `/session/<id>`).
    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>, what: &str) -> WdResult<Value> {
        self.send(method, format!("{}{path}", self.session_url), body, what).await
    }

    async fn get(&self, path: &str, what: &str) -> WdResult<Value> {
        self.cmd(reqwest::Method::GET, path, None, what).await
    }

    async fn post(&self, path: &str, body: Value, what: &str) -> WdResult<Value> {
        self.cmd(reqwest::Method::POST, path, Some(body), what).await
    }

    /// Navigates to `url` and waits for the page to load ("Navigate To"). A page that cannot be
    /// loaded (a name not resolved, a refused connection) is an `unknown error` whose message holds
    /// Chromium's `net::ERR_…` code.
    pub async fn goto(&self, url: &str) -> WdResult<()> {
        self.post("/url", json!({ "url": url }), &format!("goto {url}")).await.map(drop)
    }

    pub async fn current_url(&self) -> WdResult<String> {
        string(self.get("/url", "current url").await?)
    }

    pub async fn title(&self) -> WdResult<String> {
        string(self.get("/title", "title").await?)
    }

    /// Goes back one page in the history ("Back").
    pub async fn back(&self) -> WdResult<()> {
        self.post("/back", json!({}), "back").await.map(drop)
    }

    /// The first element matching the CSS selector `css`.
    pub async fn find(&self, css: &str) -> WdResult<Element<'_>> {
        let what = format!("find `{css}`");
        let found = self.post("/element", json!({ "using": "css selector", "value": css }), &what).await?;
        self.element(&found, css, &what)
    }

    /// Every element matching `css`, in document order (none is not an error).
    pub async fn find_all(&self, css: &str) -> WdResult<Vec<Element<'_>>> {
        let what = format!("find all `{css}`");
        let found = self.post("/elements", json!({ "using": "css selector", "value": css }), &what).await?;
        let list = found.as_array().ok_or_else(|| unexpected(&what, &found))?;
        list.iter().map(|e| self.element(e, css, &what)).collect()
    }

    fn element(&self, reference: &Value, css: &str, what: &str) -> WdResult<Element<'_>> {
        let id = reference[ELEMENT_KEY].as_str().ok_or_else(|| unexpected(what, reference))?;
        Ok(Element { browser: self, id: id.to_string(), selector: css.to_string() })
    }

    /// Waits up to `timeout` for an element matching `css` to exist; the WebDriver error
    /// `timeout` when none appears.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> WdResult<Element<'_>> {
        let start = Instant::now();
        loop {
            match self.find(css).await {
                Err(e) if e.code() == "no such element" => {
                    if start.elapsed() >= timeout {
                        return Err(WdError::WebDriver {
                            what: format!("wait for `{css}`"),
                            error: "timeout".into(),
                            message: format!("no element matched within {timeout:?}"),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }

    /// Clicks the element matching `css` and waits up to `timeout` for the page it leads to: the
    /// current document's root goes stale (WebDriver's "stale element reference") and the new one
    /// finishes loading. Waiting for a selector alone races when the next page has the same
    /// elements as this one, as a filter form that submits to its own page does.
    pub async fn click_and_load(&self, css: &str, timeout: Duration) -> WdResult<()> {
        let old = self.find("html").await?;
        self.find(css).await?.click().await?;
        let start = Instant::now();
        let timed_out = |what: &str| WdError::WebDriver {
            what: format!("click `{css}` and wait for {what}"),
            error: "timeout".into(),
            message: format!("not within {timeout:?}"),
        };
        loop {
            match old.get("/name", "tag name of").await {
                // Chromium says so as "stale element reference", or, caught mid-navigation, as an
                // unknown error whose inspector message says the node left the document.
                Err(e) if e.code() == "stale element reference" || e.message().contains("does not belong to the document") => break,
                Err(e) => return Err(e),
                Ok(_) if start.elapsed() >= timeout => return Err(timed_out("the next page")),
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        while self.execute("return document.readyState;", &[]).await? != "complete" {
            if start.elapsed() >= timeout {
                return Err(timed_out("the next page to load"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Runs `script` as the body of a function with `args` as `arguments` ("Execute Script") and
    /// returns what it returns; elements are passed with [`Element::arg`].
    pub async fn execute(&self, script: &str, args: &[Value]) -> WdResult<Value> {
        let what = format!("execute `{}`", script.chars().take(80).collect::<String>());
        self.post("/execute/sync", json!({ "script": script, "args": args }), &what).await
    }

    /// Sets the outer window size ("Set Window Rect").
    pub async fn set_window_size(&self, width: u32, height: u32) -> WdResult<()> {
        self.post("/window/rect", json!({ "width": width, "height": height }), &format!("set window size {width}×{height}")).await.map(drop)
    }

    /// The page's size in device pixels: what a screenshot measures.
    pub async fn viewport(&self) -> WdResult<(u32, u32)> {
        let what = "viewport size";
        let v = self.execute("return [innerWidth, innerHeight, devicePixelRatio];", &[]).await?;
        let n = |i: usize| v[i].as_f64().ok_or_else(|| unexpected(what, &v));
        let (w, h, ratio) = (n(0)?, n(1)?, n(2)?);
        Ok(((w * ratio).round() as u32, (h * ratio).round() as u32))
    }

    /// A PNG of the page as shown ("Take Screenshot").
    pub async fn screenshot_png(&self) -> WdResult<Vec<u8>> {
        let what = "screenshot";
        let encoded = self.get("/screenshot", what).await?;
        let text = encoded.as_str().ok_or_else(|| unexpected(what, &encoded))?;
        <base64ct::Base64 as base64ct::Encoding>::decode_vec(text)
            .map_err(|e| WdError::Transport { what: what.into(), message: format!("screenshot is not base64: {e}") })
    }

    /// Every cookie of the current page's origin, with the flags the browser stored ("Get All
    /// Cookies").
    pub async fn cookies(&self) -> WdResult<Vec<Cookie>> {
        let what = "cookies";
        let v = self.get("/cookie", what).await?;
        serde_json::from_value(v.clone()).map_err(|e| WdError::Transport { what: what.into(), message: format!("{e}: {v}") })
    }

    /// Takes a screenshot, writes it to `<target dir>/ui-screenshots/<name>.png` and checks it:
    /// a PNG of the page's size, not blank (see [`MIN_INK_PER_MILLE`], [`MIN_COLOURS`]).
    ///
    /// The target directory is the parent of `CARGO_TARGET_TMPDIR`, so the pictures land beside
    /// the build wherever `CARGO_TARGET_DIR` puts it, never in the source tree.
    pub async fn save_screenshot(&self, name: &str) -> WdResult<ScreenshotStats> {
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "screenshot name {name:?}: letters, digits, '-' and '_' only"
        );
        let (width, height) = self.viewport().await?;
        let png = self.screenshot_png().await?;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, &png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        let fail = |message: String| WdError::Screenshot { path: path.clone(), message };
        let stats = png_stats(&png, path.clone()).map_err(fail)?;
        if (stats.width, stats.height) != (width, height) {
            return Err(fail(format!("{}×{} pixels, the page is {width}×{height}", stats.width, stats.height)));
        }
        let pixels = stats.width as usize * stats.height as usize;
        if stats.ink_pixels * 1000 < pixels * MIN_INK_PER_MILLE || stats.colours < MIN_COLOURS {
            return Err(fail(format!(
                "blank: {} of {pixels} pixels differ from the background {:?}, {} colours",
                stats.ink_pixels, stats.background, stats.colours
            )));
        }
        Ok(stats)
    }
}

/// `<target dir>/ui-screenshots`.
pub fn screenshot_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("ui-screenshots")
}

fn string(v: Value) -> WdResult<String> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(unexpected("string answer", &other)),
    }
}

fn unexpected(what: &str, v: &Value) -> WdError {
    WdError::Transport { what: what.to_string(), message: format!("unexpected answer {v}") }
}

/// Decodes `png` and counts its colours.
fn png_stats(png: &[u8], path: PathBuf) -> Result<ScreenshotStats, String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| format!("not a PNG: {e}"))?;
    let mut buf = vec![0; reader.output_buffer_size().ok_or("PNG too large")?];
    let info = reader.next_frame(&mut buf).map_err(|e| format!("PNG frame: {e}"))?;
    let samples = info.color_type.samples();
    let mut counts: HashMap<[u8; 3], usize> = HashMap::new();
    for line in buf[..info.buffer_size()].chunks_exact(info.line_size) {
        for px in line[..info.width as usize * samples].chunks_exact(samples) {
            let rgb = match samples {
                1 | 2 => [px[0]; 3],
                _ => [px[0], px[1], px[2]],
            };
            *counts.entry(rgb).or_default() += 1;
        }
    }
    let (background, most) = counts.iter().max_by_key(|(_, n)| **n).map(|(c, n)| (*c, *n)).unwrap_or(([0; 3], 0));
    let pixels = info.width as usize * info.height as usize;
    Ok(ScreenshotStats {
        path,
        png_bytes: png.len(),
        width: info.width,
        height: info.height,
        background,
        ink_pixels: pixels - most,
        colours: counts.len(),
    })
}

/// An element of the current page, found by [`Browser::find`].
pub struct Element<'b> {
    browser: &'b Browser,
    id: String,
    /// The selector it was found by, for error messages.
    pub selector: String,
}

impl Element<'_> {
    async fn get(&self, path: &str, what: &str) -> WdResult<Value> {
        self.browser.get(&format!("/element/{}{path}", self.id), &format!("{what} `{}`", self.selector)).await
    }

    async fn post(&self, path: &str, body: Value, what: &str) -> WdResult<Value> {
        self.browser.post(&format!("/element/{}{path}", self.id), body, &format!("{what} `{}`", self.selector)).await
    }

    /// Clicks the element's centre ("Element Click"), scrolling it into view first.
    pub async fn click(&self) -> WdResult<()> {
        self.post("/click", json!({}), "click").await.map(drop)
    }

    /// Types `text` into the element ("Element Send Keys").
    pub async fn send_keys(&self, text: &str) -> WdResult<()> {
        self.post("/value", json!({ "text": text }), "send keys to").await.map(drop)
    }

    /// Empties an input or text area ("Element Clear").
    pub async fn clear(&self) -> WdResult<()> {
        self.post("/clear", json!({}), "clear").await.map(drop)
    }

    /// The rendered text ("Get Element Text"): what a person reads, hidden parts left out.
    pub async fn text(&self) -> WdResult<String> {
        string(self.get("/text", "text of").await?)
    }

    /// The content attribute `name` as written in the page ("Get Element Attribute"); `None` when
    /// absent. An input's typed value is its property `value`, see [`Element::prop`].
    pub async fn attr(&self, name: &str) -> WdResult<Option<String>> {
        match self.get(&format!("/attribute/{name}"), &format!("attribute {name} of")).await? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            other => Err(unexpected("attribute", &other)),
        }
    }

    /// The DOM property `name` ("Get Element Property"): an input's current `value`, a checkbox's
    /// `checked`.
    pub async fn prop(&self, name: &str) -> WdResult<Value> {
        self.get(&format!("/property/{name}"), &format!("property {name} of")).await
    }

    /// The element as an argument of [`Browser::execute`].
    pub fn arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }
}
