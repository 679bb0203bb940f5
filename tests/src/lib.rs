//! Harness for paddock's root integration tests: a daemon per test (its own socket, state
//! directory and cgroup parent), an event follower that waits with deadlines instead of
//! sleeping, and the paths of the binaries under test.
use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

mod daemon;
mod follow;
mod net;
mod wait;

pub mod dashboard;
pub mod dns;
pub mod jsonl_trail;
pub mod kube;
pub mod kube_client;
pub mod kubelet;
pub mod monitoring;
pub mod pg_trail;
pub mod proxy;
pub mod scenario;
pub use self::kube::{KubeEnv, kube_env};
pub use paddock_test_pg as postgres;

pub use self::{
    daemon::{Daemon, Started, config},
    follow::{Follower, dump, of_kind},
    net::{Listener, UnixListener, udp_port},
    wait::{during, eventually, poll, process_gone, wait_settled, wait_until},
};

/// Return from the test (it passes) unless it runs as root, saying it was skipped: the
/// first line of every test that needs root, so that `cargo test` stays useful without it.
#[macro_export]
macro_rules! skip_unless_root {
    () => {
        if !$crate::root_or_say_skipped() {
            return;
        }
    };
}

/// True as root; otherwise prints that the running test is skipped and why. libtest runs
/// each test on a thread named after it (`observe::untracked_processes_never_appear`).
pub fn root_or_say_skipped() -> bool {
    let thread = std::thread::current();
    root_or_skip(thread.name().unwrap_or("this test"))
}

/// True when the tests can run (root); otherwise prints why `test` is skipped.
fn root_or_skip(test: &str) -> bool {
    // SAFETY: no arguments.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    eprintln!("skipped {test}: needs root (run `cargo xtask test`)");
    false
}

fn target_dir() -> PathBuf {
    // target/<profile>/deps/<test binary>
    let exe = std::env::current_exe().expect("current exe");
    exe.parent().and_then(Path::parent).expect("target dir").to_path_buf()
}

/// The `paddock` binary under test: `$PADDOCK_BIN`, or the one beside this test's build.
pub fn paddock_bin() -> PathBuf {
    std::env::var_os("PADDOCK_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("paddock"))
}

/// The test actor (see `src/bin/actor.rs`).
pub fn actor_bin() -> PathBuf {
    target_dir().join("paddock-test-actor")
}

static UNIQUE: AtomicU32 = AtomicU32::new(0);

/// A number no other call in this test process returns.
pub fn unique() -> u32 {
    UNIQUE.fetch_add(1, Ordering::Relaxed)
}

/// The strings of array `key` in a baseline table.
pub fn entries(baseline: &toml::Table, key: &str) -> Vec<String> {
    baseline[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}
