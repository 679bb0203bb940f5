//! `cargo xtask setup`: idempotent, and fast when everything is there.
use std::{path::PathBuf, process::Command};

use anyhow::Context as _;

use crate::util::{self, output};

const BPF_LINKER_VERSION: &str = "0.13.0";
/// Debian packages the tests use: the servers they talk to (etcd for the Kubernetes API
/// server, Prometheus, Alertmanager, PostgreSQL for the cluster's audit store), openssl for
/// the test certificates, curl for readiness.
const APT_PACKAGES: &[&str] =
    &["etcd-server", "openssl", "curl", "prometheus", "prometheus-alertmanager", "postgresql"];

/// What building paddock needs: the nightly `rust-src` and `bpf-linker` (the demo needs no
/// more).
pub fn build_steps() -> anyhow::Result<()> {
    rust_src()?;
    bpf_linker()
}

/// Everything: the build, and the servers and tools the tests use.
pub fn run_setup_steps() -> anyhow::Result<()> {
    build_steps()?;
    apt(APT_PACKAGES)?;
    kubectl()?;
    crate::servers::kubernetes::build()
}

/// kubectl is for developers poking at the test control plane (`cargo xtask k8s`); nothing
/// in the build or the tests needs it. Debian's `kubernetes-client` only when there is no
/// kubectl at all: some machines have another package's kubectl, and the two collide.
fn kubectl() -> anyhow::Result<()> {
    if Command::new("kubectl").args(["version", "--client"]).output().is_ok() {
        return Ok(());
    }
    apt(&["kubernetes-client"])
}

pub fn run() -> anyhow::Result<()> {
    run_setup_steps()?;
    println!("setup: done");
    Ok(())
}

/// The nightly components the eBPF crates need: `rust-src` to build them, `clippy` to lint
/// them (`cargo xtask lint`).
fn rust_src() -> anyhow::Result<()> {
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        "nightly",
    ]))?;
    for component in ["rust-src", "clippy"] {
        if installed.lines().any(|l| l.starts_with(component)) {
            continue;
        }
        println!("setup: adding {component} to the nightly toolchain");
        util::run(Command::new("rustup").args([
            "component",
            "add",
            component,
            "--toolchain",
            "nightly",
        ]))?;
    }
    Ok(())
}

fn bpf_linker_ok() -> bool {
    Command::new("bpf-linker").arg("--version").output().is_ok_and(|o| {
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION)
    })
}

/// bpf-linker must be built against LLVM 22, the LLVM of the nightly toolchain: point
/// `LLVM_PREFIX` at a folder whose `lib/` links to nightly's own libLLVM (no apt needed).
fn bpf_linker() -> anyhow::Result<()> {
    if bpf_linker_ok() {
        return Ok(());
    }
    let sysroot =
        PathBuf::from(output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?);
    let libllvm = std::fs::read_dir(sysroot.join("lib"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libLLVM.so.22"))
        })
        .context("nightly toolchain has no libLLVM.so.22*")?;
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let prefix = PathBuf::from(home).join(".cache/paddock/llvm22");
    let lib = prefix.join("lib");
    std::fs::create_dir_all(&lib)?;
    let name = libllvm.file_name().context("libLLVM name")?;
    for link in [lib.join("libLLVM.so"), lib.join(name)] {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&libllvm, &link)?;
    }
    println!("setup: building bpf-linker {BPF_LINKER_VERSION} against nightly's LLVM 22");
    util::run(
        Command::new("cargo")
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION, "--force"])
            .args(["--no-default-features", "--features", "llvm-22"])
            .env("LLVM_PREFIX", &prefix),
    )
}

pub fn apt(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("setup: installing {}", missing.join(" "));
    util::run(Command::new("apt-get").arg("update").arg("-qq"))?;
    util::run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}
