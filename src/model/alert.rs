//! Alerts as data: their states, the events that notify, silences, and the changes the alert
//! state machine (`notify::state::step`) decides and the store applies in one transaction.

use super::UnixTime;
use super::finding::{Finding, Kind, Severity};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    Firing,
    Reminder,
    Escalation,
    Resolved,
    Test,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Firing => "firing",
            Event::Reminder => "reminder",
            Event::Escalation => "escalation",
            Event::Resolved => "resolved",
            Event::Test => "test",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Firing,
    Acknowledged,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> AlertState {
        match s {
            "acknowledged" => AlertState::Acknowledged,
            "resolved" => AlertState::Resolved,
            _ => AlertState::Firing,
        }
    }
}

/// An open (firing or acknowledged) alert as the state machine sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAlert {
    pub id: i64,
    /// `cert:<sha256>`, `key:<source>:<location>` or `managed:<name>`.
    pub subject: String,
    pub kind: Kind,
    pub severity: Severity,
    pub state: AlertState,
    pub opened_at: UnixTime,
    pub last_notified_at: Option<UnixTime>,
    pub escalated_at: Option<UnixTime>,
    /// Each route told about this alert, with when it was first told: escalation deadlines
    /// run from there, and resolve notices go to these routes.
    pub routes_notified: Vec<(String, UnixTime)>,
}

impl OpenAlert {
    /// When `route` was first told about this alert.
    pub fn told(&self, route: &str) -> Option<UnixTime> {
        self.routes_notified.iter().find(|(r, _)| r == route).map(|(_, t)| *t)
    }
}

/// A silence: matches one certificate by fingerprint, one subject exactly (a key, a managed
/// certificate, or a certificate as `cert:<sha256>`), or findings by source/tag/kind/EKU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Silence {
    pub id: i64,
    pub fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub source: Option<String>,
    pub tag: Option<String>,
    pub kind: Option<String>,
    pub eku: Option<String>,
    pub reason: String,
    pub created_by: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

impl Silence {
    /// What it matches, as `key=value` pairs joined by commas (the form `silence add` takes).
    pub fn describe(&self) -> String {
        [
            ("fingerprint", &self.fingerprint),
            ("subject", &self.subject),
            ("source", &self.source),
            ("tag", &self.tag),
            ("kind", &self.kind),
            ("eku", &self.eku),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(",")
    }

    pub fn matches(&self, f: &Finding) -> bool {
        // A fingerprint silence never matches a finding without a certificate.
        self.fingerprint.as_ref().is_none_or(|p| !f.fingerprint.is_empty() && f.fingerprint.starts_with(p.as_str()))
            && self.subject.as_ref().is_none_or(|s| f.subject == *s)
            && self.source.as_ref().is_none_or(|s| f.sources.contains(s))
            && self.tag.as_ref().is_none_or(|t| f.tags.contains(t))
            && self.kind.as_ref().is_none_or(|k| f.kind.as_str() == k)
            && self.eku.as_ref().is_none_or(|e| f.ekus.contains(e))
    }
}

/// A notification to enqueue: one per receiver of `route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub route: String,
    pub receivers: Vec<String>,
    pub event: Event,
    /// Waits for the route's digest.
    pub held: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new alert for `findings[finding]`.
    Open { finding: usize, notify: Vec<Notify> },
    /// An open alert whose finding is still there (severity and reason refreshed).
    Update { alert_id: i64, finding: usize, notify: Vec<Notify>, escalated: bool },
    /// An open alert whose finding is gone.
    Resolve { alert_id: i64, notify: Vec<Notify> },
}

/// An alert being resolved, as its row says (its finding is gone): what its resolve notice
/// carries.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedAlert {
    pub alert_id: i64,
    pub kind: String,
    pub severity: String,
    pub reason: String,
    /// The certificate's, for certificate subjects.
    pub fingerprint: Option<String>,
    pub name: String,
    pub not_after: Option<UnixTime>,
    pub opened_at: UnixTime,
    /// Sources with a sighting of the certificate.
    pub sources: Vec<String>,
    pub subject: String,
    pub subject_kind: String,
}

/// What one queued notification is about: the payload renderer (`notify::payload`) turns it
/// into the JSON the outbox keeps.
#[derive(Debug, Clone, Copy)]
pub enum Notice<'a> {
    Finding { finding: &'a Finding, event: Event, alert_id: i64, route: &'a str, opened_at: UnixTime },
    Resolved { alert: &'a ResolvedAlert, route: &'a str },
}

/// Renders a notice's payload as the JSON to store.
pub type RenderPayload<'a> = &'a (dyn Fn(&Notice<'_>) -> String + Sync);
