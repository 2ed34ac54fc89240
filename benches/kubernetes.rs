//! Benchmark "a cluster of 50,000 Secrets": the fixture API server of `tests/kube` holds
//! 50,000 Secrets in 100 namespaces — 10% of type `kubernetes.io/tls`, each with its own
//! certificate (`tls.crt` = leaf + CA, `tls.key`, `ca.crt`; 20 CAs), and 90% Helm release
//! Secrets (`sh.helm.release.v1.*`, type `helm.sh/release.v1`) whose `release` key holds
//! 50–100 KiB of base64 text of gzip-looking bytes, as Helm stores them. `certvigil scan` (the
//! release binary, a child process) inventories the cluster; its wall time and peak RSS
//! (getrusage ru_maxrss, through `/usr/bin/time`) are measured. Target: peak RSS ≤ 100 MB.
//!
//! The baseline, measured in the same run against the same server, is a Python program
//! (standard library only) that pages `/api/v1/secrets` with `limit=500` (client-go's pager
//! default, certvigil's `page_size` default) and, for every TLS Secret, decodes `tls.crt` and
//! `ca.crt` down to DER and fingerprints each certificate: the least a lister that parses list
//! pages whole must hold.
//!
//! `cargo bench --bench kubernetes` (release). Settings: `CERTVIGIL_BENCH_SECRETS` (default
//! 50000). Results also go to `target/bench-kubernetes.json`.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it makes a smoke run: 400 Secrets,
//! certvigil and the baseline checked against the generator.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/kube/mod.rs"]
mod kube;

use anyhow::{Context, Result, ensure};
use base64ct::{Base64, Encoding};
use kube::{ApiServer, TOKEN};
use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair, SerialNumber};
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Instant;

const CERTVIGIL: &str = env!("CARGO_BIN_EXE_certvigil");
const RSS_TARGET_MB: f64 = 100.0;
const NAMESPACES: usize = 100;
const CAS: usize = 20;
/// Distinct Helm payloads, shared between Secrets (the server's memory; each Secret still
/// carries a whole payload on the wire).
const PAYLOADS: usize = 64;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench kubernetes: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn number(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v.trim().replace('_', "").parse().with_context(|| format!("{name}={v:?} is not a whole number")),
        Err(_) => Ok(default),
    }
}

/// A small deterministic generator (xorshift64*): the payloads need only look random.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

struct Cluster {
    tls: usize,
    /// Distinct certificates: every leaf and every CA.
    certificates: usize,
    wire_bytes: u64,
}

/// Fills the fixture server.
fn populate(api: &ApiServer, n: usize) -> Result<Cluster> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut cas = Vec::new();
    for i in 0..CAS {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name.push(DnType::CommonName, format!("Bench Cluster CA {i}"));
        p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let pem = p.self_signed(&key)?.pem();
        cas.push((Issuer::new(p, key), pem));
    }
    // One leaf key for all (generating 5,000 keys adds nothing to what is measured); every
    // certificate is distinct (name, serial).
    let leaf_key = KeyPair::generate()?;
    let leaf_key_pem = leaf_key.serialize_pem();
    let payloads: Vec<Arc<str>> = (0..PAYLOADS)
        .map(|_| {
            // The wire value is base64 (the API's encoding of `data`) of base64 (Helm's encoding)
            // of gzip: 50–100 KiB on the wire.
            let wire = 50 * 1024 + (rng.next() % (50 * 1024)) as usize;
            let mut raw = vec![0x1f, 0x8b, 0x08, 0x00];
            while raw.len() < wire * 9 / 16 {
                raw.extend_from_slice(&rng.next().to_le_bytes());
            }
            let helm = Base64::encode_string(&raw);
            Arc::from(Base64::encode_string(helm.as_bytes()))
        })
        .collect();
    let tls_every = 10;
    let mut cluster = Cluster { tls: 0, certificates: 0, wire_bytes: 0 };
    let mut used_cas = std::collections::BTreeSet::new();
    let mut batch = Vec::new();
    for i in 0..n {
        let ns = format!("ns-{:03}", i % NAMESPACES);
        if i % tls_every == 0 {
            let ca = i / tls_every % CAS;
            used_cas.insert(ca);
            let (issuer, ca_pem) = &cas[ca];
            let host = format!("svc{i}.{ns}.svc.cluster.local");
            let mut p = CertificateParams::new(vec![host.clone()])?;
            p.distinguished_name.push(DnType::CommonName, host);
            p.serial_number = Some(SerialNumber::from_slice(&(i as u64 + 1).to_be_bytes()));
            let leaf = p.signed_by(&leaf_key, issuer)?.pem();
            let chain = format!("{leaf}{ca_pem}");
            cluster.tls += 1;
            cluster.wire_bytes += (chain.len() + leaf_key_pem.len() + ca_pem.len()) as u64 * 4 / 3;
            batch.push(Pending::Tls { ns, name: format!("svc{i}-tls"), chain, ca: ca_pem.clone() });
        } else {
            let payload = Arc::clone(&payloads[i % PAYLOADS]);
            cluster.wire_bytes += payload.len() as u64;
            batch.push(Pending::Helm { ns, app: format!("app{i}"), payload });
        }
    }
    cluster.certificates = cluster.tls + used_cas.len();
    api.with(|s| {
        for (rv, p) in batch.into_iter().enumerate() {
            match p {
                Pending::Tls { ns, name, chain, ca } => s.put_secret(
                    &ns,
                    &name,
                    "kubernetes.io/tls",
                    &[("tls.crt", chain.as_bytes()), ("tls.key", leaf_key_pem.as_bytes()), ("ca.crt", ca.as_bytes())],
                ),
                Pending::Helm { ns, app, payload } => {
                    let name = format!("sh.helm.release.v1.{app}.v3");
                    let head = format!(
                        "{{\"kind\":\"Secret\",\"apiVersion\":\"v1\",\"metadata\":{{\"name\":\"{name}\",\"namespace\":\"{ns}\",\
                         \"uid\":\"uid-{ns}-{name}\",\"resourceVersion\":\"{}\",\"labels\":{{\"name\":\"{app}\",\"owner\":\"helm\",\
                         \"status\":\"deployed\",\"version\":\"3\"}}}},\"type\":\"helm.sh/release.v1\",\"data\":{{\"release\":\"",
                        1_000_000 + rv
                    );
                    s.put_raw_secret(&ns, &name, vec![Arc::from(head), payload, Arc::from("\"}}")]);
                }
            }
        }
    });
    Ok(cluster)
}

enum Pending {
    Tls { ns: String, name: String, chain: String, ca: String },
    Helm { ns: String, app: String, payload: Arc<str> },
}

/// What GNU time said about a child, and the child's stdout.
struct Timed {
    wall_s: f64,
    cpu_s: f64,
    peak_rss_kib: u64,
    stdout: String,
}

/// Runs `program args` under `/usr/bin/time`, which reports the child's peak RSS (its getrusage
/// ru_maxrss) and CPU time; wall time is measured here around the whole child.
fn timed(cmd: Command, what: &str) -> Result<Timed> {
    let time_file = tempfile::NamedTempFile::new().context("creating a file for /usr/bin/time")?;
    let mut timed = Command::new("/usr/bin/time");
    timed.args(["-f", "%e %M %U %S", "-o"]).arg(time_file.path()).arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    let start = Instant::now();
    let out = timed.output().with_context(|| format!("running {what} under /usr/bin/time (Debian package time)"))?;
    let wall_s = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "{what} failed ({}):\n{}", out.status, tail(&stderr, 40));
    let report = std::fs::read_to_string(time_file.path()).context("reading /usr/bin/time's report")?;
    let fields: Vec<&str> = report.lines().last().unwrap_or_default().split_whitespace().collect();
    let parse = |k: usize| -> Result<f64> {
        fields.get(k).and_then(|f| f.parse().ok()).with_context(|| format!("unexpected /usr/bin/time report {report:?}"))
    };
    Ok(Timed {
        wall_s,
        peak_rss_kib: parse(1)? as u64,
        cpu_s: parse(2)? + parse(3)?,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    })
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The baseline: one page held at a time, as `json.load` gives it.
const BASELINE: &str = r#"
import base64, hashlib, json, ssl, sys, urllib.parse, urllib.request
base, token = sys.argv[1], sys.argv[2]
secrets = tls = 0
seen = set()
cont = None
while True:
    q = {"limit": "500"}
    if cont:
        q["continue"] = cont
    req = urllib.request.Request(base + "/api/v1/secrets?" + urllib.parse.urlencode(q), headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req) as r:
        page = json.load(r)
    for s in page["items"]:
        secrets += 1
        if s.get("type") != "kubernetes.io/tls":
            continue
        tls += 1
        for key in ("tls.crt", "ca.crt"):
            text = base64.b64decode(s.get("data", {}).get(key, "")).decode()
            for block in text.split("-----END CERTIFICATE-----")[:-1]:
                der = ssl.PEM_cert_to_DER_cert(block.strip() + "\n-----END CERTIFICATE-----\n")
                seen.add(hashlib.sha256(der).hexdigest())
    cont = page["metadata"].get("continue")
    page = None
    if not cont:
        break
print(json.dumps({"secrets": secrets, "tls": tls, "certificates": len(seen)}))
"#;

fn run() -> Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { number("CERTVIGIL_BENCH_SECRETS", 50_000)? } else { 400 };
    let api = ApiServer::start();
    let t = Instant::now();
    let cluster = populate(&api, n)?;
    let gen_s = t.elapsed().as_secs_f64();
    let tmp = tempfile::Builder::new().prefix("certvigil-bench-kubernetes-").tempdir()?;
    let work = tmp.path();
    std::fs::write(work.join("kubeconfig.yaml"), api.kubeconfig(TOKEN))?;
    let cfg = work.join("certvigil.yaml");
    std::fs::write(
        &cfg,
        format!(
            "store: {{path: {}}}\nsources:\n  - {{name: cluster, kind: kubernetes, kubeconfig: {}}}\n",
            work.join("state/certvigil.db").display(),
            work.join("kubeconfig.yaml").display()
        ),
    )?;

    let mut cmd = Command::new(CERTVIGIL);
    cmd.arg("-c").arg(&cfg).args(["scan", "--no-progress", "-o", "json"]).env_remove("KUBECONFIG").env("HOME", work);
    let requests_before = api.with(|s| s.requests.len());
    let cv = timed(cmd, "certvigil scan")?;
    let requests = api.with(|s| s.requests.len()) - requests_before;
    let report: serde_json::Value = serde_json::from_str(&cv.stdout).context("certvigil scan -o json output")?;
    let objects = report["sources"][0]["objects"].as_u64().unwrap_or_default();
    let errors = report["errors"].as_array().map(Vec::len).unwrap_or(usize::MAX);
    let list = Command::new(CERTVIGIL).arg("-c").arg(&cfg).args(["list", "-o", "json"]).env("HOME", work).output()?;
    ensure!(list.status.success(), "certvigil list: {}", String::from_utf8_lossy(&list.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&list.stdout)?;
    let certs = listed.as_array().or_else(|| listed["certificates"].as_array()).map(Vec::len).unwrap_or_default();
    ensure!(
        objects == 2 * cluster.tls as u64,
        "certvigil saw {objects} objects, expected tls.crt and ca.crt of {} TLS Secrets",
        cluster.tls
    );
    ensure!(errors == 0, "certvigil reported errors: {}", report["errors"]);
    ensure!(certs == cluster.certificates, "certvigil inventoried {certs} certificates, the cluster holds {}", cluster.certificates);

    let mut py = Command::new("python3");
    py.arg("-c").arg(BASELINE).arg(format!("http://127.0.0.1:{}", api.port)).arg(TOKEN);
    let base = timed(py, "the Python baseline")?;
    let b: serde_json::Value = serde_json::from_str(base.stdout.trim()).context("baseline output")?;
    ensure!(
        b["secrets"] == n && b["tls"] == cluster.tls && b["certificates"] == cluster.certificates,
        "the baseline saw {b}, the cluster holds {n} Secrets, {} TLS, {} certificates",
        cluster.tls,
        cluster.certificates
    );
    let mb = |kib: u64| kib as f64 * 1024.0 / 1e6;
    let (cv_mb, base_mb) = (mb(cv.peak_rss_kib), mb(base.peak_rss_kib));
    if !full {
        println!(
            "bench kubernetes smoke run: ok ({n} Secrets, {} TLS, {certs} certificates; certvigil {cv_mb:.0} MB, baseline {base_mb:.0} MB); \
             `cargo bench --bench kubernetes` measures",
            cluster.tls
        );
        return Ok(());
    }
    let gib = cluster.wire_bytes as f64 / (1u64 << 30) as f64;
    println!(
        "certvigil kubernetes benchmark: {n} Secrets ({} kubernetes.io/tls, {} Helm releases, {gib:.2} GiB of data on the wire), \
         {certs} certificates; fixture filled in {gen_s:.1} s",
        cluster.tls,
        n - cluster.tls
    );
    println!(
        "  certvigil scan:   {:.1} s wall, {:.1} s CPU, peak RSS {cv_mb:.1} MB (target ≤ {RSS_TARGET_MB} MB), {requests} API requests",
        cv.wall_s, cv.cpu_s
    );
    println!(
        "  baseline, Python urllib pages of 500 + PEM decode: {:.1} s wall, {:.1} s CPU, peak RSS {base_mb:.1} MB",
        base.wall_s, base.cpu_s
    );
    let json = serde_json::json!({
        "secrets": n, "tls_secrets": cluster.tls, "certificates": certs, "wire_bytes": cluster.wire_bytes,
        "certvigil": {"wall_seconds": cv.wall_s, "cpu_seconds": cv.cpu_s, "peak_rss_mb": cv_mb, "api_requests": requests},
        "baseline_python": {"wall_seconds": base.wall_s, "cpu_seconds": base.cpu_s, "peak_rss_mb": base_mb},
        "targets": {"peak_rss_mb": RSS_TARGET_MB},
    });
    let target_dir = Path::new(CERTVIGIL).parent().and_then(Path::parent).context("no target directory")?;
    std::fs::write(target_dir.join("bench-kubernetes.json"), serde_json::to_string_pretty(&json)? + "\n")?;
    if cv_mb > RSS_TARGET_MB {
        println!("  TARGET MISSED");
    }
    Ok(())
}
