//! What the control socket and the status reports reach of the running daemon: the one
//! interface the control API has to it (the daemon builds it; the API never reaches into the
//! daemon's own module).
use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex, atomic::Ordering},
};

use agent_common::event::KIND_COUNT;
use chrono::{DateTime, Utc};

use super::protocol::{AuditStatus, InvestigationStatus, StatusReport};
use crate::lifecycle::admin::{AdminError, AdminReply, AdminRequest};
use crate::{
    enforce::Outcomes,
    hub::Hub,
    kernel::{Kernel, reader::ReaderStats},
    pipeline::PipelineStats,
    sinks::audit::{self, AuditStore, writer::AuditStats},
    workloads::{Tracker, local::LocalSource},
};

/// What the control socket and status reports reach.
pub struct State {
    pub tracker: Arc<Tracker>,
    pub hub: Arc<Hub>,
    pub local: LocalSource,
    /// Why killed investigations were killed.
    pub outcomes: Arc<Outcomes>,
    pub(crate) kernel: Arc<Mutex<Kernel>>,
    pub(crate) reader_stats: Arc<ReaderStats>,
    pub(crate) pipeline_stats: Arc<PipelineStats>,
    pub(crate) started: DateTime<Utc>,
    pub(crate) probes: Vec<String>,
    pub(crate) http_address: std::net::SocketAddr,
    pub(crate) audit: Option<(PathBuf, Arc<AuditStats>)>,
    /// The control socket's group: its members may make admin requests.
    pub admin_gid: Option<u32>,
    /// Control requests refused, by request.
    pub refusals: Arc<crate::api::peer::Refusals>,
    /// The cluster's trust phases, when they live there.
    pub phases: Option<Arc<crate::cluster::sync::Phases>>,
}

impl State {
    /// An operator request: a change to a phase goes to its cluster object when phases live
    /// in the cluster (and is in force on this node before the answer); everything else, and
    /// every request without a cluster, to this node's pipeline.
    pub async fn admin(&self, request: AdminRequest) -> Result<AdminReply, AdminError> {
        let done = |message| Ok(AdminReply::Done { message });
        match (&self.phases, request) {
            (Some(phases), AdminRequest::SetMode { phase, mode }) => {
                done(phases.set_mode(phase, mode).await.map_err(AdminError::Cluster)?)
            }
            (Some(phases), AdminRequest::Import { phase, text, source }) => {
                done(phases.import(phase, &text, &source).await.map_err(AdminError::Cluster)?)
            }
            (Some(phases), AdminRequest::Reset { phase }) => {
                done(phases.reset(phase).await.map_err(AdminError::Cluster)?)
            }
            (Some(phases), AdminRequest::Report { phase }) => Ok(AdminReply::Report {
                phases: phases
                    .reports()
                    .into_iter()
                    .filter(|r| phase.is_none_or(|p| r.phase == p))
                    .collect(),
            }),
            (_, request) => self.tracker.admin(request).await,
        }
    }

    /// How an ended run went, from the audit store (read-only), if it knows: for a client
    /// rejoining after its investigation ended under an earlier daemon. A run closed as
    /// interrupted without a kill verdict is not known.
    pub async fn stored_outcome(
        &self,
        instance: u32,
        id: &crate::identity::InvestigationId,
    ) -> Option<audit::query::RunOutcome> {
        let path = self.audit.as_ref()?.0.clone();
        let id = id.clone();
        let found = tokio::task::spawn_blocking(move || {
            AuditStore::open_read_only(&path).and_then(|store| store.outcome_of(instance, &id))
        })
        .await;
        match found {
            Ok(Ok(Some(stored)))
                if stored.killed.is_some() || stored.outcome != audit::Outcome::Interrupted =>
            {
                Some(stored)
            }
            Ok(Ok(_)) => None,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read an outcome from the audit store");
                None
            }
            Err(_) => None,
        }
    }

    pub(crate) fn lost(&self) -> BTreeMap<String, u64> {
        let lost = self.kernel.lock().unwrap_or_else(|e| e.into_inner()).maps.lost();
        let mut out = BTreeMap::new();
        match lost {
            Ok(lost) => {
                for (kind, n) in lost.iter().enumerate().take(KIND_COUNT as usize) {
                    if *n > 0 {
                        *out.entry(
                            crate::kernel::decode::record_kind_name(kind as u32).to_owned(),
                        )
                        .or_default() += n;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read lost-record counters"),
        }
        out
    }

    pub fn status(&self) -> StatusReport {
        let investigations = self
            .tracker
            .active()
            .into_iter()
            .map(|a| {
                let counters = self.tracker.counters(a.slot).unwrap_or_default();
                InvestigationStatus {
                    id: a.id.to_string(),
                    phase: a.phase.to_string(),
                    instance: a.instance,
                    source: a.source.into(),
                    cgroup: a.cgroup,
                    pod: a.pod.as_ref().map(|p| format!("{}/{}", p.namespace, p.name)),
                    job: a.pod.and_then(|p| p.job),
                    started: a.started,
                    syscalls: counters.syscalls.iter().map(|(_, n)| n).sum(),
                    distinct_syscalls: counters.syscalls.len(),
                    egress_bytes: counters.egress_bytes,
                }
            })
            .collect();
        let lost_records = self.lost();
        StatusReport {
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            started: self.started,
            http: self.http_address.to_string(),
            probes: self.probes.clone(),
            investigations,
            tracked_cgroups: self
                .kernel
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .maps
                .tracked_cgroups(),
            records_read: self.reader_stats.records.load(Ordering::Relaxed),
            events_published: self.hub.published.load(Ordering::Relaxed),
            malformed_records: self.reader_stats.malformed.load(Ordering::Relaxed),
            unattributed_records: self.pipeline_stats.unattributed.load(Ordering::Relaxed),
            lost_total: lost_records.values().sum(),
            lost_records,
            sink_drops: self.hub.sink_drops().into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            audit: self.audit.as_ref().map(|(path, stats)| {
                let (stored, batches, failed, bytes) = stats.snapshot();
                AuditStatus { path: path.clone(), stored, batches, failed, bytes }
            }),
        }
    }
}
