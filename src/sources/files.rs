//! Certificate files on the local file system, and signing trust material in files: TUF
//! `root.json` (`trust_root_files`) and PEM public keys (`public_key_files`), read as key
//! objects by `sources::trust` like the Kubernetes source's keys.
//!
//! Listing stats files only; the stamp (size, mtime, ctime, inode) lets a rescan of unchanged
//! files read nothing. Symbolic links are followed when configured, each target file is listed
//! once per scan (by device and inode) and link loops are skipped. Only regular files are read:
//! a FIFO or device in a certificate directory must never block a scan.
//!
//! A location is the path shown as text. A file name that is not UTF-8 (Linux names are bytes)
//! is shown lossily (each invalid byte as U+FFFD) and read through its real path, kept from the
//! listing: the text form alone could not be opened again.

use super::{Fetched, Listing, Source, SourceError};
use crate::config::FilesSpec;
use crate::config::secret::Secret;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Why a listed file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// Opening or reading the file failed (the text is the system's, as the scan always showed).
    #[error("{source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("file grew past max_file_size ({limit} bytes) while being read; not read")]
    Grew { path: PathBuf, limit: u64 },
    /// A file named like a TUF root (`trust_root_files`) that is not one.
    #[error("read as a TUF root (trust_root_files): {source}")]
    TrustRoot {
        path: PathBuf,
        #[source]
        source: super::trust::TrustError,
    },
    /// A file named like a public key (`public_key_files`) that is not one.
    #[error("read as a public key (public_key_files): {source}")]
    PublicKey {
        path: PathBuf,
        #[source]
        source: super::trust::TrustError,
    },
}

pub struct FilesSource {
    spec: FilesSpec,
    /// Locations listed this scan whose text is not the path itself (names that are not
    /// UTF-8), with the path to read. Only such names are kept: empty on a tree of UTF-8 names.
    renamed: Mutex<HashMap<String, PathBuf>>,
}

impl FilesSource {
    pub fn new(spec: FilesSpec) -> Self {
        FilesSource { spec, renamed: Mutex::new(HashMap::new()) }
    }

    /// The location `path` is listed under. A name that is not UTF-8 is shown lossily; if that
    /// text already names another file (two names differing only in invalid bytes, or a UTF-8
    /// name holding U+FFFD), the invalid bytes are written as `\xFF` escapes instead. `None`
    /// when even that is taken: the file cannot be told apart.
    fn location(&self, path: &Path) -> Option<String> {
        if let Some(text) = path.to_str() {
            return Some(text.to_string());
        }
        let mut renamed = self.renamed.lock().unwrap_or_else(|p| p.into_inner());
        let debug = format!("{:?}", path.as_os_str());
        let escaped = debug.strip_prefix('"').and_then(|d| d.strip_suffix('"')).unwrap_or(&debug).to_string();
        for text in [path.to_string_lossy().into_owned(), escaped] {
            // A UTF-8 name is its own location, whenever it is listed: never take it.
            if !renamed.contains_key(&text) && std::fs::symlink_metadata(&text).is_err() {
                renamed.insert(text.clone(), path.to_path_buf());
                return Some(text);
            }
        }
        None
    }

    /// Whether `path` is named like signing trust material (`trust_root_files`,
    /// `public_key_files`): listed whatever `include` says.
    fn trust_material(&self, path: &Path) -> bool {
        self.spec.trust_root_files.matches(path) || self.spec.public_key_files.matches(path)
    }

    /// The path to read for a listed location.
    fn path_of(&self, location: &str) -> PathBuf {
        let renamed = self.renamed.lock().unwrap_or_else(|p| p.into_inner());
        renamed.get(location).cloned().unwrap_or_else(|| PathBuf::from(location))
    }

    fn stamp(meta: &std::fs::Metadata) -> (String, Option<(u64, u64)>) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let stamp =
                format!("{}:{}.{}:{}.{}:{}", meta.len(), meta.mtime(), meta.mtime_nsec(), meta.ctime(), meta.ctime_nsec(), meta.ino());
            (stamp, Some((meta.dev(), meta.ino())))
        }
        #[cfg(not(unix))]
        {
            let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_nanos()).unwrap_or(0);
            (format!("{}:{}", meta.len(), mtime), None)
        }
    }

    fn list_file(&self, path: &Path, meta: &std::fs::Metadata, seen: &mut HashSet<(u64, u64)>, out: &mut dyn FnMut(Listing)) {
        if !meta.is_file() {
            return;
        }
        let (stamp, id) = Self::stamp(meta);
        if id.is_some_and(|id| !seen.insert(id)) {
            return; // the same file reached through another link
        }
        let Some(location) = self.location(path) else {
            out(Listing::Error {
                location: path.to_string_lossy().into_owned(),
                message: "file name is not UTF-8 and reads the same as another file's once shown as text; not read".into(),
            });
            return;
        };
        if meta.len() > self.spec.max_file_size {
            out(Listing::Error {
                location,
                message: format!("file is {} bytes, larger than max_file_size ({} bytes); not read", meta.len(), self.spec.max_file_size),
            });
            return;
        }
        out(Listing::Object { location, stamp });
    }
}

impl Source for FilesSource {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn kind(&self) -> &'static str {
        "files"
    }

    fn tags(&self) -> &[String] {
        &self.spec.tags
    }

    fn list(&self, out: &mut dyn FnMut(Listing)) {
        self.renamed.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let mut seen: HashSet<(u64, u64)> = HashSet::new();
        for root in &self.spec.roots {
            let base = &root.base;
            let meta = if self.spec.follow_symlinks { std::fs::metadata(base) } else { std::fs::symlink_metadata(base) };
            let meta = match meta {
                Ok(m) => m,
                Err(e) => {
                    out(Listing::Unavailable { prefix: base.to_string_lossy().into_owned(), message: e.to_string() });
                    continue;
                }
            };
            if meta.is_file() {
                // A file named explicitly is read whatever the include patterns say.
                if root.glob.as_ref().is_none_or(|g| g.is_match(base)) && !self.spec.exclude.matches(base) {
                    self.list_file(base, &meta, &mut seen, out);
                }
                continue;
            }
            let mut walk = walkdir::WalkDir::new(base).follow_links(self.spec.follow_symlinks).sort_by_file_name();
            let depth = if self.spec.recursive || root.glob.is_some() { self.spec.max_depth.unwrap_or(usize::MAX) } else { 1 };
            walk = walk.max_depth(depth);
            let exclude = &self.spec.exclude;
            let iter = walk.into_iter().filter_entry(|e| e.depth() == 0 || !(e.file_type().is_dir() && exclude.matches(e.path())));
            for entry in iter {
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        if e.loop_ancestor().is_some() {
                            tracing::debug!(source = %self.spec.name, path = ?e.path(), "symbolic link loop skipped");
                            continue;
                        }
                        let location =
                            e.path().map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|| base.to_string_lossy().into_owned());
                        let message = e.io_error().map(ToString::to_string).unwrap_or_else(|| e.to_string());
                        // A directory that cannot be read hides what is below it: unknown, not gone.
                        if e.path().is_some_and(|p| std::fs::symlink_metadata(p).map(|m| m.is_dir()).unwrap_or(false)) || e.depth() == 0 {
                            out(Listing::Unavailable { prefix: location, message });
                        } else {
                            out(Listing::Error { location, message });
                        }
                        continue;
                    }
                };
                if entry.file_type().is_dir() {
                    continue;
                }
                let path = entry.path();
                if let Some(g) = &root.glob {
                    if !g.is_match(path) {
                        continue;
                    }
                } else if !self.spec.include.is_empty() && !self.spec.include.matches(path) && !self.trust_material(path) {
                    continue;
                }
                if exclude.matches(path) {
                    continue;
                }
                match entry.metadata() {
                    Ok(meta) => self.list_file(path, &meta, &mut seen, out),
                    Err(e) => out(Listing::Error { location: path.to_string_lossy().into_owned(), message: e.to_string() }),
                }
            }
        }
    }

    fn fetch(&self, location: &str) -> Result<Fetched, SourceError> {
        let path = self.path_of(location);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(source) => return Err(FilesError::Read { path, source }.into()),
        };
        let limit = self.spec.max_file_size;
        // Sized from the file: one read for the content and one to see the end.
        let size = file.metadata().map(|m| m.len()).unwrap_or(0).min(limit);
        let mut buf = Vec::with_capacity(size as usize + 1);
        // The file may have grown since it was listed: never read past the limit.
        if let Err(source) = file.take(limit + 1).read_to_end(&mut buf) {
            return Err(FilesError::Read { path, source }.into());
        }
        if buf.len() as u64 > limit {
            return Err(FilesError::Grew { path, limit }.into());
        }
        // Trust material by name, as the Kubernetes source does by key: no certificates in it.
        if self.spec.trust_root_files.matches(&path) {
            let key = super::trust::tuf_root(&buf).map_err(|source| FilesError::TrustRoot { path, source })?;
            return Ok(Fetched { key: Some(key), ..Fetched::default() });
        }
        if self.spec.public_key_files.matches(&path) {
            let key = super::trust::public_key(&buf).map_err(|source| FilesError::PublicKey { path, source })?;
            return Ok(Fetched { key: Some(key), ..Fetched::default() });
        }
        Ok(Fetched::bytes(buf))
    }

    fn passwords(&self) -> Result<Vec<Secret>, SourceError> {
        super::resolve_passwords(&self.spec.name, &self.spec.passwords)
    }
}
