//! Status-page sign-ins: a browser posts the daemon's token (or the read-only viewer token)
//! once and gets a random session id in an HttpOnly, SameSite=Strict cookie. Sessions live in
//! memory only (a restart signs everyone out), expire after `daemon.session_lifetime`, are
//! bounded in number, and end when the token they signed in with changes (a reload that rotates
//! the token signs its sessions out). Each session has its own CSRF token for the page's forms.

use crate::model::UnixTime;
use std::collections::HashMap;
use std::sync::Mutex;

/// Sessions held at once; signing in past this drops the one closest to expiry.
pub const MAX_SESSIONS: usize = 1024;
/// Failed sign-ins allowed per [`THROTTLE_WINDOW`] seconds before sign-in answers 429.
pub const MAX_FAILURES: u32 = 10;
pub const THROTTLE_WINDOW: i64 = 60;
/// The cookie's name.
pub const COOKIE: &str = "certvigil_session";

/// What a session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Signed in with `daemon.token`: may acknowledge and silence.
    Operator,
    /// Signed in with `daemon.viewer_token`: reads only.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub role: Role,
    pub csrf: String,
    pub expires_at: UnixTime,
    /// SHA-256 of the token signed in with: the session ends when that token is no longer
    /// the configured one.
    pub token_digest: [u8; 32],
}

/// Shared by the HTTP handlers.
#[derive(Debug, Default)]
pub struct Ui {
    sessions: Mutex<HashMap<String, Session>>,
    /// (window start, failures in it).
    failures: Mutex<(UnixTime, u32)>,
}

/// 32 random bytes as hex (the system's CSPRNG through ring).
pub fn random_token() -> Option<String> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut b).ok()?;
    Some(hex::encode(b))
}

pub fn digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl Ui {
    /// A new session; `None` only when the system has no randomness to give.
    pub fn sign_in(&self, role: Role, token: &str, now: UnixTime, lifetime: i64) -> Option<(String, Session)> {
        let id = random_token()?;
        let session = Session { role, csrf: random_token()?, expires_at: now + lifetime, token_digest: digest(token) };
        let mut all = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|_, s| s.expires_at > now);
        if all.len() >= MAX_SESSIONS
            && let Some(oldest) = all.iter().min_by_key(|(_, s)| s.expires_at).map(|(k, _)| k.clone())
        {
            all.remove(&oldest);
        }
        all.insert(id.clone(), session.clone());
        Some((id, session))
    }

    /// The live session with this id, if its token is still `current` (the role's token now).
    pub fn session(&self, id: &str, now: UnixTime, current: impl Fn(Role) -> Option<[u8; 32]>) -> Option<Session> {
        let mut all = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let s = all.get(id)?.clone();
        if s.expires_at <= now || current(s.role) != Some(s.token_digest) {
            all.remove(id);
            return None;
        }
        Some(s)
    }

    pub fn sign_out(&self, id: &str) {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// Counts a failed sign-in; false when the window's budget is spent (answer 429).
    pub fn failed(&self, now: UnixTime) -> bool {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if now - f.0 >= THROTTLE_WINDOW {
            *f = (now, 0);
        }
        f.1 += 1;
        f.1 <= MAX_FAILURES
    }

    /// Whether sign-in is currently refused for too many failures.
    pub fn throttled(&self, now: UnixTime) -> bool {
        let f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        now - f.0 < THROTTLE_WINDOW && f.1 >= MAX_FAILURES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_end_with_their_token_and_stay_bounded() {
        let ui = Ui::default();
        let token = "0123456789abcdef-token";
        let (id, s) = ui.sign_in(Role::Operator, token, 1000, 60).unwrap();
        assert_eq!((id.len(), s.csrf.len()), (64, 64));
        assert_ne!(id, s.csrf);
        let current = |_: Role| Some(digest(token));
        assert!(ui.session(&id, 1059, current).is_some());
        assert!(ui.session(&id, 1060, current).is_none(), "expired at its lifetime");
        let (id, _) = ui.sign_in(Role::Operator, token, 2000, 60).unwrap();
        assert!(ui.session(&id, 2001, |_| Some(digest("another-token-entirely"))).is_none(), "rotated token");
        assert!(ui.session(&id, 2001, current).is_none(), "and it stays gone");
        let (id, _) = ui.sign_in(Role::Viewer, token, 3000, 60).unwrap();
        assert!(ui.session(&id, 3001, |r| (r == Role::Operator).then(|| digest(token))).is_none(), "viewer token removed");
        for i in 0..(MAX_SESSIONS + 10) {
            ui.sign_in(Role::Viewer, token, 4000, 60 + i as i64).unwrap();
        }
        assert!(ui.sessions.lock().unwrap().len() <= MAX_SESSIONS);
        let (id, _) = ui.sign_in(Role::Viewer, token, 5000, 60).unwrap();
        ui.sign_out(&id);
        assert!(ui.session(&id, 5001, current).is_none());
    }

    #[test]
    fn failed_sign_ins_are_throttled_per_window() {
        let ui = Ui::default();
        for _ in 0..MAX_FAILURES {
            assert!(ui.failed(100));
        }
        assert!(ui.throttled(100));
        assert!(!ui.failed(110));
        assert!(!ui.throttled(100 + THROTTLE_WINDOW));
        assert!(ui.failed(100 + THROTTLE_WINDOW));
    }
}
