//! The browser harness itself, against small pages of the loopback test server: loading a
//! page, filling and submitting a form, following links and going back, reading text,
//! attributes and properties, running a script, screenshots that are not blank, cookie flags
//! as the browser stores them, and the browser resolving no host name at all.

use crate::common::http::{HttpServer, Request, Response};
use crate::common::webdriver::{Browser, WINDOW};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn html(body: &str) -> Response {
    Response::ok(body.to_string()).header("Content-Type", "text/html; charset=utf-8")
}

/// The value of `name` in a form-urlencoded body (`+` for spaces, no other escapes needed here).
fn form_value(body: &str, name: &str) -> Option<String> {
    body.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('=').map(|v| v.replace('+', " ")))
}

const STYLE: &str = "<style>body{font-family:sans-serif;margin:2em;color:#222;background:#fff}\
    h1{color:#1a5fb4}.bar{background:#2ec27e;height:24px;width:320px}</style>";

/// A page with text, a form that POSTs and is answered the post/redirect/get way, and links.
fn site(r: &Request) -> Response {
    match (r.method.as_str(), r.path()) {
        ("GET", "/") => html(&format!(
            "<!doctype html><html><head><meta charset=utf-8><title>certvigil harness</title>{STYLE}</head><body>\
             <h1>Certificates</h1><p id=summary>3 valid, 1 expiring</p><div class=bar></div>\
             <form id=search method=post action=/search>\
             <label>Name <input id=q name=q value=draft></label> <button id=go type=submit>Search</button></form>\
             <ul><li>alpha</li><li>beta</li><li>gamma</li></ul></body></html>"
        )),
        ("POST", "/search") => {
            let q = form_value(&r.text(), "q").unwrap_or_default();
            Response::empty(303).header("Location", format!("/results?q={q}"))
        }
        ("GET", "/results") => {
            let q = r.target.split_once("q=").map(|(_, q)| q.to_string()).unwrap_or_default();
            html(&format!(
                "<!doctype html><html><head><title>results</title>{STYLE}</head><body>\
                 <h1 id=results>Results for {q}</h1>\
                 <a id=details href=\"/details?id=7\" title=\"certificate seven\">Details of certificate 7</a></body></html>"
            ))
        }
        ("GET", "/details") => html(&format!(
            "<!doctype html><html><head><title>certificate 7</title>{STYLE}</head><body>\
             <h1 id=detail>Certificate 7</h1><p>Expires in <b id=days>12</b> days.</p><div class=bar></div></body></html>"
        )),
        _ => Response::empty(404),
    }
}

#[tokio::test]
async fn form_link_back_and_screenshot() {
    let server = HttpServer::start(site);
    let b = Browser::start().await;

    b.goto(&server.url("/")).await.unwrap();
    assert_eq!(b.title().await.unwrap(), "certvigil harness");
    assert_eq!(b.find("#summary").await.unwrap().text().await.unwrap(), "3 valid, 1 expiring");
    let items = b.find_all("li").await.unwrap();
    let mut texts = Vec::new();
    for li in &items {
        texts.push(li.text().await.unwrap());
    }
    assert_eq!(texts, ["alpha", "beta", "gamma"]);
    assert!(b.find_all("table").await.unwrap().is_empty());
    let missing = b.find("#nowhere").await.err().unwrap();
    assert_eq!(missing.code(), "no such element", "{missing}");
    assert!(missing.to_string().contains("`#nowhere`"), "{missing}");

    // Fill the form: the attribute stays as written, the property follows the typing.
    let q = b.find("#q").await.unwrap();
    assert_eq!(q.attr("value").await.unwrap().as_deref(), Some("draft"));
    assert_eq!(q.attr("placeholder").await.unwrap(), None);
    q.clear().await.unwrap();
    q.send_keys("web.example.test").await.unwrap();
    assert_eq!(q.prop("value").await.unwrap(), "web.example.test");
    assert_eq!(b.execute("return arguments[0].value.length + arguments[1];", &[q.arg(), 1.into()]).await.unwrap(), 17);
    // A click on something that leads nowhere is a timeout, not a page.
    let stays = b.click_and_load("#summary", Duration::from_millis(300)).await.err().unwrap();
    assert!(stays.to_string().contains("timeout"), "{stays}");
    b.click_and_load("#go", WAIT).await.unwrap();

    // Submitted as a POST, answered 303, the results page loaded: there at once, without waiting.
    let heading = b.find("#results").await.unwrap();
    assert_eq!(heading.text().await.unwrap(), "Results for web.example.test");
    let posts: Vec<Request> = server.requests().into_iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].text(), "q=web.example.test");
    assert_eq!(posts[0].header("content-type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(b.current_url().await.unwrap(), server.url("/results?q=web.example.test"));

    // Follow the link, read the page, take its picture.
    let link = b.find("#details").await.unwrap();
    assert_eq!(link.attr("title").await.unwrap().as_deref(), Some("certificate seven"));
    link.click().await.unwrap();
    assert_eq!(b.wait_for("#detail", WAIT).await.unwrap().text().await.unwrap(), "Certificate 7");
    assert_eq!(b.find("#days").await.unwrap().text().await.unwrap(), "12");
    assert_eq!(b.current_url().await.unwrap(), server.url("/details?id=7"));
    let shot = b.save_screenshot("harness-details").await.unwrap();
    assert_eq!(shot.width, WINDOW.0, "{shot:?}");
    assert!(shot.height > 0 && shot.height <= WINDOW.1, "{shot:?}");
    assert_eq!(shot.background, [255, 255, 255], "{shot:?}");
    assert!(shot.colours >= 8, "text, heading and bar colours: {shot:?}");
    let png = std::fs::read(&shot.path).unwrap();
    assert_eq!(png.len(), shot.png_bytes);
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));

    // Back to the results (a GET, thanks to the redirect: no resubmission).
    b.back().await.unwrap();
    b.wait_for("#results", WAIT).await.unwrap();
    assert_eq!(b.title().await.unwrap(), "results");
    assert_eq!(server.requests().iter().filter(|r| r.method == "POST").count(), 1);

    // A smaller window gives a smaller picture.
    b.set_window_size(800, 600).await.unwrap();
    let small = b.save_screenshot("harness-results-800").await.unwrap();
    assert_eq!(small.width, 800, "{small:?}");
    assert!(small.height < shot.height, "{small:?} vs {shot:?}");
}

#[tokio::test]
async fn an_empty_page_is_reported_blank() {
    let server = HttpServer::start(|_| html("<!doctype html><title>empty</title><body></body>"));
    let b = Browser::start().await;
    b.goto(&server.url("/")).await.unwrap();
    let err = b.save_screenshot("harness-blank").await.err().unwrap();
    assert_eq!(err.code(), "screenshot", "{err}");
    assert!(err.message().starts_with("blank: 0 of "), "{err}");
    let err = b.wait_for("#never", Duration::from_millis(300)).await.err().unwrap();
    assert_eq!(err.code(), "timeout", "{err}");
}

#[tokio::test]
async fn host_names_are_not_resolved() {
    let server = HttpServer::start(|_| html("<!doctype html><title>served</title><p id=cv-served>served content</p>"));
    let b = Browser::start().await;

    // A name fails before any resolver is asked, and no content of any server is shown.
    let err = b.goto("http://certvigil-test.invalid/").await.err().unwrap();
    assert!(err.message().contains("ERR_NAME_NOT_RESOLVED"), "{err}");
    assert!(err.to_string().contains("goto http://certvigil-test.invalid/"), "{err}");
    assert!(b.find("#cv-served").await.is_err());
    let text = b.execute("return document.body ? document.body.innerText : '';", &[]).await.unwrap();
    assert!(!text.as_str().unwrap().contains("served content"), "{text}");

    // `localhost` would be answered from /etc/hosts without a DNS server; it fails all the same,
    // so names never reach the system resolver, and the server sees nothing.
    let err = b.goto(&format!("http://localhost:{}/", server.port)).await.err().unwrap();
    assert!(err.message().contains("ERR_NAME_NOT_RESOLVED"), "{err}");
    assert_eq!(server.hits("/"), 0);

    // 127.0.0.1 itself is reached.
    b.goto(&server.url("/")).await.unwrap();
    assert_eq!(b.find("#cv-served").await.unwrap().text().await.unwrap(), "served content");
    assert_eq!(server.hits("/"), 1);
}

#[tokio::test]
async fn cookie_flags_as_the_browser_stores_them() {
    let server = HttpServer::start(|r| match r.path() {
        "/" => html("<!doctype html><title>cookies</title><p id=content>set</p>")
            .header("Set-Cookie", "cv_session=s3cr3t; Path=/; HttpOnly; SameSite=Strict")
            .header("Set-Cookie", "cv_theme=dark; Path=/; SameSite=Lax; Max-Age=3600"),
        _ => html("<!doctype html><title>again</title><p id=content>again</p>"),
    });
    let b = Browser::start().await;
    b.goto(&server.url("/")).await.unwrap();

    let mut cookies = b.cookies().await.unwrap();
    cookies.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    let (session, theme) = (&cookies[0], &cookies[1]);
    assert_eq!((session.name.as_str(), session.value.as_str()), ("cv_session", "s3cr3t"));
    assert!(session.http_only, "{session:?}");
    assert_eq!(session.same_site.as_deref(), Some("Strict"));
    assert!(!session.secure, "plain http: {session:?}");
    assert_eq!(session.expiry, None, "a session cookie: {session:?}");
    assert_eq!(session.domain, "127.0.0.1");
    assert_eq!(session.path, "/");
    assert_eq!(theme.name, "cv_theme");
    assert!(!theme.http_only, "{theme:?}");
    assert_eq!(theme.same_site.as_deref(), Some("Lax"));
    assert!(theme.expiry.is_some(), "{theme:?}");

    // HttpOnly really hides the session from scripts, and the browser sends both back.
    assert_eq!(b.execute("return document.cookie;", &[]).await.unwrap(), "cv_theme=dark");
    b.goto(&server.url("/again")).await.unwrap();
    let again = server.requests().into_iter().find(|r| r.path() == "/again").unwrap();
    let sent = again.header("cookie").unwrap_or_default();
    assert!(sent.contains("cv_session=s3cr3t") && sent.contains("cv_theme=dark"), "{sent}");
}
