//! Operator requests (phase modes, baselines), answered by the pipeline, which owns the
//! judge; a change to what a phase enforces reaches the kernel before the answer.
use super::Pipeline;
use crate::{
    baseline::Mode,
    identity::Phase,
    lifecycle::admin::{AdminError, AdminReply, AdminRequest},
};

impl Pipeline {
    pub(super) fn admin(&mut self, request: AdminRequest) -> Result<AdminReply, AdminError> {
        let judge = &mut self.judge;
        match request {
            AdminRequest::List => Ok(AdminReply::List { phases: judge.summaries() }),
            AdminRequest::Report { phase } => Ok(AdminReply::Report {
                phases: judge
                    .reports()
                    .into_iter()
                    .filter(|r| phase.is_none_or(|p| r.phase == p))
                    .collect(),
            }),
            AdminRequest::Export { phase } => Ok(AdminReply::Text { text: judge.export(phase) }),
            AdminRequest::Diff { phase, text, source } => {
                let lines = judge.diff(phase, &text, &source)?;
                let text = if lines.is_empty() {
                    format!("no difference from the {phase} baseline in force\n")
                } else {
                    lines.join("\n") + "\n"
                };
                Ok(AdminReply::Text { text })
            }
            AdminRequest::Import { phase, text, source } => {
                let revision = judge.import(phase, &text, &source)?;
                self.enforce_phase(phase)?;
                Ok(AdminReply::Done {
                    message: format!(
                        "{phase} baseline revision {revision} from {source} is in force (this \
                         node's state directory){}",
                        self.kernel_note(phase)
                    ),
                })
            }
            AdminRequest::Reset { phase } => {
                let before = judge.reset(phase)?;
                self.enforce_phase(phase)?;
                let was = if before == Mode::Learn {
                    String::new()
                } else {
                    format!(" (it was in {before} mode)")
                };
                Ok(AdminReply::Done {
                    message: format!(
                        "{phase} baseline reset (this node's state directory); the phase learns \
                         again{was}"
                    ),
                })
            }
            AdminRequest::SetMode { phase, mode } => {
                // The kernel first: entering enforce, its maps must be ready before anything
                // counts as switched.
                let incomplete = self
                    .enforcer
                    .apply(phase, mode, judge.baseline(phase))
                    .map_err(|source| AdminError::KernelMode { phase, mode, source })?;
                judge.set_kernel_incomplete(phase, incomplete);
                match judge.set_mode(phase, mode) {
                    Ok(before) => Ok(AdminReply::Done {
                        message: format!(
                            "{phase}: {before} -> {mode} (this node's state directory){}",
                            self.kernel_note(phase)
                        ),
                    }),
                    Err(e) => {
                        let restore = judge.mode(phase);
                        if let Ok(incomplete) =
                            self.enforcer.apply(phase, restore, self.judge.baseline(phase))
                        {
                            self.judge.set_kernel_incomplete(phase, incomplete);
                        }
                        Err(e.into())
                    }
                }
            }
        }
    }

    /// Put `phase`'s current mode and baseline in force in the kernel.
    pub(super) fn enforce_phase(&mut self, phase: Phase) -> Result<(), AdminError> {
        let mode = self.judge.mode(phase);
        let incomplete = self
            .enforcer
            .apply(phase, mode, self.judge.baseline(phase))
            .map_err(|source| AdminError::KernelStale { phase, source })?;
        self.judge.set_kernel_incomplete(phase, incomplete);
        Ok(())
    }

    /// What an operator must know when the phase's policy did not fit the kernel's maps.
    fn kernel_note(&self, phase: Phase) -> String {
        let summary = self.judge.summaries().into_iter().find(|s| s.phase == phase);
        match summary.map(|s| s.kernel_incomplete).filter(|sets| !sets.is_empty()) {
            Some(sets) => format!(
                "; the kernel's maps cannot hold its {} (kernel.policy_*): the kernel does not \
                 decide those, the daemon judges them and kills after the fact",
                sets.join(", ")
            ),
            None => String::new(),
        }
    }

    /// Put every phase in force in the kernel (at start).
    pub fn enforce_all(&mut self) -> Result<(), AdminError> {
        Phase::ALL.into_iter().try_for_each(|phase| self.enforce_phase(phase))
    }
}
