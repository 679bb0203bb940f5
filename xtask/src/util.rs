//! Running commands and finding the workspace.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// Run `cmd`, failing with its command line when it fails.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Run `cmd` and return its stdout (trimmed).
pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    Ok(output_as_is(cmd)?.trim().to_owned())
}

/// [`output`], untrimmed (a table keeps its header's leading spaces).
pub fn output_as_is(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

pub fn is_root() -> bool {
    // SAFETY: no arguments.
    unsafe { libc::geteuid() == 0 }
}

pub fn require_root(what: &str) -> anyhow::Result<()> {
    if !is_root() {
        bail!("{what} needs root: it loads eBPF programs and makes cgroups");
    }
    Ok(())
}

/// Build the daemon, its kernel programs and the test binaries (not the benchmarks':
/// [`build_bench`]).
pub fn build(release: bool) -> anyhow::Result<()> {
    let mut cmd = cargo();
    cmd.args(["build", "--workspace", "--bins"]);
    cmd.args(["--exclude", "paddock-bench", "--exclude", "agent-ebpf-bench"]);
    if release {
        cmd.arg("--release");
    }
    run(&mut cmd)
}

/// Build the benchmark drivers (`paddock-bench`, with their own kernel programs), release.
pub fn build_bench() -> anyhow::Result<()> {
    run(cargo().args(["build", "--release", "-p", "paddock-bench"]))
}

pub fn target_bin(release: bool, name: &str) -> PathBuf {
    root().join("target").join(if release { "release" } else { "debug" }).join(name)
}
