//! The writer task: batching, draining on shutdown, bad records, retries.
use std::{
    sync::{Arc, atomic::Ordering::Relaxed},
    time::Duration,
};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    AuditConfig, AuditStore, EventFilter, InvestigationFilter,
    testutil::*,
    writer::{AuditStats, FailureBurst, eventually, run_writer, store_batch},
};
use crate::events::EventKind;

fn open(dir: &std::path::Path, events: usize, delay_ms: u64) -> AuditStore {
    let config = AuditConfig {
        batch_max_events: events,
        batch_max_delay_ms: delay_ms,
        ..Default::default()
    };
    AuditStore::open(&dir.join("audit.db"), &config).unwrap()
}

#[tokio::test]
async fn full_batches_then_the_rest_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 7, 10_000);
    let (tx, rx) = mpsc::channel(100);
    for r in run("inv-1", 1, 0, 48, Some("ok")) {
        tx.send(r).await.unwrap();
    }
    let stats = Arc::new(AuditStats::default());
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    // Cancelled before it starts: it still stores everything already queued.
    run_writer(store, rx, stats.clone(), shutdown).await;
    let (stored, batches, failed, bytes) = stats.snapshot();
    assert_eq!((stored, batches, failed), (50, 8, 0), "7 batches of 7, then 1");
    assert!(bytes > 0);
    let store = AuditStore::open_read_only(&dir.path().join("audit.db")).unwrap();
    let rows = store.list_investigations(&InvestigationFilter::default()).unwrap();
    assert_eq!((rows.len(), rows[0].events), (1, 50));
    let page = store.events(&"inv-1".parse().unwrap(), &EventFilter::default(), None, 100).unwrap();
    assert_eq!(page.events.len(), 50);
}

#[tokio::test]
async fn a_partial_batch_is_written_after_the_delay() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 1000, 20);
    let (tx, rx) = mpsc::channel(100);
    let stats = Arc::new(AuditStats::default());
    let shutdown = CancellationToken::new();
    let writer = tokio::spawn(run_writer(store, rx, stats.clone(), shutdown.clone()));
    for r in run("inv-1", 1, 0, 1, None) {
        tx.send(r).await.unwrap();
    }
    assert!(eventually(|| stats.stored.load(Relaxed) == 2).await, "{:?}", stats.snapshot());
    for r in run("inv-2", 2, 0, 2, None) {
        tx.send(r).await.unwrap();
    }
    assert!(eventually(|| stats.stored.load(Relaxed) == 5).await, "{:?}", stats.snapshot());
    assert_eq!(stats.batches.load(Relaxed), 2);
    // Closing the channel ends it too.
    drop(tx);
    tokio::time::timeout(Duration::from_secs(5), writer).await.unwrap().unwrap();
}

#[tokio::test]
async fn bad_records_are_counted_and_the_rest_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 100, 10);
    let (tx, rx) = mpsc::channel(100);
    let mut records = run("inv-1", 1, 0, 3, Some("ok"));
    let far = chrono::DateTime::parse_from_rfc3339("3000-01-01T00:00:00Z").unwrap().to_utc();
    records.insert(2, record(1, event("inv-1", far, 5, "x", open_file("/late"))));
    for r in records {
        tx.send(r).await.unwrap();
    }
    drop(tx);
    let stats = Arc::new(AuditStats::default());
    run_writer(store, rx, stats.clone(), CancellationToken::new()).await;
    let (stored, _, failed, _) = stats.snapshot();
    assert_eq!((stored, failed), (5, 1));
}

/// Hold the database's write lock from another connection for `hold`.
fn lock_for(path: &std::path::Path, hold: Duration) -> std::thread::JoinHandle<()> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    std::thread::spawn(move || {
        std::thread::sleep(hold);
        conn.execute_batch("COMMIT").unwrap();
    })
}

#[test]
fn a_failing_batch_is_tried_again_then_counted_as_failed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let mut store = open(dir.path(), 100, 10);
    store.set_busy_timeout(Duration::from_millis(5)).unwrap();
    let stats = AuditStats::default();
    let mut burst = FailureBurst::default();
    // Locked for a moment: a retry gets through.
    let lock = lock_for(&path, Duration::from_millis(150));
    store_batch(&mut store, &run("inv-1", 1, 0, 3, None), &stats, &mut burst);
    lock.join().unwrap();
    let (stored, batches, failed, _) = stats.snapshot();
    assert_eq!((stored, batches, failed), (4, 1, 0));
    // Locked for longer than every retry: the batch is counted as failed, nothing half done.
    // (Each batch takes about 1.1 s of tries and pauses: both fail.)
    let lock = lock_for(&path, Duration::from_millis(3000));
    store_batch(&mut store, &run("inv-2", 2, 0, 3, None), &stats, &mut burst);
    store_batch(&mut store, &run("inv-3", 3, 0, 3, None), &stats, &mut burst);
    lock.join().unwrap();
    let (stored, batches, failed, _) = stats.snapshot();
    assert_eq!((stored, batches, failed), (4, 1, 8));
    // Afterwards it stores again, and the runs it did store are whole.
    let end = vec![
        record(1, event("inv-1", at(10), 7, "cat", open_file("/y"))),
        record(1, event("inv-1", at(11), 0, "", ended("ok", at(11)))),
    ];
    store_batch(&mut store, &end, &stats, &mut burst);
    assert_eq!(stats.stored.load(Relaxed), 4 + 2);
    let runs = store.list_investigations(&InvestigationFilter::default()).unwrap();
    let summary: Vec<(String, u64)> = runs.iter().map(|r| (r.id.to_string(), r.events)).collect();
    assert_eq!(summary, [("inv-1".to_string(), 4 + 2)]);
    let count: i64 =
        store.conn.query_row("SELECT sum(count) FROM chunks", [], |r| r.get(0)).unwrap();
    let sum: i64 =
        store.conn.query_row("SELECT sum(events) FROM investigations", [], |r| r.get(0)).unwrap();
    assert_eq!(count, sum, "the per-run counts match the events stored");
    let page = store.events(&"inv-1".parse().unwrap(), &EventFilter::default(), None, 100).unwrap();
    assert!(matches!(page.events.last().unwrap().kind, EventKind::Ended { .. }));
}
