//! The queries: runs of investigations, and the events of one investigation a page at a
//! time. SQL is assembled only from the constant fragments here; every value a caller gives
//! is a bound parameter.
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension as _, params_from_iter, types::Value};
use serde::Serialize;

use super::{
    AuditError, AuditStore, Cursor, EventFilter, InvestigationFilter, Outcome,
    chunk::{Entry, kind_bit, kind_index},
    filter::{check_kind, from_ns, to_ns},
    scan::Walk,
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

/// `limit` if it is 1 to [`MAX_PAGE`], else `BadLimit`; for every source of audit queries.
pub(crate) fn check_limit(limit: usize) -> Result<i64, AuditError> {
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
            outcome.parse().map_err(|e: crate::outcome::UnknownOutcome| AuditError::BadRow {
                run,
                column: "outcome",
                value: e.given.clone(),
                problem: e.to_string(),
            })?;
        let verdict = || -> Result<Option<String>, AuditError> {
            let walk = Walk {
                conditions: "run = ? AND kinds & ? != 0".into(),
                args: vec![Value::Integer(run), Value::Integer(kind_bit("verdict"))],
                after: None,
            };
            let verdict = kind_index("verdict");
            let mut killed = None;
            self.walk(
                walk,
                |e| e.kind == verdict,
                |found| match found.event.kind {
                    crate::events::EventKind::Verdict {
                        outcome: Outcome::Killed, reason, ..
                    } => {
                        killed = Some(reason);
                        false
                    }
                    _ => true,
                },
            )?;
            Ok(killed)
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
        let mut conditions = String::from("investigation = ?");
        let mut args = vec![Value::Text(investigation.as_str().to_owned())];
        if let Some(run) = filter.run {
            if self.run(run)?.id != *investigation {
                return Err(AuditError::UnknownRun(run));
            }
            conditions.push_str(" AND run = ?");
            args.push(Value::Integer(run));
        }
        let kind = kind.map(kind_index);
        if let Some(kind) = kind {
            conditions.push_str(" AND kinds & ? != 0");
            args.push(Value::Integer(1 << kind));
        }
        let since = filter.since.map(to_ns).transpose()?;
        let until = filter.until.map(to_ns).transpose()?;
        if let Some(since) = since {
            conditions.push_str(" AND max_time_ns >= ?");
            args.push(Value::Integer(since));
        }
        if let Some(until) = until {
            conditions.push_str(" AND min_time_ns < ?");
            args.push(Value::Integer(until));
        }
        let walk = Walk { conditions, args, after: cursor.map(|Cursor(seq)| seq) };
        let want = |e: &Entry| {
            kind.is_none_or(|k| e.kind == k)
                && since.is_none_or(|s| e.time_ns >= s)
                && until.is_none_or(|u| e.time_ns < u)
        };
        // One more than asked: whether there is a next page.
        let mut found = Vec::new();
        self.walk(walk, want, |f| {
            found.push(f);
            found.len() <= limit as usize
        })?;
        let next = (found.len() > limit as usize).then(|| Cursor(found[limit as usize - 1].seq));
        found.truncate(limit as usize);
        Ok(EventPage { events: found.into_iter().map(|f| f.event).collect(), next })
    }

    /// `(seq, event)` of `run`'s process events (fork, exec, exit, verdict), in order.
    pub(super) fn process_events(&self, run: i64) -> Result<Vec<(i64, Event)>, AuditError> {
        let kinds: Vec<u8> = ["fork", "exec", "exit", "verdict"].map(kind_index).into();
        let mask =
            ["fork", "exec", "exit", "verdict"].into_iter().map(kind_bit).fold(0, |a, b| a | b);
        let walk = Walk {
            conditions: "run = ? AND kinds & ? != 0".into(),
            args: vec![Value::Integer(run), Value::Integer(mask)],
            after: None,
        };
        let mut out = Vec::new();
        self.walk(
            walk,
            |e| kinds.contains(&e.kind),
            |f| {
                out.push((f.seq, f.event));
                true
            },
        )?;
        Ok(out)
    }
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
