//! A phase's baseline as the kernel enforces it (see `agent_common::policy`).
use std::collections::BTreeSet;

use agent_common::{
    dns::{NAME_EGRESS, NAME_QUERY, NameKey, name_hash},
    hash::fnv1a,
    policy::{
        EGRESS_FIXED_BITS, EgressKey, FAIL_CLOSED, IPV4_MAPPED_BITS, MODE_ENFORCE, MODE_FLAG,
        MODE_LEARN, PATH_EXEC, PATH_UNIX, QUERIES_UNJUDGED, SocketKey, ipv4_mapped,
    },
    tracking::SYSCALL_IDS,
};
use ipnet::IpNet;

pub use crate::kernel::KernelPolicy;
use crate::{
    baseline::{Baseline, Mode, Set, uring},
    syscalls,
};

/// The sets named by the `INCOMPLETE_*` bits of `flags`, in set order.
pub fn incomplete_sets(flags: u32) -> Vec<Set> {
    use agent_common::policy::{
        INCOMPLETE_EGRESS, INCOMPLETE_EXECS, INCOMPLETE_NAMES, INCOMPLETE_SOCKETS, INCOMPLETE_UNIX,
    };
    [
        (Set::Execs, INCOMPLETE_EXECS),
        (Set::Egress, INCOMPLETE_EGRESS),
        (Set::Unix, INCOMPLETE_UNIX),
        (Set::Sockets, INCOMPLETE_SOCKETS),
        (Set::Dns, INCOMPLETE_NAMES),
    ]
    .into_iter()
    .filter(|(_, bit)| flags & bit != 0)
    .map(|(set, _)| set)
    .collect()
}

pub fn mode_id(mode: Mode) -> u32 {
    match mode {
        Mode::Learn => MODE_LEARN,
        Mode::Flag => MODE_FLAG,
        Mode::Enforce => MODE_ENFORCE,
    }
}

/// What the kernel needs of `baseline` for phase number `phase`, in `mode`; with
/// `fail_closed`, lost records, untracked processes and escapes doom an investigation in
/// the kernel. Only an enforcing phase has entries in the shared allow-lists: the kernel
/// decides nothing for the others, and their room is left to the phases that enforce.
pub fn kernel_policy(
    phase: u8,
    mode: Mode,
    baseline: &Baseline,
    fail_closed: bool,
) -> KernelPolicy {
    if mode != Mode::Enforce {
        return KernelPolicy {
            mode: mode_id(mode),
            flags: if fail_closed { FAIL_CLOSED } else { 0 },
            allowed_syscalls: [0; (SYSCALL_IDS / 64) as usize],
            allowed_uring: 0,
            paths: BTreeSet::new(),
            egress: Vec::new(),
            sockets: BTreeSet::new(),
            names: BTreeSet::new(),
        };
    }
    let mut allowed_syscalls = [0u64; (SYSCALL_IDS / 64) as usize];
    let judged =
        baseline.syscalls.iter().filter(|name| !syscalls::IA32_UNJUDGED.contains(&name.as_str()));
    for id in judged.filter_map(|name| syscalls::id(name)) {
        if let Some(word) = allowed_syscalls.get_mut((id / 64) as usize) {
            *word |= 1 << (id % 64);
        }
    }
    let allowed_uring = baseline
        .io_uring
        .iter()
        .filter_map(|name| uring::bit(name))
        .fold(0u64, |bits, bit| bits | 1 << bit);
    let execs = baseline.execs.iter().map(|p| (PATH_EXEC, fnv1a(p.as_bytes())));
    let unix = baseline.unix.iter().map(|p| (PATH_UNIX, fnv1a(p.as_bytes())));
    let egress = baseline
        .egress
        .iter()
        .map(|rule| {
            let port = rule.port.unwrap_or(0).to_be_bytes();
            let (bits, addr) = match rule.network {
                IpNet::V4(net) => (
                    IPV4_MAPPED_BITS + net.prefix_len() as u32,
                    ipv4_mapped(net.network().octets()),
                ),
                IpNet::V6(net) => (net.prefix_len() as u32, net.network().octets()),
            };
            let key = EgressKey { phase, protocol: rule.protocol.number(), port, addr };
            (EGRESS_FIXED_BITS + bits, key)
        })
        .collect();
    let sockets = baseline
        .sockets
        .iter()
        .map(|k| SocketKey {
            phase: phase as u16,
            family: k.family,
            sock_type: k.sock_type,
            protocol: k.protocol,
        })
        .collect();
    let name_key = |kind, protocol, port: Option<u16>, name: &str| NameKey {
        phase,
        kind,
        protocol,
        _pad: 0,
        port: port.unwrap_or(0).to_be_bytes(),
        _pad2: [0; 2],
        hash: name_hash(name.as_bytes()),
    };
    let egress_names = baseline
        .egress_names
        .iter()
        .map(|r| name_key(NAME_EGRESS, r.protocol.number(), r.port, &r.name));
    let queries = baseline.dns.iter().flatten().map(|name| name_key(NAME_QUERY, 0, None, name));
    let mut flags = if fail_closed { FAIL_CLOSED } else { 0 };
    if baseline.dns.is_none() {
        flags |= QUERIES_UNJUDGED;
    }
    KernelPolicy {
        mode: mode_id(mode),
        flags,
        allowed_syscalls,
        allowed_uring,
        paths: execs.chain(unix).collect(),
        egress,
        sockets,
        names: egress_names.chain(queries).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        baseline::{Observation, learn},
        identity::Phase,
    };

    #[test]
    fn a_baseline_becomes_bitmaps_hashes_and_prefixes() {
        let mut b = Baseline::empty(Phase::LimitedWrite);
        for o in [
            Observation::Syscall("getppid".into()),
            Observation::Syscall("ia32:getpid".into()),
            Observation::Exec { path: "/usr/bin/ls".into(), literal: false },
            Observation::Unix { path: "/run/nscd/socket".into(), literal: false },
            Observation::Socket("inet raw icmp".parse().unwrap()),
            Observation::Uring("read".into()),
        ] {
            learn(&mut b, &o);
        }
        b.egress.insert("tcp 10.0.0.0/8 port 443".parse().unwrap());
        b.egress.insert("udp ::1/128 port any".parse().unwrap());
        // Before any query is learned, queries are not judged in the kernel.
        assert_eq!(kernel_policy(2, Mode::Enforce, &b, true).flags, FAIL_CLOSED | QUERIES_UNJUDGED);
        b.egress_names.insert("tcp *.s3.amazonaws.com port 443".parse().unwrap());
        b.dns = Some(["api.example.com".to_owned()].into());
        let p = kernel_policy(2, Mode::Enforce, &b, true);
        assert_eq!((p.mode, p.flags), (MODE_ENFORCE, FAIL_CLOSED));
        let key = |kind, protocol, port: u16, name: &[u8]| NameKey {
            phase: 2,
            kind,
            protocol,
            _pad: 0,
            port: port.to_be_bytes(),
            _pad2: [0; 2],
            hash: name_hash(name),
        };
        assert_eq!(
            p.names,
            [
                key(NAME_EGRESS, 6, 443, b"*.s3.amazonaws.com"),
                key(NAME_QUERY, 0, 0, b"api.example.com")
            ]
            .into(),
            "the wildcard is hashed as the kernel hashes a name's wildcard form"
        );
        assert_eq!(
            p.names.first().unwrap().hash,
            agent_common::dns::wildcard_hash(b"x1.s3.amazonaws.com")
        );
        assert_eq!(p.allowed_syscalls[1], 1 << (110 - 64), "getppid is 110");
        let ia32_getpid = syscalls::id("ia32:getpid").unwrap();
        assert_ne!(p.allowed_syscalls[(ia32_getpid / 64) as usize] & (1 << (ia32_getpid % 64)), 0);
        assert_eq!(p.allowed_syscalls.iter().map(|w| w.count_ones()).sum::<u32>(), 2);
        assert_eq!(p.allowed_uring, 1 << 22);
        assert!(p.paths.contains(&(PATH_EXEC, fnv1a(b"/usr/bin/ls"))));
        assert!(p.paths.contains(&(PATH_UNIX, fnv1a(b"/run/nscd/socket"))));
        assert_eq!(p.sockets.len(), 1);
        let v4 = p.egress.iter().find(|(_, k)| k.protocol == 6).unwrap();
        assert_eq!(v4.0, 32 + 96 + 8);
        assert_eq!(v4.1.addr, ipv4_mapped([10, 0, 0, 0]));
        assert_eq!(v4.1.port, 443u16.to_be_bytes());
        assert_eq!(v4.1.phase, 2);
        let v6 = p.egress.iter().find(|(_, k)| k.protocol == 17).unwrap();
        assert_eq!((v6.0, v6.1.port), (32 + 128, [0, 0]));
        assert_eq!(kernel_policy(2, Mode::Enforce, &b, false).flags, 0);
        let flag = kernel_policy(2, Mode::Flag, &b, true);
        assert_eq!(flag.mode, MODE_FLAG);
        assert!(
            flag.paths.is_empty()
                && flag.egress.is_empty()
                && flag.sockets.is_empty()
                && flag.names.is_empty(),
            "a phase that does not enforce takes no room in the shared maps"
        );
    }

    #[test]
    fn incomplete_bits_name_their_sets() {
        use agent_common::policy::{
            INCOMPLETE_EGRESS, INCOMPLETE_EXECS, INCOMPLETE_SOCKETS, INCOMPLETE_UNIX,
        };
        assert!(incomplete_sets(0).is_empty());
        assert_eq!(
            incomplete_sets(INCOMPLETE_EXECS | INCOMPLETE_EGRESS | FAIL_CLOSED),
            [Set::Execs, Set::Egress]
        );
        assert_eq!(
            incomplete_sets(INCOMPLETE_UNIX | INCOMPLETE_SOCKETS),
            [Set::Unix, Set::Sockets]
        );
    }

    #[test]
    fn patterns_are_matched_by_their_generalised_hash_and_32_bit_opens_never_allowed() {
        let mut b = Baseline::empty(Phase::Shadow);
        learn(&mut b, &Observation::Exec { path: "/tmp/tmp.Ab12cd/tool".into(), literal: false });
        learn(&mut b, &Observation::Syscall("ia32:open".into()));
        let p = kernel_policy(0, Mode::Enforce, &b, true);
        assert_eq!(p.paths, BTreeSet::from([(PATH_EXEC, fnv1a(b"/tmp/<random>/tool"))]));
        assert!(p.allowed_syscalls.iter().all(|w| *w == 0), "ia32:open is never allowed");
    }
}
