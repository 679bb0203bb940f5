//! Evasion 4, leaving the cgroup: a tracked process that moves itself to another cgroup stays
//! attributed, judged (its connects too) and killable; the move itself is a deviation; the
//! investigation does not end while it lives. And one investigation cannot fill the node's
//! process map to leave others untracked.
use super::*;

fn benign(dir: &Path, port: u16) -> Vec<String> {
    vec![
        "exec:/bin/true".into(),
        format!("write:{}", dir.join("out.txt").display()),
        format!("connect:127.0.0.1:{port}"),
    ]
}

#[test]
fn a_process_that_leaves_its_cgroup_is_still_judged_and_killed() {
    skip_unless_root!();
    both(|mode| {
        let (allowed, forbidden) =
            (paddock_tests::Listener::start(), paddock_tests::Listener::start());
        let mut lab = Lab::new("autonomous");
        lab.teach(|d| benign(d, allowed.port));
        let dir = work();
        let mut steps = benign(dir.path(), allowed.port);
        // Out to the root of the hierarchy, then a connect the phase never made, then stay
        // a while after everything else has gone.
        steps.push(format!("escape:{}", cgroup_root().display()));
        steps.push(format!("connect:127.0.0.1:{}", forbidden.port));
        steps.push("sleep:800".into());
        let stray = lab.stray(mode, &steps);
        stray.assert_outcome(mode);
        let moved = of_kind(&stray.events, "escape", |_| true);
        match mode {
            Mode::Enforce => {
                // The kernel killed the mover at the move; or the move never happened: the
                // open of `cgroup.procs` for writing, itself outside the baseline, was the
                // first deviation, and its kill came before the write.
                if moved.is_empty() {
                    let write = stray.verdict("file_write");
                    assert!(
                        write["subject"].as_str().unwrap().ends_with("/cgroup.procs"),
                        "{}",
                        dump(&stray.events)
                    );
                } else {
                    assert_eq!(moved.len(), 1, "{}", dump(&stray.events));
                    assert_eq!(moved[0]["action"], "killed", "{}", dump(&stray.events));
                }
                std::thread::sleep(Duration::from_millis(100));
                assert_eq!(forbidden.accepted(), 0, "the forbidden connect never happened");
            }
            Mode::Flag => {
                assert_eq!(moved.len(), 1, "{}", dump(&stray.events));
                let escape = stray.verdict("escape");
                assert!(escape["reason"].as_str().unwrap().contains("moved out of"), "{escape}");
                // Still attributed outside its cgroup: the connect is seen and judged.
                let egress = stray.verdict("egress");
                assert_eq!(egress["subject"], format!("tcp 127.0.0.1 port {}", forbidden.port));
                // The investigation ended only after the moved process did.
                let pid = moved[0]["moved_pid"].as_u64().unwrap();
                let exit = of_kind(&stray.events, "exit", |e| e["pid"] == pid);
                assert_eq!(exit.len(), 1, "its exit is seen: {}", dump(&stray.events));
                let ended = stray.ended();
                assert!(
                    ended["emptied_at"].as_str().unwrap() >= exit[0]["time"].as_str().unwrap(),
                    "ended {} before the moved process exited at {}",
                    ended["emptied_at"],
                    exit[0]["time"]
                );
            }
        }
    });
}

/// A fork bomb inside one investigation, over its process quota, cannot leave another's
/// processes untracked; its own untracked processes are a deviation.
#[test]
fn one_investigation_cannot_exhaust_the_process_map() {
    skip_unless_root!();
    let settings = Config { limits: LimitsConfig { processes: 12, ..config().limits }, ..config() };
    let bomb =
        |n: u32| format!("for i in $(seq 1 {n}); do {a} sleep:1500 & done; wait", a = actor());
    both(|mode| {
        let lab = Lab::with("limited-write", settings.clone());
        for i in 0..3 {
            let id = format!("learn-{i}");
            let out = lab.daemon.run(&id, "limited-write", &["/bin/sh", "-c", &bomb(4)], &[]);
            assert!(out.status.success());
            lab.daemon.events_of(&id, WAIT);
        }
        // Room in the envelope for the bomb: the quota is what is tested.
        lab.pin_wide_envelope();
        lab.daemon.set_mode("limited-write", mode.name());
        let bomber = lab
            .daemon
            .cmd(&["run", "--investigation-id", "bomber", "--phase", "limited-write", "--"])
            .args(["/bin/sh", "-c", &bomb(30)])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        // Meanwhile another investigation of another phase runs and is tracked whole.
        let other = lab.daemon.run_actor("bystander", "shadow", &["exec:/bin/true"]);
        assert!(other.status.success());
        let seen = lab.daemon.events_of("bystander", WAIT);
        assert_eq!(
            of_kind(&seen, "exec", |e| e["path"] == "/bin/true").len(),
            1,
            "{}",
            dump(&seen)
        );
        let out = bomber.wait_with_output().unwrap();
        let events = lab.daemon.events_of("bomber", WAIT);
        let ended = of_kind(&events, "ended", |_| true)[0];
        assert!(ended["untracked"].as_u64().unwrap() > 0, "{ended}");
        match mode {
            // Failing closed, the kernel doomed it at the first refused fork (its envelope
            // may have been the daemon's verdict first).
            Mode::Enforce => assert_eq!(out.status.code(), Some(99), "{}", dump(&events)),
            Mode::Flag => {
                assert!(out.status.success(), "{}", dump(&events));
                let untracked = of_kind(&events, "verdict", |v| v["deviation"] == "untracked");
                assert_eq!(untracked.len(), 1, "{}", dump(&events));
            }
        }
    });
}
