//! Challenges, issuer options, install targets and the account commands against a real Pebble
//! (with pebble-challtestsrv as its DNS server): dns-01 through a hook script (a wildcard
//! certificate), http-01 through a webroot served by the shared loopback HTTP server, External
//! Account Binding, profiles, combined PEM and PKCS#12 targets, owner/group, post-install hooks
//! and their roll-back, and `certvigil account show` / `rollover`.

use crate::acme_support;
use crate::common;

use acme_support::*;
use common::Sandbox;
use common::http::{HttpServer, Response};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

fn managed(pebble: &Pebble, identifiers: &str, challenge: &str, install: &str, issuer_extra: &str) -> String {
    format!(
        "managed:\n  - name: web\n    identifiers: {identifiers}\n{}    key: p256\n    challenge: {challenge}\n    install:\n{install}",
        pebble.issuer_yaml(issuer_extra)
    )
}

const PEM_INSTALL: &str =
    "      cert: tls/cert.pem\n      chain: tls/chain.pem\n      fullchain: tls/fullchain.pem\n      key: tls/key.pem\n";

fn san(tls: &Path) -> String {
    openssl(&["x509", "-noout", "-ext", "subjectAltName", "-in", "cert.pem"], tls)
}

#[test]
fn dns01_hook_issues_a_wildcard_certificate() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    let hook = dns_hook_script(sb.dir.path(), pebble.dns_mgmt);
    // The records are looked up at challtestsrv's DNS server before validation is asked for.
    let challenge =
        format!("{{type: dns-01, hook: [sh, '{}'], hook_timeout: 20s, resolvers: ['127.0.0.1:{}']}}", hook.display(), pebble.dns_port);
    sb.config(&managed(&pebble, "['*.wild.certvigil.test', wild.certvigil.test]", &challenge, PEM_INSTALL, ""));
    let run = renew(&sb, &[]).expect_code(0);
    assert!(run.stdout.contains("web: renewed"), "{}", run.stdout);
    let tls = sb.path("tls");
    let names = san(&tls);
    assert!(names.contains("DNS:*.wild.certvigil.test") && names.contains("DNS:wild.certvigil.test"), "{names}");
    let root = pebble.root.to_string_lossy().into_owned();
    let v = openssl(&["verify", "-CAfile", &root, "-untrusted", "chain.pem", "cert.pem"], &tls);
    assert!(v.contains("cert.pem: OK"), "{v}");
    // Both authorizations (wildcard and base name) used the same record name; every present
    // was cleaned up afterwards.
    let log = std::fs::read_to_string(sb.dir.path().join("hook.log")).expect("hook log");
    let lines: Vec<&str> = log.lines().collect();
    let presents: Vec<&&str> = lines.iter().filter(|l| l.starts_with("present _acme-challenge.wild.certvigil.test. ")).collect();
    let cleanups: Vec<&&str> = lines.iter().filter(|l| l.starts_with("cleanup _acme-challenge.wild.certvigil.test. ")).collect();
    assert_eq!((presents.len(), cleanups.len(), lines.len()), (2, 2, 4), "{log}");
    // TXT values are base64url SHA-256 digests (43 characters), different for the two.
    let value = |l: &str| l.rsplit(' ').next().unwrap_or_default().to_string();
    assert_eq!(value(presents[0]).len(), 43, "{log}");
    assert_ne!(value(presents[0]), value(presents[1]));
}

#[test]
fn failing_dns_hook_is_reported_and_nothing_is_installed() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    let hook = sb
        .write("hook.sh", "echo \"$1 $2\" >> hook.log\n[ \"$1\" = cleanup ] && exit 0\necho 'zone example: update refused' >&2\nexit 3\n");
    let challenge = format!("{{type: dns-01, hook: [sh, '{}']}}", hook.display());
    sb.config(&managed(&pebble, "[fails.certvigil.test]", &challenge, PEM_INSTALL, ""));
    let run = renew(&sb, &[]).expect_code(1);
    assert!(run.stderr.contains("web: renewal failed"), "{}", run.stderr);
    assert!(run.stderr.contains("exit status 3") && run.stderr.contains("zone example: update refused"), "{}", run.stderr);
    assert!(run.stderr.contains("_acme-challenge.fails.certvigil.test."), "{}", run.stderr);
    assert!(dir_names(&sb.path("tls")).is_empty(), "{:?}", dir_names(&sb.path("tls")));
    let failed: i64 = sb.db().query_row("SELECT count(*) FROM audit_log WHERE action = 'renew-failed'", [], |r| r.get(0)).expect("count");
    assert_eq!(failed, 1);
}

#[test]
fn a_record_the_resolvers_never_see_fails_before_validation_is_asked_for() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    // The hook says it set the record but did not: the DNS server never answers it.
    let hook = sb.write("hook.sh", "echo \"$1 $2\" >> hook.log\n");
    let challenge = format!(
        "{{type: dns-01, hook: [sh, '{}'], resolvers: ['127.0.0.1:{}'], propagation_timeout: 3s}}",
        hook.display(),
        pebble.dns_port
    );
    sb.config(&managed(&pebble, "[unseen.certvigil.test]", &challenge, PEM_INSTALL, ""));
    let run = renew(&sb, &[]).expect_code(1);
    assert!(
        run.stderr.contains("the TXT record _acme-challenge.unseen.certvigil.test. was not visible at 127.0.0.1:")
            && run.stderr.contains("validation was not asked for"),
        "{}",
        run.stderr
    );
    let log = std::fs::read_to_string(sb.dir.path().join("hook.log")).expect("hook log");
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        ["present _acme-challenge.unseen.certvigil.test.", "cleanup _acme-challenge.unseen.certvigil.test."]
    );
    assert!(dir_names(&sb.path("tls")).is_empty());
}

/// What the webroot server answered: (path, body).
type Served = Arc<Mutex<Vec<(String, String)>>>;

/// Serves `<root>/<path>` on 127.0.0.1:`port` (the shared loopback server) and records what it
/// answered.
fn serve_webroot(root: PathBuf, port: u16) -> (HttpServer, Served) {
    let served = Arc::new(Mutex::new(Vec::new()));
    let log = served.clone();
    let server = HttpServer::start_on(port, move |req| {
        let path = req.target.clone();
        let file = root.join(path.trim_start_matches('/'));
        match (path.contains(".."), std::fs::read_to_string(&file)) {
            (false, Ok(body)) => {
                log.lock().expect("lock").push((path, body.clone()));
                Response::ok(body)
            }
            _ => Response::empty(404),
        }
    });
    (server, served)
}

#[test]
fn webroot_http01_and_account_show() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    let webroot = sb.path("www");
    std::fs::create_dir_all(&webroot).expect("mkdir");
    let (_webroot_server, served) = serve_webroot(webroot.clone(), pebble.http_port);
    sb.config(&managed(&pebble, "[webroot.certvigil.test]", "{type: http-01, webroot: www}", PEM_INSTALL, ""));
    let run = renew(&sb, &[]).expect_code(0);
    assert!(run.stdout.contains("web: renewed"), "{}", run.stdout);
    assert!(san(&sb.path("tls")).contains("DNS:webroot.certvigil.test"));
    // The challenge file was served, then removed.
    let served = served.lock().expect("lock").clone();
    assert!(!served.is_empty());
    let (path, body) = &served[0];
    let token = path.strip_prefix("/.well-known/acme-challenge/").expect("challenge path");
    assert!(dir_names(&webroot.join(".well-known/acme-challenge")).is_empty(), "challenge files left behind");
    // The key authorization is `<token>.<account key thumbprint>` (RFC 8555 §8.1): the
    // thumbprint `account show` prints is the one the CA checked.
    let (body_token, thumb) = body.split_once('.').expect("key authorization");
    assert_eq!(body_token, token);
    let show = certvigil_in(&sb, &["account", "show", "web", "-o", "json"]).expect_code(0).json();
    let acct = &show[0]["account"];
    assert_eq!(acct["thumbprint"].as_str(), Some(thumb), "{show}");
    assert_eq!(acct["directory"].as_str(), Some(pebble.directory.as_str()));
    assert!(acct["url"].as_str().unwrap_or_default().starts_with("https://127.0.0.1:"), "{show}");
    assert_eq!(acct["contacts"][0].as_str(), Some("mailto:ops@example.org"));
    let file = acct["file"].as_str().expect("file");
    assert_eq!(account_files(&sb), vec![PathBuf::from(file)]);
    let text = certvigil_in(&sb, &["account", "show"]).expect_code(0).stdout;
    assert!(text.contains(&format!("thumbprint: {thumb}")), "{text}");
    // Never the private key.
    let stored: serde_json::Value = serde_json::from_slice(&read(Path::new(file))).expect("json");
    let key = stored["credentials"]["key_pkcs8"].as_str().expect("key");
    assert!(!text.contains(key) && !serde_json::to_string(&show).expect("json").contains(key));
}

#[test]
fn account_rollover_keeps_renewals_working() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    sb.config(&pebble.managed("roll.certvigil.test", pebble.http_port));
    renew(&sb, &[]).expect_code(0);
    let before = certvigil_in(&sb, &["account", "show", "-o", "json"]).expect_code(0).json();
    let file = PathBuf::from(before[0]["account"]["file"].as_str().expect("file"));
    let old_bytes = read(&file);
    let run = certvigil_in(&sb, &["account", "rollover", "web"]).expect_code(0);
    let after = certvigil_in(&sb, &["account", "show", "-o", "json"]).expect_code(0).json();
    let (old, new) = (before[0]["account"]["thumbprint"].as_str().expect("t"), after[0]["account"]["thumbprint"].as_str().expect("t"));
    assert_ne!(old, new);
    assert!(run.stdout.contains(&format!("{old} -> {new}")), "{}", run.stdout);
    // Same account, new key, still private; no temporary file left.
    assert_eq!(before[0]["account"]["url"], after[0]["account"]["url"]);
    assert_ne!(read(&file), old_bytes);
    assert_eq!(std::fs::metadata(&file).expect("stat").mode() & 0o777, 0o600);
    assert_eq!(account_files(&sb), vec![file.clone()]);
    let audit: Vec<String> = sb
        .db()
        .prepare("SELECT detail FROM audit_log WHERE action = 'account-rollover'")
        .expect("prepare")
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(audit.len(), 1);
    assert!(audit[0].contains(new) && audit[0].contains(old), "{audit:?}");
    // The stored credentials (the new key) still work; the account was not registered again.
    let run = renew(&sb, &["--force"]).expect_code(0);
    assert!(run.stdout.contains("web: renewed (forced)"), "{}", run.stdout);
    let audit: String =
        sb.db().query_row("SELECT detail FROM audit_log WHERE action = 'renew' ORDER BY id DESC", [], |r| r.get(0)).expect("row");
    assert!(audit.contains("\"new_account\":false"), "{audit}");
}

#[test]
fn eab_is_required_and_accepted_and_unknown_profiles_are_refused() {
    // Pebble takes the MAC key base64url-encoded, as CAs hand it out.
    let mac = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let pebble = Pebble::start_with(serde_json::json!({
        "externalAccountBindingRequired": true,
        "externalAccountMACKeys": { "kid-1": mac },
    }));
    let sb = Sandbox::new();
    let ch = format!("{{type: http-01, listen: '127.0.0.1:{}'}}", pebble.http_port);
    // Without EAB the CA refuses the account.
    sb.config(&managed(&pebble, "[eab.certvigil.test]", &ch, PEM_INSTALL, ""));
    let run = renew(&sb, &[]).expect_code(1);
    assert!(run.stderr.to_ascii_lowercase().contains("externalaccountrequired") || run.stderr.contains("External"), "{}", run.stderr);
    assert!(account_files(&sb).is_empty());
    // A wrong MAC key is refused too, and never echoed.
    let eab = "      eab: {kid: kid-1, hmac_key: '${env:TEST_EAB_KEY}'}\n";
    sb.config(&managed(&pebble, "[eab.certvigil.test]", &ch, PEM_INSTALL, eab));
    let wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let run = renew_env(&sb, &["--force"], &[("TEST_EAB_KEY", wrong)]).expect_code(1);
    assert!(!run.stderr.contains(wrong) && account_files(&sb).is_empty(), "{}", run.stderr);
    // An unset secret names the reference.
    let run = renew(&sb, &["--force"]).expect_code(1);
    assert!(run.stderr.contains("TEST_EAB_KEY") && run.stderr.contains("issuer.eab.hmac_key"), "{}", run.stderr);
    // With the right key: registered and issued.
    let run = renew_env(&sb, &["--force"], &[("TEST_EAB_KEY", mac)]).expect_code(0);
    assert!(run.stdout.contains("web: renewed"), "{}", run.stdout);
    assert_eq!(account_files(&sb).len(), 1);
    assert!(!run.stdout.contains(mac) && !run.stderr.contains(mac));
    // Pebble 2.4's directory lists no profiles: ordering one fails before any order is made.
    let eab_profile = format!("{eab}      profile: shortlived\n");
    sb.config(&managed(&pebble, "[eab.certvigil.test]", &ch, PEM_INSTALL, &eab_profile));
    let run = renew_env(&sb, &["--force"], &[("TEST_EAB_KEY", mac)]).expect_code(1);
    assert!(run.stderr.contains("issuer.profile `shortlived`") && run.stderr.contains("offers no profiles"), "{}", run.stderr);
}

fn sha256_file(p: &Path) -> String {
    openssl(&["dgst", "-sha256", "-r", &p.display().to_string()], Path::new("/")).split(' ').next().unwrap_or_default().to_string()
}

#[test]
fn install_targets_owner_hooks_and_rollback() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    let p12_password = "correct horse";
    let seen = sb.path("seen");
    // The hook records the digest of the files it sees, through the paths in its environment.
    let ok_hook = format!(
        "      hooks:\n        - run: [sh, -c, 'sha256sum \"$CERTVIGIL_COMBINED\" \"$CERTVIGIL_PKCS12\" \"$CERTVIGIL_KEY\" > {}']\n          timeout: 10s\n",
        seen.display()
    );
    let install = format!(
        "{PEM_INSTALL}      combined: tls/haproxy.pem\n      pkcs12: {{path: tls/cert.p12, password: '${{env:TEST_P12_PASSWORD}}'}}\n      owner: nobody\n      group: nogroup\n      mode: '0640'\n{ok_hook}"
    );
    let ch = format!("{{type: http-01, listen: '127.0.0.1:{}'}}", pebble.http_port);
    sb.config(&managed(&pebble, "[install.certvigil.test]", &ch, &install, ""));
    let env = [("TEST_P12_PASSWORD", p12_password)];
    renew_env(&sb, &[], &env).expect_code(0);
    let tls = sb.path("tls");

    // Combined: the key, then the full chain; private.
    let combined = String::from_utf8(read(&tls.join("haproxy.pem"))).expect("utf8");
    let key = String::from_utf8(read(&tls.join("key.pem"))).expect("utf8");
    let full = String::from_utf8(read(&tls.join("fullchain.pem"))).expect("utf8");
    assert_eq!(combined, format!("{}\n{full}", key.trim_end()));
    let meta = |f: &str| std::fs::metadata(tls.join(f)).expect("stat");
    assert_eq!(meta("haproxy.pem").mode() & 0o777, 0o600);
    assert_eq!(meta("cert.p12").mode() & 0o777, 0o600);
    assert_eq!(meta("cert.pem").mode() & 0o777, 0o640);

    // PKCS#12: openssl opens it with the password (MAC and both PBES2 layers) ...
    let pass = format!("pass:{p12_password}");
    let info = std::process::Command::new("openssl")
        .args(["pkcs12", "-info", "-noout", "-in", "cert.p12", "-passin", &pass])
        .current_dir(&tls)
        .output()
        .expect("openssl");
    let info_text = String::from_utf8_lossy(&info.stderr).into_owned() + &String::from_utf8_lossy(&info.stdout);
    assert!(info.status.success(), "{info_text}");
    assert!(info_text.contains("MAC: sha256"), "{info_text}");
    assert!(info_text.contains("PBES2, PBKDF2, AES-256-CBC, Iteration 100000, PRF hmacWithSHA256"), "{info_text}");
    assert!(info_text.contains("Shrouded Keybag"), "{info_text}");
    let wrong = std::process::Command::new("openssl")
        .args(["pkcs12", "-info", "-noout", "-in", "cert.p12", "-passin", "pass:wrong"])
        .current_dir(&tls)
        .output()
        .expect("openssl");
    assert!(!wrong.status.success());
    // ... its key and leaf are the installed ones ...
    let p12_key = openssl(&["pkcs12", "-in", "cert.p12", "-nocerts", "-nodes", "-passin", &pass], &tls);
    let key_pub = openssl(&["pkey", "-pubout", "-in", "key.pem"], &tls);
    std::fs::write(sb.path("p12key.pem"), &p12_key).expect("write");
    assert_eq!(openssl(&["pkey", "-pubout", "-in", &sb.path("p12key.pem").display().to_string()], &tls), key_pub);
    // ... and certvigil's own reader finds the whole chain in it.
    let mut cmd = common::certvigil();
    cmd.args(["inspect", "--password-env", "TEST_P12_PASSWORD", "-o", "json"])
        .arg(tls.join("cert.p12"))
        .env("TEST_P12_PASSWORD", p12_password);
    let inspected = common::run_with_timeout(cmd, std::time::Duration::from_secs(30)).expect_code(0).json().to_string();
    let leaf_fp = openssl(&["x509", "-noout", "-fingerprint", "-sha256", "-in", "cert.pem"], &tls);
    let leaf_fp = leaf_fp.trim().rsplit('=').next().expect("fp").replace(':', "").to_ascii_lowercase();
    assert!(inspected.replace(':', "").to_ascii_lowercase().contains(&leaf_fp), "{inspected}");

    // Owner and group by name (the tests run as root here; otherwise the error says why).
    let nobody = std::fs::read_to_string("/etc/passwd").expect("passwd");
    let uid: u32 =
        nobody.lines().find(|l| l.starts_with("nobody:")).and_then(|l| l.split(':').nth(2)).and_then(|v| v.parse().ok()).expect("nobody");
    for f in ["cert.pem", "key.pem", "haproxy.pem", "cert.p12", "fullchain.pem"] {
        assert_eq!(meta(f).uid(), uid, "{f}");
    }

    // The hook saw the new files.
    let seen_text = std::fs::read_to_string(&seen).expect("hook output");
    for f in ["haproxy.pem", "cert.p12", "key.pem"] {
        assert!(seen_text.contains(&sha256_file(&tls.join(f))), "{f}: {seen_text}");
    }

    // Second renewal, so that `.previous` files exist.
    renew_env(&sb, &["--force"], &env).expect_code(0);
    let snapshot = |dir: &Path| -> Vec<(String, Vec<u8>, u32, u32)> {
        dir_names(dir)
            .into_iter()
            .map(|n| {
                let m = std::fs::metadata(dir.join(&n)).expect("stat");
                (n.clone(), read(&dir.join(&n)), m.mode() & 0o7777, m.uid())
            })
            .collect()
    };
    let before = snapshot(&tls);
    assert!(before.iter().any(|(n, ..)| n == "haproxy.pem.previous"));

    // A failing hook: every file back byte for byte, `.previous` included; a new target that
    // had no previous version is removed.
    let fail_hook = "      hooks:\n        - run: [sh, -c, 'echo haproxy: config check failed >&2; exit 1']\n";
    let install = install.replace(&ok_hook, fail_hook).replace("      chain: tls/chain.pem\n", "      chain: tls/chain-new.pem\n");
    sb.config(&managed(&pebble, "[install.certvigil.test]", &ch, &install, ""));
    let run = renew_env(&sb, &["--force"], &env).expect_code(1);
    assert!(run.stderr.contains("haproxy: config check failed") && run.stderr.contains("rolled back"), "{}", run.stderr);
    assert_eq!(snapshot(&tls), before);

    // An unknown group is refused before anything is written.
    let install = install.replace("group: nogroup", "group: certvigil-no-such-group");
    sb.config(&managed(&pebble, "[install.certvigil.test]", &ch, &install, ""));
    let run = renew_env(&sb, &["--force"], &env).expect_code(1);
    assert!(run.stderr.contains("no group named `certvigil-no-such-group`"), "{}", run.stderr);
    assert_eq!(snapshot(&tls), before);
}
