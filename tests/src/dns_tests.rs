//! Tests of the test DNS server and its stub resolver.
use super::*;

fn server() -> DnsServer {
    DnsServer::start("127.0.0.1:0".parse().unwrap()).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn a(s: &str) -> Record {
    Record::A(s.parse().unwrap())
}

fn ask(dns: &DnsServer, name: &str, qtype: u16) -> Vec<IpAddr> {
    lookup(dns.addr(), name, qtype).unwrap()
}

/// The answers of a raw reply as (first two bytes of the owner, type, TTL).
fn answers(reply: &[u8]) -> Vec<([u8; 2], u16, u32)> {
    let records = answer_records(reply).unwrap();
    records
        .into_iter()
        .map(|(at, rtype, ttl, _)| ([reply[at], reply[at + 1]], rtype, ttl))
        .collect()
}

#[test]
fn a_lookup() {
    let dns = server();
    dns.set("host.test", 60, vec![a("10.0.0.1"), a("10.0.0.2")]);
    assert_eq!(ask(&dns, "host.test", A), [ip("10.0.0.1"), ip("10.0.0.2")]);
    let reply = exchange(dns.addr(), "host.test", A).unwrap();
    // QR, AA, RD (as asked), RA; NOERROR; one question, two answers.
    assert_eq!(reply[2..12], [0x85, 0x80, 0, 1, 0, 2, 0, 0, 0, 0]);
    assert_eq!(answers(&reply), [([0xC0, 0x0C], A, 60), ([0xC0, 0x0C], A, 60)]);
}

#[test]
fn aaaa_lookup() {
    let dns = server();
    dns.set("both.test", 30, vec![a("10.0.0.9"), Record::Aaaa("fd00::1".parse().unwrap())]);
    assert_eq!(ask(&dns, "both.test", AAAA), [ip("fd00::1")]);
    assert_eq!(ask(&dns, "both.test", A), [ip("10.0.0.9")]);
    let any = answers(&exchange(dns.addr(), "both.test", ANY).unwrap());
    assert_eq!(any.iter().map(|a| a.1).collect::<Vec<_>>(), [A, AAAA]);
}

#[test]
fn cname_chain() {
    let dns = server();
    dns.set("www.test", 10, vec![Record::Cname("alias.test.".into())]);
    dns.set("alias.test", 20, vec![Record::Cname("real.test".into())]);
    dns.set("real.test", 30, vec![a("192.0.2.1"), a("192.0.2.2")]);
    assert_eq!(ask(&dns, "www.test", A), [ip("192.0.2.1"), ip("192.0.2.2")]);
    let rrs = answers(&exchange(dns.addr(), "www.test", A).unwrap());
    let kinds: Vec<_> = rrs.iter().map(|a| (a.1, a.2)).collect();
    assert_eq!(kinds, [(CNAME, 10), (CNAME, 20), (A, 30), (A, 30)]);
    assert_eq!(rrs[0].0, [0xC0, 0x0C]);
    // Only the first alias for QTYPE CNAME; nothing for AAAA at the end of the chain.
    let cname = answers(&exchange(dns.addr(), "www.test", CNAME).unwrap());
    assert_eq!(cname.iter().map(|a| a.1).collect::<Vec<_>>(), [CNAME]);
    assert!(ask(&dns, "www.test", AAAA).is_empty());
}

#[test]
fn nxdomain() {
    let dns = server();
    dns.set("known.test", 60, vec![a("10.0.0.1")]);
    let reply = exchange(dns.addr(), "unknown.test", A).unwrap();
    assert_eq!((reply[3] & 0x0F, &reply[6..8]), (3, &[0u8, 0][..]));
    let err = lookup(dns.addr(), "unknown.test", A).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    // A known name without records of the asked type: NOERROR, no answers.
    let reply = exchange(dns.addr(), "known.test", AAAA).unwrap();
    assert_eq!((reply[3] & 0x0F, &reply[6..8]), (0, &[0u8, 0][..]));
}

#[test]
fn case_insensitive_names() {
    let dns = server();
    dns.set("MiXeD.Test.", 60, vec![a("10.1.1.1")]);
    assert_eq!(ask(&dns, "mixed.TEST", A), [ip("10.1.1.1")]);
    assert_eq!(ask(&dns, "MIXED.test.", A), [ip("10.1.1.1")]);
    // The question comes back as asked.
    let reply = exchange(dns.addr(), "MiXeD.tEsT", A).unwrap();
    assert_eq!(&reply[12..24], b"\x05MiXeD\x04tEsT\x00");
}

#[test]
fn set_replaces_records() {
    let dns = server();
    dns.set("moving.test", 60, vec![a("10.0.0.1")]);
    assert_eq!(ask(&dns, "moving.test", A), [ip("10.0.0.1")]);
    dns.set("moving.test", 60, vec![a("10.0.0.2")]);
    assert_eq!(ask(&dns, "moving.test", A), [ip("10.0.0.2")]);
    dns.remove("Moving.Test.");
    let err = lookup(dns.addr(), "moving.test", A).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}

#[test]
fn queries_recorded() {
    let dns = server();
    dns.set("a.test", 60, vec![a("10.0.0.1")]);
    ask(&dns, "A.Test.", A);
    ask(&dns, "a.test", AAAA);
    let _ = lookup(dns.addr(), "nope.test", A);
    let expected = [("a.test", A), ("a.test", AAAA), ("nope.test", A)];
    assert_eq!(dns.queries(), expected.map(|(n, t)| (n.to_owned(), t)));
}

#[test]
fn queries_sent_without_waiting_for_the_answer_are_counted_at_once() {
    let dns = server();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..20 {
        socket.send_to(&query_message(&format!("n{i}.test"), A, i).unwrap(), dns.addr()).unwrap();
    }
    let mut tcp = std::net::TcpStream::connect(dns.addr()).unwrap();
    let query = query_message("over.tcp.test", AAAA, 7).unwrap();
    std::io::Write::write_all(&mut tcp, &over_tcp(&query)).unwrap();
    drop(tcp);
    // Asked at once: the server's threads may not have read them yet; no marker is listed.
    let queries = dns.queries();
    assert_eq!(queries.len(), 21, "{queries:?}");
    assert_eq!(queries.iter().filter(|(n, _)| n.ends_with(".test")).count(), 21);
    assert!(queries.contains(&("over.tcp.test".to_owned(), AAAA)));
    assert_eq!(dns.queries(), queries, "markers are never counted");
}

#[test]
fn malformed_queries_ignored() {
    let dns = server();
    dns.set("ok.test", 60, vec![a("10.0.0.1")]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00";
    let response = b"\x12\x34\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00";
    let root = b"\x00\x00\x01\x00\x01";
    // Empty, short header, no question, a label past the end, an unterminated name, a
    // compression pointer, a response (QR set).
    let packets = [
        vec![],
        query[..6].to_vec(),
        query.to_vec(),
        [&query[..], b"\x40abc"].concat(),
        [&query[..], b"\x03abc"].concat(),
        [&query[..], b"\xc0\x0c\x00\x01\x00\x01"].concat(),
        [&response[..], root].concat(),
    ];
    for packet in packets {
        socket.send_to(&packet, dns.addr()).unwrap();
    }
    assert!(socket.recv(&mut [0u8; 512]).is_err(), "answered a malformed query");
    assert_eq!(ask(&dns, "ok.test", A), [ip("10.0.0.1")]);
    assert_eq!(dns.queries(), [("ok.test".to_owned(), A)]);
}

#[test]
fn ipv6_loopback() {
    let Ok(dns) = DnsServer::start("[::1]:0".parse().unwrap()) else {
        eprintln!("skipped: no IPv6 loopback");
        return;
    };
    dns.set("six.test", 60, vec![Record::Aaaa(Ipv6Addr::LOCALHOST)]);
    assert_eq!(ask(&dns, "six.test", AAAA), [ip("::1")]);
}
