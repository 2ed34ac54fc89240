//! The real `certvigil run` daemon as systemd runs it, and its branches (shutdown during a
//! scan, HTTP limits).
//!
//! One test binary (a module per former test file); the shared helpers are the modules of
//! `tests/` beside this folder, the loopback HTTP server among them (`tests/common/http.rs`).

#[path = "../common/mod.rs"]
mod common;

mod daemon;
mod daemon_branches;
mod postgres;
mod status_page;
