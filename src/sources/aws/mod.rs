//! `kind: aws`: certificates in AWS Certificate Manager and in Secrets Manager.
//!
//! ACM (API reference, "ListCertificates", "DescribeCertificate", "GetCertificate"): every
//! certificate that has one (statuses ISSUED, INACTIVE, EXPIRED, REVOKED) and every key type
//! (ListCertificates returns only RSA_2048 ones unless `Includes.keyTypes` says otherwise).
//! Location `aws:acm:<region>:<certificate ARN>`; the stamp joins the ARN with the summary's
//! import/issue dates, validity and status, which change when a certificate is re-imported or
//! renewed, so an unchanged certificate is not read again.
//!
//! Secrets Manager ("ListSecrets", "GetSecretValue"): secrets under an optional name prefix and
//! tags; location `aws:secretsmanager:<region>:<secret ARN>`; the stamp is the AWSCURRENT
//! version id (and the owner tags, see below). A secret holding no certificate (a password, an API key) is recorded without
//! certificates and without an error. Private keys found next to certificates are never passed
//! on: only certificate PEM blocks leave this module.
//!
//! Owners: the `certvigil.io/owner` tag (else `owner`), with `certvigil.io/owner-contact` (else
//! `owner_contact`), go into the object's meta. A secret's tags come with ListSecrets, so they
//! are part of its stamp and a new owner is read without a new version. An ACM certificate's
//! tags are read with the certificate ("ListTagsForCertificate", beside DescribeCertificate and
//! GetCertificate): a tag changed on an unchanged certificate is seen when the certificate is
//! next read (renewed, re-imported, or its status changed). Tags that cannot be read (no
//! `acm:ListTagsForCertificate` permission) leave the certificate without an owner, with a
//! warning, not unread.
//!
//! The transport (SigV4, retries, limits) is in `aws/client.rs`, credentials in
//! `aws/credentials.rs`. The scan driver calls `list` and `fetch` from plain threads: the source
//! blocks on the runtime it was built on, or on a small one of its own (`sources/runtime.rs`).

pub mod client;
pub mod credentials;
pub mod http;
pub mod sigv4;

use super::runtime::{self, Exec};
use super::{Fetched, Listing, Source, SourceError};
use crate::config::secret::Secret;
use crate::config::sources::aws::{AwsSpec, SecretsFilter};
use client::{ApiError, Client, ClientError, Service};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Page sizes: the maxima of ListCertificates (1000) and ListSecrets (100) are allowed; 100
/// keeps each response small.
const ACM_PAGE: u32 = 100;
const SECRETS_PAGE: u32 = 100;
/// A page loop that never ends (a server repeating a token) is cut off.
const MAX_PAGES: usize = 10_000;

/// ACM key algorithms (the `KeyAlgorithm` enum of the ACM API).
const ACM_KEY_TYPES: [&str; 7] = ["RSA_1024", "RSA_2048", "RSA_3072", "RSA_4096", "EC_prime256v1", "EC_secp384r1", "EC_secp521r1"];
/// Statuses in which a certificate exists (PENDING_VALIDATION, FAILED and VALIDATION_TIMED_OUT
/// have none to read).
const ACM_STATUSES: [&str; 4] = ["ISSUED", "INACTIVE", "EXPIRED", "REVOKED"];
/// Summary fields that change when a certificate is re-imported, renewed or changes state.
const ACM_STAMP_FIELDS: [&str; 6] = ["ImportedAt", "IssuedAt", "NotAfter", "NotBefore", "RevokedAt", "Status"];

/// Why the account could not be read, or an object not served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsError {
    #[error("cannot start the AWS runtime: {reason}")]
    Runtime { reason: String },
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("GetCertificate returned no Certificate")]
    NoCertificate { arn: String },
    #[error("GetSecretValue: SecretBinary is not base64: {source}")]
    SecretBinary {
        arn: String,
        #[source]
        source: base64ct::Error,
    },
    #[error("not a location of this source (region {region})")]
    NotOurs { location: String, region: String },
}

pub struct AwsSource {
    spec: AwsSpec,
    /// The runtime of the thread that built the source, taken then: the state is made on first
    /// use, on a scan thread that has none.
    caller: Option<tokio::runtime::Handle>,
    state: OnceLock<Result<(Exec, Client), AwsError>>,
    /// The owner tags of each listed secret, by location, for `fetch`.
    owners: Mutex<HashMap<String, TagOwner>>,
}

impl AwsSource {
    pub fn new(spec: AwsSpec) -> Self {
        AwsSource { spec, caller: runtime::caller(), state: OnceLock::new(), owners: Mutex::new(HashMap::new()) }
    }

    fn state(&self) -> Result<&(Exec, Client), AwsError> {
        self.state
            .get_or_init(|| {
                let rt = Exec::with(self.caller.clone(), "certvigil-aws").map_err(|e| AwsError::Runtime { reason: e.to_string() })?;
                let s = &self.spec;
                let client = Client::new(&s.region, s.endpoint.as_deref(), s.profile.as_deref(), s.timeout, s.concurrency)?;
                Ok((rt, client))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn acm_prefix(&self) -> String {
        format!("aws:acm:{}:", self.spec.region)
    }

    fn secrets_prefix(&self) -> String {
        format!("aws:secretsmanager:{}:", self.spec.region)
    }
}

/// Calls a paginated operation until it has no next token. `token_in`/`token_out` name the
/// request and response fields (`NextToken` for both services).
pub async fn paginate<F, Fut>(mut page: F, mut each: impl FnMut(Value)) -> Result<(), ApiError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Value, ApiError>>,
{
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let resp = page(token.take()).await?;
        each(resp.clone());
        match resp.get("NextToken").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            Some(t) => token = Some(t.to_string()),
            None => return Ok(()),
        }
    }
    Err(ApiError { operation: "pagination".into(), status: None, code: String::new(), message: format!("more than {MAX_PAGES} pages") })
}

/// The owner an object's tags name: `certvigil.io/owner` (else `owner`) and its contact
/// `certvigil.io/owner-contact` (else `owner_contact`). Blank values count as absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagOwner {
    pub name: String,
    pub contact: Option<String>,
}

impl TagOwner {
    /// From a `Tags` list (`[{"Key": …, "Value": …}]`, as ListSecrets and
    /// ListTagsForCertificate return it).
    pub fn of(tags: Option<&Value>) -> Option<TagOwner> {
        let tags = tags?.as_array()?;
        let get = |keys: &[&str]| {
            keys.iter().find_map(|k| {
                tags.iter()
                    .find(|t| t.get("Key").and_then(Value::as_str) == Some(*k))
                    .and_then(|t| t.get("Value").and_then(Value::as_str))
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
            })
        };
        let name = get(&["certvigil.io/owner", "owner"])?;
        Some(TagOwner { name, contact: get(&["certvigil.io/owner-contact", "owner_contact"]) })
    }

    /// What the owner adds to a secret's stamp.
    fn stamp(&self) -> String {
        format!(";owner={};contact={}", self.name, self.contact.as_deref().unwrap_or(""))
    }

    /// Writes `owner`, `owner_contact` and `owner_from` into an object's meta.
    fn record(&self, meta: &mut Value) {
        meta["owner"] = json!(self.name);
        meta["owner_from"] = json!("tag");
        if let Some(c) = &self.contact {
            meta["owner_contact"] = json!(c);
        }
    }
}

/// The change stamp of an ACM certificate summary; `None` when it carries none of the dates
/// (then DescribeCertificate supplies them).
pub fn acm_stamp(arn: &str, fields: &Value) -> Option<String> {
    let parts: Vec<String> =
        ACM_STAMP_FIELDS.iter().filter_map(|f| fields.get(*f).filter(|v| !v.is_null()).map(|v| format!("{f}={v}"))).collect();
    let dated = parts.iter().any(|p| !p.starts_with("Status="));
    dated.then(|| format!("{arn}|{}", parts.join("|")))
}

/// The AWSCURRENT version id of a ListSecrets entry.
pub fn current_version(entry: &Value) -> Option<String> {
    entry
        .get("SecretVersionsToStages")?
        .as_object()?
        .iter()
        .find_map(|(version, stages)| stages.as_array()?.iter().any(|s| s.as_str() == Some("AWSCURRENT")).then(|| version.clone()))
}

/// Whether a ListSecrets entry passes the configured filter. The service-side filters
/// (`name`, `tag-key`, `tag-value`) narrow the listing; this applies the exact semantics: the
/// name prefix is case-sensitive and a tag must have the key *and* the value together.
pub fn secret_matches(entry: &Value, filter: &SecretsFilter) -> bool {
    let name = entry.get("Name").and_then(Value::as_str).unwrap_or("");
    if filter.name_prefix.as_deref().is_some_and(|p| !name.starts_with(p)) {
        return false;
    }
    let tags: Vec<(&str, &str)> = entry
        .get("Tags")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|t| Some((t.get("Key")?.as_str()?, t.get("Value").and_then(Value::as_str).unwrap_or("")))).collect())
        .unwrap_or_default();
    filter.tags.iter().all(|(k, v)| tags.iter().any(|(tk, tv)| tk == k && (v.is_empty() || tv == v)))
}

pub fn secrets_filters(filter: &SecretsFilter) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(p) = &filter.name_prefix {
        out.push(json!({"Key": "name", "Values": [p]}));
    }
    for (k, v) in &filter.tags {
        out.push(json!({"Key": "tag-key", "Values": [k]}));
        if !v.is_empty() {
            out.push(json!({"Key": "tag-value", "Values": [v]}));
        }
    }
    out
}

/// The certificate PEM blocks in a text (other blocks, private keys above all, are dropped).
/// A PEM pasted with literal `\n` sequences (a JSON string escaped twice) is unescaped first.
pub fn certificate_pem_blocks(text: &str) -> Vec<String> {
    if !text.contains('\n') && text.contains("\\n") {
        return crate::x509::pem::certificate_blocks(&text.replace("\\r\\n", "\n").replace("\\n", "\n"));
    }
    crate::x509::pem::certificate_blocks(text)
}

fn collect_json_pem(v: &Value, depth: usize, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.extend(certificate_pem_blocks(s)),
        Value::Object(m) if depth < 4 => m.values().for_each(|x| collect_json_pem(x, depth + 1, out)),
        Value::Array(a) if depth < 4 => a.iter().for_each(|x| collect_json_pem(x, depth + 1, out)),
        _ => {}
    }
}

/// The certificate bytes a secret value holds, if any: PEM in the string, PEM in any string
/// field of a JSON string, or DER/PKCS#12/PKCS#7 (or PEM text) in the binary.
pub fn secret_certificates(string: Option<&str>, binary: Option<&[u8]>) -> Option<Vec<u8>> {
    let from_text = |s: &str| {
        let mut blocks = certificate_pem_blocks(s);
        if blocks.is_empty()
            && s.trim_start().starts_with(['{', '['])
            && let Ok(v) = serde_json::from_str::<Value>(s)
        {
            collect_json_pem(&v, 0, &mut blocks);
        }
        (!blocks.is_empty()).then(|| (blocks.join("\n") + "\n").into_bytes())
    };
    if let Some(s) = string {
        return from_text(s);
    }
    let b = binary?;
    if let Ok(s) = std::str::from_utf8(b)
        && s.contains("-----BEGIN ")
    {
        return from_text(s);
    }
    // A DER SEQUENCE: a certificate, a PKCS#7 bundle or a PKCS#12 store.
    (b.first() == Some(&0x30) && b.len() > 16).then(|| b.to_vec())
}

impl AwsSource {
    async fn list_acm(&self, client: &Client, out: &mut dyn FnMut(Listing)) {
        let prefix = self.acm_prefix();
        let mut summaries: Vec<Value> = Vec::new();
        let listed = paginate(
            |token| {
                let mut body = json!({"MaxItems": ACM_PAGE, "CertificateStatuses": ACM_STATUSES, "Includes": {"keyTypes": ACM_KEY_TYPES}});
                if let Some(t) = token {
                    body["NextToken"] = Value::String(t);
                }
                async move { client.call(Service::Acm, "ListCertificates", &body).await }
            },
            |page| summaries.extend(page.get("CertificateSummaryList").and_then(Value::as_array).cloned().unwrap_or_default()),
        )
        .await;
        if let Err(e) = listed {
            out(Listing::Unavailable { prefix, message: format!("ACM {}: {e}", self.spec.region) });
            return;
        }
        for s in summaries {
            let Some(arn) = s.get("CertificateArn").and_then(Value::as_str) else { continue };
            let location = format!("{prefix}{arn}");
            let stamp = match acm_stamp(arn, &s) {
                Some(st) => st,
                None => match client.call(Service::Acm, "DescribeCertificate", &json!({"CertificateArn": arn})).await {
                    Ok(d) => acm_stamp(arn, d.get("Certificate").unwrap_or(&Value::Null)).unwrap_or_else(|| arn.to_string()),
                    Err(e) => {
                        out(Listing::Error { location, message: e.to_string() });
                        continue;
                    }
                },
            };
            out(Listing::Object { location, stamp });
        }
    }

    async fn list_secrets(&self, client: &Client, filter: &SecretsFilter, out: &mut dyn FnMut(Listing)) {
        let prefix = self.secrets_prefix();
        let filters = secrets_filters(filter);
        let mut entries: Vec<Value> = Vec::new();
        let listed = paginate(
            |token| {
                let mut body = json!({"MaxResults": SECRETS_PAGE, "IncludePlannedDeletion": false});
                if !filters.is_empty() {
                    body["Filters"] = Value::Array(filters.clone());
                }
                if let Some(t) = token {
                    body["NextToken"] = Value::String(t);
                }
                async move { client.call(Service::SecretsManager, "ListSecrets", &body).await }
            },
            |page| entries.extend(page.get("SecretList").and_then(Value::as_array).cloned().unwrap_or_default()),
        )
        .await;
        if let Err(e) = listed {
            out(Listing::Unavailable { prefix, message: format!("Secrets Manager {}: {e}", self.spec.region) });
            return;
        }
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        owners.retain(|location, _| !location.starts_with(&prefix));
        for entry in entries.iter().filter(|e| secret_matches(e, filter)) {
            let Some(arn) = entry.get("ARN").and_then(Value::as_str) else { continue };
            // A secret without a current version has no value to read.
            let mut stamp = match current_version(entry) {
                Some(v) => v,
                None => match entry.get("LastChangedDate").filter(|d| !d.is_null()) {
                    Some(d) => format!("changed={d}"),
                    None => continue,
                },
            };
            let location = format!("{prefix}{arn}");
            if let Some(owner) = TagOwner::of(entry.get("Tags")) {
                stamp.push_str(&owner.stamp());
                owners.insert(location.clone(), owner);
            }
            out(Listing::Object { location, stamp });
        }
    }

    async fn fetch_acm(&self, client: &Client, arn: &str) -> Result<Fetched, AwsError> {
        let id = json!({"CertificateArn": arn});
        let (described, got, tags) = tokio::join!(
            client.call(Service::Acm, "DescribeCertificate", &id),
            client.call(Service::Acm, "GetCertificate", &id),
            client.call(Service::Acm, "ListTagsForCertificate", &id)
        );
        let described = described?;
        let got = got?;
        let owner = match tags {
            Ok(t) => TagOwner::of(t.get("Tags")),
            Err(e) => {
                tracing::warn!(source = %self.spec.name, arn, error = %e, "cannot read the certificate's tags: no owner from them");
                None
            }
        };
        let d = described.get("Certificate").cloned().unwrap_or(Value::Null);
        let cert = got.get("Certificate").and_then(Value::as_str).ok_or_else(|| AwsError::NoCertificate { arn: arn.to_string() })?;
        let mut pem = cert.trim_end().to_string();
        pem.push('\n');
        if let Some(chain) = got.get("CertificateChain").and_then(Value::as_str) {
            pem.push_str(chain.trim_end());
            pem.push('\n');
        }
        let mut meta = json!({
            "arn": arn,
            "status": d.get("Status"),
            "type": d.get("Type"),
            "in_use_by": d.get("InUseBy").cloned().unwrap_or(json!([])),
            "renewal_eligibility": d.get("RenewalEligibility"),
        });
        if let Some(o) = owner {
            o.record(&mut meta);
        }
        Ok(Fetched { bytes: pem.into_bytes(), meta: Some(meta), key: None, passwords: Vec::new() })
    }

    async fn fetch_secret(&self, client: &Client, arn: &str) -> Result<Fetched, AwsError> {
        let v = client.call(Service::SecretsManager, "GetSecretValue", &json!({"SecretId": arn})).await?;
        let binary = match v.get("SecretBinary").and_then(Value::as_str) {
            Some(b64) => {
                Some(base64ct::Base64::decode_vec(b64.trim()).map_err(|source| AwsError::SecretBinary { arn: arn.to_string(), source })?)
            }
            None => None,
        };
        let string = v.get("SecretString").and_then(Value::as_str);
        let mut meta = json!({
            "name": v.get("Name"),
            "arn": v.get("ARN").and_then(Value::as_str).unwrap_or(arn),
            "version_id": v.get("VersionId"),
        });
        let location = format!("{}{arn}", self.secrets_prefix());
        if let Some(o) = self.owners.lock().unwrap_or_else(|p| p.into_inner()).get(&location) {
            o.record(&mut meta);
        }
        // No certificate: nothing to inventory, and not an error (most secrets are passwords).
        let bytes = secret_certificates(string, binary.as_deref()).unwrap_or_default();
        Ok(Fetched { bytes, meta: Some(meta), key: None, passwords: Vec::new() })
    }
}

use base64ct::Encoding as _;

impl Source for AwsSource {
    fn name(&self) -> &str {
        &self.spec.name
    }
    fn kind(&self) -> &'static str {
        "aws"
    }
    fn tags(&self) -> &[String] {
        &self.spec.tags
    }
    fn list(&self, out: &mut dyn FnMut(Listing)) {
        let (rt, client) = match self.state() {
            Ok(s) => s,
            Err(e) => {
                out(Listing::Unavailable { prefix: String::new(), message: e.to_string() });
                return;
            }
        };
        rt.block_on(async {
            if self.spec.acm {
                self.list_acm(client, out).await;
            }
            if let Some(filter) = &self.spec.secrets_manager {
                self.list_secrets(client, filter, out).await;
            }
        });
    }
    fn fetch(&self, location: &str) -> Result<Fetched, SourceError> {
        let (rt, client) = self.state()?;
        let fetched = if let Some(arn) = location.strip_prefix(&self.acm_prefix()) {
            rt.block_on(self.fetch_acm(client, arn))
        } else if let Some(arn) = location.strip_prefix(&self.secrets_prefix()) {
            rt.block_on(self.fetch_secret(client, arn))
        } else {
            Err(AwsError::NotOurs { location: location.to_string(), region: self.spec.region.clone() })
        };
        Ok(fetched?)
    }
    fn passwords(&self) -> Result<Vec<Secret>, SourceError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acm_stamps_change_with_reimport_and_status() {
        let s = json!({"CertificateArn": "arn:a", "ImportedAt": 1700000000.5, "NotAfter": 1800000000, "Status": "ISSUED"});
        let st = acm_stamp("arn:a", &s).unwrap();
        assert_eq!(st, "arn:a|ImportedAt=1700000000.5|NotAfter=1800000000|Status=\"ISSUED\"");
        let reimported = json!({"ImportedAt": 1700000100.0, "NotAfter": 1800000000, "Status": "ISSUED"});
        assert_ne!(acm_stamp("arn:a", &reimported).unwrap(), st);
        // Only a status: not enough to tell a re-import apart.
        assert_eq!(acm_stamp("arn:a", &json!({"Status": "ISSUED"})), None);
    }

    #[test]
    fn owners_in_tags() {
        let tags = json!([{"Key": "owner", "Value": "web"}, {"Key": "certvigil.io/owner", "Value": "payments"},
            {"Key": "owner_contact", "Value": "pay@corp.example"}]);
        let o = TagOwner::of(Some(&tags)).unwrap();
        assert_eq!((o.name.as_str(), o.contact.as_deref()), ("payments", Some("pay@corp.example")));
        assert_eq!(o.stamp(), ";owner=payments;contact=pay@corp.example");
        assert_eq!(TagOwner::of(Some(&json!([{"Key": "owner", "Value": "web"}]))).map(|o| o.name), Some("web".into()));
        assert_eq!(TagOwner::of(Some(&json!([{"Key": "owner", "Value": " "}, {"Key": "team", "Value": "x"}]))), None);
        assert_eq!(TagOwner::of(None), None);
        let mut meta = json!({"arn": "a"});
        o.record(&mut meta);
        assert_eq!(meta, json!({"arn": "a", "owner": "payments", "owner_from": "tag", "owner_contact": "pay@corp.example"}));
    }

    #[test]
    fn current_version_is_the_awscurrent_stage() {
        let e = json!({"SecretVersionsToStages": {"v1": ["AWSPREVIOUS"], "v2": ["AWSCURRENT", "custom"]}});
        assert_eq!(current_version(&e).as_deref(), Some("v2"));
        assert_eq!(current_version(&json!({})), None);
    }

    #[test]
    fn secret_filters_need_key_and_value_together() {
        let f = SecretsFilter { name_prefix: Some("certs/".into()), tags: vec![("team".into(), "web".into())] };
        let e = |name: &str, tags: Value| json!({"Name": name, "Tags": tags});
        assert!(secret_matches(&e("certs/a", json!([{"Key": "team", "Value": "web"}])), &f));
        assert!(!secret_matches(&e("Certs/a", json!([{"Key": "team", "Value": "web"}])), &f));
        assert!(!secret_matches(&e("certs/a", json!([{"Key": "team", "Value": "db"}, {"Key": "x", "Value": "web"}])), &f));
        let any = SecretsFilter { name_prefix: None, tags: vec![("team".into(), String::new())] };
        assert!(secret_matches(&e("x", json!([{"Key": "team", "Value": "db"}])), &any));
        assert_eq!(secrets_filters(&f).len(), 3);
        assert_eq!(secrets_filters(&any).len(), 1);
    }

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----";

    #[test]
    fn certificates_in_secret_values() {
        // Plain PEM with a key: the key is dropped.
        let b = secret_certificates(Some(&format!("{KEY}\n{PEM}\n")), None).unwrap();
        assert_eq!(String::from_utf8(b).unwrap(), format!("{PEM}\n"));
        // JSON with PEM fields, nested, and one escaped twice.
        let json = json!({"certificate": PEM, "key": KEY, "chain": {"ca": PEM.replace('\n', "\\n")}, "n": 1}).to_string();
        let b = String::from_utf8(secret_certificates(Some(&json), None).unwrap()).unwrap();
        assert_eq!(b.matches("BEGIN CERTIFICATE").count(), 2, "{b}");
        assert!(!b.contains("PRIVATE"));
        // Not certificates.
        assert_eq!(secret_certificates(Some("hunter2"), None), None);
        assert_eq!(secret_certificates(Some(r#"{"password": "x"}"#), None), None);
        assert_eq!(secret_certificates(Some(KEY), None), None);
        // Binary: DER is passed through, PEM text is read as text, junk is ignored.
        let der = [0x30u8, 0x82, 0x01, 0x00].iter().copied().chain(std::iter::repeat_n(0, 20)).collect::<Vec<_>>();
        assert_eq!(secret_certificates(None, Some(&der)), Some(der.clone()));
        assert!(secret_certificates(None, Some(PEM.as_bytes())).is_some());
        assert_eq!(secret_certificates(None, Some(b"\x01\x02 not der")), None);
    }

    #[test]
    fn pagination_follows_tokens_to_the_end() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut seen_tokens = Vec::new();
        let mut items = Vec::new();
        let result = rt.block_on(paginate(
            |token: Option<String>| {
                seen_tokens.push(token.clone());
                let next = match token.as_deref() {
                    None => json!({"Items": [1, 2], "NextToken": "p2"}),
                    Some("p2") => json!({"Items": [3, 4], "NextToken": "p3"}),
                    _ => json!({"Items": [5]}),
                };
                async move { Ok(next) }
            },
            |page| items.extend(page["Items"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap())),
        ));
        assert!(result.is_ok());
        assert_eq!(items, [1, 2, 3, 4, 5]);
        assert_eq!(seen_tokens, [None, Some("p2".into()), Some("p3".into())]);
    }
}
