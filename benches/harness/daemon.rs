//! A `certvigil run` child for the benchmarks that drive the daemon (`benches/cluster.rs`;
//! included with `#[path = "harness/daemon.rs"]`, with `fleet/net.rs` as `net` for its HTTP
//! client): started with a NOTIFY_SOCKET, as systemd starts it, so readiness and the port it
//! bound (`--listen 127.0.0.1:0`) come from its `READY=1` message; jobs started through the API
//! and followed until their run ends; stopped with SIGTERM, or killed.

#![allow(dead_code)]

use crate::harness::tail;
use anyhow::{Context, Result, anyhow, ensure};
use serde_json::Value;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running daemon; killed (SIGKILL) if still running when dropped.
pub struct Daemon {
    pub child: Child,
    pub port: u16,
    log: PathBuf,
    exited: bool,
}

impl Daemon {
    /// Starts `cmd` (`certvigil … run --listen 127.0.0.1:0`) with its NOTIFY_SOCKET in `dir` and
    /// its log in `dir/daemon.log`, and waits for `READY=1` (at most a minute).
    pub fn start(mut cmd: Command, dir: &Path) -> Result<Daemon> {
        let sock = dir.join("notify.sock");
        let _ = std::fs::remove_file(&sock);
        let rx = UnixDatagram::bind(&sock).with_context(|| format!("binding {}", sock.display()))?;
        rx.set_read_timeout(Some(Duration::from_secs(60)))?;
        let log = dir.join("daemon.log");
        let child = cmd
            .env("NOTIFY_SOCKET", &sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?)
            .spawn()
            .context("starting certvigil run")?;
        let mut daemon = Daemon { child, port: 0, log, exited: false };
        let mut buf = [0u8; 1024];
        loop {
            let len = rx.recv(&mut buf).map_err(|e| anyhow!("no READY=1 from the daemon ({e}); its log:\n{}", daemon.log_tail(20)))?;
            let message = String::from_utf8_lossy(&buf[..len]).into_owned();
            if !message.starts_with("READY=1") {
                continue;
            }
            let port = message
                .split("HTTP on 127.0.0.1:")
                .nth(1)
                .and_then(|p| p.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok());
            daemon.port = port.with_context(|| format!("no port in the daemon's READY message {message:?}"))?;
            return Ok(daemon);
        }
    }

    pub fn running(&self) -> bool {
        !self.exited
    }

    pub fn log_tail(&self, lines: usize) -> String {
        tail(&std::fs::read_to_string(&self.log).unwrap_or_default(), lines)
    }

    /// `POST /api/v1/jobs/JOB/run`, then `GET /api/v1/jobs/JOB/runs` every `poll` until that run
    /// is no longer `running`: the run as the API shows it, and the seconds from the POST to the
    /// answer that showed it finished. `alive` is asked at each poll (the other daemons of a
    /// cluster still running, for one).
    pub fn run_job(
        &self,
        job: &str,
        token: &str,
        poll: Duration,
        deadline: Duration,
        alive: &mut dyn FnMut() -> Result<()>,
    ) -> Result<(Value, f64)> {
        let t0 = Instant::now();
        let (status, body) = crate::net::http(self.port, "POST", &format!("/api/v1/jobs/{job}/run"), Some(token))?;
        ensure!(status == 202, "POST /api/v1/jobs/{job}/run: HTTP {status}: {}", String::from_utf8_lossy(&body));
        let accepted: Value = serde_json::from_slice(&body)?;
        let id = accepted["run_id"].as_i64().with_context(|| format!("no run_id in {accepted}"))?;
        loop {
            std::thread::sleep(poll);
            let (status, body) = crate::net::http(self.port, "GET", &format!("/api/v1/jobs/{job}/runs"), Some(token))?;
            ensure!(status == 200, "GET /api/v1/jobs/{job}/runs: HTTP {status}");
            let runs: Value = serde_json::from_slice(&body)?;
            let this = runs.as_array().and_then(|a| a.iter().find(|r| r["id"].as_i64() == Some(id))).cloned();
            if let Some(run) = this.filter(|r| r["status"] != "running") {
                return Ok((run, t0.elapsed().as_secs_f64()));
            }
            ensure!(t0.elapsed() < deadline, "job {job} still running after {} s", deadline.as_secs());
            alive()?;
        }
    }

    /// SIGKILL, and the exit reaped.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.exited = true;
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if self.exited {
            return;
        }
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let t0 = Instant::now();
        while t0.elapsed() < grace {
            if let Ok(Some(_)) = self.child.try_wait() {
                self.exited = true;
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !self.exited {
            self.kill();
        }
    }
}
