//! Read-only queries for `/metrics`: current sightings streamed row by row (so a scrape of a
//! large inventory never holds it all in memory), revocation states, and counters.

use super::db::params;
use super::{Result, Store, StoreError};
use crate::model::UnixTime;
use std::borrow::Cow;
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

/// A configured source as `/metrics` reports it (x509-certificate-exporter v4's per-source
/// families): its kind, whether its last complete scan could list all of it, and its current
/// objects by v4 source kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceSample {
    pub name: String,
    /// certvigil's kind (`files`, `kubernetes`, …).
    pub kind: String,
    /// `None` before the first complete scan.
    pub up: Option<bool>,
    /// Current objects (not vanished) by v4 source kind ([`crate::model::exporter::source_kind`]).
    pub bundles: BTreeMap<&'static str, i64>,
}

/// Errors scans met since the store began, for one source, v4 source kind and reason.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceErrorSample {
    pub source: String,
    pub source_kind: String,
    pub reason: String,
    pub count: i64,
}

/// A downloaded CRL whose stored copy verified against its issuer.
#[derive(Debug, Clone, PartialEq)]
pub struct CrlSample {
    pub url: String,
    /// RFC 4514.
    pub issuer: String,
    /// Decimal cRLNumber, when the CRL has one.
    pub number: Option<String>,
    pub this_update: Option<UnixTime>,
    pub next_update: Option<UnixTime>,
}

/// A CRL no revocation pass has verified for this long is left out of `/metrics`: the
/// certificates that pointed at it are gone or point elsewhere.
pub const CRL_UNUSED_AFTER: i64 = 7 * 86_400;

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

/// A member of an object's `meta` as SQLite's `json_extract(meta, '$.a.b')` returns it: JSON
/// null or no such member is NULL, `true`/`false` are 1/0, numbers are integers or reals, strings
/// their text, and arrays and objects their JSON text. The JSON work happens here rather than in
/// SQL: the engines' JSON functions differ.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum MetaValue<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(Cow<'a, str>),
}

impl<'a> MetaValue<'a> {
    /// The member at `path` (keys from the top) of `meta`; NULL when a step is not an object.
    pub(super) fn at(meta: &'a serde_json::Value, path: &[&str]) -> MetaValue<'a> {
        let mut v = meta;
        for k in path {
            match v.get(k) {
                Some(next) => v = next,
                None => return MetaValue::Null,
            }
        }
        match v {
            serde_json::Value::Null => MetaValue::Null,
            serde_json::Value::Bool(b) => MetaValue::Int(i64::from(*b)),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => MetaValue::Int(i),
                None => MetaValue::Real(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => MetaValue::Text(Cow::Borrowed(s)),
            other => MetaValue::Text(Cow::Owned(other.to_string())),
        }
    }

    pub(super) fn is_null(&self) -> bool {
        matches!(self, MetaValue::Null)
    }

    /// The text, when the value is text.
    pub(super) fn as_text(&self) -> Option<&str> {
        match self {
            MetaValue::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The text, as a text column read into `String`: anything else is an error.
    fn text(self, what: &str) -> Result<String> {
        match self {
            MetaValue::Text(t) => Ok(t.into_owned()),
            other => Err(meta_error(format!("{what}: expected text, found {other:?}"))),
        }
    }

    /// The text or nothing, as a column read into `Option<String>`: a number is an error.
    fn opt_text(self, what: &str) -> Result<Option<String>> {
        match self {
            MetaValue::Null => Ok(None),
            other => other.text(what).map(Some),
        }
    }
}

fn meta_error(detail: String) -> StoreError {
    StoreError::Corrupt { what: "object meta", detail }
}

/// An object's `meta`, parsed. Malformed JSON is an error, as `json_extract` over it was.
fn parse_meta(meta: &str) -> Result<serde_json::Value> {
    serde_json::from_str(meta).map_err(|e| meta_error(format!("malformed JSON: {e}")))
}

impl Store {
    /// Calls `f` for every current sighting, ordered by certificate.
    pub fn for_each_sighting(&self, mut f: impl FnMut(&SightingSample<'_>)) -> Result<()> {
        self.conn.query_each(
            "SELECT c.fingerprint, c.subject, c.issuer, c.serial, c.not_before, c.not_after, s.source, s.location
             FROM sightings s JOIN certificates c ON c.id = s.cert_id WHERE s.gone_since IS NULL ORDER BY s.cert_id, s.id",
            params![],
            |r| {
                let text = |i: usize| -> Result<&str> { r.get_ref(i)?.as_str() };
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
                Ok(())
            },
        )
    }

    /// Calls `f` for every current certificate that has a revocation result.
    pub fn for_each_revocation(&self, mut f: impl FnMut(&RevocationSample)) -> Result<()> {
        self.conn.query_each(
            "SELECT c.fingerprint, c.subject, c.serial, r.status, r.method
             FROM revocation_status r JOIN certificates c ON c.id = r.cert_id WHERE c.gone_since IS NULL ORDER BY c.id",
            params![],
            |r| {
                f(&RevocationSample {
                    fingerprint: r.get(0)?,
                    subject: r.get(1)?,
                    serial_hex: r.get(2)?,
                    state: r.get(3)?,
                    method: r.get(4)?,
                });
                Ok(())
            },
        )
    }

    /// Leaf certificates that TLS endpoints serve with a chain that does not verify, by
    /// fingerprint: (endpoint, why), from the current objects' metadata.
    pub fn untrusted_endpoints(&self) -> Result<std::collections::HashMap<String, Vec<(String, String)>>> {
        // The meta is read in Rust (`verified` false or 0, `leaf_sha256` present), as
        // `json_extract` did; the LIKE only skips the objects (most) whose meta cannot say it.
        // The ORDER BY is SQLite's scan order (the primary key's), stated for PostgreSQL.
        let mut out: std::collections::HashMap<String, Vec<(String, String)>> = Default::default();
        self.conn.query_each(
            "SELECT meta FROM objects
             WHERE vanished_at IS NULL AND error IS NULL AND meta IS NOT NULL AND meta LIKE '%\"verified\"%'
             ORDER BY source, location",
            params![],
            |r| {
                let meta = parse_meta(r.get_ref(0)?.as_str()?)?;
                let verified_is_zero = match MetaValue::at(&meta, &["verified"]) {
                    MetaValue::Int(i) => i == 0,
                    MetaValue::Real(f) => f == 0.0,
                    _ => false,
                };
                let leaf = MetaValue::at(&meta, &["leaf_sha256"]);
                if !verified_is_zero || leaf.is_null() {
                    return Ok(());
                }
                let fp = leaf.text("leaf_sha256")?;
                let ep = MetaValue::at(&meta, &["endpoint"]).text("endpoint")?;
                let name = MetaValue::at(&meta, &["server_name"]).text("server_name")?;
                let why = MetaValue::at(&meta, &["verify_error"]).opt_text("verify_error")?.unwrap_or_else(|| "not verified".into());
                out.entry(fp).or_default().push((format!("{ep} ({name})"), why));
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Certificates sighted in a Secret whose cert-manager Certificate is not Ready (the
    /// `certManager` meta of Kubernetes objects): cert id → (`namespace/name`, why).
    pub fn cert_manager_not_ready(&self) -> Result<std::collections::HashMap<i64, Vec<(String, String)>>> {
        // The meta is read in Rust (`certManager.ready` present and not the text `True`), as
        // `json_extract` did; the LIKE only skips the objects whose meta cannot say it. The
        // ORDER BY keeps the order SQLite read them in (sightings first), which says whose
        // reason is kept for a Certificate seen twice; it also keeps SQLite's plan.
        let mut out: std::collections::HashMap<i64, Vec<(String, String)>> = Default::default();
        self.conn.query_each(
            "SELECT s.cert_id, o.meta
             FROM sightings s JOIN objects o ON o.source = s.source AND o.location = s.location
             WHERE s.gone_since IS NULL AND o.vanished_at IS NULL AND o.meta IS NOT NULL AND o.meta LIKE '%\"certManager\"%'
             ORDER BY s.id",
            params![],
            |r| {
                let cert_id: i64 = r.get(0)?;
                let meta = parse_meta(r.get_ref(1)?.as_str()?)?;
                let ready = MetaValue::at(&meta, &["certManager", "ready"]);
                // `json_extract(…) != 'True'`: a value that is not text (JSON true is 1) differs
                // from it too, and is then no text to read (an error, as before).
                if ready.is_null() || ready.as_text() == Some("True") {
                    return Ok(());
                }
                let ns = MetaValue::at(&meta, &["namespace"]).opt_text("namespace")?;
                let name = MetaValue::at(&meta, &["certManager", "certificate"]).opt_text("certManager.certificate")?;
                let ready = ready.text("certManager.ready")?;
                let reason = MetaValue::at(&meta, &["certManager", "reason"]).opt_text("certManager.reason")?;
                let message = MetaValue::at(&meta, &["certManager", "message"]).opt_text("certManager.message")?;
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
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Every source the store knows, by name, with its current objects by v4 source kind.
    pub fn source_samples(&self) -> Result<Vec<SourceSample>> {
        let mut out: Vec<SourceSample> = Vec::new();
        self.conn.query_each("SELECT name, kind, last_scan_up FROM sources ORDER BY name", params![], |r| {
            let up: Option<i64> = r.get(2)?;
            out.push(SourceSample { name: r.get(0)?, kind: r.get(1)?, up: up.map(|u| u != 0), bundles: BTreeMap::new() });
            Ok(())
        })?;
        let index: std::collections::HashMap<String, usize> = out.iter().enumerate().map(|(i, s)| (s.name.clone(), i)).collect();
        // Only a Kubernetes source's objects differ in v4 kind by location; the others are
        // counted by the engine.
        self.conn.query_each(
            "SELECT o.source, COUNT(*) FROM objects o JOIN sources s ON s.name = o.source
             WHERE o.vanished_at IS NULL AND s.kind != 'kubernetes' GROUP BY o.source",
            params![],
            |r| {
                if let Some(s) = index.get(r.get_ref(0)?.as_str()?).and_then(|i| out.get_mut(*i)) {
                    let kind = crate::model::exporter::source_kind(&s.kind, "");
                    s.bundles.insert(kind, r.get(1)?);
                }
                Ok(())
            },
        )?;
        self.conn.query_each(
            "SELECT o.source, o.location FROM objects o JOIN sources s ON s.name = o.source
             WHERE o.vanished_at IS NULL AND s.kind = 'kubernetes'",
            params![],
            |r| {
                if let Some(s) = index.get(r.get_ref(0)?.as_str()?).and_then(|i| out.get_mut(*i)) {
                    let kind = crate::model::exporter::source_kind(&s.kind, r.get_ref(1)?.as_str()?);
                    *s.bundles.entry(kind).or_insert(0) += 1;
                }
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// The scan errors counted per source, v4 source kind and reason.
    pub fn source_error_samples(&self) -> Result<Vec<SourceErrorSample>> {
        let mut out = Vec::new();
        self.conn.query_each(
            "SELECT source, source_kind, reason, count FROM source_errors ORDER BY source, source_kind, reason",
            params![],
            |r| {
                out.push(SourceErrorSample { source: r.get(0)?, source_kind: r.get(1)?, reason: r.get(2)?, count: r.get(3)? });
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// The downloaded CRLs whose stored copy verified, by URL, leaving out those no pass has
    /// verified within [`CRL_UNUSED_AFTER`] of `now`.
    pub fn crl_samples(&self, now: UnixTime) -> Result<Vec<CrlSample>> {
        let mut out = Vec::new();
        self.conn.query_each(
            "SELECT url, issuer, crl_number, this_update, next_update FROM crl_cache
             WHERE verified_sha256 = sha256 AND verified_at >= ?1 ORDER BY url",
            params![now - CRL_UNUSED_AFTER],
            |r| {
                let issuer: Option<String> = r.get(1)?;
                out.push(CrlSample {
                    url: r.get(0)?,
                    issuer: issuer.unwrap_or_default(),
                    number: r.get(2)?,
                    this_update: r.get(3)?,
                    next_update: r.get(4)?,
                });
                Ok(())
            },
        )?;
        Ok(out)
    }

    pub fn counts(&self) -> Result<Counts> {
        let c = &self.conn;
        // Conditions are summed through CASE: PostgreSQL cannot sum booleans.
        let (certs_current, certs_gone) = c.query_row(
            "SELECT COALESCE(SUM(CASE WHEN gone_since IS NULL THEN 1 ELSE 0 END), 0),
                    COALESCE(SUM(CASE WHEN gone_since IS NOT NULL THEN 1 ELSE 0 END), 0)
             FROM certificates",
            params![],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let mut alerts_open = BTreeMap::new();
        c.query_each("SELECT severity, COUNT(*) FROM alerts WHERE state != 'resolved' GROUP BY severity", params![], |r| {
            alerts_open.insert(r.get::<String>(0)?, r.get::<i64>(1)?);
            Ok(())
        })?;
        let (outbox_pending, outbox_failed) = c.query_row(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN last_error IS NOT NULL THEN 1 ELSE 0 END), 0) FROM outbox WHERE sent_at IS NULL",
            params![],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let last_scan_errors = c.query_row(
            "SELECT COALESCE((SELECT errors FROM scan_runs WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1), 0)",
            params![],
            |r| r.get(0),
        )?;
        Ok(Counts { certs_current, certs_gone, alerts_open, outbox_pending, outbox_failed, last_scan_errors })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ObjectOutcome;

    /// A member of a meta reads as SQLite's `json_extract` returns it, whatever its JSON type.
    #[test]
    fn meta_members_read_as_json_extract_returns_them() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let doc = serde_json::json!({
            "s": "a\"b\u{e9}", "e": "", "t": true, "f": false, "z": 0, "zf": 0.0, "nz": -0.0, "i": -7, "r": 1.5,
            "big": 18446744073709551615u64, "n": null, "a": [1, "x", {"k": null}], "o": {"k": {"j": 1}, "s": "v"}
        });
        let paths: &[&[&str]] = &[
            &["s"],
            &["e"],
            &["t"],
            &["f"],
            &["z"],
            &["zf"],
            &["nz"],
            &["i"],
            &["r"],
            &["big"],
            &["n"],
            &["a"],
            &["o"],
            &["o", "k"],
            &["o", "k", "j"],
            &["o", "s"],
            &["missing"],
            &["s", "x"],
            &["a", "k"],
            &["o", "missing", "x"],
        ];
        for doc in [doc, serde_json::json!([{"s": 1}]), serde_json::json!("s"), serde_json::json!(3)] {
            let text = doc.to_string();
            for path in paths {
                let p = format!("$.{}", path.join("."));
                let sql = conn
                    .query_row("SELECT json_extract(?1, ?2)", rusqlite::params![text, p], |r| {
                        use rusqlite::types::ValueRef as V;
                        Ok(match r.get_ref(0)? {
                            V::Null => MetaValue::Null,
                            V::Integer(i) => MetaValue::Int(i),
                            V::Real(f) => MetaValue::Real(f),
                            V::Text(t) => MetaValue::Text(Cow::Owned(String::from_utf8(t.to_vec()).unwrap())),
                            V::Blob(_) => panic!("a blob"),
                        })
                    })
                    .unwrap();
                assert_eq!(MetaValue::at(&doc, path), sql, "{p} of {text}");
            }
        }
    }

    fn put(w: &mut crate::store::ScanWriter<'_>, src: &str, loc: &str, parsed: &crate::x509::Parsed, meta: serde_json::Value) {
        w.record(src, loc, None, ObjectOutcome::Parsed { stamp: "1", content_sha256: "00", parsed }).unwrap();
        w.object_extras(src, loc, Some(&meta), None).unwrap();
    }

    /// `verified` false or 0 with a leaf hash names the endpoint; true, `"0"`, or no leaf hash
    /// does not.
    #[test]
    fn untrusted_endpoints_are_read_from_the_meta() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let none = crate::x509::Parsed::default();
        let mut w = store.begin_scan(100, &["tls".to_string()]).unwrap();
        let probe = |verified: serde_json::Value, error: Option<&str>| serde_json::json!({"endpoint": "h:443", "server_name": "h", "leaf_sha256": "aa", "verified": verified, "verify_error": error});
        put(&mut w, "tls", "tls://a", &none, probe(false.into(), Some("unknown issuer")));
        put(&mut w, "tls", "tls://b", &none, probe(0.into(), None));
        put(&mut w, "tls", "tls://c", &none, probe(true.into(), None));
        put(&mut w, "tls", "tls://d", &none, probe("0".into(), None));
        put(&mut w, "tls", "tls://e", &none, serde_json::json!({"endpoint": "e:443", "server_name": "e", "verified": false}));
        put(&mut w, "tls", "tls://f", &none, serde_json::json!({"version": 2}));
        w.finish().unwrap();
        let got = store.untrusted_endpoints().unwrap();
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            [(
                "aa".to_string(),
                vec![("h:443 (h)".to_string(), "unknown issuer".to_string()), ("h:443 (h)".to_string(), "not verified".to_string())]
            )]
        );
    }

    /// A certificate in a Secret whose Certificate is not Ready, once per Certificate; a
    /// `ready` that is not text is an error, as it was in SQL.
    #[test]
    fn cert_manager_readiness_is_read_from_the_meta() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, "a.example");
        let a = crate::x509::parse_object(p.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().der(), &[]);
        let cm = |ready: serde_json::Value| serde_json::json!({"namespace": "web", "certManager": {"certificate": "site", "ready": ready, "reason": "Failed", "message": "no"}});
        let mut w = store.begin_scan(100, &["k8s".to_string()]).unwrap();
        put(&mut w, "k8s", "k8s://c/web/secrets/a#tls.crt", &a, cm("False".into()));
        put(&mut w, "k8s", "k8s://c/web/secrets/a#ca.crt", &a, cm("Unknown".into()));
        put(&mut w, "k8s", "k8s://c/web/secrets/b#tls.crt", &a, cm("True".into()));
        put(
            &mut w,
            "k8s",
            "k8s://c/web/secrets/c#tls.crt",
            &a,
            serde_json::json!({"namespace": "web", "certManager": {"certificate": "c"}}),
        );
        w.finish().unwrap();
        let id = store.find(&a.certs[0].facts.fingerprint.0).unwrap()[0].id;
        let got = store.cert_manager_not_ready().unwrap();
        assert_eq!(got.into_iter().collect::<Vec<_>>(), [(id, vec![("web/site".to_string(), "Ready=False, Failed: no".to_string())])]);
        let mut w = store.begin_scan(200, &["k8s".to_string()]).unwrap();
        put(&mut w, "k8s", "k8s://c/web/secrets/d#tls.crt", &a, cm(true.into()));
        w.finish().unwrap();
        assert!(matches!(store.cert_manager_not_ready(), Err(StoreError::Corrupt { .. })));
    }
}
