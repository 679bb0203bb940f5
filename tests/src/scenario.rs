//! The scripted story the output tests replay: a phase learns from three ordinary runs,
//! then in flag mode one run strays (a verdict), then in enforce mode one run strays the
//! same way (killed).
use std::path::Path;

use serde_json::Value;

use crate::{Daemon, Listener};

/// The usual work of a run: run /bin/true, write a report in a fresh temporary directory,
/// connect to `port`, pause.
pub fn usual(dir: &Path, port: u16) -> Vec<String> {
    std::fs::create_dir_all(dir.join("out")).unwrap();
    vec![
        "exec:/bin/true".into(),
        format!("write:{}", dir.join("out/report.txt").display()),
        format!("connect:127.0.0.1:{port}"),
        "sleep:200".into(),
    ]
}

/// The same, but running `/bin/false`, which the phase never learned.
pub fn stray(dir: &Path, port: u16) -> Vec<String> {
    let mut steps = usual(dir, port);
    steps[0] = "exec:/bin/false".into();
    steps
}

/// What a played scenario left: investigation ids, and each one's events from the daemon's
/// live stream.
pub struct Scenario {
    pub phase: String,
    pub learned: Vec<String>,
    pub flagged: String,
    pub killed: String,
    pub events: Vec<(String, Vec<Value>)>,
}

impl Scenario {
    pub fn ids(&self) -> Vec<&str> {
        self.events.iter().map(|(id, _)| id.as_str()).collect()
    }

    pub fn events_of(&self, id: &str) -> &[Value] {
        &self.events.iter().find(|(i, _)| i == id).expect("id of the scenario").1
    }
}

fn run(daemon: &Daemon, id: &str, phase: &str, steps: &[String]) -> std::process::Output {
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    daemon.run_actor(id, phase, &steps)
}

/// Play the story on `phase` with ids prefixed by `tag`.
pub fn play(daemon: &Daemon, phase: &str, tag: &str) -> Scenario {
    let within = std::time::Duration::from_secs(20);
    let listener = Listener::start();
    let mut events = Vec::new();
    let mut learned = Vec::new();
    for i in 0..3 {
        let id = format!("{tag}-learn-{i}");
        let dir = tempfile::tempdir().unwrap();
        let out = run(daemon, &id, phase, &usual(dir.path(), listener.port));
        assert!(out.status.success(), "{id}: {}", String::from_utf8_lossy(&out.stderr));
        events.push((id.clone(), daemon.events_of(&id, within)));
        learned.push(id);
    }
    daemon.set_mode(phase, "flag");
    let flagged = format!("{tag}-flagged");
    let dir = tempfile::tempdir().unwrap();
    let out = run(daemon, &flagged, phase, &stray(dir.path(), listener.port));
    assert!(
        out.status.success(),
        "flag mode never kills: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    events.push((flagged.clone(), daemon.events_of(&flagged, within)));
    daemon.set_mode(phase, "enforce");
    let killed = format!("{tag}-killed");
    let dir = tempfile::tempdir().unwrap();
    let out = run(daemon, &killed, phase, &stray(dir.path(), listener.port));
    assert_eq!(out.status.code(), Some(99), "{}", String::from_utf8_lossy(&out.stderr));
    events.push((killed.clone(), daemon.events_of(&killed, within)));
    Scenario { phase: phase.to_owned(), learned, flagged, killed, events }
}
