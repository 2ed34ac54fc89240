//! `renew`, `revoke` and `account`: managed certificates through their ACME accounts.

use super::*;

pub(super) fn renew(cli: &Cli, a: &RenewArgs) -> Result<u8> {
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
    let state_dir = store_place(cli, &s)?.state_dir;
    let rt = runtime()?;
    let now = now(cli)?;
    let opts = certvigil::renewal::engine::Options { force: a.force, dry_run: a.dry_run };
    let outcomes = rt.block_on(certvigil::renewal::engine::run_all(
        &chosen,
        &mut store,
        &state_dir,
        now,
        opts,
        &certvigil::model::fence::Fence::open(),
    ));
    use certvigil::renewal::engine::Action;
    let (mut failed, mut backing_off) = (0, 0);
    for o in &outcomes {
        match o.action {
            Action::Failed => {
                failed += 1;
                eprintln!("{}", o.line(now));
            }
            Action::Backoff => {
                backing_off += 1;
                eprintln!("{}", o.line(now));
            }
            _ => outln!("{}", o.line(now)),
        }
    }
    // A renewal that failed now says 1; one that is still failing from before (backing off,
    // perhaps with nothing installed) says 5, so a cron or CI wrapper never reads "fine" while
    // nothing is being issued.
    Ok(if failed > 0 {
        EXIT_FAILURE
    } else if backing_off > 0 {
        EXIT_RENEWAL_BACKOFF
    } else {
        EXIT_OK
    })
}

pub(super) fn revoke(cli: &Cli, a: &RevokeArgs) -> Result<u8> {
    let s = settings(cli, true)?;
    let Some(spec) = s.managed.iter().find(|m| m.name == a.name) else {
        let known: Vec<&str> = s.managed.iter().map(|m| m.name.as_str()).collect();
        return Err(CliError::Usage(format!("no managed certificate named `{}` (configured: {})", a.name, known.join(", "))).into());
    };
    let (_, reason) = certvigil::renewal::revoke::parse_reason(&a.reason).map_err(|e| CliError::Usage(format!("--reason: {e}")))?;
    let mut store = open_store(cli, &s)?;
    let state_dir = store_place(cli, &s)?.state_dir;
    let rt = runtime()?;
    let now = now(cli)?;
    let out = match rt.block_on(certvigil::renewal::revoke::revoke(spec, &mut store, &state_dir, now, reason, a.rotate)) {
        Ok(o) => o,
        Err(e) => {
            let e = anyhow::Error::from(e);
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
            outln!("{}: serial {} {how} ({}){resumed}", out.name, certvigil::model::display::serial(&out.serial), out.reason);
            match &out.reissue {
                Some(o) if reissue_failed => eprintln!("{}", o.line(now)),
                Some(o) => outln!("{}", o.line(now)),
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
pub(super) fn account_targets<'a>(s: &'a Settings, name: Option<&str>) -> Result<Vec<&'a certvigil::config::managed::ManagedSpec>> {
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

pub(super) fn account(cli: &Cli, c: &AccountCommand) -> Result<u8> {
    let s = settings(cli, true)?;
    let store = open_store(cli, &s)?;
    let state_dir = store_place(cli, &s)?.state_dir;
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
                    let e = anyhow::Error::from(e);
                    let detail = serde_json::json!({ "name": m.name, "directory": m.directory, "error": format!("{e:#}") });
                    store.audit(now, "account-rollover-failed", "cli", &detail)?;
                    Err(e)
                }
            }
        }
    }
}
