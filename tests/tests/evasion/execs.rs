//! Evasion 7, Exec patterns: a generalised entry (`/tmp/<random>/tool`) is matched in the kernel,
//! not a reason to stop killing in the kernel for the whole phase; `<random>` never matches
//! an executable's own name; an exec through a descriptor is named by the file behind it
//! and never generalised.
use super::*;

/// A copy of /bin/true named `tool` in `dir`.
fn tool(dir: &Path) -> PathBuf {
    let tool = dir.join("tool");
    std::fs::copy("/bin/true", &tool).unwrap();
    tool
}

/// A script in `dir` named `name` that writes `marker` when it runs.
fn script(dir: &Path, name: &str, marker: &Path) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\necho ran > {}\n", marker.display())).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

/// The benign form: a tool built into a fresh temporary directory, then run; a binary run
/// through a descriptor; a memfd used as scratch.
fn benign(dir: &Path) -> Vec<String> {
    vec![
        format!("exec:{}", tool(dir).display()),
        "exec-fd:/bin/true".into(),
        "exec:/bin/true".into(),
        "memfd".into(),
    ]
}

#[test]
fn a_pattern_in_the_baseline_does_not_switch_off_kernel_exec_kills() {
    skip_unless_root!();
    both(|mode| {
        let mut lab = Lab::new("shadow");
        lab.teach(benign);
        let execs = paddock_tests::entries(&lab.daemon.baseline("shadow"), "execs");
        assert!(execs.contains(&"/tmp/<random>/tool".to_owned()), "{execs:?}");
        let dir = work();
        let marker = dir.path().join("marker");
        // The same directory pattern, another name: not the learned tool.
        let evil = script(dir.path(), "evil", &marker);
        let mut steps = benign(dir.path());
        steps.push(format!("exec:{}", evil.display()));
        let stray = lab.stray(mode, &steps);
        assert_eq!(stray.verdict("exec")["subject"], evil.to_str().unwrap());
        stray.assert_outcome(mode);
        match mode {
            Mode::Enforce => {
                let exec = of_kind(&stray.events, "exec", |e| e["path"] == evil.to_str().unwrap());
                assert_eq!(exec[0]["action"], "killed", "by the kernel: {}", dump(&stray.events));
                assert!(!marker.exists(), "the new image never ran");
            }
            Mode::Flag => assert!(marker.exists()),
        }
    });
}

#[test]
fn random_never_matches_an_executables_own_name() {
    skip_unless_root!();
    let mut lab = Lab::new("autonomous");
    // Learned: an executable at `/tmp/<random>` itself would be a name the stray chooses.
    lab.teach(|d| {
        let mut steps = benign(d);
        steps.push(format!("exec:{}", tool(d).display()));
        steps
    });
    let dir = work();
    let marker = dir.path().join("marker");
    // `/tmp/payload1`-like: letters and digits, what `<random>` matches for files.
    let name = format!("payload{}", paddock_tests::unique() + 1);
    let payload = script(Path::new("/tmp"), &name, &marker);
    let mut steps = benign(dir.path());
    steps.push(format!("exec:{}", payload.display()));
    let stray = lab.stray(Mode::Enforce, &steps);
    stray.assert_outcome(Mode::Enforce);
    assert!(!marker.exists());
    let _ = std::fs::remove_file(payload);
}

#[test]
fn an_exec_through_a_descriptor_is_named_by_its_file() {
    skip_unless_root!();
    both(|mode| {
        let mut lab = Lab::new("limited-write");
        lab.teach(benign);
        let execs = paddock_tests::entries(&lab.daemon.baseline("limited-write"), "execs");
        assert!(execs.contains(&"/usr/bin/true".to_owned()), "named by the file: {execs:?}");
        assert!(!execs.iter().any(|e| e.contains("/fd/")), "never as /dev/fd/N: {execs:?}");
        let dir = work();
        let mut steps = benign(dir.path());
        // The same bytes, run from a memfd: a file with no name.
        steps.push("exec-memfd:/bin/true".into());
        let stray = lab.stray(mode, &steps);
        let verdict = stray.verdict("exec");
        assert_eq!(verdict["subject"], "/memfd:payload", "{verdict}");
        stray.assert_outcome(mode);
        if mode == Mode::Enforce {
            let exec = of_kind(&stray.events, "exec", |e| e["path"] == "/memfd:payload");
            assert_eq!(exec[0]["action"], "killed", "{}", dump(&stray.events));
            assert_eq!(exec[0]["via_fd"], true);
        }
    });
}
