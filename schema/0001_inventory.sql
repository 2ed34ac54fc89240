-- certvigil store, version 1: the inventory.
-- Times are whole seconds since the Unix epoch, UTC. Rows are never deleted: what disappears is
-- marked gone (gone_since) and can come back.

-- One row per certificate, identified by the SHA-256 of its DER encoding.
CREATE TABLE certificates (
    id                  INTEGER PRIMARY KEY,
    fingerprint         TEXT NOT NULL UNIQUE,
    subject             TEXT NOT NULL,
    issuer              TEXT NOT NULL,
    common_name         TEXT,
    serial              TEXT NOT NULL,
    not_before          INTEGER NOT NULL,
    not_after           INTEGER NOT NULL,
    spki_sha256         TEXT NOT NULL,
    key_algorithm       TEXT NOT NULL,
    key_bits            INTEGER,
    key_curve           TEXT,
    signature_algorithm TEXT NOT NULL,
    is_ca               INTEGER NOT NULL,
    path_len            INTEGER,
    key_usage           TEXT NOT NULL,   -- JSON array of names
    ext_key_usage       TEXT NOT NULL,   -- JSON array of names or OIDs
    sans                TEXT NOT NULL,   -- JSON array, "DNS:…", "IP:…"
    ocsp_urls           TEXT NOT NULL,   -- JSON array
    ca_issuers_urls     TEXT NOT NULL,   -- JSON array
    crl_urls            TEXT NOT NULL,   -- JSON array
    aki                 TEXT,
    ski                 TEXT,
    self_issued         INTEGER NOT NULL,
    warnings            TEXT NOT NULL,   -- JSON array
    der                 BLOB NOT NULL,
    first_seen          INTEGER NOT NULL,
    gone_since          INTEGER           -- NULL while some sighting is current
);
-- Issuer lookups go by subject key identifier. Listing, serial and key lookups read the whole
-- table anyway (filters are evaluated in memory), so they get no index to maintain on insert.
CREATE INDEX certificates_ski ON certificates(ski);

-- Each configured source, with the time of its last completed scan. A current sighting (gone_since
-- NULL) was confirmed by that scan, so unchanged sightings need no rewrite on every scan.
CREATE TABLE sources (
    name            TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    tags            TEXT NOT NULL,        -- JSON array
    last_scan_at    INTEGER,
    last_run_id     INTEGER
);

-- Each place a certificate was seen: a source, a location in it (file path, secret path) and
-- where inside that object (PEM block, keystore alias).
CREATE TABLE sightings (
    id          INTEGER PRIMARY KEY,
    cert_id     INTEGER NOT NULL REFERENCES certificates(id),
    source      TEXT NOT NULL,
    location    TEXT NOT NULL,
    detail      TEXT NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,     -- last scan that read the object (see sources.last_scan_at)
    gone_since  INTEGER,
    UNIQUE (cert_id, source, location)
);
CREATE INDEX sightings_location ON sightings(source, location);

-- Change detection per object: a rescan that lists the same stamp (for files: size, mtime and
-- inode; for a vault: serial or version) reads nothing; a new stamp with the same content hash
-- parses nothing.
CREATE TABLE objects (
    source          TEXT NOT NULL,
    location        TEXT NOT NULL,
    stamp           TEXT NOT NULL,
    content_sha256  TEXT NOT NULL,
    format          TEXT,
    certs           INTEGER NOT NULL,
    keys            INTEGER NOT NULL,
    error           TEXT,                -- the current read error for this object, if any
    first_seen      INTEGER NOT NULL,
    vanished_at     INTEGER,             -- set when the source stopped listing it
    PRIMARY KEY (source, location)
) WITHOUT ROWID;

-- Every scan run, and every error it met.
CREATE TABLE scan_runs (
    id              INTEGER PRIMARY KEY,
    started_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    sources         TEXT NOT NULL,       -- JSON array of source names
    objects_seen    INTEGER NOT NULL DEFAULT 0,
    objects_read    INTEGER NOT NULL DEFAULT 0,
    certs_seen      INTEGER NOT NULL DEFAULT 0,
    certs_new       INTEGER NOT NULL DEFAULT 0,
    certs_gone      INTEGER NOT NULL DEFAULT 0,
    errors          INTEGER NOT NULL DEFAULT 0,
    status          TEXT NOT NULL DEFAULT 'running'   -- running | ok | errors | failed
);

CREATE TABLE scan_errors (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES scan_runs(id),
    source      TEXT NOT NULL,
    location    TEXT NOT NULL,
    message     TEXT NOT NULL
);
CREATE INDEX scan_errors_run ON scan_errors(run_id);

-- What happened to each certificate, newest last. Its discovery is not a row: it is the
-- certificate's first_seen and first sighting.
CREATE TABLE cert_history (
    id          INTEGER PRIMARY KEY,
    cert_id     INTEGER NOT NULL REFERENCES certificates(id),
    at          INTEGER NOT NULL,
    event       TEXT NOT NULL,     -- discovered | sighted | unsighted | gone | returned
    source      TEXT,
    location    TEXT,
    detail      TEXT
);
CREATE INDEX cert_history_cert ON cert_history(cert_id);
