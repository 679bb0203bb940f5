//! `cargo xtask lint`: the formatting and lint gate `cargo xtask test` runs first. rustfmt
//! checks every crate; clippy runs on every crate built for the host (all but the eBPF
//! crates `agent-ebpf` and `agent-ebpf-bench`), all targets, with warnings as errors (the
//! workspace's `[workspace.lints]` among them: every `unsafe` has its SAFETY line, no
//! `unwrap` outside tests).
use crate::util::{self, cargo};

pub fn run() -> anyhow::Result<()> {
    util::run(cargo().args(["fmt", "--all", "--", "--check"]))?;
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
    println!("xtask lint: clean");
    Ok(())
}
