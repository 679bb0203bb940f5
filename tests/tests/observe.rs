//! What a tracked investigation does reaches the event stream, once, attributed to it;
//! what others do never does. Real kernel, real daemon; needs root.
use std::time::Duration;

use paddock_tests::{
    Daemon, Listener, actor_bin, dump, eventually, of_kind, skip_unless_root, udp_port, wait_until,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn attributed(events: &[Value], id: &str, phase: &str) {
    for e in events {
        assert_eq!(e["investigation"], id, "{e}");
        assert_eq!(e["phase"], phase, "{e}");
    }
}

#[test]
fn exec_write_connect_and_udp_each_appear_once_with_their_fields() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let listener = Listener::start();
    let (_udp, udp) = udp_port();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("report.txt");
    let pid_file = work.path().join("pid");
    let out = daemon.run_actor(
        "inv-observe",
        "limited-write",
        &[
            &format!("pid:{}", pid_file.display()),
            "exec:/bin/true",
            &format!("write:{}", file.display()),
            &format!("connect:127.0.0.1:{}", listener.port),
            &format!("udp:127.0.0.1:{udp}"),
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let actor_pid: u64 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let events = daemon.events_of("inv-observe", WAIT);
    attributed(&events, "inv-observe", "limited-write");

    let execs = of_kind(&events, "exec", |e| e["path"] == "/bin/true");
    assert_eq!(execs.len(), 1, "one exec of /bin/true:\n{}", dump(&events));
    assert_eq!(execs[0]["ppid"], actor_pid, "the actor is its parent: {}", execs[0]);
    assert_eq!(execs[0]["argv"][0], "/bin/true");
    let forks = of_kind(&events, "fork", |e| e["pid"] == actor_pid);
    assert_eq!(forks.len(), 1, "{}", dump(&events));
    assert_eq!(execs[0]["pid"], forks[0]["child_pid"], "the exec'd process is the forked child");

    let actor_exec = of_kind(&events, "exec", |e| e["pid"] == actor_pid);
    assert_eq!(actor_exec.len(), 1, "the actor's own exec is the first thing seen");
    assert_eq!(actor_exec[0]["path"], actor_bin().to_str().unwrap());

    let writes = of_kind(&events, "open", |e| e["path"] == file.to_str().unwrap());
    assert_eq!(writes.len(), 1, "{}", dump(&events));
    assert_eq!(writes[0]["write"], true);
    assert_eq!(writes[0]["pid"], actor_pid);

    let connects =
        of_kind(&events, "connect", |e| e["op"] == "connect" && e["port"] == listener.port);
    assert_eq!(connects.len(), 1, "{}", dump(&events));
    assert_eq!(connects[0]["protocol"], "tcp");
    assert_eq!(connects[0]["address"], "127.0.0.1");
    assert_eq!(connects[0]["pid"], actor_pid);

    let sends = of_kind(&events, "connect", |e| e["op"] == "sendmsg" && e["port"] == udp);
    assert_eq!(sends.len(), 1, "{}", dump(&events));
    assert_eq!(sends[0]["protocol"], "udp");
    // The cgroup hooks cannot read the parent; the daemon fills it in from what it saw.
    assert_ne!(actor_exec[0]["ppid"], 0);
    assert_eq!(sends[0]["ppid"], actor_exec[0]["ppid"], "{}", sends[0]);
    assert_eq!(connects[0]["ppid"], actor_exec[0]["ppid"], "{}", connects[0]);

    let ended = of_kind(&events, "ended", |_| true);
    assert_eq!(ended.len(), 1);
    assert!(
        ended[0]["egress_packets"].as_u64().unwrap() >= 2,
        "TCP SYN and UDP datagram counted: {}",
        ended[0]
    );
}

#[test]
fn a_daemonised_grandchild_stays_attributed_and_keeps_the_investigation_alive() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let work = tempfile::tempdir().unwrap();
    let late = work.path().join("late.txt");
    let follower = daemon.follow(Some("inv-daemonised"));
    // Not `output()`: the grandchild would hold its pipes and make us wait for it.
    let status = daemon
        .cmd(&["run", "--investigation-id", "inv-daemonised", "--phase", "autonomous", "--"])
        .arg(actor_bin())
        .args(["daemonize", "sleep:700", &format!("write:{}", late.display())])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(!late.exists(), "paddock run returned before the grandchild wrote");
    // `paddock run` returned with the command; the grandchild still runs, tracked.
    let status = daemon.status();
    let active: Vec<&Value> = status["investigations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["id"] == "inv-daemonised")
        .collect();
    assert_eq!(active.len(), 1, "still tracked after the command exited: {status}");

    follower.wait_for(WAIT, |e| e["kind"] == "ended");
    let events = follower.events();
    attributed(&events, "inv-daemonised", "autonomous");
    let writes = of_kind(&events, "open", |e| e["path"] == late.to_str().unwrap());
    assert_eq!(writes.len(), 1, "the grandchild's write is attributed:\n{}", dump(&events));
    let forks = of_kind(&events, "fork", |_| true);
    assert_eq!(forks.len(), 2, "two forks to daemonise:\n{}", dump(&events));
    assert_eq!(writes[0]["pid"], forks[1]["child_pid"]);
    let position = |pred: &dyn Fn(&Value) -> bool| events.iter().position(pred).unwrap();
    assert!(
        position(&|e| e["kind"] == "ended") > position(&|e| e["path"] == late.to_str().unwrap()),
        "the investigation ends after its last process"
    );
}

#[test]
fn untracked_processes_never_appear() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let listener = Listener::start();
    let work = tempfile::tempdir().unwrap();
    let tracked_file = work.path().join("tracked.txt");
    let untracked_file = work.path().join("untracked.txt");
    let all = daemon.follow(None);
    // The same actions, untracked, while a tracked investigation runs.
    let untracked = std::process::Command::new(actor_bin())
        .args([
            "sleep:200",
            "exec:/bin/true",
            &format!("write:{}", untracked_file.display()),
            &format!("connect:127.0.0.1:{}", listener.port),
        ])
        .spawn()
        .unwrap();
    let out = daemon.run_actor(
        "inv-tracked",
        "read-only",
        &["sleep:400", &format!("write:{}", tracked_file.display())],
    );
    assert!(out.status.success());
    let untracked_pid = untracked.id();
    assert!(untracked.wait_with_output().unwrap().status.success());
    all.wait_for(WAIT, |e| e["kind"] == "ended");
    let events = all.events();
    assert!(!of_kind(&events, "open", |e| e["path"] == tracked_file.to_str().unwrap()).is_empty());
    for e in &events {
        assert_eq!(e["investigation"], "inv-tracked", "only the tracked investigation: {e}");
        assert_ne!(e["pid"], untracked_pid, "{e}");
        assert_ne!(e["path"], untracked_file.to_str().unwrap(), "{e}");
        assert_ne!(e["port"], listener.port, "{e}");
    }
}

#[test]
fn two_investigations_at_once_are_never_mixed_up() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let a_listener = Listener::start();
    let b_listener = Listener::start();
    let work = tempfile::tempdir().unwrap();
    let spawn = |id: &str, phase: &str, name: &str, port: u16| {
        daemon
            .cmd(&["run", "--investigation-id", id, "--phase", phase, "--"])
            .arg(actor_bin())
            .args([
                "sleep:300".to_string(),
                format!("write:{}", work.path().join(name).display()),
                format!("connect:127.0.0.1:{port}"),
                "exec:/bin/true".into(),
                "sleep:300".into(),
            ])
            .spawn()
            .unwrap()
    };
    let a = spawn("inv-a", "shadow", "a.txt", a_listener.port);
    let b = spawn("inv-b", "autonomous", "b.txt", b_listener.port);
    assert!(a.wait_with_output().unwrap().status.success());
    assert!(b.wait_with_output().unwrap().status.success());
    for (id, phase, mine, theirs, port, other_port) in [
        ("inv-a", "shadow", "a.txt", "b.txt", a_listener.port, b_listener.port),
        ("inv-b", "autonomous", "b.txt", "a.txt", b_listener.port, a_listener.port),
    ] {
        let events = daemon.events_of(id, WAIT);
        attributed(&events, id, phase);
        let path = |name: &str| work.path().join(name).to_str().unwrap().to_owned();
        assert_eq!(
            of_kind(&events, "open", |e| e["path"] == path(mine)).len(),
            1,
            "{}",
            dump(&events)
        );
        assert!(
            of_kind(&events, "open", |e| e["path"] == path(theirs)).is_empty(),
            "{}",
            dump(&events)
        );
        assert_eq!(of_kind(&events, "connect", |e| e["port"] == port).len(), 1);
        assert!(of_kind(&events, "connect", |e| e["port"] == other_port).is_empty());
    }
}

#[test]
fn a_syscall_made_1000_times_is_one_event_and_counted_1000_times() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let out = daemon.run_actor("inv-counts", "read-only", &["getppid:1000"]);
    assert!(out.status.success());
    let events = daemon.events_of("inv-counts", WAIT);
    let firsts = of_kind(&events, "syscall", |e| e["name"] == "getppid");
    assert_eq!(firsts.len(), 1, "{}", dump(&events));
    assert_eq!(firsts[0]["nr"], 110);
    let ended = of_kind(&events, "ended", |_| true);
    assert_eq!(ended[0]["syscalls"]["getppid"], 1000, "{}", ended[0]);
    // Every syscall seen first is counted, and counted syscalls were all seen first.
    let counted: Vec<&String> = ended[0]["syscalls"].as_object().unwrap().keys().collect();
    let seen: Vec<&str> =
        of_kind(&events, "syscall", |_| true).iter().map(|e| e["name"].as_str().unwrap()).collect();
    for name in &counted {
        assert!(seen.contains(&name.as_str()), "{name} counted but never reported first");
    }
    assert_eq!(seen.len(), counted.len(), "one first-use event per syscall");
}

#[test]
fn a_flood_overflowing_the_ring_buffer_is_counted_and_the_daemon_keeps_working() {
    skip_unless_root!();
    // One page of ring buffer holds a dozen open records; four writers each making 5,000
    // new files (each a new path: repeated opens of one path are reported once), on two
    // CPUs, leave the reader too little time to keep up. No rate limit: this is about the
    // ring buffer.
    let mut config = paddock_tests::config();
    config.kernel.ring_buffer_bytes = 4096;
    config.limits.records_per_second = 0;
    let daemon = Daemon::start_with(config);
    let actor = actor_bin();
    let work = tempfile::tempdir().unwrap();
    let script = format!(
        "for i in 1 2 3 4; do mkdir -p {w}/$i; {a} touch-many:{w}/$i:5000 & done; wait",
        a = actor.display(),
        w = work.path().display()
    );
    let out = daemon.run("inv-flood", "autonomous", &["/bin/sh", "-c", &script], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events = daemon.events_of("inv-flood", WAIT);
    let status = daemon.status();
    let lost_opens = status["lost_records"]["open"].as_u64().unwrap_or(0);
    let delivered = of_kind(&events, "open", |e| {
        e["path"].as_str().is_some_and(|p| p.starts_with(work.path().to_str().unwrap()))
    })
    .len() as u64;
    assert!(lost_opens > 0, "nothing lost with a one-page buffer? {status}");
    assert!(delivered < 20_000, "{delivered} delivered and {lost_opens} lost?");
    assert!(
        delivered + lost_opens >= 20_000,
        "every open was delivered or counted as lost: {delivered} delivered, {lost_opens} lost"
    );
    // Counted against the investigation too, in its ended event.
    let ended = of_kind(&events, "ended", |_| true)[0];
    assert!(ended["lost_records"].as_u64().unwrap_or(0) >= lost_opens, "{ended}");
    assert_eq!(
        status["lost_total"].as_u64().unwrap(),
        status["lost_records"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>()
    );
    // Reported in the daemon's log, not only in status.
    wait_until(
        WAIT,
        Duration::from_millis(100),
        || daemon.log().contains("records lost"),
        || format!("no loss reported in the log:\n{}", daemon.log()),
    );
    // And the daemon still works.
    let out = daemon.run_actor("inv-after-flood", "autonomous", &["exec:/bin/true"]);
    assert!(out.status.success());
    let events = daemon.events_of("inv-after-flood", WAIT);
    assert_eq!(of_kind(&events, "exec", |e| e["path"] == "/bin/true").len(), 1);
}

#[test]
fn a_path_not_yet_paged_in_is_still_reported() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("cold-target.txt");
    std::fs::write(&target, "x").unwrap();
    let holder = work.path().join("path-holder");
    std::fs::write(&holder, format!("{}\0", target.display())).unwrap();
    let out =
        daemon.run_actor("inv-cold", "read-only", &[&format!("open-mapped:{}", holder.display())]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events = daemon.events_of("inv-cold", WAIT);
    let opens = of_kind(&events, "open", |e| e["path"] == target.to_str().unwrap());
    assert_eq!(opens.len(), 1, "{}", dump(&events));
    assert!(
        of_kind(&events, "open", |e| e["path"] == "").is_empty(),
        "no open lost its path:\n{}",
        dump(&events)
    );
}

#[test]
fn a_process_moved_into_an_investigation_cgroup_is_tracked_from_then_on() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let work = tempfile::tempdir().unwrap();
    let (before, after) = (work.path().join("before.txt"), work.path().join("after.txt"));
    let host = daemon
        .cmd(&["run", "--investigation-id", "inv-host", "--phase", "shadow", "--", "sleep", "3"])
        .spawn()
        .unwrap();
    // The investigation's cgroup, once the daemon has made it.
    let cgroup = eventually(
        WAIT,
        Duration::from_millis(20),
        || {
            let status = daemon.status();
            // Listed as soon as it is reserved, with its cgroup once that is made: a path
            // that is not yet a directory would have the pid written to a file of that name.
            let investigations = status["investigations"].as_array().unwrap();
            let found = investigations.iter().find(|i| i["id"] == "inv-host");
            let dir = found.map(|i| std::path::PathBuf::from(i["cgroup"].as_str().unwrap()));
            dir.filter(|d| d.is_absolute() && d.join("cgroup.procs").exists()).ok_or(status)
        },
        |status| format!("no investigation: {status}"),
    );
    let mut mover = std::process::Command::new(actor_bin())
        .args([
            format!("write:{}", before.display()),
            "sleep:600".into(),
            format!("write:{}", after.display()),
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200)); // the first write is done, untracked
    std::fs::write(cgroup.join("cgroup.procs"), mover.id().to_string()).unwrap();
    assert!(mover.wait().unwrap().success());
    let mut host = host;
    assert!(host.wait().unwrap().success());
    let events = daemon.events_of("inv-host", WAIT);
    assert!(
        of_kind(&events, "open", |e| e["path"] == before.to_str().unwrap()).is_empty(),
        "{}",
        dump(&events)
    );
    let writes = of_kind(&events, "open", |e| e["path"] == after.to_str().unwrap());
    assert_eq!(writes.len(), 1, "{}", dump(&events));
    assert_eq!(writes[0]["pid"], mover.id());
}
