//! Real servers the integration tests talk to, started and stopped by xtask.
pub mod kubernetes;

use std::{
    path::Path,
    process::{Child, Command},
    time::{Duration, Instant},
};

use anyhow::bail;

/// Run `probe` until it succeeds, failing after `within` or as soon as `child` exits (with
/// the tail of its log).
pub fn wait_until(
    what: &str,
    within: Duration,
    child: &mut Child,
    log: &Path,
    mut probe: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if probe() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited ({status}); last lines of {}:\n{}", log.display(), tail(log));
        }
        if Instant::now() > deadline {
            bail!(
                "{what} not ready after {within:?}; last lines of {}:\n{}",
                log.display(),
                tail(log)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether `cmd` runs and succeeds, its output discarded.
pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Stop process `pid`: SIGTERM, then SIGKILL after `grace`. `reap` waits for it when it is
/// our child.
pub fn terminate(pid: u32, grace: Duration, mut reap: impl FnMut() -> bool) {
    let pid = pid as libc::pid_t;
    let alive = |reap: &mut dyn FnMut() -> bool| {
        // SAFETY: signal 0 only checks that the process exists.
        !reap() && unsafe { libc::kill(pid, 0) } == 0
    };
    // SAFETY: signalling a process we started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while alive(&mut reap) {
        if Instant::now() > deadline {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            while alive(&mut reap) {
                std::thread::sleep(Duration::from_millis(20));
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// While this lives, ^C no longer ends xtask itself: the foreground children (cargo, the
/// tests) still get it and end, and xtask goes on to stop the servers it started. A handler,
/// not SIG_IGN, so that children do not inherit it.
pub struct SigintGuard {
    previous: libc::sigaction,
}

extern "C" fn on_sigint(_: libc::c_int) {}

impl SigintGuard {
    pub fn install() -> SigintGuard {
        // SAFETY: plain sigaction calls with zeroed, then filled structures; the handler does
        // nothing, so it is async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            let mut previous: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGINT, &action, &mut previous);
            SigintGuard { previous }
        }
    }
}

impl Drop for SigintGuard {
    fn drop(&mut self) {
        // SAFETY: restores the action saved by `install`.
        unsafe { libc::sigaction(libc::SIGINT, &self.previous, std::ptr::null_mut()) };
    }
}
