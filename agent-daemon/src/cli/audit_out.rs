//! How `paddock audit` prints its answers. This node's store prints as it always has; the
//! cluster's adds the node (and store file) each run and event came from.
use chrono::{DateTime, SecondsFormat, Utc};

use crate::sinks::audit::source::{SourceEvent, SourceRun, SourceTree};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One line per row, for people.
    Table,
    /// One JSON document.
    Json,
    /// One JSON object per line.
    Jsonl,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Runs: one line each, or JSON (the cluster's with `node` and `store_id`).
pub fn runs(runs: &[SourceRun], cluster: bool, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json if cluster => println!("{}", serde_json::to_string_pretty(runs)?),
        Format::Json => {
            let rows: Vec<_> = runs.iter().map(|r| &r.row).collect();
            println!("{}", serde_json::to_string_pretty(&rows)?);
        }
        Format::Jsonl => {
            for run in runs {
                match run.at {
                    Some(_) => println!("{}", serde_json::to_string(run)?),
                    None => println!("{}", serde_json::to_string(&run.row)?),
                }
            }
        }
        Format::Table if cluster => cluster_table(runs),
        Format::Table => {
            println!(
                "{:>6} {:<32} {:<13} {:<11} {:<24} {:>8}  REASON",
                "RUN", "INVESTIGATION", "PHASE", "OUTCOME", "STARTED", "EVENTS"
            );
            for SourceRun { row: r, .. } in runs {
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
    Ok(())
}

/// The cluster's runs: the node first, and the pod and Job where there is one.
fn cluster_table(runs: &[SourceRun]) {
    println!(
        "{:<20} {:>6} {:<32} {:<13} {:<11} {:<24} {:>8}  {:<40} {:<24}  REASON",
        "NODE", "RUN", "INVESTIGATION", "PHASE", "OUTCOME", "STARTED", "EVENTS", "POD", "JOB"
    );
    for SourceRun { at, row: r } in runs {
        let pod = r.pod.as_ref();
        println!(
            "{:<20} {:>6} {:<32} {:<13} {:<11} {:<24} {:>8}  {:<40} {:<24}  {}",
            at.as_ref().map_or("", |a| a.node.as_str()),
            r.run,
            r.id.as_str(),
            r.phase.as_str(),
            r.outcome.as_str(),
            time(r.started),
            r.events,
            pod.map_or_else(|| "-".to_owned(), |p| format!("{}/{}", p.namespace, p.name)),
            pod.and_then(|p| p.job.as_deref()).unwrap_or("-"),
            r.reason.as_deref().unwrap_or("")
        );
    }
}

/// One event as a line (the cluster's led by its node) or a JSON line (the cluster's with
/// `node` first).
pub fn event(e: &SourceEvent, format: Format) -> anyhow::Result<()> {
    match (format, &e.node) {
        (Format::Jsonl, None) => println!("{}", serde_json::to_string(&e.event)?),
        (Format::Jsonl, Some(_)) => println!("{}", serde_json::to_string(e)?),
        (_, None) => println!("{}", e.event),
        (_, Some(node)) => println!("{node} {}", e.event),
    }
    Ok(())
}

pub fn events_json(all: &[SourceEvent], cluster: bool) -> anyhow::Result<()> {
    if cluster {
        println!("{}", serde_json::to_string_pretty(all)?);
    } else {
        let events: Vec<_> = all.iter().map(|e| &e.event).collect();
        println!("{}", serde_json::to_string_pretty(&events)?);
    }
    Ok(())
}

/// A process tree; the cluster's names its run first (`# NODE/RUN, store STORE_ID`).
pub fn tree(t: &SourceTree, format: Format) -> anyhow::Result<()> {
    match (format, &t.at) {
        (Format::Table, None) => print!("{}", t.tree),
        (Format::Table, Some(at)) => {
            println!("# {}/{}, store {}", at.node, t.tree.run, at.store_id);
            print!("{}", t.tree);
        }
        (Format::Json, None) => println!("{}", serde_json::to_string_pretty(&t.tree)?),
        (Format::Json, Some(_)) => println!("{}", serde_json::to_string_pretty(t)?),
        (Format::Jsonl, None) => println!("{}", serde_json::to_string(&t.tree)?),
        (Format::Jsonl, Some(_)) => println!("{}", serde_json::to_string(t)?),
    }
    Ok(())
}
