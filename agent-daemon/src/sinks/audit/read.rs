//! Reading the store in the order it was written, for exporters: every event after a
//! sequence number, with the run it belongs to. Sequence numbers are the store's: they only
//! grow, are never reused in one file (`meta.store_id` tells one file from the next), and
//! retention removes them from the oldest end only.
use rusqlite::OptionalExtension as _;

use super::{AuditError, AuditStore, query::InvestigationRow};
use crate::events::Event;

/// One stored event and where it sits in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: i64,
    /// The store's number for the run it belongs to (see [`AuditStore::run`]).
    pub run: i64,
    pub event: Event,
}

impl AuditStore {
    /// The store's identity: random, made once with the file (or its upgrade to schema 2).
    pub fn store_id(&self) -> Result<String, AuditError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'store_id'", [], |r| r.get(0))?)
    }

    /// Up to `limit` events with a sequence number above `after`, oldest first.
    pub fn read_after(&self, after: i64, limit: usize) -> Result<Vec<StoredEvent>, AuditError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, run, body FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(rusqlite::params![after, limit], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, run, body) = row?;
            let event = serde_json::from_str(&body)
                .map_err(|source| AuditError::BadBody { seq, source })?;
            out.push(StoredEvent { seq, run, event });
        }
        Ok(out)
    }

    /// The lowest and highest sequence numbers still stored; `None` when no event is.
    pub fn seq_range(&self) -> Result<Option<(i64, i64)>, AuditError> {
        let range: (Option<i64>, Option<i64>) =
            self.conn.query_row("SELECT min(seq), max(seq) FROM events", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        Ok(match range {
            (Some(low), Some(high)) => Some((low, high)),
            _ => None,
        })
    }

    /// The runs numbered `runs`, for an exporter that copies them beside their events.
    pub fn runs(&self, runs: &[i64]) -> Result<Vec<InvestigationRow>, AuditError> {
        runs.iter()
            .filter_map(|&run| match self.run(run) {
                Err(AuditError::UnknownRun(_)) => None,
                other => Some(other),
            })
            .collect()
    }

    /// The highest sequence number the file has ever given, even when retention has since
    /// deleted that event; 0 for a file that never stored one.
    pub fn last_seq_given(&self) -> Result<i64, AuditError> {
        let seq: Option<i64> = self
            .conn
            .query_row("SELECT seq FROM sqlite_sequence WHERE name = 'events'", [], |r| r.get(0))
            .optional()?;
        Ok(seq.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{AuditConfig, testutil::*};
    use super::*;

    #[test]
    fn events_come_back_in_order_after_a_sequence_number_with_their_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut store =
            AuditStore::open(&dir.path().join("a.db"), &AuditConfig::default()).unwrap();
        assert_eq!(store.seq_range().unwrap(), None);
        assert_eq!(store.last_seq_given().unwrap(), 0);
        let id = store.store_id().unwrap();
        assert_eq!(id.len(), 32, "{id}");
        let records = vec![
            record(1, event("inv-a", at(0), 0, "", started())),
            record(2, event("inv-b", at(1), 0, "", started())),
            record(1, event("inv-a", at(2), 10, "sh", exec("/bin/sh", &["sh"]))),
            record(2, event("inv-b", at(3), 11, "cat", exec("/bin/cat", &["cat"]))),
        ];
        store.write_batch(&records).unwrap();
        let all = store.read_after(0, 100).unwrap();
        assert_eq!(all.len(), 4);
        assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(all[2].event, *records[2]);
        assert_eq!(all[0].run, all[2].run);
        assert_ne!(all[0].run, all[1].run);
        let after = store.read_after(all[1].seq, 1).unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].seq, all[2].seq);
        assert_eq!(store.seq_range().unwrap(), Some((all[0].seq, all[3].seq)));
        assert_eq!(store.last_seq_given().unwrap(), all[3].seq);
        let runs = store.runs(&[all[0].run, all[1].run, 999]).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].id.as_str(), "inv-a");
        // The identity is the file's: the same when opened again.
        drop(store);
        let store = AuditStore::open_read_only(&dir.path().join("a.db")).unwrap();
        assert_eq!(store.store_id().unwrap(), id);
    }
}
