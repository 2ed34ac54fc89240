//! The state: migrations from `schema/*.sql` (SQLite) and `schema/postgres/*.sql`
//! (PostgreSQL), the inventory (certificates, sightings, objects), scan runs and their errors,
//! certificate history, and the owners sources recorded.
//!
//! Every write happens in a transaction; rows are never deleted but marked gone. A SQLite
//! database is opened in WAL mode so readers (CLI, HTTP API) never block a scan. Every
//! statement goes through [`db::Db`], which runs it on either engine.

mod alerts;
mod ari;
mod audit;
mod coordination;
mod copy;
pub mod db;
mod images;
mod jobs;
mod keys;
mod listing;
mod owners;
mod pg_tls;
mod renewals;
mod report;
mod revocation;
mod scan;
#[cfg(test)]
mod suite;
#[cfg(test)]
pub(crate) mod testing;
mod trust;

pub use crate::model::rows::{
    AlertRow, Applied, AuditEntry, CachedOcsp, CertIdentity, CertRow, CrlCacheRow, HistoryRow, ImageFindingRow, JobRun, JobStats, KeyRow,
    LeaseRow, ObjectError, OutboxRow, RenewalRow, RevocationHistoryRow, RunRow, SightingRow, SourceStatus, TokenCertRow, WorkItem,
};
pub use alerts::AlertChanges;
pub use ari::AriDue;
pub use audit::{Verdict, append as audit_append};
pub use copy::{AuditComparison, Comparison, CopyError, CopyProgress, CopyReport, RowDifferences, TableComparison, TableDigest};
pub use listing::{Listing, ListingRow};
pub use owners::{OwnerSample, OwnerScope};
pub use report::{Counts, CrlSample, RevocationSample, SightingSample, SourceErrorSample, SourceSample};
pub use revocation::CrlFacts;

pub use scan::{KnownObject, KnownObjects, ObjectOutcome, ScanWriter, key as object_key};
pub use trust::MAX_ROOT_STEPS;

use crate::model::store_location::{PostgresTarget, StoreLocation};
use crate::model::{CertFacts, Fingerprint, KeyFacts, UnixTime};
use db::{Db, Row, params};
use rusqlite::Connection;
use std::path::{Path, PathBuf};

/// Migrations, in order: version, name, SQLite form, PostgreSQL form. Each file in `schema/`
/// named `NNNN_*.sql` must be listed here with its twin in `schema/postgres/` (a test checks
/// it), and a released migration is never edited: add a new one.
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (1, "0001_inventory", include_str!("../../schema/0001_inventory.sql"), include_str!("../../schema/postgres/0001_inventory.sql")),
    (2, "0002_revocation", include_str!("../../schema/0002_revocation.sql"), include_str!("../../schema/postgres/0002_revocation.sql")),
    (3, "0003_alerts", include_str!("../../schema/0003_alerts.sql"), include_str!("../../schema/postgres/0003_alerts.sql")),
    (4, "0004_audit", include_str!("../../schema/0004_audit.sql"), include_str!("../../schema/postgres/0004_audit.sql")),
    (5, "0005_jobs", include_str!("../../schema/0005_jobs.sql"), include_str!("../../schema/postgres/0005_jobs.sql")),
    (
        6,
        "0006_source_objects",
        include_str!("../../schema/0006_source_objects.sql"),
        include_str!("../../schema/postgres/0006_source_objects.sql"),
    ),
    (7, "0007_renewals", include_str!("../../schema/0007_renewals.sql"), include_str!("../../schema/postgres/0007_renewals.sql")),
    (
        8,
        "0008_image_findings",
        include_str!("../../schema/0008_image_findings.sql"),
        include_str!("../../schema/postgres/0008_image_findings.sql"),
    ),
    (
        9,
        "0009_alert_subjects",
        include_str!("../../schema/0009_alert_subjects.sql"),
        include_str!("../../schema/postgres/0009_alert_subjects.sql"),
    ),
    (10, "0010_subject_key", include_str!("../../schema/0010_subject_key.sql"), include_str!("../../schema/postgres/0010_subject_key.sql")),
    (11, "0011_status_page", include_str!("../../schema/0011_status_page.sql"), include_str!("../../schema/postgres/0011_status_page.sql")),
    (
        12,
        "0012_coordination",
        include_str!("../../schema/0012_coordination.sql"),
        include_str!("../../schema/postgres/0012_coordination.sql"),
    ),
    (13, "0013_ari_watch", include_str!("../../schema/0013_ari_watch.sql"), include_str!("../../schema/postgres/0013_ari_watch.sql")),
    (
        14,
        "0014_trust_material",
        include_str!("../../schema/0014_trust_material.sql"),
        include_str!("../../schema/postgres/0014_trust_material.sql"),
    ),
    (15, "0015_exporter_v4", include_str!("../../schema/0015_exporter_v4.sql"), include_str!("../../schema/postgres/0015_exporter_v4.sql")),
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("store {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("store {path}: cannot create directory: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("store {path}: schema version {found} is newer than this certvigil understands ({known}); upgrade certvigil")]
    TooNew { path: PathBuf, found: i64, known: i64 },
    #[error("store migration {name}: {source}")]
    Migration { name: String, source: Box<StoreError> },
    #[error(
        "store migration {name}: it would leave {count} row(s) pointing at missing rows (first: {example}); nothing was changed, the store stays at its previous version"
    )]
    MigrationForeignKeys { name: String, count: usize, example: String },
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("store: {0}")]
    Postgres(String),
    #[error("store: the query returned no row")]
    NoRow,
    #[error("store: the connection is in use by a query still being read")]
    Busy,
    /// A row callback asked to stop; the caller holds the reason.
    #[error("store: stopped by the caller")]
    Stopped,
    #[error("store: unexpected value: {0}")]
    Value(#[from] rusqlite::types::FromSqlError),
    #[error("store: corrupt value in {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

impl StoreError {
    /// A PostgreSQL error, with the server's message and the statement it answered.
    pub(crate) fn pg(e: postgres::Error, sql: &str) -> StoreError {
        let statement: String = sql.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(160).collect();
        match e.as_db_error() {
            Some(db) => StoreError::Postgres(format!("{}: {} ({}) in `{statement}`", db.severity(), db.message(), db.code().code())),
            None => StoreError::Postgres(format!("{e} in `{statement}`")),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub struct Store {
    conn: Db,
    /// The SQLite file, or the PostgreSQL database's URL (password hidden): for messages.
    path: PathBuf,
    /// The daemon this store serves, when several share it: recorded with its job runs.
    node: Option<String>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) and migrates the store. A new directory is 0700 and a new
    /// database file 0600: the store holds the inventory of an organisation's credentials.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            create_private_dir(dir).map_err(|source| StoreError::Dir { path: dir.to_path_buf(), source })?;
        }
        let existed = path.exists();
        let conn = Connection::open(path).map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?;
        if !existed {
            restrict_file(path);
        }
        let open_err = |source| StoreError::Open { path: path.to_path_buf(), source };
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(open_err)?;
        // 16 MiB of page cache (the default is 2 MiB): a large scan's index pages stay in memory
        // instead of being read back for every insert.
        conn.pragma_update(None, "cache_size", -16_384).map_err(open_err)?;
        // Room for the scan's multi-row statements (a few sizes of each, `db::chunks`) beside
        // the rest: rusqlite keeps 16 by default and would prepare them again and again.
        conn.set_prepared_statement_cache_capacity(96);
        let mut store = Store { conn: Db::Sqlite(conn), path: path.to_path_buf(), node: None };
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing store for reading only (the HTTP server's per-request connections):
    /// no migration, no writes, and a small page cache so that serving a large inventory does
    /// not grow the daemon's memory.
    pub fn open_reader(path: &Path) -> Result<Store> {
        use rusqlite::OpenFlags;
        let open_err = |source| StoreError::Open { path: path.to_path_buf(), source };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(open_err)?;
        conn.pragma_update(None, "cache_size", -2048).map_err(open_err)?;
        let store = Store { conn: Db::Sqlite(conn), path: path.to_path_buf(), node: None };
        store.check_not_newer()?;
        Ok(store)
    }

    /// Opens (creating the schema if needed) the store at `location`.
    pub fn open_at(location: &StoreLocation) -> Result<Store> {
        match location {
            StoreLocation::File(path) => Store::open(path),
            StoreLocation::Postgres(target) => Store::open_postgres(target),
        }
    }

    /// Opens the store at `location` for reading (see [`Store::open_reader`]); on PostgreSQL a
    /// connection like any other, whose schema must be current.
    pub fn open_reader_at(location: &StoreLocation) -> Result<Store> {
        match location {
            StoreLocation::File(path) => Store::open_reader(path),
            StoreLocation::Postgres(target) => {
                let store = Store { conn: connect_postgres(target)?, path: PathBuf::from(target.redacted_url()), node: None };
                store.check_not_newer()?;
                Ok(store)
            }
        }
    }

    /// Opens the store at `location` for a short piece of work, when the daemon has opened (and
    /// so migrated) it already: on PostgreSQL a connection whose schema must be current, without
    /// the migration lock; a SQLite file as [`Store::open`] does.
    pub fn connect_at(location: &StoreLocation) -> Result<Store> {
        match location {
            StoreLocation::File(path) => Store::open(path),
            StoreLocation::Postgres(_) => Store::open_reader_at(location),
        }
    }

    /// Connects to a PostgreSQL database and migrates it. Several daemons may start at once:
    /// one migrates while the others wait on a session advisory lock, then find it current.
    pub fn open_postgres(target: &PostgresTarget) -> Result<Store> {
        let mut store = Store { conn: connect_postgres(target)?, path: PathBuf::from(target.redacted_url()), node: None };
        store.conn.execute_batch(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
        let result = (|| {
            store.conn.execute_batch("CREATE TABLE IF NOT EXISTS certvigil_schema (version BIGINT NOT NULL)")?;
            store.migrate()
        })();
        let unlocked = store.conn.execute_batch(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
        result.and(unlocked)?;
        Ok(store)
    }

    fn check_not_newer(&self) -> Result<()> {
        let (found, known) = (self.schema_version()?, MIGRATIONS.last().map(|m| m.0).unwrap_or(0));
        if found > known {
            return Err(StoreError::TooNew { path: self.path.clone(), found, known });
        }
        Ok(())
    }

    /// The SQLite file, or the PostgreSQL database's URL with any password hidden.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names the daemon this store serves (several daemons on one store): its job runs carry
    /// the name, and at start it marks only its own unfinished runs interrupted.
    pub fn with_node(mut self, node: &str) -> Store {
        self.node = Some(node.to_string());
        self
    }

    /// The engine this store runs on.
    pub fn dialect(&self) -> db::Dialect {
        self.conn.dialect()
    }

    pub fn schema_version(&self) -> Result<i64> {
        match self.conn.dialect() {
            db::Dialect::Sqlite => self.conn.query_row("PRAGMA user_version", params![], |r| r.get(0)),
            db::Dialect::Postgres => self.conn.query_row("SELECT COALESCE(MAX(version), 0) FROM certvigil_schema", params![], |r| r.get(0)),
        }
    }

    fn migrate(&mut self) -> Result<()> {
        let current = self.schema_version()?;
        let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
        if current > known {
            return Err(StoreError::TooNew { path: self.path.clone(), found: current, known });
        }
        if current >= known {
            return Ok(());
        }
        // Some migrations rebuild a table (SQLite cannot drop NOT NULL): SQLite's documented
        // procedure runs them with foreign keys off (the pragma is a no-op inside a
        // transaction, so it is set around it) and checks every reference before committing.
        let label = self.path.display().to_string();
        let Db::Sqlite(conn) = &self.conn else { return run_migrations(&self.conn, current, &label) };
        let err = |source| StoreError::Migration { name: "foreign_keys".into(), source: Box::new(StoreError::Sql(source)) };
        conn.pragma_update(None, "foreign_keys", "OFF").map_err(err)?;
        let result = run_migrations(&self.conn, current, &label);
        let Db::Sqlite(conn) = &self.conn else { return result };
        conn.pragma_update(None, "foreign_keys", "ON").map_err(err)?;
        result
    }

    /// The SQLite connection, for tests and benchmarks that set up or inspect rows directly
    /// (`None` on PostgreSQL). The program itself goes through the methods: every statement it
    /// runs is in this module.
    pub fn conn(&self) -> Option<&Connection> {
        match &self.conn {
            Db::Sqlite(c) => Some(c),
            Db::Postgres(_) => None,
        }
    }

    /// The connection on either engine, for tests that run the same SQL on both.
    pub fn db(&self) -> &Db {
        &self.conn
    }

    /// Every source the store has recorded, configured now or not.
    pub fn source_names(&self) -> Result<Vec<String>> {
        self.conn.query_map("SELECT name FROM sources", params![], |r| r.get(0))
    }

    /// Folds the write-ahead log into the database file, so a copy of the file alone is
    /// complete (at shutdown). Nothing to do on PostgreSQL.
    pub fn checkpoint(&self) -> Result<()> {
        match &self.conn {
            Db::Sqlite(c) => Ok(c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?),
            Db::Postgres(_) => Ok(()),
        }
    }

    /// A writer for one scan run over the named sources.
    pub fn begin_scan(&mut self, now: UnixTime, sources: &[String]) -> Result<ScanWriter<'_>> {
        ScanWriter::begin(&self.conn, now, sources)
    }

    /// Every certificate with its sightings summary, current ones only unless `include_gone`.
    pub fn certificates(&self, include_gone: bool) -> Result<Vec<CertRow>> {
        let sql = format!(
            "SELECT {CERT_COLUMNS}, {} FROM certificates c {} ORDER BY c.not_after, c.fingerprint",
            sighting_summary(self.conn.dialect()),
            if include_gone { "" } else { "WHERE c.gone_since IS NULL" }
        );
        self.conn.query_map(&sql, params![], |r| finish_sightings(cert_with_sightings(r)?))
    }

    /// Each certificate in the order of [`Store::certificates`], one row at a time from the
    /// cursor: listings of a whole inventory hold one row, not all of them.
    pub fn each_certificate<E: From<StoreError>>(
        &self,
        include_gone: bool,
        mut f: impl FnMut(CertRow) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let sql = format!(
            "SELECT {CERT_COLUMNS}, {} FROM certificates c {} ORDER BY c.not_after, c.fingerprint",
            sighting_summary(self.conn.dialect()),
            if include_gone { "" } else { "WHERE c.gone_since IS NULL" }
        );
        // The callback's own error stops the cursor and is handed back as it was.
        let mut failed: Option<E> = None;
        let walked = self.conn.query_each(&sql, params![], |r| {
            let row = finish_sightings(cert_with_sightings(r)?)?;
            match f(row) {
                Ok(()) => Ok(()),
                Err(e) => {
                    failed = Some(e);
                    Err(StoreError::Stopped)
                }
            }
        });
        match (walked, failed) {
            (_, Some(e)) => Err(e),
            (Err(e), None) => Err(e.into()),
            (Ok(()), None) => Ok(()),
        }
    }

    /// What inventory-wide aggregates need of every certificate, gone ones included, one row at
    /// a time from a light query (no sightings, no extensions beyond the names).
    pub fn each_certificate_identity(&self, mut f: impl FnMut(CertIdentity)) -> Result<()> {
        self.conn.query_each(
            "SELECT id, fingerprint, subject, sans, spki_sha256, not_before, not_after, is_ca, CASE WHEN gone_since IS NULL THEN 0 ELSE 1 END
             FROM certificates",
            params![],
            |r| {
            let sans: String = r.get(3)?;
            f(CertIdentity {
                id: r.get(0)?,
                fingerprint: r.get(1)?,
                subject: r.get(2)?,
                sans: serde_json::from_str(&sans).map_err(|e| StoreError::Corrupt { what: "certificates.sans", detail: e.to_string() })?,
                spki_sha256: r.get(4)?,
                not_before: r.get(5)?,
                not_after: r.get(6)?,
                is_ca: r.get(7)?,
                gone: r.get(8)?,
            });
            Ok(())
        })
    }

    /// The certificates with one of `ids` or whose public key is one of `spkis` (those a key
    /// review pairs with keys), in the order of [`Store::certificates`], gone ones included.
    pub fn certificates_for_keys(&self, ids: &[i64], spkis: &[&str]) -> Result<Vec<CertRow>> {
        let mut out: Vec<CertRow> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut take = |column: &str, values: &[&dyn db::ToValue]| -> Result<()> {
            for chunk in values.chunks(IN_LIST_MAX) {
                let sql = format!(
                    "SELECT {CERT_COLUMNS}, {} FROM certificates c WHERE c.{column} IN ({})",
                    sighting_summary(self.conn.dialect()),
                    placeholders(chunk.len())
                );
                for row in self.conn.query_map(&sql, chunk, |r| finish_sightings(cert_with_sightings(r)?))? {
                    if seen.insert(row.id) {
                        out.push(row);
                    }
                }
            }
            Ok(())
        };
        take("id", &ids.iter().map(|i| i as &dyn db::ToValue).collect::<Vec<_>>())?;
        take("spki_sha256", &spkis.iter().map(|s| s as &dyn db::ToValue).collect::<Vec<_>>())?;
        out.sort_by(|a, b| (a.facts.not_after, &a.facts.fingerprint.0).cmp(&(b.facts.not_after, &b.facts.fingerprint.0)));
        Ok(out)
    }

    /// The certificates with one of `ids`, gone ones included, in no particular order.
    pub fn certificates_by_id(&self, ids: &[i64]) -> Result<Vec<CertRow>> {
        self.certificates_for_keys(ids, &[])
    }

    /// Each known source with its kind, tags, last scan and the objects it currently cannot
    /// read, by name.
    pub fn source_statuses(&self) -> Result<Vec<SourceStatus>> {
        self.conn.query_map(
            "SELECT s.name, s.kind, s.tags, s.last_scan_at,
                    (SELECT count(*) FROM objects o WHERE o.source = s.name AND o.error IS NOT NULL AND o.vanished_at IS NULL)
             FROM sources s ORDER BY s.name",
            params![],
            |r| {
                let tags: String = r.get(2)?;
                Ok(SourceStatus {
                    name: r.get(0)?,
                    kind: r.get(1)?,
                    tags: json_list(&tags, "sources.tags")?,
                    last_scan_at: r.get(3)?,
                    errors: r.get(4)?,
                })
            },
        )
    }

    /// Tags of each known source.
    pub fn source_tags(&self) -> Result<std::collections::HashMap<String, Vec<String>>> {
        let mut out = std::collections::HashMap::new();
        self.conn.query_each("SELECT name, tags FROM sources", params![], |r| {
            let tags: String = r.get(1)?;
            out.insert(r.get(0)?, json_list(&tags, "sources.tags")?);
            Ok(())
        })?;
        Ok(out)
    }

    /// Certificates whose fingerprint starts with `prefix` (hex, case-insensitive, colons
    /// ignored) or whose serial equals it.
    pub fn find(&self, query: &str) -> Result<Vec<CertRow>> {
        let q: String = query.chars().filter(|c| *c != ':').collect::<String>();
        let sql = format!(
            "SELECT {CERT_COLUMNS}, {} FROM certificates c
             WHERE c.fingerprint LIKE ?1 || '%' OR c.serial = ?2 OR ltrim(c.serial, '0') = ltrim(?2, '0') ORDER BY c.not_after",
            sighting_summary(self.conn.dialect())
        );
        // Fingerprints are stored in lower case, so the pattern matches the same on both engines
        // (SQLite's LIKE ignores ASCII case, PostgreSQL's does not).
        self.conn.query_map(&sql, params![q.to_ascii_lowercase(), q.to_ascii_uppercase()], |r| finish_sightings(cert_with_sightings(r)?))
    }

    /// Certificates named the way the tool displays them: the display name (the CN, else the
    /// first SAN's value), the subject DN (RFC 4514 as `show` prints it) or `CN=<name>` alone,
    /// ASCII case and spaces after the DN's commas ignored. Soonest to expire first.
    pub fn find_named(&self, name: &str) -> Result<Vec<CertRow>> {
        let name = name.trim();
        if name.is_empty() {
            return Ok(Vec::new());
        }
        let lower = name.to_ascii_lowercase();
        let dn = crate::model::display::dn_key(name);
        // `CN=web.example` alone names the certificates of that common name, whatever else
        // their subject holds.
        let cn = dn.strip_prefix("cn=").filter(|v| !v.contains([',', '+'])).unwrap_or(&lower).to_string();
        let sql = format!(
            "SELECT {CERT_COLUMNS}, {} FROM certificates c
             WHERE lower(c.common_name) = ?1 OR lower(c.subject) = ?2 OR (c.common_name IS NULL AND lower(c.sans) LIKE ?3)
             ORDER BY c.not_after",
            sighting_summary(self.conn.dialect())
        );
        // The SAN pattern only narrows: the display name (the first SAN) is checked below.
        let san = format!("%:{}\"%", lower.replace('%', "_"));
        let mut found = self.conn.query_map(&sql, params![cn.clone(), dn.clone(), san], |r| finish_sightings(cert_with_sightings(r)?))?;
        found.retain(|c| {
            c.facts.display_name().eq_ignore_ascii_case(name)
                || c.facts.common_name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&cn))
                || crate::model::display::dn_key(&c.facts.subject) == dn
        });
        Ok(found)
    }

    pub fn sightings(&self, cert_id: i64) -> Result<Vec<SightingRow>> {
        self.conn.query_map(
            "SELECT s.source, s.location, s.detail, s.first_seen,
                    CASE WHEN s.gone_since IS NULL AND src.last_scan_at > s.last_seen THEN src.last_scan_at ELSE s.last_seen END,
                    s.gone_since, o.meta
             FROM sightings s LEFT JOIN sources src ON src.name = s.source
             LEFT JOIN objects o ON o.source = s.source AND o.location = s.location
             WHERE s.cert_id = ?1 ORDER BY CASE WHEN s.gone_since IS NULL THEN 0 ELSE 1 END, s.source, s.location",
            params![cert_id],
            |r| {
                Ok(SightingRow {
                    source: r.get(0)?,
                    location: r.get(1)?,
                    detail: r.get(2)?,
                    first_seen: r.get(3)?,
                    last_seen: r.get(4)?,
                    gone_since: r.get(5)?,
                    meta: r.get::<Option<String>>(6)?.and_then(|t| serde_json::from_str(&t).ok()),
                })
            },
        )
    }

    /// The certificate's history: its discovery (first_seen and first sighting), then every
    /// recorded event.
    pub fn history(&self, cert_id: i64) -> Result<Vec<HistoryRow>> {
        let discovered = self.conn.query_opt(
            "SELECT c.first_seen, s.source, s.location, s.detail FROM certificates c
             LEFT JOIN sightings s ON s.id = (SELECT MIN(id) FROM sightings WHERE cert_id = c.id) WHERE c.id = ?1",
            params![cert_id],
            |r| Ok(HistoryRow { at: r.get(0)?, event: "discovered".into(), source: r.get(1)?, location: r.get(2)?, detail: r.get(3)? }),
        )?;
        let rows = self.conn.query_map(
            "SELECT at, event, source, location, detail FROM cert_history WHERE cert_id = ?1 ORDER BY id",
            params![cert_id],
            |r| Ok(HistoryRow { at: r.get(0)?, event: r.get(1)?, source: r.get(2)?, location: r.get(3)?, detail: r.get(4)? }),
        )?;
        Ok(discovered.into_iter().chain(rows).collect())
    }

    pub fn der(&self, cert_id: i64) -> Result<Vec<u8>> {
        self.conn.query_row("SELECT der FROM certificates WHERE id = ?1", params![cert_id], |r| r.get(0))
    }

    /// Objects whose last read failed, with the error.
    pub fn object_errors(&self, source: Option<&str>) -> Result<Vec<ObjectError>> {
        self.conn.query_map(
            "SELECT source, location, error FROM objects WHERE error IS NOT NULL AND (CAST(?1 AS TEXT) IS NULL OR source = ?1)
             ORDER BY source, location",
            params![source],
            |r| Ok(ObjectError { source: r.get(0)?, location: r.get(1)?, message: r.get(2)? }),
        )
    }

    pub fn last_run(&self) -> Result<Option<RunRow>> {
        self.conn.query_opt(
            "SELECT id, started_at, finished_at, objects_seen, objects_read, certs_seen, certs_new, certs_gone, errors, status FROM scan_runs ORDER BY id DESC LIMIT 1",
            params![],
            run_from_row,
        )
    }

    pub fn run_errors(&self, run_id: i64) -> Result<Vec<ObjectError>> {
        self.conn.query_map("SELECT source, location, message FROM scan_errors WHERE run_id = ?1 ORDER BY id", params![run_id], |r| {
            Ok(ObjectError { source: r.get(0)?, location: r.get(1)?, message: r.get(2)? })
        })
    }
}

/// What a migration needs done beyond its SQL, in the same transaction: values only Rust can
/// compute from what is stored.
fn migrate_data(version: i64, conn: &Db) -> Result<()> {
    match version {
        10 => fill_subject_keys(conn),
        _ => Ok(()),
    }
}

/// The `subject_key` column of a certificate: [`crate::x509::name::name_key`] of its subject.
pub(crate) fn subject_key(cert_der: &[u8]) -> Option<Vec<u8>> {
    crate::x509::cert::raw_parts(cert_der).ok().and_then(|p| crate::x509::name::name_key(p.subject))
}

/// Fills `subject_key` of the certificates that have none from their stored DER, a batch of
/// rows at a time so that a large inventory is never held in memory at once.
fn fill_subject_keys(conn: &Db) -> Result<()> {
    const BATCH: i64 = 1000;
    // SQLite's `+subject_key`: walk the rowid range, not the index this very loop is writing.
    let select = match conn.dialect() {
        db::Dialect::Sqlite => "SELECT id, der FROM certificates WHERE id > ?1 AND +subject_key IS NULL ORDER BY id LIMIT ?2",
        db::Dialect::Postgres => "SELECT id, der FROM certificates WHERE id > ?1 AND subject_key IS NULL ORDER BY id LIMIT ?2",
    };
    let mut after = 0;
    loop {
        let batch: Vec<(i64, Vec<u8>)> = conn.query_map(select, params![after, BATCH], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let Some(&(last, _)) = batch.last() else { return Ok(()) };
        for (id, der) in &batch {
            conn.execute("UPDATE certificates SET subject_key = ?2 WHERE id = ?1", params![id, subject_key(der)])?;
        }
        after = last;
    }
}

/// `PRAGMA foreign_key_check`, as `table row <rowid> -> <parent>` lines (SQLite; PostgreSQL
/// checks every reference as it is written).
fn foreign_key_violations(conn: &Db) -> Result<Vec<String>> {
    if conn.dialect() != db::Dialect::Sqlite {
        return Ok(Vec::new());
    }
    conn.query_map("PRAGMA foreign_key_check", params![], |r| {
        Ok(format!("{} row {} -> {}", r.get::<String>(0)?, r.get::<Option<i64>>(1)?.unwrap_or(0), r.get::<String>(2)?))
    })
}

/// Applies the migrations after `current`, each in a transaction of its own with its data
/// fill, its reference check and the new version.
fn run_migrations(conn: &Db, current: i64, label: &str) -> Result<()> {
    for (version, name, sqlite, postgres) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let err = |source| StoreError::Migration { name: name.to_string(), source: Box::new(source) };
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(match conn.dialect() {
            db::Dialect::Sqlite => sqlite,
            db::Dialect::Postgres => postgres,
        })
        .map_err(err)?;
        migrate_data(*version, &tx).map_err(err)?;
        let broken = foreign_key_violations(&tx).map_err(err)?;
        if let Some(example) = broken.first() {
            return Err(StoreError::MigrationForeignKeys { name: name.to_string(), count: broken.len(), example: example.clone() });
        }
        match conn.dialect() {
            db::Dialect::Sqlite => tx.execute_batch(&format!("PRAGMA user_version = {version}")),
            db::Dialect::Postgres => tx
                .execute("DELETE FROM certvigil_schema", params![])
                .and_then(|_| tx.execute("INSERT INTO certvigil_schema (version) VALUES (?1)", params![version]).map(drop)),
        }
        .map_err(err)?;
        tx.commit().map_err(err)?;
        tracing::info!(store = %label, migration = name, "store migrated");
    }
    Ok(())
}

/// The advisory lock key that serialises migrations between daemons starting together
/// (`certvigil` in ASCII).
const MIGRATION_LOCK: i64 = 0x6365_7274_7669_6769;

/// A PostgreSQL connection to `target`: TLS verified against `ca_file` (or the system's roots)
/// unless the URL says `sslmode=disable`; the password from the configuration's secret when
/// given. Run off the async runtime's worker threads.
fn connect_postgres(target: &PostgresTarget) -> Result<Db> {
    use std::str::FromStr;
    let url = target.redacted_url();
    let fail = |detail: String| StoreError::Connect { url: url.clone(), detail };
    let mut config = postgres::Config::from_str(&target.url).map_err(|e| fail(format!("not a PostgreSQL URL: {e}")))?;
    if let Some(pw) = &target.password {
        config.password(pw);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    if config.get_application_name().is_none() {
        config.application_name("certvigil");
    }
    let tls = if config.get_ssl_mode() == postgres::config::SslMode::Disable {
        None
    } else {
        let ca = match &target.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| fail(format!("ca_file {}: {e}", path.display())))?),
            None => None,
        };
        Some(pg_tls::MakeRustls::new(ca.as_deref()).map_err(fail)?)
    };
    let conn = db::pg::Conn::connect(move || {
        match tls {
            None => config.connect(postgres::NoTls),
            Some(tls) => config.connect(tls),
        }
        .map_err(|e| StoreError::Connect { url: url.clone(), detail: pg_error_text(&e) })
    })?;
    Ok(Db::Postgres(conn))
}

/// A connection error with its cause (the server's message, the refused socket, the TLS
/// failure), which `postgres::Error`'s own text leaves out.
fn pg_error_text(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

fn run_from_row(r: &Row<'_>) -> Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        started_at: r.get(1)?,
        finished_at: r.get(2)?,
        objects_seen: r.get(3)?,
        objects_read: r.get(4)?,
        certs_seen: r.get(5)?,
        certs_new: r.get(6)?,
        certs_gone: r.get(7)?,
        errors: r.get(8)?,
        status: r.get(9)?,
    })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

fn restrict_file(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
            tracing::warn!(store = %path.display(), error = %e, "could not restrict store permissions to 0600");
        }
    }
}

pub(crate) const CERT_COLUMNS: &str = "c.id, c.fingerprint, c.subject, c.issuer, c.common_name, c.serial, c.not_before, c.not_after,
    c.spki_sha256, c.key_algorithm, c.key_bits, c.key_curve, c.signature_algorithm, c.is_ca, c.path_len, c.key_usage,
    c.ext_key_usage, c.sans, c.ocsp_urls, c.ca_issuers_urls, c.crl_urls, c.aki, c.ski, c.self_issued, c.warnings,
    c.first_seen, c.gone_since";

/// Current sightings and the sources that hold the certificate (all its sources, once gone),
/// selected after [`CERT_COLUMNS`]: the sources as a JSON array of names.
fn sighting_summary(dialect: db::Dialect) -> &'static str {
    match dialect {
        db::Dialect::Sqlite => {
            "(SELECT COUNT(*) FROM sightings s WHERE s.cert_id = c.id AND s.gone_since IS NULL),
    (SELECT json_group_array(DISTINCT s.source) FROM sightings s WHERE s.cert_id = c.id AND (s.gone_since IS NULL OR c.gone_since IS NOT NULL))"
        }
        db::Dialect::Postgres => {
            "(SELECT COUNT(*) FROM sightings s WHERE s.cert_id = c.id AND s.gone_since IS NULL),
    (SELECT COALESCE(json_agg(DISTINCT s.source)::text, '[]') FROM sightings s WHERE s.cert_id = c.id AND (s.gone_since IS NULL OR c.gone_since IS NOT NULL))"
        }
    }
}

fn cert_with_sightings(r: &Row<'_>) -> Result<(CertRow, i64, String)> {
    Ok((cert_from_row(r)?, r.get(27)?, r.get(28)?))
}

fn finish_sightings((mut cert, current, sources): (CertRow, i64, String)) -> Result<CertRow> {
    cert.current_sightings = current;
    cert.sources = json_list(&sources, "sightings.source")?;
    Ok(cert)
}

fn json_list(s: &str, what: &'static str) -> Result<Vec<String>> {
    let v: Vec<Option<String>> = serde_json::from_str(s).map_err(|e| StoreError::Corrupt { what, detail: e.to_string() })?;
    Ok(v.into_iter().flatten().collect())
}

fn cert_from_row(r: &Row<'_>) -> Result<CertRow> {
    let list = |i: usize| -> Result<Vec<String>> {
        let s: String = r.get(i)?;
        serde_json::from_str(&s).map_err(|e| StoreError::Corrupt { what: "certificates", detail: format!("column {i}: {e}") })
    };
    Ok(CertRow {
        id: r.get(0)?,
        facts: CertFacts {
            fingerprint: Fingerprint(r.get(1)?),
            subject: r.get(2)?,
            issuer: r.get(3)?,
            common_name: r.get(4)?,
            serial: r.get(5)?,
            not_before: r.get(6)?,
            not_after: r.get(7)?,
            spki_sha256: r.get(8)?,
            key: KeyFacts { algorithm: r.get(9)?, bits: r.get(10)?, curve: r.get(11)? },
            signature_algorithm: r.get(12)?,
            is_ca: r.get(13)?,
            path_len: r.get(14)?,
            key_usage: list(15)?,
            ext_key_usage: list(16)?,
            sans: list(17)?,
            ocsp_urls: list(18)?,
            ca_issuers_urls: list(19)?,
            crl_urls: list(20)?,
            aki: r.get(21)?,
            ski: r.get(22)?,
            self_issued: r.get(23)?,
            warnings: list(24)?,
        },
        first_seen: r.get(25)?,
        gone_since: r.get(26)?,
        current_sightings: 0,
        sources: Vec::new(),
    })
}

/// Most values bound in one `IN (…)` list (SQLite allows 32,766 parameters per statement).
pub(crate) const IN_LIST_MAX: usize = 500;

/// `?,?,…,?` for an `IN` list of `n` values.
pub(crate) fn placeholders(n: usize) -> String {
    let mut s = "?,".repeat(n);
    s.pop();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_file_is_a_listed_migration() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".sql"))
            .map(|n| n.trim_end_matches(".sql").to_string())
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS.iter().map(|m| m.1.to_string()).collect();
        assert_eq!(files, listed);
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.0, i as i64 + 1, "migration versions are consecutive");
            assert!(m.1.starts_with(&format!("{:04}_", m.0)));
        }
    }

    #[test]
    fn opens_migrates_and_refuses_newer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/state.db");
        let s = Store::open(&p).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.last().unwrap().0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::metadata(p.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        }
        s.conn().unwrap().pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        assert!(matches!(Store::open(&p), Err(StoreError::TooNew { found: 99, .. })));
    }

    /// A store left at version 8 (before alert subjects) holding alerts and their outbox rows.
    fn version_8_store(p: &Path) {
        let conn = Connection::open(p).unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        for (version, _, sql, _) in MIGRATIONS.iter().filter(|m| m.0 <= 8) {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", version).unwrap();
        }
        for (id, fp, cn) in [(1, "aa", Some("www.example.net")), (2, "bb", None)] {
            conn.execute(
                "INSERT INTO certificates (id, fingerprint, subject, issuer, common_name, serial, not_before, not_after, spki_sha256,
                   key_algorithm, signature_algorithm, is_ca, key_usage, ext_key_usage, sans, ocsp_urls, ca_issuers_urls, crl_urls,
                   self_issued, warnings, der, first_seen)
                 VALUES (?1, ?2, ?3, 'CN=CA', ?4, '01', 0, 100, 'spki', 'EC', 'ecdsa-with-SHA256', 0, '[]', '[]', '[]', '[]', '[]', '[]', 0, '[]', x'00', 0)",
                rusqlite::params![id, fp.repeat(32), format!("CN=subject{id}"), cn],
            )
            .unwrap();
        }
        // Ids 7 (resolved, cert 1), 9 (open, cert 1), 12 (acknowledged, cert 2).
        for (id, cert, state) in [(7, 1, "resolved"), (9, 1, "firing"), (12, 2, "acknowledged")] {
            conn.execute(
                "INSERT INTO alerts (id, cert_id, kind, severity, state, reason, action, opened_at, notifications, routes_notified, seq, acked_by)
                 VALUES (?1, ?2, 'expiring', 'warning', ?3, 'r', 'a', 10, 2, '[[\"mail\",10]]', 3, 'ops')",
                rusqlite::params![id, cert, state],
            )
            .unwrap();
        }
        for (id, alert) in [(1, Some(7)), (2, Some(9)), (3, Some(12)), (4, None)] {
            conn.execute(
                "INSERT INTO outbox (id, key, alert_id, route, receiver, event, severity, payload, created_at, next_attempt_at)
                 VALUES (?1, ?2, ?3, 'mail', 'ops', 'firing', 'warning', '{}', 10, 10)",
                rusqlite::params![id, format!("k{id}"), alert],
            )
            .unwrap();
        }
        conn.execute("INSERT INTO silences (fingerprint, reason, created_by, created_at, expires_at) VALUES ('aa', 'r', 'ops', 0, 99)", [])
            .unwrap();
    }

    #[test]
    fn version_9_rebuilds_alerts_keeping_rows_ids_and_references() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.db");
        version_8_store(&p);
        let s = Store::open(&p).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.last().unwrap().0);
        type Row = (i64, String, String, String, Option<i64>, String, i64, i64, String, Option<String>);
        let rows: Vec<Row> = s
            .conn().unwrap()
            .prepare("SELECT id, subject, subject_kind, subject_name, cert_id, state, notifications, seq, routes_notified, acked_by FROM alerts ORDER BY id")
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?))
            })
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        let (a, b) = (format!("cert:{}", "aa".repeat(32)), format!("cert:{}", "bb".repeat(32)));
        let row = |id, subject: &str, name: &str, cert, state: &str| {
            (
                id,
                subject.to_string(),
                "certificate".to_string(),
                name.to_string(),
                Some(cert),
                state.to_string(),
                2,
                3,
                "[[\"mail\",10]]".to_string(),
                Some("ops".to_string()),
            )
        };
        assert_eq!(
            rows,
            [
                row(7, &a, "www.example.net", 1, "resolved"),
                row(9, &a, "www.example.net", 1, "firing"),
                row(12, &b, "CN=subject2", 2, "acknowledged")
            ]
        );
        // The outbox still points at the same alerts, and every reference holds.
        let outbox: Vec<(i64, Option<i64>)> = s
            .conn()
            .unwrap()
            .prepare("SELECT o.id, a.id FROM outbox o LEFT JOIN alerts a ON a.id = o.alert_id ORDER BY o.id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        assert_eq!(outbox, [(1, Some(7)), (2, Some(9)), (3, Some(12)), (4, None)]);
        assert_eq!(foreign_key_violations(s.db()).unwrap(), Vec::<String>::new());
        let fks: i64 = s.conn().unwrap().query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap();
        assert_eq!(fks, 1, "foreign keys are enforced again after the migration");
        let parent: String =
            s.conn().unwrap().query_row("SELECT \"table\" FROM pragma_foreign_key_list('outbox')", [], |r| r.get(0)).unwrap();
        assert_eq!(parent, "alerts");
        // One open alert per (subject, kind), now enforced on the subject.
        let dup = s.conn().unwrap().execute(
            "INSERT INTO alerts (subject, subject_kind, subject_name, kind, severity, state, reason, action, opened_at) VALUES (?1, 'certificate', 'x', 'expiring', 'warning', 'firing', 'r', 'a', 0)",
            [&a],
        );
        assert!(dup.is_err(), "a second open alert for the same subject and kind");
        s.conn().unwrap()
            .execute(
                "INSERT INTO alerts (subject, subject_kind, subject_name, kind, severity, state, reason, action, opened_at) VALUES ('managed:web', 'managed', 'managed certificate web', 'renewal-failed', 'warning', 'firing', 'r', 'a', 0)",
                [],
            )
            .expect("an alert with no certificate");
        // Referential integrity is enforced after the migration: an outbox row for no alert fails.
        assert!(s.conn().unwrap().execute("INSERT INTO outbox (key, alert_id, route, receiver, event, severity, payload, created_at, next_attempt_at) VALUES ('x', 999, 'r', 'r', 'firing', 'info', '{}', 0, 0)", []).is_err());
        // The open alerts carry the subject the policy gives their certificate: after the
        // upgrade an open alert is continued, not resolved and opened again.
        let open: Vec<(i64, String)> = s.open_alerts().unwrap().into_iter().map(|a| (a.id, a.subject)).collect();
        assert_eq!(
            open,
            [
                (9, crate::model::finding::cert_subject(&"aa".repeat(32))),
                (12, crate::model::finding::cert_subject(&"bb".repeat(32))),
                (13, "managed:web".into())
            ]
        );
        let silences = s.silences(0, true).unwrap();
        assert_eq!((silences[0].fingerprint.as_deref(), silences[0].subject.as_deref()), (Some("aa"), None));
    }

    /// A CA certificate named `O=Example, CN=Example CA` in PrintableString, and a leaf signed by
    /// its key whose issuer field spells that name as a CA might in its other products:
    /// `O=EXAMPLE` in UTF8String, `CN=example  ca` in BMPString. Both DER.
    pub(super) fn ca_and_leaf_naming_it_differently() -> (Vec<u8>, Vec<u8>) {
        use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, Issuer, KeyPair};
        let name = |o: DnValue, cn: DnValue| {
            let mut dn = DistinguishedName::new();
            dn.push(DnType::OrganizationName, o);
            dn.push(DnType::CommonName, cn);
            dn
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name =
            name(DnValue::PrintableString("Example".try_into().unwrap()), DnValue::PrintableString("Example CA".try_into().unwrap()));
        let ca_der = ca.self_signed(&ca_key).unwrap().der().to_vec();
        let mut spelled = ca.clone();
        spelled.distinguished_name = name(DnValue::Utf8String("EXAMPLE".into()), DnValue::BmpString("example  ca".try_into().unwrap()));
        let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
        leaf.distinguished_name = name(DnValue::Utf8String("Example".into()), DnValue::Utf8String("leaf".into()));
        let leaf_der = leaf.signed_by(&KeyPair::generate().unwrap(), &Issuer::new(spelled, &ca_key)).unwrap().der().to_vec();
        (ca_der, leaf_der)
    }

    #[test]
    fn version_10_fills_subject_keys_from_the_stored_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.db");
        let (ca, leaf) = ca_and_leaf_naming_it_differently();
        {
            let mut conn = Connection::open(&p).unwrap();
            for (version, _, sql, _) in MIGRATIONS.iter().filter(|m| m.0 <= 9) {
                conn.execute_batch(sql).unwrap();
                conn.pragma_update(None, "user_version", version).unwrap();
            }
            // More rows than one batch of the fill: the CA, the leaf, and a row whose DER is not
            // a certificate.
            let tx = conn.transaction().unwrap();
            let mut insert = tx
                .prepare(
                    "INSERT INTO certificates (id, fingerprint, subject, issuer, serial, not_before, not_after, spki_sha256, key_algorithm,
                       signature_algorithm, is_ca, key_usage, ext_key_usage, sans, ocsp_urls, ca_issuers_urls, crl_urls, self_issued,
                       warnings, der, first_seen)
                     VALUES (?1, ?2, 'CN=x', 'CN=x', '01', 0, ?1, 'spki', 'EC', 'ecdsa-with-SHA256', 0, '[]', '[]', '[]', '[]', '[]', '[]',
                       0, '[]', ?3, 0)",
                )
                .unwrap();
            for id in 1..=2501_i64 {
                let der: &[u8] = match id % 3 {
                    0 => &ca,
                    1 => &leaf,
                    _ => b"\x00",
                };
                insert.execute(rusqlite::params![id, format!("{id:064x}"), der]).unwrap();
            }
            drop(insert);
            tx.commit().unwrap();
        }
        let s = Store::open(&p).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.last().unwrap().0);
        let keys: Vec<(i64, Option<Vec<u8>>)> = s
            .conn()
            .unwrap()
            .prepare("SELECT id, subject_key FROM certificates ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        assert_eq!(keys.len(), 2501);
        let subject = |der: &[u8]| crate::x509::cert::raw_parts(der).unwrap().subject.to_vec();
        let (ca_key, leaf_key) = (crate::x509::name::name_key(&subject(&ca)), crate::x509::name::name_key(&subject(&leaf)));
        assert!(ca_key.is_some() && leaf_key.is_some() && ca_key != leaf_key);
        for (id, key) in keys {
            let expected = match id % 3 {
                0 => &ca_key,
                1 => &leaf_key,
                _ => &None,
            };
            assert_eq!(&key, expected, "row {id}");
        }
        let plan: String = s
            .conn()
            .unwrap()
            .query_row("EXPLAIN QUERY PLAN SELECT id FROM certificates WHERE subject_key = x'00'", [], |r| r.get(3))
            .unwrap();
        assert!(plan.contains("certificates_subject_key"), "{plan}");
    }

    #[test]
    fn a_migration_that_would_break_references_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.db");
        version_8_store(&p);
        {
            // An outbox row pointing at an alert that does not exist (written with checks off).
            let conn = Connection::open(&p).unwrap();
            conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
            conn.execute("INSERT INTO outbox (key, alert_id, route, receiver, event, severity, payload, created_at, next_attempt_at) VALUES ('bad', 4242, 'r', 'r', 'firing', 'info', '{}', 0, 0)", []).unwrap();
        }
        let err = Store::open(&p).unwrap_err();
        assert!(matches!(err, StoreError::MigrationForeignKeys { count: 1, .. }), "{err}");
        assert!(err.to_string().contains("outbox row"), "{err}");
        let conn = Connection::open(&p).unwrap();
        assert_eq!(conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)).unwrap(), 8);
        let cols: i64 =
            conn.query_row("SELECT count(*) FROM pragma_table_info('alerts') WHERE name = 'subject'", [], |r| r.get(0)).unwrap();
        assert_eq!(cols, 0, "rolled back");
    }
}
