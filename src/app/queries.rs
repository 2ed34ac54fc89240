//! The questions people ask of the inventory and the alerts, answered once for every face:
//! `list`, `show`, `ack` and `silence` on the command line and the daemon's API ask them here
//! and only format the answer.
//!
//! - [`InventoryView`]: what a certificate's row does not say by itself — its expiry status
//!   under the policy rule that applies to it, its tags (from its sources), its revocation
//!   state, its owner;
//! - [`CertFilter`]: the filters of `list` and `GET /api/v1/certificates`;
//! - [`find_certificate`]: what the tool displays for a certificate (fingerprint prefix, serial,
//!   display name, subject DN) to one certificate;
//! - [`ack_target`] and [`silence_for`]: what an operator's words name (an alert id, a subject,
//!   a certificate, or a match).

use super::owners::{Owner, Owners};
use crate::config::Settings;
use crate::config::owners::OwnersSpec;
use crate::config::policy::PolicySpec;
use crate::model::alert::Silence;
use crate::model::finding::{Kind, SubjectKind, cert_subject};
use crate::model::rows::CertRow;
use crate::model::{ExpiryStatus, RevocationState, UnixTime};
use crate::store::{Store, StoreError};
use std::collections::HashMap;

/// What the inventory's rows need beside themselves to be judged and shown.
///
/// [`InventoryView::load`] loads everything; [`InventoryView::for_filter`] only what a filter
/// decides on. Owners are loaded by `load`, by `for_filter` when the filter is by owner, and
/// otherwise on demand with [`InventoryView::with_owners`] (a view that shows owners needs
/// them): until then [`InventoryView::owner_of`] answers `None` for every certificate.
pub struct InventoryView<'a> {
    pub policy: &'a PolicySpec,
    pub now: UnixTime,
    /// Each source's tags.
    pub tags: HashMap<String, Vec<String>>,
    /// Each certificate's revocation state (a few bytes each, for the whole inventory).
    pub revocation: HashMap<i64, RevocationState>,
    /// Each certificate's owner, once loaded.
    pub owners: Option<Owners<'a>>,
    owners_spec: &'a OwnersSpec,
}

impl<'a> InventoryView<'a> {
    /// Everything: tags, revocation states and owners.
    pub fn load(store: &Store, settings: &'a Settings, now: UnixTime) -> Result<InventoryView<'a>, StoreError> {
        Ok(InventoryView {
            policy: &settings.policy,
            now,
            tags: store.source_tags()?,
            revocation: store.revocation_states()?,
            owners: Some(Owners::load(store, &settings.owners)?),
            owners_spec: &settings.owners,
        })
    }

    /// The sources' tags only (pages that read revocation states for their own rows).
    pub fn with_tags(store: &Store, settings: &'a Settings, now: UnixTime) -> Result<InventoryView<'a>, StoreError> {
        Ok(InventoryView {
            policy: &settings.policy,
            now,
            tags: store.source_tags()?,
            revocation: HashMap::new(),
            owners: None,
            owners_spec: &settings.owners,
        })
    }

    /// Only what `filter` needs to decide (the API shows rows, not their status): tags when it
    /// filters by tag or status, revocation states when it filters by them, owners when it
    /// filters by owner.
    pub fn for_filter(store: &Store, settings: &'a Settings, now: UnixTime, filter: &CertFilter) -> Result<InventoryView<'a>, StoreError> {
        let tags = if filter.tags.is_empty() && filter.statuses.is_empty() { HashMap::new() } else { store.source_tags()? };
        let revocation = if filter.revocation.is_empty() { HashMap::new() } else { store.revocation_states()? };
        let owners = if filter.owners.is_empty() { None } else { Some(Owners::load(store, &settings.owners)?) };
        Ok(InventoryView { policy: &settings.policy, now, tags, revocation, owners, owners_spec: &settings.owners })
    }

    /// The same view with every certificate's owner loaded (one pass over the store), for
    /// callers that show owners. Nothing is read again when they are loaded already.
    pub fn with_owners(mut self, store: &Store) -> Result<InventoryView<'a>, StoreError> {
        if self.owners.is_none() {
            self.owners = Some(Owners::load(store, self.owners_spec)?);
        }
        Ok(self)
    }

    /// A certificate's expiry status under the policy that applies to it (thresholds in days or
    /// as a fraction of its lifetime, per source, tag and EKU).
    pub fn status(&self, c: &CertRow) -> ExpiryStatus {
        expiry_status(c, self.policy, &self.tags, self.now)
    }

    /// Its tags: those of every source that sees it, sorted, once each.
    pub fn tags_of(&self, c: &CertRow) -> Vec<String> {
        let mut t: Vec<String> = c.sources.iter().flat_map(|s| self.tags.get(s).cloned().unwrap_or_default()).collect();
        t.sort();
        t.dedup();
        t
    }

    /// Its revocation state, once it has been checked.
    pub fn revocation(&self, c: &CertRow) -> Option<RevocationState> {
        self.revocation.get(&c.id).copied()
    }

    /// Its owner (from its sources, else `owners.rules`), when owners are loaded.
    pub fn owner_of(&self, c: &CertRow) -> Option<&Owner> {
        self.owners.as_ref().and_then(|o| o.owner_of(c))
    }
}

/// A certificate's expiry status under the policy rule that applies to it.
pub fn expiry_status(c: &CertRow, policy: &PolicySpec, tags: &HashMap<String, Vec<String>>, now: UnixTime) -> ExpiryStatus {
    let f = &c.facts;
    let mut t: Vec<String> = c.sources.iter().flat_map(|s| tags.get(s).cloned().unwrap_or_default()).collect();
    t.dedup();
    let window = policy.warning_window(&c.sources, &t, &f.ext_key_usage, f.not_before, f.not_after);
    ExpiryStatus::at(f.not_before, f.not_after, now, window)
}

/// Which certificates to show; an empty list matches anything.
#[derive(Debug, Clone, Default)]
pub struct CertFilter {
    /// Seconds: notAfter no later than now plus this.
    pub expiring_within: Option<i64>,
    /// Seen by one of these sources.
    pub sources: Vec<String>,
    /// Seen by a source carrying one of these tags.
    pub tags: Vec<String>,
    /// Carrying one of these extended key usages, as operators write them (`codesigning`, an
    /// OID…).
    pub ekus: Vec<String>,
    pub statuses: Vec<ExpiryStatus>,
    pub revocation: Vec<RevocationState>,
    /// Owned by one of these (`none`: by nobody). Needs the view's owners loaded.
    pub owners: Vec<String>,
}

impl CertFilter {
    pub fn matches(&self, c: &CertRow, view: &InventoryView<'_>) -> bool {
        let f = &c.facts;
        if self.expiring_within.is_some_and(|w| f.not_after - view.now > w) {
            return false;
        }
        if !self.sources.is_empty() && !c.sources.iter().any(|s| self.sources.contains(s)) {
            return false;
        }
        if !self.tags.is_empty() && !c.sources.iter().any(|s| view.tags.get(s).is_some_and(|t| t.iter().any(|t| self.tags.contains(t)))) {
            return false;
        }
        if !self.ekus.is_empty() {
            let wanted: Vec<String> = self.ekus.iter().map(|e| crate::model::eku::normalise_eku(e)).collect();
            if !f.ext_key_usage.iter().any(|e| wanted.contains(e)) {
                return false;
            }
        }
        if !self.statuses.is_empty() && !self.statuses.contains(&view.status(c)) {
            return false;
        }
        if !self.owners.is_empty() && !view.owners.as_ref().is_some_and(|o| o.owner_matches(c, &self.owners)) {
            return false;
        }
        self.revocation.is_empty() || view.revocation(c).is_some_and(|s| self.revocation.contains(&s))
    }
}

/// What a certificate query found.
#[derive(Debug)]
pub enum Lookup {
    None,
    One(Box<CertRow>),
    /// Several: the query needs more of the fingerprint. Soonest to expire first.
    Many(Vec<CertRow>),
}

/// How a certificate is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// Anything the tool displays for a certificate, as `show`, `ack` and `silence` take it: a
    /// fingerprint prefix (4+ hex digits, colons allowed), a serial (any case, with or without
    /// colons, spaces or `0x`), the display name `list` and `alerts` print (the CN, else the
    /// first SAN) or the subject DN `show` prints (case and spaces after commas ignored).
    Displayed,
    /// A fingerprint prefix only, as the API takes it.
    Fingerprint,
}

/// The certificate a query names.
pub fn find_certificate(store: &Store, query: &str, naming: Naming) -> Result<Lookup, StoreError> {
    let mut found = match naming {
        Naming::Fingerprint => {
            let prefix = query.to_ascii_lowercase();
            let mut found = store.find(query)?;
            found.retain(|c| c.facts.fingerprint.0.starts_with(&prefix));
            found
        }
        Naming::Displayed => candidates(store, query)?,
    };
    Ok(match found.len() {
        0 => Lookup::None,
        1 => Lookup::One(Box::new(found.remove(0))),
        _ => Lookup::Many(found),
    })
}

/// Every certificate `query` names in one of the [`Naming::Displayed`] forms, soonest to
/// expire first. Fewer than 4 hex digits are not taken as a fingerprint prefix or serial (they
/// would name too much), but may still be a name.
pub fn candidates(store: &Store, query: &str) -> Result<Vec<CertRow>, StoreError> {
    let mut found = Vec::new();
    if let Some(hex) = crate::model::display::serial_query(query)
        && hex.len() >= 4
    {
        found = store.find(&hex)?;
    }
    for c in store.find_named(query)? {
        if !found.iter().any(|f| f.facts.fingerprint == c.facts.fingerprint) {
            found.push(c);
        }
    }
    found.sort_by_key(|c| c.facts.not_after);
    Ok(found)
}

/// One line per candidate of an ambiguous name, for the operator to pick from: the
/// fingerprint (to copy), the display name, serial, notAfter and whether it is gone. At most 10, then how many more.
fn candidate_lines(found: &[CertRow]) -> Vec<String> {
    let mut lines: Vec<String> = found
        .iter()
        .take(10)
        .map(|c| {
            format!(
                "{}  {}  serial {}  not after {}{}",
                c.facts.fingerprint.0,
                c.facts.display_name(),
                crate::model::display::serial(&c.facts.serial),
                crate::model::format_time(c.facts.not_after),
                if c.gone_since.is_some() { "  (gone)" } else { "" }
            )
        })
        .collect();
    if found.len() > 10 {
        lines.push(format!("… and {} more", found.len() - 10));
    }
    lines
}

/// An operator's target that names nothing, or too much. The text is what they read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TargetError {
    #[error(
        "no certificate or alert matches `{0}` (a key or managed certificate is named by its subject, e.g. `managed:web`: see `certvigil alerts`)"
    )]
    NoAlertTarget(String),
    #[error("no certificate matches `{0}`")]
    NoCertificate(String),
    #[error("`{target}` matches {} certificates; name one by its fingerprint:\n  {}", candidates.len(), candidate_lines(candidates).join("\n  "))]
    Ambiguous { target: String, candidates: Vec<CertRow> },
    #[error("`{0}` is not key=value")]
    NotKeyValue(String),
    #[error("`{0}` is not a finding kind")]
    NotAKind(String),
    #[error("unknown silence key `{0}` (source, tag, kind, eku, fingerprint, subject)")]
    UnknownKey(String),
    #[error("{0}")]
    BadSubject(String),
}

/// What `ack` acknowledges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckTarget {
    /// One alert by its id.
    Alert(i64),
    /// The open alerts of a subject (a certificate as `cert:<sha256>`).
    Subject(String),
}

/// An alert id (fewer than 8 digits, when such an alert exists), a subject (`managed:web`,
/// `key:…`, `cert:…`), or a certificate in any form the tool displays ([`Naming::Displayed`]).
/// A name that fits several certificates names the one with open alerts when only one has
/// any; otherwise the candidates are listed.
pub fn ack_target(store: &Store, target: &str) -> Result<Result<AckTarget, TargetError>, StoreError> {
    let target = target.trim();
    if let Ok(id) = target.parse::<i64>()
        && target.len() < 8
        && store.alert(id)?.is_some()
    {
        return Ok(Ok(AckTarget::Alert(id)));
    }
    if SubjectKind::of(target).is_some() {
        return Ok(Ok(AckTarget::Subject(target.to_string())));
    }
    let found = candidates(store, target)?;
    Ok(match found.as_slice() {
        [one] => Ok(AckTarget::Subject(cert_subject(&one.facts.fingerprint.0))),
        [] => Err(TargetError::NoAlertTarget(target.to_string())),
        _ => {
            let open: std::collections::HashSet<String> = store.open_alerts()?.into_iter().map(|a| a.subject).collect();
            let alerting: Vec<&CertRow> = found.iter().filter(|c| open.contains(&cert_subject(&c.facts.fingerprint.0))).collect();
            match alerting.as_slice() {
                [one] => Ok(AckTarget::Subject(cert_subject(&one.facts.fingerprint.0))),
                _ => Err(TargetError::Ambiguous { target: target.to_string(), candidates: found }),
            }
        }
    })
}

/// A subject given to `silence add`: `cert:<sha256>`, `key:<source>:<location>` or
/// `managed:<name>`.
pub fn checked_subject(s: &str) -> Result<String, TargetError> {
    match SubjectKind::of(s) {
        Some(_) if s.split_once(':').is_some_and(|(_, rest)| !rest.is_empty()) => Ok(s.to_string()),
        _ => Err(TargetError::BadSubject(format!(
            "`{s}` is not a subject: give `managed:<name>`, `key:<source>:<location>` or `cert:<sha256>` as `certvigil alerts -o json` shows it"
        ))),
    }
}

/// The silence `silence add TARGET` means: a match (`source=web,kind=expiring`), a subject, or
/// one certificate by fingerprint prefix or serial. `id` is left 0 for the store to assign.
pub fn silence_for(
    store: &Store,
    target: &str,
    reason: &str,
    by: &str,
    now: UnixTime,
    duration: i64,
) -> Result<Result<Silence, TargetError>, StoreError> {
    let mut si = Silence {
        id: 0,
        fingerprint: None,
        subject: None,
        source: None,
        tag: None,
        kind: None,
        eku: None,
        reason: reason.to_string(),
        created_by: by.to_string(),
        created_at: now,
        expires_at: now + duration,
    };
    if target.contains('=') {
        for part in target.split(',') {
            let Some((k, v)) = part.split_once('=') else { return Ok(Err(TargetError::NotKeyValue(part.to_string()))) };
            let text = v.trim().to_string();
            let v = Some(text.clone());
            match k.trim() {
                "source" => si.source = v,
                "tag" => si.tag = v,
                "kind" => {
                    if Kind::parse(&text).is_none() {
                        return Ok(Err(TargetError::NotAKind(text)));
                    }
                    si.kind = v
                }
                "eku" => si.eku = v.map(|e| crate::model::eku::normalise_eku(&e)),
                "fingerprint" => si.fingerprint = v,
                "subject" => match checked_subject(&text) {
                    Ok(s) => si.subject = Some(s),
                    Err(e) => return Ok(Err(e)),
                },
                other => return Ok(Err(TargetError::UnknownKey(other.to_string()))),
            }
        }
    } else if SubjectKind::of(target).is_some() {
        match checked_subject(target) {
            Ok(s) => si.subject = Some(s),
            Err(e) => return Ok(Err(e)),
        }
    } else {
        // A name that fits several certificates names the current one when only one is.
        let found = candidates(store, target.trim())?;
        let current: Vec<&CertRow> = found.iter().filter(|c| c.gone_since.is_none()).collect();
        let chosen = match (found.as_slice(), current.as_slice()) {
            ([one], _) => one.facts.fingerprint.0.clone(),
            (_, [one]) => one.facts.fingerprint.0.clone(),
            ([], _) => return Ok(Err(TargetError::NoCertificate(target.to_string()))),
            _ => return Ok(Err(TargetError::Ambiguous { target: target.to_string(), candidates: found })),
        };
        si.fingerprint = Some(chosen);
    }
    Ok(Ok(si))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::unix_from_civil;

    /// The example certificates, scanned into a fresh store at 2026-06-01.
    pub(crate) fn scanned() -> (tempfile::TempDir, Store, crate::config::Settings, UnixTime) {
        let dir = tempfile::tempdir().unwrap();
        let certs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/certs");
        let yaml = format!(
            "store: {{path: {}}}\nsources:\n  - {{name: examples, kind: files, paths: [{}], tags: [demo], include: ['*.pem', '*.der']}}\n",
            dir.path().join("s.db").display(),
            certs.display()
        );
        let settings = crate::config::parse_str(&yaml, "test.yaml", dir.path()).unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let now = unix_from_civil(2026, 6, 1, 0, 0, 0).unwrap();
        let sources: Vec<_> = settings.sources.iter().map(crate::sources::build).collect();
        crate::app::scan::scan(&mut store, &sources, true, now, 1, &mut |_| {}).unwrap();
        (dir, store, settings, now)
    }

    fn names(store: &Store, filter: &CertFilter, view: &InventoryView<'_>) -> Vec<String> {
        let mut out = Vec::new();
        store
            .each_certificate(false, |c| {
                if filter.matches(&c, view) {
                    out.push(c.facts.display_name());
                }
                Ok::<(), StoreError>(())
            })
            .unwrap();
        out.sort();
        out
    }

    #[test]
    fn filters_select_by_status_eku_tag_and_source() {
        let (_dir, store, settings, now) = scanned();
        let view = InventoryView::load(&store, &settings, now).unwrap();
        let all = names(&store, &CertFilter::default(), &view);
        assert!(all.len() >= 3, "{all:?}");
        let expired = names(&store, &CertFilter { statuses: vec![ExpiryStatus::Expired], ..Default::default() }, &view);
        assert_eq!(expired, ["legacy.example.net"]);
        // As an operator writes it: not the stored name.
        let signing = names(&store, &CertFilter { ekus: vec!["code-signing".into()], ..Default::default() }, &view);
        assert_eq!(signing.len(), 1, "{signing:?}");
        assert!(signing[0].contains("Code Signing"), "{signing:?}");
        assert_eq!(names(&store, &CertFilter { tags: vec!["demo".into()], ..Default::default() }, &view), all);
        assert!(names(&store, &CertFilter { tags: vec!["prod".into()], ..Default::default() }, &view).is_empty());
        assert!(names(&store, &CertFilter { sources: vec!["elsewhere".into()], ..Default::default() }, &view).is_empty());
        // Nothing has been checked for revocation yet: a revocation filter matches nothing.
        assert!(names(&store, &CertFilter { revocation: vec![RevocationState::Good], ..Default::default() }, &view).is_empty());
        // Expiring within a day of 2026-06-01: only what has already expired.
        assert_eq!(names(&store, &CertFilter { expiring_within: Some(86_400), ..Default::default() }, &view), expired);
        // A view loaded for the filter alone answers as the whole view does.
        for f in [
            CertFilter { statuses: vec![ExpiryStatus::Expired], ..Default::default() },
            CertFilter { tags: vec!["demo".into()], ..Default::default() },
            CertFilter { revocation: vec![RevocationState::Good], ..Default::default() },
            CertFilter { sources: vec!["examples".into()], expiring_within: Some(86_400), ..Default::default() },
        ] {
            let lean = InventoryView::for_filter(&store, &settings, now, &f).unwrap();
            assert_eq!(names(&store, &f, &lean), names(&store, &f, &view), "{f:?}");
        }
    }

    #[test]
    fn certificates_are_named_as_the_tool_displays_them() {
        let (_dir, store, _, _) = scanned();
        let legacy = store.find_named("legacy.example.net").unwrap().remove(0);
        let fp = legacy.facts.fingerprint.0.clone();
        let colons: String = fp.as_bytes()[..8].chunks(2).map(|c| String::from_utf8_lossy(c).to_uppercase()).collect::<Vec<_>>().join(":");
        for form in [
            &fp[..8],
            &fp[..8].to_uppercase(),
            &colons,
            "legacy.example.net",
            "LEGACY.example.net",
            &legacy.facts.subject,
            "o=certvigil examples, cn=legacy.example.net",
        ] {
            let Lookup::One(c) = find_certificate(&store, form, Naming::Displayed).unwrap() else { panic!("{form}") };
            assert_eq!(c.facts.fingerprint.0, fp, "{form}");
        }
        // By serial in any spelling as `show` takes it, but not through the API, which takes
        // fingerprints only.
        let serial = &legacy.facts.serial;
        for form in [serial.clone(), serial.to_lowercase(), crate::model::display::serial(serial), format!("0x{serial}")] {
            let Lookup::One(c) = find_certificate(&store, &form, Naming::Displayed).unwrap() else { panic!("{form}") };
            assert_eq!(c.facts.fingerprint.0, fp, "{form}");
        }
        assert!(matches!(find_certificate(&store, serial, Naming::Fingerprint).unwrap(), Lookup::None));
        assert!(matches!(find_certificate(&store, &fp[..8], Naming::Fingerprint).unwrap(), Lookup::One(_)));
        assert!(matches!(find_certificate(&store, "ffffffff", Naming::Displayed).unwrap(), Lookup::None));
        assert!(matches!(find_certificate(&store, "legacy.example", Naming::Displayed).unwrap(), Lookup::None));
        // The web leaf is in three files and the root in four: one certificate each, by name.
        assert!(matches!(find_certificate(&store, "www.example.net", Naming::Displayed).unwrap(), Lookup::One(_)));
    }

    #[test]
    fn ack_and_silence_targets() {
        let (_dir, store, _, now) = scanned();
        // No alert 12: a short number is then a name, which names nothing here.
        assert!(matches!(ack_target(&store, "12").unwrap(), Err(TargetError::NoAlertTarget(_))));
        assert!(matches!(ack_target(&store, "managed:web").unwrap(), Ok(AckTarget::Subject(s)) if s == "managed:web"));
        let fp = store.find_named("legacy.example.net").unwrap().remove(0).facts.fingerprint.0;
        let Ok(AckTarget::Subject(s)) = ack_target(&store, &fp[..8]).unwrap() else { panic!("{fp}") };
        assert_eq!(s, format!("cert:{fp}"));
        let Ok(AckTarget::Subject(s)) = ack_target(&store, "legacy.example.net").unwrap() else { panic!("by name") };
        assert_eq!(s, format!("cert:{fp}"));
        assert_eq!(
            ack_target(&store, "ffffffff").unwrap().unwrap_err().to_string(),
            "no certificate or alert matches `ffffffff` (a key or managed certificate is named by its subject, e.g. `managed:web`: see `certvigil alerts`)"
        );

        let si = silence_for(&store, "source=examples,kind=expiring,eku=codesigning", "why", "ops", now, 3600).unwrap().unwrap();
        assert_eq!(
            (si.source.as_deref(), si.kind.as_deref(), si.eku.as_deref()),
            (Some("examples"), Some("expiring"), Some("codeSigning"))
        );
        assert_eq!((si.expires_at - si.created_at, si.created_by.as_str(), si.reason.as_str()), (3600, "ops", "why"));
        let si = silence_for(&store, &fp[..8], "r", "ops", now, 60).unwrap().unwrap();
        assert_eq!(si.fingerprint.as_deref(), Some(fp.as_str()));
        let si = silence_for(&store, "legacy.example.net", "r", "ops", now, 60).unwrap().unwrap();
        assert_eq!(si.fingerprint.as_deref(), Some(fp.as_str()));
        let err = |t: &str| silence_for(&store, t, "r", "ops", now, 60).unwrap().unwrap_err().to_string();
        assert_eq!(err("kind=bogus"), "`bogus` is not a finding kind");
        assert_eq!(err("source"), "no certificate matches `source`");
        assert_eq!(err("source=a,oops"), "`oops` is not key=value");
        assert_eq!(err("colour=red"), "unknown silence key `colour` (source, tag, kind, eku, fingerprint, subject)");
        assert!(err("managed:").contains("is not a subject"));
    }
}
