//! The maps that say which cgroups and processes belong to which investigation, and the
//! per-slot counters. See `agent_common::tracking` for the layout.
use std::collections::HashMap as StdHashMap;

use agent_common::policy::{EgressKey, PathKey, PhasePolicy, SocketKey};
use agent_common::{
    event::KIND_COUNT,
    names::maps,
    tracking::{
        BY_DAEMON, EgressCounts, FAST_COLLISION, FastEntry, MAX_SYSCALLS, SlotState, SyscallCounts,
        TaskEntry, Tracked, fast_index, task_index,
    },
};
use aya::maps::{Array, HashMap, LpmTrie, MapData, MapError, PerCpuArray, PerCpuValues};

pub struct KernelMaps {
    pub(super) config: Array<MapData, agent_common::config::Config>,
    pub(super) tracked: HashMap<MapData, u64, Tracked>,
    pub(super) fast: Array<MapData, FastEntry>,
    pub(super) tasks: HashMap<MapData, u32, Tracked>,
    pub(super) tasks_fast: Array<MapData, TaskEntry>,
    pub(super) paths: HashMap<MapData, u64, Tracked>,
    pub(super) slots: Array<MapData, SlotState>,
    pub(super) syscalls: PerCpuArray<MapData, SyscallCounts>,
    pub(super) egress: PerCpuArray<MapData, EgressCounts>,
    pub(super) lost: PerCpuArray<MapData, u64>,
    pub(super) phase_policy: Array<MapData, PhasePolicy>,
    pub(super) allowed_paths: HashMap<MapData, PathKey, u8>,
    pub(super) allowed_egress: LpmTrie<MapData, EgressKey, u8>,
    pub(super) allowed_sockets: HashMap<MapData, SocketKey, u8>,
    pub(super) allowed_names: HashMap<MapData, agent_common::dns::NameKey, u8>,
    /// Slot -> instance doomed there, shared by every generation (`tracking::DOOMED_SLOTS`).
    pub(super) doomed_by: Array<MapData, u64>,
    /// Entries of `TASKS`.
    pub(super) capacity: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("kernel map {map}: {source}")]
pub struct TrackError {
    pub map: &'static str,
    #[source]
    pub source: MapError,
}

fn at(map: &'static str) -> impl Fn(MapError) -> TrackError {
    move |source| TrackError { map, source }
}

/// What the kernel counted for one investigation slot, summed over CPUs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotCounters {
    /// (counter index, calls), only the counters that are not zero (see
    /// `tracking::count_index`).
    pub syscalls: Vec<(u32, u64)>,
    pub egress_bytes: u64,
    pub egress_packets: u64,
    /// Records lost (ring buffer full) and throttled (over the rate).
    pub lost: u64,
    pub throttled: u64,
    /// Processes and cgroups the kernel refused to track (quota, or a map full).
    pub refused: u64,
    /// Moves of its processes out of its cgroups.
    pub escapes: u64,
    /// Processes the kernel tracks for it now (those it added itself).
    pub tasks: u64,
    /// Cgroups the kernel made tracked for it.
    pub cgroups: u64,
}

fn zeros<T: aya::Pod + Copy>(value: T) -> Result<PerCpuValues<T>, MapError> {
    let cpus = aya::util::nr_cpus().map_err(|(_, e)| MapError::IoError(e))?;
    PerCpuValues::try_from(vec![value; cpus]).map_err(MapError::IoError)
}

impl KernelMaps {
    /// Zero a slot's state and counters before a new investigation uses it.
    pub fn reset_slot(&mut self, slot: u16) -> Result<(), TrackError> {
        let slot = slot as u32;
        self.slots.set(slot, SlotState::empty(), 0).map_err(at(maps::SLOTS))?;
        self.doomed_by.set(slot, 0, 0).map_err(at(maps::DOOMED))?;
        let counts = zeros(SyscallCounts { counts: [0; MAX_SYSCALLS as usize] })
            .map_err(at(maps::SYSCALL_COUNTS))?;
        self.syscalls.set(slot, counts, 0).map_err(at(maps::SYSCALL_COUNTS))?;
        let egress = zeros(EgressCounts::default()).map_err(at(maps::EGRESS))?;
        self.egress.set(slot, egress, 0).map_err(at(maps::EGRESS))?;
        Ok(())
    }

    /// Mark `slot`'s investigation doomed: the kernel kills each of its processes at its next
    /// syscall. (A read-modify-write of the whole slot state: a counter the kernel bumps
    /// meanwhile may lose that one increment; the investigation is being killed.)
    pub fn doom(&mut self, slot: u16, instance: u32) -> Result<(), TrackError> {
        let mut state = self.slots.get(&(slot as u32), 0).map_err(at(maps::SLOTS))?;
        state.doomed = 1;
        self.slots.set(slot as u32, state, 0).map_err(at(maps::SLOTS))?;
        self.doomed_by.set(slot as u32, instance as u64, 0).map_err(at(maps::DOOMED))
    }

    /// Track `cgroup_id` (whose hierarchy path hashes to `path_hash`) as `tracked`.
    pub fn track(
        &mut self,
        cgroup_id: u64,
        path_hash: u64,
        tracked: Tracked,
    ) -> Result<(), TrackError> {
        self.tracked.insert(cgroup_id, tracked, 0).map_err(at(maps::TRACKED))?;
        self.paths.insert(path_hash, tracked, 0).map_err(at(maps::CGROUP_PATHS))?;
        let index = fast_index(cgroup_id);
        let mut entry = self.fast.get(&index, 0).map_err(at(maps::FAST))?;
        if entry.cgroup_id == 0 || entry.cgroup_id == cgroup_id {
            let collision = entry.tracked.flags & FAST_COLLISION;
            entry = FastEntry { cgroup_id, tracked: Tracked { flags: collision, ..tracked } };
        } else {
            entry.tracked.flags |= FAST_COLLISION;
        }
        self.fast.set(index, entry, 0).map_err(at(maps::FAST))
    }

    /// Register a cgroup path (its hash) before the cgroup exists: the kernel tracks the
    /// cgroup as `tracked` when it is made, and its children in turn.
    pub fn register_path(&mut self, path_hash: u64, tracked: Tracked) -> Result<(), TrackError> {
        self.paths.insert(path_hash, tracked, 0).map_err(at(maps::CGROUP_PATHS))
    }

    /// Track the processes `tgids` (already in a cgroup of `tracked`). Marked as the
    /// daemon's: they do not count against the investigation's quota, which bounds what it
    /// forks.
    pub fn track_tasks(&mut self, tgids: &[u32], tracked: Tracked) -> Result<(), TrackError> {
        let tracked = Tracked { flags: BY_DAEMON, ..tracked };
        for &tgid in tgids {
            if self.tasks.get(&tgid, 0).is_ok() {
                continue; // already tracked (by the kernel, or earlier)
            }
            self.tasks.insert(tgid, tracked, 0).map_err(at(maps::TASKS))?;
            self.set_task_fast(tgid, tracked)?;
        }
        Ok(())
    }

    /// Processes an earlier generation of programs tracked (`entries`, as its map holds
    /// them) that this one's map lacks: added as they were, flags and all.
    pub fn take_over_tasks(&mut self, entries: &[(u32, Tracked)]) -> Result<usize, TrackError> {
        let mut added = 0;
        for &(tgid, tracked) in entries {
            if self.tasks.get(&tgid, 0).is_ok() {
                continue;
            }
            self.tasks.insert(tgid, tracked, 0).map_err(at(maps::TASKS))?;
            self.set_task_fast(tgid, tracked)?;
            added += 1;
        }
        Ok(added)
    }

    fn set_task_fast(&mut self, tgid: u32, tracked: Tracked) -> Result<(), TrackError> {
        let index = task_index(tgid);
        let mut entry = self.tasks_fast.get(&index, 0).map_err(at(maps::TASKS_FAST))?;
        if entry.tgid == 0 || entry.tgid == tgid {
            let collision = entry.tracked.flags & FAST_COLLISION;
            entry = TaskEntry {
                tgid,
                _pad: 0,
                tracked: Tracked { flags: collision | tracked.flags, ..tracked },
            };
        } else {
            entry.tracked.flags |= FAST_COLLISION;
        }
        self.tasks_fast.set(index, entry, 0).map_err(at(maps::TASKS_FAST))
    }

    /// Every instance the maps name (cgroups, registered paths, processes): after a
    /// restart, those no investigation claims are stale.
    pub fn instances(&self) -> std::collections::BTreeSet<u32> {
        let mut out = std::collections::BTreeSet::new();
        out.extend(self.tracked.iter().filter_map(Result::ok).map(|(_, t)| t.instance));
        out.extend(self.paths.iter().filter_map(Result::ok).map(|(_, t)| t.instance));
        out.extend(self.tasks.iter().filter_map(Result::ok).map(|(_, t)| t.instance));
        out
    }

    /// Whether the kernel has doomed `instance` in `slot` (refused or killed something of it
    /// in enforce mode): in this generation's slot state, or, from programs of any
    /// generation, in the shared doomed map.
    pub fn doomed(&self, slot: u16, instance: u32) -> bool {
        self.slots.get(&(slot as u32), 0).is_ok_and(|s| s.doomed != 0)
            || self.doomed_by.get(&(slot as u32), 0).is_ok_and(|i| i == instance as u64)
    }

    /// Stop exempting this process as the daemon's (a clean stop that leaves the programs
    /// running: the id may be reused once this process is gone).
    pub fn forget_daemon(&mut self) -> Result<(), TrackError> {
        let mut config = self.config.get(&0, 0).map_err(at(maps::CONFIG))?;
        config.daemon_tgid = 0;
        self.config.set(0, config, 0).map_err(at(maps::CONFIG))
    }

    /// Forget every process of `instance` still listed (normally none: exits remove them).
    fn untrack_tasks(&mut self, instance: u32) -> Result<(), TrackError> {
        self.remove_tasks(|_, t| t.instance == instance).map(|_| ())
    }

    /// Forget processes listed that no longer live: entries copied from an earlier
    /// generation's map in the moment its programs saw them exit and ours did not. Returns
    /// the processes forgotten.
    pub fn prune_dead_tasks(&mut self) -> Result<Vec<u32>, TrackError> {
        self.remove_tasks(|tgid, _| !crate::host::processes::alive(tgid))
    }

    /// Remove the process entries `gone` picks, and rebuild the fast entries they used
    /// from what stays. Returns the processes removed.
    fn remove_tasks(
        &mut self,
        gone: impl Fn(u32, &Tracked) -> bool,
    ) -> Result<Vec<u32>, TrackError> {
        let entries: Vec<(u32, Tracked)> = self.tasks.iter().filter_map(Result::ok).collect();
        let (gone, kept): (Vec<_>, Vec<_>) = entries.into_iter().partition(|(p, t)| gone(*p, t));
        for (tgid, _) in &gone {
            match self.tasks.remove(tgid) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(e) => return Err(at(maps::TASKS)(e)),
            }
        }
        let mut staying: StdHashMap<u32, Vec<(u32, Tracked)>> = StdHashMap::new();
        for (tgid, tracked) in kept {
            staying.entry(task_index(tgid)).or_default().push((tgid, tracked));
        }
        for index in gone.iter().map(|(tgid, _)| task_index(*tgid)) {
            let entry = match staying.get(&index).map(Vec::as_slice) {
                None | Some([]) => TaskEntry::default(),
                Some([(tgid, tracked)]) => TaskEntry { tgid: *tgid, _pad: 0, tracked: *tracked },
                Some([(tgid, tracked), ..]) => TaskEntry {
                    tgid: *tgid,
                    _pad: 0,
                    tracked: Tracked { flags: FAST_COLLISION, ..*tracked },
                },
            };
            self.tasks_fast.set(index, entry, 0).map_err(at(maps::TASKS_FAST))?;
        }
        Ok(gone.into_iter().map(|(tgid, _)| tgid).collect())
    }

    /// The processes the kernel tracks for `instance` now, wherever they are (a process
    /// that left its cgroups is still here).
    pub fn processes_of(&self, instance: u32) -> Vec<u32> {
        self.tasks
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, t)| t.instance == instance)
            .map(|(tgid, _)| tgid)
            .collect()
    }

    /// The instance of the investigation the kernel tracks process `tgid` for, if any.
    pub fn instance_of(&self, tgid: u32) -> Option<u32> {
        self.tasks.get(&tgid, 0).ok().map(|t| t.instance)
    }

    /// Entries of the process map (all investigations together).
    pub fn process_capacity(&self) -> u32 {
        self.capacity
    }

    /// Stop tracking every cgroup and process of `instance` (those the daemon added and
    /// those the kernel added). Returns the cgroup ids that were tracked.
    pub fn untrack_instance(&mut self, instance: u32) -> Result<Vec<u64>, TrackError> {
        let entries: Vec<(u64, Tracked)> = self.tracked.iter().filter_map(Result::ok).collect();
        let (gone, kept): (Vec<_>, Vec<_>) =
            entries.into_iter().partition(|(_, t)| t.instance == instance);
        for (cgroup_id, _) in &gone {
            match self.tracked.remove(cgroup_id) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(e) => return Err(at(maps::TRACKED)(e)),
            }
        }
        let paths: Vec<u64> = self
            .paths
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, t)| t.instance == instance)
            .map(|(hash, _)| hash)
            .collect();
        for hash in paths {
            match self.paths.remove(&hash) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(e) => return Err(at(maps::CGROUP_PATHS)(e)),
            }
        }
        // Rebuild each FAST entry the removed cgroups used, from what stays tracked.
        let mut staying: StdHashMap<u32, Vec<(u64, Tracked)>> = StdHashMap::new();
        for (cgroup_id, tracked) in kept {
            staying.entry(fast_index(cgroup_id)).or_default().push((cgroup_id, tracked));
        }
        for (cgroup_id, _) in &gone {
            let index = fast_index(*cgroup_id);
            let entry = match staying.get(&index).map(Vec::as_slice) {
                None | Some([]) => FastEntry::default(),
                Some([(id, tracked)]) => FastEntry { cgroup_id: *id, tracked: *tracked },
                Some([(id, tracked), ..]) => FastEntry {
                    cgroup_id: *id,
                    tracked: Tracked { flags: FAST_COLLISION, ..*tracked },
                },
            };
            self.fast.set(index, entry, 0).map_err(at(maps::FAST))?;
        }
        self.untrack_tasks(instance)?;
        Ok(gone.into_iter().map(|(id, _)| id).collect())
    }

    /// The kernel's counters for `slot`, summed over CPUs.
    pub fn counters(&self, slot: u16) -> Result<SlotCounters, TrackError> {
        let per_cpu = self.syscalls.get(&(slot as u32), 0).map_err(at(maps::SYSCALL_COUNTS))?;
        let mut totals = [0u64; MAX_SYSCALLS as usize];
        for cpu in per_cpu.iter() {
            for (total, count) in totals.iter_mut().zip(cpu.counts.iter()) {
                *total += count;
            }
        }
        let egress = self.egress.get(&(slot as u32), 0).map_err(at(maps::EGRESS))?;
        let state = self.slots.get(&(slot as u32), 0).map_err(at(maps::SLOTS))?;
        Ok(SlotCounters {
            lost: state.lost,
            throttled: state.throttled,
            refused: state.refused,
            escapes: state.escapes,
            tasks: (state.tasks as i64).max(0) as u64,
            cgroups: state.cgroups,
            syscalls: totals
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(nr, c)| (nr as u32, *c))
                .collect(),
            egress_bytes: egress.iter().map(|e| e.bytes).sum(),
            egress_packets: egress.iter().map(|e| e.packets).sum(),
        })
    }

    /// Records the kernel could not put in the ring buffer, per record kind.
    pub fn lost(&self) -> Result<[u64; KIND_COUNT as usize], TrackError> {
        let mut lost = [0u64; KIND_COUNT as usize];
        for (kind, slot) in lost.iter_mut().enumerate() {
            let per_cpu = self.lost.get(&(kind as u32), 0).map_err(at(maps::LOST))?;
            *slot = per_cpu.iter().sum();
        }
        Ok(lost)
    }

    /// How many cgroups the kernel tracks now.
    pub fn tracked_cgroups(&self) -> usize {
        self.tracked.keys().filter(Result::is_ok).count()
    }
}
