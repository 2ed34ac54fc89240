//! Cron schedules (pure): an expression and a time zone → the next fire times after a moment.
//!
//! Expressions are crontab lines of 5 fields (minute precision), 6 fields (with seconds first),
//! or the shorthands `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`. Times are computed in
//! the job's IANA time zone, and a DST change never loses or doubles a run, as in Vixie cron: a
//! 02:30 job whose 02:30 is skipped (spring forward) runs right after the gap, at 03:00; when
//! 02:30 happens twice (fall back) it runs once, at the first.
//! Jitter and missed-run decisions take their random value and `now` as arguments.

use crate::model::UnixTime;
use std::str::FromStr;

#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
    tz: jiff::tz::TimeZone,
    expression: String,
    tz_name: String,
}

impl Schedule {
    /// Parses an expression in a time zone (`UTC` when `None`).
    pub fn parse(expression: &str, tz: Option<&str>) -> Result<Schedule, String> {
        let cron = croner::Cron::from_str(expression.trim()).map_err(|e| format!("`{expression}` is not a cron expression: {e}"))?;
        let fields = expression.split_whitespace().count();
        if !expression.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
            return Err(format!("`{expression}` has {fields} fields: use 5 (minute hour day month weekday) or 6 (with seconds first)"));
        }
        let tz_name = tz.unwrap_or("UTC").to_string();
        let zone = jiff::tz::TimeZone::get(&tz_name).map_err(|e| format!("unknown time zone `{tz_name}`: {e}"))?;
        Ok(Schedule { cron, tz: zone, expression: expression.trim().to_string(), tz_name })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    pub fn time_zone(&self) -> &str {
        &self.tz_name
    }

    /// The expression in words.
    pub fn describe(&self) -> String {
        self.cron.describe()
    }

    fn zoned(&self, t: UnixTime) -> Option<jiff::Zoned> {
        jiff::Timestamp::from_second(t).ok().map(|ts| ts.to_zoned(self.tz.clone()))
    }

    /// The first fire time strictly after `t`.
    pub fn next_after(&self, t: UnixTime) -> Option<UnixTime> {
        let z = self.zoned(t)?;
        self.cron.find_next_occurrence(&z, false).ok().map(|n| n.timestamp().as_second())
    }

    /// The last fire time at or before `t`.
    pub fn previous_at_or_before(&self, t: UnixTime) -> Option<UnixTime> {
        let z = self.zoned(t)?;
        self.cron.find_previous_occurrence(&z, true).ok().map(|p| p.timestamp().as_second())
    }

    /// The next `n` fire times after `t`.
    pub fn next_n(&self, t: UnixTime, n: usize) -> Vec<UnixTime> {
        let mut out = Vec::with_capacity(n);
        let mut cur = t;
        while out.len() < n {
            match self.next_after(cur) {
                Some(next) => {
                    out.push(next);
                    cur = next;
                }
                None => break,
            }
        }
        out
    }

    /// Local time of `t` in the schedule's zone, for display.
    pub fn local(&self, t: UnixTime) -> String {
        self.zoned(t).map(|z| z.strftime("%Y-%m-%d %H:%M:%S %Z").to_string()).unwrap_or_else(|| format!("@{t}"))
    }
}

/// Missed-run policy: with `catch_up`, a job whose last run (if any) is older than the most
/// recent fire time at or before `now` runs once at start.
pub fn missed(schedule: &Schedule, last_run: Option<UnixTime>, now: UnixTime) -> bool {
    match (schedule.previous_at_or_before(now), last_run) {
        (Some(prev), Some(last)) => last < prev,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The moment to run a fire time `at` with a jitter bound: `at` plus `random` (0.0..1.0) of
/// the bound. The random value is the caller's, so this stays deterministic.
pub fn with_jitter(at: UnixTime, jitter_secs: i64, random: f64) -> UnixTime {
    at + (jitter_secs.max(0) as f64 * random.clamp(0.0, 1.0)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_second()
    }

    #[test]
    fn five_and_six_fields_and_shorthands() {
        let s = Schedule::parse("*/15 * * * *", None).unwrap();
        assert_eq!(
            s.next_n(ts("2026-01-31T23:50:00Z"), 3),
            vec![ts("2026-02-01T00:00:00Z"), ts("2026-02-01T00:15:00Z"), ts("2026-02-01T00:30:00Z")]
        );
        let s = Schedule::parse("30 0 12 * * *", None).unwrap();
        assert_eq!(s.next_after(ts("2026-03-01T12:00:00Z")), Some(ts("2026-03-01T12:00:30Z")));
        let s = Schedule::parse("@daily", None).unwrap();
        assert_eq!(s.next_after(ts("2026-03-01T12:00:00Z")), Some(ts("2026-03-02T00:00:00Z")));
        assert!(Schedule::parse("61 * * * *", None).is_err());
        assert!(Schedule::parse("* * *", None).is_err());
        assert!(Schedule::parse("0 0 * * *", Some("Mars/Olympus")).is_err());
    }

    #[test]
    fn month_ends_and_leap_years() {
        let s = Schedule::parse("0 9 31 * *", None).unwrap();
        // Skips April (30 days) and June.
        assert_eq!(s.next_n(ts("2026-03-31T10:00:00Z"), 2), vec![ts("2026-05-31T09:00:00Z"), ts("2026-07-31T09:00:00Z")]);
        let feb29 = Schedule::parse("0 0 29 2 *", None).unwrap();
        assert_eq!(feb29.next_after(ts("2026-03-01T00:00:00Z")), Some(ts("2028-02-29T00:00:00Z")));
    }

    #[test]
    fn dst_gap_and_fold_in_a_time_zone() {
        // Europe/Berlin: 2026-03-29 02:00 → 03:00 (gap); 2026-10-25 03:00 → 02:00 (fold).
        let s = Schedule::parse("30 2 * * *", Some("Europe/Berlin")).unwrap();
        let spring = s.next_n(ts("2026-03-28T12:00:00Z"), 2);
        // 29 March has no 02:30: the run happens right after the gap, at 03:00 CEST (01:00 UTC);
        // then 30 March 02:30 CEST.
        assert_eq!(spring, vec![ts("2026-03-29T01:00:00Z"), ts("2026-03-30T00:30:00Z")], "{}", s.local(spring[0]));
        let autumn = s.next_n(ts("2026-10-24T12:00:00Z"), 2);
        // 25 October 02:30 happens twice: the job runs once, at the first (CEST, UTC+2).
        assert_eq!(autumn[0], ts("2026-10-25T00:30:00Z"), "{}", s.local(autumn[0]));
        assert_eq!(autumn[1], ts("2026-10-26T01:30:00Z"), "{}", s.local(autumn[1]));
        // A daily 09:00 job stays at 09:00 local across the change (UTC shifts by an hour).
        let nine = Schedule::parse("0 9 * * *", Some("Europe/Berlin")).unwrap();
        assert_eq!(nine.next_n(ts("2026-03-28T12:00:00Z"), 2), vec![ts("2026-03-29T07:00:00Z"), ts("2026-03-30T07:00:00Z")]);
    }

    #[test]
    fn missed_runs_and_jitter() {
        let s = Schedule::parse("0 * * * *", None).unwrap();
        let now = ts("2026-05-01T10:20:00Z");
        assert!(missed(&s, None, now));
        assert!(missed(&s, Some(ts("2026-05-01T09:00:00Z")), now), "the 10:00 run was missed");
        assert!(!missed(&s, Some(ts("2026-05-01T10:00:05Z")), now));
        assert_eq!(with_jitter(100, 60, 0.5), 130);
        assert_eq!(with_jitter(100, 60, 7.0), 160);
        assert_eq!(with_jitter(100, 0, 0.9), 100);
    }
}
