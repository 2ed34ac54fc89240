//! What the status page asks of the inventory: the overview's counts and expiry timeline, and
//! one page of a searched, filtered and sorted inventory.
//!
//! Both read the inventory in one streaming pass from the store ([`Store::each_listing`]: rows
//! borrowed from the cursor, list columns as stored text) and keep only what they answer with:
//! counts and day buckets for the overview; the sort key and id of each matching certificate
//! for a page, whose rows are then read by id. The policy's expiry windows are decided once per
//! combination of sources and key usages (a fleet has a handful), not once per certificate. At
//! 100,000 certificates a request holds a few megabytes for its length, never the inventory.

use super::owners::{Owner, Owners};
use super::queries::{CertFilter, InventoryView};
use crate::config::Settings;
use crate::config::owners::NO_OWNER;
use crate::config::policy::{Expiry, PolicySpec};
use crate::model::rows::CertRow;
use crate::model::{ExpiryStatus, RevocationState, UnixTime};
use crate::store::{Listing, ListingRow, Store, StoreError};
use std::collections::{BTreeMap, HashMap};

/// Days the timeline looks ahead (today is day 0).
pub const TIMELINE_DAYS: usize = 90;
/// Groups the timeline stacks by name before it folds the rest into `other`.
pub const TIMELINE_GROUPS: usize = 6;
/// Rows a page may show at most.
pub const MAX_PER_PAGE: usize = 500;

/// Where a certificate stands against its expiry windows (the policy rule that applies to it
/// decides the windows, in days or as a fraction of its lifetime).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Urgency {
    Expired,
    /// Inside the critical window.
    Critical,
    /// Inside the warning window, not yet the critical one.
    Warning,
    Valid,
    NotYetValid,
}

impl Urgency {
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Expired => "expired",
            Urgency::Critical => "critical",
            Urgency::Warning => "warning",
            Urgency::Valid => "valid",
            Urgency::NotYetValid => "not-yet-valid",
        }
    }

    pub fn parse(s: &str) -> Option<Urgency> {
        [Urgency::Expired, Urgency::Critical, Urgency::Warning, Urgency::Valid, Urgency::NotYetValid].into_iter().find(|u| u.as_str() == s)
    }

    /// Under the policy rule that applies to `c`, with its sources' tags.
    pub fn of(c: &CertRow, policy: &PolicySpec, view: &InventoryView<'_>, now: UnixTime) -> Urgency {
        let f = &c.facts;
        let tags = view.tags_of(c);
        let (expiry, _) = policy.effective_for(&c.sources, &tags, &f.ext_key_usage);
        let (warning, critical) = expiry.windows(f.not_after - f.not_before);
        match ExpiryStatus::at(f.not_before, f.not_after, now, warning) {
            ExpiryStatus::Expired => Urgency::Expired,
            ExpiryStatus::NotYetValid => Urgency::NotYetValid,
            ExpiryStatus::Valid => Urgency::Valid,
            ExpiryStatus::Expiring if f.not_after - now <= critical => Urgency::Critical,
            ExpiryStatus::Expiring => Urgency::Warning,
        }
    }
}

/// Decides what a listing row does not say by itself: its expiry windows under the policy
/// (memoised per combination of sources and key usages), its tags, its display name.
pub struct Judge<'a> {
    pub policy: &'a PolicySpec,
    pub now: UnixTime,
    /// Each source's tags.
    pub tags: &'a HashMap<String, Vec<String>>,
    memo: HashMap<String, HashMap<Vec<u16>, Expiry>>,
    /// The EKU filter as it appears in the stored JSON (`"codeSigning"`), made once per pass.
    eku_needles: Option<Vec<String>>,
}

impl<'a> Judge<'a> {
    pub fn new(policy: &'a PolicySpec, tags: &'a HashMap<String, Vec<String>>, now: UnixTime) -> Self {
        Judge { policy, now, tags, memo: HashMap::new(), eku_needles: None }
    }

    fn expiry(&mut self, names: &Listing, r: &ListingRow<'_>) -> Expiry {
        if let Some(e) = self.memo.get(r.ekus_json).and_then(|m| m.get(r.sources)) {
            return *e;
        }
        let sources: Vec<String> = r.sources.iter().filter_map(|n| names.sources.get(*n as usize).cloned()).collect();
        let mut tags: Vec<String> = sources.iter().flat_map(|s| self.tags.get(s).cloned().unwrap_or_default()).collect();
        tags.sort();
        tags.dedup();
        let ekus: Vec<String> = serde_json::from_str(r.ekus_json).unwrap_or_default();
        let e = self.policy.effective_for(&sources, &tags, &ekus).0;
        self.memo.entry(r.ekus_json.to_string()).or_default().insert(r.sources.to_vec(), e);
        e
    }

    /// The row's urgency, as [`Urgency::of`] decides it for the whole certificate.
    pub fn urgency(&mut self, names: &Listing, r: &ListingRow<'_>) -> Urgency {
        let (warning, critical) = self.expiry(names, r).windows(r.not_after - r.not_before);
        match ExpiryStatus::at(r.not_before, r.not_after, self.now, warning) {
            ExpiryStatus::Expired => Urgency::Expired,
            ExpiryStatus::NotYetValid => Urgency::NotYetValid,
            ExpiryStatus::Valid => Urgency::Valid,
            ExpiryStatus::Expiring if r.not_after - self.now <= critical => Urgency::Critical,
            ExpiryStatus::Expiring => Urgency::Warning,
        }
    }

    /// Whether `filter` keeps the row (owner aside).
    pub fn keeps(&mut self, filter: &CertFilter, names: &Listing, r: &ListingRow<'_>) -> bool {
        let name_of = |n: &u16| names.sources.get(*n as usize).map(String::as_str).unwrap_or("");
        if filter.expiring_within.is_some_and(|w| r.not_after - self.now > w) {
            return false;
        }
        if !filter.sources.is_empty() && !r.sources.iter().any(|n| filter.sources.iter().any(|s| s == name_of(n))) {
            return false;
        }
        if !filter.tags.is_empty()
            && !r.sources.iter().any(|n| self.tags.get(name_of(n)).is_some_and(|t| t.iter().any(|t| filter.tags.contains(t))))
        {
            return false;
        }
        if !filter.ekus.is_empty() {
            let needles = self
                .eku_needles
                .get_or_insert_with(|| filter.ekus.iter().map(|e| format!("\"{}\"", crate::model::eku::normalise_eku(e))).collect());
            if !needles.iter().any(|n| r.ekus_json.contains(n.as_str())) {
                return false;
            }
        }
        if !filter.revocation.is_empty() && !r.revocation.and_then(RevocationState::parse).is_some_and(|s| filter.revocation.contains(&s)) {
            return false;
        }
        if !filter.statuses.is_empty() {
            let status = match self.urgency(names, r) {
                Urgency::Expired => ExpiryStatus::Expired,
                Urgency::Critical | Urgency::Warning => ExpiryStatus::Expiring,
                Urgency::Valid => ExpiryStatus::Valid,
                Urgency::NotYetValid => ExpiryStatus::NotYetValid,
            };
            if !filter.statuses.contains(&status) {
                return false;
            }
        }
        true
    }
}

/// The name tables show: CN, else the first SAN's value, else the subject.
pub fn display_name(r: &ListingRow<'_>) -> String {
    if let Some(cn) = r.common_name {
        return cn.to_string();
    }
    let sans: Vec<String> = serde_json::from_str(r.sans_json).unwrap_or_default();
    match sans.first() {
        Some(san) => san.split_once(':').map(|(_, v)| v.to_string()).unwrap_or_else(|| san.clone()),
        None if r.subject.is_empty() => "(empty subject)".into(),
        None => r.subject.to_string(),
    }
}

/// `hay` contains `needle` (already lower case), ignoring case; without allocating when both
/// are ASCII.
fn contains_ci(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if hay.is_ascii() && needle.is_ascii() {
        let (h, n) = (hay.as_bytes(), needle.as_bytes());
        return h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    }
    hay.to_lowercase().contains(needle)
}

/// The overview's counts of current certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub total: u64,
    pub expired: u64,
    pub critical: u64,
    pub warning: u64,
    pub not_yet_valid: u64,
    pub revoked: u64,
    pub revocation_unknown: u64,
    pub code_signing: u64,
}

/// Certificates expiring per UTC day, stacked by group (source or owner).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Timeline {
    /// Midnight UTC of day 0 (today).
    pub start: UnixTime,
    /// The groups in stacking order: the largest first, `other` last when groups were folded.
    pub groups: Vec<String>,
    /// `days[d][g]`: certificates of group `g` expiring on day `d`.
    pub days: Vec<Vec<u32>>,
    /// Already expired, by group.
    pub overdue: Vec<u32>,
    /// What `groups` are: `source` or `owner`.
    pub by: String,
}

impl Timeline {
    /// The tallest day (the scale of a chart).
    pub fn max_day(&self) -> u32 {
        self.days.iter().map(|d| d.iter().sum::<u32>()).max().unwrap_or(0)
    }
}

/// What the timeline stacks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Source,
    Owner,
}

/// The overview: counts, the timeline. (Jobs, sources and alerts come from their own store
/// reads.)
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Overview {
    pub counts: Counts,
    pub timeline: Timeline,
    /// Current certificates each source sees.
    pub per_source: BTreeMap<String, u64>,
}

/// Midnight UTC of the day `t` falls in.
pub fn day_start(t: UnixTime) -> UnixTime {
    t - t.rem_euclid(86_400)
}

/// One streaming pass over the current inventory. `group_of` names a certificate's group in
/// the timeline from its row and the source names (by source: its first source; by owner:
/// its owner).
pub fn overview(
    store: &Store,
    policy: &PolicySpec,
    tags: &HashMap<String, Vec<String>>,
    group_by: GroupBy,
    group_of: &dyn Fn(&Listing, &ListingRow<'_>) -> Option<String>,
    now: UnixTime,
) -> Result<Overview, StoreError> {
    let mut counts = Counts::default();
    let start = day_start(now);
    let mut judge = Judge::new(policy, tags, now);
    // (day or -1 for overdue, group) → count; groups chosen after the pass.
    let mut cells: HashMap<(i64, String), u32> = HashMap::new();
    let mut group_totals: HashMap<String, u64> = HashMap::new();
    let mut per_source: Vec<u64> = Vec::new();
    let mut source_names: Vec<String> = Vec::new();
    store.each_listing(|names, r| {
        counts.total += 1;
        for n in r.sources {
            let n = *n as usize;
            if per_source.len() <= n {
                per_source.resize(n + 1, 0);
                source_names.clone_from(&names.sources);
            }
            per_source[n] += 1;
        }
        match judge.urgency(names, r) {
            Urgency::Expired => counts.expired += 1,
            Urgency::Critical => counts.critical += 1,
            Urgency::Warning => counts.warning += 1,
            Urgency::NotYetValid => counts.not_yet_valid += 1,
            Urgency::Valid => {}
        }
        match r.revocation {
            Some("revoked") => counts.revoked += 1,
            Some("unknown") => counts.revocation_unknown += 1,
            _ => {}
        }
        if r.ekus_json.contains("\"codeSigning\"") {
            counts.code_signing += 1;
        }
        let day = if r.not_after < now { -1 } else { (r.not_after - start) / 86_400 };
        if day < TIMELINE_DAYS as i64 {
            let group = group_of(names, r).unwrap_or_else(|| "(none)".into());
            *group_totals.entry(group.clone()).or_default() += 1;
            *cells.entry((day, group)).or_default() += 1;
        }
    })?;
    let mut ranked: Vec<(String, u64)> = group_totals.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let folded = ranked.len() > TIMELINE_GROUPS;
    let mut groups: Vec<String> =
        ranked.iter().take(if folded { TIMELINE_GROUPS - 1 } else { TIMELINE_GROUPS }).map(|(g, _)| g.clone()).collect();
    let index: HashMap<String, usize> = groups.iter().enumerate().map(|(i, g)| (g.clone(), i)).collect();
    if folded {
        groups.push("other".into());
    }
    let mut days = vec![vec![0u32; groups.len()]; TIMELINE_DAYS];
    let mut overdue = vec![0u32; groups.len()];
    for ((day, group), n) in cells {
        let g = index.get(&group).copied().unwrap_or(groups.len().saturating_sub(1));
        if day < 0 {
            overdue[g] += n;
        } else if let Some(d) = days.get_mut(day as usize) {
            d[g] += n;
        }
    }
    let by = match group_by {
        GroupBy::Source => "source",
        GroupBy::Owner => "owner",
    };
    let per_source = source_names.into_iter().zip(per_source).collect();
    Ok(Overview { counts, timeline: Timeline { start, groups, days, overdue, by: by.into() }, per_source })
}

/// How an inventory page is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Soonest notAfter first.
    #[default]
    Expires,
    /// Display name (CN, else first SAN), case-insensitive.
    Name,
    Issuer,
    /// First seen.
    Seen,
}

impl Sort {
    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Expires => "expires",
            Sort::Name => "name",
            Sort::Issuer => "issuer",
            Sort::Seen => "seen",
        }
    }

    pub fn parse(s: &str) -> Option<Sort> {
        [Sort::Expires, Sort::Name, Sort::Issuer, Sort::Seen].into_iter().find(|x| x.as_str() == s)
    }
}

/// A search of the inventory: words, filters, order and page.
#[derive(Debug, Clone, Default)]
pub struct Browse {
    /// A CN or SAN substring, a serial (any case, colons allowed) or a fingerprint prefix
    /// (four or more hex digits); case-insensitive.
    pub query: String,
    pub filter: CertFilter,
    /// Urgencies to keep (empty: any).
    pub urgencies: Vec<Urgency>,
    /// Issuer DN substring, case-insensitive.
    pub issuer: Option<String>,
    /// Midnight UTC of the one day whose expiries to keep (the timeline's bars).
    pub expires_on: Option<UnixTime>,
    pub sort: Sort,
    pub descending: bool,
    /// From 1.
    pub page: usize,
    pub per_page: usize,
}

/// One row of an inventory page.
#[derive(Debug, Clone)]
pub struct Row {
    pub cert: CertRow,
    pub urgency: Urgency,
    pub revocation: Option<RevocationState>,
    pub tags: Vec<String>,
    pub owner: Option<Owner>,
}

/// One page of a search.
#[derive(Debug, Clone)]
pub struct Page {
    /// Matching certificates in all pages.
    pub total: usize,
    pub page: usize,
    pub per_page: usize,
    pub rows: Vec<Row>,
}

impl Page {
    pub fn pages(&self) -> usize {
        self.total.div_ceil(self.per_page.max(1)).max(1)
    }
}

/// A search word as the page takes it: lower case, and its hex form when it could be a
/// serial or fingerprint (colons and spaces dropped).
struct Words {
    text: String,
    hex: Option<String>,
}

impl Words {
    fn new(q: &str) -> Option<Words> {
        let text = q.trim().to_lowercase();
        if text.is_empty() {
            return None;
        }
        let hex: String = text.chars().filter(|c| *c != ':' && *c != ' ').collect();
        let hex = (hex.len() >= 4 && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(hex);
        Some(Words { text, hex })
    }

    fn matches(&self, r: &ListingRow<'_>) -> bool {
        if let Some(h) = &self.hex {
            if r.fingerprint.starts_with(h.as_str()) {
                return true;
            }
            let serial = r.serial.to_ascii_lowercase();
            if serial == *h || serial.trim_start_matches('0') == h.trim_start_matches('0') {
                return true;
            }
        }
        if r.common_name.is_some_and(|cn| contains_ci(cn, &self.text)) {
            return true;
        }
        // The stored SAN text first, as a cheap test; then each name's value exactly.
        if !contains_ci(r.sans_json, &self.text) {
            return false;
        }
        let sans: Vec<String> = serde_json::from_str(r.sans_json).unwrap_or_default();
        sans.iter().any(|s| contains_ci(s.split_once(':').map_or(s.as_str(), |(_, v)| v), &self.text))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Int(i64),
    Text(String),
}

impl Browse {
    /// Keeps the row?
    fn keeps(&self, judge: &mut Judge<'_>, words: Option<&Words>, issuer: Option<&str>, names: &Listing, r: &ListingRow<'_>) -> bool {
        if let Some(day) = self.expires_on
            && !(day..day + 86_400).contains(&r.not_after)
        {
            return false;
        }
        if let Some(i) = issuer
            && !contains_ci(r.issuer, i)
        {
            return false;
        }
        if words.is_some_and(|w| !w.matches(r)) {
            return false;
        }
        if !judge.keeps(&self.filter, names, r) {
            return false;
        }
        self.urgencies.is_empty() || self.urgencies.contains(&judge.urgency(names, r))
    }

    fn key(&self, r: &ListingRow<'_>) -> Key {
        match self.sort {
            Sort::Expires => Key::Int(r.not_after),
            Sort::Seen => Key::Int(r.first_seen),
            Sort::Name => Key::Text(display_name(r).to_lowercase()),
            Sort::Issuer => Key::Text(r.issuer.to_lowercase()),
        }
    }

    /// The ids of every match, in order (ties by notAfter, then id). An owner filter uses the
    /// view's owners, loaded here when the view has none.
    pub fn matching_ids(&self, store: &Store, settings: &Settings, view: &InventoryView<'_>) -> Result<Vec<i64>, StoreError> {
        let words = Words::new(&self.query);
        let issuer = self.issuer.as_ref().map(|i| i.to_lowercase());
        let mut judge = Judge::new(&settings.policy, &view.tags, view.now);
        let loaded;
        let owners = match (&view.owners, self.filter.owners.is_empty()) {
            (_, true) => None,
            (Some(o), false) => Some(o),
            (None, false) => {
                loaded = Owners::load(store, &settings.owners)?;
                Some(&loaded)
            }
        };
        let mut keys: Vec<(Key, i64, i64)> = Vec::new();
        store.each_listing(|names, r| {
            if self.keeps(&mut judge, words.as_ref(), issuer.as_deref(), names, r)
                && owners.is_none_or(|o| owned_by(o, &self.filter.owners, names, r))
            {
                keys.push((self.key(r), r.not_after, r.id));
            }
        })?;
        keys.sort_unstable();
        if self.descending {
            keys.reverse();
        }
        Ok(keys.into_iter().map(|(_, _, id)| id).collect())
    }

    /// The page asked for (an empty one past the last page, with the total to go back).
    pub fn page(&self, store: &Store, settings: &Settings, view: &InventoryView<'_>) -> Result<Page, StoreError> {
        let per_page = self.per_page.clamp(1, MAX_PER_PAGE);
        let page = self.page.max(1);
        let ids = self.matching_ids(store, settings, view)?;
        let total = ids.len();
        let start = (page - 1).saturating_mul(per_page).min(total);
        let wanted = &ids[start..(start + per_page).min(total)];
        let rows = rows_by_id(store, wanted, settings, view)?;
        Ok(Page { total, page, per_page, rows })
    }
}

/// The rows of `ids`, in the order given, with their revocation states and owners read for
/// them alone.
pub fn rows_by_id(store: &Store, ids: &[i64], settings: &Settings, view: &InventoryView<'_>) -> Result<Vec<Row>, StoreError> {
    let mut by_id: HashMap<i64, CertRow> = store.certificates_by_id(ids)?.into_iter().map(|c| (c.id, c)).collect();
    let revocation = store.revocation_statuses_of(ids)?;
    let owners = Owners::load_for(store, &settings.owners, ids)?;
    Ok(ids
        .iter()
        .filter_map(|id| by_id.remove(id))
        .map(|cert| Row {
            urgency: Urgency::of(&cert, &settings.policy, view, view.now),
            revocation: revocation.get(&cert.id).map(|s| s.state),
            tags: view.tags_of(&cert),
            owner: owners.owner_of(&cert).cloned(),
            cert,
        })
        .collect())
}

/// A listing row's owner (by its sources' objects, else the rules).
pub fn owner_of_row<'o>(owners: &'o Owners<'_>, names: &Listing, r: &ListingRow<'_>) -> Option<&'o Owner> {
    let sources: Vec<String> = r.sources.iter().filter_map(|n| names.sources.get(*n as usize).cloned()).collect();
    let sans: Vec<String> = serde_json::from_str(r.sans_json).unwrap_or_default();
    let dns = sans.iter().filter_map(|s| s.strip_prefix("DNS:")).chain(r.common_name);
    owners.owner_of_parts(r.id, &sources, dns)
}

/// Whether the row's owner is one of `wanted` (`none`: no owner).
fn owned_by(owners: &Owners<'_>, wanted: &[String], names: &Listing, r: &ListingRow<'_>) -> bool {
    match owner_of_row(owners, names, r) {
        Some(o) => wanted.contains(&o.name),
        None => wanted.iter().any(|w| w == NO_OWNER),
    }
}

/// Open alerts by severity.
pub fn alerts_by_severity(store: &Store) -> Result<BTreeMap<String, i64>, StoreError> {
    store.open_alert_counts()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::app::queries::tests::scanned;

    #[test]
    fn overview_counts_and_timeline_agree_with_the_rows() {
        let (_dir, store, settings, now) = scanned();
        let tags = store.source_tags().unwrap();
        let first = |names: &Listing, r: &ListingRow<'_>| r.sources.first().map(|n| names.sources[*n as usize].clone());
        let o = overview(&store, &settings.policy, &tags, GroupBy::Source, &first, now).unwrap();
        let all = store.certificates(false).unwrap();
        assert_eq!(o.counts.total as usize, all.len());
        let expired = all.iter().filter(|c| c.facts.not_after < now).count();
        assert_eq!(o.counts.expired as usize, expired);
        assert_eq!(o.timeline.overdue.iter().sum::<u32>() as usize, expired);
        let within = all.iter().filter(|c| c.facts.not_after >= now && c.facts.not_after < day_start(now) + 90 * 86_400).count();
        assert_eq!(o.timeline.days.iter().flatten().sum::<u32>() as usize, within);
        assert_eq!(o.timeline.groups, ["examples"]);
        assert_eq!(o.per_source.get("examples").copied(), Some(all.len() as u64));
        assert_eq!(o.counts.code_signing, 1);
    }

    #[test]
    fn the_listing_pass_agrees_with_the_certificate_rows() {
        let dir = tempfile::tempdir().unwrap();
        let certs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/certs");
        let (db, c) = (dir.path().join("s.db"), certs.display());
        let yaml = format!(
            "store: {{path: {}}}\nsources:\n  - {{name: b-examples, kind: files, paths: [{c}], include: ['*.pem']}}\n  - {{name: a-der, kind: files, paths: [{c}], include: ['*.der', '*.pem']}}\n",
            db.display()
        );
        let settings = crate::config::parse_str(&yaml, "test.yaml", dir.path()).unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let sources: Vec<_> = settings.sources.iter().map(crate::sources::build).collect();
        crate::app::scan::scan(&mut store, &sources, true, 1_780_272_000, 1, &mut |_| {}).unwrap();
        let rows = store.certificates(false).unwrap();
        let mut seen = Vec::new();
        store
            .each_listing(|names, l| {
                let c = rows.iter().find(|c| c.id == l.id).unwrap();
                assert_eq!(l.fingerprint, c.facts.fingerprint.0);
                assert_eq!((l.not_before, l.not_after, l.first_seen), (c.facts.not_before, c.facts.not_after, c.first_seen));
                assert_eq!(serde_json::from_str::<Vec<String>>(l.sans_json).unwrap(), c.facts.sans);
                assert_eq!(serde_json::from_str::<Vec<String>>(l.ekus_json).unwrap(), c.facts.ext_key_usage);
                let mut mine: Vec<String> = l.sources.iter().map(|n| names.sources[*n as usize].clone()).collect();
                let mut theirs = c.sources.clone();
                mine.sort();
                theirs.sort();
                assert_eq!(mine, theirs, "{}", c.facts.display_name());
                seen.push(l.id);
            })
            .unwrap();
        assert_eq!(seen.len(), rows.len());
        assert!(seen.is_sorted());
    }

    /// The listing pass (memoised per sources and key usages) decides what the per-certificate
    /// path decides, under rules by source, tag and EKU, at instants around every window edge.
    #[test]
    fn the_listing_judge_agrees_with_each_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let certs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/certs");
        let c = certs.display();
        let yaml = format!(
            "store: {{path: {}}}\nsources:\n  - {{name: pems, kind: files, paths: [{c}], tags: [lab], include: ['*.pem']}}\n  - {{name: all, kind: files, paths: [{c}], include: ['*.pem', '*.der']}}\npolicy:\n  rules:\n    - {{match: {{tag: [lab], eku: [serverAuth]}}, warning_days: 3000, critical_days: 2000}}\n    - {{match: {{source: [all]}}, warning_fraction: 0.9, critical_fraction: 0.5}}\n",
            dir.path().join("s.db").display()
        );
        let settings = crate::config::parse_str(&yaml, "test.yaml", dir.path()).unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let sources: Vec<_> = settings.sources.iter().map(crate::sources::build).collect();
        crate::app::scan::scan(&mut store, &sources, true, 1_780_272_000, 1, &mut |_| {}).unwrap();
        let rows = store.certificates(false).unwrap();
        let tags = store.source_tags().unwrap();
        let mut instants: Vec<UnixTime> = rows.iter().flat_map(|c| [c.facts.not_before, c.facts.not_after]).collect();
        instants.extend(rows.iter().map(|c| c.facts.not_after - (c.facts.not_after - c.facts.not_before) / 2));
        instants.extend(rows.iter().map(|c| c.facts.not_after - 2500 * 86_400));
        let mut kinds = std::collections::HashSet::new();
        for now in instants.into_iter().flat_map(|t| [t - 1, t, t + 1]) {
            let view = InventoryView::load(&store, &settings, now).unwrap();
            let mut judge = Judge::new(&settings.policy, &tags, now);
            store
                .each_listing(|names, r| {
                    let c = rows.iter().find(|c| c.id == r.id).unwrap();
                    let u = judge.urgency(names, r);
                    assert_eq!(u, Urgency::of(c, &settings.policy, &view, now), "{} at {now}", c.facts.display_name());
                    assert_eq!(display_name(r), c.facts.display_name());
                    kinds.insert(u);
                })
                .unwrap();
        }
        assert_eq!(kinds.len(), 5, "every urgency was reached: {kinds:?}");
    }

    #[test]
    fn case_insensitive_search() {
        assert!(contains_ci("Web.Example.NET", "example.net"));
        assert!(!contains_ci("web", "webs"));
        assert!(contains_ci("Ünïcode Name", "ünïcode"));
        assert!(contains_ci("anything", ""));
    }

    #[test]
    fn pages_search_and_sort() {
        let (_dir, store, settings, now) = scanned();
        let view = InventoryView::load(&store, &settings, now).unwrap();
        let all = Browse { per_page: 100, page: 1, ..Default::default() }.page(&store, &settings, &view).unwrap();
        assert!(all.total >= 3);
        let afters: Vec<_> = all.rows.iter().map(|r| r.cert.facts.not_after).collect();
        assert!(afters.is_sorted(), "{afters:?}");
        // Paging: two per page, every row once across the pages, an empty page past the end.
        let mut seen = Vec::new();
        for page in 1..=all.total.div_ceil(2) {
            let p = Browse { per_page: 2, page, ..Default::default() }.page(&store, &settings, &view).unwrap();
            assert_eq!(p.total, all.total);
            seen.extend(p.rows.iter().map(|r| r.cert.id));
        }
        assert_eq!(seen, all.rows.iter().map(|r| r.cert.id).collect::<Vec<_>>());
        let past = Browse { per_page: 2, page: 99, ..Default::default() }.page(&store, &settings, &view).unwrap();
        assert!(past.rows.is_empty());
        assert_eq!(past.total, all.total);
        // By name, by fingerprint prefix, by serial with colons, and by urgency.
        let legacy = Browse { query: "LEGACY".into(), per_page: 10, page: 1, ..Default::default() }.page(&store, &settings, &view).unwrap();
        assert_eq!(legacy.rows.iter().map(|r| r.cert.facts.display_name()).collect::<Vec<_>>(), ["legacy.example.net"]);
        let fp = &legacy.rows[0].cert.facts.fingerprint.0[..8];
        let by_fp =
            Browse { query: fp.to_uppercase(), per_page: 10, page: 1, ..Default::default() }.page(&store, &settings, &view).unwrap();
        assert_eq!(by_fp.total, 1);
        let serial = &legacy.rows[0].cert.facts.serial;
        let colons: Vec<String> = serial.as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).to_lowercase()).collect();
        let by_serial =
            Browse { query: colons.join(":"), per_page: 10, page: 1, ..Default::default() }.page(&store, &settings, &view).unwrap();
        assert!(by_serial.rows.iter().any(|r| r.cert.id == legacy.rows[0].cert.id), "{colons:?}");
        let expired = Browse { urgencies: vec![Urgency::Expired], per_page: 10, page: 1, ..Default::default() }
            .page(&store, &settings, &view)
            .unwrap();
        assert_eq!(expired.total, 1);
        let by_name_desc = Browse { sort: Sort::Name, descending: true, per_page: 100, page: 1, ..Default::default() }
            .page(&store, &settings, &view)
            .unwrap();
        let names: Vec<String> = by_name_desc.rows.iter().map(|r| r.cert.facts.display_name().to_lowercase()).collect();
        assert!(names.windows(2).all(|w| w[0] >= w[1]), "{names:?}");
        // Issuer substring in any case, and the EKU filter as operators write it.
        let by_issuer = Browse { issuer: Some("EXAMPLE root".into()), per_page: 100, page: 1, ..Default::default() }
            .page(&store, &settings, &view)
            .unwrap();
        assert_eq!(by_issuer.total, all.total, "every example is issued by the example root");
        assert_eq!(
            Browse { issuer: Some("nobody".into()), per_page: 1, page: 1, ..Default::default() }
                .page(&store, &settings, &view)
                .unwrap()
                .total,
            0
        );
        let signing = Browse {
            filter: CertFilter { ekus: vec!["code-signing".into()], ..Default::default() },
            per_page: 10,
            page: 1,
            ..Default::default()
        }
        .page(&store, &settings, &view)
        .unwrap();
        assert_eq!(signing.rows.iter().map(|r| r.cert.facts.ext_key_usage.clone()).collect::<Vec<_>>(), [vec!["codeSigning".to_string()]]);
        // One day of the timeline: the certificates expiring that UTC day only.
        let na = legacy.rows[0].cert.facts.not_after;
        let day =
            Browse { expires_on: Some(day_start(na)), per_page: 10, page: 1, ..Default::default() }.page(&store, &settings, &view).unwrap();
        assert!(day.rows.iter().all(|r| day_start(r.cert.facts.not_after) == day_start(na)) && day.total >= 1);
    }
}
