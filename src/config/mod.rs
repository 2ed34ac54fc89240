//! Configuration: YAML types (what an admin writes), loading with positioned errors, and pure
//! validation into [`Settings`] (what the program uses).
//!
//! Loading reports every error at once — syntax, unknown keys, wrong types (checked against the
//! JSON Schema generated from these types), and semantic checks — each as
//! `file:line:column: key.path: message`.
//!
//! A leaf: nothing here uses another module of certvigil but `model`. One file per section;
//! each section's YAML type is `*Config` (the source kinds keep the `*Source` names the JSON
//! Schema publishes) and validates into a `*Spec`; the validated whole is [`Settings`].

pub mod alerts;
pub mod daemon;
pub mod jobs;
pub mod managed;
pub mod owners;
pub mod policy;
pub mod revocation;
pub mod schedule;
pub mod schema_check;
pub mod secret;
pub mod sources;
pub mod store;
pub mod values;
pub mod yaml;

pub use alerts::*;
pub use daemon::*;
pub use jobs::*;
pub use owners::{OwnersConfig, OwnersSpec};
pub use policy::*;
pub use revocation::*;
pub use sources::files::*;
pub use sources::{SourceCommon, SourceConfig, SourceSpec};
pub use store::*;
pub use values::*;

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
    /// Who owns each certificate when its sources do not say: contacts and rules.
    #[serde(default, deserialize_with = "null_is_default")]
    pub owners: OwnersConfig,
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
    /// A PostgreSQL store instead of the SQLite file.
    pub store_postgres: Option<PostgresSpec>,
    pub sources: Vec<SourceSpec>,
    pub revocation: RevocationSpec,
    pub policy: policy::PolicySpec,
    pub alerts: alerts::AlertsSpec,
    pub owners: OwnersSpec,
    pub jobs: Vec<Job>,
    pub daemon: DaemonSpec,
    pub managed: Vec<managed::ManagedSpec>,
    /// Every secret reference in the file and where it is written (filled by [`parse_str`]);
    /// [`check_secrets`] resolves them.
    pub secrets: Vec<secret::SecretUse>,
}

/// Resolves every secret reference of `settings` the way the daemon will ([`secret::check_use`]):
/// the configuration errors (a variable unset or empty, a file missing, unreadable, too
/// large or writable by every user, an API token too short) and the warnings (a secret file
/// readable by every user), each positioned at the reference. `config validate` and `run`
/// call it before anything else is opened.
pub fn check_secrets(settings: &Settings) -> (Vec<ConfigError>, Vec<ConfigError>) {
    let file = settings.file.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(built-in defaults)".into());
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    for u in &settings.secrets {
        for t in secret::check_use(u) {
            let (list, message) = match t {
                secret::Trouble::Error(m) => (&mut errors, m),
                secret::Trouble::Warning(m) => (&mut warnings, m),
            };
            list.push(ConfigError { file: file.clone(), line: u.line, col: u.col, path: u.path.clone(), message });
        }
    }
    // The read-only token must differ from the admin one (the daemon refuses them alike).
    let token = |key: &str| settings.secrets.iter().find(|u| u.path == key);
    if errors.is_empty()
        && let (Some(admin), Some(viewer)) = (token(secret::TOKEN_KEYS[0]), token(secret::TOKEN_KEYS[1]))
        && let (Ok(a), Ok(v)) = (admin.reference.resolve(), viewer.reference.resolve())
        && a.expose().trim() == v.expose().trim()
    {
        let message = "it is the same token as daemon.token; the read-only token must differ".to_string();
        errors.push(ConfigError { file, line: viewer.line, col: viewer.col, path: viewer.path.clone(), message });
    }
    (errors, warnings)
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
    let secrets = secret::find_uses(&doc);
    let mut settings = validate(&config, base).map_err(|errs| {
        ConfigErrors(
            errs.into_iter()
                .map(|(path, message)| {
                    let (line, col) = doc.locate(&path).map(|n| (n.line, n.col)).unwrap_or((0, 0));
                    at(line, col, &path, message)
                })
                .collect(),
        )
    })?;
    settings.secrets = secrets;
    Ok(settings)
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
    let store_postgres = store::validate(&config.store, base, &mut errs);
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
                let trust_root_files = Matcher::compile(&f.trust_root_files)
                    .map_err(|(j, m)| errs.push((p(&["sources", &idx, "trust_root_files", &j.to_string()]), format!("bad pattern: {m}"))));
                let public_key_files = Matcher::compile(&f.public_key_files)
                    .map_err(|(j, m)| errs.push((p(&["sources", &idx, "public_key_files", &j.to_string()]), format!("bad pattern: {m}"))));
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
                if let (Ok(include), Ok(exclude), Ok(trust_root_files), Ok(public_key_files)) =
                    (include, exclude, trust_root_files, public_key_files)
                {
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
                        trust_root_files,
                        public_key_files,
                    }));
                }
            }
        }
    }
    let revocation = validate_revocation(&config.revocation, base, &mut errs);
    let policy = validate_policy(config, &revocation, &mut errs);
    let alerts = alerts::validate(&config.alerts, base, &mut errs);
    let owners = owners::validate_owners(&config.owners, &names, &mut errs);
    let jobs = validate_jobs(config, &mut errs);
    let daemon = validate_daemon(&config.daemon, &mut errs);
    let managed = managed::validate(&config.managed, base, &mut errs);
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(Settings {
        file: None,
        store_path,
        store_postgres,
        sources,
        revocation,
        policy,
        alerts,
        owners,
        jobs,
        daemon,
        managed,
        secrets: Vec::new(),
    })
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
    fn metrics_compat() {
        assert_eq!(parse_str("", "t.yaml", Path::new("/")).unwrap().daemon.metrics_compat, MetricsCompat::Both);
        let s = parse_str("daemon:\n  metrics:\n    compat: v3\n", "t.yaml", Path::new("/")).unwrap();
        assert_eq!(s.daemon.metrics_compat, MetricsCompat::V3);
        let e = errors("daemon:\n  metrics:\n    compat: v5\n");
        assert!(e.len() == 1 && e[0].starts_with("t.yaml:3:13: daemon.metrics.compat: `v5` is not one of: v3, v4, both"), "{e:#?}");
        let e = errors("daemon:\n  metrics:\n    compatibility: v4\n");
        assert!(e.len() == 1 && e[0].starts_with("t.yaml:3:5: daemon.metrics.compatibility: unknown key"), "{e:#?}");
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
