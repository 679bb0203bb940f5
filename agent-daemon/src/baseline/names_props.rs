//! Property tests of name generalisation (`names::generalise_name`): it is idempotent, the
//! pattern it makes matches the name it was made from, `*` only ever stands as the whole
//! first label, learned patterns read back as file entries, and no label of a name's
//! registrable domain (ICANN section of the Public Suffix List) is ever replaced.
//!
//! Cases: `PROPTEST_CASES` (256 by default; `cargo xtask test` runs more).
use proptest::prelude::*;

use super::names::{dns_name, generalise_name, host_name, name_matches, query_name, rule_name};

/// A label of the kinds the rules tell apart, made up or named by a person.
fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,12}",
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "[0-9a-f]{6,16}",
        "[a-z0-9]{8,20}",
        "[a-z]{1,8}-[0-9]{1,4}",
        "[a-z]{1,6}[0-9]{1,4}",
        "[a-z]{2,6}(-[0-9]{1,3}){1,4}",
        "[a-z]{1,10}",
        "[a-z_][a-z0-9_-]{0,10}[a-z0-9]",
        prop::sample::select(vec!["api", "s3", "ec2", "www", "us-east-1", "deadbeef", "co", "uk"])
            .prop_map(str::to_owned),
    ]
}

/// Suffixes of the kinds the Public Suffix List has: ICANN ones of one label and more,
/// private ones, a wildcard rule's (`*.ck`), and TLDs it does not know.
fn suffix() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "com",
            "co.uk",
            "com.au",
            "s3.amazonaws.com",
            "github.io",
            "ck",
            "kawasaki.jp",
            "cluster.local",
            "internal",
        ])
        .prop_map(str::to_owned),
        "[a-z]{2,6}",
    ]
}

/// A name of one label or more, in any ASCII case, with a trailing dot or not.
fn name() -> impl Strategy<Value = String> {
    (prop::collection::vec(label(), 0..5), suffix(), any::<bool>(), any::<u64>()).prop_map(
        |(labels, suffix, dot, case)| {
            let mut name = labels.into_iter().chain([suffix]).collect::<Vec<_>>().join(".");
            name = name
                .chars()
                .enumerate()
                .map(|(i, c)| if case >> (i % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c })
                .collect();
            if dot {
                name.push('.');
            }
            name
        },
    )
}

/// Any text, or a name.
fn any_name() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-zA-Z0-9.*_-]{0,40}", name()]
}

/// Any text, or a name, with no `*`: a name as the kernel may report it, never a pattern.
fn no_pattern() -> impl Strategy<Value = String> {
    any_name().prop_map(|n| n.replace('*', "x"))
}

/// A name whose ICANN public suffix is known, and that suffix's labels.
fn known_name() -> impl Strategy<Value = (String, usize)> {
    let suffixes = vec![
        ("com", 1),
        ("co.uk", 2),
        ("com.au", 2),
        ("s3.amazonaws.com", 1),
        ("github.io", 1),
        ("cluster.local", 1),
        ("internal", 1),
    ];
    let words = vec!["example", "paddock", "acme-corp", "svc", "prod"];
    (
        label(),
        prop::collection::vec(prop::sample::select(words), 0..3),
        prop::sample::select(suffixes),
    )
        .prop_map(|(first, middle, (suffix, labels))| {
            let name =
                [first.as_str()].into_iter().chain(middle).chain([suffix]).collect::<Vec<_>>();
            (name.join("."), labels)
        })
}

proptest! {
    #[test]
    fn prop_generalising_is_idempotent(n in any_name()) {
        let once = generalise_name(&n);
        prop_assert_eq!(generalise_name(&once), once.clone(), "{:?}", n);
    }

    /// What learning keeps for a name allows that name when it is checked.
    #[test]
    fn prop_the_pattern_matches_the_name_it_was_made_from(n in no_pattern()) {
        let pattern = generalise_name(&n);
        prop_assert!(name_matches(&pattern, &n), "{:?} -> {:?}", n, pattern);
    }

    #[test]
    fn prop_a_star_is_only_ever_the_whole_first_label(n in no_pattern()) {
        let pattern = generalise_name(&n);
        let rest = pattern.strip_prefix("*.").unwrap_or(&pattern);
        prop_assert!(!rest.contains('*'), "{:?} -> {:?}", n, pattern);
        if pattern.starts_with("*.") {
            let lower = n.to_ascii_lowercase();
            let after_first = lower.split_once('.').map(|(_, r)| r.trim_end_matches('.'));
            prop_assert_eq!(Some(rest), after_first, "one label replaced in {:?}", n);
        }
    }

    /// What learning stores is an entry the baseline file reads back as it was.
    #[test]
    fn prop_learned_patterns_are_valid_entries(n in name()) {
        if let Some(host) = host_name(&n) {
            let pattern = generalise_name(&host);
            prop_assert_eq!(rule_name(&pattern), Ok(pattern.clone()), "{:?}", n);
        }
        if let Some(query) = query_name(&n) {
            let pattern = generalise_name(&query);
            prop_assert_eq!(dns_name(&pattern), Ok(pattern.clone()), "{:?}", n);
        }
    }

    /// The rest of a pattern holds the whole registrable domain, by a table of suffixes.
    #[test]
    fn prop_the_registrable_domain_is_kept_by_the_table((n, suffix_labels) in known_name()) {
        let pattern = generalise_name(&n);
        if let Some(rest) = pattern.strip_prefix("*.") {
            prop_assert!(rest.split('.').count() > suffix_labels, "{:?} -> {:?}", n, pattern);
        }
    }

    /// The same, by the list's own registrable domain, for names whose longest suffix is
    /// an ICANN one or unknown to the list.
    #[test]
    fn prop_the_registrable_domain_is_kept_by_the_list(n in name()) {
        let lower = n.to_ascii_lowercase();
        let lower = lower.trim_end_matches('.');
        let icann = psl::suffix(lower.as_bytes()).is_some_and(|s| s.typ() != Some(psl::Type::Private));
        let pattern = generalise_name(&n);
        if let (true, Some(rest)) = (icann, pattern.strip_prefix("*.")) {
            let domain = psl::domain_str(lower);
            prop_assert!(domain.is_some_and(|d| rest == d || rest.ends_with(&format!(".{d}"))), "{:?} -> {:?} ({:?})", n, pattern, domain);
        }
    }
}
