//! Requests of the cluster phase sync, answered by the pipeline, which owns the judge: take
//! in a phase object's copy (mode and baseline; the kernel gets it before the answer), hand
//! out what this node learned and counted since the last write.
use super::Pipeline;
use crate::{
    baseline::{Baseline, Mode},
    identity::Phase,
    judge::Adopted,
    lifecycle::ClusterRequest,
};

impl Pipeline {
    pub(super) fn cluster(&mut self, request: ClusterRequest) {
        match request {
            ClusterRequest::Adopt { phase, mode, baseline, reply } => {
                let result = self.adopt(phase, mode, *baseline);
                let _ = reply.send(result);
            }
            ClusterRequest::Take { phase, reply } => {
                let delta = self.judge.delta(phase);
                let _ = reply.send((delta, self.judge.take_pending(phase)));
            }
            ClusterRequest::GiveBack { phase, evidence } => self.judge.give_back(phase, evidence),
        }
    }

    fn adopt(&mut self, phase: Phase, mode: Mode, baseline: Baseline) -> Result<Adopted, String> {
        let adopted = self.judge.adopt(phase, mode, baseline).map_err(|e| e.to_string())?;
        if adopted.before != mode || adopted.baseline_changed {
            self.enforce_phase(phase).map_err(|e| e.to_string())?;
        }
        Ok(adopted)
    }
}
