//! `kind: files`: certificate files and keystores under directories or globs.

use super::super::*;

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
    /// File name patterns of TUF `root.json` files (Sigstore trust roots), read whatever
    /// `include` says: each is verified against its own root keys and the previous version seen
    /// at the same path, and its `expires` tracked. Empty: none are read.
    #[serde(default = "default_trust_root_files")]
    pub trust_root_files: Vec<String>,
    /// File name patterns of PEM public key files (cosign's `cosign.pub`), read whatever
    /// `include` says: recorded as public keys, a replaced key as a retired one. Empty: none.
    #[serde(default = "default_public_key_files")]
    pub public_key_files: Vec<String>,
}

pub(crate) fn default_trust_root_files() -> Vec<String> {
    ["root.json", "*.root.json"].map(String::from).to_vec()
}

pub(crate) fn default_public_key_files() -> Vec<String> {
    vec!["cosign.pub".into()]
}

pub(crate) fn yes() -> bool {
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

pub(crate) fn default_include() -> Vec<String> {
    DEFAULT_INCLUDE.iter().map(|s| s.to_string()).collect()
}

pub(crate) fn default_max_file_size() -> ByteSize {
    ByteSize::Text("16MiB".into())
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
    pub trust_root_files: Matcher,
    pub public_key_files: Matcher,
}

/// Name patterns and path patterns, compiled.
#[derive(Debug, Clone)]
pub struct Matcher {
    names: globset::GlobSet,
    paths: globset::GlobSet,
    empty: bool,
}

impl Matcher {
    pub(crate) fn compile(patterns: &[String]) -> Result<Self, (usize, String)> {
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

/// A configured path: plain (file or directory) or a glob, split into the literal directory
/// prefix to walk and the pattern to match below it.
pub(crate) fn make_root(raw: &str, base: &Path) -> Result<Root, String> {
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
