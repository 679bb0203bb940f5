//! What the export tests compare: the local audit trail (read through the store's own
//! read API) with what PostgreSQL holds, row for row; a steady stream of events from the
//! test actor; the daemon's export metrics.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use agent_daemon::sinks::{
    audit::{AuditStore, read::StoredEvent},
    export::config::PostgresExport,
};
use serde_json::{Value, json};

use crate::{Daemon, actor_bin, paddock_bin, postgres::Postgres, wait::wait_settled};

/// An export of kind postgres as `node`, its other settings at their defaults.
pub fn pg_export(name: &str, url: &str, node: &str) -> PostgresExport {
    PostgresExport { node: Some(node.into()), ..PostgresExport::new(name, url) }
}

/// The daemon's audit store file.
pub fn audit_path(daemon: &Daemon) -> PathBuf {
    daemon.dir.path().join("state/audit.db")
}

/// Every event of the local store, in order.
pub fn local_events(path: &Path) -> Vec<StoredEvent> {
    let store = AuditStore::open_read_only(path).expect("open the audit store");
    let mut all = Vec::new();
    loop {
        let after = all.last().map_or(0, |e: &StoredEvent| e.seq);
        let page = store.read_after(after, 10_000).expect("read_after");
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

pub fn last_seq_given(path: &Path) -> i64 {
    AuditStore::open_read_only(path)
        .expect("open the audit store")
        .last_seq_given()
        .expect("last seq")
}

/// The acknowledged sequence number of `node` in the database (-1 before the schema).
pub fn acked(pg: &Postgres, node: &str) -> i64 {
    pg.try_psql(&format!(
        "SELECT coalesce(max(acked_seq), 0) FROM paddock.export_cursor WHERE node = '{node}'"
    ))
    .ok()
    .and_then(|v| v.parse().ok())
    .unwrap_or(-1)
}

/// Wait until `node` has acknowledged everything the local store gave, and the store has
/// stopped growing (the same last sequence number a second later): late events of ended
/// runs would otherwise land between this and a comparison.
pub fn wait_caught_up(pg: &Postgres, daemon: &Daemon, node: &str, within: Duration) {
    wait_settled(
        within,
        || (acked(pg, node), last_seq_given(&audit_path(daemon))),
        |done, last| {
            format!("export of {node} at {done} of {last} after {within:?}:\n{}", daemon.log())
        },
    );
}

fn micros(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

/// Rows of `sql` (one JSON object per line).
fn json_rows(pg: &Postgres, sql: &str) -> Vec<Value> {
    let text = pg.psql(sql);
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).expect("a JSON row"))
        .collect()
}

/// The database holds exactly the local trail for `node`: every event once, every column
/// as the store has it, and its runs.
pub fn assert_same_trail(pg: &Postgres, daemon: &Daemon, node: &str) {
    let path = audit_path(daemon);
    let local = local_events(&path);
    assert!(!local.is_empty(), "no local events");
    let store = AuditStore::open_read_only(&path).expect("open the audit store");
    let store_id = store.store_id().expect("store id");
    let mut run_ids: Vec<i64> = local.iter().map(|e| e.run).collect();
    run_ids.sort_unstable();
    run_ids.dedup();
    let runs: BTreeMap<i64, _> =
        store.runs(&run_ids).expect("runs").into_iter().map(|r| (r.run, r)).collect();
    let rows = json_rows(
        pg,
        &format!(
            "SELECT json_build_object('node', node, 'store_id', store_id, 'run', run, 'seq', seq, \
             'time', (extract(epoch FROM time) * 1000000)::bigint, 'investigation', investigation, \
             'phase', phase, 'kind', kind, 'pid', pid, 'ppid', ppid, 'namespace', namespace, \
             'pod', pod, 'job', job, 'body', body) FROM paddock.events WHERE node = '{node}' \
             ORDER BY seq"
        ),
    );
    assert_eq!(rows.len(), local.len(), "{node}: rows in the database and events stored locally");
    for (row, stored) in rows.iter().zip(&local) {
        let e = &stored.event;
        let pod = runs.get(&stored.run).and_then(|r| r.pod.clone());
        let expected = json!({
            "node": node, "store_id": store_id, "run": stored.run, "seq": stored.seq,
            "time": micros(e.time), "investigation": e.investigation.as_str(),
            "phase": e.phase.to_string(), "kind": e.kind.name(), "pid": e.pid, "ppid": e.ppid,
            "namespace": pod.as_ref().map(|p| p.namespace.clone()),
            "pod": pod.as_ref().map(|p| p.name.clone()),
            "job": pod.as_ref().and_then(|p| p.job.clone()),
            "body": serde_json::to_value(e).expect("event as JSON"),
        });
        assert_eq!(row, &expected, "{node}: seq {}", stored.seq);
        let back: agent_daemon::events::Event =
            serde_json::from_value(row["body"].clone()).expect("body reads back as an Event");
        assert_eq!(&back, e, "{node}: seq {} read back", stored.seq);
    }
    let rows = json_rows(
        pg,
        &format!(
            "SELECT json_build_object('run', run, 'store_id', store_id, 'instance', instance, \
             'investigation', investigation, 'phase', phase, 'source', source, 'cgroup', cgroup, \
             'namespace', namespace, 'pod', pod, 'job', job, \
             'started', (extract(epoch FROM started) * 1000000)::bigint, \
             'ended', (extract(epoch FROM ended) * 1000000)::bigint, 'outcome', outcome, \
             'reason', reason, 'events', events) FROM paddock.runs WHERE node = '{node}' ORDER BY run"
        ),
    );
    let expected: Vec<Value> = runs
        .values()
        .map(|r| {
            json!({
                "run": r.run, "store_id": store_id, "instance": r.instance,
                "investigation": r.id.as_str(), "phase": r.phase.to_string(), "source": r.source,
                "cgroup": r.cgroup, "namespace": r.pod.as_ref().map(|p| p.namespace.clone()),
                "pod": r.pod.as_ref().map(|p| p.name.clone()),
                "job": r.pod.as_ref().and_then(|p| p.job.clone()),
                "started": micros(r.started), "ended": r.ended.map(micros),
                "outcome": r.outcome.as_str(), "reason": r.reason, "events": r.events,
            })
        })
        .collect();
    assert_eq!(rows, expected, "{node}: runs");
}

/// The value of the sample `series` (`name{labels}`) in the daemon's `/metrics`.
pub fn metric(daemon: &Daemon, series: &str) -> Option<f64> {
    let text = daemon.metrics();
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Investigations run one after another through the daemon's socket, each opening a file
/// many times, until stopped; a run that fails (the daemon is down) is retried.
pub struct Stream {
    stop: Arc<AtomicBool>,
    runs: Arc<AtomicU32>,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Stream {
    pub fn start(socket: &Path, tag: &str) -> Stream {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("target");
        std::fs::write(&file, "x").expect("write target file");
        let stop = Arc::new(AtomicBool::new(false));
        let runs = Arc::new(AtomicU32::new(0));
        let (socket, tag) = (socket.to_path_buf(), tag.to_owned());
        let thread = {
            let (stop, runs) = (stop.clone(), runs.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let ok = Command::new(paddock_bin())
                        .arg("--socket")
                        .arg(&socket)
                        .args([
                            "run",
                            "--investigation-id",
                            &format!("{tag}-{n}"),
                            "--phase",
                            "read-only",
                            "--",
                        ])
                        .arg(actor_bin())
                        .args([format!("open-many:{}:300", file.display()), "sleep:50".into()])
                        .env_remove("LD_LIBRARY_PATH")
                        .output()
                        .is_ok_and(|o| o.status.success());
                    if ok {
                        runs.fetch_add(1, Ordering::Relaxed);
                    } else {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            })
        };
        Stream { stop, runs, thread: Some(thread), _dir: dir }
    }

    /// Runs that completed.
    pub fn runs(&self) -> u32 {
        self.runs.load(Ordering::Relaxed)
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
