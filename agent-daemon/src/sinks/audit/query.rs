//! The queries: runs of investigations, and the events of one investigation a page at a
//! time. SQL is assembled only from the constant fragments here; every value a caller gives
//! is a bound parameter.
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension as _, params_from_iter, types::Value};
use serde::Serialize;

use super::{
    AuditError, AuditStore, Cursor, EventFilter, InvestigationFilter, Outcome,
    filter::{check_kind, from_ns, to_ns},
};
use crate::{
    events::{Event, PodRef},
    identity::{InvestigationId, Phase},
};

/// The most rows one query returns.
pub const MAX_PAGE: usize = 10_000;

/// One run of an investigation (a row of `investigations`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvestigationRow {
    /// The store's number for the run, unique in the file.
    pub run: i64,
    /// The daemon's instance number for the run (never reused on a node, across restarts
    /// too, while the daemon's state directory is kept).
    pub instance: u32,
    pub id: InvestigationId,
    pub phase: Phase,
    pub source: Option<String>,
    pub cgroup: Option<String>,
    /// The pod it ran in, for a Kubernetes run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
    pub started: DateTime<Utc>,
    pub ended: Option<DateTime<Utc>>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    /// Events stored for the run.
    pub events: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

const SELECT_RUNS: &str = "SELECT run, instance, id, phase, source, cgroup, started_ns, \
     ended_ns, outcome, reason, events, namespace, pod, job FROM investigations WHERE 1 = 1";

fn check_limit(limit: usize) -> Result<i64, AuditError> {
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(AuditError::BadLimit { given: limit, max: MAX_PAGE });
    }
    Ok(limit as i64)
}

/// How a stored run ended, as far as the store knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    pub outcome: Outcome,
    /// Why it was killed: the run's reason, or the reason of a kill verdict stored for it
    /// (a run closed as interrupted may still hold one).
    pub killed: Option<String>,
}

impl AuditStore {
    /// How run `instance` of `id` went, once it has ended; `None` while it runs or when
    /// no such run is stored.
    pub fn outcome_of(
        &self,
        instance: u32,
        id: &InvestigationId,
    ) -> Result<Option<RunOutcome>, AuditError> {
        let row: Option<(i64, Option<String>, Option<String>)> = self
            .conn
            .query_row(
                "SELECT run, outcome, reason FROM investigations WHERE instance = ?1 AND id = ?2 \
                 ORDER BY run DESC LIMIT 1",
                rusqlite::params![instance, id.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((run, Some(outcome), reason)) = row else { return Ok(None) };
        let outcome: Outcome =
            outcome.parse().map_err(|e: super::filter::UnknownOutcome| AuditError::BadRow {
                run,
                column: "outcome",
                value: e.given.clone(),
                problem: e.to_string(),
            })?;
        let verdict = || -> Result<Option<String>, AuditError> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT seq, body FROM events WHERE run = ?1 AND kind = 'verdict' ORDER BY time_ns",
            )?;
            let bodies =
                stmt.query_map([run], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
            for row in bodies {
                let (seq, body) = row?;
                let event: Event = serde_json::from_str(&body)
                    .map_err(|source| AuditError::BadBody { seq, source })?;
                if let crate::events::EventKind::Verdict { outcome, reason, .. } = event.kind
                    && outcome == "killed"
                {
                    return Ok(Some(reason));
                }
            }
            Ok(None)
        };
        let killed = match outcome {
            Outcome::Killed => reason.or(verdict()?),
            Outcome::Interrupted => verdict()?,
            _ => None,
        };
        Ok(Some(RunOutcome { outcome, killed }))
    }

    /// Runs matching `filter`, newest first.
    pub fn list_investigations(
        &self,
        filter: &InvestigationFilter,
    ) -> Result<Vec<InvestigationRow>, AuditError> {
        let limit = check_limit(filter.limit)?;
        let mut sql = String::from(SELECT_RUNS);
        let mut args: Vec<Value> = Vec::new();
        if let Some(id) = &filter.id {
            sql.push_str(" AND id = ?");
            args.push(Value::Text(id.as_str().to_owned()));
        }
        if let Some(phase) = filter.phase {
            sql.push_str(" AND phase = ?");
            args.push(Value::Text(phase.as_str().to_owned()));
        }
        if let Some(since) = filter.since {
            sql.push_str(" AND started_ns >= ?");
            args.push(Value::Integer(to_ns(since)?));
        }
        match filter.outcome {
            None => {}
            Some(Outcome::Running) => sql.push_str(" AND ended_ns IS NULL"),
            Some(outcome) => {
                sql.push_str(" AND ended_ns IS NOT NULL AND outcome = ?");
                args.push(Value::Text(outcome.as_str().to_owned()));
            }
        }
        sql.push_str(" ORDER BY started_ns DESC, run DESC LIMIT ?");
        args.push(Value::Integer(limit));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let raw = stmt.query_map(params_from_iter(args), RawRun::read)?;
        raw.map(|r| r?.parse()).collect()
    }

    /// One run, by the store's number for it.
    pub fn run(&self, run: i64) -> Result<InvestigationRow, AuditError> {
        let mut sql = String::from(SELECT_RUNS);
        sql.push_str(" AND run = ?1");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        match stmt.query_row([run], RawRun::read).optional()? {
            Some(raw) => raw.parse(),
            None => Err(AuditError::UnknownRun(run)),
        }
    }

    pub(super) fn known(&self, investigation: &InvestigationId) -> Result<bool, AuditError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM investigations WHERE id = ?1)")?;
        Ok(stmt.query_row([investigation.as_str()], |r| r.get(0))?)
    }

    /// The events of `investigation` (every run, or `filter.run`) in the order they were
    /// stored, after `cursor`, at most `limit` of them.
    pub fn events(
        &self,
        investigation: &InvestigationId,
        filter: &EventFilter,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> Result<EventPage, AuditError> {
        let limit = check_limit(limit)?;
        let kind = filter.kind.as_deref().map(check_kind).transpose()?;
        if !self.known(investigation)? {
            return Err(AuditError::UnknownInvestigation(investigation.clone()));
        }
        let mut sql = String::from("SELECT seq, body FROM events WHERE investigation = ?");
        let mut args = vec![Value::Text(investigation.as_str().to_owned())];
        if let Some(run) = filter.run {
            if self.run(run)?.id != *investigation {
                return Err(AuditError::UnknownRun(run));
            }
            sql.push_str(" AND run = ?");
            args.push(Value::Integer(run));
        }
        if let Some(kind) = kind {
            sql.push_str(" AND kind = ?");
            args.push(Value::Text(kind.to_owned()));
        }
        if let Some(since) = filter.since {
            sql.push_str(" AND time_ns >= ?");
            args.push(Value::Integer(to_ns(since)?));
        }
        if let Some(until) = filter.until {
            sql.push_str(" AND time_ns < ?");
            args.push(Value::Integer(to_ns(until)?));
        }
        if let Some(Cursor(seq)) = cursor {
            sql.push_str(" AND seq > ?");
            args.push(Value::Integer(seq));
        }
        // One more than asked: whether there is a next page.
        sql.push_str(" ORDER BY seq LIMIT ?");
        args.push(Value::Integer(limit + 1));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(args), |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut events = Vec::new();
        let mut last = None;
        for row in rows {
            let (seq, body) = row?;
            if events.len() as i64 == limit {
                return Ok(EventPage { events, next: last.map(Cursor) });
            }
            events.push(parse_body(seq, &body)?);
            last = Some(seq);
        }
        Ok(EventPage { events, next: None })
    }

    /// `(seq, event)` of `run`'s process events (fork, exec, exit, verdict), in order.
    pub(super) fn process_events(&self, run: i64) -> Result<Vec<(i64, Event)>, AuditError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, body FROM events WHERE run = ?1 \
             AND kind IN ('fork', 'exec', 'exit', 'verdict') ORDER BY seq",
        )?;
        let rows = stmt.query_map([run], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, body) = row?;
            out.push((seq, parse_body(seq, &body)?));
        }
        Ok(out)
    }
}

fn parse_body(seq: i64, body: &str) -> Result<Event, AuditError> {
    serde_json::from_str(body).map_err(|source| AuditError::BadBody { seq, source })
}

/// A row of `investigations` as stored, before its text is checked.
struct RawRun {
    run: i64,
    instance: i64,
    id: String,
    phase: String,
    source: Option<String>,
    cgroup: Option<String>,
    started_ns: i64,
    ended_ns: Option<i64>,
    outcome: Option<String>,
    reason: Option<String>,
    events: i64,
    namespace: Option<String>,
    pod: Option<String>,
    job: Option<String>,
}

impl RawRun {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRun> {
        Ok(RawRun {
            run: r.get(0)?,
            instance: r.get(1)?,
            id: r.get(2)?,
            phase: r.get(3)?,
            source: r.get(4)?,
            cgroup: r.get(5)?,
            started_ns: r.get(6)?,
            ended_ns: r.get(7)?,
            outcome: r.get(8)?,
            reason: r.get(9)?,
            events: r.get(10)?,
            namespace: r.get(11)?,
            pod: r.get(12)?,
            job: r.get(13)?,
        })
    }

    fn parse(self) -> Result<InvestigationRow, AuditError> {
        let run = self.run;
        let bad = |column, value: &str, problem: String| AuditError::BadRow {
            run,
            column,
            value: value.to_owned(),
            problem,
        };
        let id = self
            .id
            .parse()
            .map_err(|e: crate::identity::BadInvestigationId| bad("id", &self.id, e.to_string()))?;
        let phase = self
            .phase
            .parse()
            .map_err(|e: crate::identity::UnknownPhase| bad("phase", &self.phase, e.to_string()))?;
        let outcome = match (&self.ended_ns, &self.outcome) {
            (None, _) => Outcome::Running,
            (Some(_), Some(text)) => match text.parse() {
                Ok(Outcome::Running) | Err(_) => {
                    return Err(bad(
                        "outcome",
                        text,
                        "expected ok, flagged, killed or interrupted".into(),
                    ));
                }
                Ok(outcome) => outcome,
            },
            (Some(_), None) => return Err(bad("outcome", "NULL", "an ended run has one".into())),
        };
        Ok(InvestigationRow {
            run,
            instance: u32::try_from(self.instance)
                .map_err(|e| bad("instance", &self.instance.to_string(), e.to_string()))?,
            id,
            phase,
            source: self.source,
            cgroup: self.cgroup,
            pod: match (self.namespace, self.pod) {
                (Some(namespace), Some(name)) => Some(PodRef { namespace, name, job: self.job }),
                _ => None,
            },
            started: from_ns(self.started_ns),
            ended: self.ended_ns.map(from_ns),
            outcome,
            reason: self.reason,
            events: u64::try_from(self.events).unwrap_or(0),
        })
    }
}
