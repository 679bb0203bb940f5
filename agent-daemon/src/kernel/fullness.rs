//! How full the kernel maps shared by every investigation and phase are: what tracks
//! (cgroups, processes, registered cgroup paths) and what enforces (the policy maps).
//! Read at scrape time; each count walks the map's keys.
use agent_common::names::maps;
use aya::maps::{IterableMap, MapData};

use super::tracking::KernelMaps;

/// One map's entries now and the most it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapFullness {
    pub map: &'static str,
    pub entries: usize,
    pub capacity: u32,
}

fn of<K: aya::Pod, V, M: IterableMap<K, V>>(
    map: &'static str,
    m: &M,
    entries: usize,
) -> MapFullness {
    let capacity = capacity(m.map());
    MapFullness { map, entries, capacity }
}

fn capacity(map: &MapData) -> u32 {
    map.info().map_or(0, |info| info.max_entries())
}

impl KernelMaps {
    /// Entries and capacity of `PADDOCK_TRACKED`, `PADDOCK_TASKS`, `PADDOCK_CGROUP_PATHS`
    /// and the four policy maps.
    pub fn fullness(&self) -> Vec<MapFullness> {
        vec![
            of(maps::TRACKED, &self.tracked, self.tracked.keys().filter(Result::is_ok).count()),
            of(maps::TASKS, &self.tasks, self.tasks.keys().filter(Result::is_ok).count()),
            of(maps::CGROUP_PATHS, &self.paths, self.paths.keys().filter(Result::is_ok).count()),
            of(
                maps::ALLOWED_PATHS,
                &self.allowed_paths,
                self.allowed_paths.keys().filter(Result::is_ok).count(),
            ),
            of(
                maps::ALLOWED_EGRESS,
                &self.allowed_egress,
                self.allowed_egress.keys().filter(Result::is_ok).count(),
            ),
            of(
                maps::ALLOWED_SOCKETS,
                &self.allowed_sockets,
                self.allowed_sockets.keys().filter(Result::is_ok).count(),
            ),
            of(
                maps::ALLOWED_NAMES,
                &self.allowed_names,
                self.allowed_names.keys().filter(Result::is_ok).count(),
            ),
        ]
    }
}
