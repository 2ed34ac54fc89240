//! AWS Certificate Manager and Secrets Manager.

use super::{Fetched, Listing, Source, SourceError};
use crate::config::secret::Secret;
use crate::config::sources::aws::AwsSpec;

pub struct AwsSource {
    spec: AwsSpec,
}

impl AwsSource {
    pub fn new(spec: AwsSpec) -> Self {
        AwsSource { spec }
    }
}

impl Source for AwsSource {
    fn name(&self) -> &str {
        &self.spec.name
    }
    fn kind(&self) -> &'static str {
        "aws"
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
