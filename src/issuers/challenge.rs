//! Proving control of identifiers (RFC 8555 §8): the built-in HTTP-01 listener, and
//! [`authorize`], which answers an order's pending authorizations and waits for it to be ready.
//!
//! The listener answers `GET /.well-known/acme-challenge/<token>` with the key authorization
//! for tokens of the orders in progress (§8.3) and 404 for everything else. Requests are bounded
//! in size, time and number of concurrent connections.

use anyhow::{Context, Result, anyhow, bail};
use instant_acme::{AuthorizationStatus, ChallengeType, Order, OrderStatus, RetryPolicy};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

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

/// Answers every pending authorization of `order` with HTTP-01 (RFC 8555 §7.5.1, §8.3) through
/// `tokens` (served by [`serve_challenges`]) and waits until the order is `ready`. An order that
/// becomes invalid is an error naming each challenge's problem.
pub async fn authorize(order: &mut Order, tokens: &Tokens, retry: &RetryPolicy) -> Result<()> {
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
    let status = order.poll_ready(retry).await.context("waiting for the ACME order to become ready")?;
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
    Ok(())
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
