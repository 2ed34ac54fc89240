//! Certificate containers → certificates and their facts. Pure: bytes and passwords in,
//! [`Parsed`] out; no file system, no clock.
//!
//! The format is recognised from the content, never from the file name: PEM (any number of
//! blocks, anything between them), DER certificate, PKCS#7 bundle, PKCS#12, JKS/JCEKS. One bad
//! block or bag is an error for that block; the rest of the object is still read.

pub mod ber;
pub mod cert;
pub mod jks;
pub mod name;
pub mod pem;
pub mod pkcs12;
pub mod pkcs7;
pub mod time;
pub mod tuf;
pub mod verify;

use crate::model::CertFacts;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Format {
    Pem,
    Der,
    Pkcs7,
    Pkcs12,
    Jks,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Pem => "PEM",
            Format::Der => "DER",
            Format::Pkcs7 => "PKCS#7",
            Format::Pkcs12 => "PKCS#12",
            Format::Jks => "JKS",
        })
    }
}

/// A certificate found inside an object.
#[derive(Debug, Clone)]
pub struct Found {
    pub der: Vec<u8>,
    pub facts: CertFacts,
    /// Where inside the object: `block 2`, `cert 3`, `bag 1 "web"`, `alias "tomcat"`.
    pub detail: String,
}

/// A problem with part (or all) of an object. `detail` names the block or entry when the
/// problem is local to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub detail: Option<String>,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.detail {
            Some(d) => write!(f, "{d}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Everything read from one object (file, secret value, …).
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub format: Option<Format>,
    pub certs: Vec<Found>,
    /// Private keys seen (never decrypted), by detail.
    pub keys: Vec<String>,
    /// Other recognised, non-certificate content (CSRs, CRLs, public keys), by label.
    pub other: Vec<String>,
    pub errors: Vec<ParseError>,
    /// Facts worth showing that are not errors (e.g. keystore integrity not verified).
    pub notes: Vec<String>,
}

impl Parsed {
    fn error(&mut self, detail: Option<String>, message: impl Into<String>) {
        self.errors.push(ParseError { detail, message: message.into() });
    }

    fn add_cert(&mut self, der: &[u8], detail: String) {
        match cert::parse_der(der) {
            Ok(facts) => self.certs.push(Found { der: der.to_vec(), facts, detail }),
            Err(e) => self.error(Some(detail), e.to_string()),
        }
    }
}

/// Parses one object. `passwords` are tried for PKCS#12 and JKS (the empty password always is).
pub fn parse_object(data: &[u8], passwords: &[&str]) -> Parsed {
    let mut out = Parsed::default();
    if data.is_empty() {
        out.error(None, "empty file");
        return out;
    }
    if jks::looks_like_jks(data) {
        out.format = Some(Format::Jks);
        match jks::parse(data, passwords) {
            Ok(ks) => {
                for (der, detail) in &ks.certs {
                    out.add_cert(der, detail.clone());
                }
                out.keys = ks.keys;
                if !ks.integrity_verified {
                    out.notes.push("keystore integrity not verified: no configured password matches its digest".into());
                }
            }
            Err(e) => out.error(None, format!("JKS: {e}")),
        }
        return out;
    }
    if pem::looks_like_pem(data) {
        out.format = Some(Format::Pem);
        parse_pem(data, passwords, &mut out);
        return out;
    }
    if data[0] == ber::SEQUENCE {
        if pkcs12::looks_like_pkcs12(data) {
            out.format = Some(Format::Pkcs12);
            read_pkcs12(data, passwords, None, &mut out);
            return out;
        }
        if pkcs7::looks_like_pkcs7(data) {
            out.format = Some(Format::Pkcs7);
            read_pkcs7(data, None, &mut out);
            return out;
        }
        out.format = Some(Format::Der);
        // A DER file holds one certificate; anything after it is an error, not ignored.
        match ber::Reader::new(data).required("empty") {
            Ok(t) if t.raw.len() == data.len() => out.add_cert(data, "certificate".into()),
            Ok(t) => out.error(None, format!("DER certificate followed by {} bytes of trailing data", data.len() - t.raw.len())),
            Err(e) => out.error(None, format!("not a DER certificate: {e}")),
        }
        return out;
    }
    out.error(None, "not a certificate file: no PEM block and not DER, PKCS#7, PKCS#12 or JKS");
    out
}

fn parse_pem(data: &[u8], passwords: &[&str], out: &mut Parsed) {
    for block in pem::scan(data) {
        let detail = format!("block {} ({}, line {})", block.index, block.label, block.line);
        let body = match block.body {
            Ok(b) => b,
            Err(e) => {
                out.error(Some(detail), e);
                continue;
            }
        };
        match block.label.as_str() {
            "CERTIFICATE" | "X509 CERTIFICATE" | "X.509 CERTIFICATE" => out.add_cert(&body, format!("block {}", block.index)),
            // OpenSSL's trusted format: the certificate followed by its trust settings.
            "TRUSTED CERTIFICATE" => match ber::Reader::new(&body).required("empty block") {
                Ok(t) => out.add_cert(t.raw, format!("block {}", block.index)),
                Err(e) => out.error(Some(detail), e.to_string()),
            },
            "PKCS7" | "CMS" => read_pkcs7(&body, Some(block.index), out),
            "PKCS12" => read_pkcs12(&body, passwords, Some(block.index), out),
            l if l.ends_with("PRIVATE KEY") => out.keys.push(format!("block {} ({l})", block.index)),
            l => out.other.push(format!("block {} ({l})", block.index)),
        }
    }
}

fn prefix(block: Option<usize>, inner: String) -> String {
    match block {
        Some(b) => format!("block {b} {inner}"),
        None => inner,
    }
}

fn read_pkcs7(data: &[u8], block: Option<usize>, out: &mut Parsed) {
    match pkcs7::certificates(data) {
        Ok(certs) => {
            if certs.is_empty() {
                out.error(block.map(|b| format!("block {b}")), "PKCS#7 bundle holds no certificates");
            }
            for (i, der) in certs.iter().enumerate() {
                out.add_cert(der, prefix(block, format!("cert {}", i + 1)));
            }
        }
        Err(e) => out.error(block.map(|b| format!("block {b}")), format!("PKCS#7: {e}")),
    }
}

fn read_pkcs12(data: &[u8], passwords: &[&str], block: Option<usize>, out: &mut Parsed) {
    match pkcs12::parse(data, passwords) {
        Ok(c) => {
            for (der, detail) in &c.certs {
                out.add_cert(der, prefix(block, detail.clone()));
            }
            out.keys.extend(c.keys.into_iter().map(|k| prefix(block, k)));
            if !c.mac_verified {
                out.notes.push("PKCS#12 has no integrity MAC".into());
            }
        }
        Err(e) => out.error(block.map(|b| format!("block {b}")), format!("PKCS#12: {e}")),
    }
}
