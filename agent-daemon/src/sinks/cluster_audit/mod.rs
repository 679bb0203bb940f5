//! The cluster's audit store: the PostgreSQL that every node's exporter copies its events
//! into, read by `paddock audit list | show | tree --source postgres://...` (see
//! `docs/audit-store.md`, "Querying across nodes"). Read only: the exporter creates and
//! fills the schema (`paddock.runs`, `paddock.events`, `paddock.export_cursor`).
//!
//! - `settings`: the URL, password and CA file, checked;
//! - `connect`: TLS, connecting, and the schema check;
//! - `names`: page cursors and run names across nodes;
//! - `queries`: the SQL.
mod connect;
mod error;
pub mod names;
mod queries;
pub mod settings;

pub use error::ClusterError;
pub use settings::SourceSettings;

use tokio_postgres::Client;

use self::{
    names::{ClusterCursor, RunName},
    queries::Db,
};
use crate::{
    identity::InvestigationId,
    sinks::audit::{
        InvestigationFilter,
        filter::check_kind,
        source::{
            AuditSource, SourceError, SourceEvent, SourceEventFilter, SourcePage, SourceRun,
            SourceTree,
        },
        tree::ProcessTree,
    },
};

/// An error and every error under it, on one line.
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// A connection to the cluster's store, with the small runtime that drives it (the CLI is
/// synchronous).
pub struct ClusterSource {
    runtime: tokio::runtime::Runtime,
    client: Client,
    origin: String,
}

impl ClusterSource {
    /// Connect, and check that the exporter's schema is there.
    pub fn open(settings: &SourceSettings) -> Result<Self, ClusterError> {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| {
                ClusterError::Runtime { origin: settings.origin.clone(), problem: e.to_string() }
            })?;
        let client = runtime.block_on(connect::connect(settings))?;
        Ok(ClusterSource { runtime, client, origin: settings.origin.clone() })
    }

    fn db(&self) -> Db<'_> {
        Db { client: &self.client, origin: &self.origin }
    }

    fn check_known(&self, id: &InvestigationId) -> Result<(), ClusterError> {
        if self.runtime.block_on(self.db().known(id))? {
            return Ok(());
        }
        Err(ClusterError::UnknownInvestigation { origin: self.origin.clone(), id: id.clone() })
    }

    fn resolve(&self, id: &InvestigationId, run: &str) -> Result<SourceRun, ClusterError> {
        let name = RunName::parse(run)?;
        self.runtime.block_on(self.db().run(id, &name))
    }
}

fn check_limit(limit: usize) -> Result<usize, SourceError> {
    crate::sinks::audit::query::check_limit(limit)?;
    Ok(limit)
}

impl AuditSource for ClusterSource {
    fn list_runs(&mut self, filter: &InvestigationFilter) -> Result<Vec<SourceRun>, SourceError> {
        check_limit(filter.limit)?;
        Ok(self.runtime.block_on(self.db().runs(filter))?)
    }

    fn events(
        &mut self,
        investigation: &InvestigationId,
        filter: &SourceEventFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<SourcePage, SourceError> {
        let limit = check_limit(limit)?;
        let kind = filter.kind.as_deref().map(check_kind).transpose()?;
        let cursor = cursor.map(ClusterCursor::decode).transpose()?;
        self.check_known(investigation)?;
        let run = filter.run.as_deref().map(|r| self.resolve(investigation, r)).transpose()?;
        // One more than asked: whether there is a next page.
        let mut rows = self.runtime.block_on(self.db().events(
            investigation,
            run.as_ref(),
            kind,
            filter.since,
            filter.until,
            cursor,
            limit + 1,
        ))?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = rows.last().filter(|_| more).map(|last| last.at.encode());
        let events = rows
            .into_iter()
            .map(|r| SourceEvent { node: Some(r.at.node), event: r.event })
            .collect();
        Ok(SourcePage { events, next })
    }

    fn tree(
        &mut self,
        investigation: &InvestigationId,
        run: Option<&str>,
    ) -> Result<SourceTree, SourceError> {
        let run = match run {
            Some(run) => self.resolve(investigation, run)?,
            None => {
                let latest = InvestigationFilter {
                    id: Some(investigation.clone()),
                    limit: 1,
                    ..Default::default()
                };
                let runs = self.runtime.block_on(self.db().runs(&latest))?;
                runs.into_iter().next().ok_or_else(|| ClusterError::UnknownInvestigation {
                    origin: self.origin.clone(),
                    id: investigation.clone(),
                })?
            }
        };
        let events = self.runtime.block_on(self.db().process_events(&run))?;
        let SourceRun { at, row } = run;
        Ok(SourceTree { at, tree: ProcessTree::build(row, &events) })
    }
}
