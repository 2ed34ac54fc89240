-- certvigil store, version 4: the audit log.
-- Append-only and hash-chained: each entry's hash covers its own fields and the previous
-- entry's hash, so an edited, deleted or inserted row breaks the chain at that point.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    action     TEXT NOT NULL,      -- scan | revocation | notification | silence | ack | config | …
    actor      TEXT NOT NULL,      -- who or what did it (a user, "scheduler", "cli")
    detail     TEXT NOT NULL,      -- JSON
    prev_hash  TEXT NOT NULL,      -- hex SHA-256 of the previous entry ('' for the first)
    hash       TEXT NOT NULL       -- hex SHA-256 over (prev_hash, id, at, action, actor, detail)
);
CREATE INDEX audit_log_at ON audit_log(at);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
