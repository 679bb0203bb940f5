//! Writing a phase's enforcement policy into the kernel maps, without a moment in which
//! the kernel would refuse what the new policy allows: new entries first, stale ones after,
//! and the mode last when entering enforce (first when leaving it).
use agent_common::{
    names::maps,
    policy::{EgressKey, ExecKey, MODE_ENFORCE, PhasePolicy},
};
use aya::maps::{MapError, lpm_trie::Key};

use super::tracking::{KernelMaps, TrackError};
use crate::enforce::policy::KernelPolicy;

fn at(map: &'static str) -> impl Fn(MapError) -> TrackError {
    move |source| TrackError { map, source }
}

impl KernelMaps {
    pub fn push_policy(&mut self, phase: u8, policy: &KernelPolicy) -> Result<(), TrackError> {
        let index = phase as u32;
        let mut current = self.phase_policy.get(&index, 0).map_err(at(maps::PHASE_POLICY))?;
        if policy.mode != MODE_ENFORCE {
            current.mode = policy.mode;
            self.phase_policy.set(index, current, 0).map_err(at(maps::PHASE_POLICY))?;
        }
        for &hash in &policy.exec_hashes {
            let key = ExecKey { phase: phase as u32, _pad: 0, path_hash: hash };
            self.allowed_execs.insert(key, 1, 0).map_err(at(maps::ALLOWED_EXECS))?;
        }
        for (bits, key) in &policy.egress {
            self.allowed_egress
                .insert(&Key::new(*bits, *key), 1, 0)
                .map_err(at(maps::ALLOWED_EGRESS))?;
        }
        let stale_execs: Vec<ExecKey> = self
            .allowed_execs
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.phase == phase as u32 && !policy.exec_hashes.contains(&k.path_hash))
            .collect();
        for key in stale_execs {
            self.allowed_execs.remove(&key).map_err(at(maps::ALLOWED_EXECS))?;
        }
        let wanted: Vec<(u32, EgressKey)> = policy.egress.clone();
        let stale_egress: Vec<Key<EgressKey>> = self
            .allowed_egress
            .keys()
            .filter_map(Result::ok)
            .filter(|k| {
                k.data().phase == phase
                    && !wanted.iter().any(|(bits, key)| *bits == k.prefix_len() && *key == k.data())
            })
            .collect();
        for key in stale_egress {
            self.allowed_egress.remove(&key).map_err(at(maps::ALLOWED_EGRESS))?;
        }
        let next = PhasePolicy {
            mode: policy.mode,
            exec_patterns: policy.exec_patterns as u32,
            allowed_syscalls: policy.allowed_syscalls,
        };
        self.phase_policy.set(index, next, 0).map_err(at(maps::PHASE_POLICY))
    }
}
