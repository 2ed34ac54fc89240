//! Certificate revocation lists (RFC 5280 §5), held compactly.
//!
//! A CRL is kept as its DER bytes plus a sorted index of byte offsets of its entries: four
//! bytes per revoked certificate on top of the file itself, so a multi-million-entry CRL never
//! exists as millions of parsed objects. Lookup is a binary search over serials read straight
//! from the DER; an entry's reason and dates are decoded only when it matches.
//!
//! Parsing and verification are pure; fetching lives in `fetch`.

use super::verify::{self, VerifyError};
use crate::model::UnixTime;
use crate::x509::ber::{self, BerError, Tlv};
use sha2::Digest;
use std::cmp::Ordering;
use std::ops::Range;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrlError {
    #[error("malformed CRL: {0}")]
    Malformed(String),
    #[error("CRL has an unrecognised critical extension {0} (RFC 5280 §5.2: it must not be used)")]
    UnknownCritical(String),
    #[error("CRL is too large ({size} bytes; limit {limit})")]
    TooLarge { size: usize, limit: usize },
    #[error("CRL signature: {0}")]
    Signature(#[from] VerifyError),
    #[error("CRL issuer `{crl}` is not the certificate's issuer `{expected}`")]
    WrongIssuer { crl: String, expected: String },
    #[error("CRL authority key identifier {crl} does not match the issuer's key {issuer}")]
    WrongKey { crl: String, issuer: String },
    #[error("issuer certificate lacks the cRLSign key usage")]
    NotCrlSigner,
    #[error("CRL scope not supported: {0}")]
    Unsupported(&'static str),
}

impl From<BerError> for CrlError {
    fn from(e: BerError) -> Self {
        CrlError::Malformed(e.to_string())
    }
}

/// RFC 5280 §5.3.1 reason codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    Unspecified,
    KeyCompromise,
    CaCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    CertificateHold,
    RemoveFromCrl,
    PrivilegeWithdrawn,
    AaCompromise,
}

impl Reason {
    pub fn from_code(c: u64) -> Option<Reason> {
        Some(match c {
            0 => Reason::Unspecified,
            1 => Reason::KeyCompromise,
            2 => Reason::CaCompromise,
            3 => Reason::AffiliationChanged,
            4 => Reason::Superseded,
            5 => Reason::CessationOfOperation,
            6 => Reason::CertificateHold,
            8 => Reason::RemoveFromCrl,
            9 => Reason::PrivilegeWithdrawn,
            10 => Reason::AaCompromise,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unspecified => "unspecified",
            Reason::KeyCompromise => "keyCompromise",
            Reason::CaCompromise => "cACompromise",
            Reason::AffiliationChanged => "affiliationChanged",
            Reason::Superseded => "superseded",
            Reason::CessationOfOperation => "cessationOfOperation",
            Reason::CertificateHold => "certificateHold",
            Reason::RemoveFromCrl => "removeFromCRL",
            Reason::PrivilegeWithdrawn => "privilegeWithdrawn",
            Reason::AaCompromise => "aACompromise",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        (0..=10).filter_map(Reason::from_code).find(|r| r.as_str().eq_ignore_ascii_case(s))
    }
}

/// One revoked-certificate entry, decoded on demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub revoked_at: UnixTime,
    pub reason: Option<Reason>,
    pub invalidity_date: Option<UnixTime>,
}

/// A parsed CRL: its bytes, header fields and a sorted entry index.
#[derive(Debug, Clone)]
pub struct Crl {
    der: Vec<u8>,
    tbs: Range<usize>,
    sig_alg: Range<usize>,
    signature: Range<usize>,
    issuer: Range<usize>,
    /// Offsets of the revokedCertificates entries in `der`, sorted by serial.
    entries: Vec<u32>,
    pub this_update: UnixTime,
    pub next_update: Option<UnixTime>,
    /// cRLNumber, big-endian magnitude without leading zeros.
    pub crl_number: Option<Vec<u8>>,
    /// deltaCRLIndicator's BaseCRLNumber when this is a delta CRL.
    pub delta_base: Option<Vec<u8>>,
    pub aki: Option<Vec<u8>>,
    /// Freshest CRL (delta) distribution point URLs.
    pub freshest: Vec<String>,
    /// SHA-256 of the DER, the evidence recorded with a status.
    pub sha256: String,
}

fn range_of(outer: &[u8], inner: &[u8]) -> Range<usize> {
    let start = inner.as_ptr() as usize - outer.as_ptr() as usize;
    start..start + inner.len()
}

/// Serial magnitude without leading zero octets (DER positive integers carry one when the
/// high bit is set), so that comparison by (length, bytes) is numeric order.
pub fn serial_key(serial: &[u8]) -> &[u8] {
    let skip = serial.iter().take_while(|&&b| b == 0).count();
    &serial[skip..]
}

fn cmp_serial(a: &[u8], b: &[u8]) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

pub fn parse_time(t: &Tlv<'_>) -> Result<UnixTime, CrlError> {
    use der::Decode;
    let time = x509_cert::time::Time::from_der(t.raw).map_err(|e| CrlError::Malformed(format!("time: {e}")))?;
    Ok(time.to_unix_duration().as_secs() as i64)
}

const EXT_CRL_NUMBER: &str = "2.5.29.20";
const EXT_DELTA: &str = "2.5.29.27";
const EXT_IDP: &str = "2.5.29.28";
const EXT_AKI: &str = "2.5.29.35";
const EXT_FRESHEST: &str = "2.5.29.46";
const EXT_ISSUER_ALT_NAME: &str = "2.5.29.18";
const ENTRY_REASON: &str = "2.5.29.21";
const ENTRY_INVALIDITY: &str = "2.5.29.24";

/// One extension: OID, critical flag, value octets.
type Ext<'a> = (String, bool, &'a [u8]);

/// Iterates `Extensions ::= SEQUENCE OF Extension`.
fn extensions<'a>(t: &Tlv<'a>) -> Result<Vec<Ext<'a>>, CrlError> {
    let mut out = Vec::new();
    let mut r = t.children();
    while let Some(ext) = r.next_tlv()? {
        let mut e = ext.children();
        let oid = ber::oid_string(&e.required("extension has no OID")?)?;
        let mut next = e.required("extension has no value")?;
        let mut critical = false;
        if next.tag == 0x01 {
            critical = next.content.first().is_some_and(|&b| b != 0);
            next = e.required("extension has no value")?;
        }
        out.push((oid, critical, next.expect(ber::OCTET_STRING, "extension value must be an OCTET STRING")?.content));
    }
    Ok(out)
}

fn uint_bytes(value: &[u8]) -> Result<Vec<u8>, CrlError> {
    let t = ber::single(value)?;
    if t.tag != ber::INTEGER {
        return Err(CrlError::Malformed("expected an INTEGER".into()));
    }
    Ok(serial_key(t.content).to_vec())
}

fn dp_urls(value: &[u8]) -> Result<Vec<String>, CrlError> {
    use der::Decode;
    let dps = x509_cert::ext::pkix::CrlDistributionPoints::from_der(value)
        .map_err(|e| CrlError::Malformed(format!("distribution points: {e}")))?;
    let mut urls = Vec::new();
    for dp in dps.0 {
        if let Some(x509_cert::ext::pkix::name::DistributionPointName::FullName(names)) = dp.distribution_point {
            for n in names {
                if let x509_cert::ext::pkix::name::GeneralName::UniformResourceIdentifier(u) = n {
                    urls.push(u.to_string());
                }
            }
        }
    }
    Ok(urls)
}

impl Crl {
    /// Parses a DER CRL (PEM is accepted too) and builds its index. Fails on structure errors
    /// and on unrecognised critical CRL extensions; does not verify (see [`Crl::verify`]).
    pub fn parse(mut data: Vec<u8>, max_size: usize) -> Result<Crl, CrlError> {
        if data.len() > max_size {
            return Err(CrlError::TooLarge { size: data.len(), limit: max_size });
        }
        if crate::x509::pem::looks_like_pem(&data) {
            let block = crate::x509::pem::scan(&data)
                .into_iter()
                .find(|b| b.label == "X509 CRL")
                .ok_or(CrlError::Malformed("PEM without an X509 CRL block".into()))?;
            data = block.body.map_err(CrlError::Malformed)?;
        }
        let sha256 = hex::encode(sha2::Sha256::digest(&data));
        let outer = ber::single(&data)?;
        let signed = verify::split_signed(&outer)?;
        let (tbs, sig_alg, signature) = (range_of(&data, signed.tbs.raw), range_of(&data, signed.alg), range_of(&data, signed.signature));
        let mut r = signed.tbs.children();
        let mut field = r.required("TBSCertList is empty")?;
        if field.tag == ber::INTEGER {
            field = r.required("TBSCertList has no signature algorithm")?;
        }
        field.expect(ber::SEQUENCE, "TBSCertList signature must be an AlgorithmIdentifier")?;
        let issuer_tlv = r.required("TBSCertList has no issuer")?.expect(ber::SEQUENCE, "issuer must be a Name")?;
        let issuer = range_of(&data, issuer_tlv.raw);
        let this_update = parse_time(&r.required("TBSCertList has no thisUpdate")?)?;
        let mut next_update = None;
        let mut revoked: Option<Tlv<'_>> = None;
        let mut crl_exts: Option<Tlv<'_>> = None;
        while let Some(t) = r.next_tlv()? {
            match t.tag {
                0x17 | 0x18 => next_update = Some(parse_time(&t)?),
                ber::SEQUENCE => revoked = Some(t),
                0xa0 => crl_exts = Some(t.children().required("empty crlExtensions")?),
                _ => return Err(CrlError::Malformed(format!("unexpected field with tag {:#04x} in TBSCertList", t.tag))),
            }
        }
        let mut crl = Crl {
            tbs,
            sig_alg,
            signature,
            issuer,
            entries: Vec::new(),
            this_update,
            next_update,
            crl_number: None,
            delta_base: None,
            aki: None,
            freshest: Vec::new(),
            sha256,
            der: Vec::new(),
        };
        if let Some(exts) = crl_exts {
            for (oid, critical, value) in extensions(&exts)? {
                match oid.as_str() {
                    EXT_CRL_NUMBER => crl.crl_number = Some(uint_bytes(value)?),
                    EXT_DELTA => crl.delta_base = Some(uint_bytes(value)?),
                    EXT_AKI => {
                        let t = ber::single(value)?;
                        let mut a = t.children();
                        while let Some(f) = a.next_tlv()? {
                            if f.tag == 0x80 {
                                crl.aki = Some(f.content.to_vec());
                            }
                        }
                    }
                    EXT_FRESHEST => crl.freshest = dp_urls(value)?,
                    EXT_IDP => check_idp(value)?,
                    EXT_ISSUER_ALT_NAME => {}
                    other if critical => return Err(CrlError::UnknownCritical(other.to_string())),
                    _ => {}
                }
            }
        }
        if let Some(list) = revoked {
            let mut r = list.children();
            let mut sorted = true;
            let mut prev: Option<&[u8]> = None;
            while let Some(entry) = r.next_tlv()? {
                let serial = entry.children().required("revoked entry has no serial")?;
                if serial.tag != ber::INTEGER {
                    return Err(CrlError::Malformed(format!("revoked entry at byte {} has no serial INTEGER", entry.offset)));
                }
                let key = serial_key(serial.content);
                if prev.is_some_and(|p| cmp_serial(p, key) == Ordering::Greater) {
                    sorted = false;
                }
                prev = Some(key);
                let off = u32::try_from(entry.offset).map_err(|_| CrlError::TooLarge { size: data.len(), limit: u32::MAX as usize })?;
                crl.entries.push(off);
            }
            if !sorted {
                let d = &data;
                crl.entries.sort_unstable_by(|&a, &b| cmp_serial(entry_serial(d, a), entry_serial(d, b)));
            }
        }
        crl.entries.shrink_to_fit();
        crl.der = data;
        Ok(crl)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The CRL's DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn is_delta(&self) -> bool {
        self.delta_base.is_some()
    }

    /// DER of the issuer Name.
    pub fn issuer_der(&self) -> &[u8] {
        &self.der[self.issuer.clone()]
    }

    /// Verifies the signature, issuer name and key identifier against the issuing CA.
    /// `issuer_subject_der` and `issuer_spki_der` come from the CA certificate; `issuer_ski`
    /// and `issuer_key_usage` from its facts.
    pub fn verify(
        &self,
        issuer_subject_der: &[u8],
        issuer_spki_der: &[u8],
        issuer_ski: Option<&[u8]>,
        issuer_key_usage: &[String],
    ) -> Result<(), CrlError> {
        if self.issuer_der() != issuer_subject_der {
            return Err(CrlError::WrongIssuer { crl: name_text(self.issuer_der()), expected: name_text(issuer_subject_der) });
        }
        if let (Some(aki), Some(ski)) = (&self.aki, issuer_ski)
            && aki.as_slice() != ski
        {
            return Err(CrlError::WrongKey { crl: hex::encode(aki), issuer: hex::encode(ski) });
        }
        // RFC 5280 §4.2.1.3: a CRL signer asserts cRLSign when key usage is present.
        if !issuer_key_usage.is_empty() && !issuer_key_usage.iter().any(|k| k == "cRLSign") {
            return Err(CrlError::NotCrlSigner);
        }
        verify::verify(&self.der[self.sig_alg.clone()], issuer_spki_der, &self.der[self.tbs.clone()], &self.der[self.signature.clone()])?;
        Ok(())
    }

    /// The entry for `serial` (DER INTEGER content bytes), decoded.
    pub fn lookup(&self, serial: &[u8]) -> Result<Option<Entry>, CrlError> {
        let key = serial_key(serial);
        let found = self.entries.binary_search_by(|&off| cmp_serial(entry_serial(&self.der, off), key));
        let Ok(i) = found else { return Ok(None) };
        decode_entry(&self.der, self.entries[i]).map(Some)
    }
}

/// The serial of the entry at `off` (valid offsets only: they were produced by `parse`).
fn entry_serial(der: &[u8], off: u32) -> &[u8] {
    let mut r = ber::Reader::new(&der[off as usize..]);
    r.next_tlv().ok().flatten().and_then(|e| e.children().next_tlv().ok().flatten()).map(|s| serial_key(s.content)).unwrap_or(&[])
}

fn decode_entry(der: &[u8], off: u32) -> Result<Entry, CrlError> {
    let entry = ber::Reader::new(&der[off as usize..]).required("entry")?;
    let mut r = entry.children();
    r.required("serial")?;
    let revoked_at = parse_time(&r.required("revoked entry has no revocationDate")?)?;
    let mut e = Entry { revoked_at, reason: None, invalidity_date: None };
    if let Some(exts) = r.next_tlv()? {
        for (oid, critical, value) in extensions(&exts)? {
            match oid.as_str() {
                ENTRY_REASON => {
                    let t = ber::single(value)?;
                    let code = t.content.first().copied().map(u64::from).unwrap_or(0);
                    e.reason = Reason::from_code(code);
                }
                ENTRY_INVALIDITY => e.invalidity_date = Some(parse_time(&ber::single(value)?)?),
                other if critical => {
                    return Err(CrlError::UnknownCritical(format!("{other} on an entry (indirect CRLs are not supported)")));
                }
                _ => {}
            }
        }
    }
    Ok(e)
}

/// issuingDistributionPoint (§5.2.5): indirect CRLs and reason-partitioned CRLs would need
/// more than this checker knows, so they are refused rather than misread.
fn check_idp(value: &[u8]) -> Result<(), CrlError> {
    let t = ber::single(value)?;
    let mut r = t.children();
    while let Some(f) = r.next_tlv()? {
        match f.tag {
            0x83 => return Err(CrlError::Unsupported("onlySomeReasons")),
            0x84 if f.content.first().is_some_and(|&b| b != 0) => return Err(CrlError::Unsupported("indirect CRL")),
            _ => {}
        }
    }
    Ok(())
}

fn name_text(der: &[u8]) -> String {
    use der::Decode;
    x509_cert::name::Name::from_der(der).map(|n| n.to_string()).unwrap_or_else(|_| hex::encode(der))
}

/// What a CRL pair (base and optional delta) says about a serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrlVerdict {
    NotListed,
    Listed(Entry),
    /// removeFromCRL in the delta: a hold was released (§5.3.1).
    Released,
}

/// Looks a serial up in a base CRL and, when given, a delta CRL that applies to it
/// (§5.2.4: the delta's BaseCRLNumber ≤ the base's cRLNumber < the delta's cRLNumber).
pub fn decide(base: &Crl, delta: Option<&Crl>, serial: &[u8]) -> Result<CrlVerdict, CrlError> {
    if let Some(d) = delta {
        let applies = match (&base.crl_number, &d.delta_base, &d.crl_number) {
            (Some(b), Some(db), Some(dn)) => cmp_serial(db, b) != Ordering::Greater && cmp_serial(b, dn) == Ordering::Less,
            _ => false,
        };
        if applies && let Some(e) = d.lookup(serial)? {
            return Ok(if e.reason == Some(Reason::RemoveFromCrl) { CrlVerdict::Released } else { CrlVerdict::Listed(e) });
        }
    }
    Ok(match base.lookup(serial)? {
        Some(e) if e.reason == Some(Reason::RemoveFromCrl) => CrlVerdict::NotListed,
        Some(e) => CrlVerdict::Listed(e),
        None => CrlVerdict::NotListed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_order_is_numeric() {
        assert_eq!(cmp_serial(serial_key(&[0x00, 0x80]), serial_key(&[0x7f])), Ordering::Greater);
        assert_eq!(cmp_serial(serial_key(&[0x01, 0x00]), serial_key(&[0xff])), Ordering::Greater);
        assert_eq!(cmp_serial(serial_key(&[0x00, 0x05]), serial_key(&[0x05])), Ordering::Equal);
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(Crl::parse(vec![0x30, 0x03, 0x02, 0x01, 0x01], 1 << 20).is_err());
        assert!(matches!(Crl::parse(vec![0; 100], 10), Err(CrlError::TooLarge { .. })));
        assert!(Crl::parse(b"-----BEGIN X509 CRL-----\n!!\n-----END X509 CRL-----\n".to_vec(), 1 << 20).is_err());
    }

    #[test]
    fn reasons_round_trip() {
        for c in 0..=10 {
            if let Some(r) = Reason::from_code(c) {
                assert_eq!(Reason::parse(r.as_str()), Some(r));
            }
        }
        assert_eq!(Reason::from_code(7), None);
    }
}
