//! Certificate revocation lists (RFC 5280 §5), held compactly.
//!
//! A CRL is kept as its DER bytes plus a sorted index of byte offsets of its entries: four
//! bytes per revoked certificate on top of the file itself, so a multi-million-entry CRL never
//! exists as millions of parsed objects. Lookup is a binary search over serials read straight
//! from the DER; an entry's reason and dates are decoded only when it matches.
//!
//! Parsing and verification are pure; fetching lives in `fetch`.

use crate::model::{UnixTime, format_time};
use crate::x509::ber::{self, BerError, Tlv};
use crate::x509::time::{self, Rules, TimeError};
use crate::x509::verify::{self, VerifyError};
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
    #[error("CRL thisUpdate {0} is in the future")]
    NotYetValid(String),
    /// The CRL is sound but does not answer for this certificate (RFC 5280 §6.3.3 (b)).
    #[error("CRL does not cover this certificate: {0}")]
    OutOfScope(String),
    #[error("CRL is stale: nextUpdate was {0}")]
    Stale(String),
    #[error("{0}")]
    NotApplicable(&'static str),
}

impl From<BerError> for CrlError {
    fn from(e: BerError) -> Self {
        CrlError::Malformed(e.to_string())
    }
}

impl From<TimeError> for CrlError {
    fn from(e: TimeError) -> Self {
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

/// RFC 5280 §4.2.1.13 ReasonFlags as a bit mask: bit `n` is the flag named `n` (bit 0, unused,
/// is never set by [`reason_flags`]).
pub type ReasonFlags = u16;
/// keyCompromise (1) through aACompromise (8): what a complete CRL covers.
pub const ALL_REASONS: ReasonFlags = 0x1fe;

/// What a distribution point is called (§4.2.1.13 DistributionPointName): the full name's
/// GeneralNames (each its whole TLV), or a name relative to the CRL issuer (the RDN's DER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpName {
    Full(Vec<Vec<u8>>),
    Relative(Vec<u8>),
}

impl DpName {
    fn read(choice: &Tlv<'_>) -> Result<DpName, CrlError> {
        match choice.tag {
            0xa0 => {
                let mut names = Vec::new();
                let mut r = choice.children();
                while let Some(n) = r.next_tlv()? {
                    names.push(n.raw.to_vec());
                }
                if names.is_empty() {
                    return Err(CrlError::Malformed("distribution point with an empty fullName".into()));
                }
                Ok(DpName::Full(names))
            }
            0xa1 => Ok(DpName::Relative(choice.content.to_vec())),
            t => Err(CrlError::Malformed(format!("distribution point name has tag {t:#04x}"))),
        }
    }

    /// Whether the two names share a name (§6.3.3 (b)(1)): a URI or other GeneralName byte
    /// for byte, a directoryName as RFC 5280 §7.1 compares names.
    fn matches(&self, other: &DpName) -> bool {
        match (self, other) {
            (DpName::Full(a), DpName::Full(b)) => a.iter().any(|x| b.iter().any(|y| general_names_equal(x, y))),
            (DpName::Relative(a), DpName::Relative(b)) => a == b,
            _ => false,
        }
    }

    /// The URIs, for messages.
    fn describe(&self) -> String {
        match self {
            DpName::Full(names) => names
                .iter()
                .map(|n| match ber::single(n) {
                    Ok(t) if t.tag == 0x86 => String::from_utf8_lossy(t.content).into_owned(),
                    Ok(t) => format!("[{}] name", t.tag & 0x1f),
                    Err(_) => "?".into(),
                })
                .collect::<Vec<_>>()
                .join(", "),
            DpName::Relative(_) => "a name relative to the CRL issuer".into(),
        }
    }
}

fn general_names_equal(a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    // directoryName [4] EXPLICIT Name
    match (ber::single(a), ber::single(b)) {
        (Ok(x), Ok(y)) if x.tag == 0xa4 && y.tag == 0xa4 => crate::x509::name::names_match(x.content, y.content),
        _ => false,
    }
}

/// ReasonFlags BIT STRING content (unused-bits octet first) as a mask.
fn reason_flags(t: &Tlv<'_>) -> Result<ReasonFlags, CrlError> {
    let (&unused, bits) = t.content.split_first().ok_or(CrlError::Malformed("empty ReasonFlags".into()))?;
    if unused > 7 || bits.len() > 2 || (bits.is_empty() && unused != 0) {
        return Err(CrlError::Malformed("ReasonFlags BIT STRING".into()));
    }
    let mut mask: ReasonFlags = 0;
    for (i, byte) in bits.iter().enumerate() {
        for b in 0..8 {
            if byte & (0x80 >> b) != 0 {
                mask |= 1 << (i * 8 + b);
            }
        }
    }
    Ok(mask)
}

fn reason_names(mask: ReasonFlags) -> String {
    const NAMES: [&str; 9] = [
        "unused",
        "keyCompromise",
        "cACompromise",
        "affiliationChanged",
        "superseded",
        "cessationOfOperation",
        "certificateHold",
        "privilegeWithdrawn",
        "aACompromise",
    ];
    (1..9).filter(|b| mask & (1 << b) != 0).map(|b| NAMES[b]).collect::<Vec<_>>().join(", ")
}

/// One DistributionPoint of a certificate's cRLDistributionPoints (§4.2.1.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertDp {
    pub name: Option<DpName>,
    pub reasons: Option<ReasonFlags>,
    /// cRLIssuer is present: the CRL there is issued by someone else (an indirect CRL).
    pub crl_issuer: bool,
}

impl CertDp {
    /// The HTTP(S), LDAP or file URIs of its full name.
    pub fn uris(&self) -> Vec<String> {
        match &self.name {
            Some(DpName::Full(names)) => names
                .iter()
                .filter_map(|n| ber::single(n).ok().filter(|t| t.tag == 0x86).map(|t| String::from_utf8_lossy(t.content).into_owned()))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The distribution points of a certificate (DER), from its cRLDistributionPoints extension.
pub fn cert_distribution_points(cert_der: &[u8]) -> Result<Vec<CertDp>, CrlError> {
    let Some(value) = crate::x509::cert::extension_value(cert_der, "2.5.29.31") else { return Ok(Vec::new()) };
    let seq = ber::single(value)?.expect(ber::SEQUENCE, "cRLDistributionPoints must be a SEQUENCE")?;
    let mut out = Vec::new();
    let mut r = seq.children();
    while let Some(dp) = r.next_tlv()? {
        let mut f = dp.children();
        let mut point = CertDp { name: None, reasons: None, crl_issuer: false };
        while let Some(field) = f.next_tlv()? {
            match field.tag {
                0xa0 => point.name = Some(DpName::read(&field.children().required("empty distributionPoint")?)?),
                0x81 => point.reasons = Some(reason_flags(&field)?),
                0xa2 => point.crl_issuer = true,
                t => return Err(CrlError::Malformed(format!("DistributionPoint field with tag {t:#04x}"))),
            }
        }
        out.push(point);
    }
    Ok(out)
}

/// issuingDistributionPoint (§5.2.5), parsed whole.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Idp {
    pub name: Option<DpName>,
    pub only_user_certs: bool,
    pub only_ca_certs: bool,
    pub only_some_reasons: Option<ReasonFlags>,
    pub indirect: bool,
    pub only_attribute_certs: bool,
}

impl Idp {
    fn parse(value: &[u8]) -> Result<Idp, CrlError> {
        let t = ber::single(value)?.expect(ber::SEQUENCE, "issuingDistributionPoint must be a SEQUENCE")?;
        // §5.2.5: "conforming CRL issuers MUST NOT issue CRLs where the DER encoding of the
        // issuing distribution point extension is an empty sequence".
        if t.content.is_empty() {
            return Err(CrlError::Malformed("issuingDistributionPoint is an empty SEQUENCE".into()));
        }
        let mut idp = Idp::default();
        let mut r = t.children();
        let mut prev: Option<u8> = None;
        let boolean = |f: &Tlv<'_>| match f.content {
            [0] => Ok(false),
            [_] => Ok(true),
            _ => Err(CrlError::Malformed("issuingDistributionPoint BOOLEAN".into())),
        };
        while let Some(f) = r.next_tlv()? {
            // Fields [0]..[5] in their order, none repeated.
            let n = f.tag & 0x1f;
            if prev.is_some_and(|p| n <= p) {
                return Err(CrlError::Malformed(format!("issuingDistributionPoint field [{n}] repeated or out of order")));
            }
            prev = Some(n);
            match f.tag {
                0xa0 => idp.name = Some(DpName::read(&f.children().required("empty distributionPoint")?)?),
                0x81 => idp.only_user_certs = boolean(&f)?,
                0x82 => idp.only_ca_certs = boolean(&f)?,
                0x83 => idp.only_some_reasons = Some(reason_flags(&f)?),
                0x84 => idp.indirect = boolean(&f)?,
                0x85 => idp.only_attribute_certs = boolean(&f)?,
                t => return Err(CrlError::Malformed(format!("issuingDistributionPoint field with tag {t:#04x}"))),
            }
        }
        // §5.2.5: at most one of the three onlyContains… booleans is TRUE.
        if [idp.only_user_certs, idp.only_ca_certs, idp.only_attribute_certs].iter().filter(|b| **b).count() > 1 {
            return Err(CrlError::Malformed("issuingDistributionPoint asserts more than one onlyContains… field".into()));
        }
        Ok(idp)
    }
}

/// What a certificate looks like to the scope check (§6.3.3 (b)).
#[derive(Debug, Clone, Copy)]
pub struct CertScope<'a> {
    /// basicConstraints cA is TRUE.
    pub is_ca: bool,
    /// Its distribution points.
    pub dps: &'a [CertDp],
    /// The URL of the distribution point that led to the CRL; `None` for a CRL the
    /// configuration names (`revocation.crls`).
    pub via: Option<&'a str>,
}

/// The reasons for which a CRL answers for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// Every reason: "not listed" means not revoked.
    All,
    /// Only these reasons (onlySomeReasons, or a distribution point with `reasons`): a listed
    /// serial is revoked, an unlisted one is not known to be good.
    Some(ReasonFlags),
}

impl Coverage {
    pub fn describe(self) -> String {
        match self {
            Coverage::All => "every reason".into(),
            Coverage::Some(m) => reason_names(m),
        }
    }
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
    /// issuingDistributionPoint, when present.
    pub idp: Option<Idp>,
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

/// A CRL time (thisUpdate, nextUpdate, revocationDate): RFC 5280 §5.1.2.4–6 rules.
pub fn parse_time(t: &Tlv<'_>) -> Result<UnixTime, CrlError> {
    Ok(time::parse(t.tag, t.content, Rules::Rfc5280)?)
}

// Extension OIDs as content octets (2.5.29.x is 55 1d x).
const EXT_CRL_NUMBER: &[u8] = &[0x55, 0x1d, 0x14];
const EXT_DELTA: &[u8] = &[0x55, 0x1d, 0x1b];
const EXT_IDP: &[u8] = &[0x55, 0x1d, 0x1c];
const EXT_AKI: &[u8] = &[0x55, 0x1d, 0x23];
const EXT_FRESHEST: &[u8] = &[0x55, 0x1d, 0x2e];
const EXT_ISSUER_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x12];
/// authorityInfoAccess (§5.2.7), 1.3.6.1.5.5.7.1.1.
const EXT_AIA: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x01];
const ENTRY_REASON: &[u8] = &[0x55, 0x1d, 0x15];
const ENTRY_INVALIDITY: &[u8] = &[0x55, 0x1d, 0x18];
const ENTRY_CERT_ISSUER: &[u8] = &[0x55, 0x1d, 0x1d];

fn oid_text(oid: &[u8]) -> String {
    let der = ber::encode(ber::OID, oid);
    ber::single(&der).and_then(|t| ber::oid_string(&t)).unwrap_or_else(|_| hex::encode(oid))
}

/// One extension: OID content octets, critical flag, value octets.
struct Ext<'a> {
    oid: &'a [u8],
    critical: bool,
    value: &'a [u8],
}

/// Reads `Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension` strictly: each Extension is
/// exactly `{ OID, BOOLEAN?, OCTET STRING }`, and no extension appears twice (§4.2, §5.2).
/// Calls `each` per extension without allocating.
fn for_each_extension<'a>(list: &Tlv<'a>, mut each: impl FnMut(Ext<'a>) -> Result<(), CrlError>) -> Result<(), CrlError> {
    if list.tag != ber::SEQUENCE || list.content.is_empty() {
        return Err(CrlError::Malformed("Extensions must be a non-empty SEQUENCE".into()));
    }
    let mut seen: [&[u8]; 16] = [&[]; 16];
    let mut count = 0usize;
    let mut r = list.children();
    while let Some(ext) = r.next_tlv()? {
        let ext = ext.expect(ber::SEQUENCE, "Extension must be a SEQUENCE")?;
        let mut e = ext.children();
        let oid = e.required("extension has no OID")?;
        if oid.tag != ber::OID || oid.content.is_empty() {
            return Err(CrlError::Malformed("extension OID".into()));
        }
        let mut next = e.required("extension has no value")?;
        let mut critical = false;
        if next.tag == 0x01 {
            critical = match next.content {
                [0] => false,
                [_] => true,
                _ => return Err(CrlError::Malformed("extension critical flag must be one octet".into())),
            };
            next = e.required("extension has no value")?;
        }
        if next.tag != ber::OCTET_STRING {
            return Err(CrlError::Malformed("extension value must be an OCTET STRING".into()));
        }
        if !e.is_empty() {
            return Err(CrlError::Malformed(format!("extension {} has trailing fields", oid_text(oid.content))));
        }
        if seen[..count.min(seen.len())].contains(&oid.content) {
            return Err(CrlError::Malformed(format!("extension {} appears twice", oid_text(oid.content))));
        }
        if count < seen.len() {
            seen[count] = oid.content;
        }
        count += 1;
        each(Ext { oid: oid.content, critical, value: next.content })?;
    }
    Ok(())
}

fn uint_bytes(value: &[u8], what: &str) -> Result<Vec<u8>, CrlError> {
    let t = ber::single(value)?;
    // §5.2.3: a non-negative INTEGER of at most 20 octets.
    if t.tag != ber::INTEGER || t.content.is_empty() || t.content[0] & 0x80 != 0 || serial_key(t.content).len() > 20 {
        return Err(CrlError::Malformed(format!("{what} must be a non-negative INTEGER of at most 20 octets")));
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

/// One revokedCertificates entry, read and checked whole: `{ serial INTEGER, revocationDate
/// Time, crlEntryExtensions Extensions OPTIONAL }` and nothing more; reasonCode a defined
/// code (§5.3.1), invalidityDate a GeneralizedTime (§5.3.2); certificateIssuer belongs to
/// indirect CRLs, which are refused before entries are read (§5.3.3); any other critical
/// entry extension makes the CRL unusable (§5.3). Returns the serial's key, the entry, and
/// whether it had extensions.
fn read_entry<'a>(entry: &Tlv<'a>, delta: bool) -> Result<(&'a [u8], Entry, bool), CrlError> {
    let at = entry.offset;
    let bad = |what: &str| CrlError::Malformed(format!("revoked entry at byte {at}: {what}"));
    if entry.tag != ber::SEQUENCE {
        return Err(bad("not a SEQUENCE"));
    }
    let mut r = entry.children();
    let serial = r.next_tlv()?.ok_or_else(|| bad("no serial"))?;
    if serial.tag != ber::INTEGER || serial.content.is_empty() {
        return Err(bad("the serial is not an INTEGER"));
    }
    let date = r.next_tlv()?.ok_or_else(|| bad("no revocationDate"))?;
    let revoked_at = parse_time(&date).map_err(|e| bad(&format!("revocationDate: {e}")))?;
    let mut e = Entry { revoked_at, reason: None, invalidity_date: None };
    let exts = r.next_tlv()?;
    if !r.is_empty() {
        return Err(bad("fields after crlEntryExtensions"));
    }
    if let Some(exts) = &exts {
        for_each_extension(exts, |x| {
            match x.oid {
                ENTRY_REASON => {
                    let t = ber::single(x.value)?;
                    let code = match (t.tag, t.content) {
                        (0x0a, [c]) => Reason::from_code(u64::from(*c)),
                        _ => None,
                    };
                    let code = code.ok_or_else(|| bad("reasonCode is not a defined CRLReason (RFC 5280 §5.3.1)"))?;
                    // §5.3.1: "removeFromCRL (8) is used only in delta CRLs".
                    if code == Reason::RemoveFromCrl && !delta {
                        return Err(bad("removeFromCRL in a CRL that is not a delta CRL (RFC 5280 §5.3.1)"));
                    }
                    e.reason = Some(code);
                }
                ENTRY_INVALIDITY => {
                    let t = ber::single(x.value)?;
                    if t.tag != time::GENERALIZED_TIME {
                        return Err(bad("invalidityDate must be a GeneralizedTime (RFC 5280 §5.3.2)"));
                    }
                    e.invalidity_date = Some(parse_time(&t).map_err(|err| bad(&format!("invalidityDate: {err}")))?);
                }
                ENTRY_CERT_ISSUER => return Err(bad("certificateIssuer in a CRL that is not indirect (RFC 5280 §5.3.3)")),
                other if x.critical => {
                    return Err(CrlError::UnknownCritical(format!("{} on the entry at byte {at}", oid_text(other))));
                }
                _ => {}
            }
            Ok(())
        })
        .map_err(|err| match err {
            CrlError::Malformed(m) if !m.starts_with("revoked entry") => bad(&m),
            other => other,
        })?;
    }
    Ok((serial_key(serial.content), e, exts.is_some()))
}

impl Crl {
    /// Parses a DER CRL (PEM is accepted too), validates it whole and builds its index.
    ///
    /// RFC 5280 §5.1 is checked in one pass over the bytes: the TBSCertList fields in their
    /// order, none repeated, nothing after them at any level; `version` present and v2 when
    /// any extension is (an explicit v1, or v3, is refused); a present revokedCertificates
    /// list is not empty (§5.1.2.6); the outer signatureAlgorithm equals the TBS signature
    /// (§5.1.1.2); every entry is read whole (see [`read_entry`]), so one bad entry makes the
    /// whole CRL unusable rather than only the serial it carries (§5.3). Unrecognised
    /// critical CRL extensions are refused (§5.2); indirect CRLs are refused as unsupported.
    /// Does not verify the signature (see [`Crl::verify`]) nor check times against a clock.
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
        if data.len() > max_size {
            return Err(CrlError::TooLarge { size: data.len(), limit: max_size });
        }
        let sha256 = hex::encode(sha2::Sha256::digest(&data));
        let outer = ber::single(&data)?.expect(ber::SEQUENCE, "CertificateList must be a SEQUENCE")?;
        let signed = verify::split_signed(&outer)?;
        {
            let mut o = outer.children();
            o.required("tbs")?;
            o.required("alg")?;
            o.required("sig")?;
            if !o.is_empty() {
                return Err(CrlError::Malformed("fields after the CertificateList signature".into()));
            }
        }
        let (tbs, sig_alg, signature) = (range_of(&data, signed.tbs.raw), range_of(&data, signed.alg), range_of(&data, signed.signature));
        let mut r = signed.tbs.children();
        let mut field = r.required("TBSCertList is empty")?;
        let mut version = None;
        if field.tag == ber::INTEGER {
            // §5.1.2.1: "if present, MUST be v2" (INTEGER 1).
            if field.content != [1] {
                return Err(CrlError::Malformed(format!("CRL version {} (only v2 may be encoded)", hex::encode(field.content))));
            }
            version = Some(2);
            field = r.required("TBSCertList has no signature algorithm")?;
        }
        let tbs_alg = field.expect(ber::SEQUENCE, "TBSCertList signature must be an AlgorithmIdentifier")?;
        if tbs_alg.raw != signed.alg {
            return Err(CrlError::Malformed("signatureAlgorithm differs from tbsCertList.signature (RFC 5280 §5.1.1.2)".into()));
        }
        let issuer_tlv = r.required("TBSCertList has no issuer")?.expect(ber::SEQUENCE, "issuer must be a Name")?;
        if issuer_tlv.content.is_empty() {
            // §5.1.2.3: the issuer MUST be a non-empty distinguished name.
            return Err(CrlError::Malformed("empty issuer name".into()));
        }
        let issuer = range_of(&data, issuer_tlv.raw);
        let this_update = parse_time(&r.required("TBSCertList has no thisUpdate")?)?;
        let mut next_update = None;
        let mut revoked: Option<Tlv<'_>> = None;
        let mut crl_exts: Option<Tlv<'_>> = None;
        // Optional fields in their order: nextUpdate (1), revokedCertificates (2), [0] (3).
        let mut stage = 0;
        while let Some(t) = r.next_tlv()? {
            let this = match t.tag {
                time::UTC_TIME | time::GENERALIZED_TIME => 1,
                ber::SEQUENCE => 2,
                0xa0 => 3,
                _ => return Err(CrlError::Malformed(format!("unexpected field with tag {:#04x} in TBSCertList", t.tag))),
            };
            if this <= stage {
                return Err(CrlError::Malformed(format!("TBSCertList field with tag {:#04x} repeated or out of order", t.tag)));
            }
            stage = this;
            match this {
                1 => next_update = Some(parse_time(&t)?),
                2 => revoked = Some(t),
                _ => {
                    let mut w = t.children();
                    let list = w.required("empty crlExtensions")?;
                    if !w.is_empty() {
                        return Err(CrlError::Malformed("crlExtensions holds more than one Extensions".into()));
                    }
                    crl_exts = Some(list);
                }
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
            idp: None,
            sha256,
            der: Vec::new(),
        };
        if let Some(exts) = &crl_exts {
            for_each_extension(exts, |x| {
                match x.oid {
                    EXT_CRL_NUMBER => crl.crl_number = Some(uint_bytes(x.value, "cRLNumber")?),
                    EXT_DELTA => crl.delta_base = Some(uint_bytes(x.value, "BaseCRLNumber")?),
                    EXT_AKI => {
                        let t = ber::single(x.value)?.expect(ber::SEQUENCE, "authorityKeyIdentifier must be a SEQUENCE")?;
                        let mut a = t.children();
                        while let Some(f) = a.next_tlv()? {
                            if f.tag == 0x80 {
                                crl.aki = Some(f.content.to_vec());
                            }
                        }
                    }
                    EXT_FRESHEST => crl.freshest = dp_urls(x.value)?,
                    EXT_IDP => crl.idp = Some(Idp::parse(x.value)?),
                    EXT_ISSUER_ALT_NAME | EXT_AIA => {}
                    other if x.critical => return Err(CrlError::UnknownCritical(oid_text(other))),
                    _ => {}
                }
                Ok(())
            })?;
        }
        if crl.idp.as_ref().is_some_and(|i| i.indirect) {
            return Err(CrlError::Unsupported("indirect CRL (issuingDistributionPoint indirectCRL)"));
        }
        let mut entry_exts = false;
        if let Some(list) = revoked {
            if list.content.is_empty() {
                // §5.1.2.6: "When there are no revoked certificates, the revoked certificates
                // list MUST be absent."
                return Err(CrlError::Malformed("revokedCertificates is present but empty".into()));
            }
            let mut r = list.children();
            let mut sorted = true;
            let mut prev: Option<&[u8]> = None;
            while let Some(entry) = r.next_tlv()? {
                let (key, _, has_exts) = read_entry(&entry, crl.delta_base.is_some())?;
                entry_exts |= has_exts;
                match prev.map(|p| cmp_serial(p, key)) {
                    Some(Ordering::Greater) => sorted = false,
                    Some(Ordering::Equal) => return Err(duplicate(key)),
                    _ => {}
                }
                prev = Some(key);
                let off = u32::try_from(entry.offset).map_err(|_| CrlError::TooLarge { size: data.len(), limit: u32::MAX as usize })?;
                crl.entries.push(off);
            }
            if !sorted {
                let d = &data;
                crl.entries.sort_unstable_by(|&a, &b| cmp_serial(entry_serial(d, a), entry_serial(d, b)));
                // One serial, one entry: with two, the answer would depend on which one a
                // lookup lands on.
                if let Some(w) = crl.entries.windows(2).find(|w| entry_serial(d, w[0]) == entry_serial(d, w[1])) {
                    return Err(duplicate(entry_serial(d, w[0])));
                }
            }
        }
        // §5.1.2.1: extensions (of the CRL or of an entry) require the version field, v2.
        if (crl_exts.is_some() || entry_exts) && version.is_none() {
            return Err(CrlError::Malformed("a v1 CRL (no version field) carries extensions".into()));
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

    /// Whether the CRL's issuer is this name, compared as RFC 5280 §7.1 says.
    pub fn issued_by(&self, name_der: &[u8]) -> bool {
        crate::x509::name::names_match(self.issuer_der(), name_der)
    }

    /// Refuses a CRL issued in the future beyond the allowed clock skew (§6.3.3 (a) asks for
    /// a current CRL; a thisUpdate ahead of now is either a wrong clock or a forged date).
    pub fn check_this_update(&self, now: UnixTime, clock_skew: i64) -> Result<(), CrlError> {
        if self.this_update > now.saturating_add(clock_skew) {
            return Err(CrlError::NotYetValid(format_time(self.this_update)));
        }
        Ok(())
    }

    /// Verifies the signature, issuer name and key identifier against the issuing CA.
    /// `issuer_subject_der` and `issuer_spki_der` come from the CA certificate; `issuer_ski`
    /// and `issuer_key_usage` from its facts; an RSA issuer key shorter than `min_rsa_bits`
    /// is named as too weak.
    pub fn verify(
        &self,
        issuer_subject_der: &[u8],
        issuer_spki_der: &[u8],
        issuer_ski: Option<&[u8]>,
        issuer_key_usage: &[String],
        min_rsa_bits: u32,
    ) -> Result<(), CrlError> {
        if !self.issued_by(issuer_subject_der) {
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
        verify::verify(
            &self.der[self.sig_alg.clone()],
            issuer_spki_der,
            &self.der[self.tbs.clone()],
            &self.der[self.signature.clone()],
            min_rsa_bits,
        )?;
        Ok(())
    }

    /// Whether this CRL answers for the certificate, and for which reasons (§6.3.3 (b), (d)).
    pub fn scope(&self, cert: &CertScope<'_>) -> Result<Coverage, CrlError> {
        // The distribution point that led here; a configured CRL may stand for any of them.
        let via: Vec<&CertDp> = match cert.via {
            Some(url) => cert.dps.iter().filter(|d| d.uris().iter().any(|u| u == url)).collect(),
            None => cert.dps.iter().collect(),
        };
        let idp = self.idp.clone().unwrap_or_default();
        let mut dp_reasons: Option<ReasonFlags> = None;
        if let Some(name) = &idp.name {
            // §6.3.3 (b)(1): one of the IDP's names matches one of the distribution point's.
            let matching: Vec<&&CertDp> = via.iter().filter(|d| d.name.as_ref().is_some_and(|n| n.matches(name))).collect();
            if matching.is_empty() {
                return Err(CrlError::OutOfScope(format!(
                    "its issuing distribution point ({}) is not the certificate's distribution point",
                    name.describe()
                )));
            }
            dp_reasons = matching.iter().map(|d| d.reasons.unwrap_or(ALL_REASONS)).reduce(|a, b| a | b);
        } else if let Some(d) = via.first().filter(|_| cert.via.is_some()) {
            dp_reasons = Some(d.reasons.unwrap_or(ALL_REASONS));
        }
        // §6.3.3 (b)(2).
        if idp.only_user_certs && cert.is_ca {
            return Err(CrlError::OutOfScope("it lists only end-entity certificates (onlyContainsUserCerts) and this is a CA".into()));
        }
        if idp.only_ca_certs && !cert.is_ca {
            return Err(CrlError::OutOfScope("it lists only CA certificates (onlyContainsCACerts)".into()));
        }
        if idp.only_attribute_certs {
            return Err(CrlError::OutOfScope("it lists only attribute certificates (onlyContainsAttributeCerts)".into()));
        }
        // §6.3.3 (d): the reasons this CRL and this distribution point cover together.
        let mask = idp.only_some_reasons.unwrap_or(ALL_REASONS) & dp_reasons.unwrap_or(ALL_REASONS) & ALL_REASONS;
        Ok(if mask == ALL_REASONS { Coverage::All } else { Coverage::Some(mask) })
    }

    /// The entry for `serial` (DER INTEGER content bytes), decoded.
    pub fn lookup(&self, serial: &[u8]) -> Result<Option<Entry>, CrlError> {
        let key = serial_key(serial);
        let found = self.entries.binary_search_by(|&off| cmp_serial(entry_serial(&self.der, off), key));
        let Ok(i) = found else { return Ok(None) };
        let entry = ber::Reader::new(&self.der[self.entries[i] as usize..]).required("entry")?;
        read_entry(&entry, self.is_delta()).map(|(_, e, _)| Some(e))
    }
}

fn duplicate(serial: &[u8]) -> CrlError {
    CrlError::Malformed(format!("serial {} is listed twice", hex::encode_upper(serial)))
}

/// The serial of the entry at `off` (valid offsets only: they were produced by `parse`).
fn entry_serial(der: &[u8], off: u32) -> &[u8] {
    let mut r = ber::Reader::new(&der[off as usize..]);
    r.next_tlv().ok().flatten().and_then(|e| e.children().next_tlv().ok().flatten()).map(|s| serial_key(s.content)).unwrap_or(&[])
}

fn name_text(der: &[u8]) -> String {
    use der::Decode;
    x509_cert::name::Name::from_der(der).map(|n| n.to_string()).unwrap_or_else(|_| hex::encode(der))
}

/// The issuing CA, as CRL verification needs it (from its certificate and facts).
#[derive(Debug, Clone, Copy)]
pub struct CrlIssuer<'a> {
    pub subject_der: &'a [u8],
    pub spki_der: &'a [u8],
    pub ski: Option<&'a [u8]>,
    pub key_usage: &'a [String],
}

/// When a CRL is judged and how strictly: the `revocation:` settings that apply.
#[derive(Debug, Clone, Copy)]
pub struct Judging {
    pub now: UnixTime,
    pub clock_skew: i64,
    pub stale_grace: i64,
    pub min_rsa_bits: u32,
}

impl Crl {
    /// Everything RFC 5280 §6.3.3 asks of a complete CRL before it may answer for `cert`:
    /// issued and signed by the certificate's issuer (a), not a delta, not issued in the
    /// future, in scope (b), not stale beyond the grace. Returns the reasons it covers. The
    /// `check` command and `certvigil crl --cert` both decide through this.
    pub fn judge_base(&self, issuer: &CrlIssuer<'_>, cert: &CertScope<'_>, j: &Judging) -> Result<Coverage, CrlError> {
        self.verify(issuer.subject_der, issuer.spki_der, issuer.ski, issuer.key_usage, j.min_rsa_bits)?;
        if self.is_delta() {
            return Err(CrlError::NotApplicable("a delta CRL where a complete CRL was expected"));
        }
        self.check_this_update(j.now, j.clock_skew)?;
        let coverage = self.scope(cert)?;
        if let Some(n) = self.next_update.filter(|n| j.now > n.saturating_add(j.stale_grace)) {
            return Err(CrlError::Stale(format_time(n)));
        }
        Ok(coverage)
    }

    /// What a delta CRL must be to update `base` (§5.2.4): a delta, from the same issuer and
    /// key, current, with BaseCRLNumber ≤ the base's cRLNumber < its own cRLNumber, and the
    /// base's scope.
    pub fn judge_delta(&self, base: &Crl, issuer: &CrlIssuer<'_>, j: &Judging) -> Result<(), CrlError> {
        if !self.is_delta() {
            return Err(CrlError::NotApplicable("not a delta CRL"));
        }
        self.verify(issuer.subject_der, issuer.spki_der, issuer.ski, issuer.key_usage, j.min_rsa_bits)?;
        self.check_this_update(j.now, j.clock_skew)?;
        if let Some(n) = self.next_update.filter(|n| j.now > n.saturating_add(j.stale_grace)) {
            return Err(CrlError::Stale(format_time(n)));
        }
        // §5.2.4: BaseCRLNumber ≤ the base's cRLNumber < the delta's cRLNumber.
        let numbers_fit = match (&base.crl_number, &self.delta_base, &self.crl_number) {
            (Some(b), Some(db), Some(dn)) => cmp_serial(db, b) != Ordering::Greater && cmp_serial(b, dn) == Ordering::Less,
            _ => false,
        };
        if !numbers_fit {
            return Err(CrlError::NotApplicable("its CRL numbers do not fit the complete CRL (RFC 5280 §5.2.4)"));
        }
        if base.idp != self.idp {
            return Err(CrlError::NotApplicable("its scope (issuing distribution point) differs from the complete CRL's"));
        }
        Ok(())
    }
}

/// What a CRL pair (base and optional delta) says about a serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrlVerdict {
    NotListed,
    Listed(Entry),
    /// removeFromCRL in the delta: a hold was released (§5.3.1).
    Released,
    /// Not listed, but the CRL covers only some reasons (§6.3.3 (d)): not known to be good.
    NotCovered(ReasonFlags),
}

/// The answer of a judged base CRL (and an applicable delta) for `serial`, given the reasons
/// the base covers: a listed serial is revoked whatever the coverage; an unlisted one is good
/// only when every reason is covered.
pub fn answer(base: &Crl, delta: Option<&Crl>, serial: &[u8], coverage: Coverage) -> Result<CrlVerdict, CrlError> {
    let verdict = decide(base, delta, serial)?;
    Ok(match (coverage, verdict) {
        (Coverage::Some(mask), CrlVerdict::NotListed | CrlVerdict::Released) => CrlVerdict::NotCovered(mask),
        (_, v) => v,
    })
}

/// Names of the reasons in a mask, for messages.
pub fn describe_reasons(mask: ReasonFlags) -> String {
    reason_names(mask)
}

/// Looks a serial up in a base CRL and, when given, a delta CRL that has passed
/// [`Crl::judge_delta`] for it. A delta's entry overrides the base's, except that its
/// removeFromCRL (§5.3.1: the certificate expired or came off hold) releases only a hold: a
/// base entry with any other reason stays revoked, whatever the delta says.
pub fn decide(base: &Crl, delta: Option<&Crl>, serial: &[u8]) -> Result<CrlVerdict, CrlError> {
    let listed = base.lookup(serial)?;
    if let Some(e) = delta.map(|d| d.lookup(serial)).transpose()?.flatten() {
        return Ok(match (e.reason, listed) {
            (Some(Reason::RemoveFromCrl), None) => CrlVerdict::Released,
            (Some(Reason::RemoveFromCrl), Some(b)) if b.reason == Some(Reason::CertificateHold) => CrlVerdict::Released,
            (Some(Reason::RemoveFromCrl), Some(b)) => CrlVerdict::Listed(b),
            _ => CrlVerdict::Listed(e),
        });
    }
    Ok(match listed {
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
    fn reason_flags_follow_the_bit_string_numbering() {
        // ReasonFlags: bit 1 keyCompromise, bit 2 cACompromise (RFC 5280 §4.2.1.13); BIT
        // STRING bit 0 is the high bit of the first octet (X.690 §8.6.2.3).
        let one = |content: &[u8]| reason_flags(&ber::single(&ber::encode(0x83, content)).expect("tlv")).expect("flags");
        assert_eq!(one(&[0x05, 0x60]), (1 << 1) | (1 << 2));
        assert_eq!(describe_reasons(one(&[0x05, 0x60])), "keyCompromise, cACompromise");
        assert_eq!(one(&[0x07, 0x00, 0x80]), 1 << 8);
        assert_eq!(one(&[0x07, 0x7f, 0x80]) & ALL_REASONS, ALL_REASONS);
        assert!(reason_flags(&ber::single(&ber::encode(0x83, &[0x08, 0x80])).expect("tlv")).is_err());
        assert!(reason_flags(&ber::single(&ber::encode(0x83, &[])).expect("tlv")).is_err());
    }

    #[test]
    fn issuing_distribution_point_fields_are_ordered_and_single() {
        let idp = |body: &[u8]| Idp::parse(&ber::encode(ber::SEQUENCE, body));
        assert!(idp(&[0x81, 0x01, 0xff]).expect("user only").only_user_certs);
        assert!(idp(&[0x82, 0x01, 0xff, 0x84, 0x01, 0x00]).expect("CA only").only_ca_certs);
        assert!(idp(&[0x82, 0x01, 0xff, 0x81, 0x01, 0x00]).is_err(), "out of order");
        assert!(idp(&[0x81, 0x01, 0xff, 0x81, 0x01, 0xff]).is_err(), "repeated");
        assert!(idp(&[0x81, 0x01, 0xff, 0x85, 0x01, 0xff]).is_err(), "two onlyContains");
        assert!(idp(&[0x86, 0x01, 0xff]).is_err(), "unknown field");
        assert!(idp(&[0x81, 0x02, 0xff, 0xff]).is_err(), "BOOLEAN of two octets");
        assert!(idp(&[]).is_err(), "empty SEQUENCE");
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
