//! A `paddock daemon` per test, on the harness every daemon of the tests, the demo and the
//! benches shares (`paddock-harness`: its own socket, state, cgroup parent and pins; stopped
//! and cleaned up when dropped), configured through the daemon's own [`Config`].
use std::{process::Output, time::Duration};

use agent_daemon::config::Config;
use serde_json::Value;

use crate::{Follower, actor_bin, paddock_bin};

/// The configuration a test starts from: the daemon's defaults, with the HTTP server on a
/// free loopback port and every event kept in memory (200000, so that tests can read back
/// every event; the daemon's own default is 4096). Its socket, state, cgroup parent and pins
/// are put in by the harness.
pub fn config() -> Config {
    let mut config = Config::default();
    config.http.listen = ([127, 0, 0, 1], 0).into();
    config.daemon.recent_events = 200_000;
    config
}

/// A running `paddock daemon`; the harness's own, with what tests ask of it.
pub struct Daemon(paddock_harness::Daemon);

impl std::ops::Deref for Daemon {
    type Target = paddock_harness::Daemon;
    fn deref(&self) -> &paddock_harness::Daemon {
        &self.0
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut paddock_harness::Daemon {
        &mut self.0
    }
}

/// What starting a daemon gave: a ready daemon, or its exit status and log.
#[allow(clippy::large_enum_variant, reason = "made once per start of a daemon process")]
pub enum Started {
    Ready(Daemon),
    Exited { status: std::process::ExitStatus, log: String },
}

impl From<paddock_harness::Started> for Started {
    fn from(started: paddock_harness::Started) -> Started {
        match started {
            paddock_harness::Started::Ready(daemon) => Started::Ready(Daemon(daemon)),
            paddock_harness::Started::Exited { status, log } => Started::Exited { status, log },
        }
    }
}

/// The daemon's log level in tests.
const LOG: [(&str, &str); 1] = [("PADDOCK_LOG", "info,paddock=debug")];

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with(config())
    }

    pub fn start_with(config: Config) -> Daemon {
        match Daemon::try_start(config) {
            Started::Ready(daemon) => daemon,
            Started::Exited { status, log } => panic!("daemon exited ({status}):\n{log}"),
        }
    }

    /// Start a daemon on `config` and wait until it answers, or until it exits.
    pub fn try_start(config: Config) -> Started {
        let table = toml::Table::try_from(&config).expect("a configuration serialises");
        let places = paddock_harness::Places::new("test").expect("the daemon's places");
        paddock_harness::Daemon::start(&paddock_bin(), places, table, &LOG)
            .expect("start paddock daemon")
            .into()
    }

    /// Start a new daemon process on the same configuration and state after `kill9` or
    /// `stop`; its log is appended to.
    pub fn restart(self) -> Daemon {
        match self.0.launch().expect("start paddock daemon").into() {
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

    /// `paddock run` of the test actor with `steps`; waits and returns its output.
    pub fn run_actor(&self, id: &str, phase: &str, steps: &[&str]) -> Output {
        self.run(id, phase, &[actor_bin().to_str().expect("utf-8 path")], steps)
    }

    pub fn run(&self, id: &str, phase: &str, command: &[&str], args: &[&str]) -> Output {
        self.cmd(&["run", "--investigation-id", id, "--phase", phase, "--"])
            .args(command)
            .args(args)
            .output()
            .expect("spawn paddock run")
    }

    /// `paddock ARGS...` that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().expect("spawn paddock");
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
        let out = self.cmd(&["status", "--json"]).output().expect("paddock status");
        assert!(out.status.success(), "status failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// Wait up to `within` until it reports `ids` running, each with its command started in
    /// its cgroup (so its client had the daemon's answer). A run listed but not yet joined
    /// is not running yet, and one still listed while it ends is not the one asked for.
    pub fn wait_running(&self, ids: &[&str], within: Duration) {
        let all_running = || {
            let status = self.status();
            let running: Vec<&str> = status["investigations"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|i| {
                            i["cgroup"].as_str().is_some_and(|c| {
                                std::fs::read_to_string(format!("{c}/cgroup.procs"))
                                    .is_ok_and(|p| !p.trim().is_empty())
                            })
                        })
                        .filter_map(|i| i["id"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            if ids.iter().all(|id| running.contains(id)) { Ok(()) } else { Err(status) }
        };
        crate::eventually(within, Duration::from_millis(50), all_running, |status| {
            format!("{ids:?} not all running: {status}\n{}", self.log())
        });
    }

    /// Follow the events of `investigation` (or all).
    pub fn follow(&self, investigation: Option<&str>) -> Follower {
        let mut cmd = self.cmd(&["events", "--follow", "--json"]);
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
                .cmd(&["status"])
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

    /// Change this daemon's configuration file (read back as the daemon's `Config`), for its
    /// next start.
    pub fn reconfigure(&self, change: impl FnOnce(&mut Config)) {
        let mut config = Config::load(Some(&self.config)).expect("the daemon's configuration");
        change(&mut config);
        let text = toml::to_string(&config).expect("a configuration serialises");
        std::fs::write(&self.config, text).expect("write the configuration");
    }
}
