//! A `paddock daemon` of its own, for the integration tests and for `cargo xtask demo|bench`:
//! its own socket, state directory, cgroup parent and pin directory, so that daemons of one
//! machine never share anything; written from a configuration table (the tests make it from
//! the daemon's own `Config`), started, waited for until it answers, stopped (SIGTERM) and
//! cleaned up (`paddock daemon --cleanup`) when dropped.
mod places;
mod wait;

use std::{
    ffi::OsString,
    io,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    time::Duration,
};

pub use self::{
    places::Places,
    wait::{eventually, until},
};

/// How long a daemon may take to answer `paddock status` after it is started.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long a stopping daemon may take before it is killed.
const STOP_WITHIN: Duration = Duration::from_secs(15);

/// A running `paddock daemon`, stopped and cleaned up when dropped.
pub struct Daemon {
    child: Option<Child>,
    bin: PathBuf,
    env: Vec<(OsString, OsString)>,
    places: Places,
}

/// What starting a daemon gave: a daemon that answers, or its exit status and log.
#[allow(clippy::large_enum_variant, reason = "made once per start of a daemon process")]
pub enum Started {
    Ready(Daemon),
    Exited { status: ExitStatus, log: String },
}

impl Started {
    /// The daemon, or an error carrying its exit status and log.
    pub fn ready(self) -> io::Result<Daemon> {
        match self {
            Started::Ready(daemon) => Ok(daemon),
            Started::Exited { status, log } => {
                Err(io::Error::other(format!("paddock daemon exited ({status}):\n{log}")))
            }
        }
    }
}

impl std::ops::Deref for Daemon {
    type Target = Places;
    fn deref(&self) -> &Places {
        &self.places
    }
}

impl Daemon {
    /// Write `config` with this daemon's places put in it (see [`Places::put_in`]) and start
    /// `bin daemon --config FILE` with `env` added.
    pub fn start(
        bin: &Path,
        places: Places,
        mut config: toml::Table,
        env: &[(&str, &str)],
    ) -> io::Result<Started> {
        places.put_in(&mut config);
        let text = toml::to_string(&config).map_err(io::Error::other)?;
        std::fs::write(&places.config, text)?;
        Daemon::start_file(bin, places, env)
    }

    /// Start on the file at `places.config` as the caller wrote it (bad configurations).
    pub fn start_file(bin: &Path, places: Places, env: &[(&str, &str)]) -> io::Result<Started> {
        let env = env.iter().map(|(k, v)| (k.into(), v.into())).collect();
        Daemon { child: None, bin: bin.to_path_buf(), env, places }.launch()
    }

    /// Start the daemon process (again) on the same configuration and state; its log and
    /// standard output are appended to. The last process must be gone (`stop`, `kill9`):
    /// a second one beside it would find the socket served, and the first would outlive
    /// its handle.
    pub fn launch(mut self) -> io::Result<Started> {
        if let Some(pid) =
            self.child.as_mut().and_then(|c| c.try_wait().ok()?.is_none().then(|| c.id()))
        {
            return Err(io::Error::other(format!(
                "paddock daemon {pid} still runs: stop or kill9 it before starting it again"
            )));
        }
        let append = |path: &Path| std::fs::OpenOptions::new().create(true).append(true).open(path);
        let child = Command::new(&self.bin)
            .args(["daemon", "--config"])
            .arg(&self.places.config)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(append(&self.places.stdout)?)
            .stderr(append(&self.places.log)?)
            .spawn()
            .map_err(|e| io::Error::other(format!("cannot start {}: {e}", self.bin.display())))?;
        self.child = Some(child);
        let exited = wait::until(READY_WITHIN, Duration::from_millis(50), || {
            match self.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(Some(status)),
                _ if self.answers() => Some(None),
                _ => None,
            }
        });
        match exited {
            Some(Some(status)) => {
                self.child = None;
                Ok(Started::Exited { status, log: self.log() })
            }
            Some(None) => Ok(Started::Ready(self)),
            None => Err(io::Error::other(format!(
                "paddock daemon not ready after {READY_WITHIN:?}:\n{}",
                self.log()
            ))),
        }
    }

    /// Whether our process answers on the socket: `paddock status` gives its pid (not that
    /// of another daemon still serving there).
    fn answers(&self) -> bool {
        let Ok(out) = self.cmd(&["status", "--json"]).stderr(Stdio::null()).output() else {
            return false;
        };
        let pid = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|status| status["pid"].as_u64());
        out.status.success() && pid.is_some_and(|pid| pid == u64::from(self.pid()))
    }

    /// `paddock --socket <ours> ARGS...`, without cargo's library path (which would only make
    /// the loader of every tracked command probe more directories).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--socket").arg(&self.places.socket).args(args).env_remove("LD_LIBRARY_PATH");
        cmd
    }

    /// The `paddock` binary this daemon runs.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The daemon's process id (0 once it is stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// What the daemon logged (its standard error).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.places.log).unwrap_or_default()
    }

    /// What the daemon wrote to its standard output.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.places.stdout).unwrap_or_default()
    }

    /// SIGKILL the daemon (no clean-up of any kind) and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop with SIGTERM and wait (SIGKILL after 15 s); the exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let pid = i32::try_from(child.id()).ok()?;
        // SAFETY: signalling our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status =
            wait::until(STOP_WITHIN, Duration::from_millis(20), || child.try_wait().ok().flatten());
        match status {
            Some(status) => Some(status),
            None => {
                let _ = child.kill();
                child.wait().ok()
            }
        }
    }

    /// `paddock daemon --cleanup` on this daemon's configuration (it must be stopped):
    /// unpin what it left.
    pub fn cleanup(&self) -> io::Result<Output> {
        Command::new(&self.bin)
            .args(["daemon", "--cleanup", "--config"])
            .arg(&self.places.config)
            .output()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        // What a stopped daemon leaves attached (it keeps enforcing by default) goes with it.
        let _ = self.cleanup();
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    /// A stand-in for `paddock`: `daemon --config` sleeps (its pid kept beside it),
    /// `status --json` answers with that pid, `daemon --cleanup` does nothing.
    fn fake_paddock(dir: &Path) -> PathBuf {
        let bin = dir.join("paddock");
        let script = "#!/bin/sh\nd=$(dirname \"$0\")\ncase \"$*\" in\n\
                      *'daemon --config'*) echo $$ > \"$d/pid\"; exec sleep 30;;\n\
                      *status*) [ -f \"$d/pid\" ] && printf '{\"pid\": %s}' \"$(cat \"$d/pid\")\";;\n\
                      esac\n";
        std::fs::write(&bin, script).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    }

    #[test]
    fn a_daemon_is_ready_when_its_own_pid_answers_and_is_not_started_twice() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_paddock(dir.path());
        let places = Places::new("unit").unwrap();
        let daemon = Daemon::start(&bin, places, toml::Table::new(), &[]).unwrap().ready().unwrap();
        let pid = daemon.pid();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("pid")).unwrap().trim(),
            pid.to_string()
        );
        let config = std::fs::read_to_string(&daemon.config).unwrap();
        assert!(config.contains(&daemon.name), "{config}");
        // Started again while the first still runs: refused, and the first is stopped with
        // the handle (not left behind).
        let err = daemon.launch().err().expect("a second start beside the first is refused");
        assert!(err.to_string().contains("still runs"), "{err}");
        let gone = until(Duration::from_secs(5), Duration::from_millis(20), || {
            (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
        });
        assert!(gone.is_some(), "process {pid} outlived its handle");
    }
}
