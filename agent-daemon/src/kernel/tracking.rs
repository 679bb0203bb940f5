//! The maps that say which cgroups and processes belong to which investigation, and the
//! per-slot counters. See `agent_common::tracking` for the layout.
use std::collections::HashMap as StdHashMap;

use agent_common::policy::{EgressKey, ExecKey, PhasePolicy};
use agent_common::{
    event::KIND_COUNT,
    names::maps,
    tracking::{
        EgressCounts, FAST_COLLISION, FastEntry, MAX_SYSCALLS, SlotState, SyscallCounts, TaskEntry,
        Tracked, fast_index, task_index,
    },
};
use aya::maps::{Array, HashMap, LpmTrie, MapData, MapError, PerCpuArray, PerCpuValues};

pub struct KernelMaps {
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
    pub(super) allowed_execs: HashMap<MapData, ExecKey, u8>,
    pub(super) allowed_egress: LpmTrie<MapData, EgressKey, u8>,
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
    /// (syscall number, calls), only the numbers called at least once.
    pub syscalls: Vec<(u32, u64)>,
    pub egress_bytes: u64,
    pub egress_packets: u64,
}

fn zeros<T: aya::Pod + Copy>(value: T) -> Result<PerCpuValues<T>, MapError> {
    let cpus = aya::util::nr_cpus().map_err(|(_, e)| MapError::IoError(e))?;
    PerCpuValues::try_from(vec![value; cpus]).map_err(MapError::IoError)
}

impl KernelMaps {
    /// Zero a slot's state and counters before a new investigation uses it.
    pub fn reset_slot(&mut self, slot: u16) -> Result<(), TrackError> {
        let slot = slot as u32;
        let state =
            SlotState { seen: [0; (MAX_SYSCALLS / 64) as usize], pending_opens: 0, doomed: 0 };
        self.slots.set(slot, state, 0).map_err(at(maps::SLOTS))?;
        let counts = zeros(SyscallCounts { counts: [0; MAX_SYSCALLS as usize] })
            .map_err(at(maps::SYSCALL_COUNTS))?;
        self.syscalls.set(slot, counts, 0).map_err(at(maps::SYSCALL_COUNTS))?;
        let egress = zeros(EgressCounts::default()).map_err(at(maps::EGRESS))?;
        self.egress.set(slot, egress, 0).map_err(at(maps::EGRESS))?;
        Ok(())
    }

    /// Mark `slot`'s investigation doomed: the kernel kills each of its processes at its next
    /// syscall.
    pub fn doom(&mut self, slot: u16) -> Result<(), TrackError> {
        let mut state = self.slots.get(&(slot as u32), 0).map_err(at(maps::SLOTS))?;
        state.doomed = 1;
        self.slots.set(slot as u32, state, 0).map_err(at(maps::SLOTS))
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

    /// Track the processes `tgids` (already in a cgroup of `tracked`).
    pub fn track_tasks(&mut self, tgids: &[u32], tracked: Tracked) -> Result<(), TrackError> {
        for &tgid in tgids {
            self.tasks.insert(tgid, tracked, 0).map_err(at(maps::TASKS))?;
            let index = task_index(tgid);
            let mut entry = self.tasks_fast.get(&index, 0).map_err(at(maps::TASKS_FAST))?;
            if entry.tgid == 0 || entry.tgid == tgid {
                let collision = entry.tracked.flags & FAST_COLLISION;
                entry =
                    TaskEntry { tgid, _pad: 0, tracked: Tracked { flags: collision, ..tracked } };
            } else {
                entry.tracked.flags |= FAST_COLLISION;
            }
            self.tasks_fast.set(index, entry, 0).map_err(at(maps::TASKS_FAST))?;
        }
        Ok(())
    }

    /// Forget every process of `instance` still listed (normally none: exits remove them).
    fn untrack_tasks(&mut self, instance: u32) -> Result<(), TrackError> {
        let entries: Vec<(u32, Tracked)> = self.tasks.iter().filter_map(Result::ok).collect();
        let (gone, kept): (Vec<_>, Vec<_>) =
            entries.into_iter().partition(|(_, t)| t.instance == instance);
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
        Ok(())
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
        Ok(SlotCounters {
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
