//! Which pods run each Kubernetes investigation, kept a while after they end so that
//! actions on late verdicts still find their Job.
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use super::pods::JobRef;
use crate::identity::{InvestigationId, Phase};

/// Ended pods are remembered this long.
const KEEP_ENDED: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRecord {
    pub instance: u32,
    pub phase: Phase,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub job: Option<JobRef>,
    pub ended: Option<Instant>,
}

#[derive(Default)]
pub struct Directory(Mutex<HashMap<InvestigationId, Vec<PodRecord>>>);

impl Directory {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<InvestigationId, Vec<PodRecord>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn begin(&self, id: InvestigationId, record: PodRecord) {
        let now = Instant::now();
        let mut map = self.map();
        map.retain(|_, pods| {
            pods.retain(|p| p.ended.is_none_or(|at| now.duration_since(at) < KEEP_ENDED));
            !pods.is_empty()
        });
        map.entry(id).or_default().push(record);
    }

    pub fn end(&self, id: &InvestigationId, instance: u32) {
        if let Some(pods) = self.map().get_mut(id) {
            for pod in pods.iter_mut().filter(|p| p.instance == instance) {
                pod.ended.get_or_insert_with(Instant::now);
            }
        }
    }

    /// The pods of `id` an event of it may come from: the running ones, else the most
    /// recently ended. Events carry the investigation id, not the pod: when several pods
    /// run one investigation (a Job's parallel pods), each of them is named.
    pub fn pods(&self, id: &InvestigationId) -> Vec<PodRecord> {
        let map = self.map();
        let Some(pods) = map.get(id) else { return Vec::new() };
        let running: Vec<PodRecord> = pods.iter().filter(|p| p.ended.is_none()).cloned().collect();
        if !running.is_empty() {
            return running;
        }
        pods.iter().max_by_key(|p| p.ended).cloned().into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(instance: u32, name: &str) -> PodRecord {
        PodRecord {
            instance,
            phase: Phase::Shadow,
            namespace: "agents".into(),
            name: name.into(),
            uid: name.into(),
            job: None,
            ended: None,
        }
    }

    #[test]
    fn running_pods_first_then_the_last_ended() {
        let d = Directory::default();
        let id: InvestigationId = "inv-1".parse().unwrap();
        assert!(d.pods(&id).is_empty());
        d.begin(id.clone(), record(1, "a"));
        d.begin(id.clone(), record(2, "b"));
        assert_eq!(d.pods(&id).len(), 2);
        d.end(&id, 1);
        assert_eq!(d.pods(&id).iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["b"]);
        d.end(&id, 2);
        assert_eq!(d.pods(&id).iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["b"]);
    }
}
