//! `check`, `crl` and `ocsp`: revocation status now, and recorded CRLs and OCSP responses read
//! exactly as `check` reads them.

use super::*;
use certvigil::app::queries;

/// `revoked (keyCompromise) at …` / `unknown: why` / `good`.
pub(super) fn revocation_line(r: &RevocationStatus) -> String {
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

pub(super) fn ari(cli: &Cli, a: &OutputArgs) -> Result<u8> {
    let s = settings(cli, false)?;
    let now = now(cli)?;
    let store = std::sync::Arc::new(std::sync::Mutex::new(open_store(cli, &s)?));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(certvigil::app::ari::watch(&s, &store, now))?;
    let store = store.lock().unwrap_or_else(|p| p.into_inner());
    let rows = store.ari_watch_all()?;
    let ids: Vec<i64> = rows.iter().map(|r| r.cert_id).collect();
    let certs: std::collections::HashMap<i64, String> =
        store.certificates_with_der(Some(&ids))?.into_iter().map(|(c, _)| (c.id, c.facts.display_name())).collect();
    if a.output == SummaryFormat::Json {
        let v: Vec<serde_json::Value> = rows.iter().map(|r| serde_json::json!({"name": certs.get(&r.cert_id), "watch": r})).collect();
        outln!("{}", serde_json::to_string_pretty(&serde_json::json!({"report": report, "certificates": v}))?);
        return Ok(EXIT_OK);
    }
    for r in &rows {
        let name = certs.get(&r.cert_id).map(String::as_str).unwrap_or("?");
        let window = match r.window {
            Some((s, e)) => format!("{} – {}", format_time(s), format_time(e)),
            None => "no window yet".into(),
        };
        let moved = match (r.window, r.first) {
            (Some((_, e)), _) if e <= now => "  PASSED",
            (Some((s, _)), Some((f, _))) if s < f => "  MOVED EARLIER",
            _ => "",
        };
        let error = r.error.as_deref().map(|e| format!("  error: {e}")).unwrap_or_default();
        outln!("{:<40}  {window}{moved}{error}", truncate(name, 40));
    }
    outln!("{}", report.summary());
    Ok(EXIT_OK)
}

pub(super) fn check(cli: &Cli, a: &CheckArgs) -> Result<u8> {
    let s = settings(cli, false)?;
    let now = now(cli)?;
    let store = open_store(cli, &s)?;
    let mut ids = Vec::new();
    for q in &a.certs {
        match queries::find_certificate(&store, q, queries::Naming::Displayed)? {
            queries::Lookup::None => return Err(CliError::Usage(format!("no certificate matches `{q}`")).into()),
            queries::Lookup::One(one) => ids.push(one.id),
            queries::Lookup::Many(candidates) => {
                return Err(CliError::Usage(queries::TargetError::Ambiguous { target: q.clone(), candidates }.to_string()).into());
            }
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
pub(super) fn read_cert(path: &Path) -> Result<certvigil::x509::Found> {
    let data = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    certvigil::x509::parse_object(&data, &[]).certs.into_iter().next().ok_or_else(|| anyhow::anyhow!("{}: no certificate", path.display()))
}

/// Hex serial (colons allowed) to INTEGER content octets.
pub(super) fn serial_bytes(s: &str) -> Result<Vec<u8>> {
    let digits: String = s.chars().filter(|c| *c != ':').collect();
    let digits = if digits.len() % 2 == 1 { format!("0{digits}") } else { digits };
    let mut bytes = hex::decode(&digits).map_err(|_| CliError::Usage(format!("serial `{s}` is not hex")))?;
    // A DER INTEGER is positive only with a clear high bit.
    if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        bytes.insert(0, 0);
    }
    Ok(bytes)
}

pub(super) fn crl(cli: &Cli, a: &CrlArgs) -> Result<u8> {
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
        let name = format!("{} (serial {})", cert.facts.display_name(), certvigil::model::display::serial(&cert.facts.serial));
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

pub(super) fn ocsp(cli: &Cli, a: &OcspArgs) -> Result<u8> {
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
            (
                parts.serial.to_vec(),
                format!("{} (serial {})", cert.facts.display_name(), certvigil::model::display::serial(&cert.facts.serial)),
            )
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
