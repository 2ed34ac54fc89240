//! Installs a certificate, its chain and its key as PEM files.
//!
//! Everything is checked before anything is replaced: the key must match the leaf, each
//! certificate must be signed by the next one, and the leaf must be currently valid. Every new
//! file is then written beside its target and fsynced; only when all are on disk is each
//! current file kept as `<file>.previous` and the new one renamed into place. Key files are
//! always mode 0600.

use crate::config::managed::InstallSpec;
use crate::revocation::verify::verify_cert_signed_by;
use crate::x509::{cert, pem};
use base64ct::{Base64, Encoding};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

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
pub fn chain_ders(chain_pem: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for b in pem::scan(chain_pem.as_bytes()) {
        if b.label == "CERTIFICATE" {
            out.push(b.body.map_err(|e| format!("certificate {} of the chain: {e}", b.index))?);
        }
    }
    if out.is_empty() {
        return Err("the chain holds no certificate".into());
    }
    Ok(out)
}

/// Checks that `key_pem` belongs to the leaf, that the chain links by signature and that the
/// leaf is valid at `now`.
pub fn check(ders: &[Vec<u8>], key_pem: &str, now: i64) -> Result<crate::model::CertFacts, String> {
    let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| format!("the key cannot be read: {e}"))?;
    let leaf = &ders[0];
    let parts = cert::raw_parts(leaf).map_err(|e| format!("the leaf certificate is malformed: {e}"))?;
    if parts.spki != rcgen::PublicKeyData::subject_public_key_info(&key).as_slice() {
        return Err("the key does not match the certificate's public key".into());
    }
    for (i, pair) in ders.windows(2).enumerate() {
        let child = cert::raw_parts(&pair[0]).map_err(|e| format!("certificate {} is malformed: {e}", i + 1))?;
        let issuer = cert::raw_parts(&pair[1]).map_err(|e| format!("certificate {} is malformed: {e}", i + 2))?;
        if child.issuer != issuer.subject {
            return Err(format!("certificate {} is not issued by certificate {} (names differ)", i + 1, i + 2));
        }
        verify_cert_signed_by(&pair[0], issuer.spki)
            .map_err(|e| format!("certificate {} is not signed by certificate {}: {e}", i + 1, i + 2))?;
    }
    let facts = cert::parse_der(leaf).map_err(|e| format!("the leaf certificate is malformed: {}", e.0))?;
    // A few minutes of clock difference with the CA are tolerated on notBefore.
    if now + 300 < facts.not_before || now > facts.not_after {
        return Err("the leaf certificate is not valid now".into());
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

/// Checks and installs. On any error before the renames, the installed files are untouched.
pub fn install(spec: &InstallSpec, chain_pem: &str, key_pem: &str, now: i64) -> Result<Installed, String> {
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
    files.push((&spec.key, key_pem.as_bytes().to_vec(), 0o600));

    let mut staged = Vec::new();
    for (path, bytes, mode) in &files {
        let what = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
        let staged_ok = path
            .parent()
            .map(|d| if d.as_os_str().is_empty() { Ok(()) } else { std::fs::create_dir_all(d) })
            .unwrap_or(Ok(()))
            .and_then(|()| write_new(path, bytes, *mode));
        match staged_ok {
            Ok(tmp) => staged.push((tmp, (*path).clone(), *mode)),
            Err(e) => {
                for (tmp, _, _) in &staged {
                    let _ = std::fs::remove_file(tmp);
                }
                return Err(what(e));
            }
        }
    }
    for (tmp, path, mode) in &staged {
        if path.exists() {
            let old = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let prev = previous(path);
            let tmp_prev = write_new(&prev, &old, *mode).map_err(|e| format!("cannot write {}: {e}", prev.display()))?;
            std::fs::rename(&tmp_prev, &prev).map_err(|e| format!("cannot write {}: {e}", prev.display()))?;
        }
        std::fs::rename(tmp, path).map_err(|e| format!("cannot install {}: {e}", path.display()))?;
        sync_dir(path);
    }
    Ok(Installed {
        serial: hex::encode(cert::raw_parts(&ders[0]).map(|p| p.serial).unwrap_or_default()),
        not_after: facts.not_after,
        files: staged.into_iter().map(|s| s.1).collect(),
    })
}

/// The leaf currently installed (cert or fullchain file), if readable.
pub fn current_leaf(spec: &InstallSpec) -> Option<crate::model::CertFacts> {
    let path = spec.fullchain.as_ref().or(spec.cert.as_ref())?;
    let text = std::fs::read_to_string(path).ok()?;
    let ders = chain_ders(&text).ok()?;
    cert::parse_der(&ders[0]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
            key: dir.join("key.pem"),
            mode: 0o640,
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
        let e = install(&spec(dir.path()), &format!("{c2}{ca_pem}"), &k1, now()).unwrap_err();
        assert!(e.contains("does not match"), "{e}");
        // Chain that does not link.
        let (_other, other_pem) = new_ca();
        let (c3, k3) = leaf(&ca);
        let e = install(&spec(dir.path()), &format!("{c3}{other_pem}"), &k3, now()).unwrap_err();
        assert!(e.contains("not signed") || e.contains("not issued"), "{e}");
        assert_eq!(std::fs::read(dir.path().join("fullchain.pem")).unwrap(), before);
        assert!(!dir.path().join("fullchain.pem.previous").exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4, "no temp files left");
    }
}
