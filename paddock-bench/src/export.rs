//! `paddock-bench export`: fill a store with realistic events (through the real writer),
//! then export it whole to PostgreSQL with the daemon's own export task, once per node
//! name given (concurrent exporters, as many nodes would), and time it.
use std::time::{Duration, Instant};

use serde_json::json;

use agent_daemon::sinks::export::{
    ExportConfig, ExportMetrics, Exports,
    config::{DEFAULT_BATCH_EVENTS, PostgresExport},
};

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Kernel records turned into events and stored before the export starts.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Investigations the events are spread over.
    #[arg(long, default_value_t = 50)]
    pub investigations: u32,
    /// `postgres://ROLE@HOST:PORT/DB?sslmode=disable`
    #[arg(long)]
    pub url: String,
    /// Concurrent exporters of the store, each as a node of its own.
    #[arg(long, default_value_t = 1)]
    pub exporters: u32,
    #[arg(long, default_value_t = DEFAULT_BATCH_EVENTS)]
    pub batch: usize,
}

pub fn export(args: ExportArgs) -> anyhow::Result<i32> {
    let dir = tempfile::Builder::new().prefix("paddock-bench-").tempdir()?;
    let path = dir.path().join("audit.db");
    let started = Instant::now();
    super::drivers::fill_store(&path, args.events, args.investigations)?;
    let filled = started.elapsed();
    let store = agent_daemon::sinks::audit::AuditStore::open_read_only(&path)?;
    let stored = store.last_seq_given()?;
    let bytes = store.file_bytes();
    drop(store);
    let configs: Vec<ExportConfig> = (1..=args.exporters)
        .map(|n| {
            ExportConfig::Postgres(PostgresExport {
                name: format!("node-{n}"),
                url: args.url.clone(),
                ca_file: None,
                password_file: None,
                batch_events: args.batch,
                retention_days: 0,
                node: Some(format!("bench-node-{n}")),
            })
        })
        .collect();
    agent_daemon::sinks::export::config::validate(&configs)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let seconds = runtime.block_on(async {
        let metrics = ExportMetrics::default();
        let started = Instant::now();
        let exports = Exports::start(&configs, &path, "bench", &metrics)?;
        let deadline = started + Duration::from_secs(3600);
        loop {
            let done = configs.iter().all(|c| metrics.acknowledged(c.name()) >= stored as u64);
            if done {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "export not done after an hour");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seconds = started.elapsed().as_secs_f64();
        exports.stop(Duration::from_secs(5)).await;
        anyhow::Ok(seconds)
    })?;
    let total = stored as f64 * f64::from(args.exporters);
    let report = json!({
        "events": stored,
        "exporters": args.exporters,
        "batch": args.batch,
        "store_mib": bytes >> 20,
        "fill_seconds": filled.as_secs_f64(),
        "export_seconds": seconds,
        "events_per_second": total / seconds,
        "events_per_second_per_exporter": stored as f64 / seconds,
    });
    println!("{report}");
    Ok(0)
}
