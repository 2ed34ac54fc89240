-- PostgreSQL form of schema/0013_ari_watch.sql; keep the two equivalent.
-- Difference: INTEGER is BIGINT (see 0001).
-- Difference: `ari_watch.cert_id` is `INTEGER PRIMARY KEY` in SQLite, which makes it a rowid alias
--   too, but it names a certificate and is always given: plain BIGINT PRIMARY KEY here, no
--   identity (as `revocation_status.cert_id`, see 0002).

-- certvigil store, version 13: ACME Renewal Information (RFC 9773) watched for inventoried
-- certificates, as an early warning of revocation. One row per certificate asked about: the
-- window its CA suggests now, the first window seen (the normal schedule a later window is
-- compared with), and when to ask again. Certificates are never deleted, so neither are rows.
CREATE TABLE ari_watch (
    cert_id          BIGINT PRIMARY KEY REFERENCES certificates(id),
    directory        TEXT NOT NULL,
    ari_id           TEXT NOT NULL,       -- RFC 9773 §4.1 certificate identifier
    window_start     BIGINT,
    window_end       BIGINT,
    explanation_url  TEXT,
    first_start      BIGINT,
    first_end        BIGINT,
    moved_at         BIGINT,              -- when the window was first seen earlier than the first one
    polled_at        BIGINT NOT NULL,
    next_poll        BIGINT NOT NULL,
    error            TEXT                 -- the last answer's problem, NULL after a good answer
);
CREATE INDEX ari_watch_next_poll ON ari_watch(next_poll);
