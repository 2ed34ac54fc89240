//! Distinguished names from DER to RFC 4514 text, straight from the bytes: one pass, no
//! decoding into objects, a fixed table of attribute names. Scanning spends its time here, so
//! it matters that this is cheap.

use super::ber::{self, BerError, Tlv};
use std::fmt::Write;

/// Short names of the attribute types in common use (RFC 4514 §3 and the usual extensions);
/// other types print as their dotted OID with the value as `#hex` (§2.4).
fn short_name(oid: &[u8]) -> Option<&'static str> {
    // Content octets of the OID: 2.5.4.x is 55 04 x.
    Some(match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x04] => "SN",
        [0x55, 0x04, 0x05] => "SERIALNUMBER",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x09] => "STREET",
        [0x55, 0x04, 0x0a] => "O",
        [0x55, 0x04, 0x0b] => "OU",
        [0x55, 0x04, 0x0c] => "TITLE",
        [0x55, 0x04, 0x0f] => "BUSINESSCATEGORY",
        [0x55, 0x04, 0x11] => "POSTALCODE",
        [0x55, 0x04, 0x2a] => "GIVENNAME",
        [0x55, 0x04, 0x2e] => "DNQUALIFIER",
        [0x55, 0x04, 0x61] => "ORGANIZATIONIDENTIFIER",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID",
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "EMAILADDRESS",
        [0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x3c, 0x02, 0x01, 0x03] => "JURISDICTIONC",
        [0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x3c, 0x02, 0x01, 0x02] => "JURISDICTIONST",
        [0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x3c, 0x02, 0x01, 0x01] => "JURISDICTIONL",
        _ => return None,
    })
}

const CN_OID: &[u8] = &[0x55, 0x04, 0x03];

/// The text of a directory string value, when it is one.
pub fn string_value(v: &Tlv<'_>) -> Option<String> {
    match v.tag {
        // UTF8String, PrintableString, IA5String, VisibleString, NumericString
        0x0c | 0x13 | 0x16 | 0x1a | 0x12 => Some(String::from_utf8_lossy(v.content).into_owned()),
        // TeletexString: treated as Latin-1, as most software does.
        0x14 => Some(v.content.iter().map(|&b| char::from(b)).collect()),
        // BMPString (UTF-16BE)
        0x1e => {
            let units: Vec<u16> = v.content.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            Some(String::from_utf16_lossy(&units))
        }
        // UniversalString (UTF-32BE)
        0x1c => Some(
            v.content.chunks_exact(4).map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])).unwrap_or('\u{fffd}')).collect(),
        ),
        _ => None,
    }
}

fn escape_into(out: &mut String, val: &str) {
    let last = val.chars().count().saturating_sub(1);
    for (i, c) in val.chars().enumerate() {
        match c {
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\x00'..='\x1f' | '\x7f' => {
                let _ = write!(out, "\\{:02x}", c as u8);
            }
            _ => out.push(c),
        }
    }
}

/// RFC 4514 text of a DER Name: RDNs last to first, `,` between them, `+` inside one.
pub fn rfc4514(name_der: &[u8]) -> Result<String, BerError> {
    let name = ber::single(name_der)?;
    let mut rdns: Vec<Tlv<'_>> = Vec::new();
    let mut r = name.children();
    while let Some(rdn) = r.next_tlv()? {
        rdns.push(rdn);
    }
    let mut out = String::with_capacity(name_der.len());
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut atvs = rdn.children();
        let mut first = true;
        while let Some(atv) = atvs.next_tlv()? {
            if !first {
                out.push('+');
            }
            first = false;
            let mut f = atv.children();
            let oid = f.required("attribute has no type")?;
            let value = f.required("attribute has no value")?;
            match (short_name(oid.content), string_value(&value)) {
                (Some(n), Some(v)) => {
                    out.push_str(n);
                    out.push('=');
                    escape_into(&mut out, &v);
                }
                _ => {
                    out.push_str(&ber::oid_string(&oid)?);
                    out.push_str("=#");
                    out.push_str(&hex::encode(value.raw));
                }
            }
        }
    }
    Ok(out)
}

/// The most specific (last) CN of a DER Name.
pub fn common_name(name_der: &[u8]) -> Option<String> {
    let name = ber::single(name_der).ok()?;
    let mut cn = None;
    let mut r = name.children();
    while let Ok(Some(rdn)) = r.next_tlv() {
        let mut atvs = rdn.children();
        while let Ok(Some(atv)) = atvs.next_tlv() {
            let mut f = atv.children();
            if let (Ok(oid), Ok(v)) = (f.required("t"), f.required("v"))
                && oid.content == CN_OID
            {
                cn = string_value(&v).or(cn);
            }
        }
    }
    cn
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atv(oid: &[u8], tag: u8, val: &[u8]) -> Vec<u8> {
        ber::encode(ber::SET, &ber::encode(ber::SEQUENCE, &[ber::encode(ber::OID, oid), ber::encode(tag, val)].concat()))
    }

    #[test]
    fn formats_and_escapes() {
        let name = ber::encode(
            ber::SEQUENCE,
            &[atv(&[0x55, 4, 6], 0x13, b"DE"), atv(&[0x55, 4, 10], 0x0c, b"Acme, Inc."), atv(&[0x55, 4, 3], 0x0c, b" #web")].concat(),
        );
        // RFC 4514 §2.4: a leading space or '#', a trailing space and ",+\"\\<>;" are escaped.
        assert_eq!(rfc4514(&name).unwrap(), "CN=\\ #web,O=Acme\\, Inc.,C=DE");
        let hash = ber::encode(ber::SEQUENCE, &atv(&[0x55, 4, 3], 0x0c, b"#tag "));
        assert_eq!(rfc4514(&hash).unwrap(), "CN=\\#tag\\ ");
        assert_eq!(common_name(&name).as_deref(), Some(" #web"));
    }

    #[test]
    fn bmp_and_unknown_types() {
        let bmp: Vec<u8> = "Zoë".encode_utf16().flat_map(u16::to_be_bytes).collect();
        let name = ber::encode(ber::SEQUENCE, &[atv(&[0x55, 4, 3], 0x1e, &bmp), atv(&[0x2a, 3], 0x04, b"\x01")].concat());
        assert_eq!(rfc4514(&name).unwrap(), "1.2.3=#040101,CN=Zoë");
    }
}
