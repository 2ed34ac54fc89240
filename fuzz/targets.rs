//! The bodies of the fuzz targets: one function per target, taking the fuzzer's bytes.
//!
//! This file is the library of the fuzz crate (`fuzz/Cargo.toml`; each `fuzz_targets/*.rs`
//! calls one function) and a module of `tests/properties.rs`, which replays the stored corpus
//! (`fuzz/corpus/<target>/`) and the regressions (`fuzz/regressions/<target>/`) through the
//! same functions under `cargo test`. A body returns for every input; a panic, a hang or an
//! oversized allocation is a bug of certvigil (or of a library it feeds the bytes to).
//!
//! Bodies use what they get back (errors displayed, facts serialised), so that what is computed
//! lazily runs too. Fixed material (the test CA of the `crl` and `ocsp` targets, the account key
//! of the `acme` target) is in `fuzz/fixtures/`; see `fuzz/README.md`.

#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, OnceLock};

/// A target's body.
pub type Body = fn(&[u8]);

/// Every target: its name (the directory under `fuzz/corpus/` and `fuzz/regressions/`, and
/// the binary under `fuzz/fuzz_targets/`) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("parse_object", parse_object),
    ("crl", crl),
    ("crl_judge", crl_judge),
    ("ocsp", ocsp),
    ("config", config),
    ("acme", acme),
    ("kubernetes", kubernetes),
    ("http_api", http_api),
    ("dns", dns),
];

/// The fixed clock of the targets: 2027-01-15T08:00:00Z, inside the validity of the fixture CA
/// and its responder (2026-12-04 for 100 years) and after every stored seed was made.
pub const NOW: i64 = 1_800_000_000;

/// The passwords of the seeds' PKCS#12 and JKS files (those of `tests/common`).
pub const PASSWORDS: &[&str] = &["p12-S3cret!", "changeit"];

/// The fixture PKI (`fuzz/fixtures/make.sh`).
pub const CA_PEM: &[u8] = include_bytes!("fixtures/ca.crt");
pub const CA_KEY_PEM: &[u8] = include_bytes!("fixtures/ca.key");
pub const RESPONDER_PEM: &[u8] = include_bytes!("fixtures/ocsp.crt");
pub const RESPONDER_KEY_PEM: &[u8] = include_bytes!("fixtures/ocsp.key");

/// The first PEM block of `pem`, decoded (fixtures only: a bad fixture is a broken build).
pub fn pem_body(pem: &[u8]) -> Vec<u8> {
    let block = certvigil::x509::pem::scan(pem).into_iter().next().expect("a fixture holds a PEM block");
    block.body.expect("a fixture's PEM block decodes")
}

// ---------------------------------------------------------------------------------------------
// parse_object: PEM, DER, PKCS#7, PKCS#12, JKS

/// `x509::parse_object` with the seeds' passwords, then every fact of what it found.
pub fn parse_object(data: &[u8]) {
    let parsed = certvigil::x509::parse_object(data, PASSWORDS);
    for found in &parsed.certs {
        let f = &found.facts;
        assert!(!found.der.is_empty());
        let _ = f.display_name();
        let _ = f.key.to_string();
        let _ = certvigil::model::format_time(f.not_before);
        let _ = certvigil::model::format_time(f.not_after);
        let _ = serde_json::to_string(f).expect("facts serialise");
        // What the revocation pass reads from each certificate besides its facts.
        for dp in certvigil::revocation::crl::cert_distribution_points(&found.der).unwrap_or_default() {
            let _ = dp.uris();
        }
    }
    for e in &parsed.errors {
        let _ = e.to_string();
    }
    let _ = (parsed.format.map(|f| f.to_string()), &parsed.keys, &parsed.other, &parsed.notes);
}

// ---------------------------------------------------------------------------------------------
// crl: load, lookup, base + delta

/// The fixture CA as a CRL issuer: subject DER, SPKI DER, subject key identifier, key usage.
struct CrlFixture {
    der: Vec<u8>,
    ski: Option<Vec<u8>>,
    key_usage: Vec<String>,
}

fn crl_fixture() -> &'static CrlFixture {
    static I: OnceLock<CrlFixture> = OnceLock::new();
    I.get_or_init(|| {
        let der = pem_body(CA_PEM);
        let facts = certvigil::x509::cert::parse_der(&der).expect("fixture CA parses");
        let ski = facts.ski.as_deref().and_then(|s| hex::decode(s.replace(':', "")).ok());
        CrlFixture { ski, key_usage: facts.key_usage.clone(), der }
    })
}

/// Serials looked up in every CRL: those the seeds revoke (0x1000…), with and without the
/// DER sign octet, and a few that are never listed.
const CRL_SERIALS: &[&[u8]] = &[
    &[0x10, 0x00],
    &[0x10, 0x01],
    &[0x10, 0x02],
    &[0x10, 0x03],
    &[0x10, 0x04],
    &[0x10, 0x05],
    &[0x00, 0x10, 0x01],
    &[0x00, 0x8f, 0xab],
    &[0x0f, 0xff],
    &[0x01],
    &[0x00],
    &[],
    &[0xff; 20],
];

/// Largest CRL the target parses (the daemon's default limit is far larger; the fuzzer's
/// inputs are far smaller).
const CRL_LIMIT: usize = 1 << 20;

fn parse_crl(der: &[u8]) -> Option<certvigil::revocation::crl::Crl> {
    match certvigil::revocation::crl::Crl::parse(der.to_vec(), CRL_LIMIT) {
        Ok(c) => Some(c),
        Err(e) => {
            let _ = e.to_string();
            None
        }
    }
}

/// How the target judges CRLs: the daemon's defaults at [`NOW`].
const JUDGING: certvigil::revocation::crl::Judging =
    certvigil::revocation::crl::Judging { now: NOW, clock_skew: 300, stale_grace: 86_400, min_rsa_bits: 2048 };

/// The distribution point of the seeds' leaves (`crlDistributionPoints`).
const CRL_DP: &str = "http://127.0.0.1:8080/ca.crl";

/// Input: a big-endian u16 `n`, then a base CRL of `n` bytes, then a delta CRL (the rest).
/// When `n` runs past the end, the whole rest is the base and there is no delta.
///
/// Both are parsed and looked up; then judged as the revocation pass judges them (signature,
/// issuer, time, scope for a leaf reached through its distribution point and for a CA named by
/// configuration, the delta's fit) and answered for each serial; `decide` also sees the pair
/// unjudged.
pub fn crl(data: &[u8]) {
    use certvigil::revocation::crl::{self, CertDp, CertScope, CrlIssuer, DpName};
    let Some((len, rest)) = data.split_first_chunk::<2>() else { return };
    let n = usize::from(u16::from_be_bytes(*len));
    let (base, delta) = if n <= rest.len() { rest.split_at(n) } else { (rest, &[][..]) };
    let ca = crl_fixture();
    let parts = certvigil::x509::cert::raw_parts(&ca.der).expect("fixture CA parts");
    let issuer = CrlIssuer { subject_der: parts.subject, spki_der: parts.spki, ski: ca.ski.as_deref(), key_usage: &ca.key_usage };
    let base = parse_crl(base);
    let delta = if delta.is_empty() { None } else { parse_crl(delta) };
    for c in base.iter().chain(delta.iter()) {
        let _ = (c.len(), c.is_empty(), c.is_delta(), c.der().len(), c.issuer_der().len(), c.this_update, c.next_update);
        let _ = (&c.crl_number, &c.delta_base, &c.aki, &c.freshest, &c.idp, &c.sha256, c.issued_by(parts.subject));
        for serial in CRL_SERIALS {
            if let Ok(Some(e)) = c.lookup(serial) {
                let _ = (e.revoked_at, e.reason.map(|r| r.as_str()), e.invalidity_date);
            }
        }
    }
    let Some(base) = &base else { return };
    for serial in CRL_SERIALS {
        let _ = crl::decide(base, delta.as_ref(), serial).map(|v| format!("{v:?}")).map_err(|e| e.to_string());
    }
    let dps = [CertDp {
        name: Some(DpName::Full(vec![certvigil::x509::ber::encode(0x86, CRL_DP.as_bytes())])),
        reasons: None,
        crl_issuer: false,
    }];
    let scopes = [CertScope { is_ca: false, dps: &dps, via: Some(CRL_DP) }, CertScope { is_ca: true, dps: &[], via: None }];
    for scope in &scopes {
        let coverage = match base.judge_base(&issuer, scope, &JUDGING) {
            Ok(c) => c,
            Err(e) => {
                let _ = e.to_string();
                continue;
            }
        };
        let _ = coverage.describe();
        let applicable = delta.as_ref().filter(|d| d.judge_delta(base, &issuer, &JUDGING).map_err(|e| e.to_string()).is_ok());
        for serial in CRL_SERIALS {
            let _ = crl::answer(base, applicable, serial, coverage).map(|v| format!("{v:?}")).map_err(|e| e.to_string());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ocsp: response verification

struct OcspFixture {
    ca_der: Vec<u8>,
    responder_der: Vec<u8>,
    ca_key: ring::signature::EcdsaKeyPair,
    responder_key: ring::signature::EcdsaKeyPair,
}

fn ocsp_fixture() -> &'static OcspFixture {
    static F: OnceLock<OcspFixture> = OnceLock::new();
    F.get_or_init(|| {
        let rng = ring::rand::SystemRandom::new();
        let key = |pem: &[u8]| {
            ring::signature::EcdsaKeyPair::from_pkcs8(&ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING, &pem_body(pem), &rng)
                .expect("fixture key is a P-256 PKCS#8 key")
        };
        OcspFixture {
            ca_der: pem_body(CA_PEM),
            responder_der: pem_body(RESPONDER_PEM),
            ca_key: key(CA_KEY_PEM),
            responder_key: key(RESPONDER_KEY_PEM),
        }
    })
}

/// The nonce of the seeds' requests (RFC 8954).
pub const OCSP_NONCE: &[u8] = b"certvigil-fuzz-nonce-0123456789";
/// The clock skew the target allows, as the daemon's default.
const OCSP_SKEW: i64 = 300;

/// A BasicOCSPResponse around `tbs` (ResponseData DER), signed with ECDSA P-256/SHA-256 by
/// `key`, carrying `certs`, wrapped in a successful OCSPResponse (RFC 6960 §4.2.1).
pub fn signed_ocsp_response(tbs: &[u8], key: &ring::signature::EcdsaKeyPair, certs: &[&[u8]]) -> Vec<u8> {
    use certvigil::x509::ber::{SEQUENCE, encode, encode_oid};
    let rng = ring::rand::SystemRandom::new();
    let sig = key.sign(&rng, tbs).expect("ECDSA signing");
    let mut bits = vec![0u8];
    bits.extend_from_slice(sig.as_ref());
    let mut basic = [tbs.to_vec(), encode(SEQUENCE, &encode_oid("1.2.840.10045.4.3.2")), encode(0x03, &bits)].concat();
    if !certs.is_empty() {
        basic.extend(encode(0xa0, &encode(SEQUENCE, &certs.concat())));
    }
    let basic = encode(SEQUENCE, &basic);
    let bytes = encode(SEQUENCE, &[encode_oid("1.3.6.1.5.5.7.48.1.1"), encode(0x04, &basic)].concat());
    encode(SEQUENCE, &[vec![0x0a, 0x01, 0x00], encode(0xa0, &bytes)].concat())
}

/// Input: a selector octet, then the response. Selector bits 0–1: 0 and 1 the rest is an
/// OCSPResponse as received; 2 the rest is a ResponseData, signed here by the fixture CA; 3
/// signed by the fixture responder, whose certificate goes with it (so the fuzzer reaches what
/// follows the signature check). Bit 2: the request carried [`OCSP_NONCE`]. Bits 3–4: the
/// CertID's serial is 0x1001 + that.
pub fn ocsp(data: &[u8]) {
    use certvigil::revocation::ocsp::{Issuer, cert_id, verify_response};
    let Some((&sel, rest)) = data.split_first() else { return };
    let f = ocsp_fixture();
    let parts = certvigil::x509::cert::raw_parts(&f.ca_der).expect("fixture CA parts");
    let issuer = Issuer { subject_der: parts.subject, spki_der: parts.spki };
    let serial = [0x10, 0x01 + ((sel >> 3) & 3)];
    let id = cert_id(&issuer, &serial).expect("CertID of the fixture CA");
    let nonce = (sel & 4 != 0).then_some(OCSP_NONCE);
    let der = match sel & 3 {
        2 => signed_ocsp_response(rest, &f.ca_key, &[]),
        3 => signed_ocsp_response(rest, &f.responder_key, &[&f.responder_der]),
        _ => rest.to_vec(),
    };
    match verify_response(&der, &id, &issuer, nonce, NOW, OCSP_SKEW, 2048) {
        Ok(answer) => {
            let _ = format!("{answer:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// config: YAML parse + validate

/// `config::parse_str` (YAML syntax, schema check, typed parse, validation) on the input as
/// UTF-8 text (a file that is not UTF-8 is refused before parsing); a valid configuration's
/// job schedules are then computed around [`NOW`].
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match certvigil::config::parse_str(text, "fuzz.yaml", Path::new("/etc/certvigil")) {
        Ok(settings) => {
            for job in &settings.jobs {
                let s = &job.schedule;
                let _ = (s.expression(), s.time_zone(), s.describe(), s.local(NOW));
                let _ = (s.next_after(NOW), s.previous_at_or_before(NOW), s.next_n(NOW, 3));
            }
            let _ = format!("{:?}", settings.sources);
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error result carries at least one error");
            for e in &errors.0 {
                let _ = e.to_string();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// acme: directory, order, problem and renewalInfo documents

/// Where the scripted ACME server lives (never contacted: requests are answered in memory).
const ACME: &str = "https://127.0.0.1/acme";

/// A directory (RFC 8555 §7.1.1) with every resource, profiles (draft-ietf-acme-profiles) and
/// renewalInfo (RFC 9773 §3).
pub const ACME_DIRECTORY: &str = r#"{"newNonce":"https://127.0.0.1/acme/new-nonce","newAccount":"https://127.0.0.1/acme/new-acct","newOrder":"https://127.0.0.1/acme/new-order","revokeCert":"https://127.0.0.1/acme/revoke-cert","keyChange":"https://127.0.0.1/acme/key-change","renewalInfo":"https://127.0.0.1/acme/renewal-info","meta":{"termsOfService":"https://127.0.0.1/acme/terms","profiles":{"classic":"The same profile you're accustomed to","tlsserver":"https://127.0.0.1/docs/tlsserver"}}}"#;

/// An HTTP answer of the scripted server.
#[derive(Clone, Debug)]
pub struct Scripted {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

impl Scripted {
    fn ok(body: &str) -> Scripted {
        Scripted { status: 200, retry_after: None, body: body.as_bytes().to_vec() }
    }

    /// `<status>[ <Retry-After>]\n<body>`; without a first line, a 200 with the whole input.
    pub fn parse(data: &[u8]) -> Scripted {
        let line_end = data.iter().position(|&b| b == b'\n');
        let status = data.get(..3).and_then(|s| std::str::from_utf8(s).ok()).and_then(|s| s.parse::<u16>().ok());
        match (line_end, status) {
            (Some(end), Some(status)) => {
                let retry_after = data.get(4..end).map(|v| String::from_utf8_lossy(v).into_owned());
                Scripted { status, retry_after, body: data[end + 1..].to_vec() }
            }
            _ => Scripted { status: 200, retry_after: None, body: data.to_vec() },
        }
    }
}

/// Which request of the flow gets the fuzzer's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AcmeStep {
    Directory,
    RenewalInfo,
    Order,
    Revoke,
}

/// An ACME server that answers from memory: the fuzzer's answer for one step, well-formed
/// answers for the others. Every answer goes through certvigil's `acme_response`, as the
/// reqwest transport's do.
struct ScriptedServer {
    step: AcmeStep,
    answer: Scripted,
}

impl instant_acme::HttpClient for ScriptedServer {
    fn request(
        &self,
        req: http::Request<instant_acme::BodyWrapper<bytes::Bytes>>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<instant_acme::BytesResponse, instant_acme::Error>> + Send>> {
        let uri = req.uri().to_string();
        let method = req.method().clone();
        let (step, fixed) = if method == http::Method::HEAD {
            (None, Scripted::ok(""))
        } else if uri == format!("{ACME}/directory") {
            (Some(AcmeStep::Directory), Scripted::ok(ACME_DIRECTORY))
        } else if method == http::Method::GET {
            let ari = r#"{"suggestedWindow":{"start":"2027-01-20T00:00:00Z","end":"2027-01-22T00:00:00Z"},"explanationURL":"https://127.0.0.1/acme/docs/ari"}"#;
            (Some(AcmeStep::RenewalInfo), Scripted { retry_after: Some("21600".into()), ..Scripted::ok(ari) })
        } else if uri.contains("revoke") {
            (Some(AcmeStep::Revoke), Scripted::ok(""))
        } else {
            let order = r#"{"status":"pending","expires":"2027-01-22T00:00:00Z","identifiers":[{"type":"dns","value":"www.example.test"}],"authorizations":["https://127.0.0.1/acme/authz/1"],"finalize":"https://127.0.0.1/acme/order/1/finalize"}"#;
            (Some(AcmeStep::Order), Scripted::ok(order))
        };
        let answer = if step == Some(self.step) { self.answer.clone() } else { fixed };
        let mut headers = http::HeaderMap::new();
        headers.insert("replay-nonce", http::HeaderValue::from_static("c2NyaXB0ZWQtbm9uY2U"));
        headers.insert("content-type", http::HeaderValue::from_static("application/json"));
        if let Some(v) = answer.retry_after.as_deref().and_then(|v| http::HeaderValue::from_str(v).ok()) {
            headers.insert("retry-after", v);
        }
        let status = http::StatusCode::from_u16(answer.status).unwrap_or(http::StatusCode::OK);
        let rsp = certvigil::issuers::acme::acme_response(status, headers, answer.body);
        Box::pin(async move { rsp })
    }
}

struct AcmeFixture {
    rt: tokio::runtime::Runtime,
    credentials: String,
    state_dir: tempfile::TempDir,
    cert_der: Vec<u8>,
}

fn acme_fixture() -> &'static AcmeFixture {
    static F: OnceLock<AcmeFixture> = OnceLock::new();
    F.get_or_init(|| {
        use base64ct::{Base64UrlUnpadded, Encoding};
        let key = Base64UrlUnpadded::encode_string(&pem_body(CA_KEY_PEM));
        let credentials = serde_json::json!({"id": format!("{ACME}/acct/1"), "key_pkcs8": key, "directory": format!("{ACME}/directory")});
        AcmeFixture {
            rt: tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"),
            credentials: credentials.to_string(),
            state_dir: tempfile::tempdir().expect("temporary directory"),
            cert_der: pem_body(RESPONDER_PEM),
        }
    })
}

/// Input: a selector octet, then the step's answer (see [`Scripted::parse`]). Selector % 5:
/// 0 the directory, 1 the renewalInfo (ARI) answer, 2 an order fetched by URL, 3 the answer
/// to a revocation (a problem document when refused), each through certvigil's own calls where
/// it has them (`Session::renewal_info`, `Session::revoke`); 4 the body alone, decoded as each
/// document type certvigil receives.
pub fn acme(data: &[u8]) {
    use certvigil::issuers::acme::Session;
    let Some((&sel, rest)) = data.split_first() else { return };
    let step = match sel % 5 {
        0 => AcmeStep::Directory,
        1 => AcmeStep::RenewalInfo,
        2 => AcmeStep::Order,
        3 => AcmeStep::Revoke,
        _ => return acme_documents(rest),
    };
    let answer = if step == AcmeStep::Directory { Scripted::ok("") } else { Scripted::parse(rest) };
    let answer = if step == AcmeStep::Directory { Scripted { body: rest.to_vec(), ..answer } } else { answer };
    let f = acme_fixture();
    f.rt.block_on(async {
        let creds: instant_acme::AccountCredentials = serde_json::from_str(&f.credentials).expect("fixture credentials");
        let http = Box::new(ScriptedServer { step, answer });
        let account = match instant_acme::Account::builder_with_http(http).from_credentials(creds).await {
            Ok(a) => a,
            Err(e) => {
                let _ = e.to_string();
                return;
            }
        };
        let _: Vec<String> = account.profiles().map(|p| format!("{}: {}", p.name, p.description)).collect();
        let order = account.order(format!("{ACME}/order/1")).await;
        match order {
            Ok(mut o) => {
                let _ = format!("{:?}", o.state());
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
        let session = Session::with_account(account, f.state_dir.path());
        match session.renewal_info("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE").await {
            Ok(w) => {
                let _ = format!("{w:?}");
            }
            Err(e) => {
                let _ = certvigil::issuers::acme::error_chain(&e);
            }
        }
        match session.revoke(&f.cert_der, instant_acme::RevocationReason::KeyCompromise).await {
            Ok(already) => {
                let _ = already;
            }
            Err(e) => {
                let _ = certvigil::issuers::acme::error_chain(&e);
            }
        }
    });
}

/// The bodies certvigil receives from an ACME server, each decoded as the client decodes them.
fn acme_documents(body: &[u8]) {
    if let Ok(p) = serde_json::from_slice::<instant_acme::Problem>(body) {
        let _ = (p.to_string(), p.r#type.as_deref().is_some_and(|t| t.ends_with(":alreadyRevoked")));
    }
    if let Ok(o) = serde_json::from_slice::<instant_acme::OrderState>(body) {
        let _ = format!("{o:?}");
    }
    if let Ok(a) = serde_json::from_slice::<instant_acme::AuthorizationState>(body) {
        let _ = format!("{a:?}");
    }
    if let Ok(r) = serde_json::from_slice::<instant_acme::RenewalInfo>(body) {
        let _ = (r.suggested_window.start.unix_timestamp(), r.suggested_window.end.unix_timestamp(), r.explanation_url);
    }
    if let Ok(c) = serde_json::from_slice::<instant_acme::AccountCredentials>(body) {
        let _ = c.private_key();
    }
}

// ---------------------------------------------------------------------------------------------
// kubernetes: list pages

/// A Kubernetes source with every key role configured (never connected: pages are read from
/// memory).
fn kubernetes_source() -> &'static certvigil::sources::kubernetes::KubernetesSource {
    static S: OnceLock<certvigil::sources::kubernetes::KubernetesSource> = OnceLock::new();
    S.get_or_init(|| {
        let text = "sources:\n  - name: cluster\n    kind: kubernetes\n    context: fuzz\n    in_cluster: false\n    secret_keys: ['*.crt', '*.pem', 'keystore.p12', '*.jks']\n    configmap_keys: ['*.pem', 'ca.crt']\n    public_key_keys: ['cosign.pub']\n    trust_root_keys: ['root.json']\n    password_keys: ['password']\n";
        let settings = certvigil::config::parse_str(text, "fuzz.yaml", Path::new("/etc/certvigil")).expect("the fixture configuration is valid");
        match settings.sources.into_iter().next() {
            Some(certvigil::config::SourceSpec::Kubernetes(spec)) => certvigil::sources::kubernetes::KubernetesSource::new(spec),
            _ => panic!("the fixture configuration has one Kubernetes source"),
        }
    })
}

/// Input: a selector octet, then a body. Selector % 4: 0 a page of a Secrets list (the parser
/// that skips values), 1 a page of a ConfigMaps list, 2 a `public_key_keys` value (PEM public
/// key), 3 a `trust_root_keys` value (TUF root.json).
pub fn kubernetes(data: &[u8]) {
    use certvigil::sources::trust;
    let Some((&sel, body)) = data.split_first() else { return };
    let source = kubernetes_source();
    let page = match sel % 4 {
        0 => Some(source.read_secret_page("fuzz", body)),
        1 => Some(source.read_configmap_page("fuzz", body)),
        2 => {
            let _ = trust::public_key(body).map(|k| format!("{k:?}")).map_err(|e| e.to_string());
            None
        }
        _ => {
            let _ = trust::tuf_root(body).map(|k| format!("{k:?}")).map_err(|e| e.to_string());
            None
        }
    };
    match page {
        Some(Ok((objects, next))) => {
            for (location, stamp) in &objects {
                assert!(location.starts_with("k8s://fuzz/"), "{location}");
                let _ = stamp.len();
            }
            let _ = next;
        }
        Some(Err(e)) => {
            let _ = e.to_string();
        }
        None => {}
    }
}

// ---------------------------------------------------------------------------------------------
// http_api: request bytes → the daemon's HTTP handler

/// The bearer token of the fixture daemon.
pub const API_TOKEN: &str = "fuzz-token-0123456789abcdef";

/// A clock fixed at [`NOW`].
struct FixedClock;

impl certvigil::daemon::runner::Clock for FixedClock {
    fn now_millis(&self) -> i64 {
        NOW * 1000
    }
}

struct HttpFixture {
    rt: tokio::runtime::Runtime,
    state: Arc<certvigil::daemon::http::State>,
    _dir: tempfile::TempDir,
}

fn http_fixture() -> &'static HttpFixture {
    static F: OnceLock<HttpFixture> = OnceLock::new();
    F.get_or_init(|| {
        use certvigil::daemon::runner::{Control, JobStatus, Live, TriggerError};
        use std::sync::{Mutex, RwLock};
        let dir = tempfile::tempdir().expect("temporary directory");
        let certs = dir.path().join("certs");
        std::fs::create_dir_all(&certs).expect("certs directory");
        std::fs::write(certs.join("ca.pem"), CA_PEM).expect("write");
        std::fs::write(certs.join("responder.pem"), RESPONDER_PEM).expect("write");
        let text = format!("sources:\n  - name: files\n    kind: files\n    paths: ['{}']\n    tags: [fuzz]\n", certs.display());
        let settings = certvigil::config::parse_str(&text, "fuzz.yaml", dir.path()).expect("the fixture configuration is valid");
        let store_path = dir.path().join("certvigil.db");
        let mut store = certvigil::store::Store::open(&store_path).expect("store");
        let sources: Vec<_> = settings.sources.iter().map(certvigil::sources::build).collect();
        certvigil::app::scan::scan(&mut store, &sources, true, NOW, 1, &mut |_| {}).expect("scan");
        drop(store);
        // Requests come one at a time, so one thread answers every store query; kept alive, it
        // is not started again for each input (a new thread per input would grow the fuzzer's
        // resident memory by a stack each time).
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(2)
            .thread_keep_alive(std::time::Duration::from_secs(24 * 3600))
            .build()
            .expect("runtime");
        let (control, mut rx) = tokio::sync::mpsc::channel::<Control>(16);
        // The job loop's side of `POST /api/v1/jobs/<name>/run`.
        rt.spawn(async move {
            while let Some(c) = rx.recv().await {
                if let Control::Trigger { job, reply } = c {
                    let _ = reply.send(if job == "scan" { Ok(7) } else { Err(TriggerError::Unknown(job)) });
                }
            }
        });
        let job = JobStatus {
            name: "scan".into(),
            kind: "scan",
            schedule: "*/30 * * * *".into(),
            timezone: "UTC".into(),
            description: "every 30 minutes".into(),
            jitter_seconds: 0,
            next_fire: Some(NOW + 600),
            next_run: Some(NOW + 600),
            running_since: None,
            run_id: None,
            queued_for_catch_up: false,
        };
        let state = Arc::new(certvigil::daemon::http::State {
            store: certvigil::model::store_location::StoreLocation::File(store_path),
            cluster: None,
            settings: RwLock::new(Arc::new(settings)),
            tokens: RwLock::new(certvigil::daemon::http::Tokens {
                admin: Some(certvigil::config::secret::Secret::new(API_TOKEN.into())),
                viewer: None,
            }),
            ui: Default::default(),
            live: Arc::new(Live { jobs: Mutex::new(vec![job]), shutting_down: Default::default() }),
            control,
            clock: Arc::new(FixedClock),
            reload: Mutex::new(certvigil::daemon::http::ReloadStatus { ok: true, ..Default::default() }),
            last_scrape_micros: Default::default(),
        });
        HttpFixture { rt, state, _dir: dir }
    })
}

/// Largest response the target reads back.
const MAX_RESPONSE: u64 = 4 << 20;

/// The input is what a client sends on one connection (any number of requests): it goes
/// through hyper's HTTP/1 server, configured as the daemon's, to `daemon::http::handle`, over an
/// in-memory stream whose client side is closed after the input; the answer is read to its end.
/// Unlike the daemon's, the server waits for its answers after the client's end of input
/// (`half_close`): otherwise every request answered asynchronously (all of the API) would be
/// dropped unanswered here.
pub fn http_api(data: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = http_fixture();
    f.rt.block_on(async {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let state = Arc::clone(&f.state);
        let service = hyper::service::service_fn(move |req| {
            let state = Arc::clone(&state);
            async move { Ok::<_, std::convert::Infallible>(certvigil::daemon::http::handle(req, &state).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .max_buf_size(64 * 1024)
            .half_close(true)
            .serve_connection(hyper_util::rt::TokioIo::new(server), service);
        let (mut read, mut write) = tokio::io::split(client);
        let send = async move {
            let _ = write.write_all(data).await;
            let _ = write.shutdown().await;
        };
        let receive = async move {
            let mut answer = Vec::new();
            let _ = (&mut read).take(MAX_RESPONSE).read_to_end(&mut answer).await;
            answer
        };
        let (served, (), answer) = tokio::join!(conn, send, receive);
        let _ = (served.map_err(|e| e.to_string()), answer.len());
    });
}

// ---------------------------------------------------------------------------------------------
// dns: answers to the dns-01 propagation check

/// `issuers::dns::parse` of the input as an answer to the query with the input's own message
/// id (so that the id check passes), and the query encoder on the input as a name.
pub fn dns(data: &[u8]) {
    let resolver = std::net::SocketAddr::from(([127, 0, 0, 1], 53));
    let id = data.first_chunk::<2>().map(|b| u16::from_be_bytes(*b)).unwrap_or(0);
    match certvigil::issuers::dns::parse(data, id, resolver) {
        Ok(answer) => {
            let _ = format!("{answer:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Ok(name) = std::str::from_utf8(data) {
        let _ = certvigil::issuers::dns::query(id, name);
    }
}

// ---------------------------------------------------------------------------------------------
// crl_judge: a TBSCertList signed here by the fixture CA, then judged as `check` judges it

/// Input: a selector octet, then a TBSCertList (DER), which is signed here with the fixture CA
/// key so that the fuzzer reaches what follows the signature: whole-CRL validation, the
/// issuing distribution point scope against certificates of several shapes, the answer for the
/// serials, and the delta rules (the CRL judged as a delta of itself). Selector bit 0: the
/// certificate is a CA; bit 1: it came through its distribution point; bits 2–3: which of the
/// certificate distribution point shapes it has.
pub fn crl_judge(data: &[u8]) {
    use certvigil::revocation::crl::{self, CertDp, CertScope, CrlIssuer, DpName, Judging};
    use certvigil::x509::ber::{SEQUENCE, encode, encode_oid};
    let Some((&sel, tbs)) = data.split_first() else { return };
    let f = ocsp_fixture();
    let rng = ring::rand::SystemRandom::new();
    let Ok(sig) = f.ca_key.sign(&rng, tbs) else { return };
    let mut bits = vec![0u8];
    bits.extend_from_slice(sig.as_ref());
    let der = encode(SEQUENCE, &[tbs.to_vec(), encode(SEQUENCE, &encode_oid("1.2.840.10045.4.3.2")), encode(0x03, &bits)].concat());
    let Some(c) = parse_crl(&der) else { return };
    let issuer = crl_fixture();
    let parts = certvigil::x509::cert::raw_parts(&issuer.der).expect("fixture CA parts");
    let ci = CrlIssuer { subject_der: parts.subject, spki_der: parts.spki, ski: issuer.ski.as_deref(), key_usage: &issuer.key_usage };
    let url = "http://127.0.0.1:8080/ca.crl";
    let uri = encode(0x86, url.as_bytes());
    let dps: Vec<CertDp> = match (sel >> 2) & 3 {
        0 => vec![],
        1 => vec![CertDp { name: Some(DpName::Full(vec![uri])), reasons: None, crl_issuer: false }],
        2 => vec![CertDp { name: Some(DpName::Full(vec![uri])), reasons: Some(0x06), crl_issuer: false }],
        _ => vec![CertDp { name: Some(DpName::Full(vec![uri])), reasons: None, crl_issuer: true }],
    };
    let scope = CertScope { is_ca: sel & 1 != 0, dps: &dps, via: (sel & 2 != 0).then_some(url) };
    let j = Judging { now: NOW, clock_skew: OCSP_SKEW, stale_grace: 3600, min_rsa_bits: 2048 };
    match c.judge_base(&ci, &scope, &j) {
        Ok(coverage) => {
            let _ = coverage.describe();
            for serial in CRL_SERIALS {
                let _ = format!("{:?}", crl::answer(&c, Some(&c), serial, coverage));
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let _ = c.judge_delta(&c, &ci, &j).map_err(|e| e.to_string());
    let _ = format!("{:?}", c.idp);
}
