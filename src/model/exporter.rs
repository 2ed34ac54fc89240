//! The vocabulary of x509-certificate-exporter v4 applied to certvigil's sources: the
//! `source_kind` of an object or error (`file`, `kube-secret`, `kube-configmap`,
//! `kube-cabundle`, …), the `reason` code of an error, and the `secret_*` / `configmap_*` /
//! `cabundle_*` labels of a Kubernetes location. Pure: the scan writer files errors by these,
//! `/metrics` labels series by them.
//!
//! The names follow the exporter's `docs/metrics.md` (v4, "Source kinds", "Reason codes" and
//! "Common labels"). certvigil has no exact twin of some v4 notions; what is mapped how is
//! said at each function and in the README ("Metrics").

/// What a Kubernetes location names: the resource and the key inside it. Locations are
/// `k8s://<context>/<namespace>/<secrets|configmaps>/<name>#<key>` and, cluster-wide,
/// `k8s://<context>/<validating|mutating>webhookconfigurations/<name>#<webhook>`,
/// `k8s://<context>/apiservices/<name>#caBundle`, `k8s://<context>/customresourcedefinitions/<name>#conversion`
/// (see `sources::kubernetes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeObject<'a> {
    Secret {
        namespace: &'a str,
        name: &'a str,
        key: &'a str,
    },
    ConfigMap {
        namespace: &'a str,
        name: &'a str,
        key: &'a str,
    },
    /// `kind` is the Kubernetes Kind as v4 names it; `entry` the webhook's name for webhook
    /// configurations and empty for single-caBundle resources (v4's `cabundle_entry`).
    CaBundle {
        kind: &'static str,
        name: &'a str,
        entry: &'a str,
    },
}

impl<'a> KubeObject<'a> {
    /// The object a location names, or `None` for a location that is not one (a listing prefix
    /// such as `k8s://prod/web/secrets/`, a file path).
    pub fn parse(location: &'a str) -> Option<KubeObject<'a>> {
        let rest = location.strip_prefix("k8s://")?;
        let (_context, path) = rest.split_once('/')?;
        let (path, key) = path.split_once('#')?;
        let mut parts = path.split('/');
        let (a, b, c, extra) = (parts.next()?, parts.next()?, parts.next(), parts.next());
        if extra.is_some() || a.is_empty() || b.is_empty() {
            return None;
        }
        let kind = match (a, c) {
            ("validatingwebhookconfigurations", None) => "ValidatingWebhookConfiguration",
            ("mutatingwebhookconfigurations", None) => "MutatingWebhookConfiguration",
            ("apiservices", None) => "APIService",
            ("customresourcedefinitions", None) => "CustomResourceDefinition",
            (namespace, Some(name)) if !name.is_empty() => {
                return match b {
                    "secrets" => Some(KubeObject::Secret { namespace, name, key }),
                    "configmaps" => Some(KubeObject::ConfigMap { namespace, name, key }),
                    _ => None,
                };
            }
            _ => return None,
        };
        // APIServices and CRDs hold one caBundle: v4 leaves `cabundle_entry` empty for them.
        let entry = if kind.ends_with("WebhookConfiguration") { key } else { "" };
        Some(KubeObject::CaBundle { kind, name: b, entry })
    }

    /// The v4 `source_kind` of the object.
    pub fn source_kind(&self) -> &'static str {
        match self {
            KubeObject::Secret { .. } => "kube-secret",
            KubeObject::ConfigMap { .. } => "kube-configmap",
            KubeObject::CaBundle { .. } => "kube-cabundle",
        }
    }

    /// The v4 per-certificate labels of the object, in v4's order.
    pub fn labels(&self) -> [(&'static str, &'a str); 3] {
        match *self {
            KubeObject::Secret { namespace, name, key } => [("secret_namespace", namespace), ("secret_name", name), ("secret_key", key)],
            KubeObject::ConfigMap { namespace, name, key } => {
                [("configmap_namespace", namespace), ("configmap_name", name), ("configmap_key", key)]
            }
            KubeObject::CaBundle { kind, name, entry } => {
                [("cabundle_resource_kind", kind), ("cabundle_resource_name", name), ("cabundle_entry", entry)]
            }
        }
    }
}

/// The v4 `source_kind` of an object or error of a certvigil source of kind `kind` at
/// `location`. Files are v4's `file`; a Kubernetes object is `kube-secret`, `kube-configmap`
/// or `kube-cabundle` by what it is; a Kubernetes location that names no object (the whole
/// API server, a namespace that could not be listed) is `kubernetes`, the kind v4 gives
/// transport-level errors. Kinds v4 does not have (`tls`, `vault`, `aws`, `pkcs11`) keep
/// certvigil's name.
pub fn source_kind(kind: &str, location: &str) -> &'static str {
    match kind {
        "files" => "file",
        "kubernetes" => match KubeObject::parse(location) {
            Some(o) => o.source_kind(),
            None => match location.strip_prefix("k8s://").and_then(|r| r.split_once('/')).map(|(_, p)| p) {
                Some(p) if p.contains("/secrets/") || p.starts_with("secrets/") => "kube-secret",
                Some(p) if p.contains("/configmaps/") || p.starts_with("configmaps/") => "kube-configmap",
                Some(p)
                    if p.contains("webhookconfigurations/")
                        || p.starts_with("apiservices/")
                        || p.starts_with("customresourcedefinitions/") =>
                {
                    "kube-cabundle"
                }
                _ => "kubernetes",
            },
        },
        "tls" => "tls",
        "vault" => "vault",
        "aws" => "aws",
        "pkcs11" => "pkcs11",
        _ => "other",
    }
}

/// The v4 `reason` code of an error a scan met, from its message. v4's codes where one fits
/// (`bad_pem`, `no_certificate_found`, `bad_pkcs12`, `bad_passphrase`, `read_failed`,
/// `permission_denied`, `not_found`, `walk_error`, and for Kubernetes `http_401`, `http_403`,
/// `rate_limited`, `http_5xx`); certvigil's own beyond them: `source_unreachable` (a source or
/// part of one that could not be listed for another reason), `config_error` (the source's
/// configuration, e.g. a password reference that does not resolve), `bad_der` (a malformed
/// DER certificate) and `bad_keystore` (JKS).
/// `location` tells source-level errors (`(configuration)`, a listing prefix) from an object's.
pub fn error_reason(kind: &str, location: &str, message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    if location == "(configuration)" {
        return "config_error";
    }
    // Kubernetes API answers (the listing's errors name the HTTP status).
    for (needle, reason) in [("(401", "http_401"), ("401 unauthorized", "http_401"), ("(403)", "http_403"), ("403 forbidden", "http_403")] {
        if m.contains(needle) {
            return reason;
        }
    }
    if m.contains("429") && (m.contains("too many requests") || kind == "kubernetes") {
        return "rate_limited";
    }
    if kind == "kubernetes"
        && let Some(code) = http_5xx(&m)
    {
        return code;
    }
    if m.contains("permission denied") {
        return "permission_denied";
    }
    if m.contains("no such file") || m.contains("not found (os error") {
        return if m.contains("symlink") || m.contains("symbolic link") { "broken_symlink" } else { "not_found" };
    }
    if m.contains("wrong password") || m.contains("password(s) tried") || m.contains("passphrase") {
        return "bad_passphrase";
    }
    if m.contains("not a certificate file") || m.contains("holds no certificate") || m.contains("no certificate") {
        return "no_certificate_found";
    }
    if m.contains("pkcs#12") || m.contains("pkcs12") {
        return "bad_pkcs12";
    }
    if m.contains("keystore") {
        return "bad_keystore";
    }
    // A PEM block's errors carry the block (`block 2: …`).
    if m.starts_with("block ") || m.contains("pem") {
        return "bad_pem";
    }
    if m.starts_with("cannot list") {
        return if kind == "files" { "walk_error" } else { "source_unreachable" };
    }
    if m.contains("not a valid x.509") || m.contains("malformed asn.1") {
        return "bad_der";
    }
    "read_failed"
}

/// A big-endian unsigned integer (a serial number, a cRLNumber) in decimal, as v4 labels
/// them; leading zero octets are ignored and the empty string is 0.
pub fn decimal(be: &[u8]) -> String {
    // Repeated division by 10 of a big-endian byte string.
    let mut num: Vec<u8> = be.iter().copied().skip_while(|b| *b == 0).collect();
    if num.is_empty() {
        return "0".into();
    }
    let mut digits = Vec::new();
    while !num.is_empty() {
        let mut rem = 0u32;
        let mut next = Vec::with_capacity(num.len());
        for b in &num {
            let cur = (rem << 8) | u32::from(*b);
            let q = (cur / 10) as u8;
            rem = cur % 10;
            if !(next.is_empty() && q == 0) {
                next.push(q);
            }
        }
        digits.push(b'0' + rem as u8);
        num = next;
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

/// `http_5NN` of a message naming a 5xx status, as v4 names them (`http_500`, `http_503`, …).
fn http_5xx(m: &str) -> Option<&'static str> {
    const CODES: [&str; 6] = ["http_500", "http_501", "http_502", "http_503", "http_504", "http_505"];
    let b = m.as_bytes();
    for i in 0..b.len().saturating_sub(2) {
        let before_ok = i == 0 || !b[i - 1].is_ascii_digit();
        let after_ok = b.get(i + 3).is_none_or(|c| !c.is_ascii_digit());
        if b[i] == b'5' && b[i + 1] == b'0' && (b'0'..=b'5').contains(&b[i + 2]) && before_ok && after_ok {
            return CODES.get(usize::from(b[i + 2] - b'0')).copied();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_locations_name_their_objects() {
        let s = KubeObject::parse("k8s://prod/web/secrets/site-tls#tls.crt").unwrap();
        assert_eq!(s, KubeObject::Secret { namespace: "web", name: "site-tls", key: "tls.crt" });
        assert_eq!(s.source_kind(), "kube-secret");
        assert_eq!(s.labels(), [("secret_namespace", "web"), ("secret_name", "site-tls"), ("secret_key", "tls.crt")]);
        let c = KubeObject::parse("k8s://prod/kube-system/configmaps/kube-root-ca.crt#ca.crt").unwrap();
        assert_eq!(c.labels()[1], ("configmap_name", "kube-root-ca.crt"));
        let w = KubeObject::parse("k8s://prod/validatingwebhookconfigurations/policy#check.example.com").unwrap();
        assert_eq!(
            w.labels(),
            [
                ("cabundle_resource_kind", "ValidatingWebhookConfiguration"),
                ("cabundle_resource_name", "policy"),
                ("cabundle_entry", "check.example.com")
            ]
        );
        let a = KubeObject::parse("k8s://prod/apiservices/v1beta1.metrics.k8s.io#caBundle").unwrap();
        assert_eq!(a, KubeObject::CaBundle { kind: "APIService", name: "v1beta1.metrics.k8s.io", entry: "" });
        for not in
            ["/etc/ssl/a.pem", "k8s://prod/web/secrets/", "k8s://prod/web/pods/x#k", "k8s://prod/web/secrets/x", "k8s://prod/", "k8s://"]
        {
            assert_eq!(KubeObject::parse(not), None, "{not}");
        }
    }

    #[test]
    fn source_kinds() {
        assert_eq!(source_kind("files", "/etc/ssl/a.pem"), "file");
        assert_eq!(source_kind("kubernetes", "k8s://prod/web/configmaps/x#ca.crt"), "kube-configmap");
        assert_eq!(source_kind("kubernetes", "k8s://prod/web/secrets/"), "kube-secret");
        assert_eq!(source_kind("kubernetes", "k8s://prod/"), "kubernetes");
        assert_eq!(source_kind("tls", "tls://127.0.0.1:443"), "tls");
    }

    #[test]
    fn reasons() {
        let r = |k, l, m| error_reason(k, l, m);
        assert_eq!(r("files", "/x", "Permission denied (os error 13)"), "permission_denied");
        assert_eq!(r("files", "/x", "No such file or directory (os error 2)"), "not_found");
        assert_eq!(r("files", "/x", "not a certificate file: no PEM block and not DER, PKCS#7, PKCS#12 or JKS"), "no_certificate_found");
        assert_eq!(r("files", "/x", "block 1: not a valid X.509 certificate: malformed ASN.1 at byte 0: tag"), "bad_pem");
        assert_eq!(r("files", "/x", "not a valid X.509 certificate: malformed ASN.1 at byte 0: tag"), "bad_der");
        assert_eq!(r("files", "/x", "block 2: malformed PEM: base64"), "bad_pem");
        assert_eq!(r("files", "/x", "wrong password: MAC verification failed with each of the 2 password(s) tried"), "bad_passphrase");
        assert_eq!(r("files", "/x", "malformed PKCS#12: truncated"), "bad_pkcs12");
        assert_eq!(r("files", "/x", "PKCS#7 bundle holds no certificates"), "no_certificate_found");
        assert_eq!(r("files", "/srv", "cannot list: Permission denied (os error 13)"), "permission_denied");
        assert_eq!(r("files", "/srv", "cannot list: loop in directory tree"), "walk_error");
        assert_eq!(r("kubernetes", "k8s://p/", "cannot list: the API server refused the credentials (401 Unauthorized): no"), "http_401");
        assert_eq!(r("kubernetes", "k8s://p/ns/secrets/", "cannot list: forbidden to list secrets in ns (403): no"), "http_403");
        assert_eq!(r("kubernetes", "k8s://p/", "cannot list: HTTP status 503 Service Unavailable"), "http_503");
        assert_eq!(r("kubernetes", "k8s://p/", "cannot list: connection refused"), "source_unreachable");
        assert_eq!(r("vault", "(configuration)", "secret ${env:X}: not set"), "config_error");
        assert_eq!(r("tls", "tls://127.0.0.1:1", "cannot connect: 127.0.0.1:1: refused"), "read_failed");
        assert_eq!(http_5xx("port 15030"), None);
    }
}
