//! Operator requests (phase modes, baselines), their answers and why one was not done, as
//! the control socket carries them; the pipeline, which owns the judge, answers.
use serde::{Deserialize, Deserializer, Serialize};

use crate::{
    baseline::{Mode, report::PhaseReport},
    identity::Phase,
    judge::PhaseSummary,
    kernel::TrackError,
};

/// Every phase a request names is one of the four trust phases, which have baselines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum AdminRequest {
    List,
    Export {
        #[serde(deserialize_with = "trust_phase")]
        phase: Phase,
    },
    Diff {
        #[serde(deserialize_with = "trust_phase")]
        phase: Phase,
        text: String,
        source: String,
    },
    Import {
        #[serde(deserialize_with = "trust_phase")]
        phase: Phase,
        text: String,
        source: String,
    },
    Reset {
        #[serde(deserialize_with = "trust_phase")]
        phase: Phase,
    },
    SetMode {
        #[serde(deserialize_with = "trust_phase")]
        phase: Phase,
        mode: Mode,
    },
    /// Promotion evidence: one phase, or all.
    Report {
        #[serde(
            default,
            deserialize_with = "some_trust_phase",
            skip_serializing_if = "Option::is_none"
        )]
        phase: Option<Phase>,
    },
}

fn some_trust_phase<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Phase>, D::Error> {
    trust_phase(deserializer).map(Some)
}

/// A trust phase, read as `Phase::from_str` reads it: `unknown` (the phase of pods whose
/// label names none of the four) has no baseline, and the judge has nothing to answer about
/// it, so a request naming it is refused as it is read.
fn trust_phase<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Phase, D::Error> {
    String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AdminReply {
    List { phases: Vec<PhaseSummary> },
    Text { text: String },
    Done { message: String },
    Report { phases: Vec<PhaseReport> },
}

/// Why an operator request was not done. What it says is what the operator reads: the
/// control socket answers it as its error reply (`api::control`).
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The judge refused it: a baseline file that does not check out or is another
    /// phase's, a phase without a baseline, a state directory that cannot be written.
    #[error(transparent)]
    Judge(#[from] crate::judge::AdminError),
    /// The kernel's maps could not take the phase's new mode: it stays in the one before.
    #[error("cannot put {phase} in {mode} mode in the kernel: {source}")]
    KernelMode { phase: Phase, mode: Mode, source: TrackError },
    /// The judge took the new baseline, the kernel's maps could not.
    #[error(
        "the {phase} baseline changed but the kernel still enforces the previous one: {source}"
    )]
    KernelStale { phase: Phase, source: TrackError },
    /// The phase lives in the cluster, and its object could not be read or changed.
    #[error("{0}")]
    Cluster(String),
    #[error("the daemon is stopping")]
    Stopping,
}

#[cfg(test)]
mod tests {
    use aya::maps::MapError;

    use super::*;

    #[test]
    fn errors_say_what_operators_read_before_they_were_typed() {
        let kernel = || TrackError { map: "POLICY_EXECS", source: MapError::KeyNotFound };
        let why = kernel().to_string();
        let cases = [
            (
                AdminError::KernelMode {
                    phase: Phase::ReadOnly,
                    mode: Mode::Enforce,
                    source: kernel(),
                },
                format!("cannot put read-only in enforce mode in the kernel: {why}"),
            ),
            (
                AdminError::KernelStale { phase: Phase::Shadow, source: kernel() },
                format!(
                    "the shadow baseline changed but the kernel still enforces the previous one: {why}"
                ),
            ),
            (
                AdminError::Judge(crate::judge::AdminError::WrongPhase {
                    source_name: "ro.toml".into(),
                    found: Phase::Shadow,
                    wanted: Phase::ReadOnly,
                }),
                "ro.toml holds the shadow baseline, not the read-only one: refused".into(),
            ),
            (AdminError::Cluster("trustphase/x: gone".into()), "trustphase/x: gone".into()),
            (AdminError::Stopping, "the daemon is stopping".into()),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }
}
