//! The Kubernetes source's families in the scrape.
use std::sync::{Arc, atomic::Ordering};

use prometheus_client::registry::Registry;

use super::KubeStats;
use crate::scrape;

impl KubeStats {
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        let stats = self.clone();
        scrape::register(registry, "kubernetes", move |e| {
            scrape::gauge(
                e,
                "kubernetes_missing_container_cgroups",
                "Containers the API reports whose cgroup is not there (yet); looked for every second",
                stats.missing_container_cgroups.load(Ordering::Relaxed) as i64,
            )
        });
    }
}
