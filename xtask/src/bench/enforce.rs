//! Enforcement latency: a phase is taught, switched to enforce, then many runs stray (an
//! exec, an egress, a syscall outside the baseline, in turn), each with a daemonised child.
//! From the daemon's own events: the straying action's kernel time to (a) the verdict in
//! user space and (b) the moment its cgroup held no process any more.
use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader},
    net::TcpListener,
    process::Stdio,
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::{
    daemon,
    util::{output, target_bin},
};

fn micros(from: &Value, to: &Value) -> anyhow::Result<f64> {
    let parse =
        |v: &Value| -> anyhow::Result<i128> { chrono_like(v.as_str().context("not a time")?) };
    Ok((parse(to)? - parse(from)?) as f64 / 1000.0)
}

/// Nanoseconds since the epoch of an RFC 3339 UTC time with a fraction (as the daemon
/// writes them), without a time crate.
fn chrono_like(text: &str) -> anyhow::Result<i128> {
    let (date, time) = text.trim_end_matches('Z').split_once('T').context("no T")?;
    let d: Vec<i64> = date.split('-').map(str::parse).collect::<Result<_, _>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(str::parse).collect::<Result<_, _>>()?;
    let nanos: i128 = format!("{frac:0<9}")[..9].parse()?;
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m, day) = (d[0] - i64::from(d[1] <= 2), d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2];
    Ok(secs as i128 * 1_000_000_000 + nanos)
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

pub fn run(runs: usize) -> anyhow::Result<()> {
    let paddock = target_bin(true, "paddock");
    let actor = target_bin(true, "paddock-test-actor");
    let daemon = daemon::start(&paddock, "bench-enforce")?;
    let allowed = TcpListener::bind("127.0.0.1:0")?;
    let forbidden = TcpListener::bind("127.0.0.1:0")?;
    let (allowed, forbidden) = (allowed.local_addr()?.port(), forbidden.local_addr()?.port());
    let tmp = tempfile::tempdir()?;
    // Every run: a shell starts a daemonised child that lingers, then does its work.
    let script = |linger_ms: u32, work: &str| {
        format!(
            "{a} daemonize sleep:{linger_ms}; {a} exec:/bin/true connect:127.0.0.1:{allowed} write:{out} {work}",
            a = actor.display(),
            out = tmp.path().join("out.txt").display()
        )
    };
    let sh = |id: &str, script: &str| -> anyhow::Result<Option<i32>> {
        let status = daemon
            .cmd(&[
                "run",
                "--investigation-id",
                id,
                "--phase",
                "autonomous",
                "--",
                "/bin/sh",
                "-c",
                script,
            ])
            .env_remove("LD_LIBRARY_PATH")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        Ok(status.code())
    };
    for i in 0..3 {
        sh(&format!("learn-{i}"), &script(30, "sleep:1"))?;
    }
    std::thread::sleep(Duration::from_millis(300));
    output(&mut daemon.cmd(&["phase", "mode", "autonomous", "enforce"]))?;

    let mut follower =
        daemon.cmd(&["events", "--follow", "--json"]).stdout(Stdio::piped()).spawn()?;
    let stdout = follower.stdout.take().context("stdout")?;
    let (tx, rx) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && matches!(v["kind"].as_str(), Some("verdict" | "ended"))
                && tx.send(v).is_err()
            {
                return;
            }
        }
    });
    let kinds = ["exec", "egress", "syscall"];
    for run in 0..runs {
        let kind = kinds[run % kinds.len()];
        let stray = match kind {
            "exec" => "exec:/bin/false".to_string(),
            "egress" => format!("connect:127.0.0.1:{forbidden}"),
            _ => "personality".to_string(),
        };
        let code = sh(&format!("stray-{run}-{kind}"), &script(10_000, &stray))?;
        if code != Some(99) {
            bail!("run {run} ({kind}) was not killed: exit {code:?}\n{}", daemon.log());
        }
    }
    let mut verdicts: HashMap<String, Value> = HashMap::new();
    let mut ended: HashMap<String, Value> = HashMap::new();
    while ended.len() < runs {
        let v = rx
            .recv_timeout(Duration::from_secs(30))
            .context("events stopped before every run ended")?;
        let id = v["investigation"].as_str().unwrap_or_default().to_owned();
        if !id.starts_with("stray-") {
            continue;
        }
        if v["kind"] == "verdict" {
            verdicts.insert(id, v);
        } else {
            ended.insert(id, v);
        }
    }
    let _ = follower.kill();
    let (mut to_verdict, mut to_gone) = (Vec::new(), Vec::new());
    let mut per_kind: HashMap<&str, (Vec<f64>, Vec<f64>)> = HashMap::new();
    for (id, end) in &ended {
        let verdict = verdicts.get(id).with_context(|| format!("{id} ended without a verdict"))?;
        let (v, g) = (
            micros(&verdict["action_time"], &verdict["time"])?,
            micros(&verdict["action_time"], &end["emptied_at"])?,
        );
        to_verdict.push(v);
        to_gone.push(g);
        let kind = kinds.iter().find(|k| id.ends_with(*k)).copied().unwrap_or("?");
        let entry = per_kind.entry(kind).or_default();
        entry.0.push(v);
        entry.1.push(g);
    }
    println!("{runs} straying runs in an enforcing phase (exec, egress, syscall in turn)");
    println!(
        "{:<32} {:>10} {:>10} {:>10}",
        "from the straying action to", "p50 ms", "p99 ms", "max ms"
    );
    let row = |name: &str, values: &mut Vec<f64>| {
        let (p50, p99, max) =
            (percentile(values, 50.0), percentile(values, 99.0), percentile(values, 100.0));
        println!("{name:<32} {:>10.3} {:>10.3} {:>10.3}", p50 / 1000.0, p99 / 1000.0, max / 1000.0);
        p99
    };
    let verdict_p99 = row("verdict in user space", &mut to_verdict);
    let gone_p99 = row("every process gone", &mut to_gone);
    for kind in kinds {
        if let Some((v, g)) = per_kind.get_mut(kind) {
            row(&format!("  {kind}: verdict"), v);
            row(&format!("  {kind}: every process gone"), g);
        }
    }
    println!(
        "aims: verdict p99 < 5 ms ({}), every process gone p99 < 20 ms ({})",
        if verdict_p99 < 5000.0 { "met" } else { "NOT met" },
        if gone_p99 < 20_000.0 { "met" } else { "NOT met" }
    );
    Ok(())
}
