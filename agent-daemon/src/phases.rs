//! Settings per trust phase: `[phases.<phase>]` in the configuration.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::identity::Phase;

/// Tasks (processes and threads) one investigation of a phase may have at once, when
/// nothing else is said: enough for an agent, its shells, tools and their thread pools;
/// a fork bomb stops there, long before the kernel's per-investigation tracking quota
/// (`limits.processes`, 4096 by default) or the node's pid space.
pub const DEFAULT_PIDS_MAX: u32 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PhaseSettings {
    /// `pids.max` written on each investigation's cgroup; 0 leaves it unbounded there.
    pub pids_max: u32,
}

impl Default for PhaseSettings {
    fn default() -> Self {
        PhaseSettings { pids_max: DEFAULT_PIDS_MAX }
    }
}

/// `[phases.shadow]`, `[phases.read-only]`, ...: each phase's settings, by phase name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct PhasesConfig(BTreeMap<String, PhaseSettings>);

impl PhasesConfig {
    /// The settings of `phase`; a Kubernetes pod of no known phase (`unknown`) gets the
    /// narrowest phase's, `shadow`.
    pub fn get(&self, phase: Phase) -> PhaseSettings {
        let phase = if phase == Phase::Unknown { Phase::Shadow } else { phase };
        self.0.get(phase.as_str()).copied().unwrap_or_default()
    }

    /// Give `phase` these settings.
    pub fn set(&mut self, phase: Phase, settings: PhaseSettings) {
        self.0.insert(phase.as_str().to_owned(), settings);
    }

    pub fn pids_max(&self, phase: Phase) -> u32 {
        self.get(phase).pids_max
    }

    /// Each phase name is one of the four, and each `pids_max` at most `processes`
    /// (`limits.processes`), so that pids.max stops a fork bomb before the kernel's tracking
    /// quota does. The error: (setting, value, rule).
    pub fn check(&self, processes: u32) -> Result<(), (String, String, String)> {
        for (name, settings) in &self.0 {
            if name.parse::<Phase>().is_err() {
                return Err((
                    format!("phases.{name}"),
                    "{...}".into(),
                    "not a trust phase: expected shadow, read-only, limited-write or autonomous"
                        .into(),
                ));
            }
            if settings.pids_max > processes {
                return Err((
                    format!("phases.{name}.pids_max"),
                    settings.pids_max.to_string(),
                    format!(
                        "must be at most limits.processes ({processes}), so that pids.max stops \
                         a fork bomb before the kernel's tracking quota does (0: no pids.max)"
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> PhasesConfig {
        #[derive(Deserialize)]
        struct Wrapper {
            phases: PhasesConfig,
        }
        toml::from_str::<Wrapper>(text).unwrap().phases
    }

    #[test]
    fn each_phase_has_its_own_and_the_rest_the_default() {
        let phases = parse("[phases.autonomous]\npids_max = 4096\n[phases.shadow]\npids_max = 0\n");
        assert_eq!(phases.pids_max(Phase::Autonomous), 4096);
        assert_eq!(phases.pids_max(Phase::Shadow), 0);
        assert_eq!(phases.pids_max(Phase::Unknown), 0, "as shadow");
        assert_eq!(phases.pids_max(Phase::ReadOnly), DEFAULT_PIDS_MAX);
        assert_eq!(phases.check(4096), Ok(()));
    }

    #[test]
    fn bad_settings_are_named() {
        let (field, value, rule) = parse("[phases.root]\npids_max = 1\n").check(4096).unwrap_err();
        assert_eq!(field, "phases.root");
        assert!(rule.contains("not a trust phase"), "{value} {rule}");
        let (field, value, rule) =
            parse("[phases.read-only]\npids_max = 5000\n").check(4096).unwrap_err();
        assert_eq!((field.as_str(), value.as_str()), ("phases.read-only.pids_max", "5000"));
        assert!(rule.contains("limits.processes (4096)"), "{rule}");
    }
}
