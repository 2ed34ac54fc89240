//! Command-line interface: argument types (clap) and the commands a PKI admin runs.
//!
//! Exit codes (also in `certvigil --help`):
//! 0 success · 1 runtime failure · 2 bad usage or invalid configuration ·
//! 3 `list --fail-if-any` matched or `check --fail-if-revoked` found a revocation ·
//! 4 scan finished but some objects could not be read.

use anyhow::{Context, Result, bail};
use certvigil::app::scan;
use certvigil::config::{self, Settings};
use certvigil::model::{ExpiryStatus, RevocationState, RevocationStatus, UnixTime, days_left, format_date, format_time};
use certvigil::sources;
use certvigil::store::{CertRow, Store};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// Writes to stdout. A closed pipe (`certvigil list | head`) ends the program quietly, as for
/// any Unix filter; other write errors are reported once.
macro_rules! outln {
    ($($t:tt)*) => { $crate::cli::emit(format_args!($($t)*), true) };
}
macro_rules! out {
    ($($t:tt)*) => { $crate::cli::emit(format_args!($($t)*), false) };
}

pub fn emit(args: std::fmt::Arguments<'_>, newline: bool) {
    let mut o = std::io::stdout().lock();
    let result = o.write_fmt(args).and_then(|()| if newline { o.write_all(b"\n") } else { Ok(()) });
    if let Err(e) = result {
        exit_on_broken_pipe(&e);
        eprintln!("certvigil: cannot write to stdout: {e}");
        std::process::exit(i32::from(EXIT_FAILURE));
    }
}

/// Ends the process quietly when the reader of stdout has gone away.
pub fn exit_on_broken_pipe(e: &std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
}

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_MATCHED: u8 = 3;
pub const EXIT_SCAN_ERRORS: u8 = 4;

const AFTER_HELP: &str = "Exit codes: 0 success, 1 runtime failure, 2 bad usage or invalid configuration, \
3 `list --fail-if-any` matched or `check --fail-if-revoked` found a revoked certificate, \
4 scan finished but some objects could not be read.";

/// Certificate lifecycle management: inventory, expiry and revocation tracking, renewal, alerts.
#[derive(Debug, Parser)]
#[command(name = "certvigil", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Configuration file [default: $CERTVIGIL_CONFIG, else /etc/certvigil/certvigil.yaml]
    #[arg(short, long, global = true, env = "CERTVIGIL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Store database, overriding the configuration's `store.path`.
    #[arg(long, global = true, env = "CERTVIGIL_STORE")]
    pub store: Option<PathBuf>,
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
    /// Judge as if the time were this (Unix seconds or RFC 3339, e.g. 2026-01-31T00:00:00Z)
    /// instead of now: for reproducible reports, to look ahead, or to read a recorded CRL or
    /// OCSP response as at a moment. Offline commands only: `run` refuses it.
    #[arg(long = "at", alias = "now", global = true, env = "CERTVIGIL_NOW", value_name = "TIME")]
    pub now: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan every configured source once and update the inventory.
    Scan(ScanArgs),
    /// Renew the managed certificates that are due (ACME) and install them.
    Renew(RenewArgs),
    /// Revoke a managed certificate through its ACME account (and with --rotate reissue it
    /// under a new key); an interrupted revocation is finished by the next renew or revoke.
    Revoke(RevokeArgs),
    /// The ACME accounts of the managed certificates.
    #[command(subcommand)]
    Account(AccountCommand),
    /// List inventoried certificates.
    List(ListArgs),
    /// Show every field, sighting and history entry of a certificate.
    Show(ShowArgs),
    /// List objects whose last read failed, and why.
    Errors(ErrorsArgs),
    /// Check revocation (OCSP and CRL) now, for the given certificates or all current ones.
    Check(CheckArgs),
    /// Parse certificate files directly, without the store.
    Inspect(InspectArgs),
    /// Read a CRL file: verify it against its issuer and look serials up, or decide a
    /// certificate's status from it exactly as `check` does.
    Crl(CrlArgs),
    /// Read an OCSP response file: verify it against the issuer for a certificate or serial,
    /// exactly as `check` does (the twin of `crl`, for debugging a responder).
    Ocsp(OcspArgs),
    /// List key objects (PKCS#11 private and public keys): attributes, the certificates each
    /// pairs with, and their problems; and token certificates whose key is not on the token.
    Keys(KeysArgs),
    /// Print every finding and what an evaluation would do (dry run: nothing is sent).
    Plan(OutputArgs),
    /// Run the policy, update alerts and send the notifications that are due.
    Evaluate(OutputArgs),
    /// List alerts.
    Alerts(AlertsArgs),
    /// Acknowledge alerts: by alert id, or all open alerts of a certificate or subject.
    Ack(AckArgs),
    /// Silence notifications for a certificate, a subject or a match, for a while.
    #[command(subcommand)]
    Silence(SilenceCommand),
    /// Alert delivery tools.
    #[command(subcommand)]
    Alert(AlertCommand),
    /// Send the digest routes' queued notifications now.
    Digest(DigestArgs),
    /// List notifications waiting in the outbox (and, with --all, the sent ones).
    Outbox(AlertsArgs),
    /// List the scheduled jobs: expression in words, next fire times, last outcome.
    Schedule(ScheduleArgs),
    /// The append-only, hash-chained audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run the daemon: scheduled jobs, HTTP metrics and API, systemd notify and reload.
    Run(RunArgs),
    /// Generate the man pages or shell completions (for packaging).
    #[command(subcommand, hide = true)]
    Generate(GenerateCommand),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Listen address of the HTTP server, overriding `http.listen`.
    #[arg(long)]
    pub listen: Option<String>,
    /// Exit after this long (for tests and benchmarks), e.g. `30s`.
    #[arg(long, hide = true, value_parser = parse_duration)]
    pub exit_after: Option<i64>,
}

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Write certvigil.1 and one page per subcommand (certvigil-scan.1, …) into DIR.
    Man {
        #[arg(long)]
        out: PathBuf,
    },
    /// Write bash, zsh and fish completions into DIR.
    Completions {
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file and report every error with file:line:column.
    Validate,
    /// Print the JSON Schema of the configuration.
    Schema,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Directory, account URL, contacts, key thumbprint and file of the ACME account used by
    /// each managed certificate (all when no name is given). Never the private key.
    Show {
        /// A managed certificate name.
        name: Option<String>,
        #[arg(long, short, value_enum, default_value_t = SummaryFormat::Text)]
        output: SummaryFormat,
    },
    /// Replace the account key at the CA (RFC 8555 §7.3.5) and store the new credentials.
    Rollover {
        /// A managed certificate name; required when several directories are configured.
        name: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct RenewArgs {
    /// Managed certificates to renew (by name); all when none is given.
    pub names: Vec<String>,
    /// Renew even when not due, ignoring the backoff after failures.
    #[arg(long)]
    pub force: bool,
    /// Create the order and get its authorizations valid, without finalizing; report what
    /// would happen and store nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The managed certificate whose installed certificate is revoked.
    pub name: String,
    /// RFC 5280 reason: unspecified, keyCompromise, affiliationChanged, superseded or
    /// cessationOfOperation.
    #[arg(long)]
    pub reason: String,
    /// Once revoked, reissue it under a new key and install it.
    #[arg(long)]
    pub rotate: bool,
    #[arg(long, short, value_enum, default_value_t = SummaryFormat::Text)]
    pub output: SummaryFormat,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Scan only these sources (by name); repeatable.
    #[arg(long = "source")]
    pub sources: Vec<String>,
    #[arg(long, short, value_enum, default_value_t = SummaryFormat::Text)]
    pub output: SummaryFormat,
    /// Never draw a progress line (it is drawn only on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
    /// Parser threads [default: available cores].
    #[arg(long)]
    pub workers: Option<usize>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum SummaryFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only certificates whose notAfter is within this duration (e.g. 30d, 12h, 2w); expired
    /// ones included.
    #[arg(long, value_parser = parse_duration)]
    pub expiring_within: Option<i64>,
    /// Only certificates seen by this source; repeatable.
    #[arg(long = "source")]
    pub sources: Vec<String>,
    /// Only certificates seen by a source with this tag; repeatable.
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Only certificates with this extended key usage (codesigning, timestamping, serverauth, an OID).
    #[arg(long = "eku")]
    pub ekus: Vec<String>,
    /// Only certificates with this status; repeatable.
    #[arg(long = "status", value_enum)]
    pub statuses: Vec<ExpiryStatus>,
    /// Only certificates with this revocation state; repeatable.
    #[arg(long = "revocation", value_enum)]
    pub revocation: Vec<RevocationState>,
    /// Include certificates no longer found in any source.
    #[arg(long)]
    pub all: bool,
    #[arg(long, short, value_enum, default_value_t = ListFormat::Table)]
    pub output: ListFormat,
    /// Exit 3 when anything matches (for scripts and monitoring checks).
    #[arg(long)]
    pub fail_if_any: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Fingerprint prefix (hex, colons allowed) or serial number.
    pub query: String,
    #[arg(long, short, value_enum, default_value_t = SummaryFormat::Text)]
    pub output: SummaryFormat,
    /// Print the certificate as PEM instead.
    #[arg(long)]
    pub pem: bool,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// Only keys of this source; repeatable.
    #[arg(long = "source")]
    pub sources: Vec<String>,
    #[arg(long, short, value_enum, default_value_t = SummaryFormat::Text)]
    pub output: SummaryFormat,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    #[arg(long, short, value_enum, default_value_t = SummaryFormat::Text)]
    pub output: SummaryFormat,
}

#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// Include resolved alerts (or sent notifications).
    #[arg(long)]
    pub all: bool,
    #[arg(long, short, value_enum, default_value_t = SummaryFormat::Text)]
    pub output: SummaryFormat,
}

#[derive(Debug, Args)]
pub struct AckArgs {
    /// An alert id, a certificate's fingerprint prefix or serial, or a subject as `certvigil
    /// alerts -o json` shows it (`managed:web`, `key:<source>:<location>`).
    pub target: String,
    /// Only alerts of this finding kind (with a certificate or subject target).
    #[arg(long)]
    pub kind: Option<String>,
    /// Who acknowledges [default: $USER].
    #[arg(long)]
    pub by: Option<String>,
    #[arg(long)]
    pub note: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Silence a certificate (fingerprint prefix or serial), a subject (`managed:web`,
    /// `key:<source>:<location>`), or a match such as `source=web-prod,kind=expiring` (keys:
    /// source, tag, kind, eku, fingerprint, subject).
    Add {
        target: String,
        /// How long (e.g. 7d, 12h).
        #[arg(long = "for", value_parser = parse_duration)]
        duration: i64,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        by: Option<String>,
    },
    /// List silences in force (all with --all).
    List {
        #[arg(long)]
        all: bool,
    },
    /// End a silence now.
    Expire { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Send a test message to every receiver of a route.
    Test {
        #[arg(long)]
        route: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; names the first broken entry (exit 1).
    Verify,
    /// List entries, oldest first.
    List {
        /// Only entries this recent (e.g. 7d) or since this time (Unix seconds or RFC 3339).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[arg(long, short, value_enum, default_value_t = SummaryFormat::Text)]
        output: SummaryFormat,
    },
    /// Container images referenced by a mutable tag instead of a digest, as the last scan of
    /// each Kubernetes source found them, grouped by namespace.
    Images {
        /// Only this namespace.
        #[arg(long)]
        namespace: Option<String>,
        #[arg(long, short, value_enum, default_value_t = SummaryFormat::Text)]
        output: SummaryFormat,
        /// Exit 1 when there are findings (for CI); without it the exit status is 0.
        #[arg(long)]
        fail_on_findings: bool,
    },
}

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// How many upcoming fire times to show per job.
    #[arg(long, default_value_t = 5)]
    pub count: usize,
    #[arg(long, short, value_enum, default_value_t = SummaryFormat::Text)]
    pub output: SummaryFormat,
}

#[derive(Debug, Args)]
pub struct DigestArgs {
    /// Only this route.
    #[arg(long)]
    pub route: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Fingerprint prefixes or serials; all current certificates when none.
    pub certs: Vec<String>,
    #[arg(long, short, value_enum, default_value_t = SummaryFormat::Text)]
    pub output: SummaryFormat,
    /// Exit 3 when any checked certificate is revoked.
    #[arg(long)]
    pub fail_if_revoked: bool,
}

#[derive(Debug, Args)]
pub struct CrlArgs {
    /// The CRL (DER or PEM).
    pub file: PathBuf,
    /// The issuing CA certificate; the CRL's signature, issuer and key identifier are verified.
    #[arg(long)]
    pub issuer: Option<PathBuf>,
    /// Serial numbers (hex) to look up; repeatable.
    #[arg(long = "serial")]
    pub serials: Vec<String>,
    /// A file of serial numbers (hex), one per line, to look up.
    #[arg(long)]
    pub serials_file: Option<PathBuf>,
    /// A certificate to decide as `check` does: its serial is looked up, and the CRL's scope
    /// (issuing distribution point, reasons) is checked against it and its distribution points.
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// Largest CRL accepted.
    #[arg(long, default_value = "256MiB")]
    pub max_size: String,
}

#[derive(Debug, Args)]
pub struct OcspArgs {
    /// The OCSP response (DER, as a responder sends it).
    pub file: PathBuf,
    /// The issuing CA certificate of the certificate asked about.
    #[arg(long)]
    pub issuer: PathBuf,
    /// The certificate the response should answer for.
    #[arg(long, conflicts_with = "serial", required_unless_present = "serial")]
    pub cert: Option<PathBuf>,
    /// Its serial number (hex), when the certificate itself is not at hand.
    #[arg(long)]
    pub serial: Option<String>,
    /// The nonce the request carried (hex): the response must echo it (RFC 8954).
    #[arg(long)]
    pub nonce: Option<String>,
}

#[derive(Debug, Args)]
pub struct ErrorsArgs {
    #[arg(long)]
    pub source: Option<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Files to parse.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Environment variable holding a PKCS#12/JKS password; repeatable.
    #[arg(long = "password-env")]
    pub password_env: Vec<String>,
    #[arg(long, short, value_enum, default_value_t = SummaryFormat::Text)]
    pub output: SummaryFormat,
}

/// `30d`, `12h`, `2w`, `90m`, `45s`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    config::parse_duration(s).and_then(|d| i64::try_from(d.as_secs()).map_err(|_| format!("`{s}` is too long")))
}

/// The moment to judge at: `--at`/`CERTVIGIL_NOW` when given, else the clock.
pub fn now(cli: &Cli) -> Result<UnixTime> {
    match &cli.now {
        None => Ok(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)),
        Some(s) => parse_time(s)
            .ok_or_else(|| CliError::Usage(format!("--at: `{s}` is neither Unix seconds nor RFC 3339 (2026-01-31T00:00:00Z)")).into()),
    }
}

/// Unix seconds or RFC 3339 (`2026-01-31T00:00:00Z`).
pub fn parse_time(s: &str) -> Option<UnixTime> {
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let dt: der::DateTime = format!("{}Z", s.trim_end_matches('Z')).parse().ok()?;
    Some(dt.unix_duration().as_secs() as i64)
}

const DEFAULT_CONFIG: &str = "/etc/certvigil/certvigil.yaml";

/// Loads the configuration: the given file, else the default path if it exists, else (for
/// commands that only read the store) built-in defaults.
pub fn settings(cli: &Cli, required: bool) -> Result<Settings, CliError> {
    let path = match &cli.config {
        Some(p) => Some(p.clone()),
        None if Path::new(DEFAULT_CONFIG).exists() => Some(PathBuf::from(DEFAULT_CONFIG)),
        None => None,
    };
    match path {
        Some(p) => config::load(&p).map_err(|e| CliError::Config(e.to_string())),
        None if required => {
            Err(CliError::Usage(format!("no configuration: pass -c FILE (or set CERTVIGIL_CONFIG, or create {DEFAULT_CONFIG})")))
        }
        None => Ok(config::parse_str("", "(built-in defaults)", Path::new(".")).map_err(|e| CliError::Config(e.to_string()))?),
    }
}

/// The store path: `--store`, else the configuration's, else the platform state directory.
pub fn store_path(cli: &Cli, s: &Settings) -> PathBuf {
    if let Some(p) = &cli.store {
        return p.clone();
    }
    if let Some(p) = &s.store_path {
        return p.clone();
    }
    if let Some(d) = std::env::var_os("STATE_DIRECTORY").filter(|d| !d.is_empty()) {
        // systemd may pass several directories separated by ':'; the first is ours.
        let first = d.to_string_lossy().split(':').next().unwrap_or_default().to_string();
        return PathBuf::from(first).join("certvigil.db");
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    state.join("certvigil").join("certvigil.db")
}

/// Errors that map to specific exit codes.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Config(String),
}

fn open_store(cli: &Cli, s: &Settings) -> Result<Store> {
    let path = store_path(cli, s);
    Store::open(&path).with_context(|| format!("cannot open the store at {}", path.display()))
}

pub fn run(cli: &Cli) -> Result<u8> {
    match &cli.command {
        Command::Config(ConfigCommand::Validate) => {
            let s = settings(cli, true)?;
            let file = s.file.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
            outln!("{file}: OK ({} source{})", s.sources.len(), if s.sources.len() == 1 { "" } else { "s" });
            Ok(EXIT_OK)
        }
        Command::Config(ConfigCommand::Schema) => {
            outln!("{}", serde_json::to_string_pretty(&config::json_schema())?);
            Ok(EXIT_OK)
        }
        Command::Scan(a) => scan(cli, a),
        Command::Renew(a) => renew(cli, a),
        Command::Revoke(a) => revoke(cli, a),
        Command::Account(c) => account(cli, c),
        Command::List(a) => list(cli, a),
        Command::Show(a) => show(cli, a),
        Command::Errors(a) => errors(cli, a),
        Command::Check(a) => check(cli, a),
        Command::Crl(a) => crl(cli, a),
        Command::Ocsp(a) => ocsp(cli, a),
        Command::Keys(a) => keys(cli, a),
        Command::Plan(a) => plan(cli, a),
        Command::Evaluate(a) => evaluate(cli, a),
        Command::Alerts(a) => alerts(cli, a),
        Command::Ack(a) => ack(cli, a),
        Command::Silence(c) => silence(cli, c),
        Command::Alert(AlertCommand::Test { route }) => alert_test(cli, route),
        Command::Digest(a) => digest(cli, a),
        Command::Outbox(a) => outbox(cli, a),
        Command::Schedule(a) => schedule(cli, a),
        Command::Audit(c) => audit(cli, c),
        Command::Inspect(a) => inspect(cli, a),
        Command::Run(a) => run_daemon(cli, a),
        Command::Generate(c) => generate(c),
    }
}

fn renew(cli: &Cli, a: &RenewArgs) -> Result<u8> {
    let s = settings(cli, true)?;
    for name in &a.names {
        if !s.managed.iter().any(|m| &m.name == name) {
            let known: Vec<&str> = s.managed.iter().map(|m| m.name.as_str()).collect();
            return Err(CliError::Usage(format!("no managed certificate named `{name}` (configured: {})", known.join(", "))).into());
        }
    }
    let chosen: Vec<_> = s.managed.iter().filter(|m| a.names.is_empty() || a.names.contains(&m.name)).collect();
    if chosen.is_empty() {
        outln!("no managed certificates configured: nothing to renew");
        return Ok(0);
    }
    let mut store = open_store(cli, &s)?;
    let state_dir = store.path().parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let rt = runtime()?;
    let now = now(cli)?;
    let opts = certvigil::renewal::engine::Options { force: a.force, dry_run: a.dry_run };
    let outcomes = rt.block_on(certvigil::renewal::engine::run_all(&chosen, &mut store, &state_dir, now, opts));
    let mut failed = 0;
    for o in &outcomes {
        if o.action == certvigil::renewal::engine::Action::Failed {
            failed += 1;
            eprintln!("{}", o.line());
        } else {
            outln!("{}", o.line());
        }
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

fn revoke(cli: &Cli, a: &RevokeArgs) -> Result<u8> {
    let s = settings(cli, true)?;
    let Some(spec) = s.managed.iter().find(|m| m.name == a.name) else {
        let known: Vec<&str> = s.managed.iter().map(|m| m.name.as_str()).collect();
        return Err(CliError::Usage(format!("no managed certificate named `{}` (configured: {})", a.name, known.join(", "))).into());
    };
    let (_, reason) = certvigil::renewal::revoke::parse_reason(&a.reason).map_err(|e| CliError::Usage(format!("--reason: {e}")))?;
    let mut store = open_store(cli, &s)?;
    let state_dir = store.path().parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let rt = runtime()?;
    let now = now(cli)?;
    let out = match rt.block_on(certvigil::renewal::revoke::revoke(spec, &mut store, &state_dir, now, reason, a.rotate)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{}: revocation failed: {e:#}", spec.name);
            store.audit(now, "revoke-failed", "cli", &serde_json::json!({ "name": spec.name, "error": format!("{e:#}") }))?;
            return Ok(1);
        }
    };
    let reissue_failed = out.reissue.as_ref().is_some_and(|o| o.action == certvigil::renewal::engine::Action::Failed);
    match a.output {
        SummaryFormat::Json => outln!("{}", serde_json::to_string_pretty(&out)?),
        SummaryFormat::Text => {
            let how = if out.already_revoked { "already revoked at the CA" } else { "revoked" };
            let resumed = if out.resumed { " (resumed)" } else { "" };
            outln!("{}: serial {} {how} ({}){resumed}", out.name, out.serial, out.reason);
            match &out.reissue {
                Some(o) if reissue_failed => eprintln!("{}", o.line()),
                Some(o) => outln!("{}", o.line()),
                None if out.reason == "keyCompromise" => {
                    outln!("{}: the key is compromised; the next renewal (due now: the certificate is revoked) uses a new key", out.name)
                }
                None => {}
            }
        }
    }
    Ok(if reissue_failed { 1 } else { 0 })
}

/// The managed certificates `name` selects (all when `None`), one per ACME directory.
fn account_targets<'a>(s: &'a Settings, name: Option<&str>) -> Result<Vec<&'a certvigil::config::managed::ManagedSpec>> {
    if let Some(name) = name {
        return match s.managed.iter().find(|m| m.name == name) {
            Some(m) => Ok(vec![m]),
            None => {
                let known: Vec<&str> = s.managed.iter().map(|m| m.name.as_str()).collect();
                Err(CliError::Usage(format!("no managed certificate named `{name}` (configured: {})", known.join(", "))).into())
            }
        };
    }
    let mut seen = Vec::new();
    Ok(s.managed
        .iter()
        .filter(|m| {
            let new = !seen.contains(&m.directory);
            seen.push(m.directory.clone());
            new
        })
        .collect())
}

fn account(cli: &Cli, c: &AccountCommand) -> Result<u8> {
    let s = settings(cli, true)?;
    let store = open_store(cli, &s)?;
    let state_dir = store.path().parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    match c {
        AccountCommand::Show { name, output } => {
            let targets = account_targets(&s, name.as_deref())?;
            let mut rows = Vec::new();
            for m in targets {
                let info = certvigil::issuers::account::show(m, &state_dir)?;
                match output {
                    SummaryFormat::Json => rows.push(serde_json::json!({ "name": m.name, "directory": m.directory, "account": info })),
                    SummaryFormat::Text => match info {
                        None => outln!("{}: no account registered yet at {}", m.name, m.directory),
                        Some(i) => {
                            outln!("{}:", m.name);
                            outln!("  directory:  {}", i.directory);
                            outln!("  account:    {}", i.url);
                            outln!("  contacts:   {}", if i.contacts.is_empty() { "(none)".to_string() } else { i.contacts.join(", ") });
                            outln!("  thumbprint: {}", i.thumbprint);
                            outln!("  file:       {}", i.file.display());
                        }
                    },
                }
            }
            if matches!(output, SummaryFormat::Json) {
                outln!("{}", serde_json::to_string_pretty(&rows)?);
            }
            Ok(EXIT_OK)
        }
        AccountCommand::Rollover { name } => {
            let targets = account_targets(&s, name.as_deref())?;
            let m = match targets.as_slice() {
                [] => return Err(CliError::Usage("no managed certificates configured: no account to roll over".into()).into()),
                [m] => *m,
                _ => return Err(CliError::Usage("several ACME directories are configured: name the managed certificate".into()).into()),
            };
            let rt = runtime()?;
            let now = now(cli)?;
            match rt.block_on(certvigil::issuers::account::rollover(m, &state_dir)) {
                Ok((old, new)) => {
                    outln!("{}: account key rolled over at {}: thumbprint {old} -> {new}", m.name, m.directory);
                    let detail =
                        serde_json::json!({ "name": m.name, "directory": m.directory, "old_thumbprint": old, "new_thumbprint": new });
                    store.audit(now, "account-rollover", "cli", &detail)?;
                    Ok(EXIT_OK)
                }
                Err(e) => {
                    let detail = serde_json::json!({ "name": m.name, "directory": m.directory, "error": format!("{e:#}") });
                    store.audit(now, "account-rollover-failed", "cli", &detail)?;
                    Err(e)
                }
            }
        }
    }
}

fn scan(cli: &Cli, a: &ScanArgs) -> Result<u8> {
    let s = settings(cli, true)?;
    let now = now(cli)?;
    for name in &a.sources {
        if !s.sources.iter().any(|src| src.name() == name) {
            let known: Vec<&str> = s.sources.iter().map(|s| s.name()).collect();
            return Err(CliError::Usage(format!("no source named `{name}` (configured: {})", known.join(", "))).into());
        }
    }
    let chosen: Vec<Box<dyn sources::Source>> =
        s.sources.iter().filter(|src| a.sources.is_empty() || a.sources.iter().any(|n| n == src.name())).map(sources::build).collect();
    if chosen.is_empty() {
        eprintln!("no sources configured: nothing to scan");
    }
    let mut store = open_store(cli, &s)?;
    let workers = a.workers.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
    let draw = !a.no_progress && std::io::stderr().is_terminal();
    let mut progress = |p: &scan::Progress| {
        if draw {
            eprint!("\r\x1b[2K{}: {} objects, {} read, {} errors", p.source, p.objects, p.read, p.errors);
        }
    };
    let report = scan::scan(&mut store, &chosen, a.sources.is_empty(), now, workers, &mut progress)?;
    if draw {
        eprint!("\r\x1b[2K");
    }
    let errors = store.run_errors(report.run.id)?;
    let r = &report.run;
    match a.output {
        SummaryFormat::Json => {
            let v = serde_json::json!({ "run": r, "sources": report.sources, "errors": errors });
            outln!("{}", serde_json::to_string_pretty(&v)?);
        }
        SummaryFormat::Text => {
            outln!(
                "scan {}: {} objects ({} read), {} certificate sightings ({} new certificates, {} gone), {} error{}",
                r.id,
                r.objects_seen,
                r.objects_read,
                r.certs_seen,
                r.certs_new,
                r.certs_gone,
                r.errors,
                if r.errors == 1 { "" } else { "s" }
            );
            for src in &report.sources {
                outln!(
                    "  {} ({}): {} objects, {} read, {} errors, {} vanished",
                    src.name,
                    src.kind,
                    src.objects,
                    src.read,
                    src.errors,
                    src.vanished
                );
            }
            if !errors.is_empty() {
                outln!("errors:");
                for e in &errors {
                    outln!("  {}: {}: {}", e.source, e.location, e.message);
                }
            }
        }
    }
    Ok(if r.errors > 0 { EXIT_SCAN_ERRORS } else { EXIT_OK })
}

/// Filters from `list`, applied to stored rows. Pure apart from its inputs.
/// A certificate's expiry status under the policy that applies to it (thresholds in days or
/// as a fraction of its lifetime, per source, tag and EKU).
fn expiry_status(
    c: &CertRow,
    policy: &certvigil::policy::PolicySettings,
    tags: &std::collections::HashMap<String, Vec<String>>,
    now: UnixTime,
) -> ExpiryStatus {
    let f = &c.facts;
    let mut t: Vec<String> = c.sources.iter().flat_map(|s| tags.get(s).cloned().unwrap_or_default()).collect();
    t.dedup();
    let window = policy.warning_window(&c.sources, &t, &f.ext_key_usage, f.not_before, f.not_after);
    ExpiryStatus::at(f.not_before, f.not_after, now, window)
}

fn matches(
    c: &CertRow,
    a: &ListArgs,
    now: UnixTime,
    policy: &certvigil::policy::PolicySettings,
    tags: &std::collections::HashMap<String, Vec<String>>,
) -> bool {
    let f = &c.facts;
    if a.expiring_within.is_some_and(|w| f.not_after - now > w) {
        return false;
    }
    if !a.sources.is_empty() && !c.sources.iter().any(|s| a.sources.contains(s)) {
        return false;
    }
    if !a.tags.is_empty() && !c.sources.iter().any(|s| tags.get(s).is_some_and(|t| t.iter().any(|t| a.tags.contains(t)))) {
        return false;
    }
    if !a.ekus.is_empty() {
        let wanted: Vec<String> = a.ekus.iter().map(|e| certvigil::x509::cert::normalise_eku(e)).collect();
        if !f.ext_key_usage.iter().any(|e| wanted.contains(e)) {
            return false;
        }
    }
    if !a.statuses.is_empty() && !a.statuses.contains(&expiry_status(c, policy, tags, now)) {
        return false;
    }
    true
}

/// The CN of an RFC 4514 name string, else the whole string.
fn short_name(dn: &str) -> String {
    dn.split(',').find_map(|rdn| rdn.trim().strip_prefix("CN=")).map(|cn| cn.replace("\\,", ",")).unwrap_or_else(|| dn.to_string())
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_string() } else { format!("{}…", s.chars().take(max - 1).collect::<String>()) }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

fn color_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

fn list(cli: &Cli, a: &ListArgs) -> Result<u8> {
    let s = settings(cli, false)?;
    let now = now(cli)?;
    let store = open_store(cli, &s)?;
    let tags = store.source_tags()?;
    // The state of each certificate (a few bytes each); JSON reads each row's whole status.
    let revocation = store.revocation_states()?;
    let rev_state = |c: &CertRow| revocation.get(&c.id).copied();
    let wanted = |c: &CertRow| {
        matches(c, a, now, &s.policy, &tags) && (a.revocation.is_empty() || rev_state(c).is_some_and(|s| a.revocation.contains(&s)))
    };
    let status = |c: &CertRow| expiry_status(c, &s.policy, &tags, now);
    let tags_of = |c: &CertRow| -> Vec<String> {
        let mut t: Vec<String> = c.sources.iter().flat_map(|s| tags.get(s).cloned().unwrap_or_default()).collect();
        t.sort();
        t.dedup();
        t
    };
    // Rows stream from the store to the output, one at a time (the table reads them twice:
    // once for the column widths, once to print).
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut matched = 0usize;
    match a.output {
        ListFormat::Json => {
            use serde::ser::{SerializeSeq, Serializer};
            let mut ser = serde_json::Serializer::pretty(&mut out);
            let mut seq = ser.serialize_seq(None)?;
            store.each_certificate(a.all, |c| {
                if !wanted(&c) {
                    return Ok(());
                }
                matched += 1;
                let mut v = serde_json::to_value(&c).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("name".into(), c.facts.display_name().into());
                    o.insert("status".into(), status(&c).as_str().into());
                    o.insert("days_left".into(), days_left(c.facts.not_after, now).into());
                    o.insert("not_before_rfc3339".into(), format_time(c.facts.not_before).into());
                    o.insert("not_after_rfc3339".into(), format_time(c.facts.not_after).into());
                    o.insert("tags".into(), tags_of(&c).into());
                    o.insert("revocation".into(), serde_json::to_value(store.revocation_status(c.id)?).unwrap_or_default());
                }
                seq.serialize_element(&v)?;
                Ok::<(), anyhow::Error>(())
            })?;
            seq.end()?;
            writeln!(out)?;
        }
        ListFormat::Csv => {
            writeln!(
                out,
                "fingerprint,name,subject,issuer,serial,not_before,not_after,days_left,status,revocation,key,signature_algorithm,ext_key_usage,sightings,sources,tags"
            )?;
            store.each_certificate(a.all, |c| {
                if !wanted(&c) {
                    return Ok::<(), anyhow::Error>(());
                }
                matched += 1;
                let f = &c.facts;
                let fields = [
                    f.fingerprint.0.clone(),
                    f.display_name(),
                    f.subject.clone(),
                    f.issuer.clone(),
                    f.serial.clone(),
                    format_time(f.not_before),
                    format_time(f.not_after),
                    days_left(f.not_after, now).to_string(),
                    status(&c).to_string(),
                    rev_state(&c).map(|s| s.to_string()).unwrap_or_default(),
                    f.key.to_string(),
                    f.signature_algorithm.clone(),
                    f.ext_key_usage.join(" "),
                    c.current_sightings.to_string(),
                    c.sources.join(" "),
                    tags_of(&c).join(" "),
                ];
                writeln!(out, "{}", fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","))?;
                Ok(())
            })?;
        }
        ListFormat::Table => {
            let color = color_enabled();
            let header = ["NAME", "ISSUER", "NOT AFTER", "DAYS", "STATUS", "REVOCATION", "SEEN", "FINGERPRINT"];
            let cells = |c: &CertRow| -> [String; 8] {
                let f = &c.facts;
                [
                    truncate(&f.display_name(), 44),
                    truncate(&short_name(&f.issuer), 36),
                    format_date(f.not_after),
                    days_left(f.not_after, now).to_string(),
                    if c.gone_since.is_some() { "gone".to_string() } else { status(c).to_string() },
                    rev_state(c).map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                    c.current_sightings.to_string(),
                    f.fingerprint.0[..12].to_string(),
                ]
            };
            let mut widths = header.map(|h| h.chars().count());
            store.each_certificate(a.all, |c| {
                if wanted(&c) {
                    for (w, cell) in widths.iter_mut().zip(cells(&c)) {
                        *w = (*w).max(cell.chars().count());
                    }
                }
                Ok::<(), anyhow::Error>(())
            })?;
            let line = |cells: &[String]| -> String {
                cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_string()
            };
            writeln!(out, "{}", line(&header.map(String::from)))?;
            store.each_certificate(a.all, |c| {
                if !wanted(&c) {
                    return Ok::<(), anyhow::Error>(());
                }
                matched += 1;
                let row = cells(&c);
                let mut text = line(&row);
                if color {
                    let code = match row[4].as_str() {
                        _ if row[5] == "revoked" => "31",
                        "expired" => "31",
                        "expiring" => "33",
                        "not-yet-valid" | "gone" => "2",
                        _ => "",
                    };
                    if !code.is_empty() {
                        text = format!("\x1b[{code}m{text}\x1b[0m");
                    }
                }
                writeln!(out, "{text}")?;
                Ok(())
            })?;
            let errors = store.object_errors(None)?.len();
            if errors > 0 {
                writeln!(out, "\n{errors} object{} could not be read; see `certvigil errors`", if errors == 1 { "" } else { "s" })?;
            }
            if matched == 0 && store.last_run()?.is_none() {
                writeln!(out, "(the inventory is empty: run `certvigil scan` first)")?;
            }
        }
    }
    out.flush()?;
    Ok(if a.fail_if_any && matched > 0 { EXIT_MATCHED } else { EXIT_OK })
}

fn show(cli: &Cli, a: &ShowArgs) -> Result<u8> {
    let s = settings(cli, false)?;
    let now = now(cli)?;
    let store = open_store(cli, &s)?;
    if a.query.chars().filter(|c| *c != ':').count() < 4 {
        return Err(CliError::Usage("give at least 4 hex digits of the fingerprint, or the serial".into()).into());
    }
    let found = store.find(&a.query)?;
    let c = match found.as_slice() {
        [] => bail!("no certificate matches `{}`", a.query),
        [one] => one,
        many => {
            let names: Vec<String> =
                many.iter().take(10).map(|c| format!("  {}  {}", c.facts.fingerprint, c.facts.display_name())).collect();
            return Err(CliError::Usage(format!(
                "`{}` matches {} certificates; give more of the fingerprint:\n{}",
                a.query,
                many.len(),
                names.join("\n")
            ))
            .into());
        }
    };
    if a.pem {
        let der = store.der(c.id)?;
        let pem =
            der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &der).map_err(|e| anyhow::anyhow!("PEM encoding: {e}"))?;
        out!("{pem}");
        return Ok(EXIT_OK);
    }
    let sightings = store.sightings(c.id)?;
    let history = store.history(c.id)?;
    let revocation = store.revocation_status(c.id)?;
    let revocation_history = store.revocation_history(c.id)?;
    let f = &c.facts;
    let status = expiry_status(c, &s.policy, &store.source_tags()?, now);
    if a.output == SummaryFormat::Json {
        let v = serde_json::json!({
            "certificate": c,
            "status": status,
            "days_left": days_left(f.not_after, now),
            "sightings": sightings,
            "history": history,
            "revocation": revocation,
            "revocation_history": revocation_history,
        });
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(EXIT_OK);
    }
    let mut o = String::new();
    let mut field = |k: &str, v: &str| o.push_str(&format!("  {k:<22}{v}\n"));
    let join = |v: &[String]| if v.is_empty() { "-".to_string() } else { v.join(", ") };
    field("Subject", &f.subject);
    field("Issuer", &f.issuer);
    field("Serial", &f.serial);
    field("Not before", &format_time(f.not_before));
    field("Not after", &format!("{} ({} days left, {})", format_time(f.not_after), days_left(f.not_after, now), status));
    field("Key", &format!("{} (SPKI SHA-256 {})", f.key, f.spki_sha256));
    field("Signature algorithm", &f.signature_algorithm);
    field(
        "CA",
        &if f.is_ca { format!("yes{}", f.path_len.map(|p| format!(", path length {p}")).unwrap_or_default()) } else { "no".into() },
    );
    field("Key usage", &join(&f.key_usage));
    let mut eku = join(&f.ext_key_usage);
    if f.is_code_signing() {
        eku.push_str("  [code signing identity]");
    }
    if f.is_time_stamping() {
        eku.push_str("  [time stamping]");
    }
    field("Extended key usage", &eku);
    field("Subject alt names", &join(&f.sans));
    field("OCSP", &join(&f.ocsp_urls));
    field("CA issuers", &join(&f.ca_issuers_urls));
    field("CRL distribution", &join(&f.crl_urls));
    field("Authority key id", f.aki.as_deref().unwrap_or("-"));
    field("Subject key id", f.ski.as_deref().unwrap_or("-"));
    field("Self-issued", if f.self_issued { "yes" } else { "no" });
    field("First seen", &format_time(c.first_seen));
    if let Some(g) = c.gone_since {
        field("Gone since", &format_time(g));
    }
    for w in &f.warnings {
        field("Warning", w);
    }
    outln!("Certificate {}\n{o}", f.fingerprint);
    let current = sightings.iter().filter(|s| s.gone_since.is_none()).count();
    outln!("Sightings ({current} current, {} gone):", sightings.len() - current);
    for si in &sightings {
        let gone = si.gone_since.map(|g| format!("  gone since {}", format_time(g))).unwrap_or_default();
        outln!(
            "  {}: {} [{}]  first {}  last {}{gone}",
            si.source,
            si.location,
            si.detail,
            format_time(si.first_seen),
            format_time(si.last_seen)
        );
        if let Some(serde_json::Value::Object(meta)) = &si.meta {
            // What the source reported about the object, one `key: value` per line; nested
            // values (a stapled OCSP answer) stay JSON.
            for (k, v) in meta.iter().filter(|(_, v)| !v.is_null()) {
                let text = match v {
                    serde_json::Value::String(t) => t.clone(),
                    other => other.to_string(),
                };
                outln!("      {k}: {text}");
            }
        }
    }
    outln!("\nRevocation:");
    match &revocation {
        None => outln!("  not checked yet (run `certvigil check`)"),
        Some(r) => {
            outln!("  {}", revocation_line(r));
            if let Some(u) = &r.source_url {
                outln!(
                    "  source {u} ({}){}",
                    r.method,
                    r.evidence_sha256.as_ref().map(|e| format!(", evidence sha256 {e}")).unwrap_or_default()
                );
            }
            outln!(
                "  checked {}{}",
                format_time(r.checked_at),
                r.next_update.map(|n| format!(", valid until {}", format_time(n))).unwrap_or_default()
            );
            if let Some(d) = &r.detail {
                outln!("  {d}");
            }
        }
    }
    for h in &revocation_history {
        outln!("  {}  {}{} ({})", format_time(h.at), h.status, h.reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default(), h.method);
    }
    outln!("\nHistory:");
    for h in &history {
        let place = match (&h.source, &h.location) {
            (Some(s), Some(l)) => format!(" {s}: {l}"),
            _ => String::new(),
        };
        let detail = h.detail.as_ref().map(|d| format!(" [{d}]")).unwrap_or_default();
        outln!("  {}  {}{place}{detail}", format_time(h.at), h.event);
    }
    Ok(EXIT_OK)
}

/// `revoked (keyCompromise) at …` / `unknown: why` / `good`.
fn revocation_line(r: &RevocationStatus) -> String {
    match r.state {
        RevocationState::Revoked => format!(
            "revoked ({}) at {}{}",
            r.reason.as_deref().unwrap_or("unspecified"),
            r.revoked_at.map(format_time).unwrap_or_default(),
            r.invalidity_date.map(|d| format!(", invalid since {}", format_time(d))).unwrap_or_default()
        ),
        RevocationState::Good => format!("good{}", if r.stale { " (evidence past nextUpdate, within grace)" } else { "" }),
        s => format!("{s}: {}", r.reason.as_deref().unwrap_or("")),
    }
}

fn check(cli: &Cli, a: &CheckArgs) -> Result<u8> {
    let s = settings(cli, false)?;
    let now = now(cli)?;
    let store = open_store(cli, &s)?;
    let mut ids = Vec::new();
    for q in &a.certs {
        match store.find(q)?.as_slice() {
            [] => return Err(CliError::Usage(format!("no certificate matches `{q}`")).into()),
            [one] => ids.push(one.id),
            many => return Err(CliError::Usage(format!("`{q}` matches {} certificates; give more of the fingerprint", many.len())).into()),
        }
    }
    let state_dir = store.path().parent().map(Path::to_path_buf).unwrap_or_default();
    let store = std::sync::Arc::new(std::sync::Mutex::new(store));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let checker = std::sync::Arc::new(certvigil::revocation::Checker::new(s.revocation.clone(), state_dir)?);
    let ids = (!a.certs.is_empty()).then_some(ids);
    let mut revoked = 0usize;
    if a.output == SummaryFormat::Json {
        let results = runtime.block_on(checker.check(store, ids, now))?;
        revoked = results.iter().filter(|(_, r)| r.state == RevocationState::Revoked).count();
        let v: Vec<serde_json::Value> = results
            .iter()
            .map(|(c, r)| serde_json::json!({"fingerprint": c.facts.fingerprint, "name": c.facts.display_name(), "serial": c.facts.serial, "revocation": r}))
            .collect();
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        // One line per certificate as each batch is saved.
        let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        let checked = runtime.block_on(checker.check_each(store, ids, now, |batch| {
            for (c, r) in batch {
                *counts.entry(r.state.as_str()).or_default() += 1;
                revoked += usize::from(r.state == RevocationState::Revoked);
                outln!(
                    "{:<12}  {:<40}  {:<9}  {}",
                    &c.facts.fingerprint.0[..12],
                    truncate(&c.facts.display_name(), 40),
                    r.method,
                    revocation_line(r)
                );
            }
        }))?;
        let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
        outln!("{checked} certificates checked: {}", summary.join(", "));
    }
    Ok(if a.fail_if_revoked && revoked > 0 { EXIT_MATCHED } else { EXIT_OK })
}

/// The first certificate in a file, with its DER.
fn read_cert(path: &Path) -> Result<certvigil::x509::Found> {
    let data = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    certvigil::x509::parse_object(&data, &[]).certs.into_iter().next().ok_or_else(|| anyhow::anyhow!("{}: no certificate", path.display()))
}

/// Hex serial (colons allowed) to INTEGER content octets.
fn serial_bytes(s: &str) -> Result<Vec<u8>> {
    let digits: String = s.chars().filter(|c| *c != ':').collect();
    let digits = if digits.len() % 2 == 1 { format!("0{digits}") } else { digits };
    let mut bytes = hex::decode(&digits).map_err(|_| CliError::Usage(format!("serial `{s}` is not hex")))?;
    // A DER INTEGER is positive only with a clear high bit.
    if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        bytes.insert(0, 0);
    }
    Ok(bytes)
}

fn crl(cli: &Cli, a: &CrlArgs) -> Result<u8> {
    use certvigil::revocation::crl::{
        CertScope, Crl, CrlError, CrlIssuer, CrlVerdict, Judging, answer, cert_distribution_points, describe_reasons,
    };
    let now = now(cli)?;
    let rev = settings(cli, false)?.revocation;
    let max = config::parse_size(&a.max_size).map_err(|e| CliError::Usage(format!("--max-size: {e}")))? as usize;
    let bytes = std::fs::read(&a.file).with_context(|| format!("{}: cannot read", a.file.display()))?;
    let crl = Crl::parse(bytes, max).with_context(|| format!("{}", a.file.display()))?;
    outln!(
        "{}: {} entries, thisUpdate {}, nextUpdate {}{}{}",
        a.file.display(),
        crl.len(),
        format_time(crl.this_update),
        crl.next_update.map(format_time).unwrap_or_else(|| "-".into()),
        crl.crl_number.as_ref().map(|n| format!(", number {}", hex::encode_upper(n))).unwrap_or_default(),
        crl.delta_base.as_ref().map(|n| format!(", delta of {}", hex::encode_upper(n))).unwrap_or_default(),
    );
    let mut failed = false;
    if let Err(e) = crl.check_this_update(now, rev.clock_skew) {
        outln!("  NOT usable: {e}");
        failed = true;
    }
    if let Some(n) = crl.next_update.filter(|n| now > n + rev.stale_grace) {
        outln!("  NOT usable: stale, nextUpdate was {}", format_time(n));
        failed = true;
    } else if crl.next_update.is_some_and(|n| now > n) {
        outln!("  stale: past nextUpdate (within the stale grace)");
    }
    if let Some(issuer) = &a.issuer {
        let found = read_cert(issuer)?;
        let parts = certvigil::x509::cert::raw_parts(&found.der).map_err(|e| anyhow::anyhow!("{}: {e}", issuer.display()))?;
        let ski = found.facts.ski.as_ref().and_then(|s| hex::decode(s).ok());
        match crl.verify(parts.subject, parts.spki, ski.as_deref(), &found.facts.key_usage, rev.min_issuer_rsa_bits) {
            Ok(()) => outln!("  verified: signed by {}", found.facts.subject),
            Err(e) => {
                outln!("  NOT verified: {e}");
                failed = true;
            }
        }
    }
    if let Some(path) = &a.cert {
        // The certificate's status, decided exactly as `check` decides it from this CRL (a
        // file stands for any of the certificate's distribution points).
        let issuer_path = a.issuer.as_ref().ok_or_else(|| CliError::Usage("--cert needs --issuer".into()))?;
        let issuer = read_cert(issuer_path)?;
        let ip = certvigil::x509::cert::raw_parts(&issuer.der).map_err(|e| anyhow::anyhow!("{}: {e}", issuer_path.display()))?;
        let ski = issuer.facts.ski.as_ref().and_then(|s| hex::decode(s).ok());
        let cert = read_cert(path)?;
        let parts = certvigil::x509::cert::raw_parts(&cert.der).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let dps = cert_distribution_points(&cert.der).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let name = format!("{} (serial {})", cert.facts.display_name(), cert.facts.serial);
        let crl_issuer = CrlIssuer { subject_der: ip.subject, spki_der: ip.spki, ski: ski.as_deref(), key_usage: &issuer.facts.key_usage };
        let judging = Judging { now, clock_skew: rev.clock_skew, stale_grace: rev.stale_grace, min_rsa_bits: rev.min_issuer_rsa_bits };
        let judged = if crl.issued_by(parts.issuer) {
            crl.judge_base(&crl_issuer, &CertScope { is_ca: cert.facts.is_ca, dps: &dps, via: None }, &judging)
        } else {
            Err(CrlError::NotApplicable("the CRL is for another issuer"))
        };
        match judged.and_then(|coverage| answer(&crl, None, parts.serial, coverage)) {
            Err(e) => {
                outln!("  {name}: unknown: {e}");
                failed = true;
            }
            Ok(CrlVerdict::Listed(e)) => {
                let reason = e.reason.map(|r| r.as_str()).unwrap_or("unspecified");
                outln!("  {name}: revoked ({reason}) at {}", format_time(e.revoked_at));
            }
            Ok(CrlVerdict::NotCovered(mask)) => {
                outln!("  {name}: unknown: the CRL covers only some reasons ({}) and does not list it", describe_reasons(mask))
            }
            Ok(_) => outln!("  {name}: good (not listed)"),
        }
    }
    let mut serials: Vec<String> = a.serials.clone();
    if let Some(f) = &a.serials_file {
        let text = std::fs::read_to_string(f).with_context(|| format!("{}: cannot read", f.display()))?;
        serials.extend(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string));
    }
    let mut listed = 0usize;
    let verbose = serials.len() <= 100;
    for s in &serials {
        match crl.lookup(&serial_bytes(s)?)? {
            Some(e) => {
                listed += 1;
                if verbose {
                    let reason = e.reason.map(|r| r.as_str()).unwrap_or("unspecified");
                    outln!("  {s}: revoked ({reason}) at {}", format_time(e.revoked_at));
                }
            }
            None if verbose => outln!("  {s}: not listed"),
            None => {}
        }
    }
    if !serials.is_empty() {
        outln!("  {listed} of {} serials listed", serials.len());
    }
    Ok(if failed { EXIT_FAILURE } else { EXIT_OK })
}

fn ocsp(cli: &Cli, a: &OcspArgs) -> Result<u8> {
    use certvigil::revocation::ocsp::{self, CertStatus};
    let now = now(cli)?;
    let rev = settings(cli, false)?.revocation;
    let body = std::fs::read(&a.file).with_context(|| format!("{}: cannot read", a.file.display()))?;
    let issuer = read_cert(&a.issuer)?;
    let ip = certvigil::x509::cert::raw_parts(&issuer.der).map_err(|e| anyhow::anyhow!("{}: {e}", a.issuer.display()))?;
    let (serial, name) = match (&a.cert, &a.serial) {
        (Some(path), _) => {
            let cert = read_cert(path)?;
            let parts = certvigil::x509::cert::raw_parts(&cert.der).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            (parts.serial.to_vec(), format!("{} (serial {})", cert.facts.display_name(), cert.facts.serial))
        }
        (None, Some(s)) => (serial_bytes(s)?, format!("serial {s}")),
        (None, None) => return Err(CliError::Usage("give --cert or --serial".into()).into()),
    };
    let nonce = a.nonce.as_deref().map(|n| hex::decode(n).map_err(|_| CliError::Usage(format!("--nonce `{n}` is not hex")))).transpose()?;
    let iss = ocsp::Issuer { subject_der: ip.subject, spki_der: ip.spki };
    let id = ocsp::cert_id(&iss, &serial)?;
    outln!("{}: {} bytes, for {name}, issuer {}", a.file.display(), body.len(), issuer.facts.subject);
    match ocsp::verify_response(&body, &id, &iss, nonce.as_deref(), now, rev.clock_skew, rev.min_issuer_rsa_bits) {
        Err(e) => {
            outln!("  NOT verified: {e}");
            outln!("  {name}: unknown");
            Ok(EXIT_FAILURE)
        }
        Ok(answer) => {
            outln!(
                "  verified: producedAt {}, thisUpdate {}, nextUpdate {}",
                format_time(answer.produced_at),
                format_time(answer.this_update),
                answer.next_update.map(format_time).unwrap_or_else(|| "-".into())
            );
            for note in &answer.notes {
                outln!("  note: {note}");
            }
            match answer.status {
                CertStatus::Good => outln!("  {name}: good"),
                CertStatus::Revoked { at, reason } => {
                    outln!("  {name}: revoked ({}) at {}", reason.map(|r| r.as_str()).unwrap_or("unspecified"), format_time(at))
                }
                CertStatus::Unknown => outln!("  {name}: unknown: the responder does not know this certificate"),
            }
            Ok(EXIT_OK)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

fn who(by: &Option<String>) -> String {
    by.clone().or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "unknown".into())
}

fn plan(cli: &Cli, a: &OutputArgs) -> Result<u8> {
    use certvigil::notify::state::{Change, Stepper};
    let s = settings(cli, false)?;
    let now = now(cli)?;
    let store = open_store(cli, &s)?;
    // Key problems with no certificate to attach a finding to: most are findings about the key
    // itself (`alerted`); an orphan key whose certificate is deployed elsewhere is only listed.
    let review = certvigil::app::evaluate::key_review(&store, &s.policy, now)?;
    let key_problems: Vec<serde_json::Value> = certvigil::policy::keys::unattached(&review)
        .into_iter()
        .map(|(k, p)| {
            serde_json::json!({"source": k.source, "location": k.location, "label": k.label, "key_id": k.key_id, "problem": p,
                "subject": certvigil::policy::key_subject(&k.source, &k.location), "name": certvigil::policy::keys::key_name(k),
                "alerted": certvigil::policy::keys::alerted(k, p, &review)})
        })
        .collect();
    let json = a.output == SummaryFormat::Json;
    // Findings stream batch by batch through the alert state machine to the output, each with
    // the notifications it would cause: a plan holds one batch, not every finding.
    let open = store.open_alerts()?;
    let silences = store.silences(now, false)?;
    let mut stepper = Stepper::new(&open, &silences, &s.alerts.routes, now);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut total, mut planned_count) = (0usize, 0usize);
    // For JSON: (index of the finding, what would be sent).
    let mut planned_json: Vec<(usize, String)> = Vec::new();
    if json {
        write!(out, "{{\n\"findings\": [")?;
    }
    certvigil::app::evaluate::each_findings_batch(&store, &s, now, |batch| {
        let mut planned: Vec<Vec<String>> = vec![Vec::new(); batch.len()];
        for c in stepper.step(batch) {
            if let Change::Open { finding, notify } | Change::Update { finding, notify, .. } = c {
                for n in notify {
                    planned[finding].push(format!(
                        "{} → route {} ({}){}",
                        n.event.as_str(),
                        n.route,
                        n.receivers.join(", "),
                        if n.held { ", held for the digest" } else { "" }
                    ));
                }
            }
        }
        for (i, (f, sends)) in batch.iter().zip(planned).enumerate() {
            planned_count += sends.len();
            if json {
                writeln!(out, "{}", if total + i == 0 { "" } else { "," })?;
                serde_json::to_writer_pretty(&mut out, f)?;
                planned_json.extend(sends.into_iter().map(|t| (total + i, t)));
                continue;
            }
            writeln!(out, "{:<8}  {:<18}  {:<12}  {}", f.severity.as_str().to_uppercase(), f.kind.as_str(), f.short(), f.name)?;
            writeln!(out, "          {}", f.reason)?;
            writeln!(out, "          action: {}", f.action)?;
            for p in sends {
                writeln!(out, "          would send: {p}")?;
            }
        }
        total += batch.len();
        Ok::<(), anyhow::Error>(())
    })?;
    let resolves: Vec<(i64, Vec<String>)> = stepper
        .finish()
        .into_iter()
        .filter_map(|c| match c {
            Change::Resolve { alert_id, notify } => Some((alert_id, notify.into_iter().map(|n| n.route).collect())),
            _ => None,
        })
        .collect();
    if json {
        // The rest of the object after the streamed findings, the notifications one by one.
        write!(out, "],\n\"key_problems\": {},\n\"notifications\": [", serde_json::to_string_pretty(&key_problems)?)?;
        for (n, (i, t)) in planned_json.iter().enumerate() {
            writeln!(out, "{}", if n == 0 { "" } else { "," })?;
            serde_json::to_writer(&mut out, &serde_json::json!({"finding": i, "plan": t}))?;
        }
        let resolves: Vec<serde_json::Value> =
            resolves.iter().map(|(id, routes)| serde_json::json!({"alert_id": id, "routes": routes})).collect();
        writeln!(out, "],\n\"resolves\": {}\n}}", serde_json::to_string_pretty(&resolves)?)?;
        out.flush()?;
        return Ok(EXIT_OK);
    }
    for kp in key_problems.iter().filter(|kp| kp["alerted"] != true) {
        writeln!(
            out,
            "{:<8}  {:<18}  {}",
            kp["problem"]["severity"].as_str().unwrap_or("").to_uppercase(),
            kp["problem"]["kind"].as_str().unwrap_or(""),
            kp["location"].as_str().unwrap_or("")
        )?;
        writeln!(out, "          {}", kp["problem"]["reason"].as_str().unwrap_or(""))?;
        writeln!(
            out,
            "          action: {} (its certificate is elsewhere: listed, not alerted)",
            kp["problem"]["action"].as_str().unwrap_or("")
        )?;
    }
    for (id, routes) in &resolves {
        writeln!(
            out,
            "alert {id} would resolve{}",
            if routes.is_empty() { String::new() } else { format!(" (notice to {})", routes.join(", ")) }
        )?;
    }
    writeln!(out, "{total} findings, {planned_count} notifications planned, {} alerts to resolve (dry run: nothing sent)", resolves.len())?;
    out.flush()?;
    Ok(EXIT_OK)
}

fn keys(cli: &Cli, a: &KeysArgs) -> Result<u8> {
    let s = settings(cli, false)?;
    let now = now(cli)?;
    let store = open_store(cli, &s)?;
    let mut review = certvigil::app::evaluate::key_review(&store, &s.policy, now)?;
    if !a.sources.is_empty() {
        review.keys.retain(|r| a.sources.contains(&r.key.source));
        review.certificates_without_key.retain(|c| a.sources.contains(&c.source));
    }
    if a.output == SummaryFormat::Json {
        outln!("{}", serde_json::to_string_pretty(&review)?);
        return Ok(EXIT_OK);
    }
    for r in &review.keys {
        let k = &r.key;
        let size = match (&k.curve, k.bits) {
            (Some(c), _) => format!("{} {c}", k.algorithm),
            // Ed25519, X448: the name says the size.
            _ if k.algorithm.ends_with(|c: char| c.is_ascii_digit()) => k.algorithm.clone(),
            (None, Some(b)) => format!("{}-{b}", k.algorithm),
            (None, None) => k.algorithm.clone(),
        };
        outln!("{}  {:<7}  {:<10}  {}", k.source, k.class, size, k.location);
        let flags: Vec<String> = k
            .attributes
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(n, v)| if let Some(b) = v.as_bool() { format!("{n}={b}") } else { format!("{n}={}", v.as_str().unwrap_or("?")) })
                    .collect()
            })
            .unwrap_or_default();
        outln!("    {}", flags.join(" "));
        for c in &r.certificates {
            outln!(
                "    certificate {} {} (by {}{})",
                &c.fingerprint[..12.min(c.fingerprint.len())],
                c.name,
                c.by,
                if c.on_token { "" } else { ", not on the token" }
            );
        }
        for p in &r.problems {
            outln!("    {} {}: {}", p.severity.as_str().to_uppercase(), serde_json::to_value(p.kind)?.as_str().unwrap_or(""), p.reason);
            outln!("        action: {}", p.action);
        }
    }
    for c in &review.certificates_without_key {
        outln!("{}  certificate  {}  {}", c.source, &c.fingerprint[..12.min(c.fingerprint.len())], c.location);
        outln!("    {} {}", c.problem.severity.as_str().to_uppercase(), c.problem.reason);
        outln!("        action: {}", c.problem.action);
    }
    outln!("{} keys, {} certificates without a key on their token", review.keys.len(), review.certificates_without_key.len());
    Ok(EXIT_OK)
}

fn evaluate(cli: &Cli, a: &OutputArgs) -> Result<u8> {
    let s = settings(cli, false)?;
    let now = now(cli)?;
    let store = std::sync::Arc::new(std::sync::Mutex::new(open_store(cli, &s)?));
    let report = runtime()?.block_on(certvigil::app::evaluate::evaluate(&store, &s, now))?;
    if a.output == SummaryFormat::Json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let ap = &report.applied;
        outln!(
            "{} findings: {} alerts opened, {} resolved, {} escalated; {} notifications queued, {} sent, {} failed",
            report.findings,
            ap.opened,
            ap.resolved,
            ap.escalated,
            ap.notifications,
            report.delivery.sent,
            report.delivery.failed
        );
        for e in &report.delivery.errors {
            outln!("  failed: {e} (will retry)");
        }
    }
    Ok(if report.delivery.failed > 0 { EXIT_FAILURE } else { EXIT_OK })
}

fn alerts(cli: &Cli, a: &AlertsArgs) -> Result<u8> {
    let s = settings(cli, false)?;
    let now = now(cli)?;
    let store = open_store(cli, &s)?;
    let rows = store.alerts(a.all)?;
    let silences = store.silences(now, false)?;
    if a.output == SummaryFormat::Json {
        outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(EXIT_OK);
    }
    if rows.is_empty() {
        outln!("no alerts");
    }
    for r in &rows {
        let silenced = silences.iter().any(|si| {
            let about = si.fingerprint.as_ref().is_some_and(|p| r.fingerprint.as_deref().is_some_and(|fp| fp.starts_with(p.as_str())))
                || si.subject.as_ref().is_some_and(|s| *s == r.subject);
            about && si.kind.as_ref().is_none_or(|k| *k == r.kind)
        });
        let short = r.fingerprint.as_deref().map(|fp| &fp[..12.min(fp.len())]).unwrap_or(r.subject_kind.as_str());
        outln!(
            "{:>5}  {:<8}  {:<18}  {:<13}  {:<12}  {}",
            r.id,
            r.severity.to_uppercase(),
            r.kind,
            if silenced { "silenced" } else { r.state.as_str() },
            short,
            r.name
        );
        if r.cert_id.is_none() {
            outln!("       subject {}", r.subject);
        }
        outln!("       {} (opened {}, {} notifications)", r.reason, format_time(r.opened_at), r.notifications);
    }
    Ok(EXIT_OK)
}

fn ack(cli: &Cli, a: &AckArgs) -> Result<u8> {
    let s = settings(cli, false)?;
    let now = now(cli)?;
    let mut store = open_store(cli, &s)?;
    let by = who(&a.by);
    let n = match a.target.parse::<i64>() {
        Ok(id) if a.target.len() < 8 => store.ack(Some(id), None, None, &by, a.note.as_deref(), now)?,
        _ if certvigil::policy::SubjectKind::of(&a.target).is_some() => {
            store.ack(None, Some(&a.target), a.kind.as_deref(), &by, a.note.as_deref(), now)?
        }
        _ => {
            let subject = match store.find(&a.target)?.as_slice() {
                [one] => certvigil::policy::cert_subject(&one.facts.fingerprint.0),
                [] => {
                    return Err(CliError::Usage(format!(
                        "no certificate or alert matches `{}` (a key or managed certificate is named by its subject, e.g. `managed:web`: see `certvigil alerts`)",
                        a.target
                    ))
                    .into());
                }
                many => return Err(CliError::Usage(format!("`{}` matches {} certificates", a.target, many.len())).into()),
            };
            store.ack(None, Some(&subject), a.kind.as_deref(), &by, a.note.as_deref(), now)?
        }
    };
    if n == 0 {
        return Err(CliError::Usage(format!("no firing alert matches `{}`", a.target)).into());
    }
    outln!("{n} alert{} acknowledged by {by}", if n == 1 { "" } else { "s" });
    Ok(EXIT_OK)
}

fn silence(cli: &Cli, c: &SilenceCommand) -> Result<u8> {
    use certvigil::notify::state::Silence;
    let s = settings(cli, false)?;
    let now = now(cli)?;
    let mut store = open_store(cli, &s)?;
    match c {
        SilenceCommand::Add { target, duration, reason, by } => {
            let mut si = Silence {
                id: 0,
                fingerprint: None,
                subject: None,
                source: None,
                tag: None,
                kind: None,
                eku: None,
                reason: reason.clone(),
                created_by: who(by),
                created_at: now,
                expires_at: now + duration,
            };
            if target.contains('=') {
                for part in target.split(',') {
                    let (k, v) = part.split_once('=').ok_or_else(|| CliError::Usage(format!("`{part}` is not key=value")))?;
                    let text = v.trim().to_string();
                    let v = Some(text.clone());
                    match k.trim() {
                        "source" => si.source = v,
                        "tag" => si.tag = v,
                        "kind" => {
                            if certvigil::policy::Kind::parse(&text).is_none() {
                                return Err(CliError::Usage(format!("`{text}` is not a finding kind")).into());
                            }
                            si.kind = v
                        }
                        "eku" => si.eku = v.map(|e| certvigil::x509::cert::normalise_eku(&e)),
                        "fingerprint" => si.fingerprint = v,
                        "subject" => si.subject = Some(checked_subject(&text)?),
                        other => {
                            return Err(CliError::Usage(format!(
                                "unknown silence key `{other}` (source, tag, kind, eku, fingerprint, subject)"
                            ))
                            .into());
                        }
                    }
                }
            } else if certvigil::policy::SubjectKind::of(target).is_some() {
                si.subject = Some(checked_subject(target)?);
            } else {
                match store.find(target)?.as_slice() {
                    [one] => si.fingerprint = Some(one.facts.fingerprint.0.clone()),
                    [] => return Err(CliError::Usage(format!("no certificate matches `{target}`")).into()),
                    many => return Err(CliError::Usage(format!("`{target}` matches {} certificates", many.len())).into()),
                }
            }
            let id = store.add_silence(&si)?;
            outln!("silence {id} until {}", format_time(si.expires_at));
        }
        SilenceCommand::List { all } => {
            let list = store.silences(now, *all)?;
            if list.is_empty() {
                outln!("no silences");
            }
            for si in list {
                let what: Vec<String> = [
                    ("fingerprint", &si.fingerprint),
                    ("subject", &si.subject),
                    ("source", &si.source),
                    ("tag", &si.tag),
                    ("kind", &si.kind),
                    ("eku", &si.eku),
                ]
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
                .collect();
                outln!("{:>4}  until {}  {}  by {}: {}", si.id, format_time(si.expires_at), what.join(","), si.created_by, si.reason);
            }
        }
        SilenceCommand::Expire { id } => {
            if !store.expire_silence(*id, now, &who(&None))? {
                return Err(CliError::Usage(format!("no silence {id} in force")).into());
            }
            outln!("silence {id} ended");
        }
    }
    Ok(EXIT_OK)
}

/// A subject given to `silence add`: `cert:<sha256>`, `key:<source>:<location>` or `managed:<name>`.
fn checked_subject(s: &str) -> Result<String> {
    match certvigil::policy::SubjectKind::of(s) {
        Some(_) if s.split_once(':').is_some_and(|(_, rest)| !rest.is_empty()) => Ok(s.to_string()),
        _ => Err(CliError::Usage(format!(
            "`{s}` is not a subject: give `managed:<name>`, `key:<source>:<location>` or `cert:<sha256>` as `certvigil alerts -o json` shows it"
        ))
        .into()),
    }
}

fn alert_test(cli: &Cli, route: &str) -> Result<u8> {
    let s = settings(cli, true)?;
    let now = now(cli)?;
    let r = s.alerts.route(route).ok_or_else(|| CliError::Usage(format!("no route named `{route}`")))?.clone();
    let store = std::sync::Arc::new(std::sync::Mutex::new(open_store(cli, &s)?));
    // A key unique to this run: a second test in the same second is a new message.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let run = format!("test/{route}/{now}/{}-{nanos}/", std::process::id());
    for rx in &r.receivers {
        let payload = certvigil::notify::payload::Payload::test(route, now).to_json();
        store.lock().unwrap_or_else(|p| p.into_inner()).enqueue_test(&format!("{run}{rx}"), route, rx, &payload, now)?;
    }
    // Only this run's test messages: other due notifications wait for `evaluate`.
    let d = runtime()?.block_on(certvigil::notify::deliver_matching(&store, &s.alerts, now, Some(&run)))?;
    outln!("test to route {route}: {} sent, {} failed", d.sent, d.failed);
    for e in &d.errors {
        outln!("  {e}");
    }
    Ok(if d.failed > 0 { EXIT_FAILURE } else { EXIT_OK })
}

fn digest(cli: &Cli, a: &DigestArgs) -> Result<u8> {
    let s = settings(cli, false)?;
    let now = now(cli)?;
    let store = std::sync::Arc::new(std::sync::Mutex::new(open_store(cli, &s)?));
    let d = runtime()?.block_on(certvigil::notify::send_digests(&store, &s.alerts, a.route.as_deref(), now))?;
    outln!("{} digests sent, {} failed", d.sent, d.failed);
    for e in &d.errors {
        outln!("  {e}");
    }
    Ok(if d.failed > 0 { EXIT_FAILURE } else { EXIT_OK })
}

fn schedule(cli: &Cli, a: &ScheduleArgs) -> Result<u8> {
    let s = settings(cli, false)?;
    let now = now(cli)?;
    let store = open_store(cli, &s)?;
    let mut out = Vec::new();
    for j in &s.jobs {
        let next = j.schedule.next_n(now, a.count);
        let stats = store.job_stats(&j.name)?;
        let last = match &stats.last {
            None => "never run".to_string(),
            Some(r) => {
                let mut t = format!("{} at {} ({})", r.status, format_time(r.finished_at.unwrap_or(r.started_at)), r.trigger);
                if let Some(ms) = r.duration_ms {
                    t.push_str(&format!(", {:.1}s", ms as f64 / 1000.0));
                }
                match (&r.error, r.summary.is_empty()) {
                    (Some(e), _) => t.push_str(&format!(": {e}")),
                    (None, false) => t.push_str(&format!(": {}", r.summary)),
                    (None, true) => {}
                }
                t
            }
        };
        out.push(serde_json::json!({
            "name": j.name, "kind": j.kind.as_str(), "schedule": j.schedule.expression(), "timezone": j.schedule.time_zone(),
            "description": j.schedule.describe(), "jitter_seconds": j.jitter, "default": j.default,
            "next": next.iter().map(|t| format_time(*t)).collect::<Vec<_>>(),
            "next_local": next.iter().map(|t| j.schedule.local(*t)).collect::<Vec<_>>(),
            "last": last, "last_run": stats.last, "last_success_at": stats.last_success_at, "overruns": stats.overruns,
        }));
    }
    if a.output == SummaryFormat::Json {
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(EXIT_OK);
    }
    if s.jobs.iter().all(|j| j.default) {
        outln!("(no jobs configured: these are the defaults)");
    }
    for (j, v) in s.jobs.iter().zip(&out) {
        outln!("{} ({}): `{}` {} — {}", j.name, j.kind.as_str(), j.schedule.expression(), j.schedule.time_zone(), j.schedule.describe());
        if j.jitter > 0 {
            outln!("  jitter up to {}s", j.jitter);
        }
        for t in v["next_local"].as_array().into_iter().flatten() {
            outln!("  next {}", t.as_str().unwrap_or(""));
        }
        outln!("  last: {}", v["last"].as_str().unwrap_or(""));
        if v["overruns"].as_i64().unwrap_or(0) > 0 {
            outln!("  overran {} times (a fire time came while the previous run was still going)", v["overruns"]);
        }
    }
    Ok(EXIT_OK)
}

fn audit(cli: &Cli, c: &AuditCommand) -> Result<u8> {
    let s = settings(cli, false)?;
    let now = now(cli)?;
    let store = open_store(cli, &s)?;
    match c {
        AuditCommand::Images { namespace, output, fail_on_findings } => {
            audit_images(&store, namespace.as_deref(), *output, *fail_on_findings)
        }
        AuditCommand::Verify => match store.audit_verify()? {
            certvigil::store::Verdict::Intact { entries } => {
                outln!("audit log intact: {entries} entries");
                Ok(EXIT_OK)
            }
            certvigil::store::Verdict::Broken { id, reason } => {
                outln!("audit log BROKEN at entry {id}: {reason}");
                Ok(EXIT_FAILURE)
            }
        },
        AuditCommand::List { since, limit, output } => {
            let since = match since {
                None => 0,
                Some(text) => match parse_duration(text) {
                    Ok(d) => now - d,
                    Err(_) => parse_time(text)
                        .ok_or_else(|| CliError::Usage(format!("--since: `{text}` is neither a duration (7d) nor a time")))?,
                },
            };
            let entries = store.audit_entries(since, *limit)?;
            if *output == SummaryFormat::Json {
                outln!("{}", serde_json::to_string_pretty(&entries)?);
            } else {
                for e in &entries {
                    outln!("{:>6}  {}  {:<16} {:<12} {}", e.id, format_time(e.at), e.action, e.actor, e.detail);
                }
            }
            Ok(EXIT_OK)
        }
    }
}

/// `certvigil audit images`: the image findings per source and namespace.
fn audit_images(store: &certvigil::store::Store, namespace: Option<&str>, output: SummaryFormat, fail: bool) -> Result<u8> {
    let rows = store.image_findings(namespace)?;
    if output == SummaryFormat::Json {
        outln!("{}", serde_json::to_string_pretty(&serde_json::json!({ "findings": rows }))?);
    } else if rows.is_empty() {
        outln!("no image referenced by a mutable tag");
    } else {
        let mut current: Option<(&str, &str)> = None;
        for r in &rows {
            if current != Some((r.source.as_str(), r.namespace.as_str())) {
                let count = rows.iter().filter(|o| o.source == r.source && o.namespace == r.namespace).count();
                outln!("{} / {} ({count}):", r.source, r.namespace);
                current = Some((r.source.as_str(), r.namespace.as_str()));
            }
            outln!(
                "  {:<8} {:<11} {}/{} {} {}: {}",
                r.severity,
                r.problem,
                r.workload_kind,
                r.workload,
                r.container_type,
                r.container,
                r.image
            );
        }
    }
    Ok(if fail && !rows.is_empty() { EXIT_FAILURE } else { EXIT_OK })
}

fn outbox(cli: &Cli, a: &AlertsArgs) -> Result<u8> {
    let s = settings(cli, false)?;
    let store = open_store(cli, &s)?;
    let rows = store.outbox(a.all, 1000)?;
    if a.output == SummaryFormat::Json {
        outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(EXIT_OK);
    }
    if rows.is_empty() {
        outln!("the outbox is empty");
    }
    for r in &rows {
        let state = match (r.sent_at, r.held) {
            (Some(t), _) => format!("sent {}", format_time(t)),
            (None, true) => "held for digest".into(),
            (None, false) => format!("pending, attempt {} at {}", r.attempts + 1, format_time(r.next_attempt_at)),
        };
        outln!(
            "{:>5}  {:<10}  {:<12} → {:<14}  {}{}",
            r.id,
            r.event,
            r.route,
            r.receiver,
            state,
            r.last_error.as_ref().map(|e| format!("  last error: {e}")).unwrap_or_default()
        );
    }
    Ok(EXIT_OK)
}

fn run_daemon(cli: &Cli, a: &RunArgs) -> Result<u8> {
    let s = settings(cli, false)?;
    let listen = match a.listen.as_deref() {
        None => None,
        Some("off") => Some(None),
        Some(text) => {
            let addr: std::net::SocketAddr =
                text.parse().map_err(|_| CliError::Usage(format!("--listen: `{text}` is not an address:port (or `off`)")))?;
            Some(Some(addr))
        }
    };
    // The daemon acts on the world (renewals, notifications, schedules): it runs on the real
    // clock. Only test builds (the `failpoints` feature) start it at another time.
    let start_time = match &cli.now {
        Some(_) if !cfg!(feature = "failpoints") => {
            return Err(CliError::Usage(
                "--at (CERTVIGIL_NOW) is for the offline commands (list, plan, check, crl, ocsp, …); `run` uses the real clock".into(),
            )
            .into());
        }
        Some(_) => Some(now(cli)?),
        None => None,
    };
    let file = s.file.clone();
    let loader: certvigil::daemon::Loader = Box::new(move || match &file {
        Some(f) => config::load(f).map_err(|e| e.to_string()),
        None => config::parse_str("", "(built-in defaults)", Path::new(".")).map_err(|e| e.to_string()),
    });
    let opts = certvigil::daemon::Options {
        store_path: store_path(cli, &s),
        listen,
        exit_after: a.exit_after.map(|s| std::time::Duration::from_secs(s as u64)),
        start_time,
    };
    certvigil::daemon::run(s, loader, opts)?;
    Ok(EXIT_OK)
}

fn generate(c: &GenerateCommand) -> Result<u8> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    match c {
        GenerateCommand::Man { out } => {
            std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
            clap_mangen::generate_to(cmd, out).with_context(|| format!("{}: cannot write man pages", out.display()))?;
        }
        GenerateCommand::Completions { out } => {
            use clap_complete::Shell;
            std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
            for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
                clap_complete::generate_to(shell, &mut cmd, "certvigil", out)
                    .with_context(|| format!("{}: cannot write {shell} completions", out.display()))?;
            }
        }
    }
    Ok(EXIT_OK)
}

fn errors(cli: &Cli, a: &ErrorsArgs) -> Result<u8> {
    let s = settings(cli, false)?;
    let store = open_store(cli, &s)?;
    let mut errs = store.object_errors(a.source.as_deref())?;
    // Problems that belong to no object (a directory that could not be listed, a secret that
    // could not be resolved) are only in the last run's errors: show them too.
    if let Some(run) = store.last_run()? {
        for e in store.run_errors(run.id)? {
            let wanted = a.source.as_deref().is_none_or(|s| s == e.source);
            if wanted && !errs.iter().any(|o| o.source == e.source && o.location == e.location) {
                errs.push(e);
            }
        }
    }
    if errs.is_empty() {
        outln!("no read errors");
    }
    for e in &errs {
        outln!("{}: {}: {}", e.source, e.location, e.message);
    }
    Ok(EXIT_OK)
}

fn inspect(cli: &Cli, a: &InspectArgs) -> Result<u8> {
    let now = now(cli)?;
    let mut passwords = Vec::new();
    for var in &a.password_env {
        passwords.push(std::env::var(var).map_err(|_| CliError::Usage(format!("--password-env {var}: not set")))?);
    }
    let pw: Vec<&str> = passwords.iter().map(String::as_str).collect();
    let mut any_error = false;
    let mut json = Vec::new();
    for file in &a.files {
        let bytes = std::fs::read(file).with_context(|| format!("{}: cannot read", file.display()))?;
        let parsed = certvigil::x509::parse_object(&bytes, &pw);
        any_error |= !parsed.errors.is_empty();
        if a.output == SummaryFormat::Json {
            json.push(serde_json::json!({
                "file": file,
                "format": parsed.format,
                "certificates": parsed.certs.iter().map(|c| serde_json::json!({"detail": c.detail, "facts": c.facts})).collect::<Vec<_>>(),
                "keys": parsed.keys,
                "other": parsed.other,
                "notes": parsed.notes,
                "errors": parsed.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }));
            continue;
        }
        let fmt = parsed.format.map(|f| f.to_string()).unwrap_or_else(|| "unknown".into());
        outln!("{} ({fmt}): {} certificate(s), {} key(s)", file.display(), parsed.certs.len(), parsed.keys.len());
        for c in &parsed.certs {
            let f = &c.facts;
            outln!(
                "  [{}] {}  expires {} ({} days)  {}  sha256 {}",
                c.detail,
                f.display_name(),
                format_date(f.not_after),
                days_left(f.not_after, now),
                f.key,
                f.fingerprint
            );
        }
        for n in &parsed.notes {
            outln!("  note: {n}");
        }
        for e in &parsed.errors {
            outln!("  error: {}: {e}", file.display());
        }
    }
    if a.output == SummaryFormat::Json {
        outln!("{}", serde_json::to_string_pretty(&json)?);
    }
    Ok(if any_error { EXIT_SCAN_ERRORS } else { EXIT_OK })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Ok(30 * 86_400));
        assert_eq!(parse_duration("12h"), Ok(43_200));
        assert_eq!(parse_duration("2w"), Ok(1_209_600));
        assert_eq!(parse_duration("90"), Ok(90));
        assert!(parse_duration("30x").is_err());
        assert!(parse_duration("d").is_err());
    }

    #[test]
    fn names_and_csv() {
        assert_eq!(short_name("CN=Example CA,O=Example"), "Example CA");
        assert_eq!(short_name("O=NoCN"), "O=NoCN");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
