//! How an investigation's run went, or that it has not ended: one type for the judge, the
//! events it publishes, the audit stores and the API, written as the same lowercase words
//! everywhere (`ok`, `flagged`, `killed`, `interrupted`, `running`).
use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Ended with nothing outside its baseline.
    Ok,
    /// Ended with deviations, none of them killing it (or, for a verdict, flagged only).
    Flagged,
    Killed,
    /// The daemon stopped (crashed, was killed) before the run ended; closed when the
    /// audit store was next opened.
    Interrupted,
    /// Not ended yet (only a stored run is ever this).
    Running,
}

impl Outcome {
    pub const ALL: [Outcome; 5] =
        [Outcome::Ok, Outcome::Flagged, Outcome::Killed, Outcome::Interrupted, Outcome::Running];

    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Flagged => "flagged",
            Outcome::Killed => "killed",
            Outcome::Interrupted => "interrupted",
            Outcome::Running => "running",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown outcome {given:?}: expected one of ok, flagged, killed, interrupted, running")]
pub struct UnknownOutcome {
    pub given: String,
}

impl FromStr for Outcome {
    type Err = UnknownOutcome;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| UnknownOutcome { given: s.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_round_trips_through_its_word_in_text_and_json() {
        for outcome in Outcome::ALL {
            assert_eq!(outcome.as_str().parse::<Outcome>().unwrap(), outcome);
            assert_eq!(outcome.to_string(), outcome.as_str());
            let json = serde_json::to_string(&outcome).unwrap();
            assert_eq!(json, format!("\"{}\"", outcome.as_str()));
            assert_eq!(serde_json::from_str::<Outcome>(&json).unwrap(), outcome);
        }
    }

    #[test]
    fn the_words_stored_so_far_still_parse() {
        // What earlier daemons wrote in events, audit rows and exported rows.
        let stored = [
            ("ok", Outcome::Ok),
            ("flagged", Outcome::Flagged),
            ("killed", Outcome::Killed),
            ("interrupted", Outcome::Interrupted),
            ("running", Outcome::Running),
        ];
        for (word, outcome) in stored {
            assert_eq!(word.parse::<Outcome>().unwrap(), outcome);
            assert_eq!(serde_json::from_str::<Outcome>(&format!("\"{word}\"")).unwrap(), outcome);
        }
        for bad in ["", "OK", "Killed", "dead", "ok "] {
            assert!(bad.parse::<Outcome>().is_err(), "{bad:?}");
            assert!(serde_json::from_str::<Outcome>(&format!("\"{bad}\"")).is_err(), "{bad:?}");
        }
    }
}
