//! The daemon as its ServiceAccount: with `deploy/10-rbac.yaml` applied it does all its
//! job; unbound, it stays not ready and says why.
use paddock_tests::kube::{NOBODY_TOKEN, NOBODY_USER, PADDOCK_TOKEN};

use super::*;

#[test]
fn with_the_deploy_rbac_the_daemon_flags_and_enforces() {
    skip_unless_root!();
    let cluster = Cluster::connect();
    let _rbac = cluster.apply_deploy_rbac();
    let ns = cluster.namespace("pod-rbac");
    let world = World::new();
    cluster.trust_phases(&world.prefix);
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = cluster.kubeconfig_for(PADDOCK_TOKEN, tmp.path());
    let daemon = Daemon::start_with(world.config(&kubeconfig));
    wait_ready(&daemon);
    teach(&daemon, "limited-write", &["exec:/bin/true", "sleep:100"]);
    daemon.set_mode("limited-write", "flag");
    teach(&daemon, "autonomous", &["exec:/bin/true", "sleep:100"]);
    daemon.set_mode("autonomous", "enforce");

    // Flag: a Warning Event on the Job, which stays.
    flagged_pod(&cluster, &world, &ns.name, "inv-rbac-flag", "limited-write", &daemon);

    // Enforce: the pod killed, its Job deleted, a PaddockKill Event.
    let follower = daemon.follow(Some("inv-rbac-kill"));
    let (_job, _uid, dir) = job_and_pod(
        &cluster,
        &world,
        &ns.name,
        "inv-rbac-kill",
        &labels("inv-rbac-kill", "autonomous"),
    );
    follower.wait_for(WAIT, |e| e["kind"] == "started");
    let mut stray = actor_in(&dir, &["exec:/bin/true", "exec:/bin/false", "sleep:30000"]);
    let status = wait_exit(&mut stray, WAIT);
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "{status:?}");
    wait_job_deleted(&cluster, &ns.name, "inv-rbac-kill", &daemon);
    let event = cluster.wait_for_event(&ns.name, WAIT, |e| e["reason"] == "PaddockKill");
    assert_eq!(event["involvedObject"]["name"], "inv-rbac-kill");
    let failures = kubernetes_deliveries(&daemon, "paddock_alert_failures_total");
    assert!(failures.ends_with(" 0"), "{failures}\n{}", daemon.log());
    assert!(!daemon.log().contains("Forbidden"), "{}", daemon.log());
}

#[test]
fn without_a_binding_the_daemon_is_not_ready_and_says_why() {
    skip_unless_root!();
    let cluster = Cluster::connect();
    let world = World::new();
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = cluster.kubeconfig_for(NOBODY_TOKEN, tmp.path());
    let daemon = Daemon::start_with(world.config(&kubeconfig));
    stays_unready(&daemon, 3);
    let refused = |log: &str| {
        log.lines().any(|l| {
            l.contains("403 Forbidden")
                && l.contains(NOBODY_USER)
                && l.contains("cannot list resource")
                && l.contains("pods")
                && l.contains("deploy/10-rbac.yaml")
        })
    };
    wait_until(
        WAIT,
        Duration::from_millis(100),
        || refused(&daemon.log()),
        || format!("the refusal is not told:\n{}", daemon.log()),
    );
    let line = daemon.log().lines().find(|l| refused(l)).unwrap().to_owned();
    eprintln!("{line}");
    assert_eq!(http_status(&daemon, "/readyz"), 503);
}
