//! The renewal state of managed certificates (`renewals`): what is installed, failures and
//! backoff, the ARI window, the scheduled renewal time and the order in flight. The engine
//! (`renewal::engine`) reads a row, decides, and writes the whole row back in one statement.

use super::db::{Row, params};
use super::{Result, Store};
use crate::model::UnixTime;
use crate::model::rows::RenewalRow;

const COLUMNS: &str = "name, fingerprint, serial, not_after, state, failures, next_attempt, last_attempt, last_outcome, last_error, \
     ari_cert_id, ari_start, ari_end, ari_explanation, ari_next_poll, renew_at, order_url, order_directory, pending_key, \
     pending_chain, updated_at, spec_digest, revoke_fingerprint, revoke_reason, revoke_rotate, revoke_step, revoke_requested_at";

/// Every column but the key (`name`) taken from the row being written: with every column written,
/// the upsert leaves the same row as the `INSERT OR REPLACE` it replaces, on both engines.
const UPSERT_SET: &str = "fingerprint = excluded.fingerprint, serial = excluded.serial, not_after = excluded.not_after, \
     state = excluded.state, failures = excluded.failures, next_attempt = excluded.next_attempt, last_attempt = excluded.last_attempt, \
     last_outcome = excluded.last_outcome, last_error = excluded.last_error, ari_cert_id = excluded.ari_cert_id, \
     ari_start = excluded.ari_start, ari_end = excluded.ari_end, ari_explanation = excluded.ari_explanation, \
     ari_next_poll = excluded.ari_next_poll, renew_at = excluded.renew_at, order_url = excluded.order_url, \
     order_directory = excluded.order_directory, pending_key = excluded.pending_key, pending_chain = excluded.pending_chain, \
     updated_at = excluded.updated_at, spec_digest = excluded.spec_digest, revoke_fingerprint = excluded.revoke_fingerprint, \
     revoke_reason = excluded.revoke_reason, revoke_rotate = excluded.revoke_rotate, revoke_step = excluded.revoke_step, \
     revoke_requested_at = excluded.revoke_requested_at";

fn from_row(r: &Row<'_>) -> Result<RenewalRow> {
    Ok(RenewalRow {
        name: r.get(0)?,
        fingerprint: r.get(1)?,
        serial: r.get(2)?,
        not_after: r.get(3)?,
        state: r.get(4)?,
        failures: r.get(5)?,
        next_attempt: r.get(6)?,
        last_attempt: r.get(7)?,
        last_outcome: r.get(8)?,
        last_error: r.get(9)?,
        ari_cert_id: r.get(10)?,
        ari_start: r.get(11)?,
        ari_end: r.get(12)?,
        ari_explanation: r.get(13)?,
        ari_next_poll: r.get(14)?,
        renew_at: r.get(15)?,
        order_url: r.get(16)?,
        order_directory: r.get(17)?,
        pending_key: r.get(18)?,
        pending_chain: r.get(19)?,
        updated_at: r.get(20)?,
        spec_digest: r.get(21)?,
        revoke_fingerprint: r.get(22)?,
        revoke_reason: r.get(23)?,
        revoke_rotate: r.get(24)?,
        revoke_step: r.get(25)?,
        revoke_requested_at: r.get(26)?,
    })
}

impl Store {
    /// The renewal state of `name`, if it was ever recorded.
    pub fn renewal(&self, name: &str) -> Result<Option<RenewalRow>> {
        let sql = format!("SELECT {COLUMNS} FROM renewals WHERE name = ?1");
        self.conn.query_opt(&sql, params![name], from_row)
    }

    /// Every recorded renewal state, by name.
    pub fn renewals(&self) -> Result<Vec<RenewalRow>> {
        let sql = format!("SELECT {COLUMNS} FROM renewals ORDER BY name");
        self.conn.query_map(&sql, params![], from_row)
    }

    /// Writes `row` (insert or replace) with `updated_at = now`. One statement: atomic.
    /// (An upsert on the primary key rather than SQLite's `INSERT OR REPLACE`, for PostgreSQL.)
    pub fn put_renewal(&self, row: &RenewalRow, now: UnixTime) -> Result<()> {
        self.conn.execute(
            &format!(
                "INSERT INTO renewals ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)
                 ON CONFLICT(name) DO UPDATE SET {UPSERT_SET}"
            ),
            params![
                row.name,
                row.fingerprint,
                row.serial,
                row.not_after,
                row.state,
                row.failures,
                row.next_attempt,
                row.last_attempt,
                row.last_outcome,
                row.last_error,
                row.ari_cert_id,
                row.ari_start,
                row.ari_end,
                row.ari_explanation,
                row.ari_next_poll,
                row.renew_at,
                row.order_url,
                row.order_directory,
                row.pending_key,
                row.pending_chain,
                now,
                row.spec_digest,
                row.revoke_fingerprint,
                row.revoke_reason,
                row.revoke_rotate,
                row.revoke_step,
                row.revoke_requested_at,
            ],
        )?;
        Ok(())
    }

    /// The inventory id of the certificate with this fingerprint.
    /// Puts a certificate certvigil handled itself — a managed certificate it revoked before
    /// any scan read it — in the inventory, so that `list`, `show` and the policy know it at
    /// once; its history says where it came from (`source`, `location`, `detail`). A
    /// certificate already in the inventory is left as it is. Returns its id.
    pub fn record_handled(
        &mut self,
        der: &[u8],
        facts: &crate::model::CertFacts,
        source: &str,
        location: &str,
        detail: &str,
        now: UnixTime,
    ) -> Result<i64> {
        let tx = self.conn.transaction()?;
        let mut inserted: Option<i64> = None;
        let (head, tail) = super::scan::INSERT_CERT;
        tx.insert_rows(head, tail, super::scan::CERT_COLUMNS, &super::scan::cert_row(facts, der, now), |r| {
            inserted = Some(r.get(0)?);
            Ok(())
        })?;
        let id = match inserted {
            Some(id) => {
                tx.execute(
                    "INSERT INTO cert_history (cert_id, at, event, source, location, detail) VALUES (?1, ?2, 'recorded', ?3, ?4, ?5)",
                    params![id, now, source, location, detail],
                )?;
                id
            }
            None => tx.query_row("SELECT id FROM certificates WHERE fingerprint = ?1", params![facts.fingerprint.0], |r| r.get(0))?,
        };
        tx.commit()?;
        Ok(id)
    }

    pub fn cert_id_by_fingerprint(&self, fingerprint: &crate::model::Fingerprint) -> Result<Option<i64>> {
        self.conn.query_opt("SELECT id FROM certificates WHERE fingerprint = ?1", params![fingerprint.0], |r| r.get(0))
    }

    /// Whether the certificate with this fingerprint is known revoked (verified CRL or OCSP).
    pub fn is_revoked(&self, fingerprint: &str) -> Result<bool> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM revocation_status r JOIN certificates c ON c.id = r.cert_id
             WHERE c.fingerprint = ?1 AND r.status = 'revoked'",
            params![fingerprint],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.db")).unwrap();
        assert!(s.renewal("web").unwrap().is_none());
        let mut r = RenewalRow::new("web");
        r.failures = 2;
        r.next_attempt = Some(100);
        r.order_url = Some("https://ca/order/1".into());
        s.put_renewal(&r, 50).unwrap();
        let got = s.renewal("web").unwrap().unwrap();
        assert_eq!(got.failures, 2);
        assert_eq!(got.updated_at, 50);
        assert_eq!(got.order_url.as_deref(), Some("https://ca/order/1"));
        r.order_url = None;
        s.put_renewal(&r, 60).unwrap();
        assert_eq!(s.renewals().unwrap().len(), 1);
        assert!(s.renewal("web").unwrap().unwrap().order_url.is_none());
        assert!(!s.is_revoked("00").unwrap());
    }

    #[test]
    fn the_upsert_writes_every_column_but_the_name() {
        let set: Vec<String> = UPSERT_SET.split(',').map(|a| a.trim().to_string()).collect();
        let expected: Vec<String> =
            COLUMNS.split(',').map(str::trim).filter(|c| *c != "name").map(|c| format!("{c} = excluded.{c}")).collect();
        assert_eq!(set, expected);
    }
}
