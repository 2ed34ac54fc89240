//! The inventory (search, filters, sort, server-side paging, CSV and JSON export of the whole
//! filter) and a certificate's own page (every field, sightings, history, revocation with its
//! evidence, findings with what to do, alerts with their forms, renewal state).

use super::layout::{self, Nav};
use super::{Body, Visitor, get, html, read};
use crate::app::queries::{InventoryView, Lookup, Naming, find_certificate};
use crate::app::status::{self, Browse, MAX_PER_PAGE, Row, Sort, Urgency};
use crate::model::finding::Finding;
use crate::model::rows::{AlertRow, CertRow, HistoryRow, RenewalRow, RevocationHistoryRow, SightingRow};
use crate::model::{RevocationState, RevocationStatus, UnixTime, format_time, unix_from_civil};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use maud::{Markup, html};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Rows per page unless the page asks for another size.
pub const PER_PAGE: usize = 100;
/// Rows read per chunk of an export.
const EXPORT_CHUNK: usize = 500;

/// The EKUs the filter offers by name.
const EKUS: &[(&str, &str)] = &[
    ("codeSigning", "code signing"),
    ("serverAuth", "TLS server"),
    ("clientAuth", "TLS client"),
    ("emailProtection", "email (S/MIME)"),
    ("timeStamping", "time stamping"),
    ("OCSPSigning", "OCSP signing"),
];

/// A search as the page's query string says it, and the words to repeat it.
struct Search {
    browse: Browse,
    /// The query's own pairs (page excluded), to build links that keep the filter.
    keep: Vec<(&'static str, String)>,
}

fn parse(params: &[(String, String)]) -> Result<Search, String> {
    let mut b = Browse { per_page: PER_PAGE, page: 1, ..Default::default() };
    let mut keep: Vec<(&'static str, String)> = Vec::new();
    fn all<'a>(params: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> {
        params.iter().filter(move |(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str())
    }
    if let Some(q) = get(params, "q") {
        b.query = q.chars().take(200).collect();
        keep.push(("q", b.query.clone()));
    }
    for s in all(params, "status") {
        // `expiring`: inside either window.
        if s == "expiring" {
            b.urgencies.extend([Urgency::Critical, Urgency::Warning]);
        } else {
            b.urgencies.push(Urgency::parse(s).ok_or("status: expired, expiring, critical, warning, valid or not-yet-valid")?);
        }
        keep.push(("status", s.into()));
    }
    for r in all(params, "revocation") {
        b.filter.revocation.push(RevocationState::parse(r).ok_or("revocation: good, revoked, unknown or not-applicable")?);
        keep.push(("revocation", r.into()));
    }
    for (name, list) in
        [("source", &mut b.filter.sources), ("tag", &mut b.filter.tags), ("eku", &mut b.filter.ekus), ("owner", &mut b.filter.owners)]
    {
        for v in all(params, name) {
            list.push(v.to_string());
            keep.push((name_static(name), v.into()));
        }
    }
    if let Some(i) = get(params, "issuer") {
        b.issuer = Some(i.to_string());
        keep.push(("issuer", i.into()));
    }
    if let Some(d) = get(params, "expires") {
        b.expires_on = Some(parse_day(d).ok_or("expires: a day as YYYY-MM-DD")?);
        keep.push(("expires", d.into()));
    }
    if let Some(s) = get(params, "sort") {
        b.sort = Sort::parse(s).ok_or("sort: expires, name, issuer or seen")?;
        keep.push(("sort", s.into()));
    }
    if let Some(o) = get(params, "order") {
        b.descending = match o {
            "asc" => false,
            "desc" => true,
            _ => return Err("order: asc or desc".into()),
        };
        keep.push(("order", o.into()));
    }
    if let Some(n) = get(params, "per_page") {
        b.per_page = n.parse().ok().filter(|n| (1..=MAX_PER_PAGE).contains(n)).ok_or(format!("per_page: 1 to {MAX_PER_PAGE}"))?;
        keep.push(("per_page", n.into()));
    }
    if let Some(p) = get(params, "page") {
        b.page = p.parse().ok().filter(|p| *p >= 1).ok_or("page: a number from 1")?;
    }
    Ok(Search { browse: b, keep })
}

fn name_static(n: &str) -> &'static str {
    match n {
        "source" => "source",
        "tag" => "tag",
        "owner" => "owner",
        _ => "eku",
    }
}

fn parse_day(d: &str) -> Option<UnixTime> {
    let mut it = d.splitn(3, '-');
    let (y, m, day) = (it.next()?.parse().ok()?, it.next()?.parse().ok()?, it.next()?.parse().ok()?);
    if d.len() != 10 {
        return None;
    }
    unix_from_civil(y, m, day, 0, 0, 0)
}

pub async fn list(state: &Arc<super::State>, who: &Visitor, params: &[(String, String)]) -> Response<Body> {
    let search = match parse(params) {
        Ok(s) => s,
        Err(m) => return layout::message(StatusCode::BAD_REQUEST, "Bad filter", &m),
    };
    let settings = Arc::clone(&state.settings.read().unwrap_or_else(|p| p.into_inner()));
    let now = state.clock.now();
    let browse = search.browse.clone();
    let page = read(state, move |s| {
        let view = InventoryView::with_tags(s, &settings, now)?;
        let page = browse.page(s, &settings, &view)?;
        Ok((page, s.source_statuses()?.into_iter().map(|x| x.name).collect::<Vec<_>>()))
    })
    .await;
    let (page, sources) = match page {
        Ok(p) => p,
        Err(r) => return r,
    };
    let keep = &search.keep;
    let link = |n: usize| {
        let mut q = keep.clone();
        q.push(("page", n.to_string()));
        format!("/ui/certificates{}", layout::query(&q))
    };
    let b = &search.browse;
    let selected = |name: &str, value: &str| keep.iter().any(|(k, v)| *k == name && v == value);
    let body = html! {
        form.filters method="get" action="/ui/certificates" role="search" aria-label="Filter certificates" {
            div.wide {
                label for="q" { "Search" }
                input #q type="search" name="q" value=(b.query) placeholder="CN, SAN, serial or fingerprint prefix";
            }
            div {
                label for="status" { "Status" }
                select #status name="status" {
                    option value="" { "any" }
                    @for (v, l) in [("expired", "expired"), ("expiring", "expiring (either window)"), ("critical", "expiring, critical window"), ("warning", "expiring, warning window"), ("valid", "valid"), ("not-yet-valid", "not yet valid")] {
                        option value=(v) selected[selected("status", v)] { (l) }
                    }
                }
            }
            div {
                label for="revocation" { "Revocation" }
                select #revocation name="revocation" {
                    option value="" { "any" }
                    @for v in ["good", "revoked", "unknown", "not-applicable"] {
                        option value=(v) selected[selected("revocation", v)] { (v) }
                    }
                }
            }
            div {
                label for="source" { "Source" }
                select #source name="source" {
                    option value="" { "any" }
                    @for v in &sources {
                        option value=(v) selected[selected("source", v)] { (v) }
                    }
                }
            }
            div {
                label for="eku" { "Key usage" }
                select #eku name="eku" {
                    option value="" { "any" }
                    @for (v, l) in EKUS {
                        option value=(v) selected[selected("eku", v)] { (l) }
                    }
                }
            }
            div {
                label for="tag" { "Tag" }
                input #tag type="text" name="tag" value=(b.filter.tags.first().map(String::as_str).unwrap_or(""));
            }
            div {
                label for="owner" { "Owner" }
                input #owner type="text" name="owner" value=(b.filter.owners.first().map(String::as_str).unwrap_or("")) aria-describedby="owner-hint";
                span #owner-hint .hint { code { "none" } ": without an owner" }
            }
            div {
                label for="issuer" { "Issuer contains" }
                input #issuer type="text" name="issuer" value=(b.issuer.as_deref().unwrap_or(""));
            }
            div {
                label for="expires" { "Expires on (UTC)" }
                input #expires type="date" name="expires" value=(keep.iter().find(|(k, _)| *k == "expires").map(|(_, v)| v.as_str()).unwrap_or(""));
            }
            div {
                label for="sort" { "Sort by" }
                select #sort name="sort" {
                    @for (v, l) in [("expires", "expiry"), ("name", "name"), ("issuer", "issuer"), ("seen", "first seen")] {
                        option value=(v) selected[b.sort.as_str() == v] { (l) }
                    }
                }
            }
            div {
                label for="order" { "Order" }
                select #order name="order" {
                    option value="asc" selected[!b.descending] { "ascending" }
                    option value="desc" selected[b.descending] { "descending" }
                }
            }
            div {
                label for="per_page" { "Rows per page" }
                select #per_page name="per_page" {
                    @for n in [50usize, 100, 200, 500] {
                        option value=(n) selected[b.per_page == n] { (n) }
                    }
                }
            }
            div { button type="submit" { "Filter" } " " a href="/ui/certificates" { "Clear" } }
        }
        p.exports {
            "Export this filter: "
            a href=(format!("/ui/certificates.csv{}", layout::query(keep))) download="certificates.csv" { "CSV" }
            a href=(format!("/ui/certificates.json{}", layout::query(keep))) download="certificates.json" { "JSON" }
        }
        (layout::pager(page.page, page.pages(), &link))
        @if page.rows.is_empty() && page.total > 0 {
            p.notice { "Page " (page.page) " is past the last page (" (page.pages()) "). " a href=(link(page.pages())) { "Go to the last page" } }
        }
        div.table-wrap {
            table #certificates {
                caption { (page.total) " certificate" @if page.total != 1 { "s" } " match; page " (page.page) " of " (page.pages()) }
                thead {
                    tr {
                        th scope="col" { "Name" }
                        th scope="col" { "Status" }
                        th scope="col" { "Expires (UTC)" }
                        th scope="col" { "Revocation" }
                        th scope="col" { "Issuer" }
                        th scope="col" { "Owner" }
                        th scope="col" { "Sources" }
                        th scope="col" .hide-narrow { "Tags" }
                        th scope="col" .hide-narrow { "Serial" }
                    }
                }
                tbody {
                    @for r in &page.rows { (row(r, now)) }
                }
            }
        }
        (layout::pager(page.page, page.pages(), &link))
    };
    html(StatusCode::OK, layout::shell("Certificates", Nav::Certificates, who, now, body))
}

fn row(r: &Row, now: UnixTime) -> Markup {
    let f = &r.cert.facts;
    let signing = f.ext_key_usage.iter().any(|e| e == "codeSigning");
    html! {
        tr data-fingerprint=(f.fingerprint.0) {
            td {
                a href=(format!("/ui/certificates/{}", f.fingerprint.0)) { (f.display_name()) }
                @if signing { " " span.badge.s-info { "code signing" } }
                @if f.is_ca { " " span.badge.s-info { "CA" } }
            }
            td { (layout::urgency(r.urgency)) }
            td { (layout::date(f.not_after)) " " span.rel { "(" (layout::relative(f.not_after, now)) ")" } }
            td { (layout::revocation(r.revocation)) }
            td { (layout::short_dn(&f.issuer)) }
            td { @if let Some(o) = &r.owner { (o.name) } @else { span.hint { "none" } } }
            td { (r.cert.sources.join(", ")) }
            td.hide-narrow { (r.tags.join(", ")) }
            td.hide-narrow.mono { (layout::serial(&f.serial)) }
        }
    }
}

/// What an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    Csv,
    Json,
}

const CSV_HEADER: &str =
    "fingerprint,name,subject,issuer,serial,not_before,not_after,status,revocation,sources,tags,sans,ext_key_usage,owner,owner_contact\r\n";

/// A CSV field (RFC 4180 §2: quoted when it holds a comma, quote or line break; quotes doubled).
/// A field a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) is prefixed
/// with `'`, so a hostile CN stays text.
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

fn csv_row(r: &Row) -> String {
    let f = &r.cert.facts;
    let fields = [
        f.fingerprint.0.clone(),
        f.display_name(),
        f.subject.clone(),
        f.issuer.clone(),
        f.serial.clone(),
        format_time(f.not_before),
        format_time(f.not_after),
        r.urgency.as_str().to_string(),
        r.revocation.map(|x| x.as_str()).unwrap_or("").to_string(),
        r.cert.sources.join(" "),
        r.tags.join(" "),
        f.sans.join(" "),
        f.ext_key_usage.join(" "),
        r.owner.as_ref().map(|o| o.name.clone()).unwrap_or_default(),
        r.owner.as_ref().and_then(|o| o.contact.clone()).unwrap_or_default(),
    ];
    let mut line = fields.iter().map(|x| csv_field(x)).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

fn json_row(r: &Row) -> serde_json::Value {
    let mut v = serde_json::to_value(&r.cert).unwrap_or_default();
    v["status"] = r.urgency.as_str().into();
    v["revocation"] = r.revocation.map(|x| x.as_str()).into();
    v["tags"] = r.tags.clone().into();
    v["owner"] = serde_json::to_value(&r.owner).unwrap_or_default();
    v
}

/// Every certificate the filter matches (not only a page), in its order, streamed in chunks.
pub async fn export(state: &Arc<super::State>, params: &[(String, String)], kind: Export) -> Response<Body> {
    let search = match parse(params) {
        Ok(s) => s,
        Err(m) => return layout::message(StatusCode::BAD_REQUEST, "Bad filter", &m),
    };
    let settings = Arc::clone(&state.settings.read().unwrap_or_else(|p| p.into_inner()));
    let now = state.clock.now();
    let path = state.store.clone();
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::task::spawn_blocking(move || {
        let run = || -> Result<(), String> {
            let store = crate::store::Store::open_reader_at(&path).map_err(|e| e.to_string())?;
            let view = InventoryView::with_tags(&store, &settings, now).map_err(|e| e.to_string())?;
            let ids = search.browse.matching_ids(&store, &settings, &view).map_err(|e| e.to_string())?;
            let send = |b: String| tx.blocking_send(Bytes::from(b)).map_err(|_| "the client went away".to_string());
            send(match kind {
                Export::Csv => CSV_HEADER.into(),
                Export::Json => "[".into(),
            })?;
            let mut first = true;
            for chunk in ids.chunks(EXPORT_CHUNK) {
                let rows = status::rows_by_id(&store, chunk, &settings, &view).map_err(|e| e.to_string())?;
                let mut out = String::new();
                for r in &rows {
                    match kind {
                        Export::Csv => out.push_str(&csv_row(r)),
                        Export::Json => {
                            if !first {
                                out.push(',');
                            }
                            out.push_str(&serde_json::to_string(&json_row(r)).unwrap_or_default());
                        }
                    }
                    first = false;
                }
                send(out)?;
            }
            if kind == Export::Json {
                send("]\n".into())?;
            }
            Ok(())
        };
        if let Err(e) = run() {
            // The body ends short: a client sees a truncated file, never a wrong one that parses.
            tracing::warn!(error = %e, "status page export incomplete");
        }
    });
    let (ctype, name) = match kind {
        Export::Csv => ("text/csv; charset=utf-8", "certificates.csv"),
        Export::Json => ("application/json", "certificates.json"),
    };
    let mut r = Response::new(super::super::http::ChannelBody(rx).boxed());
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    super::secure(r)
}

/// Everything a certificate's page shows.
struct Detail {
    cert: CertRow,
    owner: Option<crate::app::owners::Owner>,
    urgency: Urgency,
    tags: Vec<String>,
    sightings: Vec<SightingRow>,
    history: Vec<HistoryRow>,
    revocation: Option<RevocationStatus>,
    revocation_history: Vec<RevocationHistoryRow>,
    findings: Vec<Finding>,
    alerts: Vec<AlertRow>,
    renewals: Vec<RenewalRow>,
    /// The ARI watch's last answer for it, when its issuer is watched.
    ari: Option<crate::model::rows::AriWatchRow>,
}

enum Found {
    None,
    One(Box<Detail>),
    Many(Vec<CertRow>),
}

pub async fn certificate(state: &Arc<super::State>, who: &Visitor, fp: &str) -> Response<Body> {
    let fp: String = fp.chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
    if fp.len() < 8 || fp.len() > 64 || !fp.chars().all(|c| c.is_ascii_hexdigit()) {
        return layout::message(StatusCode::BAD_REQUEST, "Bad fingerprint", "Give at least 8 hex digits of the SHA-256 fingerprint.");
    }
    let settings = Arc::clone(&state.settings.read().unwrap_or_else(|p| p.into_inner()));
    let now = state.clock.now();
    let found = read(state, move |s| {
        Ok(match find_certificate(s, &fp, Naming::Fingerprint)? {
            Lookup::None => Found::None,
            Lookup::Many(m) => Found::Many(m),
            Lookup::One(c) => {
                let view = InventoryView::with_tags(s, &settings, now)?;
                let findings = crate::app::evaluate::findings_of(s, &settings, now, &c)?;
                let alerts = s.alerts(true)?.into_iter().filter(|a| a.cert_id == Some(c.id)).collect();
                let renewals =
                    s.renewals()?.into_iter().filter(|r| r.fingerprint.as_deref() == Some(c.facts.fingerprint.0.as_str())).collect();
                let owner = crate::app::owners::Owners::load_for(s, &settings.owners, &[c.id])?.owner_of(&c).cloned();
                Found::One(Box::new(Detail {
                    owner,
                    urgency: Urgency::of(&c, &settings.policy, &view, now),
                    tags: view.tags_of(&c),
                    sightings: s.sightings(c.id)?,
                    history: s.history(c.id)?,
                    revocation: s.revocation_status(c.id)?,
                    revocation_history: s.revocation_history(c.id)?,
                    findings,
                    alerts,
                    renewals,
                    ari: s.ari_watch_of(&[c.id])?.remove(&c.id),
                    cert: *c,
                }))
            }
        })
    })
    .await;
    match found {
        Err(r) => r,
        Ok(Found::None) => layout::message(StatusCode::NOT_FOUND, "Not found", "No certificate has that fingerprint."),
        Ok(Found::Many(m)) => html(
            StatusCode::OK,
            layout::shell(
                "Several certificates match",
                Nav::Certificates,
                who,
                now,
                html! {
                    p { "Give more of the fingerprint:" }
                    ul { @for c in &m { li { a href=(format!("/ui/certificates/{}", c.facts.fingerprint.0)) { (c.facts.display_name()) } " " code { (c.facts.fingerprint.0) } } } }
                },
            ),
        ),
        Ok(Found::One(d)) => {
            html(StatusCode::OK, layout::shell(&d.cert.facts.display_name(), Nav::Certificates, who, now, detail(&d, who, now)))
        }
    }
}

fn list_or_none(items: &[String]) -> Markup {
    html! {
        @if items.is_empty() { span.hint { "none" } }
        @else { ul { @for i in items { li.mono { (i) } } } }
    }
}

fn detail(d: &Detail, who: &Visitor, now: UnixTime) -> Markup {
    let f = &d.cert.facts;
    let key = match (&f.key.bits, &f.key.curve) {
        (_, Some(c)) => format!("{} {c}", f.key.algorithm),
        (Some(b), None) => format!("{} {b} bits", f.key.algorithm),
        _ => f.key.algorithm.clone(),
    };
    let back = format!("/ui/certificates/{}", f.fingerprint.0);
    html! {
        p { (layout::urgency(d.urgency)) " " (layout::revocation(d.revocation.as_ref().map(|r| r.state))) " expires " (layout::when(f.not_after, now)) }
        @if d.cert.gone_since.is_some() { p.notice { "No source has seen this certificate since " (layout::time(d.cert.gone_since.unwrap_or_default())) "." } }
        section aria-labelledby="h-findings" {
            h2 #h-findings { "Findings" }
            @if d.findings.is_empty() { p.ok-notice { "No findings: nothing to do." } }
            @else {
                div.table-wrap { table {
                    thead { tr { th scope="col" { "Severity" } th scope="col" { "Kind" } th scope="col" { "What is wrong" } th scope="col" { "What to do" } th scope="col" { "Command" } } }
                    tbody { @for x in &d.findings { tr {
                        td { (layout::severity(x.severity.as_str())) }
                        td { (x.kind.as_str()) }
                        td { (x.reason) }
                        td { (x.action) }
                        td { code { (command(x, d)) } }
                    } } }
                } }
            }
        }
        section aria-labelledby="h-alerts" {
            h2 #h-alerts { "Alerts" }
            @if d.alerts.is_empty() { p.hint { "No alert was ever opened for this certificate." } }
            @else { (super::alerts::table(&d.alerts, who, now, &back)) }
        }
        @if !d.renewals.is_empty() {
            section aria-labelledby="h-renewal" {
                h2 #h-renewal { "Renewal" }
                @for r in &d.renewals { (super::alerts::renewal(r, now)) }
            }
        }
        section aria-labelledby="h-fields" {
            h2 #h-fields { "Certificate" }
            dl.facts {
                dt { "Subject" } dd.mono { (f.subject) }
                dt { "Issuer" } dd.mono { (f.issuer) }
                dt { "Subject alternative names" } dd { (list_or_none(&f.sans)) }
                dt { "Serial" } dd.mono { (layout::serial(&f.serial)) }
                dt { "SHA-256 fingerprint" } dd.mono { (f.fingerprint.0) }
                dt { "Not before" } dd { (layout::when(f.not_before, now)) }
                dt { "Not after" } dd { (layout::when(f.not_after, now)) }
                dt { "Lifetime" } dd { ((f.not_after - f.not_before) / 86_400) " days" }
                dt { "Key" } dd { (key) }
                dt { "Public key SHA-256" } dd.mono { (f.spki_sha256) }
                dt { "Signature" } dd { (f.signature_algorithm) }
                dt { "CA" } dd { @if f.is_ca { "yes" @if let Some(p) = f.path_len { " (path length " (p) ")" } } @else { "no" } }
                dt { "Key usage" } dd { (f.key_usage.join(", ")) }
                dt { "Extended key usage" } dd { (f.ext_key_usage.join(", ")) }
                dt { "OCSP" } dd { (list_or_none(&f.ocsp_urls)) }
                dt { "CRL distribution points" } dd { (list_or_none(&f.crl_urls)) }
                dt { "CA issuers" } dd { (list_or_none(&f.ca_issuers_urls)) }
                dt { "Authority key id" } dd.mono { (f.aki.as_deref().unwrap_or("none")) }
                dt { "Subject key id" } dd.mono { (f.ski.as_deref().unwrap_or("none")) }
                dt { "Owner" } dd { @if let Some(o) = &d.owner { (o.to_string()) } @else { "none (no source names one and no owners rule matches)" } }
                dt { "Tags" } dd { (d.tags.join(", ")) }
                dt { "First seen" } dd { (layout::when(d.cert.first_seen, now)) }
                @if !f.warnings.is_empty() { dt { "Parse warnings" } dd { (list_or_none(&f.warnings)) } }
            }
            p { a href=(format!("/api/v1/certificates/{}", f.fingerprint.0)) { "As JSON (API, bearer token)" } }
        }
        section aria-labelledby="h-sightings" {
            h2 #h-sightings { "Where it is deployed" }
            div.table-wrap { table {
                thead { tr { th scope="col" { "Source" } th scope="col" { "Location" } th scope="col" { "Detail" } th scope="col" { "First seen" } th scope="col" { "Last seen" } th scope="col" { "Gone since" } } }
                tbody { @for s in &d.sightings { tr {
                    td { (s.source) } td.mono { (s.location) } td { (s.detail) }
                    td { (layout::time(s.first_seen)) } td { (layout::time(s.last_seen)) }
                    td { @if let Some(g) = s.gone_since { (layout::time(g)) } @else { "still there" } }
                } } }
            } }
        }
        section aria-labelledby="h-revocation" {
            h2 #h-revocation { "Revocation" }
            @match &d.revocation {
                None => p.hint { "Not checked yet: the revocation job has not reached it." },
                Some(r) => dl.facts {
                    dt { "State" } dd { (layout::revocation(Some(r.state))) @if r.stale { " " span.badge.s-warning { "stale evidence" } } }
                    @if let Some(x) = &r.reason { dt { "Reason" } dd { (x) } }
                    @if let Some(t) = r.revoked_at { dt { "Revoked at" } dd { (layout::time(t)) } }
                    @if let Some(t) = r.invalidity_date { dt { "Invalid since" } dd { (layout::time(t)) } }
                    dt { "Decided by" } dd { (r.method) }
                    @if let Some(u) = &r.source_url { dt { "From" } dd.mono { (u) } }
                    @if let Some(e) = &r.evidence_sha256 { dt { "Evidence SHA-256" } dd.mono { (e) } }
                    dt { "Checked" } dd { (layout::when(r.checked_at, now)) }
                    @if let Some(t) = r.next_update { dt { "Next update" } dd { (layout::when(t, now)) } }
                    @if let Some(x) = &r.detail { dt { "Detail" } dd { (x) } }
                },
            }
            @if let Some(a) = &d.ari {
                h3 { "Renewal information (ARI)" }
                dl.facts {
                    dt { "Suggested window" }
                    dd {
                        @match a.window {
                            Some((start, end)) => { (layout::time(start)) " – " (layout::time(end)) " (" (layout::relative(start, now)) ")" }
                            None => span.hint { "no answer yet" },
                        }
                        @if a.moved_at.is_some() { " " span.badge.s-warning { "moved earlier" } }
                        @if a.window.is_some_and(|(_, end)| end < now) { " " span.badge.s-critical { "passed" } }
                    }
                    @if let (Some((start, _)), Some(_)) = (a.first, a.moved_at) { dt { "First window began" } dd { (layout::time(start)) } }
                    @if let Some(u) = &a.explanation_url {
                        dt { "Explanation" }
                        // The CA's text: linked only when it is a web address.
                        dd.mono { @if u.starts_with("https://") || u.starts_with("http://") { a href=(u) rel="noreferrer" { (u) } } @else { (u) } }
                    }
                    dt { "Asked" } dd.mono { (a.directory) }
                    dt { "Polled" } dd { (layout::when(a.polled_at, now)) ", next " (layout::relative(a.next_poll, now)) }
                    @if let Some(e) = &a.error { dt { "Last problem" } dd { (e) } }
                }
            }
            @if !d.revocation_history.is_empty() {
                details {
                    summary { "Revocation history (" (d.revocation_history.len()) ")" }
                    div.table-wrap { table {
                        thead { tr { th scope="col" { "At" } th scope="col" { "Status" } th scope="col" { "Method" } th scope="col" { "Reason" } th scope="col" { "Evidence" } } }
                        tbody { @for h in &d.revocation_history { tr {
                            td { (layout::time(h.at)) } td { (h.status) } td { (h.method) } td { (h.reason.as_deref().unwrap_or("")) } td.mono { (h.evidence_sha256.as_deref().unwrap_or("")) }
                        } } }
                    } }
                }
            }
        }
        section aria-labelledby="h-history" {
            h2 #h-history { "History" }
            div.table-wrap { table {
                thead { tr { th scope="col" { "At" } th scope="col" { "Event" } th scope="col" { "Source" } th scope="col" { "Location" } th scope="col" { "Detail" } } }
                tbody {
                    tr { td { (layout::time(d.cert.first_seen)) } td { "discovered" } td {} td {} td {} }
                    @for h in &d.history { tr {
                        td { (layout::time(h.at)) } td { (h.event) } td { (h.source.as_deref().unwrap_or("")) } td.mono { (h.location.as_deref().unwrap_or("")) } td { (h.detail.as_deref().unwrap_or("")) }
                    } }
                }
            } }
        }
    }
}

/// The command that acts on a finding.
fn command(x: &Finding, d: &Detail) -> String {
    use crate::model::finding::Kind;
    let short = &d.cert.facts.fingerprint.0[..16];
    match (x.kind, d.renewals.first()) {
        (Kind::Expiring | Kind::Expired | Kind::Revoked | Kind::RenewalFailed | Kind::RenewalOverdue, Some(r)) => {
            format!("certvigil renew --force {}", r.name)
        }
        _ => format!("certvigil show {short}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_stay_text() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-1"), "'-1");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
    }

    #[test]
    fn filters_parse_and_refuse() {
        let p = |q: &str| parse(&super::super::pairs(q));
        let s =
            p("q=web&status=critical&status=expired&eku=codeSigning&sort=name&order=desc&per_page=50&page=3&expires=2026-12-10").unwrap();
        assert_eq!(s.browse.urgencies, [Urgency::Critical, Urgency::Expired]);
        assert_eq!((s.browse.per_page, s.browse.page, s.browse.sort, s.browse.descending), (50, 3, Sort::Name, true));
        assert_eq!(s.browse.expires_on, unix_from_civil(2026, 12, 10, 0, 0, 0));
        assert!(!s.keep.iter().any(|(k, _)| *k == "page"), "page links set their own page");
        for bad in [
            "status=soon",
            "revocation=maybe",
            "sort=colour",
            "order=up",
            "per_page=0",
            "per_page=501",
            "page=0",
            "expires=2026-13-01",
            "expires=tomorrow",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
        assert!(p("q=&status=").is_ok(), "empty values are no filter");
    }
}
