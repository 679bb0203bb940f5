//! Operator requests (phase modes, baselines) and their answers, as the control socket
//! carries them; the pipeline, which owns the judge, answers.
use serde::{Deserialize, Deserializer, Serialize};

use crate::{
    baseline::{Mode, report::PhaseReport},
    identity::Phase,
    judge::PhaseSummary,
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
