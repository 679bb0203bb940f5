//! One batch of records in one transaction. A `started` event opens a run (a row of
//! `investigations`), `ended` closes it, and each run's event count goes up once per batch.
//! The events of each run in the batch become one chunk (`chunk`): one B-tree insert for
//! up to `batch_max_events` events, where one row per event took five (the table and
//! four indexes).
//!
//! Runs are keyed by the daemon's instance number while they are open. Instance numbers
//! start again at 1 when the daemon restarts, so they cannot identify a run in a file that
//! outlives the daemon: the store numbers runs itself (`investigations.run`).
use std::collections::HashMap;

use rusqlite::{OptionalExtension as _, Transaction, params};

use super::{AuditError, AuditRecord, AuditStore, chunk::Builder, filter::to_ns};
use crate::events::{Event, EventKind, PodRef};

/// What a batch came to: events committed, and records refused as malformed (not retried).
#[cfg(test)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub stored: usize,
    pub rejected: usize,
}

/// A record checked and encoded, ready to insert.
pub(super) struct Row<'a> {
    instance: u32,
    event: &'a Event,
    time_ns: i64,
    kind: &'static str,
    body: String,
}

const INSERT_RUN: &str = "INSERT INTO investigations (instance, id, phase, source, cgroup, \
     started_ns, namespace, pod, job) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
const FIND_RUNNING: &str = "SELECT run FROM investigations \
     WHERE instance = ?1 AND id = ?2 AND ended_ns IS NULL ORDER BY run DESC LIMIT 1";
const SET_NEXT_SEQ: &str = "UPDATE meta SET value = ?1 WHERE key = 'next_seq'";
const END_RUN: &str = "UPDATE investigations SET ended_ns = ?2, outcome = ?3, reason = ?4 \
     WHERE run = ?1";
const COUNT_EVENTS: &str = "UPDATE investigations SET events = events + ?2 WHERE run = ?1";

/// Check and encode `records`; each one that cannot be stored is logged and counted.
pub(super) fn prepare(records: &[AuditRecord]) -> (Vec<Row<'_>>, usize) {
    let mut rows = Vec::with_capacity(records.len());
    let mut rejected = 0;
    for record in records {
        let event = &**record;
        let encoded = to_ns(event.time).and_then(|time_ns| {
            let body = serde_json::to_string(event).map_err(AuditError::Encode)?;
            Ok((time_ns, body))
        });
        match encoded {
            Ok((time_ns, body)) => rows.push(Row {
                instance: event.instance,
                event,
                time_ns,
                kind: event.kind.name(),
                body,
            }),
            Err(error) => {
                rejected += 1;
                tracing::warn!(
                    investigation = %event.investigation,
                    instance = event.instance,
                    kind = event.kind.name(),
                    %error,
                    "audit store: event refused"
                );
            }
        }
    }
    (rows, rejected)
}

impl AuditStore {
    /// Store `records` in one transaction. On error nothing of the batch is stored and the
    /// store is as before, so the same batch can be tried again. (The writer thread uses
    /// `prepare` and `write_rows` itself, to retry without encoding twice.)
    #[cfg(test)]
    pub fn write_batch(&mut self, records: &[AuditRecord]) -> Result<BatchOutcome, AuditError> {
        let (rows, rejected) = prepare(records);
        let stored = self.write_rows(&rows)?;
        Ok(BatchOutcome { stored, rejected })
    }

    pub(super) fn write_rows(&mut self, rows: &[Row<'_>]) -> Result<usize, AuditError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let mut open_runs = self.open_runs.clone();
        let mut next_seq = self.next_seq;
        let tx = self.conn.transaction()?;
        insert(&tx, rows, &mut open_runs, &mut next_seq)?;
        tx.commit()?;
        self.open_runs = open_runs;
        self.next_seq = next_seq;
        Ok(rows.len())
    }
}

/// The events of `rows`, grouped by run (each run's in the order they came, the runs in the
/// order of their first event), each group one chunk with the next sequence numbers.
fn insert(
    tx: &Transaction<'_>,
    rows: &[Row<'_>],
    open_runs: &mut HashMap<u32, i64>,
    next_seq: &mut i64,
) -> Result<(), AuditError> {
    let mut insert_run = tx.prepare_cached(INSERT_RUN)?;
    let mut find_running = tx.prepare_cached(FIND_RUNNING)?;
    let mut end_run = tx.prepare_cached(END_RUN)?;
    let mut groups: Vec<(i64, &str, Builder)> = Vec::new();
    let mut group_of: HashMap<i64, usize> = HashMap::new();
    for row in rows {
        let event = row.event;
        let id = event.investigation.as_str();
        let mut new_run = |source: Option<&str>, cgroup: Option<&str>, pod: Option<&PodRef>| {
            insert_run.execute(params![
                row.instance,
                id,
                event.phase.as_str(),
                source,
                cgroup,
                row.time_ns,
                pod.map(|p| &p.namespace),
                pod.map(|p| &p.name),
                pod.and_then(|p| p.job.as_ref()),
            ])?;
            Ok::<_, AuditError>(tx.last_insert_rowid())
        };
        let run = match &event.kind {
            EventKind::Started { source, cgroup, pod } => {
                new_run(Some(source), Some(cgroup), pod.as_ref())?
            }
            _ => match open_runs.get(&row.instance) {
                Some(run) => *run,
                // Not seen starting by this store: its running row, or a row of its own.
                None => match find_running
                    .query_row(params![row.instance, id], |r| r.get(0))
                    .optional()?
                {
                    Some(run) => run,
                    None => match &event.kind {
                        EventKind::Resumed { source, cgroup, pod, .. } => {
                            new_run(Some(source), Some(cgroup), pod.as_ref())?
                        }
                        _ => new_run(None, None, None)?,
                    },
                },
            },
        };
        open_runs.insert(row.instance, run);
        let group = *group_of.entry(run).or_insert_with(|| {
            groups.push((run, id, Builder::default()));
            groups.len() - 1
        });
        groups[group].2.push(row.kind, row.time_ns, event.pid, event.ppid, row.body.as_bytes());
        if let EventKind::Ended { outcome, reason, emptied_at, .. } = &event.kind {
            let ended_ns = to_ns(*emptied_at).unwrap_or(row.time_ns);
            end_run.execute(params![run, ended_ns, outcome.as_str(), reason])?;
            open_runs.remove(&row.instance);
        }
    }
    let mut count_events = tx.prepare_cached(COUNT_EVENTS)?;
    for (run, id, builder) in groups {
        let chunk = builder.finish();
        let first = *next_seq;
        let last = chunk.insert(tx, first, run, id)?;
        count_events.execute(params![run, last - first + 1])?;
        *next_seq = last + 1;
    }
    tx.prepare_cached(SET_NEXT_SEQ)?.execute([*next_seq])?;
    Ok(())
}
