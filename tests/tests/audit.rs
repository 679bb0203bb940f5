//! The audit trail: every event of every investigation lands in the store, in order, and
//! the CLI and the HTTP API answer forensic queries from it; a daemon killed with SIGKILL
//! loses nothing it had stored. Real kernel, real daemon; needs root.
use std::time::Duration;

use agent_daemon::config::{Config, HttpConfig};
use paddock_tests::{Daemon, actor_bin, config, eventually, poll, scenario, skip_unless_root};
use serde_json::Value;

const TOKEN: &str = "forensics-token";

/// `paddock audit show ID --format jsonl`, once it holds the run's `ended` event.
fn stored_events(daemon: &Daemon, id: &str) -> Vec<Value> {
    let whole = || {
        // Until its first batch is committed the store does not know the id (an error).
        let out = daemon.cmd(&["audit", "show", id, "--format", "jsonl"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let events: Vec<Value> =
            text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
        if events.last().is_some_and(|e| e["kind"] == "ended") { Ok(events) } else { Err(text) }
    };
    eventually(Duration::from_secs(10), Duration::from_millis(100), whole, |text| {
        format!("{id} not stored whole after 10 s: {text}")
    })
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn the_trail_holds_every_event_in_order_and_answers_queries() {
    skip_unless_root!();
    let daemon = Daemon::start_with(Config {
        http: HttpConfig { token: Some(TOKEN.into()), ..config().http },
        ..config()
    });
    let story = scenario::play(&daemon, "read-only", "trail");

    // Everything the live stream showed is in the store, in the same order, field for field.
    for (id, live) in &story.events {
        let stored = stored_events(&daemon, id);
        assert_eq!(&stored, live, "{id}: the store and the live stream differ");
    }

    // paddock audit list: one run each, with its outcome.
    let runs = json(&daemon.ok(&["audit", "list", "--format", "json"]));
    let outcome = |id: &str| {
        let run = runs.as_array().unwrap().iter().find(|r| r["id"] == id);
        run.unwrap_or_else(|| panic!("{id} not listed: {runs}"))["outcome"].clone()
    };
    for id in &story.learned {
        assert_eq!(outcome(id), "ok");
    }
    assert_eq!(outcome(&story.flagged), "flagged");
    assert_eq!(outcome(&story.killed), "killed");
    assert_eq!(runs.as_array().unwrap().len(), 5, "{runs}");
    let killed = json(&daemon.ok(&["audit", "list", "--outcome", "killed", "--format", "json"]));
    let ids: Vec<&str> =
        killed.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [story.killed.as_str()]);
    let verdicts =
        daemon.ok(&["audit", "show", &story.flagged, "--kind", "verdict", "--format", "jsonl"]);
    let verdicts: Vec<Value> = verdicts.lines().map(json).collect();
    assert_eq!(verdicts.len(), 1, "{verdicts:?}");
    assert_eq!(verdicts[0]["subject"], "/bin/false");

    // The HTTP API: the same events, a page at a time.
    let token = Some(TOKEN);
    for id in story.ids() {
        let mut paged = Vec::new();
        let mut path = format!("/v1/investigations/{id}/events?limit=4");
        loop {
            let (status, page) = daemon.http_get(&path, token);
            assert_eq!(status, 200, "{path}: {page}");
            let events = page["events"].as_array().unwrap();
            assert!(events.len() <= 4);
            paged.extend(events.iter().cloned());
            match page["next"].as_str() {
                Some(next) => {
                    path = format!("/v1/investigations/{id}/events?limit=4&cursor={next}")
                }
                None => break,
            }
        }
        assert_eq!(paged, story.events_of(id), "{id}: the pages are the whole trail, in order");
    }
    let (status, execs) =
        daemon.http_get(&format!("/v1/investigations/{}/events?kind=exec", story.killed), token);
    assert_eq!(status, 200);
    assert!(execs["events"].as_array().unwrap().iter().all(|e| e["kind"] == "exec"), "{execs}");
    let (status, listed) = daemon.http_get("/v1/investigations?outcome=flagged", token);
    assert_eq!(status, 200);
    assert_eq!(listed["investigations"][0]["id"], story.flagged.as_str());
    assert_eq!(listed["investigations"].as_array().unwrap().len(), 1);

    // Errors: the right status, and a reason.
    let (status, body) = daemon.http_get("/v1/investigations", None);
    assert_eq!((status, body["error"].as_str()), (401, Some("a bearer token is required")));
    let (status, _) = daemon.http_get("/v1/investigations", Some("guess"));
    assert_eq!(status, 401);
    let (status, body) = daemon.http_get("/v1/investigations/never-ran/events", token);
    assert_eq!(status, 404, "{body}");
    let (status, body) = daemon.http_get("/v1/investigations?phase=root", token);
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().starts_with("parameter phase: "), "{body}");
    let (status, body) = daemon.http_get(
        &format!("/v1/investigations/{}/events?kind=exec%27%20OR%201=1", story.killed),
        token,
    );
    assert_eq!(status, 400, "{body}");
    let (status, _) =
        daemon.http_get(&format!("/v1/investigations/{}/events?cursor=-1", story.killed), token);
    assert_eq!(status, 400);
    let out = daemon.cmd(&["audit", "show", "never-ran"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no investigation never-ran"));

    // The tree of the killed run: the actor, its /bin/false child killed by the kernel.
    let tree = json(&daemon.ok(&["audit", "tree", &story.killed, "--format", "json"]));
    let processes = tree["processes"].as_array().unwrap();
    let actor = actor_bin().display().to_string();
    let root = processes.iter().find(|p| p["depth"] == 0).expect("a root process");
    assert_eq!(root["execs"][0]["path"], actor.as_str(), "{tree}");
    let child = processes
        .iter()
        .find(|p| p["execs"].as_array().unwrap().iter().any(|e| e["path"] == "/bin/false"))
        .unwrap_or_else(|| panic!("no /bin/false exec in {tree}"));
    assert_eq!(child["parent"], root["pid"]);
    assert!(!child["killed"].is_null(), "the stray exec is marked killed: {tree}");
    let table = daemon.ok(&["audit", "tree", &story.killed]);
    assert!(table.contains("KILLED"), "{table}");

    // What the metrics and status say was stored is what the store holds.
    let status = daemon.status();
    let stored = status["audit"]["stored"].as_u64().unwrap();
    let total: u64 = story.events.iter().map(|(_, e)| e.len() as u64).sum();
    assert_eq!(stored, total, "every published event stored, no more");
    assert_eq!(status["audit"]["failed"], 0);
    let metrics = daemon.metrics();
    assert!(metrics.contains(&format!("paddock_audit_events_stored_total {total}\n")), "{metrics}");
    assert_eq!(daemon.ok(&["audit", "check"]).trim_end().rsplit(": ").next(), Some("ok"));
}

#[test]
fn a_daemon_killed_mid_stream_loses_nothing_it_had_stored() {
    skip_unless_root!();
    let mut daemon = Daemon::start();
    let work = tempfile::tempdir().unwrap();
    let script = format!(
        "while :; do {} touch-many:{}:200; done",
        actor_bin().display(),
        work.path().display()
    );
    let mut stream = daemon
        .cmd(&[
            "run",
            "--investigation-id",
            "stream",
            "--phase",
            "shadow",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .spawn()
        .unwrap();
    // Let it stream until thousands of events are stored and more keep coming.
    let thousands_stored = || {
        let status = daemon.status();
        let stored = status["audit"]["stored"].as_u64().unwrap_or(0);
        if stored <= 5000 {
            return Err(stored);
        }
        Ok((stored, status["investigations"][0]["cgroup"].as_str().unwrap().to_owned()))
    };
    let (acknowledged, cgroup) =
        eventually(Duration::from_secs(30), Duration::from_millis(100), thousands_stored, |n| {
            format!("only {n} events stored after 30 s")
        });
    let before: Vec<Value> =
        daemon.ok(&["audit", "show", "stream", "--format", "jsonl"]).lines().map(json).collect();
    daemon.kill9();
    // The kernel keeps tracking the stream while no daemon runs; stop it from outside
    // (what an operator cleaning up would do) before the next daemon comes.
    let _ = std::fs::write(format!("{cgroup}/cgroup.kill"), "1");
    let _ = stream.kill();
    let _ = stream.wait();

    // The next daemon adopts the run, finds its cgroup empty and ends it: one run, its
    // stored events untouched, then `resumed` and `ended`.
    let daemon = daemon.restart();
    assert_eq!(daemon.ok(&["audit", "check"]).trim_end().rsplit(": ").next(), Some("ok"));
    let list = || json(&daemon.ok(&["audit", "list", "--id", "stream", "--format", "json"]));
    poll(Duration::from_secs(20), Duration::from_millis(100), || list()[0]["outcome"] != "running");
    let runs = list();
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    assert_eq!(runs[0]["outcome"], "ok", "{runs}");
    let after: Vec<Value> =
        daemon.ok(&["audit", "show", "stream", "--format", "jsonl"]).lines().map(json).collect();
    assert!(
        after.len() as u64 >= acknowledged && after.len() >= before.len(),
        "stored {} events after the restart; {acknowledged} were acknowledged and {} read before",
        after.len(),
        before.len()
    );
    assert_eq!(&after[..before.len()], &before[..], "what was read before the kill is unchanged");
    assert_eq!(after.iter().filter(|e| e["kind"] == "resumed").count(), 1);
    assert_eq!(after.last().unwrap()["kind"], "ended");
    assert_eq!(runs[0]["events"].as_u64(), Some(after.len() as u64));
    // And the store takes new runs.
    let out = daemon.run_actor("after-restart", "shadow", &["exec:/bin/true"]);
    assert!(out.status.success());
    stored_events(&daemon, "after-restart");
}
