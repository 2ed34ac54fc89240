//! OCSP (RFC 6960) requests and response verification. Pure: bytes, keys and `now` in.
//!
//! Requests use a SHA-1 CertID, which every responder understands (§4.1.1; RFC 5019 §2.1.1),
//! and an optional nonce (RFC 8954). A response yields a status only when it is a successful
//! basic response, signed by the issuer or by a responder certificate the issuer signed for
//! id-kp-OCSPSigning (§4.2.2.2), answers for this CertID, echoes the nonce when one was sent,
//! and is current (thisUpdate not ahead of now beyond the skew, nextUpdate not passed).

use super::crl::Reason;
use crate::model::UnixTime;
use crate::x509::ber::{self, BerError, Tlv};
use crate::x509::name::names_match;
use crate::x509::time::{self, Rules};
use crate::x509::verify;
use sha1::{Digest, Sha1};

const SHA1_OID: &str = "1.3.14.3.2.26";
const BASIC: &str = "1.3.6.1.5.5.7.48.1.1";
const NONCE: &str = "1.3.6.1.5.5.7.48.1.2";
const NOCHECK: &str = "1.3.6.1.5.5.7.48.1.5";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OcspError {
    #[error("responder answered {0}")]
    ResponderStatus(&'static str),
    #[error("malformed OCSP response: {0}")]
    Malformed(String),
    #[error("response signature: {0}")]
    Signature(#[from] verify::VerifyError),
    #[error("response is signed by `{0}`, which is neither the issuer nor a responder it authorised")]
    UnauthorisedSigner(String),
    #[error("response has no answer for this certificate")]
    NoMatchingResponse,
    #[error("response nonce does not match the request's (possible replay)")]
    NonceMismatch,
    #[error("responder did not echo the request nonce")]
    NonceMissing,
    #[error("response thisUpdate {0} is in the future")]
    NotYetValid(String),
    #[error("response expired at {0} (nextUpdate)")]
    Expired(String),
    #[error("response has no nextUpdate and its thisUpdate {0} is more than a day old")]
    TooOld(String),
}

/// How long an answer without nextUpdate stays current after its thisUpdate. RFC 6960
/// §4.2.2.1: without nextUpdate "newer revocation information is available all the time", so
/// an old answer is not current; without a nonce it could be replayed for ever. A day, as
/// browsers allow.
pub const NO_NEXT_UPDATE_LIFETIME: i64 = 86_400;

impl From<BerError> for OcspError {
    fn from(e: BerError) -> Self {
        OcspError::Malformed(e.to_string())
    }
}

/// The identity of a certificate in OCSP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertId {
    pub name_hash: Vec<u8>,
    pub key_hash: Vec<u8>,
    /// The serial's INTEGER content octets as in the certificate.
    pub serial: Vec<u8>,
}

/// The issuer facts verification needs.
#[derive(Debug, Clone)]
pub struct Issuer<'a> {
    pub subject_der: &'a [u8],
    pub spki_der: &'a [u8],
}

/// SHA-1 of the issuer's subjectPublicKey BIT STRING value (excluding tag, length and the
/// unused-bits octet), §4.1.1.
pub fn key_hash(spki_der: &[u8]) -> Result<Vec<u8>, OcspError> {
    let spki = ber::single(spki_der)?;
    let mut r = spki.children();
    r.required("SPKI algorithm")?;
    let bits = r.required("SPKI key")?;
    let key = bits.content.get(1..).ok_or(OcspError::Malformed("empty key".into()))?;
    Ok(Sha1::digest(key).to_vec())
}

pub fn cert_id(issuer: &Issuer<'_>, serial: &[u8]) -> Result<CertId, OcspError> {
    Ok(CertId { name_hash: Sha1::digest(issuer.subject_der).to_vec(), key_hash: key_hash(issuer.spki_der)?, serial: serial.to_vec() })
}

fn encode_cert_id(id: &CertId) -> Vec<u8> {
    let alg = ber::encode(ber::SEQUENCE, &[ber::encode_oid(SHA1_OID), vec![0x05, 0x00]].concat());
    let body = [
        alg,
        ber::encode(ber::OCTET_STRING, &id.name_hash),
        ber::encode(ber::OCTET_STRING, &id.key_hash),
        ber::encode(ber::INTEGER, &id.serial),
    ]
    .concat();
    ber::encode(ber::SEQUENCE, &body)
}

/// DER OCSPRequest for one certificate, with a nonce extension when given.
pub fn build_request(id: &CertId, nonce: Option<&[u8]>) -> Vec<u8> {
    let request = ber::encode(ber::SEQUENCE, &encode_cert_id(id));
    let mut tbs = ber::encode(ber::SEQUENCE, &request);
    if let Some(n) = nonce {
        // RFC 8954 §2.1: the extension value is an OCTET STRING wrapping the nonce OCTET STRING.
        let ext = ber::encode(
            ber::SEQUENCE,
            &[ber::encode_oid(NONCE), ber::encode(ber::OCTET_STRING, &ber::encode(ber::OCTET_STRING, n))].concat(),
        );
        tbs.extend(ber::encode(0xa2, &ber::encode(ber::SEQUENCE, &ext)));
    }
    ber::encode(ber::SEQUENCE, &ber::encode(ber::SEQUENCE, &tbs))
}

/// RFC 5019 §5: a GET URL when the encoded request keeps the URL under 255 bytes.
pub fn get_url(responder: &str, request: &[u8]) -> Option<String> {
    use base64ct::{Base64, Encoding};
    let b64 = Base64::encode_string(request);
    let escaped: String = b64
        .chars()
        .map(|c| match c {
            '+' => "%2B".to_string(),
            '/' => "%2F".to_string(),
            '=' => "%3D".to_string(),
            c => c.to_string(),
        })
        .collect();
    let url = format!("{}/{}", responder.trim_end_matches('/'), escaped);
    (url.len() < 255).then_some(url)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertStatus {
    Good,
    Revoked { at: UnixTime, reason: Option<Reason> },
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: CertStatus,
    pub produced_at: UnixTime,
    pub this_update: UnixTime,
    pub next_update: Option<UnixTime>,
    /// Notes worth recording (e.g. the responder certificate's own status was not checked).
    pub notes: Vec<String>,
}

/// An OCSP time: DER GeneralizedTime, fractional seconds allowed (RFC 6960 asks for nothing
/// stricter than DER; responders send producedAt and thisUpdate with microseconds).
fn parse_time(t: &Tlv<'_>) -> Result<UnixTime, OcspError> {
    if t.tag != time::GENERALIZED_TIME {
        return Err(OcspError::Malformed(format!("time with tag {:#04x} (RFC 6960 uses GeneralizedTime)", t.tag)));
    }
    time::parse(t.tag, t.content, Rules::Der).map_err(|e| OcspError::Malformed(e.to_string()))
}

/// Verifies a DER OCSPResponse for `id` issued by `issuer`. An RSA signer key shorter than
/// `min_rsa_bits` is named as too weak, never taken for a forgery.
pub fn verify_response(
    der: &[u8],
    id: &CertId,
    issuer: &Issuer<'_>,
    nonce: Option<&[u8]>,
    now: UnixTime,
    skew: i64,
    min_rsa_bits: u32,
) -> Result<Answer, OcspError> {
    let outer = ber::single(der)?.expect(ber::SEQUENCE, "OCSPResponse must be a SEQUENCE")?;
    let mut r = outer.children();
    let status = r.required("OCSPResponse has no responseStatus")?;
    if status.tag != 0x0a {
        return Err(OcspError::Malformed("responseStatus must be ENUMERATED".into()));
    }
    match status.content.first().copied().unwrap_or(255) {
        0 => {}
        1 => return Err(OcspError::ResponderStatus("malformedRequest")),
        2 => return Err(OcspError::ResponderStatus("internalError")),
        3 => return Err(OcspError::ResponderStatus("tryLater")),
        5 => return Err(OcspError::ResponderStatus("sigRequired")),
        6 => return Err(OcspError::ResponderStatus("unauthorized")),
        _ => return Err(OcspError::ResponderStatus("an unknown status")),
    }
    let bytes = r.required("successful response has no responseBytes")?.expect(0xa0, "responseBytes must be [0]")?;
    let rb = bytes.children().required("empty responseBytes")?;
    let mut rbr = rb.children();
    let rtype = ber::oid_string(&rbr.required("responseBytes has no type")?)?;
    if rtype != BASIC {
        return Err(OcspError::Malformed(format!("response type {rtype} is not id-pkix-ocsp-basic")));
    }
    let basic_octets =
        rbr.required("responseBytes has no response")?.expect(ber::OCTET_STRING, "response must be an OCTET STRING")?.octets()?;
    let basic = ber::single(&basic_octets)?;
    let signed = verify::split_signed(&basic)?;
    let mut extra_certs: Vec<&[u8]> = Vec::new();
    {
        let mut b = basic.children();
        b.required("tbs")?;
        b.required("alg")?;
        b.required("sig")?;
        if let Some(certs) = b.next_tlv()? {
            let seq = certs.children().required("empty certs")?;
            let mut c = seq.children();
            while let Some(cert) = c.next_tlv()? {
                extra_certs.push(cert.raw);
            }
        }
    }

    // ResponseData
    let mut d = signed.tbs.children();
    let mut field = d.required("ResponseData is empty")?;
    if field.tag == 0xa0 {
        field = d.required("ResponseData has no responderID")?;
    }
    let responder_id = field;
    let produced_at = parse_time(&d.required("ResponseData has no producedAt")?)?;
    let responses = d.required("ResponseData has no responses")?;
    let mut response_nonce: Option<Vec<u8>> = None;
    if let Some(exts) = d.next_tlv()?
        && exts.tag == 0xa1
    {
        let list = exts.children().required("empty responseExtensions")?;
        let mut er = list.children();
        while let Some(ext) = er.next_tlv()? {
            let mut e = ext.children();
            let oid = ber::oid_string(&e.required("extension OID")?)?;
            let mut v = e.required("extension value")?;
            if v.tag == 0x01 {
                v = e.required("extension value")?;
            }
            if oid == NONCE {
                // Accept both the RFC 8954 form (OCTET STRING in the value) and the raw
                // value some responders send.
                let inner = ber::single(v.content).ok().filter(|t| t.tag == ber::OCTET_STRING).map(|t| t.content.to_vec());
                response_nonce = Some(inner.unwrap_or_else(|| v.content.to_vec()));
            }
        }
    }

    // Who signed: the issuer, or a delegated responder the issuer certified (§4.2.2.2).
    let mut notes = Vec::new();
    let signer_spki: Vec<u8> = if responder_matches(&responder_id, issuer.subject_der, issuer.spki_der)? {
        issuer.spki_der.to_vec()
    } else {
        let mut chosen = None;
        let mut weak = None;
        for cert in &extra_certs {
            let Ok(parts) = crate::x509::cert::raw_parts(cert) else { continue };
            if !responder_matches(&responder_id, parts.subject, parts.spki)? {
                continue;
            }
            if !names_match(parts.issuer, issuer.subject_der) {
                continue;
            }
            match verify::verify_cert_signed_by(cert, issuer.spki_der, min_rsa_bits) {
                Ok(()) => {}
                Err(e @ verify::VerifyError::WeakKey { .. }) => {
                    weak = Some(e);
                    continue;
                }
                Err(_) => continue,
            }
            let Ok(facts) = crate::x509::cert::parse_der(cert) else { continue };
            if !facts.ext_key_usage.iter().any(|e| e == "OCSPSigning") || now < facts.not_before || now > facts.not_after {
                continue;
            }
            if !crate::x509::cert::has_extension(cert, NOCHECK) {
                notes.push("delegated responder certificate lacks id-pkix-ocsp-nocheck; its own revocation status was not checked".into());
            }
            chosen = Some(parts.spki.to_vec());
            break;
        }
        match (chosen, weak) {
            (Some(spki), _) => spki,
            (None, Some(e)) => return Err(OcspError::Signature(e)),
            (None, None) => return Err(OcspError::UnauthorisedSigner(responder_text(&responder_id))),
        }
    };
    verify::verify(signed.alg, &signer_spki, signed.tbs.raw, signed.signature, min_rsa_bits)?;

    if let Some(sent) = nonce {
        match &response_nonce {
            Some(got) if got.as_slice() == sent => {}
            Some(_) => return Err(OcspError::NonceMismatch),
            None => return Err(OcspError::NonceMissing),
        }
    }

    let mut rr = responses.children();
    while let Some(single) = rr.next_tlv()? {
        let mut s = single.children();
        let cid = s.required("SingleResponse has no certID")?;
        if !cert_id_matches(&cid, id)? {
            continue;
        }
        let st = s.required("SingleResponse has no certStatus")?;
        let status = match st.tag {
            0x80 => CertStatus::Good,
            0xa1 => {
                let mut ri = st.children();
                let at = parse_time(&ri.required("RevokedInfo has no revocationTime")?)?;
                let reason = match ri.next_tlv()? {
                    Some(t) if t.tag == 0xa0 => {
                        t.children().required("empty reason")?.content.first().and_then(|&c| Reason::from_code(u64::from(c)))
                    }
                    _ => None,
                };
                CertStatus::Revoked { at, reason }
            }
            0x82 => CertStatus::Unknown,
            other => return Err(OcspError::Malformed(format!("certStatus tag {other:#04x}"))),
        };
        let this_update = parse_time(&s.required("SingleResponse has no thisUpdate")?)?;
        let next_update = match s.next_tlv()? {
            Some(t) if t.tag == 0xa0 => Some(parse_time(&t.children().required("empty nextUpdate")?)?),
            _ => None,
        };
        if this_update > now.saturating_add(skew) {
            return Err(OcspError::NotYetValid(crate::model::format_time(this_update)));
        }
        if let Some(n) = next_update.filter(|n| now > n.saturating_add(skew)) {
            return Err(OcspError::Expired(crate::model::format_time(n)));
        }
        if next_update.is_none() && now > this_update.saturating_add(NO_NEXT_UPDATE_LIFETIME).saturating_add(skew) {
            return Err(OcspError::TooOld(crate::model::format_time(this_update)));
        }
        return Ok(Answer { status, produced_at, this_update, next_update, notes });
    }
    Err(OcspError::NoMatchingResponse)
}

fn cert_id_matches(t: &Tlv<'_>, id: &CertId) -> Result<bool, OcspError> {
    let mut r = t.children();
    let alg = r.required("CertID has no hashAlgorithm")?;
    let oid = ber::oid_string(&alg.children().required("hash OID")?)?;
    let name_hash = r.required("CertID has no issuerNameHash")?.content;
    let key_hash = r.required("CertID has no issuerKeyHash")?.content;
    let serial = r.required("CertID has no serialNumber")?.content;
    Ok(oid == SHA1_OID
        && name_hash == id.name_hash.as_slice()
        && key_hash == id.key_hash.as_slice()
        && super::crl::serial_key(serial) == super::crl::serial_key(&id.serial))
}

/// ResponderID ::= CHOICE { byName [1] Name, byKey [2] KeyHash }
fn responder_matches(rid: &Tlv<'_>, subject_der: &[u8], spki_der: &[u8]) -> Result<bool, OcspError> {
    match rid.tag {
        // RFC 6960 §4.2.2.3 byName: compared as RFC 5280 §7.1 compares names.
        0xa1 => Ok(names_match(rid.children().required("empty byName")?.raw, subject_der)),
        0xa2 => Ok(rid.children().required("empty byKey")?.content == key_hash(spki_der)?.as_slice()),
        _ => Err(OcspError::Malformed("responderID is neither byName nor byKey".into())),
    }
}

fn responder_text(rid: &Tlv<'_>) -> String {
    use der::Decode;
    match rid.tag {
        0xa1 => rid
            .children()
            .required("n")
            .ok()
            .and_then(|n| x509_cert::name::Name::from_der(n.raw).ok())
            .map(|n| n.to_string())
            .unwrap_or_else(|| "an unreadable name".into()),
        _ => rid.children().required("k").map(|k| format!("key {}", hex::encode(k.content))).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_structure() {
        let id = CertId { name_hash: vec![1; 20], key_hash: vec![2; 20], serial: vec![0x10, 0x01] };
        let req = build_request(&id, Some(b"0123456789abcdef"));
        // The CertID read field by field (its agreement with openssl is the test below).
        assert_eq!(cert_id_in_request(&req), (SHA1_OID.to_string(), vec![1; 20], vec![2; 20], vec![0x10, 0x01]));
        let t = ber::single(&req).unwrap();
        let tbs = t.children().required("tbs").unwrap();
        let mut f = tbs.children();
        f.required("list").unwrap();
        let exts = f.required("exts").unwrap();
        assert_eq!(exts.tag, 0xa2);
        // RFC 8954 §2.1: id-pkix-ocsp-nonce, its value an OCTET STRING holding the nonce's.
        let ext = exts.children().required("Extensions").unwrap().children().required("Extension").unwrap();
        let mut e = ext.children();
        assert_eq!(ber::oid_string(&e.required("extnID").unwrap()).unwrap(), NONCE);
        let value = e.required("extnValue").unwrap();
        assert_eq!(ber::single(value.content).unwrap().content, b"0123456789abcdef");
        assert!(get_url("http://ocsp.example", &req).is_some());
        assert!(get_url(&format!("http://{}", "x".repeat(250)), &req).is_none());
    }

    /// A CA (its key from `key`) and a leaf it issued with `serial`, as DER, generated now.
    fn ca_and_leaf(key: rcgen::KeyPair, serial: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut ca = rcgen::CertificateParams::default();
        ca.distinguished_name = rcgen::DistinguishedName::new();
        ca.distinguished_name.push(rcgen::DnType::CountryName, "DE");
        ca.distinguished_name.push(rcgen::DnType::OrganizationName, "certvigil tests");
        ca.distinguished_name.push(rcgen::DnType::CommonName, "OCSP CertID Test CA");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let mut leaf = rcgen::CertificateParams::new(vec!["leaf.example.test".to_string()]).unwrap();
        leaf.serial_number = Some(rcgen::SerialNumber::from_slice(serial));
        let leaf_cert = leaf.signed_by(&leaf_key, &rcgen::Issuer::from_params(&ca, &key)).unwrap();
        (ca_cert.der().to_vec(), leaf_cert.der().to_vec())
    }

    fn pem_file(path: &std::path::Path, der: &[u8]) {
        use base64ct::Encoding;
        let b64 = base64ct::Base64::encode_string(der);
        let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|l| std::str::from_utf8(l).unwrap()).collect();
        std::fs::write(path, format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))).unwrap();
    }

    fn openssl(args: &[&str], dir: &std::path::Path) -> Vec<u8> {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("openssl is required by this test (apt install openssl): {e}"));
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// The CertID inside an OCSPRequest: (hash algorithm OID, issuerNameHash, issuerKeyHash,
    /// serialNumber content octets). Read field by field, not through `cert_id_matches`.
    fn cert_id_in_request(req: &[u8]) -> (String, Vec<u8>, Vec<u8>, Vec<u8>) {
        let ocsp_request = ber::single(req).unwrap();
        let tbs = ocsp_request.children().required("tbsRequest").unwrap();
        let mut fields = tbs.children();
        let mut list = fields.required("requestList").unwrap();
        if list.tag == 0xa0 {
            list = fields.required("requestList after version").unwrap();
        }
        let mut requests = list.children();
        let request = requests.required("Request").unwrap();
        assert!(requests.next_tlv().unwrap().is_none(), "one Request");
        let cid = request.children().required("reqCert").unwrap();
        let mut c = cid.children();
        let alg = c.required("hashAlgorithm").unwrap();
        let oid = ber::oid_string(&alg.children().required("algorithm").unwrap()).unwrap();
        let name_hash = c.required("issuerNameHash").unwrap();
        let key_hash = c.required("issuerKeyHash").unwrap();
        let serial = c.required("serialNumber").unwrap();
        assert_eq!((name_hash.tag, key_hash.tag, serial.tag), (ber::OCTET_STRING, ber::OCTET_STRING, ber::INTEGER));
        (oid, name_hash.content.to_vec(), key_hash.content.to_vec(), serial.content.to_vec())
    }

    /// The CertID certvigil computes (as the revocation pass does: the issuer's subject and
    /// SPKI, the leaf's serial, all from the DER) equals the one in the request the real
    /// `openssl ocsp` builds for the same certificates (RFC 6960 §4.1.1), for an EC and an RSA
    /// issuer and for a serial whose high bit is set (DER adds a leading zero octet).
    #[test]
    fn cert_id_equals_the_one_openssl_puts_in_its_request() {
        let dir = tempfile::tempdir().unwrap();
        let rsa_pem =
            String::from_utf8(openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], dir.path())).unwrap();
        let cases = [
            ("P-256 issuer", rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(), vec![0x10, 0x01]),
            ("RSA issuer, serial with the high bit set", rcgen::KeyPair::from_pem(&rsa_pem).unwrap(), vec![0x8f, 0xab, 0x01, 0x02, 0x03]),
        ];
        for (what, key, serial) in cases {
            let (ca, leaf) = ca_and_leaf(key, &serial);
            pem_file(&dir.path().join("ca.pem"), &ca);
            pem_file(&dir.path().join("leaf.pem"), &leaf);
            let _ = std::fs::remove_file(dir.path().join("req.der"));
            openssl(&["ocsp", "-issuer", "ca.pem", "-cert", "leaf.pem", "-reqout", "req.der", "-no_nonce"], dir.path());
            let theirs = std::fs::read(dir.path().join("req.der")).unwrap();
            let (oid, name_hash, key_hash, their_serial) = cert_id_in_request(&theirs);

            let ip = crate::x509::cert::raw_parts(&ca).unwrap();
            let lp = crate::x509::cert::raw_parts(&leaf).unwrap();
            let ours = cert_id(&Issuer { subject_der: ip.subject, spki_der: ip.spki }, lp.serial).unwrap();
            assert_eq!(oid, SHA1_OID, "{what}: openssl's hash algorithm");
            assert_eq!(hex::encode(&ours.name_hash), hex::encode(&name_hash), "{what}: issuerNameHash");
            assert_eq!(hex::encode(&ours.key_hash), hex::encode(&key_hash), "{what}: issuerKeyHash");
            assert_eq!(hex::encode(&ours.serial), hex::encode(&their_serial), "{what}: serialNumber");
            if serial[0] & 0x80 != 0 {
                assert_eq!(their_serial[0], 0, "{what}: the DER serial carries a leading zero");
            }
            // The whole request without a nonce is the same DER, hash algorithm parameters
            // (NULL) included.
            assert_eq!(hex::encode(build_request(&ours, None)), hex::encode(&theirs), "{what}: the request");
        }
    }

    #[test]
    fn responder_errors_are_named() {
        // OCSPResponse { responseStatus tryLater }
        let der = [0x30, 0x03, 0x0a, 0x01, 0x03];
        let id = CertId { name_hash: vec![], key_hash: vec![], serial: vec![1] };
        let issuer = Issuer { subject_der: &[], spki_der: &[] };
        assert_eq!(verify_response(&der, &id, &issuer, None, 0, 0, 2048), Err(OcspError::ResponderStatus("tryLater")));
        assert!(matches!(verify_response(b"garbage", &id, &issuer, None, 0, 0, 2048), Err(OcspError::Malformed(_))));
    }
}
