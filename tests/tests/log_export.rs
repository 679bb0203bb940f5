//! `paddock audit export`: the store read without the daemon, every event once and in
//! order, as paddock's own JSON lines or as flat objects named after the OpenTelemetry
//! semantic conventions; and the daemon's `[[export]] kind = "jsonl"`, the same objects in
//! rotated files, every event exactly once through a SIGKILL. Real kernel, real daemon;
//! needs root.
use std::{collections::HashMap, time::Duration};

use agent_daemon::{
    config::Config,
    sinks::export::config::{ExportConfig, JsonlExport},
};
use paddock_tests::{
    Daemon, config, eventually,
    jsonl_trail::{exported, exported_after_kill, local_otel, rotated_count, seqs, wait_written},
    pg_trail::{Stream, metric},
    scenario, skip_unless_root, wait_until,
};
use serde_json::Value;

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// `paddock audit show ID --format jsonl`, once the store holds the run's `ended` event.
fn stored_events(daemon: &Daemon, id: &str) -> Vec<Value> {
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            let out = daemon.cmd(&["audit", "show", id, "--format", "jsonl"]).output().unwrap();
            let events = lines(&String::from_utf8_lossy(&out.stdout));
            if events.last().is_some_and(|e| e["kind"] == "ended") {
                Ok(events)
            } else {
                Err(events)
            }
        },
        |events| format!("{id} not stored whole after 10 s: {events:?}"),
    )
}

/// The event without the two fields the export adds.
fn bare(line: &Value) -> Value {
    let mut event = line.clone();
    let map = event.as_object_mut().unwrap();
    map.remove("seq").expect("seq");
    map.remove("run").expect("run");
    event
}

/// An RFC 3339 UTC time with its fraction of a second written to 9 digits.
fn nanos(time: &str) -> String {
    let time = time.strip_suffix('Z').expect("UTC");
    let (seconds, fraction) = time.split_once('.').unwrap_or((time, ""));
    format!("{seconds}.{fraction:0<9}Z")
}

/// The one line of `otel` with `paddock.seq` = `seq`.
fn by_seq<'a>(otel: &'a [Value], seq: &Value) -> &'a Value {
    let found: Vec<&Value> = otel.iter().filter(|o| o["paddock.seq"] == *seq).collect();
    assert_eq!(found.len(), 1, "seq {seq}: {found:?}");
    found[0]
}

#[test]
fn the_store_exports_every_event_once_with_opentelemetry_names() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let story = scenario::play(&daemon, "read-only", "otel");
    let stored: HashMap<&str, Vec<Value>> =
        story.ids().into_iter().map(|id| (id, stored_events(&daemon, id))).collect();
    let db = daemon.dir.path().join("state/audit.db");
    let db = db.to_str().unwrap();
    let export = |args: &[&str]| {
        let mut all = vec!["audit", "export", "--db", db];
        all.extend_from_slice(args);
        lines(&daemon.ok(&all))
    };

    // paddock's own lines: every stored event once, in store order, as the store and the
    // live stream have it.
    let jsonl = export(&["--format", "jsonl"]);
    let seqs: Vec<i64> = jsonl.iter().map(|l| l["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "not in order, or twice: {seqs:?}");
    assert_eq!(jsonl.len(), stored.values().map(Vec::len).sum::<usize>());
    for (id, live) in &story.events {
        let exported: Vec<Value> =
            jsonl.iter().filter(|l| l["investigation"] == id.as_str()).map(bare).collect();
        assert_eq!(&exported, &stored[id.as_str()], "{id}: the export and the store differ");
        assert_eq!(&exported, live, "{id}: the export and the live stream differ");
    }

    // The OpenTelemetry lines: the same events, one line each, in the same order.
    let otel = export(&["--format", "otel", "--node", "node-7"]);
    let otel_seqs: Vec<i64> = otel.iter().map(|o| o["paddock.seq"].as_i64().unwrap()).collect();
    assert_eq!(otel_seqs, seqs);
    let store_id = otel[0]["paddock.store_id"].as_str().unwrap().to_owned();
    assert_eq!(store_id.len(), 32, "{store_id}");
    for (o, l) in otel.iter().zip(&jsonl) {
        assert_eq!(o["paddock.investigation.id"], l["investigation"]);
        assert_eq!(o["event_name"], format!("paddock.{}", l["kind"].as_str().unwrap()));
        assert_eq!(o["paddock.run"], l["run"]);
        assert_eq!(o["paddock.store_id"], store_id.as_str());
        assert_eq!(o["k8s.node.name"], "node-7");
        let time = nanos(l["time"].as_str().unwrap());
        assert_eq!(o["time"], time);
        let fraction: u64 = time[20..29].parse().unwrap();
        assert_eq!(o["time_unix_nano"].as_u64().unwrap() % 1_000_000_000, fraction);
    }

    let learned = &story.learned[0];
    let of = |id: &str, kind: &str| -> Vec<&Value> {
        jsonl.iter().filter(|l| l["investigation"] == id && l["kind"] == kind).collect()
    };
    // The start of a local run: no pod, no process.
    let started = of(learned, "started")[0];
    let o = by_seq(&otel, &started["seq"]);
    assert_eq!(o["severity_text"], "INFO");
    assert_eq!(o["paddock.source"], "local");
    assert_eq!(o["paddock.trust_phase"], "read-only");
    assert_eq!(o["paddock.instance"], started["instance"]);
    assert_eq!(o["paddock.cgroup.path"], started["cgroup"]);
    for key in ["k8s.pod.name", "k8s.namespace.name", "k8s.job.name", "process.pid"] {
        assert!(o.get(key).is_none(), "{key} in the start of a local run: {o}");
    }
    // An exec.
    let exec = *of(learned, "exec").iter().find(|e| e["path"] == "/bin/true").expect("exec");
    let o = by_seq(&otel, &exec["seq"]);
    assert_eq!(o["event_name"], "paddock.exec");
    assert_eq!(o["severity_text"], "INFO");
    assert_eq!(o["process.executable.path"], "/bin/true");
    assert_eq!(o["process.command_args"], exec["argv"]);
    assert_eq!(o["process.pid"], exec["pid"]);
    assert_eq!(o["process.parent_pid"], exec["ppid"]);
    assert_eq!(o["process.real_user.id"], exec["uid"]);
    assert_eq!(o["process.executable.name"], exec["comm"]);
    // An egress.
    let connect = of(learned, "connect")[0];
    let o = by_seq(&otel, &connect["seq"]);
    assert_eq!(o["network.transport"], "tcp");
    assert_eq!(o["network.type"], "ipv4");
    assert_eq!(o["network.peer.address"], "127.0.0.1");
    assert_eq!(o["network.peer.port"], connect["port"]);
    assert_eq!(o["server.address"], "127.0.0.1", "no name learned: the address");
    assert_eq!(o["server.port"], connect["port"]);
    // The verdicts: flagged is a warning, killed an error.
    for (id, severity) in [(&story.flagged, "WARN"), (&story.killed, "ERROR")] {
        let verdict = of(id, "verdict")[0];
        let o = by_seq(&otel, &verdict["seq"]);
        assert_eq!(o["severity_text"], severity, "{id}");
        assert_eq!(o["paddock.outcome"], verdict["outcome"]);
        assert_eq!(o["paddock.subject"], "/bin/false");
        assert_eq!(o["paddock.deviation"], "exec");
        assert_eq!(o["paddock.reason"], verdict["reason"]);
    }
    let ended = of(&story.killed, "ended")[0];
    assert_eq!(by_seq(&otel, &ended["seq"])["severity_text"], "ERROR");

    // --after and --id.
    let middle = seqs[seqs.len() / 2];
    let after = export(&["--after", &middle.to_string()]);
    assert_eq!(
        after,
        jsonl.iter().filter(|l| l["seq"].as_i64() > Some(middle)).cloned().collect::<Vec<_>>()
    );
    let one = export(&["--format", "otel", "--id", &story.flagged]);
    assert_eq!(one.len(), stored[story.flagged.as_str()].len());
    assert!(one.iter().all(|o| o["paddock.investigation.id"] == story.flagged.as_str()));

    // A JSON-lines export to standard output shares it with nothing: the daemon logs (at
    // debug level here) to standard error only.
    assert!(!daemon.log().is_empty(), "the daemon logged nothing at all");
    assert_eq!(daemon.stdout(), "", "the daemon wrote to its standard output");
}

const CATCH_UP: Duration = Duration::from_secs(60);
const EVENTS: &str = "paddock_export_events_total{export=\"siem\"}";

/// The export's lines are the local trail as `paddock audit export --format otel` prints
/// it: the same objects, in the same order, each sequence number once.
fn assert_same_as_the_store(daemon: &Daemon, lines: &[Value]) {
    let local = local_otel(daemon, "node-7");
    assert!(!local.is_empty(), "no local events");
    let written = seqs(lines);
    assert!(written.windows(2).all(|w| w[0] < w[1]), "not in order, or twice: {written:?}");
    assert_eq!(written, seqs(&local), "sequence numbers in the files and in the store");
    for (line, want) in lines.iter().zip(&local) {
        assert_eq!(line, want, "seq {}", want["paddock.seq"]);
    }
}

#[test]
fn the_daemon_writes_the_trail_to_rotated_files_exactly_once_through_a_kill() {
    skip_unless_root!();
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("logs/events.jsonl");
    let export = JsonlExport {
        max_bytes: 16384,
        keep: 1000,
        batch_events: 50,
        node: Some("node-7".into()),
        ..JsonlExport::new("siem", &path)
    };
    let mut daemon =
        Daemon::start_with(Config { export: vec![ExportConfig::Jsonl(export)], ..config() });

    // The story, in small files, as the store has it; the metric counts every line.
    scenario::play(&daemon, "read-only", "jsonl");
    wait_written(&daemon, &path, CATCH_UP);
    let written = metric(&daemon, EVENTS);
    assert_eq!(metric(&daemon, "paddock_export_lag_events{export=\"siem\"}"), Some(0.0));
    assert_eq!(metric(&daemon, "paddock_export_up{export=\"siem\"}"), Some(1.0));
    assert!(daemon.stop().is_some_and(|s| s.success()), "{}", daemon.log());
    let lines = exported(&path);
    assert_eq!(written, Some(lines.len() as f64), "the metric counts every line");
    assert!(rotated_count(&path) > 0, "16 KiB files: rotated");
    assert_same_as_the_store(&daemon, &lines);
    assert_eq!(daemon.stdout(), "", "a file export writes nothing to standard output");

    // Killed while it exports, three times: each restart goes on after the last line on
    // disk, writing and counting only what follows.
    let mut daemon = daemon.restart();
    let stream = Stream::start(&daemon.socket, "kill");
    let mut at_last_kill = 0;
    for round in 0..3 {
        wait_until(
            CATCH_UP,
            Duration::from_millis(50),
            || metric(&daemon, EVENTS).is_some_and(|n| n >= 300.0),
            || format!("round {round}: no lines:\n{}", daemon.log()),
        );
        daemon.kill9();
        let on_disk = exported_after_kill(&path);
        let written = seqs(&on_disk);
        assert!(written.windows(2).all(|w| w[0] < w[1]), "round {round}: twice: {written:?}");
        at_last_kill = on_disk.len();
        daemon = daemon.restart();
    }
    std::thread::sleep(Duration::from_secs(1));
    stream.stop();
    wait_written(&daemon, &path, CATCH_UP);
    let written = metric(&daemon, EVENTS);
    assert!(daemon.stop().is_some_and(|s| s.success()), "{}", daemon.log());
    let lines = exported(&path);
    assert_eq!(
        written,
        Some((lines.len() - at_last_kill) as f64),
        "the last daemon counts the lines it wrote, from where the file stood"
    );
    assert_same_as_the_store(&daemon, &lines);
}
