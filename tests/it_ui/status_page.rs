//! The status page of a real daemon in headless Chromium: sign in through the form, the
//! overview and its timeline (a bar followed to exactly its certificates), the inventory
//! filtered to expiring code-signing certificates, one opened, its alert acknowledged from the
//! page and the change seen in the store and the audit log, then the alerts, renewals and audit
//! pages; a screenshot of each page under `target/ui-screenshots/`, each checked not blank; the
//! page at phone width without sideways scrolling; no script on any page.

use crate::common;

use common::daemon::Daemon;
use common::webdriver::Browser;
use common::*;
use rcgen::ExtendedKeyUsagePurpose;
use std::time::Duration;

const TOKEN: &str = "browser-token-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(10);

/// Code-signing certificates beside the fixtures: one inside its critical window, one inside its
/// warning window (code signing warns 90 days ahead), so "expiring code signing" is two rows.
fn signer(name: &'static str, cn: &'static str, serial: &'static [u8], days_left: i64) -> Issued {
    issue(
        Spec {
            eku: vec![ExtendedKeyUsagePurpose::CodeSigning],
            sans: vec![],
            ..Spec::leaf(name, cn, serial, -300 * DAY, days_left * DAY, KeyKind::P256)
        },
        Some(&fixtures().inter),
    )
}

fn daemon(sb: &Sandbox) -> (Daemon, Issued, Issued) {
    let f = fixtures();
    for (file, c) in [("valid", &f.valid), ("expired", &f.expired), ("expiring", &f.expiring), ("codesign", &f.codesign), ("rsa", &f.rsa)] {
        sb.write(&format!("certs/{file}.pem"), &c.cert.pem);
    }
    let critical = signer("signer-critical", "release-signing.example.test", &[0x70, 0x01], 20);
    let warning = signer("signer-warning", "firmware-signing.example.test", &[0x70, 0x02], 60);
    sb.write("certs/signing/critical.pem", &critical.cert.pem);
    sb.write("certs/signing/warning.pem", &warning.cert.pem);
    sb.config(
        "sources:
  - name: servers
    kind: files
    paths: [certs]
    exclude: ['signing/**']
  - name: signing
    kind: files
    paths: [certs/signing]
    tags: [release]
owners:
  teams:
    - {name: release-eng, contact: release-eng@example.test}
  rules:
    - {owner: release-eng, match: {source: [signing]}}
daemon:
  token: \"${env:CV_TOKEN}\"
jobs:
  - {name: scan, kind: scan, schedule: '@hourly'}
  - {name: evaluate, kind: evaluate, schedule: '@hourly'}
",
    );
    let d = Daemon::start(sb, sb.command_at(NOW), TOKEN);
    d.wait_jobs_done(Duration::from_secs(60));
    (d, critical, warning)
}

async fn texts(b: &Browser, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in b.find_all(css).await.unwrap() {
        out.push(e.text().await.unwrap());
    }
    out
}

async fn no_script_and_fits(b: &Browser, page: &str) {
    let scripts = b.execute("return document.scripts.length;", &[]).await.unwrap();
    assert_eq!(scripts, 0, "{page}: the page carries a script");
    let fits = b.execute("return document.documentElement.scrollWidth <= window.innerWidth;", &[]).await.unwrap();
    assert_eq!(fits, true, "{page}: the page scrolls sideways");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_filter_open_acknowledge_and_follow_the_timeline() {
    let sb = Sandbox::new();
    let (d, critical, warning) = daemon(&sb);
    let base = format!("http://127.0.0.1:{}", d.port);
    let b = Browser::start().await;

    // Signing in: the inventory sends the browser to the form, which returns it there.
    b.goto(&format!("{base}/ui/certificates")).await.unwrap();
    b.wait_for("#token", WAIT).await.unwrap();
    assert!(b.current_url().await.unwrap().contains("/ui/login?next=%2Fui%2Fcertificates"));
    b.save_screenshot("login").await.unwrap();
    b.find("#token").await.unwrap().send_keys(TOKEN).await.unwrap();
    b.click_and_load("main form button[type=submit]", WAIT).await.unwrap();
    b.wait_for("table#certificates", WAIT).await.unwrap();
    assert_eq!(b.current_url().await.unwrap(), format!("{base}/ui/certificates"));
    let cookies = b.cookies().await.unwrap();
    let session = cookies.iter().find(|c| c.name == "certvigil_session").expect("a session cookie");
    assert!(session.http_only && session.same_site.as_deref() == Some("Strict") && session.path == "/ui", "{session:?}");
    assert_eq!(b.execute("return document.cookie;", &[]).await.unwrap(), "", "the session cookie is out of script's reach");

    // The overview: counts that match the inventory, and the timeline.
    b.goto(&format!("{base}/ui/")).await.unwrap();
    b.wait_for("svg.timeline", WAIT).await.unwrap();
    let total: usize =
        sb.db().query_row("SELECT count(*) FROM certificates WHERE gone_since IS NULL", [], |r| r.get::<_, i64>(0)).unwrap() as usize;
    let cards = texts(&b, ".card").await;
    assert!(cards.iter().any(|c| c.starts_with(&format!("{total}\n")) || c.starts_with(&format!("{total} "))), "{cards:?}");
    no_script_and_fits(&b, "overview").await;
    let shot = b.save_screenshot("overview").await.unwrap();
    assert!(shot.colours >= 8, "{shot:?}");

    // Follow the bar of the critical signer's expiry day: exactly that day's certificates.
    let day = {
        let t = critical.cert.not_after;
        let (y, m, dd, ..) = certvigil::model::civil_from_unix(t).unwrap();
        format!("{y:04}-{m:02}-{dd:02}")
    };
    let bar = format!("svg.timeline a[href*='expires={day}']");
    b.find(&bar).await.unwrap_or_else(|e| panic!("no bar for {day}: {e}"));
    b.click_and_load(&bar, WAIT).await.unwrap();
    b.wait_for("table#certificates", WAIT).await.unwrap();
    assert!(b.current_url().await.unwrap().contains(&format!("expires={day}")));
    let rows = b.find_all("table#certificates tbody tr").await.unwrap();
    let mut fps = Vec::new();
    for r in &rows {
        fps.push(r.attr("data-fingerprint").await.unwrap().unwrap_or_default());
    }
    assert!(fps.contains(&critical.cert.fingerprint), "{fps:?}");
    let same_day = sb
        .db()
        .query_row(
            "SELECT count(*) FROM certificates WHERE gone_since IS NULL AND not_after / 86400 = ?1 / 86400",
            [critical.cert.not_after],
            |r| r.get::<_, i64>(0),
        )
        .unwrap();
    assert_eq!(fps.len() as i64, same_day, "the bar leads to exactly its day's certificates");

    // Filter to expiring code-signing certificates with the page's own form.
    b.goto(&format!("{base}/ui/certificates")).await.unwrap();
    b.wait_for("form.filters", WAIT).await.unwrap();
    b.find("#status option[value=expiring]").await.unwrap().click().await.unwrap();
    b.find("#eku option[value=codeSigning]").await.unwrap().click().await.unwrap();
    b.click_and_load("form.filters button[type=submit]", WAIT).await.unwrap();
    b.wait_for("table#certificates", WAIT).await.unwrap();
    let url = b.current_url().await.unwrap();
    assert!(url.contains("status=expiring") && url.contains("eku=codeSigning"), "{url}");
    let mut fps = Vec::new();
    for r in b.find_all("table#certificates tbody tr").await.unwrap() {
        fps.push(r.attr("data-fingerprint").await.unwrap().unwrap_or_default());
    }
    fps.sort();
    let mut want = vec![critical.cert.fingerprint.clone(), warning.cert.fingerprint.clone()];
    want.sort();
    assert_eq!(fps, want, "expiring code signing: the two signers, not the valid code-signing certificate");
    let owners = texts(&b, "table#certificates tbody td:nth-child(6)").await;
    assert_eq!(owners, ["release-eng", "release-eng"], "the owner column, from the owners rule");
    let statuses = texts(&b, "table#certificates tbody td .badge[class*='u-']").await;
    assert!(statuses.iter().all(|s| s.starts_with("expiring")), "status written as a word: {statuses:?}");
    no_script_and_fits(&b, "inventory").await;
    b.save_screenshot("inventory").await.unwrap();

    // Open the critical one and acknowledge its alert from its page.
    b.click_and_load(&format!("tr[data-fingerprint='{}'] td a", critical.cert.fingerprint), WAIT).await.unwrap();
    b.wait_for("#h-findings", WAIT).await.unwrap();
    assert_eq!(b.find("main h1").await.unwrap().text().await.unwrap(), "release-signing.example.test");
    let facts = b.find("dl.facts").await.unwrap().text().await.unwrap();
    assert!(facts.contains("release-eng <release-eng@example.test> (from owners rule 1)"), "{facts}");
    let findings = texts(&b, "section[aria-labelledby=h-findings] tbody tr").await;
    assert!(findings.iter().any(|f| f.contains("expiring")), "{findings:?}");
    b.save_screenshot("certificate").await.unwrap();
    let alert: i64 = sb
        .db()
        .query_row(
            "SELECT a.id FROM alerts a JOIN certificates c ON c.id = a.cert_id WHERE c.fingerprint = ?1",
            [&critical.cert.fingerprint],
            |r| r.get(0),
        )
        .expect("an alert for the critical signer");
    let form = format!("form.ack[action='/ui/alerts/{alert}/ack']");
    b.find(&format!("{form} input[name=note]")).await.unwrap().send_keys("rotating the signing key today").await.unwrap();
    b.find(&format!("{form} input[name=by]")).await.unwrap().send_keys("Dana").await.unwrap();
    b.click_and_load(&format!("{form} button"), WAIT).await.unwrap();
    if let Err(e) = b.wait_for(&format!("tr[data-alert='{alert}'] .state-acknowledged"), WAIT).await {
        let text = b.find("body").await.unwrap().text().await.unwrap();
        panic!("{e}: at {}:\n{text}\nlog:\n{}", b.current_url().await.unwrap(), d.log_text());
    }
    assert!(b.current_url().await.unwrap().ends_with(&format!("/ui/certificates/{}", critical.cert.fingerprint)));
    let (state, by, note): (String, String, String) = sb
        .db()
        .query_row("SELECT state, acked_by, ack_note FROM alerts WHERE id = ?1", [alert], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap();
    assert_eq!((state.as_str(), by.as_str(), note.as_str()), ("acknowledged", "Dana (status page)", "rotating the signing key today"));
    assert!(b.find_all(&form).await.unwrap().is_empty(), "an acknowledged alert offers no acknowledge form");

    // The alerts, renewals and audit pages, the acknowledgement on the last.
    b.goto(&format!("{base}/ui/alerts")).await.unwrap();
    b.wait_for("table#alerts", WAIT).await.unwrap();
    b.save_screenshot("alerts").await.unwrap();
    b.goto(&format!("{base}/ui/renewals")).await.unwrap();
    b.wait_for("table#renewals", WAIT).await.unwrap();
    b.save_screenshot("renewals").await.unwrap();
    b.goto(&format!("{base}/ui/audit")).await.unwrap();
    b.wait_for("table#audit", WAIT).await.unwrap();
    let audit = texts(&b, "table#audit tbody tr").await;
    assert!(audit.first().is_some_and(|r| r.contains("ack") && r.contains("Dana (status page)")), "{audit:?}");
    assert!(b.find(".ok-notice").await.unwrap().text().await.unwrap().starts_with("Hash chain intact"));
    b.save_screenshot("audit").await.unwrap();

    // The timeline stacked by owner; the orphans' bar leads to `owner=none`, and the owner
    // filter finds exactly the certificates nobody owns.
    b.goto(&format!("{base}/ui/?by=owner")).await.unwrap();
    b.wait_for("svg.timeline", WAIT).await.unwrap();
    let legend = texts(&b, "ul.legend li").await;
    assert!(legend.iter().any(|l| l.trim() == "release-eng"), "{legend:?}");
    b.goto(&format!("{base}/ui/certificates?owner=none")).await.unwrap();
    b.wait_for("table#certificates", WAIT).await.unwrap();
    let orphans = b.find_all("table#certificates tbody tr").await.unwrap().len();
    let signing: i64 = sb
        .db()
        .query_row("SELECT count(DISTINCT cert_id) FROM sightings WHERE source = 'signing' AND gone_since IS NULL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(orphans as i64, total as i64 - signing, "owner=none: every certificate the rule does not give to release-eng");

    // At phone width: the inventory still reads without sideways scrolling.
    b.set_window_size(390, 844).await.unwrap();
    b.goto(&format!("{base}/ui/certificates")).await.unwrap();
    b.wait_for("table#certificates", WAIT).await.unwrap();
    no_script_and_fits(&b, "inventory at phone width").await;
    b.save_screenshot("inventory-phone").await.unwrap();

    // Signing out from the header ends the session.
    b.click_and_load("header form button", WAIT).await.unwrap();
    b.wait_for("#token", WAIT).await.unwrap();
    b.goto(&format!("{base}/ui/alerts")).await.unwrap();
    b.wait_for("#token", WAIT).await.unwrap();
}
