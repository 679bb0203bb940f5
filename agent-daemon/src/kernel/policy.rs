//! Writing a phase's enforcement policy into the kernel maps, without a moment in which
//! the kernel would refuse what the new policy allows: new entries first, stale ones after,
//! and the mode last when entering enforce (first when leaving it).
use agent_common::{
    names::maps,
    policy::{EgressKey, MODE_ENFORCE, PathKey, PhasePolicy},
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
        let path_key = |&(kind, hash): &(u32, u64)| PathKey {
            phase: phase as u16,
            _pad: 0,
            kind,
            path_hash: hash,
        };
        for entry in &policy.paths {
            self.allowed_paths.insert(path_key(entry), 1, 0).map_err(at(maps::ALLOWED_PATHS))?;
        }
        for (bits, key) in &policy.egress {
            self.allowed_egress
                .insert(&Key::new(*bits, *key), 1, 0)
                .map_err(at(maps::ALLOWED_EGRESS))?;
        }
        for key in &policy.sockets {
            self.allowed_sockets.insert(key, 1, 0).map_err(at(maps::ALLOWED_SOCKETS))?;
        }
        let stale_paths: Vec<PathKey> = self
            .allowed_paths
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.phase == phase as u16 && !policy.paths.contains(&(k.kind, k.path_hash)))
            .collect();
        for key in stale_paths {
            self.allowed_paths.remove(&key).map_err(at(maps::ALLOWED_PATHS))?;
        }
        let stale_egress: Vec<Key<EgressKey>> = self
            .allowed_egress
            .keys()
            .filter_map(Result::ok)
            .filter(|k| {
                k.data().phase == phase
                    && !policy
                        .egress
                        .iter()
                        .any(|(bits, key)| *bits == k.prefix_len() && *key == k.data())
            })
            .collect();
        for key in stale_egress {
            self.allowed_egress.remove(&key).map_err(at(maps::ALLOWED_EGRESS))?;
        }
        let stale_sockets: Vec<_> = self
            .allowed_sockets
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.phase == phase as u16 && !policy.sockets.contains(k))
            .collect();
        for key in stale_sockets {
            self.allowed_sockets.remove(&key).map_err(at(maps::ALLOWED_SOCKETS))?;
        }
        let next = PhasePolicy {
            mode: policy.mode,
            flags: policy.flags,
            allowed_syscalls: policy.allowed_syscalls,
            allowed_uring: policy.allowed_uring,
        };
        self.phase_policy.set(index, next, 0).map_err(at(maps::PHASE_POLICY))
    }
}
