//! ACME issuance (RFC 8555): account (with External Account Binding when the CA wants it),
//! order (with an ACME profile when configured), challenges (`issuers::challenge`), finalize.
//!
//! The account is registered once per directory URL and its credentials are kept as JSON (mode
//! 0600) in the state directory; later runs reuse them. HTTP goes through the project's reqwest
//! client (rustls with ring), so the ACME client brings no TLS stack of its own.
//!
//! An order is run by [`Session::order`], which reports each step to a [`Journal`] as it
//! happens and can resume the order of an earlier, interrupted run (RFC 8555 §7.1.3, §7.4).
//! ACME Renewal Information (RFC 9773) is read by [`Session::renewal_info`].

use super::challenge;
use super::keys::write_private;
use super::nonce::fresh_nonce;
use crate::config::managed::ManagedSpec;
use crate::config::secret::SecretError;
use crate::store::StoreError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use instant_acme::{
    Account, AccountCredentials, BodyWrapper, BytesResponse, CertificateIdentifier, ExternalAccountKey, HttpClient, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy, RevocationReason, RevocationRequest,
};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

/// What can go wrong talking to an ACME server or keeping an account's and an order's files.
/// Each variant's text is what the operator reads; where another error caused it, that error is
/// the `source`, printed after it (`context: cause`).
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("ca_bundle {path}")]
    CaBundleRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ca_bundle {path}")]
    CaBundleParse {
        path: PathBuf,
        #[source]
        source: reqwest::Error,
    },
    #[error("ca_bundle {path}: holds no PEM certificate")]
    CaBundleEmpty { path: PathBuf },
    /// The client's own error chain is part of the text.
    #[error("cannot set up the HTTP client: {}", error_chain(.0))]
    HttpClient(reqwest::Error),
    #[error("managed `{name}`: issuer.eab.hmac_key")]
    EabSecret {
        name: String,
        #[source]
        source: SecretError,
    },
    /// Names the key's reference, never the key or its decoding error's input.
    #[error("managed `{name}`: issuer.eab.hmac_key ({reference}) is not base64url")]
    EabNotBase64 { name: String, reference: String },
    #[error("managed `{name}`: issuer.eab.hmac_key ({reference}) is empty")]
    EabEmpty { name: String, reference: String },
    #[error("cannot read the ACME account {path}")]
    ReadAccount {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an ACME account file")]
    AccountFile {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write the ACME account {path}")]
    WriteAccount {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Encoding the account's credentials as JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("ACME directory {directory}")]
    Directory {
        directory: String,
        #[source]
        source: instant_acme::Error,
    },
    #[error("cannot register an ACME account at {directory}")]
    Register {
        directory: String,
        #[source]
        source: instant_acme::Error,
    },
    #[error("no ACME account is registered for {directory} yet (no {path})")]
    NoAccount { directory: String, path: PathBuf },
    #[error("the account key is not a P-256 PKCS#8 key")]
    AccountKey,
    #[error("unexpected P-256 public key encoding")]
    AccountKeyEncoding,
    #[error("the key change at {directory} failed")]
    KeyChange {
        directory: String,
        #[source]
        source: instant_acme::Error,
    },
    #[error("the account key was changed at the CA but the new credentials could not be written to {path}")]
    KeyChangeNotSaved {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("issuer.profile `{profile}`: the ACME server at {directory} offers no profiles")]
    NoProfiles { profile: String, directory: String },
    #[error("issuer.profile `{profile}`: the ACME server at {directory} does not offer it (offered: {offered})")]
    ProfileNotOffered { profile: String, directory: String, offered: String },
    /// The CA's problem document (or the transport's error) is the source.
    #[error("the ACME server refused the revocation")]
    Revoke(#[source] instant_acme::Error),
    #[error("`{cert_id}` is not an ARI certificate identifier")]
    NotAriId { cert_id: String },
    #[error("cannot fetch the renewal information of {cert_id}")]
    RenewalInfo {
        cert_id: String,
        #[source]
        source: instant_acme::Error,
    },
    #[error("cannot fetch the order in flight {url}")]
    FetchOrder {
        url: String,
        #[source]
        source: instant_acme::Error,
    },
    #[error("cannot create the ACME order")]
    CreateOrder(#[source] instant_acme::Error),
    /// Recording an order step failed.
    #[error(transparent)]
    Journal(#[from] StoreError),
    #[error(transparent)]
    Challenge(#[from] challenge::ChallengeError),
    #[error("the ACME order is {status:?}")]
    NotReady { status: OrderStatus },
    #[error(transparent)]
    Key(#[from] super::keys::KeyError),
    #[error("cannot write the pending key {path}")]
    WritePendingKey {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the pending key {path}")]
    ReadPendingKey {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the pending key {path} is unusable: {reason}")]
    PendingKeyUnusable { path: PathBuf, reason: rcgen::Error },
    #[error("invalid identifiers: {0}")]
    Identifiers(rcgen::Error),
    #[error("cannot build the CSR: {0}")]
    Csr(rcgen::Error),
    #[error("cannot finalize the ACME order")]
    Finalize(#[source] instant_acme::Error),
    #[error("waiting for the certificate")]
    Certificate(#[source] instant_acme::Error),
    #[error("cannot write the downloaded chain {path}")]
    WriteChain {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

type Result<T, E = AcmeError> = std::result::Result<T, E>;

/// Largest ACME response body accepted.
const MAX_BODY: usize = 1 << 20;

/// [`HttpClient`] over reqwest.
pub(crate) struct ReqwestHttp(pub(crate) reqwest::Client);

impl HttpClient for ReqwestHttp {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.0.clone();
        Box::pin(async move {
            let other = |m: String| instant_acme::Error::Other(m.into());
            let (parts, body) = req.into_parts();
            let body = match body.collect().await {
                Ok(c) => c.to_bytes(),
                Err(never) => match never {},
            };
            let mut rsp = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| other(error_chain(&e)))?;
            let status = rsp.status();
            let headers = rsp.headers().clone();
            let mut data = Vec::new();
            while let Some(chunk) = rsp.chunk().await.map_err(|e| other(error_chain(&e)))? {
                if data.len() + chunk.len() > MAX_BODY {
                    return Err(other(format!("response from {} is larger than {MAX_BODY} bytes", parts.uri)));
                }
                data.extend_from_slice(&chunk);
            }
            acme_response(status, headers, data)
        })
    }
}

/// An HTTP answer as handed to the ACME client, which parses it (JSON documents, problem
/// documents, `Replay-Nonce`, `Retry-After`). Public so that the fuzz targets feed the client
/// through the same step.
///
/// Two things the client would panic on are dealt with here. A directory (RFC 8555 §7.1.1)
/// naming a resource that is not a URI is refused, with the resource named (instant-acme builds
/// its `newNonce` request with `expect`). A `Retry-After` of more delay-seconds than
/// [`MAX_RETRY_AFTER`] is read as that many (instant-acme adds the delay to the clock, and a sum
/// past `SystemTime`'s range panics; RFC 9110 §10.2.3 sets no upper bound).
pub fn acme_response(status: http::StatusCode, mut headers: http::HeaderMap, body: Vec<u8>) -> Result<BytesResponse, instant_acme::Error> {
    if let Some(resource) = directory_non_uri(&body) {
        return Err(instant_acme::Error::Other(format!("the ACME directory's `{resource}` is not a URL").into()));
    }
    let too_late = headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|secs| secs > MAX_RETRY_AFTER);
    if too_late {
        headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(MAX_RETRY_AFTER));
    }
    // An error status whose body is not a problem document (RFC 8555 §6.7 says it SHOULD be;
    // Pebble answers an order it does not know with 404 and an empty body) becomes one of type
    // about:blank (RFC 7807 §4.2) carrying the status, so that the client reports the status
    // and the renewal can tell an order that is gone from a garbled answer.
    let body = if (status.is_client_error() || status.is_server_error())
        && !serde_json::from_slice::<serde_json::Value>(&body).is_ok_and(|v| v.is_object())
    {
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/problem+json"));
        headers.remove(http::header::CONTENT_LENGTH);
        serde_json::json!({"type": "about:blank", "status": status.as_u16(), "detail": format!("HTTP {status} without a problem document")})
            .to_string()
            .into_bytes()
    } else {
        body
    };
    let mut out = http::Response::new(Full::new(Bytes::from(body)));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(BytesResponse::from(out))
}

/// The longest `Retry-After` (in seconds: 100 years) handed to the ACME client; renewal
/// decisions bound the wait far more tightly (RFC 9773 §4.3.2).
pub const MAX_RETRY_AFTER: u64 = 100 * 365 * 86_400;

/// The first resource of a directory body (RFC 8555 §7.1.1, RFC 9773 §3) whose value is not a
/// URI; `None` for every other body. The body is read as the client reads a directory (other
/// members skipped unread), so that whatever it accepts is checked.
fn directory_non_uri(body: &[u8]) -> Option<&'static str> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Resources {
        new_nonce: Option<String>,
        new_account: Option<String>,
        new_order: Option<String>,
        new_authz: Option<String>,
        revoke_cert: Option<String>,
        key_change: Option<String>,
        renewal_info: Option<String>,
    }
    if !body.trim_ascii_start().starts_with(b"{") {
        return None;
    }
    let r: Resources = serde_json::from_slice(body).ok()?;
    [
        ("newNonce", r.new_nonce),
        ("newAccount", r.new_account),
        ("newOrder", r.new_order),
        ("newAuthz", r.new_authz),
        ("revokeCert", r.revoke_cert),
        ("keyChange", r.key_change),
        ("renewalInfo", r.renewal_info),
    ]
    .into_iter()
    .find(|(_, url)| url.as_deref().is_some_and(|u| u.parse::<http::Uri>().is_err()))
    .map(|(name, _)| name)
}

/// An error and its causes as one line, `error: cause: cause…` — what anyhow's `{:#}` prints,
/// for the places that record or log an error's whole text (renewal outcomes, the audit log).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    match tls_trust_hint(&s) {
        Some(hint) => format!("{hint} ({s})"),
        None => s,
    }
}

/// What to do when the ACME server's TLS certificate was refused, said first: the chain of a
/// refused handshake ends in rustls's `invalid peer certificate: <reason>`, which names the
/// problem but not the setting that fixes it. A private CA (Pebble, step-ca, an internal
/// Boulder) is trusted through `issuer.ca_bundle`.
pub fn tls_trust_hint(chain: &str) -> Option<String> {
    let reason = chain.split("invalid peer certificate: ").nth(1)?;
    let reason: String = reason.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    let what = match reason.as_str() {
        "UnknownIssuer" => {
            "set issuer.ca_bundle to the PEM certificate of the CA that issued it (a private ACME CA is not in the system trust store)"
        }
        "Expired" | "ExpiredContext" => "it has expired: the ACME server must renew it",
        "NotValidForName" | "NotValidForNameContext" => {
            "it does not name the directory URL's host: use the host name the certificate was issued for"
        }
        "BadSignature" | "UnsupportedSignatureAlgorithm" | "UnsupportedSignatureAlgorithmContext" => {
            "its signature does not verify against issuer.ca_bundle: check that the bundle holds the CA that issued it"
        }
        _ => "check issuer.ca_bundle",
    };
    Some(format!("the ACME directory's TLS certificate is not trusted ({reason}): {what}"))
}

pub(crate) fn http_client(ca_bundle: Option<&Path>) -> Result<reqwest::Client> {
    crate::net::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("certvigil/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_bundle {
        let pem = std::fs::read(path).map_err(|source| AcmeError::CaBundleRead { path: path.to_path_buf(), source })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| AcmeError::CaBundleParse { path: path.to_path_buf(), source })?;
        if certs.is_empty() {
            return Err(AcmeError::CaBundleEmpty { path: path.to_path_buf() });
        }
        builder = builder.tls_certs_only(certs);
    }
    builder.build().map_err(AcmeError::HttpClient)
}

/// Where the account for `directory` is kept.
pub fn account_path(state_dir: &Path, directory: &str) -> PathBuf {
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(directory.as_bytes()));
    state_dir.join("acme").join(format!("account-{}.json", &digest[..16]))
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredAccount {
    pub(crate) directory: String,
    pub(crate) credentials: AccountCredentials,
}

/// The External Account Binding key of `spec`, resolved and decoded. Neither the secret nor its
/// decoding error's input is ever shown.
fn eab_key(spec: &ManagedSpec) -> Result<Option<ExternalAccountKey>> {
    use base64ct::Encoding;
    let Some(eab) = &spec.eab else { return Ok(None) };
    let secret = eab.hmac_key.resolve().map_err(|source| AcmeError::EabSecret { name: spec.name.clone(), source })?;
    // CAs hand the key out base64url-encoded, with or without padding.
    let text = secret.expose().trim().trim_end_matches('=');
    let key = base64ct::Base64UrlUnpadded::decode_vec(text)
        .map_err(|_| AcmeError::EabNotBase64 { name: spec.name.clone(), reference: eab.hmac_key.to_string() })?;
    if key.is_empty() {
        return Err(AcmeError::EabEmpty { name: spec.name.clone(), reference: eab.hmac_key.to_string() });
    }
    Ok(Some(ExternalAccountKey::new(eab.kid.clone(), &key)))
}

/// Reads a stored account file.
pub(crate) fn load_account(path: &Path) -> Result<StoredAccount> {
    let text = std::fs::read(path).map_err(|source| AcmeError::ReadAccount { path: path.to_path_buf(), source })?;
    serde_json::from_slice(&text).map_err(|source| AcmeError::AccountFile { path: path.to_path_buf(), source })
}

async fn account(spec: &ManagedSpec, http: reqwest::Client, state_dir: &Path) -> Result<(Account, bool)> {
    let path = account_path(state_dir, &spec.directory);
    if path.exists() {
        let stored = load_account(&path)?;
        let acct = Account::builder_with_http(Box::new(ReqwestHttp(http)))
            .from_credentials(stored.credentials)
            .await
            .map_err(|source| AcmeError::Directory { directory: spec.directory.clone(), source })?;
        return Ok((acct, false));
    }
    let contact: Vec<&str> = spec.contact.iter().map(String::as_str).collect();
    let eab = eab_key(spec)?;
    let (acct, credentials) = fresh_nonce!(
        Account::builder_with_http(Box::new(ReqwestHttp(http.clone())))
            .create(
                &NewAccount { contact: &contact, terms_of_service_agreed: true, only_return_existing: false },
                spec.directory.clone(),
                eab.as_ref(),
            )
            .await
    )
    .map_err(|source| AcmeError::Register { directory: spec.directory.clone(), source })?;
    let dir = path.parent().unwrap_or(state_dir);
    std::fs::create_dir_all(dir).map_err(|source| AcmeError::CreateDir { path: dir.to_path_buf(), source })?;
    let json = serde_json::to_vec_pretty(&StoredAccount { directory: spec.directory.clone(), credentials })?;
    write_private(&path, &json).map_err(|source| AcmeError::WriteAccount { path: path.clone(), source })?;
    Ok((acct, true))
}

/// Fails when `profile` is not among those the directory offers (`meta.profiles`).
fn check_profile(account: &Account, spec: &ManagedSpec, profile: &str) -> Result<()> {
    let offered: Vec<String> = account.profiles().map(|p| p.name.to_string()).collect();
    if offered.iter().any(|p| p == profile) {
        return Ok(());
    }
    if offered.is_empty() {
        return Err(AcmeError::NoProfiles { profile: profile.to_string(), directory: spec.directory.clone() });
    }
    Err(AcmeError::ProfileNotOffered { profile: profile.to_string(), directory: spec.directory.clone(), offered: offered.join(", ") })
}

/// An ACME account ready to use, with the HTTP client it talks through.
pub struct Session {
    account: Account,
    /// Where the key-age records of the rotation policy are kept.
    state_dir: PathBuf,
    /// Whether the account was registered while opening the session.
    pub new_account: bool,
}

/// The CA's renewal information for one certificate (RFC 9773 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalWindow {
    pub start: i64,
    pub end: i64,
    pub explanation_url: Option<String>,
    /// Seconds until the server wants to be asked again (Retry-After, §4.3.2), unbounded.
    pub retry_after: i64,
}

/// What one order run is to do. Paths are where the new key and the downloaded chain are kept
/// (mode 0600) until installed, so a crash can be resumed (RFC 8555 §7.1.3, §7.4).
#[derive(Debug, Clone)]
pub struct OrderPlan<'a> {
    /// The URL of an order created by an earlier run.
    pub resume: Option<&'a str>,
    pub key_path: PathBuf,
    pub chain_path: PathBuf,
    /// The RFC 9773 §4.1 identifier of the certificate being replaced (sent as `replaces`).
    pub replaces: Option<&'a str>,
    /// Stop once the authorizations are valid and the order is ready, without finalizing.
    pub dry_run: bool,
    /// The time of the run (the rotation policy's key age).
    pub now: i64,
}

/// How an order run ended.
#[derive(Debug)]
pub enum OrderDone {
    Issued {
        chain_pem: String,
        key_pem: String,
        order_url: String,
        /// Whether the installed key was reused (rotation policy).
        key_reused: bool,
        /// Whether an order of an earlier run was continued.
        resumed: bool,
    },
    /// Dry run: the order is ready to finalize.
    Authorized { order_url: String, resumed: bool },
}

/// Receives each step of an order as soon as it happened, so the caller can persist it before
/// the next step: the order URL once the order exists, the key before the order is finalized,
/// the chain before it is installed.
pub trait Journal {
    fn order_created(&mut self, url: &str) -> Result<(), StoreError>;
    fn key_saved(&mut self, path: &Path) -> Result<(), StoreError>;
    fn chain_saved(&mut self, path: &Path) -> Result<(), StoreError>;
}

/// A journal that keeps nothing.
pub struct NoJournal;

impl Journal for NoJournal {
    fn order_created(&mut self, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
    fn key_saved(&mut self, _: &Path) -> Result<(), StoreError> {
        Ok(())
    }
    fn chain_saved(&mut self, _: &Path) -> Result<(), StoreError> {
        Ok(())
    }
}

fn retry_policy() -> RetryPolicy {
    RetryPolicy::new().initial_delay(Duration::from_millis(250)).backoff(1.5).timeout(Duration::from_secs(90))
}

/// Whether an error from fetching an order means the order is gone for good (404, or the
/// server says it is malformed or unauthorized for this account), so a new one is needed.
fn order_is_gone(e: &instant_acme::Error) -> bool {
    match e {
        instant_acme::Error::Api(p) => {
            p.status == Some(404) || p.r#type.as_deref().is_some_and(|t| t.ends_with(":malformed") || t.ends_with(":unauthorized"))
        }
        _ => false,
    }
}

impl Session {
    /// A session over an account opened elsewhere (another HTTP client: the fuzz targets).
    pub fn with_account(account: Account, state_dir: &Path) -> Session {
        Session { account, state_dir: state_dir.to_path_buf(), new_account: false }
    }

    /// Loads (or registers) the account for `spec`'s directory.
    pub async fn open(spec: &ManagedSpec, state_dir: &Path) -> Result<Session> {
        let http = http_client(spec.ca_bundle.as_deref())?;
        let (account, new_account) = account(spec, http, state_dir).await?;
        Ok(Session { account, state_dir: state_dir.to_path_buf(), new_account })
    }

    /// Revokes the certificate `cert_der` with `reason` (RFC 8555 §7.6), signed with the account
    /// key. Returns `true` when the CA says it was already revoked, which a resumed revocation
    /// counts as done.
    pub async fn revoke(&self, cert_der: &[u8], reason: RevocationReason) -> Result<bool> {
        let der = rustls::pki_types::CertificateDer::from(cert_der.to_vec());
        match fresh_nonce!(self.account.revoke(&RevocationRequest { certificate: &der, reason: Some(reason.clone()) }).await) {
            Ok(()) => Ok(false),
            Err(instant_acme::Error::Api(p)) if p.r#type.as_deref().is_some_and(|t| t.ends_with(":alreadyRevoked")) => Ok(true),
            Err(e) => Err(AcmeError::Revoke(e)),
        }
    }

    /// The CA's suggested renewal window for the certificate `cert_id` (RFC 9773 §4.1 form),
    /// or `None` when the directory offers no `renewalInfo`.
    pub async fn renewal_info(&self, cert_id: &str) -> Result<Option<RenewalWindow>> {
        let (aki, serial) = cert_id.split_once('.').ok_or_else(|| AcmeError::NotAriId { cert_id: cert_id.to_string() })?;
        let id = CertificateIdentifier { authority_key_identifier: aki.into(), serial: serial.into() };
        match fresh_nonce!(self.account.renewal_info(&id).await) {
            Ok((info, delay)) => Ok(Some(RenewalWindow {
                start: info.suggested_window.start.unix_timestamp(),
                end: info.suggested_window.end.unix_timestamp(),
                explanation_url: info.explanation_url,
                retry_after: delay.as_secs().min(i64::MAX as u64) as i64,
            })),
            Err(instant_acme::Error::Unsupported(_)) => Ok(None),
            Err(source) => Err(AcmeError::RenewalInfo { cert_id: cert_id.to_string(), source }),
        }
    }

    /// Runs an order to its end, resuming `plan.resume` when it can still be used: `valid` →
    /// download, `processing` → poll, `ready` → finalize with the persisted key, `pending` →
    /// solve the challenges again, `invalid`, expired or gone → a new order. Each step is
    /// reported to `journal` as soon as it happened.
    pub async fn order<J: Journal>(&self, spec: &ManagedSpec, plan: &OrderPlan<'_>, journal: &mut J) -> Result<OrderDone> {
        let retry = retry_policy();
        let mut resumed = None;
        if let Some(url) = plan.resume {
            match fresh_nonce!(self.account.order(url.to_string()).await) {
                Ok(mut o) => {
                    if o_status(&mut o) == OrderStatus::Invalid {
                        tracing::info!(cert = %spec.name, order = url, "the order in flight is invalid: starting a new one");
                    } else {
                        resumed = Some(o);
                    }
                }
                Err(e) if order_is_gone(&e) => {
                    tracing::info!(cert = %spec.name, order = url, error = %e, "the order in flight is gone: starting a new one");
                }
                Err(source) => return Err(AcmeError::FetchOrder { url: url.to_string(), source }),
            }
        }
        // A valid order whose key was lost cannot be used: the certificate is useless.
        if let Some(o) = resumed.as_mut()
            && matches!(o.state().status, OrderStatus::Valid | OrderStatus::Processing)
            && !plan.key_path.exists()
        {
            tracing::warn!(cert = %spec.name, order = o.url(), "the key of the order in flight is missing: starting a new order");
            resumed = None;
        }
        let was_resumed = resumed.is_some();
        let mut order = match resumed {
            Some(o) => o,
            None => {
                let identifiers: Vec<Identifier> = spec.identifiers.iter().map(|n| Identifier::Dns(n.clone())).collect();
                if let Some(profile) = &spec.profile {
                    check_profile(&self.account, spec, profile)?;
                }
                let new_order = |replaces| new_order(&identifiers, replaces, spec.profile.as_deref());
                let mut replaces = plan.replaces;
                let order = match fresh_nonce!(self.account.new_order(&new_order(replaces)).await) {
                    // RFC 9773 §5: the certificate was already replaced (by another client, or
                    // an order this one lost track of). The renewal is still needed: order it
                    // without the replacement claim.
                    Err(instant_acme::Error::Api(p))
                        if replaces.is_some() && p.r#type.as_deref().is_some_and(|t| t.ends_with(":alreadyReplaced")) =>
                    {
                        tracing::warn!(cert = %spec.name, replaces = replaces.unwrap_or(""), problem = %p, "the CA says the certificate was already replaced: ordering without `replaces`");
                        replaces = None;
                        fresh_nonce!(self.account.new_order(&new_order(None)).await)
                    }
                    other => other,
                }
                .map_err(AcmeError::CreateOrder)?;
                // Removing a key left by an abandoned order: it belongs to no order now.
                let _ = std::fs::remove_file(&plan.key_path);
                if !plan.dry_run {
                    journal.order_created(order.url())?;
                }
                tracing::info!(cert = %spec.name, order = order.url(), replaces = replaces.unwrap_or(""), "ACME order created");
                order
            }
        };
        let url = order.url().to_string();
        if o_status(&mut order) == OrderStatus::Pending {
            challenge::authorize(&mut order, &spec.challenge, &retry).await?;
        }
        if plan.dry_run {
            let status = o_status(&mut order);
            if !matches!(status, OrderStatus::Ready | OrderStatus::Processing | OrderStatus::Valid) {
                return Err(AcmeError::NotReady { status });
            }
            return Ok(OrderDone::Authorized { order_url: url, resumed: was_resumed });
        }
        let mut key_reused = false;
        let key_pem = if o_status(&mut order) == OrderStatus::Ready {
            // The key is on disk (0600) before the CA sees its CSR (RFC 8555 §7.4), so the
            // certificate of a finalize whose answer is lost can still be used.
            let key_pem = match std::fs::read_to_string(&plan.key_path).ok().filter(|_| was_resumed) {
                Some(k) => k,
                None => {
                    let (key, reused) = super::keys::certificate_key(spec, &self.state_dir, plan.now).await?;
                    key_reused = reused;
                    let pem = key.serialize_pem();
                    if let Some(dir) = plan.key_path.parent() {
                        create_private_dir(dir)?;
                    }
                    write_private(&plan.key_path, pem.as_bytes())
                        .map_err(|source| AcmeError::WritePendingKey { path: plan.key_path.clone(), source })?;
                    journal.key_saved(&plan.key_path)?;
                    pem
                }
            };
            let key = rcgen::KeyPair::from_pem(&key_pem)
                .map_err(|reason| AcmeError::PendingKeyUnusable { path: plan.key_path.clone(), reason })?;
            let mut params = rcgen::CertificateParams::new(spec.identifiers.clone()).map_err(AcmeError::Identifiers)?;
            // The subject is the first identifier (rcgen's placeholder CN would count as a name the
            // order does not hold, and some CAs refuse the CSR for it).
            params.distinguished_name = rcgen::DistinguishedName::new();
            if let Some(first) = spec.identifiers.first() {
                params.distinguished_name.push(rcgen::DnType::CommonName, first.clone());
            }
            let csr = params.serialize_request(&key).map_err(AcmeError::Csr)?;
            fresh_nonce!(order.finalize_csr(csr.der()).await).map_err(AcmeError::Finalize)?;
            key_pem
        } else {
            std::fs::read_to_string(&plan.key_path).map_err(|source| AcmeError::ReadPendingKey { path: plan.key_path.clone(), source })?
        };
        let chain_pem = fresh_nonce!(order.poll_certificate(&retry).await).map_err(AcmeError::Certificate)?;
        if let Some(dir) = plan.chain_path.parent() {
            create_private_dir(dir)?;
        }
        write_private(&plan.chain_path, chain_pem.as_bytes())
            .map_err(|source| AcmeError::WriteChain { path: plan.chain_path.clone(), source })?;
        journal.chain_saved(&plan.chain_path)?;
        Ok(OrderDone::Issued { chain_pem, key_pem, order_url: url, key_reused, resumed: was_resumed })
    }
}

/// A new-order request (RFC 8555 §7.4) with RFC 9773's `replaces` and a profile when given.
fn new_order<'a>(identifiers: &'a [Identifier], replaces: Option<&'a str>, profile: Option<&'a str>) -> NewOrder<'a> {
    let mut new = NewOrder::new(identifiers);
    if let Some((aki, serial)) = replaces.and_then(|id| id.split_once('.')) {
        new = new.replaces(CertificateIdentifier { authority_key_identifier: aki.into(), serial: serial.into() });
    }
    if let Some(profile) = profile {
        new = new.profile(profile);
    }
    new
}

fn o_status(o: &mut instant_acme::Order) -> OrderStatus {
    o.state().status
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| AcmeError::CreateDir { path: dir.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_naming_a_non_uri_is_refused() {
        let ok = br#"{"newNonce":"https://127.0.0.1/nonce","newAccount":"https://127.0.0.1/acct","newOrder":"https://127.0.0.1/order"}"#;
        assert!(acme_response(http::StatusCode::OK, http::HeaderMap::new(), ok.to_vec()).is_ok());
        let bad = br#"{"newNonce":"htyps:/21/7.0.0.1:14000/nonce plz","newAccount":"https://127.0.0.1/acct","newOrder":"https://127.0.0.1/order"}"#;
        let err = acme_response(http::StatusCode::OK, http::HeaderMap::new(), bad.to_vec()).err().expect("refused");
        assert!(err.to_string().contains("`newNonce` is not a URL"), "{err}");
        // Members the client skips are not decoded (not even as UTF-8) by the check either.
        let mut skipped = br#"{"meta":{"termsOfService":"x"#.to_vec();
        skipped.extend_from_slice(&[0x9f, 0xff]);
        skipped.extend_from_slice(br#""},"newNonce":"https://127.0.0.1:%14000/n","newAccount":"a","newOrder":"o"}"#);
        let err = acme_response(http::StatusCode::OK, http::HeaderMap::new(), skipped).err().expect("refused");
        assert!(err.to_string().contains("`newNonce` is not a URL"), "{err}");
        // Other documents pass untouched, URLs or not.
        assert!(acme_response(http::StatusCode::OK, http::HeaderMap::new(), br#"{"status":"valid","finalize":"x y"}"#.to_vec()).is_ok());
    }

    #[test]
    fn a_retry_after_past_the_clock_s_range_is_capped() {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("12060666666666666665"));
        let rsp = acme_response(http::StatusCode::OK, headers, Vec::new()).expect("passed on");
        assert_eq!(rsp.parts.headers[http::header::RETRY_AFTER], MAX_RETRY_AFTER.to_string().as_str());
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("21600"));
        let rsp = acme_response(http::StatusCode::OK, headers, Vec::new()).expect("passed on");
        assert_eq!(rsp.parts.headers[http::header::RETRY_AFTER], "21600");
    }

    /// A variant that replaced a context prints as `context: cause` (the text the CLI showed
    /// before), one passed through prints as its inner error, and one whose cause was part of
    /// its message prints it once.
    #[test]
    fn errors_print_their_context_then_their_causes() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = AcmeError::CaBundleRead { path: PathBuf::from("/etc/certvigil/ca.pem"), source: io };
        assert_eq!(error_chain(&e), "ca_bundle /etc/certvigil/ca.pem: No such file or directory");
        let refused = "cannot reach https://127.0.0.1:14000/dir: error sending request: client error (Connect): invalid peer certificate: UnknownIssuer";
        assert_eq!(
            tls_trust_hint(refused).as_deref(),
            Some(
                "the ACME directory's TLS certificate is not trusted (UnknownIssuer): set issuer.ca_bundle to the PEM certificate of the CA that issued it (a private ACME CA is not in the system trust store)"
            )
        );
        assert!(tls_trust_hint("invalid peer certificate: NotValidForNameContext { expected: .. }").unwrap().contains("does not name"));
        assert_eq!(tls_trust_hint("connection refused"), None);
        let e = AcmeError::from(challenge::ChallengeError::BadToken("a/b".into()));
        assert_eq!(error_chain(&e), "the challenge token `a/b` is not base64url; refusing to use it as a file name");
        let e = AcmeError::NotAriId { cert_id: "nodot".into() };
        assert_eq!(error_chain(&e), "`nodot` is not an ARI certificate identifier");
        let e = AcmeError::NotReady { status: OrderStatus::Pending };
        assert_eq!(error_chain(&e), "the ACME order is Pending");
    }

    #[test]
    fn account_path_depends_on_directory() {
        let a = account_path(Path::new("/s"), "https://a/dir");
        assert_ne!(a, account_path(Path::new("/s"), "https://b/dir"));
        assert!(a.starts_with("/s/acme"));
    }
}
