//! What differs between two baselines of a phase, for an operator's review.
use std::{collections::BTreeSet, fmt::Display};

use super::Baseline;

fn sets<T: Ord + Display>(
    section: &str,
    old: &BTreeSet<T>,
    new: &BTreeSet<T>,
    out: &mut Vec<String>,
) {
    out.extend(old.difference(new).map(|e| format!("- {section} {e}")));
    out.extend(new.difference(old).map(|e| format!("+ {section} {e}")));
}

/// Lines `- section entry` (only in `old`), `+ section entry` (only in `new`),
/// `~ dns unjudged -> judged` (or back) when one has a `dns` set and the other none, and
/// `~ envelope.field old -> new`; empty when the contents are the same.
pub fn diff(old: &Baseline, new: &Baseline) -> Vec<String> {
    let mut out = Vec::new();
    let judged = |b: &Baseline| if b.dns.is_some() { "judged" } else { "unjudged" };
    sets("syscall", &old.syscalls, &new.syscalls, &mut out);
    sets("exec", &old.execs, &new.execs, &mut out);
    sets("egress", &old.egress, &new.egress, &mut out);
    sets("egress", &old.egress_names, &new.egress_names, &mut out);
    sets("file_write", &old.file_writes, &new.file_writes, &mut out);
    sets("file_read", &old.file_reads, &new.file_reads, &mut out);
    sets("unix", &old.unix, &new.unix, &mut out);
    sets("socket", &old.sockets, &new.sockets, &mut out);
    sets("io_uring", &old.io_uring, &new.io_uring, &mut out);
    if old.dns.is_some() != new.dns.is_some() {
        out.push(format!("~ dns {} -> {}", judged(old), judged(new)));
    }
    let none = BTreeSet::new();
    sets("dns", old.dns.as_ref().unwrap_or(&none), new.dns.as_ref().unwrap_or(&none), &mut out);
    let (a, b) = (&old.envelope, &new.envelope);
    for (field, x, y) in [
        ("max_processes", a.max_processes as f64, b.max_processes as f64),
        (
            "max_syscalls_per_second",
            a.max_syscalls_per_second as f64,
            b.max_syscalls_per_second as f64,
        ),
        ("max_egress_bytes", a.max_egress_bytes as f64, b.max_egress_bytes as f64),
        ("tolerance", a.tolerance, b.tolerance),
    ] {
        if x != y {
            out.push(format!("~ envelope.{field} {x} -> {y}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        baseline::{Observation, learn},
        identity::Phase,
    };

    #[test]
    fn shows_removed_added_and_changed() {
        let mut old = Baseline::empty(Phase::Shadow);
        learn(&mut old, &Observation::Exec { path: "/bin/ls".into(), literal: false });
        learn(&mut old, &Observation::Syscall("read".into()));
        let mut new = old.clone();
        new.execs.remove("/bin/ls");
        learn(&mut new, &Observation::Exec { path: "/bin/cat".into(), literal: false });
        new.envelope.max_processes = 5;
        assert_eq!(
            diff(&old, &new),
            ["- exec /bin/ls", "+ exec /bin/cat", "~ envelope.max_processes 0 -> 5"]
        );
        assert!(diff(&old, &old).is_empty());
    }

    #[test]
    fn shows_name_rules_and_names_and_when_queries_start_being_judged() {
        let old = Baseline::empty(Phase::Shadow);
        let mut new = old.clone();
        new.egress_names.insert("tcp *.example.com port 443".parse().unwrap());
        learn(&mut new, &Observation::DnsQuery("api.example.com".into()));
        assert_eq!(
            diff(&old, &new),
            [
                "+ egress tcp *.example.com port 443",
                "~ dns unjudged -> judged",
                "+ dns api.example.com"
            ]
        );
        let mut emptied = new.clone();
        emptied.dns = Some(BTreeSet::new());
        assert_eq!(diff(&new, &emptied), ["- dns api.example.com"]);
        emptied.dns = None;
        assert_eq!(diff(&new, &emptied), ["~ dns judged -> unjudged", "- dns api.example.com"]);
    }
}
