//! How an investigation begins and ends, in the same order for every workload source:
//! begin = reserve a slot, zero its counters, tell the pipeline, then track its cgroup in
//! the kernel (so no record can arrive for an investigation the pipeline does not know);
//! end = drain the ring buffer, read the counters, untrack, tell the pipeline, free the slot.
//! A new daemon adopts what an earlier one left running (`adopt`).
mod adopt;
mod requests;

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
    saved::{INSTANCE_BLOCK, SavedRuns},
};
use crate::{
    identity::{InvestigationId, Phase},
    kernel::{Kernel, SlotCounters, TrackError, mounts::Cgroup2, reader::FlushHandle},
    lifecycle::{Investigation, Lifecycle},
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
    /// The running investigations on disk, for the next daemon.
    saved: SavedRuns,
    /// A stopping daemon leaves its investigations to the next (`daemon.on_stop`).
    keep_on_stop: bool,
    /// Instance numbers below this one may have been handed out (reserved on disk).
    reserved: Mutex<u32>,
    /// Investigations that ended lately (instance, id), for `paddock run` clients that
    /// rejoin after a restart to hear how theirs went.
    ended: Mutex<std::collections::VecDeque<(u32, InvestigationId, Option<u32>)>>,
}

/// Ended investigations remembered for rejoining clients.
const ENDED_KEPT: usize = 4096;

impl Tracker {
    pub fn new(
        kernel: Arc<Mutex<Kernel>>,
        lifecycle: mpsc::Sender<Lifecycle>,
        flush: FlushHandle,
        cgroup2: Cgroup2,
        saved: SavedRuns,
    ) -> Tracker {
        // Above every instance an earlier daemon handed out, and every one the kernel's
        // (adopted) maps still name.
        let seen = kernel.lock().unwrap_or_else(|e| e.into_inner()).maps.instances();
        let first = saved.next_instance().max(seen.last().map_or(1, |i| i.wrapping_add(1)));
        Tracker {
            kernel,
            registry: Mutex::new(Registry::starting_at(first)),
            released: tokio::sync::Notify::new(),
            lifecycle,
            flush,
            cgroup2,
            saved,
            keep_on_stop: false,
            reserved: Mutex::new(first),
            ended: Mutex::default(),
        }
    }

    /// Leave investigations that end while the daemon stops (their last records unread) to
    /// the next daemon, rather than end them unjudged.
    pub fn keeping_on_stop(self, keep: bool) -> Tracker {
        Tracker { keep_on_stop: keep, ..self }
    }

    /// Make sure instance numbers up to `instance` are reserved on disk.
    fn reserve_instances(&self, instance: u32) {
        let mut reserved = self.reserved.lock().unwrap_or_else(|e| e.into_inner());
        if instance >= *reserved {
            let upto = instance.saturating_add(INSTANCE_BLOCK);
            match self.saved.reserve_instances(upto) {
                Ok(()) => *reserved = upto,
                Err(e) => tracing::warn!(error = %e, "cannot reserve instance numbers on disk"),
            }
        }
    }

    fn kernel(&self) -> std::sync::MutexGuard<'_, Kernel> {
        self.kernel.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserve a slot and instance for a `paddock run` of `id`, whose client (`uid`) may rejoin it later.
    pub async fn reserve_local(
        &self,
        id: InvestigationId,
        phase: Phase,
        client_uid: u32,
    ) -> Result<Active, TrackerError> {
        let mut active = self.reserve_with(id, phase, "local", None).await?;
        active.client_uid = Some(client_uid);
        self.registry().set_client(active.slot, active.instance, client_uid);
        Ok(active)
    }

    /// [`Tracker::reserve`] for a pod: other pods may run the same investigation id.
    pub async fn reserve_pod(
        &self,
        id: InvestigationId,
        phase: Phase,
        pod: super::PodOwner,
    ) -> Result<Active, TrackerError> {
        if let Some(adopted) = self.claim_pod(&pod.uid) {
            return Ok(adopted);
        }
        self.reserve_with(id, phase, "kubernetes", Some(pod)).await
    }

    /// The adopted investigation of pod `uid`, if an earlier daemon ran one: claimed by the
    /// pod list now (still marked `resumed`, so it is not begun again).
    fn claim_pod(&self, uid: &str) -> Option<Active> {
        let mut registry = self.registry();
        let found = registry
            .active()
            .find(|a| a.resumed && a.pod.as_ref().is_some_and(|p| p.uid == uid))
            .cloned()?;
        registry.claim(found.slot, found.instance);
        Some(found)
    }

    /// Adopted pods the pod list has not claimed (after it synced: pods gone meanwhile).
    pub fn unclaimed_pods(&self) -> Vec<Active> {
        let mut registry = self.registry();
        let found: Vec<Active> =
            registry.active().filter(|a| a.resumed && a.source == "kubernetes").cloned().collect();
        for a in &found {
            registry.claim(a.slot, a.instance);
        }
        found
    }

    /// Reserve a slot and instance for `id`; nothing is tracked yet. When a run of `id` is
    /// still ending (its processes gone, its last events being handled), wait for it.
    async fn reserve_with(
        &self,
        id: InvestigationId,
        phase: Phase,
        source: &'static str,
        pod: Option<super::PodOwner>,
    ) -> Result<Active, TrackerError> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        let active = loop {
            let released = self.released.notified();
            let allocated = self.registry().allocate_with(id.clone(), phase, source, pod.clone());
            match allocated {
                Err(RegisterError::AlreadyRunning(_)) if self.ending(&id) => {
                    if tokio::time::timeout_at(deadline, released).await.is_err() {
                        break allocated?;
                    }
                }
                other => break other?,
            }
        };
        self.reserve_instances(active.instance);
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

    pub(super) fn tracked(active: &Active) -> Tracked {
        Tracked {
            slot: active.slot,
            phase: active.phase.kernel_id(),
            flags: 0,
            instance: active.instance,
        }
    }

    /// Tell the pipeline `active` begins, with its cgroup `dir`.
    async fn begin(&self, active: &mut Active, dir: &Path) -> Result<String, TrackerError> {
        let path = self
            .cgroup2
            .hierarchy_path(dir)
            .ok_or_else(|| TrackerError::OutsideHierarchy(dir.display().to_string()))?;
        active.cgroup = dir.to_path_buf();
        self.registry().set_cgroup(active.slot, dir.to_path_buf());
        if let Err(e) = self.saved.save(active) {
            tracing::warn!(investigation = %active.id, error = %e,
                "cannot save the investigation for the next daemon: a restart would not adopt it");
        }
        if active.resumed {
            return Ok(path);
        }
        let info = investigation(active, path.clone(), dir.to_path_buf(), false);
        self.lifecycle.send(Lifecycle::Begin(info)).await.map_err(|_| TrackerError::Stopping)?;
        Ok(path)
    }

    /// Track the cgroup `dir` (existing) and everything made below it, for `active`.
    pub async fn track(&self, active: &mut Active, dir: &Path) -> Result<(), TrackerError> {
        self.begin(active, dir).await?;
        self.track_existing(active, dir)
    }

    /// Track `dir` for `active` whether it exists yet or not: its path is registered, so the
    /// kernel tracks it the moment it is made (a pod's cgroup, made by the kubelet later);
    /// if it exists, it and every cgroup and process already below it are tracked now.
    pub async fn expect(&self, active: &mut Active, dir: &Path) -> Result<(), TrackerError> {
        let path = self.begin(active, dir).await?;
        self.kernel().maps.register_path(fnv1a(path.as_bytes()), Self::tracked(active))?;
        // Made before the path was registered: the kernel did not see it; track it here.
        self.track_present(active)
    }

    /// Track `active`'s cgroup now if it exists and is not tracked yet (a missed race with
    /// its creation, or a pod the daemon found already running). Returns nothing when the
    /// cgroup is not there yet.
    pub fn track_present(&self, active: &Active) -> Result<(), TrackerError> {
        let dir = active.cgroup.clone();
        match cgroups::cgroup_id(&dir) {
            Ok(_) => self.track_existing(active, &dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(TrackerError::Cgroup { path: dir.display().to_string(), source }),
        }
    }

    /// Track the existing `dir`, every cgroup below it and every process in them.
    fn track_existing(&self, active: &Active, dir: &Path) -> Result<(), TrackerError> {
        let tracked = Self::tracked(active);
        let cgroup_err = |source| TrackerError::Cgroup { path: dir.display().to_string(), source };
        for sub in cgroups::tree(dir).map_err(cgroup_err)? {
            let path = self
                .cgroup2
                .hierarchy_path(&sub)
                .ok_or_else(|| TrackerError::OutsideHierarchy(sub.display().to_string()))?;
            let cgroup_id = match cgroups::cgroup_id(&sub) {
                Ok(id) => id,
                // Removed meanwhile: nothing runs there.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(TrackerError::Cgroup { path: sub.display().to_string(), source });
                }
            };
            self.kernel().maps.track(cgroup_id, fnv1a(path.as_bytes()), tracked)?;
        }
        // Processes already inside (a pod registered late, a daemon restart) are tracked as
        // processes too; those that start from now on are tracked by the kernel.
        let running = cgroups::processes(dir).map_err(cgroup_err)?;
        self.kernel().maps.track_tasks(&running, tracked)?;
        Ok(())
    }

    /// Wait until every record the kernel has written so far has been handled.
    /// See [`FlushHandle::flush`].
    pub async fn flush(&self) -> bool {
        self.flush.flush().await
    }

    /// End `active`: its processes are gone (at `emptied_at`), or no longer ours to watch.
    pub async fn end(
        &self,
        active: &Active,
        emptied_at: DateTime<Utc>,
    ) -> Result<SlotCounters, TrackerError> {
        if !self.flush().await && self.keep_on_stop {
            // Its last records (a kill the kernel decided, say) wait in the ring buffer:
            // the next daemon adopts it, reads them, and ends it with the right outcome.
            return Err(TrackerError::Stopping);
        }
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
        // Known as ended before it stops being active: a client rejoining in between
        // finds it one way or the other.
        {
            let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
            ended.push_back((active.instance, active.id.clone(), active.client_uid));
            while ended.len() > ENDED_KEPT {
                ended.pop_front();
            }
        }
        self.registry().release(active.slot, active.instance);
        if let Err(e) = self.saved.forget(active.instance) {
            tracing::warn!(investigation = %active.id, error = %e, "cannot forget the saved investigation");
        }
        self.released.notify_waiters();
        untracked?;
        Ok(counters)
    }

    /// Investigation `id`, instance `instance`, if it ended under this daemon lately: the
    /// uid of the client that started it, if one did.
    pub fn ended_lately(&self, instance: u32, id: &InvestigationId) -> Option<Option<u32>> {
        let ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        ended.iter().find(|(i, e, _)| *i == instance && e == id).map(|(_, _, uid)| *uid)
    }

    /// Processes of `active` the kernel still tracks, wherever they are: once its cgroups
    /// are empty, those that moved out of them. The investigation is not over while any
    /// lives.
    pub fn processes(&self, active: &Active) -> Vec<u32> {
        self.kernel().maps.processes_of(active.instance)
    }

    /// Forget listed processes that no longer live (see `KernelMaps::prune_dead_tasks`).
    pub fn prune_dead(&self) -> Vec<u32> {
        self.kernel().maps.prune_dead_tasks().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot prune dead processes from the process map");
            Vec::new()
        })
    }

    /// The running investigation process `pid` belongs to: tracked for it by the kernel
    /// (wherever it is), or in one of its cgroups (before the kernel has seen it).
    pub fn investigation_of(&self, pid: u32) -> Option<Active> {
        let instance = self.kernel().maps.instance_of(pid);
        let active = self.active();
        if let Some(instance) = instance {
            return active.into_iter().find(|a| a.instance == instance);
        }
        let cgroup = cgroups::of_process(pid).ok()?;
        let dir = self.cgroup2.mount_point.join(cgroup.trim_start_matches('/'));
        active.into_iter().find(|a| !a.cgroup.as_os_str().is_empty() && dir.starts_with(&a.cgroup))
    }

    pub fn active(&self) -> Vec<Active> {
        self.registry().active().cloned().collect()
    }

    pub fn counters(&self, slot: u16) -> Result<SlotCounters, TrackError> {
        self.kernel().maps.counters(slot)
    }
}

/// The pipeline's view of `active`, tracked at `cgroup` (as the hierarchy names it) in
/// `dir`; `doomed` when adopted with its kernel slot doomed.
fn investigation(
    active: &Active,
    cgroup: String,
    dir: std::path::PathBuf,
    doomed: bool,
) -> Investigation {
    Investigation {
        slot: active.slot,
        instance: active.instance,
        id: active.id.clone(),
        phase: active.phase,
        agent: active.pod.as_ref().map_or_else(|| "local".to_owned(), |p| p.agent.clone()),
        source: active.source,
        pod: active.pod.as_ref().map(|p| crate::events::PodRef {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            job: p.job.clone(),
        }),
        cgroup,
        dir,
        started: active.started,
        resumed: active.resumed,
        doomed,
    }
}
