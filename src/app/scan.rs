//! The scan driver: lists each source, fetches and parses what changed on worker threads, and
//! writes the results through one store writer.
//!
//! Three stages per source, connected by bounded channels so memory stays flat whatever the
//! number of objects: a lister (stat only; unchanged objects stop here), `workers` fetchers and
//! parsers, and the writer on the calling thread (SQLite has one writer anyway). A new source
//! kind plugs into this pipeline through the `Source` trait; it never writes to the store.

use crate::model::UnixTime;
use crate::sources::{Listing, Source};
use crate::store::{ObjectOutcome, RunRow, Store, StoreError, object_key};
use crate::x509::{self, Parsed};
use sha2::Digest;
use std::collections::HashSet;
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

impl ScanReport {
    /// One line, as `certvigil scan` prints it and the daemon logs it.
    pub fn summary(&self) -> String {
        let r = &self.run;
        format!(
            "scan {}: {} objects ({} read), {} certificate sightings ({} new certificates, {} gone), {} error{}",
            r.id,
            r.objects_seen,
            r.objects_read,
            r.certs_seen,
            r.certs_new,
            r.certs_gone,
            r.errors,
            if r.errors == 1 { "" } else { "s" }
        )
    }
}

impl SourceSummary {
    /// One line per source under the report's summary.
    pub fn summary(&self) -> String {
        format!(
            "{} ({}): {} objects, {} read, {} errors, {} vanished",
            self.name, self.kind, self.objects, self.read, self.errors, self.vanished
        )
    }
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

/// Objects per channel message.
const BATCH: usize = 32;

enum Msg {
    Unchanged(String),
    Read {
        location: String,
        stamp: String,
        content_sha256: String,
        parsed: Option<Parsed>,
        meta: Option<serde_json::Value>,
        key: Option<Box<crate::sources::KeyObject>>,
    },
    Failed {
        location: String,
        message: String,
    },
    Unavailable {
        prefix: String,
        message: String,
    },
    Images(Vec<crate::sources::ImageFinding>),
}

struct Job {
    location: String,
    stamp: String,
    known_sha: Option<[u8; 32]>,
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
    let retired: Vec<String> =
        if all_sources { store.source_names()?.into_iter().filter(|n| !names.contains(n)).collect() } else { Vec::new() };
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
        let mut remaining: HashSet<u64> = known.iter().filter(|(_, k)| !k.vanished).map(|(key, _)| *key).collect();
        let mut unavailable: Vec<String> = Vec::new();
        let mut prog = Progress { source: name.clone(), ..Default::default() };

        // Work travels in batches: one channel operation per batch, not per file.
        let (job_tx, job_rx) = mpsc::sync_channel::<Vec<Job>>(8);
        let (msg_tx, msg_rx) = mpsc::sync_channel::<Vec<Msg>>(16);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let result: Result<(), StoreError> = std::thread::scope(|scope| {
            let lister_tx = msg_tx.clone();
            let known_ref = &known;
            scope.spawn(move || {
                let mut jobs: Vec<Job> = Vec::with_capacity(BATCH);
                let mut msgs: Vec<Msg> = Vec::with_capacity(BATCH);
                source.list(&mut |listing| {
                    let msg = match listing {
                        Listing::Object { location, stamp } => match known_ref.get(&object_key(&location)) {
                            Some(k) if k.stamp == object_key(&stamp) && !k.has_error => Msg::Unchanged(location),
                            k => {
                                let known_sha = k.filter(|k| !k.has_error).map(|k| k.content_sha256);
                                jobs.push(Job { location, stamp, known_sha });
                                if jobs.len() >= BATCH {
                                    let _ = job_tx.send(std::mem::replace(&mut jobs, Vec::with_capacity(BATCH)));
                                }
                                return;
                            }
                        },
                        Listing::Error { location, message } => Msg::Failed { location, message },
                        Listing::Unavailable { prefix, message } => Msg::Unavailable { prefix, message },
                        Listing::ImageAudit { findings } => Msg::Images(findings),
                    };
                    msgs.push(msg);
                    if msgs.len() >= BATCH {
                        let _ = lister_tx.send(std::mem::replace(&mut msgs, Vec::with_capacity(BATCH)));
                    }
                });
                if !jobs.is_empty() {
                    let _ = job_tx.send(jobs);
                }
                if !msgs.is_empty() {
                    let _ = lister_tx.send(msgs);
                }
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
                        let Ok(batch) = job else { return };
                        let _ = tx.send(batch.into_iter().map(|job| process(source.as_ref(), job, passwords)).collect());
                    }
                });
            }
            drop(msg_tx);
            for msg in msg_rx.into_iter().flatten() {
                match msg {
                    Msg::Unchanged(location) => {
                        let k = object_key(&location);
                        remaining.remove(&k);
                        writer.record(&name, &location, known.get(&k), ObjectOutcome::Unchanged)?;
                    }
                    Msg::Read { location, stamp, content_sha256, parsed, meta, key: mut key_object } => {
                        let key = object_key(&location);
                        remaining.remove(&key);
                        prog.read += 1;
                        let k = known.get(&key);
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
                        // A trust root is checked against the one trusted before at its place.
                        if let Some(k) = key_object.as_deref_mut().filter(|k| k.class == "trust-root") {
                            super::trust::track_root(&mut writer, &name, &location, k)?;
                        }
                        // After `record`, which creates the object's row.
                        if meta.is_some() || key_object.is_some() {
                            writer.object_extras(&name, &location, meta.as_ref(), key_object.as_deref())?;
                        }
                    }
                    Msg::Failed { location, message } => {
                        remaining.remove(&object_key(&location));
                        prog.errors += 1;
                        tracing::warn!(source = %name, location = %location, error = %message, "cannot read object");
                        writer.record(&name, &location, known.get(&object_key(&location)), ObjectOutcome::Failed { message: &message })?;
                    }
                    Msg::Unavailable { prefix, message } => {
                        prog.errors += 1;
                        tracing::warn!(source = %name, location = %prefix, error = %message, "cannot list");
                        writer.source_error(&name, &prefix, &format!("cannot list: {message}"))?;
                        unavailable.push(prefix);
                        continue;
                    }
                    Msg::Images(findings) => {
                        tracing::info!(source = %name, findings = findings.len(), "image audit done");
                        writer.replace_image_findings(&name, &findings)?;
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
        let mut gone: Vec<String> = Vec::new();
        if !remaining.is_empty() {
            writer.each_known_location(&name, &mut |loc| {
                if remaining.contains(&object_key(loc)) && !unavailable.iter().any(|p| under(loc, p)) {
                    gone.push(loc.to_string());
                }
            })?;
        }
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
        let mut locations: Vec<String> = Vec::new();
        writer.each_known_location(name, &mut |loc| locations.push(loc.to_string()))?;
        for loc in &locations {
            writer.vanished(name, loc)?;
        }
        tracing::info!(source = %name, objects = locations.len(), "source no longer configured: its sightings are marked gone");
    }
    let run = writer.finish()?;
    Ok(ScanReport { run, sources: summaries })
}

/// Whether `location` lies under an unavailable `prefix`: the empty prefix is the whole
/// source (a token, an account that could not be listed at all); a prefix ending in `/` or `:`
/// (`aws:acm:<region>:`) covers everything after it.
fn under(location: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || location == prefix
        || location.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/') || prefix.ends_with('/') || prefix.ends_with(':'))
}

fn process(source: &dyn Source, job: Job, passwords: &[&str]) -> Msg {
    match source.fetch(&job.location) {
        Err(e) => Msg::Failed { location: job.location, message: e.to_string() },
        Ok(fetched) => {
            let bytes = &fetched.bytes;
            let digest: [u8; 32] = sha2::Sha256::digest(bytes).into();
            let parsed = if job.known_sha == Some(digest) {
                None
            } else if bytes.is_empty() && (fetched.key.is_some() || fetched.meta.is_some()) {
                // A key object, or an object the source read and found no certificate in (a
                // secret holding a password): nothing to parse, and not an error.
                Some(Parsed::default())
            } else if fetched.passwords.is_empty() {
                Some(x509::parse_object(bytes, passwords))
            } else {
                // The object's own passwords first (a keystore's sibling key), then the source's.
                let mut all: Vec<&str> = fetched.passwords.iter().map(|s| s.expose()).collect();
                all.extend(passwords.iter().copied());
                Some(x509::parse_object(bytes, &all))
            };
            let content_sha256 = hex::encode(digest);
            Msg::Read {
                location: job.location,
                stamp: job.stamp,
                content_sha256,
                parsed,
                meta: fetched.meta,
                key: fetched.key.map(Box::new),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::under;

    #[test]
    fn prefix_matching_respects_components() {
        assert!(under("/a/b/c.pem", "/a/b"));
        assert!(under("/a/b", "/a/b"));
        assert!(!under("/a/bc/d.pem", "/a/b"));
        assert!(under("/a/b/c.pem", "/a/"));
        assert!(under("aws:acm:us-east-1:arn:aws:acm:us-east-1:1:certificate/x", "aws:acm:us-east-1:"));
        assert!(!under("aws:acm:us-east-10:arn", "aws:acm:us-east-1"));
        assert!(under("pkcs11:token=t;id=%01;type=cert", ""));
    }
}
