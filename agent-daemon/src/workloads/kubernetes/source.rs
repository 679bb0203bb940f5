//! The pod watch: pods of this node (`spec.nodeName`) that carry both investigation labels,
//! listed then watched. Each becomes a tracked investigation (see `runs`); the daemon is
//! ready once the first full list has been taken in.
use std::{
    collections::HashSet,
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api,
    runtime::{WatchStreamExt as _, watcher},
};
use tokio_util::sync::CancellationToken;

use super::{
    config::{KubernetesConfig, UnknownPhasePolicy},
    pods::{LabelKeys, PodClass, PodView, classify},
    runs::Runs,
};
use crate::identity::Phase;

/// The field and label selectors of the watch.
pub fn selectors(node: &str, keys: &LabelKeys) -> (String, String) {
    (format!("spec.nodeName={node}"), format!("{},{}", keys.investigation, keys.phase))
}

/// What to do with a pod the API shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not ours, or not usable (the reason is logged once).
    Ignore(Option<String>),
    /// Finished before paddock saw it run: nothing to watch.
    Finished,
    /// Track it as `phase`; `warn_unknown` holds the phase label when it is none of the four.
    Track { view: Box<PodView>, phase: Phase, warn_unknown: Option<String> },
}

pub fn decide(class: PodClass, unknown: UnknownPhasePolicy) -> Decision {
    let view = match class {
        PodClass::Other => return Decision::Ignore(None),
        PodClass::BadId { namespace, name, problem } => {
            return Decision::Ignore(Some(format!("pod {namespace}/{name}: {problem}")));
        }
        PodClass::Investigation(view) => view,
    };
    if view.finished {
        return Decision::Finished;
    }
    match (view.phase.clone(), unknown) {
        (Ok(phase), _) => Decision::Track { view, phase, warn_unknown: None },
        (Err(label), UnknownPhasePolicy::Observe) => {
            Decision::Track { view, phase: Phase::Unknown, warn_unknown: Some(label) }
        }
        (Err(label), UnknownPhasePolicy::Ignore) => Decision::Ignore(Some(format!(
            "pod {}/{}: trust phase label {label:?} is not a phase (unknown_phase = \"ignore\")",
            view.namespace, view.name
        ))),
    }
}

pub struct PodSource {
    pub client: kube::Client,
    pub node: String,
    pub keys: LabelKeys,
    pub unknown: UnknownPhasePolicy,
    pub runs: Runs,
    pub ready: Arc<AtomicBool>,
    /// Ignored pods, logged once each.
    ignored: HashSet<String>,
}

impl PodSource {
    pub fn new(
        config: &KubernetesConfig,
        node: String,
        client: kube::Client,
        runs: Runs,
        ready: Arc<AtomicBool>,
    ) -> PodSource {
        PodSource {
            client,
            node,
            keys: LabelKeys {
                investigation: config.investigation_label.clone(),
                phase: config.phase_label.clone(),
                agent: config.agent_label.clone(),
            },
            unknown: config.unknown_phase,
            runs,
            ready,
            ignored: HashSet::new(),
        }
    }

    /// Watch until `shutdown`, then end every pod investigation.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let (fields, labels) = selectors(&self.node, &self.keys);
        tracing::info!(%fields, %labels, "watching pods");
        let api: Api<Pod> = Api::all(self.client.clone());
        let config = watcher::Config::default().fields(&fields).labels(&labels);
        let mut stream = pin!(watcher(api, config).default_backoff());
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut listed: Option<HashSet<String>> = None;
        loop {
            tokio::select! {
                event = stream.next() => match event {
                    Some(Ok(event)) => self.on_event(event, &mut listed).await,
                    Some(Err(e)) => self.watch_failed(&e),
                    None => {
                        tracing::error!("pod watch ended");
                        break;
                    }
                },
                _ = tick.tick() => self.runs.reconcile().await,
                () = shutdown.cancelled() => break,
            }
        }
        self.runs.end_all().await;
    }

    /// Log a failed list or watch; a refusal (401/403) says who was refused what, and how to
    /// fix it.
    fn watch_failed(&self, error: &watcher::Error) {
        match refusal(error) {
            Some((403, message)) => tracing::error!(
                node = %self.node,
                "pod watch failed: the API server refuses paddock (403 Forbidden): {message}; \
                 bind paddock's ServiceAccount to the paddock ClusterRole (deploy/10-rbac.yaml); \
                 not ready, retrying with backoff"
            ),
            Some((code, message)) => tracing::error!(
                node = %self.node,
                "pod watch failed: the API server does not accept paddock's credentials \
                 ({code} Unauthorized): {message}; check kubernetes.kubeconfig or the \
                 ServiceAccount token; not ready, retrying with backoff"
            ),
            None => tracing::warn!(error = %error, "pod watch failed; retrying with backoff"),
        }
    }

    async fn on_event(&mut self, event: watcher::Event<Pod>, listed: &mut Option<HashSet<String>>) {
        match event {
            watcher::Event::Init => *listed = Some(HashSet::new()),
            watcher::Event::InitApply(pod) => {
                if let (Some(listed), Some(uid)) = (listed.as_mut(), pod.metadata.uid.clone()) {
                    listed.insert(uid);
                }
                self.apply(&pod).await;
            }
            watcher::Event::InitDone => {
                // Pods known before a re-list that it no longer shows are gone.
                let listed = listed.take().unwrap_or_default();
                for uid in self.runs.uids() {
                    if !listed.contains(&uid) {
                        self.runs.gone(&uid);
                    }
                }
                if !self.ready.swap(true, Ordering::Relaxed) {
                    self.runs.take_orphans();
                    tracing::info!(pods = listed.len(), "pod list synced: ready");
                }
            }
            watcher::Event::Apply(pod) => self.apply(&pod).await,
            watcher::Event::Delete(pod) => {
                if let Some(uid) = &pod.metadata.uid {
                    self.runs.gone(uid);
                    self.ignored.remove(uid);
                }
            }
        }
    }

    async fn apply(&mut self, pod: &Pod) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let deleting = pod.metadata.deletion_timestamp.is_some();
        let class = classify(pod, &self.keys);
        if self.runs.knows(&uid) {
            if let PodClass::Investigation(view) = class {
                self.runs.update(*view, deleting);
            }
            return;
        }
        match decide(class, self.unknown) {
            Decision::Ignore(reason) => {
                if let Some(reason) = reason
                    && self.ignored.insert(uid)
                {
                    tracing::warn!("ignoring {reason}");
                }
            }
            Decision::Finished => {}
            Decision::Track { view, phase, warn_unknown } => {
                // Being deleted (a daemon restarted during its termination): watched until
                // its last process is gone.
                let latest = deleting.then(|| (*view).clone());
                self.runs.start(*view, phase, warn_unknown).await;
                if let Some(view) = latest {
                    self.runs.update(view, true);
                }
            }
        }
    }
}

/// The code and message of an authentication or authorization refusal (401, 403).
fn refusal(error: &watcher::Error) -> Option<(u16, &str)> {
    let status = match error {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s,
        watcher::Error::WatchError(s) => s,
        _ => return None,
    };
    matches!(status.code, 401 | 403).then_some((status.code, status.message.as_str()))
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

    fn pod(labels: serde_json::Value, phase: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "agents", "uid": "u-1", "labels": labels},
            "spec": {"nodeName": "node-a", "containers": [{"name": "agent", "image": "x"}]},
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    fn decide_for(labels: serde_json::Value, phase: &str, unknown: UnknownPhasePolicy) -> Decision {
        decide(classify(&pod(labels, phase), &keys()), unknown)
    }

    #[test]
    fn selectors_name_the_node_and_require_both_labels() {
        assert_eq!(
            selectors("node-a", &keys()),
            ("spec.nodeName=node-a".to_owned(), "investigation-id,trust-phase".to_owned())
        );
        let custom = LabelKeys {
            investigation: "paddock.io/inv".into(),
            phase: "paddock.io/phase".into(),
            agent: "agent".into(),
        };
        assert_eq!(selectors("n", &custom).1, "paddock.io/inv,paddock.io/phase");
    }

    #[test]
    fn labelled_running_pods_are_tracked_in_their_phase() {
        let labels = serde_json::json!({"investigation-id": "inv-7", "trust-phase": "read-only"});
        for status in ["Pending", "Running"] {
            let Decision::Track { view, phase, warn_unknown } =
                decide_for(labels.clone(), status, UnknownPhasePolicy::Observe)
            else {
                panic!("{status}")
            };
            assert_eq!(
                (view.investigation.as_str(), phase, warn_unknown),
                ("inv-7", Phase::ReadOnly, None)
            );
        }
    }

    #[test]
    fn finished_pods_are_not_begun() {
        let labels = serde_json::json!({"investigation-id": "inv-7", "trust-phase": "shadow"});
        for status in ["Succeeded", "Failed"] {
            assert_eq!(
                decide_for(labels.clone(), status, UnknownPhasePolicy::Observe),
                Decision::Finished
            );
        }
    }

    #[test]
    fn unknown_phases_are_observed_or_ignored_per_config() {
        let labels = serde_json::json!({"investigation-id": "inv-7", "trust-phase": "admin"});
        let Decision::Track { phase, warn_unknown, .. } =
            decide_for(labels.clone(), "Running", UnknownPhasePolicy::Observe)
        else {
            panic!()
        };
        assert_eq!((phase, warn_unknown.as_deref()), (Phase::Unknown, Some("admin")));
        let Decision::Ignore(Some(reason)) =
            decide_for(labels, "Running", UnknownPhasePolicy::Ignore)
        else {
            panic!()
        };
        assert!(reason.contains("agents/p") && reason.contains("admin"), "{reason}");
    }

    #[test]
    fn other_and_badly_labelled_pods_are_ignored() {
        assert_eq!(
            decide_for(serde_json::json!({"app": "x"}), "Running", UnknownPhasePolicy::Observe),
            Decision::Ignore(None)
        );
        let Decision::Ignore(Some(reason)) = decide_for(
            serde_json::json!({"investigation-id": "-bad-", "trust-phase": "shadow"}),
            "Running",
            UnknownPhasePolicy::Observe,
        ) else {
            panic!()
        };
        assert!(reason.contains("agents/p"), "{reason}");
    }

    #[test]
    fn refusals_are_told_apart_from_other_failures() {
        let status = |code| {
            kube::core::Status::failure("pods is forbidden: User \"u\" cannot list", "Forbidden")
                .with_code(code)
                .boxed()
        };
        let listed = watcher::Error::InitialListFailed(kube::Error::Api(status(403)));
        assert_eq!(refusal(&listed), Some((403, "pods is forbidden: User \"u\" cannot list")));
        let watched = watcher::Error::WatchError(status(401));
        assert_eq!(refusal(&watched).map(|r| r.0), Some(401));
        assert_eq!(refusal(&watcher::Error::WatchError(status(410))), None);
        assert_eq!(refusal(&watcher::Error::NoResourceVersion), None);
    }
}
