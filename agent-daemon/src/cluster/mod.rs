//! Cluster-wide facts: the trust phases as `TrustPhase` objects in the Kubernetes API,
//! shared by every node. Each node takes the objects in (mode and baseline, cached in its
//! state directory so that enforcement goes on while the API is away) and sends what it
//! learned and counted, batched, merged as set unions under optimistic concurrency.
pub mod evidence;
pub mod object;
pub mod sync;

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    baseline::Caps,
    lifecycle::Lifecycle,
    workloads::kubernetes::{client, config::KubernetesConfig},
};

/// Connect, and start the watch of the phase objects and the interval's writes (both in
/// `tasks`, so that a stopping daemon sends what it has before it goes).
pub async fn start(
    config: &KubernetesConfig,
    lifecycle: mpsc::Sender<Lifecycle>,
    caps: Caps,
    shutdown: CancellationToken,
    tasks: &TaskTracker,
) -> anyhow::Result<Arc<sync::Phases>> {
    let client = client::client(config.kubeconfig.as_ref())
        .await
        .context("cannot connect to the Kubernetes API for the trust phases")?;
    let phases = Arc::new(sync::Phases::new(
        client,
        config.phase_prefix.clone(),
        lifecycle,
        caps,
        Duration::from_millis(config.phase_sync_ms.max(100)),
    ));
    tasks.spawn(phases.clone().watch(shutdown.clone()));
    tasks.spawn(phases.clone().send_loop(shutdown));
    tracing::info!(prefix = %config.phase_prefix, "trust phases live in the cluster (TrustPhase objects)");
    Ok(phases)
}
