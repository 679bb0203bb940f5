//! How a cluster query names things: a page cursor, and a run.
//!
//! - A cursor is the position of the last event of a page in the cluster's order (time,
//!   node, seq, store_id): opaque to users, who pass back the `next` they were given.
//!   Written as `c` and the hex of a small JSON array, so that no node name or store id can
//!   break it.
//! - A run is `RUN` (its number, when one node stores a run of that number for the
//!   investigation), `NODE/RUN`, or `NODE/STORE_ID/RUN` (when a node has had more than one
//!   store file). Kubernetes node names hold no `/`.
use chrono::{DateTime, Utc};

use super::ClusterError;

/// Where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterCursor {
    pub time: DateTime<Utc>,
    pub node: String,
    pub seq: i64,
    pub store_id: String,
}

/// Longer cursors are not ours (node names are at most 253 bytes).
const MAX_CURSOR: usize = 2048;

impl ClusterCursor {
    pub fn encode(&self) -> String {
        let micros = self.time.timestamp_micros();
        let json = serde_json::json!([micros, self.node, self.seq, self.store_id]).to_string();
        format!("c{}", hex::encode(json))
    }

    pub fn decode(given: &str) -> Result<Self, ClusterError> {
        let bad = || ClusterError::BadCursor { given: given.to_owned() };
        if given.len() > MAX_CURSOR {
            return Err(bad());
        }
        let bytes = given.strip_prefix('c').and_then(|h| hex::decode(h).ok()).ok_or_else(bad)?;
        let (micros, node, seq, store_id): (i64, String, i64, String) =
            serde_json::from_slice(&bytes).map_err(|_| bad())?;
        let time = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
        if node.is_empty() || store_id.is_empty() {
            return Err(bad());
        }
        Ok(ClusterCursor { time, node, seq, store_id })
    }
}

/// A run as the user names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunName {
    pub node: Option<String>,
    pub store_id: Option<String>,
    pub run: i64,
}

impl RunName {
    pub fn parse(given: &str) -> Result<Self, ClusterError> {
        let bad = || ClusterError::BadRun { given: given.to_owned() };
        let parts: Vec<&str> = given.split('/').collect();
        if parts.iter().any(|p| p.is_empty() || p.chars().any(char::is_whitespace)) {
            return Err(bad());
        }
        let (node, store_id, run) = match parts.as_slice() {
            [run] => (None, None, run),
            [node, run] => (Some(node), None, run),
            [node, store_id, run] => (Some(node), Some(store_id), run),
            _ => return Err(bad()),
        };
        let run = run.parse::<i64>().ok().filter(|r| *r > 0).ok_or_else(bad)?;
        Ok(RunName {
            node: node.map(|n| (*n).to_owned()),
            store_id: store_id.map(|s| (*s).to_owned()),
            run,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_whatever_the_names_hold() {
        let time = DateTime::parse_from_rfc3339("2026-11-28T06:00:00.123456Z").unwrap().to_utc();
        for (node, store_id) in [("node-a", "0123abcd"), ("n\"/,]\n", "s\\id'; DROP"), ("ü", "x")]
        {
            let cursor =
                ClusterCursor { time, node: node.into(), seq: 42, store_id: store_id.into() };
            let text = cursor.encode();
            assert!(text.bytes().all(|b| b.is_ascii_alphanumeric()), "{text}");
            assert_eq!(ClusterCursor::decode(&text).unwrap(), cursor);
        }
    }

    #[test]
    fn bad_cursors_are_refused() {
        let good = ClusterCursor {
            time: DateTime::from_timestamp_micros(1).unwrap(),
            node: "n".into(),
            seq: 1,
            store_id: "s".into(),
        }
        .encode();
        let long = format!("c{}", "0".repeat(MAX_CURSOR));
        let wrong_shape = format!("c{}", hex::encode("[1, \"n\", 1]"));
        let empty_node = format!("c{}", hex::encode("[1, \"\", 1, \"s\"]"));
        let far = format!("c{}", hex::encode(format!("[{}, \"n\", 1, \"s\"]", i64::MAX)));
        for bad in [
            "",
            "42",
            &good[1..],
            &good[..good.len() - 1],
            "cZZ",
            &long,
            &wrong_shape,
            &empty_node,
            &far,
        ] {
            let err = ClusterCursor::decode(bad).unwrap_err();
            assert!(matches!(err, ClusterError::BadCursor { .. }), "{bad}: {err}");
            assert!(err.to_string().starts_with("parameter cursor: "), "{err}");
        }
    }

    #[test]
    fn runs_are_named_by_number_node_and_store() {
        let name = |s| RunName::parse(s).unwrap();
        assert_eq!(name("3"), RunName { node: None, store_id: None, run: 3 });
        assert_eq!(
            name("node-a/3"),
            RunName { node: Some("node-a".into()), store_id: None, run: 3 }
        );
        assert_eq!(
            name("node-a/0f3c/12"),
            RunName { node: Some("node-a".into()), store_id: Some("0f3c".into()), run: 12 }
        );
        for bad in ["", "0", "-1", "x", "node-a/", "/3", "a/b/c/3", "node a/3", "node-a/x", "a//3"]
        {
            let err = RunName::parse(bad).unwrap_err();
            assert!(matches!(err, ClusterError::BadRun { .. }), "{bad}: {err}");
            assert!(err.to_string().contains("NODE/RUN"), "{err}");
        }
    }
}
