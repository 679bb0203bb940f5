//! The pods being tracked, one investigation run each: begun when the API first shows the
//! pod (its cgroup path registered so the kernel tracks it as the kubelet makes it), ended
//! once the pod is deleted or finished and no process is left in its cgroup.
use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use super::{
    KubeStats,
    actions::{Actions, Command},
    directory::{Directory, PodRecord},
    notice::{Notice, REASON_UNKNOWN_PHASE, Target},
    paths::{self, Driver},
    pods::PodView,
};
use crate::{
    identity::Phase,
    workloads::{Active, PodOwner, Tracker, cgroups, pids::Pids},
};

/// A container cgroup still missing after this long is worth a warning.
const MISSING_WARN_AFTER: Duration = Duration::from_secs(30);

struct Run {
    active: Active,
    view: PodView,
    driver: Driver,
    /// Deleted, finished or being deleted: it ends when its cgroup is empty.
    terminal: bool,
    /// Its cgroup has been seen (and tracked) at least once.
    seen: bool,
    /// Containers whose cgroup was not there yet: since when, and whether warned.
    missing: HashMap<String, (Instant, bool)>,
}

/// A pod waiting to be begun: no driver could be told yet, or no slot was free.
struct Pending {
    view: PodView,
    phase: Phase,
    warn_unknown: Option<String>,
}

pub struct Runs {
    tracker: Arc<Tracker>,
    stats: Arc<KubeStats>,
    directory: Arc<Directory>,
    actions: Option<Actions>,
    /// Absolute: the folder holding `kubepods.slice` / `kubepods`.
    parent: PathBuf,
    driver: Option<Driver>,
    runs: HashMap<String, Run>,
    pending: HashMap<String, Pending>,
    /// Pods whose start failed, logged once.
    complained: HashSet<String>,
    /// Pods an earlier daemon tracked that the pod list no longer shows: ended once
    /// nothing of them lives.
    orphans: Vec<Active>,
    /// At a stop, leave every run tracked for the next daemon.
    keep_on_stop: bool,
    /// Each phase's pids.max, lowered on a pod's cgroup when it appears.
    pids: Option<Arc<Pids>>,
}

impl Runs {
    pub fn new(
        tracker: Arc<Tracker>,
        stats: Arc<KubeStats>,
        directory: Arc<Directory>,
        actions: Option<Actions>,
        parent: PathBuf,
        driver: Option<Driver>,
        keep_on_stop: bool,
    ) -> Runs {
        Runs {
            tracker,
            stats,
            directory,
            actions,
            parent,
            driver,
            runs: HashMap::new(),
            pending: HashMap::new(),
            complained: HashSet::new(),
            orphans: Vec::new(),
            keep_on_stop,
            pids: None,
        }
    }

    pub fn with_pids(self, pids: Arc<Pids>) -> Runs {
        Runs { pids: Some(pids), ..self }
    }

    /// The pod's cgroup is there: hold it to its phase's pids.max.
    fn limit(&self, dir: &Path, phase: Phase) {
        if let Some(pids) = &self.pids {
            pids.limit_pod(dir, phase);
        }
    }

    /// After the pod list synced: pods an earlier daemon tracked that it did not show (gone
    /// meanwhile) are watched until nothing of them lives, then ended.
    pub fn take_orphans(&mut self) {
        for active in self.tracker.unclaimed_pods() {
            tracing::info!(investigation = %active.id, pod = ?active.pod.as_ref().map(|p| &p.name),
                "an adopted pod is gone from the API; ending it once nothing of it lives");
            self.orphans.push(active);
        }
    }

    pub fn knows(&self, uid: &str) -> bool {
        self.runs.contains_key(uid) || self.pending.contains_key(uid)
    }

    /// Uids of every pod tracked or waiting.
    pub fn uids(&self) -> Vec<String> {
        self.runs.keys().chain(self.pending.keys()).cloned().collect()
    }

    /// A newer view of a pod already known.
    pub fn update(&mut self, view: PodView, deleting: bool) {
        if let Some(run) = self.runs.get_mut(&view.uid) {
            run.terminal |= view.finished || deleting;
            run.view = view;
        } else if view.finished || deleting {
            self.pending.remove(&view.uid);
        } else if let Some(pending) = self.pending.get_mut(&view.uid) {
            pending.view = view;
        }
    }

    /// The pod is gone from the API.
    pub fn gone(&mut self, uid: &str) {
        if let Some(run) = self.runs.get_mut(uid) {
            run.terminal = true;
        }
        self.pending.remove(uid);
        self.complained.remove(uid);
    }

    /// Begin tracking a pod (not finished) as `phase`.
    pub async fn start(&mut self, view: PodView, phase: Phase, warn_unknown: Option<String>) {
        let uid = view.uid.clone();
        let Some(driver) = self.driver.or_else(|| paths::detect_driver(&self.parent)) else {
            if self.complained.insert(uid.clone()) {
                tracing::warn!(pod = %format!("{}/{}", view.namespace, view.name), parent = %self.parent.display(),
                    "no kubepods.slice or kubepods cgroup yet: cannot tell the cgroup driver; waiting");
            }
            self.pending.insert(uid, Pending { view, phase, warn_unknown });
            return;
        };
        let dir = self.parent.join(paths::pod_cgroup(driver, view.qos, &uid));
        let owner = PodOwner {
            namespace: view.namespace.clone(),
            name: view.name.clone(),
            uid: uid.clone(),
            job: view.job.as_ref().map(|j| j.name.clone()),
            agent: view.agent.clone(),
        };
        let mut active = match self
            .tracker
            .reserve_pod(view.investigation.clone(), phase, owner)
            .await
        {
            Ok(active) => active,
            Err(e) => {
                if self.complained.insert(uid.clone()) {
                    tracing::warn!(pod = %format!("{}/{}", view.namespace, view.name), error = %e, "cannot track the pod yet; retrying");
                }
                self.pending.insert(uid, Pending { view, phase, warn_unknown });
                return;
            }
        };
        self.pending.remove(&uid);
        self.complained.remove(&uid);
        if let Err(e) = self.tracker.expect(&mut active, &dir).await {
            tracing::error!(pod = %format!("{}/{}", view.namespace, view.name), cgroup = %dir.display(), error = %e, "cannot track the pod");
            let _ = self.tracker.end(&active, chrono::Utc::now()).await;
            return;
        }
        tracing::info!(
            investigation = %active.id, phase = %phase, pod = %format!("{}/{}", view.namespace, view.name),
            job = ?view.job.as_ref().map(|j| &j.name), cgroup = %dir.display(), exists = dir.exists(),
            "tracking pod"
        );
        self.directory.begin(
            active.id.clone(),
            PodRecord {
                instance: active.instance,
                phase,
                namespace: view.namespace.clone(),
                name: view.name.clone(),
                uid: uid.clone(),
                job: view.job.clone(),
                ended: None,
            },
        );
        if let (Some(label), Some(actions)) = (warn_unknown, &self.actions) {
            actions.submit(Command::Notice(Notice {
                target: Target::pod(&view.namespace, &view.name, &uid),
                reason: REASON_UNKNOWN_PHASE,
                message: format!(
                    "trust phase label {label:?} is none of shadow, read-only, limited-write, \
                     autonomous: paddock records this pod (investigation {}) as phase \"unknown\", \
                     without a baseline, verdicts or enforcement",
                    active.id
                ),
            }));
        }
        let seen = dir.exists();
        if seen {
            self.limit(&dir, phase);
        }
        self.runs.insert(
            uid,
            Run { active, view, driver, terminal: false, seen, missing: HashMap::new() },
        );
    }

    /// Once a second: begin waiting pods, track cgroups that appeared, end what is over.
    pub async fn reconcile(&mut self) {
        let waiting: Vec<Pending> = self.pending.drain().map(|(_, p)| p).collect();
        for p in waiting {
            self.start(p.view, p.phase, p.warn_unknown).await;
        }
        let mut over = Vec::new();
        for (uid, run) in &mut self.runs {
            let dir = run.active.cgroup.clone();
            if !run.seen && dir.exists() {
                run.seen = true;
                if let Some(pids) = &self.pids {
                    pids.limit_pod(&dir, run.active.phase);
                }
                if let Err(e) = self.tracker.track_present(&run.active) {
                    tracing::warn!(cgroup = %dir.display(), error = %e, "cannot track the pod's cgroup");
                }
            }
            check_containers(&self.tracker, run, &dir);
            // Over once the pod is done and nothing of it lives: not in its cgroups, and
            // not outside them either (a process that moved itself out).
            if run.terminal && !populated(&dir) && self.tracker.processes(&run.active).is_empty() {
                over.push(uid.clone());
            }
        }
        for uid in over {
            if let Some(run) = self.runs.remove(&uid) {
                self.end(run).await;
            }
        }
        let orphans = std::mem::take(&mut self.orphans);
        for active in orphans {
            if !populated(&active.cgroup) && self.tracker.processes(&active).is_empty() {
                if let Err(e) = self.tracker.end(&active, chrono::Utc::now()).await {
                    tracing::warn!(investigation = %active.id, error = %e, "ending an adopted pod");
                }
            } else {
                self.orphans.push(active);
            }
        }
        let missing: usize =
            self.runs.values().filter(|r| !r.terminal).map(|r| r.missing.len()).sum();
        self.stats.missing_container_cgroups.store(missing as u64, Ordering::Relaxed);
    }

    async fn end(&self, run: Run) {
        let active = &run.active;
        if let Err(e) = self.tracker.end(active, chrono::Utc::now()).await {
            tracing::warn!(investigation = %active.id, error = %e, "ending the pod's investigation");
        }
        self.directory.end(&active.id, active.instance);
        tracing::info!(investigation = %active.id, pod = %format!("{}/{}", run.view.namespace, run.view.name), "pod investigation ended");
    }

    /// The daemon stops: end every run (their events drained), unless they are left for the
    /// next daemon.
    pub async fn end_all(&mut self) {
        if self.keep_on_stop {
            tracing::info!(pods = self.runs.len(), "leaving the pods tracked for the next daemon");
            return;
        }
        for active in std::mem::take(&mut self.orphans) {
            let _ = self.tracker.end(&active, chrono::Utc::now()).await;
        }
        for (_, run) in self.runs.drain().collect::<Vec<_>>() {
            self.end(run).await;
        }
    }
}

fn populated(dir: &Path) -> bool {
    match cgroups::populated(dir) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            tracing::warn!(cgroup = %dir.display(), error = %e, "cannot read cgroup.events");
            true
        }
    }
}

/// Log containers the API reports whose cgroup is not (yet) there; track those that
/// turn up late.
fn check_containers(tracker: &Tracker, run: &mut Run, dir: &Path) {
    if run.terminal {
        return;
    }
    for c in &run.view.containers {
        let path = dir.join(paths::container_cgroup(run.driver, c.runtime, &c.id));
        let exists = path.exists();
        match (run.missing.get_mut(&c.id), exists) {
            (None, false) => {
                tracing::info!(container = %c.name, cgroup = %path.display(), "container cgroup not there yet; will look again");
                run.missing.insert(c.id.clone(), (Instant::now(), false));
            }
            (Some((since, warned)), false) if !*warned && since.elapsed() > MISSING_WARN_AFTER => {
                *warned = true;
                tracing::warn!(container = %c.name, cgroup = %path.display(), investigation = %run.active.id,
                    "container cgroup still missing: wrong cgroup_driver or cgroup_parent?");
            }
            (Some(_), true) => {
                run.missing.remove(&c.id);
                tracing::info!(container = %c.name, cgroup = %path.display(), "container cgroup found");
                if let Err(e) = tracker.track_present(&run.active) {
                    tracing::warn!(cgroup = %dir.display(), error = %e, "cannot track the pod's cgroup");
                }
            }
            _ => {}
        }
    }
}
