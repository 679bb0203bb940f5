//! Builds the kernel programs (`agent-ebpf`, nightly, `bpfel-unknown-none`) and leaves the
//! object in `OUT_DIR`, where `kernel::load` embeds it.
//!
//! `AYA_BUILD_SKIP=1` skips the kernel build (an empty object is embedded instead); the
//! daemon then refuses to start with a clear error. Useful for `cargo check` on machines
//! without `bpf-linker`.
//!
//! aya-build passes every line of the inner cargo's output on as a cargo warning, so a plain
//! build printed hundreds of `warning: agent-daemon@0.1.0: Compiling ...` lines. Its output
//! is caught here: the inner cargo's progress lines are dropped, compiler diagnostics are
//! passed on, and when the build fails everything is.
use std::io::{Read as _, Seek as _, Write as _};
use std::os::fd::AsRawFd as _;

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

/// A line of the inner cargo's own progress (`Compiling x`, `Finished ...`).
fn progress(line: &str) -> bool {
    let Some(text) = line.strip_prefix("cargo:warning=") else { return false };
    let word = text.trim_start().split(' ').next().unwrap_or("");
    matches!(
        word,
        "Compiling"
            | "Finished"
            | "Checking"
            | "Blocking"
            | "Updating"
            | "Downloading"
            | "Downloaded"
            | "Locking"
            | "Adding"
            | "Fresh"
            | "Running"
    ) || text.trim().is_empty()
}

/// Run `build` with this process's stdout (where cargo reads a build script's directives)
/// caught in a file; its lines, as written.
fn caught(
    build: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<(anyhow::Result<()>, String)> {
    let mut file = tempfile_in_out_dir()?;
    std::io::stdout().flush()?;
    // SAFETY: dup and dup2 on this process's own descriptors; fd 1 is restored below
    // before anything else writes to it.
    let saved = unsafe { libc::dup(1) };
    anyhow::ensure!(saved >= 0, "dup(1): {}", std::io::Error::last_os_error());
    // SAFETY: as above; `file` outlives the redirection.
    let redirected = unsafe { libc::dup2(file.as_raw_fd(), 1) };
    anyhow::ensure!(redirected >= 0, "dup2: {}", std::io::Error::last_os_error());
    let result = build();
    std::io::stdout().flush()?;
    // SAFETY: restores fd 1 from the copy taken above, then closes the copy.
    unsafe {
        libc::dup2(saved, 1);
        libc::close(saved);
    }
    let mut text = String::new();
    file.rewind()?;
    file.read_to_string(&mut text)?;
    Ok((result, text))
}

fn tempfile_in_out_dir() -> anyhow::Result<std::fs::File> {
    let path = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("aya-build-output.txt");
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))
}

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
    let (result, output) = caught(|| {
        aya_build::build_ebpf(
            [Package { name: "agent-ebpf", root_dir: root, ..Default::default() }],
            Toolchain::default(),
        )
    })?;
    let failed = result.is_err();
    for line in output.lines() {
        if failed || !progress(line) {
            println!("{line}");
        }
    }
    result
}
