//! Writing a phase's enforcement policy into the kernel maps, without a moment in which
//! the kernel would refuse what the new policy allows: new entries first, stale ones after,
//! and the mode last when entering enforce (first when leaving it).
//!
//! The allow-lists are shared by the phases that enforce and sized from the configuration
//! (`kernel.policy_*`). A set that does not fit is never left half in force (that would
//! kill baseline behaviour): the phase's policy is marked incomplete for that set
//! (`INCOMPLETE_*`) before any of its entries go, the kernel stops deciding on it, and the
//! daemon judges it from the records, killing after the fact. A full map never fails the
//! push, so it never stops the daemon from starting.
use std::collections::BTreeSet;

use agent_common::{
    dns::NameKey,
    names::maps,
    policy::{
        EgressKey, INCOMPLETE_EGRESS, INCOMPLETE_EXECS, INCOMPLETE_NAMES, INCOMPLETE_SOCKETS,
        INCOMPLETE_UNIX, MODE_ENFORCE, PATH_EXEC, PATH_UNIX, PathKey, PhasePolicy, SocketKey,
    },
    tracking::SYSCALL_IDS,
};
use aya::{
    maps::{MapError, lpm_trie::Key},
    sys::SyscallError,
};

use super::tracking::{KernelMaps, TrackError};

/// A phase's policy as the kernel's maps hold it (built from a baseline by
/// `enforce::policy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelPolicy {
    pub mode: u32,
    pub flags: u32,
    pub allowed_syscalls: [u64; (SYSCALL_IDS / 64) as usize],
    pub allowed_uring: u64,
    /// (`PATH_EXEC` or `PATH_UNIX`, FNV-1a of the entry): executables and unix sockets
    /// allowed. Entries are already generalised; the kernel hashes what it sees the same
    /// way (`agent_common::shape`).
    pub paths: BTreeSet<(u32, u64)>,
    /// (prefix length in bits, key) per egress rule.
    pub egress: Vec<(u32, EgressKey)>,
    pub sockets: BTreeSet<SocketKey>,
    /// Names egress rules allow (with protocol and port) and names the phase may ask for,
    /// by hash (`agent_common::dns`).
    pub names: BTreeSet<NameKey>,
}

/// Entries of each policy map (`kernel.policy_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyMaps {
    pub paths: u32,
    pub egress: u32,
    pub sockets: u32,
    pub names: u32,
}

impl PolicyMaps {
    pub fn of(config: &super::config::KernelConfig) -> PolicyMaps {
        PolicyMaps {
            paths: config.policy_paths,
            egress: config.policy_egress,
            sockets: config.policy_sockets,
            names: config.policy_names,
        }
    }
}

fn at(map: &'static str) -> impl Fn(MapError) -> TrackError {
    move |source| TrackError { map, source }
}

/// Whether an insert failed because the map is full (a hash map says E2BIG, an LPM trie
/// ENOSPC).
fn full(e: &MapError) -> bool {
    matches!(e, MapError::SyscallError(SyscallError { io_error, .. })
        if matches!(io_error.raw_os_error(), Some(libc::E2BIG | libc::ENOSPC)))
}

/// Insert each of `entries`; `Ok(false)` when the map filled up on the way.
fn insert_all<T>(
    entries: impl IntoIterator<Item = T>,
    mut insert: impl FnMut(T) -> Result<(), MapError>,
    map: &'static str,
) -> Result<bool, TrackError> {
    for entry in entries {
        match insert(entry) {
            Ok(()) => {}
            Err(e) if full(&e) => return Ok(false),
            Err(e) => return Err(at(map)(e)),
        }
    }
    Ok(true)
}

fn removed(result: Result<(), MapError>, map: &'static str) -> Result<(), TrackError> {
    match result {
        Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
        Err(e) => Err(at(map)(e)),
    }
}

impl KernelMaps {
    /// Put `policy` in force for `phase`. Returns the `INCOMPLETE_*` bits of the sets that
    /// did not fit their map (the kernel does not decide those for the phase).
    pub fn push_policy(&mut self, phase: u8, policy: &KernelPolicy) -> Result<u32, TrackError> {
        let index = phase as u32;
        let mut current = self.phase_policy.get(&index, 0).map_err(at(maps::PHASE_POLICY))?;
        if policy.mode != MODE_ENFORCE {
            current.mode = policy.mode;
            self.phase_policy.set(index, current, 0).map_err(at(maps::PHASE_POLICY))?;
        }
        let path_key =
            |kind: u32, hash: u64| PathKey { phase: phase as u16, _pad: 0, kind, path_hash: hash };
        let mut incomplete = 0;
        // Executables, then unix sockets (one map): a kind that does not fit gives its room
        // back before the next is tried.
        for (kind, bit) in [(PATH_EXEC, INCOMPLETE_EXECS), (PATH_UNIX, INCOMPLETE_UNIX)] {
            let wanted = policy.paths.iter().filter(|(k, _)| *k == kind);
            let map = &mut self.allowed_paths;
            let fits = insert_all(
                wanted,
                |&(kind, hash)| map.insert(path_key(kind, hash), 1, 0),
                maps::ALLOWED_PATHS,
            )?;
            if !fits {
                incomplete |= bit;
                self.mark_incomplete(index, &mut current, bit)?;
                self.remove_paths(phase, |k| k.kind == kind)?;
            }
        }
        let trie = &mut self.allowed_egress;
        let fits = insert_all(
            &policy.egress,
            |(bits, key)| trie.insert(&Key::new(*bits, *key), 1, 0),
            maps::ALLOWED_EGRESS,
        )?;
        if !fits {
            incomplete |= INCOMPLETE_EGRESS;
            self.mark_incomplete(index, &mut current, INCOMPLETE_EGRESS)?;
            self.remove_egress(phase, |_| true)?;
        }
        let sockets = &mut self.allowed_sockets;
        let fits =
            insert_all(&policy.sockets, |key| sockets.insert(key, 1, 0), maps::ALLOWED_SOCKETS)?;
        if !fits {
            incomplete |= INCOMPLETE_SOCKETS;
            self.mark_incomplete(index, &mut current, INCOMPLETE_SOCKETS)?;
            self.remove_sockets(phase, |_| true)?;
        }
        let names = &mut self.allowed_names;
        let fits = insert_all(&policy.names, |key| names.insert(key, 1, 0), maps::ALLOWED_NAMES)?;
        if !fits {
            incomplete |= INCOMPLETE_NAMES;
            self.mark_incomplete(index, &mut current, INCOMPLETE_NAMES)?;
            self.remove_names(phase, |_| true)?;
        }
        // What the new policy does not hold (in a set that fit) goes now.
        self.remove_paths(phase, |k| !policy.paths.contains(&(k.kind, k.path_hash)))?;
        self.remove_egress(phase, |k| {
            !policy.egress.iter().any(|(bits, key)| *bits == k.prefix_len() && *key == k.data())
        })?;
        self.remove_sockets(phase, |k| !policy.sockets.contains(k))?;
        self.remove_names(phase, |k| !policy.names.contains(k))?;
        let next = PhasePolicy {
            mode: policy.mode,
            flags: policy.flags | incomplete,
            allowed_syscalls: policy.allowed_syscalls,
            allowed_uring: policy.allowed_uring,
        };
        self.phase_policy.set(index, next, 0).map_err(at(maps::PHASE_POLICY))?;
        Ok(incomplete)
    }

    /// Tell the kernel to stop deciding on a set (`bit`) before its entries go.
    fn mark_incomplete(
        &mut self,
        index: u32,
        current: &mut PhasePolicy,
        bit: u32,
    ) -> Result<(), TrackError> {
        current.flags |= bit;
        self.phase_policy.set(index, *current, 0).map_err(at(maps::PHASE_POLICY))
    }

    fn remove_paths(
        &mut self,
        phase: u8,
        stale: impl Fn(&PathKey) -> bool,
    ) -> Result<(), TrackError> {
        let keys: Vec<PathKey> = self
            .allowed_paths
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.phase == phase as u16 && stale(k))
            .collect();
        for key in keys {
            removed(self.allowed_paths.remove(&key), maps::ALLOWED_PATHS)?;
        }
        Ok(())
    }

    fn remove_egress(
        &mut self,
        phase: u8,
        stale: impl Fn(&Key<EgressKey>) -> bool,
    ) -> Result<(), TrackError> {
        let keys: Vec<Key<EgressKey>> = self
            .allowed_egress
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.data().phase == phase && stale(k))
            .collect();
        for key in keys {
            removed(self.allowed_egress.remove(&key), maps::ALLOWED_EGRESS)?;
        }
        Ok(())
    }

    fn remove_names(
        &mut self,
        phase: u8,
        stale: impl Fn(&NameKey) -> bool,
    ) -> Result<(), TrackError> {
        let keys: Vec<NameKey> = self
            .allowed_names
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.phase == phase && stale(k))
            .collect();
        for key in keys {
            removed(self.allowed_names.remove(&key), maps::ALLOWED_NAMES)?;
        }
        Ok(())
    }

    fn remove_sockets(
        &mut self,
        phase: u8,
        stale: impl Fn(&agent_common::policy::SocketKey) -> bool,
    ) -> Result<(), TrackError> {
        let keys: Vec<_> = self
            .allowed_sockets
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.phase == phase as u16 && stale(k))
            .collect();
        for key in keys {
            removed(self.allowed_sockets.remove(&key), maps::ALLOWED_SOCKETS)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_map_is_told_apart_from_other_failures() {
        let err = |errno| {
            MapError::SyscallError(SyscallError {
                call: "bpf_map_update_elem",
                io_error: std::io::Error::from_raw_os_error(errno),
            })
        };
        assert!(full(&err(libc::E2BIG)), "hash map full");
        assert!(full(&err(libc::ENOSPC)), "LPM trie full");
        assert!(!full(&err(libc::EPERM)));
        assert!(!full(&MapError::KeyNotFound));
        let mut seen = Vec::new();
        let fits = insert_all(
            [1, 2, 3],
            |n| {
                seen.push(n);
                if n == 2 { Err(err(libc::E2BIG)) } else { Ok(()) }
            },
            "M",
        )
        .unwrap();
        assert!(!fits && seen == [1, 2], "stops at the first full insert");
        let other = insert_all([1], |_| Err(err(libc::EPERM)), "M").unwrap_err();
        assert_eq!(other.map, "M");
    }
}
