//! The fence a leader's sending and installing writes pass: with several daemons on one store,
//! only the holder of the live leader lease may send a notification or install a certificate.
//! The lease keeper ([`Fence::grant`]) says until when, on this machine's monotonic clock,
//! which keeps counting while the process is stopped: a daemon paused past its lease finds the
//! fence shut when it wakes, before any write. The writes also check the lease's token in the
//! store, which catches what the local clock cannot (a lease taken over early).
//!
//! A single daemon on its own store has an open fence: nothing to check.

use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The name of the leader's lease in the store.
pub const LEADER_LEASE: &str = "leader";

#[derive(Clone, Default)]
pub struct Fence(Option<Arc<Mutex<Option<Grant>>>>);

#[derive(Clone, Copy, Debug)]
struct Grant {
    token: i64,
    until: Instant,
}

/// This daemon does not hold the leader lease (any more).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this daemon is not the leader (any more): the write is left to the leader")]
pub struct NotLeader;

impl Fence {
    /// Always open: one daemon, nothing to fence.
    pub fn open() -> Fence {
        Fence(None)
    }

    /// Shut until [`Fence::grant`] opens it.
    pub fn leased() -> Fence {
        Fence(Some(Arc::new(Mutex::new(None))))
    }

    /// Whether writes are fenced at all (several daemons).
    pub fn is_shared(&self) -> bool {
        self.0.is_some()
    }

    /// Opens the fence for lease token `token` until `until`.
    pub fn grant(&self, token: i64, until: Instant) {
        if let Some(m) = &self.0 {
            *m.lock().unwrap_or_else(|p| p.into_inner()) = Some(Grant { token, until });
        }
    }

    /// Shuts the fence (the lease was lost or could not be renewed).
    pub fn revoke(&self) {
        if let Some(m) = &self.0 {
            *m.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }

    /// The token to check in the store: `Ok(None)` for an open fence, `Ok(Some(token))` while
    /// the grant lasts, [`NotLeader`] otherwise.
    pub fn token(&self) -> Result<Option<i64>, NotLeader> {
        match &self.0 {
            None => Ok(None),
            Some(m) => match *m.lock().unwrap_or_else(|p| p.into_inner()) {
                Some(g) if Instant::now() < g.until => Ok(Some(g.token)),
                _ => Err(NotLeader),
            },
        }
    }

    /// Whether this daemon may do the leader's work now.
    pub fn is_leader(&self) -> bool {
        self.token().is_ok()
    }
}

impl std::fmt::Debug for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.token() {
            Ok(None) => f.write_str("Fence(open)"),
            Ok(Some(t)) => write!(f, "Fence(leader, token {t})"),
            Err(_) => f.write_str("Fence(shut)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_grant_lasts_until_its_deadline_and_no_longer() {
        assert_eq!(Fence::open().token(), Ok(None));
        let f = Fence::leased();
        assert_eq!(f.token(), Err(NotLeader), "shut until granted");
        f.grant(4, Instant::now() + Duration::from_secs(60));
        assert_eq!(f.token(), Ok(Some(4)));
        let copy = f.clone();
        copy.revoke();
        assert!(!f.is_leader(), "clones share the state");
        f.grant(5, Instant::now() + Duration::from_millis(30));
        assert!(f.is_leader());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(f.token(), Err(NotLeader), "lapsed without a renewal");
    }
}
