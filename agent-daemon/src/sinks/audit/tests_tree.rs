//! The process tree of a run.
use super::{
    AuditError, AuditStore, Outcome,
    testutil::*,
    tree::{Exit, Killed},
};
use crate::{
    events::{Event, EventKind},
    identity::InvestigationId,
};

fn id(s: &str) -> InvestigationId {
    s.parse().unwrap()
}

fn fork(parent: u32, comm: &str, child: u32, t: i64) -> Event {
    event("agent", at(t), parent, comm, EventKind::Fork { child_pid: child })
}

fn exit(pid: u32, comm: &str, code: Option<i32>, signal: Option<i32>, t: i64) -> Event {
    event("agent", at(t), pid, comm, EventKind::Exit { exit_code: code, signal })
}

/// sh runs cat (fine), then curl (killed by a verdict), and a sleep that dies in the kill.
fn killed_run(store: &mut AuditStore, instance: u32, start: i64) {
    let s = start;
    let reason = "exec of /usr/bin/curl is not in the read-only baseline";
    let events = vec![
        event("agent", at(s), 0, "", started()),
        event(
            "agent",
            at(s + 1),
            4242,
            "sh",
            exec("/bin/sh", &["sh", "-c", "cat /etc/hostname; curl -s http://example.com"]),
        ),
        fork(4242, "sh", 4243, s + 2),
        event("agent", at(s + 3), 4243, "cat", exec("/usr/bin/cat", &["cat", "/etc/hostname"])),
        event("agent", at(s + 4), 4243, "cat", open_file("/etc/hostname")),
        exit(4243, "cat", Some(0), None, s + 5),
        fork(4242, "sh", 4245, s + 6),
        event("agent", at(s + 7), 4245, "sleep", exec("/usr/bin/sleep", &["sleep", "60"])),
        fork(4242, "sh", 4244, s + 8),
        event(
            "agent",
            at(s + 9),
            4244,
            "curl",
            exec("/usr/bin/curl", &["curl", "-s", "http://example.com"]),
        ),
        event("agent", at(s + 10), 4244, "curl", verdict("killed", reason, at(s + 9))),
        exit(4244, "curl", None, Some(9), s + 11),
        exit(4245, "sleep", None, Some(9), s + 11),
        exit(4242, "sh", None, Some(9), s + 11),
        event("agent", at(s + 12), 0, "", ended("killed", at(s + 12))),
    ];
    let records: Vec<_> = events.into_iter().map(|e| record(instance, e)).collect();
    store.write_batch(&records).unwrap();
}

#[test]
fn the_tree_shows_who_ran_what_and_who_was_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store(dir.path());
    killed_run(&mut store, 1, 0);
    let tree = store.tree(&id("agent")).unwrap();
    assert_eq!(tree.outcome, Outcome::Killed);
    let pids: Vec<(u32, usize)> = tree.processes.iter().map(|p| (p.pid, p.depth)).collect();
    assert_eq!(pids, [(4242, 0), (4243, 1), (4245, 1), (4244, 1)]);
    let sh = &tree.processes[0];
    assert_eq!((sh.parent, sh.children.as_slice()), (1, &[4243, 4245, 4244][..]));
    assert_eq!(tree.processes[1].exit, Some(Exit::Code(0)));
    let curl = &tree.processes[3];
    assert_eq!(curl.execs[0].argv, ["curl", "-s", "http://example.com"]);
    assert_eq!(curl.exit, Some(Exit::Signal(9)));
    assert_eq!(
        curl.killed,
        Some(Killed {
            reason: "exec of /usr/bin/curl is not in the read-only baseline".into(),
            named: true
        })
    );
    assert!(tree.processes[2].killed.as_ref().is_some_and(|k| !k.named));
    let text = tree.to_string();
    let expected = "\
4242 sh [exec /bin/sh -c \"cat /etc/hostname; curl -s http://example.com\"] KILLED (signal 9 after verdict: exec of /usr/bin/curl is not in the read-only baseline)
  4243 cat [exec /usr/bin/cat /etc/hostname] exit 0
  4245 sleep [exec /usr/bin/sleep 60] KILLED (signal 9 after verdict: exec of /usr/bin/curl is not in the read-only baseline)
  4244 curl [exec /usr/bin/curl -s http://example.com] KILLED (verdict: exec of /usr/bin/curl is not in the read-only baseline)
";
    assert_eq!(text, expected);
    let json = serde_json::to_value(&tree).unwrap();
    assert_eq!(json["investigation"], "agent");
    assert_eq!(json["outcome"], "killed");
    assert_eq!(json["processes"][1]["exit"]["code"], 0);
    assert_eq!(json["processes"][3]["killed"]["named"], true);
    assert_eq!(json["processes"][0]["children"], serde_json::json!([4243, 4245, 4244]));
}

#[test]
fn the_latest_run_by_default_and_any_run_by_number() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store(dir.path());
    killed_run(&mut store, 1, 0);
    let later = vec![
        event("agent", at(100), 0, "", started()),
        event("agent", at(101), 77, "ls", exec("/bin/ls", &["ls"])),
        exit(77, "ls", Some(2), None, 102),
        event("agent", at(103), 78, "true", exec("/bin/true", &["true"])),
    ];
    store.write_batch(&later.into_iter().map(|e| record(2, e)).collect::<Vec<_>>()).unwrap();
    let tree = store.tree(&id("agent")).unwrap();
    assert_eq!(tree.outcome, Outcome::Running);
    assert_eq!(tree.to_string(), "77 ls [exec /bin/ls] exit 2\n78 true [exec /bin/true] running\n");
    let first = store.investigation_tree(&id("agent"), Some(tree.run - 1)).unwrap();
    assert_eq!(first.processes.len(), 4);
    let err = store.investigation_tree(&id("quiet"), Some(tree.run - 1)).unwrap_err();
    assert!(matches!(err, AuditError::UnknownRun(_)), "a run of another investigation: {err}");
    // A run without process events.
    store.write_batch(&run("quiet", 3, 0, 2, Some("ok"))).unwrap();
    let quiet = store.tree(&id("quiet")).unwrap();
    assert!(quiet.processes.is_empty());
    assert!(quiet.to_string().starts_with("(no process events"), "{quiet}");
}

#[test]
fn deep_chains_and_reused_pids_are_fine() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store(dir.path());
    let mut events = vec![event("agent", at(0), 0, "", started())];
    for pid in 1000..21_000u32 {
        events.push(fork(pid, "sh", pid + 1, 1));
    }
    // Pid 5 lives, exits, and is used again by another process.
    events.push(fork(1, "init", 5, 2));
    events.push(exit(5, "a", Some(0), None, 3));
    events.push(fork(1, "init", 5, 4));
    events.push(event("agent", at(5), 5, "b", exec("/bin/b", &["b"])));
    let records: Vec<_> = events.into_iter().map(|e| record(1, e)).collect();
    store.write_batch(&records).unwrap();
    let tree = store.tree(&id("agent")).unwrap();
    assert_eq!(tree.processes.iter().map(|p| p.depth).max(), Some(20_000));
    let fives: Vec<_> = tree.processes.iter().filter(|p| p.pid == 5).collect();
    assert_eq!(fives.len(), 2);
    assert_eq!(fives[0].exit, Some(Exit::Code(0)));
    assert_eq!(fives[1].comm, "b");
    let text = tree.to_string();
    assert_eq!(text.lines().count(), tree.processes.len());
    assert!(text.len() < 5 << 20, "indentation is bounded: {}", text.len());
    assert!(text.contains(&format!("{:80}(depth 20000) 21000 sh", "")), "deepest line");
    serde_json::to_string(&tree).unwrap();
}
