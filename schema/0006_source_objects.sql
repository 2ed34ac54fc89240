-- certvigil store, version 6: what sources know about an object beyond its bytes, and keys.
-- `meta` is JSON a source attaches to an object: a TLS endpoint's negotiated protocol and chain
-- verification, a vault secret's version, an HSM object's attributes. It is rewritten on every
-- read (it may change while the bytes do not).
ALTER TABLE objects ADD COLUMN meta TEXT;

-- Key objects a source lists on their own (PKCS#11 private and public keys). Certificates are
-- paired with them by SPKI hash. Rows are never deleted: a key no longer listed is marked gone.
CREATE TABLE keys (
    id           INTEGER PRIMARY KEY,
    source       TEXT NOT NULL,
    location     TEXT NOT NULL,
    label        TEXT,
    key_id       TEXT,                 -- hex (CKA_ID)
    class        TEXT NOT NULL,        -- private | public | secret
    algorithm    TEXT NOT NULL,
    bits         INTEGER,
    curve        TEXT,
    spki_sha256  TEXT,                 -- when the public part is known
    attributes   TEXT NOT NULL,        -- JSON: extractable, sensitive, never_extractable, dates, …
    first_seen   INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    gone_since   INTEGER,
    UNIQUE (source, location)
);
CREATE INDEX keys_spki ON keys(spki_sha256);
