//! Store queries for signing trust material followed over time: TUF roots seen at each location
//! (`trust_roots`, the previous root a new version is verified against) and every public key a
//! key object held (`key_history`, so a rotated key shows as a new key and a retired one).

use super::db::{Row, params};
use super::{Result, ScanWriter, Store};
use crate::model::rows::{KeyHistoryRow, TrustRootRow};

const ROOT_COLUMNS: &str = "source, location, version, content_sha256, document, valid_signatures, threshold, chain, chain_from, \
     trusted, first_seen, last_seen";

fn root_row(r: &Row<'_>) -> Result<TrustRootRow> {
    Ok(TrustRootRow {
        source: r.get(0)?,
        location: r.get(1)?,
        version: r.get(2)?,
        content_sha256: r.get(3)?,
        document: r.get(4)?,
        valid_signatures: r.get(5)?,
        threshold: r.get(6)?,
        chain: r.get(7)?,
        chain_from: r.get(8)?,
        trusted: r.get(9)?,
        first_seen: r.get(10)?,
        last_seen: r.get(11)?,
    })
}

/// Versions between a trusted root and a later one looked up at most: a larger skip is a gap.
pub const MAX_ROOT_STEPS: i64 = 64;

impl ScanWriter<'_> {
    /// Every TUF root seen at `location` of `source`, highest version first.
    pub fn trust_roots_at(&mut self, source: &str, location: &str) -> Result<Vec<TrustRootRow>> {
        self.tx()?;
        self.conn.query_map(
            &format!("SELECT {ROOT_COLUMNS} FROM trust_roots WHERE source = ?1 AND location = ?2 ORDER BY version DESC, id DESC"),
            params![source, location],
            root_row,
        )
    }

    /// Roots seen anywhere whose version lies strictly between `after` and `before` (at most
    /// [`MAX_ROOT_STEPS`] versions): the intermediate roots a skipped version may be verified
    /// through.
    pub fn trust_roots_between(&mut self, after: i64, before: i64) -> Result<Vec<TrustRootRow>> {
        self.tx()?;
        if before - after > MAX_ROOT_STEPS {
            return Ok(Vec::new());
        }
        self.conn.query_map(
            &format!("SELECT {ROOT_COLUMNS} FROM trust_roots WHERE version > ?1 AND version < ?2 ORDER BY version, id"),
            params![after, before],
            root_row,
        )
    }

    /// Records a root seen now: a new row for new content, else its verdict and `last_seen`
    /// are updated (`first_seen` stays).
    pub fn put_trust_root(&mut self, r: &TrustRootRow) -> Result<()> {
        self.tx()?;
        self.conn.execute(
            "INSERT INTO trust_roots (source, location, version, content_sha256, document, valid_signatures, threshold, chain, chain_from,
                                      trusted, first_seen, last_seen)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)
             ON CONFLICT(source, location, content_sha256) DO UPDATE SET valid_signatures = excluded.valid_signatures,
               threshold = excluded.threshold, chain = excluded.chain, chain_from = excluded.chain_from, trusted = excluded.trusted,
               last_seen = excluded.last_seen",
            params![
                r.source,
                r.location,
                r.version,
                r.content_sha256,
                r.document,
                r.valid_signatures,
                r.threshold,
                r.chain,
                r.chain_from,
                r.trusted,
                self.now
            ],
        )?;
        Ok(())
    }

    /// `spki` is the key at `location` now: its history row is current, any other key that was
    /// there is retired from now on.
    pub(super) fn key_seen(&mut self, source: &str, location: &str, spki: &str, k: &crate::model::observed::KeyObject) -> Result<()> {
        self.conn.execute(
            "UPDATE key_history SET gone_since = ?4 WHERE source = ?1 AND location = ?2 AND spki_sha256 <> ?3 AND gone_since IS NULL",
            params![source, location, spki, self.now],
        )?;
        self.conn.execute(
            "INSERT INTO key_history (source, location, spki_sha256, class, algorithm, label, first_seen, last_seen)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
             ON CONFLICT(source, location, spki_sha256) DO UPDATE SET last_seen = excluded.last_seen, label = excluded.label,
               gone_since = NULL",
            params![source, location, spki, k.class, k.algorithm, k.label, self.now],
        )?;
        Ok(())
    }
}

impl Store {
    /// Every public key each key object has held, of one source or all, current and retired,
    /// by location then first seen.
    pub fn key_history(&self, source: Option<&str>) -> Result<Vec<KeyHistoryRow>> {
        self.conn.query_map(
            "SELECT source, location, spki_sha256, class, algorithm, label, first_seen, last_seen, gone_since FROM key_history
             WHERE CAST(?1 AS TEXT) IS NULL OR source = ?1 ORDER BY source, location, first_seen, id",
            params![source],
            |r| {
                Ok(KeyHistoryRow {
                    source: r.get(0)?,
                    location: r.get(1)?,
                    spki_sha256: r.get(2)?,
                    class: r.get(3)?,
                    algorithm: r.get(4)?,
                    label: r.get(5)?,
                    first_seen: r.get(6)?,
                    last_seen: r.get(7)?,
                    gone_since: r.get(8)?,
                })
            },
        )
    }

    /// Every TUF root seen, of one source or all, by location then version.
    pub fn trust_roots(&self, source: Option<&str>) -> Result<Vec<TrustRootRow>> {
        self.conn.query_map(
            &format!(
                "SELECT {ROOT_COLUMNS} FROM trust_roots WHERE CAST(?1 AS TEXT) IS NULL OR source = ?1 ORDER BY source, location, version, id"
            ),
            params![source],
            root_row,
        )
    }
}
