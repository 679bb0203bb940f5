//! The one string hash both sides agree on: 64-bit FNV-1a over the bytes before the first NUL.

pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// One FNV-1a step.
#[inline(always)]
pub const fn fnv1a_step(hash: u64, byte: u8) -> u64 {
    (hash ^ byte as u64).wrapping_mul(FNV_PRIME)
}

/// FNV-1a of `bytes`, stopping at the first NUL (as the kernel side does on C strings).
pub const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = FNV_OFFSET;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0 {
            break;
        }
        hash = fnv1a_step(hash, bytes[i]);
        i += 1;
    }
    hash
}
