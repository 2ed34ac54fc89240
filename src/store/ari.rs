//! The ACME Renewal Information watch (`ari_watch`, RFC 9773): which inventoried certificates are
//! due to be asked about, and what their CA answered. `app::ari` asks; the policy reads the rows.

use super::db::{Row, ToValue};
use super::{Result, Store};
use crate::model::UnixTime;
use crate::model::rows::AriWatchRow;
use std::collections::HashMap;

const COLUMNS: &str = "cert_id, directory, ari_id, window_start, window_end, explanation_url, first_start, first_end, moved_at, \
     polled_at, next_poll, error";

fn pair(a: Option<i64>, b: Option<i64>) -> Option<(i64, i64)> {
    Some((a?, b?))
}

fn from_row(r: &Row<'_>) -> Result<AriWatchRow> {
    Ok(AriWatchRow {
        cert_id: r.get(0)?,
        directory: r.get(1)?,
        ari_id: r.get(2)?,
        window: pair(r.get(3)?, r.get(4)?),
        explanation_url: r.get(5)?,
        first: pair(r.get(6)?, r.get(7)?),
        moved_at: r.get(8)?,
        polled_at: r.get(9)?,
        next_poll: r.get(10)?,
        error: r.get(11)?,
    })
}

/// A current certificate due to be asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AriDue {
    pub cert_id: i64,
    /// Its authority key identifier (lower-case hex) and serial (hex), for the RFC 9773 §4.1
    /// identifier.
    pub aki: String,
    pub serial: String,
    pub not_after: UnixTime,
    /// What was recorded before, if it was asked about before.
    pub before: Option<AriWatchRow>,
}

impl Store {
    /// Current certificates issued under one of `akis` (authority key identifiers) that were
    /// never asked about or whose next poll has come, the longest waiting first, at most `limit`.
    pub fn ari_due(&self, akis: &[String], now: UnixTime, limit: usize) -> Result<Vec<AriDue>> {
        let mut out: Vec<AriDue> = Vec::new();
        for chunk in akis.chunks(super::IN_LIST_MAX.saturating_sub(2).max(1)) {
            if out.len() >= limit {
                break;
            }
            let sql = format!(
                "SELECT c.id, c.aki, c.serial, c.not_after, w.cert_id IS NOT NULL FROM certificates c LEFT JOIN ari_watch w ON w.cert_id = c.id
                 WHERE c.gone_since IS NULL AND c.not_after > ? AND c.aki IN ({}) AND (w.next_poll IS NULL OR w.next_poll <= ?)
                 ORDER BY COALESCE(w.next_poll, 0), c.id LIMIT {}",
                super::placeholders(chunk.len()),
                limit - out.len()
            );
            let mut values: Vec<&dyn ToValue> = vec![&now];
            values.extend(chunk.iter().map(|a| a as &dyn ToValue));
            values.push(&now);
            let found: Vec<(AriDue, bool)> = self.conn.query_map(&sql, &values, |r| {
                Ok((AriDue { cert_id: r.get(0)?, aki: r.get(1)?, serial: r.get(2)?, not_after: r.get(3)?, before: None }, r.get(4)?))
            })?;
            let known: Vec<i64> = found.iter().filter(|(_, k)| *k).map(|(d, _)| d.cert_id).collect();
            let mut before = self.ari_watch_of(&known)?;
            out.extend(found.into_iter().map(|(mut d, _)| {
                d.before = before.remove(&d.cert_id);
                d
            }));
        }
        Ok(out)
    }

    /// The recorded rows of the certificates `ids`, by certificate id.
    pub fn ari_watch_of(&self, ids: &[i64]) -> Result<HashMap<i64, AriWatchRow>> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(super::IN_LIST_MAX) {
            let sql = format!("SELECT {COLUMNS} FROM ari_watch WHERE cert_id IN ({})", super::placeholders(chunk.len()));
            let values: Vec<&dyn ToValue> = chunk.iter().map(|id| id as &dyn ToValue).collect();
            self.conn.query_each(&sql, &values, |r| {
                let row = from_row(r)?;
                out.insert(row.cert_id, row);
                Ok(())
            })?;
        }
        Ok(out)
    }

    /// Every recorded row, by certificate id (the `ari` command's listing).
    pub fn ari_watch_all(&self) -> Result<Vec<AriWatchRow>> {
        self.conn.query_map(&format!("SELECT {COLUMNS} FROM ari_watch ORDER BY cert_id"), &[], from_row)
    }

    /// Writes the answers of one pass in one transaction. A row with an `error` keeps the window
    /// recorded before (a failed poll says nothing new about it); any other row replaces it.
    pub fn put_ari_watch(&self, rows: &[AriWatchRow]) -> Result<()> {
        let tx = self.conn.transaction()?;
        for w in rows {
            let (ws, we) = (w.window.map(|x| x.0), w.window.map(|x| x.1));
            let (fs, fe) = (w.first.map(|x| x.0), w.first.map(|x| x.1));
            let update = if w.error.is_some() {
                "directory = excluded.directory, ari_id = excluded.ari_id, polled_at = excluded.polled_at, \
                 next_poll = excluded.next_poll, error = excluded.error"
            } else {
                "directory = excluded.directory, ari_id = excluded.ari_id, window_start = excluded.window_start, \
                 window_end = excluded.window_end, explanation_url = excluded.explanation_url, first_start = excluded.first_start, \
                 first_end = excluded.first_end, moved_at = excluded.moved_at, polled_at = excluded.polled_at, \
                 next_poll = excluded.next_poll, error = excluded.error"
            };
            tx.execute(
                &format!(
                    "INSERT INTO ari_watch ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                     ON CONFLICT(cert_id) DO UPDATE SET {update}"
                ),
                super::db::params![
                    w.cert_id,
                    w.directory,
                    w.ari_id,
                    ws,
                    we,
                    w.explanation_url,
                    fs,
                    fe,
                    w.moved_at,
                    w.polled_at,
                    w.next_poll,
                    w.error
                ],
            )?;
        }
        tx.commit()
    }
}
