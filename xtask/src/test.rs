//! `cargo xtask test`: the lint gate, the alerting rules' checks and unit tests
//! (`promtool`), unit tests (no root), then the integration tests in `tests/`, one at
//! a time, as root against the real kernel. Everything is built once, in release: the
//! binaries an operator runs, and the event volumes of some tests need their speed.
//!
//! The integration tests get a real Kubernetes control plane (`servers::kubernetes`), started
//! before them and stopped after them, however they end (failure, panic, ^C).
use anyhow::Context as _;

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
    // Every test target runs, whatever an earlier one did (the unit tests of the harness,
    // then the one integration binary, which runs all its tests anyway).
    cmd.args(["test", "--release", "--no-fail-fast", "--package", "paddock-tests"]);
    match filter {
        // A file of tests/tests (`observe`, or `evasion/uring` for a part of one): in the one
        // test binary, the tests whose names start with its module path.
        Some(name) if util::root().join(format!("tests/tests/{name}.rs")).is_file() => {
            let module = format!("{}::", name.replace('/', "::"));
            cmd.args(["--test", "integration", "--", "--test-threads=1", &module]);
            for other in namesakes(&module)? {
                cmd.args(["--skip", &other]);
            }
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

/// The other modules of the test binary whose paths contain `module` (`log_export::`
/// contains `export::`): libtest's filters match anywhere in a test's name, so these are
/// skipped when `module` alone is asked for. `module`'s own submodules (`export::own_rows::`)
/// are not namesakes: they run with it.
fn namesakes(module: &str) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    let mut dirs = vec![(util::root().join("tests/tests"), String::new())];
    while let Some((dir, prefix)) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
            let path = entry?.path();
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else { continue };
            let path_of = format!("{prefix}{stem}::");
            if path.is_dir() {
                dirs.push((path.clone(), path_of));
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path_of.starts_with(module)
                && path_of.contains(module)
            {
                found.push(path_of);
            }
        }
    }
    Ok(found)
}

pub fn run(filter: Option<&str>) -> anyhow::Result<()> {
    run_tests(filter)?;
    println!("xtask test: all passed");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_file_whose_module_path_contains_another_is_skipped_with_it() {
        assert_eq!(super::namesakes("export::").unwrap(), ["log_export::"]);
        assert!(super::namesakes("observe::").unwrap().is_empty());
        assert!(super::namesakes("evasion::uring::").unwrap().is_empty());
        assert!(super::namesakes("evasion::").unwrap().is_empty(), "its own submodules run");
    }
}
