//! Proving control of identifiers (RFC 8555 §8): http-01 through the built-in listener or a
//! webroot directory, dns-01 through an operator's hook command.
//!
//! [`authorize`] is the one entry point: it answers every pending authorization of an order,
//! waits for the order to become ready and then removes what it published (tokens, webroot
//! files, TXT records), whether validation succeeded or not.
//!
//! The listener answers `GET /.well-known/acme-challenge/<token>` with the key authorization
//! for tokens of the orders in progress (§8.3) and 404 for everything else. Requests are bounded
//! in size, time and number of concurrent connections.

use super::nonce::{NONCE_ROUNDS, fresh_nonce, is_bad_nonce};
use crate::config::managed::{ChallengeSpec, PropagationCheck};
use crate::install::hooks::{self, HookError};
use instant_acme::{AuthorizationStatus, ChallengeType, Identifier, Order, OrderStatus, RetryPolicy};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum ChallengeError {
    #[error("cannot listen for HTTP-01 challenges on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    #[error("{what}: {source}")]
    Acme {
        what: String,
        #[source]
        source: instant_acme::Error,
    },
    #[error("the authorization for {identifier} is {status}")]
    Authorization { identifier: String, status: String },
    #[error("the ACME server offers no {kind} challenge for {identifier}")]
    NoChallenge { identifier: String, kind: &'static str },
    #[error("{identifier} is not a DNS name; only DNS identifiers are supported")]
    NotDns { identifier: String },
    #[error("cannot write the challenge file {path}: {reason}")]
    Webroot { path: PathBuf, reason: String },
    #[error("the challenge token `{0}` is not base64url; refusing to use it as a file name")]
    BadToken(String),
    #[error("dns-01 hook for {fqdn}: {source}")]
    Hook {
        fqdn: String,
        #[source]
        source: HookError,
    },
    #[error("the ACME order is {status}: {reasons}")]
    Failed { status: String, reasons: String },
    #[error(
        "dns-01: the TXT record {record} was not visible at {resolver} within {secs}s (last answer: {last}); validation was not asked for"
    )]
    NotPropagated { record: String, resolver: SocketAddr, secs: u64, last: String },
}

fn acme(what: &str) -> impl FnOnce(instant_acme::Error) -> ChallengeError + '_ {
    move |source| ChallengeError::Acme { what: what.to_string(), source }
}

/// One published challenge response, kept to answer `set_ready` and to clean up.
struct Published {
    identifier: String,
    kind: ChallengeType,
    /// http-01: the token; dns-01: the record name.
    key: String,
    value: String,
    /// Webroot file written for it.
    file: Option<PathBuf>,
}

/// The name of the TXT record for `domain` (§8.4), absolute.
pub fn dns_record_name(domain: &str) -> String {
    format!("_acme-challenge.{}.", domain.trim_end_matches('.'))
}

fn token_ok(t: &str) -> bool {
    !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Writes `<webroot>/.well-known/acme-challenge/<token>` (mode 0644) by temp file and rename.
fn write_webroot(webroot: &Path, token: &str, body: &str) -> Result<PathBuf, ChallengeError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if !token_ok(token) {
        return Err(ChallengeError::BadToken(token.to_string()));
    }
    let dir = webroot.join(".well-known").join("acme-challenge");
    let path = dir.join(token);
    let err = |e: std::io::Error| ChallengeError::Webroot { path: path.clone(), reason: e.to_string() };
    std::fs::create_dir_all(&dir).map_err(err)?;
    let tmp = dir.join(format!(".{token}.certvigil-new"));
    let _ = std::fs::remove_file(&tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.write_all(body.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(path)
}

async fn run_hook(argv: &[String], action: &str, fqdn: &str, value: &str, timeout: Duration) -> Result<(), ChallengeError> {
    let mut full = argv.to_vec();
    full.extend([action.to_string(), fqdn.to_string(), value.to_string()]);
    let err = |source| ChallengeError::Hook { fqdn: fqdn.to_string(), source };
    tokio::task::spawn_blocking(move || hooks::run(&full, &[], timeout))
        .await
        .map_err(|e| err(HookError::Spawn { command: argv.join(" "), reason: e.to_string() }))?
        .map_err(err)
}

/// Waits until every resolver of `check` answers every published TXT record (the CA would
/// otherwise look too early and fail the authorization for good, RFC 8555 §8.4), asking each
/// one every 2 s.
async fn wait_visible(published: &[Published], check: &PropagationCheck) -> Result<(), ChallengeError> {
    let deadline = tokio::time::Instant::now() + check.timeout;
    let mut id: u16 = 1;
    for p in published {
        for resolver in &check.resolvers {
            loop {
                id = id.wrapping_add(1);
                let last = match super::dns::txt(*resolver, &p.key, id, Duration::from_secs(5)).await {
                    Ok(records) if records.iter().any(|r| r == &p.value) => break,
                    Ok(records) => format!("{} other TXT record(s)", records.len()),
                    Err(e) => e.to_string(),
                };
                if tokio::time::Instant::now() + Duration::from_secs(2) > deadline {
                    return Err(ChallengeError::NotPropagated {
                        record: p.key.clone(),
                        resolver: *resolver,
                        secs: check.timeout.as_secs(),
                        last,
                    });
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            tracing::debug!(record = %p.key, resolver = %resolver, "dns-01 TXT record visible");
        }
    }
    Ok(())
}

/// Solves every pending authorization of `order` with `challenge`, waits (per `retry`) for the
/// order to become ready, and removes everything it published — also on failure.
pub async fn authorize(order: &mut Order, challenge: &ChallengeSpec, retry: &RetryPolicy) -> Result<(), ChallengeError> {
    let tokens = Tokens::default();
    let server = match challenge {
        ChallengeSpec::Http01Listener { listen } => {
            let listener = TcpListener::bind(listen).await.map_err(|e| ChallengeError::Listen { addr: *listen, reason: e.to_string() })?;
            Some(tokio::spawn(serve_challenges(listener, tokens.clone())))
        }
        _ => None,
    };
    let mut published = Vec::new();
    let result = solve(order, challenge, retry, &tokens, &mut published).await;
    if let Some(server) = server {
        server.abort();
    }
    for p in &published {
        if let Some(file) = &p.file
            && let Err(e) = std::fs::remove_file(file)
        {
            tracing::warn!(path = %file.display(), error = %e, "cannot remove the http-01 challenge file");
        }
        if let ChallengeSpec::Dns01 { hook, timeout, .. } = challenge
            && let Err(e) = run_hook(hook, "cleanup", &p.key, &p.value, *timeout).await
        {
            tracing::warn!(identifier = %p.identifier, error = %e, "dns-01 cleanup failed; the TXT record may remain");
        }
    }
    result
}

async fn solve(
    order: &mut Order,
    challenge: &ChallengeSpec,
    retry: &RetryPolicy,
    tokens: &Tokens,
    published: &mut Vec<Published>,
) -> Result<(), ChallengeError> {
    let kind = match challenge {
        ChallengeSpec::Dns01 { .. } => ChallengeType::Dns01,
        _ => ChallengeType::Http01,
    };
    let kind_name = if kind == ChallengeType::Dns01 { "dns-01" } else { "http-01" };
    // First pass: publish every response, so that all are in place before any is checked
    // (a wildcard and its base name share one TXT record name).
    // A pass the CA interrupts by refusing nonces starts again; what it already did is skipped.
    let mut rounds = 1;
    'publish: loop {
        let mut auths = order.authorizations();
        while let Some(auth) = auths.next().await {
            let mut auth = match auth {
                Err(e) if is_bad_nonce(&e) && rounds < NONCE_ROUNDS => {
                    rounds += 1;
                    continue 'publish;
                }
                other => other.map_err(acme("cannot fetch an authorization"))?,
            };
            let identifier = auth.identifier().to_string();
            if published.iter().any(|p| p.identifier == identifier) {
                continue;
            }
            match auth.status {
                AuthorizationStatus::Valid => continue,
                AuthorizationStatus::Pending => {}
                other => return Err(ChallengeError::Authorization { identifier, status: format!("{other:?}").to_lowercase() }),
            }
            let domain = match auth.identifier().identifier {
                Identifier::Dns(d) => d.clone(),
                _ => return Err(ChallengeError::NotDns { identifier }),
            };
            let ch = auth.challenge(kind.clone()).ok_or(ChallengeError::NoChallenge { identifier: identifier.clone(), kind: kind_name })?;
            let key_auth = ch.key_authorization();
            let token = ch.token.clone();
            match challenge {
                ChallengeSpec::Http01Listener { .. } => {
                    if let Ok(mut m) = tokens.lock() {
                        m.insert(token.clone(), key_auth.as_str().to_string());
                    }
                    published.push(Published { identifier, kind: kind.clone(), key: token, value: String::new(), file: None });
                }
                ChallengeSpec::Http01Webroot { webroot } => {
                    let file = write_webroot(webroot, &token, key_auth.as_str())?;
                    published.push(Published { identifier, kind: kind.clone(), key: token, value: String::new(), file: Some(file) });
                }
                ChallengeSpec::Dns01 { hook, timeout, .. } => {
                    let fqdn = dns_record_name(&domain);
                    let value = key_auth.dns_value();
                    run_hook(hook, "present", &fqdn, &value, *timeout).await?;
                    tracing::info!(identifier = %identifier, record = %fqdn, "dns-01 TXT record presented");
                    published.push(Published { identifier, kind: kind.clone(), key: fqdn, value, file: None });
                }
            }
        }
        break;
    }
    if let ChallengeSpec::Dns01 { check: Some(check), .. } = challenge
        && !published.is_empty()
    {
        wait_visible(published, check).await?;
    }
    if let ChallengeSpec::Dns01 { propagation_delay, .. } = challenge
        && !published.is_empty()
        && !propagation_delay.is_zero()
    {
        tokio::time::sleep(*propagation_delay).await;
    }
    // Second pass: ask for validation (§7.5.1).
    let mut rounds = 1;
    let mut ready: Vec<String> = Vec::new();
    'validate: loop {
        let mut auths = order.authorizations();
        while let Some(auth) = auths.next().await {
            let mut auth = match auth {
                Err(e) if is_bad_nonce(&e) && rounds < NONCE_ROUNDS => {
                    rounds += 1;
                    continue 'validate;
                }
                other => other.map_err(acme("cannot fetch an authorization"))?,
            };
            let identifier = auth.identifier().to_string();
            if auth.status != AuthorizationStatus::Pending || ready.contains(&identifier) {
                continue;
            }
            let mut ch =
                auth.challenge(kind.clone()).ok_or(ChallengeError::NoChallenge { identifier: identifier.clone(), kind: kind_name })?;
            fresh_nonce!(ch.set_ready().await).map_err(acme("cannot mark the challenge ready"))?;
            ready.push(identifier);
        }
        break;
    }
    debug_assert!(published.iter().all(|p| p.kind == kind));
    let status = fresh_nonce!(order.poll_ready(retry).await).map_err(acme("waiting for the ACME order to become ready"))?;
    if status == OrderStatus::Ready {
        return Ok(());
    }
    let mut why = Vec::new();
    let mut auths = order.authorizations();
    while let Some(Ok(auth)) = auths.next().await {
        for ch in &auth.challenges {
            if let Some(p) = &ch.error {
                why.push(format!("{}: {p}", auth.identifier()));
            }
        }
    }
    Err(ChallengeError::Failed {
        status: format!("{status:?}").to_lowercase(),
        reasons: if why.is_empty() { "no reason given".to_string() } else { why.join("; ") },
    })
}

/// Token → key authorization of the HTTP-01 challenges being answered.
pub type Tokens = Arc<Mutex<HashMap<String, String>>>;

/// Serves `GET /.well-known/acme-challenge/<token>`; everything else is 404. Requests are
/// bounded in size, time and number of concurrent connections.
pub async fn serve_challenges(listener: TcpListener, tokens: Tokens) {
    let permits = Arc::new(tokio::sync::Semaphore::new(32));
    loop {
        let Ok((mut sock, _)) = listener.accept().await else { continue };
        let Ok(permit) = permits.clone().try_acquire_owned() else { continue };
        let tokens = tokens.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut buf = vec![0u8; 8192];
            let mut len = 0;
            let read = tokio::time::timeout(Duration::from_secs(10), async {
                while len < buf.len() {
                    let n = sock.read(&mut buf[len..]).await.ok()?;
                    if n == 0 {
                        return None;
                    }
                    len += n;
                    if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                        return Some(());
                    }
                }
                None
            })
            .await;
            let body = match read {
                Ok(Some(())) => {
                    let head = String::from_utf8_lossy(&buf[..len]);
                    let mut parts = head.lines().next().unwrap_or_default().split(' ');
                    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
                    let token = target.strip_prefix("/.well-known/acme-challenge/");
                    match (method, token) {
                        ("GET", Some(t)) => tokens.lock().ok().and_then(|m| m.get(t).cloned()),
                        _ => None,
                    }
                }
                _ => None,
            };
            let rsp = match body {
                Some(b) => format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
                    b.len()
                ),
                None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
            };
            let _ = tokio::time::timeout(Duration::from_secs(10), sock.write_all(rsp.as_bytes())).await;
            let _ = sock.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn challenge_listener_serves_only_known_tokens() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tokens: Tokens = Arc::default();
        tokens.lock().unwrap().insert("abc".into(), "abc.thumb".into());
        let server = tokio::spawn(serve_challenges(listener, tokens));
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let ok = get("/.well-known/acme-challenge/abc").await;
        assert!(ok.starts_with("HTTP/1.1 200") && ok.ends_with("abc.thumb"), "{ok}");
        assert!(get("/.well-known/acme-challenge/nope").await.starts_with("HTTP/1.1 404"));
        assert!(get("/").await.starts_with("HTTP/1.1 404"));
        server.abort();
    }
}
