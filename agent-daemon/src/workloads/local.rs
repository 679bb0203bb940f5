//! The local workload source: `paddock run` sessions. Each gets a fresh cgroup below the
//! configured parent, tracked before the client starts the command inside it; the
//! investigation ends when that cgroup is empty (its last process, not the command, is gone)
//! and the client has stopped waiting for it. Investigations an earlier daemon left running
//! are adopted (`resume`) and end the same way; their clients may rejoin them.
use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tokio::sync::watch;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    Active, Tracker,
    cgroups::{self, EventsWatch, EventsWatcher},
    pids::Pids,
    processes,
};
use crate::identity::{InvestigationId, Phase};

pub struct LocalSource {
    /// Absolute path of the parent cgroup of every local investigation.
    pub parent: PathBuf,
    watcher: EventsWatcher,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    /// At a stop, leave running investigations tracked for the next daemon (rather than
    /// end them).
    keep_on_stop: bool,
    /// Where each investigation's pids.max is set.
    pids: Option<Arc<Pids>>,
}

/// A started local investigation, as the control session sees it.
pub struct Session {
    pub active: Active,
    /// The cgroup v1 `pids` cgroup the command joins before it executes, when pids.max
    /// is set there (see `pids`).
    pub pids_cgroup: Option<PathBuf>,
    /// Set when the client has gone (it no longer waits on the investigation).
    client_gone: watch::Sender<bool>,
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.client_gone.send(true);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Phase(#[from] crate::identity::UnknownPhase),
    #[error(transparent)]
    Id(#[from] crate::identity::BadInvestigationId),
    #[error(transparent)]
    Tracker(#[from] super::TrackerError),
    #[error("cannot make cgroup {path}: {source}")]
    Mkdir { path: PathBuf, source: std::io::Error },
    #[error("cannot watch {path}/cgroup.events: {source}")]
    Watch { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Pids(#[from] super::pids::PidsError),
}

impl LocalSource {
    /// Make the parent cgroup.
    pub fn new(
        parent: PathBuf,
        shutdown: CancellationToken,
        tasks: TaskTracker,
        keep_on_stop: bool,
    ) -> std::io::Result<LocalSource> {
        std::fs::create_dir_all(&parent)?;
        Ok(LocalSource {
            parent,
            watcher: EventsWatcher::spawn()?,
            tasks,
            shutdown,
            keep_on_stop,
            pids: None,
        })
    }

    /// Clear what an earlier daemon left below the parent and nobody adopted (`adopted`:
    /// the cgroups of the investigations adopted).
    pub fn sweep(&self, adopted: &[PathBuf]) -> std::io::Result<()> {
        for entry in std::fs::read_dir(&self.parent)? {
            let dir = entry?.path();
            if !dir.is_dir() || adopted.contains(&dir) {
                continue;
            }
            match cgroups::populated(&dir) {
                Ok(false) => {
                    if let Err(e) = cgroups::remove_tree(&dir) {
                        tracing::warn!(cgroup = %dir.display(), error = %e, "cannot remove a stale cgroup");
                    }
                }
                Ok(true) => tracing::warn!(
                    cgroup = %dir.display(),
                    "processes of an earlier daemon's investigation still run here, untracked"
                ),
                Err(e) => {
                    tracing::warn!(cgroup = %dir.display(), error = %e, "cannot read a stale cgroup")
                }
            }
        }
        Ok(())
    }

    /// Set each investigation's pids.max through `pids`.
    pub fn with_pids(self, pids: Arc<Pids>) -> LocalSource {
        LocalSource { pids: Some(pids), ..self }
    }

    /// Watch an investigation an earlier daemon began (already adopted by the tracker)
    /// until it ends.
    pub fn resume(&self, tracker: &Arc<Tracker>, active: Active) {
        let watch = match self.watcher.watch(&active.cgroup) {
            Ok(watch) => watch,
            Err(e) => {
                // Its cgroup is gone: it ended while no daemon ran. Ended here.
                tracing::info!(investigation = %active.id, cgroup = %active.cgroup.display(), error = %e,
                    "an adopted investigation's cgroup is gone");
                EventsWatch::quiet()
            }
        };
        // Nobody waits on it here: its client, if any, rejoins to hear how it went.
        let (_client_gone, gone) = watch::channel(true);
        let (tracker, shutdown, keep) = (tracker.clone(), self.shutdown.clone(), self.keep_on_stop);
        let (pids, dir) = (self.pids.clone(), active.cgroup.clone());
        self.tasks.spawn(async move {
            lifecycle(tracker, active, watch, gone, shutdown, keep, true).await;
            if let Some(pids) = pids {
                pids.release(&dir);
            }
        });
    }

    /// Start a local investigation: validate, reserve, make and track its cgroup, and
    /// watch it until it ends.
    pub async fn start(
        &self,
        tracker: &Arc<Tracker>,
        investigation_id: &str,
        phase: &str,
        client_uid: u32,
    ) -> Result<Session, LocalError> {
        let id: InvestigationId = investigation_id.parse()?;
        let phase: Phase = phase.parse()?;
        let mut active = tracker.reserve_local(id, phase, client_uid).await?;
        let dir = match self.make_cgroup(&active) {
            Ok(dir) => dir,
            Err(e) => {
                tracker.abandon(&active);
                return Err(e);
            }
        };
        let pids_cgroup = match self.pids.as_ref().map(|p| p.prepare(&dir, phase)).transpose() {
            Ok(joined) => joined.flatten(),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                if let Some(pids) = &self.pids {
                    pids.release(&dir);
                }
                tracker.abandon(&active);
                return Err(e.into());
            }
        };
        let prepared = self.prepare(tracker, &mut active, &dir).await;
        let watch = match prepared {
            Ok(watch) => watch,
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                if let Some(pids) = &self.pids {
                    pids.release(&dir);
                }
                tracker.abandon(&active);
                return Err(e);
            }
        };
        let (client_gone, gone) = watch::channel(false);
        let (tracker, ended) = (tracker.clone(), active.clone());
        let (shutdown, keep) = (self.shutdown.clone(), self.keep_on_stop);
        let pids = self.pids.clone();
        self.tasks.spawn(async move {
            lifecycle(tracker, ended, watch, gone, shutdown, keep, false).await;
            // Removed only once empty: a run left to the next daemon keeps its limit.
            if let Some(pids) = pids {
                pids.release(&dir);
            }
        });
        Ok(Session { active, pids_cgroup, client_gone })
    }

    /// `<parent>/<id>-<instance>`, or with a suffix when an earlier daemon's cgroup of that
    /// name is still there (its processes still running).
    fn make_cgroup(&self, active: &Active) -> Result<PathBuf, LocalError> {
        let base = format!("{}-{}", active.id, active.instance);
        for attempt in 0..100 {
            let name = if attempt == 0 { base.clone() } else { format!("{base}.{attempt}") };
            let dir = self.parent.join(name);
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(LocalError::Mkdir { path: dir, source }),
            }
        }
        let path = self.parent.join(base);
        let source = std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "100 stale cgroups of that name",
        );
        Err(LocalError::Mkdir { path, source })
    }

    async fn prepare(
        &self,
        tracker: &Tracker,
        active: &mut Active,
        dir: &Path,
    ) -> Result<EventsWatch, LocalError> {
        // Watch before tracking: no change of `populated` can slip between the two.
        let watch = self
            .watcher
            .watch(dir)
            .map_err(|source| LocalError::Watch { path: dir.to_path_buf(), source })?;
        tracker.track(active, dir).await?;
        Ok(watch)
    }
}

/// Wait until the investigation's cgroup is empty and its client gone, then end it and
/// remove its cgroups. When the daemon stops first: leave it running and tracked for the
/// next daemon (`keep`), or end it. `adopted`: it ran before this daemon (its cgroup was
/// populated then).
async fn lifecycle(
    tracker: Arc<Tracker>,
    active: Active,
    mut watch: EventsWatch,
    mut gone: watch::Receiver<bool>,
    shutdown: CancellationToken,
    keep: bool,
    adopted: bool,
) {
    let dir = active.cgroup.clone();
    let mut seen_populated = adopted;
    let mut client_gone = false;
    let emptied_at = loop {
        let populated = cgroups::populated(&dir).unwrap_or(false);
        let now = chrono::Utc::now();
        seen_populated |= populated;
        client_gone |= *gone.borrow_and_update();
        if !populated && (seen_populated || client_gone) {
            // Its cgroup is empty; processes that moved out of it still count.
            let outside = tracker.processes(&active);
            if outside.is_empty() {
                break now;
            }
            tracing::info!(investigation = %active.id, processes = ?outside, "cgroup empty; waiting for processes that left it");
            tokio::select! {
                () = processes::wait_exits(&outside) => {
                    // Gone, yet still listed (an entry copied at a handover): forget them.
                    if tracker.processes(&active) == outside {
                        tracker.prune_dead();
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    continue;
                }
                () = shutdown.cancelled() => if keep { return } else { break chrono::Utc::now() },
            }
        }
        tokio::select! {
            _ = watch.changed.changed() => {}
            // A change inotify did not report (or a cgroup it could not watch).
            () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
            changed = gone.changed(), if !client_gone => {
                if changed.is_err() { client_gone = true; }
            }
            () = shutdown.cancelled() => if keep { return } else { break chrono::Utc::now() },
        }
    };
    drop(watch);
    if let Err(e) = tracker.end(&active, emptied_at).await {
        tracing::warn!(investigation = %active.id, error = %e, "ending the investigation");
    }
    // The cgroup is empty, but its last process may still be leaving it.
    for attempt in 0..50 {
        match cgroups::remove_tree(&dir) {
            Ok(()) => return,
            Err(e) if attempt == 49 || shutdown.is_cancelled() => {
                tracing::warn!(cgroup = %dir.display(), error = %e, "cgroup left in place");
                return;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}
