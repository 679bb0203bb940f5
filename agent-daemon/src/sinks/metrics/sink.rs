//! The metrics sink: counts what the hub publishes.
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::mpsc;

use super::{
    EventMetrics, KillLabels, PhaseKind, PhaseLabel, PhaseOutcome, PhaseWhat, VerdictLabels,
};
use crate::{
    events::{Event, EventKind},
    outcome::Outcome,
};

pub fn count(metrics: &EventMetrics, event: &Event) {
    let phase = event.phase.as_str().to_owned();
    let kind = event.kind.name();
    metrics.events.get_or_create(&PhaseKind { phase: phase.clone(), kind: kind.into() }).inc();
    match &event.kind {
        EventKind::Started { .. } | EventKind::Resumed { .. } => {
            metrics.active.get_or_create(&PhaseLabel { phase }).inc();
        }
        EventKind::Ended {
            outcome, lost_records, throttled_records, untracked, escapes, ..
        } => {
            metrics.active.get_or_create(&PhaseLabel { phase: phase.clone() }).dec();
            for (what, n) in [
                ("lost_records", lost_records),
                ("throttled_records", throttled_records),
                ("untracked", untracked),
                ("escapes", escapes),
            ] {
                if *n > 0 {
                    let labels = PhaseWhat { phase: phase.clone(), what: what.into() };
                    metrics.unseen.get_or_create(&labels).inc_by(*n);
                }
            }
            metrics
                .finished
                .get_or_create(&PhaseOutcome { phase, outcome: outcome.to_string() })
                .inc();
        }
        EventKind::Verdict { deviation, outcome, .. } => {
            let kind = deviation.as_str().to_owned();
            metrics
                .verdicts
                .get_or_create(&VerdictLabels {
                    phase: phase.clone(),
                    kind: kind.clone(),
                    outcome: outcome.to_string(),
                })
                .inc();
            if *outcome == Outcome::Killed {
                metrics.kills.get_or_create(&KillLabels { phase, reason: kind }).inc();
            }
        }
        _ => {
            if event.pid != 0 {
                let seconds =
                    (Utc::now() - event.time).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
                metrics.latency.observe(seconds);
            }
        }
    }
}

/// Count every event from the hub's queue until it closes.
pub async fn run(metrics: EventMetrics, mut events: mpsc::Receiver<Arc<Event>>) {
    while let Some(event) = events.recv().await {
        count(&metrics, &event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        baseline::{DeviationKind, Mode},
        identity::Phase,
        sinks::metrics::{encode, registry},
    };

    fn event(kind: EventKind) -> Event {
        Event {
            time: Utc::now(),
            investigation: "inv-1".parse().unwrap(),
            phase: Phase::ReadOnly,
            instance: 1,
            pid: 7,
            tid: None,
            ppid: 1,
            uid: 0,
            comm: "sh".into(),
            kind,
        }
    }

    #[test]
    fn counts_by_phase_and_kind_without_investigation_ids() {
        let metrics = EventMetrics::new();
        count(
            &metrics,
            &event(EventKind::Started { source: "local".into(), cgroup: "/x".into(), pod: None }),
        );
        count(&metrics, &event(EventKind::Fork { child_pid: 8 }));
        count(&metrics, &event(EventKind::Fork { child_pid: 9 }));
        count(
            &metrics,
            &event(EventKind::Verdict {
                deviation: DeviationKind::Exec,
                subject: "/bin/x".into(),
                reason: "r".into(),
                mode: Mode::Enforce,
                outcome: Outcome::Killed,
                baseline_revision: 1,
                action_time: Utc::now(),
            }),
        );
        let mut registry = registry();
        metrics.register(&mut registry);
        let text = encode(&registry).unwrap();
        assert!(
            text.contains(r#"paddock_events_total{phase="read-only",kind="fork"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"paddock_verdicts_total{phase="read-only",kind="exec",outcome="killed"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"paddock_kills_total{phase="read-only",reason="exec"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"paddock_investigations_active{phase="read-only"} 1"#), "{text}");
        assert!(text.contains("paddock_event_processing_seconds_count 2"), "{text}");
        assert!(!text.contains("inv-1"), "no investigation id in labels");
        assert!(
            text.contains("# TYPE paddock_events_total counter")
                || text.contains("# TYPE paddock_events counter"),
            "{text}"
        );
    }
}
