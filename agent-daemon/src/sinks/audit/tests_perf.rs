//! Performance sanity check (ignored by default; numbers are printed):
//! `cargo test --release -p agent-daemon sinks::audit::tests_perf -- --ignored --nocapture`
use std::time::{Duration, Instant};

use super::{AuditConfig, AuditStore, Cursor, EventFilter, testutil::*};
use crate::events::{Action, EventKind};

const EVENTS: usize = 1_000_000;
const BATCH: usize = 2000;

fn kind(i: usize) -> EventKind {
    match i % 10 {
        0 => exec("/usr/bin/cat", &["cat", &format!("/srv/data/file-{}.txt", i % 977)]),
        1 => EventKind::Connect {
            op: "connect".into(),
            protocol: crate::egress::EgressProtocol::Tcp,
            address: "10.0.0.9".parse().unwrap(),
            port: 443,
            name: None,
            action: Action::None,
        },
        _ => open_file(&format!("/srv/data/file-{}.txt", i % 977)),
    }
}

/// Best and median of `n` runs of `f`.
fn time<T>(n: usize, mut f: impl FnMut() -> T) -> (Duration, Duration, T) {
    let mut times = Vec::with_capacity(n);
    let mut last = None;
    for _ in 0..n {
        let start = Instant::now();
        last = Some(f());
        times.push(start.elapsed());
    }
    times.sort();
    (times[0], times[n / 2], last.unwrap())
}

#[test]
#[ignore = "slow: a million events; run with --release --ignored --nocapture"]
fn a_million_events_then_one_page_from_the_middle() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig { max_bytes: 0, max_age_days: 0, ..AuditConfig::default() };
    let mut store = AuditStore::open(&dir.path().join("audit.db"), &config).unwrap();
    store.write_batch(&run("noise", 2, 0, 1000, Some("ok"))).unwrap();
    let start = Instant::now();
    store.write_batch(&run("big", 1, 0, 0, None)).unwrap();
    for first in (0..EVENTS).step_by(BATCH) {
        let records: Vec<_> = (first..first + BATCH)
            .map(|i| {
                let t = at(0) + chrono::Duration::milliseconds(i as i64);
                record(1, event("big", t, 1000 + (i % 50) as u32, "cat", kind(i)))
            })
            .collect();
        store.write_batch(&records).unwrap();
    }
    let insert = start.elapsed();
    println!(
        "insert: {EVENTS} events in {:.2} s = {:.0} events/s ({} per batch); file {} MiB",
        insert.as_secs_f64(),
        EVENTS as f64 / insert.as_secs_f64(),
        BATCH,
        store.file_bytes() >> 20
    );
    let big = "big".parse().unwrap();
    let middle = Cursor(1 + 1002 + EVENTS as i64 / 2);
    let all = EventFilter::default();
    let (best, median, page) = time(21, || store.events(&big, &all, Some(middle), 100).unwrap());
    assert_eq!(page.events.len(), 100);
    assert!(page.next.is_some());
    println!("page of 100 after a cursor in the middle: best {best:?}, median {median:?}");
    assert!(median < Duration::from_millis(50), "{median:?}");
    let execs = EventFilter { kind: Some("exec".into()), ..Default::default() };
    let (best, median, page) = time(21, || store.events(&big, &execs, Some(middle), 100).unwrap());
    assert_eq!(page.events.len(), 100);
    println!("page of 100 execs after a cursor in the middle: best {best:?}, median {median:?}");
    let half = at(0) + chrono::Duration::milliseconds(EVENTS as i64 / 2);
    let since = EventFilter { since: Some(half), ..Default::default() };
    let (best, median, page) = time(5, || store.events(&big, &since, None, 100).unwrap());
    assert_eq!(page.events[0].time, half);
    println!("page of 100 since the middle time, no cursor: best {best:?}, median {median:?}");
    let both = EventFilter { since: Some(half), kind: Some("exec".into()), ..Default::default() };
    let (best, median, _) = time(5, || store.events(&big, &both, None, 100).unwrap());
    println!(
        "page of 100 execs since the middle time, no cursor: best {best:?}, median {median:?}"
    );
    let (best, median, tree) = time(3, || store.tree(&big).unwrap());
    println!(
        "process tree of the run ({} processes): best {best:?}, median {median:?}",
        tree.processes.len()
    );
}
