//! Store queries for the image audit (`image_findings`): container images referenced by a
//! mutable tag, as the last audit of each Kubernetes source found them.

use super::db::params;
use super::{Result, Store};
use crate::model::rows::ImageFindingRow;

impl Store {
    /// Image findings, of one namespace or all, ordered by source, namespace, workload, container.
    pub fn image_findings(&self, namespace: Option<&str>) -> Result<Vec<ImageFindingRow>> {
        // `CAST(?1 AS TEXT)`: PostgreSQL cannot type a parameter used only in `IS NULL`.
        self.conn.query_map(
            "SELECT source, namespace, workload_kind, workload, container, container_type, image, problem, severity, seen_at
             FROM image_findings WHERE (CAST(?1 AS TEXT) IS NULL OR namespace = ?1)
             ORDER BY source, namespace, workload_kind, workload, container_type, container",
            params![namespace],
            |r| {
                Ok(ImageFindingRow {
                    source: r.get(0)?,
                    namespace: r.get(1)?,
                    workload_kind: r.get(2)?,
                    workload: r.get(3)?,
                    container: r.get(4)?,
                    container_type: r.get(5)?,
                    image: r.get(6)?,
                    problem: r.get(7)?,
                    severity: r.get(8)?,
                    seen_at: r.get(9)?,
                })
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::finding::Severity;
    use crate::model::observed::ImageFinding;

    fn finding(ns: &str, image: &str) -> ImageFinding {
        ImageFinding {
            namespace: ns.into(),
            workload_kind: "Deployment".into(),
            workload: "web".into(),
            container: "app".into(),
            container_type: "container".into(),
            image: image.into(),
            problem: "mutable-tag".into(),
            severity: Severity::Warning,
        }
    }

    #[test]
    fn an_audit_replaces_the_previous_one_of_its_source_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let mut w = store.begin_scan(100, &["a".to_string(), "b".to_string()]).unwrap();
        w.replace_image_findings("a", &[finding("x", "nginx:1"), finding("y", "redis:7")]).unwrap();
        w.replace_image_findings("b", &[finding("x", "busybox:1")]).unwrap();
        w.finish().unwrap();
        assert_eq!(store.image_findings(None).unwrap().len(), 3);
        assert_eq!(store.image_findings(Some("y")).unwrap().iter().map(|r| r.image.as_str()).collect::<Vec<_>>(), ["redis:7"]);
        let mut w = store.begin_scan(200, &["a".to_string()]).unwrap();
        w.replace_image_findings("a", &[finding("x", "nginx:2")]).unwrap();
        w.finish().unwrap();
        let rows = store.image_findings(None).unwrap();
        let got: Vec<(&str, &str, i64)> = rows.iter().map(|r| (r.source.as_str(), r.image.as_str(), r.seen_at)).collect();
        assert_eq!(got, [("a", "nginx:2", 200), ("b", "busybox:1", 100)]);
    }
}
