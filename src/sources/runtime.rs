//! Where a source runs its async I/O (HTTP, the Kubernetes API). The scan calls `list` and
//! `fetch` from plain threads, so a source blocks on a future: on the runtime of whoever built
//! it when that is a multi-thread one (the daemon builds sources in its blocking pool, so their
//! requests share its workers and connection drivers), else on a small runtime of its own (the
//! CLI has none; a current-thread runtime's one thread is the one the scan blocks, and would
//! never drive the I/O).

use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

/// A runtime to block on: the caller's (`own` is `None`), or one owned by the source.
pub struct Exec {
    handle: Handle,
    own: Option<Runtime>,
}

/// The runtime of the calling thread, when a source may share it (see the module's comment).
pub fn caller() -> Option<Handle> {
    Handle::try_current().ok().filter(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread)
}

impl Exec {
    /// The calling thread's runtime when it can be shared, else a new one whose two worker
    /// threads are called `name`.
    pub fn new(name: &str) -> std::io::Result<Exec> {
        Exec::with(caller(), name)
    }

    /// `shared` (a handle taken earlier with [`caller`]), else a new runtime.
    pub fn with(shared: Option<Handle>, name: &str) -> std::io::Result<Exec> {
        match shared {
            Some(handle) => Ok(Exec { handle, own: None }),
            None => {
                let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name(name).enable_all().build()?;
                Ok(Exec { handle: rt.handle().clone(), own: Some(rt) })
            }
        }
    }

    /// Runs `f` to completion on this thread, its I/O driven by the runtime's workers. Not to be
    /// called from async code (as `Runtime::block_on`).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        match &self.own {
            Some(rt) => rt.block_on(f),
            None => self.handle.block_on(f),
        }
    }
}

impl Drop for Exec {
    fn drop(&mut self) {
        // Dropping a runtime inside an async context panics, and may block elsewhere; shutting it
        // down in the background does neither, wherever the source is dropped. A shared runtime
        // is its owner's to stop.
        if let Some(rt) = self.own.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// What a source does on a scan thread: a timer, a spawned task and a loopback connection.
    async fn io() -> usize {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(async move { listener.accept().await.map(|_| 1).unwrap_or(0) });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let _conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        tasks.join_next().await.and_then(Result::ok).unwrap_or(0)
    }

    #[test]
    fn a_multi_thread_caller_is_shared_from_its_blocking_pool() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let exec = rt.block_on(async { tokio::task::spawn_blocking(|| Exec::new("test")).await.unwrap().unwrap() });
        assert!(exec.own.is_none(), "the caller's runtime is used");
        // The scan's threads have no runtime of their own.
        let got = std::thread::scope(|s| s.spawn(|| exec.block_on(io())).join().unwrap());
        assert_eq!(got, 1);
    }

    #[test]
    fn without_a_shareable_runtime_the_source_has_its_own() {
        assert!(Exec::new("test").unwrap().own.is_some(), "no runtime at all");
        let current = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let exec = current.block_on(async { Exec::new("test").unwrap() });
        assert!(exec.own.is_some(), "a current-thread runtime is not shared");
        let got = std::thread::scope(|s| s.spawn(|| exec.block_on(io())).join().unwrap());
        assert_eq!(got, 1);
        // Dropped inside async code: no panic.
        current.block_on(async move { drop(exec) });
    }
}
