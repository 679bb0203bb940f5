//! Values read at scrape time from where they live: the kernel's maps, the reader's,
//! pipeline's and sinks' stats, and the phases' baselines.
use std::sync::{Arc, Mutex, atomic::Ordering};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

use crate::{
    hub::Hub,
    judge::PhaseSummary,
    kernel::{Kernel, reader::ReaderStats},
    pipeline::PipelineStats,
    sinks::{alerts::ReceiverStats, audit::writer::AuditStats},
    workloads::kubernetes::KubeStats,
};

/// Where the collector reads from; anything absent is left out of the scrape.
#[derive(Default)]
pub struct Sources {
    pub kernel: Option<Arc<Mutex<Kernel>>>,
    pub reader: Option<Arc<ReaderStats>>,
    pub pipeline: Option<Arc<PipelineStats>>,
    pub hub: Option<Arc<Hub>>,
    /// The phases' baselines as the pipeline last saw them.
    pub phases: Option<Arc<Mutex<Vec<PhaseSummary>>>>,
    /// Each alert receiver's delivery counters.
    pub alerts: Vec<Arc<ReceiverStats>>,
    /// The audit store writer's counters.
    pub audit: Option<Arc<AuditStats>>,
    /// The Kubernetes source's counters, when it runs.
    pub kubernetes: Option<Arc<KubeStats>>,
    /// Control requests refused.
    pub refusals: Option<Arc<crate::api::peer::Refusals>>,
}

pub struct StatsCollector(Sources);

impl std::fmt::Debug for StatsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatsCollector")
    }
}

impl StatsCollector {
    pub fn new(sources: Sources) -> StatsCollector {
        StatsCollector(sources)
    }

    #[cfg(test)]
    pub fn empty() -> StatsCollector {
        StatsCollector(Sources::default())
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    ConstCounter::new(value).encode(encoder.encode_descriptor(
        name,
        help,
        None,
        MetricType::Counter,
    )?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> std::fmt::Result {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

impl Collector for StatsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        if let Some(kernel) = &s.kernel {
            let kernel = kernel.lock().unwrap_or_else(|e| e.into_inner());
            gauge(
                &mut encoder,
                "probes_attached",
                "Kernel programs attached",
                kernel.attached.len() as i64,
            )?;
            gauge(
                &mut encoder,
                "tracked_cgroups",
                "Cgroups the kernel tracks now",
                kernel.maps.tracked_cgroups() as i64,
            )?;
            let fullness = kernel.maps.fullness();
            let tasks = fullness.iter().find(|f| f.map == agent_common::names::maps::TASKS);
            gauge(
                &mut encoder,
                "tracked_processes",
                "Processes the kernel tracks now, all investigations together",
                tasks.map_or(0, |f| f.entries) as i64,
            )?;
            let mut family = encoder.encode_descriptor(
                "kernel_map_entries",
                "Entries in the kernel maps shared by every investigation and phase, by map",
                None,
                MetricType::Gauge,
            )?;
            for f in &fullness {
                ConstGauge::new(f.entries as i64)
                    .encode(family.encode_family(&[("map", f.map)])?)?;
            }
            let mut family = encoder.encode_descriptor(
                "kernel_map_capacity",
                "The most entries each shared kernel map holds (kernel.max_tracked_processes, \
                 kernel.policy_*), by map",
                None,
                MetricType::Gauge,
            )?;
            for f in &fullness {
                ConstGauge::new(f.capacity as i64)
                    .encode(family.encode_family(&[("map", f.map)])?)?;
            }
            gauge(
                &mut encoder,
                "tracked_processes_capacity",
                "Processes the kernel can track (kernel.max_tracked_processes)",
                kernel.maps.process_capacity() as i64,
            )?;
            if let Ok(lost) = kernel.maps.lost() {
                let mut family = encoder.encode_descriptor(
                    "ring_buffer_lost_records",
                    "Records the kernel could not put in the ring buffer (it was full), by record kind",
                    None,
                    MetricType::Counter,
                )?;
                for (kind, n) in lost.iter().enumerate().skip(1) {
                    let labels = [("kind", crate::kernel::decode::record_kind_name(kind as u32))];
                    ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        if let Some(refusals) = &s.refusals {
            let mut family = encoder.encode_descriptor(
                "control_refusals",
                "Control socket requests refused, by request (a process of an investigation \
                 asking to change paddock, or a caller that is neither root nor in the group)",
                None,
                MetricType::Counter,
            )?;
            for (request, n) in refusals.snapshot() {
                ConstCounter::new(n).encode(family.encode_family(&[("request", request)])?)?;
            }
        }
        if let Some(reader) = &s.reader {
            counter(
                &mut encoder,
                "kernel_records",
                "Records read from the kernel",
                reader.records.load(Ordering::Relaxed),
            )?;
            counter(
                &mut encoder,
                "malformed_records",
                "Kernel records that could not be decoded (skipped)",
                reader.malformed.load(Ordering::Relaxed),
            )?;
        }
        if let Some(pipeline) = &s.pipeline {
            counter(
                &mut encoder,
                "unattributed_records",
                "Kernel records of no running investigation",
                pipeline.unattributed.load(Ordering::Relaxed),
            )?;
        }
        if let Some(hub) = &s.hub {
            let mut family = encoder.encode_descriptor(
                "sink_dropped_events",
                "Events a sink's queue could not take, by sink",
                None,
                MetricType::Counter,
            )?;
            for (sink, dropped) in hub.sink_drops() {
                ConstCounter::new(dropped).encode(family.encode_family(&[("sink", sink)])?)?;
            }
        }
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
            if s.alerts.is_empty() {
                break;
            }
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for r in &s.alerts {
                let labels = [("receiver", r.name.as_str()), ("kind", r.kind)];
                ConstCounter::new(read(r)).encode(family.encode_family(&labels)?)?;
            }
        }
        if let Some(audit) = &s.audit {
            counter(
                &mut encoder,
                "audit_events_stored",
                "Events committed to the audit store",
                audit.stored.load(Ordering::Relaxed),
            )?;
            counter(
                &mut encoder,
                "audit_batches",
                "Transactions committed to the audit store",
                audit.batches.load(Ordering::Relaxed),
            )?;
            counter(
                &mut encoder,
                "audit_write_failures",
                "Events the audit store could not store (refused, or every retry failed)",
                audit.failed.load(Ordering::Relaxed),
            )?;
            gauge(
                &mut encoder,
                "audit_store_size_bytes",
                "The audit database and its write-ahead log on disk",
                audit.bytes.load(Ordering::Relaxed) as i64,
            )?;
        }
        if let Some(kube) = &s.kubernetes {
            gauge(
                &mut encoder,
                "kubernetes_missing_container_cgroups",
                "Containers the API reports whose cgroup is not there (yet); looked for every second",
                kube.missing_container_cgroups.load(Ordering::Relaxed) as i64,
            )?;
        }
        if let Some(phases) = &s.phases {
            let phases = phases.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let mut family = encoder.encode_descriptor(
                "baseline_entries",
                "Entries in each phase's baseline, by set",
                None,
                MetricType::Gauge,
            )?;
            for p in &phases {
                for (set, n) in [
                    ("syscalls", p.syscalls),
                    ("execs", p.execs),
                    ("egress", p.egress),
                    ("file_writes", p.file_writes),
                    ("file_reads", p.file_reads),
                    ("unix", p.unix),
                    ("sockets", p.sockets),
                    ("io_uring", p.io_uring),
                ] {
                    ConstGauge::new(n as i64).encode(
                        family.encode_family(&[("phase", p.phase.as_str()), ("set", set)])?,
                    )?;
                }
            }
            let mut family = encoder.encode_descriptor(
                "baseline_cap",
                "The most entries each set of a phase's baseline learns ([baseline])",
                None,
                MetricType::Gauge,
            )?;
            for p in &phases {
                for (set, cap) in &p.caps {
                    ConstGauge::new(*cap as i64).encode(
                        family.encode_family(&[("phase", p.phase.as_str()), ("set", set)])?,
                    )?;
                }
            }
            let mut family = encoder.encode_descriptor(
                "baseline_capped",
                "1 for each set of a phase's baseline at or over its cap: while the phase \
                 learns, nothing new is learned into it",
                None,
                MetricType::Gauge,
            )?;
            for p in &phases {
                for set in p.caps.keys() {
                    let capped = p.capped.contains(set) as i64;
                    ConstGauge::new(capped).encode(
                        family.encode_family(&[("phase", p.phase.as_str()), ("set", set)])?,
                    )?;
                }
            }
            let mut family = encoder.encode_descriptor(
                "baseline_refused_entries",
                "Entries a learning phase did not learn because their set was at its cap",
                None,
                MetricType::Counter,
            )?;
            for p in &phases {
                for (set, n) in &p.refused {
                    ConstCounter::new(*n).encode(
                        family.encode_family(&[("phase", p.phase.as_str()), ("set", set)])?,
                    )?;
                }
            }
            let mut family = encoder.encode_descriptor(
                "phase_kernel_policy_incomplete",
                "1 for each set of an enforcing phase the kernel's policy maps could not hold: \
                 the kernel does not decide it, the daemon judges it and kills after the fact",
                None,
                MetricType::Gauge,
            )?;
            for p in &phases {
                for set in ["execs", "egress", "unix", "sockets"] {
                    let incomplete = p.kernel_incomplete.iter().any(|s| s == set) as i64;
                    ConstGauge::new(incomplete).encode(
                        family.encode_family(&[("phase", p.phase.as_str()), ("set", set)])?,
                    )?;
                }
            }
            let mut family = encoder.encode_descriptor(
                "baseline_revision",
                "Revision of each phase's baseline",
                None,
                MetricType::Gauge,
            )?;
            for p in &phases {
                ConstGauge::new(p.revision as i64)
                    .encode(family.encode_family(&[("phase", p.phase.as_str())])?)?;
            }
            let mut family = encoder.encode_descriptor(
                "phase_mode",
                "1 for each phase's current mode (learn, flag, enforce)",
                None,
                MetricType::Gauge,
            )?;
            for p in &phases {
                let labels = [("phase", p.phase.as_str()), ("mode", p.mode.as_str())];
                ConstGauge::new(1).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
