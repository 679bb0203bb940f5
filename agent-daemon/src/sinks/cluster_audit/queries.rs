//! The SQL on the exporter's tables. Text is assembled only from the constant fragments
//! here; every value a caller gives is a bound parameter.
use chrono::{DateTime, Utc};
use tokio_postgres::{Client, Row, types::ToSql};

use super::{
    ClusterError, describe,
    names::{ClusterCursor, RunName},
};
use crate::{
    events::{Event, PodRef},
    identity::InvestigationId,
    sinks::audit::{
        InvestigationFilter, Outcome, query::InvestigationRow, source::NodeStore, source::SourceRun,
    },
};

type Arg = Box<dyn ToSql + Sync + Send>;

/// SQL text and its parameters, numbered as they are pushed.
struct Query {
    sql: String,
    args: Vec<Arg>,
}

impl Query {
    fn new(sql: &str) -> Self {
        Query { sql: sql.to_owned(), args: Vec::new() }
    }

    /// Appends `fragment`, whose one `$` is the parameter `value`.
    fn bind(&mut self, fragment: &str, value: impl ToSql + Sync + Send + 'static) {
        self.args.push(Box::new(value));
        self.sql.push_str(&fragment.replacen('$', &format!("${}", self.args.len()), 1));
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.args.iter().map(|a| &**a as &(dyn ToSql + Sync)).collect()
    }
}

const SELECT_RUNS: &str = "SELECT node, store_id, run, instance, investigation, phase, source, \
     cgroup, namespace, pod, job, started, ended, outcome, reason, events FROM paddock.runs \
     WHERE true";

const SELECT_EVENTS: &str =
    "SELECT node, store_id, seq, time, body::text FROM paddock.events WHERE investigation = $1";

/// The client and the setting it came from, for messages.
pub(super) struct Db<'a> {
    pub client: &'a Client,
    pub origin: &'a str,
}

/// One stored event and its place in the cluster's order.
pub(super) struct ClusterEvent {
    pub at: ClusterCursor,
    pub event: Event,
}

impl Db<'_> {
    async fn query(&self, q: &Query) -> Result<Vec<Row>, ClusterError> {
        self.client.query(&q.sql, &q.params()).await.map_err(|e| self.failed(&e))
    }

    fn failed(&self, e: &tokio_postgres::Error) -> ClusterError {
        ClusterError::Query { origin: self.origin.to_owned(), problem: describe(e) }
    }

    /// Runs matching `filter`, newest first.
    pub async fn runs(&self, filter: &InvestigationFilter) -> Result<Vec<SourceRun>, ClusterError> {
        let mut q = Query::new(SELECT_RUNS);
        if let Some(id) = &filter.id {
            q.bind(" AND investigation = $", id.as_str().to_owned());
        }
        if let Some(phase) = filter.phase {
            q.bind(" AND phase = $", phase.as_str().to_owned());
        }
        if let Some(since) = filter.since {
            q.bind(" AND started >= $", since);
        }
        match filter.outcome {
            None => {}
            Some(Outcome::Running) => q.sql.push_str(" AND ended IS NULL"),
            Some(outcome) => {
                q.bind(" AND ended IS NOT NULL AND outcome = $", outcome.as_str().to_owned());
            }
        }
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        q.bind(" ORDER BY started DESC, node, store_id, run DESC LIMIT $", limit);
        self.query(&q).await?.iter().map(|r| self.run_row(r)).collect()
    }

    /// Whether any run of `id` is stored.
    pub async fn known(&self, id: &InvestigationId) -> Result<bool, ClusterError> {
        let row = self
            .client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM paddock.runs WHERE investigation = $1)",
                &[&id.as_str()],
            )
            .await
            .map_err(|e| self.failed(&e))?;
        row.try_get(0).map_err(|e| self.failed(&e))
    }

    /// The run of `id` that `name` names: exactly one, or an error saying why not.
    pub async fn run(
        &self,
        id: &InvestigationId,
        name: &RunName,
    ) -> Result<SourceRun, ClusterError> {
        let mut q = Query::new(SELECT_RUNS);
        q.bind(" AND investigation = $", id.as_str().to_owned());
        q.bind(" AND run = $", name.run);
        if let Some(node) = &name.node {
            q.bind(" AND node = $", node.clone());
        }
        if let Some(store_id) = &name.store_id {
            q.bind(" AND store_id = $", store_id.clone());
        }
        q.sql.push_str(" ORDER BY node, store_id LIMIT 20");
        let mut runs: Vec<SourceRun> =
            self.query(&q).await?.iter().map(|r| self.run_row(r)).collect::<Result<_, _>>()?;
        let given = || match (&name.node, &name.store_id) {
            (None, _) => name.run.to_string(),
            (Some(node), None) => format!("{node}/{}", name.run),
            (Some(node), Some(store)) => format!("{node}/{store}/{}", name.run),
        };
        match runs.len() {
            0 => Err(ClusterError::UnknownRun {
                origin: self.origin.to_owned(),
                id: id.clone(),
                run: given(),
            }),
            1 => Ok(runs.remove(0)),
            _ => Err(ClusterError::AmbiguousRun {
                origin: self.origin.to_owned(),
                id: id.clone(),
                run: given(),
                candidates: names(&runs),
            }),
        }
    }

    /// Up to `limit` events of `id` after `cursor`, in (time, node, seq, store_id) order;
    /// `run`, `kind`, `since` and `until` as in the local store.
    #[allow(clippy::too_many_arguments)]
    pub async fn events(
        &self,
        id: &InvestigationId,
        run: Option<&SourceRun>,
        kind: Option<&'static str>,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        cursor: Option<ClusterCursor>,
        limit: usize,
    ) -> Result<Vec<ClusterEvent>, ClusterError> {
        let mut q = Query::new(SELECT_EVENTS);
        q.args.push(Box::new(id.as_str().to_owned()));
        if let Some(SourceRun { at: Some(at), row }) = run {
            q.bind(" AND node = $", at.node.clone());
            q.bind(" AND store_id = $", at.store_id.clone());
            q.bind(" AND run = $", row.run);
        }
        if let Some(kind) = kind {
            q.bind(" AND kind = $", kind);
        }
        if let Some(since) = since {
            q.bind(" AND time >= $", since);
        }
        if let Some(until) = until {
            q.bind(" AND time < $", until);
        }
        if let Some(c) = cursor {
            q.bind(" AND (time, node, seq, store_id) > ($", c.time);
            q.bind(", $", c.node);
            q.bind(", $", c.seq);
            q.bind(", $)", c.store_id);
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        q.bind(" ORDER BY time, node, seq, store_id LIMIT $", limit);
        self.query(&q).await?.iter().map(|r| self.event_row(r)).collect()
    }

    /// The process events (fork, exec, exit, verdict) of one run, in the order it stored
    /// them.
    pub async fn process_events(&self, run: &SourceRun) -> Result<Vec<Event>, ClusterError> {
        let Some(at) = &run.at else { return Ok(Vec::new()) };
        let mut q = Query::new(SELECT_EVENTS);
        q.args.push(Box::new(run.row.id.as_str().to_owned()));
        q.bind(" AND node = $", at.node.clone());
        q.bind(" AND store_id = $", at.store_id.clone());
        q.bind(" AND run = $", run.row.run);
        q.sql.push_str(" AND kind IN ('fork', 'exec', 'exit', 'verdict') ORDER BY seq");
        let rows = self.query(&q).await?;
        rows.iter().map(|r| self.event_row(r).map(|e| e.event)).collect()
    }

    fn event_row(&self, r: &Row) -> Result<ClusterEvent, ClusterError> {
        let get = |e: tokio_postgres::Error| self.failed(&e);
        let at = ClusterCursor {
            node: r.try_get(0).map_err(get)?,
            store_id: r.try_get(1).map_err(get)?,
            seq: r.try_get(2).map_err(get)?,
            time: r.try_get(3).map_err(get)?,
        };
        let body: String = r.try_get(4).map_err(get)?;
        let event = serde_json::from_str(&body).map_err(|e| ClusterError::BadBody {
            origin: self.origin.to_owned(),
            node: at.node.clone(),
            seq: at.seq,
            problem: e.to_string(),
        })?;
        Ok(ClusterEvent { at, event })
    }

    fn run_row(&self, r: &Row) -> Result<SourceRun, ClusterError> {
        let get = |e: tokio_postgres::Error| self.failed(&e);
        let at =
            NodeStore { node: r.try_get(0).map_err(get)?, store_id: r.try_get(1).map_err(get)? };
        let run: i64 = r.try_get(2).map_err(get)?;
        let bad = |column, value: &str, problem: String| ClusterError::BadRow {
            origin: self.origin.to_owned(),
            run: format!("{}/{}/{run}", at.node, at.store_id),
            column,
            value: value.to_owned(),
            problem,
        };
        let instance: i64 = r.try_get(3).map_err(get)?;
        let id: String = r.try_get(4).map_err(get)?;
        let phase: String = r.try_get(5).map_err(get)?;
        let (namespace, pod, job): (Option<String>, Option<String>, Option<String>) =
            (r.try_get(8).map_err(get)?, r.try_get(9).map_err(get)?, r.try_get(10).map_err(get)?);
        let ended: Option<DateTime<Utc>> = r.try_get(12).map_err(get)?;
        let outcome: Option<String> = r.try_get(13).map_err(get)?;
        let outcome = match (ended, outcome) {
            (None, _) => Outcome::Running,
            (Some(_), Some(text)) => match text.parse() {
                Ok(Outcome::Running) | Err(_) => {
                    return Err(bad(
                        "outcome",
                        &text,
                        "expected ok, flagged, killed or interrupted".into(),
                    ));
                }
                Ok(outcome) => outcome,
            },
            (Some(_), None) => return Err(bad("outcome", "NULL", "an ended run has one".into())),
        };
        let events: i64 = r.try_get(15).map_err(get)?;
        let row = InvestigationRow {
            run,
            instance: u32::try_from(instance)
                .map_err(|e| bad("instance", &instance.to_string(), e.to_string()))?,
            id: id.parse().map_err(|e: crate::identity::BadInvestigationId| {
                bad("investigation", &id, e.to_string())
            })?,
            phase: phase
                .parse()
                .map_err(|e: crate::identity::UnknownPhase| bad("phase", &phase, e.to_string()))?,
            source: r.try_get(6).map_err(get)?,
            cgroup: r.try_get(7).map_err(get)?,
            pod: match (namespace, pod) {
                (Some(namespace), Some(name)) => Some(PodRef { namespace, name, job }),
                _ => None,
            },
            started: r.try_get(11).map_err(get)?,
            ended,
            outcome,
            reason: r.try_get(14).map_err(get)?,
            events: u64::try_from(events).unwrap_or(0),
        };
        Ok(SourceRun { at: Some(at), row })
    }
}

/// How to name each of `runs` so that the names differ: `NODE/RUN`, or `NODE/STORE_ID/RUN`
/// when one node holds the run number in more than one store file.
pub(super) fn names(runs: &[SourceRun]) -> Vec<String> {
    let node_of = |r: &SourceRun| r.at.as_ref().map(|a| a.node.clone()).unwrap_or_default();
    runs.iter()
        .map(|r| {
            let node = node_of(r);
            let twins = runs.iter().filter(|o| node_of(o) == node && o.row.run == r.row.run);
            match (&r.at, twins.count()) {
                (Some(at), n) if n > 1 => format!("{}/{}/{}", at.node, at.store_id, r.row.run),
                _ => format!("{node}/{}", r.row.run),
            }
        })
        .collect()
}
