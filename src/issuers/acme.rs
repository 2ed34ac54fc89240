//! ACME issuance (RFC 8555) with HTTP-01 served by a small built-in listener.
//!
//! The account is registered once per directory URL and its credentials are kept as JSON (mode
//! 0600) in the state directory; later runs reuse them. HTTP goes through the project's reqwest
//! client (rustls with ring), so the ACME client brings no TLS stack of its own.

use super::challenge::{Tokens, serve_challenges};
use crate::config::managed::{KeyType, ManagedSpec};
use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType, HttpClient, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;
use tokio::net::TcpListener;

/// Largest ACME response body accepted.
const MAX_BODY: usize = 1 << 20;

/// A freshly issued certificate and its key (PKCS#8 PEM), held only until installed.
pub struct Issued {
    /// The PEM chain as the server sent it: leaf first.
    pub chain_pem: String,
    pub key_pem: String,
    /// Whether the account was registered during this run.
    pub new_account: bool,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("chain_pem", &self.chain_pem).field("key_pem", &"<redacted>").finish()
    }
}

/// [`HttpClient`] over reqwest.
struct ReqwestHttp(reqwest::Client);

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
            let mut out = http::Response::new(Full::new(Bytes::from(data)));
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok(BytesResponse::from(out))
        })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn http_client(ca_bundle: Option<&Path>) -> Result<reqwest::Client> {
    crate::revocation::fetch::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("certvigil/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_bundle {
        let pem = std::fs::read(path).with_context(|| format!("ca_bundle {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| format!("ca_bundle {}", path.display()))?;
        if certs.is_empty() {
            bail!("ca_bundle {}: holds no PEM certificate", path.display());
        }
        builder = builder.tls_certs_only(certs);
    }
    builder.build().map_err(|e| anyhow!("cannot set up the HTTP client: {}", error_chain(&e)))
}

/// Where the account for `directory` is kept.
pub fn account_path(state_dir: &Path, directory: &str) -> PathBuf {
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(directory.as_bytes()));
    state_dir.join("acme").join(format!("account-{}.json", &digest[..16]))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

/// Writes `bytes` to `path` with mode 0600 (temp file, fsync, rename).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("file")));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

async fn account(spec: &ManagedSpec, http: reqwest::Client, state_dir: &Path) -> Result<(Account, bool)> {
    let path = account_path(state_dir, &spec.directory);
    if path.exists() {
        let text = std::fs::read(&path).with_context(|| format!("cannot read the ACME account {}", path.display()))?;
        let stored: StoredAccount =
            serde_json::from_slice(&text).with_context(|| format!("{} is not an ACME account file", path.display()))?;
        let acct = Account::builder_with_http(Box::new(ReqwestHttp(http)))
            .from_credentials(stored.credentials)
            .await
            .with_context(|| format!("ACME directory {}", spec.directory))?;
        return Ok((acct, false));
    }
    let contact: Vec<&str> = spec.contact.iter().map(String::as_str).collect();
    let (acct, credentials) = Account::builder_with_http(Box::new(ReqwestHttp(http)))
        .create(&NewAccount { contact: &contact, terms_of_service_agreed: true, only_return_existing: false }, spec.directory.clone(), None)
        .await
        .with_context(|| format!("cannot register an ACME account at {}", spec.directory))?;
    let dir = path.parent().unwrap_or(state_dir);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let json = serde_json::to_vec_pretty(&StoredAccount { directory: spec.directory.clone(), credentials })?;
    write_private(&path, &json).with_context(|| format!("cannot write the ACME account {}", path.display()))?;
    Ok((acct, true))
}

fn generate_key(kind: KeyType) -> Result<rcgen::KeyPair> {
    let alg = match kind {
        KeyType::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyType::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyType::Ed25519 => &rcgen::PKCS_ED25519,
        KeyType::Rsa => bail!("RSA keys cannot be generated"),
    };
    rcgen::KeyPair::generate_for(alg).map_err(|e| anyhow!("cannot generate a {} key: {e}", kind.as_str()))
}

/// Runs one order for `spec` and returns the certificate chain with its new key.
pub async fn issue(spec: &ManagedSpec, state_dir: &Path) -> Result<Issued> {
    let http = http_client(spec.ca_bundle.as_deref())?;
    // Bind first: a listener that cannot start fails the run before anything is ordered.
    let listener =
        TcpListener::bind(spec.listen).await.with_context(|| format!("cannot listen for HTTP-01 challenges on {}", spec.listen))?;
    let tokens = Tokens::default();
    let server = tokio::spawn(serve_challenges(listener, tokens.clone()));
    let result = order(spec, http, state_dir, &tokens).await;
    server.abort();
    result
}

async fn order(spec: &ManagedSpec, http: reqwest::Client, state_dir: &Path, tokens: &Tokens) -> Result<Issued> {
    let (account, new_account) = account(spec, http, state_dir).await?;
    let identifiers: Vec<Identifier> = spec.identifiers.iter().map(|n| Identifier::Dns(n.clone())).collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await.context("cannot create the ACME order")?;
    {
        let mut auths = order.authorizations();
        while let Some(auth) = auths.next().await {
            let mut auth = auth.context("cannot fetch an authorization")?;
            match auth.status {
                AuthorizationStatus::Valid => continue,
                AuthorizationStatus::Pending => {}
                other => bail!("authorization for {:?} is {other:?}", auth.identifier()),
            }
            let mut ch = auth.challenge(ChallengeType::Http01).ok_or_else(|| anyhow!("the ACME server offers no http-01 challenge"))?;
            let key_auth = ch.key_authorization().as_str().to_string();
            if let Ok(mut m) = tokens.lock() {
                m.insert(ch.token.clone(), key_auth);
            }
            ch.set_ready().await.context("cannot mark the challenge ready")?;
        }
    }
    let retry = RetryPolicy::new().initial_delay(Duration::from_millis(250)).backoff(1.5).timeout(Duration::from_secs(90));
    let status = order.poll_ready(&retry).await.context("waiting for the ACME order to become ready")?;
    if status != OrderStatus::Ready {
        let mut why = Vec::new();
        let mut auths = order.authorizations();
        while let Some(Ok(auth)) = auths.next().await {
            for ch in &auth.challenges {
                if let Some(p) = &ch.error {
                    why.push(format!("{:?}: {p}", auth.identifier()));
                }
            }
        }
        bail!("the ACME order is {status:?}: {}", if why.is_empty() { "no reason given".to_string() } else { why.join("; ") });
    }
    let key = generate_key(spec.key)?;
    let params = rcgen::CertificateParams::new(spec.identifiers.clone()).map_err(|e| anyhow!("invalid identifiers: {e}"))?;
    let csr = params.serialize_request(&key).map_err(|e| anyhow!("cannot build the CSR: {e}"))?;
    order.finalize_csr(csr.der()).await.context("cannot finalize the ACME order")?;
    let chain_pem = order.poll_certificate(&retry).await.context("waiting for the certificate")?;
    Ok(Issued { chain_pem, key_pem: key.serialize_pem(), new_account })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_path_depends_on_directory() {
        let a = account_path(Path::new("/s"), "https://a/dir");
        assert_ne!(a, account_path(Path::new("/s"), "https://b/dir"));
        assert!(a.starts_with("/s/acme"));
    }
}
