//! Store access for alerts, silences and the notification outbox. State changes and the
//! notifications they cause are written in one transaction: a notification exists in the
//! outbox before anything is sent, and its key makes it unique per state change.

use super::db::{Db, Row, ToValue, Tx, params};
use super::{Result, Store};
use crate::model::UnixTime;
use crate::model::alert::{AlertState, Change, Event, Notice, Notify, OpenAlert, RenderPayload, ResolvedAlert, Silence};
use crate::model::finding::{Finding, Kind, Severity};
use crate::model::rows::{AlertRow, Applied, OutboxRow};

fn outbox_from_row(r: &Row<'_>) -> Result<OutboxRow> {
    let payload: String = r.get(7)?;
    Ok(OutboxRow {
        id: r.get(0)?,
        key: r.get(1)?,
        alert_id: r.get(2)?,
        route: r.get(3)?,
        receiver: r.get(4)?,
        event: r.get(5)?,
        severity: r.get(6)?,
        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
        held: r.get(8)?,
        created_at: r.get(9)?,
        next_attempt_at: r.get(10)?,
        attempts: r.get(11)?,
        last_error: r.get(12)?,
        sent_at: r.get(13)?,
    })
}

const OUTBOX_COLUMNS: &str =
    "id, key, alert_id, route, receiver, event, severity, payload, held, created_at, next_attempt_at, attempts, last_error, sent_at";

impl Store {
    pub fn open_alerts(&self) -> Result<Vec<OpenAlert>> {
        self.conn.query_map(
            "SELECT id, subject, kind, severity, state, opened_at, last_notified_at, escalated_at, routes_notified FROM alerts WHERE state != 'resolved' ORDER BY id",
            params![],
            |r| {
                let kind: String = r.get(2)?;
                let sev: String = r.get(3)?;
                let state: String = r.get(4)?;
                let routes: String = r.get(8)?;
                Ok(OpenAlert {
                    id: r.get(0)?,
                    subject: r.get(1)?,
                    kind: Kind::parse(&kind).unwrap_or(Kind::Expiring),
                    severity: Severity::parse(&sev).unwrap_or(Severity::Warning),
                    state: AlertState::parse(&state),
                    opened_at: r.get(5)?,
                    last_notified_at: r.get(6)?,
                    escalated_at: r.get(7)?,
                    routes_notified: serde_json::from_str(&routes).unwrap_or_default(),
                })
            },
        )
    }

    /// Applies the state machine's changes and enqueues their notifications, atomically;
    /// `render` makes each notification's payload.
    pub fn apply_alert_changes(
        &mut self,
        changes: &[Change],
        findings: &[Finding],
        now: UnixTime,
        render: RenderPayload<'_>,
    ) -> Result<Applied> {
        let mut tx = self.begin_alert_changes(now, render)?;
        tx.apply(changes, findings)?;
        tx.commit()
    }

    /// Starts applying alert changes in one transaction, in as many batches as the caller
    /// likes ([`AlertChanges::apply`]); nothing is kept unless [`AlertChanges::commit`] is
    /// reached. The store stays readable meanwhile, inside the same transaction.
    /// `render` makes each notification's payload (the store keeps it, it does not build it).
    pub fn begin_alert_changes<'s>(&'s self, now: UnixTime, render: RenderPayload<'s>) -> Result<AlertChanges<'s>> {
        Ok(AlertChanges { tx: self.conn.transaction()?, now, applied: Applied::default(), render })
    }

    pub fn alerts(&self, include_resolved: bool) -> Result<Vec<AlertRow>> {
        self.alerts_where(if include_resolved { "" } else { "WHERE a.state != 'resolved'" }, params![])
    }

    /// Open alerts by severity.
    pub fn open_alert_counts(&self) -> Result<std::collections::BTreeMap<String, i64>> {
        let rows =
            self.conn.query_map("SELECT severity, COUNT(*) FROM alerts WHERE state != 'resolved' GROUP BY severity", params![], |r| {
                Ok((r.get::<String>(0)?, r.get::<i64>(1)?))
            })?;
        Ok(rows.into_iter().collect())
    }

    /// One alert by id, resolved ones included.
    pub fn alert(&self, id: i64) -> Result<Option<AlertRow>> {
        Ok(self.alerts_where("WHERE a.id = ?1", params![id])?.pop())
    }

    /// Every alert a certificate has had, open ones first.
    pub fn certificate_alerts(&self, cert_id: i64) -> Result<Vec<AlertRow>> {
        self.alerts_where("WHERE a.cert_id = ?1", params![cert_id])
    }

    fn alerts_where(&self, filter: &str, values: &[&dyn ToValue]) -> Result<Vec<AlertRow>> {
        let sql = format!(
            "SELECT a.id, a.cert_id, c.fingerprint, COALESCE(c.common_name, c.subject, a.subject_name), a.kind, a.severity, a.state, a.reason, a.action, a.opened_at,
                    a.last_notified_at, a.notifications, a.escalated_at, a.acked_at, a.acked_by, a.resolved_at, a.subject, a.subject_kind
             FROM alerts a LEFT JOIN certificates c ON c.id = a.cert_id {filter}
             ORDER BY CASE WHEN a.state = 'resolved' THEN 1 ELSE 0 END, CASE WHEN a.severity = 'critical' THEN 1 ELSE 0 END DESC, a.id"
        );
        // (The order keys are CASE expressions, not comparisons, so both engines sort integers.)
        self.conn.query_map(&sql, values, |r| {
            Ok(AlertRow {
                id: r.get(0)?,
                subject: r.get(16)?,
                subject_kind: r.get(17)?,
                cert_id: r.get(1)?,
                fingerprint: r.get(2)?,
                name: r.get(3)?,
                kind: r.get(4)?,
                severity: r.get(5)?,
                state: r.get(6)?,
                reason: r.get(7)?,
                action: r.get(8)?,
                opened_at: r.get(9)?,
                last_notified_at: r.get(10)?,
                notifications: r.get(11)?,
                escalated_at: r.get(12)?,
                acked_at: r.get(13)?,
                acked_by: r.get(14)?,
                resolved_at: r.get(15)?,
            })
        })
    }

    /// Acknowledges open alerts: by alert id, or every open alert of a subject (optionally of
    /// one kind). Returns how many were acknowledged.
    pub fn ack(
        &mut self,
        alert_id: Option<i64>,
        subject: Option<&str>,
        kind: Option<&str>,
        by: &str,
        note: Option<&str>,
        now: UnixTime,
    ) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE alerts SET state = 'acknowledged', acked_at = ?4, acked_by = ?5, ack_note = ?6
             WHERE state = 'firing' AND (CAST(?1 AS BIGINT) IS NULL OR id = ?1) AND (CAST(?2 AS TEXT) IS NULL OR subject = ?2)
               AND (CAST(?3 AS TEXT) IS NULL OR kind = ?3)",
            params![alert_id, subject, kind, now, by, note],
        )?;
        if n > 0 {
            super::audit::append(
                &tx,
                now,
                "ack",
                by,
                &serde_json::json!({"alert_id": alert_id, "subject": subject, "kind": kind, "note": note, "alerts": n}),
            )?;
        }
        tx.commit()?;
        Ok(n)
    }

    pub fn add_silence(&mut self, s: &Silence) -> Result<i64> {
        let tx = self.conn.transaction()?;
        let id: i64 = tx.query_row(
            "INSERT INTO silences (fingerprint, source, tag, kind, eku, reason, created_by, created_at, expires_at, subject) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             RETURNING id",
            params![s.fingerprint, s.source, s.tag, s.kind, s.eku, s.reason, s.created_by, s.created_at, s.expires_at, s.subject],
            |r| r.get(0),
        )?;
        let detail = serde_json::json!({"id": id, "fingerprint": s.fingerprint, "subject": s.subject, "source": s.source, "tag": s.tag, "kind": s.kind, "eku": s.eku, "reason": s.reason, "expires_at": s.expires_at});
        super::audit::append(&tx, s.created_at, "silence", &s.created_by, &detail)?;
        tx.commit()?;
        Ok(id)
    }

    /// Silences in force at `now` (or all, with `include_expired`).
    pub fn silences(&self, now: UnixTime, include_expired: bool) -> Result<Vec<Silence>> {
        self.conn.query_map(
            "SELECT id, fingerprint, source, tag, kind, eku, reason, created_by, created_at, COALESCE(expired_at, expires_at), subject FROM silences
             WHERE ?2 <> 0 OR (COALESCE(expired_at, expires_at) > ?1) ORDER BY id",
            params![now, include_expired],
            |r| {
                Ok(Silence {
                    id: r.get(0)?,
                    fingerprint: r.get(1)?,
                    subject: r.get(10)?,
                    source: r.get(2)?,
                    tag: r.get(3)?,
                    kind: r.get(4)?,
                    eku: r.get(5)?,
                    reason: r.get(6)?,
                    created_by: r.get(7)?,
                    created_at: r.get(8)?,
                    expires_at: r.get(9)?,
                })
            },
        )
    }

    pub fn expire_silence(&mut self, id: i64, now: UnixTime, by: &str) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let n =
            tx.execute("UPDATE silences SET expired_at = ?2 WHERE id = ?1 AND expired_at IS NULL AND expires_at > ?2", params![id, now])?;
        if n > 0 {
            super::audit::append(&tx, now, "silence-expired", by, &serde_json::json!({"id": id}))?;
        }
        tx.commit()?;
        Ok(n > 0)
    }

    /// Notifications due now: unsent, not held for a digest, next attempt reached.
    pub fn due_outbox(&self, now: UnixTime, limit: usize) -> Result<Vec<OutboxRow>> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE sent_at IS NULL AND held = 0 AND next_attempt_at <= ?1 ORDER BY id LIMIT ?2"
        );
        // `limit` binds saturated (usize::MAX is i64::MAX): `as i64` made it -1, which SQLite
        // reads as no limit and PostgreSQL refuses.
        self.conn.query_map(&sql, params![now, limit], outbox_from_row)
    }

    /// Held notifications of a route, grouped later by receiver.
    pub fn held_outbox(&self, route: &str) -> Result<Vec<OutboxRow>> {
        let sql = format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE sent_at IS NULL AND held = 1 AND route = ?1 ORDER BY id");
        self.conn.query_map(&sql, params![route], outbox_from_row)
    }

    pub fn outbox(&self, include_sent: bool, limit: usize) -> Result<Vec<OutboxRow>> {
        let sql = format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE ?1 <> 0 OR sent_at IS NULL ORDER BY id DESC LIMIT ?2");
        self.conn.query_map(&sql, params![include_sent, limit], outbox_from_row)
    }

    /// The notifications of these alerts, oldest first (an alert's notification history).
    pub fn alert_notifications(&self, alert_ids: &[i64]) -> Result<Vec<OutboxRow>> {
        let mut out = Vec::new();
        for chunk in alert_ids.chunks(super::IN_LIST_MAX) {
            let sql = format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE alert_id IN ({}) ORDER BY id", super::placeholders(chunk.len()));
            let values: Vec<&dyn ToValue> = chunk.iter().map(|id| id as &dyn ToValue).collect();
            out.extend(self.conn.query_map(&sql, &values, outbox_from_row)?);
        }
        Ok(out)
    }

    /// Marks notifications delivered; `sent_as` names the digest that carried them.
    pub fn mark_sent(&mut self, ids: &[i64], now: UnixTime, sent_as: Option<&str>) -> Result<()> {
        let tx = self.conn.transaction()?;
        for id in ids {
            let n = tx.execute(
                "UPDATE outbox SET sent_at = ?2, sent_as = ?3, attempts = attempts + 1, last_error = NULL WHERE id = ?1 AND sent_at IS NULL",
                params![id, now, sent_as],
            )?;
            if n > 0 {
                let (key, route, receiver, event): (String, String, String, String) =
                    tx.query_row("SELECT key, route, receiver, event FROM outbox WHERE id = ?1", params![id], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })?;
                super::audit::append(
                    &tx,
                    now,
                    "notification",
                    "certvigil",
                    &serde_json::json!({"key": key, "route": route, "receiver": receiver, "event": event, "digest": sent_as}),
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Records a failed attempt and when to try again.
    pub fn mark_failed(&mut self, ids: &[i64], error: &str, next_attempt_at: UnixTime) -> Result<()> {
        let tx = self.conn.transaction()?;
        for id in ids {
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3 WHERE id = ?1",
                params![id, error, next_attempt_at],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Enqueues a test notification (not tied to an alert).
    pub fn enqueue_test(&mut self, key: &str, route: &str, receiver: &str, payload: &str, now: UnixTime) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO outbox (key, route, receiver, event, severity, payload, held, created_at, next_attempt_at) VALUES (?1, ?2, ?3, 'test', 'info', ?4, 0, ?5, ?5)
             ON CONFLICT DO NOTHING",
            params![key, route, receiver, payload, now],
        )?;
        self.conn.query_row("SELECT id FROM outbox WHERE key = ?1", params![key], |r| r.get(0))
    }

    /// Since when each of the certificates `ids` has had a revocation status continuously
    /// unknown.
    pub fn revocation_unknown_since_of(&self, ids: &[i64]) -> Result<std::collections::HashMap<i64, UnixTime>> {
        let mut out = std::collections::HashMap::new();
        for chunk in ids.chunks(super::IN_LIST_MAX) {
            let sql = format!(
                "SELECT h.cert_id, MIN(h.at) FROM revocation_history h
                 WHERE h.cert_id IN ({}) AND h.status = 'unknown'
                   AND h.at > COALESCE((SELECT MAX(g.at) FROM revocation_history g WHERE g.cert_id = h.cert_id AND g.status != 'unknown'), -1)
                 GROUP BY h.cert_id",
                super::placeholders(chunk.len())
            );
            let values: Vec<&dyn ToValue> = chunk.iter().map(|id| id as &dyn ToValue).collect();
            self.conn.query_each(&sql, &values, |r| {
                out.insert(r.get::<i64>(0)?, r.get::<i64>(1)?);
                Ok(())
            })?;
        }
        Ok(out)
    }
}

/// Alert changes being applied in one transaction ([`Store::begin_alert_changes`]).
pub struct AlertChanges<'s> {
    tx: Tx<'s>,
    now: UnixTime,
    applied: Applied,
    render: RenderPayload<'s>,
}

impl AlertChanges<'_> {
    /// Applies one batch of the state machine's changes; their `finding` indices are into
    /// `findings`.
    pub fn apply(&mut self, changes: &[Change], findings: &[Finding]) -> Result<()> {
        let (tx, now, applied, render): (&Db, _, _, _) = (&self.tx, self.now, &mut self.applied, self.render);
        let enqueue = |tx: &Db,
                       alert_id: i64,
                       seq: i64,
                       f: Option<&Finding>,
                       severity: &str,
                       opened: UnixTime,
                       notify: &[Notify],
                       applied: &mut Applied|
         -> Result<()> {
            for n in notify {
                for rx in &n.receivers {
                    let key = format!("alert/{alert_id}/{seq}/{}/{rx}/{}", n.route, n.event.as_str());
                    let body = match f {
                        Some(f) => render(&Notice::Finding { finding: f, event: n.event, alert_id, route: &n.route, opened_at: opened }),
                        None => render(&Notice::Resolved { alert: &resolved_alert(tx, alert_id)?, route: &n.route }),
                    };
                    let inserted = tx.execute(
                        "INSERT INTO outbox (key, alert_id, route, receiver, event, severity, payload, held, created_at, next_attempt_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
                         ON CONFLICT DO NOTHING",
                        params![key, alert_id, n.route, rx, n.event.as_str(), severity, body, n.held, now],
                    )?;
                    applied.notifications += inserted;
                }
            }
            Ok(())
        };
        let routes_json = |prev: &[(String, UnixTime)], notify: &[Notify]| -> String {
            let mut all: Vec<(String, UnixTime)> = prev.to_vec();
            // Escalation targets were told too: they get the resolve notice.
            for n in notify {
                if !all.iter().any(|(r, _)| *r == n.route) {
                    all.push((n.route.clone(), now));
                }
            }
            serde_json::to_string(&all).unwrap_or_else(|_| "[]".into())
        };
        for c in changes {
            match c {
                Change::Open { finding, notify } => {
                    let f = &findings[*finding];
                    let notified = !notify.is_empty();
                    let id: i64 = tx.query_row(
                        "INSERT INTO alerts (cert_id, kind, severity, state, reason, action, opened_at, last_notified_at, notifications, routes_notified, seq,
                                             subject, subject_kind, subject_name)
                         VALUES (?1, ?2, ?3, 'firing', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                         RETURNING id",
                        params![
                            f.cert_id,
                            f.kind.as_str(),
                            f.severity.as_str(),
                            f.reason,
                            f.action,
                            now,
                            notified.then_some(now),
                            notify.iter().map(|n| n.receivers.len() as i64).sum::<i64>(),
                            routes_json(&[], notify),
                            i64::from(notified),
                            f.subject,
                            f.subject_kind.as_str(),
                            f.name
                        ],
                        |r| r.get(0),
                    )?;
                    applied.opened += 1;
                    enqueue(tx, id, 1, Some(f), f.severity.as_str(), now, notify, applied)?;
                }
                Change::Update { alert_id, finding, notify, escalated } => {
                    let f = &findings[*finding];
                    type Current = (i64, i64, String, String, String, String, Option<String>);
                    let (seq, opened, prev, severity, reason, action, name): Current = tx.query_row(
                        "SELECT seq, opened_at, routes_notified, severity, reason, action, subject_name FROM alerts WHERE id = ?1",
                        params![alert_id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
                    )?;
                    let prev: Vec<(String, UnixTime)> = serde_json::from_str(&prev).unwrap_or_default();
                    // Most alerts are unchanged from one evaluation to the next: left unwritten.
                    if (severity.as_str(), reason.as_str(), action.as_str(), name.as_deref())
                        != (f.severity.as_str(), f.reason.as_str(), f.action.as_str(), Some(f.name.as_str()))
                    {
                        tx.execute(
                            "UPDATE alerts SET severity = ?2, reason = ?3, action = ?4, subject_name = ?5 WHERE id = ?1",
                            params![alert_id, f.severity.as_str(), f.reason, f.action, f.name],
                        )?;
                    }
                    if !notify.is_empty() {
                        let seq = seq + 1;
                        tx.execute(
                            "UPDATE alerts SET seq = ?2, last_notified_at = CASE WHEN ?5 <> 0 THEN last_notified_at ELSE ?3 END,
                               notifications = notifications + ?4, routes_notified = ?6 WHERE id = ?1",
                            params![
                                alert_id,
                                seq,
                                now,
                                notify.iter().map(|n| n.receivers.len() as i64).sum::<i64>(),
                                notify.iter().all(|n| n.event == Event::Escalation),
                                routes_json(&prev, notify)
                            ],
                        )?;
                        enqueue(tx, *alert_id, seq, Some(f), f.severity.as_str(), opened, notify, applied)?;
                    }
                    if *escalated {
                        tx.execute("UPDATE alerts SET escalated_at = ?2 WHERE id = ?1", params![alert_id, now])?;
                        applied.escalated += 1;
                    }
                }
                Change::Resolve { alert_id, notify } => {
                    let (seq, opened, severity): (i64, i64, String) =
                        tx.query_row("SELECT seq, opened_at, severity FROM alerts WHERE id = ?1", params![alert_id], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                        })?;
                    tx.execute(
                        "UPDATE alerts SET state = 'resolved', resolved_at = ?2, seq = ?3 WHERE id = ?1",
                        params![alert_id, now, seq + 1],
                    )?;
                    applied.resolved += 1;
                    enqueue(tx, *alert_id, seq + 1, None, &severity, opened, notify, applied)?;
                }
            }
        }
        Ok(())
    }

    /// Records the whole in the audit log and commits. Returns what was applied.
    pub fn commit(self) -> Result<Applied> {
        let (tx, now, applied) = (self.tx, self.now, self.applied);
        if applied.opened + applied.resolved + applied.escalated > 0 {
            let detail = serde_json::json!({"opened": applied.opened, "resolved": applied.resolved, "escalated": applied.escalated, "notifications_queued": applied.notifications});
            super::audit::append(&tx, now, "alerts", "certvigil", &detail)?;
        }
        tx.commit()?;
        Ok(applied)
    }
}

/// What a resolve notice says, from the alert row.
fn resolved_alert(tx: &Db, alert_id: i64) -> Result<ResolvedAlert> {
    type Fields = (String, String, String, Option<String>, String, Option<i64>, i64, Option<i64>, String, String);
    let (kind, severity, reason, fingerprint, name, not_after, opened_at, cert_id, subject, subject_kind): Fields = tx.query_row(
        "SELECT a.kind, a.severity, a.reason, c.fingerprint, COALESCE(c.common_name, c.subject, a.subject_name), c.not_after, a.opened_at,
                c.id, a.subject, a.subject_kind
         FROM alerts a LEFT JOIN certificates c ON c.id = a.cert_id WHERE a.id = ?1",
        params![alert_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?)),
    )?;
    // The certificate's distinct sources, in byte order: what SQLite's `json_group_array(DISTINCT
    // source)` gave walking the (cert_id, source, location) index; gathered here rather than with
    // a JSON aggregate, which the two engines spell differently.
    let mut sources: Vec<String> = match cert_id {
        Some(cert_id) => tx.query_map("SELECT DISTINCT source FROM sightings WHERE cert_id = ?1", params![cert_id], |r| r.get(0))?,
        None => Vec::new(),
    };
    sources.sort();
    sources.dedup();
    Ok(ResolvedAlert { alert_id, kind, severity, reason, fingerprint, name, not_after, opened_at, sources, subject, subject_kind })
}
