//! Tests of `file`.
use super::*;
use crate::baseline::{Destination, EnvelopeSample, Observation, Protocol, learn};

fn sample() -> Baseline {
    let mut b = Baseline::empty(Phase::LimitedWrite);
    b.revision = 4;
    b.learned_from = 2;
    for o in [
        Observation::Syscall("openat".into()),
        Observation::Exec { path: "/usr/bin/python3".into(), literal: false },
        Observation::Unix { path: "/run/nscd/socket".into(), literal: false },
        Observation::Socket("inet raw icmp".parse().unwrap()),
        Observation::Uring("read".into()),
        Observation::FileWrite("/tmp/tmp.Ab12cd/out.txt".into()),
        Observation::FileRead("/etc/ssl/certs/ca.pem".into()),
        Observation::Egress(Destination {
            protocol: Protocol::Udp,
            addr: "10.96.0.10".parse().unwrap(),
            port: 53,
        }),
        Observation::Envelope(EnvelopeSample {
            processes: 3,
            syscalls_per_second: 900,
            egress_bytes: 512,
        }),
    ] {
        learn(&mut b, &o);
    }
    b.updated = Some(DateTime::parse_from_rfc3339("2026-11-26T15:00:00Z").unwrap().to_utc());
    b
}

#[test]
fn render_and_parse_round_trip() {
    let b = sample();
    let text = render(&b);
    assert!(text.contains("execs = [\n  \"/usr/bin/python3\",\n]"), "{text}");
    assert!(text.contains("\"udp 10.96.0.10/32 port 53\""), "{text}");
    assert_eq!(parse(&text, "x").unwrap(), b);
}

fn error(text: &str) -> String {
    parse(text, "/var/lib/paddock/baselines/limited-write.toml").unwrap_err().to_string()
}

#[test]
fn a_format_1_file_is_read_with_the_new_sets_empty() {
    let mut b = sample();
    let text = render(&b)
        .replace("format = 2", "format = 1")
        .replace("unix = [\n  \"/run/nscd/socket\",\n]\n", "")
        .replace("sockets = [\n  \"inet raw icmp\",\n]\n", "")
        .replace("io_uring = [\n  \"read\",\n]\n", "");
    b.unix.clear();
    b.sockets.clear();
    b.io_uring.clear();
    assert_eq!(parse(&text, "old").unwrap(), b);
}

#[test]
fn a_truncated_file_is_refused() {
    let text = render(&sample());
    for cut in [text.len() / 3, text.len() / 2, text.len() - 30] {
        let err = error(&text[..cut]);
        assert!(
            err.starts_with("baseline file /var/lib/paddock/baselines/limited-write.toml: "),
            "{err}"
        );
    }
    assert!(error(&text[..text.find("[envelope]").unwrap()]).contains("missing field `envelope`"));
}

#[test]
fn hand_edits_gone_wrong_name_the_field() {
    let text = render(&sample());
    let cases = [
        (text.replace("\"openat\"", "\"opneat\""), "syscalls[0] = \"opneat\": not a syscall name"),
        (
            text.replace("port 53", "port 5353x"),
            "egress[0] = \"udp 10.96.0.10/32 port 5353x\": the port",
        ),
        (
            text.replace("/tmp/<random>/", "/tmp/<rnd>/"),
            "file_writes[0] = \"/tmp/<rnd>/\": unknown placeholder <rnd>",
        ),
        (
            text.replace("tolerance = 2.0", "tolerance = 0.5"),
            "envelope.tolerance = \"0.5\": must be a number of at least 1",
        ),
        (
            text.replace("format = 2", "format = 9"),
            "format = \"9\": this paddock reads formats 1 and 2",
        ),
        (
            text.replace("\"inet raw icmp\"", "\"inet stream tcp\""),
            "sockets[0] = \"inet stream tcp\": TCP, UDP and unix sockets",
        ),
        (text.replace("\"read\",", "\"reed\","), "io_uring[0] = \"reed\": not an io_uring"),
        (
            text.replace("\"/run/nscd/socket\"", "\"/run/<sock>\""),
            "unix[0] = \"/run/<sock>\": unknown placeholder",
        ),
        (
            text.replace("unix = [\n  \"/run/nscd/socket\",\n]\n", ""),
            "missing field `unix` (required from format 2)",
        ),
        (
            text.replace("phase = \"limited-write\"", "phase = \"root\""),
            "phase = \"root\": unknown trust phase",
        ),
        (text.replace("max_processes = 3", "max_processes = -3"), "max_processes"),
        (text.replace("revision = 4", "revision = 4\nowner = \"me\""), "unknown field `owner`"),
    ];
    for (edited, expected) in cases {
        let err = error(&edited);
        assert!(err.contains(expected), "expected {expected:?} in {err}");
    }
}

/// `sample()` as the paddock before name rules and DNS learning wrote it.
const OLD_FILE: &str = r#"# paddock baseline: what Jobs of the limited-write trust phase normally do.
# Review it, diff it, edit it; `paddock baseline import limited-write FILE` checks a file
# before it takes effect. Placeholders: <n> <uuid> <hex> <random>.
format = 2
phase = "limited-write"
revision = 4
learned_from = 2
updated = "2026-11-26T15:00:00Z"

syscalls = [
  "openat",
]
execs = [
  "/usr/bin/python3",
]
# PROTOCOL NETWORK port PORT|any
egress = [
  "udp 10.96.0.10/32 port 53",
]
# prefixes: a trailing / covers everything below
file_writes = [
  "/tmp/<random>/",
]
file_reads = [
  "/etc/ssl/certs/",
]
# unix socket paths (generalised like files; @name for abstract ones)
unix = [
  "/run/nscd/socket",
]
# FAMILY TYPE PROTOCOL of sockets other than TCP, UDP and unix
sockets = [
  "inet raw icmp",
]
io_uring = [
  "read",
]

# largest seen while learning; a deviation above max x tolerance
[envelope]
max_processes = 3
max_syscalls_per_second = 900
max_egress_bytes = 512
tolerance = 2.0
"#;

#[test]
fn a_file_without_names_or_dns_is_written_as_before_byte_for_byte() {
    let b = parse(OLD_FILE, "old").unwrap();
    assert_eq!(b, sample());
    assert_eq!(b.dns, None, "queries not judged");
    assert_eq!(render(&b), OLD_FILE);
}

fn with_names() -> Baseline {
    let mut b = sample();
    let destination =
        |port| Destination { protocol: Protocol::Tcp, addr: "203.0.113.9".parse().unwrap(), port };
    for o in [
        Observation::NamedEgress {
            name: "x7f3a9c21.example.com".into(),
            destination: destination(443),
        },
        Observation::NamedEgress { name: "api.example.com".into(), destination: destination(8443) },
        Observation::DnsQuery("x7f3a9c21.example.com".into()),
        Observation::DnsQuery("myservice".into()),
    ] {
        assert!(learn(&mut b, &o), "{o:?}");
    }
    b
}

#[test]
fn name_rules_follow_address_rules_and_dns_is_written_once_learned() {
    let b = with_names();
    let text = render(&b);
    assert!(
        text.contains(
            "egress = [\n  \"udp 10.96.0.10/32 port 53\",\n  \"tcp *.example.com port 443\",\n  \
             \"tcp api.example.com port 8443\",\n]"
        ),
        "{text}"
    );
    assert!(text.contains("then PROTOCOL NAME port PORT|any"), "{text}");
    assert!(text.contains("dns = [\n  \"*.example.com\",\n  \"myservice\",\n]"), "{text}");
    assert_eq!(parse(&text, "x").unwrap(), b);
    // An empty set is kept as one: no query allowed.
    let none = Baseline { dns: Some(BTreeSet::new()), ..sample() };
    let text = render(&none);
    assert!(text.contains("\ndns = []\n"), "{text}");
    assert_eq!(parse(&text, "x").unwrap().dns, Some(BTreeSet::new()));
    // Entries are read in any order and case, and kept canonical.
    let text =
        OLD_FILE.replace("egress = [\n", "egress = [\n  \"tcp API.Example.com. port 443\",\n");
    let text =
        text.replace("\n[envelope]", "\ndns = [\"B.example.com\", \"a.example.com.\"]\n[envelope]");
    let read = parse(&text, "x").unwrap();
    assert_eq!(read.egress.len() + read.egress_names.len(), 2);
    assert_eq!(
        read.egress_names.iter().next().unwrap().to_string(),
        "tcp api.example.com port 443"
    );
    let dns: Vec<&str> = read.dns.iter().flatten().map(String::as_str).collect();
    assert_eq!(dns, ["a.example.com", "b.example.com"]);
}

#[test]
fn bad_names_are_refused_by_field_and_index() {
    let text = render(&with_names());
    for (edited, expected) in [
        (
            text.replace("\"tcp api.example.com port 8443\"", "\"tcp -api.example.com port 8443\""),
            "egress[2] = \"tcp -api.example.com port 8443\": a label of the name starts or ends \
             with -; an egress entry is PROTOCOL NETWORK port PORT|any (\"tcp 10.0.0.0/8 port \
             443\") or PROTOCOL NAME port PORT|any",
        ),
        (
            text.replace("\"tcp api.example.com port 8443\"", "\"tcp 10.0.0.1 port 8443\""),
            "egress[2] = \"tcp 10.0.0.1 port 8443\": the network is not a CIDR",
        ),
        (
            text.replace("\"tcp api.example.com port 8443\"", "\"tcp localhost port 8443\""),
            "egress[2] = \"tcp localhost port 8443\": the name has a single label",
        ),
        (
            text.replace("\"myservice\"", "\"my..service\""),
            "dns[1] = \"my..service\": the name has an empty label",
        ),
        (
            text.replace("\"myservice\"", "\"10.0.0.1\""),
            "dns[1] = \"10.0.0.1\": the name is an IP address",
        ),
        (
            text.replace("\"myservice\"", "\"a.*.b\""),
            "dns[1] = \"a.*.b\": * may only stand for the first label",
        ),
    ] {
        let err = error(&edited);
        assert!(err.contains(expected), "expected {expected:?} in {err}");
    }
}
