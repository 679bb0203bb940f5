//! Reading the store in the order it was written, for exporters: every event after a
//! sequence number, with the run it belongs to. Sequence numbers are the store's: they only
//! grow, are never reused in one file (`meta.store_id` tells one file from the next), and
//! retention removes them from the oldest end only.
use super::{AuditError, AuditStore, query::InvestigationRow, scan::Walk};
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
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let walk = Walk { conditions: String::new(), args: Vec::new(), after: Some(after) };
        self.walk(
            walk,
            |_| true,
            |f| {
                out.push(StoredEvent { seq: f.seq, run: f.run, event: f.event });
                out.len() < limit
            },
        )?;
        Ok(out)
    }

    /// The lowest and highest sequence numbers still stored; `None` when no event is.
    pub fn seq_range(&self) -> Result<Option<(i64, i64)>, AuditError> {
        let range: (Option<i64>, Option<i64>) = self.conn.query_row(
            "SELECT (SELECT first_seq FROM chunks ORDER BY last_seq LIMIT 1), max(last_seq) \
             FROM chunks",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
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
        Ok(super::schema::next_seq(&self.conn)? - 1)
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
        assert!(all.windows(2).all(|w| w[0].seq + 1 == w[1].seq), "consecutive");
        // In a batch, each run's events in the order they came, runs by their first event.
        let order: Vec<&Event> = all.iter().map(|s| &s.event).collect();
        assert_eq!(order, [&*records[0], &*records[2], &*records[1], &*records[3]]);
        assert_eq!(all[0].run, all[1].run);
        assert_ne!(all[1].run, all[2].run);
        let after = store.read_after(all[1].seq, 1).unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].seq, all[2].seq);
        assert!(store.read_after(all[3].seq, 10).unwrap().is_empty());
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
