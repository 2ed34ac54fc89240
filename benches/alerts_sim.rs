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
//! Checks, computed from the run rather than hard-coded (the counts depend on the size and the
//! length of the run): the simulation records every troubled certificate (its fingerprint, when
//! it turned critical, when it was replaced), and the outbox is read per certificate. A healthy
//! certificate causes no notification at all; a failed renewal causes exactly one warning, one
//! page if it reached critical (7 days left) by the last step, one escalation if that page is at
//! least 12 h old (nobody acknowledges), one resolve on each route once replaced, and nothing
//! else but weekly digest reminders; a revocation the same on the pager routes. No page is
//! repeated (no reminder on the pager or escalation route), no certificate is ever in place past
//! its notAfter and no `expired` alert opens. The totals the README quotes are checked against
//! the same relations (pages = failures that reached critical, …). Any failure ends the bench
//! with a non-zero exit after printing every check.
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
/// The pager route's `escalate_after` (see [`config_text`]).
const ESCALATE_AFTER: i64 = 12 * 3600;
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
    fn fetch(&self, location: &str) -> Result<certvigil::sources::Fetched, SourceError> {
        let objects = self.objects.lock().expect("fleet lock");
        let gone = || certvigil::sources::files::FilesError::Read {
            path: location.into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
        };
        Ok(objects.get(location).map(|(_, d)| certvigil::sources::Fetched::bytes(d.clone())).ok_or_else(gone)?)
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
    /// SHA-256 of the current certificate's DER (lowercase hex, as the store keeps it).
    fingerprint: String,
    /// The trouble in progress, an index into the episodes.
    episode: Option<usize>,
}

/// One certificate in trouble, as the simulation made it: what the notifications are checked
/// against, certificate by certificate.
struct Episode {
    service: usize,
    /// The troubled certificate.
    fingerprint: String,
    revocation: bool,
    /// When it turned critical (was paged): 7 days before notAfter for a failed renewal, at
    /// once for a revocation.
    critical_at: i64,
    /// When a new certificate replaced it.
    fixed_at: Option<i64>,
}

fn sha256_hex(der: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(der))
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
            fingerprint: String::new(),
            episode: None,
        })
        .collect();
    let mut episodes: Vec<Episode> = Vec::new();
    // Certificates that expired while still in place (found at the start of a step).
    let mut expired_in_place: Vec<String> = Vec::new();
    let mut renewals = 0u64;
    let mut failures = 0u64;
    let revocations: Vec<usize> = (0..5).map(|k| (k * 997 + 13) % n).collect();
    let mut revoked_serials: HashMap<String, i64> = HashMap::new();

    let gen_started = std::time::Instant::now();
    for s in &mut services {
        let der = issuer.leaf(&s.name, s.issued, lifetime)?;
        s.fingerprint = sha256_hex(&der);
        fleet.objects.lock().expect("lock").insert(s.name.clone(), (format!("{}", s.issued), der));
    }
    let gen_secs = gen_started.elapsed().as_secs_f64();

    let started = std::time::Instant::now();
    let sources: Vec<Box<dyn Source>> = vec![Box::new(ArcSource(Arc::clone(&fleet)))];
    let mut renewal_no = 0u64;
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
                    s.episode = Some(episodes.len());
                    episodes.push(Episode {
                        service: i,
                        fingerprint: s.fingerprint.clone(),
                        revocation: true,
                        critical_at: t,
                        fixed_at: None,
                    });
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
                        s.episode = Some(episodes.len());
                        episodes.push(Episode {
                            service: i,
                            fingerprint: s.fingerprint.clone(),
                            revocation: false,
                            critical_at: s.issued + lifetime - 7 * DAY,
                            fixed_at: None,
                        });
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
            if let Some(e) = s.episode.take() {
                episodes[e].fixed_at = Some(t);
            }
            s.issued = t;
            let der = issuer.leaf(&s.name, t, lifetime)?;
            s.fingerprint = sha256_hex(&der);
            fleet.objects.lock().expect("lock").insert(s.name.clone(), (format!("{t}"), der));
        }
        // No certificate may still be in place once expired.
        expired_in_place.extend(services.iter().filter(|s| s.issued + lifetime <= t).map(|s| format!("{} at {}", s.name, t - START)));
        // Revocation status as a CRL check would record it.
        certvigil::app::scan::scan(&mut store, &sources, true, t, 1, &mut |_| {})?;
        if !newly_revoked.is_empty() {
            mark_revoked(&mut store, &newly_revoked, t)?;
        }
        let (findings, changes) = certvigil::app::evaluate::plan(&store, &settings, t)?;
        store.apply_alert_changes(&changes, &findings, t, &certvigil::notify::payload::json)?;
        t += STEP;
        steps += 1;
    }
    let sim_secs = started.elapsed().as_secs_f64();

    // Count notifications by route, event and kind.
    let mut counts: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    {
        let mut stmt = store
            .conn()
            .context("a SQLite store")?
            .prepare("SELECT route, event, json_extract(payload, '$.kind'), COUNT(*) FROM outbox GROUP BY 1, 2, 3")?;
        let rows =
            stmt.query_map([], |r| Ok(((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?), r.get::<_, i64>(3)?)))?;
        for row in rows {
            let (k, v) = row?;
            counts.insert(k, v);
        }
    }

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

    // Every notification, by the certificate its alert is about.
    let mut per_cert: HashMap<String, BTreeMap<(String, String, String), i64>> = HashMap::new();
    let mut unattributed = 0i64;
    {
        let mut stmt = store.conn().context("a SQLite store")?.prepare(
            "SELECT lower(c.fingerprint), o.route, o.event, json_extract(o.payload, '$.kind'), COUNT(*)
             FROM outbox o LEFT JOIN alerts a ON a.id = o.alert_id LEFT JOIN certificates c ON c.id = a.cert_id GROUP BY 1, 2, 3, 4",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?,
                (r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?),
                r.get::<_, i64>(4)?,
            ))
        })?;
        for row in rows {
            match row? {
                (Some(fp), k, c) => *per_cert.entry(fp).or_default().entry(k).or_default() += c,
                (None, _, c) => unattributed += c,
            }
        }
    }
    let expired_alerts: i64 =
        store.conn().context("a SQLite store")?.query_row("SELECT COUNT(*) FROM alerts WHERE kind = 'expired'", [], |r| r.get(0))?;

    // What each troubled certificate must have caused, from what the simulation did to it: the
    // year's end cuts the last episodes short, so each expectation depends on how far the
    // episode got by the last step. Nobody acknowledges, and every fix comes FIX_AFTER (more
    // than the 12 h escalation delay) after the page, so a page escalates once 12 h have passed.
    let last = t - STEP;
    let by_fingerprint: HashMap<&str, &Episode> = episodes.iter().map(|e| (e.fingerprint.as_str(), e)).collect();
    let mut problems: Vec<String> = Vec::new();
    let mut wrong: Vec<String> = Vec::new();
    let (mut reached_critical, mut escalated, mut fixed) = ([0i64; 2], [0i64; 2], [0i64; 2]);
    for e in &episodes {
        let what = if e.revocation { "revocation" } else { "failed renewal" };
        let kind = if e.revocation { "revoked" } else { "expiring" };
        let (paged, escalates, done) = (e.critical_at <= last, e.critical_at + ESCALATE_AFTER <= last, e.fixed_at.is_some());
        let r = usize::from(e.revocation);
        reached_critical[r] += i64::from(paged);
        escalated[r] += i64::from(escalates);
        fixed[r] += i64::from(done);
        let mut want: Vec<((&str, &str, &str), bool)> = vec![
            (("pages", "firing", kind), paged),
            (("escalations", "escalation", kind), escalates),
            (("pages", "resolved", kind), paged && done),
            (("escalations", "resolved", kind), escalates && done),
        ];
        if !e.revocation {
            // A renewal fails when 30 days are left: the warning window's edge.
            want.push((("warnings", "firing", "expiring"), true));
            want.push((("warnings", "resolved", "expiring"), done));
        }
        let got = per_cert.get(&e.fingerprint);
        let count = |k: (&str, &str, &str)| got.and_then(|g| g.get(&(k.0.into(), k.1.into(), k.2.into()))).copied().unwrap_or(0);
        for (k, expected) in &want {
            if count(*k) != i64::from(*expected) {
                wrong.push(format!(
                    "{} ({what} of {}): {} {} {}: {}, expected {}",
                    services[e.service].name,
                    &e.fingerprint[..12],
                    k.0,
                    k.1,
                    k.2,
                    count(*k),
                    i64::from(*expected)
                ));
            }
        }
        // Nothing else, but weekly reminders (and, for a revoked certificate left in place
        // past its renewal date, an expiry warning) on the digest route.
        for ((route, event, k), c) in got.into_iter().flatten() {
            let listed = want.iter().any(|(w, _)| w.0 == route && w.1 == event && w.2 == k);
            let digest_expiry = route == "warnings" && k == "expiring";
            if !(listed || digest_expiry) {
                wrong.push(format!("{} ({what}): {c} unexpected {route} {event} {k}", services[e.service].name));
            }
        }
    }
    let mut healthy_notified = 0i64;
    for (fp, c) in &per_cert {
        if !by_fingerprint.contains_key(fp.as_str()) {
            healthy_notified += c.values().sum::<i64>();
            wrong.push(format!("certificate {} was never in trouble and caused {c:?}", &fp[..12]));
        }
    }
    let healthy_renewals = renewals as i64 - fixed[0] - fixed[1];
    let [failed_paged, revocations_paged] = reached_critical;
    println!(
        "\nfailed renewals: {fails}, {failed_paged} reached critical (paged), {} still warning-only at the end, {} paged and not yet fixed; \
         revocations: {revs}, {} fixed; healthy renewals: {healthy_renewals}",
        fails - failed_paged,
        failed_paged - fixed[0],
        fixed[1]
    );
    let mut expect = |what: &str, got: i64, want: i64| {
        println!("check: {what}: {got} (expected {want})");
        if got != want {
            problems.push(format!("{what}: {got}, expected {want}"));
        }
    };
    // The published relations, as totals; the per-certificate checks below make each exact.
    expect("certificates with notified alerts = failed renewals + revocations", per_cert.len() as i64, fails + revs);
    expect("notifications for healthy renewals", healthy_notified, 0);
    expect("pages for failed renewals = failures that reached critical", get("pages", "firing", "expiring"), failed_paged);
    expect("escalations for failed renewals = pages at least 12 h old", get("escalations", "escalation", "expiring"), escalated[0]);
    expect("resolves of failed-renewal pages = failures fixed", get("pages", "resolved", "expiring"), fixed[0]);
    expect("escalation resolves of failed renewals = failures fixed", get("escalations", "resolved", "expiring"), fixed[0]);
    expect("warnings for failed renewals = failures", get("warnings", "firing", "expiring"), fails);
    expect("pages for revocations = revocations", get("pages", "firing", "revoked"), revocations_paged);
    expect("revocations paged", revocations_paged, revs);
    expect("escalations for revocations = pages at least 12 h old", get("escalations", "escalation", "revoked"), escalated[1]);
    expect("resolves of revocation pages = revocations fixed", get("pages", "resolved", "revoked"), fixed[1]);
    expect("escalation resolves of revocations = revocations fixed", get("escalations", "resolved", "revoked"), fixed[1]);
    let pager_reminders = counts.iter().filter(|((r, e, _), _)| r != "warnings" && e == "reminder").map(|(_, c)| c).sum();
    expect("reminders on the pager and escalation routes (a page repeated)", pager_reminders, 0);
    expect("alerts for expired certificates", expired_alerts, 0);
    expect("certificates still in place after their notAfter", expired_in_place.len() as i64, 0);
    expect("notifications not tied to a certificate", unattributed, 0);
    expect("certificates whose notifications differ from their episode", wrong.len() as i64, 0);
    for w in wrong.iter().take(20) {
        problems.push(w.clone());
    }
    for x in expired_in_place.iter().take(5) {
        problems.push(format!("expired in place: {x}"));
    }
    let json = serde_json::json!({
        "services": n, "days": days, "step_hours": STEP / 3600, "renewals": renewals, "failed_renewals": failures, "revocations": revs,
        "sim_seconds": sim_secs, "notifications": counts.iter().map(|((r, e, k), c)| serde_json::json!({"route": r, "event": e, "kind": k, "count": c})).collect::<Vec<_>>(),
        "episodes": {
            "failed_renewals": {"total": fails, "reached_critical": failed_paged, "escalated": escalated[0], "fixed": fixed[0]},
            "revocations": {"total": revs, "paged": revocations_paged, "escalated": escalated[1], "fixed": fixed[1]},
            "healthy_renewals": healthy_renewals,
        },
        "checks_failed": problems,
    });
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-alerts-sim.json");
    std::fs::write(&out, serde_json::to_string_pretty(&json)?).with_context(|| format!("writing {}", out.display()))?;
    println!("\nwrote {}", out.display());
    if !problems.is_empty() {
        // The paged alerts that never escalated, for diagnosis.
        let mut stmt = store.conn().context("a SQLite store")?.prepare(
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
    fn fetch(&self, location: &str) -> Result<certvigil::sources::Fetched, SourceError> {
        self.0.fetch(location)
    }
    fn passwords(&self) -> Result<Vec<certvigil::config::secret::Secret>, SourceError> {
        Ok(Vec::new())
    }
}
