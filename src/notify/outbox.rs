//! Delivery through the durable outbox: every due notification to its receiver, a digest route's
//! held notifications as one message per receiver, failures retried with backoff. A row is
//! marked sent only after its receiver accepted it (at-least-once, with idempotency keys).

use super::payload::Payload;
use super::{Message, notifier};
use crate::config::alerts::AlertsSpec;
use crate::model::UnixTime;
use crate::model::fence::{Fence, LEADER_LEASE, NotLeader};
use crate::store::{OutboxRow, Store, StoreError};
use std::sync::{Arc, Mutex};

/// Why a delivery pass stopped (a receiver refusing a message is not an error of the pass: it
/// is counted in [`Delivery::failed`] and retried).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot build the HTTP client for webhooks: {0}")]
    HttpClient(reqwest::Error),
    /// Another daemon leads now: what is left is its to send.
    #[error(transparent)]
    NotLeader(#[from] NotLeader),
}

/// What one delivery pass did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Delivery {
    pub sent: usize,
    pub failed: usize,
    pub errors: Vec<String>,
}

fn backoff(settings: &AlertsSpec, attempts: i64) -> i64 {
    let exp = attempts.clamp(0, 20) as u32;
    settings.retry_initial.saturating_mul(1i64 << exp).min(settings.retry_max)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Passes the fence before a send: the local grant, then the lease's token in the store (a
/// daemon that lost the lease, even one paused through it, sends nothing).
fn fenced(store: &Mutex<Store>, fence: &Fence) -> Result<(), DeliveryError> {
    if let Some(token) = fence.token()?
        && !lock(store).lease_current(LEADER_LEASE, token)?
    {
        fence.revoke();
        return Err(NotLeader.into());
    }
    Ok(())
}

/// Sends every due notification that is not held for a digest.
pub async fn deliver(store: &Arc<Mutex<Store>>, settings: &AlertsSpec, now: UnixTime, fence: &Fence) -> Result<Delivery, DeliveryError> {
    deliver_matching(store, settings, now, None, fence).await
}

/// Like [`deliver`], limited to notifications whose key starts with `key_prefix`.
pub async fn deliver_matching(
    store: &Arc<Mutex<Store>>,
    settings: &AlertsSpec,
    now: UnixTime,
    key_prefix: Option<&str>,
    fence: &Fence,
) -> Result<Delivery, DeliveryError> {
    let http = crate::net::webhook_client().map_err(DeliveryError::HttpClient)?;
    let due: Vec<OutboxRow> =
        lock(store).due_outbox(now, 10_000)?.into_iter().filter(|r| key_prefix.is_none_or(|p| r.key.starts_with(p))).collect();
    let mut report = Delivery::default();
    for row in due {
        let Some(receiver) = settings.receiver(&row.receiver) else {
            // The receiver was removed from the configuration: keep the row, say why.
            lock(store).mark_failed(&[row.id], "receiver no longer configured", now + settings.retry_max)?;
            report.failed += 1;
            continue;
        };
        let n = notifier(receiver, &http);
        let msg = Message { key: row.key.clone(), items: vec![Payload::from_stored(&row.payload)] };
        fenced(store, fence)?;
        match n.send(&msg).await {
            Ok(()) => {
                #[cfg(feature = "failpoints")]
                if std::env::var("CERTVIGIL_FAULT").as_deref() == Ok("exit-after-send") {
                    // Test hook (failpoints builds only): die as `kill -9` would, between the
                    // receiver's acceptance and the row's marking — the worst moment for a leader.
                    std::process::abort();
                }
                lock(store).mark_sent(&[row.id], now, None)?;
                tracing::info!(receiver = %row.receiver, route = %row.route, event = %row.event, key = %row.key, "notification sent");
                report.sent += 1;
            }
            Err(e) => {
                let next = now + backoff(settings, row.attempts);
                tracing::warn!(receiver = %row.receiver, route = %row.route, error = %e, retry_at = next, "notification failed; will retry");
                lock(store).mark_failed(&[row.id], &e.to_string(), next)?;
                report.failed += 1;
                report.errors.push(format!("{}: {e}", row.receiver));
            }
        }
    }
    Ok(report)
}

/// Sends each digest route's held notifications as one message per receiver.
pub async fn send_digests(
    store: &Arc<Mutex<Store>>,
    settings: &AlertsSpec,
    only_route: Option<&str>,
    now: UnixTime,
    fence: &Fence,
) -> Result<Delivery, DeliveryError> {
    let http = crate::net::webhook_client().map_err(DeliveryError::HttpClient)?;
    let mut report = Delivery::default();
    for route in settings.routes.iter().filter(|r| r.digest && only_route.is_none_or(|o| o == r.name)) {
        let held = lock(store).held_outbox(&route.name)?;
        let mut by_receiver: std::collections::BTreeMap<String, Vec<OutboxRow>> = std::collections::BTreeMap::new();
        for row in held {
            by_receiver.entry(row.receiver.clone()).or_default().push(row);
        }
        for (rx, rows) in by_receiver {
            let Some(receiver) = settings.receiver(&rx) else { continue };
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            let key = format!("digest/{}/{rx}/{}-{}", route.name, ids.first().copied().unwrap_or(0), ids.last().copied().unwrap_or(0));
            let items = rows.iter().map(|r| Payload { sent_at: Some(now), ..Payload::from_stored(&r.payload) }).collect();
            let msg = Message { key: key.clone(), items };
            fenced(store, fence)?;
            match notifier(receiver, &http).send(&msg).await {
                Ok(()) => {
                    lock(store).mark_sent(&ids, now, Some(&key))?;
                    tracing::info!(receiver = %rx, route = %route.name, items = ids.len(), "digest sent");
                    report.sent += 1;
                }
                Err(e) => {
                    tracing::warn!(receiver = %rx, route = %route.name, error = %e, "digest failed; the notifications stay queued");
                    lock(store).mark_failed(&ids, &e.to_string(), now)?;
                    report.failed += 1;
                    report.errors.push(format!("{rx}: {e}"));
                }
            }
        }
    }
    Ok(report)
}
