//! One simulated year of a certificate fleet through the real scan writer, policy, alert state
//! machine and outbox, on a virtual clock.
//!
//! The fleet: `CERTVIGIL_SIM_N` (default 10,000) services with 90-day certificates issued on
//! staggered days, renewed at two thirds of their lifetime. 1% of renewals fail: the old
//! certificate stays until the on-call engineer, paged when it turns critical, fixes renewal
//! `FIX_AFTER` later. A few certificates are revoked mid-life and replaced the next day.
//! Every `STEP` the inventory is rescanned (an in-memory source; real DER from rcgen) and the
//! alerts evaluated. Notifications are counted in the outbox (nothing is sent over the network).
//!
//! Checks: healthy renewals cause no notification; each failed renewal causes exactly one page,
//! one escalation (nobody acknowledges) and one resolve on the pager route; each revocation one
//! page, one escalation and one resolve. The bench fails if any check fails.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it simulates 300 services for 120
//! days as a smoke test of the same checks.

use anyhow::{Context, Result, bail};
use certvigil::config;
use certvigil::sources::{Listing, Source, SourceError};
use certvigil::store::Store;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

const DAY: i64 = 86_400;
const STEP: i64 = 6 * 3600;
const FIX_AFTER: i64 = 30 * 3600;
/// 2027-01-01T00:00:00Z
const START: i64 = 1_798_761_600;

/// An in-memory source: location → (stamp, DER).
struct Fleet {
    objects: Mutex<BTreeMap<String, (String, Vec<u8>)>>,
}

impl Source for Fleet {
    fn name(&self) -> &str {
        "fleet"
    }
    fn kind(&self) -> &'static str {
        "files"
    }
    fn tags(&self) -> &[String] {
        &[]
    }
    fn list(&self, out: &mut dyn FnMut(Listing)) {
        // Snapshot, then list without the lock: the scan's workers fetch while we list.
        let listing: Vec<(String, String)> =
            self.objects.lock().expect("fleet lock").iter().map(|(l, (s, _))| (l.clone(), s.clone())).collect();
        for (location, stamp) in listing {
            out(Listing::Object { location, stamp });
        }
    }
    fn fetch(&self, location: &str) -> Result<certvigil::sources::Fetched, String> {
        self.objects
            .lock()
            .expect("fleet lock")
            .get(location)
            .map(|(_, d)| certvigil::sources::Fetched::bytes(d.clone()))
            .ok_or_else(|| "gone".into())
    }
    fn passwords(&self) -> Result<Vec<certvigil::config::secret::Secret>, SourceError> {
        Ok(Vec::new())
    }
}

struct Issuer {
    ca: rcgen::Issuer<'static, rcgen::KeyPair>,
    key: rcgen::KeyPair,
    serial: u64,
}

impl Issuer {
    fn new() -> Result<Self> {
        let ca_key = rcgen::KeyPair::generate()?;
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name.push(rcgen::DnType::CommonName, "certvigil sim CA");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::Issuer::new(p, ca_key);
        Ok(Issuer { ca, key: rcgen::KeyPair::generate()?, serial: 1 })
    }

    fn leaf(&mut self, name: &str, not_before: i64, lifetime: i64) -> Result<Vec<u8>> {
        let mut p = rcgen::CertificateParams::new(vec![name.to_string()])?;
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.not_before = time::OffsetDateTime::from_unix_timestamp(not_before)?;
        p.not_after = time::OffsetDateTime::from_unix_timestamp(not_before + lifetime)?;
        self.serial += 1;
        p.serial_number = Some(rcgen::SerialNumber::from(self.serial.to_be_bytes().to_vec()));
        Ok(p.signed_by(&self.key, &self.ca)?.der().to_vec())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Trouble {
    None,
    FailedRenewal { due: i64 },
    Revoked { at: i64 },
}

struct Service {
    name: String,
    issued: i64,
    trouble: Trouble,
    fixed_at: Option<i64>,
}

fn config_text() -> &'static str {
    r#"
sources: []
alerts:
  receivers:
    - {name: team-mail, kind: webhook, url: "http://127.0.0.1:9/mail"}
    - {name: pager, kind: webhook, url: "http://127.0.0.1:9/pager"}
    - {name: managers, kind: webhook, url: "http://127.0.0.1:9/managers"}
  routes:
    - name: warnings
      match: {severity: [warning]}
      receivers: [team-mail]
      mode: digest
    - name: pages
      match: {severity: [critical]}
      receivers: [pager]
      renotify: {critical: 48h}
      escalate_after: 12h
      escalate_to: escalations
    - name: escalations
      escalation_only: true
      receivers: [managers]
"#
}

fn main() -> Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = if full { std::env::var("CERTVIGIL_SIM_N").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000) } else { 300 };
    let days: i64 = if full { 365 } else { 120 };
    let dir = tempfile::tempdir()?;
    let settings = config::parse_str(config_text(), "sim.yaml", dir.path()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut store = Store::open(&dir.path().join("sim.db"))?;
    let mut issuer = Issuer::new()?;
    let fleet = Arc::new(Fleet { objects: Mutex::new(BTreeMap::new()) });
    let lifetime = 90 * DAY;
    let renew_after = 60 * DAY;

    // Deterministic choice of trouble: every 100th renewal fails; 5 revocations.
    let mut services: Vec<Service> = (0..n)
        .map(|i| Service {
            name: format!("svc-{i:05}.sim.test"),
            issued: START - (i as i64 % 60) * DAY,
            trouble: Trouble::None,
            fixed_at: None,
        })
        .collect();
    let mut renewals = 0u64;
    let mut failures = 0u64;
    let revocations: Vec<usize> = (0..5).map(|k| (k * 997 + 13) % n).collect();
    let mut revoked_serials: HashMap<String, i64> = HashMap::new();

    let gen_started = std::time::Instant::now();
    for s in &services {
        let der = issuer.leaf(&s.name, s.issued, lifetime)?;
        fleet.objects.lock().expect("lock").insert(s.name.clone(), (format!("{}", s.issued), der));
    }
    let gen_secs = gen_started.elapsed().as_secs_f64();

    let started = std::time::Instant::now();
    let sources: Vec<Box<dyn Source>> = vec![Box::new(ArcSource(Arc::clone(&fleet)))];
    let mut renewal_no = 0u64;
    let mut page_times: Vec<i64> = Vec::new();
    let mut t = START;
    let end = START + days * DAY;
    let mut steps = 0u64;
    while t < end {
        // Renewals, failures and fixes due by now.
        let mut newly_revoked: Vec<String> = Vec::new();
        for (i, s) in services.iter_mut().enumerate() {
            if let Trouble::Revoked { at } = s.trouble
                && s.fixed_at.is_none()
                && t >= at + FIX_AFTER
            {
                s.fixed_at = Some(t);
            }
            // A revoked certificate is replaced as soon as it is fixed, renewal due or not.
            let due = if matches!(s.trouble, Trouble::Revoked { .. }) && s.fixed_at.is_some() { t } else { s.issued + renew_after };
            if t < due {
                if revocations.contains(&i)
                    && s.trouble == Trouble::None
                    && !revoked_serials.contains_key(&s.name)
                    && t >= START + 20 * DAY + i as i64 * 3600
                {
                    s.trouble = Trouble::Revoked { at: t };
                    revoked_serials.insert(s.name.clone(), t);
                    newly_revoked.push(s.name.clone());
                }
                continue;
            }
            match s.trouble {
                Trouble::None => {
                    renewal_no += 1;
                    if renewal_no.is_multiple_of(100) {
                        s.trouble = Trouble::FailedRenewal { due };
                        failures += 1;
                        // Paged when the certificate turns critical (7 days left).
                        page_times.push(s.issued + lifetime - 7 * DAY);
                        continue;
                    }
                }
                Trouble::FailedRenewal { due } => {
                    // Paged when it turned critical (7 days left), fixed FIX_AFTER later.
                    let paged = s.issued + lifetime - 7 * DAY;
                    if t < paged.max(due) + FIX_AFTER {
                        continue;
                    }
                    s.trouble = Trouble::None;
                }
                Trouble::Revoked { .. } => {
                    if s.fixed_at.is_none() {
                        continue;
                    }
                    s.trouble = Trouble::None;
                    s.fixed_at = None;
                }
            }
            renewals += 1;
            s.issued = t;
            let der = issuer.leaf(&s.name, t, lifetime)?;
            fleet.objects.lock().expect("lock").insert(s.name.clone(), (format!("{t}"), der));
        }
        // Revocation status as a CRL check would record it.
        certvigil::inventory::scan(&mut store, &sources, true, t, 1, &mut |_| {})?;
        if !newly_revoked.is_empty() {
            mark_revoked(&mut store, &newly_revoked, t)?;
        }
        let (findings, changes) = certvigil::evaluate::plan(&store, &settings, t)?;
        store.apply_alert_changes(&changes, &findings, t)?;
        t += STEP;
        steps += 1;
    }
    let sim_secs = started.elapsed().as_secs_f64();

    // Count notifications by route, event and kind.
    let mut counts: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    {
        let mut stmt =
            store.conn().prepare("SELECT route, event, json_extract(payload, '$.kind'), COUNT(*) FROM outbox GROUP BY 1, 2, 3")?;
        let rows =
            stmt.query_map([], |r| Ok(((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?), r.get::<_, i64>(3)?)))?;
        for row in rows {
            let (k, v) = row?;
            counts.insert(k, v);
        }
    }
    let troubled: i64 = store.conn().query_row(
        "SELECT COUNT(DISTINCT a.cert_id) FROM alerts a WHERE a.kind IN ('expiring', 'expired', 'revoked') AND a.notifications > 0",
        [],
        |r| r.get(0),
    )?;

    println!(
        "simulated {days} days of {n} services in {steps} steps of {}h: {renewals} renewals, {failures} failed, {} revocations",
        STEP / 3600,
        revoked_serials.len()
    );
    println!(
        "certificates generated in {gen_secs:.1} s; simulation wall time {sim_secs:.1} s ({:.1} ms per step)",
        sim_secs * 1000.0 / steps as f64
    );
    println!("\n{:<12} {:<11} {:<12} {:>8}", "route", "event", "kind", "count");
    for ((route, event, kind), c) in &counts {
        println!("{route:<12} {event:<11} {kind:<12} {c:>8}");
    }
    let get =
        |route: &str, event: &str, kind: &str| counts.get(&(route.to_string(), event.to_string(), kind.to_string())).copied().unwrap_or(0);
    let revs = revoked_serials.len() as i64;
    let fails = failures as i64;
    // What the year's end cut short: pages, escalations and fixes not yet due at the last step.
    let last = t - STEP;
    let paged = page_times.iter().filter(|p| **p <= last).count() as i64;
    let escalated = page_times.iter().filter(|p| **p + 12 * 3600 <= last).count() as i64;
    let finished_failures = fails - services.iter().filter(|s| matches!(s.trouble, Trouble::FailedRenewal { .. })).count() as i64;
    let mut problems = Vec::new();
    let mut expect = |what: &str, got: i64, want: i64| {
        println!("check: {what}: {got} (expected {want})");
        if got != want {
            problems.push(format!("{what}: {got}, expected {want}"));
        }
    };
    expect("certificates with notified expiry/revocation alerts", troubled, fails + revs);
    expect("pages for failed renewals", get("pages", "firing", "expiring"), paged);
    expect("escalations for failed renewals", get("escalations", "escalation", "expiring"), escalated);
    expect("resolves of failed-renewal pages", get("pages", "resolved", "expiring"), finished_failures);
    expect("pages for revocations", get("pages", "firing", "revoked"), revs);
    expect("escalations for revocations", get("escalations", "escalation", "revoked"), revs);
    expect("resolves of revocation pages", get("pages", "resolved", "revoked"), revs);
    expect("page reminders", counts.iter().filter(|((r, e, _), _)| r == "pages" && e == "reminder").map(|(_, c)| c).sum(), 0);
    expect("pages for expired certificates", get("pages", "firing", "expired"), 0);
    let json = serde_json::json!({
        "services": n, "days": days, "step_hours": STEP / 3600, "renewals": renewals, "failed_renewals": failures, "revocations": revs,
        "sim_seconds": sim_secs, "notifications": counts.iter().map(|((r, e, k), c)| serde_json::json!({"route": r, "event": e, "kind": k, "count": c})).collect::<Vec<_>>(),
    });
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-alerts-sim.json");
    std::fs::write(&out, serde_json::to_string_pretty(&json)?).with_context(|| format!("writing {}", out.display()))?;
    println!("\nwrote {}", out.display());
    if !problems.is_empty() {
        // The paged alerts that never escalated, for diagnosis.
        let mut stmt = store.conn().prepare(
            "SELECT a.id, c.common_name, a.kind, a.state, a.opened_at, a.resolved_at, a.routes_notified FROM alerts a JOIN certificates c ON c.id = a.cert_id
             WHERE a.routes_notified LIKE '%pages%' AND a.escalated_at IS NULL LIMIT 20",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(format!(
                "alert {} {} {} {} opened {} resolved {:?} told {}",
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)? - START,
                r.get::<_, Option<i64>>(5)?.map(|t| t - START),
                r.get::<_, String>(6)?
            ))
        })?;
        for r in rows {
            println!("  not escalated: {}", r?);
        }
        println!("  last step at {}", last - START);
        bail!("simulation checks failed:\n  {}", problems.join("\n  "));
    }
    Ok(())
}

/// Records `revoked` (as a CRL check would) for the current certificate of each service.
fn mark_revoked(store: &mut Store, names: &[String], now: i64) -> Result<()> {
    let certs = store.certificates(false)?;
    let mut rows = Vec::new();
    for c in certs.iter().filter(|c| c.facts.common_name.as_ref().is_some_and(|n| names.contains(n))) {
        let mut st = certvigil::model::RevocationStatus::unknown("", now);
        st.state = certvigil::model::RevocationState::Revoked;
        st.method = "crl".into();
        st.reason = Some("keyCompromise".into());
        st.revoked_at = Some(now);
        rows.push((c.id, st));
    }
    store.save_revocations(&rows)?;
    Ok(())
}

/// Shares the fleet between the simulator and the scan.
struct ArcSource(Arc<Fleet>);

impl Source for ArcSource {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn kind(&self) -> &'static str {
        self.0.kind()
    }
    fn tags(&self) -> &[String] {
        &[]
    }
    fn list(&self, out: &mut dyn FnMut(Listing)) {
        self.0.list(out)
    }
    fn fetch(&self, location: &str) -> Result<certvigil::sources::Fetched, String> {
        self.0.fetch(location)
    }
    fn passwords(&self) -> Result<Vec<certvigil::config::secret::Secret>, SourceError> {
        Ok(Vec::new())
    }
}
