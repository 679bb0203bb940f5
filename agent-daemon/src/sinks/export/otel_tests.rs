//! The OpenTelemetry mapping: every kind of event, field by field.
use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::otel::{OtelRecord, Severity, severity};
use crate::{
    baseline::{DeviationKind, Mode},
    events::{Action, DnsAnswer, EVENT_KINDS, Event, EventKind, PathState, PodRef},
    identity::Phase,
    sinks::audit::{Outcome, query::InvestigationRow, read::StoredEvent},
};

pub fn time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

pub fn pod() -> PodRef {
    PodRef {
        namespace: "agents".into(),
        name: "triage-7-abcde".into(),
        job: Some("triage-7".into()),
    }
}

/// One event of every kind, each with its fields set to something to find again.
pub fn every_kind() -> Vec<EventKind> {
    let path = PathState::default();
    vec![
        EventKind::Started {
            source: "kubernetes".into(),
            cgroup: "/kubepods/x".into(),
            pod: Some(pod()),
        },
        EventKind::Resumed {
            source: "local".into(),
            cgroup: "/paddock/y".into(),
            pod: None,
            doomed: true,
        },
        EventKind::Syscall { nr: 101, name: "ptrace".into(), action: Action::Killed },
        EventKind::Fork { child_pid: 4321 },
        EventKind::Exec {
            path: "/usr/bin/curl".into(),
            argv: vec!["curl".into(), "-s".into(), "https://example.com".into()],
            argv_truncated: true,
            via_fd: false,
            resolved: false,
            state: path,
            action: Action::None,
        },
        EventKind::Exit { exit_code: Some(3), signal: None },
        EventKind::Open {
            path: "/etc/passwd".into(),
            write: true,
            flags: 0o101,
            via: Some("io_uring".into()),
            state: PathState { deleted: true, ..path },
        },
        EventKind::FileOp {
            op: "symlink".into(),
            path: "/tmp/link".into(),
            path2: Some("/etc/shadow".into()),
            state: path,
        },
        EventKind::Connect {
            op: "connect".into(),
            protocol: crate::egress::EgressProtocol::Tcp,
            address: ip("93.184.215.14"),
            port: 443,
            name: Some("api.example.com".into()),
            action: Action::Denied,
        },
        EventKind::Dns {
            op: "answer".into(),
            name: "api.example.com".into(),
            qtype: "A".into(),
            server: ip("2001:db8::53"),
            port: 53,
            rcode: Some("NOERROR".into()),
            answers: vec![DnsAnswer { address: ip("93.184.215.14"), ttl: 60 }],
            notes: vec!["more".into()],
            action: Action::None,
        },
        EventKind::Unix {
            op: "connect".into(),
            path: "/run/nscd/socket".into(),
            relative: false,
            action: Action::None,
        },
        EventKind::Socket { socket: "inet raw icmp".into(), action: Action::Denied },
        EventKind::IoUring { opcode: 18, name: "openat".into(), action: Action::None },
        EventKind::Escape { moved_pid: 77, cgroup: 9001, action: Action::None },
        EventKind::Cgroup { cgroup_id: 9002, path: "/paddock/y/sub".into() },
        EventKind::Verdict {
            deviation: DeviationKind::Exec,
            subject: "/usr/bin/curl".into(),
            reason: "not in the read-only baseline".into(),
            mode: Mode::Enforce,
            outcome: Outcome::Killed,
            baseline_revision: 12,
            action_time: time("2026-11-26T15:00:00.25Z"),
        },
        EventKind::BaselineCapped { set: "execs".into(), cap: 4096, subject: "/bin/x".into() },
        EventKind::Ended {
            syscalls: BTreeMap::from([("read".into(), 10), ("ia32:open".into(), 1)]),
            egress_bytes: 1500,
            egress_packets: 3,
            events: 42,
            outcome: Outcome::Killed,
            reason: Some("exec of /usr/bin/curl".into()),
            emptied_at: time("2026-11-26T15:00:01Z"),
            lost_records: 2,
            throttled_records: 0,
            untracked: 0,
            escapes: 1,
        },
    ]
}

pub fn event(kind: EventKind) -> Event {
    let lifecycle = matches!(
        kind,
        EventKind::Started { .. } | EventKind::Resumed { .. } | EventKind::Ended { .. }
    );
    Event {
        time: time("2026-11-26T15:00:00.123456789Z"),
        investigation: "inv-42".parse().unwrap(),
        phase: Phase::ReadOnly,
        instance: 7,
        pid: if lifecycle { 0 } else { 1234 },
        tid: if lifecycle { None } else { Some(1240) },
        ppid: if lifecycle { 0 } else { 1200 },
        uid: 1000,
        comm: if lifecycle { String::new() } else { "curl".into() },
        kind,
    }
}

pub fn run_row(run: i64, pod: Option<PodRef>) -> InvestigationRow {
    InvestigationRow {
        run,
        instance: 7,
        id: "inv-42".parse().unwrap(),
        phase: Phase::ReadOnly,
        source: Some("kubernetes".into()),
        cgroup: None,
        pod,
        started: time("2026-11-26T15:00:00Z"),
        ended: None,
        outcome: Outcome::Running,
        reason: None,
        events: 0,
    }
}

fn otel(stored: &StoredEvent, runs: &HashMap<i64, InvestigationRow>) -> BTreeMap<String, Value> {
    let value = serde_json::to_value(OtelRecord::new(stored, runs, "node-1", "store-a")).unwrap();
    serde_json::from_value(value).unwrap()
}

#[test]
fn every_kind_is_sampled() {
    let mut names: Vec<&str> = every_kind().iter().map(EventKind::name).collect();
    names.sort_unstable();
    let mut all = EVENT_KINDS.to_vec();
    all.sort_unstable();
    assert_eq!(names, all);
}

#[test]
fn every_kind_maps_its_fields_to_their_names() {
    let runs = HashMap::from([(5, run_row(5, Some(pod())))]);
    for (i, kind) in every_kind().into_iter().enumerate() {
        let stored = StoredEvent { seq: 100 + i as i64, run: 5, event: event(kind) };
        let o = otel(&stored, &runs);
        let e = &stored.event;
        let name = e.kind.name();
        let get = |key: &str| o.get(key).unwrap_or_else(|| panic!("{name}: no {key} in {o:?}"));
        // Common to all.
        assert_eq!(get("time"), "2026-11-26T15:00:00.123456789Z");
        assert_eq!(get("time_unix_nano"), 1_795_705_200_123_456_789_i64);
        assert_eq!(get("event_name"), &format!("paddock.{name}"));
        assert_eq!(get("body"), &e.to_string());
        assert_eq!(get("k8s.node.name"), "node-1");
        assert_eq!(get("k8s.namespace.name"), "agents");
        assert_eq!(get("k8s.pod.name"), "triage-7-abcde");
        assert_eq!(get("k8s.job.name"), "triage-7");
        assert_eq!(get("paddock.investigation.id"), "inv-42");
        assert_eq!(get("paddock.trust_phase"), "read-only");
        assert_eq!(get("paddock.instance"), 7);
        assert_eq!(get("paddock.run"), 5);
        assert_eq!(get("paddock.seq"), stored.seq);
        assert_eq!(get("paddock.store_id"), "store-a");
        let sev = severity(&e.kind);
        assert_eq!(get("severity_text"), sev.text());
        assert_eq!(get("severity_number"), sev.number());
        if e.pid != 0 {
            assert_eq!(get("process.pid"), 1234);
            assert_eq!(get("thread.id"), 1240);
            assert_eq!(get("process.parent_pid"), 1200);
            assert_eq!(get("process.real_user.id"), 1000);
            assert_eq!(get("process.executable.name"), "curl");
        } else {
            for key in ["process.pid", "thread.id", "process.parent_pid", "process.real_user.id"] {
                assert!(!o.contains_key(key), "{name}: {key} of a lifecycle event");
            }
        }
        kind_fields(&e.kind, &get);
    }
}

/// The fields of each kind, by the names `docs/log-export.md` gives them.
fn kind_fields<'a>(kind: &EventKind, get: &dyn Fn(&str) -> &'a Value) {
    match kind {
        EventKind::Started { .. } => {
            assert_eq!(get("paddock.source"), "kubernetes");
            assert_eq!(get("paddock.cgroup.path"), "/kubepods/x");
        }
        EventKind::Resumed { .. } => {
            assert_eq!(get("paddock.source"), "local");
            assert_eq!(get("paddock.doomed"), true);
        }
        EventKind::Syscall { .. } => {
            assert_eq!(get("paddock.syscall.name"), "ptrace");
            assert_eq!(get("paddock.syscall.nr"), 101);
            assert_eq!(get("paddock.action"), "killed");
        }
        EventKind::Fork { .. } => assert_eq!(get("paddock.child_pid"), 4321),
        EventKind::Exec { .. } => {
            assert_eq!(get("process.executable.path"), "/usr/bin/curl");
            assert_eq!(
                get("process.command_args"),
                &serde_json::json!(["curl", "-s", "https://example.com"])
            );
            assert_eq!(get("process.args_count"), 3);
            assert_eq!(get("paddock.argv_truncated"), true);
        }
        EventKind::Exit { .. } => assert_eq!(get("process.exit.code"), 3),
        EventKind::Open { .. } => {
            assert_eq!(get("file.path"), "/etc/passwd");
            assert_eq!(get("paddock.open.write"), true);
            assert_eq!(get("paddock.open.flags"), 0o101);
            assert_eq!(get("paddock.via"), "io_uring");
            assert_eq!(get("paddock.path.deleted"), true);
        }
        EventKind::FileOp { .. } => {
            assert_eq!(get("paddock.file.op"), "symlink");
            assert_eq!(get("file.path"), "/tmp/link");
            assert_eq!(get("file.symbolic_link.target_path"), "/etc/shadow");
        }
        EventKind::Connect { .. } => {
            assert_eq!(get("network.transport"), "tcp");
            assert_eq!(get("network.type"), "ipv4");
            assert_eq!(get("network.peer.address"), "93.184.215.14");
            assert_eq!(get("network.peer.port"), 443);
            assert_eq!(get("server.address"), "api.example.com");
            assert_eq!(get("server.port"), 443);
            assert_eq!(get("paddock.network.op"), "connect");
            assert_eq!(get("paddock.action"), "denied");
        }
        EventKind::Dns { .. } => {
            assert_eq!(get("dns.question.name"), "api.example.com");
            assert_eq!(get("dns.answers"), &serde_json::json!(["93.184.215.14"]));
            assert_eq!(get("paddock.dns.ttls"), &serde_json::json!([60]));
            assert_eq!(get("paddock.dns.op"), "answer");
            assert_eq!(get("paddock.dns.qtype"), "A");
            assert_eq!(get("paddock.dns.rcode"), "NOERROR");
            assert_eq!(get("paddock.dns.notes"), &serde_json::json!(["more"]));
            assert_eq!(get("network.type"), "ipv6");
            assert_eq!(get("network.peer.address"), "2001:db8::53");
            assert_eq!(get("network.peer.port"), 53);
        }
        EventKind::Unix { .. } => {
            assert_eq!(get("network.transport"), "unix");
            assert_eq!(get("network.peer.address"), "/run/nscd/socket");
        }
        EventKind::Socket { .. } => {
            assert_eq!(get("paddock.socket"), "inet raw icmp");
            assert_eq!(get("paddock.action"), "denied");
        }
        EventKind::IoUring { .. } => {
            assert_eq!(get("paddock.io_uring.name"), "openat");
            assert_eq!(get("paddock.io_uring.opcode"), 18);
        }
        EventKind::Escape { .. } => {
            assert_eq!(get("paddock.escape.pid"), 77);
            assert_eq!(get("paddock.escape.cgroup_id"), 9001);
        }
        EventKind::Cgroup { .. } => {
            assert_eq!(get("paddock.cgroup.id"), 9002);
            assert_eq!(get("paddock.cgroup.path"), "/paddock/y/sub");
        }
        EventKind::Verdict { .. } => {
            assert_eq!(get("paddock.deviation"), "exec");
            assert_eq!(get("paddock.subject"), "/usr/bin/curl");
            assert_eq!(get("paddock.reason"), "not in the read-only baseline");
            assert_eq!(get("paddock.mode"), "enforce");
            assert_eq!(get("paddock.outcome"), "killed");
            assert_eq!(get("paddock.baseline.revision"), 12);
            assert_eq!(get("paddock.action_time"), "2026-11-26T15:00:00.250000000Z");
        }
        EventKind::BaselineCapped { .. } => {
            assert_eq!(get("paddock.baseline.set"), "execs");
            assert_eq!(get("paddock.baseline.cap"), 4096);
            assert_eq!(get("paddock.subject"), "/bin/x");
        }
        EventKind::Ended { .. } => {
            assert_eq!(get("paddock.outcome"), "killed");
            assert_eq!(get("paddock.reason"), "exec of /usr/bin/curl");
            assert_eq!(get("paddock.events"), 42);
            assert_eq!(get("paddock.egress.bytes"), 1500);
            assert_eq!(get("paddock.egress.packets"), 3);
            assert_eq!(get("paddock.lost_records"), 2);
            assert_eq!(get("paddock.escapes"), 1);
            assert_eq!(get("paddock.syscalls.read"), 10);
            assert_eq!(get("paddock.syscalls.ia32:open"), 1);
            assert_eq!(get("paddock.emptied_at"), "2026-11-26T15:00:01.000000000Z");
        }
    }
}

#[test]
fn no_key_is_a_dotted_prefix_of_another() {
    let runs = HashMap::from([(5, run_row(5, Some(pod())))]);
    let mut keys = std::collections::BTreeSet::new();
    for kind in every_kind() {
        let stored = StoredEvent { seq: 1, run: 5, event: event(kind) };
        keys.extend(otel(&stored, &runs).into_keys());
    }
    for key in &keys {
        for other in &keys {
            assert!(!other.starts_with(&format!("{key}.")), "{key} and {other} clash when nested");
        }
    }
}

#[test]
fn severities_follow_what_was_done() {
    let by_kind: BTreeMap<&str, Severity> =
        every_kind().iter().map(|k| (k.name(), severity(k))).collect();
    assert_eq!(by_kind["exec"], Severity::Info);
    assert_eq!(by_kind["connect"], Severity::Warn, "denied");
    assert_eq!(by_kind["syscall"], Severity::Error, "killed");
    assert_eq!(by_kind["verdict"], Severity::Error, "a verdict that killed");
    assert_eq!(by_kind["ended"], Severity::Error, "a run killed");
    assert_eq!(by_kind["escape"], Severity::Warn);
    assert_eq!(by_kind["started"], Severity::Info);
    let flagged = EventKind::Verdict {
        deviation: DeviationKind::Exec,
        subject: "/bin/false".into(),
        reason: "new".into(),
        mode: Mode::Flag,
        outcome: Outcome::Flagged,
        baseline_revision: 1,
        action_time: time("2026-11-26T15:00:00Z"),
    };
    assert_eq!(severity(&flagged), Severity::Warn);
    assert_eq!((Severity::Warn.text(), Severity::Warn.number()), ("WARN", 13));
    assert_eq!((Severity::Error.text(), Severity::Error.number()), ("ERROR", 17));
    assert_eq!((Severity::Info.text(), Severity::Info.number()), ("INFO", 9));
}

#[test]
fn a_local_run_has_no_pod_and_an_egress_without_a_name_is_its_address() {
    let runs = HashMap::from([(1, run_row(1, None))]);
    let started = EventKind::Started { source: "local".into(), cgroup: "/p".into(), pod: None };
    let o = otel(&StoredEvent { seq: 1, run: 1, event: event(started) }, &runs);
    assert!(o.keys().all(|k| !k.starts_with("k8s.") || k == "k8s.node.name"), "{o:?}");
    let connect = EventKind::Connect {
        op: "sendmsg".into(),
        protocol: crate::egress::EgressProtocol::Icmp,
        address: ip("10.0.0.9"),
        port: 0,
        name: None,
        action: Action::None,
    };
    // An unknown run: the event still goes out, without what the run would add.
    let o = otel(&StoredEvent { seq: 2, run: 99, event: event(connect) }, &runs);
    assert_eq!(o["server.address"], "10.0.0.9");
    assert_eq!(o["paddock.network.protocol"], "icmp");
    assert!(!o.contains_key("network.transport"), "icmp is no network.transport value");
    assert_eq!(o["paddock.run"], 99);
}

#[test]
fn an_event_of_a_kubernetes_run_is_named_by_the_runs_pod() {
    let runs = HashMap::from([(3, run_row(3, Some(pod())))]);
    let exec = event(every_kind().swap_remove(4));
    let o = otel(&StoredEvent { seq: 9, run: 3, event: exec }, &runs);
    assert_eq!(o["k8s.pod.name"], "triage-7-abcde");
    assert_eq!(o["k8s.job.name"], "triage-7");
}

#[test]
fn the_example_of_the_docs_is_what_is_written() {
    let docs = include_str!("../../../../docs/log-export.md");
    let example = docs.lines().find(|l| l.starts_with("{\"time\"")).expect("an example line");
    let mut exec = event(every_kind().swap_remove(4));
    if let EventKind::Exec { argv_truncated, .. } = &mut exec.kind {
        *argv_truncated = false;
    }
    let runs = HashMap::from([(5, run_row(5, Some(pod())))]);
    let stored = StoredEvent { seq: 104, run: 5, event: exec };
    let store = "0123456789abcdef0123456789abcdef";
    let mut line = Vec::new();
    super::otel::write_line(&mut line, &OtelRecord::new(&stored, &runs, "node-1", store)).unwrap();
    assert_eq!(String::from_utf8(line).unwrap(), format!("{example}\n"));
}
