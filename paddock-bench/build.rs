//! Builds the benchmarks' kernel programs (`agent-ebpf-bench`) and leaves the object in
//! `OUT_DIR`, where `empty_hook` embeds it (see `ebpf-build`).
fn main() -> anyhow::Result<()> {
    ebpf_build::build("agent-ebpf-bench", "paddock-bench-probes")
}
