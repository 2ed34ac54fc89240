//! A minimal DNS client for one question: the TXT records of a name (RFC 1035 §4), asked of a
//! given resolver, over UDP with a retry over TCP when the answer is truncated (§4.2.2). It is
//! what the dns-01 propagation check needs — "does this resolver see the record yet?" — and no
//! more: no recursion of its own, no caching, no EDNS.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TYPE_TXT: u16 = 16;
const CLASS_IN: u16 = 1;
/// Largest answer read over TCP.
const MAX_TCP: usize = 65_535;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("`{0}` is not a DNS name")]
    BadName(String),
    #[error("{resolver}: {reason}")]
    Io { resolver: SocketAddr, reason: String },
    #[error("{resolver}: no answer within {ms} ms")]
    Timeout { resolver: SocketAddr, ms: u128 },
    #[error("{resolver}: malformed answer ({reason})")]
    Malformed { resolver: SocketAddr, reason: String },
    #[error("{resolver}: the server answered {rcode}")]
    Rcode { resolver: SocketAddr, rcode: &'static str },
}

/// The query message for the TXT records of `name`, with message id `id` and recursion desired.
pub fn query(id: u16, name: &str) -> Result<Vec<u8>, DnsError> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QDCOUNT 1
    let trimmed = name.trim_end_matches('.');
    if trimmed.is_empty() || trimmed.len() > 253 {
        return Err(DnsError::BadName(name.to_string()));
    }
    for label in trimmed.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(DnsError::BadName(name.to_string()));
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&TYPE_TXT.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(out)
}

/// What an answer says.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// The TXT records (each record's strings joined, RFC 7208 §3.3 style).
    Records(Vec<String>),
    /// TC bit set: ask again over TCP.
    Truncated,
}

fn rcode_name(code: u8) -> &'static str {
    match code {
        1 => "FORMERR",
        2 => "SERVFAIL",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => "an error",
    }
}

/// Skips a possibly compressed name starting at `at`; returns the offset after it.
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xC0 == 0xC0 => return (at + 2 <= msg.len()).then_some(at + 2),
            l => at += 1 + l as usize,
        }
    }
}

fn u16_at(msg: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]))
}

/// Reads the answer to query `id`. NXDOMAIN (the name does not exist yet) is no records.
pub fn parse(msg: &[u8], id: u16, resolver: SocketAddr) -> Result<Answer, DnsError> {
    let bad = |reason: &str| DnsError::Malformed { resolver, reason: reason.to_string() };
    if msg.len() < 12 {
        return Err(bad("shorter than a header"));
    }
    if u16_at(msg, 0) != Some(id) {
        return Err(bad("another message id"));
    }
    let flags = u16_at(msg, 2).unwrap_or(0);
    if flags & 0x8000 == 0 {
        return Err(bad("not a response"));
    }
    if flags & 0x0200 != 0 {
        return Ok(Answer::Truncated);
    }
    match (flags & 0x000F) as u8 {
        0 => {}
        3 => return Ok(Answer::Records(Vec::new())),
        code => return Err(DnsError::Rcode { resolver, rcode: rcode_name(code) }),
    }
    let qd = u16_at(msg, 4).unwrap_or(0);
    let an = u16_at(msg, 6).unwrap_or(0);
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(msg, at).ok_or_else(|| bad("question name"))? + 4;
    }
    let mut records = Vec::new();
    for _ in 0..an {
        at = skip_name(msg, at).ok_or_else(|| bad("answer name"))?;
        let kind = u16_at(msg, at).ok_or_else(|| bad("answer type"))?;
        let len = u16_at(msg, at + 8).ok_or_else(|| bad("answer length"))? as usize;
        let data = msg.get(at + 10..at + 10 + len).ok_or_else(|| bad("answer data"))?;
        at += 10 + len;
        if kind != TYPE_TXT {
            continue; // a CNAME on the way
        }
        let mut text = Vec::new();
        let mut i = 0;
        while i < data.len() {
            let n = data[i] as usize;
            text.extend_from_slice(data.get(i + 1..i + 1 + n).ok_or_else(|| bad("TXT string"))?);
            i += 1 + n;
        }
        records.push(String::from_utf8_lossy(&text).into_owned());
    }
    Ok(Answer::Records(records))
}

/// The TXT records of `name` as `resolver` answers them, within `timeout` in all.
pub async fn txt(resolver: SocketAddr, name: &str, id: u16, timeout: Duration) -> Result<Vec<String>, DnsError> {
    let msg = query(id, name)?;
    let io = |e: std::io::Error| DnsError::Io { resolver, reason: e.to_string() };
    let ask = async {
        let bind: SocketAddr =
            if resolver.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().map_err(|_| DnsError::BadName(name.into()))?;
        let sock = tokio::net::UdpSocket::bind(bind).await.map_err(io)?;
        sock.connect(resolver).await.map_err(io)?;
        sock.send(&msg).await.map_err(io)?;
        let mut buf = vec![0u8; 4096];
        let answer = loop {
            let n = sock.recv(&mut buf).await.map_err(io)?;
            // A stray datagram with another id is ignored, not taken as the answer.
            match parse(&buf[..n], id, resolver) {
                Err(DnsError::Malformed { reason, .. }) if reason == "another message id" => continue,
                other => break other?,
            }
        };
        match answer {
            Answer::Records(r) => Ok(r),
            Answer::Truncated => {
                let mut tcp = tokio::net::TcpStream::connect(resolver).await.map_err(io)?;
                let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&msg);
                tcp.write_all(&framed).await.map_err(io)?;
                let len = tcp.read_u16().await.map_err(io)? as usize;
                let mut body = vec![0u8; len.min(MAX_TCP)];
                tcp.read_exact(&mut body).await.map_err(io)?;
                match parse(&body, id, resolver)? {
                    Answer::Records(r) => Ok(r),
                    Answer::Truncated => Err(DnsError::Malformed { resolver, reason: "truncated over TCP".into() }),
                }
            }
        }
    };
    tokio::time::timeout(timeout, ask).await.map_err(|_| DnsError::Timeout { resolver, ms: timeout.as_millis() })?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver() -> SocketAddr {
        "127.0.0.1:53".parse().unwrap()
    }

    /// An answer to `query(7, "_acme-challenge.example.org.")` holding `records`, the answer
    /// names compressed to the question's.
    fn answer(flags: u16, records: &[&[&str]]) -> Vec<u8> {
        let q = query(7, "_acme-challenge.example.org.").unwrap();
        let mut m = q.clone();
        m[2..4].copy_from_slice(&flags.to_be_bytes());
        m[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
        for strings in records {
            m.extend_from_slice(&[0xC0, 12]);
            m.extend_from_slice(&TYPE_TXT.to_be_bytes());
            m.extend_from_slice(&CLASS_IN.to_be_bytes());
            m.extend_from_slice(&60u32.to_be_bytes());
            let data: Vec<u8> = strings.iter().flat_map(|s| std::iter::once(s.len() as u8).chain(s.bytes())).collect();
            m.extend_from_slice(&(data.len() as u16).to_be_bytes());
            m.extend_from_slice(&data);
        }
        m
    }

    #[test]
    fn query_encodes_the_name_and_refuses_bad_ones() {
        let q = query(0x1234, "_acme-challenge.a.example.").unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..], b"\x0f_acme-challenge\x01a\x07example\x00\x00\x10\x00\x01");
        assert!(query(1, "a..b").is_err());
        assert!(query(1, &format!("{}.org", "x".repeat(64))).is_err());
    }

    #[test]
    fn answers_are_read_with_compressed_names_and_split_strings() {
        let m = answer(0x8180, &[&["abc"], &["de", "f"]]);
        assert_eq!(parse(&m, 7, resolver()).unwrap(), Answer::Records(vec!["abc".into(), "def".into()]));
        assert_eq!(parse(&answer(0x8183, &[]), 7, resolver()).unwrap(), Answer::Records(vec![]), "NXDOMAIN is no record yet");
        assert_eq!(parse(&answer(0x8380, &[]), 7, resolver()).unwrap(), Answer::Truncated);
        assert!(matches!(parse(&answer(0x8182, &[]), 7, resolver()), Err(DnsError::Rcode { rcode: "SERVFAIL", .. })));
        assert!(matches!(parse(&m, 8, resolver()), Err(DnsError::Malformed { .. })));
        let mut cut = m.clone();
        cut.truncate(m.len() - 2);
        assert!(matches!(parse(&cut, 7, resolver()), Err(DnsError::Malformed { .. })));
    }
}
