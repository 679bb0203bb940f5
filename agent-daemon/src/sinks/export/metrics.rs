//! `paddock_export_*`: what each export has acknowledged, how far behind it is, and why it
//! failed. Every family is labelled by the export's `name`.
use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use super::Reason;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExportLabel {
    pub export: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExportReason {
    pub export: String,
    pub reason: String,
}

/// The families (cheap handles: clones share values).
#[derive(Clone, Default)]
pub struct ExportMetrics {
    events: Family<ExportLabel, Counter>,
    batches: Family<ExportLabel, Counter>,
    failures: Family<ExportReason, Counter>,
    lag_events: Family<ExportLabel, Gauge>,
    lag_seconds: Family<ExportLabel, Gauge<f64, AtomicU64>>,
    skipped: Family<ExportLabel, Counter>,
    up: Family<ExportLabel, Gauge>,
}

/// One export's series.
#[derive(Clone)]
pub struct Handles {
    pub events: Counter,
    pub batches: Counter,
    failures: Family<ExportReason, Counter>,
    name: String,
    pub lag_events: Gauge,
    pub lag_seconds: Gauge<f64, AtomicU64>,
    pub skipped: Counter,
    pub up: Gauge,
}

impl Handles {
    pub fn failed(&self, reason: Reason) {
        self.failures
            .get_or_create(&ExportReason {
                export: self.name.clone(),
                reason: reason.as_str().into(),
            })
            .inc();
    }
}

impl ExportMetrics {
    /// The series of export `name`, every failure reason at 0 until it happens.
    pub fn handles(&self, name: &str) -> Handles {
        let label = ExportLabel { export: name.to_owned() };
        for reason in Reason::ALL {
            let _ = self.failures.get_or_create(&ExportReason {
                export: name.to_owned(),
                reason: reason.as_str().into(),
            });
        }
        Handles {
            events: self.events.get_or_create(&label).clone(),
            batches: self.batches.get_or_create(&label).clone(),
            failures: self.failures.clone(),
            name: name.to_owned(),
            lag_events: self.lag_events.get_or_create(&label).clone(),
            lag_seconds: self.lag_seconds.get_or_create(&label).clone(),
            skipped: self.skipped.get_or_create(&label).clone(),
            up: self.up.get_or_create(&label).clone(),
        }
    }

    /// Events export `name` has had acknowledged.
    pub fn acknowledged(&self, name: &str) -> u64 {
        self.events.get_or_create(&ExportLabel { export: name.to_owned() }).get()
    }

    /// Register the families in `registry` (whose prefix is `paddock`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "export_events",
            "Events the export's destination acknowledged (committed), by export",
            self.events.clone(),
        );
        registry.register("export_batches", "Batches committed, by export", self.batches.clone());
        registry.register(
            "export_failures",
            "Failed attempts, by export and reason (connect, auth, permission, schema, write, other)",
            self.failures.clone(),
        );
        registry.register(
            "export_lag_events",
            "Events stored locally and not yet acknowledged (the store's last sequence number less the acknowledged one), by export",
            self.lag_events.clone(),
        );
        registry.register(
            "export_lag_seconds",
            "Age of the oldest event not yet acknowledged; 0 when caught up, by export",
            self.lag_seconds.clone(),
        );
        registry.register(
            "export_skipped_events",
            "Events local retention deleted before they were exported, by export",
            self.skipped.clone(),
        );
        registry.register(
            "export_up",
            "1 when the export's last attempt succeeded, 0 when it failed, by export",
            self.up.clone(),
        );
    }
}
