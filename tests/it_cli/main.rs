//! The real `certvigil` binary as an operator runs it, and every container format it reads.
//!
//! One test binary (a module per former test file); the shared helpers are the modules of
//! `tests/` beside this folder, the loopback HTTP server among them (`tests/common/http.rs`).

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod first_admin;
mod formats;
mod owners;
mod store_migrate;
