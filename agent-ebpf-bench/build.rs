//! The `bpf_target_arch` cfg aya-ebpf's macros expect (set by aya-build when `paddock-bench`
//! builds this crate; derived from the host otherwise).
fn main() -> aya_build::Result<()> {
    aya_build::emit_bpf_target_arch_cfg()
}
