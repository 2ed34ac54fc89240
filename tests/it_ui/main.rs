//! The daemon's status page in a real browser: headless Chromium driven through ChromeDriver
//! (`tests/common/webdriver.rs`), every page served on 127.0.0.1.
//!
//! One test binary (a module per subject); the shared helpers are the modules of `tests/`
//! beside this folder, the loopback HTTP server among them (`tests/common/http.rs`).

#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod harness;
mod status_page;
