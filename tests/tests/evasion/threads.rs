//! Evasion 1, Threads: a process stays tracked, judged and killable while any of its threads lives,
//! also after its main thread (the thread-group leader) has exited.
use super::*;

/// The benign form: the leader leaves and the other thread does the usual work.
fn benign(dir: &Path) -> Vec<String> {
    vec![
        "leader-exit".into(),
        "exec:/bin/true".into(),
        format!("write:{}", dir.join("out.txt").display()),
    ]
}

#[test]
fn a_process_whose_leader_exited_is_still_judged_and_killed() {
    skip_unless_root!();
    both(|mode| {
        let mut lab = Lab::new("read-only");
        lab.teach(benign);
        let dir = work();
        let mut steps = benign(dir.path());
        // After the leader is gone: a syscall the phase never made, then a write elsewhere.
        steps.push("personality".into());
        // Outside the learned `/tmp/<random>/`.
        let late = Path::new("/var/tmp").join(format!("paddock-late-{}", paddock_tests::unique()));
        steps.push(format!("write:{}", late.display()));
        let stray = lab.stray(mode, &steps);
        let verdict = stray.verdict("syscall");
        assert_eq!(verdict["subject"], "personality", "{verdict}");
        stray.assert_outcome(mode);
        let _ = std::fs::remove_file(&late);
        match mode {
            Mode::Enforce => {
                // Killed by the kernel at the syscall, before the write that follows it.
                let killed = of_kind(&stray.events, "syscall", |e| e["name"] == "personality");
                assert_eq!(killed[0]["action"], "killed", "{}", dump(&stray.events));
                assert!(!late.exists(), "it went on after the kill");
            }
            Mode::Flag => {
                let write = stray.verdict("file_write");
                assert_eq!(write["subject"], late.to_str().unwrap(), "{write}");
                // The process's exit is reported once, when its last thread goes.
                let actor_pid = verdict["pid"].as_u64().unwrap();
                let exits = of_kind(&stray.events, "exit", |e| e["pid"] == actor_pid);
                assert_eq!(exits.len(), 1, "{}", dump(&stray.events));
            }
        }
    });
}
