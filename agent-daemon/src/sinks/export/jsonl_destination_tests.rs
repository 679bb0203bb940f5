//! The `jsonl` destination driven by the export loop over a real audit store: every event
//! once across rotated files, a restart resuming after the file's last line (counting only
//! what it wrote), a torn last line written again whole; the failure reasons.
use std::{path::Path, time::Duration};

use tokio_util::sync::CancellationToken;

use super::{
    super::{
        Batch, Destination, ExportMetrics, Reason,
        jsonl::rotated,
        jsonl_tests::{STORE, all_seqs, config, events},
        otel_tests::{pod, run_row},
        task::{Settings, run},
    },
    JsonlDestination, record_position, recorded_position,
};
use crate::sinks::audit::{AuditStore, testutil};

const KEEP: u32 = 1000;

fn local_seqs(db: &Path) -> Vec<i64> {
    let store = AuditStore::open_read_only(db).unwrap();
    store.read_after(0, 1_000_000).unwrap().iter().map(|e| e.seq).collect()
}

/// One export loop over the store at `db` to `path`, until it has caught up; the events it
/// counted as acknowledged.
async fn export_all(db: &Path, path: &Path) -> u64 {
    let metrics = ExportMetrics::default();
    let dest = JsonlDestination::new(config(path, 4096, KEEP), 0, "j", db.parent().unwrap());
    let store = AuditStore::open_read_only(db).unwrap();
    let settings = Settings { index: 0, name: "j".into(), node: "node-1".into(), batch: 7 };
    let drain = CancellationToken::new();
    // Draining: the loop exports what the store holds, then returns.
    drain.cancel();
    tokio::time::timeout(
        Duration::from_secs(30),
        run(dest, store, settings, metrics.handles("j"), drain),
    )
    .await
    .expect("the export caught up");
    metrics.acknowledged("j")
}

#[tokio::test]
async fn the_loop_writes_each_event_once_and_a_restart_resumes_after_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let path = dir.path().join("out/events.jsonl");
    let mut store = testutil::store(dir.path());
    store.write_batch(&testutil::run("a", 1, 0, 40, Some("ok"))).unwrap();
    store.write_batch(&testutil::run("b", 2, 100, 40, Some("flagged"))).unwrap();
    let first = local_seqs(&db);
    assert_eq!(export_all(&db, &path).await, first.len() as u64);
    assert_eq!(all_seqs(&path, KEEP), first);
    assert!(rotated(&path, 2).exists(), "small files: rotated more than once");

    // More events; a new daemon resumes after the file's last line and counts only those.
    store.write_batch(&testutil::run("c", 3, 200, 30, Some("killed"))).unwrap();
    let second = local_seqs(&db);
    assert_eq!(export_all(&db, &path).await, (second.len() - first.len()) as u64);
    assert_eq!(all_seqs(&path, KEEP), second);

    // A crash in the middle of a line: the torn event is written again, whole, once.
    store.write_batch(&testutil::run("d", 4, 300, 5, Some("ok"))).unwrap();
    let third = local_seqs(&db);
    assert_eq!(export_all(&db, &path).await, (third.len() - second.len()) as u64);
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 10, "the current file holds lines");
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 10).unwrap();
    assert_eq!(export_all(&db, &path).await, 1, "the torn event only");
    assert_eq!(all_seqs(&path, KEEP), third);
}

#[tokio::test]
async fn open_answers_the_files_position_for_this_store_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let mut dest = JsonlDestination::new(config(&path, 1 << 20, 2), 3, "j", dir.path());
    assert_eq!(dest.open(STORE).await, Ok(0), "a new file");
    let runs = [run_row(1, Some(pod()))];
    let written = events(1..=12);
    let batch = Batch { node: "node-1", store_id: STORE, events: &written, runs: &runs };
    dest.write(&batch).await.unwrap();
    // A batch of runs alone writes nothing.
    dest.write(&Batch { events: &[], ..batch }).await.unwrap();
    dest.close();
    assert_eq!(dest.open(STORE).await, Ok(12));
    assert_eq!(dest.open("another-store").await, Ok(0), "a new store starts again");
    assert_eq!(all_seqs(&path, 2), (1..=12).collect::<Vec<_>>());
    assert_eq!(dest.describe(), path.display().to_string());
    assert!(!dir.path().join("export-j.position").exists(), "a file needs no record");
}

#[tokio::test]
async fn standard_output_resumes_after_the_position_it_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export-out.position");
    assert_eq!(recorded_position(&file, STORE), 0, "nothing recorded");
    record_position(&file, STORE, 41).unwrap();
    record_position(&file, STORE, 42).unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), format!("{STORE} 42\n"));
    assert_eq!(recorded_position(&file, "another-store"), 0);
    let mut dest = JsonlDestination::new(config(Path::new("-"), 4096, 1), 0, "out", dir.path());
    assert_eq!(dest.describe(), "standard output");
    assert_eq!(dest.open(STORE).await, Ok(42));
    dest.close();
    assert_eq!(dest.open(STORE).await, Ok(42), "the writer is kept; nothing written yet");
    assert_eq!(dest.open("another-store").await, Ok(0));
    std::fs::write(&file, "garbage").unwrap();
    assert_eq!(recorded_position(&file, STORE), 0);
}

#[tokio::test]
async fn failures_have_bounded_reasons_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    // Its directory cannot be made: a file stands there.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    let mut dest =
        JsonlDestination::new(config(&blocker.join("events.jsonl"), 4096, 1), 2, "j", dir.path());
    let e = dest.open(STORE).await.unwrap_err();
    assert_eq!(e.reason, Reason::Connect, "{}", e.message);
    assert!(e.message.starts_with("export[2].path = "), "{}", e.message);
    // A file paddock did not write.
    let foreign = dir.path().join("foreign.jsonl");
    std::fs::write(&foreign, "{\"msg\":\"hello\"}\n").unwrap();
    let mut dest = JsonlDestination::new(config(&foreign, 4096, 1), 0, "j", dir.path());
    let e = dest.open(STORE).await.unwrap_err();
    assert_eq!(e.reason, Reason::Schema, "{}", e.message);
    assert!(e.message.contains("not an event paddock exported"), "{}", e.message);
    // Writing before opening.
    let written = events(1..=2);
    let batch = Batch { node: "n", store_id: STORE, events: &written, runs: &[] };
    assert_eq!(dest.write(&batch).await.unwrap_err().reason, Reason::Other);
}
