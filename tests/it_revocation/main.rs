//! Revocation against a real `openssl ca` PKI served on loopback: the library's checker and
//! the `certvigil` binary and daemon.
//!
//! One test binary (a module per former test file); the shared helpers are the modules of
//! `tests/` beside this folder, the loopback HTTP server among them (`tests/common/http.rs`).

#[path = "../alerting/mod.rs"]
mod alerting;
#[path = "../common/mod.rs"]
mod common;
#[path = "../pki/mod.rs"]
mod pki;

mod ari_watch;
mod revocation;
mod revocation_cli;
