//! `cargo xtask test`: the lint gate, the alerting rules' checks and unit tests
//! (`promtool`), unit tests (no root), then the integration tests in `tests/`, one at
//! a time, as root against the real kernel. Everything is built once, in release: the
//! binaries an operator runs, and the event volumes of some tests need their speed.
//!
//! The integration tests get a real Kubernetes control plane (`servers::kubernetes`), started
//! before them and stopped after them, however they end (failure, panic, ^C).
use crate::{
    servers::{
        SigintGuard,
        kubernetes::{self, Kubernetes},
    },
    util::{self, build, cargo, require_root, target_bin},
};

/// Cases of each property test in the longer run (the unit tests run 256 of each). All 42
/// together take 156 s of CPU: 183 s on the 2-CPU machine while other builds kept it busy
/// (load 5-6), about half that when the two test threads have it to themselves.
const PROPERTY_CASES: &str = "150000";

pub fn run_tests(filter: Option<&str>) -> anyhow::Result<()> {
    crate::setup::run_setup_steps()?;
    build(true)?;
    crate::lint::run()?;
    // The alerting rules in deploy/monitoring/, with promtool (a few seconds, no root).
    crate::rules::run()?;
    let unit = [
        "test",
        "--release",
        "--workspace",
        "--exclude",
        "paddock-tests",
        "--exclude",
        "agent-ebpf",
    ];
    util::run(cargo().args(unit))?;
    // The parsers' property tests (modules `*_props`), longer.
    util::run(cargo().args(unit).args(["--", "_props::"]).env("PROPTEST_CASES", PROPERTY_CASES))?;
    require_root("the integration tests")?;
    let mut cmd = cargo();
    // Every test file runs, whatever an earlier one did: a run reports all that failed.
    cmd.args(["test", "--release", "--no-fail-fast", "--package", "paddock-tests"]);
    match filter {
        // the name of a file in tests/tests: that whole test target
        Some(name) if util::root().join(format!("tests/tests/{name}.rs")).is_file() => {
            cmd.args(["--test", name, "--", "--test-threads=1"]);
        }
        Some(filter) => {
            cmd.args(["--", "--test-threads=1", filter]);
        }
        None => {
            cmd.args(["--", "--test-threads=1"]);
        }
    }
    cmd.env("PADDOCK_BIN", target_bin(true, "paddock"));
    // Dropped in reverse order: ^C handling ends first, then the servers stop.
    let k8s = Kubernetes::start(&kubernetes::run_dir(), true)?;
    let _sigint = SigintGuard::install();
    cmd.envs(k8s.test_env());
    util::run(&mut cmd)
}

pub fn run(filter: Option<&str>) -> anyhow::Result<()> {
    run_tests(filter)?;
    println!("xtask test: all passed");
    Ok(())
}
