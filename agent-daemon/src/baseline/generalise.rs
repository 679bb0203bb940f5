//! Path generalisation: the rules that keep a baseline from drowning in per-run noise.
//!
//! A path is generalised component by component:
//! 1. all digits (`/proc/4242/status`, `/dev/pts/3`)                 -> `<n>`
//! 2. a UUID (`8-4-4-4-12` hex digits)                                -> `<uuid>`
//! 3. 12 or more hex digits with at least one digit (container ids)   -> `<hex>`
//! 4. below a temporary root (`/tmp`, `/var/tmp`, `/dev/shm`) only: a name as `mktemp` and
//!    friends make them, `tmp` or `.tmp` then 6 or more letters or digits (`/tmp/tmp.XkqpZQ`,
//!    `/tmp/.tmpAbCdEf`), or any name of 6 or more characters mixing letters and digits
//!    (`/tmp/job-8231`)                                                  -> `<random>`
//!
//! Everything else is kept. The same function is applied to what is learned and to what is
//! checked, so a baseline entry matches a path when the path generalises to it.
//!
//! File access is kept as prefixes: the generalised parent directory with a trailing `/`
//! (`/etc/hostname` -> `/etc/`), except where a directory would say too much: files at the
//! root and anything under `/dev`, `/proc` and `/sys` are kept whole (`/dev/null`, not `/dev/`).

/// The placeholders generalisation produces; a baseline file may use no others.
pub const PLACEHOLDERS: [&str; 4] = ["<n>", "<uuid>", "<hex>", "<random>"];

const TEMP_ROOTS: [&str; 3] = ["/tmp/", "/var/tmp/", "/dev/shm/"];
const WHOLE_PATH_ROOTS: [&str; 3] = ["/dev/", "/proc/", "/sys/"];

fn is_uuid(c: &str) -> bool {
    let groups: Vec<&str> = c.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|ch| ch.is_ascii_hexdigit()))
}

fn is_long_hex(c: &str) -> bool {
    c.len() >= 12
        && c.chars().all(|ch| ch.is_ascii_hexdigit())
        && c.chars().any(|ch| ch.is_ascii_digit())
}

fn looks_generated(c: &str) -> bool {
    let mktemp = c
        .trim_start_matches('.')
        .strip_prefix("tmp")
        .map(|rest| rest.strip_prefix(['.', '_', '-']).unwrap_or(rest))
        .is_some_and(|rest| rest.len() >= 6 && rest.chars().all(|ch| ch.is_ascii_alphanumeric()));
    mktemp
        || (c.chars().count() >= 6
            && c.chars().any(|ch| ch.is_ascii_digit())
            && c.chars().any(|ch| ch.is_ascii_alphabetic()))
}

/// The generalised form of one path component.
fn component(c: &str, under_temp: bool) -> &str {
    if !c.is_empty() && c.chars().all(|ch| ch.is_ascii_digit()) {
        "<n>"
    } else if is_uuid(c) {
        "<uuid>"
    } else if is_long_hex(c) {
        "<hex>"
    } else if under_temp && looks_generated(c) {
        "<random>"
    } else {
        c
    }
}

/// The generalised form of `path`.
pub fn path(path: &str) -> String {
    let under_temp = TEMP_ROOTS.iter().any(|root| path.starts_with(root));
    path.split('/').map(|c| component(c, under_temp)).collect::<Vec<_>>().join("/")
}

/// The prefix a file access is learned as (see the module docs).
pub fn prefix(file: &str) -> String {
    let general = path(file);
    if WHOLE_PATH_ROOTS.iter().any(|root| general.starts_with(root)) {
        return general;
    }
    match general.rfind('/') {
        Some(0) | None => general,
        Some(slash) => general[..=slash].to_owned(),
    }
}

/// Whether `file` falls under `prefix` (a baseline entry).
pub fn under(file: &str, prefix: &str) -> bool {
    let general = path(file);
    if prefix.ends_with('/') { general.starts_with(prefix) } else { general == prefix }
}

/// The first `<...>` token in `text` that is not a known placeholder.
pub fn unknown_placeholder(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').map(|e| start + e + 1)?;
        let token = &rest[start..end];
        if !PLACEHOLDERS.contains(&token) {
            return Some(token);
        }
        rest = &rest[end..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_ids_become_n() {
        assert_eq!(path("/proc/4242/status"), "/proc/<n>/status");
        assert_eq!(path("/proc/4242/task/4243/stat"), "/proc/<n>/task/<n>/stat");
        assert_eq!(path("/proc/self/maps"), "/proc/self/maps");
        assert_eq!(path("/dev/pts/3"), "/dev/pts/<n>");
    }

    #[test]
    fn uuids_and_long_hex_ids_are_replaced_everywhere() {
        assert_eq!(
            path("/var/lib/kubelet/pods/0b6c2a9e-1d2f-4e3a-9b8c-7d6e5f4a3b2c/volumes"),
            "/var/lib/kubelet/pods/<uuid>/volumes"
        );
        assert_eq!(
            path("/run/containerd/io.containerd/3f2a9c8b7e6d5f4a"),
            "/run/containerd/io.containerd/<hex>"
        );
        assert_eq!(path("/usr/lib/deadbeef"), "/usr/lib/deadbeef", "8 hex letters: a word");
    }

    #[test]
    fn generated_names_only_under_temporary_roots() {
        assert_eq!(path("/tmp/tmp.Xk3p9Q/out.txt"), "/tmp/<random>/out.txt");
        assert_eq!(path("/tmp/.tmpa1B2c3/report.json"), "/tmp/<random>/report.json");
        assert_eq!(
            path("/tmp/.tmpAbCdEf/report.json"),
            "/tmp/<random>/report.json",
            "mktemp, letters only"
        );
        assert_eq!(path("/tmp/tmp.XkqpZQ"), "/tmp/<random>");
        assert_eq!(path("/tmp/tmpfiles"), "/tmp/tmpfiles", "too short after tmp");
        assert_eq!(path("/var/tmp/job-8231/x"), "/var/tmp/<random>/x");
        assert_eq!(path("/tmp/cache/out.txt"), "/tmp/cache/out.txt", "a plain word is kept");
        assert_eq!(
            path("/usr/lib/python3.11/os.py"),
            "/usr/lib/python3.11/os.py",
            "not under a temp root"
        );
        assert_eq!(path("/lib/x86_64-linux-gnu/libc.so.6"), "/lib/x86_64-linux-gnu/libc.so.6");
    }

    #[test]
    fn prefixes_are_parent_directories_except_where_too_broad() {
        assert_eq!(prefix("/etc/hostname"), "/etc/");
        assert_eq!(prefix("/tmp/tmp.Xk3p9Q/out.txt"), "/tmp/<random>/");
        assert_eq!(prefix("/dev/null"), "/dev/null");
        assert_eq!(prefix("/proc/77/status"), "/proc/<n>/status");
        assert_eq!(prefix("/sys/fs/cgroup/cpu.max"), "/sys/fs/cgroup/cpu.max");
        assert_eq!(prefix("/vmlinuz"), "/vmlinuz");
        assert_eq!(prefix("relative"), "relative");
        assert_eq!(prefix("dir/file"), "dir/");
    }

    #[test]
    fn under_matches_generalised_paths() {
        assert!(under("/tmp/tmp.Zz9x8Y/other.txt", "/tmp/<random>/"));
        assert!(under("/etc/passwd", "/etc/"));
        assert!(!under("/etcetera/x", "/etc/"));
        assert!(under("/dev/null", "/dev/null"));
        assert!(!under("/dev/sda", "/dev/null"));
        assert!(!under("/etc/x", "/etc/hostname"));
    }

    #[test]
    fn only_known_placeholders_are_accepted() {
        assert_eq!(unknown_placeholder("/tmp/<random>/<n>"), None);
        assert_eq!(unknown_placeholder("/tmp/<rand>/x"), Some("<rand>"));
        assert_eq!(unknown_placeholder("/plain"), None);
    }
}
