//! `scan`, `list`, `show`, `errors` and `inspect`: the inventory, read and printed.

use super::*;
use certvigil::app::queries::{self, CertFilter, InventoryView};

pub(super) fn scan(cli: &Cli, a: &ScanArgs) -> Result<u8> {
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
            outln!("{}", report.summary());
            for src in &report.sources {
                outln!("  {}", src.summary());
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

/// The CN of an RFC 4514 name string, else the whole string.
pub(super) fn short_name(dn: &str) -> String {
    dn.split(',').find_map(|rdn| rdn.trim().strip_prefix("CN=")).map(|cn| cn.replace("\\,", ",")).unwrap_or_else(|| dn.to_string())
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_string() } else { format!("{}…", s.chars().take(max - 1).collect::<String>()) }
}

pub(super) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

pub(super) fn color_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

pub(super) fn list(cli: &Cli, a: &ListArgs) -> Result<u8> {
    let s = settings(cli, false)?;
    let now = now(cli)?;
    let store = open_store(cli, &s)?;
    // Each certificate's state (a few bytes each); JSON reads each row's whole status.
    let view = InventoryView::load(&store, &s, now)?;
    let filter = CertFilter {
        expiring_within: a.expiring_within,
        sources: a.sources.clone(),
        tags: a.tags.clone(),
        ekus: a.ekus.clone(),
        statuses: a.statuses.clone(),
        revocation: a.revocation.clone(),
        owners: a.owners.clone(),
    };
    let wanted = |c: &CertRow| filter.matches(c, &view);
    let status = |c: &CertRow| view.status(c);
    let rev_state = |c: &CertRow| view.revocation(c);
    let tags_of = |c: &CertRow| view.tags_of(c);
    let owner_of = |c: &CertRow| view.owner_of(c);
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
                    o.insert("owner".into(), serde_json::to_value(owner_of(&c)).unwrap_or_default());
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
                "fingerprint,name,subject,issuer,serial,not_before,not_after,days_left,status,revocation,key,signature_algorithm,ext_key_usage,sightings,sources,tags,owner,owner_contact"
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
                    owner_of(&c).map(|o| o.name.clone()).unwrap_or_default(),
                    owner_of(&c).and_then(|o| o.contact.clone()).unwrap_or_default(),
                ];
                writeln!(out, "{}", fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","))?;
                Ok(())
            })?;
        }
        ListFormat::Table => {
            let color = color_enabled();
            let header = ["NAME", "ISSUER", "NOT AFTER", "DAYS", "STATUS", "REVOCATION", "OWNER", "SEEN", "FINGERPRINT"];
            let cells = |c: &CertRow| -> [String; 9] {
                let f = &c.facts;
                [
                    truncate(&f.display_name(), 44),
                    truncate(&short_name(&f.issuer), 36),
                    format_date(f.not_after),
                    days_left(f.not_after, now).to_string(),
                    if c.gone_since.is_some() { "gone".to_string() } else { status(c).to_string() },
                    rev_state(c).map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                    owner_of(c).map(|o| truncate(&o.name, 24)).unwrap_or_else(|| "-".into()),
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

pub(super) fn show(cli: &Cli, a: &ShowArgs) -> Result<u8> {
    let s = settings(cli, false)?;
    let now = now(cli)?;
    let store = open_store(cli, &s)?;
    if a.query.trim().is_empty() {
        return Err(CliError::Usage("name a certificate: a fingerprint prefix, a serial, its name or its subject".into()).into());
    }
    let found = queries::find_certificate(&store, &a.query, queries::Naming::Displayed)?;
    let one = match found {
        queries::Lookup::None => bail!(
            "no certificate matches `{}` (give a fingerprint prefix of 4+ hex digits, a serial, the name `list` shows or the subject DN)",
            a.query
        ),
        queries::Lookup::One(one) => one,
        queries::Lookup::Many(candidates) => {
            return Err(CliError::Usage(queries::TargetError::Ambiguous { target: a.query.clone(), candidates }.to_string()).into());
        }
    };
    let c = one.as_ref();
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
    let status = queries::expiry_status(c, &s.policy, &store.source_tags()?, now);
    let owners = certvigil::app::owners::Owners::load_for(&store, &s.owners, &[c.id])?;
    let owner = owners.owner_of(c);
    if a.output == SummaryFormat::Json {
        let v = serde_json::json!({
            "certificate": c,
            "owner": owner,
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
    field("Serial", &certvigil::model::display::serial(&f.serial));
    field("Not before", &format_time(f.not_before));
    field("Not after", &format!("{} ({} days left, {})", format_time(f.not_after), days_left(f.not_after, now), status));
    field("Key", &format!("{} (SPKI SHA-256 {})", f.key, f.spki_sha256));
    field("Owner", &owner.map_or_else(|| "-".to_string(), ToString::to_string));
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

pub(super) fn errors(cli: &Cli, a: &ErrorsArgs) -> Result<u8> {
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

pub(super) fn inspect(cli: &Cli, a: &InspectArgs) -> Result<u8> {
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
