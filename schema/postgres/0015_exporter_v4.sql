-- PostgreSQL form of schema/0015_exporter_v4.sql; keep the two equivalent.
-- Difference: INTEGER is BIGINT (see 0001); no WITHOUT ROWID (a SQLite storage choice).

-- certvigil store, version 15: what /metrics needs to speak x509-certificate-exporter v4.

-- Each source's last complete scan: 1 when it could list the whole source (no configuration
-- error and no part that could not be listed), 0 when it could not; NULL before the first one.
ALTER TABLE sources ADD COLUMN last_scan_up BIGINT;

-- Errors met by scans, counted per source, v4 source kind and reason code since the store was
-- created: the x509_source_errors_total counter. Added when a scan run finishes.
CREATE TABLE source_errors (
    source      TEXT NOT NULL,
    source_kind TEXT NOT NULL,      -- file | kube-secret | kube-configmap | kube-cabundle | kubernetes | tls | …
    reason      TEXT NOT NULL,      -- bad_pem | not_found | permission_denied | … (see model::exporter)
    count       BIGINT NOT NULL,
    last_at     BIGINT NOT NULL,
    PRIMARY KEY (source, source_kind, reason)
);

-- A downloaded CRL's issuer (RFC 4514) and cRLNumber (decimal), the SHA-256 of the last copy of
-- it whose signature verified against its issuer, and when a revocation pass last verified it
-- (current or stale): x509_crl_* show the verified CRLs that passes still use.
ALTER TABLE crl_cache ADD COLUMN issuer TEXT;
ALTER TABLE crl_cache ADD COLUMN crl_number TEXT;
ALTER TABLE crl_cache ADD COLUMN verified_sha256 TEXT;
ALTER TABLE crl_cache ADD COLUMN verified_at BIGINT;
