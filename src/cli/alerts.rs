//! `plan`, `keys`, `evaluate`, `alerts`, `ack`, `silence`, `alert test`, `digest` and `outbox`:
//! findings, alerts and their notifications.

use super::*;
use certvigil::app::queries;
use certvigil::model::fence::Fence;

pub(super) fn plan(cli: &Cli, a: &OutputArgs) -> Result<u8> {
    let s = settings(cli, false)?;
    let now = now(cli)?;
    let store = open_store(cli, &s)?;
    let key_problems = certvigil::app::evaluate::key_problems(&store, &s.policy, now)?;
    let json = a.output == SummaryFormat::Json;
    // Findings stream batch by batch to the output, each with the notifications it would cause:
    // a plan holds one batch, not every finding.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut total, mut planned_count) = (0usize, 0usize);
    // For JSON: (index of the finding, what would be sent).
    let mut planned_json: Vec<(usize, String)> = Vec::new();
    if json {
        write!(out, "{{\n\"findings\": [")?;
    }
    let resolves = certvigil::app::evaluate::plan_each(&store, &s, now, |batch, planned| {
        for (i, (f, notify)) in batch.iter().zip(planned).enumerate() {
            let sends: Vec<String> = notify
                .iter()
                .map(|n| {
                    format!(
                        "{} → route {} ({}){}",
                        n.event.as_str(),
                        n.route,
                        n.receivers.join(", "),
                        if n.held { ", held for the digest" } else { "" }
                    )
                })
                .collect();
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
    if json {
        // The rest of the object after the streamed findings, the notifications one by one.
        // Through a JSON value: every object's keys in alphabetical order, as they always were.
        let key_problems = serde_json::to_value(&key_problems)?;
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
    for kp in key_problems.iter().filter(|kp| !kp.alerted) {
        writeln!(out, "{:<8}  {:<18}  {}", kp.problem.severity.as_str().to_uppercase(), kp.problem.kind.as_str(), kp.location)?;
        writeln!(out, "          {}", kp.problem.reason)?;
        writeln!(out, "          action: {} (its certificate is elsewhere: listed, not alerted)", kp.problem.action)?;
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

pub(super) fn keys(cli: &Cli, a: &KeysArgs) -> Result<u8> {
    let s = settings(cli, false)?;
    let now = now(cli)?;
    let store = open_store(cli, &s)?;
    let mut review = certvigil::app::evaluate::key_review(&store, &s.policy, now)?;
    if !a.sources.is_empty() {
        review.keys.retain(|r| a.sources.contains(&r.key.source));
        review.certificates_without_key.retain(|c| a.sources.contains(&c.source));
        review.retired_keys.retain(|k| a.sources.contains(&k.source));
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
    for k in &review.retired_keys {
        outln!("{}  {:<7}  retired     {}", k.source, k.class, k.location);
        outln!(
            "    spki_sha256={} first_seen={} last_seen={} gone_since={}",
            k.spki_sha256,
            certvigil::model::format_time(k.first_seen),
            certvigil::model::format_time(k.last_seen),
            k.gone_since.map(certvigil::model::format_time).unwrap_or_default()
        );
    }
    outln!(
        "{} keys, {} certificates without a key on their token, {} retired keys",
        review.keys.len(),
        review.certificates_without_key.len(),
        review.retired_keys.len()
    );
    Ok(EXIT_OK)
}

/// The fence a command that sends passes: open on a store of its own; shut while a daemon
/// sharing the store leads, since that daemon sends (the command still evaluates and queues).
fn sending_fence(store: &Store) -> Result<(Fence, Option<String>)> {
    Ok(match store.lease(certvigil::model::fence::LEADER_LEASE)? {
        Some(l) if l.live() => (Fence::leased(), Some(l.holder)),
        _ => (Fence::open(), None),
    })
}

pub(super) fn evaluate(cli: &Cli, a: &OutputArgs) -> Result<u8> {
    let s = settings(cli, false)?;
    let now = now(cli)?;
    let opened = open_store(cli, &s)?;
    let (fence, leader) = sending_fence(&opened)?;
    let store = std::sync::Arc::new(std::sync::Mutex::new(opened));
    let report = runtime()?.block_on(certvigil::app::evaluate::evaluate(&store, &s, now, &fence))?;
    if let Some(l) = &leader {
        eprintln!("certvigil: the daemon {l} leads on this store: it sends the queued notifications");
    }
    if a.output == SummaryFormat::Json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!("{}", report.summary());
        for e in &report.delivery.errors {
            outln!("  failed: {e} (will retry)");
        }
    }
    Ok(if report.delivery.failed > 0 { EXIT_FAILURE } else { EXIT_OK })
}

pub(super) fn alerts(cli: &Cli, a: &AlertsArgs) -> Result<u8> {
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

pub(super) fn ack(cli: &Cli, a: &AckArgs) -> Result<u8> {
    let s = settings(cli, false)?;
    let now = now(cli)?;
    let mut store = open_store(cli, &s)?;
    let by = who(&a.by);
    let n = match queries::ack_target(&store, &a.target)?.map_err(|e| CliError::Usage(e.to_string()))? {
        queries::AckTarget::Alert(id) => store.ack(Some(id), None, None, &by, a.note.as_deref(), now)?,
        queries::AckTarget::Subject(subject) => store.ack(None, Some(&subject), a.kind.as_deref(), &by, a.note.as_deref(), now)?,
    };
    if n == 0 {
        return Err(CliError::Usage(format!("no firing alert matches `{}`", a.target)).into());
    }
    outln!("{n} alert{} acknowledged by {by}", if n == 1 { "" } else { "s" });
    Ok(EXIT_OK)
}

pub(super) fn silence(cli: &Cli, c: &SilenceCommand) -> Result<u8> {
    let s = settings(cli, false)?;
    let now = now(cli)?;
    let mut store = open_store(cli, &s)?;
    match c {
        SilenceCommand::Add { target, duration, reason, by } => {
            let si = queries::silence_for(&store, target, reason, &who(by), now, *duration)?.map_err(|e| CliError::Usage(e.to_string()))?;
            let id = store.add_silence(&si)?;
            outln!("silence {id} until {}", format_time(si.expires_at));
        }
        SilenceCommand::List { all } => {
            let list = store.silences(now, *all)?;
            if list.is_empty() {
                outln!("no silences");
            }
            for si in list {
                let what = si.describe();
                outln!("{:>4}  until {}  {}  by {}: {}", si.id, format_time(si.expires_at), what, si.created_by, si.reason);
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

pub(super) fn alert_test(cli: &Cli, route: &str) -> Result<u8> {
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
    let d = runtime()?.block_on(certvigil::notify::deliver_matching(&store, &s.alerts, now, Some(&run), &Fence::open()))?;
    outln!("test to route {route}: {} sent, {} failed", d.sent, d.failed);
    for e in &d.errors {
        outln!("  {e}");
    }
    Ok(if d.failed > 0 { EXIT_FAILURE } else { EXIT_OK })
}

pub(super) fn digest(cli: &Cli, a: &DigestArgs) -> Result<u8> {
    let s = settings(cli, false)?;
    let now = now(cli)?;
    let opened = open_store(cli, &s)?;
    let (fence, leader) = sending_fence(&opened)?;
    if let Some(l) = leader {
        anyhow::bail!("the daemon {l} leads on this store: digests are its to send");
    }
    let store = std::sync::Arc::new(std::sync::Mutex::new(opened));
    let d = runtime()?.block_on(certvigil::notify::send_digests(&store, &s.alerts, a.route.as_deref(), now, &fence))?;
    outln!("{} digests sent, {} failed", d.sent, d.failed);
    for e in &d.errors {
        outln!("  {e}");
    }
    Ok(if d.failed > 0 { EXIT_FAILURE } else { EXIT_OK })
}

pub(super) fn outbox(cli: &Cli, a: &AlertsArgs) -> Result<u8> {
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
