//! Types shared by the kernel programs (`agent-ebpf`) and the daemon (`agent-daemon`).
//!
//! Everything here is `#[repr(C)]`, `Copy` and made of explicit-width integers: no `bool`,
//! `Option` or enums cross the kernel/user boundary. The `user` feature adds `aya::Pod`
//! impls so the daemon can read and write these values in maps.
#![cfg_attr(not(test), no_std)]

pub mod config;
pub mod dns;
pub mod event;
pub mod hash;
pub mod names;
pub mod policy;
pub mod shape;
pub mod tracking;

#[cfg(feature = "user")]
mod pod;

#[cfg(test)]
mod tests {
    use core::mem::{align_of, size_of};

    use crate::{event::*, hash::fnv1a, tracking::*};

    /// The layouts both sides compile must have no implicit padding (the kernel side
    /// leaves none uninitialised) and must not change by accident.
    #[test]
    fn record_layouts_are_packed_and_stable() {
        assert_eq!(size_of::<Header>(), 64);
        assert_eq!(size_of::<SyscallRecord>(), 72);
        assert_eq!(size_of::<ForkRecord>(), 72);
        assert_eq!(size_of::<ExecRecord>(), 64 + 24 + PATH_LEN + ARGS_LEN);
        assert_eq!(size_of::<ExitRecord>(), 72);
        assert_eq!(size_of::<OpenRecord>(), 64 + 16 + PATH_LEN);
        assert_eq!(size_of::<PathOpRecord>(), 64 + 16 + 2 * PATH_LEN);
        assert_eq!(size_of::<UnixRecord>(), 64 + 16 + UNIX_PATH_LEN);
        assert_eq!(size_of::<SocketRecord>(), 80);
        assert_eq!(size_of::<MigrateRecord>(), 80);
        assert_eq!(size_of::<UringRecord>(), 72);
        assert_eq!(size_of::<ConnectRecord>(), 112);
        assert_eq!(size_of::<crate::dns::DnsRecord>(), 64 + 40 + 256 + 128 + 32);
        assert_eq!(size_of::<crate::dns::DnsParser>(), 56 + 128 + 32);
        assert_eq!(size_of::<crate::dns::NameKey>(), 16);
        assert_eq!(size_of::<crate::dns::BindingKey>(), 24);
        assert_eq!(size_of::<crate::dns::Binding>(), 24);
        assert_eq!(size_of::<crate::dns::PendingKey>(), 16);
        assert_eq!(size_of::<crate::dns::Pending>(), 32);
        assert_eq!(size_of::<CgroupRecord>(), 64 + 16 + PATH_LEN);
        assert_eq!(size_of::<Tracked>(), 8);
        assert_eq!(size_of::<FastEntry>(), 16);
        assert_eq!(size_of::<TaskEntry>(), 16);
        assert_eq!(size_of::<ReadKey>(), 16);
        assert_eq!(size_of::<crate::policy::EgressKey>(), 20);
        assert_eq!(size_of::<crate::policy::PathKey>(), 16);
        assert_eq!(size_of::<crate::policy::SocketKey>(), 8);
        assert_eq!(size_of::<crate::policy::PhasePolicy>(), 8 + 128 + 8);
        assert_eq!(size_of::<SlotState>(), 128 + 8 * 8);
        assert_eq!(size_of::<crate::config::KernelOffsets>(), 40 * 4);
        assert_eq!(size_of::<crate::config::Config>(), 32 + 40 * 4 + 8, "no tail padding");
        assert_eq!(align_of::<Header>(), 8);
    }

    #[test]
    fn fnv1a_matches_the_reference_and_stops_at_nul() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a(b"foobar\0tail"), fnv1a(b"foobar"));
    }

    #[test]
    fn syscall_identities_keep_tables_apart() {
        assert_eq!(syscall_id(2, false), 2, "native open");
        assert_eq!(syscall_id(5, true), IA32_BASE + 5, "int 0x80 open is not native fstat");
        assert_eq!(syscall_id(X32_BIT | 39, false), ID_X32);
        assert_eq!(syscall_id(u64::MAX, false), ID_OUT_OF_TABLE, "syscall(-1)");
        assert_eq!(syscall_id(1000, false), ID_OUT_OF_TABLE);
        assert_eq!(syscall_id(u64::MAX, true), ID_OUT_OF_TABLE);
        for id in [0, 467, IA32_BASE, IA32_BASE + 509, ID_X32, ID_OUT_OF_TABLE] {
            assert!(id < SYSCALL_IDS);
            assert!(count_index(id) < MAX_SYSCALLS);
        }
        assert_eq!(count_index(IA32_BASE + 5), COUNT_IA32);
        assert_eq!(count_index(ID_X32), COUNT_X32);
        assert_eq!(count_index(ID_OUT_OF_TABLE), COUNT_OUT_OF_TABLE);
        assert_eq!(count_index(110), 110);
    }

    #[test]
    fn fast_index_stays_in_range_and_never_collides_for_neighbours() {
        let mut seen = [false; FAST_ENTRIES as usize];
        for id in 5000..5000 + FAST_ENTRIES as u64 {
            let i = fast_index(id);
            assert!(i < FAST_ENTRIES);
            assert!(!seen[i as usize], "{id} collides");
            seen[i as usize] = true;
        }
        assert_eq!(fast_index(7), fast_index(7 + FAST_ENTRIES as u64));
    }
}
