//! When to renew a managed certificate: the pure decision over its installed certificate, its
//! stored renewal state (`store::RenewalRow`) and `now`, and the backoff after failures. The
//! I/O — ACME, ARI polling, installing, the random choice inside an ARI window — lives in
//! [`engine`].
//!
//! The decision is an ordered list of rules, the first match wins, each tested on its own: a new
//! reason to renew is a new rule in its place, not a flag threaded through the engine.
//!
//! Order of the rules, first match wins:
//! 1. `--force` renews now, ignoring backoff.
//! 2. After a failure, nothing is attempted before the backoff ends (1 min, 10 min, 100 min,
//!    then daily), so a restart does not reset it: the time is stored.
//! 3. An order in flight or a downloaded chain not yet installed: resume it.
//! 4. Nothing installed: renew.
//! 5. The installed certificate is revoked or expired: renew now.
//! 6. The CA offers ACME Renewal Information (RFC 9773) for it: its window decides — renew at
//!    the time chosen inside the window, immediately when the window has passed (§4.2).
//! 7. Otherwise `renew_before` ahead of notAfter, or half into the lifetime of a short-lived
//!    certificate (≤ 10 days) and two thirds into a longer one (`model::lifetime`).

pub mod engine;
pub mod revoke;

use crate::model::{CertFacts, UnixTime, lifetime};
use crate::store::RenewalRow;
use std::fmt;

/// Shortest and longest wait before asking for renewal information again, whatever the
/// server's Retry-After says (RFC 9773 §4.3.2 lets clients bound it).
pub const ARI_POLL_MIN: i64 = 60;
pub const ARI_POLL_MAX: i64 = 86_400;
/// How long to wait before asking a CA that offers no ARI again.
pub const ARI_UNSUPPORTED_RECHECK: i64 = 86_400;

/// Why a renewal is attempted now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Forced,
    NoCertificate,
    Resume,
    Revoked,
    Expired,
    /// The time chosen inside the ARI window has come.
    AriWindow {
        start: UnixTime,
        end: UnixTime,
    },
    /// The whole ARI window is in the past: renew immediately.
    AriWindowPassed {
        end: UnixTime,
    },
    /// `renew_before` ahead of notAfter.
    RenewBefore {
        at: UnixTime,
    },
    /// Half (short-lived) or two thirds of the lifetime have passed.
    Lifetime {
        at: UnixTime,
        /// The lifetime's fraction, (1, 2) or (2, 3).
        fraction: (i64, i64),
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::model::format_time as t;
        match self {
            Reason::Forced => f.write_str("forced"),
            Reason::NoCertificate => f.write_str("no certificate installed"),
            Reason::Resume => f.write_str("resuming the order in flight"),
            Reason::Revoked => f.write_str("the installed certificate is revoked"),
            Reason::Expired => f.write_str("the installed certificate has expired"),
            Reason::AriWindow { start, end } => write!(f, "inside the CA's renewal window {} – {}", t(*start), t(*end)),
            Reason::AriWindowPassed { end } => write!(f, "the CA's renewal window ended {}", t(*end)),
            Reason::RenewBefore { at } => write!(f, "renew_before reached at {}", t(*at)),
            Reason::Lifetime { at, fraction } => {
                write!(f, "{} of the lifetime passed at {}", crate::model::lifetime::fraction_words(*fraction), t(*at))
            }
        }
    }
}

/// What to do about one managed certificate now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Renew(Reason),
    /// Not due before `until`.
    Wait {
        until: UnixTime,
        ari: bool,
    },
    /// Failed `failures` times in a row; the next attempt is not before `until`.
    Backoff {
        until: UnixTime,
        failures: i64,
    },
}

/// The inputs of [`decide`].
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// `renew_before` in seconds, when configured.
    pub renew_before: Option<i64>,
    pub installed: Option<&'a CertFacts>,
    pub row: &'a RenewalRow,
    /// The store's verified revocation status of the installed certificate says revoked.
    pub revoked: bool,
    pub force: bool,
}

/// Delay before the next attempt after `failures` consecutive failures: 1 min, 10 min,
/// 100 min, then a day.
pub fn backoff_delay(failures: i64) -> i64 {
    match failures {
        i64::MIN..=0 => 0,
        1 => 60,
        2 => 600,
        3 => 6_000,
        _ => 86_400,
    }
}

/// The next ARI poll after a Retry-After of `retry_after` seconds, bounded.
pub fn next_ari_poll(now: UnixTime, retry_after: i64) -> UnixTime {
    now + retry_after.clamp(ARI_POLL_MIN, ARI_POLL_MAX)
}

/// The RFC 9773 §4.1 identifier of a certificate: base64url(AKI keyIdentifier) "."
/// base64url(DER serial content octets), both unpadded. `None` without an AKI key identifier.
pub fn ari_cert_id(aki_hex: Option<&str>, serial_hex: &str) -> Option<String> {
    use base64ct::{Base64UrlUnpadded, Encoding};
    let aki = hex::decode(aki_hex?.replace(':', "")).ok()?;
    let serial = hex::decode(serial_hex.replace(':', "")).ok()?;
    if aki.is_empty() || serial.is_empty() {
        return None;
    }
    Some(format!("{}.{}", Base64UrlUnpadded::encode_string(&aki), Base64UrlUnpadded::encode_string(&serial)))
}

/// The identifier of an installed certificate.
pub fn cert_id_of(c: &CertFacts) -> Option<String> {
    ari_cert_id(c.aki.as_deref(), &c.serial)
}

/// Whether renewal information should be fetched now: a current certificate is installed
/// (no point asking after expiry), and nothing was asked for this one yet or its Retry-After
/// has passed.
pub fn ari_poll_due(row: &RenewalRow, installed: Option<&CertFacts>, now: UnixTime) -> bool {
    let Some(c) = installed else { return false };
    let Some(id) = cert_id_of(c) else { return false };
    if now > c.not_after {
        return false;
    }
    row.ari_cert_id.as_deref() != Some(id.as_str()) || row.ari_next_poll.is_none_or(|t| t <= now)
}

/// The ARI window stored for the installed certificate, if any.
pub fn ari_window(row: &RenewalRow, installed: &CertFacts) -> Option<(UnixTime, UnixTime)> {
    let id = cert_id_of(installed)?;
    if row.ari_cert_id.as_deref() != Some(id.as_str()) {
        return None;
    }
    Some((row.ari_start?, row.ari_end?))
}

/// A time inside `[start, end]` from a random number (the caller draws it).
pub fn pick_in_window(start: UnixTime, end: UnixTime, random: u64) -> UnixTime {
    if end <= start {
        return start;
    }
    start + (random % ((end - start) as u64 + 1)) as i64
}

/// The lifetime rule's renewal time: `renew_before` ahead of notAfter, else the default point of
/// its lifetime ([`lifetime::default_renewal_time`]: half for a short-lived certificate, two
/// thirds otherwise). `true` when `renew_before` decided.
pub fn lifetime_time(renew_before: Option<i64>, c: &CertFacts) -> (UnixTime, bool) {
    match renew_before {
        Some(d) => (c.not_after - d, true),
        None => (lifetime::default_renewal_time(c.not_before, c.not_after), false),
    }
}

/// The decision for one managed certificate at `now`.
pub fn decide(i: &Inputs<'_>, now: UnixTime) -> Decision {
    // 1. An operator's explicit request.
    if i.force {
        return Decision::Renew(Reason::Forced);
    }
    // 2. Persisted backoff after failures.
    if i.row.failures > 0
        && let Some(until) = i.row.next_attempt.filter(|t| *t > now)
    {
        return Decision::Backoff { until, failures: i.row.failures };
    }
    // 3. Work in flight is finished before anything else is decided.
    if i.row.order_url.is_some() || i.row.pending_chain.is_some() {
        return Decision::Renew(Reason::Resume);
    }
    // 4. Nothing installed.
    let Some(c) = i.installed else {
        return Decision::Renew(Reason::NoCertificate);
    };
    // 5. A revoked or expired certificate is replaced now.
    if i.revoked {
        return Decision::Renew(Reason::Revoked);
    }
    if now > c.not_after {
        return Decision::Renew(Reason::Expired);
    }
    // 6. The CA's window (RFC 9773 §4.2).
    if let Some((start, end)) = ari_window(i.row, c) {
        if end <= now {
            return Decision::Renew(Reason::AriWindowPassed { end });
        }
        let at = i.row.renew_at.filter(|t| (start..=end).contains(t)).unwrap_or(start);
        if at <= now {
            return Decision::Renew(Reason::AriWindow { start, end });
        }
        return Decision::Wait { until: at, ari: true };
    }
    // 7. The configured rule.
    let (at, before) = lifetime_time(i.renew_before, c);
    if now >= at {
        return Decision::Renew(if before {
            Reason::RenewBefore { at }
        } else {
            Reason::Lifetime { at, fraction: lifetime::renewal_fraction(c.not_before, c.not_after) }
        });
    }
    Decision::Wait { until: at, ari: false }
}

#[cfg(test)]
mod tests;
