//! Export: the audit store forwarded to the cluster, every event exactly once.
//!
//! The local store (`<state_dir>/audit.db`) is each node's durable buffer. One task per
//! `[[export]]` table reads it in sequence order through its own read-only connection and
//! hands batches to a [`Destination`], which commits each batch together with the position
//! it reached (the cursor); after a crash, a lost connection or a restart the task asks the
//! destination where it stands and goes on from there.
//!
//! - `config`: the `[[export]]` tables;
//! - `task`: the loop: read, write, back off, measure;
//! - `metrics`: the `paddock_export_*` families;
//! - `postgres`: the PostgreSQL destination;
//! - `otel`: one stored event as one flat object with OpenTelemetry names;
//! - `jsonl`: the JSON-lines destination's writer (a rotated file, or standard output);
//! - `jsonl_config`: its settings and errors;
//! - `jsonl_destination`: the writer as a destination of the loop.
pub mod config;
pub mod jsonl;
pub mod jsonl_config;
#[cfg(test)]
mod jsonl_crash_tests;
pub mod jsonl_destination;
#[cfg(test)]
mod jsonl_perf;
#[cfg(test)]
mod jsonl_tests;
pub mod metrics;
pub mod otel;
#[cfg(test)]
mod otel_tests;
pub mod postgres;
pub mod task;

use std::{future::Future, path::Path, time::Duration};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::ExportConfig;
pub use metrics::ExportMetrics;

use crate::sinks::audit::{AuditStore, query::InvestigationRow, read::StoredEvent};

/// Why an attempt failed: the `reason` label of `paddock_export_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The server cannot be reached, refused the connection or the TLS handshake, or the
    /// connection broke.
    Connect,
    /// The role or its password was refused.
    Auth,
    /// The role may not do what export needs.
    Permission,
    /// The schema cannot be made, migrated or read.
    Schema,
    /// A batch could not be written.
    Write,
    Other,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::Connect,
        Reason::Auth,
        Reason::Permission,
        Reason::Schema,
        Reason::Write,
        Reason::Other,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Connect => "connect",
            Reason::Auth => "auth",
            Reason::Permission => "permission",
            Reason::Schema => "schema",
            Reason::Write => "write",
            Reason::Other => "other",
        }
    }
}

/// A failed attempt: why, and what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportError {
    pub reason: Reason,
    pub message: String,
}

impl ExportError {
    pub fn new(reason: Reason, message: String) -> ExportError {
        ExportError { reason, message }
    }
}

/// Events read from the store in sequence order, with the runs they belong to.
pub struct Batch<'a> {
    pub node: &'a str,
    pub store_id: &'a str,
    /// Consecutive in the store (no stored event between two of them is missing).
    pub events: &'a [StoredEvent],
    /// The runs of these events, as the store has them now.
    pub runs: &'a [InvestigationRow],
}

/// Where batches go. `write` must be atomic together with the cursor: once it returns
/// `Ok`, `open` answers at least the batch's last sequence number; when it fails, nothing
/// of the batch may be visible, or the part that is must be taken again without
/// duplicating (the task writes the batch again after `open`).
pub trait Destination: Send {
    /// What to name the destination by in the log (never holds a secret).
    fn describe(&self) -> String;
    /// (Re)connect, set up what writing needs, and answer the last sequence number of
    /// `store_id` committed (0 when none is).
    fn open(&mut self, store_id: &str) -> impl Future<Output = Result<i64, ExportError>> + Send;
    /// The runs of `store_id` the destination holds as still running. After (re)connecting
    /// the task sends those the store has closed since, with no event: a run the store
    /// closed as `interrupted` when it was opened again after a crash.
    fn unfinished_runs(
        &mut self,
        _store_id: &str,
    ) -> impl Future<Output = Result<Vec<i64>, ExportError>> + Send {
        async { Ok(Vec::new()) }
    }
    /// Commit one batch and its last sequence number; a batch of runs alone (no event)
    /// updates them and leaves the position.
    fn write(&mut self, batch: &Batch<'_>) -> impl Future<Output = Result<(), ExportError>> + Send;
    /// Forget the connection (after a failure); the next call is `open`.
    fn close(&mut self);
}

/// The running export tasks.
pub struct Exports {
    drain: CancellationToken,
    tasks: Vec<(String, JoinHandle<()>)>,
}

impl Exports {
    /// One task per table of `configs`, reading the store at `audit_path`; `node` names
    /// this node where a table does not.
    pub fn start(
        configs: &[ExportConfig],
        audit_path: &Path,
        node: &str,
        metrics: &ExportMetrics,
    ) -> anyhow::Result<Exports> {
        let drain = CancellationToken::new();
        let mut tasks = Vec::new();
        for (index, config) in configs.iter().enumerate() {
            let store = AuditStore::open_read_only(audit_path).map_err(|e| {
                anyhow::anyhow!(
                    "export[{index}]: cannot open the audit store {}: {e}",
                    audit_path.display()
                )
            })?;
            let node = config.node().unwrap_or(node).to_owned();
            let name = config.name().to_owned();
            let handles = metrics.handles(&name);
            let settings =
                task::Settings { index, name: name.clone(), node, batch: config.batch_events() };
            let handle = match config {
                ExportConfig::Postgres(p) => {
                    let target = postgres::target::PgTarget::parse(p).map_err(|e| {
                        anyhow::anyhow!("export[{index}].{} = {}: {}", e.field, e.value, e.rule)
                    })?;
                    let dest =
                        postgres::Postgres::new(target, settings.node.clone(), p.retention_days);
                    tokio::spawn(task::run(dest, store, settings, handles, drain.clone()))
                }
                ExportConfig::Jsonl(j) => {
                    let state_dir = audit_path.parent().unwrap_or(Path::new("."));
                    let dest = jsonl_destination::JsonlDestination::new(
                        j.writer_config(),
                        index,
                        &name,
                        state_dir,
                    );
                    tokio::spawn(task::run(dest, store, settings, handles, drain.clone()))
                }
            };
            tracing::info!(export = %name, index, kind = config.kind(), "export started");
            tasks.push((name, handle));
        }
        Ok(Exports { drain, tasks })
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Export what the store holds, then stop; give up after `within`.
    pub async fn stop(self, within: Duration) {
        self.drain.cancel();
        let deadline = tokio::time::Instant::now() + within;
        for (name, mut handle) in self.tasks {
            if tokio::time::timeout_at(deadline, &mut handle).await.is_err() {
                handle.abort();
                tracing::warn!(export = %name,
                    "export stopped before it caught up: the rest goes at the next start");
            }
        }
    }
}
