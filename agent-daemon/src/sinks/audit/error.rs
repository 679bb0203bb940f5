//! What can go wrong with the audit store.
use std::path::PathBuf;

use super::{EVENT_KINDS, config::AuditConfigError};
use crate::identity::InvestigationId;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Config(#[from] AuditConfigError),
    #[error("audit store {path}: cannot create its directory: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("audit store {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error(
        "audit store {path} has schema version {found}, newer than this paddock knows \
         ({supported}): run a newer paddock, or move the file aside to start a new store"
    )]
    NewerSchema { path: PathBuf, found: i64, supported: i64 },
    #[error(
        "audit store {path} has schema version {found}, this paddock reads version \
         {supported}: open it read-write once (start the daemon) to upgrade it"
    )]
    OlderSchema { path: PathBuf, found: i64, supported: i64 },
    #[error("{path} holds tables but no audit schema version: it is not an audit store")]
    NotAnAuditStore { path: PathBuf },
    #[error(
        "audit store {path}: journal mode is {mode:?}, not \"wal\" (is it on a network file system?)"
    )]
    NoWal { path: PathBuf, mode: String },
    #[error("audit store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("no investigation {0} in the audit store")]
    UnknownInvestigation(InvestigationId),
    #[error("no run {0} in the audit store")]
    UnknownRun(i64),
    #[error("unknown event kind {given:?}: expected one of {}", EVENT_KINDS.join(", "))]
    UnknownKind { given: String },
    #[error("bad cursor {given:?}: use the `next` value of the previous page as it is")]
    BadCursor { given: String },
    #[error("page limit {given}: must be 1 to {max}")]
    BadLimit { given: usize, max: usize },
    #[error("time {0} is outside what the audit store can hold (years 1677 to 2262)")]
    TimeOutOfRange(chrono::DateTime<chrono::Utc>),
    #[error("cannot encode the event as JSON: {0}")]
    Encode(serde_json::Error),
    #[error("audit store: event {seq} has a body that is not a valid event: {source}")]
    BadBody { seq: i64, source: serde_json::Error },
    #[error("audit store: chunk {chunk} (its last event) is damaged: {problem}")]
    BadChunk { chunk: i64, problem: String },
    #[error("audit store: run {run}: column {column} holds {value:?}: {problem}")]
    BadRow { run: i64, column: &'static str, value: String, problem: String },
}
