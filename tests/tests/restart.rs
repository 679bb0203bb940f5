//! paddock across restarts, crashes and upgrades: the kernel keeps tracking and enforcing
//! while no daemon runs, a new daemon adopts what the last one left (or replaces it, its own
//! programs attached before the old ones go), and `paddock run` clients rejoin it. Each
//! attempt to slip through is a stray made while no daemon, or two, run; none may pass.
//! Real kernel, real daemons; needs root.
#[path = "restart/window.rs"]
mod window;

use std::{
    ffi::CString,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Child, Output, Stdio},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use agent_daemon::config::{Config, DaemonConfig, OnStop};
use paddock_tests::{
    Daemon, Listener, actor_bin, config, dump, eventually, of_kind, poll, skip_unless_root,
    wait_until,
};
use serde_json::Value;

const PHASE: &str = "limited-write";
const EXIT_KILLED: i32 = 99;

fn actor() -> String {
    actor_bin().to_str().expect("utf-8").to_owned()
}

fn mkfifo(path: &Path) {
    let name = CString::new(path.to_str().expect("utf-8")).expect("no NUL");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}

/// Open `fifo` for writing (the reader waiting on it goes on) and close it.
fn release(fifo: &Path) {
    use std::os::unix::fs::OpenOptionsExt as _;
    // Non-blocking, so that a reader that never came fails the test instead of hanging it.
    let open = || std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(fifo);
    let mut f = eventually(
        Duration::from_secs(10),
        Duration::from_millis(10),
        || match open() {
            // ENXIO: no reader yet.
            Err(e) if e.raw_os_error() != Some(libc::ENXIO) => {
                panic!("cannot open {}: {e}", fifo.display())
            }
            result => result,
        },
        |e| format!("nobody reads {} ({e})", fifo.display()),
    );
    let _ = f.write_all(b"go\n");
}

/// The shell line of every investigation here: wait on a FIFO, then do `then`.
fn waiting(fifo: &Path, then: &str) -> String {
    format!("read x < {}; {then}", fifo.display())
}

/// A daemon whose phase has learned "wait on a FIFO in `work`, then the actor connects to
/// `allowed`", and enforces it: anything else is a stray.
fn enforcing(config: Config, work: &Path, allowed: &Listener) -> Daemon {
    let daemon = Daemon::start_with(config);
    let fifo = work.join("fifo-learn");
    mkfifo(&fifo);
    let connect = format!("exec {} connect:127.0.0.1:{}", actor(), allowed.port);
    let learn = daemon
        .cmd(&["run", "--investigation-id", "learn", "--phase", PHASE, "--", "sh", "-c"])
        .arg(waiting(&fifo, &connect))
        .spawn()
        .expect("paddock run");
    release(&fifo);
    let out = learn.wait_with_output().expect("wait");
    assert!(out.status.success(), "the learning run failed: {out:?}");
    assert_eq!(allowed.accepted(), 1, "the learning run connected");
    daemon.set_mode(PHASE, "enforce");
    daemon
}

/// `paddock run` of `sh -c LINE` as investigation `id`, left running.
fn start(daemon: &Daemon, id: &str, line: &str) -> Child {
    daemon
        .cmd(&["run", "--investigation-id", id, "--phase", PHASE, "--", "sh", "-c", line])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("paddock run")
}

/// How long a run may take to be running, its command in its cgroup.
const RUNNING: Duration = Duration::from_secs(20);

fn finish(child: Child, within: Duration) -> Output {
    finish_or(child, within, String::new)
}

/// [`finish`], with `context` (a daemon's log) in the failure.
fn finish_or(child: Child, within: Duration, context: impl Fn() -> String) -> Output {
    let mut child = child;
    if poll(within, Duration::from_millis(20), || child.try_wait().expect("try_wait").is_some()) {
        return child.wait_with_output().expect("output");
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    panic!("paddock run did not finish within {within:?}: {out:?}\n{}", context());
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What this daemon left pinned, by name.
fn pinned(daemon: &Daemon) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(&daemon.pin_dir)
        .map(|d| {
            d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_killed_daemon_leaves_the_kernel_enforcing_and_the_next_one_adopts_and_kills() {
    skip_unless_root!();
    let work = tempfile::tempdir().unwrap();
    let (allowed, forbidden) = (Listener::start(), Listener::start());
    let mut daemon = enforcing(config(), work.path(), &allowed);
    let fifo = |name: &str| {
        let path = work.path().join(name);
        mkfifo(&path);
        path
    };
    let (fa, fb, fc) = (fifo("fifo-a"), fifo("fifo-b"), fifo("fifo-c"));
    let (mark_a, mark_c) = (work.path().join("a-ran"), work.path().join("c-ran"));
    let stray_exec = |mark: &Path| format!("exec /usr/bin/touch {}", mark.display());
    let a = start(&daemon, "stray-exec", &waiting(&fa, &stray_exec(&mark_a)));
    let b = start(
        &daemon,
        "stray-connect",
        &waiting(&fb, &format!("exec {} connect:127.0.0.1:{}", actor(), forbidden.port)),
    );
    let c = start(&daemon, "later", &waiting(&fc, &stray_exec(&mark_c)));
    daemon.wait_running(&["stray-exec", "stray-connect", "later"], RUNNING);

    daemon.kill9();
    assert!(
        pinned(&daemon).iter().any(|n| n.starts_with("links_")),
        "the programs stay pinned: {:?}",
        pinned(&daemon)
    );
    // No daemon runs: both strays meet the kernel alone.
    release(&fa);
    release(&fb);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!mark_a.exists(), "the exec of touch ran while no daemon ran");
    assert_eq!(forbidden.accepted(), 0, "the connect got through");

    let daemon = daemon.restart();
    let log = daemon.log();
    assert!(log.contains("adopted the running programs and their maps"), "{log}");
    // Their clients rejoin the new daemon and hear why.
    let a = finish(a, Duration::from_secs(20));
    assert_eq!(a.status.code(), Some(EXIT_KILLED), "{}", stderr(&a));
    assert!(stderr(&a).contains("lost the daemon"), "{}", stderr(&a));
    assert!(stderr(&a).contains("exec of /usr/bin/touch"), "{}", stderr(&a));
    let b = finish(b, Duration::from_secs(20));
    assert_eq!(b.status.code(), Some(EXIT_KILLED), "{}", stderr(&b));
    assert!(stderr(&b).contains(&format!("127.0.0.1 port {}", forbidden.port)), "{}", stderr(&b));

    // The third was adopted, running; its next stray kills it, and this daemon says so.
    daemon.wait_running(&["later"], RUNNING);
    release(&fc);
    let c = finish(c, Duration::from_secs(20));
    assert_eq!(c.status.code(), Some(EXIT_KILLED), "{}", stderr(&c));
    assert!(stderr(&c).contains("exec of /usr/bin/touch"), "{}", stderr(&c));
    assert!(!mark_c.exists());
    let events = daemon.events_of("later", Duration::from_secs(10));
    assert_eq!(of_kind(&events, "resumed", |_| true).len(), 1, "{}", dump(&events));
    let killed = of_kind(&events, "verdict", |v| v["outcome"] == "killed");
    assert_eq!(killed.len(), 1, "{}", dump(&events));
    // One audit run each, from start to kill, across the two daemons. The store writes
    // behind the pipeline, so the run's end may land a moment after the client heard it.
    let list = || -> Value {
        let args = ["audit", "list", "--id", "stray-connect", "--format", "json"];
        serde_json::from_str(&daemon.ok(&args)).unwrap()
    };
    poll(Duration::from_secs(10), Duration::from_millis(100), || list()[0]["outcome"] == "killed");
    let runs = list();
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    assert_eq!(runs[0]["outcome"], "killed", "{runs}");
}

#[test]
fn detach_on_stop_and_cleanup_remove_what_is_pinned() {
    skip_unless_root!();
    // Kept (the default): pinned after a stop until --cleanup, which is refused while a
    // daemon runs.
    let mut daemon = Daemon::start();
    let refused = daemon.cleanup().unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("another paddock daemon uses pin directory"),
        "{refused:?}"
    );
    let sleeper = start(&daemon, "left-running", "sleep 30");
    daemon.wait_running(&["left-running"], RUNNING);
    daemon.stop();
    assert!(pinned(&daemon).iter().any(|n| n.starts_with("links_")), "{:?}", pinned(&daemon));
    let out = daemon.cleanup().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("unpinned") && text.contains("forgot investigation left-running"),
        "{text}"
    );
    assert!(pinned(&daemon).is_empty(), "{:?}", pinned(&daemon));
    let mut sleeper = sleeper;
    let _ = sleeper.kill();
    let _ = sleeper.wait();

    // Detach: nothing stays pinned, and the investigation ends with the daemon.
    let mut daemon = Daemon::start_with(Config {
        daemon: DaemonConfig { on_stop: OnStop::Detach, ..config().daemon },
        ..config()
    });
    let sleeper = start(&daemon, "ended-with-daemon", "sleep 30");
    daemon.wait_running(&["ended-with-daemon"], RUNNING);
    daemon.stop();
    assert!(pinned(&daemon).is_empty(), "{:?}", pinned(&daemon));
    let mut sleeper = sleeper;
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

/// What the programs report while no daemon runs waits in the ring buffer for the next
/// daemon; what the buffer cannot hold is counted as lost, against the investigation, and
/// said in the log. Every open is one or the other.
#[test]
fn records_made_while_no_daemon_ran_are_read_by_the_next_or_counted_lost() {
    skip_unless_root!();
    const OPENS: u64 = 5000;
    let mut config = config();
    config.kernel.ring_buffer_bytes = 64 * 1024;
    config.limits.records_per_second = 0;
    let mut daemon = Daemon::start_with(config);
    let work = tempfile::tempdir().unwrap();
    let fifo = work.path().join("fifo");
    mkfifo(&fifo);
    let dir = work.path().join("files");
    std::fs::create_dir(&dir).unwrap();
    let flood = format!("{} touch-many:{}:{OPENS}", actor(), dir.display());
    let client = daemon
        .cmd(&["run", "--investigation-id", "unread", "--phase", "autonomous", "--"])
        .args(["sh", "-c", &waiting(&fifo, &flood)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("paddock run");
    daemon.wait_running(&["unread"], RUNNING);

    daemon.kill9();
    release(&fifo);
    // The flood runs its course with no daemon reading.
    wait_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        || std::fs::read_dir(&dir).unwrap().count() >= OPENS as usize,
        || "the flood did not finish".into(),
    );

    let daemon = daemon.restart();
    let out = finish_or(client, Duration::from_secs(30), || daemon.log());
    assert!(out.status.success(), "{}", stderr(&out));
    let events = daemon.events_of("unread", Duration::from_secs(20));
    let status = daemon.status();
    let lost = status["lost_records"]["open"].as_u64().unwrap_or(0);
    let prefix = dir.to_str().unwrap();
    let delivered =
        of_kind(&events, "open", |e| e["path"].as_str().is_some_and(|p| p.starts_with(prefix)))
            .len() as u64;
    assert!(lost > 0, "{OPENS} opens fit a 64 KiB buffer? {status}");
    assert!(delivered > 0, "nothing the buffer kept was read by the next daemon");
    assert!(
        delivered + lost >= OPENS,
        "every open was delivered or counted as lost: {delivered} delivered, {lost} lost"
    );
    let ended = of_kind(&events, "ended", |_| true);
    assert_eq!(ended.len(), 1, "{}", dump(&events));
    assert!(ended[0]["lost_records"].as_u64().unwrap_or(0) >= lost, "{}", ended[0]);
    assert!(daemon.log().contains("records the kernel could not keep while no daemon read them"));
}
