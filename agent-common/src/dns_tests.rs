use super::*;
use crate::hash::fnv1a;

fn name_wire(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

fn header(id: u16, response: bool, answers: u16) -> Vec<u8> {
    let flags: u16 = if response { 0x8180 } else { 0x0100 };
    let mut out = Vec::new();
    for v in [id, flags, 1, answers, 0, 0] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}

fn query(name: &str, qtype: u16) -> Vec<u8> {
    let mut out = header(0x1234, false, 0);
    out.extend(name_wire(name));
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out
}

fn rr(owner: &[u8], rtype: u16, ttl: u32, data: &[u8]) -> Vec<u8> {
    let mut out = owner.to_vec();
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
    out
}

fn parse(message: &[u8]) -> (DnsParser, String) {
    let mut buf = [0u8; DNS_BUF];
    let n = message.len().min(DNS_BUF);
    buf[..n].copy_from_slice(&message[..n]);
    let mut name = [0u8; DNS_NAME_LEN];
    let mut p = DnsParser::new(message.len() as u32);
    p.run(&buf, &mut name);
    let end = name.iter().position(|b| *b == 0).unwrap_or(DNS_NAME_LEN);
    (p, String::from_utf8_lossy(&name[..end]).into_owned())
}

#[test]
fn a_query_gives_its_name_type_and_hashes() {
    let (p, name) = parse(&query("API.Example.com", TYPE_AAAA));
    assert_eq!(name, "api.example.com");
    assert_eq!((p.flags, p.qtype, p.id, p.response, p.count), (0, TYPE_AAAA, 0x1234, 0, 0));
    assert!(p.question_read());
    assert_eq!(p.hash, fnv1a(b"api.example.com"));
    assert_eq!(p.hash, name_hash(b"API.example.com."));
    assert_eq!(p.wild, fnv1a(b"*.example.com"));
    assert_eq!(p.wild, wildcard_hash(b"api.example.com"));
    assert_eq!(name_hash(b"*.example.com"), wildcard_hash(b"x.EXAMPLE.com"));
}

#[test]
fn an_answer_with_a_cname_chain_binds_every_address_to_the_question() {
    let mut m = header(7, true, 4);
    m.extend(name_wire("www.example.com"));
    m.extend_from_slice(&[0, 1, 0, 1]);
    m.extend(rr(&[0xc0, 12], TYPE_CNAME, 300, &name_wire("edge.cdn.example.net")));
    m.extend(rr(&name_wire("edge.cdn.example.net"), TYPE_CNAME, 300, &[0xc0, 12]));
    m.extend(rr(&[0xc0, 12], TYPE_A, 60, &[10, 0, 0, 1]));
    m.extend(rr(&[0xc0, 12], TYPE_AAAA, 30, &[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]));
    let (p, name) = parse(&m);
    assert_eq!(name, "www.example.com");
    assert_eq!((p.flags, p.response, p.count, p.rcode), (0, 1, 2, 0));
    assert_eq!(p.addrs[0], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]);
    assert_eq!(p.addrs[1][0], 0xfd);
    assert_eq!(p.addrs[1][15], 2);
    assert_eq!((p.ttls[0], p.ttls[1]), (60, 30));
}

#[test]
fn more_addresses_than_the_record_holds_are_flagged() {
    let mut m = header(1, true, 10);
    m.extend(name_wire("many.example.com"));
    m.extend_from_slice(&[0, 1, 0, 1]);
    for i in 0..10u8 {
        m.extend(rr(&[0xc0, 12], TYPE_A, 5, &[10, 0, 0, i]));
    }
    let (p, _) = parse(&m);
    assert_eq!(p.count as usize, DNS_MAX_ADDRS);
    assert_eq!(p.flags, DNS_MORE);
    assert_eq!(p.addrs[7][15], 7);
}

#[test]
fn malformed_messages_are_flagged_not_misread() {
    let cases: [(&str, Vec<u8>); 6] = [
        ("short", vec![0, 1, 2]),
        ("two questions", {
            let mut m = query("a.example.com", TYPE_A);
            m[5] = 2;
            m
        }),
        ("a dot inside a label", {
            let mut m = header(1, false, 0);
            m.extend_from_slice(b"\x0bapi.example\x03com\x00\x00\x01\x00\x01");
            m
        }),
        ("binary in a label", {
            let mut m = header(1, false, 0);
            m.extend_from_slice(b"\x03a\x01b\x03com\x00\x00\x01\x00\x01");
            m
        }),
        ("a pointer in the question", {
            let mut m = header(1, false, 0);
            m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
            m
        }),
        ("cut in the name", query("a.example.com", TYPE_A)[..18].to_vec()),
    ];
    for (what, m) in cases {
        let (p, _) = parse(&m);
        assert_ne!(p.flags & DNS_MALFORMED, 0, "{what}");
        assert!(!p.question_read(), "{what}");
    }
}

#[test]
fn a_name_longer_than_dns_allows_is_malformed() {
    let long = ["a"; 140].join(".");
    let (p, _) = parse(&query(&long, TYPE_A));
    assert_ne!(p.flags & DNS_MALFORMED, 0);
}

#[test]
fn a_truncated_answer_keeps_what_it_read() {
    let mut m = header(1, true, 2);
    m.extend(name_wire("x.example.com"));
    m.extend_from_slice(&[0, 1, 0, 1]);
    m.extend(rr(&[0xc0, 12], TYPE_A, 5, &[10, 0, 0, 1]));
    m.extend(rr(&[0xc0, 12], TYPE_A, 5, &[10, 0, 0, 2]));
    let cut = m.len() - 3;
    let (p, _) = parse(&m[..cut]);
    assert_eq!((p.count, p.flags & DNS_MALFORMED), (1, 0));
}

#[test]
fn a_message_over_the_buffer_is_cut_and_says_so() {
    let mut m = header(1, true, 1);
    m.extend(name_wire("x.example.com"));
    m.extend_from_slice(&[0, 1, 0, 1]);
    m.extend(rr(&[0xc0, 12], TYPE_A, 5, &[10, 0, 0, 1]));
    m.resize(DNS_BUF + 100, 0);
    let (p, _) = parse(&m);
    assert_eq!(p.count, 1);
    assert_ne!(p.flags & DNS_CUT, 0);
}
