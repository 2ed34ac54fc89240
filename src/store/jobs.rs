//! Runs of the daemon's scheduled jobs: started, finished, interrupted, and overruns.

use super::db::{Row, params};
use super::{Result, Store};
use crate::model::UnixTime;
use crate::model::rows::{JobRun, JobStats};

const COLUMNS: &str = "id, job, kind, trigger, scheduled_at, started_at, finished_at, duration_ms, status, summary, detail, error, node";

fn from_row(r: &Row<'_>) -> Result<JobRun> {
    Ok(JobRun {
        id: r.get(0)?,
        job: r.get(1)?,
        kind: r.get(2)?,
        trigger: r.get(3)?,
        scheduled_at: r.get(4)?,
        started_at: r.get(5)?,
        finished_at: r.get(6)?,
        duration_ms: r.get(7)?,
        status: r.get(8)?,
        summary: r.get(9)?,
        detail: r.get::<Option<String>>(10)?.and_then(|t| serde_json::from_str(&t).ok()),
        error: r.get(11)?,
        node: r.get(12)?,
    })
}

impl Store {
    /// Records the start of a run; its row says `running` until [`Store::job_finished`].
    pub fn job_started(&self, job: &str, kind: &str, trigger: &str, scheduled_at: Option<UnixTime>, now: UnixTime) -> Result<i64> {
        self.conn.query_row(
            "INSERT INTO job_runs (job, kind, trigger, scheduled_at, started_at, status, node) VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6) RETURNING id",
            params![job, kind, trigger, scheduled_at, now, self.node],
            |r| r.get(0),
        )
    }

    /// Records how a run ended.
    pub fn job_finished(
        &self,
        id: i64,
        now: UnixTime,
        duration_ms: i64,
        error: Option<&str>,
        summary: &str,
        detail: Option<&serde_json::Value>,
    ) -> Result<()> {
        self.conn.execute(
            // A run another daemon took over (marked interrupted) keeps that mark.
            "UPDATE job_runs SET finished_at = ?2, duration_ms = ?3, status = ?4, summary = ?5, error = ?6, detail = ?7
             WHERE id = ?1 AND status = 'running'",
            params![id, now, duration_ms, if error.is_some() { "failed" } else { "ok" }, summary, error, detail.map(|d| d.to_string())],
        )?;
        Ok(())
    }

    /// Marks runs left `running` by a previous process (crash, kill -9) as interrupted; returns
    /// how many there were. With several daemons on the store ([`Store::with_node`]), only this
    /// daemon's own runs: the others' are theirs to finish.
    pub fn jobs_interrupted(&self, now: UnixTime) -> Result<usize> {
        self.conn.execute(
            "UPDATE job_runs SET status = 'interrupted', finished_at = ?1, error = 'the daemon stopped before the run finished'
             WHERE status = 'running' AND (CAST(?2 AS TEXT) IS NULL OR node = ?2)",
            params![now, self.node],
        )
    }

    /// A daemon that has just become leader takes over: runs another daemon left `running`
    /// (it led, and died or was cut off) are marked interrupted. Returns the jobs whose runs
    /// those were, to run again.
    pub fn take_over_runs(&self, node: &str, now: UnixTime) -> Result<Vec<String>> {
        self.conn.query_map(
            "UPDATE job_runs SET status = 'interrupted', finished_at = ?1,
               error = 'the daemon running it lost the leader lease before the run finished'
             WHERE status = 'running' AND (node IS NULL OR node <> ?2)
             RETURNING job",
            params![now, node],
            |r| r.get(0),
        )
    }

    /// Counts a fire time skipped because the previous run was still going.
    pub fn job_overrun(&self, job: &str, now: UnixTime) -> Result<()> {
        self.conn.execute(
            "INSERT INTO job_overruns (job, count, last_at) VALUES (?1, 1, ?2)
             ON CONFLICT(job) DO UPDATE SET count = job_overruns.count + 1, last_at = excluded.last_at",
            params![job, now],
        )?;
        Ok(())
    }

    /// The most recent runs, newest first (all jobs, or one).
    pub fn job_runs(&self, job: Option<&str>, limit: usize) -> Result<Vec<JobRun>> {
        let sql = format!("SELECT {COLUMNS} FROM job_runs WHERE CAST(?1 AS TEXT) IS NULL OR job = ?1 ORDER BY id DESC LIMIT ?2");
        self.conn.query_map(&sql, params![job, limit], from_row)
    }

    /// The last run, last success and overrun count of a job.
    pub fn job_stats(&self, job: &str) -> Result<JobStats> {
        let last = self.conn.query_opt(
            &format!("SELECT {COLUMNS} FROM job_runs WHERE job = ?1 ORDER BY id DESC LIMIT 1"),
            params![job],
            from_row,
        )?;
        let last_success_at: Option<UnixTime> =
            self.conn.query_row("SELECT MAX(finished_at) FROM job_runs WHERE job = ?1 AND status = 'ok'", params![job], |r| r.get(0))?;
        let overruns: i64 = self.conn.query_opt("SELECT count FROM job_overruns WHERE job = ?1", params![job], |r| r.get(0))?.unwrap_or(0);
        Ok(JobStats { last, last_success_at, overruns })
    }

    /// The detail of the newest finished run of a kind that recorded one.
    pub fn last_job_detail(&self, kind: &str) -> Result<Option<serde_json::Value>> {
        let text: Option<String> = self.conn.query_opt(
            "SELECT detail FROM job_runs WHERE kind = ?1 AND detail IS NOT NULL AND finished_at IS NOT NULL ORDER BY id DESC LIMIT 1",
            params![kind],
            |r| r.get(0),
        )?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// When a job last started (any outcome but interrupted-before-start), for catch-up.
    pub fn job_last_started(&self, job: &str) -> Result<Option<UnixTime>> {
        self.conn.query_row("SELECT MAX(COALESCE(scheduled_at, started_at)) FROM job_runs WHERE job = ?1", params![job], |r| r.get(0))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;

    #[test]
    fn runs_overruns_and_interruptions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let a = store.job_started("scan", "scan", "schedule", Some(100), 101).unwrap();
        store.job_finished(a, 110, 9000, None, "3 certificates", Some(&serde_json::json!({"n": 3}))).unwrap();
        let b = store.job_started("scan", "scan", "api", None, 200).unwrap();
        store.job_overrun("scan", 230).unwrap();
        store.job_overrun("scan", 260).unwrap();
        let st = store.job_stats("scan").unwrap();
        assert_eq!(st.last.as_ref().map(|r| (r.id, r.status.as_str())), Some((b, "running")));
        assert_eq!(st.last_success_at, Some(110));
        assert_eq!(st.overruns, 2);
        assert_eq!(store.job_last_started("scan").unwrap(), Some(200));
        assert_eq!(store.jobs_interrupted(300).unwrap(), 1);
        let st = store.job_stats("scan").unwrap();
        assert_eq!(st.last.unwrap().status, "interrupted");
        let c = store.job_started("scan", "scan", "schedule", Some(400), 400).unwrap();
        store.job_finished(c, 401, 10, Some("boom"), "", None).unwrap();
        let st = store.job_stats("scan").unwrap();
        assert_eq!((st.last.unwrap().status.as_str(), st.last_success_at), ("failed", Some(110)));
        let runs = store.job_runs(Some("scan"), 10).unwrap();
        assert_eq!(runs.len(), 3);
        assert_eq!(runs[2].detail, Some(serde_json::json!({"n": 3})));
        assert!(store.job_stats("other").unwrap().last.is_none());
    }
}
