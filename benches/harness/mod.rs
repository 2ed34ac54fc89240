//! What the benchmarks share (`benches/scan.rs`, `benches/revocation.rs`, `benches/fleet.rs`,
//! included with `#[path = "harness/mod.rs"]`): running a child under GNU time for its wall
//! time, CPU time and peak RSS (with an optional deadline), building a Go baseline offline,
//! running openssl (and the real OCSP responder, `openssl ocsp -index`), the DER pieces of an AIA
//! extension, percent-decoding of OCSP GET URLs, and the small number helpers of the reports.

#![allow(dead_code)]

use anyhow::{Context, Result, anyhow, ensure};
use rcgen::CustomExtension;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn openssl_version() -> String {
    Command::new("openssl")
        .arg("version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "openssl not found".into())
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn round(v: f64, places: i32) -> f64 {
    let m = 10f64.powi(places);
    (v * m).round() / m
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Runs `openssl args` in `dir`; its stderr's last lines make the error.
pub fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running openssl {}", args.first().unwrap_or(&"")))?;
    ensure!(out.status.success(), "openssl {} failed:\n{}", args.join(" "), tail(&String::from_utf8_lossy(&out.stderr), 20));
    Ok(())
}

/// A DER TLV with a definite length.
pub fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|&b| b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// An AuthorityInfoAccess extension naming one OCSP responder (RFC 5280 §4.2.2.1).
pub fn aia_ocsp(url: &str) -> CustomExtension {
    const ID_AD_OCSP: [u8; 10] = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];
    let description = der_tlv(0x30, &[&ID_AD_OCSP[..], &der_tlv(0x86, url.as_bytes())].concat());
    CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], der_tlv(0x30, &description))
}

/// `%XX` escapes decoded (an OCSP GET's base64 request in the URL, RFC 6960 appendix A.1).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Builds `source` with `go` into `out`, offline (no proxy, no toolchain download), its caches
/// under `cache`.
pub fn go_build(go: &Path, source: &Path, out: &Path, cache: &Path) -> Result<()> {
    let done = Command::new(go)
        .args(["build", "-trimpath", "-o"])
        .arg(out)
        .arg(source)
        .env("GOCACHE", cache.join("go-cache"))
        .env("GOPATH", cache.join("go-path"))
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0")
        .output()
        .with_context(|| format!("running {} build", go.display()))?;
    ensure!(done.status.success(), "go build {} failed:\n{}", source.display(), String::from_utf8_lossy(&done.stderr));
    Ok(())
}

/// What GNU time said about a child, and the child's output.
pub struct Timed {
    pub wall_s: f64,
    /// User + system CPU and peak RSS (`ru_maxrss`); absent when not measured (the smoke runs).
    pub cpu_s: Option<f64>,
    pub peak_rss_kib: Option<u64>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program args` (with `env` added) under `/usr/bin/time` when `measure` is set, which
/// reports the child's peak RSS (its getrusage ru_maxrss) and CPU time; wall time is measured
/// here around the whole child. With `measure` false the child runs directly. A `deadline`
/// puts the child in its own process group and kills that group when it runs longer.
pub fn timed(
    program: &Path,
    args: &[OsString],
    env: &[(&str, &str)],
    what: &str,
    measure: bool,
    deadline: Option<Duration>,
) -> Result<Timed> {
    let time_file = tempfile::NamedTempFile::new().context("creating a file for /usr/bin/time")?;
    let mut cmd = if measure {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "%e %M %U %S", "-o"]).arg(time_file.path()).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args).envs(env.iter().copied()).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if deadline.is_some() {
        cmd.process_group(0);
    }
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("running {what} ({})", program.display()))?;
    let pid = rustix::process::Pid::from_child(&child);
    let (mut out, mut err) = (child.stdout.take().context("no stdout")?, child.stderr.take().context("no stderr")?);
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let (status, timed_out) = match deadline {
        None => (rx.recv().map_err(|_| anyhow!("lost {what}"))?, false),
        Some(limit) => match rx.recv_timeout(limit) {
            Ok(status) => (status, false),
            Err(_) => {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                (rx.recv().map_err(|_| anyhow!("lost {what}"))?, true)
            }
        },
    };
    let wall_s = start.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    ensure!(!timed_out, "{what} ran longer than {} s and was killed:\n{}", deadline.unwrap_or_default().as_secs(), tail(&stderr, 20));
    let status = status.with_context(|| format!("waiting for {what}"))?;
    ensure!(status.success(), "{what} failed ({status}):\n{}", tail(&stderr, 40));
    if !measure {
        return Ok(Timed { wall_s, cpu_s: None, peak_rss_kib: None, stdout, stderr });
    }
    // The figures are the report's last line (GNU time may write a status line above them).
    let report = std::fs::read_to_string(time_file.path()).context("reading /usr/bin/time's report")?;
    let fields: Vec<&str> = report.lines().last().unwrap_or_default().split_whitespace().collect();
    let parse = |k: usize| -> Result<f64> {
        fields.get(k).and_then(|f| f.parse().ok()).with_context(|| format!("unexpected /usr/bin/time report {report:?}"))
    };
    Ok(Timed { wall_s, cpu_s: Some(parse(2)? + parse(3)?), peak_rss_kib: Some(parse(1)? as u64), stdout, stderr })
}

/// One answer from the real responder, `openssl ocsp -index … -reqin … -respout …` run in the
/// CA's `dir` (index.txt, ca.pem, ca.key), its request and response files numbered `n` in
/// `spool` and removed afterwards.
pub fn run_openssl_ocsp(dir: &Path, spool: &Path, n: u64, request: &[u8]) -> Result<Vec<u8>, String> {
    let (req, resp) = (spool.join(format!("req-{n}.der")), spool.join(format!("resp-{n}.der")));
    std::fs::write(&req, request).map_err(|e| format!("{}: {e}", req.display()))?;
    let out = Command::new("openssl")
        .args(["ocsp", "-index", "index.txt", "-CA", "ca.pem", "-rsigner", "ca.pem", "-rkey", "ca.key", "-ndays", "1", "-reqin"])
        .arg(&req)
        .arg("-respout")
        .arg(&resp)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running openssl ocsp: {e}"))?;
    let _ = std::fs::remove_file(&req);
    if !out.status.success() {
        return Err(format!("openssl ocsp failed: {}", tail(&String::from_utf8_lossy(&out.stderr), 5)));
    }
    let der = std::fs::read(&resp).map_err(|e| format!("{}: {e}", resp.display()));
    let _ = std::fs::remove_file(&resp);
    der
}
