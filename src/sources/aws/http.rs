//! What both AWS clients (the services and the credential providers) need of HTTP: the
//! partition's DNS suffix, bounded body reads, transport errors named without URLs, and the one
//! XML field reader.

/// `amazonaws.com`, or `amazonaws.com.cn` in the China partition.
pub fn dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" }
}

/// Why a response body was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("response larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The connection failed while the body was read (the text of [`transport_error`]).
    #[error("{0}")]
    Transport(String),
}

/// A transport error's text with each of its causes (`timed out` for a timeout).
pub fn transport_error(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut msg = if e.is_timeout() { "timed out".to_string() } else { e.to_string() };
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// Reads a body, refusing more than `limit` bytes.
pub async fn read_body(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| BodyError::Transport(transport_error(&e)))? {
        if out.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Text of the first `<tag>…</tag>` element, XML entities decoded.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(
        xml[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}
