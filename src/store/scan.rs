//! Writing one scan run: objects, certificates, sightings, history and errors.
//!
//! Writes are batched into transactions of [`BATCH`] objects so that a large scan neither holds
//! one huge transaction nor pays a commit per file; the gone-marking that depends on the whole
//! scan happens in the final transaction. An interrupted scan leaves complete batches behind
//! and its run row says `running`; the next scan simply continues from the stored state.
//!
//! Inside a transaction, parsed objects wait in a [`Queue`] of up to [`QUEUE`] objects and are
//! written together ([`ScanWriter::flush`]): their certificates in multi-row inserts, the ids of
//! the known ones in one lookup, their sightings, history, errors and object rows in multi-row
//! inserts again. On PostgreSQL that is a few round trips per few hundred files instead of
//! three or more per file; the rows and their order are those that writing each object on its
//! own would give (the store suite checks it on both engines).

use super::db::{Db, Dialect, Owned, params};
use super::{Result, RunRow};
use crate::model::UnixTime;
use crate::x509::Parsed;
use std::collections::{HashMap, HashSet};

const BATCH: usize = 10_000;

/// Parsed objects that wait to be written together.
const QUEUE: usize = 512;

/// Rows written later, in the order they were made: a flush writes each table's rows in one
/// go, and the ids the engine gives them follow that order.
#[derive(Default)]
struct Rows {
    /// `cert_history (cert_id, at, event, source, location, detail)`.
    history: Vec<Owned>,
    /// `scan_errors (run_id, source, location, message)`.
    errors: Vec<Owned>,
    /// `sightings (cert_id, source, location, detail, first_seen, last_seen)`.
    sightings: Vec<Owned>,
    /// `objects (source, location, stamp, content_sha256, format, certs, keys, error, first_seen, meta)`.
    objects: Vec<Owned>,
}

impl Rows {
    fn is_empty(&self) -> bool {
        self.history.is_empty() && self.errors.is_empty() && self.sightings.is_empty() && self.objects.is_empty()
    }
}

/// Parsed objects of one source not written yet, and their distinct certificates.
#[derive(Default)]
struct Queue {
    source: String,
    objects: Vec<Queued>,
    /// Locations queued, so that an object listed twice is written in order.
    locations: HashSet<String>,
    /// Each distinct certificate's row for `certificates`, [`CERT_COLUMNS`] values each.
    cert_rows: Vec<Owned>,
    fingerprints: Vec<String>,
    by_fingerprint: HashMap<String, usize>,
}

struct Queued {
    location: String,
    known: bool,
    stamp: String,
    content_sha256: String,
    format: Option<String>,
    keys: i64,
    errors: Vec<String>,
    /// Index into the queue's certificates, and where in the object.
    certs: Vec<(usize, String)>,
    meta: Option<String>,
}

pub(super) const CERT_COLUMNS: usize = 27;

/// Where a queued certificate stands once its row is written.
#[derive(Clone, Copy)]
struct CertState {
    id: i64,
    /// Inserted by this flush and not yet met in an object: its first sighting is its discovery.
    fresh: bool,
    /// Marked gone before this scan.
    gone: bool,
}

/// What the scan learned about one listed object.
#[derive(Debug)]
pub enum ObjectOutcome<'a> {
    /// Listed with the stamp stored last time and no stored error: nothing was read.
    Unchanged,
    /// A new stamp, but the content hash is the one stored: nothing was parsed.
    SameContent { stamp: &'a str },
    /// Read and parsed.
    Parsed { stamp: &'a str, content_sha256: &'a str, parsed: &'a Parsed },
    /// Listed but could not be read. Its sightings are kept: a transient failure is not a
    /// disappearance.
    Failed { message: &'a str },
}

/// The stored change-detection state of one object, kept compact: a rescan of a large
/// source holds one of these per object in memory. Stamps and locations are compared by a
/// 64-bit hash ([`key`]); a collision could only make one changed file look unchanged, with a
/// probability far below that of a disk error.
#[derive(Debug, Clone, Copy)]
pub struct KnownObject {
    pub stamp: u64,
    pub content_sha256: [u8; 32],
    pub certs: i64,
    pub has_error: bool,
    /// No longer listed; kept so that a returning object finds its old sightings.
    pub vanished: bool,
}

/// A stable 64-bit hash for stamps and locations within one process.
pub fn key(s: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(s)
}

/// Known objects of one source, by [`key`] of their location.
pub type KnownObjects = HashMap<u64, KnownObject>;

pub struct ScanWriter<'c> {
    pub(super) conn: &'c Db,
    run_id: i64,
    pub(super) now: UnixTime,
    pending: usize,
    in_tx: bool,
    touched: HashSet<i64>,
    stats: Stats,
    queue: Queue,
    rows: Rows,
    /// Each registered source's kind, for filing its errors under a v4 source kind.
    kinds: HashMap<String, String>,
    /// Sources that met a source-level error in this run ([`ScanWriter::source_error`]).
    source_failed: HashSet<String>,
    /// Errors of this run by (source, v4 source kind, reason): added to `source_errors` when
    /// the run finishes.
    error_counts: std::collections::BTreeMap<(String, &'static str, &'static str), i64>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    objects_seen: i64,
    objects_read: i64,
    certs_seen: i64,
    certs_new: i64,
    certs_gone: i64,
    errors: i64,
}

impl<'c> ScanWriter<'c> {
    pub(super) fn begin(conn: &'c Db, now: UnixTime, sources: &[String]) -> Result<Self> {
        let names = serde_json::to_string(sources).unwrap_or_else(|_| "[]".into());
        let run_id =
            conn.query_row("INSERT INTO scan_runs (started_at, sources) VALUES (?1, ?2) RETURNING id", params![now, names], |r| r.get(0))?;
        Ok(ScanWriter {
            conn,
            run_id,
            now,
            pending: 0,
            in_tx: false,
            touched: HashSet::new(),
            stats: Stats::default(),
            queue: Queue::default(),
            rows: Rows::default(),
            kinds: HashMap::new(),
            source_failed: HashSet::new(),
            error_counts: Default::default(),
        })
    }

    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    pub(super) fn tx(&mut self) -> Result<()> {
        if !self.in_tx {
            self.conn.execute_batch(match self.conn.dialect() {
                Dialect::Sqlite => "BEGIN IMMEDIATE",
                Dialect::Postgres => "BEGIN",
            })?;
            self.in_tx = true;
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<()> {
        self.pending += 1;
        if self.pending >= BATCH {
            self.commit()?;
        } else if self.queue.objects.len() >= QUEUE || self.rows.history.len() >= QUEUE * 4 {
            self.flush()?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        if self.in_tx {
            self.flush()?;
            self.conn.execute_batch("COMMIT")?;
            self.in_tx = false;
        }
        self.pending = 0;
        Ok(())
    }

    /// Records the source's configuration (kind, tags) for filters and routing.
    pub fn register_source(&mut self, name: &str, kind: &str, tags: &[String]) -> Result<()> {
        self.tx()?;
        self.kinds.insert(name.to_string(), kind.to_string());
        let tags = serde_json::to_string(tags).unwrap_or_else(|_| "[]".into());
        self.conn.execute(
            "INSERT INTO sources (name, kind, tags) VALUES (?1, ?2, ?3)
             ON CONFLICT(name) DO UPDATE SET kind = excluded.kind, tags = excluded.tags",
            params![name, kind, tags],
        )?;
        Ok(())
    }

    /// Change-detection state of every object the source had last time.
    pub fn known_objects(&mut self, source: &str) -> Result<KnownObjects> {
        self.flush()?;
        let mut out = KnownObjects::new();
        self.conn.query_each(
            "SELECT location, stamp, content_sha256, certs, CASE WHEN error IS NULL THEN 0 ELSE 1 END,
                    CASE WHEN vanished_at IS NULL THEN 0 ELSE 1 END
             FROM objects WHERE source = ?1",
            params![source],
            |r| {
                let location: &str = r.get_ref(0)?.as_str()?;
                let stamp: &str = r.get_ref(1)?.as_str()?;
                let mut content_sha256 = [0u8; 32];
                let _ = hex::decode_to_slice(r.get_ref(2)?.as_str()?, &mut content_sha256);
                out.insert(
                    key(location),
                    KnownObject { stamp: key(stamp), content_sha256, certs: r.get(3)?, has_error: r.get(4)?, vanished: r.get(5)? },
                );
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Every location the source had, streamed to `f` (for finding what vanished).
    pub fn each_known_location(&mut self, source: &str, f: &mut dyn FnMut(&str)) -> Result<()> {
        self.flush()?;
        self.conn.query_each(
            "SELECT location FROM objects WHERE source = ?1 AND vanished_at IS NULL ORDER BY location",
            params![source],
            |r| {
                f(r.get_ref(0)?.as_str()?);
                Ok(())
            },
        )
    }

    /// Records an error that belongs to the source or a location rather than one object's
    /// content (a missing directory, a permission problem).
    pub fn source_error(&mut self, source: &str, location: &str, message: &str) -> Result<()> {
        self.tx()?;
        self.source_failed.insert(source.to_string());
        self.error_row(source, location, message)?;
        self.tick()
    }

    fn error_row(&mut self, source: &str, location: &str, message: &str) -> Result<()> {
        self.stats.errors += 1;
        let kind = self.kinds.get(source).map(String::as_str).unwrap_or("");
        let key = (
            source.to_string(),
            crate::model::exporter::source_kind(kind, location),
            crate::model::exporter::error_reason(kind, location, message),
        );
        *self.error_counts.entry(key).or_insert(0) += 1;
        let run_id = self.run_id;
        self.rows.errors.extend([Owned::Int(run_id), text(source), text(location), text(message)]);
        Ok(())
    }

    fn history(&mut self, cert_id: i64, event: &str, source: &str, location: &str, detail: Option<&str>) {
        let now = self.now;
        self.rows.history.extend([Owned::Int(cert_id), Owned::of(&now), text(event), text(source), text(location), Owned::of(&detail)]);
    }

    /// Applies what the scan learned about one listed object. `known` is its stored state.
    pub fn record(&mut self, source: &str, location: &str, known: Option<&KnownObject>, outcome: ObjectOutcome<'_>) -> Result<()> {
        self.tx()?;
        self.stats.objects_seen += 1;
        match outcome {
            ObjectOutcome::Unchanged => {
                self.stats.certs_seen += known.map(|k| k.certs).unwrap_or(0);
            }
            ObjectOutcome::SameContent { stamp } => {
                self.stats.objects_read += 1;
                self.stats.certs_seen += known.map(|k| k.certs).unwrap_or(0);
                self.conn.execute(
                    "UPDATE objects SET stamp = ?3, vanished_at = NULL WHERE source = ?1 AND location = ?2",
                    params![source, location, stamp],
                )?;
            }
            ObjectOutcome::Failed { message } => {
                self.flush()?;
                self.error_row(source, location, message)?;
                // An empty stamp forces a re-read next time; sightings stay as they were.
                self.conn.execute(
                    "INSERT INTO objects (source, location, stamp, content_sha256, certs, keys, error, first_seen)
                         VALUES (?1, ?2, '', '', 0, 0, ?3, ?4)
                         ON CONFLICT(source, location) DO UPDATE SET stamp = '', error = excluded.error, vanished_at = NULL",
                    params![source, location, message, self.now],
                )?;
            }
            ObjectOutcome::Parsed { stamp, content_sha256, parsed } => {
                self.stats.objects_read += 1;
                self.enqueue(source, location, known.is_some(), stamp, content_sha256, parsed)?;
            }
        }
        self.tick()
    }

    /// Queues a parsed object; it is written by the next [`flush`](Self::flush).
    fn enqueue(&mut self, source: &str, location: &str, known: bool, stamp: &str, content_sha256: &str, parsed: &Parsed) -> Result<()> {
        if self.queue.source != source || self.queue.locations.contains(location) {
            self.flush()?;
            self.queue.source = source.to_string();
        }
        let now = self.now;
        let q = &mut self.queue;
        let mut certs = Vec::with_capacity(parsed.certs.len());
        for found in &parsed.certs {
            let f = &found.facts;
            let index = match q.by_fingerprint.get(&f.fingerprint.0) {
                Some(i) => *i,
                None => {
                    q.cert_rows.extend(cert_row(f, &found.der, now));
                    q.fingerprints.push(f.fingerprint.0.clone());
                    q.by_fingerprint.insert(f.fingerprint.0.clone(), q.fingerprints.len() - 1);
                    q.fingerprints.len() - 1
                }
            };
            certs.push((index, found.detail.clone()));
        }
        q.locations.insert(location.to_string());
        q.objects.push(Queued {
            location: location.to_string(),
            known,
            stamp: stamp.to_string(),
            content_sha256: content_sha256.to_string(),
            format: parsed.format.map(|f| f.to_string()),
            keys: parsed.keys.len() as i64,
            errors: parsed.errors.iter().map(ToString::to_string).collect(),
            certs,
            meta: None,
        });
        Ok(())
    }

    /// Writes the queued objects and every row made so far.
    ///
    /// A certificate met for the first time is inserted and its first sighting is its
    /// discovery; one already stored is looked up, and if it had been marked gone it has
    /// returned. A sighting already stored is refreshed (a `sighted` event if it had gone), a new
    /// one inserted (a `sighted` event unless the certificate was just discovered there); a
    /// known object's stored sightings not met again are unsighted. The same certificate twice
    /// in one object is one sighting.
    fn flush(&mut self) -> Result<()> {
        if !self.queue.objects.is_empty() {
            let q = std::mem::take(&mut self.queue);
            self.resolve(q)?;
        }
        if self.rows.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        let none = |_: &super::db::Row<'_>| Ok(());
        self.conn.insert_rows(
            "INSERT INTO sightings (cert_id, source, location, detail, first_seen, last_seen)",
            "",
            6,
            &rows.sightings,
            none,
        )?;
        self.conn.insert_rows("INSERT INTO cert_history (cert_id, at, event, source, location, detail)", "", 6, &rows.history, none)?;
        self.conn.insert_rows("INSERT INTO scan_errors (run_id, source, location, message)", "", 4, &rows.errors, none)?;
        self.conn.insert_rows(
            "INSERT INTO objects (source, location, stamp, content_sha256, format, certs, keys, error, first_seen, meta)",
            "ON CONFLICT(source, location) DO UPDATE SET stamp = excluded.stamp, content_sha256 = excluded.content_sha256,
               format = excluded.format, certs = excluded.certs, keys = excluded.keys, error = excluded.error, vanished_at = NULL,
               meta = COALESCE(excluded.meta, objects.meta)",
            10,
            &rows.objects,
            none,
        )?;
        Ok(())
    }

    /// Turns queued objects into rows: see [`flush`](Self::flush).
    fn resolve(&mut self, q: Queue) -> Result<()> {
        let now = self.now;
        let source = q.source.as_str();
        let mut state: Vec<Option<CertState>> = vec![None; q.fingerprints.len()];
        self.conn.insert_rows(INSERT_CERT.0, INSERT_CERT.1, CERT_COLUMNS, &q.cert_rows, |r| {
            let fingerprint: &str = r.get_ref(1)?.as_str()?;
            if let Some(&i) = q.by_fingerprint.get(fingerprint) {
                state[i] = Some(CertState { id: r.get(0)?, fresh: true, gone: false });
            }
            Ok(())
        })?;
        self.stats.certs_new += state.iter().flatten().count() as i64;
        let stored: Vec<&str> = q.fingerprints.iter().zip(&state).filter(|(_, s)| s.is_none()).map(|(f, _)| f.as_str()).collect();
        self.conn.query_in("SELECT id, gone_since, fingerprint FROM certificates WHERE fingerprint", &[], &stored, "", |r| {
            let fingerprint: &str = r.get_ref(2)?.as_str()?;
            if let Some(&i) = q.by_fingerprint.get(fingerprint) {
                let gone: Option<i64> = r.get(1)?;
                state[i] = Some(CertState { id: r.get(0)?, fresh: false, gone: gone.is_some() });
            }
            Ok(())
        })?;
        // Stored sightings of the objects listed before (a location never listed has none:
        // vanished objects keep their row, so "never listed" really means never).
        let known: Vec<&str> = q.objects.iter().filter(|o| o.known).map(|o| o.location.as_str()).collect();
        let mut existing: HashMap<String, Vec<(i64, i64, Option<i64>)>> = HashMap::new();
        self.conn.query_in(
            "SELECT id, cert_id, gone_since, location FROM sightings WHERE source = ?1 AND location",
            params![source],
            &known,
            "",
            |r| {
                existing.entry(r.get(3)?).or_default().push((r.get(0)?, r.get(1)?, r.get(2)?));
                Ok(())
            },
        )?;
        for object in &q.objects {
            let mut existing = existing.remove(&object.location).unwrap_or_default();
            existing.sort_unstable_by_key(|e| e.0);
            let location = object.location.as_str();
            let mut seen: HashSet<i64> = HashSet::new();
            for (index, detail) in &object.certs {
                let Some(cert) = state.get_mut(*index).and_then(Option::as_mut) else {
                    return Err(super::StoreError::Corrupt {
                        what: "certificates",
                        detail: format!("{} was neither inserted nor found", q.fingerprints[*index]),
                    });
                };
                let discovered = std::mem::replace(&mut cert.fresh, false);
                let cert_id = cert.id;
                if std::mem::replace(&mut cert.gone, false) {
                    self.conn.execute("UPDATE certificates SET gone_since = NULL WHERE id = ?1", params![cert_id])?;
                    self.history(cert_id, "returned", source, location, Some(detail));
                }
                if !seen.insert(cert_id) {
                    continue; // the same certificate twice in one object is one sighting
                }
                self.stats.certs_seen += 1;
                match existing.iter().find(|e| e.1 == cert_id) {
                    Some((sid, _, gone)) => {
                        self.conn.execute(
                            "UPDATE sightings SET last_seen = ?2, detail = ?3, gone_since = NULL WHERE id = ?1",
                            params![sid, now, detail],
                        )?;
                        if gone.is_some() {
                            self.history(cert_id, "sighted", source, location, Some(detail));
                        }
                    }
                    None => {
                        self.rows.sightings.extend([
                            Owned::Int(cert_id),
                            text(source),
                            text(location),
                            text(detail),
                            Owned::of(&now),
                            Owned::of(&now),
                        ]);
                        if !discovered {
                            self.history(cert_id, "sighted", source, location, Some(detail));
                        }
                    }
                }
            }
            for (sid, cert_id, gone) in &existing {
                if gone.is_none() && !seen.contains(cert_id) {
                    self.unsight(*sid, *cert_id, source, location)?;
                }
            }
            for e in &object.errors {
                self.error_row(source, location, e)?;
            }
            let error = if object.errors.is_empty() { None } else { Some(object.errors.join("; ")) };
            self.rows.objects.extend([
                text(source),
                text(location),
                text(&object.stamp),
                text(&object.content_sha256),
                Owned::of(&object.format),
                Owned::of(&(seen.len() as i64)),
                Owned::Int(object.keys),
                Owned::of(&error),
                Owned::of(&now),
                Owned::of(&object.meta),
            ]);
        }
        Ok(())
    }

    fn unsight(&mut self, sighting_id: i64, cert_id: i64, source: &str, location: &str) -> Result<()> {
        self.conn.execute("UPDATE sightings SET gone_since = ?2 WHERE id = ?1", params![sighting_id, self.now])?;
        self.history(cert_id, "unsighted", source, location, None);
        self.touched.insert(cert_id);
        Ok(())
    }

    /// An object the source had before and no longer lists: its sightings are gone.
    pub fn vanished(&mut self, source: &str, location: &str) -> Result<()> {
        self.tx()?;
        self.flush()?;
        let current: Vec<(i64, i64)> = {
            self.conn.query_map(
                "SELECT id, cert_id FROM sightings WHERE source = ?1 AND location = ?2 AND gone_since IS NULL",
                params![source, location],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
        };
        for (sid, cert_id) in current {
            self.unsight(sid, cert_id, source, location)?;
        }
        self.conn.execute(
            "UPDATE key_history SET gone_since = ?3 WHERE source = ?1 AND location = ?2 AND gone_since IS NULL",
            params![source, location, self.now],
        )?;
        // Kept, marked vanished: if the object comes back, its old sightings are found again.
        self.conn
            .execute("UPDATE objects SET stamp = '', content_sha256 = '', certs = 0, keys = 0, error = NULL, vanished_at = ?3 WHERE source = ?1 AND location = ?2", params![source, location, self.now])?;
        self.tick()
    }

    /// Stores what a source reported about an object beyond its bytes, and the key it is.
    pub fn object_extras(
        &mut self,
        source: &str,
        location: &str,
        meta: Option<&serde_json::Value>,
        key: Option<&crate::model::observed::KeyObject>,
    ) -> Result<()> {
        self.tx()?;
        if let Some(m) = meta {
            // `record` has queued the object, or written its row.
            match self.queue.objects.last_mut().filter(|o| self.queue.source == source && o.location == location) {
                Some(queued) => queued.meta = Some(m.to_string()),
                None => {
                    self.conn.execute(
                        "UPDATE objects SET meta = ?3 WHERE source = ?1 AND location = ?2",
                        params![source, location, m.to_string()],
                    )?;
                }
            }
        }
        if let Some(k) = key {
            self.conn
                .execute("INSERT INTO keys (source, location, label, key_id, class, algorithm, bits, curve, spki_sha256, attributes, first_seen, last_seen)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)
                     ON CONFLICT(source, location) DO UPDATE SET label = excluded.label, key_id = excluded.key_id, class = excluded.class,
                       algorithm = excluded.algorithm, bits = excluded.bits, curve = excluded.curve, spki_sha256 = excluded.spki_sha256,
                       attributes = excluded.attributes, last_seen = excluded.last_seen, gone_since = NULL", params![
                    source,
                    location,
                    k.label,
                    k.key_id,
                    k.class,
                    k.algorithm,
                    k.bits,
                    k.curve,
                    k.spki_sha256,
                    k.attributes.to_string(),
                    self.now
                ])?;
            if let Some(spki) = &k.spki_sha256 {
                self.key_seen(source, location, spki, k)?;
            }
        }
        Ok(())
    }

    /// Replaces the image findings of `source` with `findings`, in a transaction of their own:
    /// readers see the previous audit or this one, never a mix.
    pub fn replace_image_findings(&mut self, source: &str, findings: &[crate::model::observed::ImageFinding]) -> Result<()> {
        self.commit()?;
        self.tx()?;
        let result = (|| -> Result<()> {
            self.conn.execute("DELETE FROM image_findings WHERE source = ?1", params![source])?;
            for f in findings {
                self.conn.execute(
                    "INSERT INTO image_findings (source, namespace, workload_kind, workload, container, container_type, image, problem, severity, seen_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                    source,
                    f.namespace,
                    f.workload_kind,
                    f.workload,
                    f.container,
                    f.container_type,
                    f.image,
                    f.problem,
                    f.severity.as_str(),
                    self.now
                ],
                )?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => self.commit(),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.in_tx = false;
                self.pending = 0;
                Err(e)
            }
        }
    }

    /// Marks the source as completely scanned at this run's time, up unless a source-level
    /// error (configuration, a part that could not be listed) was met.
    pub fn finish_source(&mut self, source: &str) -> Result<()> {
        self.tx()?;
        self.flush()?;
        let up = i64::from(!self.source_failed.contains(source));
        self.conn.execute(
            "UPDATE sources SET last_scan_at = ?2, last_run_id = ?3, last_scan_up = ?4 WHERE name = ?1",
            params![source, self.now, self.run_id, up],
        )?;
        Ok(())
    }

    /// Marks certificates with no current sighting as gone and closes the run.
    pub fn finish(mut self) -> Result<RunRow> {
        self.tx()?;
        self.flush()?;
        let touched: Vec<i64> = self.touched.iter().copied().collect();
        for cert_id in touched {
            let current: i64 =
                self.conn.query_row("SELECT COUNT(*) FROM sightings WHERE cert_id = ?1 AND gone_since IS NULL", params![cert_id], |r| {
                    r.get(0)
                })?;
            if current == 0 {
                let n = self
                    .conn
                    .execute("UPDATE certificates SET gone_since = ?2 WHERE id = ?1 AND gone_since IS NULL", params![cert_id, self.now])?;
                if n > 0 {
                    self.stats.certs_gone += 1;
                    self.conn
                        .execute("INSERT INTO cert_history (cert_id, at, event) VALUES (?1, ?2, 'gone')", params![cert_id, self.now])?;
                }
            }
        }
        for ((source, kind, reason), n) in std::mem::take(&mut self.error_counts) {
            self.conn.execute(
                "INSERT INTO source_errors (source, source_kind, reason, count, last_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(source, source_kind, reason) DO UPDATE SET count = source_errors.count + excluded.count, last_at = excluded.last_at",
                params![source, kind, reason, n, self.now],
            )?;
        }
        let s = self.stats;
        let status = if s.errors > 0 { "errors" } else { "ok" };
        super::audit::append(
            self.conn,
            self.now,
            "scan",
            "certvigil",
            &serde_json::json!({"run": self.run_id, "objects": s.objects_seen, "read": s.objects_read, "certificates_new": s.certs_new, "certificates_gone": s.certs_gone, "errors": s.errors}),
        )?;
        self.conn.execute(
            "UPDATE scan_runs SET finished_at = ?2, objects_seen = ?3, objects_read = ?4, certs_seen = ?5, certs_new = ?6,
               certs_gone = ?7, errors = ?8, status = ?9 WHERE id = ?1",
            params![self.run_id, self.now, s.objects_seen, s.objects_read, s.certs_seen, s.certs_new, s.certs_gone, s.errors, status],
        )?;
        self.commit()?;
        Ok(RunRow {
            id: self.run_id,
            started_at: self.now,
            finished_at: Some(self.now),
            objects_seen: s.objects_seen,
            objects_read: s.objects_read,
            certs_seen: s.certs_seen,
            certs_new: s.certs_new,
            certs_gone: s.certs_gone,
            errors: s.errors,
            status: status.into(),
        })
    }
}

impl Drop for ScanWriter<'_> {
    fn drop(&mut self) {
        // An abandoned writer (error mid-scan) keeps its committed batches and rolls back the
        // open one; the run row stays `running`, which `scan` reports as interrupted.
        if self.in_tx {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// The [`CERT_COLUMNS`] values of a certificate's `certificates` row, first seen at `now`.
pub(super) fn cert_row(f: &crate::model::CertFacts, der: &[u8], now: UnixTime) -> [Owned; CERT_COLUMNS] {
    let j = |v: &Vec<String>| Owned::Text(serde_json::to_string(v).unwrap_or_else(|_| "[]".into()));
    [
        text(&f.fingerprint.0),
        text(&f.subject),
        text(&f.issuer),
        Owned::of(&f.common_name),
        text(&f.serial),
        Owned::of(&f.not_before),
        Owned::of(&f.not_after),
        text(&f.spki_sha256),
        Owned::of(&f.key.algorithm),
        Owned::of(&f.key.bits),
        Owned::of(&f.key.curve),
        Owned::of(&f.signature_algorithm),
        Owned::of(&f.is_ca),
        Owned::of(&f.path_len),
        j(&f.key_usage),
        j(&f.ext_key_usage),
        j(&f.sans),
        j(&f.ocsp_urls),
        j(&f.ca_issuers_urls),
        j(&f.crl_urls),
        Owned::of(&f.aki),
        Owned::of(&f.ski),
        Owned::of(&f.self_issued),
        j(&f.warnings),
        Owned::Blob(der.to_vec()),
        Owned::of(&now),
        Owned::of(&super::subject_key(der)),
    ]
}

/// The `INSERT` of a certificate row, with [`CERT_COLUMNS`] values per row; an existing
/// fingerprint is left alone. Returns `id, fingerprint` of the rows inserted.
pub(super) const INSERT_CERT: (&str, &str) = (
    "INSERT INTO certificates (fingerprint, subject, issuer, common_name, serial, not_before, not_after,
       spki_sha256, key_algorithm, key_bits, key_curve, signature_algorithm, is_ca, path_len, key_usage,
       ext_key_usage, sans, ocsp_urls, ca_issuers_urls, crl_urls, aki, ski, self_issued, warnings, der, first_seen,
       subject_key)",
    "ON CONFLICT(fingerprint) DO NOTHING RETURNING id, fingerprint",
);

fn text(s: &str) -> Owned {
    Owned::Text(s.to_string())
}
