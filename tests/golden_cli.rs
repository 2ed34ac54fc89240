//! The command line's output, byte for byte, on the example certificates at a fixed time: the
//! safety net of a restructuring that must change no output. One session of 34 commands —
//! scan, list in every format, show, plan, evaluate (a webhook route whose receiver refuses
//! connections, so payloads stay in the outbox to be read back), alerts, silence, ack, the
//! outbox, schedule, the audit log and the owners (two owner rules, one with a team's
//! contact; `list --owner`) — each compared with `tests/golden/cli/NN.out` (its
//! stdout, then `rc=<exit code>`), with the temporary paths written as `{CERTS}`, `{CONFIG}` and
//! `{STORE}`, and with nothing on stderr.
//!
//! The golden files were written by the program as it was before the restructuring; when an
//! output is meant to change, `CERTVIGIL_GOLDEN_UPDATE=1 cargo test --test golden_cli` rewrites
//! them and the diff shows what changed.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

const AT: &str = "2026-06-01T00:00:00Z";

const COMMANDS: &[&str] = &[
    "config validate",
    "scan",
    "list",
    "list -o json",
    "list -o csv",
    "list --all",
    "show legacy.example.net",
    "show 10:01 -o json",
    "show www.example.net --pem",
    "errors",
    "keys",
    "plan",
    "plan -o json",
    "evaluate",
    "alerts",
    "alerts -o json",
    "outbox --all",
    "outbox --all -o json",
    "schedule",
    "audit verify",
    "audit list",
    "audit images",
    "silence add edb9241c --for 1h --reason snap",
    "silence list",
    "ack 1",
    "alerts --all -o json",
    "evaluate",
    "outbox --all -o json",
    "evaluate --at 2026-12-01T00:00:00Z",
    "outbox --all -o json",
    "alerts --all",
    "audit list",
    "list --owner none",
    "list --owner web-team --owner legacy-team -o csv",
];

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A loopback port nothing listens on: bound, then released.
fn refused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn the_command_line_prints_what_it_always_printed() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/certs"), &certs);
    let store = dir.path().join("run/store.db");
    let config = dir.path().join("cfg.yaml");
    std::fs::write(
        &config,
        format!(
            r#"store:
  path: {store}
sources:
  - name: examples
    kind: files
    paths: [{certs}]
    tags: [examples]
    passwords: ["${{env:SNAP_PW}}"]
alerts:
  receivers:
    - name: hook
      kind: webhook
      url: http://127.0.0.1:{port}/hook
  routes:
    - name: all
      receivers: [hook]
owners:
  teams:
    - {{name: web-team, contact: web-oncall@example.net}}
  rules:
    - {{owner: legacy-team, match: {{path: ["{certs}/legacy-*"]}}}}
    - {{owner: web-team, match: {{san: ["*.example.net"], tag: [examples]}}}}
jobs:
  - {{name: scan, kind: scan, schedule: "*/15 * * * *", timezone: Europe/Paris}}
  - {{name: eval, kind: evaluate, schedule: "5 * * * *"}}
"#,
            store = store.display(),
            certs = certs.display(),
            port = refused_port()
        ),
    )
    .unwrap();
    let golden_dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/cli");
    let update = std::env::var_os("CERTVIGIL_GOLDEN_UPDATE").is_some();
    let mut differ = Vec::new();
    for (i, command) in COMMANDS.iter().enumerate() {
        let mut args: Vec<String> = vec!["-c".into(), config.display().to_string()];
        if !command.contains("--at") {
            args.extend(["--at".to_string(), AT.to_string()]);
        }
        args.extend(command.split(' ').map(str::to_string));
        let out = Command::new(env!("CARGO_BIN_EXE_certvigil"))
            .args(&args)
            .env("SNAP_PW", "changeit")
            .env("USER", "golden")
            .env_remove("SUDO_USER")
            .env_remove("CERTVIGIL_CONFIG")
            .env_remove("CERTVIGIL_STORE")
            .env_remove("CERTVIGIL_NOW")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.is_empty(), "`{command}` wrote to stderr: {stderr}");
        let text = format!("{}rc={}\n", String::from_utf8_lossy(&out.stdout), out.status.code().unwrap_or(-1))
            .replace(&certs.display().to_string(), "{CERTS}")
            .replace(&config.display().to_string(), "{CONFIG}")
            .replace(&store.display().to_string(), "{STORE}");
        let golden = golden_dir.join(format!("{:02}.out", i + 1));
        if update {
            std::fs::write(&golden, &text).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
        if text != want {
            differ.push(format!("`{command}` ({}):\n--- want\n{want}\n--- got\n{text}", golden.display()));
        }
    }
    assert!(differ.is_empty(), "{} of {} outputs changed:\n{}", differ.len(), COMMANDS.len(), differ.join("\n"));
}
