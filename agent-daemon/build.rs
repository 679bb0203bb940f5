//! Builds the kernel programs (`agent-ebpf`) and leaves the object in `OUT_DIR`, where
//! `kernel::load` embeds it (see `ebpf-build`; `AYA_BUILD_SKIP=1` embeds an empty object).
fn main() -> anyhow::Result<()> {
    ebpf_build::build("agent-ebpf", "paddock-probes")
}
