//! Alerts: the state machine (`state`), the typed notification payload (`payload`), rendering
//! (`render`), one notifier per receiver kind, and delivery through the durable outbox. Routing
//! settings are validated in `config::alerts`.
//!
//! Delivery is at-least-once with idempotency keys: a notification is in the outbox before it is
//! sent and marked sent only after the receiver accepted it; a crash in between sends it again
//! after restart, carrying the same key (`Idempotency-Key` header, PagerDuty `dedup_key`, email
//! Message-ID) so receivers can drop the repeat.

pub mod email;
pub mod outbox;
pub mod payload;
pub mod render;
pub mod state;
pub mod webhook;

use crate::config::alerts::{Receiver, ReceiverKind};

pub use outbox::{Delivery, DeliveryError, deliver, deliver_matching, send_digests};

/// One message to one receiver: a single notification or a digest of several.
#[derive(Debug, Clone)]
pub struct Message {
    /// Idempotency key.
    pub key: String,
    pub items: Vec<payload::Payload>,
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
