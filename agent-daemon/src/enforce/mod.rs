//! Acting on verdicts: the kernel's enforcement maps (per phase), and killing a whole
//! investigation when a phase enforces.
pub mod kill;
pub mod policy;

use std::{
    collections::{HashMap, VecDeque},
    path::PathBuf,
    sync::{Arc, Mutex},
};

use tokio::sync::mpsc;

use crate::{
    baseline::{Baseline, Mode, Set},
    identity::{InvestigationId, Phase},
    kernel::{Kernel, TrackError},
};

#[derive(Debug)]
pub struct KillOrder {
    pub slot: u16,
    pub instance: u32,
    pub investigation: InvestigationId,
    /// The investigation's cgroup (absolute path): everything below it dies.
    pub cgroup: PathBuf,
    pub reason: String,
}

/// Why investigations were killed, by instance, for `paddock run` to report. Bounded: the
/// oldest are forgotten.
#[derive(Default)]
pub struct Outcomes(Mutex<(HashMap<u32, String>, VecDeque<u32>)>);

const OUTCOMES_KEPT: usize = 4096;

impl Outcomes {
    pub fn record(&self, instance: u32, reason: &str) {
        let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *inner;
        if map.insert(instance, reason.to_owned()).is_none() {
            order.push_back(instance);
        }
        while order.len() > OUTCOMES_KEPT {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    pub fn killed(&self, instance: u32) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).0.get(&instance).cloned()
    }
}

/// What the event pipeline calls to act on verdicts: the daemon's [`Enforcer`] puts them in
/// the kernel; a driver that runs the pipeline without a kernel (`paddock-bench`) gives its
/// own.
pub trait Enforce: Send {
    /// Put `phase`'s mode and baseline in force. Returns the sets that did not fit the
    /// kernel's maps: the kernel does not decide those for the phase, the daemon judges
    /// them after the fact.
    fn apply(&self, phase: Phase, mode: Mode, baseline: &Baseline) -> Result<Vec<Set>, TrackError>;

    /// Kill the whole investigation.
    fn kill(&self, order: KillOrder);
}

/// The daemon's enforcement: kernel policies per phase, and kill orders to the killer.
#[derive(Clone)]
pub struct Enforcer {
    kernel: Arc<Mutex<Kernel>>,
    kills: mpsc::UnboundedSender<KillOrder>,
    pub outcomes: Arc<Outcomes>,
    /// `enforcement.fail_closed`: put in each enforcing phase's kernel policy.
    fail_closed: bool,
}

impl Enforcer {
    pub fn new(
        kernel: Arc<Mutex<Kernel>>,
        kills: mpsc::UnboundedSender<KillOrder>,
        fail_closed: bool,
    ) -> Enforcer {
        Enforcer { kernel, kills, outcomes: Arc::default(), fail_closed }
    }
}

impl Enforce for Enforcer {
    fn apply(&self, phase: Phase, mode: Mode, baseline: &Baseline) -> Result<Vec<Set>, TrackError> {
        let policy = policy::kernel_policy(phase.kernel_id(), mode, baseline, self.fail_closed);
        let incomplete = self
            .kernel
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .maps
            .push_policy(phase.kernel_id(), &policy)?;
        Ok(policy::incomplete_sets(incomplete))
    }

    /// Kill the whole investigation; its reason is kept for `paddock run`. The kernel stops
    /// each of its processes at its next syscall; `cgroup.kill` then takes those in its
    /// cgroups, and a pidfd kill each process it tracks elsewhere.
    fn kill(&self, order: KillOrder) {
        self.outcomes.record(order.instance, &order.reason);
        if let Err(e) = self
            .kernel
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .maps
            .doom(order.slot, order.instance)
        {
            tracing::warn!(investigation = %order.investigation, error = %e, "cannot mark the investigation doomed in the kernel");
        }
        if let Err(e) = self.kills.send(order) {
            tracing::error!(investigation = %e.0.investigation, "the killer has stopped: investigation not killed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_keep_the_newest_only() {
        let outcomes = Outcomes::default();
        for instance in 0..(OUTCOMES_KEPT as u32 + 10) {
            outcomes.record(instance, "exec of /bin/false");
        }
        assert_eq!(outcomes.killed(0), None, "the oldest are forgotten");
        assert_eq!(
            outcomes.killed(OUTCOMES_KEPT as u32 + 9).as_deref(),
            Some("exec of /bin/false")
        );
        assert_eq!(outcomes.0.lock().unwrap().0.len(), OUTCOMES_KEPT);
    }
}
