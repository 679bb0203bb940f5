//! What paddock does with a phase's baseline.
use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Fold every investigation of the phase into its baseline; no verdicts.
    #[default]
    Learn,
    /// Each deviation becomes a verdict.
    Flag,
    /// A verdict, then the investigation is killed (in the kernel first where it can be).
    Enforce,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Learn, Mode::Flag, Mode::Enforce];

    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Learn => "learn",
            Mode::Flag => "flag",
            Mode::Enforce => "enforce",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mode {0:?}: expected one of learn, flag, enforce")]
pub struct UnknownMode(pub String);

impl FromStr for Mode {
    type Err = UnknownMode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| UnknownMode(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_unknown_ones_list_the_valid() {
        for m in Mode::ALL {
            assert_eq!(m.as_str().parse::<Mode>(), Ok(m));
        }
        let err = "block".parse::<Mode>().unwrap_err().to_string();
        assert!(err.contains("\"block\"") && err.contains("learn, flag, enforce"), "{err}");
    }
}
