//! The real `certvigil run` daemon as systemd starts it: `$NOTIFY_SOCKET` points at a unix
//! datagram socket the test binds, the daemon listens on an ephemeral loopback port and names
//! it in the STATUS of its READY=1, and its log goes to `daemon.log` in the sandbox. Every
//! notification received is kept, with when it arrived. The process is killed and reaped when
//! the [`Daemon`] is dropped, on every path.

#![allow(dead_code)]

use super::Sandbox;
use super::http::{self, Answer};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the daemon may take to send READY=1.
pub const READY_LIMIT: Duration = Duration::from_secs(60);

pub struct Daemon {
    pub child: Child,
    pub notify: UnixDatagram,
    pub port: u16,
    /// Every notification received so far, with when it arrived.
    pub messages: Vec<(Instant, String)>,
    pub log: PathBuf,
    /// The API token (`$CV_TOKEN`).
    pub token: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts `cmd -v run --listen 127.0.0.1:0` (`cmd` carries the configuration, the clock
    /// and any extra environment) with `$CV_TOKEN` set to `token`, and waits for READY=1.
    pub fn start(sb: &Sandbox, mut cmd: Command, token: &str) -> Daemon {
        let sock = sb.path("notify.sock");
        let notify = UnixDatagram::bind(&sock).expect("bind notify socket");
        notify.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
        let log = sb.path("daemon.log");
        cmd.args(["-v", "run", "--listen", "127.0.0.1:0"])
            .env("NOTIFY_SOCKET", &sock)
            .env("CV_TOKEN", token)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        // Owned by `Daemon` at once: its drop kills and reaps the process on every path.
        let child = cmd.spawn().expect("spawn certvigil run");
        let mut d = Daemon { child, notify, port: 0, messages: Vec::new(), log, token: token.to_string() };
        let ready = d.wait_for(|m| m.starts_with("READY=1"), READY_LIMIT);
        let port = ready.split("HTTP on 127.0.0.1:").nth(1).and_then(|p| p.trim().parse().ok());
        d.port = port.unwrap_or_else(|| panic!("no port in the READY status: {ready:?}"));
        d
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The next notification, or `None` after the socket's 200 ms read timeout.
    pub fn receive(&mut self) -> Option<String> {
        let mut buf = [0u8; 4096];
        match self.notify.recv(&mut buf) {
            Ok(n) => {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.messages.push((Instant::now(), m.clone()));
                Some(m)
            }
            Err(_) => None,
        }
    }

    /// Waits for a notification matching `pred`, failing with the log when the daemon exits
    /// or after `limit`.
    pub fn wait_for(&mut self, pred: impl Fn(&str) -> bool, limit: Duration) -> String {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(m) = self.receive()
                && pred(&m)
            {
                return m;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("the daemon exited ({st}) while waiting; log:\n{}", self.log_text());
            }
        }
        panic!("no matching notification within {limit:?}; got {:?}\nlog:\n{}", self.messages, self.log_text());
    }

    /// Sends `sig` (`-HUP`, `-TERM`, …) with kill(1).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill").args([sig, &self.child.id().to_string()]).status().expect("kill");
        assert!(st.success());
    }

    /// One request without a body over a fresh connection, with `token` when given.
    pub fn http(&self, method: &str, path: &str, token: Option<&str>) -> Answer {
        http::request(self.port, method, path, token)
    }

    /// `GET path` with `token` when given; returns the status and the body.
    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let a = self.http("GET", path, token);
        (a.status, a.body)
    }

    /// One request with the daemon's own API token; returns the status and the body.
    pub fn request(&self, method: &str, path: &str) -> (u16, String) {
        let a = self.http(method, path, Some(&self.token));
        (a.status, a.body)
    }

    /// Waits (up to `limit`) until every job has run once and none is running (the catch-up
    /// runs at start on a fresh store); returns `GET /api/v1/jobs`.
    pub fn wait_jobs_done(&self, limit: Duration) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let (code, body) = self.request("GET", "/api/v1/jobs");
            assert_eq!(code, 200, "{body}");
            let v: serde_json::Value = serde_json::from_str(&body).expect("jobs JSON");
            if v.as_array().into_iter().flatten().all(|j| j["last_run"]["status"] == "ok" && j["running_since"].is_null()) {
                return v;
            }
            assert!(start.elapsed() < limit, "the jobs did not all finish: {v:#}\nlog:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts job `name` through `POST /api/v1/jobs/<name>/run` and waits (up to `limit`) until
    /// that run is recorded as finished; returns the run (`GET /api/v1/jobs/<name>/runs`).
    pub fn run_job(&self, name: &str, limit: Duration) -> serde_json::Value {
        let (code, body) = self.request("POST", &format!("/api/v1/jobs/{name}/run"));
        assert_eq!(code, 202, "{body}");
        let accepted: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let id = accepted["run_id"].as_i64().unwrap_or_else(|| panic!("no run id: {body}"));
        let start = Instant::now();
        loop {
            let (code, body) = self.request("GET", &format!("/api/v1/jobs/{name}/runs"));
            assert_eq!(code, 200, "{body}");
            let runs: serde_json::Value = serde_json::from_str(&body).expect("JSON");
            if let Some(run) = runs.as_array().into_iter().flatten().find(|r| r["id"].as_i64() == Some(id))
                && !run["finished_at"].is_null()
            {
                return run.clone();
            }
            assert!(start.elapsed() < limit, "run {id} of {name} not finished: {body}\nlog:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
