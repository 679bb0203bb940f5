//! Schema 2 to 3: the rows of `events` move into chunks, in the same transaction as the
//! rest of the upgrade (a crash midway leaves the file as it was). Sequence numbers are
//! kept, so cursors and exporters' positions stay valid: a chunk is a stretch of
//! consecutive sequence numbers of one run, at most `PER_CHUNK` long. Where runs were
//! interleaved event by event the chunks are short; the file is correct, only larger than
//! one written in chunks from the start.
use std::path::Path;

use rusqlite::Transaction;

use super::{AuditError, chunk::Builder};

const PER_CHUNK: usize = 2000;

/// A stretch being gathered: its run, investigation, first and last seq.
struct Stretch {
    run: i64,
    investigation: String,
    first: i64,
    last: i64,
    builder: Builder,
}

pub(super) fn events_to_chunks(tx: &Transaction<'_>, path: &Path) -> Result<(), AuditError> {
    let had_events: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'events')",
        [],
        |r| r.get(0),
    )?;
    if !had_events {
        return Ok(());
    }
    let mut moved = 0u64;
    {
        let mut read = tx.prepare(
            "SELECT seq, run, investigation, time_ns, kind, pid, ppid, body FROM events \
             ORDER BY seq",
        )?;
        let mut rows = read.query([])?;
        let flush = |s: Stretch| -> rusqlite::Result<()> {
            s.builder.finish().insert(tx, s.first, s.run, &s.investigation)?;
            Ok(())
        };
        let mut open: Option<Stretch> = None;
        while let Some(row) = rows.next()? {
            let (seq, run): (i64, i64) = (row.get(0)?, row.get(1)?);
            let continues = open
                .as_ref()
                .is_some_and(|s| s.run == run && s.last + 1 == seq && s.builder.count < PER_CHUNK);
            if !continues {
                if let Some(done) = open.take() {
                    flush(done)?;
                }
                open = Some(Stretch {
                    run,
                    investigation: row.get(2)?,
                    first: seq,
                    last: seq,
                    builder: Builder::default(),
                });
            }
            if let Some(s) = open.as_mut() {
                let kind: String = row.get(4)?;
                let body: String = row.get(7)?;
                let (pid, ppid): (u32, u32) = (row.get(5)?, row.get(6)?);
                s.builder.push(&kind, row.get(3)?, pid, ppid, body.as_bytes());
                s.last = seq;
            }
            moved += 1;
        }
        if let Some(done) = open.take() {
            flush(done)?;
        }
    }
    tx.execute_batch("DROP TABLE events")?;
    if moved > 0 {
        tracing::info!(
            path = %path.display(),
            events = moved,
            "audit store: moved the events into chunks (schema 3)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::super::{
        AuditConfig, AuditStore, EventFilter,
        filter::to_ns,
        schema::{V1, V2},
        testutil::*,
    };
    use crate::events::Event;

    /// A store as schema 2 wrote it: one row per event. Two runs interleaved, and the
    /// newest event deleted (as retention or a rollback leaves AUTOINCREMENT behind).
    fn version_2_store(path: &std::path::Path) -> Vec<(i64, i64, Event)> {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(V1).unwrap();
        conn.execute_batch(V2).unwrap();
        conn.execute_batch("BEGIN").unwrap();
        for (run, id) in [(1, "inv-a"), (2, "inv-b")] {
            conn.execute(
                "INSERT INTO investigations (run, instance, id, phase, started_ns, events) \
                 VALUES (?1, ?1, ?2, 'read-only', 0, 0)",
                rusqlite::params![run, id],
            )
            .unwrap();
        }
        let mut rows = Vec::new();
        for i in 0..2600i64 {
            // Mostly inv-a in long stretches, inv-b now and then.
            let (run, id) = if i % 1000 < 990 { (1, "inv-a") } else { (2, "inv-b") };
            let kind = if i % 10 == 0 { exec("/bin/sh", &["sh", "-c"]) } else { open_file("/f") };
            let event = event(id, at(i), 100 + i as u32, "sh", kind);
            conn.execute(
                "INSERT INTO events (run, investigation, time_ns, kind, pid, ppid, body) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![
                    run,
                    id,
                    to_ns(event.time).unwrap(),
                    event.kind.name(),
                    event.pid,
                    event.ppid,
                    serde_json::to_string(&event).unwrap()
                ],
            )
            .unwrap();
            conn.execute("UPDATE investigations SET events = events + 1 WHERE run = ?1", [run])
                .unwrap();
            rows.push((conn.last_insert_rowid(), run, event));
        }
        conn.execute("DELETE FROM events WHERE seq = 2600", []).unwrap();
        conn.execute("UPDATE investigations SET events = events - 1 WHERE run = 1", []).unwrap();
        rows.pop();
        conn.execute_batch("COMMIT").unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        rows
    }

    #[test]
    fn a_version_2_store_moves_into_chunks_keeping_every_event_and_its_seq() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let rows = version_2_store(&path);
        let mut store = AuditStore::open(&path, &AuditConfig::default()).unwrap();
        assert_eq!(store.integrity_check().unwrap(), "ok");
        // Every event, with its seq and run, in order.
        let read = store.read_after(0, 10_000).unwrap();
        let got: Vec<(i64, i64, &Event)> = read.iter().map(|s| (s.seq, s.run, &s.event)).collect();
        let want: Vec<(i64, i64, &Event)> = rows.iter().map(|(s, r, e)| (*s, *r, e)).collect();
        assert_eq!(got, want);
        // Queries by investigation, kind and cursor see the same.
        let a = "inv-a".parse().unwrap();
        let execs = EventFilter { kind: Some("exec".into()), ..Default::default() };
        let page = store.events(&a, &execs, Some(super::super::Cursor(1500)), 50).unwrap();
        let want: Vec<&Event> = rows
            .iter()
            .filter(|(seq, run, e)| *seq > 1500 && *run == 1 && e.kind.name() == "exec")
            .take(50)
            .map(|(_, _, e)| e)
            .collect();
        assert_eq!(page.events.iter().collect::<Vec<_>>(), want);
        // Counts agree, the old table is gone, and new events go on after the last seq
        // ever given (2600, deleted), never reusing it.
        let runs = store.runs(&[1, 2]).unwrap();
        assert_eq!(runs.iter().map(|r| r.events).sum::<u64>(), 2599);
        assert_eq!(store.last_seq_given().unwrap(), 2600);
        store.write_batch(&run("inv-c", 3, 5000, 2, None)).unwrap();
        assert_eq!(store.read_after(2599, 10).unwrap()[0].seq, 2601);
        let old: i64 = store
            .conn
            .query_row("SELECT count(*) FROM sqlite_schema WHERE name = 'events'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(old, 0);
    }
}
