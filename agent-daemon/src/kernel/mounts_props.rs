//! Property tests of mountinfo parsing (`mounts`): the table lists every mount of the host,
//! FUSE mounts that users make included, so their names are outside input. No text makes
//! parsing panic, names escaped as the kernel escapes them read back as they were, and the
//! cgroup v2 mount is found among any others.
//!
//! Cases: `PROPTEST_CASES` (256 by default; `cargo xtask test` runs more).
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::mounts::{Cgroup2, MountEntry, parse_mountinfo};
use crate::text_edits;

/// `name` as mountinfo shows it: space, tab, newline and backslash as `\ooo`.
fn escaped(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => out += &format!("\\{:03o}", c as u32),
            c => out.push(c),
        }
    }
    out
}

/// A mount or root name: any text but NUL (which no path holds).
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "/[a-z0-9 ._-]{0,20}",
        any::<String>().prop_map(|s| format!("/{}", s.replace('\0', ""))),
        prop::collection::vec(any::<char>(), 0..20)
            .prop_map(|c| format!("/{}", String::from_iter(c).replace('\0', ""))),
        Just("/a - b\\040c\\".to_owned()),
    ]
}

fn line(id: usize, root: &str, mount_point: &str, fstype: &str) -> String {
    let (root, mount_point) = (escaped(root), escaped(mount_point));
    format!("{id} 1 0:{id} {root} {mount_point} rw,relatime shared:1 - {fstype} none rw\n")
}

proptest! {
    #[test]
    fn prop_any_text_is_parsed_without_panicking(
        text in any::<String>(),
        edits in text_edits::edits(text_edits::syntax_pieces()),
    ) {
        let entries = parse_mountinfo(&text);
        prop_assert!(entries.len() <= text.lines().count());
        let sample = line(1, "/", "/sys/fs/cgroup", "cgroup2");
        let _ = parse_mountinfo(&text_edits::apply(sample.repeat(3), &edits));
    }

    #[test]
    fn prop_escaped_names_read_back_and_cgroup2_is_found(
        mounts in prop::collection::vec((name(), name(), "fuse(\\.[a-z0-9]{1,8})?"), 0..6),
        (root, mount_point) in (name(), name()),
        at in any::<prop::sample::Index>(),
    ) {
        let mut expected: Vec<MountEntry> = mounts
            .iter()
            .map(|(root, point, fstype)| MountEntry {
                root: root.clone(),
                mount_point: PathBuf::from(point),
                fstype: fstype.clone(),
            })
            .collect();
        let cgroup = MountEntry {
            root: root.clone(),
            mount_point: PathBuf::from(&mount_point),
            fstype: "cgroup2".into(),
        };
        expected.insert(at.index(expected.len() + 1), cgroup.clone());
        let text: String = expected
            .iter()
            .enumerate()
            .map(|(i, m)| line(i, &m.root, &m.mount_point.to_string_lossy(), &m.fstype))
            .collect();
        let entries = parse_mountinfo(&text);
        prop_assert_eq!(&entries, &expected, "{}", text);
        prop_assert_eq!(entries.iter().find(|m| m.fstype == "cgroup2"), Some(&cgroup));
    }

    #[test]
    fn prop_hierarchy_paths_join_the_root_and_the_path_below_the_mount(
        (root, mount_point) in (name(), name()),
        below in prop::collection::vec("[a-z0-9_-][a-z0-9._-]{0,7}", 0..4),
        other in name(),
    ) {
        let cgroup = Cgroup2 { mount_point: PathBuf::from(&mount_point), root: root.clone() };
        let _ = cgroup.hierarchy_path(Path::new(&other));
        let dir = below.iter().fold(cgroup.mount_point.clone(), |dir, part| dir.join(part));
        let mut want = root.trim_end_matches('/').to_owned();
        for part in &below {
            want = format!("{want}/{part}");
        }
        let want = if want.is_empty() { "/".to_owned() } else { want };
        prop_assert_eq!(cgroup.hierarchy_path(&dir), Some(want));
    }
}
