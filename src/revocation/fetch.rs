//! HTTP and file access for revocation data: timeouts, a body size limit enforced while
//! reading, conditional GET, bounded concurrency and a minimum interval per host.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: timed out after {secs}s")]
    Timeout { url: String, secs: u64 },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("{url}: {message}")]
    Network { url: String, message: String },
    #[error("{url}: only http, https and file locations are fetched")]
    Scheme { url: String },
}

/// A fetched body, or "not modified" for a conditional GET.
#[derive(Debug)]
pub enum Fetched {
    Body { bytes: Vec<u8>, etag: Option<String>, last_modified: Option<String> },
    NotModified,
}

pub struct Http {
    client: reqwest::Client,
    timeout: Duration,
    permits: Semaphore,
    interval: Duration,
    next_slot: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http").field("timeout", &self.timeout).finish()
    }
}

/// Installs ring as the process's rustls provider (one provider for the whole tree).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Http {
    pub fn new(timeout: Duration, concurrency: usize, per_host_interval: Duration) -> Result<Self, FetchError> {
        install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("certvigil/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Network { url: String::new(), message: e.to_string() })?;
        Ok(Http {
            client,
            timeout,
            permits: Semaphore::new(concurrency.max(1)),
            interval: per_host_interval,
            next_slot: Mutex::new(HashMap::new()),
        })
    }

    /// Waits for this host's next free slot, so no host sees more than one request per interval.
    async fn pace(&self, url: &str) {
        if self.interval.is_zero() {
            return;
        }
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0))))
            .unwrap_or_default();
        let wait_until = {
            let mut slots = self.next_slot.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let slot = slots.get(&host).copied().filter(|s| *s > now).unwrap_or(now);
            slots.insert(host, slot + self.interval);
            slot
        };
        tokio::time::sleep_until(wait_until).await;
    }

    fn map_err(&self, url: &str, e: reqwest::Error) -> FetchError {
        if e.is_timeout() {
            FetchError::Timeout { url: url.to_string(), secs: self.timeout.as_secs() }
        } else {
            let mut message = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                message = format!("{message}: {s}");
                src = s.source();
            }
            FetchError::Network { url: url.to_string(), message }
        }
    }

    async fn read_limited(&self, url: &str, mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, FetchError> {
        let too_large = || FetchError::TooLarge { url: url.to_string(), limit };
        let declared = resp.content_length().map(|n| n as usize);
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        // Exact pre-allocation when the length is declared: no doubling overshoot in memory.
        let mut body = Vec::with_capacity(declared.unwrap_or(0));
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.map_err(url, e))? {
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// GET with an optional conditional (ETag, Last-Modified). `file://` URLs and absolute
    /// paths are read from disk.
    pub async fn get(&self, url: &str, limit: usize, conditional: Option<(Option<&str>, Option<&str>)>) -> Result<Fetched, FetchError> {
        if let Some(path) = url.strip_prefix("file://").or_else(|| url.starts_with('/').then_some(url)) {
            return read_file(url, Path::new(path), limit).map(|bytes| Fetched::Body { bytes, etag: None, last_modified: None });
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(FetchError::Scheme { url: url.to_string() });
        }
        let _permit = self.permits.acquire().await.map_err(|e| FetchError::Network { url: url.to_string(), message: e.to_string() })?;
        self.pace(url).await;
        let mut req = self.client.get(url);
        if let Some((etag, lm)) = conditional {
            if let Some(e) = etag {
                req = req.header(reqwest::header::IF_NONE_MATCH, e);
            }
            if let Some(l) = lm {
                req = req.header(reqwest::header::IF_MODIFIED_SINCE, l);
            }
        }
        let resp = req.send().await.map_err(|e| self.map_err(url, e))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_MODIFIED && conditional.is_some() {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            return Err(FetchError::Status { url: url.to_string(), status: status.as_u16() });
        }
        let header = |h: reqwest::header::HeaderName| resp.headers().get(h).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (etag, last_modified) = (header(reqwest::header::ETAG), header(reqwest::header::LAST_MODIFIED));
        let bytes = self.read_limited(url, resp, limit).await?;
        Ok(Fetched::Body { bytes, etag, last_modified })
    }

    /// POST `body` with `content_type`; returns the response body.
    pub async fn post(&self, url: &str, body: Vec<u8>, content_type: &str, limit: usize) -> Result<Vec<u8>, FetchError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(FetchError::Scheme { url: url.to_string() });
        }
        let _permit = self.permits.acquire().await.map_err(|e| FetchError::Network { url: url.to_string(), message: e.to_string() })?;
        self.pace(url).await;
        let resp = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| self.map_err(url, e))?;
        if !resp.status().is_success() {
            return Err(FetchError::Status { url: url.to_string(), status: resp.status().as_u16() });
        }
        self.read_limited(url, resp, limit).await
    }
}

fn read_file(url: &str, path: &Path, limit: usize) -> Result<Vec<u8>, FetchError> {
    use std::io::Read;
    let err = |e: std::io::Error| FetchError::Network { url: url.to_string(), message: e.to_string() };
    let file = std::fs::File::open(path).map_err(err)?;
    let len = file.metadata().map_err(err)?.len() as usize;
    if len > limit {
        return Err(FetchError::TooLarge { url: url.to_string(), limit });
    }
    let mut buf = Vec::with_capacity(len);
    file.take(limit as u64 + 1).read_to_end(&mut buf).map_err(err)?;
    if buf.len() > limit {
        return Err(FetchError::TooLarge { url: url.to_string(), limit });
    }
    Ok(buf)
}
