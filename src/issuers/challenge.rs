//! Proving control of identifiers (RFC 8555 §8): the built-in HTTP-01 listener.
//!
//! The listener answers `GET /.well-known/acme-challenge/<token>` with the key authorization
//! for tokens of the orders in progress (§8.3) and 404 for everything else. Requests are bounded
//! in size, time and number of concurrent connections.

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
