//! `schedule`, `audit`, `run` and `generate`: the daemon, its jobs and the audit log.

use super::*;

pub(super) fn schedule(cli: &Cli, a: &ScheduleArgs) -> Result<u8> {
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
    // Several daemons on one store: who leads, and who holds which shared scan.
    if let Some(l) = store.lease(certvigil::model::fence::LEADER_LEASE)? {
        let state = if l.live() {
            format!(
                "leads, lease renewed {:.1}s ago, {:.1}s left",
                (l.now_ms - l.renewed_at_ms) as f64 / 1000.0,
                (l.expires_at_ms - l.now_ms) as f64 / 1000.0
            )
        } else {
            format!("lease lapsed {:.1}s ago: no leader", (l.now_ms - l.expires_at_ms) as f64 / 1000.0)
        };
        outln!("leader: {} (token {}) {state}", l.holder, l.token);
        for w in store.open_work()? {
            match &w.claimed_by {
                Some(by) => outln!("  {} {}: claimed by {by} (attempt {})", w.kind, w.key, w.attempts),
                None => outln!("  {} {}: queued", w.kind, w.key),
            }
        }
    }
    for (j, v) in s.jobs.iter().zip(&out) {
        outln!("{} ({}): `{}` {} — {}", j.name, j.kind.as_str(), j.schedule.expression(), j.schedule.time_zone(), j.schedule.describe());
        if j.jitter > 0 {
            outln!("  jitter up to {}s", j.jitter);
        }
        for t in v["next_local"].as_array().into_iter().flatten() {
            outln!("  next {}", t.as_str().unwrap_or(""));
        }
        match v["last_run"]["node"].as_str() {
            Some(node) => outln!("  last: {} on {node}", v["last"].as_str().unwrap_or("")),
            None => outln!("  last: {}", v["last"].as_str().unwrap_or("")),
        }
        if v["overruns"].as_i64().unwrap_or(0) > 0 {
            outln!("  overran {} times (a fire time came while the previous run was still going)", v["overruns"]);
        }
    }
    Ok(EXIT_OK)
}

pub(super) fn audit(cli: &Cli, c: &AuditCommand) -> Result<u8> {
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
pub(super) fn audit_images(store: &certvigil::store::Store, namespace: Option<&str>, output: SummaryFormat, fail: bool) -> Result<u8> {
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

pub(super) fn run_daemon(cli: &Cli, a: &RunArgs) -> Result<u8> {
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
    // Everything `config validate` checks, before the store or anything else is touched: a
    // configuration the daemon cannot run with exits 2 having changed nothing.
    checked_secrets(&s)?;
    let file = s.file.clone();
    // A reload is held to the same: a new file whose secrets do not resolve is rejected and
    // the running configuration kept.
    let loader: certvigil::daemon::Loader = Box::new(move || {
        let s = match &file {
            Some(f) => config::load(f)?,
            None => config::parse_str("", "(built-in defaults)", Path::new("."))?,
        };
        let (errors, _) = config::check_secrets(&s);
        if errors.is_empty() { Ok(s) } else { Err(config::ConfigErrors(errors)) }
    });
    let opts = certvigil::daemon::Options {
        place: store_place(cli, &s)?,
        listen,
        exit_after: a.exit_after.map(|s| std::time::Duration::from_secs(s as u64)),
        start_time,
    };
    certvigil::daemon::run(s, loader, opts)?;
    Ok(EXIT_OK)
}

pub(super) fn generate(c: &GenerateCommand) -> Result<u8> {
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
