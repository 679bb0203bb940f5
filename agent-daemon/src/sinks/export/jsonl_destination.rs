//! The `jsonl` export: [`JsonlWriter`] as a [`Destination`]. The writer is synchronous
//! (it writes, flushes and `fdatasync`s each batch), so every call runs on a blocking
//! thread. A file's position is what its last line says (`acknowledged`), so a daemon
//! killed at any point resumes right after the last event on disk: no event lost, none
//! twice. Standard output cannot be read back: after each batch is flushed there, its last
//! sequence number is recorded in a small file beside the audit store, which the next start
//! resumes after. A crash between the flush and that record sends the batch again: at least
//! once.
use std::{
    collections::HashMap,
    io,
    path::{Path, PathBuf},
};

use super::{
    Batch, Destination, ExportError, Reason,
    jsonl::{JsonlConfig, JsonlError, JsonlWriter},
};
use crate::sinks::audit::{query::InvestigationRow, read::StoredEvent};

pub struct JsonlDestination {
    config: JsonlConfig,
    /// The entry's place in `[[export]]`, for messages.
    index: usize,
    /// `None` before `open`, after `close`, and while a call has it on a blocking thread.
    writer: Option<JsonlWriter>,
    /// For standard output: where the last sequence number flushed is recorded.
    position_file: Option<PathBuf>,
    /// Recording the position failed (said once).
    position_failed: bool,
}

impl JsonlDestination {
    /// Entry `index` of `[[export]]`, named `name`; a standard output export records its
    /// position in `state_dir` (the audit store's directory).
    pub fn new(config: JsonlConfig, index: usize, name: &str, state_dir: &Path) -> Self {
        let position_file =
            config.is_stdout().then(|| state_dir.join(format!("export-{name}.position")));
        JsonlDestination { config, index, writer: None, position_file, position_failed: false }
    }
}

/// The sequence number of `store_id` recorded in `path` (`STORE_ID SEQ`), 0 when none is.
pub fn recorded_position(path: &Path, store_id: &str) -> i64 {
    let Ok(text) = std::fs::read_to_string(path) else { return 0 };
    match text.split_whitespace().collect::<Vec<_>>()[..] {
        [id, seq] if id == store_id => seq.parse().unwrap_or(0),
        _ => 0,
    }
}

/// Record `seq` of `store_id` in `path`, replacing it whole (written beside it, renamed).
pub fn record_position(path: &Path, store_id: &str, seq: i64) -> io::Result<()> {
    let mut next = path.as_os_str().to_owned();
    next.push(".next");
    std::fs::write(&next, format!("{store_id} {seq}\n"))?;
    std::fs::rename(&next, path)
}

/// The failure metric's reason for a writer error; `opening` when it came from `open`.
pub fn reason(e: &JsonlError, opening: bool) -> Reason {
    match e {
        JsonlError::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
            Reason::Permission
        }
        JsonlError::Io { .. } if opening => Reason::Connect,
        JsonlError::Io { .. } => Reason::Write,
        // The file's last line is not an event paddock wrote: it cannot be resumed from.
        JsonlError::NotOurs { .. } => Reason::Schema,
        JsonlError::Config(_) | JsonlError::Encode { .. } => Reason::Other,
    }
}

fn failed(e: JsonlError, opening: bool) -> ExportError {
    ExportError::new(reason(&e, opening), e.to_string())
}

fn lost(e: tokio::task::JoinError) -> ExportError {
    ExportError::new(Reason::Other, format!("the JSON-lines writer stopped: {e}"))
}

impl Destination for JsonlDestination {
    fn describe(&self) -> String {
        if self.config.is_stdout() {
            "standard output".into()
        } else {
            self.config.path.display().to_string()
        }
    }

    async fn open(&mut self, store_id: &str) -> Result<i64, ExportError> {
        let (config, index) = (self.config.clone(), self.index);
        if let Some(file) = self.position_file.clone() {
            // Standard output keeps its writer, which knows what it wrote since the start;
            // before that, the position recorded.
            let writer = match self.writer.take() {
                Some(writer) => writer,
                None => JsonlWriter::open(&config, index).map_err(|e| failed(e, true))?,
            };
            let position = match writer.acknowledged(store_id) {
                Some(position) => position,
                None => {
                    let store_id = store_id.to_owned();
                    tokio::task::spawn_blocking(move || recorded_position(&file, &store_id))
                        .await
                        .map_err(lost)?
                }
            };
            self.writer = Some(writer);
            return Ok(position);
        }
        let writer = tokio::task::spawn_blocking(move || JsonlWriter::open(&config, index))
            .await
            .map_err(lost)?
            .map_err(|e| failed(e, true))?;
        let position = writer.acknowledged(store_id).unwrap_or(0);
        self.writer = Some(writer);
        Ok(position)
    }

    async fn write(&mut self, batch: &Batch<'_>) -> Result<(), ExportError> {
        let Some(last) = batch.events.last().map(|e| e.seq) else {
            return Ok(()); // runs alone: a line per event holds its run as it was
        };
        let Some(mut writer) = self.writer.take() else {
            return Err(ExportError::new(Reason::Other, "not open".into()));
        };
        let events: Vec<StoredEvent> = batch.events.to_vec();
        let runs: HashMap<i64, InvestigationRow> =
            batch.runs.iter().map(|r| (r.run, r.clone())).collect();
        let (node, store_id) = (batch.node.to_owned(), batch.store_id.to_owned());
        let position_file = self.position_file.clone();
        let (writer, written, recorded) = tokio::task::spawn_blocking(move || {
            let written = writer.write(&events, &runs, &node, &store_id);
            let recorded = match (&written, position_file) {
                (Ok(()), Some(file)) => {
                    record_position(&file, &store_id, last).map_err(|e| (file, e))
                }
                _ => Ok(()),
            };
            (writer, written, recorded)
        })
        .await
        .map_err(lost)?;
        self.writer = Some(writer);
        written.map_err(|e| failed(e, false))?;
        match recorded {
            Err((file, e)) if !self.position_failed => {
                tracing::warn!(
                    "export[{}]: cannot record the position of standard output in {}: {e}; a \
                     restart sends again what was sent since (said once)",
                    self.index,
                    file.display()
                );
                self.position_failed = true;
            }
            Err(_) => {}
            Ok(()) => self.position_failed = false,
        }
        Ok(())
    }

    fn close(&mut self) {
        if self.position_file.is_none() {
            self.writer = None;
        }
    }
}

#[cfg(test)]
#[path = "jsonl_destination_tests.rs"]
mod tests;
