//! The judge: owns each phase's baseline and mode; learns from investigations of phases that
//! learn, and turns what investigations of phases that flag or enforce do outside their
//! baseline into verdicts, one per deviation and investigation. Synchronous: the event
//! pipeline calls it for every event.
mod admin;
mod case;

use std::collections::{BTreeMap, HashMap};

pub use admin::PhaseSummary;
use case::Case;

use crate::{
    baseline::{
        Baseline, Deviation, DeviationKind, EnvelopeSample, Mode, Observation, check, learn,
        store::{PhaseState, Store, StoreError},
    },
    events::{Action, EventKind},
    identity::Phase,
};

/// A deviation and what is done about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub deviation: Deviation,
    pub mode: Mode,
    /// Enforce mode: the investigation is to be killed.
    pub kill: bool,
    /// The baseline revision it was checked against.
    pub revision: u64,
}

/// How an investigation went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Flagged,
    Killed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Flagged => "flagged",
            Outcome::Killed => "killed",
        }
    }
}

struct Book {
    baseline: Baseline,
    state: PhaseState,
    /// Learned content not yet saved.
    dirty: bool,
}

pub struct Judge {
    store: Store,
    books: BTreeMap<Phase, Book>,
    cases: HashMap<u32, Case>,
}

/// What an event says about behaviour, and whether the kernel already refused it.
pub fn observation(kind: &EventKind) -> Option<(Observation, Action)> {
    use crate::baseline::{Destination, Protocol};
    Some(match kind {
        EventKind::Syscall { name, action, .. } => (Observation::Syscall(name.clone()), *action),
        EventKind::Exec { path, action, .. } => (Observation::Exec(path.clone()), *action),
        EventKind::Open { path, write: true, .. } => {
            (Observation::FileWrite(path.clone()), Action::None)
        }
        EventKind::Open { path, write: false, .. } => {
            (Observation::FileRead(path.clone()), Action::None)
        }
        EventKind::Connect { protocol, address, port, action, .. } => {
            let protocol = Protocol::from_name(protocol)?;
            (Observation::Egress(Destination { protocol, addr: *address, port: *port }), *action)
        }
        _ => return None,
    })
}

impl Judge {
    /// Load every phase's baseline and state. Problems that were worked around (a broken
    /// file replaced by its last good copy) are returned for the log.
    pub fn open(store: Store) -> Result<(Judge, Vec<String>), StoreError> {
        let states = store.load_phases()?;
        let mut problems = Vec::new();
        let mut books = BTreeMap::new();
        for phase in Phase::ALL {
            let loaded = store.load(phase)?;
            problems.extend(loaded.problem);
            let state = states.get(&phase).copied().unwrap_or_default();
            books.insert(phase, Book { baseline: loaded.baseline, state, dirty: false });
        }
        Ok((Judge { store, books, cases: HashMap::new() }, problems))
    }

    fn book(&self, phase: Phase) -> &Book {
        self.books.get(&phase).unwrap_or_else(|| {
            panic!("no baseline for the {phase} phase: only the four trust phases have one")
        })
    }

    /// The mode of `phase`; `Phase::Unknown` is only ever watched (learn, without a book).
    pub fn mode(&self, phase: Phase) -> Mode {
        self.books.get(&phase).map_or(Mode::Learn, |b| b.state.mode)
    }

    pub fn baseline(&self, phase: Phase) -> &Baseline {
        &self.book(phase).baseline
    }

    pub fn begin(&mut self, instance: u32, phase: Phase) {
        self.cases.insert(instance, Case::new(phase));
    }

    /// The verdict on one observation, if any.
    pub fn observe(
        &mut self,
        instance: u32,
        observation: &Observation,
        kernel: Action,
    ) -> Option<Verdict> {
        let phase = self.cases.get(&instance)?.phase;
        let book = self.books.get_mut(&phase)?;
        match book.state.mode {
            Mode::Learn => {
                book.dirty |= learn(&mut book.baseline, observation);
                None
            }
            mode => {
                let deviation = check(&book.baseline, observation).or_else(|| {
                    // The kernel refused what the baseline allows: its maps are stale
                    // (a baseline changed under it). Still a verdict: it acted.
                    (kernel != Action::None).then(|| Deviation {
                        kind: match observation {
                            Observation::Syscall(_) => DeviationKind::Syscall,
                            Observation::Exec(_) => DeviationKind::Exec,
                            _ => DeviationKind::Egress,
                        },
                        subject: format!("{observation:?}"),
                        reason: "refused by the kernel's copy of the baseline".into(),
                    })
                })?;
                let revision = book.baseline.revision;
                self.cases.get_mut(&instance)?.verdict(deviation, mode, revision)
            }
        }
    }

    /// A process of the investigation was seen (`alive`) or exited.
    pub fn process(&mut self, instance: u32, pid: u32, alive: bool) -> Option<Verdict> {
        let case = self.cases.get_mut(&instance)?;
        if !case.process(pid, alive) {
            return None;
        }
        let sample = case.envelope;
        self.envelope(instance, sample)
    }

    /// Counters sampled while the investigation runs.
    pub fn sample(
        &mut self,
        instance: u32,
        syscalls: u64,
        egress_bytes: u64,
        now: std::time::Instant,
    ) -> Option<Verdict> {
        let case = self.cases.get_mut(&instance)?;
        case.sample(syscalls, egress_bytes, now);
        let sample = case.envelope;
        self.envelope(instance, sample)
    }

    fn envelope(&mut self, instance: u32, sample: EnvelopeSample) -> Option<Verdict> {
        let phase = self.cases.get(&instance)?.phase;
        if self.mode(phase) == Mode::Learn {
            return None; // learned once, at the end
        }
        self.observe(instance, &Observation::Envelope(sample), Action::None)
    }

    /// The investigation ended with these final counters. A last envelope check (or, when
    /// learning, the envelope is folded in), and the phase's books.
    pub fn end(
        &mut self,
        instance: u32,
        syscalls: u64,
        egress_bytes: u64,
        now: std::time::Instant,
    ) -> (Option<Verdict>, Outcome) {
        let Some(case) = self.cases.get_mut(&instance) else { return (None, Outcome::Ok) };
        case.finish(syscalls, egress_bytes, now);
        let (phase, sample) = (case.phase, case.envelope);
        if !self.books.contains_key(&phase) {
            self.cases.remove(&instance);
            return (None, Outcome::Ok); // watched only
        }
        let verdict = match self.mode(phase) {
            Mode::Learn => {
                let book = self.books.get_mut(&phase).expect("every phase has a book");
                learn(&mut book.baseline, &Observation::Envelope(sample));
                None
            }
            _ => self.observe(instance, &Observation::Envelope(sample), Action::None),
        };
        let case = self.cases.remove(&instance).expect("case present above");
        let outcome = case.outcome();
        let book = self.books.get_mut(&phase).expect("every phase has a book");
        book.state.runs += 1;
        if outcome != Outcome::Ok {
            book.state.strayed += 1;
        }
        if book.state.mode == Mode::Learn {
            book.baseline.learned_from += 1;
        }
        if let Err(e) = self.save(phase) {
            tracing::error!(phase = %phase, error = %e, "cannot save the phase's baseline; it stays in memory");
        }
        (verdict, outcome)
    }

    /// The kill reason of a running investigation, if it was killed.
    pub fn killed(&self, instance: u32) -> Option<&str> {
        self.cases.get(&instance).and_then(|c| c.killed.as_deref())
    }

    /// Save `phase`'s baseline (bumping its revision when its content changed) and the
    /// phases' states.
    fn save(&mut self, phase: Phase) -> Result<(), StoreError> {
        let book = self.books.get_mut(&phase).expect("every phase has a book");
        if book.dirty {
            book.baseline.revision += 1;
            book.dirty = false;
        }
        self.store.save(&book.baseline)?;
        let states: BTreeMap<Phase, PhaseState> =
            self.books.iter().map(|(p, b)| (*p, b.state)).collect();
        self.store.save_phases(&states)
    }
}

#[cfg(test)]
mod tests;
