//! The Kubernetes manifests of `packaging/kubernetes/`: every manifest parses into its
//! `k8s-openapi` type, the Deployment is one hardened replica replaced with `Recreate`, its
//! probes reach paths the daemon answers, the ClusterRole is read-only and covers every API
//! path the Kubernetes source requests (taken from the fixture API server's request log during
//! a scan with the shipped configuration), and the embedded certvigil.yaml validates with the
//! real binary.

mod common;
mod kube;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{ApiServer, TOKEN};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CERTVIGIL: &str = env!("CARGO_BIN_EXE_certvigil");

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/kubernetes")
}

fn read(name: &str) -> String {
    let p = dir().join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn parse<T: serde::de::DeserializeOwned>(name: &str) -> T {
    serde_saphyr::from_str(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[derive(Deserialize)]
struct TypeMeta {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
}

#[derive(Deserialize)]
struct Kustomization {
    resources: Vec<String>,
}

struct Manifests {
    namespace: Namespace,
    account: ServiceAccount,
    role: ClusterRole,
    binding: ClusterRoleBinding,
    config: ConfigMap,
    claim: PersistentVolumeClaim,
    deployment: Deployment,
    service: Service,
}

/// Every resource of the kustomization, parsed into its type by its `kind`.
fn manifests() -> Manifests {
    let k: Kustomization = parse("kustomization.yaml");
    let mut kinds = BTreeMap::new();
    for file in &k.resources {
        let meta: TypeMeta = parse(file);
        assert!(kinds.insert(meta.kind.clone(), file.clone()).is_none(), "two manifests of kind {}", meta.kind);
        let expected = match meta.kind.as_str() {
            "Namespace" | "ServiceAccount" | "ConfigMap" | "PersistentVolumeClaim" | "Service" => "v1",
            "ClusterRole" | "ClusterRoleBinding" => "rbac.authorization.k8s.io/v1",
            "Deployment" => "apps/v1",
            other => panic!("{file}: unexpected kind {other}"),
        };
        assert_eq!(meta.api_version, expected, "{file}");
    }
    let of = |kind: &str| kinds.get(kind).cloned().unwrap_or_else(|| panic!("no {kind} in kustomization.yaml"));
    Manifests {
        namespace: parse(&of("Namespace")),
        account: parse(&of("ServiceAccount")),
        role: parse(&of("ClusterRole")),
        binding: parse(&of("ClusterRoleBinding")),
        config: parse(&of("ConfigMap")),
        claim: parse(&of("PersistentVolumeClaim")),
        deployment: parse(&of("Deployment")),
        service: parse(&of("Service")),
    }
}

#[test]
fn the_kustomization_lists_every_manifest_but_the_optional_service_monitor() {
    let k: Kustomization = parse("kustomization.yaml");
    let listed: BTreeSet<String> = k.resources.iter().cloned().collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir())
        .expect("packaging/kubernetes")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml" && n != "servicemonitor.yaml")
        .collect();
    assert_eq!(listed, on_disk);
    let m = manifests();
    let ns = m.namespace.metadata.name.clone().expect("namespace name");
    for (what, meta) in [
        ("ServiceAccount", &m.account.metadata),
        ("ConfigMap", &m.config.metadata),
        ("PersistentVolumeClaim", &m.claim.metadata),
        ("Deployment", &m.deployment.metadata),
        ("Service", &m.service.metadata),
    ] {
        assert_eq!(meta.namespace.as_ref(), Some(&ns), "{what}");
    }
    let labels = m.namespace.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("pod-security.kubernetes.io/enforce").map(String::as_str), Some("restricted"));
}

#[test]
fn the_deployment_is_one_hardened_replica_replaced_by_recreate() {
    let m = manifests();
    let spec = m.deployment.spec.expect("deployment spec");
    assert_eq!(spec.replicas, Some(1), "one writer of the SQLite store");
    assert_eq!(spec.strategy.and_then(|s| s.type_).as_deref(), Some("Recreate"), "never two pods at once, not even in a rollout");
    let template = spec.template;
    let pod_labels = template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
    let pod = template.spec.expect("pod spec");

    // The service account's token: only this pod mounts it.
    assert_eq!(m.account.automount_service_account_token, Some(false));
    assert_eq!(pod.automount_service_account_token, Some(true));
    assert_eq!(pod.service_account_name, m.account.metadata.name);

    let psc = pod.security_context.expect("pod securityContext");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert!(psc.run_as_user.is_some_and(|u| u > 0));
    assert_eq!(psc.seccomp_profile.map(|s| s.type_).as_deref(), Some("RuntimeDefault"));
    assert_eq!(pod.containers.len(), 1);
    let c = &pod.containers[0];
    let sc = c.security_context.clone().expect("container securityContext");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.run_as_non_root, Some(true));
    assert!(!sc.privileged.unwrap_or(false));
    let caps = sc.capabilities.expect("capabilities");
    assert_eq!(caps.drop, Some(vec!["ALL".to_string()]));
    assert!(caps.add.unwrap_or_default().is_empty());
    assert_eq!(sc.seccomp_profile.map(|s| s.type_).as_deref(), Some("RuntimeDefault"));

    let res = c.resources.clone().expect("resources");
    for (what, map) in [("requests", res.requests), ("limits", res.limits)] {
        let map = map.unwrap_or_else(|| panic!("no resource {what}"));
        assert!(map.contains_key("cpu") && map.contains_key("memory"), "{what}: {map:?}");
    }

    // The command reads the mounted configuration; the store and the token are mounted where
    // it says.
    let args = c.args.clone().unwrap_or_default();
    let config_path = args.windows(2).find(|w| w[0] == "-c").map(|w| w[1].clone()).expect("-c FILE");
    assert_eq!(args.last().map(String::as_str), Some("run"));
    let mounts = c.volume_mounts.clone().unwrap_or_default();
    let volumes = pod.volumes.clone().unwrap_or_default();
    let volume_of = |path: &str| {
        let mount = mounts.iter().find(|v| path.starts_with(&v.mount_path)).unwrap_or_else(|| panic!("nothing mounted at {path}"));
        volumes.iter().find(|v| v.name == mount.name).unwrap_or_else(|| panic!("no volume {}", mount.name)).clone()
    };
    let yaml = embedded_config(&m.config);
    assert_eq!(volume_of(&config_path).config_map.map(|c| c.name), m.config.metadata.name);
    let settings: serde_json::Value = serde_saphyr::from_str(&yaml).expect("embedded yaml");
    let store = settings["store"]["path"].as_str().expect("store.path");
    assert_eq!(volume_of(store).persistent_volume_claim.map(|c| c.claim_name), m.claim.metadata.name);
    let token = settings["daemon"]["token"].as_str().expect("daemon.token");
    let token_file = token.strip_prefix("${file:").and_then(|t| t.strip_suffix('}')).expect("a ${file:…} reference");
    let secret = volume_of(token_file).secret.expect("the token comes from a Secret");
    assert_eq!(secret.secret_name.as_deref(), Some("certvigil-api-token"));
    assert!(mounts.iter().any(|v| v.mount_path == "/tmp"), "a writable /tmp for SQLite beside a read-only root");

    // Probes on the daemon's port, at the paths it serves without a token.
    let listen = settings["daemon"]["listen"].as_str().expect("daemon.listen");
    let port: i32 = listen.rsplit(':').next().and_then(|p| p.parse().ok()).expect("listen port");
    assert_eq!(settings["daemon"]["allow_remote"], true, "a pod's listener must be reachable by the kubelet");
    let ports = c.ports.clone().unwrap_or_default();
    let http = ports.iter().find(|p| p.name.as_deref() == Some("http")).expect("port http");
    assert_eq!(http.container_port, port);
    for (probe, path) in [(c.liveness_probe.clone(), "/healthz"), (c.readiness_probe.clone(), "/readyz")] {
        let get = probe.and_then(|p| p.http_get).unwrap_or_else(|| panic!("no httpGet probe for {path}"));
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(get.port, IntOrString::String("http".into()));
    }

    // The Service reaches the pod; Prometheus annotations name the same port and path.
    let svc = m.service.spec.expect("service spec");
    let selector = svc.selector.unwrap_or_default();
    assert!(!selector.is_empty() && selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)), "{selector:?} vs {pod_labels:?}");
    let sp = &svc.ports.unwrap_or_default()[0];
    assert_eq!((sp.port, sp.target_port.clone()), (port, Some(IntOrString::String("http".into()))));
    let pod_notes = template.metadata.and_then(|m| m.annotations).unwrap_or_default();
    let svc_notes = m.service.metadata.annotations.unwrap_or_default();
    for notes in [&pod_notes, &svc_notes] {
        assert_eq!(notes.get("prometheus.io/scrape").map(String::as_str), Some("true"));
        assert_eq!(notes.get("prometheus.io/port"), Some(&port.to_string()));
        assert_eq!(notes.get("prometheus.io/path").map(String::as_str), Some("/metrics"));
    }
    let monitor: serde_json::Value = serde_saphyr::from_str(&read("servicemonitor.yaml")).expect("servicemonitor.yaml");
    assert_eq!(monitor["kind"], "ServiceMonitor");
    let service_labels = m.service.metadata.labels.unwrap_or_default();
    let wanted = monitor["spec"]["selector"]["matchLabels"].as_object().expect("matchLabels");
    assert!(wanted.iter().all(|(k, v)| service_labels.get(k).map(String::as_str) == v.as_str()), "{wanted:?}");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
}

#[test]
fn the_cluster_role_is_read_only_without_wildcards_and_bound_to_the_account() {
    let m = manifests();
    let rules = m.role.rules.unwrap_or_default();
    assert!(!rules.is_empty());
    for r in &rules {
        assert!(r.verbs.iter().all(|v| ["get", "list", "watch"].contains(&v.as_str())), "{r:?}");
        let fields = r.api_groups.iter().flatten().chain(r.resources.iter().flatten()).chain(&r.verbs);
        assert!(fields.clone().all(|f| !f.contains('*')), "no wildcards: {r:?}");
        assert!(r.non_resource_urls.is_none(), "{r:?}");
    }
    assert_eq!(Some(m.binding.role_ref.name.clone()), m.role.metadata.name);
    assert_eq!(m.binding.role_ref.kind, "ClusterRole");
    let subject = &m.binding.subjects.unwrap_or_default()[0];
    assert_eq!((subject.kind.as_str(), Some(&subject.name)), ("ServiceAccount", m.account.metadata.name.as_ref()));
    assert_eq!(subject.namespace, m.account.metadata.namespace);
}

fn embedded_config(config: &ConfigMap) -> String {
    config.data.as_ref().and_then(|d| d.get("certvigil.yaml")).cloned().expect("certvigil.yaml in the ConfigMap")
}

fn certvigil(args: &[&str], home: &Path) -> std::process::Output {
    Command::new(CERTVIGIL)
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env("HOME", home)
        .output()
        .expect("run certvigil")
}

/// (API group, resource, verb) of a request line of the fixture's log.
fn access(line: &str) -> (String, String, &'static str) {
    let path = line.split_whitespace().nth(1).unwrap_or("").split('?').next().unwrap_or("");
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match segs.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => panic!("not an API path: {line}"),
    };
    let rest = match rest {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    match rest {
        [resource] => (group.to_string(), resource.to_string(), "list"),
        [resource, _name] => (group.to_string(), resource.to_string(), "get"),
        _ => panic!("unexpected API path: {line}"),
    }
}

#[test]
fn the_embedded_configuration_validates_and_the_role_covers_what_a_scan_requests() {
    let m = manifests();
    let yaml = embedded_config(&m.config);
    let tmp = tempfile::tempdir().expect("temp dir");
    let file = tmp.path().join("certvigil.yaml");
    std::fs::write(&file, &yaml).expect("write");
    let out = certvigil(&["-c", file.to_str().expect("utf-8"), "config", "validate"], tmp.path());
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    // The same configuration against the fixture API server, through a kubeconfig (the pod's
    // service account stands for it), once as shipped and once with a namespace selector.
    let api = ApiServer::start();
    let cert = rcgen::generate_simple_self_signed(vec!["a.example".to_string()]).expect("cert");
    let pem = cert.cert.pem();
    api.with(|s| {
        s.put_secret("web", "site-tls", "kubernetes.io/tls", &[("tls.crt", pem.as_bytes()), ("tls.key", b"k")]);
        s.put_configmap("web", "trust", &[("ca.crt", &pem)]);
        s.put_webhooks(false, "policy", &[("check.example.com", Some(pem.as_bytes()))]);
        s.put_webhooks(true, "inject", &[("inject.example.com", Some(pem.as_bytes()))]);
        s.namespaces.entry("web".into()).or_default().insert("team".into(), "web".into());
    });
    std::fs::write(tmp.path().join("kubeconfig.yaml"), api.kubeconfig(TOKEN)).expect("write");
    let local = yaml
        .replace("/var/lib/certvigil/certvigil.db", &tmp.path().join("state.db").display().to_string())
        .replace("kind: kubernetes\n", &format!("kind: kubernetes\n    kubeconfig: {}\n", tmp.path().join("kubeconfig.yaml").display()));
    assert_ne!(local, yaml);
    for (n, variant) in [local.clone(), local.replace("tags: [in-cluster]", "namespace_selector: team=web")].iter().enumerate() {
        let f = tmp.path().join(format!("scan-{n}.yaml"));
        std::fs::write(&f, variant).expect("write");
        let out = certvigil(&["-c", f.to_str().expect("utf-8"), "scan", "--no-progress", "-o", "json"], tmp.path());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        // tls.crt and the ConfigMap's ca.crt; cluster-wide, the two webhooks' caBundles too.
        assert_eq!(v["sources"][0]["objects"], [4, 2][n], "{v:#}");
        assert_eq!(v["errors"], serde_json::json!([]), "{v:#}");
    }
    let accesses: BTreeSet<(String, String, &str)> = api.with(|s| s.requests.iter().map(|r| access(r)).collect());
    let wanted: BTreeSet<&str> = accesses.iter().map(|a| a.1.as_str()).collect();
    for r in ["secrets", "configmaps", "namespaces", "validatingwebhookconfigurations", "mutatingwebhookconfigurations"] {
        assert!(wanted.contains(r), "the scans did not request {r}: {accesses:?}");
    }
    let rules = m.role.rules.unwrap_or_default();
    for (group, resource, verb) in &accesses {
        let covered = rules.iter().any(|r| {
            r.api_groups.iter().flatten().any(|g| g == group)
                && r.resources.iter().flatten().any(|x| x == resource)
                && r.verbs.iter().any(|v| v == verb)
        });
        assert!(covered, "the ClusterRole does not allow {verb} on {resource} in API group {group:?}");
    }
}

fn http_get(port: u16, path: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn the_probe_paths_answer_200_from_the_daemon_run_with_the_shipped_configuration() {
    let m = manifests();
    let yaml = embedded_config(&m.config);
    let tmp = tempfile::tempdir().expect("temp dir");
    let api = ApiServer::start();
    std::fs::write(tmp.path().join("kubeconfig.yaml"), api.kubeconfig(TOKEN)).expect("write");
    std::fs::write(tmp.path().join("token"), "probe-test-token\n").expect("write");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let local = yaml
        .replace("/var/lib/certvigil/certvigil.db", &tmp.path().join("state.db").display().to_string())
        .replace("/etc/certvigil/api-token/token", &tmp.path().join("token").display().to_string())
        .replace("0.0.0.0:9797", &format!("127.0.0.1:{port}"))
        .replace("kind: kubernetes\n", &format!("kind: kubernetes\n    kubeconfig: {}\n", tmp.path().join("kubeconfig.yaml").display()));
    let f = tmp.path().join("certvigil.yaml");
    std::fs::write(&f, &local).expect("write");
    let mut child = Command::new(CERTVIGIL)
        .args(["-c", f.to_str().expect("utf-8"), "run"])
        .env_remove("KUBECONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env("HOME", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the daemon");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = (None, None);
    while Instant::now() < deadline {
        last = (http_get(port, "/healthz"), http_get(port, "/readyz"));
        if last == (Some(200), Some(200)) || child.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let unauthenticated_api = http_get(port, "/api/v1/certificates");
    let _ = child.kill();
    let out = child.wait_with_output().expect("daemon output");
    assert_eq!(last, (Some(200), Some(200)), "probes: {last:?}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(unauthenticated_api, Some(401), "the API needs the token");
}
