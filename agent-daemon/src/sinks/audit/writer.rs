//! The writer: records come off a channel, are grouped into batches, and each batch is
//! stored in one transaction.
//!
//! Two halves. An async task gathers records and decides when a batch is due (full, or its
//! first record has waited `batch_max_delay_ms`, or shutdown). A dedicated OS thread owns
//! the SQLite connection and does every write, retry and retention pass. A dedicated thread
//! rather than `spawn_blocking` per batch: the connection (and its prepared statements)
//! stays on one thread for the store's life, nothing has to be moved in and out per batch,
//! and a long retention pass or a retry backoff never holds one of tokio's blocking-pool
//! threads. The two are joined by a channel of one batch: while the thread writes one batch
//! the task gathers the next, and when the thread falls behind the task waits, so records
//! back up in the input channel (whose sender, the hub, counts what it cannot take).
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use tokio::{
    sync::{mpsc, oneshot},
    time::MissedTickBehavior,
};
use tokio_util::sync::CancellationToken;

use super::{AuditStore, batch};
use crate::events::Event;

/// One event; its `instance` says which run of its investigation it belongs to. The hub's
/// audit sink hands these over as they are.
pub type AuditRecord = Arc<Event>;

#[derive(Debug, Default)]
pub struct AuditStats {
    /// Events committed: counted only once their transaction's COMMIT returned.
    pub stored: AtomicU64,
    /// Batches committed.
    pub batches: AtomicU64,
    /// Events not stored: refused as malformed, or in a batch that failed every try.
    pub failed: AtomicU64,
    /// The database and its write-ahead log on disk, after the last batch.
    pub bytes: AtomicU64,
}

enum ToThread {
    Batch(Vec<AuditRecord>),
    Retention,
}

/// A failed batch is tried again after each of these pauses, then given up.
const BACKOFF: [Duration; 3] =
    [Duration::from_millis(50), Duration::from_millis(200), Duration::from_millis(800)];
const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// Store what `rx` brings until `shutdown`, then what is already queued, then return.
/// Retention runs at start and every minute.
pub async fn run_writer(
    store: AuditStore,
    mut rx: mpsc::Receiver<AuditRecord>,
    stats: Arc<AuditStats>,
    shutdown: CancellationToken,
) {
    let max = store.config().batch_max_events.max(1);
    let delay = Duration::from_millis(store.config().batch_max_delay_ms);
    let (to_thread, from_task) = mpsc::channel(1);
    let (done, finished) = oneshot::channel::<()>();
    let thread_stats = stats.clone();
    let spawned = std::thread::Builder::new().name("paddock-audit".into()).spawn(move || {
        write_loop(store, from_task, &thread_stats);
        let _ = done.send(());
    });
    let mut to_thread = match spawned {
        Ok(_) => Some(to_thread),
        Err(error) => {
            tracing::error!(%error, "audit store: cannot start the writer thread");
            None
        }
    };
    let mut batch = Vec::with_capacity(max.min(4096));
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut retention = tokio::time::interval(RETENTION_EVERY);
    retention.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let room = max - batch.len();
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)),
                if deadline.is_some() =>
            {
                deadline = None;
                hand(&mut to_thread, ToThread::Batch(std::mem::take(&mut batch)), &stats).await;
            }
            _ = retention.tick() => hand(&mut to_thread, ToThread::Retention, &stats).await,
            n = rx.recv_many(&mut batch, room) => {
                if n == 0 {
                    break;
                }
                deadline.get_or_insert_with(|| tokio::time::Instant::now() + delay);
                if batch.len() >= max {
                    deadline = None;
                    hand(&mut to_thread, ToThread::Batch(std::mem::take(&mut batch)), &stats)
                        .await;
                }
            }
        }
    }
    // Shutdown: what is queued goes in too, then the thread finishes its last batch.
    rx.close();
    loop {
        let room = max - batch.len();
        if rx.recv_many(&mut batch, room).await == 0 {
            break;
        }
        if batch.len() >= max {
            hand(&mut to_thread, ToThread::Batch(std::mem::take(&mut batch)), &stats).await;
        }
    }
    if !batch.is_empty() {
        hand(&mut to_thread, ToThread::Batch(batch), &stats).await;
    }
    if to_thread.take().is_some() {
        let _ = finished.await;
    }
}

/// Give `message` to the writer thread; when the thread is gone, count the events as failed.
async fn hand(
    to_thread: &mut Option<mpsc::Sender<ToThread>>,
    message: ToThread,
    stats: &AuditStats,
) {
    let lost = match to_thread {
        Some(tx) => match tx.send(message).await {
            Ok(()) => return,
            Err(mpsc::error::SendError(message)) => {
                tracing::error!("audit store: the writer thread is gone; events are not stored");
                *to_thread = None;
                message
            }
        },
        None => message,
    };
    if let ToThread::Batch(records) = lost {
        stats.failed.fetch_add(records.len() as u64, Relaxed);
    }
}

fn write_loop(mut store: AuditStore, mut rx: mpsc::Receiver<ToThread>, stats: &AuditStats) {
    let mut burst = FailureBurst::default();
    let mut over_limit = false;
    stats.bytes.store(store.file_bytes(), Relaxed);
    while let Some(message) = rx.blocking_recv() {
        match message {
            ToThread::Batch(records) => store_batch(&mut store, &records, stats, &mut burst),
            ToThread::Retention => match store.enforce_retention() {
                Ok(report) => {
                    if report.runs_deleted > 0 {
                        tracing::info!(?report, "audit store: retention deleted old runs");
                    }
                    if report.over_limit && !over_limit {
                        tracing::warn!(
                            ?report,
                            "audit store: over its size limit with only running \
                             investigations left to delete"
                        );
                    }
                    over_limit = report.over_limit;
                }
                Err(error) => tracing::warn!(%error, "audit store: retention failed"),
            },
        }
        stats.bytes.store(store.file_bytes(), Relaxed);
    }
}

/// Consecutive batches that could not be stored: logged when it starts and when it ends.
#[derive(Default)]
pub(super) struct FailureBurst {
    batches: u64,
    events: u64,
}

/// Store one batch, trying again after each pause of `BACKOFF`; count what happened.
pub(super) fn store_batch(
    store: &mut AuditStore,
    records: &[AuditRecord],
    stats: &AuditStats,
    burst: &mut FailureBurst,
) {
    let (rows, rejected) = batch::prepare(records);
    stats.failed.fetch_add(rejected as u64, Relaxed);
    if rows.is_empty() {
        return;
    }
    let mut pauses = BACKOFF.iter();
    loop {
        match store.write_rows(&rows) {
            Ok(stored) => {
                stats.stored.fetch_add(stored as u64, Relaxed);
                stats.batches.fetch_add(1, Relaxed);
                if burst.batches > 0 {
                    tracing::warn!(
                        lost_batches = burst.batches,
                        lost_events = burst.events,
                        "audit store: storing events again after failures"
                    );
                    *burst = FailureBurst::default();
                }
                return;
            }
            Err(error) => match pauses.next() {
                Some(pause) => {
                    tracing::debug!(%error, ?pause, "audit store: batch failed; trying again");
                    std::thread::sleep(*pause);
                }
                None => {
                    stats.failed.fetch_add(rows.len() as u64, Relaxed);
                    if burst.batches == 0 {
                        tracing::error!(
                            %error,
                            events = rows.len(),
                            tries = BACKOFF.len() + 1,
                            "audit store: a batch could not be stored and is lost; \
                             further failures are counted, not logged, until one is stored"
                        );
                    }
                    burst.batches += 1;
                    burst.events += rows.len() as u64;
                    return;
                }
            },
        }
    }
}

impl AuditStats {
    /// (stored, batches, failed, bytes), for tests and status lines.
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.stored.load(Relaxed),
            self.batches.load(Relaxed),
            self.failed.load(Relaxed),
            self.bytes.load(Relaxed),
        )
    }
}

/// Wait (in tests) until `check` holds, for at most five seconds.
#[cfg(test)]
pub(super) async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    check()
}
