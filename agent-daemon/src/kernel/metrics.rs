//! The kernel's families in the scrape: attached programs, how full the shared maps are,
//! records lost to a full ring buffer, and what the reader read.
//!
//! Counting a map's entries walks its keys and reading the lost counters reads per-CPU
//! values, both under the kernel's lock. So a scrape does neither: [`sample`] reads them on
//! an interval into a [`KernelGauges`] snapshot, and the scrape reads the snapshot. A scrape
//! storm cannot hold the lock the tracker needs to register a new investigation.
use std::{
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use agent_common::{event::KIND_COUNT, names::maps};
use prometheus_client::{metrics::MetricType, registry::Registry};
use tokio_util::sync::CancellationToken;

use super::{Kernel, decode::record_kind_name, fullness::MapFullness, reader::ReaderStats};
use crate::scrape;

/// How often [`sample`] reads the kernel: a count is at most this old in a scrape.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Default)]
struct Snapshot {
    attached: usize,
    fullness: Vec<MapFullness>,
    process_capacity: u32,
    /// Per record kind; `None` when the counters could not be read.
    lost: Option<[u64; KIND_COUNT as usize]>,
}

/// The last values read from the kernel.
#[derive(Debug, Default)]
pub struct KernelGauges(Mutex<Option<Snapshot>>);

impl KernelGauges {
    /// Read the kernel's values now (the caller holds the kernel).
    pub fn refresh(&self, kernel: &Kernel) {
        let snapshot = Snapshot {
            attached: kernel.attached.len(),
            fullness: kernel.maps.fullness(),
            process_capacity: kernel.maps.process_capacity(),
            lost: kernel.maps.lost().ok(),
        };
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(snapshot);
    }

    fn snapshot(&self) -> Option<Snapshot> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The kernel's families; absent from the scrape until the first refresh.
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        let gauges = self.clone();
        scrape::register(registry, "kernel", move |e| {
            let Some(s) = gauges.snapshot() else { return Ok(()) };
            scrape::gauge(e, "probes_attached", "Kernel programs attached", s.attached as i64)?;
            let entries = |map: &str| {
                s.fullness.iter().find(|f| f.map == map).map_or(0, |f| f.entries) as i64
            };
            scrape::gauge(
                e,
                "tracked_cgroups",
                "Cgroups the kernel tracks now",
                entries(maps::TRACKED),
            )?;
            scrape::gauge(
                e,
                "tracked_processes",
                "Processes the kernel tracks now, all investigations together",
                entries(maps::TASKS),
            )?;
            let mut family = scrape::family(
                e,
                "kernel_map_entries",
                "Entries in the kernel maps shared by every investigation and phase, by map",
                MetricType::Gauge,
            )?;
            for f in &s.fullness {
                scrape::add_gauge(&mut family, &[("map", f.map)], f.entries as i64)?;
            }
            let mut family = scrape::family(
                e,
                "kernel_map_capacity",
                "The most entries each shared kernel map holds (kernel.max_tracked_processes, \
                 kernel.policy_*), by map",
                MetricType::Gauge,
            )?;
            for f in &s.fullness {
                scrape::add_gauge(&mut family, &[("map", f.map)], i64::from(f.capacity))?;
            }
            scrape::gauge(
                e,
                "tracked_processes_capacity",
                "Processes the kernel can track (kernel.max_tracked_processes)",
                i64::from(s.process_capacity),
            )?;
            if let Some(lost) = s.lost {
                let mut family = scrape::family(
                    e,
                    "ring_buffer_lost_records",
                    "Records the kernel could not put in the ring buffer (it was full), by record kind",
                    MetricType::Counter,
                )?;
                for (kind, n) in lost.iter().enumerate().skip(1) {
                    let labels = [("kind", record_kind_name(kind as u32))];
                    scrape::add_counter(&mut family, &labels, *n)?;
                }
            }
            Ok(())
        });
    }
}

impl ReaderStats {
    /// The reader's families.
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        let stats = self.clone();
        scrape::register(registry, "reader", move |e| {
            scrape::counter(
                e,
                "kernel_records",
                "Records read from the kernel",
                stats.records.load(Ordering::Relaxed),
            )?;
            scrape::counter(
                e,
                "malformed_records",
                "Kernel records that could not be decoded (skipped)",
                stats.malformed.load(Ordering::Relaxed),
            )
        });
    }
}

/// Refresh `gauges` from `kernel` now and then every [`SAMPLE_EVERY`] until `shutdown`.
pub async fn sample(
    kernel: Arc<Mutex<Kernel>>,
    gauges: Arc<KernelGauges>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                let kernel = kernel.clone();
                let gauges = gauges.clone();
                // Walking the maps is a system call per key: off the async threads.
                let _ = tokio::task::spawn_blocking(move || {
                    let kernel = kernel.lock().unwrap_or_else(|e| e.into_inner());
                    gauges.refresh(&kernel);
                })
                .await;
            }
        }
    }
}
