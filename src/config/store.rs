//! `store:`: where the state lives — a SQLite file (the default), or a PostgreSQL database that
//! several daemons share.

use super::*;

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// SQLite database file. Relative paths are relative to this configuration file. Default:
    /// `$STATE_DIRECTORY/certvigil.db` under systemd, else
    /// `$XDG_STATE_HOME/certvigil/certvigil.db` (`~/.local/state/certvigil/certvigil.db`).
    #[serde(default)]
    pub path: Option<String>,
    /// A PostgreSQL database instead of the SQLite file, for several daemons on one state:
    /// `postgres://user@host:5432/certvigil?sslmode=require`. No password in the URL: use
    /// `password`. TLS is used unless the URL says `sslmode=disable`, and the server's
    /// certificate is then always verified (against `ca_file`, else the system's roots) and must
    /// name the host.
    #[serde(default)]
    pub url: Option<String>,
    /// The database password, as `${env:NAME}` or `${file:/absolute/path}`.
    #[serde(default)]
    pub password: Option<String>,
    /// PEM file of the CA that signs the PostgreSQL server's certificate. Relative to this
    /// configuration file.
    #[serde(default)]
    pub ca_file: Option<String>,
}

/// A PostgreSQL store as configured: the password still a reference, resolved when the store
/// is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresSpec {
    pub url: String,
    pub password: Option<SecretRef>,
    pub ca_file: Option<PathBuf>,
}

impl PostgresSpec {
    /// The target with its password read now.
    pub fn resolve(&self) -> Result<crate::model::store_location::PostgresTarget, secret::SecretError> {
        let password = match &self.password {
            Some(r) => Some(r.resolve()?.expose().to_string()),
            None => None,
        };
        Ok(crate::model::store_location::PostgresTarget { url: self.url.clone(), password, ca_file: self.ca_file.clone() })
    }
}

/// Checks `store:`; the PostgreSQL database when one is configured.
pub(super) fn validate(s: &StoreConfig, base: &Path, errs: &mut Vec<PathedError>) -> Option<PostgresSpec> {
    let at = |field: &str| vec!["store".to_string(), field.to_string()];
    if s.path.as_deref() == Some("") {
        errs.push((at("path"), "must not be empty".into()));
    }
    let Some(url) = s.url.as_deref() else {
        for (field, set) in [("password", s.password.is_some()), ("ca_file", s.ca_file.is_some())] {
            if set {
                errs.push((at(field), "belongs to a PostgreSQL store: set store.url too".into()));
            }
        }
        return None;
    };
    if s.path.is_some() {
        errs.push((at("url"), "a store is a SQLite file (path) or a PostgreSQL database (url), not both".into()));
    }
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        errs.push((at("url"), "must be a postgres:// (or postgresql://) URL".into()));
        return None;
    }
    if crate::model::store_location::redact_url(url) != url {
        // Never echo the URL: it holds the secret.
        errs.push((
            at("url"),
            "holds a password: secrets are not written inline, put it in store.password as ${env:NAME} or ${file:/absolute/path}".into(),
        ));
        return None;
    }
    let password = match s.password.as_deref().map(SecretRef::parse) {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err(m)) => {
            errs.push((at("password"), m));
            None
        }
    };
    let ca_file = match s.ca_file.as_deref() {
        Some("") => {
            errs.push((at("ca_file"), "must not be empty".into()));
            None
        }
        Some(f) => Some(base.join(f)),
        None => None,
    };
    Some(PostgresSpec { url: url.to_string(), password, ca_file })
}
