//! The overview: counts by status (each a link to the filtered inventory), open alerts by
//! severity, each job's last run, each source's last scan and errors, and the expiry timeline —
//! certificates expiring per day for the next 90 days and overdue, stacked by source or owner,
//! drawn as SVG on the server (every bar a link to its certificates), with the same numbers as
//! a table for screen readers and text browsers.

use super::layout::{self, Nav};
use super::{Body, Visitor, get, html, read};
use crate::app::owners::Owners;
use crate::app::status::{self, GroupBy, Overview, TIMELINE_DAYS, Timeline};
use crate::model::UnixTime;
use crate::model::rows::{JobStats, SourceStatus};
use crate::store::{Listing, ListingRow};
use hyper::{Response, StatusCode};
use maud::{Markup, html};
use std::collections::BTreeMap;
use std::sync::Arc;

struct Data {
    overview: Overview,
    alerts: BTreeMap<String, i64>,
    jobs: Vec<(super::super::runner::JobStatus, JobStats)>,
    sources: Vec<SourceStatus>,
}

pub async fn page(state: &Arc<super::State>, who: &Visitor, params: &[(String, String)]) -> Response<Body> {
    let by = if get(params, "by") == Some("owner") { GroupBy::Owner } else { GroupBy::Source };
    let settings = Arc::clone(&state.settings.read().unwrap_or_else(|p| p.into_inner()));
    let now = state.clock.now();
    let live = state.live.jobs.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let data = read(state, move |s| {
        let tags = s.source_tags()?;
        let owners = if by == GroupBy::Owner { Some(Owners::load(s, &settings.owners)?) } else { None };
        let group_of = |names: &Listing, r: &ListingRow<'_>| match &owners {
            None => r.sources.first().and_then(|n| names.sources.get(*n as usize)).cloned(),
            Some(o) => status::owner_of_row(o, names, r).map(|o| o.name.clone()),
        };
        let overview = status::overview(s, &settings.policy, &tags, by, &group_of, now)?;
        let mut jobs = Vec::new();
        for j in live {
            let stats = s.job_stats(&j.name)?;
            jobs.push((j, stats));
        }
        Ok(Data { overview, alerts: status::alerts_by_severity(s)?, jobs, sources: s.source_statuses()? })
    })
    .await;
    match data {
        Ok(d) => html(StatusCode::OK, layout::shell("Overview", Nav::Overview, who, now, body(&d, now))),
        Err(r) => r,
    }
}

fn card(n: u64, label: &str, href: &str, class: &str) -> Markup {
    html! {
        div class=(format!("card {}", if n > 0 { class } else { "" })) {
            a href=(href) { span.n { (n) } span.l { (label) } }
        }
    }
}

fn body(d: &Data, now: UnixTime) -> Markup {
    let c = &d.overview.counts;
    let alerts = |sev: &str| d.alerts.get(sev).copied().unwrap_or(0) as u64;
    html! {
        section aria-labelledby="h-status" {
            h2 #h-status { "Certificates" }
            div.cards {
                (card(c.total, "current certificates", "/ui/certificates", ""))
                (card(c.expired, "expired", "/ui/certificates?status=expired", "bad"))
                (card(c.critical, "expiring, critical window", "/ui/certificates?status=critical", "bad"))
                (card(c.warning, "expiring, warning window", "/ui/certificates?status=warning", "warn"))
                (card(c.revoked, "revoked", "/ui/certificates?revocation=revoked", "bad"))
                (card(c.revocation_unknown, "revocation unknown", "/ui/certificates?revocation=unknown", "warn"))
                (card(c.not_yet_valid, "not yet valid", "/ui/certificates?status=not-yet-valid", "warn"))
                (card(c.code_signing, "code signing", "/ui/certificates?eku=codeSigning", ""))
            }
        }
        section aria-labelledby="h-alerts" {
            h2 #h-alerts { "Open alerts" }
            div.cards {
                (card(alerts("critical"), "critical", "/ui/alerts?severity=critical", "bad"))
                (card(alerts("warning"), "warning", "/ui/alerts?severity=warning", "warn"))
                (card(alerts("info"), "info", "/ui/alerts?severity=info", ""))
            }
        }
        section aria-labelledby="h-timeline" {
            h2 #h-timeline { "Expiry timeline" }
            p.hint {
                "Certificates expiring per day over the next " (TIMELINE_DAYS) " days, stacked by " (d.overview.timeline.by) ". Stack by: "
                a href="/ui/?by=source" { "source" } " · " a href="/ui/?by=owner" { "owner" }
            }
            (timeline(&d.overview.timeline))
        }
        section aria-labelledby="h-jobs" {
            h2 #h-jobs { "Jobs" }
            div.table-wrap {
                table {
                    thead { tr { th scope="col" { "Job" } th scope="col" { "Kind" } th scope="col" { "Last run" } th scope="col" { "Outcome" } th scope="col" { "Summary" } th scope="col" { "Next" } } }
                    tbody {
                        @for (j, st) in &d.jobs {
                            tr {
                                td { (j.name) }
                                td { (j.kind) }
                                td { @if let Some(r) = &st.last { (layout::when(r.started_at, now)) } @else { "never" } }
                                td {
                                    @if j.running_since.is_some() { span.badge.s-info { "running" } }
                                    @else if let Some(r) = &st.last {
                                        span class=(format!("badge {}", if r.status == "ok" { "r-good" } else if r.status == "failed" || r.status == "interrupted" { "s-critical" } else { "s-warning" })) { (r.status) }
                                    }
                                }
                                td { @if let Some(r) = &st.last { (r.error.as_deref().unwrap_or(&r.summary)) } }
                                td { @if let Some(n) = j.next_run.or(j.next_fire) { (layout::when(n, now)) } }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="h-sources" {
            h2 #h-sources { "Sources" }
            div.table-wrap {
                table {
                    thead { tr { th scope="col" { "Source" } th scope="col" { "Kind" } th scope="col" { "Tags" } th scope="col" { "Last scan" } th scope="col" { "Certificates seen" } th scope="col" { "Errors" } } }
                    tbody {
                        @for s in &d.sources {
                            tr {
                                td { a href=(format!("/ui/certificates{}", layout::query(&[("source", s.name.clone())]))) { (s.name) } }
                                td { (s.kind) }
                                td { (s.tags.join(", ")) }
                                td { @if let Some(t) = s.last_scan_at { (layout::when(t, now)) } @else { "never" } }
                                td { a href=(format!("/ui/certificates{}", layout::query(&[("source", s.name.clone())]))) { (d.overview.per_source.get(&s.name).copied().unwrap_or(0)) } }
                                td {
                                    @if s.errors > 0 {
                                        a.badge.s-critical href=(format!("/ui/errors{}", layout::query(&[("source", s.name.clone())]))) { (s.errors) " errors" }
                                    } @else { "0" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

const WIDTH: i64 = 960;
const HEIGHT: i64 = 220;
const LEFT: i64 = 40;
const BOTTOM: i64 = 28;
/// The overdue column and a gap, then one column per day.
const COLUMN: i64 = 9;

/// The timeline as SVG: an overdue column, then one column per day; a bar per group and day,
/// each inside a link to exactly its certificates.
pub fn timeline(t: &Timeline) -> Markup {
    let max = t.max_day().max(t.overdue.iter().sum::<u32>()).max(1) as i64;
    let plot = HEIGHT - BOTTOM - 10;
    let scale = |n: u32| ((n as i64) * plot + max - 1) / max;
    let group_param = |g: &str| -> (&'static str, String) {
        let key = if t.by == "owner" { "owner" } else { "source" };
        // "other" names no single value: the bar links to the whole day. Certificates without
        // an owner are `owner=none`; without a source, the whole day.
        match g {
            "other" => (key, String::new()),
            "(none)" if key == "owner" => (key, "none".to_string()),
            "(none)" => (key, String::new()),
            _ => (key, g.to_string()),
        }
    };
    let total_overdue: u32 = t.overdue.iter().sum();
    html! {
        svg.timeline xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-labelledby="tl-title" {
            title #tl-title { "Certificates expiring per day for the next " (TIMELINE_DAYS) " days; " (total_overdue) " overdue; tallest day " (t.max_day()) }
            line.axis x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH - 4) y2=(HEIGHT - BOTTOM) {}
            text x="2" y="14" { (max) }
            text x="2" y=(HEIGHT - BOTTOM) { "0" }
            // Overdue column.
            @let mut y = HEIGHT - BOTTOM;
            @for (g, n) in t.overdue.iter().enumerate() {
                @if *n > 0 {
                    @let h = scale(*n);
                    @let (k, v) = group_param(&t.groups[g]);
                    a href=(format!("/ui/certificates{}", layout::query(&[("status", "expired".into()), (k, v)]))) {
                        rect.overdue x=(LEFT) y=({ y -= h; y }) width=(COLUMN * 2) height=(h) {
                            title { (n) " overdue (" (t.groups[g]) ")" }
                        }
                    }
                }
            }
            text x=(LEFT) y=(HEIGHT - 8) { "overdue" }
            @for (day, cells) in t.days.iter().enumerate() {
                @let x = LEFT + COLUMN * 3 + (day as i64) * COLUMN;
                @let date = layout::date(t.start + day as i64 * 86_400);
                @let mut y = HEIGHT - BOTTOM;
                @for (g, n) in cells.iter().enumerate() {
                    @if *n > 0 {
                        @let h = scale(*n);
                        @let (k, v) = group_param(&t.groups[g]);
                        a href=(format!("/ui/certificates{}", layout::query(&[("expires", date.clone()), (k, v)]))) {
                            rect class=(format!("g{g}")) x=(x) y=({ y -= h; y }) width=(COLUMN - 2) height=(h) {
                                title { (n) " expiring on " (date) " (" (t.groups[g]) ")" }
                            }
                        }
                    }
                }
                @if day % 14 == 7 {
                    text x=(x) y=(HEIGHT - 8) { (&date[5..]) }
                }
            }
        }
        ul.legend aria-label="Groups" {
            @for (g, name) in t.groups.iter().enumerate() {
                li {
                    svg width="12" height="12" aria-hidden="true" { rect class=(format!("g{g}")) width="12" height="12" {} }
                    " " (name)
                }
            }
        }
        details {
            summary { "The timeline as a table" }
            div.table-wrap {
                table {
                    caption { "Certificates expiring per day, by " (t.by) " (days with none are left out)" }
                    thead { tr { th scope="col" { "Day" } @for g in &t.groups { th scope="col" { (g) } } th scope="col" { "Total" } } }
                    tbody {
                        tr { th scope="row" { a href="/ui/certificates?status=expired" { "overdue" } } @for n in &t.overdue { td { (n) } } td { (total_overdue) } }
                        @for (day, cells) in t.days.iter().enumerate() {
                            @let total: u32 = cells.iter().sum();
                            @if total > 0 {
                                @let date = layout::date(t.start + day as i64 * 86_400);
                                tr {
                                    th scope="row" { a href=(format!("/ui/certificates?expires={date}")) { (date) } }
                                    @for n in cells { td { (n) } }
                                    td { (total) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
