//! Who owns each certificate: the owner its sources recorded (a Kubernetes annotation or label,
//! Vault KV custom metadata, an AWS tag — in that order of precedence), else the first
//! `owners.rules` entry that matches it, else nobody.
//!
//! Sources write `owner`, `owner_contact` and `owner_from` into an object's meta when they read
//! it; nothing is computed per certificate at scan time. [`Owners::load`] reads what they wrote
//! in one pass over the store (every current sighting only when a rule matches locations) and
//! answers [`Owners::owner_of`] from memory. Among several objects of the same kind naming an
//! owner, the first by source name then location wins, so the answer does not depend on the
//! order rows come in. The contact is the one `owners.teams` gives the owner, else the one
//! recorded beside the owner on the object. An object's owner owns the end-entity certificates
//! in it; the CA certificates of a chain served beside them get it only from objects that hold
//! CA certificates alone (trust bundles), so an issuing CA is not owned by whoever deploys
//! one of its leaves.

use crate::config::owners::{NO_OWNER, OwnersSpec};
use crate::model::finding::Finding;
use crate::model::rows::CertRow;
use crate::store::{OwnerSample, OwnerScope, Store, StoreError};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;

/// A certificate's owner: a team or a person, how to reach them, and where that was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub name: String,
    pub contact: Option<String>,
    pub origin: OwnerOrigin,
}

/// Where an owner was found. Serialised with `kind` (`kubernetes`, `vault`, `aws`, `config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OwnerOrigin {
    /// `certvigil.io/owner` on the Kubernetes object; `via` is `annotation` or `label`.
    Kubernetes { source: String, location: String, via: String },
    /// `owner` (or `certvigil.io/owner`) in the custom metadata of a Vault KV secret.
    Vault { source: String, location: String },
    /// `certvigil.io/owner` (or `owner`) tag of an ACM certificate or a Secrets Manager secret.
    Aws { source: String, location: String },
    /// An `owners.rules` entry: its number, counting from 1.
    Config { rule: usize },
}

impl OwnerOrigin {
    /// The kind of origin, as the API and the JSON outputs name it.
    pub fn kind(&self) -> &'static str {
        match self {
            OwnerOrigin::Kubernetes { .. } => "kubernetes",
            OwnerOrigin::Vault { .. } => "vault",
            OwnerOrigin::Aws { .. } => "aws",
            OwnerOrigin::Config { .. } => "config",
        }
    }
}

impl fmt::Display for OwnerOrigin {
    /// `kubernetes annotation on k8s:k8s://prod/web/secrets/site#tls.crt`, `owners rule 2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OwnerOrigin::Kubernetes { source, location, via } => write!(f, "kubernetes {via} on {source}:{location}"),
            OwnerOrigin::Vault { source, location } => write!(f, "vault custom metadata on {source}:{location}"),
            OwnerOrigin::Aws { source, location } => write!(f, "aws tag on {source}:{location}"),
            OwnerOrigin::Config { rule } => write!(f, "owners rule {rule}"),
        }
    }
}

impl fmt::Display for Owner {
    /// `payments <payments-oncall@corp.example> (from owners rule 2)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(c) = &self.contact {
            write!(f, " <{c}>")?;
        }
        write!(f, " (from {})", self.origin)
    }
}

/// The precedence of a source kind's owners: lower wins; `None` for kinds that record none.
fn rank(kind: &str) -> Option<u8> {
    match kind {
        "kubernetes" => Some(0),
        "vault" => Some(1),
        "aws" => Some(2),
        _ => None,
    }
}

/// The owners of the inventory (or of some certificates), loaded in one pass.
#[derive(Debug)]
pub struct Owners<'a> {
    spec: &'a OwnersSpec,
    /// Each source's tags, for rules that match tags.
    tags: HashMap<String, Vec<String>>,
    /// The winning owner recorded by a source, by certificate id, with its rank.
    found: HashMap<i64, (u8, Owner)>,
    /// Certificates with a current location some path rule matches: those rules' indexes.
    path_hits: HashMap<i64, Vec<usize>>,
    /// The owner each rule gives.
    rule_owners: Vec<Owner>,
}

impl<'a> Owners<'a> {
    /// The owners of every current certificate: one pass over the objects that name an owner
    /// (over every current sighting when a rule matches locations).
    pub fn load(store: &Store, spec: &'a OwnersSpec) -> Result<Owners<'a>, StoreError> {
        let scope = if spec.matches_paths() { OwnerScope::Every } else { OwnerScope::Owned };
        Self::load_scope(store, spec, scope)
    }

    /// The owners of these certificates only (`show`, one certificate of the API); asked about
    /// another certificate, the answer is that of a certificate no source gives an owner.
    pub fn load_for(store: &Store, spec: &'a OwnersSpec, cert_ids: &[i64]) -> Result<Owners<'a>, StoreError> {
        Self::load_scope(store, spec, OwnerScope::Certificates(cert_ids))
    }

    fn load_scope(store: &Store, spec: &'a OwnersSpec, scope: OwnerScope<'_>) -> Result<Owners<'a>, StoreError> {
        let mut owners = Owners::new(spec, store.source_tags()?);
        store.each_owner_sample(scope, |s| owners.add(s))?;
        Ok(owners)
    }

    /// Owners with nothing recorded yet (add samples with [`Owners::add`]).
    pub fn new(spec: &'a OwnersSpec, tags: HashMap<String, Vec<String>>) -> Owners<'a> {
        let rule_owners = spec
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| Owner {
                name: r.owner.clone(),
                contact: spec.contact(&r.owner).map(str::to_string),
                origin: OwnerOrigin::Config { rule: i + 1 },
            })
            .collect();
        Owners { spec, tags, found: HashMap::new(), path_hits: HashMap::new(), rule_owners }
    }

    /// Counts one current sighting in. Pure.
    pub fn add(&mut self, s: &OwnerSample<'_>) {
        for (i, r) in self.spec.rules.iter().enumerate() {
            if r.matcher.matches_location(s.location) {
                let hits = self.path_hits.entry(s.cert_id).or_default();
                if !hits.contains(&i) {
                    hits.push(i);
                }
            }
        }
        let (Some(name), Some(rank)) = (s.owner, rank(s.kind)) else { return };
        // An object's owner owns its end-entity certificates; the CA certificates of a chain
        // served beside one belong to their CA, not to the owner of every object that carries
        // them. A bundle of CA certificates only (a trust store) gives them its owner.
        if s.ca && s.beside_end_entity {
            return;
        }
        if let Some((r, cur)) = self.found.get(&s.cert_id) {
            let (cur_source, cur_location) = match &cur.origin {
                OwnerOrigin::Kubernetes { source, location, .. }
                | OwnerOrigin::Vault { source, location }
                | OwnerOrigin::Aws { source, location } => (source.as_str(), location.as_str()),
                OwnerOrigin::Config { .. } => ("", ""),
            };
            if (*r, cur_source, cur_location) <= (rank, s.source, s.location) {
                return;
            }
        }
        let (source, location) = (s.source.to_string(), s.location.to_string());
        let origin = match rank {
            0 => OwnerOrigin::Kubernetes { source, location, via: s.from.unwrap_or("annotation").to_string() },
            1 => OwnerOrigin::Vault { source, location },
            _ => OwnerOrigin::Aws { source, location },
        };
        let contact = self.spec.contact(name).or(s.contact).map(str::to_string);
        self.found.insert(s.cert_id, (rank, Owner { name: name.to_string(), contact, origin }));
    }

    /// The certificate's owner: from its sources, else from the first rule that matches it.
    pub fn owner_of(&self, c: &CertRow) -> Option<&Owner> {
        let f = &c.facts;
        let names = f.sans.iter().filter_map(|s| s.strip_prefix("DNS:")).chain(f.common_name.as_deref());
        self.owner_of_parts(c.id, &c.sources, names)
    }

    /// The same for a certificate given by its parts, for callers holding borrowed rows rather
    /// than a [`CertRow`]: its id, the sources that see it, its DNS names (subject alternative
    /// names without `DNS:`, and the CN). Nothing is allocated when a source named the owner.
    pub fn owner_of_parts<'n>(&self, id: i64, sources: &[String], names: impl IntoIterator<Item = &'n str> + Clone) -> Option<&Owner> {
        if let Some((_, o)) = self.found.get(&id) {
            return Some(o);
        }
        if self.spec.rules.is_empty() {
            return None;
        }
        let mut tags: Vec<String> = sources.iter().flat_map(|s| self.tags.get(s).cloned().unwrap_or_default()).collect();
        tags.sort();
        tags.dedup();
        let hits = self.path_hits.get(&id).map(Vec::as_slice).unwrap_or_default();
        self.spec
            .rules
            .iter()
            .enumerate()
            .position(|(i, r)| r.matcher.matches(sources, &tags, hits.contains(&i), names.clone()))
            .map(|i| &self.rule_owners[i])
    }

    /// Whether a certificate's owner is one of `wanted` (`none` standing for no owner).
    pub fn owner_matches(&self, c: &CertRow, wanted: &[String]) -> bool {
        match self.owner_of(c) {
            Some(o) => wanted.contains(&o.name),
            None => wanted.iter().any(|w| w == NO_OWNER),
        }
    }

    /// Puts the owner of each certificate finding's certificate (one of `certs`) on it.
    pub fn attribute(&self, findings: &mut [Finding], certs: &[CertRow]) {
        let by_id: HashMap<i64, &CertRow> = certs.iter().map(|c| (c.id, c)).collect();
        for f in findings.iter_mut() {
            let Some(c) = f.cert_id.and_then(|id| by_id.get(&id)) else { continue };
            if let Some(o) = self.owner_of(c) {
                f.owner = Some(o.name.clone());
                f.owner_contact = o.contact.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::unix_from_civil;

    fn settings(yaml: &str) -> crate::config::Settings {
        crate::config::parse_str(yaml, "t.yaml", std::path::Path::new("/cfg")).unwrap()
    }

    fn cert(id: i64, sources: &[&str], sans: &[&str]) -> CertRow {
        let der = {
            let mut p = rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
            p.distinguished_name.push(rcgen::DnType::CommonName, "cn.example");
            p.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().der().to_vec()
        };
        let facts = crate::x509::parse_object(&der, &[]).certs.remove(0).facts;
        CertRow {
            id,
            facts,
            first_seen: unix_from_civil(2026, 1, 1, 0, 0, 0).unwrap(),
            gone_since: None,
            current_sightings: sources.len() as i64,
            sources: sources.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn sample<'a>(cert_id: i64, source: &'a str, kind: &'a str, location: &'a str, owner: Option<&'a str>) -> OwnerSample<'a> {
        OwnerSample { cert_id, source, kind, location, owner, contact: None, from: None, ca: false, beside_end_entity: false }
    }

    const CONFIG: &str = concat!(
        "sources:\n",
        "  - {name: disk, kind: files, paths: [x], tags: [prod]}\n",
        "owners:\n",
        "  teams:\n    - {name: payments, contact: payments-oncall@corp.example}\n    - {name: rule-team, contact: rules@corp.example}\n",
        "  rules:\n",
        "    - {owner: path-team, match: {path: ['/etc/ssl/payments/**']}}\n",
        "    - {owner: rule-team, match: {san: ['*.pay.corp.example']}}\n",
        "    - {owner: tagged, match: {tag: [prod], source: [disk]}}\n",
    );

    /// One certificate seen by Kubernetes, Vault and AWS and matching a rule: each origin wins
    /// over those below it, and removing it lets the next one win.
    #[test]
    fn precedence_kubernetes_vault_aws_then_rules() {
        let s = settings(CONFIG);
        let c = cert(7, &["k8s", "kv", "cloud"], &["api.pay.corp.example"]);
        let samples = [
            OwnerSample {
                from: Some("label"),
                contact: Some("k8s@corp.example"),
                ..sample(7, "k8s", "kubernetes", "k8s://c/ns/secrets/s#tls.crt", Some("platform"))
            },
            OwnerSample { contact: Some("from-vault@corp.example"), ..sample(7, "kv", "vault", "vault:secret/pay", Some("payments")) },
            sample(7, "cloud", "aws", "aws:acm:us-east-1:arn:x", Some("cloud-team")),
        ];
        let owner_with = |kinds: &[&str]| -> Option<Owner> {
            let mut o = Owners::new(&s.owners, HashMap::new());
            // The order rows come in does not matter.
            for smp in samples.iter().rev().filter(|x| kinds.contains(&x.kind)) {
                o.add(smp);
            }
            o.owner_of(&c).cloned()
        };
        let all = owner_with(&["kubernetes", "vault", "aws"]).unwrap();
        assert_eq!(all.name, "platform");
        assert_eq!(all.contact.as_deref(), Some("k8s@corp.example"));
        assert_eq!(all.to_string(), "platform <k8s@corp.example> (from kubernetes label on k8s:k8s://c/ns/secrets/s#tls.crt)");
        let vault = owner_with(&["vault", "aws"]).unwrap();
        // The team's configured contact wins over the one in the metadata.
        assert_eq!((vault.name.as_str(), vault.contact.as_deref()), ("payments", Some("payments-oncall@corp.example")));
        assert_eq!(vault.origin, OwnerOrigin::Vault { source: "kv".into(), location: "vault:secret/pay".into() });
        let aws = owner_with(&["aws"]).unwrap();
        assert_eq!((aws.name.as_str(), aws.contact, aws.origin.kind()), ("cloud-team", None, "aws"));
        let rule = owner_with(&[]).unwrap();
        assert_eq!(rule.to_string(), "rule-team <rules@corp.example> (from owners rule 2)");
        // No rule matches either: no owner.
        assert_eq!(Owners::new(&s.owners, HashMap::new()).owner_of(&cert(8, &["other"], &["www.example.net"])), None);
    }

    /// The same precedence through the store: one certificate in objects of a Kubernetes, a
    /// Vault, an AWS and a files source, each object naming another owner; as the objects
    /// vanish one by one, the next origin wins, and the rule last.
    #[test]
    fn precedence_through_the_store_as_objects_vanish() {
        use crate::store::ObjectOutcome;
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let s = settings(CONFIG);
        let der = {
            let mut p = rcgen::CertificateParams::new(vec!["api.pay.corp.example".to_string()]).unwrap();
            p.distinguished_name.push(rcgen::DnType::CommonName, "api.pay.corp.example");
            p.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().der().to_vec()
        };
        let parsed = crate::x509::parse_object(&der, &[]);
        let objects = [
            (
                "k8s",
                "kubernetes",
                "k8s://c/pay/secrets/api#tls.crt",
                Some(serde_json::json!({"owner": "platform", "owner_from": "annotation"})),
            ),
            ("kv", "vault", "vault:secret/pay/api", Some(serde_json::json!({"owner": "payments", "owner_from": "custom_metadata"}))),
            (
                "cloud",
                "aws",
                "aws:acm:us-east-1:arn:aws:acm:us-east-1:1:certificate/x",
                Some(serde_json::json!({"owner": "cloud-team", "owner_contact": "cloud@corp.example"})),
            ),
            ("disk", "files", "/srv/api.pem", None),
        ];
        let names: Vec<String> = objects.iter().map(|o| o.0.to_string()).collect();
        let mut w = store.begin_scan(100, &names).unwrap();
        for (source, kind, location, meta) in &objects {
            w.register_source(source, kind, &[]).unwrap();
            w.record(source, location, None, ObjectOutcome::Parsed { stamp: "1", content_sha256: "00", parsed: &parsed }).unwrap();
            w.object_extras(source, location, meta.as_ref(), None).unwrap();
        }
        w.finish().unwrap();
        let owner = |store: &Store| {
            let c = store.certificates(false).unwrap().remove(0);
            let o = Owners::load(store, &s.owners).unwrap().owner_of(&c).cloned().expect("an owner");
            (o.name, o.contact, o.origin.to_string())
        };
        assert_eq!(owner(&store), ("platform".into(), None, "kubernetes annotation on k8s:k8s://c/pay/secrets/api#tls.crt".into()));
        let gone = |store: &mut Store, at: crate::model::UnixTime, source: &str, location: &str| {
            let mut w = store.begin_scan(at, &names).unwrap();
            w.vanished(source, location).unwrap();
            w.finish().unwrap();
        };
        gone(&mut store, 200, objects[0].0, objects[0].2);
        assert_eq!(
            owner(&store),
            ("payments".into(), Some("payments-oncall@corp.example".into()), "vault custom metadata on kv:vault:secret/pay/api".into())
        );
        gone(&mut store, 300, objects[1].0, objects[1].2);
        assert_eq!(owner(&store), ("cloud-team".into(), Some("cloud@corp.example".into()), format!("aws tag on cloud:{}", objects[2].2)));
        gone(&mut store, 400, objects[2].0, objects[2].2);
        assert_eq!(owner(&store), ("rule-team".into(), Some("rules@corp.example".into()), "owners rule 2".into()));
        // The inventory view answers the same, and filters by owner.
        let view = super::super::queries::InventoryView::load(&store, &s, 500).unwrap();
        let c = store.certificates(false).unwrap().remove(0);
        assert_eq!(view.owner_of(&c).map(|o| o.name.as_str()), Some("rule-team"));
        let lean = super::super::queries::InventoryView::for_filter(&store, &s, 500, &Default::default()).unwrap();
        assert!(lean.owners.is_none() && lean.owner_of(&c).is_none(), "a lean view loads no owners");
        assert_eq!(lean.with_owners(&store).unwrap().owner_of(&c).map(|o| o.name.as_str()), Some("rule-team"));
    }

    #[test]
    fn ties_go_to_the_first_source_then_location() {
        let s = settings(CONFIG);
        let c = cert(1, &["b", "a"], &[]);
        let samples = [
            sample(1, "b", "kubernetes", "k8s://c/a", Some("from-b")),
            sample(1, "a", "kubernetes", "k8s://c/z", Some("from-a-z")),
            sample(1, "a", "kubernetes", "k8s://c/m", Some("from-a-m")),
            // Sources that record no owners are not counted, whatever their meta says.
            sample(1, "0", "files", "/a", Some("files")),
            // Nor is an object where the certificate is a CA beside an end-entity certificate.
            OwnerSample { ca: true, beside_end_entity: true, ..sample(1, "a", "kubernetes", "k8s://c/a-chain", Some("chain")) },
        ];
        for order in [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [1, 4, 3, 0, 2]] {
            let mut o = Owners::new(&s.owners, HashMap::new());
            for i in order {
                o.add(&samples[i]);
            }
            assert_eq!(o.owner_of(&c).map(|o| o.name.as_str()), Some("from-a-m"), "{order:?}");
        }
    }

    #[test]
    fn rules_by_path_name_and_tag_first_match_wins() {
        let s = settings(CONFIG);
        let tags = HashMap::from([("disk".to_string(), vec!["prod".to_string()])]);
        let mut o = Owners::new(&s.owners, tags);
        o.add(&sample(1, "disk", "files", "/etc/ssl/payments/web/a.pem", None));
        o.add(&sample(2, "disk", "files", "/etc/ssl/other/a.pem", None));
        let name = |c: &CertRow| o.owner_of(c).map(|o| o.name.clone());
        // Path beats name and tag (rule 1 comes first).
        assert_eq!(name(&cert(1, &["disk"], &["a.pay.corp.example"])).as_deref(), Some("path-team"));
        assert_eq!(name(&cert(2, &["disk"], &["a.pay.corp.example"])).as_deref(), Some("rule-team"));
        assert_eq!(name(&cert(2, &["disk"], &["www.example.net"])).as_deref(), Some("tagged"));
        assert_eq!(name(&cert(3, &["elsewhere"], &["www.example.net"])), None);
        // By parts, as a caller holding borrowed rows asks.
        assert_eq!(o.owner_of_parts(1, &["disk".into()], ["x.example"]).map(|o| o.name.as_str()), Some("path-team"));
        assert_eq!(o.owner_of_parts(2, &["disk".into()], ["API.pay.corp.example"]).map(|o| o.name.as_str()), Some("rule-team"));
        assert_eq!(o.owner_of_parts(3, &["other".into()], ["www.example.net"]), None);
        // The subject CN counts as a DNS name.
        let s2 = settings("owners: {rules: [{owner: cn, match: {san: [CN.example]}}]}");
        assert_eq!(Owners::new(&s2.owners, HashMap::new()).owner_of(&cert(4, &[], &[])).map(|o| o.name.as_str()), Some("cn"));
        // Filters: `none` stands for no owner.
        assert!(o.owner_matches(&cert(3, &["elsewhere"], &[]), &["none".into()]));
        assert!(!o.owner_matches(&cert(2, &["disk"], &[]), &["none".into()]));
        assert!(o.owner_matches(&cert(2, &["disk"], &[]), &["x".into(), "tagged".into()]));
    }
}
