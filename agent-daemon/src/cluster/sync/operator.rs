//! What operators change through a node (`paddock phase mode`, `baseline import`,
//! `baseline reset`): the phase's object, read again and retried on a conflict, then taken
//! in by this node before the answer.
use std::sync::atomic::Ordering;

use kube::api::{DynamicObject, PostParams};
use tokio::sync::oneshot;

use super::{MAX_ATTEMPTS, Phases, code};
use crate::{
    baseline::{Baseline, Mode, evidence::Evidence, file},
    cluster::object::{self, PhaseObject},
    identity::Phase,
    lifecycle::Lifecycle,
};

impl Phases {
    /// Change `phase`'s object with `change` (read again and retried on a conflict), and
    /// take the result in; when `reset_status`, its status starts over too.
    async fn change(
        &self,
        phase: Phase,
        mut change: impl FnMut(&PhaseObject) -> DynamicObject,
        reset_status: bool,
    ) -> Result<PhaseObject, String> {
        let name = self.name(phase);
        for _ in 0..MAX_ATTEMPTS {
            let current = self.get(phase).await?;
            let read = object::read(&current, phase)?;
            let mut written =
                match self.api.replace(&name, &PostParams::default(), &change(&read)).await {
                    Ok(o) => o,
                    Err(e) if code(&e) == Some(409) => {
                        self.stats.conflicts.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Err(e) => {
                        return Err(self.failed(&format!("cannot write trustphase/{name}"), &e));
                    }
                };
            self.stats.baseline_writes.fetch_add(1, Ordering::Relaxed);
            // The status follows the new generation (and starts over on a reset).
            for _ in 0..MAX_ATTEMPTS {
                let read = object::read(&written, phase)?;
                let status = self.status_of(&read, &Evidence::default(), reset_status);
                let with = object::with_status(&written, &status);
                match self.api.replace_status(&name, &PostParams::default(), &with).await {
                    Ok(o) => {
                        self.stats.status_writes.fetch_add(1, Ordering::Relaxed);
                        written = o;
                        break;
                    }
                    Err(e) if code(&e) == Some(409) => {
                        self.stats.conflicts.fetch_add(1, Ordering::Relaxed);
                        written = self.get(phase).await?;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot write the phase's status");
                        break;
                    }
                }
            }
            let read = object::read(&written, phase)?;
            self.take_in(written).await?;
            return Ok(read);
        }
        Err(format!("trustphase/{name}: still conflicting after {MAX_ATTEMPTS} tries"))
    }

    /// `paddock phase mode`: this node's learning goes in first, then the mode.
    pub async fn set_mode(&self, phase: Phase, mode: Mode) -> Result<String, String> {
        let _writing = self.writing.lock().await;
        if let Err(e) = self.send(phase).await {
            tracing::warn!(phase = %phase, error = %e, "cannot send this node's learning first");
        }
        let mut before = None;
        let read = self
            .change(
                phase,
                |read| {
                    before.get_or_insert(read.mode);
                    let mut o = read.object.clone();
                    if let Some(spec) = o.data.get_mut("spec").and_then(|s| s.as_object_mut()) {
                        spec.insert("mode".into(), mode.as_str().into());
                    }
                    o
                },
                false,
            )
            .await;
        let read = read?;
        Ok(format!(
            "{phase}: {} -> {mode} in the cluster (trustphase/{}, revision {}); every node \
             takes it in, this one has",
            before.unwrap_or(read.mode),
            self.name(phase),
            read.generation
        ))
    }

    /// `paddock baseline import`: the file, checked, becomes the object's baseline.
    pub async fn import(&self, phase: Phase, text: &str, source: &str) -> Result<String, String> {
        let imported = file::parse(text, source).map_err(|e| e.to_string())?;
        if imported.phase != phase {
            return Err(format!(
                "{source} holds the {} baseline, not the {phase} one: refused",
                imported.phase
            ));
        }
        let _writing = self.writing.lock().await;
        let read = self
            .change(phase, |read| object::with_spec(&read.object, &imported, None), false)
            .await?;
        Ok(format!(
            "{phase} baseline from {source} is in force in the cluster (trustphase/{}, \
             revision {})",
            self.name(phase),
            read.generation
        ))
    }

    /// `paddock baseline reset`: the object's baseline emptied, its mode back to learn,
    /// its evidence started over.
    pub async fn reset(&self, phase: Phase) -> Result<String, String> {
        let _writing = self.writing.lock().await;
        // This node forgets what it learned and counted first, so that none of it comes back.
        let (tx, rx) = oneshot::channel();
        let request = crate::lifecycle::admin::AdminRequest::Reset { phase };
        self.lifecycle.send(Lifecycle::Admin(request, tx)).await.map_err(|_| "stopping")?;
        rx.await.map_err(|_| "stopping")?.map_err(|e| e.to_string())?;
        let empty = Baseline::empty(phase);
        let read = self
            .change(phase, |read| object::with_spec(&read.object, &empty, Some(Mode::Learn)), true)
            .await?;
        Ok(format!(
            "{phase} baseline reset in the cluster (trustphase/{}, revision {}); the phase \
             learns again",
            self.name(phase),
            read.generation
        ))
    }
}
