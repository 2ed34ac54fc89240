//! The real `certvigil run` daemon as systemd runs it, and its branches (shutdown during a
//! scan, HTTP limits).
//!
//! One test binary (a module per former test file); the shared helpers are the modules of
//! `tests/` beside this folder, the loopback HTTP server among them (`tests/common/http.rs`).

// Helpers beside the tests unwrap like the tests do: a failure is the test's failure.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

#[path = "../acme_support/mod.rs"]
mod acme_support;
#[path = "../alerting/mod.rs"]
mod alerting;
mod cluster;
mod daemon;
mod daemon_branches;
mod metrics_v4;
mod postgres;
mod status_page;
