//! `paddock audit export`: every event of the store after a sequence number, as JSON lines,
//! read straight from the file (no daemon needed): paddock's own event objects with `seq`
//! and `run` added, or the OpenTelemetry-named objects the JSON-lines export writes.
use std::{
    collections::HashMap,
    io::{self, Write as _},
};

use serde::Serialize;

use crate::{
    events::Event,
    identity::InvestigationId,
    sinks::{
        audit::{AuditStore, query::InvestigationRow},
        export::otel::{OtelRecord, write_line},
    },
};

/// Events read from the store at a time.
const PAGE: usize = 10_000;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// paddock's event objects (as `paddock events --json`), with `seq` and `run`.
    Jsonl,
    /// Flat objects named after the OpenTelemetry semantic conventions (docs/log-export.md).
    Otel,
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Only events with a sequence number above this.
    #[arg(long, default_value_t = 0)]
    pub after: i64,
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: ExportFormat,
    /// Only this investigation's events.
    #[arg(long)]
    pub id: Option<String>,
    /// `k8s.node.name` of the otel format: default `$NODE_NAME`, else the host name.
    #[arg(long)]
    pub node: Option<String>,
}

#[derive(Serialize)]
struct Numbered<'a> {
    seq: i64,
    run: i64,
    #[serde(flatten)]
    event: &'a Event,
}

fn node_name() -> String {
    std::env::var("NODE_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_owned())
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Print the events; a reader that goes away (`| head`) ends it quietly.
pub fn main(store: &AuditStore, args: ExportArgs) -> anyhow::Result<i32> {
    let id: Option<InvestigationId> = args.id.as_deref().map(str::parse).transpose()?;
    let node = args.node.unwrap_or_else(node_name);
    let store_id = store.store_id()?;
    let mut runs: HashMap<i64, InvestigationRow> = HashMap::new();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut line = Vec::new();
    let mut after = args.after;
    loop {
        let page = store.read_after(after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        if args.format == ExportFormat::Otel {
            let mut missing: Vec<i64> =
                page.iter().map(|e| e.run).filter(|r| !runs.contains_key(r)).collect();
            missing.sort_unstable();
            missing.dedup();
            runs.extend(store.runs(&missing)?.into_iter().map(|r| (r.run, r)));
        }
        for stored in &page {
            if id.as_ref().is_some_and(|id| *id != stored.event.investigation) {
                continue;
            }
            line.clear();
            match args.format {
                ExportFormat::Jsonl => {
                    let numbered =
                        Numbered { seq: stored.seq, run: stored.run, event: &stored.event };
                    serde_json::to_writer(&mut line, &numbered)?;
                    line.push(b'\n');
                }
                ExportFormat::Otel => {
                    write_line(&mut line, &OtelRecord::new(stored, &runs, &node, &store_id))?
                }
            }
            if let Err(e) = out.write_all(&line) {
                return quiet_on_broken_pipe(e);
            }
        }
    }
    if let Err(e) = out.flush() {
        return quiet_on_broken_pipe(e);
    }
    Ok(0)
}

fn quiet_on_broken_pipe(e: io::Error) -> anyhow::Result<i32> {
    if e.kind() == io::ErrorKind::BrokenPipe { Ok(0) } else { Err(e.into()) }
}
