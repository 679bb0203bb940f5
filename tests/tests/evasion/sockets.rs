//! 8 and 9. Socket families and protocols: raw, packet and ICMP sockets are judged by their
//! kind; unix sockets outside the investigation by path (refused in the kernel before the
//! peer is reached); MPTCP and IPv4-mapped IPv6 destinations are judged the same way in the
//! kernel and the daemon.
use super::*;
/// A unix socket listener in a directory of its own.
struct Unix {
    listener: paddock_tests::UnixListener,
    _dir: tempfile::TempDir,
}

impl Unix {
    fn start(name: &str) -> Unix {
        let dir = work();
        let listener = paddock_tests::UnixListener::at(dir.path().join(name));
        Unix { listener, _dir: dir }
    }
}

impl std::ops::Deref for Unix {
    type Target = paddock_tests::UnixListener;
    fn deref(&self) -> &Self::Target {
        &self.listener
    }
}

fn benign(dir: &Path, port: u16, unix: &Path) -> Vec<String> {
    vec![
        "exec:/bin/true".into(),
        format!("write:{}", dir.join("out.txt").display()),
        format!("connect:127.0.0.1:{port}"),
        format!("unix-connect:{}", unix.display()),
    ]
}

#[test]
fn raw_and_packet_sockets_are_judged_by_their_kind() {
    skip_unless_root!();
    for (trick, kind) in [("raw-socket", "inet raw icmp"), ("packet-socket", "packet raw 768")] {
        both(|mode| {
            let (listener, unix) = (paddock_tests::Listener::start(), Unix::start("ok.sock"));
            let mut lab = Lab::new("read-only");
            lab.teach(|d| benign(d, listener.port, &unix.path));
            let dir = work();
            let mut steps = benign(dir.path(), listener.port, &unix.path);
            steps.push(trick.into());
            let stray = lab.stray(mode, &steps);
            assert_eq!(stray.verdict("socket")["subject"], kind);
            stray.assert_outcome(mode);
            let made = of_kind(&stray.events, "socket", |e| e["socket"] == kind);
            match (mode, trick) {
                // An IP socket is refused before it exists (and the process, doomed, dies at
                // its next syscall: the line it would print about it).
                (Mode::Enforce, "raw-socket") => {
                    assert_eq!(made[0]["action"], "denied", "{}", dump(&stray.events));
                    assert!(!stray.stdout().contains("raw-socket -> 3"), "{}", stray.stdout());
                }
                // Other families have no creation hook: the process dies on its way back.
                (Mode::Enforce, _) => assert_eq!(made[0]["action"], "killed"),
                (Mode::Flag, _) => {
                    let line = format!("{trick} -> ");
                    assert!(stray.stdout().contains(&line), "{}", stray.stdout());
                    assert!(!stray.stdout().contains(&format!("{line}-1")), "{}", stray.stdout());
                }
            }
        });
    }
}

#[test]
fn a_unix_socket_outside_the_baseline_is_refused_before_it_is_reached() {
    skip_unless_root!();
    both(|mode| {
        let listener = paddock_tests::Listener::start();
        let (ok, runtime) = (Unix::start("ok.sock"), Unix::start("runtime.sock"));
        let mut lab = Lab::new("autonomous");
        lab.teach(|d| benign(d, listener.port, &ok.path));
        let unix = paddock_tests::entries(&lab.daemon.baseline("autonomous"), "unix");
        assert_eq!(unix, ["/tmp/<random>/ok.sock"], "learned by path, generalised");
        let dir = work();
        let mut steps = benign(dir.path(), listener.port, &ok.path);
        // A container runtime's socket, a root helper's: outside the investigation.
        steps.push(format!("unix-connect:{}", runtime.path.display()));
        let stray = lab.stray(mode, &steps);
        assert_eq!(stray.verdict("unix")["subject"], runtime.path.to_str().unwrap());
        stray.assert_outcome(mode);
        let reached = runtime.accepted();
        match mode {
            Mode::Enforce => {
                assert_eq!(reached, 0, "the runtime's socket was reached");
                let refused =
                    of_kind(&stray.events, "unix", |e| e["path"] == runtime.path.to_str().unwrap());
                assert_eq!(refused[0]["action"], "denied");
            }
            Mode::Flag => assert_eq!(reached, 1),
        }
        assert!(ok.accepted() >= 4, "the allowed socket was reached");
    });
}

#[test]
fn mptcp_and_ipv4_mapped_destinations_are_judged_as_the_tcp_ipv4_ones() {
    skip_unless_root!();
    both(|mode| {
        let (allowed, forbidden) =
            (paddock_tests::Listener::start(), paddock_tests::Listener::start());
        let unix = Unix::start("ok.sock");
        let mut lab = Lab::new("limited-write");
        lab.teach(|d| benign(d, allowed.port, &unix.path));
        let dir = work();
        let mut steps = benign(dir.path(), allowed.port, &unix.path);
        // The same allowed destination, reached two other ways: nothing to say.
        steps.push(format!("mptcp-connect:127.0.0.1:{}", allowed.port));
        steps.push(format!("connect-mapped:{}", allowed.port));
        // A forbidden one over MPTCP (before, MPTCP was not judged at all in flag mode).
        steps.push(format!("mptcp-connect:127.0.0.1:{}", forbidden.port));
        let stray = lab.stray(mode, &steps);
        let egress = of_kind(&stray.events, "verdict", |v| v["deviation"] == "egress");
        assert_eq!(egress.len(), 1, "only the forbidden port: {}", dump(&stray.events));
        assert_eq!(egress[0]["subject"], format!("tcp 127.0.0.1 port {}", forbidden.port));
        stray.assert_outcome(mode);
        // The kernel's hook sees an MPTCP connect as its first TCP subflow's: tcp, as judged.
        let to_allowed = of_kind(&stray.events, "connect", |e| e["port"] == allowed.port);
        assert!(to_allowed.len() >= 3, "plain, MPTCP and mapped: {}", dump(&stray.events));
        assert!(to_allowed.iter().all(|e| e["protocol"] == "tcp" && e.get("action").is_none()));
        if mode == Mode::Enforce {
            assert_eq!(forbidden.accepted(), 0);
        }
    });
}
