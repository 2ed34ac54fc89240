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

/// Why a receiver did not take a message; the message stays in the outbox and is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The receiver cannot be set up: a secret that does not resolve, a CA file that cannot be
    /// read, an address that does not parse.
    #[error("{0}")]
    Setup(String),
    /// The HTTP request failed or was answered with an error status. The URL may carry a token
    /// (Slack): only its host is named.
    #[error("POST to {host}: {reason}")]
    Http { host: String, reason: String },
    /// The SMTP server refused or could not be reached (RFC 4954 §6: 530, 534, 535 and 454 are
    /// a refused login, whatever the reply text says).
    #[error("SMTP {host}:{port}: {}{message}", if *.auth { "authentication failed: " } else { "" })]
    Smtp { host: String, port: u16, auth: bool, message: String },
}

/// Sends messages to one receiver. Object-safe; one implementation per file.
pub trait Notifier: Send + Sync {
    fn send<'a>(&'a self, message: &'a Message) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), SendError>> + Send + 'a>>;
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
