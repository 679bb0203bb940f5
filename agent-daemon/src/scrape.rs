//! What a component needs to put its own values in the `/metrics` scrape: a collector made
//! from a function that writes them, and one-value families. Each component registers its
//! families itself (`register`, beside the counters it keeps); the daemon only hands it the
//! registry. Collectors read memory only: atomics, or a snapshot a task refreshes. A scrape
//! never waits on the kernel or on a server.
use std::fmt;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};

type Write = dyn Fn(&mut DescriptorEncoder) -> fmt::Result + Send + Sync;

/// A collector that calls `write` at every scrape.
struct FnCollector {
    name: &'static str,
    write: Box<Write>,
}

impl fmt::Debug for FnCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "collector of {}", self.name)
    }
}

impl Collector for FnCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        (self.write)(&mut encoder)
    }
}

/// Register `write` as the collector of component `name` (the name shows in debug output).
pub fn register(
    registry: &mut Registry,
    name: &'static str,
    write: impl Fn(&mut DescriptorEncoder) -> fmt::Result + Send + Sync + 'static,
) {
    registry.register_collector(Box::new(FnCollector { name, write: Box::new(write) }));
}

/// A counter family with one unlabelled value.
pub fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    ConstCounter::new(value).encode(encoder.encode_descriptor(
        name,
        help,
        None,
        MetricType::Counter,
    )?)
}

/// A gauge family with one unlabelled value.
pub fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> fmt::Result {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// A family whose values are added with [`add_counter`] or [`add_gauge`].
pub fn family<'e>(
    encoder: &'e mut DescriptorEncoder,
    name: &'e str,
    help: &'e str,
    kind: MetricType,
) -> Result<MetricEncoder<'e>, fmt::Error> {
    encoder.encode_descriptor(name, help, None, kind)
}

/// One labelled value of a counter family.
pub fn add_counter(family: &mut MetricEncoder, labels: &[(&str, &str)], value: u64) -> fmt::Result {
    ConstCounter::new(value).encode(family.encode_family(&labels)?)
}

/// One labelled value of a gauge family.
pub fn add_gauge(family: &mut MetricEncoder, labels: &[(&str, &str)], value: i64) -> fmt::Result {
    ConstGauge::new(value).encode(family.encode_family(&labels)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_function_writes_its_families_at_every_scrape() {
        let value = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(3));
        let mut registry = Registry::with_prefix("paddock");
        let read = value.clone();
        register(&mut registry, "test", move |e| {
            counter(e, "things", "Things", read.load(std::sync::atomic::Ordering::Relaxed))?;
            let mut f = family(e, "things_by_kind", "Things by kind", MetricType::Gauge)?;
            add_gauge(&mut f, &[("kind", "a")], 1)?;
            add_gauge(&mut f, &[("kind", "b")], 2)
        });
        let scrape = |r: &Registry| {
            let mut out = String::new();
            prometheus_client::encoding::text::encode(&mut out, r).unwrap();
            out
        };
        let first = scrape(&registry);
        assert!(first.contains("paddock_things_total 3"), "{first}");
        assert!(first.contains("paddock_things_by_kind{kind=\"b\"} 2"), "{first}");
        value.store(7, std::sync::atomic::Ordering::Relaxed);
        assert!(scrape(&registry).contains("paddock_things_total 7"));
    }
}
