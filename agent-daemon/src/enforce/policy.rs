//! A phase's baseline as the kernel enforces it (see `agent_common::policy`).
use std::collections::BTreeSet;

use agent_common::{
    hash::fnv1a,
    policy::{
        EGRESS_FIXED_BITS, EgressKey, IPV4_MAPPED_BITS, MODE_ENFORCE, MODE_FLAG, MODE_LEARN,
        ipv4_mapped,
    },
    tracking::MAX_SYSCALLS,
};
use ipnet::IpNet;

use crate::{
    baseline::{Baseline, Mode, generalise},
    syscalls,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelPolicy {
    pub mode: u32,
    pub allowed_syscalls: [u64; (MAX_SYSCALLS / 64) as usize],
    /// FNV-1a of each exact executable path allowed.
    pub exec_hashes: BTreeSet<u64>,
    /// Some allowed executables are patterns: an exec the kernel does not find is left to
    /// the daemon.
    pub exec_patterns: bool,
    /// (prefix length in bits, key) per egress rule.
    pub egress: Vec<(u32, EgressKey)>,
}

pub fn mode_id(mode: Mode) -> u32 {
    match mode {
        Mode::Learn => MODE_LEARN,
        Mode::Flag => MODE_FLAG,
        Mode::Enforce => MODE_ENFORCE,
    }
}

/// What the kernel needs of `baseline` for phase number `phase`, in `mode`.
pub fn kernel_policy(phase: u8, mode: Mode, baseline: &Baseline) -> KernelPolicy {
    let mut allowed_syscalls = [0u64; (MAX_SYSCALLS / 64) as usize];
    for nr in baseline.syscalls.iter().filter_map(|name| syscalls::number(name)) {
        if let Some(word) = allowed_syscalls.get_mut((nr / 64) as usize) {
            *word |= 1 << (nr % 64);
        }
    }
    let exact = |path: &&String| {
        generalise::unknown_placeholder(path).is_none()
            && !generalise::PLACEHOLDERS.iter().any(|p| path.contains(p))
    };
    let exec_hashes = baseline.execs.iter().filter(exact).map(|p| fnv1a(p.as_bytes())).collect();
    let exec_patterns = baseline.execs.iter().any(|p| !exact(&p));
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
    KernelPolicy { mode: mode_id(mode), allowed_syscalls, exec_hashes, exec_patterns, egress }
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
        for o in [Observation::Syscall("getppid".into()), Observation::Exec("/usr/bin/ls".into())] {
            learn(&mut b, &o);
        }
        b.egress.insert("tcp 10.0.0.0/8 port 443".parse().unwrap());
        b.egress.insert("udp ::1/128 port any".parse().unwrap());
        let p = kernel_policy(2, Mode::Enforce, &b);
        assert_eq!(p.mode, MODE_ENFORCE);
        assert_eq!(p.allowed_syscalls[1], 1 << (110 - 64), "getppid is 110");
        assert_eq!(p.allowed_syscalls.iter().map(|w| w.count_ones()).sum::<u32>(), 1);
        assert_eq!(p.exec_hashes, BTreeSet::from([fnv1a(b"/usr/bin/ls")]));
        assert!(!p.exec_patterns);
        let v4 = p.egress.iter().find(|(_, k)| k.protocol == 6).unwrap();
        assert_eq!(v4.0, 32 + 96 + 8);
        assert_eq!(v4.1.addr, ipv4_mapped([10, 0, 0, 0]));
        assert_eq!(v4.1.port, 443u16.to_be_bytes());
        assert_eq!(v4.1.phase, 2);
        let v6 = p.egress.iter().find(|(_, k)| k.protocol == 17).unwrap();
        assert_eq!((v6.0, v6.1.port), (32 + 128, [0, 0]));
    }

    #[test]
    fn patterns_are_left_to_the_daemon() {
        let mut b = Baseline::empty(Phase::Shadow);
        learn(&mut b, &Observation::Exec("/tmp/tmp.Ab12cd/tool".into()));
        let p = kernel_policy(0, Mode::Enforce, &b);
        assert!(p.exec_hashes.is_empty());
        assert!(p.exec_patterns);
    }
}
