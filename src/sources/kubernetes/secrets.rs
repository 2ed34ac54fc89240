//! Secrets: pages read into one buffer and parsed without their values (key names only),
//! sized by the bytes per Secret seen so far; which keys of a Secret are listed; and the
//! passwords a keystore's Secret carries beside it.

use super::{Connected, Kind, KubernetesSource, Page, Password, Role, next_token, push_keys};
use crate::config::sources::kubernetes::key_matches;
use kube::api::ListParams;

const TLS_TYPE: &str = "kubernetes.io/tls";
const TLS_KEYS: [&str; 2] = ["tls.crt", "ca.crt"];

impl KubernetesSource {
    /// One page body of a Secrets list read as listing reads it (names, types, resource versions
    /// and key names; values skipped): the listed objects and the next token. No request is made,
    /// so the page parser can be tested and fuzzed without a cluster.
    pub fn read_secret_page(&self, context: &str, body: &[u8]) -> Result<Page, serde_json::Error> {
        Ok(self.secret_keys(context, parse_secret_page(body)?))
    }

    /// The listed objects of a page of Secrets (values dropped with the page), and the next token.
    pub(super) fn secret_keys(&self, context: &str, page: SecretKeysList) -> (Vec<(String, String)>, Option<String>) {
        let mut objects = Vec::new();
        for s in &page.items {
            let keys = s.data.as_ref().map(|d| d.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
            let tls = s.type_.as_deref() == Some(TLS_TYPE);
            let wanted = keys.into_iter().filter(|k| {
                if tls {
                    TLS_KEYS.contains(&k.as_str())
                } else {
                    self.wanted(&self.spec.secret_keys, k) || self.role(k) != Role::Certificates
                }
            });
            // A Secret cert-manager manages is read again when its Certificate changes.
            let extra = match (s.metadata.namespace.as_deref(), s.metadata.name.as_deref()) {
                (Some(ns), Some(name)) => self.certificate_of(ns, name).map(|c| format!("+cm{}", c.resource_version)),
                _ => None,
            };
            push_keys(&mut objects, context, Kind::Secrets, &s.metadata, extra.as_deref().unwrap_or(""), wanted);
        }
        (objects, next_token(&page.metadata))
    }

    /// The values of the Secret's password keys, in the configured order, each also without a
    /// trailing newline (`kubectl create secret --from-file` keeps the file's).
    pub(super) fn sibling_passwords(&self, data: &std::collections::BTreeMap<String, k8s_openapi::ByteString>) -> Vec<Password> {
        let mut out: Vec<String> = Vec::new();
        for pattern in &self.spec.password_keys {
            for v in data.iter().filter(|(k, _)| key_matches(pattern, k)).map(|(_, v)| v) {
                let Ok(text) = std::str::from_utf8(&v.0) else { continue };
                for candidate in [text, text.trim_end_matches(['\r', '\n'])] {
                    if !out.iter().any(|o| o == candidate) {
                        out.push(candidate.to_string());
                    }
                }
            }
        }
        out.into_iter().map(Password::new).collect()
    }
}

/// About this many bytes of Secrets per list page.
const SECRET_PAGE_BYTES: usize = 4 << 20;
/// Secrets in the first page, before their size is known (4 MiB at the 1 MiB a Secret can hold
/// is 4; most are far smaller, and the next page grows).
const FIRST_SECRET_PAGE: u32 = 50;

/// The `limit` of the next page of Secrets, from the bytes per Secret seen so far.
#[derive(Debug)]
pub(super) struct PageSizer {
    max: u32,
    pub(super) limit: u32,
    bytes: usize,
    items: usize,
}

impl PageSizer {
    pub(super) fn new(max: u32) -> Self {
        PageSizer { max, limit: max.clamp(1, FIRST_SECRET_PAGE), bytes: 0, items: 0 }
    }

    pub(super) fn observe(&mut self, bytes: usize, items: usize) {
        self.bytes = self.bytes.saturating_add(bytes);
        self.items = self.items.saturating_add(items);
        if self.items == 0 {
            return;
        }
        // The largest of the mean so far and this page's mean: a run of large Secrets shrinks
        // the pages at once; small ones grow them at most twofold per page, so that a switch
        // from small to large Secrets costs one page of at most twice the budget's count.
        let mean = (self.bytes / self.items).max(bytes / items.max(1)).max(1);
        let fit = u32::try_from(SECRET_PAGE_BYTES / mean).unwrap_or(u32::MAX);
        self.limit = fit.min(self.limit.saturating_mul(2)).clamp(1, self.max.max(1));
    }
}

/// A page of Secrets as certvigil reads it: names, types, resource versions and key names;
/// the values are skipped by the parser, never held.
#[derive(serde::Deserialize)]
pub(super) struct SecretKeysList {
    #[serde(default)]
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta,
    #[serde(default)]
    pub(super) items: Vec<SecretKeys>,
}

#[derive(serde::Deserialize)]
pub(super) struct SecretKeys {
    #[serde(default)]
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    #[serde(rename = "type", default)]
    type_: Option<String>,
    #[serde(default)]
    data: Option<std::collections::BTreeMap<String, serde::de::IgnoredAny>>,
}

/// One page of Secrets, and the size of its body. The body is read into one buffer (kube's
/// `Api::list` would hold it twice, then the decoded values).
pub(super) async fn secret_page(conn: &Connected, ns: Option<&str>, lp: &ListParams) -> Result<(SecretKeysList, usize), kube::Error> {
    use http_body_util::BodyExt;
    use hyper::body::Body as _;
    let path = match ns {
        Some(ns) => format!("/api/v1/namespaces/{ns}/secrets"),
        None => "/api/v1/secrets".to_string(),
    };
    let mut req = kube::core::Request::new(path).list(lp).map_err(kube::Error::BuildRequest)?;
    req.extensions_mut().insert("list");
    let res = conn.client.send(req.map(kube::client::Body::from)).await?;
    let code = res.status();
    let mut body = res.into_body();
    let mut buf: Vec<u8> = Vec::with_capacity(usize::try_from(body.size_hint().lower()).unwrap_or(0).min(64 << 20));
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            buf.extend_from_slice(&data);
        }
    }
    if code.is_client_error() || code.is_server_error() {
        let status = serde_json::from_slice::<kube::core::Status>(&buf).unwrap_or_else(|_| {
            kube::core::Status::failure(String::from_utf8_lossy(&buf).trim(), "Failed to parse error data").with_code(code.as_u16())
        });
        return Err(kube::Error::Api(status.boxed()));
    }
    let page = parse_secret_page(&buf).map_err(kube::Error::SerdeError)?;
    Ok((page, buf.len()))
}

fn parse_secret_page(body: &[u8]) -> Result<SecretKeysList, serde_json::Error> {
    serde_json::from_slice(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_pages_follow_the_bytes_per_secret() {
        let mut p = PageSizer::new(500);
        assert_eq!(p.limit, FIRST_SECRET_PAGE);
        // Small TLS Secrets: pages grow twofold up to the configured page size.
        p.observe(50 * 4_000, 50);
        assert_eq!(p.limit, 100);
        for _ in 0..3 {
            p.observe(p.limit as usize * 4_000, p.limit as usize);
        }
        assert_eq!(p.limit, 500);
        // Then Helm releases of 80 KiB: about 4 MiB per page.
        p.observe(500 * 80 * 1024, 500);
        assert_eq!(p.limit, 51);
        assert!(p.limit as usize * 80 * 1024 <= SECRET_PAGE_BYTES);
        // Secrets of 1 MiB: one or a few at a time, never zero.
        p.observe(51 << 20, 51);
        assert_eq!(p.limit, 4);
        p.observe(40 << 20, 1);
        assert_eq!(p.limit, 1);
        assert_eq!(PageSizer::new(10).limit, 10);
        let mut empty = PageSizer::new(500);
        empty.observe(100, 0);
        assert_eq!(empty.limit, FIRST_SECRET_PAGE);
    }
}
