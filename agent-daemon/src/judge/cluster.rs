//! The judge's side of phases that live in the cluster: taking in the cluster's copy of a
//! phase (its mode and baseline), and handing out what this node learned and counted since.
use super::{Judge, admin::AdminError, books::Books};
use crate::{
    baseline::{
        Baseline, Mode,
        evidence::Evidence,
        merge,
        report::{self, PhaseReport, Status, StatusInputs},
    },
    identity::Phase,
};

/// What taking in a cluster copy changed on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adopted {
    /// The mode before.
    pub before: Mode,
    /// The baseline in force changed (entries, envelope).
    pub baseline_changed: bool,
}

impl Judge {
    /// Phases live in the cluster from now on: each run is also counted for it.
    pub fn bind_cluster(&mut self) {
        self.cluster = true;
    }

    /// Take in the cluster's copy of `phase`: its mode, and its baseline. While the phase
    /// learns, what this node learned beyond the copy it took in last (not yet in the
    /// cluster's) is kept on top; otherwise the cluster's baseline is in force as it is.
    /// Saved (the node's cache) before it counts as taken.
    pub fn adopt(
        &mut self,
        phase: Phase,
        mode: Mode,
        cluster: Baseline,
    ) -> Result<Adopted, AdminError> {
        let index = Books::index(phase).ok_or(AdminError::NoBaseline(phase))?;
        let book = &mut self.books[index];
        let learned_here = match (&book.synced, mode) {
            (_, Mode::Flag | Mode::Enforce) => None,
            (Some(old), Mode::Learn) => Some(merge::minus(&book.baseline, old)),
            // First contact: all this node learned on its own joins the cluster's.
            (None, Mode::Learn) => Some(merge::minus(&book.baseline, &Baseline::empty(phase))),
        };
        let mut in_force = cluster.clone();
        let mut dirty = false;
        if let Some(delta) = &learned_here {
            dirty = merge::union_into(&mut in_force, delta);
        }
        let (before_mode, before_baseline) = (book.state.mode, book.baseline.clone());
        let baseline_changed = !same_entries(&before_baseline, &in_force);
        book.baseline = in_force;
        book.state.mode = mode;
        book.dirty = false;
        let saved = self.store.save_synced(&cluster);
        let before_synced = book.synced.replace(cluster);
        if let Err(e) = saved.and_then(|()| self.save(phase)) {
            let book = &mut self.books[index];
            (book.baseline, book.state.mode, book.synced) =
                (before_baseline, before_mode, before_synced);
            return Err(e.into());
        }
        if dirty {
            self.books[index].dirty = true;
        }
        if baseline_changed {
            self.forget_refusals(phase);
        }
        Ok(Adopted { before: before_mode, baseline_changed })
    }

    /// What this node learned of `phase` beyond the cluster's copy it took in last, while
    /// the phase learns; `None` when there is nothing to send.
    pub fn delta(&self, phase: Phase) -> Option<Baseline> {
        let book = self.books.get(phase)?;
        if book.state.mode != Mode::Learn {
            return None;
        }
        let empty = Baseline::empty(phase);
        let delta = merge::minus(&book.baseline, book.synced.as_ref().unwrap_or(&empty));
        (!merge::is_empty(&delta)).then_some(delta)
    }

    /// What was counted of `phase`'s runs since the last call: the caller owns it now (and
    /// gives it back with [`Judge::give_back`] when it could not deliver it). Saved as
    /// taken, so that a restart never sends it twice (a daemon killed while it is on its
    /// way loses it instead).
    pub fn take_pending(&mut self, phase: Phase) -> Evidence {
        let Some(book) = self.books.get_mut(phase) else { return Evidence::default() };
        let taken = std::mem::take(&mut book.pending);
        if !taken.is_empty() {
            self.save_or_log(phase);
        }
        taken
    }

    /// Evidence taken but not delivered, in front of what was counted since (and saved).
    pub fn give_back(&mut self, phase: Phase, taken: Evidence) {
        let Some(book) = self.books.get_mut(phase) else { return };
        if taken.is_empty() {
            return;
        }
        let mut all = taken;
        all.add(&book.pending, chrono::Utc::now());
        book.pending = all;
        self.save_or_log(phase);
    }

    fn save_or_log(&mut self, phase: Phase) {
        if let Err(e) = self.save(phase) {
            tracing::error!(phase = %phase, error = %e, "cannot save the phase's evidence");
        }
    }

    /// Each phase's report from this node's own counts (phases kept on the node).
    pub fn reports(&self) -> Vec<PhaseReport> {
        let now = chrono::Utc::now();
        self.books
            .iter()
            .map(|(phase, book)| {
                let inputs = StatusInputs {
                    baseline: Some(&book.baseline),
                    generation: book.baseline.revision as i64,
                    caps: &self.caps,
                    settle_after: self.caps.settle_after_runs,
                    refused: None,
                    now,
                };
                PhaseReport {
                    phase,
                    mode: book.state.mode,
                    store: "node".into(),
                    status: report::status(&Status::default(), &book.evidence, &inputs),
                }
            })
            .collect()
    }
}

fn same_entries(a: &Baseline, b: &Baseline) -> bool {
    merge::is_empty(&merge::minus(a, b)) && merge::is_empty(&merge::minus(b, a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        baseline::{Observation, learn, store::Store},
        events::Action,
    };

    fn judge(dir: &std::path::Path) -> Judge {
        let (mut judge, _) = Judge::open(Store::open(dir).unwrap()).unwrap();
        judge.bind_cluster();
        judge
    }

    fn with(syscalls: &[&str]) -> Baseline {
        let mut b = Baseline::empty(Phase::ReadOnly);
        for s in syscalls {
            learn(&mut b, &Observation::Syscall((*s).into()));
        }
        b
    }

    fn learn_run(judge: &mut Judge, instance: u32, syscall: &str) {
        judge.begin_as(instance, Phase::ReadOnly, "agent-x".into());
        judge.observe(instance, &Observation::Syscall(syscall.into()), Action::None);
        judge.end(instance, 1, 0, std::time::Instant::now());
    }

    #[test]
    fn what_a_node_learned_on_its_own_joins_the_cluster_and_survives_a_new_copy() {
        let dir = tempfile::tempdir().unwrap();
        let mut judge = judge(dir.path());
        learn_run(&mut judge, 1, "read");
        judge.adopt(Phase::ReadOnly, Mode::Learn, with(&["write"])).unwrap();
        assert_eq!(judge.baseline(Phase::ReadOnly).syscalls.len(), 2, "cluster's and its own");
        assert_eq!(judge.delta(Phase::ReadOnly).unwrap().syscalls.len(), 1);
        learn_run(&mut judge, 2, "openat");
        // The cluster took "read" meanwhile (another node or this one's earlier write);
        // "openat" is still this node's alone.
        judge.adopt(Phase::ReadOnly, Mode::Learn, with(&["write", "read", "close"])).unwrap();
        let delta = judge.delta(Phase::ReadOnly).unwrap();
        assert_eq!(delta.syscalls.iter().collect::<Vec<_>>(), ["openat"]);
        assert_eq!(judge.baseline(Phase::ReadOnly).syscalls.len(), 4);
        let pending = judge.take_pending(Phase::ReadOnly);
        assert_eq!((pending.tally.runs, pending.learned), (2, 2));
        assert_eq!(pending.agents["agent-x"].tally.runs, 2);
        assert!(judge.take_pending(Phase::ReadOnly).is_empty(), "taken");
    }

    #[test]
    fn an_operator_removal_is_not_undone_and_enforce_takes_the_cluster_copy_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let mut judge = judge(dir.path());
        judge.adopt(Phase::ReadOnly, Mode::Learn, with(&["read", "ptrace"])).unwrap();
        judge.adopt(Phase::ReadOnly, Mode::Learn, with(&["read"])).unwrap();
        assert_eq!(judge.delta(Phase::ReadOnly), None, "ptrace was removed upstream");
        learn_run(&mut judge, 1, "openat");
        let adopted = judge.adopt(Phase::ReadOnly, Mode::Enforce, with(&["read"])).unwrap();
        assert_eq!(adopted, Adopted { before: Mode::Learn, baseline_changed: true });
        assert_eq!(judge.mode(Phase::ReadOnly), Mode::Enforce);
        assert_eq!(judge.baseline(Phase::ReadOnly).syscalls.len(), 1);
        // A restart keeps the copy taken in, so nothing removed comes back.
        drop(judge);
        let mut judge = super::tests::judge(dir.path());
        assert_eq!(judge.mode(Phase::ReadOnly), Mode::Enforce);
        judge.adopt(Phase::ReadOnly, Mode::Learn, with(&["read"])).unwrap();
        assert_eq!(judge.delta(Phase::ReadOnly), None);
    }
}
