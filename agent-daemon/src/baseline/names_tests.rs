//! Tests of `names`: name rules as text, matching, and what learning generalises.
use super::*;

#[test]
fn rules_round_trip_through_text() {
    for text in [
        "tcp api.example.com port 443",
        "udp *.s3.amazonaws.com port any",
        "ip-proto-132 sctp.example.org port 9",
        "tcp _grpc._tcp.svc.cluster.local port 50051",
        "tcp x--y.example.com port 0",
    ] {
        let rule: NameRule = text.parse().unwrap();
        assert_eq!(rule.to_string(), text);
    }
}

#[test]
fn names_are_kept_lowercase_without_a_trailing_dot() {
    let rule: NameRule = "tcp  API.Example.COM.  port 443".parse().unwrap();
    assert_eq!(rule.name, "api.example.com");
    assert_eq!(rule.to_string(), "tcp api.example.com port 443");
    assert_eq!(rule_name("*.S3.AmazonAWS.com"), Ok("*.s3.amazonaws.com".into()));
}

#[test]
fn bad_rules_say_what_is_wrong() {
    let long_label = format!("tcp {}.example.com port 1", "a".repeat(64));
    let long_name = format!("tcp {}example.com port 1", "abcdefghi.".repeat(25));
    for (text, why) in [
        ("tcp api.example.com 443", "expected PROTOCOL NAME port PORT"),
        ("sctp api.example.com port 1", "protocol"),
        ("tcp api.example.com port 70000", "the port"),
        ("tcp api.example.com port -1", "the port"),
        ("tcp 10.0.0.1 port 1", "IP address or network"),
        ("tcp ::1 port 1", "IP address or network"),
        ("tcp 10.0.0.0/8 port 1", "IP address or network"),
        ("tcp 1.2.3 port 1", "all digits"),
        ("tcp localhost port 1", "single label"),
        ("tcp a..example.com port 1", "empty label"),
        ("tcp .example.com port 1", "empty label"),
        (&long_label, "longer than 63 bytes"),
        (&long_name, "not 1 to 253 bytes"),
        ("tcp api.exa$mple.com port 1", "a character other than"),
        ("tcp api.exämple.com port 1", "a character other than"),
        ("tcp -api.example.com port 1", "starts or ends with -"),
        ("tcp api-.example.com port 1", "starts or ends with -"),
        ("tcp api.*.example.com port 1", "* may only stand for the first label"),
        ("tcp *.*.example.com port 1", "* may only stand for the first label"),
        ("tcp *x.example.com port 1", "a character other than"),
        ("tcp * port 1", "* may only stand for the first label"),
    ] {
        let err = text.parse::<NameRule>().unwrap_err().to_string();
        assert!(err.contains(why), "{text}: {err}");
        assert!(err.contains(&format!("{text:?}")), "{err}");
        assert!(err.contains("tcp api.example.com port 443"), "shows the form: {err}");
    }
}

#[test]
fn egress_entries_are_address_rules_first_then_name_rules() {
    let address = egress_entry("tcp 10.0.0.0/8 port 443").unwrap();
    assert!(
        matches!(address, EgressEntry::Address(r) if r.to_string() == "tcp 10.0.0.0/8 port 443")
    );
    let name = egress_entry("tcp *.s3.amazonaws.com port any").unwrap();
    assert!(matches!(name, EgressEntry::Name(r) if r.name == "*.s3.amazonaws.com"));
    // What is wrong is told in the terms of the form the entry looks like.
    assert_eq!(
        egress_entry("tcp 10.0.0.1/8 port 1"),
        Err("the network has host bits set (use its first address)")
    );
    assert_eq!(
        egress_entry("tcp 10.0.0.1 port 1"),
        Err("the network is not a CIDR such as 10.0.0.0/8")
    );
    assert_eq!(egress_entry("tcp ::1 port 1"), Err("the network is not a CIDR such as 10.0.0.0/8"));
    assert_eq!(egress_entry("tcp api.example.com port x"), Err("the port is not 0-65535 or any"));
    assert_eq!(
        egress_entry("tcp localhost port 1"),
        Err("the name has a single label (a name rule needs two or more: example.com)")
    );
}

#[test]
fn dns_entries_may_have_one_label_and_no_address() {
    assert_eq!(dns_name("MyService."), Ok("myservice".into()));
    assert_eq!(dns_name("*.svc.cluster.local"), Ok("*.svc.cluster.local".into()));
    assert!(dns_name("*").is_err());
    assert!(dns_name("").is_err());
    assert!(dns_name("10.0.0.1").is_err());
    assert!(dns_name("a b.example.com").is_err());
    // What learning takes from the kernel: names, never patterns.
    assert_eq!(query_name("Api.Example.com."), Some("api.example.com".into()));
    assert_eq!(query_name("myservice"), Some("myservice".into()));
    assert_eq!(query_name("*.example.com"), None);
    assert_eq!(query_name("bad\0name.com"), None);
    assert_eq!(host_name("myservice"), None, "a name rule needs two labels");
    assert_eq!(host_name("*.example.com"), None);
    assert_eq!(host_name("api.example.com"), Some("api.example.com".into()));
}

#[test]
fn a_name_matches_itself_and_a_pattern_one_label_under_its_rest() {
    assert!(name_matches("api.example.com", "api.example.com"));
    assert!(name_matches("api.example.com", "API.Example.com."));
    assert!(!name_matches("api.example.com", "api.example.org"));
    assert!(!name_matches("api.example.com", "xapi.example.com"));
    assert!(name_matches("*.example.com", "a.example.com"));
    assert!(name_matches("*.example.com", "A-1.EXAMPLE.COM"));
    assert!(!name_matches("*.example.com", "example.com"), "one label, not none");
    assert!(!name_matches("*.example.com", "a.b.example.com"), "one label, not two");
    assert!(!name_matches("*.example.com", ".example.com"));
    assert!(!name_matches("*.example.com", "a.example.com.evil"));
    assert!(!name_matches("*.example.com", "a.notexample.com"));
    assert!(!name_matches("*.example.com", "a b.example.com"), "not a label");
    assert!(!name_matches("*.example.com", "*.example.com"), "a pattern is no name");
}

#[test]
fn a_rule_allows_its_protocol_name_and_port() {
    let rule: NameRule = "tcp *.example.com port 443".parse().unwrap();
    assert!(rule.allows(Protocol::Tcp, "api.example.com", 443));
    assert!(!rule.allows(Protocol::Udp, "api.example.com", 443));
    assert!(!rule.allows(Protocol::Tcp, "api.example.com", 80));
    assert!(!rule.allows(Protocol::Tcp, "example.com", 443));
    let any: NameRule = "udp dns.example.com port any".parse().unwrap();
    assert!(any.allows(Protocol::Udp, "dns.example.com", 5353));
    let exact = NameRule::exact(Protocol::Tcp, "x7f3a9c21.Example.com.", 8443);
    assert_eq!(exact.to_string(), "tcp *.example.com port 8443");
    assert_eq!(NameRule::exact(Protocol::Tcp, "api.example.com", 443).name, "api.example.com");
}

#[test]
fn made_up_first_labels_are_generalised() {
    for (name, pattern) in [
        ("x7f3a9c21.example.com", "*.example.com"),
        ("1234.example.com", "*.example.com"),
        ("0b6c2a9e-1d2f-4e3a-9b8c-7d6e5f4a3b2c.example.com", "*.example.com"),
        (
            "abcdef-abcd-abcd-abcd-abcdefabcdef.example.com",
            "abcdef-abcd-abcd-abcd-abcdefabcdef.example.com",
        ),
        ("abcdefab-abcd-abcd-abcd-abcdefabcdef.example.com", "*.example.com"),
        ("cafe1234.example.com", "*.example.com"),
        ("a8k2m9x7q1.example.com", "*.example.com"),
        ("shard-07.db.example.com", "*.db.example.com"),
        ("worker-3.example.com", "*.example.com"),
        ("node12.example.com", "*.example.com"),
        ("bucket-name-12345678.s3.amazonaws.com", "*.s3.amazonaws.com"),
        ("ip-10-0-1-23.ec2.internal", "*.ec2.internal"),
        ("pod-12345.ns.svc.cluster.local", "*.ns.svc.cluster.local"),
        ("X7F3A9C21.Example.COM.", "*.example.com"),
        ("a1b2c3d4e5.github.io", "*.github.io"),
    ] {
        assert_eq!(generalise_name(name), pattern, "{name}");
    }
}

#[test]
fn names_a_person_gave_are_kept() {
    for name in [
        "api.example.com",
        "s3.amazonaws.com",
        "ec2.us-east-1.amazonaws.com",
        "api2.example.com",
        "www.example.com",
        "deadbeef.example.com",
        "us-east-1.example.com",
        "ap-southeast-2.example.com",
        "my-app-v2.example.com",
        "kube-dns.kube-system.svc.cluster.local",
        "_http._tcp.example.com",
        "*.example.com",
    ] {
        assert_eq!(generalise_name(name), name, "{name}");
    }
}

#[test]
fn the_registrable_domain_is_never_generalised() {
    for name in [
        "7f3a9c21e0.com",
        "abc123def456.co.uk",
        "x7f3a9c21.com.au",
        "1234.localdomain",
        "7f3a9c21",
        "a1b2c3d4e5.foo.ck",
    ] {
        assert_eq!(generalise_name(name), name, "{name}");
    }
    assert_eq!(generalise_name("abc123def456.example.co.uk"), "*.example.co.uk");
    // Only the leftmost label, and only one.
    assert_eq!(generalise_name("1234.5678.example.com"), "*.5678.example.com");
    assert_eq!(generalise_name("api.1234.example.com"), "api.1234.example.com");
}

#[test]
fn icann_suffixes_set_private_ones_aside() {
    for (name, labels) in [
        ("example.com", 1),
        ("example.co.uk", 2),
        ("bucket.s3.amazonaws.com", 1),
        ("user.github.io", 1),
        ("svc.cluster.local", 1),
        ("a.b.foo.ck", 2),
        ("com", 1),
        ("", 1),
    ] {
        assert_eq!(icann_suffix_labels(name), labels, "{name}");
    }
}

#[test]
fn generalising_garbage_changes_only_case_and_trailing_dots() {
    for (name, kept) in [
        ("", ""),
        (".", ""),
        ("1234..example.com", "1234..example.com"),
        ("1234.exa mple.com", "1234.exa mple.com"),
        ("1234.Example.com..", "*.example.com"),
    ] {
        assert_eq!(generalise_name(name), kept, "{name:?}");
    }
}
