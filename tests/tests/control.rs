//! paddock cannot be switched off or read from inside what it guards: a process of an
//! investigation is refused every admin request, `run`, and other investigations' events,
//! and the attempt is a deviation; the control socket is root's and its group's; the query
//! API needs a token off loopback; the state files are the daemon's alone. Real kernel,
//! real daemon; needs root.
use std::{os::unix::fs::MetadataExt as _, os::unix::process::CommandExt as _, time::Duration};

use paddock_tests::{
    Daemon, Started, config, dump, of_kind, paddock_bin, skip_unless_root, unique,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

/// `paddock --socket <daemon's> ARGS`, as a shell command line for a script.
fn cli(daemon: &Daemon, args: &str) -> String {
    format!("{} --socket {} {args}", paddock_bin().display(), daemon.socket.display())
}

/// Run `script` with `sh -c` as investigation `id` of `phase`.
fn run_script(daemon: &Daemon, id: &str, phase: &str, script: &str) -> std::process::Output {
    daemon.run(id, phase, &["/bin/sh", "-c", script], &[])
}

/// The phase learns a run that uses paddock's CLI the way an agent legitimately may: its own
/// status and events.
fn teach(daemon: &Daemon, phase: &str) {
    for i in 0..3 {
        let id = format!("learn-{phase}-{i}");
        let script = format!(
            "{} > /dev/null; {} > /dev/null",
            cli(daemon, "status"),
            cli(daemon, &format!("events --investigation {id}"))
        );
        let out = run_script(daemon, &id, phase, &script);
        assert!(out.status.success(), "{id}: {}", String::from_utf8_lossy(&out.stderr));
        daemon.events_of(&id, WAIT);
    }
}

fn mode_of(daemon: &Daemon, phase: &str) -> String {
    let list: Value = serde_json::from_str(&daemon.ok(&["baseline", "list", "--json"])).unwrap();
    let entry = list.as_array().unwrap().iter().find(|p| p["phase"] == phase).unwrap().clone();
    entry["mode"].as_str().unwrap().to_owned()
}

#[test]
fn a_process_of_an_investigation_cannot_switch_its_phase_to_learn() {
    skip_unless_root!();
    for mode in ["flag", "enforce"] {
        let daemon = Daemon::start();
        teach(&daemon, "read-only");
        daemon.set_mode("read-only", mode);
        let script = format!(
            "{} > /dev/null; {}; echo after",
            cli(&daemon, "status"),
            cli(&daemon, "phase mode read-only learn")
        );
        let out = run_script(&daemon, "tamper", "read-only", &script);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // In flag mode the CLI says it was refused; in enforce it dies before it can, and
        // `paddock run` says why the investigation was killed.
        let said = if mode == "flag" {
            "refused: a process of investigation tamper"
        } else {
            "control socket"
        };
        assert!(stderr.contains(said), "{stderr}");
        assert_eq!(mode_of(&daemon, "read-only"), mode, "the mode is unchanged");
        let events = daemon.events_of("tamper", WAIT);
        let verdict = of_kind(&events, "verdict", |v| v["deviation"] == "control");
        assert_eq!(verdict.len(), 1, "{}", dump(&events));
        if mode == "enforce" {
            assert_eq!(out.status.code(), Some(99), "killed for asking: {stderr}");
            assert!(!String::from_utf8_lossy(&out.stdout).contains("after"));
        } else {
            assert!(out.status.success(), "{stderr}");
        }
        let metrics = daemon.metrics();
        assert!(
            metrics.contains("paddock_control_refusals_total{request=\"admin\"} 1"),
            "{metrics}"
        );
    }
}

#[test]
fn no_investigation_starts_another_or_reads_anothers_events() {
    skip_unless_root!();
    let daemon = Daemon::start();
    // Something to read: another investigation's events.
    assert!(daemon.run("other", "shadow", &["/bin/true"], &[]).status.success());
    daemon.events_of("other", WAIT);
    let nested = cli(&daemon, "run --investigation-id nested --phase shadow -- /bin/true");
    let own = cli(&daemon, "events --investigation inside --json");
    let others = cli(&daemon, "events --investigation other --json");
    let all = cli(&daemon, "events --json");
    let script = format!(
        "{nested}; echo nested=$?; {own} > /tmp/paddock-own-{u}; echo own=$?; {others}; echo others=$?; {all}; echo all=$?",
        u = std::process::id()
    );
    let out = run_script(&daemon, "inside", "shadow", &script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("nested=125"), "{stdout}\n{stderr}");
    assert!(stdout.contains("own=0"), "{stdout}\n{stderr}");
    assert!(!stdout.contains("others=0") && !stdout.contains("all=0"), "{stdout}\n{stderr}");
    assert!(stderr.contains("cannot start an investigation"), "{stderr}");
    assert!(stderr.contains("may follow only its own events"), "{stderr}");
    let own_events =
        std::fs::read_to_string(format!("/tmp/paddock-own-{}", std::process::id())).unwrap();
    let _ = std::fs::remove_file(format!("/tmp/paddock-own-{}", std::process::id()));
    assert!(own_events.lines().all(|l| l.contains("\"investigation\":\"inside\"")), "{own_events}");
    assert!(!own_events.is_empty());
    let status = daemon.status();
    let ids: Vec<&str> = status["investigations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&"nested"), "{status}");
}

/// Run `paddock ARGS` as uid/gid 65534 (nobody) with `groups`.
fn as_nobody(daemon: &Daemon, groups: &[u32], args: &[&str]) -> std::process::Output {
    let groups = groups.to_vec();
    let mut cmd = daemon.cmd(args);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().unwrap()
}

#[test]
fn the_control_socket_is_roots_and_its_groups() {
    skip_unless_root!();
    let group = format!("pdk{}{}", std::process::id() % 100_000, unique());
    assert!(std::process::Command::new("groupadd").arg(&group).status().unwrap().success());
    let gid = std::fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{group}:x:"))
                .and_then(|r| r.split(':').next()?.parse::<u32>().ok())
        })
        .unwrap();
    let mut config = config();
    config.daemon.socket_group = group.clone();
    let daemon = Daemon::start_with(config);
    let meta = std::fs::metadata(&daemon.socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o660, "mode {:o}", meta.mode());
    assert_eq!((meta.uid(), meta.gid()), (0, gid));
    // Outside the group: cannot even connect.
    let out = as_nobody(&daemon, &[], &["status"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ermission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // In the group: status, and admin requests.
    let out = as_nobody(&daemon, &[gid], &["status"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = as_nobody(&daemon, &[gid], &["phase", "mode", "shadow", "flag"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    drop(daemon);
    let _ = std::process::Command::new("groupdel").arg(&group).status();
}

#[test]
fn run_can_drop_the_commands_privileges() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let out = daemon
        .cmd(&[
            "run",
            "--investigation-id",
            "as-nobody",
            "--phase",
            "shadow",
            "--user",
            "nobody",
            "--",
            "id",
            "-u",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "65534");
    let out = daemon
        .cmd(&[
            "run",
            "--investigation-id",
            "as-group",
            "--phase",
            "shadow",
            "--user",
            "65534",
            "--group",
            "0",
            "--",
            "id",
            "-G",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = daemon.events_of("as-nobody", WAIT);
    let exec = of_kind(&events, "exec", |e| e["path"].as_str().is_some_and(|p| p.ends_with("/id")));
    assert_eq!(exec[0]["uid"], 65534, "{}", dump(&events));
    let out = daemon
        .cmd(&[
            "run",
            "--investigation-id",
            "no-such",
            "--phase",
            "shadow",
            "--user",
            "no-such-user-x",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--user no-such-user-x: no such user"));
}

#[test]
fn the_query_api_off_loopback_needs_a_token() {
    skip_unless_root!();
    let mut open = config();
    open.http.listen = ([0, 0, 0, 0], 0).into();
    let Started::Exited { status, log } = Daemon::try_start(open.clone()) else {
        panic!("a daemon listening on 0.0.0.0 without a token started");
    };
    assert!(!status.success());
    assert!(log.contains("http.listen = 0.0.0.0:0") && log.contains("http.token"), "{log}");
    let token = format!("t-{}", unique());
    open.http.token = Some(token.clone());
    let daemon = Daemon::start_with(open);
    let (code, _) = daemon.http_get("/v1/investigations", None);
    assert_eq!(code, 401);
    let (code, _) = daemon.http_get("/v1/investigations", Some("t-wrong"));
    assert_eq!(code, 401);
    let (code, _) = daemon.http_get("/v1/investigations", Some(&token));
    assert_eq!(code, 200);
    assert!(daemon.metrics().contains("paddock_probes_attached"), "/metrics stays open");
}

#[test]
fn the_state_files_are_the_daemons_alone() {
    skip_unless_root!();
    let daemon = Daemon::start();
    assert!(daemon.run("learn-once", "shadow", &["/bin/true"], &[]).status.success());
    daemon.events_of("learn-once", WAIT);
    let state = daemon.dir.path().join("state");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("baselines")), 0o700);
    assert_eq!(mode(&state.join("baselines/shadow.toml")), 0o600);
    assert_eq!(mode(&state.join("audit.db")), 0o600);
}

/// A process of an investigation that sends the control socket a request line that never
/// ends is cut off after 64 KiB (the daemon does not hold what it sends), told why, and the
/// daemon goes on answering.
#[test]
fn an_endless_request_line_is_cut_off() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let flood = format!("unix-flood:{}:{}", daemon.socket.display(), 256 << 20);
    let out = daemon.run_actor("flooder", "shadow", &[&flood]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("request line longer than 65536 bytes"), "{stdout}");
    let sent: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("unix-flood sent "))
        .and_then(|n| n.parse().ok())
        .unwrap();
    // What the socket buffers took beyond the limit, never the 256 MiB.
    assert!(sent < 16 << 20, "the daemon took {sent} bytes of one line");
    let status = daemon.status();
    assert!(status["probes"].as_array().is_some_and(|p| !p.is_empty()), "{status}");
}
