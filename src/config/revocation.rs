//! `revocation:`: how CRLs and OCSP are fetched and trusted, validated into
//! [`RevocationSpec`].

use super::*;

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
    /// ACME directories whose renewal information (RFC 9773) is watched for the inventoried
    /// certificates their CA issued, as an early warning of revocation: a suggested window that
    /// moves earlier or into the past is an `ari-early-renewal` finding. The directories of
    /// `managed` certificates are watched for their issuers without being listed here.
    #[serde(default)]
    pub ari_watch: Vec<AriWatchConfig>,
    /// Most certificates asked about in one revocation pass (each is asked at most twice a day;
    /// the rest wait for the next pass).
    #[serde(default = "default_ari_per_pass")]
    #[schemars(range(min = 1, max = 1000000))]
    pub ari_per_pass: u32,
}

/// One ACME server whose renewal information is watched.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AriWatchConfig {
    /// The ACME directory URL: https, or http to a loopback address only.
    pub directory: String,
    /// The certificates this CA issued, by their issuer's key identifier: the authority key
    /// identifier they carry (hex, colons allowed), one per issuing CA certificate.
    pub issuers: Vec<String>,
    /// PEM file of the CAs trusted for the directory's TLS (a private ACME CA); relative to this
    /// file. Default: the system's trust store.
    #[serde(default)]
    pub ca_bundle: Option<String>,
}

/// A validated `ari_watch` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AriWatchSpec {
    pub directory: String,
    /// Authority key identifiers, lower-case hex without separators (as the store keeps them).
    pub issuers: Vec<String>,
    pub ca_bundle: Option<PathBuf>,
}

pub(crate) fn default_ari_per_pass() -> u32 {
    2000
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

pub(crate) fn default_timeout() -> DurationSpec {
    DurationSpec::Text("10s".into())
}
pub(crate) fn default_max_crl_size() -> ByteSize {
    ByteSize::Text("256MiB".into())
}
pub(crate) fn default_stale_grace() -> DurationSpec {
    DurationSpec::Text("1h".into())
}
pub(crate) fn default_clock_skew() -> DurationSpec {
    DurationSpec::Text("5m".into())
}
pub(crate) fn default_ocsp_max_cache() -> DurationSpec {
    DurationSpec::Text("7d".into())
}
pub(crate) fn default_concurrency() -> u32 {
    8
}
pub(crate) fn default_min_issuer_rsa_bits() -> u32 {
    2048
}
pub(crate) fn default_per_host_interval() -> DurationSpec {
    DurationSpec::Text("0ms".into())
}
pub(crate) fn default_per_host_concurrency() -> u32 {
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
            ari_watch: Vec::new(),
            ari_per_pass: default_ari_per_pass(),
        }
    }
}

/// Validated revocation settings.
#[derive(Debug, Clone)]
pub struct RevocationSpec {
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
    pub ari_watch: Vec<AriWatchSpec>,
    pub ari_per_pass: usize,
}

impl Default for RevocationSpec {
    fn default() -> Self {
        validate_revocation(&RevocationConfig::default(), Path::new("/"), &mut Vec::new())
    }
}

pub(crate) fn validate_revocation(r: &RevocationConfig, base: &Path, errs: &mut Vec<PathedError>) -> RevocationSpec {
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
    let mut ari_watch = Vec::new();
    for (i, w) in r.ari_watch.iter().enumerate() {
        let at = |field: &str| vec!["revocation".to_string(), "ari_watch".into(), i.to_string(), field.to_string()];
        match reqwest::Url::parse(w.directory.trim()) {
            Ok(u) if u.scheme() == "https" => {}
            Ok(u) if u.scheme() == "http" && alerts::is_loopback(u.host_str().unwrap_or("").trim_matches(['[', ']'])) => {}
            Ok(u) => errs.push((at("directory"), format!("scheme `{}`: https only (http to a loopback address)", u.scheme()))),
            Err(e) => errs.push((at("directory"), format!("`{}` is not a URL: {e}", w.directory))),
        }
        let mut issuers = Vec::new();
        for (j, k) in w.issuers.iter().enumerate() {
            let hex: String = k.chars().filter(|c| *c != ':' && !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
            if hex.is_empty() || !hex.len().is_multiple_of(2) || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                errs.push((
                    vec!["revocation".into(), "ari_watch".into(), i.to_string(), "issuers".into(), j.to_string()],
                    format!("`{k}` is not a key identifier (hex, colons allowed)"),
                ));
            } else {
                issuers.push(hex);
            }
        }
        if w.issuers.is_empty() {
            errs.push((at("issuers"), "name at least one issuer key identifier".into()));
        }
        let ca_bundle = w.ca_bundle.as_deref().filter(|p| !p.is_empty()).map(|p| base.join(p));
        ari_watch.push(AriWatchSpec { directory: w.directory.trim().to_string(), issuers, ca_bundle });
    }
    RevocationSpec {
        ari_watch,
        ari_per_pass: r.ari_per_pass.max(1) as usize,
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
