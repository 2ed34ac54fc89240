//! The ACME Renewal Information watch (RFC 9773) over inventoried certificates, through the
//! binary (`certvigil ari`, `plan`) against a loopback CA that serves renewalInfo: RFC 9773
//! §4.2's example answer (an explanationURL — on loopback here — and `Retry-After: 21600`) with windows the test moves.
//! Pebble 2.4 has no ARI endpoint, so this small server is the CA; it follows the RFC's shape
//! exactly (a directory with `renewalInfo`, `GET <renewalInfo>/<certID>`, 404 for a certificate
//! it does not know).

#![allow(clippy::unwrap_used)]

use crate::common::http::{HttpServer, Response};
use crate::common::{DAY, Issued, KeyKind, NOW, Sandbox, Spec, fixtures, issue};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The CA: per certificate identifier, (start, end, explanationURL, Retry-After).
type Windows = Arc<Mutex<HashMap<String, (i64, i64, Option<&'static str>, &'static str)>>>;

fn rfc3339(t: i64) -> String {
    jiff::Timestamp::from_second(t).unwrap().to_string()
}

fn ca_server(windows: Windows) -> HttpServer {
    let base: Arc<Mutex<String>> = Arc::default();
    let b = Arc::clone(&base);
    let server = HttpServer::start(move |req| {
        if req.path() == "/dir" {
            return Response::json(200, &json!({"newNonce": "x", "renewalInfo": format!("{}/renewal-info", b.lock().unwrap())}));
        }
        let Some(id) = req.path().strip_prefix("/renewal-info/") else { return Response::new(404, "") };
        match windows.lock().unwrap().get(id) {
            Some(&(start, end, explanation, retry)) => {
                let mut body = json!({"suggestedWindow": {"start": rfc3339(start), "end": rfc3339(end)}});
                if let Some(u) = explanation {
                    body["explanationURL"] = Value::String(u.into());
                }
                Response::json(200, &body).header("Retry-After", retry)
            }
            None => Response::json(404, &json!({"type": "urn:ietf:params:acme:error:malformed"})),
        }
    });
    *base.lock().unwrap() = format!("http://127.0.0.1:{}", server.port);
    server
}

/// RFC 9773 §4.1: base64url(AKI keyIdentifier) "." base64url(serial), computed here from the
/// test's own bytes.
fn ari_id(aki_hex: &str, serial: &[u8]) -> String {
    use base64ct::{Base64UrlUnpadded, Encoding};
    format!("{}.{}", Base64UrlUnpadded::encode_string(&hex::decode(aki_hex).unwrap()), Base64UrlUnpadded::encode_string(serial))
}

fn leaf(name: &'static str, serial: &'static [u8], issuer: &Issued) -> Issued {
    issue(Spec::leaf(name, name, serial, -10 * DAY, 80 * DAY, KeyKind::P256), Some(issuer))
}

fn ari(sb: &Sandbox, at: i64) -> Value {
    sb.run_at(at, &["ari", "-o", "json"]).expect_code(0).json()
}

/// The watch row of `name` in an `ari -o json` answer.
fn row<'a>(v: &'a Value, name: &str) -> &'a Value {
    let all = v["certificates"].as_array().unwrap();
    &all.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("{name} not watched: {v:#}"))["watch"]
}

fn early(sb: &Sandbox, at: i64) -> Vec<(String, String, String)> {
    let plan = sb.run_at(at, &["plan", "-o", "json"]).expect_code(0).json();
    plan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "ari-early-renewal")
        .map(|f| (f["name"].as_str().unwrap().into(), f["severity"].as_str().unwrap().into(), f["reason"].as_str().unwrap().into()))
        .collect()
}

#[test]
fn windows_that_move_earlier_or_pass_are_findings_and_polls_are_bounded() {
    let f = fixtures();
    let root_aki = f.root.cert.ski.clone().expect("the fixture root has a key identifier");
    let (a, b, other) = (
        leaf("a.example.test", &[0x51, 0x01], &f.root),
        leaf("b.example.test", &[0x51, 0x02], &f.root),
        leaf("c.example.test", &[0x51, 0x03], &f.inter),
    );
    assert_eq!(a.cert.aki.as_deref(), Some(root_aki.as_str()));
    let (id_a, id_b) = (ari_id(&root_aki, &[0x51, 0x01]), ari_id(&root_aki, &[0x51, 0x02]));
    let windows: Windows = Arc::default();
    // The normal schedule: the windows the CA suggests at first, a month out.
    windows.lock().unwrap().insert(id_a.clone(), (NOW + 50 * DAY, NOW + 52 * DAY, None, "21600"));
    windows.lock().unwrap().insert(id_b.clone(), (NOW + 50 * DAY, NOW + 52 * DAY, None, "172800"));
    let ca = ca_server(Arc::clone(&windows));

    let sb = Sandbox::new();
    for c in [&a, &b, &other] {
        sb.write(&format!("certs/{}.pem", c.cert.name), &c.cert.pem);
    }
    // The root's key identifier with colons and in capitals: as an admin copies it from openssl.
    let colons: Vec<String> = root_aki.as_bytes().chunks(2).map(|p| String::from_utf8_lossy(p).to_uppercase()).collect();
    sb.config(&format!(
        "sources:\n  - {{name: web, kind: files, paths: [certs]}}\nrevocation:\n  ari_watch:\n    - directory: {}\n      issuers: ['{}']\n",
        ca.url("dir"),
        colons.join(":")
    ));
    sb.run_at(NOW, &["scan", "--no-progress"]).expect_code(0);

    // First pass: both certificates of the watched issuer are asked, the other issuer's is not.
    let v = ari(&sb, NOW);
    assert_eq!((v["report"]["asked"].as_u64(), v["report"]["answered"].as_u64()), (Some(2), Some(2)), "{v:#}");
    assert_eq!(ca.hits(&format!("/renewal-info/{id_a}")), 1);
    assert_eq!(ca.hits(&format!("/renewal-info/{id_b}")), 1);
    assert!(!ca.requests().iter().any(|r| r.path().contains(&ari_id(other.cert.aki.as_deref().unwrap(), &[0x51, 0x03]))));
    assert_eq!(row(&v, "a.example.test")["window"], json!([NOW + 50 * DAY, NOW + 52 * DAY]));
    // Retry-After: 6 h is raised to the 12 h floor (twice a day at most); 2 days is cut to one.
    assert_eq!(row(&v, "a.example.test")["next_poll"], NOW + 12 * 3600);
    assert_eq!(row(&v, "b.example.test")["next_poll"], NOW + DAY);
    assert!(early(&sb, NOW).is_empty(), "a steady window is no finding");

    // An hour later nothing is due: nobody is asked.
    let v = ari(&sb, NOW + 3600);
    assert_eq!(v["report"]["asked"], 0, "{v:#}");
    assert_eq!(ca.hits(&format!("/renewal-info/{id_a}")), 1);

    // The CA moves a's window earlier, without explanation: a warning, naming both windows.
    windows.lock().unwrap().insert(id_a.clone(), (NOW + 2 * DAY, NOW + 3 * DAY, None, "21600"));
    let t1 = NOW + 13 * 3600;
    let v = ari(&sb, t1);
    assert_eq!((v["report"]["asked"].as_u64(), v["report"]["moved_earlier"].as_u64()), (Some(1), Some(1)), "{v:#}");
    let found = early(&sb, t1);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].0.as_str(), found[0].1.as_str()), ("a.example.test", "warning"));
    assert!(
        found[0].2.contains("moved the suggested renewal window earlier") && found[0].2.contains(&rfc3339(NOW + 50 * DAY)),
        "{}",
        found[0].2
    );

    // b's window goes into the past with the RFC's explanationURL: critical, with the link.
    windows.lock().unwrap().insert(id_b.clone(), (NOW - DAY, NOW, Some("https://127.0.0.1/docs/ari"), "21600"));
    let t2 = NOW + DAY + 60;
    let v = ari(&sb, t2);
    assert_eq!(v["report"]["passed"], 1, "{v:#}");
    let found = early(&sb, t2);
    let b_found = found.iter().find(|x| x.0 == "b.example.test").unwrap();
    assert_eq!(b_found.1, "critical");
    assert!(b_found.2.contains("has passed") && b_found.2.contains("https://127.0.0.1/docs/ari"), "{}", b_found.2);
    // a stays flagged while its window stays early (the first window is the yardstick).
    assert!(found.iter().any(|x| x.0 == "a.example.test"), "{found:?}");

    // The CA forgets a certificate (404): the error is recorded, the window kept, asked again in
    // 12 h.
    windows.lock().unwrap().remove(&id_a);
    let t3 = t2 + 13 * 3600;
    let v = ari(&sb, t3);
    let ra = row(&v, "a.example.test");
    assert!(ra["error"].as_str().unwrap().contains("404"), "{ra:#}");
    assert_eq!(ra["window"], json!([NOW + 2 * DAY, NOW + 3 * DAY]));
    assert_eq!(ra["next_poll"], t3 + 12 * 3600);
}

#[test]
fn a_pass_is_bounded_and_a_ca_without_ari_is_named_once() {
    let f = fixtures();
    let root_aki = f.root.cert.ski.clone().unwrap();
    let leaves: Vec<Issued> = [&[0x52, 0x01][..], &[0x52, 0x02], &[0x52, 0x03]]
        .iter()
        .zip(["p1.example.test", "p2.example.test", "p3.example.test"])
        .map(|(s, n)| issue(Spec::leaf(n, n, Box::leak(s.to_vec().into_boxed_slice()), -DAY, 60 * DAY, KeyKind::P256), Some(&f.root)))
        .collect();
    let windows: Windows = Arc::default();
    for s in [0x01u8, 0x02, 0x03] {
        windows.lock().unwrap().insert(ari_id(&root_aki, &[0x52, s]), (NOW + 30 * DAY, NOW + 31 * DAY, None, "21600"));
    }
    let ca = ca_server(windows);
    // A CA whose directory has no renewalInfo.
    let plain = HttpServer::start(|_| Response::json(200, &json!({"newNonce": "x"})));
    let sb = Sandbox::new();
    for c in &leaves {
        sb.write(&format!("certs/{}.pem", c.cert.name), &c.cert.pem);
    }
    sb.config(&format!(
        "sources:\n  - {{name: web, kind: files, paths: [certs]}}\nrevocation:\n  ari_per_pass: 2\n  ari_watch:\n    - {{directory: '{}', issuers: ['{root_aki}']}}\n",
        ca.url("dir")
    ));
    sb.run_at(NOW, &["scan", "--no-progress"]).expect_code(0);
    assert_eq!(ari(&sb, NOW)["report"]["asked"], 2, "ari_per_pass bounds a pass");
    assert_eq!(ari(&sb, NOW + 60)["report"]["asked"], 1, "the one left waits for the next pass");
    assert_eq!(ari(&sb, NOW + 120)["report"]["asked"], 0);

    sb.config(&format!(
        "sources:\n  - {{name: web, kind: files, paths: [certs]}}\nrevocation:\n  ari_watch:\n    - {{directory: '{}', issuers: ['{root_aki}']}}\n",
        plain.url("dir")
    ));
    let later = NOW + DAY;
    let out = sb.run_at(later, &["ari"]).expect_code(0).stdout;
    assert!(out.contains("the directory offers no renewalInfo"), "{out}");
    assert_eq!(plain.hits("/dir"), 1, "one directory request for the whole pass");
    // https only, except to a loopback address.
    sb.config("revocation:\n  ari_watch:\n    - {directory: 'http://192.0.2.1/dir', issuers: ['00ff']}\n");
    let r = sb.run_at(later, &["config", "validate"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("revocation.ari_watch[0].directory") && r.stderr.contains("https only"), "{}", r.stderr);
}

/// The same watch inside the daemon: its revocation job polls the watched CA with the pass
/// (the job's detail carries the report, its summary the counts), a second pass inside 12 h asks
/// nothing, and the window it stored is what `ari` and `plan` read.
#[test]
fn the_daemons_revocation_job_polls_the_watched_ca_with_its_pass() {
    use crate::common::daemon::Daemon;
    let f = fixtures();
    let root_aki = f.root.cert.ski.clone().expect("key identifier");
    let a = leaf("d.example.test", &[0x53, 0x01], &f.root);
    let id = ari_id(&root_aki, &[0x53, 0x01]);
    let windows: Windows = Arc::default();
    // The CA's first answer: the normal schedule.
    windows.lock().unwrap().insert(id.clone(), (NOW + 50 * DAY, NOW + 52 * DAY, None, "21600"));
    let ca = ca_server(Arc::clone(&windows));
    let sb = Sandbox::new();
    sb.write("certs/d.pem", &a.cert.pem);
    let jobs = ["scan", "revocation"]
        .iter()
        .map(|k| format!("  - {{name: {k}, kind: {k}, schedule: '@yearly', catch_up: skip}}\n"))
        .collect::<String>();
    sb.config(&format!(
        "sources:\n  - {{name: web, kind: files, paths: [certs]}}\nrevocation:\n  ari_watch:\n    - {{directory: '{}', issuers: ['{root_aki}']}}\n\
         daemon:\n  token: \"${{env:CV_TOKEN}}\"\n  shutdown_timeout: 20s\njobs:\n{jobs}",
        ca.url("dir")
    ));
    let mut cmd = sb.command_at(NOW);
    cmd.current_dir(sb.path("."));
    const TOKEN: &str = "ari-watch-daemon-token-0123456789";
    let d = Daemon::start(&sb, cmd, TOKEN);
    let done = |name: &str| {
        let run = d.run_job(name, std::time::Duration::from_secs(60));
        assert_eq!(run["status"], "ok", "{name}: {run:#}\n{}", d.log_text());
        run
    };
    done("scan");
    let run = done("revocation");
    assert_eq!(ca.hits(&format!("/renewal-info/{id}")), 1, "{run:#}");
    assert!(run["summary"].as_str().unwrap_or("").contains("ARI: 1 certificates asked, 1 answered"), "{run:#}");
    assert_eq!(run["detail"]["ari"]["answered"], 1, "{run:#}");
    // The certificate's page shows the window the CA suggests and where it was asked.
    let page = crate::common::http::request(d.port, "GET", &format!("/ui/certificates/{}", a.cert.fingerprint), Some(TOKEN));
    assert_eq!(page.status, 200, "{}", page.head);
    assert!(
        page.body.contains("Renewal information (ARI)") && page.body.contains(&rfc3339(NOW + 50 * DAY).replace(".0", "")),
        "{}",
        page.body
    );
    assert!(page.body.contains(&ca.url("dir")) && !page.body.contains("moved earlier"), "{}", page.body);

    // The CA moves the window earlier; the next pass minutes later is inside the 12 h floor.
    windows.lock().unwrap().insert(id.clone(), (NOW + 2 * DAY, NOW + 3 * DAY, None, "21600"));
    let run = done("revocation");
    assert_eq!(ca.hits(&format!("/renewal-info/{id}")), 1, "polled again within 12 h: {run:#}");
    assert_eq!(run["detail"]["ari"]["asked"], 0, "{run:#}");
    drop(d);

    // What the daemon stored is what the commands read: the first window, polled at NOW.
    let v = ari(&sb, NOW + 60);
    assert_eq!(row(&v, "d.example.test")["window"], json!([NOW + 50 * DAY, NOW + 52 * DAY]), "{v:#}");
    // Half a day on, `ari` asks and sees the move: the finding appears.
    ari(&sb, NOW + 13 * 3600);
    let found = early(&sb, NOW + 13 * 3600);
    assert_eq!(found.len(), 1, "{found:?}");
}
