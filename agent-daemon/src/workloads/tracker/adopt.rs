//! A daemon taking over the investigations an earlier one left running: each in its slot,
//! begun in the pipeline as resumed, tracked again; what the kernel doomed meanwhile judged.
use agent_common::hash::fnv1a;

use super::{Active, Lifecycle, Tracker, TrackerError, investigation};

/// What adopting the saved investigations found.
#[derive(Debug, Default)]
pub struct Adopted {
    /// Local investigations, for the local source to watch again.
    pub local: Vec<Active>,
    /// Pods, waiting for the pod list to claim them.
    pub pods: Vec<Active>,
    /// Saved investigations that could not be adopted, and why.
    pub refused: Vec<String>,
    /// Instances the kernel's maps named that no saved investigation claims: untracked.
    pub stale: Vec<u32>,
    /// Those the kernel doomed while no daemon ran.
    pub doomed: Vec<Active>,
}

impl Tracker {
    /// Adopt the investigations an earlier daemon saved: each in its slot with its instance
    /// (as the kernel's maps, if adopted, know it), begun in the pipeline as resumed, its
    /// cgroups and processes tracked again (in fresh maps, from what the cgroups hold).
    /// Instances the maps name that nobody claims are untracked.
    pub async fn adopt(&self, saved: Vec<Active>) -> Adopted {
        let mut adopted = Adopted::default();
        for active in saved {
            if let Err(e) = self.registry().restore(active.clone()) {
                adopted.refused.push(format!(
                    "investigation {} (instance {}): {e}",
                    active.id, active.instance
                ));
                let _ = self.saved.forget(active.instance);
                continue;
            }
            self.reserve_instances(active.instance);
            let doomed = self.kernel().maps.doomed(active.slot, active.instance);
            if doomed && let Err(e) = self.kernel().maps.doom(active.slot, active.instance) {
                // Doomed by another generation: this one's programs kill too.
                tracing::warn!(investigation = %active.id, error = %e, "cannot doom an adopted investigation");
            }
            let path = self.cgroup2.hierarchy_path(&active.cgroup).unwrap_or_default();
            let info = investigation(&active, path.clone(), active.cgroup.clone(), doomed);
            if self.lifecycle.send(Lifecycle::Begin(info)).await.is_err() {
                return adopted;
            }
            let tracked = if active.source == "kubernetes" && !path.is_empty() {
                // The kernel's lock is released before `track_present` takes it again.
                let registered = self
                    .kernel()
                    .maps
                    .register_path(fnv1a(path.as_bytes()), Self::tracked(&active));
                registered.map_err(TrackerError::from).and_then(|()| self.track_present(&active))
            } else {
                self.track_present(&active)
            };
            if let Err(e) = tracked {
                tracing::warn!(investigation = %active.id, error = %e, "cannot track an adopted investigation's cgroup again");
            }
            tracing::info!(investigation = %active.id, instance = active.instance, phase = %active.phase,
                source = active.source, cgroup = %active.cgroup.display(), doomed, "adopted a running investigation");
            if doomed {
                adopted.doomed.push(active.clone());
            }
            if active.source == "kubernetes" {
                adopted.pods.push(active);
            } else {
                adopted.local.push(active);
            }
        }
        let kept: std::collections::BTreeSet<u32> =
            self.registry().active().map(|a| a.instance).collect();
        let stale: Vec<u32> = self.kernel().maps.instances().difference(&kept).copied().collect();
        for instance in &stale {
            if let Err(e) = self.kernel().maps.untrack_instance(*instance) {
                tracing::warn!(instance, error = %e, "cannot untrack a stale instance");
            }
        }
        adopted.stale = stale;
        adopted
    }

    /// After the earlier generations are retired: forget the processes they saw exit while
    /// their entries were being copied.
    pub fn settle(&self) {
        let dead = self.prune_dead();
        if !dead.is_empty() {
            tracing::info!(processes = ?dead, "forgot processes that exited during the handover");
        }
    }

    /// Investigations the kernel doomed while no daemon ran: once every record it kept has
    /// been judged (the reader runs), those no record explained are judged as such.
    pub async fn judge_doomed(&self, doomed: &[Active]) {
        if doomed.is_empty() {
            return;
        }
        self.flush().await;
        for active in doomed {
            let message = Lifecycle::Unwatched { slot: active.slot, instance: active.instance };
            let _ = self.lifecycle.send(message).await;
        }
    }
}
