//! `pids.max` for each investigation: how many tasks (processes and threads) it may have
//! at once, per phase (`[phases.<phase>] pids_max`). A fork bomb stops there: `fork` and
//! `clone` fail with `EAGAIN`, and the node's pid space and paddock's maps are left alone.
//!
//! Where the limit is set, found once at start:
//! - cgroup v2 with the `pids` controller: enabled in the local parent's
//!   `cgroup.subtree_control` (and its ancestors', where missing), and `pids.max` written in
//!   each investigation's v2 cgroup;
//! - else a cgroup v1 `pids` hierarchy (hybrid hosts): a v1 cgroup per local investigation,
//!   `<v1 mount>/<local.cgroup_parent>/<name of its v2 cgroup>`, which `paddock run`'s child
//!   joins before it executes the command (the kernel programs ignore moves within v1
//!   hierarchies: they are not moves out of the investigation);
//! - else nowhere: said once at start; processes are then bounded only by the kernel's
//!   per-investigation tracking quota (`limits.processes`).
//!
//! Kubernetes pods: their cgroups belong to the kubelet; where v2 gives them `pids.max`,
//! paddock only ever lowers it to the phase's limit.
use std::{
    io,
    path::{Path, PathBuf},
};

use crate::{identity::Phase, phases::PhasesConfig};

#[derive(Debug, thiserror::Error)]
#[error("cannot set pids.max for the investigation ({path}): {source}")]
pub struct PidsError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Where `pids.max` is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Where {
    /// In the investigation's own cgroup v2 directory.
    V2,
    /// In a cgroup v1 directory per local investigation, below `parent`.
    V1 { parent: PathBuf },
    /// Nowhere: why.
    Nowhere(String),
}

pub struct Pids {
    phases: PhasesConfig,
    /// Absolute path of the local investigations' v2 parent.
    local_parent: PathBuf,
    place: Where,
}

/// Whether the controller list in `file` (`cgroup.controllers`, `cgroup.subtree_control`)
/// names `pids`.
fn lists_pids(file: &Path) -> bool {
    std::fs::read_to_string(file)
        .is_ok_and(|text| text.split_whitespace().any(|c| c.trim_start_matches('+') == "pids"))
}

/// Enable the v2 `pids` controller for the children of `parent` (below `mount`), in every
/// cgroup on the way where it is available but not yet enabled. False (with why) when v2
/// does not offer it there.
fn enable_v2(mount: &Path, parent: &Path) -> Result<(), String> {
    let rel = parent
        .strip_prefix(mount)
        .map_err(|_| format!("{} is not below {}", parent.display(), mount.display()))?;
    let mut dirs = vec![mount.to_path_buf()];
    for part in rel.components() {
        let next = dirs.last().expect("at least the mount").join(part);
        dirs.push(next);
    }
    for dir in &dirs {
        if !lists_pids(&dir.join("cgroup.controllers")) {
            return Err(format!("cgroup v2 offers no pids controller in {}", dir.display()));
        }
        let control = dir.join("cgroup.subtree_control");
        if !lists_pids(&control) {
            std::fs::write(&control, "+pids")
                .map_err(|e| format!("cannot enable pids in {}: {e}", control.display()))?;
        }
    }
    Ok(())
}

/// The mount point of a cgroup v1 hierarchy carrying the `pids` controller, from
/// mountinfo text.
pub fn v1_pids_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut right = right.split(' ');
        let (fstype, _source, options) = (right.next()?, right.next()?, right.next()?);
        let mount_point = left.split(' ').nth(4)?;
        (fstype == "cgroup" && options.split(',').any(|o| o == "pids"))
            .then(|| PathBuf::from(mount_point))
    })
}

impl Pids {
    /// Find where pids.max can be set for local investigations made under `local_parent`
    /// (`cgroup_parent` below the v2 `mount`).
    pub fn detect(
        phases: PhasesConfig,
        mount: &Path,
        local_parent: &Path,
        cgroup_parent: &Path,
        mountinfo: &Path,
    ) -> Pids {
        let place = match enable_v2(mount, local_parent) {
            Ok(()) => Where::V2,
            Err(no_v2) => {
                match std::fs::read_to_string(mountinfo).ok().as_deref().and_then(v1_pids_mount) {
                    Some(v1) => {
                        let parent = v1.join(cgroup_parent);
                        match std::fs::create_dir_all(&parent) {
                            Ok(()) => Where::V1 { parent },
                            Err(e) => Where::Nowhere(format!(
                                "{no_v2}; and cannot make {} in the v1 pids hierarchy: {e}",
                                parent.display()
                            )),
                        }
                    }
                    None => Where::Nowhere(format!(
                        "{no_v2}; and no cgroup v1 pids hierarchy is mounted"
                    )),
                }
            }
        };
        Pids { phases, local_parent: local_parent.to_path_buf(), place }
    }

    /// Say where the limits are set (once, at start).
    pub fn log(&self, processes: u32) {
        match &self.place {
            Where::V2 => tracing::info!("pids.max per investigation in its cgroup v2 directory"),
            Where::V1 { parent } => tracing::info!(
                parent = %parent.display(),
                "pids.max per local investigation in a cgroup v1 pids directory (no pids \
                 controller in cgroup v2 here)"
            ),
            Where::Nowhere(why) => tracing::warn!(
                reason = %why, processes,
                "pids.max cannot be set: the processes of an investigation are bounded only by \
                 the kernel's per-investigation tracking quota (limits.processes), which in \
                 enforce mode with fail_closed dooms the investigation that reaches it"
            ),
        }
    }

    #[cfg(test)]
    pub fn place(&self) -> &Where {
        &self.place
    }

    /// Limit the local investigation of `phase` whose v2 cgroup is `dir`. Returns the v1
    /// cgroup its command must join before it executes, if that is where the limit is.
    pub fn prepare(&self, dir: &Path, phase: Phase) -> Result<Option<PathBuf>, PidsError> {
        let max = self.phases.pids_max(phase);
        if max == 0 {
            return Ok(None);
        }
        let write = |dir: &Path| {
            let path = dir.join("pids.max");
            std::fs::write(&path, max.to_string()).map_err(|source| PidsError { path, source })
        };
        match &self.place {
            Where::V2 => write(dir).map(|()| None),
            Where::V1 { parent } => {
                self.sweep(parent);
                let name = dir.file_name().unwrap_or(dir.as_os_str());
                let v1 = parent.join(name);
                match std::fs::create_dir(&v1) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(source) => return Err(PidsError { path: v1, source }),
                }
                write(&v1)?;
                Ok(Some(v1))
            }
            Where::Nowhere(_) => Ok(None),
        }
    }

    /// The local investigation whose v2 cgroup was `dir` is over: its v1 cgroup goes (left
    /// for a later sweep if a process is still leaving it).
    pub fn release(&self, dir: &Path) {
        if let (Where::V1 { parent }, Some(name)) = (&self.place, dir.file_name()) {
            let _ = std::fs::remove_dir(parent.join(name));
        }
    }

    /// Lower a Kubernetes pod's `pids.max` (in its v2 cgroup `dir`, when the kubelet gave it
    /// one) to the limit of `phase`; never raises it.
    pub fn limit_pod(&self, dir: &Path, phase: Phase) {
        let max = self.phases.pids_max(phase);
        let path = dir.join("pids.max");
        let Ok(current) = std::fs::read_to_string(&path) else { return };
        let current = current.trim();
        if max == 0 || current.parse::<u64>().is_ok_and(|c| c <= max as u64) {
            return;
        }
        match std::fs::write(&path, max.to_string()) {
            Ok(()) => {
                tracing::debug!(cgroup = %dir.display(), max, was = current, "pod pids.max lowered")
            }
            Err(e) => {
                tracing::warn!(cgroup = %dir.display(), error = %e, "cannot lower the pod's pids.max")
            }
        }
    }

    /// Remove v1 cgroups left by investigations that are over (their v2 cgroup gone, no
    /// process left), as an earlier daemon may have left them.
    fn sweep(&self, parent: &Path) {
        let Ok(entries) = std::fs::read_dir(parent) else { return };
        for entry in entries.flatten() {
            let v1 = entry.path();
            if !v1.is_dir() || self.local_parent.join(entry.file_name()).exists() {
                continue;
            }
            let empty =
                std::fs::read_to_string(v1.join("cgroup.procs")).is_ok_and(|p| p.trim().is_empty());
            if empty {
                let _ = std::fs::remove_dir(&v1);
            }
        }
    }
}

impl Drop for Pids {
    /// The daemon stops: what is over goes, and the v1 parent when nothing is left in it.
    fn drop(&mut self) {
        if let Where::V1 { parent } = &self.place {
            self.sweep(parent);
            let _ = std::fs::remove_dir(parent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cgroup v2 tree of plain files: `cgroup.controllers` and `cgroup.subtree_control`
    /// at each level.
    fn tree(controllers: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for dir in [root.path().to_path_buf(), root.path().join("paddock")] {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("cgroup.controllers"), controllers).unwrap();
            std::fs::write(dir.join("cgroup.subtree_control"), "").unwrap();
        }
        root
    }

    fn phases(text: &str) -> PhasesConfig {
        #[derive(serde::Deserialize)]
        struct W {
            phases: PhasesConfig,
        }
        toml::from_str::<W>(text).unwrap().phases
    }

    #[test]
    fn v2_with_pids_enables_it_on_the_way_and_writes_pids_max() {
        let root = tree("cpu memory pids");
        let parent = root.path().join("paddock");
        let pids = Pids::detect(
            phases("[phases.shadow]\npids_max = 64\n"),
            root.path(),
            &parent,
            Path::new("paddock"),
            Path::new("/nonexistent"),
        );
        assert_eq!(pids.place(), &Where::V2);
        for dir in [root.path(), parent.as_path()] {
            assert!(lists_pids(&dir.join("cgroup.subtree_control")), "{}", dir.display());
        }
        let inv = parent.join("inv-1");
        std::fs::create_dir(&inv).unwrap();
        assert_eq!(pids.prepare(&inv, Phase::Shadow).unwrap(), None);
        assert_eq!(std::fs::read_to_string(inv.join("pids.max")).unwrap(), "64");
        let other = parent.join("inv-2");
        std::fs::create_dir(&other).unwrap();
        pids.prepare(&other, Phase::ReadOnly).unwrap();
        assert_eq!(std::fs::read_to_string(other.join("pids.max")).unwrap(), "1024", "the default");
    }

    #[test]
    fn without_pids_in_v2_a_v1_hierarchy_takes_a_cgroup_per_investigation() {
        let root = tree("hugetlb");
        let v1 = tempfile::tempdir().unwrap();
        let mountinfo = root.path().join("mountinfo");
        std::fs::write(
            &mountinfo,
            format!(
                "30 25 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                 39 31 0:36 / {} rw,relatime - cgroup cgroup rw,pids\n",
                v1.path().display()
            ),
        )
        .unwrap();
        let parent = root.path().join("paddock");
        let pids = Pids::detect(
            phases("[phases.autonomous]\npids_max = 32\n"),
            root.path(),
            &parent,
            Path::new("paddock"),
            &mountinfo,
        );
        assert_eq!(pids.place(), &Where::V1 { parent: v1.path().join("paddock") });
        let inv = parent.join("inv-7");
        std::fs::create_dir(&inv).unwrap();
        let joined = pids.prepare(&inv, Phase::Autonomous).unwrap().unwrap();
        assert_eq!(joined, v1.path().join("paddock/inv-7"));
        assert_eq!(std::fs::read_to_string(joined.join("pids.max")).unwrap(), "32");
        // A v1 cgroup whose investigation is gone is swept at the next start.
        std::fs::write(joined.join("cgroup.procs"), "").unwrap();
        std::fs::remove_file(joined.join("pids.max")).unwrap();
        std::fs::remove_file(joined.join("cgroup.procs")).unwrap();
        std::fs::remove_dir(&inv).unwrap();
        pids.release(&inv);
        assert!(!joined.exists());
        assert!(!lists_pids(&root.path().join("cgroup.subtree_control")), "v2 left alone");
    }

    #[test]
    fn nowhere_says_why_and_limits_nothing() {
        let root = tree("hugetlb");
        let parent = root.path().join("paddock");
        let pids = Pids::detect(
            PhasesConfig::default(),
            root.path(),
            &parent,
            Path::new("paddock"),
            Path::new("/nonexistent/mountinfo"),
        );
        let Where::Nowhere(why) = pids.place() else { panic!("{:?}", pids.place()) };
        assert!(why.contains("no pids controller") && why.contains("no cgroup v1 pids"), "{why}");
        assert_eq!(pids.prepare(&parent, Phase::Shadow).unwrap(), None);
        assert!(!parent.join("pids.max").exists());
    }

    #[test]
    fn a_pods_limit_is_only_ever_lowered() {
        let dir = tempfile::tempdir().unwrap();
        let pids = Pids {
            phases: phases("[phases.read-only]\npids_max = 100\n"),
            local_parent: dir.path().join("none"),
            place: Where::V2,
        };
        pids.limit_pod(dir.path(), Phase::ReadOnly);
        assert!(!dir.path().join("pids.max").exists(), "no pids controller: nothing written");
        for (was, now) in [("max\n", "100"), ("4096\n", "100"), ("50\n", "50\n")] {
            std::fs::write(dir.path().join("pids.max"), was).unwrap();
            pids.limit_pod(dir.path(), Phase::ReadOnly);
            assert_eq!(std::fs::read_to_string(dir.path().join("pids.max")).unwrap(), now);
        }
    }

    #[test]
    fn the_v1_pids_mount_is_found_among_others() {
        let text = "25 30 0:22 / /sys rw - sysfs sysfs rw\n\
                    36 31 0:33 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
                    39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n";
        assert_eq!(v1_pids_mount(text), Some(PathBuf::from("/sys/fs/cgroup/pids")));
        assert_eq!(v1_pids_mount("30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"), None);
    }
}
