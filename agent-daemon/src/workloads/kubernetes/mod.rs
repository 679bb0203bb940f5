//! The Kubernetes workload source: investigation Jobs' pods on this node, tracked from
//! the moment the API shows them, and Kubernetes-side actions on verdicts.
pub mod actions;
pub mod client;
pub mod config;
pub mod directory;
mod metrics;
pub mod notice;
pub mod paths;
pub mod pods;
#[cfg(test)]
mod pods_props;
pub mod ratelimit;
mod runs;
pub mod source;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64},
    },
};

use anyhow::Context as _;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use self::{config::KubernetesConfig, directory::Directory, source::PodSource};
use crate::{hub::Hub, sinks::alerts::ReceiverStats, workloads::Tracker};

/// What the source shares with the rest of the daemon.
pub struct Shared {
    pub tracker: Arc<Tracker>,
    pub hub: Arc<Hub>,
    /// Set once the pod list has synced.
    pub ready: Arc<AtomicBool>,
    /// Absolute path of the folder holding `kubepods.slice` / `kubepods`.
    pub parent: PathBuf,
    /// At a stop, leave the pods tracked for the next daemon rather than end them.
    pub keep_on_stop: bool,
    /// Each phase's pids.max, lowered on pod cgroups where v2 gives them one.
    pub pids: Arc<crate::workloads::pids::Pids>,
}

/// The source's counters, read at scrape time.
#[derive(Debug, Default)]
pub struct KubeStats {
    /// Containers the API reports running whose cgroup is not there (yet): looked for again
    /// every second.
    pub missing_container_cgroups: AtomicU64,
}

/// What a started source hands back: the actions' delivery counters (reported with the
/// alert receivers') and the source's own.
pub struct Started {
    pub deliveries: Arc<ReceiverStats>,
    pub stats: Arc<KubeStats>,
}

/// The cgroup the egress programs attach to for pods: the kubepods root when it is there,
/// else the configured parent.
pub fn egress_root(config: &KubernetesConfig, parent: &Path) -> PathBuf {
    let driver = config.cgroup_driver.fixed().or_else(|| paths::detect_driver(parent));
    let root = match driver {
        Some(paths::Driver::Systemd) => parent.join("kubepods.slice"),
        Some(paths::Driver::Cgroupfs) => parent.join("kubepods"),
        None => parent.to_path_buf(),
    };
    if root.is_dir() {
        root
    } else {
        tracing::warn!(cgroup = %root.display(), "no kubepods cgroup yet: pod egress watched from the parent");
        parent.to_path_buf()
    }
}

/// Connect, start the actions worker and its hub sink (tracked in `sinks`: they end once the
/// hub and the runs are gone), and the pod watch (tracked in `tasks`, with the runs it
/// starts).
pub async fn start(
    config: &KubernetesConfig,
    shared: Shared,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    sinks: &TaskTracker,
) -> anyhow::Result<Started> {
    let node = config
        .node(std::env::var("NODE_NAME").ok())
        .context("kubernetes.node_name is not set (nor NODE_NAME)")?;
    let client = client::client(config.kubeconfig.as_ref())
        .await
        .context("cannot connect to the Kubernetes API")?;
    let directory = Arc::new(Directory::default());
    let actions = actions::start(client.clone(), node.clone(), shutdown.clone(), sinks);
    let stats = actions.stats.clone();
    sinks.spawn(actions::sink(
        shared.hub.add_sink("kubernetes", 4096),
        directory.clone(),
        actions.clone(),
        config.delete_jobs,
    ));
    let kube_stats = Arc::new(KubeStats::default());
    let runs = runs::Runs::new(
        shared.tracker,
        kube_stats.clone(),
        directory,
        Some(actions),
        shared.parent,
        config.cgroup_driver.fixed(),
        shared.keep_on_stop,
    )
    .with_pids(shared.pids);
    let source = PodSource::new(config, node.clone(), client, runs, shared.ready);
    tracing::info!(node = %node, "Kubernetes pod source starting");
    tasks.spawn(source.run(shutdown));
    Ok(Started { deliveries: stats, stats: kube_stats })
}
