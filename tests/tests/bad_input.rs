//! Bad input gets a one-line error that says what and where, and a non-zero exit; nothing
//! already recorded is lost. Needs root (it starts real daemons).
use std::{process::Command, time::Duration};

use paddock_tests::{Daemon, Started, config, of_kind, paddock_bin, skip_unless_root};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_unknown_phase_lists_the_four_valid_ones() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let out = daemon.run("inv-1", "admin", &["/bin/true"], &[]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    for phase in ["shadow", "read-only", "limited-write", "autonomous", "\"admin\""] {
        assert!(err.contains(phase), "{err}");
    }
}

#[test]
fn an_investigation_id_that_is_not_a_label_value_is_refused() {
    skip_unless_root!();
    let daemon = Daemon::start();
    for (id, says) in [
        ("inv/1", "character 4"),
        ("-lead", "alphanumeric at the start and the end"),
        (&"x".repeat(64) as &str, "at most 63"),
        ("", "empty"),
    ] {
        let out = daemon.run(id, "shadow", &["/bin/true"], &[]);
        assert_eq!(out.status.code(), Some(125), "{id}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(says), "{id}: {err}");
        assert!(err.contains("Kubernetes label value"), "{err}");
    }
    // Refused before anything was tracked.
    assert_eq!(daemon.status()["investigations"].as_array().unwrap().len(), 0);
}

#[test]
fn run_and_status_without_a_daemon_say_so() {
    let socket = "/nonexistent/paddock.sock";
    let out = Command::new(paddock_bin())
        .args([
            "--socket",
            socket,
            "run",
            "--investigation-id",
            "a",
            "--phase",
            "shadow",
            "--",
            "/bin/true",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(err.contains("no paddock daemon answers at /nonexistent/paddock.sock"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = Command::new(paddock_bin()).args(["--socket", socket, "status"]).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no paddock daemon answers"), "{}", stderr(&out));
}

#[test]
fn the_exit_status_of_the_command_is_passed_through() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let out = daemon.run("inv-exit", "shadow", &["/bin/sh", "-c", "exit 42"], &[]);
    assert_eq!(out.status.code(), Some(42));
    let out = daemon.run("inv-signal", "shadow", &["/bin/sh", "-c", "kill -TERM $$"], &[]);
    assert_eq!(out.status.code(), Some(128 + 15));
    let out = daemon.run("inv-missing", "shadow", &["/no/such/program"], &[]);
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr(&out).contains("cannot execute \"/no/such/program\""), "{}", stderr(&out));
    let out = daemon.run("inv-again", "shadow", &["/bin/true"], &[]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_kernel_without_btf_is_a_clear_error() {
    skip_unless_root!();
    let mut config = config();
    config.kernel.btf_path = "/nonexistent/btf/vmlinux".into();
    let Started::Exited { status, log } = Daemon::try_start(config) else {
        panic!("a daemon started without BTF");
    };
    assert_eq!(status.code(), Some(1));
    assert!(log.contains("kernel BTF not found at /nonexistent/btf/vmlinux"), "{log}");
    assert!(log.contains("CONFIG_DEBUG_INFO_BTF"), "{log}");
}

#[test]
fn a_host_without_cgroup_v2_is_a_clear_error() {
    skip_unless_root!();
    let dir = tempfile::tempdir().unwrap();
    let mountinfo = dir.path().join("mountinfo");
    let v1_only = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| !l.contains(" - cgroup2 "))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&mountinfo, v1_only).unwrap();
    let mut config = config();
    config.kernel.mountinfo_path = mountinfo.clone();
    let Started::Exited { status, log } = Daemon::try_start(config) else {
        panic!("a daemon started without cgroup v2");
    };
    assert_eq!(status.code(), Some(1));
    assert!(log.contains("no cgroup v2 filesystem is mounted"), "{log}");
    assert!(log.contains(mountinfo.to_str().unwrap()), "{log}");
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused_and_the_first_keeps_its_events() {
    skip_unless_root!();
    let first = Daemon::start();
    let out = first.run("inv-before", "shadow", &["/bin/true"], &[]);
    assert!(out.status.success());
    let before = first.events_of("inv-before", Duration::from_secs(20));

    let second = Command::new(paddock_bin())
        .args(["daemon", "--config"])
        .arg(&first.config)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let err = stderr(&second);
    assert!(
        err.contains(&format!("another paddock daemon (pid {}) already serves", first.pid())),
        "{err}"
    );
    assert!(err.contains(first.socket.to_str().unwrap()), "{err}");

    // The first daemon still answers and still has what it recorded.
    let after = first.events_of("inv-before", Duration::from_secs(20));
    assert_eq!(before, after);
    assert_eq!(of_kind(&after, "exec", |e| e["path"] == "/bin/true").len(), 1);
    let out = first.run("inv-after", "shadow", &["/bin/true"], &[]);
    assert!(out.status.success());
}

#[test]
fn a_bad_configuration_file_names_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("paddock.toml");
    std::fs::write(&config, "[kernel]\nring_buffer_bytes = 1000\n").unwrap();
    let out =
        Command::new(paddock_bin()).args(["daemon", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(config.to_str().unwrap()), "{err}");
    assert!(err.contains("kernel.ring_buffer_bytes = 1000"), "{err}");
}

#[test]
fn an_id_runs_again_right_after_it_ends_but_not_while_it_runs() {
    skip_unless_root!();
    let daemon = Daemon::start();
    for _ in 0..5 {
        let out = daemon.run("inv-again-and-again", "shadow", &["/bin/true"], &[]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let mut running = daemon
        .cmd(&["run", "--investigation-id", "inv-busy", "--phase", "shadow", "--", "sleep", "2"])
        .spawn()
        .unwrap();
    // Its own id, not any (the runs above may still be listed while they end), with its
    // command in its cgroup: a run listed but not yet joined is taken for one ending, which
    // a second run waits for (up to 5 s) before it is refused.
    daemon.wait_running(&["inv-busy"], Duration::from_secs(10));
    let started = std::time::Instant::now();
    let out = daemon.run("inv-busy", "shadow", &["/bin/true"], &[]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("investigation inv-busy is already running on this node"),
        "{}",
        stderr(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(1), "refused at once, not after a wait");
    assert!(running.wait().unwrap().success());
}
