//! The scan driver: lists each source, fetches and parses what changed on worker threads, and
//! writes the results through one store writer.
//!
//! Three stages per source, connected by bounded channels so memory stays flat whatever the
//! number of objects: a lister (stat only; unchanged objects stop here), `workers` fetchers and
//! parsers, and the writer on the calling thread (SQLite has one writer anyway).

use crate::model::UnixTime;
use crate::sources::{Listing, Source};
use crate::store::{KnownObject, ObjectOutcome, RunRow, Store, StoreError};
use crate::x509::{self, Parsed};
use sha2::Digest;
use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// Progress of a running scan, for a progress bar.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub source: String,
    pub objects: u64,
    pub read: u64,
    pub errors: u64,
}

/// What one scan did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScanReport {
    pub run: RunRow,
    pub sources: Vec<SourceSummary>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SourceSummary {
    pub name: String,
    pub kind: String,
    pub objects: u64,
    pub read: u64,
    pub errors: u64,
    pub vanished: u64,
}

enum Msg {
    Unchanged(String),
    Read { location: String, stamp: String, content_sha256: String, parsed: Option<Parsed> },
    Failed { location: String, message: String },
    Unavailable { prefix: String, message: String },
}

struct Job {
    location: String,
    stamp: String,
    known_sha: Option<String>,
}

/// Scans `sources` once. `all_sources` says these are every configured source, so sources
/// the store knows but the configuration no longer has are retired (their sightings gone).
pub fn scan(
    store: &mut Store,
    sources: &[Box<dyn Source>],
    all_sources: bool,
    now: UnixTime,
    workers: usize,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ScanReport, StoreError> {
    let names: Vec<String> = sources.iter().map(|s| s.name().to_string()).collect();
    let retired: Vec<String> = if all_sources {
        let mut stmt = store.conn().prepare("SELECT name FROM sources")?;
        let known: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        known.into_iter().filter(|n| !names.contains(n)).collect()
    } else {
        Vec::new()
    };
    let mut writer = store.begin_scan(now, &names)?;
    let mut summaries = Vec::new();
    for source in sources {
        let name = source.name().to_string();
        writer.register_source(&name, source.kind(), source.tags())?;
        let mut summary = SourceSummary { name: name.clone(), kind: source.kind().to_string(), ..Default::default() };
        let secrets = match source.passwords() {
            Ok(s) => s,
            Err(e) => {
                writer.source_error(&name, "(configuration)", &e.to_string())?;
                summary.errors += 1;
                Vec::new()
            }
        };
        let passwords: Vec<&str> = secrets.iter().map(|s| s.expose()).collect();
        let known = writer.known_objects(&name)?;
        let mut remaining: HashSet<&str> = known.keys().map(String::as_str).collect();
        let mut unavailable: Vec<String> = Vec::new();
        let mut prog = Progress { source: name.clone(), ..Default::default() };

        let (job_tx, job_rx) = mpsc::sync_channel::<Job>(256);
        let (msg_tx, msg_rx) = mpsc::sync_channel::<Msg>(256);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let result: Result<(), StoreError> = std::thread::scope(|scope| {
            let lister_tx = msg_tx.clone();
            let known_ref = &known;
            scope.spawn(move || {
                source.list(&mut |listing| {
                    let msg = match listing {
                        Listing::Object { location, stamp } => match known_ref.get(&location) {
                            Some(k) if k.stamp == stamp && k.error.is_none() => Msg::Unchanged(location),
                            k => {
                                let known_sha = k.map(|k| k.content_sha256.clone()).filter(|_| k.is_some_and(|k| k.error.is_none()));
                                let _ = job_tx.send(Job { location, stamp, known_sha });
                                return;
                            }
                        },
                        Listing::Error { location, message } => Msg::Failed { location, message },
                        Listing::Unavailable { prefix, message } => Msg::Unavailable { prefix, message },
                    };
                    let _ = lister_tx.send(msg);
                });
                // job_tx drops here: workers finish when the queue drains.
            });
            for _ in 0..workers.max(1) {
                let rx = Arc::clone(&job_rx);
                let tx = msg_tx.clone();
                let passwords = &passwords;
                scope.spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        let _ = tx.send(process(source.as_ref(), job, passwords));
                    }
                });
            }
            drop(msg_tx);
            for msg in msg_rx {
                match msg {
                    Msg::Unchanged(location) => {
                        remaining.remove(location.as_str());
                        writer.record(&name, &location, known.get(&location), ObjectOutcome::Unchanged)?;
                    }
                    Msg::Read { location, stamp, content_sha256, parsed } => {
                        remaining.remove(location.as_str());
                        prog.read += 1;
                        let k = known.get(&location);
                        match &parsed {
                            None => writer.record(&name, &location, k, ObjectOutcome::SameContent { stamp: &stamp })?,
                            Some(p) => {
                                if !p.errors.is_empty() {
                                    prog.errors += 1;
                                    for e in &p.errors {
                                        tracing::warn!(source = %name, location = %location, error = %e, "cannot read part of object");
                                    }
                                }
                                writer.record(
                                    &name,
                                    &location,
                                    k,
                                    ObjectOutcome::Parsed { stamp: &stamp, content_sha256: &content_sha256, parsed: p },
                                )?
                            }
                        }
                    }
                    Msg::Failed { location, message } => {
                        remaining.remove(location.as_str());
                        prog.errors += 1;
                        tracing::warn!(source = %name, location = %location, error = %message, "cannot read object");
                        writer.record(&name, &location, known.get(&location), ObjectOutcome::Failed { message: &message })?;
                    }
                    Msg::Unavailable { prefix, message } => {
                        prog.errors += 1;
                        tracing::warn!(source = %name, location = %prefix, error = %message, "cannot list");
                        writer.source_error(&name, &prefix, &format!("cannot list: {message}"))?;
                        unavailable.push(prefix);
                        continue;
                    }
                }
                prog.objects += 1;
                if prog.objects.is_multiple_of(512) {
                    progress(&prog);
                }
            }
            Ok(())
        });
        result?;
        // Objects seen before and not listed now are gone, unless they sit below a part of
        // the source that could not be listed this time.
        let mut gone: Vec<&str> = remaining.into_iter().filter(|loc| !unavailable.iter().any(|p| under(loc, p))).collect();
        gone.sort_unstable();
        for loc in &gone {
            writer.vanished(&name, loc)?;
        }
        summary.objects = prog.objects;
        summary.read = prog.read;
        summary.errors += prog.errors;
        summary.vanished = gone.len() as u64;
        progress(&prog);
        writer.finish_source(&name)?;
        summaries.push(summary);
    }
    for name in &retired {
        let known = writer.known_objects(name)?;
        let mut locations: Vec<&String> = known.keys().collect();
        locations.sort_unstable();
        for loc in locations {
            writer.vanished(name, loc)?;
        }
        tracing::info!(source = %name, objects = known.len(), "source no longer configured: its sightings are marked gone");
    }
    let run = writer.finish()?;
    Ok(ScanReport { run, sources: summaries })
}

fn under(location: &str, prefix: &str) -> bool {
    location == prefix || location.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/') || prefix.ends_with('/'))
}

fn process(source: &dyn Source, job: Job, passwords: &[&str]) -> Msg {
    match source.fetch(&job.location) {
        Err(message) => Msg::Failed { location: job.location, message },
        Ok(bytes) => {
            let content_sha256 = hex::encode(sha2::Sha256::digest(&bytes));
            let parsed =
                if job.known_sha.as_deref() == Some(content_sha256.as_str()) { None } else { Some(x509::parse_object(&bytes, passwords)) };
            Msg::Read { location: job.location, stamp: job.stamp, content_sha256, parsed }
        }
    }
}

/// Known-object state, re-exported for sources' tests.
pub type Known = HashMap<String, KnownObject>;

#[cfg(test)]
mod tests {
    use super::under;

    #[test]
    fn prefix_matching_respects_components() {
        assert!(under("/a/b/c.pem", "/a/b"));
        assert!(under("/a/b", "/a/b"));
        assert!(!under("/a/bc/d.pem", "/a/b"));
        assert!(under("/a/b/c.pem", "/a/"));
    }
}
