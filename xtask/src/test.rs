//! `cargo xtask test`: unit tests (no root), then the integration tests in `tests/`, one at
//! a time, as root against the real kernel. Everything is built once, in release: the
//! binaries an operator runs, and the event volumes of some tests need their speed.
use crate::util::{self, build, cargo, require_root, target_bin};

pub fn run_tests(filter: Option<&str>) -> anyhow::Result<()> {
    crate::setup::run_setup_steps()?;
    build(true)?;
    util::run(cargo().args([
        "test",
        "--release",
        "--workspace",
        "--exclude",
        "paddock-tests",
        "--exclude",
        "agent-ebpf",
    ]))?;
    require_root("the integration tests")?;
    let mut cmd = cargo();
    cmd.args(["test", "--release", "--package", "paddock-tests", "--", "--test-threads=1"]);
    if let Some(filter) = filter {
        cmd.arg(filter);
    }
    cmd.env("PADDOCK_BIN", target_bin(true, "paddock"));
    util::run(&mut cmd)
}

pub fn run(filter: Option<&str>) -> anyhow::Result<()> {
    run_tests(filter)?;
    println!("xtask test: all passed");
    Ok(())
}
