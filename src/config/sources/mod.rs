//! YAML types and validation of the source kinds beyond files, one file per kind.

pub mod aws;
pub mod kubernetes;
pub mod pkcs11;
pub mod tls;
pub mod vault;
