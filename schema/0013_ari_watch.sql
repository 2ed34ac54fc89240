-- certvigil store, version 13: ACME Renewal Information (RFC 9773) watched for inventoried
-- certificates, as an early warning of revocation. One row per certificate asked about: the
-- window its CA suggests now, the first window seen (the normal schedule a later window is
-- compared with), and when to ask again. Certificates are never deleted, so neither are rows.
CREATE TABLE ari_watch (
    cert_id          INTEGER PRIMARY KEY REFERENCES certificates(id),
    directory        TEXT NOT NULL,
    ari_id           TEXT NOT NULL,       -- RFC 9773 §4.1 certificate identifier
    window_start     INTEGER,
    window_end       INTEGER,
    explanation_url  TEXT,
    first_start      INTEGER,
    first_end        INTEGER,
    moved_at         INTEGER,             -- when the window was first seen earlier than the first one
    polled_at        INTEGER NOT NULL,
    next_poll        INTEGER NOT NULL,
    error            TEXT                 -- the last answer's problem, NULL after a good answer
);
CREATE INDEX ari_watch_next_poll ON ari_watch(next_poll);
