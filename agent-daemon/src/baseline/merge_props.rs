//! Property tests of `merge`: what a node learned, folded into any later copy of the
//! cluster's baseline, is never lost.
//!
//! Cases: `PROPTEST_CASES` (256 by default; `cargo xtask test` runs more).
use proptest::prelude::*;

use super::merge::{minus, tests::with, union_into};

fn names() -> impl Strategy<Value = Vec<&'static str>> {
    proptest::sample::subsequence(vec!["read", "write", "openat", "close", "mmap"], 0..5)
}

proptest! {
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
