//! A paddock daemon for demos and benchmarks: its own socket, state, cgroup parent and pin
//! directory, stopped (SIGTERM) when dropped, taking its programs with it (`on_stop =
//! "detach"`: nothing of a demo or a benchmark stays attached).
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

pub struct Daemon {
    child: Child,
    pub paddock: PathBuf,
    pub socket: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Daemon {
    /// Start `paddock daemon` with `extra` appended to its configuration file.
    pub fn start(paddock: &Path, name: &str, extra: &str) -> anyhow::Result<Daemon> {
        let dir = tempfile::Builder::new().prefix(&format!("paddock-{name}-")).tempdir()?;
        let socket = dir.path().join("paddock.sock");
        let config = dir.path().join("paddock.toml");
        std::fs::write(
            &config,
            format!(
                "[daemon]\nsocket = {socket:?}\nstate_dir = {:?}\non_stop = \"detach\"\n\n[local]\ncgroup_parent = \"paddock-{name}-{pid}\"\n\n[kernel]\npin_dir = \"/sys/fs/bpf/paddock-{name}-{pid}\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n{extra}",
                dir.path().join("state"),
                pid = std::process::id()
            ),
        )?;
        let log = std::fs::File::create(dir.path().join("daemon.log"))?;
        let child = Command::new(paddock)
            .args(["daemon", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", paddock.display()))?;
        let mut daemon = Daemon { child, paddock: paddock.to_path_buf(), socket, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !daemon
            .cmd(&["status"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?
            .success()
        {
            if let Some(status) = daemon.child.try_wait()? {
                bail!("paddock daemon exited ({status}):\n{}", daemon.log());
            }
            if Instant::now() > deadline {
                bail!("paddock daemon not ready after 30 s:\n{}", daemon.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(daemon)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// `paddock --socket <ours> ARGS...`
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.paddock);
        cmd.arg("--socket").arg(&self.socket).args(args);
        cmd
    }

    pub fn stop(mut self) -> anyhow::Result<()> {
        self.terminate();
        Ok(())
    }

    fn terminate(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.terminate();
        }
    }
}
