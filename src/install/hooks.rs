//! Running operator commands: dns-01 hooks and post-install hooks.
//!
//! A command is an argv (no shell), run with stdin closed and stdout discarded, under a time
//! limit; its exit status is checked and the start of its stderr is kept for the error, so an
//! operator sees why it failed without a trip to the journal. Each command leads its own
//! process group, so one that runs past its limit is killed together with what it started (a
//! hook script's `nsupdate`, `curl`, `sleep`), not only the script itself.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How much of a hook's stderr is kept for the error message.
pub const MAX_STDERR: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    #[error("cannot run `{command}`: {reason}")]
    Spawn { command: String, reason: String },
    /// `limit` shows as `2s` or `500ms`, never a rounded-down `0s`.
    #[error("`{command}` did not finish within {limit:?} and was killed{}", stderr_suffix(.stderr))]
    Timeout { command: String, limit: Duration, stderr: String },
    #[error("`{command}` failed ({status}){}", stderr_suffix(.stderr))]
    Failed { command: String, status: String, stderr: String },
}

fn stderr_suffix(s: &str) -> String {
    if s.is_empty() { String::new() } else { format!("; stderr: {s}") }
}

/// The command as shown in errors and logs: argv joined by spaces.
pub fn display(argv: &[String]) -> String {
    argv.join(" ")
}

/// Runs `argv` with `env` added to the environment; succeeds when it exits 0 within `timeout`.
pub fn run(argv: &[String], env: &[(String, String)], timeout: Duration) -> Result<(), HookError> {
    let command = display(argv);
    let Some((program, args)) = argv.split_first() else {
        return Err(HookError::Spawn { command, reason: "empty command".into() });
    };
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| HookError::Spawn { command: command.clone(), reason: e.to_string() })?;
    // Read stderr on a thread so a chatty hook never blocks on a full pipe; keep the start.
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(mut err) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let room = MAX_STDERR.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            let _ = tx.send(kept);
        });
    }
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() >= timeout => {
                kill_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(HookError::Spawn { command, reason: e.to_string() }),
        }
    };
    // A grandchild may still hold the pipe open: wait for the reader only briefly.
    let stderr = rx
        .recv_timeout(Duration::from_secs(1))
        .map(|b| String::from_utf8_lossy(&b).trim().chars().filter(|c| !c.is_control() || *c == '\n').collect())
        .unwrap_or_default();
    match status {
        None => Err(HookError::Timeout { command, limit: timeout, stderr }),
        Some(s) if s.success() => Ok(()),
        Some(s) => {
            let status = match s.code() {
                Some(c) => format!("exit status {c}"),
                None => "killed by a signal".to_string(),
            };
            Err(HookError::Failed { command, status, stderr })
        }
    }
}

/// Sends SIGKILL to the process group `pgid` through kill(1) (procps): the crate forbids the
/// `unsafe` a direct kill(2) would need. Without kill(1) only the leader is killed.
fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    /// Whether process `pid` still runs (a zombie waiting for its reaper does not).
    fn running(pid: &str) -> bool {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").and_then(|(_, after)| after.chars().next()));
        !matches!(state, None | Some('Z') | Some('X'))
    }

    #[test]
    fn success_env_failure_and_timeout() {
        // Limits far above what these commands need: a loaded machine must not turn a success
        // into a timeout.
        run(&sh("test \"$X\" = y"), &[("X".into(), "y".into())], Duration::from_secs(60)).unwrap();
        let e = run(&sh("echo boom >&2; exit 3"), &[], Duration::from_secs(60)).unwrap_err();
        assert!(matches!(&e, HookError::Failed { status, stderr, .. } if status == "exit status 3" && stderr == "boom"), "{e:?}");
        assert!(e.to_string().contains("stderr: boom"), "{e}");

        // A hook past its limit is killed, not waited for: when `run` returns, the hook no
        // longer runs. The limit leaves the shell ample time to write its pid first.
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("echo $$ > '{}'; exec sleep 30", pidfile.display());
        let start = Instant::now();
        let e = run(&sh(&script), &[], Duration::from_secs(2)).unwrap_err();
        let took = start.elapsed();
        assert!(matches!(e, HookError::Timeout { limit, .. } if limit == Duration::from_secs(2)), "{e:?}");
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        assert!(!running(pid.trim()), "the hook {} still runs", pid.trim());
        // Generous: the hook alone would take 30 s; under load the 20 ms polling and the kill
        // may be late by seconds.
        assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(25), "{took:?}");

        let e = run(&["/nonexistent/hook".to_string()], &[], Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, HookError::Spawn { .. }), "{e:?}");
    }

    #[test]
    fn a_timeout_kills_what_the_hook_started_too() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        // The limit leaves the shell time to start its child and write the pid even on a
        // loaded machine.
        let script = format!("sleep 30 & echo $! > '{}'; exec sleep 30", pidfile.display());
        let e = run(&sh(&script), &[], Duration::from_secs(3)).unwrap_err();
        assert!(matches!(e, HookError::Timeout { .. }), "{e:?}");
        let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_string();
        // Gone, or a zombie waiting for a reaper: either way no longer running. SIGKILL to the
        // group has been sent when `run` returns; the wait is only for the kernel to act on it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while running(&pid) {
            assert!(Instant::now() < deadline, "the hook's child {pid} still runs");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn stderr_is_bounded() {
        let e = run(&sh("head -c 100000 /dev/zero | tr '\\0' x >&2; exit 1"), &[], Duration::from_secs(5)).unwrap_err();
        let HookError::Failed { stderr, .. } = e else { panic!("{e:?}") };
        assert_eq!(stderr.len(), MAX_STDERR);
    }
}
