//! Image digest audit: which container images a workload references by a mutable tag rather
//! than by digest. Pure: pod specs in, [`ImageFinding`]s out.
//!
//! A reference is pinned when it carries a digest (`name@sha256:…`, with or without a tag,
//! distribution-spec "Pulling manifests"): the registry can never serve other content for it.
//! Otherwise the tag can be moved: `:latest` and no tag at all (which means `latest`) are the
//! worst, any other tag is still mutable.

use crate::model::finding::Severity;
use crate::model::observed::ImageFinding;
use k8s_openapi::api::core::v1::PodSpec;

/// How an image is referenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    Digest,
    Latest,
    Untagged,
    Tag,
}

/// Classifies an image reference (`[registry[:port]/]path[:tag][@digest]`).
pub fn classify(image: &str) -> Reference {
    let image = image.trim();
    if let Some((_, digest)) = image.split_once('@') {
        let hex_len =
            |alg: &str, n: usize| digest.strip_prefix(alg).is_some_and(|h| h.len() == n && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if hex_len("sha256:", 64) || hex_len("sha512:", 128) {
            return Reference::Digest;
        }
    }
    // The tag is after the last `:` of the last path component (a `:` before a `/` is a port).
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split('@').next().unwrap_or(last);
    match last.split_once(':') {
        None => Reference::Untagged,
        Some((_, "latest")) => Reference::Latest,
        Some((_, "")) => Reference::Untagged,
        Some(_) => Reference::Tag,
    }
}

/// What the audit reports, and at which severity.
#[derive(Debug, Clone, Copy)]
pub struct Severities {
    pub tag: Severity,
    pub latest: Severity,
}

/// The findings of one pod spec of a workload.
pub fn audit(namespace: &str, kind: &str, name: &str, spec: &PodSpec, sev: Severities, out: &mut Vec<ImageFinding>) {
    let containers = spec.containers.iter().map(|c| ("container", c.name.as_str(), c.image.as_deref()));
    let init = spec.init_containers.iter().flatten().map(|c| ("initContainer", c.name.as_str(), c.image.as_deref()));
    let ephemeral = spec.ephemeral_containers.iter().flatten().map(|c| ("ephemeralContainer", c.name.as_str(), c.image.as_deref()));
    for (container_type, container, image) in containers.chain(init).chain(ephemeral) {
        // A container without an image only exists in a template a controller fills in.
        let Some(image) = image.filter(|i| !i.trim().is_empty()) else { continue };
        let (problem, severity) = match classify(image) {
            Reference::Digest => continue,
            Reference::Latest => ("latest", sev.latest),
            Reference::Untagged => ("untagged", sev.latest),
            Reference::Tag => ("mutable-tag", sev.tag),
        };
        out.push(ImageFinding {
            namespace: namespace.into(),
            workload_kind: kind.into(),
            workload: name.into(),
            container: container.into(),
            container_type: container_type.into(),
            image: image.into(),
            problem: problem.into(),
            severity,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, EphemeralContainer};

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn references() {
        for (image, want) in [
            ("nginx", Reference::Untagged),
            ("nginx:latest", Reference::Latest),
            ("nginx:1.27", Reference::Tag),
            ("registry.example:5000/team/app", Reference::Untagged),
            ("registry.example:5000/team/app:v2", Reference::Tag),
            ("registry.example:5000/team/app:latest", Reference::Latest),
            (&format!("nginx@{D}"), Reference::Digest),
            (&format!("registry.example:5000/app:1.2@{D}"), Reference::Digest),
            ("nginx@sha256:abc", Reference::Untagged),
            ("nginx:1.2@sha256:short", Reference::Tag),
        ] {
            assert_eq!(classify(image), want, "{image}");
        }
    }

    #[test]
    fn every_container_kind_is_audited_and_digests_are_not_reported() {
        let spec = PodSpec {
            containers: vec![
                Container { name: "app".into(), image: Some("app:1".into()), ..Default::default() },
                Container { name: "pinned".into(), image: Some(format!("app@{D}")), ..Default::default() },
            ],
            init_containers: Some(vec![Container { name: "init".into(), image: Some("busybox".into()), ..Default::default() }]),
            ephemeral_containers: Some(vec![EphemeralContainer {
                name: "debug".into(),
                image: Some("debug:latest".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let mut out = Vec::new();
        audit("web", "Deployment", "site", &spec, Severities { tag: Severity::Info, latest: Severity::Critical }, &mut out);
        let got: Vec<(&str, &str, &str, Severity)> =
            out.iter().map(|f| (f.container.as_str(), f.container_type.as_str(), f.problem.as_str(), f.severity)).collect();
        assert_eq!(
            got,
            [
                ("app", "container", "mutable-tag", Severity::Info),
                ("init", "initContainer", "untagged", Severity::Critical),
                ("debug", "ephemeralContainer", "latest", Severity::Critical),
            ]
        );
    }
}
