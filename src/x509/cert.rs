//! One DER certificate → [`CertFacts`]. Pure: bytes in, facts out.
//!
//! Decoding uses x509-cert's `Raw` profile: an inventory must accept the certificates that exist
//! (21-byte serials, odd time encodings), not only the ones RFC 5280 allows. An extension that
//! cannot be decoded becomes a warning on the certificate, not a lost certificate.

use crate::model::{CertFacts, Fingerprint, KeyFacts};
use der::Decode;
use sha2::Digest;
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
    name::{DistributionPointName, GeneralName},
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid X.509 certificate: {0}")]
pub struct CertError(pub String);

/// Parses one DER certificate. `der` must be exactly the certificate's encoding.
///
/// The structure is walked directly from the DER (RFC 5280 §4.1); extension values are decoded
/// with x509-cert's types. Names are rendered per RFC 4514 by [`super::name`].
pub fn parse_der(der: &[u8]) -> Result<CertFacts, CertError> {
    use super::ber;
    let bad = |e: ber::BerError| CertError(e.to_string());
    let cert = ber::single(der).map_err(bad)?;
    if cert.tag != ber::SEQUENCE {
        return Err(CertError("not a SEQUENCE".into()));
    }
    let mut top = cert.children();
    let tbs = top
        .required("certificate has no TBSCertificate")
        .map_err(bad)?
        .expect(ber::SEQUENCE, "TBSCertificate must be a SEQUENCE")
        .map_err(bad)?;
    let sig_alg = top
        .required("certificate has no signatureAlgorithm")
        .map_err(bad)?
        .expect(ber::SEQUENCE, "signatureAlgorithm must be a SEQUENCE")
        .map_err(bad)?;
    let sig = top.required("certificate has no signature").map_err(bad)?;
    if sig.tag != 0x03 || top.next_tlv().map_err(bad)?.is_some() {
        return Err(CertError("malformed signature or trailing fields".into()));
    }
    let sig_oid = ber::oid_string(&sig_alg.children().required("signatureAlgorithm has no OID").map_err(bad)?).map_err(bad)?;

    let mut r = tbs.children();
    let mut field = r.required("TBSCertificate is empty").map_err(bad)?;
    if field.tag == 0xa0 {
        field = r.required("TBSCertificate has no serialNumber").map_err(bad)?;
    }
    if field.tag != ber::INTEGER || field.content.is_empty() {
        return Err(CertError("serialNumber must be an INTEGER".into()));
    }
    let serial = field.content;
    r.required("TBSCertificate has no signature")
        .map_err(bad)?
        .expect(ber::SEQUENCE, "signature must be an AlgorithmIdentifier")
        .map_err(bad)?;
    let issuer = r.required("TBSCertificate has no issuer").map_err(bad)?.expect(ber::SEQUENCE, "issuer must be a Name").map_err(bad)?;
    let validity =
        r.required("TBSCertificate has no validity").map_err(bad)?.expect(ber::SEQUENCE, "validity must be a SEQUENCE").map_err(bad)?;
    let subject = r.required("TBSCertificate has no subject").map_err(bad)?.expect(ber::SEQUENCE, "subject must be a Name").map_err(bad)?;
    let spki = r
        .required("TBSCertificate has no subjectPublicKeyInfo")
        .map_err(bad)?
        .expect(ber::SEQUENCE, "subjectPublicKeyInfo must be a SEQUENCE")
        .map_err(bad)?;
    let mut extensions = None;
    while let Some(t) = r.next_tlv().map_err(bad)? {
        if t.tag == 0xa3 {
            extensions = Some(t);
        }
    }
    let mut v = validity.children();
    let mut time_warnings = Vec::new();
    let not_before = time(&v.required("validity has no notBefore").map_err(bad)?, &mut time_warnings)?;
    let not_after = time(&v.required("validity has no notAfter").map_err(bad)?, &mut time_warnings)?;

    let mut k = spki.children();
    let alg = k.required("SPKI has no algorithm").map_err(bad)?;
    let key_bits = k.required("SPKI has no subjectPublicKey").map_err(bad)?;
    if key_bits.tag != 0x03 || key_bits.content.is_empty() {
        return Err(CertError("subjectPublicKey must be a BIT STRING".into()));
    }
    let mut a = alg.children();
    let key_oid = ber::oid_string(&a.required("SPKI algorithm has no OID").map_err(bad)?).map_err(bad)?;
    let key_params = a.next_tlv().map_err(bad)?;

    let mut facts = CertFacts {
        fingerprint: Fingerprint::of_der(der),
        subject: super::name::rfc4514(subject.raw).map_err(|e| CertError(format!("subject: {e}")))?,
        issuer: super::name::rfc4514(issuer.raw).map_err(|e| CertError(format!("issuer: {e}")))?,
        common_name: super::name::common_name(subject.raw),
        serial: hex::encode_upper(serial),
        not_before,
        not_after,
        spki_sha256: hex::encode(sha2::Sha256::digest(spki.raw)),
        key: key_facts(&key_oid, key_params.as_ref(), &key_bits.content[1..]),
        signature_algorithm: oid_name(&sig_oid),
        is_ca: false,
        path_len: None,
        key_usage: Vec::new(),
        ext_key_usage: Vec::new(),
        sans: Vec::new(),
        ocsp_urls: Vec::new(),
        ca_issuers_urls: Vec::new(),
        crl_urls: Vec::new(),
        aki: None,
        ski: None,
        self_issued: subject.raw == issuer.raw,
        warnings: time_warnings,
    };
    if let Some(wrapper) = extensions {
        let list = wrapper.children().required("empty extensions").map_err(bad)?;
        let mut exts = list.children();
        while let Some(ext) = exts.next_tlv().map_err(bad)? {
            let mut e = ext.children();
            let oid = e.required("extension has no OID").map_err(bad)?;
            let mut value = e.required("extension has no value").map_err(bad)?;
            if value.tag == 0x01 {
                value = e.required("extension has no value").map_err(bad)?;
            }
            if value.tag != ber::OCTET_STRING {
                facts.warnings.push(format!("extension {} has no OCTET STRING value", ber::oid_string(&oid).unwrap_or_default()));
                continue;
            }
            if let Err(err) = apply_extension(&mut facts, oid.content, value.content) {
                facts
                    .warnings
                    .push(format!("extension {} could not be decoded: {err}", oid_name(&ber::oid_string(&oid).unwrap_or_default())));
            }
        }
    }
    Ok(facts)
}

/// A validity time. Every year RFC 5280 can encode is read (UTCTime 1950–2049, GeneralizedTime
/// 0000–9999). Fractional seconds break §4.1.2.5.2 but do not make the certificate any less
/// real: it is inventoried, with a warning naming the violation.
fn time(t: &super::ber::Tlv<'_>, warnings: &mut Vec<String>) -> Result<i64, CertError> {
    use super::time::{Rules, TimeError, parse};
    match parse(t.tag, t.content, Rules::Rfc5280) {
        Err(e @ TimeError::Fraction(_)) => {
            warnings.push(format!("validity: {e}"));
            parse(t.tag, t.content, Rules::Der).map_err(|e| CertError(format!("validity time: {e}")))
        }
        other => other.map_err(|e| CertError(format!("validity time: {e}"))),
    }
}

/// Decodes one extension into the facts. `oid` is the OID's content octets.
fn apply_extension(facts: &mut CertFacts, oid: &[u8], value: &[u8]) -> Result<(), der::Error> {
    use const_oid::db::rfc5280 as o;
    // 2.5.29.x is 55 1d x.
    match oid {
        [0x55, 0x1d, 0x13] => {
            let bc = BasicConstraints::from_der(value)?;
            facts.is_ca = bc.ca;
            facts.path_len = bc.path_len_constraint.map(u32::from);
        }
        [0x55, 0x1d, 0x0f] => facts.key_usage = key_usage_names(KeyUsage::from_der(value)?),
        [0x55, 0x1d, 0x25] => facts.ext_key_usage = ExtendedKeyUsage::from_der(value)?.0.iter().map(|o| eku_name(&o.to_string())).collect(),
        [0x55, 0x1d, 0x11] => facts.sans = SubjectAltName::from_der(value)?.0.iter().map(general_name).collect(),
        [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x01] => {
            for ad in AuthorityInfoAccessSyntax::from_der(value)?.0 {
                if let GeneralName::UniformResourceIdentifier(uri) = &ad.access_location {
                    match ad.access_method {
                        o::ID_AD_OCSP => facts.ocsp_urls.push(uri.to_string()),
                        o::ID_AD_CA_ISSUERS => facts.ca_issuers_urls.push(uri.to_string()),
                        _ => {}
                    }
                }
            }
        }
        [0x55, 0x1d, 0x1f] => {
            for dp in CrlDistributionPoints::from_der(value)?.0 {
                if let Some(DistributionPointName::FullName(names)) = &dp.distribution_point {
                    for n in names {
                        if let GeneralName::UniformResourceIdentifier(uri) = n {
                            facts.crl_urls.push(uri.to_string());
                        }
                    }
                }
            }
        }
        [0x55, 0x1d, 0x23] => facts.aki = AuthorityKeyIdentifier::from_der(value)?.key_identifier.map(|k| hex::encode(k.as_bytes())),
        [0x55, 0x1d, 0x0e] => facts.ski = Some(hex::encode(SubjectKeyIdentifier::from_der(value)?.0.as_bytes())),
        _ => {}
    }
    Ok(())
}

fn key_usage_names(ku: KeyUsage) -> Vec<String> {
    let all = [
        (KeyUsages::DigitalSignature, "digitalSignature"),
        (KeyUsages::NonRepudiation, "nonRepudiation"),
        (KeyUsages::KeyEncipherment, "keyEncipherment"),
        (KeyUsages::DataEncipherment, "dataEncipherment"),
        (KeyUsages::KeyAgreement, "keyAgreement"),
        (KeyUsages::KeyCertSign, "keyCertSign"),
        (KeyUsages::CRLSign, "cRLSign"),
        (KeyUsages::EncipherOnly, "encipherOnly"),
        (KeyUsages::DecipherOnly, "decipherOnly"),
    ];
    all.iter().filter(|(f, _)| ku.0.contains(*f)).map(|(_, n)| (*n).to_string()).collect()
}

fn general_name(n: &GeneralName) -> String {
    match n {
        GeneralName::DnsName(s) => format!("DNS:{s}"),
        GeneralName::Rfc822Name(s) => format!("email:{s}"),
        GeneralName::UniformResourceIdentifier(s) => format!("URI:{s}"),
        GeneralName::IpAddress(o) => match o.as_bytes().len() {
            4 => {
                let b: [u8; 4] = o.as_bytes().try_into().unwrap_or_default();
                format!("IP:{}", std::net::Ipv4Addr::from(b))
            }
            16 => {
                let b: [u8; 16] = o.as_bytes().try_into().unwrap_or_default();
                format!("IP:{}", std::net::Ipv6Addr::from(b))
            }
            _ => format!("IP:{}", hex::encode(o.as_bytes())),
        },
        GeneralName::DirectoryName(name) => format!("DirName:{name}"),
        GeneralName::RegisteredId(oid) => format!("RID:{oid}"),
        GeneralName::OtherName(o) => format!("other:{}", o.type_id),
        GeneralName::EdiPartyName(_) => "ediPartyName".to_string(),
    }
}

/// Key algorithm, size and curve from the SPKI algorithm and key bits.
pub fn key_facts(alg_oid: &str, params: Option<&super::ber::Tlv<'_>>, key_bits: &[u8]) -> KeyFacts {
    let named = |algorithm: &str, bits: Option<u32>, curve: Option<String>| KeyFacts { algorithm: algorithm.into(), bits, curve };
    match alg_oid {
        "1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10" => named("RSA", rsa_modulus_bits(key_bits), None),
        "1.2.840.10045.2.1" => {
            let curve_oid = params.filter(|p| p.tag == super::ber::OID).and_then(|p| super::ber::oid_string(p).ok());
            let (curve, bits) = match curve_oid.as_deref() {
                Some("1.2.840.10045.3.1.7") => ("P-256".to_string(), Some(256)),
                Some("1.3.132.0.34") => ("P-384".to_string(), Some(384)),
                Some("1.3.132.0.35") => ("P-521".to_string(), Some(521)),
                Some("1.3.132.0.10") => ("secp256k1".to_string(), Some(256)),
                Some("1.2.840.10045.3.1.1") => ("P-192".to_string(), Some(192)),
                Some("1.3.132.0.33") => ("P-224".to_string(), Some(224)),
                Some(other) => (other.to_string(), None),
                None => ("explicit parameters".to_string(), None),
            };
            named("EC", bits, Some(curve))
        }
        "1.3.101.112" => named("Ed25519", Some(256), None),
        "1.3.101.113" => named("Ed448", Some(456), None),
        "1.3.101.110" => named("X25519", Some(256), None),
        "1.2.840.10040.4.1" => named("DSA", params.and_then(|p| rsa_modulus_bits(p.raw)), None),
        other => named(&oid_name(other), None, None),
    }
}

/// RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER } (RFC 8017 §A.1.1)
/// Bit length of an RSAPublicKey's modulus (the subjectPublicKey BIT STRING's value).
pub fn rsa_modulus_bits(key: &[u8]) -> Option<u32> {
    let seq = super::ber::single(key).ok()?;
    let n = seq.children().required("modulus").ok()?;
    if n.tag != super::ber::INTEGER {
        return None;
    }
    let bytes = n.content;
    let first = bytes.iter().position(|&b| b != 0)?;
    let significant = &bytes[first..];
    Some(u32::try_from(significant.len() * 8).ok()? - significant[0].leading_zeros())
}

/// Human name for a signature or key algorithm OID; the dotted form when unknown.
pub fn oid_name(oid: &str) -> String {
    let known = match oid {
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "rsassaPss",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        "1.2.840.10040.4.3" => "dsa-with-SHA1",
        "2.16.840.1.101.3.4.3.2" => "dsa-with-SHA256",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_string();
    }
    oid.parse::<const_oid::ObjectIdentifier>()
        .ok()
        .and_then(|o| const_oid::db::DB.by_oid(&o).map(str::to_string))
        .unwrap_or_else(|| oid.to_string())
}

pub use crate::model::eku::{eku_name, normalise_eku};

/// Byte ranges of a certificate's TBS fields, for comparisons and hashing that must use the
/// exact DER (OCSP CertID, CRL issuer matching, chain building).
#[derive(Debug, Clone, Copy)]
pub struct RawParts<'a> {
    /// INTEGER content octets of the serial.
    pub serial: &'a [u8],
    /// DER of the issuer Name.
    pub issuer: &'a [u8],
    /// DER of the subject Name.
    pub subject: &'a [u8],
    /// DER of the SubjectPublicKeyInfo.
    pub spki: &'a [u8],
    /// The [3] EXPLICIT extensions wrapper, when present.
    extensions: Option<super::ber::Tlv<'a>>,
}

pub fn raw_parts(der: &[u8]) -> Result<RawParts<'_>, super::ber::BerError> {
    use super::ber;
    let cert = ber::single(der)?;
    let tbs = cert.children().required("certificate has no TBSCertificate")?;
    let mut r = tbs.children();
    let mut f = r.required("TBSCertificate is empty")?;
    if f.tag == 0xa0 {
        f = r.required("TBSCertificate has no serial")?;
    }
    let serial = f.content;
    r.required("TBSCertificate has no signature algorithm")?;
    let issuer = r.required("TBSCertificate has no issuer")?.raw;
    r.required("TBSCertificate has no validity")?;
    let subject = r.required("TBSCertificate has no subject")?.raw;
    let spki = r.required("TBSCertificate has no subjectPublicKeyInfo")?.raw;
    let mut extensions = None;
    while let Some(t) = r.next_tlv()? {
        if t.tag == 0xa3 {
            extensions = Some(t);
        }
    }
    Ok(RawParts { serial, issuer, subject, spki, extensions })
}

/// Whether the certificate carries an extension with this OID.
pub fn has_extension(der: &[u8], oid: &str) -> bool {
    extension_value(der, oid).is_some()
}

/// The value octets (inside the OCTET STRING) of the certificate's extension with this OID.
pub fn extension_value<'a>(der: &'a [u8], oid: &str) -> Option<&'a [u8]> {
    let parts = raw_parts(der).ok()?;
    let list = parts.extensions?.children().required("extensions").ok()?;
    let mut r = list.children();
    while let Ok(Some(ext)) = r.next_tlv() {
        let mut e = ext.children();
        if e.required("oid").ok().and_then(|o| super::ber::oid_string(&o).ok()).as_deref() != Some(oid) {
            continue;
        }
        let mut value = e.required("value").ok()?;
        if value.tag == 0x01 {
            value = e.required("value").ok()?;
        }
        return (value.tag == super::ber::OCTET_STRING).then_some(value.content);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_bits_from_modulus() {
        // SEQUENCE { INTEGER 0x00 0xC0 ..(256 bytes total incl. leading 0).., INTEGER 65537 }
        let mut n = vec![0x00, 0xC0];
        n.extend(std::iter::repeat_n(0x11, 255));
        let mut body = vec![0x02, 0x82, 0x01, 0x01];
        body.extend(&n);
        body.extend([0x02, 0x03, 0x01, 0x00, 0x01]);
        let mut seq = vec![0x30, 0x82, (body.len() >> 8) as u8, body.len() as u8];
        seq.extend(body);
        assert_eq!(rsa_modulus_bits(&seq), Some(2048));
    }

    #[test]
    fn eku_filters_normalise() {
        assert_eq!(normalise_eku("codesigning"), "codeSigning");
        assert_eq!(normalise_eku("code-signing"), "codeSigning");
        assert_eq!(normalise_eku("TimeStamping"), "timeStamping");
        assert_eq!(normalise_eku("1.3.6.1.5.5.7.3.3"), "codeSigning");
        assert_eq!(normalise_eku("1.2.3.4"), "1.2.3.4");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_der(b"").is_err());
        assert!(parse_der(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_err());
    }
}
