//! certvigil: certificate lifecycle management. Inventories certificates and keys from files
//! (and, as sources land, vaults, HSMs, clusters and endpoints), tracks their expiry, and keeps
//! the state in an embedded SQLite store.
//!
//! Pure modules (`x509`, `config` validation, `model`) take their inputs, including the time,
//! as arguments; `sources`, `store` and `inventory` touch the world.

pub mod config;
pub mod daemon;
pub mod evaluate;
pub mod install;
pub mod inventory;
pub mod issuers;
pub mod jobs;
pub mod model;
pub mod net;
pub mod notify;
pub mod policy;
pub mod renewal;
pub mod revocation;
pub mod sources;
pub mod store;
pub mod x509;
