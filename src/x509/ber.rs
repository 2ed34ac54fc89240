//! A small, bounded BER reader for the container formats (PKCS#7, PKCS#12).
//!
//! Certificates themselves are DER and go through `x509-cert`; but the containers around them
//! are often BER in the wild (Windows and Java write indefinite lengths and constructed OCTET
//! STRINGs, X.690 §8.1.3.6 and §8.7.3). This reader accepts both, never recurses deeper than
//! [`MAX_DEPTH`], and reports the byte offset of anything it cannot read.

use std::borrow::Cow;

/// Deepest nesting accepted; real containers need fewer than 12 levels.
pub const MAX_DEPTH: usize = 32;

pub const SEQUENCE: u8 = 0x30;
pub const SET: u8 = 0x31;
pub const INTEGER: u8 = 0x02;
pub const OCTET_STRING: u8 = 0x04;
pub const OID: u8 = 0x06;
pub const BMP_STRING: u8 = 0x1e;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed ASN.1 at byte {offset}: {what}")]
pub struct BerError {
    pub offset: usize,
    pub what: &'static str,
}

/// One TLV. `raw` is the whole encoding (header + content), `content` the value bytes; for an
/// indefinite-length element `content` excludes the end-of-contents octets.
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    /// The identifier octet (class, constructed bit, low tag number). High tag numbers are
    /// reported as their first octet only, which is all the containers need.
    pub tag: u8,
    pub raw: &'a [u8],
    pub content: &'a [u8],
    /// Offset of `raw` in the outermost input, for error messages.
    pub offset: usize,
    indefinite: bool,
    /// Nesting level in the outermost input: children inherit it, so [`MAX_DEPTH`] bounds a
    /// whole descent, not one reader.
    depth: usize,
}

impl<'a> Tlv<'a> {
    pub fn constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }

    /// Children of a constructed element.
    pub fn children(&self) -> Reader<'a> {
        Reader {
            data: self.content,
            pos: 0,
            base: self.offset + (self.raw.len() - self.content.len() - if self.indefinite { 2 } else { 0 }),
            depth: self.depth + 1,
        }
    }

    /// The bytes of an OCTET STRING, concatenating the segments of a constructed one.
    pub fn octets(&self) -> Result<Cow<'a, [u8]>, BerError> {
        if !self.constructed() {
            return Ok(Cow::Borrowed(self.content));
        }
        let mut out = Vec::new();
        collect_segments(self, &mut out, 0)?;
        Ok(Cow::Owned(out))
    }

    pub fn expect(self, tag: u8, what: &'static str) -> Result<Self, BerError> {
        // A constructed OCTET STRING (0x24) stands for 0x04.
        if self.tag == tag || (tag == OCTET_STRING && self.tag == 0x24) { Ok(self) } else { Err(BerError { offset: self.offset, what }) }
    }

    /// Small non-negative INTEGER as u64 (iteration counts, versions).
    pub fn small_uint(&self) -> Result<u64, BerError> {
        let bad = BerError { offset: self.offset, what: "expected a small non-negative INTEGER" };
        if self.tag != INTEGER || self.content.is_empty() || self.content.len() > 9 || self.content[0] & 0x80 != 0 {
            return Err(bad);
        }
        let mut v: u64 = 0;
        for &b in self.content {
            v = v.checked_mul(256).ok_or(bad.clone())? | u64::from(b);
        }
        Ok(v)
    }
}

fn collect_segments(t: &Tlv<'_>, out: &mut Vec<u8>, depth: usize) -> Result<(), BerError> {
    if depth > MAX_DEPTH {
        return Err(BerError { offset: t.offset, what: "OCTET STRING segments nested too deep" });
    }
    let mut r = t.children();
    while let Some(c) = r.next_tlv()? {
        if c.tag == OCTET_STRING {
            out.extend_from_slice(c.content);
        } else if c.tag == 0x24 {
            collect_segments(&c, out, depth + 1)?;
        } else {
            return Err(BerError { offset: c.offset, what: "constructed OCTET STRING holds a non-OCTET STRING segment" });
        }
    }
    Ok(())
}

/// Reads consecutive TLVs from a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    base: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0, base: 0, depth: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The next element, or `None` at the end of the input.
    pub fn next_tlv(&mut self) -> Result<Option<Tlv<'a>>, BerError> {
        if self.is_empty() {
            return Ok(None);
        }
        let start = self.pos;
        let (tlv, len) = parse_at(self.data, start, self.base, self.depth)?;
        self.pos = start + len;
        Ok(Some(tlv))
    }

    /// The next element, which must exist.
    pub fn required(&mut self, what: &'static str) -> Result<Tlv<'a>, BerError> {
        let offset = self.base + self.pos;
        self.next_tlv()?.ok_or(BerError { offset, what })
    }
}

/// Parses one TLV at `start`; returns it and its total length in bytes.
fn parse_at<'a>(data: &'a [u8], start: usize, base: usize, depth: usize) -> Result<(Tlv<'a>, usize), BerError> {
    let err = |what| BerError { offset: base + start, what };
    if depth > MAX_DEPTH {
        return Err(err("nested too deep"));
    }
    let tag = *data.get(start).ok_or(err("truncated: missing tag"))?;
    let mut p = start + 1;
    if tag & 0x1f == 0x1f {
        // High tag number form: skip the continuation octets.
        loop {
            let b = *data.get(p).ok_or(err("truncated in a high tag number"))?;
            p += 1;
            if b & 0x80 == 0 {
                break;
            }
            if p - start > 6 {
                return Err(err("tag number too large"));
            }
        }
    }
    let first = *data.get(p).ok_or(err("truncated: missing length"))?;
    p += 1;
    if first == 0x80 {
        // Indefinite length (constructed only): children until 00 00.
        if tag & 0x20 == 0 {
            return Err(err("indefinite length on a primitive element"));
        }
        let content_start = p;
        loop {
            if data.get(p..p + 2) == Some(&[0, 0][..]) {
                let tlv =
                    Tlv { tag, raw: &data[start..p + 2], content: &data[content_start..p], offset: base + start, indefinite: true, depth };
                return Ok((tlv, p + 2 - start));
            }
            if p >= data.len() {
                return Err(err("truncated: indefinite length without end-of-contents"));
            }
            let (_, n) = parse_at(data, p, base, depth + 1)?;
            p += n;
        }
    }
    let len = if first & 0x80 == 0 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Err(err("unsupported length encoding"));
        }
        let bytes = data.get(p..p + n).ok_or(err("truncated in the length"))?;
        p += n;
        bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    let end = p.checked_add(len).ok_or(err("length overflows"))?;
    if end > data.len() {
        return Err(err("truncated: length runs past the end of the data"));
    }
    let tlv = Tlv { tag, raw: &data[start..end], content: &data[p..end], offset: base + start, indefinite: false, depth };
    Ok((tlv, end - start))
}

/// The tag of the outer element and as much of its content as `data` holds, for recognising
/// a format from a file that was cut short (the full parse then reports the truncation).
pub fn outer_prefix(data: &[u8]) -> Option<(u8, &[u8])> {
    let tag = *data.first()?;
    let first = *data.get(1)?;
    let (start, len) = match first {
        0x80 => (2, usize::MAX),
        f if f < 0x80 => (2, usize::from(f)),
        f => {
            let n = usize::from(f & 0x7f);
            if n > 4 {
                return None;
            }
            let bytes = data.get(2..2 + n)?;
            (2 + n, bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b)))
        }
    };
    Some((tag, &data[start..start.saturating_add(len).min(data.len())]))
}

/// Parses exactly one TLV covering all of `data` (trailing bytes are an error).
pub fn single(data: &[u8]) -> Result<Tlv<'_>, BerError> {
    let mut r = Reader::new(data);
    let t = r.required("empty input")?;
    if !r.is_empty() {
        return Err(BerError { offset: t.raw.len(), what: "trailing data after the outer element" });
    }
    Ok(t)
}

/// Dotted-decimal text of an OBJECT IDENTIFIER's content octets.
pub fn oid_string(t: &Tlv<'_>) -> Result<String, BerError> {
    if t.tag != OID || t.content.is_empty() {
        return Err(BerError { offset: t.offset, what: "expected an OBJECT IDENTIFIER" });
    }
    let mut arcs: Vec<u64> = Vec::new();
    let mut v: u64 = 0;
    for &b in t.content {
        v = v.checked_mul(128).ok_or(BerError { offset: t.offset, what: "OID arc too large" })? | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (v / 40).min(2);
                arcs.push(first);
                arcs.push(v - first * 40);
            } else {
                arcs.push(v);
            }
            v = 0;
        }
    }
    Ok(arcs.iter().map(u64::to_string).collect::<Vec<_>>().join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_definite_and_indefinite() {
        // SEQUENCE (indefinite) { INTEGER 3, OCTET STRING (constructed, indefinite) {"ab", "c"} }
        let data = [0x30, 0x80, 0x02, 0x01, 0x03, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0, 0, 0, 0];
        let t = single(&data).unwrap();
        let mut r = t.children();
        assert_eq!(r.required("int").unwrap().small_uint().unwrap(), 3);
        let os = r.required("os").unwrap().expect(OCTET_STRING, "os").unwrap();
        assert_eq!(&*os.octets().unwrap(), b"abc");
        assert!(r.next_tlv().unwrap().is_none());
    }

    #[test]
    fn rejects_truncation_with_offset() {
        let e = single(&[0x30, 0x05, 0x02, 0x01]).unwrap_err();
        assert_eq!(e.offset, 0);
        assert!(e.what.contains("truncated"));
        assert!(single(&[0x30, 0x80, 0x02, 0x01, 0x01]).is_err());
        assert!(single(&[]).is_err());
        assert!(single(&[0x02, 0x80]).is_err());
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut data = Vec::new();
        for _ in 0..100 {
            data.extend_from_slice(&[0x30, 0x80]);
        }
        for _ in 0..100 {
            data.extend_from_slice(&[0, 0]);
        }
        assert!(single(&data).is_err());
    }

    #[test]
    fn oid_text() {
        let data = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
        assert_eq!(oid_string(&single(&data).unwrap()).unwrap(), "1.2.840.113549.1.7.2");
    }
}

/// DER-encodes one element: `tag`, definite length, `content`.
pub fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// DER of an OBJECT IDENTIFIER from its dotted text (known-good constants only).
pub fn encode_oid(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u64> = dotted.split('.').filter_map(|a| a.parse().ok()).collect();
    let mut body = Vec::new();
    let mut push = |mut v: u64| {
        let mut tmp = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        tmp.reverse();
        body.extend(tmp);
    };
    if arcs.len() >= 2 {
        push(arcs[0] * 40 + arcs[1]);
        for &a in &arcs[2..] {
            push(a);
        }
    }
    encode(OID, &body)
}

#[cfg(test)]
mod encode_tests {
    use super::*;

    #[test]
    fn encodes_round_trip() {
        let long = vec![7u8; 300];
        let e = encode(OCTET_STRING, &long);
        assert_eq!(&e[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(single(&e).unwrap().content, &long[..]);
        let oid = encode_oid("1.3.6.1.5.5.7.48.1.2");
        assert_eq!(oid_string(&single(&oid).unwrap()).unwrap(), "1.3.6.1.5.5.7.48.1.2");
    }
}

#[cfg(test)]
mod depth_tests {
    use super::*;

    #[test]
    fn depth_is_bounded_across_readers() {
        // 40 nested definite-length SEQUENCEs: each reader alone is shallow, the descent is not.
        let mut data = vec![0x05, 0x00];
        for _ in 0..40 {
            data = encode(SEQUENCE, &data);
        }
        let mut t = single(&data).unwrap();
        let mut result = Ok(());
        for _ in 0..40 {
            match t.children().required("child") {
                Ok(c) => t = c,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        assert!(result.is_err(), "descent past MAX_DEPTH must fail");
    }
}
