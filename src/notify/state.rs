//! The alert state machine (pure). One alert per (subject, finding kind) — the subject is a
//! certificate, a key object or a managed certificate (see `policy::Finding::subject`):
//! firing → acknowledged → resolved, with silences on top. Given the current findings, the open
//! alerts, the active silences and the routes, [`step`] returns the changes to make and the
//! notifications they cause; the store applies them in one transaction. Deciding here and
//! persisting in the store keeps every rule testable without a database: keep it that way.
//!
//! Rules: a new finding notifies every matching route once; a still-firing, unacknowledged,
//! unsilenced alert is re-notified after the route's interval for its severity; a rise in
//! severity notifies again (even when acknowledged); an alert nobody acknowledged within the
//! route's `escalate_after` is escalated once to `escalate_to`; a finding that disappears
//! resolves its alert, with a notice to the routes that were told about it.

use crate::config::alerts::Route;
use crate::model::UnixTime;
pub use crate::model::alert::{AlertState, Change, Event, Notify, OpenAlert, Silence};
use crate::model::finding::{Finding, Kind, Severity};
use std::collections::HashMap;

fn to_route(r: &Route, event: Event, severity: Severity) -> Notify {
    Notify { route: r.name.clone(), receivers: r.receivers.clone(), event, held: r.holds(severity) }
}

/// Computes the changes for one evaluation at `now`.
pub fn step(findings: &[Finding], open: &[OpenAlert], silences: &[Silence], routes: &[Route], now: UnixTime) -> Vec<Change> {
    let mut stepper = Stepper::new(open, silences, routes, now);
    let mut changes = stepper.step(findings);
    changes.extend(stepper.finish());
    changes
}

/// [`step`] over findings that come in batches: each batch's changes refer to that batch,
/// and [`Stepper::finish`] resolves the open alerts no batch had a finding for. The batches
/// together give exactly the changes `step` gives for all their findings at once.
pub struct Stepper<'a> {
    open: &'a [OpenAlert],
    active: Vec<&'a Silence>,
    routes: &'a [Route],
    now: UnixTime,
    seen: Vec<bool>,
    /// The open alert of each (subject, kind), the first when there are several: a lookup, not
    /// a search, so that a step is linear in findings plus alerts (46,750 of each took 12 s).
    by_subject: HashMap<(&'a str, Kind), usize>,
}

impl<'a> Stepper<'a> {
    pub fn new(open: &'a [OpenAlert], silences: &'a [Silence], routes: &'a [Route], now: UnixTime) -> Stepper<'a> {
        let mut by_subject: HashMap<(&str, Kind), usize> = HashMap::with_capacity(open.len());
        for (i, a) in open.iter().enumerate() {
            by_subject.entry((a.subject.as_str(), a.kind)).or_insert(i);
        }
        Stepper {
            open,
            active: silences.iter().filter(|s| s.expires_at > now).collect(),
            routes,
            now,
            seen: vec![false; open.len()],
            by_subject,
        }
    }

    /// The changes for one batch of findings (their `finding` indices are into `findings`).
    pub fn step(&mut self, findings: &[Finding]) -> Vec<Change> {
        let (open, routes, now) = (self.open, self.routes, self.now);
        let mut changes = Vec::new();
        for (i, f) in findings.iter().enumerate() {
            let silenced = self.active.iter().any(|s| s.matches(f));
            let matching: Vec<&Route> = routes.iter().filter(|r| !r.escalation_only && r.matcher.matches(f)).collect();
            let existing = self.by_subject.get(&(f.subject.as_str(), f.kind)).copied();
            let Some(ai) = existing else {
                let notify = if silenced { Vec::new() } else { matching.iter().map(|r| to_route(r, Event::Firing, f.severity)).collect() };
                changes.push(Change::Open { finding: i, notify });
                continue;
            };
            self.seen[ai] = true;
            let a = &open[ai];
            let mut notify = Vec::new();
            let mut escalated = false;
            let rose = f.severity > a.severity;
            if !silenced {
                if rose {
                    notify.extend(matching.iter().map(|r| to_route(r, Event::Firing, f.severity)));
                } else if a.state == AlertState::Firing {
                    for r in &matching {
                        let due = match a.last_notified_at {
                            // Never told (opened while silenced, or the route is new): tell now.
                            None => true,
                            Some(t) => a.told(&r.name).is_none() || r.renotify_after(f.severity).is_some_and(|iv| now - t >= iv),
                        };
                        if due {
                            let event =
                                if a.last_notified_at.is_none() || a.told(&r.name).is_none() { Event::Firing } else { Event::Reminder };
                            notify.push(to_route(r, event, f.severity));
                        }
                    }
                }
                if a.state == AlertState::Firing && a.escalated_at.is_none() {
                    for r in &matching {
                        // The deadline runs from when this route was first told (a warning alert
                        // that turns critical pages now and escalates `after` from now, not from
                        // when the warning opened).
                        if let (Some(after), Some(target)) = (r.escalate_after, &r.escalate_to)
                            && a.told(&r.name).is_some_and(|t0| now - t0 >= after)
                            && let Some(t) = routes.iter().find(|x| &x.name == target)
                        {
                            notify.push(Notify {
                                route: t.name.clone(),
                                receivers: t.receivers.clone(),
                                event: Event::Escalation,
                                held: false,
                            });
                            escalated = true;
                            break;
                        }
                    }
                }
            }
            changes.push(Change::Update { alert_id: a.id, finding: i, notify, escalated });
        }
        changes
    }

    /// Resolves the open alerts that no finding of any batch concerned.
    pub fn finish(self) -> Vec<Change> {
        let routes = self.routes;
        self.open
            .iter()
            .zip(&self.seen)
            .filter(|(_, s)| !**s)
            .map(|(a, _)| {
                let notify = routes
                    .iter()
                    .filter(|r| r.resolve_notice && a.told(&r.name).is_some())
                    .map(|r| Notify { route: r.name.clone(), receivers: r.receivers.clone(), event: Event::Resolved, held: r.digest })
                    .collect();
                Change::Resolve { alert_id: a.id, notify }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::alerts::RouteMatch;

    fn finding(cert_id: i64, kind: Kind, severity: Severity) -> Finding {
        Finding {
            subject: crate::policy::cert_subject(&format!("{cert_id:064x}")),
            subject_kind: crate::policy::SubjectKind::Certificate,
            cert_id: Some(cert_id),
            fingerprint: format!("{cert_id:064x}"),
            name: format!("c{cert_id}"),
            kind,
            severity,
            reason: "r".into(),
            action: "a".into(),
            sources: vec!["web".into()],
            tags: vec!["prod".into()],
            ekus: vec![],
            not_after: 0,
            owner: None,
            owner_contact: None,
        }
    }

    fn route(name: &str, severities: &[Severity]) -> Route {
        Route {
            name: name.into(),
            matcher: RouteMatch { severities: severities.to_vec(), ..RouteMatch::default() },
            receivers: vec![format!("{name}-rx")],
            digest: false,
            immediate_severity: Severity::Critical,
            renotify: [None, Some(7 * 86_400), Some(86_400)],
            escalate_after: None,
            escalate_to: None,
            resolve_notice: true,
            escalation_only: false,
        }
    }

    fn alert(id: i64, f: &Finding, opened: i64, notified: Option<i64>, routes: &[&str]) -> OpenAlert {
        OpenAlert {
            id,
            subject: f.subject.clone(),
            kind: f.kind,
            severity: f.severity,
            state: AlertState::Firing,
            opened_at: opened,
            last_notified_at: notified,
            escalated_at: None,
            routes_notified: routes.iter().map(|s| (s.to_string(), notified.unwrap_or(opened))).collect(),
        }
    }

    /// Findings in batches give the changes `step` gives for all of them at once: updates,
    /// reminders and escalations found in any batch, resolves only of alerts no batch saw.
    #[test]
    fn stepping_in_batches_equals_one_step() {
        let now = 1_000_000;
        let mut pages = route("pages", &[Severity::Critical, Severity::Warning]);
        pages.escalate_after = Some(3_600);
        pages.escalate_to = Some("boss".into());
        let mut boss = route("boss", &[]);
        boss.escalation_only = true;
        let routes = vec![pages, boss];
        let findings: Vec<Finding> = (0..50)
            .map(|i| {
                finding(
                    i,
                    if i % 3 == 0 { Kind::Expiring } else { Kind::Revoked },
                    if i % 2 == 0 { Severity::Critical } else { Severity::Warning },
                )
            })
            .collect();
        // Open alerts for every other finding (some told long ago, some never), and for
        // certificates with no finding any more (resolved).
        let mut open: Vec<OpenAlert> = findings
            .iter()
            .step_by(2)
            .enumerate()
            .map(|(i, f)| {
                let notified = if i % 4 == 0 { None } else { Some(now - 10 * 86_400) };
                alert(100 + i as i64, f, now - 20 * 86_400, notified, if notified.is_some() { &["pages"] } else { &[] })
            })
            .collect();
        open.extend(
            (1000..1010).map(|i| alert(i, &finding(i, Kind::Expired, Severity::Critical), now - 86_400, Some(now - 86_400), &["pages"])),
        );
        let whole = step(&findings, &open, &[], &routes, now);
        for size in [1, 7, 16, 50] {
            let mut stepper = Stepper::new(&open, &[], &routes, now);
            let mut batched = Vec::new();
            for (b, chunk) in findings.chunks(size).enumerate() {
                // Back to indices into all findings, to compare.
                batched.extend(stepper.step(chunk).into_iter().map(|c| match c {
                    Change::Open { finding, notify } => Change::Open { finding: finding + b * size, notify },
                    Change::Update { alert_id, finding, notify, escalated } => {
                        Change::Update { alert_id, finding: finding + b * size, notify, escalated }
                    }
                    other => other,
                }));
            }
            batched.extend(stepper.finish());
            assert_eq!(batched, whole, "batches of {size}");
        }
        let resolved = whole.iter().filter(|c| matches!(c, Change::Resolve { .. })).count();
        let escalated = whole.iter().filter(|c| matches!(c, Change::Update { escalated: true, .. })).count();
        let opened = whole.iter().filter(|c| matches!(c, Change::Open { .. })).count();
        assert_eq!((opened, resolved), (25, 10));
        assert!(escalated > 0, "{whole:?}");
    }

    fn events(changes: &[Change]) -> Vec<(String, Event)> {
        changes
            .iter()
            .flat_map(|c| match c {
                Change::Open { notify, .. } | Change::Update { notify, .. } | Change::Resolve { notify, .. } => notify.clone(),
            })
            .map(|n| (n.route, n.event))
            .collect()
    }

    #[test]
    fn new_finding_notifies_matching_routes_once() {
        let f = finding(1, Kind::Expiring, Severity::Warning);
        let routes = [route("mail", &[Severity::Warning, Severity::Critical]), route("pager", &[Severity::Critical])];
        let c = step(std::slice::from_ref(&f), &[], &[], &routes, 1000);
        assert_eq!(events(&c), vec![("mail".to_string(), Event::Firing)]);
        // The same finding on the next scan: nothing new until the interval passes.
        let open = [alert(7, &f, 1000, Some(1000), &["mail"])];
        assert_eq!(events(&step(std::slice::from_ref(&f), &open, &[], &routes, 2000)), vec![]);
        assert_eq!(
            events(&step(std::slice::from_ref(&f), &open, &[], &routes, 1000 + 7 * 86_400)),
            vec![("mail".to_string(), Event::Reminder)]
        );
    }

    #[test]
    fn severity_rise_notifies_even_when_acknowledged() {
        let routes = [route("mail", &[Severity::Warning, Severity::Critical]), route("pager", &[Severity::Critical])];
        let warn = finding(1, Kind::Expiring, Severity::Warning);
        let mut open = alert(7, &warn, 0, Some(0), &["mail"]);
        open.state = AlertState::Acknowledged;
        let crit = finding(1, Kind::Expiring, Severity::Critical);
        let got = events(&step(&[crit], &[open], &[], &routes, 10));
        assert_eq!(got, vec![("mail".to_string(), Event::Firing), ("pager".to_string(), Event::Firing)]);
    }

    #[test]
    fn acknowledged_alerts_get_no_reminders_or_escalation() {
        let mut r = route("pager", &[Severity::Critical]);
        r.escalate_after = Some(3600);
        r.escalate_to = Some("boss".into());
        let routes = [r, route("boss", &[Severity::Info])];
        let f = finding(1, Kind::Expired, Severity::Critical);
        let mut a = alert(1, &f, 0, Some(0), &["pager"]);
        // Unacknowledged past the deadline: escalated once.
        let c = step(std::slice::from_ref(&f), std::slice::from_ref(&a), &[], &routes, 7200);
        assert_eq!(events(&c), vec![("boss".to_string(), Event::Escalation)]);
        assert!(matches!(c[0], Change::Update { escalated: true, .. }));
        a.escalated_at = Some(7200);
        assert_eq!(events(&step(std::slice::from_ref(&f), std::slice::from_ref(&a), &[], &routes, 8000)), vec![]);
        a.escalated_at = None;
        a.state = AlertState::Acknowledged;
        assert_eq!(events(&step(std::slice::from_ref(&f), &[a], &[], &routes, 200_000)), vec![]);
    }

    #[test]
    fn escalation_deadline_runs_from_the_page_not_the_warning() {
        let mut pager = route("pager", &[Severity::Critical]);
        pager.escalate_after = Some(12 * 3600);
        pager.escalate_to = Some("boss".into());
        let mut boss = route("boss", &[]);
        boss.escalation_only = true;
        let routes = [route("mail", &[Severity::Warning]), pager, boss];
        let warn = finding(1, Kind::Expiring, Severity::Warning);
        let day = 86_400;
        // Opened as a warning 23 days ago, told to the mail route then.
        let a = alert(1, &warn, 0, Some(0), &["mail"]);
        let crit = finding(1, Kind::Expiring, Severity::Critical);
        let at_page = step(std::slice::from_ref(&crit), std::slice::from_ref(&a), &[], &routes, 23 * day);
        assert_eq!(events(&at_page), vec![("pager".to_string(), Event::Firing)], "paged, not escalated at once");
        let mut paged = a.clone();
        paged.severity = Severity::Critical;
        paged.last_notified_at = Some(23 * day);
        paged.routes_notified.push(("pager".into(), 23 * day));
        assert_eq!(events(&step(std::slice::from_ref(&crit), std::slice::from_ref(&paged), &[], &routes, 23 * day + 11 * 3600)), vec![]);
        assert_eq!(events(&step(&[crit], &[paged], &[], &routes, 23 * day + 12 * 3600)), vec![("boss".to_string(), Event::Escalation)]);
    }

    #[test]
    fn silences_suppress_and_expire() {
        let routes = [route("mail", &[])];
        let f = finding(1, Kind::Expiring, Severity::Warning);
        let s = Silence {
            id: 1,
            fingerprint: None,
            subject: None,
            source: Some("web".into()),
            tag: None,
            kind: Some("expiring".into()),
            eku: None,
            reason: "maintenance".into(),
            created_by: "t".into(),
            created_at: 0,
            expires_at: 100,
        };
        let c = step(std::slice::from_ref(&f), &[], std::slice::from_ref(&s), &routes, 50);
        assert_eq!(events(&c), vec![]);
        assert!(matches!(c[0], Change::Open { .. }));
        // Opened while silenced: once the silence expires, the alert is told for the first time.
        let a = alert(1, &f, 50, None, &[]);
        assert_eq!(
            events(&step(std::slice::from_ref(&f), std::slice::from_ref(&a), &[s], &routes, 100)),
            vec![("mail".to_string(), Event::Firing)]
        );
    }

    #[test]
    fn resolution_notifies_the_routes_that_were_told() {
        let routes = [route("mail", &[]), route("quiet", &[])];
        let f = finding(1, Kind::Revoked, Severity::Critical);
        let a = alert(3, &f, 0, Some(0), &["mail"]);
        let c = step(&[], &[a], &[], &routes, 10);
        assert_eq!(
            c,
            vec![Change::Resolve {
                alert_id: 3,
                notify: vec![Notify { route: "mail".into(), receivers: vec!["mail-rx".into()], event: Event::Resolved, held: false }]
            }]
        );
    }

    #[test]
    fn digest_routes_hold_below_the_immediate_severity() {
        let mut r = route("digest", &[]);
        r.digest = true;
        let c = step(&[finding(1, Kind::Expiring, Severity::Warning), finding(2, Kind::Expired, Severity::Critical)], &[], &[], &[r], 0);
        let held: Vec<bool> = c
            .iter()
            .map(|c| match c {
                Change::Open { notify, .. } => notify[0].held,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(held, vec![true, false]);
    }

    fn managed(name: &str, failures: i64) -> Finding {
        crate::policy::renewal::failed_without_certificate(&crate::policy::renewal::Uninstalled {
            name: name.into(),
            failures,
            last_error: Some("urn:ietf:params:acme:error:dns".into()),
            next_attempt: None,
            installed: None,
        })
        .expect("a failure is a finding")
    }

    #[test]
    fn subjects_without_a_certificate_open_dedupe_rise_silence_and_resolve() {
        let routes = [route("mail", &[Severity::Warning, Severity::Critical]), route("pager", &[Severity::Critical])];
        let web = managed("web", 1);
        assert_eq!((web.subject.as_str(), web.cert_id, web.fingerprint.as_str()), ("managed:web", None, ""));
        // A certificate finding of the same kind about another subject is another alert.
        let cert = finding(1, Kind::RenewalFailed, Severity::Warning);
        let c = step(&[web.clone(), cert.clone()], &[], &[], &routes, 0);
        assert!(matches!(c.as_slice(), [Change::Open { finding: 0, .. }, Change::Open { finding: 1, .. }]), "{c:?}");
        // Same subject and kind on the next evaluation: the same alert, no new notification.
        let open = [alert(5, &web, 0, Some(0), &["mail"]), alert(6, &cert, 0, Some(0), &["mail"])];
        let c = step(&[web.clone(), cert.clone()], &open, &[], &routes, 60);
        assert_eq!(events(&c), vec![]);
        assert!(matches!(c[0], Change::Update { alert_id: 5, finding: 0, .. }), "{c:?}");
        // Three failures: critical, which pages.
        let worse = managed("web", 3);
        assert_eq!(worse.severity, Severity::Critical);
        assert_eq!(
            events(&step(&[worse.clone(), cert.clone()], &open, &[], &routes, 120)),
            vec![("mail".to_string(), Event::Firing), ("pager".to_string(), Event::Firing)]
        );
        // A silence on the subject mutes it and nothing else; a fingerprint silence never
        // matches a subject without a certificate.
        let silence = |fingerprint: Option<&str>, subject: Option<&str>| Silence {
            id: 1,
            fingerprint: fingerprint.map(str::to_string),
            subject: subject.map(str::to_string),
            source: None,
            tag: None,
            kind: None,
            eku: None,
            reason: "r".into(),
            created_by: "t".into(),
            created_at: 0,
            expires_at: 1000,
        };
        assert!(silence(None, Some("managed:web")).matches(&worse));
        assert!(!silence(None, Some("managed:web")).matches(&cert));
        assert!(!silence(Some(""), None).matches(&worse));
        assert_eq!(events(&step(&[worse, cert.clone()], &open, &[silence(None, Some("managed:web"))], &routes, 120)), vec![]);
        // The problem is gone (issued, or no failures): resolved, with a notice.
        let c = step(std::slice::from_ref(&cert), &open, &[], &routes, 180);
        assert!(matches!(c[1], Change::Resolve { alert_id: 5, .. }), "{c:?}");
        assert_eq!(events(&c), vec![("mail".to_string(), Event::Resolved)]);
        assert!(
            crate::policy::renewal::failed_without_certificate(&crate::policy::renewal::Uninstalled {
                failures: 0,
                ..crate::policy::renewal::Uninstalled {
                    name: "web".into(),
                    failures: 0,
                    last_error: None,
                    next_attempt: None,
                    installed: None
                }
            })
            .is_none()
        );
    }
}
