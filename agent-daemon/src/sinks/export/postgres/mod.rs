//! The `postgres` export: the audit trail in a PostgreSQL database, schema `paddock`.
//!
//! - `target`: the URL and its TLS and password settings, checked;
//! - `tls`: connecting;
//! - `schema`: the tables, their migrations, daily partitions and retention;
//! - `write`: one batch in one transaction;
//! - `errors`: PostgreSQL's errors as the reasons of the failure metric.
pub mod errors;
pub mod schema;
pub mod target;
pub mod tls;
pub mod write;

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use chrono::{NaiveDate, Utc};
use tokio_postgres::Client;

use super::{Batch, Destination, ExportError, Reason};
use target::PgTarget;

/// How often partitions are made ahead and old ones dropped.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(3600);
/// Days of partitions made ahead of today.
const DAYS_AHEAD: i64 = 2;

pub struct Postgres {
    target: PgTarget,
    node: String,
    retention_days: u32,
    client: Option<Client>,
    /// Partitions known to exist.
    days: HashSet<NaiveDate>,
    maintained: Option<Instant>,
}

impl Postgres {
    pub fn new(target: PgTarget, node: String, retention_days: u32) -> Postgres {
        Postgres {
            target,
            node,
            retention_days,
            client: None,
            days: HashSet::new(),
            maintained: None,
        }
    }

    /// Partitions ahead, old ones dropped: at connection, then hourly.
    async fn maintain(&mut self) -> Result<(), ExportError> {
        if self.maintained.is_some_and(|t| t.elapsed() < MAINTENANCE_EVERY) {
            return Ok(());
        }
        let Some(client) = self.client.as_mut() else { return Ok(()) };
        let today = Utc::now().date_naive();
        let ahead: Vec<NaiveDate> =
            (0..=DAYS_AHEAD).map(|d| today + chrono::Duration::days(d)).collect();
        schema::ensure_partitions(client, &ahead).await?;
        let dropped = schema::drop_old(client, self.retention_days, Utc::now()).await?;
        if dropped > 0 {
            tracing::info!(
                dropped,
                retention_days = self.retention_days,
                "export: dropped PostgreSQL partitions past retention"
            );
        }
        self.days = schema::partitions(client).await?.into_iter().collect();
        self.maintained = Some(Instant::now());
        Ok(())
    }
}

impl Destination for Postgres {
    fn describe(&self) -> String {
        self.target.url.clone()
    }

    async fn open(&mut self, store_id: &str) -> Result<i64, ExportError> {
        self.client = None;
        let mut client = tls::connect(&self.target).await?;
        schema::migrate(&mut client).await?;
        client
            .batch_execute(write::STAGING)
            .await
            .map_err(|e| errors::classify(&e, Reason::Schema))?;
        let acked = write::acked(&client, &self.node, store_id).await?;
        self.client = Some(client);
        self.maintained = None;
        self.maintain().await?;
        Ok(acked)
    }

    async fn unfinished_runs(&mut self, store_id: &str) -> Result<Vec<i64>, ExportError> {
        let Some(client) = self.client.as_ref() else {
            return Err(ExportError::new(Reason::Connect, "not connected".into()));
        };
        write::unfinished_runs(client, &self.node, store_id).await
    }

    async fn write(&mut self, batch: &Batch<'_>) -> Result<(), ExportError> {
        self.maintain().await?;
        let Some(client) = self.client.as_mut() else {
            return Err(ExportError::new(Reason::Connect, "not connected".into()));
        };
        let missing: Vec<NaiveDate> =
            write::days(batch).into_iter().filter(|d| !self.days.contains(d)).collect();
        if !missing.is_empty() {
            schema::ensure_partitions(client, &missing).await?;
            self.days.extend(missing);
        }
        let written = write::write(client, batch).await;
        if written.is_err() {
            // Retention elsewhere may have dropped a partition this cache still lists.
            self.days.clear();
            self.maintained = None;
        }
        written
    }

    fn close(&mut self) {
        self.client = None;
    }
}
