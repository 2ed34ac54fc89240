-- certvigil store, version 12: several daemons on one store (PostgreSQL).
-- The leader lease: one row per lease (`leader`), held by one daemon until expires_at_ms, in the
-- database's clock (milliseconds). `token` is the fencing token: it grows by one each time the
-- lease changes hands (or its holder lets it lapse), and every write that sends or installs
-- checks it is still current.
CREATE TABLE leases (
    name            TEXT PRIMARY KEY,
    holder          TEXT NOT NULL,     -- the daemon's node name
    instance        TEXT NOT NULL,     -- the process that holds it (node/pid/start)
    token           INTEGER NOT NULL,
    acquired_at_ms  INTEGER NOT NULL,
    renewed_at_ms   INTEGER NOT NULL,
    expires_at_ms   INTEGER NOT NULL
);
-- Work shared out between the daemons (one scan per source): claimed by one daemon at a time,
-- the claim kept alive by heartbeats; a claim whose daemon died expires and is taken again.
CREATE TABLE work_items (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL,     -- scan
    key             TEXT NOT NULL,     -- the source
    job             TEXT NOT NULL,
    run_id          INTEGER,           -- the job run that queued it
    queued_at       INTEGER NOT NULL,
    claimed_by      TEXT,
    claim_expires_at_ms INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,
    finished_at     INTEGER,
    status          TEXT,              -- ok | failed
    summary         TEXT,
    error           TEXT
);
-- One open item per kind and key: queuing a source already queued is a no-op.
CREATE UNIQUE INDEX work_items_open ON work_items(kind, key) WHERE finished_at IS NULL;
CREATE INDEX work_items_run ON work_items(run_id);
-- Which daemon ran a job: a daemon that starts again marks only its own unfinished runs
-- interrupted, not those of the others.
ALTER TABLE job_runs ADD COLUMN node TEXT;
