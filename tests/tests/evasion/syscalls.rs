//! Evasion 3, Syscall identity: a 32-bit syscall made through `int 0x80` is read with the 32-bit
//! table (its `open` is not the 64-bit `fstat`), and x32 calls and numbers outside the
//! tables are identities of their own.
use super::*;

/// The benign form: an `int 0x80` getpid (some runtimes probe the 32-bit entry), and the
/// 64-bit `fstat` (number 5, the number of the 32-bit `open`).
fn benign(dir: &Path) -> Vec<String> {
    vec![
        "int80:20".into(),
        "fstat".into(),
        "exec:/bin/true".into(),
        format!("write:{}", dir.join("out.txt").display()),
    ]
}

#[test]
fn a_32_bit_open_is_not_taken_for_the_64_bit_call_of_its_number() {
    skip_unless_root!();
    both(|mode| {
        let mut lab = Lab::new("shadow");
        lab.teach(benign);
        let learned = paddock_tests::entries(&lab.daemon.baseline("shadow"), "syscalls");
        assert!(learned.contains(&"ia32:getpid".to_owned()), "{learned:?}");
        assert!(learned.contains(&"fstat".to_owned()), "the 64-bit fstat is learned: {learned:?}");
        let dir = work();
        let mut steps = benign(dir.path());
        steps.push("int80-open:/etc/hostname".into());
        let stray = lab.stray(mode, &steps);
        let verdict = stray.verdict("syscall");
        assert_eq!(verdict["subject"], "ia32:open", "{verdict}");
        stray.assert_outcome(mode);
        if mode == Mode::Enforce {
            let killed = of_kind(&stray.events, "syscall", |e| e["name"] == "ia32:open");
            assert_eq!(killed[0]["action"], "killed", "{}", dump(&stray.events));
        }
    });
}

#[test]
fn x32_calls_and_numbers_outside_the_tables_are_their_own_identities() {
    skip_unless_root!();
    for (trick, identity) in [("x32:39", "x32"), ("raw-syscall:1000", "out_of_table")] {
        both(|mode| {
            let mut lab = Lab::new("limited-write");
            lab.teach(benign);
            let dir = work();
            let mut steps = benign(dir.path());
            steps.push(trick.into());
            let stray = lab.stray(mode, &steps);
            assert_eq!(stray.verdict("syscall")["subject"], identity);
            stray.assert_outcome(mode);
        });
    }
}
