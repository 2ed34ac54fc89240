-- PostgreSQL form of schema/0007_renewals.sql; keep the two equivalent.
-- Difference: INTEGER is BIGINT (revoke_rotate is a 0/1 flag, as in SQLite).
-- Difference: `renewals.name` (TEXT PRIMARY KEY) is also NOT NULL here (see 0001).

-- certvigil store, version 7: the renewal state of each managed certificate (`managed:`), so
-- that backoff, the ARI window and an order in flight survive a restart or a crash.
-- One row per managed certificate name. Times are Unix seconds, UTC.
CREATE TABLE renewals (
    name            TEXT PRIMARY KEY,
    -- What is installed (read back from the install files after each run).
    fingerprint     TEXT,              -- SHA-256 of the leaf, lower-case hex
    serial          TEXT,              -- upper-case hex
    not_after       BIGINT,
    state           TEXT NOT NULL DEFAULT 'idle',  -- idle | scheduled | in-flight | failed
    failures        BIGINT NOT NULL DEFAULT 0,     -- consecutive failed attempts
    spec_digest     TEXT,              -- digest of the managed entry the failures were counted for
    next_attempt    BIGINT,            -- backoff: no attempt before this (unless forced)
    last_attempt    BIGINT,
    last_outcome    TEXT,              -- renewed | failed | installed-pending
    last_error      TEXT,
    -- ACME Renewal Information (RFC 9773) for the installed certificate.
    ari_cert_id     TEXT,              -- §4.1 identifier the window was asked for
    ari_start       BIGINT,            -- suggestedWindow
    ari_end         BIGINT,
    ari_explanation TEXT,              -- explanationURL
    ari_next_poll   BIGINT,            -- from Retry-After (bounded); also set when the CA offers no ARI
    -- When the next renewal is scheduled: inside the ARI window (chosen at random once per
    -- window by the engine), or the lifetime rule's time.
    renew_at        BIGINT,
    -- The order in flight (RFC 8555 §7.1.3), resumed by the next run.
    order_url       TEXT,
    order_directory TEXT,
    pending_key     TEXT,              -- path of the 0600 key generated before finalize
    pending_chain   TEXT,              -- path of the downloaded chain, not yet installed
    -- A revocation asked with `certvigil revoke` (RFC 8555 §7.6), tracked until done so that
    -- an interrupted run resumes it: requested → revoked → (with rotate) reissued.
    revoke_fingerprint TEXT,           -- the certificate to revoke
    revoke_reason   BIGINT,            -- RFC 5280 §5.3.1 reason code
    revoke_rotate   BIGINT NOT NULL DEFAULT 0,
    revoke_step     TEXT,              -- requested | revoked | done
    revoke_requested_at BIGINT,
    updated_at      BIGINT NOT NULL
);
