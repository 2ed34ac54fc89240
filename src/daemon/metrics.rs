//! `/metrics` in the Prometheus text exposition format (version 0.0.4).
//!
//! The per-certificate families use the names and labels of x509-certificate-exporter
//! (`x509_cert_not_after{subject_CN=…,issuer_CN=…,serial_number=…,filepath=…}`), so existing
//! dashboards and alert rules work unchanged; certvigil adds `source` and `fingerprint`. Labels
//! with an empty value are left out, which Prometheus treats exactly like an empty label.
//! The `certvigil_*` families are certvigil's own: revocation, findings, alerts, outbox, jobs
//! and configuration reloads.

use crate::model::UnixTime;
use crate::store::{Counts, JobStats, RevocationSample, SightingSample};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Every family: name, type, help. The packaging's alert rules and dashboard use only these.
pub const FAMILIES: &[(&str, &str, &str)] = &[
    ("x509_cert_not_after", "gauge", "Certificate expiry date (notAfter), Unix seconds."),
    ("x509_cert_not_before", "gauge", "Certificate start date (notBefore), Unix seconds."),
    ("x509_cert_expired", "gauge", "1 when the certificate has expired."),
    ("x509_read_errors", "gauge", "Objects the last scan could not read."),
    ("x509_exporter_build_info", "gauge", "Build information."),
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
    let bytes = match hex::decode(hex_serial.trim_start_matches("0x")) {
        Ok(b) => b,
        Err(_) => return hex_serial.to_string(),
    };
    // Repeated division by 10 of a big-endian byte string.
    let mut num: Vec<u8> = bytes.into_iter().skip_while(|b| *b == 0).collect();
    if num.is_empty() {
        return "0".into();
    }
    let mut digits = Vec::new();
    while !num.is_empty() {
        let mut rem = 0u32;
        let mut next = Vec::with_capacity(num.len());
        for b in &num {
            let cur = (rem << 8) | u32::from(*b);
            let q = (cur / 10) as u8;
            rem = cur % 10;
            if !(next.is_empty() && q == 0) {
                next.push(q);
            }
        }
        digits.push(b'0' + rem as u8);
        num = next;
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
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

/// Appends the label set of one sighting to `out`.
pub fn write_sighting_labels(out: &mut String, s: &SightingSample<'_>) {
    let mut first = true;
    let (mut subject, mut issuer) = (Vec::with_capacity(8), Vec::with_capacity(8));
    rdn_pairs(s.subject, &mut subject);
    rdn_pairs(s.issuer, &mut issuer);
    push_label(out, &mut first, "filename", s.location.rsplit('/').next().unwrap_or(s.location));
    push_label(out, &mut first, "filepath", s.location);
    for attr in NAME_ATTRS {
        push_dn_label(out, &mut first, "issuer_", attr, &issuer);
    }
    push_label(out, &mut first, "serial_number", &serial_decimal(s.serial_hex));
    for attr in NAME_ATTRS {
        push_dn_label(out, &mut first, "subject_", attr, &subject);
    }
    push_label(out, &mut first, "source", s.source);
    push_label(out, &mut first, "fingerprint", s.fingerprint);
    if !first {
        out.push('}');
    }
}

/// The label set of one sighting.
pub fn sighting_labels(s: &SightingSample<'_>) -> String {
    let mut out = String::with_capacity(256);
    write_sighting_labels(&mut out, s);
    out
}

/// Writes the per-certificate families for a batch of sightings, family by family: callers
/// pass the same rows once per family (`which`) so that each family's samples stay together
/// while rows are streamed in bounded chunks.
pub fn sighting_sample(out: &mut String, which: &str, s: &SightingSample<'_>, now: UnixTime) {
    let v = match which {
        "x509_cert_not_after" => s.not_after,
        "x509_cert_not_before" => s.not_before,
        _ => i64::from(now > s.not_after),
    };
    out.push_str(which);
    write_sighting_labels(out, s);
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

pub fn render_summary(out: &mut String, s: &Summary) {
    header(out, "x509_read_errors");
    let _ = writeln!(out, "x509_read_errors {}", s.counts.last_scan_errors);
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

    #[test]
    fn sighting_lines() {
        let fp = "ab".repeat(32);
        let s = SightingSample {
            fingerprint: &fp,
            subject: "CN=web.example,O=Acme",
            issuer: "CN=Acme CA,O=Acme,C=US",
            serial_hex: "0A",
            not_before: 100,
            not_after: 200,
            source: "etc",
            location: "/etc/ssl/web.pem",
        };
        let mut out = String::new();
        sighting_sample(&mut out, "x509_cert_not_after", &s, 150);
        sighting_sample(&mut out, "x509_cert_expired", &s, 201);
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
}
