//! The page shell (header, navigation, sign-out), the sign-in and message pages, and the small
//! pieces every page uses: times (ISO 8601 UTC with a relative hint), status words with their
//! colours, serials, pagers. Every status is written as a word; colour only repeats it.

use super::{Body, Visitor, encode, html};
use crate::app::status::Urgency;
use crate::model::{RevocationState, UnixTime, format_time};
use hyper::{Response, StatusCode};
use maud::{DOCTYPE, Markup, html};

pub const STYLE: &str = include_str!("style.css");

/// The pages in the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Certificates,
    Alerts,
    Renewals,
    Audit,
    None,
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="referrer" content="same-origin";
            title { (title) " — certvigil" }
            link rel="stylesheet" href="/ui/assets/style.css";
        }
    }
}

/// A whole page.
pub fn shell(title: &str, nav: Nav, who: &Visitor, now: UnixTime, body: Markup) -> Markup {
    let item = |n: Nav, href: &str, label: &str| {
        html! {
            li { a href=(href) aria-current=[(n == nav).then_some("page")] { (label) } }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui/" { "certvigil" }
                    nav aria-label="Main" {
                        ul {
                            (item(Nav::Overview, "/ui/", "Overview"))
                            (item(Nav::Certificates, "/ui/certificates", "Certificates"))
                            (item(Nav::Alerts, "/ui/alerts", "Alerts"))
                            (item(Nav::Renewals, "/ui/renewals", "Renewals"))
                            (item(Nav::Audit, "/ui/audit", "Audit log"))
                        }
                    }
                    div.who {
                        span.role { (who.role.as_str()) }
                        @if let Some(csrf) = &who.csrf {
                            form method="post" action="/ui/logout" {
                                input type="hidden" name="csrf" value=(csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
                footer {
                    "certvigil " (env!("CARGO_PKG_VERSION")) " · as of " (time(now))
                }
            }
        }
    }
}

/// A page that only says something (errors, refusals).
pub fn message(status: StatusCode, title: &str, text: &str) -> Response<Body> {
    html(
        status,
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body {
                    main #main.narrow {
                        h1 { (title) }
                        p { (text) }
                        p { a href="/ui/" { "Back to the overview" } }
                    }
                }
            }
        },
    )
}

/// The sign-in form.
pub fn login(next: Option<&str>, error: Option<&str>, configured: bool) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Sign in"))
            body {
                main #main.narrow {
                    h1 { "Sign in to certvigil" }
                    @if !configured {
                        p.notice role="alert" {
                            "No token is configured: set " code { "daemon.token" } " (and optionally "
                            code { "daemon.viewer_token" } ") in the configuration and reload the daemon."
                        }
                    }
                    @if let Some(e) = error {
                        p.notice role="alert" { (e) }
                    }
                    form method="post" action="/ui/login" {
                        @if let Some(n) = next {
                            input type="hidden" name="next" value=(n);
                        }
                        label for="token" { "Token" }
                        input #token type="password" name="token" autocomplete="current-password" required autofocus;
                        p.hint { "The daemon's token (" code { "daemon.token" } ") or its read-only viewer token." }
                        button type="submit" { "Sign in" }
                    }
                }
            }
        }
    }
}

/// A time as ISO 8601 UTC in a `<time>` element.
pub fn time(t: UnixTime) -> Markup {
    let iso = format_time(t);
    html! { time datetime=(iso) { (iso) } }
}

/// The date part only.
pub fn date(t: UnixTime) -> String {
    format_time(t).chars().take(10).collect()
}

pub use crate::model::display::relative;

/// A time and how far it is from now.
pub fn when(t: UnixTime, now: UnixTime) -> Markup {
    html! { (time(t)) " " span.rel { "(" (relative(t, now)) ")" } }
}

pub fn urgency(u: Urgency) -> Markup {
    let label = match u {
        Urgency::Expired => "expired",
        Urgency::Critical => "expiring (critical)",
        Urgency::Warning => "expiring",
        Urgency::Valid => "valid",
        Urgency::NotYetValid => "not yet valid",
    };
    html! { span class=(format!("badge u-{}", u.as_str())) { (label) } }
}

pub fn revocation(r: Option<RevocationState>) -> Markup {
    let (class, label) = match r {
        None => ("r-unchecked", "not checked"),
        Some(RevocationState::Good) => ("r-good", "good"),
        Some(RevocationState::Revoked) => ("r-revoked", "revoked"),
        Some(RevocationState::Unknown) => ("r-unknown", "unknown"),
        Some(RevocationState::NotApplicable) => ("r-na", "not applicable"),
    };
    html! { span class=(format!("badge {class}")) { (label) } }
}

pub fn severity(s: &str) -> Markup {
    html! { span class=(format!("badge s-{s}")) { (s) } }
}

pub use crate::model::display::serial;

/// The first CN in a DN, else the DN.
pub fn short_dn(dn: &str) -> &str {
    dn.split(',').find_map(|p| p.trim().strip_prefix("CN=")).unwrap_or(dn)
}

/// A query string from pairs, empty values dropped.
pub fn query(pairs: &[(&str, String)]) -> String {
    let q: Vec<String> = pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={}", encode(v))).collect();
    if q.is_empty() { String::new() } else { format!("?{}", q.join("&")) }
}

/// Previous/next links for `page` of `pages`; `link(n)` is page n's address.
pub fn pager(page: usize, pages: usize, link: &dyn Fn(usize) -> String) -> Markup {
    html! {
        nav.pager aria-label="Pages" {
            @if page > 1 {
                a href=(link(1)) { "« First" }
                a href=(link(page - 1)) rel="prev" { "‹ Previous" }
            }
            span { "Page " (page) " of " (pages) }
            @if page < pages {
                a href=(link(page + 1)) rel="next" { "Next ›" }
                a href=(link(pages)) { "Last »" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times() {
        assert_eq!(relative(100, 100), "in 0 s");
        assert_eq!(relative(100 + 3 * 3600, 100), "in 3 h");
        assert_eq!(relative(100, 100 + 2 * 86_400 + 5), "2 d ago");
        assert_eq!(relative(100 + 47 * 3600, 100), "in 47 h");
        assert_eq!(serial("0a1b2c"), "0A:1B:2C");
        assert_eq!(short_dn("CN=web.example,O=Example"), "web.example");
        assert_eq!(short_dn("O=NoCN"), "O=NoCN");
        assert_eq!(query(&[("q", "a b".into()), ("status", String::new()), ("x", "<&>".into())]), "?q=a%20b&x=%3C%26%3E");
    }
}
