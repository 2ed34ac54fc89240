//! `kind: kubernetes` against the fixture API server of `tests/kube` (the real wire forms of
//! lists, pagination, 401/403/410), through the real `certvigil` binary.

mod common;
mod kube;

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
    assert_eq!(problems, [("trust-root-expiring", "warning")]);
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
    assert_eq!(kinds, ["trust-root-expired/critical"]);
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
