//! What the audit_source tests share: running `paddock` without a daemon, the union of the
//! nodes' trails in the cluster's order, and reading pages.
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
use paddock_tests::{Daemon, paddock_bin, scenario};
use serde_json::Value;

use super::load::{self, NodeTrail};

/// `paddock ARGS` with no daemon and no configuration of the machine's.
pub fn paddock(args: &[&str]) -> Output {
    Command::new(paddock_bin())
        .args(["--socket", "/nonexistent/paddock.sock"])
        .args(args)
        .env_remove("PGPASSWORD")
        .env_remove("PADDOCK_CONFIG")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("spawn paddock")
}

pub fn ok(args: &[&str]) -> String {
    let out = paddock(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "paddock {args:?} failed: {err}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn fails(args: &[&str]) -> String {
    let out = paddock(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "paddock {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    err
}

pub fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

/// An event as `show --source --format jsonl` prints it: the node, then the event's JSON.
pub fn cluster_line(node: &str, event: &Event) -> String {
    let json = serde_json::to_string(event).unwrap();
    format!("{{\"node\":{},{}", serde_json::to_string(node).unwrap(), &json[1..])
}

/// One event of the union, with what it is ordered and filtered by.
#[derive(Clone)]
pub struct Stored {
    pub node: String,
    pub store_id: String,
    pub run: i64,
    pub seq: i64,
    pub event: Event,
}

/// Every event of `id` on both nodes, in the cluster's order: time (to the microsecond, as
/// PostgreSQL keeps it), node, seq.
pub fn union(trails: &[&NodeTrail], id: &str) -> Vec<Stored> {
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
pub fn runs_json(trails: &[&NodeTrail], keep: impl Fn(&InvestigationRow) -> bool) -> Vec<Value> {
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

pub fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap()
}

pub fn micros(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `show ID --source URL --format jsonl --limit N` page after page, following the cursor
/// it prints on stderr; the pages' lines, and how many pages.
pub fn paged(url: &str, id: &str, limit: usize) -> (Vec<String>, usize) {
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
pub fn settled(node: &str, daemon: &Daemon, runs: usize) -> NodeTrail {
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

pub fn usual_run(daemon: &Daemon, id: &str, phase: &str, port: u16) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let steps = scenario::usual(dir.path(), port);
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    daemon.run_actor(id, phase, &steps)
}

/// A password file, mode 0600, in `dir`.
pub fn password_file(dir: &Path, name: &str, password: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{password}\n")).unwrap();
    path.display().to_string()
}
