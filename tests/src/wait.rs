//! Waiting for a condition: polled with a deadline, never a bare sleep.
use std::time::{Duration, Instant};

pub use paddock_harness::eventually;

/// Call `check` (which asserts) every `every` for `within`: something that must keep holding.
pub fn during(within: Duration, every: Duration, mut check: impl FnMut()) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        check();
        std::thread::sleep(every);
    }
}

/// Poll `holds` every `every` until it is true or `within` has passed; whether it held. For
/// a wait whose outcome the caller then asserts with what it sees.
pub fn poll(within: Duration, every: Duration, mut holds: impl FnMut() -> bool) -> bool {
    paddock_harness::until(within, every, || holds().then_some(())).is_some()
}

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

/// Poll `positions` (how far an export got, and the store's last sequence number) every
/// 100 ms until the export has everything and the store has stopped growing (the same last
/// sequence number a second later); after `within`, panic with `what(done, last)`.
pub fn wait_settled(
    within: Duration,
    mut positions: impl FnMut() -> (i64, i64),
    what: impl FnOnce(i64, i64) -> String,
) {
    let mut settled: Option<(i64, Instant)> = None;
    eventually(
        within,
        Duration::from_millis(100),
        || {
            let (done, last) = positions();
            if done == last && last > 0 {
                match settled {
                    Some((seen, since)) if seen == last => {
                        if since.elapsed() >= Duration::from_secs(1) {
                            return Ok(());
                        }
                    }
                    _ => settled = Some((last, Instant::now())),
                }
            } else {
                settled = None;
            }
            Err((done, last))
        },
        |(done, last)| what(done, last),
    )
}
