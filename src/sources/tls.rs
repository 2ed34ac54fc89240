//! TLS endpoints: connects to each configured `host:port` (after STARTTLS for SMTP, IMAP or
//! LDAP when asked), records the chain the server presents, whether it verifies against the
//! system's trust store or a configured bundle for the expected name, the stapled OCSP response
//! (verified against the served issuer) and the negotiated protocol and cipher suite.
//!
//! The handshake itself never fails on the certificate: a capturing verifier hands the chain to
//! the real verifier (rustls' WebPKI verifier) for a verdict and lets the handshake complete,
//! so an expired or wrong-host certificate is inventoried and reported instead of hidden. The
//! handshake signature is still checked with the provider's algorithms. Every endpoint is
//! probed during `list`, up to `concurrency` at once, each within `timeout`; `fetch` serves the
//! result. The stamp changes every scan: a served chain can change at any moment.

use super::{Fetched, Listing, Source, SourceError};
use crate::config::secret::Secret;
use crate::config::sources::tls::{Endpoint, StartTls, TlsSpec};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest STARTTLS dialogue line and number of lines read before giving up.
const MAX_LINE: usize = 4096;
const MAX_LINES: usize = 200;

pub struct TlsSource {
    spec: TlsSpec,
    results: Mutex<HashMap<String, Result<Fetched, String>>>,
}

impl TlsSource {
    pub fn new(spec: TlsSpec) -> Self {
        TlsSource { spec, results: Mutex::new(HashMap::new()) }
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// The verifier of served chains: the configured bundle, else the system's trust store.
    fn roots_verifier(&self) -> Result<Arc<rustls::client::WebPkiServerVerifier>, String> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.spec.ca_bundle {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|e| format!("ca_bundle {}: {e}", path.display()))?;
                let parsed = crate::x509::parse_object(&bytes, &[]);
                if parsed.certs.is_empty() {
                    return Err(format!("ca_bundle {}: no certificate in it", path.display()));
                }
                for c in parsed.certs {
                    roots.add(CertificateDer::from(c.der)).map_err(|e| format!("ca_bundle {}: {e}", path.display()))?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for c in found.certs {
                    // A system store holds odd certificates; one that webpki rejects is skipped.
                    let _ = roots.add(c);
                }
                if roots.is_empty() {
                    return Err(format!("no system trust store found ({:?})", found.errors.first()));
                }
            }
        }
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Self::provider())
            .build()
            .map_err(|e| format!("cannot build the verifier: {e}"))
    }
}

/// What the capturing verifier saw.
#[derive(Debug, Default)]
struct Seen {
    chain: Vec<Vec<u8>>,
    ocsp: Vec<u8>,
    verdict: Option<Result<(), String>>,
}

#[derive(Debug)]
struct Capture {
    roots: Result<Arc<rustls::client::WebPkiServerVerifier>, String>,
    provider: Arc<CryptoProvider>,
    seen: Mutex<Seen>,
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = match &self.roots {
            Ok(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now).map(|_| ()).map_err(|e| e.to_string())
            }
            Err(e) => Err(e.clone()),
        };
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.chain = std::iter::once(end_entity).chain(intermediates).map(|c| c.to_vec()).collect();
        seen.ocsp = ocsp_response.to_vec();
        seen.verdict = Some(verdict);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Reads one CRLF-terminated line, byte by byte so nothing past it is consumed (the TLS
/// handshake follows).
fn read_line(s: &mut TcpStream) -> Result<String, String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(0) => return Err("the server closed the connection".into()),
            Ok(_) => {
                if b[0] == b'\n' {
                    return Ok(String::from_utf8_lossy(&line).trim_end_matches('\r').to_string());
                }
                if line.len() >= MAX_LINE {
                    return Err("line too long".into());
                }
                line.push(b[0]);
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// SMTP: reads a reply (multi-line `NNN-` continuations) and checks its code.
fn smtp_reply(s: &mut TcpStream, want: &str) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    for _ in 0..MAX_LINES {
        let l = read_line(s)?;
        let done = l.len() < 4 || l.as_bytes()[3] != b'-';
        lines.push(l);
        if done {
            let last = lines.last().map(String::as_str).unwrap_or("");
            if !last.starts_with(want) {
                return Err(format!("expected {want}, got `{last}`"));
            }
            return Ok(lines);
        }
    }
    Err("too many reply lines".into())
}

/// Upgrades a plain connection (RFC 3207 SMTP, RFC 3501 §6.2.1 IMAP, RFC 4511 §4.14 LDAP).
fn starttls(s: &mut TcpStream, proto: StartTls) -> Result<(), String> {
    match proto {
        StartTls::Smtp => {
            smtp_reply(s, "220").map_err(|e| format!("SMTP greeting: {e}"))?;
            s.write_all(b"EHLO certvigil.invalid\r\n").map_err(|e| e.to_string())?;
            let ehlo = smtp_reply(s, "250").map_err(|e| format!("SMTP EHLO: {e}"))?;
            if !ehlo.iter().any(|l| l.get(4..).is_some_and(|k| k.trim().eq_ignore_ascii_case("STARTTLS"))) {
                return Err("the SMTP server does not offer STARTTLS".into());
            }
            s.write_all(b"STARTTLS\r\n").map_err(|e| e.to_string())?;
            smtp_reply(s, "220").map_err(|e| format!("SMTP STARTTLS: {e}"))?;
        }
        StartTls::Imap => {
            let greeting = read_line(s)?;
            if !greeting.starts_with("* OK") {
                return Err(format!("IMAP greeting: `{greeting}`"));
            }
            s.write_all(b"cv1 STARTTLS\r\n").map_err(|e| e.to_string())?;
            for _ in 0..MAX_LINES {
                let l = read_line(s)?;
                if let Some(rest) = l.strip_prefix("cv1 ") {
                    return if rest.starts_with("OK") { Ok(()) } else { Err(format!("IMAP STARTTLS: `{l}`")) };
                }
            }
            return Err("IMAP STARTTLS: no tagged response".into());
        }
        StartTls::Ldap => {
            // LDAPMessage { messageID 1, extendedReq [APPLICATION 23] { requestName [0]
            // "1.3.6.1.4.1.1466.20037" } }
            const OID: &[u8] = b"1.3.6.1.4.1.1466.20037";
            let name = crate::x509::ber::encode(0x80, OID);
            let req = crate::x509::ber::encode(0x77, &name);
            let msg = crate::x509::ber::encode(0x30, &[&[0x02, 0x01, 0x01][..], &req].concat());
            s.write_all(&msg).map_err(|e| e.to_string())?;
            let mut head = [0u8; 2];
            s.read_exact(&mut head).map_err(|e| format!("LDAP StartTLS response: {e}"))?;
            let len = match head[1] {
                n if n < 0x80 => n as usize,
                0x81 => {
                    let mut b = [0u8; 1];
                    s.read_exact(&mut b).map_err(|e| e.to_string())?;
                    b[0] as usize
                }
                0x82 => {
                    let mut b = [0u8; 2];
                    s.read_exact(&mut b).map_err(|e| e.to_string())?;
                    u16::from_be_bytes(b) as usize
                }
                _ => return Err("LDAP StartTLS response too long".into()),
            };
            let mut body = vec![0u8; len];
            s.read_exact(&mut body).map_err(|e| e.to_string())?;
            let full = crate::x509::ber::encode(head[0], &body);
            let code = ldap_result_code(&full).map_err(|e| format!("LDAP StartTLS response: {e}"))?;
            if code != 0 {
                return Err(format!("LDAP StartTLS refused (resultCode {code})"));
            }
        }
    }
    Ok(())
}

fn ldap_result_code(der: &[u8]) -> Result<u8, String> {
    use crate::x509::ber;
    let msg = ber::single(der).map_err(|e| e.to_string())?;
    let mut r = msg.children();
    r.required("messageID").map_err(|e| e.to_string())?;
    let op = r.required("protocolOp").map_err(|e| e.to_string())?;
    if op.tag != 0x78 {
        return Err(format!("not an ExtendedResponse (tag {:#x})", op.tag));
    }
    let code = op.children().required("resultCode").map_err(|e| e.to_string())?;
    Ok(code.content.first().copied().unwrap_or(255))
}

fn pem(chain: &[Vec<u8>]) -> Vec<u8> {
    use base64ct::Encoding;
    let mut out = String::new();
    for der in chain {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = base64ct::Base64::encode_string(der);
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out.into_bytes()
}

/// The stapled OCSP response checked against the served issuer (RFC 6960, RFC 6066 §8).
fn stapled(chain: &[Vec<u8>], ocsp: &[u8], now: i64) -> serde_json::Value {
    use crate::revocation::ocsp;
    if ocsp.is_empty() {
        return serde_json::json!({ "present": false });
    }
    let (Some(leaf), Some(issuer)) = (chain.first(), chain.get(1)) else {
        return serde_json::json!({ "present": true, "error": "no issuer in the served chain to verify it against" });
    };
    let check = || -> Result<ocsp::Answer, String> {
        let leaf = crate::x509::cert::raw_parts(leaf).map_err(|e| e.to_string())?;
        let ip = crate::x509::cert::raw_parts(issuer).map_err(|e| e.to_string())?;
        let iss = ocsp::Issuer { subject_der: ip.subject, spki_der: ip.spki };
        let id = ocsp::cert_id(&iss, leaf.serial).map_err(|e| e.to_string())?;
        ocsp::verify_response(ocsp, &id, &iss, None, now, 300, crate::x509::verify::DEFAULT_MIN_RSA_BITS).map_err(|e| e.to_string())
    };
    match check() {
        Ok(a) => {
            let status = match &a.status {
                ocsp::CertStatus::Good => "good".to_string(),
                ocsp::CertStatus::Revoked { .. } => "revoked".to_string(),
                ocsp::CertStatus::Unknown => "unknown".to_string(),
            };
            serde_json::json!({
                "present": true, "status": status, "this_update": a.this_update, "next_update": a.next_update,
                "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(ocsp)),
            })
        }
        Err(e) => serde_json::json!({ "present": true, "error": e }),
    }
}

/// Connects, upgrades if asked, handshakes; returns the chain with what was learned.
fn probe(e: &Endpoint, timeout: Duration, roots: &Result<Arc<rustls::client::WebPkiServerVerifier>, String>) -> Result<Fetched, String> {
    let deadline = Instant::now() + timeout;
    let left = || deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    let addrs: Vec<std::net::SocketAddr> =
        (e.host.as_str(), e.port).to_socket_addrs().map_err(|err| format!("cannot resolve {}: {err}", e.host))?.collect();
    let mut last = String::from("no address");
    let mut tcp = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, left()) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(err) => last = format!("{a}: {err}"),
        }
    }
    let mut tcp = tcp.ok_or_else(|| format!("cannot connect: {last}"))?;
    tcp.set_read_timeout(Some(left())).map_err(|err| err.to_string())?;
    tcp.set_write_timeout(Some(left())).map_err(|err| err.to_string())?;
    if let Some(proto) = e.starttls {
        starttls(&mut tcp, proto)?;
    }
    let provider = TlsSource::provider();
    let capture = Arc::new(Capture { roots: roots.clone(), provider: Arc::clone(&provider), seen: Mutex::default() });
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|err| err.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::clone(&capture) as Arc<dyn ServerCertVerifier>)
        .with_no_client_auth();
    let name = ServerName::try_from(e.server_name.clone()).map_err(|err| format!("server name {}: {err}", e.server_name))?;
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|err| err.to_string())?;
    while conn.is_handshaking() {
        if Instant::now() >= deadline {
            return Err(format!("TLS handshake did not finish within {timeout:?}"));
        }
        tcp.set_read_timeout(Some(left())).map_err(|err| err.to_string())?;
        conn.complete_io(&mut tcp).map_err(|err| format!("TLS handshake: {err}"))?;
    }
    let protocol = conn.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default();
    let suite = conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default();
    conn.send_close_notify();
    let _ = conn.complete_io(&mut tcp);
    let seen = std::mem::take(&mut *capture.seen.lock().unwrap_or_else(|p| p.into_inner()));
    if seen.chain.is_empty() {
        return Err("the server presented no certificate".into());
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let (verified, verify_error) = match &seen.verdict {
        Some(Ok(())) => (true, None),
        Some(Err(m)) => (false, Some(m.clone())),
        None => (false, Some("not verified".to_string())),
    };
    let meta = serde_json::json!({
        "endpoint": format!("{}:{}", e.host, e.port),
        "server_name": e.server_name,
        "starttls": e.starttls.map(StartTls::as_str),
        "protocol": protocol,
        "cipher_suite": suite,
        "chain_length": seen.chain.len(),
        "leaf_sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&seen.chain[0])),
        "verified": verified,
        "verify_error": verify_error,
        "stapled_ocsp": stapled(&seen.chain, &seen.ocsp, now),
    });
    Ok(Fetched { bytes: pem(&seen.chain), meta: Some(meta), key: None, passwords: Vec::new() })
}

impl Source for TlsSource {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn kind(&self) -> &'static str {
        "tls"
    }

    fn tags(&self) -> &[String] {
        &self.spec.tags
    }

    fn list(&self, out: &mut dyn FnMut(Listing)) {
        let roots = self.roots_verifier();
        if let Err(e) = &roots {
            tracing::warn!(source = %self.spec.name, error = %e, "chains are inventoried but cannot be verified");
        }
        // Probe every endpoint, `concurrency` at a time, before listing any.
        let queue = Mutex::new(self.spec.endpoints.iter());
        let results: Mutex<HashMap<String, Result<Fetched, String>>> = Mutex::new(HashMap::new());
        std::thread::scope(|scope| {
            for _ in 0..self.spec.concurrency.min(self.spec.endpoints.len()).max(1) {
                scope.spawn(|| {
                    loop {
                        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                        let Some(e) = next else { return };
                        let r = probe(e, self.spec.timeout, &roots).map_err(|m| format!("{}:{}: {m}", e.host, e.port));
                        results.lock().unwrap_or_else(|p| p.into_inner()).insert(e.location(), r);
                    }
                });
            }
        });
        let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
        let stamp = format!("{:?}", std::time::SystemTime::now());
        let mut listings = Vec::new();
        for e in &self.spec.endpoints {
            let location = e.location();
            listings.push(match results.get(&location) {
                Some(Err(m)) => Listing::Error { location, message: m.clone() },
                _ => Listing::Object { location, stamp: stamp.clone() },
            });
        }
        *self.results.lock().unwrap_or_else(|p| p.into_inner()) = results;
        for l in listings {
            out(l);
        }
    }

    fn fetch(&self, location: &str) -> Result<Fetched, String> {
        self.results.lock().unwrap_or_else(|p| p.into_inner()).remove(location).unwrap_or_else(|| Err("not probed in this scan".into()))
    }

    fn passwords(&self) -> Result<Vec<Secret>, SourceError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldap_extended_response() {
        // LDAPMessage { 1, ExtendedResponse { resultCode success, matchedDN "", diagnostic "" } }
        let ok = [0x30, 0x0c, 0x02, 0x01, 0x01, 0x78, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00];
        assert_eq!(ldap_result_code(&ok), Ok(0));
        let refused = [0x30, 0x0c, 0x02, 0x01, 0x01, 0x78, 0x07, 0x0a, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00];
        assert_eq!(ldap_result_code(&refused), Ok(2));
        let other = [0x30, 0x0c, 0x02, 0x01, 0x01, 0x65, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00];
        assert!(ldap_result_code(&other).is_err());
    }

    /// What the source hands on as the chain's bytes decodes, with the PEM scanner the
    /// inventory reads it with, to the DER it was given: every certificate, in order, whatever
    /// its length (a body of exactly 48 bytes fills one 64-character line; longer ones wrap).
    #[test]
    fn pem_round_trip() {
        let leaf = rcgen::CertificateParams::new(vec!["leaf.example.test".to_string()])
            .unwrap()
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap()
            .der()
            .to_vec();
        let chain = vec![leaf, vec![0x30, 0x03, 0x02, 0x01, 0x05], vec![0x04; 48], (0..=255u8).cycle().take(1000).collect()];
        let encoded = pem(&chain);
        let blocks = crate::x509::pem::scan(&encoded);
        assert_eq!(blocks.len(), chain.len(), "{}", String::from_utf8_lossy(&encoded));
        for (i, (block, der)) in blocks.iter().zip(&chain).enumerate() {
            assert_eq!(block.label, "CERTIFICATE", "block {i}");
            assert_eq!(block.body.as_ref(), Ok(der), "block {i}");
        }
        // RFC 7468 §2: lines of at most 64 characters.
        let text = String::from_utf8(encoded).unwrap();
        assert!(text.lines().all(|l| l.len() <= 64), "{text}");
        // And the inventory's parser reads the real certificate back from it.
        let parsed = crate::x509::parse_object(text.as_bytes(), &[]);
        assert_eq!(parsed.certs.first().map(|c| c.der.as_slice()), Some(chain[0].as_slice()));
    }
}
