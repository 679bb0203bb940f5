//! What the audit_source tests share: running `paddock` without a daemon, each node's
//! trail as its store holds it and its export sent, the union of the nodes' trails in the
//! cluster's order, and reading pages.
use std::{
    collections::BTreeSet,
    path::Path,
    process::{Command, Output},
    time::Duration,
};

use agent_daemon::{
    events::Event,
    sinks::{
        audit::{AuditStore, Outcome, query::InvestigationRow, read::StoredEvent},
        export::{
            config::{ExportConfig, PostgresExport},
            postgres::schema,
        },
    },
};
use chrono::{DateTime, SecondsFormat, Utc};
use paddock_tests::{
    Daemon, eventually, paddock_bin,
    pg_trail::{assert_same_trail, audit_path, metric, pg_export, wait_caught_up},
    postgres::Postgres,
    scenario,
};
use serde_json::Value;

/// The export of node `node` to `pg` (no TLS), named `pg`, in batches of `batch` events.
pub fn export_to(pg: &Postgres, node: &str, batch: usize) -> ExportConfig {
    let url = format!("{}?sslmode=disable", pg.url());
    ExportConfig::Postgres(PostgresExport { batch_events: batch, ..pg_export("pg", &url, node) })
}

/// What one node stored, as read back from its file.
pub struct NodeTrail {
    pub node: String,
    pub store_id: String,
    pub events: Vec<StoredEvent>,
    pub runs: Vec<InvestigationRow>,
}

pub fn read(node: &str, db: &Path) -> NodeTrail {
    let store = AuditStore::open_read_only(db).expect("open the node's store");
    let events = store.read_after(0, 1_000_000).expect("read_after");
    let numbers: BTreeSet<i64> = events.iter().map(|e| e.run).collect();
    let runs = store.runs(&numbers.into_iter().collect::<Vec<_>>()).expect("runs");
    NodeTrail { node: node.to_owned(), store_id: store.store_id().expect("store_id"), events, runs }
}

/// Wait until the export of `node` has sent all its store holds (the cursor in the database
/// at the store's last sequence number, no lag, as many events counted sent as stored),
/// then stop the daemon cleanly, which drains the export: the trail its store holds from
/// then on is the one in the database.
pub fn exported_then_stopped(pg: &Postgres, daemon: &mut Daemon, node: &str) -> NodeTrail {
    wait_caught_up(pg, daemon, node, Duration::from_secs(60));
    eventually(
        Duration::from_secs(15),
        Duration::from_millis(200),
        || {
            let stored = read(node, &audit_path(daemon)).events.len() as f64;
            let lag = metric(daemon, "paddock_export_lag_events{export=\"pg\"}");
            let sent = metric(daemon, "paddock_export_events_total{export=\"pg\"}");
            if lag == Some(0.0) && sent == Some(stored) { Ok(()) } else { Err((lag, sent, stored)) }
        },
        |(lag, sent, stored)| {
            format!("{node}: lag {lag:?}, sent {sent:?} of {stored} stored:\n{}", daemon.log())
        },
    );
    assert!(daemon.stop().is_some_and(|s| s.success()), "{node}:\n{}", daemon.log());
    // row for row, the database holds the node's trail
    assert_same_trail(pg, daemon, node);
    read(node, &audit_path(daemon))
}

/// The `paddock` schema as the exporter makes it (its own migration), with nothing in it.
pub fn exporter_schema(pg: &Postgres) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        // as the role paddock, through the server's socket (no password, no TLS)
        let config = format!(
            "host={} port={} user=paddock dbname=paddock",
            pg.scratch().display(),
            pg.port()
        );
        let (mut client, conn) =
            tokio_postgres::connect(&config, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        if let Err(e) = schema::migrate(&mut client).await {
            panic!("the exporter's schema: {}", e.message);
        }
    });
}

/// `paddock ARGS --db STORE` on the stopped daemon's store: the node's own answer.
pub fn local(daemon: &Daemon, args: &[&str]) -> Output {
    let db = audit_path(daemon).display().to_string();
    paddock(&[args, &["--db", &db]].concat())
}

pub fn local_ok(daemon: &Daemon, args: &[&str]) -> String {
    let out = local(daemon, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "paddock {args:?} --db failed: {err}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

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

/// Wait until the node's store holds `runs` runs, all ended.
pub fn settled(node: &str, daemon: &Daemon, runs: usize) {
    eventually(
        Duration::from_secs(15),
        Duration::from_millis(100),
        || {
            let trail = read(node, &audit_path(daemon));
            let ended = trail.runs.iter().filter(|r| r.outcome != Outcome::Running).count();
            if ended == runs && trail.runs.len() == runs { Ok(()) } else { Err(ended) }
        },
        |ended| format!("{node}: {ended} of {runs} runs stored as ended"),
    )
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
