//! Java KeyStore (JKS, magic `FEEDFEED`) and JCEKS (`CECECECE`) files.
//!
//! Layout (as written by `sun.security.provider.JavaKeyStore`): magic, version (1 or 2), entry
//! count, then entries — tag 1 private key (encrypted key + certificate chain), tag 2 trusted
//! certificate — each with a modified-UTF-8 alias and a millisecond timestamp; then a SHA-1
//! digest over `password (UTF-16BE) || "Mighty Aphrodite" || everything before it`.
//! Certificates are stored in clear, so they are read even when no configured password
//! verifies the digest; the result says whether integrity was verified.

use sha1::{Digest, Sha1};

const JKS_MAGIC: u32 = 0xFEED_FEED;
const JCEKS_MAGIC: u32 = 0xCECE_CECE;
/// No real keystore holds more; a larger count is corruption or hostility.
const MAX_ENTRIES: u32 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JksError {
    #[error("truncated keystore at byte {0}")]
    Truncated(usize),
    #[error("unsupported keystore version {0}")]
    Version(u32),
    #[error("entry {index} (alias \"{alias}\"): {what}")]
    Entry { index: u32, alias: String, what: String },
    #[error("keystore claims {0} entries")]
    TooManyEntries(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keystore {
    pub jceks: bool,
    /// (certificate DER, `alias "name"` or `alias "name" chain 2`).
    pub certs: Vec<(Vec<u8>, String)>,
    /// Aliases of private key entries.
    pub keys: Vec<String>,
    /// True when one of the passwords verified the keystore digest.
    pub integrity_verified: bool,
}

pub fn looks_like_jks(data: &[u8]) -> bool {
    data.len() >= 4 && matches!(u32::from_be_bytes([data[0], data[1], data[2], data[3]]), JKS_MAGIC | JCEKS_MAGIC)
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], JksError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or(JksError::Truncated(self.pos))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, JksError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, JksError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn utf(&mut self) -> Result<String, JksError> {
        let n = usize::from(self.u16()?);
        // Modified UTF-8 differs from UTF-8 only for NUL and supplementary characters.
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    fn blob(&mut self) -> Result<&'a [u8], JksError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// Parses a keystore; `passwords` are tried against the integrity digest.
pub fn parse(data: &[u8], passwords: &[&str]) -> Result<Keystore, JksError> {
    let mut c = Cursor { data, pos: 0 };
    let magic = c.u32()?;
    let version = c.u32()?;
    if version != 1 && version != 2 {
        return Err(JksError::Version(version));
    }
    let count = c.u32()?;
    if count > MAX_ENTRIES {
        return Err(JksError::TooManyEntries(count));
    }
    let mut ks = Keystore { jceks: magic == JCEKS_MAGIC, certs: Vec::new(), keys: Vec::new(), integrity_verified: false };
    let read_cert = |c: &mut Cursor<'_>| -> Result<Vec<u8>, JksError> {
        if version == 2 {
            let _cert_type = c.utf()?; // "X.509"
        }
        Ok(c.blob()?.to_vec())
    };
    for index in 1..=count {
        let tag = c.u32()?;
        let alias = c.utf()?;
        let entry_err = |what: String| JksError::Entry { index, alias: alias.clone(), what };
        c.take(8)?; // creation time, ms since the epoch
        match tag {
            1 => {
                c.blob()?; // EncryptedPrivateKeyInfo: never decrypted
                ks.keys.push(format!("alias \"{alias}\""));
                let chain = c.u32()?;
                if chain > 64 {
                    return Err(entry_err(format!("certificate chain of {chain} entries")));
                }
                for i in 0..chain {
                    let der = read_cert(&mut c)?;
                    let detail = if i == 0 { format!("alias \"{alias}\"") } else { format!("alias \"{alias}\" chain {}", i + 1) };
                    ks.certs.push((der, detail));
                }
            }
            2 => {
                let der = read_cert(&mut c)?;
                ks.certs.push((der, format!("alias \"{alias}\"")));
            }
            3 => {
                // JCEKS secret keys are serialized Java objects with no length prefix: the rest of
                // the file cannot be walked safely, so stop here with what was read.
                return Err(entry_err("JCEKS secret-key entries cannot be read; certificates after it were not inventoried".into()));
            }
            other => return Err(entry_err(format!("unknown entry tag {other}"))),
        }
    }
    let signed_len = c.pos;
    let digest = c.take(20)?;
    let mut candidates: Vec<&str> = passwords.to_vec();
    candidates.push("");
    ks.integrity_verified = candidates.iter().any(|p| {
        let mut h = Sha1::new();
        for unit in p.encode_utf16() {
            h.update(unit.to_be_bytes());
        }
        h.update(b"Mighty Aphrodite");
        h.update(&data[..signed_len]);
        h.finalize().as_slice() == digest
    });
    Ok(ks)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a version-2 JKS with one trusted-certificate entry, signed with `password`.
    pub(crate) fn build(certs: &[(&str, &[u8])], password: &str) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend(JKS_MAGIC.to_be_bytes());
        d.extend(2u32.to_be_bytes());
        d.extend((certs.len() as u32).to_be_bytes());
        for (alias, der) in certs {
            d.extend(2u32.to_be_bytes());
            d.extend((alias.len() as u16).to_be_bytes());
            d.extend(alias.as_bytes());
            d.extend(0u64.to_be_bytes());
            d.extend(5u16.to_be_bytes());
            d.extend(b"X.509");
            d.extend((der.len() as u32).to_be_bytes());
            d.extend(*der);
        }
        let mut h = Sha1::new();
        for unit in password.encode_utf16() {
            h.update(unit.to_be_bytes());
        }
        h.update(b"Mighty Aphrodite");
        h.update(&d);
        d.extend(h.finalize());
        d
    }

    #[test]
    fn reads_trusted_entries_and_checks_digest() {
        let ks = build(&[("one", b"\x30\x00"), ("two", b"\x30\x01\x00")], "changeit");
        let good = parse(&ks, &["wrong", "changeit"]).unwrap();
        assert!(good.integrity_verified);
        assert_eq!(good.certs.len(), 2);
        assert_eq!(good.certs[1].1, "alias \"two\"");
        let bad = parse(&ks, &["wrong"]).unwrap();
        assert!(!bad.integrity_verified);
        assert_eq!(bad.certs.len(), 2);
    }

    #[test]
    fn truncation_is_an_error() {
        let ks = build(&[("one", b"\x30\x00")], "x");
        for n in 0..ks.len() - 1 {
            assert!(parse(&ks[..n], &[]).is_err(), "prefix of {n} bytes accepted");
        }
    }
}
