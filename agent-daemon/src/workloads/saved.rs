//! The running investigations, on disk (`<state_dir>/running/<instance>.json`): what a
//! daemon starting after a stop or a crash needs to adopt them, with the slots and instance
//! numbers the kernel's pinned maps know them by. Written when an investigation begins,
//! removed when it ends; a file that cannot be read is set aside (`.bad`), never deleted.
//!
//! Instance numbers are never reused across restarts either: `next-instance` holds the
//! first number no daemon has handed out, reserved a block at a time.
use std::{
    io::Write as _,
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::registry::{Active, PodOwner};
use crate::identity::Phase;

/// Instance numbers reserved on disk at a time.
pub const INSTANCE_BLOCK: u32 = 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    instance: u32,
    slot: u16,
    id: String,
    phase: String,
    source: String,
    cgroup: PathBuf,
    started: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pod: Option<SavedPod>,
    /// The uid of the `paddock run` client that started it (local runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_uid: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedPod {
    namespace: String,
    name: String,
    uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    job: Option<String>,
    #[serde(default)]
    agent: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SavedError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

pub struct SavedRuns {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SavedError + '_ {
    move |source| SavedError::Io { path: path.to_path_buf(), source }
}

/// Write `bytes` to `path` through a temporary file and a rename, mode 0600.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SavedError> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn source_name(source: &str) -> Option<&'static str> {
    match source {
        "local" => Some("local"),
        "kubernetes" => Some("kubernetes"),
        _ => None,
    }
}

impl Saved {
    fn of(active: &Active) -> Saved {
        Saved {
            instance: active.instance,
            slot: active.slot,
            id: active.id.to_string(),
            phase: active.phase.to_string(),
            source: active.source.to_owned(),
            cgroup: active.cgroup.clone(),
            started: active.started,
            pod: active.pod.as_ref().map(|p| SavedPod {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                uid: p.uid.clone(),
                job: p.job.clone(),
                agent: p.agent.clone(),
            }),
            client_uid: active.client_uid,
        }
    }

    fn active(self) -> Result<Active, String> {
        let phase = if self.phase == Phase::Unknown.as_str() {
            Phase::Unknown
        } else {
            self.phase.parse().map_err(|e| format!("{e}"))?
        };
        Ok(Active {
            id: self.id.parse().map_err(|e| format!("{e}"))?,
            phase,
            slot: self.slot,
            instance: self.instance,
            cgroup: self.cgroup,
            source: source_name(&self.source)
                .ok_or_else(|| format!("unknown source {:?}", self.source))?,
            started: self.started,
            pod: self.pod.map(|p| PodOwner {
                namespace: p.namespace,
                name: p.name,
                uid: p.uid,
                job: p.job,
                agent: p.agent,
            }),
            client_uid: self.client_uid,
            resumed: true,
        })
    }
}

impl SavedRuns {
    /// `<state_dir>/running`, made private if missing.
    pub fn open(state_dir: &Path) -> Result<SavedRuns, SavedError> {
        let dir = state_dir.join("running");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(io(&dir))?;
        Ok(SavedRuns { dir })
    }

    fn path(&self, instance: u32) -> PathBuf {
        self.dir.join(format!("{instance}.json"))
    }

    pub fn save(&self, active: &Active) -> Result<(), SavedError> {
        let json = serde_json::to_vec_pretty(&Saved::of(active)).expect("plain data");
        write_atomically(&self.path(active.instance), &json)
    }

    pub fn forget(&self, instance: u32) -> Result<(), SavedError> {
        let path = self.path(instance);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path)(e)),
            _ => Ok(()),
        }
    }

    /// Every saved investigation, in instance order, and what could not be read (each such
    /// file renamed `<name>.bad` and named in the message).
    pub fn load(&self) -> Result<(Vec<Active>, Vec<String>), SavedError> {
        let mut found = Vec::new();
        let mut problems = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let path = entry.map_err(io(&self.dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<Saved>(&bytes).map_err(|e| e.to_string())
                })
                .and_then(Saved::active);
            match parsed {
                Ok(active) => found.push(active),
                Err(e) => {
                    let bad = path.with_extension("json.bad");
                    let _ = std::fs::rename(&path, &bad);
                    problems.push(format!(
                        "{}: {e} (set aside as {})",
                        path.display(),
                        bad.display()
                    ));
                }
            }
        }
        found.sort_by_key(|a: &Active| a.instance);
        Ok((found, problems))
    }

    /// The first instance number no daemon has handed out (1 on a new state directory).
    pub fn next_instance(&self) -> u32 {
        std::fs::read_to_string(self.dir.join("next-instance"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1)
            .max(1)
    }

    /// Record that numbers below `upto` may have been handed out.
    pub fn reserve_instances(&self, upto: u32) -> Result<(), SavedError> {
        write_atomically(&self.dir.join("next-instance"), format!("{upto}\n").as_bytes())
    }

    /// Forget every running investigation (`paddock daemon --cleanup`). Returns how many.
    pub fn clear(&self) -> Result<usize, SavedError> {
        let (found, _) = self.load()?;
        for active in &found {
            self.forget(active.instance)?;
        }
        Ok(found.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(instance: u32, source: &'static str) -> Active {
        Active {
            id: format!("inv-{instance}").parse().unwrap(),
            phase: Phase::ReadOnly,
            slot: (instance % 7) as u16,
            instance,
            cgroup: format!("/sys/fs/cgroup/x/{instance}").into(),
            source,
            started: chrono::Utc::now().trunc_subsecs_to_micros(),
            pod: (source == "kubernetes").then(|| PodOwner {
                namespace: "agents".into(),
                name: "p".into(),
                uid: "u-1".into(),
                job: Some("j".into()),
                agent: "serviceaccount:agents/default".into(),
            }),
            client_uid: (source == "local").then_some(1000),
            resumed: false,
        }
    }

    trait Micros {
        fn trunc_subsecs_to_micros(self) -> Self;
    }
    impl Micros for DateTime<Utc> {
        fn trunc_subsecs_to_micros(self) -> Self {
            chrono::SubsecRound::trunc_subsecs(self, 6)
        }
    }

    #[test]
    fn what_is_saved_comes_back_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let runs = SavedRuns::open(dir.path()).unwrap();
        let (a, b) = (active(3, "local"), active(9, "kubernetes"));
        runs.save(&b).unwrap();
        runs.save(&a).unwrap();
        let (found, problems) = runs.load().unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        let resumed = |x: &Active| Active { resumed: true, ..x.clone() };
        assert_eq!(found, vec![resumed(&a), resumed(&b)]);
        runs.forget(3).unwrap();
        runs.forget(3).unwrap();
        assert_eq!(runs.load().unwrap().0, vec![resumed(&b)]);
        let mode =
            std::fs::metadata(dir.path().join("running/9.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_bad_file_is_set_aside_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let runs = SavedRuns::open(dir.path()).unwrap();
        runs.save(&active(1, "local")).unwrap();
        std::fs::write(dir.path().join("running/2.json"), b"{\"instance\": 2").unwrap();
        let mut wrong = serde_json::to_value(Saved::of(&active(4, "local"))).unwrap();
        wrong["phase"] = "root".into();
        std::fs::write(dir.path().join("running/4.json"), wrong.to_string()).unwrap();
        let (found, problems) = runs.load().unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("2.json") && p.contains("EOF")), "{problems:?}");
        assert!(
            problems.iter().any(|p| p.contains("4.json") && p.contains("root")),
            "{problems:?}"
        );
        assert!(dir.path().join("running/2.json.bad").exists());
    }

    #[test]
    fn instance_numbers_are_reserved_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let runs = SavedRuns::open(dir.path()).unwrap();
        assert_eq!(runs.next_instance(), 1);
        runs.reserve_instances(1025).unwrap();
        assert_eq!(SavedRuns::open(dir.path()).unwrap().next_instance(), 1025);
    }
}
