//! Polling with a deadline, never a bare sleep.
use std::time::{Duration, Instant};

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

/// Call `attempt` every `every` until it gives a value, or `None` after `within`.
pub fn until<T>(
    within: Duration,
    every: Duration,
    mut attempt: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = attempt() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}
