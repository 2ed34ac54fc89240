//! A TUF trust root read by a scan, checked against the roots seen before at its location (the
//! chain of root versions, TUF specification §5.3.4–§5.3.5) and recorded (`trust_roots`). The
//! verdict goes into the root's key attributes (`chain`, `chain_from`, …), which the key policy
//! reads (`policy::keys::check_trust_root_signatures`). Verification itself is pure
//! (`x509::tuf`); this is the wiring between it and the store.

use crate::model::observed::KeyObject;
use crate::model::rows::TrustRootRow;
use crate::store::{ScanWriter, StoreError};
use crate::x509::tuf::{self, Chain};
use sha2::Digest;

/// The name of a chain verdict as stored, and the trusted version it was checked against.
fn name(chain: &Chain) -> (&'static str, Option<u64>) {
    match chain {
        Chain::First => ("first", None),
        Chain::Same => ("same", None),
        Chain::Verified { from } => ("verified", Some(*from)),
        Chain::Broken { from, .. } => ("broken", Some(*from)),
        Chain::Gap { from } => ("gap", Some(*from)),
        Chain::Rollback { from } => ("rollback", Some(*from)),
    }
}

/// Checks the trust root `key` read at `location` against the trusted root recorded there and
/// records it; its attributes get the chain verdict. Checked each time the object is read (new or
/// changed: an unchanged object is not read again), so a root that was broken stays broken and a
/// gap closes when the root is read after the roots between were seen; a root read again after
/// it became trusted keeps the verdict it got when first seen. A key object that is not a
/// readable root is left alone.
pub fn track_root(writer: &mut ScanWriter<'_>, source: &str, location: &str, key: &mut KeyObject) -> Result<(), StoreError> {
    let Some(doc) = key.document.as_deref() else { return Ok(()) };
    let Ok(new) = tuf::parse_root(doc) else { return Ok(()) };
    let content_sha256 = hex::encode(sha2::Sha256::digest(doc));
    let history = writer.trust_roots_at(source, location)?;
    // The location's trusted root: its highest trusted version (history is highest first).
    let trusted = history.iter().find(|r| r.trusted).and_then(|r| tuf::parse_root(r.document.as_bytes()).ok());
    let between: Vec<tuf::Root> = match &trusted {
        Some(t) if new.version > t.version.saturating_add(1) => writer
            .trust_roots_between(t.version as i64, new.version as i64)?
            .iter()
            .filter_map(|r| tuf::parse_root(r.document.as_bytes()).ok())
            .collect(),
        _ => Vec::new(),
    };
    let chain = tuf::chain_via(trusted.as_ref(), &between, &new);
    let own = tuf::count(&new, &new);
    let (mut chain_name, mut from) = name(&chain);
    let mut is_trusted = own.met() && matches!(chain, Chain::First | Chain::Same | Chain::Verified { .. });
    let before = history.iter().find(|r| r.content_sha256 == content_sha256);
    if let (Chain::Same, Some(b)) = (&chain, before) {
        (chain_name, from, is_trusted) = (b.chain.as_str(), b.chain_from.map(|v| v as u64), b.trusted);
    }
    let row = TrustRootRow {
        source: source.to_string(),
        location: location.to_string(),
        version: new.version as i64,
        content_sha256,
        document: String::from_utf8_lossy(doc).into_owned(),
        valid_signatures: own.valid as i64,
        threshold: own.threshold as i64,
        chain: chain_name.to_string(),
        chain_from: from.map(|v| v as i64),
        trusted: is_trusted,
        first_seen: 0,
        last_seen: 0,
    };
    writer.put_trust_root(&row)?;
    let a = &mut key.attributes;
    a["chain"] = row.chain.clone().into();
    a["chain_from"] = row.chain_from.into();
    a["trusted"] = row.trusted.into();
    if let Chain::Broken { count, .. } = &chain {
        a["chain_valid_signatures"] = count.valid.into();
        a["chain_threshold"] = count.threshold.into();
    }
    Ok(())
}
