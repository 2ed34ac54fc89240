//! Three real daemons on one PostgreSQL database (the test run's cluster), a 2 s leader lease:
//! one leads at a time and runs the jobs, the scans of 30 sources are shared out and each is
//! scanned once per run, a killed leader is replaced within two lease periods, a leader that
//! dies between sending a notification and marking it sent has it resent under the same
//! Message-ID (receivers deduplicate on it) and every other alert arrives once, a leader
//! stopped with SIGSTOP that wakes after losing its lease sends nothing, and a leader killed in
//! the middle of a renewal against Pebble has its order resumed by the next leader (one order).
//! A revocation check is cut into shares by issuer: several daemons check them, and each CRL
//! (served on loopback, counted) is fetched by one daemon once.

use crate::alerting::SmtpServer;
use crate::common;

use common::daemon::Daemon;
use common::postgres::{fresh_database, texts};
use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const TOKEN: &str = "cluster-daemon-token-0123456789ab";
const LEASE: Duration = Duration::from_secs(2);
const SOURCES: usize = 30;

/// 30 source folders under `root`: `s00` holds the expired fixture, `s01` the expiring one, the
/// others the valid one and a code-signing certificate.
fn fleet(root: &Path) {
    let f = fixtures();
    for i in 0..SOURCES {
        let dir = root.join(format!("s{i:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        let certs: Vec<&Issued> = match i {
            0 => vec![&f.expired],
            1 => vec![&f.expiring],
            _ => vec![&f.valid, &f.codesign],
        };
        for (n, c) in certs.iter().enumerate() {
            std::fs::write(dir.join(format!("c{n}.pem")), &c.cert.pem).unwrap();
        }
    }
}

struct Node {
    name: String,
    /// Holds the configuration (and the daemon's log) for as long as the node lives.
    sb: Sandbox,
    d: Option<Daemon>,
}

impl Node {
    fn daemon(&self) -> &Daemon {
        self.d.as_ref().expect("running")
    }

    /// `/readyz`'s cluster part, or `None` once the daemon is gone.
    fn cluster(&self) -> Option<serde_json::Value> {
        let d = self.d.as_ref()?;
        let (_, body) = d.get("/readyz", None);
        serde_json::from_str::<serde_json::Value>(&body).ok().map(|v| v["cluster"].clone())
    }

    fn leads(&self) -> bool {
        self.cluster().is_some_and(|c| c["is_leader"] == true)
    }
}

fn start(name: &str, url: &str, root: &Path, smtp: u16, fault: Option<&str>) -> Node {
    start_with(name, url, root, smtp, fault, true, NOW)
}

/// A daemon whose configuration has the evaluate job or not, whose clock starts at `at` (each
/// daemon's test clock starts at its own start: a successor starts later so that what its
/// predecessor queued is due on its clock, as it is on real clocks).
fn start_with(name: &str, url: &str, root: &Path, smtp: u16, fault: Option<&str>, evaluate: bool, at: i64) -> Node {
    let sb = Sandbox::new();
    let mut cfg = format!("store:\n  url: {url}\ndaemon:\n  token: \"${{env:CV_TOKEN}}\"\n  node_name: {name}\n  lease: 2s\nsources:\n");
    for i in 0..SOURCES {
        cfg.push_str(&format!("  - name: s{i:02}\n    kind: files\n    paths: ['{}/s{i:02}']\n", root.display()));
    }
    cfg.push_str(&format!(
        "alerts:\n  retry_initial: 30s\n  retry_max: 1h\n  receivers:\n    - name: ops-mail\n      kind: email\n      to: [ops@example.test]\n      \
         from: certvigil@example.test\n      smtp: {{host: 127.0.0.1, port: {smtp}, tls: none, timeout: 10s}}\n  routes:\n    - name: ops\n      \
         receivers: [ops-mail]\njobs:\n  - {{name: scan, kind: scan, schedule: '@hourly'}}\n"
    ));
    if evaluate {
        cfg.push_str("  - {name: evaluate, kind: evaluate, schedule: '@hourly'}\n");
    }
    sb.write("certvigil.yaml", cfg);
    let mut cmd = sb.command_at(at);
    if let Some(f) = fault {
        cmd.env("CERTVIGIL_FAULT", f);
    }
    let d = Daemon::start(&sb, cmd, TOKEN);
    Node { name: name.to_string(), sb, d: Some(d) }
}

/// Waits until exactly one of `nodes` says it leads; its index.
fn one_leader(nodes: &[&Node], limit: Duration) -> usize {
    let t0 = Instant::now();
    loop {
        let leading: Vec<usize> = (0..nodes.len()).filter(|i| nodes[*i].leads()).collect();
        if leading.len() == 1 {
            return leading[0];
        }
        assert!(leading.len() <= 1, "two daemons lead at once: {leading:?}");
        assert!(t0.elapsed() < limit, "no leader within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `sql` (one text column) gives `want`.
fn wait_rows(url: &str, sql: &str, want: impl Fn(&[String]) -> bool, limit: Duration) -> Vec<String> {
    let t0 = Instant::now();
    loop {
        let rows = texts(url, sql);
        if want(&rows) {
            return rows;
        }
        assert!(t0.elapsed() < limit, "{sql}: still {rows:?} after {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kill9(node: &mut Node) {
    if let Some(mut d) = node.d.take() {
        let _ = d.child.kill();
        let _ = d.child.wait();
    }
}

#[test]
fn one_leader_runs_the_jobs_scans_are_shared_and_a_killed_leader_is_replaced() {
    let url = fresh_database("cluster");
    let root = tempfile::tempdir().unwrap();
    fleet(root.path());
    let smtp = SmtpServer::start();
    let mut nodes: Vec<Node> = ["n1", "n2", "n3"].iter().map(|n| start(n, &url, root.path(), smtp.port, None)).collect();
    let leader = one_leader(&nodes.iter().collect::<Vec<_>>(), Duration::from_secs(10));

    // The leader's catch-up scan is shared out: one item per source, each scanned once.
    let items = wait_rows(
        &url,
        "SELECT key || ' ' || COALESCE(status, '-') || ' ' || attempts || ' ' || COALESCE(claimed_by, '-') FROM work_items ORDER BY key",
        |r| r.len() == SOURCES && r.iter().all(|l| l.contains(" ok ")),
        Duration::from_secs(60),
    );
    let mut by_node: BTreeMap<String, usize> = BTreeMap::new();
    for line in &items {
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts[2], "1", "each source claimed once: {line}");
        *by_node.entry(parts[3].to_string()).or_default() += 1;
    }
    assert!(by_node.len() >= 2, "the scans were shared between daemons: {by_node:?}");
    // Only the leader ran jobs; every source was scanned by exactly one daemon.
    let runs = wait_rows(
        &url,
        "SELECT job || ' ' || status || ' ' || node FROM job_runs ORDER BY id",
        |r| r.len() == 2 && r.iter().all(|l| l.contains(" ok ")),
        Duration::from_secs(60),
    );
    let leader_name = nodes[leader].name.clone();
    assert_eq!(runs, [format!("scan ok {leader_name}"), format!("evaluate ok {leader_name}")]);
    let scanned = texts(&url, "SELECT count(DISTINCT source) FROM sightings WHERE gone_since IS NULL");
    assert_eq!(scanned, [SOURCES.to_string()]);
    // The two alerts (expired, expiring) went out once each.
    let t0 = Instant::now();
    while smtp.count() < 2 && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(smtp.count(), 2);
    // A follower refuses to run a job by hand and names the leader.
    let follower = (0..3).find(|i| *i != leader).unwrap();
    let (code, body) = nodes[follower].daemon().request("POST", "/api/v1/jobs/evaluate/run");
    assert_eq!(code, 409, "{body}");
    assert!(body.contains(&leader_name), "{body}");
    // An operator's `evaluate` on the shared store queues but leaves the sending to the leader.
    let ev = nodes[follower].sb.run(&["evaluate"]);
    assert!(ev.code == 0 || ev.code == 1, "{}{}", ev.stdout, ev.stderr);
    assert!(ev.stderr.contains(&format!("the daemon {leader_name} leads on this store")), "{}", ev.stderr);
    assert_eq!(smtp.count(), 2, "the command sent nothing itself");
    let (_, metrics) = nodes[leader].daemon().get("/metrics", None);
    assert!(metrics.contains(&format!("certvigil_leader{{node=\"{leader_name}\"}} 1")), "{metrics}");

    // kill -9 the leader: another takes over within two lease periods.
    let t_kill = Instant::now();
    kill9(&mut nodes[leader]);
    let rest: Vec<&Node> = nodes.iter().filter(|n| n.d.is_some()).collect();
    let next = one_leader(&rest, 2 * LEASE + Duration::from_secs(1));
    let took = t_kill.elapsed();
    assert!(took <= 2 * LEASE, "failover took {took:?}");
    assert_ne!(rest[next].name, leader_name);
    let token = texts(&url, "SELECT token FROM leases WHERE name = 'leader'");
    assert_eq!(token, ["2"], "one change of leader, one new fencing token");
    eprintln!("failover after kill -9: {took:?}");
    // `schedule` says who leads now, and which daemon ran each job last.
    let sched = rest[next].sb.run(&["schedule"]).expect_code(0);
    assert!(sched.stdout.contains(&format!("leader: {} (token 2) leads", rest[next].name)), "{}", sched.stdout);
    assert!(sched.stdout.contains(&format!("on {leader_name}")), "{}", sched.stdout);
}

#[test]
fn a_leader_dying_between_sending_and_marking_is_resent_under_the_same_message_id() {
    let url = fresh_database("exactly_once");
    let root = tempfile::tempdir().unwrap();
    fleet(root.path());
    let smtp = SmtpServer::start();
    // n1 starts alone and leads; it dies (abort, as kill -9) right after its first notification
    // is accepted by the SMTP server and before the row is marked sent.
    let mut n1 = start("n1", &url, root.path(), smtp.port, Some("exit-after-send"));
    let t0 = Instant::now();
    while n1.d.as_mut().expect("running").child.try_wait().ok().flatten().is_none() {
        assert!(t0.elapsed() < Duration::from_secs(60), "n1 never reached its fault:\n{}", n1.daemon().log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(smtp.count(), 1, "one mail went out before the leader died");
    kill9(&mut n1);
    let n2 = start_with("n2", &url, root.path(), smtp.port, None, true, NOW + 600);
    let n3 = start_with("n3", &url, root.path(), smtp.port, None, true, NOW + 600);
    let next = one_leader(&[&n2, &n3], 2 * LEASE + Duration::from_secs(2));
    // The new leader takes over the interrupted evaluation and delivers what is left.
    wait_rows(&url, "SELECT count(*) FROM outbox WHERE sent_at IS NULL", |r| r == ["0"], Duration::from_secs(30));
    let mails = smtp.messages();
    let keys: Vec<String> = mails.iter().map(|m| m.must("X-Certvigil-Key").to_string()).collect();
    let ids: Vec<String> = mails.iter().map(|m| m.must("Message-ID").to_string()).collect();
    let mut distinct = keys.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 2, "both alerts arrived: {keys:?}");
    assert_eq!(mails.len(), 3, "the one in flight at the crash arrived twice, the other once: {keys:?}");
    let repeated = keys.iter().find(|k| keys.iter().filter(|x| x == k).count() == 2).expect("a repeat");
    let repeat_ids: Vec<&String> = keys.iter().zip(&ids).filter(|(k, _)| *k == repeated).map(|(_, id)| id).collect();
    assert_eq!(repeat_ids[0], repeat_ids[1], "the resend carries the same Message-ID, so receivers drop it");
    let outbox = texts(&url, "SELECT count(*) FROM outbox");
    assert_eq!(outbox, ["2"], "two notifications queued, never twice");
    let runs = texts(&url, "SELECT job || ' ' || status || ' ' || node FROM job_runs WHERE job = 'evaluate' ORDER BY id");
    let new_leader = [&n2, &n3][next].name.clone();
    assert_eq!(runs, ["evaluate interrupted n1".to_string(), format!("evaluate ok {new_leader}")]);
}

#[test]
fn a_paused_leader_that_wakes_after_losing_its_lease_sends_nothing() {
    let url = fresh_database("paused");
    let root = tempfile::tempdir().unwrap();
    fleet(root.path());
    let smtp = SmtpServer::start();
    // n1 leads and stops itself (SIGSTOP, the whole process: its lease keeper too) right after
    // its catch-up evaluation has queued the two notifications, before it sends either.
    let n1 = start("n1", &url, root.path(), smtp.port, Some("stop-after-outbox-write"));
    wait_rows(&url, "SELECT count(*) FROM outbox", |r| r == ["2"], Duration::from_secs(60));
    let t0 = Instant::now();
    while !std::fs::read_to_string(format!("/proc/{}/stat", n1.daemon().child.id())).unwrap_or_default().contains(") T ") {
        assert!(t0.elapsed() < Duration::from_secs(10), "n1 did not stop:\n{}", n1.daemon().log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    let paused_at = Instant::now();
    // n2 has no evaluate job: it leads, and leaves the queued notifications where they are.
    let n2 = start_with("n2", &url, root.path(), smtp.port, None, false, NOW);
    let _ = one_leader(&[&n2], 2 * LEASE + Duration::from_secs(2));
    // n2 may lead before a full lease has passed since the stop was seen (n1 last renewed up
    // to a third of a lease before it); n1's own grant ends within 0.8 lease of that renewal.
    // Keep it stopped a full lease, so that it certainly wakes past its grant.
    if let Some(rest) = LEASE.checked_sub(paused_at.elapsed()) {
        std::thread::sleep(rest);
    }
    let log_before = n1.daemon().log_text().len();
    rustix::process::kill_process(rustix::process::Pid::from_raw(n1.daemon().child.id() as i32).unwrap(), rustix::process::Signal::CONT)
        .unwrap();
    // n1 wakes inside its delivery with two notifications due: its grant ran out on the
    // monotonic clock, so it stops before the first send.
    wait_log(&n1, log_before, "not the leader", Duration::from_secs(10));
    std::thread::sleep(LEASE);
    let woke = n1.daemon().log_text()[log_before..].to_string();
    assert!(!woke.contains("notification sent"), "the woken daemon sent:\n{woke}");
    assert_eq!(smtp.count(), 0, "nothing arrived from the woken daemon");
    assert_eq!(texts(&url, "SELECT count(*) FROM outbox WHERE sent_at IS NULL"), ["2"], "both still queued, for the leader");
    assert!(!n1.leads() && n2.leads(), "n2 leads, n1 follows");
    let runs = texts(&url, "SELECT job || ' ' || status || ' ' || node FROM job_runs WHERE job = 'evaluate' ORDER BY id");
    assert_eq!(runs, ["evaluate interrupted n1"], "taken over by n2, and the woken n1 did not overwrite that");
}

/// Waits until the daemon's log past `from` mentions `needle`.
fn wait_log(node: &Node, from: usize, needle: &str, limit: Duration) {
    let t0 = Instant::now();
    loop {
        let log = node.daemon().log_text();
        if log.get(from..).is_some_and(|l| l.contains(needle)) {
            return;
        }
        assert!(t0.elapsed() < limit, "no `{needle}` in the log within {limit:?}:\n{}", log.get(from..).unwrap_or(""));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A daemon of the ACME failover test: `web` (one name, http-01 on Pebble's validation port)
/// issued by `pebble` and installed under `shared/tls`, a `renew` job, this store and lease;
/// the state directory (ACME account, pending key and chain) is `shared/state`, the volume the
/// daemons share. `failpoint` aborts the process at that step (as kill -9 would).
fn start_renewer(name: &str, url: &str, pebble: &crate::acme_support::Pebble, shared: &Path, failpoint: Option<&str>) -> Node {
    let sb = Sandbox::new();
    let tls = shared.join("tls");
    sb.write(
        "certvigil.yaml",
        format!(
            "store:\n  url: {url}\ndaemon:\n  token: \"${{env:CV_TOKEN}}\"\n  node_name: {name}\n  lease: 2s\nmanaged:\n  - name: web\n    \
             identifiers: [failover.certvigil.test]\n{}    key: p256\n    challenge: {{type: http-01, listen: '127.0.0.1:{}'}}\n    \
             install:\n      cert: {tls}/cert.pem\n      chain: {tls}/chain.pem\n      fullchain: {tls}/fullchain.pem\n      \
             key: {tls}/key.pem\n      mode: '0640'\njobs:\n  - {{name: renew, kind: renew, schedule: '@hourly'}}\n",
            pebble.issuer_yaml(""),
            pebble.http_port,
            tls = tls.display(),
        ),
    );
    // The real clock: Pebble's certificate must be valid now.
    let mut cmd = certvigil();
    cmd.arg("-c").arg(sb.config_path()).current_dir(sb.dir.path()).env("STATE_DIRECTORY", shared.join("state"));
    if let Some(f) = failpoint {
        cmd.env("CERTVIGIL_FAILPOINT", f);
    }
    let d = Daemon::start(&sb, cmd, TOKEN);
    Node { name: name.to_string(), sb, d: Some(d) }
}

#[test]
fn a_leader_killed_mid_renewal_is_resumed_by_the_next_one_on_the_same_order() {
    use crate::acme_support::{Pebble, openssl};
    let pebble = Pebble::start();
    let url = fresh_database("acme_failover");
    let shared = tempfile::tempdir().unwrap();
    // Pebble logs each order it creates.
    let orders = || std::fs::read_to_string(pebble.dir.path().join("pebble.log")).unwrap_or_default().matches("Added order").count();

    // n1 starts alone and leads; its catch-up renew run creates the order, records it in the
    // store and aborts before solving the challenge.
    let mut n1 = start_renewer("n1", &url, &pebble, shared.path(), Some("renew-after-order"));
    let t0 = Instant::now();
    while n1.d.as_mut().expect("running").child.try_wait().ok().flatten().is_none() {
        assert!(t0.elapsed() < Duration::from_secs(60), "n1 never reached its failpoint:\n{}", n1.daemon().log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let n1_log = n1.daemon().log_text();
    assert!(n1_log.contains("test failpoint reached"), "{n1_log}");
    kill9(&mut n1);
    let row = "SELECT COALESCE(order_url, '-') || ' ' || state || ' ' || COALESCE(fingerprint, '-') FROM renewals WHERE name = 'web'";
    let before = texts(&url, row);
    let recorded = before[0].split(' ').next().unwrap().to_string();
    assert!(recorded.starts_with("https://127.0.0.1:"), "the order in flight is recorded: {before:?}");
    assert_eq!(before, [format!("{recorded} in-flight -")]);
    assert_eq!(orders(), 1, "n1 created one order");
    assert_eq!(texts(&url, "SELECT job || ' ' || status || ' ' || node FROM job_runs ORDER BY id"), ["renew running n1"]);
    assert!(!shared.path().join("tls/cert.pem").exists(), "nothing installed yet");

    // n2, on the same store and state volume, takes over once n1's lease has run out, runs the
    // interrupted renewal again and resumes n1's order.
    let t_start = Instant::now();
    let n2 = start_renewer("n2", &url, &pebble, shared.path(), None);
    let runs = wait_rows(
        &url,
        "SELECT job || ' ' || status || ' ' || node FROM job_runs ORDER BY id",
        |r| r.len() >= 2 && r.iter().all(|l| !l.contains(" running ")),
        Duration::from_secs(90),
    );
    eprintln!("n2 resumed and installed within {:?}", t_start.elapsed());
    assert_eq!(runs, ["renew interrupted n1", "renew ok n2"], "{}", n2.daemon().log_text());
    assert!(n2.leads());
    let summary = texts(&url, "SELECT summary FROM job_runs WHERE status = 'ok'");
    assert!(summary[0].contains("web: renewed (resuming the order in flight)"), "{summary:?}");
    let n2_log = n2.daemon().log_text();
    assert!(!n2_log.contains("ACME order created"), "n2 placed an order of its own:\n{n2_log}");
    assert_eq!(orders(), 1, "Pebble created one order in all: n2 finished n1's");

    // Installed once, the order n1 recorded: the files verify up to Pebble's root, the key is
    // the certificate's, and the store names that certificate and no order in flight.
    let tls = shared.path().join("tls");
    let root = pebble.root.to_string_lossy().into_owned();
    let v = openssl(&["verify", "-CAfile", &root, "-untrusted", "chain.pem", "cert.pem"], &tls);
    assert!(v.contains("cert.pem: OK"), "{v}");
    assert_eq!(openssl(&["x509", "-noout", "-pubkey", "-in", "cert.pem"], &tls), openssl(&["pkey", "-pubout", "-in", "key.pem"], &tls));
    let fp = openssl(&["x509", "-noout", "-fingerprint", "-sha256", "-in", "cert.pem"], &tls);
    let fp = fp.trim().rsplit('=').next().unwrap().replace(':', "").to_ascii_lowercase();
    assert_eq!(texts(&url, row), [format!("- idle {fp}")], "the row names the installed certificate, no order in flight");
    let pending = shared.path().join("state/acme/pending");
    assert!(std::fs::read_dir(&pending).map(|d| d.count()).unwrap_or(0) == 0, "nothing left pending");
    let audit = texts(&url, "SELECT detail FROM audit_log WHERE action = 'renew'");
    assert_eq!(audit.len(), 1, "renewed once: {audit:?}");
    let detail: serde_json::Value = serde_json::from_str(&audit[0]).unwrap();
    assert_eq!(detail["order_url"], recorded.as_str(), "installed from the order n1 recorded: {detail}");
    let accounts = std::fs::read_dir(shared.path().join("state/acme"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("account-"));
    assert_eq!(accounts.count(), 1, "one ACME account, shared");
}

/// Leaks `s`: the fixture specification holds `&'static str`s.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[test]
fn a_revocation_check_is_shared_out_by_issuer_and_each_crl_is_fetched_once() {
    use common::http::{HttpServer, Response};
    use std::sync::{Arc, Mutex, OnceLock};
    const CAS: usize = 6;
    const LEAVES: usize = 3;
    let url = fresh_database("revocation_shares");
    // The CRLs on a loopback server that counts each fetch and answers slowly, so that one
    // daemon cannot take every share before the others poll.
    let served: Arc<OnceLock<BTreeMap<String, Vec<u8>>>> = Arc::default();
    let fetches: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let server = {
        let (served, fetches) = (Arc::clone(&served), Arc::clone(&fetches));
        HttpServer::start(move |req| {
            *fetches.lock().unwrap().entry(req.path().to_string()).or_default() += 1;
            std::thread::sleep(Duration::from_millis(300));
            match served.get().and_then(|m| m.get(req.path())) {
                Some(der) => Response::ok(der.clone()),
                None => Response::empty(404),
            }
        })
    };
    // CAS issuing CAs with LEAVES leaves each, one source per CA; the first leaf of CA 0 revoked.
    let root = tempfile::tempdir().unwrap();
    let mut crls = BTreeMap::new();
    for i in 0..CAS {
        let ca = issue(
            Spec::issuing_ca(
                leak(format!("ca{i}")),
                leak(format!("certvigil Share CA {i}")),
                Box::leak(vec![0x50, i as u8].into_boxed_slice()),
                -365 * DAY,
                5 * 365 * DAY,
                KeyKind::P256,
            ),
            None,
        );
        let dir = root.path().join(format!("s{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), &ca.cert.pem).unwrap();
        let path = format!("/ca{i}.crl");
        let mut revoked: Vec<&'static [u8]> = Vec::new();
        for j in 0..LEAVES {
            let serial: &'static [u8] = Box::leak(vec![0x60, i as u8, j as u8].into_boxed_slice());
            let leaf = issue(
                Spec {
                    crl: vec![vec![leak(server.url(&path))]],
                    ..Spec::leaf(
                        leak(format!("leaf{i}-{j}")),
                        leak(format!("l{j}.ca{i}.example.test")),
                        serial,
                        -DAY,
                        60 * DAY,
                        KeyKind::P256,
                    )
                },
                Some(&ca),
            );
            std::fs::write(dir.join(format!("leaf{j}.pem")), &leaf.cert.pem).unwrap();
            if i == 0 && j == 0 {
                revoked.push(serial);
            }
        }
        crls.insert(path, crl(&ca, &revoked));
    }
    served.set(crls).unwrap();

    let start_checker = |name: &str| -> Node {
        let sb = Sandbox::new();
        let mut cfg =
            format!("store:\n  url: {url}\ndaemon:\n  token: \"${{env:CV_TOKEN}}\"\n  node_name: {name}\n  lease: 2s\nsources:\n");
        for i in 0..CAS {
            cfg.push_str(&format!("  - name: s{i}\n    kind: files\n    paths: ['{}/s{i}']\n", root.path().display()));
        }
        cfg.push_str(
            "revocation: {prefer: crl, fallback: false}\njobs:\n  - {name: scan, kind: scan, schedule: '@hourly'}\n  \
             - {name: revocation, kind: revocation, schedule: '@hourly'}\n",
        );
        sb.write("certvigil.yaml", cfg);
        let d = Daemon::start(&sb, sb.command_at(NOW), TOKEN);
        Node { name: name.to_string(), sb, d: Some(d) }
    };
    let nodes: Vec<Node> = ["r1", "r2", "r3"].iter().map(|n| start_checker(n)).collect();
    let leader = one_leader(&nodes.iter().collect::<Vec<_>>(), Duration::from_secs(10));
    let leader_name = nodes[leader].name.clone();

    // The leader's revocation run is cut into 8 shares, each claimed once.
    let runs = wait_rows(
        &url,
        "SELECT job || ' ' || status || ' ' || node FROM job_runs ORDER BY id",
        |r| r.len() == 2 && r.iter().all(|l| !l.contains(" running ")),
        Duration::from_secs(90),
    );
    assert_eq!(runs, [format!("scan ok {leader_name}"), format!("revocation ok {leader_name}")]);
    let items = texts(
        &url,
        "SELECT key || ' ' || status || ' ' || attempts || ' ' || claimed_by || ' ' || summary FROM work_items \
         WHERE kind = 'revocation' ORDER BY key",
    );
    assert_eq!(items.len(), 8, "{items:?}");
    let mut by_node: BTreeMap<String, usize> = BTreeMap::new();
    let mut checked = 0;
    for line in &items {
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!((parts[1], parts[2]), ("ok", "1"), "each share claimed once and checked: {line}");
        let n: usize = parts[4].parse().unwrap_or_else(|_| panic!("{line}"));
        if n > 0 {
            *by_node.entry(parts[3].to_string()).or_default() += 1;
        }
        checked += n;
    }
    assert_eq!(checked, CAS * (LEAVES + 1), "every certificate in exactly one share: {items:?}");
    assert!(by_node.len() >= 2, "the shares were checked by several daemons: {items:?}");
    // Every certificate of one issuer was in one share: each CRL was fetched once in all.
    let fetched = fetches.lock().unwrap().clone();
    assert_eq!(fetched.len(), CAS, "{fetched:?}");
    assert!(fetched.values().all(|n| *n == 1), "a CRL fetched by two daemons: {fetched:?}");
    let states = texts(&url, "SELECT status || ' ' || count(*) FROM revocation_status GROUP BY status ORDER BY status");
    assert_eq!(
        states,
        [format!("good {}", CAS * LEAVES - 1), format!("not-applicable {CAS}"), "revoked 1".to_string()],
        "the statuses the shares saved"
    );
    // The run's summary adds the shares up.
    let summary = texts(&url, "SELECT summary FROM job_runs WHERE job = 'revocation'");
    assert!(summary[0].starts_with(&format!("{} certificates checked in 8 shares by ", CAS * (LEAVES + 1))), "{summary:?}");
}
