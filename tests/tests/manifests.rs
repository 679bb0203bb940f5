//! The manifests in `deploy/` against a real kube-apiserver (`cargo xtask test` starts it):
//! every object is accepted as written, and the daemon's RBAC allows what it needs and
//! nothing else.
use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec},
    batch::v1::Job,
    core::v1::{Event, ObjectReference, Pod, Secret},
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, PostParams, WatchParams},
    core::ObjectMeta,
};
use paddock_tests::kube::{ADMIN_TOKEN, PADDOCK_TOKEN, apply, kube_env, status_code};
use serde_json::{Value, json};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").join("deploy")
}

/// The YAML files of `deploy/` and `deploy/examples/`, in name order, with their documents.
fn manifests() -> Vec<(String, Vec<Value>)> {
    let mut files = Vec::new();
    for dir in [deploy_dir(), deploy_dir().join("examples")] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        paths.sort();
        files.extend(paths);
    }
    assert!(!files.is_empty(), "no manifests in {}", deploy_dir().display());
    files
        .into_iter()
        .map(|path| {
            let name =
                path.strip_prefix(deploy_dir().parent().unwrap()).unwrap().display().to_string();
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
                .unwrap_or_else(|e| panic!("{name} is not YAML: {e}"));
            (name, docs)
        })
        .collect()
}

fn manifest(file: &str) -> Vec<Value> {
    manifests()
        .into_iter()
        .find(|(name, _)| name.ends_with(file))
        .unwrap_or_else(|| panic!("no {file}"))
        .1
}

/// `kind namespace/name` of a document, for messages.
fn describe(doc: &Value) -> String {
    let ns = doc["metadata"]["namespace"].as_str().map(|n| format!("{n}/")).unwrap_or_default();
    format!(
        "{} {ns}{}",
        doc["kind"].as_str().unwrap_or("?"),
        doc["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// Paths of `sent` that are missing from `kept`: fields the server did not know (it drops
/// them silently: 1.20 has no server-side field validation) or has switched off.
fn dropped(sent: &Value, kept: &Value, path: &str, out: &mut Vec<String>) {
    match (sent, kept) {
        (Value::Object(sent), Value::Object(kept)) => {
            for (key, value) in sent {
                let here = format!("{path}.{key}");
                match kept.get(key) {
                    Some(k) => dropped(value, k, &here, out),
                    None => out.push(here),
                }
            }
        }
        (Value::Array(sent), Value::Array(kept)) => {
            for (i, value) in sent.iter().enumerate() {
                match kept.get(i) {
                    Some(k) => dropped(value, k, &format!("{path}[{i}]"), out),
                    None => out.push(format!("{path}[{i}]")),
                }
            }
        }
        _ => {}
    }
}

/// Every document of every manifest goes through the apiserver's decoding, defaulting,
/// validation and admission (a server-side dry run), and comes back with every field it was
/// sent: a misspelt or unknown field fails as surely as an invalid value.
#[tokio::test]
async fn every_manifest_is_accepted_by_the_apiserver() {
    let admin = kube_env().client(ADMIN_TOKEN).await;
    let manifests = manifests();
    // Namespaced objects can only be tried in a namespace that exists: make the manifests'
    // own namespaces first, for real.
    // Likewise the custom resource definitions, for the objects of their kinds.
    for (file, docs) in &manifests {
        for doc in docs
            .iter()
            .filter(|d| d["kind"] == "Namespace" || d["kind"] == "CustomResourceDefinition")
        {
            apply(&admin, doc, false)
                .await
                .unwrap_or_else(|e| panic!("{file}: {}: {e}", describe(doc)));
        }
    }
    trust_phases_served(&admin).await;
    let mut failures = Vec::new();
    let mut count = 0;
    for (file, docs) in &manifests {
        assert!(!docs.is_empty(), "{file} holds no document");
        for doc in docs {
            count += 1;
            match apply(&admin, doc, true).await {
                Err(e) => failures.push(format!("{file}: {}: rejected: {e}", describe(doc))),
                Ok(kept) => {
                    let mut missing = Vec::new();
                    dropped(doc, &kept, "", &mut missing);
                    if !missing.is_empty() {
                        failures.push(format!(
                            "{file}: {}: the server dropped {} (unknown or disabled fields)",
                            describe(doc),
                            missing.join(", ")
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "manifests the apiserver refuses:\n{}", failures.join("\n"));
    eprintln!("{count} objects in {} files accepted", manifests.len());
}

/// The TrustPhase API (`05-crd-trust-phases.yaml`).
fn phases(client: &Client) -> Api<kube::api::DynamicObject> {
    let resource = kube::api::ApiResource {
        group: "paddock.io".into(),
        version: "v1alpha1".into(),
        api_version: "paddock.io/v1alpha1".into(),
        kind: "TrustPhase".into(),
        plural: "trustphases".into(),
    };
    Api::all_with(client.clone(), &resource)
}

/// Wait until the API serves the TrustPhase objects (the CRD is established).
async fn trust_phases_served(admin: &Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = phases(admin).list(&ListParams::default().limit(1)).await {
        assert!(Instant::now() < deadline, "the TrustPhase CRD is not served: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What an access review asks: `verb` on `resource` (`group`; `resource/subresource` for a
/// subresource) in `namespace`.
fn attributes(
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> ResourceAttributes {
    ResourceAttributes {
        verb: Some(verb.into()),
        group: Some(group.into()),
        resource: Some(resource.split('/').next().unwrap_or(resource).into()),
        subresource: resource.split_once('/').map(|(_, sub)| sub.into()),
        namespace: namespace.map(Into::into),
        ..Default::default()
    }
}

/// Whether the caller of `client` may `verb` `resource` (`group`; `resource/subresource`
/// for a subresource) in `namespace`.
async fn may(
    client: &Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> bool {
    let review = SelfSubjectAccessReview {
        metadata: ObjectMeta::default(),
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(attributes(verb, group, resource, namespace)),
            ..Default::default()
        },
        status: None,
    };
    let answer = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SelfSubjectAccessReview");
    answer.status.is_some_and(|s| s.allowed)
}

/// Whether `user` (with the groups of a ServiceAccount) may `verb` `resource` (`group`;
/// `resource/subresource`), as the authorizer answers the admin.
async fn user_may(admin: &Client, user: &str, verb: &str, group: &str, resource: &str) -> bool {
    use k8s_openapi::api::authorization::v1::{SubjectAccessReview, SubjectAccessReviewSpec};
    let review = SubjectAccessReview {
        metadata: ObjectMeta::default(),
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            groups: Some(vec!["system:serviceaccounts".into(), "system:authenticated".into()]),
            resource_attributes: Some(attributes(verb, group, resource, None)),
            ..Default::default()
        },
        status: None,
    };
    let answer = Api::<SubjectAccessReview>::all(admin.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview");
    answer.status.is_some_and(|s| s.allowed)
}

fn expect_forbidden<T: std::fmt::Debug>(what: &str, result: Result<T, kube::Error>) {
    match result {
        Err(e) if status_code(&e) == Some(403) => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn the_daemons_rbac_allows_what_it_needs_and_nothing_else() {
    let env = kube_env();
    let admin = env.client(ADMIN_TOKEN).await;
    let paddock = env.client(PADDOCK_TOKEN).await;
    for file in ["00-namespace.yaml", "05-crd-trust-phases.yaml", "10-rbac.yaml"] {
        for doc in manifest(file) {
            apply(&admin, &doc, false)
                .await
                .unwrap_or_else(|e| panic!("{file}: {}: {e}", describe(&doc)));
        }
    }
    // A namespace of its own, with a Job, a Pod and a Secret made by the admin.
    let ns = format!("rbac-test-{}", std::process::id());
    for doc in [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": ns},
               "stringData": {"k": "v"}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns},
               "spec": {"containers": [{"name": "c", "image": "example.com/c:1"}]}}),
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": ns},
               "spec": {"template": {"spec": {"restartPolicy": "Never",
                   "containers": [{"name": "c", "image": "example.com/c:1"}]}}}}),
    ] {
        apply(&admin, &doc, false).await.unwrap_or_else(|e| panic!("{}: {e}", describe(&doc)));
    }

    // The binding reaches the authorizer through its informer: wait for it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !may(&paddock, "watch", "", "pods", None).await {
        assert!(Instant::now() < deadline, "the paddock ClusterRoleBinding never took effect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Allowed, by real calls: the node-local pod watch in every namespace, deleting a Job,
    // recording an Event.
    let pods: Api<Pod> = Api::all(paddock.clone());
    pods.list(&ListParams::default().fields("spec.nodeName=node-a")).await.expect("list pods");
    let listed = pods.list(&ListParams::default()).await.expect("list pods");
    assert!(listed.items.iter().any(|p| p.metadata.namespace.as_deref() == Some(&ns)));
    let watch =
        pods.watch(&WatchParams::default().fields("spec.nodeName=node-a").timeout(1), "0").await;
    assert!(watch.is_ok(), "watch pods: {:?}", watch.err());
    let job = Api::<Job>::namespaced(paddock.clone(), &ns).get("j").await.expect("get job");
    Api::<Job>::all(paddock.clone()).list(&ListParams::default()).await.expect("list jobs");
    let event = Event {
        metadata: ObjectMeta { generate_name: Some("paddock-".into()), ..Default::default() },
        involved_object: ObjectReference {
            api_version: Some("batch/v1".into()),
            kind: Some("Job".into()),
            name: job.metadata.name.clone(),
            namespace: Some(ns.clone()),
            uid: job.metadata.uid.clone(),
            ..Default::default()
        },
        reason: Some("PaddockKilled".into()),
        message: Some("test".into()),
        type_: Some("Warning".into()),
        ..Default::default()
    };
    Api::<Event>::namespaced(paddock.clone(), &ns)
        .create(&PostParams::default(), &event)
        .await
        .expect("create event");
    Api::<Job>::namespaced(paddock.clone(), &ns)
        .delete("j", &DeleteParams::background())
        .await
        .expect("delete job");

    // The trust phases: read, watched, changed (spec and status); never made or deleted.
    trust_phases_served(&admin).await;
    let name = format!("rbac-test-{}-read-only", std::process::id());
    let object: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "paddock.io/v1alpha1", "kind": "TrustPhase",
        "metadata": {"name": name}, "spec": {"phase": "read-only", "mode": "learn"}
    }))
    .expect("a TrustPhase");
    phases(&admin).create(&PostParams::default(), &object).await.expect("create a TrustPhase");
    let mine = phases(&paddock);
    mine.list(&ListParams::default()).await.expect("list trustphases");
    let mut read = mine.get(&name).await.expect("get a trustphase");
    read.data["spec"]["baseline"] = json!({"syscalls": ["read"]});
    let read =
        mine.replace(&name, &PostParams::default(), &read).await.expect("update a trustphase");
    let mut with_status = read.clone();
    with_status.data["status"] = json!({"runs": 1});
    mine.replace_status(&name, &PostParams::default(), &with_status)
        .await
        .expect("update a trustphase's status");
    expect_forbidden(
        "create a trustphase",
        mine.create(&PostParams::default(), &serde_json::from_value(json!({
            "apiVersion": "paddock.io/v1alpha1", "kind": "TrustPhase",
            "metadata": {"name": format!("{name}-2")}, "spec": {"phase": "shadow", "mode": "learn"}
        })).expect("a TrustPhase")).await,
    );
    expect_forbidden("delete a trustphase", mine.delete(&name, &DeleteParams::default()).await);
    phases(&admin).delete(&name, &DeleteParams::default()).await.expect("delete as admin");

    // Forbidden, by real calls.
    expect_forbidden(
        "delete a pod",
        Api::<Pod>::namespaced(paddock.clone(), &ns).delete("p", &DeleteParams::default()).await,
    );
    expect_forbidden(
        "read a secret",
        Api::<Secret>::namespaced(paddock.clone(), &ns).get("s").await,
    );
    expect_forbidden(
        "list secrets",
        Api::<Secret>::all(paddock.clone()).list(&ListParams::default()).await,
    );
    let new_job: Job = serde_json::from_value(json!({
        "metadata": {"name": "j2"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "example.com/c:1"}]}}}
    }))
    .expect("job");
    expect_forbidden(
        "create a job",
        Api::<Job>::namespaced(paddock.clone(), &ns).create(&PostParams::default(), &new_job).await,
    );

    // Everything else, asked of the authorizer: exactly the ClusterRole's verbs.
    let mut wrong = Vec::new();
    let table: &[(&str, &str, &[&str])] = &[
        ("", "pods", &["get", "list", "watch"]),
        ("batch", "jobs", &["get", "list", "delete"]),
        ("", "events", &["create", "patch"]),
        ("", "pods/exec", &[]),
        ("", "pods/status", &[]),
        ("", "secrets", &[]),
        ("", "configmaps", &[]),
        ("", "nodes", &[]),
        ("", "serviceaccounts/token", &[]),
        ("apps", "daemonsets", &[]),
        ("events.k8s.io", "events", &[]),
        ("rbac.authorization.k8s.io", "clusterroles", &[]),
        ("paddock.io", "trustphases", &["get", "list", "watch", "update", "patch"]),
        ("paddock.io", "trustphases/status", &["get", "list", "watch", "update", "patch"]),
        ("apiextensions.k8s.io", "customresourcedefinitions", &[]),
    ];
    let verbs = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];
    for (group, resource, allowed) in table {
        for verb in verbs {
            let expected = allowed.contains(&verb);
            if may(&paddock, verb, group, resource, Some(&ns)).await != expected {
                wrong.push(format!("{verb} {group}/{resource}: expected allowed={expected}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "paddock's permissions differ from deploy/10-rbac.yaml's intent:\n{}",
        wrong.join("\n")
    );

    // The agents' own accounts (deploy/examples/agents.yaml) cannot reach the phases: an
    // agent that could switch its phase to learn, or edit its baseline, would guard itself.
    for account in [
        "agent-phase-shadow",
        "agent-phase-read-only",
        "agent-phase-limited-write",
        "agent-phase-autonomous",
        "default",
    ] {
        let user = format!("system:serviceaccount:agents:{account}");
        for (resource, verb) in [
            ("trustphases", "patch"),
            ("trustphases", "update"),
            ("trustphases", "get"),
            ("trustphases/status", "update"),
        ] {
            if user_may(&admin, &user, verb, "paddock.io", resource).await {
                wrong.push(format!("{user} may {verb} paddock.io/{resource}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let paddock_user = paddock_tests::kube::PADDOCK_USER;
    assert!(
        user_may(&admin, paddock_user, "patch", "paddock.io", "trustphases").await,
        "the same question about paddock's account is answered yes"
    );

    Api::<k8s_openapi::api::core::v1::Namespace>::all(admin)
        .delete(&ns, &DeleteParams::background())
        .await
        .expect("delete test namespace");
}

/// The ConfigMap's `paddock.toml` is TOML and turns the Kubernetes source on with the
/// labels the example Job carries.
#[test]
fn the_config_map_holds_the_daemons_settings() {
    let docs = manifest("20-config.yaml");
    let text = docs[0]["data"]["paddock.toml"].as_str().expect("data.paddock.toml");
    let config: toml::Table = text.parse().unwrap_or_else(|e| panic!("paddock.toml: {e}"));
    let k8s = config["kubernetes"].as_table().expect("[kubernetes]");
    assert_eq!(k8s["enabled"].as_bool(), Some(true));
    let job = &manifest("investigation-job.yaml")[0];
    for key in ["investigation_label", "phase_label"] {
        let label = k8s[key].as_str().expect(key);
        assert!(job["metadata"]["labels"].get(label).is_some(), "the Job lacks label {label}");
        assert!(
            job["spec"]["template"]["metadata"]["labels"].get(label).is_some(),
            "the Job's pod template lacks label {label}"
        );
    }
    assert_eq!(config["http"]["listen"].as_str(), Some("0.0.0.0:9477"));
}
