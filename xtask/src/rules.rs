//! `cargo xtask rules`: the Prometheus alerting rules in `deploy/monitoring/`, checked
//! (`promtool check rules`) and unit-tested (`promtool test rules`). Every `*.yaml` there but
//! the tests is a rules file and must have its tests beside it, `<name>.test.yaml`. No root,
//! no daemon: `cargo xtask test` runs it after the lint gate. `promtool` is Debian's
//! `prometheus` package, which `cargo xtask setup` installs.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::util;

const PROMTOOL: &str = "promtool";

fn monitoring_dir() -> PathBuf {
    util::root().join("deploy/monitoring")
}

/// The rules files of `dir` and their test files, in name order.
fn rules_and_tests(dir: &Path) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    let mut pairs = Vec::new();
    for rules in files {
        let Some(name) = rules.file_name().and_then(|n| n.to_str()) else { continue };
        let Some(stem) = name.strip_suffix(".yaml") else { continue };
        if stem.ends_with(".test") {
            continue;
        }
        let tests = dir.join(format!("{stem}.test.yaml"));
        if !tests.is_file() {
            bail!(
                "{}: a rules file without its unit tests ({} is missing)",
                relative(&rules),
                relative(&tests)
            );
        }
        pairs.push((rules, tests));
    }
    if pairs.is_empty() {
        bail!("no rules files in {}", relative(dir));
    }
    Ok(pairs)
}

fn relative(path: &Path) -> String {
    path.strip_prefix(util::root()).unwrap_or(path).display().to_string()
}

/// `promtool <what> <file>`, run from the file's folder (test files name their rules files
/// relative to it); its output goes to the terminal; an error names the file.
fn promtool(what: &[&str], file: &Path) -> anyhow::Result<()> {
    let dir = file.parent().context("a file in a folder")?;
    let status = Command::new(PROMTOOL)
        .args(what)
        .arg(file.file_name().context("a file name")?)
        .current_dir(dir)
        .status();
    match status {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{PROMTOOL} not found: `cargo xtask setup` installs it (the Debian package prometheus)"
        ),
        Err(e) => bail!("cannot start {PROMTOOL}: {e}"),
        Ok(s) if !s.success() => bail!(
            "`{PROMTOOL} {} {}` failed ({s}); its output above says which rule or test",
            what.join(" "),
            relative(file)
        ),
        Ok(_) => Ok(()),
    }
}

pub fn run() -> anyhow::Result<()> {
    for (rules, tests) in rules_and_tests(&monitoring_dir())? {
        promtool(&["check", "rules"], &rules)?;
        promtool(&["test", "rules"], &tests)?;
    }
    println!("xtask rules: checked and tested");
    Ok(())
}
