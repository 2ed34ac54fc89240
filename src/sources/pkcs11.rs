//! PKCS#11 tokens (HSMs, SoftHSM2): certificate objects (CKO_CERTIFICATE, their CKA_VALUE is
//! the DER certificate) and key objects (CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, their attributes).
//!
//! One scan loads the module once (C_Initialize … C_Finalize), opens a read-only session on
//! the configured token, logs in as the user when a PIN is configured, and reads every object's
//! attributes during `list`. `fetch` serves what `list` read, by location: a session is not
//! shareable between the scan driver's worker threads (PKCS#11 v2.40 §5.6 leaves that to the
//! application) and a token holds few objects. Locations are RFC 7512 PKCS#11 URIs. Tokens keep
//! no modification times, so an object's stamp is a hash of the attributes read.

use super::{Fetched, KeyObject, Listing, Source, SourceError};
use crate::config::secret::Secret;
use crate::config::sources::pkcs11::{Pkcs11Spec, TokenSelector};
use crate::x509::ber;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use sha2::Digest;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// C_Initialize and C_Finalize act on the whole process (PKCS#11 v2.40 §5.4): two scans that
/// load modules at once would finalize each other's library. Listing is serialised.
static MODULE_LOCK: Mutex<()> = Mutex::new(());

/// Why the token could not be read (nothing listed), or an object not served. PKCS#11 errors
/// are shown by their specification names (`C_Login: CKR_PIN_INCORRECT`).
#[derive(Debug, thiserror::Error)]
pub enum Pkcs11Error {
    /// Loading or initialising the module failed.
    #[error("PKCS#11 module {}: {}", .module.display(), ck(.source))]
    Module {
        module: PathBuf,
        #[source]
        source: CkError,
    },
    #[error("PKCS#11 module {}: cannot list slots: {}", .module.display(), ck(.source))]
    Slots {
        module: PathBuf,
        #[source]
        source: CkError,
    },
    #[error("PKCS#11 module {}: slot {slot}: {}", .module.display(), ck(.source))]
    Slot {
        module: PathBuf,
        slot: u64,
        #[source]
        source: CkError,
    },
    /// `token` names the selector (``token `x` `` or `the token in slot index 2`); `present` the
    /// labels of the tokens the module has.
    #[error("{token} not found in PKCS#11 module {}; tokens present: {}", .module.display(), present_list(.present))]
    TokenNotFound { token: String, module: PathBuf, present: Vec<String> },
    #[error("{token}: {}", ck(.source))]
    TokenInfo {
        token: String,
        #[source]
        source: CkError,
    },
    #[error("{token}: the user PIN is locked (CKF_USER_PIN_LOCKED): unlock it with the SO PIN; no login attempted")]
    PinLocked { token: String },
    #[error("{token}: cannot open a read-only session: {}", ck(.source))]
    Session {
        token: String,
        #[source]
        source: CkError,
    },
    /// The configured PIN reference could not be resolved.
    #[error("{token}: PIN {reference}: {source}")]
    Pin {
        token: String,
        reference: String,
        #[source]
        source: crate::config::secret::SecretError,
    },
    #[error("{token}: login failed: {} (the PIN from {reference} is wrong)", ck(.source))]
    WrongPin {
        token: String,
        reference: String,
        #[source]
        source: CkError,
    },
    #[error("{token}: login failed: {}", ck(.source))]
    Login {
        token: String,
        #[source]
        source: CkError,
    },
    #[error("{token}: cannot search {class} objects: {}", ck(.source))]
    Search {
        token: String,
        class: &'static str,
        #[source]
        source: CkError,
    },
    #[error("not listed by this scan (the token changed while it was read)")]
    NotListed { location: String },
}

/// `` `a`, `b` `` or `none`.
fn present_list(labels: &[String]) -> String {
    if labels.is_empty() { "none".to_string() } else { labels.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ") }
}

pub struct Pkcs11Source {
    spec: Pkcs11Spec,
    /// What the last `list` read, by location.
    snapshot: Mutex<HashMap<String, Fetched>>,
}

impl Pkcs11Source {
    pub fn new(spec: Pkcs11Spec) -> Self {
        Pkcs11Source { spec, snapshot: Mutex::new(HashMap::new()) }
    }

    fn token_name(&self) -> String {
        match &self.spec.token {
            TokenSelector::Label(l) => format!("token `{l}`"),
            TokenSelector::SlotIndex(i) => format!("the token in slot index {i}"),
        }
    }
}

impl Source for Pkcs11Source {
    fn name(&self) -> &str {
        &self.spec.name
    }
    fn kind(&self) -> &'static str {
        "pkcs11"
    }
    fn tags(&self) -> &[String] {
        &self.spec.tags
    }

    fn list(&self, out: &mut dyn FnMut(Listing)) {
        let _serial = MODULE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let objects = match self.read_token() {
            Ok(o) => o,
            Err(e) => {
                // The empty prefix covers the whole source: nothing is marked gone.
                out(Listing::Unavailable { prefix: String::new(), message: e.to_string() });
                return;
            }
        };
        let mut snapshot = HashMap::new();
        for o in objects {
            match o {
                Listed::Object { location, stamp, fetched } => {
                    snapshot.insert(location.clone(), *fetched);
                    out(Listing::Object { location, stamp });
                }
                Listed::Error { location, message } => out(Listing::Error { location, message }),
            }
        }
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = snapshot;
    }

    fn fetch(&self, location: &str) -> Result<Fetched, SourceError> {
        let snapshot = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        Ok(snapshot.get(location).cloned().ok_or_else(|| Pkcs11Error::NotListed { location: location.to_string() })?)
    }

    fn passwords(&self) -> Result<Vec<Secret>, SourceError> {
        Ok(Vec::new())
    }
}

enum Listed {
    Object { location: String, stamp: String, fetched: Box<Fetched> },
    Error { location: String, message: String },
}

/// A PKCS#11 error as its specification name: `C_Login: CKR_PIN_INCORRECT`.
fn ck(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, function) => format!("C_{function:?}: {}", rv_name(*rv)),
        CkError::LibraryLoading(e) => format!("cannot load the library: {e}"),
        other => other.to_string(),
    }
}

/// `PinIncorrect` → `CKR_PIN_INCORRECT` (cryptoki's variants are the CKR_ names in camel case).
fn rv_name(rv: RvError) -> String {
    let camel = format!("{rv:?}");
    let mut out = String::from("CKR_");
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// One object's attributes, as read.
#[derive(Debug, Default, Clone)]
struct Obj {
    class: Class,
    id: Vec<u8>,
    label: Option<String>,
    value: Vec<u8>,
    key_type: Option<KeyType>,
    bools: Vec<(&'static str, bool)>,
    modulus: Option<Vec<u8>>,
    modulus_bits: Option<u64>,
    exponent: Option<Vec<u8>>,
    ec_params: Option<Vec<u8>>,
    ec_point: Option<Vec<u8>>,
    public_key_info: Option<Vec<u8>>,
    start_date: Option<String>,
    end_date: Option<String>,
    date_error: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Class {
    #[default]
    Certificate,
    Private,
    Public,
}

impl Class {
    /// RFC 7512 §2.3 `type` attribute value.
    fn uri_type(self) -> &'static str {
        match self {
            Class::Certificate => "cert",
            Class::Private => "private",
            Class::Public => "public",
        }
    }
}

impl Pkcs11Source {
    /// Loads the module, reads the token, finalizes. An error here means nothing could be
    /// listed; errors on single objects come back as `Listed::Error`.
    fn read_token(&self) -> Result<Vec<Listed>, Pkcs11Error> {
        let module = self.spec.module.display().to_string();
        let pkcs11 = Pkcs11::new(&self.spec.module).map_err(|source| Pkcs11Error::Module { module: self.spec.module.clone(), source })?;
        // A module another part of this process initialised stays initialised: finalizing it
        // would pull it from under its user (PKCS#11 v2.40 §5.4 C_Finalize).
        let ours = match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) => true,
            Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => false,
            Err(source) => return Err(Pkcs11Error::Module { module: self.spec.module.clone(), source }),
        };
        let result = self.read_initialised(&pkcs11);
        if ours && let Err(e) = pkcs11.finalize() {
            tracing::warn!(source = %self.spec.name, module = %module, error = %ck(&e), "cannot finalize PKCS#11 module");
        }
        result
    }

    fn read_initialised(&self, pkcs11: &Pkcs11) -> Result<Vec<Listed>, Pkcs11Error> {
        let (slot, label) = self.find_token(pkcs11)?;
        let token = self.token_name();
        let info = pkcs11.get_token_info(slot).map_err(|source| Pkcs11Error::TokenInfo { token: token.clone(), source })?;
        if self.spec.pin.is_some() && info.user_pin_locked() {
            return Err(Pkcs11Error::PinLocked { token });
        }
        let session = pkcs11.open_ro_session(slot).map_err(|source| Pkcs11Error::Session { token: token.clone(), source })?;
        if let Some(pin_ref) = &self.spec.pin {
            let pin =
                pin_ref.resolve().map_err(|source| Pkcs11Error::Pin { token: token.clone(), reference: pin_ref.to_string(), source })?;
            match session.login(UserType::User, Some(&AuthPin::new(pin.expose().into()))) {
                // Another session of this process is logged in already: the login is per token.
                Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
                Err(source @ CkError::Pkcs11(RvError::PinIncorrect, _)) => {
                    return Err(Pkcs11Error::WrongPin { token, reference: pin_ref.to_string(), source });
                }
                Err(source) => return Err(Pkcs11Error::Login { token, source }),
            }
        }
        let mut objects: Vec<Obj> = Vec::new();
        let mut listed = Vec::new();
        for (class, ck_class) in [
            (Class::Certificate, ObjectClass::CERTIFICATE),
            (Class::Private, ObjectClass::PRIVATE_KEY),
            (Class::Public, ObjectClass::PUBLIC_KEY),
        ] {
            let handles = session.find_objects(&[Attribute::Class(ck_class)]).map_err(|source| Pkcs11Error::Search {
                token: token.clone(),
                class: class.uri_type(),
                source,
            })?;
            for h in handles {
                match read_object(&session, h, class) {
                    Ok(o) => objects.push(o),
                    Err((partial, e)) => {
                        let location = match partial {
                            Some(o) => uri(&label, &o),
                            // Not even CKA_ID/CKA_LABEL: RFC 7512 §2.3 allows vendor `x-` attributes.
                            None => format!("pkcs11:token={};type={};x-handle={}", pct(label.as_bytes()), class.uri_type(), h.handle()),
                        };
                        listed.push(Listed::Error { location, message: format!("cannot read attributes: {}", ck(&e)) });
                    }
                }
            }
        }
        drop(session);
        let spkis = pair_public_parts(&objects);
        let private_ids: Vec<&[u8]> =
            objects.iter().filter(|o| o.class == Class::Private && !o.id.is_empty()).map(|o| o.id.as_slice()).collect();
        let private_spkis: Vec<&str> = objects
            .iter()
            .zip(&spkis)
            .filter(|(o, _)| o.class == Class::Private)
            .filter_map(|(_, s)| s.as_ref().map(|s| s.sha256.as_str()))
            .collect();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut built: Vec<(String, String, Fetched)> = Vec::new();
        for (o, spki) in objects.iter().zip(&spkis) {
            let mut location = uri(&label, o);
            // Two objects may share class, CKA_ID and CKA_LABEL; keep their locations apart.
            let n = seen.entry(location.clone()).or_default();
            *n += 1;
            if *n > 1 {
                location = format!("{location};x-dup={n}");
            }
            let id_hex = (!o.id.is_empty()).then(|| hex::encode(&o.id));
            let mut meta = serde_json::json!({ "token": label, "id": id_hex, "label": o.label });
            let fetched = match o.class {
                Class::Certificate => {
                    let cert_spki = spki.as_ref().map(|s| s.sha256.as_str());
                    let key_present = (!o.id.is_empty() && private_ids.contains(&o.id.as_slice()))
                        || cert_spki.is_some_and(|s| private_spkis.contains(&s));
                    meta["key_present"] = serde_json::Value::Bool(key_present);
                    Fetched { bytes: o.value.clone(), meta: Some(meta), key: None, passwords: Vec::new() }
                }
                Class::Private | Class::Public => {
                    Fetched { bytes: Vec::new(), meta: Some(meta), key: Some(key_object(o, spki.as_ref())), passwords: Vec::new() }
                }
            };
            let stamp = stamp(o, &fetched);
            built.push((location, stamp, fetched));
        }
        // A stable order: the scan driver expects it, and tokens return handles in any order.
        built.sort_by(|a, b| a.0.cmp(&b.0));
        listed.extend(built.into_iter().map(|(location, stamp, fetched)| Listed::Object { location, stamp, fetched: Box::new(fetched) }));
        Ok(listed)
    }

    /// The slot of the configured token, and the token's label.
    fn find_token(&self, pkcs11: &Pkcs11) -> Result<(cryptoki::slot::Slot, String), Pkcs11Error> {
        let module = &self.spec.module;
        let slots = pkcs11.get_slots_with_token().map_err(|source| Pkcs11Error::Slots { module: module.clone(), source })?;
        let mut labels = Vec::new();
        for slot in &slots {
            let label = pkcs11.get_token_info(*slot).map(|i| i.label().trim_end().to_string()).map_err(|source| Pkcs11Error::Slot {
                module: module.clone(),
                slot: slot.id(),
                source,
            })?;
            labels.push((*slot, label));
        }
        let found = match &self.spec.token {
            TokenSelector::Label(want) => labels.iter().find(|(_, l)| l == want).cloned(),
            TokenSelector::SlotIndex(i) => labels.get(*i as usize).cloned(),
        };
        found.ok_or_else(|| Pkcs11Error::TokenNotFound {
            token: self.token_name(),
            module: module.clone(),
            present: labels.into_iter().map(|(_, l)| l).collect(),
        })
    }
}

/// The attributes read for every object; a failure is the object's error.
const COMMON: &[AttributeType] = &[AttributeType::Id, AttributeType::Label];
const KEY: &[AttributeType] = &[
    AttributeType::KeyType,
    AttributeType::Modulus,
    AttributeType::ModulusBits,
    AttributeType::PublicExponent,
    AttributeType::EcParams,
    AttributeType::EcPoint,
    AttributeType::PublicKeyInfo,
    AttributeType::Private,
    AttributeType::Local,
];
const PRIVATE_FLAGS: &[AttributeType] = &[
    AttributeType::Sign,
    AttributeType::Decrypt,
    AttributeType::Unwrap,
    AttributeType::Derive,
    AttributeType::Extractable,
    AttributeType::Sensitive,
    AttributeType::NeverExtractable,
    AttributeType::AlwaysSensitive,
    AttributeType::AlwaysAuthenticate,
];
const PUBLIC_FLAGS: &[AttributeType] = &[AttributeType::Verify, AttributeType::Encrypt, AttributeType::Wrap, AttributeType::Trusted];

/// Reads one object. On failure, what was read of its identity (for its location) and why.
fn read_object(session: &Session, h: ObjectHandle, class: Class) -> Result<Obj, (Option<Box<Obj>>, CkError)> {
    let mut o = Obj { class, ..Obj::default() };
    let ident = session.get_attributes(h, COMMON).map_err(|e| (None, e))?;
    for a in ident {
        match a {
            Attribute::Id(v) => o.id = v,
            Attribute::Label(v) if !v.is_empty() => o.label = Some(String::from_utf8_lossy(&v).into_owned()),
            _ => {}
        }
    }
    let mut wanted: Vec<AttributeType> = Vec::new();
    match class {
        Class::Certificate => wanted.push(AttributeType::Value),
        Class::Private => {
            wanted.extend_from_slice(KEY);
            wanted.extend_from_slice(PRIVATE_FLAGS);
        }
        Class::Public => {
            wanted.extend_from_slice(KEY);
            wanted.extend_from_slice(PUBLIC_FLAGS);
        }
    }
    // Attributes that do not apply to the object (CKR_ATTRIBUTE_TYPE_INVALID) or are secret
    // (CKR_ATTRIBUTE_SENSITIVE) are simply absent from the answer.
    let attrs = session.get_attributes(h, &wanted).map_err(|e| (Some(Box::new(o.clone())), e))?;
    for a in attrs {
        match a {
            Attribute::Value(v) => o.value = v,
            Attribute::KeyType(k) => o.key_type = Some(k),
            Attribute::Modulus(v) if !v.is_empty() => o.modulus = Some(v),
            Attribute::ModulusBits(b) => o.modulus_bits = Some(u64::from(b)),
            Attribute::PublicExponent(v) if !v.is_empty() => o.exponent = Some(v),
            Attribute::EcParams(v) if !v.is_empty() => o.ec_params = Some(v),
            Attribute::EcPoint(v) if !v.is_empty() => o.ec_point = Some(v),
            Attribute::PublicKeyInfo(v) if !v.is_empty() => o.public_key_info = Some(v),
            Attribute::Private(b) => o.bools.push(("private", b)),
            Attribute::Local(b) => o.bools.push(("local", b)),
            Attribute::Sign(b) => o.bools.push(("sign", b)),
            Attribute::Decrypt(b) => o.bools.push(("decrypt", b)),
            Attribute::Unwrap(b) => o.bools.push(("unwrap", b)),
            Attribute::Derive(b) => o.bools.push(("derive", b)),
            Attribute::Extractable(b) => o.bools.push(("extractable", b)),
            Attribute::Sensitive(b) => o.bools.push(("sensitive", b)),
            Attribute::NeverExtractable(b) => o.bools.push(("never_extractable", b)),
            Attribute::AlwaysSensitive(b) => o.bools.push(("always_sensitive", b)),
            Attribute::AlwaysAuthenticate(b) => o.bools.push(("always_authenticate", b)),
            Attribute::Verify(b) => o.bools.push(("verify", b)),
            Attribute::Encrypt(b) => o.bools.push(("encrypt", b)),
            Attribute::Wrap(b) => o.bools.push(("wrap", b)),
            Attribute::Trusted(b) => o.bools.push(("trusted", b)),
            _ => {}
        }
    }
    if class != Class::Certificate {
        // Read apart: a malformed CK_DATE must not hide the key's other attributes.
        match session.get_attributes(h, &[AttributeType::StartDate, AttributeType::EndDate]) {
            Ok(dates) => {
                for a in dates {
                    match a {
                        Attribute::StartDate(d) => o.start_date = ck_date(&d.year, &d.month, &d.day),
                        Attribute::EndDate(d) => o.end_date = ck_date(&d.year, &d.month, &d.day),
                        _ => {}
                    }
                }
            }
            Err(e) => o.date_error = Some(ck(&e)),
        }
    }
    Ok(o)
}

/// CK_DATE (PKCS#11 v2.40 §3.3: ASCII "YYYY", "MM", "DD") as `YYYY-MM-DD`. An empty date (all
/// zero bytes or blanks: "no date set") is absent.
fn ck_date(year: &[u8], month: &[u8], day: &[u8]) -> Option<String> {
    let all: Vec<u8> = [year, month, day].concat();
    if all.iter().all(|&b| b == 0 || b == b' ') {
        return None;
    }
    if !all.iter().all(u8::is_ascii_digit) {
        return Some(format!("invalid:{}", hex::encode(&all)));
    }
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Some(format!("{}-{}-{}", s(year), s(month), s(day)))
}

/// RFC 3986 percent-encoding of everything but unreserved characters (RFC 7512 §2.3 allows
/// more unencoded, but encoding them is always valid and keeps `;` and `/` apart).
fn pct(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// RFC 7512 URI of an object: `pkcs11:token=…;id=%01%02;object=…;type=cert`. The id is
/// always percent-encoded byte by byte (§2.3: it is binary).
fn uri(token: &str, o: &Obj) -> String {
    let mut s = format!("pkcs11:token={}", pct(token.as_bytes()));
    if !o.id.is_empty() {
        s.push_str(";id=");
        for b in &o.id {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    if let Some(l) = &o.label {
        s.push_str(";object=");
        s.push_str(&pct(l.as_bytes()));
    }
    s.push_str(";type=");
    s.push_str(o.class.uri_type());
    s
}

/// The public part of a key or certificate: the DER SubjectPublicKeyInfo's hash and where it
/// came from.
#[derive(Debug, Clone, PartialEq)]
struct Spki {
    sha256: String,
    from: &'static str,
}

/// The SPKI of each object, by the same index. Keys use their own attributes first, then the
/// public key object, then the certificate, with the same CKA_ID.
fn pair_public_parts(objects: &[Obj]) -> Vec<Option<Spki>> {
    let own: Vec<Option<Spki>> = objects
        .iter()
        .map(|o| match o.class {
            Class::Certificate => crate::x509::cert::parse_der(&o.value).ok().map(|f| Spki { sha256: f.spki_sha256, from: "certificate" }),
            Class::Private | Class::Public => spki_der(o).map(|der| Spki { sha256: hex::encode(sha2::Sha256::digest(&der)), from: "key" }),
        })
        .collect();
    let by_id = |class: Class, id: &[u8]| -> Option<&Spki> {
        objects
            .iter()
            .zip(&own)
            .find(|(o, s)| o.class == class && !id.is_empty() && o.id == id && s.is_some())
            .and_then(|(_, s)| s.as_ref())
    };
    objects
        .iter()
        .zip(&own)
        .map(|(o, s)| {
            if s.is_some() || o.class != Class::Private {
                return s.clone();
            }
            by_id(Class::Public, &o.id)
                .map(|p| Spki { sha256: p.sha256.clone(), from: "public-key-object" })
                .or_else(|| by_id(Class::Certificate, &o.id).map(|c| Spki { sha256: c.sha256.clone(), from: "certificate" }))
        })
        .collect()
}

const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const ED25519: &str = "1.3.101.112";
const ED448: &str = "1.3.101.113";

/// The DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) of a key object, when its public part is
/// readable: CKA_PUBLIC_KEY_INFO (PKCS#11 v3.0 §4.8) as is, else built from CKA_MODULUS and
/// CKA_PUBLIC_EXPONENT (RFC 8017 §A.1.1) or CKA_EC_PARAMS and CKA_EC_POINT (RFC 5480 §2,
/// RFC 8410 §4 for Edwards curves).
fn spki_der(o: &Obj) -> Option<Vec<u8>> {
    if let Some(info) = &o.public_key_info {
        return Some(info.clone());
    }
    let seq = |parts: &[&[u8]]| ber::encode(ber::SEQUENCE, &parts.concat());
    let bit_string = |content: &[u8]| ber::encode(0x03, &[&[0u8][..], content].concat());
    match o.key_type? {
        KeyType::RSA => {
            let rsa_key = seq(&[&der_uint(o.modulus.as_ref()?), &der_uint(o.exponent.as_ref()?)]);
            let alg = seq(&[&ber::encode_oid(RSA_ENCRYPTION), &[0x05, 0x00]]);
            Some(seq(&[&alg, &bit_string(&rsa_key)]))
        }
        KeyType::EC => {
            let params = o.ec_params.as_ref()?;
            let (_, bits, _) = curve(params);
            let point = ec_point(o.ec_point.as_ref()?, bits.map(|b| 1 + 2 * b.div_ceil(8) as usize));
            let alg = seq(&[&ber::encode_oid(EC_PUBLIC_KEY), params]);
            Some(seq(&[&alg, &bit_string(&point)]))
        }
        KeyType::EC_EDWARDS => {
            let (name, _, _) = curve(o.ec_params.as_ref()?);
            let (oid, len) = match name.as_str() {
                "Ed25519" => (ED25519, 32),
                "Ed448" => (ED448, 57),
                _ => return None,
            };
            let point = ec_point(o.ec_point.as_ref()?, Some(len));
            // RFC 8410 §3: the parameters are absent.
            let alg = seq(&[&ber::encode_oid(oid)]);
            Some(seq(&[&alg, &bit_string(&point)]))
        }
        _ => None,
    }
}

/// A DER INTEGER's encoding of an unsigned big-endian number (CKA_MODULUS is unsigned).
fn der_uint(n: &[u8]) -> Vec<u8> {
    let first = n.iter().position(|&b| b != 0).unwrap_or(n.len().saturating_sub(1));
    let digits = &n[first.min(n.len())..];
    let mut content = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_none_or(|&b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(digits);
    ber::encode(ber::INTEGER, &content)
}

/// CKA_EC_POINT is "DER-encoding of ANSI X9.62 ECPoint value Q" (PKCS#11 v2.40 §2.3.3), an
/// OCTET STRING, but some modules return the bare point. `raw_len` is the bare point's length
/// when the curve says it; a value of that length is taken as bare.
fn ec_point(v: &[u8], raw_len: Option<usize>) -> Vec<u8> {
    if raw_len == Some(v.len()) {
        return v.to_vec();
    }
    match ber::single(v) {
        Ok(t) if t.tag == ber::OCTET_STRING && !t.constructed() => t.content.to_vec(),
        _ => v.to_vec(),
    }
}

/// The curve named by CKA_EC_PARAMS: its display name, size in bits and whether it is an
/// Edwards curve. An OID (RFC 5480 §2.1.1.1, RFC 8410 §3) or, for Edwards and Montgomery
/// curves, a PrintableString name (PKCS#11 v3.0 §2.3.10).
fn curve(params: &[u8]) -> (String, Option<u32>, bool) {
    let Ok(t) = ber::single(params) else {
        return ("unparsable parameters".into(), None, false);
    };
    match t.tag {
        ber::OID => {
            let oid = ber::oid_string(&t).unwrap_or_default();
            match oid.as_str() {
                ED25519 => ("Ed25519".into(), Some(256), true),
                ED448 => ("Ed448".into(), Some(456), true),
                "1.3.101.110" => ("X25519".into(), Some(256), false),
                "1.3.101.111" => ("X448".into(), Some(448), false),
                _ => {
                    let k = crate::x509::cert::key_facts(EC_PUBLIC_KEY, Some(&t), &[]);
                    (k.curve.unwrap_or(oid), k.bits, false)
                }
            }
        }
        // PrintableString
        0x13 => match t.content {
            b"edwards25519" => ("Ed25519".into(), Some(256), true),
            b"edwards448" => ("Ed448".into(), Some(456), true),
            b"curve25519" => ("X25519".into(), Some(256), false),
            b"curve448" => ("X448".into(), Some(448), false),
            other => (String::from_utf8_lossy(other).into_owned(), None, false),
        },
        _ => ("explicit parameters".into(), None, false),
    }
}

/// The key object stored for a private or public key.
fn key_object(o: &Obj, spki: Option<&Spki>) -> KeyObject {
    let (algorithm, bits, curve_name) = match o.key_type {
        Some(KeyType::RSA) => (
            "RSA".to_string(),
            o.modulus_bits.and_then(|b| u32::try_from(b).ok()).or_else(|| o.modulus.as_ref().map(|m| modulus_bits(m))),
            None,
        ),
        Some(KeyType::EC) | Some(KeyType::EC_EDWARDS) | Some(KeyType::EC_MONTGOMERY) => match &o.ec_params {
            Some(p) => {
                let (name, bits, _) = curve(p);
                match name.as_str() {
                    "Ed25519" | "Ed448" | "X25519" | "X448" => (name, bits, None),
                    _ => ("EC".to_string(), bits, Some(name)),
                }
            }
            None => ("EC".to_string(), None, None),
        },
        Some(KeyType::DSA) => ("DSA".to_string(), None, None),
        Some(other) => (other.to_string(), None, None),
        None => ("unknown".to_string(), None, None),
    };
    let mut attributes = serde_json::Map::new();
    for (name, v) in &o.bools {
        attributes.insert((*name).to_string(), serde_json::Value::Bool(*v));
    }
    if let Some(d) = &o.start_date {
        attributes.insert("start_date".into(), d.clone().into());
    }
    if let Some(d) = &o.end_date {
        attributes.insert("end_date".into(), d.clone().into());
    }
    if let Some(e) = &o.date_error {
        attributes.insert("date_error".into(), e.clone().into());
    }
    if let Some(s) = spki {
        attributes.insert("spki_from".into(), s.from.into());
    }
    KeyObject {
        label: o.label.clone(),
        key_id: (!o.id.is_empty()).then(|| hex::encode(&o.id)),
        class: match o.class {
            Class::Public => "public",
            _ => "private",
        }
        .to_string(),
        algorithm,
        bits,
        curve: curve_name,
        spki_sha256: spki.map(|s| s.sha256.clone()),
        attributes: serde_json::Value::Object(attributes),
        document: None,
    }
}

fn modulus_bits(m: &[u8]) -> u32 {
    let Some(first) = m.iter().position(|&b| b != 0) else { return 0 };
    (m.len() - first) as u32 * 8 - m[first].leading_zeros()
}

/// Tokens keep no modification time: the stamp is a hash of everything read about the object
/// and what `fetch` will return, so any attribute change reads the object again.
fn stamp(o: &Obj, f: &Fetched) -> String {
    let mut h = sha2::Sha256::new();
    h.update(o.class.uri_type());
    h.update((o.id.len() as u64).to_be_bytes());
    h.update(&o.id);
    h.update(o.label.as_deref().unwrap_or("").as_bytes());
    h.update([0]);
    h.update((f.bytes.len() as u64).to_be_bytes());
    h.update(&f.bytes);
    let json = serde_json::json!({ "meta": f.meta, "key": f.key });
    h.update(json.to_string().as_bytes());
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rv_names_are_the_specification_names() {
        assert_eq!(rv_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(rv_name(RvError::PinLocked), "CKR_PIN_LOCKED");
        assert_eq!(rv_name(RvError::SlotIdInvalid), "CKR_SLOT_ID_INVALID");
        assert_eq!(ck(&CkError::Pkcs11(RvError::PinIncorrect, cryptoki::context::Function::Login)), "C_Login: CKR_PIN_INCORRECT");
    }

    #[test]
    fn uris_follow_rfc_7512() {
        let o = Obj { class: Class::Certificate, id: vec![0x01, 0xab], label: Some("web server;1".into()), ..Obj::default() };
        assert_eq!(uri("my token", &o), "pkcs11:token=my%20token;id=%01%AB;object=web%20server%3B1;type=cert");
        let k = Obj { class: Class::Private, ..Obj::default() };
        assert_eq!(uri("t", &k), "pkcs11:token=t;type=private");
    }

    #[test]
    fn dates_empty_are_absent() {
        assert_eq!(ck_date(&[0; 4], &[0; 2], &[0; 2]), None);
        assert_eq!(ck_date(b"    ", b"  ", b"  "), None);
        assert_eq!(ck_date(b"2026", b"06", b"01"), Some("2026-06-01".into()));
        assert!(ck_date(b"20x6", b"06", b"01").is_some_and(|d| d.starts_with("invalid:")));
    }

    #[test]
    fn curves_from_ec_params() {
        // RFC 5480 §2.1.1.1 named curves, DER OIDs.
        assert_eq!(curve(&hex::decode("06082a8648ce3d030107").unwrap()), ("P-256".into(), Some(256), false));
        assert_eq!(curve(&hex::decode("06052b81040022").unwrap()), ("P-384".into(), Some(384), false));
        assert_eq!(curve(&hex::decode("06052b81040023").unwrap()), ("P-521".into(), Some(521), false));
        assert_eq!(curve(&hex::decode("06032b6570").unwrap()), ("Ed25519".into(), Some(256), true));
        // SoftHSM2 and OpenSC write Edwards parameters as a PrintableString.
        assert_eq!(curve(&hex::decode("130c656477617264733235353139").unwrap()), ("Ed25519".into(), Some(256), true));
    }

    #[test]
    fn der_integers_are_minimal_and_unsigned() {
        assert_eq!(der_uint(&[0x00, 0x01, 0x00, 0x01]), vec![0x02, 0x03, 0x01, 0x00, 0x01]);
        assert_eq!(der_uint(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(der_uint(&[0x00]), vec![0x02, 0x01, 0x00]);
        assert_eq!(modulus_bits(&[0x00, 0x80, 0x00]), 16);
    }

    #[test]
    fn ec_point_wrapped_or_bare() {
        let bare: Vec<u8> = std::iter::once(4).chain(std::iter::repeat_n(7, 64)).collect();
        let wrapped = ber::encode(ber::OCTET_STRING, &bare);
        assert_eq!(ec_point(&wrapped, Some(65)), bare);
        assert_eq!(ec_point(&bare, Some(65)), bare);
        // A bare point whose second byte happens to look like a length stays bare.
        let tricky: Vec<u8> = [4u8, 63].into_iter().chain(std::iter::repeat_n(1, 63)).collect();
        assert_eq!(ec_point(&tricky, Some(65)), tricky);
    }

    /// The SPKI built from PKCS#11 attributes equals the one in a certificate for the same key.
    #[test]
    fn spki_from_attributes_matches_rcgen() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        let point = rcgen::PublicKeyData::der_bytes(&key).to_vec();
        let o = Obj {
            class: Class::Public,
            key_type: Some(KeyType::EC),
            ec_params: Some(hex::decode("06082a8648ce3d030107").unwrap()),
            ec_point: Some(ber::encode(ber::OCTET_STRING, &point)),
            ..Obj::default()
        };
        assert_eq!(spki_der(&o).unwrap(), spki);
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let o = Obj {
            class: Class::Public,
            key_type: Some(KeyType::EC_EDWARDS),
            ec_params: Some(hex::decode("130c656477617264733235353139").unwrap()),
            ec_point: Some(ber::encode(ber::OCTET_STRING, rcgen::PublicKeyData::der_bytes(&ed))),
            ..Obj::default()
        };
        assert_eq!(spki_der(&o).unwrap(), rcgen::PublicKeyData::subject_public_key_info(&ed));
        let k = key_object(&o, None);
        assert_eq!((k.algorithm.as_str(), k.bits, k.curve), ("Ed25519", Some(256), None));
    }

    #[test]
    fn private_keys_take_the_public_part_of_their_pair() {
        let public = Obj {
            class: Class::Public,
            id: vec![3],
            key_type: Some(KeyType::EC),
            ec_params: Some(hex::decode("06082a8648ce3d030107").unwrap()),
            ec_point: Some(ber::encode(ber::OCTET_STRING, &[4; 65])),
            ..Obj::default()
        };
        let private = Obj { class: Class::Private, id: vec![3], key_type: Some(KeyType::EC), ..Obj::default() };
        let lonely = Obj { class: Class::Private, id: vec![9], key_type: Some(KeyType::EC), ..Obj::default() };
        let s = pair_public_parts(&[public, private, lonely]);
        assert_eq!(s[0].as_ref().map(|s| s.from), Some("key"));
        assert_eq!(s[1].as_ref().map(|s| (s.from, &s.sha256)), Some(("public-key-object", &s[0].as_ref().unwrap().sha256)));
        assert_eq!(s[2], None);
    }
}
