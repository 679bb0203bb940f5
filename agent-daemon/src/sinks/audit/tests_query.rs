//! Queries: order, filters, pages, runs, errors, and hostile input.
use super::{
    AuditError, AuditStore, Cursor, EVENT_KINDS, EventFilter, InvestigationFilter, Outcome,
    query::EventPage, testutil::*,
};
use crate::{
    events::{Event, EventKind},
    identity::{InvestigationId, Phase},
};

fn id(s: &str) -> InvestigationId {
    s.parse().unwrap()
}

/// `inv-1` (instance 1): started, ten events alternating open and exec, ended; with the
/// events of `inv-2` interleaved in the same batches. Returns inv-1's events in order.
fn two_investigations(store: &mut AuditStore) -> Vec<Event> {
    let mut mine = vec![event("inv-1", at(0), 0, "", started())];
    for i in 1..=10 {
        let kind = match i % 2 {
            0 => exec("/bin/true", &["true", &i.to_string()]),
            _ => open_file(&format!("/etc/f{i}")),
        };
        mine.push(event("inv-1", at(i), 100 + i as u32, "sh", kind));
    }
    mine.push(event("inv-1", at(11), 0, "", ended("ok", at(11))));
    let mut records = Vec::new();
    for (i, e) in mine.iter().enumerate() {
        records.push(record(1, e.clone()));
        records.push(record(2, event("inv-2", at(i as i64), 7, "x", open_file("/other"))));
    }
    for chunk in records.chunks(5) {
        store.write_batch(chunk).unwrap();
    }
    mine
}

fn all_pages(store: &AuditStore, inv: &str, filter: &EventFilter, limit: usize) -> Vec<EventPage> {
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.events(&id(inv), filter, cursor, limit).unwrap();
        cursor = page.next;
        pages.push(page);
        if cursor.is_none() {
            return pages;
        }
        assert!(pages.len() < 100, "paging does not end");
    }
}

#[test]
fn events_come_back_in_order_a_page_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store(dir.path());
    let mine = two_investigations(&mut store);
    assert_eq!(mine.len(), 12);
    let all = EventFilter::default();
    // 12 events, 5 a page: 5, 5, 2.
    let pages = all_pages(&store, "inv-1", &all, 5);
    let sizes: Vec<usize> = pages.iter().map(|p| p.events.len()).collect();
    assert_eq!(sizes, [5, 5, 2]);
    let got: Vec<Event> = pages.into_iter().flat_map(|p| p.events).collect();
    assert_eq!(got, mine);
    // A page boundary exactly at the end: the last full page says there is no next.
    let sizes: Vec<usize> =
        all_pages(&store, "inv-1", &all, 4).iter().map(|p| p.events.len()).collect();
    assert_eq!(sizes, [4, 4, 4]);
    let page = store.events(&id("inv-1"), &all, None, 12).unwrap();
    assert_eq!((page.events.len(), page.next), (12, None));
    // The cursor is a string that goes back in as it came out.
    let first = store.events(&id("inv-1"), &all, None, 3).unwrap();
    let text = first.next.unwrap().to_string();
    let second = store.events(&id("inv-1"), &all, Some(text.parse().unwrap()), 3).unwrap();
    assert_eq!(second.events, mine[3..6]);
}

#[test]
fn filters_by_kind_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store(dir.path());
    let mine = two_investigations(&mut store);
    let execs = EventFilter { kind: Some("exec".into()), ..Default::default() };
    let pages = all_pages(&store, "inv-1", &execs, 5);
    assert_eq!(pages.len(), 1, "five execs fill one page of five exactly");
    let expected: Vec<&Event> =
        mine.iter().filter(|e| matches!(e.kind, EventKind::Exec { .. })).collect();
    assert_eq!(pages[0].events.iter().collect::<Vec<_>>(), expected);
    let pages = all_pages(&store, "inv-1", &execs, 2);
    assert_eq!(pages.iter().map(|p| p.events.len()).collect::<Vec<_>>(), [2, 2, 1]);
    // since is inclusive, until exclusive.
    let window = EventFilter { since: Some(at(3)), until: Some(at(6)), ..Default::default() };
    let page = store.events(&id("inv-1"), &window, None, 100).unwrap();
    assert_eq!(page.events, mine[3..6]);
    let both = EventFilter { kind: Some("open".into()), ..window };
    let page = store.events(&id("inv-1"), &both, None, 100).unwrap();
    assert_eq!(page.events, [mine[3].clone(), mine[5].clone()]);
    // A filter nothing matches is an empty last page, not an error.
    let none = EventFilter { kind: Some("connect".into()), ..Default::default() };
    let page = store.events(&id("inv-1"), &none, None, 100).unwrap();
    assert_eq!((page.events.len(), page.next), (0, None));
    let late = EventFilter { since: Some(at(1000)), ..Default::default() };
    assert!(store.events(&id("inv-1"), &late, None, 10).unwrap().events.is_empty());
}

#[test]
fn an_investigation_run_many_times() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store(dir.path());
    store.write_batch(&run("again", 1, 0, 3, Some("ok"))).unwrap();
    store.write_batch(&run("again", 2, 100, 4, Some("flagged"))).unwrap();
    // The daemon restarted: instance numbers begin again at 1.
    store.write_batch(&run("again", 1, 200, 5, Some("killed"))).unwrap();
    store.write_batch(&run("again", 2, 300, 6, None)).unwrap();
    store.write_batch(&run("other", 3, 150, 2, Some("ok"))).unwrap();
    let filter = InvestigationFilter { id: Some(id("again")), ..Default::default() };
    let runs = store.list_investigations(&filter).unwrap();
    let seen: Vec<(u32, Outcome, u64)> =
        runs.iter().map(|r| (r.instance, r.outcome, r.events)).collect();
    assert_eq!(
        seen,
        [
            (2, Outcome::Running, 7),
            (1, Outcome::Killed, 7),
            (2, Outcome::Flagged, 6),
            (1, Outcome::Ok, 5)
        ]
    );
    assert_eq!(runs[1].reason.as_deref(), Some("exec of /usr/bin/curl"));
    assert_eq!(runs[1].ended, Some(at(206)));
    assert_eq!(runs[3].source.as_deref(), Some("local"));
    // Every run's events, in order; or one run's.
    let page = store.events(&id("again"), &EventFilter::default(), None, 100).unwrap();
    assert_eq!(page.events.len(), 5 + 6 + 7 + 7);
    assert!(page.events.windows(2).all(|w| w[0].time <= w[1].time));
    let one = EventFilter { run: Some(runs[2].run), ..Default::default() };
    let page = store.events(&id("again"), &one, None, 100).unwrap();
    assert_eq!(page.events.len(), 6);
    assert!(page.events.iter().all(|e| e.time >= at(100) && e.time < at(200)));
    assert_eq!(store.run(runs[2].run).unwrap(), runs[2]);
    // A run of another investigation is not one of this one's.
    let other = store
        .list_investigations(&InvestigationFilter { id: Some(id("other")), ..Default::default() })
        .unwrap();
    let wrong = EventFilter { run: Some(other[0].run), ..Default::default() };
    let err = store.events(&id("again"), &wrong, None, 100).unwrap_err();
    assert!(matches!(err, AuditError::UnknownRun(_)), "{err}");
}

#[test]
fn runs_are_listed_newest_first_and_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store(dir.path());
    store.write_batch(&run("a", 1, 0, 1, Some("ok"))).unwrap();
    store.write_batch(&run("b", 2, 10, 1, Some("flagged"))).unwrap();
    store.write_batch(&run("c", 3, 20, 1, Some("killed"))).unwrap();
    let mut shadow = run("d", 4, 30, 1, None);
    for r in &mut shadow {
        let mut e = (**r).clone();
        e.phase = Phase::Shadow;
        *r = std::sync::Arc::new(e);
    }
    store.write_batch(&shadow).unwrap();
    let ids = |filter: InvestigationFilter| -> Vec<String> {
        store.list_investigations(&filter).unwrap().into_iter().map(|r| r.id.to_string()).collect()
    };
    assert_eq!(ids(InvestigationFilter::default()), ["d", "c", "b", "a"]);
    assert_eq!(ids(InvestigationFilter { limit: 2, ..Default::default() }), ["d", "c"]);
    assert_eq!(
        ids(InvestigationFilter { phase: Some(Phase::Shadow), ..Default::default() }),
        ["d"]
    );
    assert_eq!(
        ids(InvestigationFilter { phase: Some(Phase::ReadOnly), ..Default::default() }),
        ["c", "b", "a"]
    );
    assert_eq!(
        ids(InvestigationFilter { since: Some(at(10)), ..Default::default() }),
        ["d", "c", "b"]
    );
    for (outcome, expected) in [
        (Outcome::Ok, "a"),
        (Outcome::Flagged, "b"),
        (Outcome::Killed, "c"),
        (Outcome::Running, "d"),
    ] {
        assert_eq!(
            ids(InvestigationFilter { outcome: Some(outcome), ..Default::default() }),
            [expected]
        );
    }
    let filter = InvestigationFilter {
        since: Some(at(5)),
        outcome: Some(Outcome::Ok),
        ..Default::default()
    };
    assert!(ids(filter).is_empty());
}

#[test]
fn bad_requests_are_errors_that_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store(dir.path());
    // Two batches: two chunks, seq 1 to 2 and 3 to 5.
    let records = run("inv-1", 1, 0, 3, Some("ok"));
    store.write_batch(&records[..2]).unwrap();
    store.write_batch(&records[2..]).unwrap();
    let all = EventFilter::default();
    let err = "zzz".parse::<Cursor>().unwrap_err();
    assert!(err.to_string().contains("bad cursor \"zzz\""), "{err}");
    let unknown = EventFilter { kind: Some("fork-bomb".into()), ..Default::default() };
    let err = store.events(&id("inv-1"), &unknown, None, 10).unwrap_err().to_string();
    assert!(err.contains("fork-bomb") && EVENT_KINDS.iter().all(|k| err.contains(k)), "{err}");
    let err = store.events(&id("inv-9"), &all, None, 10).unwrap_err();
    assert!(matches!(&err, AuditError::UnknownInvestigation(i) if i.as_str() == "inv-9"), "{err}");
    assert_eq!(err.to_string(), "no investigation inv-9 in the audit store");
    assert!(matches!(store.tree(&id("inv-9")), Err(AuditError::UnknownInvestigation(_))));
    for limit in [0, 10_001] {
        let err = store.events(&id("inv-1"), &all, None, limit).unwrap_err();
        assert!(matches!(err, AuditError::BadLimit { .. }), "{err}");
    }
    let err = store.run(12345).unwrap_err();
    assert!(matches!(err, AuditError::UnknownRun(12345)), "{err}");
    // A damaged chunk is an error naming it, not a panic.
    let valid: Vec<u8> = store
        .conn
        .query_row("SELECT body FROM chunks WHERE last_seq = 2", [], |r| r.get(0))
        .unwrap();
    let mut damaged = valid.clone();
    let at = damaged.len() / 2;
    damaged.truncate(at);
    store.conn.execute("UPDATE chunks SET body = ?1 WHERE last_seq = 2", [&damaged]).unwrap();
    let err = store.events(&id("inv-1"), &all, None, 10).unwrap_err();
    assert!(matches!(err, AuditError::BadChunk { chunk: 2, .. }), "{err}");
    assert!(err.to_string().contains("chunk 2"), "{err}");
    // An event whose JSON is not an event is an error naming the event.
    let mut chunk = super::chunk::Builder::default();
    chunk.push("started", 0, 0, 0, br#"{"kind": "started"}"#);
    chunk.push("open", 1, 100, 1, br#"{"kind": "#);
    let chunk = chunk.finish();
    store
        .conn
        .execute(
            "UPDATE chunks SET dir = ?1, body = ?2 WHERE last_seq = 2",
            rusqlite::params![chunk.dir, chunk.body],
        )
        .unwrap();
    let err = store.events(&id("inv-1"), &all, Some(Cursor(1)), 10).unwrap_err();
    assert!(matches!(err, AuditError::BadBody { seq: 2, .. }), "{err}");
    assert!(err.to_string().contains("event 2"), "{err}");
    // Past the damaged one, pages still read.
    assert_eq!(store.events(&id("inv-1"), &all, Some(Cursor(2)), 10).unwrap().events.len(), 3);
}

#[test]
fn hostile_input_is_only_ever_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store(dir.path());
    let nasty = "x'); DROP TABLE events; --";
    let mut records = run("inv-1", 1, 0, 2, None);
    records.push(record(1, event("inv-1", at(5), 9, nasty, exec(nasty, &[nasty, "' OR 1=1 --"]))));
    store.write_batch(&records).unwrap();
    store.write_batch(&run("inv-2", 2, 0, 2, Some("ok"))).unwrap();
    // An injected kind is refused before it reaches SQL.
    let kind = EventFilter { kind: Some("exec' OR 1=1 --".into()), ..Default::default() };
    let err = store.events(&id("inv-1"), &kind, None, 10).unwrap_err();
    assert!(matches!(err, AuditError::UnknownKind { .. }), "{err}");
    // Ids cannot hold quotes at all.
    assert!("inv-1' OR '1'='1".parse::<InvestigationId>().is_err());
    // Stored text with SQL in it comes back as it went in, and hurts nothing.
    let page = store
        .events(
            &id("inv-1"),
            &EventFilter { kind: Some("exec".into()), ..Default::default() },
            None,
            10,
        )
        .unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].comm, nasty);
    assert!(matches!(&page.events[0].kind, EventKind::Exec { path, .. } if path == nasty));
    // Bound phase, outcome and time filters select exactly, never everything.
    let filter = InvestigationFilter {
        phase: Some(Phase::ReadOnly),
        outcome: Some(Outcome::Ok),
        since: Some(at(0)),
        ..Default::default()
    };
    let rows = store.list_investigations(&filter).unwrap();
    assert_eq!(rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["inv-2"]);
    let count: i64 =
        store.conn.query_row("SELECT sum(count) FROM chunks", [], |r| r.get(0)).unwrap();
    assert_eq!(count, 4 + 4);
    let tables: i64 = store
        .conn
        .query_row("SELECT count(*) FROM sqlite_schema WHERE name = 'chunks'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 1);
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn event_queries_use_the_indexes_in_seq_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let plan = |sql: &str| -> String {
        let mut stmt = store.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    };
    let base = "SELECT last_seq, first_seq, run, count, dir FROM chunks WHERE investigation = 'a'";
    let tail = "AND last_seq > 5 ORDER BY last_seq";
    let p = plan(&format!("{base} {tail}"));
    assert!(p.contains("chunks_by_investigation (investigation=? AND rowid>?)"), "{p}");
    let p = plan(&format!(
        "{base} AND kinds & 16 != 0 AND max_time_ns >= 1 AND min_time_ns < 9 {tail}"
    ));
    assert!(p.contains("chunks_by_investigation (investigation=? AND rowid>?)"), "{p}");
    let p2 =
        plan("SELECT last_seq FROM chunks WHERE run = 3 AND kinds & 16 != 0 ORDER BY last_seq");
    assert!(p2.contains("chunks_by_run (run=?)"), "{p2}");
    for p in
        [p, p2, plan("SELECT last_seq FROM chunks WHERE 1 = 1 AND last_seq > 7 ORDER BY last_seq")]
    {
        assert!(!p.contains("TEMP B-TREE"), "no sort: {p}");
    }
}

#[test]
fn runs_left_open_by_a_dead_daemon_are_closed_as_interrupted_on_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = store(dir.path());
        store.write_batch(&run("done", 1, 0, 2, Some("ok"))).unwrap();
        store.write_batch(&run("cut", 2, 10, 3, None)).unwrap();
    } // the daemon dies: "cut" never ends
    let reader = AuditStore::open_read_only(&dir.path().join("audit.db")).unwrap();
    let running = InvestigationFilter { outcome: Some(Outcome::Running), ..Default::default() };
    assert_eq!(reader.list_investigations(&running).unwrap().len(), 1, "a reader changes nothing");
    let mut store = store(dir.path());
    let runs = store.list_investigations(&InvestigationFilter::default()).unwrap();
    let cut = runs.iter().find(|r| r.id.as_str() == "cut").unwrap();
    assert_eq!(cut.outcome, Outcome::Interrupted);
    assert_eq!(cut.ended, Some(at(13)), "closed at its last stored event");
    assert_eq!(cut.events, 4, "nothing stored is lost");
    let done = runs.iter().find(|r| r.id.as_str() == "done").unwrap();
    assert_eq!(done.outcome, Outcome::Ok, "ended runs are left alone");
    // The same instance number in the new daemon starts a new run, not the old one.
    store.write_batch(&run("cut", 2, 100, 1, Some("ok"))).unwrap();
    let runs = store
        .list_investigations(&InvestigationFilter {
            id: Some("cut".parse().unwrap()),
            ..Default::default()
        })
        .unwrap();
    let outcomes: Vec<Outcome> = runs.iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, [Outcome::Ok, Outcome::Interrupted]);
}

#[test]
fn a_run_an_adopting_daemon_resumes_stays_open_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = store(dir.path());
        store.write_batch(&run("kept", 7, 0, 2, None)).unwrap();
        store.write_batch(&run("cut", 8, 0, 1, None)).unwrap();
    } // the daemon stops; the next one adopts "kept" (instance 7) and not "cut"
    let path = dir.path().join("audit.db");
    let resuming = [(7, "kept".to_owned())];
    let config = crate::sinks::audit::AuditConfig::default();
    let mut store = AuditStore::open_resuming(&path, &config, &resuming).unwrap();
    let resumed = EventKind::Resumed {
        source: "local".into(),
        cgroup: "/p".into(),
        pod: None,
        doomed: false,
    };
    store
        .write_batch(&[
            record(7, event("kept", at(50), 0, "", resumed)),
            record(7, event("kept", at(51), 100, "cat", open_file("/later"))),
            record(7, event("kept", at(52), 0, "", ended("ok", at(52)))),
        ])
        .unwrap();
    let runs = store.list_investigations(&InvestigationFilter::default()).unwrap();
    assert_eq!(runs.len(), 2, "no new run for the resumed one: {runs:?}");
    let kept = runs.iter().find(|r| r.id.as_str() == "kept").unwrap();
    assert_eq!((kept.outcome, kept.events), (Outcome::Ok, 6), "{kept:?}");
    assert_eq!(kept.ended, Some(at(52)));
    let cut = runs.iter().find(|r| r.id.as_str() == "cut").unwrap();
    assert_eq!(cut.outcome, Outcome::Interrupted);
}
