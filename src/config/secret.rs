//! Secret references: `${env:NAME}` or `${file:/absolute/path}`. Secrets are never written
//! inline in a configuration file, never logged, and resolved only when needed.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(std::path::PathBuf),
}

/// The resolved value; `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(n) => write!(f, "${{env:{n}}}"),
            SecretRef::File(p) => write!(f, "${{file:{}}}", p.display()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    #[error("cannot read secret file {path}: {reason}")]
    File { path: String, reason: String },
}

/// Largest secret file read (a password, a token).
const MAX_SECRET_FILE: u64 = 64 * 1024;

impl SecretRef {
    /// Parses a reference. The error says what is accepted and never echoes the input, which
    /// may be a secret written inline by mistake.
    pub fn parse(s: &str) -> Result<Self, String> {
        let inner = s.strip_prefix("${").and_then(|r| r.strip_suffix('}'));
        match inner.and_then(|i| i.split_once(':')) {
            Some(("env", name))
                if !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && !name.as_bytes()[0].is_ascii_digit() =>
            {
                Ok(SecretRef::Env(name.to_string()))
            }
            Some(("file", path)) if path.starts_with('/') => Ok(SecretRef::File(path.into())),
            Some(("file", _)) => Err("a ${file:…} secret reference needs an absolute path".into()),
            _ => Err("secrets are not written inline: use ${env:NAME} or ${file:/absolute/path}".into()),
        }
    }

    /// Reads the secret now. A file's trailing newline is not part of the secret.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Env(n) => std::env::var(n).map(Secret).map_err(|_| SecretError::EnvMissing(n.clone())),
            SecretRef::File(p) => {
                let err = |reason: String| SecretError::File { path: p.display().to_string(), reason };
                let meta = std::fs::metadata(p).map_err(|e| err(e.to_string()))?;
                if meta.len() > MAX_SECRET_FILE {
                    return Err(err(format!("larger than {MAX_SECRET_FILE} bytes")));
                }
                let s = std::fs::read_to_string(p).map_err(|e| err(e.to_string()))?;
                Ok(Secret(s.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&s).to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        assert_eq!(SecretRef::parse("${env:P12_PASS}"), Ok(SecretRef::Env("P12_PASS".into())));
        assert_eq!(SecretRef::parse("${file:/run/secrets/p}"), Ok(SecretRef::File("/run/secrets/p".into())));
        let inline = SecretRef::parse("hunter2").unwrap_err();
        assert!(!inline.contains("hunter2"));
        assert!(SecretRef::parse("${file:relative}").is_err());
        assert!(SecretRef::parse("${env:1BAD}").is_err());
        assert!(SecretRef::parse("${vault:x}").is_err());
    }

    #[test]
    fn file_secret_strips_newline_and_debug_hides_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\n").unwrap();
        let s = SecretRef::File(p).resolve().unwrap();
        assert_eq!(s.expose(), "s3cret");
        assert!(!format!("{s:?}").contains("s3cret"));
        assert!(matches!(SecretRef::Env("CERTVIGIL_SURELY_UNSET_VAR".into()).resolve(), Err(SecretError::EnvMissing(_))));
    }
}
