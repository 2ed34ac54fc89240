//! `store migrate` and `store check`: the SQLite store copied into an empty PostgreSQL database,
//! and two stores compared table by table. The work is the store's (`Store::copy_into`,
//! `Store::compare_with`); this file resolves the two stores and prints.

use super::*;
use certvigil::store::{CopyProgress, TableComparison, Verdict};

const MIGRATE_AFTER_HELP: &str = "Stop the daemon first: what it writes to the SQLite store after the copy started is not copied. \
The PostgreSQL database is migrated to the current schema, then must hold no certvigil data (a database that does is refused and left \
as it was). The SQLite store is only read; it must be at this certvigil's schema version and its audit log intact. Afterwards \
`certvigil store check --against URL` compares the two. \
Exit codes: 0 copied (both audit logs verified); 1 refused or failed (the message says whether the database was left empty or holds \
part of the store, in which case drop and create it again); 2 bad usage or invalid configuration.";

const CHECK_AFTER_HELP: &str = "Each table is compared by row count and by a SHA-256 over its rows in primary-key order (text keys \
byte-wise on both engines); where a digest differs, the rows changed and those on one side only are counted and the first one named. \
The audit chains must be intact on both sides, of the same length and with the same newest entry. Both stores are only read. \
Exit codes: 0 the stores are identical; 1 they differ (one `differs:` line per table that does) or the comparison failed; 2 bad \
usage or invalid configuration.";

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy the configured SQLite store (`--store` or `store.path`) into an empty PostgreSQL
    /// database: every table, ids and every column as they are, identities moved past the copied
    /// ids, the audit chain verified on both sides. Progress on stderr, a summary on stdout.
    #[command(after_help = MIGRATE_AFTER_HELP)]
    Migrate(StoreMigrateArgs),
    /// Compare the configured store with another, table by table (rows and a digest of their
    /// contents) and their audit chains: one line per table, `ok` or `differs: …`.
    #[command(after_help = CHECK_AFTER_HELP)]
    Check(StoreCheckArgs),
}

#[derive(Debug, Args)]
pub struct StoreMigrateArgs {
    /// The PostgreSQL database to copy into, `postgres://user@host:5432/certvigil`. No password
    /// in it: the configuration's `store.password` is used (and `store.ca_file` for TLS).
    #[arg(long, value_name = "URL")]
    pub to: String,
}

#[derive(Debug, Args)]
pub struct StoreCheckArgs {
    /// The other store: a postgres:// URL (the configuration's `store.password` and
    /// `store.ca_file` go with it) or a SQLite file.
    #[arg(long, value_name = "STORE")]
    pub against: String,
}

pub(super) fn store_command(cli: &Cli, c: &StoreCommand) -> Result<u8> {
    match c {
        StoreCommand::Migrate(a) => store_migrate(cli, a),
        StoreCommand::Check(a) => store_check(cli, a),
    }
}

fn store_migrate(cli: &Cli, a: &StoreMigrateArgs) -> Result<u8> {
    let s = settings(cli, false)?;
    let place = store_place(cli, &s)?;
    let StoreLocation::File(path) = &place.store else {
        return Err(CliError::Usage(format!(
            "store migrate copies a SQLite store, and the configured store is the PostgreSQL database {}: name the SQLite file with --store",
            place.store
        ))
        .into());
    };
    if !is_postgres_url(&a.to) {
        return Err(CliError::Usage("--to: must be a postgres:// (or postgresql://) URL".into()).into());
    }
    if !path.exists() {
        bail!("{}: there is no store there, nothing to copy", path.display());
    }
    let to = StoreLocation::Postgres(postgres_target("--to", &a.to, &s)?);
    let started = std::time::Instant::now();
    let source = Store::open_reader(path).with_context(|| format!("cannot open the store at {}", path.display()))?;
    let target = Store::open_at(&to).with_context(|| format!("cannot open the store at {to}"))?;
    // Said once the checks passed and the first table starts.
    let mut header = Some(format!("copying {} into {to}", path.display()));
    let report = source.copy_into(&target, |p| match p {
        CopyProgress::Started { .. } => {
            if let Some(h) = header.take() {
                eprintln!("{h}");
            }
        }
        CopyProgress::Committed { table, copied, rows } if copied < rows => eprintln!("  {table}: {copied}/{rows} rows"),
        CopyProgress::Committed { .. } => {}
        CopyProgress::Finished { table, rows } => eprintln!("  {table}: {}", plural(rows, "row")),
    })?;
    outln!(
        "copied {} into {to}: {}, {} in {:.1}s",
        path.display(),
        plural(report.tables.len() as u64, "table"),
        plural(report.rows, "row"),
        started.elapsed().as_secs_f64()
    );
    outln!("audit log intact on both: {}, head {}", plural(report.audit_entries as u64, "entry"), head(report.audit_head.as_deref()));
    Ok(EXIT_OK)
}

fn store_check(cli: &Cli, a: &StoreCheckArgs) -> Result<u8> {
    let s = settings(cli, false)?;
    let place = store_place(cli, &s)?;
    let other = if is_postgres_url(&a.against) {
        StoreLocation::Postgres(postgres_target("--against", &a.against, &s)?)
    } else {
        StoreLocation::File(PathBuf::from(&a.against))
    };
    let here = Store::open_reader_at(&place.store).with_context(|| format!("cannot open the store at {}", place.store))?;
    let there = Store::open_reader_at(&other).with_context(|| format!("cannot open the store at {other}"))?;
    let c = here.compare_with(&there)?;
    outln!("here:  {}", place.store);
    outln!("there: {other}");
    let mut differing: Vec<String> = Vec::new();
    if c.schema.0 == c.schema.1 {
        outln!("{:<20} ok (version {})", "schema", c.schema.0);
    } else {
        outln!("{:<20} differs: version {} here, {} there", "schema", c.schema.0, c.schema.1);
        differing.push("schema".into());
    }
    for t in &c.tables {
        outln!("{:<20} {}", t.table, table_line(t));
        if !t.identical() {
            differing.push(t.table.clone());
        }
    }
    let verdict = |v: &Verdict, h: Option<&str>| match v {
        Verdict::Intact { entries } => format!("intact, {}, head {}", plural(*entries as u64, "entry"), head(h)),
        Verdict::Broken { id, reason } => format!("BROKEN at entry {id}: {reason}"),
    };
    let audit = &c.audit;
    if audit.identical() {
        outln!("{:<20} ok ({})", "audit chain", verdict(&audit.here, audit.here_head.as_deref()));
    } else {
        outln!(
            "{:<20} differs: here {}; there {}",
            "audit chain",
            verdict(&audit.here, audit.here_head.as_deref()),
            verdict(&audit.there, audit.there_head.as_deref())
        );
        differing.push("audit chain".into());
    }
    if differing.is_empty() {
        let rows: u64 = c.tables.iter().filter_map(|t| t.here.as_ref()).map(|d| d.rows).sum();
        outln!("the stores are identical: {}, {}", plural(c.tables.len() as u64, "table"), plural(rows, "row"));
        Ok(EXIT_OK)
    } else {
        outln!("the stores differ: {}", differing.join(", "));
        Ok(EXIT_FAILURE)
    }
}

/// `ok (5 rows)` or `differs: …` for one table.
fn table_line(t: &TableComparison) -> String {
    let (here, there) = match (&t.here, &t.there) {
        (Some(a), Some(b)) => (a, b),
        (None, Some(b)) => return format!("differs: no such table here ({} there)", plural(b.rows, "row")),
        (Some(a), None) => return format!("differs: no such table there ({} here)", plural(a.rows, "row")),
        (None, None) => return "differs: no such table on either side".into(),
    };
    if t.identical() {
        return format!("ok ({})", plural(here.rows, "row"));
    }
    let mut parts = Vec::new();
    if !t.columns_here_only.is_empty() {
        parts.push(format!("columns only here: {}", t.columns_here_only.join(", ")));
    }
    if !t.columns_there_only.is_empty() {
        parts.push(format!("columns only there: {}", t.columns_there_only.join(", ")));
    }
    if here.rows != there.rows {
        parts.push(format!("{} here, {} there", plural(here.rows, "row"), there.rows));
    }
    if let Some(d) = &t.rows {
        let mut counts = Vec::new();
        if d.changed > 0 {
            counts.push(format!("{} changed", plural(d.changed, "row")));
        }
        if d.only_here > 0 {
            counts.push(format!("{} only here", plural(d.only_here, "row")));
        }
        if d.only_there > 0 {
            counts.push(format!("{} only there", plural(d.only_there, "row")));
        }
        let first = d.first.as_deref().map(|k| format!(" (first: {k})")).unwrap_or_default();
        parts.push(format!("{}{first}", counts.join(", ")));
    }
    format!("differs: {}", parts.join("; "))
}

/// `1 row`, `2 rows`, `1 entry`, `3 entries`.
fn plural(n: u64, word: &str) -> String {
    match (n, word.strip_suffix('y')) {
        (1, _) => format!("1 {word}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        (_, None) => format!("{n} {word}s"),
    }
}

/// The head hash, shortened for people.
fn head(hash: Option<&str>) -> String {
    match hash {
        Some(h) => h.chars().take(16).collect(),
        None => "none".into(),
    }
}
