-- certvigil store, version 2: revocation status from CRLs and OCSP.

-- The current revocation status of each certificate, with the evidence it rests on.
CREATE TABLE revocation_status (
    cert_id          INTEGER PRIMARY KEY REFERENCES certificates(id),
    status           TEXT NOT NULL,      -- good | revoked | unknown | not-applicable
    reason           TEXT,               -- revocation reason, or why the status is unknown
    revoked_at       INTEGER,
    invalidity_date  INTEGER,
    method           TEXT NOT NULL,      -- ocsp | crl | crl+delta | none
    source_url       TEXT,               -- the CRL or responder consulted
    evidence_sha256  TEXT,               -- SHA-256 of the CRL or OCSP response used
    checked_at       INTEGER NOT NULL,
    next_update      INTEGER,            -- when the evidence expires
    stale            INTEGER NOT NULL DEFAULT 0,  -- the evidence was past nextUpdate
    detail           TEXT                -- what else was tried, notes
);

-- Every change of a certificate's revocation status, newest last.
CREATE TABLE revocation_history (
    id               INTEGER PRIMARY KEY,
    cert_id          INTEGER NOT NULL REFERENCES certificates(id),
    at               INTEGER NOT NULL,
    status           TEXT NOT NULL,
    reason           TEXT,
    method           TEXT NOT NULL,
    evidence_sha256  TEXT,
    detail           TEXT
);
CREATE INDEX revocation_history_cert ON revocation_history(cert_id);

-- Conditional-GET state of each CRL; the bytes live in crls/<sha256 of url>.der beside the store.
CREATE TABLE crl_cache (
    url              TEXT PRIMARY KEY,
    etag             TEXT,
    last_modified    TEXT,
    fetched_at       INTEGER NOT NULL,
    sha256           TEXT NOT NULL,
    this_update      INTEGER,
    next_update      INTEGER,
    size             INTEGER NOT NULL
);

-- Verified OCSP answers, reused until cache_until (nextUpdate, bounded by the configured maximum).
CREATE TABLE ocsp_cache (
    cert_id          INTEGER PRIMARY KEY REFERENCES certificates(id),
    responder        TEXT NOT NULL,
    status           TEXT NOT NULL,      -- good | revoked | unknown
    revoked_at       INTEGER,
    reason           TEXT,
    this_update      INTEGER NOT NULL,
    next_update      INTEGER,
    cache_until      INTEGER NOT NULL,
    sha256           TEXT NOT NULL,
    response         BLOB NOT NULL
);

-- Issuer certificates fetched from AIA caIssuers URLs.
CREATE TABLE issuer_cache (
    url              TEXT PRIMARY KEY,
    der              BLOB,
    fetched_at       INTEGER NOT NULL,
    error            TEXT
);
