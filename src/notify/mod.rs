//! Alerts: the state machine (`state`), routing settings (`settings`), rendering (`render`),
//! one notifier per receiver kind, and delivery through the durable outbox.
//!
//! Delivery is at-least-once with idempotency keys: a notification is in the outbox before it is
//! sent and marked sent only after the receiver accepted it; a crash in between sends it again
//! after restart, carrying the same key (`Idempotency-Key` header, PagerDuty `dedup_key`, email
//! Message-ID) so receivers can drop the repeat.

pub mod email;
pub mod render;
pub mod state;
pub mod webhook;

use crate::config::alerts::{AlertSettings, Receiver, ReceiverKind};
use crate::model::UnixTime;
use crate::store::{OutboxRow, Store};
use std::sync::{Arc, Mutex};

/// One message to one receiver: a single notification or a digest of several.
#[derive(Debug, Clone)]
pub struct Message {
    /// Idempotency key.
    pub key: String,
    pub items: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("receiver {receiver}: {message}")]
pub struct NotifyError {
    pub receiver: String,
    pub message: String,
}

/// Sends messages to one receiver. Object-safe; one implementation per file.
pub trait Notifier: Send + Sync {
    fn send<'a>(&'a self, message: &'a Message) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;
}

/// The notifier for a receiver.
pub fn notifier(r: &Receiver, http: &reqwest::Client) -> Box<dyn Notifier> {
    match &r.kind {
        ReceiverKind::Email { to, from, smtp } => Box::new(email::Email { to: to.clone(), from: from.clone(), smtp: smtp.clone() }),
        ReceiverKind::Webhook { url, secret, timeout } => {
            Box::new(webhook::Webhook { http: http.clone(), url: url.clone(), secret: secret.clone(), timeout: *timeout })
        }
        ReceiverKind::Slack { url, timeout } => Box::new(webhook::Slack { http: http.clone(), url: url.clone(), timeout: *timeout }),
        ReceiverKind::PagerDuty { routing_key, url, timeout } => {
            Box::new(webhook::PagerDuty { http: http.clone(), url: url.clone(), routing_key: routing_key.clone(), timeout: *timeout })
        }
    }
}

/// An HTTP client for webhooks (ring provider, no redirects: a receiver URL is exact).
pub fn http_client() -> Result<reqwest::Client, String> {
    crate::net::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("certvigil/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

/// What one delivery pass did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Delivery {
    pub sent: usize,
    pub failed: usize,
    pub errors: Vec<String>,
}

fn backoff(settings: &AlertSettings, attempts: i64) -> i64 {
    let exp = attempts.clamp(0, 20) as u32;
    settings.retry_initial.saturating_mul(1i64 << exp).min(settings.retry_max)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sends every due notification that is not held for a digest.
pub async fn deliver(store: &Arc<Mutex<Store>>, settings: &AlertSettings, now: UnixTime) -> Result<Delivery, crate::store::StoreError> {
    deliver_matching(store, settings, now, None).await
}

/// Like [`deliver`], limited to notifications whose key starts with `key_prefix`.
pub async fn deliver_matching(
    store: &Arc<Mutex<Store>>,
    settings: &AlertSettings,
    now: UnixTime,
    key_prefix: Option<&str>,
) -> Result<Delivery, crate::store::StoreError> {
    let http = http_client().map_err(|e| crate::store::StoreError::Corrupt { what: "http client", detail: e })?;
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
        let msg = Message { key: row.key.clone(), items: vec![row.payload.clone()] };
        match n.send(&msg).await {
            Ok(()) => {
                lock(store).mark_sent(&[row.id], now, None)?;
                tracing::info!(receiver = %row.receiver, route = %row.route, event = %row.event, key = %row.key, "notification sent");
                report.sent += 1;
            }
            Err(e) => {
                let next = now + backoff(settings, row.attempts);
                tracing::warn!(receiver = %row.receiver, route = %row.route, error = %e, retry_at = next, "notification failed; will retry");
                lock(store).mark_failed(&[row.id], &e, next)?;
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
    settings: &AlertSettings,
    only_route: Option<&str>,
    now: UnixTime,
) -> Result<Delivery, crate::store::StoreError> {
    let http = http_client().map_err(|e| crate::store::StoreError::Corrupt { what: "http client", detail: e })?;
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
            let items = rows
                .iter()
                .map(|r| {
                    let mut p = r.payload.clone();
                    if let Some(o) = p.as_object_mut() {
                        o.insert("sent_at".into(), now.into());
                    }
                    p
                })
                .collect();
            let msg = Message { key: key.clone(), items };
            match notifier(receiver, &http).send(&msg).await {
                Ok(()) => {
                    lock(store).mark_sent(&ids, now, Some(&key))?;
                    tracing::info!(receiver = %rx, route = %route.name, items = ids.len(), "digest sent");
                    report.sent += 1;
                }
                Err(e) => {
                    tracing::warn!(receiver = %rx, route = %route.name, error = %e, "digest failed; the notifications stay queued");
                    lock(store).mark_failed(&ids, &e, now)?;
                    report.failed += 1;
                    report.errors.push(format!("{rx}: {e}"));
                }
            }
        }
    }
    Ok(report)
}
