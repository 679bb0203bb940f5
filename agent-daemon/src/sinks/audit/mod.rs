//! The audit store: every event of every investigation, kept in one embedded SQLite file
//! (`<state_dir>/audit.db` by default) that the daemon writes and people query, with the
//! daemon's API or with the stock `sqlite3` tool. See `docs/audit-store.md`.
//!
//! - `config`: the `[audit]` settings;
//! - `schema`: opening the file, its pragmas and its versioned schema;
//! - `batch`: one batch of records in one transaction;
//! - `chunk`: how the events of one run and batch are packed into one row, and read back;
//! - `scan`: walking chunks in sequence order, decoding only the events a query wants;
//! - `migrate`: moving a version 2 store's rows into chunks;
//! - `writer`: the task that batches records off a channel, with retries and statistics;
//! - `retention`: the age and size limits;
//! - `filter`, `query`: what can be asked, and the queries;
//! - `params`: query parameters as people write them, checked into filters;
//! - `read`: every event after a sequence number, in order, for exporters;
//! - `source`: what `paddock audit` asks of a store, this one or the cluster's;
//! - `tree`: the process tree of one run, from its fork, exec, exit and verdict events.
pub mod batch;
mod chunk;
pub mod config;
pub mod error;
pub mod filter;
mod metrics;
mod migrate;
pub mod params;
#[cfg(test)]
mod params_props;
pub mod query;
pub mod read;
pub mod retention;
mod scan;
pub mod schema;
pub mod source;
pub mod tree;
pub mod writer;

#[cfg(test)]
mod tests_crash;
#[cfg(test)]
mod tests_perf;
#[cfg(test)]
mod tests_query;
#[cfg(test)]
mod tests_tree;
#[cfg(test)]
mod tests_writer;
#[cfg(test)]
pub(crate) mod testutil;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Duration,
};

pub use config::AuditConfig;
pub use error::AuditError;
pub use filter::{Cursor, EVENT_KINDS, EventFilter, InvestigationFilter, Outcome};
pub use writer::AuditRecord;

/// One connection to the audit database. The writer owns one; readers (the API, the CLI)
/// open their own with [`AuditStore::open_read_only`]: in WAL mode readers never block the
/// writer and see only committed batches. A store is `Send` but not `Sync`: share it behind
/// a mutex, or open one per reader.
pub struct AuditStore {
    conn: rusqlite::Connection,
    path: PathBuf,
    config: AuditConfig,
    /// Writer state: the run (row of `investigations`) each live daemon instance writes to.
    open_runs: HashMap<u32, i64>,
    /// Writer state: the sequence number the next event gets (`meta.next_seq`).
    next_seq: i64,
}

/// How long a statement waits for a lock another connection holds before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl AuditStore {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn config(&self) -> &AuditConfig {
        &self.config
    }

    /// Bytes on disk: the database file and its write-ahead log.
    pub fn file_bytes(&self) -> u64 {
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        size(&self.path) + size(Path::new(&wal))
    }

    /// `PRAGMA integrity_check`: `ok`, or the problems found.
    pub fn integrity_check(&self) -> Result<String, AuditError> {
        let mut lines = Vec::new();
        self.conn.pragma_query(None, "integrity_check", |row| {
            lines.push(row.get::<_, String>(0)?);
            Ok(())
        })?;
        Ok(lines.join("\n"))
    }

    #[cfg(test)]
    pub(crate) fn set_busy_timeout(&self, timeout: Duration) -> Result<(), AuditError> {
        Ok(self.conn.busy_timeout(timeout)?)
    }
}
