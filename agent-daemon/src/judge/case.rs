//! One running investigation, as the judge follows it.
use std::{
    collections::{HashSet, hash_map::RandomState},
    time::Instant,
};

use super::{Outcome, Verdict};
use crate::{
    baseline::{Deviation, DeviationKind, EnvelopeSample, Mode},
    identity::Phase,
};

/// Distinct deviations remembered per investigation.
pub const MAX_JUDGED: usize = 4096;

pub(super) struct Case {
    pub phase: Phase,
    /// Deviations already judged: one verdict each.
    judged: HashSet<(DeviationKind, String), RandomState>,
    flagged: bool,
    pub killed: Option<String>,
    live: HashSet<u32>,
    pub envelope: EnvelopeSample,
    started: Instant,
    last: Option<(Instant, u64)>,
}

impl Case {
    pub fn new(phase: Phase) -> Case {
        Case {
            phase,
            judged: HashSet::default(),
            flagged: false,
            killed: None,
            live: HashSet::new(),
            envelope: EnvelopeSample::default(),
            started: Instant::now(),
            last: None,
        }
    }

    /// A verdict for `deviation` (killing when `kill`) unless it was judged already or the
    /// investigation is already being killed. The judged set is bounded: past
    /// [`MAX_JUDGED`] distinct deviations, each further one still gives a verdict but is no
    /// longer remembered (an investigation that strays that much is flagged many times
    /// over, or long dead).
    pub fn verdict(
        &mut self,
        deviation: Deviation,
        mode: Mode,
        kill: bool,
        revision: u64,
    ) -> Option<Verdict> {
        let key = (deviation.kind, deviation.subject.clone());
        if self.killed.is_some() || self.judged.contains(&key) {
            return None;
        }
        if self.judged.len() < MAX_JUDGED {
            self.judged.insert(key);
        }
        self.flagged = true;
        if kill {
            self.killed = Some(deviation.reason.clone());
        }
        Some(Verdict { deviation, mode, kill, revision })
    }

    /// Track live processes; true when the most seen at once grew.
    pub fn process(&mut self, pid: u32, alive: bool) -> bool {
        if !alive {
            self.live.remove(&pid);
            return false;
        }
        if !self.live.insert(pid) || self.live.len() as u64 <= self.envelope.processes {
            return false;
        }
        self.envelope.processes = self.live.len() as u64;
        true
    }

    /// Fold in the counters read at `now`. The rate is over the time since the last sample
    /// (or the start), but never over less than a second: the tail of a run, or a run
    /// younger than the sampler's tick, would otherwise turn a handful of calls into a flood
    /// (20 calls in 40 ms is not 500 per second of anything).
    pub fn sample(&mut self, syscalls: u64, egress_bytes: u64, now: Instant) {
        let (then, before) = self.last.unwrap_or((self.started, 0));
        let seconds = now.duration_since(then).as_secs_f64().max(1.0);
        let rate = (syscalls.saturating_sub(before) as f64 / seconds) as u64;
        self.envelope.syscalls_per_second = self.envelope.syscalls_per_second.max(rate);
        self.last = Some((now, syscalls));
        self.envelope.egress_bytes = self.envelope.egress_bytes.max(egress_bytes);
    }

    /// Final counters, as one last sample.
    pub fn finish(&mut self, syscalls: u64, egress_bytes: u64, now: Instant) {
        self.sample(syscalls, egress_bytes, now);
    }

    pub fn outcome(&self) -> Outcome {
        match (&self.killed, self.flagged) {
            (Some(_), _) => Outcome::Killed,
            (None, true) => Outcome::Flagged,
            (None, false) => Outcome::Ok,
        }
    }
}
