use std::time::{Duration, Instant};

use super::*;
use crate::{
    baseline::{Destination, DeviationKind, Protocol},
    egress::EgressProtocol,
};

fn judge() -> (tempfile::TempDir, Judge) {
    let dir = tempfile::tempdir().unwrap();
    let (judge, problems) = Judge::open(Store::open(dir.path()).unwrap()).unwrap();
    assert!(problems.is_empty());
    (dir, judge)
}

fn exec(path: &str) -> Observation {
    Observation::Exec { path: path.into(), literal: false }
}

fn run(
    judge: &mut Judge,
    instance: u32,
    phase: Phase,
    observations: &[Observation],
) -> (Vec<Verdict>, Outcome) {
    judge.begin(instance, phase);
    let mut verdicts: Vec<Verdict> =
        observations.iter().filter_map(|o| judge.observe(instance, o, Action::None)).collect();
    let (last, outcome) = judge.end(instance, 10, 0, Instant::now());
    verdicts.extend(last);
    (verdicts, outcome)
}

#[test]
fn learns_while_learning_then_flags_once_per_new_thing() {
    let (_dir, mut judge) = judge();
    let usual = [exec("/bin/ls"), Observation::Syscall("read".into())];
    for i in 0..3 {
        assert_eq!(run(&mut judge, i, Phase::ReadOnly, &usual), (vec![], Outcome::Ok));
    }
    assert_eq!(judge.baseline(Phase::ReadOnly).learned_from, 3);
    assert_eq!(judge.baseline(Phase::ReadOnly).revision, 1, "content changed once");
    judge.set_mode(Phase::ReadOnly, Mode::Flag).unwrap();
    assert_eq!(run(&mut judge, 10, Phase::ReadOnly, &usual).1, Outcome::Ok);
    let (verdicts, outcome) = run(
        &mut judge,
        11,
        Phase::ReadOnly,
        &[exec("/bin/ls"), exec("/bin/cat"), exec("/bin/cat")],
    );
    assert_eq!(outcome, Outcome::Flagged);
    assert_eq!(verdicts.len(), 1, "{verdicts:?}");
    assert_eq!(verdicts[0].deviation.subject, "/bin/cat");
    assert!(!verdicts[0].kill);
    assert!(
        !judge.baseline(Phase::ReadOnly).execs.contains("/bin/cat"),
        "flag mode does not learn"
    );
    let summary = &judge.summaries()[1];
    assert_eq!((summary.phase, summary.runs, summary.strayed), (Phase::ReadOnly, 5, 1));
}

#[test]
fn enforce_kills_on_the_first_deviation_and_says_nothing_more() {
    let (_dir, mut judge) = judge();
    run(&mut judge, 1, Phase::Autonomous, &[exec("/bin/ls")]);
    judge.set_mode(Phase::Autonomous, Mode::Enforce).unwrap();
    let (verdicts, outcome) =
        run(&mut judge, 2, Phase::Autonomous, &[exec("/bin/sh"), exec("/bin/curl")]);
    assert_eq!(outcome, Outcome::Killed);
    assert_eq!(verdicts.len(), 1);
    assert!(verdicts[0].kill);
    assert!(verdicts[0].deviation.reason.contains("exec of /bin/sh"));
}

#[test]
fn phases_are_judged_apart() {
    let (_dir, mut judge) = judge();
    run(&mut judge, 1, Phase::Shadow, &[exec("/bin/ls")]);
    judge.set_mode(Phase::Shadow, Mode::Enforce).unwrap();
    // Another phase, still learning, takes in the same exec without a verdict.
    assert_eq!(
        run(&mut judge, 2, Phase::LimitedWrite, &[exec("/bin/curl")]),
        (vec![], Outcome::Ok)
    );
    assert!(judge.baseline(Phase::LimitedWrite).execs.contains("/bin/curl"));
}

#[test]
fn envelopes_are_learned_at_the_end_and_checked_while_running() {
    let (_dir, mut judge) = judge();
    judge.begin(1, Phase::Shadow);
    for pid in [10, 11, 12] {
        assert!(judge.process(1, pid, true).is_none());
    }
    judge.end(1, 100, 0, Instant::now());
    assert_eq!(judge.baseline(Phase::Shadow).envelope.max_processes, 3);
    judge.set_mode(Phase::Shadow, Mode::Flag).unwrap();
    judge.begin(2, Phase::Shadow);
    let verdicts: Vec<Verdict> = (20..30).filter_map(|pid| judge.process(2, pid, true)).collect();
    assert_eq!(verdicts.len(), 1, "one verdict: {verdicts:?}");
    assert!(
        verdicts[0].deviation.reason.starts_with("7 processes at once"),
        "{}",
        verdicts[0].deviation.reason
    );
}

#[test]
fn syscall_rates_come_from_samples() {
    let (_dir, mut judge) = judge();
    let t0 = Instant::now();
    judge.begin(1, Phase::Shadow);
    judge.sample(1, 0, 0, t0);
    judge.sample(1, 1_000, 0, t0 + Duration::from_secs(1));
    judge.end(1, 1_500, 64, t0 + Duration::from_secs(2));
    let e = &judge.baseline(Phase::Shadow).envelope;
    assert_eq!((e.max_syscalls_per_second, e.max_egress_bytes), (1_000, 64));
}

#[test]
fn short_windows_are_taken_over_a_whole_second() {
    let (_dir, mut judge) = judge();
    let t0 = Instant::now();
    judge.begin(1, Phase::Shadow);
    judge.sample(1, 300, 0, t0 + Duration::from_secs(1));
    // The run ends 40 ms after the sample with 20 more calls: 20 per second, not 500.
    judge.end(1, 320, 0, t0 + Duration::from_millis(1_040));
    // A run of 200 ms that made 50 calls, never sampled.
    judge.begin(2, Phase::ReadOnly);
    judge.end(2, 50, 0, t0 + Duration::from_millis(200));
    assert_eq!(judge.baseline(Phase::Shadow).envelope.max_syscalls_per_second, 300);
    assert_eq!(judge.baseline(Phase::ReadOnly).envelope.max_syscalls_per_second, 50);
}

#[test]
fn import_checks_the_file_and_keeps_the_current_baseline_when_it_is_bad() {
    let (_dir, mut judge) = judge();
    run(&mut judge, 1, Phase::ReadOnly, &[exec("/bin/ls")]);
    let good = judge.export(Phase::ReadOnly);
    let before = judge.baseline(Phase::ReadOnly).clone();
    for (text, says) in [
        (good.replace("/bin/ls", "/tmp/<oops>/x"), "execs[0]"),
        (good[..good.len() / 2].to_owned(), "baseline file edited.toml"),
        (
            good.replace("phase = \"read-only\"", "phase = \"shadow\""),
            "holds the shadow baseline, not the read-only one",
        ),
    ] {
        let err = judge.import(Phase::ReadOnly, &text, "edited.toml").unwrap_err().to_string();
        assert!(err.contains(says), "{err}");
        assert_eq!(judge.baseline(Phase::ReadOnly), &before, "still in force after {says}");
    }
    let edited = good.replace("\"/bin/ls\",", "\"/bin/ls\",\n  \"/bin/cat\",");
    assert_eq!(judge.diff(Phase::ReadOnly, &edited, "edited.toml").unwrap(), ["+ exec /bin/cat"]);
    let revision = judge.import(Phase::ReadOnly, &edited, "edited.toml").unwrap();
    assert_eq!(revision, before.revision + 1);
    assert!(judge.baseline(Phase::ReadOnly).execs.contains("/bin/cat"));
}

#[test]
fn state_survives_a_restart_and_reset_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut judge, _) = Judge::open(Store::open(dir.path()).unwrap()).unwrap();
        run(&mut judge, 1, Phase::Autonomous, &[exec("/bin/ls")]);
        judge.set_mode(Phase::Autonomous, Mode::Enforce).unwrap();
    }
    let (mut judge, _) = Judge::open(Store::open(dir.path()).unwrap()).unwrap();
    assert_eq!(judge.mode(Phase::Autonomous), Mode::Enforce);
    assert!(judge.baseline(Phase::Autonomous).execs.contains("/bin/ls"));
    assert_eq!(judge.reset(Phase::Autonomous).unwrap(), Mode::Enforce);
    assert_eq!(judge.mode(Phase::Autonomous), Mode::Learn);
    assert_eq!(judge.baseline(Phase::Autonomous).size(), 0);
    assert_eq!(judge.summaries()[3].runs, 0);
}

#[test]
fn events_become_observations() {
    let connect = EventKind::Connect {
        op: "connect".into(),
        protocol: EgressProtocol::Tcp,
        address: "10.0.0.1".parse().unwrap(),
        port: 443,
        name: None,
        action: Action::Denied,
    };
    let egress = |addr: &str| {
        Observation::Egress(Destination {
            protocol: Protocol::Tcp,
            addr: addr.parse().unwrap(),
            port: 443,
        })
    };
    assert_eq!(observations(&connect), [Some((egress("10.0.0.1"), Action::Denied)), None]);
    let mapped = EventKind::Connect {
        op: "connect".into(),
        protocol: EgressProtocol::Tcp,
        address: "::ffff:10.0.0.1".parse().unwrap(),
        port: 443,
        name: None,
        action: Action::Denied,
    };
    assert_eq!(
        observations(&mapped)[0],
        Some((egress("10.0.0.1"), Action::Denied)),
        "an IPv4-mapped address is judged as the IPv4 one"
    );
    // Other protocols are judged by number; an ICMP send is not egress (an ICMP socket
    // is judged by its kind when it is made).
    for (protocol, judged) in [
        (EgressProtocol::Udp, Some(Protocol::Udp)),
        (EgressProtocol::Other(132), Some(Protocol::Other(132))),
        (EgressProtocol::Icmp, None),
    ] {
        let connect = EventKind::Connect {
            op: "sendmsg".into(),
            protocol,
            address: "10.0.0.1".parse().unwrap(),
            port: 53,
            name: None,
            action: Action::None,
        };
        let seen = match &observations(&connect)[0] {
            Some((Observation::Egress(d), _)) => Some(d.protocol),
            None => None,
            other => panic!("{other:?}"),
        };
        assert_eq!(seen, judged, "{protocol}");
    }
    let named = EventKind::Connect {
        op: "connect".into(),
        protocol: EgressProtocol::Tcp,
        address: "::ffff:10.0.0.1".parse().unwrap(),
        port: 443,
        name: Some("api.example.com".into()),
        action: Action::Denied,
    };
    let Some((Observation::NamedEgress { name, destination }, Action::Denied)) =
        observations(&named)[0].clone()
    else {
        panic!("a connect with a name is judged by it")
    };
    assert_eq!(
        (name.as_str(), destination.addr.to_string()),
        ("api.example.com", "10.0.0.1".into())
    );
    let dns = |op: &str, notes: Vec<String>| EventKind::Dns {
        op: op.into(),
        name: "x.example.com".into(),
        qtype: "A".into(),
        server: "127.0.0.53".parse().unwrap(),
        port: 53,
        rcode: None,
        answers: vec![],
        notes,
        action: Action::Denied,
    };
    assert_eq!(
        observations(&dns("query", vec![])),
        [Some((Observation::DnsQuery("x.example.com".into()), Action::Denied)), None]
    );
    assert!(
        matches!(
            observations(&dns("query", vec!["malformed".into()]))[0],
            Some((Observation::Blind(_), Action::Denied))
        ),
        "a query paddock could not read is never a pass"
    );
    let answer = dns("answer", vec![]);
    assert_eq!(observations(&answer), [None, None], "answers are evidence, not behaviour");
    let open = EventKind::Open {
        path: "/etc/x".into(),
        write: false,
        flags: 0,
        via: None,
        state: Default::default(),
    };
    assert_eq!(
        observations(&open),
        [Some((Observation::FileRead("/etc/x".into()), Action::None)), None]
    );
    let cut = EventKind::Open {
        path: "/etc/x".into(),
        write: false,
        flags: 0,
        via: None,
        state: crate::events::PathState { truncated: true, ..Default::default() },
    };
    assert!(matches!(
        observations(&cut)[0],
        Some((Observation::Blind(crate::baseline::Blind::UnreadablePath { .. }), _))
    ));
    let rename = EventKind::FileOp {
        op: "rename".into(),
        path: "/tmp/a".into(),
        path2: Some("/etc/b".into()),
        state: Default::default(),
    };
    assert_eq!(
        observations(&rename),
        [
            Some((Observation::FileWrite("/tmp/a".into()), Action::None)),
            Some((Observation::FileWrite("/etc/b".into()), Action::None))
        ]
    );
    assert_eq!(observations(&EventKind::Fork { child_pid: 3 }), [None, None]);
}

#[test]
fn blindness_kills_in_enforce_only_when_failing_closed() {
    let (_dir, mut judge) = judge();
    judge.set_mode(Phase::Shadow, Mode::Enforce).unwrap();
    let sight = Sight { lost: 3, throttled: 0, untracked: 0 };
    judge.begin(1, Phase::Shadow);
    let verdicts = judge.sight(1, sight);
    assert_eq!(verdicts.len(), 1);
    assert_eq!(verdicts[0].deviation.kind, DeviationKind::LostRecords);
    assert!(verdicts[0].kill, "fail closed by default");
    assert!(judge.sight(1, sight).is_empty(), "once per investigation");
    judge.set_fail_closed(false);
    judge.begin(2, Phase::Shadow);
    let verdicts = judge.sight(2, Sight { lost: 0, throttled: 0, untracked: 2 });
    assert_eq!(verdicts[0].deviation.kind, DeviationKind::Untracked);
    assert!(!verdicts[0].kill, "flagged only");
    // A behaviour deviation still kills.
    let v = judge.observe(2, &exec("/bin/ls"), Action::None).unwrap();
    assert!(v.kill);
    judge.set_mode(Phase::Shadow, Mode::Learn).unwrap();
    judge.begin(3, Phase::Shadow);
    assert!(judge.sight(3, sight).is_empty(), "learning phases are not judged");
}

#[test]
fn an_unknown_phase_is_watched_but_never_learned_or_judged() {
    let (_dir, mut judge) = judge();
    let (verdicts, outcome) = run(&mut judge, 1, Phase::Unknown, &[exec("/bin/curl")]);
    assert_eq!((verdicts, outcome), (vec![], Outcome::Ok));
    assert!(Phase::ALL.iter().all(|p| judge.baseline(*p).execs.is_empty()));
    assert_eq!(judge.summaries().len(), 4);
}
