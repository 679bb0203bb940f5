//! Baselines and phase state on disk, under `<state_dir>/baselines/`:
//! - `<phase>.toml`: the baseline in force, rewritten atomically (temporary file, fsync,
//!   rename, fsync of the directory), so a crash never leaves a half-written file;
//! - `<phase>.last-good.toml`: the same content, kept aside: when `<phase>.toml` is found
//!   broken at start (a bad hand edit), the last good one is used and the broken file is
//!   renamed `<phase>.toml.rejected-<unix time>`, so nothing is lost;
//! - `phases.toml`: each phase's mode and run counts.
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::{
    collections::BTreeMap,
    fs::{self, File},
    io::{self, Write as _},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::{Baseline, Mode, evidence::Evidence, file};
use crate::identity::Phase;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseState {
    pub mode: Mode,
    /// Investigations of the phase that ended since it was last reset.
    #[serde(default)]
    pub runs: u64,
    /// Of those, how many had at least one verdict.
    #[serde(default)]
    pub strayed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    File(#[from] file::FileError),
    #[error("phase state file {path}: {message}")]
    Phases { path: PathBuf, message: String },
    #[error("{current}; and its last good copy: {last_good}")]
    NoGoodBaseline { current: Box<StoreError>, last_good: Box<StoreError> },
}

/// A baseline as loaded at start, and what was wrong on the way, if anything.
pub struct Loaded {
    pub baseline: Baseline,
    pub problem: Option<String>,
}

pub struct Store {
    dir: PathBuf,
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// Replace `path` with `bytes` atomically.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::other("no parent directory"))?;
    let name = path.file_name().ok_or_else(|| io::Error::other("no file name"))?.to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    // Readable by the daemon (root) alone: a baseline says what a phase may do.
    let mut file =
        fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

impl Store {
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        let dir = state_dir.join("baselines");
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io_at(&dir))?;
        Ok(Store { dir })
    }

    pub fn path(&self, phase: Phase) -> PathBuf {
        self.dir.join(format!("{phase}.toml"))
    }

    fn last_good(&self, phase: Phase) -> PathBuf {
        self.dir.join(format!("{phase}.last-good.toml"))
    }

    fn read(&self, path: &Path, phase: Phase) -> Result<Option<Baseline>, StoreError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Io { path: path.to_path_buf(), source }),
        };
        let baseline = file::parse(&text, &path.display().to_string())?;
        if baseline.phase != phase {
            return Err(StoreError::File(file::FileError::Invalid {
                source_name: path.display().to_string(),
                field: "phase".into(),
                value: format!("{:?}", baseline.phase.as_str()),
                problem: format!("this file holds the {phase} baseline"),
            }));
        }
        Ok(Some(baseline))
    }

    /// The baseline of `phase` as saved, an empty one if none was, or the last good copy when
    /// the saved one is broken (which is then moved aside). Fails when both are broken.
    pub fn load(&self, phase: Phase) -> Result<Loaded, StoreError> {
        let path = self.path(phase);
        match self.read(&path, phase) {
            Ok(baseline) => Ok(Loaded {
                baseline: baseline.unwrap_or_else(|| Baseline::empty(phase)),
                problem: None,
            }),
            Err(current) => match self.read(&self.last_good(phase), phase) {
                Ok(Some(baseline)) => {
                    let aside = self.dir.join(format!(
                        "{phase}.toml.rejected-{}",
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs())
                    ));
                    let moved = fs::rename(&path, &aside);
                    let problem = format!(
                        "{current}; using the last good baseline (revision {}) instead{}",
                        baseline.revision,
                        match moved {
                            Ok(()) => format!("; the broken file is kept as {}", aside.display()),
                            Err(e) => format!("; could not move the broken file aside: {e}"),
                        }
                    );
                    Ok(Loaded { baseline, problem: Some(problem) })
                }
                Ok(None) => Err(current),
                Err(last_good) => Err(StoreError::NoGoodBaseline {
                    current: Box::new(current),
                    last_good: Box::new(last_good),
                }),
            },
        }
    }

    pub fn save(&self, baseline: &Baseline) -> Result<(), StoreError> {
        let text = file::render(baseline);
        for path in [self.path(baseline.phase), self.last_good(baseline.phase)] {
            write_atomically(&path, text.as_bytes()).map_err(io_at(&path))?;
        }
        Ok(())
    }

    /// The cluster's copy of `phase`'s baseline as this node last took it in
    /// (`<phase>.cluster.toml`), kept so that after a restart the node still knows what it
    /// learned beyond it (and what an operator removed from it since).
    pub fn load_synced(&self, phase: Phase) -> Result<Option<Baseline>, StoreError> {
        self.read(&self.synced_path(phase), phase)
    }

    pub fn save_synced(&self, baseline: &Baseline) -> Result<(), StoreError> {
        let path = self.synced_path(baseline.phase);
        write_atomically(&path, file::render(baseline).as_bytes()).map_err(io_at(&path))
    }

    fn synced_path(&self, phase: Phase) -> PathBuf {
        self.dir.join(format!("{phase}.cluster.toml"))
    }

    fn evidence_path(&self) -> PathBuf {
        self.dir.join("evidence.json")
    }

    /// Each phase's promotion evidence on this node, and what of it the cluster has not
    /// been sent (`evidence.json`).
    pub fn load_evidence(&self) -> Result<BTreeMap<Phase, (Evidence, Evidence)>, StoreError> {
        let path = self.evidence_path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let raw: BTreeMap<String, (Evidence, Evidence)> = serde_json::from_str(&text)
            .map_err(|e| StoreError::Phases { path: path.clone(), message: e.to_string() })?;
        let mut out = BTreeMap::new();
        for (name, evidence) in raw {
            let phase: Phase = name.parse().map_err(|e: crate::identity::UnknownPhase| {
                StoreError::Phases { path: path.clone(), message: e.to_string() }
            })?;
            out.insert(phase, evidence);
        }
        Ok(out)
    }

    pub fn save_evidence(
        &self,
        evidence: &BTreeMap<Phase, (&Evidence, &Evidence)>,
    ) -> Result<(), StoreError> {
        let named: BTreeMap<&str, &(&Evidence, &Evidence)> =
            evidence.iter().map(|(p, e)| (p.as_str(), e)).collect();
        let path = self.evidence_path();
        let text = serde_json::to_vec_pretty(&named)
            .map_err(|e| StoreError::Io { path: path.clone(), source: io::Error::other(e) })?;
        write_atomically(&path, &text).map_err(io_at(&path))
    }

    fn phases_path(&self) -> PathBuf {
        self.dir.join("phases.toml")
    }

    /// Each phase's state; phases not in the file learn.
    pub fn load_phases(&self) -> Result<BTreeMap<Phase, PhaseState>, StoreError> {
        let path = self.phases_path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let raw: BTreeMap<String, PhaseState> =
            toml::from_str(&text).map_err(|e| StoreError::Phases {
                path: path.clone(),
                message: e.to_string().trim_end().replace('\n', " "),
            })?;
        let mut phases: BTreeMap<Phase, PhaseState> =
            Phase::ALL.iter().map(|p| (*p, PhaseState::default())).collect();
        for (name, state) in raw {
            let phase: Phase = name.parse().map_err(|e: crate::identity::UnknownPhase| {
                StoreError::Phases { path: path.clone(), message: e.to_string() }
            })?;
            phases.insert(phase, state);
        }
        Ok(phases)
    }

    pub fn save_phases(&self, phases: &BTreeMap<Phase, PhaseState>) -> Result<(), StoreError> {
        let named: BTreeMap<&str, &PhaseState> =
            phases.iter().map(|(p, s)| (p.as_str(), s)).collect();
        let text = format!(
            "# paddock: each trust phase's mode (learn, flag, enforce) and how its Jobs went.\n{}",
            toml::to_string(&named).map_err(|e| StoreError::Io {
                path: self.phases_path(),
                source: io::Error::other(e)
            })?
        );
        let path = self.phases_path();
        write_atomically(&path, text.as_bytes()).map_err(io_at(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::{Observation, learn};

    #[test]
    fn saves_and_loads_baselines_and_phase_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let loaded = store.load(Phase::Shadow).unwrap();
        assert_eq!(loaded.baseline, Baseline::empty(Phase::Shadow));
        let mut b = Baseline::empty(Phase::Shadow);
        learn(&mut b, &Observation::Exec { path: "/bin/ls".into(), literal: false });
        b.revision = 1;
        store.save(&b).unwrap();
        assert_eq!(store.load(Phase::Shadow).unwrap().baseline, b);
        let mut phases = store.load_phases().unwrap();
        assert_eq!(phases[&Phase::Autonomous], PhaseState::default());
        phases.insert(Phase::Autonomous, PhaseState { mode: Mode::Enforce, runs: 4, strayed: 1 });
        store.save_phases(&phases).unwrap();
        assert_eq!(store.load_phases().unwrap(), phases);
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("baselines"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_broken_file_falls_back_to_the_last_good_one_and_is_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut b = Baseline::empty(Phase::ReadOnly);
        learn(&mut b, &Observation::Syscall("read".into()));
        b.revision = 2;
        store.save(&b).unwrap();
        fs::write(store.path(Phase::ReadOnly), "format = 1\nphase = \"read-only\"\nrevis").unwrap();
        let loaded = store.load(Phase::ReadOnly).unwrap();
        assert_eq!(loaded.baseline, b);
        let problem = loaded.problem.unwrap();
        assert!(problem.contains("read-only.toml"), "{problem}");
        assert!(problem.contains("last good baseline (revision 2)"), "{problem}");
        let rejected = fs::read_dir(dir.path().join("baselines"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("read-only.toml.rejected-")
            })
            .count();
        assert_eq!(rejected, 1, "the broken file is kept");
    }

    #[test]
    fn a_file_of_another_phase_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        fs::write(store.path(Phase::Shadow), file::render(&Baseline::empty(Phase::Autonomous)))
            .unwrap();
        let err = store.load(Phase::Shadow).err().unwrap().to_string();
        assert!(
            err.contains("phase = \"autonomous\": this file holds the shadow baseline"),
            "{err}"
        );
    }

    #[test]
    fn a_broken_phase_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        fs::write(dir.path().join("baselines/phases.toml"), "[shadow]\nmode = \"guard\"\n")
            .unwrap();
        let err = store.load_phases().unwrap_err().to_string();
        assert!(err.contains("phases.toml") && err.contains("guard"), "{err}");
    }
}
