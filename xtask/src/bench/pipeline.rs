//! Throughput of the data path: `paddock-bench pipeline` offers synthetic kernel
//! records at increasing rates, each in a fresh process pinned to one CPU, at three stages:
//! `decode` (ring and decode only: the baseline), `pipeline` (plus attribution, the judge
//! in flag mode, the hub, metrics and alert sinks) and `full` (plus the audit store). A
//! rate is sustained when nothing is lost in the ring, no sink drops an event, and the
//! backlog is gone within half a second of the last record. Then `paddock-bench audit-query` times
//! one-page queries on an investigation of a million events.
use std::process::Command;

use anyhow::Context as _;
use serde_json::Value;

use crate::util::{output, target_bin};

const RATES: &[u64] = &[25_000, 50_000, 100_000, 150_000, 200_000, 300_000, 400_000, 600_000];
const STAGES: &[&str] = &["decode", "pipeline", "full"];

fn one(stage: &str, rate: u64, seconds: u64) -> anyhow::Result<Value> {
    let text = output(Command::new(target_bin(true, "paddock-bench")).args([
        "pipeline",
        "--stage",
        stage,
        "--rate",
        &rate.to_string(),
        "--seconds",
        &seconds.to_string(),
    ]))?;
    serde_json::from_str(text.trim())
        .with_context(|| format!("paddock-bench pipeline printed {text:?}"))
}

fn sustained(r: &Value) -> bool {
    r["lost"] == 0 && r["sink_drops"] == 0 && r["drain_ms"].as_u64().is_some_and(|d| d <= 500)
}

pub fn run(seconds: u64, events: u64) -> anyhow::Result<()> {
    println!(
        "{:<9} {:>8} {:>9} {:>8} {:>10} {:>9} {:>9} {:>10}  sustained",
        "stage", "rate/s", "offered", "lost", "sink drops", "drain ms", "CPU s", "peak RSS"
    );
    let mut best = Vec::new();
    for stage in STAGES {
        let mut highest = None;
        let mut peak_rss = 0;
        for &rate in RATES {
            let r = one(stage, rate, seconds)?;
            let ok = sustained(&r);
            println!(
                "{:<9} {:>8} {:>9} {:>8} {:>10} {:>9} {:>9.2} {:>7} MiB  {}",
                stage,
                rate,
                r["offered"],
                r["lost"],
                r["sink_drops"],
                r["drain_ms"],
                r["cpu_seconds"].as_f64().unwrap_or(0.0),
                r["peak_rss_kib"].as_u64().unwrap_or(0) / 1024,
                if ok { "yes" } else { "no" }
            );
            if !ok {
                break;
            }
            highest = Some(rate);
            peak_rss = peak_rss.max(r["peak_rss_kib"].as_u64().unwrap_or(0));
        }
        best.push((*stage, highest, peak_rss));
    }
    println!("\nhighest sustained rate on one CPU (zero loss), and the peak RSS up to it:");
    let baseline = best[0].1.unwrap_or(0) as f64;
    for (stage, highest, rss) in &best {
        let rate = highest.unwrap_or(0);
        let of = if baseline > 0.0 { rate as f64 / baseline } else { 0.0 };
        println!(
            "  {stage:<9} {rate:>8} events/s  ({of:.2} of decode alone{})  peak RSS {} MiB",
            if *highest == RATES.last().copied() { ", the highest rate tried" } else { "" },
            rss / 1024
        );
    }
    let text = output(Command::new(target_bin(true, "paddock-bench")).args([
        "audit-query",
        "--events",
        &events.to_string(),
    ]))?;
    let q: Value = serde_json::from_str(text.trim()).context("paddock-bench audit-query output")?;
    println!(
        "\naudit store, one investigation of {} events ({} MiB, filled in {:.1} s):",
        q["events"],
        q["file_mib"],
        q["fill_seconds"].as_f64().unwrap_or(0.0)
    );
    for (what, key) in [
        ("first page of 100", "first_page_ms"),
        ("page of 100 after a cursor in the middle", "middle_page_ms"),
        ("page of 100 execs after a cursor in the middle", "middle_page_of_execs_ms"),
    ] {
        println!("  {what:<48} median {:.3} ms", q[key].as_f64().unwrap_or(f64::NAN));
    }
    Ok(())
}
