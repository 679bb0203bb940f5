//! `paddock audit list | show | tree | check | export`: forensic queries on the audit store, read
//! straight from its file (read-only), so they work with the daemon down too.
//!
//! The file is `--db`, else the one the running daemon writes (asked over its socket), else
//! the one the configuration names (`--config`, `$PADDOCK_CONFIG`, /etc/paddock/paddock.toml).
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::{SecondsFormat, Utc};

use super::client::Client;
use crate::{
    api::protocol::{Reply, Request},
    config::Config,
    identity::InvestigationId,
    sinks::audit::{AuditStore, Cursor, params, query::MAX_PAGE},
};

#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// The audit database file.
    #[arg(long, global = true)]
    pub db: Option<PathBuf>,
    /// The daemon's configuration, to find the store when no daemon answers.
    #[arg(long, global = true, env = "PADDOCK_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One line per row, for people.
    Table,
    /// One JSON document.
    Json,
    /// One JSON object per line.
    Jsonl,
}

#[derive(clap::Subcommand, Debug)]
pub enum AuditCommand {
    /// Runs of investigations, newest first.
    List {
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        phase: Option<String>,
        /// RFC 3339 time, or an age: 90s, 15m, 2h, 7d.
        #[arg(long)]
        since: Option<String>,
        /// ok, flagged, killed or running.
        #[arg(long)]
        outcome: Option<String>,
        #[arg(long, default_value_t = params::DEFAULT_LIMIT)]
        limit: usize,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// The timeline of one investigation: every event, oldest first.
    Show {
        id: String,
        /// Only this run (see `audit list`); every run by default.
        #[arg(long)]
        run: Option<i64>,
        /// Only events of this kind (exec, open, connect, verdict, ...).
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// The process tree of one investigation's latest run (or `--run`): forks, execs, exits
    /// and kills.
    Tree {
        id: String,
        #[arg(long)]
        run: Option<i64>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Check the store file's integrity (SQLite `integrity_check`).
    Check,
    /// Every event after a sequence number, oldest first, as JSON lines: paddock's own
    /// (`--format jsonl`, with `seq` and `run`) or named after OpenTelemetry (`--format otel`).
    Export(super::audit_export::ExportArgs),
}

/// The store file, as the module documentation says.
fn store_path(args: &AuditArgs, socket: &Path) -> anyhow::Result<PathBuf> {
    if let Some(db) = &args.db {
        return Ok(db.clone());
    }
    if let Ok(mut client) = Client::connect(socket)
        && client.send(&Request::Status).is_ok()
        && let Ok(Reply::Status(report)) = client.expect_reply()
    {
        return report.audit.map(|a| a.path).with_context(|| {
            format!(
                "the daemon at {} keeps no audit store (audit.enabled = false)",
                socket.display()
            )
        });
    }
    let config = Config::load(args.config.as_deref())?;
    anyhow::ensure!(config.audit.enabled, "the configuration disables the audit store");
    Ok(config.audit_path())
}

fn pairs(list: &[(&str, &Option<String>)]) -> Vec<(String, String)> {
    list.iter().filter_map(|(k, v)| v.as_ref().map(|v| ((*k).to_owned(), v.clone()))).collect()
}

fn time(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn main(args: AuditArgs, socket: &Path) -> anyhow::Result<i32> {
    let path = store_path(&args, socket)?;
    let store = AuditStore::open_read_only(&path)?;
    let now = Utc::now();
    match args.command {
        AuditCommand::List { id, phase, since, outcome, limit, format } => {
            let mut given =
                pairs(&[("id", &id), ("phase", &phase), ("since", &since), ("outcome", &outcome)]);
            given.push(("limit".into(), limit.to_string()));
            let filter = params::list_filter(&given, now)?;
            let runs = store.list_investigations(&filter)?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&runs)?),
                Format::Jsonl => {
                    for run in &runs {
                        println!("{}", serde_json::to_string(run)?);
                    }
                }
                Format::Table => {
                    println!(
                        "{:>6} {:<32} {:<13} {:<11} {:<24} {:>8}  REASON",
                        "RUN", "INVESTIGATION", "PHASE", "OUTCOME", "STARTED", "EVENTS"
                    );
                    for r in &runs {
                        println!(
                            "{:>6} {:<32} {:<13} {:<11} {:<24} {:>8}  {}",
                            r.run,
                            r.id.as_str(),
                            r.phase.as_str(),
                            r.outcome.as_str(),
                            time(r.started),
                            r.events,
                            r.reason.as_deref().unwrap_or("")
                        );
                    }
                }
            }
        }
        AuditCommand::Show { id, run, kind, since, until, format } => {
            let id: InvestigationId = id.parse()?;
            let run = run.map(|r| r.to_string());
            let given =
                pairs(&[("run", &run), ("kind", &kind), ("since", &since), ("until", &until)]);
            let request = params::events_request(&given, now)?;
            let mut cursor: Option<Cursor> = None;
            let mut all = Vec::new();
            loop {
                let page = store.events(&id, &request.filter, cursor, MAX_PAGE)?;
                for event in page.events {
                    match format {
                        Format::Table => println!("{event}"),
                        Format::Jsonl => println!("{}", serde_json::to_string(&event)?),
                        Format::Json => all.push(event),
                    }
                }
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            if format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            }
        }
        AuditCommand::Tree { id, run, format } => {
            let id: InvestigationId = id.parse()?;
            let tree = store.investigation_tree(&id, run)?;
            match format {
                Format::Table => print!("{tree}"),
                Format::Json => println!("{}", serde_json::to_string_pretty(&tree)?),
                Format::Jsonl => println!("{}", serde_json::to_string(&tree)?),
            }
        }
        AuditCommand::Export(export) => return super::audit_export::main(&store, export),
        AuditCommand::Check => {
            let result = store.integrity_check()?;
            println!("{}: {result}", store.path().display());
            return Ok(if result == "ok" { 0 } else { 1 });
        }
    }
    Ok(0)
}
