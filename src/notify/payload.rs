//! The payload of a notification: what the outbox stores, what receivers get in `items`, and
//! what the renderers read. One typed struct for every event — a finding firing, reminded or
//! escalated, an alert resolved, a test message — so nothing is read back by string keys.
//!
//! Fields are declared in alphabetical order: the stored JSON (and what a webhook receiver
//! gets) keeps the key order it has always had.

use crate::model::UnixTime;
use crate::model::alert::Notice;
use crate::model::finding::SubjectKind;
use serde::{Deserialize, Serialize};

/// One notification's payload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Payload {
    /// One line: what to do.
    pub action: String,
    /// The alert; null for a test message.
    pub alert_id: Option<i64>,
    /// The certificate, for certificate subjects (and a placeholder in a test message).
    pub certificate: Option<CertificateRef>,
    /// Stable per (subject, kind): PagerDuty's `dedup_key`, the email thread.
    pub dedup_key: String,
    /// firing | reminder | escalation | resolved | test
    pub event: String,
    pub kind: String,
    pub opened_at: UnixTime,
    /// The certificate's owner (`app::owners`); absent for orphans, other subjects, resolve
    /// notices and test messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// How to reach the owner, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_contact: Option<String>,
    pub reason: String,
    pub route: String,
    /// Set by the digest sender: when the message leaves, which "expire within N days" counts
    /// from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<UnixTime>,
    pub severity: String,
    pub sources: Vec<String>,
    /// Every finding's subject (kind, id, name); absent from test messages and from payloads
    /// queued before subjects existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<SubjectRef>,
    pub tags: Vec<String>,
}

/// The certificate a notification is about.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CertificateRef {
    pub fingerprint: String,
    pub name: String,
    pub not_after: UnixTime,
    pub not_after_rfc3339: String,
}

/// What a notification is about, for every kind of subject.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubjectRef {
    /// `cert:<sha256>`, `key:<source>:<location>` or `managed:<name>`.
    pub id: String,
    /// certificate | key | managed
    pub kind: String,
    pub name: String,
    /// Only when the subject expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<UnixTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after_rfc3339: Option<String>,
}

impl SubjectRef {
    fn new(kind: &str, id: &str, name: &str, not_after: UnixTime) -> SubjectRef {
        let expires = not_after != 0;
        SubjectRef {
            id: id.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
            not_after: expires.then_some(not_after),
            not_after_rfc3339: expires.then(|| crate::model::format_time(not_after)),
        }
    }
}

impl CertificateRef {
    fn new(fingerprint: &str, name: &str, not_after: UnixTime) -> CertificateRef {
        CertificateRef {
            fingerprint: fingerprint.to_string(),
            name: name.to_string(),
            not_after,
            not_after_rfc3339: crate::model::format_time(not_after),
        }
    }
}

/// Stable per (subject, kind): a certificate's as it always was (`certvigil:<16 hex>:<kind>`),
/// others `certvigil:<subject>:<kind>`.
fn dedup_key(subject: &str, fingerprint: &str, kind: &str) -> String {
    if fingerprint.is_empty() {
        format!("certvigil:{subject}:{kind}")
    } else {
        format!("certvigil:{}:{kind}", &fingerprint[..16.min(fingerprint.len())])
    }
}

impl Payload {
    /// The payload of a notification the alert state machine decided.
    pub fn of(notice: &Notice<'_>) -> Payload {
        match notice {
            Notice::Finding { finding: f, event, alert_id, route, opened_at } => Payload {
                action: f.action.clone(),
                alert_id: Some(*alert_id),
                certificate: (f.subject_kind == SubjectKind::Certificate)
                    .then(|| CertificateRef::new(&f.fingerprint, &f.name, f.not_after)),
                dedup_key: dedup_key(&f.subject, &f.fingerprint, f.kind.as_str()),
                event: event.as_str().to_string(),
                kind: f.kind.as_str().to_string(),
                opened_at: *opened_at,
                owner: f.owner.clone(),
                owner_contact: f.owner_contact.clone(),
                reason: f.reason.clone(),
                route: route.to_string(),
                sent_at: None,
                severity: f.severity.as_str().to_string(),
                sources: f.sources.clone(),
                subject: Some(SubjectRef::new(f.subject_kind.as_str(), &f.subject, &f.name, f.not_after)),
                tags: f.tags.clone(),
            },
            Notice::Resolved { alert: a, route } => {
                let not_after = a.not_after.unwrap_or(0);
                Payload {
                    action: "nothing to do".into(),
                    alert_id: Some(a.alert_id),
                    certificate: a.fingerprint.as_deref().map(|fp| CertificateRef::new(fp, &a.name, not_after)),
                    dedup_key: dedup_key(&a.subject, a.fingerprint.as_deref().unwrap_or(""), &a.kind),
                    event: "resolved".into(),
                    kind: a.kind.clone(),
                    opened_at: a.opened_at,
                    owner: None,
                    owner_contact: None,
                    reason: format!("resolved (was: {})", a.reason),
                    route: route.to_string(),
                    sent_at: None,
                    severity: a.severity.clone(),
                    sources: a.sources.clone(),
                    subject: Some(SubjectRef::new(&a.subject_kind, &a.subject, &a.name, not_after)),
                    tags: Vec::new(),
                }
            }
        }
    }

    /// The message `certvigil alert test` queues for one route.
    pub fn test(route: &str, now: UnixTime) -> Payload {
        Payload {
            action: "nothing to do".into(),
            alert_id: None,
            certificate: Some(CertificateRef {
                fingerprint: String::new(),
                name: "certvigil test".into(),
                not_after: 0,
                not_after_rfc3339: String::new(),
            }),
            dedup_key: format!("certvigil:test:{route}"),
            event: "test".into(),
            kind: "test".into(),
            opened_at: now,
            owner: None,
            owner_contact: None,
            reason: format!("a test message from certvigil to route {route}"),
            route: route.to_string(),
            sent_at: None,
            severity: "info".into(),
            sources: Vec::new(),
            subject: None,
            tags: Vec::new(),
        }
    }

    /// The JSON the outbox stores.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "null".into())
    }

    /// A stored payload. One the outbox holds from an older version, or damaged, still renders
    /// with what it has rather than blocking its delivery.
    pub fn from_stored(v: &serde_json::Value) -> Payload {
        serde_json::from_value(v.clone()).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "an outbox payload does not have the expected shape; sending what can be read");
            Payload::default()
        })
    }

    /// What the item is about: the certificate's name, else the subject's (a key, a managed
    /// certificate with none installed).
    pub fn subject_name(&self) -> &str {
        match self.certificate.as_ref().map(|c| c.name.as_str()) {
            Some(name) if !name.is_empty() => name,
            _ => self.subject.as_ref().map_or("", |s| s.name.as_str()),
        }
    }
}

/// The payload JSON of a notice: what the store writes into the outbox.
pub fn json(notice: &Notice<'_>) -> String {
    Payload::of(notice).to_json()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::alert::{Event, ResolvedAlert};
    use crate::model::finding::{Finding, Kind, Severity};

    fn finding() -> Finding {
        Finding {
            subject: format!("cert:{}", "ab".repeat(32)),
            subject_kind: SubjectKind::Certificate,
            cert_id: Some(4),
            fingerprint: "ab".repeat(32),
            name: "www.example.net".into(),
            kind: Kind::Expiring,
            severity: Severity::Warning,
            reason: "expires on 2026-06-08 (in 7 days)".into(),
            action: "renew".into(),
            sources: vec!["web".into()],
            tags: vec!["prod".into()],
            ekus: vec!["serverAuth".into()],
            not_after: 1_780_876_800,
            owner: None,
            owner_contact: None,
        }
    }

    /// The wire shape receivers and the outbox have always had, key for key and in this order.
    #[test]
    fn a_finding_payload_keeps_its_wire_shape() {
        let f = finding();
        let got = json(&Notice::Finding { finding: &f, event: Event::Firing, alert_id: 9, route: "ops", opened_at: 1_780_272_000 });
        let fp = "ab".repeat(32);
        let want = format!(
            r#"{{"action":"renew","alert_id":9,"certificate":{{"fingerprint":"{fp}","name":"www.example.net","not_after":1780876800,"not_after_rfc3339":"2026-06-08T00:00:00Z"}},"dedup_key":"certvigil:abababababababab:expiring","event":"firing","kind":"expiring","opened_at":1780272000,"reason":"expires on 2026-06-08 (in 7 days)","route":"ops","severity":"warning","sources":["web"],"subject":{{"id":"cert:{fp}","kind":"certificate","name":"www.example.net","not_after":1780876800,"not_after_rfc3339":"2026-06-08T00:00:00Z"}},"tags":["prod"]}}"#
        );
        assert_eq!(got, want);
    }

    /// An owned certificate's payload carries its owner and contact, in their alphabetical place.
    #[test]
    fn an_owned_finding_carries_its_owner() {
        let f = Finding { owner: Some("payments".into()), owner_contact: Some("payments-oncall@corp.example".into()), ..finding() };
        let got = json(&Notice::Finding { finding: &f, event: Event::Firing, alert_id: 9, route: "ops", opened_at: 1_780_272_000 });
        assert!(
            got.contains(r#""opened_at":1780272000,"owner":"payments","owner_contact":"payments-oncall@corp.example","reason":"#),
            "{got}"
        );
        let back = Payload::from_stored(&serde_json::from_str(&got).unwrap());
        assert_eq!((back.owner.as_deref(), back.owner_contact.as_deref()), (Some("payments"), Some("payments-oncall@corp.example")));
    }

    #[test]
    fn a_resolve_notice_for_a_subject_without_certificate() {
        let a = ResolvedAlert {
            alert_id: 3,
            kind: "renewal-failed".into(),
            severity: "critical".into(),
            reason: "issuance failed".into(),
            fingerprint: None,
            name: "managed certificate web".into(),
            not_after: None,
            opened_at: 10,
            sources: vec![],
            subject: "managed:web".into(),
            subject_kind: "managed".into(),
        };
        assert_eq!(
            json(&Notice::Resolved { alert: &a, route: "ops" }),
            r#"{"action":"nothing to do","alert_id":3,"certificate":null,"dedup_key":"certvigil:managed:web:renewal-failed","event":"resolved","kind":"renewal-failed","opened_at":10,"reason":"resolved (was: issuance failed)","route":"ops","severity":"critical","sources":[],"subject":{"id":"managed:web","kind":"managed","name":"managed certificate web"},"tags":[]}"#
        );
    }

    /// A payload queued by a version without subjects, and one damaged, still deliver.
    #[test]
    fn stored_payloads_of_other_shapes_are_read() {
        let old = serde_json::json!({"event": "firing", "alert_id": 1, "kind": "expired", "severity": "critical", "route": "r",
            "certificate": {"fingerprint": "cd", "name": "old.example", "not_after": 5, "not_after_rfc3339": "x"},
            "reason": "expired", "action": "renew", "sources": ["s"], "tags": [], "opened_at": 1, "dedup_key": "k"});
        let p = Payload::from_stored(&old);
        assert_eq!((p.subject_name(), p.subject.is_none(), p.kind.as_str()), ("old.example", true, "expired"));
        // Re-serialised, it is what was stored.
        assert_eq!(serde_json::to_value(&p).unwrap(), old);
        assert_eq!(Payload::from_stored(&serde_json::json!({"alert_id": "not a number"})), Payload::default());
        assert_eq!(Payload::from_stored(&serde_json::Value::Null), Payload::default());
    }

    #[test]
    fn the_test_message() {
        let t = Payload::test("ops", 7).to_json();
        assert_eq!(
            t,
            r#"{"action":"nothing to do","alert_id":null,"certificate":{"fingerprint":"","name":"certvigil test","not_after":0,"not_after_rfc3339":""},"dedup_key":"certvigil:test:ops","event":"test","kind":"test","opened_at":7,"reason":"a test message from certvigil to route ops","route":"ops","severity":"info","sources":[],"tags":[]}"#
        );
    }
}
