//! ACME Renewal Information (RFC 9773) for inventoried certificates, as a revocation early
//! warning: the pure half. A CA that must revoke certificates (a misissuance, a key compromise,
//! Let's Encrypt's 2026 mass-revocation drill) first moves their suggested renewal windows
//! earlier, often into the past; a client that watches the window learns days before the
//! revocation lands. Here: reading a renewalInfo answer and its Retry-After, when to ask again,
//! and whether a window moved the way that means "renew now".
//!
//! The I/O (directory, GET of `renewalInfo/<certID>`) and the bookkeeping per certificate come in
//! the watch built on this module; the decisions below take `now` and return values.

use crate::model::UnixTime;

/// Asked at most twice a day per certificate, whatever Retry-After says: a watched fleet of
/// 100,000 certificates is 200,000 requests a day spread over the day, not a burst.
pub const MIN_POLL_INTERVAL: i64 = 12 * 3600;
/// Asked at least once a day while the certificate is current.
pub const MAX_POLL_INTERVAL: i64 = 86_400;
/// Largest renewalInfo answer read: the RFC's example is 150 bytes.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AriError {
    #[error("renewalInfo answer is not JSON: {0}")]
    NotJson(String),
    #[error("renewalInfo answer has no suggestedWindow.{0}")]
    Missing(&'static str),
    #[error("renewalInfo suggestedWindow.{field} `{value}` is not an RFC 3339 time")]
    BadTime { field: &'static str, value: String },
    /// RFC 9773 §4.2: "end" must be after "start"; such a window is not used.
    #[error("renewalInfo suggestedWindow ends ({end}) before it starts ({start})")]
    Inverted { start: String, end: String },
}

/// A suggested renewal window (RFC 9773 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub start: UnixTime,
    pub end: UnixTime,
    /// `explanationURL`: a page where the CA says why (present when something happened).
    pub explanation_url: Option<String>,
}

/// Parses a renewalInfo answer: `{"suggestedWindow": {"start", "end"}, "explanationURL"?}`.
/// Unknown members are ignored (RFC 8555 §7.1 resources are extensible); an explanationURL that
/// is not an http(s) URL is dropped rather than shown as a link.
pub fn parse(body: &[u8]) -> Result<Window, AriError> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| AriError::NotJson(e.to_string()))?;
    let w = v.get("suggestedWindow").ok_or(AriError::Missing("(object)"))?;
    let time = |field: &'static str| -> Result<(UnixTime, String), AriError> {
        let s = w.get(field).and_then(|t| t.as_str()).ok_or(AriError::Missing(field))?;
        let t = s.parse::<jiff::Timestamp>().map_err(|_| AriError::BadTime { field, value: s.to_string() })?;
        Ok((t.as_second(), s.to_string()))
    };
    let ((start, s), (end, e)) = (time("start")?, time("end")?);
    if end <= start {
        return Err(AriError::Inverted { start: s, end: e });
    }
    let explanation_url = v
        .get("explanationURL")
        .and_then(|u| u.as_str())
        .filter(|u| (u.starts_with("https://") || u.starts_with("http://")) && u.len() <= 2048)
        .map(str::to_string);
    Ok(Window { start, end, explanation_url })
}

/// Seconds to wait from a Retry-After header (RFC 9110 §10.2.3: delay-seconds or an HTTP-date),
/// `None` when absent or unreadable.
pub fn retry_after(header: Option<&str>, now: UnixTime) -> Option<i64> {
    let h = header?.trim();
    if let Ok(n) = h.parse::<i64>() {
        return Some(n.max(0));
    }
    // IMF-fixdate, the only form a sender may generate (RFC 9110 §5.6.7).
    let t = jiff::fmt::rfc2822::parse(h).ok()?.timestamp().as_second();
    Some((t - now).max(0))
}

/// When to ask about a certificate again: the server's Retry-After bounded to
/// [`MIN_POLL_INTERVAL`]..[`MAX_POLL_INTERVAL`] (RFC 9773 §4.3.2 lets a client bound it), and
/// never after the certificate expires.
pub fn next_poll(now: UnixTime, retry_after: Option<i64>, not_after: UnixTime) -> UnixTime {
    let wait = retry_after.unwrap_or(MAX_POLL_INTERVAL).clamp(MIN_POLL_INTERVAL, MAX_POLL_INTERVAL);
    (now + wait).min(not_after.max(now + MIN_POLL_INTERVAL))
}

/// What a new window means against the one seen before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Movement {
    /// The first window seen, or the same, or later: the normal schedule.
    Steady,
    /// It starts earlier than the window seen before: the CA wants it renewed sooner.
    Earlier { previous_start: UnixTime },
    /// The whole window is in the past: the CA wants it renewed now (RFC 9773 §4.2, a revocation
    /// is coming or has come).
    Passed,
}

/// Compares `new` with the window seen before (`previous`) at `now`. A window entirely in the
/// past wins over "earlier"; a window that moves later is steady (a CA extending it).
pub fn movement(previous: Option<(UnixTime, UnixTime)>, new: &Window, now: UnixTime) -> Movement {
    if new.end <= now {
        return Movement::Passed;
    }
    match previous {
        Some((start, _)) if new.start < start => Movement::Earlier { previous_start: start },
        _ => Movement::Steady,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9773 §4.2's example answer, byte for byte.
    const RFC_EXAMPLE: &str = r#"{
  "suggestedWindow": {
    "start": "2025-01-02T04:00:00Z",
    "end": "2025-01-03T04:00:00Z"
  },
  "explanationURL": "https://acme.example.com/docs/ari"
}"#;

    const START: i64 = 1_735_790_400; // 2025-01-02T04:00:00Z

    #[test]
    fn the_rfc_example_parses() {
        let w = parse(RFC_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(w, Window { start: START, end: START + 86_400, explanation_url: Some("https://acme.example.com/docs/ari".into()) });
        // Without explanationURL, and with members this client does not know.
        let w = parse(br#"{"suggestedWindow": {"start": "2025-01-02T04:00:00Z", "end": "2025-01-03T04:00:00+00:00", "x": 1}, "y": []}"#)
            .unwrap();
        assert_eq!((w.start, w.end, w.explanation_url), (START, START + 86_400, None));
        // A link that is not http(s) is not offered as one.
        let w = parse(br#"{"suggestedWindow": {"start": "2025-01-02T04:00:00Z", "end": "2025-01-03T04:00:00Z"}, "explanationURL": "javascript:alert(1)"}"#)
            .unwrap();
        assert_eq!(w.explanation_url, None);
    }

    #[test]
    fn bad_answers_are_named() {
        assert!(matches!(parse(b"<html>"), Err(AriError::NotJson(_))));
        assert_eq!(parse(b"{}"), Err(AriError::Missing("(object)")));
        assert_eq!(parse(br#"{"suggestedWindow": {"start": "2025-01-02T04:00:00Z"}}"#), Err(AriError::Missing("end")));
        assert!(matches!(
            parse(br#"{"suggestedWindow": {"start": "soon", "end": "2025-01-03T04:00:00Z"}}"#),
            Err(AriError::BadTime { field: "start", .. })
        ));
        // RFC 9773 §4.2: the end must be after the start; an empty window is not one either.
        for end in ["2025-01-01T04:00:00Z", "2025-01-02T04:00:00Z"] {
            let body = format!(r#"{{"suggestedWindow": {{"start": "2025-01-02T04:00:00Z", "end": "{end}"}}}}"#);
            assert!(matches!(parse(body.as_bytes()), Err(AriError::Inverted { .. })), "{end}");
        }
    }

    #[test]
    fn retry_after_in_both_forms_and_bounded() {
        assert_eq!(retry_after(Some("21600"), 0), Some(21_600));
        assert_eq!(retry_after(Some(" 60 "), 0), Some(60));
        assert_eq!(retry_after(Some("-5"), 0), Some(0));
        assert_eq!(retry_after(None, 0), None);
        assert_eq!(retry_after(Some("soon"), 0), None);
        // 2025-01-02T10:00:00Z as an HTTP-date, asked at 04:00.
        assert_eq!(retry_after(Some("Thu, 02 Jan 2025 10:00:00 GMT"), START), Some(6 * 3600));
        // Twice a day at most, once a day at least, never past expiry (but not in a tight loop).
        let far = START + 90 * 86_400;
        assert_eq!(next_poll(START, Some(60), far), START + MIN_POLL_INTERVAL);
        assert_eq!(next_poll(START, Some(21_600), far), START + MIN_POLL_INTERVAL);
        assert_eq!(next_poll(START, Some(30 * 86_400), far), START + MAX_POLL_INTERVAL);
        assert_eq!(next_poll(START, None, far), START + MAX_POLL_INTERVAL);
        assert_eq!(next_poll(START, None, START + 14 * 3600), START + 14 * 3600);
        assert_eq!(next_poll(START, None, START + 3600), START + MIN_POLL_INTERVAL);
    }

    #[test]
    fn a_window_that_moves_earlier_or_passes_is_a_warning() {
        let w = |start: i64, end: i64| Window { start, end, explanation_url: None };
        let now = START - 10 * 86_400;
        assert_eq!(movement(None, &w(START, START + 86_400), now), Movement::Steady);
        assert_eq!(movement(Some((START, START + 86_400)), &w(START, START + 86_400), now), Movement::Steady);
        // Later: the CA extended it.
        assert_eq!(movement(Some((START, START + 86_400)), &w(START + 3600, START + 90_000), now), Movement::Steady);
        // Earlier by a second is earlier.
        assert_eq!(
            movement(Some((START, START + 86_400)), &w(START - 1, START + 86_400), now),
            Movement::Earlier { previous_start: START }
        );
        // Entirely in the past, first seen or not: renew now.
        assert_eq!(movement(None, &w(now - 2 * 86_400, now - 86_400), now), Movement::Passed);
        assert_eq!(movement(Some((START, START + 86_400)), &w(now - 2 * 86_400, now), now), Movement::Passed);
    }
}
