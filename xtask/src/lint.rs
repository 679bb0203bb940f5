//! `cargo xtask lint`: the formatting and lint gate `cargo xtask test` runs first. rustfmt
//! checks every crate; clippy runs on every crate built for the host (all but the eBPF
//! crates `agent-ebpf` and `agent-ebpf-bench`), all targets, with warnings as errors (the
//! workspace's `[workspace.lints]` among them: every `unsafe` has its SAFETY line, no
//! `unwrap` outside tests); then on the eBPF crates for their own target, with the nightly
//! toolchain that builds them (as aya's xtask does), into a target folder of their own;
//! and the layer check: no import cycle among `agent-daemon`'s modules (`layers`).
use std::process::Command;

use crate::util::{self, cargo};

pub fn run() -> anyhow::Result<()> {
    util::run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    crate::layers::check(&util::root().join("agent-daemon/src"))?;
    util::run(cargo().args([
        "clippy",
        "--release",
        "--workspace",
        "--exclude",
        "agent-ebpf",
        "--exclude",
        "agent-ebpf-bench",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    util::run(
        Command::new("rustup")
            .args(["run", "nightly", "cargo", "clippy", "--release"])
            .args(["-p", "agent-ebpf", "-p", "agent-ebpf-bench"])
            .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
            .args(["--", "-D", "warnings"])
            .env("CARGO_TARGET_DIR", util::root().join("target/lint-ebpf"))
            .current_dir(util::root()),
    )?;
    println!("xtask lint: clean");
    Ok(())
}
