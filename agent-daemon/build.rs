//! Builds the kernel programs (`agent-ebpf`, nightly, `bpfel-unknown-none`) and leaves the
//! object in `OUT_DIR`, where `kernel::load` embeds it.
//!
//! `AYA_BUILD_SKIP=1` skips the kernel build (an empty object is embedded instead); the
//! daemon then refuses to start with a clear error. Useful for `cargo check` on machines
//! without `bpf-linker`.
use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow!("agent-daemon has no parent directory"))?
        .join("agent-ebpf");
    let root = root.to_str().context("the agent-ebpf path is not UTF-8")?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("paddock-probes");
    if std::env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v == "true") {
        std::fs::write(&out, [])?;
    }
    aya_build::build_ebpf(
        [Package { name: "agent-ebpf", root_dir: root, ..Default::default() }],
        Toolchain::default(),
    )
}
