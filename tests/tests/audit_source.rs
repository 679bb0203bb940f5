//! `paddock audit list | show | tree --source postgres://...`: forensic queries on the
//! cluster's store give what the nodes' own stores give, merged. Two real daemons (two
//! "nodes") run parts of one investigation, each exporting (`[[export]] kind = "postgres"`)
//! to one real PostgreSQL; once both exports have caught up and the daemons stopped, the
//! answers from PostgreSQL must equal the union of the local trails, filter for filter and
//! page for page. Needs root.
#[path = "audit_source/errors.rs"]
mod errors;
#[path = "audit_source/support.rs"]
mod support;

use agent_daemon::config::Config;
use agent_daemon::sinks::audit::Outcome;
use chrono::{DateTime, Utc};
use paddock_tests::{Daemon, Listener, config, postgres::Postgres, scenario, skip_unless_root};
use serde_json::Value;

use support::{
    Stored, cluster_line, export_to, exported_then_stopped, fails, lines, local, local_ok, micros,
    ok, paged, runs_json, settled, union, usual_run,
};

#[test]
fn queries_on_the_cluster_store_equal_the_union_of_the_nodes_stores() {
    skip_unless_root!();
    let pg = Postgres::start();
    let url = pg.url();
    // Small batches on node a, so that its trail goes in many transactions.
    let node = |node: &str, batch: usize| {
        Daemon::start_with(Config { export: vec![export_to(&pg, node, batch)], ..config() })
    };
    let (mut a, mut b) = (node("node-a", 5), node("node-b", 500));
    let listener = Listener::start();
    // Both nodes run inv-x at the same time, twice, so that their events interleave; node
    // b also runs inv-y in another phase, then inv-x once more in enforce mode (killed).
    for _ in 0..2 {
        std::thread::scope(|s| {
            let on_a = s.spawn(|| usual_run(&a, "inv-x", "read-only", listener.port));
            let on_b = usual_run(&b, "inv-x", "read-only", listener.port);
            assert!(on_b.status.success(), "{}", String::from_utf8_lossy(&on_b.stderr));
            let on_a = on_a.join().unwrap();
            assert!(on_a.status.success(), "{}", String::from_utf8_lossy(&on_a.stderr));
        });
    }
    assert!(usual_run(&b, "inv-y", "shadow", listener.port).status.success());
    b.set_mode("read-only", "enforce");
    let dir = tempfile::tempdir().unwrap();
    let stray = scenario::stray(dir.path(), listener.port);
    let stray: Vec<&str> = stray.iter().map(String::as_str).collect();
    assert_eq!(b.run_actor("inv-x", "read-only", &stray).status.code(), Some(99));

    settled("node-a", &a, 2);
    settled("node-b", &b, 4);
    let ta = exported_then_stopped(&pg, &mut a, "node-a");
    let tb = exported_then_stopped(&pg, &mut b, "node-b");
    let trails = [&ta, &tb];

    // show: every event of inv-x from both nodes, by time then node, in each format.
    let x = union(&trails, "inv-x");
    // the nodes' events interleave in time: the merge is not one node after the other
    let switches = x.windows(2).filter(|w| w[0].node != w[1].node).count();
    assert!(switches >= 3, "{switches} switches between nodes");
    for (node, daemon, trail) in [("node-a", &a, &ta), ("node-b", &b, &tb)] {
        // the local trail is what the store holds
        let local = local_ok(daemon, &["audit", "show", "inv-x", "--format", "jsonl"]);
        let mine: Vec<String> = trail
            .events
            .iter()
            .filter(|e| e.event.investigation.as_str() == "inv-x")
            .map(|e| serde_json::to_string(&e.event).unwrap())
            .collect();
        assert_eq!(lines(&local), mine, "{node}");
    }
    let jsonl = |extra: &[&str]| {
        let mut args = vec!["audit", "show", "inv-x", "--source", &url, "--format", "jsonl"];
        args.extend(extra);
        lines(&ok(&args))
    };
    let expect = |keep: &dyn Fn(&Stored) -> bool| -> Vec<String> {
        x.iter().filter(|s| keep(s)).map(|s| cluster_line(&s.node, &s.event)).collect()
    };
    let all = jsonl(&[]);
    assert_eq!(all, expect(&|_| true));
    let table = lines(&ok(&["audit", "show", "inv-x", "--source", &url]));
    let want: Vec<String> = x.iter().map(|s| format!("{} {}", s.node, s.event)).collect();
    assert_eq!(table, want);
    let json: Value = serde_json::from_str(&ok(&[
        "audit", "show", "inv-x", "--source", &url, "--format", "json",
    ]))
    .unwrap();
    let want: Vec<Value> = all.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(json, Value::from(want));

    // Paging with small pages gives the same sequence.
    for limit in [1, 3, 7] {
        let (pages, count) = paged(&url, "inv-x", limit);
        assert_eq!(pages, all, "pages of {limit}");
        assert_eq!(count, all.len().div_ceil(limit).max(1), "pages of {limit}");
    }

    // Every filter of show, against the union filtered by hand.
    let run_of = |node: &str, run: i64| {
        let node = node.to_owned();
        move |s: &Stored| s.node == node && s.run == run
    };
    for t in trails {
        for r in t.runs.iter().filter(|r| r.id.as_str() == "inv-x") {
            let name = format!("{}/{}", t.node, r.run);
            let full = format!("{}/{}/{}", t.node, t.store_id, r.run);
            let want = expect(&run_of(&t.node, r.run));
            assert!(!want.is_empty(), "{name}");
            assert_eq!(jsonl(&["--run", &name]), want, "--run {name}");
            assert_eq!(jsonl(&["--run", &full]), want, "--run {full}");
        }
    }
    let err = fails(&["audit", "show", "inv-x", "--source", &url, "--run", "1"]);
    assert!(err.contains("run 1 of inv-x is stored by more than one node"), "{err}");
    assert!(err.contains("node-a/1, node-b/1"), "{err}");
    // node b's killed run has a number no run of inv-x on node a has: the number names it
    let killed = tb.runs.iter().find(|r| r.outcome == Outcome::Killed).expect("a killed run");
    assert_eq!(jsonl(&["--run", &killed.run.to_string()]), expect(&run_of("node-b", killed.run)));
    for kind in ["exec", "started", "ended", "verdict"] {
        let want = expect(&|s: &Stored| s.event.kind.name() == kind);
        assert!(!want.is_empty() || kind == "verdict", "{kind}");
        assert_eq!(jsonl(&["--kind", kind]), want, "--kind {kind}");
    }
    // times with whole microseconds compare alike in both stores
    let (t1, t2) = (x[x.len() / 3].event.time, x[2 * x.len() / 3].event.time);
    let (since, until) = (micros(t1), micros(t2));
    let since_t = DateTime::parse_from_rfc3339(&since).unwrap().to_utc();
    let until_t = DateTime::parse_from_rfc3339(&until).unwrap().to_utc();
    assert_eq!(jsonl(&["--since", &since]), expect(&|s: &Stored| s.event.time >= since_t));
    assert_eq!(jsonl(&["--until", &until]), expect(&|s: &Stored| s.event.time < until_t));
    let between = expect(&|s: &Stored| {
        s.event.time >= since_t && s.event.time < until_t && s.event.kind.name() == "exec"
    });
    assert_eq!(jsonl(&["--since", &since, "--until", &until, "--kind", "exec"]), between);
    let (pages, _) = paged(&url, "inv-x", 2);
    assert_eq!(pages, all);

    // list: both nodes' runs, newest first, with their nodes; and every filter.
    let list = |extra: &[&str]| -> Value {
        let mut args = vec!["audit", "list", "--source", &url, "--format", "json"];
        args.extend(extra);
        serde_json::from_str(&ok(&args)).unwrap()
    };
    assert_eq!(list(&[]), Value::from(runs_json(&trails, |_| true)));
    assert_eq!(
        list(&["--id", "inv-x"]),
        Value::from(runs_json(&trails, |r| r.id.as_str() == "inv-x"))
    );
    assert_eq!(
        list(&["--phase", "shadow"]),
        Value::from(runs_json(&trails, |r| r.id.as_str() == "inv-y"))
    );
    for outcome in [Outcome::Ok, Outcome::Killed, Outcome::Running] {
        let want = runs_json(&trails, |r| r.outcome == outcome);
        assert_eq!(list(&["--outcome", outcome.as_str()]), Value::from(want), "{outcome}");
    }
    let newest = runs_json(&trails, |_| true);
    assert_eq!(list(&["--limit", "2"]), Value::from(newest[..2].to_vec()));
    let third: DateTime<Utc> = serde_json::from_value(newest[2]["started"].clone()).unwrap();
    let since = micros(third);
    let since_t = DateTime::parse_from_rfc3339(&since).unwrap().to_utc();
    let want = runs_json(&trails, |r| r.started >= since_t);
    assert_eq!(want.len(), 3);
    assert_eq!(list(&["--since", &since]), Value::from(want));
    let table = ok(&["audit", "list", "--source", &url]);
    let rows = lines(&table);
    assert!(rows[0].starts_with("NODE "), "{table}");
    assert!(rows[0].contains(" POD ") && rows[0].contains(" JOB "), "{table}");
    assert_eq!(rows.len(), 1 + newest.len(), "{table}");
    for (row, run) in rows[1..].iter().zip(&newest) {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[0], run["node"], "{row}");
        assert_eq!(cells[1], run["run"].to_string(), "{row}");
        assert_eq!(cells[2], run["id"], "{row}");
    }

    // tree: the process tree of each run, as the node itself draws it.
    for (daemon, t) in [(&a, &ta), (&b, &tb)] {
        for r in t.runs.iter().filter(|r| r.id.as_str() == "inv-x") {
            let name = format!("{}/{}", t.node, r.run);
            let local = local_ok(daemon, &["audit", "tree", "inv-x", "--run", &r.run.to_string()]);
            let cluster = ok(&["audit", "tree", "inv-x", "--run", &name, "--source", &url]);
            assert_eq!(cluster, format!("# {name}, store {}\n{local}", t.store_id));
            assert!(local.contains("/bin/"), "{local}");
            let local: Value = serde_json::from_str(&local_ok(
                daemon,
                &["audit", "tree", "inv-x", "--run", &r.run.to_string(), "--format", "json"],
            ))
            .unwrap();
            let cluster: Value = serde_json::from_str(&ok(&[
                "audit", "tree", "inv-x", "--run", &name, "--source", &url, "--format", "json",
            ]))
            .unwrap();
            assert_eq!(cluster["node"], t.node.as_str());
            assert_eq!(cluster["store_id"], t.store_id.as_str());
            for key in ["investigation", "run", "outcome", "processes"] {
                assert_eq!(cluster[key], local[key], "{name}: {key}");
            }
        }
    }
    // without --run: the latest run of inv-x across nodes (node b's killed run)
    let latest = ok(&["audit", "tree", "inv-x", "--source", &url]);
    assert!(latest.starts_with(&format!("# node-b/{}, ", killed.run)), "{latest}");
    assert!(latest.contains("KILLED"), "{latest}");

    // Unknown things, named with the source.
    let err = fails(&["audit", "show", "inv-nope", "--source", &url]);
    assert!(err.contains(&format!("--source {url}: no investigation inv-nope")), "{err}");
    let err = fails(&["audit", "tree", "inv-nope", "--source", &url]);
    assert!(err.contains("no investigation inv-nope"), "{err}");
    let err = fails(&["audit", "show", "inv-x", "--source", &url, "--run", "node-c/1"]);
    assert!(
        err.contains(&format!("--source {url}: investigation inv-x has no run node-c/1")),
        "{err}"
    );
    let err = fails(&["audit", "tree", "inv-y", "--source", &url, "--run", "node-a/1"]);
    assert!(err.contains("has no run node-a/1"), "{err}");
    for bad in ["node-a/x", "a/b/c/1", "0"] {
        let err = fails(&["audit", "show", "inv-x", "--source", &url, "--run", bad]);
        assert!(err.contains("NODE/RUN"), "{bad}: {err}");
    }
    let err = fails(&["audit", "show", "inv-x", "--source", &url, "--cursor", "42"]);
    assert!(err.contains("parameter cursor"), "{err}");
    // a local cursor is not a cluster cursor and the other way round
    let out = local(&a, &["audit", "show", "inv-x", "--cursor", "c00"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("cursor"), "{err}");
    drop(pg);
}
