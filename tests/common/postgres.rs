//! Databases on the test run's throwaway PostgreSQL cluster (`tests/postgres.sh`, started by
//! `tests/run.sh`, its admin URL in `CERTVIGIL_TEST_POSTGRES`): each test makes its own.
//! Without the cluster a test fails, saying how to get one; it never skips.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The cluster's admin URL (`postgres://certvigil@127.0.0.1:PORT/postgres`).
pub fn admin_url() -> String {
    std::env::var("CERTVIGIL_TEST_POSTGRES").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| {
        panic!(
            "CERTVIGIL_TEST_POSTGRES is not set: run the tests with tests/run.sh, which starts a throwaway PostgreSQL \
             cluster, or start one with `tests/postgres.sh start DIR` and export the URL it prints"
        )
    })
}

/// A connection to `url` (sync; call it off any async runtime's threads).
pub fn client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// A new empty database for `tag`, and its URL.
pub fn fresh_database(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let clean: String = tag.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).take(30).collect();
    let name = format!("t_{clean}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let admin = admin_url();
    client(&admin).batch_execute(&format!("CREATE DATABASE {name}")).unwrap_or_else(|e| panic!("create database {name}: {e}"));
    match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("CERTVIGIL_TEST_POSTGRES={admin} has no database part"),
    }
}

/// One column of every row of `sql`, as text.
pub fn texts(url: &str, sql: &str) -> Vec<String> {
    client(url)
        .query(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.try_get::<_, String>(0).or_else(|_| r.try_get::<_, i64>(0).map(|n| n.to_string())).unwrap_or_default())
        .collect()
}
