-- certvigil store, version 14: signing trust material followed over time.
-- `trust_roots`: one row per distinct TUF root (Sigstore `root.json`) seen at a location, with
-- the root itself (the next version must be signed by its root keys, TUF specification §5.3.4),
-- what its own signatures gave and what its chain to the previous root gave. The trusted root of
-- a location is its highest version that is `trusted`; a later one is checked against it.
CREATE TABLE trust_roots (
    id                INTEGER PRIMARY KEY,
    source            TEXT NOT NULL,
    location          TEXT NOT NULL,
    version           INTEGER NOT NULL,
    content_sha256    TEXT NOT NULL,      -- of the file as read
    document          TEXT NOT NULL,      -- the root.json as read
    valid_signatures  INTEGER NOT NULL,   -- distinct root keys of its own that signed it
    threshold         INTEGER NOT NULL,   -- its own root threshold (0 when unreadable)
    chain             TEXT NOT NULL,      -- first | same | verified | broken | gap | rollback
    chain_from        INTEGER,            -- the trusted version it was checked against
    trusted           INTEGER NOT NULL,   -- 1: its own threshold met and its chain holds
    first_seen        INTEGER NOT NULL,
    last_seen         INTEGER NOT NULL,
    UNIQUE (source, location, content_sha256)
);
CREATE INDEX trust_roots_version ON trust_roots(version);

-- Every public key (by SPKI SHA-256) a key object has held at its location: a key replaced at
-- the same place (cosign.pub rotated in its Secret) is a new row, the old one gone since the
-- scan that saw the new one. Rows are never deleted.
CREATE TABLE key_history (
    id           INTEGER PRIMARY KEY,
    source       TEXT NOT NULL,
    location     TEXT NOT NULL,
    spki_sha256  TEXT NOT NULL,
    class        TEXT NOT NULL,
    algorithm    TEXT NOT NULL,
    label        TEXT,
    first_seen   INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    gone_since   INTEGER,
    UNIQUE (source, location, spki_sha256)
);
