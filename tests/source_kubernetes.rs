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
    assert_eq!(locations, ["k8s://fixture/locked/secrets/", "k8s://fixture/locked/configmaps/"], "{v:#}");
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
