//! Resuming an ACME order an earlier run left in flight, against a real Pebble (the branches of
//! `Session::order` that `tests/it_acme/acme.rs` does not reach): a `ready` order is finalized with the
//! key kept under `<state>/acme/pending/`, a `valid` order whose chain was never saved is
//! downloaded again (and is abandoned when its key is lost), and an `invalid` order is replaced by
//! a new one. The states a crash leaves are made with the `renew-after-order`
//! and `renew-after-download` failpoints, `renew --dry-run` (which authorizes the recorded
//! order without finalizing it) and, where no failpoint sits, by editing the `renewals` row as
//! the missing step would have left it.

use crate::acme_support;
use crate::common;

use acme_support::*;
use common::Sandbox;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// `certvigil renew` aborting (as `kill -9` would) at the failpoint `failpoint`.
fn renew_crashing_at(sb: &Sandbox, failpoint: &str) -> common::Run {
    let mut cmd = common::certvigil();
    cmd.arg("-c").arg(sb.config_path()).arg("renew").current_dir(sb.dir.path()).env("CERTVIGIL_FAILPOINT", failpoint);
    common::run_with_timeout(cmd, std::time::Duration::from_secs(180))
}

/// The order URLs Pebble created, in order, from its log ("Added order … to the db").
fn pebble_orders(pebble: &Pebble) -> usize {
    std::fs::read_to_string(pebble.dir.path().join("pebble.log")).unwrap_or_default().matches("Added order").count()
}

/// `web`'s renewal row: order URL, pending key, pending chain.
fn row(sb: &Sandbox) -> (Option<String>, Option<String>, Option<String>) {
    sb.db()
        .query_row("SELECT order_url, pending_key, pending_chain FROM renewals WHERE name = 'web'", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .expect("renewal row")
}

/// The public key (PEM) of a certificate or private key file, as openssl prints it.
fn cert_pub(dir: &Path, file: &str) -> String {
    openssl(&["x509", "-noout", "-pubkey", "-in", file], dir)
}
fn key_pub(dir: &Path, file: &str) -> String {
    openssl(&["pkey", "-pubout", "-in", file], dir)
}

/// The `renew` audit entry's detail (exactly one).
fn renew_audit(sb: &Sandbox) -> String {
    let rows = common::dump(&sb.db(), "SELECT detail FROM audit_log WHERE action = 'renew'");
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0][0].clone()
}

/// The installed files verify up to Pebble's root and the key matches the certificate.
fn assert_installed(sb: &Sandbox, pebble: &Pebble) {
    let tls = sb.path("tls");
    let root = pebble.root.to_string_lossy().into_owned();
    let v = openssl(&["verify", "-CAfile", &root, "-untrusted", "chain.pem", "cert.pem"], &tls);
    assert!(v.contains("cert.pem: OK"), "{v}");
    assert_eq!(cert_pub(&tls, "cert.pem"), key_pub(&tls, "key.pem"));
    assert_eq!(dir_names(&tls), ["cert.pem", "chain.pem", "fullchain.pem", "key.pem"]);
    assert_eq!(row(sb), (None, None, None), "the row is cleared once installed");
    assert!(dir_names(&sb.path("state/acme/pending")).is_empty(), "{:?}", dir_names(&sb.path("state/acme/pending")));
}

/// A crash after the key was written and before finalize leaves a `ready` order, its URL and
/// the key: the next run finalizes that order with that key (no new order, no new key).
#[test]
fn a_ready_order_is_finalized_with_the_kept_key() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    sb.config(&pebble.managed("ready.certvigil.test", pebble.http_port));

    // The order exists and is recorded; its authorizations are still pending.
    let run = renew_crashing_at(&sb, "renew-after-order");
    assert_ne!(run.code, 0, "the failpoint aborts the process: {}", run.stderr);
    let (order_url, key, chain) = row(&sb);
    let order_url = order_url.expect("order URL recorded");
    assert!(key.is_none() && chain.is_none());

    // A dry run resumes that order and gets it authorized (ready), without finalizing it and
    // without recording anything.
    let run = certvigil_in(&sb, &["renew", "--dry-run"]).expect_code(0);
    assert!(run.stdout.contains("web: would renew (resuming the order in flight"), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains(&format!("order {order_url} is ready to finalize")), "{}", run.stdout);
    assert_eq!(pebble_orders(&pebble), 1, "the dry run used the recorded order");
    assert_eq!(row(&sb), (Some(order_url.clone()), None, None));
    assert!(dir_names(&sb.path("tls")).is_empty());

    // What the run that died between writing the key and finalizing leaves behind: the key
    // (0600) under the pending directory, and its path in the row (the `key_saved` step).
    let pending = sb.path("state/acme/pending");
    std::fs::create_dir_all(&pending).expect("mkdir");
    let key_path = pending.join("web.key.pem");
    let kept = rcgen::KeyPair::generate().expect("P-256 key").serialize_pem();
    std::fs::write(&key_path, &kept).expect("write key");
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let kept_copy = sb.write("kept-key.pem", &kept);
    sb.db()
        .execute("UPDATE renewals SET pending_key = ?1 WHERE name = 'web'", [key_path.display().to_string()])
        .expect("record the pending key");

    let run = certvigil_in(&sb, &["-v", "renew"]).expect_code(0);
    assert!(run.stdout.contains("web: renewed (resuming the order in flight)"), "{}\n{}", run.stdout, run.stderr);
    assert!(!run.stderr.contains("ACME order created"), "a new order was created:\n{}", run.stderr);
    assert_eq!(pebble_orders(&pebble), 1, "the ready order was finalized, no second order");
    let tls = sb.path("tls");
    assert_eq!(cert_pub(&tls, "cert.pem"), key_pub(sb.dir.path(), kept_copy.to_str().expect("utf8")), "issued for the kept key");
    assert_eq!(read(&tls.join("key.pem")), kept.as_bytes(), "the kept key is installed");
    assert!(renew_audit(&sb).contains(&order_url), "the audit entry names {order_url}");
    assert_installed(&sb, &pebble);
}

/// A crash after finalize, before the chain was saved (the download was under way), leaves a
/// `valid` order and its key: the next run downloads that order's certificate, no new order.
#[test]
fn a_valid_order_without_its_chain_is_downloaded_again() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    sb.config(&pebble.managed("valid.certvigil.test", pebble.http_port));
    let run = renew_crashing_at(&sb, "renew-after-download");
    assert_ne!(run.code, 0, "the failpoint aborts the process: {}", run.stderr);
    assert_eq!(pebble_orders(&pebble), 1);
    let (order_url, key, chain) = row(&sb);
    let (order_url, key, chain) = (order_url.expect("order"), key.expect("key"), chain.expect("chain"));
    let downloaded = String::from_utf8(read(Path::new(&chain))).expect("utf8");
    let key_pem = read(Path::new(&key));
    // Forget the download: the row as it was before `chain_saved`.
    std::fs::remove_file(&chain).expect("remove chain");
    sb.db().execute("UPDATE renewals SET pending_chain = NULL WHERE name = 'web'", []).expect("update");

    let run = certvigil_in(&sb, &["-v", "renew"]).expect_code(0);
    assert!(run.stdout.contains("web: renewed (resuming the order in flight)"), "{}\n{}", run.stdout, run.stderr);
    assert!(!run.stderr.contains("ACME order created"), "a new order was created:\n{}", run.stderr);
    assert_eq!(pebble_orders(&pebble), 1, "the valid order was downloaded, no second order");
    let tls = sb.path("tls");
    // The same certificate the interrupted run had downloaded, with its key.
    assert_eq!(String::from_utf8(read(&tls.join("fullchain.pem"))).expect("utf8"), downloaded);
    assert_eq!(read(&tls.join("key.pem")), key_pem);
    assert!(renew_audit(&sb).contains(&order_url));
    assert_installed(&sb, &pebble);
}

/// The same `valid` order whose pending key is lost cannot be used (its certificate would have
/// no key): a new order under a new key.
#[test]
fn a_valid_order_whose_key_is_lost_is_replaced() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    sb.config(&pebble.managed("lostkey.certvigil.test", pebble.http_port));
    let run = renew_crashing_at(&sb, "renew-after-download");
    assert_ne!(run.code, 0, "the failpoint aborts the process: {}", run.stderr);
    let (order_url, key, chain) = row(&sb);
    let (order_url, key, chain) = (order_url.expect("order"), key.expect("key"), chain.expect("chain"));
    let old_key = read(Path::new(&key));
    for p in [&key, &chain] {
        std::fs::remove_file(p).expect("remove");
    }
    sb.db().execute("UPDATE renewals SET pending_chain = NULL, pending_key = NULL WHERE name = 'web'", []).expect("update");

    let run = certvigil_in(&sb, &["-v", "renew"]).expect_code(0);
    assert!(run.stderr.contains("the key of the order in flight is missing: starting a new order"), "{}", run.stderr);
    assert!(run.stdout.contains("web: renewed"), "{}", run.stdout);
    assert_eq!(pebble_orders(&pebble), 2, "a second order");
    assert_ne!(read(&sb.path("tls/key.pem")), old_key, "a new key");
    assert!(!renew_audit(&sb).contains(&order_url), "the installed certificate is not the abandoned order's");
    assert_installed(&sb, &pebble);
}

/// The recorded order failed validation and Pebble made it `invalid`: once the entry is fixed,
/// the next run replaces it with a new order and succeeds.
#[test]
fn an_invalid_order_is_replaced() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    // The challenge listener is where Pebble does not look: the authorization fails, the order
    // turns invalid, and its URL stays recorded.
    sb.config(&pebble.managed("invalid.certvigil.test", free_port()));
    let run = renew(&sb, &[]).expect_code(1);
    assert!(run.stderr.contains("web: renewal failed"), "{}", run.stderr);
    let order_url = row(&sb).0.expect("the failed order stays recorded");
    assert_eq!(pebble_orders(&pebble), 1);

    // The entry is fixed (its failures and backoff start afresh).
    sb.config(&pebble.managed("invalid.certvigil.test", pebble.http_port));
    let run = certvigil_in(&sb, &["-v", "renew"]).expect_code(0);
    assert!(run.stderr.contains("the order in flight is invalid: starting a new one"), "{}", run.stderr);
    assert!(run.stderr.contains(&order_url), "{}", run.stderr);
    assert!(run.stdout.contains("web: renewed"), "{}", run.stdout);
    assert_eq!(pebble_orders(&pebble), 2, "a new order");
    assert!(!renew_audit(&sb).contains(&order_url));
    assert_installed(&sb, &pebble);
}

/// An order the CA no longer knows (404; Pebble sends no problem document with it) is replaced
/// by a new one, not retried for ever.
#[test]
fn a_vanished_order_is_replaced() {
    let pebble = Pebble::start();
    let sb = Sandbox::new();
    sb.config(&pebble.managed("vanished.certvigil.test", pebble.http_port));
    let run = renew_crashing_at(&sb, "renew-after-order");
    assert_ne!(run.code, 0, "the failpoint aborts the process: {}", run.stderr);
    let order_url = row(&sb).0.expect("order URL recorded");
    let (base, _) = order_url.rsplit_once('/').expect("an order URL with a path");
    let gone = format!("{base}/no-such-order-0000");
    sb.db().execute("UPDATE renewals SET order_url = ?1 WHERE name = 'web'", [&gone]).expect("update");

    let run = certvigil_in(&sb, &["-v", "renew"]).expect_code(0);
    assert!(run.stderr.contains("the order in flight is gone: starting a new one"), "{}", run.stderr);
    assert!(run.stderr.contains(&gone), "{}", run.stderr);
    assert!(run.stdout.contains("web: renewed"), "{}", run.stdout);
    assert_eq!(pebble_orders(&pebble), 2, "a new order");
    let detail = renew_audit(&sb);
    assert!(!detail.contains(&gone) && !detail.contains(&order_url), "{detail}");
    assert_installed(&sb, &pebble);
}
