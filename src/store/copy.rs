//! Copying a store into another and comparing two stores table by table: `certvigil store
//! migrate` (a SQLite file into an empty PostgreSQL database) and `certvigil store check`.
//!
//! [`TABLES`] lists every table of the schema, each after the tables its foreign keys name, with
//! its primary key; a test fails when a migration creates a table that is not listed. A copy
//! takes every column as stored, ids included. It reads the source in one snapshot, a row at a
//! time from a cursor, and writes multi-row inserts committed every [`TX_ROWS`] rows, so a store
//! of any size is copied in bounded memory. On PostgreSQL the identities are then moved past the
//! copied ids: unlike a SQLite rowid, an identity does not follow explicit inserts.
//!
//! A comparison reads each table in primary-key order — text keys byte-wise on both engines
//! (SQLite's default; `COLLATE "C"` on PostgreSQL, whatever the database's collation) — and hashes
//! each row's canonical encoding (a tag and a length per value, so no two rows encode alike) into
//! one SHA-256 per table: the same rows give the same digest whichever engine holds them and
//! however its columns are ordered. When two digests differ, both sides are walked again in key
//! order, a page at a time, to count the rows changed and those on one side only.

use super::db::{Db, Dialect, Owned, Row, ToValue, Tx, Value, params};
use super::{Result, Store, StoreError, Verdict};
use sha2::Digest;
use std::cmp::Ordering;
use std::collections::VecDeque;

/// Every table of the schema with its primary key, parents before the tables that refer to them
/// (`sightings` after `certificates`, `outbox` after `alerts`): the order a copy writes them in.
pub(crate) const TABLES: &[(&str, &[&str])] = &[
    ("certificates", &["id"]),
    ("sources", &["name"]),
    ("sightings", &["id"]),
    ("objects", &["source", "location"]),
    ("scan_runs", &["id"]),
    ("scan_errors", &["id"]),
    ("cert_history", &["id"]),
    ("revocation_status", &["cert_id"]),
    ("revocation_history", &["id"]),
    ("crl_cache", &["url"]),
    ("ocsp_cache", &["cert_id"]),
    ("ari_watch", &["cert_id"]),
    ("issuer_cache", &["url"]),
    ("alerts", &["id"]),
    ("silences", &["id"]),
    ("outbox", &["id"]),
    ("audit_log", &["id"]),
    ("job_runs", &["id"]),
    ("job_overruns", &["job"]),
    ("source_errors", &["source", "source_kind", "reason"]),
    ("keys", &["id"]),
    ("trust_roots", &["id"]),
    ("key_history", &["id"]),
    ("renewals", &["name"]),
    ("image_findings", &["id"]),
    ("leases", &["name"]),
    ("work_items", &["id"]),
];

/// Rows written per transaction: large enough that commits cost little, small enough that a
/// failure loses little and the server's transaction stays small.
const TX_ROWS: usize = 5000;
/// Rows per INSERT statement (one round trip), fewer when a row has many columns.
const INSERT_ROWS: usize = 250;
/// Parameters per INSERT statement (SQLite allows 32,766, PostgreSQL 65,535).
const INSERT_PARAMS: usize = 30_000;
/// Rows fetched per page when two tables are walked side by side.
const PAGE_ROWS: usize = 1000;

/// Why a copy did not happen, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(
        "{target} already holds certvigil data ({}): a store is copied into an empty database only; nothing was changed",
        held.iter().map(|(t, n)| format!("{t}: {n} row{}", if *n == 1 { "" } else { "s" })).collect::<Vec<_>>().join(", ")
    )]
    NotEmpty { target: String, held: Vec<(String, u64)> },
    #[error(
        "{from} is at schema version {from_version} and {target} at {target_version}: both must be at this certvigil's version (open the store with any command, e.g. `certvigil list`, to upgrade it); nothing was changed"
    )]
    SchemaVersion { from: String, from_version: i64, target: String, target_version: i64 },
    #[error("{store}: table {table} is not part of certvigil's schema, so it would not be copied; nothing was changed")]
    UnknownTable { store: String, table: String },
    #[error("table {table}: {from} has columns [{}] and {target} [{}]; nothing was changed", from_columns.join(", "), target_columns.join(", "))]
    Columns { table: String, from: String, from_columns: Vec<String>, target: String, target_columns: Vec<String> },
    #[error("{store}: the audit log is broken at entry {id} ({reason}); it is not copied as it is: nothing was changed")]
    AuditBroken { store: String, id: i64, reason: String },
    #[error("copying table {table}: {cause}; nothing was committed to {target}, which is still empty")]
    Failed { table: String, target: String, cause: Box<StoreError> },
    #[error(
        "copying table {table}: {cause}; {target} now holds part of the store ({written} rows): drop the database and create it again before another try"
    )]
    Partial { table: String, target: String, written: u64, cause: Box<StoreError> },
    #[error("after the copy, {detail}")]
    Mismatch { detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How far a copy is; the rows counts are the source's.
#[derive(Debug, Clone, Copy)]
pub enum CopyProgress<'a> {
    /// A table is about to be copied.
    Started { table: &'a str, rows: u64 },
    /// Rows of the table committed so far.
    Committed { table: &'a str, copied: u64, rows: u64 },
    /// Every row of the table is copied.
    Finished { table: &'a str, rows: u64 },
}

/// What a copy did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CopyReport {
    /// Each table copied, in the order written, with its rows.
    pub tables: Vec<(String, u64)>,
    pub rows: u64,
    /// The audit chain, intact on both sides: its length and the hash of its newest entry.
    pub audit_entries: i64,
    pub audit_head: Option<String>,
}

/// One table of each store side by side.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableComparison {
    pub table: String,
    /// Rows and digest of each side (`None`: the store has no such table).
    pub here: Option<TableDigest>,
    pub there: Option<TableDigest>,
    /// Columns one side has and the other has not (the digests cover the columns both have).
    pub columns_here_only: Vec<String>,
    pub columns_there_only: Vec<String>,
    /// Where the rows differ, when the digests do.
    pub rows: Option<RowDifferences>,
}

impl TableComparison {
    pub fn identical(&self) -> bool {
        self.here.is_some() && self.here == self.there && self.columns_here_only.is_empty() && self.columns_there_only.is_empty()
    }
}

/// A table's row count and the SHA-256 over its rows' canonical encodings, in key order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableDigest {
    pub rows: u64,
    pub sha256: String,
}

/// Rows matched by primary key.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RowDifferences {
    /// Same key, other values.
    pub changed: u64,
    pub only_here: u64,
    pub only_there: u64,
    /// The first differing row in key order, as `column=value` pairs.
    pub first: Option<String>,
}

/// The audit chains of both stores.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditComparison {
    pub here: Verdict,
    pub there: Verdict,
    /// The hash of the newest entry of each.
    pub here_head: Option<String>,
    pub there_head: Option<String>,
}

impl AuditComparison {
    /// Both intact, the same length, the same newest entry.
    pub fn identical(&self) -> bool {
        matches!(self.here, Verdict::Intact { .. }) && self.here == self.there && self.here_head == self.there_head
    }
}

/// Two stores compared (`here`: the store compared; `there`: the other).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Comparison {
    /// The schema version of each.
    pub schema: (i64, i64),
    pub tables: Vec<TableComparison>,
    pub audit: AuditComparison,
}

impl Comparison {
    pub fn identical(&self) -> bool {
        self.schema.0 == self.schema.1 && self.tables.iter().all(TableComparison::identical) && self.audit.identical()
    }
}

impl Store {
    /// Copies every table of this store into `target`, which must be empty and at the same
    /// schema version, and checks the audit chain on both sides before and after. This store is
    /// only read, in one snapshot.
    pub fn copy_into(&self, target: &Store, mut progress: impl FnMut(CopyProgress<'_>)) -> std::result::Result<CopyReport, CopyError> {
        let (from, to) = (self.path.display().to_string(), target.path.display().to_string());
        let _snapshot = Snapshot::begin(&self.conn)?;
        let (from_version, target_version) = (self.schema_version()?, target.schema_version()?);
        if from_version != target_version {
            return Err(CopyError::SchemaVersion { from, from_version, target: to, target_version });
        }
        let plan = copy_plan(&self.conn, &target.conn, &from, &to)?;
        let mut held = Vec::new();
        for t in &plan {
            let n = count(&target.conn, t.name)?;
            if n > 0 {
                held.push((t.name.to_string(), n));
            }
        }
        if !held.is_empty() {
            return Err(CopyError::NotEmpty { target: to, held });
        }
        let entries = match self.audit_verify()? {
            Verdict::Intact { entries } => entries,
            Verdict::Broken { id, reason } => return Err(CopyError::AuditBroken { store: from, id, reason }),
        };
        let head = audit_head(&self.conn)?;

        let mut report = CopyReport { tables: Vec::new(), rows: 0, audit_entries: entries, audit_head: head.clone() };
        for t in &plan {
            let rows = count(&self.conn, t.name)?;
            progress(CopyProgress::Started { table: t.name, rows });
            let mut copied = 0u64;
            let done = copy_table(&self.conn, &target.conn, t, |n| {
                copied = n;
                progress(CopyProgress::Committed { table: t.name, copied: n, rows });
            });
            let copied = match done {
                Ok(n) => n,
                Err(cause) => {
                    let (table, cause) = (t.name.to_string(), Box::new(cause));
                    return Err(match report.rows + copied {
                        0 => CopyError::Failed { table, target: to, cause },
                        written => CopyError::Partial { table, target: to, written, cause },
                    });
                }
            };
            progress(CopyProgress::Finished { table: t.name, rows: copied });
            report.rows += copied;
            report.tables.push((t.name.to_string(), copied));
        }
        if target.conn.dialect() == Dialect::Postgres {
            for t in plan.iter().filter(|t| t.columns.iter().any(|c| c.name == "id")) {
                let sql = format!("SELECT setval(pg_get_serial_sequence(?1, 'id'), (SELECT max(id) FROM {}))", quote(t.name));
                let moved = target.conn.query_row(&sql, params![t.name], |r| r.get::<Option<i64>>(0));
                if let Err(cause) = moved {
                    let (table, written) = (t.name.to_string(), report.rows);
                    return Err(CopyError::Partial { table, target: to, written, cause: Box::new(cause) });
                }
            }
        }

        // Both chains again: the source's (still the snapshot) and the copy's, the same.
        let verdicts = (self.audit_verify()?, target.audit_verify()?);
        let heads = (head, audit_head(&target.conn)?);
        let intact = Verdict::Intact { entries };
        if verdicts.0 != intact || verdicts.1 != intact || heads.0 != heads.1 {
            return Err(CopyError::Mismatch {
                detail: format!(
                    "the audit logs do not match: {from}: {:?} (head {}), {to}: {:?} (head {})",
                    verdicts.0,
                    heads.0.as_deref().unwrap_or("none"),
                    verdicts.1,
                    heads.1.as_deref().unwrap_or("none")
                ),
            });
        }
        Ok(report)
    }

    /// Compares this store (`here`) with `other` (`there`) table by table, each read in one
    /// snapshot, and their audit chains.
    pub fn compare_with(&self, other: &Store) -> Result<Comparison> {
        let _here = Snapshot::begin(&self.conn)?;
        let _there = Snapshot::begin(&other.conn)?;
        let schema = (self.schema_version()?, other.schema_version()?);
        let (here_tables, there_tables) = (table_names(&self.conn)?, table_names(&other.conn)?);
        let mut tables = Vec::new();
        for (table, keys) in TABLES {
            let present = (here_tables.iter().any(|t| t == table), there_tables.iter().any(|t| t == table));
            if present != (false, false) {
                tables.push(compare_table(&self.conn, &other.conn, table, keys)?);
            }
        }
        let audit = AuditComparison {
            here: self.audit_verify()?,
            there: other.audit_verify()?,
            here_head: audit_head(&self.conn)?,
            there_head: audit_head(&other.conn)?,
        };
        Ok(Comparison { schema, tables, audit })
    }
}

/// A read transaction held for the guard's life: every read through the connection sees one
/// state of the store, whatever else writes meanwhile (SQLite: a deferred transaction, whose
/// first read fixes its snapshot of the WAL; PostgreSQL: REPEATABLE READ). Ended by a rollback:
/// it wrote nothing.
struct Snapshot<'a>(&'a Db);

impl<'a> Snapshot<'a> {
    fn begin(db: &'a Db) -> Result<Snapshot<'a>> {
        db.execute_batch(match db.dialect() {
            Dialect::Sqlite => "BEGIN",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        })?;
        Ok(Snapshot(db))
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        let _ = self.0.execute_batch("ROLLBACK");
    }
}

/// A column of a table: its name and what its declared type says of its values.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    /// BLOB / BYTEA: text stored in it reads back as bytes from the other engine, so it is
    /// compared as bytes.
    bytes: bool,
    /// TEXT (or a character type): sorted byte-wise, with `COLLATE "C"` on PostgreSQL.
    text: bool,
}

/// A table to copy: its name, primary key and columns (those of the source, which the target
/// has too).
struct Planned {
    name: &'static str,
    keys: &'static [&'static str],
    columns: Vec<Column>,
}

/// The tables both stores have, in [`TABLES`] order, after checking that neither holds a table
/// the list lacks and that each has the same columns on both sides.
fn copy_plan(from: &Db, to: &Db, from_name: &str, to_name: &str) -> std::result::Result<Vec<Planned>, CopyError> {
    let (from_tables, to_tables) = (table_names(from)?, table_names(to)?);
    for (store, tables) in [(from_name, &from_tables), (to_name, &to_tables)] {
        if let Some(t) = tables.iter().find(|t| !TABLES.iter().any(|(name, _)| name == t)) {
            return Err(CopyError::UnknownTable { store: store.to_string(), table: t.clone() });
        }
    }
    let mut plan = Vec::new();
    for (name, keys) in TABLES {
        let (from_columns, to_columns) = (columns(from, name)?, columns(to, name)?);
        let names = |cols: &[Column]| {
            let mut n: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
            n.sort();
            n
        };
        if names(&from_columns) != names(&to_columns) {
            return Err(CopyError::Columns {
                table: name.to_string(),
                from: from_name.to_string(),
                from_columns: names(&from_columns),
                target: to_name.to_string(),
                target_columns: names(&to_columns),
            });
        }
        if !from_columns.is_empty() {
            plan.push(Planned { name, keys, columns: from_columns });
        }
    }
    Ok(plan)
}

/// Copies one table in key order; `committed` hears the rows committed so far after each
/// transaction. Returns how many rows were copied.
fn copy_table(from: &Db, to: &Db, t: &Planned, mut committed: impl FnMut(u64)) -> Result<u64> {
    let names: Vec<String> = t.columns.iter().map(|c| quote(&c.name)).collect();
    let order = key_terms(from.dialect(), t.keys, &t.columns).join(", ");
    let select = format!("SELECT {} FROM {} ORDER BY {order}", names.join(", "), quote(t.name));
    let per_statement = (INSERT_PARAMS / names.len()).clamp(1, INSERT_ROWS);
    let full = insert_sql(t.name, &names, per_statement);
    let mut values: Vec<Owned> = Vec::with_capacity(per_statement * names.len());
    let mut tx: Option<Tx<'_>> = None;
    let (mut in_tx, mut copied) = (0usize, 0u64);

    let mut flush = |values: &mut Vec<Owned>, last: bool| -> Result<()> {
        let rows = values.len() / names.len();
        if rows > 0 {
            let sql = if rows == per_statement { full.clone() } else { insert_sql(t.name, &names, rows) };
            let bound: Vec<&dyn ToValue> = values.iter().map(|v| v as &dyn ToValue).collect();
            let db: &Db = match &mut tx {
                Some(open) => open,
                None => tx.insert(to.transaction()?),
            };
            db.execute(&sql, &bound)?;
            values.clear();
            in_tx += rows;
        }
        if in_tx > 0 && (in_tx >= TX_ROWS || last) {
            if let Some(open) = tx.take() {
                open.commit()?;
            }
            copied += in_tx as u64;
            in_tx = 0;
            committed(copied);
        }
        Ok(())
    };
    from.query_each(&select, params![], |r| {
        for i in 0..names.len() {
            values.push(Owned::from(r.get_ref(i)?));
        }
        if values.len() >= per_statement * names.len() {
            flush(&mut values, false)?;
        }
        Ok(())
    })?;
    flush(&mut values, true)?;
    Ok(copied)
}

/// `INSERT INTO t (a, b) VALUES (?1, ?2), (?3, ?4), …` for `rows` rows.
fn insert_sql(table: &str, names: &[String], rows: usize) -> String {
    let mut sql = format!("INSERT INTO {} ({}) VALUES ", quote(table), names.join(", "));
    let mut n = 0;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for col in 0..names.len() {
            n += 1;
            if col > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("?{n}"));
        }
        sql.push(')');
    }
    sql
}

/// Compares one table of two stores.
fn compare_table(here: &Db, there: &Db, table: &str, keys: &[&str]) -> Result<TableComparison> {
    let (here_columns, there_columns) = (columns(here, table)?, columns(there, table)?);
    let only = |a: &[Column], b: &[Column]| -> Vec<String> {
        let mut n: Vec<String> = a.iter().filter(|c| !b.iter().any(|d| d.name == c.name)).map(|c| c.name.clone()).collect();
        n.sort();
        n
    };
    let (columns_here_only, columns_there_only) = if here_columns.is_empty() || there_columns.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        (only(&here_columns, &there_columns), only(&there_columns, &here_columns))
    };
    // The columns both have (or those of the one side that has the table), by name; a column
    // is bytes when either side declares it so.
    let mut common: Vec<Column> = if there_columns.is_empty() {
        here_columns.clone()
    } else if here_columns.is_empty() {
        there_columns.clone()
    } else {
        here_columns
            .iter()
            .filter_map(|c| {
                let other = there_columns.iter().find(|d| d.name == c.name)?;
                Some(Column { name: c.name.clone(), bytes: c.bytes || other.bytes, text: c.text || other.text })
            })
            .collect()
    };
    common.sort_by(|a, b| a.name.cmp(&b.name));
    let digest_of = |db: &Db, cols: &[Column]| -> Result<Option<TableDigest>> {
        if cols.is_empty() { Ok(None) } else { digest(db, table, keys, &common).map(Some) }
    };
    let (here_digest, there_digest) = (digest_of(here, &here_columns)?, digest_of(there, &there_columns)?);
    let rows = match (&here_digest, &there_digest) {
        (Some(a), Some(b)) if a != b => Some(differences(here, there, table, keys, &common)?),
        _ => None,
    };
    Ok(TableComparison { table: table.to_string(), here: here_digest, there: there_digest, columns_here_only, columns_there_only, rows })
}

/// The rows and the SHA-256 over their encodings, in key order.
fn digest(db: &Db, table: &str, keys: &[&str], columns: &[Column]) -> Result<TableDigest> {
    let sql = select_sql(db.dialect(), table, keys, columns, None);
    let (mut hash, mut rows, mut row) = (sha2::Sha256::new(), 0u64, Vec::new());
    db.query_each(&sql, params![], |r| {
        encode_row(r, keys.len(), columns, &mut row)?;
        hash.update(&row);
        rows += 1;
        Ok(())
    })?;
    Ok(TableDigest { rows, sha256: hex::encode(hash.finalize()) })
}

/// `SELECT keys…, columns… FROM table [WHERE (keys) > (?1, …) … LIMIT n] ORDER BY keys`: the
/// keys first (to page and match on), then every compared column; with `page`, the page after
/// the key bound to the parameters (or the first page when `after` is false).
fn select_sql(dialect: Dialect, table: &str, keys: &[&str], columns: &[Column], page: Option<bool>) -> String {
    let list: Vec<String> = keys.iter().map(|k| quote(k)).chain(columns.iter().map(|c| quote(&c.name))).collect();
    let sorted = key_terms(dialect, keys, columns);
    let (from, order) = (quote(table), sorted.join(", "));
    match page {
        None => format!("SELECT {} FROM {from} ORDER BY {order}", list.join(", ")),
        Some(false) => format!("SELECT {} FROM {from} ORDER BY {order} LIMIT {PAGE_ROWS}", list.join(", ")),
        Some(true) => {
            let bound: Vec<String> = (1..=keys.len()).map(|i| format!("?{i}")).collect();
            let after = match sorted.as_slice() {
                [one] => format!("{one} > ?1"),
                many => format!("({}) > ({})", many.join(", "), bound.join(", ")),
            };
            format!("SELECT {} FROM {from} WHERE {after} ORDER BY {order} LIMIT {PAGE_ROWS}", list.join(", "))
        }
    }
}

/// The primary key's columns as sort terms, text byte-wise on both engines.
fn key_terms(dialect: Dialect, keys: &[&str], columns: &[Column]) -> Vec<String> {
    keys.iter()
        .map(|k| {
            let text = columns.iter().any(|c| c.name == *k && c.text);
            match (dialect, text) {
                (Dialect::Postgres, true) => format!("{} COLLATE \"C\"", quote(k)),
                _ => quote(k),
            }
        })
        .collect()
}

/// One side of a walk in key order: a page of (key, row hash) at a time.
struct Walk<'a> {
    db: &'a Db,
    rows: VecDeque<(Vec<Owned>, [u8; 32])>,
    after: Option<Vec<Owned>>,
    done: bool,
}

impl Walk<'_> {
    fn front(&mut self, table: &str, keys: &[&str], columns: &[Column]) -> Result<Option<&(Vec<Owned>, [u8; 32])>> {
        if self.rows.is_empty() && !self.done {
            let sql = select_sql(self.db.dialect(), table, keys, columns, Some(self.after.is_some()));
            let bound: Vec<&dyn ToValue> = self.after.iter().flatten().map(|v| v as &dyn ToValue).collect();
            let mut row = Vec::new();
            let page = self.db.query_map(&sql, &bound, |r| {
                let key = (0..keys.len()).map(|i| r.get_ref(i).map(Owned::from)).collect::<Result<Vec<_>>>()?;
                encode_row(r, keys.len(), columns, &mut row)?;
                Ok((key, sha2::Sha256::digest(&row).into()))
            })?;
            self.done = page.len() < PAGE_ROWS;
            self.after = page.last().map(|(k, _)| k.clone());
            self.rows.extend(page);
        }
        Ok(self.rows.front())
    }
}

/// Both tables walked side by side in key order: the rows changed and those on one side only.
fn differences(here: &Db, there: &Db, table: &str, keys: &[&str], columns: &[Column]) -> Result<RowDifferences> {
    let mut out = RowDifferences::default();
    let (mut a, mut b) = (
        Walk { db: here, rows: VecDeque::new(), after: None, done: false },
        Walk { db: there, rows: VecDeque::new(), after: None, done: false },
    );
    loop {
        let x = a.front(table, keys, columns)?.cloned();
        let y = b.front(table, keys, columns)?.cloned();
        let (key, which) = match (&x, &y) {
            (None, None) => return Ok(out),
            (Some((k, _)), None) => (k, Ordering::Less),
            (None, Some((k, _))) => (k, Ordering::Greater),
            (Some((k, h)), Some((l, i))) => match compare_keys(k, l) {
                Ordering::Equal if h == i => {
                    a.rows.pop_front();
                    b.rows.pop_front();
                    continue;
                }
                Ordering::Greater => (l, Ordering::Greater),
                other => (k, other),
            },
        };
        if out.first.is_none() {
            out.first = Some(keys.iter().zip(key).map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "));
        }
        match which {
            Ordering::Less => {
                out.only_here += 1;
                a.rows.pop_front();
            }
            Ordering::Greater => {
                out.only_there += 1;
                b.rows.pop_front();
            }
            Ordering::Equal => {
                out.changed += 1;
                a.rows.pop_front();
                b.rows.pop_front();
            }
        }
    }
}

/// Keys in the order the engines sort them: null, numbers, text (byte-wise), bytes.
fn compare_keys(a: &[Owned], b: &[Owned]) -> Ordering {
    fn rank(v: &Owned) -> u8 {
        match v {
            Owned::Null => 0,
            Owned::Int(_) | Owned::Real(_) => 1,
            Owned::Text(_) => 2,
            Owned::Blob(_) => 3,
        }
    }
    for (x, y) in a.iter().zip(b) {
        let o = match (x, y) {
            (Owned::Int(i), Owned::Int(j)) => i.cmp(j),
            (Owned::Int(i), Owned::Real(f)) => (*i as f64).total_cmp(f),
            (Owned::Real(f), Owned::Int(j)) => f.total_cmp(&(*j as f64)),
            (Owned::Real(f), Owned::Real(g)) => f.total_cmp(g),
            (Owned::Text(s), Owned::Text(t)) => s.as_bytes().cmp(t.as_bytes()),
            (Owned::Blob(s), Owned::Blob(t)) => s.cmp(t),
            _ => rank(x).cmp(&rank(y)),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// The canonical encoding of a row's compared columns (those after the `skip` key columns): per
/// value a tag, and a length before any text or bytes.
fn encode_row(r: &Row<'_>, skip: usize, columns: &[Column], out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    for (i, c) in columns.iter().enumerate() {
        match r.get_ref(skip + i)? {
            Value::Null => out.push(0),
            Value::Int(n) => {
                out.push(1);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Value::Real(f) => {
                out.push(2);
                out.extend_from_slice(&f.to_bits().to_be_bytes());
            }
            Value::Text(s) if !c.bytes => {
                out.push(3);
                out.extend_from_slice(&(s.len() as u64).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Value::Text(s) => {
                out.push(4);
                out.extend_from_slice(&(s.len() as u64).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Value::Blob(b) => {
                out.push(4);
                out.extend_from_slice(&(b.len() as u64).to_be_bytes());
                out.extend_from_slice(b);
            }
        }
    }
    Ok(())
}

/// The tables of a store: not SQLite's own, not PostgreSQL's record of the schema version.
fn table_names(db: &Db) -> Result<Vec<String>> {
    let sql = match db.dialect() {
        Dialect::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        Dialect::Postgres => {
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name::text <> 'certvigil_schema' ORDER BY 1"
        }
    };
    db.query_map(sql, params![], |r| r.get(0))
}

/// A table's columns in their declared order; none when there is no such table.
fn columns(db: &Db, table: &str) -> Result<Vec<Column>> {
    let sql = match db.dialect() {
        Dialect::Sqlite => "SELECT name, type FROM pragma_table_info(?1) ORDER BY cid",
        Dialect::Postgres => {
            "SELECT column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name::text = ?1 ORDER BY ordinal_position"
        }
    };
    db.query_map(sql, params![table], |r| {
        let ty = r.get::<String>(1)?.to_ascii_uppercase();
        Ok(Column {
            name: r.get(0)?,
            bytes: ty.contains("BLOB") || ty.contains("BYTEA"),
            text: ty.contains("TEXT") || ty.contains("CHAR") || ty.contains("CLOB"),
        })
    })
}

fn count(db: &Db, table: &str) -> Result<u64> {
    db.query_row(&format!("SELECT count(*) FROM {}", quote(table)), params![], |r| r.get(0))
}

/// The hash of the newest audit entry.
fn audit_head(db: &Db) -> Result<Option<String>> {
    db.query_opt("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1", params![], |r| r.get(0))
}

/// An identifier quoted for both engines (`key`, `trigger` and `keys` are column and table names).
fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A value read from one store (held to be written to the other), as a differing row names it.
impl std::fmt::Display for Owned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owned::Null => f.write_str("NULL"),
            Owned::Int(i) => write!(f, "{i}"),
            Owned::Real(r) => write!(f, "{r}"),
            Owned::Text(s) => f.write_str(s),
            Owned::Blob(b) => write!(f, "x'{}'", hex::encode(b)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows in a good part of the tables, with gaps in the ids, text keys that sort differently
    /// byte-wise and case-insensitively, bytes, nulls, and more rows of one table than one
    /// statement and one transaction take.
    fn populated(path: &std::path::Path) -> Store {
        let store = Store::open(path).unwrap();
        let conn = store.conn().unwrap();
        for (id, fp) in [(3, "aa"), (7, "bb")] {
            conn.execute(
                "INSERT INTO certificates (id, fingerprint, subject, issuer, common_name, serial, not_before, not_after, spki_sha256,
                   key_algorithm, signature_algorithm, is_ca, key_usage, ext_key_usage, sans, ocsp_urls, ca_issuers_urls, crl_urls,
                   self_issued, warnings, der, first_seen, subject_key)
                 VALUES (?1, ?2, 'CN=x', 'CN=CA', NULL, '01', 0, 100, 'spki', 'EC', 'ecdsa-with-SHA256', 0, '[]', '[]', '[]', '[]', '[]',
                   '[]', 0, '[]', x'00ff10', 0, NULL)",
                rusqlite::params![id, fp.repeat(32)],
            )
            .unwrap();
        }
        for name in ["b-source", "B-source", "a"] {
            conn.execute("INSERT INTO sources (name, kind, tags, last_scan_at) VALUES (?1, 'files', '[]', 5)", [name]).unwrap();
            conn.execute(
                "INSERT INTO objects (source, location, stamp, content_sha256, certs, keys, first_seen) VALUES (?1, '/x', 's', 'h', 1, 0, 1)",
                [name],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO alerts (id, subject, subject_kind, subject_name, cert_id, kind, severity, state, reason, action, opened_at)
             VALUES (9, 'cert:aa', 'certificate', 'x', 3, 'expired', 'critical', 'firing', 'r', 'a', 10)",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO outbox (id, key, alert_id, route, receiver, event, severity, payload, created_at, next_attempt_at)
             VALUES (4, 'k', 9, 'ops', 'mail', 'firing', 'critical', '{}', 10, 10)",
            [],
        )
        .unwrap();
        conn.execute_batch("BEGIN").unwrap();
        for i in 0..(TX_ROWS + 600) {
            conn.execute("INSERT INTO cert_history (cert_id, at, event, detail) VALUES (7, ?1, 'sighted', NULL)", [i as i64]).unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
        for i in 0..3 {
            store.audit(100 + i, "scan", "cli", &serde_json::json!({ "run": i })).unwrap();
        }
        store
    }

    fn rows(store: &Store, sql: &str) -> Vec<Vec<rusqlite::types::Value>> {
        let conn = store.conn().unwrap();
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| (0..n).map(|i| r.get(i)).collect()).unwrap().collect::<rusqlite::Result<_>>().unwrap()
    }

    #[test]
    fn every_table_the_migrations_create_is_listed_with_its_key_after_its_parents() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let mut created = table_names(store.db()).unwrap();
        created.sort();
        let mut listed: Vec<String> = TABLES.iter().map(|t| t.0.to_string()).collect();
        listed.sort();
        assert_eq!(
            created, listed,
            "copy::TABLES must list exactly the tables of the schema (sqlite_master), or `store migrate` would leave one behind"
        );
        let conn = store.conn().unwrap();
        let strings = |sql: &str, table: &str| -> Vec<String> {
            conn.prepare(sql).unwrap().query_map([table], |r| r.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap()
        };
        for (i, (table, keys)) in TABLES.iter().enumerate() {
            assert_eq!(strings("SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk", table), *keys, "primary key of {table}");
            for parent in strings("SELECT \"table\" FROM pragma_foreign_key_list(?1)", table) {
                assert!(TABLES[..i].iter().any(|t| t.0 == parent), "{table} refers to {parent}, which must be listed before it");
            }
        }
    }

    #[test]
    fn a_copy_keeps_every_row_id_and_column_and_compares_identical() {
        let dir = tempfile::tempdir().unwrap();
        let source = populated(&dir.path().join("a.db"));
        let target = Store::open(&dir.path().join("b.db")).unwrap();
        let mut events = Vec::new();
        let report = source
            .copy_into(&target, |p| {
                if let CopyProgress::Committed { table: "cert_history", copied, rows } = p {
                    events.push((copied, rows));
                }
            })
            .unwrap();
        assert_eq!(events, [(TX_ROWS as u64, TX_ROWS as u64 + 600), (TX_ROWS as u64 + 600, TX_ROWS as u64 + 600)]);
        assert_eq!(report.tables.len(), TABLES.len());
        assert_eq!(report.rows, 2 + 3 + 3 + 1 + 1 + TX_ROWS as u64 + 600 + 3);
        assert_eq!(report.audit_entries, 3);
        for sql in [
            "SELECT * FROM certificates ORDER BY id",
            "SELECT * FROM sources ORDER BY name",
            "SELECT * FROM objects ORDER BY source, location",
            "SELECT * FROM alerts ORDER BY id",
            "SELECT * FROM outbox ORDER BY id",
            "SELECT * FROM cert_history ORDER BY id",
            "SELECT * FROM audit_log ORDER BY id",
        ] {
            assert_eq!(rows(&source, sql), rows(&target, sql), "{sql}");
        }
        assert_eq!(target.audit_verify().unwrap(), Verdict::Intact { entries: 3 });
        let c = source.compare_with(&target).unwrap();
        assert!(c.identical(), "{c:#?}");
        assert_eq!(c.tables.len(), TABLES.len());

        // A second copy into the same store is refused and changes nothing.
        let before = rows(&target, "SELECT count(*) FROM cert_history");
        let err = source.copy_into(&target, |_| {}).unwrap_err();
        assert!(
            matches!(&err, CopyError::NotEmpty { held, .. } if held.iter().any(|(t, n)| t == "cert_history" && *n == TX_ROWS as u64 + 600)),
            "{err}"
        );
        assert!(err.to_string().contains("nothing was changed"), "{err}");
        assert_eq!(rows(&target, "SELECT count(*) FROM cert_history"), before);
    }

    #[test]
    fn a_comparison_names_the_tables_and_rows_that_differ() {
        let dir = tempfile::tempdir().unwrap();
        let source = populated(&dir.path().join("a.db"));
        let target = Store::open(&dir.path().join("b.db")).unwrap();
        source.copy_into(&target, |_| {}).unwrap();
        // One row changed there, one row only here (a text key), one audit entry only here.
        target.conn().unwrap().execute("UPDATE alerts SET acked_by = 'ops' WHERE id = 9", []).unwrap();
        source.conn().unwrap().execute("INSERT INTO sources (name, kind, tags) VALUES ('A', 'files', '[]')", []).unwrap();
        source.audit(200, "ack", "ops", &serde_json::json!({})).unwrap();
        let c = source.compare_with(&target).unwrap();
        assert!(!c.identical());
        let table = |name: &str| c.tables.iter().find(|t| t.table == name).unwrap().clone();
        let alerts = table("alerts");
        assert!(!alerts.identical());
        assert_eq!(alerts.rows, Some(RowDifferences { changed: 1, only_here: 0, only_there: 0, first: Some("id=9".into()) }), "{alerts:?}");
        let sources = table("sources");
        assert_eq!((sources.here.as_ref().unwrap().rows, sources.there.as_ref().unwrap().rows), (4, 3));
        assert_eq!(sources.rows, Some(RowDifferences { changed: 0, only_here: 1, only_there: 0, first: Some("name=A".into()) }));
        assert_eq!(table("audit_log").rows.unwrap().only_here, 1);
        assert!(!c.audit.identical());
        assert_eq!((c.audit.here.clone(), c.audit.there.clone()), (Verdict::Intact { entries: 4 }, Verdict::Intact { entries: 3 }));
        let differing: Vec<&str> = c.tables.iter().filter(|t| !t.identical()).map(|t| t.table.as_str()).collect();
        assert_eq!(differing, ["sources", "alerts", "audit_log"]);
    }

    #[test]
    fn pages_of_a_walk_follow_the_key_order_of_both_engines() {
        // More rows than a page, on text keys whose byte order is not their case-blind order.
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Store::open(&dir.path().join("a.db")).unwrap(), Store::open(&dir.path().join("b.db")).unwrap());
        for (store, skip) in [(&a, 1500), (&b, 700)] {
            let conn = store.conn().unwrap();
            conn.execute_batch("BEGIN").unwrap();
            for i in 0..(2 * PAGE_ROWS + 10) {
                if i != skip {
                    let name = if i % 2 == 0 { format!("S{i:05}") } else { format!("s{i:05}") };
                    conn.execute("INSERT INTO sources (name, kind, tags) VALUES (?1, 'files', '[]')", [name]).unwrap();
                }
            }
            conn.execute_batch("COMMIT").unwrap();
        }
        let sources = a.compare_with(&b).unwrap().tables.into_iter().find(|t| t.table == "sources").unwrap();
        assert_eq!(sources.rows, Some(RowDifferences { changed: 0, only_here: 1, only_there: 1, first: Some("name=S00700".into()) }));
    }

    #[test]
    fn a_source_with_a_broken_audit_log_is_not_copied() {
        let dir = tempfile::tempdir().unwrap();
        let source = populated(&dir.path().join("a.db"));
        let conn = source.conn().unwrap();
        conn.execute_batch("DROP TRIGGER audit_log_no_update").unwrap();
        conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE id = 2", []).unwrap();
        let target = Store::open(&dir.path().join("b.db")).unwrap();
        let err = source.copy_into(&target, |_| {}).unwrap_err();
        assert!(matches!(err, CopyError::AuditBroken { id: 2, .. }), "{err}");
        assert_eq!(rows(&target, "SELECT count(*) FROM certificates"), [[rusqlite::types::Value::Integer(0)]]);
    }
}
