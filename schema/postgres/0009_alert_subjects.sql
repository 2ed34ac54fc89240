-- PostgreSQL form of schema/0009_alert_subjects.sql; keep the two equivalent.
-- Difference: SQLite rebuilds `alerts` (it cannot drop NOT NULL); here ALTER TABLE does the same
--   in place: cert_id loses NOT NULL, subject, subject_kind and subject_name are added, filled
--   from the certificates exactly as the SQLite copy fills them, then made NOT NULL, and the
--   indexes are replaced as the rebuild replaces them. Ids, defaults, the identity and the
--   outbox's references to alerts are untouched.
-- Difference: column order: the three new columns come last here, where SQLite's rebuild puts
--   them after id (the store names every column it reads or writes, so order does not matter).
-- Difference: no `cert-id:` fallback is ever taken here: PostgreSQL always enforces the foreign
--   key, so every alert row has its certificate (the COALESCE is kept to mirror SQLite).

-- certvigil store, version 9: alerts about subjects that are not certificates.
--
-- An alert is now about a subject, named by a stable string:
--   cert:<sha256>              a certificate (lower-case hex SHA-256 of its DER), as before
--   key:<source>:<location>    a key object a source lists (a PKCS#11 private key, a TUF root)
--   managed:<name>             a managed certificate (`managed:` entry) that has none installed
-- `cert_id` is set for certificate subjects only. `subject_name` is what operators read
-- ("root.json in sigstore/trust", "managed certificate web"), refreshed at each evaluation.
ALTER TABLE alerts
    ALTER COLUMN cert_id DROP NOT NULL,                -- certificate subjects only
    ADD COLUMN subject      TEXT,                      -- cert:<sha256> | key:<source>:<location> | managed:<name>
    ADD COLUMN subject_kind TEXT,                      -- certificate | key | managed
    ADD COLUMN subject_name TEXT;
UPDATE alerts a
SET subject      = COALESCE('cert:' || lower(c.fingerprint), 'cert-id:' || a.cert_id),
    subject_kind = 'certificate',
    subject_name = COALESCE(c.common_name, c.subject, 'certificate ' || a.cert_id)
FROM alerts a2 LEFT JOIN certificates c ON c.id = a2.cert_id
WHERE a2.id = a.id;
ALTER TABLE alerts
    ALTER COLUMN subject SET NOT NULL,
    ALTER COLUMN subject_kind SET NOT NULL,
    ALTER COLUMN subject_name SET NOT NULL;
DROP INDEX alerts_open;
CREATE UNIQUE INDEX alerts_open ON alerts(subject, kind) WHERE state != 'resolved';
CREATE INDEX alerts_cert ON alerts(cert_id);

-- A silence may name one subject exactly (`certvigil silence add managed:web …`).
ALTER TABLE silences ADD COLUMN subject TEXT;
