//! How `paddock audit` prints its answers. This node's store prints as it always has; the
//! cluster's adds the node (and store file) each run and event came from.
use chrono::{DateTime, SecondsFormat, Utc};

use super::table::{Column, Table, left, right};
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
        Format::Table if cluster => print!("{}", cluster_table(runs)),
        Format::Table => print!("{}", runs_table(runs)),
    }
    Ok(())
}

const RUN_COLUMNS: [Column; 7] = [
    right("RUN", 6),
    left("INVESTIGATION", 32),
    left("PHASE", 13),
    left("OUTCOME", 11),
    left("STARTED", 24),
    right("EVENTS", 8).gap(2),
    left("REASON", 0),
];

fn runs_table(runs: &[SourceRun]) -> String {
    let mut table = Table::new(RUN_COLUMNS);
    for SourceRun { row: r, .. } in runs {
        table.row([
            r.run.to_string(),
            r.id.as_str().to_owned(),
            r.phase.as_str().to_owned(),
            r.outcome.as_str().to_owned(),
            time(r.started),
            r.events.to_string(),
            r.reason.clone().unwrap_or_default(),
        ]);
    }
    table.render()
}

const CLUSTER_COLUMNS: [Column; 10] = [
    left("NODE", 20),
    right("RUN", 6),
    left("INVESTIGATION", 32),
    left("PHASE", 13),
    left("OUTCOME", 11),
    left("STARTED", 24),
    right("EVENTS", 8).gap(2),
    left("POD", 40),
    left("JOB", 24).gap(2),
    left("REASON", 0),
];

/// The cluster's runs: the node first, and the pod and Job where there is one.
fn cluster_table(runs: &[SourceRun]) -> String {
    let mut table = Table::new(CLUSTER_COLUMNS);
    for SourceRun { at, row: r } in runs {
        let pod = r.pod.as_ref();
        table.row([
            at.as_ref().map_or("", |a| a.node.as_str()).to_owned(),
            r.run.to_string(),
            r.id.as_str().to_owned(),
            r.phase.as_str().to_owned(),
            r.outcome.as_str().to_owned(),
            time(r.started),
            r.events.to_string(),
            pod.map_or_else(|| "-".to_owned(), |p| format!("{}/{}", p.namespace, p.name)),
            pod.and_then(|p| p.job.as_deref()).unwrap_or("-").to_owned(),
            r.reason.clone().unwrap_or_default(),
        ]);
    }
    table.render()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        cli::table::assert_lined_up,
        events::PodRef,
        identity::Phase,
        outcome::Outcome,
        sinks::audit::{query::InvestigationRow, source::NodeStore},
    };

    const STARTED: &str = "2026-11-26T15:00:00.000Z";

    fn run(run: i64, id: &str, reason: Option<&str>) -> SourceRun {
        let row = InvestigationRow {
            run,
            instance: 7,
            id: id.parse().unwrap(),
            phase: Phase::ReadOnly,
            source: None,
            cgroup: None,
            pod: None,
            started: STARTED.parse().unwrap(),
            ended: None,
            outcome: Outcome::Killed,
            reason: reason.map(str::to_owned),
            events: 12,
        };
        SourceRun { at: None, row }
    }

    fn on(node: &str, pod: &str, job: Option<&str>, mut run: SourceRun) -> SourceRun {
        run.at = Some(NodeStore { node: node.into(), store_id: "store-a".into() });
        let job = job.map(str::to_owned);
        run.row.pod = Some(PodRef { namespace: "agents".into(), name: pod.into(), job });
        run
    }

    fn cells(row: &[&str]) -> Vec<String> {
        row.iter().map(|c| (*c).to_owned()).collect()
    }

    const LONG_ID: &str = "investigation-with-a-very-long-name-0123456789-abcdefghijklm";

    #[test]
    fn runs_line_up_under_their_headers_whatever_the_id() {
        assert_eq!(LONG_ID.len(), 60);
        let runs = [run(1234567, LONG_ID, Some("exec of /bin/sh")), run(8, "inv-8", None)];
        let rows = [
            cells(&["1234567", LONG_ID, "read-only", "killed", STARTED, "12", "exec of /bin/sh"]),
            cells(&["8", "inv-8", "read-only", "killed", STARTED, "12", ""]),
        ];
        assert_lined_up(&runs_table(&runs), &RUN_COLUMNS, &rows);
    }

    #[test]
    fn the_clusters_runs_line_up_under_their_headers_whatever_the_pod() {
        let long_pod = "agent-runner-with-a-long-generated-name-7f9c8d6b5-x2k4q";
        let runs = [
            on("node-with-a-long-name-01", long_pod, None, run(1, LONG_ID, None)),
            on("n2", "p", Some("job-1"), run(22, "inv-22", Some("killed: egress"))),
        ];
        let pod = format!("agents/{long_pod}");
        let rows = [
            cells(&[
                "node-with-a-long-name-01",
                "1",
                LONG_ID,
                "read-only",
                "killed",
                STARTED,
                "12",
                &pod,
                "-",
                "",
            ]),
            cells(&[
                "n2",
                "22",
                "inv-22",
                "read-only",
                "killed",
                STARTED,
                "12",
                "agents/p",
                "job-1",
                "killed: egress",
            ]),
        ];
        assert_lined_up(&cluster_table(&runs), &CLUSTER_COLUMNS, &rows);
    }

    /// Ordinary rows look as they did with the fixed widths (less the trailing spaces).
    #[test]
    fn ordinary_runs_print_as_the_fixed_widths_did() {
        let lines = |lines: &[String]| -> String {
            lines.iter().map(|l| format!("{}\n", l.trim_end())).collect()
        };
        let runs = [run(1, "inv-1", Some("why")), run(22, "inv-22", None)];
        let mut old = vec![format!(
            "{:>6} {:<32} {:<13} {:<11} {:<24} {:>8}  REASON",
            "RUN", "INVESTIGATION", "PHASE", "OUTCOME", "STARTED", "EVENTS"
        )];
        for (n, id, reason) in [(1, "inv-1", "why"), (22, "inv-22", "")] {
            old.push(format!(
                "{n:>6} {id:<32} {:<13} {:<11} {STARTED:<24} {:>8}  {reason}",
                "read-only", "killed", 12
            ));
        }
        assert_eq!(runs_table(&runs), lines(&old));

        let runs = [on("node-1", "pod-1", Some("job-1"), run(3, "inv-3", Some("why")))];
        let old = [
            format!(
                "{:<20} {:>6} {:<32} {:<13} {:<11} {:<24} {:>8}  {:<40} {:<24}  REASON",
                "NODE",
                "RUN",
                "INVESTIGATION",
                "PHASE",
                "OUTCOME",
                "STARTED",
                "EVENTS",
                "POD",
                "JOB"
            ),
            format!(
                "{:<20} {:>6} {:<32} {:<13} {:<11} {:<24} {:>8}  {:<40} {:<24}  {}",
                "node-1",
                3,
                "inv-3",
                "read-only",
                "killed",
                STARTED,
                12,
                "agents/pod-1",
                "job-1",
                "why"
            ),
        ];
        assert_eq!(cluster_table(&runs), lines(&old));
    }
}
