//! Distinguished names from DER: RFC 4514 text, straight from the bytes (one pass, no decoding
//! into objects, a fixed table of attribute names; scanning spends its time here, so it matters
//! that this is cheap), and comparison as RFC 5280 §7.1 asks, for matching issuer names.
//!
//! ## Comparing names (RFC 5280 §7.1)
//!
//! Two names match when they have the same RDNs in the same order, each RDN holding the same
//! set of attributes (a multi-valued RDN is compared as a set), and attributes match when their
//! types are equal and their values are equal after preparation:
//!
//! - Attribute types whose matching rule is caseIgnoreMatch (CN, O, OU, C, L, ST, serialNumber,
//!   … see [`rule`]) with a DirectoryString value (UTF8String, PrintableString, TeletexString,
//!   BMPString, UniversalString) go through RFC 4518 string preparation, so the string type no
//!   longer matters, nor case, nor insignificant spaces.
//! - domainComponent and emailAddress (IA5String, caseIgnoreIA5Match; RFC 5280 §7.3 and §7.2
//!   for DC) compare ASCII case-insensitively.
//! - Every other type, and any value that is not of the expected string types or that
//!   preparation refuses, compares as the bytes of its whole value TLV.
//!
//! RFC 4518 steps ([`prepare`]), in order:
//!
//! 1. Transcode (§2.1): strict UTF-8, UTF-16BE (BMPString), UTF-32BE (UniversalString);
//!    PrintableString as ASCII; TeletexString as Latin-1 (the mapping is "a local matter"; this
//!    is what the RFC 4514 rendering above and most software do). Bytes that do not decode fail.
//! 2. Map (§2.2): the listed characters to nothing or to SPACE, exactly as the section lists
//!    them; case folding per RFC 3454 table B.2 (below).
//! 3. Normalize (§2.3): NFKC (icu_normalizer).
//! 4. Prohibit (§2.4): private use, non-characters, U+FFFD and the C.8 characters fail
//!    preparation. *Not checked:* unassigned code points (no Unicode 3.2 assignment table here;
//!    refusing every character added since would make newer scripts unmatchable).
//! 5. Check bidi (§2.5): nothing to do (RFC 4518 ignores bidirectional characters).
//! 6. Insignificant space handling (§2.6.1), as written: leading and trailing spaces go, inner
//!    runs become two spaces, an all-space value becomes two spaces; a space followed by a
//!    combining mark is not a space (combining mark taken as canonical combining class ≠ 0,
//!    which covers every space-plus-mark sequence NFKC produces).
//!
//! Case folding (B.2) is done as: NFKD, then each character's full lowercase mapping
//! (`char::to_lowercase`) with the handful of characters whose case folding differs from it
//! and that NFKD does not already reconcile ([`fold_special`]: ß, ẞ, final sigma, the
//! ypogegrammeni, the Cyrillic variant lowercase letters), then NFKC. [`prepare`] was checked
//! once against a literal implementation of all six steps (RFC 3454 B.2 and the C tables from
//! Python's `stringprep`, NFKC from its Unicode 3.2 `unicodedata`), each code point between two
//! letters: equal for every code point assigned in Unicode 3.2 but five CJK compatibility
//! ideographs whose decomposition Unicode corrected after 3.2. Cherokee folds to uppercase in
//! B.2 and to lowercase here, which gives the same equivalence.
//!
//! A preparation failure makes that value compare as bytes (so it still matches itself, and
//! matching stays an equivalence); a name that is not structurally a Name
//! (SEQUENCE OF SET OF SEQUENCE { OID, value }, non-empty RDNs, nothing trailing) matches nothing.

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

/// How values of an attribute type are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// caseIgnoreMatch over a DirectoryString (or PrintableString) value: RFC 4518 preparation.
    CaseIgnore,
    /// caseIgnoreIA5Match: ASCII case-insensitive (RFC 5280 §7.2/§7.3 for domainComponent).
    CaseIgnoreIa5,
    /// Any other type: the value's bytes.
    Binary,
}

/// The equality matching rule of an attribute type (X.520, RFC 4519, RFC 2985, CA/B Forum EV
/// for the jurisdiction attributes). Types not listed compare as bytes: RFC 5280 §7.1 makes
/// support for other matching rules optional, and bytes never match what should not.
fn rule(oid: &[u8]) -> Rule {
    match oid {
        // 2.5.4.x: CN, SN, serialNumber, C, L, ST, street, O, OU, title, description,
        // businessCategory, postalCode, postOfficeBox, name, givenName, initials,
        // generationQualifier, dnQualifier, pseudonym, organizationIdentifier.
        [0x55, 0x04, 3..=13 | 15 | 17 | 18 | 41..=44 | 46 | 65 | 97] => Rule::CaseIgnore,
        // uid (0.9.2342.19200300.100.1.1)
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => Rule::CaseIgnore,
        // jurisdictionL/ST/C (1.3.6.1.4.1.311.60.2.1.1-3)
        [0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x3c, 0x02, 0x01, 1..=3] => Rule::CaseIgnore,
        // domainComponent (0.9.2342.19200300.100.1.25), emailAddress (1.2.840.113549.1.9.1)
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] | [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => {
            Rule::CaseIgnoreIa5
        }
        _ => Rule::Binary,
    }
}

/// Transcodes a DirectoryString (or PrintableString) value to Unicode, strictly (RFC 4518 §2.1).
fn directory_text(v: &Tlv<'_>) -> Option<String> {
    let c = v.content;
    match v.tag {
        0x0c => std::str::from_utf8(c).ok().map(str::to_owned),
        0x13 => c.is_ascii().then(|| String::from_utf8_lossy(c).into_owned()),
        // TeletexString: Latin-1, as everywhere else in this module.
        0x14 => Some(c.iter().map(|&b| char::from(b)).collect()),
        0x1e if c.len().is_multiple_of(2) => {
            char::decode_utf16(c.chunks_exact(2).map(|p| u16::from_be_bytes([p[0], p[1]]))).collect::<Result<String, _>>().ok()
        }
        0x1c if c.len().is_multiple_of(4) => {
            c.chunks_exact(4).map(|p| char::from_u32(u32::from_be_bytes([p[0], p[1], p[2], p[3]]))).collect::<Option<String>>()
        }
        _ => None,
    }
}

/// RFC 4518 §2.2 without case folding: `None` maps the character to nothing.
fn map_char(c: char) -> Option<char> {
    match c {
        // Mapped to SPACE: the listed controls and every Separator (Zs, Zl, Zp).
        '\u{09}'..='\u{0d}' | '\u{85}' => Some(' '),
        '\u{a0}' | '\u{1680}' | '\u{2000}'..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}' => Some(' '),
        // Mapped to nothing: soft hyphens, CGJ, variation selectors, U+FFFC, ZWSP and the
        // complete list of other control and format characters.
        '\u{ad}' | '\u{1806}' | '\u{34f}' | '\u{180b}'..='\u{180d}' | '\u{fe00}'..='\u{fe0f}' | '\u{fffc}' | '\u{200b}' => None,
        '\u{00}'..='\u{08}' | '\u{0e}'..='\u{1f}' | '\u{7f}'..='\u{84}' | '\u{86}'..='\u{9f}' => None,
        '\u{6dd}' | '\u{70f}' | '\u{180e}' | '\u{200c}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2063}' => None,
        '\u{206a}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}' | '\u{1d173}'..='\u{1d17a}' | '\u{e0001}' => None,
        '\u{e0020}'..='\u{e007f}' => None,
        _ => Some(c),
    }
}

/// Characters whose case folding (RFC 3454 B.2) differs from their lowercase mapping in a way
/// NFKD followed by NFKC does not reconcile. Applied after NFKD, so the precomposed Greek
/// letters with ypogegrammeni arrive decomposed and need only U+0345.
fn fold_special(c: char) -> Option<&'static str> {
    Some(match c {
        'ß' | 'ẞ' => "ss",
        'ς' => "σ",
        '\u{345}' => "ι",
        '\u{1c80}' => "в",
        '\u{1c81}' => "д",
        '\u{1c82}' => "о",
        '\u{1c83}' => "с",
        '\u{1c84}' | '\u{1c85}' => "т",
        '\u{1c86}' => "ъ",
        '\u{1c87}' => "ѣ",
        '\u{1c88}' => "\u{a64b}",
        _ => return None,
    })
}

/// RFC 4518 §2.4, less the unassigned code points (see the module comment).
fn prohibited(c: char) -> bool {
    let u = u32::from(c);
    matches!(u, 0xe000..=0xf8ff | 0xf0000..=0xffffd | 0x100000..=0x10fffd) // C.3 private use
        || matches!(u, 0xfdd0..=0xfdef) || u & 0xfffe == 0xfffe // C.4 non-characters
        || matches!(u, 0x340 | 0x341 | 0x200e | 0x200f | 0x202a..=0x202e | 0x206a..=0x206f) // C.8
        || u == 0xfffd
}

/// RFC 4518 string preparation of an attribute value for caseIgnoreMatch (steps in the module
/// comment). `None` when a step fails.
pub fn prepare(text: &str) -> Option<String> {
    let mapped: String = text.chars().filter_map(map_char).collect();
    let normalized = if mapped.is_ascii() {
        // NFKD and NFKC leave ASCII as it is, and its folding is ASCII lowercase.
        mapped.to_ascii_lowercase()
    } else {
        let decomposed = icu_normalizer::DecomposingNormalizerBorrowed::new_nfkd().normalize(&mapped);
        let mut folded = String::with_capacity(decomposed.len());
        for c in decomposed.chars() {
            match fold_special(c) {
                Some(f) => folded.push_str(f),
                None => folded.extend(c.to_lowercase()),
            }
        }
        let composed = icu_normalizer::ComposingNormalizerBorrowed::new_nfkc().normalize(&folded).into_owned();
        if composed.chars().any(prohibited) {
            return None;
        }
        composed
    };
    Some(insignificant_space(&normalized))
}

/// RFC 4518 §2.6.1 for attribute values: " a  b " for "a b", two spaces for no text.
fn insignificant_space(s: &str) -> String {
    let ccc = icu_normalizer::properties::CanonicalCombiningClassMapBorrowed::new();
    let mut out = String::with_capacity(s.len() + 2);
    out.push(' ');
    let (mut any, mut pending) = (false, false);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        // "a space is defined to be the SPACE (U+0020) code point followed by no combining marks"
        if c == ' ' && chars.peek().is_none_or(|&n| n.is_ascii() || ccc.get_u8(n) == 0) {
            pending = any;
            continue;
        }
        if pending {
            out.push_str("  ");
            pending = false;
        }
        out.push(c);
        any = true;
    }
    // One trailing space after text; with no text at all, the two spaces of an empty value.
    out.push(' ');
    out
}

/// One attribute of an RDN: the content octets of its type OID, and its value.
type Attribute<'a> = (&'a [u8], Tlv<'a>);

/// The attributes of a Name, RDN by RDN. `None` unless the bytes are a SEQUENCE OF non-empty
/// SET OF SEQUENCE { OBJECT IDENTIFIER, one value }.
fn name_rdns(der: &[u8]) -> Option<Vec<Vec<Attribute<'_>>>> {
    let name = ber::single(der).ok().filter(|n| n.tag == ber::SEQUENCE)?;
    let mut rdns = Vec::new();
    let mut r = name.children();
    while let Some(rdn) = r.next_tlv().ok()? {
        if rdn.tag != ber::SET {
            return None;
        }
        let mut atvs = Vec::new();
        let mut a = rdn.children();
        while let Some(atv) = a.next_tlv().ok()? {
            if atv.tag != ber::SEQUENCE {
                return None;
            }
            let mut f = atv.children();
            let oid = f.next_tlv().ok()??;
            let value = f.next_tlv().ok()??;
            if oid.tag != ber::OID || oid.content.is_empty() || !f.is_empty() {
                return None;
            }
            atvs.push((oid.content, value));
        }
        if atvs.is_empty() {
            return None;
        }
        rdns.push(atvs);
    }
    Some(rdns)
}

/// The comparison key of one attribute value: UTF8String of the prepared text, or an OCTET
/// STRING holding the value's whole TLV when it compares as bytes.
fn value_key(rule: Rule, v: &Tlv<'_>) -> Vec<u8> {
    let prepared = match rule {
        Rule::CaseIgnore => directory_text(v).and_then(|t| prepare(&t)),
        Rule::CaseIgnoreIa5 => (v.tag == 0x16 && v.content.is_ascii()).then(|| String::from_utf8_lossy(v.content).to_ascii_lowercase()),
        Rule::Binary => None,
    };
    match prepared {
        Some(p) => ber::encode(0x0c, p.as_bytes()),
        None => ber::encode(ber::OCTET_STRING, v.raw),
    }
}

/// A key for a DER Name such that two well-formed names match under RFC 5280 §7.1 exactly when
/// their keys are equal ([`names_match`]): for indexes and hash maps of names. It is itself DER:
/// SEQUENCE OF SET OF SEQUENCE { OID, prepared value }, each SET's members sorted, so the order
/// of a multi-valued RDN does not count. `None` when the bytes are not a Name.
///
/// The key is stored (the certificate store indexes subjects by it): a change to what it
/// computes needs a store migration that recomputes the stored keys.
pub fn name_key(der: &[u8]) -> Option<Vec<u8>> {
    let rdns = name_rdns(der)?;
    let mut body = Vec::with_capacity(der.len() + 8);
    for rdn in rdns {
        let mut atvs: Vec<Vec<u8>> = rdn
            .iter()
            .map(|(oid, v)| ber::encode(ber::SEQUENCE, &[ber::encode(ber::OID, oid), value_key(rule(oid), v)].concat()))
            .collect();
        atvs.sort_unstable();
        body.extend(ber::encode(ber::SET, &atvs.concat()));
    }
    Some(ber::encode(ber::SEQUENCE, &body))
}

/// Whether two DER Names match per RFC 5280 §7.1 (see the module comment). Identical bytes are
/// the fast path (checked to be a Name, not prepared); anything that is not a Name matches
/// nothing. Work is linear in the input; never panics.
pub fn names_match(a_der: &[u8], b_der: &[u8]) -> bool {
    if a_der == b_der {
        return name_rdns(a_der).is_some();
    }
    match (name_key(a_der), name_key(b_der)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
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

#[cfg(test)]
mod compare_tests {
    use super::*;

    const CN: &[u8] = &[0x55, 4, 3];
    const C: &[u8] = &[0x55, 4, 6];
    const O: &[u8] = &[0x55, 4, 10];
    const OU: &[u8] = &[0x55, 4, 11];
    const DC: &[u8] = &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19];
    const EMAIL: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01];
    /// 1.2.3.4: a type this module knows no matching rule for.
    const UNKNOWN: &[u8] = &[0x2a, 0x03, 0x04];
    const UTF8: u8 = 0x0c;
    const PRINTABLE: u8 = 0x13;
    const TELETEX: u8 = 0x14;
    const IA5: u8 = 0x16;
    const UNIVERSAL: u8 = 0x1c;
    const BMP: u8 = 0x1e;

    /// The content octets of `text` in the string type `tag`.
    fn encode_text(tag: u8, text: &str) -> Vec<u8> {
        match tag {
            BMP => text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
            UNIVERSAL => text.chars().flat_map(|c| u32::from(c).to_be_bytes()).collect(),
            TELETEX => text.chars().map(|c| u8::try_from(u32::from(c)).expect("Latin-1")).collect(),
            _ => text.as_bytes().to_vec(),
        }
    }

    fn ava(oid: &[u8], tag: u8, text: &str) -> Vec<u8> {
        ber::encode(ber::SEQUENCE, &[ber::encode(ber::OID, oid), ber::encode(tag, &encode_text(tag, text))].concat())
    }

    /// A DER Name from its RDNs, most significant first (the order of the encoding), each RDN a
    /// list of (type, string tag, text).
    fn dn(rdns: &[&[(&[u8], u8, &str)]]) -> Vec<u8> {
        let body: Vec<u8> = rdns
            .iter()
            .flat_map(|rdn| ber::encode(ber::SET, &rdn.iter().flat_map(|(oid, tag, text)| ava(oid, *tag, text)).collect::<Vec<u8>>()))
            .collect();
        ber::encode(ber::SEQUENCE, &body)
    }

    fn cn(tag: u8, text: &str) -> Vec<u8> {
        dn(&[&[(C, PRINTABLE, "DE")], &[(O, UTF8, "Example")], &[(CN, tag, text)]])
    }

    /// Asserts the match both ways, and that the keys agree with it.
    fn check(a: &[u8], b: &[u8], expected: bool) {
        assert_eq!(names_match(a, b), expected, "{} vs {}", hex::encode(a), hex::encode(b));
        assert_eq!(names_match(b, a), expected, "symmetric");
        let (ka, kb) = (name_key(a), name_key(b));
        assert!(ka.is_some() && kb.is_some(), "both are names");
        assert_eq!(ka == kb, expected, "keys agree with names_match");
    }

    #[test]
    fn case_is_ignored() {
        check(&cn(UTF8, "Example CA"), &cn(UTF8, "EXAMPLE ca"), true);
        check(&cn(UTF8, "Example CA"), &cn(UTF8, "Example CB"), false);
        // Every caseIgnoreMatch attribute, not only CN: C and O too.
        let upper = dn(&[&[(C, PRINTABLE, "de")], &[(O, UTF8, "EXAMPLE")], &[(CN, UTF8, "Example CA")]]);
        check(&cn(UTF8, "Example CA"), &upper, true);
    }

    #[test]
    fn directory_string_types_are_equal_when_their_text_is() {
        let utf8 = cn(UTF8, "Example CA");
        for tag in [PRINTABLE, TELETEX, BMP, UNIVERSAL] {
            check(&utf8, &cn(tag, "Example CA"), true);
            check(&utf8, &cn(tag, "Example CB"), false);
        }
        // Non-ASCII text in each Unicode-capable type.
        for tag in [BMP, UNIVERSAL, TELETEX] {
            check(&cn(UTF8, "Zoë Müller"), &cn(tag, "ZOË MÜLLER"), true);
        }
    }

    #[test]
    fn insignificant_spaces() {
        // RFC 4518 §2.6.1's example: "foo<SPACE>bar<SPACE><SPACE>" → "<SPACE>foo<SPACE><SPACE>bar<SPACE>".
        assert_eq!(prepare("foo bar  ").as_deref(), Some(" foo  bar "));
        // No non-space character: exactly two spaces.
        assert_eq!(prepare("").as_deref(), Some("  "));
        assert_eq!(prepare("   ").as_deref(), Some("  "));
        check(&cn(UTF8, "  Example    CA "), &cn(PRINTABLE, "Example CA"), true);
        // Tabs, line ends and no-break spaces map to SPACE (§2.2).
        check(&cn(UTF8, "Example\t\u{a0}CA\r\n"), &cn(UTF8, "Example CA"), true);
        // A space between words is significant, and so is one before a combining mark.
        check(&cn(UTF8, "Example CA"), &cn(UTF8, "ExampleCA"), false);
        assert_eq!(prepare("a \u{301}").as_deref(), Some(" a \u{301} "));
        check(&cn(UTF8, "a \u{301}"), &cn(UTF8, "a"), false);
        check(&cn(UTF8, ""), &cn(PRINTABLE, "  "), true);
    }

    #[test]
    fn map_removes_what_rfc_4518_maps_to_nothing() {
        check(&cn(UTF8, "Exam\u{ad}ple\u{200b} CA\u{feff}"), &cn(UTF8, "Example CA"), true);
        check(&cn(UTF8, "Example\u{0} CA"), &cn(UTF8, "Example CA"), true);
    }

    #[test]
    fn multi_valued_rdns_are_sets() {
        // RFC 4514 §4's example "OU=Sales+CN=J.  Smith,DC=example,DC=net" against the same name
        // with the RDN's attributes the other way round, one space and other cases.
        let a = dn(&[&[(DC, IA5, "net")], &[(DC, IA5, "example")], &[(OU, UTF8, "Sales"), (CN, UTF8, "J.  Smith")]]);
        let b = dn(&[&[(DC, IA5, "NET")], &[(DC, IA5, "Example")], &[(CN, PRINTABLE, "J. Smith"), (OU, PRINTABLE, "sales")]]);
        check(&a, &b, true);
        // The same attributes in two RDNs are a different name.
        let split = dn(&[&[(DC, IA5, "net")], &[(DC, IA5, "example")], &[(OU, UTF8, "Sales")], &[(CN, UTF8, "J. Smith")]]);
        check(&a, &split, false);
        // A set with one member different.
        let other = dn(&[&[(DC, IA5, "net")], &[(DC, IA5, "example")], &[(OU, UTF8, "Sales"), (CN, UTF8, "J. Smyth")]]);
        check(&a, &other, false);
        // Same size, a repeated member instead of another one.
        let twice = dn(&[&[(DC, IA5, "net")], &[(DC, IA5, "example")], &[(OU, UTF8, "Sales"), (OU, UTF8, "Sales")]]);
        check(&a, &twice, false);
    }

    #[test]
    fn rdn_order_and_count_matter() {
        let a = dn(&[&[(C, PRINTABLE, "DE")], &[(O, UTF8, "Example")]]);
        check(&a, &dn(&[&[(O, UTF8, "Example")], &[(C, PRINTABLE, "DE")]]), false);
        check(&a, &dn(&[&[(C, PRINTABLE, "DE")], &[(O, UTF8, "Example")], &[(CN, UTF8, "Example CA")]]), false);
        check(&a, &dn(&[&[(C, PRINTABLE, "DE")]]), false);
        check(&a, &dn(&[]), false);
        check(&dn(&[]), &dn(&[]), true);
        // Same value under another attribute type.
        check(&dn(&[&[(O, UTF8, "Example")]]), &dn(&[&[(OU, UTF8, "Example")]]), false);
    }

    #[test]
    fn non_ascii_case_folding_and_normalisation() {
        check(&cn(UTF8, "Ärzte Ömer"), &cn(BMP, "ärzte ömer"), true);
        // B.2 folds ß to ss (full case folding, not lowercase).
        check(&cn(UTF8, "Straße"), &cn(UTF8, "STRASSE"), true);
        // Final sigma folds to sigma.
        check(&cn(UTF8, "ΟΔΟΣ"), &cn(UTF8, "οδος"), true);
        // NFKC: a precomposed and a decomposed letter; fullwidth forms; a ligature.
        check(&cn(UTF8, "Caf\u{e9}"), &cn(UTF8, "CAFE\u{301}"), true);
        check(&cn(UTF8, "ＡＢＣ"), &cn(PRINTABLE, "abc"), true);
        check(&cn(UTF8, "\u{fb01}nance"), &cn(UTF8, "Finance"), true);
        // Different letters stay different: dotless i is not i, ä is not a.
        check(&cn(UTF8, "\u{131}"), &cn(UTF8, "i"), false);
        check(&cn(UTF8, "Ärzte"), &cn(UTF8, "Arzte"), false);
    }

    #[test]
    fn ia5_attributes_ignore_ascii_case_only() {
        check(
            &dn(&[&[(DC, IA5, "Example")], &[(EMAIL, IA5, "Admin@Example.NET")]]),
            &dn(&[&[(DC, IA5, "example")], &[(EMAIL, IA5, "admin@example.net")]]),
            true,
        );
        // No space handling for them, and another string type compares as bytes.
        check(&dn(&[&[(DC, IA5, "example ")]]), &dn(&[&[(DC, IA5, "example")]]), false);
        check(&dn(&[&[(DC, IA5, "example")]]), &dn(&[&[(DC, UTF8, "example")]]), false);
    }

    #[test]
    fn unknown_types_and_other_values_compare_as_bytes() {
        let x = |tag, text| dn(&[&[(UNKNOWN, tag, text)]]);
        check(&x(UTF8, "abc"), &x(UTF8, "abc"), true);
        check(&x(UTF8, "abc"), &x(UTF8, "ABC"), false);
        check(&x(UTF8, "abc"), &x(PRINTABLE, "abc"), false);
        check(&x(UTF8, "a b"), &x(UTF8, "a  b"), false);
        // A known type with a value that is not a DirectoryString: bytes.
        check(&cn(0x04, "abc"), &cn(0x04, "abc"), true);
        check(&cn(0x04, "abc"), &cn(UTF8, "abc"), false);
        check(&cn(IA5, "abc"), &cn(UTF8, "abc"), false);
    }

    #[test]
    fn values_preparation_refuses_compare_as_bytes() {
        // Private use (RFC 4518 §2.4): matches the identical value, nothing else.
        check(&cn(UTF8, "\u{e000}CA"), &cn(UTF8, "\u{e000}CA"), true);
        check(&cn(UTF8, "\u{e000}CA"), &cn(UTF8, "\u{e000}ca"), false);
        check(&cn(UTF8, "\u{e000}CA"), &cn(BMP, "\u{e000}CA"), false);
        // Invalid UTF-8, a BMPString of odd length, a lone surrogate, 8-bit PrintableString.
        let raw = |tag, bytes: &[u8]| {
            let atv = ber::encode(ber::SEQUENCE, &[ber::encode(ber::OID, CN), ber::encode(tag, bytes)].concat());
            ber::encode(ber::SEQUENCE, &ber::encode(ber::SET, &atv))
        };
        for (tag, bytes) in [(UTF8, &b"\xff\xfeCA"[..]), (BMP, b"\x00C\x00"), (BMP, b"\xd8\x00\x00A"), (PRINTABLE, b"Caf\xe9")] {
            check(&raw(tag, bytes), &raw(tag, bytes), true);
            assert!(!names_match(&raw(tag, bytes), &cn(UTF8, "CA")));
        }
    }

    #[test]
    fn what_is_not_a_name_matches_nothing() {
        let good = cn(UTF8, "Example CA");
        // A Name of one RDN holding one attribute made of these elements.
        let one =
            |elements: &[Vec<u8>]| ber::encode(ber::SEQUENCE, &ber::encode(ber::SET, &ber::encode(ber::SEQUENCE, &elements.concat())));
        let (oid, text) = (ber::encode(ber::OID, CN), ber::encode(UTF8, b"a"));
        let not_names: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x30],
            ber::encode(ber::SET, &[]),
            // An empty RDN; an RDN that is not a SET; a trailing byte.
            ber::encode(ber::SEQUENCE, &ber::encode(ber::SET, &[])),
            ber::encode(ber::SEQUENCE, &ber::encode(ber::SEQUENCE, &[])),
            [good.clone(), vec![0]].concat(),
            // An attribute with a third element, one without a value, one whose type is not
            // an OBJECT IDENTIFIER.
            one(&[oid.clone(), text.clone(), text.clone()]),
            one(&[oid]),
            one(&[ber::encode(UTF8, b"cn"), text]),
        ];
        for bad in &not_names {
            assert_eq!(name_key(bad), None, "{}", hex::encode(bad));
            assert!(!names_match(bad, bad), "not even itself: {}", hex::encode(bad));
            assert!(!names_match(bad, &good));
        }
    }

    #[test]
    fn every_truncation_and_byte_flip_is_handled() {
        let name = dn(&[&[(C, PRINTABLE, "DE")], &[(OU, BMP, "Zoë"), (CN, UNIVERSAL, "Ärzte CA")], &[(UNKNOWN, UTF8, "x")]]);
        assert!(names_match(&name, &name));
        for n in 0..name.len() {
            assert!(!names_match(&name[..n], &name), "a truncated name is no name");
        }
        for i in 0..name.len() {
            for bit in 0..8 {
                let mut m = name.clone();
                m[i] ^= 1 << bit;
                // Whatever the answer, it agrees with the keys and does not panic.
                let k = name_key(&m);
                assert_eq!(names_match(&m, &name), k.is_some() && k == name_key(&name));
            }
        }
    }

    #[test]
    fn matching_is_an_equivalence_over_mixed_names() {
        let names = [
            cn(UTF8, "Example CA"),
            cn(PRINTABLE, "EXAMPLE  CA"),
            cn(BMP, " example ca"),
            cn(UTF8, "Example CA 2"),
            cn(UTF8, "Straße"),
            cn(UNIVERSAL, "STRASSE"),
            dn(&[&[(O, UTF8, "Example"), (OU, UTF8, "Web")]]),
            dn(&[&[(OU, PRINTABLE, "web"), (O, BMP, "EXAMPLE")]]),
        ];
        for a in &names {
            for b in &names {
                let m = names_match(a, b);
                assert_eq!(m, name_key(a) == name_key(b));
                for c in &names {
                    if m && names_match(b, c) {
                        assert!(names_match(a, c), "transitive");
                    }
                }
            }
        }
    }
}
