//! ACME issuance (RFC 8555): account (with External Account Binding when the CA wants it),
//! order (with an ACME profile when configured), challenges (`issuers::challenge`), finalize.
//!
//! The account is registered once per directory URL and its credentials are kept as JSON (mode
//! 0600) in the state directory; later runs reuse them. HTTP goes through the project's reqwest
//! client (rustls with ring), so the ACME client brings no TLS stack of its own.

use super::challenge;
use crate::config::managed::ManagedSpec;
use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use instant_acme::{
    Account, AccountCredentials, BodyWrapper, BytesResponse, ExternalAccountKey, HttpClient, Identifier, NewAccount, NewOrder, RetryPolicy,
};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

/// Largest ACME response body accepted.
const MAX_BODY: usize = 1 << 20;

/// A freshly issued certificate and its key (PKCS#8 PEM), held only until installed.
pub struct Issued {
    /// The PEM chain as the server sent it: leaf first.
    pub chain_pem: String,
    pub key_pem: String,
    /// Whether the account was registered during this run.
    pub new_account: bool,
    /// Whether the installed key was reused (rotation policy).
    pub key_reused: bool,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("chain_pem", &self.chain_pem).field("key_pem", &"<redacted>").finish()
    }
}

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

pub(crate) fn http_client(ca_bundle: Option<&Path>) -> Result<reqwest::Client> {
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
pub(crate) struct StoredAccount {
    pub(crate) directory: String,
    pub(crate) credentials: AccountCredentials,
}

/// The External Account Binding key of `spec`, resolved and decoded. Neither the secret nor its
/// decoding error's input is ever shown.
fn eab_key(spec: &ManagedSpec) -> Result<Option<ExternalAccountKey>> {
    use base64ct::Encoding;
    let Some(eab) = &spec.eab else { return Ok(None) };
    let secret = eab.hmac_key.resolve().with_context(|| format!("managed `{}`: issuer.eab.hmac_key", spec.name))?;
    // CAs hand the key out base64url-encoded, with or without padding.
    let text = secret.expose().trim().trim_end_matches('=');
    let key = base64ct::Base64UrlUnpadded::decode_vec(text)
        .map_err(|_| anyhow!("managed `{}`: issuer.eab.hmac_key ({}) is not base64url", spec.name, eab.hmac_key))?;
    if key.is_empty() {
        bail!("managed `{}`: issuer.eab.hmac_key ({}) is empty", spec.name, eab.hmac_key);
    }
    Ok(Some(ExternalAccountKey::new(eab.kid.clone(), &key)))
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
    let eab = eab_key(spec)?;
    let (acct, credentials) = Account::builder_with_http(Box::new(ReqwestHttp(http)))
        .create(
            &NewAccount { contact: &contact, terms_of_service_agreed: true, only_return_existing: false },
            spec.directory.clone(),
            eab.as_ref(),
        )
        .await
        .with_context(|| format!("cannot register an ACME account at {}", spec.directory))?;
    let dir = path.parent().unwrap_or(state_dir);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let json = serde_json::to_vec_pretty(&StoredAccount { directory: spec.directory.clone(), credentials })?;
    write_private(&path, &json).with_context(|| format!("cannot write the ACME account {}", path.display()))?;
    Ok((acct, true))
}

/// Runs one order for `spec` and returns the certificate chain with its key.
pub async fn issue(spec: &ManagedSpec, state_dir: &Path) -> Result<Issued> {
    let http = http_client(spec.ca_bundle.as_deref())?;
    order(spec, http, state_dir).await
}

/// Fails when `profile` is not among those the directory offers (`meta.profiles`).
fn check_profile(account: &Account, spec: &ManagedSpec, profile: &str) -> Result<()> {
    let offered: Vec<String> = account.profiles().map(|p| p.name.to_string()).collect();
    if offered.iter().any(|p| p == profile) {
        return Ok(());
    }
    if offered.is_empty() {
        bail!("issuer.profile `{profile}`: the ACME server at {} offers no profiles", spec.directory);
    }
    bail!("issuer.profile `{profile}`: the ACME server at {} does not offer it (offered: {})", spec.directory, offered.join(", "))
}

async fn order(spec: &ManagedSpec, http: reqwest::Client, state_dir: &Path) -> Result<Issued> {
    let (account, new_account) = account(spec, http, state_dir).await?;
    // A wildcard is ordered as `*.name` (RFC 8555 §7.1.3).
    let identifiers: Vec<Identifier> = spec.identifiers.iter().map(|n| Identifier::Dns(n.clone())).collect();
    let mut new_order = NewOrder::new(&identifiers);
    if let Some(profile) = &spec.profile {
        check_profile(&account, spec, profile)?;
        new_order = new_order.profile(profile);
    }
    let mut order = account.new_order(&new_order).await.context("cannot create the ACME order")?;
    let retry = RetryPolicy::new().initial_delay(Duration::from_millis(250)).backoff(1.5).timeout(Duration::from_secs(90));
    challenge::authorize(&mut order, &spec.challenge, &retry).await?;
    let now = jiff::Timestamp::now().as_second();
    let (key, key_reused) = super::keys::certificate_key(spec, state_dir, now).await?;
    let mut params = rcgen::CertificateParams::new(spec.identifiers.clone()).map_err(|e| anyhow!("invalid identifiers: {e}"))?;
    // The subject is the first identifier (rcgen's placeholder CN would count as a name the
    // order does not hold, and some CAs refuse the CSR for it).
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(first) = spec.identifiers.first() {
        params.distinguished_name.push(rcgen::DnType::CommonName, first.clone());
    }
    let csr = params.serialize_request(&key).map_err(|e| anyhow!("cannot build the CSR: {e}"))?;
    order.finalize_csr(csr.der()).await.context("cannot finalize the ACME order")?;
    let chain_pem = order.poll_certificate(&retry).await.context("waiting for the certificate")?;
    Ok(Issued { chain_pem, key_pem: key.serialize_pem(), new_account, key_reused })
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
