//! `sources:`: the source kinds (YAML types and validation), one file per kind, and what every
//! kind shares (name and tags).

pub mod aws;
pub mod files;
pub mod kubernetes;
pub mod pkcs11;
pub mod tls;
pub mod vault;

use super::{DurationSpec, PathedError};
use files::{FilesSource, FilesSpec};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A source's per-request timeout: between 100 ms and `max`. An invalid value is reported at
/// `path` and replaced by 10 s so that validation can go on.
pub fn timeout(spec: &DurationSpec, max: Duration, path: Vec<String>, errs: &mut Vec<PathedError>) -> Duration {
    let fallback = Duration::from_secs(10);
    match spec.duration() {
        Ok(d) if d >= Duration::from_millis(100) && d <= max => d,
        Ok(_) => {
            let max = match max.as_secs() {
                s if s % 60 == 0 => format!("{}m", s / 60),
                s => format!("{s}s"),
            };
            errs.push((path, format!("must be between 100ms and {max}")));
            fallback
        }
        Err(m) => {
            errs.push((path, m));
            fallback
        }
    }
}

/// One place to look for certificates; `kind` selects the source type.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceConfig {
    /// Certificate files on the local file system.
    Files(FilesSource),
    /// OpenBao / Vault: PKI and KV v2 mounts.
    Vault(vault::VaultSource),
    /// A PKCS#11 token (HSM).
    Pkcs11(pkcs11::Pkcs11Source),
    /// AWS Certificate Manager and Secrets Manager.
    Aws(aws::AwsSource),
    /// A Kubernetes cluster: Secrets, ConfigMaps, webhook CA bundles.
    Kubernetes(kubernetes::KubernetesSource),
    /// TLS endpoints.
    Tls(tls::TlsSource),
}

impl SourceConfig {
    fn common(&self) -> &dyn SourceCommon {
        match self {
            SourceConfig::Files(f) => f,
            SourceConfig::Vault(v) => v,
            SourceConfig::Pkcs11(p) => p,
            SourceConfig::Aws(a) => a,
            SourceConfig::Kubernetes(k) => k,
            SourceConfig::Tls(t) => t,
        }
    }

    pub fn name(&self) -> &str {
        self.common().name()
    }

    pub fn tags(&self) -> &[String] {
        self.common().tags()
    }
}

// Built once per configuration load; the size difference between kinds does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum SourceSpec {
    Files(FilesSpec),
    Vault(vault::VaultSpec),
    Pkcs11(pkcs11::Pkcs11Spec),
    Aws(aws::AwsSpec),
    Kubernetes(kubernetes::KubernetesSpec),
    Tls(tls::TlsSpec),
}

impl SourceSpec {
    fn common(&self) -> &dyn SourceCommon {
        match self {
            SourceSpec::Files(f) => f,
            SourceSpec::Vault(v) => v,
            SourceSpec::Pkcs11(p) => p,
            SourceSpec::Aws(a) => a,
            SourceSpec::Kubernetes(k) => k,
            SourceSpec::Tls(t) => t,
        }
    }

    pub fn name(&self) -> &str {
        self.common().name()
    }

    pub fn kind(&self) -> &'static str {
        match self {
            SourceSpec::Files(_) => "files",
            SourceSpec::Vault(_) => "vault",
            SourceSpec::Pkcs11(_) => "pkcs11",
            SourceSpec::Aws(_) => "aws",
            SourceSpec::Kubernetes(_) => "kubernetes",
            SourceSpec::Tls(_) => "tls",
        }
    }

    pub fn tags(&self) -> &[String] {
        self.common().tags()
    }
}

/// What every source kind has, written and validated alike: its name and its tags.
pub trait SourceCommon {
    fn name(&self) -> &str;
    fn tags(&self) -> &[String];
}

macro_rules! source_common {
    ($($t:ty),*) => {$(
        impl SourceCommon for $t {
            fn name(&self) -> &str {
                &self.name
            }
            fn tags(&self) -> &[String] {
                &self.tags
            }
        }
    )*};
}

source_common!(
    FilesSource,
    vault::VaultSource,
    pkcs11::Pkcs11Source,
    aws::AwsSource,
    kubernetes::KubernetesSource,
    tls::TlsSource,
    FilesSpec,
    vault::VaultSpec,
    pkcs11::Pkcs11Spec,
    aws::AwsSpec,
    kubernetes::KubernetesSpec,
    tls::TlsSpec
);
