//! Events, records and stores for the audit store's tests.
use std::{collections::BTreeMap, path::Path, sync::Arc};

use chrono::{DateTime, Duration, Utc};

use super::{AuditConfig, AuditRecord, AuditStore};
use crate::{
    baseline::{DeviationKind, Mode},
    events::{Action, Event, EventKind, PathState},
    identity::Phase,
};

/// `secs` seconds after 2026-11-26T15:00:00Z.
pub fn at(secs: i64) -> DateTime<Utc> {
    let base = DateTime::parse_from_rfc3339("2026-11-26T15:00:00Z").unwrap().to_utc();
    base + Duration::seconds(secs)
}

pub fn event(id: &str, time: DateTime<Utc>, pid: u32, comm: &str, kind: EventKind) -> Event {
    Event {
        time,
        investigation: id.parse().unwrap(),
        phase: Phase::ReadOnly,
        instance: 1,
        pid,
        tid: None,
        ppid: if pid == 0 { 0 } else { 1 },
        uid: 1000,
        comm: comm.into(),
        kind,
    }
}

pub fn record(instance: u32, mut event: Event) -> AuditRecord {
    event.instance = instance;
    Arc::new(event)
}

pub fn started() -> EventKind {
    EventKind::Started { source: "local".into(), cgroup: "/paddock/inv".into(), pod: None }
}

pub fn ended(outcome: &str, emptied_at: DateTime<Utc>) -> EventKind {
    EventKind::Ended {
        syscalls: BTreeMap::from([("read".into(), 3)]),
        egress_bytes: 0,
        egress_packets: 0,
        events: 0,
        outcome: outcome.parse().unwrap(),
        reason: (outcome == "killed").then(|| "exec of /usr/bin/curl".into()),
        emptied_at,
        lost_records: 0,
        throttled_records: 0,
        untracked: 0,
        escapes: 0,
    }
}

pub fn exec(path: &str, argv: &[&str]) -> EventKind {
    EventKind::Exec {
        path: path.into(),
        argv: argv.iter().map(|a| a.to_string()).collect(),
        argv_truncated: false,
        via_fd: false,
        resolved: false,
        state: PathState::default(),
        action: Action::None,
    }
}

pub fn open_file(path: &str) -> EventKind {
    EventKind::Open {
        path: path.into(),
        write: false,
        flags: 0,
        via: None,
        state: PathState::default(),
    }
}

pub fn verdict(outcome: &str, reason: &str, action_time: DateTime<Utc>) -> EventKind {
    EventKind::Verdict {
        deviation: DeviationKind::Exec,
        subject: "/usr/bin/curl".into(),
        reason: reason.into(),
        mode: Mode::Enforce,
        outcome: outcome.parse().unwrap(),
        baseline_revision: 3,
        action_time,
    }
}

/// One of each kind, in `EVENT_KINDS` order.
pub fn every_kind() -> Vec<EventKind> {
    vec![
        started(),
        EventKind::Resumed {
            source: "local".into(),
            cgroup: "/paddock/inv".into(),
            pod: None,
            doomed: true,
        },
        EventKind::Syscall { nr: 0, name: "read".into(), action: Action::None },
        EventKind::Fork { child_pid: 43 },
        exec("/bin/ls", &["ls"]),
        EventKind::Exit { exit_code: Some(0), signal: None },
        open_file("/etc/hostname"),
        EventKind::FileOp {
            op: "rename".into(),
            path: "/tmp/a".into(),
            path2: Some("/tmp/b".into()),
            state: PathState::default(),
        },
        EventKind::Connect {
            op: "connect".into(),
            protocol: crate::egress::EgressProtocol::Tcp,
            address: "127.0.0.1".parse().unwrap(),
            port: 80,
            name: None,
            action: Action::None,
        },
        EventKind::Dns {
            op: "answer".into(),
            name: "api.example.com".into(),
            qtype: "A".into(),
            server: "127.0.0.53".parse().unwrap(),
            port: 53,
            rcode: Some("NOERROR".into()),
            answers: vec![crate::events::DnsAnswer {
                address: "10.0.0.1".parse().unwrap(),
                ttl: 60,
            }],
            notes: vec![],
            action: Action::None,
        },
        EventKind::Unix {
            op: "connect".into(),
            path: "/run/nscd/socket".into(),
            relative: false,
            action: Action::None,
        },
        EventKind::Socket { socket: "inet raw icmp".into(), action: Action::Denied },
        EventKind::IoUring { opcode: 22, name: "read".into(), action: Action::None },
        EventKind::Escape { moved_pid: 44, cgroup: 1, action: Action::Killed },
        EventKind::Cgroup { cgroup_id: 7, path: "/paddock/inv/sub".into() },
        verdict("flagged", "exec of /bin/ls", at(0)),
        EventKind::BaselineCapped { set: "execs".into(), cap: 3072, subject: "/bin/ls".into() },
        ended("flagged", at(1)),
    ]
}

/// A store with the default settings at `dir/audit.db`.
pub fn store(dir: &Path) -> AuditStore {
    AuditStore::open(&dir.join("audit.db"), &AuditConfig::default()).unwrap()
}

/// A whole run of `id` as `instance`: started at `start`, `n` open events a second apart,
/// ended with `outcome` (unless `None`: still running).
pub fn run(
    id: &str,
    instance: u32,
    start: i64,
    n: usize,
    outcome: Option<&str>,
) -> Vec<AuditRecord> {
    let mut records = vec![record(instance, event(id, at(start), 0, "", started()))];
    for i in 0..n {
        let time = at(start + 1 + i as i64);
        records.push(record(instance, event(id, time, 100, "cat", open_file(&format!("/f{i}")))));
    }
    if let Some(outcome) = outcome {
        let end = at(start + 1 + n as i64);
        records.push(record(instance, event(id, end, 0, "", ended(outcome, end))));
    }
    records
}
