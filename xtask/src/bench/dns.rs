//! DNS on the packet hooks. A DNS server and a UDP echo server on loopback, outside any
//! investigation; a client makes N lookups, or N echo round trips, one after the other,
//! and reports the mean per round trip. Four cases, interleaved round by round: no paddock;
//! paddock, the client in an untracked cgroup below the investigations' parent (where the
//! packet hooks are attached, so they run and find nothing); the client tracked in a phase
//! that learns; the client tracked in a phase that enforces (each query judged by name,
//! each answer bound). Ratios compare each case's best sample with no paddock's.
//!
//! Round trips on loopback are tens of microseconds of scheduling, so the kernel's own figure
//! is printed beside them: with `kernel.bpf_stats_enabled`, the mean run time of each
//! packet program per packet, in one extra sample per case and round.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;

use super::{kstats, median};
use crate::{daemon, util::target_bin};

const SERVER: &str = "127.0.31.53";
const NAME: &str = "api.bench.test";
const ECHO: &str = "127.0.31.2:5300";
const SAMPLES: usize = 3;

/// The v2 hierarchy's mount point, from this process's mountinfo.
fn cgroup2() -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    text.lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            right.starts_with("cgroup2 ").then(|| left.split(' ').nth(4).map(PathBuf::from))?
        })
        .context("no cgroup2 mount")
}

struct Servers(Vec<Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The two loads as actor steps, writing their ns per round trip to files in `dir`.
fn steps(dir: &Path, n: u32) -> [String; 2] {
    [
        format!("dns-loop:{SERVER}:{NAME}:{n}:{}", dir.join("dns").display()),
        format!("echo-loop:{ECHO}:{n}:{}", dir.join("echo").display()),
    ]
}

fn read(dir: &Path) -> anyhow::Result<(f64, f64)> {
    let get = |f: &str| -> anyhow::Result<f64> {
        Ok(std::fs::read_to_string(dir.join(f))?.trim().parse::<f64>()?)
    };
    Ok((get("dns")?, get("echo")?))
}

type Kernel = std::collections::BTreeMap<String, (f64, u64)>;

#[derive(Default)]
struct Case {
    dns: Vec<f64>,
    echo: Vec<f64>,
    /// The kernel's figures while the client made lookups, and while it made echoes.
    kernel: [Kernel; 2],
}

impl Case {
    /// SAMPLES runs of `cmd` (the client, given its steps), then one run of each load alone
    /// with the kernel's statistics on.
    fn sample(
        &mut self,
        dir: &Path,
        steps: &[String; 2],
        cmd: impl Fn(&[&String]) -> Command,
    ) -> anyhow::Result<()> {
        for _ in 0..SAMPLES {
            let mut c = cmd(&[&steps[0], &steps[1]]);
            let status = c.stdout(Stdio::null()).stderr(Stdio::null()).status()?;
            anyhow::ensure!(status.success(), "the client failed: {status}");
            let (dns, echo) = read(dir)?;
            self.dns.push(dns);
            self.echo.push(echo);
        }
        let _on = kstats::StatsOn::new()?;
        for (step, kernel) in steps.iter().zip(self.kernel.iter_mut()) {
            let before = kstats::snapshot("paddock_skb");
            cmd(&[step]).stdout(Stdio::null()).stderr(Stdio::null()).status()?;
            for (name, (ns, runs)) in kstats::per_run(&before, &kstats::snapshot("paddock_skb")) {
                let entry = kernel.entry(name).or_default();
                entry.0 += ns * runs as f64;
                entry.1 += runs;
            }
        }
        Ok(())
    }
}

pub fn run(lookups: u32, rounds: usize) -> anyhow::Result<()> {
    let paddock = target_bin(true, "paddock");
    let actor = target_bin(true, "paddock-test-actor");
    let serve_ms = 3_600_000;
    let _servers = Servers(vec![
        Command::new(&actor)
            .arg(format!("dns-serve:{SERVER}:{NAME}:127.0.31.1:{serve_ms}"))
            .spawn()?,
        Command::new(&actor).arg(format!("echo-serve:{ECHO}:{serve_ms}")).spawn()?,
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let dir = tempfile::tempdir()?;
    let loads = steps(dir.path(), lookups);
    let direct = |steps: &[&String]| {
        let mut cmd = Command::new(&actor);
        cmd.args(steps);
        cmd
    };
    let (mut none, mut untracked, mut learn, mut enforce) =
        (Case::default(), Case::default(), Case::default(), Case::default());
    for round in 1..=rounds {
        none.sample(dir.path(), &loads, direct)?;
        let daemon = daemon::start(&paddock, "bench-dns")?;
        let parent = cgroup2()?.join(format!("paddock-bench-dns-{}", std::process::id()));
        let outside = parent.join("untracked");
        std::fs::create_dir_all(&outside)?;
        let in_outside = |steps: &[&String]| {
            let mut cmd = Command::new("sh");
            cmd.arg("-c").arg(format!(
                "echo $$ > {}/cgroup.procs && exec {} {}",
                outside.display(),
                actor.display(),
                steps.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
            ));
            cmd
        };
        untracked.sample(dir.path(), &loads, in_outside)?;
        let actor = &actor;
        let d = &daemon;
        let tracked = |phase: &'static str| {
            move |steps: &[&String]| {
                let mut cmd = d.cmd(&[
                    "run",
                    "--investigation-id",
                    &format!("bench-dns-{phase}"),
                    "--phase",
                    phase,
                    "--",
                ]);
                cmd.arg(actor).args(steps);
                cmd
            }
        };
        learn.sample(dir.path(), &loads, tracked("shadow"))?;
        // Teach the enforcing phase the same work, then enforce it.
        for _ in 0..2 {
            tracked("autonomous")(&[&loads[0], &loads[1]])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?;
        }
        std::thread::sleep(Duration::from_millis(300));
        let mode = daemon.cmd(&["phase", "mode", "autonomous", "enforce"]).output()?;
        anyhow::ensure!(mode.status.success(), "{}", String::from_utf8_lossy(&mode.stderr));
        if let Err(e) = enforce.sample(dir.path(), &loads, tracked("autonomous")) {
            let events = d.cmd(&["events", "--json"]).output()?;
            let verdicts: Vec<&str> = std::str::from_utf8(&events.stdout)?
                .lines()
                .filter(|l| l.contains("\"verdict\""))
                .collect();
            anyhow::bail!("{e}: the enforcing phase's verdicts: {verdicts:#?}");
        }
        let _ = std::fs::remove_dir(&outside);
        drop(daemon);
        eprintln!(
            "round {round}/{rounds}: lookup us none {:.1} untracked {:.1} learn {:.1} enforce {:.1}",
            none.dns.last().copied().unwrap_or(0.0) / 1000.0,
            untracked.dns.last().copied().unwrap_or(0.0) / 1000.0,
            learn.dns.last().copied().unwrap_or(0.0) / 1000.0,
            enforce.dns.last().copied().unwrap_or(0.0) / 1000.0,
        );
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::MAX, f64::min);
    let (dns0, echo0) = (best(&none.dns), best(&none.echo));
    println!(
        "{lookups} lookups and {lookups} UDP echo round trips per sample on loopback, {SAMPLES} samples per case in each of {rounds} interleaved rounds"
    );
    println!(
        "{:<34} {:>11} {:>9} {:>7} {:>11} {:>9} {:>7}",
        "case", "lookup us", "median", "ratio", "echo us", "median", "ratio"
    );
    for (name, case) in [
        ("no paddock", &mut none),
        ("paddock, client untracked", &mut untracked),
        ("paddock, client tracked (learn)", &mut learn),
        ("paddock, client tracked (enforce)", &mut enforce),
    ] {
        let (d, e) = (best(&case.dns), best(&case.echo));
        println!(
            "{name:<34} {:>11.2} {:>9.2} {:>7.3} {:>11.2} {:>9.2} {:>7.3}",
            d / 1000.0,
            median(&mut case.dns) / 1000.0,
            d / dns0,
            e / 1000.0,
            median(&mut case.echo) / 1000.0,
            e / echo0
        );
    }
    println!();
    println!(
        "the kernel's figure (kernel.bpf_stats_enabled, one extra sample per case and round): \
         mean run time per packet of each packet program, lookups and echoes apart (queries \
         and echo requests leave through the egress program, answers and echo replies arrive \
         through the ingress one)"
    );
    for (name, case) in [
        ("paddock, client untracked", &untracked),
        ("paddock, client tracked (learn)", &learn),
        ("paddock, client tracked (enforce)", &enforce),
    ] {
        for (load, kernel) in ["lookups", "echoes"].iter().zip(&case.kernel) {
            for (program, (ns, runs)) in kernel {
                println!(
                    "{name:<34} {load:<8} {program:<16} {:>8.1} ns/packet {runs:>9} packets",
                    ns / *runs as f64
                );
            }
        }
    }
    Ok(())
}
