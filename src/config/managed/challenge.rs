//! `managed[].challenge`: how the CA's challenges are answered (http-01 through the built-in
//! listener or a webroot, dns-01 through a hook, the propagation check).

use super::*;

/// Challenge type and its parameters.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChallengeConfig {
    /// `http-01` or `dns-01`.
    #[serde(rename = "type")]
    pub kind: String,
    /// http-01: address of the built-in listener (the ACME server validates on port 80 of each
    /// identifier; forward that port here). Default `127.0.0.1:5002` unless `webroot` is given.
    #[serde(default)]
    pub listen: Option<String>,
    /// http-01: a directory a web server already serves for the identifiers; certvigil writes
    /// `.well-known/acme-challenge/<token>` under it and removes it afterwards.
    #[serde(default)]
    pub webroot: Option<String>,
    /// dns-01: command (argv, no shell) that sets and removes the TXT record, called as
    /// `<command…> present <fqdn.> <value>` and `<command…> cleanup <fqdn.> <value>` (the
    /// interface of lego's exec provider).
    #[serde(default)]
    pub hook: Option<Vec<String>>,
    /// dns-01: how long each hook call may take (default 60s).
    #[serde(default)]
    pub hook_timeout: Option<DurationSpec>,
    /// dns-01: wait this long after the records are set before asking for validation.
    #[serde(default)]
    pub propagation_delay: Option<DurationSpec>,
    /// dns-01: DNS servers (`address:port`, e.g. the zone's authoritative servers) asked for
    /// the TXT records after they are set; validation is asked for only once every server
    /// answers every record. Unset: no check (rely on `propagation_delay`).
    #[serde(default)]
    pub resolvers: Option<Vec<String>>,
    /// dns-01: how long the records may take to appear at the `resolvers` (default 2m).
    #[serde(default)]
    pub propagation_timeout: Option<DurationSpec>,
}

/// How control of the identifiers is proven (validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChallengeSpec {
    /// http-01 answered by certvigil's own listener.
    Http01Listener { listen: SocketAddr },
    /// http-01 answered by files written into a served directory.
    Http01Webroot { webroot: PathBuf },
    /// dns-01 through a hook command.
    Dns01 { hook: Vec<String>, timeout: Duration, propagation_delay: Duration, check: Option<PropagationCheck> },
}

/// Where and how long dns-01 records are looked for before validation is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropagationCheck {
    pub resolvers: Vec<SocketAddr>,
    pub timeout: Duration,
}

pub(crate) const DEFAULT_PROPAGATION_TIMEOUT: Duration = Duration::from_secs(120);

pub(crate) fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5002))
}

pub(crate) fn validate_challenge(
    c: &ChallengeConfig,
    base: &Path,
    at: &dyn Fn(&[&str]) -> Vec<String>,
    errs: &mut Vec<PathedError>,
) -> Option<ChallengeSpec> {
    let before = errs.len();
    let refuse = |present: bool, field: &str, why: &str, errs: &mut Vec<PathedError>| {
        if present {
            errs.push((at(&["challenge", field]), why.to_string()));
        }
    };
    match c.kind.as_str() {
        "http-01" => {
            let why = "only for dns-01";
            refuse(c.hook.is_some(), "hook", why, errs);
            refuse(c.hook_timeout.is_some(), "hook_timeout", why, errs);
            refuse(c.propagation_delay.is_some(), "propagation_delay", why, errs);
            refuse(c.resolvers.is_some(), "resolvers", why, errs);
            refuse(c.propagation_timeout.is_some(), "propagation_timeout", why, errs);
            match (&c.listen, &c.webroot) {
                (Some(_), Some(_)) => {
                    errs.push((at(&["challenge", "webroot"]), "give either listen or webroot, not both".into()));
                    None
                }
                (_, Some(w)) if w.trim().is_empty() => {
                    errs.push((at(&["challenge", "webroot"]), "must not be empty".into()));
                    None
                }
                (_, Some(w)) => (errs.len() == before).then(|| ChallengeSpec::Http01Webroot { webroot: base.join(w.trim()) }),
                (Some(l), None) => match l.trim().parse::<SocketAddr>() {
                    Ok(listen) => (errs.len() == before).then_some(ChallengeSpec::Http01Listener { listen }),
                    Err(_) => {
                        errs.push((at(&["challenge", "listen"]), format!("`{l}` is not an address:port (example: 127.0.0.1:5002)")));
                        None
                    }
                },
                (None, None) => (errs.len() == before).then(|| ChallengeSpec::Http01Listener { listen: default_listen() }),
            }
        }
        "dns-01" => {
            let why = "only for http-01";
            refuse(c.listen.is_some(), "listen", why, errs);
            refuse(c.webroot.is_some(), "webroot", why, errs);
            let hook = match &c.hook {
                None => {
                    errs.push((at(&["challenge", "hook"]), "dns-01 needs a hook command that sets the TXT record".into()));
                    None
                }
                Some(argv) => match argv_ok(argv) {
                    Ok(()) => Some(argv.clone()),
                    Err(e) => {
                        errs.push((at(&["challenge", "hook"]), e));
                        None
                    }
                },
            };
            let timeout = match opt_duration(&c.hook_timeout) {
                Ok(Some(d)) if d.is_zero() => {
                    errs.push((at(&["challenge", "hook_timeout"]), "must be more than 0".into()));
                    DEFAULT_HOOK_TIMEOUT
                }
                Ok(d) => d.unwrap_or(DEFAULT_HOOK_TIMEOUT),
                Err(e) => {
                    errs.push((at(&["challenge", "hook_timeout"]), e));
                    DEFAULT_HOOK_TIMEOUT
                }
            };
            let propagation_delay = match opt_duration(&c.propagation_delay) {
                Ok(d) => d.unwrap_or_default(),
                Err(e) => {
                    errs.push((at(&["challenge", "propagation_delay"]), e));
                    Duration::ZERO
                }
            };
            let mut resolvers = Vec::new();
            for (j, r) in c.resolvers.iter().flatten().enumerate() {
                match r.trim().parse::<SocketAddr>() {
                    Ok(a) => resolvers.push(a),
                    Err(_) => errs.push((
                        at(&["challenge", "resolvers", &j.to_string()]),
                        format!("`{r}` is not an address:port (example: 192.0.2.53:53)"),
                    )),
                }
            }
            if c.resolvers.as_ref().is_some_and(Vec::is_empty) {
                errs.push((at(&["challenge", "resolvers"]), "give at least one address:port, or leave resolvers out".into()));
            }
            let check_timeout = match opt_duration(&c.propagation_timeout) {
                Ok(Some(d)) if d.is_zero() => {
                    errs.push((at(&["challenge", "propagation_timeout"]), "must be more than 0".into()));
                    DEFAULT_PROPAGATION_TIMEOUT
                }
                Ok(Some(_)) if c.resolvers.is_none() => {
                    errs.push((at(&["challenge", "propagation_timeout"]), "only with resolvers".into()));
                    DEFAULT_PROPAGATION_TIMEOUT
                }
                Ok(d) => d.unwrap_or(DEFAULT_PROPAGATION_TIMEOUT),
                Err(e) => {
                    errs.push((at(&["challenge", "propagation_timeout"]), e));
                    DEFAULT_PROPAGATION_TIMEOUT
                }
            };
            let check = (!resolvers.is_empty()).then_some(PropagationCheck { resolvers, timeout: check_timeout });
            match hook {
                Some(hook) if errs.len() == before => Some(ChallengeSpec::Dns01 { hook, timeout, propagation_delay, check }),
                _ => None,
            }
        }
        other => {
            errs.push((at(&["challenge", "type"]), format!("`{other}` is not supported (http-01 or dns-01)")));
            None
        }
    }
}
