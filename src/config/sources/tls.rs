//! `kind: tls` — TLS endpoints: the chain a server presents, checked as a client would.

use super::super::{DurationSpec, PathedError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// TLS endpoints to connect to.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsSource {
    /// Unique name of this source (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Endpoints: `host:port` (IPv6 as `[::1]:443`), or `{address: host:port, sni: name,
    /// starttls: smtp|imap|ldap}`.
    pub targets: Vec<TlsTarget>,
    /// PEM file of CA certificates to verify the served chains against, instead of the
    /// system's trust store.
    #[serde(default)]
    pub ca_bundle: Option<String>,
    /// Per-endpoint timeout (connect, STARTTLS and handshake together).
    #[serde(default = "default_timeout")]
    pub timeout: DurationSpec,
    /// Endpoints contacted at once.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 256))]
    pub concurrency: u32,
    /// Labels attached to every certificate seen by this source.
    #[serde(default)]
    pub tags: Vec<String>,
}

fn default_timeout() -> DurationSpec {
    DurationSpec::Text("10s".into())
}

fn default_concurrency() -> u32 {
    16
}

/// One endpoint.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum TlsTarget {
    /// `host:port`.
    Address(String),
    Detailed(TlsTargetDetail),
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsTargetDetail {
    /// `host:port` to connect to.
    pub address: String,
    /// Server name sent in SNI and verified against the certificate (default: the host).
    #[serde(default)]
    pub sni: Option<String>,
    /// Upgrade a plain connection first: `smtp` (RFC 3207), `imap` (RFC 3501 §6.2.1) or `ldap`
    /// (RFC 4511 §4.14).
    #[serde(default)]
    pub starttls: Option<StartTls>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StartTls {
    Smtp,
    Imap,
    Ldap,
}

impl StartTls {
    pub fn as_str(self) -> &'static str {
        match self {
            StartTls::Smtp => "smtp",
            StartTls::Imap => "imap",
            StartTls::Ldap => "ldap",
        }
    }
}

/// A validated endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// The name verified and sent in SNI (an IP address is verified but not sent).
    pub server_name: String,
    pub starttls: Option<StartTls>,
}

impl Endpoint {
    /// The object location: `tls://host:port`, with the server name and STARTTLS protocol
    /// when they are not the defaults.
    pub fn location(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let mut l = format!("tls://{host}:{}", self.port);
        if self.server_name != self.host {
            l.push_str(&format!("?sni={}", self.server_name));
        }
        if let Some(s) = self.starttls {
            l.push_str(if self.server_name != self.host { "&" } else { "?" });
            l.push_str(&format!("starttls={}", s.as_str()));
        }
        l
    }
}

/// Validated TLS source.
#[derive(Debug, Clone)]
pub struct TlsSpec {
    pub name: String,
    pub tags: Vec<String>,
    pub endpoints: Vec<Endpoint>,
    pub ca_bundle: Option<std::path::PathBuf>,
    pub timeout: std::time::Duration,
    pub concurrency: usize,
}

/// `host:port`, `[v6]:port`.
fn split_address(a: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").ok_or_else(|| format!("`{a}`: write IPv6 addresses as [addr]:port"))?;
        (h.to_string(), p)
    } else {
        let (h, p) = a.rsplit_once(':').ok_or_else(|| format!("`{a}` has no port (host:port)"))?;
        (h.to_string(), p)
    };
    let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(|| format!("`{a}`: `{port}` is not a port"))?;
    let name_ok = !host.is_empty()
        && (host.parse::<std::net::IpAddr>().is_ok()
            || host.split('.').all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')));
    if !name_ok {
        return Err(format!("`{host}` is neither a host name nor an IP address"));
    }
    Ok((host, port))
}

pub fn validate(t: &TlsSource, base: &std::path::Path, at: &dyn Fn(&str) -> Vec<String>, errs: &mut Vec<PathedError>) -> Option<TlsSpec> {
    let before = errs.len();
    if t.targets.is_empty() {
        errs.push((at("targets"), "at least one target is required".into()));
    }
    let mut endpoints = Vec::new();
    for (i, target) in t.targets.iter().enumerate() {
        let mut path = at("targets");
        path.push(i.to_string());
        let (address, sni, starttls) = match target {
            TlsTarget::Address(a) => (a.as_str(), None, None),
            TlsTarget::Detailed(d) => (d.address.as_str(), d.sni.as_deref(), d.starttls),
        };
        match split_address(address) {
            Ok((host, port)) => {
                if let Some(s) = sni
                    && split_address(&format!("{s}:1")).is_err()
                {
                    let mut p = path.clone();
                    p.push("sni".into());
                    errs.push((p, format!("`{s}` is not a host name")));
                }
                let e = Endpoint { server_name: sni.unwrap_or(&host).to_string(), host, port, starttls };
                if endpoints.contains(&e) {
                    errs.push((path, format!("`{address}` is listed twice")));
                } else {
                    endpoints.push(e);
                }
            }
            Err(m) => errs.push((path, m)),
        }
    }
    let timeout = super::timeout(&t.timeout, std::time::Duration::from_secs(300), at("timeout"), errs);
    if t.concurrency == 0 || t.concurrency > 256 {
        errs.push((at("concurrency"), "must be between 1 and 256".into()));
    }
    if errs.len() > before {
        return None;
    }
    Some(TlsSpec {
        name: t.name.clone(),
        tags: t.tags.clone(),
        endpoints,
        ca_bundle: t.ca_bundle.as_ref().map(|p| base.join(p)),
        timeout,
        concurrency: t.concurrency as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(split_address("example.com:443"), Ok(("example.com".into(), 443)));
        assert_eq!(split_address("[::1]:8443"), Ok(("::1".into(), 8443)));
        assert_eq!(split_address("10.0.0.1:25"), Ok(("10.0.0.1".into(), 25)));
        assert!(split_address("example.com").is_err());
        assert!(split_address("example.com:0").is_err());
        assert!(split_address("exa mple.com:443").is_err());
        let e = Endpoint { host: "10.0.0.1".into(), port: 25, server_name: "mx.example".into(), starttls: Some(StartTls::Smtp) };
        assert_eq!(e.location(), "tls://10.0.0.1:25?sni=mx.example&starttls=smtp");
    }
}
