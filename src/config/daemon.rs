//! `daemon:`: the HTTP listener, its token, shutdown.

use super::*;

/// `certvigil run`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// HTTP listen address (metrics, health, API). Loopback unless `allow_remote` is set; `off`
    /// disables the server.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Allow a non-loopback `listen` address. Off by default: put a TLS-terminating proxy in
    /// front before exposing the API.
    #[serde(default)]
    pub allow_remote: bool,
    /// Bearer token for the API (`${env:NAME}` or `${file:/path}`); without one, /api/v1 answers
    /// 401 to everything. /healthz, /readyz and /metrics need no token.
    #[serde(default)]
    pub token: Option<String>,
    /// On SIGTERM, how long a running job may take to finish before the daemon exits anyway
    /// (the job's committed work is kept; the run is recorded as interrupted).
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: DurationSpec,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig { listen: default_listen(), allow_remote: false, token: None, shutdown_timeout: default_shutdown_timeout() }
    }
}

pub(crate) fn default_listen() -> String {
    "127.0.0.1:9797".into()
}

pub(crate) fn default_shutdown_timeout() -> DurationSpec {
    DurationSpec::Text("30s".into())
}

/// Validated daemon settings.
#[derive(Debug, Clone)]
pub struct DaemonSpec {
    /// `None`: no HTTP server.
    pub listen: Option<std::net::SocketAddr>,
    pub token: Option<SecretRef>,
    pub shutdown_timeout: std::time::Duration,
}

pub(crate) fn validate_daemon(d: &DaemonConfig, errs: &mut Vec<PathedError>) -> DaemonSpec {
    let at = |f: &str| vec!["daemon".to_string(), f.to_string()];
    let listen = match d.listen.trim() {
        "off" => None,
        text => match text.parse::<std::net::SocketAddr>() {
            Ok(a) if !a.ip().is_loopback() && !d.allow_remote => {
                errs.push((at("listen"), format!("`{text}` is not a loopback address; set daemon.allow_remote: true to expose the API")));
                None
            }
            Ok(a) => Some(a),
            Err(_) => {
                errs.push((at("listen"), format!("`{text}` is not an address:port (example: 127.0.0.1:9797) or `off`")));
                None
            }
        },
    };
    let token = match d.token.as_deref().map(SecretRef::parse) {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err(m)) => {
            errs.push((at("token"), m));
            None
        }
    };
    let shutdown_timeout = match d.shutdown_timeout.duration() {
        Ok(t) if t.as_secs() <= 3600 => t,
        Ok(_) => {
            errs.push((at("shutdown_timeout"), "must be at most 1h".into()));
            std::time::Duration::from_secs(30)
        }
        Err(m) => {
            errs.push((at("shutdown_timeout"), m));
            std::time::Duration::from_secs(30)
        }
    };
    DaemonSpec { listen, token, shutdown_timeout }
}
