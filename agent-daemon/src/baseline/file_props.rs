//! Property tests of the baseline file (`file::parse`, `file::render`): what paddock writes
//! it reads back as it was, no text (hand-edited, cut short, garbage) makes it panic, and
//! every refusal names the file, and for a bad entry the field and index.
//!
//! Cases: `PROPTEST_CASES` (256 by default; `cargo xtask test` runs more).
use std::net::Ipv4Addr;

use agent_common::tracking::{COUNT_OUT_OF_TABLE, IA32_BASE, IA32_COUNT, ID_OUT_OF_TABLE, ID_X32};
use chrono::DateTime;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;

use super::{
    Baseline, EgressRule, Envelope, NameRule, Protocol, SocketKind,
    file::{FileError, parse, render},
    generalise::PLACEHOLDERS,
    names, uring,
};
use crate::{identity::Phase, syscalls, text_edits};

const SOURCE: &str = "/var/lib/paddock/baselines/props.toml";

fn syscall_name() -> impl Strategy<Value = String> {
    prop_oneof![
        0..COUNT_OUT_OF_TABLE,
        IA32_BASE..IA32_BASE + IA32_COUNT,
        Just(ID_X32),
        Just(ID_OUT_OF_TABLE),
    ]
    .prop_map(|id| syscalls::name(id).into_owned())
}

/// A path entry as learning makes them (placeholders, trailing `/` for prefixes, `@name`),
/// or any text a file may hold there (no NUL, no unknown `<...>`).
fn path_entry() -> impl Strategy<Value = String> {
    let component = prop_oneof![
        prop::sample::select(PLACEHOLDERS.to_vec()).prop_map(str::to_owned),
        "[A-Za-z0-9._ -]{1,12}",
        "\\PC{1,6}".prop_map(|s| s.replace('<', "")),
    ];
    let built = (
        prop::sample::select(vec!["/", "", "@", "/tmp/"]),
        prop::collection::vec(component, 1..6),
        any::<bool>(),
    )
        .prop_map(|(root, parts, dir)| {
            let entry = root.to_owned() + &parts.join("/") + if dir { "/" } else { "" };
            if entry.is_empty() { "x".to_owned() } else { entry }
        });
    let text = any::<String>().prop_map(|s| {
        let s = s.replace(['\0', '<'], "");
        if s.is_empty() { "x".to_owned() } else { s }
    });
    prop_oneof![built, text]
}

fn egress_rule() -> impl Strategy<Value = EgressRule> {
    let protocol = prop_oneof![
        Just("tcp".to_owned()),
        Just("udp".to_owned()),
        any::<u8>().prop_map(|n| format!("ip-proto-{n}")),
    ];
    let network = prop_oneof![
        (any::<[u8; 4]>(), 0u8..=32)
            .prop_map(|(a, len)| Ipv4Net::new(a.into(), len).map(|n| IpNet::V4(n.trunc()))),
        (any::<[u8; 16]>(), 0u8..=128)
            .prop_map(|(a, len)| Ipv6Net::new(a.into(), len).map(|n| IpNet::V6(n.trunc()))),
        // IPv4-mapped: read back as the IPv4 network.
        (any::<[u8; 4]>(), 96u8..=128).prop_map(|(a, len)| {
            Ipv6Net::new(Ipv4Addr::from(a).to_ipv6_mapped(), len).map(|n| IpNet::V6(n.trunc()))
        }),
    ]
    .prop_map(|n| n.expect("prefix lengths are in range"));
    let port = prop::option::of(any::<u16>())
        .prop_map(|p| p.map_or_else(|| "any".to_owned(), |p| p.to_string()));
    (protocol, network, port).prop_map(|(protocol, network, port)| {
        format!("{protocol} {network} port {port}").parse().expect("a generated rule parses")
    })
}

/// A name (or `*.` pattern) of `min_labels` labels or more, as learning or an operator
/// writes them.
fn dns_name(min_labels: usize) -> impl Strategy<Value = String> {
    let label = "[a-z0-9_]([a-z0-9_-]{0,8}[a-z0-9_])?";
    (any::<bool>(), prop::collection::vec(label, min_labels.max(1) - 1..4), "[a-z]{2,6}").prop_map(
        |(wildcard, labels, tld)| {
            let name = labels.into_iter().chain([tld]).collect::<Vec<_>>().join(".");
            if wildcard { format!("*.{name}") } else { name }
        },
    )
}

fn name_rule() -> impl Strategy<Value = NameRule> {
    let protocol = prop_oneof![
        Just(Protocol::Tcp),
        Just(Protocol::Udp),
        any::<u8>().prop_map(Protocol::Other),
    ];
    (protocol, dns_name(2), prop::option::of(any::<u16>()))
        .prop_map(|(protocol, name, port)| NameRule { protocol, name, port })
}

fn socket_kinds() -> impl Strategy<Value = Vec<SocketKind>> {
    let family = prop_oneof![prop::sample::select(vec![1u16, 2, 10, 16, 17, 44]), any::<u16>()];
    let sock_type = prop_oneof![prop::sample::select(vec![1u16, 2, 3, 5, 10]), any::<u16>()];
    let protocol = prop_oneof![prop::sample::select(vec![0u16, 1, 6, 17, 58, 262]), any::<u16>()];
    prop::collection::vec((family, sock_type, protocol), 0..5).prop_map(|kinds| {
        kinds
            .into_iter()
            .map(|(family, sock_type, protocol)| SocketKind { family, sock_type, protocol })
            .filter(SocketKind::judged)
            .collect()
    })
}

fn envelope() -> impl Strategy<Value = Envelope> {
    let count = prop_oneof![0..1000u64, any::<u64>()];
    let tolerance = prop_oneof![Just(1.0), Just(2.0), 1.0..10.0f64, 1.0..f64::MAX];
    (count.clone(), count.clone(), count, tolerance).prop_map(|(p, s, e, tolerance)| Envelope {
        max_processes: p,
        max_syscalls_per_second: s,
        max_egress_bytes: e,
        tolerance,
    })
}

fn baseline() -> impl Strategy<Value = Baseline> {
    let set = |s| prop::collection::btree_set(s, 0..5);
    let head = (
        prop::sample::select(Phase::ALL.to_vec()),
        any::<u64>(),
        any::<u64>(),
        // RFC 3339 years 1970 to 9999, to the second as learning keeps them.
        prop::option::of(0..=253_402_300_799i64)
            .prop_map(|t| t.map(|t| DateTime::from_timestamp(t, 0).expect("in range"))),
    );
    let sets = (
        set(syscall_name().boxed()),
        set(path_entry().boxed()),
        set(path_entry().boxed()),
        set(path_entry().boxed()),
        set(path_entry().boxed()),
        socket_kinds(),
        set((0..=uring::OTHER + 3).prop_map(|op| uring::name(op).to_owned()).boxed()),
        prop::collection::btree_set(egress_rule(), 0..5),
        prop::collection::btree_set(name_rule(), 0..5),
        prop::option::of(set(dns_name(1).boxed())),
    );
    (head, sets, envelope()).prop_map(
        |(
            (phase, revision, learned_from, updated),
            (
                syscalls,
                execs,
                file_writes,
                file_reads,
                unix,
                sockets,
                io_uring,
                egress,
                egress_names,
                dns,
            ),
            envelope,
        )| Baseline {
            phase,
            revision,
            learned_from,
            updated,
            syscalls,
            execs,
            egress,
            egress_names,
            file_writes,
            file_reads,
            unix,
            sockets: sockets.into_iter().collect(),
            io_uring,
            dns,
            envelope,
        },
    )
}

fn names_the_file(err: &FileError) -> bool {
    err.to_string().starts_with(&format!("baseline file {SOURCE}: "))
}

/// A value each field refuses, by the field's name.
fn bad_entry() -> impl Strategy<Value = (&'static str, String)> {
    let word = "[a-z]{0,8}"
        .prop_filter("not a placeholder", |w| !PLACEHOLDERS.contains(&format!("<{w}>").as_str()));
    let path = prop_oneof![
        Just(String::new()),
        "\\PC{0,8}".prop_map(|s| format!("/a{s}\0{s}")),
        ("\\PC{0,8}", word).prop_map(|(s, w)| format!("/{s}<{w}>/x")),
    ];
    let path_field = prop::sample::select(vec!["execs", "file_writes", "file_reads", "unix"]);
    prop_oneof![
        prop_oneof![any::<String>(), "syscall_[0-9]{3,12}", "ia32:[a-z_0-9]{0,12}"]
            .prop_filter("not a syscall", |s| syscalls::id(s).is_none())
            .prop_map(|s| ("syscalls", s)),
        (path_field, path),
        prop_oneof![any::<String>(), Just("inet stream tcp".into()), Just("unix dgram 0".into())]
            .prop_filter("not a socket kind", |s| s.parse::<SocketKind>().is_err())
            .prop_map(|s| ("sockets", s)),
        any::<String>()
            .prop_filter("not an io_uring name", |s| uring::bit(s).is_none())
            .prop_map(|s| ("io_uring", s)),
        prop_oneof![
            any::<String>(),
            Just("tcp 10.0.0.1/8 port 1".into()),
            Just("udp ::1/128 port 65536".into()),
            "(tcp|udp|sctp) [0-9.]{1,15}/[0-9]{1,3} port [0-9a-z]{1,6}",
            "(tcp|udp|sctp) [a-z0-9*.-]{0,20} port [0-9a-z]{1,6}",
            Just("tcp localhost port 443".into()),
            Just("tcp 10.0.0.1 port 443".into()),
        ]
        .prop_filter("neither an address nor a name rule", |s| names::egress_entry(s).is_err())
        .prop_map(|s| ("egress", s)),
        prop_oneof![any::<String>(), "[a-z0-9*.-]{0,20}", Just("10.0.0.1".into())]
            .prop_filter("not a DNS name", |s| names::dns_name(s).is_err())
            .prop_map(|s| ("dns", s)),
    ]
}

proptest! {
    #[test]
    fn prop_what_is_rendered_parses_back_as_it_was(b in baseline()) {
        let text = render(&b);
        prop_assert_eq!(parse(&text, SOURCE), Ok(b), "{}", text);
    }

    #[test]
    fn prop_any_text_is_parsed_or_refused_naming_the_file(text in any::<String>()) {
        if let Err(err) = parse(&text, SOURCE) {
            prop_assert!(names_the_file(&err), "{}", err);
        }
    }

    #[test]
    fn prop_edited_files_are_parsed_or_refused_naming_the_file(
        b in baseline(),
        edits in text_edits::edits(text_edits::syntax_pieces()),
    ) {
        let text = text_edits::apply(render(&b), &edits);
        if let Err(err) = parse(&text, SOURCE) {
            prop_assert!(names_the_file(&err), "{}", err);
        }
    }

    #[test]
    fn prop_a_bad_entry_is_refused_by_field_and_index(
        b in baseline(),
        (field, bad) in bad_entry(),
    ) {
        // No `dns` key without a `dns` set: give it one.
        let mut b = b;
        if field == "dns" {
            b.dns.get_or_insert_default();
        }
        let value = toml::Value::String(bad.clone()).to_string();
        let text = render(&b)
            .replacen(&format!("\n{field} = ["), &format!("\n{field} = [\n  {value},"), 1);
        let Err(err) = parse(&text, SOURCE) else {
            return Err(TestCaseError::fail(format!("{bad:?} in {field} accepted")));
        };
        let FileError::Invalid { source_name, field: named, .. } = &err else {
            return Err(TestCaseError::fail(format!("{bad:?} in {field}: {err}")));
        };
        prop_assert_eq!(source_name, SOURCE);
        prop_assert_eq!(named, &format!("{field}[0]"));
        let message = err.to_string();
        let at = format!("{field}[0] = ");
        prop_assert!(names_the_file(&err) && message.contains(&at), "{}", message);
    }

    #[test]
    fn prop_a_tolerance_below_one_or_not_a_number_is_refused(
        b in baseline(),
        tolerance in prop_oneof![
            Just("nan".to_owned()),
            Just("inf".to_owned()),
            Just("-inf".to_owned()),
            (-1e300..1.0f64).prop_map(|t| format!("{t:?}")),
        ],
    ) {
        let text = render(&b);
        let start = text.find("tolerance = ").expect("a tolerance line");
        let end = start + text[start..].find('\n').expect("a whole line");
        let text = format!("{}tolerance = {tolerance}{}", &text[..start], &text[end..]);
        let Err(err) = parse(&text, SOURCE) else {
            return Err(TestCaseError::fail(format!("tolerance {tolerance} accepted")));
        };
        let message = err.to_string();
        prop_assert!(names_the_file(&err) && message.contains("envelope.tolerance"), "{}", message);
    }
}
