//! Enforcement that cannot be walked around. Each test is an attack by a process that has
//! read paddock's source: a phase learns a realistic workload that includes the benign form
//! of the trick, is switched to `enforce` (or `flag`), and then the straying form runs beside
//! a background child. In `enforce` the effect must not happen where the kernel can stop it,
//! and otherwise the whole investigation dies (exit 99, the background child gone); in
//! `flag` the verdict must name the trick. Real kernel, real daemon; needs root.
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use agent_daemon::config::{Config, LimitsConfig};
use paddock_tests::{
    Daemon, actor_bin, config, dump, of_kind, process_gone, skip_unless_root, wait_until,
};
use serde_json::Value;

mod cgroups;
mod execs;
mod lost;
mod paths;
mod sockets;
mod syscalls;
mod threads;
mod uring;

const WAIT: Duration = Duration::from_secs(20);

fn actor() -> String {
    actor_bin().to_str().expect("utf-8").to_owned()
}

/// A fresh temporary directory (named as mktemp would: it generalises to `<random>`).
fn work() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// The mode the straying run meets.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Flag,
    Enforce,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Flag => "flag",
            Mode::Enforce => "enforce",
        }
    }
}

/// What a straying run left.
struct Stray {
    out: std::process::Output,
    events: Vec<Value>,
    /// The background child's pid.
    sleeper: u32,
}

impl Stray {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    fn verdicts(&self) -> Vec<&Value> {
        of_kind(&self.events, "verdict", |_| true)
    }

    /// The verdict of `kind`, or a panic listing every event.
    fn verdict(&self, kind: &str) -> &Value {
        self.verdicts()
            .into_iter()
            .find(|v| v["deviation"] == kind)
            .unwrap_or_else(|| panic!("no {kind} verdict:\n{}", dump(&self.events)))
    }

    fn ended(&self) -> &Value {
        of_kind(&self.events, "ended", |_| true)[0]
    }

    /// In `enforce`: paddock killed it (exit 99, outcome killed, the background child gone).
    /// In `flag`: it ran to its end (exit 0, outcome flagged).
    fn assert_outcome(&self, mode: Mode) {
        let err = String::from_utf8_lossy(&self.out.stderr);
        match mode {
            Mode::Enforce => {
                assert_eq!(
                    self.out.status.code(),
                    Some(99),
                    "not killed: {err}\n{}",
                    dump(&self.events)
                );
                assert_eq!(self.ended()["outcome"], "killed", "{}", dump(&self.events));
                wait_until(
                    Duration::from_secs(5),
                    Duration::from_millis(10),
                    || process_gone(self.sleeper),
                    || format!("the background child {} lives on", self.sleeper),
                );
            }
            Mode::Flag => {
                assert!(
                    self.out.status.success(),
                    "flag mode never kills: {err}\n{}",
                    dump(&self.events)
                );
                assert_eq!(self.ended()["outcome"], "flagged", "{}", dump(&self.events));
            }
        }
    }
}

/// A daemon and a phase to teach and then judge.
struct Lab {
    daemon: Daemon,
    phase: &'static str,
    runs: u32,
}

impl Lab {
    fn new(phase: &'static str) -> Lab {
        Lab::with(phase, config())
    }

    fn with(phase: &'static str, config: Config) -> Lab {
        Lab { daemon: Daemon::start_with(config), phase, runs: 0 }
    }

    /// The script every run is: a background child (which writes its pid to `pid` and
    /// sleeps `sleep_ms`), then the actor doing `steps`.
    fn script(steps: &[String], pid: &Path, sleep_ms: u64) -> String {
        let quoted: Vec<String> = steps.iter().map(|s| format!("'{s}'")).collect();
        format!(
            "{a} daemonize pid:{p} sleep:{sleep_ms} & sleep 0.2; {a} {steps}",
            a = actor(),
            p = pid.display(),
            steps = quoted.join(" ")
        )
    }

    fn run(&mut self, steps: &[String], sleep_ms: u64) -> (String, std::process::Output, u32) {
        self.runs += 1;
        let id = format!("{}-{}", self.phase, self.runs);
        // Not in a fresh temporary directory: that would teach the phase to write anywhere
        // under `/tmp/<random>/`.
        let pids = Path::new("/var/tmp/paddock-test-pids");
        std::fs::create_dir_all(pids).expect("pid directory");
        let pid = pids.join(format!("{}-{}-{id}", std::process::id(), paddock_tests::unique()));
        let script = Lab::script(steps, &pid, sleep_ms);
        let out = self.daemon.run(&id, self.phase, &["/bin/sh", "-c", &script], &[]);
        let sleeper =
            std::fs::read_to_string(&pid).ok().and_then(|p| p.trim().parse().ok()).unwrap_or(0);
        let _ = std::fs::remove_file(&pid);
        (id, out, sleeper)
    }

    /// Three ordinary runs of `benign(work dir)`, all of which must succeed.
    fn teach(&mut self, benign: impl Fn(&Path) -> Vec<String>) {
        for _ in 0..3 {
            let dir = work();
            let (id, out, _) = self.run(&benign(dir.path()), 100);
            assert!(out.status.success(), "{id}: {}", String::from_utf8_lossy(&out.stderr));
            self.daemon.events_of(&id, WAIT);
        }
    }

    /// Switch the phase to `mode` and run `steps` beside a background child.
    fn stray(&mut self, mode: Mode, steps: &[String]) -> Stray {
        self.daemon.set_mode(self.phase, mode.name());
        // In enforce the child must die with the rest; in flag it ends on its own, soon.
        let sleep_ms = if mode == Mode::Enforce { 30_000 } else { 300 };
        let (id, out, sleeper) = self.run(steps, sleep_ms);
        let events = self.daemon.events_of(&id, WAIT);
        Stray { out, events, sleeper }
    }
}

impl Lab {
    /// Pin the phase's baseline with room in its envelope (processes, syscall rate), as an
    /// operator reviewing it might: what a test looks at is then the only thing new.
    fn pin_wide_envelope(&self) {
        let text = self.daemon.ok(&["baseline", "export", self.phase]);
        self.import_widened(&text);
    }

    /// Import `text` (a baseline of this phase) with a wide envelope.
    fn import_widened(&self, text: &str) {
        let widened: String = text
            .lines()
            .map(|l| {
                if l.starts_with("max_syscalls_per_second") || l.starts_with("max_processes") {
                    format!("{} = 1000000", l.split(" = ").next().unwrap_or(l))
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let file = work();
        let path = file.path().join("pinned.toml");
        std::fs::write(&path, widened + "\n").expect("write baseline");
        self.daemon.ok(&["baseline", "import", self.phase, path.to_str().expect("utf-8")]);
    }
}

/// The root of the cgroup v2 hierarchy.
fn cgroup_root() -> PathBuf {
    paddock_tests::kubelet::cgroup2_mount()
}

/// Run `case` in both modes, each in a fresh lab.
fn both(case: impl Fn(Mode)) {
    for mode in [Mode::Flag, Mode::Enforce] {
        case(mode);
    }
}
