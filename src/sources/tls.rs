//! TLS endpoints: the chain a server presents.

use super::{Fetched, Listing, Source, SourceError};
use crate::config::secret::Secret;
use crate::config::sources::tls::TlsSpec;

pub struct TlsSource {
    spec: TlsSpec,
}

impl TlsSource {
    pub fn new(spec: TlsSpec) -> Self {
        TlsSource { spec }
    }
}

impl Source for TlsSource {
    fn name(&self) -> &str {
        &self.spec.name
    }
    fn kind(&self) -> &'static str {
        "tls"
    }
    fn tags(&self) -> &[String] {
        &self.spec.tags
    }
    fn list(&self, out: &mut dyn FnMut(Listing)) {
        out(Listing::Unavailable { prefix: String::new(), message: "this source kind is not implemented yet".into() });
    }
    fn fetch(&self, _location: &str) -> Result<Fetched, String> {
        Err("this source kind is not implemented yet".into())
    }
    fn passwords(&self) -> Result<Vec<Secret>, SourceError> {
        Ok(Vec::new())
    }
}
