//! One node's sync with the cluster's `TrustPhase` objects.
//!
//! - **In**: a watch on the objects; each new generation is checked (a bad `spec.baseline`
//!   is refused whole, said in the `BaselineAccepted` condition, and changes nothing) and
//!   taken in by the pipeline (kernel maps first), which saves it as the node's cache.
//! - **Out**: every `phase_sync_ms`, per phase, what this node learned beyond the cluster's
//!   copy is folded into `spec.baseline` (a set union, written with the resourceVersion it
//!   was read at: a conflict is read again and retried, so nothing is lost), and the runs it
//!   counted are added to `status`. At most two writes per phase and interval, whatever the
//!   number of runs. What could not be written is kept and sent with the next.
//! - **Operators** (`operator.rs`): `paddock phase mode`, `baseline import` and `baseline reset` change the
//!   object (this node's own learning is sent first) and answer once this node took it in.
mod operator;

use std::{
    collections::BTreeMap,
    pin::pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt as _;
use kube::{
    Api,
    api::{DynamicObject, PostParams},
    runtime::{WatchStreamExt as _, watcher},
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::object::{self, PhaseObject};
use crate::{
    baseline::{
        Baseline, Caps, Mode,
        evidence::Evidence,
        merge,
        report::{self, PhaseReport, Status, StatusInputs},
    },
    identity::Phase,
    lifecycle::{ClusterRequest, Lifecycle},
};

/// Conflicting writes retried before a write is given up until the next interval.
const MAX_ATTEMPTS: usize = 16;

/// Writes to the API server and how they went, for `/metrics`.
#[derive(Debug, Default)]
pub struct SyncStats {
    /// `spec.baseline` writes that went through.
    pub baseline_writes: AtomicU64,
    /// `status` writes that went through.
    pub status_writes: AtomicU64,
    /// Writes refused because the object changed since it was read (then read and retried).
    pub conflicts: AtomicU64,
    /// Writes or reads that failed otherwise (the API unreachable, refused...).
    pub failures: AtomicU64,
    /// Generations taken in.
    pub taken_in: AtomicU64,
    /// Baseline writes not made because the object would have grown over
    /// [`object::MAX_SPEC_BYTES`].
    pub oversize: AtomicU64,
}

#[derive(Default)]
struct PhaseSync {
    /// The object as last read.
    last: Option<PhaseObject>,
    /// The generation in force on this node (`None`: none since start, the cache is).
    in_force: Option<i64>,
    /// Why the last generation read was not taken in.
    refused: Option<(i64, String)>,
    /// A status write is due even with no new counts (a refusal, or its end, to report).
    status_due: bool,
}

pub struct Phases {
    api: Api<DynamicObject>,
    prefix: String,
    lifecycle: mpsc::Sender<Lifecycle>,
    caps: Caps,
    interval: Duration,
    phases: Mutex<BTreeMap<Phase, PhaseSync>>,
    /// One writer at a time (the interval's and operators'), so that this node never
    /// conflicts with itself.
    writing: tokio::sync::Mutex<()>,
    /// The last read or write reached the API server.
    connected: AtomicBool,
    /// The watch's last error, said once.
    told: Mutex<Option<String>>,
    pub stats: SyncStats,
}

fn code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

impl Phases {
    pub fn new(
        client: kube::Client,
        prefix: String,
        lifecycle: mpsc::Sender<Lifecycle>,
        caps: Caps,
        interval: Duration,
    ) -> Phases {
        Phases {
            api: Api::all_with(client, &object::resource()),
            prefix,
            lifecycle,
            caps,
            interval,
            phases: Mutex::new(Phase::ALL.iter().map(|p| (*p, PhaseSync::default())).collect()),
            writing: tokio::sync::Mutex::new(()),
            connected: AtomicBool::new(false),
            told: Mutex::new(None),
            stats: SyncStats::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, BTreeMap<Phase, PhaseSync>> {
        self.phases.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn name(&self, phase: Phase) -> String {
        object::name(&self.prefix, phase)
    }

    fn phase_of(&self, object: &DynamicObject) -> Option<Phase> {
        let name = object.metadata.name.as_deref()?;
        Phase::ALL.into_iter().find(|p| self.name(*p) == name)
    }

    fn reached(&self, ok: bool) {
        if self.connected.swap(ok, Ordering::Relaxed) != ok {
            if ok {
                tracing::info!("the cluster's trust phases are reachable again");
            } else {
                tracing::warn!(
                    "the cluster's trust phases cannot be reached: the cached copies stay in \
                     force, learning is kept to send later"
                );
            }
        }
    }

    fn failed(&self, what: &str, e: &kube::Error) -> String {
        self.stats.failures.fetch_add(1, Ordering::Relaxed);
        if code(e).is_none() {
            self.reached(false);
        }
        format!("{what}: {e}")
    }

    /// Why the node is not in sync with the cluster's phases, if it is not: for `/readyz`.
    pub fn unsynced(&self) -> Option<String> {
        if !self.connected.load(Ordering::Relaxed) {
            let why = self.told.lock().unwrap_or_else(|e| e.into_inner()).clone();
            return Some(format!(
                "the cluster's trust phases cannot be reached{}: the cached copies are in force",
                why.map(|w| format!(" ({w})")).unwrap_or_default()
            ));
        }
        let state = self.state();
        let missing: Vec<String> = state
            .iter()
            .filter(|(_, s)| s.last.is_none())
            .map(|(p, _)| format!("trustphase/{}", self.name(*p)))
            .collect();
        if !missing.is_empty() {
            return Some(format!(
                "{} not found (apply deploy/25-trust-phases.yaml): the cached copies are in force",
                missing.join(", ")
            ));
        }
        let behind: Vec<String> = state
            .iter()
            .filter(|(_, s)| {
                let generation = s.last.as_ref().map(|o| o.generation);
                s.in_force != generation && s.refused.as_ref().map(|r| r.0) != generation
            })
            .map(|(p, _)| p.to_string())
            .collect();
        (!behind.is_empty()).then(|| format!("not yet taken in: {}", behind.join(", ")))
    }

    /// Each phase as its object's status says (phases whose object was never read are left
    /// out).
    pub fn reports(&self) -> Vec<PhaseReport> {
        self.state()
            .values()
            .filter_map(|s| s.last.as_ref())
            .map(|o| PhaseReport {
                phase: o.phase,
                mode: o.mode,
                store: format!("cluster (trustphase/{})", self.name(o.phase)),
                status: o.status.clone(),
            })
            .collect()
    }

    /// Watch the objects and take each new generation in, until `shutdown`.
    pub async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        let stream = watcher(self.api.clone(), watcher::Config::default()).default_backoff();
        let mut stream = pin!(stream);
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                event = stream.next() => event,
            };
            match event {
                None => return,
                Some(Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o))) => {
                    self.reached(true);
                    *self.told.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    if let Err(e) = self.take_in(o).await {
                        tracing::error!(error = %e, "cannot take in a trust phase object");
                    }
                }
                Some(Ok(watcher::Event::Delete(o))) => {
                    if let Some(phase) = self.phase_of(&o) {
                        tracing::error!(phase = %phase, object = %self.name(phase),
                            "the phase's object was deleted: its cached copy stays in force");
                        self.state().entry(phase).or_default().last = None;
                    }
                }
                Some(Ok(watcher::Event::Init)) => {}
                Some(Ok(watcher::Event::InitDone)) => {
                    self.reached(true);
                    if let Some(problem) = self.unsynced() {
                        tracing::error!(%problem, "trust phases not in sync");
                    }
                }
                Some(Err(e)) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    self.reached(false);
                    let text = e.to_string();
                    let mut told = self.told.lock().unwrap_or_else(|e| e.into_inner());
                    if told.as_deref() != Some(text.as_str()) {
                        let hint = if text.contains("403") {
                            " (paddock's ServiceAccount needs deploy/10-rbac.yaml)"
                        } else {
                            ""
                        };
                        tracing::warn!(error = %text, "trust phase watch failed{hint}; retrying");
                        *told = Some(text);
                    }
                }
            }
        }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> ClusterRequest) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.lifecycle.send(Lifecycle::Cluster(make(tx))).await.ok()?;
        rx.await.ok()
    }

    /// Take in `object` (when it is one of ours and a generation not yet in force).
    async fn take_in(&self, object: DynamicObject) -> Result<(), String> {
        let Some(phase) = self.phase_of(&object) else { return Ok(()) };
        let (mode, baseline, generation) = {
            let mut state = self.state();
            let sync = state.entry(phase).or_default();
            let read = object::read_after(&object, phase, sync.last.as_ref())?;
            let (mode, generation) = (read.mode, read.generation);
            // A status write of a generation already in force, or already refused (and
            // said so), changes nothing here.
            let decided = sync.in_force == Some(generation)
                || sync.refused.as_ref().is_some_and(|r| r.0 == generation);
            let baseline = (!decided).then(|| read.baseline.clone());
            sync.last = Some(read);
            let Some(baseline) = baseline else { return Ok(()) };
            match baseline {
                Err(why) => {
                    tracing::error!(phase = %phase, generation, problem = %why,
                        "the phase's object was refused: the baseline in force stays");
                    sync.refused = Some((generation, why.clone()));
                    sync.status_due = true;
                    return Err(why);
                }
                Ok(baseline) => (mode, baseline, generation),
            }
        };
        let adopted = self
            .ask(|reply| ClusterRequest::Adopt { phase, mode, baseline: Box::new(baseline), reply })
            .await
            .ok_or("the pipeline has stopped")??;
        self.stats.taken_in.fetch_add(1, Ordering::Relaxed);
        let mut state = self.state();
        let sync = state.entry(phase).or_default();
        sync.in_force = Some(generation);
        if sync.refused.take().is_some() {
            sync.status_due = true;
        }
        if adopted.before != mode {
            tracing::info!(phase = %phase, from = %adopted.before, to = %mode, generation,
                "the phase's mode changed in the cluster");
        }
        Ok(())
    }

    /// Send what this node learned and counted, every interval, until `shutdown` (then once
    /// more).
    pub async fn send_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopping = tokio::select! {
                _ = shutdown.cancelled() => true,
                _ = tick.tick() => false,
            };
            let sent = async {
                let _writing = self.writing.lock().await;
                for phase in Phase::ALL {
                    if let Err(e) = self.send(phase).await {
                        tracing::warn!(phase = %phase, error = %e,
                            "cannot send to the phase's object; kept for the next try");
                    }
                }
            };
            if stopping {
                let _ = tokio::time::timeout(Duration::from_secs(3), sent).await;
                return;
            }
            sent.await;
        }
    }

    /// Send `phase`'s learning and counts (the caller holds `writing`).
    async fn send(&self, phase: Phase) -> Result<(), String> {
        let (delta, pending) = self
            .ask(|reply| ClusterRequest::Take { phase, reply })
            .await
            .ok_or("the pipeline has stopped")?;
        let due = std::mem::take(&mut self.state().entry(phase).or_default().status_due);
        if delta.is_none() && pending.is_empty() && !due {
            return Ok(());
        }
        match self.write(phase, delta.as_ref(), &pending).await {
            Ok(written) => {
                if let Err(e) = self.take_in(written).await {
                    tracing::warn!(phase = %phase, error = %e, "cannot take in what was written");
                }
                Ok(())
            }
            Err(e) => {
                let _ = self
                    .lifecycle
                    .send(Lifecycle::Cluster(ClusterRequest::GiveBack { phase, evidence: pending }))
                    .await;
                if due {
                    self.state().entry(phase).or_default().status_due = true;
                }
                Err(e)
            }
        }
    }

    async fn get(&self, phase: Phase) -> Result<DynamicObject, String> {
        let name = self.name(phase);
        match self.api.get(&name).await {
            Ok(o) => {
                self.reached(true);
                Ok(o)
            }
            Err(e) if code(&e) == Some(404) => {
                self.reached(true);
                Err(format!("trustphase/{name} not found (apply deploy/25-trust-phases.yaml)"))
            }
            Err(e) => Err(self.failed(&format!("cannot read trustphase/{name}"), &e)),
        }
    }

    /// Fold `delta` into the object's baseline (while it learns) and add `added` to its
    /// status; the object as written.
    async fn write(
        &self,
        phase: Phase,
        delta: Option<&Baseline>,
        added: &Evidence,
    ) -> Result<DynamicObject, String> {
        let name = self.name(phase);
        for _ in 0..MAX_ATTEMPTS {
            let mut current = self.get(phase).await?;
            let read = object::read(&current, phase)?;
            if let (Some(delta), Ok(cluster), Mode::Learn) = (delta, &read.baseline, read.mode) {
                let mut merged = cluster.clone();
                if merge::union_into(&mut merged, delta) {
                    let replaced = object::with_spec(&current, &merged, None);
                    let bytes = object::spec_bytes(&replaced);
                    if bytes > object::MAX_SPEC_BYTES {
                        self.stats.oversize.fetch_add(1, Ordering::Relaxed);
                        return Err(format!(
                            "trustphase/{name}: with this node's learning the spec would take \
                             {bytes} bytes, over {} (etcd's limit is 1.5 MiB): not written; \
                             lower the caps ([baseline]) or review the baseline",
                            object::MAX_SPEC_BYTES
                        ));
                    }
                    match self.api.replace(&name, &PostParams::default(), &replaced).await {
                        Ok(o) => {
                            self.stats.baseline_writes.fetch_add(1, Ordering::Relaxed);
                            current = o;
                        }
                        Err(e) if code(&e) == Some(409) => {
                            self.stats.conflicts.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Err(e) => {
                            return Err(self.failed(&format!("cannot write trustphase/{name}"), &e));
                        }
                    }
                }
            }
            let read = object::read(&current, phase)?;
            let status = self.status_of(&read, added, false);
            let with = object::with_status(&current, &status);
            match self.api.replace_status(&name, &PostParams::default(), &with).await {
                Ok(o) => {
                    self.stats.status_writes.fetch_add(1, Ordering::Relaxed);
                    return Ok(o);
                }
                Err(e) if code(&e) == Some(409) => {
                    self.stats.conflicts.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    return Err(self.failed(&format!("cannot write trustphase/{name} status"), &e));
                }
            }
        }
        Err(format!("trustphase/{name}: still conflicting after {MAX_ATTEMPTS} tries"))
    }

    fn status_of(&self, read: &PhaseObject, added: &Evidence, reset: bool) -> Status {
        let refused = read.baseline.as_ref().err().map(String::as_str);
        let inputs = StatusInputs {
            baseline: read.baseline.as_ref().ok(),
            generation: read.generation,
            caps: &self.caps,
            settle_after: self.caps.settle_after_runs,
            refused,
            now: chrono::Utc::now(),
        };
        let previous = if reset { Status::default() } else { read.status.clone() };
        report::status(&previous, added, &inputs)
    }
}
