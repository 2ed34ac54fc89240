//! PKCS#7 / CMS certificate bundles (`.p7b`, `.p7c`, "certs-only" SignedData, RFC 5652 §5.1).
//! Only the `certificates` field is read; the certificates come back as raw DER slices.

use super::ber::{self, BerError};

pub const SIGNED_DATA: &str = "1.2.840.113549.1.7.2";

/// True when `data` starts like a ContentInfo whose type is signedData.
pub fn looks_like_pkcs7(data: &[u8]) -> bool {
    let Some((ber::SEQUENCE, body)) = ber::outer_prefix(data) else { return false };
    let mut r = ber::Reader::new(body);
    matches!(r.next_tlv(), Ok(Some(t)) if t.tag == ber::OID && ber::oid_string(&t).as_deref() == Ok(SIGNED_DATA))
}

/// The DER encodings of every certificate in the bundle, in order.
pub fn certificates(data: &[u8]) -> Result<Vec<&[u8]>, BerError> {
    let outer = ber::single(data)?.expect(ber::SEQUENCE, "ContentInfo must be a SEQUENCE")?;
    let mut ci = outer.children();
    let oid = ci.required("ContentInfo has no contentType")?;
    if ber::oid_string(&oid)? != SIGNED_DATA {
        return Err(BerError { offset: oid.offset, what: "ContentInfo is not signedData" });
    }
    let explicit = ci.required("signedData has no content")?.expect(0xa0, "signedData content must be [0] EXPLICIT")?;
    let sd = explicit.children().required("empty signedData")?.expect(ber::SEQUENCE, "SignedData must be a SEQUENCE")?;
    let mut fields = sd.children();
    fields.required("SignedData has no version")?.expect(ber::INTEGER, "SignedData version must be an INTEGER")?;
    fields.required("SignedData has no digestAlgorithms")?.expect(ber::SET, "digestAlgorithms must be a SET")?;
    fields.required("SignedData has no encapContentInfo")?.expect(ber::SEQUENCE, "encapContentInfo must be a SEQUENCE")?;
    let mut out = Vec::new();
    while let Some(t) = fields.next_tlv()? {
        // certificates [0] IMPLICIT CertificateSet
        if t.tag == 0xa0 {
            let mut certs = t.children();
            while let Some(c) = certs.next_tlv()? {
                // Other CertificateChoices (attribute certificates, [1]..[3]) are not X.509 certs.
                if c.tag == ber::SEQUENCE {
                    out.push(c.raw);
                }
            }
        }
    }
    Ok(out)
}
