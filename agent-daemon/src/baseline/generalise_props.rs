//! Property tests of path generalisation (`generalise`), which the kernel does too: no input
//! makes it panic, normalising is idempotent and leaves no `.`, `..` or `//` behind, and the
//! kernel's hash of a path's generalised form is the hash of the daemon's string.
//!
//! Cases: `PROPTEST_CASES` (256 by default; `cargo xtask test` runs more).
use agent_common::{
    event::PATH_LEN,
    hash::fnv1a,
    shape::{Rules, generalised_hash},
};
use proptest::prelude::*;

use super::generalise::{exec, normalise, path, prefix, under};

/// A component of the kinds the rules tell apart, and a few that only look like them.
fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(".".to_owned()),
        Just("..".to_owned()),
        prop::sample::select(vec!["tmp", "var", "dev", "shm", "usr", "bin", "proc", "<n>"])
            .prop_map(str::to_owned),
        "[0-9]{1,12}",
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "[0-9a-fA-F]{10,40}",
        "\\.{0,2}tmp[._-]{0,2}[A-Za-z0-9]{4,10}",
        "[a-z]{1,6}-?[0-9]{1,6}",
        "[A-Za-z0-9._-]{0,20}",
        "[^/\u{0}]{0,8}",
    ]
}

/// Paths made of such components, absolute or not, under a temporary root or not.
fn structured_path() -> impl Strategy<Value = String> {
    let root = prop::sample::select(vec!["", "/", "/tmp/", "/var/tmp/", "/dev/shm/", "//"]);
    (root, prop::collection::vec(component(), 0..8), any::<bool>()).prop_map(
        |(root, parts, trailing)| {
            let mut p = root.to_owned() + &parts.join("/");
            if trailing {
                p.push('/');
            }
            p
        },
    )
}

/// Any text (control characters and NUL too), or a path built to reach every rule.
fn any_path() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter),
        "[/.a-z0-9]{0,40}",
        structured_path(),
    ]
}

/// `p` as the kernel can hold it whole: no NUL, shorter than `PATH_LEN` bytes.
fn fitted(p: &str) -> String {
    let mut p = p.replace('\0', "");
    while p.len() >= PATH_LEN {
        p.pop();
    }
    p
}

fn kernel_buffer(p: &str) -> [u8; PATH_LEN] {
    let mut buf = [0u8; PATH_LEN];
    buf[..p.len()].copy_from_slice(p.as_bytes());
    buf
}

proptest! {
    #[test]
    fn prop_generalise_never_panics(p in any_path(), q in any_path()) {
        let _ = (path(&p), exec(&p), normalise(&p), prefix(&p));
        let _ = (under(&p, &q), under(&p, &prefix(&q)));
    }

    #[test]
    fn prop_normalise_is_idempotent(p in any_path()) {
        let once = normalise(&p);
        prop_assert_eq!(normalise(&once), once.clone(), "{:?}", p);
        prop_assert_eq!(once.starts_with('/'), p.starts_with('/'), "{:?} -> {:?}", p, once);
    }

    #[test]
    fn prop_normalise_leaves_no_dots_or_empty_components(p in any_path()) {
        let n = normalise(&p);
        let (absolute, body) = match n.strip_prefix('/') {
            Some(body) => (true, body),
            None => (false, n.as_str()),
        };
        let parts: Vec<&str> = if body.is_empty() { Vec::new() } else { body.split('/').collect() };
        // A relative path keeps the `..` that climb above where it starts, and only those.
        let climbs = if absolute { 0 } else { parts.iter().take_while(|c| **c == "..").count() };
        for c in &parts[climbs..] {
            prop_assert!(!matches!(*c, "" | "." | ".."), "{:?} -> {:?}", p, n);
        }
    }

    #[test]
    fn prop_generalising_twice_changes_nothing(p in any_path()) {
        prop_assert_eq!(path(&path(&p)), path(&p), "{:?}", p);
        prop_assert_eq!(exec(&exec(&p)), exec(&p), "{:?}", p);
    }

    /// What learning stores for a file covers that file when it is checked.
    #[test]
    fn prop_a_file_is_under_its_own_prefix(p in any_path()) {
        prop_assert!(under(&p, &prefix(&p)), "{:?} not under {:?}", p, prefix(&p));
    }

    /// The kernel reads at most `PATH_LEN` bytes up to a NUL, and hashes the generalised
    /// form as it goes: for every such path it must land on the daemon's string.
    #[test]
    fn prop_the_kernel_hash_is_the_hash_of_the_generalised_string(p in any_path()) {
        let p = fitted(&p);
        let buf = kernel_buffer(&p);
        prop_assert_eq!(
            generalised_hash(&buf, Rules::Files),
            fnv1a(path(&p).as_bytes()),
            "{:?} as a file is {:?}", p, path(&p)
        );
        prop_assert_eq!(
            generalised_hash(&buf, Rules::Execs),
            fnv1a(exec(&p).as_bytes()),
            "{:?} as an executable is {:?}", p, exec(&p)
        );
    }
}
