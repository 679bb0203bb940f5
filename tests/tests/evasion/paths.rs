//! Evasion 5, Paths: what is judged is where the kernel opened, not the string the process passed
//! or its memory read again; `..` cannot climb out of a learned prefix; path operations that
//! change the file system are judged as writes; a path that cannot be read is never a pass.
use super::*;

/// The benign form: a report written under a fresh temporary directory, read back.
fn benign(dir: &Path) -> Vec<String> {
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    vec![
        "exec:/bin/true".into(),
        format!("write:{}", out.join("report.txt").display()),
        format!("read:{}", out.join("report.txt").display()),
    ]
}

#[test]
fn dot_dot_does_not_climb_out_of_a_learned_prefix() {
    skip_unless_root!();
    both(|mode| {
        let mut lab = Lab::new("limited-write");
        lab.teach(benign);
        let dir = work();
        let mut steps = benign(dir.path());
        // `<tmp>/.tmpXXXXXX/out/../../climbed-N.txt` is `/tmp/climbed-N.txt`.
        let name = format!("climbed-{}-{}.txt", std::process::id(), paddock_tests::unique());
        steps.push(format!("write:{}/out/../../{name}", dir.path().display()));
        let stray = lab.stray(mode, &steps);
        let landed = dir.path().parent().unwrap().join(&name);
        let verdict = stray.verdict("file_write");
        assert_eq!(
            verdict["subject"],
            landed.to_str().unwrap(),
            "judged where it landed: {verdict}"
        );
        stray.assert_outcome(mode);
        let _ = std::fs::remove_file(landed);
    });
}

/// Another thread keeps switching the path buffer between an allowed file and a secret one
/// while the process opens it again and again: whichever the kernel opened is what is
/// reported, so every open of the secret is seen.
#[test]
fn switching_the_path_buffer_under_the_open_fools_nothing() {
    skip_unless_root!();
    both(|mode| {
        let mut lab = Lab::new("read-only");
        // The allowed file: `/tmp/.tmpXXXXXX/data`, read while learning (`/tmp/<random>/`).
        let allowed = work();
        let a = allowed.path().join("data");
        std::fs::write(&a, "allowed").unwrap();
        // The secret: a path of the same length under /var/tmp, which the phase never reads.
        let width = a.to_str().unwrap().len() - "/var/tmp/s".len();
        let name = format!("s{:0width$}", std::process::id() * 100 + paddock_tests::unique());
        let secret_file = Path::new("/var/tmp").join(name);
        std::fs::write(&secret_file, "secret").unwrap();
        assert_eq!(secret_file.to_str().unwrap().len(), a.to_str().unwrap().len());
        // Learned: the same race with the allowed file on both sides, so that the race's
        // own syscalls (a thread, its stack and its exit) are usual and the secret is the
        // only thing new.
        let race = format!("open-race:{}:{}:3000", a.display(), a.display());
        lab.teach(|_| vec!["exec:/bin/true".into(), race.clone()]);
        let steps = vec![
            "exec:/bin/true".to_owned(),
            format!("open-race:{}:{}:3000", a.display(), secret_file.display()),
        ];
        let stray = lab.stray(mode, &steps);
        let verdict = stray.verdict("file_read");
        assert_eq!(verdict["subject"], secret_file.to_str().unwrap(), "{verdict}");
        stray.assert_outcome(mode);
        if mode == Mode::Flag {
            // Every open that got the secret was reported as the secret (once: reads are
            // reported once per path).
            let got: u32 =
                stray.stdout().split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
            assert!(got > 0, "the race never opened the secret: {}", stray.stdout());
            let opens =
                of_kind(&stray.events, "open", |e| e["path"] == secret_file.to_str().unwrap());
            assert_eq!(opens.len(), 1, "{}", dump(&stray.events));
        }
        let _ = std::fs::remove_file(&secret_file);
    });
}

#[test]
fn path_operations_are_judged_as_writes_to_their_paths() {
    skip_unless_root!();
    both(|mode| {
        let mut lab = Lab::new("autonomous");
        // The benign form: a rename and an unlink inside the work directory.
        lab.teach(|d| {
            let mut steps = benign(d);
            let out = d.join("out");
            steps.push(format!(
                "rename:{}:{}",
                out.join("report.txt").display(),
                out.join("final.txt").display()
            ));
            steps.push(format!("unlink:{}", out.join("final.txt").display()));
            steps
        });
        let dir = work();
        let elsewhere = work();
        let mut steps = benign(dir.path());
        let out = dir.path().join("out");
        // Outside the learned prefixes (`/tmp/<random>/out/`): the rename's new name.
        let moved = elsewhere.path().join("moved.txt");
        steps.push(format!("rename:{}:{}", out.join("report.txt").display(), moved.display()));
        let stray = lab.stray(mode, &steps);
        let verdict = stray.verdict("file_write");
        assert_eq!(verdict["subject"], moved.to_str().unwrap(), "{verdict}");
        let op = of_kind(&stray.events, "file_op", |e| e["op"] == "rename");
        assert!(!op.is_empty(), "{}", dump(&stray.events));
        stray.assert_outcome(mode);
    });
}

#[test]
fn every_path_operation_names_its_paths() {
    skip_unless_root!();
    let lab = Lab::new("shadow");
    let d = work();
    let p = |name: &str| d.path().join(name).display().to_string();
    std::fs::write(p("a"), "x").unwrap();
    std::fs::write(p("t"), "x").unwrap();
    let steps = [
        format!("link:{}:{}", p("a"), p("b")),
        format!("symlink:target-text:{}", p("s")),
        format!("mkdir:{}", p("dir")),
        format!("truncate:{}", p("t")),
        format!("unlink:{}", p("b")),
        "unlink-unreadable".to_owned(),
    ];
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    let out = lab.daemon.run_actor("ops", "shadow", &steps);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events = lab.daemon.events_of("ops", WAIT);
    let op = |name: &str| of_kind(&events, "file_op", |e| e["op"] == name);
    assert_eq!(op("link")[0]["path"], p("a"));
    assert_eq!(op("link")[0]["path2"], p("b"));
    assert_eq!(op("symlink")[0]["path"], p("s"));
    assert_eq!(op("symlink")[0]["path2"], "target-text", "a symlink's target is text");
    assert_eq!(op("mkdir")[0]["path"], p("dir"));
    assert_eq!(op("truncate")[0]["path"], p("t"));
    let unlinks = op("unlink");
    assert!(unlinks.iter().any(|e| e["path"] == p("b").as_str()), "{}", dump(&events));
    assert!(unlinks.iter().any(|e| e["unreadable"] == true), "{}", dump(&events));
}

/// A path the kernel cannot read is a deviation where the phase is judged, never a pass.
#[test]
fn an_unreadable_path_is_never_a_pass() {
    skip_unless_root!();
    both(|mode| {
        let mut lab = Lab::new("read-only");
        // The benign form: unlinking a file it made.
        let with_unlink = |d: &Path| {
            let mut steps = benign(d);
            steps.push(format!("unlink:{}", d.join("out/report.txt").display()));
            steps
        };
        lab.teach(with_unlink);
        let dir = work();
        let mut steps = with_unlink(dir.path());
        steps.push("unlink-unreadable".into());
        let stray = lab.stray(mode, &steps);
        assert_eq!(stray.verdict("unreadable_path")["subject"], "unlink");
        stray.assert_outcome(mode);
    });
}
