//! certvigil: certificate lifecycle management. Inventories certificates and keys from files,
//! vaults, HSMs, clusters and endpoints, tracks their expiry and revocation, renews through
//! ACME, and tells the right people once, with what to do. State lives in an embedded SQLite
//! store.
//!
//! The modules are layers (bottom to top): `model` (the shared vocabulary); `config` (YAML
//! types and pure validation); `x509` and `policy` (pure: parsing, signature verification, the
//! chain of checks); `store` (every SQL statement); `net` (the crypto provider, the Kubernetes
//! connection); the edges `sources`, `revocation` and `notify`; the actions `install`, `issuers`
//! and `renewal`; `app` (one function per use case, shared by CLI and daemon); `daemon`. A
//! module uses the layers below it; `tests/architecture.rs` holds the map as code.

pub mod app;
pub mod config;
pub mod daemon;
pub mod install;
pub mod issuers;
pub mod model;
pub mod net;
pub mod notify;
pub mod policy;
pub mod renewal;
pub mod revocation;
pub mod sources;
pub mod store;
pub mod x509;
