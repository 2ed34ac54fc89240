//! Putting renewed certificates where their users read them.

pub mod files;
pub mod hooks;
pub mod kubernetes;
