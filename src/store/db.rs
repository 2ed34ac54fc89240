//! One connection type over the two engines the store runs on: SQLite (the embedded default) and
//! PostgreSQL (several daemons on one database). Store operations are written once against
//! [`Db`]; only the statements whose SQL differs between the engines ask [`Db::dialect`].
//!
//! SQL is written with SQLite's numbered parameters (`?1`, `?2`, …); for PostgreSQL they become
//! `$1`, `$2`, … once per statement text, and prepared statements are cached per connection on
//! both engines. Values cross as [`Value`] (integer, real, text, blob, null): every integer column
//! is 64-bit on both sides, so a row reads the same whichever engine wrote it.

use super::{Result, StoreError};
use std::collections::HashMap;

/// Which SQL a statement must be written in, where the two differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A parameter value, borrowed from the caller.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// A column value of a row, borrowed from the row.
pub type ValueRef<'a> = Value<'a>;

impl<'a> Value<'a> {
    /// The text of a text column.
    pub fn as_str(&self) -> Result<&'a str> {
        match self {
            Value::Text(s) => Ok(s),
            other => Err(StoreError::Corrupt { what: "column", detail: format!("expected text, found {}", other.kind()) }),
        }
    }

    /// The text of a text column that may be null.
    pub fn as_opt_str(&self) -> Result<Option<&'a str>> {
        match self {
            Value::Null => Ok(None),
            other => other.as_str().map(Some),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Int(_) => "integer",
            Value::Real(_) => "real",
            Value::Text(_) => "text",
            Value::Blob(_) => "blob",
        }
    }
}

/// Something that binds as a statement parameter.
pub trait ToValue {
    fn to_value(&self) -> Value<'_>;
}

macro_rules! int_values {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value<'_> {
                Value::Int(i64::from(*self))
            }
        }
    )*};
}
int_values!(i64, i32, i16, i8, u32, u16, u8, bool);

impl ToValue for usize {
    fn to_value(&self) -> Value<'_> {
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToValue for u64 {
    fn to_value(&self) -> Value<'_> {
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToValue for f64 {
    fn to_value(&self) -> Value<'_> {
        Value::Real(*self)
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl<const N: usize> ToValue for [u8; N] {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value<'_> {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value<'_> {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
}

impl ToValue for Value<'_> {
    fn to_value(&self) -> Value<'_> {
        *self
    }
}

/// A parameter value that owns its text or bytes: rows kept for a later statement (the scan's
/// batched writes) and parameters handed to PostgreSQL's thread.
#[derive(Debug, Clone, PartialEq)]
pub enum Owned {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Owned {
    pub fn of(v: &dyn ToValue) -> Owned {
        Owned::from(v.to_value())
    }
}

impl From<Value<'_>> for Owned {
    fn from(v: Value<'_>) -> Owned {
        match v {
            Value::Null => Owned::Null,
            Value::Int(i) => Owned::Int(i),
            Value::Real(f) => Owned::Real(f),
            Value::Text(t) => Owned::Text(t.to_string()),
            Value::Blob(b) => Owned::Blob(b.to_vec()),
        }
    }
}

impl ToValue for Owned {
    fn to_value(&self) -> Value<'_> {
        match self {
            Owned::Null => Value::Null,
            Owned::Int(i) => Value::Int(*i),
            Owned::Real(f) => Value::Real(*f),
            Owned::Text(t) => Value::Text(t),
            Owned::Blob(b) => Value::Blob(b),
        }
    }
}

/// Statement parameters: `params![a, b, c]`, like rusqlite's macro of the same name.
macro_rules! params {
    () => {
        &[] as &[&dyn $crate::store::db::ToValue]
    };
    ($($p:expr),+ $(,)?) => {
        &[$(&$p as &dyn $crate::store::db::ToValue),+] as &[&dyn $crate::store::db::ToValue]
    };
}
pub(crate) use params;

/// Something a column reads into.
pub trait FromValue: Sized {
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String>;
}

impl FromValue for i64 {
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            Value::Int(i) => Ok(i),
            other => Err(format!("expected an integer, found {}", other.kind())),
        }
    }
}

macro_rules! narrow_ints {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
                let i = i64::from_value(v)?;
                <$t>::try_from(i).map_err(|_| format!("{i} is out of range for {}", stringify!($t)))
            }
        }
    )*};
}
narrow_ints!(i32, u32, u16, u8, usize, u64);

impl FromValue for bool {
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        Ok(i64::from_value(v)? != 0)
    }
}

impl FromValue for f64 {
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            Value::Real(r) => Ok(r),
            Value::Int(i) => Ok(i as f64),
            other => Err(format!("expected a number, found {}", other.kind())),
        }
    }
}

impl FromValue for String {
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s.to_string()),
            other => Err(format!("expected text, found {}", other.kind())),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            Value::Blob(b) => Ok(b.to_vec()),
            Value::Text(s) => Ok(s.as_bytes().to_vec()),
            other => Err(format!("expected a blob, found {}", other.kind())),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// One row of a result.
pub enum Row<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Postgres(&'a postgres::Row),
}

impl Row<'_> {
    /// Column `i` (from 0) as `T`.
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T> {
        let v = self.get_ref(i)?;
        T::from_value(v).map_err(|detail| StoreError::Corrupt { what: "column", detail: format!("column {i}: {detail}") })
    }

    /// Column `i` (from 0), borrowed.
    pub fn get_ref(&self, i: usize) -> Result<ValueRef<'_>> {
        match self {
            Row::Sqlite(r) => Ok(match r.get_ref(i)? {
                rusqlite::types::ValueRef::Null => Value::Null,
                rusqlite::types::ValueRef::Integer(n) => Value::Int(n),
                rusqlite::types::ValueRef::Real(f) => Value::Real(f),
                rusqlite::types::ValueRef::Text(t) => Value::Text(
                    std::str::from_utf8(t).map_err(|e| StoreError::Corrupt { what: "column", detail: format!("column {i}: {e}") })?,
                ),
                rusqlite::types::ValueRef::Blob(b) => Value::Blob(b),
            }),
            Row::Postgres(r) => pg::column(r, i),
        }
    }
}

/// A connection to one of the two engines.
pub enum Db {
    Sqlite(rusqlite::Connection),
    Postgres(pg::Conn),
}

impl Db {
    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(_) => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs one statement; the number of rows it changed.
    pub fn execute(&self, sql: &str, params: &[&dyn ToValue]) -> Result<usize> {
        match self {
            Db::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                Ok(stmt.execute(rusqlite::params_from_iter(params.iter().map(|p| Bind(p.to_value()))))?)
            }
            Db::Postgres(c) => c.execute(sql, params),
        }
    }

    /// Runs statements separated by `;`, without parameters.
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Db::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Db::Postgres(c) => c.batch(sql),
        }
    }

    /// Calls `f` on every row, in order, without holding the result in memory. `f` may use
    /// the store: on PostgreSQL the rows come through a cursor, a batch at a time.
    pub fn query_each(&self, sql: &str, params: &[&dyn ToValue], mut f: impl FnMut(&Row<'_>) -> Result<()>) -> Result<()> {
        match self {
            Db::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter().map(|p| Bind(p.to_value()))))?;
                while let Some(r) = rows.next()? {
                    f(&Row::Sqlite(r))?;
                }
                Ok(())
            }
            Db::Postgres(c) => c.query_each(sql, params, &mut f),
        }
    }

    /// Every row, mapped by `f`.
    pub fn query_map<T>(&self, sql: &str, params: &[&dyn ToValue], mut f: impl FnMut(&Row<'_>) -> Result<T>) -> Result<Vec<T>> {
        match self {
            Db::Sqlite(_) => {
                let mut out = Vec::new();
                self.query_each(sql, params, |r| {
                    out.push(f(r)?);
                    Ok(())
                })?;
                Ok(out)
            }
            Db::Postgres(c) => c.query_all(sql, params)?.iter().map(|r| f(&Row::Postgres(r))).collect(),
        }
    }

    /// The first row mapped by `f`, or `None` when there is none; the rest are not read.
    pub fn query_opt<T>(&self, sql: &str, params: &[&dyn ToValue], f: impl FnOnce(&Row<'_>) -> Result<T>) -> Result<Option<T>> {
        match self {
            Db::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter().map(|p| Bind(p.to_value()))))?;
                match rows.next()? {
                    Some(r) => Ok(Some(f(&Row::Sqlite(r))?)),
                    None => Ok(None),
                }
            }
            Db::Postgres(c) => match c.query_first(sql, params)? {
                Some(r) => Ok(Some(f(&Row::Postgres(&r))?)),
                None => Ok(None),
            },
        }
    }

    /// The first row mapped by `f`; [`StoreError::NoRow`] when there is none.
    pub fn query_row<T>(&self, sql: &str, params: &[&dyn ToValue], f: impl FnOnce(&Row<'_>) -> Result<T>) -> Result<T> {
        self.query_opt(sql, params, f)?.ok_or(StoreError::NoRow)
    }

    /// Inserts many rows: `head` (`INSERT INTO t (a, b)`), then `VALUES (?1, ?2), (?3, ?4), …`
    /// over `values` taken `width` at a time, then `tail` (`ON CONFLICT …`, `RETURNING …`, or
    /// nothing); `f` sees every row a `RETURNING` tail gives back. A statement carries up to
    /// [`ROWS_PER_STATEMENT`] rows — on PostgreSQL one round trip and one execution for all of
    /// them instead of one per row — in a few fixed sizes ([`chunks`]), so that any number of
    /// rows takes a handful of statement texts, each prepared once and cached.
    pub fn insert_rows<V: ToValue>(
        &self,
        head: &str,
        tail: &str,
        width: usize,
        values: &[V],
        mut f: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        if width == 0 || !values.len().is_multiple_of(width) {
            return Err(StoreError::Corrupt { what: "rows", detail: format!("{} values do not make rows of {width}", values.len()) });
        }
        let returning = tail.contains("RETURNING");
        let mut at = 0;
        for n in chunks(values.len() / width, width) {
            // Bare `?`s, numbered in order by both engines (and by [`postgres_sql`]).
            let row = format!("({})", vec!["?"; width].join(", "));
            let mut sql = String::with_capacity(head.len() + tail.len() + 16 + n * (row.len() + 2));
            sql.push_str(head);
            sql.push_str(" VALUES ");
            for r in 0..n {
                if r > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&row);
            }
            sql.push(' ');
            sql.push_str(tail);
            let params: Vec<&dyn ToValue> = values[at * width..(at + n) * width].iter().map(|v| v as &dyn ToValue).collect();
            if returning {
                self.query_returning(&sql, &params, &mut f)?;
            } else {
                self.execute(&sql, &params)?;
            }
            at += n;
        }
        Ok(())
    }

    /// Runs `{head} IN (…){tail}` over `keys`, as many statements as [`chunks`] makes of them;
    /// `fixed` are the parameters `head` and `tail` number from `?1`. `f` sees every row.
    pub fn query_in<K: ToValue>(
        &self,
        head: &str,
        fixed: &[&dyn ToValue],
        keys: &[K],
        tail: &str,
        mut f: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        let mut at = 0;
        for n in chunks(keys.len(), 1) {
            // `?N` for the first key, bare `?`s after it: numbered on from N by both engines.
            let mut sql = String::with_capacity(head.len() + tail.len() + 16 + n * 3);
            sql.push_str(head);
            sql.push_str(" IN (?");
            sql.push_str(&(fixed.len() + 1).to_string());
            for _ in 1..n {
                sql.push_str(", ?");
            }
            sql.push(')');
            sql.push_str(tail);
            let mut params: Vec<&dyn ToValue> = fixed.to_vec();
            params.extend(keys[at..at + n].iter().map(|k| k as &dyn ToValue));
            self.query_returning(&sql, &params, &mut f)?;
            at += n;
        }
        Ok(())
    }

    /// Every row of a statement that may write (`INSERT … RETURNING`): on PostgreSQL such a
    /// statement cannot sit behind a cursor, so its rows come at once — callers keep them few.
    fn query_returning(&self, sql: &str, params: &[&dyn ToValue], f: &mut dyn FnMut(&Row<'_>) -> Result<()>) -> Result<()> {
        match self {
            Db::Sqlite(_) => self.query_each(sql, params, f),
            Db::Postgres(c) => c.query_all(sql, params)?.iter().try_for_each(|r| f(&Row::Postgres(r))),
        }
    }

    /// Starts a transaction, rolled back unless committed. SQLite's starts deferred, like
    /// rusqlite's; PostgreSQL's is READ COMMITTED, its default.
    pub fn transaction(&self) -> Result<Tx<'_>> {
        self.execute_batch("BEGIN")?;
        Ok(Tx { db: self, open: true })
    }

    /// Starts a transaction that takes the write lock at once (SQLite's `BEGIN IMMEDIATE`; on
    /// PostgreSQL rows are locked as they are written, so it is a plain `BEGIN`).
    pub fn transaction_immediate(&self) -> Result<Tx<'_>> {
        self.execute_batch(match self.dialect() {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        })?;
        Ok(Tx { db: self, open: true })
    }
}

/// An open transaction on a [`Db`]; statements go through it as through the connection.
pub struct Tx<'a> {
    db: &'a Db,
    open: bool,
}

impl Tx<'_> {
    pub fn commit(mut self) -> Result<()> {
        self.open = false;
        self.db.execute_batch("COMMIT")
    }

    pub fn rollback(mut self) -> Result<()> {
        self.open = false;
        self.db.execute_batch("ROLLBACK")
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.db.execute_batch("ROLLBACK");
        }
    }
}

/// A [`Value`] bound to a SQLite statement.
struct Bind<'a>(Value<'a>);

impl rusqlite::ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef as R};
        Ok(ToSqlOutput::Borrowed(match self.0 {
            Value::Null => R::Null,
            Value::Int(i) => R::Integer(i),
            Value::Real(f) => R::Real(f),
            Value::Text(s) => R::Text(s.as_bytes()),
            Value::Blob(b) => R::Blob(b),
        }))
    }
}

/// Rewrites SQLite's numbered parameters (`?1`) as PostgreSQL's (`$1`), leaving string literals,
/// quoted identifiers and comments alone. A bare `?` takes the next number, as in SQLite.
pub fn postgres_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut next = 1u32;
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                let n = digits.parse().unwrap_or(next);
                next = n + 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

/// Rows per multi-row statement at most ([`Db::insert_rows`], [`Db::query_in`]).
pub const ROWS_PER_STATEMENT: usize = 256;

/// Parameters per statement at most: SQLite allows 32,766 (`SQLITE_MAX_VARIABLE_NUMBER` since
/// 3.32), PostgreSQL 65,535 (a 16-bit count in the Bind message).
const MAX_PARAMS: usize = 32_000;

/// The row counts, in order, of the statements that carry `rows` rows of `width` values: as many
/// of [`ROWS_PER_STATEMENT`] as fit, then 64, 16, 4 and 1 — five statement texts at most per
/// kind of write, each used again and again (and so prepared once), where a statement per exact
/// count would prepare a new one almost every time.
pub fn chunks(rows: usize, width: usize) -> impl Iterator<Item = usize> {
    let most = (MAX_PARAMS / width.max(1)).max(1);
    let mut left = rows;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let n = [ROWS_PER_STATEMENT, 64, 16, 4, 1].into_iter().find(|&s| s <= left && s <= most).unwrap_or(1);
        left -= n;
        Some(n)
    })
}

/// The PostgreSQL side: a blocking client on a thread of its own, its cached statements, and the
/// mapping between [`Value`] and the wire types.
///
/// The client blocks on a runtime of its own, which must not be started on a thread already
/// driving async tasks; store calls come from such threads too (the CLI's current-thread
/// runtimes, the daemon's evaluation). So the client lives on its own thread and each call sends
/// it one job and waits for the answer — blocking the caller exactly as a SQLite call does.
pub mod pg {
    use super::{Owned, Result, StoreError, ToValue, Value, ValueRef};
    use postgres::fallible_iterator::FallibleIterator;
    use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
    use std::cell::Cell;
    use std::sync::mpsc;

    type Job = Box<dyn FnOnce(&mut Worker) + Send>;

    /// What lives on the connection's thread.
    struct Worker {
        client: postgres::Client,
        statements: super::HashMap<String, postgres::Statement>,
    }

    impl Worker {
        fn statement(&mut self, sql: &str) -> Result<postgres::Statement> {
            if let Some(s) = self.statements.get(sql) {
                return Ok(s.clone());
            }
            let stmt = self.client.prepare(&super::postgres_sql(sql)).map_err(|e| StoreError::pg(e, sql))?;
            // Statements built from variable text (lists of ids) would grow the cache without
            // bound: past a few hundred, start again.
            if self.statements.len() >= 512 {
                self.statements.clear();
            }
            self.statements.insert(sql.to_string(), stmt.clone());
            Ok(stmt)
        }
    }

    pub struct Conn {
        jobs: mpsc::Sender<Job>,
        /// A transaction is open (the statements `BEGIN` … `COMMIT`/`ROLLBACK` went through).
        in_tx: Cell<bool>,
        /// Cursors open, innermost last: a row callback may itself walk a result.
        cursors: Cell<u32>,
    }

    impl Conn {
        /// Connects on the connection's own thread (the client's connect blocks on its
        /// runtime too) and keeps the client there.
        pub fn connect(connect: impl FnOnce() -> Result<postgres::Client> + Send + 'static) -> Result<Conn> {
            let (jobs, inbox) = mpsc::channel::<Job>();
            let (ready, connected) = mpsc::sync_channel::<Result<()>>(1);
            std::thread::Builder::new()
                .name("certvigil-pg".into())
                .spawn(move || {
                    let client = match connect() {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready.send(Ok(()));
                    let mut worker = Worker { client, statements: super::HashMap::new() };
                    for job in inbox {
                        job(&mut worker);
                    }
                })
                .map_err(|e| StoreError::Postgres(format!("cannot start the connection's thread: {e}")))?;
            connected.recv().map_err(|_| gone())??;
            Ok(Conn { jobs, in_tx: Cell::new(false), cursors: Cell::new(0) })
        }

        fn call<T: Send + 'static>(&self, f: impl FnOnce(&mut Worker) -> Result<T> + Send + 'static) -> Result<T> {
            let (reply, answer) = mpsc::sync_channel(1);
            self.jobs.send(Box::new(move |w| drop(reply.send(f(w))))).map_err(|_| gone())?;
            answer.recv().map_err(|_| gone())?
        }

        pub fn execute(&self, sql: &str, params: &[&dyn ToValue]) -> Result<usize> {
            let (sql, params) = (sql.to_string(), owned(params));
            self.call(move |w| {
                let stmt = w.statement(&sql)?;
                let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                let n = w.client.execute(&stmt, &refs).map_err(|e| StoreError::pg(e, &sql))?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            })
        }

        pub fn batch(&self, sql: &str) -> Result<()> {
            let word = sql.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
            let text = sql.to_string();
            let result = self.call(move |w| w.client.batch_execute(&text).map_err(|e| StoreError::pg(e, &text)));
            match word.as_str() {
                "BEGIN" | "START" if result.is_ok() => self.in_tx.set(true),
                "COMMIT" | "ROLLBACK" | "END" => self.in_tx.set(false),
                _ => {}
            }
            result
        }

        /// Every row of the result.
        pub fn query_all(&self, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<postgres::Row>> {
            let (sql, params) = (sql.to_string(), owned(params));
            self.call(move |w| {
                let stmt = w.statement(&sql)?;
                let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                w.client.query(&stmt, &refs).map_err(|e| StoreError::pg(e, &sql))
            })
        }

        /// The first row of the result; the rest are not sent on.
        pub fn query_first(&self, sql: &str, params: &[&dyn ToValue]) -> Result<Option<postgres::Row>> {
            let (sql, params) = (sql.to_string(), owned(params));
            self.call(move |w| {
                let stmt = w.statement(&sql)?;
                let mut rows = w.client.query_raw(&stmt, params.iter()).map_err(|e| StoreError::pg(e, &sql))?;
                rows.next().map_err(|e| StoreError::pg(e, &sql))
            })
        }

        /// Walks the result through a cursor, [`FETCH`] rows at a time, so that neither side
        /// holds all of it and `f` may run statements of its own between batches. A cursor lives
        /// in a transaction: the caller's, or one opened for the walk and committed after it
        /// (statements `f` runs then commit with it, as each would have on its own).
        pub fn query_each(&self, sql: &str, params: &[&dyn ToValue], f: &mut dyn FnMut(&super::Row<'_>) -> Result<()>) -> Result<()> {
            let depth = self.cursors.get();
            let name = format!("certvigil_cursor_{depth}");
            let own_tx = !self.in_tx.get();
            if own_tx {
                self.batch("BEGIN")?;
            }
            let declare = format!("DECLARE {name} NO SCROLL CURSOR FOR {sql}");
            let opened = self.execute(&declare, params);
            self.cursors.set(depth + 1);
            let walked = opened.and_then(|_| {
                loop {
                    // Described afresh each time: the same cursor name carries other queries'
                    // columns on other walks, so a cached FETCH would decode them wrongly.
                    let fetch = format!("FETCH FORWARD {FETCH} FROM {name}");
                    let rows = self.call(move |w| w.client.query(fetch.as_str(), &[]).map_err(|e| StoreError::pg(e, &fetch)))?;
                    for row in &rows {
                        f(&super::Row::Postgres(row))?;
                    }
                    if rows.len() < FETCH {
                        return Ok(());
                    }
                }
            });
            self.cursors.set(depth);
            // Closed however the walk ended: a walk its callback stopped (`Stopped`, the caller's
            // own error) leaves the caller's transaction usable, and a cursor left open there
            // would clash with the next walk at this depth ("cursor already exists"). After a
            // server error the transaction is aborted and refuses CLOSE too: that error is not
            // the one to report, and the transaction's end discards the cursor.
            let closed = match (&walked, self.batch(&format!("CLOSE {name}"))) {
                (Ok(()), closed) => closed,
                (Err(_), _) => Ok(()),
            };
            let ended = if own_tx { self.batch("COMMIT") } else { Ok(()) };
            walked.and(closed).and(ended)
        }

        /// The client itself, for what the store does only on PostgreSQL (advisory locks).
        pub fn with_client<T: Send + 'static>(&self, f: impl FnOnce(&mut postgres::Client) -> Result<T> + Send + 'static) -> Result<T> {
            self.call(move |w| f(&mut w.client))
        }
    }

    /// Rows a cursor hands over at a time.
    const FETCH: usize = 500;

    fn gone() -> StoreError {
        StoreError::Postgres("the connection's thread has stopped".into())
    }

    /// Parameters copied for the connection's thread.
    fn owned(params: &[&dyn ToValue]) -> Vec<Param> {
        params.iter().map(|p| Param(Owned::of(*p))).collect()
    }

    /// A value bound to a PostgreSQL statement, converted to the parameter's declared type.
    #[derive(Debug)]
    struct Param(Owned);

    impl ToSql for Param {
        fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
            match (self.0.to_value(), ty) {
                (Value::Null, _) => Ok(IsNull::Yes),
                (Value::Int(i), &Type::INT8) => i.to_sql(ty, out),
                (Value::Int(i), &Type::INT4) => i32::try_from(i)?.to_sql(ty, out),
                (Value::Int(i), &Type::INT2) => i16::try_from(i)?.to_sql(ty, out),
                (Value::Int(i), &Type::BOOL) => (i != 0).to_sql(ty, out),
                (Value::Int(i), &Type::FLOAT8) => (i as f64).to_sql(ty, out),
                (Value::Int(i), &Type::TEXT | &Type::VARCHAR | &Type::UNKNOWN) => i.to_string().to_sql(&Type::TEXT, out),
                (Value::Real(f), &Type::FLOAT8) => f.to_sql(ty, out),
                (Value::Real(f), &Type::FLOAT4) => (f as f32).to_sql(ty, out),
                (Value::Text(s), &Type::TEXT | &Type::VARCHAR | &Type::BPCHAR | &Type::NAME | &Type::UNKNOWN) => {
                    without_nul(s).as_ref().to_sql(ty, out)
                }
                (Value::Text(s), &Type::BYTEA) => s.as_bytes().to_sql(ty, out),
                (Value::Blob(b), &Type::BYTEA) => b.to_sql(ty, out),
                (v, ty) => Err(format!("a {} value cannot be bound to a parameter of type {ty}", v.kind()).into()),
            }
        }

        fn accepts(_: &Type) -> bool {
            true
        }

        to_sql_checked!();
    }

    /// `s` with U+0000 replaced by U+FFFD. PostgreSQL's text cannot hold U+0000 ("invalid byte
    /// sequence for encoding UTF8: 0x00") where SQLite's can, and some text comes from what is
    /// scanned: a certificate whose CN holds a NUL, a token's key label, a keystore alias. Refused,
    /// one such value would fail the whole scan's transaction; replaced, it reads back as the
    /// replacement character (SQLite keeps the NUL). Nothing the store looks rows up by (ids,
    /// fingerprints, source names, locations) holds a NUL in practice.
    fn without_nul(s: &str) -> std::borrow::Cow<'_, str> {
        if s.contains('\0') { std::borrow::Cow::Owned(s.replace('\0', "\u{fffd}")) } else { std::borrow::Cow::Borrowed(s) }
    }

    /// A column's bytes in the binary format, read whatever its type.
    struct Raw<'a>(Option<&'a [u8]>);

    impl<'a> FromSql<'a> for Raw<'a> {
        fn from_sql(_: &Type, raw: &'a [u8]) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
            Ok(Raw(Some(raw)))
        }
        fn from_sql_null(_: &Type) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
            Ok(Raw(None))
        }
        fn accepts(_: &Type) -> bool {
            true
        }
    }

    pub(super) fn column<'r>(row: &'r postgres::Row, i: usize) -> Result<ValueRef<'r>> {
        let ty = row
            .columns()
            .get(i)
            .map(|c| c.type_().clone())
            .ok_or(StoreError::Corrupt { what: "column", detail: format!("no column {i} in a row of {}", row.len()) })?;
        let Raw(raw) = row.try_get::<_, Raw<'r>>(i).map_err(|e| StoreError::pg(e, "reading a row"))?;
        let Some(raw) = raw else { return Ok(Value::Null) };
        let bad = |detail: String| StoreError::Corrupt { what: "column", detail: format!("column {i} ({ty}): {detail}") };
        let fixed =
            |n: usize| -> Result<&[u8]> { raw.get(..n).filter(|_| raw.len() == n).ok_or_else(|| bad(format!("{} bytes", raw.len()))) };
        Ok(match &ty {
            &Type::INT8 => Value::Int(i64::from_be_bytes(fixed(8)?.try_into().map_err(|_| bad("length".into()))?)),
            &Type::INT4 => Value::Int(i32::from_be_bytes(fixed(4)?.try_into().map_err(|_| bad("length".into()))?).into()),
            &Type::INT2 => Value::Int(i16::from_be_bytes(fixed(2)?.try_into().map_err(|_| bad("length".into()))?).into()),
            &Type::BOOL => Value::Int(i64::from(fixed(1)?[0] != 0)),
            &Type::FLOAT8 => Value::Real(f64::from_be_bytes(fixed(8)?.try_into().map_err(|_| bad("length".into()))?)),
            &Type::FLOAT4 => Value::Real(f32::from_be_bytes(fixed(4)?.try_into().map_err(|_| bad("length".into()))?).into()),
            &Type::NUMERIC => numeric(raw).map_err(bad)?,
            &Type::BYTEA => Value::Blob(raw),
            &Type::TEXT | &Type::VARCHAR | &Type::BPCHAR | &Type::NAME | &Type::UNKNOWN | &Type::JSON => {
                Value::Text(std::str::from_utf8(raw).map_err(|e| bad(e.to_string()))?)
            }
            other => return Err(bad(format!("type {other} is not one the store reads"))),
        })
    }

    /// A `numeric` (what PostgreSQL's `sum` of integers returns) as an integer when it is one,
    /// else as a real. Binary form: digit count, weight, sign, display scale, then base-10000
    /// digits, all 16-bit big-endian.
    fn numeric(raw: &[u8]) -> std::result::Result<ValueRef<'static>, String> {
        let word = |k: usize| raw.get(2 * k..2 * k + 2).map(|b| i16::from_be_bytes([b[0], b[1]])).ok_or("numeric: truncated");
        let (ndigits, weight, sign) = (word(0)?, word(1)?, word(2)? as u16);
        if sign == 0xC000 {
            return Err("numeric: NaN".into());
        }
        let mut value = 0f64;
        let mut int: Option<i64> = Some(0);
        for k in 0..usize::try_from(ndigits).map_err(|_| "numeric: digit count")? {
            let d = i64::from(word(4 + k)?);
            let power = i32::from(weight) - i32::try_from(k).map_err(|_| "numeric: size")?;
            value += d as f64 * 10_000f64.powi(power);
            int = match (int, power) {
                (Some(acc), p) if p >= 0 => 10_000i64.checked_pow(p as u32).and_then(|m| d.checked_mul(m)).and_then(|x| acc.checked_add(x)),
                (Some(acc), _) if d == 0 => Some(acc),
                _ => None,
            };
        }
        let negative = sign == 0x4000;
        Ok(match int {
            Some(i) => Value::Int(if negative { -i } else { i }),
            None => Value::Real(if negative { -value } else { value }),
        })
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn numerics_decode() {
            // 1234567 = digits [123, 4567], weight 1; -5 = [5] weight 0 negative; 2.5 = [2, 5000] weight 0.
            let enc = |n: i16, w: i16, s: u16, ds: &[i16]| {
                let mut v = Vec::new();
                for x in [n, w, s as i16, 0].iter().chain(ds) {
                    v.extend_from_slice(&x.to_be_bytes());
                }
                v
            };
            assert!(matches!(super::numeric(&enc(2, 1, 0, &[123, 4567])), Ok(super::Value::Int(1_234_567))));
            assert!(matches!(super::numeric(&enc(1, 0, 0x4000, &[5])), Ok(super::Value::Int(-5))));
            assert!(matches!(super::numeric(&enc(2, 0, 0, &[2, 5000])), Ok(super::Value::Real(r)) if (r - 2.5).abs() < 1e-9));
            assert!(matches!(super::numeric(&enc(0, 0, 0, &[])), Ok(super::Value::Int(0))));
            assert!(super::numeric(&enc(0, 0, 0xC000, &[])).is_err());
            assert!(super::numeric(&[0, 1]).is_err());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::postgres_sql;

    #[test]
    fn parameters_are_renumbered_outside_literals_and_comments() {
        assert_eq!(postgres_sql("SELECT a FROM t WHERE b = ?1 AND c = ?12"), "SELECT a FROM t WHERE b = $1 AND c = $12");
        assert_eq!(postgres_sql("SELECT '?1', \"?2\" -- ?3\n, ?2"), "SELECT '?1', \"?2\" -- ?3\n, $2");
        assert_eq!(postgres_sql("VALUES (?, ?, ?5, ?)"), "VALUES ($1, $2, $5, $6)");
        assert_eq!(postgres_sql("SELECT 'it''s ?1'"), "SELECT 'it''s ?1'");
    }
}
