//! Property tests of what paddock reads from the pods the API server sends (`pods::classify`)
//! and the cgroup paths it makes of them (`paths`): no pod makes it panic, whatever its
//! labels, names, uid, status and container ids hold, and no cgroup path made for a pod
//! leaves the directory it is made below.
//!
//! Cases: `PROPTEST_CASES` (256 by default; `cargo xtask test` runs more).
use std::{
    collections::BTreeMap,
    path::{Component, Path},
};

use k8s_openapi::{
    api::core::v1::{Container, ContainerStatus, Pod, PodSpec, PodStatus, ResourceRequirements},
    apimachinery::pkg::apis::meta::v1::OwnerReference,
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::ObjectMeta},
};
use proptest::prelude::*;

use super::{
    paths::{Driver, Qos, container_cgroup, parse_container_id, pod_cgroup, usable_pod_uid},
    pods::{LabelKeys, PodClass, classify},
};

fn keys() -> LabelKeys {
    LabelKeys {
        investigation: "investigation-id".into(),
        phase: "trust-phase".into(),
        agent: "agent".into(),
    }
}

/// Strings a hostile or broken API object may hold.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<char>(), 0..16).prop_map(String::from_iter),
        prop::sample::select(vec![
            "",
            ".",
            "..",
            "../",
            "../../..",
            "/",
            "/etc",
            "a/../../b",
            "x\0y",
            "\0",
            "é",
            "\u{202e}",
            "inv-7",
            "read-only",
            "shadow",
            "Guaranteed",
            "Burstable",
            "BestEffort",
            "Succeeded",
            "0b6c2a9e-1d2f-4e3a-9b8c-7d6e5f4a3b2c",
        ])
        .prop_map(str::to_owned),
        (1usize..5000).prop_map(|n| "a".repeat(n)),
        (1usize..200).prop_map(|n| "../".repeat(n)),
    ]
}

/// A container id as the API may report it: well formed, or not.
fn container_id() -> impl Strategy<Value = Option<String>> {
    let scheme = prop::sample::select(vec!["containerd://", "cri-o://", "docker://", ""]);
    prop::option::of(prop_oneof![
        (scheme.clone(), "[0-9a-f]{1,64}").prop_map(|(s, id)| s.to_owned() + &id),
        (scheme, hostile()).prop_map(|(s, id)| s.to_owned() + &id),
    ])
}

fn container_status() -> impl Strategy<Value = ContainerStatus> {
    (hostile(), container_id()).prop_map(|(name, container_id)| ContainerStatus {
        name,
        container_id,
        ..Default::default()
    })
}

fn container() -> impl Strategy<Value = Container> {
    let quantities = || {
        prop::option::of(prop::collection::btree_map(
            prop_oneof![Just("cpu".to_owned()), Just("memory".to_owned()), hostile()],
            hostile().prop_map(Quantity),
            0..3,
        ))
    };
    (hostile(), quantities(), quantities()).prop_map(|(name, requests, limits)| Container {
        name,
        resources: Some(ResourceRequirements { requests, limits, ..Default::default() }),
        ..Default::default()
    })
}

fn labels() -> impl Strategy<Value = Option<BTreeMap<String, String>>> {
    let key = prop_oneof![
        3 => prop::sample::select(vec!["investigation-id", "trust-phase"]).prop_map(str::to_owned),
        1 => hostile(),
    ];
    let value = prop_oneof![
        "[A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?",
        prop::sample::select(vec!["shadow", "read-only", "limited-write", "autonomous"])
            .prop_map(str::to_owned),
        hostile(),
    ];
    prop::option::of(prop::collection::btree_map(key, value, 0..4))
}

fn owner() -> impl Strategy<Value = OwnerReference> {
    (hostile(), hostile(), prop::sample::select(vec!["batch/v1", "batch/", "apps/v1", ""]))
        .prop_map(|(name, uid, api_version)| OwnerReference {
            api_version: api_version.to_owned(),
            kind: "Job".to_owned(),
            name,
            uid,
            ..Default::default()
        })
}

fn pod() -> impl Strategy<Value = Pod> {
    let metadata = (
        prop::option::of(hostile()),
        prop::option::of(hostile()),
        prop::option::of(hostile()),
        labels(),
        prop::option::of(prop::collection::btree_map(hostile(), hostile(), 0..3)),
        prop::option::of(prop::collection::vec(owner(), 0..3)),
    )
        .prop_map(|(name, namespace, uid, labels, annotations, owner_references)| ObjectMeta {
            name,
            namespace,
            uid,
            labels,
            annotations,
            owner_references,
            ..Default::default()
        });
    let spec = prop::option::of(
        (
            prop::collection::vec(container(), 0..3),
            prop::option::of(prop::collection::vec(container(), 0..2)),
        )
            .prop_map(|(containers, init_containers)| PodSpec {
                containers,
                init_containers,
                ..Default::default()
            }),
    );
    let statuses = || prop::option::of(prop::collection::vec(container_status(), 0..3));
    let status = prop::option::of(
        (prop::option::of(hostile()), prop::option::of(hostile()), statuses(), statuses())
            .prop_map(|(phase, qos_class, container_statuses, init_container_statuses)| {
                PodStatus {
                    phase,
                    qos_class,
                    container_statuses,
                    init_container_statuses,
                    ..Default::default()
                }
            }),
    );
    (metadata, spec, status).prop_map(|(metadata, spec, status)| Pod { metadata, spec, status })
}

/// Whether `relative` stays below the directory it is joined to.
fn stays_below(relative: &Path) -> bool {
    relative.components().all(|c| matches!(c, Component::Normal(_)))
}

proptest! {
    #[test]
    fn prop_any_pod_is_classified_and_its_cgroups_stay_below_their_parents(pod in pod()) {
        let PodClass::Investigation(view) = classify(&pod, &keys()) else {
            return Ok(());
        };
        for driver in [Driver::Systemd, Driver::Cgroupfs] {
            let dir = pod_cgroup(driver, view.qos, &view.uid);
            prop_assert!(stays_below(&dir), "pod uid {:?}: {:?}", view.uid, dir);
            for c in &view.containers {
                prop_assert!(!c.id.is_empty() && c.id.chars().all(|c| c.is_ascii_hexdigit()));
                let path = container_cgroup(driver, c.runtime, &c.id);
                prop_assert!(
                    stays_below(&path) && path.components().count() == 1,
                    "container id {:?}: {:?}", c.id, path
                );
            }
        }
    }

    #[test]
    fn prop_the_investigation_label_decides_what_a_pod_is(pod in pod()) {
        let label = pod.metadata.labels.as_ref().and_then(|l| l.get("investigation-id"));
        match (classify(&pod, &keys()), label) {
            (PodClass::Other, None) => {}
            (PodClass::Investigation(view), Some(id)) => {
                prop_assert_eq!(view.investigation.as_str(), id.as_str());
            }
            (PodClass::BadId { problem, .. }, Some(_)) => prop_assert!(!problem.is_empty()),
            (class, label) => {
                return Err(TestCaseError::fail(format!("{class:?} for label {label:?}")));
            }
        }
    }

    #[test]
    fn prop_what_the_path_helpers_accept_stays_below_its_parent(
        uid in prop_oneof!["[0-9a-f-]{1,40}", hostile()],
        id in container_id(),
    ) {
        for driver in [Driver::Systemd, Driver::Cgroupfs] {
            if usable_pod_uid(&uid) {
                for qos in [Qos::Guaranteed, Qos::Burstable, Qos::BestEffort] {
                    let dir = pod_cgroup(driver, qos, &uid);
                    prop_assert!(stays_below(&dir), "pod uid {:?}: {:?}", uid, dir);
                }
            }
            if let Some((runtime, id)) = id.as_deref().and_then(parse_container_id) {
                let path = container_cgroup(driver, runtime, id);
                prop_assert!(stays_below(&path) && path.components().count() == 1, "{:?}", path);
            }
        }
    }
}
