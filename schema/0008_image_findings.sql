-- certvigil store, version 8: container images referenced by a mutable tag instead of a digest,
-- found by the image audit of a Kubernetes source. The set of a source is replaced as a whole,
-- in one transaction, by each scan whose audit ran: rows are the last audit's result, not a history.
CREATE TABLE image_findings (
    id              INTEGER PRIMARY KEY,
    source          TEXT NOT NULL,        -- the kubernetes source (one cluster context)
    namespace       TEXT NOT NULL,
    workload_kind   TEXT NOT NULL,        -- Deployment | StatefulSet | DaemonSet | Job | CronJob | Pod
    workload        TEXT NOT NULL,
    container       TEXT NOT NULL,
    container_type  TEXT NOT NULL,        -- container | initContainer | ephemeralContainer
    image           TEXT NOT NULL,
    problem         TEXT NOT NULL,        -- latest | untagged | mutable-tag
    severity        TEXT NOT NULL,        -- info | warning | critical
    seen_at         INTEGER NOT NULL
);
CREATE INDEX image_findings_source ON image_findings(source, namespace);
