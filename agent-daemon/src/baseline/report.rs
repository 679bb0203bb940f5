//! A phase's report: its promotion evidence with what is derived from it (the recent
//! window, whether the baseline looks settled), its sets' sizes and caps, and conditions.
//! The `status` of a `TrustPhase` object, and what `paddock phase report` prints. Pure.
use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::{Baseline, Caps, Set, evidence::Evidence};

/// A `status.sets` entry: a set's size and this node's cap for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetSize {
    pub entries: u64,
    pub cap: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub observed_generation: i64,
    pub last_transition_time: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The generation of the spec this status describes: the baseline's revision.
    #[serde(default)]
    pub revision: i64,
    #[serde(flatten)]
    pub evidence: Evidence,
    #[serde(default, rename = "deviations24h")]
    pub deviations_24h: u64,
    #[serde(default, rename = "kills24h")]
    pub kills_24h: u64,
    #[serde(default)]
    pub settled: bool,
    #[serde(default)]
    pub sets: BTreeMap<String, SetSize>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// One phase as `paddock phase report` shows it: where it lives, its mode, its status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseReport {
    pub phase: crate::identity::Phase,
    pub mode: super::Mode,
    /// `cluster` (the phase's `TrustPhase` object) or `node` (this node's state directory).
    pub store: String,
    pub status: Status,
}

/// What a node knows when it writes a status.
pub struct StatusInputs<'a> {
    pub baseline: Option<&'a Baseline>,
    pub generation: i64,
    pub caps: &'a Caps,
    /// Runs without new behaviour after which a phase's baseline counts as settled.
    pub settle_after: u64,
    /// Why `spec.baseline` was not taken in, if it was not.
    pub refused: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// `previous` with `added` counted in, and everything derived from the counts and the
/// baseline recomputed.
pub fn status(previous: &Status, added: &Evidence, inputs: &StatusInputs<'_>) -> Status {
    let mut evidence = previous.evidence.clone();
    evidence.add(added, inputs.now);
    let (deviations_24h, kills_24h) = evidence.window(inputs.now);
    let settled = evidence.tally.runs > 0 && evidence.tally.runs_since_new >= inputs.settle_after;
    let sets = match inputs.baseline {
        Some(b) => Set::ALL
            .iter()
            .map(|s| {
                let size = SetSize { entries: s.len(b) as u64, cap: inputs.caps.cap(*s) as u64 };
                (s.as_str().to_owned(), size)
            })
            .collect(),
        None => previous.sets.clone(),
    };
    let (reason, message) = if settled {
        (
            "NoNewBehaviour",
            format!(
                "{} runs since the last new behaviour (settled from {})",
                evidence.tally.runs_since_new, inputs.settle_after
            ),
        )
    } else {
        (
            "StillLearning",
            format!(
                "{} of {} runs without new behaviour needed",
                evidence.tally.runs_since_new, inputs.settle_after
            ),
        )
    };
    let mut conditions = previous.conditions.clone();
    set_condition(&mut conditions, condition("Settled", settled, reason, message, inputs));
    let accepted = match inputs.refused {
        None => {
            condition("BaselineAccepted", true, "Valid", "spec.baseline is in force".into(), inputs)
        }
        Some(why) => condition("BaselineAccepted", false, "InvalidEntry", why.to_owned(), inputs),
    };
    set_condition(&mut conditions, accepted);
    Status {
        revision: inputs.generation,
        evidence,
        deviations_24h,
        kills_24h,
        settled,
        sets,
        conditions,
    }
}

fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    inputs: &StatusInputs<'_>,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        observed_generation: inputs.generation,
        last_transition_time: inputs.now.to_rfc3339_opts(SecondsFormat::Secs, true),
    }
}

/// Put `new` in place of the condition of its type, keeping the transition time when the
/// status did not change.
fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            *old = new;
        }
        None => conditions.push(new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        baseline::{Observation, evidence::RunRecord, learn},
        identity::Phase,
    };

    #[test]
    fn a_status_adds_a_nodes_counts_and_says_when_it_settled() {
        let mut b = Baseline::empty(Phase::ReadOnly);
        learn(&mut b, &Observation::Syscall("read".into()));
        let now = Utc::now();
        let inputs = StatusInputs {
            baseline: Some(&b),
            generation: 4,
            caps: &Caps::default(),
            settle_after: 2,
            refused: None,
            now,
        };
        let mut added = Evidence::default();
        for new in [true, false, false] {
            added.record(&RunRecord {
                agent: "a".into(),
                new,
                deviations: 0,
                killed: false,
                learning: true,
                ended: now,
            });
        }
        let s = status(&Status::default(), &added, &inputs);
        assert_eq!(
            (s.evidence.tally.runs, s.evidence.tally.runs_since_new, s.settled),
            (3, 2, true)
        );
        assert_eq!(s.sets["syscalls"], SetSize { entries: 1, cap: 1024 });
        assert_eq!(s.sets["dns"], SetSize { entries: 0, cap: 1024 }, "no dns set yet");
        let settled = s.conditions.iter().find(|c| c.type_ == "Settled").unwrap();
        assert_eq!(settled.status, "True");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["runsSinceNew"], 2);
        assert_eq!(json["learnedFrom"], 3);
        assert_eq!(json["agents"]["a"]["runs"], 3);
        let back: Status = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
    }
}
