//! Prometheus metrics: per phase and per kind, never per investigation id, pid or path
//! (their values are unbounded; they belong in events and alerts).
//!
//! Counters about events are kept by a hub sink (`sink`), so the pipeline knows nothing of
//! them. Every other component registers its own families beside the counters it keeps
//! (`register` on the kernel's gauges, the reader's, pipeline's, hub's, audit writer's,
//! export's, receivers' and Kubernetes source's stats, the control socket's refusals, the
//! phases' summaries), through `crate::scrape`; `cluster::evidence` reads the phases'
//! promotion evidence. The daemon makes the registry ([`registry`]) and hands it to each.
mod sink;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
pub use sink::run as run_sink;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseKind {
    pub phase: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    pub phase: String,
    pub kind: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KillLabels {
    pub phase: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseOutcome {
    pub phase: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseWhat {
    pub phase: String,
    pub what: String,
}

/// The metric families the event sink updates (each a cheap handle: clones share values).
#[derive(Clone)]
pub struct EventMetrics {
    pub events: Family<PhaseKind, Counter>,
    pub verdicts: Family<VerdictLabels, Counter>,
    pub kills: Family<KillLabels, Counter>,
    pub active: Family<PhaseLabel, Gauge>,
    pub finished: Family<PhaseOutcome, Counter>,
    /// What paddock could not see of ended investigations: records lost or throttled,
    /// processes left untracked; and moves out of their cgroups.
    pub unseen: Family<PhaseWhat, Counter>,
    pub latency: Histogram,
}

/// Seconds from the kernel's timestamp of an event to its handling by the sink.
fn latency_buckets() -> impl Iterator<Item = f64> {
    [0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]
        .into_iter()
}

impl Default for EventMetrics {
    fn default() -> Self {
        EventMetrics::new()
    }
}

impl EventMetrics {
    pub fn new() -> EventMetrics {
        EventMetrics {
            events: Family::default(),
            verdicts: Family::default(),
            kills: Family::default(),
            active: Family::default(),
            finished: Family::default(),
            unseen: Family::default(),
            latency: Histogram::new(latency_buckets()),
        }
    }
}

/// The registry served at `/metrics`: every family is registered under `paddock_`.
pub fn registry() -> Registry {
    Registry::with_prefix("paddock")
}

impl EventMetrics {
    /// The event sink's families.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("events", "Events seen, by trust phase and kind", self.events.clone());
        registry.register(
            "verdicts",
            "Deviations from a phase's baseline, by phase, deviation kind and outcome (flagged or killed)",
            self.verdicts.clone(),
        );
        registry.register(
            "kills",
            "Investigations killed, by phase and reason (the deviation kind)",
            self.kills.clone(),
        );
        registry.register(
            "investigations_active",
            "Investigations running now, by phase",
            self.active.clone(),
        );
        registry.register(
            "investigations_finished",
            "Investigations that ended, by phase and outcome (ok, flagged, killed)",
            self.finished.clone(),
        );
        registry.register(
            "investigation_unseen",
            "What the kernel could not show of ended investigations, by phase and what: \
             lost_records (ring buffer full), throttled_records (over the per-investigation rate), \
             untracked (processes or cgroups over the quota), escapes (processes that left their cgroups)",
            self.unseen.clone(),
        );
        registry.register(
            "event_processing_seconds",
            "From the kernel's timestamp of an event to its handling by the metrics sink",
            self.latency.clone(),
        );
    }
}

/// The registry in the classic Prometheus text format (which `promtool` also reads).
pub fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?;
    Ok(out)
}
