//! Obtaining certificates: the ACME issuer and the renewal decision.

pub mod account;
pub mod acme;
pub mod challenge;
pub mod keys;

use crate::config::managed::ManagedSpec;
use crate::model::CertFacts;

/// Why a managed certificate is due for renewal now, or `None` when it is not.
pub fn due(spec: &ManagedSpec, current: Option<&CertFacts>, now: i64) -> Option<String> {
    let Some(c) = current else {
        return Some("no certificate installed".into());
    };
    let at = match spec.renew_before {
        Some(d) => c.not_after - d.as_secs() as i64,
        None => c.not_before + (c.not_after - c.not_before) * 2 / 3,
    };
    (now >= at).then(|| format!("renewal time {at} reached"))
}
