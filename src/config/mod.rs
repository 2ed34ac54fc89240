//! Configuration: YAML types (what an admin writes), loading with positioned errors, and pure
//! validation into [`Settings`] (what the program uses).
//!
//! Loading reports every error at once — syntax, unknown keys, wrong types (checked against the
//! JSON Schema generated from these types), and semantic checks — each as
//! `file:line:column: key.path: message`.

pub mod schema_check;
pub mod secret;
pub mod yaml;

use schemars::JsonSchema;
use secret::SecretRef;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// Largest configuration file accepted.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The root of `certvigil.yaml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where certvigil keeps its state.
    #[serde(default, deserialize_with = "null_is_default")]
    pub store: StoreConfig,
    /// When a certificate counts as expiring.
    #[serde(default, deserialize_with = "null_is_default")]
    pub thresholds: Thresholds,
    /// Where certificates are looked for.
    #[serde(default, deserialize_with = "null_is_default")]
    pub sources: Vec<SourceConfig>,
}

/// A section written with nothing under it (`store:` followed only by comments) means "all
/// defaults", as an admin who commented out every key expects.
fn null_is_default<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// SQLite database file. Relative paths are relative to this configuration file. Default:
    /// `$STATE_DIRECTORY/certvigil.db` under systemd, else
    /// `$XDG_STATE_HOME/certvigil/certvigil.db` (`~/.local/state/certvigil/certvigil.db`).
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Days before notAfter from which a certificate is `expiring` (warning).
    #[serde(default = "default_warning_days")]
    #[schemars(range(min = 1, max = 3650))]
    pub warning_days: u32,
    /// Days before notAfter from which an expiring certificate is critical.
    #[serde(default = "default_critical_days")]
    #[schemars(range(min = 0, max = 3650))]
    pub critical_days: u32,
}

fn default_warning_days() -> u32 {
    30
}
fn default_critical_days() -> u32 {
    7
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { warning_days: default_warning_days(), critical_days: default_critical_days() }
    }
}

/// One place to look for certificates; `kind` selects the source type.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceConfig {
    /// Certificate files on the local file system.
    Files(FilesSource),
}

/// A size in bytes: a whole number, or text with a unit (`512KiB`, `16MiB`, `1GiB`, `10MB`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ByteSize {
    Bytes(u64),
    Text(String),
}

impl ByteSize {
    pub fn bytes(&self) -> Result<u64, String> {
        match self {
            ByteSize::Bytes(b) => Ok(*b),
            ByteSize::Text(t) => parse_size(t),
        }
    }
}

pub fn parse_size(t: &str) -> Result<u64, String> {
    let t = t.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{t}` is not a size: expected a number and a unit such as 16MiB"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(format!("unknown size unit `{other}` (use B, KiB, MiB, GiB, KB, MB or GB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("`{t}` is too large"))
}

/// Certificate files: PEM, DER, PKCS#7, PKCS#12 and JKS, recognised by content.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilesSource {
    /// Unique name of this source (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Files, directories or glob patterns (`/etc/pki/**/*.pem`). Relative paths are relative
    /// to this configuration file.
    pub paths: Vec<String>,
    /// Descend into subdirectories of directory paths.
    #[serde(default = "yes")]
    pub recursive: bool,
    /// Follow symbolic links (each target is read once per scan, loops are skipped).
    #[serde(default = "yes")]
    pub follow_symlinks: bool,
    /// File name patterns to read (a pattern with `/` matches the whole path). Default: the
    /// usual certificate extensions. `["*"]` reads every file.
    #[serde(default = "default_include")]
    pub include: Vec<String>,
    /// Patterns to skip, same syntax as `include`; exclusion wins.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Labels attached to every certificate seen by this source (for `list --tag`, routing).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Passwords tried for PKCS#12 and JKS files, as `${env:NAME}` or `${file:/path}`; the
    /// empty password is always tried first.
    #[serde(default)]
    pub passwords: Vec<String>,
    /// Files larger than this are reported, not read.
    #[serde(default = "default_max_file_size")]
    pub max_file_size: ByteSize,
    /// Deepest directory level descended into below each path (unlimited when absent).
    #[serde(default)]
    pub max_depth: Option<u32>,
}

fn yes() -> bool {
    true
}

pub const DEFAULT_INCLUDE: &[&str] = &[
    "*.pem",
    "*.crt",
    "*.cer",
    "*.cert",
    "*.der",
    "*.p7b",
    "*.p7c",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.truststore",
    "*.ca-bundle",
];

fn default_include() -> Vec<String> {
    DEFAULT_INCLUDE.iter().map(|s| s.to_string()).collect()
}

fn default_max_file_size() -> ByteSize {
    ByteSize::Text("16MiB".into())
}

/// The JSON Schema of the configuration, as committed in `schema/config.schema.json`.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Config);
    serde_json::to_value(schema).unwrap_or_default()
}

/// One configuration problem, with its position when known (line 0 when not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    /// Dotted key path, `sources[0].paths`; empty for file-level problems.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every error found in one configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

fn dotted(path: &[String]) -> String {
    let mut s = String::new();
    for seg in path {
        if seg.parse::<usize>().is_ok() {
            s.push_str(&format!("[{seg}]"));
        } else {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(seg);
        }
    }
    s
}

/// The validated configuration the rest of the program uses.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the file came from (for reloads and messages); `None` for the built-in default.
    pub file: Option<PathBuf>,
    /// `None`: use the platform default state directory.
    pub store_path: Option<PathBuf>,
    pub warning_days: u32,
    pub critical_days: u32,
    pub sources: Vec<SourceSpec>,
}

#[derive(Debug, Clone)]
pub enum SourceSpec {
    Files(FilesSpec),
}

impl SourceSpec {
    pub fn name(&self) -> &str {
        match self {
            SourceSpec::Files(f) => &f.name,
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSpec::Files(_) => "files",
        }
    }
    pub fn tags(&self) -> &[String] {
        match self {
            SourceSpec::Files(f) => &f.tags,
        }
    }
}

/// A root to walk: a directory or file, optionally filtered by a glob over the full path.
#[derive(Debug, Clone)]
pub struct Root {
    pub base: PathBuf,
    pub glob: Option<globset::GlobMatcher>,
}

#[derive(Debug, Clone)]
pub struct FilesSpec {
    pub name: String,
    pub tags: Vec<String>,
    pub roots: Vec<Root>,
    pub recursive: bool,
    pub follow_symlinks: bool,
    /// Matched against file names and (for patterns with `/`) full paths.
    pub include: Matcher,
    pub exclude: Matcher,
    pub passwords: Vec<SecretRef>,
    pub max_file_size: u64,
    pub max_depth: Option<usize>,
}

/// Name patterns and path patterns, compiled.
#[derive(Debug, Clone)]
pub struct Matcher {
    names: globset::GlobSet,
    paths: globset::GlobSet,
    empty: bool,
}

impl Matcher {
    fn compile(patterns: &[String]) -> Result<Self, (usize, String)> {
        let mut names = globset::GlobSetBuilder::new();
        let mut paths = globset::GlobSetBuilder::new();
        for (i, p) in patterns.iter().enumerate() {
            let glob = globset::GlobBuilder::new(p).literal_separator(true).build().map_err(|e| (i, e.kind().to_string()))?;
            if p.contains('/') {
                paths.add(glob)
            } else {
                names.add(glob)
            };
        }
        let build = |b: globset::GlobSetBuilder| b.build().map_err(|e| (0, e.to_string()));
        Ok(Matcher { names: build(names)?, paths: build(paths)?, empty: patterns.is_empty() })
    }

    pub fn is_empty(&self) -> bool {
        self.empty
    }

    pub fn matches(&self, path: &Path) -> bool {
        path.file_name().is_some_and(|n| self.names.is_match(n)) || self.paths.is_match(path)
    }
}

/// Reads, checks and validates a configuration file.
pub fn load(path: &Path) -> Result<Settings, ConfigErrors> {
    let file = path.display().to_string();
    let fail = |message: String| ConfigErrors(vec![ConfigError { file: file.clone(), line: 0, col: 0, path: String::new(), message }]);
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(fail(format!("file is {} bytes; a configuration is at most {MAX_CONFIG_BYTES}", meta.len())));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| fail(format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to())))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut settings = parse_str(&text, &file, &base)?;
    settings.file = Some(path.to_path_buf());
    Ok(settings)
}

/// Parses and validates configuration text. `file` names it in errors; `base` anchors
/// relative paths.
pub fn parse_str(text: &str, file: &str, base: &Path) -> Result<Settings, ConfigErrors> {
    let at = |line: usize, col: usize, path: &[String], message: String| ConfigError {
        file: file.to_string(),
        line,
        col,
        path: dotted(path),
        message,
    };
    let doc = yaml::parse(text).map_err(|e| ConfigErrors(vec![at(e.line, e.col, &[], format!("YAML syntax: {}", e.message))]))?;
    let issues = schema_check::check(&doc, &json_schema());
    if !issues.is_empty() {
        return Err(ConfigErrors(issues.into_iter().map(|i| at(i.line, i.col, &i.path, i.message)).collect()));
    }
    let config: Config = if doc.root.is_none() {
        Config::default()
    } else {
        serde_saphyr::from_str(text).map_err(|e| ConfigErrors(vec![at(0, 0, &[], e.to_string())]))?
    };
    validate(&config, base).map_err(|errs| {
        ConfigErrors(
            errs.into_iter()
                .map(|(path, message)| {
                    let (line, col) = doc.locate(&path).map(|n| (n.line, n.col)).unwrap_or((0, 0));
                    at(line, col, &path, message)
                })
                .collect(),
        )
    })
}

type PathedError = (Vec<String>, String);

/// Pure semantic validation. Returns every problem with its key path.
pub fn validate(config: &Config, base: &Path) -> Result<Settings, Vec<PathedError>> {
    let mut errs: Vec<PathedError> = Vec::new();
    let p = |parts: &[&str]| parts.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let t = &config.thresholds;
    if t.warning_days == 0 {
        errs.push((p(&["thresholds", "warning_days"]), "must be at least 1".into()));
    }
    if t.critical_days > t.warning_days {
        errs.push((
            p(&["thresholds", "critical_days"]),
            format!("critical_days ({}) exceeds warning_days ({})", t.critical_days, t.warning_days),
        ));
    }
    let store_path = config.store.path.as_ref().map(|s| base.join(s));
    if config.store.path.as_deref() == Some("") {
        errs.push((p(&["store", "path"]), "must not be empty".into()));
    }
    let mut sources = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (i, src) in config.sources.iter().enumerate() {
        let idx = i.to_string();
        match src {
            SourceConfig::Files(f) => {
                let here = |field: &str| p(&["sources", &idx, field]);
                if f.name.is_empty() || !f.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
                    errs.push((here("name"), format!("`{}` is not a valid source name (letters, digits, -, _, .)", f.name)));
                } else if names.contains(&f.name.as_str()) {
                    errs.push((here("name"), format!("duplicate source name `{}`", f.name)));
                }
                names.push(&f.name);
                if f.paths.is_empty() {
                    errs.push((here("paths"), "at least one path is required".into()));
                }
                let mut roots = Vec::new();
                for (j, raw) in f.paths.iter().enumerate() {
                    let at = p(&["sources", &idx, "paths", &j.to_string()]);
                    match make_root(raw, base) {
                        Ok(r) => roots.push(r),
                        Err(m) => errs.push((at, m)),
                    }
                }
                let include = Matcher::compile(&f.include)
                    .map_err(|(j, m)| errs.push((p(&["sources", &idx, "include", &j.to_string()]), format!("bad pattern: {m}"))));
                let exclude = Matcher::compile(&f.exclude)
                    .map_err(|(j, m)| errs.push((p(&["sources", &idx, "exclude", &j.to_string()]), format!("bad pattern: {m}"))));
                let mut passwords = Vec::new();
                for (j, s) in f.passwords.iter().enumerate() {
                    match SecretRef::parse(s) {
                        Ok(r) => passwords.push(r),
                        Err(m) => errs.push((p(&["sources", &idx, "passwords", &j.to_string()]), m)),
                    }
                }
                let max_file_size = match f.max_file_size.bytes() {
                    Ok(0) => {
                        errs.push((here("max_file_size"), "must be more than 0".into()));
                        0
                    }
                    Ok(n) if n > 1 << 30 => {
                        errs.push((here("max_file_size"), "must be at most 1GiB".into()));
                        0
                    }
                    Ok(n) => n,
                    Err(m) => {
                        errs.push((here("max_file_size"), m));
                        0
                    }
                };
                for (j, tag) in f.tags.iter().enumerate() {
                    if tag.is_empty() || tag.contains(',') || tag.chars().any(char::is_whitespace) {
                        errs.push((
                            p(&["sources", &idx, "tags", &j.to_string()]),
                            format!("`{tag}` is not a valid tag (no spaces or commas)"),
                        ));
                    }
                }
                if let (Ok(include), Ok(exclude)) = (include, exclude) {
                    sources.push(SourceSpec::Files(FilesSpec {
                        name: f.name.clone(),
                        tags: f.tags.clone(),
                        roots,
                        recursive: f.recursive,
                        follow_symlinks: f.follow_symlinks,
                        include,
                        exclude,
                        passwords,
                        max_file_size,
                        max_depth: f.max_depth.map(|d| d as usize),
                    }));
                }
            }
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(Settings { file: None, store_path, warning_days: t.warning_days, critical_days: t.critical_days, sources })
}

/// A configured path: plain (file or directory) or a glob, split into the literal directory
/// prefix to walk and the pattern to match below it.
fn make_root(raw: &str, base: &Path) -> Result<Root, String> {
    if raw.is_empty() {
        return Err("empty path".into());
    }
    let full = base.join(raw);
    let is_glob = |s: &str| s.contains(['*', '?', '[', '{']);
    if !is_glob(raw) {
        return Ok(Root { base: full, glob: None });
    }
    let text = full.to_string_lossy().to_string();
    let mut prefix = PathBuf::new();
    for comp in full.components() {
        let s = comp.as_os_str().to_string_lossy();
        if is_glob(&s) {
            break;
        }
        prefix.push(comp);
    }
    let glob = globset::GlobBuilder::new(&text).literal_separator(true).build().map_err(|e| format!("bad glob: {}", e.kind()))?;
    Ok(Root { base: prefix, glob: Some(glob.compile_matcher()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        parse_str(text, "t.yaml", Path::new("/cfg")).unwrap_err().0.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn minimal_and_defaults() {
        let s = parse_str("sources:\n  - name: a\n    kind: files\n    paths: [certs]\n", "t.yaml", Path::new("/cfg")).unwrap();
        assert_eq!(s.warning_days, 30);
        assert_eq!(s.critical_days, 7);
        let SourceSpec::Files(f) = &s.sources[0];
        assert_eq!(f.roots[0].base, PathBuf::from("/cfg/certs"));
        assert!(f.include.matches(Path::new("/x/y.pem")));
        assert!(!f.include.matches(Path::new("/x/y.txt")));
        assert_eq!(f.max_file_size, 16 << 20);
        assert!(parse_str("", "t.yaml", Path::new("/")).unwrap().sources.is_empty());
    }

    #[test]
    fn reports_every_structural_error_with_position() {
        let e = errors(
            "thresholds:\n  warning_dayz: 5\n  critical_days: soon\nsources:\n  - name: a\n    kind: files\n    paths: [x]\n    recursve: true\n  - kind: s3\n    name: b\n",
        );
        assert_eq!(e.len(), 4, "{e:#?}");
        assert!(
            e[0].starts_with("t.yaml:2:3: thresholds.warning_dayz: unknown key `warning_dayz`; did you mean `warning_days`?"),
            "{e:#?}"
        );
        assert!(e[1].starts_with("t.yaml:3:18: thresholds.critical_days: expected a whole number, found `soon`"), "{e:#?}");
        assert!(e[2].starts_with("t.yaml:8:5: sources[0].recursve: unknown key"), "{e:#?}");
        assert!(e[3].starts_with("t.yaml:9:11: sources[1].kind: unknown kind `s3`"), "{e:#?}");
    }

    #[test]
    fn reports_every_semantic_error_with_position() {
        let e = errors(concat!(
            "thresholds: {warning_days: 5, critical_days: 9}\n",
            "sources:\n",
            "  - {name: a, kind: files, paths: [x], passwords: [hunter2]}\n",
            "  - {name: a, kind: files, paths: [], include: ['[z'], max_file_size: 12 parsecs}\n",
        ));
        assert!(e.iter().any(|m| m.starts_with("t.yaml:1:46: thresholds.critical_days: critical_days (9) exceeds")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("sources[0].passwords[0]: secrets are not written inline")), "{e:#?}");
        assert!(e.iter().all(|m| !m.contains("hunter2")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("sources[1].name: duplicate source name `a`")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("sources[1].paths: at least one path")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("sources[1].include[0]: bad pattern")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("sources[1].max_file_size: unknown size unit")), "{e:#?}");
    }

    #[test]
    fn missing_required_and_missing_kind() {
        let e = errors("sources:\n  - kind: files\n  - name: x\n");
        assert!(e[0].contains("sources[0]: missing required key `name`"), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("sources[1]: missing `kind`")), "{e:#?}");
    }

    #[test]
    fn globs_split_into_base_and_pattern() {
        let r = make_root("/etc/pki/**/*.pem", Path::new("/")).unwrap();
        assert_eq!(r.base, PathBuf::from("/etc/pki"));
        let g = r.glob.unwrap();
        assert!(g.is_match("/etc/pki/tls/certs/a.pem"));
        assert!(!g.is_match("/etc/pki/tls/certs/a.crt"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("10 MB"), Ok(10_000_000));
        assert_eq!(parse_size("42"), Ok(42));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }
}
