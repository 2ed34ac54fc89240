//! Store queries for certificate owners: the owner each source recorded in an object's meta
//! (`owner`, `owner_contact`, `owner_from`), with the current sightings of the certificates in
//! those objects, in one pass (`app::owners` decides which one wins).

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
/// Whether the object holds an end-entity certificate is asked only of objects naming an owner.
const OWNER_COLUMNS: &str = "s.cert_id, s.source, COALESCE(src.kind, ''), s.location,
    CASE WHEN json_valid(o.meta) THEN json_extract(o.meta, '$.owner') END,
    CASE WHEN json_valid(o.meta) THEN json_extract(o.meta, '$.owner_contact') END,
    CASE WHEN json_valid(o.meta) THEN json_extract(o.meta, '$.owner_from') END,
    c.is_ca,
    CASE WHEN json_valid(o.meta) AND json_extract(o.meta, '$.owner') IS NOT NULL THEN EXISTS (
        SELECT 1 FROM sightings s2 JOIN certificates c2 ON c2.id = s2.cert_id
        WHERE s2.source = s.source AND s2.location = s.location AND s2.gone_since IS NULL AND NOT c2.is_ca) ELSE 0 END";

/// The query of [`OwnerScope::Owned`]. CROSS JOIN keeps this order: the objects first (most
/// name no owner and stop at the cheap `instr`), then the sightings of those that do, by index.
fn owned_sql() -> String {
    format!(
        "SELECT {OWNER_COLUMNS} FROM objects o
         CROSS JOIN sightings s ON s.source = o.source AND s.location = o.location AND s.gone_since IS NULL
         JOIN certificates c ON c.id = s.cert_id
         LEFT JOIN sources src ON src.name = s.source
         WHERE o.meta IS NOT NULL AND instr(o.meta, '\"owner\"') > 0 AND json_valid(o.meta) AND json_extract(o.meta, '$.owner') IS NOT NULL"
    )
}

impl Store {
    /// Streams the current sightings of `scope` with their objects' owners, in one query (one
    /// per 500 certificates for [`OwnerScope::Certificates`]). With `Owned`, the pass reads the
    /// objects that carry meta and joins only those naming an owner to their sightings.
    pub fn each_owner_sample(&self, scope: OwnerScope<'_>, mut f: impl FnMut(&OwnerSample<'_>)) -> Result<()> {
        let mut run = |sql: &str, params: &[&dyn rusqlite::ToSql]| -> Result<()> {
            let mut stmt = self.conn.prepare(sql)?;
            let mut rows = stmt.query(params)?;
            while let Some(r) = rows.next()? {
                let text = |i: usize| -> Result<Option<&str>> { Ok(r.get_ref(i)?.as_str_or_null().ok().flatten()) };
                f(&OwnerSample {
                    cert_id: r.get(0)?,
                    source: r.get_ref(1)?.as_str()?,
                    kind: r.get_ref(2)?.as_str()?,
                    location: r.get_ref(3)?.as_str()?,
                    owner: text(4)?.map(str::trim).filter(|o| !o.is_empty()),
                    contact: text(5)?.map(str::trim).filter(|c| !c.is_empty()),
                    from: text(6)?,
                    ca: r.get(7)?,
                    beside_end_entity: r.get(8)?,
                });
            }
            Ok(())
        };
        match scope {
            OwnerScope::Owned => run(&owned_sql(), &[]),
            OwnerScope::Every => run(
                &format!(
                    "SELECT {OWNER_COLUMNS} FROM sightings s
                     JOIN certificates c ON c.id = s.cert_id
                     LEFT JOIN objects o ON o.source = s.source AND o.location = s.location
                     LEFT JOIN sources src ON src.name = s.source
                     WHERE s.gone_since IS NULL"
                ),
                &[],
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
                    let params: Vec<&dyn rusqlite::ToSql> = chunk.iter().map(|i| i as &dyn rusqlite::ToSql).collect();
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
}
