//! Containers as the kubelet makes them: their very first exec is seen, and one whose
//! cgroup is missing is counted until it turns up.
use super::*;

/// How many fresh containers the first-exec test starts.
const CONTAINERS: usize = 20;

/// `paddock_kubernetes_missing_container_cgroups`, as `/metrics` shows it now.
fn missing_cgroups(daemon: &Daemon) -> Option<i64> {
    daemon.metrics().lines().find_map(|l| {
        l.strip_prefix("paddock_kubernetes_missing_container_cgroups ")?.trim().parse().ok()
    })
}

fn wait_missing(daemon: &Daemon, value: i64) {
    wait_until(
        WAIT,
        Duration::from_millis(100),
        || missing_cgroups(daemon) == Some(value),
        || {
            format!(
                "paddock_kubernetes_missing_container_cgroups is {:?}, not {value}:\n{}",
                missing_cgroups(daemon),
                daemon.log()
            )
        },
    );
}

/// How soon after the pod shows in the API the test's "kubelet" makes the container's
/// cgroup and starts its process.
#[derive(Clone, Copy, Debug)]
enum Start {
    /// Once the daemon has begun the pod's investigation (what paddock promises).
    AfterTheWatch,
    /// 100 ms after the pod is created (a fast kubelet; a real one also pulls and
    /// starts a sandbox first).
    After100Ms,
    /// At once (faster than any kubelet: a race with the watch).
    AtOnce,
}

/// For `n` fresh containers started `how`: in how many was the first exec (the
/// container's entry point, the actor) seen, and the one after it (`/bin/true`)?
fn first_execs(
    cluster: &Cluster,
    world: &World,
    daemon: &Daemon,
    how: Start,
    n: usize,
) -> (usize, usize) {
    let ns = cluster.namespace("fresh");
    let (mut first, mut second) = (0, 0);
    for i in 0..n {
        let id = format!("fresh-{}-{i}", format!("{how:?}").to_lowercase());
        let follower = daemon.follow(Some(&id));
        let labels = labels(&id, "shadow");
        let job = cluster.create_job(&ns.name, &id, &labels);
        let pod = format!("{id}-pod");
        let uid = cluster.create_pod(&ns.name, &pod, &world.node, &labels, Some(&job));
        match how {
            Start::AfterTheWatch => follower.wait_for(WAIT, |e| e["kind"] == "started"),
            Start::After100Ms => std::thread::sleep(Duration::from_millis(100)),
            Start::AtOnce => {}
        }
        let dir = world.kubepods.make_container(&uid, &kubelet::container_id());
        let mut actor = actor_in(&dir, &["exec:/bin/true"]);
        assert!(wait_exit(&mut actor, WAIT).success());
        cluster.delete_pod(&ns.name, &pod);
        let _ = follower.try_wait_for(Duration::from_secs(5), |e| e["kind"] == "ended");
        let events = follower.events();
        let actor = actor_bin().to_str().unwrap().to_owned();
        first += usize::from(!of_kind(&events, "exec", |e| e["path"] == actor.as_str()).is_empty());
        second += usize::from(!of_kind(&events, "exec", |e| e["path"] == "/bin/true").is_empty());
    }
    (first, second)
}

#[test]
fn first_execs_are_seen_at_three_start_timings() {
    skip_unless_root!();
    const N: usize = 20;
    let cluster = Cluster::connect();
    let world = World::new();
    let daemon = world.daemon(&cluster);
    let mut report = Vec::new();
    for how in [Start::AfterTheWatch, Start::After100Ms, Start::AtOnce] {
        let (first, second) = first_execs(&cluster, &world, &daemon, how, N);
        let line = format!(
            "containers started {how:?}: entry-point exec seen in {first} of {N}, the next exec in {second} of {N}"
        );
        eprintln!("{line}");
        report.push((how, first, second, line));
    }
    // The promise: once the API has shown the pod to paddock, nothing of it is missed.
    let (_, first, second, line) = &report[0];
    assert_eq!((*first, *second), (N, N), "{line}");
    // A fast kubelet still loses nothing: the pod cgroup is registered long before.
    let (_, first, second, line) = &report[1];
    assert_eq!((*first, *second), (N, N), "{line}");
}

/// The pod is in the API (and registered by the daemon) before the kubelet makes its
/// cgroups; the container's first process execs as soon as its cgroup exists, with no
/// pause: that exec, and the one it makes, are the pod's.
#[test]
fn the_first_exec_of_a_fresh_container_is_seen() {
    skip_unless_root!();
    let cluster = Cluster::connect();
    let ns = cluster.namespace("first-exec");
    let world = World::new();
    let daemon = world.daemon(&cluster);
    let follower = daemon.follow(None);
    let mut pods = Vec::new();
    for i in 0..CONTAINERS {
        let id = format!("inv-fresh-{i}");
        let job = cluster.create_job(&ns.name, &id, &labels(&id, "shadow"));
        let pod = format!("{id}-pod");
        let uid =
            cluster.create_pod(&ns.name, &pod, &world.node, &labels(&id, "shadow"), Some(&job));
        pods.push((id, pod, uid));
    }
    // Registered: the daemon lists them (their cgroups expected, not there yet).
    let registered = || {
        let tracked = tracked_pods(&daemon);
        let all = pods.iter().all(|(id, _, _)| tracked.iter().any(|p| p["id"] == id.as_str()));
        if all { Ok(()) } else { Err(tracked) }
    };
    eventually(WAIT, Duration::from_millis(50), registered, |tracked| {
        format!("pods not registered: {tracked:?}")
    });
    for (_, _, uid) in &pods {
        assert!(!world.kubepods.pod_dir(uid).exists());
    }
    // The kubelet's part: the pod's and container's cgroups, and at once a process.
    let mut started = Vec::new();
    for (id, pod, uid) in &pods {
        let container = kubelet::container_id();
        let dir = world.kubepods.make_container(uid, &container);
        let child = actor_in(&dir, &["exec:/bin/true"]);
        started.push((id, pod, container, child));
    }
    for (_, pod, container, child) in &mut started {
        assert!(wait_exit(child, WAIT).success());
        cluster.set_running(&ns.name, pod, container);
    }
    let actor = actor_bin().to_str().unwrap().to_owned();
    let seen = |events: &[Value]| -> Vec<bool> {
        started
            .iter()
            .map(|(id, _, _, child)| {
                let mine = |e: &&Value| e["investigation"] == id.as_str() && e["kind"] == "exec";
                events.iter().filter(mine).any(|e| e["pid"] == child.id() && e["path"] == actor)
                    && events.iter().filter(mine).any(|e| e["path"] == "/bin/true")
            })
            .collect()
    };
    poll(Duration::from_secs(10), Duration::from_millis(100), || {
        !seen(&follower.events()).contains(&false)
    });
    let events = follower.events();
    let seen = seen(&events);
    let count = seen.iter().filter(|s| **s).count();
    eprintln!("first exec seen for {count} of {CONTAINERS} containers");
    assert_eq!(count, CONTAINERS, "missed: {seen:?}\n{}", dump(&events));
}

/// The API names a running container whose cgroup is not there: it is logged, counted
/// in `paddock_kubernetes_missing_container_cgroups`, looked for again, and tracked
/// once it appears.
#[test]
fn a_container_without_a_cgroup_is_counted_until_it_appears() {
    skip_unless_root!();
    let cluster = Cluster::connect();
    let ns = cluster.namespace("pod-missing");
    let world = World::new();
    let daemon = world.daemon(&cluster);
    assert_eq!(missing_cgroups(&daemon), Some(0), "{}", daemon.metrics());
    let follower = daemon.follow(Some("inv-missing"));
    let labels = labels("inv-missing", "shadow");
    let job = cluster.create_job(&ns.name, "inv-missing", &labels);
    let uid = cluster.create_pod(&ns.name, "inv-missing-pod", &world.node, &labels, Some(&job));
    let container = kubelet::container_id();
    cluster.set_running(&ns.name, "inv-missing-pod", &container);
    follower.wait_for(WAIT, |e| e["kind"] == "started");
    wait_missing(&daemon, 1);
    assert!(daemon.log().contains("container cgroup not there yet"), "{}", daemon.log());

    // It turns up: no longer counted, and what runs in it is the pod's.
    let dir = world.kubepods.make_container(&uid, &container);
    wait_missing(&daemon, 0);
    assert!(daemon.log().contains("container cgroup found"), "{}", daemon.log());
    let mut actor = actor_in(&dir, &["exec:/bin/true"]);
    assert!(wait_exit(&mut actor, WAIT).success());
    follower.wait_for(WAIT, |e| e["kind"] == "exec" && e["path"] == "/bin/true");
}
