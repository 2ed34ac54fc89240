-- certvigil store, version 3: alerts, silences and the notification outbox.

-- One alert per (certificate, finding kind) while it is open. Resolved alerts are kept.
CREATE TABLE alerts (
    id                INTEGER PRIMARY KEY,
    cert_id           INTEGER NOT NULL REFERENCES certificates(id),
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
CREATE UNIQUE INDEX alerts_open ON alerts(cert_id, kind) WHERE state != 'resolved';

-- Silences: while active, matching alerts notify nobody.
CREATE TABLE silences (
    id           INTEGER PRIMARY KEY,
    fingerprint  TEXT,      -- a certificate, or NULL for a match
    source       TEXT,
    tag          TEXT,
    kind         TEXT,
    eku          TEXT,
    reason       TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    expired_at   INTEGER               -- set when ended early
);

-- Every notification, written before it is sent; `key` makes each one unique per state change.
CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY,
    key              TEXT NOT NULL UNIQUE,
    alert_id         INTEGER REFERENCES alerts(id),
    route            TEXT NOT NULL,
    receiver         TEXT NOT NULL,
    event            TEXT NOT NULL,     -- firing | reminder | escalation | resolved | test
    severity         TEXT NOT NULL,
    payload          TEXT NOT NULL,     -- JSON
    held             INTEGER NOT NULL DEFAULT 0,   -- waiting for the route's digest
    created_at       INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    sent_at          INTEGER,
    sent_as          TEXT               -- the key of the digest that carried it, if any
);
CREATE INDEX outbox_pending ON outbox(sent_at, held, next_attempt_at);
