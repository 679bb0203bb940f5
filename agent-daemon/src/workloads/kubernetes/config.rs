//! The `[kubernetes]` section: whether pods of this node are watched, which labels make a
//! pod an investigation, where the kubelet puts pod cgroups, and what is done in the
//! cluster on verdicts.
use std::path::{Component, PathBuf};

use serde::{Deserialize, Serialize};

use super::paths::Driver;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesConfig {
    pub enabled: bool,
    /// This node's name (`spec.nodeName` of its pods); `NODE_NAME` when unset.
    pub node_name: Option<String>,
    pub investigation_label: String,
    pub phase_label: String,
    pub unknown_phase: UnknownPhasePolicy,
    pub cgroup_driver: DriverChoice,
    /// The folder, relative to the cgroup v2 mount, that holds `kubepods.slice` or
    /// `kubepods` (empty: the mount itself).
    pub cgroup_parent: PathBuf,
    /// A kubeconfig file; unset: the in-cluster service account, then `KUBECONFIG` or
    /// `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// Delete the Job of a killed investigation (propagation Background), so that the Job
    /// controller does not start it again.
    pub delete_jobs: bool,
    /// The label naming the agent a Job runs, for promotion evidence; pods without it are
    /// counted under their ServiceAccount.
    pub agent_label: String,
    /// Where trust phases (modes, baselines, evidence) live.
    pub phases: PhaseHome,
    /// The phase objects are named `<phase_prefix><phase>` (`read-only`...): a prefix lets
    /// several paddock installations share one cluster.
    pub phase_prefix: String,
    /// How often a node sends what it learned and counted to the phase objects (ms).
    pub phase_sync_ms: u64,
}

/// Where trust phases live when the Kubernetes source is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseHome {
    /// One `TrustPhase` object per phase, shared by every node (the state directory keeps
    /// a cache, in force while the API server cannot be reached).
    Cluster,
    /// Each node's state directory, as without Kubernetes.
    Node,
}

/// What to do with a pod whose phase label is none of the four phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownPhasePolicy {
    /// Track it under the phase `unknown` (watched and recorded, never judged), and put a
    /// Warning Event on the pod.
    Observe,
    /// Leave it alone (logged once).
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverChoice {
    /// Read from the layout below `cgroup_parent` (`kubepods.slice`: systemd).
    Auto,
    Systemd,
    Cgroupfs,
}

impl DriverChoice {
    pub fn fixed(self) -> Option<Driver> {
        match self {
            DriverChoice::Auto => None,
            DriverChoice::Systemd => Some(Driver::Systemd),
            DriverChoice::Cgroupfs => Some(Driver::Cgroupfs),
        }
    }
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            enabled: false,
            node_name: None,
            investigation_label: "investigation-id".into(),
            phase_label: "trust-phase".into(),
            unknown_phase: UnknownPhasePolicy::Observe,
            cgroup_driver: DriverChoice::Auto,
            cgroup_parent: PathBuf::new(),
            kubeconfig: None,
            delete_jobs: true,
            agent_label: "agent".into(),
            phases: PhaseHome::Cluster,
            phase_prefix: String::new(),
            phase_sync_ms: 2000,
        }
    }
}

/// A field of `[kubernetes]` that cannot be used: the key, its value, the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} = {value}: {rule}")]
pub struct KubernetesConfigError {
    pub field: &'static str,
    pub value: String,
    pub rule: &'static str,
}

/// A label key as Kubernetes accepts it: `[prefix/]name`, name 1-63 characters of
/// `[A-Za-z0-9._-]` starting and ending alphanumeric, prefix a DNS subdomain.
pub fn valid_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    name_ok && prefix_ok
}

impl KubernetesConfig {
    /// The node name: the configured one, else `node_env` (the `NODE_NAME` variable).
    pub fn node(&self, node_env: Option<String>) -> Option<String> {
        self.node_name.clone().or(node_env).filter(|n| !n.trim().is_empty())
    }

    /// Check the section; `node_env` is the `NODE_NAME` variable.
    pub fn check(&self, node_env: Option<String>) -> Result<(), KubernetesConfigError> {
        let err = |field, value: &dyn std::fmt::Debug, rule| KubernetesConfigError {
            field,
            value: format!("{value:?}"),
            rule,
        };
        for (field, key) in [
            ("kubernetes.investigation_label", &self.investigation_label),
            ("kubernetes.phase_label", &self.phase_label),
        ] {
            if !valid_label_key(key) {
                return Err(err(field, key, "not a Kubernetes label key ([prefix/]name)"));
            }
        }
        if self.investigation_label == self.phase_label {
            return Err(err(
                "kubernetes.phase_label",
                &self.phase_label,
                "must differ from kubernetes.investigation_label",
            ));
        }
        let parent = &self.cgroup_parent;
        if parent.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(err(
                "kubernetes.cgroup_parent",
                parent,
                "must be empty or a relative path below the cgroup v2 mount, without '..'",
            ));
        }
        if let Some(node) = &self.node_name
            && (node.is_empty() || node.len() > 253 || node.contains(['/', ',', '=', ' ']))
        {
            return Err(err("kubernetes.node_name", node, "not a Kubernetes node name"));
        }
        if self.enabled && self.node(node_env).is_none() {
            return Err(err(
                "kubernetes.node_name",
                &self.node_name,
                "required when kubernetes.enabled = true (or set NODE_NAME, as a DaemonSet \
                 does from spec.nodeName)",
            ));
        }
        if let Some(path) = &self.kubeconfig
            && path.as_os_str().is_empty()
        {
            return Err(err("kubernetes.kubeconfig", path, "leave it out instead of empty"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> KubernetesConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_are_off_with_the_design_labels() {
        let c = KubernetesConfig::default();
        assert!(!c.enabled && c.delete_jobs);
        assert_eq!(
            (c.investigation_label.as_str(), c.phase_label.as_str()),
            ("investigation-id", "trust-phase")
        );
        assert_eq!(c.unknown_phase, UnknownPhasePolicy::Observe);
        assert_eq!(c.cgroup_driver, DriverChoice::Auto);
        assert_eq!(c.check(None), Ok(()), "disabled needs no node name");
    }

    #[test]
    fn enabled_needs_a_node_name_from_the_file_or_the_environment() {
        let c = parse("enabled = true");
        let e = c.check(None).unwrap_err();
        assert_eq!(e.field, "kubernetes.node_name");
        assert!(e.to_string().contains("NODE_NAME"), "{e}");
        assert_eq!(c.check(Some("node-a".into())), Ok(()));
        assert_eq!(c.node(Some("node-a".into())).as_deref(), Some("node-a"));
        let c = parse("enabled = true\nnode_name = \"node-b\"");
        assert_eq!(c.node(Some("node-a".into())).as_deref(), Some("node-b"), "the file wins");
        assert_eq!(c.check(None), Ok(()));
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            ("investigation_label = \"has space\"", "kubernetes.investigation_label"),
            ("phase_label = \"investigation-id\"", "kubernetes.phase_label"),
            ("phase_label = \"Bad.Prefix/x\"", "kubernetes.phase_label"),
            ("cgroup_parent = \"../up\"", "kubernetes.cgroup_parent"),
            ("cgroup_parent = \"/abs\"", "kubernetes.cgroup_parent"),
            ("node_name = \"a/b\"", "kubernetes.node_name"),
        ];
        for (text, field) in cases {
            let e = parse(text).check(None).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
        }
        assert!(toml::from_str::<KubernetesConfig>("unknown_phase = \"maybe\"").is_err());
        assert!(toml::from_str::<KubernetesConfig>("cgroup_driver = \"docker\"").is_err());
        assert!(toml::from_str::<KubernetesConfig>("delete_job = true").is_err(), "typo");
    }

    #[test]
    fn every_key_is_read() {
        let c = parse(
            "enabled = true\nnode_name = \"n\"\ninvestigation_label = \"paddock.io/inv\"\n\
             phase_label = \"paddock.io/phase\"\nunknown_phase = \"ignore\"\ncgroup_driver = \"cgroupfs\"\n\
             cgroup_parent = \"test/x\"\nkubeconfig = \"/etc/k\"\ndelete_jobs = false\n",
        );
        assert_eq!(c.check(None), Ok(()));
        assert_eq!(c.unknown_phase, UnknownPhasePolicy::Ignore);
        assert_eq!(c.cgroup_driver.fixed(), Some(Driver::Cgroupfs));
        assert_eq!(c.cgroup_parent, PathBuf::from("test/x"));
        assert!(!c.delete_jobs);
    }

    #[test]
    fn label_keys() {
        for ok in ["investigation-id", "paddock.io/trust-phase", "a", "x.y_z"] {
            assert!(valid_label_key(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "/a", "a/", "UP.per/a", "a b", &"x".repeat(64)] {
            assert!(!valid_label_key(bad), "{bad}");
        }
    }
}
