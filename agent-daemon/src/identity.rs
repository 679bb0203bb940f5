//! Who a workload is: its trust phase and its investigation id, validated at every edge.
use std::{fmt, str::FromStr};

use agent_common::tracking::{
    PHASE_AUTONOMOUS, PHASE_LIMITED_WRITE, PHASE_READ_ONLY, PHASE_SHADOW,
};
use serde::{Deserialize, Serialize};

/// The graduated trust phases, narrowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Shadow,
    ReadOnly,
    LimitedWrite,
    Autonomous,
    /// A Kubernetes pod whose phase label is none of the four, tracked under the
    /// `unknown_phase = "observe"` policy: watched and recorded, never learned from,
    /// judged or enforced. Not a phase anyone can ask for.
    Unknown,
}

impl Phase {
    pub const ALL: [Phase; 4] =
        [Phase::Shadow, Phase::ReadOnly, Phase::LimitedWrite, Phase::Autonomous];

    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Shadow => "shadow",
            Phase::ReadOnly => "read-only",
            Phase::LimitedWrite => "limited-write",
            Phase::Autonomous => "autonomous",
            Phase::Unknown => "unknown",
        }
    }

    /// The number the kernel maps use.
    pub const fn kernel_id(self) -> u8 {
        match self {
            Phase::Shadow => PHASE_SHADOW,
            Phase::ReadOnly => PHASE_READ_ONLY,
            Phase::LimitedWrite => PHASE_LIMITED_WRITE,
            Phase::Autonomous => PHASE_AUTONOMOUS,
            Phase::Unknown => agent_common::tracking::PHASE_UNKNOWN,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown trust phase {given:?}: expected one of shadow, read-only, limited-write, autonomous"
)]
pub struct UnknownPhase {
    pub given: String,
}

impl FromStr for Phase {
    type Err = UnknownPhase;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPhase { given: s.to_owned() })
    }
}

/// An investigation id: a valid, non-empty Kubernetes label value (it comes from the Job's
/// `investigation-id` label), so at most 63 characters of `[A-Za-z0-9._-]`, starting and
/// ending with an alphanumeric.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InvestigationId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadInvestigationId {
    #[error("investigation id is empty: it must be a Kubernetes label value of 1 to 63 characters")]
    Empty,
    #[error(
        "investigation id {0:?} is {1} characters long: a Kubernetes label value has at most 63"
    )]
    TooLong(String, usize),
    #[error(
        "investigation id {id:?} is not a valid Kubernetes label value: character {position} \
         ({found:?}) {rule}"
    )]
    BadCharacter { id: String, position: usize, found: char, rule: &'static str },
}

impl InvestigationId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for InvestigationId {
    type Err = BadInvestigationId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(BadInvestigationId::Empty);
        }
        let count = s.chars().count();
        if count > 63 {
            return Err(BadInvestigationId::TooLong(s.to_owned(), count));
        }
        for (i, c) in s.chars().enumerate() {
            let edge = i == 0 || i + 1 == count;
            let rule = if !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
                Some("is not one of A-Z, a-z, 0-9, '-', '_', '.'")
            } else if edge && !c.is_ascii_alphanumeric() {
                Some("must be alphanumeric at the start and the end")
            } else {
                None
            };
            if let Some(rule) = rule {
                return Err(BadInvestigationId::BadCharacter {
                    id: s.to_owned(),
                    position: i + 1,
                    found: c,
                    rule,
                });
            }
        }
        Ok(InvestigationId(s.to_owned()))
    }
}

impl TryFrom<String> for InvestigationId {
    type Error = BadInvestigationId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<InvestigationId> for String {
    fn from(id: InvestigationId) -> String {
        id.0
    }
}

impl fmt::Display for InvestigationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_round_trip_through_text_and_have_distinct_kernel_ids() {
        for phase in Phase::ALL {
            assert_eq!(phase.as_str().parse::<Phase>().unwrap(), phase);
        }
        let mut ids: Vec<u8> = Phase::ALL.iter().map(|p| p.kernel_id()).collect();
        ids.dedup();
        assert_eq!(ids.len(), 4);
    }

    #[test]
    fn unknown_phase_lists_the_valid_ones() {
        let err = "admin".parse::<Phase>().unwrap_err().to_string();
        assert!(err.contains("\"admin\""), "{err}");
        for phase in Phase::ALL {
            assert!(err.contains(phase.as_str()), "{err}");
        }
    }

    #[test]
    fn investigation_ids_follow_label_value_rules() {
        for ok in ["a", "inv-42", "A.b_c-9", &"x".repeat(63)] {
            assert!(ok.parse::<InvestigationId>().is_ok(), "{ok}");
        }
        assert_eq!("".parse::<InvestigationId>(), Err(BadInvestigationId::Empty));
        assert!(matches!(
            "x".repeat(64).parse::<InvestigationId>(),
            Err(BadInvestigationId::TooLong(_, 64))
        ));
        let err = "inv/1".parse::<InvestigationId>().unwrap_err();
        assert!(
            matches!(err, BadInvestigationId::BadCharacter { position: 4, found: '/', .. }),
            "{err:?}"
        );
        let err = "-inv".parse::<InvestigationId>().unwrap_err().to_string();
        assert!(err.contains("start and the end"), "{err}");
        assert!("inv-".parse::<InvestigationId>().is_err());
        assert!("inv 1".parse::<InvestigationId>().is_err());
    }
}
