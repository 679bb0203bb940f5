//! Promotion evidence: how a phase's runs went, in total and per agent, and when they last
//! did something new. Counted per node and added together across nodes (each node sends
//! what it counted since its last write), so every figure is a sum, a maximum or "since the
//! last new behaviour". Pure.
use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound as _, Utc};
use serde::{Deserialize, Serialize};

/// Hours of deviations and kills kept for the recent window.
pub const WINDOW_HOURS: i64 = 24;
/// Agents remembered per phase; past it, the one that ran least recently is dropped.
pub const MAX_AGENTS: usize = 256;

/// The counts kept for a phase and for each agent in it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    #[serde(default)]
    pub runs: u64,
    #[serde(default)]
    pub deviations: u64,
    #[serde(default)]
    pub kills: u64,
    /// Runs since the last one that did something new (learned an entry, or deviated).
    #[serde(default)]
    pub runs_since_new: u64,
    #[serde(default, rename = "lastNewBehaviour", skip_serializing_if = "Option::is_none")]
    pub last_new: Option<DateTime<Utc>>,
}

impl Tally {
    fn of(run: &RunRecord) -> Tally {
        Tally {
            runs: 1,
            deviations: run.deviations,
            kills: u64::from(run.killed),
            runs_since_new: u64::from(!run.new),
            last_new: run.new.then_some(run.ended),
        }
    }

    /// Add what `later` counted after what this holds.
    fn add(&mut self, later: &Tally) {
        self.runs += later.runs;
        self.deviations += later.deviations;
        self.kills += later.kills;
        match later.last_new {
            // Something new in `later`: the runs since are those after it there.
            Some(t) => {
                self.runs_since_new = later.runs_since_new;
                self.last_new = Some(self.last_new.map_or(t, |e| e.max(t)));
            }
            None => self.runs_since_new += later.runs,
        }
    }
}

/// One agent's runs in a phase.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentEvidence {
    #[serde(flatten)]
    pub tally: Tally,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<DateTime<Utc>>,
}

/// Deviations and kills of one hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hour {
    pub start: DateTime<Utc>,
    pub runs: u64,
    pub deviations: u64,
    pub kills: u64,
}

/// How one run went, as evidence counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub agent: String,
    /// It added to the baseline (learning) or deviated from it (flag, enforce).
    pub new: bool,
    pub deviations: u64,
    pub killed: bool,
    /// It ended while its phase learned.
    pub learning: bool,
    pub ended: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    #[serde(flatten)]
    pub tally: Tally,
    /// Runs that ended while the phase learned: what its baseline was learned from.
    #[serde(default, rename = "learnedFrom")]
    pub learned: u64,
    #[serde(default)]
    pub hours: Vec<Hour>,
    #[serde(default)]
    pub agents: BTreeMap<String, AgentEvidence>,
}

fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::hours(1)).unwrap_or(t)
}

impl Evidence {
    pub fn is_empty(&self) -> bool {
        self.tally.runs == 0
    }

    pub fn record(&mut self, run: &RunRecord) {
        let tally = Tally::of(run);
        let one = Evidence {
            learned: u64::from(run.learning),
            hours: vec![Hour {
                start: hour_of(run.ended),
                runs: 1,
                deviations: tally.deviations,
                kills: tally.kills,
            }],
            agents: BTreeMap::from([(
                run.agent.clone(),
                AgentEvidence { tally: tally.clone(), last_run: Some(run.ended) },
            )]),
            tally,
        };
        self.add(&one, run.ended);
    }

    /// Add what `later` counted after what this holds; hours older than the window (as of
    /// `now`) and agents past [`MAX_AGENTS`] are dropped.
    pub fn add(&mut self, later: &Evidence, now: DateTime<Utc>) {
        self.tally.add(&later.tally);
        self.learned += later.learned;
        for hour in &later.hours {
            match self.hours.iter_mut().find(|h| h.start == hour.start) {
                Some(h) => {
                    h.runs += hour.runs;
                    h.deviations += hour.deviations;
                    h.kills += hour.kills;
                }
                None => self.hours.push(hour.clone()),
            }
        }
        let oldest = hour_of(now) - Duration::hours(WINDOW_HOURS - 1);
        self.hours.retain(|h| h.start >= oldest);
        self.hours.sort_by_key(|h| h.start);
        for (name, theirs) in &later.agents {
            let mine = self.agents.entry(name.clone()).or_default();
            mine.tally.add(&theirs.tally);
            mine.last_run = mine.last_run.max(theirs.last_run);
        }
        while self.agents.len() > MAX_AGENTS {
            let stalest =
                self.agents.iter().min_by_key(|(_, a)| a.last_run).map(|(n, _)| n.clone());
            if let Some(name) = stalest {
                self.agents.remove(&name);
            }
        }
    }

    /// Deviations and kills in the window (the last [`WINDOW_HOURS`] hours as of `now`).
    pub fn window(&self, now: DateTime<Utc>) -> (u64, u64) {
        let oldest = hour_of(now) - Duration::hours(WINDOW_HOURS - 1);
        self.hours
            .iter()
            .filter(|h| h.start >= oldest)
            .fold((0, 0), |(d, k), h| (d + h.deviations, k + h.kills))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::minutes(minute)
    }

    fn run(agent: &str, new: bool, deviations: u64, killed: bool, minute: i64) -> RunRecord {
        RunRecord {
            agent: agent.into(),
            new,
            deviations,
            killed,
            learning: deviations == 0,
            ended: at(minute),
        }
    }

    #[test]
    fn runs_since_new_counts_from_the_last_new_one() {
        let mut e = Evidence::default();
        e.record(&run("a", true, 0, false, 0));
        e.record(&run("a", false, 0, false, 1));
        e.record(&run("b", false, 0, false, 2));
        assert_eq!((e.tally.runs, e.tally.runs_since_new, e.tally.last_new), (3, 2, Some(at(0))));
        assert_eq!(e.agents["a"].tally.runs_since_new, 1);
        assert_eq!(e.agents["b"].tally.runs_since_new, 1);
        e.record(&run("b", true, 2, true, 3));
        assert_eq!((e.tally.runs_since_new, e.tally.last_new), (0, Some(at(3))));
        assert_eq!((e.tally.deviations, e.tally.kills), (2, 1));
        assert_eq!(e.window(at(3)), (2, 1));
        assert_eq!(e.window(at(3) + Duration::hours(WINDOW_HOURS)), (0, 0), "out of the window");
    }

    #[test]
    fn two_nodes_counts_added_are_the_counts_of_all_runs() {
        let runs = [
            run("a", true, 0, false, 0),
            run("b", false, 1, false, 1),
            run("a", false, 0, false, 2),
            run("c", false, 3, true, 3),
        ];
        let mut all = Evidence::default();
        runs.iter().for_each(|r| all.record(r));
        let (mut one, mut two) = (Evidence::default(), Evidence::default());
        runs[..2].iter().for_each(|r| one.record(r));
        runs[2..].iter().for_each(|r| two.record(r));
        let mut cluster = Evidence::default();
        cluster.add(&one, at(3));
        cluster.add(&two, at(3));
        assert_eq!(cluster, all);
    }

    #[test]
    fn agents_are_bounded_dropping_the_stalest() {
        let mut e = Evidence::default();
        for i in 0..(MAX_AGENTS as i64 + 5) {
            e.record(&run(&format!("agent-{i}"), false, 0, false, i));
        }
        assert_eq!(e.agents.len(), MAX_AGENTS);
        assert!(!e.agents.contains_key("agent-0"));
        assert!(e.agents.contains_key(&format!("agent-{}", MAX_AGENTS + 4)));
        assert_eq!(e.tally.runs, MAX_AGENTS as u64 + 5, "the phase's totals keep every run");
    }
}
