//! HTTP receivers: a generic signed JSON webhook, Slack incoming webhooks, PagerDuty Events v2.

use super::{Message, Notifier, SendError, render};
use crate::config::alerts::Value;
use crate::config::secret::SecretRef;
use hmac::{KeyInit, Mac};
use std::time::Duration;

type Fut<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), SendError>> + Send + 'a>>;

async fn post(
    http: &reqwest::Client,
    url: &str,
    timeout: Duration,
    headers: Vec<(&'static str, String)>,
    body: String,
) -> Result<(), SendError> {
    let mut req = http.post(url).timeout(timeout).header(reqwest::header::CONTENT_TYPE, "application/json");
    for (k, v) in headers {
        req = req.header(k, v);
    }
    // The URL may carry a token (Slack): errors name the host only.
    let host = reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
    let resp = req.body(body).send().await.map_err(|e| SendError::Http {
        host: host.clone(),
        reason: if e.is_timeout() { "timed out".to_string() } else { e.without_url().to_string() },
    })?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        let text = resp.text().await.unwrap_or_default();
        Err(SendError::Http {
            host,
            reason: format!(
                "HTTP {}{}",
                status.as_u16(),
                if text.is_empty() { String::new() } else { format!(": {}", text.chars().take(200).collect::<String>()) }
            ),
        })
    }
}

/// HMAC-SHA256 over `timestamp.body`, hex: the `v1=` value of `X-Certvigil-Signature`.
/// Receivers recompute it and reject stale timestamps (replay protection).
pub fn signature(secret: &[u8], timestamp: i64, body: &str) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Generic JSON webhook: `{"key", "subject", "items": [...]}`, signed when a secret is set.
pub struct Webhook {
    pub http: reqwest::Client,
    pub url: Value,
    pub secret: Option<SecretRef>,
    pub timeout: Duration,
}

impl Notifier for Webhook {
    fn send<'a>(&'a self, m: &'a Message) -> Fut<'a> {
        Box::pin(async move {
            let url = self.url.resolve().map_err(SendError::Setup)?;
            let body = serde_json::json!({"key": m.key, "subject": render::subject(&m.items), "severity": render::severity(&m.items), "items": m.items}).to_string();
            let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
            let mut headers = vec![("Idempotency-Key", m.key.clone()), ("X-Certvigil-Timestamp", ts.to_string())];
            if let Some(s) = &self.secret {
                let key = s.resolve().map_err(|e| SendError::Setup(e.to_string()))?;
                headers.push(("X-Certvigil-Signature", format!("t={ts},v1={}", signature(key.expose().as_bytes(), ts, &body))));
            }
            post(&self.http, &url, self.timeout, headers, body).await
        })
    }
}

/// Slack incoming webhook with Block Kit sections.
pub struct Slack {
    pub http: reqwest::Client,
    pub url: Value,
    pub timeout: Duration,
}

impl Notifier for Slack {
    fn send<'a>(&'a self, m: &'a Message) -> Fut<'a> {
        Box::pin(async move {
            let url = self.url.resolve().map_err(SendError::Setup)?;
            let subject = render::subject(&m.items);
            let mut blocks = vec![
                serde_json::json!({"type": "header", "text": {"type": "plain_text", "text": subject.chars().take(150).collect::<String>()}}),
            ];
            for i in m.items.iter().take(40) {
                let mut line = format!("*{}* {} — `{}`\n{}\n_{}_", i.severity.to_uppercase(), i.kind, i.subject_name(), i.reason, i.action);
                if let Some(o) = render::owner(i) {
                    line.push_str(&format!("\nowner: {o}"));
                }
                blocks.push(serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": line}}));
            }
            let body = serde_json::json!({"text": subject, "blocks": blocks}).to_string();
            post(&self.http, &url, self.timeout, vec![], body).await
        })
    }
}

/// PagerDuty Events API v2: one event per notification; `resolved` resolves the incident with
/// the same stable dedup key (certificate + finding kind).
pub struct PagerDuty {
    pub http: reqwest::Client,
    pub url: String,
    pub routing_key: SecretRef,
    pub timeout: Duration,
}

impl Notifier for PagerDuty {
    fn send<'a>(&'a self, m: &'a Message) -> Fut<'a> {
        Box::pin(async move {
            let key = self.routing_key.resolve().map_err(|e| SendError::Setup(e.to_string()))?;
            for i in &m.items {
                let event = i.event.as_str();
                let action = if event == "resolved" { "resolve" } else { "trigger" };
                let severity = match i.severity.as_str() {
                    "critical" => "critical",
                    "warning" => "warning",
                    _ => "info",
                };
                let body = serde_json::json!({
                    "routing_key": key.expose(),
                    "event_action": action,
                    "dedup_key": i.dedup_key,
                    "payload": {
                        "summary": render::subject(std::slice::from_ref(i)).chars().take(1000).collect::<String>(),
                        "source": "certvigil",
                        "severity": severity,
                        "component": i.subject_name(),
                        "group": i.sources,
                        "class": i.kind,
                        "custom_details": {
                            "reason": i.reason,
                            "action": i.action,
                            "fingerprint": i.certificate.as_ref().map(|c| &c.fingerprint),
                            "not_after": i.certificate.as_ref().map(|c| &c.not_after_rfc3339),
                            "event": event,
                            "owner": i.owner,
                            "owner_contact": i.owner_contact,
                            "subject": i.subject,
                        },
                    },
                })
                .to_string();
                post(&self.http, &self.url, self.timeout, vec![("Idempotency-Key", m.key.clone())], body).await?;
            }
            Ok(())
        })
    }
}
