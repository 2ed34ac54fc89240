//! Alerting end to end: receivers (aiosmtpd, webhooks, Slack, PagerDuty), subjects that are not
//! certificates, and email over implicit TLS with SMTP AUTH.
//!
//! One test binary (a module per former test file); the shared helpers are the modules of
//! `tests/` beside this folder, the loopback HTTP server among them (`tests/common/http.rs`).

#[path = "../acme_support/mod.rs"]
mod acme_support;
#[path = "../alerting/mod.rs"]
mod alerting;
#[path = "../common/mod.rs"]
mod common;
#[path = "../kube/mod.rs"]
mod kube;

mod alert_subjects;
mod alerts;
mod email_tls;
mod lifetimes;
