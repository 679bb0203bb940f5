//! A stand-in for the exporter: copies one node's audit store into the cluster's
//! PostgreSQL the way the exporter will (every event after sequence 0 with `read_after`, the
//! runs they belong to with `runs`), values bound as parameters. The lead replaces it with
//! the real exporter once that is merged.
use std::{collections::BTreeSet, path::Path};

use agent_daemon::sinks::audit::{AuditStore, Outcome, read::StoredEvent};

/// What one node stored, as read back from its file.
pub struct NodeTrail {
    pub node: String,
    pub store_id: String,
    pub events: Vec<StoredEvent>,
    pub runs: Vec<agent_daemon::sinks::audit::query::InvestigationRow>,
}

pub fn read(node: &str, db: &Path) -> NodeTrail {
    let store = AuditStore::open_read_only(db).expect("open the node's store");
    let events = store.read_after(0, 1_000_000).expect("read_after");
    let numbers: BTreeSet<i64> = events.iter().map(|e| e.run).collect();
    let runs = store.runs(&numbers.into_iter().collect::<Vec<_>>()).expect("runs");
    NodeTrail { node: node.to_owned(), store_id: store.store_id().expect("store_id"), events, runs }
}

/// Insert `trail` into the database at `url` (schema `paddock`).
pub fn load(url: &str, trail: &NodeTrail) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let (node, store) = (&trail.node, &trail.store_id);
        for r in &trail.runs {
            let pod = r.pod.as_ref();
            let outcome = (r.outcome != Outcome::Running).then(|| r.outcome.as_str());
            client
                .execute(
                    "INSERT INTO paddock.runs (node, store_id, run, instance, investigation, \
                     phase, source, cgroup, namespace, pod, job, started, ended, outcome, \
                     reason, events) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                    &[
                        node,
                        store,
                        &r.run,
                        &i64::from(r.instance),
                        &r.id.as_str(),
                        &r.phase.as_str(),
                        &r.source,
                        &r.cgroup,
                        &pod.map(|p| p.namespace.as_str()),
                        &pod.map(|p| p.name.as_str()),
                        &pod.and_then(|p| p.job.as_deref()),
                        &r.started,
                        &r.ended,
                        &outcome,
                        &r.reason,
                        &i64::try_from(r.events).unwrap(),
                    ],
                )
                .await
                .unwrap();
        }
        for e in &trail.events {
            let run = trail.runs.iter().find(|r| r.run == e.run).expect("the event's run");
            let pod = run.pod.as_ref();
            let ev = &e.event;
            client
                .execute(
                    "INSERT INTO paddock.events (node, store_id, run, seq, time, investigation, \
                     phase, kind, pid, ppid, namespace, pod, job, body) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                    &[
                        node,
                        store,
                        &e.run,
                        &e.seq,
                        &ev.time,
                        &ev.investigation.as_str(),
                        &ev.phase.as_str(),
                        &ev.kind.name(),
                        &i64::from(ev.pid),
                        &i64::from(ev.ppid),
                        &pod.map(|p| p.namespace.as_str()),
                        &pod.map(|p| p.name.as_str()),
                        &pod.and_then(|p| p.job.as_deref()),
                        &serde_json::to_value(ev).unwrap(),
                    ],
                )
                .await
                .unwrap();
        }
    });
}
