-- certvigil store, version 9: alerts about subjects that are not certificates.
--
-- An alert is now about a subject, named by a stable string:
--   cert:<sha256>              a certificate (lower-case hex SHA-256 of its DER), as before
--   key:<source>:<location>    a key object a source lists (a PKCS#11 private key, a TUF root)
--   managed:<name>             a managed certificate (`managed:` entry) that has none installed
-- `cert_id` is set for certificate subjects only. `subject_name` is what operators read
-- ("root.json in sigstore/trust", "managed certificate web"), refreshed at each evaluation.
--
-- SQLite cannot drop NOT NULL from a column: the table is rebuilt (the documented 12-step
-- procedure, https://sqlite.org/lang_altertable.html#otheralter). The store runs this with
-- foreign keys off and checks them (PRAGMA foreign_key_check) before committing, so the
-- outbox rows keep pointing at the same alert ids.
CREATE TABLE alerts_new (
    id                INTEGER PRIMARY KEY,
    subject           TEXT NOT NULL,        -- cert:<sha256> | key:<source>:<location> | managed:<name>
    subject_kind      TEXT NOT NULL,        -- certificate | key | managed
    subject_name      TEXT NOT NULL,
    cert_id           INTEGER REFERENCES certificates(id),   -- certificate subjects only
    kind              TEXT NOT NULL,
    severity          TEXT NOT NULL,
    state             TEXT NOT NULL,        -- firing | acknowledged | resolved
    reason            TEXT NOT NULL,
    action            TEXT NOT NULL,
    opened_at         INTEGER NOT NULL,
    last_notified_at  INTEGER,
    notifications     INTEGER NOT NULL DEFAULT 0,
    routes_notified   TEXT NOT NULL DEFAULT '[]',   -- JSON [[route, first told at], …]
    escalated_at      INTEGER,
    acked_at          INTEGER,
    acked_by          TEXT,
    ack_note          TEXT,
    resolved_at       INTEGER,
    seq               INTEGER NOT NULL DEFAULT 0    -- counts notifying state changes
);
INSERT INTO alerts_new (id, subject, subject_kind, subject_name, cert_id, kind, severity, state, reason, action, opened_at,
                        last_notified_at, notifications, routes_notified, escalated_at, acked_at, acked_by, ack_note, resolved_at, seq)
SELECT a.id,
       COALESCE('cert:' || lower(c.fingerprint), 'cert-id:' || a.cert_id),   -- cert-id: only for a row whose certificate is missing
       'certificate',
       COALESCE(c.common_name, c.subject, 'certificate ' || a.cert_id),
       a.cert_id, a.kind, a.severity, a.state, a.reason, a.action, a.opened_at,
       a.last_notified_at, a.notifications, a.routes_notified, a.escalated_at, a.acked_at, a.acked_by, a.ack_note, a.resolved_at, a.seq
FROM alerts a LEFT JOIN certificates c ON c.id = a.cert_id;
DROP TABLE alerts;
ALTER TABLE alerts_new RENAME TO alerts;
CREATE UNIQUE INDEX alerts_open ON alerts(subject, kind) WHERE state != 'resolved';
CREATE INDEX alerts_cert ON alerts(cert_id);

-- A silence may name one subject exactly (`certvigil silence add managed:web …`).
ALTER TABLE silences ADD COLUMN subject TEXT;
