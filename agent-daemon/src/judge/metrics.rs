//! The phases' baselines and modes in the scrape, from the summaries the pipeline publishes
//! after every change (never from the judge itself, which the pipeline owns).
use std::sync::{Arc, Mutex};

use prometheus_client::{metrics::MetricType, registry::Registry};

use super::PhaseSummary;
use crate::scrape;

/// Register the phases' families, read from `summaries` at each scrape.
pub fn register(summaries: Arc<Mutex<Vec<PhaseSummary>>>, registry: &mut Registry) {
    scrape::register(registry, "phases", move |e| {
        let phases = summaries.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut family = scrape::family(
            e,
            "baseline_entries",
            "Entries in each phase's baseline, by set",
            MetricType::Gauge,
        )?;
        for p in &phases {
            for (set, n) in [
                ("syscalls", p.syscalls),
                ("execs", p.execs),
                ("egress", p.egress),
                ("file_writes", p.file_writes),
                ("file_reads", p.file_reads),
                ("unix", p.unix),
                ("sockets", p.sockets),
                ("io_uring", p.io_uring),
            ] {
                scrape::add_gauge(
                    &mut family,
                    &[("phase", p.phase.as_str()), ("set", set)],
                    n as i64,
                )?;
            }
        }
        let mut family = scrape::family(
            e,
            "baseline_cap",
            "The most entries each set of a phase's baseline learns ([baseline])",
            MetricType::Gauge,
        )?;
        for p in &phases {
            for (set, cap) in &p.caps {
                scrape::add_gauge(
                    &mut family,
                    &[("phase", p.phase.as_str()), ("set", set)],
                    *cap as i64,
                )?;
            }
        }
        let mut family = scrape::family(
            e,
            "baseline_capped",
            "1 for each set of a phase's baseline at or over its cap: while the phase \
             learns, nothing new is learned into it",
            MetricType::Gauge,
        )?;
        for p in &phases {
            for set in p.caps.keys() {
                let capped = p.capped.contains(set) as i64;
                scrape::add_gauge(
                    &mut family,
                    &[("phase", p.phase.as_str()), ("set", set)],
                    capped,
                )?;
            }
        }
        let mut family = scrape::family(
            e,
            "baseline_refused_entries",
            "Entries a learning phase did not learn because their set was at its cap",
            MetricType::Counter,
        )?;
        for p in &phases {
            for (set, n) in &p.refused {
                scrape::add_counter(&mut family, &[("phase", p.phase.as_str()), ("set", set)], *n)?;
            }
        }
        let mut family = scrape::family(
            e,
            "phase_kernel_policy_incomplete",
            "1 for each set of an enforcing phase the kernel's policy maps could not hold: \
             the kernel does not decide it, the daemon judges it and kills after the fact",
            MetricType::Gauge,
        )?;
        for p in &phases {
            for set in ["execs", "egress", "unix", "sockets"] {
                let incomplete = p.kernel_incomplete.iter().any(|s| s == set) as i64;
                scrape::add_gauge(
                    &mut family,
                    &[("phase", p.phase.as_str()), ("set", set)],
                    incomplete,
                )?;
            }
        }
        let mut family = scrape::family(
            e,
            "baseline_revision",
            "Revision of each phase's baseline",
            MetricType::Gauge,
        )?;
        for p in &phases {
            scrape::add_gauge(&mut family, &[("phase", p.phase.as_str())], p.revision as i64)?;
        }
        let mut family = scrape::family(
            e,
            "phase_mode",
            "1 for each phase's current mode (learn, flag, enforce)",
            MetricType::Gauge,
        )?;
        for p in &phases {
            scrape::add_gauge(
                &mut family,
                &[("phase", p.phase.as_str()), ("mode", p.mode.as_str())],
                1,
            )?;
        }
        Ok(())
    });
}
