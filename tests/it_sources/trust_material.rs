//! Signing trust material followed over scans through the real `certvigil` binary: Sigstore's
//! real TUF roots (tests/data/tuf, from sigstore/root-signing) in a files source and in a
//! ConfigMap of the Kubernetes fixture API server, verified as a chain of versions, a tampered
//! root and a rolled-back one as findings, and a cosign public key rotated in its Secret listed
//! as a new key beside the retired one.

use crate::common;
use crate::kube;

use common::{NOW, RUN_LIMIT, Run, Sandbox, run_with_timeout, sha256_hex};
use kube::{ApiServer, TOKEN};
use serde_json::Value;

fn real_root(version: u32) -> String {
    std::fs::read_to_string(format!("{}/tests/data/tuf/{version}.root.json", env!("CARGO_MANIFEST_DIR"))).expect("stored root")
}

/// v14 with one byte of `signed` changed (its expiry a year later): every signature fails.
fn tampered_v14() -> String {
    let forged = real_root(14).replacen("2026-06-22T13:27:01Z", "2027-06-22T13:27:01Z", 1);
    assert_ne!(forged, real_root(14), "the stored v14 holds the expiry this test changes");
    forged
}

fn run(sb: &Sandbox, args: &[&str]) -> Run {
    let mut cmd = sb.command_at(NOW);
    cmd.env_remove("KUBECONFIG").env("HOME", sb.dir.path()).args(args);
    run_with_timeout(cmd, RUN_LIMIT)
}

/// The trust-root key of `location`: its chain verdict and the trust-root signature problems.
fn root_state(sb: &Sandbox, location: &str) -> (Value, Vec<String>) {
    let keys = run(sb, &["keys", "-o", "json"]).expect_code(0).json();
    let k = keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["location"] == location)
        .unwrap_or_else(|| panic!("no key at {location}: {keys:#}"))
        .clone();
    let problems = k["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| format!("{}/{}", p["kind"].as_str().unwrap_or(""), p["severity"].as_str().unwrap_or("")))
        .filter(|p| !p.starts_with("trust-root-expir"))
        .collect();
    (k["attributes"].clone(), problems)
}

/// The finding kinds `plan` raises about the key object at `location`.
fn findings_about(sb: &Sandbox, location: &str) -> Vec<String> {
    let plan = run(sb, &["plan", "-o", "json"]).expect_code(0).json();
    let mut kinds: Vec<String> = plan["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("plan: {plan:#}"))
        .iter()
        .filter(|f| f["subject"].as_str().is_some_and(|s| s.ends_with(location)))
        .map(|f| f["kind"].as_str().unwrap_or("").to_string())
        .filter(|k| !k.starts_with("trust-root-expir"))
        .collect();
    kinds.sort();
    kinds
}

fn chain(attrs: &Value) -> (bool, &str, Option<i64>, bool) {
    (
        attrs["verified"].as_bool().unwrap_or(false),
        attrs["chain"].as_str().unwrap_or(""),
        attrs["chain_from"].as_i64(),
        attrs["trusted"] == true,
    )
}

#[test]
fn a_root_json_in_files_is_verified_as_a_chain_and_tampering_gaps_and_rollbacks_are_findings() {
    let sb = Sandbox::new();
    sb.config("sources:\n  - name: disk\n    kind: files\n    paths: [sigstore]\n");
    let file = sb.write("sigstore/root.json", real_root(12));
    let location = file.to_string_lossy().into_owned();
    let scan = |sb: &Sandbox| run(sb, &["scan", "-o", "json"]).expect_code(0).json();

    // v12 alone: verified against its own keys, the first root seen here.
    scan(&sb);
    let (attrs, problems) = root_state(&sb, &location);
    assert_eq!(chain(&attrs), (true, "first", None, true), "{attrs:#}");
    assert_eq!(attrs["version"], 12);
    assert!(problems.is_empty(), "{problems:?}");

    // v13: signed by a threshold of v12's root keys.
    sb.write("sigstore/root.json", real_root(13));
    scan(&sb);
    let (attrs, problems) = root_state(&sb, &location);
    assert_eq!(chain(&attrs), (true, "verified", Some(12), true), "{attrs:#}");
    assert!(problems.is_empty() && findings_about(&sb, &location).is_empty(), "{problems:?}");

    // A forged v14 (one byte of `signed` changed): no signature holds, by its keys or v13's.
    sb.write("sigstore/root.json", tampered_v14());
    scan(&sb);
    let (attrs, problems) = root_state(&sb, &location);
    assert_eq!(chain(&attrs), (false, "broken", Some(13), false), "{attrs:#}");
    assert_eq!(attrs["chain_valid_signatures"], 0);
    assert_eq!(problems, ["trust-root-unverified/critical", "trust-root-chain-broken/critical"]);
    assert_eq!(findings_about(&sb, &location), ["trust-root-chain-broken", "trust-root-unverified"]);

    // The genuine v14 follows from v13 (the forgery never became trusted): the findings end.
    sb.write("sigstore/root.json", real_root(14));
    scan(&sb);
    let (attrs, problems) = root_state(&sb, &location);
    assert_eq!(chain(&attrs), (true, "verified", Some(13), true), "{attrs:#}");
    assert!(problems.is_empty(), "{problems:?}");

    // Back to v13: a rollback, although v13 is validly signed.
    sb.write("sigstore/root.json", real_root(13));
    scan(&sb);
    let (attrs, problems) = root_state(&sb, &location);
    assert_eq!(chain(&attrs), (true, "rollback", Some(14), false), "{attrs:#}");
    assert_eq!(problems, ["trust-root-rollback/critical"]);
    assert_eq!(findings_about(&sb, &location), ["trust-root-rollback"]);

    // v14 → v15 is fine again; then a second place that jumps v5 → v7 without v6 anywhere
    // cannot be checked; once another file holds v6, a v8 there is verified step by step.
    sb.write("sigstore/root.json", real_root(15));
    sb.write("other/root.json", real_root(5));
    sb.config("sources:\n  - name: disk\n    kind: files\n    paths: [sigstore, other]\n");
    scan(&sb);
    assert_eq!(chain(&root_state(&sb, &location).0), (true, "verified", Some(14), true));
    let other = sb.path("other/root.json").to_string_lossy().into_owned();
    sb.write("other/root.json", real_root(7));
    scan(&sb);
    let (attrs, problems) = root_state(&sb, &other);
    assert_eq!(chain(&attrs), (true, "gap", Some(5), false), "{attrs:#}");
    assert_eq!(problems, ["trust-root-chain-broken/warning"]);
    let p = run(&sb, &["keys"]).expect_code(0).stdout;
    assert!(p.contains("chain not verifiable (v 5 → v 7)"), "{p}");
    // The repository's history files (`N.root.json`), read first, supply the versions between.
    sb.write("history/6.root.json", real_root(6));
    sb.write("history/7.root.json", real_root(7));
    sb.write("other/root.json", real_root(8));
    sb.config("sources:\n  - name: disk\n    kind: files\n    paths: [sigstore, history, other]\n");
    scan(&sb);
    let (attrs, problems) = root_state(&sb, &other);
    assert_eq!(chain(&attrs), (true, "verified", Some(5), true), "{attrs:#}");
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn a_root_chain_in_a_configmap_and_a_cosign_key_rotated_in_its_secret() {
    let api = ApiServer::start();
    let old = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("test fixture");
    let new = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("test fixture");
    let spki = |k: &rcgen::KeyPair| sha256_hex(&rcgen::PublicKeyData::subject_public_key_info(k));
    api.with(|s| {
        s.put_secret("sigstore", "cosign", "Opaque", &[("cosign.pub", old.public_key_pem().as_bytes())]);
        s.put_configmap("sigstore", "trust", &[("root.json", &real_root(13))]);
    });
    let sb = Sandbox::new();
    sb.write("kubeconfig.yaml", api.kubeconfig(TOKEN));
    sb.config("sources:\n  - name: k8s\n    kind: kubernetes\n    kubeconfig: kubeconfig.yaml\n");
    let root = "k8s://fixture/sigstore/configmaps/trust#root.json";
    let pubkey = "k8s://fixture/sigstore/secrets/cosign#cosign.pub";
    run(&sb, &["scan"]).expect_code(0);
    assert_eq!(chain(&root_state(&sb, root).0), (true, "first", None, true));

    // The next version and a rotated key arrive through the API.
    api.with(|s| {
        s.put_secret("sigstore", "cosign", "Opaque", &[("cosign.pub", new.public_key_pem().as_bytes())]);
        s.put_configmap("sigstore", "trust", &[("root.json", &real_root(14))]);
    });
    run(&sb, &["scan"]).expect_code(0);
    let (attrs, problems) = root_state(&sb, root);
    assert_eq!(chain(&attrs), (true, "verified", Some(13), true), "{attrs:#}");
    assert!(problems.is_empty(), "{problems:?}");
    let keys = run(&sb, &["keys", "-o", "json"]).expect_code(0).json();
    let current: Vec<&Value> = keys["keys"].as_array().expect("keys").iter().filter(|k| k["location"] == pubkey).collect();
    assert_eq!(current.len(), 1, "{keys:#}");
    assert_eq!(current[0]["spki_sha256"], spki(&new));
    let retired = keys["retired_keys"].as_array().expect("retired_keys");
    assert_eq!(retired.len(), 1, "{keys:#}");
    assert_eq!((retired[0]["location"].as_str(), retired[0]["spki_sha256"].as_str()), (Some(pubkey), Some(spki(&old).as_str())));
    assert_eq!((retired[0]["first_seen"].as_i64(), retired[0]["gone_since"].as_i64()), (Some(NOW), Some(NOW)));
    let text = run(&sb, &["keys"]).expect_code(0).stdout;
    assert!(text.contains(&format!("spki_sha256={}", spki(&old))) && text.contains("1 retired keys"), "{text}");

    // A tampered root in the ConfigMap is a finding, routed like any other.
    api.with(|s| s.put_configmap("sigstore", "trust", &[("root.json", &tampered_v14())]));
    run(&sb, &["scan"]).expect_code(0);
    assert_eq!(findings_about(&sb, root), ["trust-root-rollback", "trust-root-unverified"]);
}
