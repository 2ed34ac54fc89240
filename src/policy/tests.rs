//! Table tests of the policy checks at fixed times, including the boundaries.

use super::*;
use crate::model::{CertFacts, Fingerprint, KeyFacts};

const DAY: i64 = 86_400;
/// 2028-02-29T00:00:00Z, a leap day.
const LEAP: i64 = 1_835_395_200;

fn cert(id: i64, not_before: i64, not_after: i64) -> CertRow {
    CertRow {
        id,
        facts: CertFacts {
            fingerprint: Fingerprint(format!("{id:064x}")),
            subject: format!("CN=c{id}"),
            issuer: "CN=CA".into(),
            common_name: Some(format!("c{id}")),
            serial: format!("{id:02X}"),
            not_before,
            not_after,
            spki_sha256: format!("{id:064x}"),
            key: KeyFacts { algorithm: "EC".into(), bits: Some(256), curve: Some("P-256".into()) },
            signature_algorithm: "ecdsa-with-SHA256".into(),
            is_ca: false,
            path_len: None,
            key_usage: vec![],
            ext_key_usage: vec!["serverAuth".into()],
            sans: vec![],
            ocsp_urls: vec![],
            ca_issuers_urls: vec![],
            crl_urls: vec![],
            aki: None,
            ski: None,
            self_issued: false,
            warnings: vec![],
        },
        first_seen: not_before,
        gone_since: None,
        current_sightings: 1,
        sources: vec!["web".into()],
    }
}

fn state(c: &CertRow) -> CertState<'_> {
    CertState {
        cert: c,
        tags: vec![],
        revocation: None,
        revocation_unknown_since: None,
        key_first_seen: c.facts.not_before,
        superseded_by: None,
        untrusted_at: Vec::new(),
        cert_manager_not_ready: Vec::new(),
        renewal: None,
        publicly_trusted: false,
        ari: None,
    }
}

fn kinds(policy: &PolicySpec, st: &CertState<'_>, now: i64) -> Vec<(Kind, Severity)> {
    evaluate(policy, std::slice::from_ref(st), now).into_iter().map(|f| (f.kind, f.severity)).collect()
}

#[test]
fn expiry_boundaries_for_a_one_year_certificate() {
    let p = PolicySpec::default();
    let nb = LEAP - 300 * DAY;
    let na = LEAP + 65 * DAY; // 365-day lifetime: 30 d and 7 d windows (fractions are larger)
    let c = cert(1, nb, na);
    let st = state(&c);
    let table: &[(i64, &[(Kind, Severity)])] = &[
        (na - 30 * DAY - 1, &[]),
        (na - 30 * DAY, &[(Kind::Expiring, Severity::Warning)]),
        (na - 7 * DAY - 1, &[(Kind::Expiring, Severity::Warning)]),
        (na - 7 * DAY, &[(Kind::Expiring, Severity::Critical)]),
        (na, &[(Kind::Expiring, Severity::Critical)]),
        (na + 1, &[(Kind::Expired, Severity::Critical)]),
        (nb - 1, &[(Kind::NotYetValid, Severity::Warning)]),
        (nb, &[]),
    ];
    for (now, want) in table {
        assert_eq!(kinds(&p, &st, *now), *want, "at now = notAfter{:+}s", now - na);
    }
}

#[test]
fn leap_day_is_counted() {
    // Expires at the end of 2028-03-30; 30 days before it, counted across 29 February, is
    // 2028-02-29 (a non-leap year would give 1 March).
    let na = LEAP + 30 * DAY;
    let c = cert(2, na - 365 * DAY, na);
    let st = state(&c);
    let p = PolicySpec::default();
    assert_eq!(kinds(&p, &st, LEAP - 1), vec![]);
    assert_eq!(kinds(&p, &st, LEAP), vec![(Kind::Expiring, Severity::Warning)]);
    let f = evaluate(&p, &[st], LEAP);
    assert!(f[0].reason.contains("2028-03-30"), "{}", f[0].reason);
    assert!(f[0].reason.contains("in 30 days"), "{}", f[0].reason);
}

#[test]
fn short_lived_certificates_use_the_lifetime_fraction() {
    let p = PolicySpec::default();
    let nb = LEAP;
    let na = LEAP + DAY; // valid for 24 hours
    let c = cert(3, nb, na);
    let st = state(&c);
    // 33% of 24 h = 7.92 h; 10% = 2.4 h. Not "expiring" for most of its life.
    assert_eq!(kinds(&p, &st, nb + 3600), vec![]);
    assert_eq!(kinds(&p, &st, na - 7 * 3600 - 3600), vec![]);
    assert_eq!(kinds(&p, &st, na - 7 * 3600), vec![(Kind::Expiring, Severity::Warning)]);
    assert_eq!(kinds(&p, &st, na - 2 * 3600), vec![(Kind::Expiring, Severity::Critical)]);
    let f = evaluate(&p, std::slice::from_ref(&st), na - 2 * 3600);
    assert!(f[0].reason.contains("in 2 hours"), "{}", f[0].reason);
    // The plan says why it warns so late: the lifetime fraction set the window, not the days.
    assert!(f[0].reason.ends_with("; critical window 2 h = 10% of its 1 day lifetime (not 7 days)"), "{}", f[0].reason);
    let f = evaluate(&p, &[st], na - 7 * 3600);
    assert!(f[0].reason.ends_with("; warning window 7 h = 33% of its 1 day lifetime (not 30 days)"), "{}", f[0].reason);
    // A one-year certificate warns by days, and says nothing more.
    let long = cert(5, LEAP, LEAP + 365 * DAY);
    let f = evaluate(&p, &[state(&long)], LEAP + 360 * DAY);
    assert!(f[0].reason.ends_with("(in 5 days)"), "{}", f[0].reason);
}

#[test]
fn lifetime_over_limit_binds_publicly_trusted_tls_servers_by_their_issue_date() {
    let p = PolicySpec::default();
    let over = |kinds: Vec<(Kind, Severity)>| kinds.contains(&(Kind::LifetimeOverLimit, Severity::Critical));
    // 2028-02-29: the 100-day limit (SC-081, from 2027-03-15). 100 days inclusive is allowed,
    // one second more is not.
    let at_limit = cert(20, LEAP, LEAP + 100 * DAY - 1);
    let beyond = cert(21, LEAP, LEAP + 100 * DAY);
    let public = |c| {
        let mut st = state(c);
        st.publicly_trusted = true;
        st
    };
    assert!(!over(kinds(&p, &public(&at_limit), LEAP + DAY)));
    assert!(over(kinds(&p, &public(&beyond), LEAP + DAY)));
    let f = evaluate(&p, &[public(&beyond)], LEAP + DAY);
    let f = f.iter().find(|f| f.kind == Kind::LifetimeOverLimit).unwrap();
    assert!(f.reason.contains("valid for 100 days 0 h") || f.reason.contains("valid for 100 days"), "{}", f.reason);
    assert!(f.reason.contains("more than the 100 days allowed") && f.reason.contains("SC-081"), "{}", f.reason);
    // Private (no chain to a system root): the CA/B rules do not apply.
    assert!(!over(kinds(&p, &state(&beyond), LEAP + DAY)));
    // A CA certificate, or a certificate that is not a TLS server's, is not bound by them.
    let mut ca = beyond.clone();
    ca.facts.is_ca = true;
    assert!(!over(kinds(&p, &public(&ca), LEAP + DAY)));
    let mut client = beyond.clone();
    client.facts.ext_key_usage = vec!["clientAuth".into()];
    assert!(!over(kinds(&p, &public(&client), LEAP + DAY)));
    // Expired: `expired` says all there is to say.
    assert!(!over(kinds(&p, &public(&beyond), LEAP + 101 * DAY)));
    // The date of issue decides, not today: 398 days was allowed on 2021-01-01.
    let nb = crate::model::unix_from_civil(2021, 1, 1, 0, 0, 0).unwrap();
    let (allowed, too_long) = (cert(22, nb, nb + 398 * DAY - 1), cert(23, nb, nb + 398 * DAY));
    assert!(!over(kinds(&p, &public(&allowed), nb)));
    assert!(over(kinds(&p, &public(&too_long), nb)));
}

#[test]
fn code_signing_certificates_warn_earlier_and_rules_override() {
    let mut c = cert(4, LEAP - 700 * DAY, LEAP + 60 * DAY);
    c.facts.ext_key_usage = vec!["codeSigning".into()];
    let st = state(&c);
    let mut p = PolicySpec::default();
    assert_eq!(kinds(&p, &st, LEAP), vec![(Kind::Expiring, Severity::Warning)], "90-day warning for signers");
    assert_eq!(kinds(&p, &st, LEAP + 31 * DAY), vec![(Kind::Expiring, Severity::Critical)]);
    // A rule for a tag wins over the code-signing defaults.
    p.rules.push(Rule {
        matcher: Match { tags: vec!["lab".into()], ..Match::default() },
        warning_days: Some(10),
        critical_days: Some(2),
        ..Rule::default()
    });
    let mut st = state(&c);
    st.tags = vec!["lab".into()];
    assert_eq!(kinds(&p, &st, LEAP), vec![]);
    assert_eq!(kinds(&p, &st, LEAP + 50 * DAY), vec![(Kind::Expiring, Severity::Warning)]);
}

#[test]
fn key_age_is_measured_from_the_first_certificate_with_the_key() {
    let c = cert(5, LEAP - 100 * DAY, LEAP + 300 * DAY);
    let mut st = state(&c);
    st.key_first_seen = LEAP - 800 * DAY; // renewed with the same key
    let mut p = PolicySpec { max_key_age: Some(730 * DAY), ..PolicySpec::default() };
    assert_eq!(kinds(&p, &st, LEAP), vec![(Kind::KeyTooOld, Severity::Warning)]);
    st.key_first_seen = LEAP - 730 * DAY;
    assert_eq!(kinds(&p, &st, LEAP), vec![], "exactly max_key_age is not too old");
    p.max_key_age = None;
    st.key_first_seen = LEAP - 5000 * DAY;
    assert_eq!(kinds(&p, &st, LEAP), vec![]);
}

#[test]
fn revocation_findings() {
    let c = cert(6, LEAP - 10 * DAY, LEAP + 300 * DAY);
    let p = PolicySpec::default();
    let mut r = RevocationStatus::unknown("responder down", LEAP);
    let mut st = state(&c);
    st.revocation = Some(&r);
    st.revocation_unknown_since = Some(LEAP - DAY + 1);
    assert_eq!(kinds(&p, &st, LEAP), vec![], "inside the grace");
    st.revocation_unknown_since = Some(LEAP - DAY);
    assert_eq!(kinds(&p, &st, LEAP), vec![(Kind::RevocationUnknown, Severity::Warning)]);
    let ignore = PolicySpec { ignore_unknown_revocation: true, ..PolicySpec::default() };
    assert_eq!(kinds(&ignore, &st, LEAP), vec![]);
    r.state = RevocationState::Revoked;
    r.reason = Some("keyCompromise".into());
    r.revoked_at = Some(LEAP - 3600);
    let mut st = state(&c);
    st.revocation = Some(&r);
    let f = evaluate(&p, &[st], LEAP);
    assert_eq!((f[0].kind, f[0].severity), (Kind::Revoked, Severity::Critical));
    assert!(f[0].reason.contains("keyCompromise"));
    assert!(f[0].action.contains("new key"));
    r.state = RevocationState::Good;
    r.stale = true;
    let mut st = state(&c);
    st.revocation = Some(&r);
    assert_eq!(kinds(&p, &st, LEAP), vec![(Kind::RevocationStale, Severity::Warning)]);
}

#[test]
fn weak_keys_and_signatures() {
    let p = PolicySpec::default();
    let mut c = cert(7, LEAP - DAY, LEAP + 300 * DAY);
    c.facts.key = KeyFacts { algorithm: "RSA".into(), bits: Some(1024), curve: None };
    c.facts.signature_algorithm = "sha1WithRSAEncryption".into();
    let got = kinds(&p, &state(&c), LEAP);
    assert_eq!(got, vec![(Kind::WeakKey, Severity::Warning), (Kind::WeakSignature, Severity::Warning)]);
    c.facts.key.bits = Some(2048);
    c.facts.self_issued = true; // a trust anchor's own SHA-1 signature is not used
    assert_eq!(kinds(&p, &state(&c), LEAP), vec![]);
}

#[test]
fn superseded_and_retired() {
    let p = PolicySpec::default();
    let c = cert(8, LEAP - 60 * DAY, LEAP + 300 * DAY);
    let mut st = state(&c);
    st.superseded_by = Some(("ab".repeat(32), LEAP - DAY));
    assert_eq!(kinds(&p, &st, LEAP), vec![(Kind::Superseded, Severity::Warning)]);
    let mut gone = cert(9, LEAP - 400 * DAY, LEAP - 10 * DAY);
    gone.gone_since = Some(LEAP - 5 * DAY);
    assert_eq!(kinds(&p, &state(&gone), LEAP), vec![(Kind::Retired, Severity::Info)], "no expiry finding for a retired certificate");
    assert_eq!(kinds(&p, &state(&gone), LEAP + 40 * DAY), vec![]);
}

fn view(failures: i64, renew_at: Option<i64>, ari_end: Option<i64>) -> renewal::RenewalView {
    renewal::RenewalView {
        name: "web".into(),
        failures,
        last_error: Some("challenge failed".into()),
        next_attempt: None,
        renew_at,
        ari_end,
        alert_margin: 7 * DAY,
    }
}

#[test]
fn healthy_renewal_turns_expiry_into_information() {
    let p = PolicySpec::default();
    let na = LEAP + 20 * DAY; // 90-day certificate, inside the warning window
    let c = cert(1, na - 90 * DAY, na);
    let mut st = state(&c);
    assert_eq!(kinds(&p, &st, LEAP), [(Kind::Expiring, Severity::Warning)]);
    let healthy = view(0, Some(LEAP + DAY), None);
    st.renewal = Some(&healthy);
    assert_eq!(kinds(&p, &st, LEAP), [(Kind::Expiring, Severity::Info)]);
    // Inside the margin, expiry pages again whatever the schedule says.
    assert_eq!(kinds(&p, &st, na - 7 * DAY), [(Kind::Expiring, Severity::Critical)]);
    // A renewal planned after expiry minus the margin is not healthy.
    let late = view(0, Some(na - 6 * DAY), None);
    st.renewal = Some(&late);
    assert_eq!(kinds(&p, &st, LEAP), [(Kind::Expiring, Severity::Warning)]);
}

#[test]
fn failed_renewal_pages_then_escalates() {
    let p = PolicySpec::default();
    let na = LEAP + 60 * DAY;
    let c = cert(1, na - 90 * DAY, na);
    let mut st = state(&c);
    let once = view(1, Some(LEAP), None);
    st.renewal = Some(&once);
    assert_eq!(kinds(&p, &st, LEAP), [(Kind::RenewalFailed, Severity::Warning)]);
    let f = evaluate(&p, std::slice::from_ref(&st), LEAP);
    assert!(f[0].reason.contains("failed 1 time(s)") && f[0].reason.contains("challenge failed"), "{}", f[0].reason);
    let thrice = view(renewal::CRITICAL_AFTER_FAILURES, Some(LEAP), None);
    st.renewal = Some(&thrice);
    assert_eq!(kinds(&p, &st, LEAP), [(Kind::RenewalFailed, Severity::Critical)]);
    // Once less than the margin is left, one failure is critical too.
    st.renewal = Some(&once);
    assert!(kinds(&p, &st, na - 7 * DAY).contains(&(Kind::RenewalFailed, Severity::Critical)));
}

#[test]
fn missed_ari_window_is_overdue() {
    let p = PolicySpec::default();
    let na = LEAP + 60 * DAY;
    let c = cert(1, na - 90 * DAY, na);
    let mut st = state(&c);
    let v = view(0, Some(LEAP - 2 * DAY), Some(LEAP - DAY));
    st.renewal = Some(&v);
    assert_eq!(kinds(&p, &st, LEAP - DAY), []);
    assert_eq!(kinds(&p, &st, LEAP), [(Kind::RenewalOverdue, Severity::Warning)]);
}
