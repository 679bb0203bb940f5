//! Path generalisation: the rules that keep a baseline from drowning in per-run noise.
//!
//! The component rules (`<n>`, `<uuid>`, `<hex>`, `<random>`) are those of
//! `agent_common::shape`, the one copy the kernel uses too, so that an executable or unix
//! socket the daemon would allow is exactly what the kernel allows. The same function is
//! applied to what is learned and to what is checked, so a baseline entry matches a path
//! when the path generalises to it.
//!
//! Executables keep their own file name: `/tmp/tmp.Xk3p9Q/tool` is `/tmp/<random>/tool`,
//! but `/tmp/payload1` stays as it is, so a stray cannot make up a binary's name to fit
//! a pattern.
//!
//! File paths are normalised lexically first (`.`, `..` and repeated `/`), so a path
//! that climbs out of a learned directory (`/tmp/tmp.Xk3p9Q/../../etc/x`) is judged where
//! it lands (`/etc/x`).
//!
//! File access is kept as prefixes: the generalised parent directory with a trailing `/`
//! (`/etc/hostname` -> `/etc/`), except where a directory would say too much: files at the
//! root and anything under `/dev`, `/proc` and `/sys` are kept whole (`/dev/null`, not `/dev/`).
use agent_common::shape::{ComponentShape, Rules, under_temp};

/// The placeholders generalisation produces; a baseline file may use no others.
pub const PLACEHOLDERS: [&str; 4] = ["<n>", "<uuid>", "<hex>", "<random>"];

const WHOLE_PATH_ROOTS: [&str; 3] = ["/dev/", "/proc/", "/sys/"];

fn generalise(path: &str, rules: Rules) -> String {
    let temp = under_temp(path.as_bytes());
    let components: Vec<&str> = path.split('/').collect();
    let last = components.len() - 1;
    let mut out = String::with_capacity(path.len());
    for (i, component) in components.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        let mut shape = ComponentShape::new();
        component.bytes().for_each(|b| shape.push(b));
        let random = temp && (rules == Rules::Files || i != last);
        match shape.finish(random).placeholder() {
            // SAFETY of the unwrap: placeholders are ASCII.
            Some(placeholder) => out.push_str(std::str::from_utf8(placeholder).unwrap_or("")),
            None => out.push_str(component),
        }
    }
    out
}

/// The generalised form of a file or unix-socket path.
pub fn path(path: &str) -> String {
    generalise(path, Rules::Files)
}

/// The generalised form of an executable's path.
pub fn exec(path: &str) -> String {
    generalise(path, Rules::Execs)
}

/// `path` with `.` and `..` resolved and repeated `/` collapsed, lexically (symbolic links
/// are the kernel's business: opened files arrive resolved). `..` at the root stays at the
/// root. A relative path stays relative.
pub fn normalise(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if absolute { format!("/{joined}") } else { joined }
}

/// The prefix a file access is learned as (see the module docs).
pub fn prefix(file: &str) -> String {
    let general = path(&normalise(file));
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
    let general = path(&normalise(file));
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
    use agent_common::{event::PATH_LEN, hash::fnv1a, shape::generalised_hash};

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
        assert_eq!(path("/tmp/.tmpAbCdEf/report.json"), "/tmp/<random>/report.json");
        assert_eq!(path("/tmp/tmp.XkqpZQ"), "/tmp/<random>");
        assert_eq!(path("/tmp/tmpfiles"), "/tmp/tmpfiles", "too short after tmp");
        assert_eq!(path("/var/tmp/job-8231/x"), "/var/tmp/<random>/x");
        assert_eq!(path("/tmp/cache/out.txt"), "/tmp/cache/out.txt", "a plain word is kept");
        assert_eq!(path("/usr/lib/python3.11/os.py"), "/usr/lib/python3.11/os.py");
        assert_eq!(path("/lib/x86_64-linux-gnu/libc.so.6"), "/lib/x86_64-linux-gnu/libc.so.6");
    }

    #[test]
    fn an_executable_keeps_its_own_name() {
        assert_eq!(exec("/tmp/tmp.Xk3p9Q/tool"), "/tmp/<random>/tool");
        assert_eq!(exec("/tmp/payload1"), "/tmp/payload1", "a name a stray could choose");
        assert_eq!(exec("/tmp/job-8231/run-42x9z"), "/tmp/<random>/run-42x9z");
        assert_eq!(exec("/opt/app/1234/bin/tool"), "/opt/app/<n>/bin/tool");
    }

    #[test]
    fn paths_are_normalised_lexically() {
        assert_eq!(normalise("/tmp/tmp.Xk3p9Q/../../etc/passwd"), "/etc/passwd");
        assert_eq!(normalise("/a//b/./c/"), "/a/b/c");
        assert_eq!(normalise("/../../x"), "/x", ".. stops at the root");
        assert_eq!(normalise("a/../../b"), "../b");
        assert_eq!(normalise("/"), "/");
        assert!(!under("/tmp/tmp.Xk3p9Q/../../etc/passwd", "/tmp/<random>/"));
        assert!(under("/tmp/tmp.Xk3p9Q/../../etc/passwd", "/etc/"));
        assert_eq!(prefix("/tmp/tmp.Ab12cd/./out//x.txt"), "/tmp/<random>/out/");
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

    fn buf(path: &str) -> [u8; PATH_LEN] {
        let mut b = [0u8; PATH_LEN];
        b[..path.len()].copy_from_slice(path.as_bytes());
        b
    }

    /// The kernel matches executables and unix sockets by hashing the generalised form as
    /// it reads the path; it must agree with the daemon's strings on every input.
    #[test]
    fn the_kernel_hash_agrees_with_the_daemon_on_every_shape() {
        let components = [
            "",
            "usr",
            "bin",
            "tmp",
            "var",
            "dev",
            "shm",
            "1234",
            "0",
            "tmp.Xk3p9Q",
            ".tmpAbCdEf",
            "tmpfiles",
            "job-8231",
            "payload1",
            "deadbeef",
            "3f2a9c8b7e6d5f4a",
            "abcdefabcdef",
            "0b6c2a9e-1d2f-4e3a-9b8c-7d6e5f4a3b2c",
            "0b6c2a9e-1d2f-4e3a-9b8c-7d6e5f4a3b2",
            "été42x",
            "tmp-",
            "..",
            ".",
            "a b",
            "x\u{1}y7zzz",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let n = 1 + next() % 6;
            let mut p = String::new();
            if next() % 4 != 0 {
                p.push('/');
            }
            for i in 0..n {
                if i > 0 {
                    p.push('/');
                }
                p.push_str(components[(next() % components.len() as u64) as usize]);
            }
            if p.len() >= PATH_LEN {
                continue;
            }
            for (rules, daemon) in [(Rules::Files, path(&p)), (Rules::Execs, exec(&p))] {
                assert_eq!(
                    generalised_hash(&buf(&p), rules),
                    fnv1a(daemon.as_bytes()),
                    "{p:?} as {rules:?} generalises to {daemon:?}"
                );
            }
        }
    }
}
