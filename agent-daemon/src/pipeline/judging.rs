//! Each attributed event goes past the judge: learning, or verdicts and kill orders.
use chrono::Utc;

use super::{Pipeline, attribute::Attribution};
use crate::{
    enforce::KillOrder,
    events::{Event, EventKind},
    judge::{self, Verdict},
    outcome::Outcome,
};

impl Pipeline {
    /// Judge `event` of `slot`'s investigation; returns the verdict events to publish after it.
    pub(super) fn judge_event(&mut self, slot: u16, event: &Event) -> Vec<Event> {
        let Some(attribution) = self.active.get(&slot) else { return Vec::new() };
        let instance = attribution.info.instance;
        let mut verdicts = Vec::new();
        if event.pid != 0 {
            let alive = !matches!(event.kind, EventKind::Exit { .. });
            verdicts.extend(self.judge.process(instance, event.pid, alive));
        }
        if let EventKind::Fork { child_pid } = event.kind {
            verdicts.extend(self.judge.process(instance, child_pid, true));
        }
        for (observation, kernel) in judge::observations(&event.kind).into_iter().flatten() {
            verdicts.extend(self.judge.observe(instance, &observation, kernel));
        }
        let mut out: Vec<Event> =
            verdicts.into_iter().map(|v| self.act(slot, v, Some(event))).collect();
        // Entries a full baseline set did not learn: said once per investigation and set,
        // by the process that did it.
        out.extend(self.judge.take_notices().into_iter().map(|n| Event {
            kind: EventKind::BaselineCapped {
                set: n.set.as_str().into(),
                cap: n.cap as u64,
                subject: n.subject,
            },
            ..event.clone()
        }));
        out
    }

    /// The verdict's event, and the kill order when it kills.
    pub(super) fn act(&mut self, slot: u16, verdict: Verdict, evidence: Option<&Event>) -> Event {
        let attribution: &Attribution = &self.active[&slot];
        let now = Utc::now();
        let kind = EventKind::Verdict {
            deviation: verdict.deviation.kind,
            subject: verdict.deviation.subject.clone(),
            reason: verdict.deviation.reason.clone(),
            mode: verdict.mode,
            outcome: if verdict.kill { Outcome::Killed } else { Outcome::Flagged },
            baseline_revision: verdict.revision,
            action_time: evidence.map_or(now, |e| e.time),
        };
        let event = match evidence {
            Some(e) => Event { time: now, kind, ..e.clone() },
            None => attribution.lifecycle_event(now, kind),
        };
        if verdict.kill {
            self.enforcer.kill(KillOrder {
                slot,
                instance: attribution.info.instance,
                investigation: attribution.info.id.clone(),
                cgroup: attribution.info.dir.clone(),
                reason: verdict.deviation.reason,
            });
        }
        event
    }
}
