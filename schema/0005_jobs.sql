-- certvigil store, version 5: runs of the daemon's scheduled jobs.
-- One row per run, written when it starts (status 'running') and updated when it ends, so a
-- crash leaves a 'running' row that the next start marks 'interrupted'. `trigger` says why it
-- ran: schedule, catch_up (missed while down), api (POST /api/v1/jobs/NAME/run) or cli.
CREATE TABLE job_runs (
    id          INTEGER PRIMARY KEY,
    job         TEXT NOT NULL,
    kind        TEXT NOT NULL,
    trigger     TEXT NOT NULL,
    scheduled_at INTEGER,          -- the fire time it stands for (NULL when triggered by hand)
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    duration_ms INTEGER,
    status      TEXT NOT NULL,     -- running | ok | failed | interrupted
    summary     TEXT NOT NULL DEFAULT '',   -- one line for people
    detail      TEXT,              -- JSON for metrics and the API (counts by severity, …)
    error       TEXT
);
CREATE INDEX job_runs_job ON job_runs(job, started_at);
-- Fire times that came while the previous run of the same job was still going: reported, not stacked.
CREATE TABLE job_overruns (
    job         TEXT PRIMARY KEY,
    count       INTEGER NOT NULL,
    last_at     INTEGER NOT NULL
);
