//! The daemon's memory budget: under 64 MiB resident at its peak (VmHWM) while one
//! investigation floods it with more than 200,000 events a second and, after it, while another
//! runs a fork bomb; all the while a third, enforcing, investigation is tracked and judged.
//! The daemon runs with its own defaults (only its socket, state and cgroup are the test's).
//! Prints the figures recorded in BENCHMARKS.md. Real kernel, real daemon; needs root.
use std::{collections::BTreeMap, path::Path, process::Child, time::Duration};

use paddock_tests::{Daemon, actor_bin, config, skip_unless_root, wait_until};

const BUDGET_KIB: u64 = 64 * 1024;
const OFFERED_PER_SECOND: f64 = 200_000.0;

fn actor() -> String {
    actor_bin().to_str().unwrap().to_owned()
}

/// `key=value` pairs a load step wrote.
fn report(path: &Path) -> BTreeMap<String, f64> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
        .collect()
}

/// Start `command` as investigation `id` of `phase`, without waiting.
fn start(daemon: &Daemon, id: &str, phase: &str, command: &[&str]) -> Child {
    daemon
        .cmd(&["run", "--investigation-id", id, "--phase", phase, "--"])
        .args(command)
        .spawn()
        .unwrap()
}

/// The enforcing bystander, while the load runs: its usual work passes, a stray exec kills it.
fn bystander_is_judged(daemon: &Daemon, round: &str) {
    let out = daemon.run_actor(&format!("{round}-usual"), "read-only", &["exec:/bin/true"]);
    assert!(
        out.status.success(),
        "{round}: the bystander's usual work was not let be: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = daemon.run_actor(
        &format!("{round}-stray"),
        "read-only",
        &["exec:/bin/true", "exec:/bin/false"],
    );
    assert_eq!(
        out.status.code(),
        Some(99),
        "{round}: the bystander's stray exec was not killed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Wait for `child`, at most `within`.
fn finish(mut child: Child, within: Duration) {
    wait_until(
        within,
        Duration::from_millis(50),
        || child.try_wait().unwrap().is_some(),
        || format!("the load did not end within {within:?}"),
    );
}

#[test]
fn the_daemon_stays_under_64_mib_under_a_flood_and_a_fork_bomb_while_another_is_judged() {
    skip_unless_root!();
    // The daemon's own default history (the harness keeps 200,000 events for other tests).
    let mut config = config();
    config.daemon.recent_events = 4096;
    let daemon = Daemon::start_with(config);
    let out = daemon.run_actor("learn", "read-only", &["exec:/bin/true"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    daemon.events_of("learn", Duration::from_secs(20));
    daemon.set_mode("read-only", "enforce");
    let at_start = daemon.peak_rss_kib();

    // 1. The flood: UDP connects and opens of files not read lately, each a record offered.
    let dir = tempfile::tempdir().unwrap();
    let (connects, opens) = (dir.path().join("connects"), dir.path().join("opens"));
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    let script = format!(
        "{a} connect-cycle:60000:10000:{c} & {a} open-cycle:{f}:100000:10000:{o} & wait",
        a = actor(),
        c = connects.display(),
        f = files.display(),
        o = opens.display()
    );
    let flood = start(&daemon, "flood", "shadow", &["/bin/sh", "-c", &script]);
    std::thread::sleep(Duration::from_secs(3));
    bystander_is_judged(&daemon, "during-flood");
    finish(flood, Duration::from_secs(60));
    let (c, o) = (report(&connects), report(&opens));
    let offered = c["connects"] / c["seconds"] + o["opens"] / o["seconds"];
    let after_flood = daemon.peak_rss_kib();

    // 2. The fork bomb, at the default pids.max of its phase.
    let bomb_report = dir.path().join("bomb");
    let bomb = start(
        &daemon,
        "bomb",
        "shadow",
        &[&actor(), &format!("fork-bomb:8000:4000:{}", bomb_report.display())],
    );
    std::thread::sleep(Duration::from_secs(2));
    bystander_is_judged(&daemon, "during-bomb");
    finish(bomb, Duration::from_secs(60));
    let b = report(&bomb_report);
    let after_bomb = daemon.peak_rss_kib();

    let status = daemon.status();
    println!(
        "memory: offered {offered:.0} records/s ({:.0} connects/s, {:.0} opens/s) for 10 s; \
         fork bomb: {} forks, {} refused (EAGAIN), at most {} processes at once\n\
         memory: daemon peak RSS (VmHWM) at start {} KiB, after the flood {} KiB, after the \
         fork bomb {} KiB; budget {BUDGET_KIB} KiB\n\
         memory: records read {}, lost {}, events published {}",
        c["connects"] / c["seconds"],
        o["opens"] / o["seconds"],
        b["made"],
        b["eagain"],
        b["peak"],
        at_start,
        after_flood,
        after_bomb,
        status["records_read"],
        status["lost_total"],
        status["events_published"]
    );
    assert!(
        offered >= OFFERED_PER_SECOND,
        "the flood offered only {offered:.0} records/s: the budget is for {OFFERED_PER_SECOND}"
    );
    assert!(after_flood < BUDGET_KIB, "over budget after the flood: {after_flood} KiB");
    assert!(after_bomb < BUDGET_KIB, "over budget after the fork bomb: {after_bomb} KiB");
}
