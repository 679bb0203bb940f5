//! What the JSON-lines export tests compare: the lines of an export file and its rotated
//! files, oldest first, with the local audit trail.
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::Value;

use crate::{
    Daemon,
    pg_trail::{audit_path, last_seq_given},
    wait::wait_settled,
};

/// `path`'s rotated files, oldest first (`path.N` ... `path.1`). Their numbers may have a
/// gap: a daemon killed in the middle of a rotation leaves one, which later rotations carry
/// along.
fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let dir = path.parent().expect("a directory");
    let name = path.file_name().expect("a file name").to_string_lossy().into_owned();
    let mut numbers: Vec<u32> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| {
                    let file = e.ok()?.file_name().into_string().ok()?;
                    file.strip_prefix(&name)?.strip_prefix('.')?.parse().ok()
                })
                .collect()
        })
        .unwrap_or_default();
    numbers.sort_unstable();
    numbers.iter().rev().map(|n| PathBuf::from(format!("{}.{n}", path.display()))).collect()
}

/// How many rotated files `path` has.
pub fn rotated_count(path: &Path) -> usize {
    rotated_files(path).len()
}

/// The lines of the export at `path` (its rotated files, oldest first, then the current
/// one), as JSON. A torn last line of the current file (a daemon killed while it wrote) is
/// left out when `torn_ok`, else refused; no current file is no line (killed in the middle
/// of a rotation); a rotated file gone between listing and reading (the daemon rotating)
/// gives `None`.
fn read(path: &Path, torn_ok: bool) -> Option<Vec<Value>> {
    let mut files = rotated_files(path);
    files.push(path.to_path_buf());
    let mut lines = Vec::new();
    for file in &files {
        let current = file == path;
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            // Killed between renaming the full file and making the next one.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && current => String::new(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => panic!("{}: {e}", file.display()),
        };
        let whole = match text.rfind('\n') {
            Some(end) => &text[..=end],
            None => "",
        };
        assert!(
            whole.len() == text.len() || (torn_ok && current),
            "{}: a torn last line: {:?}",
            file.display(),
            &text[whole.len()..]
        );
        for line in whole.lines() {
            let value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", file.display()));
            lines.push(value);
        }
    }
    Some(lines)
}

/// Every line of the export at `path`, the daemon stopped cleanly: every line whole.
pub fn exported(path: &Path) -> Vec<Value> {
    read(path, false).expect("the files stay while the daemon is stopped")
}

/// The whole lines of the export at `path`, the daemon killed: a torn last line is left
/// out (the next start cuts it off and writes that event again).
pub fn exported_after_kill(path: &Path) -> Vec<Value> {
    read(path, true).expect("the files stay while the daemon is stopped")
}

/// The `paddock.seq` of each line.
pub fn seqs(lines: &[Value]) -> Vec<i64> {
    lines.iter().map(|l| l["paddock.seq"].as_i64().expect("paddock.seq")).collect()
}

/// Wait until the file's last line is the store's last event and the store has stopped
/// growing (the same last sequence number a second later).
pub fn wait_written(daemon: &Daemon, path: &Path, within: Duration) {
    wait_settled(
        within,
        || {
            // Read while the daemon runs: a rotation under way, or a line half written,
            // reads as "not yet".
            let written = read(path, true)
                .and_then(|lines| lines.last().and_then(|l| l["paddock.seq"].as_i64()))
                .unwrap_or(0);
            (written, last_seq_given(&audit_path(daemon)))
        },
        |written, last| {
            format!("export at {written} of {last} after {within:?}:\n{}", daemon.log())
        },
    );
}

/// `paddock audit export --format otel --node NODE` of the daemon's store: the local
/// trail as the export must have written it.
pub fn local_otel(daemon: &Daemon, node: &str) -> Vec<Value> {
    let db = audit_path(daemon);
    let db = db.to_str().expect("utf-8 path");
    let text = daemon.ok(&["audit", "export", "--db", db, "--format", "otel", "--node", node]);
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}
