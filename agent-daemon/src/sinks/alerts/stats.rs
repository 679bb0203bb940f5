//! What each receiver did with its alerts, counted as it happens.
use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use prometheus_client::{metrics::MetricType, registry::Registry};

use crate::scrape;

#[derive(Debug)]
pub struct ReceiverStats {
    pub name: String,
    /// `alertmanager`, `webhook` or `stdout`.
    pub kind: &'static str,
    /// Alerts the receiver accepted.
    pub delivered: AtomicU64,
    /// Alerts given up on: refused (4xx), out of retries, dropped from a full queue, or
    /// still queued when the daemon stopped.
    pub failed: AtomicU64,
    /// Attempts repeated after a failure.
    pub retries: AtomicU64,
    /// The queue was full at the last submit (so drops are logged once per episode).
    pub(super) saturated: AtomicBool,
}

impl ReceiverStats {
    pub fn new(name: &str, kind: &'static str) -> ReceiverStats {
        ReceiverStats {
            name: name.to_owned(),
            kind,
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            saturated: AtomicBool::new(false),
        }
    }

    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    pub(crate) fn add_delivered(&self, n: usize) {
        self.delivered.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn add_failed(&self, n: usize) {
        self.failed.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn add_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
}

/// The receivers' families (alert receivers and the Kubernetes actions together: one
/// family each), read from their counters at each scrape; absent when there are none.
pub fn register(receivers: Vec<Arc<ReceiverStats>>, registry: &mut Registry) {
    if receivers.is_empty() {
        return;
    }
    scrape::register(registry, "receivers", move |e| {
        for (name, help, read) in [
            (
                "alert_deliveries",
                "Alerts delivered, by receiver",
                ReceiverStats::delivered as fn(&ReceiverStats) -> u64,
            ),
            (
                "alert_failures",
                "Alerts given up on (retries exhausted, refused, or queue full), by receiver",
                ReceiverStats::failed,
            ),
            ("alert_retries", "Delivery attempts retried, by receiver", ReceiverStats::retries),
        ] {
            let mut family = scrape::family(e, name, help, MetricType::Counter)?;
            for r in &receivers {
                let labels = [("receiver", r.name.as_str()), ("kind", r.kind)];
                scrape::add_counter(&mut family, &labels, read(r))?;
            }
        }
        Ok(())
    });
}
