//! The judge's books: what it keeps of each trust phase, one book per phase, indexed by the
//! phase (`Phase::Unknown` has none: it is only ever watched).
use std::{
    collections::BTreeMap,
    ops::{Index, IndexMut},
};

use crate::{
    baseline::{Baseline, Set, evidence::Evidence, store::PhaseState},
    identity::Phase,
};

pub(super) struct Book {
    pub baseline: Baseline,
    pub state: PhaseState,
    /// Learned content not yet saved.
    pub dirty: bool,
    /// Entries refused because their set was at its cap, by set, since the daemon started
    /// (or the baseline was last reset or imported).
    pub refused: BTreeMap<Set, u64>,
    /// Sets whose cap was already said in the log (one line per phase and set).
    pub logged: u16,
    /// Sets the kernel does not decide for this phase (its policy map was full): judged
    /// and killed by the daemon only, after the fact.
    pub kernel_incomplete: Vec<Set>,
    /// The cluster's copy of the baseline as last taken in, when the phase lives in the
    /// cluster: what this node learned beyond it is what it has to send.
    pub synced: Option<Baseline>,
    /// How the phase's runs on this node went.
    pub evidence: Evidence,
    /// Of those, what the cluster has not been sent yet.
    pub pending: Evidence,
}

impl Book {
    pub fn new(baseline: Baseline, state: PhaseState) -> Book {
        Book {
            baseline,
            state,
            dirty: false,
            refused: BTreeMap::new(),
            logged: 0,
            kernel_incomplete: Vec::new(),
            synced: None,
            evidence: Evidence::default(),
            pending: Evidence::default(),
        }
    }
}

/// One book per trust phase, in the order of `Phase::ALL`.
pub(super) struct Books([Book; 4]);

/// A trust phase's place in the books: only a trust phase has one, so indexing by it cannot
/// miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BookIndex(usize);

impl Books {
    /// Each trust phase's book, as `make` opens it.
    pub fn open<E>(mut make: impl FnMut(Phase) -> Result<Book, E>) -> Result<Books, E> {
        let [shadow, read_only, limited_write, autonomous] = Phase::ALL;
        Ok(Books([make(shadow)?, make(read_only)?, make(limited_write)?, make(autonomous)?]))
    }

    /// Where `phase`'s book is; `None` for `Phase::Unknown` only.
    pub fn index(phase: Phase) -> Option<BookIndex> {
        match phase {
            Phase::Shadow => Some(BookIndex(0)),
            Phase::ReadOnly => Some(BookIndex(1)),
            Phase::LimitedWrite => Some(BookIndex(2)),
            Phase::Autonomous => Some(BookIndex(3)),
            Phase::Unknown => None,
        }
    }

    /// `phase`'s book; `None` for `Phase::Unknown` only.
    pub fn get(&self, phase: Phase) -> Option<&Book> {
        Self::index(phase).map(|i| &self[i])
    }

    pub fn get_mut(&mut self, phase: Phase) -> Option<&mut Book> {
        Self::index(phase).map(|i| &mut self[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = (Phase, &Book)> {
        Phase::ALL.into_iter().zip(&self.0)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Phase, &mut Book)> {
        Phase::ALL.into_iter().zip(&mut self.0)
    }
}

impl Index<BookIndex> for Books {
    type Output = Book;
    fn index(&self, index: BookIndex) -> &Book {
        &self.0[index.0]
    }
}

impl IndexMut<BookIndex> for Books {
    fn index_mut(&mut self, index: BookIndex) -> &mut Book {
        &mut self.0[index.0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_trust_phase_has_its_own_book_and_unknown_has_none() {
        let books = Books::open(|phase| {
            Ok::<_, ()>(Book::new(Baseline::empty(phase), PhaseState::default()))
        })
        .unwrap();
        for phase in Phase::ALL {
            assert_eq!(books.get(phase).unwrap().baseline.phase, phase);
        }
        assert!(books.get(Phase::Unknown).is_none());
        let order: Vec<Phase> = books
            .iter()
            .map(|(p, b)| (p, b.baseline.phase))
            .map(|(p, q)| {
                assert_eq!(p, q);
                p
            })
            .collect();
        assert_eq!(order, Phase::ALL);
    }
}
