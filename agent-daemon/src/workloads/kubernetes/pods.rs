//! What a pod of this node means to paddock: which investigation and trust phase (from its
//! labels), which Job owns it, its QoS class (which places its cgroup) and its containers.
use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{Container, Pod},
    apimachinery::pkg::api::resource::Quantity,
};

use super::paths::{MAX_POD_UID, Qos, Runtime, parse_container_id, usable_pod_uid};
use crate::identity::{InvestigationId, Phase};

/// The labels that make a pod an investigation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelKeys {
    pub investigation: String,
    pub phase: String,
    /// The label naming the agent that runs the Job; without it, the pod's ServiceAccount.
    pub agent: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    pub name: String,
    pub runtime: Runtime,
    pub id: String,
    pub init: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub investigation: InvestigationId,
    /// `Err(label value)` when the phase label is not one of the four.
    pub phase: Result<Phase, String>,
    pub job: Option<JobRef>,
    pub qos: Qos,
    /// Containers the API reports as created (they have an id).
    pub containers: Vec<ContainerRef>,
    /// Succeeded or Failed: nothing more will start in it.
    pub finished: bool,
    /// The agent that runs it: its agent label, else `serviceaccount:<namespace>/<name>`.
    pub agent: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodClass {
    /// No investigation label: not ours.
    Other,
    Investigation(Box<PodView>),
    /// Labelled, but not usable: its investigation id, or its uid (which names its cgroup).
    BadId {
        namespace: String,
        name: String,
        problem: String,
    },
}

fn quantity(map: Option<&BTreeMap<String, Quantity>>, key: &str) -> Option<String> {
    map.and_then(|m| m.get(key)).map(|q| q.0.clone())
}

/// The QoS class as the kubelet computes it, for when the status does not say yet.
fn qos_of(containers: &[&Container]) -> Qos {
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let resources = c.resources.as_ref();
        let (requests, limits) = (
            resources.and_then(|r| r.requests.as_ref()),
            resources.and_then(|r| r.limits.as_ref()),
        );
        for resource in ["cpu", "memory"] {
            let limit = quantity(limits, resource);
            let request = quantity(requests, resource).or_else(|| limit.clone());
            any |= limit.is_some() || request.is_some();
            guaranteed &= limit.is_some() && limit == request;
        }
    }
    match (any, guaranteed) {
        (false, _) => Qos::BestEffort,
        (true, true) => Qos::Guaranteed,
        (true, false) => Qos::Burstable,
    }
}

pub fn classify(pod: &Pod, keys: &LabelKeys) -> PodClass {
    let meta = &pod.metadata;
    let namespace = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    let labels = meta.labels.as_ref();
    let Some(id) = labels.and_then(|l| l.get(&keys.investigation)) else {
        return PodClass::Other;
    };
    let investigation = match id.parse::<InvestigationId>() {
        Ok(id) => id,
        Err(e) => return PodClass::BadId { namespace, name, problem: e.to_string() },
    };
    let uid = meta.uid.clone().unwrap_or_default();
    if !usable_pod_uid(&uid) {
        let problem = format!(
            "pod uid {uid:?} is not a Kubernetes UID (1 to {MAX_POD_UID} letters, digits and \
             '-'): paddock cannot name its cgroup"
        );
        return PodClass::BadId { namespace, name, problem };
    }
    let phase_label = labels.and_then(|l| l.get(&keys.phase)).cloned().unwrap_or_default();
    let phase = phase_label.parse::<Phase>().map_err(|_| phase_label);
    let job = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "Job" && o.api_version.starts_with("batch/"))
        .map(|o| JobRef { namespace: namespace.clone(), name: o.name.clone(), uid: o.uid.clone() });
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let all: Vec<&Container> = spec
        .map(|s| s.init_containers.iter().flatten().chain(s.containers.iter()).collect())
        .unwrap_or_default();
    let qos = status
        .and_then(|s| s.qos_class.as_deref())
        .and_then(Qos::from_status)
        .unwrap_or_else(|| qos_of(&all));
    let mut containers = Vec::new();
    for (statuses, init) in [
        (status.and_then(|s| s.init_container_statuses.as_ref()), true),
        (status.and_then(|s| s.container_statuses.as_ref()), false),
    ] {
        for c in statuses.into_iter().flatten() {
            if let Some((runtime, id)) = c.container_id.as_deref().and_then(parse_container_id) {
                containers.push(ContainerRef {
                    name: c.name.clone(),
                    runtime,
                    id: id.to_owned(),
                    init,
                });
            }
        }
    }
    let finished = matches!(status.and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"));
    let agent = match labels.and_then(|l| l.get(&keys.agent)).filter(|a| !a.is_empty()) {
        Some(label) => label.clone(),
        None => {
            let account = spec.and_then(|s| s.service_account_name.as_deref()).unwrap_or("default");
            format!("serviceaccount:{namespace}/{account}")
        }
    };
    PodClass::Investigation(Box::new(PodView {
        uid,
        namespace,
        name,
        investigation,
        phase,
        job,
        qos,
        containers,
        finished,
        agent,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> LabelKeys {
        LabelKeys {
            investigation: "investigation-id".into(),
            phase: "trust-phase".into(),
            agent: "agent".into(),
        }
    }

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    fn base(labels: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "metadata": {
                "name": "inv-7-abcde", "namespace": "agents", "uid": "0b6c2a9e-1d2f-4e3a-9b8c-7d6e5f4a3b2c",
                "labels": labels,
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "inv-7", "uid": "j-1", "controller": true}]
            },
            "spec": {
                "nodeName": "node-a",
                "initContainers": [{"name": "fetch", "image": "x", "resources": {"requests": {"cpu": "100m"}}}],
                "containers": [{"name": "agent", "image": "x", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}}]
            },
            "status": {
                "phase": "Running",
                "initContainerStatuses": [{"name": "fetch", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "containerID": "containerd://aaaa"}],
                "containerStatuses": [{"name": "agent", "image": "x", "imageID": "", "ready": true, "restartCount": 0, "containerID": "containerd://bbbb"}]
            }
        })
    }

    #[test]
    fn a_labelled_job_pod_is_an_investigation() {
        let PodClass::Investigation(view) = classify(
            &pod(base(
                serde_json::json!({"investigation-id": "inv-7", "trust-phase": "read-only"}),
            )),
            &keys(),
        ) else {
            panic!("not an investigation")
        };
        assert_eq!(view.investigation.as_str(), "inv-7");
        assert_eq!(view.phase, Ok(Phase::ReadOnly));
        assert_eq!(
            view.job,
            Some(JobRef { namespace: "agents".into(), name: "inv-7".into(), uid: "j-1".into() })
        );
        assert_eq!(view.qos, Qos::Burstable, "computed from the spec: requests below limits");
        assert_eq!(
            view.containers
                .iter()
                .map(|c| (c.name.as_str(), c.id.as_str(), c.init))
                .collect::<Vec<_>>(),
            [("fetch", "aaaa", true), ("agent", "bbbb", false)]
        );
        assert!(!view.finished);
    }

    #[test]
    fn other_pods_unknown_phases_and_bad_ids() {
        assert_eq!(
            classify(&pod(base(serde_json::json!({"app": "web"}))), &keys()),
            PodClass::Other
        );
        let PodClass::Investigation(view) = classify(
            &pod(base(serde_json::json!({"investigation-id": "inv-7", "trust-phase": "admin"}))),
            &keys(),
        ) else {
            panic!()
        };
        assert_eq!(view.phase, Err("admin".into()));
        assert!(matches!(
            classify(&pod(base(serde_json::json!({"investigation-id": ""}))), &keys()),
            PodClass::BadId { .. }
        ));
        let custom = LabelKeys {
            investigation: "paddock.io/investigation".into(),
            phase: "paddock.io/phase".into(),
            agent: "agent".into(),
        };
        assert_eq!(
            classify(&pod(base(serde_json::json!({"investigation-id": "inv-7"}))), &custom),
            PodClass::Other
        );
    }

    /// Found by `pods_props`: the uid `../../` made the cgroup
    /// `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod../../.slice`, a
    /// directory outside the kubepods tree that paddock would have tracked.
    #[test]
    fn a_uid_that_is_not_a_uid_is_refused() {
        for uid in ["../../", "a/b", ""] {
            let mut p = base(serde_json::json!({"investigation-id": "inv-7"}));
            p["metadata"]["uid"] = serde_json::json!(uid);
            let PodClass::BadId { problem, .. } = classify(&pod(p), &keys()) else {
                panic!("{uid:?} accepted")
            };
            assert!(problem.contains("pod uid") && problem.contains("cgroup"), "{problem}");
        }
        let mut p = base(serde_json::json!({"investigation-id": "inv-7"}));
        p["metadata"].as_object_mut().unwrap().remove("uid");
        assert!(matches!(classify(&pod(p), &keys()), PodClass::BadId { .. }), "no uid at all");
    }

    #[test]
    fn qos_follows_the_kubelet_rules_unless_the_status_says() {
        let with = |resources: serde_json::Value| -> Qos {
            let mut p = base(serde_json::json!({"investigation-id": "a"}));
            p["spec"]["initContainers"] = serde_json::json!([]);
            p["spec"]["containers"][0]["resources"] = resources;
            let PodClass::Investigation(view) = classify(&pod(p), &keys()) else { panic!() };
            view.qos
        };
        assert_eq!(with(serde_json::json!({})), Qos::BestEffort);
        assert_eq!(
            with(serde_json::json!({"limits": {"cpu": "1", "memory": "1Gi"}})),
            Qos::Guaranteed
        );
        assert_eq!(
            with(
                serde_json::json!({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
            ),
            Qos::Guaranteed
        );
        assert_eq!(with(serde_json::json!({"requests": {"cpu": "1"}})), Qos::Burstable);
        let mut p = base(serde_json::json!({"investigation-id": "a"}));
        p["status"]["qosClass"] = serde_json::json!("Guaranteed");
        let PodClass::Investigation(view) = classify(&pod(p), &keys()) else { panic!() };
        assert_eq!(view.qos, Qos::Guaranteed, "the status wins");
    }

    #[test]
    fn finished_pods_and_unstarted_containers() {
        let mut p = base(serde_json::json!({"investigation-id": "a"}));
        p["status"]["phase"] = serde_json::json!("Succeeded");
        p["status"]["containerStatuses"][0].as_object_mut().unwrap().remove("containerID");
        let PodClass::Investigation(view) = classify(&pod(p), &keys()) else { panic!() };
        assert!(view.finished);
        assert_eq!(view.containers.len(), 1, "only the one with an id");
    }
}
