//! Several daemons on one store: the leader lease with its fencing token, and the work items
//! the daemons share out (`FOR UPDATE SKIP LOCKED` on PostgreSQL). Times that decide who holds
//! what are the database's clock, so the daemons' own clocks may disagree.

use super::db::{Dialect, Row, params};
use super::{Result, Store};
use crate::model::UnixTime;
use crate::model::rows::{LeaseRow, WorkItem};

/// The database's clock in milliseconds, as SQL.
fn now_ms(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
        Dialect::Postgres => "CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT)",
    }
}

const WORK_COLUMNS: &str =
    "id, kind, key, job, run_id, queued_at, claimed_by, claim_expires_at_ms, attempts, finished_at, status, summary, error";

fn work_from_row(r: &Row<'_>) -> Result<WorkItem> {
    Ok(WorkItem {
        id: r.get(0)?,
        kind: r.get(1)?,
        key: r.get(2)?,
        job: r.get(3)?,
        run_id: r.get(4)?,
        queued_at: r.get(5)?,
        claimed_by: r.get(6)?,
        claim_expires_at_ms: r.get(7)?,
        attempts: r.get(8)?,
        finished_at: r.get(9)?,
        status: r.get(10)?,
        summary: r.get(11)?,
        error: r.get(12)?,
    })
}

fn lease_from_row(name: &str, r: &Row<'_>) -> Result<LeaseRow> {
    Ok(LeaseRow {
        name: name.to_string(),
        holder: r.get(0)?,
        token: r.get(1)?,
        acquired_at_ms: r.get(2)?,
        renewed_at_ms: r.get(3)?,
        expires_at_ms: r.get(4)?,
        now_ms: r.get(5)?,
    })
}

impl Store {
    /// Takes lease `name` for daemon `node` (the process `instance`), or renews it when that
    /// process holds it, for `lease_ms` from the database's now. Returns the lease when it holds
    /// it after the call, `None` when another does. Only the process that took the lease renews
    /// it: a second daemon given the same node name by mistake is another holder. The token stays
    /// while the same process renews a live lease and grows by one otherwise (a new holder, or a
    /// holder whose lease lapsed meanwhile): a write fenced by the old token is refused from then
    /// on.
    pub fn try_lease(&self, name: &str, node: &str, instance: &str, lease_ms: i64) -> Result<Option<LeaseRow>> {
        let now = now_ms(self.conn.dialect());
        let sql = format!(
            "INSERT INTO leases (name, holder, instance, token, acquired_at_ms, renewed_at_ms, expires_at_ms)
             VALUES (?1, ?2, ?3, 1, {now}, {now}, {now} + ?4)
             ON CONFLICT(name) DO UPDATE SET
               token = CASE WHEN leases.instance = excluded.instance AND leases.expires_at_ms > {now} THEN leases.token ELSE leases.token + 1 END,
               acquired_at_ms = CASE WHEN leases.instance = excluded.instance AND leases.expires_at_ms > {now} THEN leases.acquired_at_ms ELSE {now} END,
               holder = excluded.holder,
               instance = excluded.instance,
               renewed_at_ms = {now},
               expires_at_ms = {now} + ?4
             WHERE leases.instance = excluded.instance OR leases.expires_at_ms <= {now}
             RETURNING holder, token, acquired_at_ms, renewed_at_ms, expires_at_ms, {now}"
        );
        self.conn.query_opt(&sql, params![name, node, instance, lease_ms], |r| lease_from_row(name, r))
    }

    /// Lets lease `name` lapse now if process `instance` still holds it with `token` (a clean
    /// shutdown: the next daemon need not wait out the lease). Whether it did.
    pub fn release_lease(&self, name: &str, instance: &str, token: i64) -> Result<bool> {
        let now = now_ms(self.conn.dialect());
        let sql =
            format!("UPDATE leases SET expires_at_ms = {now} WHERE name = ?1 AND instance = ?2 AND token = ?3 AND expires_at_ms > {now}");
        Ok(self.conn.execute(&sql, params![name, instance, token])? > 0)
    }

    /// Lease `name` as it stands, live or lapsed, with the database's now.
    pub fn lease(&self, name: &str) -> Result<Option<LeaseRow>> {
        let now = now_ms(self.conn.dialect());
        let sql = format!("SELECT holder, token, acquired_at_ms, renewed_at_ms, expires_at_ms, {now} FROM leases WHERE name = ?1");
        self.conn.query_opt(&sql, params![name], |r| lease_from_row(name, r))
    }

    /// The fencing check: `token` is lease `name`'s current token and the lease is live.
    pub fn lease_current(&self, name: &str, token: i64) -> Result<bool> {
        let now = now_ms(self.conn.dialect());
        let sql = format!("SELECT 1 FROM leases WHERE name = ?1 AND token = ?2 AND expires_at_ms > {now}");
        Ok(self.conn.query_opt(&sql, params![name, token], |_| Ok(()))?.is_some())
    }

    /// Queues one item of `kind` per key for `job`'s run `run_id`; a key with an open item
    /// already is left as it is. How many were queued.
    pub fn queue_work(&self, kind: &str, keys: &[String], job: &str, run_id: Option<i64>, now: UnixTime) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let mut n = 0;
        for key in keys {
            n += tx.execute(
                "INSERT INTO work_items (kind, key, job, run_id, queued_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(kind, key) WHERE finished_at IS NULL DO NOTHING",
                params![kind, key, job, run_id, now],
            )?;
        }
        tx.commit()?;
        Ok(n)
    }

    /// Claims the oldest open item of `kind` that nobody holds (or whose holder's claim
    /// expired) for `node`, for `claim_ms`. On PostgreSQL the candidate row is locked with
    /// `FOR UPDATE SKIP LOCKED`, so daemons claiming at once each get a different item.
    pub fn claim_work(&self, kind: &str, node: &str, claim_ms: i64) -> Result<Option<WorkItem>> {
        let d = self.conn.dialect();
        let now = now_ms(d);
        let lock = match d {
            Dialect::Sqlite => "",
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE work_items SET claimed_by = ?2, claim_expires_at_ms = {now} + ?3, attempts = attempts + 1
             WHERE id = (SELECT id FROM work_items
                         WHERE kind = ?1 AND finished_at IS NULL AND (claimed_by IS NULL OR claim_expires_at_ms <= {now})
                         ORDER BY id LIMIT 1 {lock})
             RETURNING {WORK_COLUMNS}"
        );
        self.conn.query_opt(&sql, params![kind, node, claim_ms], work_from_row)
    }

    /// Keeps `node`'s claim on item `id` alive for `claim_ms` more; false when the claim was lost
    /// (it expired and another daemon took the item, or the item is finished).
    pub fn extend_claim(&self, id: i64, node: &str, claim_ms: i64) -> Result<bool> {
        let now = now_ms(self.conn.dialect());
        let sql =
            format!("UPDATE work_items SET claim_expires_at_ms = {now} + ?3 WHERE id = ?1 AND claimed_by = ?2 AND finished_at IS NULL");
        Ok(self.conn.execute(&sql, params![id, node, claim_ms])? > 0)
    }

    /// Records how `node`'s item `id` ended; false when `node` no longer held it.
    pub fn finish_work(&self, id: i64, node: &str, now: UnixTime, error: Option<&str>, summary: &str) -> Result<bool> {
        let status = if error.is_some() { "failed" } else { "ok" };
        Ok(self.conn.execute(
            "UPDATE work_items SET finished_at = ?3, status = ?4, summary = ?5, error = ?6
             WHERE id = ?1 AND claimed_by = ?2 AND finished_at IS NULL",
            params![id, node, now, status, summary, error],
        )? > 0)
    }

    /// The items queued by job run `run_id`.
    pub fn run_work(&self, run_id: i64) -> Result<Vec<WorkItem>> {
        self.conn.query_map(&format!("SELECT {WORK_COLUMNS} FROM work_items WHERE run_id = ?1 ORDER BY id"), params![run_id], work_from_row)
    }

    /// Every open item, oldest first.
    pub fn open_work(&self) -> Result<Vec<WorkItem>> {
        self.conn.query_map(
            &format!("SELECT {WORK_COLUMNS} FROM work_items WHERE finished_at IS NULL ORDER BY id"),
            params![],
            work_from_row,
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;

    #[test]
    fn the_lease_passes_on_only_when_it_lapses_and_the_token_fences_the_old_holder() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.db")).unwrap();
        let a = s.try_lease("leader", "a", "a#1", 60_000).unwrap().expect("a takes the free lease");
        assert_eq!((a.holder.as_str(), a.token), ("a", 1));
        assert!(a.live());
        assert!(s.try_lease("leader", "b", "b#1", 60_000).unwrap().is_none(), "b cannot take a live lease");
        let renewed = s.try_lease("leader", "a", "a#1", 60_000).unwrap().unwrap();
        assert_eq!((renewed.token, renewed.acquired_at_ms), (1, a.acquired_at_ms), "renewing keeps the term");
        assert!(s.lease_current("leader", 1).unwrap());
        assert!(s.try_lease("leader", "a", "a#2", 60_000).unwrap().is_none(), "another process named `a` is another holder");
        // a lets it lapse (a clean stop): b takes it with a new token, a's token is refused.
        assert!(s.release_lease("leader", "a#1", 1).unwrap());
        assert!(!s.release_lease("leader", "a#1", 1).unwrap(), "only once");
        let b = s.try_lease("leader", "b", "b#1", 60_000).unwrap().expect("b takes the lapsed lease");
        assert_eq!((b.holder.as_str(), b.token), ("b", 2));
        assert!(!s.lease_current("leader", 1).unwrap(), "the old token is stale");
        assert!(s.lease_current("leader", 2).unwrap());
        assert!(s.try_lease("leader", "a", "a#1", 60_000).unwrap().is_none());
        // A lease that runs out by itself passes on as well.
        let short = s.try_lease("leader", "b", "b#1", 1).unwrap().unwrap();
        assert_eq!(short.token, 2);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!s.lease_current("leader", 2).unwrap());
        assert_eq!(s.try_lease("leader", "a", "a#1", 60_000).unwrap().map(|l| (l.holder, l.token)), Some(("a".into(), 3)));
        let seen = s.lease("leader").unwrap().unwrap();
        assert_eq!((seen.holder.as_str(), seen.token, seen.live()), ("a", 3, true));
    }

    #[test]
    fn work_is_queued_once_per_key_claimed_by_one_and_taken_back_when_its_claim_expires() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.db")).unwrap();
        let keys: Vec<String> = ["files", "vault"].map(String::from).to_vec();
        assert_eq!(s.queue_work("scan", &keys, "scan", Some(7), 100).unwrap(), 2);
        assert_eq!(s.queue_work("scan", &keys, "scan", Some(8), 101).unwrap(), 0, "already queued");
        let one = s.claim_work("scan", "a", 60_000).unwrap().unwrap();
        // 300 ms: long enough that a loaded machine still sees it held below, short for the test.
        let two = s.claim_work("scan", "b", 300).unwrap().unwrap();
        assert_eq!((one.key.as_str(), two.key.as_str()), ("files", "vault"));
        assert!(s.claim_work("scan", "c", 60_000).unwrap().is_none(), "both are held");
        std::thread::sleep(std::time::Duration::from_millis(400));
        // b's claim expired: c takes the item; b can no longer keep or finish it.
        let again = s.claim_work("scan", "c", 60_000).unwrap().unwrap();
        assert_eq!((again.id, again.attempts, again.claimed_by.as_deref()), (two.id, 2, Some("c")));
        assert!(!s.extend_claim(two.id, "b", 60_000).unwrap());
        assert!(!s.finish_work(two.id, "b", 102, None, "").unwrap());
        assert!(s.extend_claim(one.id, "a", 60_000).unwrap());
        assert!(s.finish_work(one.id, "a", 102, None, "3 certificates").unwrap());
        assert!(s.finish_work(two.id, "c", 103, Some("unreachable"), "").unwrap());
        let run = s.run_work(7).unwrap();
        assert_eq!(
            run.iter().map(|w| (w.key.as_str(), w.status.as_deref(), w.finished_at)).collect::<Vec<_>>(),
            [("files", Some("ok"), Some(102)), ("vault", Some("failed"), Some(103))]
        );
        assert!(s.open_work().unwrap().is_empty());
        assert_eq!(s.queue_work("scan", &keys, "scan", Some(9), 104).unwrap(), 2, "finished items do not block a new run");
    }
}
