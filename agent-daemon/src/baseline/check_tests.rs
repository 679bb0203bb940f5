//! Tests of `check`.
use super::*;
use crate::{
    baseline::{Destination, EnvelopeSample, Protocol, learn},
    identity::Phase,
};

fn learned() -> Baseline {
    let mut b = Baseline::empty(Phase::ReadOnly);
    b.revision = 3;
    for o in [
        Observation::Syscall("read".into()),
        Observation::Exec { path: "/usr/bin/ls".into(), literal: false },
        Observation::FileWrite("/tmp/tmp.Ab12cd/out.txt".into()),
        Observation::FileRead("/etc/hostname".into()),
        Observation::Egress(Destination {
            protocol: Protocol::Tcp,
            addr: "10.0.0.7".parse().unwrap(),
            port: 443,
        }),
        Observation::Envelope(EnvelopeSample {
            processes: 4,
            syscalls_per_second: 1000,
            egress_bytes: 100,
        }),
    ] {
        learn(&mut b, &o);
    }
    b
}

#[test]
fn what_was_learned_passes() {
    let b = learned();
    for o in [
        Observation::Syscall("read".into()),
        Observation::Exec { path: "/usr/bin/ls".into(), literal: false },
        Observation::FileWrite("/tmp/tmp.Zz99yy/other.txt".into()),
        Observation::FileRead("/etc/passwd".into()),
        Observation::Egress(Destination {
            protocol: Protocol::Tcp,
            addr: "10.0.0.7".parse().unwrap(),
            port: 443,
        }),
        Observation::Envelope(EnvelopeSample {
            processes: 8,
            syscalls_per_second: 2000,
            egress_bytes: 200,
        }),
    ] {
        assert_eq!(check(&b, &o), None, "{o:?}");
    }
}

#[test]
fn each_kind_of_deviation_names_what_and_why() {
    let b = learned();
    let cases = [
        (
            Observation::Syscall("ptrace".into()),
            DeviationKind::Syscall,
            "ptrace",
            "syscall ptrace: not among the 1 syscalls the read-only baseline (revision 3) allows: read",
        ),
        (
            Observation::Exec { path: "/usr/bin/curl".into(), literal: false },
            DeviationKind::Exec,
            "/usr/bin/curl",
            "exec of /usr/bin/curl",
        ),
        (
            Observation::FileWrite("/etc/passwd".into()),
            DeviationKind::FileWrite,
            "/etc/passwd",
            "write to /etc/passwd: not among the 1 write prefixes",
        ),
        (
            Observation::FileRead("/root/.ssh/id_rsa".into()),
            DeviationKind::FileRead,
            "/root/.ssh/id_rsa",
            "read prefixes the read-only baseline (revision 3) allows: /etc/",
        ),
        (
            Observation::Egress(Destination {
                protocol: Protocol::Tcp,
                addr: "10.0.0.7".parse().unwrap(),
                port: 22,
            }),
            DeviationKind::Egress,
            "tcp 10.0.0.7 port 22",
            "allows: tcp 10.0.0.7/32 port 443",
        ),
        (
            Observation::Envelope(EnvelopeSample {
                processes: 9,
                syscalls_per_second: 0,
                egress_bytes: 0,
            }),
            DeviationKind::Envelope,
            "processes at once",
            "9 processes at once: above the read-only baseline's envelope (revision 3) of 4 x 2 = 8",
        ),
    ];
    for (observation, kind, subject, reason) in cases {
        let d = check(&b, &observation).unwrap_or_else(|| panic!("{observation:?} passed"));
        assert_eq!(d.kind, kind);
        assert_eq!(d.subject, subject);
        assert!(d.reason.contains(reason), "{}", d.reason);
    }
}

#[test]
fn a_climb_out_of_a_learned_prefix_is_judged_where_it_lands() {
    let b = learned();
    let climb = Observation::FileWrite("/tmp/tmp.Ab12cd/../../etc/passwd".into());
    let d = check(&b, &climb).expect("outside /tmp/<random>/");
    assert_eq!(d.kind, DeviationKind::FileWrite);
}

#[test]
fn unreadable_paths_and_blindness_are_always_deviations() {
    let mut b = learned();
    b.file_reads.insert("/".into());
    for o in [
        Observation::FileRead(String::new()),
        Observation::Blind(Blind::LostRecords { lost: 1, throttled: 0 }),
        Observation::Blind(Blind::Untracked(1)),
        Observation::Blind(Blind::Escape { pid: 7 }),
        Observation::Blind(Blind::UnreadablePath { what: "open".into() }),
        Observation::Syscall("ia32:open".into()),
    ] {
        assert!(check(&b, &o).is_some(), "{o:?} passed");
    }
    b.syscalls.insert("ia32:open".into());
    assert!(check(&b, &Observation::Syscall("ia32:open".into())).is_some(), "even learned");
    b.syscalls.insert("ia32:getpid".into());
    assert_eq!(check(&b, &Observation::Syscall("ia32:getpid".into())), None);
}

#[test]
fn executables_through_a_descriptor_are_matched_literally() {
    let mut b = learned();
    learn(&mut b, &Observation::Exec { path: "/tmp/tmp.Ab12cd/tool".into(), literal: false });
    learn(&mut b, &Observation::Exec { path: "/memfd:jit (deleted)".into(), literal: true });
    let ok = |path: &str, literal| {
        check(&b, &Observation::Exec { path: path.into(), literal }).is_none()
    };
    assert!(ok("/tmp/tmp.Zz99yy/tool", false), "the pattern a run learned");
    assert!(!ok("/tmp/tmp.Zz99yy/evil", false), "not the learned file name");
    assert!(!ok("/tmp/payload1", false));
    assert!(ok("/memfd:jit (deleted)", true));
    assert!(!ok("/memfd:other (deleted)", true));
}

#[test]
fn an_empty_baseline_allows_nothing() {
    let b = Baseline::empty(Phase::Shadow);
    let d = check(&b, &Observation::Exec { path: "/bin/true".into(), literal: false }).unwrap();
    assert!(d.reason.ends_with("allows: nothing"), "{}", d.reason);
}

fn named(name: &str, addr: &str, port: u16) -> Observation {
    let destination = Destination { protocol: Protocol::Tcp, addr: addr.parse().unwrap(), port };
    Observation::NamedEgress { name: name.into(), destination }
}

#[test]
fn named_egress_passes_by_address_or_name_and_a_deviation_names_the_name() {
    let mut b = learned();
    b.egress_names.insert("tcp *.example.com port 443".parse().unwrap());
    assert_eq!(check(&b, &named("api.example.com", "203.0.113.9", 443)), None);
    assert_eq!(check(&b, &named("db.elsewhere.test", "10.0.0.7", 443)), None, "by address");
    let d = check(&b, &named("api.evil.example", "203.0.113.9", 443)).unwrap();
    assert_eq!(d.kind, DeviationKind::Egress);
    assert_eq!(d.subject, "tcp api.evil.example port 443 (203.0.113.9)");
    assert_eq!(
        d.reason,
        "egress to tcp api.evil.example port 443 (203.0.113.9): no rule matches among the 2 \
         egress rules the read-only baseline (revision 3) allows: tcp 10.0.0.7/32 port 443, \
         tcp *.example.com port 443"
    );
    for o in [
        named("a.b.example.com", "203.0.113.9", 443),
        named("example.com", "203.0.113.9", 443),
        named("api.example.com", "203.0.113.9", 80),
    ] {
        assert_eq!(check(&b, &o).map(|d| d.kind), Some(DeviationKind::Egress), "{o:?}");
    }
    // An unnamed connect is judged by address rules only.
    let unnamed = Observation::Egress(Destination {
        protocol: Protocol::Tcp,
        addr: "203.0.113.9".parse().unwrap(),
        port: 443,
    });
    let d = check(&b, &unnamed).unwrap();
    assert!(d.reason.contains("among the 2 egress rules"), "{}", d.reason);
}

#[test]
fn queries_are_judged_once_the_baseline_has_a_dns_set() {
    let mut b = learned();
    assert_eq!(b.dns, None);
    let query = |name: &str| Observation::DnsQuery(name.into());
    assert_eq!(check(&b, &query("anything.example")), None, "a baseline from before DNS");
    b.dns = Some(BTreeSet::new());
    let d = check(&b, &query("api.example.com")).unwrap();
    assert_eq!(
        (d.kind, d.kind.as_str(), d.subject.as_str()),
        (DeviationKind::Dns, "dns", "api.example.com")
    );
    assert_eq!(
        d.reason,
        "DNS query for api.example.com: not among the 0 names the read-only baseline (revision \
         3) allows: nothing"
    );
    learn(&mut b, &query("x7f3a9c21.example.com"));
    assert_eq!(check(&b, &query("a1b2c3d4e5.example.com")), None);
    assert_eq!(check(&b, &query("api.example.com")), None, "one label, any");
    for name in ["example.com", "a.b.example.com", "x7f3a9c21.example.org"] {
        assert_eq!(check(&b, &query(name)).map(|d| d.kind), Some(DeviationKind::Dns), "{name}");
    }
}
