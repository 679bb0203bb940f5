//! A blocking admin client of the test API server (see `kube`), with what the Kubernetes tests do to it: namespaces, Jobs,
//! pods and their status (the tests play the kubelet), Events.
use std::{path::PathBuf, time::Duration};

use k8s_openapi::api::{
    batch::v1::Job,
    core::v1::{Event, Namespace, Pod},
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

pub struct Cluster {
    rt: tokio::runtime::Runtime,
    client: Client,
    pub kubeconfig: PathBuf,
}

/// A Job the test made: its name and uid.
#[derive(Debug, Clone)]
pub struct JobRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Cluster {
    pub fn connect() -> Cluster {
        let env = crate::kube_env();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = rt.block_on(env.client(crate::kube::ADMIN_TOKEN));
        Cluster { rt, client, kubeconfig: env.kubeconfig }
    }

    fn api<K>(&self, namespace: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// A fresh namespace, deleted again when the returned guard drops.
    pub fn namespace(&self, prefix: &str) -> NamespaceGuard<'_> {
        let name = format!("{prefix}-{}-{}", std::process::id(), crate::unique());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        let api: Api<Namespace> = Api::all(self.client.clone());
        self.rt.block_on(api.create(&PostParams::default(), &ns)).expect("create namespace");
        NamespaceGuard { cluster: self, name }
    }

    /// A Job labelled like an investigation's, with `parallelism: 0` so that the Job
    /// controller starts no pod of its own: the test makes the pod.
    pub fn create_job(&self, ns: &str, name: &str, labels: &Value) -> JobRef {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "parallelism": 0,
                "backoffLimit": 0,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "agent", "image": "agent:test"}]}
                }
            }
        }))
        .unwrap();
        let job = self
            .rt
            .block_on(self.api::<Job>(ns).create(&PostParams::default(), &job))
            .expect("create job");
        JobRef { namespace: ns.into(), name: name.into(), uid: job.metadata.uid.unwrap() }
    }

    /// A pod on `node` with `labels`, owned by `job` when given; returns its uid.
    pub fn create_pod(
        &self,
        ns: &str,
        name: &str,
        node: &str,
        labels: &Value,
        job: Option<&JobRef>,
    ) -> String {
        let owners = job.map(|j| {
            json!([{"apiVersion": "batch/v1", "kind": "Job", "name": j.name, "uid": j.uid, "controller": true}])
        });
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels, "ownerReferences": owners.unwrap_or(json!([]))},
            "spec": {"nodeName": node, "restartPolicy": "Never", "containers": [{"name": "agent", "image": "agent:test"}]}
        }))
        .unwrap();
        let pod = self
            .rt
            .block_on(self.api::<Pod>(ns).create(&PostParams::default(), &pod))
            .expect("create pod");
        pod.metadata.uid.unwrap()
    }

    /// What a kubelet reports once the container runs: phase Running, the container's id.
    pub fn set_running(&self, ns: &str, pod: &str, container_id: &str) {
        self.patch_status(ns, pod, json!({
            "phase": "Running",
            "qosClass": "BestEffort",
            "containerStatuses": [{
                "name": "agent", "image": "agent:test", "imageID": "", "ready": true, "restartCount": 0,
                "containerID": format!("containerd://{container_id}"),
                "state": {"running": {"startedAt": "2026-11-26T00:00:00Z"}}
            }]
        }));
    }

    pub fn set_phase(&self, ns: &str, pod: &str, phase: &str) {
        self.patch_status(ns, pod, json!({"phase": phase}));
    }

    fn patch_status(&self, ns: &str, pod: &str, status: Value) {
        self.rt
            .block_on(self.api::<Pod>(ns).patch_status(
                pod,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            ))
            .expect("patch pod status");
    }

    /// Delete the pod at once (no kubelet would confirm a graceful deletion).
    pub fn delete_pod(&self, ns: &str, pod: &str) {
        let params = DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() };
        self.rt.block_on(self.api::<Pod>(ns).delete(pod, &params)).expect("delete pod");
    }

    /// The Job, or `None` once it is gone.
    pub fn job(&self, ns: &str, name: &str) -> Option<Job> {
        self.rt.block_on(self.api::<Job>(ns).get_opt(name)).expect("get job")
    }

    /// Every core/v1 Event of the namespace, as JSON.
    pub fn events(&self, ns: &str) -> Vec<Value> {
        let list = self
            .rt
            .block_on(self.api::<Event>(ns).list(&ListParams::default()))
            .expect("list events");
        list.items.into_iter().map(|e| serde_json::to_value(e).unwrap()).collect()
    }

    /// Wait until an Event of the namespace satisfies `wanted`; panics with the Events seen.
    pub fn wait_for_event(
        &self,
        ns: &str,
        within: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Value {
        crate::eventually(
            within,
            Duration::from_millis(200),
            || {
                let events = self.events(ns);
                events.iter().find(|e| wanted(e)).cloned().ok_or(events)
            },
            |events| {
                format!(
                    "no such Kubernetes Event in {ns} within {within:?}; there are:\n{}",
                    crate::dump(&events)
                )
            },
        )
    }
}

pub struct NamespaceGuard<'a> {
    cluster: &'a Cluster,
    pub name: String,
}

impl Drop for NamespaceGuard<'_> {
    fn drop(&mut self) {
        let api: Api<Namespace> = Api::all(self.cluster.client.clone());
        let _ = self.cluster.rt.block_on(api.delete(&self.name, &DeleteParams::background()));
    }
}

/// `deploy/`'s namespace, ServiceAccount, ClusterRole and ClusterRoleBinding, applied (an
/// idempotent server-side apply); the ClusterRoleBinding and ClusterRole are deleted again
/// when this drops (the namespace and ServiceAccount grant nothing and stay).
pub struct RbacGuard<'a> {
    cluster: &'a Cluster,
}

impl Cluster {
    /// Apply `deploy/00-namespace.yaml` and `deploy/10-rbac.yaml` as admin, and wait until
    /// the authorizer lets `paddock-token` list pods.
    pub fn apply_deploy_rbac(&self) -> RbacGuard<'_> {
        for file in ["00-namespace.yaml", "10-rbac.yaml"] {
            for doc in crate::kube::deploy_manifest(file) {
                self.rt
                    .block_on(crate::kube::apply(&self.client, &doc, false))
                    .unwrap_or_else(|e| panic!("{file}: {e}"));
            }
        }
        let paddock = self.rt.block_on(crate::kube_env().client(crate::kube::PADDOCK_TOKEN));
        let pods: Api<Pod> = Api::all(paddock);
        crate::eventually(
            Duration::from_secs(20),
            Duration::from_millis(100),
            || self.rt.block_on(pods.list(&ListParams::default().limit(1))),
            |e| format!("the paddock ClusterRoleBinding never took effect: {e}"),
        );
        RbacGuard { cluster: self }
    }

    /// A copy of the admin kubeconfig, written in `dir`, that authenticates with `token`.
    pub fn kubeconfig_for(&self, token: &str, dir: &std::path::Path) -> PathBuf {
        let text = std::fs::read_to_string(&self.kubeconfig).expect("read the kubeconfig");
        assert!(text.contains(crate::kube::ADMIN_TOKEN), "no admin token in {text}");
        let path = dir.join(format!("kubeconfig-{token}"));
        std::fs::write(&path, text.replace(crate::kube::ADMIN_TOKEN, token))
            .expect("write the kubeconfig");
        path
    }
}

impl Drop for RbacGuard<'_> {
    fn drop(&mut self) {
        use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
        let client = &self.cluster.client;
        let params = DeleteParams::default();
        let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
        let _ = self.cluster.rt.block_on(bindings.delete("paddock", &params));
        let roles: Api<ClusterRole> = Api::all(client.clone());
        let _ = self.cluster.rt.block_on(roles.delete("paddock", &params));
    }
}

/// The `TrustPhase` objects' API (`deploy/05-crd-trust-phases.yaml`).
fn phase_resource() -> kube::api::ApiResource {
    kube::api::ApiResource {
        group: "paddock.io".into(),
        version: "v1alpha1".into(),
        api_version: "paddock.io/v1alpha1".into(),
        kind: "TrustPhase".into(),
        plural: "trustphases".into(),
    }
}

/// The four trust phases.
pub const PHASES: [&str; 4] = ["shadow", "read-only", "limited-write", "autonomous"];

impl Cluster {
    fn phases_api(&self) -> Api<kube::api::DynamicObject> {
        Api::all_with(self.client.clone(), &phase_resource())
    }

    /// Apply `deploy/05-crd-trust-phases.yaml` (idempotent) and wait until the API serves
    /// the objects.
    pub fn install_trust_phase_crd(&self) {
        for doc in crate::kube::deploy_manifest("05-crd-trust-phases.yaml") {
            self.rt
                .block_on(crate::kube::apply(&self.client, &doc, false))
                .unwrap_or_else(|e| panic!("05-crd-trust-phases.yaml: {e}"));
        }
        crate::eventually(
            Duration::from_secs(30),
            Duration::from_millis(100),
            || self.rt.block_on(self.phases_api().list(&ListParams::default().limit(1))),
            |e| format!("the TrustPhase CRD is not served: {e}"),
        );
    }

    /// The four phase objects named `<prefix><phase>`, in learn mode with empty baselines
    /// (as `deploy/25-trust-phases.yaml` makes them), made unless they exist.
    pub fn trust_phases(&self, prefix: &str) {
        self.install_trust_phase_crd();
        for phase in PHASES {
            let name = format!("{prefix}{phase}");
            if self.rt.block_on(self.phases_api().get_opt(&name)).expect("get trustphase").is_some()
            {
                continue;
            }
            let object: kube::api::DynamicObject = serde_json::from_value(json!({
                "apiVersion": "paddock.io/v1alpha1", "kind": "TrustPhase",
                "metadata": {"name": name},
                "spec": {"phase": phase, "mode": "learn"}
            }))
            .unwrap();
            self.rt
                .block_on(self.phases_api().create(&PostParams::default(), &object))
                .unwrap_or_else(|e| panic!("create trustphase {name}: {e}"));
        }
    }

    /// The phase object `name`, as JSON.
    pub fn trust_phase(&self, name: &str) -> Value {
        let object = self.rt.block_on(self.phases_api().get(name)).expect("get trustphase");
        serde_json::to_value(object).unwrap()
    }

    /// A merge patch of the phase object `name`'s spec, as an operator's `kubectl patch`.
    pub fn patch_trust_phase(&self, name: &str, spec: Value) -> Result<Value, kube::Error> {
        let patched = self.rt.block_on(self.phases_api().patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": spec})),
        ))?;
        Ok(serde_json::to_value(patched).unwrap())
    }

    /// Wait until the phase object `name` satisfies `wanted`; panics with the object.
    pub fn wait_for_trust_phase(
        &self,
        name: &str,
        within: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Value {
        crate::eventually(
            within,
            Duration::from_millis(100),
            || {
                let object = self.trust_phase(name);
                if wanted(&object) { Ok(object) } else { Err(object) }
            },
            |object| {
                format!(
                    "trustphase/{name} not as wanted within {within:?}:\n{}",
                    serde_json::to_string_pretty(&object).unwrap()
                )
            },
        )
    }
}

impl Cluster {
    /// Set annotation `key` of the phase object `name` (a write that changes its
    /// resourceVersion, not its spec).
    pub fn annotate_trust_phase(&self, name: &str, key: &str, value: &str) {
        let patch = json!({"metadata": {"annotations": {key: value}}});
        self.rt
            .block_on(self.phases_api().patch(name, &PatchParams::default(), &Patch::Merge(patch)))
            .expect("annotate trustphase");
    }
}
