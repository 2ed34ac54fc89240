//! The ACME Renewal Information watch (RFC 9773) over the inventory: for every current
//! certificate issued by a watched CA — the `revocation.ari_watch` directories and the CAs of the
//! managed certificates — ask its renewalInfo at most twice a day, honouring Retry-After, at most
//! `revocation.ari_per_pass` certificates a pass, and record the window. A window that moves
//! earlier than the first one seen, or into the past, is how a CA says "replace it now" before a
//! revocation; the policy turns it into `ari-early-renewal`. Run with every revocation pass.
//!
//! renewalInfo is an unauthenticated GET (RFC 9773 §4.1): no ACME account is needed, so any
//! certificate from the CA can be watched, not only those certvigil ordered.

use crate::config::Settings;
use crate::model::UnixTime;
use crate::model::rows::AriWatchRow;
use crate::revocation::ari::{self, Movement};
use crate::store::{AriDue, Store, StoreError};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// renewalInfo requests in flight at once, per directory.
const CONCURRENCY: usize = 8;
/// Largest directory document read.
const MAX_DIRECTORY_BYTES: usize = 256 * 1024;

/// One ACME server and the certificates it issued (by authority key identifier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub directory: String,
    pub ca_bundle: Option<PathBuf>,
    pub issuers: Vec<String>,
}

/// What one watch pass did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AriReport {
    /// Certificates asked about.
    pub asked: usize,
    /// Good answers.
    pub answered: usize,
    /// Answers whose window starts earlier than the first one seen.
    pub moved_earlier: usize,
    /// Answers whose window has passed.
    pub passed: usize,
    /// Certificates whose answer was an error.
    pub errors: usize,
    /// Problems with a whole directory (unreachable, no renewalInfo), one line each.
    pub problems: Vec<String>,
}

impl AriReport {
    pub fn summary(&self) -> String {
        let mut s = format!(
            "ARI: {} certificates asked, {} answered, {} moved earlier, {} past their window, {} errors",
            self.asked, self.answered, self.moved_earlier, self.passed, self.errors
        );
        if !self.problems.is_empty() {
            s.push_str(&format!(" ({})", self.problems.join("; ")));
        }
        s
    }
}

/// The directories to watch: the configured ones, plus each managed certificate's directory for
/// the issuer of the certificate it has installed. Same directory, one target.
pub fn targets(settings: &Settings, store: &Store) -> Result<Vec<Target>, StoreError> {
    let mut by_dir: BTreeMap<String, Target> = BTreeMap::new();
    let mut add = |directory: &str, ca_bundle: Option<PathBuf>, aki: &str| {
        let t = by_dir.entry(directory.to_string()).or_insert_with(|| Target {
            directory: directory.to_string(),
            ca_bundle: ca_bundle.clone(),
            issuers: Vec::new(),
        });
        if t.ca_bundle.is_none() {
            t.ca_bundle = ca_bundle;
        }
        if !t.issuers.iter().any(|a| a == aki) {
            t.issuers.push(aki.to_string());
        }
    };
    for w in &settings.revocation.ari_watch {
        for aki in &w.issuers {
            add(&w.directory, w.ca_bundle.clone(), aki);
        }
    }
    for m in &settings.managed {
        let Some(fp) = store.renewal(&m.name)?.and_then(|r| r.fingerprint) else { continue };
        for c in store.find(&fp)? {
            if let Some(aki) = c.facts.aki.as_deref() {
                add(&m.directory, m.ca_bundle.clone(), aki);
            }
        }
    }
    Ok(by_dir.into_values().collect())
}

/// One pass over every target at `now`.
pub async fn watch(settings: &Settings, store: &Arc<Mutex<Store>>, now: UnixTime) -> Result<AriReport, StoreError> {
    let lock = || store.lock().unwrap_or_else(|p| p.into_inner());
    let targets = targets(settings, &lock())?;
    let mut report = AriReport::default();
    let mut budget = settings.revocation.ari_per_pass;
    for t in targets {
        if budget == 0 {
            break;
        }
        let due = lock().ari_due(&t.issuers, now, budget)?;
        if due.is_empty() {
            continue;
        }
        budget -= due.len();
        let rows = match renewal_info_url(&t).await {
            Ok((client, base)) => ask_all(&client, &base, &t.directory, due, now, &mut report).await,
            Err(problem) => {
                // The directory itself failed: every certificate waits the error interval, so a
                // dead CA is asked once a pass, not once per certificate.
                report.problems.push(format!("{}: {problem}", t.directory));
                due.into_iter().map(|d| failed(&t.directory, d, problem.clone(), now)).collect()
            }
        };
        report.asked += rows.len();
        report.errors += rows.iter().filter(|r| r.error.is_some()).count();
        lock().put_ari_watch(&rows)?;
    }
    Ok(report)
}

/// The client for a target and its directory's `renewalInfo` URL (RFC 9773 §3).
async fn renewal_info_url(t: &Target) -> Result<(reqwest::Client, String), String> {
    let client = crate::issuers::acme::http_client(t.ca_bundle.as_deref()).map_err(|e| e.to_string())?;
    let rsp = client.get(&t.directory).send().await.map_err(|e| format!("directory: {}", crate::issuers::acme::error_chain(&e)))?;
    if !rsp.status().is_success() {
        return Err(format!("directory: HTTP {}", rsp.status().as_u16()));
    }
    let body = read_bounded(rsp, MAX_DIRECTORY_BYTES).await?;
    let d: serde_json::Value = serde_json::from_slice(&body).map_err(|e| format!("directory is not JSON: {e}"))?;
    match d.get("renewalInfo").and_then(|u| u.as_str()) {
        Some(u) if u.starts_with("https://") || u.starts_with("http://") => Ok((client, u.trim_end_matches('/').to_string())),
        _ => Err("the directory offers no renewalInfo (the CA does not support RFC 9773)".into()),
    }
}

async fn read_bounded(mut rsp: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = rsp.chunk().await.map_err(|e| e.to_string())? {
        if out.len() + chunk.len() > limit {
            return Err(format!("answer larger than {limit} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Asks about every due certificate, [`CONCURRENCY`] at a time, and returns the rows to record.
async fn ask_all(
    client: &reqwest::Client,
    base: &str,
    directory: &str,
    due: Vec<AriDue>,
    now: UnixTime,
    report: &mut AriReport,
) -> Vec<AriWatchRow> {
    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    let mut rows = Vec::with_capacity(due.len());
    for d in due {
        let Some(id) = crate::renewal::ari_cert_id(Some(&d.aki), &d.serial) else {
            rows.push(failed(directory, d, "no RFC 9773 identifier (no authority key identifier or serial)".into(), now));
            continue;
        };
        let (client, url, permits) = (client.clone(), format!("{base}/{id}"), Arc::clone(&permits));
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let answer = ask(&client, &url, now).await;
            (d, id, answer)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let Ok((d, id, answer)) = done else { continue };
        let row = match answer {
            Ok((w, retry)) => {
                report.answered += 1;
                let first = d.before.as_ref().and_then(|b| b.first);
                let movement = ari::movement(first, &w, now);
                let moved_at = match movement {
                    Movement::Steady => None,
                    Movement::Earlier { .. } => {
                        report.moved_earlier += 1;
                        d.before.as_ref().and_then(|b| b.moved_at).or(Some(now))
                    }
                    Movement::Passed => {
                        report.passed += 1;
                        d.before.as_ref().and_then(|b| b.moved_at).or(Some(now))
                    }
                };
                if movement != Movement::Steady {
                    tracing::warn!(cert_id = d.cert_id, ari_id = %id, start = w.start, end = w.end, "the CA moved its renewal window earlier");
                }
                AriWatchRow {
                    cert_id: d.cert_id,
                    directory: directory.to_string(),
                    ari_id: id,
                    window: Some((w.start, w.end)),
                    explanation_url: w.explanation_url,
                    first: first.or(Some((w.start, w.end))),
                    moved_at,
                    polled_at: now,
                    next_poll: ari::next_poll(now, retry, d.not_after),
                    error: None,
                }
            }
            Err(e) => failed(directory, d, e, now),
        };
        rows.push(row);
    }
    rows.sort_by_key(|r| r.cert_id);
    rows
}

/// One renewalInfo request: the window and the Retry-After.
async fn ask(client: &reqwest::Client, url: &str, now: UnixTime) -> Result<(ari::Window, Option<i64>), String> {
    let rsp = client.get(url).send().await.map_err(|e| crate::issuers::acme::error_chain(&e))?;
    let status = rsp.status().as_u16();
    let retry = ari::retry_after(rsp.headers().get("retry-after").and_then(|v| v.to_str().ok()), now);
    if status == 404 {
        return Err("the CA has no renewal information for it (HTTP 404)".into());
    }
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}"));
    }
    let body = read_bounded(rsp, ari::MAX_ANSWER_BYTES).await?;
    Ok((ari::parse(&body).map_err(|e| e.to_string())?, retry))
}

/// The row of a certificate whose question failed: asked again after the shortest interval.
fn failed(directory: &str, d: AriDue, error: String, now: UnixTime) -> AriWatchRow {
    let id = crate::renewal::ari_cert_id(Some(&d.aki), &d.serial).unwrap_or_default();
    let before = d.before.unwrap_or(AriWatchRow {
        cert_id: d.cert_id,
        directory: directory.to_string(),
        ari_id: id.clone(),
        window: None,
        explanation_url: None,
        first: None,
        moved_at: None,
        polled_at: now,
        next_poll: now,
        error: None,
    });
    AriWatchRow {
        directory: directory.to_string(),
        ari_id: id,
        polled_at: now,
        next_poll: now + ari::MIN_POLL_INTERVAL,
        error: Some(error),
        ..before
    }
}
