//! How an investigation begins and ends, in the same order for every workload source:
//! begin = reserve a slot, zero its counters, tell the pipeline, then track its cgroup in
//! the kernel (so no record can arrive for an investigation the pipeline does not know);
//! end = drain the ring buffer, read the counters, untrack, tell the pipeline, free the slot.
use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use agent_common::{hash::fnv1a, tracking::Tracked};
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::{
    cgroups,
    registry::{Active, RegisterError, Registry},
};
use crate::{
    identity::{InvestigationId, Phase},
    kernel::{Kernel, SlotCounters, TrackError, mounts::Cgroup2, reader::FlushHandle},
    pipeline::{AdminReply, AdminRequest, Investigation, Lifecycle},
};

#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error(transparent)]
    Register(#[from] RegisterError),
    #[error(transparent)]
    Kernel(#[from] TrackError),
    #[error("cgroup {path}: {source}")]
    Cgroup { path: String, source: std::io::Error },
    #[error("cgroup {0} is not below the cgroup v2 mount")]
    OutsideHierarchy(String),
    #[error("the daemon is stopping")]
    Stopping,
}

pub struct Tracker {
    kernel: Arc<Mutex<Kernel>>,
    registry: Mutex<Registry>,
    /// Woken whenever a slot is freed.
    released: tokio::sync::Notify,
    lifecycle: mpsc::Sender<Lifecycle>,
    flush: FlushHandle,
    cgroup2: Cgroup2,
}

impl Tracker {
    pub fn new(
        kernel: Arc<Mutex<Kernel>>,
        lifecycle: mpsc::Sender<Lifecycle>,
        flush: FlushHandle,
        cgroup2: Cgroup2,
    ) -> Tracker {
        Tracker {
            kernel,
            registry: Mutex::default(),
            released: tokio::sync::Notify::new(),
            lifecycle,
            flush,
            cgroup2,
        }
    }

    fn kernel(&self) -> std::sync::MutexGuard<'_, Kernel> {
        self.kernel.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserve a slot and instance for `id`; nothing is tracked yet. When a run of `id` is
    /// still ending (its processes gone, its last events being handled), wait for it.
    pub async fn reserve(
        &self,
        id: InvestigationId,
        phase: Phase,
        source: &'static str,
    ) -> Result<Active, TrackerError> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        let active = loop {
            let released = self.released.notified();
            let allocated = self.registry().allocate(id.clone(), phase, source);
            match allocated {
                Err(RegisterError::AlreadyRunning(_)) if self.ending(&id) => {
                    if tokio::time::timeout_at(deadline, released).await.is_err() {
                        break allocated?;
                    }
                }
                other => break other?,
            }
        };
        if let Err(e) = self.kernel().maps.reset_slot(active.slot) {
            self.registry().release(active.slot, active.instance);
            return Err(e.into());
        }
        Ok(active)
    }

    /// Give back a reservation that never got tracked.
    pub fn abandon(&self, active: &Active) {
        self.registry().release(active.slot, active.instance);
        self.released.notify_waiters();
    }

    /// Whether the running investigation `id` has no process left (it is ending).
    fn ending(&self, id: &InvestigationId) -> bool {
        let cgroup = self.registry().active().find(|a| &a.id == id).map(|a| a.cgroup.clone());
        cgroup.is_some_and(|dir| !cgroups::populated(&dir).unwrap_or(true))
    }

    /// Track the cgroup `dir` (existing) and everything made below it, for `active`.
    pub async fn track(&self, active: &mut Active, dir: &Path) -> Result<(), TrackerError> {
        let path = self
            .cgroup2
            .hierarchy_path(dir)
            .ok_or_else(|| TrackerError::OutsideHierarchy(dir.display().to_string()))?;
        let cgroup_id = cgroups::cgroup_id(dir)
            .map_err(|source| TrackerError::Cgroup { path: dir.display().to_string(), source })?;
        active.cgroup = dir.to_path_buf();
        self.registry().set_cgroup(active.slot, dir.to_path_buf());
        let info = Investigation {
            slot: active.slot,
            instance: active.instance,
            id: active.id.clone(),
            phase: active.phase,
            source: active.source,
            cgroup: path.clone(),
            dir: dir.to_path_buf(),
            started: active.started,
        };
        self.lifecycle.send(Lifecycle::Begin(info)).await.map_err(|_| TrackerError::Stopping)?;
        let tracked = Tracked {
            slot: active.slot,
            phase: active.phase.kernel_id(),
            flags: 0,
            instance: active.instance,
        };
        self.kernel().maps.track(cgroup_id, fnv1a(path.as_bytes()), tracked)?;
        // Processes already inside (a pod registered late, a daemon restart) are tracked as
        // processes too; those that start from now on are tracked by the kernel.
        let running = cgroups::processes(dir)
            .map_err(|source| TrackerError::Cgroup { path: dir.display().to_string(), source })?;
        self.kernel().maps.track_tasks(&running, tracked)?;
        Ok(())
    }

    /// Wait until every record the kernel has written so far has been handled.
    pub async fn flush(&self) {
        self.flush.flush().await;
    }

    /// End `active`: its processes are gone (at `emptied_at`), or no longer ours to watch.
    pub async fn end(
        &self,
        active: &Active,
        emptied_at: DateTime<Utc>,
    ) -> Result<SlotCounters, TrackerError> {
        self.flush().await;
        let (counters, untracked) = {
            let mut kernel = self.kernel();
            let counters = kernel.maps.counters(active.slot);
            let untracked = kernel.maps.untrack_instance(active.instance);
            (counters, untracked)
        };
        let counters = counters.unwrap_or_else(|e| {
            tracing::warn!(investigation = %active.id, error = %e, "cannot read counters");
            SlotCounters::default()
        });
        let (done, wait) = oneshot::channel();
        let end = Lifecycle::End {
            slot: active.slot,
            instance: active.instance,
            counters: counters.clone(),
            emptied_at,
            done,
        };
        if self.lifecycle.send(end).await.is_ok() {
            let _ = wait.await;
        }
        self.registry().release(active.slot, active.instance);
        self.released.notify_waiters();
        untracked?;
        Ok(counters)
    }

    pub fn active(&self) -> Vec<Active> {
        self.registry().active().cloned().collect()
    }

    pub fn counters(&self, slot: u16) -> Result<SlotCounters, TrackError> {
        self.kernel().maps.counters(slot)
    }
}

impl Tracker {
    /// Send every running investigation's counters to the pipeline (envelope checks).
    pub async fn sample(&self) {
        let at = std::time::Instant::now();
        for active in self.active() {
            let Ok(counters) = self.counters(active.slot) else { continue };
            let sample =
                Lifecycle::Sample { slot: active.slot, instance: active.instance, counters, at };
            if self.lifecycle.send(sample).await.is_err() {
                return;
            }
        }
    }

    /// Hand an operator request to the pipeline and wait for its answer.
    pub async fn admin(&self, request: AdminRequest) -> Result<AdminReply, String> {
        let (reply, answer) = oneshot::channel();
        self.lifecycle
            .send(Lifecycle::Admin(request, reply))
            .await
            .map_err(|_| "the daemon is stopping".to_owned())?;
        answer.await.map_err(|_| "the daemon is stopping".to_owned())?
    }
}
