//! The AWS JSON 1.1 protocol client used by ACM and Secrets Manager: `POST /` with
//! `X-Amz-Target: <Service>.<Operation>`, `Content-Type: application/x-amz-json-1.1`, signed
//! with SigV4; errors decoded from `__type`/`message` (or an XML `Code`/`Message` body from
//! front ends); throttling and server errors retried with exponential backoff, a bounded number
//! of times; every response body read up to a size limit; a semaphore bounds requests in
//! flight; each request has a timeout.

use super::credentials::{self, Credentials, CredentialsError};
use super::http::{dns_suffix, read_body, transport_error, xml_text};
use super::sigv4;
use std::time::Duration;

/// Bodies beyond this are refused: a page of 100 summaries or one secret (64 KiB at most in
/// Secrets Manager) is far smaller.
pub const MAX_RESPONSE: usize = 8 * 1024 * 1024;
/// Attempts per request, the first included.
pub const MAX_ATTEMPTS: u32 = 5;
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Acm,
    SecretsManager,
}

impl Service {
    /// Signing name and endpoint prefix.
    pub fn name(self) -> &'static str {
        match self {
            Service::Acm => "acm",
            Service::SecretsManager => "secretsmanager",
        }
    }
    /// `X-Amz-Target` prefix (the service's JSON protocol target prefix).
    fn target_prefix(self) -> &'static str {
        match self {
            Service::Acm => "CertificateManager",
            Service::SecretsManager => "secretsmanager",
        }
    }
}

/// What went wrong with one API call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation}: {}", status_text(.status, .code, .message))]
pub struct ApiError {
    pub operation: String,
    /// `None` when no HTTP response came back (connection, timeout, credentials).
    pub status: Option<u16>,
    pub code: String,
    pub message: String,
}

/// `HTTP 400 Code: message` for an answer, the message alone when none came back.
fn status_text(status: &Option<u16>, code: &str, message: &str) -> String {
    match status {
        Some(s) => format!("HTTP {s} {code}: {message}"),
        None => message.to_string(),
    }
}

/// Why the client could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The HTTP client could not be built (the text is reqwest's).
    #[error("{reason}")]
    Http { reason: String },
    #[error("endpoint `{endpoint}`: {reason}")]
    Endpoint { endpoint: String, reason: String },
    /// The service URL made from the region does not parse.
    #[error("{url}: {reason}")]
    Url { url: String, reason: String },
}

impl ApiError {
    fn local(operation: &str, message: String) -> Self {
        ApiError { operation: operation.into(), status: None, code: String::new(), message }
    }

    /// Worth another attempt: throttling, server errors, lost connections.
    pub fn retryable(&self) -> bool {
        const THROTTLING: [&str; 7] = [
            "ThrottlingException",
            "Throttling",
            "TooManyRequestsException",
            "RequestLimitExceeded",
            "ProvisionedThroughputExceededException",
            "ServiceUnavailable",
            "InternalFailure",
        ];
        match self.status {
            Some(s) => s == 429 || s >= 500 || THROTTLING.contains(&self.code.as_str()),
            None => self.code == "transport",
        }
    }
}

/// Decodes an error body: JSON `__type` (possibly `namespace#Code` or `Code:uri`) and
/// `message`/`Message`, or XML `<Code>`/`<Message>`; the `x-amzn-ErrorType` header as fallback.
pub fn decode_error(body: &[u8], header_type: Option<&str>) -> (String, String) {
    let clean = |t: &str| {
        let t = t.rsplit('#').next().unwrap_or(t);
        t.split(':').next().unwrap_or(t).trim().to_string()
    };
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let code = v.get("__type").or_else(|| v.get("code")).and_then(|c| c.as_str()).map(clean);
        let message = v.get("message").or_else(|| v.get("Message")).and_then(|m| m.as_str()).map(str::to_string);
        if code.is_some() || message.is_some() {
            return (code.or_else(|| header_type.map(clean)).unwrap_or_default(), message.unwrap_or_default());
        }
    }
    let text = String::from_utf8_lossy(body);
    if let Some(code) = xml_text(&text, "Code") {
        return (code, xml_text(&text, "Message").unwrap_or_default());
    }
    let snippet: String = text.chars().take(200).collect();
    (header_type.map(clean).unwrap_or_default(), snippet.trim().to_string())
}

/// Delay before attempt `attempt + 1` (0-based): 200 ms, 400 ms, 800 ms, … capped at 5 s.
pub fn backoff(attempt: u32) -> Duration {
    BACKOFF_BASE.saturating_mul(1u32 << attempt.min(10)).min(BACKOFF_MAX)
}

/// One account and region.
pub struct Client {
    http: reqwest::Client,
    region: String,
    endpoint: Option<reqwest::Url>,
    profile: Option<String>,
    timeout: Duration,
    permits: tokio::sync::Semaphore,
    creds: credentials::Cache,
}

impl Client {
    pub fn new(
        region: &str,
        endpoint: Option<&str>,
        profile: Option<&str>,
        timeout: Duration,
        concurrency: usize,
    ) -> Result<Self, ClientError> {
        crate::net::install_crypto_provider();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("certvigil/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Http { reason: e.to_string() })?;
        let endpoint = match endpoint {
            Some(e) => {
                Some(reqwest::Url::parse(e).map_err(|err| ClientError::Endpoint { endpoint: e.to_string(), reason: err.to_string() })?)
            }
            None => None,
        };
        Ok(Client {
            http,
            region: region.into(),
            endpoint,
            profile: profile.map(str::to_string),
            timeout,
            permits: tokio::sync::Semaphore::new(concurrency.max(1)),
            creds: credentials::Cache::default(),
        })
    }

    fn url(&self, service: Service) -> Result<reqwest::Url, ClientError> {
        match &self.endpoint {
            Some(u) => Ok(u.clone()),
            None => {
                let u = format!("https://{}.{}.{}/", service.name(), self.region, dns_suffix(&self.region));
                reqwest::Url::parse(&u).map_err(|e| ClientError::Url { reason: e.to_string(), url: u })
            }
        }
    }

    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        let now = jiff::Timestamp::now().as_second();
        let resolve = credentials::resolve(&credentials::process_env, self.profile.as_deref(), &self.http, &self.region, self.timeout);
        self.creds.get(now, resolve).await
    }

    /// Calls `operation` with a JSON body, retrying throttling and server errors.
    pub async fn call(&self, service: Service, operation: &str, body: &serde_json::Value) -> Result<serde_json::Value, ApiError> {
        let mut attempt = 0;
        loop {
            match self.call_once(service, operation, body).await {
                Err(e) if e.retryable() && attempt + 1 < MAX_ATTEMPTS => {
                    tracing::debug!(operation, attempt, error = %e, "AWS request failed; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(mut e) if e.retryable() => {
                    e.message = format!("{} (after {MAX_ATTEMPTS} attempts)", e.message);
                    return Err(e);
                }
                other => return other,
            }
        }
    }

    async fn call_once(&self, service: Service, operation: &str, body: &serde_json::Value) -> Result<serde_json::Value, ApiError> {
        let _permit = self.permits.acquire().await.map_err(|e| ApiError::local(operation, e.to_string()))?;
        let creds = self.credentials().await.map_err(|e| ApiError {
            operation: operation.into(),
            status: None,
            code: "credentials".into(),
            message: format!("credentials: {e}"),
        })?;
        let url = self.url(service).map_err(|e| ApiError::local(operation, e.to_string()))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => return Err(ApiError::local(operation, format!("endpoint {url} has no host"))),
        };
        let payload = serde_json::to_vec(body).map_err(|e| ApiError::local(operation, e.to_string()))?;
        let date = sigv4::amz_date(jiff::Timestamp::now().as_second());
        let target = format!("{}.{operation}", service.target_prefix());
        let content_type = "application/x-amz-json-1.1";
        let mut headers: Vec<(&str, &str)> =
            vec![("content-type", content_type), ("host", &host), ("x-amz-date", &date), ("x-amz-target", &target)];
        if let Some(t) = creds.session_token.as_deref() {
            headers.push(("x-amz-security-token", t));
        }
        let scope = sigv4::Scope { date_time: &date, region: &self.region, service: service.name() };
        let path = url.path().to_string();
        let signed = sigv4::sign(
            &creds.access_key_id,
            &creds.secret_access_key,
            &scope,
            &sigv4::Request { method: "POST", path: &path, query: &[], headers: &headers, payload: &payload },
        );
        let mut req = self.http.post(url.clone()).timeout(self.timeout).header("authorization", &signed.authorization);
        for (k, v) in &headers {
            // reqwest writes Host from the URL itself (the same value as signed).
            if *k != "host" {
                req = req.header(*k, *v);
            }
        }
        let resp = req.body(payload).send().await.map_err(|e| ApiError {
            operation: operation.into(),
            status: None,
            code: "transport".into(),
            message: format!("{url}: {}", transport_error(&e)),
        })?;
        let status = resp.status().as_u16();
        let header_type = resp.headers().get("x-amzn-errortype").and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = read_body(resp, MAX_RESPONSE).await.map_err(|e| ApiError {
            operation: operation.into(),
            status: None,
            code: "transport".into(),
            message: e.to_string(),
        })?;
        if !(200..300).contains(&status) {
            let (code, message) = decode_error(&body, header_type.as_deref());
            return Err(ApiError { operation: operation.into(), status: Some(status), code, message });
        }
        serde_json::from_slice(&body).map_err(|e| ApiError::local(operation, format!("response is not JSON: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies() {
        let (c, m) = decode_error(br#"{"__type":"com.amazonaws.acm#ResourceNotFoundException","message":"no such cert"}"#, None);
        assert_eq!((c.as_str(), m.as_str()), ("ResourceNotFoundException", "no such cert"));
        let (c, m) = decode_error(br#"{"__type":"ThrottlingException:http://internal","Message":"slow down"}"#, None);
        assert_eq!((c.as_str(), m.as_str()), ("ThrottlingException", "slow down"));
        let xml = b"<ErrorResponse><Error><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error></ErrorResponse>";
        let (c, m) = decode_error(xml, None);
        assert_eq!(c, "InvalidClientTokenId");
        assert!(m.contains("security token"));
        let (c, _) = decode_error(b"", Some("AccessDeniedException:http://x"));
        assert_eq!(c, "AccessDeniedException");
    }

    #[test]
    fn what_is_retried() {
        let e = |status: Option<u16>, code: &str| ApiError { operation: "X".into(), status, code: code.into(), message: String::new() };
        assert!(e(Some(400), "ThrottlingException").retryable());
        assert!(e(Some(429), "").retryable());
        assert!(e(Some(503), "").retryable());
        assert!(e(None, "transport").retryable());
        assert!(!e(Some(400), "ResourceNotFoundException").retryable());
        assert!(!e(Some(403), "InvalidClientTokenId").retryable());
        assert!(!e(None, "credentials").retryable());
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(200));
        assert_eq!(backoff(2), Duration::from_millis(800));
        assert_eq!(backoff(30), Duration::from_secs(5));
    }

    #[test]
    fn partition_dns_suffix() {
        assert_eq!(dns_suffix("eu-west-1"), "amazonaws.com");
        assert_eq!(dns_suffix("cn-north-1"), "amazonaws.com.cn");
    }
}
