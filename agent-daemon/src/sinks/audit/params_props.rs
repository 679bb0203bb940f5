//! Property tests of the audit query parameters (`params`), as HTTP query strings and
//! command-line flags give them: nothing makes them panic, a refusal names a parameter that
//! was given, and well-formed parameters become the filter they say.
//!
//! Cases: `PROPTEST_CASES` (256 by default; `cargo xtask test` runs more).
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use proptest::prelude::*;

use super::{
    Cursor, EVENT_KINDS, Outcome,
    params::{ParamError, events_request, list_filter, parse_time, tree_run},
    query::MAX_PAGE,
};
use crate::identity::Phase;

const LIST: &[&str] = &["id", "phase", "since", "outcome", "limit"];
const EVENTS: &[&str] = &["run", "kind", "since", "until", "cursor", "limit"];

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-26T15:00:00Z").expect("a time").to_utc()
}

/// A value of any kind: text, numbers at the edges, times and ages, the names that count.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        "[+-]?[0-9]{0,22}[smhdw]?",
        concat!(
            "-?[0-9]{1,6}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}",
            "(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})"
        ),
        prop::sample::select(EVENT_KINDS.to_vec()).prop_map(str::to_owned),
        prop::sample::select(vec!["shadow", "read-only", "killed", "ok", "0", "10000", "10001"])
            .prop_map(str::to_owned),
    ]
}

fn pairs(known: &'static [&'static str]) -> impl Strategy<Value = Vec<(String, String)>> {
    let key = prop_oneof![
        4 => prop::sample::select(known).prop_map(str::to_owned),
        1 => any::<String>(),
    ];
    prop::collection::vec((key, value()), 0..6)
}

fn names_a_given_parameter(err: &ParamError, pairs: &[(String, String)]) -> bool {
    pairs.iter().any(|(k, _)| *k == err.param)
        && err.to_string().starts_with(&format!("parameter {}: ", err.param))
}

/// A time as RFC 3339 or as an age, and the time it means.
fn time() -> impl Strategy<Value = (String, DateTime<Utc>)> {
    prop_oneof![
        (0..253_402_300_799i64, 0..1_000_000_000u32).prop_map(|(s, ns)| {
            let t = DateTime::from_timestamp(s, ns).expect("in range");
            (t.to_rfc3339_opts(SecondsFormat::AutoSi, true), t)
        }),
        (
            0..1_000_000i64,
            prop::sample::select(vec![('s', 1), ('m', 60), ('h', 3600), ('d', 86_400)])
        )
            .prop_map(|(n, (unit, seconds))| {
                (format!("{n}{unit}"), now() - Duration::seconds(n * seconds))
            }),
    ]
}

fn investigation_id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?"
}

proptest! {
    #[test]
    fn prop_list_parameters_parse_or_name_a_given_parameter(pairs in pairs(LIST)) {
        if let Err(err) = list_filter(&pairs, now()) {
            prop_assert!(names_a_given_parameter(&err, &pairs), "{} for {:?}", err, pairs);
        }
    }

    #[test]
    fn prop_event_parameters_parse_or_name_a_given_parameter(pairs in pairs(EVENTS)) {
        if let Err(err) = events_request(&pairs, now()) {
            prop_assert!(names_a_given_parameter(&err, &pairs), "{} for {:?}", err, pairs);
        }
    }

    #[test]
    fn prop_tree_parameters_parse_or_name_a_given_parameter(pairs in pairs(&["run"])) {
        if let Err(err) = tree_run(&pairs) {
            prop_assert!(names_a_given_parameter(&err, &pairs), "{} for {:?}", err, pairs);
        }
    }

    #[test]
    fn prop_a_parameter_given_twice_is_refused_by_name(
        key in prop::sample::select([LIST, EVENTS].concat()),
        (a, b) in (value(), value()),
    ) {
        let pairs = vec![(key.to_owned(), a), (key.to_owned(), b)];
        for result in [
            list_filter(&pairs, now()).map(|_| ()),
            events_request(&pairs, now()).map(|_| ()),
            tree_run(&pairs).map(|_| ()),
        ] {
            let Err(err) = result else {
                return Err(TestCaseError::fail(format!("{key} twice accepted")));
            };
            prop_assert_eq!(&err.param, key);
        }
    }

    #[test]
    fn prop_well_formed_list_parameters_become_their_filter(
        id in prop::option::of(investigation_id()),
        phase in prop::option::of(prop::sample::select(Phase::ALL.to_vec())),
        since in prop::option::of(time()),
        outcome in prop::option::of(prop::sample::select(Outcome::ALL.to_vec())),
        limit in prop::option::of(1..=MAX_PAGE),
    ) {
        let mut pairs = Vec::new();
        let mut add = |k: &str, v: Option<String>| pairs.extend(v.map(|v| (k.to_owned(), v)));
        add("id", id.clone());
        add("phase", phase.map(|p| p.to_string()));
        add("since", since.as_ref().map(|s| s.0.clone()));
        add("outcome", outcome.map(|o| o.to_string()));
        add("limit", limit.map(|l| l.to_string()));
        let filter = list_filter(&pairs, now()).expect("well formed");
        prop_assert_eq!(filter.id.map(String::from), id);
        prop_assert_eq!(filter.phase, phase);
        prop_assert_eq!(filter.since, since.map(|s| s.1));
        prop_assert_eq!(filter.outcome, outcome);
        prop_assert_eq!(filter.limit, limit.unwrap_or(super::params::DEFAULT_LIMIT));
    }

    #[test]
    fn prop_well_formed_event_parameters_become_their_request(
        run in prop::option::of(1..=i64::MAX),
        kind in prop::option::of(prop::sample::select(EVENT_KINDS.to_vec())),
        times in (time(), time()),
        bounds in 0u8..4,
        cursor in prop::option::of(0..=i64::MAX),
        limit in prop::option::of(1..=MAX_PAGE),
    ) {
        let (a, b) = times;
        prop_assume!(a.1 != b.1 || bounds < 3);
        let (since, until) = if a.1 <= b.1 { (a, b) } else { (b, a) };
        let since = (bounds & 1 == 1).then_some(since);
        let until = (bounds & 2 == 2).then_some(until);
        let mut pairs = Vec::new();
        let mut add = |k: &str, v: Option<String>| pairs.extend(v.map(|v| (k.to_owned(), v)));
        add("run", run.map(|r| r.to_string()));
        add("kind", kind.map(str::to_owned));
        add("since", since.as_ref().map(|s| s.0.clone()));
        add("until", until.as_ref().map(|s| s.0.clone()));
        add("cursor", cursor.map(|c| c.to_string()));
        add("limit", limit.map(|l| l.to_string()));
        let request = events_request(&pairs, now()).expect("well formed");
        prop_assert_eq!(request.filter.run, run);
        prop_assert_eq!(request.filter.kind.as_deref(), kind);
        prop_assert_eq!(request.filter.since, since.map(|s| s.1));
        prop_assert_eq!(request.filter.until, until.map(|s| s.1));
        let cursor = cursor.map(|c| c.to_string().parse::<Cursor>().expect("a cursor"));
        prop_assert_eq!(request.cursor, cursor);
        prop_assert_eq!(request.limit, limit.unwrap_or(super::params::DEFAULT_LIMIT));
    }

    #[test]
    fn prop_times_are_what_they_say_or_refused_by_name(given in value(), (text, t) in time()) {
        prop_assert_eq!(parse_time("since", &text, now()), Ok(t));
        if let Err(err) = parse_time("until", &given, now()) {
            prop_assert_eq!(err.param, "until");
        }
    }
}
