//! Hook cost on the hot path. Four cases, interleaved round by round so drift hits them
//! alike: no probes; an empty `sys_enter` program (the floor); paddock loaded, the loop
//! untracked (while another investigation is tracked); paddock with the loop tracked.
use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;

use super::median;
use crate::{
    daemon::Daemon,
    util::{output, target_bin},
};

fn measure(cmd: &mut Command) -> anyhow::Result<f64> {
    output(cmd)?.parse::<f64>().context("the loop printed no number")
}

fn loop_cmd(calls: u64) -> Command {
    let mut cmd = Command::new(target_bin(true, "paddock-syscall-loop"));
    cmd.arg(calls.to_string());
    cmd
}

struct EmptyHook(Child);

impl EmptyHook {
    fn attach() -> anyhow::Result<EmptyHook> {
        let mut child = Command::new(target_bin(true, "paddock"))
            .args(["internal", "empty-hook"])
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

pub fn run(calls: u64, rounds: usize) -> anyhow::Result<()> {
    let paddock = target_bin(true, "paddock");
    let mut none = Vec::new();
    let mut floor = Vec::new();
    let mut untracked = Vec::new();
    let mut tracked = Vec::new();
    for round in 1..=rounds {
        none.push(measure(&mut loop_cmd(calls))?);
        {
            let _hook = EmptyHook::attach()?;
            floor.push(measure(&mut loop_cmd(calls))?);
        }
        let daemon = Daemon::start(&paddock, "bench", "")?;
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
        untracked.push(measure(&mut loop_cmd(calls))?);
        let loop_bin = target_bin(true, "paddock-syscall-loop");
        tracked.push(measure(
            daemon
                .cmd(&["run", "--investigation-id", "bench-loop", "--phase", "shadow", "--"])
                .arg(loop_bin)
                .arg(calls.to_string()),
        )?);
        kill_investigation(&daemon, "bench-other")?;
        let _ = other.wait();
        daemon.stop()?;
        eprintln!(
            "round {round}/{rounds}: none {:.1}  floor {:.1}  untracked {:.1}  tracked {:.1} ns/call",
            none[round - 1],
            floor[round - 1],
            untracked[round - 1],
            tracked[round - 1]
        );
    }
    let (none, floor, untracked, tracked) =
        (median(&mut none), median(&mut floor), median(&mut untracked), median(&mut tracked));
    let floor_added = floor - none;
    println!("getppid loop, {calls} calls, median of {rounds} interleaved rounds");
    println!("{:<34} {:>10} {:>10} {:>16}", "case", "ns/call", "added ns", "x floor's added");
    for (name, ns) in [
        ("no probes", none),
        ("empty sys_enter hook (floor)", floor),
        ("paddock, loop untracked", untracked),
        ("paddock, loop tracked", tracked),
    ] {
        let added = ns - none;
        let ratio = if name == "no probes" {
            String::from("-")
        } else {
            format!("{:.2}", added / floor_added)
        };
        println!("{name:<34} {ns:>10.1} {added:>10.1} {ratio:>16}");
    }
    println!(
        "aims: untracked <= 1.5 x floor's added cost ({}), tracked <= 2 x ({})",
        if (untracked - none) <= 1.5 * floor_added { "met" } else { "NOT met" },
        if (tracked - none) <= 2.0 * floor_added { "met" } else { "NOT met" },
    );
    Ok(())
}
