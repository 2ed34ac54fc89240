//! The status page under `/ui/`: server-rendered HTML (maud templates compiled into the
//! binary), one embedded stylesheet, no JavaScript. Pages: overview with the expiry timeline,
//! inventory (search, filters, sort, paging, CSV/JSON export), certificate, alerts (acknowledge
//! and silence: the only writes), renewals, audit log, source errors.
//!
//! Access: a browser signs in by posting `daemon.token` (operator) or `daemon.viewer_token`
//! (read-only) to `/ui/login` and gets a session cookie (`session.rs`); scripts may send the
//! same tokens as a bearer header instead. A form write needs an operator, the session's CSRF
//! token and, when the browser sends one, an `Origin` equal to the page's own. Every response
//! carries `Content-Security-Policy: default-src 'self'` (no inline script or style can run) and
//! refuses framing.

mod alerts;
mod inventory;
mod layout;
mod overview;
pub mod session;

pub use session::Ui;

use super::http::{Body, State, blocking, full, same_secret};
use crate::store::{Store, StoreError};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, body::Incoming};
use maud::Markup;
use session::{COOKIE, Role};
use std::sync::Arc;

/// Form bodies the page posts are a few hundred bytes; anything past this is refused unread.
const MAX_FORM: usize = 16 * 1024;
/// A failed sign-in waits this long before its answer (guessing costs time).
const FAILED_SIGN_IN_DELAY: std::time::Duration = std::time::Duration::from_millis(400);

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; object-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Who is asking, and how they proved it.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub role: Role,
    /// The session's CSRF token; `None` for a bearer-token request (no cookie, no CSRF risk).
    pub csrf: Option<String>,
    session: Option<String>,
}

impl Visitor {
    pub fn can_write(&self) -> bool {
        self.role == Role::Operator
    }
}

/// An HTML page with the headers every page carries.
fn html(status: StatusCode, markup: Markup) -> Response<Body> {
    secure(full(status, "text/html; charset=utf-8", markup.into_string()))
}

fn secure(mut r: Response<Body>) -> Response<Body> {
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    r
}

/// 303 See Other to a page of ours.
fn redirect(to: &str) -> Response<Body> {
    let mut r = full(StatusCode::SEE_OTHER, "text/plain", "");
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    secure(r)
}

/// A page of ours to return to: only paths under `/ui/` (never another origin, `//host` or a
/// scheme).
fn local_target(t: &str) -> Option<&str> {
    (t.starts_with("/ui/") && !t.contains("//") && !t.contains('\\') && t.chars().all(|c| !c.is_control())).then_some(t)
}

/// `application/x-www-form-urlencoded` decoding (WHATWG URL §5.1): `+` is a space, `%XX` a
/// byte; invalid escapes are kept as written; invalid UTF-8 is replaced.
pub fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Percent-encodes everything but unreserved characters (RFC 3986 §2.3).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decoded `key=value` pairs of a query string or form body.
pub fn pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .map(|(k, v)| (form_decode(k), form_decode(v)))
        .collect()
}

pub fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

fn cookie(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers().get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

fn visitor(req: &Request<Incoming>, state: &State) -> Option<Visitor> {
    let tokens = state.tokens.read().unwrap_or_else(|p| p.into_inner());
    if let Some(given) = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")) {
        let given = given.trim().as_bytes();
        if tokens.admin.as_ref().is_some_and(|t| same_secret(given, t.expose().as_bytes())) {
            return Some(Visitor { role: Role::Operator, csrf: None, session: None });
        }
        if tokens.viewer.as_ref().is_some_and(|t| same_secret(given, t.expose().as_bytes())) {
            return Some(Visitor { role: Role::Viewer, csrf: None, session: None });
        }
        return None;
    }
    let id = cookie(req, COOKIE)?;
    let current = |role: Role| {
        match role {
            Role::Operator => tokens.admin.as_ref(),
            Role::Viewer => tokens.viewer.as_ref(),
        }
        .map(|t| session::digest(t.expose()))
    };
    let s = state.ui.session(&id, state.clock.now(), current)?;
    Some(Visitor { role: s.role, csrf: Some(s.csrf), session: Some(id) })
}

/// A cookie-authenticated post from another origin is refused before its body is read. The
/// pages' `Referrer-Policy: same-origin` lets the browser send the real `Origin` on their own
/// forms (under `no-referrer` it sends `Origin: null`, which is refused like any other).
fn refuse_origin(req: &Request<Incoming>, who: &Visitor) -> Option<Response<Body>> {
    who.csrf.as_ref()?;
    let origin = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok())?;
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    (origin != format!("http://{host}") && origin != format!("https://{host}"))
        .then(|| layout::message(StatusCode::FORBIDDEN, "Refused", "The form was posted from another origin."))
}

/// Why a form post is refused: a cookie-authenticated one without the session's CSRF token,
/// or any from the read-only viewer.
fn refuse_post(who: &Visitor, form: &[(String, String)]) -> Option<Response<Body>> {
    if let Some(csrf) = &who.csrf {
        let given = get(form, "csrf").unwrap_or("");
        if !same_secret(given.as_bytes(), csrf.as_bytes()) {
            return Some(layout::message(
                StatusCode::FORBIDDEN,
                "Refused",
                "The form's CSRF token is missing or stale: reload the page and try again.",
            ));
        }
    }
    if !who.can_write() {
        return Some(layout::message(
            StatusCode::FORBIDDEN,
            "Read-only",
            "Signed in with the viewer token: acknowledging and silencing need the daemon's token.",
        ));
    }
    None
}

/// Reads a form body of at most [`MAX_FORM`] bytes.
async fn read_form(req: Request<Incoming>) -> Result<Vec<(String, String)>, Response<Body>> {
    let ctype = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ctype.starts_with("application/x-www-form-urlencoded") {
        return Err(layout::message(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Refused", "Send the form as application/x-www-form-urlencoded."));
    }
    let body = http_body_util::Limited::new(req.into_body(), MAX_FORM);
    match body.collect().await {
        Ok(b) => Ok(pairs(&String::from_utf8_lossy(&b.to_bytes()))),
        Err(_) => Err(layout::message(StatusCode::PAYLOAD_TOO_LARGE, "Refused", "The form is larger than the page ever sends.")),
    }
}

/// Reads through a fresh read-only connection; a store error is a 500 page.
async fn read<T: Send + 'static>(
    state: &State,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response<Body>> {
    blocking(state, f)
        .await
        .map_err(|_| layout::message(StatusCode::INTERNAL_SERVER_ERROR, "Store error", "The store cannot be read: see the daemon's log."))
}

/// Writes through a read-write connection (the job loop's writes wait for it, and it for them).
async fn write<T: Send + 'static>(
    state: &State,
    f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response<Body>> {
    let path = state.store.clone();
    match tokio::task::spawn_blocking(move || Store::open_at(&path).and_then(|mut s| f(&mut s))).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "status page write failed on the store");
            Err(layout::message(StatusCode::INTERNAL_SERVER_ERROR, "Store error", "The store refused the change: see the daemon's log."))
        }
        Err(_) => Err(layout::message(StatusCode::INTERNAL_SERVER_ERROR, "Store error", "The change was interrupted.")),
    }
}

pub async fn handle(req: Request<Incoming>, state: &Arc<State>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    if query.len() > 4096 {
        return layout::message(StatusCode::URI_TOO_LONG, "Refused", "The query string is longer than the page ever sends.");
    }
    let params = pairs(&query);
    let method = req.method().clone();
    let rest: Vec<&str> = path.trim_start_matches("/ui").trim_start_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    match (rest.as_slice(), &method) {
        ([], _) if path == "/ui" => return redirect("/ui/"),
        (["assets", "style.css"], &Method::GET | &Method::HEAD) => {
            let mut r = full(StatusCode::OK, "text/css; charset=utf-8", Bytes::from_static(layout::STYLE.as_bytes()));
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
            return secure(r);
        }
        (["login"], &Method::GET) => {
            let tokens = state.tokens.read().unwrap_or_else(|p| p.into_inner());
            let configured = tokens.admin.is_some() || tokens.viewer.is_some();
            return html(StatusCode::OK, layout::login(get(&params, "next").and_then(local_target), None, configured));
        }
        (["login"], &Method::POST) => return login(req, state).await,
        _ => {}
    }
    let Some(who) = visitor(&req, state) else {
        if method == Method::GET && req.headers().get(header::AUTHORIZATION).is_none() {
            let back = if query.is_empty() { path.clone() } else { format!("{path}?{query}") };
            let next = local_target(&back).map(|b| format!("?next={}", encode(b))).unwrap_or_default();
            return redirect(&format!("/ui/login{next}"));
        }
        let mut r =
            layout::message(StatusCode::UNAUTHORIZED, "Sign in", "Sign in at /ui/login, or send the daemon's token as a bearer token.");
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"certvigil\""));
        return r;
    };
    match (rest.as_slice(), &method) {
        ([], &Method::GET) => overview::page(state, &who, &params).await,
        (["certificates"], &Method::GET) => inventory::list(state, &who, &params).await,
        (["certificates.csv"], &Method::GET) => inventory::export(state, &params, inventory::Export::Csv).await,
        (["certificates.json"], &Method::GET) => inventory::export(state, &params, inventory::Export::Json).await,
        (["certificates", fp], &Method::GET) => inventory::certificate(state, &who, fp).await,
        (["alerts"], &Method::GET) => alerts::list(state, &who, &params).await,
        (["alerts", id, action @ ("ack" | "silence")], &Method::POST) => {
            let (id, action) = (id.parse::<i64>().ok(), action.to_string());
            if let Some(refused) = refuse_origin(&req, &who) {
                return refused;
            }
            let form = match read_form(req).await {
                Ok(f) => f,
                Err(r) => return r,
            };
            if let Some(refused) = refuse_post(&who, &form) {
                return refused;
            }
            match id {
                Some(id) => alerts::act(state, id, &action, &form).await,
                None => layout::message(StatusCode::NOT_FOUND, "Not found", "No such alert."),
            }
        }
        (["renewals"], &Method::GET) => alerts::renewals(state, &who).await,
        (["audit"], &Method::GET) => alerts::audit(state, &who, &params).await,
        (["errors"], &Method::GET) => alerts::errors(state, &who, &params).await,
        (["logout"], &Method::POST) => {
            if let Some(refused) = refuse_origin(&req, &who) {
                return refused;
            }
            let form = match read_form(req).await {
                Ok(f) => f,
                Err(r) => return r,
            };
            if let Some(csrf) = &who.csrf
                && !same_secret(get(&form, "csrf").unwrap_or("").as_bytes(), csrf.as_bytes())
            {
                return layout::message(StatusCode::FORBIDDEN, "Refused", "The form's CSRF token is missing or stale.");
            }
            if let Some(id) = &who.session {
                state.ui.sign_out(id);
            }
            let mut r = redirect("/ui/login");
            r.headers_mut()
                .insert(header::SET_COOKIE, HeaderValue::from_static("certvigil_session=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"));
            r
        }
        (_, &Method::GET | &Method::POST) => layout::message(StatusCode::NOT_FOUND, "Not found", "There is no such page."),
        _ => {
            let mut r = layout::message(StatusCode::METHOD_NOT_ALLOWED, "Not allowed", "The page takes GET, and forms POST.");
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
            r
        }
    }
}

async fn login(req: Request<Incoming>, state: &Arc<State>) -> Response<Body> {
    let now = state.clock.now();
    if state.ui.throttled(now) {
        return layout::message(StatusCode::TOO_MANY_REQUESTS, "Too many attempts", "Too many failed sign-ins: wait a minute.");
    }
    let form = match read_form(req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let next = get(&form, "next").and_then(local_target).unwrap_or("/ui/").to_string();
    let given = get(&form, "token").unwrap_or("").trim().to_string();
    let role = {
        let tokens = state.tokens.read().unwrap_or_else(|p| p.into_inner());
        let is =
            |t: &Option<crate::config::secret::Secret>| t.as_ref().is_some_and(|t| same_secret(given.as_bytes(), t.expose().as_bytes()));
        if is(&tokens.admin) {
            Some(Role::Operator)
        } else if is(&tokens.viewer) {
            Some(Role::Viewer)
        } else {
            None
        }
    };
    let Some(role) = role else {
        let allowed = state.ui.failed(now);
        tokio::time::sleep(FAILED_SIGN_IN_DELAY).await;
        if !allowed {
            return layout::message(StatusCode::TOO_MANY_REQUESTS, "Too many attempts", "Too many failed sign-ins: wait a minute.");
        }
        tracing::warn!("status page: a sign-in with a wrong token");
        return html(
            StatusCode::UNAUTHORIZED,
            layout::login(Some(&next), Some("That token is not the daemon's token or its viewer token."), true),
        );
    };
    let lifetime = state.settings.read().unwrap_or_else(|p| p.into_inner()).daemon.session_lifetime.as_secs() as i64;
    let Some((id, _)) = state.ui.sign_in(role, &given, now, lifetime) else {
        return layout::message(StatusCode::INTERNAL_SERVER_ERROR, "No randomness", "The system gave no random bytes for a session.");
    };
    tracing::info!(role = role.as_str(), "status page: signed in");
    let mut r = redirect(&next);
    let cookie = format!("{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={lifetime}");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode("a+b%20c%3Cscript%3E"), "a b c<script>");
        assert_eq!(form_decode("100%"), "100%");
        assert_eq!(form_decode("%zz%4"), "%zz%4");
        assert_eq!(form_decode("%C3%A9"), "é");
        assert_eq!(form_decode("%FF"), "\u{FFFD}");
        assert_eq!(
            pairs("q=a%2Bb&x&=v&status=expired"),
            [("q".into(), "a+b".into()), ("x".into(), "".into()), ("".into(), "v".into()), ("status".into(), "expired".into())]
        );
        assert_eq!(form_decode(&encode("a b/<é>?&=")), "a b/<é>?&=");
    }

    #[test]
    fn only_our_pages_are_return_targets() {
        assert_eq!(local_target("/ui/certificates?q=x"), Some("/ui/certificates?q=x"));
        for bad in ["https://evil.invalid/", "//evil.invalid/ui/", "/ui//evil", "/api/v1/jobs", "/ui/\\evil", "/ui/\r\nSet-Cookie: x"] {
            assert_eq!(local_target(bad), None, "{bad}");
        }
    }
}
