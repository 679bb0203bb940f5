//! Property tests of the control protocol's JSON lines (`protocol`): no line a client sends
//! makes the daemon panic (deeply nested ones included), and every request and reply is
//! one line that reads back as it was written.
//!
//! Cases: `PROPTEST_CASES` (256 by default; `cargo xtask test` runs more).
use std::path::PathBuf;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::protocol::{Reply, Request, read_line, write_line};
use crate::{
    baseline::Mode,
    identity::Phase,
    lifecycle::admin::{AdminReply, AdminRequest},
    text_edits,
};

/// Any text: control characters, NUL, newlines and lone surrogates' escapes included.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<char>(), 0..24).prop_map(String::from_iter),
    ]
}

/// The four trust phases, and with `unknown` (the phase of pods with another label).
fn phases(unknown: bool) -> Vec<Phase> {
    let mut all = Phase::ALL.to_vec();
    all.extend(unknown.then_some(Phase::Unknown));
    all
}

fn admin_request(phases: Vec<Phase>) -> impl Strategy<Value = AdminRequest> {
    let phase = move || prop::sample::select(phases.clone());
    prop_oneof![
        Just(AdminRequest::List),
        phase().prop_map(|phase| AdminRequest::Export { phase }),
        (phase(), text(), text()).prop_map(|(phase, text, source)| AdminRequest::Diff {
            phase,
            text,
            source
        }),
        (phase(), text(), text()).prop_map(|(phase, text, source)| AdminRequest::Import {
            phase,
            text,
            source
        }),
        phase().prop_map(|phase| AdminRequest::Reset { phase }),
        (phase(), prop::sample::select(Mode::ALL.to_vec()))
            .prop_map(|(phase, mode)| AdminRequest::SetMode { phase, mode }),
        prop::option::of(phase()).prop_map(|phase| AdminRequest::Report { phase }),
    ]
}

/// The phase an admin request names.
fn named_phase(request: &AdminRequest) -> Option<Phase> {
    match request {
        AdminRequest::List => None,
        AdminRequest::Report { phase } => *phase,
        AdminRequest::Export { phase }
        | AdminRequest::Diff { phase, .. }
        | AdminRequest::Import { phase, .. }
        | AdminRequest::Reset { phase }
        | AdminRequest::SetMode { phase, .. } => Some(*phase),
    }
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (text(), text())
            .prop_map(|(investigation_id, phase)| Request::Run { investigation_id, phase }),
        any::<i32>().prop_map(|status| Request::Exited { status }),
        (text(), any::<u32>(), any::<i32>()).prop_map(|(investigation_id, instance, status)| {
            Request::Rejoin { investigation_id, instance, status }
        }),
        (any::<bool>(), prop::option::of(text()))
            .prop_map(|(follow, investigation)| Request::Events { follow, investigation }),
        Just(Request::Status),
        admin_request(phases(false)).prop_map(|request| Request::Admin { request }),
    ]
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        (text(), any::<u32>(), prop::option::of(text())).prop_map(|(cgroup, instance, pids)| {
            Reply::Ready {
                cgroup: PathBuf::from(cgroup),
                instance,
                pids_cgroup: pids.map(PathBuf::from),
            }
        }),
        prop::option::of(text()).prop_map(|killed| Reply::Outcome { killed }),
        any::<u64>().prop_map(|missed| Reply::Lagged { missed }),
        text().prop_map(|text| Reply::Admin { answer: AdminReply::Text { text } }),
        text().prop_map(|message| Reply::Admin { answer: AdminReply::Done { message } }),
        text().prop_map(|message| Reply::Error { message }),
    ]
}

/// JSON of any shape, with the tags and field names of requests where they count.
fn json_value() -> impl Strategy<Value = Value> {
    let word = prop::sample::select(vec![
        "op",
        "run",
        "exited",
        "events",
        "status",
        "admin",
        "request",
        "what",
        "list",
        "export",
        "diff",
        "import",
        "reset",
        "set_mode",
        "phase",
        "mode",
        "text",
        "source",
        "follow",
        "investigation",
        "investigation_id",
        "shadow",
        "read-only",
        "learn",
        "enforce",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        word.clone().prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    let key = prop_oneof![word.prop_map(str::to_owned), text()];
    leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn parse_both(line: &str) {
    let _ = serde_json::from_str::<Request>(line);
    let _ = serde_json::from_str::<Reply>(line);
}

proptest! {
    #[test]
    fn prop_any_line_is_a_message_or_an_error(line in text()) {
        parse_both(&line);
    }

    #[test]
    fn prop_json_of_any_shape_is_a_message_or_an_error(v in json_value()) {
        parse_both(&v.to_string());
        // The tags requests are told apart by, on any body.
        for op in ["run", "exited", "events", "status", "admin"] {
            parse_both(&json!({"op": op, "request": v, "investigation": v}).to_string());
        }
    }

    #[test]
    fn prop_deep_nesting_is_refused_not_a_crash(
        depth in 0usize..20_000,
        open in prop::sample::select(vec!["[", "{\"op\":", "{\"op\":\"admin\",\"request\":"]),
    ) {
        let line = open.repeat(depth) + "1";
        prop_assert!(serde_json::from_str::<Request>(&line).is_err());
        prop_assert!(serde_json::from_str::<Reply>(&line).is_err());
    }

    #[test]
    fn prop_edited_requests_are_a_message_or_an_error(
        r in request(),
        edits in text_edits::edits(text_edits::syntax_pieces()),
    ) {
        let line = text_edits::apply(serde_json::to_string(&r).expect("a request encodes"), &edits);
        parse_both(&line);
    }

    #[test]
    fn prop_requests_are_one_line_and_read_back(r in request()) {
        let mut line = Vec::new();
        write_line(&mut line, &r).expect("written");
        prop_assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        prop_assert_eq!(line.last(), Some(&b'\n'));
        prop_assert_eq!(read_line::<_, Request>(&mut line.as_slice()).expect("read"), Some(r));
    }

    #[test]
    fn prop_replies_are_one_line_and_read_back(r in reply()) {
        let mut line = Vec::new();
        write_line(&mut line, &r).expect("written");
        prop_assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        prop_assert_eq!(line.last(), Some(&b'\n'));
        prop_assert_eq!(read_line::<_, Reply>(&mut line.as_slice()).expect("read"), Some(r));
    }

    /// The judge keeps a baseline for the four trust phases only (asked for another's, it
    /// panics): an admin request that reads names one of them.
    #[test]
    fn prop_admin_requests_that_read_name_a_phase_with_a_baseline(
        r in admin_request(phases(true)),
    ) {
        let line = serde_json::to_string(&Request::Admin { request: r.clone() }).expect("encodes");
        match serde_json::from_str::<Request>(&line) {
            Ok(Request::Admin { request }) => {
                let phase = named_phase(&request);
                prop_assert!(phase.is_none_or(|p| Phase::ALL.contains(&p)), "{}", line);
                prop_assert_eq!(request, r);
            }
            Ok(other) => return Err(TestCaseError::fail(format!("{line} read as {other:?}"))),
            Err(e) => prop_assert_eq!(named_phase(&r), Some(Phase::Unknown), "{}: {}", line, e),
        }
    }
}
