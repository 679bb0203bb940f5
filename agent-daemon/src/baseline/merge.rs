//! Baselines as sets that nodes fold together: the union of two, and what one holds beyond
//! another (the entries a node learned since it last took the cluster's copy). Pure.
use std::collections::BTreeSet;

use super::{Baseline, Envelope};

fn unite<T: Ord + Clone>(into: &mut BTreeSet<T>, from: &BTreeSet<T>) -> bool {
    let before = into.len();
    into.extend(from.iter().cloned());
    into.len() != before
}

fn beyond<T: Ord + Clone>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> BTreeSet<T> {
    a.difference(b).cloned().collect()
}

/// `into ∪ from` for a set that may not be learned yet (`None`): `None ∪ Some(x)` is
/// `Some(x)`, so once one side judges it the union does.
fn unite_optional<T: Ord + Clone>(
    into: &mut Option<BTreeSet<T>>,
    from: &Option<BTreeSet<T>>,
) -> bool {
    match (into.as_mut(), from) {
        (_, None) => false,
        (Some(mine), Some(theirs)) => unite(mine, theirs),
        (None, Some(theirs)) => {
            *into = Some(theirs.clone());
            true
        }
    }
}

/// Add every entry of `from` to `into`, and raise `into`'s envelope to `from`'s where it is
/// higher (the tolerance stays `into`'s). True when anything changed.
pub fn union_into(into: &mut Baseline, from: &Baseline) -> bool {
    let mut changed = false;
    changed |= unite(&mut into.syscalls, &from.syscalls);
    changed |= unite(&mut into.execs, &from.execs);
    changed |= unite(&mut into.egress, &from.egress);
    changed |= unite(&mut into.egress_names, &from.egress_names);
    changed |= unite(&mut into.file_writes, &from.file_writes);
    changed |= unite(&mut into.file_reads, &from.file_reads);
    changed |= unite(&mut into.unix, &from.unix);
    changed |= unite(&mut into.sockets, &from.sockets);
    changed |= unite(&mut into.io_uring, &from.io_uring);
    changed |= unite_optional(&mut into.dns, &from.dns);
    let (e, f) = (&mut into.envelope, &from.envelope);
    for (mine, theirs) in [
        (&mut e.max_processes, f.max_processes),
        (&mut e.max_syscalls_per_second, f.max_syscalls_per_second),
        (&mut e.max_egress_bytes, f.max_egress_bytes),
    ] {
        if theirs > *mine {
            *mine = theirs;
            changed = true;
        }
    }
    if from.updated > into.updated {
        into.updated = from.updated;
    }
    changed
}

/// What a set that may not be learned yet (`None`) holds in `a` beyond `b`: `None` when
/// that adds nothing to `b` (`a` has no set, or both have and `a`'s entries are all in
/// `b`'s); all of `a`'s when `b` has no set (even none: that `a` judges is new to `b`).
fn beyond_optional<T: Ord + Clone>(
    a: &Option<BTreeSet<T>>,
    b: &Option<BTreeSet<T>>,
) -> Option<BTreeSet<T>> {
    match (a, b) {
        (None, _) => None,
        (Some(mine), None) => Some(mine.clone()),
        (Some(mine), Some(theirs)) => Some(beyond(mine, theirs)).filter(|d| !d.is_empty()),
    }
}

/// What `a` holds that `b` does not: its entries missing from `b`, and its envelope maxima
/// where they are above `b`'s (0 elsewhere); for `dns`, see [`beyond_optional`].
/// `union_into(b, beyond(a, b))` is `a ∪ b`.
pub fn minus(a: &Baseline, b: &Baseline) -> Baseline {
    let above = |x: u64, y: u64| if x > y { x } else { 0 };
    Baseline {
        phase: a.phase,
        revision: a.revision,
        learned_from: a.learned_from.saturating_sub(b.learned_from),
        updated: a.updated,
        syscalls: beyond(&a.syscalls, &b.syscalls),
        execs: beyond(&a.execs, &b.execs),
        egress: beyond(&a.egress, &b.egress),
        egress_names: beyond(&a.egress_names, &b.egress_names),
        file_writes: beyond(&a.file_writes, &b.file_writes),
        file_reads: beyond(&a.file_reads, &b.file_reads),
        unix: beyond(&a.unix, &b.unix),
        sockets: beyond(&a.sockets, &b.sockets),
        io_uring: beyond(&a.io_uring, &b.io_uring),
        dns: beyond_optional(&a.dns, &b.dns),
        envelope: Envelope {
            max_processes: above(a.envelope.max_processes, b.envelope.max_processes),
            max_syscalls_per_second: above(
                a.envelope.max_syscalls_per_second,
                b.envelope.max_syscalls_per_second,
            ),
            max_egress_bytes: above(a.envelope.max_egress_bytes, b.envelope.max_egress_bytes),
            tolerance: a.envelope.tolerance,
        },
    }
}

/// No entry in any set, no `dns` set (an empty one is something: queries are judged), and
/// no envelope maximum.
pub fn is_empty(b: &Baseline) -> bool {
    let e = &b.envelope;
    b.syscalls.is_empty()
        && b.execs.is_empty()
        && b.egress.is_empty()
        && b.egress_names.is_empty()
        && b.file_writes.is_empty()
        && b.file_reads.is_empty()
        && b.unix.is_empty()
        && b.sockets.is_empty()
        && b.io_uring.is_empty()
        && b.dns.is_none()
        && e.max_processes == 0
        && e.max_syscalls_per_second == 0
        && e.max_egress_bytes == 0
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::{
        baseline::{Observation, learn},
        identity::Phase,
    };

    pub(in crate::baseline) fn with(syscalls: &[&str], execs: &[&str], processes: u64) -> Baseline {
        let mut b = Baseline::empty(Phase::ReadOnly);
        for s in syscalls {
            learn(&mut b, &Observation::Syscall((*s).into()));
        }
        for e in execs {
            learn(&mut b, &Observation::Exec { path: (*e).into(), literal: false });
        }
        b.envelope.max_processes = processes;
        b
    }

    #[test]
    fn the_union_holds_both_and_the_higher_envelope() {
        let mut a = with(&["read"], &["/bin/ls"], 3);
        let b = with(&["write"], &["/bin/ls", "/bin/cat"], 5);
        assert!(union_into(&mut a, &b));
        assert_eq!(a.syscalls.len(), 2);
        assert_eq!(a.execs.len(), 2);
        assert_eq!(a.envelope.max_processes, 5);
        assert!(!union_into(&mut a, &b), "nothing new the second time");
    }

    #[test]
    fn what_a_node_learned_is_what_its_copy_holds_beyond_the_clusters() {
        let cluster = with(&["read"], &["/bin/ls"], 4);
        let node = with(&["read", "openat"], &["/bin/ls"], 2);
        let delta = minus(&node, &cluster);
        assert_eq!(delta.syscalls.iter().collect::<Vec<_>>(), ["openat"]);
        assert!(delta.execs.is_empty());
        assert_eq!(delta.envelope.max_processes, 0, "not above the cluster's");
        assert!(!is_empty(&delta));
        assert!(is_empty(&minus(&cluster, &cluster)));
    }

    #[test]
    fn a_dns_set_joins_one_that_is_missing_and_deltas_carry_it() {
        let none = with(&["read"], &[], 0);
        let names = |n: &[&str]| Some(n.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>());
        let judged = Baseline { dns: names(&["api.example.com"]), ..none.clone() };
        let empty = Baseline { dns: names(&[]), ..none.clone() };
        let mut a = none.clone();
        assert!(union_into(&mut a, &judged), "None and Some: Some");
        assert_eq!(a.dns, judged.dns);
        let mut a = judged.clone();
        assert!(!union_into(&mut a, &none));
        assert_eq!(a.dns, judged.dns);
        let mut a = none.clone();
        assert!(union_into(&mut a, &empty), "judging queries is a change");
        assert_eq!(a.dns, names(&[]));
        let mut a = Baseline { dns: names(&["a.example.org"]), ..none.clone() };
        assert!(union_into(&mut a, &judged));
        assert_eq!(a.dns, names(&["a.example.org", "api.example.com"]));
        // Deltas.
        assert!(is_empty(&minus(&judged, &judged)));
        assert!(is_empty(&minus(&none, &judged)));
        assert_eq!(minus(&empty, &none).dns, names(&[]), "that it judges is news");
        assert!(!is_empty(&minus(&empty, &none)));
        assert_eq!(minus(&a, &judged).dns, names(&["a.example.org"]));
    }

    #[test]
    fn name_rules_unite_and_subtract_like_the_other_sets() {
        let mut a = with(&[], &[], 0);
        let mut b = a.clone();
        a.egress_names.insert("tcp *.example.com port 443".parse().unwrap());
        b.egress_names.insert("udp dns.example.com port 53".parse().unwrap());
        let delta = minus(&a, &b);
        assert_eq!(delta.egress_names.len(), 1);
        assert!(!is_empty(&delta));
        assert!(union_into(&mut b, &delta));
        assert_eq!(b.egress_names.len(), 2);
    }
}
