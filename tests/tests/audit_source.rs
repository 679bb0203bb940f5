//! `paddock audit list | show | tree --source postgres://...`: forensic queries on the
//! cluster's store give what the nodes' own stores give, merged. Two real daemons (two
//! "nodes") run parts of one investigation; their stores are copied into a real PostgreSQL
//! as the exporter does; the answers from PostgreSQL must equal the union of the local
//! trails, filter for filter and page for page. Needs root.
#[path = "audit_source/load.rs"]
mod load;

use std::{
    path::Path,
    process::{Command, Output},
    time::{Duration, Instant},
};

use agent_daemon::{
    events::Event,
    sinks::audit::{Outcome, query::InvestigationRow},
};
use chrono::{DateTime, SecondsFormat, Utc};
use load::NodeTrail;
use paddock_tests::{Daemon, Listener, paddock_bin, postgres::Postgres, root_or_skip, scenario};
use serde_json::Value;

const SCHEMA: &str = include_str!("audit_source/schema.sql");

/// `paddock ARGS` with no daemon and no configuration of the machine's.
fn paddock(args: &[&str]) -> Output {
    Command::new(paddock_bin())
        .args(["--socket", "/nonexistent/paddock.sock"])
        .args(args)
        .env_remove("PGPASSWORD")
        .env_remove("PADDOCK_CONFIG")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("spawn paddock")
}

fn ok(args: &[&str]) -> String {
    let out = paddock(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "paddock {args:?} failed: {err}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(args: &[&str]) -> String {
    let out = paddock(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "paddock {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    err
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

/// An event as `show --source --format jsonl` prints it: the node, then the event's JSON.
fn cluster_line(node: &str, event: &Event) -> String {
    let json = serde_json::to_string(event).unwrap();
    format!("{{\"node\":{},{}", serde_json::to_string(node).unwrap(), &json[1..])
}

/// One event of the union, with what it is ordered and filtered by.
#[derive(Clone)]
struct Stored {
    node: String,
    store_id: String,
    run: i64,
    seq: i64,
    event: Event,
}

/// Every event of `id` on both nodes, in the cluster's order: time (to the microsecond, as
/// PostgreSQL keeps it), node, seq.
fn union(trails: &[&NodeTrail], id: &str) -> Vec<Stored> {
    let mut all: Vec<Stored> = trails
        .iter()
        .flat_map(|t| {
            t.events.iter().filter(|e| e.event.investigation.as_str() == id).map(|e| Stored {
                node: t.node.clone(),
                store_id: t.store_id.clone(),
                run: e.run,
                seq: e.seq,
                event: e.event.clone(),
            })
        })
        .collect();
    all.sort_by_key(|s| {
        (s.event.time.timestamp_micros(), s.node.clone(), s.seq, s.store_id.clone())
    });
    all
}

/// The runs of both nodes, newest first, as `list --source --format json` gives them.
fn runs_json(trails: &[&NodeTrail], keep: impl Fn(&InvestigationRow) -> bool) -> Vec<Value> {
    let mut all: Vec<(&NodeTrail, &InvestigationRow)> = trails
        .iter()
        .flat_map(|t| t.runs.iter().map(move |r| (*t, r)))
        .filter(|(_, r)| keep(r))
        .collect();
    // newest first, then node and store ascending, then run descending
    all.sort_by(|(ta, a), (tb, b)| {
        to_micros(b.started)
            .cmp(&to_micros(a.started))
            .then_with(|| ta.node.cmp(&tb.node))
            .then_with(|| ta.store_id.cmp(&tb.store_id))
            .then_with(|| b.run.cmp(&a.run))
    });
    all.into_iter()
        .map(|(t, r)| {
            // PostgreSQL keeps times to the microsecond
            let mut r = r.clone();
            r.started = to_micros(r.started);
            r.ended = r.ended.map(to_micros);
            let mut v = serde_json::to_value(&r).unwrap();
            v["node"] = Value::from(t.node.clone());
            v["store_id"] = Value::from(t.store_id.clone());
            v
        })
        .collect()
}

fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap()
}

fn micros(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `show ID --source URL --format jsonl --limit N` page after page, following the cursor
/// it prints on stderr; the pages' lines, and how many pages.
fn paged(url: &str, id: &str, limit: usize) -> (Vec<String>, usize) {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let limit = limit.to_string();
        let mut args =
            vec!["audit", "show", id, "--source", url, "--format", "jsonl", "--limit", &limit];
        if let Some(c) = &cursor {
            args.extend(["--cursor", c]);
        }
        let out = paddock(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let page = lines(&String::from_utf8_lossy(&out.stdout));
        assert!(page.len() <= limit.parse().unwrap());
        all.extend(page);
        pages += 1;
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        match err.lines().find_map(|l| l.strip_prefix("next cursor: ")) {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (all, pages),
        }
        assert!(pages < 1000, "paging does not end");
    }
}

/// The node's store once it holds `runs` ended runs.
fn settled(node: &str, daemon: &Daemon, runs: usize) -> NodeTrail {
    let db = daemon.dir.path().join("state/audit.db");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let trail = load::read(node, &db);
        let ended = trail.runs.iter().filter(|r| r.outcome != Outcome::Running).count();
        if ended == runs && trail.runs.len() == runs {
            return trail;
        }
        assert!(Instant::now() < deadline, "{node}: {ended} of {runs} runs stored as ended");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn usual_run(daemon: &Daemon, id: &str, phase: &str, port: u16) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let steps = scenario::usual(dir.path(), port);
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    daemon.run_actor(id, phase, &steps)
}

#[test]
fn queries_on_the_cluster_store_equal_the_union_of_the_nodes_stores() {
    if !root_or_skip("queries_on_the_cluster_store_equal_the_union_of_the_nodes_stores") {
        return;
    }
    let pg = Postgres::start();
    pg.psql(SCHEMA);
    let url = pg.url();
    let (a, b) = (Daemon::start(), Daemon::start());
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

    let (ta, tb) = (settled("node-a", &a, 2), settled("node-b", &b, 4));
    load::load(&url, &ta);
    load::load(&url, &tb);
    let trails = [&ta, &tb];

    // show: every event of inv-x from both nodes, by time then node, in each format.
    let x = union(&trails, "inv-x");
    // the nodes' events interleave in time: the merge is not one node after the other
    let switches = x.windows(2).filter(|w| w[0].node != w[1].node).count();
    assert!(switches >= 3, "{switches} switches between nodes");
    for (node, daemon, trail) in [("node-a", &a, &ta), ("node-b", &b, &tb)] {
        // the local trail is what the loader read
        let local = daemon.ok(&["audit", "show", "inv-x", "--format", "jsonl"]);
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
            let local = daemon.ok(&["audit", "tree", "inv-x", "--run", &r.run.to_string()]);
            let cluster = ok(&["audit", "tree", "inv-x", "--run", &name, "--source", &url]);
            assert_eq!(cluster, format!("# {name}, store {}\n{local}", t.store_id));
            assert!(local.contains("/bin/"), "{local}");
            let local: Value = serde_json::from_str(&daemon.ok(&[
                "audit",
                "tree",
                "inv-x",
                "--run",
                &r.run.to_string(),
                "--format",
                "json",
            ]))
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
    let out = a.paddock(&["audit", "show", "inv-x", "--cursor", "c00"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("cursor"), "{err}");
    drop(pg);
}

/// A password file, mode 0600, in `dir`.
fn password_file(dir: &Path, name: &str, password: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{password}\n")).unwrap();
    path.display().to_string()
}

#[test]
fn a_bad_source_is_named_with_what_to_fix() {
    if !root_or_skip("a_bad_source_is_named_with_what_to_fix") {
        return;
    }
    // Bad URLs, and passwords inside them, are refused before any connection.
    let err = fails(&["audit", "list", "--source", "mysql://paddock@127.0.0.1/paddock"]);
    assert!(
        err.contains("--source mysql://paddock@127.0.0.1/paddock: is not a postgres:// URL"),
        "{err}"
    );
    let err = fails(&["audit", "list", "--source", "postgres://paddock:hunter2@127.0.0.1/paddock"]);
    assert!(
        err.contains("--source postgres://paddock:***@127.0.0.1/paddock: the URL holds a password"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    let err = fails(&["audit", "list", "--source", "postgres://paddock@127.0.0.1/p?sslmode=allow"]);
    assert!(
        err.contains("sslmode=allow: expected disable, prefer, require or verify-full"),
        "{err}"
    );
    let err = fails(&["audit", "check", "--source", "postgres://paddock@127.0.0.1/p"]);
    assert!(err.contains("audit check reads this node's store file only"), "{err}");

    // Nothing listening.
    let port = paddock_tests::monitoring::free_port();
    let nobody = format!("postgres://paddock@127.0.0.1:{port}/paddock?connect_timeout=5");
    let err = fails(&["audit", "list", "--source", &nobody]);
    assert!(err.contains(&format!("--source {nobody}: cannot connect: ")), "{err}");

    // A database the exporter never wrote to.
    let pg = Postgres::start();
    let err = fails(&["audit", "list", "--source", &pg.url()]);
    assert!(
        err.contains(&format!(
            "--source {}: no paddock schema in database paddock: has an [[export]] written to it?",
            pg.url()
        )),
        "{err}"
    );
    pg.psql(SCHEMA);
    let empty = ok(&["audit", "list", "--source", &pg.url()]);
    assert!(empty.starts_with("NODE "), "{empty}");
    assert_eq!(empty.lines().count(), 1, "{empty}");

    // The configured default: [audit] source, with its own password file.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("paddock.toml");
    std::fs::write(&config, format!("[audit]\nsource = {:?}\n", pg.url())).unwrap();
    let config = config.display().to_string();
    let listed = ok(&["audit", "list", "--config", &config]);
    assert_eq!(listed, empty);
    let bad_config = dir.path().join("bad.toml");
    std::fs::write(&bad_config, "[audit]\nsource = \"postgres://paddock:hunter2@h/paddock\"\n")
        .unwrap();
    let err = fails(&["audit", "list", "--config", &bad_config.display().to_string()]);
    assert!(
        err.contains(
            "audit.source = \"postgres://paddock:***@h/paddock\": must not hold a password"
        ),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    drop(pg);

    // A server that wants a password: the right one from a file or $PGPASSWORD, the wrong
    // one refused.
    let pg = Postgres::with(paddock_tests::postgres::PgOptions {
        password: Some("right-one".into()),
        tls: false,
    });
    pg.psql(SCHEMA);
    let url = pg.url();
    let wrong = password_file(pg.scratch(), "wrong", "wrong-one");
    let right = password_file(pg.scratch(), "right", "right-one");
    let err = fails(&["audit", "list", "--source", &url, "--source-password-file", &wrong]);
    assert!(err.contains(&format!("--source {url}: cannot connect: ")), "{err}");
    assert!(err.contains("password authentication failed"), "{err}");
    let err = fails(&["audit", "list", "--source", &url]);
    assert!(err.contains("cannot connect"), "{err}");
    ok(&["audit", "list", "--source", &url, "--source-password-file", &right]);
    let out = Command::new(paddock_bin())
        .args(["audit", "list", "--source", &url])
        .env("PGPASSWORD", "right-one")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let missing = pg.scratch().join("missing").display().to_string();
    let err = fails(&["audit", "list", "--source", &url, "--source-password-file", &missing]);
    assert!(err.contains(&format!("--source {url}: password file {missing}: ")), "{err}");
    drop(pg);

    // TLS: the server's certificate must chain to the CA file, its name included.
    let pg = Postgres::with(paddock_tests::postgres::PgOptions { password: None, tls: true });
    pg.psql(SCHEMA);
    let certs = pg.tls.clone().unwrap();
    let url = format!("{}?sslmode=verify-full", pg.url());
    let ca = certs.ca.display().to_string();
    let listed = ok(&["audit", "list", "--source", &url, "--source-ca-file", &ca]);
    assert!(listed.starts_with("NODE "), "{listed}");
    let err = fails(&[
        "audit",
        "list",
        "--source",
        &url,
        "--source-ca-file",
        &certs.other_ca.display().to_string(),
    ]);
    assert!(err.contains("cannot connect"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    let err = fails(&["audit", "list", "--source", &url]);
    assert!(err.contains("cannot connect"), "{err}");
    let not_pem = password_file(pg.scratch(), "not-a-ca", "hello");
    let err = fails(&["audit", "list", "--source", &url, "--source-ca-file", &not_pem]);
    assert!(err.contains(&format!("CA file {not_pem}: holds no PEM certificate")), "{err}");
    // a server without TLS refuses sslmode=require
    let plain = Postgres::start();
    plain.psql(SCHEMA);
    let err = fails(&[
        "audit",
        "list",
        "--source",
        &format!("{}?sslmode=require", plain.url()),
        "--source-ca-file",
        &ca,
    ]);
    assert!(err.contains("cannot connect"), "{err}");
}
