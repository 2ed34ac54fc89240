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

/// A secret reference written in a configuration file, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretUse {
    /// The key path (`daemon.token`, `sources[2].passwords[0]`) as errors print it.
    pub path: String,
    pub line: usize,
    pub col: usize,
    pub reference: SecretRef,
}

/// Every secret reference in a parsed configuration: each string value that is a whole
/// `${env:…}` or `${file:/…}` reference, wherever it is (a reference is never anything else,
/// so no field list can fall behind the configuration's keys). Aliases are followed once.
pub fn find_uses(doc: &super::yaml::Doc) -> Vec<SecretUse> {
    fn walk(doc: &super::yaml::Doc, n: &super::yaml::Node, path: &mut Vec<String>, out: &mut Vec<SecretUse>, depth: usize) {
        use super::yaml::Kind;
        if depth > 64 {
            return;
        }
        let n = doc.resolve(n);
        match &n.kind {
            Kind::Scalar { value, .. } => {
                if value.starts_with("${")
                    && let Ok(reference) = SecretRef::parse(value.trim())
                {
                    out.push(SecretUse { path: super::dotted(path), line: n.line, col: n.col, reference });
                }
            }
            Kind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(i.to_string());
                    walk(doc, item, path, out, depth + 1);
                    path.pop();
                }
            }
            Kind::Map(entries) => {
                for (k, v) in entries {
                    if let Kind::Scalar { value, .. } = &k.kind {
                        path.push(value.clone());
                        walk(doc, v, path, out, depth + 1);
                        path.pop();
                    }
                }
            }
            Kind::Alias(_) => {}
        }
    }
    let mut out = Vec::new();
    if let Some(root) = &doc.root {
        walk(doc, root, &mut Vec::new(), &mut out, 0);
    }
    out
}

/// The keys whose secret is an API token: at least this many characters once trimmed.
pub const TOKEN_KEYS: [&str; 2] = ["daemon.token", "daemon.viewer_token"];
pub const MIN_TOKEN_CHARS: usize = 16;

/// What resolving one reference found wrong: an error stops `run` and fails `config
/// validate`; a warning is printed and nothing stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    Error(String),
    Warning(String),
}

/// Resolves `u` the way the daemon will — the variable set and not empty, the file a regular
/// file within the size limit that this user can read — and checks what a secret's file
/// mode should be: writable by every user is an error (anyone can replace the secret), readable
/// by every user a warning. API tokens must be long enough. The value is dropped at once and
/// never part of a message.
pub fn check_use(u: &SecretUse) -> Vec<Trouble> {
    let mut out = Vec::new();
    match u.reference.resolve() {
        Err(e) => out.push(Trouble::Error(e.to_string())),
        Ok(v) => {
            if v.expose().trim().is_empty() {
                out.push(Trouble::Error(format!("{} is empty", u.reference)));
            } else if TOKEN_KEYS.contains(&u.path.as_str()) && v.expose().trim().chars().count() < MIN_TOKEN_CHARS {
                out.push(Trouble::Error(format!("the token in {} is shorter than {MIN_TOKEN_CHARS} characters", u.reference)));
            }
        }
    }
    if let SecretRef::File(p) = &u.reference
        && out.is_empty()
        && let Ok(meta) = std::fs::metadata(p)
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if !meta.is_file() {
            out.push(Trouble::Error(format!("{} is not a regular file", p.display())));
        } else if mode & 0o002 != 0 {
            out.push(Trouble::Error(format!("{} is writable by every user (mode {mode:04o}): chmod o-w it", p.display())));
        } else if mode & 0o004 != 0 {
            out.push(Trouble::Warning(format!("{} is readable by every user (mode {mode:04o}): chmod 0600 or 0640 it", p.display())));
        }
    }
    out
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
