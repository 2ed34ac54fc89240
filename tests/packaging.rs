//! What ships: the hardening of the systemd units (rated by `systemd-analyze security`), the
//! Debian package built by `packaging/deb/build.sh` (extracted with `dpkg -x`, its binary run),
//! and the Prometheus rules and Grafana dashboard in `packaging/`, whose every metric name must
//! be one the daemon exposes, and which must work with each `daemon.metrics.compat` mode: every
//! rule and panel with `both` and `v4`, and with `v3` all but the few that need v4's families
//! (`metrics::families(mode)` is what the daemon exposes in each mode; `tests/it_daemon/metrics_v4.rs`
//! checks that against a real daemon's `/metrics`). `tests/run.sh` installs systemd-analyze and
//! dpkg and builds the package before `cargo test`; without them these tests fail rather than skip.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use certvigil::config::MetricsCompat;

/// The metric families `/metrics` exposes in some mode.
fn families() -> Vec<&'static str> {
    certvigil::daemon::metrics::FAMILIES.iter().map(|f| f.0).collect()
}

/// The alerts that need exporter v4's families: with `compat: v3` they never fire (said in
/// their comments and the README).
const V4_ONLY_ALERTS: [&str; 2] = ["CertificateSourceDown", "CrlStale"];
/// The dashboard panels that need exporter v4's families.
const V4_ONLY_PANELS: [&str; 2] = ["Sources", "CRLs by next update"];

/// The highest `systemd-analyze security` exposure accepted for the shipped units (0 = fully
/// locked down, 10 = unprotected; systemd calls ≤ 2.0 "OK").
const MAX_EXPOSURE: f64 = 2.0;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs a packaging tool; a missing tool fails the test and says where it comes from.
fn tool(program: &str, args: &[&str], from: &str) -> Output {
    match Command::new(program).args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("{program} not found: tests/run.sh installs it (Debian package {from})")
        }
        Err(e) => panic!("{program}: {e}"),
    }
}

fn tool_ok(program: &str, args: &[&str], from: &str) -> String {
    let out = tool(program, args, from);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------------------------
// systemd units

/// The overall exposure `systemd-analyze security --offline=true` gives a unit file.
fn exposure(unit: &Path) -> (f64, String) {
    let unit = unit.to_str().expect("utf-8 path");
    let out = tool("systemd-analyze", &["security", "--offline=true", "--no-pager", unit], "systemd");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // → Overall exposure level for certvigil.service: 1.2 OK 🙂
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no overall exposure in the output of systemd-analyze security {unit}:\n{text}"));
    let value = line.rsplit_once(": ").and_then(|(_, rest)| rest.split_whitespace().next()).and_then(|v| v.parse().ok());
    (value.unwrap_or_else(|| panic!("cannot read the exposure in {line:?}")), text)
}

/// `key=value` lines of a unit file; a key set twice keeps every value.
fn directives(unit: &str) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with(['#', ';', '[']) || line.is_empty() {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            map.entry(k.trim().to_owned()).or_default().push(v.trim().to_owned());
        }
    }
    map
}

#[test]
fn daemon_unit_is_hardened_and_follows_the_daemon_contract() {
    let path = repo("packaging/systemd/certvigil.service");
    let (score, report) = exposure(&path);
    assert!(score <= MAX_EXPOSURE, "certvigil.service exposure {score} > {MAX_EXPOSURE}:\n{report}");

    let d = directives(&read(&path));
    let one = |k: &str| -> &str {
        match d.get(k).map(Vec::as_slice) {
            Some([v]) => v,
            other => panic!("certvigil.service: {k}= should be set once, found {other:?}"),
        }
    };
    let config = "-c /etc/certvigil/certvigil.yaml";
    assert_eq!(one("Type"), "notify", "the daemon sends READY=1");
    assert_eq!(one("NotifyAccess"), "main");
    assert_eq!(one("WatchdogSec"), "60", "the daemon pings at half WATCHDOG_USEC");
    assert_eq!(one("Restart"), "on-failure");
    assert_eq!(one("ExecStartPre"), format!("/usr/bin/certvigil {config} config validate"));
    assert_eq!(one("ExecStart"), format!("/usr/bin/certvigil {config} run"));
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID", "SIGHUP reloads");
    // The daemon finishes the running job within 30 s of SIGTERM: systemd must wait longer.
    let stop: u32 = one("TimeoutStopSec").parse().expect("TimeoutStopSec in seconds");
    assert!(stop > 30, "TimeoutStopSec={stop} does not cover the daemon's 30 s shutdown deadline");
    assert_eq!(one("User"), "certvigil");
    assert_eq!(one("Group"), "certvigil");
    assert_eq!(one("StateDirectory"), "certvigil", "the store is $STATE_DIRECTORY/certvigil.db");
    assert_eq!(one("StateDirectoryMode"), "0700");
    assert_eq!(one("ConfigurationDirectory"), "certvigil");
    assert_eq!(one("UMask"), "0077");
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("ProtectHome"), "read-only", "certificates in home directories stay readable");
    assert_eq!(one("CapabilityBoundingSet"), "");
    assert_eq!(one("RestrictAddressFamilies"), "AF_UNIX AF_INET AF_INET6");
    assert!(!d.contains_key("PrivateNetwork"), "the daemon fetches CRLs, OCSP and sends mail");
    assert!(!d.contains_key("DynamicUser"), "the API token is shared through the certvigil group");
    assert!(!d.contains_key("ReadWritePaths"), "the state directory is the only writable path");
}

#[test]
fn scan_units_still_rate_ok() {
    let (score, report) = exposure(&repo("packaging/systemd/certvigil-scan.service"));
    assert!(score <= MAX_EXPOSURE, "certvigil-scan.service exposure {score} > {MAX_EXPOSURE}:\n{report}");
    let timer = directives(&read(&repo("packaging/systemd/certvigil-scan.timer")));
    assert!(timer.contains_key("OnCalendar"), "certvigil-scan.timer has no schedule");
}

#[test]
fn sysusers_file_creates_the_service_user() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(root.path().join("etc")).expect("etc");
    let conf = repo("packaging/systemd/certvigil.sysusers");
    let root_arg = format!("--root={}", root.path().display());
    tool_ok("systemd-sysusers", &[&root_arg, conf.to_str().expect("utf-8 path")], "systemd");
    let passwd = read(&root.path().join("etc/passwd"));
    let user: Vec<&str> = passwd.lines().find(|l| l.starts_with("certvigil:")).expect("no certvigil user").split(':').collect();
    let uid: u32 = user[2].parse().expect("uid");
    assert!(uid > 0 && uid < 1000, "not a system user: {user:?}");
    assert_eq!(user[5], "/var/lib/certvigil", "home is the state directory");
    assert_eq!(user[6], "/usr/sbin/nologin");
    let group = read(&root.path().join("etc/group"));
    assert!(group.lines().any(|l| l.starts_with("certvigil:")), "no certvigil group:\n{group}");
}

// ---------------------------------------------------------------------------------------------
// Debian package

/// The .deb of this tree: `target/debian/certvigil_<crate version>-1_<arch>.deb`, as
/// packaging/deb/build.sh names it, and newer than every file it is made from (the release
/// binary and the same inputs build.sh compares), so that a stale package never passes.
fn current_deb() -> PathBuf {
    let arch = tool_ok("dpkg", &["--print-architecture"], "dpkg").trim().to_owned();
    let deb = repo(&format!("target/debian/certvigil_{}-1_{arch}.deb", env!("CARGO_PKG_VERSION")));
    let built = std::fs::metadata(&deb)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}: run packaging/deb/build.sh (tests/run.sh does)", deb.display()));
    let mut stale = Vec::new();
    let mut visit = vec![
        repo("src"),
        repo("Cargo.toml"),
        repo("Cargo.lock"),
        repo("README.md"),
        repo("config/certvigil.yaml"),
        repo("schema/config.schema.json"),
        repo("packaging"),
    ];
    while let Some(path) = visit.pop() {
        let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if meta.is_dir() {
            visit.extend(std::fs::read_dir(&path).expect("read_dir").flatten().map(|e| e.path()));
        } else if meta.modified().is_ok_and(|m| m > built) {
            stale.push(path);
        }
    }
    assert!(stale.is_empty(), "{} is older than {stale:?}: rebuild it with packaging/deb/build.sh", deb.display());
    deb
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o7777
}

#[test]
fn deb_package_installs_a_working_daemon() {
    let deb = current_deb();
    let deb_arg = deb.to_str().expect("utf-8 path");

    // Control fields.
    let field = |name: &str| tool_ok("dpkg-deb", &["-f", deb_arg, name], "dpkg").trim().to_owned();
    assert_eq!(field("Package"), "certvigil");
    let version = field("Version");
    assert!(
        version.starts_with(&format!("{}-", env!("CARGO_PKG_VERSION"))),
        "Version {version} is not the crate's {}: rebuild with packaging/deb/build.sh",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(field("Section"), "admin");
    assert_eq!(field("Priority"), "optional");
    assert!(field("Maintainer").contains('@'), "Maintainer needs an address");
    let depends = field("Depends");
    assert!(depends.contains("libc6"), "shared library dependencies missing: {depends}");
    assert!(depends.contains("systemd-sysusers"), "the postinst runs systemd-sysusers: {depends}");

    // Maintainer scripts: cargo-deb replaced #DEBHELPER#, and they parse.
    let control = tempfile::tempdir().expect("tempdir");
    let control_dir = control.path().join("DEBIAN");
    tool_ok("dpkg-deb", &["-e", deb_arg, control_dir.to_str().expect("utf-8 path")], "dpkg");
    let conffiles = read(&control_dir.join("conffiles"));
    assert!(conffiles.lines().any(|l| l == "/etc/certvigil/certvigil.yaml"), "conffiles: {conffiles}");
    let postinst = read(&control_dir.join("postinst"));
    let postrm = read(&control_dir.join("postrm"));
    for (name, script) in [("postinst", &postinst), ("postrm", &postrm)] {
        assert!(!script.contains("#DEBHELPER#"), "{name}: #DEBHELPER# not replaced");
        let path = control_dir.join(name);
        tool_ok("sh", &["-n", path.to_str().expect("utf-8 path")], "dash");
        assert_eq!(mode(&path) & 0o111, 0o111, "{name} is not executable");
    }
    assert!(postinst.contains("systemd-sysusers") && postinst.contains("certvigil.conf"), "postinst: no sysusers step");
    assert!(postinst.contains("adduser") && postinst.contains("useradd"), "postinst: no fallback user creation");
    assert!(postinst.contains("deb-systemd-helper enable certvigil.service"), "postinst does not enable the unit");
    assert!(postinst.contains("/etc/certvigil/api-token") && postinst.contains("0640"), "postinst: no API token");
    assert!(postrm.contains("purge") && postrm.contains("/var/lib/certvigil"), "postrm: store not purged");

    // Files.
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    tool_ok("dpkg", &["-x", deb_arg, root.to_str().expect("utf-8 path")], "dpkg");
    let unit = ["usr/lib/systemd/system/certvigil.service", "lib/systemd/system/certvigil.service"]
        .iter()
        .map(|p| root.join(p))
        .find(|p| p.is_file())
        .expect("certvigil.service not in the package");
    assert_eq!(read(&unit), read(&repo("packaging/systemd/certvigil.service")), "packaged unit is stale: rebuild the .deb");
    assert_eq!(read(&root.join("usr/lib/sysusers.d/certvigil.conf")), read(&repo("packaging/systemd/certvigil.sysusers")));
    let expected = [
        ("usr/bin/certvigil", 0o755),
        ("etc/certvigil/certvigil.yaml", 0o644),
        ("usr/share/man/man1/certvigil.1.gz", 0o644),
        ("usr/share/man/man1/certvigil-run.1.gz", 0o644), // Documentation= of the unit
        ("usr/share/man/man1/certvigil-scan.1.gz", 0o644),
        ("usr/share/bash-completion/completions/certvigil", 0o644),
        ("usr/share/zsh/vendor-completions/_certvigil", 0o644),
        ("usr/share/fish/vendor_completions.d/certvigil.fish", 0o644),
        ("usr/share/doc/certvigil/README.md", 0o644),
        ("usr/share/doc/certvigil/certvigil.example.yaml", 0o644),
        ("usr/share/doc/certvigil/copyright", 0o644),
        ("usr/share/certvigil/prometheus/certvigil-rules.yaml", 0o644),
        ("usr/share/certvigil/prometheus/certvigil-prometheusrule.yaml", 0o644),
        ("usr/share/certvigil/grafana/certvigil-dashboard.json", 0o644),
    ];
    for (rel, want) in expected {
        let path = root.join(rel);
        assert!(path.is_file() && std::fs::metadata(&path).map(|m| m.len() > 0).unwrap_or(false), "{rel}: missing or empty");
        assert_eq!(mode(&path), want, "{rel}: mode {:o}", mode(&path));
    }
    assert_eq!(read(&root.join("etc/certvigil/certvigil.yaml")), read(&repo("packaging/deb/certvigil.yaml")));
    assert_eq!(read(&root.join("usr/share/doc/certvigil/certvigil.example.yaml")), read(&repo("config/certvigil.yaml")));
    for page in std::fs::read_dir(root.join("usr/share/man/man1")).expect("man1").flatten() {
        let bytes = std::fs::read(page.path()).expect("man page");
        assert!(bytes.starts_with(&[0x1f, 0x8b]), "{}: not gzipped", page.path().display());
    }
    assert!(read(&root.join("usr/share/bash-completion/completions/certvigil")).contains("certvigil"));
    assert!(read(&root.join("usr/share/zsh/vendor-completions/_certvigil")).starts_with("#compdef certvigil"));
    assert!(read(&root.join("usr/share/fish/vendor_completions.d/certvigil.fish")).contains("complete -c certvigil"));

    // The packaged binary runs and accepts the packaged configuration.
    let bin = root.join("usr/bin/certvigil");
    let state = tmp.path().join("state");
    let run = |args: &[&str]| {
        let out = Command::new(&bin)
            .args(args)
            .env("STATE_DIRECTORY", &state)
            .env("XDG_STATE_HOME", &state)
            .env_remove("CERTVIGIL_CONFIG")
            .env_remove("CERTVIGIL_STORE")
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "certvigil {args:?}: {}\n{text}", out.status);
        text
    };
    // Every unit loads cleanly (no unknown or misspelt directive, executables present) with
    // /usr/bin/certvigil pointing at the packaged binary.
    let units = tmp.path().join("units");
    std::fs::create_dir(&units).expect("units dir");
    let mut unit_args = vec!["verify".to_owned(), "--man=no".to_owned()];
    for name in ["certvigil.service", "certvigil-scan.service", "certvigil-scan.timer"] {
        let text = read(&repo(&format!("packaging/systemd/{name}"))).replace("/usr/bin/certvigil", bin.to_str().expect("utf-8 path"));
        std::fs::write(units.join(name), text).expect("write unit");
        unit_args.push(units.join(name).to_str().expect("utf-8 path").to_owned());
    }
    let unit_args: Vec<&str> = unit_args.iter().map(String::as_str).collect();
    let out = tool("systemd-analyze", &unit_args, "systemd");
    let complaints = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && complaints.trim().is_empty(), "systemd-analyze verify: {}\n{complaints}", out.status);

    let version_line = run(&["--version"]);
    assert_eq!(version_line.trim(), format!("certvigil {}", env!("CARGO_PKG_VERSION")));
    let config = root.join("etc/certvigil/certvigil.yaml");
    let config = config.to_str().expect("utf-8 path");
    // Its API token file is made by postinst on the host it installs to: the file is checked
    // here, the secret there (the unit's ExecStartPre validates in full).
    run(&["-c", config, "config", "validate", "--offline"]);
    // A fresh install's configuration scans without a single read error (exit 0, not 4): its
    // sources exist on every Debian system.
    let scanned = run(&["-c", config, "scan", "--no-progress"]);
    assert!(scanned.contains(", 0 errors"), "{scanned}");

    // The maintainer scripts, run for real: postinst configure, again (an upgrade), then
    // postrm purge, installing into the extracted tree as dpkg does with DPKG_ROOT. A private
    // mount namespace with an empty /run keeps them from asking this machine's systemd to start
    // anything; everything they write goes under the tree.
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
    std::fs::write(root.join("etc/group"), "root:x:0:\n").expect("group");
    let maintainer = |script: &str, arg: &str| {
        let out = Command::new("unshare")
            .args(["--mount", "sh", "-c", "mount -t tmpfs tmpfs /run && DPKG_ROOT=\"$1\" exec sh \"$2\" \"$3\"", "sh"])
            .arg(root)
            .arg(control_dir.join(script))
            .arg(arg)
            // What dpkg tells its maintainer scripts (deb-systemd-helper refuses to run without).
            .env("DPKG_MAINTSCRIPT_PACKAGE", "certvigil")
            .env("DPKG_MAINTSCRIPT_NAME", script)
            .output()
            .expect("unshare (util-linux) runs the maintainer scripts");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{script} {arg}: {}\n{text}", out.status);
    };
    maintainer("postinst", "configure");
    let field_of = |file: &str, name: &str| -> Vec<String> {
        read(&root.join(file))
            .lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name} in {file}"))
            .split(':')
            .map(str::to_owned)
            .collect()
    };
    let user = field_of("etc/passwd", "certvigil");
    assert_eq!((user[5].as_str(), user[6].as_str()), ("/var/lib/certvigil", "/usr/sbin/nologin"), "{user:?}");
    let gid: u32 = field_of("etc/group", "certvigil")[2].parse().expect("gid");
    assert!(gid > 0 && gid < 1000, "a system group: {gid}");
    let token_path = root.join("etc/certvigil/api-token");
    let token = read(&token_path);
    assert!(token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()), "token: {token:?}");
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&token_path).expect("token");
        assert_eq!((mode(&token_path), meta.uid(), meta.gid()), (0o640, 0, gid), "the token is root's, readable by the daemon's group");
    }
    assert!(
        root.join("etc/systemd/system/multi-user.target.wants/certvigil.service").symlink_metadata().is_ok(),
        "postinst did not enable certvigil.service"
    );
    maintainer("postinst", "configure");
    assert_eq!(read(&token_path), token, "an upgrade keeps the token");

    // The daemon from the extracted tree, on the packaged configuration (its token file taken
    // from the tree): it starts, and its API takes that token and refuses a request without it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let daemon_config = tmp.path().join("daemon.yaml");
    let packaged = read(&root.join("etc/certvigil/certvigil.yaml"));
    assert!(packaged.contains("${file:/etc/certvigil/api-token}"), "the packaged configuration reads the generated token");
    std::fs::write(&daemon_config, packaged.replace("/etc/certvigil/api-token", token_path.to_str().expect("utf-8 path"))).expect("write");
    let mut daemon = Command::new(&bin)
        .arg("-c")
        .arg(&daemon_config)
        .args(["run", "--listen", &format!("127.0.0.1:{port}"), "--exit-after", "20"])
        .env("STATE_DIRECTORY", &state)
        .env_remove("CERTVIGIL_CONFIG")
        .env_remove("CERTVIGIL_STORE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the packaged daemon");
    let get = |auth: Option<&str>| -> Option<String> {
        use std::io::{Read, Write};
        let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        let header = auth.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        sock.write_all(format!("GET /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n{header}Connection: close\r\n\r\n").as_bytes()).ok()?;
        let mut answer = String::new();
        sock.read_to_string(&mut answer).ok()?;
        Some(answer)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let answer = loop {
        match get(Some(&token)) {
            Some(a) => break a,
            None if std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(100)),
            None => panic!("the packaged daemon did not listen on 127.0.0.1:{port}"),
        }
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(get(None).expect("answer").starts_with("HTTP/1.1 401"));
    let _ = daemon.kill();
    let _ = daemon.wait();

    std::fs::create_dir_all(root.join("var/lib/certvigil")).expect("state dir");
    std::fs::write(root.join("var/lib/certvigil/certvigil.db"), b"").expect("store");
    maintainer("postrm", "purge");
    assert!(!token_path.exists() && !root.join("var/lib/certvigil").exists(), "purge removes the token and the store");
    assert!(
        root.join("etc/systemd/system/multi-user.target.wants/certvigil.service").symlink_metadata().is_err(),
        "purge forgets the enablement"
    );

    // A package build carries no test hooks (the `failpoints` feature is the test command's):
    // the crash hook's variable is ignored and its message is not in the binary.
    let out = Command::new(&bin)
        .args(["-c", config, "evaluate"])
        .env("STATE_DIRECTORY", &state)
        .env("XDG_STATE_HOME", &state)
        .env("CERTVIGIL_FAULT", "exit-after-outbox-write")
        .env_remove("CERTVIGIL_CONFIG")
        .env_remove("CERTVIGIL_STORE")
        .output()
        .expect("run the packaged binary");
    assert!(out.status.code().is_some(), "the packaged binary died by a signal: {:?}", out.status);
    let image = std::fs::read(&bin).expect("read the packaged binary");
    assert!(!image.windows(b"test failpoint reached".len()).any(|w| w == b"test failpoint reached"), "test hooks in the package build");
    // The daemon runs on the real clock: `--at` is refused (a usage error), before anything starts.
    let out = Command::new(&bin)
        .args(["-c", config, "--at", "2030-01-01T00:00:00Z", "run", "--listen", "off"])
        .env("STATE_DIRECTORY", &state)
        .env("XDG_STATE_HOME", &state)
        .output()
        .expect("run the packaged binary");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("real clock"), "{}", String::from_utf8_lossy(&out.stderr));
}

// ---------------------------------------------------------------------------------------------
// Prometheus rules and Grafana dashboard

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RuleGroup {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Rule {
    alert: String,
    expr: String,
    #[serde(rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PrometheusRule {
    api_version: String,
    kind: String,
    metadata: BTreeMap<String, serde_json::Value>,
    spec: RuleFile,
}

/// Metric names in a PromQL expression: identifiers outside string literals that start with
/// `x509_` or `certvigil_` (label names and values never match: they are inside `{…}` strings
/// or have other names).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let b = expr.as_bytes();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if matches!(c, b'"' | b'\'' | b'`') {
            i = string_end(b, i) + 1;
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b':' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
            let word = &expr[start..i];
            if word.starts_with("x509_") || word.starts_with("certvigil_") {
                names.insert(word.to_owned());
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Where the PromQL string literal opening at `start` (`"`, `'` or a backtick) closes: the
/// index of its closing quote (a backslash escapes the next byte), or `b.len()` when unclosed.
fn string_end(b: &[u8], start: usize) -> usize {
    let quote = b[start];
    let mut i = start + 1;
    while i < b.len() && b[i] != quote {
        i += if b[i] == b'\\' { 2 } else { 1 };
    }
    i.min(b.len())
}

/// The branches of a PromQL expression's top-level `or`s (outside parentheses, braces,
/// brackets and strings): `a or b` answers when either does, so it works in a mode where one
/// branch's metrics all exist.
fn or_branches(expr: &str) -> Vec<&str> {
    let b = expr.as_bytes();
    let (mut out, mut depth, mut start, mut i) = (Vec::new(), 0i32, 0, 0);
    while i < b.len() {
        let c = b[i];
        if matches!(c, b'"' | b'\'' | b'`') {
            i = string_end(b, i);
        } else if matches!(c, b'(' | b'{' | b'[') {
            depth += 1;
        } else if matches!(c, b')' | b'}' | b']') {
            depth -= 1;
        } else if depth == 0
            && expr[i..].starts_with("or")
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
            && b.get(i + 2).is_none_or(|n| !(n.is_ascii_alphanumeric() || *n == b'_'))
        {
            out.push(&expr[start..i]);
            start = i + 2;
            i += 1;
        }
        i += 1;
    }
    out.push(&expr[start..]);
    out
}

/// Whether `expr` works when the daemon speaks `compat`: some top-level `or` branch uses
/// metrics and only metrics that mode exposes.
fn works_in(expr: &str, compat: MetricsCompat) -> bool {
    let exposed = certvigil::daemon::metrics::families(compat);
    or_branches(expr).iter().any(|branch| {
        let names = metric_names(branch);
        !names.is_empty() && names.iter().all(|n| exposed.contains(&n.as_str()))
    })
}

#[test]
fn or_branches_and_modes() {
    assert_eq!(or_branches(r#"a{x="or"} or sum by (b) (c or d) or e"#), [r#"a{x="or"} "#, " sum by (b) (c or d) ", " e"]);
    assert_eq!(or_branches("x509_source_errors_total_or_more"), ["x509_source_errors_total_or_more"]);
    let fallback = "sum(increase(x509_source_errors_total[1h])) or sum(x509_read_errors) or vector(0)";
    for compat in [MetricsCompat::V3, MetricsCompat::V4, MetricsCompat::Both] {
        assert!(works_in(fallback, compat), "{compat:?}");
    }
    assert!(!works_in("x509_read_errors > 0", MetricsCompat::V4));
    assert!(!works_in("x509_crl_stale == 1 or vector(0)", MetricsCompat::V3));
    assert!(works_in("x509_crl_stale == 1", MetricsCompat::Both));
}

fn assert_known(names: &BTreeSet<String>, what: &str) {
    let families = families();
    let unknown: Vec<_> = names.iter().filter(|n| !families.contains(&n.as_str())).collect();
    assert!(unknown.is_empty(), "{what} uses metrics the daemon does not expose: {unknown:?}");
}

#[test]
fn metric_name_extraction() {
    let got = metric_names(r#"absent(certvigil_up == 1) or up{job="certvigil_x"} == 0 and x509_cert_not_after - time() < 7 * 86400"#);
    assert_eq!(got, BTreeSet::from(["certvigil_up".to_owned(), "x509_cert_not_after".to_owned()]));
}

#[test]
fn prometheus_rules_are_complete_and_use_known_metrics() {
    let plain: RuleFile = serde_saphyr::from_str(&read(&repo("packaging/prometheus/certvigil-rules.yaml"))).expect("certvigil-rules.yaml");
    let object: PrometheusRule =
        serde_saphyr::from_str(&read(&repo("packaging/prometheus/certvigil-prometheusrule.yaml"))).expect("certvigil-prometheusrule.yaml");
    assert_eq!(object.api_version, "monitoring.coreos.com/v1");
    assert_eq!(object.kind, "PrometheusRule");
    assert!(object.metadata.contains_key("name"), "PrometheusRule without metadata.name");
    assert_eq!(object.spec, plain, "the PrometheusRule and certvigil-rules.yaml differ");

    assert!(!plain.groups.is_empty());
    let mut alerts = BTreeSet::new();
    let mut used = BTreeSet::new();
    let mut v3_broken = BTreeSet::new();
    for group in &plain.groups {
        assert!(!group.name.is_empty() && !group.rules.is_empty(), "empty group {group:?}");
        for rule in &group.rules {
            let name = &rule.alert;
            assert!(alerts.insert(name.clone()), "alert {name} defined twice");
            assert!(name.chars().next().is_some_and(|c| c.is_ascii_uppercase()), "{name}: alert names are CamelCase");
            let for_ = rule.for_.as_deref().unwrap_or_else(|| panic!("{name}: no `for:`"));
            assert!(
                for_.len() > 1 && for_.ends_with(['s', 'm', 'h', 'd']) && for_[..for_.len() - 1].parse::<u32>().is_ok(),
                "{name}: for: {for_} is not a duration"
            );
            let severity = rule.labels.get("severity").unwrap_or_else(|| panic!("{name}: no severity label"));
            assert!(["warning", "critical"].contains(&severity.as_str()), "{name}: severity {severity}");
            for key in ["summary", "description"] {
                assert!(rule.annotations.get(key).is_some_and(|v| !v.trim().is_empty()), "{name}: no {key} annotation");
            }
            let names = metric_names(&rule.expr);
            assert!(!names.is_empty(), "{name}: expression uses no certvigil metric: {}", rule.expr);
            assert_known(&names, &format!("alert {name}"));
            for compat in [MetricsCompat::Both, MetricsCompat::V4] {
                assert!(works_in(&rule.expr, compat), "alert {name} does not work with compat {compat:?}: {}", rule.expr);
            }
            if !works_in(&rule.expr, MetricsCompat::V3) {
                v3_broken.insert(name.as_str());
            }
            used.extend(names);
        }
    }
    assert_eq!(v3_broken, BTreeSet::from(V4_ONLY_ALERTS), "the alerts that do not work with compat v3");
    // What the rules must cover: expiry, expired, revocation (revoked and unknown), read errors
    // (v4's counter, v3's gauge as the fallback), sources that cannot be listed, stale CRLs,
    // failing and stale jobs, the outbox, configuration reloads, the daemon being down.
    for metric in [
        "x509_cert_not_after",
        "x509_cert_expired",
        "x509_read_errors",
        "x509_source_errors_total",
        "x509_source_up",
        "x509_crl_stale",
        "certvigil_cert_revoked",
        "certvigil_cert_revocation_unknown",
        "certvigil_job_last_failed",
        "certvigil_job_last_success_timestamp_seconds",
        "certvigil_outbox_pending",
        "certvigil_outbox_failed",
        "certvigil_config_last_reload_successful",
        "certvigil_up",
    ] {
        assert!(used.contains(metric), "no alert on {metric}");
    }
    let severities: BTreeSet<_> = plain.groups.iter().flat_map(|g| &g.rules).map(|r| r.labels["severity"].as_str()).collect();
    assert_eq!(severities, BTreeSet::from(["critical", "warning"]));
}

/// Every PromQL string of a dashboard: targets' `expr` and the template variables' queries.
fn dashboard_queries(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "definition" | "query", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => dashboard_queries(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| dashboard_queries(v, out)),
        _ => {}
    }
}

#[test]
fn grafana_dashboard_is_importable_and_uses_known_metrics() {
    let path = repo("packaging/grafana/certvigil-dashboard.json");
    let dash: serde_json::Value = serde_json::from_str(&read(&path)).expect("dashboard JSON");
    let schema = dash["schemaVersion"].as_u64().expect("schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    assert!(dash["uid"].as_str().is_some_and(|u| !u.is_empty() && u.len() <= 40), "uid");
    assert!(dash["title"].as_str().is_some_and(|t| !t.is_empty()), "title");
    assert!(dash["id"].is_null(), "an importable dashboard has no database id");
    let inputs = dash["__inputs"].as_array().expect("__inputs");
    assert!(inputs.iter().any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"), "no DS_PROMETHEUS datasource input");

    let panels = dash["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut titles = Vec::new();
    let mut v3_broken = BTreeSet::new();
    for panel in panels {
        let id = panel["id"].as_u64().expect("panel id");
        assert!(ids.insert(id), "panel id {id} used twice");
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().expect("gridPos.x"), grid["w"].as_u64().expect("gridPos.w"));
        assert!(x + w <= 24 && grid["h"].as_u64().is_some_and(|h| h > 0), "panel {id}: gridPos {grid}");
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().expect("panel title");
        titles.push(title.to_owned());
        assert_eq!(panel["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}: datasource");
        let targets = panel["targets"].as_array().unwrap_or_else(|| panic!("{title}: no targets"));
        assert!(!targets.is_empty(), "{title}: no targets");
        for t in targets {
            let expr = t["expr"].as_str().unwrap_or("");
            assert!(!expr.trim().is_empty(), "{title}: empty expr");
            assert_eq!(t["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}: target datasource");
            for compat in [MetricsCompat::Both, MetricsCompat::V4] {
                assert!(works_in(expr, compat), "panel {title:?} does not work with compat {compat:?}: {expr}");
            }
            if !works_in(expr, MetricsCompat::V3) {
                v3_broken.insert(title.to_owned());
            }
        }
    }
    for want in [
        "Certificates expiring soonest",
        "Expired",
        "Revoked",
        "Findings by severity",
        "Open alerts",
        "Outbox depth",
        "Time since last success",
        "Last run duration",
        "Read errors",
        "Sources",
        "CRLs by next update",
    ] {
        assert!(titles.iter().any(|t| t == want), "no panel {want:?}: {titles:?}");
    }
    assert_eq!(v3_broken, V4_ONLY_PANELS.iter().map(|t| t.to_string()).collect(), "the panels that do not work with compat v3");

    let mut queries = Vec::new();
    dashboard_queries(&dash, &mut queries);
    let names: BTreeSet<String> = queries.iter().flat_map(|q| metric_names(q)).collect();
    assert_known(&names, "the dashboard");
    for metric in [
        "x509_cert_not_after",
        "x509_source_errors_total",
        "x509_source_up",
        "x509_crl_next_update",
        "certvigil_findings",
        "certvigil_outbox_pending",
        "certvigil_job_last_duration_seconds",
    ] {
        assert!(names.contains(metric), "the dashboard does not show {metric}");
    }
}
