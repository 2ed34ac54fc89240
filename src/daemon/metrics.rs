//! `/metrics` in the Prometheus text exposition format (version 0.0.4).
//!
//! The per-certificate families use the names and labels of x509-certificate-exporter
//! (`x509_cert_not_after{subject_CN=…,issuer_CN=…,serial_number=…,filepath=…}`), so existing
//! dashboards and alert rules work unchanged; certvigil adds `source` and `fingerprint`. Labels
//! with an empty value are left out, which Prometheus treats exactly like an empty label.
//! The `certvigil_*` families are certvigil's own: revocation, findings, alerts, outbox, jobs
//! and configuration reloads.
//!
//! `daemon.metrics.compat` picks the exporter generation: `v3` is the output of the v3 names
//! exactly; `v4` drops `x509_read_errors` (v4 removed it) and adds v4's per-source families
//! (`x509_source_up`, `x509_source_bundles`, `x509_source_errors_total`), its CRL families
//! (`x509_crl_*`, for the CRLs revocation checking downloaded and verified) and its Kubernetes
//! labels on the per-certificate families (`secret_*`, `configmap_*`, `cabundle_*`, with
//! `filename`/`filepath` left out for Kubernetes objects as v4 does); `both` is v4 plus
//! `x509_read_errors` and keeps `filepath` on Kubernetes objects, so v3 queries keep working.
//! Names, types and label sets follow the exporter's v4 `docs/metrics.md`.

use crate::config::MetricsCompat;
use crate::model::UnixTime;
use crate::model::exporter::{self, KubeObject};
use crate::store::{Counts, CrlSample, JobStats, RevocationSample, SightingSample, SourceErrorSample, SourceSample};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Every family: name, type, help. The packaging's alert rules and dashboard use only these.
pub const FAMILIES: &[(&str, &str, &str)] = &[
    ("x509_cert_not_after", "gauge", "Certificate expiry date (notAfter), Unix seconds."),
    ("x509_cert_not_before", "gauge", "Certificate start date (notBefore), Unix seconds."),
    ("x509_cert_expired", "gauge", "1 when the certificate has expired."),
    ("x509_read_errors", "gauge", "Objects the last scan could not read."),
    ("x509_exporter_build_info", "gauge", "Build information."),
    ("x509_source_up", "gauge", "1 when the source's last complete scan listed all of it, 0 when some of it could not be listed."),
    ("x509_source_bundles", "gauge", "Objects the source holds now (files, Secret and ConfigMap keys, caBundles, …)."),
    ("x509_source_errors_total", "counter", "Errors scans met, by source, source kind and reason code."),
    ("x509_crl_next_update", "gauge", "The CRL's nextUpdate (RFC 5280 §5.1.2.5), Unix seconds."),
    ("x509_crl_this_update", "gauge", "The CRL's thisUpdate (RFC 5280 §5.1.2.4), Unix seconds."),
    ("x509_crl_number", "gauge", "The CRL's cRLNumber (RFC 5280 §5.2.3), 0 without one; exact in the crl_number label."),
    ("x509_crl_stale", "gauge", "1 once the CRL is past its nextUpdate."),
    ("x509_crl_stale_in_seconds", "gauge", "Seconds until the CRL's nextUpdate, negative once it is stale."),
    ("x509_crl_fresh_since_seconds", "gauge", "Seconds since the CRL's thisUpdate."),
    ("certvigil_cert_revoked", "gauge", "1 when the certificate is revoked (CRL or OCSP, signature verified)."),
    ("certvigil_cert_revocation_unknown", "gauge", "1 when the revocation status could not be established."),
    ("certvigil_findings", "gauge", "Findings of the last evaluation, by severity and kind."),
    ("certvigil_alerts_open", "gauge", "Alerts not resolved (firing or acknowledged), by severity."),
    ("certvigil_outbox_pending", "gauge", "Notifications waiting to be sent."),
    ("certvigil_outbox_failed", "gauge", "Waiting notifications whose last attempt failed."),
    ("certvigil_certificates", "gauge", "Certificates in the inventory, by state (current or gone)."),
    ("certvigil_job_last_run_timestamp_seconds", "gauge", "When the job last started."),
    ("certvigil_job_last_success_timestamp_seconds", "gauge", "When the job last finished successfully."),
    ("certvigil_job_last_duration_seconds", "gauge", "How long the job's last finished run took."),
    ("certvigil_job_last_failed", "gauge", "1 when the job's last finished run failed or was interrupted."),
    ("certvigil_job_overruns_total", "counter", "Fire times skipped because the previous run was still going."),
    ("certvigil_job_running", "gauge", "1 while the job runs."),
    ("certvigil_config_last_reload_successful", "gauge", "1 when the last configuration (re)load succeeded."),
    ("certvigil_config_last_reload_success_timestamp_seconds", "gauge", "When the configuration was last loaded successfully."),
    ("certvigil_up", "gauge", "1 while the daemon serves."),
    ("certvigil_leader", "gauge", "Several daemons on one store: 1 while this daemon holds the leader lease."),
    (
        "certvigil_leader_token",
        "gauge",
        "The leader lease's fencing token as this daemon last read it (one more at each change of leader).",
    ),
    ("certvigil_lease_contact_age_seconds", "gauge", "Since this daemon last renewed or read the leader lease in the store."),
    ("certvigil_work_claims", "gauge", "Shared work items (scans of one source) this daemon holds now."),
    ("certvigil_work_items_done_total", "counter", "Shared work items this daemon has finished."),
    ("certvigil_scrape_duration_seconds", "gauge", "How long rendering the previous scrape took."),
];

/// Families exposed only with `compat: v3` or `both`.
pub const V3_ONLY: &[&str] = &["x509_read_errors"];

/// Families exposed only with `compat: v4` or `both`.
pub const V4_ONLY: &[&str] = &[
    "x509_source_up",
    "x509_source_bundles",
    "x509_source_errors_total",
    "x509_crl_next_update",
    "x509_crl_this_update",
    "x509_crl_number",
    "x509_crl_stale",
    "x509_crl_stale_in_seconds",
    "x509_crl_fresh_since_seconds",
];

/// The families `/metrics` exposes with `compat`, in [`FAMILIES`] order.
pub fn families(compat: MetricsCompat) -> Vec<&'static str> {
    FAMILIES.iter().map(|f| f.0).filter(|n| (compat.v3() || !V3_ONLY.contains(n)) && (compat.v4() || !V4_ONLY.contains(n))).collect()
}

/// The exposition content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `# HELP` and `# TYPE` lines of a family.
pub fn header(out: &mut String, name: &str) {
    if let Some((n, t, h)) = FAMILIES.iter().find(|f| f.0 == name) {
        let _ = writeln!(out, "# HELP {n} {h}\n# TYPE {n} {t}");
    }
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `{a="x",b="y"}` from pairs, leaving out empty values.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(64);
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        out.push(if out.is_empty() { '{' } else { ',' });
        out.push_str(k);
        out.push_str("=\"");
        escape(v, &mut out);
        out.push('"');
    }
    if !out.is_empty() {
        out.push('}');
    }
    out
}

/// Splits an RFC 4514 name (as the store keeps it) into attribute values, honouring `\`
/// escapes; several values of one type (two OUs) are joined with `,`.
pub fn dn_attributes(dn: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut put = |attr: &str| {
        if let Some((k, v)) = attr.split_once('=') {
            let value = unescape(v.trim());
            out.entry(k.trim().to_string())
                .and_modify(|e| {
                    e.push(',');
                    e.push_str(&value);
                })
                .or_insert(value);
        }
    };
    let mut cur = String::new();
    let mut chars = dn.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push('\\');
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' | '+' => {
                put(&cur);
                cur.clear();
            }
            c => cur.push(c),
        }
    }
    put(&cur);
    out
}

fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                // `\XX` hex pairs are left as written; special characters lose their escape.
                if n.is_ascii_hexdigit() && chars.peek().is_some_and(|d| d.is_ascii_hexdigit()) {
                    out.push('\\');
                }
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The serial as a decimal string, as x509-certificate-exporter labels it.
pub fn serial_decimal(hex_serial: &str) -> String {
    match hex::decode(hex_serial.trim_start_matches("0x")) {
        Ok(b) => exporter::decimal(&b),
        Err(_) => hex_serial.to_string(),
    }
}

const NAME_ATTRS: [&str; 6] = ["CN", "O", "OU", "C", "L", "ST"];

/// Splits an RFC 4514 name into `(type, raw value)` pairs without allocating; `\` escapes are
/// kept in the raw value.
fn rdn_pairs<'a>(dn: &'a str, out: &mut Vec<(&'a str, &'a str)>) {
    out.clear();
    let bytes = dn.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i <= bytes.len() {
        match bytes.get(i) {
            Some(b'\\') => i += 2,
            Some(b',') | Some(b'+') | None => {
                if let Some((k, v)) = dn.get(start..i.min(bytes.len())).and_then(|c| c.split_once('=')) {
                    out.push((k.trim(), v.trim()));
                }
                start = i + 1;
                i += 1;
            }
            Some(_) => i += 1,
        }
    }
}

/// Appends `,name="value"` (or `{name="value"` first) for a raw RFC 4514 value, unescaping it
/// and escaping it for the exposition format; several values of one type join with `,`.
fn push_dn_label(out: &mut String, first: &mut bool, prefix: &str, attr: &str, pairs: &[(&str, &str)]) {
    let mut any = false;
    for (_, raw) in pairs.iter().filter(|(k, v)| *k == attr && !v.is_empty()) {
        if any {
            out.push(',');
        } else {
            out.push(if *first { '{' } else { ',' });
            *first = false;
            out.push_str(prefix);
            out.push_str(attr);
            out.push_str("=\"");
            any = true;
        }
        escape(&unescape_cow(raw), out);
    }
    if any {
        out.push('"');
    }
}

fn unescape_cow(v: &str) -> std::borrow::Cow<'_, str> {
    if v.contains('\\') { std::borrow::Cow::Owned(unescape(v)) } else { std::borrow::Cow::Borrowed(v) }
}

fn push_label(out: &mut String, first: &mut bool, name: &str, value: &str) {
    if value.is_empty() {
        return;
    }
    out.push(if *first { '{' } else { ',' });
    *first = false;
    out.push_str(name);
    out.push_str("=\"");
    escape(value, out);
    out.push('"');
}

/// Appends the label set of one sighting to `out`, as v3 has it.
pub fn write_sighting_labels(out: &mut String, s: &SightingSample<'_>) {
    write_labels(out, s, MetricsCompat::V3);
}

/// Appends the label set of one sighting to `out` for `compat`: v3's labels, plus v4's
/// Kubernetes labels with `v4` or `both` (and without `filename`/`filepath` for Kubernetes
/// objects with `v4`, as v4 leaves them empty there).
fn write_labels(out: &mut String, s: &SightingSample<'_>, compat: MetricsCompat) {
    let mut first = true;
    let (mut subject, mut issuer) = (Vec::with_capacity(8), Vec::with_capacity(8));
    rdn_pairs(s.subject, &mut subject);
    rdn_pairs(s.issuer, &mut issuer);
    let kube = if compat.v4() { KubeObject::parse(s.location) } else { None };
    if kube.is_none() || compat.v3() {
        push_label(out, &mut first, "filename", s.location.rsplit('/').next().unwrap_or(s.location));
        push_label(out, &mut first, "filepath", s.location);
    }
    for attr in NAME_ATTRS {
        push_dn_label(out, &mut first, "issuer_", attr, &issuer);
    }
    push_label(out, &mut first, "serial_number", &serial_decimal(s.serial_hex));
    for attr in NAME_ATTRS {
        push_dn_label(out, &mut first, "subject_", attr, &subject);
    }
    for (name, value) in kube.iter().flat_map(|k| k.labels()) {
        push_label(out, &mut first, name, value);
    }
    push_label(out, &mut first, "source", s.source);
    push_label(out, &mut first, "fingerprint", s.fingerprint);
    if !first {
        out.push('}');
    }
}

/// The label set of one sighting (v3).
pub fn sighting_labels(s: &SightingSample<'_>) -> String {
    let mut out = String::with_capacity(256);
    write_sighting_labels(&mut out, s);
    out
}

/// Writes the per-certificate families for a batch of sightings, family by family: callers
/// pass the same rows once per family (`which`) so that each family's samples stay together
/// while rows are streamed in bounded chunks.
pub fn sighting_sample(out: &mut String, which: &str, s: &SightingSample<'_>, now: UnixTime, compat: MetricsCompat) {
    let v = match which {
        "x509_cert_not_after" => s.not_after,
        "x509_cert_not_before" => s.not_before,
        _ => i64::from(now > s.not_after),
    };
    out.push_str(which);
    write_labels(out, s, compat);
    let _ = writeln!(out, " {v}");
}

pub fn revocation_sample(out: &mut String, which: &str, r: &RevocationSample) {
    let cn = dn_attributes(&r.subject).remove("CN").unwrap_or_default();
    let serial = serial_decimal(&r.serial_hex);
    let (l, v) = if which == "certvigil_cert_revoked" {
        (
            labels(&[("fingerprint", &r.fingerprint), ("subject_CN", &cn), ("serial_number", &serial), ("method", &r.method)]),
            r.state == "revoked",
        )
    } else {
        (labels(&[("fingerprint", &r.fingerprint), ("subject_CN", &cn), ("serial_number", &serial)]), r.state == "unknown")
    };
    let _ = writeln!(out, "{which}{l} {}", i64::from(v));
}

/// v4's per-source families for the configured sources (`configured`: their names; the store
/// also remembers sources no longer configured). A source appears once scanned: `up` from
/// its last complete scan, `bundles` per v4 source kind it holds (a Kubernetes source is
/// `kube-secret`, `kube-configmap` and `kube-cabundle` by object), errors per kind and reason.
pub fn render_sources(out: &mut String, sources: &[SourceSample], errors: &[SourceErrorSample], configured: &[String]) {
    let wanted = |name: &str| configured.iter().any(|c| c == name);
    // A source's kinds: those it holds objects of, else its own.
    let kinds = |s: &SourceSample| -> Vec<&'static str> {
        if s.bundles.is_empty() { vec![exporter::source_kind(&s.kind, "")] } else { s.bundles.keys().copied().collect() }
    };
    header(out, "x509_source_up");
    for s in sources.iter().filter(|s| wanted(&s.name)) {
        if let Some(up) = s.up {
            for kind in kinds(s) {
                let _ = writeln!(out, "x509_source_up{} {}", labels(&[("source_kind", kind), ("source_name", &s.name)]), i64::from(up));
            }
        }
    }
    header(out, "x509_source_bundles");
    for s in sources.iter().filter(|s| wanted(&s.name)) {
        for kind in kinds(s) {
            let n = s.bundles.get(kind).copied().unwrap_or(0);
            let _ = writeln!(out, "x509_source_bundles{} {n}", labels(&[("source_kind", kind), ("source_name", &s.name)]));
        }
    }
    header(out, "x509_source_errors_total");
    for e in errors.iter().filter(|e| wanted(&e.source)) {
        let l = labels(&[("source_kind", &e.source_kind), ("source_name", &e.source), ("reason", &e.reason)]);
        let _ = writeln!(out, "x509_source_errors_total{l} {}", e.count);
    }
}

/// v4's CRL families for the CRLs revocation checking downloaded and verified, judged at
/// `now`: stale once `now` is past nextUpdate (RFC 5280 §5.1.2.5: the date by which the next
/// CRL will be issued). Labels: the issuer's `issuer_*` and the exact `crl_number` as v4 has
/// them, and certvigil's `url` (where the CRL was downloaded from). A CRL without nextUpdate
/// (RFC 5280 requires one of conforming issuers) has no nextUpdate sample and is never stale.
pub fn render_crls(out: &mut String, crls: &[CrlSample], now: UnixTime) {
    let mut label_sets = Vec::with_capacity(crls.len());
    for c in crls {
        let mut l = String::with_capacity(128);
        let mut first = true;
        push_label(&mut l, &mut first, "crl_number", c.number.as_deref().unwrap_or(""));
        let mut issuer = Vec::with_capacity(8);
        rdn_pairs(&c.issuer, &mut issuer);
        for attr in NAME_ATTRS {
            push_dn_label(&mut l, &mut first, "issuer_", attr, &issuer);
        }
        push_label(&mut l, &mut first, "url", &c.url);
        if !first {
            l.push('}');
        }
        label_sets.push(l);
    }
    let rows = || crls.iter().zip(&label_sets);
    header(out, "x509_crl_next_update");
    for (c, l) in rows() {
        if let Some(n) = c.next_update {
            let _ = writeln!(out, "x509_crl_next_update{l} {n}");
        }
    }
    header(out, "x509_crl_this_update");
    for (c, l) in rows() {
        if let Some(t) = c.this_update {
            let _ = writeln!(out, "x509_crl_this_update{l} {t}");
        }
    }
    header(out, "x509_crl_number");
    for (c, l) in rows() {
        // A gauge is a float: exact up to 2^53, the label carries the exact number.
        let n = c.number.as_deref().and_then(|n| n.parse::<f64>().ok()).unwrap_or(0.0);
        let _ = writeln!(out, "x509_crl_number{l} {n}");
    }
    header(out, "x509_crl_stale");
    for (c, l) in rows() {
        let _ = writeln!(out, "x509_crl_stale{l} {}", i64::from(c.next_update.is_some_and(|n| now > n)));
    }
    header(out, "x509_crl_stale_in_seconds");
    for (c, l) in rows() {
        if let Some(n) = c.next_update {
            let _ = writeln!(out, "x509_crl_stale_in_seconds{l} {}", n - now);
        }
    }
    header(out, "x509_crl_fresh_since_seconds");
    for (c, l) in rows() {
        if let Some(t) = c.this_update {
            let _ = writeln!(out, "x509_crl_fresh_since_seconds{l} {}", now - t);
        }
    }
}

/// One job's figures for the job families.
#[derive(Debug, Clone)]
pub struct JobFigures {
    pub name: String,
    pub kind: String,
    pub stats: JobStats,
    pub running: bool,
}

/// Everything but the per-certificate families.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub counts: Counts,
    pub findings: BTreeMap<String, BTreeMap<String, usize>>,
    pub jobs: Vec<JobFigures>,
    pub reload_ok: bool,
    pub reload_success_at: Option<UnixTime>,
    pub previous_scrape_seconds: f64,
    /// Several daemons on one store.
    pub cluster: Option<super::cluster::ClusterStatus>,
}

pub fn render_summary(out: &mut String, s: &Summary, compat: MetricsCompat) {
    if compat.v3() {
        header(out, "x509_read_errors");
        let _ = writeln!(out, "x509_read_errors {}", s.counts.last_scan_errors);
    }
    header(out, "x509_exporter_build_info");
    let _ = writeln!(out, "x509_exporter_build_info{} 1", labels(&[("version", env!("CARGO_PKG_VERSION")), ("exporter", "certvigil")]));
    header(out, "certvigil_findings");
    for sev in ["info", "warning", "critical"] {
        let kinds = s.findings.get(sev);
        if kinds.is_none_or(|k| k.is_empty()) {
            let _ = writeln!(out, "certvigil_findings{} 0", labels(&[("severity", sev)]));
        }
        for (kind, n) in kinds.into_iter().flatten() {
            let _ = writeln!(out, "certvigil_findings{} {n}", labels(&[("severity", sev), ("kind", kind)]));
        }
    }
    header(out, "certvigil_alerts_open");
    for sev in ["info", "warning", "critical"] {
        let _ =
            writeln!(out, "certvigil_alerts_open{} {}", labels(&[("severity", sev)]), s.counts.alerts_open.get(sev).copied().unwrap_or(0));
    }
    header(out, "certvigil_outbox_pending");
    let _ = writeln!(out, "certvigil_outbox_pending {}", s.counts.outbox_pending);
    header(out, "certvigil_outbox_failed");
    let _ = writeln!(out, "certvigil_outbox_failed {}", s.counts.outbox_failed);
    header(out, "certvigil_certificates");
    let _ = writeln!(out, "certvigil_certificates{} {}", labels(&[("state", "current")]), s.counts.certs_current);
    let _ = writeln!(out, "certvigil_certificates{} {}", labels(&[("state", "gone")]), s.counts.certs_gone);
    let job = |j: &JobFigures| labels(&[("job", &j.name), ("kind", &j.kind)]);
    header(out, "certvigil_job_last_run_timestamp_seconds");
    for j in &s.jobs {
        if let Some(r) = &j.stats.last {
            let _ = writeln!(out, "certvigil_job_last_run_timestamp_seconds{} {}", job(j), r.started_at);
        }
    }
    header(out, "certvigil_job_last_success_timestamp_seconds");
    for j in &s.jobs {
        if let Some(t) = j.stats.last_success_at {
            let _ = writeln!(out, "certvigil_job_last_success_timestamp_seconds{} {t}", job(j));
        }
    }
    // The last *finished* run: a running one has no duration or outcome yet.
    header(out, "certvigil_job_last_duration_seconds");
    for j in &s.jobs {
        if let Some(ms) = j.stats.last.as_ref().and_then(|r| r.duration_ms) {
            let _ = writeln!(out, "certvigil_job_last_duration_seconds{} {}", job(j), ms as f64 / 1000.0);
        }
    }
    header(out, "certvigil_job_last_failed");
    for j in &s.jobs {
        if let Some(r) = j.stats.last.as_ref().filter(|r| r.status != "running") {
            let _ = writeln!(out, "certvigil_job_last_failed{} {}", job(j), i64::from(r.status != "ok"));
        }
    }
    header(out, "certvigil_job_overruns_total");
    for j in &s.jobs {
        let _ = writeln!(out, "certvigil_job_overruns_total{} {}", job(j), j.stats.overruns);
    }
    header(out, "certvigil_job_running");
    for j in &s.jobs {
        let _ = writeln!(out, "certvigil_job_running{} {}", job(j), i64::from(j.running));
    }
    header(out, "certvigil_config_last_reload_successful");
    let _ = writeln!(out, "certvigil_config_last_reload_successful {}", i64::from(s.reload_ok));
    header(out, "certvigil_config_last_reload_success_timestamp_seconds");
    if let Some(t) = s.reload_success_at {
        let _ = writeln!(out, "certvigil_config_last_reload_success_timestamp_seconds {t}");
    }
    header(out, "certvigil_up");
    let _ = writeln!(out, "certvigil_up 1");
    // The cluster's families: always described, with samples when several daemons share the
    // store.
    let node = s.cluster.as_ref().map(|c| labels(&[("node", c.node.as_str())])).unwrap_or_default();
    header(out, "certvigil_leader");
    if let Some(c) = &s.cluster {
        let _ = writeln!(out, "certvigil_leader{node} {}", i64::from(c.is_leader));
    }
    header(out, "certvigil_leader_token");
    if let Some((c, l)) = s.cluster.as_ref().and_then(|c| c.lease.as_ref().map(|l| (c, l))) {
        let _ = writeln!(out, "certvigil_leader_token{} {}", labels(&[("node", c.node.as_str()), ("leader", l.holder.as_str())]), l.token);
    }
    header(out, "certvigil_lease_contact_age_seconds");
    if let Some(ms) = s.cluster.as_ref().and_then(|c| c.last_contact_ms) {
        let _ = writeln!(out, "certvigil_lease_contact_age_seconds{node} {}", ms as f64 / 1000.0);
    }
    header(out, "certvigil_work_claims");
    if let Some(c) = &s.cluster {
        let _ = writeln!(out, "certvigil_work_claims{node} {}", c.claims.len());
    }
    header(out, "certvigil_work_items_done_total");
    if let Some(c) = &s.cluster {
        let _ = writeln!(out, "certvigil_work_items_done_total{node} {}", c.items_done);
    }
    header(out, "certvigil_scrape_duration_seconds");
    let _ = writeln!(out, "certvigil_scrape_duration_seconds {}", s.previous_scrape_seconds);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_serials_and_escaping() {
        let a = dn_attributes("CN=a\\, b,OU=x+OU=y,O=Acme \\\"Q\\\",C=DE");
        assert_eq!(a["CN"], "a, b");
        assert_eq!(a["OU"], "x,y");
        assert_eq!(a["O"], "Acme \"Q\"");
        assert_eq!(a["C"], "DE");
        assert_eq!(serial_decimal("00FF"), "255");
        assert_eq!(serial_decimal("0100"), "256");
        assert_eq!(serial_decimal("00"), "0");
        // 2^64 + 1
        assert_eq!(serial_decimal("010000000000000001"), "18446744073709551617");
        assert_eq!(labels(&[("a", "x\"y\\z\n"), ("b", ""), ("c", "1")]), "{a=\"x\\\"y\\\\z\\n\",c=\"1\"}");
        assert_eq!(labels(&[("b", "")]), "");
    }

    /// A file sighting of `web.example`, issued by Acme CA, serial 10, valid 100–200.
    fn web_sample(fp: &str) -> SightingSample<'_> {
        SightingSample {
            fingerprint: fp,
            subject: "CN=web.example,O=Acme",
            issuer: "CN=Acme CA,O=Acme,C=US",
            serial_hex: "0A",
            not_before: 100,
            not_after: 200,
            source: "etc",
            location: "/etc/ssl/web.pem",
        }
    }

    #[test]
    fn sighting_lines() {
        let fp = "ab".repeat(32);
        let s = web_sample(&fp);
        let mut out = String::new();
        sighting_sample(&mut out, "x509_cert_not_after", &s, 150, MetricsCompat::V3);
        sighting_sample(&mut out, "x509_cert_expired", &s, 201, MetricsCompat::V3);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("x509_cert_not_after{filename=\"web.pem\",filepath=\"/etc/ssl/web.pem\",issuer_CN=\"Acme CA\",issuer_O=\"Acme\",issuer_C=\"US\",serial_number=\"10\",subject_CN=\"web.example\",subject_O=\"Acme\",source=\"etc\",fingerprint=\""), "{}", lines[0]);
        assert!(lines[0].ends_with("\"} 200"), "{}", lines[0]);
        assert!(lines[1].ends_with(" 1"), "{}", lines[1]);
        let odd = SightingSample { subject: "CN=a\\, b,OU=x+OU=y,O=Q \\\"q\\\"", location: "", source: "", ..s };
        assert_eq!(
            sighting_labels(&odd),
            format!(
                "{{issuer_CN=\"Acme CA\",issuer_O=\"Acme\",issuer_C=\"US\",serial_number=\"10\",subject_CN=\"a, b\",subject_O=\"Q \\\"q\\\"\",subject_OU=\"x,y\",fingerprint=\"{fp}\"}}"
            )
        );
    }

    /// A fixed input: two sightings (a file, a Kubernetes Secret key), a summary with a job,
    /// findings and alerts, as a scrape renders them.
    fn scrape(compat: MetricsCompat, now: UnixTime) -> String {
        let fp = "ab".repeat(32);
        let file = web_sample(&fp);
        let secret = SightingSample { location: "k8s://prod/web/secrets/site-tls#tls.crt", source: "cluster", ..file.clone() };
        let mut summary = Summary {
            counts: Counts {
                certs_current: 2,
                certs_gone: 1,
                outbox_pending: 3,
                outbox_failed: 1,
                last_scan_errors: 4,
                ..Default::default()
            },
            reload_ok: true,
            reload_success_at: Some(90),
            previous_scrape_seconds: 0.25,
            ..Default::default()
        };
        summary.counts.alerts_open.insert("critical".into(), 2);
        summary.findings.entry("critical".into()).or_default().insert("expired".into(), 1);
        let run = crate::model::rows::JobRun {
            id: 1,
            job: "scan".into(),
            kind: "scan".into(),
            trigger: "schedule".into(),
            scheduled_at: Some(100),
            started_at: 100,
            finished_at: Some(102),
            duration_ms: Some(1500),
            status: "ok".into(),
            summary: String::new(),
            detail: None,
            error: None,
            node: None,
        };
        summary.jobs.push(JobFigures {
            name: "scan".into(),
            kind: "scan".into(),
            stats: JobStats { last: Some(run), last_success_at: Some(102), overruns: 2 },
            running: false,
        });
        let mut out = String::new();
        render_summary(&mut out, &summary, compat);
        for family in ["x509_cert_not_after", "x509_cert_not_before", "x509_cert_expired"] {
            header(&mut out, family);
            for s in [&file, &secret] {
                sighting_sample(&mut out, family, s, now, compat);
            }
        }
        out
    }

    #[test]
    fn v3_mode_renders_exactly_what_v3_did() {
        let want = include_str!("../../tests/data/metrics/v3-scrape.prom").replace("{version}", env!("CARGO_PKG_VERSION"));
        assert_eq!(scrape(MetricsCompat::V3, 150), want);
    }

    #[test]
    fn families_by_mode() {
        let v3 = families(MetricsCompat::V3);
        let v4 = families(MetricsCompat::V4);
        let both = families(MetricsCompat::Both);
        assert_eq!(both.len(), FAMILIES.len());
        assert!(v3.contains(&"x509_read_errors") && !v4.contains(&"x509_read_errors"));
        assert!(V4_ONLY.iter().all(|f| v4.contains(f) && !v3.contains(f)));
        for f in ["x509_cert_not_after", "x509_cert_expired", "x509_exporter_build_info", "certvigil_up"] {
            assert!(v3.contains(&f) && v4.contains(&f), "{f}");
        }
        // Every name the mode lists is described, with a counter's `_total`.
        for (name, kind, help) in FAMILIES {
            assert!(!help.is_empty(), "{name}");
            assert_eq!(name.ends_with("_total"), *kind == "counter", "{name}");
        }
    }

    #[test]
    fn v4_mode_labels_kubernetes_objects_as_v4() {
        let v4 = scrape(MetricsCompat::V4, 150);
        assert!(!v4.contains("x509_read_errors"), "{v4}");
        let line = v4.lines().find(|l| l.starts_with("x509_cert_not_after{") && l.contains("secret_name")).expect("secret line");
        assert!(
            line.contains(r#"subject_O="Acme",secret_namespace="web",secret_name="site-tls",secret_key="tls.crt",source="cluster""#),
            "{line}"
        );
        // v4 leaves filename and filepath empty for Kubernetes objects.
        assert!(!line.contains("filepath=") && !line.contains("filename="), "{line}");
        // A file keeps its path and gets no Kubernetes labels.
        let file = v4.lines().find(|l| l.starts_with("x509_cert_not_after{filename=\"web.pem\"")).expect("file line");
        assert!(!file.contains("secret_"), "{file}");
        // `both` keeps v3's filepath beside v4's labels, and x509_read_errors.
        let both = scrape(MetricsCompat::Both, 150);
        assert!(both.contains("\nx509_read_errors 4\n"));
        let line = both.lines().find(|l| l.starts_with("x509_cert_expired{") && l.contains("secret_name")).expect("secret line");
        assert!(line.contains(r#"filepath="k8s://prod/web/secrets/site-tls#tls.crt""#) && line.ends_with(" 0"), "{line}");
    }

    fn crl(next_update: Option<UnixTime>) -> CrlSample {
        CrlSample {
            url: "http://127.0.0.1:8080/ca.crl".into(),
            issuer: "CN=Acme CA,O=Acme,C=US".into(),
            number: Some("18446744073709551617".into()),
            this_update: Some(1_000),
            next_update,
        }
    }

    /// Samples of a rendering as `name{labels} -> value`.
    fn samples(text: &str) -> BTreeMap<String, String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' ').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect()
    }

    #[test]
    fn crl_staleness_is_judged_at_the_given_time() {
        let l =
            r#"{crl_number="18446744073709551617",issuer_CN="Acme CA",issuer_O="Acme",issuer_C="US",url="http://127.0.0.1:8080/ca.crl"}"#;
        let at = |now: UnixTime, next: Option<UnixTime>| {
            let mut out = String::new();
            render_crls(&mut out, &[crl(next)], now);
            samples(&out)
        };
        let fresh = at(1_500, Some(2_000));
        assert_eq!(fresh[&format!("x509_crl_next_update{l}")], "2000");
        assert_eq!(fresh[&format!("x509_crl_this_update{l}")], "1000");
        assert_eq!(fresh[&format!("x509_crl_stale{l}")], "0");
        assert_eq!(fresh[&format!("x509_crl_stale_in_seconds{l}")], "500");
        assert_eq!(fresh[&format!("x509_crl_fresh_since_seconds{l}")], "500");
        // The gauge is a float (2^64 + 1 rounds); the label is exact.
        assert_eq!(fresh[&format!("x509_crl_number{l}")], "18446744073709552000");
        // At nextUpdate itself the CRL is not yet past it; a second later it is stale.
        assert_eq!(at(2_000, Some(2_000))[&format!("x509_crl_stale{l}")], "0");
        let stale = at(2_001, Some(2_000));
        assert_eq!(stale[&format!("x509_crl_stale{l}")], "1");
        assert_eq!(stale[&format!("x509_crl_stale_in_seconds{l}")], "-1");
        // Without nextUpdate: never stale, no nextUpdate samples.
        let open = at(9_999, None);
        assert_eq!(open[&format!("x509_crl_stale{l}")], "0");
        assert!(!open.keys().any(|k| k.starts_with("x509_crl_next_update") || k.starts_with("x509_crl_stale_in")), "{open:?}");
        // Without a number: 0, and no crl_number label.
        let mut out = String::new();
        render_crls(&mut out, &[CrlSample { number: None, ..crl(Some(2_000)) }], 1_500);
        assert!(
            out.contains(
                "\nx509_crl_number{issuer_CN=\"Acme CA\",issuer_O=\"Acme\",issuer_C=\"US\",url=\"http://127.0.0.1:8080/ca.crl\"} 0\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn sources_report_up_bundles_and_errors_by_reason() {
        let bundles = |v: &[(&'static str, i64)]| v.iter().copied().collect::<BTreeMap<_, _>>();
        let sources = vec![
            SourceSample { name: "etc".into(), kind: "files".into(), up: Some(false), bundles: bundles(&[("file", 12)]) },
            SourceSample {
                name: "cluster".into(),
                kind: "kubernetes".into(),
                up: Some(true),
                bundles: bundles(&[("kube-configmap", 1), ("kube-secret", 3)]),
            },
            // Registered, never completely scanned: bundles but no up yet.
            SourceSample { name: "web".into(), kind: "tls".into(), up: None, bundles: BTreeMap::new() },
            // No longer configured: left out.
            SourceSample { name: "old".into(), kind: "files".into(), up: Some(true), bundles: bundles(&[("file", 1)]) },
        ];
        let err = |source: &str, kind: &str, reason: &str, count| SourceErrorSample {
            source: source.into(),
            source_kind: kind.into(),
            reason: reason.into(),
            count,
        };
        let errors = vec![
            err("cluster", "kube-secret", "http_403", 2),
            err("etc", "file", "bad_pem", 5),
            err("etc", "file", "permission_denied", 7),
            err("old", "file", "not_found", 1),
        ];
        let configured: Vec<String> = ["etc", "cluster", "web"].iter().map(|s| s.to_string()).collect();
        let mut out = String::new();
        render_sources(&mut out, &sources, &errors, &configured);
        let m = samples(&out);
        let want: BTreeMap<String, String> = [
            (r#"x509_source_up{source_kind="file",source_name="etc"}"#, "0"),
            (r#"x509_source_up{source_kind="kube-configmap",source_name="cluster"}"#, "1"),
            (r#"x509_source_up{source_kind="kube-secret",source_name="cluster"}"#, "1"),
            (r#"x509_source_bundles{source_kind="file",source_name="etc"}"#, "12"),
            (r#"x509_source_bundles{source_kind="kube-configmap",source_name="cluster"}"#, "1"),
            (r#"x509_source_bundles{source_kind="kube-secret",source_name="cluster"}"#, "3"),
            (r#"x509_source_bundles{source_kind="tls",source_name="web"}"#, "0"),
            (r#"x509_source_errors_total{source_kind="kube-secret",source_name="cluster",reason="http_403"}"#, "2"),
            (r#"x509_source_errors_total{source_kind="file",source_name="etc",reason="bad_pem"}"#, "5"),
            (r#"x509_source_errors_total{source_kind="file",source_name="etc",reason="permission_denied"}"#, "7"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(m, want);
        assert!(out.contains("# TYPE x509_source_errors_total counter\n"), "{out}");
    }
}
