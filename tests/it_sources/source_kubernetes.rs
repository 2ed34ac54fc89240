//! `kind: kubernetes` against the fixture API server of `tests/kube` (the real wire forms of
//! lists, pagination, 401/403/410), through the real `certvigil` binary.

use crate::common;
use crate::kube;

use common::{NOW, RUN_LIMIT, Run, Sandbox, run_with_timeout, sha256_hex};
use kube::{ApiServer, TOKEN};
use serde_json::Value;

struct Cert {
    pem: String,
    key: String,
    fingerprint: String,
}

fn cert(cn: &str) -> Cert {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("test fixture");
    let mut params = rcgen::CertificateParams::new(vec![cn.to_string()]).expect("test fixture");
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let c = params.self_signed(&key).expect("test fixture");
    Cert { pem: c.pem(), key: key.serialize_pem(), fingerprint: sha256_hex(c.der()) }
}

/// A CA certificate (basicConstraints cA=true).
fn ca_cert(cn: &str) -> Cert {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("test fixture");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("test fixture");
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let c = params.self_signed(&key).expect("test fixture");
    Cert { pem: c.pem(), key: key.serialize_pem(), fingerprint: sha256_hex(c.der()) }
}

fn sandbox(api: &ApiServer, token: &str, extra: &str) -> Sandbox {
    let sb = Sandbox::new();
    sb.write("kubeconfig.yaml", api.kubeconfig(token));
    sb.config(&format!("sources:\n  - name: k8s\n    kind: kubernetes\n    kubeconfig: kubeconfig.yaml\n    tags: [cluster]\n{extra}"));
    sb
}

fn run(sb: &Sandbox, args: &[&str]) -> Run {
    let mut cmd = sb.command_at(NOW);
    cmd.env_remove("KUBECONFIG").env("HOME", sb.dir.path()).args(args);
    run_with_timeout(cmd, RUN_LIMIT)
}

fn scan(sb: &Sandbox) -> (Run, Value) {
    let r = run(sb, &["scan", "-o", "json"]);
    let v = r.json();
    (r, v)
}

fn fingerprints(sb: &Sandbox) -> Vec<String> {
    let v = run(sb, &["list", "-o", "json"]).expect_code(0).json();
    let list = v.as_array().cloned().or_else(|| v["certificates"].as_array().cloned()).unwrap_or_else(|| panic!("list output: {v}"));
    list.iter().map(|c| c["fingerprint"].as_str().expect("fingerprint").to_string()).collect()
}

fn sightings(sb: &Sandbox, fingerprint: &str) -> Vec<Value> {
    let v = run(sb, &["show", fingerprint, "-o", "json"]).expect_code(0).json();
    v["sightings"].as_array().cloned().unwrap_or_else(|| panic!("show output: {v}"))
}

#[test]
fn tls_and_opaque_secrets_and_configmaps_are_inventoried_with_meta_and_unchanged_objects_are_not_read_again() {
    let api = ApiServer::start();
    let (leaf, ca, bundled, other_ns, trust, rotated) =
        (cert("site"), cert("ca"), cert("bundled"), cert("db"), cert("trust"), cert("rotated"));
    let hook_ca = cert("webhook-ca");
    api.with(|s| {
        s.put_secret(
            "web",
            "site-tls",
            "kubernetes.io/tls",
            &[("tls.crt", leaf.pem.as_bytes()), ("tls.key", leaf.key.as_bytes()), ("ca.crt", ca.pem.as_bytes())],
        );
        s.put_secret(
            "web",
            "bundle",
            "Opaque",
            &[("server.pem", bundled.pem.as_bytes()), ("password", b"hunter2"), ("config.yaml", b"a: 1")],
        );
        s.put_secret("web", "garbage", "Opaque", &[("broken.crt", b"this is not a certificate")]);
        s.put_secret("db", "db-tls", "kubernetes.io/tls", &[("tls.crt", other_ns.pem.as_bytes()), ("tls.key", other_ns.key.as_bytes())]);
        s.put_configmap("web", "trust", &[("ca.crt", &trust.pem), ("settings", "x")]);
        s.put_webhooks(false, "policy", &[("check.example.com", Some(hook_ca.pem.as_bytes())), ("nobundle.example.com", None)]);
        s.put_webhooks(true, "inject", &[("inject.example.com", Some(hook_ca.pem.as_bytes()))]);
    });
    let sb = sandbox(&api, TOKEN, "");
    let (r, v) = scan(&sb);
    let src = &v["sources"][0];
    // site-tls: tls.crt, ca.crt; bundle: server.pem; garbage: broken.crt; db-tls: tls.crt;
    // trust: ca.crt; the two webhooks with a caBundle.
    assert_eq!(src["objects"], 8, "{v:#}\n{}", r.stderr);
    // The key that holds no certificate is an error of that object only.
    let errors = v["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{v:#}");
    assert_eq!(errors[0]["location"], "k8s://fixture/web/secrets/garbage#broken.crt", "{v:#}");

    let fps = fingerprints(&sb);
    for c in [&leaf, &ca, &bundled, &other_ns, &trust, &hook_ca] {
        assert!(fps.contains(&c.fingerprint), "{fps:?}");
    }
    assert_eq!(fps.len(), 6, "{fps:?}");
    let mut hooks: Vec<String> =
        sightings(&sb, &hook_ca.fingerprint).iter().map(|s| s["location"].as_str().expect("location").to_string()).collect();
    hooks.sort();
    assert_eq!(
        hooks,
        [
            "k8s://fixture/mutatingwebhookconfigurations/inject#inject.example.com",
            "k8s://fixture/validatingwebhookconfigurations/policy#check.example.com"
        ]
    );
    let s = sightings(&sb, &leaf.fingerprint);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0]["location"], "k8s://fixture/web/secrets/site-tls#tls.crt");
    let meta = &s[0]["meta"];
    assert_eq!(
        (meta["namespace"].as_str(), meta["kind"].as_str(), meta["name"].as_str()),
        (Some("web"), Some("Secret"), Some("site-tls")),
        "{meta}"
    );
    assert_eq!(meta["key"], "tls.crt", "{meta}");
    assert!(meta["resourceVersion"].as_str().is_some_and(|v| !v.is_empty()), "{meta}");
    let s = sightings(&sb, &trust.fingerprint);
    assert_eq!(s[0]["location"], "k8s://fixture/web/configmaps/trust#ca.crt");
    assert_eq!(s[0]["meta"]["kind"], "ConfigMap");

    // Unchanged resource versions: nothing is read again (no GET of an object) but the key that
    // failed, which the scan retries.
    api.with(|s| s.requests.clear());
    let (_, again) = scan(&sb);
    assert_eq!(again["run"]["objects_read"], 1, "{again:#}");
    assert_eq!(again["sources"][0]["objects"], 8, "{again:#}");
    let gets: Vec<String> = api.with(|s| {
        s.requests
            .iter()
            .filter(|r| r.contains("/secrets/") || r.contains("/configmaps/") || r.contains("configurations/"))
            .cloned()
            .collect()
    });
    assert_eq!(gets, ["GET /api/v1/namespaces/web/secrets/garbage"]);

    // A changed Secret is read again, and only it (besides the failing key).
    api.with(|s| s.put_secret("web", "bundle", "Opaque", &[("server.pem", rotated.pem.as_bytes())]));
    let (_, third) = scan(&sb);
    assert_eq!(third["run"]["objects_read"], 2, "{third:#}");
    assert!(fingerprints(&sb).contains(&rotated.fingerprint));
}

fn bulk(api: &ApiServer, n: usize) -> Vec<Cert> {
    let certs: Vec<Cert> = (0..n).map(|i| cert(&format!("s{i}"))).collect();
    api.with(|s| {
        for (i, c) in certs.iter().enumerate() {
            let ns = ["alpha", "beta", "gamma"][i % 3];
            s.put_secret(ns, &format!("tls-{i:03}"), "kubernetes.io/tls", &[("tls.crt", c.pem.as_bytes())]);
        }
    });
    certs
}

fn secret_lists(api: &ApiServer) -> Vec<String> {
    api.with(|s| s.requests.iter().filter(|r| r.starts_with("GET /api/v1/secrets")).cloned().collect())
}

#[test]
fn many_pages_are_all_listed_and_an_expired_continue_token_restarts_the_list_once() {
    let api = ApiServer::start();
    let certs = bulk(&api, 120);
    let sb = sandbox(&api, TOKEN, "    page_size: 25\n    configmap_keys: []\n");
    let (r, v) = scan(&sb);
    assert_eq!(v["sources"][0]["objects"], 120, "{v:#}\n{}", r.stderr);
    assert_eq!(v["run"]["errors"], 0, "{v:#}");
    let lists = secret_lists(&api);
    assert_eq!(lists.len(), 5, "120 secrets in pages of 25: {lists:?}");
    assert!(lists.iter().all(|l| l.contains("limit=25")), "{lists:?}");
    let fps = fingerprints(&sb);
    assert_eq!(fps.len(), 120);
    assert!(certs.iter().all(|c| fps.contains(&c.fingerprint)));

    // The continue token of the third page has expired: the list starts again, every object
    // is listed exactly once, and nothing is taken for gone.
    let api2 = ApiServer::start();
    let certs = bulk(&api2, 120);
    api2.with(|s| s.expire_continues = 1);
    let sb = sandbox(&api2, TOKEN, "    page_size: 25\n    configmap_keys: []\n");
    let (r, v) = scan(&sb);
    assert_eq!(v["run"]["errors"], 0, "{v:#}\n{}", r.stderr);
    assert_eq!(v["sources"][0]["objects"], 120, "{v:#}");
    assert_eq!(v["run"]["objects_read"], 120, "{v:#}");
    let lists = secret_lists(&api2);
    assert_eq!(lists.iter().filter(|l| !l.contains("continue=")).count(), 2, "one restart: {lists:?}");
    let fps = fingerprints(&sb);
    assert_eq!(fps.len(), 120);
    assert!(certs.iter().all(|c| fps.contains(&c.fingerprint)));
}

#[test]
fn a_forbidden_namespace_is_reported_and_the_others_are_inventoried() {
    let api = ApiServer::start();
    let (a, b, hidden) = (cert("a"), cert("b"), cert("hidden"));
    api.with(|s| {
        s.put_secret("team-a", "t", "kubernetes.io/tls", &[("tls.crt", a.pem.as_bytes())]);
        s.put_secret("team-b", "t", "kubernetes.io/tls", &[("tls.crt", b.pem.as_bytes())]);
        s.put_secret("locked", "t", "kubernetes.io/tls", &[("tls.crt", hidden.pem.as_bytes())]);
        s.forbidden.insert("locked".into());
    });
    let sb = sandbox(&api, TOKEN, "    namespaces: [team-a, locked, team-b]\n");
    let (r, v) = scan(&sb);
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    let errors = v["errors"].as_array().expect("errors");
    let locations: Vec<&str> = errors.iter().filter_map(|e| e["location"].as_str()).collect();
    let workloads = ["deployments", "statefulsets", "daemonsets", "jobs", "cronjobs", "pods"];
    let want: Vec<String> = ["secrets", "configmaps"].iter().chain(&workloads).map(|k| format!("k8s://fixture/locked/{k}/")).collect();
    assert_eq!(locations, want, "{v:#}");
    let m = errors[0]["message"].as_str().expect("message");
    assert!(m.contains("forbidden to list secrets in namespace locked (403)"), "{m}");
    assert_eq!(v["sources"][0]["objects"], 2, "{v:#}");
    let fps = fingerprints(&sb);
    assert!(fps.contains(&a.fingerprint) && fps.contains(&b.fingerprint) && !fps.contains(&hidden.fingerprint), "{fps:?}");
}

#[test]
fn a_namespace_selector_chooses_the_namespaces() {
    let api = ApiServer::start();
    let (a, b) = (cert("a"), cert("b"));
    api.with(|s| {
        s.put_secret("team-a", "t", "kubernetes.io/tls", &[("tls.crt", a.pem.as_bytes())]);
        s.put_secret("team-b", "t", "kubernetes.io/tls", &[("tls.crt", b.pem.as_bytes())]);
        s.namespaces.get_mut("team-a").expect("namespace").insert("certs".into(), "yes".into());
    });
    let sb = sandbox(&api, TOKEN, "    namespace_selector: certs=yes\n");
    let (r, v) = scan(&sb);
    assert_eq!(v["run"]["errors"], 0, "{v:#}\n{}", r.stderr);
    assert_eq!(fingerprints(&sb), vec![a.fingerprint]);
}

#[test]
fn a_wrong_token_is_a_clear_error_of_the_source() {
    let api = ApiServer::start();
    let c = cert("a");
    api.with(|s| s.put_secret("web", "t", "kubernetes.io/tls", &[("tls.crt", c.pem.as_bytes())]));
    let sb = sandbox(&api, "not-the-token", "");
    let (r, v) = scan(&sb);
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    let errors = v["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{v:#}");
    assert_eq!(errors[0]["location"], "k8s://fixture/");
    let m = errors[0]["message"].as_str().expect("message");
    assert!(m.contains("refused the credentials (401 Unauthorized)"), "{m}");
}

#[test]
fn a_missing_kubeconfig_is_a_clear_error_and_no_kubeconfig_outside_a_pod_too() {
    let sb = Sandbox::new();
    sb.config("sources:\n  - name: k8s\n    kind: kubernetes\n    kubeconfig: missing.yaml\n");
    let (r, v) = scan(&sb);
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    let m = v["errors"][0]["message"].as_str().expect("message");
    assert!(m.contains("cannot read the kubeconfig") && m.contains("missing.yaml"), "{m}");

    // No kubeconfig anywhere (HOME is the sandbox) and not in a pod.
    let sb = Sandbox::new();
    sb.config("sources:\n  - name: k8s\n    kind: kubernetes\n");
    let mut cmd = sb.command_at(NOW);
    cmd.env_remove("KUBECONFIG").env_remove("KUBERNETES_SERVICE_HOST").env("HOME", sb.dir.path()).args(["scan", "-o", "json"]);
    let r = run_with_timeout(cmd, RUN_LIMIT);
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    let m = v["errors"][0]["message"].as_str().expect("message");
    assert!(m.contains("no kubeconfig") && m.contains("not running in a pod"), "{m}");
}

// ---------------------------------------------------------------------------------------------
// APIServices, CRD conversion webhooks, cert-manager, trust material, keystores, RBAC fallback,
// image audit.

fn locations_of(sb: &Sandbox, fingerprint: &str) -> Vec<String> {
    let mut l: Vec<String> = sightings(sb, fingerprint).iter().map(|s| s["location"].as_str().expect("location").to_string()).collect();
    l.sort();
    l
}

fn requests(api: &ApiServer, prefix: &str) -> Vec<String> {
    api.with(|s| s.requests.iter().filter(|r| r.starts_with(prefix)).cloned().collect())
}

#[test]
fn api_service_and_crd_conversion_ca_bundles_are_read_over_many_pages() {
    let api = ApiServer::start();
    let (agg_ca, conv_ca) = (cert("aggregator-ca"), cert("conversion-ca"));
    api.with(|s| {
        for i in 0..60 {
            // Local APIServices (served by the kube-apiserver itself) have no caBundle.
            let bundle = (i % 2 == 0).then_some(agg_ca.pem.as_bytes());
            s.put_apiservice(&format!("v1.group{i:02}.example.com"), bundle);
        }
        for i in 0..70 {
            let bundle = (i % 7 != 0).then_some(conv_ca.pem.as_bytes());
            s.put_crd(&format!("widgets{i:02}.example.com"), bundle);
        }
    });
    let sb = sandbox(&api, TOKEN, "    page_size: 25\n    webhooks: false\n");
    let (r, v) = scan(&sb);
    assert_eq!(v["run"]["errors"], 0, "{v:#}\n{}", r.stderr);
    // 30 APIServices with a bundle, 60 CRDs with a conversion webhook bundle.
    assert_eq!(v["sources"][0]["objects"], 90, "{v:#}");
    let apis = requests(&api, "GET /apis/apiregistration.k8s.io/v1/apiservices?");
    assert_eq!(apis.len(), 3, "60 in pages of 25: {apis:?}");
    let crds = requests(&api, "GET /apis/apiextensions.k8s.io/v1/customresourcedefinitions?");
    assert_eq!(crds.len(), 3, "70 in pages of 25: {crds:?}");
    assert!(requests(&api, "GET /apis/admissionregistration").is_empty(), "webhooks: false");
    let l = locations_of(&sb, &agg_ca.fingerprint);
    assert_eq!(l.len(), 30, "{l:?}");
    assert_eq!(l[0], "k8s://fixture/apiservices/v1.group00.example.com#caBundle");
    let l = locations_of(&sb, &conv_ca.fingerprint);
    assert_eq!(l.len(), 60, "{l:?}");
    assert_eq!(l[0], "k8s://fixture/customresourcedefinitions/widgets01.example.com#conversion");
    let s = &sightings(&sb, &conv_ca.fingerprint)[0];
    assert_eq!((s["meta"]["kind"].as_str(), s["meta"]["name"].as_str()), (Some("CustomResourceDefinition"), Some("widgets01.example.com")));

    // Switched off: neither is listed (the rest of the cluster still is).
    let sb = sandbox(&api, TOKEN, "    api_services: false\n    crd_conversion: false\n");
    api.with(|s| s.requests.clear());
    let (_, v) = scan(&sb);
    assert_eq!(v["sources"][0]["objects"], 0, "{v:#}");
    assert!(requests(&api, "GET /apis/apiregistration").is_empty() && requests(&api, "GET /apis/apiextensions").is_empty());
}

fn plan(sb: &Sandbox) -> Value {
    run(sb, &["plan", "-o", "json"]).expect_code(0).json()
}

fn findings_of_kind(plan: &Value, kind: &str) -> Vec<Value> {
    plan["findings"].as_array().unwrap_or_else(|| panic!("plan: {plan:#}")).iter().filter(|f| f["kind"] == kind).cloned().collect()
}

#[test]
fn cert_manager_certificates_are_recorded_with_their_secret_and_one_not_ready_is_a_finding() {
    let api = ApiServer::start();
    let (site, shop, ca) = (cert("site.example.com"), cert("shop.example.com"), ca_cert("issuer-ca"));
    api.with(|s| {
        s.put_secret(
            "web",
            "site-tls",
            "kubernetes.io/tls",
            &[("tls.crt", site.pem.as_bytes()), ("tls.key", site.key.as_bytes()), ("ca.crt", ca.pem.as_bytes())],
        );
        s.put_secret("shop", "shop-tls", "kubernetes.io/tls", &[("tls.crt", shop.pem.as_bytes())]);
        s.put_certificate("web", "site", "site-tls", &["site.example.com"], Some(("False", "Failed", "ACME order failed: 403")));
        s.put_certificate("shop", "shop", "shop-tls", &["shop.example.com", "www.shop.example.com"], Some(("True", "Ready", "up to date")));
        // More Certificates than a page, in namespaces with no Secret for them (never issued).
        for i in 0..12 {
            s.put_certificate("pending", &format!("c{i:02}"), &format!("c{i:02}-tls"), &["p.example.com"], None);
        }
    });
    let sb = sandbox(&api, TOKEN, "    page_size: 5\n");
    let (r, v) = scan(&sb);
    assert_eq!(v["run"]["errors"], 0, "{v:#}\n{}", r.stderr);
    let lists = requests(&api, "GET /apis/cert-manager.io/v1/certificates?");
    assert_eq!(lists.len(), 3, "14 Certificates in pages of 5: {lists:?}");

    let s = &sightings(&sb, &site.fingerprint)[0];
    let cm = &s["meta"]["certManager"];
    assert_eq!(cm["certificate"], "site", "{s:#}");
    assert_eq!((cm["secretName"].as_str(), cm["ready"].as_str(), cm["reason"].as_str()), (Some("site-tls"), Some("False"), Some("Failed")));
    assert_eq!(cm["dnsNames"], serde_json::json!(["site.example.com"]));
    assert_eq!((cm["renewalTime"].as_str(), cm["notAfter"].as_str()), (Some("2029-12-02T00:00:00Z"), Some("2030-01-01T00:00:00Z")));
    let cm = &sightings(&sb, &shop.fingerprint)[0]["meta"]["certManager"];
    assert_eq!((cm["ready"].as_str(), cm["dnsNames"].as_array().map(Vec::len)), (Some("True"), Some(2)));

    let p = plan(&sb);
    let not_ready = findings_of_kind(&p, "cert-manager-not-ready");
    assert_eq!(not_ready.len(), 1, "only the leaf of the failing Certificate, not its ca.crt: {not_ready:#?}");
    assert_eq!(not_ready[0]["fingerprint"], site.fingerprint);
    assert_eq!(not_ready[0]["severity"], "warning");
    let reason = not_ready[0]["reason"].as_str().expect("reason");
    assert!(reason.contains("web/site") && reason.contains("ACME order failed: 403"), "{reason}");

    // The Certificate recovers; its Secret did not change, but its stamp includes the
    // Certificate's resource version: it is read again and the finding goes away.
    api.with(|s| s.put_certificate("web", "site", "site-tls", &["site.example.com"], Some(("True", "Ready", "ok"))));
    let (_, v) = scan(&sb);
    assert_eq!(v["run"]["objects_read"], 2, "site-tls's two keys: {v:#}");
    assert!(findings_of_kind(&plan(&sb), "cert-manager-not-ready").is_empty());
    assert_eq!(sightings(&sb, &site.fingerprint)[0]["meta"]["certManager"]["ready"], "True");
}

#[test]
fn without_cert_manager_installed_nothing_is_reported() {
    let api = ApiServer::start();
    let c = cert("a");
    api.with(|s| s.put_secret("web", "t", "kubernetes.io/tls", &[("tls.crt", c.pem.as_bytes())]));
    assert!(api.with(|s| s.certificates.is_none()));
    let sb = sandbox(&api, TOKEN, "    namespaces: [web, other]\n");
    let (r, v) = scan(&sb);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(v["run"]["errors"], 0, "{v:#}");
    // Asked once (404), not again for the next namespace.
    let asked = requests(&api, "GET /apis/cert-manager.io/");
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(sightings(&sb, &c.fingerprint)[0]["meta"].get("certManager").is_none());
}

/// A Sigstore TUF root (the shape of root-signing's `root.json`) expiring at `expires`.
fn tuf_root(expires: &str) -> String {
    format!(
        r#"{{
 "signed": {{
  "_type": "root",
  "spec_version": "1.0",
  "version": 10,
  "expires": "{expires}",
  "keys": {{
   "6f260089d5923daf20166ca657c543af618346ab971884a99962b01988bbe0c3": {{
    "keytype": "ecdsa", "scheme": "ecdsa-sha2-nistp256", "keyid_hash_algorithms": ["sha256", "sha512"],
    "keyval": {{"public": "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n"}}
   }}
  }},
  "roles": {{
   "root": {{"keyids": ["6f260089d5923daf20166ca657c543af618346ab971884a99962b01988bbe0c3"], "threshold": 3}},
   "snapshot": {{"keyids": ["aa61e09f6af7662ac686cf0c6364079f63d3e7a86836684eeced93eace3acd81"], "threshold": 1}},
   "targets": {{"keyids": ["6f260089d5923daf20166ca657c543af618346ab971884a99962b01988bbe0c3"], "threshold": 3}},
   "timestamp": {{"keyids": ["61643838125b440b40db6942f5cb5a31c0dc04368316eb2aaa58b95904a58222"], "threshold": 1}}
  }},
  "consistent_snapshot": true
 }},
 "signatures": [{{"keyid": "6f260089d5923daf20166ca657c543af618346ab971884a99962b01988bbe0c3", "sig": "3045022100"}}]
}}"#
    )
}

#[test]
fn cosign_public_keys_and_tuf_roots_are_recorded_as_keys_and_the_root_expiry_is_checked() {
    let api = ApiServer::start();
    let signer = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("test fixture");
    let spki = sha256_hex(&rcgen::PublicKeyData::subject_public_key_info(&signer));
    let expires = jiff::Timestamp::from_second(NOW + 10 * 86_400).expect("time").to_string();
    assert_eq!(expires, "2026-06-11T00:00:00Z");
    let root = tuf_root(&expires);
    api.with(|s| {
        s.put_secret("sigstore", "cosign", "Opaque", &[("cosign.pub", signer.public_key_pem().as_bytes()), ("cosign.key", b"encrypted")]);
        s.put_configmap("sigstore", "trust", &[("root.json", &root), ("notes", "x")]);
        s.put_configmap("sigstore", "broken", &[("root.json", "{\"signed\": {\"_type\": \"root\"}}")]);
    });
    let sb = sandbox(&api, TOKEN, "");
    let (_, v) = scan(&sb);
    let errors = v["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{v:#}");
    assert_eq!(errors[0]["location"], "k8s://fixture/sigstore/configmaps/broken#root.json");
    assert!(errors[0]["message"].as_str().is_some_and(|m| m.contains("expires")), "{v:#}");

    let keys = run(&sb, &["keys", "-o", "json"]).expect_code(0).json();
    let keys = keys["keys"].as_array().unwrap_or_else(|| panic!("{keys:#}"));
    assert_eq!(keys.len(), 2, "{keys:#?}");
    let public = keys.iter().find(|k| k["class"] == "public").expect("public key");
    assert_eq!(public["location"], "k8s://fixture/sigstore/secrets/cosign#cosign.pub");
    assert_eq!((public["algorithm"].as_str(), public["bits"].as_u64(), public["curve"].as_str()), (Some("EC"), Some(256), Some("P-256")));
    assert_eq!(public["spki_sha256"], spki);
    let trust = keys.iter().find(|k| k["class"] == "trust-root").expect("trust root");
    assert_eq!(trust["location"], "k8s://fixture/sigstore/configmaps/trust#root.json");
    assert_eq!(trust["attributes"]["not_after"], NOW + 10 * 86_400);
    assert_eq!(trust["attributes"]["version"], 10);
    let problems: Vec<(&str, &str)> = trust["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| (p["kind"].as_str().unwrap_or(""), p["severity"].as_str().unwrap_or("")))
        .collect();
    // Its one signature is a stub: not a threshold of its root keys.
    assert_eq!(problems, [("trust-root-expiring", "warning"), ("trust-root-unverified", "critical")]);
    let p = plan(&sb);
    let kp = p["key_problems"].as_array().expect("key_problems");
    assert!(kp.iter().any(|k| k["problem"]["kind"] == "trust-root-expiring"), "{p:#}");

    // Past `expires`: expired, critical.
    let mut cmd = sb.command_at(NOW + 11 * 86_400);
    cmd.env_remove("KUBECONFIG").env("HOME", sb.dir.path()).args(["keys", "-o", "json"]);
    let later = run_with_timeout(cmd, RUN_LIMIT).expect_code(0).json();
    let kinds: Vec<String> = later["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .flat_map(|k| k["problems"].as_array().cloned().unwrap_or_default())
        .map(|p| format!("{}/{}", p["kind"].as_str().unwrap_or(""), p["severity"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(kinds, ["trust-root-expired/critical", "trust-root-unverified/critical"]);
}

#[test]
fn pkcs12_and_jks_keystores_open_with_the_password_beside_them_which_is_never_logged() {
    let api = ApiServer::start();
    let (p12_cert, jks_cert, conf_cert) = (cert("p12-leaf"), cert("jks-ca"), cert("conf-leaf"));
    let work = Sandbox::new();
    let key = work.write("leaf.key", &p12_cert.key);
    let crt = work.write("leaf.crt", &p12_cert.pem);
    let p12 = work.path("leaf.p12");
    let ok = std::process::Command::new("openssl")
        .args(["pkcs12", "-export", "-inkey"])
        .arg(&key)
        .arg("-in")
        .arg(&crt)
        .arg("-out")
        .arg(&p12)
        .args(["-passout", "pass:Pkcs12-Pass-7781"])
        .status()
        .expect("openssl");
    assert!(ok.success());
    let ca = work.write("ca.crt", &jks_cert.pem);
    let jks = work.path("trust.jks");
    let out = std::process::Command::new("keytool")
        .args(["-importcert", "-noprompt", "-alias", "ca", "-storetype", "JKS", "-storepass", "Jks-Pass-5150", "-file"])
        .arg(&ca)
        .arg("-keystore")
        .arg(&jks)
        .output()
        .expect("keytool");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A keystore whose password is only in the source's configuration.
    let (ck, cc) = (work.write("c.key", &conf_cert.key), work.write("c.crt", &conf_cert.pem));
    let conf_p12 = work.path("c.p12");
    let ok = std::process::Command::new("openssl")
        .args(["pkcs12", "-export", "-inkey"])
        .arg(&ck)
        .arg("-in")
        .arg(&cc)
        .arg("-out")
        .arg(&conf_p12)
        .args(["-passout", "pass:Configured-Pass-42"])
        .status()
        .expect("openssl");
    assert!(ok.success());
    let (p12, jks, conf_p12) = (std::fs::read(p12).expect("p12"), std::fs::read(jks).expect("jks"), std::fs::read(conf_p12).expect("p12"));
    api.with(|s| {
        // `kubectl create secret --from-file` keeps the file's trailing newline.
        s.put_secret("app", "keystore", "Opaque", &[("keystore.p12", &p12), ("keystore-password", b"Pkcs12-Pass-7781\n")]);
        s.put_secret("app", "truststore", "Opaque", &[("truststore.jks", &jks), ("truststore-password", b"Jks-Pass-5150")]);
        s.put_secret("app", "configured", "Opaque", &[("server.p12", &conf_p12)]);
        // The password of another Secret does not open this one.
        s.put_secret("app", "wrong", "Opaque", &[("other.p12", &p12), ("password", b"not-it")]);
    });
    let sb = sandbox(&api, TOKEN, "    passwords: ['${env:KS_PASS}']\n");
    let mut cmd = sb.command_at(NOW);
    cmd.env_remove("KUBECONFIG").env("HOME", sb.dir.path()).env("KS_PASS", "Configured-Pass-42").env("RUST_LOG", "debug");
    cmd.args(["scan", "-o", "json"]);
    let r = run_with_timeout(cmd, RUN_LIMIT);
    let v = r.json();
    let errors: Vec<&str> = v["errors"].as_array().expect("errors").iter().filter_map(|e| e["location"].as_str()).collect();
    assert_eq!(errors, ["k8s://fixture/app/secrets/wrong#other.p12"], "{v:#}\n{}", r.stderr);
    let fps = fingerprints(&sb);
    for c in [&p12_cert, &jks_cert, &conf_cert] {
        assert!(fps.contains(&c.fingerprint), "{fps:?}");
    }
    assert_eq!(locations_of(&sb, &jks_cert.fingerprint), ["k8s://fixture/app/secrets/truststore#truststore.jks"]);
    for secret in ["Pkcs12-Pass-7781", "Jks-Pass-5150", "Configured-Pass-42", "not-it"] {
        assert!(!r.stdout.contains(secret) && !r.stderr.contains(secret), "{secret} leaked:\n{}\n{}", r.stdout, r.stderr);
    }
    // The password keys themselves are not objects.
    assert_eq!(v["sources"][0]["objects"], 4, "{v:#}");
}

#[test]
fn a_forbidden_cluster_wide_list_falls_back_to_each_namespace_and_reports_only_the_forbidden_ones() {
    let api = ApiServer::start();
    let (a, b, hidden) = (cert("a"), cert("b"), cert("hidden"));
    api.with(|s| {
        s.put_secret("team-a", "t", "kubernetes.io/tls", &[("tls.crt", a.pem.as_bytes())]);
        s.put_secret("team-b", "t", "kubernetes.io/tls", &[("tls.crt", b.pem.as_bytes())]);
        s.put_secret("locked", "t", "kubernetes.io/tls", &[("tls.crt", hidden.pem.as_bytes())]);
        s.put_workload("deployments", "team-a", "web", &[("container", "app", "nginx:1.27")], None);
        s.put_workload("deployments", "locked", "web", &[("container", "app", "nginx:1.27")], None);
        s.forbidden_cluster_wide.extend(["secrets".to_string(), "deployments".to_string()]);
        s.forbidden.insert("locked".into());
    });
    let sb = sandbox(&api, TOKEN, "");
    let (r, v) = scan(&sb);
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    let errors: Vec<&str> = v["errors"].as_array().expect("errors").iter().filter_map(|e| e["location"].as_str()).collect();
    assert_eq!(errors, ["k8s://fixture/locked/secrets/", "k8s://fixture/locked/deployments/"], "{v:#}");
    let fps = fingerprints(&sb);
    assert!(fps.contains(&a.fingerprint) && fps.contains(&b.fingerprint) && !fps.contains(&hidden.fingerprint), "{fps:?}");
    let per_ns = requests(&api, "GET /api/v1/namespaces/");
    assert!(per_ns.iter().any(|r| r.starts_with("GET /api/v1/namespaces/team-b/secrets?")), "{per_ns:?}");
    let images = run(&sb, &["audit", "images", "-o", "json"]).expect_code(0).json();
    let namespaces: Vec<&str> = images["findings"].as_array().expect("findings").iter().filter_map(|f| f["namespace"].as_str()).collect();
    assert_eq!(namespaces, ["team-a"], "{images:#}");
}

const DIGEST: &str = "sha256:2f2ab1b0a2fb8f1b3a0c8bb3b4a0c5d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f70";

#[test]
fn the_image_audit_reports_mutable_tags_of_every_workload_kind_and_audit_images_prints_them() {
    let api = ApiServer::start();
    let pinned = format!("registry.example:5000/app@{DIGEST}");
    api.with(|s| {
        s.put_workload(
            "deployments",
            "web",
            "site",
            &[("container", "app", "registry.example:5000/site:2.1"), ("container", "proxy", &pinned)],
            None,
        );
        s.put_workload("statefulsets", "db", "pg", &[("container", "pg", "postgres"), ("init", "init", "busybox:latest")], None);
        s.put_workload("daemonsets", "kube-system", "agent", &[("container", "agent", &format!("agent:1.0@{DIGEST}"))], None);
        s.put_workload("cronjobs", "web", "backup", &[("container", "backup", "backup:nightly")], None);
        // The CronJob's Job runs its template: reported once, through the CronJob.
        s.put_workload("jobs", "web", "backup-29000000", &[("container", "backup", "backup:nightly")], Some("CronJob"));
        s.put_workload("jobs", "web", "migrate", &[("container", "migrate", "migrate:v3")], None);
        // A Deployment's Pod is audited through the Deployment.
        s.put_workload("pods", "web", "site-abc12", &[("container", "app", "registry.example:5000/site:2.1")], Some("ReplicaSet"));
        // Bare Pods, more than a page of them.
        for i in 0..23 {
            let image = if i % 2 == 0 { "debug:latest".to_string() } else { format!("debug@{DIGEST}") };
            s.put_workload("pods", "web", &format!("bare-{i:02}"), &[("container", "sh", &image), ("ephemeral", "dbg", &pinned)], None);
        }
        s.put_workload("pods", "web", "toolbox", &[("container", "sh", &pinned), ("ephemeral", "debugger", "nicolaka/netshoot")], None);
    });
    let sb = sandbox(&api, TOKEN, "    page_size: 5\n    image_tag_severity: info\n");
    let (r, v) = scan(&sb);
    assert_eq!(v["run"]["errors"], 0, "{v:#}\n{}", r.stderr);
    let pod_lists = requests(&api, "GET /api/v1/pods?");
    assert_eq!(pod_lists.len(), 5, "25 pods in pages of 5: {pod_lists:?}");
    assert!(pod_lists.iter().all(|l| l.contains("limit=5")), "{pod_lists:?}");

    let out = run(&sb, &["audit", "images", "-o", "json"]).expect_code(0).json();
    let got: Vec<String> = out["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            format!(
                "{} {}/{} {}:{} {} {} {}",
                f["namespace"].as_str().unwrap_or(""),
                f["workload_kind"].as_str().unwrap_or(""),
                f["workload"].as_str().unwrap_or(""),
                f["container_type"].as_str().unwrap_or(""),
                f["container"].as_str().unwrap_or(""),
                f["image"].as_str().unwrap_or(""),
                f["problem"].as_str().unwrap_or(""),
                f["severity"].as_str().unwrap_or("")
            )
        })
        .collect();
    let mut want = vec![
        "db StatefulSet/pg container:pg postgres untagged warning".to_string(),
        "db StatefulSet/pg initContainer:init busybox:latest latest warning".to_string(),
        "web CronJob/backup container:backup backup:nightly mutable-tag info".to_string(),
        "web Deployment/site container:app registry.example:5000/site:2.1 mutable-tag info".to_string(),
        "web Job/migrate container:migrate migrate:v3 mutable-tag info".to_string(),
    ];
    for i in (0..23).step_by(2) {
        want.push(format!("web Pod/bare-{i:02} container:sh debug:latest latest warning"));
    }
    want.push("web Pod/toolbox ephemeralContainer:debugger nicolaka/netshoot untagged warning".into());
    assert_eq!(got, want);

    // Text, grouped per namespace; one namespace; the CI switch.
    let text = run(&sb, &["audit", "images"]).expect_code(0);
    assert!(text.stdout.contains("k8s / db (2):") && text.stdout.contains("k8s / web (16):"), "{}", text.stdout);
    assert!(text.stdout.contains("StatefulSet/pg initContainer init: busybox:latest"), "{}", text.stdout);
    let db = run(&sb, &["audit", "images", "--namespace", "db", "-o", "json"]).expect_code(0).json();
    assert_eq!(db["findings"].as_array().map(Vec::len), Some(2));
    run(&sb, &["audit", "images", "--fail-on-findings"]).expect_code(1);
    run(&sb, &["audit", "images", "--namespace", "kube-system", "--fail-on-findings"]).expect_code(0);

    // The next scan replaces the set: fixed workloads leave it.
    api.with(|s| {
        s.workloads.retain(|(kind, ns, _), _| !(kind == "pods" && ns == "web"));
        s.workloads.remove(&("statefulsets".into(), "db".into(), "pg".into()));
    });
    scan(&sb);
    let after = run(&sb, &["audit", "images", "-o", "json"]).expect_code(0).json();
    assert_eq!(after["findings"].as_array().map(Vec::len), Some(3), "{after:#}");

    // Switched off: no workload is listed and the last audit stays.
    let off = sandbox(&api, TOKEN, "    image_audit: false\n");
    api.with(|s| s.requests.clear());
    scan(&off);
    assert!(requests(&api, "GET /apis/apps/").is_empty() && requests(&api, "GET /api/v1/pods").is_empty());
}

// ---------------------------------------------------------------------------------------------
// Kubeconfig access forms: exec credential plugins, several clusters in one kubeconfig, client
// certificates over TLS, insecure-skip-tls-verify, in_cluster.

fn b64(data: &[u8]) -> String {
    use base64ct::Encoding;
    base64ct::Base64::encode_string(data)
}

/// A scan of `sb` whose sources must all be unavailable: the messages of its errors, with
/// stdout and stderr (which must not hold `secret`, when given).
fn unavailable(sb: &Sandbox, secret: Option<&str>) -> Vec<(String, String)> {
    let (r, v) = scan(sb);
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    if let Some(secret) = secret {
        assert!(!r.stdout.contains(secret) && !r.stderr.contains(secret), "the secret was printed:\n{}\n{}", r.stdout, r.stderr);
    }
    let errors = v["errors"].as_array().cloned().unwrap_or_else(|| panic!("{v:#}"));
    errors
        .iter()
        .map(|e| (e["location"].as_str().unwrap_or_default().to_string(), e["message"].as_str().unwrap_or_default().to_string()))
        .collect()
}

/// A kubeconfig of one context `fixture` on `server` with these `cluster` and `user` fields
/// (YAML lines indented by four spaces).
fn kubeconfig_with(server: &str, cluster: &str, user: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fx\n  cluster:\n    server: {server}\n{cluster}\
         users:\n- name: u\n  user:\n{user}contexts:\n- name: fixture\n  context:\n    cluster: fx\n    user: u\n\
         current-context: fixture\n"
    )
}

fn config_with_kubeconfig(sb: &Sandbox, kubeconfig: &str, extra: &str) {
    sb.write("kubeconfig.yaml", kubeconfig);
    sb.config(&format!("sources:\n  - name: k8s\n    kind: kubernetes\n    kubeconfig: kubeconfig.yaml\n{extra}"));
}

/// An exec credential plugin (client.authentication.k8s.io/v1) that records the
/// `KUBERNETES_EXEC_INFO` it was given, prints `output` and exits with `code`.
fn exec_plugin(sb: &Sandbox, output: &str, code: i32) -> String {
    let info = sb.path("exec-info.json");
    let script = format!(
        "#!/bin/sh\nprintf '%s' \"$KUBERNETES_EXEC_INFO\" > '{}'\necho 'plugin diagnostics' >&2\ncat <<'JSON'\n{output}\nJSON\nexit {code}\n",
        info.display()
    );
    let path = sb.write("get-token.sh", script);
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod plugin");
    format!(
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      args: [--cluster, fixture]\n      interactiveMode: Never\n",
        path.display()
    )
}

#[test]
fn an_exec_credential_plugin_supplies_the_token_and_a_failing_one_is_a_clear_error_that_never_shows_it() {
    let api = ApiServer::start();
    let c = cert("exec");
    api.with(|s| s.put_secret("web", "t", "kubernetes.io/tls", &[("tls.crt", c.pem.as_bytes())]));
    let credential =
        format!(r#"{{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{{"token":"{TOKEN}"}}}}"#);

    let sb = Sandbox::new();
    let user = exec_plugin(&sb, &credential, 0);
    config_with_kubeconfig(&sb, &kubeconfig_with(&api.url(), "", &user), "");
    let (r, v) = scan(&sb);
    assert_eq!(v["run"]["errors"], 0, "{v:#}\n{}", r.stderr);
    assert_eq!(fingerprints(&sb), vec![c.fingerprint.clone()]);
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path("exec-info.json")).expect("the plugin ran")).expect("exec info");
    assert_eq!(info["apiVersion"], "client.authentication.k8s.io/v1", "{info}");
    assert_eq!(info["kind"], "ExecCredential", "{info}");
    assert_eq!(info["spec"]["interactive"], false, "{info}");
    assert!(!r.stderr.contains(TOKEN) && !r.stdout.contains(TOKEN), "the token was printed:\n{}\n{}", r.stdout, r.stderr);

    // A plugin that prints the token and then fails: the source is unavailable, the message
    // names the context and the plugin, and the token appears nowhere.
    let sb = Sandbox::new();
    let user = exec_plugin(&sb, &credential, 3);
    config_with_kubeconfig(&sb, &kubeconfig_with(&api.url(), "", &user), "");
    let errors = unavailable(&sb, Some(TOKEN));
    assert_eq!(errors.len(), 1, "{errors:?}");
    let (location, m) = &errors[0];
    assert_eq!(location, "k8s://fixture/");
    assert!(m.contains("context `fixture`") && m.contains("exec credential plugin") && m.contains("get-token.sh"), "{m}");
    assert!(m.contains("exit status: 3"), "{m}");

    // A plugin whose output is not an ExecCredential.
    let sb = Sandbox::new();
    let user = exec_plugin(&sb, &format!("token: [{TOKEN}"), 0);
    config_with_kubeconfig(&sb, &kubeconfig_with(&api.url(), "", &user), "");
    let errors = unavailable(&sb, Some(TOKEN));
    assert!(errors[0].1.contains("not an ExecCredential") && errors[0].1.contains("context `fixture`"), "{errors:?}");
}

#[test]
fn two_contexts_of_one_kubeconfig_reach_their_own_clusters_and_an_unknown_context_is_a_clear_error() {
    let (a, b) = (ApiServer::start(), ApiServer::start());
    b.with(|s| s.token = Some("token-of-cluster-b".into()));
    let (ca, cb) = (cert("in-a"), cert("in-b"));
    a.with(|s| s.put_secret("web", "a", "kubernetes.io/tls", &[("tls.crt", ca.pem.as_bytes())]));
    b.with(|s| s.put_secret("db", "b", "kubernetes.io/tls", &[("tls.crt", cb.pem.as_bytes())]));
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: ca\n  cluster:\n    server: {}\n- name: cb\n  cluster:\n    server: {}\n\
         users:\n- name: ua\n  user:\n    token: {TOKEN}\n- name: ub\n  user:\n    token: token-of-cluster-b\n\
         contexts:\n- name: a\n  context:\n    cluster: ca\n    user: ua\n- name: b\n  context:\n    cluster: cb\n    user: ub\n\
         current-context: a\n",
        a.url(),
        b.url()
    );
    let sb = Sandbox::new();
    sb.write("kubeconfig.yaml", &kubeconfig);
    sb.config(
        "sources:\n  - name: k8s-a\n    kind: kubernetes\n    kubeconfig: kubeconfig.yaml\n    context: a\n\
         \x20 - name: k8s-b\n    kind: kubernetes\n    kubeconfig: kubeconfig.yaml\n    context: b\n",
    );
    let (r, v) = scan(&sb);
    assert_eq!(v["run"]["errors"], 0, "{v:#}\n{}", r.stderr);
    assert_eq!(locations_of(&sb, &ca.fingerprint), ["k8s://a/web/secrets/a#tls.crt"]);
    assert_eq!(locations_of(&sb, &cb.fingerprint), ["k8s://b/db/secrets/b#tls.crt"]);
    assert_eq!(fingerprints(&sb).len(), 2);
    // Each cluster was asked only by its own source, with its own token (a wrong one is a 401).
    assert!(!requests(&a, "GET /api/v1/secrets").is_empty() && !requests(&b, "GET /api/v1/secrets").is_empty());

    let sb = Sandbox::new();
    sb.write("kubeconfig.yaml", &kubeconfig);
    sb.config("sources:\n  - name: k8s-c\n    kind: kubernetes\n    kubeconfig: kubeconfig.yaml\n    context: c\n");
    let before = a.with(|s| s.requests.len()) + b.with(|s| s.requests.len());
    let errors = unavailable(&sb, None);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "k8s://c/");
    assert!(errors[0].1.ends_with("the kubeconfig has no context `c` (it has: a, b)"), "{errors:?}");
    assert_eq!(a.with(|s| s.requests.len()) + b.with(|s| s.requests.len()), before, "no request for an unknown context");
}

/// A CA and what it issues.
struct Pki {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

fn pki(cn: &str) -> Pki {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("test fixture");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("test fixture");
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let pem = params.self_signed(&key).expect("test fixture").pem();
    Pki { issuer: rcgen::Issuer::new(params, key), pem }
}

impl Pki {
    /// (certificate PEM, key PEM): a server certificate for 127.0.0.1, or a client one with
    /// subject CN `cn` and the `system:masters` organisation.
    fn issue(&self, cn: &str, server: bool) -> (String, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("test fixture");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("test fixture");
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        if server {
            params.subject_alt_names = vec![rcgen::SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into())];
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        } else {
            params.distinguished_name.push(rcgen::DnType::OrganizationName, "system:masters");
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        }
        let c = params.signed_by(&key, &self.issuer).expect("test fixture");
        (c.pem(), key.serialize_pem())
    }
}

/// An HTTPS fixture whose certificate `server_ca` issued and which authenticates clients
/// whose certificates `client_ca` issued.
fn tls_server(server_ca: &Pki, client_ca: &Pki) -> ApiServer {
    let (chain, key) = server_ca.issue("kube-apiserver", true);
    ApiServer::start_tls(&kube::Tls { chain, key, client_ca: client_ca.pem.clone() })
}

/// The `user` fields of a client certificate and its key.
fn cert_user(cert: &(String, String)) -> String {
    format!("    client-certificate-data: {}\n    client-key-data: {}\n", b64(cert.0.as_bytes()), b64(cert.1.as_bytes()))
}

#[test]
fn a_client_certificate_authenticates_its_cn_over_tls_and_a_wrong_one_or_an_untrusted_server_is_a_clear_error() {
    let (server_ca, client_ca, other_ca) = (pki("Fixture server CA"), pki("Fixture client CA"), pki("Someone else's CA"));
    let api = tls_server(&server_ca, &client_ca);
    let c = cert("over-tls");
    api.with(|s| s.put_secret("web", "t", "kubernetes.io/tls", &[("tls.crt", c.pem.as_bytes())]));
    let trusted = format!("    certificate-authority-data: {}\n", b64(server_ca.pem.as_bytes()));

    let sb = Sandbox::new();
    let user = cert_user(&client_ca.issue("certvigil-reader", false));
    config_with_kubeconfig(&sb, &kubeconfig_with(&api.url(), &trusted, &user), "");
    let (r, v) = scan(&sb);
    assert_eq!(v["run"]["errors"], 0, "{v:#}\n{}", r.stderr);
    assert_eq!(fingerprints(&sb), vec![c.fingerprint.clone()]);
    let users = api.with(|s| std::mem::take(&mut s.users));
    assert!(!users.is_empty() && users.iter().all(|u| u == "certvigil-reader"), "{users:?}");

    // A client certificate of another CA authenticates no one: 401.
    let sb = Sandbox::new();
    let user = cert_user(&other_ca.issue("intruder", false));
    config_with_kubeconfig(&sb, &kubeconfig_with(&api.url(), &trusted, &user), "");
    let errors = unavailable(&sb, None);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "k8s://fixture/");
    assert!(errors[0].1.contains("refused the credentials (401 Unauthorized)"), "{errors:?}");
    assert!(api.with(|s| s.users.is_empty()), "the intruder was authenticated");

    // The server's certificate is not issued by the kubeconfig's CA: a TLS error, and no
    // request reaches the server.
    let sb = Sandbox::new();
    let user = cert_user(&client_ca.issue("certvigil-reader", false));
    let untrusted = format!("    certificate-authority-data: {}\n", b64(other_ca.pem.as_bytes()));
    config_with_kubeconfig(&sb, &kubeconfig_with(&api.url(), &untrusted, &user), "");
    let before = api.with(|s| s.requests.len());
    let errors = unavailable(&sb, None);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let m = &errors[0].1;
    assert!(m.contains("invalid peer certificate") && m.contains("UnknownIssuer"), "{m}");
    assert!(m.contains("TLS: the API server's certificate does not verify against the certificate authority"), "{m}");
    assert_eq!(api.with(|s| s.requests.len()), before);
}

#[test]
fn insecure_skip_tls_verify_is_refused_unless_the_source_allows_it_and_then_warned_about() {
    let (server_ca, client_ca) = (pki("Fixture server CA"), pki("Fixture client CA"));
    let api = tls_server(&server_ca, &client_ca);
    let c = cert("insecure");
    api.with(|s| s.put_secret("web", "t", "kubernetes.io/tls", &[("tls.crt", c.pem.as_bytes())]));
    let kubeconfig = kubeconfig_with(&api.url(), "    insecure-skip-tls-verify: true\n", &format!("    token: {TOKEN}\n"));

    let sb = Sandbox::new();
    config_with_kubeconfig(&sb, &kubeconfig, "");
    let errors = unavailable(&sb, Some(TOKEN));
    assert_eq!(errors.len(), 1, "{errors:?}");
    let m = &errors[0].1;
    assert!(m.contains("insecure-skip-tls-verify") && m.contains("allow_insecure_skip_tls_verify: true") && m.contains("refused"), "{m}");
    assert!(api.with(|s| s.requests.is_empty()), "no request, so the token was never sent");

    let sb = Sandbox::new();
    config_with_kubeconfig(&sb, &kubeconfig, "    allow_insecure_skip_tls_verify: true\n");
    // One-shot commands log errors only; `-v` (and the daemon) show warnings.
    let r = run(&sb, &["-v", "scan", "-o", "json"]);
    let v = r.json();
    assert_eq!(v["run"]["errors"], 0, "{v:#}\n{}", r.stderr);
    assert_eq!(fingerprints(&sb), vec![c.fingerprint.clone()]);
    assert!(r.stderr.contains("WARN") && r.stderr.contains("certificate is NOT checked"), "{}", r.stderr);
}

#[test]
fn in_cluster_is_exclusive_with_the_kubeconfig_and_each_setting_says_where_credentials_come_from() {
    // Validation names the fields.
    let sb = Sandbox::new();
    sb.config("sources:\n  - name: k8s\n    kind: kubernetes\n    in_cluster: true\n    kubeconfig: k.yaml\n    context: a\n");
    let r = run(&sb, &["config", "validate"]);
    assert_ne!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let text = format!("{}{}", r.stdout, r.stderr);
    assert!(text.contains("sources[0].kubeconfig") && text.contains("sources[0].context"), "{text}");
    assert!(text.contains("cannot be combined with `in_cluster: true`"), "{text}");

    // in_cluster: true never reads a kubeconfig, even one that works.
    let api = ApiServer::start();
    let sb = Sandbox::new();
    sb.write(".kube/config", api.kubeconfig(TOKEN));
    sb.config("sources:\n  - name: k8s\n    kind: kubernetes\n    in_cluster: true\n");
    let mut cmd = sb.command_at(NOW);
    cmd.env_remove("KUBECONFIG").env_remove("KUBERNETES_SERVICE_HOST").env("HOME", sb.dir.path()).args(["scan", "-o", "json"]);
    let r = run_with_timeout(cmd, RUN_LIMIT);
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["errors"][0]["location"], "k8s://in-cluster/", "{v:#}");
    let m = v["errors"][0]["message"].as_str().expect("message");
    assert!(m.contains("`in_cluster: true` but not running in a pod"), "{m}");
    assert!(api.with(|s| s.requests.is_empty()));

    // in_cluster: false never falls back to the service account.
    let sb = Sandbox::new();
    sb.config("sources:\n  - name: k8s\n    kind: kubernetes\n    in_cluster: false\n");
    let mut cmd = sb.command_at(NOW);
    cmd.env_remove("KUBECONFIG")
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", "1")
        .env("HOME", sb.dir.path())
        .args(["scan", "-o", "json"]);
    let r = run_with_timeout(cmd, RUN_LIMIT);
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    let m = r.json()["errors"][0]["message"].as_str().expect("message").to_string();
    assert!(m.contains("no kubeconfig") && m.contains("`in_cluster: false`"), "{m}");
}

/// `show -o json`'s owner of a certificate (null without one).
fn owner(sb: &Sandbox, fingerprint: &str) -> Value {
    run(sb, &["show", fingerprint, "-o", "json"]).expect_code(0).json()["owner"].clone()
}

/// The fingerprints `list --owner …` prints, sorted.
fn listed_for(sb: &Sandbox, owners: &[&str]) -> Vec<String> {
    let mut args = vec!["list", "-o", "json"];
    for o in owners {
        args.extend(["--owner", o]);
    }
    let v = run(sb, &args).expect_code(0).json();
    let mut fps: Vec<String> = v.as_array().expect("array").iter().map(|c| c["fingerprint"].as_str().expect("fp").to_string()).collect();
    fps.sort();
    fps
}

#[test]
fn owners_come_from_the_owner_annotation_else_the_label_and_a_changed_one_is_read_again() {
    let api = ApiServer::start();
    let (pay, web, trust, hook) = (cert("pay"), cert("web"), cert("trust"), cert("hook-ca"));
    api.with(|s| {
        s.put_secret("web", "pay-tls", "kubernetes.io/tls", &[("tls.crt", pay.pem.as_bytes()), ("tls.key", pay.key.as_bytes())]);
        s.set_metadata(
            "secrets",
            "web",
            "pay-tls",
            &[("certvigil.io/owner", "payments"), ("certvigil.io/owner-contact", "payments-oncall@corp.example")],
            &[("certvigil.io/owner", "web-team")],
        );
        s.put_secret("web", "web-tls", "kubernetes.io/tls", &[("tls.crt", web.pem.as_bytes())]);
        s.set_metadata("secrets", "web", "web-tls", &[("unrelated", "x")], &[("certvigil.io/owner", "web-team")]);
        s.put_configmap("web", "trust", &[("ca.crt", &trust.pem)]);
        s.put_webhooks(false, "policy", &[("check.example.com", Some(hook.pem.as_bytes()))]);
        s.set_metadata("validatingwebhookconfigurations", "", "policy", &[("certvigil.io/owner", "platform")], &[]);
    });
    let sb = sandbox(&api, TOKEN, "owners:\n  teams:\n    - {name: web-team, contact: web-oncall@corp.example}\n");
    let (r, v) = scan(&sb);
    assert_eq!((v["run"]["errors"].as_i64(), v["sources"][0]["objects"].as_i64()), (Some(0), Some(4)), "{v:#}\n{}", r.stderr);

    // The annotation wins over the label; its contact comes with it.
    let o = owner(&sb, &pay.fingerprint);
    assert_eq!(o["name"], "payments", "{o:#}");
    assert_eq!(o["contact"], "payments-oncall@corp.example", "{o:#}");
    assert_eq!(
        o["origin"],
        serde_json::json!({"kind": "kubernetes", "source": "k8s", "location": "k8s://fixture/web/secrets/pay-tls#tls.crt", "via": "annotation"})
    );
    let meta = &sightings(&sb, &pay.fingerprint)[0]["meta"];
    assert_eq!((meta["owner"].as_str(), meta["owner_from"].as_str()), (Some("payments"), Some("annotation")), "{meta}");
    let shown = run(&sb, &["show", &pay.fingerprint]).expect_code(0).stdout;
    assert!(
        shown.contains(
            "  Owner                 payments <payments-oncall@corp.example> (from kubernetes annotation on k8s:k8s://fixture/web/secrets/pay-tls#tls.crt)\n"
        ),
        "{shown}"
    );
    // A label alone names the owner; the contact is the team's.
    let o = owner(&sb, &web.fingerprint);
    assert_eq!(
        (o["name"].as_str(), o["contact"].as_str(), o["origin"]["via"].as_str()),
        (Some("web-team"), Some("web-oncall@corp.example"), Some("label"))
    );
    // Cluster-scoped objects carry owners too; an object without one has none.
    assert_eq!(owner(&sb, &hook.fingerprint)["name"], "platform");
    assert!(owner(&sb, &trust.fingerprint).is_null());
    assert_eq!(listed_for(&sb, &["none"]), std::slice::from_ref(&trust.fingerprint));
    assert_eq!(listed_for(&sb, &["web-team"]), std::slice::from_ref(&web.fingerprint));
    let mut both = vec![pay.fingerprint.clone(), hook.fingerprint.clone()];
    both.sort();
    assert_eq!(listed_for(&sb, &["payments", "platform"]), both);

    // Nothing changed: nothing is read.
    let (_, again) = scan(&sb);
    assert_eq!(again["run"]["objects_read"], 0, "{again:#}");

    // The annotation is removed (a new resource version): only that Secret is read again, and
    // its label names the owner now.
    api.with(|s| s.set_metadata("secrets", "web", "pay-tls", &[], &[("certvigil.io/owner", "web-team")]));
    api.with(|s| s.requests.clear());
    let (_, third) = scan(&sb);
    assert_eq!(third["run"]["objects_read"], 1, "{third:#}");
    let gets: Vec<String> =
        api.with(|s| s.requests.iter().filter(|r| r.contains("/secrets/") || r.contains("/configmaps/")).cloned().collect());
    assert_eq!(gets, ["GET /api/v1/namespaces/web/secrets/pay-tls"]);
    let o = owner(&sb, &pay.fingerprint);
    assert_eq!(
        (o["name"].as_str(), o["contact"].as_str(), o["origin"]["via"].as_str()),
        (Some("web-team"), Some("web-oncall@corp.example"), Some("label"))
    );
    let mut web_team = vec![pay.fingerprint.clone(), web.fingerprint.clone()];
    web_team.sort();
    assert_eq!(listed_for(&sb, &["web-team"]), web_team);
}
