//! Bounded state: a baseline set at its cap learns no more and says so; a phase whose policy
//! does not fit the kernel's maps is judged by the daemon for that set, and the daemon still
//! starts; a fork bomb stops at its phase's pids.max while another investigation is
//! tracked. Real kernel, real daemon; needs root.
use std::time::Duration;

use agent_daemon::{identity::Phase, phases::PhaseSettings};
use paddock_tests::{Daemon, actor_bin, config, dump, of_kind, skip_unless_root, udp_port};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn actor() -> String {
    actor_bin().to_str().unwrap().to_owned()
}

fn run(daemon: &Daemon, id: &str, phase: &str, steps: &[String]) -> std::process::Output {
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    daemon.run_actor(id, phase, &steps)
}

/// The value of the metric line that starts with `series` (name and labels), if any.
fn metric(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_learning_phase_at_its_cap_says_so_learns_no_more_and_keeps_a_bigger_file_whole() {
    skip_unless_root!();
    let mut config = config();
    config.baseline.execs = 2;
    let daemon = Daemon::start_with(config);
    // The actor itself and /bin/true fill the set; /bin/false and /bin/echo are refused.
    let steps = ["exec:/bin/true", "exec:/bin/false", "exec:/bin/echo"].map(String::from);
    let out = run(&daemon, "capped-1", "shadow", &steps);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events = daemon.events_of("capped-1", WAIT);
    let capped = of_kind(&events, "baseline_capped", |_| true);
    assert_eq!(capped.len(), 1, "once per investigation and set: {}", dump(&events));
    assert_eq!(
        (&capped[0]["set"], &capped[0]["cap"], &capped[0]["subject"]),
        (&Value::from("execs"), &Value::from(2), &Value::from("/bin/false")),
        "{}",
        capped[0]
    );
    let execs = daemon.baseline("shadow")["execs"].as_array().unwrap().len();
    assert_eq!(execs, 2);
    let out = run(&daemon, "capped-2", "shadow", &["exec:/bin/ls".into()]);
    assert!(out.status.success());
    daemon.events_of("capped-2", WAIT);
    let metrics = daemon.metrics();
    assert_eq!(
        metric(&metrics, "paddock_baseline_capped{phase=\"shadow\",set=\"execs\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&metrics, "paddock_baseline_refused_entries_total{phase=\"shadow\",set=\"execs\"}"),
        Some(3.0),
        "/bin/false, /bin/echo, /bin/ls"
    );
    assert_eq!(metric(&metrics, "paddock_baseline_cap{phase=\"shadow\",set=\"execs\"}"), Some(2.0));
    assert_eq!(
        metric(&metrics, "paddock_baseline_capped{phase=\"shadow\",set=\"egress\"}"),
        Some(0.0)
    );
    let list = daemon.ok(&["baseline", "list"]);
    assert!(
        list.contains("shadow: execs is at its cap of 2 ([baseline] execs): 3 new entries"),
        "{list}"
    );
    let log = daemon.log();
    assert_eq!(
        log.matches("baseline set reached its cap").count(),
        1,
        "once per phase and set:\n{log}"
    );

    // Restarted with a lower cap: the file holds more than the cap, and loads whole.
    let mut daemon = daemon;
    daemon.stop();
    daemon.reconfigure(|c| c.baseline.execs = 1);
    let daemon = daemon.restart();
    assert_eq!(daemon.baseline("shadow")["execs"].as_array().unwrap().len(), 2, "nothing lost");
    let list = daemon.ok(&["baseline", "list"]);
    assert!(list.contains("shadow: execs is at its cap of 1"), "{list}");
    assert!(daemon.log().contains("baseline set at its cap"), "said at start");
}

#[test]
fn a_policy_too_big_for_the_kernel_map_is_judged_by_the_daemon_and_never_stops_a_start() {
    skip_unless_root!();
    let mut config = config();
    config.kernel.policy_egress = 1;
    let daemon = Daemon::start_with(config);
    let ((_a, port_a), (_b, port_b), (_c, port_c)) = (udp_port(), udp_port(), udp_port());
    let usual = [format!("udp:127.0.0.1:{port_a}"), format!("udp:127.0.0.1:{port_b}")];
    let out = run(&daemon, "learn-egress", "limited-write", &usual);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    daemon.events_of("learn-egress", WAIT);
    let reply = daemon.ok(&["phase", "mode", "limited-write", "enforce"]);
    assert!(reply.contains("cannot hold its egress"), "{reply}");
    let metrics = daemon.metrics();
    assert_eq!(
        metric(
            &metrics,
            "paddock_phase_kernel_policy_incomplete{phase=\"limited-write\",set=\"egress\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "paddock_kernel_map_capacity{map=\"PADDOCK_ALLOWED_EGRESS\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&metrics, "paddock_kernel_map_entries{map=\"PADDOCK_ALLOWED_EGRESS\"}"),
        Some(0.0)
    );
    assert!(daemon.ok(&["baseline", "list"]).contains("cannot hold its egress"));

    // What the baseline allows still passes: no half allow-list kills it.
    let out = run(&daemon, "usual-egress", "limited-write", &usual);
    assert!(
        out.status.success(),
        "baseline behaviour killed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A stray is let through by the kernel and killed by the daemon, after the fact.
    let mut stray = usual.to_vec();
    stray.push(format!("udp:127.0.0.1:{port_c}"));
    stray.push("sleep:2000".into());
    let out = run(&daemon, "stray-egress", "limited-write", &stray);
    assert_eq!(out.status.code(), Some(99), "{}", String::from_utf8_lossy(&out.stderr));
    let events = daemon.events_of("stray-egress", WAIT);
    let verdict = of_kind(&events, "verdict", |v| v["deviation"] == "egress");
    assert_eq!(verdict.len(), 1, "{}", dump(&events));
    assert_eq!(verdict[0]["outcome"], "killed");
    let sent = of_kind(&events, "connect", |e| e["port"] == port_c);
    assert!(
        sent.iter().all(|e| e.get("action").is_none()),
        "the kernel did not decide: {}",
        dump(&events)
    );

    // A restart with the phase enforcing: the daemon starts, and says why the set is open.
    let mut daemon = daemon;
    daemon.stop();
    let daemon = daemon.restart();
    let log = daemon.log();
    assert!(log.contains("does not fit the kernel's maps"), "{log}");
    assert!(daemon.ok(&["baseline", "list"]).contains("cannot hold its egress"));
}

/// `made=N eagain=N other=N peak=N` from the fork bomb.
fn bomb_report(path: &std::path::Path) -> std::collections::BTreeMap<String, u64> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
        .collect()
}

#[test]
fn a_fork_bomb_stops_at_its_phases_pids_max_and_another_investigation_is_still_tracked() {
    skip_unless_root!();
    let mut config = config();
    config.phases.set(Phase::Shadow, PhaseSettings { pids_max: 64 });
    let daemon = Daemon::start_with(config);
    if daemon.log().contains("pids.max cannot be set") {
        eprintln!("skipped: this machine has no pids controller, in cgroup v2 or v1");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("bomb");
    // The bomb's own bound (4000 alive) is far above the phase's 64: only pids.max holds it.
    let bomb = daemon
        .cmd(&["run", "--investigation-id", "bomb", "--phase", "shadow", "--"])
        .arg(actor())
        .arg(format!("fork-bomb:4000:4000:{}", report.display()))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let steps =
        ["exec:/bin/true".to_owned(), format!("write:{}", dir.path().join("out").display())];
    let out = run(&daemon, "bystander", "read-only", &steps);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events = daemon.events_of("bystander", WAIT);
    let execs = of_kind(&events, "exec", |e| e["path"] == "/bin/true");
    assert_eq!(execs.len(), 1, "{}", dump(&events));
    assert_eq!(of_kind(&events, "ended", |e| e["outcome"] == "ok").len(), 1);
    let out = bomb.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = bomb_report(&report);
    assert!(r["eagain"] > 0, "fork refused with EAGAIN at pids.max: {r:?}");
    assert!(r["peak"] <= 64, "never more than pids.max alive: {r:?}");
    assert!(r["peak"] >= 48, "it got near the limit before it was refused: {r:?}");
    assert_eq!(r["other"], 0, "{r:?}");
    let ended = daemon.events_of("bomb", WAIT);
    assert_eq!(of_kind(&ended, "ended", |_| true).len(), 1);
}
