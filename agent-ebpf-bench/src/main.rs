//! The benchmarks' kernel programs, in an object of their own so the one `paddock` embeds
//! carries none of them. `paddock-bench` embeds this one.
//!
//! `paddock_bench_empty`, an empty program on `sys_enter`: the floor of
//! `cargo xtask bench overhead` (`paddock-bench empty-hook` attaches it).
#![cfg_attr(target_arch = "bpf", no_std, no_main)]

#[cfg(target_arch = "bpf")]
use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};

#[cfg(target_arch = "bpf")]
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn paddock_bench_empty(_ctx: RawTracePointContext) -> i32 {
    0
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any path that reaches here; loop so the signature holds.
    #[allow(clippy::empty_loop)]
    loop {}
}

#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(target_arch = "bpf"))]
fn main() {}
