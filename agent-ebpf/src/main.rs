//! paddock's kernel programs. Each file holds one probe area; all of them start by asking
//! `tracking` whether the running task belongs to an investigation, and return at once when
//! it does not.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]
// `atomic_xadd` (BPF_XADD, ISA v1): `core::sync::atomic` has no read-modify-write on this
// target without fetch support.
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics), allow(internal_features))]
// Map keys go to aya-ebpf's `impl Borrow<K>` lookups by reference on purpose: a key passed
// by value is copied on the 512-byte BPF stack first, and the verified programs were
// measured as they are.
#![allow(clippy::needless_borrows_for_generic_args)]

#[cfg(target_arch = "bpf")]
mod args;
#[cfg(target_arch = "bpf")]
mod cgroups;
#[cfg(target_arch = "bpf")]
mod dns;
#[cfg(target_arch = "bpf")]
mod egress;
#[cfg(target_arch = "bpf")]
mod enforce;
#[cfg(target_arch = "bpf")]
mod files;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod paths;
#[cfg(target_arch = "bpf")]
mod process;
#[cfg(target_arch = "bpf")]
mod record;
#[cfg(target_arch = "bpf")]
mod scratch;
#[cfg(target_arch = "bpf")]
mod sockets;
#[cfg(target_arch = "bpf")]
mod syscalls;
#[cfg(target_arch = "bpf")]
mod tracking;
#[cfg(target_arch = "bpf")]
mod uring;
#[cfg(target_arch = "bpf")]
mod walk;

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
