//! Alert routing: each verdict becomes an alert (`PaddockDeviation`, or `PaddockKill` when
//! the investigation was killed) sent to every configured receiver: Prometheus
//! Alertmanager, a signed webhook, or JSON lines on stdout.
//!
//! The daemon makes an [`AlertRouter`] from [`AlertsConfig`], keeps [`AlertRouter::stats`]
//! for its metrics, and spawns [`AlertRouter::run`] on a hub sink's queue.
mod alert;
mod config;
mod deliver;
mod router;
mod stats;
mod targets;
#[cfg(test)]
mod tests;

pub use config::{
    AlertmanagerReceiver, AlertsConfig, ReceiverConfig, Secret, StdoutReceiver, WebhookReceiver,
};
pub use router::AlertRouter;
pub use stats::{ReceiverStats, register as register_receivers};
