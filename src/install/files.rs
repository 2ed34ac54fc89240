//! Installs a certificate, its chain and its key as PEM files, a combined key + chain PEM and
//! a PKCS#12 file, then runs the post-install hooks.
//!
//! Everything is checked before anything is replaced: the key must match the leaf, each
//! certificate must be signed by the next one, the leaf must be currently valid, the owner and
//! group must exist and the PKCS#12 password must resolve. Every new file is then written
//! beside its target (with its final mode and owner) and fsynced; only when all are on disk is
//! each current file kept as `<file>.previous` and the new one renamed into place. When a
//! rename or a hook fails, every file and its `.previous` are put back as they were (files that
//! did not exist are removed): the installed set never mixes two certificates. Files holding
//! the key are always mode 0600.

use crate::config::managed::InstallSpec;
use crate::x509::verify::verify_cert_signed_by;
use crate::x509::{cert, pem};
use base64ct::{Base64, Encoding};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why an install did not happen (or was rolled back). Each variant says it the way the
/// operator reads it; inner errors are part of the text, not a separate cause, so a message
/// printed with its causes says each thing once.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("certificate {index} of the chain: {reason}")]
    ChainBlock { index: usize, reason: String },
    #[error("the chain holds no certificate")]
    EmptyChain,
    #[error("the key cannot be read: {0}")]
    Key(String),
    #[error("the leaf certificate is malformed: {0}")]
    MalformedLeaf(String),
    #[error("the key does not match the certificate's public key")]
    KeyMismatch,
    #[error("certificate {n} is malformed: {reason}")]
    MalformedCert { n: usize, reason: String },
    #[error("certificate {child} is not issued by certificate {issuer} (names differ)")]
    NotIssuedBy { child: usize, issuer: usize },
    #[error("certificate {child} is not signed by certificate {issuer}: {reason}")]
    NotSignedBy { child: usize, issuer: usize, reason: String },
    #[error("the leaf certificate is not valid now")]
    NotValidNow,
    #[error("install.{field}: no {what} named `{name}` on this system")]
    NoSuchId { field: &'static str, what: &'static str, name: String },
    #[error("cannot read {}: {error}", path.display())]
    Read { path: PathBuf, error: std::io::Error },
    #[error("cannot restore {}: {error}", path.display())]
    Restore { path: PathBuf, error: std::io::Error },
    #[error("install.pkcs12.password ({reference}): {reason}")]
    Pkcs12Password { reference: String, reason: String },
    #[error("the key is not a PKCS#8 PEM key")]
    NotPkcs8,
    #[error("cannot build the PKCS#12 file: {0}")]
    Pkcs12(String),
    #[error("cannot write {}: {error}", path.display())]
    Write { path: PathBuf, error: std::io::Error },
    #[error("cannot give {} to {who}: {error}{hint}", path.display())]
    Chown { path: PathBuf, who: String, error: std::io::Error, hint: &'static str },
    #[error("cannot install {}: {error}", path.display())]
    Rename { path: PathBuf, error: std::io::Error },
    #[error("post-install hook failed: {0}")]
    Hook(super::hooks::HookError),
    #[error("{cause}; every file was rolled back to its previous version")]
    RolledBack { cause: Box<InstallError> },
    #[error("{cause}; rolling back failed too: {}", failures.join("; "))]
    RollBackFailed { cause: Box<InstallError>, failures: Vec<String> },
    #[error("{}: {inner}", path.display())]
    InFile { path: PathBuf, inner: Box<InstallError> },
    #[error("no certificate file to read the installed certificate from")]
    NoCertificateFile,
    #[error("no key file to read the installed key from")]
    NoKeyFile,
    #[error("{}: no PKCS#8 key", path.display())]
    NoPkcs8In { path: PathBuf },
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Installed {
    pub serial: String,
    pub not_after: i64,
    pub files: Vec<PathBuf>,
}

/// One certificate as a PEM block.
pub fn to_pem(der: &[u8]) -> String {
    let b64 = Base64::encode_string(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The certificates of a PEM chain, in order.
pub fn chain_ders(chain_pem: &str) -> Result<Vec<Vec<u8>>, InstallError> {
    let mut out = Vec::new();
    for b in pem::scan(chain_pem.as_bytes()) {
        if b.label == "CERTIFICATE" {
            out.push(b.body.map_err(|reason| InstallError::ChainBlock { index: b.index, reason })?);
        }
    }
    if out.is_empty() {
        return Err(InstallError::EmptyChain);
    }
    Ok(out)
}

/// Checks that `key_pem` belongs to the leaf, that the chain links by signature and that the
/// leaf is valid at `now`.
pub fn check(ders: &[Vec<u8>], key_pem: &str, now: i64) -> Result<crate::model::CertFacts, InstallError> {
    let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| InstallError::Key(e.to_string()))?;
    let leaf = &ders[0];
    let parts = cert::raw_parts(leaf).map_err(|e| InstallError::MalformedLeaf(e.to_string()))?;
    if parts.spki != rcgen::PublicKeyData::subject_public_key_info(&key).as_slice() {
        return Err(InstallError::KeyMismatch);
    }
    for (i, pair) in ders.windows(2).enumerate() {
        let child = cert::raw_parts(&pair[0]).map_err(|e| InstallError::MalformedCert { n: i + 1, reason: e.to_string() })?;
        let issuer = cert::raw_parts(&pair[1]).map_err(|e| InstallError::MalformedCert { n: i + 2, reason: e.to_string() })?;
        if child.issuer != issuer.subject {
            return Err(InstallError::NotIssuedBy { child: i + 1, issuer: i + 2 });
        }
        verify_cert_signed_by(&pair[0], issuer.spki, crate::x509::verify::DEFAULT_MIN_RSA_BITS).map_err(|e| InstallError::NotSignedBy {
            child: i + 1,
            issuer: i + 2,
            reason: e.to_string(),
        })?;
    }
    let facts = cert::parse_der(leaf).map_err(|e| InstallError::MalformedLeaf(e.0))?;
    // A few minutes of clock difference with the CA are tolerated on notBefore.
    if now + 300 < facts.not_before || now > facts.not_after {
        return Err(InstallError::NotValidNow);
    }
    Ok(facts)
}

fn temp_for(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.certvigil-new"))
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<PathBuf> {
    let tmp = temp_for(path);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
    // The umask may have narrowed the mode; set it exactly.
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(tmp)
}

fn previous(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".previous");
    PathBuf::from(s)
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
}

/// A user or group looked up by name: through `getent` (so NSS sources count), else the
/// files in /etc.
fn lookup_id(db: &str, name: &str) -> Result<u32, InstallError> {
    // name:password:id:… in both databases.
    let field = 2;
    let parse = |text: &str| {
        text.lines()
            .find(|l| l.split(':').next() == Some(name))
            .and_then(|l| l.split(':').nth(field))
            .and_then(|v| v.trim().parse::<u32>().ok())
    };
    let id = match std::process::Command::new("getent").args([db, name]).stderr(std::process::Stdio::null()).output() {
        Ok(out) => parse(&String::from_utf8_lossy(&out.stdout)),
        Err(_) => std::fs::read_to_string(format!("/etc/{db}")).ok().and_then(|t| parse(&t)),
    };
    let what = if db == "passwd" { "user" } else { "group" };
    id.ok_or_else(|| InstallError::NoSuchId { field: if db == "passwd" { "owner" } else { "group" }, what, name: name.to_string() })
}

/// A file's content, mode, uid and gid.
type FileState = (Vec<u8>, u32, u32, u32);

/// One file as it was before the install, to put it back.
struct Before {
    path: PathBuf,
    /// Content, mode, uid and gid, or `None` when the file did not exist.
    file: Option<FileState>,
    previous: Option<FileState>,
}

fn snapshot(path: &Path) -> Result<Option<FileState>, InstallError> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(InstallError::Read { path: path.to_path_buf(), error }),
        Ok(m) => {
            let bytes = std::fs::read(path).map_err(|error| InstallError::Read { path: path.to_path_buf(), error })?;
            Ok(Some((bytes, m.mode() & 0o7777, m.uid(), m.gid())))
        }
    }
}

/// Puts `path` back to `state` (atomically), or removes it when it did not exist.
fn restore(path: &Path, state: &Option<FileState>) -> Result<(), InstallError> {
    let r = match state {
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
        Some((bytes, mode, uid, gid)) => write_new(path, bytes, *mode).and_then(|tmp| {
            // Only root can give a file away; otherwise it stays ours, as it was.
            let _ = std::os::unix::fs::chown(&tmp, Some(*uid), Some(*gid));
            std::fs::rename(&tmp, path)
        }),
    };
    sync_dir(path);
    r.map_err(|error| InstallError::Restore { path: path.to_path_buf(), error })
}

fn roll_back(done: &[Before]) -> Vec<String> {
    let mut errs = Vec::new();
    for b in done.iter().rev() {
        for (p, st) in [(b.path.clone(), &b.file), (previous(&b.path), &b.previous)] {
            if let Err(e) = restore(&p, st) {
                tracing::error!(path = %p.display(), error = %e, "roll-back failed");
                errs.push(e.to_string());
            }
        }
    }
    errs
}

/// Checks and installs, then runs the hooks. On any error before the renames, the installed
/// files are untouched; after, they are rolled back.
pub fn install(spec: &InstallSpec, chain_pem: &str, key_pem: &str, now: i64) -> Result<Installed, InstallError> {
    let ders = chain_ders(chain_pem)?;
    let facts = check(&ders, key_pem, now)?;
    let leaf = to_pem(&ders[0]);
    let rest: String = ders[1..].iter().map(|d| to_pem(d)).collect();
    let mut files: Vec<(&PathBuf, Vec<u8>, u32)> = Vec::new();
    if let Some(p) = &spec.cert {
        files.push((p, leaf.clone().into_bytes(), spec.mode));
    }
    if let Some(p) = &spec.chain {
        files.push((p, rest.clone().into_bytes(), spec.mode));
    }
    if let Some(p) = &spec.fullchain {
        files.push((p, format!("{leaf}{rest}").into_bytes(), spec.mode));
    }
    if let Some(p) = &spec.key {
        files.push((p, key_pem.as_bytes().to_vec(), 0o600));
    }
    if let Some(p) = &spec.combined {
        let key = key_pem.trim_end();
        files.push((p, format!("{key}\n{leaf}{rest}").into_bytes(), 0o600));
    }
    if let Some(p12) = &spec.pkcs12 {
        let password = p12
            .password
            .resolve()
            .map_err(|e| InstallError::Pkcs12Password { reference: p12.password.to_string(), reason: e.to_string() })?;
        let pkcs8 = pem::scan(key_pem.as_bytes())
            .into_iter()
            .find(|b| b.label == "PRIVATE KEY")
            .and_then(|b| b.body.ok())
            .ok_or(InstallError::NotPkcs8)?;
        let pfx = crate::x509::pkcs12::write(&pkcs8, &ders, password.expose()).map_err(|e| InstallError::Pkcs12(e.to_string()))?;
        files.push((&p12.path, pfx, 0o600));
    }
    let uid = spec.owner.as_deref().map(|n| lookup_id("passwd", n)).transpose()?;
    let gid = spec.group.as_deref().map(|n| lookup_id("group", n)).transpose()?;

    let mut staged = Vec::new();
    for (path, bytes, mode) in &files {
        let staged_ok = path
            .parent()
            .map(|d| if d.as_os_str().is_empty() { Ok(()) } else { std::fs::create_dir_all(d) })
            .unwrap_or(Ok(()))
            .and_then(|()| write_new(path, bytes, *mode))
            .map_err(|error| InstallError::Write { path: path.to_path_buf(), error })
            .and_then(|tmp| {
                if uid.is_none() && gid.is_none() {
                    return Ok(tmp);
                }
                match std::os::unix::fs::chown(&tmp, uid, gid) {
                    Ok(()) => Ok(tmp),
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        let who =
                            [spec.owner.as_deref().map(|o| format!("owner `{o}`")), spec.group.as_deref().map(|g| format!("group `{g}`"))]
                                .into_iter()
                                .flatten()
                                .collect::<Vec<_>>()
                                .join(" and ");
                        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
                            " (changing a file's owner needs root; a group needs root or membership of it)"
                        } else {
                            ""
                        };
                        Err(InstallError::Chown { path: path.to_path_buf(), who, error: e, hint })
                    }
                }
            });
        match staged_ok {
            Ok(tmp) => staged.push((tmp, (*path).clone(), *mode)),
            Err(e) => {
                for (tmp, _, _) in &staged {
                    let _ = std::fs::remove_file(tmp);
                }
                return Err(e);
            }
        }
    }
    // Snapshot everything first: a failure while reading leaves nothing changed.
    let mut befores = Vec::new();
    for (_, path, _) in &staged {
        match snapshot(path).and_then(|f| snapshot(&previous(path)).map(|p| (f, p))) {
            Ok((file, prev)) => befores.push(Before { path: path.clone(), file, previous: prev }),
            Err(e) => {
                for (tmp, _, _) in &staged {
                    let _ = std::fs::remove_file(tmp);
                }
                return Err(e);
            }
        }
    }
    let mut done: Vec<Before> = Vec::new();
    let mut failure = None;
    for ((tmp, path, mode), before) in staged.iter().zip(befores) {
        let step = || -> Result<(), InstallError> {
            if let Some((old, _, old_uid, old_gid)) = &before.file {
                let prev = previous(path);
                let tmp_prev = write_new(&prev, old, *mode).map_err(|error| InstallError::Write { path: prev.clone(), error })?;
                let _ = std::os::unix::fs::chown(&tmp_prev, Some(*old_uid), Some(*old_gid));
                std::fs::rename(&tmp_prev, &prev).map_err(|error| InstallError::Write { path: prev.clone(), error })?;
            }
            std::fs::rename(tmp, path).map_err(|error| InstallError::Rename { path: path.clone(), error })?;
            sync_dir(path);
            Ok(())
        };
        let result = step();
        done.push(before);
        if let Err(e) = result {
            failure = Some(e);
            break;
        }
    }
    if failure.is_none() {
        let env = hook_env(spec);
        for hook in &spec.hooks {
            if let Err(e) = super::hooks::run(&hook.argv, &env, hook.timeout) {
                failure = Some(InstallError::Hook(e));
                break;
            }
            tracing::info!(command = %super::hooks::display(&hook.argv), "post-install hook succeeded");
        }
    }
    if let Some(e) = failure {
        for (tmp, _, _) in &staged {
            let _ = std::fs::remove_file(tmp);
        }
        let errs = roll_back(&done);
        return Err(if errs.is_empty() {
            InstallError::RolledBack { cause: Box::new(e) }
        } else {
            InstallError::RollBackFailed { cause: Box::new(e), failures: errs }
        });
    }
    Ok(Installed {
        serial: hex::encode(cert::raw_parts(&ders[0]).map(|p| p.serial).unwrap_or_default()),
        not_after: facts.not_after,
        files: staged.into_iter().map(|s| s.1).collect(),
    })
}

/// What hooks see: the path of each installed file.
fn hook_env(spec: &InstallSpec) -> Vec<(String, String)> {
    let mut env = Vec::new();
    let mut add = |k: &str, p: Option<&PathBuf>| {
        if let Some(p) = p {
            env.push((k.to_string(), p.display().to_string()));
        }
    };
    add("CERTVIGIL_CERT", spec.cert.as_ref());
    add("CERTVIGIL_CHAIN", spec.chain.as_ref());
    add("CERTVIGIL_FULLCHAIN", spec.fullchain.as_ref());
    add("CERTVIGIL_KEY", spec.key.as_ref());
    add("CERTVIGIL_COMBINED", spec.combined.as_ref());
    add("CERTVIGIL_PKCS12", spec.pkcs12.as_ref().map(|p| &p.path));
    env
}

/// The leaf currently installed (fullchain, cert or combined file), if readable.
pub fn current_leaf(spec: &InstallSpec) -> Option<crate::model::CertFacts> {
    let path = spec.leaf_file()?;
    let text = std::fs::read_to_string(path).ok()?;
    let ders = chain_ders(&text).ok()?;
    cert::parse_der(&ders[0]).ok()
}

/// The installed full chain (PEM, leaf first) and key (PEM), read back from the files: what
/// another install target (a Kubernetes Secret) is brought up to date from. `Err` names the
/// file that cannot be read.
pub fn current_material(spec: &InstallSpec) -> Result<(String, String), InstallError> {
    let read = |p: &PathBuf| std::fs::read_to_string(p).map_err(|error| InstallError::Read { path: p.clone(), error });
    let certs = |p: &PathBuf| -> Result<Vec<Vec<u8>>, InstallError> {
        chain_ders(&read(p)?).map_err(|e| InstallError::InFile { path: p.clone(), inner: Box::new(e) })
    };
    let ders = match (&spec.fullchain, &spec.cert, &spec.combined) {
        (Some(f), _, _) => certs(f)?,
        (None, Some(c), _) => {
            let mut ders = certs(c)?;
            ders.truncate(1);
            if let Some(ch) = &spec.chain {
                ders.extend(certs(ch).unwrap_or_default());
            }
            ders
        }
        (None, None, Some(c)) => certs(c)?,
        (None, None, None) => return Err(InstallError::NoCertificateFile),
    };
    let key = match (&spec.key, &spec.combined) {
        (Some(k), _) => read(k)?,
        (None, Some(c)) => {
            let text = read(c)?;
            let block = pem::scan(text.as_bytes())
                .into_iter()
                .find(|b| b.label == "PRIVATE KEY")
                .and_then(|b| b.body.ok())
                .ok_or_else(|| InstallError::NoPkcs8In { path: c.clone() })?;
            let b64 = Base64::encode_string(&block);
            let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|l| std::str::from_utf8(l).unwrap_or_default()).collect();
            format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"))
        }
        (None, None) => return Err(InstallError::NoKeyFile),
    };
    Ok((ders.iter().map(|d| to_pem(d)).collect(), key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn new_ca() -> (rcgen::Issuer<'static, rcgen::KeyPair>, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, "Test CA");
        let c = p.self_signed(&key).unwrap();
        (rcgen::Issuer::new(p, key), c.pem())
    }

    fn leaf(issuer: &rcgen::Issuer<'static, rcgen::KeyPair>) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let c = rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap().signed_by(&key, issuer).unwrap();
        (c.pem(), key.serialize_pem())
    }

    fn spec(dir: &Path) -> InstallSpec {
        InstallSpec {
            cert: Some(dir.join("cert.pem")),
            chain: Some(dir.join("chain.pem")),
            fullchain: Some(dir.join("fullchain.pem")),
            key: Some(dir.join("key.pem")),
            mode: 0o640,
            ..InstallSpec::default()
        }
    }

    fn now() -> i64 {
        jiff::Timestamp::now().as_second()
    }

    #[test]
    fn installs_and_keeps_previous() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (ca, ca_pem) = new_ca();
        let (c1, k1) = leaf(&ca);
        install(&spec(dir.path()), &format!("{c1}{ca_pem}"), &k1, now()).unwrap();
        let (c2, k2) = leaf(&ca);
        install(&spec(dir.path()), &format!("{c2}{ca_pem}"), &k2, now()).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("key.pem.previous")).unwrap(), k1);
        assert_eq!(std::fs::read_to_string(dir.path().join("key.pem")).unwrap(), k2);
        let mode = |f: &str| std::fs::metadata(dir.path().join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("key.pem"), 0o600);
        assert_eq!(mode("key.pem.previous"), 0o600);
        assert_eq!(mode("cert.pem"), 0o640);
    }

    #[test]
    fn broken_input_leaves_files_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, ca_pem) = new_ca();
        let (c1, k1) = leaf(&ca);
        install(&spec(dir.path()), &format!("{c1}{ca_pem}"), &k1, now()).unwrap();
        let before = std::fs::read(dir.path().join("fullchain.pem")).unwrap();
        let (c2, _) = leaf(&ca);
        // Wrong key.
        let e = install(&spec(dir.path()), &format!("{c2}{ca_pem}"), &k1, now()).unwrap_err().to_string();
        assert!(e.contains("does not match"), "{e}");
        // Chain that does not link.
        let (_other, other_pem) = new_ca();
        let (c3, k3) = leaf(&ca);
        let e = install(&spec(dir.path()), &format!("{c3}{other_pem}"), &k3, now()).unwrap_err().to_string();
        assert!(e.contains("not signed") || e.contains("not issued"), "{e}");
        assert_eq!(std::fs::read(dir.path().join("fullchain.pem")).unwrap(), before);
        assert!(!dir.path().join("fullchain.pem.previous").exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4, "no temp files left");
    }

    fn snapshot_dir(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn failing_hook_rolls_everything_back() {
        use crate::config::managed::HookSpec;
        let dir = tempfile::tempdir().unwrap();
        let (ca, ca_pem) = new_ca();
        let mut s = spec(dir.path());
        s.combined = Some(dir.path().join("combined.pem"));
        // Two installs, so that .previous files exist too.
        for _ in 0..2 {
            let (c, k) = leaf(&ca);
            install(&s, &format!("{c}{ca_pem}"), &k, now()).unwrap();
        }
        let combined = std::fs::read_to_string(dir.path().join("combined.pem")).unwrap();
        assert!(combined.starts_with("-----BEGIN PRIVATE KEY-----") && combined.matches("BEGIN CERTIFICATE").count() == 2, "{combined}");
        let before = snapshot_dir(dir.path());
        // A new file target (no previous version) and a hook that fails after seeing the new files.
        s.chain = Some(dir.path().join("new-chain.pem"));
        s.hooks = vec![
            HookSpec { argv: vec!["sh".into(), "-c".into(), "test -s \"$CERTVIGIL_KEY\"".into()], timeout: Duration::from_secs(5) },
            HookSpec { argv: vec!["sh".into(), "-c".into(), "echo reload refused >&2; exit 1".into()], timeout: Duration::from_secs(5) },
        ];
        let (c, k) = leaf(&ca);
        let e = install(&s, &format!("{c}{ca_pem}"), &k, now()).unwrap_err().to_string();
        assert!(e.contains("reload refused") && e.contains("rolled back"), "{e}");
        assert_eq!(snapshot_dir(dir.path()), before);
    }

    #[test]
    fn the_installed_material_is_read_back_from_any_file_layout() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, ca_pem) = new_ca();
        let (c, k) = leaf(&ca);
        let chain = format!("{c}{ca_pem}");
        install(&spec(dir.path()), &chain, &k, now()).unwrap();
        let normalise = |t: &str| chain_ders(t).unwrap();
        let (got, key) = current_material(&spec(dir.path())).unwrap();
        assert_eq!((normalise(&got), key.as_str()), (normalise(&chain), k.as_str()));
        // cert + chain files, no fullchain.
        let s = InstallSpec { fullchain: None, ..spec(dir.path()) };
        assert_eq!(normalise(&current_material(&s).unwrap().0), normalise(&chain));
        // A combined file alone gives both.
        let only = InstallSpec { combined: Some(dir.path().join("c.pem")), key: Some(dir.path().join("k2.pem")), ..InstallSpec::default() };
        install(&only, &chain, &k, now()).unwrap();
        let only = InstallSpec { key: None, ..only };
        let (got, key) = current_material(&only).unwrap();
        assert_eq!(normalise(&got), normalise(&chain));
        assert_eq!(rcgen::KeyPair::from_pem(&key).unwrap().serialize_der(), rcgen::KeyPair::from_pem(&k).unwrap().serialize_der());
        assert!(current_leaf(&only).is_some(), "the leaf of a combined file counts as installed");
        let e = current_material(&InstallSpec { key: Some(dir.path().join("missing.pem")), ..spec(dir.path()) }).unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
    }
}
