//! `daemon:`: the HTTP listener, its token, shutdown, and which metric names `/metrics` speaks.

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
    /// A second token that opens the status page (`/ui/`) read-only: it can look, never
    /// acknowledge or silence, and it is refused by /api/v1. Same reference forms as `token`.
    #[serde(default)]
    pub viewer_token: Option<String>,
    /// How long a status-page sign-in lasts (its session cookie's lifetime), 5m to 7d.
    #[serde(default = "default_session_lifetime")]
    pub session_lifetime: DurationSpec,
    /// On SIGTERM, how long a running job may take to finish before the daemon exits anyway
    /// (the job's committed work is kept; the run is recorded as interrupted).
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: DurationSpec,
    /// This daemon's name among several sharing one PostgreSQL store (in the leader lease, job
    /// runs and work claims). Default: the host name. Daemons on one host need distinct names.
    #[serde(default)]
    pub node_name: Option<String>,
    /// With several daemons on one PostgreSQL store, how long the leader lease lasts without a
    /// renewal (renewed every third of it): the longest the leader's work waits after the
    /// leader dies is about twice this. 1s to 5m.
    #[serde(default = "default_lease")]
    pub lease: DurationSpec,
    /// `/metrics`.
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// `daemon.metrics`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Which x509-certificate-exporter metric names to expose: `v3` (the names before
    /// exporter v4: `x509_read_errors`, no per-source or CRL families), `v4` (v4's names only:
    /// `x509_source_*`, `x509_crl_*`, Kubernetes labels) or `both` (the default). The
    /// `certvigil_*` families are always there.
    #[serde(default)]
    pub compat: MetricsCompat,
}

/// The exporter generation `/metrics` speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetricsCompat {
    V3,
    V4,
    #[default]
    Both,
}

impl MetricsCompat {
    /// The v3-only families (`x509_read_errors`) are exposed.
    pub fn v3(self) -> bool {
        matches!(self, MetricsCompat::V3 | MetricsCompat::Both)
    }
    /// The v4 families and labels are exposed.
    pub fn v4(self) -> bool {
        matches!(self, MetricsCompat::V4 | MetricsCompat::Both)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            MetricsCompat::V3 => "v3",
            MetricsCompat::V4 => "v4",
            MetricsCompat::Both => "both",
        }
    }
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            listen: default_listen(),
            allow_remote: false,
            token: None,
            viewer_token: None,
            session_lifetime: default_session_lifetime(),
            shutdown_timeout: default_shutdown_timeout(),
            node_name: None,
            lease: default_lease(),
            metrics: MetricsConfig::default(),
        }
    }
}

pub(crate) fn default_listen() -> String {
    "127.0.0.1:9797".into()
}

pub(crate) fn default_session_lifetime() -> DurationSpec {
    DurationSpec::Text("12h".into())
}

pub(crate) fn default_shutdown_timeout() -> DurationSpec {
    DurationSpec::Text("30s".into())
}

pub(crate) fn default_lease() -> DurationSpec {
    DurationSpec::Text("15s".into())
}

/// Validated daemon settings.
#[derive(Debug, Clone)]
pub struct DaemonSpec {
    /// `None`: no HTTP server.
    pub listen: Option<std::net::SocketAddr>,
    pub token: Option<SecretRef>,
    /// Opens the status page read-only.
    pub viewer_token: Option<SecretRef>,
    pub session_lifetime: std::time::Duration,
    pub shutdown_timeout: std::time::Duration,
    /// Set by the configuration; the daemon falls back to the host name.
    pub node_name: Option<String>,
    pub lease: std::time::Duration,
    /// `daemon.metrics.compat`.
    pub metrics_compat: MetricsCompat,
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
    let mut secret = |field: &str, value: &Option<String>| match value.as_deref().map(SecretRef::parse) {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err(m)) => {
            errs.push((at(field), m));
            None
        }
    };
    let token = secret("token", &d.token);
    let viewer_token = secret("viewer_token", &d.viewer_token);
    if viewer_token.is_some() && viewer_token == token {
        errs.push((at("viewer_token"), "is the same reference as daemon.token: the read-only token must differ".into()));
    }
    let session_lifetime = match d.session_lifetime.duration() {
        Ok(t) if (300..=7 * 86_400).contains(&t.as_secs()) => t,
        Ok(_) => {
            errs.push((at("session_lifetime"), "must be from 5m to 7d".into()));
            std::time::Duration::from_secs(12 * 3600)
        }
        Err(m) => {
            errs.push((at("session_lifetime"), m));
            std::time::Duration::from_secs(12 * 3600)
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
    let node_name = match d.node_name.as_deref() {
        None => None,
        Some(n) if !n.is_empty() && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) => {
            Some(n.to_string())
        }
        Some(_) => {
            errs.push((at("node_name"), "must be 1 to 64 letters, digits, '-', '_', '.' or ':'".into()));
            None
        }
    };
    let lease = match d.lease.duration() {
        Ok(t) if (1..=300).contains(&t.as_secs()) => t,
        Ok(_) => {
            errs.push((at("lease"), "must be from 1s to 5m".into()));
            std::time::Duration::from_secs(15)
        }
        Err(m) => {
            errs.push((at("lease"), m));
            std::time::Duration::from_secs(15)
        }
    };
    DaemonSpec { listen, token, viewer_token, session_lifetime, shutdown_timeout, node_name, lease, metrics_compat: d.metrics.compat }
}
