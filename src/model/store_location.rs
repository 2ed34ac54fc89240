//! Where the state lives: a SQLite file (the default) or a PostgreSQL database shared by several
//! daemons.

use std::path::PathBuf;

/// Where the store is.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    File(PathBuf),
    Postgres(PostgresTarget),
}

/// The store and the directory for the files kept beside it (ACME accounts, the revocation
/// cache's files): the SQLite file's directory, or the state directory for PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePlace {
    pub store: StoreLocation,
    pub state_dir: PathBuf,
}

/// A PostgreSQL database: its URL, the password (resolved from its secret reference, never
/// shown) and the CA that signs the server's certificate when TLS is used.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresTarget {
    pub url: String,
    pub password: Option<String>,
    pub ca_file: Option<PathBuf>,
}

impl PostgresTarget {
    /// The URL with any password in it replaced by `***`, for messages and logs.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

/// `scheme://user:secret@host/…` as `scheme://user:***@host/…`; a `password=` query
/// parameter is hidden the same way.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        let authority_end = out[rest..].find(['/', '?']).map(|i| rest + i).unwrap_or(out.len());
        if let Some(at) = out[rest..authority_end].rfind('@').map(|i| rest + i)
            && let Some(colon) = out[rest..at].find(':').map(|i| rest + i)
        {
            out.replace_range(colon + 1..at, "***");
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let hidden: Vec<String> = query
            .split('&')
            .map(|kv| if kv.to_ascii_lowercase().starts_with("password=") { "password=***".to_string() } else { kv.to_string() })
            .collect();
        out = format!("{head}{}", hidden.join("&"));
    }
    out
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::File(p) => write!(f, "{}", p.display()),
            StoreLocation::Postgres(t) => f.write_str(&t.redacted_url()),
        }
    }
}

impl std::fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreLocation({self})")
    }
}

impl std::fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTarget")
            .field("url", &self.redacted_url())
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(redact_url("postgres://cv:s3cret@db.internal:5432/cv"), "postgres://cv:***@db.internal:5432/cv");
        assert_eq!(
            redact_url("postgres://cv@127.0.0.1/cv?sslmode=require&password=x"),
            "postgres://cv@127.0.0.1/cv?sslmode=require&password=***"
        );
        assert_eq!(redact_url("postgres://127.0.0.1/cv"), "postgres://127.0.0.1/cv");
        assert_eq!(redact_url("postgresql://a:b:c@h/d"), "postgresql://a:***@h/d");
        let t = PostgresTarget { url: "postgres://u:pw@h/d".into(), password: Some("hunter2".into()), ca_file: None };
        let shown = format!("{t:?} {}", StoreLocation::Postgres(t.clone()));
        assert!(!shown.contains("hunter2") && !shown.contains(":pw@"), "{shown}");
    }
}
