//! Writing one scan run: objects, certificates, sightings, history and errors.
//!
//! Writes are batched into transactions of [`BATCH`] objects so that a large scan neither holds
//! one huge transaction nor pays a commit per file; the gone-marking that depends on the whole
//! scan happens in the final transaction. An interrupted scan leaves complete batches behind
//! and its run row says `running`; the next scan simply continues from the stored state.

use super::db::{Db, Dialect, params};
use super::{Result, RunRow};
use crate::model::UnixTime;
use crate::x509::Parsed;
use std::collections::{HashMap, HashSet};

const BATCH: usize = 10_000;

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
    conn: &'c Db,
    run_id: i64,
    now: UnixTime,
    pending: usize,
    in_tx: bool,
    touched: HashSet<i64>,
    stats: Stats,
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
        Ok(ScanWriter { conn, run_id, now, pending: 0, in_tx: false, touched: HashSet::new(), stats: Stats::default() })
    }

    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    fn tx(&mut self) -> Result<()> {
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
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        if self.in_tx {
            self.conn.execute_batch("COMMIT")?;
            self.in_tx = false;
        }
        self.pending = 0;
        Ok(())
    }

    /// Records the source's configuration (kind, tags) for filters and routing.
    pub fn register_source(&mut self, name: &str, kind: &str, tags: &[String]) -> Result<()> {
        self.tx()?;
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
        self.error_row(source, location, message)?;
        self.tick()
    }

    fn error_row(&mut self, source: &str, location: &str, message: &str) -> Result<()> {
        self.stats.errors += 1;
        self.conn.execute(
            "INSERT INTO scan_errors (run_id, source, location, message) VALUES (?1, ?2, ?3, ?4)",
            params![self.run_id, source, location, message],
        )?;
        Ok(())
    }

    fn history(&mut self, cert_id: i64, event: &str, source: &str, location: &str, detail: Option<&str>) -> Result<()> {
        self.conn.execute(
            "INSERT INTO cert_history (cert_id, at, event, source, location, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![cert_id, self.now, event, source, location, detail],
        )?;
        Ok(())
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
                self.apply_parsed(source, location, known.is_some(), stamp, content_sha256, parsed)?;
            }
        }
        self.tick()
    }

    fn apply_parsed(
        &mut self,
        source: &str,
        location: &str,
        known: bool,
        stamp: &str,
        content_sha256: &str,
        parsed: &Parsed,
    ) -> Result<()> {
        let now = self.now;
        // A location never listed before has no sightings to compare with (vanished objects
        // keep their row, so "never listed" really means never).
        let existing: Vec<(i64, i64, Option<i64>)> = if !known {
            Vec::new()
        } else {
            self.conn.query_map(
                "SELECT id, cert_id, gone_since FROM sightings WHERE source = ?1 AND location = ?2",
                params![source, location],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?
        };
        let mut seen: HashSet<i64> = HashSet::new();
        for found in &parsed.certs {
            let f = &found.facts;
            let j = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
            // Insert when new (the common case in a first scan); RETURNING says whether it was.
            let inserted: Option<i64> = self.conn.query_opt(
                    "INSERT INTO certificates (fingerprint, subject, issuer, common_name, serial, not_before, not_after,
                       spki_sha256, key_algorithm, key_bits, key_curve, signature_algorithm, is_ca, path_len, key_usage,
                       ext_key_usage, sans, ocsp_urls, ca_issuers_urls, crl_urls, aki, ski, self_issued, warnings, der, first_seen,
                       subject_key)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26,
                       ?27)
                     ON CONFLICT(fingerprint) DO NOTHING RETURNING id",
                    params![
                        f.fingerprint.0,
                        f.subject,
                        f.issuer,
                        f.common_name,
                        f.serial,
                        f.not_before,
                        f.not_after,
                        f.spki_sha256,
                        f.key.algorithm,
                        f.key.bits,
                        f.key.curve,
                        f.signature_algorithm,
                        f.is_ca,
                        f.path_len,
                        j(&f.key_usage),
                        j(&f.ext_key_usage),
                        j(&f.sans),
                        j(&f.ocsp_urls),
                        j(&f.ca_issuers_urls),
                        j(&f.crl_urls),
                        f.aki,
                        f.ski,
                        f.self_issued,
                        j(&f.warnings),
                        found.der,
                        now,
                        super::subject_key(&found.der),
                    ],
                    |r| r.get(0),
                )?;
            let (cert_id, discovered) = match inserted {
                Some(id) => {
                    self.stats.certs_new += 1;
                    (id, true)
                }
                None => {
                    let (id, gone): (i64, Option<i64>) = self.conn.query_row(
                        "SELECT id, gone_since FROM certificates WHERE fingerprint = ?1",
                        params![f.fingerprint.0],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )?;
                    if gone.is_some() {
                        self.conn.execute("UPDATE certificates SET gone_since = NULL WHERE id = ?1", params![id])?;
                        self.history(id, "returned", source, location, Some(&found.detail))?;
                    }
                    (id, false)
                }
            };
            if !seen.insert(cert_id) {
                continue; // the same certificate twice in one object is one sighting
            }
            self.stats.certs_seen += 1;
            match existing.iter().find(|e| e.1 == cert_id) {
                Some((sid, _, gone)) => {
                    self.conn.execute(
                        "UPDATE sightings SET last_seen = ?2, detail = ?3, gone_since = NULL WHERE id = ?1",
                        params![sid, now, found.detail],
                    )?;
                    if gone.is_some() {
                        self.history(cert_id, "sighted", source, location, Some(&found.detail))?;
                    }
                }
                None => {
                    self.conn.execute(
                        "INSERT INTO sightings (cert_id, source, location, detail, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                        params![cert_id, source, location, found.detail, now],
                    )?;
                    if !discovered {
                        self.history(cert_id, "sighted", source, location, Some(&found.detail))?;
                    }
                }
            }
        }
        for (sid, cert_id, gone) in &existing {
            if gone.is_none() && !seen.contains(cert_id) {
                self.unsight(*sid, *cert_id, source, location)?;
            }
        }
        let errors: Vec<String> = parsed.errors.iter().map(ToString::to_string).collect();
        for e in &errors {
            self.error_row(source, location, e)?;
        }
        let error = if errors.is_empty() { None } else { Some(errors.join("; ")) };
        let format = parsed.format.map(|f| f.to_string());
        self.conn.execute(
            "INSERT INTO objects (source, location, stamp, content_sha256, format, certs, keys, error, first_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(source, location) DO UPDATE SET stamp = excluded.stamp, content_sha256 = excluded.content_sha256,
                   format = excluded.format, certs = excluded.certs, keys = excluded.keys, error = excluded.error, vanished_at = NULL",
            params![source, location, stamp, content_sha256, format, seen.len() as i64, parsed.keys.len() as i64, error, now],
        )?;
        Ok(())
    }

    fn unsight(&mut self, sighting_id: i64, cert_id: i64, source: &str, location: &str) -> Result<()> {
        self.conn.execute("UPDATE sightings SET gone_since = ?2 WHERE id = ?1", params![sighting_id, self.now])?;
        self.history(cert_id, "unsighted", source, location, None)?;
        self.touched.insert(cert_id);
        Ok(())
    }

    /// An object the source had before and no longer lists: its sightings are gone.
    pub fn vanished(&mut self, source: &str, location: &str) -> Result<()> {
        self.tx()?;
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
            // `record` has written the object's row.
            self.conn
                .execute("UPDATE objects SET meta = ?3 WHERE source = ?1 AND location = ?2", params![source, location, m.to_string()])?;
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

    /// Marks the source as completely scanned at this run's time.
    pub fn finish_source(&mut self, source: &str) -> Result<()> {
        self.tx()?;
        self.conn
            .execute("UPDATE sources SET last_scan_at = ?2, last_run_id = ?3 WHERE name = ?1", params![source, self.now, self.run_id])?;
        Ok(())
    }

    /// Marks certificates with no current sighting as gone and closes the run.
    pub fn finish(mut self) -> Result<RunRow> {
        self.tx()?;
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
