//! Export throughput: `paddock-bench export` fills a store with a million realistic events
//! and exports it whole to a throwaway PostgreSQL (the tests' own, `paddock-test-pg`), with
//! 1 and then N concurrent exporters (as N nodes), each run on a fresh database.
use std::process::Command;

use anyhow::Context as _;
use paddock_test_pg::{PgOptions, Postgres};
use serde_json::Value;

use crate::util::{output, target_bin};

pub fn run_bench(events: u64, exporters: &[u32]) -> anyhow::Result<()> {
    // Durable writes as in production (fsync on), with room for long batches.
    let settings = ["shared_buffers=512MB", "max_wal_size=4GB"].map(String::from).to_vec();
    let cluster = Postgres::try_start(PgOptions { settings, ..PgOptions::default() })?;
    println!(
        "{:>9} {:>10} {:>9} {:>10} {:>12} {:>14}",
        "exporters", "events", "store MiB", "export s", "events/s", "per exporter/s"
    );
    for (i, &n) in exporters.iter().enumerate() {
        let url = format!("{}?sslmode=disable", cluster.database(&format!("bench{i}"))?);
        let text = output(Command::new(target_bin(true, "paddock-bench")).args([
            "export",
            "--events",
            &events.to_string(),
            "--url",
            &url,
            "--exporters",
            &n.to_string(),
        ]))?;
        let r: Value = serde_json::from_str(text.trim())
            .with_context(|| format!("paddock-bench export printed {text:?}"))?;
        println!(
            "{:>9} {:>10} {:>9} {:>10.1} {:>12.0} {:>14.0}",
            n,
            r["events"],
            r["store_mib"],
            r["export_seconds"].as_f64().unwrap_or(f64::NAN),
            r["events_per_second"].as_f64().unwrap_or(f64::NAN),
            r["events_per_second_per_exporter"].as_f64().unwrap_or(f64::NAN),
        );
    }
    Ok(())
}
