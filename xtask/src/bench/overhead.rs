//! Hook cost on the hot path. Four cases, interleaved round by round so drift hits them
//! alike: no probes; an empty `sys_enter` program (the floor); paddock loaded, the loop
//! untracked (while another investigation is tracked); paddock with the loop tracked.
//!
//! The loop is pinned to one CPU. The machines this runs on switch between a fast and a slow
//! regime every few seconds (seen here: ~200 and ~260 ns for the bare loop), which swamps a
//! 30 ns effect; interference only ever adds time. So each case is sampled several times per
//! round over many rounds, and the ratios compare each case's best sample (every case gets
//! samples in the fast regime); medians are printed beside them.
//!
//! At 18-30 ns for a whole hook, a few nanoseconds of noise move the ratios a lot, so the
//! kernel's own figure is reported beside them: with `kernel.bpf_stats_enabled`, the mean
//! run time of each program per run during each case (`kstats`), in the same run. The
//! kernel's timing adds to every hook, so it is on only for one extra sample per case and
//! round, which the ns-per-call figures leave out.
use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;

use super::{kstats, median};
use crate::{
    daemon::{self, Daemon},
    util::{output, target_bin},
};

/// Samples per case per round.
const SAMPLES: usize = 4;

/// `SAMPLES` runs of `cmd` (which prints ns per call), added to `into`.
fn measure(into: &mut Vec<f64>, mut cmd: impl FnMut() -> Command) -> anyhow::Result<()> {
    for _ in 0..SAMPLES {
        let ns = output(&mut cmd())?.parse::<f64>().context("the loop printed no number")?;
        into.push(ns);
    }
    Ok(())
}

fn best(samples: &[f64]) -> f64 {
    samples.iter().copied().fold(f64::MAX, f64::min)
}

/// The CPU the loop runs on.
const CPU: &str = "1";

fn loop_cmd(calls: u64) -> Command {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", CPU]).arg(target_bin(true, "paddock-syscall-loop")).arg(calls.to_string());
    cmd
}

struct EmptyHook(Child);

impl EmptyHook {
    fn attach() -> anyhow::Result<EmptyHook> {
        let mut child = Command::new(target_bin(true, "paddock-bench"))
            .args(["empty-hook"])
            .stderr(Stdio::piped())
            .spawn()?;
        // It says so on stderr once attached.
        let mut stderr = std::io::BufReader::new(child.stderr.take().context("stderr")?);
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stderr, &mut line)?;
        anyhow::ensure!(line.contains("attached"), "empty hook: {line}");
        Ok(EmptyHook(child))
    }
}

impl Drop for EmptyHook {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// Kill every process of a running investigation through its cgroup.
fn kill_investigation(daemon: &Daemon, id: &str) -> anyhow::Result<()> {
    let status: serde_json::Value =
        serde_json::from_str(&output(&mut daemon.cmd(&["status", "--json"]))?)?;
    for investigation in status["investigations"].as_array().into_iter().flatten() {
        if investigation["id"] == id {
            let cgroup = investigation["cgroup"].as_str().context("cgroup path")?;
            std::fs::write(std::path::Path::new(cgroup).join("cgroup.kill"), "1")?;
        }
    }
    Ok(())
}

/// The kernel's per-program figures for one case, summed over rounds.
#[derive(Default)]
struct Kernel(std::collections::BTreeMap<String, (f64, u64)>);

impl Kernel {
    /// Run `f` with the kernel's statistics on, adding the run time and count of programs
    /// named `prefix*` meanwhile.
    fn around<T>(&mut self, prefix: &str, f: impl FnOnce() -> T) -> anyhow::Result<T> {
        let _on = kstats::StatsOn::new()?;
        let before = kstats::snapshot(prefix);
        let out = f();
        for (name, (ns, runs)) in kstats::per_run(&before, &kstats::snapshot(prefix)) {
            let entry = self.0.entry(name).or_default();
            entry.0 += ns * runs as f64;
            entry.1 += runs;
        }
        Ok(out)
    }

    fn print(&self, case: &str) {
        for (name, (ns, runs)) in &self.0 {
            println!("{case:<30} {name:<18} {:>9.1} ns/run {runs:>12} runs", ns / *runs as f64);
        }
    }
}

pub fn run(calls: u64, rounds: usize) -> anyhow::Result<()> {
    let paddock = target_bin(true, "paddock");
    let (mut k_floor, mut k_untracked, mut k_tracked) =
        (Kernel::default(), Kernel::default(), Kernel::default());
    let mut none = Vec::new();
    let mut floor = Vec::new();
    let mut untracked = Vec::new();
    let mut tracked = Vec::new();
    for round in 1..=rounds {
        measure(&mut none, || loop_cmd(calls))?;
        {
            let _hook = EmptyHook::attach()?;
            measure(&mut floor, || loop_cmd(calls))?;
            k_floor.around("paddock_bench", || output(&mut loop_cmd(calls)))??;
        }
        let daemon = daemon::start(&paddock, "bench")?;
        // Another investigation is tracked meanwhile, as on a busy node.
        let mut other = daemon
            .cmd(&[
                "run",
                "--investigation-id",
                "bench-other",
                "--phase",
                "shadow",
                "--",
                "sleep",
                "600",
            ])
            .spawn()?;
        std::thread::sleep(Duration::from_millis(200));
        measure(&mut untracked, || loop_cmd(calls))?;
        k_untracked.around("paddock_", || output(&mut loop_cmd(calls)))??;
        let loop_bin = target_bin(true, "paddock-syscall-loop");
        let tracked_cmd = || {
            let mut cmd =
                daemon.cmd(&["run", "--investigation-id", "bench-loop", "--phase", "shadow", "--"]);
            cmd.args(["taskset", "-c", CPU]).arg(&loop_bin).arg(calls.to_string());
            cmd
        };
        measure(&mut tracked, tracked_cmd)?;
        k_tracked.around("paddock_", || output(&mut tracked_cmd()))??;
        kill_investigation(&daemon, "bench-other")?;
        let _ = other.wait();
        drop(daemon);
        let last = |v: &[f64]| best(&v[v.len() - SAMPLES..]);
        eprintln!(
            "round {round}/{rounds}: best of {SAMPLES}: none {:.1}  floor {:.1}  untracked {:.1}  tracked {:.1} ns/call",
            last(&none),
            last(&floor),
            last(&untracked),
            last(&tracked)
        );
    }
    let row = |name: &str, samples: &mut Vec<f64>, base: f64, floor_added: f64| {
        let (min, med) = (best(samples), median(samples));
        let ratio = if floor_added > 0.0 {
            format!("{:.2}", (min - base) / floor_added)
        } else {
            "-".into()
        };
        println!("{name:<30} {min:>9.1} {:>9.1} {med:>9.1} {ratio:>12}", min - base);
        min
    };
    println!(
        "getppid loop on CPU {CPU}, {calls} calls per sample, {SAMPLES} samples per case in each of {rounds} interleaved rounds"
    );
    println!("{:<30} {:>9} {:>9} {:>9} {:>12}", "case", "best ns", "added", "median", "x floor");
    let base = best(&none);
    let floor_added = best(&floor) - base;
    row("no probes", &mut none, base, 0.0);
    row("empty sys_enter hook (floor)", &mut floor, base, floor_added);
    let untracked = row("paddock, loop untracked", &mut untracked, base, floor_added) - base;
    let tracked = row("paddock, loop tracked", &mut tracked, base, floor_added) - base;
    println!(
        "aims: untracked <= 1.5 x floor's added cost ({}), tracked <= 2 x ({})",
        if untracked <= 1.5 * floor_added { "met" } else { "NOT met" },
        if tracked <= 2.0 * floor_added { "met" } else { "NOT met" },
    );
    println!();
    println!(
        "the kernel's figure (kernel.bpf_stats_enabled, on for one extra sample per case and round): \
         mean run time per run of each program, every run on the node during that sample"
    );
    k_floor.print("empty sys_enter hook (floor)");
    k_untracked.print("paddock, loop untracked");
    k_tracked.print("paddock, loop tracked");
    Ok(())
}
