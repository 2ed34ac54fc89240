//! Obtaining certificates: the ACME issuer and how it proves control of identifiers. When to
//! renew is decided in `renewal`.

pub mod account;
pub mod acme;
pub mod challenge;
pub mod dns;
pub mod keys;
pub mod nonce;
