//! An alert made from a verdict, and the JSON shapes receivers are sent.
use std::{collections::BTreeMap, sync::Arc};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::{
    baseline::DeviationKind,
    events::{Event, EventKind},
    outcome::Outcome,
};

pub const DEVIATION: &str = "PaddockDeviation";
pub const KILL: &str = "PaddockKill";

/// One alert: Alertmanager's labels and annotations, and the event it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// `PaddockDeviation` or `PaddockKill`; also the `alertname` label.
    pub name: &'static str,
    pub labels: BTreeMap<&'static str, String>,
    pub annotations: BTreeMap<&'static str, String>,
    /// When the deviating action happened.
    pub starts_at: DateTime<Utc>,
    pub event: Arc<Event>,
}

impl Alert {
    /// The alert for a verdict event; `None` for every other event, and for a verdict
    /// whose outcome is neither `flagged` nor `killed`.
    pub fn from_event(event: &Arc<Event>, node: &str) -> Option<Alert> {
        let EventKind::Verdict {
            deviation,
            subject,
            reason,
            mode,
            outcome,
            baseline_revision,
            action_time,
        } = &event.kind
        else {
            return None;
        };
        let (name, severity) = match outcome {
            Outcome::Flagged => (DEVIATION, "warning"),
            Outcome::Killed => (KILL, "critical"),
            _ => return None,
        };
        let labels = BTreeMap::from([
            ("alertname", name.to_owned()),
            ("investigation", event.investigation.to_string()),
            ("phase", event.phase.to_string()),
            ("node", node.to_owned()),
            ("kind", deviation.to_string()),
            ("severity", severity.to_owned()),
        ]);
        let at = rfc3339(action_time);
        let summary = format!(
            "investigation {} ({}) {outcome}: {}",
            event.investigation,
            event.phase,
            what(*deviation, subject)
        );
        let evidence = format!(
            "pid {}, ppid {}, uid {}, comm {}, subject {subject}, at {at}",
            event.pid, event.ppid, event.uid, event.comm
        );
        let baseline =
            format!("{} baseline revision {baseline_revision}, {mode} mode", event.phase);
        let annotations = BTreeMap::from([
            ("summary", summary),
            ("description", reason.clone()),
            ("evidence", evidence),
            ("baseline", baseline),
        ]);
        Some(Alert { name, labels, annotations, starts_at: *action_time, event: event.clone() })
    }

    /// Alertmanager's v2 body (`POST /api/v2/alerts`): an array of postable alerts.
    pub fn alertmanager_body(alerts: &[Arc<Alert>]) -> Value {
        Value::Array(alerts.iter().map(|a| a.alertmanager_json(None)).collect())
    }

    /// One alert of Alertmanager's v2 array.
    pub fn alertmanager_json(&self, generator_url: Option<&str>) -> Value {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Postable<'a> {
            labels: &'a BTreeMap<&'static str, String>,
            annotations: &'a BTreeMap<&'static str, String>,
            starts_at: String,
            #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
            generator_url: Option<&'a str>,
        }
        json(&Postable {
            labels: &self.labels,
            annotations: &self.annotations,
            starts_at: rfc3339(&self.starts_at),
            generator_url,
        })
    }

    /// The webhook and stdout shape: one object with the alert and its whole event.
    pub fn object_json(&self) -> Value {
        #[derive(Serialize)]
        struct Object<'a> {
            alert: &'static str,
            labels: &'a BTreeMap<&'static str, String>,
            annotations: &'a BTreeMap<&'static str, String>,
            starts_at: String,
            event: &'a Event,
        }
        json(&Object {
            alert: self.name,
            labels: &self.labels,
            annotations: &self.annotations,
            starts_at: rfc3339(&self.starts_at),
            event: &self.event,
        })
    }
}

/// What was done, for the summary line: `exec of /usr/bin/curl`.
fn what(kind: DeviationKind, subject: &str) -> String {
    match kind {
        DeviationKind::Syscall => format!("syscall {subject}"),
        DeviationKind::Exec => format!("exec of {subject}"),
        DeviationKind::Egress => format!("egress to {subject}"),
        DeviationKind::FileWrite => format!("write to {subject}"),
        DeviationKind::FileRead => format!("read of {subject}"),
        DeviationKind::Unix => format!("connect to unix socket {subject}"),
        DeviationKind::Socket => format!("socket {subject}"),
        DeviationKind::IoUring => format!("io_uring {subject}"),
        DeviationKind::Dns => format!("DNS query for {subject}"),
        DeviationKind::Envelope => format!("envelope: {subject}"),
        DeviationKind::LostRecords => "records lost".into(),
        DeviationKind::Untracked => "processes left untracked".into(),
        DeviationKind::Escape => format!("{subject} left its cgroups"),
        DeviationKind::UnreadablePath => format!("{subject} of an unreadable path"),
        DeviationKind::Control => format!("a request to paddock: {subject}"),
        DeviationKind::Unwatched => "a refusal or kill by the kernel while no daemon ran".into(),
    }
}

fn rfc3339(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Serialising these maps of strings cannot fail; `Null` stands in if it ever did.
fn json(value: &impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
#[path = "alert_tests.rs"]
mod tests;
