//! The alert router: verdicts in, one bounded queue and one task per receiver out, so a
//! slow or dead receiver delays nothing but its own alerts.
use std::{
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use futures_util::future::join_all;
use tokio::{
    sync::mpsc,
    task::{AbortHandle, JoinHandle},
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{
    alert::Alert,
    config::AlertsConfig,
    deliver::{Outcome, Target},
    stats::ReceiverStats,
    targets::{AlertsError, OpenOutput, target},
};
use crate::events::Event;

/// How long queued alerts get to go out once the daemon is stopping.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

struct Route {
    queue: mpsc::Sender<Arc<Alert>>,
    stats: Arc<ReceiverStats>,
}

/// A receiver waiting for `run` to start its task.
struct Idle {
    queue: mpsc::Receiver<Arc<Alert>>,
    target: Target,
    stats: Arc<ReceiverStats>,
}

pub struct AlertRouter {
    node: String,
    routes: Vec<Route>,
    idle: Mutex<Vec<Idle>>,
}

impl AlertRouter {
    /// Check `config`, read secret files and make the HTTP clients. Nothing is sent until
    /// [`AlertRouter::run`]; what is submitted before then waits in the queues.
    pub fn new(config: &AlertsConfig) -> Result<AlertRouter, AlertsError> {
        Self::with_output(config, &|| Box::new(tokio::io::stdout()))
    }

    pub(super) fn with_output(
        config: &AlertsConfig,
        stdout: OpenOutput<'_>,
    ) -> Result<AlertRouter, AlertsError> {
        config.validate()?;
        let node = config.node.clone().filter(|n| !n.is_empty()).unwrap_or_else(hostname);
        let mut routes = Vec::new();
        let mut idle = Vec::new();
        for receiver in &config.receivers {
            let (target, size) = target(receiver, stdout)?;
            let (tx, rx) = mpsc::channel(size);
            let stats = Arc::new(ReceiverStats::new(receiver.name(), receiver.kind()));
            routes.push(Route { queue: tx, stats: stats.clone() });
            idle.push(Idle { queue: rx, target, stats });
        }
        Ok(AlertRouter { node, routes, idle: Mutex::new(idle) })
    }

    /// The `node` label the alerts carry.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Each receiver's counters, in configuration order; they stay live after `run` starts.
    pub fn stats(&self) -> Vec<Arc<ReceiverStats>> {
        self.routes.iter().map(|r| r.stats.clone()).collect()
    }

    /// Queue `event`'s alert, if it makes one, for every receiver. Never waits: a receiver
    /// whose queue is full loses the alert, counted in its `failed`. True if it made one.
    pub fn submit(&self, event: &Arc<Event>) -> bool {
        let Some(alert) = Alert::from_event(event, &self.node) else { return false };
        let alert = Arc::new(alert);
        for route in &self.routes {
            let stats = &route.stats;
            if route.queue.try_send(alert.clone()).is_ok() {
                if stats.saturated.swap(false, Ordering::Relaxed) {
                    info!(receiver = %stats.name, "alert queue has room again");
                }
            } else {
                stats.add_failed(1);
                if !stats.saturated.swap(true, Ordering::Relaxed) {
                    warn!(receiver = %stats.name, "alert queue full: dropping alerts");
                }
            }
        }
        true
    }

    /// What the daemon spawns: start one task per receiver, route the verdicts among
    /// `events` until `shutdown` (or until the sender goes away), then give queued alerts
    /// [`SHUTDOWN_GRACE`] to go out.
    pub async fn run(self, events: mpsc::Receiver<Arc<Event>>, shutdown: CancellationToken) {
        self.run_with_grace(events, shutdown, SHUTDOWN_GRACE).await
    }

    pub async fn run_with_grace(
        self,
        mut events: mpsc::Receiver<Arc<Event>>,
        shutdown: CancellationToken,
        grace: Duration,
    ) {
        let stop = CancellationToken::new();
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        let tasks: Vec<JoinHandle<()>> = idle
            .into_iter()
            .map(|r| tokio::spawn(serve(r.queue, r.target, r.stats, stop.clone())))
            .collect();
        let aborts: Vec<AbortHandle> = tasks.iter().map(JoinHandle::abort_handle).collect();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                event = events.recv() => match event {
                    Some(event) => { self.submit(&event); }
                    None => break,
                },
            }
        }
        // What the hub had already queued still goes out.
        while let Ok(event) = events.try_recv() {
            self.submit(&event);
        }
        drop(self.routes); // each task ends once its queue is empty
        let mut ended = join_all(tasks);
        if tokio::time::timeout(grace, &mut ended).await.is_err() {
            // Out of time: in-flight and queued alerts are counted as failed.
            stop.cancel();
            if tokio::time::timeout(Duration::from_secs(1), &mut ended).await.is_err() {
                aborts.iter().for_each(AbortHandle::abort);
            }
        }
    }
}

/// One receiver's task: take what is queued (a batch where the target takes one), deliver
/// it, count the outcome.
async fn serve(
    mut queue: mpsc::Receiver<Arc<Alert>>,
    mut target: Target,
    stats: Arc<ReceiverStats>,
    stop: CancellationToken,
) {
    let limit = target.batch_limit();
    loop {
        let first = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            alert = queue.recv() => match alert {
                Some(alert) => alert,
                None => return,
            },
        };
        let mut batch = vec![first];
        while batch.len() < limit {
            match queue.try_recv() {
                Ok(alert) => batch.push(alert),
                Err(_) => break,
            }
        }
        match target.deliver(&batch, &stats, &stop).await {
            Outcome::Delivered => stats.add_delivered(batch.len()),
            Outcome::Failed => stats.add_failed(batch.len()),
            Outcome::Stopped => {
                stats.add_failed(batch.len());
                break;
            }
        }
    }
    queue.close();
    let mut left = 0;
    while queue.try_recv().is_ok() {
        left += 1;
    }
    if left > 0 {
        stats.add_failed(left);
        warn!(receiver = %stats.name, alerts = left, "alerts still queued at shutdown dropped");
    }
}

/// The kernel's host name, for a config without a `node`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}
