//! The status page of a real daemon over loopback HTTP: sign-in and its cookie, CSRF and origin
//! checks on the page's writes (acknowledge, silence) and their effect in the store and the
//! audit log, the read-only viewer token, sign-out, token rotation ending sessions, hostile
//! certificate names rendered as text, paging boundaries and the headers every page carries.
//! (The same pages in a real browser: `tests/it_ui`.)

use crate::common;

use common::daemon::Daemon;
use common::http::{Answer, exchange};
use common::*;
use std::time::{Duration, Instant};

const TOKEN: &str = "page-token-0123456789abcdef";
const VIEWER: &str = "viewer-token-0123456789abcdef";
const HOSTILE_CN: &str = "<script>alert(1)</script>";

fn config(sb: &Sandbox) {
    sb.write("viewer.token", VIEWER);
    sb.config(&format!(
        "sources:
  - name: certs
    kind: files
    paths: [certs]
daemon:
  token: \"${{env:CV_TOKEN}}\"
  viewer_token: \"${{file:{}}}\"
jobs:
  - {{name: scan, kind: scan, schedule: '@hourly'}}
  - {{name: evaluate, kind: evaluate, schedule: '@hourly'}}
",
        sb.path("viewer.token").display()
    ));
}

/// A daemon over an inventory of the fixture certificates, one with a hostile CN, after its
/// first scan and evaluation.
fn daemon(sb: &Sandbox) -> Daemon {
    let f = fixtures();
    sb.write("certs/valid.pem", &f.valid.cert.pem);
    sb.write("certs/expired.pem", &f.expired.cert.pem);
    sb.write("certs/expiring.pem", &f.expiring.cert.pem);
    sb.write("certs/codesign.pem", &f.codesign.cert.pem);
    let hostile =
        issue(Spec { sans: vec![], ..Spec::leaf("hostile", HOSTILE_CN, &[0x66, 0x01], -DAY, 3 * DAY, KeyKind::P256) }, Some(&f.inter));
    sb.write("certs/hostile.pem", &hostile.cert.pem);
    config(sb);
    let d = Daemon::start(sb, sb.command_at(NOW), TOKEN);
    d.wait_jobs_done(Duration::from_secs(60));
    d
}

fn header<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
    a.head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn get(d: &Daemon, path: &str, cookie: Option<&str>) -> Answer {
    let c = cookie.map(|c| format!("Cookie: certvigil_session={c}\r\n")).unwrap_or_default();
    exchange(d.port, format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{c}Connection: close\r\n\r\n", d.port).as_bytes())
}

fn get_bearer(d: &Daemon, path: &str, token: &str) -> Answer {
    common::http::request(d.port, "GET", path, Some(token))
}

fn post(d: &Daemon, path: &str, cookie: Option<&str>, origin: Option<&str>, body: &str) -> Answer {
    let c = cookie.map(|c| format!("Cookie: certvigil_session={c}\r\n")).unwrap_or_default();
    let o = origin.map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
    let raw = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{c}{o}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        d.port,
        body.len()
    );
    exchange(d.port, raw.as_bytes())
}

/// Signs in with `token`; returns the session id from the cookie and the cookie's header.
fn sign_in(d: &Daemon, token: &str, next: &str) -> (String, String) {
    let a = post(d, "/ui/login", None, None, &format!("token={token}&next={next}"));
    assert_eq!(a.status, 303, "{}\n{}", a.head, a.body);
    let set = header(&a, "set-cookie").unwrap_or_else(|| panic!("no cookie: {}", a.head)).to_string();
    let id = set.strip_prefix("certvigil_session=").and_then(|r| r.split(';').next()).expect("session id").to_string();
    (id, set)
}

/// The CSRF token in a page's forms.
fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").unwrap_or_else(|| panic!("no CSRF field in the page"));
    page[at + 19..].split('"').next().expect("csrf value").to_string()
}

fn alert_id(d: &Daemon, fingerprint: &str) -> i64 {
    let db = rusqlite::Connection::open(d.log.parent().expect("sandbox").join("state/certvigil.db")).expect("store");
    db.query_row(
        "SELECT a.id FROM alerts a JOIN certificates c ON c.id = a.cert_id WHERE c.fingerprint = ?1 AND a.state = 'firing'",
        [fingerprint],
        |r| r.get(0),
    )
    .expect("a firing alert for the certificate")
}

#[test]
fn sign_in_session_cookie_csrf_and_the_page_writes() {
    let sb = Sandbox::new();
    let d = daemon(&sb);
    let f = fixtures();

    // Without a session: pages send the browser to the sign-in form, keeping where it was going.
    let a = get(&d, "/ui/alerts?severity=critical", None);
    assert_eq!(a.status, 303);
    assert_eq!(header(&a, "location"), Some("/ui/login?next=%2Fui%2Falerts%3Fseverity%3Dcritical"));
    let form = get(&d, "/ui/login", None);
    assert_eq!(form.status, 200);
    assert!(form.body.contains("name=\"token\"") && form.body.contains("type=\"password\""), "{}", form.body);

    // A wrong token: 401, no cookie. The daemon's API token is not the viewer's and vice versa.
    let bad = post(&d, "/ui/login", None, None, "token=not-the-token-at-all-0000");
    assert_eq!(bad.status, 401);
    assert!(header(&bad, "set-cookie").is_none());

    // The right one: a session cookie the browser cannot read from script, sent only to /ui and
    // never on a cross-site request, expiring with `daemon.session_lifetime` (12 h by default).
    let (id, set) = sign_in(&d, TOKEN, "%2Fui%2Falerts");
    assert_eq!(id.len(), 64, "{set}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=43200"] {
        assert!(set.split(';').any(|p| p.trim() == flag), "{flag} missing from {set}");
    }
    // A return target off the page is ignored.
    let a = post(&d, "/ui/login", None, None, &format!("token={TOKEN}&next=https%3A%2F%2Fevil.invalid%2F"));
    assert_eq!(header(&a, "location"), Some("/ui/"));

    // The alerts page with the cookie has forms carrying the session's CSRF token.
    let page = get(&d, "/ui/alerts", Some(&id));
    assert_eq!(page.status, 200, "{}", page.body);
    let token = csrf(&page.body);
    let expired = alert_id(&d, &f.expired.cert.fingerprint);
    assert!(page.body.contains(&format!("action=\"/ui/alerts/{expired}/ack\"")), "{}", page.body);

    // Refused: no CSRF token, a wrong one, another origin, a body too large, the wrong type.
    let path = format!("/ui/alerts/{expired}/ack");
    assert_eq!(post(&d, &path, Some(&id), None, "by=ops").status, 403);
    assert_eq!(post(&d, &path, Some(&id), None, &format!("by=ops&csrf={}", "0".repeat(64))).status, 403);
    assert_eq!(post(&d, &path, Some(&id), Some("http://evil.invalid"), &format!("by=ops&csrf={token}")).status, 403);
    assert_eq!(post(&d, &path, Some(&id), Some("null"), &format!("by=ops&csrf={token}")).status, 403);
    assert_eq!(post(&d, &path, Some(&id), None, &format!("csrf={token}&note={}", "x".repeat(20_000))).status, 413);
    let state = |id: i64| -> (String, Option<String>) {
        sb.db().query_row("SELECT state, acked_by FROM alerts WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?))).expect("alert")
    };
    assert_eq!(state(expired).0, "firing", "a refused form changed nothing");

    // Accepted: the alert is acknowledged in the store, by the name given, and audited.
    let origin = format!("http://127.0.0.1:{}", d.port);
    let ok = post(&d, &path, Some(&id), Some(&origin), &format!("csrf={token}&by=Dana&note=on+it&return=%2Fui%2Falerts"));
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(header(&ok, "location"), Some("/ui/alerts"));
    assert_eq!(state(expired), ("acknowledged".into(), Some("Dana (status page)".into())));
    let (actor, detail): (String, String) = sb
        .db()
        .query_row("SELECT actor, detail FROM audit_log WHERE action = 'ack' ORDER BY id DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("audit entry");
    assert_eq!(actor, "Dana (status page)");
    assert!(detail.contains("on it") && detail.contains(&format!("\"alert_id\":{expired}")), "{detail}");
    // Acknowledging it again says so instead of pretending.
    assert_eq!(post(&d, &path, Some(&id), None, &format!("csrf={token}")).status, 409);

    // Silence the expiring certificate's alert for a day, with a reason.
    let expiring = alert_id(&d, &f.expiring.cert.fingerprint);
    let si = post(
        &d,
        &format!("/ui/alerts/{expiring}/silence"),
        Some(&id),
        None,
        &format!("csrf={token}&reason=maintenance+window&duration=24h&by=Dana"),
    );
    assert_eq!(si.status, 303, "{}", si.body);
    let (subject, kind, reason, span): (String, String, String, i64) = sb
        .db()
        .query_row("SELECT subject, kind, reason, expires_at - created_at FROM silences ORDER BY id DESC LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .expect("silence row");
    assert_eq!((subject, reason, span), (format!("cert:{}", f.expiring.cert.fingerprint), "maintenance window".into(), 86_400));
    assert!(!kind.is_empty());
    assert_eq!(
        post(&d, &format!("/ui/alerts/{expiring}/silence"), Some(&id), None, &format!("csrf={token}&reason=&duration=24h")).status,
        400
    );
    assert_eq!(
        post(&d, &format!("/ui/alerts/{expiring}/silence"), Some(&id), None, &format!("csrf={token}&reason=x&duration=365d")).status,
        400
    );
    assert!(get(&d, "/ui/alerts", Some(&id)).body.contains("maintenance window"), "the silence is listed");

    // The viewer token reads but never writes, and the page offers it no forms.
    let (viewer, _) = sign_in(&d, VIEWER, "%2Fui%2F");
    let page = get(&d, "/ui/alerts", Some(&viewer));
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("/ack\"") && page.body.contains(">viewer<"), "{}", page.body);
    let vt = csrf(&page.body); // the sign-out form's
    assert_eq!(post(&d, &format!("/ui/alerts/{expiring}/ack"), Some(&viewer), None, &format!("csrf={vt}")).status, 403);
    assert_eq!(state(expiring).0, "firing");
    // And it opens nothing of the API.
    assert_eq!(get_bearer(&d, "/api/v1/certificates", VIEWER).status, 401);
    // Bearer tokens open the pages for scripts (no cookie, so no CSRF token to carry).
    assert_eq!(get_bearer(&d, "/ui/certificates", VIEWER).status, 200);
    assert_eq!(get_bearer(&d, "/ui/certificates", "wrong-token-0123456789").status, 401);

    // Signing out ends the session: the cookie no longer opens anything.
    let out = post(&d, "/ui/logout", Some(&viewer), None, &format!("csrf={vt}"));
    assert_eq!(out.status, 303);
    assert!(header(&out, "set-cookie").is_some_and(|c| c.contains("Max-Age=0")), "{}", out.head);
    assert_eq!(get(&d, "/ui/", Some(&viewer)).status, 303);

    // Rotating the viewer token (a reload) signs out the sessions that used the old one, and
    // only those.
    let (viewer, _) = sign_in(&d, VIEWER, "%2Fui%2F");
    sb.write("viewer.token", "rotated-viewer-token-0123456789");
    d.signal("-HUP");
    let start = Instant::now();
    while get(&d, "/ui/", Some(&viewer)).status != 303 {
        assert!(start.elapsed() < Duration::from_secs(20), "the old viewer session still works after the reload\n{}", d.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(&d, "/ui/", Some(&id)).status, 200, "the operator's session is untouched");
    sign_in(&d, "rotated-viewer-token-0123456789", "%2Fui%2F");
}

#[test]
fn hostile_names_paging_exports_and_headers() {
    let sb = Sandbox::new();
    let d = daemon(&sb);
    let f = fixtures();
    let all = db_count(&sb);

    // A CN that is markup is shown as text everywhere it appears.
    let list = get_bearer(&d, "/ui/certificates?q=script", TOKEN);
    assert_eq!(list.status, 200);
    assert!(list.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{}", list.body);
    assert!(!list.body.contains(HOSTILE_CN), "the CN reached the page as markup");
    let fp: String =
        sb.db().query_row("SELECT fingerprint FROM certificates WHERE common_name = ?1", [HOSTILE_CN], |r| r.get(0)).expect("hostile cert");
    let page = get_bearer(&d, &format!("/ui/certificates/{fp}"), TOKEN);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<title>&lt;script&gt;") && !page.body.contains(HOSTILE_CN), "{}", page.body);
    let overview = get_bearer(&d, "/ui/", TOKEN);
    assert!(!overview.body.contains("<script"), "no script on the page at all");

    // Every page says what may run on it and refuses framing.
    for path in
        ["/ui/", "/ui/certificates", &format!("/ui/certificates/{fp}"), "/ui/alerts", "/ui/renewals", "/ui/audit", "/ui/login", "/ui/nope"]
    {
        let a = get_bearer(&d, path, TOKEN);
        let csp = header(&a, "content-security-policy").unwrap_or_else(|| panic!("{path}: no CSP\n{}", a.head));
        assert!(csp.starts_with("default-src 'self'") && csp.contains("script-src 'none'"), "{path}: {csp}");
        assert_eq!(header(&a, "x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(header(&a, "x-content-type-options"), Some("nosniff"), "{path}");
    }

    // Paging: one row per page, every certificate once, the page past the end says so.
    let mut seen = Vec::new();
    for page in 1..=all {
        let a = get_bearer(&d, &format!("/ui/certificates?per_page=1&page={page}&sort=name"), TOKEN);
        assert_eq!(a.status, 200);
        assert!(a.body.contains(&format!("page {page} of {all}")), "page {page}: {}", a.body);
        let rows: Vec<&str> = a.body.split("data-fingerprint=\"").skip(1).map(|r| &r[..64]).collect();
        assert_eq!(rows.len(), 1, "page {page}");
        seen.push(rows[0].to_string());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), all, "every certificate on exactly one page");
    let past = get_bearer(&d, &format!("/ui/certificates?per_page=1&page={}", all + 1), TOKEN);
    assert!(past.body.contains("past the last page") && !past.body.contains("data-fingerprint"), "{}", past.body);
    for bad in ["page=0", "per_page=0", "per_page=501", "status=soon", "expires=2026-02-30", "sort=colour"] {
        assert_eq!(get_bearer(&d, &format!("/ui/certificates?{bad}"), TOKEN).status, 400, "{bad}");
    }

    // Filters: expiring code-signing certificates, by the filter the page's form sends.
    let signing = get_bearer(&d, "/ui/certificates?eku=codeSigning", TOKEN);
    assert!(signing.body.contains(&f.codesign.cert.fingerprint) && !signing.body.contains(&f.valid.cert.fingerprint), "{}", signing.body);
    let expired = get_bearer(&d, "/ui/certificates?status=expired", TOKEN);
    assert!(expired.body.contains(&f.expired.cert.fingerprint) && !expired.body.contains(&f.valid.cert.fingerprint));

    // Exports carry the whole filter, not a page, with the hostile CN quoted as text.
    let csv = get_bearer(&d, "/ui/certificates.csv?per_page=1", TOKEN);
    assert_eq!(csv.status, 200);
    assert_eq!(header(&csv, "content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(csv.body.lines().count(), all + 1, "{}", csv.body);
    assert!(csv.body.contains(HOSTILE_CN), "CSV is text, not HTML");
    let json: serde_json::Value =
        serde_json::from_str(&get_bearer(&d, "/ui/certificates.json?status=expired", TOKEN).body).expect("JSON export");
    let fps: Vec<&str> = json.as_array().expect("array").iter().filter_map(|c| c["fingerprint"].as_str()).collect();
    assert_eq!(fps, [f.expired.cert.fingerprint.as_str()]);
    assert_eq!(json[0]["status"], "expired");
}

fn db_count(sb: &Sandbox) -> usize {
    sb.db().query_row("SELECT count(*) FROM certificates WHERE gone_since IS NULL", [], |r| r.get::<_, i64>(0)).expect("count") as usize
}
