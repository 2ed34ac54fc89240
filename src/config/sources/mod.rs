//! YAML types and validation of the source kinds beyond files, one file per kind.

pub mod aws;
pub mod kubernetes;
pub mod pkcs11;
pub mod tls;
pub mod vault;

use super::{DurationSpec, PathedError};
use std::time::Duration;

/// A source's per-request timeout: between 100 ms and `max`. An invalid value is reported at
/// `path` and replaced by 10 s so that validation can go on.
pub fn timeout(spec: &DurationSpec, max: Duration, path: Vec<String>, errs: &mut Vec<PathedError>) -> Duration {
    let fallback = Duration::from_secs(10);
    match spec.duration() {
        Ok(d) if d >= Duration::from_millis(100) && d <= max => d,
        Ok(_) => {
            let max = match max.as_secs() {
                s if s % 60 == 0 => format!("{}m", s / 60),
                s => format!("{s}s"),
            };
            errs.push((path, format!("must be between 100ms and {max}")));
            fallback
        }
        Err(m) => {
            errs.push((path, m));
            fallback
        }
    }
}
