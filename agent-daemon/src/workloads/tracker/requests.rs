//! What the tracker asks of the pipeline besides beginning and ending investigations:
//! judging counters (now, or as a periodic sample), a tampering process, operator requests.
use tokio::sync::oneshot;

use super::{Active, Lifecycle, Tracker};
use crate::lifecycle::admin::{AdminError, AdminReply, AdminRequest};

impl Tracker {
    /// Send every running investigation's counters to the pipeline (envelope checks).
    pub async fn sample(&self) {
        let at = std::time::Instant::now();
        for active in self.active() {
            let Ok(counters) = self.counters(active.slot) else { continue };
            let sample = Lifecycle::Sample {
                slot: active.slot,
                instance: active.instance,
                counters,
                at,
                done: None,
            };
            if self.lifecycle.send(sample).await.is_err() {
                return;
            }
        }
    }

    /// Have everything the kernel knows of `active` judged now: every record written so far
    /// (a flush), and its counters, among them what the kernel could not report (records
    /// lost, processes untracked). For the answer to `paddock run`, which must know whether
    /// the kernel failed the investigation closed.
    pub async fn judge_now(&self, active: &Active) {
        self.flush().await;
        let Ok(counters) = self.counters(active.slot) else { return };
        let (done, judged) = oneshot::channel();
        let sample = Lifecycle::Sample {
            slot: active.slot,
            instance: active.instance,
            counters,
            at: std::time::Instant::now(),
            done: Some(done),
        };
        if self.lifecycle.send(sample).await.is_ok() {
            let _ = judged.await;
        }
    }

    /// A process of `active` asked paddock for something it may not have (`what`): judged
    /// as a deviation of the investigation.
    pub async fn tampered(&self, active: &Active, what: String) {
        let message = Lifecycle::Tamper { slot: active.slot, instance: active.instance, what };
        let _ = self.lifecycle.send(message).await;
    }

    /// Hand an operator request to the pipeline and wait for its answer.
    pub async fn admin(&self, request: AdminRequest) -> Result<AdminReply, AdminError> {
        let (reply, answer) = oneshot::channel();
        self.lifecycle
            .send(Lifecycle::Admin(request, reply))
            .await
            .map_err(|_| AdminError::Stopping)?;
        answer.await.map_err(|_| AdminError::Stopping)?
    }
}
