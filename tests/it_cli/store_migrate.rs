//! `certvigil store migrate` and `certvigil store check`, through the real binary: a SQLite store
//! holding an inventory, alerts, notifications waiting in the outbox, a silence and an
//! acknowledgement is copied into a fresh database of the test run's PostgreSQL cluster; every
//! table arrives with the same rows, the audit chain verifies there, the CLI and the daemon go on
//! on the copy (new rows take new ids), a database holding certvigil data is refused untouched,
//! and `store check` finds the copy identical, then names what changed on one side.

use crate::common;

use common::daemon::Daemon;
use common::postgres::{fresh_database, texts};
use common::*;
use std::time::Duration;

const TOKEN: &str = "store-migrate-token-0123456789ab";

/// A loopback port nothing listens on: bound, then released.
fn refused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// The fixtures' certificates under `certs/`, a SQLite store under `state/`, and a webhook route
/// whose receiver refuses connections, so the notifications stay in the outbox.
fn sandbox(rest: &str) -> Sandbox {
    let sb = Sandbox::new();
    let f = fixtures();
    for (file, c) in [("valid", &f.valid), ("expired", &f.expired), ("expiring", &f.expiring), ("codesign", &f.codesign), ("rsa", &f.rsa)] {
        sb.write(&format!("certs/{file}.pem"), &c.cert.pem);
    }
    sb.config(&format!(
        "sources:\n  - name: files\n    kind: files\n    paths: [certs]\n    tags: [prod]\nalerts:\n  receivers:\n    - name: hook\n      \
         kind: webhook\n      url: http://127.0.0.1:{}/hook\n      timeout: 2s\n  routes:\n    - name: ops\n      receivers: [hook]\n{rest}",
        refused_port()
    ));
    sb
}

/// A SQLite store with something in it of everything an operator does: scanned, evaluated
/// (alerts, outbox rows whose delivery failed), a silence, an acknowledged alert.
fn used_store(rest: &str) -> Sandbox {
    let sb = sandbox(rest);
    sb.run(&["scan"]).expect_code(0);
    let ev = sb.run(&["evaluate"]);
    assert_eq!(ev.code, 1, "the receiver refuses: delivery fails\n{}{}", ev.stdout, ev.stderr);
    let valid = &fixtures().valid.cert.fingerprint;
    sb.run(&["silence", "add", &valid[..16], "--for", "7d", "--reason", "maintenance", "--by", "alice"]).expect_code(0);
    sb.run(&["ack", "1", "--by", "bob", "--note", "on it"]).expect_code(0);
    sb
}

/// `url` with TLS off, as the test cluster serves it, for certvigil.
fn plain(url: &str) -> String {
    format!("{url}?sslmode=disable")
}

/// The rows of `sql` (one text column) in the SQLite store.
fn sqlite_texts(sb: &Sandbox, sql: &str) -> Vec<String> {
    let db = sb.db();
    let mut stmt = db.prepare(sql).expect("prepare");
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).expect("query");
    rows.collect::<rusqlite::Result<Vec<_>>>().expect("rows")
}

/// The tables of the SQLite store (the schema's, whatever it holds now).
fn sqlite_tables(sb: &Sandbox) -> Vec<String> {
    sqlite_texts(sb, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")
}

/// Row counts of every table of the SQLite store, on both sides.
fn counts(sb: &Sandbox, url: &str) -> Vec<(String, String, String)> {
    sqlite_tables(sb)
        .into_iter()
        .map(|t| {
            let sql = format!("SELECT count(*) FROM \"{t}\"");
            let here = sqlite_texts(sb, &format!("SELECT CAST(count(*) AS TEXT) FROM \"{t}\"")).concat();
            let there = texts(url, &sql).concat();
            (t, here, there)
        })
        .collect()
}

/// The same rows, as text, from either engine (SQLite spells hex in upper case).
const ROWS: &[&str] = &[
    "SELECT id || '|' || fingerprint || '|' || subject || '|' || not_after || '|' || sans || '|' || lower(hex(der)) || '|' || \
     COALESCE(lower(hex(subject_key)), '-') || '|' || COALESCE(gone_since, -1) FROM certificates ORDER BY id",
    "SELECT id || '|' || cert_id || '|' || source || '|' || location || '|' || last_seen FROM sightings ORDER BY id",
    "SELECT source || '|' || location || '|' || stamp || '|' || content_sha256 || '|' || COALESCE(meta, '-') FROM objects ORDER BY source, location",
    "SELECT id || '|' || subject || '|' || kind || '|' || state || '|' || COALESCE(acked_by, '-') || '|' || COALESCE(ack_note, '-') || '|' || \
     routes_notified || '|' || seq FROM alerts ORDER BY id",
    "SELECT id || '|' || key || '|' || COALESCE(alert_id, -1) || '|' || attempts || '|' || COALESCE(last_error, '-') || '|' || payload FROM outbox ORDER BY id",
    "SELECT id || '|' || COALESCE(fingerprint, '-') || '|' || reason || '|' || created_by || '|' || expires_at FROM silences ORDER BY id",
    "SELECT id || '|' || at || '|' || action || '|' || actor || '|' || detail || '|' || prev_hash || '|' || hash FROM audit_log ORDER BY id",
];

fn postgres_form(sql: &str) -> String {
    sql.replace("lower(hex(der))", "encode(der, 'hex')").replace("lower(hex(subject_key))", "encode(subject_key, 'hex')")
}

#[test]
fn migrate_copies_every_table_and_the_copy_checks_identical_and_keeps_working() {
    let sb = used_store("");
    let url = fresh_database("migrate");
    let started = std::time::Instant::now();
    let r = sb.run(&["store", "migrate", "--to", &plain(&url)]).expect_code(0);
    eprintln!("store migrate of the test store: {:?}", started.elapsed());
    assert!(r.stdout.contains("copied ") && r.stdout.contains("audit log intact on both"), "{}", r.stdout);
    assert!(r.stderr.contains("certificates: 5 rows") && r.stderr.contains("alerts: 2 rows"), "{}", r.stderr);

    // Every table, the same number of rows; the rows themselves, column by column.
    let tables = sqlite_tables(&sb);
    assert!(tables.len() >= 20 && tables.contains(&"outbox".to_string()), "{tables:?}");
    for (table, here, there) in counts(&sb, &url) {
        assert_eq!(here, there, "rows of {table}");
    }
    let counted: std::collections::BTreeMap<String, String> = counts(&sb, &url).into_iter().map(|(t, n, _)| (t, n)).collect();
    for (table, at_least) in [("certificates", 5), ("sightings", 5), ("alerts", 2), ("outbox", 2), ("silences", 1), ("audit_log", 4)] {
        assert!(counted[table].parse::<i64>().unwrap() >= at_least, "{table}: {counted:?}");
    }
    for sql in ROWS {
        let here = sqlite_texts(&sb, sql);
        assert!(!here.is_empty(), "{sql}");
        assert_eq!(here, texts(&url, &postgres_form(sql)), "{sql}");
    }
    let acked = texts(&url, "SELECT acked_by || ' ' || ack_note FROM alerts WHERE id = 1");
    assert_eq!(acked, ["bob on it"]);

    // `store check`: every table ok, the audit chains the same, exit 0.
    let check = sb.run(&["store", "check", "--against", &plain(&url)]).expect_code(0);
    assert!(check.stdout.contains("the stores are identical"), "{}", check.stdout);
    for table in &tables {
        let line = check.stdout.lines().find(|l| l.split_whitespace().next() == Some(table.as_str()));
        assert!(line.is_some_and(|l| l.contains(" ok (")), "{table}:\n{}", check.stdout);
    }
    assert!(check.stdout.lines().any(|l| l.starts_with("audit chain") && l.contains(" ok (intact")), "{}", check.stdout);

    // The PostgreSQL store answers as the SQLite one did, and its chain verifies.
    let on_pg = |args: &[&str]| {
        let mut cmd = sb.command_at(NOW);
        cmd.args(["--store", &plain(&url)]).args(args);
        run_with_timeout(cmd, RUN_LIMIT)
    };
    let entries = sqlite_texts(&sb, "SELECT CAST(count(*) AS TEXT) FROM audit_log").concat();
    let verify = on_pg(&["audit", "verify"]).expect_code(0);
    assert!(verify.stdout.contains(&format!("audit log intact: {entries} entries")), "{}", verify.stdout);
    for args in
        [&["list", "--all", "-o", "json"][..], &["alerts", "--all", "-o", "json"], &["outbox", "--all", "-o", "json"], &["silence", "list"]]
    {
        let here = sb.run(args).expect_code(0);
        let there = on_pg(args).expect_code(0);
        assert_eq!(here.stdout, there.stdout, "`{}` differs between the stores", args.join(" "));
    }
    assert_eq!(on_pg(&["list", "-o", "json"]).expect_code(0).json().as_array().map(Vec::len), Some(5));

    // A second copy into the same database is refused, and changes nothing.
    let before = counts(&sb, &url);
    let again = sb.run(&["store", "migrate", "--to", &plain(&url)]).expect_code(1);
    assert!(again.stderr.contains("already holds certvigil data") && again.stderr.contains("nothing was changed"), "{}", again.stderr);
    assert_eq!(counts(&sb, &url), before);

    // New rows on the copy take ids after the copied ones (the identities were moved on).
    let expired = &fixtures().expired.cert.fingerprint;
    let silence = on_pg(&["silence", "add", &expired[..16], "--for", "1d", "--reason", "after the move", "--by", "carol"]).expect_code(0);
    assert!(silence.stdout.starts_with("silence 2 "), "{}", silence.stdout);
    on_pg(&["scan"]).expect_code(0);
    assert_eq!(texts(&url, "SELECT id FROM scan_runs ORDER BY id"), ["1", "2"]);
    on_pg(&["audit", "verify"]).expect_code(0);

    // The daemon runs its jobs on the copy and serves it.
    let cfg = std::fs::read_to_string(sb.config_path()).expect("config");
    sb.write(
        "certvigil.yaml",
        format!(
            "{cfg}daemon:\n  token: \"${{env:CV_TOKEN}}\"\njobs:\n  - {{name: scan, kind: scan, schedule: '@yearly', catch_up: skip}}\n"
        ),
    );
    let mut cmd = sb.command_at(NOW);
    cmd.args(["--store", &plain(&url)]);
    let d = Daemon::start(&sb, cmd, TOKEN);
    // On PostgreSQL the daemon runs jobs once it holds the leader lease (`/readyz` says so).
    let t0 = std::time::Instant::now();
    loop {
        let (_, body) = d.get("/readyz", None);
        let cluster = serde_json::from_str::<serde_json::Value>(&body).map(|v| v["cluster"].clone()).unwrap_or_default();
        if cluster.is_null() || cluster["is_leader"] == true {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "the daemon did not take the lead: {body}\n{}", d.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let run = d.run_job("scan", Duration::from_secs(60));
    assert_eq!(run["status"], "ok", "{run:#}");
    let (code, body) = d.request("GET", "/api/v1/certificates");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v.get("items").unwrap_or(&v).as_array().map(Vec::len), Some(5), "{body}");
    drop(d);
    assert_eq!(texts(&url, "SELECT id FROM scan_runs ORDER BY id"), ["1", "2", "3"]);
    on_pg(&["audit", "verify"]).expect_code(0);
}

#[test]
fn check_names_the_tables_that_differ_after_a_change_on_one_side() {
    let sb = used_store("");
    let url = fresh_database("check");
    sb.run(&["store", "migrate", "--to", &plain(&url)]).expect_code(0);
    sb.run(&["store", "check", "--against", &plain(&url)]).expect_code(0);

    // Alert 2 acknowledged on the SQLite store only: its row and the audit log now differ.
    sb.run(&["ack", "2", "--by", "dave"]).expect_code(0);
    let check = sb.run(&["store", "check", "--against", &plain(&url)]).expect_code(1);
    let line = |table: &str| {
        check.stdout.lines().find(|l| l.split_whitespace().next() == Some(table)).unwrap_or_else(|| panic!("{table}:\n{}", check.stdout))
    };
    assert!(line("alerts").contains("differs: 1 row changed (first: id=2)"), "{}", check.stdout);
    assert!(line("audit_log").contains("differs:") && line("audit_log").contains("1 row only here"), "{}", check.stdout);
    assert!(line("certificates").contains(" ok ("), "{}", check.stdout);
    assert!(line("audit").contains("differs:"), "{}", check.stdout);
    assert!(check.stdout.contains("the stores differ: alerts, audit_log, audit chain"), "{}", check.stdout);

    // The exit codes are in the command's help.
    let help = sb.run(&["store", "check", "--help"]).expect_code(0);
    assert!(help.stdout.contains("Exit codes: 0 the stores are identical; 1 they differ"), "{}", help.stdout);
}

#[test]
fn a_database_holding_certvigil_data_is_refused_and_left_as_it_was() {
    // A database a daemon already uses: its own scan of the same certificates.
    let url = fresh_database("inuse");
    let other = sandbox("");
    let cfg = std::fs::read_to_string(other.config_path()).expect("config");
    other.write("certvigil.yaml", cfg.replace("store:\n  path: state/certvigil.db\n", &format!("store:\n  url: {}\n", plain(&url))));
    other.run(&["scan"]).expect_code(0);
    let snapshot = |sql: &str| texts(&url, sql);
    let queries = [
        "SELECT id || fingerprint FROM certificates ORDER BY id",
        "SELECT id || hash FROM audit_log ORDER BY id",
        "SELECT CAST(count(*) AS TEXT) FROM scan_runs",
        "SELECT CAST(count(*) AS TEXT) FROM sightings",
    ];
    let before: Vec<Vec<String>> = queries.iter().map(|q| snapshot(q)).collect();

    let sb = used_store("");
    let r = sb.run(&["store", "migrate", "--to", &plain(&url)]).expect_code(1);
    assert!(r.stderr.contains("already holds certvigil data") && r.stderr.contains("certificates: 5 rows"), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was changed") && r.stdout.is_empty(), "{}{}", r.stdout, r.stderr);
    let after: Vec<Vec<String>> = queries.iter().map(|q| snapshot(q)).collect();
    assert_eq!(before, after);
    other.run(&["audit", "verify"]).expect_code(0);

    // What the command refuses before touching anything: a password in the URL (never
    // echoed), a target that is not PostgreSQL, a source that is, a store that does not exist.
    let r = sb.run(&["store", "migrate", "--to", "postgres://cv:hunter2secret@127.0.0.1:1/cv"]).expect_code(2);
    assert!(r.stderr.contains("--to") && r.stderr.contains("store.password") && !r.stderr.contains("hunter2secret"), "{}", r.stderr);
    let r = sb.run(&["store", "migrate", "--to", "/tmp/other.db"]).expect_code(2);
    assert!(r.stderr.contains("postgres://"), "{}", r.stderr);
    let r = other.run(&["store", "migrate", "--to", &plain(&url)]).expect_code(2);
    assert!(r.stderr.contains("copies a SQLite store"), "{}", r.stderr);
    let r = sb.run(&["--store", "nowhere.db", "store", "migrate", "--to", &plain(&url)]).expect_code(1);
    assert!(r.stderr.contains("no store there"), "{}", r.stderr);
    assert!(!sb.path("nowhere.db").exists(), "no empty store is created");
}
