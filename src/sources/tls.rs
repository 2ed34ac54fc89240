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
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest STARTTLS dialogue line and number of lines read before giving up.
const MAX_LINE: usize = 4096;
const MAX_LINES: usize = 200;

/// Why an endpoint's chain is not served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Probing the endpoint failed.
    #[error("{host}:{port}: {source}")]
    Probe {
        host: String,
        port: u16,
        #[source]
        source: ProbeError,
    },
    #[error("not probed in this scan")]
    NotProbed { location: String },
}

/// Why a probe got no chain: the connection, the STARTTLS dialogue or the handshake.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect: no address")]
    NoAddress,
    #[error("cannot connect: {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Setting a socket's timeouts failed.
    #[error("{0}")]
    Socket(#[source] std::io::Error),
    #[error(transparent)]
    StartTls(#[from] StartTlsError),
    /// The client configuration or connection could not be set up.
    #[error("{0}")]
    Config(#[source] rustls::Error),
    #[error("server name {name}: {source}")]
    ServerName {
        name: String,
        #[source]
        source: rustls::pki_types::InvalidDnsNameError,
    },
    #[error("TLS handshake did not finish within {timeout:?}")]
    HandshakeTimeout { timeout: Duration },
    #[error("TLS handshake: {0}")]
    Handshake(#[source] std::io::Error),
    #[error("the server presented no certificate")]
    NoCertificate,
}

/// A STARTTLS dialogue that did not end in an upgrade (RFC 3207, RFC 3501 §6.2.1, RFC 4511 §4.14).
#[derive(Debug, thiserror::Error)]
pub enum StartTlsError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("line too long")]
    LineTooLong,
    #[error("too many reply lines")]
    TooManyLines,
    #[error("expected {want}, got `{got}`")]
    Reply { want: &'static str, got: String },
    /// One step of the SMTP dialogue (`greeting`, `EHLO`, `STARTTLS`).
    #[error("SMTP {step}: {source}")]
    Smtp {
        step: &'static str,
        #[source]
        source: Box<StartTlsError>,
    },
    #[error("the SMTP server does not offer STARTTLS")]
    NoSmtpStartTls,
    #[error("IMAP greeting: `{line}`")]
    ImapGreeting { line: String },
    #[error("IMAP STARTTLS: `{line}`")]
    ImapRefused { line: String },
    #[error("IMAP STARTTLS: no tagged response")]
    ImapNoTagged,
    #[error("LDAP StartTLS response: {0}")]
    LdapRead(#[source] std::io::Error),
    #[error("LDAP StartTLS response: {0}")]
    LdapDecode(#[source] LdapError),
    #[error("LDAP StartTLS response too long")]
    LdapTooLong,
    #[error("LDAP StartTLS refused (resultCode {code})")]
    LdapRefused { code: u8 },
}

/// An LDAP StartTLS response that is not a readable ExtendedResponse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LdapError {
    #[error("{0}")]
    Ber(#[from] crate::x509::ber::BerError),
    #[error("not an ExtendedResponse (tag {tag:#x})")]
    NotExtended { tag: u8 },
}

/// Why a stapled OCSP response could not be checked (shown in the endpoint's meta).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StapleError {
    /// The leaf or the issuer does not parse.
    #[error("{0}")]
    Certificate(#[from] crate::x509::ber::BerError),
    #[error("{0}")]
    Ocsp(#[from] crate::revocation::ocsp::OcspError),
}

/// Why served chains cannot be verified (they are inventoried all the same).
#[derive(Debug, thiserror::Error)]
pub enum RootsError {
    #[error("ca_bundle {}: {source}", .path.display())]
    CaBundle {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ca_bundle {}: no certificate in it", .path.display())]
    EmptyBundle { path: PathBuf },
    #[error("ca_bundle {}: {source}", .path.display())]
    BadRoot {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    /// `first_error` is the first loading error the platform reported, as `Some(…)` or `None`.
    #[error("no system trust store found ({first_error})")]
    NoSystemStore { first_error: String },
    #[error("cannot build the verifier: {0}")]
    Verifier(#[source] rustls::client::VerifierBuilderError),
}

pub struct TlsSource {
    spec: TlsSpec,
    results: Mutex<HashMap<String, Result<Fetched, TlsError>>>,
}

impl TlsSource {
    pub fn new(spec: TlsSpec) -> Self {
        TlsSource { spec, results: Mutex::new(HashMap::new()) }
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// The verifier of served chains: the configured bundle, else the system's trust store.
    fn roots_verifier(&self) -> Result<Arc<rustls::client::WebPkiServerVerifier>, RootsError> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.spec.ca_bundle {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|source| RootsError::CaBundle { path: path.clone(), source })?;
                let parsed = crate::x509::parse_object(&bytes, &[]);
                if parsed.certs.is_empty() {
                    return Err(RootsError::EmptyBundle { path: path.clone() });
                }
                for c in parsed.certs {
                    roots.add(CertificateDer::from(c.der)).map_err(|source| RootsError::BadRoot { path: path.clone(), source })?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for c in found.certs {
                    // A system store holds odd certificates; one that webpki rejects is skipped.
                    let _ = roots.add(c);
                }
                if roots.is_empty() {
                    return Err(RootsError::NoSystemStore { first_error: format!("{:?}", found.errors.first()) });
                }
            }
        }
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Self::provider()).build().map_err(RootsError::Verifier)
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
fn read_line(s: &mut TcpStream) -> Result<String, StartTlsError> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(0) => return Err(StartTlsError::Closed),
            Ok(_) => {
                if b[0] == b'\n' {
                    return Ok(String::from_utf8_lossy(&line).trim_end_matches('\r').to_string());
                }
                if line.len() >= MAX_LINE {
                    return Err(StartTlsError::LineTooLong);
                }
                line.push(b[0]);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// SMTP: reads a reply (multi-line `NNN-` continuations) and checks its code.
fn smtp_reply(s: &mut TcpStream, want: &'static str) -> Result<Vec<String>, StartTlsError> {
    let mut lines = Vec::new();
    for _ in 0..MAX_LINES {
        let l = read_line(s)?;
        let done = l.len() < 4 || l.as_bytes()[3] != b'-';
        lines.push(l);
        if done {
            let last = lines.last().map(String::as_str).unwrap_or("");
            if !last.starts_with(want) {
                return Err(StartTlsError::Reply { want, got: last.to_string() });
            }
            return Ok(lines);
        }
    }
    Err(StartTlsError::TooManyLines)
}

/// An SMTP step's failure, named after the step.
fn smtp(step: &'static str) -> impl Fn(StartTlsError) -> StartTlsError {
    move |e| StartTlsError::Smtp { step, source: Box::new(e) }
}

/// Upgrades a plain connection (RFC 3207 SMTP, RFC 3501 §6.2.1 IMAP, RFC 4511 §4.14 LDAP).
fn starttls(s: &mut TcpStream, proto: StartTls) -> Result<(), StartTlsError> {
    match proto {
        StartTls::Smtp => {
            smtp_reply(s, "220").map_err(smtp("greeting"))?;
            s.write_all(b"EHLO certvigil.invalid\r\n")?;
            let ehlo = smtp_reply(s, "250").map_err(smtp("EHLO"))?;
            if !ehlo.iter().any(|l| l.get(4..).is_some_and(|k| k.trim().eq_ignore_ascii_case("STARTTLS"))) {
                return Err(StartTlsError::NoSmtpStartTls);
            }
            s.write_all(b"STARTTLS\r\n")?;
            smtp_reply(s, "220").map_err(smtp("STARTTLS"))?;
        }
        StartTls::Imap => {
            let greeting = read_line(s)?;
            if !greeting.starts_with("* OK") {
                return Err(StartTlsError::ImapGreeting { line: greeting });
            }
            s.write_all(b"cv1 STARTTLS\r\n")?;
            for _ in 0..MAX_LINES {
                let l = read_line(s)?;
                if let Some(rest) = l.strip_prefix("cv1 ") {
                    return if rest.starts_with("OK") { Ok(()) } else { Err(StartTlsError::ImapRefused { line: l }) };
                }
            }
            return Err(StartTlsError::ImapNoTagged);
        }
        StartTls::Ldap => {
            // LDAPMessage { messageID 1, extendedReq [APPLICATION 23] { requestName [0]
            // "1.3.6.1.4.1.1466.20037" } }
            const OID: &[u8] = b"1.3.6.1.4.1.1466.20037";
            let name = crate::x509::ber::encode(0x80, OID);
            let req = crate::x509::ber::encode(0x77, &name);
            let msg = crate::x509::ber::encode(0x30, &[&[0x02, 0x01, 0x01][..], &req].concat());
            s.write_all(&msg)?;
            let mut head = [0u8; 2];
            s.read_exact(&mut head).map_err(StartTlsError::LdapRead)?;
            let len = match head[1] {
                n if n < 0x80 => n as usize,
                0x81 => {
                    let mut b = [0u8; 1];
                    s.read_exact(&mut b)?;
                    b[0] as usize
                }
                0x82 => {
                    let mut b = [0u8; 2];
                    s.read_exact(&mut b)?;
                    u16::from_be_bytes(b) as usize
                }
                _ => return Err(StartTlsError::LdapTooLong),
            };
            let mut body = vec![0u8; len];
            s.read_exact(&mut body)?;
            let full = crate::x509::ber::encode(head[0], &body);
            let code = ldap_result_code(&full).map_err(StartTlsError::LdapDecode)?;
            if code != 0 {
                return Err(StartTlsError::LdapRefused { code });
            }
        }
    }
    Ok(())
}

fn ldap_result_code(der: &[u8]) -> Result<u8, LdapError> {
    use crate::x509::ber;
    let msg = ber::single(der)?;
    let mut r = msg.children();
    r.required("messageID")?;
    let op = r.required("protocolOp")?;
    if op.tag != 0x78 {
        return Err(LdapError::NotExtended { tag: op.tag });
    }
    let code = op.children().required("resultCode")?;
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
    let check = || -> Result<ocsp::Answer, StapleError> {
        let leaf = crate::x509::cert::raw_parts(leaf)?;
        let ip = crate::x509::cert::raw_parts(issuer)?;
        let iss = ocsp::Issuer { subject_der: ip.subject, spki_der: ip.spki };
        let id = ocsp::cert_id(&iss, leaf.serial)?;
        Ok(ocsp::verify_response(ocsp, &id, &iss, None, now, 300, crate::x509::verify::DEFAULT_MIN_RSA_BITS)?)
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
        Err(e) => serde_json::json!({ "present": true, "error": e.to_string() }),
    }
}

/// Connects, upgrades if asked, handshakes; returns the chain with what was learned.
fn probe(
    e: &Endpoint,
    timeout: Duration,
    roots: &Result<Arc<rustls::client::WebPkiServerVerifier>, String>,
) -> Result<Fetched, ProbeError> {
    let deadline = Instant::now() + timeout;
    let left = || deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    let addrs: Vec<SocketAddr> =
        (e.host.as_str(), e.port).to_socket_addrs().map_err(|source| ProbeError::Resolve { host: e.host.clone(), source })?.collect();
    let mut last = ProbeError::NoAddress;
    let mut tcp = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, left()) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(source) => last = ProbeError::Connect { addr, source },
        }
    }
    let Some(mut tcp) = tcp else { return Err(last) };
    tcp.set_read_timeout(Some(left())).map_err(ProbeError::Socket)?;
    tcp.set_write_timeout(Some(left())).map_err(ProbeError::Socket)?;
    if let Some(proto) = e.starttls {
        starttls(&mut tcp, proto)?;
    }
    let provider = TlsSource::provider();
    let capture = Arc::new(Capture { roots: roots.clone(), provider: Arc::clone(&provider), seen: Mutex::default() });
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(ProbeError::Config)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::clone(&capture) as Arc<dyn ServerCertVerifier>)
        .with_no_client_auth();
    let name =
        ServerName::try_from(e.server_name.clone()).map_err(|source| ProbeError::ServerName { name: e.server_name.clone(), source })?;
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(ProbeError::Config)?;
    while conn.is_handshaking() {
        if Instant::now() >= deadline {
            return Err(ProbeError::HandshakeTimeout { timeout });
        }
        tcp.set_read_timeout(Some(left())).map_err(ProbeError::Socket)?;
        conn.complete_io(&mut tcp).map_err(ProbeError::Handshake)?;
    }
    let protocol = conn.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default();
    let suite = conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default();
    conn.send_close_notify();
    let _ = conn.complete_io(&mut tcp);
    let seen = std::mem::take(&mut *capture.seen.lock().unwrap_or_else(|p| p.into_inner()));
    if seen.chain.is_empty() {
        return Err(ProbeError::NoCertificate);
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
        // The verdict on each chain is a text in its meta: the reason is shown there.
        let roots = roots.map_err(|e| e.to_string());
        // Probe every endpoint, `concurrency` at a time, before listing any.
        let queue = Mutex::new(self.spec.endpoints.iter());
        let results: Mutex<HashMap<String, Result<Fetched, TlsError>>> = Mutex::new(HashMap::new());
        std::thread::scope(|scope| {
            for _ in 0..self.spec.concurrency.min(self.spec.endpoints.len()).max(1) {
                scope.spawn(|| {
                    loop {
                        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                        let Some(e) = next else { return };
                        let r = probe(e, self.spec.timeout, &roots).map_err(|source| TlsError::Probe {
                            host: e.host.clone(),
                            port: e.port,
                            source,
                        });
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
                Some(Err(e)) => Listing::Error { location, message: e.to_string() },
                _ => Listing::Object { location, stamp: stamp.clone() },
            });
        }
        *self.results.lock().unwrap_or_else(|p| p.into_inner()) = results;
        for l in listings {
            out(l);
        }
    }

    fn fetch(&self, location: &str) -> Result<Fetched, SourceError> {
        let result = self.results.lock().unwrap_or_else(|p| p.into_inner()).remove(location);
        Ok(result.unwrap_or_else(|| Err(TlsError::NotProbed { location: location.to_string() }))?)
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
