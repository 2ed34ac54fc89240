//! Alerts (open ones with their state and notification history; acknowledge and silence, the
//! page's only writes, audited like the CLI's), renewals of managed certificates, the audit log
//! with its chain status, and the objects a source cannot read.

use super::layout::{self, Nav};
use super::{Body, Visitor, get, html, local_target, read, redirect, write};
use crate::model::UnixTime;
use crate::model::alert::Silence;
use crate::model::rows::{AlertRow, OutboxRow, RenewalRow};
use crate::store::Verdict;
use hyper::{Response, StatusCode};
use maud::{Markup, html};
use std::collections::HashMap;
use std::sync::Arc;

/// Audit entries per page.
const AUDIT_PAGE: usize = 100;
/// The longest silence the page sets.
const MAX_SILENCE: i64 = 90 * 86_400;

pub async fn list(state: &Arc<super::State>, who: &Visitor, params: &[(String, String)]) -> Response<Body> {
    let severity = get(params, "severity").map(str::to_string);
    if severity.as_deref().is_some_and(|s| !["info", "warning", "critical"].contains(&s)) {
        return layout::message(StatusCode::BAD_REQUEST, "Bad filter", "severity: info, warning or critical");
    }
    let all = get(params, "state") == Some("all");
    let now = state.clock.now();
    let data = read(state, move |s| {
        let mut alerts = s.alerts(all)?;
        alerts.retain(|a| severity.as_deref().is_none_or(|sev| a.severity == sev));
        let ids: Vec<i64> = alerts.iter().map(|a| a.id).collect();
        let notes = s.alert_notifications(&ids)?;
        Ok((alerts, notes, s.silences(now, false)?))
    })
    .await;
    let (alerts, notes, silences) = match data {
        Ok(d) => d,
        Err(r) => return r,
    };
    let mut by_alert: HashMap<i64, Vec<OutboxRow>> = HashMap::new();
    for n in notes {
        if let Some(a) = n.alert_id {
            by_alert.entry(a).or_default().push(n);
        }
    }
    let body = html! {
        p {
            "Show: " a href="/ui/alerts" { "open" } " · " a href="/ui/alerts?state=all" { "all, resolved too" }
            " · severity: " a href="/ui/alerts?severity=critical" { "critical" } " · " a href="/ui/alerts?severity=warning" { "warning" } " · " a href="/ui/alerts?severity=info" { "info" }
        }
        @if alerts.is_empty() { p.ok-notice { "No alerts." } }
        @else { (table(&alerts, who, now, "/ui/alerts")) }
        @if !by_alert.is_empty() {
            h2 { "Notification history" }
            @for a in &alerts {
                @if let Some(list) = by_alert.get(&a.id) {
                    details #(format!("n{}", a.id)) {
                        summary { "Alert " (a.id) " — " (a.name) " (" (list.len()) " notification" @if list.len() != 1 { "s" } ")" }
                        (notifications(list))
                    }
                }
            }
        }
        @if !silences.is_empty() {
            h2 { "Silences in force" }
            div.table-wrap { table {
                thead { tr { th scope="col" { "Id" } th scope="col" { "Matches" } th scope="col" { "Until" } th scope="col" { "By" } th scope="col" { "Reason" } } }
                tbody { @for si in &silences { tr {
                    td { (si.id) }
                    td.mono { (si.describe()) }
                    td { (layout::when(si.expires_at, now)) }
                    td { (si.created_by) }
                    td { (si.reason) }
                } } }
            } }
        }
    };
    html(StatusCode::OK, layout::shell("Alerts", Nav::Alerts, who, now, body))
}

fn notifications(list: &[OutboxRow]) -> Markup {
    html! {
        div.table-wrap { table {
            thead { tr { th scope="col" { "Event" } th scope="col" { "Route" } th scope="col" { "Receiver" } th scope="col" { "Queued" } th scope="col" { "Sent" } th scope="col" { "Attempts" } th scope="col" { "Last error" } } }
            tbody { @for n in list { tr {
                td { (n.event) } td { (n.route) } td { (n.receiver) }
                td { (layout::time(n.created_at)) }
                td { @if let Some(t) = n.sent_at { (layout::time(t)) } @else if n.held { "held for the digest" } @else { "pending" } }
                td { (n.attempts) }
                td { (n.last_error.as_deref().unwrap_or("")) }
            } } }
        } }
    }
}

/// The alerts table, with acknowledge and silence forms for an operator; `back` is where a
/// form returns to.
pub fn table(alerts: &[AlertRow], who: &Visitor, now: UnixTime, back: &str) -> Markup {
    html! {
        div.table-wrap { table #alerts {
            caption { (alerts.len()) " alert" @if alerts.len() != 1 { "s" } }
            thead { tr {
                th scope="col" { "Id" } th scope="col" { "Severity" } th scope="col" { "Kind" } th scope="col" { "Subject" } th scope="col" { "State" }
                th scope="col" { "Reason and action" } th scope="col" { "Opened" } th scope="col" { "Notified" }
                @if who.can_write() { th scope="col" { "Act" } }
            } }
            tbody { @for a in alerts { tr data-alert=(a.id) {
                td { (a.id) }
                td { (layout::severity(&a.severity)) }
                td { (a.kind) }
                td {
                    @if let Some(fp) = &a.fingerprint { a href=(format!("/ui/certificates/{fp}")) { (a.name) } }
                    @else { (a.name) br; code { (a.subject) } }
                }
                td {
                    span class=(format!("badge state-{}", a.state)) { (a.state) }
                    @if let (Some(t), Some(by)) = (a.acked_at, &a.acked_by) { br; span.hint { "by " (by) ", " (layout::relative(t, now)) } }
                    @if let Some(t) = a.resolved_at { br; span.hint { "resolved " (layout::relative(t, now)) } }
                }
                td { (a.reason) br; span.hint { (a.action) } }
                td { (layout::time(a.opened_at)) }
                td { (a.notifications) @if let Some(t) = a.last_notified_at { br; span.hint { "last " (layout::relative(t, now)) } } }
                @if who.can_write() {
                    td {
                        @if a.state == "firing" {
                            form.inline.ack method="post" action=(format!("/ui/alerts/{}/ack", a.id)) {
                                (hidden(who, back))
                                label for=(format!("ack-note-{}", a.id)) { "Note" }
                                input type="text" id=(format!("ack-note-{}", a.id)) name="note" maxlength="200";
                                label for=(format!("ack-by-{}", a.id)) { "By" }
                                input type="text" id=(format!("ack-by-{}", a.id)) name="by" maxlength="64" placeholder="your name";
                                button type="submit" { "Acknowledge" }
                            }
                        }
                        @if a.state != "resolved" {
                            form.inline.silence method="post" action=(format!("/ui/alerts/{}/silence", a.id)) {
                                (hidden(who, back))
                                label for=(format!("si-reason-{}", a.id)) { "Reason" }
                                input type="text" id=(format!("si-reason-{}", a.id)) name="reason" required maxlength="200";
                                label for=(format!("si-for-{}", a.id)) { "For" }
                                select id=(format!("si-for-{}", a.id)) name="duration" {
                                    option value="1h" { "1 hour" } option value="8h" { "8 hours" } option value="24h" selected { "1 day" }
                                    option value="7d" { "7 days" } option value="30d" { "30 days" }
                                }
                                label for=(format!("si-by-{}", a.id)) { "By" }
                                input type="text" id=(format!("si-by-{}", a.id)) name="by" maxlength="64" placeholder="your name";
                                button.secondary type="submit" { "Silence" }
                            }
                        }
                    }
                }
            } } }
        } }
    }
}

fn hidden(who: &Visitor, back: &str) -> Markup {
    html! {
        @if let Some(csrf) = &who.csrf { input type="hidden" name="csrf" value=(csrf); }
        input type="hidden" name="return" value=(back);
    }
}

/// Who the audit log names for a page write: the name given, marked as from the page.
fn actor(form: &[(String, String)]) -> String {
    let by: String = get(form, "by").unwrap_or("").chars().filter(|c| !c.is_control()).take(64).collect();
    let by = by.trim();
    if by.is_empty() { "status page".into() } else { format!("{by} (status page)") }
}

/// Acknowledge or silence alert `id`.
pub async fn act(state: &Arc<super::State>, id: i64, action: &str, form: &[(String, String)]) -> Response<Body> {
    let now = state.clock.now();
    let by = actor(form);
    let back = get(form, "return").and_then(local_target).unwrap_or("/ui/alerts").to_string();
    let note: Option<String> = get(form, "note").map(|n| n.chars().take(200).collect());
    match action {
        "ack" => {
            let done = write(state, move |s| s.ack(Some(id), None, None, &by, note.as_deref(), now)).await;
            match done {
                Ok(0) => layout::message(
                    StatusCode::CONFLICT,
                    "Not acknowledged",
                    &format!("Alert {id} is not firing (already acknowledged, silenced or resolved)."),
                ),
                Ok(_) => {
                    tracing::info!(alert = id, "status page: alert acknowledged");
                    redirect(&back)
                }
                Err(r) => r,
            }
        }
        _ => {
            let reason: String = get(form, "reason").unwrap_or("").trim().chars().take(200).collect();
            if reason.is_empty() {
                return layout::message(StatusCode::BAD_REQUEST, "Not silenced", "A silence needs a reason.");
            }
            let duration = match get(form, "duration").map(crate::config::parse_duration) {
                Some(Ok(d)) if (60..=MAX_SILENCE as u64).contains(&d.as_secs()) => d.as_secs() as i64,
                _ => return layout::message(StatusCode::BAD_REQUEST, "Not silenced", "The duration must be from 1m to 90d (e.g. 24h)."),
            };
            let done = write(state, move |s| {
                let Some(a) = s.alert(id)?.filter(|a| a.state != "resolved") else { return Ok(None) };
                let si = Silence {
                    id: 0,
                    fingerprint: None,
                    subject: Some(a.subject.clone()),
                    source: None,
                    tag: None,
                    kind: Some(a.kind.clone()),
                    eku: None,
                    reason,
                    created_by: by,
                    created_at: now,
                    expires_at: now + duration,
                };
                s.add_silence(&si).map(Some)
            })
            .await;
            match done {
                Ok(None) => layout::message(StatusCode::NOT_FOUND, "Not silenced", &format!("Alert {id} is not open.")),
                Ok(Some(sid)) => {
                    tracing::info!(alert = id, silence = sid, "status page: alert silenced");
                    redirect(&back)
                }
                Err(r) => r,
            }
        }
    }
}

/// One managed certificate's renewal state.
pub fn renewal(r: &RenewalRow, now: UnixTime) -> Markup {
    html! {
        dl.facts {
            dt { "Managed certificate" } dd { (r.name) }
            dt { "State" } dd { span class=(format!("badge {}", if r.state == "failed" { "s-critical" } else { "s-info" })) { (r.state) } }
            @if let Some(t) = r.renew_at { dt { "Next renewal" } dd { (layout::when(t, now)) } }
            @if let (Some(s), Some(e)) = (r.ari_start, r.ari_end) { dt { "ARI window" } dd { (layout::time(s)) " to " (layout::time(e)) } }
            @if let Some(x) = &r.ari_explanation { dt { "CA's explanation" } dd.mono { (x) } }
            @if let Some(t) = r.last_attempt { dt { "Last attempt" } dd { (layout::when(t, now)) } }
            @if let Some(o) = &r.last_outcome { dt { "Last outcome" } dd { (o) } }
            @if r.failures > 0 { dt { "Failures in a row" } dd { (r.failures) } }
            @if let Some(t) = r.next_attempt { dt { "Backing off until" } dd { (layout::when(t, now)) } }
            @if let Some(e) = &r.last_error { dt { "Last error" } dd { (e) } }
            @if let Some(fp) = &r.fingerprint { dt { "Installed" } dd { a href=(format!("/ui/certificates/{fp}")) { code { (fp) } } } }
        }
    }
}

pub async fn renewals(state: &Arc<super::State>, who: &Visitor) -> Response<Body> {
    let now = state.clock.now();
    let configured: Vec<String> = state.settings.read().unwrap_or_else(|p| p.into_inner()).managed.iter().map(|m| m.name.clone()).collect();
    let rows = match read(state, |s| s.renewals()).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let body = html! {
        @if configured.is_empty() { p.hint { "No managed certificates are configured (" code { "managed:" } " in the configuration)." } }
        div.table-wrap { table #renewals {
            caption { (configured.len()) " managed certificate" @if configured.len() != 1 { "s" } }
            thead { tr { th scope="col" { "Name" } th scope="col" { "State" } th scope="col" { "Expires" } th scope="col" { "Next renewal" } th scope="col" { "ARI window" } th scope="col" { "Last outcome" } th scope="col" { "Failures" } th scope="col" { "Backoff until" } } }
            tbody { @for name in &configured {
                @let r = rows.iter().find(|r| &r.name == name);
                tr {
                    td { @if let Some(fp) = r.and_then(|r| r.fingerprint.as_ref()) { a href=(format!("/ui/certificates/{fp}")) { (name) } } @else { (name) } }
                    td { @if let Some(r) = r { span class=(format!("badge {}", if r.state == "failed" { "s-critical" } else { "s-info" })) { (r.state) } } @else { "never run" } }
                    td { @if let Some(t) = r.and_then(|r| r.not_after) { (layout::when(t, now)) } @else { "nothing installed" } }
                    td { @if let Some(t) = r.and_then(|r| r.renew_at) { (layout::when(t, now)) } }
                    td { @if let Some((s, e)) = r.and_then(|r| r.ari_start.zip(r.ari_end)) { (layout::date(s)) " – " (layout::date(e)) } }
                    td { (r.and_then(|r| r.last_outcome.as_deref()).unwrap_or("")) @if let Some(e) = r.and_then(|r| r.last_error.as_deref()) { br; span.hint { (e) } } }
                    td { (r.map(|r| r.failures).unwrap_or(0)) }
                    td { @if let Some(t) = r.and_then(|r| r.next_attempt) { (layout::when(t, now)) } }
                }
            } }
        } }
    };
    html(StatusCode::OK, layout::shell("Renewals", Nav::Renewals, who, now, body))
}

pub async fn audit(state: &Arc<super::State>, who: &Visitor, params: &[(String, String)]) -> Response<Body> {
    let now = state.clock.now();
    let page: usize = match get(params, "page").map(str::parse) {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        _ => return layout::message(StatusCode::BAD_REQUEST, "Bad page", "page: a number from 1"),
    };
    let data = read(state, move |s| {
        let (entries, total) = s.audit_page((page - 1) * AUDIT_PAGE, AUDIT_PAGE)?;
        Ok((entries, total, s.audit_verify()?))
    })
    .await;
    let (entries, total, verdict) = match data {
        Ok(d) => d,
        Err(r) => return r,
    };
    let pages = (total as usize).div_ceil(AUDIT_PAGE).max(1);
    let link = |n: usize| format!("/ui/audit?page={n}");
    let body = html! {
        @match &verdict {
            Verdict::Intact { entries } => p.ok-notice { "Hash chain intact: " (entries) " entries verified." },
            Verdict::Broken { id, reason } => p.notice role="alert" { "Hash chain broken at entry " (id) ": " (reason) ". Run " code { "certvigil audit verify" } "." },
        }
        (layout::pager(page, pages, &link))
        div.table-wrap { table #audit {
            caption { (total) " entries, newest first" }
            thead { tr { th scope="col" { "Id" } th scope="col" { "At" } th scope="col" { "Action" } th scope="col" { "Actor" } th scope="col" { "Detail" } } }
            tbody { @for e in &entries { tr {
                td { (e.id) } td { (layout::time(e.at)) } td { (e.action) } td { (e.actor) }
                td.mono { (serde_json::to_string(&e.detail).unwrap_or_default()) }
            } } }
        } }
        (layout::pager(page, pages, &link))
    };
    html(StatusCode::OK, layout::shell("Audit log", Nav::Audit, who, now, body))
}

pub async fn errors(state: &Arc<super::State>, who: &Visitor, params: &[(String, String)]) -> Response<Body> {
    let now = state.clock.now();
    let source = get(params, "source").map(str::to_string);
    let title = match &source {
        Some(s) => format!("Read errors of {s}"),
        None => "Read errors".into(),
    };
    let list = match read(state, move |s| s.object_errors(source.as_deref())).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let body = html! {
        @if list.is_empty() { p.ok-notice { "Every object is readable." } }
        div.table-wrap { table {
            caption { (list.len()) " object" @if list.len() != 1 { "s" } " cannot be read" }
            thead { tr { th scope="col" { "Source" } th scope="col" { "Location" } th scope="col" { "Error" } } }
            tbody { @for e in &list { tr { td { (e.source) } td.mono { (e.location) } td { (e.message) } } } }
        } }
    };
    html(StatusCode::OK, layout::shell(&title, Nav::None, who, now, body))
}
