//! The eBPF crate links with `bpf-linker` (rebuild when it changes) and needs the
//! `bpf_target_arch` cfg for syscall numbers and registers (set by aya-build when the daemon
//! builds it; derived from the host otherwise).
fn main() -> aya_build::Result<()> {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
    aya_build::emit_bpf_target_arch_cfg()
}
