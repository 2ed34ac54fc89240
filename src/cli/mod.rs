//! Command-line interface: argument types (clap), the dispatcher, and the helpers every command
//! shares (settings, store, clock, output). Each command lives in the file of its area and
//! prints what `certvigil::app` returns: the work itself is done below, shared with the daemon.
//!
//! Exit codes (also in `certvigil --help`):
//! 0 success · 1 runtime failure · 2 bad usage or invalid configuration ·
//! 3 `list --fail-if-any` matched or `check --fail-if-revoked` found a revocation ·
//! 4 scan finished but some objects could not be read.

use anyhow::{Context, Result, bail};
use certvigil::app::scan;
use certvigil::config::{self, Settings};
use certvigil::model::store_location::{PostgresTarget, StoreLocation, StorePlace};
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

mod admin;
mod alerts;
mod inventory;
mod renewal;
mod revocation;
mod store;

use admin::*;
use alerts::*;
use inventory::*;
use renewal::*;
use revocation::*;
use store::*;

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
/// `renew`: no renewal failed in this run, but a managed certificate it considered is still
/// failing — backing off after earlier failures (nothing was attempted), so it may have nothing
/// installed. A wrapper that only looks for 0 is not told "fine" while nothing gets issued.
pub const EXIT_RENEWAL_BACKOFF: u8 = 5;

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
    /// Store: a SQLite file or a postgres:// URL (no password in it), overriding `store:`.
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
    /// Ask the watched ACME CAs for their renewal information (RFC 9773) now, for the
    /// certificates that are due, and list every watched certificate's window.
    Ari(OutputArgs),
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
    /// Copy the store into an empty PostgreSQL database, and compare two stores.
    #[command(subcommand)]
    Store(StoreCommand),
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
    /// Check a configuration file and report every error with file:line:column, resolving
    /// every secret reference as `run` would (variables set, files present and readable, sane
    /// modes, tokens long enough).
    Validate {
        /// Check the file only, not its secrets: for a configuration that runs on another
        /// host (its variables and secret files are not here).
        #[arg(long)]
        offline: bool,
    },
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
    /// Only certificates owned by this owner (`none`: those without an owner); repeatable.
    #[arg(long = "owner", value_name = "NAME")]
    pub owners: Vec<String>,
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
    /// The certificate, as the tool displays it: fingerprint prefix (4+ hex digits, colons
    /// allowed), serial (any case, with or without colons), the name `list` shows (CN or first
    /// SAN) or the subject DN.
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
    /// An alert id, a certificate as the tool displays it (fingerprint prefix, serial, the
    /// name `alerts` and `list` show, subject DN), or a subject as `certvigil alerts -o json`
    /// shows it (`managed:web`, `key:<source>:<location>`).
    pub target: String,
    /// Only alerts of this finding kind (with a certificate or subject target).
    #[arg(long)]
    pub kind: Option<String>,
    /// Who acknowledges [default: the invoking user: $SUDO_USER, $USER, $LOGNAME, else the
    /// account of the process's user id].
    #[arg(long)]
    pub by: Option<String>,
    #[arg(long)]
    pub note: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Silence a certificate (as the tool displays it: fingerprint prefix, serial, name or
    /// subject DN), a subject (`managed:web`, `key:<source>:<location>`), or a match such as
    /// `source=web-prod,kind=expiring` (keys: source, tag, kind, eku, fingerprint, subject).
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
    /// Certificates as the tool displays them (fingerprint prefix, serial, name, subject DN);
    /// all current certificates when none.
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

/// The platform state directory: `$STATE_DIRECTORY` under systemd, else
/// `$XDG_STATE_HOME/certvigil` (`~/.local/state/certvigil`).
fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("STATE_DIRECTORY").filter(|d| !d.is_empty()) {
        // systemd may pass several directories separated by ':'; the first is ours.
        let first = d.to_string_lossy().split(':').next().unwrap_or_default().to_string();
        return PathBuf::from(first);
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    state.join("certvigil")
}

/// Where the store is, and the state directory for the files kept beside it: `--store` (a
/// SQLite file, or a `postgres://` URL), else the configuration's `store.url` or `store.path`,
/// else `certvigil.db` in the platform state directory. A PostgreSQL store's password is read
/// here; a problem with it is a configuration error.
pub fn store_place(cli: &Cli, s: &Settings) -> Result<StorePlace, CliError> {
    let file = |path: PathBuf| {
        let state_dir = path.parent().filter(|d| !d.as_os_str().is_empty()).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        StorePlace { store: StoreLocation::File(path), state_dir }
    };
    let postgres = |target: PostgresTarget| StorePlace { store: StoreLocation::Postgres(target), state_dir: default_state_dir() };
    if let Some(p) = &cli.store {
        let text = p.to_string_lossy();
        if is_postgres_url(&text) {
            return Ok(postgres(postgres_target("--store", &text, s)?));
        }
        return Ok(file(p.clone()));
    }
    if let Some(spec) = &s.store_postgres {
        return Ok(postgres(resolve_postgres(spec)?));
    }
    if let Some(p) = &s.store_path {
        return Ok(file(p.clone()));
    }
    Ok(file(default_state_dir().join("certvigil.db")))
}

/// A `postgres://` (or `postgresql://`) URL rather than a file name.
pub fn is_postgres_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// The PostgreSQL database at `url`, given on the command line as `flag` (`--store`, `--to`),
/// with the configuration's `store.password` and `store.ca_file`: a URL given here holds no
/// password, which would show in process lists and shell history.
pub fn postgres_target(flag: &str, url: &str, s: &Settings) -> Result<PostgresTarget, CliError> {
    if certvigil::model::store_location::redact_url(url) != url {
        return Err(CliError::Usage(format!("{flag}: the URL holds a password; put it in store.password (${{env:…}} or ${{file:…}})")));
    }
    let (password, ca_file) = s.store_postgres.as_ref().map(|p| (p.password.clone(), p.ca_file.clone())).unwrap_or_default();
    resolve_postgres(&config::PostgresSpec { url: url.to_string(), password, ca_file })
}

/// The target with its password read now; a problem with it is a configuration error.
fn resolve_postgres(spec: &config::PostgresSpec) -> Result<PostgresTarget, CliError> {
    spec.resolve().map_err(|e| CliError::Config(format!("store.password: {e}")))
}

/// Errors that map to specific exit codes.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Config(String),
}

/// Resolves every secret reference of `s` ([`config::check_secrets`]): warnings go to stderr,
/// errors are a configuration error (exit 2) listing each with its position.
pub(super) fn checked_secrets(s: &Settings) -> Result<(), CliError> {
    let (errors, warnings) = config::check_secrets(s);
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if errors.is_empty() { Ok(()) } else { Err(CliError::Config(config::ConfigErrors(errors).to_string())) }
}

fn open_store(cli: &Cli, s: &Settings) -> Result<Store> {
    let place = store_place(cli, s)?;
    Store::open_at(&place.store).with_context(|| format!("cannot open the store at {}", place.store))
}

pub fn run(cli: &Cli) -> Result<u8> {
    match &cli.command {
        Command::Config(ConfigCommand::Validate { offline }) => {
            let s = settings(cli, true)?;
            let file = s.file.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
            let secrets = if *offline {
                format!("{} secret reference{} not resolved: --offline", s.secrets.len(), if s.secrets.len() == 1 { "" } else { "s" })
            } else {
                checked_secrets(&s)?;
                format!("{} secret reference{} resolved", s.secrets.len(), if s.secrets.len() == 1 { "" } else { "s" })
            };
            outln!("{file}: OK ({} source{}, {secrets})", s.sources.len(), if s.sources.len() == 1 { "" } else { "s" });
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
        Command::Ari(a) => ari(cli, a),
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
        Command::Store(c) => store_command(cli, c),
        Command::Inspect(a) => inspect(cli, a),
        Command::Run(a) => run_daemon(cli, a),
        Command::Generate(c) => generate(c),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// Who runs the command, for `ack`, `silence` and the audit log: `--by`, else the person
/// behind `sudo` (`SUDO_USER`), else `USER` or `LOGNAME`, else the account name of the
/// process's user id in `/etc/passwd`, else `uid N`.
fn who(by: &Option<String>) -> String {
    let set = |v: &str| std::env::var(v).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    if let Some(b) = by.as_deref().map(str::trim).filter(|b| !b.is_empty()) {
        return b.to_string();
    }
    if let Some(u) = set("SUDO_USER").or_else(|| set("USER")).or_else(|| set("LOGNAME")) {
        return u;
    }
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else { return "unknown".into() };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let (name, _, id) = (f.next()?, f.next()?, f.next()?);
            (id.parse::<u32>().ok()? == uid).then(|| name.to_string())
        })
        .unwrap_or_else(|| format!("uid {uid}"))
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
