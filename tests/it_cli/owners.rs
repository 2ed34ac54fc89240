//! Certificate owners through the real binary: `owners:` rules by location, DNS name and tag;
//! `list --owner NAME` and `--owner none` (the orphans) in every output format, `show`, and the
//! daemon's `GET /api/v1/certificates?owner=` and `/api/v1/certificates/{fingerprint}`.

use crate::common;

use common::daemon::Daemon;
use common::{NOW, Sandbox, sha256_hex};
use serde_json::{Value, json};

const TOKEN: &str = "owners-token-0123456789abcdef";

/// A self-signed certificate for these DNS names (the first also its CN): PEM and fingerprint.
fn cert(names: &[&str]) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("params");
    params.distinguished_name.push(rcgen::DnType::CommonName, names[0]);
    let c = params.self_signed(&key).expect("certificate");
    (c.pem(), sha256_hex(c.der()))
}

struct Inventory {
    sb: Sandbox,
    /// payments by location, payments by DNS name, web by tag, and two without an owner.
    by_path: String,
    by_name: String,
    by_tag: String,
    orphans: Vec<String>,
}

fn inventory() -> Inventory {
    let sb = Sandbox::new();
    let (p1, by_path) = cert(&["ledger.internal.test"]);
    let (p2, by_name) = cert(&["other.internal.test", "API.Pay.Corp.Example"]);
    let (w, by_tag) = cert(&["www.internal.test"]);
    let (o1, orphan1) = cert(&["a.pay.corp.example.test"]);
    let (o2, orphan2) = cert(&["b.internal.test"]);
    sb.write("certs/payments/ledger.pem", &p1);
    sb.write("certs/other/api.pem", &p2);
    sb.write("web/www.pem", &w);
    sb.write("certs/other/a.pem", &o1);
    sb.write("certs/b.pem", &o2);
    sb.config(&format!(
        "sources:\n  - {{name: disk, kind: files, paths: [certs]}}\n  - {{name: webroot, kind: files, paths: [web], tags: [web]}}\n\
         owners:\n  teams:\n    - {{name: payments, contact: payments-oncall@corp.example}}\n  rules:\n    \
         - {{owner: payments, match: {{path: ['{}/certs/payments/**']}}}}\n    \
         - {{owner: payments, match: {{san: ['*.pay.corp.example'], source: [disk]}}}}\n    \
         - {{owner: web, match: {{tag: [web]}}}}\n\
         daemon:\n  token: \"${{env:CV_TOKEN}}\"\njobs:\n  - {{name: evaluate, kind: evaluate, schedule: '@yearly', catch_up: skip}}\n",
        sb.dir.path().display()
    ));
    sb.run(&["scan"]).expect_code(0);
    let mut orphans = vec![orphan1, orphan2];
    orphans.sort();
    Inventory { sb, by_path, by_name, by_tag, orphans }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The fingerprints of `list -o json` with these arguments.
fn listed(sb: &Sandbox, args: &[&str]) -> Vec<String> {
    let mut all = vec!["list", "-o", "json"];
    all.extend(args);
    let v = sb.run(&all).expect_code(0).json();
    sorted(v.as_array().expect("array").iter().map(|c| c["fingerprint"].as_str().expect("fp").to_string()).collect())
}

#[test]
fn list_by_owner_and_the_orphans() {
    let inv = inventory();
    let sb = &inv.sb;
    assert_eq!(listed(sb, &["--owner", "none"]), inv.orphans);
    assert_eq!(listed(sb, &["--owner", "payments"]), sorted(vec![inv.by_path.clone(), inv.by_name.clone()]));
    assert_eq!(listed(sb, &["--owner", "web"]), std::slice::from_ref(&inv.by_tag));
    let mut web_and_orphans = inv.orphans.clone();
    web_and_orphans.push(inv.by_tag.clone());
    assert_eq!(listed(sb, &["--owner", "web", "--owner", "none"]), sorted(web_and_orphans));
    assert!(listed(sb, &["--owner", "nobody-by-that-name"]).is_empty());
    // With the other filters: and.
    assert_eq!(listed(sb, &["--owner", "payments", "--source", "disk"]).len(), 2);
    assert!(listed(sb, &["--owner", "payments", "--source", "webroot"]).is_empty());

    // JSON: the owner object; CSV: owner and contact columns; the table: an OWNER column.
    let v = sb.run(&["list", "-o", "json"]).expect_code(0).json();
    let of = |fp: &str| v.as_array().expect("array").iter().find(|c| c["fingerprint"] == fp).expect("listed")["owner"].clone();
    assert_eq!(
        of(&inv.by_path),
        json!({"name": "payments", "contact": "payments-oncall@corp.example", "origin": {"kind": "config", "rule": 1}})
    );
    assert_eq!(of(&inv.by_name)["origin"], json!({"kind": "config", "rule": 2}));
    assert_eq!(of(&inv.by_tag), json!({"name": "web", "contact": null, "origin": {"kind": "config", "rule": 3}}));
    assert!(of(&inv.orphans[0]).is_null());
    let csv = sb.run(&["list", "-o", "csv", "--owner", "payments"]).expect_code(0).stdout;
    let mut lines = csv.lines();
    assert!(lines.next().expect("header").ends_with(",tags,owner,owner_contact"), "{csv}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(rows.iter().all(|r| r.ends_with(",payments,payments-oncall@corp.example")), "{csv}");
    let table = sb.run(&["list", "--owner", "web"]).expect_code(0).stdout;
    let mut lines = table.lines();
    let header = lines.next().expect("header");
    let col = header.find("OWNER").expect("an OWNER column");
    assert_eq!(lines.next().expect("one row").get(col..col + 4), Some("web "), "{table}");

    // `show`: the owner, its contact and where it comes from.
    let shown = sb.run(&["show", &inv.by_name]).expect_code(0).stdout;
    assert!(shown.contains("  Owner                 payments <payments-oncall@corp.example> (from owners rule 2)\n"), "{shown}");
    let shown = sb.run(&["show", &inv.orphans[0]]).expect_code(0).stdout;
    assert!(shown.contains("  Owner                 -\n"), "{shown}");
}

#[test]
fn the_api_filters_by_owner_and_shows_each_certificates_owner() {
    let inv = inventory();
    let d = Daemon::start(&inv.sb, inv.sb.command_at(NOW), TOKEN);
    let get = |path: &str| -> Value {
        let (code, body) = d.get(path, Some(TOKEN));
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("JSON")
    };
    let fingerprints = |v: &Value| -> Vec<String> {
        sorted(v["items"].as_array().expect("items").iter().map(|c| c["fingerprint"].as_str().expect("fp").to_string()).collect())
    };
    let all = get("/api/v1/certificates");
    assert_eq!(all["total"], 5, "{all:#}");
    // Every item says its owner, or null.
    for item in all["items"].as_array().expect("items") {
        let fp = item["fingerprint"].as_str().expect("fp");
        let name = item["owner"]["name"].as_str();
        let want = if fp == inv.by_tag {
            Some("web")
        } else if fp == inv.by_path || fp == inv.by_name {
            Some("payments")
        } else {
            None
        };
        assert_eq!(name, want, "{item:#}");
    }
    let payments = get("/api/v1/certificates?owner=payments");
    assert_eq!((payments["total"].as_i64(), fingerprints(&payments)), (Some(2), sorted(vec![inv.by_path.clone(), inv.by_name.clone()])));
    let orphans = get("/api/v1/certificates?owner=none");
    assert_eq!(fingerprints(&orphans), inv.orphans);
    assert!(orphans["items"].as_array().expect("items").iter().all(|c| c["owner"].is_null()));
    let both = get("/api/v1/certificates?owner=web&owner=none&limit=2");
    assert_eq!((both["total"].as_i64(), both["items"].as_array().map(Vec::len)), (Some(3), Some(2)));
    assert_eq!(get("/api/v1/certificates?owner=payments&source=webroot")["total"], 0);
    let one = get(&format!("/api/v1/certificates/{}", &inv.by_path[..16]));
    assert_eq!(
        one["owner"],
        json!({"name": "payments", "contact": "payments-oncall@corp.example", "origin": {"kind": "config", "rule": 1}})
    );
    assert!(get(&format!("/api/v1/certificates/{}", inv.orphans[1]))["owner"].is_null());
}
