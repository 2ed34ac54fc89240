//! The systemd notification protocol (sd_notify(3)): datagrams of `KEY=value` lines sent to the
//! socket named by `$NOTIFY_SOCKET` — a path, or an abstract socket when it starts with `@`.
//! Outside systemd (no `$NOTIFY_SOCKET`) every call is a no-op. The watchdog interval comes from
//! `$WATCHDOG_USEC` (and `$WATCHDOG_PID`, which must be ours when set); pings go at half of it.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Variables a child process must not inherit.
pub const CHILD_ENV_REMOVE: &[&str] = &["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, Target)>,
    watchdog: Option<Duration>,
}

#[derive(Debug)]
enum Target {
    Path(std::path::PathBuf),
    Abstract(Vec<u8>),
}

impl Notifier {
    /// Reads the environment once. Child processes (hooks) must be started with
    /// [`CHILD_ENV_REMOVE`] removed, so they cannot talk to systemd in our name.
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty()).map(|s| {
            let bytes = std::os::unix::ffi::OsStrExt::as_bytes(s.as_os_str()).to_vec();
            match bytes.strip_prefix(b"@") {
                Some(name) => Target::Abstract(name.to_vec()),
                None => Target::Path(std::path::PathBuf::from(s)),
            }
        });
        let ours = std::env::var("WATCHDOG_PID").ok().map(|p| p.trim().parse::<u32>().ok() == Some(std::process::id())).unwrap_or(true);
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|u| *u > 0 && ours)
            .map(|u| Duration::from_micros(u / 2));
        let socket = target.and_then(|t| match UnixDatagram::unbound() {
            Ok(s) => Some((s, t)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot create the systemd notification socket");
                None
            }
        });
        Notifier { socket, watchdog }
    }

    /// A notifier that sends nothing (outside systemd, in tests).
    pub fn disabled() -> Notifier {
        Notifier { socket: None, watchdog: None }
    }

    /// How often to send `WATCHDOG=1`: half the configured watchdog timeout.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Sends one message (several `KEY=value` lines). Failures are logged, never fatal: the
    /// service keeps working if the manager is gone.
    pub fn notify(&self, message: &str) {
        let Some((sock, target)) = &self.socket else { return };
        let sent = match target {
            Target::Path(p) => sock.send_to(message.as_bytes(), p),
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name).and_then(|a| sock.send_to_addr(message.as_bytes(), &a))
            }
        };
        if let Err(e) = sent {
            tracing::debug!(error = %e, "systemd notification not delivered");
        }
    }

    pub fn ready(&self, status: &str) {
        self.notify(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    pub fn status(&self, status: &str) {
        self.notify(&format!("STATUS={}", one_line(status)));
    }

    pub fn watchdog(&self) {
        self.notify("WATCHDOG=1");
    }

    pub fn reloading(&self) {
        self.notify("RELOADING=1\nSTATUS=reloading the configuration");
    }

    pub fn stopping(&self) {
        self.notify("STOPPING=1\nSTATUS=stopping: finishing the running jobs");
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier { socket: Some((UnixDatagram::unbound().unwrap(), Target::Path(path))), watchdog: None };
        n.ready("up\nnow");
        let mut buf = [0u8; 256];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=up now");
    }

    #[test]
    fn abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("certvigil-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        let n = Notifier { socket: Some((UnixDatagram::unbound().unwrap(), Target::Abstract(name.into_bytes()))), watchdog: None };
        n.watchdog();
        let mut buf = [0u8; 64];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
    }
}
