//! One export's loop: read what follows the acknowledged sequence number, write it in one
//! transaction with the new position, and again; back off and reconnect on failure, with
//! one log line per change of error. The daemon stores locally whatever happens here.
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{Batch, Destination, ExportError, Reason, metrics::Handles};
use crate::sinks::audit::{AuditError, AuditStore, query::InvestigationRow, read::StoredEvent};

/// How often the store is looked at when the export has caught up.
pub const POLL: Duration = Duration::from_millis(200);
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

pub struct Settings {
    /// The table's place in `[[export]]`, for messages.
    pub index: usize,
    pub name: String,
    pub node: String,
    pub batch: usize,
}

type Store = Arc<Mutex<AuditStore>>;

/// Run `f` on the store off the async threads.
async fn with_store<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&AuditStore) -> Result<T, AuditError> + Send + 'static,
) -> Result<T, ExportError> {
    let store = store.clone();
    let done = tokio::task::spawn_blocking(move || {
        let store = store.lock().unwrap_or_else(|e| e.into_inner());
        f(&store)
    })
    .await;
    match done {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            Err(ExportError::new(Reason::Other, format!("reading the local audit store: {e}")))
        }
        Err(e) => {
            Err(ExportError::new(Reason::Other, format!("reading the local audit store: {e}")))
        }
    }
}

/// Where the local store stands: the last sequence number it gave, and the time of the
/// first event after `after` (`None` when there is none).
async fn local_position(
    store: &Store,
    after: i64,
) -> Result<(i64, Option<chrono::DateTime<Utc>>), ExportError> {
    with_store(store, move |s| {
        let last = s.last_seq_given()?;
        let next = s.read_after(after, 1)?;
        Ok((last, next.first().map(|e| e.event.time)))
    })
    .await
}

async fn read_batch(
    store: &Store,
    after: i64,
    limit: usize,
) -> Result<(Vec<StoredEvent>, Vec<InvestigationRow>), ExportError> {
    with_store(store, move |s| {
        let events = s.read_after(after, limit)?;
        let mut runs: Vec<i64> = events.iter().map(|e| e.run).collect();
        runs.sort_unstable();
        runs.dedup();
        let runs = s.runs(&runs)?;
        Ok((events, runs))
    })
    .await
}

/// Says each new error once, and when it clears.
struct Reporter {
    index: usize,
    name: String,
    destination: String,
    last: Option<(Reason, String)>,
}

impl Reporter {
    fn failed(&mut self, e: &ExportError) {
        let key = (e.reason, e.message.clone());
        if self.last.as_ref() != Some(&key) {
            tracing::error!(
                export = %self.name,
                destination = %self.destination,
                reason = e.reason.as_str(),
                "export[{}] ({}): {}; retrying with backoff, events stay in the local store",
                self.index,
                self.name,
                e.message
            );
            self.last = Some(key);
        }
    }

    fn recovered(&mut self, acked: i64) {
        if self.last.take().is_some() {
            tracing::info!(export = %self.name, acked, "export[{}] ({}): connected again", self.index, self.name);
        }
    }
}

/// Sleep `for_`, or until draining starts (once).
async fn pause(for_: Duration, drain: &CancellationToken) {
    if drain.is_cancelled() {
        tokio::time::sleep(for_.min(BACKOFF_FIRST)).await;
    } else {
        tokio::select! {
            () = tokio::time::sleep(for_) => {}
            () = drain.cancelled() => {}
        }
    }
}

/// Send again the runs the destination holds as running that the store has closed since.
async fn refresh_runs<D: Destination>(
    dest: &mut D,
    store: &Store,
    node: &str,
    store_id: &str,
) -> Result<(), ExportError> {
    let open = dest.unfinished_runs(store_id).await?;
    if open.is_empty() {
        return Ok(());
    }
    let closed: Vec<InvestigationRow> = with_store(store, move |s| s.runs(&open))
        .await?
        .into_iter()
        .filter(|r| r.ended.is_some())
        .collect();
    if closed.is_empty() {
        return Ok(());
    }
    dest.write(&Batch { node, store_id, events: &[], runs: &closed }).await
}

pub async fn run<D: Destination>(
    mut dest: D,
    store: AuditStore,
    settings: Settings,
    metrics: Handles,
    drain: CancellationToken,
) {
    let store: Store = Arc::new(Mutex::new(store));
    let mut reporter = Reporter {
        index: settings.index,
        name: settings.name.clone(),
        destination: dest.describe(),
        last: None,
    };
    let store_id = loop {
        match with_store(&store, |s| s.store_id()).await {
            Ok(id) => break id,
            Err(e) => {
                metrics.failed(e.reason);
                reporter.failed(&e);
                if drain.is_cancelled() {
                    return;
                }
                pause(BACKOFF_MAX, &drain).await;
            }
        }
    };
    // The destination's position once known; until then, the store's oldest event.
    let mut acked: Option<i64> = None;
    let mut known =
        with_store(&store, |s| Ok(s.seq_range()?.map_or(0, |(low, _)| low - 1))).await.unwrap_or(0);
    let mut backoff = BACKOFF_FIRST;
    let mut skipped_said = false;
    loop {
        let fail = |e: ExportError, reporter: &mut Reporter| {
            metrics.failed(e.reason);
            metrics.up.set(0);
            reporter.failed(&e);
        };
        let (last, next_time) = match local_position(&store, known).await {
            Ok(position) => position,
            Err(e) => {
                fail(e, &mut reporter);
                pause(backoff, &drain).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        metrics.lag_events.set((last - known).max(0));
        metrics.lag_seconds.set(
            next_time.map_or(0.0, |t| (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0),
        );
        if drain.is_cancelled() && acked.is_some() && next_time.is_none() {
            tracing::info!(export = %settings.name, acked = known, "export caught up at stop");
            return;
        }
        let Some(after) = acked else {
            let opened = match dest.open(&store_id).await {
                Ok(position) => refresh_runs(&mut dest, &store, &settings.node, &store_id)
                    .await
                    .map(|()| position),
                Err(e) => Err(e),
            };
            match opened {
                Ok(position) => {
                    acked = Some(position);
                    known = position;
                    backoff = BACKOFF_FIRST;
                    metrics.up.set(1);
                    reporter.recovered(position);
                    tracing::debug!(export = %settings.name, node = %settings.node, %store_id, acked = position, "export connected");
                }
                Err(e) => {
                    dest.close();
                    fail(e, &mut reporter);
                    pause(backoff, &drain).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
            continue;
        };
        let (events, runs) = match read_batch(&store, after, settings.batch).await {
            Ok(read) => read,
            Err(e) => {
                fail(e, &mut reporter);
                pause(backoff, &drain).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        if events.is_empty() {
            pause(POLL, &drain).await;
            continue;
        }
        // Sequence numbers missing between the acknowledged one and these: events local
        // retention deleted before they were exported.
        let mut skipped = 0;
        let mut prev = after;
        for e in &events {
            skipped += (e.seq - prev - 1).max(0);
            prev = e.seq;
        }
        let batch =
            Batch { node: &settings.node, store_id: &store_id, events: &events, runs: &runs };
        match dest.write(&batch).await {
            Ok(()) => {
                let n = events.len();
                known = prev;
                acked = Some(prev);
                backoff = BACKOFF_FIRST;
                metrics.events.inc_by(n as u64);
                metrics.batches.inc();
                metrics.up.set(1);
                if skipped > 0 {
                    metrics.skipped.inc_by(skipped as u64);
                    if !skipped_said {
                        tracing::warn!(export = %settings.name, skipped, after,
                            "export[{}] ({}): local retention deleted events before they were exported (counted in paddock_export_skipped_events_total; said once)",
                            settings.index, settings.name);
                        skipped_said = true;
                    }
                }
                if n < settings.batch {
                    pause(POLL, &drain).await;
                }
            }
            Err(e) => {
                dest.close();
                acked = None;
                fail(e, &mut reporter);
                pause(backoff, &drain).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}
