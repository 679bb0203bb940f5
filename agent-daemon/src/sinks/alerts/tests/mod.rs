//! Shared fixtures and the delivery tests, against in-process HTTP servers.
mod delivery;
mod failures;
mod server;

use std::{future::Future, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    AlertRouter, AlertsConfig, ReceiverStats,
    config::{AlertmanagerReceiver, ReceiverConfig, Secret, WebhookReceiver},
};
use crate::{
    baseline::{DeviationKind, Mode},
    events::{Event, EventKind},
    identity::Phase,
};

pub fn time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// A verdict on inv-7: `/usr/bin/curl` exec'd in the read-only phase, in enforce mode.
pub fn verdict(outcome: &str) -> Arc<Event> {
    Arc::new(Event {
        time: time("2026-11-26T15:00:01.250Z"),
        investigation: "inv-7".parse().unwrap(),
        phase: Phase::ReadOnly,
        instance: 1,
        pid: 4242,
        tid: None,
        ppid: 4200,
        uid: 1000,
        comm: "sh".into(),
        kind: EventKind::Verdict {
            deviation: DeviationKind::Exec,
            subject: "/usr/bin/curl".into(),
            reason: "/usr/bin/curl is not among the read-only baseline's executables".into(),
            mode: Mode::Enforce,
            outcome: outcome.parse().unwrap(),
            baseline_revision: 4,
            action_time: time("2026-11-26T15:00:01.125Z"),
        },
    })
}

/// A lifecycle event, which makes no alert.
pub fn started() -> Arc<Event> {
    let mut event = (*verdict("killed")).clone();
    event.kind =
        EventKind::Started { source: "local".into(), cgroup: "/paddock/inv-7".into(), pod: None };
    Arc::new(event)
}

pub fn alertmanager(name: &str, url: &str) -> ReceiverConfig {
    ReceiverConfig::Alertmanager(AlertmanagerReceiver {
        name: name.into(),
        url: url.into(),
        timeout_ms: 1000,
        queue: 16,
        max_retries: 8,
    })
}

pub fn webhook(name: &str, url: &str, max_retries: u32, secret: Option<&str>) -> ReceiverConfig {
    ReceiverConfig::Webhook(WebhookReceiver {
        name: name.into(),
        url: url.into(),
        hmac_secret: secret.map(|s| Secret(s.into())),
        hmac_secret_file: None,
        timeout_ms: 1000,
        queue: 16,
        max_retries,
    })
}

pub fn config(receivers: Vec<ReceiverConfig>) -> AlertsConfig {
    AlertsConfig { node: Some("node-a".into()), receivers }
}

/// A running router: the hub's side of its queue, its stats, and how to stop it.
pub struct Running {
    pub events: mpsc::Sender<Arc<Event>>,
    pub stats: Vec<Arc<ReceiverStats>>,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    /// A test that ends early leaves no router behind.
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.task.abort();
    }
}

pub fn run(router: AlertRouter) -> Running {
    let (events, rx) = mpsc::channel(64);
    let stats = router.stats();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(router.run(rx, shutdown.clone()));
    Running { events, stats, shutdown, task }
}

pub fn start(receivers: Vec<ReceiverConfig>) -> Running {
    run(AlertRouter::new(&config(receivers)).unwrap())
}

/// Wait until `done` holds, for at most `limit`.
pub async fn within(limit: Duration, what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Run `f` to completion within `limit`.
pub async fn finishes<T>(limit: Duration, what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, f).await.unwrap_or_else(|_| panic!("not within {limit:?}: {what}"))
}
