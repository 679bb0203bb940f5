//! Builds an eBPF crate (nightly, `bpfel-unknown-none`) from a build script with aya-build,
//! and leaves its binaries in `OUT_DIR`, where the host crate embeds them: `agent-daemon`
//! builds `agent-ebpf` (the product's kernel programs), `paddock-bench` builds
//! `agent-ebpf-bench` (the benchmarks' own).
//!
//! `AYA_BUILD_SKIP=1` skips the kernel build (an empty object is left instead); the binary
//! that embeds it then refuses to load it with a clear error. Useful for `cargo check` on
//! machines without `bpf-linker`.
//!
//! aya-build passes every line of the inner cargo's output on as a cargo warning, so a plain
//! build printed hundreds of `warning: agent-daemon@0.1.0: Compiling ...` lines. Its output
//! is caught here: the inner cargo's progress lines are dropped, compiler diagnostics are
//! passed on, and when the build fails everything is.
use std::io::{Read as _, Seek as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::path::Path;

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

/// Build the eBPF crate `package`, a sibling directory of the calling crate's, whose
/// binary is `object`; the object ends up at `OUT_DIR/object`.
pub fn build(package: &str, object: &str) -> anyhow::Result<()> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR")?;
    let root = Path::new(&manifest)
        .parent()
        .ok_or_else(|| anyhow!("{manifest} has no parent directory"))?
        .join(package);
    let root = root.to_str().with_context(|| format!("the {package} path is not UTF-8"))?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join(object);
    if std::env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v == "true") {
        std::fs::write(&out, [])?;
    }
    let (result, output) = caught(|| {
        aya_build::build_ebpf(
            [Package { name: package, root_dir: root, ..Default::default() }],
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
    let mut file = file_in_out_dir()?;
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

fn file_in_out_dir() -> anyhow::Result<std::fs::File> {
    let path = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("aya-build-output.txt");
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::progress;

    #[test]
    fn progress_lines_are_dropped_diagnostics_kept() {
        assert!(progress("cargo:warning=   Compiling core v0.0.0"));
        assert!(progress("cargo:warning=    Finished `release` profile"));
        assert!(progress("cargo:warning="));
        assert!(!progress("cargo:warning=error[E0425]: cannot find value `x`"));
        assert!(!progress("cargo:rerun-if-changed=/src/agent-ebpf"));
    }
}
