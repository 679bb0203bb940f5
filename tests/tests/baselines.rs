//! Baselines are learned per phase, deviations become verdicts, and in enforce mode the
//! kernel acts first and the whole investigation dies. Real kernel, real daemon; needs root.
use std::{path::Path, time::Duration};

use paddock_tests::{
    Daemon, Listener, actor_bin, dump, entries, of_kind, process_gone, skip_unless_root,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn actor() -> String {
    actor_bin().to_str().unwrap().to_owned()
}

/// A fresh temporary directory (named as mktemp would: it generalises to `<random>`).
fn work() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// The usual work of the investigations these tests teach: run /bin/true, write a report in
/// a fresh temporary directory, connect to `port`, pause.
fn usual(dir: &Path, port: u16) -> Vec<String> {
    std::fs::create_dir_all(dir.join("out")).unwrap();
    vec![
        "exec:/bin/true".into(),
        format!("write:{}", dir.join("out/report.txt").display()),
        format!("connect:127.0.0.1:{port}"),
        "sleep:1".into(),
    ]
}

fn run(daemon: &Daemon, id: &str, phase: &str, steps: &[String]) -> std::process::Output {
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    daemon.run_actor(id, phase, &steps)
}

fn verdicts(events: &[Value]) -> Vec<&Value> {
    of_kind(events, "verdict", |_| true)
}

/// Teach `phase` with three ordinary runs.
fn teach(daemon: &Daemon, phase: &str, port: u16) {
    for i in 0..3 {
        let dir = work();
        let out = run(daemon, &format!("learn-{phase}-{i}"), phase, &usual(dir.path(), port));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn learning_keeps_exactly_what_the_runs_did_generalised() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let listener = Listener::start();
    teach(&daemon, "read-only", listener.port);
    for i in 0..3 {
        daemon.events_of(&format!("learn-read-only-{i}"), WAIT);
    }
    let b = daemon.baseline("read-only");
    assert_eq!(b["learned_from"].as_integer(), Some(3));
    assert_eq!(
        entries(&b, "execs"),
        [actor(), "/bin/true".into()]
            .iter()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    assert_eq!(entries(&b, "egress"), [format!("tcp 127.0.0.1/32 port {}", listener.port)]);
    assert_eq!(entries(&b, "file_writes"), ["/tmp/<random>/out/"], "three temp dirs, one prefix");
    let syscalls = entries(&b, "syscalls");
    for expected in ["execve", "socket", "connect", "openat", "clone3", "wait4"] {
        assert!(syscalls.contains(&expected.to_owned()), "{expected} learned: {syscalls:?}");
    }
    for never in ["getppid", "ptrace", "kill"] {
        assert!(!syscalls.contains(&never.to_owned()), "{never} never made: {syscalls:?}");
    }
    let reads = entries(&b, "file_reads");
    assert!(reads.contains(&"/etc/".to_owned()), "the loader's cache: {reads:?}");
    assert!(
        reads
            .iter()
            .all(|r| !r.starts_with("/root") && !r.starts_with("/home") && !r.starts_with("/tmp")),
        "{reads:?}"
    );
    assert_eq!(b["envelope"]["max_processes"].as_integer(), Some(2), "the actor and /bin/true");
    // Other phases learned nothing.
    assert!(entries(&daemon.baseline("shadow"), "execs").is_empty());
}

#[test]
fn flag_mode_gives_exactly_one_verdict_per_new_thing_and_none_for_the_usual() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let (listener, other) = (Listener::start(), Listener::start());
    teach(&daemon, "limited-write", listener.port);
    daemon.set_mode("limited-write", "flag");

    let dir = work();
    let out = run(&daemon, "inside", "limited-write", &usual(dir.path(), listener.port));
    assert!(out.status.success());
    let events = daemon.events_of("inside", WAIT);
    assert!(
        verdicts(&events).is_empty(),
        "{}",
        dump(&verdicts(&events).into_iter().cloned().collect::<Vec<_>>())
    );
    assert_eq!(of_kind(&events, "ended", |_| true)[0]["outcome"], "ok");

    type Steps<'a> = Box<dyn Fn(&Path) -> Vec<String> + 'a>;
    let strays: [(&str, Steps, &str, String); 4] = [
        (
            "new-binary",
            Box::new(|d| {
                let mut s = usual(d, listener.port);
                s[0] = "exec:/bin/false".into();
                s
            }),
            "exec",
            "/bin/false".into(),
        ),
        (
            "new-port",
            Box::new(|d| {
                let mut s = usual(d, listener.port);
                s[2] = format!("connect:127.0.0.1:{}", other.port);
                s
            }),
            "egress",
            format!("tcp 127.0.0.1 port {}", other.port),
        ),
        (
            "new-prefix",
            Box::new(|d| {
                let mut s = usual(d, listener.port);
                std::fs::create_dir_all(d.join("elsewhere")).unwrap();
                s[1] = format!("write:{}", d.join("elsewhere/x.txt").display());
                s
            }),
            "file_write",
            String::new(),
        ),
        (
            "new-syscall",
            Box::new(|d| {
                let mut s = usual(d, listener.port);
                s.push("getppid:1".into());
                s
            }),
            "syscall",
            "getppid".into(),
        ),
    ];
    for (id, steps, kind, subject) in strays {
        let dir = work();
        let out = run(&daemon, id, "limited-write", &steps(dir.path()));
        assert!(out.status.success(), "flag mode never kills: {id}");
        let events = daemon.events_of(id, WAIT);
        let found = verdicts(&events);
        assert_eq!(
            found.len(),
            1,
            "{id}: exactly one verdict:\n{}",
            dump(&found.into_iter().cloned().collect::<Vec<_>>())
        );
        let v = found[0];
        assert_eq!(v["deviation"], kind, "{v}");
        assert_eq!(v["outcome"], "flagged");
        assert_eq!(v["mode"], "flag");
        if !subject.is_empty() {
            assert_eq!(v["subject"], subject.as_str(), "{v}");
        } else {
            assert!(v["subject"].as_str().unwrap().ends_with("/elsewhere/x.txt"), "{v}");
        }
        assert!(v["reason"].as_str().unwrap().contains("limited-write baseline"), "{v}");
        assert_eq!(of_kind(&events, "ended", |_| true)[0]["outcome"], "flagged");
    }
    let list = daemon.ok(&["baseline", "list", "--json"]);
    let phases: Value = serde_json::from_str(&list).unwrap();
    let lw = phases.as_array().unwrap().iter().find(|p| p["phase"] == "limited-write").unwrap();
    assert_eq!((lw["runs"].as_u64(), lw["strayed"].as_u64()), (Some(8), Some(4)), "{lw}");
}

#[test]
fn enforce_kills_an_exec_outside_the_baseline_before_it_runs_and_the_whole_tree_with_it() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let dir = work();
    let (pid_file, late, marker) =
        (dir.path().join("pid"), dir.path().join("late"), dir.path().join("marker"));
    let script = dir.path().join("stray.sh");
    std::fs::write(&script, format!("#!/bin/sh\necho written > {}\n", marker.display())).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let sh = |steps: &str| -> Vec<String> { vec!["-c".into(), steps.into()] };
    // Learned: a daemonised helper, then /bin/true.
    for i in 0..2 {
        let d = work();
        let learn = format!(
            "{a} daemonize pid:{p} sleep:100; sleep 0.3; {a} exec:/bin/true",
            a = actor(),
            p = d.path().join("pid").display()
        );
        let out = daemon.run(
            &format!("learn-{i}"),
            "shadow",
            &["/bin/sh"],
            &sh(&learn).iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert!(out.status.success());
        daemon.events_of(&format!("learn-{i}"), WAIT);
    }
    daemon.set_mode("shadow", "enforce");
    let stray = format!(
        "{a} daemonize pid:{p} sleep:3000 write:{l}; sleep 0.3; {a} exec:{s}",
        a = actor(),
        p = pid_file.display(),
        l = late.display(),
        s = script.display()
    );
    let out = daemon.run(
        "stray",
        "shadow",
        &["/bin/sh"],
        &sh(&stray).iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(out.status.code(), Some(99), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("investigation stray was killed: exec of"), "{err}");
    let events = daemon.events_of("stray", WAIT);
    let found = verdicts(&events);
    assert_eq!(found.len(), 1, "{}", dump(&events));
    assert_eq!(found[0]["deviation"], "exec");
    assert_eq!(found[0]["subject"], script.to_str().unwrap());
    assert_eq!(found[0]["outcome"], "killed");
    let exec = of_kind(&events, "exec", |e| e["path"] == script.to_str().unwrap());
    assert_eq!(exec[0]["action"], "killed", "the kernel killed it: {}", exec[0]);
    assert!(!marker.exists(), "the straying executable never ran");
    let grandchild: u32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert!(process_gone(grandchild), "the double-forked child is dead too");
    std::thread::sleep(Duration::from_millis(3500));
    assert!(!late.exists(), "the daemonised child never finished");
    let ended = of_kind(&events, "ended", |_| true);
    assert_eq!(ended[0]["outcome"], "killed");
}

#[test]
fn enforce_refuses_egress_outside_the_baseline_and_kills() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let (allowed, forbidden) = (Listener::start(), Listener::start());
    teach(&daemon, "autonomous", allowed.port);
    daemon.set_mode("autonomous", "enforce");
    let dir = work();
    let out = run(&daemon, "inside", "autonomous", &usual(dir.path(), allowed.port));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let before = allowed.accepted();
    assert!(before >= 4, "learning and the allowed run connected: {before}");

    let dir = work();
    let mut steps = usual(dir.path(), allowed.port);
    steps[2] = format!("connect:127.0.0.1:{}", forbidden.port);
    let out = run(&daemon, "exfil", "autonomous", &steps);
    assert_eq!(out.status.code(), Some(99), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(forbidden.accepted(), 0, "no connection got through");
    let events = daemon.events_of("exfil", WAIT);
    let connect = of_kind(&events, "connect", |e| e["port"] == forbidden.port);
    assert_eq!(connect.len(), 1, "{}", dump(&events));
    assert_eq!(connect[0]["action"], "denied");
    let found = verdicts(&events);
    assert_eq!(found.len(), 1, "{}", dump(&events));
    assert_eq!(found[0]["deviation"], "egress");
    assert_eq!(found[0]["outcome"], "killed");
}

#[test]
fn enforce_kills_a_syscall_outside_the_baseline() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let listener = Listener::start();
    teach(&daemon, "read-only", listener.port);
    daemon.set_mode("read-only", "enforce");
    let dir = work();
    let work_dir = dir.path().to_path_buf();
    let mut steps = usual(&work_dir, listener.port);
    steps.insert(0, "getppid:1".into());
    steps.push(format!("write:{}", work_dir.join("out/after.txt").display()));
    let out = run(&daemon, "syscall", "read-only", &steps);
    assert_eq!(out.status.code(), Some(99));
    assert!(!work_dir.join("out/after.txt").exists(), "killed before going on");
    let events = daemon.events_of("syscall", WAIT);
    let killed = of_kind(&events, "syscall", |e| e["name"] == "getppid");
    assert_eq!(killed.len(), 1, "{}", dump(&events));
    assert_eq!(killed[0]["action"], "killed");
    let exit = of_kind(&events, "exit", |e| e["pid"] == killed[0]["pid"]);
    assert_eq!(exit[0]["signal"], 9, "SIGKILL: {}", exit[0]);
}

#[test]
fn other_phases_and_untracked_processes_doing_the_same_are_untouched() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let (allowed, forbidden) = (Listener::start(), Listener::start());
    teach(&daemon, "read-only", allowed.port);
    daemon.set_mode("read-only", "enforce");
    // The same straying work, at once: enforced, in a phase that learns, and untracked.
    let stray = |d: &Path| -> Vec<String> {
        let mut steps = usual(d, allowed.port);
        steps.insert(0, "sleep:300".into());
        steps.push(format!("connect:127.0.0.1:{}", forbidden.port));
        steps.push(format!("write:{}", d.join("out/done").display()));
        steps
    };
    let (d1, d2, d3) = (work(), work(), work());
    let enforced = daemon
        .cmd(&["run", "--investigation-id", "enforced", "--phase", "read-only", "--"])
        .arg(actor_bin())
        .args(stray(d1.path()))
        .spawn()
        .unwrap();
    let learning = daemon
        .cmd(&["run", "--investigation-id", "learning", "--phase", "shadow", "--"])
        .arg(actor_bin())
        .args(stray(d2.path()))
        .spawn()
        .unwrap();
    let untracked = std::process::Command::new(actor_bin()).args(stray(d3.path())).spawn().unwrap();
    assert_eq!(enforced.wait_with_output().unwrap().status.code(), Some(99));
    let found =
        verdicts(&daemon.events_of("enforced", WAIT)).into_iter().cloned().collect::<Vec<_>>();
    assert_eq!(found.len(), 1, "{}", dump(&found));
    assert_eq!(found[0]["deviation"], "egress", "killed for its egress: {}", found[0]);
    assert!(learning.wait_with_output().unwrap().status.success(), "a learning phase never kills");
    assert!(untracked.wait_with_output().unwrap().status.success());
    assert!(!d1.path().join("out/done").exists());
    assert!(d2.path().join("out/done").exists() && d3.path().join("out/done").exists());
    assert_eq!(forbidden.accepted(), 2, "the other two got through");
    assert!(verdicts(&daemon.events_of("learning", WAIT)).is_empty());
}

#[test]
fn bad_baseline_files_are_refused_and_the_previous_one_stays_in_force() {
    skip_unless_root!();
    let mut daemon = Daemon::start();
    let listener = Listener::start();
    teach(&daemon, "autonomous", listener.port);
    daemon.set_mode("autonomous", "enforce");
    let good = daemon.ok(&["baseline", "export", "autonomous"]);
    let edits = [
        (
            good.replace("\"/bin/true\"", "\"/bin/<bogus>\""),
            "execs[",
            "unknown placeholder <bogus>",
        ),
        (good[..good.len() * 2 / 3].to_owned(), "", "baseline file"),
        (good.replace("port ", "prot "), "egress[0]", "expected PROTOCOL NETWORK port PORT"),
        (good.replace("max_processes = 2", "max_processes = \"two\""), "", "max_processes"),
        (
            good.replace("phase = \"autonomous\"", "phase = \"shadow\""),
            "",
            "holds the shadow baseline, not the autonomous one",
        ),
        ("not toml at all [[[".into(), "", "baseline file"),
    ];
    let dir = work();
    for (i, (text, field, problem)) in edits.iter().enumerate() {
        let file = dir.path().join(format!("edit-{i}.toml"));
        std::fs::write(&file, text).unwrap();
        let out = daemon
            .cmd(&["baseline", "import", "autonomous", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "edit {i} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(file.to_str().unwrap()), "names the file: {err}");
        assert!(err.contains(field) && err.contains(problem), "edit {i}: {err}");
        assert_eq!(
            daemon.ok(&["baseline", "export", "autonomous"]),
            good,
            "still in force after edit {i}"
        );
    }
    // Still enforced as before: the usual passes, a stray exec is killed.
    let d = work();
    assert!(
        run(&daemon, "after-bad-imports", "autonomous", &usual(d.path(), listener.port))
            .status
            .success()
    );
    let mut stray = usual(work().path(), listener.port);
    stray[0] = "exec:/bin/false".into();
    assert_eq!(run(&daemon, "stray-after", "autonomous", &stray).status.code(), Some(99));

    // A good edit goes in, shows in diff first, and widens what is allowed.
    let widened = good.replace("\"/bin/true\",", "\"/bin/false\",\n  \"/bin/true\",");
    let file = dir.path().join("widened.toml");
    std::fs::write(&file, &widened).unwrap();
    assert_eq!(
        daemon.ok(&["baseline", "diff", "autonomous", file.to_str().unwrap()]).trim(),
        "+ exec /bin/false"
    );
    assert!(
        daemon
            .ok(&["baseline", "import", "autonomous", file.to_str().unwrap()])
            .contains("is in force")
    );
    let d = work();
    let mut now_allowed = usual(d.path(), listener.port);
    now_allowed[0] = "exec:/bin/false".into();
    assert!(run(&daemon, "widened", "autonomous", &now_allowed).status.success());

    // A broken file on disk at start: refused with its name, the last good copy used.
    let in_force = daemon.ok(&["baseline", "export", "autonomous"]);
    daemon.stop();
    let state_file = daemon.dir.path().join("state/baselines/autonomous.toml");
    std::fs::write(&state_file, "format = 1\nphase = \"autonomous\"\nrevision = ").unwrap();
    let logged_before = daemon.log().len();
    let restarted = daemon.restart();
    let log = restarted.log()[logged_before..].to_owned();
    assert!(log.contains("autonomous.toml") && log.contains("last good baseline"), "{log}");
    assert_eq!(restarted.ok(&["baseline", "export", "autonomous"]), in_force);
    let kept = std::fs::read_dir(state_file.parent().unwrap())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("rejected"))
        .count();
    assert_eq!(kept, 1, "the broken file is kept aside");
}

#[test]
fn unknown_phases_and_modes_are_refused_with_the_valid_ones() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let out = daemon.cmd(&["phase", "mode", "read-only", "block"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("unknown mode \"block\": expected one of learn, flag, enforce")
    );
    let out = daemon.cmd(&["baseline", "show", "root"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("expected one of shadow, read-only, limited-write, autonomous")
    );
}

/// Without Kubernetes the phases stay on the node: `paddock phase report` says so, and its
/// figures (and the metrics') are what the runs did.
#[test]
fn without_a_cluster_the_phase_report_counts_this_nodes_runs() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let dir = work();
    let listener = Listener::start();
    teach(&daemon, "read-only", listener.port);
    daemon.set_mode("read-only", "flag");
    let mut stray = usual(dir.path(), listener.port);
    stray.push("exec:/bin/false".into());
    assert!(run(&daemon, "stray", "read-only", &stray).status.success());
    let deviations = verdicts(&daemon.events_of("stray", WAIT)).len() as u64;
    assert!(deviations >= 1);
    let report: Value =
        serde_json::from_str(&daemon.ok(&["phase", "report", "read-only", "--json"])).unwrap();
    let r = &report[0];
    assert_eq!(
        (r["phase"].as_str(), r["mode"].as_str(), r["store"].as_str()),
        (Some("read-only"), Some("flag"), Some("node"))
    );
    let s = &r["status"];
    assert_eq!(s["runs"], 4, "{r:#}");
    assert_eq!(s["learnedFrom"], 3, "{r:#}");
    assert_eq!(s["deviations"], deviations, "{r:#}");
    assert_eq!(s["runsSinceNew"], 0, "the stray did something new: {r:#}");
    assert_eq!(s["agents"]["local"]["runs"], 4, "{r:#}");
    let metrics = daemon.metrics();
    assert!(
        metrics
            .contains("paddock_phase_runs{phase=\"read-only\",mode=\"flag\",settled=\"false\"} 4"),
        "{metrics}"
    );
    let table = daemon.ok(&["phase", "report"]);
    assert!(table.lines().count() >= 5 && table.contains("agent local: 4 runs"), "{table}");
}
