//! The judge: owns each phase's baseline and mode; learns from investigations of phases that
//! learn, and turns what investigations of phases that flag or enforce do outside their
//! baseline into verdicts, one per deviation and investigation. Synchronous: the event
//! pipeline calls it for every event.
mod admin;
mod books;
mod capped;
mod case;
mod cluster;
pub mod metrics;

use std::{
    collections::{BTreeMap, HashMap},
    sync::LazyLock,
};

use crate::baseline::evidence::{Evidence, RunRecord};
pub use admin::{AdminError, PhaseSummary};
use books::{Book, Books};
pub use capped::CapNotice;
use case::Case;
pub use cluster::Adopted;

use crate::{
    baseline::{
        Baseline, Blind, Caps, Deviation, DeviationKind, EnvelopeSample, Learned, Mode,
        Observation, check, learn, learn_within,
        store::{PhaseState, Store, StoreError},
    },
    egress::EgressProtocol,
    events::{Action, EventKind},
    identity::Phase,
    outcome::Outcome,
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

/// The baseline of `Phase::Unknown`, which has no book: nothing is allowed, nothing learned.
static NO_BASELINE: LazyLock<Baseline> = LazyLock::new(|| Baseline::empty(Phase::Unknown));

pub struct Judge {
    store: Store,
    books: Books,
    cases: HashMap<u32, Case>,
    /// Whether what paddock could not see (records lost, processes untracked) kills in
    /// `enforce` (`enforcement.fail_closed`), or is only flagged.
    fail_closed: bool,
    /// Each set's cap while learning (`[baseline]`).
    caps: Caps,
    /// Entries refused at a cap, once per investigation and set, for the pipeline to
    /// publish (see [`Judge::take_notices`]).
    notices: Vec<CapNotice>,
    /// Phases live in the cluster: runs are counted for it too, and its copies taken in.
    cluster: bool,
}

/// What an event says about behaviour (up to two things: a rename writes two paths), and
/// whether the kernel already refused it.
pub fn observations(kind: &EventKind) -> [Option<(Observation, Action)>; 2] {
    use crate::baseline::{Destination, SocketKind};
    let none = Action::None;
    let unreadable = |what: &str| Observation::Blind(Blind::UnreadablePath { what: what.into() });
    let one = |o: Observation, a: Action| [Some((o, a)), None];
    match kind {
        EventKind::Syscall { name, action, .. } => one(Observation::Syscall(name.clone()), *action),
        EventKind::Exec { state, action, .. } if !state.judgeable() => {
            one(unreadable("exec"), *action)
        }
        EventKind::Exec { path, via_fd, state, action, .. } => one(
            Observation::Exec { path: path.clone(), literal: *via_fd || state.deleted },
            *action,
        ),
        EventKind::Open { state, .. } if !state.judgeable() => one(unreadable("open"), none),
        EventKind::Open { path, write: true, .. } => {
            one(Observation::FileWrite(path.clone()), none)
        }
        EventKind::Open { path, write: false, .. } => {
            one(Observation::FileRead(path.clone()), none)
        }
        EventKind::FileOp { op, state, .. } if !state.judgeable() => one(unreadable(op), none),
        EventKind::FileOp { op, path, path2, .. } => {
            let first = match op.as_str() {
                // Linking an existing file gives it a new name: the old one is read from.
                "link" => Observation::FileRead(path.clone()),
                _ => Observation::FileWrite(path.clone()),
            };
            let second = match (op.as_str(), path2) {
                ("rename" | "link", Some(other)) => {
                    Some((Observation::FileWrite(other.clone()), none))
                }
                _ => None,
            };
            [Some((first, none)), second]
        }
        EventKind::Connect { protocol, address, port, name, action, .. } => {
            let Some(protocol) = judged_protocol(*protocol) else { return [None, None] };
            let destination = Destination { protocol, addr: *address, port: *port }.canonical();
            match name {
                Some(name) => {
                    one(Observation::NamedEgress { name: name.clone(), destination }, *action)
                }
                None => one(Observation::Egress(destination), *action),
            }
        }
        EventKind::Dns { op, name, notes, action, .. } if op == "query" => {
            if notes.iter().any(|n| n == "malformed") {
                one(unreadable("dns query"), *action)
            } else {
                one(Observation::DnsQuery(name.clone()), *action)
            }
        }
        EventKind::Unix { path, relative, action, .. } => {
            one(Observation::Unix { path: path.clone(), literal: *relative }, *action)
        }
        EventKind::Socket { socket, action } => match socket.parse::<SocketKind>() {
            Ok(kind) => one(Observation::Socket(kind), *action),
            Err(_) => [None, None],
        },
        EventKind::IoUring { name, action, .. } => one(Observation::Uring(name.clone()), *action),
        EventKind::Escape { moved_pid, action, .. } => {
            one(Observation::Blind(Blind::Escape { pid: *moved_pid }), *action)
        }
        _ => [None, None],
    }
}

/// The protocol of an egress destination a baseline can name. An ICMP send is not one: an
/// ICMP socket is judged by its kind (`sockets`) when it is made.
fn judged_protocol(protocol: EgressProtocol) -> Option<crate::baseline::Protocol> {
    use crate::baseline::Protocol;
    match protocol {
        EgressProtocol::Tcp => Some(Protocol::Tcp),
        EgressProtocol::Udp => Some(Protocol::Udp),
        EgressProtocol::Icmp => None,
        EgressProtocol::Other(n) => Some(Protocol::Other(n)),
    }
}

/// The deviation kind an observation would be (for what the kernel refused).
fn kind_of(observation: &Observation) -> DeviationKind {
    match observation {
        Observation::Syscall(_) => DeviationKind::Syscall,
        Observation::Exec { .. } => DeviationKind::Exec,
        Observation::Egress(_) | Observation::NamedEgress { .. } => DeviationKind::Egress,
        Observation::DnsQuery(_) => DeviationKind::Dns,
        Observation::FileWrite(_) => DeviationKind::FileWrite,
        Observation::FileRead(_) => DeviationKind::FileRead,
        Observation::Unix { .. } => DeviationKind::Unix,
        Observation::Socket(_) => DeviationKind::Socket,
        Observation::Uring(_) => DeviationKind::IoUring,
        Observation::Envelope(_) => DeviationKind::Envelope,
        Observation::Blind(Blind::LostRecords { .. }) => DeviationKind::LostRecords,
        Observation::Blind(Blind::Untracked(_)) => DeviationKind::Untracked,
        Observation::Blind(Blind::Escape { .. }) => DeviationKind::Escape,
        Observation::Blind(Blind::UnreadablePath { .. }) => DeviationKind::UnreadablePath,
        Observation::Control(_) => DeviationKind::Control,
        Observation::Unwatched => DeviationKind::Unwatched,
    }
}

/// What the kernel counted for a running investigation that is not behaviour but
/// paddock's own sight of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sight {
    pub lost: u64,
    pub throttled: u64,
    pub untracked: u64,
}

impl Judge {
    /// Load every phase's baseline and state. Problems that were worked around (a broken
    /// file replaced by its last good copy) are returned for the log.
    pub fn open(store: Store) -> Result<(Judge, Vec<String>), StoreError> {
        let states = store.load_phases()?;
        let mut evidence = store.load_evidence()?;
        let mut problems = Vec::new();
        let books = Books::open(|phase| {
            let loaded = store.load(phase)?;
            problems.extend(loaded.problem);
            let state = states.get(&phase).copied().unwrap_or_default();
            let mut book = Book::new(loaded.baseline, state);
            book.synced = store.load_synced(phase)?;
            if let Some((evidence, pending)) = evidence.remove(&phase) {
                (book.evidence, book.pending) = (evidence, pending);
            }
            Ok::<_, StoreError>(book)
        })?;
        let judge = Judge {
            store,
            books,
            cases: HashMap::new(),
            fail_closed: true,
            caps: Caps::default(),
            notices: Vec::new(),
            cluster: false,
        };
        Ok((judge, problems))
    }

    /// See [`Judge::fail_closed`].
    pub fn set_fail_closed(&mut self, fail_closed: bool) {
        self.fail_closed = fail_closed;
    }

    /// The mode of `phase`; `Phase::Unknown` is only ever watched (learn, without a book).
    pub fn mode(&self, phase: Phase) -> Mode {
        self.books.get(phase).map_or(Mode::Learn, |b| b.state.mode)
    }

    /// The baseline in force for `phase`; empty for `Phase::Unknown`, which has none.
    pub fn baseline(&self, phase: Phase) -> &Baseline {
        self.books.get(phase).map_or(&NO_BASELINE, |b| &b.baseline)
    }

    #[cfg(test)]
    pub fn begin(&mut self, instance: u32, phase: Phase) {
        self.begin_as(instance, phase, "local".into());
    }

    /// An investigation of `phase` run by `agent` begins.
    pub fn begin_as(&mut self, instance: u32, phase: Phase, agent: String) {
        self.cases.insert(instance, Case::new(phase, agent));
    }

    /// The verdict on one observation, if any.
    pub fn observe(
        &mut self,
        instance: u32,
        observation: &Observation,
        kernel: Action,
    ) -> Option<Verdict> {
        let phase = self.cases.get(&instance)?.phase;
        let book = self.books.get_mut(phase)?;
        match book.state.mode {
            Mode::Learn => {
                match learn_within(&mut book.baseline, observation, &self.caps) {
                    Learned::New => {
                        book.dirty = true;
                        if let Some(case) = self.cases.get_mut(&instance) {
                            case.new = true;
                        }
                    }
                    Learned::Nothing => {}
                    Learned::Refused(set) => self.refused(instance, phase, set, observation),
                }
                None
            }
            mode => {
                let deviation = check(&book.baseline, observation).or_else(|| {
                    // The kernel refused what the baseline allows: its maps are stale
                    // (a baseline changed under it). Still a verdict: it acted.
                    (kernel != Action::None).then(|| Deviation {
                        kind: kind_of(observation),
                        subject: format!("{observation:?}"),
                        reason: "refused by the kernel's copy of the baseline".into(),
                    })
                })?;
                let revision = book.baseline.revision;
                let kill =
                    mode == Mode::Enforce && (!deviation.kind.is_blindness() || self.fail_closed);
                self.cases.get_mut(&instance)?.verdict(deviation, mode, kill, revision)
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

    /// What paddock could not see of the investigation so far: a deviation (once each)
    /// where its phase is judged.
    pub fn sight(&mut self, instance: u32, sight: Sight) -> Vec<Verdict> {
        let Some(phase) = self.cases.get(&instance).map(|c| c.phase) else { return Vec::new() };
        if self.mode(phase) == Mode::Learn {
            return Vec::new();
        }
        let mut verdicts = Vec::new();
        if sight.lost + sight.throttled > 0 {
            let blind = Blind::LostRecords { lost: sight.lost, throttled: sight.throttled };
            verdicts.extend(self.observe(instance, &Observation::Blind(blind), Action::None));
        }
        if sight.untracked > 0 {
            let blind = Blind::Untracked(sight.untracked);
            verdicts.extend(self.observe(instance, &Observation::Blind(blind), Action::None));
        }
        verdicts
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
        let Some(index) = Books::index(phase) else {
            self.cases.remove(&instance);
            return (None, Outcome::Ok); // watched only
        };
        let verdict = match self.books[index].state.mode {
            Mode::Learn => {
                learn(&mut self.books[index].baseline, &Observation::Envelope(sample));
                None
            }
            _ => self.observe(instance, &Observation::Envelope(sample), Action::None),
        };
        let case = self.cases.remove(&instance).expect("case present above");
        let outcome = case.outcome();
        let book = &mut self.books[index];
        book.state.runs += 1;
        if outcome != Outcome::Ok {
            book.state.strayed += 1;
        }
        let learning = book.state.mode == Mode::Learn;
        if learning {
            book.baseline.learned_from += 1;
        }
        let run = RunRecord {
            agent: case.agent.clone(),
            new: case.new || case.verdicts > 0,
            deviations: case.verdicts,
            killed: outcome == Outcome::Killed,
            learning,
            ended: chrono::Utc::now(),
        };
        book.evidence.record(&run);
        if self.cluster {
            book.pending.record(&run);
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
        let Some(book) = self.books.get_mut(phase) else {
            return Ok(()); // `Phase::Unknown`: nothing kept, nothing to save
        };
        if book.dirty {
            book.baseline.revision += 1;
            book.dirty = false;
        }
        self.store.save(&book.baseline)?;
        let states: BTreeMap<Phase, PhaseState> =
            self.books.iter().map(|(p, b)| (p, b.state)).collect();
        self.store.save_phases(&states)?;
        let evidence: BTreeMap<Phase, (&Evidence, &Evidence)> =
            self.books.iter().map(|(p, b)| (p, (&b.evidence, &b.pending))).collect();
        self.store.save_evidence(&evidence)
    }
}

#[cfg(test)]
mod tests;
