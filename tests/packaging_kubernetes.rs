//! The Kubernetes manifests of `packaging/kubernetes/` and of its three-replica variant
//! `packaging/kubernetes/ha/`: every manifest parses into its `k8s-openapi` type with no field
//! left over, the single Deployment is one hardened replica replaced with `Recreate` and the
//! variant three replicas with the same hardening, rolled one at a time, spread over nodes, kept
//! two up by a PodDisruptionBudget, their store in PostgreSQL with its password and CA from a
//! Secret and no volume claim; their probes reach paths the daemon answers, the ClusterRole is
//! read-only and covers every API path the Kubernetes source requests (taken from the fixture
//! API server's request log during a scan with the shipped configuration), the embedded
//! certvigil.yaml validates with the real binary, and each variant's configuration runs as a
//! daemon (the variant's on the test run's PostgreSQL cluster) whose probes answer.

mod common;
mod kube;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PersistentVolumeClaim, PodSpec, SecretVolumeSource, Service, ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
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

/// The three-replica variant's directory, under `packaging/kubernetes/`.
const HA: &str = "ha";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/kubernetes")
}

/// `name` under `packaging/kubernetes/`.
fn read(name: &str) -> String {
    let p = dir().join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn parse<T: serde::de::DeserializeOwned>(name: &str) -> T {
    serde_saphyr::from_str(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The first place where `a` and `b` differ, as a JSON path.
fn first_difference(a: &serde_json::Value, b: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value::{Array, Object};
    match (a, b) {
        (Object(x), Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(u), Some(v)) => first_difference(u, v, &format!("{at}.{k}")),
                (u, v) => Some(format!("{at}.{k}: {u:?} vs {v:?}")),
            })
        }
        (Array(x), Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().find_map(|(i, (u, v))| first_difference(u, v, &format!("{at}[{i}]")))
        }
        _ if a == b => None,
        _ => Some(format!("{at}: {a} vs {b}")),
    }
}

/// A manifest as its `k8s-openapi` type. Those types skip fields they do not know, so the value
/// is also written back and compared with the file: a misspelt or misplaced field, which the API
/// server would reject or drop, shows up as a difference.
fn parse_manifest<T: serde::de::DeserializeOwned + serde::Serialize>(name: &str) -> T {
    let typed: T = parse(name);
    let written = serde_json::to_value(&typed).expect("serialise");
    let raw: serde_json::Value = parse(name);
    if let Some(d) = first_difference(&raw, &written, "") {
        panic!("{name}: a field its type does not have, or of another form (file vs type): {d}");
    }
    typed
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
    #[serde(default)]
    images: serde_json::Value,
}

/// The kustomization of `sub` (`""` or [`HA`]).
fn kustomization(sub: &str) -> Kustomization {
    parse(&format!("{}kustomization.yaml", prefix(sub)))
}

fn prefix(sub: &str) -> String {
    if sub.is_empty() { String::new() } else { format!("{sub}/") }
}

struct Manifests {
    namespace: Namespace,
    account: ServiceAccount,
    role: ClusterRole,
    binding: ClusterRoleBinding,
    config: ConfigMap,
    claim: Option<PersistentVolumeClaim>,
    budget: Option<PodDisruptionBudget>,
    deployment: Deployment,
    service: Service,
}

/// Every resource of the kustomization of `sub` (`""`: `packaging/kubernetes/`, or [`HA`]),
/// parsed into its type by its `kind`.
fn manifests_in(sub: &str) -> Manifests {
    let k = kustomization(sub);
    let mut kinds = BTreeMap::new();
    for file in &k.resources {
        let file = format!("{}{file}", prefix(sub));
        let meta: TypeMeta = parse(&file);
        assert!(kinds.insert(meta.kind.clone(), file.clone()).is_none(), "two manifests of kind {}", meta.kind);
        let expected = match meta.kind.as_str() {
            "Namespace" | "ServiceAccount" | "ConfigMap" | "PersistentVolumeClaim" | "Service" => "v1",
            "ClusterRole" | "ClusterRoleBinding" => "rbac.authorization.k8s.io/v1",
            "Deployment" => "apps/v1",
            "PodDisruptionBudget" => "policy/v1",
            other => panic!("{file}: unexpected kind {other}"),
        };
        assert_eq!(meta.api_version, expected, "{file}");
    }
    let of = |kind: &str| kinds.get(kind).cloned().unwrap_or_else(|| panic!("no {kind} in {}kustomization.yaml", prefix(sub)));
    Manifests {
        namespace: parse_manifest(&of("Namespace")),
        account: parse_manifest(&of("ServiceAccount")),
        role: parse_manifest(&of("ClusterRole")),
        binding: parse_manifest(&of("ClusterRoleBinding")),
        config: parse_manifest(&of("ConfigMap")),
        claim: kinds.get("PersistentVolumeClaim").map(|f| parse_manifest(f)),
        budget: kinds.get("PodDisruptionBudget").map(|f| parse_manifest(f)),
        deployment: parse_manifest(&of("Deployment")),
        service: parse_manifest(&of("Service")),
    }
}

fn manifests() -> Manifests {
    manifests_in("")
}

/// The `.yaml` files of `sub` but its kustomization.
fn yaml_files(sub: &str) -> BTreeSet<String> {
    std::fs::read_dir(dir().join(sub))
        .unwrap_or_else(|e| panic!("packaging/kubernetes/{sub}: {e}"))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect()
}

/// Every namespaced manifest is in the Namespace's namespace, which enforces Pod Security
/// `restricted`.
fn check_namespaces(m: &Manifests) {
    let ns = m.namespace.metadata.name.clone().expect("namespace name");
    let mut namespaced = vec![
        ("ServiceAccount", &m.account.metadata),
        ("ConfigMap", &m.config.metadata),
        ("Deployment", &m.deployment.metadata),
        ("Service", &m.service.metadata),
    ];
    namespaced.extend(m.claim.as_ref().map(|c| ("PersistentVolumeClaim", &c.metadata)));
    namespaced.extend(m.budget.as_ref().map(|b| ("PodDisruptionBudget", &b.metadata)));
    for (what, meta) in namespaced {
        assert_eq!(meta.namespace.as_ref(), Some(&ns), "{what}");
    }
    let labels = m.namespace.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("pod-security.kubernetes.io/enforce").map(String::as_str), Some("restricted"));
}

#[test]
fn the_kustomization_lists_every_manifest_but_the_optional_service_monitor() {
    let k = kustomization("");
    let listed: BTreeSet<String> = k.resources.iter().cloned().collect();
    let mut on_disk = yaml_files("");
    on_disk.remove("servicemonitor.yaml");
    assert_eq!(listed, on_disk);
    let m = manifests();
    assert!(m.claim.is_some() && m.budget.is_none());
    check_namespaces(&m);
}

/// A Deployment's pod, checked for what both variants share, and what the variant checks need.
struct Pod {
    labels: BTreeMap<String, String>,
    spec: PodSpec,
    container: Container,
    /// The embedded certvigil.yaml.
    settings: serde_json::Value,
}

impl Pod {
    /// The mount that holds `path` (the longest whose mount path is a prefix), and its volume.
    fn volume_at(&self, path: &str) -> (VolumeMount, Volume) {
        let mount = self
            .container
            .volume_mounts
            .iter()
            .flatten()
            .filter(|v| Path::new(path).starts_with(&v.mount_path))
            .max_by_key(|v| v.mount_path.len())
            .unwrap_or_else(|| panic!("nothing mounted at {path}"))
            .clone();
        let volume =
            self.spec.volumes.iter().flatten().find(|v| v.name == mount.name).unwrap_or_else(|| panic!("no volume {}", mount.name));
        (mount, volume.clone())
    }

    /// The Secret a `${file:…}` reference of the configuration reads, and the key it reads.
    fn secret_of(&self, reference: &str) -> (SecretVolumeSource, String) {
        let file =
            reference.strip_prefix("${file:").and_then(|t| t.strip_suffix('}')).unwrap_or_else(|| panic!("{reference}: not a ${{file:…}}"));
        self.secret_file(file)
    }

    /// The Secret mounted where `file` is, and the key `file` holds.
    fn secret_file(&self, file: &str) -> (SecretVolumeSource, String) {
        let (mount, volume) = self.volume_at(file);
        let secret = volume.secret.unwrap_or_else(|| panic!("{file} is not in a Secret"));
        let rel = Path::new(file).strip_prefix(&mount.mount_path).expect("under the mount").to_string_lossy().into_owned();
        let key = match &secret.items {
            Some(items) => items.iter().find(|i| i.path == rel).map(|i| i.key.clone()).unwrap_or_else(|| panic!("no item at {rel}")),
            None => rel,
        };
        (secret, key)
    }

    fn env(&self, name: &str) -> Option<String> {
        self.container.env.iter().flatten().find(|e| e.name == name).and_then(|e| e.value.clone())
    }
}

/// The checks both Deployments pass: a hardened pod (non-root, read-only root, no capabilities,
/// seccomp, resources), the service account's token mounted here only, Secrets mounted
/// read-only and readable by the group at most, the configuration mounted from the ConfigMap
/// where the command reads it, the API token from its Secret, a writable /tmp, probes on the
/// daemon's port at paths it serves without a token, and the Service and Prometheus annotations
/// pointing at that port.
fn check_pod(m: &Manifests) -> Pod {
    let spec = m.deployment.spec.clone().expect("deployment spec");
    let selected = spec.selector.match_labels.clone().unwrap_or_default();
    let template = spec.template;
    let labels = template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
    assert!(!selected.is_empty() && selected.iter().all(|(k, v)| labels.get(k) == Some(v)), "{selected:?} vs {labels:?}");
    let pod = template.spec.expect("pod spec");

    // The service account's token: only this pod mounts it.
    assert_eq!(m.account.automount_service_account_token, Some(false));
    assert_eq!(pod.automount_service_account_token, Some(true));
    assert_eq!(pod.service_account_name, m.account.metadata.name);

    let psc = pod.security_context.clone().expect("pod securityContext");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert!(psc.run_as_user.is_some_and(|u| u > 0));
    assert_eq!(psc.seccomp_profile.map(|s| s.type_).as_deref(), Some("RuntimeDefault"));
    assert_eq!(pod.containers.len(), 1);
    let c = pod.containers[0].clone();
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

    // Secrets: read-only, readable by the owner and the group (fsGroup) at most.
    let mounts = c.volume_mounts.clone().unwrap_or_default();
    for v in pod.volumes.iter().flatten() {
        let Some(secret) = &v.secret else { continue };
        let modes = secret.default_mode.into_iter().chain(secret.items.iter().flatten().filter_map(|i| i.mode));
        assert!(secret.default_mode.is_some(), "volume {}: no defaultMode (Kubernetes' default is 0644)", v.name);
        for mode in modes {
            assert_eq!(mode & !0o440, 0, "volume {}: mode {mode:o} is wider than 0440", v.name);
        }
        for mount in mounts.iter().filter(|m| m.name == v.name) {
            assert_eq!(mount.read_only, Some(true), "volume {} mounted writable at {}", v.name, mount.mount_path);
        }
    }

    // The command reads the mounted configuration; the token is mounted where it says.
    let args = c.args.clone().unwrap_or_default();
    let config_path = args.windows(2).find(|w| w[0] == "-c").map(|w| w[1].clone()).expect("-c FILE");
    assert_eq!(args.last().map(String::as_str), Some("run"));
    let yaml = embedded_config(&m.config);
    let settings: serde_json::Value = serde_saphyr::from_str(&yaml).expect("embedded yaml");
    let checked = Pod { labels: labels.clone(), spec: pod.clone(), container: c.clone(), settings: settings.clone() };
    assert_eq!(checked.volume_at(&config_path).1.config_map.map(|c| c.name), m.config.metadata.name);
    let token = settings["daemon"]["token"].as_str().expect("daemon.token");
    let (secret, key) = checked.secret_of(token);
    assert_eq!((secret.secret_name.as_deref(), key.as_str()), (Some("certvigil-api-token"), "token"));
    assert!(mounts.iter().any(|v| v.mount_path == "/tmp"), "a writable /tmp beside a read-only root");

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
    let svc = m.service.spec.clone().expect("service spec");
    let selector = svc.selector.unwrap_or_default();
    assert!(!selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v)), "{selector:?} vs {labels:?}");
    let sp = &svc.ports.unwrap_or_default()[0];
    assert_eq!((sp.port, sp.target_port.clone()), (port, Some(IntOrString::String("http".into()))));
    let pod_notes = template.metadata.and_then(|m| m.annotations).unwrap_or_default();
    let svc_notes = m.service.metadata.annotations.clone().unwrap_or_default();
    for notes in [&pod_notes, &svc_notes] {
        assert_eq!(notes.get("prometheus.io/scrape").map(String::as_str), Some("true"));
        assert_eq!(notes.get("prometheus.io/port"), Some(&port.to_string()));
        assert_eq!(notes.get("prometheus.io/path").map(String::as_str), Some("/metrics"));
    }
    checked
}

#[test]
fn the_deployment_is_one_hardened_replica_replaced_by_recreate() {
    let m = manifests();
    let spec = m.deployment.spec.clone().expect("deployment spec");
    assert_eq!(spec.replicas, Some(1), "one writer of the SQLite store");
    assert_eq!(spec.strategy.and_then(|s| s.type_).as_deref(), Some("Recreate"), "never two pods at once, not even in a rollout");
    let pod = check_pod(&m);

    // The SQLite store is on the claim.
    let store = pod.settings["store"]["path"].as_str().expect("store.path");
    let claim = m.claim.as_ref().expect("a PersistentVolumeClaim");
    assert_eq!(pod.volume_at(store).1.persistent_volume_claim.map(|c| c.claim_name), claim.metadata.name);

    let monitor: serde_json::Value = serde_saphyr::from_str(&read("servicemonitor.yaml")).expect("servicemonitor.yaml");
    assert_eq!(monitor["kind"], "ServiceMonitor");
    let service_labels = m.service.metadata.labels.unwrap_or_default();
    let wanted = monitor["spec"]["selector"]["matchLabels"].as_object().expect("matchLabels");
    assert!(wanted.iter().all(|(k, v)| service_labels.get(k).map(String::as_str) == v.as_str()), "{wanted:?}");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
}

/// The manifests the variant shares with the single replica (copies: kustomize reads no file
/// outside a kustomization's directory and refuses a base that contains it).
const SHARED: [&str; 5] = ["namespace.yaml", "serviceaccount.yaml", "clusterrole.yaml", "clusterrolebinding.yaml", "service.yaml"];

#[test]
fn the_ha_kustomization_lists_its_manifests_and_shares_the_others_with_the_single_replica() {
    let ha = kustomization(HA);
    let listed: BTreeSet<String> = ha.resources.iter().cloned().collect();
    assert_eq!(listed.len(), ha.resources.len(), "a resource listed twice");
    assert_eq!(listed, yaml_files(HA), "{HA}/kustomization.yaml lists every manifest of {HA}/");

    // Shared: the same bytes as the single replica's (which its kustomization lists); its own:
    // the configuration, the Deployment and the budget; left out: the claim.
    let single: BTreeSet<String> = kustomization("").resources.into_iter().collect();
    for file in SHARED {
        assert!(single.contains(file), "{file} is not a resource of packaging/kubernetes/");
        assert!(listed.contains(file), "{HA}/ does not list {file}");
        assert_eq!(read(&format!("{HA}/{file}")), read(file), "{HA}/{file} is a copy of {file}: copy it again");
    }
    let shared: BTreeSet<String> = SHARED.iter().map(|s| s.to_string()).collect();
    let own: BTreeSet<&str> = listed.difference(&shared).map(String::as_str).collect();
    assert_eq!(own, BTreeSet::from(["configmap.yaml", "deployment.yaml", "poddisruptionbudget.yaml"]));
    let dropped: BTreeSet<&str> = single.difference(&listed).map(String::as_str).collect();
    assert_eq!(dropped, BTreeSet::from(["pvc.yaml"]));
    assert_eq!(ha.images, kustomization("").images, "the same image as the single replica");

    let m = manifests_in(HA);
    assert!(m.claim.is_none(), "no PersistentVolumeClaim: the store is PostgreSQL");
    assert!(m.budget.is_some(), "a PodDisruptionBudget");
    check_namespaces(&m);
    let single = manifests();
    for (what, a, b) in [
        ("ConfigMap", &m.config.metadata.name, &single.config.metadata.name),
        ("Deployment", &m.deployment.metadata.name, &single.deployment.metadata.name),
    ] {
        assert_eq!(a, b, "{what}: the same name as the single replica's, which this variant replaces");
    }
}

#[test]
fn the_ha_deployment_is_three_replicas_with_the_same_hardening_rolled_one_at_a_time() {
    let m = manifests_in(HA);
    let spec = m.deployment.spec.clone().expect("deployment spec");
    assert_eq!(spec.replicas, Some(3));
    let strategy = spec.strategy.clone().expect("strategy");
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"), "the leader lease, not the rollout, keeps one writer of the jobs");
    let rolling = strategy.rolling_update.expect("rollingUpdate");
    assert_eq!(
        (rolling.max_surge, rolling.max_unavailable),
        (Some(IntOrString::Int(1)), Some(IntOrString::Int(0))),
        "one new pod at a time, before an old one stops"
    );
    let pod = check_pod(&m);

    // The same pod as the single replica's, but for the store.
    let single = manifests();
    let one = check_pod(&single);
    assert_eq!(pod.spec.security_context, one.spec.security_context, "pod securityContext");
    assert_eq!(pod.spec.service_account_name, one.spec.service_account_name);
    assert_eq!(pod.spec.enable_service_links, one.spec.enable_service_links);
    let (c, s) = (&pod.container, &one.container);
    assert_eq!(c.security_context, s.security_context, "container securityContext");
    assert_eq!((&c.liveness_probe, &c.readiness_probe), (&s.liveness_probe, &s.readiness_probe), "probes");
    assert_eq!(c.resources, s.resources, "resources");
    assert_eq!((&c.image, &c.image_pull_policy, &c.args, &c.ports), (&s.image, &s.image_pull_policy, &s.args, &s.ports));
    assert_eq!(pod.env("HOME"), one.env("HOME"));

    // No claim: the store is the database, with its password and CA from the Secret
    // certvigil-db (checked read-only and 0440 at most by check_pod).
    assert!(pod.spec.volumes.iter().flatten().all(|v| v.persistent_volume_claim.is_none()), "a volume claim in {HA}/deployment.yaml");
    assert!(pod.settings["store"].get("path").is_none(), "store.path beside store.url");
    let (secret, key) = pod.secret_of(pod.settings["store"]["password"].as_str().expect("store.password"));
    assert_eq!((secret.secret_name.as_deref(), key.as_str()), (Some("certvigil-db"), "password"));
    let (secret, key) = pod.secret_file(pod.settings["store"]["ca_file"].as_str().expect("store.ca_file"));
    assert_eq!((secret.secret_name.as_deref(), key.as_str()), (Some("certvigil-db"), "ca.crt"));

    // The files kept beside the store go to a writable per-pod volume.
    let state = pod.env("STATE_DIRECTORY").expect("STATE_DIRECTORY");
    let (mount, volume) = pod.volume_at(&format!("{state}/acme"));
    assert_eq!(mount.mount_path, state);
    assert!(volume.empty_dir.is_some() && mount.read_only != Some(true), "{volume:?}");

    // A stopping leader finishes its jobs (daemon.shutdown_timeout) and hands the lease back
    // before the kubelet kills it.
    let shutdown: i64 = pod.settings["daemon"]["shutdown_timeout"]
        .as_str()
        .and_then(|t| t.strip_suffix('s'))
        .and_then(|t| t.parse().ok())
        .expect("shutdown_timeout in s");
    assert!(pod.spec.termination_grace_period_seconds.is_some_and(|g| g > shutdown), "{:?}", pod.spec.termination_grace_period_seconds);

    // Preferably on different nodes.
    let anti = pod.spec.affinity.clone().and_then(|a| a.pod_anti_affinity).expect("podAntiAffinity");
    assert!(anti.required_during_scheduling_ignored_during_execution.is_none(), "preferred only: a small cluster still runs three");
    let by_node = anti
        .preferred_during_scheduling_ignored_during_execution
        .iter()
        .flatten()
        .find(|t| t.pod_affinity_term.topology_key == "kubernetes.io/hostname")
        .expect("a term on kubernetes.io/hostname");
    let wanted = by_node.pod_affinity_term.label_selector.clone().and_then(|s| s.match_labels).unwrap_or_default();
    assert!(!wanted.is_empty() && wanted.iter().all(|(k, v)| pod.labels.get(k) == Some(v)), "{wanted:?} vs {:?}", pod.labels);
    assert!(anti.preferred_during_scheduling_ignored_during_execution.iter().flatten().all(|t| t.pod_affinity_term.namespaces.is_none()));
}

#[test]
fn the_ha_disruption_budget_selects_the_pods_and_lets_one_of_three_go() {
    let m = manifests_in(HA);
    let budget = m.budget.clone().expect("PodDisruptionBudget");
    assert_eq!(budget.metadata.namespace, m.deployment.metadata.namespace);
    let spec = budget.spec.expect("budget spec");
    let selector = spec.selector.expect("selector");
    assert!(selector.match_expressions.is_none());
    let wanted = selector.match_labels.unwrap_or_default();
    let pod = check_pod(&m);
    assert!(!wanted.is_empty() && wanted.iter().all(|(k, v)| pod.labels.get(k) == Some(v)), "{wanted:?} vs {:?}", pod.labels);
    let replicas = m.deployment.spec.and_then(|s| s.replicas).expect("replicas");
    let allowed = match (spec.max_unavailable, spec.min_available) {
        (Some(IntOrString::Int(n)), None) => n,
        (None, Some(IntOrString::Int(n))) => replicas - n,
        other => panic!("one of maxUnavailable and minAvailable, as a number: {other:?}"),
    };
    assert_eq!(allowed, 1, "one replica at a time");
    assert_eq!(spec.unhealthy_pod_eviction_policy.as_deref(), Some("AlwaysAllow"), "an unready replica must not block a drain");
}

#[test]
fn the_ha_configuration_is_the_single_one_with_the_store_in_postgres_and_validates() {
    let (ha, single) = (embedded_config(&manifests_in(HA).config), embedded_config(&manifests().config));
    let tmp = tempfile::tempdir().expect("temp dir");
    let file = tmp.path().join("certvigil.yaml");
    std::fs::write(&file, &ha).expect("write");
    // Its secrets are files the pod mounts: checked there, the file alone here.
    let out = certvigil(&["-c", file.to_str().expect("utf-8"), "config", "validate", "--offline"], tmp.path());
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    let mut a: serde_json::Value = serde_saphyr::from_str(&ha).expect("yaml");
    let mut b: serde_json::Value = serde_saphyr::from_str(&single).expect("yaml");
    let store = a.as_object_mut().and_then(|o| o.remove("store")).expect("store");
    b.as_object_mut().and_then(|o| o.remove("store")).expect("store");
    assert_eq!(first_difference(&a, &b, ""), None, "only the store differs from packaging/kubernetes/configmap.yaml");

    // The URL holds no password (the configuration refuses one, but not in every form it could
    // take) and asks for TLS.
    let url = store["url"].as_str().expect("store.url");
    let rest = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://")).expect("a postgres:// URL");
    let (authority, query) = (rest.split(['/', '?']).next().unwrap_or_default(), rest.split_once('?').map(|q| q.1).unwrap_or_default());
    let user_info = authority.rsplit_once('@').map(|u| u.0).expect("a user");
    assert!(!user_info.contains(':'), "a password in {url}");
    let params: Vec<&str> = query.split('&').collect();
    assert!(params.iter().all(|p| !p.to_ascii_lowercase().starts_with("password=")), "a password in {url}");
    assert!(params.contains(&"sslmode=require"), "{url}: TLS");
    assert!(store["password"].as_str().is_some_and(|p| p.starts_with("${file:/")), "{store}");
    assert!(store["ca_file"].as_str().is_some_and(|p| p.starts_with('/')), "{store}");
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
    // Its secrets are files the pod mounts: checked there, the file alone here.
    let out = certvigil(&["-c", file.to_str().expect("utf-8"), "config", "validate", "--offline"], tmp.path());
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

/// The status and body of `GET path` on 127.0.0.1:`port`.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, text.split_once("\r\n\r\n").map(|b| b.1.to_string()).unwrap_or_default()))
}

/// What the probes of a daemon answered.
struct Probed {
    healthz: Option<u16>,
    readyz: Option<u16>,
    /// The last /readyz body.
    readyz_body: String,
    /// `GET /api/v1/certificates` without the token.
    unauthenticated_api: Option<u16>,
    stderr: String,
}

/// Runs the daemon on `config` with `env` until /healthz and /readyz answer 200 and `done`
/// accepts the /readyz body (or 60 s pass, or it exits), then kills it.
fn probe_daemon(config: &Path, port: u16, home: &Path, env: &[(&str, &Path)], done: impl Fn(&str) -> bool) -> Probed {
    let mut child = Command::new(CERTVIGIL)
        .args(["-c", config.to_str().expect("utf-8"), "run"])
        .env_remove("KUBECONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("STATE_DIRECTORY")
        .env("HOME", home)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the daemon");
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut healthz, mut readyz, mut readyz_body) = (None, None, String::new());
    while Instant::now() < deadline {
        healthz = http_get(port, "/healthz").map(|r| r.0);
        let r = http_get(port, "/readyz");
        readyz = r.as_ref().map(|r| r.0);
        readyz_body = r.map(|r| r.1).unwrap_or_default();
        if (healthz, readyz) == (Some(200), Some(200)) && done(&readyz_body) || child.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let unauthenticated_api = http_get(port, "/api/v1/certificates").map(|r| r.0);
    let _ = child.kill();
    let out = child.wait_with_output().expect("daemon output");
    Probed { healthz, readyz, readyz_body, unauthenticated_api, stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

#[test]
fn the_probe_paths_answer_200_from_the_daemon_run_with_the_shipped_configuration() {
    let m = manifests();
    let yaml = embedded_config(&m.config);
    let tmp = tempfile::tempdir().expect("temp dir");
    let api = ApiServer::start();
    std::fs::write(tmp.path().join("kubeconfig.yaml"), api.kubeconfig(TOKEN)).expect("write");
    std::fs::write(tmp.path().join("token"), "probe-test-token\n").expect("write");
    let port = free_port();
    let local = yaml
        .replace("/var/lib/certvigil/certvigil.db", &tmp.path().join("state.db").display().to_string())
        .replace("/etc/certvigil/api-token/token", &tmp.path().join("token").display().to_string())
        .replace("0.0.0.0:9797", &format!("127.0.0.1:{port}"))
        .replace("kind: kubernetes\n", &format!("kind: kubernetes\n    kubeconfig: {}\n", tmp.path().join("kubeconfig.yaml").display()));
    let f = tmp.path().join("certvigil.yaml");
    std::fs::write(&f, &local).expect("write");
    let p = probe_daemon(&f, port, tmp.path(), &[], |_| true);
    assert_eq!((p.healthz, p.readyz), (Some(200), Some(200)), "probes\n{}", p.stderr);
    assert_eq!(p.unauthenticated_api, Some(401), "the API needs the token");
}

/// A replica of the three-replica variant, with its configuration as shipped but for the
/// addresses: the database is one of the test run's PostgreSQL cluster (no TLS there, so
/// `sslmode=disable`), the Secrets' files and the state directory are in a temporary directory
/// as the Deployment mounts them. It leads (it is alone), its probes answer, /readyz names it
/// by its host name (no daemon.node_name), the lease row in the database holds that name, and
/// no SQLite store appears in the state directory the Deployment sets.
#[test]
fn a_replica_run_with_the_ha_configuration_on_postgres_leads_and_answers_its_probes() {
    let m = manifests_in(HA);
    let yaml = embedded_config(&m.config);
    let pod = check_pod(&m);
    let shipped_url = pod.settings["store"]["url"].as_str().expect("store.url").to_string();
    let url = format!("{}?sslmode=disable", common::postgres::fresh_database("k8s_ha"));
    let tmp = tempfile::tempdir().expect("temp dir");
    let db = tmp.path().join("db");
    std::fs::create_dir(&db).expect("mkdir");
    // The Secret certvigil-db as the pod sees it (the cluster's authentication is `trust`).
    let ca = rcgen::generate_simple_self_signed(vec!["postgres.certvigil.svc".to_string()]).expect("cert");
    std::fs::write(db.join("password"), "not-used-by-trust\n").expect("write");
    std::fs::write(db.join("ca.crt"), ca.cert.pem()).expect("write");
    let api = ApiServer::start();
    std::fs::write(tmp.path().join("kubeconfig.yaml"), api.kubeconfig(TOKEN)).expect("write");
    std::fs::write(tmp.path().join("token"), "probe-test-token\n").expect("write");
    let port = free_port();
    let local = yaml
        .replace(&shipped_url, &url)
        .replace("/etc/certvigil/db/", &format!("{}/", db.display()))
        .replace("/etc/certvigil/api-token/token", &tmp.path().join("token").display().to_string())
        .replace("0.0.0.0:9797", &format!("127.0.0.1:{port}"))
        .replace("kind: kubernetes\n", &format!("kind: kubernetes\n    kubeconfig: {}\n", tmp.path().join("kubeconfig.yaml").display()));
    assert!(!local.contains("/etc/certvigil") && !local.contains(&shipped_url), "{local}");
    let f = tmp.path().join("certvigil.yaml");
    std::fs::write(&f, &local).expect("write");
    let state = tmp.path().join("state");
    std::fs::create_dir(&state).expect("mkdir");
    assert_eq!(pod.env("STATE_DIRECTORY").as_deref(), Some("/var/lib/certvigil"));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("host name").trim().to_string();
    let cluster = |body: &str| serde_json::from_str::<serde_json::Value>(body).map(|v| v["cluster"].clone()).unwrap_or_default();
    let p = probe_daemon(&f, port, tmp.path(), &[("STATE_DIRECTORY", &state)], |body| cluster(body)["is_leader"] == true);
    assert_eq!((p.healthz, p.readyz), (Some(200), Some(200)), "probes\n{}", p.stderr);
    let c = cluster(&p.readyz_body);
    assert_eq!(c["is_leader"], true, "{}\n{}", p.readyz_body, p.stderr);
    assert_eq!((&c["node"], &c["leader"]), (&serde_json::json!(host), &serde_json::json!(host)), "named by its host name: {c}");
    assert_eq!(p.unauthenticated_api, Some(401), "the API needs the token");
    // Nothing of the store beside it: the store is the database.
    let files: Vec<_> = std::fs::read_dir(&state).expect("state dir").map(|e| e.expect("entry").file_name()).collect();
    assert!(files.iter().all(|f| !f.to_string_lossy().starts_with("certvigil.db")), "{files:?}");
    assert_eq!(common::postgres::texts(&url.replace("?sslmode=disable", ""), "SELECT holder FROM leases WHERE name = 'leader'"), [host]);
}
