//! The floor for `cargo xtask bench overhead`: an empty program on `sys_enter`. The daemon
//! never loads it; `paddock internal empty-hook` does.
use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn paddock_bench_empty(_ctx: RawTracePointContext) -> i32 {
    0
}
