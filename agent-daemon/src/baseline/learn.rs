//! Folding what an investigation did into its phase's baseline.
use chrono::{SubsecRound as _, Utc};

use super::{
    Baseline, EgressRule, NameRule, Observation, SocketKind,
    caps::{Caps, Set},
    check::{exec_entry, unix_entry},
    generalise,
    names::{self, generalise_name, name_matches},
};

/// What learning one observation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// Nothing new (known already, or never learned: envelopes, blindness...).
    Nothing,
    /// A set gained an entry.
    New,
    /// It would have been a new entry, but its set is at its cap: not learned.
    Refused(Set),
}

/// A new entry, not yet in its set.
enum Entry {
    Syscall(String),
    Exec(String),
    Unix(String),
    Socket(SocketKind),
    Uring(String),
    Egress(EgressRule),
    EgressName(NameRule),
    Dns(String),
    FileWrite(String),
    FileRead(String),
}

/// The entry `observation` would add to `baseline`, if it is new there.
fn novel(baseline: &Baseline, observation: &Observation) -> Option<Entry> {
    let new = |known: bool, entry: Entry| (!known).then_some(entry);
    match observation {
        Observation::Syscall(name) => {
            new(baseline.syscalls.contains(name), Entry::Syscall(name.clone()))
        }
        Observation::Exec { path, literal } => {
            let entry = exec_entry(path, *literal);
            new(baseline.execs.contains(&entry), Entry::Exec(entry))
        }
        Observation::Unix { path, literal } => {
            let entry = unix_entry(path, *literal);
            new(baseline.unix.contains(&entry), Entry::Unix(entry))
        }
        Observation::Socket(kind) => new(baseline.sockets.contains(kind), Entry::Socket(*kind)),
        Observation::Uring(name) => {
            new(baseline.io_uring.contains(name), Entry::Uring(name.clone()))
        }
        Observation::Egress(d) => {
            let rule = EgressRule::exact(d);
            let known =
                baseline.egress.iter().any(|r| r.allows(d)) || baseline.egress.contains(&rule);
            new(known, Entry::Egress(rule))
        }
        // Known by an address rule or a name rule; learned by name, or by address when the
        // name cannot be a name rule (one label, or not a DNS name).
        Observation::NamedEgress { name, destination: d } => {
            if baseline.egress.iter().any(|r| r.allows(d))
                || baseline.egress_names.iter().any(|r| r.allows(d.protocol, name, d.port))
            {
                return None;
            }
            match names::host_name(name) {
                Some(host) => {
                    let rule = NameRule::exact(d.protocol, &host, d.port);
                    new(baseline.egress_names.contains(&rule), Entry::EgressName(rule))
                }
                None => {
                    let rule = EgressRule::exact(d);
                    new(baseline.egress.contains(&rule), Entry::Egress(rule))
                }
            }
        }
        // A query that is no DNS name (or a pattern) is never learned: where queries are
        // judged, it is a deviation.
        Observation::DnsQuery(name) => {
            let dns = baseline.dns.as_ref();
            if dns.is_some_and(|d| d.iter().any(|p| name_matches(p, name))) {
                return None;
            }
            let entry = generalise_name(&names::query_name(name)?);
            new(dns.is_some_and(|d| d.contains(&entry)), Entry::Dns(entry))
        }
        Observation::FileWrite(path) if !path.is_empty() => {
            let prefix = generalise::prefix(path);
            let known = baseline.file_writes.iter().any(|p| generalise::under(path, p))
                || baseline.file_writes.contains(&prefix);
            new(known, Entry::FileWrite(prefix))
        }
        Observation::FileRead(path) if !path.is_empty() => {
            let prefix = generalise::prefix(path);
            let known = baseline.file_reads.iter().any(|p| generalise::under(path, p))
                || baseline.file_reads.contains(&prefix);
            new(known, Entry::FileRead(prefix))
        }
        // Unreadable paths, what paddock could not see, and requests to paddock are never
        // learned; envelopes are not set entries.
        Observation::FileWrite(_)
        | Observation::FileRead(_)
        | Observation::Blind(_)
        | Observation::Control(_)
        | Observation::Unwatched
        | Observation::Envelope(_) => None,
    }
}

/// Fold `observation` in. True when a set gained an entry (the baseline learned something
/// new); envelope maxima only grow, and do not count as new behaviour.
pub fn learn(baseline: &mut Baseline, observation: &Observation) -> bool {
    learn_within(baseline, observation, &Caps::unlimited()) == Learned::New
}

/// [`learn`], with each set held to its cap in `caps`: an entry that would take a set past
/// its cap is refused (the set is left as it is, whatever it already holds).
pub fn learn_within(baseline: &mut Baseline, observation: &Observation, caps: &Caps) -> Learned {
    if let Observation::Envelope(sample) = observation {
        let e = &mut baseline.envelope;
        e.max_processes = e.max_processes.max(sample.processes);
        e.max_syscalls_per_second = e.max_syscalls_per_second.max(sample.syscalls_per_second);
        e.max_egress_bytes = e.max_egress_bytes.max(sample.egress_bytes);
        return Learned::Nothing;
    }
    let (Some(entry), Some(set)) = (novel(baseline, observation), Set::of(observation)) else {
        return Learned::Nothing;
    };
    if set.len(baseline) >= caps.cap(set) {
        return Learned::Refused(set);
    }
    let b = baseline;
    let added = match entry {
        Entry::Syscall(e) => b.syscalls.insert(e),
        Entry::Exec(e) => b.execs.insert(e),
        Entry::Unix(e) => b.unix.insert(e),
        Entry::Socket(e) => b.sockets.insert(e),
        Entry::Uring(e) => b.io_uring.insert(e),
        Entry::Egress(e) => b.egress.insert(e),
        Entry::EgressName(e) => b.egress_names.insert(e),
        Entry::Dns(e) => b.dns.get_or_insert_default().insert(e),
        Entry::FileWrite(e) => b.file_writes.insert(e),
        Entry::FileRead(e) => b.file_reads.insert(e),
    };
    if !added {
        return Learned::Nothing;
    }
    // To the second, as the file keeps it.
    b.updated = Some(Utc::now().trunc_subsecs(0));
    Learned::New
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        baseline::{Destination, EnvelopeSample, Protocol},
        identity::Phase,
    };

    #[test]
    fn learns_exactly_what_was_done_generalised() {
        let mut b = Baseline::empty(Phase::ReadOnly);
        let seen = [
            Observation::Syscall("read".into()),
            Observation::Exec { path: "/usr/bin/ls".into(), literal: false },
            Observation::Exec { path: "/tmp/tmp.Ab12cd/tool".into(), literal: false },
            Observation::FileWrite("/tmp/tmp.Ab12cd/out.txt".into()),
            Observation::FileRead("/etc/hostname".into()),
            Observation::Egress(Destination {
                protocol: Protocol::Tcp,
                addr: "10.0.0.7".parse().unwrap(),
                port: 443,
            }),
        ];
        for o in &seen {
            assert!(learn(&mut b, o), "{o:?} is new");
            assert!(!learn(&mut b, o), "{o:?} again is not");
        }
        assert_eq!(b.syscalls.iter().collect::<Vec<_>>(), ["read"]);
        assert_eq!(b.execs.iter().collect::<Vec<_>>(), ["/tmp/<random>/tool", "/usr/bin/ls"]);
        assert_eq!(b.file_writes.iter().collect::<Vec<_>>(), ["/tmp/<random>/"]);
        assert_eq!(b.file_reads.iter().collect::<Vec<_>>(), ["/etc/"]);
        assert_eq!(
            b.egress.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            ["tcp 10.0.0.7/32 port 443"]
        );
        assert_eq!(b.size(), 6);
        assert!(b.updated.is_some());
    }

    #[test]
    fn another_run_of_the_same_shape_adds_nothing() {
        let mut b = Baseline::empty(Phase::Shadow);
        learn(&mut b, &Observation::FileWrite("/tmp/tmp.Ab12cd/out.txt".into()));
        learn(&mut b, &Observation::FileRead("/proc/77/status".into()));
        assert!(!learn(&mut b, &Observation::FileWrite("/tmp/tmp.Qq98zz/other.txt".into())));
        assert!(!learn(&mut b, &Observation::FileRead("/proc/4242/status".into())));
        assert!(learn(&mut b, &Observation::FileRead("/proc/4242/maps".into())));
    }

    #[test]
    fn envelopes_keep_maxima_without_counting_as_new() {
        let mut b = Baseline::empty(Phase::Shadow);
        let sample = |p, r, e| {
            Observation::Envelope(EnvelopeSample {
                processes: p,
                syscalls_per_second: r,
                egress_bytes: e,
            })
        };
        assert!(!learn(&mut b, &sample(3, 100, 10)));
        learn(&mut b, &sample(2, 500, 5));
        assert_eq!(
            (
                b.envelope.max_processes,
                b.envelope.max_syscalls_per_second,
                b.envelope.max_egress_bytes
            ),
            (3, 500, 10)
        );
        assert_eq!(b.updated, None);
    }

    #[test]
    fn unreadable_paths_are_not_learned() {
        let mut b = Baseline::empty(Phase::Shadow);
        assert!(!learn(&mut b, &Observation::FileRead(String::new())));
        assert_eq!(b.size(), 0);
    }

    #[test]
    fn a_set_at_its_cap_refuses_new_entries_and_keeps_what_it_has() {
        let mut b = Baseline::empty(Phase::ReadOnly);
        let caps = Caps { execs: 2, file_reads: 1, ..Caps::default() };
        let exec = |p: &str| Observation::Exec { path: p.into(), literal: false };
        assert_eq!(learn_within(&mut b, &exec("/bin/a"), &caps), Learned::New);
        assert_eq!(learn_within(&mut b, &exec("/bin/b"), &caps), Learned::New);
        assert_eq!(learn_within(&mut b, &exec("/bin/c"), &caps), Learned::Refused(Set::Execs));
        assert_eq!(learn_within(&mut b, &exec("/bin/a"), &caps), Learned::Nothing, "known");
        assert_eq!(b.execs.len(), 2);
        // Other sets learn on; what a full set already covers is not refused.
        assert_eq!(
            learn_within(&mut b, &Observation::FileRead("/etc/hosts".into()), &caps),
            Learned::New
        );
        assert_eq!(
            learn_within(&mut b, &Observation::FileRead("/etc/passwd".into()), &caps),
            Learned::Nothing,
            "under /etc/ already"
        );
        assert_eq!(
            learn_within(&mut b, &Observation::FileRead("/usr/x".into()), &caps),
            Learned::Refused(Set::FileReads)
        );
        // A set already over its cap (a file written under a higher one) is kept whole.
        let tight = Caps { execs: 1, ..Caps::default() };
        assert_eq!(learn_within(&mut b, &exec("/bin/d"), &tight), Learned::Refused(Set::Execs));
        assert_eq!(b.execs.len(), 2);
        assert_eq!(
            learn_within(&mut b, &Observation::Control("reset".into()), &tight),
            Learned::Nothing
        );
    }

    fn named(name: &str, addr: &str, port: u16) -> Observation {
        let addr = addr.parse().unwrap();
        let destination = Destination { protocol: Protocol::Tcp, addr, port };
        Observation::NamedEgress { name: name.into(), destination }
    }

    #[test]
    fn named_egress_is_learned_by_name_unless_a_rule_allows_it() {
        let mut b = Baseline::empty(Phase::ReadOnly);
        assert!(learn(&mut b, &named("x7f3a9c21.example.com", "203.0.113.9", 443)));
        assert!(!learn(&mut b, &named("a1b2c3d4e5.example.com", "198.51.100.1", 443)), "known");
        assert!(learn(&mut b, &named("api.example.com", "203.0.113.9", 8443)), "another port");
        let rules: Vec<String> = b.egress_names.iter().map(|r| r.to_string()).collect();
        assert_eq!(rules, ["tcp *.example.com port 443", "tcp api.example.com port 8443"]);
        assert!(b.egress.is_empty());
        // Allowed by an address rule already: nothing new.
        let d =
            Destination { protocol: Protocol::Tcp, addr: "10.0.0.7".parse().unwrap(), port: 443 };
        assert!(learn(&mut b, &Observation::Egress(d)));
        assert!(!learn(&mut b, &named("db.example.org", "10.0.0.7", 443)));
        // A name that cannot make a name rule is learned by its address.
        assert!(learn(&mut b, &named("myservice", "10.0.0.8", 80)));
        assert!(b.egress.iter().any(|r| r.to_string() == "tcp 10.0.0.8/32 port 80"));
        assert_eq!(b.egress_names.len(), 2);
        assert_eq!(b.dns, None, "connects teach no queries");
    }

    #[test]
    fn queries_are_learned_generalised_and_the_first_starts_the_dns_set() {
        let mut b = Baseline::empty(Phase::ReadOnly);
        let query = |name: &str| Observation::DnsQuery(name.into());
        assert!(learn(&mut b, &query("x7f3a9c21.example.com")));
        assert_eq!(b.dns, Some(["*.example.com".to_owned()].into()));
        assert!(!learn(&mut b, &query("0a1b2c3d4e.example.com")), "the same pattern");
        assert!(learn(&mut b, &query("myservice")));
        assert!(!learn(&mut b, &query("bad name.example.com")), "no DNS name: never learned");
        assert!(!learn(&mut b, &query("*.evil.example")), "a pattern: never learned");
        assert_eq!(b.dns.as_ref().map(|d| d.len()), Some(2));
        let mut none = Baseline::empty(Phase::ReadOnly);
        assert!(!learn(&mut none, &query("bad name.example.com")));
        assert_eq!(none.dns, None, "still not judged");
    }

    #[test]
    fn name_rules_share_the_egress_cap_and_names_have_their_own() {
        let mut b = Baseline::empty(Phase::ReadOnly);
        let caps = Caps { egress: 2, dns: 1, ..Caps::default() };
        let d =
            Destination { protocol: Protocol::Udp, addr: "10.0.0.53".parse().unwrap(), port: 53 };
        assert_eq!(learn_within(&mut b, &Observation::Egress(d), &caps), Learned::New);
        let api = named("api.example.com", "203.0.113.9", 443);
        assert_eq!(learn_within(&mut b, &api, &caps), Learned::New);
        let other = named("other.example.com", "203.0.113.10", 443);
        assert_eq!(learn_within(&mut b, &other, &caps), Learned::Refused(Set::Egress));
        let query = |name: &str| Observation::DnsQuery(name.into());
        assert_eq!(learn_within(&mut b, &query("a.example.org"), &caps), Learned::New);
        assert_eq!(
            learn_within(&mut b, &query("b.example.org"), &caps),
            Learned::Refused(Set::Dns)
        );
        assert_eq!(learn_within(&mut b, &query("a.example.org"), &caps), Learned::Nothing);
    }
}
