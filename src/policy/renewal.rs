//! Checks on managed certificates' renewal (`managed:`), over the renewal state the store keeps
//! (`store::RenewalRow`), passed in by `evaluate` as a [`RenewalView`]. Pure.
//!
//! A healthy schedule — no failures, renewal planned before expiry minus `alert_margin` —
//! turns the certificate's expiry finding into information (no page). A failed renewal pages
//! (`renewal-failed`: warning, critical after [`CRITICAL_AFTER_FAILURES`] failures or inside
//! the margin), and so does a missed ARI window (`renewal-overdue`).

use super::{CertState, Ctx, Kind, Out, Severity, days};
use crate::model::{CertFacts, UnixTime, format_time};

/// Consecutive failures after which `renewal-failed` is critical.
pub const CRITICAL_AFTER_FAILURES: i64 = 3;

/// What the policy knows about the renewal of the certificate a managed name has installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalView {
    /// The managed certificate's name.
    pub name: String,
    pub failures: i64,
    pub last_error: Option<String>,
    pub next_attempt: Option<UnixTime>,
    /// When the next renewal is scheduled.
    pub renew_at: Option<UnixTime>,
    /// End of the CA's renewal window for this very certificate (RFC 9773), if one was given.
    pub ari_end: Option<UnixTime>,
    /// `managed[].alert_margin`, in seconds.
    pub alert_margin: i64,
}

impl RenewalView {
    /// The scheduled renewal time when the schedule is healthy at `now`: no failures, a time
    /// planned before expiry minus the margin, the margin not yet reached, no missed window.
    pub fn healthy(&self, f: &CertFacts, now: UnixTime) -> Option<UnixTime> {
        let at = self.renew_at?;
        let deadline = f.not_after - self.alert_margin;
        let ok = self.failures == 0 && at <= deadline && now < deadline && self.ari_end.is_none_or(|end| now <= end);
        ok.then_some(at)
    }
}

/// `renewal-failed`.
pub fn failed(ctx: &Ctx<'_>, st: &CertState<'_>) -> Out {
    let r = st.renewal.filter(|r| r.failures > 0)?;
    let f = &st.cert.facts;
    let left = f.not_after - ctx.now;
    let severity = if r.failures >= CRITICAL_AFTER_FAILURES || left <= r.alert_margin { Severity::Critical } else { Severity::Warning };
    let next = r.next_attempt.map(|t| format!("; next attempt at {}", format_time(t))).unwrap_or_default();
    Some((
        Kind::RenewalFailed,
        severity,
        format!(
            "renewal of managed certificate `{}` failed {} time(s) in a row ({} left){next}: {}",
            r.name,
            r.failures,
            days(left.max(0)),
            r.last_error.as_deref().unwrap_or("no error recorded")
        ),
        format!("fix the cause, then run `certvigil renew {} --force`", r.name),
    ))
}

/// `renewal-overdue`.
pub fn overdue(ctx: &Ctx<'_>, st: &CertState<'_>) -> Out {
    let r = st.renewal?;
    let end = r.ari_end.filter(|end| ctx.now > *end)?;
    let f = &st.cert.facts;
    if ctx.now > f.not_after {
        return None; // `expired` says it.
    }
    let severity = if f.not_after - ctx.now <= r.alert_margin { Severity::Critical } else { Severity::Warning };
    Some((
        Kind::RenewalOverdue,
        severity,
        format!("the CA's renewal window for managed certificate `{}` ended {} and it has not been renewed", r.name, format_time(end)),
        format!("check the renew job, then run `certvigil renew {}`", r.name),
    ))
}

/// The renewal state of a managed certificate that has no current certificate in the inventory
/// (nothing installed yet, or what it installed is not where any source looks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uninstalled {
    pub name: String,
    pub failures: i64,
    pub last_error: Option<String>,
    pub next_attempt: Option<UnixTime>,
    /// The fingerprint the renewal engine read back from the install files, if any.
    pub installed: Option<String>,
}

/// `renewal-failed` about the managed certificate itself (subject `managed:<name>`), when its
/// issuance keeps failing and there is no certificate in the inventory to carry the finding:
/// warning, critical after [`CRITICAL_AFTER_FAILURES`] failures. No failures, no finding (the
/// alert resolves). Pure.
pub fn failed_without_certificate(u: &Uninstalled) -> Option<super::Finding> {
    if u.failures <= 0 {
        return None;
    }
    let severity = if u.failures >= CRITICAL_AFTER_FAILURES { Severity::Critical } else { Severity::Warning };
    let next = u.next_attempt.map(|t| format!("; next attempt at {}", format_time(t))).unwrap_or_default();
    let (what, state) = match &u.installed {
        None => ("issuance", "nothing is installed yet".to_string()),
        Some(fp) => ("renewal", format!("the certificate it installed (sha256 {}) is in no scanned source", &fp[..12.min(fp.len())])),
    };
    Some(super::Finding {
        subject: super::managed_subject(&u.name),
        subject_kind: super::SubjectKind::Managed,
        cert_id: None,
        fingerprint: String::new(),
        name: format!("managed certificate {}", u.name),
        kind: Kind::RenewalFailed,
        severity,
        reason: format!(
            "{what} of managed certificate `{}` failed {} time(s) in a row; {state}{next}: {}",
            u.name,
            u.failures,
            u.last_error.as_deref().unwrap_or("no error recorded")
        ),
        action: format!("fix the cause, then run `certvigil renew {} --force`", u.name),
        sources: Vec::new(),
        tags: Vec::new(),
        ekus: Vec::new(),
        not_after: 0,
        owner: None,
        owner_contact: None,
    })
}
