//! The control socket speaks JSON lines: the client sends requests, the daemon answers
//! with replies. One connection may carry several (a `run` carries `run`, then `exited`).
use std::{
    collections::BTreeMap,
    io::{self, BufRead, Write},
    path::PathBuf,
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{
    events::Event,
    lifecycle::admin::{AdminReply, AdminRequest},
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Make and track a cgroup for a new local investigation.
    Run {
        investigation_id: String,
        phase: String,
    },
    /// In a `run` session: the command has exited with this wait status. The reply comes
    /// once every event of the investigation up to now has been handled.
    Exited {
        status: i32,
    },
    /// A `paddock run` client whose daemon went away while its command ran: its command
    /// has exited with `status`; how did investigation `investigation_id` (`instance`, as
    /// `ready` named it) go? Answered like `exited`, by the daemon that adopted it.
    Rejoin {
        investigation_id: String,
        instance: u32,
        status: i32,
    },
    /// Recent events, then (with `follow`) new ones as they happen.
    Events {
        follow: bool,
        investigation: Option<String>,
    },
    Status,
    /// Phases and baselines.
    Admin {
        request: AdminRequest,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Ready {
        cgroup: PathBuf,
        instance: u32,
        /// A cgroup v1 `pids` cgroup the command joins before it executes (where pids.max
        /// can only be set there).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pids_cgroup: Option<PathBuf>,
    },
    /// `killed` carries the reason when paddock killed the investigation.
    Outcome {
        killed: Option<String>,
    },
    Event {
        event: Box<Event>,
    },
    /// A follower fell behind and missed this many events.
    Lagged {
        missed: u64,
    },
    Status(Box<StatusReport>),
    Admin {
        answer: AdminReply,
    },
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvestigationStatus {
    pub id: String,
    pub phase: String,
    pub instance: u32,
    pub source: String,
    pub cgroup: PathBuf,
    /// `namespace/name` of the pod, for a Kubernetes investigation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The pod's Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    pub started: DateTime<Utc>,
    pub syscalls: u64,
    pub distinct_syscalls: usize,
    pub egress_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub version: String,
    pub pid: u32,
    pub started: DateTime<Utc>,
    /// Where `/metrics` and the query API are served.
    pub http: String,
    pub probes: Vec<String>,
    pub investigations: Vec<InvestigationStatus>,
    pub tracked_cgroups: usize,
    pub records_read: u64,
    pub events_published: u64,
    pub malformed_records: u64,
    pub unattributed_records: u64,
    /// Records the kernel could not put in the ring buffer, by record kind.
    pub lost_records: BTreeMap<String, u64>,
    pub lost_total: u64,
    /// Events a sink's queue could not take, by sink.
    pub sink_drops: BTreeMap<String, u64>,
    /// The audit store, when it is enabled.
    #[serde(default)]
    pub audit: Option<AuditStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditStatus {
    pub path: std::path::PathBuf,
    /// Events committed: each one is in the file, whatever happens to the daemon next.
    pub stored: u64,
    pub batches: u64,
    /// Events that could not be stored.
    pub failed: u64,
    /// The database and its write-ahead log, in bytes.
    pub bytes: u64,
}

/// Write one message as a JSON line.
pub fn write_line<W: Write, T: Serialize>(out: &mut W, message: &T) -> io::Result<()> {
    let mut line = serde_json::to_vec(message).map_err(io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()
}

/// Read one JSON-line message; `None` at end of stream.
pub fn read_line<R: BufRead, T: DeserializeOwned>(input: &mut R) -> io::Result<Option<T>> {
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    serde_json::from_str(&line).map(Some).map_err(|e| {
        io::Error::new(io::ErrorKind::InvalidData, format!("bad message from the daemon: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_are_tagged_json_lines() {
        let mut buf = Vec::new();
        write_line(
            &mut buf,
            &Request::Run { investigation_id: "a".into(), phase: "shadow".into() },
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(buf.clone()).unwrap(),
            "{\"op\":\"run\",\"investigation_id\":\"a\",\"phase\":\"shadow\"}\n"
        );
        let back: Request = read_line(&mut buf.as_slice()).unwrap().unwrap();
        assert!(matches!(back, Request::Run { .. }));
        let reply = Reply::Outcome { killed: Some("exec of /tmp/x".into()) };
        let mut buf = Vec::new();
        write_line(&mut buf, &reply).unwrap();
        assert_eq!(read_line::<_, Reply>(&mut buf.as_slice()).unwrap(), Some(reply));
        assert_eq!(read_line::<_, Reply>(&mut &b""[..]).unwrap(), None);
        assert!(read_line::<_, Reply>(&mut &b"{not json\n"[..]).is_err());
    }

    /// Found by `protocol_props`: these were read, and the pipeline then panicked asking
    /// the judge for the `unknown` phase's baseline ("no baseline for the unknown phase").
    #[test]
    fn an_admin_request_for_the_unknown_phase_is_a_bad_request() {
        for request in [
            r#"{"what":"export","phase":"unknown"}"#,
            r#"{"what":"reset","phase":"unknown"}"#,
            r#"{"what":"diff","phase":"unknown","text":"","source":""}"#,
            r#"{"what":"import","phase":"unknown","text":"","source":""}"#,
            r#"{"what":"set_mode","phase":"unknown","mode":"flag"}"#,
        ] {
            let line = format!(r#"{{"op":"admin","request":{request}}}"#);
            let err = serde_json::from_str::<Request>(&line).unwrap_err().to_string();
            assert!(err.contains("unknown trust phase \"unknown\""), "{line}: {err}");
        }
        let line =
            r#"{"op":"admin","request":{"what":"set_mode","phase":"read-only","mode":"flag"}}"#;
        let request = AdminRequest::SetMode {
            phase: crate::identity::Phase::ReadOnly,
            mode: crate::baseline::Mode::Flag,
        };
        assert_eq!(serde_json::from_str::<Request>(line).unwrap(), Request::Admin { request });
    }
}
