//! Trust phases as cluster objects (`TrustPhase`): nodes learn one baseline together, a
//! mode or baseline changed through the API reaches every daemon, a bad edit changes
//! nothing, enforcement outlives the API server, and the status tells what the runs did.
//! Two daemons play two nodes (their own node names, state directories, sockets and cgroup
//! parents); local `paddock run` investigations on a node use the cluster's phases.
use paddock_tests::proxy::Proxy;

use super::*;

/// The phase's mode on `daemon`, as `paddock baseline list --json` says.
fn mode_on(daemon: &Daemon, phase: &str) -> String {
    let list: Value = serde_json::from_str(&daemon.ok(&["baseline", "list", "--json"])).unwrap();
    let found = list.as_array().unwrap().iter().find(|p| p["phase"] == phase).cloned();
    found.unwrap_or_else(|| panic!("no {phase} in {list}"))["mode"].as_str().unwrap().to_owned()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn execs(object: &Value) -> Vec<String> {
    strings(&object["spec"]["baseline"]["execs"])
}

/// The value of the metric line that starts with `prefix` (name and labels).
fn metric(daemon: &Daemon, prefix: &str) -> f64 {
    let text = daemon.metrics();
    let line = text.lines().find(|l| l.starts_with(prefix));
    let line = line.unwrap_or_else(|| panic!("no {prefix} in:\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn writes(daemon: &Daemon) -> f64 {
    metric(daemon, "paddock_phase_sync_writes_total{what=\"baseline\"}")
        + metric(daemon, "paddock_phase_sync_writes_total{what=\"status\"}")
}

/// Wait until `condition` holds, polling; panics with `what` and the daemon's log.
fn wait_until(daemon: &Daemon, within: Duration, what: &str, condition: impl Fn() -> bool) {
    paddock_tests::eventually(
        within,
        Duration::from_millis(50),
        || if condition() { Ok(()) } else { Err(()) },
        |()| format!("{what} not within {within:?}:\n{}", daemon.log()),
    )
}

/// `n` runs of the actor doing `steps` in `phase`, each of which must succeed.
fn runs(daemon: &Daemon, tag: &str, phase: &str, steps: &[&str], n: usize) {
    for i in 0..n {
        let id = format!("{tag}-{i}");
        let out = daemon.run_actor(&id, phase, steps);
        assert!(out.status.success(), "{id}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

const LEARNED: [&str; 3] = ["exec:/bin/true", "exec:/bin/date", "sleep:20"];
const STRAY: [&str; 3] = ["exec:/bin/true", "exec:/bin/hostname", "sleep:30000"];

#[test]
fn two_nodes_learn_one_phase_together_nothing_lost_and_no_write_storm() {
    skip_unless_root!();
    let cluster = Cluster::connect();
    let a = World::new().syncing_every(300);
    let b = a.sharing();
    let (da, db) = (a.daemon(&cluster), b.daemon(&cluster));
    let name = format!("{}read-only", a.prefix);
    const RUNS: usize = 20;
    let started = Instant::now();
    // A busy cluster: something else writes the object all along (an annotation), so
    // that the nodes' writes meet conflicts, read again and retry.
    let busy = std::sync::atomic::AtomicBool::new(true);
    let mut other_writes = 0;
    std::thread::scope(|s| {
        let nodes = s.spawn(|| {
            std::thread::scope(|n| {
                n.spawn(|| {
                    runs(&da, "node-a", "read-only", &["exec:/bin/true", "exec:/bin/date"], RUNS)
                });
                n.spawn(|| {
                    runs(
                        &db,
                        "node-b",
                        "read-only",
                        &["exec:/bin/false", "exec:/bin/hostname"],
                        RUNS,
                    )
                });
            });
            std::thread::sleep(Duration::from_millis(1500));
            busy.store(false, std::sync::atomic::Ordering::Relaxed);
        });
        while busy.load(std::sync::atomic::Ordering::Relaxed) {
            other_writes += 1;
            cluster.annotate_trust_phase(&name, "paddock-tests/busy", &other_writes.to_string());
        }
        nodes.join().unwrap();
    });
    let object =
        cluster.wait_for_trust_phase(&name, WAIT, |o| o["status"]["runs"] == (2 * RUNS) as u64);
    let elapsed = started.elapsed();
    for exec in ["/bin/true", "/bin/date", "/bin/false", "/bin/hostname"] {
        assert!(execs(&object).iter().any(|e| e == exec), "{exec} lost: {object:#}");
    }
    // Nothing either node learned is missing from the cluster's baseline.
    let cluster_syscalls = strings(&object["spec"]["baseline"]["syscalls"]);
    for daemon in [&da, &db] {
        let local = daemon.baseline("read-only");
        for set in ["syscalls", "execs"] {
            let cluster_set = strings(&object["spec"]["baseline"][set]);
            for entry in paddock_tests::entries(&local, set) {
                assert!(cluster_set.contains(&entry), "{set} {entry} lost:\n{object:#}");
            }
        }
    }
    assert!(!cluster_syscalls.is_empty());
    assert_eq!(object["status"]["learnedFrom"], (2 * RUNS) as u64);
    assert_eq!(object["status"]["agents"]["local"]["runs"], (2 * RUNS) as u64);
    // Batched: at most a baseline and a status write per interval and node (a conflict
    // retried is not a write), far fewer than one per run.
    let intervals = (elapsed.as_secs_f64() / 0.3).ceil() + 2.0;
    let (wa, wb) = (writes(&da), writes(&db));
    let conflicts = metric(&da, "paddock_phase_sync_conflicts_total")
        + metric(&db, "paddock_phase_sync_conflicts_total");
    eprintln!(
        "{} runs on two nodes in {elapsed:?}: {wa} + {wb} API writes ({:.2} per run), \
             {conflicts} conflicts retried, {other_writes} writes of another writer",
        2 * RUNS,
        (wa + wb) / (2 * RUNS) as f64
    );
    for w in [wa, wb] {
        assert!(w <= 2.0 * intervals, "{w} writes in {intervals} intervals");
    }
    assert!(wa + wb < (2 * RUNS) as f64, "a write per run or more: {wa} + {wb}");
    assert!(conflicts > 0.0, "no conflict met: the retry path went untried");
    let size = serde_json::to_vec(&object).unwrap().len();
    eprintln!("trustphase/{name}: {size} bytes as JSON");
}

#[test]
fn a_phase_learned_on_one_node_is_enforced_on_a_fresh_one() {
    skip_unless_root!();
    let cluster = Cluster::connect();
    let a = World::new();
    let da = a.daemon(&cluster);
    runs(&da, "learn", "autonomous", &LEARNED, 2);
    let name = format!("{}autonomous", a.prefix);
    cluster.wait_for_trust_phase(&name, WAIT, |o| {
        o["status"]["runs"] == 2 && execs(o).iter().any(|e| e == "/bin/date")
    });
    cluster.patch_trust_phase(&name, json!({"mode": "enforce"})).expect("patch the mode");

    // Node B starts afterwards, with an empty state directory.
    let b = a.sharing();
    let db = b.daemon(&cluster);
    assert_eq!(mode_on(&db, "autonomous"), "enforce");
    let out = db.run_actor("rerun", "autonomous", &LEARNED);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), db.log());
    let out = db.run_actor("stray", "autonomous", &STRAY);
    assert_eq!(out.status.code(), Some(99), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/bin/hostname"));
}

#[test]
fn a_mode_switched_through_the_api_reaches_a_running_daemon_within_5_s() {
    skip_unless_root!();
    let cluster = Cluster::connect();
    let a = World::new();
    let da = a.daemon(&cluster);
    let name = format!("{}shadow", a.prefix);
    let mut took = Vec::new();
    for mode in ["flag", "enforce", "learn", "enforce", "flag", "learn"] {
        let t0 = Instant::now();
        cluster.patch_trust_phase(&name, json!({"mode": mode})).expect("patch the mode");
        wait_until(&da, Duration::from_secs(5), &format!("shadow in {mode}"), || {
            mode_on(&da, "shadow") == mode
        });
        took.push(t0.elapsed());
    }
    took.sort();
    eprintln!(
        "mode propagation: min {:?}, median {:?}, max {:?}",
        took[0],
        took[took.len() / 2],
        took[took.len() - 1]
    );
}

#[test]
fn an_edited_baseline_applied_takes_effect_and_a_bad_one_changes_nothing() {
    skip_unless_root!();
    let cluster = Cluster::connect();
    let a = World::new();
    let da = a.daemon(&cluster);
    runs(&da, "learn", "limited-write", &LEARNED, 2);
    let name = format!("{}limited-write", a.prefix);
    cluster.wait_for_trust_phase(&name, WAIT, |o| execs(o).iter().any(|e| e == "/bin/date"));
    cluster.patch_trust_phase(&name, json!({"mode": "enforce"})).unwrap();
    wait_until(&da, WAIT, "enforce", || mode_on(&da, "limited-write") == "enforce");
    let stray =
        |id: &str| da.run_actor(id, "limited-write", &["exec:/bin/true", "exec:/bin/hostname"]);
    assert_eq!(stray("stray-1").status.code(), Some(99));

    // The operator adds /bin/hostname (and the uname it calls): allowed from then on.
    let object = cluster.trust_phase(&name);
    let syscalls = strings(&object["spec"]["baseline"]["syscalls"]);
    let (mut with_execs, mut with_syscalls) = (execs(&object), syscalls.clone());
    with_execs.push("/bin/hostname".into());
    with_syscalls.push("uname".into());
    cluster
        .patch_trust_phase(
            &name,
            json!({"baseline": {"execs": with_execs, "syscalls": with_syscalls}}),
        )
        .unwrap();
    wait_until(&da, WAIT, "/bin/hostname in force", || {
        paddock_tests::entries(&da.baseline("limited-write"), "execs")
            .contains(&"/bin/hostname".to_owned())
    });
    let out = stray("allowed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // A bad edit, well-formed for the schema (a /33 network), that would also take
    // /bin/hostname out: refused whole, said in the status, nothing changes.
    let without: Vec<String> = execs(&object);
    let bad = cluster
            .patch_trust_phase(
                &name,
                json!({"baseline": {"execs": without, "syscalls": syscalls, "egress": ["tcp 10.0.0.0/33 port 443"]}}),
            )
            .expect("the schema takes it");
    let generation = bad["metadata"]["generation"].as_i64().unwrap();
    let refused = cluster.wait_for_trust_phase(&name, WAIT, |o| {
        o["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter().any(|c| {
                c["type"] == "BaselineAccepted"
                    && c["status"] == "False"
                    && c["observedGeneration"] == generation
            })
        })
    });
    let message = refused["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "BaselineAccepted")
        .unwrap()["message"]
        .to_string();
    assert!(message.contains("egress[0]") && message.contains("10.0.0.0/33"), "{message}");
    let out = stray("still-allowed");
    assert!(
        out.status.success(),
        "the refused edit changed something: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(da.log().contains("the phase's object was refused"), "{}", da.log());

    // Malformed for the schema: the API server refuses it, the object is unchanged.
    let err = cluster
        .patch_trust_phase(&name, json!({"baseline": {"syscalls": ["Not A Syscall!"]}}))
        .expect_err("the schema refuses it");
    assert_eq!(paddock_tests::kube::status_code(&err), Some(422), "{err}");
    assert_eq!(cluster.trust_phase(&name)["metadata"]["generation"], generation);

    // Put right: taken in, /bin/hostname out again.
    cluster
        .patch_trust_phase(&name, json!({"baseline": {"egress": [], "syscalls": syscalls}}))
        .unwrap();
    cluster.wait_for_trust_phase(&name, WAIT, |o| {
        o["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter().any(|c| c["type"] == "BaselineAccepted" && c["status"] == "True")
        })
    });
    wait_until(&da, WAIT, "/bin/hostname out", || {
        !paddock_tests::entries(&da.baseline("limited-write"), "execs")
            .contains(&"/bin/hostname".to_owned())
    });
    assert_eq!(stray("stray-2").status.code(), Some(99));
}

#[test]
fn with_the_api_server_unreachable_enforcement_goes_on_and_learning_catches_up() {
    skip_unless_root!();
    let cluster = Cluster::connect();
    let env = paddock_tests::kube_env();
    let target: std::net::SocketAddr =
        env.server.trim_start_matches("https://").parse().expect("a host:port server");
    let proxy = Proxy::start(target);
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = tmp.path().join("kubeconfig");
    let text = std::fs::read_to_string(&cluster.kubeconfig).unwrap();
    std::fs::write(
        &kubeconfig,
        text.replace(&env.server, &format!("https://127.0.0.1:{}", proxy.port)),
    )
    .unwrap();
    let a = World::new();
    cluster.trust_phases(&a.prefix);
    let da = Daemon::start_with(a.config(&kubeconfig));
    wait_ready(&da);
    runs(&da, "learn", "read-only", &LEARNED, 2);
    let said = da.ok(&["phase", "mode", "read-only", "enforce"]);
    assert!(said.contains("in the cluster (trustphase/"), "{said}");

    proxy.cut();
    wait_until(&da, WAIT, "not ready", || http_status(&da, "/readyz") == 503);
    wait_until(&da, WAIT, "the log saying so", || {
        da.log().contains("the cluster's trust phases cannot be reached")
    });
    assert_eq!(da.run_actor("stray-down", "read-only", &STRAY).status.code(), Some(99));
    let out = da.run_actor("fine-down", "read-only", &LEARNED);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Learning goes on, kept for later.
    runs(&da, "learn-down", "shadow", &["exec:/usr/bin/id"], 1);
    // A restart while the API is away enforces from the cache.
    let mut da = da;
    assert!(da.stop().is_some_and(|s| s.success()), "{}", da.log());
    let da = da.restart();
    assert_eq!(mode_on(&da, "read-only"), "enforce");
    assert_eq!(da.run_actor("stray-restarted", "read-only", &STRAY).status.code(), Some(99));
    runs(&da, "learn-down-2", "shadow", &["exec:/bin/echo"], 1);

    proxy.restore();
    let shadow = format!("{}shadow", a.prefix);
    let object = cluster.wait_for_trust_phase(&shadow, Duration::from_secs(60), |o| {
        let e = execs(o);
        e.iter().any(|x| x == "/usr/bin/id")
            && e.iter().any(|x| x == "/bin/echo")
            && o["status"]["runs"] == 2
    });
    eprintln!("caught up: {}", execs(&object).join(" "));
    wait_until(&da, Duration::from_secs(60), "ready again", || http_status(&da, "/readyz") == 200);
    // 2 learning runs, 2 strays killed, 1 fine run: counted while away (across the
    // restart), sent after. Each phase is written in its turn: wait for this one's.
    let read_only = cluster.wait_for_trust_phase(&format!("{}read-only", a.prefix), WAIT, |o| {
        o["status"]["runs"] == 5
    });
    assert_eq!(read_only["status"]["kills"], 2, "{read_only:#}");
    // And none of them twice.
    std::thread::sleep(Duration::from_millis(1000));
    let again = cluster.trust_phase(&format!("{}read-only", a.prefix));
    assert_eq!(again["status"]["runs"], 5, "{again:#}");
}

#[test]
fn the_status_and_the_phase_report_match_what_the_runs_did() {
    skip_unless_root!();
    let cluster = Cluster::connect();
    let ns = cluster.namespace("phase-report");
    let a = World::new();
    let mut config = a.config(&cluster.kubeconfig);
    config.baseline.settle_after_runs = 2;
    let da = a.daemon_with(&cluster, config);
    let name = format!("{}limited-write", a.prefix);
    runs(&da, "learn", "limited-write", &LEARNED, 3);
    let settled = cluster.wait_for_trust_phase(&name, WAIT, |o| o["status"]["runs"] == 3);
    assert_eq!(settled["status"]["settled"], true, "{settled:#}");
    assert_eq!(settled["status"]["runsSinceNew"], 2, "the first run was the new one");

    // Flag: a pod of agent-a strays once.
    da.set_mode("limited-write", "flag");
    let id = "inv-agent-a";
    let mut labels = labels(id, "limited-write");
    labels["agent"] = json!("agent-a");
    let follower = da.follow(Some(id));
    let (_job, _uid, dir) = job_and_pod(&cluster, &a, &ns.name, id, &labels);
    follower.wait_for(WAIT, |e| e["kind"] == "started");
    let mut actor = actor_in(&dir, &["exec:/bin/true", "exec:/bin/hostname", "sleep:50"]);
    assert!(wait_exit(&mut actor, WAIT).success());
    cluster.delete_pod(&ns.name, &format!("{id}-pod"));
    follower.wait_for(WAIT, |e| e["kind"] == "ended");
    // Enforce: a local stray killed, then a run that behaves.
    da.set_mode("limited-write", "enforce");
    assert_eq!(da.run_actor("stray", "limited-write", &STRAY).status.code(), Some(99));
    runs(&da, "fine", "limited-write", &LEARNED, 1);

    // What the runs did, from their events.
    let mut deviations = 0;
    let mut per_run = Vec::new();
    for run in ["learn-0", "learn-1", "learn-2", id, "stray", "fine-0"] {
        let events = da.events_of(run, WAIT);
        let n = events.iter().filter(|e| e["kind"] == "verdict").count() as u64;
        deviations += n;
        per_run.push((run, n));
    }
    assert!(per_run[3].1 > 0 && per_run[4].1 > 0 && per_run[5].1 == 0, "{per_run:?}");
    let object = cluster.wait_for_trust_phase(&name, WAIT, |o| o["status"]["runs"] == 6);
    let s = &object["status"];
    assert_eq!(s["learnedFrom"], 3, "{s:#}");
    assert_eq!(s["deviations"], deviations, "{s:#}\n{per_run:?}");
    assert_eq!(s["deviations24h"], deviations, "{s:#}");
    assert_eq!((s["kills"].clone(), s["kills24h"].clone()), (json!(1), json!(1)), "{s:#}");
    assert_eq!(s["runsSinceNew"], 1, "the last run did nothing new: {s:#}");
    assert_eq!(s["settled"], false, "{s:#}");
    assert_eq!(s["agents"]["agent-a"]["runs"], 1, "{s:#}");
    assert_eq!(s["agents"]["agent-a"]["deviations"], per_run[3].1, "{s:#}");
    assert_eq!(s["agents"]["local"]["runs"], 5, "{s:#}");
    assert_eq!(s["agents"]["local"]["kills"], 1, "{s:#}");
    assert_eq!(s["sets"]["execs"]["entries"], execs(&object).len() as u64, "{s:#}");

    // The same from `paddock phase report`, and in the metrics.
    let report_now = || -> Value {
        serde_json::from_str(&da.ok(&["phase", "report", "limited-write", "--json"])).unwrap()
    };
    // The daemon reports the object as it last took it in (its write's answer or its
    // watch): the same figures, once it has.
    wait_until(&da, WAIT, "the report of all six runs", || report_now()[0]["status"]["runs"] == 6);
    let report = report_now();
    let r = &report[0];
    assert_eq!(r["mode"], "enforce");
    assert!(r["store"].as_str().unwrap().starts_with("cluster"), "{r:#}");
    for key in ["runs", "learnedFrom", "deviations", "kills", "runsSinceNew", "deviations24h"] {
        assert_eq!(r["status"][key], s[key], "{key}: {r:#}");
    }
    let table = da.ok(&["phase", "report"]);
    assert!(table.contains("agent agent-a: 1 runs"), "{table}");
    let runs_metric =
        "paddock_phase_runs{phase=\"limited-write\",mode=\"enforce\",settled=\"false\"}";
    wait_until(&da, WAIT, "the metric", || metric(&da, runs_metric) == 6.0);
}

/// `paddock baseline import` and `reset` on one node change the phase's object, say so,
/// and reach the other node; a tracked process may not ask for either.
#[test]
fn import_and_reset_on_a_node_change_the_object_for_every_node() {
    skip_unless_root!();
    let cluster = Cluster::connect();
    let a = World::new();
    let b = a.sharing();
    let (da, db) = (a.daemon(&cluster), b.daemon(&cluster));
    let name = format!("{}shadow", a.prefix);
    runs(&da, "learn", "shadow", &LEARNED, 1);
    cluster.wait_for_trust_phase(&name, WAIT, |o| o["status"]["runs"] == 1);

    // An edited export, imported on node A, is the object's baseline and B's.
    let exported = da.ok(&["baseline", "export", "shadow"]);
    assert!(exported.contains("/bin/date"), "{exported}");
    let edited = exported.replace("\"/bin/date\",", "\"/bin/date\",\n  \"/opt/tool\",");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("shadow.toml");
    std::fs::write(&file, edited).unwrap();
    let said = da.ok(&["baseline", "import", "shadow", file.to_str().unwrap()]);
    assert!(said.contains(&format!("in the cluster (trustphase/{name}")), "{said}");
    let object = cluster.trust_phase(&name);
    assert!(execs(&object).contains(&"/opt/tool".to_owned()), "{object:#}");
    wait_until(&db, WAIT, "the import on node B", || {
        paddock_tests::entries(&db.baseline("shadow"), "execs").contains(&"/opt/tool".to_owned())
    });

    // A process of an investigation asks node A to reset the phase: refused.
    let script = format!(
        "{} --socket {} baseline reset shadow",
        paddock_tests::paddock_bin().display(),
        da.socket.display()
    );
    let out = da.run("tamper", "shadow", &["/bin/sh"], &["-c", &script]);
    assert!(!out.status.success());
    assert!(execs(&cluster.trust_phase(&name)).contains(&"/opt/tool".to_owned()));

    // The operator resets it: empty, learning, evidence started over, on both nodes.
    da.set_mode("shadow", "flag");
    let said = da.ok(&["baseline", "reset", "shadow"]);
    assert!(said.contains("reset in the cluster"), "{said}");
    let object = cluster.wait_for_trust_phase(&name, WAIT, |o| o["status"]["runs"] == 0);
    assert_eq!(object["spec"]["mode"], "learn");
    // Nothing counted before the reset comes back later (node A's unsent runs included).
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(cluster.trust_phase(&name)["status"]["runs"], 0);
    assert!(execs(&object).is_empty(), "{object:#}");
    wait_until(&db, WAIT, "the reset on node B", || {
        mode_on(&db, "shadow") == "learn"
            && paddock_tests::entries(&db.baseline("shadow"), "execs").is_empty()
    });
}
