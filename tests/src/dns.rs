//! A small authoritative DNS server on UDP for the tests: it answers the names a test sets
//! with A, AAAA and CNAME records and records every query; plus a stub-resolver lookup.
use std::{
    collections::HashMap,
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU16, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// Record types and the query type ANY.
const A: u16 = 1;
const CNAME: u16 = 5;
const AAAA: u16 = 28;
const ANY: u16 = 255;
/// The name of the queries the tests' side sends to have its earlier queries counted.
const MARKER: &str = "marker.paddock-test.invalid";
/// The most CNAME records followed for one query.
const MAX_HOPS: usize = 8;

/// A record the server answers with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// An IPv4 address (type 1).
    A(Ipv4Addr),
    /// An IPv6 address (type 28).
    Aaaa(Ipv6Addr),
    /// An alias (type 5): the server answers it, then the target's records.
    Cname(String),
}

impl Record {
    /// The target of a CNAME record.
    fn target(&self) -> Option<&str> {
        match self {
            Record::Cname(target) => Some(target),
            _ => None,
        }
    }
}

/// The names the server knows (each with its TTL and records) and the queries it received.
#[derive(Default)]
struct State {
    names: HashMap<String, (u32, Vec<Record>)>,
    queries: Vec<(String, u16)>,
}

/// An authoritative DNS server on a UDP socket, served by a thread that stops on drop.
pub struct DnsServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// `name` as the server keys it: lowercased, without a trailing dot.
fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// `name` in wire format (uncompressed labels and the root label); `None` when a label is
/// longer than 63 bytes or the whole name longer than 255.
fn encode_name(name: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        out.push(u8::try_from(label.len()).ok().filter(|&n| n <= 63)?);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    (out.len() <= 255).then_some(out)
}

impl DnsServer {
    /// Bind `addr` (port 0 picks a free one) and serve it on a thread; no names are known yet.
    pub fn start(addr: SocketAddr) -> io::Result<DnsServer> {
        let socket = UdpSocket::bind(addr)?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let addr = socket.local_addr()?;
        let state = Arc::<Mutex<State>>::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stopped) = (state.clone(), stop.clone());
        // The same over TCP, on the same address and port (messages with their two-byte
        // length, one connection after the other).
        let tcp = std::net::TcpListener::bind(addr)?;
        tcp.set_nonblocking(true)?;
        let (tcp_state, tcp_stopped) = (state.clone(), stop.clone());
        thread::Builder::new()
            .name("dns-server-tcp".into())
            .spawn(move || serve_tcp(&tcp, &tcp_state, &tcp_stopped))?;
        let thread = thread::Builder::new()
            .name("dns-server".into())
            .spawn(move || serve(&socket, &shared, &stopped))?;
        Ok(DnsServer { addr, state, stop, thread: Some(thread) })
    }

    /// The address the server listens on (with the port chosen when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replace the records of `name` (case-insensitive, with or without trailing dot) with
    /// `records`, each answered with TTL `ttl` seconds. Panics on a name DNS cannot carry.
    pub fn set(&self, name: &str, ttl: u32, records: Vec<Record>) {
        for n in records.iter().filter_map(Record::target).chain([name]) {
            encode_name(n).unwrap_or_else(|| panic!("invalid DNS name {n:?}"));
        }
        self.state().names.insert(key(name), (ttl, records));
    }

    /// Forget `name`: it is answered with NXDOMAIN from now on.
    pub fn remove(&self, name: &str) {
        self.state().names.remove(&key(name));
    }

    /// Queries received so far, as (lowercased name without trailing dot, qtype number).
    /// Exact when read: a query sent before this call but not yet read by the server's
    /// threads counts too. A marker query is answered over UDP and then over TCP first (each
    /// thread serves in order), and the markers are left out.
    pub fn queries(&self) -> Vec<(String, u16)> {
        exchange(self.addr, MARKER, A).expect("the DNS server answers its marker over UDP");
        exchange_tcp(self.addr, MARKER, A).expect("the DNS server answers its marker over TCP");
        self.state().queries.iter().filter(|(name, _)| name != MARKER).cloned().collect()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answer queries on `socket` until `stop` is set (seen within the socket's read timeout).
fn serve(socket: &UdpSocket, state: &Mutex<State>, stop: &AtomicBool) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let Ok((len, peer)) = socket.recv_from(&mut buf) else { continue };
        let reply = answer(&buf[..len], &mut state.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(reply) = reply {
            let _ = socket.send_to(&reply, peer);
        }
    }
}

/// Answer queries over TCP until `stop` is set.
fn serve_tcp(listener: &std::net::TcpListener, state: &Mutex<State>, stop: &AtomicBool) {
    use std::io::{Read as _, Write as _};
    while !stop.load(Ordering::Relaxed) {
        let Ok((mut stream, _)) = listener.accept() else {
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut len = [0u8; 2];
        while stream.read_exact(&mut len).is_ok() {
            let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
            if stream.read_exact(&mut query).is_err() {
                break;
            }
            let reply = answer(&query, &mut state.lock().unwrap_or_else(|e| e.into_inner()));
            let Some(reply) = reply else { break };
            if stream.write_all(&over_tcp(&reply)).is_err() {
                break;
            }
        }
    }
}

/// The name at `pos` of `msg` (lowercased, labels joined by dots; compression pointers are
/// not accepted) and the offset after it.
fn read_name(msg: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    loop {
        let len = usize::from(*msg.get(pos)?);
        pos += 1;
        if len == 0 {
            return Some((name, pos));
        }
        if len > 63 || name.len() + len >= 255 {
            return None;
        }
        if !name.is_empty() {
            name.push('.');
        }
        name.extend(msg.get(pos..pos + len)?.iter().map(|&b| char::from(b.to_ascii_lowercase())));
        pos += len;
    }
}

/// Append a resource record of class IN; its owner is the question's name (pointer 0xC00C)
/// when `owner` is `None`.
fn push_rr(out: &mut Vec<u8>, owner: Option<&[u8]>, rtype: u16, ttl: u32, rdata: &[u8]) {
    out.extend_from_slice(owner.unwrap_or(&[0xC0, 0x0C]));
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&u16::try_from(rdata.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(rdata);
}

/// The reply to `query`, recorded in `state`; `None` for what is not a standard query with
/// one question.
fn answer(query: &[u8], state: &mut State) -> Option<Vec<u8>> {
    let header = query.get(..12)?;
    let flags = u16::from_be_bytes([header[2], header[3]]);
    // A response (QR), another opcode, or not exactly one question: ignored.
    if flags & 0x8000 != 0 || flags & 0x7800 != 0 || header[4..6] != [0, 1] {
        return None;
    }
    let (name, end) = read_name(query, 12)?;
    let question = query.get(12..end + 4)?;
    let qtype = u16::from_be_bytes([query[end], query[end + 1]]);
    state.queries.push((name.clone(), qtype));

    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&header[..2]);
    // QR, AA, RD as asked, RA; RCODE filled in below.
    out.extend_from_slice(&(0x8480 | (flags & 0x0100)).to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(question);
    let (mut count, mut rcode) = (0u16, 0u8);
    let mut current = name;
    let mut owner: Option<Vec<u8>> = None;
    for hop in 0..=MAX_HOPS {
        let Some((ttl, records)) = state.names.get(&current) else {
            // NXDOMAIN applies to the last name of the chain (RFC 6604).
            rcode = 3;
            break;
        };
        if let Some(target) = records.iter().find_map(Record::target) {
            let wire = encode_name(target)?;
            push_rr(&mut out, owner.as_deref(), CNAME, *ttl, &wire);
            count += 1;
            if qtype == CNAME || hop == MAX_HOPS {
                break;
            }
            current = key(target);
            owner = Some(wire);
            continue;
        }
        for record in records {
            match record {
                Record::A(ip) if qtype == A || qtype == ANY => {
                    push_rr(&mut out, owner.as_deref(), A, *ttl, &ip.octets());
                }
                Record::Aaaa(ip) if qtype == AAAA || qtype == ANY => {
                    push_rr(&mut out, owner.as_deref(), AAAA, *ttl, &ip.octets());
                }
                _ => continue,
            }
            count += 1;
        }
        break;
    }
    out[3] |= rcode;
    out[6..8].copy_from_slice(&count.to_be_bytes());
    Some(out)
}

/// The offset after the (possibly compressed) name at `pos` of `msg`.
fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        match *msg.get(pos)? {
            0 => return Some(pos + 1),
            len if len & 0xC0 == 0xC0 => return Some(pos + 2),
            len => pos += 1 + usize::from(len),
        }
    }
}

/// A query for `name` of type `qtype` with id `id` (RD set), as a stub resolver sends it.
pub fn query_message(name: &str, qtype: u16, id: u16) -> io::Result<Vec<u8>> {
    let mut query = id.to_be_bytes().to_vec();
    query.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    let wire = encode_name(name)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "invalid DNS name"))?;
    query.extend_from_slice(&wire);
    query.extend_from_slice(&qtype.to_be_bytes());
    query.extend_from_slice(&1u16.to_be_bytes());
    Ok(query)
}

/// An answer to query `id` for `name` giving the one A record `addr` (what a forger
/// racing the real server would send).
pub fn answer_message(name: &str, id: u16, addr: Ipv4Addr, ttl: u32) -> io::Result<Vec<u8>> {
    let mut answer = query_message(name, A, id)?;
    answer[2] = 0x85;
    answer[3] = 0x80;
    answer[7] = 1;
    push_rr(&mut answer, None, A, ttl, &addr.octets());
    Ok(answer)
}

/// The A and AAAA addresses in `reply` (empty when it is malformed or has none).
pub fn addresses(reply: &[u8]) -> Vec<IpAddr> {
    answer_records(reply)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(_, rtype, _, rdata)| match rtype {
            A => <[u8; 4]>::try_from(rdata).ok().map(IpAddr::from),
            AAAA => <[u8; 16]>::try_from(rdata).ok().map(IpAddr::from),
            _ => None,
        })
        .collect()
}

/// Send one query for `name` of type `qtype` (RD set) to `server` from a fresh UDP socket
/// and return the raw reply with the same ID. Times out after 2 s.
pub fn exchange(server: SocketAddr, name: &str, qtype: u16) -> io::Result<Vec<u8>> {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let id = (nanos as u16) ^ NEXT.fetch_add(1, Ordering::Relaxed);
    let query = query_message(name, qtype, id)?;

    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(server)?;
    socket.send(&query)?;
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no DNS reply within 2 s"));
        }
        socket.set_read_timeout(Some(left))?;
        let len = socket.recv(&mut buf)?;
        if len >= 12 && buf[..2] == id.to_be_bytes() && buf[2] & 0x80 != 0 {
            return Ok(buf[..len].to_vec());
        }
    }
}

/// `message` as it goes over TCP: after its length in two bytes (big-endian). Messages here
/// are far shorter than 65,535 bytes.
pub fn over_tcp(message: &[u8]) -> Vec<u8> {
    let len = u16::try_from(message.len()).expect("a DNS message under 64 KiB");
    [&len.to_be_bytes()[..], message].concat()
}

/// [`exchange`] over TCP (the message with its two-byte length). Times out after 2 s.
fn exchange_tcp(server: SocketAddr, name: &str, qtype: u16) -> io::Result<Vec<u8>> {
    use std::io::{Read as _, Write as _};
    let query = query_message(name, qtype, 0x7a7a)?;
    let mut stream = std::net::TcpStream::connect_timeout(&server, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(&over_tcp(&query))?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut reply)?;
    Ok(reply)
}

/// An answer record: the offset of its owner name, its type, TTL and rdata.
type Answer<'a> = (usize, u16, u32, &'a [u8]);

/// The answer records of `reply`; `None` when the reply is malformed.
fn answer_records(reply: &[u8]) -> Option<Vec<Answer<'_>>> {
    let count = u16::from_be_bytes([*reply.get(6)?, *reply.get(7)?]);
    let mut pos = skip_name(reply, 12)? + 4;
    let mut records = Vec::new();
    for _ in 0..count {
        let owner = pos;
        pos = skip_name(reply, pos)?;
        let f = reply.get(pos..pos + 10)?;
        let len = usize::from(u16::from_be_bytes([f[8], f[9]]));
        let rdata = reply.get(pos + 10..pos + 10 + len)?;
        let ttl = u32::from_be_bytes([f[4], f[5], f[6], f[7]]);
        records.push((owner, u16::from_be_bytes([f[0], f[1]]), ttl, rdata));
        pos += 10 + len;
    }
    Some(records)
}

/// Ask `server` for `name` of type `qtype` (1 = A, 28 = AAAA) from a fresh UDP socket, as a
/// stub resolver does; returns the addresses in the answer (A and AAAA rdata), following
/// nothing (the server already chased CNAMEs). Times out after 2 s. NXDOMAIN is an error of
/// kind `NotFound`; a known name without such records gives an empty list.
pub fn lookup(server: SocketAddr, name: &str, qtype: u16) -> io::Result<Vec<IpAddr>> {
    let reply = exchange(server, name, qtype)?;
    match reply[3] & 0x0F {
        0 => {}
        3 => return Err(io::Error::new(io::ErrorKind::NotFound, format!("{name}: NXDOMAIN"))),
        rcode => return Err(io::Error::other(format!("{name}: RCODE {rcode}"))),
    }
    answer_records(&reply)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed DNS reply"))?;
    Ok(addresses(&reply))
}

#[cfg(test)]
#[path = "dns_tests.rs"]
mod tests;
