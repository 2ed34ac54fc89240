//! A lenient PEM scanner (RFC 7468): finds every `-----BEGIN X-----` … `-----END X-----` block in
//! text that may hold anything else between blocks (OpenSSL's "Bag Attributes", comments, a
//! human-readable dump), and decodes each block on its own so that one broken block is reported
//! with its index and line while the others are still read.

use base64ct::{Base64, Encoding};

/// One PEM block as found in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// 1-based position among the blocks of the file.
    pub index: usize,
    /// 1-based line of the BEGIN line.
    pub line: usize,
    pub label: String,
    /// Decoded bytes, or why they could not be decoded.
    pub body: Result<Vec<u8>, String>,
}

/// True when the data holds at least one PEM BEGIN line.
pub fn looks_like_pem(data: &[u8]) -> bool {
    memfind(data, b"-----BEGIN ").is_some()
}

fn memfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn trim(line: &[u8]) -> &[u8] {
    let start = line.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(line.len());
    let end = line.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &line[start..end.max(start)]
}

fn label<'a>(line: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    line.strip_prefix(prefix).and_then(|r| r.strip_suffix(b"-----"))
}

/// Labels of PEM blocks that hold certificates.
pub const CERTIFICATE_LABELS: &[&str] = &["CERTIFICATE", "X509 CERTIFICATE", "X.509 CERTIFICATE", "TRUSTED CERTIFICATE", "PKCS7", "CMS"];

/// The certificate blocks of a PEM text, in order, each with its BEGIN and END lines (CRLF
/// made LF, no trailing newline); every other block — private keys above all — is left out,
/// so a source can hand on a secret's certificates without ever holding its key. A certificate
/// block without its END line is kept to the end of the text, for the parser to report.
pub fn certificate_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        let Some(label_end) = after.find("-----") else { break };
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        let body_start = start + "-----BEGIN ".len() + label_end + 5;
        let block_end = rest[body_start..].find(&end_marker).map_or(rest.len(), |e| body_start + e + end_marker.len());
        if CERTIFICATE_LABELS.contains(&label) && !label.contains('\n') {
            out.push(rest[start..block_end].trim_end().replace("\r\n", "\n"));
        }
        rest = &rest[block_end..];
    }
    out
}

/// Scans the whole text. Blocks without an END line are returned with an error body.
pub fn scan(data: &[u8]) -> Vec<Block> {
    let mut blocks = Vec::new();
    // (BEGIN line, label, base64 bytes, headers done)
    let mut current: Option<(usize, String, Vec<u8>, bool)> = None;
    for (i, raw_line) in data.split(|&b| b == b'\n').enumerate() {
        let line_no = i + 1;
        let line = trim(raw_line);
        if let Some(l) = label(line, b"-----BEGIN ") {
            if let Some((start, open, _, _)) = current.take() {
                blocks.push(Block {
                    index: blocks.len() + 1,
                    line: start,
                    label: open.clone(),
                    body: Err(format!("no END line for {open} before the next BEGIN at line {line_no}")),
                });
            }
            current = Some((line_no, String::from_utf8_lossy(l).into_owned(), Vec::with_capacity(2048), false));
            continue;
        }
        if let Some(l) = label(line, b"-----END ") {
            if let Some((start, open, b64, _)) = current.take() {
                let body = if l != open.as_bytes() {
                    Err(format!("END {} does not match BEGIN {open}", String::from_utf8_lossy(l)))
                } else {
                    Base64::decode_vec(&String::from_utf8_lossy(&b64)).map_err(|e| format!("invalid base64: {e}"))
                };
                blocks.push(Block { index: blocks.len() + 1, line: start, label: open, body });
            }
            continue;
        }
        if let Some((_, _, b64, headers_done)) = current.as_mut() {
            // RFC 1421 encapsulated headers (Proc-Type, DEK-Info) precede the base64 text.
            if !*headers_done && line.contains(&b':') {
                continue;
            }
            if !line.is_empty() {
                *headers_done = true;
            }
            b64.extend(line.iter().filter(|b| !b.is_ascii_whitespace()));
        }
    }
    if let Some((start, open, _, _)) = current {
        blocks.push(Block {
            index: blocks.len() + 1,
            line: start,
            label: open.clone(),
            body: Err(format!("no END line for {open}: the file ends inside the block")),
        });
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_blocks_among_junk() {
        let text = b"Bag Attributes\n    friendlyName: x\nsubject=CN=a\n-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\njunk\n-----BEGIN PRIVATE KEY-----\r\nBAUG\r\n-----END PRIVATE KEY-----\r\n";
        let b = scan(text);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].label, "CERTIFICATE");
        assert_eq!(b[0].line, 4);
        assert_eq!(b[0].body, Ok(vec![1, 2, 3]));
        assert_eq!(b[1].label, "PRIVATE KEY");
        assert_eq!(b[1].body, Ok(vec![4, 5, 6]));
    }

    #[test]
    fn reports_missing_end_and_bad_base64() {
        let b = scan(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nAQID\n");
        assert_eq!(b.len(), 2);
        assert!(b[0].body.as_ref().unwrap_err().contains("base64"));
        assert!(b[1].body.as_ref().unwrap_err().contains("no END line"));
        assert_eq!(b[1].index, 2);
    }

    #[test]
    fn mismatched_end() {
        let b = scan(b"-----BEGIN CERTIFICATE-----\nAQID\n-----END PRIVATE KEY-----\n");
        assert!(b[0].body.as_ref().unwrap_err().contains("does not match"));
    }
}
