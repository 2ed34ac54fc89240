//! PKCS#11 tokens (HSMs): certificate and key objects.

use super::{Fetched, Listing, Source, SourceError};
use crate::config::secret::Secret;
use crate::config::sources::pkcs11::Pkcs11Spec;

pub struct Pkcs11Source {
    spec: Pkcs11Spec,
}

impl Pkcs11Source {
    pub fn new(spec: Pkcs11Spec) -> Self {
        Pkcs11Source { spec }
    }
}

impl Source for Pkcs11Source {
    fn name(&self) -> &str {
        &self.spec.name
    }
    fn kind(&self) -> &'static str {
        "pkcs11"
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
