//! What an operator does with phases: switch modes, list, show, export, diff, import, reset.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Judge, books::Books};
use crate::{
    baseline::{Baseline, Mode, Set, diff, file, store::StoreError},
    identity::Phase,
};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    File(#[from] file::FileError),
    #[error("{source_name} holds the {found} baseline, not the {wanted} one: refused")]
    WrongPhase { source_name: String, found: Phase, wanted: Phase },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the {0} phase has no baseline: only the four trust phases have one")]
    NoBaseline(Phase),
}

/// One line of `paddock baseline list`: what an operator needs to decide a phase is ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseSummary {
    pub phase: Phase,
    pub mode: Mode,
    pub revision: u64,
    pub learned_from: u64,
    /// When it last learned something new.
    pub updated: Option<DateTime<Utc>>,
    pub runs: u64,
    pub strayed: u64,
    pub syscalls: usize,
    pub execs: usize,
    pub egress: usize,
    pub file_writes: usize,
    pub file_reads: usize,
    #[serde(default)]
    pub unix: usize,
    #[serde(default)]
    pub sockets: usize,
    #[serde(default)]
    pub io_uring: usize,
    /// Names the phase may ask its resolver for; `None` while queries are not judged (the
    /// baseline learned none yet).
    #[serde(default)]
    pub dns: Option<usize>,
    /// Each set's cap (`[baseline]`), by set name.
    #[serde(default)]
    pub caps: BTreeMap<String, usize>,
    /// Sets at or over their cap: while the phase learns, nothing new goes into them.
    #[serde(default)]
    pub capped: Vec<String>,
    /// Entries refused at a cap while learning, by set (since start, reset or import).
    #[serde(default)]
    pub refused: BTreeMap<String, u64>,
    /// Sets the kernel does not decide for this phase (its policy map was full): the daemon
    /// judges them, and kills after the fact.
    #[serde(default)]
    pub kernel_incomplete: Vec<String>,
    /// Its promotion evidence from this node's counts (for the metrics; not sent).
    #[serde(skip)]
    pub report: Option<crate::baseline::report::PhaseReport>,
}

impl Judge {
    pub fn summaries(&self) -> Vec<PhaseSummary> {
        // Phases kept in the cluster are reported from their objects (the cluster sync's),
        // not from this node's counts: nothing to work out here for them.
        let reports = if self.cluster { Vec::new() } else { self.reports() };
        let mut reports = reports.into_iter();
        self.books
            .iter()
            .map(|(phase, book)| {
                let b = &book.baseline;
                PhaseSummary {
                    phase,
                    mode: book.state.mode,
                    revision: b.revision,
                    learned_from: b.learned_from,
                    updated: b.updated,
                    runs: book.state.runs,
                    strayed: book.state.strayed,
                    syscalls: b.syscalls.len(),
                    execs: b.execs.len(),
                    egress: b.egress.len() + b.egress_names.len(),
                    file_writes: b.file_writes.len(),
                    file_reads: b.file_reads.len(),
                    unix: b.unix.len(),
                    sockets: b.sockets.len(),
                    io_uring: b.io_uring.len(),
                    dns: b.dns.as_ref().map(|d| d.len()),
                    caps: Set::ALL
                        .iter()
                        .map(|s| (s.as_str().to_owned(), self.caps.cap(*s)))
                        .collect(),
                    capped: self.caps.full(b).iter().map(|s| s.as_str().to_owned()).collect(),
                    refused: book
                        .refused
                        .iter()
                        .map(|(s, n)| (s.as_str().to_owned(), *n))
                        .collect(),
                    kernel_incomplete: book
                        .kernel_incomplete
                        .iter()
                        .map(|s| s.as_str().to_owned())
                        .collect(),
                    report: reports.next(),
                }
            })
            .collect()
    }

    /// Switch `phase` to `mode`; returns the previous mode.
    pub fn set_mode(&mut self, phase: Phase, mode: Mode) -> Result<Mode, AdminError> {
        let index = Books::index(phase).ok_or(AdminError::NoBaseline(phase))?;
        let before = std::mem::replace(&mut self.books[index].state.mode, mode);
        if let Err(e) = self.save(phase) {
            self.books[index].state.mode = before;
            return Err(e.into());
        }
        Ok(before)
    }

    pub fn export(&self, phase: Phase) -> String {
        file::render(self.baseline(phase))
    }

    fn parse_for(phase: Phase, text: &str, source_name: &str) -> Result<Baseline, AdminError> {
        let parsed = file::parse(text, source_name)?;
        if parsed.phase != phase {
            return Err(AdminError::WrongPhase {
                source_name: source_name.into(),
                found: parsed.phase,
                wanted: phase,
            });
        }
        Ok(parsed)
    }

    /// The differences from the baseline in force to the one in `text`.
    pub fn diff(
        &self,
        phase: Phase,
        text: &str,
        source_name: &str,
    ) -> Result<Vec<String>, AdminError> {
        Ok(diff::diff(self.baseline(phase), &Self::parse_for(phase, text, source_name)?))
    }

    /// Put the baseline in `text` in force for `phase`. A file that does not check out
    /// leaves the current baseline in force. Returns the new revision.
    pub fn import(
        &mut self,
        phase: Phase,
        text: &str,
        source_name: &str,
    ) -> Result<u64, AdminError> {
        let mut imported = Self::parse_for(phase, text, source_name)?;
        let index = Books::index(phase).ok_or(AdminError::NoBaseline(phase))?;
        let book = &mut self.books[index];
        imported.revision = book.baseline.revision.max(imported.revision) + 1;
        let previous = std::mem::replace(&mut book.baseline, imported);
        book.dirty = false;
        if let Err(e) = self.save(phase) {
            self.books[index].baseline = previous;
            return Err(e.into());
        }
        self.forget_refusals(phase);
        Ok(self.baseline(phase).revision)
    }

    /// Forget what `phase` learned and counted; it goes back to learning. Returns the mode
    /// it was in.
    pub fn reset(&mut self, phase: Phase) -> Result<Mode, AdminError> {
        let book = self.books.get_mut(phase).ok_or(AdminError::NoBaseline(phase))?;
        let revision = book.baseline.revision + 1;
        book.baseline = Baseline { revision, ..Baseline::empty(phase) };
        book.dirty = false;
        // Its evidence too: what the runs did was judged against what is now forgotten.
        book.evidence = Default::default();
        book.pending = Default::default();
        let before = std::mem::take(&mut book.state).mode;
        self.forget_refusals(phase);
        self.save(phase)?;
        Ok(before)
    }
}
