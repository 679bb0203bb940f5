//! One batch in one transaction: the runs it touches upserted, its events copied into a
//! temporary table and inserted from there (a row already present is left alone), and the
//! cursor moved to its last sequence number. Either all of it is committed or none.
use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::pin_mut;
use tokio_postgres::{
    Client,
    binary_copy::BinaryCopyInWriter,
    types::{Json, ToSql, Type},
};

use super::{
    super::{Batch, ExportError, Reason},
    errors::classify,
};
use crate::sinks::audit::query::InvestigationRow;

/// Made once per connection; emptied by each commit.
pub const STAGING: &str = "CREATE TEMP TABLE IF NOT EXISTS paddock_export_events \
     (LIKE paddock.events) ON COMMIT DELETE ROWS";

const COLUMNS: &str = "node, store_id, run, seq, time, investigation, phase, kind, pid, ppid, namespace, pod, job, body";

const TYPES: [Type; 14] = [
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
];

const UPSERT_RUN: &str = "INSERT INTO paddock.runs (node, store_id, run, instance, investigation, \
     phase, source, cgroup, namespace, pod, job, started, ended, outcome, reason, events) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
     ON CONFLICT (node, store_id, run) DO UPDATE SET instance = EXCLUDED.instance, \
     investigation = EXCLUDED.investigation, phase = EXCLUDED.phase, source = EXCLUDED.source, \
     cgroup = EXCLUDED.cgroup, namespace = EXCLUDED.namespace, pod = EXCLUDED.pod, \
     job = EXCLUDED.job, started = EXCLUDED.started, ended = EXCLUDED.ended, \
     outcome = EXCLUDED.outcome, reason = EXCLUDED.reason, events = EXCLUDED.events";

const MOVE_CURSOR: &str = "INSERT INTO paddock.export_cursor (node, store_id, acked_seq, updated) \
     VALUES ($1, $2, $3, now()) ON CONFLICT (node, store_id) DO UPDATE SET \
     acked_seq = GREATEST(paddock.export_cursor.acked_seq, EXCLUDED.acked_seq), updated = now()";

/// `time` as PostgreSQL keeps it: whole microseconds (the `body` keeps the nanoseconds).
pub fn to_micros(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap_or(time)
}

/// The days (UTC) of the batch's events, for their partitions.
pub fn days(batch: &Batch<'_>) -> Vec<NaiveDate> {
    let mut days: Vec<NaiveDate> =
        batch.events.iter().map(|e| to_micros(e.event.time).date_naive()).collect();
    days.sort_unstable();
    days.dedup();
    days
}

pub async fn write(client: &mut Client, batch: &Batch<'_>) -> Result<(), ExportError> {
    let fail = |e: tokio_postgres::Error| classify(&e, Reason::Write);
    let tx = client.transaction().await.map_err(fail)?;
    let upsert = tx.prepare(UPSERT_RUN).await.map_err(fail)?;
    for run in batch.runs {
        upsert_run(&tx, &upsert, batch, run).await.map_err(fail)?;
    }
    let Some(last) = batch.events.last() else { return tx.commit().await.map_err(fail) };
    let pods: HashMap<i64, &InvestigationRow> = batch.runs.iter().map(|r| (r.run, r)).collect();
    let sink = tx
        .copy_in(&format!("COPY paddock_export_events ({COLUMNS}) FROM STDIN BINARY"))
        .await
        .map_err(fail)?;
    let writer = BinaryCopyInWriter::new(sink, &TYPES);
    pin_mut!(writer);
    for stored in batch.events {
        let e = &stored.event;
        let pod = pods.get(&stored.run).and_then(|r| r.pod.as_ref());
        let time = to_micros(e.time);
        let row: [&(dyn ToSql + Sync); 14] = [
            &batch.node,
            &batch.store_id,
            &stored.run,
            &stored.seq,
            &time,
            &e.investigation.as_str(),
            &e.phase.to_string(),
            &e.kind.name(),
            &i64::from(e.pid),
            &i64::from(e.ppid),
            &pod.map(|p| p.namespace.as_str()),
            &pod.map(|p| p.name.as_str()),
            &pod.and_then(|p| p.job.as_deref()),
            &Json(e),
        ];
        writer.as_mut().write(&row).await.map_err(fail)?;
    }
    writer.finish().await.map_err(fail)?;
    tx.execute(
        &format!(
            "INSERT INTO paddock.events ({COLUMNS}) SELECT {COLUMNS} FROM paddock_export_events \
             ON CONFLICT DO NOTHING"
        ),
        &[],
    )
    .await
    .map_err(fail)?;
    tx.execute(MOVE_CURSOR, &[&batch.node, &batch.store_id, &last.seq]).await.map_err(fail)?;
    tx.commit().await.map_err(fail)
}

async fn upsert_run(
    tx: &tokio_postgres::Transaction<'_>,
    statement: &tokio_postgres::Statement,
    batch: &Batch<'_>,
    run: &InvestigationRow,
) -> Result<u64, tokio_postgres::Error> {
    let pod = run.pod.as_ref();
    let events = i64::try_from(run.events).unwrap_or(i64::MAX);
    tx.execute(
        statement,
        &[
            &batch.node,
            &batch.store_id,
            &run.run,
            &i64::from(run.instance),
            &run.id.as_str(),
            &run.phase.to_string(),
            &run.source,
            &run.cgroup,
            &pod.map(|p| p.namespace.as_str()),
            &pod.map(|p| p.name.as_str()),
            &pod.and_then(|p| p.job.as_deref()),
            &to_micros(run.started),
            &run.ended.map(to_micros),
            &run.outcome.as_str(),
            &run.reason,
            &events,
        ],
    )
    .await
}

/// Where export of `(node, store_id)` stands: the last sequence number committed, 0 before
/// the first batch.
pub async fn acked(client: &Client, node: &str, store_id: &str) -> Result<i64, ExportError> {
    let row = client
        .query_opt(
            "SELECT acked_seq FROM paddock.export_cursor WHERE node = $1 AND store_id = $2",
            &[&node, &store_id],
        )
        .await
        .map_err(|e| classify(&e, Reason::Schema))?;
    Ok(row.map_or(0, |r| r.get(0)))
}

/// The runs of `(node, store_id)` the database holds as not ended.
pub async fn unfinished_runs(
    client: &Client,
    node: &str,
    store_id: &str,
) -> Result<Vec<i64>, ExportError> {
    let rows = client
        .query(
            "SELECT run FROM paddock.runs WHERE node = $1 AND store_id = $2 AND ended IS NULL",
            &[&node, &store_id],
        )
        .await
        .map_err(|e| classify(&e, Reason::Schema))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
