//! A `paddock daemon` per test: its own socket, state directory, cgroup parent and pins;
//! started from `Settings`, stopped (and its pins removed) when dropped.
use std::{
    path::PathBuf,
    process::{Child, Command, Output},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{Follower, actor_bin, eventually, paddock_bin};

/// Settings a test may change in the daemon's configuration file.
#[derive(Default, Clone)]
pub struct Settings {
    pub ring_buffer_bytes: Option<u32>,
    pub btf_path: Option<PathBuf>,
    pub mountinfo_path: Option<PathBuf>,
    /// `[http] token`: the bearer token the query API requires.
    pub http_token: Option<String>,
    /// `[http] listen` (default `127.0.0.1:0`).
    pub http_listen: Option<String>,
    /// `[daemon] socket_group`.
    pub socket_group: Option<String>,
    /// `[daemon] on_stop` (default: the daemon's, keep-enforcing).
    pub on_stop: Option<String>,
    /// `[kernel] max_tracked_processes`.
    pub max_tracked_processes: Option<u32>,
    /// `[daemon] recent_events` (default here 200000, so that tests can read back every
    /// event; the daemon's own default is 4096).
    pub recent_events: Option<usize>,
    /// Raw TOML lines in the `[kernel]` section (`policy_egress = 1`).
    pub kernel: String,
    /// Raw TOML appended to the file (whole extra sections).
    pub extra: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A running `paddock daemon`, stopped (SIGTERM) when dropped.
pub struct Daemon {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
}

/// The pin directory of the `n`th daemon of this test process: each its own, so that no
/// test adopts another's programs; removed when the `Daemon` is dropped.
pub fn pin_dir(n: u32) -> PathBuf {
    PathBuf::from(format!("/sys/fs/bpf/paddock-test-{}-{n}", std::process::id()))
}

/// What starting a daemon gave: a ready daemon, or its exit status and log.
pub enum Started {
    Ready(Daemon),
    Exited { status: std::process::ExitStatus, log: String },
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with(Settings::default())
    }

    pub fn start_with(settings: Settings) -> Daemon {
        match Daemon::try_start(settings) {
            Started::Ready(daemon) => daemon,
            Started::Exited { status, log } => panic!("daemon exited ({status}):\n{log}"),
        }
    }

    /// Start a daemon and wait until it answers, or until it exits.
    pub fn try_start(settings: Settings) -> Started {
        let dir = tempfile::Builder::new().prefix("paddock-test-").tempdir().expect("temp dir");
        let socket = dir.path().join("paddock.sock");
        let config = dir.path().join("paddock.toml");
        let log = dir.path().join("daemon.log");
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut text = format!(
            "[daemon]\nsocket = {socket:?}\nstate_dir = {state:?}\nrecent_events = {recent}\n{group}{on_stop}\n\
             [local]\ncgroup_parent = \"paddock-test-{pid}-{n}\"\n\n[http]\nlisten = {listen:?}\n{token}\n[kernel]\npin_dir = {pins:?}\n",
            state = dir.path().join("state"),
            recent = settings.recent_events.unwrap_or(200_000),
            pid = std::process::id(),
            pins = pin_dir(n),
            group = settings
                .socket_group
                .map(|g| format!("socket_group = {g:?}\n"))
                .unwrap_or_default(),
            on_stop = settings.on_stop.map(|g| format!("on_stop = {g:?}\n")).unwrap_or_default(),
            listen = settings.http_listen.unwrap_or_else(|| "127.0.0.1:0".into()),
            token = settings.http_token.map(|t| format!("token = {t:?}\n")).unwrap_or_default(),
        );
        if let Some(bytes) = settings.ring_buffer_bytes {
            text += &format!("ring_buffer_bytes = {bytes}\n");
        }
        if let Some(n) = settings.max_tracked_processes {
            text += &format!("max_tracked_processes = {n}\n");
        }
        if let Some(path) = &settings.btf_path {
            text += &format!("btf_path = {path:?}\n");
        }
        if let Some(path) = &settings.mountinfo_path {
            text += &format!("mountinfo_path = {path:?}\n");
        }
        text += &settings.kernel;
        text += "\n";
        text += &settings.extra;
        std::fs::write(&config, text).expect("write config");
        Daemon::spawn(dir, socket, config, log)
    }

    /// Start a daemon from a configuration file written by the caller.
    pub fn spawn(
        dir: tempfile::TempDir,
        socket: PathBuf,
        config: PathBuf,
        log: PathBuf,
    ) -> Started {
        let daemon = Daemon { child: None, dir, socket, config, log };
        daemon.launch()
    }

    /// Start the daemon process (again) with the same configuration; its log is appended.
    fn launch(mut self) -> Started {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let stdout_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.stdout_path())
            .expect("stdout file");
        let child = Command::new(paddock_bin())
            .args(["daemon", "--config"])
            .arg(&self.config)
            .env("PADDOCK_LOG", "info,paddock=debug")
            .stdout(stdout_file)
            .stderr(log_file)
            .spawn()
            .expect("spawn paddock daemon");
        self.child = Some(child);
        let log = self.log.clone();
        // Some(status) when it exited, None when it answers.
        let exited = eventually(
            Duration::from_secs(30),
            Duration::from_millis(50),
            || {
                if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
                {
                    return Ok(Some(status));
                }
                let ready = self.paddock(&["status"]).output().is_ok_and(|o| o.status.success());
                if ready { Ok(None) } else { Err(()) }
            },
            |()| {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                format!("daemon not ready after 30 s:\n{log}")
            },
        );
        match exited {
            Some(status) => {
                self.child = None;
                Started::Exited { status, log: self.log() }
            }
            None => Started::Ready(self),
        }
    }

    /// SIGKILL the daemon (no clean-up of any kind) and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start a new daemon process on the same configuration and state after `kill9` or `stop`.
    pub fn restart(self) -> Daemon {
        match self.launch() {
            Started::Ready(daemon) => daemon,
            Started::Exited { status, log } => {
                panic!("daemon exited on restart ({status}):\n{log}")
            }
        }
    }

    /// `http://ADDR` of the daemon's HTTP server.
    pub fn http_base(&self) -> String {
        format!("http://{}", self.status()["http"].as_str().expect("status has http"))
    }

    /// GET `path` (e.g. `/v1/investigations`) with an optional bearer token: the status
    /// and the body as JSON (`Null` when it is not JSON).
    pub fn http_get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request =
            reqwest::blocking::Client::new().get(format!("{}{path}", self.http_base()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The daemon's `/metrics` text.
    pub fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.http_base());
        reqwest::blocking::get(&url).and_then(|r| r.text()).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// The daemon's peak resident memory so far (`VmHWM` of /proc/PID/status), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the daemon's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    fn stdout_path(&self) -> PathBuf {
        self.dir.path().join("daemon.stdout")
    }

    /// What the daemon wrote to its standard output (its logs go to standard error).
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.stdout_path()).unwrap_or_default()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `paddock --socket <ours> ARGS...`, without cargo's library path (which would only
    /// make the loader of every tracked command probe more directories).
    pub fn paddock(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(paddock_bin());
        cmd.arg("--socket").arg(&self.socket).args(args).env_remove("LD_LIBRARY_PATH");
        cmd
    }

    /// `paddock run` of the test actor with `steps`; waits and returns its output.
    pub fn run_actor(&self, id: &str, phase: &str, steps: &[&str]) -> Output {
        self.run(id, phase, &[actor_bin().to_str().expect("utf-8 path")], steps)
    }

    pub fn run(&self, id: &str, phase: &str, command: &[&str], args: &[&str]) -> Output {
        self.paddock(&["run", "--investigation-id", id, "--phase", phase, "--"])
            .args(command)
            .args(args)
            .output()
            .expect("spawn paddock run")
    }

    /// `paddock ARGS...` that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.paddock(args).output().expect("spawn paddock");
        assert!(
            out.status.success(),
            "paddock {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A phase's baseline, as `paddock baseline export` prints it.
    pub fn baseline(&self, phase: &str) -> toml::Table {
        let text = self.ok(&["baseline", "export", phase]);
        text.parse().unwrap_or_else(|e| panic!("export of {phase} is not TOML: {e}\n{text}"))
    }

    pub fn set_mode(&self, phase: &str, mode: &str) {
        self.ok(&["phase", "mode", phase, mode]);
    }

    pub fn status(&self) -> Value {
        let out = self.paddock(&["status", "--json"]).output().expect("paddock status");
        assert!(out.status.success(), "status failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// Follow the events of `investigation` (or all).
    pub fn follow(&self, investigation: Option<&str>) -> Follower {
        let mut cmd = self.paddock(&["events", "--follow", "--json"]);
        if let Some(id) = investigation {
            cmd.args(["--investigation", id]);
        }
        Follower::spawn(cmd)
    }

    /// Every event of `id`, once its `ended` event has arrived.
    pub fn events_of(&self, id: &str, within: Duration) -> Vec<Value> {
        let mut follower = self.follow(Some(id));
        if let Err(events) = follower.try_wait_for(within, |e| e["kind"] == "ended") {
            eprintln!("{}", follower.diagnostics());
            let status = self
                .paddock(&["status"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
            let kinds = events.iter().fold(
                std::collections::BTreeMap::<String, usize>::new(),
                |mut m, e| {
                    *m.entry(e["kind"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
                    m
                },
            );
            panic!(
                "{id} did not end within {within:?}; {} events by kind {kinds:?}\nstatus: {}\ndaemon log:\n{}",
                events.len(),
                status.unwrap_or_default(),
                self.log()
            );
        }
        follower.events()
    }

    /// Stop with SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Daemon {
    /// `paddock daemon --cleanup` on this daemon's configuration (it must be stopped):
    /// unpin what it left. Its output.
    pub fn cleanup(&self) -> Output {
        Command::new(paddock_bin())
            .args(["daemon", "--cleanup", "--config"])
            .arg(&self.config)
            .output()
            .expect("spawn paddock daemon --cleanup")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        // What a stopped daemon leaves attached (it keeps enforcing by default) goes with
        // the test.
        let _ = self.cleanup();
    }
}
