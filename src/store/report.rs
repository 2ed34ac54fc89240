//! Read-only queries for `/metrics`: current sightings streamed row by row (so a scrape of a
//! large inventory never holds it all in memory), revocation states, and counters.

use super::{Result, Store};
use crate::model::UnixTime;
use std::collections::BTreeMap;

/// One current sighting with the certificate fields metrics label it with, borrowed from the
/// row being read.
#[derive(Debug, Clone)]
pub struct SightingSample<'a> {
    pub fingerprint: &'a str,
    pub subject: &'a str,
    pub issuer: &'a str,
    pub serial_hex: &'a str,
    pub not_before: UnixTime,
    pub not_after: UnixTime,
    pub source: &'a str,
    pub location: &'a str,
}

/// A certificate's stored revocation result.
#[derive(Debug, Clone)]
pub struct RevocationSample {
    pub fingerprint: String,
    pub subject: String,
    pub serial_hex: String,
    pub state: String,
    pub method: String,
}

/// Counters over the store.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub certs_current: i64,
    pub certs_gone: i64,
    pub alerts_open: BTreeMap<String, i64>,
    pub outbox_pending: i64,
    pub outbox_failed: i64,
    /// Errors of the last finished scan.
    pub last_scan_errors: i64,
}

impl Store {
    /// Calls `f` for every current sighting, ordered by certificate.
    pub fn for_each_sighting(&self, mut f: impl FnMut(&SightingSample<'_>)) -> Result<()> {
        let mut stmt = self.conn.prepare(
            "SELECT c.fingerprint, c.subject, c.issuer, c.serial, c.not_before, c.not_after, s.source, s.location
             FROM sightings s JOIN certificates c ON c.id = s.cert_id WHERE s.gone_since IS NULL ORDER BY s.cert_id, s.id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let text = |i: usize| -> Result<&str> { Ok(r.get_ref(i)?.as_str()?) };
            f(&SightingSample {
                fingerprint: text(0)?,
                subject: text(1)?,
                issuer: text(2)?,
                serial_hex: text(3)?,
                not_before: r.get(4)?,
                not_after: r.get(5)?,
                source: text(6)?,
                location: text(7)?,
            });
        }
        Ok(())
    }

    /// Calls `f` for every current certificate that has a revocation result.
    pub fn for_each_revocation(&self, mut f: impl FnMut(&RevocationSample)) -> Result<()> {
        let mut stmt = self.conn.prepare(
            "SELECT c.fingerprint, c.subject, c.serial, r.status, r.method
             FROM revocation_status r JOIN certificates c ON c.id = r.cert_id WHERE c.gone_since IS NULL ORDER BY c.id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            f(&RevocationSample { fingerprint: r.get(0)?, subject: r.get(1)?, serial_hex: r.get(2)?, state: r.get(3)?, method: r.get(4)? });
        }
        Ok(())
    }

    /// Leaf certificates that TLS endpoints serve with a chain that does not verify, by
    /// fingerprint: (endpoint, why), from the current objects' metadata.
    pub fn untrusted_endpoints(&self) -> Result<std::collections::HashMap<String, Vec<(String, String)>>> {
        let mut stmt = self.conn.prepare(
            "SELECT json_extract(meta, '$.leaf_sha256'), json_extract(meta, '$.endpoint'), json_extract(meta, '$.server_name'),
                    COALESCE(json_extract(meta, '$.verify_error'), 'not verified')
             FROM objects WHERE vanished_at IS NULL AND error IS NULL AND meta IS NOT NULL
               AND json_extract(meta, '$.verified') = 0 AND json_extract(meta, '$.leaf_sha256') IS NOT NULL",
        )?;
        let mut out: std::collections::HashMap<String, Vec<(String, String)>> = Default::default();
        let rows =
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?)))?;
        for row in rows {
            let (fp, ep, name, why) = row?;
            out.entry(fp).or_default().push((format!("{ep} ({name})"), why));
        }
        Ok(out)
    }

    /// Certificates sighted in a Secret whose cert-manager Certificate is not Ready (the
    /// `certManager` meta of Kubernetes objects): cert id → (`namespace/name`, why).
    pub fn cert_manager_not_ready(&self) -> Result<std::collections::HashMap<i64, Vec<(String, String)>>> {
        let mut stmt = self.conn.prepare(
            "SELECT s.cert_id, json_extract(o.meta, '$.namespace'), json_extract(o.meta, '$.certManager.certificate'),
                    json_extract(o.meta, '$.certManager.ready'), json_extract(o.meta, '$.certManager.reason'),
                    json_extract(o.meta, '$.certManager.message')
             FROM sightings s JOIN objects o ON o.source = s.source AND o.location = s.location
             WHERE s.gone_since IS NULL AND o.vanished_at IS NULL AND o.meta IS NOT NULL
               AND json_extract(o.meta, '$.certManager.ready') IS NOT NULL AND json_extract(o.meta, '$.certManager.ready') != 'True'",
        )?;
        let mut out: std::collections::HashMap<i64, Vec<(String, String)>> = Default::default();
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })?;
        for row in rows {
            let (cert_id, ns, name, ready, reason, message) = row?;
            let what = format!("{}/{}", ns.unwrap_or_default(), name.unwrap_or_default());
            let mut why = format!("Ready={ready}");
            if let Some(r) = reason {
                why.push_str(&format!(", {r}"));
            }
            if let Some(m) = message {
                why.push_str(&format!(": {m}"));
            }
            let entry = out.entry(cert_id).or_default();
            if !entry.iter().any(|(w, _)| *w == what) {
                entry.push((what, why));
            }
        }
        Ok(out)
    }

    pub fn counts(&self) -> Result<Counts> {
        let c = &self.conn;
        let (certs_current, certs_gone) = c.query_row(
            "SELECT COALESCE(SUM(gone_since IS NULL), 0), COALESCE(SUM(gone_since IS NOT NULL), 0) FROM certificates",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let mut alerts_open = BTreeMap::new();
        let mut stmt = c.prepare("SELECT severity, COUNT(*) FROM alerts WHERE state != 'resolved' GROUP BY severity")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (k, v) = row?;
            alerts_open.insert(k, v);
        }
        let (outbox_pending, outbox_failed) =
            c.query_row("SELECT COUNT(*), COALESCE(SUM(last_error IS NOT NULL), 0) FROM outbox WHERE sent_at IS NULL", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        let last_scan_errors = c.query_row(
            "SELECT COALESCE((SELECT errors FROM scan_runs WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1), 0)",
            [],
            |r| r.get(0),
        )?;
        Ok(Counts { certs_current, certs_gone, alerts_open, outbox_pending, outbox_failed, last_scan_errors })
    }
}
