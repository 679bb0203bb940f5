//! `paddock phase report [PHASE]`: the promotion evidence of each phase, as a table or JSON.
use chrono::SecondsFormat;

use super::table::{Column, Table, left, right};
use crate::baseline::report::PhaseReport;

fn when(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or("never".into(), |t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

const COLUMNS: [Column; 11] = [
    left("PHASE", 14),
    left("MODE", 8),
    right("REVISION", 8),
    right("RUNS", 6),
    right("LEARNED", 8),
    right("SINCE-NEW", 9),
    left("LAST NEW", 21),
    right("DEV-24H", 7),
    right("KILLS-24H", 9),
    left("SETTLED", 8),
    left("STORE", 0),
];

/// One line per phase, then one per agent that ran in it.
pub fn table(reports: &[PhaseReport]) -> String {
    let mut table = Table::new(COLUMNS);
    for r in reports {
        let s = &r.status;
        table.row([
            r.phase.as_str().to_owned(),
            r.mode.as_str().to_owned(),
            s.revision.to_string(),
            s.evidence.tally.runs.to_string(),
            s.evidence.learned.to_string(),
            s.evidence.tally.runs_since_new.to_string(),
            when(s.evidence.tally.last_new),
            s.deviations_24h.to_string(),
            s.kills_24h.to_string(),
            if s.settled { "yes" } else { "no" }.to_owned(),
            r.store.clone(),
        ]);
        for (name, a) in &s.evidence.agents {
            table.note(format!(
                "  agent {name}: {} runs, {} deviations, {} kills, {} runs since new, last new \
                 {}, last run {}",
                a.tally.runs,
                a.tally.deviations,
                a.tally.kills,
                a.tally.runs_since_new,
                when(a.tally.last_new),
                when(a.last_run)
            ));
        }
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        baseline::{Mode, evidence::AgentEvidence, report::Status},
        cli::table::assert_lined_up,
        identity::Phase,
    };

    fn report(phase: Phase, store: &str, runs: u64) -> PhaseReport {
        let mut status = Status { revision: 7, settled: true, ..Status::default() };
        status.evidence.tally.runs = runs;
        status.evidence.learned = runs / 2;
        status.kills_24h = runs / 10;
        PhaseReport { phase, mode: Mode::Learn, store: store.into(), status }
    }

    #[test]
    fn reports_line_up_under_their_headers_whatever_the_numbers() {
        let mut big = report(Phase::LimitedWrite, "cluster", 12_345_678_901);
        big.status.revision = 37_037_036_703;
        big.status.evidence.agents.insert("claude".into(), AgentEvidence::default());
        let text = table(&[report(Phase::ReadOnly, "node", 4), big]);
        let rows = [
            ["read-only", "learn", "7", "4", "2", "0", "never", "0", "0", "yes", "node"],
            [
                "limited-write",
                "learn",
                "37037036703",
                "12345678901",
                "6172839450",
                "0",
                "never",
                "0",
                "1234567890",
                "yes",
                "cluster",
            ],
        ];
        let rows: Vec<Vec<String>> =
            rows.iter().map(|r| r.iter().map(|c| (*c).to_owned()).collect()).collect();
        assert_lined_up(&text, &COLUMNS, &rows);
        assert_eq!(
            text.lines().nth(3),
            Some(
                "  agent claude: 0 runs, 0 deviations, 0 kills, 0 runs since new, last new never, \
                 last run never"
            ),
            "{text}"
        );
    }
}
