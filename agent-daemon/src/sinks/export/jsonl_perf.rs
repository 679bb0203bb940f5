//! The cost of the export per event (ignored by default; numbers are printed):
//! `cargo test --release -p agent-daemon sinks::export::jsonl_perf -- --ignored --nocapture`
//!
//! A mix like the store's own benchmark (`sinks::audit::tests_perf`): opens, execs and
//! connects of one Kubernetes run, in batches of 2,000 (the store's default batch).
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use super::{
    jsonl::{JsonlConfig, JsonlWriter},
    otel::{OtelRecord, write_line},
    otel_tests::{event, pod, run_row},
};
use crate::{
    events::{Action, EventKind, PathState},
    sinks::audit::read::StoredEvent,
};

const EVENTS: usize = 200_000;
const BATCH: usize = 2000;
/// What the export must keep up with: the store's target rate on one core.
const TARGET_PER_SECOND: f64 = 200_000.0;

fn kind(i: usize) -> EventKind {
    let file = format!("/srv/data/file-{}.txt", i % 977);
    match i % 10 {
        0 => EventKind::Exec {
            path: "/usr/bin/cat".into(),
            argv: vec!["cat".into(), file],
            argv_truncated: false,
            via_fd: false,
            resolved: false,
            state: PathState::default(),
            action: Action::None,
        },
        1 => EventKind::Connect {
            op: "connect".into(),
            protocol: crate::egress::EgressProtocol::Tcp,
            address: "10.0.0.9".parse().unwrap(),
            port: 443,
            name: Some("api.example.com".into()),
            action: Action::None,
        },
        _ => EventKind::Open {
            path: file,
            write: false,
            flags: 0,
            via: None,
            state: PathState::default(),
        },
    }
}

fn events() -> Vec<StoredEvent> {
    (0..EVENTS).map(|i| StoredEvent { seq: i as i64 + 1, run: 1, event: event(kind(i)) }).collect()
}

/// Events per second of `f` over all events, best of `n` runs.
fn best_rate(n: usize, mut f: impl FnMut()) -> (f64, Duration) {
    let mut best = Duration::MAX;
    for _ in 0..n {
        let start = Instant::now();
        f();
        best = best.min(start.elapsed());
    }
    (EVENTS as f64 / best.as_secs_f64(), best)
}

#[test]
#[ignore = "a benchmark: run with --release --ignored --nocapture"]
fn the_export_keeps_up_with_the_store() {
    let events = events();
    let runs = HashMap::from([(1, run_row(1, Some(pod())))]);
    let store = "0123456789abcdef0123456789abcdef";
    let mut bytes = 0;
    let (map_rate, map_time) = best_rate(3, || {
        let mut line = Vec::with_capacity(1024);
        bytes = 0;
        for stored in &events {
            line.clear();
            write_line(&mut line, &OtelRecord::new(stored, &runs, "node-1", store)).unwrap();
            bytes += line.len();
        }
    });
    println!(
        "mapping only: {EVENTS} events in {map_time:?} = {map_rate:.0} events/s, {:.2} µs each, \
         {} bytes a line on average",
        map_time.as_secs_f64() * 1e6 / EVENTS as f64,
        bytes / EVENTS
    );
    // The file on the disk of the temporary directory, and in memory (/dev/shm): what the
    // writer costs, apart from what the device takes.
    let mut on_memory = None;
    for (place, dir) in [
        ("disk", tempfile::tempdir().unwrap()),
        ("memory", tempfile::tempdir_in("/dev/shm").unwrap()),
    ] {
        let config =
            JsonlConfig { path: dir.path().join("events.jsonl"), max_bytes: 100 << 20, keep: 5 };
        let (rate, time) = best_rate(3, || {
            let _ = std::fs::remove_dir_all(dir.path());
            let mut writer = JsonlWriter::open(&config, 0).unwrap();
            for batch in events.chunks(BATCH) {
                writer.write(batch, &runs, "node-1", store).unwrap();
            }
        });
        println!(
            "mapping + file on {place} (fdatasync per batch of {BATCH}, 100 MiB files): \
             {EVENTS} events in {time:?} = {rate:.0} events/s, {:.2} µs each, {:.0} MB/s",
            time.as_secs_f64() * 1e6 / EVENTS as f64,
            bytes as f64 / time.as_secs_f64() / 1e6
        );
        if place == "memory" {
            on_memory = Some(rate);
        }
    }
    assert!(map_rate >= TARGET_PER_SECOND, "mapping: {map_rate:.0} events/s");
    let file_rate = on_memory.unwrap();
    assert!(file_rate >= TARGET_PER_SECOND, "{file_rate:.0} events/s");
}
