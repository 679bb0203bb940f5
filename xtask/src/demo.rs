//! `cargo xtask demo`: a daemon, an investigation that behaves and one that strays, with
//! the events paddock saw printed as they happen.
use std::{
    process::{Command, Stdio},
    time::Duration,
};

use crate::{daemon::Daemon, util};

fn say(text: &str) {
    println!("\n\x1b[1m== {text}\x1b[0m");
}

fn run_investigation(daemon: &Daemon, id: &str, phase: &str, script: &str) -> anyhow::Result<()> {
    say(&format!("paddock run --investigation-id {id} --phase {phase} -- bash -c '{script}'"));
    let status = daemon
        .cmd(&["run", "--investigation-id", id, "--phase", phase, "--", "bash", "-c", script])
        // cargo's library path would only add noise to what the investigation opens
        .env_remove("LD_LIBRARY_PATH")
        .status()?;
    println!("   (exit status {})", status.code().map_or("signal".into(), |c| c.to_string()));
    // Show its events once it has ended.
    let mut follow = daemon
        .cmd(&["events", "--follow", "--investigation", id])
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = follow.stdout.take().expect("stdout");
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
        let noise = [
            " syscall ",
            " open /usr/lib",
            " open /lib",
            " open /etc/ld.so",
            " open /usr/share/locale",
        ];
        if noise.iter().any(|n| line.contains(n)) {
            continue; // first uses of syscalls, loader and locale files: counted in the summary
        }
        println!("   {line}");
        if line.contains(" ended: ") {
            break;
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    Ok(())
}

pub fn run() -> anyhow::Result<()> {
    util::require_root("the demo")?;
    crate::setup::run_setup_steps()?;
    util::build(false)?;
    say("starting paddock daemon");
    let daemon = Daemon::start(&util::target_bin(false, "paddock"), "demo", "")?;
    let status = util::output(&mut daemon.cmd(&["status"]))?;
    println!("{status}");

    run_investigation(
        &daemon,
        "demo-behaves",
        "read-only",
        "ls /etc > /dev/null; cat /etc/hostname > /dev/null",
    )?;
    run_investigation(
        &daemon,
        "demo-strays",
        "read-only",
        "cat /etc/hostname > /dev/null; echo exfil > /tmp/paddock-demo-loot; \
         (exec 3<>/dev/tcp/127.0.0.1/9) 2>/dev/null; true",
    )?;
    std::thread::sleep(Duration::from_millis(100));
    say("paddock status");
    println!("{}", util::output(&mut daemon.cmd(&["status"]))?);
    daemon.stop()?;
    let _ = Command::new("rm").args(["-f", "/tmp/paddock-demo-loot"]).status();
    Ok(())
}
