use super::*;

fn event(kind: EventKind) -> Event {
    Event {
        time: DateTime::parse_from_rfc3339("2026-11-26T15:00:00.5Z").unwrap().to_utc(),
        investigation: "inv-1".parse().unwrap(),
        phase: Phase::ReadOnly,
        instance: 1,
        pid: 42,
        tid: None,
        ppid: 1,
        uid: 0,
        comm: "sh".into(),
        kind,
    }
}

#[test]
fn json_is_flat_with_a_kind_tag_and_round_trips() {
    let e = event(EventKind::Exec {
        path: "/bin/ls".into(),
        argv: vec!["ls".into(), "-l".into()],
        argv_truncated: false,
        via_fd: false,
        resolved: false,
        state: PathState::default(),
        action: Action::None,
    });
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["kind"], "exec");
    assert_eq!(json["investigation"], "inv-1");
    assert_eq!(json["phase"], "read-only");
    assert_eq!(json["path"], "/bin/ls");
    assert!(json.get("action").is_none(), "no action field when the kernel did nothing");
    assert!(json.get("truncated").is_none() && json.get("via_fd").is_none());
    let back: Event = serde_json::from_value(json).unwrap();
    assert_eq!(back, e);
    let cut = event(EventKind::Open {
        path: "/x".into(),
        write: false,
        flags: 0,
        via: None,
        state: PathState { truncated: true, ..Default::default() },
    });
    let json = serde_json::to_value(&cut).unwrap();
    assert_eq!(json["truncated"], true);
    assert_eq!(serde_json::from_value::<Event>(json).unwrap(), cut);
}

#[test]
fn outcomes_are_written_as_the_words_stored_so_far() {
    let ended = event(EventKind::Ended {
        syscalls: BTreeMap::new(),
        egress_bytes: 0,
        egress_packets: 0,
        events: 3,
        outcome: Outcome::Killed,
        reason: Some("exec of /usr/bin/curl".into()),
        emptied_at: DateTime::parse_from_rfc3339("2026-11-26T15:00:01Z").unwrap().to_utc(),
        lost_records: 0,
        throttled_records: 0,
        untracked: 0,
        escapes: 0,
    });
    let mut json = serde_json::to_value(&ended).unwrap();
    assert_eq!(json["outcome"], "killed");
    json["outcome"] = "flagged".into(); // as an earlier daemon wrote it
    let back: Event = serde_json::from_value(json.clone()).unwrap();
    assert!(matches!(back.kind, EventKind::Ended { outcome: Outcome::Flagged, .. }));
    json["outcome"] = "dead".into();
    assert!(serde_json::from_value::<Event>(json).is_err());
    assert!(ended.to_string().contains("ended killed: 3 events"), "{ended}");
}

#[test]
fn wait_status_decodes_to_code_or_signal() {
    assert_eq!(exit_from_status(0), (Some(0), None));
    assert_eq!(exit_from_status(3 << 8), (Some(3), None));
    assert_eq!(exit_from_status(9), (None, Some(9)));
    assert_eq!(exit_from_status(0x80 | 11), (None, Some(11))); // core dumped
}

#[test]
fn text_lines_name_the_investigation_and_the_act() {
    let line = event(EventKind::Connect {
        op: "connect".into(),
        protocol: crate::egress::EgressProtocol::Tcp,
        address: "127.0.0.1".parse().unwrap(),
        port: 80,
        name: None,
        action: Action::Denied,
    })
    .to_string();
    assert!(line.starts_with("2026-11-26T15:00:00.500Z inv-1 [read-only] sh(42) "), "{line}");
    assert!(line.ends_with("connect tcp 127.0.0.1 port 80 [DENIED]"), "{line}");
}
