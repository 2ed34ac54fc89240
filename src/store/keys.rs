//! Store queries for key objects (the `keys` table, PKCS#11 private and public keys) and for
//! the certificates sighted on tokens, which the key policy pairs with them.

use super::db::params;
use super::{Result, Store};
use crate::model::rows::{KeyRow, TokenCertRow};

impl Store {
    /// Current key objects, of one source or all: a key whose object the source no longer lists
    /// (object vanished) or that is marked gone is not current.
    pub fn keys(&self, source: Option<&str>) -> Result<Vec<KeyRow>> {
        // `CAST(?1 AS TEXT)`: PostgreSQL cannot type a parameter used only in `IS NULL`.
        self.conn.query_map(
            "SELECT k.id, k.source, k.location, k.label, k.key_id, k.class, k.algorithm, k.bits, k.curve, k.spki_sha256,
                    k.attributes, k.first_seen, k.last_seen
             FROM keys k JOIN objects o ON o.source = k.source AND o.location = k.location
             WHERE k.gone_since IS NULL AND o.vanished_at IS NULL AND (CAST(?1 AS TEXT) IS NULL OR k.source = ?1)
             ORDER BY k.source, k.location",
            params![source],
            |r| {
                let attributes: String = r.get(10)?;
                Ok(KeyRow {
                    id: r.get(0)?,
                    source: r.get(1)?,
                    location: r.get(2)?,
                    label: r.get(3)?,
                    key_id: r.get(4)?,
                    class: r.get(5)?,
                    algorithm: r.get(6)?,
                    bits: r.get(7)?,
                    curve: r.get(8)?,
                    spki_sha256: r.get(9)?,
                    attributes: serde_json::from_str(&attributes).unwrap_or(serde_json::Value::Null),
                    first_seen: r.get(11)?,
                    last_seen: r.get(12)?,
                })
            },
        )
    }

    /// Current certificate sightings in objects of PKCS#11 sources.
    pub fn token_certificates(&self) -> Result<Vec<TokenCertRow>> {
        self.conn.query_map(
            "SELECT c.id, c.fingerprint, c.spki_sha256, c.is_ca, s.source, s.location, o.meta
             FROM sightings s
             JOIN certificates c ON c.id = s.cert_id
             JOIN sources src ON src.name = s.source
             JOIN objects o ON o.source = s.source AND o.location = s.location
             WHERE s.gone_since IS NULL AND o.vanished_at IS NULL AND src.kind = 'pkcs11'
             ORDER BY s.source, s.location, c.id",
            params![],
            |r| {
                let meta: Option<String> = r.get(6)?;
                let meta: serde_json::Value = meta.and_then(|m| serde_json::from_str(&m).ok()).unwrap_or_default();
                let text = |k: &str| meta.get(k).and_then(serde_json::Value::as_str).map(str::to_string);
                Ok(TokenCertRow {
                    cert_id: r.get(0)?,
                    fingerprint: r.get(1)?,
                    spki_sha256: r.get(2)?,
                    is_ca: r.get(3)?,
                    source: r.get(4)?,
                    location: r.get(5)?,
                    token: text("token"),
                    key_id: text("id"),
                    label: text("label"),
                })
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::observed::KeyObject;

    fn key(label: &str) -> KeyObject {
        KeyObject {
            label: Some(label.into()),
            key_id: Some("01".into()),
            class: "private".into(),
            algorithm: "EC".into(),
            bits: Some(256),
            curve: Some("P-256".into()),
            spki_sha256: Some("ab".repeat(32)),
            attributes: serde_json::json!({"extractable": false, "sign": true}),
            document: None,
        }
    }

    /// Writes a key object the way the scan driver does: the object row, then the key row.
    fn put(w: &mut super::super::ScanWriter<'_>, location: &str, k: &KeyObject) {
        let parsed = crate::x509::Parsed::default();
        w.record("hsm", location, None, super::super::ObjectOutcome::Parsed { stamp: "s", content_sha256: "00", parsed: &parsed }).unwrap();
        w.object_extras("hsm", location, None, Some(k)).unwrap();
    }

    #[test]
    fn only_current_keys_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let mut w = store.begin_scan(100, &["hsm".to_string()]).unwrap();
        w.register_source("hsm", "pkcs11", &[]).unwrap();
        put(&mut w, "pkcs11:token=t;id=%01;type=private", &key("a"));
        put(&mut w, "pkcs11:token=t;id=%02;type=private", &key("b"));
        w.finish().unwrap();
        let keys = store.keys(Some("hsm")).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].label.as_deref(), Some("a"));
        assert_eq!(keys[0].flag("sign"), Some(true));
        assert_eq!(keys[0].bits, Some(256));
        assert!(store.keys(Some("other")).unwrap().is_empty());
        let mut w = store.begin_scan(200, &["hsm".to_string()]).unwrap();
        w.vanished("hsm", "pkcs11:token=t;id=%02;type=private").unwrap();
        w.finish().unwrap();
        let keys = store.keys(None).unwrap();
        assert_eq!(keys.iter().map(|k| k.label.as_deref()).collect::<Vec<_>>(), [Some("a")]);
    }
}
