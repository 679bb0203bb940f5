//! Serving a built daemon: the control socket, `/metrics` (each component registers its own
//! families), `/healthz`, `/readyz` and `/v1`, until SIGTERM or SIGINT; then taking it apart
//! in order, so that nothing recorded is lost: the servers, the investigations, the reader,
//! the pipeline, the audit writer, the exports, and last every task still tracked.
use std::{sync::Arc, time::Duration};

use anyhow::bail;
use prometheus_client::registry::Registry;
use tokio::signal::unix::SignalKind;

use super::{
    EXPORT_DRAIN,
    build::{Built, DataPath},
    report, socket,
};
use crate::{
    api::{control, http},
    judge,
    kernel::{self, metrics::KernelGauges},
    sinks::metrics,
};

/// How long the last tasks (sinks and loops fed by what already stopped) get to end.
const LAST_TASKS: Duration = Duration::from_secs(5);

/// Every component's families, and the kernel's gauges to refresh.
fn registry(built: &mut Built) -> (Registry, Arc<KernelGauges>) {
    let state = &built.state;
    let mut registry = metrics::registry();
    built.event_metrics.register(&mut registry);
    // The kernel's values are read on an interval, so a scrape never takes its lock.
    let kernel_gauges = Arc::new(KernelGauges::default());
    kernel_gauges.refresh(&state.kernel.lock().unwrap_or_else(|e| e.into_inner()));
    kernel_gauges.register(&mut registry);
    state.reader_stats.register(&mut registry);
    state.pipeline_stats.register(&mut registry);
    state.hub.register(&mut registry);
    state.refusals.register(&mut registry);
    judge::metrics::register(built.summaries.clone(), &mut registry);
    crate::sinks::alerts::register_receivers(std::mem::take(&mut built.receivers), &mut registry);
    if let Some(audit) = &built.audit_stats {
        audit.register(&mut registry);
    }
    if let Some(kube) = &built.kube_stats {
        kube.register(&mut registry);
    }
    built.export_metrics.register(&mut registry);
    registry.register_collector(Box::new(match &built.phases {
        Some(phases) => crate::cluster::evidence::EvidenceCollector::Cluster(phases.clone()),
        None => crate::cluster::evidence::EvidenceCollector::Node(built.summaries.clone()),
    }));
    (registry, kernel_gauges)
}

pub(super) async fn serve(mut built: Built) -> anyhow::Result<()> {
    let (registry, kernel_gauges) = registry(&mut built);
    let Built { tasks, data, state, socket, http_listener, http_address, token, .. } = built;
    let shutdown = tasks.shutdown.clone();
    match std::fs::remove_file(&socket) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            bail!("cannot remove stale socket {}: {e}", socket.display())
        }
        _ => {}
    }
    let listener = socket::control_socket(&socket, state.admin_gid)?;
    tracing::info!(socket = %socket.display(), probes = state.probes.len(), "paddock daemon ready");
    let control = tasks.daemon.spawn(control::serve(listener, state.clone(), shutdown.clone()));
    let http_state = Arc::new(http::HttpState {
        registry,
        ready: built.ready,
        phases: built.phases,
        token,
        audit: built.audit_path,
    });
    let http_task = tasks.daemon.spawn(http::serve(
        http_listener,
        http::router(http_state, crate::api::audit::routes()),
        shutdown.clone(),
    ));
    tracing::info!(address = %http_address, "serving /metrics, /healthz, /readyz and /v1");
    tasks.daemon.spawn(report::report_losses(state.clone(), shutdown.clone()));
    tasks.daemon.spawn(report::sample(state.tracker.clone(), shutdown.clone()));
    tasks.daemon.spawn(kernel::metrics::sample(
        state.kernel.clone(),
        kernel_gauges,
        shutdown.clone(),
    ));

    let mut term = tokio::signal::unix::signal(SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
    shutdown.cancel();
    let _ = control.await;
    let _ = http_task.await;
    let _ = std::fs::remove_file(&socket);
    tasks.workloads.close();
    tasks.workloads.wait().await;
    // Investigations have ended (their events drained); stop the reader, then the pipeline.
    let DataPath { reader, pipeline, audit_cancel, audit, exports } = data;
    let _ = reader.await;
    // The parent cgroup goes too when nothing is left in it.
    if std::fs::remove_dir(&built.local_parent).is_ok() {
        tracing::debug!(cgroup = %built.local_parent.display(), "removed the local cgroup parent");
    }
    {
        let mut kernel = state.kernel.lock().unwrap_or_else(|e| e.into_inner());
        if built.keep {
            kernel.leave_enforcing();
        } else {
            kernel.detach_on_exit();
        }
    }
    drop(state);
    if tokio::time::timeout(Duration::from_secs(2), pipeline).await.is_err() {
        tracing::warn!("event pipeline still busy at exit");
    }
    // Every event is published by now: the audit writer stores what is queued, then stops.
    audit_cancel.cancel();
    if let Some(task) = audit
        && tokio::time::timeout(Duration::from_secs(10), task).await.is_err()
    {
        tracing::warn!("audit store writer still busy at exit");
    }
    // Then exports send what was stored, within a bound.
    if let Some(exports) = exports {
        exports.stop(EXPORT_DRAIN).await;
    }
    // What is left (the alert router, the event metrics sink, the kill task) ends once what
    // fed it is gone.
    tasks.daemon.close();
    if tokio::time::timeout(LAST_TASKS, tasks.daemon.wait()).await.is_err() {
        tracing::warn!(tasks = tasks.daemon.len(), "tasks still running at exit");
    }
    if built.keep {
        tracing::info!(
            "paddock daemon stopped; its programs stay attached and enforcing (daemon.on_stop = keep-enforcing)"
        );
    } else {
        tracing::info!("programs detached; paddock daemon stopped");
    }
    Ok(())
}
