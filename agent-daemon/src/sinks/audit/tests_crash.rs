//! Crash safety: a writer process dies (exits mid-transaction, or SIGKILL while writing
//! batches); the database then opens cleanly and holds every committed batch, whole.
use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Command, Stdio},
};

use super::{AuditConfig, AuditStore, testutil::*};

const DB: &str = "PADDOCK_AUDIT_CRASH_DB";
const MODE: &str = "PADDOCK_AUDIT_CRASH_MODE";
const BATCH: usize = 200;

/// The child: does nothing unless the parent test started it with `DB` and `MODE` set.
#[test]
#[ignore = "run by the crash tests in a child process"]
fn child() {
    let (Ok(path), Ok(mode)) = (std::env::var(DB), std::env::var(MODE)) else { return };
    let mut store = AuditStore::open(Path::new(&path), &AuditConfig::default()).unwrap();
    let mut start = 0;
    let mut batch = |store: &mut AuditStore| {
        let records: Vec<_> = (0..BATCH)
            .map(|i| record(1, event("inv-1", at(start + i as i64), 7, "cat", open_file("/x"))))
            .collect();
        start += BATCH as i64;
        store.write_batch(&records).unwrap();
    };
    match mode.as_str() {
        "abort" => {
            store.write_batch(&run("inv-1", 1, 0, 0, None)).unwrap();
            for _ in 0..5 {
                batch(&mut store);
            }
            // A big transaction, spilled to the log page by page (a tiny cache), never
            // committed.
            store.conn.pragma_update(None, "cache_size", 10).unwrap();
            let tx = store.conn.unchecked_transaction().unwrap();
            let body = vec![b'x'; 4000];
            for seq in 0..2000 {
                tx.execute(
                    "INSERT INTO chunks (last_seq, first_seq, run, investigation, count, kinds, \
                     min_time_ns, max_time_ns, dir, body) \
                     VALUES (1000000 + ?1, 1000000 + ?1, 1, 'inv-1', 1, 0, 0, 0, X'', ?2)",
                    rusqlite::params![seq, body],
                )
                .unwrap();
            }
            // Gone without a COMMIT or a ROLLBACK: no destructor runs.
            std::process::exit(3);
        }
        _ => {
            store.write_batch(&run("inv-1", 1, 0, 0, None)).unwrap();
            for n in 1.. {
                batch(&mut store);
                // Acknowledged: the COMMIT returned.
                println!("committed {}", 1 + n * BATCH);
            }
        }
    }
}

fn spawn(path: &Path, mode: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["sinks::audit::tests_crash::child", "--exact", "--ignored", "--nocapture"])
        .args(["--test-threads=1", "-q"])
        .env(DB, path)
        .env(MODE, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn counts(store: &AuditStore) -> (i64, i64) {
    let count = store
        .conn
        .query_row("SELECT coalesce(sum(count), 0) FROM chunks", [], |r| r.get(0))
        .unwrap();
    let sum = store.conn.query_row("SELECT sum(events) FROM investigations", [], |r| r.get(0));
    (count, sum.unwrap())
}

#[test]
fn an_uncommitted_transaction_is_gone_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let status = spawn(&path, "abort").wait().unwrap();
    assert_eq!(status.code(), Some(3), "the child left mid-transaction");
    assert!(dir.path().join("audit.db-wal").exists(), "it died with a log to recover");
    let store = AuditStore::open(&path, &AuditConfig::default()).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    assert_eq!(counts(&store), (1 + 5 * BATCH as i64, 1 + 5 * BATCH as i64));
}

#[test]
fn every_acknowledged_batch_survives_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let mut child = spawn(&path, "loop");
    let mut acknowledged = 0i64;
    // Kept open until the child is dead, so it never sees a closed pipe.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if let Some(n) = line.unwrap().strip_prefix("committed ") {
            acknowledged = n.parse().unwrap();
            if acknowledged > 30 * BATCH as i64 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL, in the middle of whatever it was doing
    child.wait().unwrap();
    drop(lines);
    assert!(acknowledged > 0, "the child wrote");
    let store = AuditStore::open(&path, &AuditConfig::default()).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let (count, sum) = counts(&store);
    assert!(count >= acknowledged, "{count} stored, {acknowledged} acknowledged");
    assert_eq!((count - 1) % BATCH as i64, 0, "whole batches only: {count}");
    assert_eq!(sum, count, "each run's count matches its events");
}
