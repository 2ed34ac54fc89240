//! The audit log: an append-only, hash-chained record of every state-changing action.
//!
//! Each entry's hash is SHA-256 over the previous entry's hash and the entry's own fields, in a
//! length-prefixed encoding (so no two field lists collide). Triggers refuse UPDATE and DELETE;
//! `verify` recomputes the chain and names the first entry that does not match, which catches
//! edits made around the triggers (another SQLite client, a copied file).

use super::db::{Db, params};
use super::{Result, Store};
use crate::model::UnixTime;
use crate::model::rows::AuditEntry;
use sha2::Digest;

/// The outcome of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Verdict {
    Intact {
        entries: i64,
    },
    /// The first entry whose stored hash or link does not match.
    Broken {
        id: i64,
        reason: String,
    },
}

fn entry_hash(prev: &str, id: i64, at: UnixTime, action: &str, actor: &str, detail: &str) -> String {
    let mut h = sha2::Sha256::new();
    for part in
        [prev.as_bytes(), id.to_string().as_bytes(), at.to_string().as_bytes(), action.as_bytes(), actor.as_bytes(), detail.as_bytes()]
    {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

/// Appends an entry on `conn` (inside the caller's transaction when there is one).
///
/// Two writers may read the same head (daemons sharing a PostgreSQL database; SQLite serialises
/// writers, so there it never happens): the second insert finds the id taken, waits for the
/// first writer's transaction to settle, and links to the new head instead. The chain never
/// forks and no entry is lost.
pub fn append(conn: &Db, at: UnixTime, action: &str, actor: &str, detail: &serde_json::Value) -> Result<i64> {
    let detail = detail.to_string();
    for _ in 0..100 {
        let (prev_id, prev_hash): (i64, String) = conn
            .query_opt("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1", params![], |r| Ok((r.get(0)?, r.get(1)?)))?
            .unwrap_or((0, String::new()));
        let id = prev_id + 1;
        let hash = entry_hash(&prev_hash, id, at, action, actor, &detail);
        let inserted: Option<i64> = conn.query_opt(
            "INSERT INTO audit_log (id, at, action, actor, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(id) DO NOTHING RETURNING id",
            params![id, at, action, actor, detail, prev_hash, hash],
            |r| r.get(0),
        )?;
        if let Some(id) = inserted {
            return Ok(id);
        }
    }
    Err(super::StoreError::Corrupt { what: "audit_log", detail: "100 appends in a row found their id taken".into() })
}

impl Store {
    pub fn audit(&self, at: UnixTime, action: &str, actor: &str, detail: &serde_json::Value) -> Result<i64> {
        append(&self.conn, at, action, actor, detail)
    }

    /// Entries at or after `since`, oldest first.
    pub fn audit_entries(&self, since: UnixTime, limit: usize) -> Result<Vec<AuditEntry>> {
        self.audit_query(
            "SELECT id, at, action, actor, detail, hash FROM audit_log WHERE at >= ?1 ORDER BY id LIMIT ?2",
            params![since, limit],
        )
    }

    /// A page of entries, newest first, and how many there are.
    pub fn audit_page(&self, offset: usize, limit: usize) -> Result<(Vec<AuditEntry>, i64)> {
        let total = self.conn.query_row("SELECT count(*) FROM audit_log", params![], |r| r.get(0))?;
        let page = self.audit_query(
            "SELECT id, at, action, actor, detail, hash FROM audit_log ORDER BY id DESC LIMIT ?1 OFFSET ?2",
            params![limit, offset],
        )?;
        Ok((page, total))
    }

    fn audit_query(&self, sql: &str, values: &[&dyn super::db::ToValue]) -> Result<Vec<AuditEntry>> {
        self.conn.query_map(sql, values, |r| {
            let detail: String = r.get(4)?;
            Ok(AuditEntry {
                id: r.get(0)?,
                at: r.get(1)?,
                action: r.get(2)?,
                actor: r.get(3)?,
                detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
                hash: r.get(5)?,
            })
        })
    }

    /// Recomputes the whole chain.
    pub fn audit_verify(&self) -> Result<Verdict> {
        let (mut expected_prev, mut expected_id, mut n) = (String::new(), 1i64, 0i64);
        let mut broken: Option<Verdict> = None;
        let walked =
            self.conn.query_each("SELECT id, at, action, actor, detail, prev_hash, hash FROM audit_log ORDER BY id", params![], |r| {
                let id: i64 = r.get(0)?;
                let (at, action, actor, detail): (i64, &str, &str, &str) =
                    (r.get(1)?, r.get_ref(2)?.as_str()?, r.get_ref(3)?.as_str()?, r.get_ref(4)?.as_str()?);
                let (prev, hash) = (r.get_ref(5)?.as_str()?, r.get_ref(6)?.as_str()?);
                let reason = if id != expected_id {
                    Some(format!("entry {expected_id} is missing (found {id} next)"))
                } else if prev != expected_prev {
                    Some("its link to the previous entry does not match".into())
                } else if entry_hash(prev, id, at, action, actor, detail) != hash {
                    Some("its content does not match its hash (edited)".into())
                } else {
                    None
                };
                if let Some(reason) = reason {
                    broken = Some(Verdict::Broken { id, reason });
                    return Err(super::StoreError::Stopped);
                }
                expected_prev = hash.to_string();
                expected_id += 1;
                n += 1;
                Ok(())
            });
        match (walked, broken) {
            (_, Some(verdict)) => Ok(verdict),
            (Err(e), None) => Err(e),
            (Ok(()), None) => Ok(Verdict::Intact { entries: n }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store with five chained entries, and the triggers dropped as a tamperer would (another
    /// SQLite client, a copied file): the chain is all that is left to catch them.
    fn tampered_store(dir: &std::path::Path) -> Store {
        let store = Store::open(&dir.join("s.db")).unwrap();
        for i in 0..5 {
            store.audit(100 + i, "scan", "cli", &serde_json::json!({"run": i})).unwrap();
        }
        assert_eq!(store.audit_verify().unwrap(), Verdict::Intact { entries: 5 });
        // The triggers refuse edits through this connection…
        assert!(store.conn().unwrap().execute("UPDATE audit_log SET detail = '{}' WHERE id = 3", []).is_err());
        assert!(store.conn().unwrap().execute("DELETE FROM audit_log WHERE id = 3", []).is_err());
        // …so a tamperer drops them first.
        store.conn().unwrap().execute_batch("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;").unwrap();
        store
    }

    fn hash_of(store: &Store, id: i64) -> String {
        store.conn().unwrap().query_row("SELECT hash FROM audit_log WHERE id = ?1", [id], |r| r.get(0)).unwrap()
    }

    #[test]
    fn chain_detects_an_edit_and_a_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let store = tampered_store(dir.path());
        store.conn().unwrap().execute("UPDATE audit_log SET detail = '{\"run\":99}' WHERE id = 3", []).unwrap();
        assert_eq!(store.audit_verify().unwrap(), Verdict::Broken { id: 3, reason: "its content does not match its hash (edited)".into() });
        store.conn().unwrap().execute("UPDATE audit_log SET detail = '{\"run\":2}' WHERE id = 3", []).unwrap();
        assert_eq!(store.audit_verify().unwrap(), Verdict::Intact { entries: 5 });
        store.conn().unwrap().execute("DELETE FROM audit_log WHERE id = 2", []).unwrap();
        assert_eq!(store.audit_verify().unwrap(), Verdict::Broken { id: 3, reason: "entry 2 is missing (found 3 next)".into() });
    }

    #[test]
    fn chain_detects_a_row_inserted_in_the_middle() {
        let dir = tempfile::tempdir().unwrap();
        let store = tampered_store(dir.path());
        // The forger knows the scheme: entries 3..5 move up one id, and a forged entry takes id
        // 3, linked to entry 2 with a correctly computed hash of its own. Ids stay contiguous
        // and the forged row is consistent on its own; the next entry's link gives it away.
        store.conn().unwrap().execute("UPDATE audit_log SET id = id + 10 WHERE id >= 3", []).unwrap();
        store.conn().unwrap().execute("UPDATE audit_log SET id = id - 9 WHERE id >= 13", []).unwrap();
        let prev = hash_of(&store, 2);
        let detail = serde_json::json!({"run": "forged"}).to_string();
        let hash = entry_hash(&prev, 3, 102, "silence", "mallory", &detail);
        store
            .conn()
            .unwrap()
            .execute(
                "INSERT INTO audit_log (id, at, action, actor, detail, prev_hash, hash) VALUES (3, 102, 'silence', 'mallory', ?1, ?2, ?3)",
                rusqlite::params![detail, prev, hash],
            )
            .unwrap();
        let ids: Vec<i64> = store
            .conn()
            .unwrap()
            .prepare("SELECT id FROM audit_log ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        assert_eq!(ids, [1, 2, 3, 4, 5, 6], "six contiguous entries, the forged one third");
        assert_eq!(
            store.audit_verify().unwrap(),
            Verdict::Broken { id: 4, reason: "its link to the previous entry does not match".into() }
        );

        // A cruder insertion that does not recompute the hash is named at the forged row itself.
        let dir = tempfile::tempdir().unwrap();
        let store = tampered_store(dir.path());
        store.conn().unwrap().execute("UPDATE audit_log SET id = id + 10 WHERE id >= 3", []).unwrap();
        store.conn().unwrap().execute("UPDATE audit_log SET id = id - 9 WHERE id >= 13", []).unwrap();
        let prev = hash_of(&store, 2);
        store
            .conn().unwrap()
            .execute(
                "INSERT INTO audit_log (id, at, action, actor, detail, prev_hash, hash) VALUES (3, 102, 'silence', 'mallory', '{}', ?1, ?2)",
                rusqlite::params![prev, "0".repeat(64)],
            )
            .unwrap();
        assert_eq!(store.audit_verify().unwrap(), Verdict::Broken { id: 3, reason: "its content does not match its hash (edited)".into() });
    }

    #[test]
    fn truncating_the_tail_is_not_detected_by_verify() {
        // By design: the chain has no anchor outside the table (no stored count or head hash),
        // so dropping the newest entries leaves a shorter chain that is intact in itself. Only
        // a count or head hash recorded elsewhere (an earlier `audit verify` output, a log
        // shipped off the host) reveals it. What verify does report is the shorter length.
        let dir = tempfile::tempdir().unwrap();
        let store = tampered_store(dir.path());
        store.conn().unwrap().execute("DELETE FROM audit_log WHERE id = 5", []).unwrap();
        assert_eq!(store.audit_verify().unwrap(), Verdict::Intact { entries: 4 });
        store.conn().unwrap().execute("DELETE FROM audit_log WHERE id >= 3", []).unwrap();
        assert_eq!(store.audit_verify().unwrap(), Verdict::Intact { entries: 2 });
        // The next append continues from the truncated head and hides the cut for good.
        assert_eq!(store.audit(200, "scan", "cli", &serde_json::json!({})).unwrap(), 3);
        assert_eq!(store.audit_verify().unwrap(), Verdict::Intact { entries: 3 });
    }
}
