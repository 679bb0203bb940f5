use serde_json::json;

use super::*;
use crate::sinks::alerts::tests::{time, verdict};

#[test]
fn only_flagged_and_killed_verdicts_make_alerts() {
    let flagged = Alert::from_event(&verdict("flagged"), "node-a").unwrap();
    assert_eq!(flagged.name, "PaddockDeviation");
    assert_eq!(flagged.labels["severity"], "warning");
    let killed = Alert::from_event(&verdict("killed"), "node-a").unwrap();
    assert_eq!(killed.name, "PaddockKill");
    assert_eq!(killed.labels["severity"], "critical");
    assert!(Alert::from_event(&verdict("ok"), "node-a").is_none());

    let mut ended = (*verdict("killed")).clone();
    ended.kind = EventKind::Ended {
        syscalls: Default::default(),
        egress_bytes: 0,
        egress_packets: 0,
        events: 3,
        outcome: Outcome::Killed,
        reason: Some("exec".into()),
        emptied_at: time("2026-11-26T15:00:02Z"),
        lost_records: 0,
        throttled_records: 0,
        untracked: 0,
        escapes: 0,
    };
    assert!(Alert::from_event(&Arc::new(ended), "node-a").is_none());
}

#[test]
fn summary_names_the_investigation_and_the_act() {
    let alert = Alert::from_event(&verdict("killed"), "node-a").unwrap();
    assert_eq!(
        alert.annotations["summary"],
        "investigation inv-7 (read-only) killed: exec of /usr/bin/curl"
    );
    assert_eq!(alert.annotations["baseline"], "read-only baseline revision 4, enforce mode");
}

#[test]
fn alertmanager_shape_is_the_v2_postable_array() {
    let alert = Arc::new(Alert::from_event(&verdict("killed"), "node-a").unwrap());
    let body = Alert::alertmanager_body(&[alert]);
    assert_eq!(
        body,
        json!([{
            "labels": {
                "alertname": "PaddockKill",
                "investigation": "inv-7",
                "phase": "read-only",
                "node": "node-a",
                "kind": "exec",
                "severity": "critical",
            },
            "annotations": {
                "summary": "investigation inv-7 (read-only) killed: exec of /usr/bin/curl",
                "description": "/usr/bin/curl is not among the read-only baseline's executables",
                "evidence": "pid 4242, ppid 4200, uid 1000, comm sh, subject /usr/bin/curl, \
                             at 2026-11-26T15:00:01.125Z",
                "baseline": "read-only baseline revision 4, enforce mode",
            },
            "startsAt": "2026-11-26T15:00:01.125Z",
        }])
    );
    let one = Alert::from_event(&verdict("flagged"), "n").unwrap();
    assert_eq!(one.alertmanager_json(Some("http://x/inv-7"))["generatorURL"], "http://x/inv-7");
}

#[test]
fn object_shape_carries_the_alert_and_the_whole_event() {
    let event = verdict("flagged");
    let alert = Alert::from_event(&event, "node-a").unwrap();
    let body = alert.object_json();
    assert_eq!(body["alert"], "PaddockDeviation");
    assert_eq!(body["labels"]["kind"], "exec");
    assert_eq!(body["labels"]["node"], "node-a");
    assert_eq!(body["annotations"]["description"], alert.annotations["description"]);
    assert_eq!(body["starts_at"], "2026-11-26T15:00:01.125Z");
    assert_eq!(body["event"], serde_json::to_value(&*event).unwrap());
    assert_eq!(body["event"]["kind"], "verdict");
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 5, "{keys:?}");
}
