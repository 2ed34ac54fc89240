//! Configuration: YAML types (what an admin writes), loading with positioned errors, and pure
//! validation into [`Settings`] (what the program uses).
//!
//! Loading reports every error at once — syntax, unknown keys, wrong types (checked against the
//! JSON Schema generated from these types), and semantic checks — each as
//! `file:line:column: key.path: message`.

pub mod alerts;
pub mod managed;
pub mod policy;
pub mod schedule;
pub mod schema_check;
pub mod secret;
pub mod sources;
pub mod yaml;

use schemars::JsonSchema;
use secret::SecretRef;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// Largest configuration file accepted.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The root of `certvigil.yaml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where certvigil keeps its state.
    #[serde(default, deserialize_with = "null_is_default")]
    pub store: StoreConfig,
    /// When a certificate counts as expiring.
    #[serde(default, deserialize_with = "null_is_default")]
    pub thresholds: Thresholds,
    /// Where certificates are looked for.
    #[serde(default, deserialize_with = "null_is_default")]
    pub sources: Vec<SourceConfig>,
    /// How revocation status is checked (CRL and OCSP).
    #[serde(default, deserialize_with = "null_is_default")]
    pub revocation: RevocationConfig,
    /// What counts as a finding beyond the expiry thresholds.
    #[serde(default, deserialize_with = "null_is_default")]
    pub policy: PolicyConfig,
    /// Where findings are sent: receivers and the routes that choose them.
    #[serde(default, deserialize_with = "null_is_default")]
    pub alerts: AlertsConfig,
    /// Scheduled jobs of the daemon; when none is given, the defaults shown by
    /// `certvigil schedule` apply.
    #[serde(default, deserialize_with = "null_is_default")]
    pub jobs: Vec<JobConfig>,
    /// The long-running service (`certvigil run`): HTTP server and shutdown.
    #[serde(default, deserialize_with = "null_is_default")]
    pub daemon: DaemonConfig,
    /// Certificates certvigil obtains and renews itself (ACME) and installs as files.
    #[serde(default, deserialize_with = "null_is_default")]
    pub managed: Vec<managed::ManagedConfig>,
}

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

fn default_listen() -> String {
    "127.0.0.1:9797".into()
}

fn default_shutdown_timeout() -> DurationSpec {
    DurationSpec::Text("30s".into())
}

/// Validated daemon settings.
#[derive(Debug, Clone)]
pub struct DaemonSettings {
    /// `None`: no HTTP server.
    pub listen: Option<std::net::SocketAddr>,
    pub token: Option<SecretRef>,
    pub shutdown_timeout: std::time::Duration,
}

fn validate_daemon(d: &DaemonConfig, errs: &mut Vec<PathedError>) -> DaemonSettings {
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
    DaemonSettings { listen, token, shutdown_timeout }
}

/// One scheduled job.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// Unique name (letters, digits, `-`, `_`, `.`).
    pub name: String,
    pub kind: JobKind,
    /// A crontab line: 5 fields (minute hour day month weekday), 6 with seconds first, or
    /// `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.
    pub schedule: String,
    /// IANA time zone the expression is read in (default UTC).
    #[serde(default)]
    pub timezone: Option<String>,
    /// Start each run up to this much later, at random, so that many hosts do not fire at once.
    #[serde(default)]
    pub jitter: Option<DurationSpec>,
    /// For `scan` jobs: only these sources (default: all).
    #[serde(default)]
    pub sources: Vec<String>,
    /// A run missed while the daemon was down: run it `once` at start, or `skip` it.
    #[serde(default)]
    pub catch_up: CatchUp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Scan sources into the inventory.
    Scan,
    /// Check revocation status.
    Revocation,
    /// Renew the managed certificates that are due (ACME) and install them.
    Renew,
    /// Run the policy and send due notifications.
    Evaluate,
    /// Send digest routes' queued notifications.
    Digest,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Scan => "scan",
            JobKind::Revocation => "revocation",
            JobKind::Renew => "renew",
            JobKind::Evaluate => "evaluate",
            JobKind::Digest => "digest",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    #[default]
    Once,
    Skip,
}

/// A validated job.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub kind: JobKind,
    pub schedule: schedule::Schedule,
    pub jitter: i64,
    pub sources: Vec<String>,
    pub catch_up: CatchUp,
    /// From the built-in defaults rather than the configuration.
    pub default: bool,
}

/// The jobs that run when the configuration names none.
pub const DEFAULT_JOBS: &[(&str, JobKind, &str)] = &[
    ("scan", JobKind::Scan, "*/30 * * * *"),
    ("revocation", JobKind::Revocation, "15 */4 * * *"),
    ("renew", JobKind::Renew, "20 * * * *"),
    ("evaluate", JobKind::Evaluate, "5,35 * * * *"),
    ("digest", JobKind::Digest, "0 8 * * 1-5"),
];

fn validate_jobs(config: &Config, errs: &mut Vec<PathedError>) -> Vec<Job> {
    if config.jobs.is_empty() {
        return DEFAULT_JOBS
            .iter()
            .filter_map(|(name, kind, expr)| {
                let schedule = schedule::Schedule::parse(expr, None).ok()?;
                Some(Job {
                    name: name.to_string(),
                    kind: *kind,
                    schedule,
                    jitter: 60,
                    sources: Vec::new(),
                    catch_up: CatchUp::Once,
                    default: true,
                })
            })
            .collect();
    }
    let mut jobs: Vec<Job> = Vec::new();
    for (i, j) in config.jobs.iter().enumerate() {
        let idx = i.to_string();
        let at = |f: &str| vec!["jobs".to_string(), idx.clone(), f.to_string()];
        if j.name.is_empty() || !j.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            errs.push((at("name"), format!("`{}` is not a valid job name", j.name)));
        } else if jobs.iter().any(|x| x.name == j.name) {
            errs.push((at("name"), format!("duplicate job name `{}`", j.name)));
        }
        // The zone and the expression are checked separately, so both errors are reported.
        let zone_ok = match j.timezone.as_deref().map(jiff::tz::TimeZone::get) {
            Some(Err(e)) => {
                errs.push((at("timezone"), format!("unknown time zone `{}`: {e}", j.timezone.as_deref().unwrap_or(""))));
                false
            }
            _ => true,
        };
        let schedule = match schedule::Schedule::parse(&j.schedule, j.timezone.as_deref().filter(|_| zone_ok)) {
            Ok(s) => Some(s).filter(|_| zone_ok),
            Err(m) => {
                errs.push((at("schedule"), m));
                None
            }
        };
        let jitter = match j.jitter.as_ref().map(DurationSpec::duration) {
            None => 0,
            Some(Ok(d)) => d.as_secs() as i64,
            Some(Err(m)) => {
                errs.push((at("jitter"), m));
                0
            }
        };
        for (k, s) in j.sources.iter().enumerate() {
            let known = config.sources.iter().any(|src| src.name() == s);
            if !known {
                errs.push((vec!["jobs".into(), idx.clone(), "sources".into(), k.to_string()], format!("no source named `{s}`")));
            }
        }
        if !j.sources.is_empty() && j.kind != JobKind::Scan {
            errs.push((at("sources"), "only scan jobs take sources".into()));
        }
        if let Some(schedule) = schedule {
            jobs.push(Job {
                name: j.name.clone(),
                kind: j.kind,
                schedule,
                jitter,
                sources: j.sources.clone(),
                catch_up: j.catch_up,
                default: false,
            });
        }
    }
    jobs
}

/// Alerting. Every notification is written to the store's outbox before it is sent and marked
/// sent only when the receiver accepted it; failures are retried with exponential backoff.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Where notifications can go.
    #[serde(default)]
    pub receivers: Vec<ReceiverConfig>,
    /// Which findings go to which receivers. A finding can match several routes.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// First retry delay after a failed delivery; it doubles on each failure.
    #[serde(default = "default_retry_initial")]
    pub retry_initial: DurationSpec,
    /// Longest delay between retries.
    #[serde(default = "default_retry_max")]
    pub retry_max: DurationSpec,
}

fn default_retry_initial() -> DurationSpec {
    DurationSpec::Text("30s".into())
}
fn default_retry_max() -> DurationSpec {
    DurationSpec::Text("1h".into())
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig { receivers: Vec::new(), routes: Vec::new(), retry_initial: default_retry_initial(), retry_max: default_retry_max() }
    }
}

/// One receiver; `kind` selects email, webhook, slack or pagerduty.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReceiverConfig {
    /// Email through an SMTP server.
    Email(EmailReceiverConfig),
    /// Generic JSON POST, signed with HMAC-SHA256 over the timestamp and body.
    Webhook(WebhookReceiverConfig),
    /// A Slack incoming webhook (Block Kit message).
    Slack(SlackReceiverConfig),
    /// PagerDuty Events API v2 (trigger and resolve with a stable dedup key).
    Pagerduty(PagerDutyReceiverConfig),
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailReceiverConfig {
    pub name: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Sender address.
    pub from: String,
    pub smtp: SmtpConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Default: 587 for starttls, 465 for tls, 25 for none.
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (default), `tls` (implicit, SMTPS) or `none` (plain; refused unless the host
    /// is a loopback address).
    #[serde(default)]
    pub tls: SmtpTls,
    #[serde(default)]
    pub username: Option<String>,
    /// `${env:NAME}` or `${file:/path}`.
    #[serde(default)]
    pub password: Option<String>,
    /// Extra CA certificate (PEM) trusted for the server's certificate.
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default = "default_notify_timeout")]
    pub timeout: DurationSpec,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    #[default]
    Starttls,
    Tls,
    None,
}

fn default_notify_timeout() -> DurationSpec {
    DurationSpec::Text("30s".into())
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookReceiverConfig {
    pub name: String,
    /// http(s) URL, or a secret reference holding it.
    pub url: String,
    /// HMAC-SHA256 key (`${env:NAME}` or `${file:/path}`); signs `timestamp.body` in the
    /// `X-Certvigil-Signature` header.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default = "default_notify_timeout")]
    pub timeout: DurationSpec,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackReceiverConfig {
    pub name: String,
    /// The incoming-webhook URL; it embeds a token, so prefer a secret reference.
    pub url: String,
    #[serde(default = "default_notify_timeout")]
    pub timeout: DurationSpec,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyReceiverConfig {
    pub name: String,
    /// The integration's routing key (`${env:NAME}` or `${file:/path}`).
    pub routing_key: String,
    /// Events API v2 endpoint.
    #[serde(default = "default_pagerduty_url")]
    pub url: String,
    #[serde(default = "default_notify_timeout")]
    pub timeout: DurationSpec,
}

fn default_pagerduty_url() -> String {
    "https://events.pagerduty.com/v2/enqueue".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RouteMode {
    /// Each notification is sent as soon as it is due.
    #[default]
    Immediate,
    /// Notifications wait for the `digest` job and go out as one message per receiver;
    /// severities at or above `immediate_severity` still go out at once.
    Digest,
}

/// Which findings a route takes; every list given must match.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteMatchConfig {
    /// `info`, `warning`, `critical`.
    #[serde(default)]
    pub severity: Vec<String>,
    /// Finding kinds (`expiring`, `expired`, `revoked`, `key-too-old`, …).
    #[serde(default)]
    pub kind: Vec<String>,
    #[serde(default)]
    pub source: Vec<String>,
    #[serde(default)]
    pub tag: Vec<String>,
    #[serde(default)]
    pub eku: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: String,
    #[serde(default, rename = "match")]
    pub matcher: RouteMatchConfig,
    /// Receiver names.
    pub receivers: Vec<String>,
    #[serde(default)]
    pub mode: RouteMode,
    /// For digest routes: findings of this severity or above are sent at once.
    #[serde(default = "default_immediate_severity")]
    pub immediate_severity: String,
    /// Re-notify a still-firing, unacknowledged alert after this long (per severity);
    /// unset means never.
    #[serde(default)]
    pub renotify: RenotifyConfig,
    /// Escalate an alert that nobody acknowledged within this long…
    #[serde(default)]
    pub escalate_after: Option<DurationSpec>,
    /// …to this route's receivers.
    #[serde(default)]
    pub escalate_to: Option<String>,
    /// Send a notice when the finding is gone.
    #[serde(default = "yes")]
    pub resolve_notice: bool,
    /// This route only receives escalations from other routes; it matches no finding itself.
    #[serde(default)]
    pub escalation_only: bool,
}

fn default_immediate_severity() -> String {
    "critical".into()
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenotifyConfig {
    #[serde(default = "default_renotify_critical")]
    pub critical: Option<DurationSpec>,
    #[serde(default = "default_renotify_warning")]
    pub warning: Option<DurationSpec>,
    #[serde(default)]
    pub info: Option<DurationSpec>,
}

fn default_renotify_critical() -> Option<DurationSpec> {
    Some(DurationSpec::Text("24h".into()))
}
fn default_renotify_warning() -> Option<DurationSpec> {
    Some(DurationSpec::Text("7d".into()))
}

impl Default for RenotifyConfig {
    fn default() -> Self {
        RenotifyConfig { critical: default_renotify_critical(), warning: default_renotify_warning(), info: None }
    }
}

/// Revocation checking. Every CRL and OCSP response is verified against the issuing CA;
/// anything that cannot be verified gives `unknown`, never `good`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevocationConfig {
    /// The method asked first: `auto` (the CRL when the certificate has a distribution point —
    /// one download answers for every certificate under it — else OCSP), `ocsp` or `crl`.
    #[serde(default)]
    pub prefer: RevocationMethod,
    /// Ask the other method when the preferred one gives no answer.
    #[serde(default = "yes")]
    pub fallback: bool,
    /// Extra CRLs to use besides the certificates' distribution points: http(s) URLs, file://
    /// URLs or paths (relative to this file). Each applies to the certificates of its issuer.
    #[serde(default)]
    pub crls: Vec<String>,
    /// Timeout of one HTTP request (CRL download, OCSP query, issuer fetch).
    #[serde(default = "default_timeout")]
    pub timeout: DurationSpec,
    /// Largest CRL accepted.
    #[serde(default = "default_max_crl_size")]
    pub max_crl_size: ByteSize,
    /// How long past its nextUpdate a CRL still gives status (then: unknown, stale).
    #[serde(default = "default_stale_grace")]
    pub stale_grace: DurationSpec,
    /// Tolerated clock difference for thisUpdate in the future and nextUpdate in the past.
    #[serde(default = "default_clock_skew")]
    pub clock_skew: DurationSpec,
    /// Send a nonce with OCSP requests and require it echoed (RFC 8954). Off by default:
    /// many responders serve pre-signed responses without nonces.
    #[serde(default)]
    pub ocsp_nonce: bool,
    /// Longest time an OCSP answer is reused, even when its nextUpdate is later.
    #[serde(default = "default_ocsp_max_cache")]
    pub ocsp_max_cache: DurationSpec,
    /// OCSP/CRL requests in flight at once.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 256))]
    pub concurrency: u32,
    /// Requests in flight at once to one host (`hosts` overrides it per host).
    #[serde(default = "default_per_host_concurrency")]
    #[schemars(range(min = 1, max = 256))]
    pub per_host_concurrency: u32,
    /// Minimum interval between two requests to the same host (0: no pacing beyond
    /// `per_host_concurrency`).
    #[serde(default = "default_per_host_interval")]
    pub per_host_interval: DurationSpec,
    /// Per-host limits, keyed by `host` or `host:port`: `{concurrency: N, interval: 100ms}`,
    /// for a public responder that asks for pacing or an internal one that takes more.
    #[serde(default)]
    pub hosts: std::collections::BTreeMap<String, HostLimitsConfig>,
    /// What an `unknown` status means for alerting: `finding` (default) or `ignore`.
    #[serde(default)]
    pub unknown: UnknownPolicy,
    /// Fetch issuer certificates from AIA caIssuers URLs when they are not in the inventory.
    #[serde(default = "yes")]
    pub fetch_issuers: bool,
    /// Smallest RSA key (bits) accepted as the signer of a CRL, an OCSP answer or a
    /// certificate whose status is checked. A signature by a shorter key gives `unknown` with
    /// "issuer key too weak", whatever the hash. At least 1024.
    #[serde(default = "default_min_issuer_rsa_bits")]
    #[schemars(range(min = 1024, max = 16384))]
    pub min_issuer_rsa_bits: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RevocationMethod {
    #[default]
    Auto,
    Ocsp,
    Crl,
}

/// Limits for one responder host.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostLimitsConfig {
    /// Requests in flight at once to this host.
    #[schemars(range(min = 1, max = 256))]
    pub concurrency: Option<u32>,
    /// Minimum interval between two requests to this host.
    pub interval: Option<DurationSpec>,
}

/// Resolved limits of one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLimits {
    pub concurrency: usize,
    pub interval: std::time::Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UnknownPolicy {
    #[default]
    Finding,
    Ignore,
}

fn default_timeout() -> DurationSpec {
    DurationSpec::Text("10s".into())
}
fn default_max_crl_size() -> ByteSize {
    ByteSize::Text("256MiB".into())
}
fn default_stale_grace() -> DurationSpec {
    DurationSpec::Text("1h".into())
}
fn default_clock_skew() -> DurationSpec {
    DurationSpec::Text("5m".into())
}
fn default_ocsp_max_cache() -> DurationSpec {
    DurationSpec::Text("7d".into())
}
fn default_concurrency() -> u32 {
    8
}
fn default_min_issuer_rsa_bits() -> u32 {
    2048
}
fn default_per_host_interval() -> DurationSpec {
    DurationSpec::Text("0ms".into())
}
fn default_per_host_concurrency() -> u32 {
    4
}

impl Default for RevocationConfig {
    fn default() -> Self {
        RevocationConfig {
            prefer: RevocationMethod::Auto,
            fallback: true,
            crls: Vec::new(),
            timeout: default_timeout(),
            max_crl_size: default_max_crl_size(),
            stale_grace: default_stale_grace(),
            clock_skew: default_clock_skew(),
            ocsp_nonce: false,
            ocsp_max_cache: default_ocsp_max_cache(),
            concurrency: default_concurrency(),
            per_host_concurrency: default_per_host_concurrency(),
            per_host_interval: default_per_host_interval(),
            hosts: std::collections::BTreeMap::new(),
            unknown: UnknownPolicy::Finding,
            fetch_issuers: true,
            min_issuer_rsa_bits: default_min_issuer_rsa_bits(),
        }
    }
}

/// A duration: whole seconds, or text with a unit (`100ms`, `10s`, `5m`, `1h`, `7d`, `2w`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum DurationSpec {
    Seconds(u64),
    Text(String),
}

impl DurationSpec {
    pub fn duration(&self) -> Result<std::time::Duration, String> {
        match self {
            DurationSpec::Seconds(s) => Ok(std::time::Duration::from_secs(*s)),
            DurationSpec::Text(t) => parse_duration(t),
        }
    }
}

/// `100ms`, `45s`, `90m`, `12h`, `30d`, `2w`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a duration (examples: 100ms, 10s, 30d)"))?;
    let ms: u64 = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        other => return Err(format!("unknown duration unit `{other}` (ms, s, m, h, d, w)")),
    };
    n.checked_mul(ms).map(std::time::Duration::from_millis).ok_or_else(|| format!("`{s}` is too long"))
}

/// A section written with nothing under it (`store:` followed only by comments) means "all
/// defaults", as an admin who commented out every key expects.
fn null_is_default<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// SQLite database file. Relative paths are relative to this configuration file. Default:
    /// `$STATE_DIRECTORY/certvigil.db` under systemd, else
    /// `$XDG_STATE_HOME/certvigil/certvigil.db` (`~/.local/state/certvigil/certvigil.db`).
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Days before notAfter from which a certificate is `expiring` (warning).
    #[serde(default = "default_warning_days")]
    #[schemars(range(min = 1, max = 3650))]
    pub warning_days: u32,
    /// Days before notAfter from which an expiring certificate is critical.
    #[serde(default = "default_critical_days")]
    #[schemars(range(min = 0, max = 3650))]
    pub critical_days: u32,
    /// Warning window as a fraction of the certificate's lifetime; the smaller of this and
    /// `warning_days` applies, so short-lived certificates are not "expiring" all their life.
    #[serde(default = "default_warning_fraction")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub warning_fraction: f64,
    /// Critical window as a fraction of the lifetime (the smaller of this and `critical_days`).
    #[serde(default = "default_critical_fraction")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub critical_fraction: f64,
}

fn default_warning_fraction() -> f64 {
    0.33
}
fn default_critical_fraction() -> f64 {
    0.1
}

/// Findings policy beyond expiry thresholds.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Key age and strength.
    #[serde(default, deserialize_with = "null_is_default")]
    pub keys: KeyPolicyConfig,
    /// Defaults for certificates with the codeSigning EKU (signing identities); fields left out
    /// keep the built-in signer defaults (warning 90 days, critical 30 days, key age 3 years).
    #[serde(default, deserialize_with = "null_is_default")]
    pub code_signing: PolicyRule,
    /// How long revocation may stay unknown before it is a finding.
    #[serde(default = "default_unknown_grace")]
    pub revocation_unknown_grace: DurationSpec,
    /// Report certificates superseded by a newer one for the same subject and names that are
    /// still deployed.
    #[serde(default = "yes")]
    pub superseded: bool,
    /// Overrides for matching certificates; the first match wins.
    #[serde(default)]
    pub rules: Vec<PolicyRule>,
}

fn default_unknown_grace() -> DurationSpec {
    DurationSpec::Text("24h".into())
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            keys: KeyPolicyConfig::default(),
            code_signing: PolicyRule::default(),
            revocation_unknown_grace: default_unknown_grace(),
            superseded: true,
            rules: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyPolicyConfig {
    /// A key older than this (from the notBefore of the first certificate seen with it) should
    /// be rotated. Unset: no limit (signers keep their own default).
    #[serde(default)]
    pub max_age: Option<DurationSpec>,
    /// RSA keys below this size are weak.
    #[serde(default = "default_min_rsa")]
    pub min_rsa_bits: u32,
    /// EC keys below this size are weak.
    #[serde(default = "default_min_ec")]
    pub min_ec_bits: u32,
    /// SHA-1 and MD5 signatures are weak (except on self-signed trust anchors).
    #[serde(default = "yes")]
    pub sha1_is_weak: bool,
}

fn default_min_rsa() -> u32 {
    2048
}
fn default_min_ec() -> u32 {
    256
}

impl Default for KeyPolicyConfig {
    fn default() -> Self {
        KeyPolicyConfig { max_age: None, min_rsa_bits: 2048, min_ec_bits: 256, sha1_is_weak: true }
    }
}

/// Which certificates a rule or route applies to; every list given must match (an empty or
/// absent list matches anything).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Source names.
    #[serde(default)]
    pub source: Vec<String>,
    /// Source tags.
    #[serde(default)]
    pub tag: Vec<String>,
    /// Extended key usages (`codeSigning`, `serverAuth`, an OID; spelling is forgiving).
    #[serde(default)]
    pub eku: Vec<String>,
}

/// Thresholds for matching certificates (a rule) or for signing identities (`code_signing`);
/// fields left out are inherited.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    /// Which certificates a rule applies to (absent: all). Not used by `code_signing`.
    #[serde(default, rename = "match")]
    pub matcher: MatchConfig,
    #[serde(default)]
    pub warning_days: Option<u32>,
    #[serde(default)]
    pub critical_days: Option<u32>,
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub warning_fraction: Option<f64>,
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub critical_fraction: Option<f64>,
    /// Key age limit for the matched certificates.
    #[serde(default)]
    pub max_key_age: Option<DurationSpec>,
}

fn default_warning_days() -> u32 {
    30
}
fn default_critical_days() -> u32 {
    7
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            warning_days: default_warning_days(),
            critical_days: default_critical_days(),
            warning_fraction: default_warning_fraction(),
            critical_fraction: default_critical_fraction(),
        }
    }
}

/// One place to look for certificates; `kind` selects the source type.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceConfig {
    /// Certificate files on the local file system.
    Files(FilesSource),
    /// OpenBao / Vault: PKI and KV v2 mounts.
    Vault(sources::vault::VaultSource),
    /// A PKCS#11 token (HSM).
    Pkcs11(sources::pkcs11::Pkcs11Source),
    /// AWS Certificate Manager and Secrets Manager.
    Aws(sources::aws::AwsSource),
    /// A Kubernetes cluster: Secrets, ConfigMaps, webhook CA bundles.
    Kubernetes(sources::kubernetes::KubernetesSource),
    /// TLS endpoints.
    Tls(sources::tls::TlsSource),
}

impl SourceConfig {
    pub fn name(&self) -> &str {
        match self {
            SourceConfig::Files(f) => &f.name,
            SourceConfig::Vault(v) => &v.name,
            SourceConfig::Pkcs11(p) => &p.name,
            SourceConfig::Aws(a) => &a.name,
            SourceConfig::Kubernetes(k) => &k.name,
            SourceConfig::Tls(t) => &t.name,
        }
    }

    pub fn tags(&self) -> &[String] {
        match self {
            SourceConfig::Files(f) => &f.tags,
            SourceConfig::Vault(v) => &v.tags,
            SourceConfig::Pkcs11(p) => &p.tags,
            SourceConfig::Aws(a) => &a.tags,
            SourceConfig::Kubernetes(k) => &k.tags,
            SourceConfig::Tls(t) => &t.tags,
        }
    }
}

/// A size in bytes: a whole number, or text with a unit (`512KiB`, `16MiB`, `1GiB`, `10MB`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ByteSize {
    Bytes(u64),
    Text(String),
}

impl ByteSize {
    pub fn bytes(&self) -> Result<u64, String> {
        match self {
            ByteSize::Bytes(b) => Ok(*b),
            ByteSize::Text(t) => parse_size(t),
        }
    }
}

pub fn parse_size(t: &str) -> Result<u64, String> {
    let t = t.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{t}` is not a size: expected a number and a unit such as 16MiB"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(format!("unknown size unit `{other}` (use B, KiB, MiB, GiB, KB, MB or GB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("`{t}` is too large"))
}

/// Certificate files: PEM, DER, PKCS#7, PKCS#12 and JKS, recognised by content.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilesSource {
    /// Unique name of this source (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Files, directories or glob patterns (`/etc/pki/**/*.pem`). Relative paths are relative
    /// to this configuration file.
    pub paths: Vec<String>,
    /// Descend into subdirectories of directory paths.
    #[serde(default = "yes")]
    pub recursive: bool,
    /// Follow symbolic links (each target is read once per scan, loops are skipped).
    #[serde(default = "yes")]
    pub follow_symlinks: bool,
    /// File name patterns to read (a pattern with `/` matches the whole path). Default: the
    /// usual certificate extensions. `["*"]` reads every file.
    #[serde(default = "default_include")]
    pub include: Vec<String>,
    /// Patterns to skip, same syntax as `include`; exclusion wins.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Labels attached to every certificate seen by this source (for `list --tag`, routing).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Passwords tried for PKCS#12 and JKS files, as `${env:NAME}` or `${file:/path}`; the
    /// empty password is always tried first.
    #[serde(default)]
    pub passwords: Vec<String>,
    /// Files larger than this are reported, not read.
    #[serde(default = "default_max_file_size")]
    pub max_file_size: ByteSize,
    /// Deepest directory level descended into below each path (unlimited when absent).
    #[serde(default)]
    pub max_depth: Option<u32>,
}

fn yes() -> bool {
    true
}

pub const DEFAULT_INCLUDE: &[&str] = &[
    "*.pem",
    "*.crt",
    "*.cer",
    "*.cert",
    "*.der",
    "*.p7b",
    "*.p7c",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.truststore",
    "*.ca-bundle",
];

fn default_include() -> Vec<String> {
    DEFAULT_INCLUDE.iter().map(|s| s.to_string()).collect()
}

fn default_max_file_size() -> ByteSize {
    ByteSize::Text("16MiB".into())
}

/// The JSON Schema of the configuration, as committed in `schema/config.schema.json`.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Config);
    serde_json::to_value(schema).unwrap_or_default()
}

/// One configuration problem, with its position when known (line 0 when not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    /// Dotted key path, `sources[0].paths`; empty for file-level problems.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every error found in one configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

fn dotted(path: &[String]) -> String {
    let mut s = String::new();
    for seg in path {
        if seg.parse::<usize>().is_ok() {
            s.push_str(&format!("[{seg}]"));
        } else {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(seg);
        }
    }
    s
}

/// The validated configuration the rest of the program uses.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the file came from (for reloads and messages); `None` for the built-in default.
    pub file: Option<PathBuf>,
    /// `None`: use the platform default state directory.
    pub store_path: Option<PathBuf>,
    pub sources: Vec<SourceSpec>,
    pub revocation: RevocationSettings,
    pub policy: policy::PolicySettings,
    pub alerts: alerts::AlertSettings,
    pub jobs: Vec<Job>,
    pub daemon: DaemonSettings,
    pub managed: Vec<managed::ManagedSpec>,
}

/// Validated revocation settings.
#[derive(Debug, Clone)]
pub struct RevocationSettings {
    pub prefer: RevocationMethod,
    pub fallback: bool,
    /// Extra CRLs: URLs (`http://`, `https://`, `file://`) or absolute paths.
    pub crls: Vec<String>,
    pub timeout: std::time::Duration,
    pub max_crl_size: usize,
    pub stale_grace: i64,
    pub clock_skew: i64,
    pub ocsp_nonce: bool,
    pub ocsp_max_cache: i64,
    pub concurrency: usize,
    /// Limits of a host without an entry in `hosts`.
    pub per_host: HostLimits,
    /// Limits by `host` or `host:port`.
    pub hosts: std::collections::BTreeMap<String, HostLimits>,
    pub unknown: UnknownPolicy,
    pub fetch_issuers: bool,
    pub min_issuer_rsa_bits: u32,
}

impl Default for RevocationSettings {
    fn default() -> Self {
        validate_revocation(&RevocationConfig::default(), Path::new("/"), &mut Vec::new())
    }
}

// Built once per configuration load; the size difference between kinds does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum SourceSpec {
    Files(FilesSpec),
    Vault(sources::vault::VaultSpec),
    Pkcs11(sources::pkcs11::Pkcs11Spec),
    Aws(sources::aws::AwsSpec),
    Kubernetes(sources::kubernetes::KubernetesSpec),
    Tls(sources::tls::TlsSpec),
}

impl SourceSpec {
    pub fn name(&self) -> &str {
        match self {
            SourceSpec::Files(f) => &f.name,
            SourceSpec::Vault(v) => &v.name,
            SourceSpec::Pkcs11(p) => &p.name,
            SourceSpec::Aws(a) => &a.name,
            SourceSpec::Kubernetes(k) => &k.name,
            SourceSpec::Tls(t) => &t.name,
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSpec::Files(_) => "files",
            SourceSpec::Vault(_) => "vault",
            SourceSpec::Pkcs11(_) => "pkcs11",
            SourceSpec::Aws(_) => "aws",
            SourceSpec::Kubernetes(_) => "kubernetes",
            SourceSpec::Tls(_) => "tls",
        }
    }
    pub fn tags(&self) -> &[String] {
        match self {
            SourceSpec::Files(f) => &f.tags,
            SourceSpec::Vault(v) => &v.tags,
            SourceSpec::Pkcs11(p) => &p.tags,
            SourceSpec::Aws(a) => &a.tags,
            SourceSpec::Kubernetes(k) => &k.tags,
            SourceSpec::Tls(t) => &t.tags,
        }
    }
}

/// A root to walk: a directory or file, optionally filtered by a glob over the full path.
#[derive(Debug, Clone)]
pub struct Root {
    pub base: PathBuf,
    pub glob: Option<globset::GlobMatcher>,
}

#[derive(Debug, Clone)]
pub struct FilesSpec {
    pub name: String,
    pub tags: Vec<String>,
    pub roots: Vec<Root>,
    pub recursive: bool,
    pub follow_symlinks: bool,
    /// Matched against file names and (for patterns with `/`) full paths.
    pub include: Matcher,
    pub exclude: Matcher,
    pub passwords: Vec<SecretRef>,
    pub max_file_size: u64,
    pub max_depth: Option<usize>,
}

/// Name patterns and path patterns, compiled.
#[derive(Debug, Clone)]
pub struct Matcher {
    names: globset::GlobSet,
    paths: globset::GlobSet,
    empty: bool,
}

impl Matcher {
    fn compile(patterns: &[String]) -> Result<Self, (usize, String)> {
        let mut names = globset::GlobSetBuilder::new();
        let mut paths = globset::GlobSetBuilder::new();
        for (i, p) in patterns.iter().enumerate() {
            let glob = globset::GlobBuilder::new(p).literal_separator(true).build().map_err(|e| (i, e.kind().to_string()))?;
            if p.contains('/') {
                paths.add(glob)
            } else {
                names.add(glob)
            };
        }
        let build = |b: globset::GlobSetBuilder| b.build().map_err(|e| (0, e.to_string()));
        Ok(Matcher { names: build(names)?, paths: build(paths)?, empty: patterns.is_empty() })
    }

    pub fn is_empty(&self) -> bool {
        self.empty
    }

    pub fn matches(&self, path: &Path) -> bool {
        path.file_name().is_some_and(|n| self.names.is_match(n)) || self.paths.is_match(path)
    }
}

/// Reads, checks and validates a configuration file.
pub fn load(path: &Path) -> Result<Settings, ConfigErrors> {
    let file = path.display().to_string();
    let fail = |message: String| ConfigErrors(vec![ConfigError { file: file.clone(), line: 0, col: 0, path: String::new(), message }]);
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(fail(format!("file is {} bytes; a configuration is at most {MAX_CONFIG_BYTES}", meta.len())));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| fail(format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to())))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut settings = parse_str(&text, &file, &base)?;
    settings.file = Some(path.to_path_buf());
    Ok(settings)
}

/// Parses and validates configuration text. `file` names it in errors; `base` anchors
/// relative paths.
pub fn parse_str(text: &str, file: &str, base: &Path) -> Result<Settings, ConfigErrors> {
    let at = |line: usize, col: usize, path: &[String], message: String| ConfigError {
        file: file.to_string(),
        line,
        col,
        path: dotted(path),
        message,
    };
    let doc = yaml::parse(text).map_err(|e| ConfigErrors(vec![at(e.line, e.col, &[], format!("YAML syntax: {}", e.message))]))?;
    let issues = schema_check::check(&doc, &json_schema());
    if !issues.is_empty() {
        return Err(ConfigErrors(issues.into_iter().map(|i| at(i.line, i.col, &i.path, i.message)).collect()));
    }
    let config: Config = if doc.root.is_none() {
        Config::default()
    } else {
        serde_saphyr::from_str_with_options(text, serde_saphyr::options! { strict_booleans: true })
            .map_err(|e| ConfigErrors(vec![at(0, 0, &[], e.to_string())]))?
    };
    validate(&config, base).map_err(|errs| {
        ConfigErrors(
            errs.into_iter()
                .map(|(path, message)| {
                    let (line, col) = doc.locate(&path).map(|n| (n.line, n.col)).unwrap_or((0, 0));
                    at(line, col, &path, message)
                })
                .collect(),
        )
    })
}

pub(crate) type PathedError = (Vec<String>, String);

/// Pure semantic validation. Returns every problem with its key path.
pub fn validate(config: &Config, base: &Path) -> Result<Settings, Vec<PathedError>> {
    let mut errs: Vec<PathedError> = Vec::new();
    let p = |parts: &[&str]| parts.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let t = &config.thresholds;
    if t.warning_days == 0 {
        errs.push((p(&["thresholds", "warning_days"]), "must be at least 1".into()));
    }
    if t.critical_days > t.warning_days {
        errs.push((
            p(&["thresholds", "critical_days"]),
            format!("critical_days ({}) exceeds warning_days ({})", t.critical_days, t.warning_days),
        ));
    }
    let store_path = config.store.path.as_ref().map(|s| base.join(s));
    if config.store.path.as_deref() == Some("") {
        errs.push((p(&["store", "path"]), "must not be empty".into()));
    }
    let mut sources = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (i, src) in config.sources.iter().enumerate() {
        let idx = i.to_string();
        let here = |field: &str| p(&["sources", &idx, field]);
        let name = src.name();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            errs.push((here("name"), format!("`{name}` is not a valid source name (letters, digits, -, _, .)")));
        } else if names.contains(&name) {
            errs.push((here("name"), format!("duplicate source name `{name}`")));
        }
        names.push(name);
        for (j, tag) in src.tags().iter().enumerate() {
            if tag.is_empty() || tag.contains(',') || tag.chars().any(char::is_whitespace) {
                errs.push((p(&["sources", &idx, "tags", &j.to_string()]), format!("`{tag}` is not a valid tag (no spaces or commas)")));
            }
        }
        match src {
            SourceConfig::Vault(v) => sources.extend(sources::vault::validate(v, base, &here, &mut errs).map(SourceSpec::Vault)),
            SourceConfig::Pkcs11(k) => sources.extend(sources::pkcs11::validate(k, base, &here, &mut errs).map(SourceSpec::Pkcs11)),
            SourceConfig::Aws(a) => sources.extend(sources::aws::validate(a, base, &here, &mut errs).map(SourceSpec::Aws)),
            SourceConfig::Kubernetes(k) => {
                sources.extend(sources::kubernetes::validate(k, base, &here, &mut errs).map(SourceSpec::Kubernetes))
            }
            SourceConfig::Tls(t) => sources.extend(sources::tls::validate(t, base, &here, &mut errs).map(SourceSpec::Tls)),
            SourceConfig::Files(f) => {
                if f.paths.is_empty() {
                    errs.push((here("paths"), "at least one path is required".into()));
                }
                let mut roots = Vec::new();
                for (j, raw) in f.paths.iter().enumerate() {
                    let at = p(&["sources", &idx, "paths", &j.to_string()]);
                    match make_root(raw, base) {
                        Ok(r) => roots.push(r),
                        Err(m) => errs.push((at, m)),
                    }
                }
                let include = Matcher::compile(&f.include)
                    .map_err(|(j, m)| errs.push((p(&["sources", &idx, "include", &j.to_string()]), format!("bad pattern: {m}"))));
                let exclude = Matcher::compile(&f.exclude)
                    .map_err(|(j, m)| errs.push((p(&["sources", &idx, "exclude", &j.to_string()]), format!("bad pattern: {m}"))));
                let mut passwords = Vec::new();
                for (j, s) in f.passwords.iter().enumerate() {
                    match SecretRef::parse(s) {
                        Ok(r) => passwords.push(r),
                        Err(m) => errs.push((p(&["sources", &idx, "passwords", &j.to_string()]), m)),
                    }
                }
                let max_file_size = match f.max_file_size.bytes() {
                    Ok(0) => {
                        errs.push((here("max_file_size"), "must be more than 0".into()));
                        0
                    }
                    Ok(n) if n > 1 << 30 => {
                        errs.push((here("max_file_size"), "must be at most 1GiB".into()));
                        0
                    }
                    Ok(n) => n,
                    Err(m) => {
                        errs.push((here("max_file_size"), m));
                        0
                    }
                };
                if let (Ok(include), Ok(exclude)) = (include, exclude) {
                    sources.push(SourceSpec::Files(FilesSpec {
                        name: f.name.clone(),
                        tags: f.tags.clone(),
                        roots,
                        recursive: f.recursive,
                        follow_symlinks: f.follow_symlinks,
                        include,
                        exclude,
                        passwords,
                        max_file_size,
                        max_depth: f.max_depth.map(|d| d as usize),
                    }));
                }
            }
        }
    }
    let revocation = validate_revocation(&config.revocation, base, &mut errs);
    let policy = validate_policy(config, &revocation, &mut errs);
    let alerts = alerts::validate(&config.alerts, base, &mut errs);
    let jobs = validate_jobs(config, &mut errs);
    let daemon = validate_daemon(&config.daemon, &mut errs);
    let managed = managed::validate(&config.managed, base, &mut errs);
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(Settings { file: None, store_path, sources, revocation, policy, alerts, jobs, daemon, managed })
}

fn validate_policy(config: &Config, revocation: &RevocationSettings, errs: &mut Vec<PathedError>) -> policy::PolicySettings {
    use policy::{Expiry, Match, PolicySettings, Rule};
    let p = &config.policy;
    let t = &config.thresholds;
    let path = |parts: &[&str]| parts.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for (field, v) in [("warning_fraction", t.warning_fraction), ("critical_fraction", t.critical_fraction)] {
        if !(0.0..=1.0).contains(&v) {
            errs.push((path(&["thresholds", field]), format!("{v} is not a fraction between 0 and 1")));
        }
    }
    let secs = |d: &DurationSpec, at: Vec<String>, errs: &mut Vec<PathedError>| -> i64 {
        d.duration().map(|d| d.as_secs() as i64).unwrap_or_else(|m| {
            errs.push((at, m));
            0
        })
    };
    let rule = |body: &PolicyRule, matcher: Match, at: &[&str], errs: &mut Vec<PathedError>| -> Rule {
        for (field, v) in [("warning_fraction", body.warning_fraction), ("critical_fraction", body.critical_fraction)] {
            if v.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
                let mut here = path(at);
                here.push(field.into());
                errs.push((here, "not a fraction between 0 and 1".into()));
            }
        }
        let max_key_age = body.max_key_age.as_ref().map(|d| {
            let mut here = path(at);
            here.push("max_key_age".into());
            Some(secs(d, here, errs))
        });
        Rule {
            matcher,
            warning_days: body.warning_days,
            critical_days: body.critical_days,
            warning_fraction: body.warning_fraction,
            critical_fraction: body.critical_fraction,
            max_key_age,
        }
    };
    let defaults = PolicySettings::default();
    let mut code_signing = defaults.code_signing.clone();
    let m = &p.code_signing.matcher;
    if !(m.source.is_empty() && m.tag.is_empty() && m.eku.is_empty()) {
        errs.push((
            path(&["policy", "code_signing", "match"]),
            "code_signing applies to codeSigning certificates; use policy.rules to match others".into(),
        ));
    }
    let cs = rule(&p.code_signing, Match::default(), &["policy", "code_signing"], errs);
    code_signing.warning_days = cs.warning_days.or(code_signing.warning_days);
    code_signing.critical_days = cs.critical_days.or(code_signing.critical_days);
    code_signing.warning_fraction = cs.warning_fraction.or(code_signing.warning_fraction);
    code_signing.critical_fraction = cs.critical_fraction.or(code_signing.critical_fraction);
    code_signing.max_key_age = cs.max_key_age.or(code_signing.max_key_age);
    let rules = p
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let idx = i.to_string();
            let m = Match {
                sources: r.matcher.source.clone(),
                tags: r.matcher.tag.clone(),
                ekus: r.matcher.eku.iter().map(|e| crate::model::eku::normalise_eku(e)).collect(),
            };
            rule(r, m, &["policy", "rules", &idx], errs)
        })
        .collect();
    PolicySettings {
        expiry: Expiry {
            warning_days: t.warning_days,
            critical_days: t.critical_days,
            warning_fraction: t.warning_fraction,
            critical_fraction: t.critical_fraction,
        },
        max_key_age: p.keys.max_age.as_ref().map(|d| secs(d, path(&["policy", "keys", "max_age"]), errs)),
        code_signing,
        rules,
        min_rsa_bits: p.keys.min_rsa_bits,
        min_ec_bits: p.keys.min_ec_bits,
        sha1_is_weak: p.keys.sha1_is_weak,
        revocation_unknown_grace: secs(&p.revocation_unknown_grace, path(&["policy", "revocation_unknown_grace"]), errs),
        ignore_unknown_revocation: revocation.unknown == UnknownPolicy::Ignore,
        superseded: p.superseded,
    }
}

fn validate_revocation(r: &RevocationConfig, base: &Path, errs: &mut Vec<PathedError>) -> RevocationSettings {
    let at = |field: &str| vec!["revocation".to_string(), field.to_string()];
    let dur = |field: &str, d: &DurationSpec, errs: &mut Vec<PathedError>| -> std::time::Duration {
        d.duration().unwrap_or_else(|m| {
            errs.push((at(field), m));
            std::time::Duration::ZERO
        })
    };
    let timeout = dur("timeout", &r.timeout, errs);
    if timeout.is_zero() && errs.iter().all(|e| e.0 != at("timeout")) {
        errs.push((at("timeout"), "must be more than 0".into()));
    }
    let stale_grace = dur("stale_grace", &r.stale_grace, errs).as_secs() as i64;
    let clock_skew = dur("clock_skew", &r.clock_skew, errs).as_secs() as i64;
    let ocsp_max_cache = dur("ocsp_max_cache", &r.ocsp_max_cache, errs).as_secs() as i64;
    let per_host_interval = dur("per_host_interval", &r.per_host_interval, errs);
    let max_crl_size = match r.max_crl_size.bytes() {
        Ok(n) if n > 0 && n <= 4 << 30 => n as usize,
        Ok(_) => {
            errs.push((at("max_crl_size"), "must be between 1 byte and 4GiB".into()));
            0
        }
        Err(m) => {
            errs.push((at("max_crl_size"), m));
            0
        }
    };
    if r.concurrency == 0 {
        errs.push((at("concurrency"), "must be at least 1".into()));
    }
    if r.per_host_concurrency == 0 {
        errs.push((at("per_host_concurrency"), "must be at least 1".into()));
    }
    let per_host = HostLimits { concurrency: r.per_host_concurrency.max(1) as usize, interval: per_host_interval };
    let mut hosts = std::collections::BTreeMap::new();
    for (host, limits) in &r.hosts {
        let path = |field: &str| vec!["revocation".to_string(), "hosts".to_string(), host.clone(), field.to_string()];
        if host.is_empty() || host.contains('/') {
            errs.push((vec!["revocation".into(), "hosts".into(), host.clone()], "a host name or address, with an optional :port".into()));
        }
        if limits.concurrency == Some(0) {
            errs.push((path("concurrency"), "must be at least 1".into()));
        }
        let interval = match &limits.interval {
            Some(d) => d.duration().unwrap_or_else(|m| {
                errs.push((path("interval"), m));
                per_host.interval
            }),
            None => per_host.interval,
        };
        let concurrency = limits.concurrency.map_or(per_host.concurrency, |c| c.max(1) as usize);
        hosts.insert(host.to_ascii_lowercase(), HostLimits { concurrency, interval });
    }
    if !(1024..=16384).contains(&r.min_issuer_rsa_bits) {
        errs.push((at("min_issuer_rsa_bits"), "must be between 1024 and 16384 (no shorter RSA signature can be verified)".into()));
    }
    let mut crls = Vec::new();
    for (i, c) in r.crls.iter().enumerate() {
        if c.starts_with("http://") || c.starts_with("https://") || c.starts_with("file://") {
            crls.push(c.clone());
        } else if c.contains("://") {
            errs.push((vec!["revocation".into(), "crls".into(), i.to_string()], format!("`{c}`: only http, https and file URLs or paths")));
        } else if c.is_empty() {
            errs.push((vec!["revocation".into(), "crls".into(), i.to_string()], "empty CRL location".into()));
        } else {
            crls.push(base.join(c).to_string_lossy().into_owned());
        }
    }
    RevocationSettings {
        prefer: r.prefer,
        fallback: r.fallback,
        crls,
        timeout,
        max_crl_size,
        stale_grace,
        clock_skew,
        ocsp_nonce: r.ocsp_nonce,
        ocsp_max_cache,
        concurrency: r.concurrency.max(1) as usize,
        per_host,
        hosts,
        unknown: r.unknown,
        fetch_issuers: r.fetch_issuers,
        min_issuer_rsa_bits: r.min_issuer_rsa_bits,
    }
}

/// A configured path: plain (file or directory) or a glob, split into the literal directory
/// prefix to walk and the pattern to match below it.
fn make_root(raw: &str, base: &Path) -> Result<Root, String> {
    if raw.is_empty() {
        return Err("empty path".into());
    }
    let full = base.join(raw);
    let is_glob = |s: &str| s.contains(['*', '?', '[', '{']);
    if !is_glob(raw) {
        return Ok(Root { base: full, glob: None });
    }
    let text = full.to_string_lossy().to_string();
    let mut prefix = PathBuf::new();
    for comp in full.components() {
        let s = comp.as_os_str().to_string_lossy();
        if is_glob(&s) {
            break;
        }
        prefix.push(comp);
    }
    let glob = globset::GlobBuilder::new(&text).literal_separator(true).build().map_err(|e| format!("bad glob: {}", e.kind()))?;
    Ok(Root { base: prefix, glob: Some(glob.compile_matcher()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        parse_str(text, "t.yaml", Path::new("/cfg")).unwrap_err().0.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn minimal_and_defaults() {
        let s = parse_str("sources:\n  - name: a\n    kind: files\n    paths: [certs]\n", "t.yaml", Path::new("/cfg")).unwrap();
        assert_eq!(s.policy.expiry.warning_days, 30);
        assert_eq!(s.policy.expiry.critical_days, 7);
        let SourceSpec::Files(f) = &s.sources[0] else { panic!("a files source") };
        assert_eq!(f.roots[0].base, PathBuf::from("/cfg/certs"));
        assert!(f.include.matches(Path::new("/x/y.pem")));
        assert!(!f.include.matches(Path::new("/x/y.txt")));
        assert_eq!(f.max_file_size, 16 << 20);
        assert!(parse_str("", "t.yaml", Path::new("/")).unwrap().sources.is_empty());
    }

    #[test]
    fn reports_every_structural_error_with_position() {
        let e = errors(
            "thresholds:\n  warning_dayz: 5\n  critical_days: soon\nsources:\n  - name: a\n    kind: files\n    paths: [x]\n    recursve: true\n  - kind: s3\n    name: b\n",
        );
        assert_eq!(e.len(), 4, "{e:#?}");
        assert!(
            e[0].starts_with("t.yaml:2:3: thresholds.warning_dayz: unknown key `warning_dayz`; did you mean `warning_days`?"),
            "{e:#?}"
        );
        assert!(e[1].starts_with("t.yaml:3:18: thresholds.critical_days: expected a whole number, found `soon`"), "{e:#?}");
        assert!(e[2].starts_with("t.yaml:8:5: sources[0].recursve: unknown key"), "{e:#?}");
        assert!(e[3].starts_with("t.yaml:9:11: sources[1].kind: unknown kind `s3`"), "{e:#?}");
    }

    #[test]
    fn reports_every_semantic_error_with_position() {
        let e = errors(concat!(
            "thresholds: {warning_days: 5, critical_days: 9}\n",
            "sources:\n",
            "  - {name: a, kind: files, paths: [x], passwords: [hunter2]}\n",
            "  - {name: a, kind: files, paths: [], include: ['[z'], max_file_size: 12 parsecs}\n",
        ));
        assert!(e.iter().any(|m| m.starts_with("t.yaml:1:46: thresholds.critical_days: critical_days (9) exceeds")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("sources[0].passwords[0]: secrets are not written inline")), "{e:#?}");
        assert!(e.iter().all(|m| !m.contains("hunter2")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("sources[1].name: duplicate source name `a`")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("sources[1].paths: at least one path")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("sources[1].include[0]: bad pattern")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("sources[1].max_file_size: unknown size unit")), "{e:#?}");
    }

    #[test]
    fn missing_required_and_missing_kind() {
        let e = errors("sources:\n  - kind: files\n  - name: x\n");
        assert!(e[0].contains("sources[0]: missing required key `name`"), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("sources[1]: missing `kind`")), "{e:#?}");
    }

    #[test]
    fn globs_split_into_base_and_pattern() {
        let r = make_root("/etc/pki/**/*.pem", Path::new("/")).unwrap();
        assert_eq!(r.base, PathBuf::from("/etc/pki"));
        let g = r.glob.unwrap();
        assert!(g.is_match("/etc/pki/tls/certs/a.pem"));
        assert!(!g.is_match("/etc/pki/tls/certs/a.crt"));
    }

    #[test]
    fn jobs_default_and_validate() {
        let s = parse_str("", "t.yaml", Path::new("/")).unwrap();
        let names: Vec<&str> = s.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["scan", "revocation", "renew", "evaluate", "digest"]);
        assert!(s.jobs.iter().all(|j| j.default));
        let e = errors(concat!(
            "sources: [{name: web, kind: files, paths: [x]}]\n",
            "jobs:\n",
            "  - {name: a, kind: scan, schedule: '*/5 * * * *', sources: [web, nope]}\n",
            "  - {name: a, kind: digest, schedule: '61 * * *', timezone: Mars/Base}\n",
        ));
        assert!(e.iter().any(|m| m.contains("jobs[0].sources[1]: no source named `nope`")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("jobs[1].name: duplicate job name `a`")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("jobs[1].schedule: `61 * * *` is not a cron expression")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("jobs[1].timezone: unknown time zone `Mars/Base`")), "{e:#?}");
        let ok = parse_str(
            "jobs: [{name: n, kind: revocation, schedule: '@hourly', timezone: Europe/Berlin, jitter: 5m}]",
            "t.yaml",
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(ok.jobs[0].jitter, 300);
        assert_eq!(ok.jobs[0].schedule.time_zone(), "Europe/Berlin");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("10 MB"), Ok(10_000_000));
        assert_eq!(parse_size("42"), Ok(42));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }
}
