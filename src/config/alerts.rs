//! Validated alerting settings: receivers and routes, resolved from the YAML types.

use super::policy::Match;
use super::secret::SecretRef;
use super::*;
use crate::model::finding::{Finding, Kind, Severity};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A value that is either written in the configuration or a secret reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Literal(String),
    Secret(SecretRef),
}

impl Value {
    fn parse(s: &str) -> Result<Value, String> {
        if s.starts_with("${") { SecretRef::parse(s).map(Value::Secret) } else { Ok(Value::Literal(s.to_string())) }
    }

    pub fn resolve(&self) -> Result<String, String> {
        match self {
            Value::Literal(s) => Ok(s.clone()),
            Value::Secret(r) => r.resolve().map(|s| s.expose().to_string()).map_err(|e| e.to_string()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<SecretRef>,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum ReceiverKind {
    Email { to: Vec<String>, from: String, smtp: Smtp },
    Webhook { url: Value, secret: Option<SecretRef>, timeout: Duration },
    Slack { url: Value, timeout: Duration },
    PagerDuty { routing_key: SecretRef, url: String, timeout: Duration },
}

#[derive(Debug, Clone)]
pub struct Receiver {
    pub name: String,
    pub kind: ReceiverKind,
}

impl Receiver {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            ReceiverKind::Email { .. } => "email",
            ReceiverKind::Webhook { .. } => "webhook",
            ReceiverKind::Slack { .. } => "slack",
            ReceiverKind::PagerDuty { .. } => "pagerduty",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RouteMatch {
    pub severities: Vec<Severity>,
    pub kinds: Vec<Kind>,
    pub certs: Match,
    /// Owner names; `none` matches findings without an owner.
    pub owners: Vec<String>,
}

impl RouteMatch {
    pub fn matches(&self, f: &Finding) -> bool {
        (self.severities.is_empty() || self.severities.contains(&f.severity))
            && (self.kinds.is_empty() || self.kinds.contains(&f.kind))
            && self.certs.matches(&f.sources, &f.tags, &f.ekus)
            && (self.owners.is_empty()
                || match &f.owner {
                    Some(o) => self.owners.contains(o),
                    None => self.owners.iter().any(|w| w == super::owners::NO_OWNER),
                })
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub matcher: RouteMatch,
    pub receivers: Vec<String>,
    pub digest: bool,
    pub immediate_severity: Severity,
    /// Re-notify intervals by severity (info, warning, critical).
    pub renotify: [Option<i64>; 3],
    pub escalate_after: Option<i64>,
    pub escalate_to: Option<String>,
    pub resolve_notice: bool,
    pub escalation_only: bool,
}

impl Route {
    pub fn renotify_after(&self, s: Severity) -> Option<i64> {
        self.renotify[s as usize]
    }

    /// Whether a notification of this severity waits for the digest.
    pub fn holds(&self, s: Severity) -> bool {
        self.digest && s < self.immediate_severity
    }
}

#[derive(Debug, Clone)]
pub struct AlertsSpec {
    pub receivers: Vec<Receiver>,
    pub routes: Vec<Route>,
    pub retry_initial: i64,
    pub retry_max: i64,
}

impl Default for AlertsSpec {
    fn default() -> Self {
        AlertsSpec { receivers: Vec::new(), routes: Vec::new(), retry_initial: 30, retry_max: 3600 }
    }
}

impl AlertsSpec {
    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|r| r.name == name)
    }

    pub fn route(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.name == name)
    }
}

type PathedError = (Vec<String>, String);

pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

pub(crate) fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Pure validation of the `alerts:` section.
pub fn validate(a: &AlertsConfig, base: &Path, errs: &mut Vec<PathedError>) -> AlertsSpec {
    let at = |parts: &[&str]| -> Vec<String> {
        let mut v = vec!["alerts".to_string()];
        v.extend(parts.iter().map(|s| s.to_string()));
        v
    };
    let dur = |d: &super::DurationSpec, path: Vec<String>, errs: &mut Vec<PathedError>| -> Duration {
        d.duration().unwrap_or_else(|m| {
            errs.push((path, m));
            Duration::ZERO
        })
    };
    let secret = |s: &str, path: Vec<String>, errs: &mut Vec<PathedError>| -> Option<SecretRef> {
        SecretRef::parse(s).map_err(|m| errs.push((path, m))).ok()
    };
    let mut receivers: Vec<Receiver> = Vec::new();
    for (i, r) in a.receivers.iter().enumerate() {
        let idx = i.to_string();
        let here = |f: &str| at(&["receivers", &idx, f]);
        let (name, kind) = match r {
            ReceiverConfig::Email(e) => {
                let default_port = match e.smtp.tls {
                    SmtpTls::Starttls => 587,
                    SmtpTls::Tls => 465,
                    SmtpTls::None => 25,
                };
                if e.smtp.tls == SmtpTls::None && !is_loopback(&e.smtp.host) {
                    errs.push((
                        at(&["receivers", &idx, "smtp", "tls"]),
                        format!("plain SMTP is only allowed to a loopback host, not `{}`", e.smtp.host),
                    ));
                }
                if e.to.is_empty() {
                    errs.push((here("to"), "at least one recipient is required".into()));
                }
                for (j, addr) in e.to.iter().enumerate() {
                    if addr.parse::<lettre::message::Mailbox>().is_err() {
                        errs.push((at(&["receivers", &idx, "to", &j.to_string()]), format!("`{addr}` is not an email address")));
                    }
                }
                if e.from.parse::<lettre::message::Mailbox>().is_err() {
                    errs.push((here("from"), format!("`{}` is not an email address", e.from)));
                }
                let password = e.smtp.password.as_deref().and_then(|p| secret(p, at(&["receivers", &idx, "smtp", "password"]), errs));
                if password.is_some() != e.smtp.username.is_some() {
                    errs.push((at(&["receivers", &idx, "smtp"]), "username and password go together".into()));
                }
                let smtp = Smtp {
                    host: e.smtp.host.clone(),
                    port: e.smtp.port.unwrap_or(default_port),
                    tls: e.smtp.tls,
                    username: e.smtp.username.clone(),
                    password,
                    ca_file: e.smtp.ca_file.as_ref().map(|f| base.join(f)),
                    timeout: dur(&e.smtp.timeout, at(&["receivers", &idx, "smtp", "timeout"]), errs),
                };
                (e.name.clone(), ReceiverKind::Email { to: e.to.clone(), from: e.from.clone(), smtp })
            }
            ReceiverConfig::Webhook(w) => {
                let url = url_value(&w.url, here("url"), errs);
                let secret = w.secret.as_deref().and_then(|s| secret(s, here("secret"), errs));
                (w.name.clone(), ReceiverKind::Webhook { url, secret, timeout: dur(&w.timeout, here("timeout"), errs) })
            }
            ReceiverConfig::Slack(s) => (
                s.name.clone(),
                ReceiverKind::Slack { url: url_value(&s.url, here("url"), errs), timeout: dur(&s.timeout, here("timeout"), errs) },
            ),
            ReceiverConfig::Pagerduty(p) => {
                let key = secret(&p.routing_key, here("routing_key"), errs);
                if !(p.url.starts_with("https://") || p.url.starts_with("http://")) {
                    errs.push((here("url"), format!("`{}` is not an http(s) URL", p.url)));
                }
                let Some(routing_key) = key else { continue };
                (
                    p.name.clone(),
                    ReceiverKind::PagerDuty { routing_key, url: p.url.clone(), timeout: dur(&p.timeout, here("timeout"), errs) },
                )
            }
        };
        if !valid_name(&name) {
            errs.push((here("name"), format!("`{name}` is not a valid receiver name")));
        } else if receivers.iter().any(|r| r.name == name) {
            errs.push((here("name"), format!("duplicate receiver name `{name}`")));
        }
        receivers.push(Receiver { name, kind });
    }
    let mut routes: Vec<Route> = Vec::new();
    for (i, r) in a.routes.iter().enumerate() {
        let idx = i.to_string();
        let here = |f: &str| at(&["routes", &idx, f]);
        if !valid_name(&r.name) {
            errs.push((here("name"), format!("`{}` is not a valid route name", r.name)));
        } else if routes.iter().any(|x| x.name == r.name) {
            errs.push((here("name"), format!("duplicate route name `{}`", r.name)));
        }
        if r.receivers.is_empty() {
            errs.push((here("receivers"), "at least one receiver is required".into()));
        }
        for (j, name) in r.receivers.iter().enumerate() {
            if !a.receivers.iter().any(|rc| receiver_name(rc) == name) {
                let known: Vec<&str> = a.receivers.iter().map(receiver_name).collect();
                errs.push((
                    at(&["routes", &idx, "receivers", &j.to_string()]),
                    format!("no receiver named `{name}` (defined: {})", known.join(", ")),
                ));
            }
        }
        let mut severities = Vec::new();
        for (j, s) in r.matcher.severity.iter().enumerate() {
            match Severity::parse(s) {
                Some(v) => severities.push(v),
                None => errs
                    .push((at(&["routes", &idx, "match", "severity", &j.to_string()]), format!("`{s}` is not info, warning or critical"))),
            }
        }
        let mut kinds = Vec::new();
        for (j, k) in r.matcher.kind.iter().enumerate() {
            match Kind::parse(k) {
                Some(v) => kinds.push(v),
                None => {
                    let all: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                    errs.push((
                        at(&["routes", &idx, "match", "kind", &j.to_string()]),
                        format!("`{k}` is not a finding kind ({})", all.join(", ")),
                    ))
                }
            }
        }
        for (j, o) in r.matcher.owner.iter().enumerate() {
            if o.trim().is_empty() {
                errs.push((
                    at(&["routes", &idx, "match", "owner", &j.to_string()]),
                    "must not be empty (`none` matches findings without an owner)".into(),
                ));
            }
        }
        let immediate_severity = Severity::parse(&r.immediate_severity).unwrap_or_else(|| {
            errs.push((here("immediate_severity"), format!("`{}` is not info, warning or critical", r.immediate_severity)));
            Severity::Critical
        });
        let mut secs = |d: &Option<super::DurationSpec>, f: &str| {
            d.as_ref().map(|d| dur(d, at(&["routes", &idx, "renotify", f]), errs).as_secs() as i64)
        };
        let renotify = [secs(&r.renotify.info, "info"), secs(&r.renotify.warning, "warning"), secs(&r.renotify.critical, "critical")];
        if let Some(target) = &r.escalate_to {
            if target == &r.name {
                errs.push((here("escalate_to"), "a route cannot escalate to itself".into()));
            } else if !a.routes.iter().any(|x| &x.name == target) {
                errs.push((here("escalate_to"), format!("no route named `{target}`")));
            }
            if r.escalate_after.is_none() {
                errs.push((here("escalate_after"), "escalate_to needs escalate_after".into()));
            }
        }
        let escalate_after = r.escalate_after.as_ref().map(|d| dur(d, here("escalate_after"), errs).as_secs() as i64);
        routes.push(Route {
            name: r.name.clone(),
            matcher: RouteMatch {
                severities,
                kinds,
                certs: Match {
                    sources: r.matcher.source.clone(),
                    tags: r.matcher.tag.clone(),
                    ekus: r.matcher.eku.iter().map(|e| crate::model::eku::normalise_eku(e)).collect(),
                },
                owners: r.matcher.owner.clone(),
            },
            receivers: r.receivers.clone(),
            digest: r.mode == RouteMode::Digest,
            immediate_severity,
            renotify,
            escalate_after,
            escalate_to: r.escalate_to.clone(),
            resolve_notice: r.resolve_notice,
            escalation_only: r.escalation_only,
        });
    }
    let retry_initial = dur(&a.retry_initial, at(&["retry_initial"]), errs).as_secs().max(1) as i64;
    let retry_max = dur(&a.retry_max, at(&["retry_max"]), errs).as_secs().max(1) as i64;
    AlertsSpec { receivers, routes, retry_initial, retry_max }
}

pub(crate) fn receiver_name(r: &ReceiverConfig) -> &str {
    match r {
        ReceiverConfig::Email(e) => &e.name,
        ReceiverConfig::Webhook(w) => &w.name,
        ReceiverConfig::Slack(s) => &s.name,
        ReceiverConfig::Pagerduty(p) => &p.name,
    }
}

pub(crate) fn url_value(s: &str, path: Vec<String>, errs: &mut Vec<PathedError>) -> Value {
    match Value::parse(s) {
        Ok(Value::Literal(u)) if !(u.starts_with("http://") || u.starts_with("https://")) => {
            errs.push((path, format!("`{u}` is not an http(s) URL")));
            Value::Literal(u)
        }
        Ok(v) => v,
        Err(m) => {
            errs.push((path, m));
            Value::Literal(String::new())
        }
    }
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

pub(crate) fn default_retry_initial() -> DurationSpec {
    DurationSpec::Text("30s".into())
}
pub(crate) fn default_retry_max() -> DurationSpec {
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

pub(crate) fn default_notify_timeout() -> DurationSpec {
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

pub(crate) fn default_pagerduty_url() -> String {
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
    /// Owner names (`owners:`, Kubernetes annotations, Vault metadata, AWS tags); `none`
    /// matches findings whose certificate has no owner.
    #[serde(default)]
    pub owner: Vec<String>,
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

pub(crate) fn default_immediate_severity() -> String {
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

pub(crate) fn default_renotify_critical() -> Option<DurationSpec> {
    Some(DurationSpec::Text("24h".into()))
}
pub(crate) fn default_renotify_warning() -> Option<DurationSpec> {
    Some(DurationSpec::Text("7d".into()))
}

impl Default for RenotifyConfig {
    fn default() -> Self {
        RenotifyConfig { critical: default_renotify_critical(), warning: default_renotify_warning(), info: None }
    }
}
