//! Slot and instance allocation for running investigations.
use std::path::PathBuf;

use agent_common::tracking::MAX_SLOTS;
use chrono::{DateTime, Utc};

use crate::identity::{InvestigationId, Phase};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    pub id: InvestigationId,
    pub phase: Phase,
    pub slot: u16,
    /// Never reused while the daemon runs; tells apart runs that reuse a slot.
    pub instance: u32,
    pub cgroup: PathBuf,
    pub source: &'static str,
    pub started: DateTime<Utc>,
    /// The pod it is, for a Kubernetes investigation.
    pub pod: Option<PodOwner>,
    /// The uid of the `paddock run` client that started it (a local investigation): it may
    /// rejoin it after a daemon restart.
    pub client_uid: Option<u32>,
    /// Adopted from an earlier daemon (begun there, not here).
    pub resumed: bool,
}

/// A pod and its Job, as `paddock status` and the Kubernetes actions name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodOwner {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub job: Option<String>,
    /// The agent that runs it (see `PodView::agent`).
    pub agent: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("investigation {0} is already running on this node")]
    AlreadyRunning(InvestigationId),
    #[error("no free investigation slot: {0} investigations are running, the most one node tracks")]
    Full(usize),
    #[error("slot {slot} is not free (instance {instance} wants it)")]
    SlotTaken { slot: u16, instance: u32 },
}

pub struct Registry {
    slots: Vec<Option<Active>>,
    next_instance: u32,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::starting_at(1)
    }
}

impl Registry {
    /// A registry whose first instance number is `first` (numbers below it were handed out
    /// by earlier daemons).
    pub fn starting_at(first: u32) -> Registry {
        Registry { slots: vec![None; MAX_SLOTS as usize], next_instance: first.max(1) }
    }

    /// Put back an investigation an earlier daemon ran, in its slot, with its instance.
    pub fn restore(&mut self, active: Active) -> Result<(), RegisterError> {
        let taken = RegisterError::SlotTaken { slot: active.slot, instance: active.instance };
        let Some(entry) = self.slots.get_mut(active.slot as usize) else { return Err(taken) };
        if entry.is_some() {
            return Err(taken);
        }
        if active.instance >= self.next_instance {
            self.next_instance = active.instance.wrapping_add(1).max(1);
        }
        *entry = Some(active);
        Ok(())
    }

    /// Make `instance`'s entry a fresh one of this daemon (claimed by its source).
    pub fn claim(&mut self, slot: u16, instance: u32) {
        if let Some(Some(active)) = self.slots.get_mut(slot as usize)
            && active.instance == instance
        {
            active.resumed = false;
        }
    }

    /// Reserve a slot for `id`. The cgroup may be filled in later with [`Registry::set_cgroup`].
    #[cfg(test)]
    pub fn allocate(
        &mut self,
        id: InvestigationId,
        phase: Phase,
        source: &'static str,
    ) -> Result<Active, RegisterError> {
        self.allocate_with(id, phase, source, None)
    }

    /// Reserve a slot for `id`; with `pod`, other runs of `id` may be running (Kubernetes
    /// puts one investigation id on every pod of a Job, retries and parallel pods alike).
    pub fn allocate_with(
        &mut self,
        id: InvestigationId,
        phase: Phase,
        source: &'static str,
        pod: Option<PodOwner>,
    ) -> Result<Active, RegisterError> {
        if pod.is_none() && self.slots.iter().flatten().any(|a| a.id == id) {
            return Err(RegisterError::AlreadyRunning(id));
        }
        let slot = self
            .slots
            .iter()
            .position(Option::is_none)
            .ok_or(RegisterError::Full(self.slots.len()))?;
        let instance = self.next_instance;
        self.next_instance = self.next_instance.wrapping_add(1).max(1);
        let active = Active {
            id,
            phase,
            slot: slot as u16,
            instance,
            cgroup: PathBuf::new(),
            source,
            started: Utc::now(),
            pod,
            client_uid: None,
            resumed: false,
        };
        self.slots[slot] = Some(active.clone());
        Ok(active)
    }

    pub fn set_client(&mut self, slot: u16, instance: u32, uid: u32) {
        if let Some(Some(active)) = self.slots.get_mut(slot as usize)
            && active.instance == instance
        {
            active.client_uid = Some(uid);
        }
    }

    pub fn set_cgroup(&mut self, slot: u16, cgroup: PathBuf) {
        if let Some(Some(active)) = self.slots.get_mut(slot as usize) {
            active.cgroup = cgroup;
        }
    }

    /// Free `slot` if it still holds `instance`.
    pub fn release(&mut self, slot: u16, instance: u32) {
        if let Some(entry) = self.slots.get_mut(slot as usize)
            && entry.as_ref().is_some_and(|a| a.instance == instance)
        {
            *entry = None;
        }
    }

    pub fn active(&self) -> impl Iterator<Item = &Active> {
        self.slots.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> InvestigationId {
        s.parse().unwrap()
    }

    #[test]
    fn slots_are_reused_but_instances_never() {
        let mut r = Registry::default();
        let a = r.allocate(id("a"), Phase::Shadow, "local").unwrap();
        let b = r.allocate(id("b"), Phase::Shadow, "local").unwrap();
        assert_ne!(a.slot, b.slot);
        r.release(a.slot, a.instance);
        let c = r.allocate(id("c"), Phase::Shadow, "local").unwrap();
        assert_eq!(c.slot, a.slot);
        assert!(c.instance > b.instance);
        // A stale release (old instance) leaves the new holder alone.
        r.release(a.slot, a.instance);
        assert_eq!(r.active().count(), 2);
    }

    #[test]
    fn pods_may_share_an_investigation_id() {
        let mut r = Registry::default();
        let pod = |name: &str| PodOwner {
            agent: "a".into(),
            namespace: "agents".into(),
            name: name.into(),
            uid: name.into(),
            job: Some("inv-a".into()),
        };
        let a = r.allocate_with(id("a"), Phase::Shadow, "kubernetes", Some(pod("p1"))).unwrap();
        let b = r.allocate_with(id("a"), Phase::Shadow, "kubernetes", Some(pod("p2"))).unwrap();
        assert_ne!(a.slot, b.slot);
        assert_eq!(b.pod.as_ref().map(|p| p.name.as_str()), Some("p2"));
        assert!(r.allocate(id("a"), Phase::Shadow, "local").is_err(), "a local run may not");
    }

    #[test]
    fn one_run_per_investigation_and_a_bounded_number() {
        let mut r = Registry::default();
        r.allocate(id("a"), Phase::Shadow, "local").unwrap();
        assert_eq!(
            r.allocate(id("a"), Phase::Autonomous, "local"),
            Err(RegisterError::AlreadyRunning(id("a")))
        );
        for i in 1..MAX_SLOTS {
            r.allocate(id(&format!("x{i}")), Phase::Shadow, "local").unwrap();
        }
        assert_eq!(
            r.allocate(id("overflow"), Phase::Shadow, "local"),
            Err(RegisterError::Full(MAX_SLOTS as usize))
        );
    }
}
