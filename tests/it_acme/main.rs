//! ACME renewal and installing: `certvigil renew` against a real Pebble and OpenBao's
//! ACME, order resumption, challenges and install targets, the daemon's renew job, and the
//! Kubernetes Secret install target against the fixture API server.
//!
//! One test binary (a module per former test file); the shared helpers are the modules of
//! `tests/` beside this folder, the loopback HTTP server among them (`tests/common/http.rs`).

#[path = "../acme_support/mod.rs"]
mod acme_support;
#[path = "../common/mod.rs"]
mod common;
#[path = "../kube/mod.rs"]
mod kube;

mod acme;
mod acme_challenges;
mod acme_daemon;
mod acme_kubernetes;
mod acme_openbao;
mod acme_resume;
mod first_admin;
mod install_kubernetes;
