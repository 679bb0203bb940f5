//! Waiting for a condition: polled with a deadline, never a bare sleep.
use std::time::{Duration, Instant};

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// Poll `holds` every `every` until it is true; after `within`, panic with `what()`.
pub fn wait_until(
    within: Duration,
    every: Duration,
    mut holds: impl FnMut() -> bool,
    what: impl FnOnce() -> String,
) {
    eventually(within, every, || if holds() { Ok(()) } else { Err(()) }, |()| what())
}

/// Call `attempt` every `every` until it gives a value; after `within`, panic with
/// `why(last failure)`.
pub fn eventually<T, E>(
    within: Duration,
    every: Duration,
    mut attempt: impl FnMut() -> Result<T, E>,
    why: impl FnOnce(E) -> String,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match attempt() {
            Ok(value) => return value,
            Err(failure) if Instant::now() >= deadline => panic!("{}", why(failure)),
            Err(_) => std::thread::sleep(every),
        }
    }
}
