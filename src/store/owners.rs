//! Store queries for certificate owners: the owner each source recorded in an object's meta
//! (`owner`, `owner_contact`, `owner_from`), with the current sightings of the certificates in
//! those objects, in one pass (`app::owners` decides which one wins).

use super::db::{ToValue, Value, params};
use super::report::MetaValue;
use super::{IN_LIST_MAX, Result, Store, placeholders};

/// One current sighting, with what its object's meta says of an owner and the kind of its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerSample<'a> {
    pub cert_id: i64,
    pub source: &'a str,
    /// The source's kind (`kubernetes`, `vault`, `aws`, …); empty for a source never registered.
    pub kind: &'a str,
    pub location: &'a str,
    pub owner: Option<&'a str>,
    pub contact: Option<&'a str>,
    /// Where in the object the owner was written (`annotation`, `label`, `custom_metadata`, `tag`).
    pub from: Option<&'a str>,
    /// The certificate is a CA.
    pub ca: bool,
    /// The object holds a current end-entity certificate too (told only when it names an owner).
    pub beside_end_entity: bool,
}

/// Which sightings [`Store::each_owner_sample`] reads.
#[derive(Debug, Clone, Copy)]
pub enum OwnerScope<'a> {
    /// Those whose object names an owner, of every current certificate.
    Owned,
    /// Every current sighting (for rules that match locations).
    Every,
    /// Every current sighting of these certificates.
    Certificates(&'a [i64]),
}

/// Selected from `sightings s JOIN certificates c LEFT JOIN objects o LEFT JOIN sources src`.
/// The object's meta is read in Rust ([`OwnerMeta`]); SQL only hands over the meta that may name
/// an owner (its text holds `"owner…`), and asks whether the object holds an end-entity
/// certificate only of those (the answer counts only when the meta does name one).
/// `c2.is_ca = 0` and the CASE around EXISTS: PostgreSQL's integers are not booleans.
const OWNER_COLUMNS: &str = "s.cert_id, s.source, COALESCE(src.kind, ''), s.location,
    CASE WHEN o.meta LIKE '%\"owner%' THEN o.meta END,
    c.is_ca,
    CASE WHEN o.meta LIKE '%\"owner\"%' AND EXISTS (
        SELECT 1 FROM sightings s2 JOIN certificates c2 ON c2.id = s2.cert_id
        WHERE s2.source = s.source AND s2.location = s.location AND s2.gone_since IS NULL AND c2.is_ca = 0) THEN 1 ELSE 0 END";

/// The query of [`OwnerScope::Owned`]. CROSS JOIN keeps this order on SQLite: the objects first
/// (most name no owner and stop at the cheap LIKE), then the sightings of those that may, by
/// index. The join's terms are in WHERE: PostgreSQL allows no ON after CROSS JOIN. Whether the
/// meta does name an owner is decided in Rust.
fn owned_sql() -> String {
    format!(
        "SELECT {OWNER_COLUMNS} FROM objects o
         CROSS JOIN sightings s
         JOIN certificates c ON c.id = s.cert_id
         LEFT JOIN sources src ON src.name = s.source
         WHERE s.source = o.source AND s.location = o.location AND s.gone_since IS NULL
           AND o.meta IS NOT NULL AND o.meta LIKE '%\"owner\"%'"
    )
}

/// What an object's meta says of an owner, as SQLite's `json_extract` read `$.owner`,
/// `$.owner_contact` and `$.owner_from` of meta that is valid JSON (of any other, nothing).
#[derive(Debug, Default)]
struct OwnerMeta {
    /// `$.owner` is there and not JSON null (whatever its type).
    named: bool,
    /// The text of each, when it is text (a JSON string, or an array's or object's JSON).
    owner: Option<String>,
    contact: Option<String>,
    from: Option<String>,
}

impl OwnerMeta {
    fn parse(meta: &str) -> OwnerMeta {
        let Ok(meta) = serde_json::from_str::<serde_json::Value>(meta) else { return OwnerMeta::default() };
        let text = |key: &str| MetaValue::at(&meta, &[key]).as_text().map(str::to_string);
        OwnerMeta {
            named: !MetaValue::at(&meta, &["owner"]).is_null(),
            owner: text("owner"),
            contact: text("owner_contact"),
            from: text("owner_from"),
        }
    }
}

impl Store {
    /// Streams the current sightings of `scope` with their objects' owners, in one query (one
    /// per 500 certificates for [`OwnerScope::Certificates`]). With `Owned`, the pass reads the
    /// objects that carry meta and joins only those naming an owner to their sightings.
    pub fn each_owner_sample(&self, scope: OwnerScope<'_>, mut f: impl FnMut(&OwnerSample<'_>)) -> Result<()> {
        let owned_only = matches!(scope, OwnerScope::Owned);
        // The sightings of one object come together: its meta is parsed once for them.
        let mut last: Option<(String, OwnerMeta)> = None;
        let mut run = |sql: &str, params: &[&dyn ToValue]| -> Result<()> {
            self.conn.query_each(sql, params, |r| {
                let meta = match r.get_ref(4)? {
                    Value::Text(m) => {
                        if last.as_ref().is_none_or(|(text, _)| text != m) {
                            last = Some((m.to_string(), OwnerMeta::parse(m)));
                        }
                        last.as_ref().map(|(_, parsed)| parsed)
                    }
                    _ => None,
                };
                let none = OwnerMeta::default();
                let meta = meta.unwrap_or(&none);
                if owned_only && !meta.named {
                    return Ok(());
                }
                f(&OwnerSample {
                    cert_id: r.get(0)?,
                    source: r.get_ref(1)?.as_str()?,
                    kind: r.get_ref(2)?.as_str()?,
                    location: r.get_ref(3)?.as_str()?,
                    owner: meta.owner.as_deref().map(str::trim).filter(|o| !o.is_empty()),
                    contact: meta.contact.as_deref().map(str::trim).filter(|c| !c.is_empty()),
                    from: meta.from.as_deref(),
                    ca: r.get(5)?,
                    beside_end_entity: meta.named && r.get::<bool>(6)?,
                });
                Ok(())
            })
        };
        match scope {
            OwnerScope::Owned => run(&owned_sql(), params![]),
            OwnerScope::Every => run(
                &format!(
                    "SELECT {OWNER_COLUMNS} FROM sightings s
                     JOIN certificates c ON c.id = s.cert_id
                     LEFT JOIN objects o ON o.source = s.source AND o.location = s.location
                     LEFT JOIN sources src ON src.name = s.source
                     WHERE s.gone_since IS NULL"
                ),
                params![],
            ),
            OwnerScope::Certificates(ids) => {
                for chunk in ids.chunks(IN_LIST_MAX) {
                    let sql = format!(
                        "SELECT {OWNER_COLUMNS} FROM sightings s
                         JOIN certificates c ON c.id = s.cert_id
                         LEFT JOIN objects o ON o.source = s.source AND o.location = s.location
                         LEFT JOIN sources src ON src.name = s.source
                         WHERE s.gone_since IS NULL AND s.cert_id IN ({})",
                        placeholders(chunk.len())
                    );
                    let params: Vec<&dyn ToValue> = chunk.iter().map(|i| i as &dyn ToValue).collect();
                    run(&sql, &params)?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ObjectOutcome;

    /// Two certificates in four objects of three sources; owners in the meta of two objects.
    #[test]
    fn owners_come_with_their_current_sightings() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let der = |cn: &str| {
            let mut p = rcgen::CertificateParams::new(vec![cn.to_string()]).unwrap();
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
            p.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().der().to_vec()
        };
        let (a, b) = (crate::x509::parse_object(&der("a.example"), &[]), crate::x509::parse_object(&der("b.example"), &[]));
        let names: Vec<String> = ["k8s", "disk", "kv"].map(String::from).to_vec();
        let mut w = store.begin_scan(100, &names).unwrap();
        for (n, kind) in [("k8s", "kubernetes"), ("disk", "files"), ("kv", "vault")] {
            w.register_source(n, kind, &[]).unwrap();
        }
        let put = |w: &mut crate::store::ScanWriter<'_>, src: &str, loc: &str, parsed, meta: Option<serde_json::Value>| {
            w.record(src, loc, None, ObjectOutcome::Parsed { stamp: "1", content_sha256: "00", parsed }).unwrap();
            w.object_extras(src, loc, meta.as_ref(), None).unwrap();
        };
        put(
            &mut w,
            "k8s",
            "k8s://c/ns/secrets/a#tls.crt",
            &a,
            Some(serde_json::json!({"owner": " payments ", "owner_from": "annotation"})),
        );
        put(&mut w, "disk", "/etc/ssl/a.pem", &a, None);
        put(&mut w, "kv", "vault:kv/b", &b, Some(serde_json::json!({"owner": "web", "owner_contact": "web@corp.example"})));
        put(&mut w, "kv", "vault:kv/b2", &b, Some(serde_json::json!({"version": 2})));
        w.finish().unwrap();
        let id = |fp: &str| store.find(fp).unwrap()[0].id;
        let (ida, idb) = (id(&a.certs[0].facts.fingerprint.0), id(&b.certs[0].facts.fingerprint.0));
        type Row = (i64, String, String, String, Option<String>, Option<String>, Option<String>);
        fn collect(store: &Store, scope: OwnerScope<'_>) -> Vec<Row> {
            let mut out = Vec::new();
            let text = |s: Option<&str>| s.map(String::from);
            store
                .each_owner_sample(scope, |s| {
                    out.push((s.cert_id, s.source.into(), s.kind.into(), s.location.into(), text(s.owner), text(s.contact), text(s.from)))
                })
                .unwrap();
            out.sort();
            out
        }
        let owned = collect(&store, OwnerScope::Owned);
        assert_eq!(
            owned,
            [
                (
                    ida,
                    "k8s".into(),
                    "kubernetes".into(),
                    "k8s://c/ns/secrets/a#tls.crt".into(),
                    Some("payments".into()),
                    None,
                    Some("annotation".into())
                ),
                (idb, "kv".into(), "vault".into(), "vault:kv/b".into(), Some("web".into()), Some("web@corp.example".into()), None),
            ]
        );
        assert_eq!(collect(&store, OwnerScope::Every).len(), 4);
        let one = collect(&store, OwnerScope::Certificates(&[idb]));
        assert_eq!(
            one.iter().map(|r| (r.3.as_str(), r.4.as_deref())).collect::<Vec<_>>(),
            [("vault:kv/b", Some("web")), ("vault:kv/b2", None)]
        );

        // The object no longer lists the certificate: its sighting is gone, and so is the owner.
        let mut w = store.begin_scan(200, &names).unwrap();
        w.vanished("k8s", "k8s://c/ns/secrets/a#tls.crt").unwrap();
        w.finish().unwrap();
        assert_eq!(collect(&store, OwnerScope::Owned).len(), 1);
    }

    /// One pass over the objects, each owned one joined to its sightings through the index:
    /// never a scan of every sighting to find the few objects that name an owner.
    #[test]
    fn the_owned_pass_reads_objects_and_looks_sightings_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let plan: Vec<String> = store
            .conn()
            .unwrap()
            .prepare(&format!("EXPLAIN QUERY PLAN {}", owned_sql()))
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        assert!(plan[0].starts_with("SCAN o"), "{plan:?}");
        assert!(plan.iter().any(|p| p.starts_with("SEARCH s USING INDEX sightings_location")), "{plan:?}");
        assert!(plan.iter().any(|p| p.starts_with("SEARCH c USING INTEGER PRIMARY KEY")), "{plan:?}");
        assert!(!plan.iter().any(|p| p.starts_with("SCAN s")), "{plan:?}");
    }

    /// A CA certificate in an object beside an end-entity certificate (a served chain) is told
    /// so; in an object of CA certificates only (a trust bundle) it is not.
    #[test]
    fn chains_and_bundles_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name.push(rcgen::DnType::CommonName, "Test CA");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["site.example".to_string()]).unwrap();
        let leaf_pem = leaf.signed_by(&leaf_key, &rcgen::Issuer::new(ca, &ca_key)).unwrap().pem();
        let chain = crate::x509::parse_object(format!("{leaf_pem}{ca_pem}").as_bytes(), &[]);
        let bundle = crate::x509::parse_object(ca_pem.as_bytes(), &[]);
        assert_eq!((chain.certs.len(), bundle.certs.len()), (2, 1));
        let mut w = store.begin_scan(100, &["k8s".to_string()]).unwrap();
        w.register_source("k8s", "kubernetes", &[]).unwrap();
        let meta = serde_json::json!({"owner": "web"});
        for (loc, parsed) in [("k8s://c/web/secrets/site#tls.crt", &chain), ("k8s://c/web/configmaps/trust#ca.crt", &bundle)] {
            w.record("k8s", loc, None, ObjectOutcome::Parsed { stamp: "1", content_sha256: "00", parsed }).unwrap();
            w.object_extras("k8s", loc, Some(&meta), None).unwrap();
        }
        w.finish().unwrap();
        let mut got = Vec::new();
        store.each_owner_sample(OwnerScope::Owned, |s| got.push((s.location.to_string(), s.ca, s.beside_end_entity))).unwrap();
        got.sort();
        assert_eq!(
            got,
            [
                ("k8s://c/web/configmaps/trust#ca.crt".to_string(), true, false),
                ("k8s://c/web/secrets/site#tls.crt".to_string(), false, true),
                ("k8s://c/web/secrets/site#tls.crt".to_string(), true, true),
            ]
        );
    }

    /// The meta is read as SQLite's JSON functions read it: an owner of any JSON type but null
    /// names one (only text is told), malformed meta says nothing, and a contact or origin
    /// without an owner is still told. Checked against the statement this replaced.
    #[test]
    fn meta_reads_as_the_json_functions_did() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, "a.example");
        let a = crate::x509::parse_object(p.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().der(), &[]);
        let metas = [
            r#"{"owner":5}"#,
            r#"{"owner":null,"owner_contact":"c@x"}"#,
            r#"{"owner_contact":" c ","owner_from":"tag"}"#,
            r#"{"owner":{"team":"x"},"owner_from":7}"#,
            r#"{"owner":"  "}"#,
            r#"{"owner":"web""#,
            r#"{"OWNER":"web"}"#,
            r#"{"owner":"pay","a":[1,{"owner":"inner"}]}"#,
            r#"[{"owner":"web"}]"#,
        ];
        let mut w = store.begin_scan(100, &["kv".to_string()]).unwrap();
        for i in 0..metas.len() {
            let loc = format!("vault:kv/{i}");
            w.record("kv", &loc, None, ObjectOutcome::Parsed { stamp: "1", content_sha256: "00", parsed: &a }).unwrap();
            w.object_extras("kv", &loc, Some(&serde_json::json!({})), None).unwrap();
        }
        w.finish().unwrap();
        let conn = store.conn().unwrap();
        for (i, m) in metas.iter().enumerate() {
            conn.execute("UPDATE objects SET meta = ?1 WHERE location = ?2", rusqlite::params![m, format!("vault:kv/{i}")]).unwrap();
        }
        type Row = (String, Option<String>, Option<String>, Option<String>, bool);
        let expected = |owned: bool| -> Vec<Row> {
            let sql = "SELECT s.location,
                    CASE WHEN json_valid(o.meta) THEN json_extract(o.meta, '$.owner') END,
                    CASE WHEN json_valid(o.meta) THEN json_extract(o.meta, '$.owner_contact') END,
                    CASE WHEN json_valid(o.meta) THEN json_extract(o.meta, '$.owner_from') END,
                    CASE WHEN json_valid(o.meta) AND json_extract(o.meta, '$.owner') IS NOT NULL THEN EXISTS (
                        SELECT 1 FROM sightings s2 JOIN certificates c2 ON c2.id = s2.cert_id
                        WHERE s2.source = s.source AND s2.location = s.location AND s2.gone_since IS NULL AND NOT c2.is_ca) ELSE 0 END
                 FROM sightings s JOIN objects o ON o.source = s.source AND o.location = s.location
                 WHERE s.gone_since IS NULL AND (?1 = 0 OR (json_valid(o.meta) AND json_extract(o.meta, '$.owner') IS NOT NULL))
                 ORDER BY s.location";
            let text = |r: &rusqlite::Row<'_>, i| r.get_ref(i).unwrap().as_str_or_null().ok().flatten().map(str::to_string);
            let trim = |t: Option<String>| t.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
            conn.prepare(sql)
                .unwrap()
                .query_map(rusqlite::params![owned], |r| Ok((r.get(0)?, trim(text(r, 1)), trim(text(r, 2)), text(r, 3), r.get(4)?)))
                .unwrap()
                .collect::<std::result::Result<_, _>>()
                .unwrap()
        };
        for (scope, owned) in [(OwnerScope::Every, false), (OwnerScope::Owned, true)] {
            let mut got: Vec<Row> = Vec::new();
            let text = |s: Option<&str>| s.map(String::from);
            store
                .each_owner_sample(scope, |s| {
                    got.push((s.location.into(), text(s.owner), text(s.contact), text(s.from), s.beside_end_entity))
                })
                .unwrap();
            got.sort();
            assert_eq!(got, expected(owned), "{scope:?}");
        }
        assert_eq!(expected(true).len(), 4);
    }
}
