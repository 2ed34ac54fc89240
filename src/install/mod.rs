//! Putting renewed certificates where their users read them.

pub mod files;
pub mod kubernetes;
