//! Property tests of `merge`: what a node learned, folded into any later copy of the
//! cluster's baseline, is never lost, and a set that may be missing (`dns`) folds the same.
//!
//! Cases: `PROPTEST_CASES` (256 by default; `cargo xtask test` runs more).
use std::collections::BTreeSet;

use proptest::prelude::*;

use super::{
    Baseline,
    merge::{is_empty, minus, tests::with, union_into},
};

fn names() -> impl Strategy<Value = Vec<&'static str>> {
    proptest::sample::subsequence(vec!["read", "write", "openat", "close", "mmap"], 0..5)
}

/// A `dns` set, or none.
fn dns() -> impl Strategy<Value = Option<BTreeSet<String>>> {
    let names = vec!["a.example.com", "*.example.org", "myservice"];
    prop::option::of(
        proptest::sample::subsequence(names, 0..3)
            .prop_map(|v| v.into_iter().map(str::to_owned).collect()),
    )
}

proptest! {
    /// `b ∪ (a − b)` is `a ∪ b` for a set that may be missing, and `a − a` is nothing.
    #[test]
    fn prop_a_dns_delta_rebuilds_the_union(da in dns(), db in dns()) {
        let a = Baseline { dns: da, ..with(&[], &[], 0) };
        let b = Baseline { dns: db, ..with(&[], &[], 0) };
        let mut via_delta = b.clone();
        union_into(&mut via_delta, &minus(&a, &b));
        let mut direct = b.clone();
        union_into(&mut direct, &a);
        prop_assert_eq!(&via_delta.dns, &direct.dns);
        prop_assert_eq!(direct.dns.is_some(), a.dns.is_some() || b.dns.is_some());
        prop_assert!(is_empty(&minus(&a, &a)));
    }

    /// Folding a node's delta into any later cluster copy never loses what either held.
    #[test]
    fn prop_a_delta_folded_into_the_cluster_loses_nothing(
        a in names(), b in names(), c in names(), pa in 0u64..9, pb in 0u64..9,
    ) {
        let node = with(&a, &[], pa);
        let old = with(&b, &[], pb);
        let delta = minus(&node, &old);
        let mut cluster = with(&c, &[], pb);
        union_into(&mut cluster, &old);
        union_into(&mut cluster, &delta);
        for s in node.syscalls.iter().chain(old.syscalls.iter()) {
            prop_assert!(cluster.syscalls.contains(s));
        }
        prop_assert_eq!(cluster.envelope.max_processes, pa.max(pb));
    }
}
