//! The ring-buffer reader: one task that drains `EVENTS` whenever it is readable, decodes
//! each record and passes it on. It knows nothing of what consumes the records.
use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use aya::maps::{MapData, RingBuf};
use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::{mpsc, oneshot},
};
use tokio_util::sync::CancellationToken;

use super::decode::{Record, decode};

/// What the reader passes downstream, in ring-buffer order.
#[derive(Debug)]
pub enum FromKernel {
    Record(Record),
    /// Everything before this was in the ring buffer when a flush was asked for; answer
    /// once it has all been handled.
    Barrier(oneshot::Sender<()>),
}

#[derive(Debug, Default)]
pub struct ReaderStats {
    pub records: AtomicU64,
    pub malformed: AtomicU64,
}

/// Ask the reader to drain the ring buffer now; the answer comes once everything drained
/// has been handled downstream.
#[derive(Clone)]
pub struct FlushHandle(mpsc::Sender<oneshot::Sender<()>>);

impl FlushHandle {
    /// Wait until every record written so far has been read and passed on. False when the
    /// reader has stopped (the daemon is stopping): nothing was read.
    pub async fn flush(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        self.0.send(tx).await.is_ok() && rx.await.is_ok()
    }
}

pub struct Reader {
    ring: AsyncFd<RingBuf<MapData>>,
    out: mpsc::Sender<FromKernel>,
    flushes: mpsc::Receiver<oneshot::Sender<()>>,
    stats: Arc<ReaderStats>,
}

impl Reader {
    pub fn new(
        ring: RingBuf<MapData>,
        out: mpsc::Sender<FromKernel>,
        stats: Arc<ReaderStats>,
    ) -> std::io::Result<(Reader, FlushHandle)> {
        // SAFETY: the ring buffer owns its fd, which stays open for as long as the
        // `AsyncFd` holds the `RingBuf`.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        let (flush_tx, flushes) = mpsc::channel(64);
        Ok((Reader { ring, out, flushes, stats }, FlushHandle(flush_tx)))
    }

    /// Run until `shutdown`, then drain once more and stop.
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                ready = self.ring.readable_mut() => match ready {
                    Ok(mut guard) => {
                        if !drain_all(guard.get_inner_mut(), &self.out, &self.stats).await {
                            return;
                        }
                        guard.clear_ready();
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "ring buffer poll failed; reader stops");
                        return;
                    }
                },
                Some(ack) = self.flushes.recv() => {
                    if !drain_all(self.ring.get_mut(), &self.out, &self.stats).await {
                        return;
                    }
                    let _ = self.out.send(FromKernel::Barrier(ack)).await;
                }
                () = shutdown.cancelled() => {
                    drain_all(self.ring.get_mut(), &self.out, &self.stats).await;
                    return;
                }
            }
        }
    }
}

/// Drain `ring` once (an earlier generation's, no longer written to) and pass on what it
/// held.
pub async fn drain_once(
    mut ring: RingBuf<MapData>,
    out: &mpsc::Sender<FromKernel>,
    stats: &ReaderStats,
) {
    let before = stats.records.load(Ordering::Relaxed);
    drain_all(&mut ring, out, stats).await;
    let read = stats.records.load(Ordering::Relaxed) - before;
    tracing::info!(records = read, "read the records an earlier generation's ring buffer held");
}

/// Records taken from the ring buffer before they are passed on; bounds the reader's
/// memory under a flood.
const BATCH: usize = 4096;

/// Drain the ring buffer in batches, passing each on. False when nobody is downstream.
async fn drain_all(
    ring: &mut RingBuf<MapData>,
    out: &mpsc::Sender<FromKernel>,
    stats: &ReaderStats,
) -> bool {
    loop {
        let batch = drain(ring, stats);
        let full = batch.len() == BATCH;
        for record in batch {
            if out.send(FromKernel::Record(record)).await.is_err() {
                return false; // the daemon is stopping
            }
        }
        if !full {
            return true;
        }
    }
}

/// Take up to `BATCH` records from the ring buffer. Decoding copies each record out, so
/// its ring space is released as soon as it is read.
fn drain(ring: &mut RingBuf<MapData>, stats: &ReaderStats) -> Vec<Record> {
    let mut records = Vec::with_capacity(64);
    while records.len() < BATCH {
        let Some(item) = ring.next() else { break };
        match decode(&item) {
            Ok(record) => records.push(record),
            Err(e) => {
                let n = stats.malformed.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(error = %e, malformed_so_far = n, "malformed kernel record skipped");
                }
            }
        }
    }
    stats.records.fetch_add(records.len() as u64, Ordering::Relaxed);
    records
}
