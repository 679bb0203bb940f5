//! Evasion 6, io_uring: operations submitted through io_uring are learned per phase as their own
//! behaviour; an operation outside the baseline is a deviation (the kernel kills the
//! process at submission in `enforce`), and io_uring opens are judged like other opens.
use super::*;

/// The benign form: an event loop that reads a file through io_uring.
fn benign(dir: &Path) -> Vec<String> {
    let data = dir.join("data");
    std::fs::write(&data, "data").unwrap();
    vec!["exec:/bin/true".into(), format!("uring-read:{}", data.display())]
}

#[test]
fn an_io_uring_operation_outside_the_baseline_is_judged() {
    skip_unless_root!();
    both(|mode| {
        let mut lab = Lab::new("read-only");
        lab.teach(benign);
        let learned = paddock_tests::entries(&lab.daemon.baseline("read-only"), "io_uring");
        assert_eq!(learned, ["read"], "the event loop's reads are learned");
        let dir = work();
        let mut steps = benign(dir.path());
        // Open through io_uring a file outside what the phase reads.
        let hidden =
            Path::new("/var/tmp").join(format!("paddock-uring-{}", paddock_tests::unique()));
        std::fs::write(&hidden, "x").unwrap();
        steps.push(format!("uring-open:{}", hidden.display()));
        let stray = lab.stray(mode, &steps);
        assert_eq!(stray.verdict("io_uring")["subject"], "openat");
        stray.assert_outcome(mode);
        if mode == Mode::Flag {
            // The open itself is reported with its path, and judged as a read.
            let opens = of_kind(&stray.events, "open", |e| e["via"] == "io_uring");
            assert_eq!(opens[0]["path"], hidden.to_str().unwrap(), "{}", dump(&stray.events));
            assert_eq!(stray.verdict("file_read")["subject"], hidden.to_str().unwrap());
        } else {
            let killed = of_kind(&stray.events, "io_uring", |e| e["name"] == "openat");
            assert_eq!(killed[0]["action"], "killed", "{}", dump(&stray.events));
        }
        let _ = std::fs::remove_file(hidden);
    });
}
