//! Revoking a managed certificate through its ACME account (RFC 8555 §7.6), and with `rotate`
//! reissuing it under a new key, as one tracked workflow.
//!
//! Each step is recorded in the certificate's `renewals` row before the next one starts
//! (`requested` → `revoked` → `done`), and the certificate to revoke is kept (0600) beside the
//! pending order files, so a run that dies at any point is finished by the next `renew` or
//! `revoke` — the CA answering `alreadyRevoked` to a repeated request counts as revoked. Once
//! revoked, the certificate is recorded as revoked in the store (method `acme`), which raises
//! the `revoked` finding and its alert; and its key is never reused: the renewal of a revoked
//! certificate always generates a new key, whatever the rotation policy.

use super::engine::{self, CertOutcome, Options, RenewError};
use crate::config::managed::{KeyRotation, ManagedSpec};
use crate::install::files::InstallError;
use crate::issuers::acme::AcmeError;
use crate::model::{RevocationState, RevocationStatus, UnixTime};
use crate::store::{RenewalRow, Store, StoreError};
use crate::x509::cert::{self, CertError};
use instant_acme::RevocationReason;
use std::path::{Path, PathBuf};

/// Why a revocation (or its reissue) did not go through. The certificate being revoked is
/// named by its serial, or by the file it is kept in.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    #[error("`{text}` is not a revocation reason (one of: {known})")]
    UnknownReason { text: String, known: String },
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the installed certificate: {reason}")]
    Installed { reason: InstallError },
    #[error("the installed certificate is malformed: {}", .reason.0)]
    InstalledMalformed { reason: CertError },
    #[error("cannot create {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    WriteKept {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the revocation record names no certificate")]
    NoCertificate,
    #[error("cannot read the certificate being revoked {path}")]
    ReadKept {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    KeptUnreadable { path: PathBuf, reason: InstallError },
    #[error("{path} is malformed: {}", .reason.0)]
    KeptMalformed { path: PathBuf, reason: CertError },
    #[error("{path} is not the certificate the revocation was asked for ({fingerprint})")]
    NotTheCertificate { path: PathBuf, fingerprint: String },
    /// Opening the ACME account.
    #[error(transparent)]
    Acme(#[from] AcmeError),
    #[error("cannot revoke serial {serial}")]
    Revoke {
        serial: String,
        #[source]
        source: Box<AcmeError>,
    },
    /// The reissue under a new key.
    #[error(transparent)]
    Reissue(#[from] RenewError),
}

type Result<T, E = RevokeError> = std::result::Result<T, E>;

/// Test hook (`tests/it_acme/acme.rs`): `revoke-after-ca` aborts the process right after the CA
/// accepted the revocation, before the store records it.
const FAILPOINT: &str = "revoke-after-ca";

/// The reasons an ACME server accepts from a subscriber (RFC 5280 §5.3.1 codes).
pub const REASONS: &[(&str, RevocationReason)] = &[
    ("unspecified", RevocationReason::Unspecified),
    ("keyCompromise", RevocationReason::KeyCompromise),
    ("affiliationChanged", RevocationReason::AffiliationChanged),
    ("superseded", RevocationReason::Superseded),
    ("cessationOfOperation", RevocationReason::CessationOfOperation),
];

/// Parses a reason name (case and `-`/`_` insensitive: `key-compromise`, `keyCompromise`).
pub fn parse_reason(text: &str) -> Result<(&'static str, i64)> {
    let norm = |s: &str| s.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    let wanted = norm(text);
    REASONS.iter().find(|(name, _)| norm(name) == wanted).map(|(name, code)| (*name, code.clone() as i64)).ok_or_else(|| {
        RevokeError::UnknownReason { text: text.to_string(), known: REASONS.iter().map(|r| r.0).collect::<Vec<_>>().join(", ") }
    })
}

fn reason_of(code: i64) -> (&'static str, RevocationReason) {
    REASONS
        .iter()
        .find(|(_, c)| c.clone() as i64 == code)
        .map(|(n, c)| (*n, c.clone()))
        .unwrap_or(("unspecified", RevocationReason::Unspecified))
}

/// What a revocation run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RevokeOutcome {
    pub name: String,
    pub fingerprint: String,
    pub serial: String,
    pub reason: String,
    /// The CA had already revoked it (a resumed request).
    pub already_revoked: bool,
    /// `revoked` (waiting for the reissue) or `done`.
    pub step: String,
    /// The reissue, when `rotate` was asked.
    pub reissue: Option<CertOutcome>,
    /// Whether this run continued a revocation an earlier run started.
    pub resumed: bool,
}

fn kept_path(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join("acme").join("pending").join(format!("{name}.revoke.pem"))
}

/// The installed leaf of `spec` as DER, with its PEM (read as every other reader of the
/// installed files does: fullchain, cert or combined).
fn installed_leaf(spec: &ManagedSpec) -> Result<(Vec<u8>, String)> {
    let installed = |reason| RevokeError::Installed { reason };
    let (chain_pem, _key) = crate::install::files::current_material(&spec.install).map_err(installed)?;
    let leaf = crate::install::files::chain_ders(&chain_pem).map_err(installed)?.remove(0);
    let pem_text = crate::install::files::to_pem(&leaf);
    Ok((leaf, pem_text))
}

/// Starts revoking the installed certificate of `spec`, then carries the workflow as far as it
/// goes in this run. An unfinished earlier revocation of the same certificate is resumed
/// instead; one of another certificate must finish first.
pub async fn revoke(
    spec: &ManagedSpec,
    store: &mut Store,
    state_dir: &Path,
    now: UnixTime,
    reason: i64,
    rotate: bool,
) -> Result<RevokeOutcome> {
    let mut row = store.renewal(&spec.name)?.unwrap_or_else(|| RenewalRow::new(&spec.name));
    if matches!(row.revoke_step.as_deref(), Some("requested" | "revoked")) {
        return advance(spec, store, state_dir, now, row, true).await;
    }
    let (der, pem_text) = installed_leaf(spec)?;
    let facts = cert::parse_der(&der).map_err(|reason| RevokeError::InstalledMalformed { reason })?;
    let kept = kept_path(state_dir, &spec.name);
    if let Some(dir) = kept.parent() {
        std::fs::create_dir_all(dir).map_err(|source| RevokeError::CreateDir { path: dir.to_path_buf(), source })?;
    }
    crate::issuers::keys::write_private(&kept, pem_text.as_bytes())
        .map_err(|source| RevokeError::WriteKept { path: kept.clone(), source })?;
    row.revoke_fingerprint = Some(facts.fingerprint.0.clone());
    row.revoke_reason = Some(reason);
    row.revoke_rotate = rotate;
    row.revoke_step = Some("requested".into());
    row.revoke_requested_at = Some(now);
    store.put_renewal(&row, now)?;
    let detail = serde_json::json!({
        "name": spec.name, "fingerprint": facts.fingerprint.0, "serial": facts.serial, "reason": reason_of(reason).0, "rotate": rotate,
    });
    store.audit(now, "revoke-requested", "cli", &detail)?;
    tracing::warn!(cert = %spec.name, serial = %facts.serial, reason = reason_of(reason).0, rotate, "revocation requested");
    advance(spec, store, state_dir, now, row, false).await
}

/// Finishes a revocation an earlier run left unfinished, if there is one.
pub async fn resume(spec: &ManagedSpec, store: &mut Store, state_dir: &Path, now: UnixTime) -> Result<Option<RevokeOutcome>> {
    let Some(row) = store.renewal(&spec.name)? else { return Ok(None) };
    if !matches!(row.revoke_step.as_deref(), Some("requested" | "revoked")) {
        return Ok(None);
    }
    advance(spec, store, state_dir, now, row, true).await.map(Some)
}

async fn advance(
    spec: &ManagedSpec,
    store: &mut Store,
    state_dir: &Path,
    now: UnixTime,
    mut row: RenewalRow,
    resumed: bool,
) -> Result<RevokeOutcome> {
    let kept = kept_path(state_dir, &spec.name);
    let fingerprint = row.revoke_fingerprint.clone().ok_or(RevokeError::NoCertificate)?;
    let (reason_name, reason) = reason_of(row.revoke_reason.unwrap_or(0));
    let text = std::fs::read_to_string(&kept).map_err(|source| RevokeError::ReadKept { path: kept.clone(), source })?;
    let der =
        crate::install::files::chain_ders(&text).map_err(|reason| RevokeError::KeptUnreadable { path: kept.clone(), reason })?.remove(0);
    let facts = cert::parse_der(&der).map_err(|reason| RevokeError::KeptMalformed { path: kept.clone(), reason })?;
    if facts.fingerprint.0 != fingerprint {
        return Err(RevokeError::NotTheCertificate { path: kept, fingerprint });
    }
    let mut out = RevokeOutcome {
        name: spec.name.clone(),
        fingerprint: fingerprint.clone(),
        serial: facts.serial.clone(),
        reason: reason_name.to_string(),
        already_revoked: false,
        step: String::new(),
        reissue: None,
        resumed,
    };
    if row.revoke_step.as_deref() == Some("requested") {
        let session = crate::issuers::acme::Session::open(spec, state_dir).await?;
        out.already_revoked = session
            .revoke(&der, reason)
            .await
            .map_err(|source| RevokeError::Revoke { serial: facts.serial.clone(), source: Box::new(source) })?;
        engine::failpoint(FAILPOINT);
        row.revoke_step = Some("revoked".into());
        store.put_renewal(&row, now)?;
        let place = spec.install.leaf_file().map(|p| p.display().to_string()).unwrap_or_default();
        let detail = "the installed certificate, recorded when certvigil revoked it (no scan had read it)";
        let id = store.record_handled(&der, &facts, &format!("managed:{}", spec.name), &place, detail, now)?;
        record_revoked(store, id, reason_name, now)?;
        let detail = serde_json::json!({
            "name": spec.name, "fingerprint": fingerprint, "serial": facts.serial, "reason": reason_name,
            "already_revoked": out.already_revoked, "directory": spec.directory,
        });
        store.audit(now, "revoke", "renewal", &detail)?;
        tracing::warn!(cert = %spec.name, serial = %facts.serial, reason = reason_name, "certificate revoked at the CA");
    }
    // Revoked: reissue under a new key when asked, unless something else already replaced it.
    let installed = crate::install::files::current_leaf(&spec.install);
    let still_installed = installed.as_ref().is_some_and(|c| c.fingerprint.0 == fingerprint);
    if row.revoke_rotate && still_installed {
        let fresh = ManagedSpec { rotate: KeyRotation::Always, ..spec.clone() };
        let o = engine::run_one(&fresh, store, state_dir, now, Options { force: true, dry_run: false }).await?;
        let ok = o.action == engine::Action::Renewed;
        out.reissue = Some(o);
        if !ok {
            // Stays `revoked`: the next run tries the reissue again.
            out.step = "revoked".into();
            return Ok(out);
        }
        let mut row = store.renewal(&spec.name)?.unwrap_or(row);
        finish(store, &mut row, spec, &kept, now, &out)?;
    } else {
        finish(store, &mut row, spec, &kept, now, &out)?;
    }
    out.step = "done".into();
    Ok(out)
}

fn finish(store: &mut Store, row: &mut RenewalRow, spec: &ManagedSpec, kept: &Path, now: UnixTime, out: &RevokeOutcome) -> Result<()> {
    row.revoke_step = Some("done".into());
    store.put_renewal(row, now)?;
    let _ = std::fs::remove_file(kept);
    let detail = serde_json::json!({
        "name": spec.name, "fingerprint": out.fingerprint, "serial": out.serial, "reason": out.reason,
        "reissued_serial": out.reissue.as_ref().and_then(|o| o.serial.clone()),
    });
    store.audit(now, "revoke-done", "renewal", &detail)?;
    Ok(())
}

/// Records the revocation of the inventoried certificate `id` (put there by the revocation if
/// no scan had), so that `show`, `list --revocation revoked` and the `revoked` finding know it
/// at once.
fn record_revoked(store: &mut Store, id: i64, reason: &str, now: UnixTime) -> Result<()> {
    let status = RevocationStatus {
        state: RevocationState::Revoked,
        reason: Some(reason.to_string()),
        revoked_at: Some(now),
        invalidity_date: None,
        method: "acme".into(),
        source_url: None,
        evidence_sha256: None,
        checked_at: now,
        next_update: None,
        stale: false,
        detail: Some("revoked by certvigil through the ACME account (RFC 8555 §7.6)".into()),
    };
    store.save_revocations(&[(id, status)])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_parse_in_any_spelling_and_unknown_ones_are_named() {
        assert_eq!(parse_reason("keyCompromise").unwrap(), ("keyCompromise", 1));
        assert_eq!(parse_reason("key-compromise").unwrap(), ("keyCompromise", 1));
        assert_eq!(parse_reason("SUPERSEDED").unwrap(), ("superseded", 4));
        assert_eq!(parse_reason("cessation_of_operation").unwrap(), ("cessationOfOperation", 5));
        let e = parse_reason("caCompromise").unwrap_err().to_string();
        assert!(e.contains("caCompromise") && e.contains("keyCompromise"), "{e}");
        assert_eq!(reason_of(3).0, "affiliationChanged");
    }
}
