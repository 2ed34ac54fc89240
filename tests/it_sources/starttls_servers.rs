//! The `tls` source's STARTTLS dialogues against the real servers operators run: Dovecot (IMAP,
//! RFC 3501 §6.2.1) and OpenLDAP's slapd (the StartTLS extended operation, RFC 4511 §4.14), each
//! started by the test from its own configuration in a temporary directory, on 127.0.0.1 at an
//! ephemeral port, serving a leaf and its intermediate from a chain made here (root →
//! intermediate → leaf, `tests/common`'s `issue`, valid by the real clock: TLS verification
//! uses it, not `--now`). Dovecot's master runs as root with its workers as the packaged
//! `dovecot`/`dovenull` users; slapd drops to `openldap` after binding. Both are stopped when
//! the test ends (SIGTERM, then SIGKILL), whatever happens.
//!
//! The real `certvigil scan` inventories what each server presents after the upgrade, through
//! two sources over the same endpoints: one trusting the test root (`ca_bundle`), one with the
//! system trust store. A second instance of each server without TLS shows how a refused upgrade
//! is reported. The servers themselves are checked first with their own ecosystem's clients
//! (`openssl s_client -starttls imap`, `ldapsearch -ZZ`), so a failure here is certvigil's.
//!
//! `tests/components/mailtls.sh` installs dovecot-imapd, slapd and ldap-utils; a missing one
//! fails the test, saying so.

// Test helpers: a failed setup step should stop the test where it happened.
#![allow(clippy::unwrap_used)]

use crate::common;

use common::*;
use rcgen::{KeyUsagePurpose, SanType};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DOVECOT: &str = "/usr/sbin/dovecot";
const SLAPD: &str = "/usr/sbin/slapd";
const INSTALL: &str = "run tests/components/mailtls.sh (it installs dovecot-imapd, slapd and ldap-utils)";

fn real_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn is_root() -> bool {
    rustix::process::getuid().is_root()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

// --- the chain -------------------------------------------------------------------------------

/// Root → intermediate → one leaf per server, for `IP:127.0.0.1` (what the endpoints are
/// verified against: every target is an address).
struct Pki {
    root: Issued,
    inter: Issued,
}

/// Offset from the fixtures' clock to `real_now() + delta` (`issue` takes offsets from `NOW`).
fn real(delta: i64) -> i64 {
    real_now() + delta - NOW
}

fn pki() -> Pki {
    let ca = |name, cn, serial, path_len| Spec {
        ca_path_len: Some(path_len),
        key_usage: vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
        eku: vec![],
        sans: vec![],
        ..Spec::leaf(name, cn, serial, real(-10 * DAY), real(365 * DAY), KeyKind::P256)
    };
    let root = issue(ca("root", "certvigil STARTTLS Test Root", &[0x5a, 0x01], 1), None);
    let inter = issue(ca("inter", "certvigil STARTTLS Test Issuing CA", &[0x5a, 0x02], 0), Some(&root));
    Pki { root, inter }
}

fn server_leaf(pki: &Pki, name: &'static str, cn: &'static str, serial: &'static [u8]) -> Issued {
    issue(
        Spec {
            key_usage: vec![KeyUsagePurpose::DigitalSignature],
            sans: vec![SanType::DnsName(cn.try_into().unwrap()), SanType::IpAddress([127, 0, 0, 1].into())],
            ..Spec::leaf(name, cn, serial, real(-DAY), real(90 * DAY), KeyKind::P256)
        },
        Some(&pki.inter),
    )
}

/// `cert.pem` (leaf, then intermediate: what the server presents) and `key.pem` in `dir`.
fn server_files(dir: &Path, leaf: &Issued, pki: &Pki) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, format!("{}{}", leaf.cert.pem, pki.inter.cert.pem)).unwrap();
    std::fs::write(&key, &leaf.cert.key_pem).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    (cert, key)
}

// --- the servers -----------------------------------------------------------------------------

/// A server process, stopped when dropped: SIGTERM (Dovecot's master then stops its workers),
/// SIGKILL if it is still there after five seconds.
struct Daemon {
    port: u16,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = rustix::process::kill_process(rustix::process::Pid::from_child(&self.child), rustix::process::Signal::TERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Starts `cmd` (whose configuration names `port`) and waits until the port accepts.
    fn spawn(name: &'static str, mut cmd: Command, port: u16, log: PathBuf, dir: tempfile::TempDir) -> Result<Daemon, String> {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {name} ({e}): {INSTALL}"));
        let mut d = Daemon { port, child, log, _dir: dir };
        let start = Instant::now();
        loop {
            if let Some(st) = d.child.try_wait().unwrap() {
                return Err(format!("{name} exited ({st}):\n{}", d.log_text()));
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(d);
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(format!("{name} did not listen on 127.0.0.1:{port} within 30 s:\n{}", d.log_text()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Tries a few ports: another process may take the chosen one before the server binds it.
fn start_on_free_port(name: &str, mut attempt: impl FnMut(u16) -> Result<Daemon, String>) -> Daemon {
    let mut last = String::new();
    for _ in 0..5 {
        match attempt(free_port()) {
            Ok(d) => return d,
            Err(e) => last = e,
        }
    }
    panic!("{name} did not start: {last}");
}

/// `id -un` / `id -gn`: the current user's and group's names.
fn id(flag: &str) -> String {
    let out = Command::new("id").arg(flag).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Dovecot for IMAP only, in the foreground (`dovecot -F -c CONF`), with STARTTLS offered when
/// `tls` holds the certificate and key (`ssl = yes`), none otherwise (`ssl = no`).
fn dovecot(tls: Option<(&Path, &Path)>) -> Daemon {
    assert!(Path::new(DOVECOT).exists(), "{DOVECOT} is missing: {INSTALL}");
    start_on_free_port("dovecot", |port| {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ssl = match tls {
            Some((cert, key)) => format!("ssl = yes\nssl_cert = <{}\nssl_key = <{}\n", cert.display(), key.display()),
            None => "ssl = no\n".to_string(),
        };
        // As root the workers run as the packaged unprivileged users (login processes chrooted);
        // otherwise everything runs as the current user, without chroots (Dovecot's rootless
        // setup).
        let users = if is_root() {
            "default_internal_user = dovecot\ndefault_login_user = dovenull\n".to_string()
        } else {
            let (me, group) = (id("-un"), id("-gn"));
            format!(
                "default_internal_user = {me}\ndefault_login_user = {me}\ndefault_internal_group = {group}\n\
                 service anvil {{\n  chroot =\n}}\nservice imap-login {{\n  chroot =\n}}\n"
            )
        };
        std::fs::write(d.join("passwd"), "").unwrap();
        let conf = format!(
            "base_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/dovecot.log\nprotocols = imap\nlisten = 127.0.0.1\n\
             {ssl}{users}login_trusted_networks = 127.0.0.1/32\nauth_mechanisms = plain\n\
             passdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={d}/home\n}}\n\
             mail_location = maildir:{d}/mail\n\
             service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n  \
             inet_listener imaps {{\n    port = 0\n  }}\n}}\n",
            d = d.display()
        );
        std::fs::write(d.join("dovecot.conf"), conf).unwrap();
        let mut cmd = Command::new(DOVECOT);
        cmd.arg("-F").arg("-c").arg(d.join("dovecot.conf"));
        let log = d.join("dovecot.log");
        Daemon::spawn("dovecot", cmd, port, log, dir)
    })
}

/// `openldap`'s uid and gid, from the passwd database.
fn openldap_ids() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("openldap:"))?;
    let f: Vec<&str> = line.split(':').collect();
    Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

/// slapd from an old-style `slapd.conf` with one empty mdb database, StartTLS offered when
/// `tls` holds the certificate, key and CA files. As root it drops to `openldap` after binding
/// (its files are handed to that user first: slapd reads the key after dropping).
fn slapd(tls: Option<(&Path, &Path, &Path)>) -> Daemon {
    assert!(Path::new(SLAPD).exists(), "{SLAPD} is missing: {INSTALL}");
    start_on_free_port("slapd", |port| {
        // The top directory (root's, traversable) holds the log; `slapd/` is slapd's own.
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let d = dir.path().join("slapd");
        std::fs::create_dir_all(d.join("db")).unwrap();
        let mut conf = format!(
            "include /etc/ldap/schema/core.schema\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\npidfile {d}/slapd.pid\n",
            d = d.display()
        );
        if let Some((cert, key, ca)) = tls {
            for (k, src, dst) in [
                ("TLSCertificateFile", cert, "cert.pem"),
                ("TLSCertificateKeyFile", key, "key.pem"),
                ("TLSCACertificateFile", ca, "ca.pem"),
            ] {
                std::fs::copy(src, d.join(dst)).unwrap();
                conf.push_str(&format!("{k} {}\n", d.join(dst).display()));
            }
        }
        conf.push_str(&format!("database mdb\nsuffix \"dc=example,dc=test\"\ndirectory {}/db\nmaxsize 10485760\n", d.display()));
        std::fs::write(d.join("slapd.conf"), conf).unwrap();
        let mut cmd = Command::new(SLAPD);
        cmd.args(["-d", "0", "-h", &format!("ldap://127.0.0.1:{port}/"), "-f"]).arg(d.join("slapd.conf"));
        if is_root()
            && let Some((uid, gid)) = openldap_ids()
        {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
            for p in std::iter::once(d.clone()).chain(std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().path())) {
                std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
            }
            cmd.args(["-u", "openldap", "-g", "openldap"]);
        }
        let log = dir.path().join("slapd.log");
        Daemon::spawn("slapd", cmd, port, log, dir)
    })
}

// --- independent checks of the servers ---------------------------------------------------------

/// `openssl s_client -starttls imap`, verifying against the root only: the server upgrades and
/// presents a chain a real client accepts (so it sends the intermediate).
fn s_client_imap(port: u16, root: &Path) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-starttls", "imap", "-connect", &format!("127.0.0.1:{port}"), "-verify_return_error", "-CAfile"])
        .arg(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl (tests/run.sh installs it)");
    child.stdin.take().unwrap().write_all(b"a1 LOGOUT\r\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("Verify return code: 0 (ok)"), "openssl s_client -starttls imap:\n{text}");
    text
}

/// `ldapsearch -ZZ` (StartTLS required) reading the root DSE, trusting only the root.
fn ldapsearch_starttls(port: u16, root: &Path) -> Result<String, String> {
    let out = Command::new("ldapsearch")
        .args(["-x", "-ZZ", "-H", &format!("ldap://127.0.0.1:{port}/"), "-b", "", "-s", "base", "supportedExtension"])
        .env("LDAPTLS_CACERT", root)
        .env("LDAPTLS_REQCERT", "demand")
        .env("LDAPCONF", "/dev/null")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("ldapsearch ({e}): {INSTALL}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() { Ok(text) } else { Err(text) }
}

// --- certvigil -------------------------------------------------------------------------------

/// Runs certvigil at the real clock (the chains are judged by it).
fn cv(sb: &Sandbox, args: &[&str]) -> Run {
    sb.run_at(real_now(), args)
}

/// `trusted` (ca_bundle: the test root) over `trusted_targets`, `system` (the system trust
/// store) over `system_targets`.
fn configure(sb: &Sandbox, pki: &Pki, trusted_targets: &[String], system_targets: &[String]) {
    sb.write("trust/root.pem", &pki.root.cert.pem);
    let list = |t: &[String]| t.iter().map(|t| format!("      - {t}\n")).collect::<String>();
    sb.config(&format!(
        "sources:\n  - name: trusted\n    kind: tls\n    ca_bundle: trust/root.pem\n    timeout: 10s\n    targets:\n{}  \
         - name: system\n    kind: tls\n    timeout: 10s\n    targets:\n{}",
        list(trusted_targets),
        list(system_targets)
    ));
    cv(sb, &["config", "validate"]).expect_code(0);
}

fn target(port: u16, proto: &str) -> String {
    format!("{{address: '127.0.0.1:{port}', starttls: {proto}}}")
}

/// Fingerprints of the inventory (`list -o json`), sorted.
fn inventory(sb: &Sandbox) -> Vec<String> {
    let list = cv(sb, &["list", "-o", "json"]).expect_code(0).json();
    let mut fps: Vec<String> = list.as_array().unwrap().iter().map(|c| c["fingerprint"].as_str().unwrap().to_string()).collect();
    fps.sort();
    fps
}

/// The sightings of one certificate (`show -o json`): (source, location, meta).
fn sightings(sb: &Sandbox, fingerprint: &str) -> Vec<(String, String, serde_json::Value)> {
    let show = cv(sb, &["show", fingerprint, "-o", "json"]).expect_code(0).json();
    let mut v: Vec<_> = show["sightings"]
        .as_array()
        .unwrap_or_else(|| panic!("no sightings: {show:#}"))
        .iter()
        .map(|s| (s["source"].as_str().unwrap().to_string(), s["location"].as_str().unwrap().to_string(), s["meta"].clone()))
        .collect();
    v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    v
}

/// What both servers' tests check once the scan has run: the inventory is the served leaf and
/// intermediate (never the root, which no server sends); the leaf is sighted by both sources at
/// the endpoint, verified against the bundle and unknown to the system store; the intermediate
/// is the same certificate in both chains.
#[track_caller]
fn assert_served_chain(sb: &Sandbox, pki: &Pki, leaf: &Issued, port: u16, proto: &str) {
    let mut want = vec![leaf.cert.fingerprint.clone(), pki.inter.cert.fingerprint.clone()];
    want.sort();
    assert_eq!(inventory(sb), want, "the inventory is the served leaf and intermediate");

    let location = format!("tls://127.0.0.1:{port}?starttls={proto}");
    let seen = sightings(sb, &leaf.cert.fingerprint);
    let sources: Vec<(&str, &str)> = seen.iter().map(|(s, l, _)| (s.as_str(), l.as_str())).collect();
    assert_eq!(sources, vec![("system", location.as_str()), ("trusted", location.as_str())], "{seen:#?}");
    for (source, _, m) in &seen {
        assert_eq!(m["endpoint"], format!("127.0.0.1:{port}"), "{m:#}");
        assert_eq!(m["server_name"], "127.0.0.1", "{m:#}");
        assert_eq!(m["starttls"], proto, "{m:#}");
        assert_eq!(m["chain_length"], 2, "leaf and intermediate were served: {m:#}");
        assert_eq!(m["leaf_sha256"], leaf.cert.fingerprint.as_str(), "{m:#}");
        assert!(m["protocol"].as_str().is_some_and(|p| p.starts_with("TLSv1_")), "{m:#}");
        assert!(m["cipher_suite"].as_str().is_some_and(|c| !c.is_empty()), "{m:#}");
        assert_eq!(m["stapled_ocsp"]["present"], false, "{m:#}");
        if source == "trusted" {
            assert_eq!((m["verified"].as_bool(), &m["verify_error"]), (Some(true), &serde_json::Value::Null), "{m:#}");
        } else {
            assert_eq!(m["verified"], false, "the test root is not in the system store: {m:#}");
            assert!(m["verify_error"].as_str().unwrap_or("").contains("UnknownIssuer"), "{m:#}");
        }
    }
    // The intermediate came in the same chains.
    let inter = sightings(sb, &pki.inter.cert.fingerprint);
    assert_eq!(inter.iter().map(|(s, l, _)| (s.as_str(), l.as_str())).collect::<Vec<_>>(), sources, "{inter:#?}");
    let show = cv(sb, &["show", &leaf.cert.fingerprint]).expect_code(0).stdout;
    assert!(show.contains(&leaf.cert.subject) && show.contains(&pki.inter.cert.subject), "{show}");
}

/// One scan error, for the endpoint at `port`, whose message contains `want`.
#[track_caller]
fn assert_one_error(scan: &serde_json::Value, port: u16, proto: &str, want: &str) {
    assert_eq!(scan["run"]["errors"], 1, "{scan:#}");
    let e = &scan["errors"][0];
    assert_eq!(e["location"], format!("tls://127.0.0.1:{port}?starttls={proto}"), "{scan:#}");
    let msg = e["message"].as_str().unwrap_or("");
    assert!(msg.starts_with(&format!("127.0.0.1:{port}: ")) && msg.contains(want), "{scan:#}");
}

// --- the tests -------------------------------------------------------------------------------

#[test]
fn dovecot_imap_starttls_chain_is_inventoried_and_verified_against_the_bundle() {
    let pki = pki();
    let leaf = server_leaf(&pki, "imap", "imap.example.test", &[0x5a, 0x10]);
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = server_files(files.path(), &leaf, &pki);
    let sb = Sandbox::new();
    let root = sb.write("trust/root.pem", &pki.root.cert.pem);

    let imap = dovecot(Some((&cert, &key)));
    let plain = dovecot(None);
    // Dovecot upgrades and serves the chain a real client accepts.
    s_client_imap(imap.port, &root);

    configure(&sb, &pki, &[target(imap.port, "imap"), target(plain.port, "imap")], &[target(imap.port, "imap")]);
    let scan = cv(&sb, &["scan", "-o", "json"]).expect_code(4).json();
    // Dovecot without TLS refuses the command: the error quotes its tagged answer.
    assert_one_error(&scan, plain.port, "imap", "IMAP STARTTLS: `cv1 BAD");
    assert_served_chain(&sb, &pki, &leaf, imap.port, "imap");
}

#[test]
fn slapd_ldap_starttls_chain_is_inventoried_and_verified_against_the_bundle() {
    let pki = pki();
    let leaf = server_leaf(&pki, "ldap", "ldap.example.test", &[0x5a, 0x20]);
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = server_files(files.path(), &leaf, &pki);
    let sb = Sandbox::new();
    let root = sb.write("trust/root.pem", &pki.root.cert.pem);

    let ldap = slapd(Some((&cert, &key, &root)));
    let plain = slapd(None);
    // slapd upgrades and serves the chain a real client accepts; the one without TLS refuses.
    let dse = ldapsearch_starttls(ldap.port, &root).unwrap_or_else(|e| panic!("ldapsearch -ZZ against slapd:\n{e}\n{}", ldap.log_text()));
    assert!(dse.contains("1.3.6.1.4.1.1466.20037"), "slapd lists the StartTLS extended operation:\n{dse}");
    assert!(ldapsearch_starttls(plain.port, &root).is_err());

    configure(&sb, &pki, &[target(ldap.port, "ldap"), target(plain.port, "ldap")], &[target(ldap.port, "ldap")]);
    let scan = cv(&sb, &["scan", "-o", "json"]).expect_code(4).json();
    // protocolError (2): slapd without TLS does not support the extended operation.
    assert_one_error(&scan, plain.port, "ldap", "LDAP StartTLS refused (resultCode 2)");
    assert_served_chain(&sb, &pki, &leaf, ldap.port, "ldap");
}
