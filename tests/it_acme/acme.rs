//! `certvigil renew` against a real Pebble ACME server (Debian's `pebble` package, installed by
//! `tests/components/acme.sh`). Each test starts its own pebble-challtestsrv (a DNS server that
//! answers 127.0.0.1 for every name) and Pebble on ephemeral loopback ports, with Pebble's
//! HTTP-01 validation port set to the port of certvigil's built-in challenge listener. One test
//! has Pebble refuse a third of all nonces, to prove the client retries them; the others have it
//! refuse none, so that they test what they name.

use crate::acme_support;
use crate::common;

use acme_support::*;
use common::Sandbox;
use std::os::unix::fs::PermissionsExt;

#[test]
fn renew_issues_installs_reuses_the_account_and_keeps_previous_files() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    let port = pebble.http_port;
    sb.config(&pebble.managed("web.certvigil.test", port));
    let tls = sb.path("tls");

    // First run: nothing installed, so it is due.
    let run = renew(&sb, &[]).expect_code(0);
    assert!(run.stdout.contains("web: renewed (no certificate installed)"), "{}", run.stdout);

    // The fullchain verifies up to Pebble's root; cert/chain split it correctly.
    let root = pebble.root.to_string_lossy().into_owned();
    let v = openssl(&["verify", "-CAfile", &root, "-untrusted", "chain.pem", "cert.pem"], &tls);
    assert!(v.contains("cert.pem: OK"), "{v}");
    let full = String::from_utf8(read(&tls.join("fullchain.pem"))).expect("utf8");
    let cert = String::from_utf8(read(&tls.join("cert.pem"))).expect("utf8");
    let chain = String::from_utf8(read(&tls.join("chain.pem"))).expect("utf8");
    assert_eq!(full, format!("{cert}{chain}"));
    // The key is private and matches the certificate.
    let mode = |f: &str| std::fs::metadata(tls.join(f)).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode("key.pem"), 0o600);
    assert_eq!(mode("cert.pem"), 0o640);
    let cert_pub = openssl(&["x509", "-noout", "-pubkey", "-in", "cert.pem"], &tls);
    let key_pub = openssl(&["pkey", "-pubout", "-in", "key.pem"], &tls);
    assert_eq!(cert_pub, key_pub);
    let subject = openssl(&["x509", "-noout", "-ext", "subjectAltName", "-in", "cert.pem"], &tls);
    assert!(subject.contains("DNS:web.certvigil.test"), "{subject}");

    // One account, stored 0600.
    let accounts = account_files(&sb);
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert_eq!(std::fs::metadata(&accounts[0]).expect("stat").permissions().mode() & 0o777, 0o600);
    let account = read(&accounts[0]);

    // Not due: nothing happens.
    let run = renew(&sb, &[]).expect_code(0);
    assert!(run.stdout.contains("web: not due"), "{}", run.stdout);
    assert_eq!(read(&tls.join("cert.pem")), cert.as_bytes());
    assert!(!tls.join("cert.pem.previous").exists());

    // Forced: a new certificate and key; the old ones are kept as .previous.
    let old_key = read(&tls.join("key.pem"));
    let run = renew(&sb, &["web", "--force"]).expect_code(0);
    assert!(run.stdout.contains("web: renewed (forced)"), "{}", run.stdout);
    assert_eq!(read(&tls.join("cert.pem.previous")), cert.as_bytes());
    assert_eq!(read(&tls.join("fullchain.pem.previous")), full.as_bytes());
    assert_eq!(read(&tls.join("key.pem.previous")), old_key);
    assert_eq!(mode("key.pem.previous"), 0o600);
    assert_ne!(read(&tls.join("cert.pem")), cert.as_bytes());
    assert_ne!(read(&tls.join("key.pem")), old_key);
    let v = openssl(&["verify", "-CAfile", &root, "-untrusted", "chain.pem", "cert.pem"], &tls);
    assert!(v.contains("cert.pem: OK"), "{v}");
    assert_eq!(openssl(&["x509", "-noout", "-pubkey", "-in", "cert.pem"], &tls), openssl(&["pkey", "-pubout", "-in", "key.pem"], &tls));

    // The account was reused, not registered again.
    assert_eq!(account_files(&sb), accounts);
    assert_eq!(read(&accounts[0]), account);

    // Each renewal is in the audit log.
    let audit = sb
        .db()
        .prepare("SELECT detail FROM audit_log WHERE action = 'renew' ORDER BY id")
        .expect("prepare")
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows");
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(audit[0].contains("\"new_account\":true") && audit[1].contains("\"new_account\":false"), "{audit:?}");

    // A scan of the install directory puts the new certificate in the inventory.
    sb.run_at(unix_now(), &["scan"]).expect_code(0);
    let fp = openssl(&["x509", "-noout", "-fingerprint", "-sha256", "-in", "cert.pem"], &tls);
    let fp = fp.trim().rsplit('=').next().expect("fingerprint").replace(':', "").to_ascii_lowercase();
    let list = sb.run_at(unix_now(), &["list", "-o", "json"]).expect_code(0).json();
    let fps: Vec<String> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["fingerprint"].as_str().unwrap_or_default().replace(':', "").to_ascii_lowercase())
        .collect();
    assert!(fps.contains(&fp), "{fp} not in {fps:?}");
    drop(pebble.dir);
}

#[test]
fn failed_order_leaves_installed_files_untouched() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    sb.config(&pebble.managed("good.certvigil.test", pebble.http_port));
    renew(&sb, &[]).expect_code(0);
    let tls = sb.path("tls");
    let before: Vec<(String, Vec<u8>)> =
        ["cert.pem", "chain.pem", "fullchain.pem", "key.pem"].iter().map(|f| (f.to_string(), read(&tls.join(f)))).collect();

    // The listener is on a port Pebble does not validate: the challenge fails. A new
    // identifier, so no earlier authorization can be reused.
    let elsewhere = free_port();
    sb.config(&pebble.managed("other.certvigil.test", elsewhere));
    let run = renew(&sb, &["--force"]).expect_code(1);
    assert!(run.stderr.contains("web: renewal failed"), "{}", run.stderr);
    let e = run.stderr.to_ascii_lowercase();
    assert!(e.contains("invalid") || e.contains("connection"), "{}", run.stderr);
    for (f, bytes) in &before {
        assert_eq!(&read(&tls.join(f)), bytes, "{f} changed");
        assert!(!tls.join(format!("{f}.previous")).exists(), "{f}.previous written");
    }
    let names: Vec<String> =
        std::fs::read_dir(&tls).expect("dir").map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 4, "stray files: {names:?}");
    let failed: i64 = sb.db().query_row("SELECT count(*) FROM audit_log WHERE action = 'renew-failed'", [], |r| r.get(0)).expect("count");
    assert_eq!(failed, 1);
}

/// `certvigil renew` with the test failpoint `CERTVIGIL_FAILPOINT` set: the process aborts (as
/// `kill -9` would: no destructors, no flushing) at that step.
fn renew_crashing_at(sb: &Sandbox, failpoint: &str, args: &[&str]) -> common::Run {
    let mut cmd = common::certvigil();
    cmd.arg("-c").arg(sb.config_path()).arg("renew").args(args).current_dir(sb.dir.path()).env("CERTVIGIL_FAILPOINT", failpoint);
    common::run_with_timeout(cmd, std::time::Duration::from_secs(180))
}

/// Orders Pebble created, from its own log ("Added order … to the db").
fn pebble_orders(pebble_dir: &std::path::Path) -> usize {
    std::fs::read_to_string(pebble_dir.join("pebble.log")).unwrap_or_default().matches("Added order").count()
}

/// `web`'s renewal row: order URL, pending key, pending chain, failures, next attempt, last error.
type Row = (Option<String>, Option<String>, Option<String>, i64, Option<i64>, Option<String>);

fn row(sb: &Sandbox) -> Row {
    sb.db()
        .query_row(
            "SELECT order_url, pending_key, pending_chain, failures, next_attempt, last_error FROM renewals WHERE name = 'web'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .expect("renewal row")
}

fn dir_names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

#[test]
fn crash_after_the_order_is_created_resumes_that_order() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    sb.config(&pebble.managed("resume.certvigil.test", pebble.http_port));
    let run = renew_crashing_at(&sb, "renew-after-order", &[]);
    assert_ne!(run.code, 0, "the failpoint aborts the process: {}", run.stderr);
    assert_eq!(pebble_orders(pebble.dir.path()), 1);
    let (order_url, key, chain, failures, _, _) = row(&sb);
    let order_url = order_url.expect("the order URL is recorded before anything else happens");
    assert!(key.is_none() && chain.is_none() && failures == 0);
    assert!(dir_names(&sb.path("tls")).is_empty(), "nothing installed: {:?}", dir_names(&sb.path("tls")));

    let run = renew(&sb, &[]).expect_code(0);
    assert!(run.stdout.contains("web: renewed (resuming the order in flight)"), "{}", run.stdout);
    assert_eq!(pebble_orders(pebble.dir.path()), 1, "the interrupted order was finished, no second order");
    let root = pebble.root.to_string_lossy().into_owned();
    let v = openssl(&["verify", "-CAfile", &root, "-untrusted", "chain.pem", "cert.pem"], &sb.path("tls"));
    assert!(v.contains("cert.pem: OK"), "{v}");
    let detail: String = sb.db().query_row("SELECT detail FROM audit_log WHERE action = 'renew'", [], |r| r.get(0)).expect("audit entry");
    assert!(detail.contains(&order_url), "{detail} does not name {order_url}");
    let (order_url, key, chain, _, _, _) = row(&sb);
    assert!(order_url.is_none() && key.is_none() && chain.is_none());
    assert!(dir_names(&sb.path("state/acme/pending")).is_empty(), "{:?}", dir_names(&sb.path("state/acme/pending")));
    assert_eq!(dir_names(&sb.path("tls")), ["cert.pem", "chain.pem", "fullchain.pem", "key.pem"]);
}

#[test]
fn crash_after_download_installs_the_kept_chain_without_the_ca() {
    let Pebble { _dns, _pebble, dir, tls_ca, root, http_port, directory, dns_mgmt, dns_port, mgmt } = Pebble::start();
    let pebble = Pebble { _dns, _pebble, dir, tls_ca, root, http_port, directory, dns_mgmt, dns_port, mgmt };
    let sb = Sandbox::new();
    sb.config(&pebble.managed("download.certvigil.test", pebble.http_port));
    renew(&sb, &[]).expect_code(0);
    let tls = sb.path("tls");
    let files = ["cert.pem", "chain.pem", "fullchain.pem", "key.pem"];
    let before: Vec<Vec<u8>> = files.iter().map(|f| read(&tls.join(f))).collect();

    let run = renew_crashing_at(&sb, "renew-after-download", &["--force"]);
    assert_ne!(run.code, 0, "the failpoint aborts the process: {}", run.stderr);
    assert_eq!(pebble_orders(pebble.dir.path()), 2);
    // Installed files untouched, no temporary file left beside them.
    assert_eq!(files.iter().map(|f| read(&tls.join(f))).collect::<Vec<_>>(), before);
    assert_eq!(dir_names(&tls), files);
    let (_, key, chain, _, _, _) = row(&sb);
    let (key, chain) = (key.expect("pending key recorded"), chain.expect("pending chain recorded"));
    for p in [&key, &chain] {
        assert_eq!(std::fs::metadata(p).expect("pending file").permissions().mode() & 0o777, 0o600, "{p}");
    }
    let kept_chain = read(std::path::Path::new(&chain));

    // The CA is gone: the kept chain is installed all the same.
    let Pebble { _dns, _pebble, dir, .. } = pebble;
    drop(_pebble);
    drop(_dns);
    let run = renew(&sb, &[]).expect_code(0);
    assert!(run.stdout.contains("web: renewed (installing the chain downloaded by an interrupted run)"), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(read(&tls.join("fullchain.pem")), kept_chain);
    for (f, old) in files.iter().zip(&before) {
        assert_eq!(&read(&tls.join(format!("{f}.previous"))), old, "{f}.previous");
        // The intermediate is the same; everything else is new.
        if *f != "chain.pem" {
            assert_ne!(&read(&tls.join(f)), old, "{f} replaced");
        }
    }
    assert_eq!(openssl(&["x509", "-noout", "-pubkey", "-in", "cert.pem"], &tls), openssl(&["pkey", "-pubout", "-in", "key.pem"], &tls));
    let mut all: Vec<String> = files.iter().map(|f| f.to_string()).collect();
    all.extend(files.iter().map(|f| format!("{f}.previous")));
    all.sort();
    assert_eq!(dir_names(&tls), all, "only the new and the previous files");
    assert!(dir_names(&sb.path("state/acme/pending")).is_empty());
    let (order_url, key, chain, failures, _, _) = row(&sb);
    assert!(order_url.is_none() && key.is_none() && chain.is_none() && failures == 0);
    assert_eq!(pebble_orders(dir.path()), 2);
}

#[test]
fn failed_renewal_backs_off_alerts_and_recovers() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    let hook_port = free_port();
    let alerts = format!(
        "alerts:\n  receivers:\n    - name: hook\n      kind: webhook\n      url: http://127.0.0.1:{hook_port}/in\n      timeout: 2s\n  routes:\n    - name: page\n      receivers: [hook]\n"
    );
    sb.config(&format!("{}{alerts}", pebble.managed("good.certvigil.test", pebble.http_port)));
    renew(&sb, &[]).expect_code(0);

    // The challenge listener is on a port Pebble does not validate: the order fails.
    sb.config(&format!("{}{alerts}", pebble.managed("bad.certvigil.test", free_port())));
    let t0 = unix_now();
    let run = renew(&sb, &["--force"]).expect_code(1);
    assert!(run.stderr.contains("web: renewal failed"), "{}", run.stderr);
    let (_, _, _, failures, next, error) = row(&sb);
    assert_eq!(failures, 1);
    let next = next.expect("backoff stored");
    assert!((t0 + 60..=unix_now() + 60).contains(&next), "1 min backoff: {next} vs {t0}");
    let error = error.expect("error stored").to_ascii_lowercase();
    assert!(error.contains("invalid") || error.contains("connection"), "{error}");
    let orders = pebble_orders(pebble.dir.path());

    // A new process before the backoff ends asks nothing of the CA, and says the certificate is
    // still failing (exit 5, on stderr).
    let log_before = read(&pebble.dir.path().join("pebble.log")).len();
    let run = renew(&sb, &[]).expect_code(5);
    assert!(run.stderr.contains("web: backing off after 1 failure(s) until"), "{}", run.stderr);
    assert_eq!(pebble_orders(pebble.dir.path()), orders);
    assert_eq!(read(&pebble.dir.path().join("pebble.log")).len(), log_before, "Pebble saw no request");
    assert_eq!(row(&sb).3, 1, "the failure count is unchanged");

    // The failure is an alert routed to the receivers.
    sb.run_at(unix_now(), &["scan"]).expect_code(0);
    sb.run_at(unix_now(), &["evaluate"]);
    let firing: Vec<(String, String)> = sb
        .db()
        .prepare("SELECT kind, severity FROM alerts WHERE state = 'firing' ORDER BY kind")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert!(firing.contains(&("renewal-failed".into(), "warning".into())), "{firing:?}");
    let queued: i64 = sb
        .db()
        .query_row(
            "SELECT count(*) FROM outbox o JOIN alerts a ON a.id = o.alert_id WHERE a.kind = 'renewal-failed' AND o.route = 'page'",
            [],
            |r| r.get(0),
        )
        .expect("outbox");
    assert_eq!(queued, 1, "one notification for the page route");

    // Forced once the cause is fixed: success resets the failures and the backoff.
    sb.config(&format!("{}{alerts}", pebble.managed("good.certvigil.test", pebble.http_port)));
    let run = renew(&sb, &["--force"]).expect_code(0);
    assert!(run.stdout.contains("web: renewed (forced)"), "{}", run.stdout);
    let (_, _, _, failures, next, error) = row(&sb);
    assert_eq!((failures, next, error), (0, None, None));
}

/// A loopback HTTPS server in front of Pebble 2.4 (which has no ARI) that adds ACME Renewal
/// Information (RFC 9773): the directory gains `renewalInfo`, `GET /renewal-info/<certID>`
/// answers the window set by the test with the RFC's example explanationURL and
/// `Retry-After: 21600`, and everything else is passed to Pebble unchanged with the same Host
/// (Pebble builds its URLs and checks JWS `url`s from it). New orders are recorded, and a
/// `replaces` they carry is reflected in the answer as RFC 9773 §5 requires (Pebble 2.4 drops it).
mod ari {
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    pub struct Seen {
        /// (start, end), RFC 3339.
        pub window: (String, String),
        pub renewal_info_ids: Vec<String>,
        /// `replaces` of each order Pebble created (None when absent).
        pub new_orders: Vec<Option<String>>,
        /// Orders carrying `replaces` to refuse with `alreadyReplaced` (RFC 9773 §5), and how
        /// many were refused.
        pub refuse_replaces: u32,
        pub refused: Vec<String>,
    }

    pub struct Server {
        pub port: u16,
        pub seen: Arc<Mutex<Seen>>,
        _rt: tokio::runtime::Runtime,
    }

    fn b64url_decode(s: &str) -> Vec<u8> {
        use base64ct::{Base64UrlUnpadded, Encoding};
        Base64UrlUnpadded::decode_vec(s.trim_end_matches('=')).expect("base64url")
    }

    pub fn start(pebble_directory: &str, cert_pem: &std::path::Path, key_pem: &std::path::Path) -> Server {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let certs = vec![rustls::pki_types::CertificateDer::from(rcgen_pem_to_der(&std::fs::read_to_string(cert_pem).expect("cert")))];
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(rcgen_pem_to_der(&std::fs::read_to_string(key_pem).expect("key"))).expect("key der");
        let tls = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key).expect("tls config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let upstream = pebble_directory.trim_end_matches("/dir").to_string();
        let ca = reqwest::Certificate::from_pem(&std::fs::read(cert_pem).expect("ca")).expect("ca");
        // HTTP/1.1, so that the Host header (the proxy's address) reaches Pebble as is.
        let client = reqwest::Client::builder().tls_certs_only([ca]).http1_only().build().expect("client");
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let seen2 = seen.clone();
        rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (acceptor, client, upstream, seen) = (acceptor.clone(), client.clone(), upstream.clone(), seen2.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let svc = hyper::service::service_fn(move |req| {
                        let (client, upstream, seen) = (client.clone(), upstream.clone(), seen.clone());
                        async move { Ok::<_, std::convert::Infallible>(handle(req, &client, &upstream, &seen, port).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(tls), svc).await;
                });
            }
        });
        Server { port, seen, _rt: rt }
    }

    fn rcgen_pem_to_der(pem: &str) -> Vec<u8> {
        use base64ct::{Base64, Encoding};
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        Base64::decode_vec(&body).expect("pem body")
    }

    async fn handle(
        req: hyper::Request<hyper::body::Incoming>,
        client: &reqwest::Client,
        upstream: &str,
        seen: &Mutex<Seen>,
        port: u16,
    ) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
        use http_body_util::BodyExt;
        let (parts, body) = req.into_parts();
        let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        let path = parts.uri.path().to_string();
        if let Some(id) = path.strip_prefix("/renewal-info/") {
            let (start, end) = {
                let mut s = seen.lock().expect("lock");
                s.renewal_info_ids.push(id.to_string());
                s.window.clone()
            };
            // RFC 9773 §4.2's example response, with the test's window.
            let json = serde_json::json!({
                "suggestedWindow": {"start": start, "end": end},
                "explanationURL": "https://acme.example.com/docs/ari"
            });
            return hyper::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .header("retry-after", "21600")
                .body(http_body_util::Full::new(bytes::Bytes::from(json.to_string())))
                .expect("response");
        }
        let mut replaces = None;
        if path == "/order-plz" {
            let jws: serde_json::Value = serde_json::from_slice(&body).expect("JWS");
            let payload: serde_json::Value =
                serde_json::from_slice(&b64url_decode(jws["payload"].as_str().unwrap_or(""))).expect("payload");
            replaces = payload["replaces"].as_str().map(str::to_string);
        }
        if let Some(r) = &replaces {
            let mut s = seen.lock().expect("lock");
            if s.refuse_replaces > 0 {
                s.refuse_replaces -= 1;
                s.refused.push(r.clone());
                let problem = serde_json::json!({
                    "type": "urn:ietf:params:acme:error:alreadyReplaced",
                    "detail": "the certificate has already been replaced",
                    "status": 409
                });
                return hyper::Response::builder()
                    .status(409)
                    .header("content-type", "application/problem+json")
                    .body(http_body_util::Full::new(bytes::Bytes::from(problem.to_string())))
                    .expect("response");
            }
        }
        let url = format!("{upstream}{}", parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
        let mut rb = client.request(parts.method.clone(), url).body(body.to_vec());
        for (k, v) in &parts.headers {
            if k != "content-length" {
                rb = rb.header(k, v);
            }
        }
        let rsp = rb.send().await.expect("upstream");
        let status = rsp.status();
        let headers = rsp.headers().clone();
        let mut data = rsp.bytes().await.expect("upstream body").to_vec();
        if path == "/dir" {
            let mut d: serde_json::Value = serde_json::from_slice(&data).expect("directory");
            d["renewalInfo"] = serde_json::Value::String(format!("https://127.0.0.1:{port}/renewal-info"));
            data = d.to_string().into_bytes();
        }
        if path == "/order-plz" && status.is_success() {
            // Only orders Pebble created: a request it refused (a rejected nonce) is retried.
            seen.lock().expect("lock").new_orders.push(replaces.clone());
        }
        if let (Some(r), true) = (replaces, status.is_success()) {
            let mut o: serde_json::Value = serde_json::from_slice(&data).expect("order");
            o["replaces"] = serde_json::Value::String(r);
            data = o.to_string().into_bytes();
        }
        let mut out = hyper::Response::builder().status(status);
        for (k, v) in &headers {
            if k != "content-length" && k != "transfer-encoding" {
                out = out.header(k, v);
            }
        }
        out.body(http_body_util::Full::new(bytes::Bytes::from(data))).expect("response")
    }
}

fn rfc3339(t: i64) -> String {
    jiff::Timestamp::from_second(t).expect("time").to_string()
}

/// The RFC 9773 §4.1 identifier of `cert.pem`, computed with openssl: base64url of the AKI
/// keyIdentifier "." base64url of the serial's DER content octets.
fn ari_id_by_openssl(dir: &std::path::Path) -> String {
    use base64ct::{Base64UrlUnpadded, Encoding};
    let aki = openssl(&["x509", "-noout", "-ext", "authorityKeyIdentifier", "-in", "cert.pem"], dir);
    let aki_hex: String = aki.lines().nth(1).expect("AKI line").trim().trim_start_matches("keyid:").replace(':', "");
    let serial = openssl(&["x509", "-noout", "-serial", "-in", "cert.pem"], dir);
    let mut serial_hex = serial.trim().trim_start_matches("serial=").to_string();
    if serial_hex.len() % 2 == 1 {
        serial_hex.insert(0, '0');
    }
    let mut serial_bytes = hex::decode(&serial_hex).expect("serial hex");
    if serial_bytes[0] & 0x80 != 0 {
        serial_bytes.insert(0, 0); // DER INTEGER: positive, so a leading zero octet
    }
    format!(
        "{}.{}",
        Base64UrlUnpadded::encode_string(&hex::decode(aki_hex).expect("aki hex")),
        Base64UrlUnpadded::encode_string(&serial_bytes)
    )
}

#[test]
fn ari_window_decides_and_new_orders_carry_replaces() {
    let pebble = Pebble::start();
    let server = ari::start(&pebble.directory, &pebble.tls_ca, &pebble.dir.path().join("pebble-tls.key"));
    let sb = Sandbox::new();
    let proxied = pebble
        .managed("ari.certvigil.test", pebble.http_port)
        .replace(&pebble.directory, &format!("https://127.0.0.1:{}/dir", server.port));
    sb.config(&proxied);
    // First issuance: nothing installed, nothing to ask ARI about.
    renew(&sb, &[]).expect_code(0);
    assert!(server.seen.lock().expect("lock").renewal_info_ids.is_empty());
    let tls = sb.path("tls");
    let id = ari_id_by_openssl(&tls);
    let first_cert = read(&tls.join("cert.pem"));

    // A window in the future: not due; the chosen time lies inside it; Retry-After is stored.
    let t0 = unix_now();
    let (start, end) = (t0 + 10 * 86_400, t0 + 11 * 86_400);
    server.seen.lock().expect("lock").window = (rfc3339(start), rfc3339(end));
    let run = renew(&sb, &[]).expect_code(0);
    assert!(run.stdout.contains("web: not due") && run.stdout.contains("inside the CA's renewal window"), "{}", run.stdout);
    assert_eq!(
        server.seen.lock().expect("lock").renewal_info_ids,
        std::slice::from_ref(&id),
        "the certID sent is the RFC 9773 §4.1 identifier"
    );
    let (s, e, renew_at, next_poll, explanation): (i64, i64, i64, i64, String) = sb
        .db()
        .query_row("SELECT ari_start, ari_end, renew_at, ari_next_poll, ari_explanation FROM renewals WHERE name = 'web'", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .expect("row");
    assert_eq!((s, e), (start, end));
    assert!((start..=end).contains(&renew_at), "{renew_at} outside [{start}, {end}]");
    assert!((t0 + 21_600 - 5..=unix_now() + 21_600).contains(&next_poll), "Retry-After 21600 s: {next_poll}");
    assert_eq!(explanation, "https://acme.example.com/docs/ari");

    // Before Retry-After has passed, the CA is not asked again.
    renew(&sb, &[]).expect_code(0);
    assert_eq!(server.seen.lock().expect("lock").renewal_info_ids.len(), 1);
    assert_eq!(read(&tls.join("cert.pem")), first_cert);

    // Past Retry-After, the window has moved into the past: renewed at once, replacing it.
    server.seen.lock().expect("lock").window = (rfc3339(t0 - 2 * 86_400), rfc3339(t0 - 86_400));
    let later = (next_poll + 1).to_string();
    let mut cmd = common::certvigil();
    cmd.arg("-c").arg(sb.config_path()).args(["--now", &later, "renew"]).current_dir(sb.dir.path());
    let run = common::run_with_timeout(cmd, std::time::Duration::from_secs(180)).expect_code(0);
    assert!(run.stdout.contains("web: renewed (the CA's renewal window ended"), "{}\n{}", run.stdout, run.stderr);
    let seen = server.seen.lock().expect("lock");
    assert_eq!(seen.renewal_info_ids, [id.clone(), id.clone()]);
    assert_eq!(seen.new_orders, [None, Some(id.clone())], "the renewal order carries `replaces`");
    drop(seen);
    let second_cert = read(&tls.join("cert.pem"));
    assert_ne!(second_cert, first_cert);

    // The CA refuses the next `replaces` as already replaced: the renewal is ordered without it.
    let second_id = ari_id_by_openssl(&tls);
    server.seen.lock().expect("lock").refuse_replaces = 1;
    let mut cmd = common::certvigil();
    cmd.arg("-c").arg(sb.config_path()).args(["--now", &later, "renew"]).current_dir(sb.dir.path());
    let run = common::run_with_timeout(cmd, std::time::Duration::from_secs(180)).expect_code(0);
    assert!(run.stdout.contains("web: renewed (the CA's renewal window ended"), "{}\n{}", run.stdout, run.stderr);
    let seen = server.seen.lock().expect("lock");
    assert_eq!(seen.refused, [second_id]);
    assert_eq!(seen.new_orders, [None, Some(id), None], "ordered again without `replaces`");
    assert_ne!(read(&tls.join("cert.pem")), second_cert);
}

#[test]
fn dry_run_gets_the_authorizations_valid_without_finalizing_or_storing() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    sb.config(&pebble.managed("dry.certvigil.test", pebble.http_port));
    let run = renew(&sb, &["--dry-run"]).expect_code(0);
    assert!(
        run.stdout.contains("web: would renew (no certificate installed; order ") && run.stdout.contains("is ready to finalize"),
        "{}",
        run.stdout
    );
    assert_eq!(pebble_orders(pebble.dir.path()), 1);
    assert!(dir_names(&sb.path("tls")).is_empty(), "nothing installed");
    assert!(dir_names(&sb.path("state/acme/pending")).is_empty(), "no key generated");
    let rows: i64 = sb.db().query_row("SELECT count(*) FROM renewals", [], |r| r.get(0)).expect("count");
    assert_eq!(rows, 0, "a dry run stores no renewal state");
}

/// The public key (SPKI PEM) of `cert.pem` and of `key.pem` in `tls`, by openssl.
fn installed_public_keys(tls: &std::path::Path) -> (String, String) {
    (openssl(&["x509", "-noout", "-pubkey", "-in", "cert.pem"], tls), openssl(&["pkey", "-pubout", "-in", "key.pem"], tls))
}

/// `renew` with `--now` (the clock of the renewal decisions, the key's age among them).
fn renew_at(sb: &Sandbox, now: i64, args: &[&str]) -> common::Run {
    let mut cmd = common::certvigil();
    cmd.arg("-c").arg(sb.config_path()).args(["--now", &now.to_string(), "renew"]).args(args).current_dir(sb.dir.path());
    common::run_with_timeout(cmd, std::time::Duration::from_secs(180))
}

/// `rotate: never` keeps the installed key across a forced renewal: the CA certifies the same
/// public key again and the key file is not touched. `rotate: {max_age: 30d}` keeps a key
/// younger than 30 days and replaces one that is older, its age counted from when certvigil
/// generated it (`state/managed/key-web.json`) to the renewal's clock (`--now`).
#[test]
fn rotate_never_reuses_the_key_and_max_age_replaces_only_an_old_one() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    let managed = pebble.managed("reuse.certvigil.test", pebble.http_port);
    assert!(managed.contains("    key: p256\n"), "{managed}");
    let with_rotate = |rotate: &str| managed.replace("    key: p256\n", &format!("    key: p256\n    rotate: {rotate}\n"));
    sb.config(&with_rotate("never"));
    let tls = sb.path("tls");
    let run = renew(&sb, &[]).expect_code(0);
    assert!(run.stdout.contains("web: renewed (no certificate installed)"), "{}", run.stdout);
    let key = read(&tls.join("key.pem"));
    let (cert_pub, key_pub) = installed_public_keys(&tls);
    assert_eq!(cert_pub, key_pub);
    let record: serde_json::Value = serde_json::from_slice(&read(&sb.path("state/managed/key-web.json"))).expect("key record");
    let created = record["created"].as_i64().expect("created");

    // rotate: never — forced renewals: new certificates, the same key.
    let mut serials = vec![cert_serial(&tls)];
    for _ in 0..2 {
        let run = renew(&sb, &["web", "--force"]).expect_code(0);
        assert!(run.stdout.contains("web: renewed (forced)"), "{}", run.stdout);
        serials.push(cert_serial(&tls));
        assert_eq!(read(&tls.join("key.pem")), key, "rotate: never replaced the key file");
        assert_eq!(installed_public_keys(&tls), (key_pub.clone(), key_pub.clone()), "the new certificate is for the same key");
    }
    serials.dedup();
    assert_eq!(serials.len(), 3, "each forced renewal installed a new certificate: {serials:?}");
    assert_eq!(std::fs::metadata(tls.join("key.pem")).expect("stat").permissions().mode() & 0o777, 0o600);

    // rotate: {max_age: 30d} — a key 29 days old is kept…
    sb.config(&with_rotate("{max_age: 30d}"));
    let day = 86_400;
    let run = renew_at(&sb, created + 29 * day, &["web", "--force"]).expect_code(0);
    assert!(run.stdout.contains("web: renewed (forced)"), "{}\n{}", run.stdout, run.stderr);
    assert_ne!(cert_serial(&tls), serials[2], "a new certificate");
    assert_eq!(read(&tls.join("key.pem")), key, "a key younger than max_age was replaced");
    assert_eq!(installed_public_keys(&tls), (key_pub.clone(), key_pub.clone()));

    // …one 31 days old is replaced, and the new key's age is recorded from that clock.
    let later = created + 31 * day;
    let run = renew_at(&sb, later, &["web", "--force"]).expect_code(0);
    assert!(run.stdout.contains("web: renewed (forced)"), "{}\n{}", run.stdout, run.stderr);
    let new_key = read(&tls.join("key.pem"));
    assert_ne!(new_key, key, "a key older than max_age was kept");
    assert_eq!(read(&tls.join("key.pem.previous")), key, "the old key is kept as .previous");
    let (cert_pub, new_pub) = installed_public_keys(&tls);
    assert_ne!(new_pub, key_pub);
    assert_eq!(cert_pub, new_pub, "the new certificate is for the new key");
    let record: serde_json::Value = serde_json::from_slice(&read(&sb.path("state/managed/key-web.json"))).expect("key record");
    assert_eq!(record["created"].as_i64(), Some(later));

    // The new key is young again at that clock: kept by the next forced renewal.
    renew_at(&sb, later + day, &["web", "--force"]).expect_code(0);
    assert_eq!(read(&tls.join("key.pem")), new_key);
    assert_eq!(installed_public_keys(&tls), (new_pub.clone(), new_pub));
}

/// Pebble's view of a certificate: `Valid` or `Revoked` (management API).
fn pebble_status(pebble: &Pebble, serial_hex: &str) -> String {
    let serial = serial_hex.trim_start_matches('0').to_ascii_lowercase();
    let url = format!("https://127.0.0.1:{}/cert-status-by-serial/{serial}", pebble.mgmt);
    let out = std::process::Command::new("curl").arg("-sS").arg("--cacert").arg(&pebble.tls_ca).arg(&url).output().expect("run curl");
    assert!(out.status.success(), "curl {url}: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{url}: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    v["Status"].as_str().unwrap_or_default().to_string()
}

fn cert_serial(tls: &std::path::Path) -> String {
    let s = openssl(&["x509", "-noout", "-serial", "-in", "cert.pem"], tls);
    s.trim().trim_start_matches("serial=").to_string()
}

#[test]
fn key_compromise_revokes_at_the_ca_and_reissues_under_a_new_key_even_after_a_crash() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    sb.config(&pebble.managed("revoke.certvigil.test", pebble.http_port).replace("    key: p256\n", "    key: p256\n    rotate: never\n"));
    renew(&sb, &[]).expect_code(0);
    let tls = sb.path("tls");
    sb.run_at(unix_now(), &["scan"]).expect_code(0);
    let old_serial = cert_serial(&tls);
    let old_key = read(&tls.join("key.pem"));
    let old_cert = read(&tls.join("cert.pem"));
    assert_eq!(pebble_status(&pebble, &old_serial), "Valid");

    // A bad reason is a usage error naming the choices; nothing is asked of the CA.
    let mut cmd = common::certvigil();
    cmd.arg("-c").arg(sb.config_path()).args(["revoke", "web", "--reason", "caCompromise"]).current_dir(sb.dir.path());
    let run = common::run_with_timeout(cmd, std::time::Duration::from_secs(60)).expect_code(2);
    assert!(run.stderr.contains("keyCompromise"), "{}", run.stderr);

    // The process dies right after the CA revoked it, before anything was recorded.
    let mut cmd = common::certvigil();
    cmd.arg("-c").arg(sb.config_path()).args(["revoke", "web", "--reason", "key-compromise", "--rotate"]).current_dir(sb.dir.path());
    cmd.env("CERTVIGIL_FAILPOINT", "revoke-after-ca");
    let run = common::run_with_timeout(cmd, std::time::Duration::from_secs(120));
    assert_ne!(run.code, 0, "the failpoint aborts the process: {}", run.stderr);
    assert_eq!(pebble_status(&pebble, &old_serial), "Revoked");
    assert_eq!(read(&tls.join("cert.pem")), old_cert, "nothing installed yet");
    let step: String = sb.db().query_row("SELECT revoke_step FROM renewals WHERE name = 'web'", [], |r| r.get(0)).expect("row");
    assert_eq!(step, "requested");

    // The next renewal run finishes it: the CA's `alreadyRevoked` counts as revoked, and the
    // certificate is reissued under a new key although the policy says `rotate: never`.
    let run = renew(&sb, &[]).expect_code(0);
    assert!(run.stdout.contains("web: not due"), "{}", run.stdout);
    let new_serial = cert_serial(&tls);
    assert_ne!(new_serial, old_serial);
    assert_ne!(read(&tls.join("key.pem")), old_key, "the compromised key was reused");
    assert_eq!(pebble_status(&pebble, &new_serial), "Valid");
    assert_eq!(openssl(&["x509", "-noout", "-pubkey", "-in", "cert.pem"], &tls), openssl(&["pkey", "-pubout", "-in", "key.pem"], &tls));
    let step: String = sb.db().query_row("SELECT revoke_step FROM renewals WHERE name = 'web'", [], |r| r.get(0)).expect("row");
    assert_eq!(step, "done");
    assert!(!sb.path("state/acme/pending/web.revoke.pem").exists());

    // The store knows the old certificate is revoked, and the audit trail tells the story.
    // Every stored revocation status, found by the old certificate's serial (not by method).
    let rows: Vec<(String, String, Option<String>, String)> = sb
        .db()
        .prepare("SELECT c.serial, r.status, r.reason, r.method FROM revocation_status r JOIN certificates c ON c.id = r.cert_id")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let norm = |s: &str| s.trim_start_matches('0').to_ascii_lowercase();
    let old: Vec<_> = rows.iter().filter(|(serial, ..)| norm(serial) == norm(&old_serial)).collect();
    assert_eq!(old.len(), 1, "one revocation status for the old certificate: {rows:?}");
    let (_, status, reason, method) = old[0];
    assert_eq!((status.as_str(), reason.as_deref(), method.as_str()), ("revoked", Some("keyCompromise"), "acme"), "{rows:?}");
    let actions: Vec<String> = sb
        .db()
        .prepare("SELECT action FROM audit_log WHERE action LIKE 'revoke%' OR action = 'renew' ORDER BY id")
        .expect("prepare")
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows");
    assert_eq!(actions, ["renew", "revoke-requested", "revoke", "renew", "revoke-done"]);
    let detail: String = sb.db().query_row("SELECT detail FROM audit_log WHERE action = 'revoke'", [], |r| r.get(0)).expect("revoke entry");
    assert!(detail.contains("\"already_revoked\":true"), "{detail}");

    // Revoking again without --rotate: revoked, and the next renewal is due at once.
    let mut cmd = common::certvigil();
    cmd.arg("-c").arg(sb.config_path()).args(["revoke", "web", "--reason", "superseded"]).current_dir(sb.dir.path());
    let run = common::run_with_timeout(cmd, std::time::Duration::from_secs(120)).expect_code(0);
    // The serial as the DER INTEGER's content octets (a leading 00 when the high bit is set) in
    // the one human form (upper-case pairs joined by colons), where openssl prints the number:
    // compared without separators and leading zero octets.
    let printed = run.stdout.split("serial ").nth(1).and_then(|r| r.split(' ').next()).unwrap_or("").replace(':', "");
    assert_eq!(printed.trim_start_matches("00"), new_serial.trim_start_matches("00"), "{}", run.stdout);
    assert!(run.stdout.contains("revoked (superseded)"), "{}", run.stdout);
    assert_eq!(pebble_status(&pebble, &new_serial), "Revoked");
    let run = renew(&sb, &[]).expect_code(0);
    assert!(run.stdout.contains("web: renewed (the installed certificate is revoked"), "{}", run.stdout);
    assert_ne!(cert_serial(&tls), new_serial);
    drop(pebble.dir);
}

/// RFC 8555 §6.5: a CA may refuse any nonce (`badNonce`), and the client retries with the fresh
/// nonce the error carries. Pebble refusing half of them, every request of issuance, forced
/// renewals, account key rollover and revocation still goes through, and Pebble's log shows
/// that requests were indeed refused and repeated.
#[test]
fn a_ca_refusing_half_of_the_nonces_still_issues_renews_rolls_over_and_revokes() {
    let pebble = Pebble::start_refusing_nonces(50);
    let sb = Sandbox::new();
    sb.config(&pebble.managed("nonce.certvigil.test", pebble.http_port));
    let tls = sb.path("tls");
    let run = renew(&sb, &[]).expect_code(0);
    assert!(run.stdout.contains("web: renewed (no certificate installed)"), "{}", run.stdout);
    let mut serials = vec![cert_serial(&tls)];
    for _ in 0..3 {
        let run = renew(&sb, &["web", "--force"]).expect_code(0);
        assert!(run.stdout.contains("web: renewed (forced)"), "{}", run.stdout);
        serials.push(cert_serial(&tls));
    }
    let last = serials.last().expect("serial").clone();
    serials.dedup();
    assert_eq!(serials.len(), 4, "{serials:?}");
    assert_eq!(pebble_status(&pebble, &last), "Valid");
    certvigil_in(&sb, &["account", "rollover", "web"]).expect_code(0);
    let mut cmd = common::certvigil();
    cmd.arg("-c").arg(sb.config_path()).args(["revoke", "web", "--reason", "superseded"]).current_dir(sb.dir.path());
    let run = common::run_with_timeout(cmd, std::time::Duration::from_secs(120)).expect_code(0);
    // Printed as upper-case pairs joined by colons: compared without them.
    let printed = run.stdout.split("serial ").nth(1).and_then(|r| r.split(' ').next()).unwrap_or("").replace(':', "");
    assert_eq!(printed.trim_start_matches("00"), last.trim_start_matches("00"), "{}", run.stdout);
    assert!(run.stdout.contains("revoked (superseded)"), "{}", run.stdout);
    assert_eq!(pebble_status(&pebble, &last), "Revoked");

    // Requests the client makes exactly once per operation, when no nonce is refused: one
    // account, four orders (each finalized once), one rollover, one revocation. (Challenges are
    // not counted: Pebble reuses a valid authorization for some orders.) Pebble logs every
    // request it receives, refused or not.
    let log = std::fs::read_to_string(pebble.dir.path().join("pebble.log")).expect("pebble log");
    let count = |path: &str| log.lines().filter(|l| l.contains(&format!("POST {path} -> "))).count();
    let once = [("/sign-me-up", 1), ("/order-plz", 4), ("/finalize-order/", 4), ("/rollover-account-key", 1), ("/revoke-cert", 1)];
    let mut sent = 0;
    for (path, operations) in once {
        assert!(count(path) >= operations, "{path}: {} requests for {operations} operations", count(path));
        sent += count(path);
    }
    assert!(sent > 11, "no request was refused and repeated ({sent} requests for 11 operations):\n{log}");
}
