//! Where `paddock audit list | show | tree` read from: this node's store file
//! ([`AuditStore`]), or the cluster's PostgreSQL that the exporters fill
//! (`sinks::cluster_audit`). Both answer the same questions with the same filters and pages;
//! only a cluster's answers also say which node (and which of its store files) each run and
//! event came from.
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{
    AuditError, AuditStore, Cursor, EventFilter, InvestigationFilter, params,
    query::InvestigationRow, tree::ProcessTree,
};
use crate::{events::Event, identity::InvestigationId, sinks::cluster_audit::ClusterError};

/// A node and one of its store files (`meta.store_id`): a store numbers its own runs and
/// events, so across a cluster a run is `(node, store_id, run)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStore {
    pub node: String,
    pub store_id: String,
}

/// One run, and where it was stored (`None` for this node's own store).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceRun {
    #[serde(flatten)]
    pub at: Option<NodeStore>,
    #[serde(flatten)]
    pub row: InvestigationRow,
}

/// One event, and the node that stored it (`None` for this node's own store).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceEvent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(flatten)]
    pub event: Event,
}

/// A page of events; `next` is an opaque cursor to pass back, `None` on the last page.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcePage {
    pub events: Vec<SourceEvent>,
    pub next: Option<String>,
}

/// The process tree of one run, and where the run was stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceTree {
    #[serde(flatten)]
    pub at: Option<NodeStore>,
    #[serde(flatten)]
    pub tree: ProcessTree,
}

/// Which events of an investigation: `run` as the user wrote it (a source reads its own
/// run names), the rest checked already (`params::events_request`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceEventFilter {
    pub run: Option<String>,
    pub kind: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Local(#[from] AuditError),
    #[error(transparent)]
    Param(#[from] params::ParamError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// The questions `paddock audit` asks of a store.
pub trait AuditSource {
    /// Runs matching `filter`, newest first.
    fn list_runs(&mut self, filter: &InvestigationFilter) -> Result<Vec<SourceRun>, SourceError>;

    /// Up to `limit` events of `investigation` after `cursor`, in the source's order.
    fn events(
        &mut self,
        investigation: &InvestigationId,
        filter: &SourceEventFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<SourcePage, SourceError>;

    /// The process tree of run `run` of `investigation`, or of its latest run.
    fn tree(
        &mut self,
        investigation: &InvestigationId,
        run: Option<&str>,
    ) -> Result<SourceTree, SourceError>;
}

fn local_run(given: &str) -> Result<i64, params::ParamError> {
    let run = params::tree_run(&[("run".to_owned(), given.to_owned())])?;
    Ok(run.unwrap_or_default())
}

/// This node's store: its own queries, unchanged.
impl AuditSource for AuditStore {
    fn list_runs(&mut self, filter: &InvestigationFilter) -> Result<Vec<SourceRun>, SourceError> {
        let runs = self.list_investigations(filter)?;
        Ok(runs.into_iter().map(|row| SourceRun { at: None, row }).collect())
    }

    fn events(
        &mut self,
        investigation: &InvestigationId,
        filter: &SourceEventFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<SourcePage, SourceError> {
        let filter = EventFilter {
            run: filter.run.as_deref().map(local_run).transpose()?,
            kind: filter.kind.clone(),
            since: filter.since,
            until: filter.until,
        };
        let cursor = cursor.map(str::parse::<Cursor>).transpose()?;
        let page = AuditStore::events(self, investigation, &filter, cursor, limit)?;
        Ok(SourcePage {
            events: page
                .events
                .into_iter()
                .map(|event| SourceEvent { node: None, event })
                .collect(),
            next: page.next.map(|c| c.to_string()),
        })
    }

    fn tree(
        &mut self,
        investigation: &InvestigationId,
        run: Option<&str>,
    ) -> Result<SourceTree, SourceError> {
        let run = run.map(local_run).transpose()?;
        Ok(SourceTree { at: None, tree: self.investigation_tree(investigation, run)? })
    }
}
