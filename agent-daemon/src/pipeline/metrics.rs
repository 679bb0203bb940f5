//! The pipeline's families in the scrape.
use std::sync::{Arc, atomic::Ordering};

use prometheus_client::registry::Registry;

use super::PipelineStats;
use crate::scrape;

impl PipelineStats {
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        let stats = self.clone();
        scrape::register(registry, "pipeline", move |e| {
            scrape::counter(
                e,
                "unattributed_records",
                "Kernel records of no running investigation",
                stats.unattributed.load(Ordering::Relaxed),
            )
        });
    }
}
