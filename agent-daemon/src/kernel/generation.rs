//! Handing over from what an earlier daemon left pinned (see `pins`): copying the state of
//! older maps of this layout version into fresh ones, retiring older generations of
//! programs once this one is attached and filled, and what a stop leaves behind.
use std::path::{Path, PathBuf};

use agent_common::{names::maps, tracking::Tracked};
use aya::maps::{HashMap, Map, MapData, RingBuf};

use super::{
    carry,
    load::Kernel,
    pins::{self, Layout},
};

/// Maps whose entries are an earlier generation's state, copied into fresh maps of the same
/// version. Not copied: the ring buffer (drained instead), the tail calls (each generation
/// sets its own), the configuration (written at load) and per-CPU scratch space.
const CARRIED: [&str; 17] = [
    maps::TRACKED,
    maps::FAST,
    maps::TASKS,
    maps::TASKS_FAST,
    maps::CGROUP_PATHS,
    maps::SLOTS,
    maps::SYSCALL_COUNTS,
    maps::EGRESS,
    maps::RATE,
    maps::READS,
    maps::EXEC_ARGS,
    maps::OPEN_ARGS,
    maps::LOST,
    maps::PHASE_POLICY,
    maps::ALLOWED_PATHS,
    maps::ALLOWED_EGRESS,
    maps::ALLOWED_SOCKETS,
];

/// What retiring earlier generations gave back.
#[derive(Default)]
pub struct Retired {
    /// Generations of programs detached.
    pub links: Vec<PathBuf>,
    /// Map directories unpinned.
    pub maps: Vec<PathBuf>,
    /// Ring buffers of earlier maps of this version, with the records their programs wrote
    /// that no daemon read: for the reader to drain once.
    pub rings: Vec<RingBuf<MapData>>,
    /// Earlier maps of another version: what their programs wrote meanwhile is not read.
    pub unreadable: Vec<PathBuf>,
}

impl Kernel {
    /// Copy every state map of the older map directories of this version into ours (fresh).
    pub(super) fn carry_previous(&mut self, layout: Layout) {
        let ours = self.generation.maps_dir.clone();
        let sources: Vec<PathBuf> = self
            .generation
            .previous
            .maps
            .iter()
            .filter(|(_, l)| l.is_some_and(|l| l.version == layout.version))
            .map(|(dir, _)| dir.clone())
            .collect();
        for dir in sources {
            let mut copied = 0;
            for name in CARRIED {
                match carry::copy(&dir.join(name), &ours.join(name), true) {
                    Ok(done) => {
                        copied += done.entries;
                        if done.left > 0 {
                            tracing::warn!(map = name, from = %dir.display(), left = done.left,
                                "entries of an earlier map did not fit in the new one");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot carry a map's entries over"),
                }
            }
            tracing::info!(from = %dir.display(), to = %ours.display(), entries = copied,
                "carried the kernel state of an earlier map layout over");
            self.generation.carried_from.push(dir);
        }
    }

    /// Once this generation is attached and its maps hold every running investigation:
    /// detach the programs of earlier generations and unpin their maps. Until now both
    /// judged; from now on only this one does. Processes tracked by an earlier map of
    /// this version after its entries were copied (forks in the moment before this
    /// generation attached) are taken over first.
    pub fn retire_previous(&mut self) -> Retired {
        let mut retired = Retired::default();
        let previous = std::mem::take(&mut self.generation.previous);
        for dir in &self.generation.carried_from.clone() {
            self.take_over_tasks(&dir.join(maps::TASKS));
        }
        for dir in previous.links {
            match pins::remove(dir.as_path()) {
                Ok(()) => retired.links.push(dir),
                Err(e) => {
                    tracing::error!(error = %e, "cannot detach an earlier generation of programs")
                }
            }
        }
        for (dir, layout) in previous.maps {
            let same_version =
                layout.is_some_and(|l| l.version == agent_common::names::LAYOUT_VERSION);
            if same_version {
                match ring_at(&dir.join(maps::EVENTS)) {
                    Ok(ring) => retired.rings.push(ring),
                    Err(e) => {
                        tracing::warn!(error = %e, dir = %dir.display(), "cannot open an earlier ring buffer to drain it")
                    }
                }
            } else {
                retired.unreadable.push(dir.clone());
            }
            match pins::remove(&dir) {
                Ok(()) => retired.maps.push(dir),
                Err(e) => tracing::error!(error = %e, "cannot unpin an earlier generation's maps"),
            }
        }
        retired
    }

    fn take_over_tasks(&mut self, old: &Path) {
        let entries: Vec<(u32, Tracked)> = match MapData::from_pin(old)
            .map_err(|e| e.to_string())
            .and_then(|data| {
                HashMap::<MapData, u32, Tracked>::try_from(Map::HashMap(data))
                    .map_err(|e| e.to_string())
            }) {
            Ok(map) => map.iter().filter_map(Result::ok).collect(),
            Err(e) => {
                tracing::warn!(map = %old.display(), error = %e, "cannot read an earlier process map");
                return;
            }
        };
        if let Err(e) = self.maps.take_over_tasks(&entries) {
            tracing::warn!(error = %e, "cannot take over processes an earlier generation tracked");
        }
    }

    /// A clean stop that keeps enforcing: the programs stay attached and go on judging, and
    /// this process's id, which the kernel exempts as the daemon's, is forgotten (it may be
    /// reused by anyone once this process is gone).
    pub fn leave_enforcing(&mut self) {
        if let Err(e) = self.maps.forget_daemon() {
            tracing::warn!(error = %e, "cannot clear the daemon's process id in the kernel");
        }
    }

    /// A clean stop that detaches: unpin this generation (its programs detach when this
    /// process exits) and the pin directory if nothing else is in it.
    pub fn detach_on_exit(&mut self) {
        let doomed = self.generation.pins_root().join(pins::DOOMED_PIN);
        for dir in [&self.generation.links_dir, &self.generation.maps_dir, &doomed] {
            if let Err(e) = pins::remove(dir) {
                tracing::warn!(error = %e, "cannot unpin");
            }
        }
        let _ = std::fs::remove_dir(self.generation.pins_root());
    }
}

fn ring_at(path: &Path) -> Result<RingBuf<MapData>, String> {
    let data = MapData::from_pin(path).map_err(|e| e.to_string())?;
    RingBuf::try_from(Map::RingBuf(data)).map_err(|e| e.to_string())
}
