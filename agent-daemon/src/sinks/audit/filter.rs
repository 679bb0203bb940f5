//! What a query can ask for: filters, outcomes, event kinds and page cursors, each
//! validated before it goes near SQL (where it is only ever a bound parameter).
use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::AuditError;
use crate::identity::{InvestigationId, Phase};

pub use crate::events::EVENT_KINDS;
pub use crate::outcome::{Outcome, UnknownOutcome};

/// `given` if it is an event kind, else an error listing them.
pub fn check_kind(given: &str) -> Result<&'static str, AuditError> {
    EVENT_KINDS
        .into_iter()
        .find(|k| *k == given)
        .ok_or_else(|| AuditError::UnknownKind { given: given.to_owned() })
}

/// Which runs `list_investigations` returns, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct InvestigationFilter {
    /// Only the runs of this investigation id.
    pub id: Option<InvestigationId>,
    pub phase: Option<Phase>,
    /// Started at or after.
    pub since: Option<DateTime<Utc>>,
    pub outcome: Option<Outcome>,
    /// At most this many rows (1 to `MAX_PAGE`).
    pub limit: usize,
}

impl Default for InvestigationFilter {
    fn default() -> Self {
        Self { id: None, phase: None, since: None, outcome: None, limit: 100 }
    }
}

/// Which events of an investigation `events` returns, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    /// Only this run (`investigations.run`); all runs when `None`.
    pub run: Option<i64>,
    /// One of `EVENT_KINDS`.
    pub kind: Option<String>,
    /// Events at or after this time...
    pub since: Option<DateTime<Utc>>,
    /// ...and strictly before this one.
    pub until: Option<DateTime<Utc>>,
}

/// Where the next page starts: opaque to callers, who pass back the `next` they were given.
/// Today it is the `seq` of the last event returned, in base 10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Cursor(pub(super) i64);

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Cursor {
    type Err = AuditError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || AuditError::BadCursor { given: s.to_owned() };
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse::<i64>().map(Cursor).map_err(|_| bad())
    }
}

impl From<Cursor> for String {
    fn from(cursor: Cursor) -> String {
        cursor.to_string()
    }
}

impl TryFrom<String> for Cursor {
    type Error = AuditError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// Nanoseconds since the epoch, as stored in `*_ns` columns.
pub fn to_ns(time: DateTime<Utc>) -> Result<i64, AuditError> {
    time.timestamp_nanos_opt().ok_or(AuditError::TimeOutOfRange(time))
}

pub fn from_ns(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::audit::testutil::every_kind;

    #[test]
    fn kind_names_are_the_serde_tags_and_the_list_is_complete() {
        let kinds = every_kind();
        assert_eq!(kinds.len(), EVENT_KINDS.len());
        for (kind, name) in kinds.iter().zip(EVENT_KINDS) {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json["kind"], name);
            assert_eq!(kind.name(), name);
            assert_eq!(check_kind(name).unwrap(), name);
        }
    }

    #[test]
    fn unknown_kinds_and_outcomes_list_the_valid_ones() {
        let err = check_kind("exec' OR 1=1 --").unwrap_err().to_string();
        assert!(err.contains("exec' OR 1=1 --"), "{err}");
        for kind in EVENT_KINDS {
            assert!(err.contains(kind), "{err}");
        }
        let err = "dead".parse::<Outcome>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown outcome \"dead\": expected one of ok, flagged, killed, interrupted, running"
        );
        for outcome in Outcome::ALL {
            assert_eq!(outcome.as_str().parse::<Outcome>().unwrap(), outcome);
        }
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let cursor: Cursor = "12345".parse().unwrap();
        assert_eq!(cursor, Cursor(12345));
        assert_eq!(cursor.to_string().parse::<Cursor>().unwrap(), cursor);
        assert_eq!(serde_json::to_string(&cursor).unwrap(), "\"12345\"");
        for bad in ["", "-1", "+1", "1 ", "abc", "99999999999999999999", "1; DROP TABLE events"] {
            let err = bad.parse::<Cursor>().unwrap_err();
            assert!(matches!(err, AuditError::BadCursor { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn times_convert_to_nanoseconds_and_back_within_range() {
        let t = DateTime::parse_from_rfc3339("2026-11-26T15:00:00.123456789Z").unwrap().to_utc();
        assert_eq!(from_ns(to_ns(t).unwrap()), t);
        let far = DateTime::parse_from_rfc3339("3000-01-01T00:00:00Z").unwrap().to_utc();
        assert!(matches!(to_ns(far), Err(AuditError::TimeOutOfRange(_))));
    }
}
