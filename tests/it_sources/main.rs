//! The sources against real components: moto (AWS), the Kubernetes API fixture, SoftHSM2
//! (PKCS#11), TLS endpoints, OpenBao (Vault), one certificate in three places, and STARTTLS
//! dialogues with Dovecot and slapd.
//!
//! One test binary (a module per former test file); the shared helpers are the modules of
//! `tests/` beside this folder, the loopback HTTP server among them (`tests/common/http.rs`).

#[path = "../alerting/mod.rs"]
mod alerting;
#[path = "../common/mod.rs"]
mod common;
#[path = "../kube/mod.rs"]
mod kube;

mod source_aws;
mod source_kubernetes;
mod source_pkcs11;
mod source_tls;
mod source_vault;
mod sources_dedup;
mod starttls_servers;
mod trust_material;
