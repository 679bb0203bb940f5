//! Promotion evidence as metrics, per phase with bounded labels (`phase`, `mode`,
//! `settled`), from the phases' cluster objects when they live there, else from this
//! node's counts; and the cluster sync's writes. Read at scrape time from memory: a scrape
//! never reaches the API server.
use std::sync::{Arc, Mutex, atomic::Ordering};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

use super::sync::Phases;
use crate::{baseline::report::PhaseReport, judge::PhaseSummary};

pub enum EvidenceCollector {
    /// Phases live in the cluster: their objects' status, as last read.
    Cluster(Arc<Phases>),
    /// Phases live on this node: the pipeline's last summaries.
    Node(Arc<Mutex<Vec<PhaseSummary>>>),
}

impl std::fmt::Debug for EvidenceCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EvidenceCollector")
    }
}

impl EvidenceCollector {
    fn reports(&self) -> Vec<PhaseReport> {
        match self {
            EvidenceCollector::Cluster(phases) => phases.reports(),
            EvidenceCollector::Node(summaries) => summaries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter_map(|s| s.report.clone())
                .collect(),
        }
    }
}

type Figure = fn(&PhaseReport) -> u64;

const FIGURES: [(&str, &str, MetricType, Figure); 6] = [
    (
        "phase_runs",
        "Runs of the phase (all nodes when phases live in the cluster)",
        MetricType::Gauge,
        |r| r.status.evidence.tally.runs,
    ),
    ("phase_learned_runs", "Runs the phase's baseline was learned from", MetricType::Gauge, |r| {
        r.status.evidence.learned
    }),
    (
        "phase_runs_since_new",
        "Runs since the phase's last new behaviour (learned or deviated)",
        MetricType::Gauge,
        |r| r.status.evidence.tally.runs_since_new,
    ),
    (
        "phase_deviations_24h",
        "Deviations in the phase's runs over the last 24 hours",
        MetricType::Gauge,
        |r| r.status.deviations_24h,
    ),
    (
        "phase_kills_24h",
        "Kills of the phase's runs over the last 24 hours",
        MetricType::Gauge,
        |r| r.status.kills_24h,
    ),
    ("phase_agents", "Agents that ran in the phase (remembered ones)", MetricType::Gauge, |r| {
        r.status.evidence.agents.len() as u64
    }),
];

impl Collector for EvidenceCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let reports = self.reports();
        for (name, help, kind, figure) in FIGURES {
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for r in &reports {
                let settled = if r.status.settled { "true" } else { "false" };
                let labels =
                    [("phase", r.phase.as_str()), ("mode", r.mode.as_str()), ("settled", settled)];
                ConstGauge::new(figure(r) as i64).encode(family.encode_family(&labels)?)?;
            }
        }
        if let EvidenceCollector::Cluster(phases) = self {
            let s = &phases.stats;
            let mut family = encoder.encode_descriptor(
                "phase_sync_writes",
                "Writes of this node to the phase objects that went through, by what",
                None,
                MetricType::Counter,
            )?;
            for (what, n) in [("baseline", &s.baseline_writes), ("status", &s.status_writes)] {
                ConstCounter::new(n.load(Ordering::Relaxed))
                    .encode(family.encode_family(&[("what", what)])?)?;
            }
            for (name, help, n) in [
                (
                    "phase_sync_conflicts",
                    "Writes refused because the object changed since it was read (read again and retried)",
                    &s.conflicts,
                ),
                (
                    "phase_sync_failures",
                    "Reads and writes of the phase objects that failed (the API unreachable, refused)",
                    &s.failures,
                ),
                (
                    "phase_sync_taken_in",
                    "Generations of the phase objects taken in by this node",
                    &s.taken_in,
                ),
                (
                    "phase_sync_oversize",
                    "Baseline writes not made: the phase object would have grown past 1 MiB",
                    &s.oversize,
                ),
            ] {
                ConstCounter::new(n.load(Ordering::Relaxed)).encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    MetricType::Counter,
                )?)?;
            }
            ConstGauge::new(i64::from(phases.unsynced().is_none())).encode(
                encoder.encode_descriptor(
                    "phase_sync_in_sync",
                    "1 when this node has taken in every phase object's current generation",
                    None,
                    MetricType::Gauge,
                )?,
            )?;
        }
        Ok(())
    }
}
