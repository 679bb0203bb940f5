//! Kubernetes Events paddock records (core/v1, which every API server serves): what it
//! says about a pod or Job, built as the API takes it.
use k8s_openapi::{
    api::core::v1::{Event, EventSource, ObjectReference},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
};

use super::pods::JobRef;

pub const REASON_DEVIATION: &str = "PaddockDeviation";
pub const REASON_KILL: &str = "PaddockKill";
pub const REASON_UNKNOWN_PHASE: &str = "PaddockUnknownPhase";
/// A learning phase's baseline set is at its cap: the Job's behaviour was not all learned.
pub const REASON_BASELINE_CAPPED: &str = "PaddockBaselineCapped";

/// The object an Event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Target {
    pub fn job(job: &JobRef) -> Target {
        Target {
            kind: "Job",
            api_version: "batch/v1",
            namespace: job.namespace.clone(),
            name: job.name.clone(),
            uid: job.uid.clone(),
        }
    }

    pub fn pod(namespace: &str, name: &str, uid: &str) -> Target {
        Target {
            kind: "Pod",
            api_version: "v1",
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
        }
    }
}

/// A Warning Event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub target: Target,
    pub reason: &'static str,
    pub message: String,
}

/// Event messages are cut to what the API server keeps (1 KiB is plenty to read).
const MESSAGE_MAX: usize = 1024;

fn cut(message: &str) -> String {
    if message.len() <= MESSAGE_MAX {
        return message.to_owned();
    }
    let mut end = MESSAGE_MAX - 3;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

/// The Event for `notice`, reported by paddock on `node`; `count` is how many occurrences
/// it stands for (more than one when some were held back by the rate limit).
pub fn event(notice: &Notice, node: &str, count: u32) -> Event {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let message = if count > 1 {
        format!("{} ({} more like it in the last minute)", notice.message, count - 1)
    } else {
        notice.message.clone()
    };
    let t = &notice.target;
    Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}.paddock-", t.name)),
            namespace: Some(t.namespace.clone()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some(t.api_version.into()),
            kind: Some(t.kind.into()),
            namespace: Some(t.namespace.clone()),
            name: Some(t.name.clone()),
            uid: (!t.uid.is_empty()).then(|| t.uid.clone()),
            ..ObjectReference::default()
        },
        reason: Some(notice.reason.into()),
        message: Some(cut(&message)),
        type_: Some("Warning".into()),
        count: Some(count.clamp(1, i32::MAX as u32) as i32),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        source: Some(EventSource { component: Some("paddock".into()), host: Some(node.into()) }),
        reporting_component: Some("paddock".into()),
        reporting_instance: Some(node.into()),
        ..Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job_notice(message: &str) -> Notice {
        let job = JobRef { namespace: "agents".into(), name: "inv-7".into(), uid: "j-1".into() };
        Notice { target: Target::job(&job), reason: REASON_DEVIATION, message: message.into() }
    }

    #[test]
    fn a_deviation_is_a_warning_on_the_job() {
        let json = serde_json::to_value(event(&job_notice("exec /bin/false strayed"), "node-a", 1))
            .unwrap();
        assert_eq!(json["metadata"]["namespace"], "agents");
        assert_eq!(json["metadata"]["generateName"], "inv-7.paddock-");
        assert_eq!(
            json["involvedObject"],
            serde_json::json!({"apiVersion": "batch/v1", "kind": "Job", "namespace": "agents", "name": "inv-7", "uid": "j-1"})
        );
        assert_eq!(json["reason"], "PaddockDeviation");
        assert_eq!(json["type"], "Warning");
        assert_eq!(json["message"], "exec /bin/false strayed");
        assert_eq!(json["count"], 1);
        assert_eq!(json["source"]["host"], "node-a");
        assert!(json["firstTimestamp"].is_string() && json.get("eventTime").is_none());
    }

    #[test]
    fn held_back_ones_are_counted_and_long_messages_cut() {
        let e = event(&job_notice("x"), "n", 4);
        assert_eq!(e.count, Some(4));
        assert_eq!(e.message.as_deref(), Some("x (3 more like it in the last minute)"));
        let long = "é".repeat(2000);
        let e = event(&job_notice(&long), "n", 1);
        let m = e.message.unwrap();
        assert!(m.len() <= MESSAGE_MAX && m.ends_with("..."), "{}", m.len());
        let pod = Target::pod("agents", "p", "");
        let json = serde_json::to_value(event(
            &Notice { target: pod, reason: REASON_UNKNOWN_PHASE, message: "m".into() },
            "n",
            1,
        ))
        .unwrap();
        assert_eq!(json["involvedObject"]["kind"], "Pod");
        assert!(json["involvedObject"].get("uid").is_none());
    }
}
