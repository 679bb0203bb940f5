//! Pods of this node labelled as investigations are tracked like `paddock run` ones, and
//! verdicts reach the cluster. Real kernel, real daemon, real API server (`cargo xtask test
//! kubernetes` starts it); the tests play the kubelet: they make the Job and its pod, set
//! the pod's status, make its cgroups and start its processes inside them. Needs root.
use std::{
    process::{Child, Command},
    time::{Duration, Instant},
};

use agent_daemon::{config::Config, workloads::kubernetes::config::UnknownPhasePolicy};
use paddock_tests::{
    Daemon, actor_bin, config, dump, during, eventually, kube_client::Cluster, kubelet, of_kind,
    poll, process_gone, skip_unless_root, unique, wait_until,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// One test's world: a namespace, a kubepods folder, a node name, a daemon watching them.
struct World {
    kubepods: kubelet::Kubepods,
    node: String,
    /// This world's trust phase objects are `<prefix><phase>`.
    prefix: String,
    /// `kubernetes.phase_sync_ms`.
    sync_ms: u64,
}

impl World {
    fn new() -> World {
        let node = format!("paddock-test-node-{}-{}", std::process::id(), unique());
        World { kubepods: kubelet::Kubepods::new(), prefix: format!("{node}-"), node, sync_ms: 300 }
    }

    /// Another node of the same cluster: its own node name and kubepods folder, the same
    /// phase objects.
    fn sharing(&self) -> World {
        World { prefix: self.prefix.clone(), sync_ms: self.sync_ms, ..World::new() }
    }

    fn syncing_every(self, ms: u64) -> World {
        World { sync_ms: ms, ..self }
    }

    /// A ready daemon of this world, its phase objects made.
    fn daemon(&self, cluster: &Cluster) -> Daemon {
        self.daemon_with(cluster, self.config(&cluster.kubeconfig))
    }

    fn daemon_with(&self, cluster: &Cluster, config: Config) -> Daemon {
        cluster.trust_phases(&self.prefix);
        let daemon = Daemon::start_with(config);
        wait_ready(&daemon);
        daemon
    }

    /// The daemon's configuration for this world, connecting with `kubeconfig`.
    fn config(&self, kubeconfig: &std::path::Path) -> Config {
        let mut config = config();
        let k = &mut config.kubernetes;
        k.enabled = true;
        k.node_name = Some(self.node.clone());
        k.cgroup_parent = self.kubepods.relative.clone().into();
        k.kubeconfig = Some(kubeconfig.to_path_buf());
        k.phase_prefix = self.prefix.clone();
        k.phase_sync_ms = self.sync_ms;
        config
    }
}

fn labels(id: &str, phase: &str) -> Value {
    json!({"investigation-id": id, "trust-phase": phase})
}

/// The status code of `GET path` on the daemon's HTTP server.
fn http_status(daemon: &Daemon, path: &str) -> u16 {
    daemon.http_get(path, None).0
}

/// `/readyz` says 503 for `seconds`, while `/healthz` says 200: alive, not ready.
fn stays_unready(daemon: &Daemon, seconds: u64) {
    assert_eq!(http_status(daemon, "/healthz"), 200);
    during(Duration::from_secs(seconds), Duration::from_millis(200), || {
        assert_eq!(http_status(daemon, "/readyz"), 503, "ready without a pod list");
    });
}

/// The line of the alert counter `name` for the Kubernetes receiver, from `/metrics`.
fn kubernetes_deliveries(daemon: &Daemon, name: &str) -> String {
    let metrics = daemon.metrics();
    metrics
        .lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains("receiver=\"kubernetes\""))
        .unwrap_or_else(|| panic!("no {name} for kubernetes:\n{metrics}"))
        .to_owned()
}

/// A Job and pod `id` in `phase` (in flag mode) whose container execs `/bin/false`, outside
/// the baseline: the pod lives on, and the `PaddockDeviation` Event on its Job is returned.
fn flagged_pod(
    cluster: &Cluster,
    world: &World,
    ns: &str,
    id: &str,
    phase: &str,
    daemon: &Daemon,
) -> (paddock_tests::kube_client::JobRef, Value) {
    let follower = daemon.follow(Some(id));
    let (job, _uid, dir) = job_and_pod(cluster, world, ns, id, &labels(id, phase));
    follower.wait_for(WAIT, |e| e["kind"] == "started");
    let mut actor = actor_in(&dir, &["exec:/bin/true", "exec:/bin/false", "sleep:100"]);
    assert!(wait_exit(&mut actor, WAIT).success(), "flag mode kills nothing");
    follower.wait_for(WAIT, |e| e["kind"] == "verdict" && e["subject"] == "/bin/false");
    let event = cluster.wait_for_event(ns, WAIT, |e| {
        e["reason"] == "PaddockDeviation"
            && e["message"].as_str().is_some_and(|m| m.contains("/bin/false"))
    });
    assert_eq!(event["involvedObject"]["uid"], job.uid.as_str());
    assert!(cluster.job(ns, id).is_some(), "flag mode deletes nothing");
    (job, event)
}

/// Wait until Job `name` is gone or being deleted.
fn wait_job_deleted(cluster: &Cluster, ns: &str, name: &str, daemon: &Daemon) {
    wait_until(
        WAIT,
        Duration::from_millis(200),
        || cluster.job(ns, name).is_none_or(|j| j.metadata.deletion_timestamp.is_some()),
        || format!("Job not deleted:\n{}", daemon.log()),
    );
}

/// `/readyz` answers 200 once the pod list has synced.
fn wait_ready(daemon: &Daemon) {
    wait_until(
        WAIT,
        Duration::from_millis(100),
        || http_status(daemon, "/readyz") == 200,
        || format!("not ready within {WAIT:?}:\n{}", daemon.log()),
    );
}

/// Make a Job and its running pod on `node`; returns (job, pod uid, container cgroup).
fn job_and_pod(
    cluster: &Cluster,
    world: &World,
    ns: &str,
    name: &str,
    labels: &Value,
) -> (paddock_tests::kube_client::JobRef, String, std::path::PathBuf) {
    let job = cluster.create_job(ns, name, labels);
    let pod = format!("{name}-pod");
    let uid = cluster.create_pod(ns, &pod, &world.node, labels, Some(&job));
    let container = kubelet::container_id();
    let dir = world.kubepods.make_container(&uid, &container);
    cluster.set_running(ns, &pod, &container);
    (job, uid, dir)
}

fn actor_in(dir: &std::path::Path, steps: &[&str]) -> Child {
    let mut cmd = Command::new(actor_bin());
    // What its commands print (`/bin/hostname` prints the host's name) is not the test's.
    cmd.args(steps).stdout(std::process::Stdio::null());
    kubelet::spawn_in(dir, cmd)
}

/// Wait for `child` to exit, at most `within`.
fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let pid = child.id();
    eventually(
        within,
        Duration::from_millis(20),
        || child.try_wait().unwrap().ok_or(()),
        |()| format!("process {pid} still running after {within:?}"),
    )
}

/// The pods the daemon tracks, as `paddock status --json` lists them.
fn tracked_pods(daemon: &Daemon) -> Vec<Value> {
    daemon.status()["investigations"].as_array().cloned().unwrap_or_default()
}

/// Teach `phase` from two local runs of the actor doing `steps`.
fn teach(daemon: &Daemon, phase: &str, steps: &[&str]) {
    for i in 0..2 {
        let id = format!("learn-{phase}-{i}");
        let out = daemon.run_actor(&id, phase, steps);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        daemon.events_of(&id, WAIT);
    }
}

// More tests, in `kubernetes/`.
mod containers;
mod phases;
mod rbac;

#[test]
fn a_pod_is_an_investigation_that_ends_when_it_is_deleted_and_its_processes_gone() {
    skip_unless_root!();
    let cluster = Cluster::connect();
    let ns = cluster.namespace("pod-events");
    let world = World::new();
    let daemon = world.daemon(&cluster);
    let follower = daemon.follow(Some("inv-pod-1"));
    let (_job, uid, dir) =
        job_and_pod(&cluster, &world, &ns.name, "inv-pod-1", &labels("inv-pod-1", "read-only"));
    follower.wait_for(WAIT, |e| e["kind"] == "started");
    let mut actor = actor_in(&dir, &["exec:/bin/true", "sleep:2500"]);
    follower.wait_for(WAIT, |e| e["kind"] == "exec" && e["path"] == "/bin/true");

    let pods = tracked_pods(&daemon);
    let me: Vec<&Value> = pods.iter().filter(|p| p["id"] == "inv-pod-1").collect();
    assert_eq!(me.len(), 1, "{pods:?}");
    assert_eq!(me[0]["source"], "kubernetes");
    assert_eq!(me[0]["pod"], format!("{}/inv-pod-1-pod", ns.name));
    assert_eq!(me[0]["job"], "inv-pod-1");
    assert!(me[0]["cgroup"].as_str().unwrap().contains(&uid.replace('-', "_")), "{}", me[0]);

    // Deleted while its process still runs: the investigation goes on until it exits.
    cluster.delete_pod(&ns.name, "inv-pod-1-pod");
    std::thread::sleep(Duration::from_millis(1200));
    assert!(
        follower.events().iter().all(|e| e["kind"] != "ended"),
        "ended while a process still ran:\n{}",
        dump(&follower.events())
    );
    assert!(wait_exit(&mut actor, WAIT).success());
    follower.wait_for(WAIT, |e| e["kind"] == "ended");
    let events = follower.events();
    assert!(events.iter().all(|e| e["investigation"] == "inv-pod-1" && e["phase"] == "read-only"));
    let started = &of_kind(&events, "started", |_| true)[0];
    assert_eq!(started["source"], "kubernetes");
    let exec = of_kind(&events, "exec", |e| e["path"] == "/bin/true");
    assert_eq!(exec.len(), 1, "{}", dump(&events));
    assert!(of_kind(&events, "exec", |e| e["path"] == actor_bin().to_str().unwrap()).len() == 1);
    assert_eq!(of_kind(&events, "ended", |_| true)[0]["outcome"], "ok");
    assert!(tracked_pods(&daemon).is_empty(), "slot freed");
}

#[test]
fn a_pod_running_before_the_daemon_started_is_picked_up() {
    skip_unless_root!();
    let cluster = Cluster::connect();
    let ns = cluster.namespace("pod-before");
    let world = World::new();
    let (_job, _uid, dir) =
        job_and_pod(&cluster, &world, &ns.name, "inv-early", &labels("inv-early", "shadow"));
    let go = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    std::fs::remove_file(&go).unwrap();
    // Already running; it execs the actor once told to.
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.05; done; exec {a} exec:/bin/true",
        go = go.display(),
        a = actor_bin().display()
    );
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", &script]);
    let mut sh = kubelet::spawn_in(&dir, cmd);
    let daemon = world.daemon(&cluster);
    let follower = daemon.follow(Some("inv-early"));
    follower.wait_for(WAIT, |e| e["kind"] == "started");
    std::fs::write(&go, "").unwrap();
    assert!(wait_exit(&mut sh, WAIT).success());
    follower.wait_for(WAIT, |e| e["kind"] == "exec" && e["path"] == "/bin/true");
    let events = follower.events();
    let actor_exec = of_kind(&events, "exec", |e| e["path"] == actor_bin().to_str().unwrap());
    assert_eq!(actor_exec.len(), 1, "the process found running is tracked: {}", dump(&events));
    assert_eq!(actor_exec[0]["phase"], "shadow");
    // Finished: it ends (its cgroup is empty).
    cluster.set_phase(&ns.name, "inv-early-pod", "Succeeded");
    follower.wait_for(WAIT, |e| e["kind"] == "ended");
}

/// A daemon killed while a pod runs: the next one adopts the pod (same instance, a
/// `resumed` event) and the process that had left the pod's cgroup, which only the
/// kernel's process table still tied to it; the investigation ends once that process
/// is gone too.
#[test]
fn a_restarted_daemon_adopts_its_pods_and_the_processes_that_left_them() {
    skip_unless_root!();
    let cluster = Cluster::connect();
    let ns = cluster.namespace("pod-adopt");
    let world = World::new();
    let mut daemon = world.daemon(&cluster);
    let follower = daemon.follow(Some("inv-kept"));
    let (_job, _uid, dir) =
        job_and_pod(&cluster, &world, &ns.name, "inv-kept", &labels("inv-kept", "shadow"));
    follower.wait_for(WAIT, |e| e["kind"] == "started");
    let go = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    std::fs::remove_file(&go).unwrap();
    // Leaves the pod's cgroup for the root (learning: observed, not killed), waits for
    // the go, then execs the actor, which runs /bin/true.
    let script = format!(
        "echo $$ > {root}/cgroup.procs; while [ ! -e {go} ]; do sleep 0.05; done; \
             exec {a} exec:/bin/true sleep:1500",
        root = kubelet::cgroup2_mount().display(),
        go = go.display(),
        a = actor_bin().display()
    );
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", &script]);
    let mut sh = kubelet::spawn_in(&dir, cmd);
    follower.wait_for(WAIT, |e| e["kind"] == "escape");
    let instance = tracked_pods(&daemon)
        .iter()
        .find(|p| p["id"] == "inv-kept")
        .and_then(|p| p["instance"].as_u64())
        .expect("tracked");

    daemon.kill9();
    let daemon = daemon.restart();
    wait_ready(&daemon);
    let pods = tracked_pods(&daemon);
    let me: Vec<&Value> = pods.iter().filter(|p| p["id"] == "inv-kept").collect();
    assert_eq!(me.len(), 1, "{pods:?}");
    assert_eq!(me[0]["instance"].as_u64(), Some(instance), "adopted with its instance");
    let follower = daemon.follow(Some("inv-kept"));
    std::fs::write(&go, "").unwrap();
    follower.wait_for(WAIT, |e| e["kind"] == "exec" && e["path"] == "/bin/true");
    // The pod is over; its escaped process still runs, so the investigation does not end
    // until it is gone.
    cluster.set_phase(&ns.name, "inv-kept-pod", "Succeeded");
    assert!(wait_exit(&mut sh, WAIT).success());
    follower.wait_for(WAIT, |e| e["kind"] == "ended");
    let events = daemon.events_of("inv-kept", WAIT);
    assert_eq!(of_kind(&events, "resumed", |_| true).len(), 1, "{}", dump(&events));
    let true_exec = of_kind(&events, "exec", |e| e["path"] == "/bin/true");
    assert_eq!(true_exec.len(), 1, "{}", dump(&events));
    assert!(true_exec.iter().all(|e| e["instance"].as_u64() == Some(instance)));
    let ended = of_kind(&events, "ended", |_| true);
    assert_eq!(ended[0]["outcome"], "ok", "{}", dump(&events));
}

#[test]
fn an_unknown_phase_is_observed_with_a_warning_event_or_ignored() {
    skip_unless_root!();
    let cluster = Cluster::connect();
    let ns = cluster.namespace("pod-unknown");
    let world = World::new();
    let daemon = world.daemon(&cluster);
    let follower = daemon.follow(Some("inv-odd"));
    let (_job, _uid, dir) =
        job_and_pod(&cluster, &world, &ns.name, "inv-odd", &labels("inv-odd", "admin"));
    follower.wait_for(WAIT, |e| e["kind"] == "started");
    let mut actor = actor_in(&dir, &["exec:/bin/true"]);
    assert!(wait_exit(&mut actor, WAIT).success());
    follower.wait_for(WAIT, |e| e["kind"] == "exec" && e["path"] == "/bin/true");
    assert!(
        follower.events().iter().all(|e| e["phase"] == "unknown"),
        "{}",
        dump(&follower.events())
    );
    let warning = cluster.wait_for_event(&ns.name, WAIT, |e| e["reason"] == "PaddockUnknownPhase");
    assert_eq!(warning["type"], "Warning");
    assert_eq!(warning["involvedObject"]["kind"], "Pod");
    assert_eq!(warning["involvedObject"]["name"], "inv-odd-pod");
    assert!(warning["message"].as_str().unwrap().contains("\"admin\""), "{warning}");
    drop(daemon);

    // With unknown_phase = "ignore", such a pod is not tracked.
    let world = World::new();
    let mut config = world.config(&cluster.kubeconfig);
    config.kubernetes.unknown_phase = UnknownPhasePolicy::Ignore;
    let daemon = world.daemon_with(&cluster, config);
    let follower = daemon.follow(None);
    let (_job, _uid, dir) =
        job_and_pod(&cluster, &world, &ns.name, "inv-odd-2", &labels("inv-odd-2", "admin"));
    let mut actor = actor_in(&dir, &["exec:/bin/true"]);
    assert!(wait_exit(&mut actor, WAIT).success());
    during(Duration::from_secs(3), Duration::from_millis(200), || {
        assert!(tracked_pods(&daemon).is_empty(), "{:?}", tracked_pods(&daemon));
    });
    assert!(follower.events().is_empty(), "{}", dump(&follower.events()));
    assert!(
        daemon.log().contains("unknown_phase = \\\"ignore\\\"")
            || daemon.log().contains("inv-odd-2-pod"),
        "{}",
        daemon.log()
    );
}

#[test]
fn pods_of_other_nodes_are_ignored() {
    skip_unless_root!();
    let cluster = Cluster::connect();
    let ns = cluster.namespace("pod-elsewhere");
    let world = World::new();
    let daemon = world.daemon(&cluster);
    let follower = daemon.follow(None);
    let job = cluster.create_job(&ns.name, "inv-far", &labels("inv-far", "shadow"));
    let uid = cluster.create_pod(
        &ns.name,
        "inv-far-pod",
        "another-node",
        &labels("inv-far", "shadow"),
        Some(&job),
    );
    let container = kubelet::container_id();
    let dir = world.kubepods.make_container(&uid, &container);
    cluster.set_running(&ns.name, "inv-far-pod", &container);
    let mut actor = actor_in(&dir, &["exec:/bin/true"]);
    assert!(wait_exit(&mut actor, WAIT).success());
    // And a pod of this node, to know the watch works: it is seen, the other never was.
    job_and_pod(&cluster, &world, &ns.name, "inv-near", &labels("inv-near", "shadow"));
    follower.wait_for(WAIT, |e| e["kind"] == "started" && e["investigation"] == "inv-near");
    let events = follower.events();
    assert!(events.iter().all(|e| e["investigation"] != "inv-far"), "{}", dump(&events));
    assert!(tracked_pods(&daemon).iter().all(|p| p["id"] != "inv-far"));
}

#[test]
fn a_deviation_in_flag_mode_is_a_warning_event_on_the_job() {
    skip_unless_root!();
    let cluster = Cluster::connect();
    let ns = cluster.namespace("pod-flag");
    let world = World::new();
    let daemon = world.daemon(&cluster);
    teach(&daemon, "limited-write", &["exec:/bin/true", "sleep:100"]);
    daemon.set_mode("limited-write", "flag");
    let (job, event) =
        flagged_pod(&cluster, &world, &ns.name, "inv-flag", "limited-write", &daemon);
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["involvedObject"]["kind"], "Job");
    assert_eq!(event["involvedObject"]["name"], "inv-flag");
    assert_eq!(event["involvedObject"]["uid"], job.uid.as_str());
    let message = event["message"].as_str().unwrap();
    assert!(message.contains("inv-flag") && message.contains("limited-write"), "{message}");
    let delivered = kubernetes_deliveries(&daemon, "paddock_alert_deliveries_total");
    assert!(!delivered.ends_with(" 0"), "{delivered}");
}

#[test]
fn not_ready_until_the_pod_list_has_synced() {
    skip_unless_root!();
    let cluster = Cluster::connect();
    // The same cluster settings, but a server that never answers.
    let text = std::fs::read_to_string(&cluster.kubeconfig).unwrap();
    let server = paddock_tests::kube_env().server;
    assert!(text.contains(&server), "{server} not in {text}");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, text.replace(&server, "https://127.0.0.1:1")).unwrap();
    let world = World::new();
    let daemon = Daemon::start_with(world.config(&kubeconfig));
    stays_unready(&daemon, 3);
    wait_until(
        WAIT,
        Duration::from_millis(100),
        || daemon.log().contains("pod watch failed"),
        || format!("the failing watch is not logged:\n{}", daemon.log()),
    );
}

#[test]
fn enforce_kills_the_pod_deletes_its_job_and_says_why() {
    skip_unless_root!();
    let cluster = Cluster::connect();
    let ns = cluster.namespace("pod-enforce");
    let world = World::new();
    let daemon = world.daemon(&cluster);
    teach(&daemon, "autonomous", &["exec:/bin/true", "sleep:100"]);
    daemon.set_mode("autonomous", "enforce");
    let follower = daemon.follow(Some("inv-kill"));
    let (_job, _uid, dir) =
        job_and_pod(&cluster, &world, &ns.name, "inv-kill", &labels("inv-kill", "autonomous"));
    follower.wait_for(WAIT, |e| e["kind"] == "started");
    // A companion that only sleeps, and the one that strays.
    let mut companion = actor_in(&dir, &["sleep:30000"]);
    follower.wait_for(WAIT, |e| e["kind"] == "exec" && e["pid"] == companion.id());
    let mut stray = actor_in(&dir, &["exec:/bin/true", "exec:/bin/false", "sleep:30000"]);
    let status = wait_exit(&mut stray, WAIT);
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "{status:?}");
    let status = wait_exit(&mut companion, WAIT);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the whole pod dies"
    );
    assert!(process_gone(companion.id()));
    follower.wait_for(WAIT, |e| e["kind"] == "verdict" && e["outcome"] == "killed");
    wait_job_deleted(&cluster, &ns.name, "inv-kill", &daemon);
    let event = cluster.wait_for_event(&ns.name, WAIT, |e| e["reason"] == "PaddockKill");
    assert_eq!(event["involvedObject"]["kind"], "Job");
    assert_eq!(event["involvedObject"]["name"], "inv-kill");
    let message = event["message"].as_str().unwrap();
    assert!(message.contains("/bin/false") && message.contains("Job deleted"), "{message}");
    // The pod's processes are gone: once the pod is gone too, the investigation ends.
    cluster.delete_pod(&ns.name, "inv-kill-pod");
    follower.wait_for(WAIT, |e| e["kind"] == "ended" && e["outcome"] == "killed");
}
