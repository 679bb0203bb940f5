//! Lookups as a stub resolver makes them (a UDP query from the process's own socket to a
//! resolver, the answer read back), and connects to what they answered.
use std::{
    net::{IpAddr, SocketAddr, TcpStream},
    time::Duration,
};

use paddock_tests::dns::lookup;

/// `SERVER:NAME:TYPE`: ask resolver SERVER (an IPv4 address, port 53) for NAME, of TYPE
/// `A` or `AAAA`. A refused or unanswered query is not an error (paddock may refuse it).
pub fn resolve(arg: &str) -> Result<(), String> {
    let (server, name, qtype) = parse(arg)?;
    let _ = lookup(server, name, qtype);
    Ok(())
}

/// `SERVER:NAME:TYPE:PORT`: resolve as above, then TCP-connect to every address answered,
/// on PORT (a refusal is not an error).
pub fn dial(arg: &str) -> Result<(), String> {
    let (head, port) =
        arg.rsplit_once(':').ok_or(format!("dial:{arg}: want SERVER:NAME:TYPE:PORT"))?;
    let port: u16 = port.parse().map_err(|e| format!("dial:{arg}: {e}"))?;
    let (server, name, qtype) = parse(head)?;
    let addresses: Vec<IpAddr> = lookup(server, name, qtype).unwrap_or_default();
    for address in addresses {
        let _ = TcpStream::connect_timeout(&SocketAddr::new(address, port), Duration::from_secs(2));
    }
    Ok(())
}

fn parse(arg: &str) -> Result<(SocketAddr, &str, u16), String> {
    let mut parts = arg.splitn(3, ':');
    let (Some(server), Some(name), Some(qtype)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("{arg}: want SERVER:NAME:TYPE"));
    };
    let server: IpAddr = server.parse().map_err(|e| format!("{arg}: {e}"))?;
    let qtype = match qtype {
        "A" => 1,
        "AAAA" => 28,
        other => return Err(format!("{arg}: type {other:?} is not A or AAAA")),
    };
    Ok((SocketAddr::new(server, 53), name, qtype))
}

/// `SERVER:NAME:FILE:PORT`: from one unconnected UDP socket (which takes datagrams from
/// anyone), write "PORT ID" of the socket and query to FILE, ask SERVER for NAME (A), read
/// every reply for a second, then TCP-connect on PORT to every address any reply gave.
/// What a stub resolver racing a forger looks like.
pub fn race(arg: &str) -> Result<(), String> {
    let bad = |e: std::io::Error| format!("race:{arg}: {e}");
    let mut parts = arg.splitn(4, ':');
    let (Some(server), Some(name), Some(file), Some(port)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("race:{arg}: want SERVER:NAME:FILE:PORT"));
    };
    let server: IpAddr = server.parse().map_err(|e| format!("race:{arg}: {e}"))?;
    let port: u16 = port.parse().map_err(|e| format!("race:{arg}: {e}"))?;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(bad)?;
    let id = std::process::id() as u16;
    let local = socket.local_addr().map_err(bad)?.port();
    std::fs::write(file, format!("{local} {id}")).map_err(bad)?;
    let query = paddock_tests::dns::query_message(name, 1, id).map_err(bad)?;
    socket.send_to(&query, SocketAddr::new(server, 53)).map_err(bad)?;
    socket.set_read_timeout(Some(Duration::from_millis(200))).map_err(bad)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    let mut addresses = Vec::new();
    let mut buf = [0u8; 1500];
    while std::time::Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            addresses.extend(paddock_tests::dns::addresses(&buf[..n]));
        }
    }
    for address in addresses {
        let _ = TcpStream::connect_timeout(&SocketAddr::new(address, port), Duration::from_secs(2));
    }
    Ok(())
}

/// `ADDR:NAME:IP:MS`: serve NAME -> IP (A, TTL 60) as a DNS server on ADDR (port 53) for MS
/// ms (for the benchmark, run outside any investigation).
pub fn serve(arg: &str) -> Result<(), String> {
    let bad = |e: String| format!("dns-serve:{arg}: {e}");
    let parts: Vec<&str> = arg.split(':').collect();
    let [addr, name, ip, ms] = parts.as_slice() else {
        return Err(bad("want ADDR:NAME:IP:MS".into()));
    };
    let addr: IpAddr = addr.parse().map_err(|e| bad(format!("{e}")))?;
    let ip = ip.parse().map_err(|e| bad(format!("{e}")))?;
    let ms: u64 = ms.parse().map_err(|e| bad(format!("{e}")))?;
    let server = paddock_tests::dns::DnsServer::start(SocketAddr::new(addr, 53))
        .map_err(|e| bad(e.to_string()))?;
    server.set(name, 60, vec![paddock_tests::dns::Record::A(ip)]);
    std::thread::sleep(Duration::from_millis(ms));
    Ok(())
}

/// `SERVER:NAME:N:FILE`: N lookups of NAME (A) from one socket, one after the other; the
/// mean nanoseconds per lookup to FILE.
pub fn lookup_loop(arg: &str) -> Result<(), String> {
    let bad = |e: String| format!("dns-loop:{arg}: {e}");
    let parts: Vec<&str> = arg.split(':').collect();
    let [server, name, n, file] = parts.as_slice() else {
        return Err(bad("want SERVER:NAME:N:FILE".into()));
    };
    let server: IpAddr = server.parse().map_err(|e| bad(format!("{e}")))?;
    let n: u32 = n.parse().map_err(|e| bad(format!("{e}")))?;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| bad(e.to_string()))?;
    socket.connect(SocketAddr::new(server, 53)).map_err(|e| bad(e.to_string()))?;
    socket.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| bad(e.to_string()))?;
    let mut buf = [0u8; 1500];
    let start = std::time::Instant::now();
    for i in 0..n {
        let query =
            paddock_tests::dns::query_message(name, 1, i as u16).map_err(|e| bad(e.to_string()))?;
        socket.send(&query).map_err(|e| bad(e.to_string()))?;
        socket.recv(&mut buf).map_err(|e| bad(e.to_string()))?;
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(n.max(1));
    std::fs::write(file, format!("{ns}")).map_err(|e| bad(e.to_string()))
}

/// `ADDR:N:FILE`: N round trips of a 64-byte datagram to a UDP echo on ADDR (host:port),
/// one after the other; the mean nanoseconds per round trip to FILE.
pub fn echo_loop(arg: &str) -> Result<(), String> {
    let bad = |e: String| format!("echo-loop:{arg}: {e}");
    let (rest, file) = arg.rsplit_once(':').ok_or(bad("want ADDR:N:FILE".into()))?;
    let (addr, n) = rest.rsplit_once(':').ok_or(bad("want ADDR:N:FILE".into()))?;
    let n: u32 = n.parse().map_err(|e| bad(format!("{e}")))?;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| bad(e.to_string()))?;
    socket.connect(addr).map_err(|e| bad(e.to_string()))?;
    socket.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| bad(e.to_string()))?;
    let mut buf = [0u8; 1500];
    let start = std::time::Instant::now();
    for _ in 0..n {
        socket.send(&[7u8; 64]).map_err(|e| bad(e.to_string()))?;
        socket.recv(&mut buf).map_err(|e| bad(e.to_string()))?;
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(n.max(1));
    std::fs::write(file, format!("{ns}")).map_err(|e| bad(e.to_string()))
}

/// `ADDR:MS`: echo every datagram on ADDR (host:port) back to its sender for MS ms.
pub fn echo_serve(arg: &str) -> Result<(), String> {
    let bad = |e: String| format!("echo-serve:{arg}: {e}");
    let (addr, ms) = arg.rsplit_once(':').ok_or(bad("want ADDR:MS".into()))?;
    let ms: u64 = ms.parse().map_err(|e| bad(format!("{e}")))?;
    let socket = std::net::UdpSocket::bind(addr).map_err(|e| bad(e.to_string()))?;
    socket.set_read_timeout(Some(Duration::from_millis(50))).map_err(|e| bad(e.to_string()))?;
    let deadline = std::time::Instant::now() + Duration::from_millis(ms);
    let mut buf = [0u8; 1500];
    while std::time::Instant::now() < deadline {
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], from);
        }
    }
    Ok(())
}

/// `NAME:plain` or `NAME:hop`: ask the resolver on [::1]:53 for NAME (A), from an IPv6
/// socket; with `hop`, every datagram of that socket carries a hop-by-hop extension header
/// (a PadN option) between the IPv6 and UDP headers. A refused or unanswered query is not
/// an error.
pub fn resolve6(arg: &str) -> Result<(), String> {
    use std::os::fd::AsRawFd as _;
    let (name, how) = arg.split_once(':').ok_or(format!("resolve6:{arg}: want NAME:plain|hop"))?;
    let bad = |e: std::io::Error| format!("resolve6:{arg}: {e}");
    let socket = std::net::UdpSocket::bind("[::1]:0").map_err(bad)?;
    if how == "hop" {
        // Next header (the kernel fills it in), length 0 (8 bytes), PadN of 4 bytes.
        let header: [u8; 8] = [0, 0, 1, 4, 0, 0, 0, 0];
        // SAFETY: a valid socket and an 8-byte option buffer.
        let r = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_HOPOPTS,
                header.as_ptr().cast(),
                header.len() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(bad(std::io::Error::last_os_error()));
        }
    }
    let query = paddock_tests::dns::query_message(name, 1, 0x5151).map_err(bad)?;
    if socket.send_to(&query, "[::1]:53").is_ok() {
        socket.set_read_timeout(Some(Duration::from_millis(500))).map_err(bad)?;
        let mut buf = [0u8; 1500];
        let _ = socket.recv(&mut buf);
    }
    Ok(())
}

/// `SERVER:NAME:PORT`: ask SERVER (IPv4, port 53) for NAME (A) over TCP (the message and its
/// length in one write, as resolvers send it), then TCP-connect on PORT to every address
/// answered. A refused query or connect is not an error.
pub fn dial_tcp(arg: &str) -> Result<(), String> {
    use std::io::{Read as _, Write as _};
    let bad = |e: std::io::Error| format!("dial-tcp:{arg}: {e}");
    let parts: Vec<&str> = arg.split(':').collect();
    let [server, name, port] = parts.as_slice() else {
        return Err(format!("dial-tcp:{arg}: want SERVER:NAME:PORT"));
    };
    let server: IpAddr = server.parse().map_err(|e| format!("dial-tcp:{arg}: {e}"))?;
    let port: u16 = port.parse().map_err(|e| format!("dial-tcp:{arg}: {e}"))?;
    let query = paddock_tests::dns::query_message(name, 1, 0x7c7c).map_err(bad)?;
    let out = paddock_tests::dns::over_tcp(&query);
    let Ok(mut stream) =
        TcpStream::connect_timeout(&SocketAddr::new(server, 53), Duration::from_secs(2))
    else {
        return Ok(());
    };
    stream.set_read_timeout(Some(Duration::from_secs(2))).map_err(bad)?;
    if stream.write_all(&out).is_err() {
        return Ok(());
    }
    let mut len = [0u8; 2];
    if stream.read_exact(&mut len).is_err() {
        return Ok(());
    }
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut reply).map_err(bad)?;
    for address in paddock_tests::dns::addresses(&reply) {
        let _ = TcpStream::connect_timeout(&SocketAddr::new(address, port), Duration::from_secs(2));
    }
    Ok(())
}
