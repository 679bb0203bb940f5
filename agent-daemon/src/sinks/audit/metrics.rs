//! The audit store writer's families in the scrape.
use std::sync::{Arc, atomic::Ordering};

use prometheus_client::registry::Registry;

use super::writer::AuditStats;
use crate::scrape;

impl AuditStats {
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        let stats = self.clone();
        scrape::register(registry, "audit", move |e| {
            let read = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
            scrape::counter(
                e,
                "audit_events_stored",
                "Events committed to the audit store",
                read(&stats.stored),
            )?;
            scrape::counter(
                e,
                "audit_batches",
                "Transactions committed to the audit store",
                read(&stats.batches),
            )?;
            scrape::counter(
                e,
                "audit_write_failures",
                "Events the audit store could not store (refused, or every retry failed)",
                read(&stats.failed),
            )?;
            scrape::gauge(
                e,
                "audit_store_size_bytes",
                "The audit database and its write-ahead log on disk",
                read(&stats.bytes) as i64,
            )
        });
    }
}
