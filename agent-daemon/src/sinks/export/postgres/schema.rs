//! The `paddock` schema in PostgreSQL: made and migrated by paddock (version in
//! `paddock.schema_version`), daily partitions of `paddock.events` made ahead and on
//! demand, and old ones dropped. Every change runs under one advisory lock, so that the
//! exporters of many nodes sharing a database never race each other.
use chrono::{DateTime, Duration, NaiveDate, Utc};
use tokio_postgres::Client;

use super::{
    super::{ExportError, Reason},
    errors::classify,
};

/// The schema this build writes.
pub const VERSION: i32 = 1;

/// Taken (for the transaction) by whoever changes the schema or its partitions.
const LOCK: i64 = 0x7061_6464_6f63_6b00; // "paddock\0"

/// Each version's statements, in order: version N is `MIGRATIONS[N - 1]`.
const MIGRATIONS: [&str; 1] = [r"
CREATE TABLE paddock.runs (
    node text NOT NULL,
    store_id text NOT NULL,
    run bigint NOT NULL,
    instance bigint NOT NULL,
    investigation text NOT NULL,
    phase text NOT NULL,
    source text,
    cgroup text,
    namespace text,
    pod text,
    job text,
    started timestamptz NOT NULL,
    ended timestamptz,
    outcome text NOT NULL,
    reason text,
    events bigint NOT NULL,
    PRIMARY KEY (node, store_id, run)
);
CREATE INDEX runs_investigation ON paddock.runs (investigation, started);
CREATE TABLE paddock.events (
    node text NOT NULL,
    store_id text NOT NULL,
    run bigint NOT NULL,
    seq bigint NOT NULL,
    time timestamptz NOT NULL,
    investigation text NOT NULL,
    phase text NOT NULL,
    kind text NOT NULL,
    pid bigint NOT NULL,
    ppid bigint NOT NULL,
    namespace text,
    pod text,
    job text,
    body jsonb NOT NULL,
    PRIMARY KEY (node, store_id, seq, time)
) PARTITION BY RANGE (time);
CREATE INDEX events_investigation ON paddock.events (investigation, time);
CREATE INDEX events_run ON paddock.events (node, store_id, run, seq);
CREATE TABLE paddock.export_cursor (
    node text NOT NULL,
    store_id text NOT NULL,
    acked_seq bigint NOT NULL,
    updated timestamptz NOT NULL,
    PRIMARY KEY (node, store_id)
);
"];

/// Bring the schema to [`VERSION`]. A database already there is only read (a role without
/// the right to change it can still export); a newer one is refused.
pub async fn migrate(client: &mut Client) -> Result<(), ExportError> {
    let fail = |e: tokio_postgres::Error| classify(&e, Reason::Schema);
    if let Some(version) = current(client).await? {
        if version == VERSION {
            return Ok(());
        }
        if version > VERSION {
            return Err(newer(version));
        }
    }
    let tx = client.transaction().await.map_err(fail)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK]).await.map_err(fail)?;
    tx.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS paddock;
         CREATE TABLE IF NOT EXISTS paddock.schema_version (
             version integer PRIMARY KEY,
             applied timestamptz NOT NULL DEFAULT now()
         );",
    )
    .await
    .map_err(fail)?;
    let row = tx
        .query_one("SELECT coalesce(max(version), 0) FROM paddock.schema_version", &[])
        .await
        .map_err(fail)?;
    let mut version: i32 = row.get(0);
    if version > VERSION {
        return Err(newer(version));
    }
    while version < VERSION {
        let index = usize::try_from(version).unwrap_or(usize::MAX);
        let Some(statements) = MIGRATIONS.get(index) else { break };
        tx.batch_execute(statements).await.map_err(fail)?;
        version += 1;
        tx.execute("INSERT INTO paddock.schema_version (version) VALUES ($1)", &[&version])
            .await
            .map_err(fail)?;
        tracing::info!(version, "export: PostgreSQL schema paddock migrated");
    }
    tx.commit().await.map_err(fail)
}

fn newer(version: i32) -> ExportError {
    ExportError::new(
        Reason::Schema,
        format!(
            "schema paddock is at version {version}, newer than this paddock's {VERSION}: \
             upgrade paddock"
        ),
    )
}

/// The schema's version, or `None` when it has none yet.
async fn current(client: &Client) -> Result<Option<i32>, ExportError> {
    let fail = |e: tokio_postgres::Error| classify(&e, Reason::Schema);
    let row = client
        .query_one("SELECT to_regclass('paddock.schema_version') IS NOT NULL", &[])
        .await
        .map_err(fail)?;
    if !row.get::<_, bool>(0) {
        return Ok(None);
    }
    let row = client
        .query_one("SELECT max(version) FROM paddock.schema_version", &[])
        .await
        .map_err(fail)?;
    Ok(row.get(0))
}

/// The partition of `paddock.events` holding `day`.
pub fn partition_name(day: NaiveDate) -> String {
    format!("events_{}", day.format("%Y%m%d"))
}

/// Make the daily partitions of `days` that do not exist yet (only those: making one needs
/// more privileges than writing).
pub async fn ensure_partitions(client: &mut Client, days: &[NaiveDate]) -> Result<(), ExportError> {
    let have = partitions(client).await?;
    let days: Vec<NaiveDate> = days.iter().copied().filter(|d| !have.contains(d)).collect();
    if days.is_empty() {
        return Ok(());
    }
    let fail = |e: tokio_postgres::Error| classify(&e, Reason::Schema);
    let tx = client.transaction().await.map_err(fail)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK]).await.map_err(fail)?;
    for &day in &days {
        let next = day + Duration::days(1);
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS paddock.{} PARTITION OF paddock.events \
             FOR VALUES FROM ('{day} 00:00:00+00') TO ('{next} 00:00:00+00')",
            partition_name(day)
        ))
        .await
        .map_err(fail)?;
    }
    tx.commit().await.map_err(fail)
}

/// The days of the partitions that exist.
pub async fn partitions(client: &Client) -> Result<Vec<NaiveDate>, ExportError> {
    let rows = client
        .query(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'paddock.events'::regclass",
            &[],
        )
        .await
        .map_err(|e| classify(&e, Reason::Schema))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let name: String = r.get(0);
            NaiveDate::parse_from_str(name.strip_prefix("events_")?, "%Y%m%d").ok()
        })
        .collect())
}

/// Drop the partitions wholly older than `retention_days` before `now`, and the runs that
/// ended before then; the number of partitions dropped.
pub async fn drop_old(
    client: &mut Client,
    retention_days: u32,
    now: DateTime<Utc>,
) -> Result<usize, ExportError> {
    if retention_days == 0 {
        return Ok(0);
    }
    let cutoff = now - Duration::days(i64::from(retention_days));
    let old: Vec<NaiveDate> = partitions(client)
        .await?
        .into_iter()
        .filter(|day| {
            day.and_hms_opt(0, 0, 0).is_some_and(|t| t.and_utc() + Duration::days(1) <= cutoff)
        })
        .collect();
    let fail = |e: tokio_postgres::Error| classify(&e, Reason::Schema);
    let tx = client.transaction().await.map_err(fail)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK]).await.map_err(fail)?;
    for day in &old {
        tx.batch_execute(&format!("DROP TABLE IF EXISTS paddock.{}", partition_name(*day)))
            .await
            .map_err(fail)?;
    }
    tx.execute("DELETE FROM paddock.runs WHERE ended < $1", &[&cutoff]).await.map_err(fail)?;
    tx.commit().await.map_err(fail)?;
    Ok(old.len())
}
