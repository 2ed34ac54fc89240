//! Subjects and bodies of notifications, from their payloads. Pure.

use super::payload::Payload;
use crate::model::finding::Severity;

fn sources(items: &[Payload]) -> String {
    let mut all: Vec<&str> = items.iter().flat_map(|i| i.sources.iter().map(String::as_str)).collect();
    all.sort_unstable();
    all.dedup();
    all.join(", ")
}

/// A subject that says it all: what, how many, how soon, where.
pub fn subject(items: &[Payload]) -> String {
    let where_ = sources(items);
    let on = if where_.is_empty() { String::new() } else { format!(" on {where_}") };
    if let [one] = items {
        let event = one.event.as_str();
        let tag = match event {
            "resolved" => "RESOLVED".to_string(),
            "test" => "TEST".to_string(),
            "escalation" => format!("ESCALATED {}", one.severity.to_uppercase()),
            _ => one.severity.to_uppercase(),
        };
        if event == "test" {
            return format!("[certvigil] TEST: notifications to route {} work", one.route);
        }
        return format!("[certvigil] {tag} {}: {} — {}{on}", one.kind, one.subject_name(), one.reason);
    }
    let expiring = items.iter().filter(|i| i.kind == "expiring" && i.event != "resolved").count();
    if expiring == items.len() {
        let latest = items.iter().filter_map(|i| i.certificate.as_ref().map(|c| c.not_after)).max().unwrap_or(0);
        // Counted from when the message is sent (`sent_at`, set by the sender), else from when
        // the oldest alert opened.
        let from = items.iter().map(|i| i.sent_at.unwrap_or(i.opened_at)).min().unwrap_or(0);
        let days = ((latest - from) as f64 / 86_400.0).ceil().max(0.0) as i64;
        return format!("[certvigil] {} certificates expire within {days} days{on}", items.len());
    }
    let mut counts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for i in items {
        let key = if i.event == "resolved" { "resolved".to_string() } else { i.kind.clone() };
        *counts.entry(key).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    format!("[certvigil] {} findings{on}: {}", items.len(), parts.join(", "))
}

/// `payments <payments-oncall@corp.example>`, when the item has an owner.
pub fn owner(item: &Payload) -> Option<String> {
    let name = item.owner.as_deref()?;
    Some(match item.owner_contact.as_deref() {
        Some(c) => format!("{name} <{c}>"),
        None => name.to_string(),
    })
}

/// Plain-text body.
pub fn text(items: &[Payload]) -> String {
    let mut out = String::new();
    for i in items {
        out.push_str(&format!(
            "{} {} {} [{}]\n  {}\n  action: {}\n",
            i.event.to_uppercase(),
            i.severity,
            i.kind,
            i.route,
            i.reason,
            i.action,
        ));
        if let Some(c) = &i.certificate {
            out.push_str(&format!("  certificate: {} (sha256 {})\n  expires: {}\n", c.name, c.fingerprint, c.not_after_rfc3339));
        } else {
            let (kind, name, id) = i.subject.as_ref().map_or(("", "", ""), |s| (s.kind.as_str(), s.name.as_str(), s.id.as_str()));
            out.push_str(&format!("  {kind}: {name} ({id})\n"));
            if let Some(t) = i.subject.as_ref().and_then(|s| s.not_after_rfc3339.as_deref()) {
                out.push_str(&format!("  expires: {t}\n"));
            }
        }
        if let Some(o) = owner(i) {
            out.push_str(&format!("  owner: {o}\n"));
        }
        out.push_str(&format!("  seen in: {}\n\n", sources(std::slice::from_ref(i))));
    }
    out.push_str(
        "Acknowledge with `certvigil ack <fingerprint or subject>`; silence with `certvigil silence add <fingerprint or subject> --for 7d --reason …`.\n",
    );
    out
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// HTML body (every value escaped).
pub fn html(items: &[Payload]) -> String {
    let mut out = String::from("<html><body style=\"font-family:sans-serif\"><table cellpadding=\"6\" style=\"border-collapse:collapse\">");
    out.push_str("<tr><th align=\"left\">Severity</th><th align=\"left\">Finding</th><th align=\"left\">Subject</th><th align=\"left\">Owner</th><th align=\"left\">Reason</th><th align=\"left\">Action</th></tr>");
    for i in items {
        let color = match i.severity.as_str() {
            "critical" => "#b00020",
            "warning" => "#b26a00",
            _ => "#555555",
        };
        let fingerprint = i.certificate.as_ref().map_or("", |c| c.fingerprint.as_str());
        out.push_str(&format!(
            "<tr style=\"border-top:1px solid #ddd\"><td style=\"color:{color}\"><b>{}</b></td><td>{} {}</td><td>{}<br><small><code>{}</code></small></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&i.severity.to_uppercase()),
            esc(&i.event),
            esc(&i.kind),
            esc(i.subject_name()),
            esc(match fingerprint {
                "" => i.subject.as_ref().map_or("", |s| s.id.as_str()),
                fp => fp,
            }),
            esc(&owner(i).unwrap_or_else(|| "-".into())),
            esc(&i.reason),
            esc(&i.action),
        ));
    }
    out.push_str("</table></body></html>");
    out
}

/// The highest severity among the items.
pub fn severity(items: &[Payload]) -> Severity {
    items.iter().filter_map(|i| Severity::parse(&i.severity)).max().unwrap_or(Severity::Info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payload(v: serde_json::Value) -> Payload {
        serde_json::from_value(v).unwrap()
    }

    fn item(kind: &str, sev: &str, event: &str, not_after: i64) -> Payload {
        payload(
            json!({"event": event, "kind": kind, "severity": sev, "route": "r", "reason": "expires on X (in 3 days)", "action": "renew <it>",
               "certificate": {"name": "www.example.net", "fingerprint": "ab", "not_after": not_after, "not_after_rfc3339": "X"},
               "sources": ["web-prod"], "opened_at": 0}),
        )
    }

    #[test]
    fn subjects() {
        assert_eq!(
            subject(&[item("expiring", "critical", "firing", 0)]),
            "[certvigil] CRITICAL expiring: www.example.net — expires on X (in 3 days) on web-prod"
        );
        let three: Vec<Payload> = (1..=3).map(|d| item("expiring", "warning", "firing", d * 86_400 + 86_400 * 11)).collect();
        assert_eq!(subject(&three), "[certvigil] 3 certificates expire within 14 days on web-prod");
        let sent_later: Vec<Payload> = three.iter().map(|i| Payload { sent_at: Some(4 * 86_400), ..i.clone() }).collect();
        assert_eq!(subject(&sent_later), "[certvigil] 3 certificates expire within 10 days on web-prod");
        assert_eq!(
            subject(&[item("expired", "critical", "firing", 0), item("revoked", "critical", "firing", 0)]),
            "[certvigil] 2 findings on web-prod: 1 expired, 1 revoked"
        );
    }

    #[test]
    fn subjects_without_a_certificate_are_named() {
        let managed = payload(json!({"event": "firing", "kind": "renewal-failed", "severity": "warning", "route": "r",
            "reason": "issuance of managed certificate `web` failed 1 time(s) in a row", "action": "fix <it>", "certificate": null,
            "subject": {"kind": "managed", "id": "managed:web", "name": "managed certificate web"}, "sources": [], "opened_at": 0}));
        assert_eq!(
            subject(std::slice::from_ref(&managed)),
            "[certvigil] WARNING renewal-failed: managed certificate web — issuance of managed certificate `web` failed 1 time(s) in a row"
        );
        let t = text(std::slice::from_ref(&managed));
        assert!(t.contains("  managed: managed certificate web (managed:web)\n"), "{t}");
        assert!(!t.contains("certificate:") && !t.contains("expires:"), "{t}");
        let h = html(std::slice::from_ref(&managed));
        assert!(h.contains("<td>managed certificate web<br><small><code>managed:web</code></small></td>"), "{h}");
        // A certificate's item still reads as before.
        assert!(text(&[item("expiring", "warning", "firing", 0)]).contains("  certificate: www.example.net (sha256 ab)\n  expires: X\n"));
    }

    #[test]
    fn the_owner_is_shown() {
        let owned = Payload {
            owner: Some("payments".into()),
            owner_contact: Some("pay@corp.example".into()),
            ..item("expiring", "warning", "firing", 0)
        };
        let t = text(std::slice::from_ref(&owned));
        assert!(t.contains("  owner: payments <pay@corp.example>\n  seen in: web-prod\n"), "{t}");
        let h = html(std::slice::from_ref(&owned));
        assert!(h.contains("<td>payments &lt;pay@corp.example&gt;</td>"), "{h}");
        // An orphan: no owner line, a dash in the table.
        let orphan = item("expiring", "warning", "firing", 0);
        assert!(!text(std::slice::from_ref(&orphan)).contains("owner:"));
        assert!(html(std::slice::from_ref(&orphan)).contains("</small></td><td>-</td>"));
    }

    #[test]
    fn html_is_escaped() {
        assert!(html(&[item("expiring", "warning", "firing", 0)]).contains("renew &lt;it&gt;"));
        assert!(text(&[item("expiring", "warning", "firing", 0)]).contains("action: renew <it>"));
    }
}
