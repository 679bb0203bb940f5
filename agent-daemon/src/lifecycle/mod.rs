//! What the pipeline is told besides kernel records, on its own channel (taken before
//! records, so a record never outruns its investigation's begin): investigations beginning,
//! sampled and ending (from the workloads), operator requests (from the control API and the
//! cluster's phase objects), the cluster phase sync's requests. Neutral ground: the
//! workloads, the API and the cluster sync send these, the pipeline answers them, and none
//! of them imports another for it.
pub mod admin;

use std::{path::PathBuf, time::Instant};

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use crate::{
    baseline::{Baseline, Mode, evidence::Evidence},
    events::PodRef,
    identity::{InvestigationId, Phase},
    judge::Adopted,
    kernel::SlotCounters,
};
use admin::{AdminError, AdminReply, AdminRequest};

/// An investigation as the pipeline needs to know it.
#[derive(Debug, Clone)]
pub struct Investigation {
    pub slot: u16,
    pub instance: u32,
    pub id: InvestigationId,
    pub phase: Phase,
    /// The agent that runs it, for promotion evidence.
    pub agent: String,
    pub source: &'static str,
    /// The pod it runs in, for a Kubernetes investigation.
    pub pod: Option<PodRef>,
    /// Its cgroup as the hierarchy names it.
    pub cgroup: String,
    /// Its cgroup directory.
    pub dir: PathBuf,
    pub started: DateTime<Utc>,
    /// Adopted from an earlier daemon rather than begun by this one.
    pub resumed: bool,
    /// Adopted with its kernel slot doomed: the kernel refused or killed something of it
    /// while no daemon ran.
    pub doomed: bool,
}

pub enum Lifecycle {
    Begin(Investigation),
    /// Counters read while it runs; `done` answered once they are judged.
    Sample {
        slot: u16,
        instance: u32,
        counters: SlotCounters,
        at: Instant,
        done: Option<oneshot::Sender<()>>,
    },
    /// All records of the instance have been handled (the caller flushed first).
    End {
        slot: u16,
        instance: u32,
        counters: SlotCounters,
        emptied_at: DateTime<Utc>,
        done: oneshot::Sender<()>,
    },
    Admin(AdminRequest, oneshot::Sender<Result<AdminReply, AdminError>>),
    /// From the cluster phase sync.
    Cluster(ClusterRequest),
    /// An adopted investigation the kernel doomed while no daemon ran, once the records
    /// kept meanwhile have been judged.
    Unwatched {
        slot: u16,
        instance: u32,
    },
    /// A process of the investigation asked paddock's control socket for what it may not.
    Tamper {
        slot: u16,
        instance: u32,
        what: String,
    },
}

/// A request of the cluster phase sync.
pub enum ClusterRequest {
    Adopt {
        phase: Phase,
        mode: Mode,
        baseline: Box<Baseline>,
        reply: oneshot::Sender<Result<Adopted, String>>,
    },
    /// What this node learned beyond the cluster's copy, and the evidence counted since
    /// the last call (now the caller's).
    Take { phase: Phase, reply: oneshot::Sender<(Option<Baseline>, Evidence)> },
    /// Evidence taken but not written.
    GiveBack { phase: Phase, evidence: Evidence },
}
