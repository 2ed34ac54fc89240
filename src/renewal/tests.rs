//! Unit tests of the renewal decision, with fixed times.

use super::*;

const NOW: i64 = 1_780_272_000;
const DAY: i64 = 86_400;

fn cert(not_before: i64, not_after: i64) -> CertFacts {
    CertFacts {
        fingerprint: crate::model::Fingerprint("ab".repeat(32)),
        subject: "CN=web".into(),
        issuer: "CN=CA".into(),
        common_name: Some("web".into()),
        serial: "0087654321".into(),
        not_before,
        not_after,
        spki_sha256: "cd".repeat(32),
        key: crate::model::KeyFacts { algorithm: "EC".into(), bits: Some(256), curve: Some("P-256".into()) },
        signature_algorithm: "ecdsa-with-SHA256".into(),
        is_ca: false,
        path_len: None,
        key_usage: vec![],
        ext_key_usage: vec![],
        sans: vec![],
        ocsp_urls: vec![],
        ca_issuers_urls: vec![],
        crl_urls: vec![],
        aki: Some("69885b6b87464041e1b37b847ba0ae2cde01c8d4".into()),
        ski: None,
        self_issued: false,
        warnings: vec![],
    }
}

fn inputs<'a>(c: Option<&'a CertFacts>, row: &'a RenewalRow) -> Inputs<'a> {
    Inputs { renew_before: None, installed: c, row, revoked: false, force: false }
}

#[test]
fn ari_cert_id_matches_rfc_9773_example() {
    // RFC 9773 §4.1: keyIdentifier 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4,
    // serial 00:87:65:43:21.
    let id = ari_cert_id(Some("69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4"), "00:87:65:43:21");
    assert_eq!(id.as_deref(), Some("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"));
    assert_eq!(cert_id_of(&cert(0, 1)).as_deref(), Some("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"));
    assert_eq!(ari_cert_id(None, "01"), None);
}

#[test]
fn lifetime_rule_and_renew_before() {
    let c = cert(NOW - 60 * DAY, NOW + 30 * DAY);
    let row = RenewalRow::new("web");
    // 90-day lifetime: two thirds at day 60, which is now.
    assert_eq!(decide(&inputs(Some(&c), &row), NOW), Decision::Renew(Reason::Lifetime { at: NOW, fraction: (2, 3) }));
    assert_eq!(decide(&inputs(Some(&c), &row), NOW - 1), Decision::Wait { until: NOW, ari: false });
    let mut i = inputs(Some(&c), &row);
    i.renew_before = Some(10 * DAY);
    assert_eq!(decide(&i, NOW), Decision::Wait { until: NOW + 20 * DAY, ari: false });
    assert_eq!(decide(&i, NOW + 20 * DAY), Decision::Renew(Reason::RenewBefore { at: NOW + 20 * DAY }));
}

#[test]
fn a_short_lived_certificate_renews_at_half_its_lifetime() {
    // Let's Encrypt's short-lived profile: 160 hours (notAfter − notBefore = 160 h − 1 s).
    let c = cert(NOW, NOW + 160 * 3600 - 1);
    let row = RenewalRow::new("web");
    let half = NOW + (160 * 3600 - 1) / 2;
    assert_eq!(decide(&inputs(Some(&c), &row), half - 1), Decision::Wait { until: half, ari: false });
    let d = decide(&inputs(Some(&c), &row), half);
    assert_eq!(d, Decision::Renew(Reason::Lifetime { at: half, fraction: (1, 2) }));
    let Decision::Renew(r) = d else { unreachable!() };
    assert!(r.to_string().starts_with("half of the lifetime passed at "), "{r}");
    // Eleven days is not short-lived: two thirds.
    let c = cert(NOW, NOW + 11 * DAY);
    assert_eq!(decide(&inputs(Some(&c), &row), NOW), Decision::Wait { until: NOW + 11 * DAY * 2 / 3, ari: false });
}

#[test]
fn nothing_installed_revoked_expired_and_force() {
    let row = RenewalRow::new("web");
    assert_eq!(decide(&inputs(None, &row), NOW), Decision::Renew(Reason::NoCertificate));
    let c = cert(NOW - DAY, NOW + 80 * DAY);
    let mut i = inputs(Some(&c), &row);
    assert!(matches!(decide(&i, NOW), Decision::Wait { .. }));
    i.revoked = true;
    assert_eq!(decide(&i, NOW), Decision::Renew(Reason::Revoked));
    i.revoked = false;
    assert_eq!(decide(&i, NOW + 81 * DAY), Decision::Renew(Reason::Expired));
    i.force = true;
    assert_eq!(decide(&i, NOW), Decision::Renew(Reason::Forced));
}

#[test]
fn backoff_is_persisted_and_force_ignores_it() {
    assert_eq!([1, 2, 3, 4, 9].map(backoff_delay), [60, 600, 6_000, 86_400, 86_400]);
    let c = cert(NOW - 80 * DAY, NOW + 10 * DAY);
    let mut row = RenewalRow::new("web");
    row.failures = 2;
    row.next_attempt = Some(NOW + 600);
    let mut i = inputs(Some(&c), &row);
    assert_eq!(decide(&i, NOW), Decision::Backoff { until: NOW + 600, failures: 2 });
    // Once the backoff has passed, the normal rules apply again.
    assert_eq!(decide(&i, NOW + 600), Decision::Renew(Reason::Lifetime { at: NOW - 80 * DAY + 60 * DAY, fraction: (2, 3) }));
    i.force = true;
    assert_eq!(decide(&i, NOW), Decision::Renew(Reason::Forced));
    // Backoff applies to a first issuance too.
    let i = inputs(None, &row);
    assert!(matches!(decide(&i, NOW), Decision::Backoff { .. }));
}

#[test]
fn order_in_flight_is_resumed_before_anything_else() {
    let c = cert(NOW - DAY, NOW + 80 * DAY);
    let mut row = RenewalRow::new("web");
    row.order_url = Some("https://ca/order/1".into());
    assert_eq!(decide(&inputs(Some(&c), &row), NOW), Decision::Renew(Reason::Resume));
    row.order_url = None;
    row.pending_chain = Some("/s/acme/pending/web.chain.pem".into());
    assert_eq!(decide(&inputs(Some(&c), &row), NOW), Decision::Renew(Reason::Resume));
    // A first issuance interrupted is resumed too.
    assert_eq!(decide(&inputs(None, &row), NOW), Decision::Renew(Reason::Resume));
}

#[test]
fn ari_window_decides_when_present() {
    let c = cert(NOW - 10 * DAY, NOW + 80 * DAY);
    let mut row = RenewalRow::new("web");
    row.ari_cert_id = cert_id_of(&c);
    row.ari_start = Some(NOW + DAY);
    row.ari_end = Some(NOW + 2 * DAY);
    // Not chosen yet: wait for the window's start.
    assert_eq!(decide(&inputs(Some(&c), &row), NOW), Decision::Wait { until: NOW + DAY, ari: true });
    row.renew_at = Some(NOW + DAY + 3600);
    assert_eq!(decide(&inputs(Some(&c), &row), NOW), Decision::Wait { until: NOW + DAY + 3600, ari: true });
    assert_eq!(
        decide(&inputs(Some(&c), &row), NOW + DAY + 3600),
        Decision::Renew(Reason::AriWindow { start: NOW + DAY, end: NOW + 2 * DAY })
    );
    // Past the window: immediately, even though the lifetime rule would say wait.
    assert_eq!(decide(&inputs(Some(&c), &row), NOW + 2 * DAY), Decision::Renew(Reason::AriWindowPassed { end: NOW + 2 * DAY }));
    // ARI overrides the lifetime rule the other way too: an early window renews early.
    row.ari_start = Some(NOW - 2 * DAY);
    row.ari_end = Some(NOW - DAY);
    assert_eq!(decide(&inputs(Some(&c), &row), NOW), Decision::Renew(Reason::AriWindowPassed { end: NOW - DAY }));
    // A window for another certificate (before a renewal) is ignored.
    row.ari_cert_id = Some("other.AQ".into());
    assert!(matches!(decide(&inputs(Some(&c), &row), NOW), Decision::Wait { ari: false, .. }));
}

#[test]
fn ari_polling_follows_retry_after_and_stops_after_expiry() {
    let c = cert(NOW - 10 * DAY, NOW + 80 * DAY);
    let mut row = RenewalRow::new("web");
    assert!(ari_poll_due(&row, Some(&c), NOW), "never asked");
    row.ari_cert_id = cert_id_of(&c);
    row.ari_next_poll = Some(next_ari_poll(NOW, 21_600));
    assert_eq!(row.ari_next_poll, Some(NOW + 21_600));
    assert!(!ari_poll_due(&row, Some(&c), NOW + 21_599));
    assert!(ari_poll_due(&row, Some(&c), NOW + 21_600));
    assert!(!ari_poll_due(&row, Some(&c), NOW + 81 * DAY), "expired: no more polling");
    assert!(!ari_poll_due(&row, None, NOW));
    // Bounds: a server asking for 1 s or a year gets 1 min or 1 day.
    assert_eq!(next_ari_poll(NOW, 1), NOW + 60);
    assert_eq!(next_ari_poll(NOW, 365 * DAY), NOW + DAY);
}

#[test]
fn picks_inside_the_window() {
    for r in [0, 1, 12_345, u64::MAX] {
        let t = pick_in_window(NOW, NOW + DAY, r);
        assert!((NOW..=NOW + DAY).contains(&t), "{t}");
    }
    assert_eq!(pick_in_window(NOW, NOW - 5, 7), NOW);
}
