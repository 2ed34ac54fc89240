//! Email through SMTP (lettre): STARTTLS, implicit TLS, or plain to a loopback relay; optional
//! authentication; multipart text + HTML. The Message-ID is derived from the notification's
//! idempotency key, so a resend after a crash carries the same ID.

use super::{Message, Notifier, SendError, render};
use crate::config::SmtpTls;
use crate::config::alerts::Smtp;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use sha2::Digest;

pub struct Email {
    pub to: Vec<String>,
    pub from: String,
    pub smtp: Smtp,
}

impl Email {
    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, SendError> {
        crate::net::install_crypto_provider();
        let s = &self.smtp;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.as_str()).port(s.port).timeout(Some(s.timeout));
        if s.tls != SmtpTls::None {
            let mut params = TlsParameters::builder(s.host.clone());
            if let Some(ca) = &s.ca_file {
                let pem = std::fs::read(ca).map_err(|e| SendError::Setup(format!("ca_file {}: {e}", ca.display())))?;
                params = params.add_root_certificate(
                    Certificate::from_pem(&pem).map_err(|e| SendError::Setup(format!("ca_file {}: {e}", ca.display())))?,
                );
            }
            let params = params.build_rustls().map_err(|e| SendError::Setup(format!("TLS setup: {e}")))?;
            builder = builder.tls(if s.tls == SmtpTls::Tls { Tls::Wrapper(params) } else { Tls::Required(params) });
        }
        if let (Some(user), Some(pass)) = (&s.username, &s.password) {
            let secret = pass.resolve().map_err(|e| SendError::Setup(e.to_string()))?;
            builder = builder.credentials(Credentials::new(user.clone(), secret.expose().to_string()));
        }
        Ok(builder.build())
    }

    fn build(&self, m: &Message) -> Result<lettre::Message, SendError> {
        let from: Mailbox = self.from.parse().map_err(|e| SendError::Setup(format!("from {}: {e}", self.from)))?;
        let mut b = lettre::Message::builder().from(from).subject(render::subject(&m.items));
        for t in &self.to {
            b = b.to(t.parse::<Mailbox>().map_err(|e| SendError::Setup(format!("to {t}: {e}")))?);
        }
        let id = hex::encode(&sha2::Sha256::digest(m.key.as_bytes())[..16]);
        b = b.message_id(Some(format!("<{id}@certvigil>"))).header(IdempotencyKey(m.key.clone()));
        b.multipart(MultiPart::alternative_plain_html(render::text(&m.items), render::html(&m.items)))
            .map_err(|e| SendError::Setup(e.to_string()))
    }
}

/// `X-Certvigil-Key`: the idempotency key, for receivers that deduplicate.
#[derive(Clone)]
struct IdempotencyKey(String);

impl lettre::message::header::Header for IdempotencyKey {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("X-Certvigil-Key")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(IdempotencyKey(s.to_string()))
    }
    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), self.0.clone())
    }
}

impl Notifier for Email {
    fn send<'a>(&'a self, message: &'a Message) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), SendError>> + Send + 'a>> {
        Box::pin(async move {
            let email = self.build(message)?;
            let transport = self.transport()?;
            transport.send(email).await.map(|_| ()).map_err(|e| {
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    // lettre's messages already name some of their causes: don't repeat them.
                    let t = s.to_string();
                    if !msg.contains(&t) {
                        msg = format!("{msg}: {t}");
                    }
                    src = s.source();
                }
                // RFC 4954 §6: 530, 534, 535 and 454 are the server refusing the login, whatever
                // its reply text says.
                let auth = e.status().map(|c| c.to_string()).is_some_and(|c| ["530", "534", "535", "454"].contains(&c.as_str()));
                SendError::Smtp { host: self.smtp.host.clone(), port: self.smtp.port, auth, message: msg }
            })
        })
    }
}
