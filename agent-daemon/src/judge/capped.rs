//! Baselines at their caps, and phases the kernel cannot fully enforce: what the judge
//! keeps about them and says about them (the log once per phase and set, a notice once
//! per investigation and set, the counts for the metrics and `paddock baseline list`).
use super::Judge;
use crate::{
    baseline::{Baseline, Caps, Observation, Set, check},
    identity::Phase,
};

/// An entry an investigation would have taught its learning phase, refused because its
/// set was at its cap. Made once per investigation and set.
#[derive(Debug, Clone, PartialEq)]
pub struct CapNotice {
    pub instance: u32,
    pub phase: Phase,
    pub set: Set,
    pub cap: usize,
    /// The first entry refused (`/usr/bin/curl`, `tcp 10.0.0.9 port 22`).
    pub subject: String,
}

impl Judge {
    /// Hold each set to its cap in `caps` from now on. Sets already at or over their cap
    /// (a baseline written under a higher cap, or imported) are kept whole and said in the
    /// log, once each.
    pub fn set_caps(&mut self, caps: Caps) {
        self.caps = caps;
        for (phase, book) in self.books.iter_mut() {
            for set in self.caps.full(&book.baseline) {
                book.logged |= set.bit();
                let (entries, cap) = (set.len(&book.baseline), self.caps.cap(set));
                tracing::warn!(
                    phase = %phase, set = %set, entries, cap,
                    "baseline set at its cap (baseline.{set}): kept whole; while the phase \
                     learns, nothing new is learned into it"
                );
            }
        }
    }

    /// `observation` of `instance` (of `phase`, learning) was not learned: `set` is full.
    pub(super) fn refused(
        &mut self,
        instance: u32,
        phase: Phase,
        set: Set,
        observation: &Observation,
    ) {
        let cap = self.caps.cap(set);
        let Some(book) = self.books.get_mut(phase) else { return };
        *book.refused.entry(set).or_default() += 1;
        if book.logged & set.bit() == 0 {
            book.logged |= set.bit();
            tracing::warn!(
                phase = %phase, set = %set, cap,
                "baseline set reached its cap (baseline.{set}): new entries are no longer \
                 learned (counted in paddock_baseline_refused_entries_total); raise the cap or \
                 review the baseline"
            );
        }
        let Some(case) = self.cases.get_mut(&instance) else { return };
        if !case.first_capped(set) {
            return;
        }
        let subject = check(&Baseline::empty(phase), observation)
            .map_or_else(|| format!("{observation:?}"), |d| d.subject);
        self.notices.push(CapNotice { instance, phase, set, cap, subject });
    }

    /// The notices made since the last call.
    pub fn take_notices(&mut self) -> Vec<CapNotice> {
        std::mem::take(&mut self.notices)
    }

    /// Entries refused at each set's cap (since start, reset or import).
    #[cfg(test)]
    pub fn refused_entries(&self, phase: Phase) -> Vec<(Set, u64)> {
        self.books
            .get(phase)
            .map(|b| b.refused.iter().map(|(s, n)| (*s, *n)).collect())
            .unwrap_or_default()
    }

    /// Record which sets of `phase` the kernel does not decide (its policy maps were full);
    /// logged when that changes.
    pub fn set_kernel_incomplete(&mut self, phase: Phase, sets: Vec<Set>) {
        let Some(book) = self.books.get_mut(phase) else { return };
        if book.kernel_incomplete == sets {
            return;
        }
        if sets.is_empty() {
            tracing::info!(phase = %phase, "the kernel holds the phase's whole policy again");
        } else {
            let names: Vec<&str> = sets.iter().map(|s| s.as_str()).collect();
            tracing::error!(
                phase = %phase, sets = ?names,
                "the phase's policy does not fit the kernel's maps (kernel.policy_*): the kernel \
                 no longer decides these sets for it and the daemon judges them after the fact \
                 (a stray there is killed milliseconds later, not refused); raise the map sizes \
                 or trim baselines"
            );
        }
        book.kernel_incomplete = sets;
    }

    /// Forget the refusals of `phase` (its baseline was reset or replaced).
    pub(super) fn forget_refusals(&mut self, phase: Phase) {
        if let Some(book) = self.books.get_mut(phase) {
            book.refused.clear();
            book.logged = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{baseline::store::Store, events::Action};

    fn judge(caps: Caps) -> (tempfile::TempDir, Judge) {
        let dir = tempfile::tempdir().unwrap();
        let (mut judge, _) = Judge::open(Store::open(dir.path()).unwrap()).unwrap();
        judge.set_caps(caps);
        (dir, judge)
    }

    fn exec(path: &str) -> Observation {
        Observation::Exec { path: path.into(), literal: false }
    }

    #[test]
    fn a_full_set_refuses_counts_and_notices_once_per_investigation() {
        let (_dir, mut judge) = judge(Caps { execs: 2, ..Caps::default() });
        judge.begin(1, Phase::Shadow);
        for path in ["/bin/a", "/bin/b", "/bin/c", "/bin/d", "/bin/a"] {
            assert_eq!(
                judge.observe(1, &exec(path), Action::None),
                None,
                "learning judges nothing"
            );
        }
        assert_eq!(judge.baseline(Phase::Shadow).execs.len(), 2);
        assert_eq!(judge.refused_entries(Phase::Shadow), [(Set::Execs, 2)]);
        let notices = judge.take_notices();
        assert_eq!(
            notices,
            [CapNotice {
                instance: 1,
                phase: Phase::Shadow,
                set: Set::Execs,
                cap: 2,
                subject: "/bin/c".into()
            }]
        );
        assert!(judge.take_notices().is_empty(), "taken");
        // Another investigation of the phase is told too, once.
        judge.begin(2, Phase::Shadow);
        judge.observe(2, &exec("/bin/e"), Action::None);
        judge.observe(2, &exec("/bin/f"), Action::None);
        assert_eq!(judge.take_notices().len(), 1);
        assert_eq!(judge.refused_entries(Phase::Shadow), [(Set::Execs, 4)]);
        let summary = judge.summaries().into_iter().find(|s| s.phase == Phase::Shadow).unwrap();
        assert_eq!(summary.capped, ["execs"]);
        assert_eq!(summary.refused.get("execs"), Some(&4));
        // A reset forgets them.
        judge.reset(Phase::Shadow).unwrap();
        assert!(judge.refused_entries(Phase::Shadow).is_empty());
    }

    #[test]
    fn a_baseline_over_its_cap_loads_whole_and_is_reported_capped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut b = Baseline::empty(Phase::ReadOnly);
        for i in 0..10 {
            crate::baseline::learn(&mut b, &exec(&format!("/opt/tool{i}")));
        }
        store.save(&b).unwrap();
        let (mut judge, problems) = Judge::open(Store::open(dir.path()).unwrap()).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        judge.set_caps(Caps { execs: 4, ..Caps::default() });
        assert_eq!(judge.baseline(Phase::ReadOnly).execs.len(), 10, "nothing lost");
        let summary = judge.summaries().into_iter().find(|s| s.phase == Phase::ReadOnly).unwrap();
        assert_eq!((summary.execs, summary.caps.get("execs")), (10, Some(&4)));
        assert_eq!(summary.capped, ["execs"]);
        // In force whole: judged against all ten once the phase flags.
        judge.set_mode(Phase::ReadOnly, crate::baseline::Mode::Flag).unwrap();
        judge.begin(3, Phase::ReadOnly);
        assert_eq!(judge.observe(3, &exec("/opt/tool9"), Action::None), None);
        assert!(judge.observe(3, &exec("/opt/other"), Action::None).is_some());
        assert!(judge.take_notices().is_empty(), "only learning refuses");
    }

    #[test]
    fn kernel_incomplete_sets_show_in_the_summary() {
        let (_dir, mut judge) = judge(Caps::default());
        judge.set_kernel_incomplete(Phase::Autonomous, vec![Set::Egress]);
        let summary = judge.summaries().into_iter().find(|s| s.phase == Phase::Autonomous).unwrap();
        assert_eq!(summary.kernel_incomplete, ["egress"]);
        judge.set_kernel_incomplete(Phase::Autonomous, Vec::new());
        let summary = judge.summaries().into_iter().find(|s| s.phase == Phase::Autonomous).unwrap();
        assert!(summary.kernel_incomplete.is_empty());
    }
}
