//! `jobs:`: what the daemon runs and when (cron expressions, time zones, jitter, catch-up).

use super::*;

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

pub(crate) fn validate_jobs(config: &Config, errs: &mut Vec<PathedError>) -> Vec<Job> {
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
