//! `paddock phase mode ...` and `paddock baseline ...`: the operator's side of baselines.
use std::{io::Read as _, path::Path};

use clap::Subcommand;

use super::{
    client::Client,
    table::{Column, Table, left, right},
};
use crate::{
    api::protocol::{Reply, Request},
    baseline::Mode,
    identity::Phase,
    judge::PhaseSummary,
    lifecycle::admin::{AdminReply, AdminRequest},
};

#[derive(Subcommand, Debug)]
pub enum PhaseCommand {
    /// Switch a phase to learn, flag or enforce (kept across restarts; with Kubernetes,
    /// in the phase's cluster object, for every node).
    Mode { phase: String, mode: String },
    /// Promotion evidence: each phase's runs, deviations, kills, runs since the last new
    /// behaviour, whether its baseline looks settled, and the same per agent.
    Report {
        phase: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum BaselineCommand {
    /// Each phase: mode, revision, what it learned from and when, how its Jobs went.
    List {
        #[arg(long)]
        json: bool,
    },
    /// A phase's baseline, as its file reads.
    Show { phase: String },
    /// What would change if FILE were imported.
    Diff { phase: String, file: String },
    /// Print a phase's baseline file (to review, keep or edit).
    Export { phase: String },
    /// Put the baseline in FILE (or - for stdin) in force for a phase, once it checks out.
    Import { phase: String, file: String },
    /// Forget what a phase learned; it goes back to learning.
    Reset { phase: String },
}

fn ask(socket: &Path, request: AdminRequest) -> anyhow::Result<AdminReply> {
    let mut client = Client::connect(socket)?;
    client.send(&Request::Admin { request })?;
    match client.expect_reply()? {
        Reply::Admin { answer } => Ok(answer),
        other => anyhow::bail!("unexpected reply from the daemon: {other:?}"),
    }
}

fn print(reply: AdminReply) {
    match reply {
        AdminReply::Text { text } => print!("{text}"),
        AdminReply::Done { message } => println!("{message}"),
        AdminReply::List { phases } => print!("{}", table(&phases)),
        AdminReply::Report { phases } => print!("{}", super::report::table(&phases)),
    }
}

fn read_file(file: &str) -> anyhow::Result<(String, String)> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        return Ok((text, "standard input".into()));
    }
    let text =
        std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("cannot read {file}: {e}"))?;
    let source =
        std::fs::canonicalize(file).map_or_else(|_| file.to_owned(), |p| p.display().to_string());
    Ok((text, source))
}

const COLUMNS: [Column; 8] = [
    left("PHASE", 14),
    left("MODE", 8),
    right("REVISION", 8),
    right("LEARNED", 8),
    left("LAST NEW", 21),
    right("RUNS", 6),
    right("STRAYED", 8).gap(2),
    left("SYSCALLS/EXECS/EGRESS/WRITES/READS/UNIX/SOCKETS/URING/DNS", 0),
];

fn table(phases: &[PhaseSummary]) -> String {
    let mut table = Table::new(COLUMNS);
    let mut notes = Vec::new();
    for p in phases {
        let updated = p
            .updated
            .map_or("never".into(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        table.row([
            p.phase.as_str().to_owned(),
            p.mode.as_str().to_owned(),
            p.revision.to_string(),
            p.learned_from.to_string(),
            updated,
            p.runs.to_string(),
            p.strayed.to_string(),
            format!(
                "{}/{}/{}/{}/{}/{}/{}/{}/{}",
                p.syscalls,
                p.execs,
                p.egress,
                p.file_writes,
                p.file_reads,
                p.unix,
                p.sockets,
                p.io_uring,
                // `-`: queries not judged yet.
                p.dns.map_or("-".into(), |n| n.to_string())
            ),
        ]);
        notes.extend(phase_notes(p));
    }
    let mut out = table.render();
    for note in notes {
        out += &format!("{note}\n");
    }
    out
}

/// What an operator must hear about a phase beyond its counts: sets at their cap, and sets
/// the kernel cannot enforce.
fn phase_notes(p: &PhaseSummary) -> Vec<String> {
    let mut notes = Vec::new();
    for set in &p.capped {
        let cap = p.caps.get(set).copied().unwrap_or(0);
        let refused = p.refused.get(set).copied().unwrap_or(0);
        notes.push(format!(
            "{}: {set} is at its cap of {cap} ([baseline] {set}): {refused} new entries not \
             learned since the daemon started",
            p.phase
        ));
    }
    if !p.kernel_incomplete.is_empty() {
        notes.push(format!(
            "{}: the kernel's policy maps cannot hold its {} (kernel.policy_*): judged by the \
             daemon, killed after the fact",
            p.phase,
            p.kernel_incomplete.join(", ")
        ));
    }
    notes
}

pub fn phase_main(command: PhaseCommand, socket: &Path) -> anyhow::Result<i32> {
    match command {
        PhaseCommand::Mode { phase, mode } => {
            let phase: Phase = phase.parse()?;
            let mode: Mode = mode.parse()?;
            print(ask(socket, AdminRequest::SetMode { phase, mode })?);
        }
        PhaseCommand::Report { phase, json } => {
            let phase = phase.map(|p| p.parse::<Phase>()).transpose()?;
            let reply = ask(socket, AdminRequest::Report { phase })?;
            if json && let AdminReply::Report { phases } = &reply {
                println!("{}", serde_json::to_string_pretty(phases)?);
                return Ok(0);
            }
            print(reply);
        }
    }
    Ok(0)
}

pub fn baseline_main(command: BaselineCommand, socket: &Path) -> anyhow::Result<i32> {
    let request = match command {
        BaselineCommand::List { json } => {
            let reply = ask(socket, AdminRequest::List)?;
            if json && let AdminReply::List { phases } = &reply {
                println!("{}", serde_json::to_string_pretty(phases)?);
                return Ok(0);
            }
            print(reply);
            return Ok(0);
        }
        BaselineCommand::Show { phase } | BaselineCommand::Export { phase } => {
            AdminRequest::Export { phase: phase.parse()? }
        }
        BaselineCommand::Diff { phase, file } => {
            let phase = phase.parse()?;
            let (text, source) = read_file(&file)?;
            AdminRequest::Diff { phase, text, source }
        }
        BaselineCommand::Import { phase, file } => {
            let phase = phase.parse()?;
            let (text, source) = read_file(&file)?;
            AdminRequest::Import { phase, text, source }
        }
        BaselineCommand::Reset { phase } => AdminRequest::Reset { phase: phase.parse()? },
    };
    print(ask(socket, request)?);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::table::assert_lined_up;

    fn summary() -> PhaseSummary {
        PhaseSummary {
            phase: Phase::ReadOnly,
            mode: Mode::Learn,
            revision: 3,
            learned_from: 2,
            updated: None,
            runs: 2,
            strayed: 0,
            syscalls: 10,
            execs: 4,
            egress: 1,
            file_writes: 1,
            file_reads: 2,
            unix: 0,
            sockets: 0,
            io_uring: 0,
            dns: Some(2),
            caps: [("execs".to_owned(), 4)].into(),
            capped: vec!["execs".into()],
            refused: [("execs".to_owned(), 7)].into(),
            kernel_incomplete: vec![],
            report: None,
        }
    }

    #[test]
    fn capped_and_incomplete_sets_are_said_under_the_table() {
        let mut p = summary();
        let text = table(std::slice::from_ref(&p));
        assert!(
            text.contains("read-only: execs is at its cap of 4 ([baseline] execs): 7 new entries"),
            "{text}"
        );
        p.capped.clear();
        p.kernel_incomplete = vec!["egress".into()];
        let text = table(&[p]);
        assert!(text.contains("cannot hold its egress"), "{text}");
        assert!(!text.contains("at its cap"), "{text}");
    }

    #[test]
    fn phases_line_up_under_their_headers_whatever_the_numbers() {
        let mut big = summary();
        big.phase = Phase::LimitedWrite;
        (big.revision, big.learned_from, big.runs, big.strayed) =
            (123_456_789_012, 98_765_432_109, 10_000_000, 1_000_000_000);
        big.updated = Some("2026-11-26T15:00:00Z".parse().unwrap());
        let text = table(&[summary(), big]);
        let rows = [
            ["read-only", "learn", "3", "2", "never", "2", "0", "10/4/1/1/2/0/0/0/2"],
            [
                "limited-write",
                "learn",
                "123456789012",
                "98765432109",
                "2026-11-26T15:00:00Z",
                "10000000",
                "1000000000",
                "10/4/1/1/2/0/0/0/2",
            ],
        ];
        let rows: Vec<Vec<String>> =
            rows.iter().map(|r| r.iter().map(|c| (*c).to_owned()).collect()).collect();
        assert_lined_up(&text, &COLUMNS, &rows);
    }
}
