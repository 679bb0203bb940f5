//! `paddock phase report [PHASE]`: the promotion evidence of each phase, as a table or JSON.
use chrono::SecondsFormat;

use crate::baseline::report::PhaseReport;

fn when(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or("never".into(), |t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// One line per phase, then one per agent that ran in it.
pub fn table(reports: &[PhaseReport]) -> String {
    let mut out = format!(
        "{:<14} {:<8} {:>8} {:>6} {:>8} {:>9} {:<21} {:>7} {:>9} {:<8} {}\n",
        "PHASE",
        "MODE",
        "REVISION",
        "RUNS",
        "LEARNED",
        "SINCE-NEW",
        "LAST NEW",
        "DEV-24H",
        "KILLS-24H",
        "SETTLED",
        "STORE"
    );
    for r in reports {
        let s = &r.status;
        out += &format!(
            "{:<14} {:<8} {:>8} {:>6} {:>8} {:>9} {:<21} {:>7} {:>9} {:<8} {}\n",
            r.phase.as_str(),
            r.mode.as_str(),
            s.revision,
            s.evidence.tally.runs,
            s.evidence.learned,
            s.evidence.tally.runs_since_new,
            when(s.evidence.tally.last_new),
            s.deviations_24h,
            s.kills_24h,
            if s.settled { "yes" } else { "no" },
            r.store
        );
        for (name, a) in &s.evidence.agents {
            out += &format!(
                "  agent {name}: {} runs, {} deviations, {} kills, {} runs since new, last new \
                 {}, last run {}\n",
                a.tally.runs,
                a.tally.deviations,
                a.tally.kills,
                a.tally.runs_since_new,
                when(a.tally.last_new),
                when(a.last_run)
            );
        }
    }
    out
}
