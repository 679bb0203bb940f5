//! Following a daemon's events: a follower that waits with deadlines instead of sleeping,
//! and helpers to pick and show events.
use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Condvar, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;

/// A `paddock events --follow --json` process whose lines are collected as they come.
pub struct Follower {
    child: Child,
    events: Arc<(Mutex<Vec<Value>>, Condvar)>,
    stderr: tempfile::NamedTempFile,
}

impl Follower {
    pub fn spawn(mut cmd: Command) -> Follower {
        let stderr_file = tempfile::NamedTempFile::new().expect("temp file");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(stderr_file.reopen().expect("reopen"))
            .spawn()
            .expect("spawn events");
        let stdout = child.stdout.take().expect("stdout");
        let events: Arc<(Mutex<Vec<Value>>, Condvar)> = Arc::default();
        let sink = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    sink.0.lock().unwrap_or_else(|e| e.into_inner()).push(value);
                    sink.1.notify_all();
                }
            }
        });
        Follower { child, events, stderr: stderr_file }
    }

    /// What the follower printed on stderr, and how it exited if it did.
    pub fn diagnostics(&mut self) -> String {
        let stderr = std::fs::read_to_string(self.stderr.path()).unwrap_or_default();
        format!("follower exit: {:?}; stderr: {stderr}", self.child.try_wait())
    }

    /// Wait until an event for which `wanted` holds arrives; panics with the events so far
    /// after `within`.
    pub fn wait_for(&self, within: Duration, wanted: impl Fn(&Value) -> bool) {
        if let Err(events) = self.try_wait_for(within, wanted) {
            panic!("no such event within {within:?}; events so far:\n{}", dump(&events));
        }
    }

    /// Wait until an event for which `wanted` holds arrives; the events so far when none did
    /// within `within`. Each event is looked at once.
    pub fn try_wait_for(
        &self,
        within: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Result<(), Vec<Value>> {
        let deadline = Instant::now() + within;
        let (lock, cv) = &*self.events;
        let mut events = lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut checked = 0;
        loop {
            if events[checked..].iter().any(&wanted) {
                return Ok(());
            }
            checked = events.len();
            let now = Instant::now();
            if now >= deadline {
                return Err(events.clone());
            }
            events = cv.wait_timeout(events, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    pub fn events(&self) -> Vec<Value> {
        self.events.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Events as text, one per line, for assertion messages.
pub fn dump(events: &[Value]) -> String {
    events.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
}

/// The events of `kind` for which `pred` holds.
pub fn of_kind<'a>(
    events: &'a [Value],
    kind: &str,
    pred: impl Fn(&Value) -> bool,
) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind && pred(e)).collect()
}
