//! The store's operations on both engines: each test runs the same operations on a SQLite store
//! and on a PostgreSQL one ([`super::testing`]), asserts what they must return, and asserts that
//! both engines return the same (the `Debug` text of every answer, step by step). Then what only
//! PostgreSQL has: migrations from every earlier version, the migration lock, the audit log's
//! triggers and concurrent appends from two daemons.
//!
//! Ids the engines hand out may differ where PostgreSQL's identity skips values: an
//! `INSERT … ON CONFLICT` that finds the row, an insert refused or rolled back, each take a
//! number all the same (a sequence is not transactional), where SQLite's rowid is the next after
//! the largest. Such ids (certificates, keys, outbox rows) are compared by rank, which keeps
//! their order and every reference between rows, not by value.
//!
//! Text sorts byte-wise on both: the test cluster uses the C collation (tests/postgres.sh), as a
//! production database must for the same order ([`text_sorts_bytewise_on_both`] checks it).

use super::testing::{self, TestStore, both, client, fresh_database, open_postgres_url, postgres};
use super::{
    AlertChanges, CertRow, CrlFacts, CrlSample, MIGRATIONS, ObjectOutcome, OwnerScope, Result, Store, StoreError, Verdict, db::params,
    object_key,
};
use crate::model::UnixTime;
use crate::model::alert::{Change, Event, Notice, Notify, Silence};
use crate::model::finding::{Finding, Kind, Severity, SubjectKind, cert_subject, managed_subject};
use crate::model::observed::{ImageFinding, KeyObject};
use crate::model::rows::{CachedOcsp, RenewalRow};
use crate::model::{RevocationState, RevocationStatus};
use crate::x509::Parsed;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;

// ---------------------------------------------------------------------------------------------
// Harness

/// What one engine answered, step by step, as `Debug` text.
struct Transcript {
    engine: &'static str,
    steps: Vec<(String, String)>,
}

impl Transcript {
    fn new(engine: &'static str) -> Transcript {
        Transcript { engine, steps: Vec::new() }
    }

    /// The value of `r`, or a panic naming the engine and the step.
    fn ok<T>(&self, step: &str, r: Result<T>) -> T {
        r.unwrap_or_else(|e| panic!("{}: {step}: {e}", self.engine))
    }

    /// Records `v` as the answer of `step`.
    fn note<T: Debug>(&mut self, step: &str, v: &T) {
        self.steps.push((step.to_string(), format!("{v:#?}")));
    }

    /// The value of `r`, recorded.
    fn take<T: Debug>(&mut self, step: &str, r: Result<T>) -> T {
        let v = self.ok(step, r);
        self.note(step, &v);
        v
    }
}

/// Both engines answered every step alike.
fn assert_same(a: &Transcript, b: &Transcript) {
    let names = |t: &Transcript| t.steps.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>();
    assert_eq!(names(a), names(b), "the two engines went through different steps");
    for ((step, x), (_, y)) in a.steps.iter().zip(&b.steps) {
        assert!(x == y, "step `{step}` differs:\n--- {} ---\n{x}\n--- {} ---\n{y}", a.engine, b.engine);
    }
    assert!(!a.steps.is_empty(), "nothing was compared");
}

/// Runs `scenario` on a fresh store of each engine and compares the transcripts.
fn on_both(scenario: impl Fn(&mut TestStore, &mut Transcript)) {
    let runs: Vec<Transcript> = both()
        .into_iter()
        .map(|mut s| {
            let mut t = Transcript::new(s.name);
            scenario(&mut s, &mut t);
            t
        })
        .collect();
    assert_same(&runs[0], &runs[1]);
}

/// The chain verified whole, however long.
fn intact(v: &Verdict) -> bool {
    matches!(v, Verdict::Intact { .. })
}

/// Ranks of ids (1 for the smallest): what two engines' ids are compared by.
fn ranks(ids: impl IntoIterator<Item = i64>) -> HashMap<i64, i64> {
    let mut ids: Vec<i64> = ids.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter().zip(1..).collect()
}

/// Certificate ids by rank, with each id's fingerprint.
struct Certs {
    rank: HashMap<i64, i64>,
    fingerprint: HashMap<i64, String>,
}

impl Certs {
    fn of(s: &Store, t: &Transcript) -> Certs {
        let all = t.ok("certificates(true)", s.certificates(true));
        Certs { rank: ranks(all.iter().map(|c| c.id)), fingerprint: all.iter().map(|c| (c.id, c.facts.fingerprint.0.clone())).collect() }
    }

    fn rank(&self, id: i64) -> i64 {
        *self.rank.get(&id).unwrap_or_else(|| panic!("certificate id {id} is not in the store"))
    }

    fn fp(&self, id: i64) -> &str {
        &self.fingerprint[&id]
    }

    /// The id of the certificate with fingerprint `fp`.
    fn id(&self, fp: &str) -> i64 {
        *self.fingerprint.iter().find(|(_, f)| *f == fp).unwrap_or_else(|| panic!("no certificate {fp}")).0
    }

    fn rows(&self, rows: &[CertRow]) -> Vec<CertRow> {
        rows.iter().map(|r| CertRow { id: self.rank(r.id), ..r.clone() }).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures: certificates made once per test and given to both engines.

struct Cert {
    der: Vec<u8>,
    fp: String,
}

struct Fixture {
    /// `Suite CA`, self-signed, valid until 2040.
    ca: Cert,
    /// `www.example.net`, signed by the CA, serial 1001, until 2030.
    www: Cert,
    /// `api.example.net`, serial 0ABC, until 2028.
    api: Cert,
    /// `old.example.net`, serial 33, until 2027.
    old: Cert,
    ca_only: Parsed,
    /// www then the CA, PEM.
    chain: Parsed,
    www_only: Parsed,
    api_only: Parsed,
    old_only: Parsed,
    /// A PEM block that is no certificate.
    broken: Parsed,
    empty: Parsed,
}

impl Fixture {
    fn new() -> Fixture {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SerialNumber, date_time_ymd};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name.push(DnType::CommonName, "Suite CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.not_before = date_time_ymd(2020, 1, 1);
        ca.not_after = date_time_ymd(2040, 1, 1);
        ca.serial_number = Some(SerialNumber::from_slice(&[0x01]));
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, &ca_key);
        let leaf = |cn: &str, serial: &[u8], year: i32| {
            let mut p = CertificateParams::new(vec![cn.to_string()]).unwrap();
            p.distinguished_name.push(DnType::CommonName, cn);
            p.serial_number = Some(SerialNumber::from_slice(serial));
            p.not_before = date_time_ymd(2024, 1, 1);
            p.not_after = date_time_ymd(year, 1, 1);
            p.use_authority_key_identifier_extension = true;
            p.signed_by(&KeyPair::generate().unwrap(), &issuer).unwrap()
        };
        let (www, api, old) = (
            leaf("www.example.net", &[0x10, 0x01], 2030),
            leaf("api.example.net", &[0x0A, 0xBC], 2028),
            leaf("old.example.net", &[0x33], 2027),
        );
        let cert = |der: &[u8]| {
            let parsed = crate::x509::parse_object(der, &[]);
            assert_eq!(parsed.certs.len(), 1, "{:?}", parsed.errors);
            Cert { der: der.to_vec(), fp: parsed.certs[0].facts.fingerprint.0.clone() }
        };
        let parse = |data: &[u8], certs: usize| {
            let parsed = crate::x509::parse_object(data, &[]);
            assert_eq!(parsed.certs.len(), certs, "{:?}", parsed.errors);
            parsed
        };
        let broken = crate::x509::parse_object(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", &[]);
        assert!(broken.certs.is_empty() && !broken.errors.is_empty(), "{broken:?}");
        Fixture {
            ca_only: parse(ca_cert.pem().as_bytes(), 1),
            chain: parse(format!("{}{}", www.pem(), ca_cert.pem()).as_bytes(), 2),
            www_only: parse(www.pem().as_bytes(), 1),
            api_only: parse(api.der(), 1),
            old_only: parse(old.der(), 1),
            ca: cert(ca_cert.der()),
            www: cert(www.der()),
            api: cert(api.der()),
            old: cert(old.der()),
            broken,
            empty: Parsed::default(),
        }
    }
}

const SOURCES: [(&str, &str, &[&str]); 4] =
    [("disk", "files", &["prod", "eu"]), ("k8s", "kubernetes", &[]), ("hsm", "pkcs11", &["hsm"]), ("tls", "tls", &[])];

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn parsed<'a>(stamp: &'a str, content_sha256: &'a str, parsed: &'a Parsed) -> ObjectOutcome<'a> {
    ObjectOutcome::Parsed { stamp, content_sha256, parsed }
}

const SITE: &str = "k8s://c/web/secrets/site#tls.crt";
const OLD: &str = "k8s://c/web/secrets/old#tls.crt";
const HSM_CERT: &str = "pkcs11:token=t;id=%01;type=cert";
const HSM_KEY: &str = "pkcs11:token=t;id=%01;type=private";
const HSM_SPARE: &str = "pkcs11:token=t;id=%02;type=private";

fn key_object(label: &str, spki: Option<&str>) -> KeyObject {
    KeyObject {
        label: Some(label.into()),
        key_id: Some("01".into()),
        class: "private".into(),
        algorithm: "EC".into(),
        bits: Some(256),
        curve: Some("P-256".into()),
        spki_sha256: spki.map(str::to_string),
        attributes: serde_json::json!({"extractable": false, "sign": true}),
        document: None,
    }
}

/// An image finding of container `app` (an init container in a StatefulSet).
fn image(ns: &str, kind: &str, workload: &str, image: &str, problem: &str, sev: Severity) -> ImageFinding {
    let init = kind == "StatefulSet";
    ImageFinding {
        namespace: ns.into(),
        workload_kind: kind.into(),
        workload: workload.into(),
        container: if init { "init" } else { "app" }.into(),
        container_type: if init { "initContainer" } else { "container" }.into(),
        image: image.into(),
        problem: problem.into(),
        severity: sev,
    }
}

/// Three scans over four sources with every outcome the writer knows; returns the run ids.
///
/// 1 (t=1000): www and the CA in a chain on disk, in a Secret and served by an endpoint; api on
///    disk and on a token with its key; old in a Secret; a file that is no certificate, one that
///    cannot be read, a directory that cannot be listed; image findings.
/// 2 (t=2000): the chain file unchanged, api's file touched (same content), the unreadable file
///    now holds the CA, the Secret drops the CA, old's Secret vanishes (old is gone).
/// 3 (t=3000): old's Secret comes back (old returns).
fn scan_everything(s: &mut TestStore, t: &mut Transcript, fx: &Fixture) -> [i64; 3] {
    let all: Vec<String> = SOURCES.iter().map(|s| s.0.to_string()).collect();
    let engine = t.engine;
    let ok = |step: &str, r: Result<()>| r.unwrap_or_else(|e| panic!("{engine}: scan: {step}: {e}"));

    let mut w = t.ok("begin scan 1", s.begin_scan(1000, &all));
    let run1 = w.run_id();
    for (name, kind, tags) in SOURCES {
        ok("register", w.register_source(name, kind, &names(tags)));
    }
    ok("chain", w.record("disk", "/etc/ssl/chain.pem", None, parsed("1", "c1", &fx.chain)));
    ok("api", w.record("disk", "/etc/ssl/api.der", None, parsed("1", "a1", &fx.api_only)));
    ok("broken", w.record("disk", "/etc/ssl/broken.pem", None, parsed("1", "b1", &fx.broken)));
    ok("locked", w.record("disk", "/etc/ssl/locked.pem", None, ObjectOutcome::Failed { message: "permission denied" }));
    ok("source error", w.source_error("disk", "/etc/ssl/private", "cannot list: permission denied"));
    let site_meta = serde_json::json!({
        "owner": " web ", "owner_from": "annotation", "namespace": "web",
        "certManager": {"certificate": "site", "ready": "False", "reason": "Failed", "message": "no"}
    });
    ok("site", w.record("k8s", SITE, None, parsed("1", "s1", &fx.chain)));
    ok("site meta", w.object_extras("k8s", SITE, Some(&site_meta), None));
    ok("old", w.record("k8s", OLD, None, parsed("1", "o1", &fx.old_only)));
    let old_meta = serde_json::json!({"owner": "legacy", "owner_contact": " legacy@corp.example "});
    ok("old meta", w.object_extras("k8s", OLD, Some(&old_meta), None));
    ok("hsm cert", w.record("hsm", HSM_CERT, None, parsed("1", "h1", &fx.api_only)));
    ok("hsm cert meta", w.object_extras("hsm", HSM_CERT, Some(&serde_json::json!({"token": "t", "id": "01", "label": "api"})), None));
    let api_spki = fx.api_only.certs[0].facts.spki_sha256.clone();
    ok("hsm key", w.record("hsm", HSM_KEY, None, parsed("1", "h2", &fx.empty)));
    ok("hsm key extras", w.object_extras("hsm", HSM_KEY, None, Some(&key_object("api", Some(&api_spki)))));
    ok("hsm spare", w.record("hsm", HSM_SPARE, None, parsed("1", "h3", &fx.empty)));
    ok("hsm spare extras", w.object_extras("hsm", HSM_SPARE, None, Some(&key_object("spare", None))));
    ok("tls", w.record("tls", "tls://h:443", None, parsed("1", "t1", &fx.chain)));
    let probe = serde_json::json!({"endpoint": "h:443", "server_name": "h", "leaf_sha256": fx.www.fp, "verified": false, "verify_error": "unknown issuer"});
    ok("tls meta", w.object_extras("tls", "tls://h:443", Some(&probe), None));
    let images = [
        image("web", "Deployment", "site", "nginx:latest", "latest", Severity::Warning),
        image("db", "StatefulSet", "pg", "busybox", "untagged", Severity::Info),
    ];
    ok("images", w.replace_image_findings("k8s", &images));
    for (name, ..) in SOURCES {
        ok("finish source", w.finish_source(name));
    }
    let r1 = t.take("scan 1", w.finish());
    let errors = fx.broken.errors.len() as i64 + 2;
    assert_eq!(
        (r1.objects_seen, r1.objects_read, r1.certs_seen, r1.certs_new, r1.certs_gone, r1.errors, r1.status.as_str()),
        (10, 9, 9, 4, 0, errors, "errors"),
        "{engine}"
    );

    let mut w = t.ok("begin scan 2", s.begin_scan(2000, &all));
    let run2 = w.run_id();
    let disk = t.ok("known disk", w.known_objects("disk"));
    let mut locations = Vec::new();
    ok("known locations", w.each_known_location("disk", &mut |l| locations.push(l.to_string())));
    let k8s = t.ok("known k8s", w.known_objects("k8s"));
    let hsm = t.ok("known hsm", w.known_objects("hsm"));
    let tls = t.ok("known tls", w.known_objects("tls"));
    let known = |m: &super::KnownObjects, loc: &str| *m.get(&object_key(loc)).unwrap_or_else(|| panic!("{engine}: {loc} is not known"));
    ok("chain", w.record("disk", "/etc/ssl/chain.pem", Some(&known(&disk, "/etc/ssl/chain.pem")), ObjectOutcome::Unchanged));
    ok("api", w.record("disk", "/etc/ssl/api.der", Some(&known(&disk, "/etc/ssl/api.der")), ObjectOutcome::SameContent { stamp: "2" }));
    ok("broken", w.record("disk", "/etc/ssl/broken.pem", Some(&known(&disk, "/etc/ssl/broken.pem")), parsed("2", "b2", &fx.broken)));
    ok("locked", w.record("disk", "/etc/ssl/locked.pem", Some(&known(&disk, "/etc/ssl/locked.pem")), parsed("2", "l2", &fx.ca_only)));
    ok("site", w.record("k8s", SITE, Some(&known(&k8s, SITE)), parsed("2", "s2", &fx.www_only)));
    ok("site meta", w.object_extras("k8s", SITE, Some(&site_meta), None));
    ok("old vanished", w.vanished("k8s", OLD));
    for loc in [HSM_CERT, HSM_KEY, HSM_SPARE] {
        ok("hsm", w.record("hsm", loc, Some(&known(&hsm, loc)), ObjectOutcome::Unchanged));
    }
    ok("tls", w.record("tls", "tls://h:443", Some(&known(&tls, "tls://h:443")), ObjectOutcome::Unchanged));
    for (name, ..) in SOURCES {
        ok("finish source", w.finish_source(name));
    }
    let r2 = t.take("scan 2", w.finish());
    assert_eq!(
        (r2.objects_seen, r2.objects_read, r2.certs_seen, r2.certs_new, r2.certs_gone, r2.errors),
        (9, 4, 8, 0, 1, fx.broken.errors.len() as i64),
        "{engine}"
    );
    // What scan 2 was given to compare with: the stored state of scan 1.
    let sorted = |m: &super::KnownObjects| m.iter().map(|(k, v)| (*k, format!("{v:?}"))).collect::<BTreeMap<_, _>>();
    t.note("known objects before scan 2", &[sorted(&disk), sorted(&k8s), sorted(&hsm), sorted(&tls)]);
    t.note("known locations of disk", &locations);
    assert_eq!(locations, ["/etc/ssl/api.der", "/etc/ssl/broken.pem", "/etc/ssl/chain.pem", "/etc/ssl/locked.pem"], "{engine}");
    let chain_state = known(&disk, "/etc/ssl/chain.pem");
    assert_eq!((chain_state.certs, chain_state.has_error, chain_state.vanished), (2, false, false), "{engine}");
    assert!(known(&disk, "/etc/ssl/locked.pem").has_error, "{engine}");

    let mut w = t.ok("begin scan 3", s.begin_scan(3000, &names(&["k8s"])));
    let run3 = w.run_id();
    let k8s = t.ok("known k8s", w.known_objects("k8s"));
    let old = known(&k8s, OLD);
    assert!(old.vanished && old.certs == 0, "{engine}: {old:?}");
    ok("old returns", w.record("k8s", OLD, Some(&old), parsed("3", "o3", &fx.old_only)));
    ok("finish source", w.finish_source("k8s"));
    let r3 = t.take("scan 3", w.finish());
    assert_eq!((r3.objects_seen, r3.certs_seen, r3.certs_new, r3.certs_gone, r3.status.as_str()), (1, 1, 0, 0, "ok"), "{engine}");
    [run1, run2, run3]
}

/// What `/metrics` reports per source (x509-certificate-exporter v4's `x509_source_up`,
/// `x509_source_bundles` and `x509_source_errors_total`): up follows the last complete scan,
/// bundles are the current objects by v4 kind, errors add up over runs by kind and reason.
#[test]
fn source_samples_follow_scans() {
    let fx = Fixture::new();
    on_both(|s, t| {
        let e = t.engine;
        assert_eq!(t.ok("no sources", s.source_samples()), vec![], "{e}");
        let mut w = t.ok("begin 1", s.begin_scan(100, &names(&["disk", "k8s"])));
        t.ok("register disk", w.register_source("disk", "files", &[]));
        t.ok("register k8s", w.register_source("k8s", "kubernetes", &[]));
        t.ok("chain", w.record("disk", "/etc/ssl/chain.pem", None, parsed("1", "c1", &fx.chain)));
        t.ok("locked", w.record("disk", "/etc/ssl/locked.pem", None, ObjectOutcome::Failed { message: "Permission denied (os error 13)" }));
        t.ok("cannot list", w.source_error("disk", "/etc/ssl/private", "cannot list: Permission denied (os error 13)"));
        t.ok("site", w.record("k8s", SITE, None, parsed("1", "s1", &fx.chain)));
        t.ok(
            "bundle",
            w.record("k8s", "k8s://c/mutatingwebhookconfigurations/inject#sidecar.example", None, parsed("1", "w1", &fx.ca_only)),
        );
        t.ok("cm", w.record("k8s", "k8s://c/web/configmaps/ca#ca.crt", None, parsed("1", "m1", &fx.broken)));
        t.ok("forbidden", w.source_error("k8s", "k8s://c/db/secrets/", "cannot list: forbidden to list secrets in db (403): no"));
        t.ok("finish disk", w.finish_source("disk"));
        // k8s's scan does not complete: it has no up yet.
        t.take("finish 1", w.finish());
        let bundles = |v: &[(&'static str, i64)]| v.iter().copied().collect::<BTreeMap<_, _>>();
        let broken = fx.broken.errors.len() as i64;
        let samples = t.ok("samples 1", s.source_samples());
        assert_eq!(
            samples,
            vec![
                super::SourceSample { name: "disk".into(), kind: "files".into(), up: Some(false), bundles: bundles(&[("file", 2)]) },
                super::SourceSample {
                    name: "k8s".into(),
                    kind: "kubernetes".into(),
                    up: None,
                    bundles: bundles(&[("kube-cabundle", 1), ("kube-configmap", 1), ("kube-secret", 1)])
                },
            ],
            "{e}"
        );
        let errors = |s: &TestStore| -> Vec<(String, String, String, i64)> {
            s.source_error_samples().expect("errors").into_iter().map(|x| (x.source, x.source_kind, x.reason, x.count)).collect()
        };
        let row = |a: &str, b: &str, c: &str, n: i64| (a.to_string(), b.to_string(), c.to_string(), n);
        assert_eq!(
            errors(s),
            [
                row("disk", "file", "permission_denied", 2),
                row("k8s", "kube-configmap", "bad_pem", broken),
                row("k8s", "kube-secret", "http_403", 1)
            ],
            "{e}"
        );
        // Scan 2 lists everything: up, the counts grow by this run's errors only.
        let mut w = t.ok("begin 2", s.begin_scan(200, &names(&["disk", "k8s"])));
        t.ok("register disk", w.register_source("disk", "files", &[]));
        t.ok("register k8s", w.register_source("k8s", "kubernetes", &[]));
        t.ok("locked", w.record("disk", "/etc/ssl/locked.pem", None, ObjectOutcome::Failed { message: "Permission denied (os error 13)" }));
        t.ok("chain gone", w.vanished("disk", "/etc/ssl/chain.pem"));
        t.ok("finish disk", w.finish_source("disk"));
        t.ok("finish k8s", w.finish_source("k8s"));
        t.take("finish 2", w.finish());
        let samples = t.ok("samples 2", s.source_samples());
        assert_eq!((samples[0].up, samples[0].bundles.clone()), (Some(true), bundles(&[("file", 1)])), "{e}");
        assert_eq!(samples[1].up, Some(true), "{e}");
        assert_eq!(errors(s)[0], row("disk", "file", "permission_denied", 3), "{e}");
    });
}

// ---------------------------------------------------------------------------------------------
// Scans and the inventory

#[test]
fn scans_record_every_outcome_alike() {
    let fx = Fixture::new();
    on_both(|s, t| {
        let runs = scan_everything(s, t, &fx);
        assert_eq!(runs, [1, 2, 3], "{}", t.engine);
        let last = t.take("last run", s.last_run()).expect("a run");
        assert_eq!((last.id, last.finished_at), (3, Some(3000)), "{}", t.engine);
        for run in runs {
            t.take(&format!("run errors {run}"), s.run_errors(run));
        }
        let errors = t.take("object errors", s.object_errors(None));
        assert_eq!(
            errors.iter().map(|e| (e.source.as_str(), e.location.as_str())).collect::<Vec<_>>(),
            [("disk", "/etc/ssl/broken.pem")],
            "{}: the unreadable file was read in scan 2",
            t.engine
        );
        assert!(t.take("object errors k8s", s.object_errors(Some("k8s"))).is_empty());
        t.take("object errors disk", s.object_errors(Some("disk")));
        let statuses = t.take("source statuses", s.source_statuses());
        assert_eq!(
            statuses.iter().map(|s| (s.name.as_str(), s.kind.as_str(), s.last_scan_at, s.errors)).collect::<Vec<_>>(),
            [
                ("disk", "files", Some(2000), 1),
                ("hsm", "pkcs11", Some(2000), 0),
                ("k8s", "kubernetes", Some(3000), 0),
                ("tls", "tls", Some(2000), 0)
            ],
            "{}",
            t.engine
        );
        assert_eq!(statuses[0].tags, ["prod", "eu"], "{}", t.engine);
        let tags: BTreeMap<String, Vec<String>> = t.ok("source tags", s.source_tags()).into_iter().collect();
        t.note("source tags", &tags);
        let mut sources = t.ok("source names", s.source_names());
        sources.sort();
        t.note("source names", &sources);
        assert_eq!(sources, ["disk", "hsm", "k8s", "tls"], "{}", t.engine);
        t.ok("checkpoint", s.checkpoint());
    });
}

#[test]
fn the_inventory_reads_alike() {
    let fx = Fixture::new();
    on_both(|s, t| {
        scan_everything(s, t, &fx);
        let ids = Certs::of(s, t);
        let e = t.engine;
        let current = t.ok("certificates", s.certificates(false));
        t.note("certificates", &ids.rows(&current));
        // By notAfter: old (2027), api (2028), www (2030), the CA (2040); old came back in scan 3.
        fn order(rows: &[CertRow]) -> Vec<&str> {
            rows.iter().map(|r| r.facts.fingerprint.0.as_str()).collect()
        }
        assert_eq!(order(&current), [&fx.old.fp, &fx.api.fp, &fx.www.fp, &fx.ca.fp].map(String::as_str), "{e}");
        let by_fp = |fp: &str| current.iter().find(|r| r.facts.fingerprint.0 == fp).unwrap().clone();
        assert_eq!((by_fp(&fx.www.fp).current_sightings, by_fp(&fx.www.fp).sources.clone()), (3, names(&["disk", "k8s", "tls"])), "{e}");
        assert_eq!((by_fp(&fx.ca.fp).current_sightings, by_fp(&fx.ca.fp).sources.clone()), (3, names(&["disk", "tls"])), "{e}");
        assert_eq!(by_fp(&fx.api.fp).sources, ["disk", "hsm"], "{e}");
        assert_eq!(by_fp(&fx.api.fp).facts.serial, "0ABC", "{e}");
        let all = t.ok("certificates(true)", s.certificates(true));
        t.note("certificates(true)", &ids.rows(&all));

        let mut each = Vec::new();
        t.ok(
            "each certificate",
            s.each_certificate::<StoreError>(false, |r| {
                each.push(r);
                Ok(())
            }),
        );
        assert_eq!(format!("{each:?}"), format!("{current:?}"), "{e}: each_certificate walks what certificates returns");
        // The callback's own error stops the walk and comes back as it was.
        let mut seen = 0;
        let stopped = s.each_certificate::<Box<dyn std::error::Error>>(true, |_| {
            seen += 1;
            Err("enough".into())
        });
        assert_eq!((stopped.map_err(|e| e.to_string()), seen), (Err("enough".to_string()), 1), "{e}");

        let mut identities = Vec::new();
        t.ok("identities", s.each_certificate_identity(|c| identities.push(c)));
        identities.sort_by_key(|c| c.id);
        for c in &mut identities {
            c.id = ids.rank(c.id);
        }
        t.note("identities", &identities);
        assert_eq!(identities.iter().filter(|c| c.is_ca).count(), 1, "{e}");
        assert!(identities.iter().all(|c| !c.gone), "{e}");

        let www_spki = fx.www_only.certs[0].facts.spki_sha256.clone();
        let for_keys = t.ok("certificates for keys", s.certificates_for_keys(&[ids.id(&fx.old.fp)], &[&www_spki, "none"]));
        assert_eq!(order(&for_keys), [&fx.old.fp, &fx.www.fp].map(String::as_str), "{e}");
        t.note("certificates for keys", &ids.rows(&for_keys));
        let by_id = t.ok("certificates by id", s.certificates_by_id(&[ids.id(&fx.ca.fp), ids.id(&fx.api.fp), 999_999]));
        assert_eq!(order(&by_id), [&fx.api.fp, &fx.ca.fp].map(String::as_str), "{e}");

        // find: a fingerprint prefix in any case with colons, or a serial with or without its
        // leading zeros.
        let colons: String =
            fx.www.fp[..8].to_ascii_uppercase().as_bytes().chunks(2).map(|p| std::str::from_utf8(p).unwrap()).collect::<Vec<_>>().join(":");
        // What each query must find: the certificates (by notAfter) whose fingerprint starts
        // with it or whose serial is it, leading zeros aside. A short query may also be the
        // start of a random fingerprint, hence computed rather than listed.
        let by_not_after = [&fx.old, &fx.api, &fx.www, &fx.ca];
        let matching = |q: &str| -> Vec<&str> {
            let q: String = q.chars().filter(|c| *c != ':').collect();
            let serial = |c: &Cert| crate::x509::parse_object(&c.der, &[]).certs.remove(0).facts.serial;
            by_not_after
                .iter()
                .filter(|c| {
                    c.fp.starts_with(&q.to_ascii_lowercase())
                        || serial(c).trim_start_matches('0') == q.to_ascii_uppercase().trim_start_matches('0')
                })
                .map(|c| c.fp.as_str())
                .collect()
        };
        for (query, must) in [
            (colons.as_str(), Some(&fx.www.fp)),
            (&fx.api.fp[..], Some(&fx.api.fp)),
            ("abc", Some(&fx.api.fp)),
            ("0ABC", Some(&fx.api.fp)),
            ("000abc", Some(&fx.api.fp)),
            ("1001", Some(&fx.www.fp)),
            ("zz", None),
        ] {
            let found = t.ok("find", s.find(query));
            let expected = matching(query);
            assert!(must.is_none_or(|m| expected.contains(&m.as_str())), "{query}");
            assert_eq!(order(&found), expected, "{e}: find {query}");
            t.note(&format!("find {query}"), &ids.rows(&found));
        }

        for (what, cert) in [("www", &fx.www), ("ca", &fx.ca), ("api", &fx.api), ("old", &fx.old)] {
            let id = ids.id(&cert.fp);
            t.take(&format!("sightings of {what}"), s.sightings(id));
            let history = t.take(&format!("history of {what}"), s.history(id));
            if what == "old" {
                let events: Vec<(i64, &str)> = history.iter().map(|h| (h.at, h.event.as_str())).collect();
                assert_eq!(
                    events,
                    [(1000, "discovered"), (2000, "unsighted"), (2000, "gone"), (3000, "returned"), (3000, "sighted")],
                    "{e}"
                );
            }
            assert_eq!(t.ok("der", s.der(id)), cert.der, "{e}: der of {what}");
        }
        let site_meta = t.ok("sightings", s.sightings(ids.id(&fx.www.fp)));
        let site = site_meta.iter().find(|r| r.location == SITE).expect("the Secret's sighting");
        assert_eq!(site.meta.as_ref().and_then(|m| m.get("namespace")), Some(&serde_json::json!("web")), "{e}");
        assert!(matches!(s.der(999_999), Err(StoreError::NoRow)), "{e}");

        let mut listing = Vec::new();
        t.ok(
            "each listing",
            s.each_listing(|names, r| {
                let sources: Vec<String> = r.sources.iter().map(|n| names.sources[usize::from(*n)].clone()).collect();
                listing.push(format!(
                    "{} {} {} {:?} {} {} {} {} {} {} {} {} {:?} {sources:?}",
                    ids.rank(r.id),
                    r.fingerprint,
                    r.subject,
                    r.common_name,
                    r.sans_json,
                    r.serial,
                    r.issuer,
                    r.not_before,
                    r.not_after,
                    r.first_seen,
                    r.ekus_json,
                    r.is_ca,
                    r.revocation
                ));
            }),
        );
        assert_eq!(listing.len(), 4, "{e}");
        assert!(listing[0].ends_with("[\"disk\", \"k8s\", \"tls\"]"), "{e}: {listing:?}");
        t.note("listing", &listing);
    });
}

/// An owner sample, owned, with the certificate's fingerprint for its id.
type Sample = (String, String, String, String, Option<String>, Option<String>, Option<String>, bool, bool);

#[test]
fn owners_and_metrics_samples_read_alike() {
    let fx = Fixture::new();
    on_both(|s, t| {
        scan_everything(s, t, &fx);
        let ids = Certs::of(s, t);
        let e = t.engine;
        let samples = |scope: OwnerScope<'_>| -> Vec<Sample> {
            let mut out = Vec::new();
            let own = |v: Option<&str>| v.map(str::to_string);
            let walked = s.each_owner_sample(scope, |o| {
                out.push((
                    ids.fp(o.cert_id).to_string(),
                    o.source.into(),
                    o.kind.into(),
                    o.location.into(),
                    own(o.owner),
                    own(o.contact),
                    own(o.from),
                    o.ca,
                    o.beside_end_entity,
                ))
            });
            walked.unwrap_or_else(|err| panic!("{e}: owner samples of {scope:?}: {err}"));
            // The query states no order: app::owners decides the same whatever the order.
            out.sort();
            out
        };
        let owned = samples(OwnerScope::Owned);
        let every = samples(OwnerScope::Every);
        let some = samples(OwnerScope::Certificates(&[ids.id(&fx.api.fp), ids.id(&fx.old.fp)]));
        let mut expected: Vec<Sample> = vec![
            (
                fx.www.fp.clone(),
                "k8s".into(),
                "kubernetes".into(),
                SITE.into(),
                Some("web".into()),
                None,
                Some("annotation".into()),
                false,
                true,
            ),
            (
                fx.old.fp.clone(),
                "k8s".into(),
                "kubernetes".into(),
                OLD.into(),
                Some("legacy".into()),
                Some("legacy@corp.example".into()),
                None,
                false,
                true,
            ),
        ];
        expected.sort();
        assert_eq!(owned, expected, "{e}");
        t.note("owned samples", &owned);
        assert_eq!(every.len(), 9, "{e}: {every:#?}");
        t.note("every sample", &every);
        let mut locations: Vec<&str> = some.iter().map(|r| r.3.as_str()).collect();
        locations.sort();
        assert_eq!(locations, ["/etc/ssl/api.der", OLD, HSM_CERT], "{e}");
        t.note("samples of two", &some);

        let mut sightings = Vec::new();
        t.ok("each sighting", s.for_each_sighting(|x| sightings.push(format!("{x:?}"))));
        assert_eq!(sightings.len(), 9, "{e}");
        t.note("each sighting", &sightings);
        let mut untrusted: Vec<_> = t.ok("untrusted endpoints", s.untrusted_endpoints()).into_iter().collect();
        untrusted.sort();
        assert_eq!(untrusted, [(fx.www.fp.clone(), vec![("h:443 (h)".to_string(), "unknown issuer".to_string())])], "{e}");
        let not_ready: BTreeMap<String, Vec<(String, String)>> =
            t.ok("cert-manager", s.cert_manager_not_ready()).into_iter().map(|(id, v)| (ids.fp(id).to_string(), v)).collect();
        assert_eq!(
            not_ready.into_iter().collect::<Vec<_>>(),
            [(fx.www.fp.clone(), vec![("web/site".to_string(), "Ready=False, Failed: no".to_string())])],
            "{e}"
        );
        let counts = t.take("counts", s.counts());
        assert_eq!((counts.certs_current, counts.certs_gone, counts.last_scan_errors, counts.outbox_pending), (4, 0, 0, 0), "{e}");
    });
}

#[test]
fn keys_and_image_findings_read_alike() {
    let fx = Fixture::new();
    on_both(|s, t| {
        scan_everything(s, t, &fx);
        let ids = Certs::of(s, t);
        let e = t.engine;
        let keys = t.ok("keys", s.keys(None));
        let rank = ranks(keys.iter().map(|k| k.id));
        let ranked: Vec<_> = keys.iter().map(|k| crate::model::rows::KeyRow { id: rank[&k.id], ..k.clone() }).collect();
        t.note("keys", &ranked);
        assert_eq!(
            keys.iter().map(|k| (k.location.as_str(), k.label.as_deref())).collect::<Vec<_>>(),
            [(HSM_KEY, Some("api")), (HSM_SPARE, Some("spare"))],
            "{e}"
        );
        assert_eq!(
            (keys[0].bits, keys[0].flag("sign"), keys[0].flag("extractable"), keys[0].last_seen),
            (Some(256), Some(true), Some(false), 1000),
            "{e}"
        );
        assert_eq!(t.ok("keys of hsm", s.keys(Some("hsm"))).len(), 2, "{e}");
        assert!(t.ok("keys of disk", s.keys(Some("disk"))).is_empty(), "{e}");
        let tokens = t.ok("token certificates", s.token_certificates());
        let tokens: Vec<_> = tokens.into_iter().map(|r| crate::model::rows::TokenCertRow { cert_id: ids.rank(r.cert_id), ..r }).collect();
        assert_eq!(
            tokens
                .iter()
                .map(|r| (r.fingerprint.as_str(), r.token.as_deref(), r.key_id.as_deref(), r.label.as_deref()))
                .collect::<Vec<_>>(),
            [(fx.api.fp.as_str(), Some("t"), Some("01"), Some("api"))],
            "{e}"
        );
        t.note("token certificates", &tokens);
        let images = t.take("image findings", s.image_findings(None));
        assert_eq!(
            images.iter().map(|i| (i.namespace.as_str(), i.image.as_str(), i.seen_at)).collect::<Vec<_>>(),
            [("db", "busybox", 1000), ("web", "nginx:latest", 1000)],
            "{e}"
        );
        assert_eq!(t.take("image findings of web", s.image_findings(Some("web"))).len(), 1, "{e}");
        // A later audit of the source replaces its findings.
        let mut w = t.ok("begin", s.begin_scan(4000, &names(&["k8s"])));
        t.ok("replace", w.replace_image_findings("k8s", &[image("web", "Pod", "debug", "alpine", "untagged", Severity::Critical)]));
        t.ok("finish", w.finish().map(drop));
        let images = t.take("image findings after", s.image_findings(None));
        assert_eq!(
            images.iter().map(|i| (i.image.as_str(), i.severity.as_str(), i.seen_at)).collect::<Vec<_>>(),
            [("alpine", "critical", 4000)],
            "{e}"
        );
    });
}

/// A scan of more objects than the writer queues at once (it writes them a queue at a time)
/// stores what writing each object on its own would: the same certificate met again in later
/// queues is found, not inserted twice, and only its first sighting is its discovery; a rescan
/// that swaps what every object holds unsights and sights across queues. The expected counts
/// follow from the objects alone.
#[test]
fn a_scan_larger_than_the_writers_queue_is_written_as_objects_one_at_a_time() {
    const OBJECTS: usize = 1_100;
    let fx = Fixture::new();
    let location = |i: usize| format!("/srv/certs/{i:05}.pem");
    on_both(|s, t| {
        let e = t.engine;
        let count = |s: &TestStore, sql: &str| -> i64 { s.db().query_row(sql, params![], |r| r.get(0)).expect(sql) };
        // Scan 1: even objects hold www + CA, odd ones api.
        let mut w = t.ok("begin 1", s.begin_scan(100, &names(&["disk"])));
        for i in 0..OBJECTS {
            let content = if i % 2 == 0 { &fx.chain } else { &fx.api_only };
            t.ok("record 1", w.record("disk", &location(i), None, parsed("1", "a", content)));
        }
        let run = t.ok("finish 1", w.finish());
        let sightings = (OBJECTS / 2 * 2 + OBJECTS / 2) as i64;
        assert_eq!((run.certs_new, run.certs_seen, run.objects_seen), (3, sightings, OBJECTS as i64), "{e}");
        assert_eq!(count(s, "SELECT COUNT(*) FROM certificates"), 3, "{e}");
        assert_eq!(count(s, "SELECT COUNT(*) FROM sightings"), sightings, "{e}");
        // Every sighting but the three discoveries is a `sighted` event.
        assert_eq!(count(s, "SELECT COUNT(*) FROM cert_history WHERE event = 'sighted'"), sightings - 3, "{e}");
        // A discovery's sighting is the first object that holds it, whichever queue it is in.
        let first: Vec<(String, String)> = s
            .db()
            .query_map(
                "SELECT c.common_name, MIN(h.location) FROM cert_history h JOIN certificates c ON c.id = h.cert_id
                 WHERE h.event = 'sighted' GROUP BY c.common_name ORDER BY c.common_name",
                params![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("first sighted");
        t.note("first sighted", &first);
        assert_eq!(
            first,
            [("Suite CA", location(2)), ("api.example.net", location(3)), ("www.example.net", location(2))]
                .map(|(n, l)| (n.to_string(), l)),
            "{e}"
        );

        // Scan 2: every object known, its content swapped.
        let mut w = t.ok("begin 2", s.begin_scan(200, &names(&["disk"])));
        let known = t.ok("known", w.known_objects("disk"));
        assert_eq!(known.len(), OBJECTS, "{e}");
        for i in 0..OBJECTS {
            let content = if i % 2 == 0 { &fx.api_only } else { &fx.chain };
            let k = known.get(&object_key(&location(i)));
            t.ok("record 2", w.record("disk", &location(i), k, parsed("2", "b", content)));
        }
        let run = t.ok("finish 2", w.finish());
        assert_eq!((run.certs_new, run.certs_seen, run.certs_gone), (0, sightings, 0), "{e}");
        assert_eq!(count(s, "SELECT COUNT(*) FROM sightings"), 2 * sightings, "{e}");
        assert_eq!(count(s, "SELECT COUNT(*) FROM sightings WHERE gone_since IS NULL"), sightings, "{e}");
        assert_eq!(count(s, "SELECT COUNT(*) FROM cert_history WHERE event = 'unsighted' AND at = 200"), sightings, "{e}");
        assert_eq!(count(s, "SELECT COUNT(*) FROM cert_history WHERE event = 'sighted' AND at = 200"), sightings, "{e}");
        // Each object's row says what it holds now.
        assert_eq!(count(s, "SELECT SUM(certs) FROM objects WHERE stamp = '2'"), sightings, "{e}");
        // History stays in the order the objects were met: the first event of scan 2 is the
        // first object's.
        let first_event: (String, String) = s
            .db()
            .query_row("SELECT event, location FROM cert_history WHERE at = 200 ORDER BY id LIMIT 1", params![], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("first event");
        assert_eq!(first_event, ("sighted".to_string(), location(0)), "{e}");
        let events: Vec<(i64, String, i64)> = s
            .db()
            .query_map("SELECT at, event, COUNT(*) FROM cert_history GROUP BY at, event ORDER BY at, event", params![], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .expect("events");
        t.note("events", &events);
    });
}

/// A scan that fails midway (a statement refused: here by a trigger the test adds) rolls back
/// its open batch (everything, in a scan this small), leaves its run `running`, and the store
/// takes the next scan: on PostgreSQL the refused statement aborts the transaction, which the
/// abandoned writer rolls back.
#[test]
fn an_abandoned_scan_leaves_the_store_usable_alike() {
    let fx = Fixture::new();
    on_both(|s, t| {
        let e = t.engine;
        let (refuse, allow) = match s.dialect() {
            super::db::Dialect::Sqlite => (
                "CREATE TRIGGER refuse_bad BEFORE INSERT ON sightings WHEN NEW.location = '/bad'
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
                "DROP TRIGGER refuse_bad",
            ),
            super::db::Dialect::Postgres => (
                "CREATE FUNCTION refuse_bad() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
                 CREATE TRIGGER refuse_bad BEFORE INSERT ON sightings FOR EACH ROW WHEN (NEW.location = '/bad') EXECUTE FUNCTION refuse_bad()",
                "DROP TRIGGER refuse_bad ON sightings",
            ),
        };
        t.ok("trigger", s.db().execute_batch(refuse));
        {
            let mut w = t.ok("begin", s.begin_scan(100, &names(&["disk"])));
            t.ok("ok", w.record("disk", "/ok", None, parsed("1", "a", &fx.api_only)));
            // Parsed objects are written a queue at a time: the refusal comes from `record` or,
            // at the latest, from `finish`, which consumes the writer. Either way the writer is
            // dropped, as the scan driver drops it on an error.
            let refused = match w.record("disk", "/bad", None, parsed("1", "b", &fx.chain)) {
                Err(refused) => refused,
                Ok(()) => w.finish().map(drop).expect_err("the trigger refuses"),
            };
            assert!(refused.to_string().contains("refused by the test"), "{e}: {refused}");
        }
        let run = t.take("last run", s.last_run()).expect("the run");
        assert_eq!((run.id, run.status.as_str(), run.finished_at), (1, "running", None), "{e}");
        assert!(t.take("nothing kept", s.certificates(true)).is_empty(), "{e}");
        t.ok("drop trigger", s.db().execute_batch(allow));
        let mut w = t.ok("begin again", s.begin_scan(200, &names(&["disk"])));
        t.ok("ok", w.record("disk", "/ok", None, parsed("1", "a", &fx.api_only)));
        t.ok("bad", w.record("disk", "/bad", None, parsed("1", "b", &fx.chain)));
        let run = t.take("scan again", w.finish());
        assert_eq!((run.id, run.certs_new, run.status.as_str()), (2, 3, "ok"), "{e}");
        let ids = Certs::of(s, t);
        t.note("certificates", &ids.rows(&t.ok("certificates", s.certificates(false))));
        assert_eq!(t.take("verify", s.audit_verify()), Verdict::Intact { entries: 1 }, "{e}");
    });
}

// ---------------------------------------------------------------------------------------------
// Jobs

#[test]
fn the_ari_watch_reads_alike() {
    use crate::model::rows::AriWatchRow;
    let fx = Fixture::new();
    on_both(|s, t| {
        scan_everything(s, t, &fx);
        let e = t.engine;
        let current = t.ok("certificates", s.certificates(false));
        let name = |id: i64| current.iter().find(|c| c.id == id).map(|c| c.facts.display_name()).unwrap_or_default();
        let ca_aki = current.iter().find(|c| c.facts.fingerprint.0 == fx.ca.fp).and_then(|c| c.facts.ski.clone()).unwrap();
        // Due at first: every current certificate the CA issued, none of any other issuer.
        let due = t.ok("due", s.ari_due(std::slice::from_ref(&ca_aki), 2000, 10));
        let mut names: Vec<String> = due.iter().map(|d| name(d.cert_id)).collect();
        names.sort();
        t.note("due names", &names);
        assert_eq!(names, ["api.example.net", "old.example.net", "www.example.net"], "{e}");
        assert!(due.iter().all(|d| d.aki == ca_aki && d.before.is_none()), "{e}");
        assert!(t.ok("other issuer", s.ari_due(&["00ff".to_string()], 2000, 10)).is_empty(), "{e}");
        assert_eq!(t.ok("bounded", s.ari_due(std::slice::from_ref(&ca_aki), 2000, 2)).len(), 2, "{e}");
        // One answered, one failed: both wait for their next poll; the third is still due.
        let row = |d: &super::AriDue, error: Option<&str>| AriWatchRow {
            cert_id: d.cert_id,
            directory: "https://acme.test/dir".into(),
            ari_id: format!("id-{}", name(d.cert_id)),
            window: error.is_none().then_some((5000, 6000)),
            explanation_url: error.is_none().then(|| "https://acme.test/why".to_string()),
            first: error.is_none().then_some((7000, 8000)),
            moved_at: error.is_none().then_some(2000),
            polled_at: 2000,
            next_poll: 2000 + 43_200,
            error: error.map(str::to_string),
        };
        t.ok("put", s.put_ari_watch(&[row(&due[0], None), row(&due[1], Some("HTTP 500"))]));
        let left = t.ok("due after", s.ari_due(std::slice::from_ref(&ca_aki), 2001, 10));
        assert_eq!(left.iter().map(|d| d.cert_id).collect::<Vec<_>>(), [due[2].cert_id], "{e}");
        // Past their next poll they are due again, with what was recorded, longest waiting first.
        let again = t.ok("due later", s.ari_due(std::slice::from_ref(&ca_aki), 50_000, 10));
        assert_eq!(again.len(), 3, "{e}");
        assert_eq!(again[0].cert_id, due[2].cert_id, "{e}: never asked comes first");
        let answered = again.iter().find(|d| d.cert_id == due[0].cert_id).unwrap();
        assert_eq!(
            answered.before.as_ref().map(|b| (b.window, b.first, b.moved_at)),
            Some((Some((5000, 6000)), Some((7000, 8000)), Some(2000))),
            "{e}"
        );
        // A failed poll keeps the window recorded before.
        t.ok("put error", s.put_ari_watch(&[row(answered, Some("HTTP 404"))]));
        let got = t.ok("of", s.ari_watch_of(&[due[0].cert_id, due[1].cert_id]));
        let r0 = &got[&due[0].cert_id];
        assert_eq!(
            (r0.window, r0.explanation_url.as_deref(), r0.error.as_deref()),
            (Some((5000, 6000)), Some("https://acme.test/why"), Some("HTTP 404")),
            "{e}"
        );
        assert_eq!((got[&due[1].cert_id].window, got[&due[1].cert_id].error.as_deref()), (None, Some("HTTP 500")), "{e}");
        let all = t.ok("all", s.ari_watch_all());
        let mut listed: Vec<String> = all.iter().map(|r| format!("{} {:?} {:?}", name(r.cert_id), r.window, r.error)).collect();
        listed.sort();
        t.note("all", &listed);
        assert_eq!(listed.len(), 2, "{e}");
    });
}

#[test]
fn job_runs_read_alike() {
    on_both(|s, t| {
        let e = t.engine;
        let a = t.take("start a", s.job_started("scan", "scan", "schedule", Some(100), 101));
        t.ok("finish a", s.job_finished(a, 110, 9000, None, "3 certificates", Some(&serde_json::json!({"n": 3, "by": {"warning": 1}}))));
        let b = t.take("start b", s.job_started("scan", "scan", "api", None, 200));
        t.ok("overrun", s.job_overrun("scan", 230));
        t.ok("overrun", s.job_overrun("scan", 260));
        // Another daemon's run, on its own connection: left alone by this one's restart.
        let other = s.open_again().with_node("node-b");
        let c = t.take("start on node-b", other.job_started("revocation", "revocation", "schedule", Some(250), 251));
        let st = t.take("stats", s.job_stats("scan"));
        assert_eq!(
            (st.last.as_ref().map(|r| (r.id, r.status.as_str())), st.last_success_at, st.overruns),
            (Some((b, "running")), Some(110), 2),
            "{e}"
        );
        assert_eq!(t.take("last started", s.job_last_started("scan")), Some(200), "{e}");
        assert_eq!(t.take("last started of none", s.job_last_started("none")), None, "{e}");
        let mine = s.open_again().with_node("node-a");
        assert_eq!(t.take("interrupted on node-a", mine.jobs_interrupted(300)), 0, "{e}: node-a has no run");
        assert_eq!(t.take("interrupted", s.jobs_interrupted(300)), 2, "{e}: without a node, every running run");
        // A run marked interrupted keeps the mark when its daemon finishes it late.
        t.ok("finish c late", other.job_finished(c, 400, 5, Some("boom"), "", None));
        let d = t.take("start d", other.job_started("revocation", "revocation", "schedule", None, 500));
        assert_eq!(t.take("interrupted on node-a again", mine.jobs_interrupted(600)), 0, "{e}");
        assert_eq!(t.take("interrupted on node-b", other.jobs_interrupted(600)), 1, "{e}");
        let runs = t.take("runs", s.job_runs(None, 10));
        assert_eq!(
            runs.iter().map(|r| (r.id, r.status.as_str())).collect::<Vec<_>>(),
            [(d, "interrupted"), (c, "interrupted"), (b, "interrupted"), (a, "ok")],
            "{e}"
        );
        assert_eq!((runs[1].finished_at, runs[1].node.as_deref(), runs[3].node.as_deref()), (Some(300), Some("node-b"), None), "{e}");
        assert_eq!(runs[3].detail, Some(serde_json::json!({"n": 3, "by": {"warning": 1}})), "{e}");
        assert_eq!(t.take("runs of scan, 1", s.job_runs(Some("scan"), 1)).len(), 1, "{e}");
        assert_eq!(t.take("last detail", s.last_job_detail("scan")), Some(serde_json::json!({"n": 3, "by": {"warning": 1}})), "{e}");
        assert_eq!(t.take("last detail of none", s.last_job_detail("revocation")), None, "{e}");
        let st = t.take("stats of revocation", s.job_stats("revocation"));
        assert_eq!((st.last_success_at, st.overruns), (None, 0), "{e}");
        assert!(t.take("stats of none", s.job_stats("none")).last.is_none(), "{e}");
        // A new leader takes over the runs other daemons left running.
        t.take("start e", other.job_started("scan", "scan", "schedule", Some(700), 700));
        t.take("start f", mine.job_started("renewal", "renewal", "schedule", Some(700), 700));
        assert_eq!(t.take("take over", mine.take_over_runs("node-a", 800)), ["scan"], "{e}");
        assert_eq!(t.take("take over again", mine.take_over_runs("node-a", 800)), Vec::<String>::new(), "{e}");
    });
}

// ---------------------------------------------------------------------------------------------
// Alerts, silences and the outbox

fn render(n: &Notice<'_>) -> String {
    match n {
        Notice::Finding { finding, event, alert_id, route, opened_at } => serde_json::json!({
            "subject": finding.subject, "severity": finding.severity.as_str(), "event": event.as_str(),
            "alert": alert_id, "route": route, "opened_at": opened_at
        })
        .to_string(),
        Notice::Resolved { alert, route } => serde_json::json!({"resolved": format!("{alert:?}"), "route": route}).to_string(),
    }
}

/// A finding about certificate `cert` (id, fingerprint), or else about managed certificate `web`.
fn finding(cert: Option<(i64, &str)>, name: &str, k: Kind, sev: Severity, reason: &str) -> Finding {
    Finding {
        subject: match cert {
            Some((_, fp)) => cert_subject(fp),
            None => managed_subject("web"),
        },
        subject_kind: if cert.is_some() { SubjectKind::Certificate } else { SubjectKind::Managed },
        cert_id: cert.map(|c| c.0),
        fingerprint: cert.map(|c| c.1.to_string()).unwrap_or_default(),
        name: name.into(),
        kind: k,
        severity: sev,
        reason: reason.into(),
        action: "renew it".into(),
        sources: names(&["disk", "k8s"]),
        tags: names(&["prod"]),
        ekus: Vec::new(),
        not_after: 0,
        owner: None,
        owner_contact: None,
    }
}

fn notify(route: &str, receivers: &[&str], event: Event, held: bool) -> Notify {
    Notify { route: route.into(), receivers: names(receivers), event, held }
}

/// Outbox rows as the store returned them, recorded with their ids by rank: PostgreSQL's
/// identity skips the numbers of rows rolled back or refused, SQLite's rowid does not.
fn outbox_step(
    t: &mut Transcript,
    s: &Store,
    step: &str,
    r: Result<Vec<crate::model::rows::OutboxRow>>,
) -> Vec<crate::model::rows::OutboxRow> {
    let rows = t.ok(step, r);
    let rank = ranks(t.ok("outbox", s.outbox(true, usize::MAX)).iter().map(|o| o.id));
    let ranked: Vec<_> = rows.iter().map(|o| crate::model::rows::OutboxRow { id: rank[&o.id], ..o.clone() }).collect();
    t.note(step, &ranked);
    rows
}

/// Alerts and outbox rows, with certificate ids by rank.
fn note_alerts(s: &Store, t: &mut Transcript, ids: &Certs, step: &str) {
    let alerts = t.ok(step, s.alerts(true));
    let alerts: Vec<_> =
        alerts.into_iter().map(|a| crate::model::rows::AlertRow { cert_id: a.cert_id.map(|id| ids.rank(id)), ..a }).collect();
    t.note(&format!("{step}: alerts"), &alerts);
    outbox_step(t, s, &format!("{step}: outbox"), s.outbox(true, 100));
    t.take(&format!("{step}: open alerts"), s.open_alerts());
}

#[test]
fn alerts_and_the_outbox_flow_alike() {
    let fx = Fixture::new();
    on_both(|s, t| {
        scan_everything(s, t, &fx);
        let ids = Certs::of(s, t);
        let e = t.engine;
        let www =
            finding(Some((ids.id(&fx.www.fp), &fx.www.fp)), "www.example.net", Kind::Expiring, Severity::Warning, "expires in 20 days");
        let managed = finding(None, "managed certificate web", Kind::RenewalFailed, Severity::Warning, "the CA refused");

        // Two alerts open; three notifications queued, one held for the chat digest.
        let applied = t.take(
            "open",
            s.apply_alert_changes(
                &[
                    Change::Open {
                        finding: 0,
                        notify: vec![notify("mail", &["ops", "sec"], Event::Firing, false), notify("chat", &["web"], Event::Firing, true)],
                    },
                    Change::Open { finding: 1, notify: vec![] },
                ],
                &[www.clone(), managed.clone()],
                5000,
                &render,
            ),
        );
        assert_eq!((applied.opened, applied.notifications), (2, 3), "{e}");
        let open = t.take("open alerts", s.open_alerts());
        assert_eq!(
            open.iter().map(|a| (a.id, a.subject.as_str(), a.routes_notified.clone())).collect::<Vec<_>>(),
            [
                (1, www.subject.as_str(), vec![("mail".to_string(), 5000), ("chat".to_string(), 5000)]),
                (2, managed.subject.as_str(), vec![])
            ],
            "{e}"
        );
        let queued = outbox_step(t, s, "outbox", s.outbox(false, 10));
        let keys: Vec<&str> = queued.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["alert/1/1/chat/web/firing", "alert/1/1/mail/sec/firing", "alert/1/1/mail/ops/firing"], "{e}: newest first");
        assert_eq!(queued[0].payload["alert"], 1, "{e}");
        let due = outbox_step(t, s, "due", s.due_outbox(5000, 10));
        assert_eq!(due.iter().map(|o| o.receiver.as_str()).collect::<Vec<_>>(), ["ops", "sec"], "{e}: the held one waits");
        assert!(outbox_step(t, s, "due before", s.due_outbox(4999, 10)).is_empty(), "{e}");
        assert_eq!(outbox_step(t, s, "due, one", s.due_outbox(5000, 1)).len(), 1, "{e}");
        let held = outbox_step(t, s, "held", s.held_outbox("chat"));
        assert_eq!(held.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["alert/1/1/chat/web/firing"], "{e}");
        outbox_step(t, s, "notifications of 1 and 2", s.alert_notifications(&[1, 2]));
        let counts = t.take("open counts", s.open_alert_counts());
        assert_eq!(counts.into_iter().collect::<Vec<_>>(), [("warning".to_string(), 2)], "{e}");
        let one = t.ok("alert 1", s.alert(1)).expect("alert 1");
        assert_eq!(
            (one.fingerprint.as_deref(), one.name.as_str(), one.cert_id.map(|id| ids.fp(id).to_string())),
            (Some(fx.www.fp.as_str()), "www.example.net", Some(fx.www.fp.clone())),
            "{e}"
        );
        let two = t.ok("alert 2", s.alert(2)).expect("alert 2");
        assert_eq!(
            (two.cert_id, two.fingerprint.as_deref(), two.name.as_str(), two.subject_kind.as_str()),
            (None, None, "managed certificate web", "managed"),
            "{e}"
        );
        assert!(t.ok("alert 99", s.alert(99)).is_none(), "{e}");

        // In one transaction, in two batches: the www alert turns critical, reminds and escalates;
        // the store reads inside the transaction, and a walk stopped early leaves it usable.
        {
            let worse = Finding { severity: Severity::Critical, reason: "expires in 2 days".into(), ..www.clone() };
            let mut tx: AlertChanges<'_> = t.ok("begin", s.begin_alert_changes(6000, &render));
            t.ok(
                "batch 1",
                tx.apply(
                    &[Change::Update {
                        alert_id: 1,
                        finding: 0,
                        notify: vec![notify("mail", &["ops"], Event::Reminder, false)],
                        escalated: true,
                    }],
                    &[worse],
                ),
            );
            let inside = t.ok("read inside", s.alert(1)).expect("alert 1");
            assert_eq!((inside.severity.as_str(), inside.escalated_at), ("critical", Some(6000)), "{e}");
            for _ in 0..2 {
                let mut n = 0;
                let stopped = s.each_certificate::<StoreError>(false, |_| {
                    n += 1;
                    Err(StoreError::Stopped)
                });
                assert!(matches!(stopped, Err(StoreError::Stopped)) && n == 1, "{e}: {stopped:?}");
                assert!(intact(&t.ok("verify inside", s.audit_verify())), "{e}");
            }
            // Batch 2 written from inside a walk of the inventory, as an evaluation applies
            // each batch of findings while it walks the certificates.
            let graver = Finding { severity: Severity::Critical, reason: "the CA refused again".into(), ..managed.clone() };
            let mut walked = 0;
            t.ok(
                "batch 2 inside a walk",
                s.each_certificate::<StoreError>(false, |c| {
                    walked += 1;
                    if c.facts.fingerprint.0 == fx.www.fp {
                        tx.apply(
                            &[Change::Update { alert_id: 2, finding: 0, notify: vec![], escalated: false }],
                            std::slice::from_ref(&graver),
                        )?;
                    }
                    Ok(())
                }),
            );
            assert_eq!(walked, 4, "{e}");
            assert_eq!(t.ok("read inside", s.alert(2)).map(|a| a.severity), Some("critical".into()), "{e}");
            let applied = t.take("commit", tx.commit());
            assert_eq!((applied.escalated, applied.notifications), (1, 1), "{e}");
        }
        // Not committed: nothing kept.
        {
            let mut tx = t.ok("begin", s.begin_alert_changes(6050, &render));
            t.ok(
                "resolve",
                tx.apply(&[Change::Resolve { alert_id: 1, notify: vec![notify("mail", &["ops"], Event::Resolved, false)] }], &[]),
            );
        }
        let one = t.ok("alert 1", s.alert(1)).expect("alert 1");
        assert_eq!((one.state.as_str(), one.severity.as_str(), one.notifications), ("firing", "critical", 4), "{e}");
        note_alerts(s, t, &ids, "after the update");

        // Acknowledged by id, then by subject and kind; a second ack finds nothing.
        assert_eq!(t.take("ack 1", s.ack(Some(1), None, None, "alice", Some("on it"), 6100)), 1, "{e}");
        assert_eq!(t.take("ack managed", s.ack(None, Some("managed:web"), Some("renewal-failed"), "bob", None, 6200)), 1, "{e}");
        assert_eq!(t.take("ack again", s.ack(None, Some("managed:web"), None, "bob", None, 6210)), 0, "{e}");
        assert_eq!(t.take("ack wrong kind", s.ack(Some(1), None, Some("expired"), "bob", None, 6220)), 0, "{e}");

        // Silences: by fingerprint prefix, by subject, and one already over.
        let silence = |fingerprint: Option<&str>, subject: Option<&str>, expires_at: UnixTime| Silence {
            id: 0,
            fingerprint: fingerprint.map(str::to_string),
            subject: subject.map(str::to_string),
            source: None,
            tag: Some("prod".into()),
            kind: None,
            eku: None,
            reason: "maintenance".into(),
            created_by: "alice".into(),
            created_at: 6300,
            expires_at,
        };
        let s1 = t.take("silence 1", s.add_silence(&silence(Some(&fx.www.fp[..12]), None, 9000)));
        let s2 = t.take("silence 2", s.add_silence(&silence(None, Some("managed:web"), 9000)));
        let s3 = t.take("silence 3", s.add_silence(&silence(None, None, 6350)));
        assert_eq!((s1, s2, s3), (1, 2, 3), "{e}");
        assert_eq!(t.take("silences now", s.silences(6400, false)).iter().map(|x| x.id).collect::<Vec<_>>(), [1, 2], "{e}");
        assert_eq!(t.take("all silences", s.silences(6400, true)).len(), 3, "{e}");
        assert!(t.take("expire 1", s.expire_silence(1, 6500, "alice")), "{e}");
        assert!(!t.take("expire 1 again", s.expire_silence(1, 6600, "alice")), "{e}");
        assert!(!t.take("expire 3 (over)", s.expire_silence(3, 6600, "alice")), "{e}");
        let left = t.take("silences later", s.silences(6600, false));
        assert_eq!(left.iter().map(|x| (x.id, x.subject.as_deref())).collect::<Vec<_>>(), [(2, Some("managed:web"))], "{e}");
        assert_eq!(t.take("expired silence", s.silences(6600, true))[0].expires_at, 6500, "{e}: ended early");

        // Delivery: two sent alone, the held one in a digest, the reminder fails and waits.
        let queued = t.ok("outbox", s.outbox(false, 10));
        let id_of = |key: &str| queued.iter().find(|o| o.key == key).unwrap_or_else(|| panic!("{e}: no {key}")).id;
        t.ok("sent", s.mark_sent(&[id_of("alert/1/1/mail/ops/firing"), id_of("alert/1/1/mail/sec/firing")], 6700, None));
        t.ok("digest", s.mark_sent(&[id_of("alert/1/1/chat/web/firing")], 6700, Some("digest/chat/1")));
        t.ok("sent twice", s.mark_sent(&[id_of("alert/1/1/mail/ops/firing")], 6800, None));
        t.ok("failed", s.mark_failed(&[id_of("alert/1/2/mail/ops/reminder")], "smtp: 451 try later", 7000));
        assert!(outbox_step(t, s, "due while waiting", s.due_outbox(6900, 10)).is_empty(), "{e}");
        let retry = outbox_step(t, s, "due again", s.due_outbox(7000, 10));
        assert_eq!(
            retry.iter().map(|o| (o.key.as_str(), o.attempts, o.last_error.as_deref())).collect::<Vec<_>>(),
            [("alert/1/2/mail/ops/reminder", 1, Some("smtp: 451 try later"))],
            "{e}"
        );
        let counts = t.take("counts", s.counts());
        assert_eq!((counts.outbox_pending, counts.outbox_failed), (1, 1), "{e}");
        let sent = outbox_step(t, s, "everything", s.outbox(true, 2));
        assert_eq!(sent.len(), 2, "{e}: the limit holds");

        // Resolved: the notice says what the row says, with the certificate's sources.
        let applied = t.take(
            "resolve",
            s.apply_alert_changes(
                &[Change::Resolve { alert_id: 1, notify: vec![notify("mail", &["ops"], Event::Resolved, false)] }],
                &[],
                8000,
                &render,
            ),
        );
        assert_eq!((applied.resolved, applied.notifications), (1, 1), "{e}");
        let notice = t.ok("outbox", s.outbox(false, 1)).remove(0);
        assert_eq!(notice.key, "alert/1/3/mail/ops/resolved", "{e}");
        let text = notice.payload["resolved"].as_str().unwrap_or_default().to_string();
        assert!(text.contains("sources: [\"disk\", \"k8s\", \"tls\"]") && text.contains(&fx.www.fp), "{e}: {text}");
        assert_eq!(t.take("open alerts after", s.open_alerts()).iter().map(|a| a.id).collect::<Vec<_>>(), [2], "{e}");
        let of_www = t.ok("certificate alerts", s.certificate_alerts(ids.id(&fx.www.fp)));
        assert_eq!(
            of_www.iter().map(|a| (a.id, a.state.as_str(), a.resolved_at)).collect::<Vec<_>>(),
            [(1, "resolved", Some(8000))],
            "{e}"
        );
        assert!(t.ok("alerts of the CA", s.certificate_alerts(ids.id(&fx.ca.fp))).is_empty(), "{e}");
        assert_eq!(t.take("open alerts only", s.alerts(false)).iter().map(|a| a.id).collect::<Vec<_>>(), [2], "{e}");
        outbox_step(t, s, "notifications of 1", s.alert_notifications(&[1]));
        note_alerts(s, t, &ids, "after the resolve");

        // A test notification is queued once per key.
        let a = t.ok("test notification", s.enqueue_test("test/1", "mail", "ops", "{\"test\":true}", 8100));
        let b = t.ok("test notification again", s.enqueue_test("test/1", "mail", "ops", "{\"test\":true}", 8200));
        assert_eq!(a, b, "{e}");
        outbox_step(t, s, "test notification", s.outbox(false, 1));
        // A second open alert for the same subject and kind is refused, and the failed batch
        // leaves nothing behind (on PostgreSQL the transaction is aborted, not half kept).
        let dup = s.apply_alert_changes(
            &[
                Change::Open { finding: 0, notify: vec![notify("mail", &["ops"], Event::Firing, false)] },
                Change::Open { finding: 1, notify: vec![] },
            ],
            &[www.clone(), managed.clone()],
            8300,
            &render,
        );
        assert!(dup.is_err(), "{e}: a second open alert for managed:web");
        t.take("alerts after the refused batch", s.alerts(true).map(|a| a.len()));
        assert_eq!(t.ok("alerts", s.alerts(true)).len(), 2, "{e}");
        assert_eq!(t.ok("outbox", s.outbox(true, 100)).len(), 6, "{e}");
        assert!(intact(&t.take("verify", s.audit_verify())), "{e}");
    });
}

// ---------------------------------------------------------------------------------------------
// Revocation

fn status(state: RevocationState, reason: Option<&str>, method: &str, at: UnixTime) -> RevocationStatus {
    RevocationStatus {
        state,
        reason: reason.map(str::to_string),
        revoked_at: (state == RevocationState::Revoked).then_some(at - 50),
        invalidity_date: None,
        method: method.into(),
        source_url: Some(format!("http://{method}.example/ca")),
        evidence_sha256: Some(format!("{at:064x}")),
        checked_at: at,
        next_update: Some(at + 3600),
        stale: state == RevocationState::Unknown,
        detail: Some("checked".into()),
    }
}

#[test]
fn revocation_reads_and_caches_alike() {
    let fx = Fixture::new();
    on_both(|s, t| {
        scan_everything(s, t, &fx);
        let ids = Certs::of(s, t);
        let e = t.engine;
        let (www, ca, api, old) = (ids.id(&fx.www.fp), ids.id(&fx.ca.fp), ids.id(&fx.api.fp), ids.id(&fx.old.fp));
        t.ok(
            "save 1",
            s.save_revocations(&[
                (www, status(RevocationState::Good, None, "ocsp", 10_000)),
                (ca, status(RevocationState::NotApplicable, Some("self-signed"), "none", 10_000)),
                (api, status(RevocationState::Revoked, Some("keyCompromise"), "crl", 10_000)),
                (old, status(RevocationState::Unknown, Some("no responder"), "none", 10_000)),
            ]),
        );
        // The same answers again add no history; an unknown does not undo a revocation; a hold
        // may be lifted.
        t.ok(
            "save 2",
            s.save_revocations(&[
                (www, status(RevocationState::Good, None, "ocsp", 11_000)),
                (api, status(RevocationState::Unknown, Some("responder down"), "none", 11_000)),
                (old, status(RevocationState::Revoked, Some("certificateHold"), "crl", 11_000)),
            ]),
        );
        t.ok("save 3", s.save_revocations(&[(old, status(RevocationState::Unknown, Some("no CRL"), "none", 12_000))]));
        for (what, id) in [("www", www), ("ca", ca), ("api", api), ("old", old)] {
            t.take(&format!("status of {what}"), s.revocation_status(id));
            t.take(&format!("history of {what}"), s.revocation_history(id));
        }
        assert_eq!(t.ok("status", s.revocation_status(www)).map(|r| (r.state, r.checked_at)), Some((RevocationState::Good, 11_000)), "{e}");
        assert_eq!(
            t.ok("status", s.revocation_status(api)).map(|r| (r.state, r.reason)),
            Some((RevocationState::Revoked, Some("keyCompromise".into()))),
            "{e}"
        );
        assert_eq!(t.ok("history", s.revocation_history(www)).len(), 1, "{e}");
        assert_eq!(
            t.ok("history", s.revocation_history(old)).iter().map(|h| h.status.as_str()).collect::<Vec<_>>(),
            ["unknown", "revoked", "unknown"],
            "{e}"
        );
        let by_fp =
            |m: HashMap<i64, RevocationStatus>| m.into_iter().map(|(id, v)| (ids.fp(id).to_string(), v)).collect::<BTreeMap<_, _>>();
        let states: BTreeMap<String, RevocationState> =
            t.ok("states", s.revocation_states()).into_iter().map(|(id, v)| (ids.fp(id).to_string(), v)).collect();
        t.note("states", &states);
        assert_eq!(states.len(), 4, "{e}");
        let statuses = by_fp(t.ok("statuses", s.revocation_statuses()));
        t.note("statuses", &statuses);
        let of = by_fp(t.ok("statuses of", s.revocation_statuses_of(&[www, old, 999_999])));
        assert_eq!(
            of.keys().collect::<Vec<_>>(),
            {
                let mut k = vec![&fx.www.fp, &fx.old.fp];
                k.sort();
                k
            },
            "{e}"
        );
        t.note("statuses of", &of);
        assert!(t.take("api revoked", s.is_revoked(&fx.api.fp)), "{e}");
        assert!(!t.take("www revoked", s.is_revoked(&fx.www.fp)), "{e}");
        let since: BTreeMap<String, UnixTime> = t
            .ok("unknown since", s.revocation_unknown_since_of(&[www, api, old]))
            .into_iter()
            .map(|(id, v)| (ids.fp(id).to_string(), v))
            .collect();
        assert_eq!(since.into_iter().collect::<Vec<_>>(), [(fx.old.fp.clone(), 12_000)], "{e}: unknown again since the hold was lifted");
        let mut samples = Vec::new();
        t.ok("each revocation", s.for_each_revocation(|r| samples.push(format!("{r:?}"))));
        assert_eq!(samples.len(), 4, "{e}");
        t.note("each revocation", &samples);

        // The OCSP cache answers until its time is up, and a newer answer replaces it.
        let cached = |status: &str, until: UnixTime| CachedOcsp {
            responder: "http://ocsp.example".into(),
            status: status.into(),
            revoked_at: None,
            reason: None,
            this_update: 10_000,
            next_update: Some(20_000),
            cache_until: until,
            sha256: "ab".repeat(32),
        };
        t.ok("ocsp put", s.ocsp_cache_put(www, &cached("good", 12_000), b"\x30\x03\x0a\x01\x00"));
        assert_eq!(t.take("ocsp cached", s.ocsp_cached(www, 11_999)).map(|c| c.status), Some("good".into()), "{e}");
        assert!(t.take("ocsp expired", s.ocsp_cached(www, 12_000)).is_none(), "{e}");
        t.ok("ocsp put again", s.ocsp_cache_put(www, &cached("revoked", 13_000), b"\x30"));
        assert_eq!(t.take("ocsp cached again", s.ocsp_cached(www, 12_500)).map(|c| c.status), Some("revoked".into()), "{e}");
        assert!(t.take("ocsp of another", s.ocsp_cached(api, 0)).is_none(), "{e}");

        t.ok(
            "crl put",
            s.crl_cache_put(
                "http://crl.example/ca.crl",
                Some("\"e1\""),
                Some("Mon, 01 Jan 2024 00:00:00 GMT"),
                10_000,
                &CrlFacts {
                    sha256: "cd",
                    this_update: 9_000,
                    next_update: Some(20_000),
                    size: 1234,
                    issuer: Some("CN=CA".into()),
                    number: Some("7".into()),
                },
            ),
        );
        assert_eq!(t.take("crl get", s.crl_cache_get("http://crl.example/ca.crl")).map(|c| c.etag), Some(Some("\"e1\"".into())), "{e}");
        // Unverified CRLs are not reported; a verification of other bytes records nothing.
        assert_eq!(t.ok("crls unverified", s.crl_samples(10_000)), vec![], "{e}");
        t.ok("crl verified (other bytes)", s.crl_verified("http://crl.example/ca.crl", "ab", 10_000));
        assert_eq!(t.ok("crls other verified", s.crl_samples(10_000)), vec![], "{e}");
        t.ok("crl verified", s.crl_verified("http://crl.example/ca.crl", "cd", 10_000));
        let want = CrlSample {
            url: "http://crl.example/ca.crl".into(),
            issuer: "CN=CA".into(),
            number: Some("7".into()),
            this_update: Some(9_000),
            next_update: Some(20_000),
        };
        assert_eq!(t.ok("crls verified", s.crl_samples(10_000)), vec![want], "{e}");
        assert_eq!(t.ok("crls unused", s.crl_samples(10_001 + crate::store::report::CRL_UNUSED_AFTER)), vec![], "{e}");
        let facts = CrlFacts { sha256: "ef", this_update: 10_500, next_update: None, size: 99, issuer: None, number: None };
        t.ok("crl put again", s.crl_cache_put("http://crl.example/ca.crl", None, None, 11_000, &facts));
        assert_eq!(
            t.take("crl get again", s.crl_cache_get("http://crl.example/ca.crl")).map(|c| (c.etag, c.sha256)),
            Some((None, "ef".into())),
            "{e}"
        );
        // New bytes are not verified until a pass says so.
        assert_eq!(t.ok("crls replaced", s.crl_samples(11_000)), vec![], "{e}");
        assert!(t.take("crl of none", s.crl_cache_get("http://other/")).is_none(), "{e}");

        t.ok("issuer put", s.issuer_cache_put("http://ca.example/ca.der", Some(&fx.ca.der), 10_000, None));
        t.ok("issuer put failure", s.issuer_cache_put("http://ca.example/gone.der", None, 10_000, Some("404")));
        assert_eq!(t.ok("issuer get", s.issuer_cache_get("http://ca.example/ca.der")), Some((Some(fx.ca.der.clone()), 10_000)), "{e}");
        assert_eq!(t.take("issuer get failure", s.issuer_cache_get("http://ca.example/gone.der")), Some((None, 10_000)), "{e}");
        t.ok("issuer put again", s.issuer_cache_put("http://ca.example/gone.der", Some(b"\x30\x00"), 11_000, None));
        assert_eq!(
            t.take("issuer get again", s.issuer_cache_get("http://ca.example/gone.der")),
            Some((Some(b"\x30\x00".to_vec()), 11_000)),
            "{e}"
        );

        // The issuer of www, by its key identifier and by its name.
        let facts = &fx.www_only.certs[0].facts;
        let issuer_name = crate::x509::cert::raw_parts(&fx.www.der).unwrap().issuer.to_vec();
        for (what, aki) in [("by key id", facts.aki.as_deref()), ("by name", None), ("unknown key id", Some("00"))] {
            let found = t.ok("issuer candidates", s.issuer_candidates(aki, &issuer_name));
            assert_eq!(
                found.iter().map(|(c, der)| (c.facts.fingerprint.0.as_str(), der == &fx.ca.der)).collect::<Vec<_>>(),
                [(fx.ca.fp.as_str(), true)],
                "{e}: {what}"
            );
            t.note(&format!("issuer candidates {what}"), &found.iter().map(|(c, _)| ids.rows(std::slice::from_ref(c))).collect::<Vec<_>>());
        }
        assert!(facts.aki.is_some(), "the leaves carry an authority key identifier");
        assert!(t.ok("no issuer", s.issuer_candidates(None, b"\x30\x00")).is_empty(), "{e}");

        let current: Vec<i64> = t.ok("current ids", s.current_certificate_ids()).into_iter().map(|id| ids.rank(id)).collect();
        assert_eq!(current, [1, 2, 3, 4], "{e}");
        let with_der = t.ok("with der", s.certificates_with_der(None));
        assert!(with_der.iter().all(|(c, der)| ids.fp(c.id) == c.facts.fingerprint.0 && !der.is_empty()), "{e}");
        t.note("with der", &with_der.iter().map(|(c, der)| (ids.rank(c.id), der.len())).collect::<Vec<_>>());
        let some = t.ok("with der of two", s.certificates_with_der(Some(&[api, www])));
        assert_eq!(
            some.iter().map(|(c, _)| c.facts.fingerprint.0.as_str()).collect::<Vec<_>>(),
            [fx.api.fp.as_str(), fx.www.fp.as_str()],
            "{e}"
        );
        let listed = t.ok("listing", {
            let mut v = Vec::new();
            s.each_listing(|_, r| v.push((r.fingerprint.to_string(), r.revocation.map(str::to_string)))).map(|_| v)
        });
        assert!(listed.contains(&(fx.api.fp.clone(), Some("revoked".into()))), "{e}: {listed:?}");
        t.note("listing revocation", &listed);
    });
}

// ---------------------------------------------------------------------------------------------
// Renewals

#[test]
fn renewals_read_alike() {
    let fx = Fixture::new();
    on_both(|s, t| {
        let e = t.engine;
        let mut w = t.ok("begin", s.begin_scan(100, &names(&["disk"])));
        t.ok("api", w.record("disk", "/etc/ssl/api.der", None, parsed("1", "a1", &fx.api_only)));
        t.ok("finish", w.finish().map(drop));
        assert!(t.take("none yet", s.renewal("web")).is_none(), "{e}");
        let full = RenewalRow {
            name: "web".into(),
            fingerprint: Some(fx.api.fp.clone()),
            serial: Some("0ABC".into()),
            not_after: Some(1_830_000_000),
            state: "in-flight".into(),
            failures: 3,
            spec_digest: Some("d1".into()),
            next_attempt: Some(500),
            last_attempt: Some(400),
            last_outcome: Some("failed".into()),
            last_error: Some("rate limited: 'too many' \"orders\"".into()),
            ari_cert_id: Some("aki.serial".into()),
            ari_start: Some(1_820_000_000),
            ari_end: Some(1_821_000_000),
            ari_explanation: Some("https://ca.example/why".into()),
            ari_next_poll: Some(600),
            renew_at: Some(1_820_500_000),
            order_url: Some("https://ca.example/order/1".into()),
            order_directory: Some("https://ca.example/dir".into()),
            pending_key: Some("/var/lib/certvigil/web.key.pending".into()),
            pending_chain: Some("/var/lib/certvigil/web.pem.pending".into()),
            revoke_fingerprint: Some(fx.api.fp.clone()),
            revoke_reason: Some(1),
            revoke_rotate: true,
            revoke_step: Some("requested".into()),
            revoke_requested_at: Some(450),
            updated_at: 0,
        };
        t.ok("put", s.put_renewal(&full, 700));
        assert_eq!(t.take("read", s.renewal("web")), Some(RenewalRow { updated_at: 700, ..full.clone() }), "{e}");
        // Written whole again: cleared fields come back empty.
        let idle = RenewalRow { failures: 0, ..RenewalRow::new("web") };
        t.ok("put idle", s.put_renewal(&idle, 800));
        assert_eq!(t.take("read idle", s.renewal("web")), Some(RenewalRow { updated_at: 800, ..idle }), "{e}");
        t.ok("put B", s.put_renewal(&RenewalRow::new("B-side"), 900));
        t.ok("put a", s.put_renewal(&RenewalRow::new("a-side"), 900));
        let all = t.take("all", s.renewals());
        assert_eq!(all.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["B-side", "a-side", "web"], "{e}: byte order");
        let id = t.ok("id", s.cert_id_by_fingerprint(&crate::model::Fingerprint(fx.api.fp.clone())));
        assert_eq!(id, Some(1), "{e}");
        assert_eq!(t.take("no id", s.cert_id_by_fingerprint(&crate::model::Fingerprint("00".into()))), None, "{e}");
        assert!(!t.take("not revoked", s.is_revoked(&fx.api.fp)), "{e}");
    });
}

// ---------------------------------------------------------------------------------------------
// The audit log

#[test]
fn the_audit_log_reads_alike() {
    let fx = Fixture::new();
    on_both(|s, t| {
        let e = t.engine;
        // A scan that meets no certificate twice: ids agree on both engines, and so do the
        // entries that name them, hashes included.
        let mut w = t.ok("begin", s.begin_scan(100, &names(&["disk"])));
        t.ok("chain", w.record("disk", "/etc/ssl/chain.pem", None, parsed("1", "c1", &fx.chain)));
        t.ok("api", w.record("disk", "/etc/ssl/api.der", None, parsed("1", "a1", &fx.api_only)));
        t.ok("finish", w.finish().map(drop));
        let ids = Certs::of(s, t);
        let www = ids.id(&fx.www.fp);
        assert_eq!(ids.rank(www), www, "{e}: no id was skipped");
        t.ok("revocation", s.save_revocations(&[(www, status(RevocationState::Revoked, Some("keyCompromise"), "crl", 200))]));
        let f = finding(Some((www, &fx.www.fp)), "www.example.net", Kind::Revoked, Severity::Critical, "revoked");
        t.ok(
            "alert",
            s.apply_alert_changes(
                &[Change::Open { finding: 0, notify: vec![notify("mail", &["ops"], Event::Firing, false)] }],
                &[f],
                300,
                &render,
            )
            .map(drop),
        );
        t.ok("ack", s.ack(Some(1), None, None, "alice", None, 400).map(drop));
        t.ok("sent", s.mark_sent(&[1], 450, None));
        for i in 0..5 {
            let id = t.take("append", s.audit(500 + i, "config", "cli", &serde_json::json!({"reload": i, "text": "ünïcode 'quoted'"})));
            assert_eq!(id, 6 + i, "{e}");
        }
        let (page, total) = t.take("page", s.audit_page(0, 3));
        assert_eq!((total, page.iter().map(|p| p.id).collect::<Vec<_>>()), (10, vec![10, 9, 8]), "{e}");
        let (page, _) = t.take("page 2", s.audit_page(8, 3));
        assert_eq!(page.iter().map(|p| (p.id, p.action.as_str())).collect::<Vec<_>>(), [(2, "revocation"), (1, "scan")], "{e}");
        let since = t.take("entries", s.audit_entries(400, 3));
        assert_eq!(
            since.iter().map(|p| (p.id, p.action.as_str())).collect::<Vec<_>>(),
            [(4, "ack"), (5, "notification"), (6, "config")],
            "{e}"
        );
        assert_eq!(since[2].detail, serde_json::json!({"reload": 0, "text": "ünïcode 'quoted'"}), "{e}");
        assert_eq!(t.take("verify", s.audit_verify()), Verdict::Intact { entries: 10 }, "{e}");
        t.take("all entries", s.audit_entries(0, 100));
    });
}

// ---------------------------------------------------------------------------------------------
// Text order

/// The engines sort text alike: byte-wise. SQLite's BINARY collation does it always; PostgreSQL
/// does it on a database with the C collation, which tests/postgres.sh gives the cluster (and
/// so every database made in it) and which the store's documentation asks of a production
/// database. Checked here first so that a cluster with another collation fails by name.
#[test]
fn text_sorts_bytewise_on_both() {
    let words = ["b", "B", "a", "_x", "é", "Z", "aa", "a b", "~", "a-b", "0", "É", "ab", "A"];
    let mut expected: Vec<&str> = words.to_vec();
    expected.sort(); // byte order
    on_both(|s, t| {
        let e = t.engine;
        if let Some(url) = s.postgres_url() {
            let collation: String =
                client(url).query_one("SELECT datcollate FROM pg_database WHERE datname = current_database()", &[]).unwrap().get(0);
            assert_eq!(collation, "C", "the test database must use the C collation (tests/postgres.sh initialises the cluster so)");
        }
        let sources: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        let mut w = t.ok("begin", s.begin_scan(100, &sources));
        for word in words {
            t.ok("register", w.register_source(word, "files", &[]));
            t.ok("record", w.record("disk", &format!("/{word}"), None, ObjectOutcome::Failed { message: "no" }));
        }
        t.ok(
            "images",
            w.replace_image_findings("k8s", &words.iter().map(|w| image(w, "Pod", "p", "i", "latest", Severity::Info)).collect::<Vec<_>>()),
        );
        t.ok("finish", w.finish().map(drop));
        for word in words {
            t.ok("renewal", s.put_renewal(&RenewalRow::new(word), 100));
        }
        let statuses = t.take("source statuses", s.source_statuses());
        assert_eq!(statuses.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), expected, "{e}");
        let errors = t.take("object errors", s.object_errors(Some("disk")));
        let slash: Vec<String> = expected.iter().map(|w| format!("/{w}")).collect();
        assert_eq!(errors.iter().map(|x| x.location.clone()).collect::<Vec<_>>(), slash, "{e}");
        let images = t.take("images", s.image_findings(None));
        assert_eq!(images.iter().map(|i| i.namespace.as_str()).collect::<Vec<_>>(), expected, "{e}");
        let renewals = t.take("renewals", s.renewals());
        assert_eq!(renewals.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), expected, "{e}");
        // Comparisons, not only ORDER BY: `<` and MIN/MAX on text.
        let (min, max): (String, String) =
            t.ok("min max", s.db().query_row("SELECT MIN(name), MAX(name) FROM sources", params![], |r| Ok((r.get(0)?, r.get(1)?))));
        assert_eq!((min.as_str(), max.as_str()), (expected[0], *expected.last().unwrap()), "{e}");
        let below: i64 = t.ok("less", s.db().query_row("SELECT count(*) FROM sources WHERE name < ?1", params!["a"], |r| r.get(0)));
        assert_eq!(below, expected.iter().filter(|w| **w < "a").count() as i64, "{e}");
    });
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: migrations, the migration lock, the audit log's guards

/// Certificates inserted by hand at `version` (the columns of version 1): two rows, the first
/// with a real certificate's DER. Returns their ids.
fn insert_certificates(c: &mut postgres::Client, der: &[u8]) -> [i64; 2] {
    let mut ids = [0; 2];
    for (i, (fp, cn, der)) in [("aa", Some("www.example.net"), der), ("bb", None, &b"\x00"[..])].into_iter().enumerate() {
        ids[i] = c
            .query_one(
                "INSERT INTO certificates (fingerprint, subject, issuer, common_name, serial, not_before, not_after, spki_sha256,
                   key_algorithm, signature_algorithm, is_ca, key_usage, ext_key_usage, sans, ocsp_urls, ca_issuers_urls, crl_urls,
                   self_issued, warnings, der, first_seen)
                 VALUES ($1, $2, 'CN=CA', $3, '01', 0, 100, 'spki', 'EC', 'ecdsa-with-SHA256', 0, '[]', '[]', '[]', '[]', '[]', '[]', 0,
                   '[]', $4, 0)
                 RETURNING id",
                &[&fp.repeat(32), &format!("CN=subject{}", i + 1), &cn, &der],
            )
            .unwrap()
            .get(0);
    }
    ids
}

/// Alerts, outbox rows and a silence as `version_8_store` (in mod.rs's tests) writes them, in
/// the columns of `version` (8 has no subject columns yet). Explicit ids, as a copy of a store
/// writes them; the identities are then moved past them, as such a copy must.
fn insert_alerts(c: &mut postgres::Client, version: i64, certs: [i64; 2]) {
    for (id, cert, state) in [(7i64, certs[0], "resolved"), (9, certs[0], "firing"), (12, certs[1], "acknowledged")] {
        let (columns, values) = if version >= 9 {
            let (subject, name) = if cert == certs[0] { ("aa".repeat(32), "www.example.net") } else { ("bb".repeat(32), "CN=subject2") };
            (", subject, subject_kind, subject_name".to_string(), format!(", 'cert:{subject}', 'certificate', '{name}'"))
        } else {
            (String::new(), String::new())
        };
        c.execute(
            &format!(
                "INSERT INTO alerts (id, cert_id, kind, severity, state, reason, action, opened_at, notifications, routes_notified, seq, acked_by{columns})
                 VALUES ($1, $2, 'expiring', 'warning', $3, 'r', 'a', 10, 2, '[[\"mail\",10]]', 3, 'ops'{values})"
            ),
            &[&id, &cert, &state],
        )
        .unwrap();
    }
    for (id, alert) in [(1i64, Some(7i64)), (2, Some(9)), (3, Some(12)), (4, None)] {
        c.execute(
            "INSERT INTO outbox (id, key, alert_id, route, receiver, event, severity, payload, created_at, next_attempt_at)
             VALUES ($1, $2, $3, 'mail', 'ops', 'firing', 'warning', '{}', 10, 10)",
            &[&id, &format!("k{id}"), &alert],
        )
        .unwrap();
    }
    c.batch_execute(
        "INSERT INTO silences (fingerprint, reason, created_by, created_at, expires_at) VALUES ('aa', 'r', 'ops', 0, 99);
         SELECT setval(pg_get_serial_sequence('alerts', 'id'), (SELECT max(id) FROM alerts));
         SELECT setval(pg_get_serial_sequence('outbox', 'id'), (SELECT max(id) FROM outbox));",
    )
    .unwrap();
}

#[test]
fn postgres_migrates_from_every_earlier_version() {
    let fx = Fixture::new();
    let latest = MIGRATIONS.last().unwrap().0;
    for n in 0..=latest {
        let db = fresh_database();
        let mut c = client(&db.url);
        for (version, name, _, sql) in MIGRATIONS.iter().filter(|m| m.0 <= n) {
            c.batch_execute(sql).unwrap_or_else(|e| panic!("migration {name} by hand: {e}"));
            c.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS certvigil_schema (version BIGINT NOT NULL); DELETE FROM certvigil_schema; INSERT INTO certvigil_schema VALUES ({version})"
            ))
            .unwrap();
        }
        let certs = if n >= 1 { Some(insert_certificates(&mut c, &fx.www.der)) } else { None };
        if n >= 2 {
            c.execute(
                "INSERT INTO revocation_status (cert_id, status, method, checked_at) VALUES ($1, 'good', 'ocsp', 50)",
                &[&certs.unwrap()[0]],
            )
            .unwrap();
        }
        if n >= 8 {
            insert_alerts(&mut c, n, certs.unwrap());
        }
        drop(c);

        let mut store = open_postgres_url(&db.url).unwrap_or_else(|e| panic!("from version {n}: {e}"));
        assert_eq!(store.schema_version().unwrap(), latest, "from version {n}");
        let rows: i64 = store.db().query_row("SELECT count(*) FROM certvigil_schema", params![], |r| r.get(0)).unwrap();
        assert_eq!(rows, 1, "from version {n}: one version row");
        if let Some([a, b]) = certs {
            let cert = store.certificates_by_id(&[a]).unwrap().remove(0);
            assert_eq!(
                (cert.facts.fingerprint.0, cert.facts.common_name.as_deref()),
                ("aa".repeat(32), Some("www.example.net")),
                "from version {n}"
            );
            assert_eq!(store.der(a).unwrap(), fx.www.der, "from version {n}");
            assert_eq!(store.der(b).unwrap(), b"\x00", "from version {n}");
            if n < 10 {
                // Version 10 filled the subject key from the stored DER, in Rust.
                let keys: Vec<Option<Vec<u8>>> =
                    store.db().query_map("SELECT subject_key FROM certificates ORDER BY id", params![], |r| r.get(0)).unwrap();
                assert_eq!(keys, [super::subject_key(&fx.www.der), None], "from version {n}");
                assert!(keys[0].is_some());
            }
            if n >= 2 {
                assert_eq!(
                    store.revocation_status(a).unwrap().map(|r| (r.state, r.checked_at)),
                    Some((RevocationState::Good, 50)),
                    "from version {n}"
                );
            }
        }
        if n >= 8 {
            let [a, b] = certs.unwrap();
            let rows = store
                .db()
                .query_map("SELECT id, subject, subject_kind, subject_name, cert_id, state, notifications, seq, routes_notified, acked_by FROM alerts ORDER BY id", params![], |r| {
                    Ok(format!(
                        "{} {} {} {} {:?} {} {} {} {} {:?}",
                        r.get::<i64>(0)?,
                        r.get::<String>(1)?,
                        r.get::<String>(2)?,
                        r.get::<String>(3)?,
                        r.get::<Option<i64>>(4)?,
                        r.get::<String>(5)?,
                        r.get::<i64>(6)?,
                        r.get::<i64>(7)?,
                        r.get::<String>(8)?,
                        r.get::<Option<String>>(9)?
                    ))
                })
                .unwrap();
            let (sa, sb) = (format!("cert:{}", "aa".repeat(32)), format!("cert:{}", "bb".repeat(32)));
            assert_eq!(
                rows,
                [
                    format!("7 {sa} certificate www.example.net Some({a}) resolved 2 3 [[\"mail\",10]] Some(\"ops\")"),
                    format!("9 {sa} certificate www.example.net Some({a}) firing 2 3 [[\"mail\",10]] Some(\"ops\")"),
                    format!("12 {sb} certificate CN=subject2 Some({b}) acknowledged 2 3 [[\"mail\",10]] Some(\"ops\")"),
                ],
                "from version {n}"
            );
            let outbox: Vec<(i64, Option<i64>)> = store
                .db()
                .query_map("SELECT o.id, a.id FROM outbox o LEFT JOIN alerts a ON a.id = o.alert_id ORDER BY o.id", params![], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap();
            assert_eq!(outbox, [(1, Some(7)), (2, Some(9)), (3, Some(12)), (4, None)], "from version {n}");
            let open: Vec<(i64, String)> = store.open_alerts().unwrap().into_iter().map(|a| (a.id, a.subject)).collect();
            assert_eq!(open, [(9, sa.clone()), (12, sb.clone())], "from version {n}");
            let silences = store.silences(0, true).unwrap();
            assert_eq!(
                (silences.len(), silences[0].fingerprint.as_deref(), silences[0].subject.as_deref()),
                (1, Some("aa"), None),
                "from version {n}"
            );
            // References hold after the migration: an outbox row for no alert is refused.
            assert!(store.enqueue_test("t", "r", "x", "{}", 0).is_ok());
            assert!(
                store.db().execute("INSERT INTO outbox (key, alert_id, route, receiver, event, severity, payload, created_at, next_attempt_at) VALUES ('x', 999, 'r', 'r', 'firing', 'info', '{}', 0, 0)", params![]).is_err(),
                "from version {n}"
            );
        }
        // The migrated store works: a scan adds a certificate, an alert opens.
        let mut w = store.begin_scan(1000, &names(&["disk"])).unwrap();
        w.record("disk", "/api.der", None, parsed("1", "a", &fx.api_only)).unwrap();
        w.finish().unwrap();
        let api = store.find(&fx.api.fp).unwrap().remove(0).id;
        assert_eq!(api, if n >= 1 { 3 } else { 1 }, "from version {n}");
        let f = finding(None, "web", Kind::RenewalFailed, Severity::Warning, "r");
        store.apply_alert_changes(&[Change::Open { finding: 0, notify: vec![] }], &[f], 2000, &render).unwrap();
        let newest = store.alerts(true).unwrap().into_iter().map(|a| a.id).max();
        assert_eq!(newest, Some(if n >= 8 { 13 } else { 1 }), "from version {n}");
        assert!(intact(&store.audit_verify().unwrap()), "from version {n}");
        drop(store);
    }
}

/// Version 10 computes each stored certificate's subject key in Rust, a batch of rows at a time:
/// on PostgreSQL too, over more rows than one batch, some of whose DER is no certificate.
#[test]
fn postgres_version_10_fills_subject_keys_in_batches() {
    let fx = Fixture::new();
    let db = fresh_database();
    let mut c = client(&db.url);
    for (_, _, _, sql) in MIGRATIONS.iter().filter(|m| m.0 <= 9) {
        c.batch_execute(sql).unwrap();
    }
    c.batch_execute("CREATE TABLE certvigil_schema (version BIGINT NOT NULL); INSERT INTO certvigil_schema VALUES (9)").unwrap();
    c.execute(
        "INSERT INTO certificates (fingerprint, subject, issuer, serial, not_before, not_after, spki_sha256, key_algorithm,
           signature_algorithm, is_ca, key_usage, ext_key_usage, sans, ocsp_urls, ca_issuers_urls, crl_urls, self_issued, warnings,
           der, first_seen)
         SELECT lpad(to_hex(g), 64, '0'), 'CN=x', 'CN=x', '01', 0, g, 'spki', 'EC', 'ecdsa-with-SHA256', 0, '[]', '[]', '[]', '[]',
           '[]', '[]', 0, '[]', CASE g % 3 WHEN 0 THEN $1 WHEN 1 THEN $2 ELSE '\\x00'::bytea END, 0
         FROM generate_series(1, 2501) g",
        &[&fx.ca.der, &fx.www.der],
    )
    .unwrap();
    drop(c);
    let store = open_postgres_url(&db.url).unwrap();
    let keys: Vec<(i64, Option<Vec<u8>>)> =
        store.db().query_map("SELECT id, subject_key FROM certificates ORDER BY id", params![], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!(keys.len(), 2501);
    let (ca, www) = (super::subject_key(&fx.ca.der), super::subject_key(&fx.www.der));
    assert!(ca.is_some() && www.is_some() && ca != www);
    for (id, key) in keys {
        let expected = match id % 3 {
            0 => &ca,
            1 => &www,
            _ => &None,
        };
        assert_eq!(&key, expected, "row {id}");
    }
}

#[test]
fn postgres_refuses_a_newer_schema() {
    let s = postgres();
    let latest = MIGRATIONS.last().unwrap().0;
    let url = s.postgres_url().unwrap().to_string();
    client(&url).execute("UPDATE certvigil_schema SET version = $1", &[&(latest + 1)]).unwrap();
    match open_postgres_url(&url) {
        Err(StoreError::TooNew { found, known, .. }) => assert_eq!((found, known), (latest + 1, latest)),
        other => panic!("expected TooNew, got {other:?}"),
    }
    let location = crate::model::store_location::StoreLocation::Postgres(testing::target(&url));
    for (what, opened) in
        [("reader", Store::open_reader_at(&location)), ("connect", Store::connect_at(&location)), ("open_at", Store::open_at(&location))]
    {
        assert!(matches!(opened, Err(StoreError::TooNew { .. })), "{what}: {opened:?}");
    }
    // Nothing was changed: the version is still the newer one.
    let version: i64 = client(&url).query_one("SELECT version FROM certvigil_schema", &[]).unwrap().get(0);
    assert_eq!(version, latest + 1);
}

#[test]
fn postgres_two_stores_migrate_one_fresh_database_at_once() {
    let latest = MIGRATIONS.last().unwrap().0;
    for _ in 0..2 {
        let db = fresh_database();
        let barrier = std::sync::Barrier::new(2);
        let (barrier, url) = (&barrier, db.url.as_str());
        let opened: Vec<std::result::Result<i64, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(move || {
                        barrier.wait();
                        let store = open_postgres_url(url).map_err(|e| e.to_string())?;
                        store.schema_version().map_err(|e| e.to_string())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(opened, [Ok(latest), Ok(latest)]);
        let rows: i64 = client(&db.url).query_one("SELECT count(*) FROM certvigil_schema", &[]).unwrap().get(0);
        assert_eq!(rows, 1);
    }
}

#[test]
fn postgres_audit_triggers_refuse_edits_and_verify_catches_what_gets_past_them() {
    let s = postgres();
    for i in 0..5 {
        s.audit(100 + i, "scan", "cli", &serde_json::json!({"run": i})).unwrap();
    }
    assert_eq!(s.audit_verify().unwrap(), Verdict::Intact { entries: 5 });
    for sql in ["UPDATE audit_log SET detail = '{}' WHERE id = 3", "DELETE FROM audit_log WHERE id = 3", "TRUNCATE audit_log"] {
        let err = s.db().execute(sql, params![]).expect_err(sql).to_string();
        assert!(err.contains("the audit log is append-only") && err.contains("23000"), "{sql}: {err}");
    }
    // A statement that reaches no row is not refused (as in SQLite).
    assert_eq!(s.db().execute("DELETE FROM audit_log WHERE id = 99", params![]).unwrap(), 0);
    // Refused inside a transaction, the transaction is aborted (PostgreSQL), and the connection
    // is usable again after its rollback.
    {
        let tx = s.db().transaction().unwrap();
        assert!(tx.execute("UPDATE audit_log SET at = 0", params![]).is_err());
        assert!(tx.execute("SELECT 1", params![]).is_err(), "an aborted transaction takes no statement");
    }
    assert_eq!(s.audit_verify().unwrap(), Verdict::Intact { entries: 5 });

    // A superuser turns the triggers off: the chain is what is left to catch the edit.
    s.db().execute_batch("ALTER TABLE audit_log DISABLE TRIGGER USER").unwrap();
    s.db().execute("UPDATE audit_log SET detail = '{\"run\":99}' WHERE id = 3", params![]).unwrap();
    assert_eq!(s.audit_verify().unwrap(), Verdict::Broken { id: 3, reason: "its content does not match its hash (edited)".into() });
    s.db().execute("UPDATE audit_log SET detail = '{\"run\":2}' WHERE id = 3", params![]).unwrap();
    assert_eq!(s.audit_verify().unwrap(), Verdict::Intact { entries: 5 });
    s.db().execute("DELETE FROM audit_log WHERE id = 2", params![]).unwrap();
    assert_eq!(s.audit_verify().unwrap(), Verdict::Broken { id: 3, reason: "entry 2 is missing (found 3 next)".into() });
    s.db().execute("UPDATE audit_log SET prev_hash = 'x' WHERE id = 4", params![]).unwrap();
    s.db().execute_batch("ALTER TABLE audit_log ENABLE TRIGGER USER").unwrap();
    assert!(s.db().execute("UPDATE audit_log SET at = 0 WHERE id = 1", params![]).is_err(), "the triggers are back");
}

#[test]
fn postgres_concurrent_appends_from_two_stores_keep_one_chain() {
    let s = postgres();
    s.audit(1, "start", "test", &serde_json::json!({})).unwrap();
    let (a, b) = (s.open_again(), s.open_again());
    // In step: each round both append at once, reading the same head, so that the second
    // insert meets the first one's id and links again (audit::append).
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        let barrier = &barrier;
        let one = scope.spawn(move || {
            for i in 0..200 {
                barrier.wait();
                a.audit(10, "config", "node-a", &serde_json::json!({"i": i})).unwrap();
            }
        });
        let mut b = b;
        let two = scope.spawn(move || {
            // Half inside the store's own transactions (a silence and its entry), half alone.
            for i in 0..200 {
                barrier.wait();
                if i % 2 == 0 {
                    let silence = Silence {
                        id: 0,
                        fingerprint: None,
                        subject: Some(format!("managed:{i}")),
                        source: None,
                        tag: None,
                        kind: None,
                        eku: None,
                        reason: "r".into(),
                        created_by: "node-b".into(),
                        created_at: 10,
                        expires_at: 20,
                    };
                    b.add_silence(&silence).unwrap();
                } else {
                    b.audit(10, "config", "node-b", &serde_json::json!({"i": i})).unwrap();
                }
            }
        });
        one.join().unwrap();
        two.join().unwrap();
    });
    assert_eq!(s.audit_verify().unwrap(), Verdict::Intact { entries: 401 });
    let (by_actor, links): (Vec<(String, i64)>, i64) = (
        s.db()
            .query_map("SELECT actor, count(*) FROM audit_log GROUP BY actor ORDER BY actor", params![], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap(),
        s.db().query_row("SELECT count(DISTINCT prev_hash) FROM audit_log", params![], |r| r.get(0)).unwrap(),
    );
    assert_eq!(by_actor, [("node-a".to_string(), 200), ("node-b".to_string(), 200), ("test".to_string(), 1)]);
    assert_eq!(links, 401, "no two entries link to the same one: no fork");
    // Each round holds one entry of each writer.
    let actors: Vec<String> = s.db().query_map("SELECT actor FROM audit_log ORDER BY id", params![], |r| r.get(0)).unwrap();
    for (round, pair) in actors[1..].chunks(2).enumerate() {
        assert!(pair[0] != pair[1], "round {round}: {pair:?}");
    }
    assert_eq!(s.silences(0, true).unwrap().len(), 100);
}

/// A PostgreSQL store and a SQLite one are [`Store`]s alike: checked here so the suite above
/// cannot pass by running one engine twice.
#[test]
fn both_means_both_engines() {
    let [a, b] = both();
    assert_eq!((a.name, a.dialect()), ("sqlite", super::db::Dialect::Sqlite));
    assert_eq!((b.name, b.dialect()), ("postgres", super::db::Dialect::Postgres));
    assert!(a.conn().is_some() && b.conn().is_none());
    assert!(b.path().to_string_lossy().starts_with("postgres://"));
}

/// `n` leaf certificates signed by one CA (one key for all: signing is what differs), each
/// parsed alone.
fn many_leaves(n: usize) -> Vec<Parsed> {
    use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair, SerialNumber, date_time_ymd};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "Many CA");
    ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = Issuer::new(ca, &ca_key);
    let key = KeyPair::generate().unwrap();
    (0..n)
        .map(|i| {
            let mut p = CertificateParams::new(vec![format!("host{i}.example")]).unwrap();
            p.serial_number = Some(SerialNumber::from_slice(&(i as u32 + 1).to_be_bytes()));
            p.not_before = date_time_ymd(2024, 1, 1);
            // Some share a notAfter: the fingerprint orders them.
            p.not_after = date_time_ymd(2026 + (i % 7) as i32, 1, 1);
            crate::x509::parse_object(p.signed_by(&key, &issuer).unwrap().der(), &[])
        })
        .collect()
}

/// Results longer than a PostgreSQL cursor's batch (500 rows) arrive whole and in order, walks
/// nest (a callback that reads the store, and walks it again), a walk stopped past its first
/// batch leaves the connection usable, and `IN` lists longer than one statement's (500) are
/// split and joined: the same on both engines.
#[test]
fn long_results_stream_and_walks_nest_alike() {
    const LEAVES: usize = 700;
    const CHAINS: usize = 600;
    let fx = Fixture::new();
    let leaves = many_leaves(LEAVES);
    on_both(|s, t| {
        let e = t.engine;
        let mut w = t.ok("begin", s.begin_scan(100, &names(&["disk"])));
        t.ok("register", w.register_source("disk", "files", &[]));
        for (i, leaf) in leaves.iter().enumerate() {
            t.ok("leaf", w.record("disk", &format!("/leaves/{i:04}.der"), None, parsed("1", "l", leaf)));
        }
        for i in 0..CHAINS {
            t.ok("chain", w.record("disk", &format!("/chains/{i:04}.pem"), None, parsed("1", "c", &fx.chain)));
            t.ok(
                "meta",
                w.object_extras(
                    "disk",
                    &format!("/chains/{i:04}.pem"),
                    Some(&serde_json::json!({"owner": format!("team{}", i % 3)})),
                    None,
                ),
            );
        }
        let run = t.take("scan", w.finish());
        let sightings = LEAVES + 2 * CHAINS;
        assert_eq!(
            (run.objects_seen, run.certs_seen, run.certs_new),
            ((LEAVES + CHAINS) as i64, sightings as i64, LEAVES as i64 + 2),
            "{e}"
        );
        for i in 0..1100 {
            t.ok("audit", s.audit(200, "config", "cli", &serde_json::json!({"i": i})));
        }
        let ids = Certs::of(s, t);
        let all_ids: Vec<i64> = ids.rank.keys().copied().collect();

        let mut walked = Vec::new();
        t.ok("each sighting", s.for_each_sighting(|x| walked.push(format!("{} {}", x.fingerprint, x.location))));
        assert_eq!(walked.len(), sightings, "{e}");
        t.note("each sighting", &walked);
        let mut owned = 0;
        t.ok("owned", s.each_owner_sample(OwnerScope::Owned, |o| owned += usize::from(o.owner.is_some())));
        assert_eq!(owned, 2 * CHAINS, "{e}");
        let mut listed = Vec::new();
        t.ok("listing", s.each_listing(|_, r| listed.push(r.fingerprint.to_string())));
        assert_eq!(listed.len(), LEAVES + 2, "{e}");
        t.note("listing", &listed);

        // Each certificate, reading the store from the callback; for the first few, walking the
        // sightings inside the walk.
        let mut per_cert = Vec::new();
        t.ok(
            "each certificate",
            s.each_certificate::<StoreError>(false, |c| {
                let here = s.sightings(c.id)?.len();
                let inside = if per_cert.len() < 3 {
                    let mut n = 0;
                    s.for_each_sighting(|x| n += usize::from(x.fingerprint == c.facts.fingerprint.0))?;
                    Some(n)
                } else {
                    None
                };
                per_cert.push((c.facts.fingerprint.0.clone(), c.current_sightings, here, inside));
                Ok(())
            }),
        );
        assert_eq!(per_cert.len(), LEAVES + 2, "{e}");
        assert!(per_cert.iter().all(|(_, current, here, inside)| *current as usize == *here && inside.is_none_or(|n| n == *here)), "{e}");
        let www = per_cert.iter().find(|p| p.0 == fx.www.fp).unwrap();
        assert_eq!(www.2, CHAINS, "{e}");
        t.note("each certificate", &per_cert);

        // Stopped past the first batch, then walked whole: the same connection, twice.
        for _ in 0..2 {
            let mut n = 0;
            let stopped = s.each_certificate::<StoreError>(true, |_| {
                n += 1;
                if n == 600 { Err(StoreError::Stopped) } else { Ok(()) }
            });
            assert!(matches!(stopped, Err(StoreError::Stopped)) && n == 600, "{e}: {stopped:?} after {n}");
            assert_eq!(t.ok("verify", s.audit_verify()), Verdict::Intact { entries: 1101 }, "{e}");
        }
        let mut n = 0;
        t.ok(
            "walk whole",
            s.each_certificate::<StoreError>(true, |_| {
                n += 1;
                Ok(())
            }),
        );
        assert_eq!(n, LEAVES + 2, "{e}");

        // IN lists of more than 500 values.
        let by_id = t.ok("by id", s.certificates_by_id(&all_ids));
        assert_eq!(by_id.len(), LEAVES + 2, "{e}");
        t.note("by id", &ids.rows(&by_id));
        let spkis: Vec<String> = by_id.iter().map(|c| c.facts.spki_sha256.clone()).collect();
        let spki_refs: Vec<&str> = spkis.iter().map(String::as_str).collect();
        assert_eq!(t.ok("by key", s.certificates_for_keys(&[], &spki_refs)).len(), LEAVES + 2, "{e}");
        let statuses: Vec<(i64, RevocationStatus)> =
            all_ids.iter().map(|id| (*id, status(RevocationState::Unknown, Some("no responder"), "none", 300))).collect();
        t.ok("save", s.save_revocations(&statuses));
        assert_eq!(t.ok("statuses of", s.revocation_statuses_of(&all_ids)).len(), LEAVES + 2, "{e}");
        assert_eq!(t.ok("unknown since", s.revocation_unknown_since_of(&all_ids)).len(), LEAVES + 2, "{e}");
        let mut samples = 0;
        t.ok("samples of all", s.each_owner_sample(OwnerScope::Certificates(&all_ids), |_| samples += 1));
        assert_eq!(samples, sightings, "{e}");
        assert!(t.ok("notifications", s.alert_notifications(&all_ids)).is_empty(), "{e}");
        assert_eq!(t.take("verify", s.audit_verify()), Verdict::Intact { entries: 1101 + LEAVES as i64 + 2 }, "{e}");
    });
}

/// A reader (the HTTP server's connections, the CLI's) and a short-lived connection see what
/// the store wrote, on either engine.
#[test]
fn readers_see_what_the_store_wrote() {
    let fx = Fixture::new();
    on_both(|s, t| {
        let mut w = t.ok("begin", s.begin_scan(100, &names(&["disk"])));
        t.ok("chain", w.record("disk", "/chain.pem", None, parsed("1", "c", &fx.chain)));
        t.ok("finish", w.finish().map(drop));
        let location = s.location();
        let written = format!("{:?}", t.ok("certificates", s.certificates(false)));
        for (what, other) in [("reader", Store::open_reader_at(&location)), ("connection", Store::connect_at(&location))] {
            let other = t.ok(what, other);
            assert_eq!(format!("{:?}", t.ok("certificates", other.certificates(false))), written, "{}: {what}", t.engine);
            t.take(&format!("{what}: schema version"), other.schema_version());
            t.take(&format!("{what}: last run"), other.last_run());
        }
    });
}

/// Text the store is given may hold U+0000 (a crafted certificate's CN, a token's key label, an
/// error quoting what was read): SQLite keeps it, PostgreSQL's text cannot hold it and stores
/// U+FFFD instead (db.rs). Either way the scan goes through and the rows read back.
#[test]
fn text_holding_nul_is_stored_on_both() {
    use rcgen::{CertificateParams, DnType, DnValue, KeyPair};
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, DnValue::Utf8String("evil\0name".into()));
    let evil = crate::x509::parse_object(p.self_signed(&KeyPair::generate().unwrap()).unwrap().der(), &[]);
    assert_eq!(evil.certs[0].facts.common_name.as_deref(), Some("evil\0name"));
    assert_eq!(evil.certs[0].facts.subject, "CN=evil\\00name", "the subject is RFC 4514 text, escaped");
    for mut s in both() {
        let e = s.name;
        let nul = if e == "postgres" { "\u{fffd}" } else { "\0" };
        let mut w = s.begin_scan(100, &names(&["hsm"])).unwrap();
        w.record("hsm", "pkcs11:id=%01;type=cert", None, parsed("1", "a", &evil)).unwrap_or_else(|err| panic!("{e}: {err}"));
        w.record("hsm", "pkcs11:id=%02;type=private", None, parsed("1", "b", &Parsed::default())).unwrap();
        w.object_extras("hsm", "pkcs11:id=%02;type=private", None, Some(&key_object("key\0label", None))).unwrap();
        w.record("hsm", "pkcs11:id=%03;type=cert", None, ObjectOutcome::Failed { message: "bad byte \0 here" }).unwrap();
        w.finish().unwrap_or_else(|err| panic!("{e}: {err}"));
        let certs = s.certificates(false).unwrap();
        assert_eq!(certs[0].facts.common_name, Some(format!("evil{nul}name")), "{e}");
        assert_eq!(s.find(&evil.certs[0].facts.fingerprint.0).unwrap().len(), 1, "{e}");
        assert_eq!(s.keys(None).unwrap()[0].label, Some(format!("key{nul}label")), "{e}");
        let errors = s.run_errors(1).unwrap();
        assert_eq!(errors.iter().map(|x| x.message.clone()).collect::<Vec<_>>(), [format!("bad byte {nul} here")], "{e}");
        // A rescan finds the objects again by their locations.
        let mut w = s.begin_scan(200, &names(&["hsm"])).unwrap();
        let known = w.known_objects("hsm").unwrap();
        w.record("hsm", "pkcs11:id=%01;type=cert", known.get(&object_key("pkcs11:id=%01;type=cert")), parsed("2", "a2", &evil)).unwrap();
        let run = w.finish().unwrap();
        assert_eq!((run.certs_seen, run.certs_new), (1, 0), "{e}");
    }
}

#[test]
fn trust_material_reads_alike() {
    use crate::model::rows::TrustRootRow;
    const COSIGN: &str = "k8s://c/sigstore/secrets/cosign#cosign.pub";
    const ROOT: &str = "k8s://c/sigstore/configmaps/trust#root.json";
    let public = |spki: &str| KeyObject {
        label: Some("cosign".into()),
        key_id: None,
        class: "public".into(),
        algorithm: "EC".into(),
        bits: Some(256),
        curve: Some("P-256".into()),
        spki_sha256: Some(spki.into()),
        attributes: serde_json::json!({"format": "pem"}),
        document: None,
    };
    let root = |version: i64, sha: &str, chain: &str, trusted: bool| TrustRootRow {
        source: "k8s".into(),
        location: ROOT.into(),
        version,
        content_sha256: sha.into(),
        document: format!("{{\"v\": {version}}}"),
        valid_signatures: 3,
        threshold: 3,
        chain: chain.into(),
        chain_from: (version > 5).then_some(version - 1),
        trusted,
        first_seen: 0,
        last_seen: 0,
    };
    let empty = Parsed::default();
    on_both(|s, t| {
        let e = t.engine;
        // 1000: key A in the Secret, roots v5 and v6 at the ConfigMap key.
        let mut w = t.ok("begin", s.begin_scan(1000, &names(&["k8s"])));
        t.ok("register", w.register_source("k8s", "kubernetes", &[]));
        t.ok("record", w.record("k8s", COSIGN, None, parsed("s1", "c1", &empty)));
        t.ok("extras", w.object_extras("k8s", COSIGN, None, Some(&public("aa"))));
        t.ok("put v5", w.put_trust_root(&root(5, "r5", "first", true)));
        t.ok("put v6", w.put_trust_root(&root(6, "r6", "verified", true)));
        t.ok("put v8", w.put_trust_root(&root(8, "r8", "gap", false)));
        let at = t.ok("at", w.trust_roots_at("k8s", ROOT));
        assert_eq!(at.iter().map(|r| (r.version, r.trusted)).collect::<Vec<_>>(), [(8, false), (6, true), (5, true)], "{e}");
        assert_eq!(at[1].document, "{\"v\": 6}", "{e}");
        assert!(t.ok("elsewhere", w.trust_roots_at("k8s", COSIGN)).is_empty(), "{e}");
        let between = t.ok("between", w.trust_roots_between(5, 8));
        assert_eq!(between.iter().map(|r| r.version).collect::<Vec<_>>(), [6], "{e}");
        assert!(t.ok("too far", w.trust_roots_between(5, 5 + crate::store::MAX_ROOT_STEPS + 1)).is_empty(), "{e}");
        t.ok("finish", w.finish().map(drop));
        // 2000: key B replaces A at the same place; v8 seen again, its gap closed.
        let mut w = t.ok("begin 2", s.begin_scan(2000, &names(&["k8s"])));
        t.ok("record 2", w.record("k8s", COSIGN, None, parsed("s2", "c2", &empty)));
        t.ok("extras 2", w.object_extras("k8s", COSIGN, None, Some(&public("bb"))));
        t.ok("put v8 again", w.put_trust_root(&root(8, "r8", "verified", true)));
        t.ok("finish 2", w.finish().map(drop));
        let history = t.take("history", s.key_history(None));
        assert_eq!(
            history.iter().map(|k| (k.spki_sha256.as_str(), k.first_seen, k.last_seen, k.gone_since)).collect::<Vec<_>>(),
            [("aa", 1000, 1000, Some(2000)), ("bb", 2000, 2000, None)],
            "{e}"
        );
        assert_eq!(t.ok("keys", s.keys(Some("k8s"))).iter().map(|k| k.spki_sha256.clone()).collect::<Vec<_>>(), [Some("bb".to_string())]);
        let roots = t.take("roots", s.trust_roots(Some("k8s")));
        assert_eq!(
            roots.iter().map(|r| (r.version, r.chain.as_str(), r.trusted, r.first_seen, r.last_seen)).collect::<Vec<_>>(),
            [(5, "first", true, 1000, 1000), (6, "verified", true, 1000, 1000), (8, "verified", true, 1000, 2000)],
            "{e}"
        );
        // 3000: the Secret is gone: so is its key.
        let mut w = t.ok("begin 3", s.begin_scan(3000, &names(&["k8s"])));
        t.ok("vanished", w.vanished("k8s", COSIGN));
        t.ok("finish 3", w.finish().map(drop));
        let history = t.take("history 3", s.key_history(Some("k8s")));
        assert_eq!(history.iter().map(|k| k.gone_since).collect::<Vec<_>>(), [Some(2000), Some(3000)], "{e}");
        assert!(t.ok("other source", s.key_history(Some("disk"))).is_empty(), "{e}");
    });
}
