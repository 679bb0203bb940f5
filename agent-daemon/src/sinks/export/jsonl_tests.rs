//! The JSON-lines writer: rotation, recovery after a crash, read-back, the stream target.
use std::{
    collections::HashMap,
    io::Write,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use serde_json::Value;

use super::{
    jsonl::{JsonlConfig, JsonlWriter, rotated},
    otel_tests::{event, every_kind, pod, run_row},
};
use crate::sinks::audit::{query::InvestigationRow, read::StoredEvent};

pub const STORE: &str = "0123456789abcdef0123456789abcdef";

/// Events numbered `seqs`, cycling through every kind, all of run 1.
pub fn events(seqs: impl IntoIterator<Item = i64>) -> Vec<StoredEvent> {
    let kinds = every_kind();
    seqs.into_iter()
        .map(|seq| StoredEvent {
            seq,
            run: 1,
            event: event(kinds[seq as usize % kinds.len()].clone()),
        })
        .collect()
}

pub fn runs() -> HashMap<i64, InvestigationRow> {
    HashMap::from([(1, run_row(1, Some(pod())))])
}

pub fn config(path: &Path, max_bytes: u64, keep: u32) -> JsonlConfig {
    JsonlConfig { path: path.to_owned(), max_bytes, keep }
}

/// The `paddock.seq` of every line of `path` (none when it does not exist); every line must
/// be whole JSON.
pub fn seqs_of(path: &Path) -> Vec<i64> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    assert!(text.is_empty() || text.ends_with('\n'), "{}: a torn last line", path.display());
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            v["paddock.seq"].as_i64().unwrap()
        })
        .collect()
}

/// Every seq, oldest file first: `path.keep` ... `path.1`, then `path`.
pub fn all_seqs(path: &Path, keep: u32) -> Vec<i64> {
    let mut all = Vec::new();
    for n in (1..=keep).rev() {
        all.extend(seqs_of(&rotated(path, n)));
    }
    all.extend(seqs_of(path));
    all
}

fn write(writer: &mut JsonlWriter, seqs: impl IntoIterator<Item = i64>) {
    writer.write(&events(seqs), &runs(), "node-1", STORE).unwrap();
}

#[test]
fn files_rotate_by_rename_below_the_size_keeping_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep/er/events.jsonl");
    let mut writer = JsonlWriter::open(&config(&path, 4096, 2), 0).unwrap();
    for batch in 0..20 {
        write(&mut writer, batch * 10 + 1..=batch * 10 + 10);
    }
    let mut names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]);
    let mut kept = Vec::new();
    for p in [rotated(&path, 2), rotated(&path, 1), path.clone()] {
        let meta = std::fs::metadata(&p).unwrap();
        assert!(meta.len() <= 4096, "{}: {} bytes", p.display(), meta.len());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{}", p.display());
        let seqs = seqs_of(&p);
        assert!(!seqs.is_empty(), "{}", p.display());
        kept.extend(seqs);
    }
    // The newest events, in order, each once; the rotated files were full (the next line
    // would not have fitted).
    let first = kept[0];
    assert_eq!(kept, (first..=200).collect::<Vec<_>>());
    assert!(first > 1, "older files were dropped");
    let rotated_1 = std::fs::metadata(rotated(&path, 1)).unwrap().len();
    assert!(rotated_1 > 4096 - 1500, "rotated early: {rotated_1} bytes");
    assert_eq!(writer.acknowledged(STORE), Some(200));
}

#[test]
fn keep_zero_removes_a_full_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let mut writer = JsonlWriter::open(&config(&path, 4096, 0), 0).unwrap();
    write(&mut writer, 1..=40);
    assert!(!rotated(&path, 1).exists());
    let seqs = seqs_of(&path);
    assert_eq!(*seqs.last().unwrap(), 40);
    assert!(seqs[0] > 1);
}

#[test]
fn a_torn_last_line_is_cut_off_at_open_and_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let mut writer = JsonlWriter::open(&config(&path, 1 << 20, 3), 0).unwrap();
    write(&mut writer, 1..=5);
    drop(writer);
    let whole = std::fs::metadata(&path).unwrap().len();
    // A crash in the middle of the line of event 6.
    let line = serde_json::to_vec(&super::otel::OtelRecord::new(
        &events([6])[0],
        &runs(),
        "node-1",
        STORE,
    ))
    .unwrap();
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&line[..line.len() / 2]).unwrap();
    drop(file);

    let mut writer = JsonlWriter::open(&config(&path, 1 << 20, 3), 0).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), whole, "the torn line is cut off");
    assert_eq!(writer.acknowledged(STORE), Some(5));
    write(&mut writer, 6..=8);
    assert_eq!(seqs_of(&path), (1..=8).collect::<Vec<_>>());
}

#[test]
fn acknowledged_is_read_back_per_store_and_a_batch_given_twice_is_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    assert_eq!(JsonlWriter::open(&config(&path, 4096, 3), 0).unwrap().acknowledged(STORE), None);
    let mut writer = JsonlWriter::open(&config(&path, 4096, 3), 0).unwrap();
    write(&mut writer, [3, 5, 9]);
    drop(writer);
    let mut writer = JsonlWriter::open(&config(&path, 4096, 3), 0).unwrap();
    assert_eq!(writer.acknowledged(STORE), Some(9));
    assert_eq!(writer.acknowledged("another-store"), None);
    write(&mut writer, [5, 9, 10]);
    assert_eq!(seqs_of(&path), [3, 5, 9, 10]);
}

#[test]
fn after_a_crash_between_rotation_and_a_new_file_the_newest_rotated_file_is_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let mut writer = JsonlWriter::open(&config(&path, 4096, 3), 0).unwrap();
    write(&mut writer, 1..=4);
    drop(writer);
    std::fs::rename(&path, rotated(&path, 1)).unwrap();
    let mut writer = JsonlWriter::open(&config(&path, 4096, 3), 0).unwrap();
    assert_eq!(writer.acknowledged(STORE), Some(4));
    assert!(path.exists(), "a new current file");
    write(&mut writer, 5..=6);
    assert_eq!(all_seqs(&path, 3), (1..=6).collect::<Vec<_>>());
}

#[test]
fn a_file_paddock_did_not_write_is_refused_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    std::fs::write(&path, "hello\nworld\n").unwrap();
    let err = JsonlWriter::open(&config(&path, 4096, 3), 4).err().unwrap().to_string();
    assert!(err.starts_with("export[4].path = "), "{err}");
    assert!(err.contains("its last line is not an event paddock exported"), "{err}");
    // A directory where the file's directory should be.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let err = JsonlWriter::open(&config(&blocker.join("events.jsonl"), 4096, 3), 1)
        .err()
        .unwrap()
        .to_string();
    assert!(err.starts_with("export[1].path = "), "{err}");
    assert!(err.contains("cannot create its directory"), "{err}");
    let err = JsonlWriter::open(&config(Path::new("rel.jsonl"), 4096, 3), 1).err().unwrap();
    assert!(err.to_string().starts_with("export[1].path = \"rel.jsonl\": must be absolute"));
}

/// A writer whose bytes a test can read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_stream_target_writes_whole_lines_and_cannot_read_back() {
    let out = Captured::default();
    let mut writer = JsonlWriter::to_stream(Box::new(out.clone()), 0);
    assert_eq!(writer.acknowledged(STORE), None, "nothing to read back");
    write(&mut writer, 1..=18);
    write(&mut writer, 10..=20);
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert!(text.ends_with('\n'));
    let seqs: Vec<i64> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["paddock.seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>(), "what this writer wrote is not written again");
    let stdout = JsonlWriter::open(&config(Path::new("-"), 4096, 0), 0).unwrap();
    assert_eq!(stdout.acknowledged(STORE), None);
}

#[test]
fn rotated_names_append_a_number() {
    assert_eq!(rotated(Path::new("/var/log/e.jsonl"), 3), PathBuf::from("/var/log/e.jsonl.3"));
}
