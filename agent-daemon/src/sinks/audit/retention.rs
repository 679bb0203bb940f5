//! Retention: what is too old, or too much, goes; whole runs at a time, oldest first, so
//! what stays is always complete. A run that has not ended is never deleted.
//!
//! - Age: an ended run whose `ended_ns` is more than `max_age_days` ago goes, with its
//!   events (its events are all older than its end).
//! - Size: while the pages in use (`(page_count - freelist_count) * page_size`) exceed
//!   `max_bytes`, the oldest ended runs go. Freed pages are then given back to the file
//!   system (`auto_vacuum = INCREMENTAL`), so the file shrinks too.
use rusqlite::params;
use serde::Serialize;

use super::{AuditError, AuditStore, filter::to_ns};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    pub runs_deleted: u64,
    pub events_deleted: u64,
    /// Pages in use, in bytes, before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Still over `max_bytes` with no ended run left to delete.
    pub over_limit: bool,
}

/// Runs deleted per transaction, so the writer is not held for long at a time.
const RUNS_PER_PASS: i64 = 64;

const OLD_RUNS: &str = "SELECT run, events FROM investigations \
     WHERE ended_ns IS NOT NULL AND ended_ns < ?1 ORDER BY ended_ns, run LIMIT ?2";
const OLDEST_RUNS: &str = "SELECT run, events FROM investigations \
     WHERE ended_ns IS NOT NULL ORDER BY ended_ns, run LIMIT ?1";

impl AuditStore {
    pub fn enforce_retention(&self) -> Result<RetentionReport, AuditError> {
        self.enforce_retention_at(to_ns(chrono::Utc::now())?)
    }

    pub(super) fn enforce_retention_at(&self, now_ns: i64) -> Result<RetentionReport, AuditError> {
        let bytes_before = self.used_bytes()?;
        let mut report =
            RetentionReport { bytes_before, bytes_after: bytes_before, ..Default::default() };
        if self.config.max_age_days > 0 {
            let age_ns = i64::try_from(self.config.max_age_days)
                .unwrap_or(i64::MAX)
                .saturating_mul(86_400_000_000_000);
            let cutoff = now_ns.saturating_sub(age_ns);
            loop {
                let runs = self.pick(OLD_RUNS, params![cutoff, RUNS_PER_PASS])?;
                // (Nothing deleted cannot happen; it would only loop.)
                if runs.is_empty() || self.delete_runs(&runs, &mut report)? == 0 {
                    break;
                }
            }
        }
        let max = self.config.max_bytes;
        if max > 0 {
            let mut used = self.used_bytes()?;
            while used > max {
                let runs = self.pick_to_free(used - max)?;
                if runs.is_empty() || self.delete_runs(&runs, &mut report)? == 0 {
                    report.over_limit = true;
                    break;
                }
                used = self.used_bytes()?;
            }
        }
        if report.runs_deleted > 0 {
            // Each step of this pragma frees one page: step it to the end.
            let mut vacuum = self.conn.prepare("PRAGMA incremental_vacuum")?;
            let mut steps = vacuum.query([])?;
            while steps.next()?.is_some() {}
            // Fold the deletions into the main file, and let the log shrink.
            self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        report.bytes_after = self.used_bytes()?;
        Ok(report)
    }

    /// Bytes in the pages the database uses (free pages not counted).
    pub fn used_bytes(&self) -> Result<u64, AuditError> {
        let pragma = |name| self.conn.pragma_query_value(None, name, |r| r.get::<_, i64>(0));
        let pages = pragma("page_count")? - pragma("freelist_count")?;
        Ok(u64::try_from(pages.max(0) * pragma("page_size")?).unwrap_or(0))
    }

    fn pick(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<(i64, i64)>, AuditError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let runs = stmt.query_map(params, |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(runs.collect::<Result<_, _>>()?)
    }

    /// The oldest ended runs whose events, at the average size of an event, add up to
    /// `excess` bytes (at least one run).
    fn pick_to_free(&self, excess: u64) -> Result<Vec<(i64, i64)>, AuditError> {
        let total: i64 = self.conn.query_row(
            "SELECT coalesce(sum(events), 0) FROM investigations",
            [],
            |r| r.get(0),
        )?;
        let per_event = self.used_bytes()? / u64::try_from(total.max(1)).unwrap_or(1);
        let candidates = self.pick(OLDEST_RUNS, params![RUNS_PER_PASS])?;
        let mut freed = 0u64;
        let mut picked = Vec::new();
        for (run, events) in candidates {
            picked.push((run, events));
            freed += u64::try_from(events.max(1)).unwrap_or(1) * per_event.max(1);
            if freed >= excess {
                break;
            }
        }
        Ok(picked)
    }

    /// Delete `runs` (if ended) and their events in one transaction; how many runs went.
    fn delete_runs(
        &self,
        runs: &[(i64, i64)],
        report: &mut RetentionReport,
    ) -> Result<u64, AuditError> {
        let tx = self.conn.unchecked_transaction()?;
        let (mut deleted_runs, mut deleted_events) = (0, 0);
        {
            let mut count =
                tx.prepare_cached("SELECT coalesce(sum(count), 0) FROM chunks WHERE run = ?1")?;
            let mut events = tx.prepare_cached("DELETE FROM chunks WHERE run = ?1")?;
            let mut run_row = tx.prepare_cached(
                "DELETE FROM investigations WHERE run = ?1 AND ended_ns IS NOT NULL",
            )?;
            for (run, _) in runs {
                // A running run's row stays, and so do its events.
                if run_row.execute([run])? > 0 {
                    deleted_runs += 1;
                    let n: i64 = count.query_row([run], |r| r.get(0))?;
                    events.execute([run])?;
                    deleted_events += u64::try_from(n).unwrap_or(0);
                }
            }
        }
        tx.commit()?;
        report.events_deleted += deleted_events;
        report.runs_deleted += deleted_runs;
        Ok(deleted_runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::audit::{AuditConfig, InvestigationFilter, filter::to_ns, testutil::*};

    fn count(store: &AuditStore, table: &str) -> i64 {
        let sql = match table {
            "events" => "SELECT coalesce(sum(count), 0) FROM chunks",
            _ => "SELECT count(*) FROM investigations",
        };
        store.conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn old_ended_runs_go_and_running_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let config = AuditConfig { max_age_days: 1, max_bytes: 0, ..AuditConfig::default() };
        let mut store = AuditStore::open(&dir.path().join("audit.db"), &config).unwrap();
        let day = 86_400;
        store.write_batch(&run("old", 1, 0, 5, Some("ok"))).unwrap();
        store.write_batch(&run("old-running", 2, 10, 5, None)).unwrap();
        store.write_batch(&run("recent", 3, 2 * day, 5, Some("flagged"))).unwrap();
        assert_eq!(count(&store, "events"), 7 + 6 + 7);
        // Three days after the start: "old" ended 3 days ago, "recent" 1 day minus 7 s ago.
        let report = store.enforce_retention_at(to_ns(at(3 * day)).unwrap()).unwrap();
        assert_eq!((report.runs_deleted, report.events_deleted), (1, 7));
        assert!(!report.over_limit);
        let left: Vec<String> = store
            .list_investigations(&InvestigationFilter::default())
            .unwrap()
            .into_iter()
            .map(|r| r.id.to_string())
            .collect();
        assert_eq!(left, ["recent", "old-running"]);
        assert_eq!(count(&store, "events"), 6 + 7);
        // Ten years on, the running one is still there.
        store.enforce_retention_at(to_ns(at(3650 * day)).unwrap()).unwrap();
        assert_eq!(count(&store, "investigations"), 1);
        assert_eq!(count(&store, "events"), 6);
        // max_age_days = 0 keeps everything.
        let config = AuditConfig { max_age_days: 0, max_bytes: 0, ..AuditConfig::default() };
        let mut store = AuditStore::open(&dir.path().join("forever.db"), &config).unwrap();
        store.write_batch(&run("old", 1, 0, 5, Some("ok"))).unwrap();
        let report = store.enforce_retention_at(to_ns(at(3650 * day)).unwrap()).unwrap();
        assert_eq!(report.runs_deleted, 0);
    }

    #[test]
    fn over_the_size_limit_the_oldest_ended_runs_go_until_under() {
        let dir = tempfile::tempdir().unwrap();
        let config = AuditConfig { max_age_days: 0, max_bytes: 1 << 20, ..AuditConfig::default() };
        let mut store = AuditStore::open(&dir.path().join("audit.db"), &config).unwrap();
        // Ten ended runs of ~8000 events (about 270 KiB each, in chunks), then a running one.
        for i in 0..10 {
            let id = format!("run-{i}");
            store.write_batch(&run(&id, i + 1, i64::from(i) * 10_000, 8000, Some("ok"))).unwrap();
        }
        store.write_batch(&run("live", 99, 200_000, 1000, None)).unwrap();
        let before = store.used_bytes().unwrap();
        assert!(before > 2 << 20, "{before}");
        let file_before = store.file_bytes();
        let report = store.enforce_retention_at(to_ns(at(300_000)).unwrap()).unwrap();
        assert!(report.runs_deleted >= 1 && report.bytes_after <= 1 << 20, "{report:?}");
        assert!(!report.over_limit, "{report:?}");
        assert!(store.file_bytes() < file_before, "the file shrinks too");
        let left = store.list_investigations(&InvestigationFilter::default()).unwrap();
        let ids: Vec<String> = left.iter().map(|r| r.id.to_string()).collect();
        assert_eq!(ids.first().map(String::as_str), Some("live"));
        // The newest survive, the oldest went: what is left is a suffix of the runs.
        let kept: Vec<&String> = ids.iter().skip(1).collect();
        let expected: Vec<String> =
            (0..10).rev().take(kept.len()).map(|i| format!("run-{i}")).collect();
        assert_eq!(kept, expected.iter().collect::<Vec<_>>());
        // Only the running one left and still over: reported, never deleted.
        let config = AuditConfig { max_age_days: 0, max_bytes: 1 << 20, ..AuditConfig::default() };
        let mut store = AuditStore::open(&dir.path().join("live.db"), &config).unwrap();
        store.write_batch(&run("live", 1, 0, 40_000, None)).unwrap();
        let report = store.enforce_retention_at(to_ns(at(50_000)).unwrap()).unwrap();
        assert!(report.over_limit && report.runs_deleted == 0, "{report:?}");
        assert_eq!(count(&store, "events"), 40_001);
        assert_eq!(store.integrity_check().unwrap(), "ok");
    }
}
