//! Stores for tests, on either engine: a SQLite file in a temporary directory, or a fresh
//! database on the test run's throwaway PostgreSQL cluster (`tests/postgres.sh`, started by
//! `tests/run.sh`, which exports its admin URL as `CERTVIGIL_TEST_POSTGRES`). Without the
//! cluster a PostgreSQL test fails, saying how to get one: it never skips.
//!
//! The helpers are synchronous: the admin client (`postgres::Client`) blocks on a runtime of
//! its own, so it must not be called from a thread that drives async tasks.

use super::{Store, StoreError};
use crate::model::store_location::{PostgresTarget, StoreLocation};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A store under test, with what it takes to open it again (a second connection, a reopen
/// after migration) and the engine's name for messages.
pub(crate) struct TestStore {
    /// `sqlite` or `postgres`.
    pub name: &'static str,
    pub store: Store,
    place: Place,
}

enum Place {
    Sqlite { path: PathBuf, _dir: tempfile::TempDir },
    Postgres(Database),
}

impl TestStore {
    /// Another store on the same database (another daemon, another CLI process): opened, and
    /// so migrated, as [`Store::open`] and [`Store::open_postgres`] do.
    pub fn open_again(&self) -> Store {
        match &self.place {
            Place::Sqlite { path, .. } => Store::open(path),
            Place::Postgres(db) => Store::open_postgres(&target(&db.url)),
        }
        .unwrap_or_else(|e| panic!("{}: open again: {e}", self.name))
    }

    /// Where the store is, as the configuration names it.
    pub fn location(&self) -> StoreLocation {
        match &self.place {
            Place::Sqlite { path, .. } => StoreLocation::File(path.clone()),
            Place::Postgres(db) => StoreLocation::Postgres(target(&db.url)),
        }
    }

    /// The PostgreSQL database's URL (`None` on SQLite).
    pub fn postgres_url(&self) -> Option<&str> {
        match &self.place {
            Place::Sqlite { .. } => None,
            Place::Postgres(db) => Some(&db.url),
        }
    }
}

impl std::ops::Deref for TestStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

impl std::ops::DerefMut for TestStore {
    fn deref_mut(&mut self) -> &mut Store {
        &mut self.store
    }
}

/// A new SQLite store in a temporary directory.
pub(crate) fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("state.db");
    let store = Store::open(&path).unwrap_or_else(|e| panic!("sqlite: open {}: {e}", path.display()));
    TestStore { name: "sqlite", store, place: Place::Sqlite { path, _dir: dir } }
}

/// A new store in a database of its own on the test cluster, opened (and migrated) by
/// [`Store::open_postgres`].
pub(crate) fn postgres() -> TestStore {
    let db = fresh_database();
    let store = Store::open_postgres(&target(&db.url)).unwrap_or_else(|e| panic!("postgres: open {}: {e}", db.url));
    // Declared after `store`, the database is dropped after the store's connection is closed.
    TestStore { name: "postgres", store, place: Place::Postgres(db) }
}

/// The same empty store on each engine, SQLite first.
pub(crate) fn both() -> [TestStore; 2] {
    [sqlite(), postgres()]
}

/// The cluster's admin URL (`postgres://certvigil@127.0.0.1:PORT/postgres`).
pub(crate) fn admin_url() -> String {
    std::env::var("CERTVIGIL_TEST_POSTGRES").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| {
        panic!(
            "CERTVIGIL_TEST_POSTGRES is not set: run the tests with tests/run.sh, which starts a throwaway PostgreSQL \
             cluster, or start one with `tests/postgres.sh start DIR` and export the URL it prints as CERTVIGIL_TEST_POSTGRES"
        )
    })
}

/// A connection to `url` with the plain client, for what a test does behind the store's back.
pub(crate) fn client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// A database on the test cluster, dropped with this value.
pub(crate) struct Database {
    pub name: String,
    pub url: String,
}

impl Drop for Database {
    fn drop(&mut self) {
        // The cluster lives for one test run; dropping each database keeps it small. FORCE ends
        // any connection a test left open (a store moved into a thread, a panic).
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = postgres::Client::connect(&admin_url(), postgres::NoTls).and_then(|mut c| c.batch_execute(&sql));
    }
}

/// A new, empty database `cv_<pid>_<n>` on the cluster. Nothing is in it, not even the store's
/// schema.
pub(crate) fn fresh_database() -> Database {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!("cv_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let admin = admin_url();
    client(&admin).batch_execute(&format!("CREATE DATABASE {name}")).unwrap_or_else(|e| panic!("create database {name}: {e}"));
    // The admin URL with its database replaced, its query (`?sslmode=…`) kept.
    let (path, query) = admin.split_once('?').map_or((admin.as_str(), String::new()), |(p, q)| (p, format!("?{q}")));
    let url = match path.rsplit_once('/') {
        Some((base, _)) if base.contains("://") => format!("{base}/{name}{query}"),
        _ => panic!("CERTVIGIL_TEST_POSTGRES={admin} has no database part"),
    };
    Database { name, url }
}

/// The store's view of a database URL (no password, no CA file).
pub(crate) fn target(url: &str) -> PostgresTarget {
    PostgresTarget { url: url.to_string(), password: None, ca_file: None }
}

/// Opens a store on a database prepared by hand (a test that sets up an older schema).
pub(crate) fn open_postgres_url(url: &str) -> Result<Store, StoreError> {
    Store::open_postgres(&target(url))
}
