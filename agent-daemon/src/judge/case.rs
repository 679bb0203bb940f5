//! One running investigation, as the judge follows it.
use std::{
    collections::{HashSet, hash_map::RandomState},
    hash::BuildHasher as _,
    time::Instant,
};

use super::Verdict;
use crate::{
    baseline::{Deviation, EnvelopeSample, Mode, Set},
    identity::Phase,
    outcome::Outcome,
};

/// Distinct deviations remembered per investigation.
pub const MAX_JUDGED: usize = 4096;
/// Live processes remembered per investigation. More than the kernel tracks for one
/// (`limits.processes`); it only fills when exits went unseen (records throttled or lost),
/// and then the count of processes at once stops growing there.
pub const MAX_LIVE: usize = 32768;

pub(super) struct Case {
    pub phase: Phase,
    /// Who ran it (the Job's agent label or ServiceAccount; `local` for `paddock run`).
    pub agent: String,
    /// It added something to its phase's baseline while that learned.
    pub new: bool,
    /// Verdicts given.
    pub verdicts: u64,
    /// Deviations already judged (a keyed hash of kind and subject, so that a long path
    /// costs no more than a short one): one verdict each.
    judged: HashSet<u64>,
    keys: RandomState,
    flagged: bool,
    pub killed: Option<String>,
    live: HashSet<u32>,
    /// Sets whose cap this investigation was told of (`Set::bit`).
    capped: u16,
    pub envelope: EnvelopeSample,
    started: Instant,
    last: Option<(Instant, u64)>,
}

impl Case {
    pub fn new(phase: Phase, agent: String) -> Case {
        Case {
            phase,
            agent,
            new: false,
            verdicts: 0,
            judged: HashSet::new(),
            keys: RandomState::new(),
            flagged: false,
            killed: None,
            live: HashSet::new(),
            capped: 0,
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
        let key = self.keys.hash_one((deviation.kind, deviation.subject.as_str()));
        if self.killed.is_some() || self.judged.contains(&key) {
            return None;
        }
        if self.judged.len() < MAX_JUDGED {
            self.judged.insert(key);
        }
        self.flagged = true;
        self.verdicts += 1;
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
        if self.live.len() >= MAX_LIVE && !self.live.contains(&pid) {
            return false;
        }
        if !self.live.insert(pid) || self.live.len() as u64 <= self.envelope.processes {
            return false;
        }
        self.envelope.processes = self.live.len() as u64;
        true
    }

    /// True the first time this investigation meets `set` at its cap.
    pub fn first_capped(&mut self, set: Set) -> bool {
        let first = self.capped & set.bit() == 0;
        self.capped |= set.bit();
        first
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::DeviationKind;

    fn deviation(i: usize) -> Deviation {
        Deviation {
            kind: DeviationKind::FileRead,
            subject: format!("/data/{i}/{}", "x".repeat(200)),
            reason: "not in the baseline".into(),
        }
    }

    #[test]
    fn judged_deviations_are_bounded_and_still_give_verdicts_past_the_bound() {
        let mut case = Case::new(Phase::ReadOnly, "a".into());
        for i in 0..MAX_JUDGED + 100 {
            assert!(case.verdict(deviation(i), Mode::Flag, false, 1).is_some(), "{i}");
        }
        assert_eq!(case.judged.len(), MAX_JUDGED);
        assert!(case.verdict(deviation(0), Mode::Flag, false, 1).is_none(), "remembered");
        assert!(case.verdict(deviation(MAX_JUDGED + 50), Mode::Flag, false, 1).is_some());
    }

    #[test]
    fn live_processes_are_bounded_when_exits_go_unseen() {
        let mut case = Case::new(Phase::Shadow, "a".into());
        for pid in 0..(MAX_LIVE as u32 + 1000) {
            case.process(pid, true);
        }
        assert_eq!(case.live.len(), MAX_LIVE);
        assert_eq!(case.envelope.processes, MAX_LIVE as u64);
        case.process(5, false);
        assert!(case.process(u32::MAX, true) || case.live.len() == MAX_LIVE);
        assert_eq!(case.live.len(), MAX_LIVE, "room for one again, taken");
    }

    #[test]
    fn each_set_at_its_cap_is_told_once() {
        let mut case = Case::new(Phase::Shadow, "a".into());
        assert!(case.first_capped(Set::Execs));
        assert!(!case.first_capped(Set::Execs));
        assert!(case.first_capped(Set::Egress));
    }
}
