//! Email notifications over implicit TLS (SMTPS, RFC 8314) and with SMTP AUTH (RFC 4954),
//! against a real aiosmtpd on 127.0.0.1 started per test by `tests/alerting/smtp_tls_auth.py`:
//! it speaks TLS from the first byte or requires STARTTLS, requires AUTH for one user when
//! asked, and stamps every stored message with what the connection really was (transport, TLS
//! version, authenticated login) and logs every AUTH attempt (login and verdict, never the
//! password). The real `certvigil` binary scans an expired certificate from `tests/common`'s
//! fixtures and `evaluate` sends its notification; every assertion is about what the server
//! got, what the outbox says, and what certvigil printed.
//!
//! The server certificates come from `alerting::smtp_tls_files` (a test CA made by openssl,
//! valid by the real clock, which TLS verification uses); certvigil's clock is the fixed `NOW`.

// Test helpers: a failed setup step should stop the test where it happened.
#![allow(clippy::unwrap_used)]

use crate::alerting;
use crate::common;

use alerting::{Mail, TlsFiles, free_port, read_maildir, smtp_tls_files, venv_python};
use base64ct::Encoding;
use common::*;
use serde_json::Value;
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const EXPIRED_SUBJECT: &str = "[certvigil] CRITICAL expired: expired.example.test — expired on 2026-05-21 (10 days ago) on web";
const USER: &str = "certvigil-alerts";
/// The right password, and a wrong one; distinctive so that any leak is found by a search.
const PASSWORD: &str = "pw-Zq7tls!auth-2f9c81";
const WRONG_PASSWORD: &str = "pw-WRONG-e4b0c2a1";
/// What certvigil reads the password from.
const PASSWORD_ENV: &str = "CV_TEST_SMTP_PASSWORD";
/// What the test server reads it from (never its command line).
const SERVER_PASSWORD_ENV: &str = "CV_TEST_SERVER_SMTP_PASSWORD";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// TLS from the first byte.
    Smtps,
    /// STARTTLS required before mail (and before AUTH).
    Starttls,
}

/// The customised aiosmtpd, killed when dropped.
struct TlsSmtp {
    port: u16,
    maildir: PathBuf,
    events: PathBuf,
    log: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for TlsSmtp {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/alerting/smtp_tls_auth.py")
}

impl TlsSmtp {
    /// Starts on a free port (another one if a process took it meanwhile). `auth`: AUTH is
    /// required for [`USER`] with [`PASSWORD`].
    fn start(mode: Mode, tls: &TlsFiles, auth: bool) -> TlsSmtp {
        let mut last = String::new();
        for _ in 0..5 {
            match Self::try_start(free_port(), mode, tls, auth) {
                Ok(s) => return s,
                Err(e) => last = e,
            }
        }
        panic!("the aiosmtpd test server did not start: {last}");
    }

    fn try_start(port: u16, mode: Mode, tls: &TlsFiles, auth: bool) -> Result<TlsSmtp, String> {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("Maildir");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        let events = dir.path().join("events.jsonl");
        let log = dir.path().join("server.log");
        let mut cmd = Command::new(venv_python());
        cmd.arg(script())
            .args(["--mode", if mode == Mode::Smtps { "smtps" } else { "starttls" }, "--port", &port.to_string()])
            .arg("--cert")
            .arg(&tls.cert)
            .arg("--key")
            .arg(&tls.key)
            .arg("--maildir")
            .arg(&maildir)
            .arg("--events")
            .arg(&events);
        if auth {
            cmd.args(["--user", USER, "--password-env", SERVER_PASSWORD_ENV]).env(SERVER_PASSWORD_ENV, PASSWORD);
        }
        let logf = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", venv_python().display()))?;
        let mut server = TlsSmtp { port, maildir, events, log, child, _dir: dir };
        let start = Instant::now();
        loop {
            if let Some(st) = server.child.try_wait().unwrap() {
                return Err(format!("exited ({st}):\n{}", std::fs::read_to_string(&server.log).unwrap_or_default()));
            }
            if server.events().iter().any(|e| e["event"] == "ready") {
                return Ok(server);
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(format!("not ready on port {port} after 30 s:\n{}", std::fs::read_to_string(&server.log).unwrap_or_default()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every event the server logged: `ready`, `auth` {login, success, tls}, `delivered`.
    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("event line {l:?}: {e}")))
            .collect()
    }

    fn auth_events(&self) -> Vec<Value> {
        self.events().into_iter().filter(|e| e["event"] == "auth").collect()
    }

    fn messages(&self) -> Vec<Mail> {
        read_maildir(&self.maildir)
    }
}

/// What a plain client sees in its first second: an implicit-TLS server says nothing (it waits
/// for a ClientHello), a STARTTLS one greets with 220.
fn plain_greeting(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut buf = [0u8; 512];
    match s.read(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(_) => String::new(),
    }
}

/// certvigil at `now` with `password` (if any) in the environment its configuration names, and
/// everything logged (`RUST_LOG=trace`): whatever it would ever print about a password shows.
fn cv(sb: &Sandbox, now: i64, password: Option<&str>, args: &[&str]) -> Run {
    let mut cmd = sb.command_at(now);
    cmd.args(args).env("RUST_LOG", "trace").env_remove("CERTVIGIL_FAULT");
    match password {
        Some(p) => cmd.env(PASSWORD_ENV, p),
        None => cmd.env_remove(PASSWORD_ENV),
    };
    run_with_timeout(cmd, RUN_LIMIT)
}

/// One email receiver; `auth` adds the username and the password reference.
fn receiver(name: &str, port: u16, tls: &str, ca_file: Option<&Path>, auth: bool) -> String {
    let ca = ca_file.map(|p| format!(", ca_file: '{}'", p.display())).unwrap_or_default();
    let creds = if auth { format!(", username: {USER}, password: '${{env:{PASSWORD_ENV}}}'") } else { String::new() };
    format!(
        "    - name: {name}\n      kind: email\n      to: [ops@example.test]\n      from: certvigil@example.test\n      \
         smtp: {{host: 127.0.0.1, port: {port}, tls: {tls}, timeout: 10s{ca}{creds}}}\n"
    )
}

/// A files source `web` holding the expired fixture, the receivers, one route to all of them.
fn configure(sb: &Sandbox, receivers: &[String]) {
    sb.write("certs/expired.pem", &fixtures().expired.cert.pem);
    let names: Vec<String> =
        receivers.iter().map(|r| r.trim_start().trim_start_matches("- name: ").lines().next().unwrap().to_string()).collect();
    sb.config(&format!(
        "sources:\n  - name: web\n    kind: files\n    paths: [certs]\nalerts:\n  retry_initial: 30s\n  retry_max: 1h\n  receivers:\n{}  \
         routes:\n    - name: ops\n      receivers: [{}]\n",
        receivers.concat(),
        names.join(", ")
    ));
    // The password is given (or not) to each run below: the file alone is checked here.
    sb.run(&["config", "validate", "--offline"]).expect_code(0);
}

/// Notifications not yet sent, by receiver name.
fn pending(sb: &Sandbox, password: Option<&str>, runs: &mut Vec<Run>) -> Vec<Value> {
    let r = cv(sb, NOW, password, &["outbox", "-o", "json"]).expect_code(0);
    let mut rows = r.json().as_array().unwrap().clone();
    rows.sort_by(|a, b| a["receiver"].as_str().cmp(&b["receiver"].as_str()));
    runs.push(r);
    rows
}

/// Fails if a password (as written, or base64-encoded as AUTH PLAIN and AUTH LOGIN send it)
/// shows in any output of certvigil or in any file it wrote (the store and its journal).
#[track_caller]
fn assert_never_shown(sb: &Sandbox, runs: &[Run], passwords: &[&str]) {
    let mut needles = Vec::new();
    for p in passwords {
        needles.push(p.to_string());
        needles.push(base64ct::Base64::encode_string(p.as_bytes()));
        needles.push(base64ct::Base64::encode_string(format!("\0{USER}\0{p}").as_bytes()));
    }
    for (i, r) in runs.iter().enumerate() {
        for n in &needles {
            assert!(!r.stdout.contains(n.as_str()), "run {i}: stdout shows a password ({n}):\n{}", r.stdout);
            assert!(!r.stderr.contains(n.as_str()), "run {i}: stderr shows a password ({n}):\n{}", r.stderr);
        }
    }
    for entry in walk(sb.dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        for n in &needles {
            assert!(!bytes.windows(n.len()).any(|w| w == n.as_bytes()), "{} holds a password ({n})", entry.display());
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

#[track_caller]
fn one_mail(server: &TlsSmtp) -> Mail {
    let mails = server.messages();
    assert_eq!(mails.len(), 1, "events: {:?}", server.events());
    mails.into_iter().next().unwrap()
}

#[test]
fn implicit_tls_delivers_with_the_ca_file_and_an_unknown_issuer_stays_queued() {
    let tmp = tempfile::tempdir().unwrap();
    let tls = smtp_tls_files(tmp.path());
    let smtp = TlsSmtp::start(Mode::Smtps, &tls, false);
    // TLS from the first byte: a plain client is not greeted.
    assert_eq!(plain_greeting(smtp.port), "", "an implicit-TLS server says nothing before the handshake");
    let sb = Sandbox::new();
    let mut runs = Vec::new();

    // Without ca_file the test CA is not trusted: the handshake fails, nothing is sent.
    configure(&sb, &[receiver("smtps", smtp.port, "tls", None, false)]);
    runs.push(cv(&sb, NOW, None, &["scan", "--no-progress"]).expect_code(0));
    let ev = cv(&sb, NOW, None, &["evaluate"]).expect_code(1);
    assert!(ev.stdout.contains("1 notifications queued, 0 sent, 1 failed"), "{}", ev.stdout);
    runs.push(ev);
    let rows = pending(&sb, None, &mut runs);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0]["attempts"].as_i64(), rows[0]["next_attempt_at"].as_i64()), (Some(1), Some(NOW + 30)), "{rows:?}");
    let err = rows[0]["last_error"].as_str().unwrap();
    assert!(err.starts_with(&format!("SMTP 127.0.0.1:{}: ", smtp.port)), "{err}");
    assert!(err.contains("UnknownIssuer"), "a TLS error naming the cause: {err}");
    assert!(smtp.messages().is_empty());
    assert!(smtp.events().iter().all(|e| e["event"] == "ready"), "{:?}", smtp.events());

    // With the test CA: sent at the next attempt, over a connection that was TLS throughout.
    configure(&sb, &[receiver("smtps", smtp.port, "tls", Some(&tls.ca), false)]);
    let ev = cv(&sb, NOW + 31, None, &["evaluate"]).expect_code(0);
    assert!(ev.stdout.contains("1 sent, 0 failed"), "{}", ev.stdout);
    runs.push(ev);
    let m = one_mail(&smtp);
    assert_eq!(m.must("X-Test-Transport"), "implicit-tls", "{}", m.raw);
    assert!(m.must("X-Test-TLS").starts_with("TLSv1."), "{}", m.raw);
    assert_eq!(m.must("X-Test-Auth"), "none");
    assert_eq!(m.subject(), EXPIRED_SUBJECT);
    assert_eq!(m.rcpt_to(), vec!["ops@example.test".to_string()]);
    assert_eq!(m.must("X-Certvigil-Key"), rows[0]["key"].as_str().unwrap());
    assert!(pending(&sb, None, &mut runs).is_empty());
    let all = cv(&sb, NOW, None, &["outbox", "--all", "-o", "json"]).expect_code(0).json();
    assert_eq!((all[0]["attempts"].as_i64(), all[0]["sent_at"].as_i64()), (Some(2), Some(NOW + 31)), "{all:#}");
    assert_eq!(all[0]["last_error"], Value::Null);
}

#[test]
fn auth_with_the_right_password_delivers_over_starttls_and_implicit_tls_and_it_never_shows() {
    let tmp = tempfile::tempdir().unwrap();
    let tls = smtp_tls_files(tmp.path());
    let starttls = TlsSmtp::start(Mode::Starttls, &tls, true);
    let smtps = TlsSmtp::start(Mode::Smtps, &tls, true);
    assert!(plain_greeting(starttls.port).starts_with("220"));
    assert_eq!(plain_greeting(smtps.port), "");
    let sb = Sandbox::new();
    let mut runs = Vec::new();
    configure(
        &sb,
        &[
            receiver("mail-starttls", starttls.port, "starttls", Some(&tls.ca), true),
            receiver("mail-smtps", smtps.port, "tls", Some(&tls.ca), true),
        ],
    );
    runs.push(cv(&sb, NOW, Some(PASSWORD), &["scan", "--no-progress"]).expect_code(0));
    let ev = cv(&sb, NOW, Some(PASSWORD), &["evaluate"]).expect_code(0);
    assert!(ev.stdout.contains("2 notifications queued, 2 sent, 0 failed"), "{}", ev.stdout);
    runs.push(ev);

    for (server, transport) in [(&starttls, "starttls"), (&smtps, "implicit-tls")] {
        // The server accepted one AUTH, over TLS, for the configured user, and the message came
        // in that authenticated session.
        let auths = server.auth_events();
        assert_eq!(auths.len(), 1, "{auths:?}");
        assert_eq!((auths[0]["login"].as_str(), auths[0]["success"].as_bool()), (Some(USER), Some(true)), "{auths:?}");
        assert!(auths[0]["tls"].as_str().is_some_and(|v| v.starts_with("TLSv1.")), "{auths:?}");
        let m = one_mail(server);
        assert_eq!(m.must("X-Test-Auth"), USER, "{}", m.raw);
        assert_eq!(m.must("X-Test-Transport"), transport, "{}", m.raw);
        assert_eq!(m.subject(), EXPIRED_SUBJECT);
    }
    assert!(pending(&sb, Some(PASSWORD), &mut runs).is_empty());
    runs.push(cv(&sb, NOW, Some(PASSWORD), &["outbox", "--all", "-o", "json"]).expect_code(0));
    runs.push(cv(&sb, NOW, Some(PASSWORD), &["outbox", "--all"]).expect_code(0));
    runs.push(cv(&sb, NOW, Some(PASSWORD), &["alerts", "--all", "-o", "json"]).expect_code(0));
    runs.push(cv(&sb, NOW, Some(PASSWORD), &["alert", "test", "--route", "ops"]).expect_code(0));
    assert!(runs.last().unwrap().stdout.contains("test to route ops: 2 sent, 0 failed"), "{}", runs.last().unwrap().stdout);
    assert_eq!((starttls.messages().len(), smtps.messages().len()), (2, 2));
    assert_never_shown(&sb, &runs, &[PASSWORD]);
}

#[test]
fn a_wrong_password_fails_naming_authentication_and_the_notification_stays_queued() {
    let tmp = tempfile::tempdir().unwrap();
    let tls = smtp_tls_files(tmp.path());
    let starttls = TlsSmtp::start(Mode::Starttls, &tls, true);
    let smtps = TlsSmtp::start(Mode::Smtps, &tls, true);
    let sb = Sandbox::new();
    let mut runs = Vec::new();
    configure(
        &sb,
        &[
            receiver("mail-smtps", smtps.port, "tls", Some(&tls.ca), true),
            receiver("mail-starttls", starttls.port, "starttls", Some(&tls.ca), true),
        ],
    );
    runs.push(cv(&sb, NOW, Some(WRONG_PASSWORD), &["scan", "--no-progress"]).expect_code(0));
    let ev = cv(&sb, NOW, Some(WRONG_PASSWORD), &["evaluate"]).expect_code(1);
    assert!(ev.stdout.contains("2 notifications queued, 0 sent, 2 failed"), "{}", ev.stdout);
    runs.push(ev);

    let rows = pending(&sb, Some(WRONG_PASSWORD), &mut runs);
    let receivers: Vec<&str> = rows.iter().filter_map(|r| r["receiver"].as_str()).collect();
    assert_eq!(receivers, vec!["mail-smtps", "mail-starttls"], "{rows:#?}");
    for (row, server) in rows.iter().zip([&smtps, &starttls]) {
        assert_eq!((row["attempts"].as_i64(), row["sent_at"].as_i64()), (Some(1), None), "{row:#}");
        assert_eq!(row["next_attempt_at"].as_i64(), Some(NOW + 30), "{row:#}");
        let err = row["last_error"].as_str().unwrap();
        assert!(err.starts_with(&format!("SMTP 127.0.0.1:{}: ", server.port)), "{err}");
        // The server's refusal (RFC 4954 §6: 535 5.7.8), named as such by certvigil whatever
        // the server's reply text.
        assert!(err.contains("authentication failed: ") && err.contains("535"), "{err}");
        // The server did refuse this user's credentials: the TLS session was fine.
        let auths = server.auth_events();
        assert!(!auths.is_empty() && auths.iter().all(|a| a["login"] == USER && a["success"] == false), "{auths:?}");
        assert!(server.messages().is_empty());
    }
    let text = cv(&sb, NOW, Some(WRONG_PASSWORD), &["outbox"]).expect_code(0);
    assert_eq!(text.stdout.matches("pending, attempt 2 at 2026-06-01T00:00:30Z").count(), 2, "{}", text.stdout);
    runs.push(text);
    // Not before the retry time, whatever the password.
    let early = cv(&sb, NOW + 10, Some(PASSWORD), &["evaluate"]).expect_code(0);
    assert!(early.stdout.contains("0 sent, 0 failed"), "{}", early.stdout);
    runs.push(early);
    assert_never_shown(&sb, &runs, &[WRONG_PASSWORD, PASSWORD]);

    // The password corrected: both go out at the next attempt, authenticated.
    let ev = cv(&sb, NOW + 31, Some(PASSWORD), &["evaluate"]).expect_code(0);
    assert!(ev.stdout.contains("2 sent, 0 failed"), "{}", ev.stdout);
    runs.push(ev);
    for server in [&smtps, &starttls] {
        assert_eq!(one_mail(server).must("X-Test-Auth"), USER);
        assert_eq!(server.auth_events().last().unwrap()["success"], true);
    }
    assert!(pending(&sb, Some(PASSWORD), &mut runs).is_empty());
    assert_never_shown(&sb, &runs, &[WRONG_PASSWORD, PASSWORD]);
}
