//! PostgreSQL for the benchmarks that scan into it (`benches/scan.rs`, `benches/cluster.rs`,
//! included with `#[path = "harness/pg.rs"]` beside `harness/mod.rs` and `harness/tree.rs`): the
//! admin URL (`CERTVIGIL_BENCH_POSTGRES`, else `CERTVIGIL_TEST_POSTGRES`, which `tests/run.sh`
//! exports for its throwaway cluster), a fresh database per measured run (dropped afterwards),
//! the digest of the certificates a store holds, and the CPU time of the server's processes when
//! it runs on this machine.
//!
//! The harness connects without TLS (the loopback clusters of `tests/postgres.sh`). certvigil is
//! given the database's URL with `sslmode=disable` unless the admin URL has a query of its own,
//! and never with a password in it (it refuses one there): a password in the admin URL goes to
//! certvigil as `store.password: ${env:CERTVIGIL_BENCH_PG_PASSWORD}`.

#![allow(dead_code)]

use crate::tree::Tally;
use anyhow::{Context, Result, bail};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where certvigil reads the password of a database whose admin URL had one.
pub const PASSWORD_ENV: &str = "CERTVIGIL_BENCH_PG_PASSWORD";

/// The admin URL to make databases with, if one is given.
pub fn admin_url() -> Option<String> {
    ["CERTVIGIL_BENCH_POSTGRES", "CERTVIGIL_TEST_POSTGRES"].iter().find_map(|k| std::env::var(k).ok().filter(|u| !u.trim().is_empty()))
}

/// A URL's parts: `scheme://user[:password]@host[:port]/database[?query]`.
struct Parts {
    scheme: String,
    /// `user[:password]` as written (empty when there is none).
    userinfo: String,
    user: String,
    password: Option<String>,
    host: String,
    query: Option<String>,
}

fn parse(url: &str) -> Result<Parts> {
    let Some((scheme, rest)) = url.split_once("://") else { bail!("the PostgreSQL admin URL is not a postgres:// URL") };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q.to_string())),
        None => (rest, None),
    };
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    let (userinfo, host) = authority.rsplit_once('@').unwrap_or(("", authority));
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u, Some(crate::harness::percent_decode(p))),
        None => (userinfo, None),
    };
    Ok(Parts { scheme: scheme.into(), userinfo: userinfo.into(), user: user.into(), password, host: host.into(), query })
}

impl Parts {
    /// The URL of database `name`, with `userinfo` before the host.
    fn url(&self, userinfo: &str, name: &str) -> String {
        let query = self.query.as_deref().unwrap_or("sslmode=disable");
        let at = if userinfo.is_empty() { String::new() } else { format!("{userinfo}@") };
        format!("{}://{at}{}/{name}?{query}", self.scheme, self.host)
    }
}

/// `url` with any password left out, for messages.
fn redact(url: &str) -> String {
    match parse(url) {
        Ok(p) if p.password.is_some() => format!("{}://{}:***@{}/…", p.scheme, p.user, p.host),
        _ => url.to_string(),
    }
}

/// A database made for one run, dropped when this goes out of scope (unless kept).
pub struct Database {
    pub name: String,
    /// The URL certvigil is given: no password, `sslmode=disable` unless the admin URL had a query.
    pub url: String,
    /// The harness's own connections (password included).
    client_url: String,
    admin_url: String,
    password: Option<String>,
    keep: bool,
}

impl Database {
    /// `CREATE DATABASE certvigil_bench_TAG_PID_N` with the C collation (as the README asks).
    pub fn create(admin: &str, tag: &str) -> Result<Database> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let clean: String = tag.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).take(24).collect();
        let name = format!("certvigil_bench_{clean}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let p = parse(admin)?;
        let (url, client_url) = (p.url(&p.user, &name), p.url(&p.userinfo, &name));
        connect(admin)?
            .batch_execute(&format!("CREATE DATABASE {name} LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"))
            .with_context(|| format!("creating the database {name} on {}", redact(admin)))?;
        Ok(Database { name, url, client_url, admin_url: admin.to_string(), password: p.password, keep: false })
    }

    pub fn client(&self) -> Result<postgres::Client> {
        connect(&self.client_url)
    }

    /// What a certvigil child needs in its environment (the password, if any).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        self.password.iter().map(|p| (PASSWORD_ENV, p.clone())).collect()
    }

    /// The `store:` section of a configuration for this database.
    pub fn store_yaml(&self) -> Result<String> {
        let mut s = format!("store:\n  url: {}\n", serde_json::to_string(&self.url)?);
        if self.password.is_some() {
            s.push_str(&format!("  password: \"${{env:{PASSWORD_ENV}}}\"\n"));
        }
        Ok(s)
    }

    /// Leaves the database in place (its name is printed by the caller).
    pub fn keep(&mut self) {
        self.keep = true;
    }

    /// The digest of the current certificates, and the number of objects holding any, in
    /// `sources` (all when empty).
    pub fn tally(&self, sources: &[&str]) -> Result<Tally> {
        let mut c = self.client()?;
        let mut found = Tally::default();
        for row in
            c.query("SELECT fingerprint, not_after FROM certificates WHERE gone_since IS NULL", &[]).context("reading the certificates")?
        {
            found.add_fingerprint(row.try_get(0)?, row.try_get(1)?)?;
        }
        let names: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        let row = c
            .query_one("SELECT count(*) FROM objects WHERE certs > 0 AND (cardinality($1::text[]) = 0 OR source = ANY($1))", &[&names])
            .context("counting stored objects")?;
        found.files = row.try_get::<_, i64>(0)? as u64;
        Ok(found)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let dropped =
            connect(&self.admin_url).and_then(|mut c| Ok(c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))?));
        if let Err(e) = dropped {
            eprintln!("could not drop the benchmark database {}: {e:#}", self.name);
        }
    }
}

fn connect(url: &str) -> Result<postgres::Client> {
    postgres::Client::connect(url, postgres::NoTls).with_context(|| format!("connecting to {}", redact(url)))
}

/// The server's processes on this machine: its postmaster (the parent of a backend), whose
/// children are every other process of the server.
#[derive(Debug, Clone, Copy)]
pub struct Server {
    postmaster: u32,
}

impl Server {
    /// The server behind `admin`, when it runs here (its backend's /proc entry is readable).
    pub fn find(admin: &str) -> Option<Server> {
        let mut c = connect(admin).ok()?;
        let backend: i32 = c.query_one("SELECT pg_backend_pid()", &[]).ok()?.try_get(0).ok()?;
        Some(Server { postmaster: parent(u32::try_from(backend).ok()?)? })
    }

    /// CPU seconds (user + system) the server has used so far: the postmaster's own and its
    /// reaped children's (backends that ended), and those of its children still running. The
    /// difference across a run is the server's CPU for that run (other clients of the same
    /// server included).
    pub fn cpu_s(&self) -> Option<f64> {
        let mut ticks = process_ticks(self.postmaster, true)?;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            if parent(pid) == Some(self.postmaster) {
                ticks += process_ticks(pid, true).unwrap_or(0);
            }
        }
        Some(ticks as f64 / TICKS_PER_S)
    }
}

/// The parent of `pid` (/proc/PID/status `PPid`).
fn parent(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("PPid:")).and_then(|v| v.trim().parse().ok())
}

/// /proc times are in USER_HZ, 100 a second on the architectures this runs on (x86, ARM).
const TICKS_PER_S: f64 = 100.0;

/// utime + stime of `pid` (proc(5) fields 14, 15), with cutime + cstime (16, 17) when
/// `reaped_children`.
fn process_ticks(pid: u32, reaped_children: bool) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name in parentheses the fields start at 3 (state).
    let fields: Vec<u64> = stat.rsplit_once(')')?.1.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    let n = if reaped_children { 4 } else { 2 };
    Some(fields.get(11..11 + n)?.iter().sum())
}

/// User + system CPU seconds of a running process so far (its own threads only).
pub fn process_cpu_s(pid: u32) -> Option<f64> {
    process_ticks(pid, false).map(|t| t as f64 / TICKS_PER_S)
}
