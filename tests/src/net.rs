//! Listeners and ports for the tests' egress.
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A TCP listener on loopback that counts the connections made to it.
pub struct Listener {
    pub port: u16,
    addr: std::net::SocketAddr,
    /// The peers its thread accepted, in order (the tests' own markers among them).
    peers: Arc<Mutex<Vec<std::net::SocketAddr>>>,
    markers: Mutex<HashSet<std::net::SocketAddr>>,
}

impl Listener {
    pub fn start() -> Listener {
        Listener::at("127.0.0.1:0".parse().expect("an address"))
    }

    /// A listener on `addr` (port 0: any free port).
    pub fn at(addr: std::net::SocketAddr) -> Listener {
        let listener = std::net::TcpListener::bind(addr).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let peers = Arc::new(Mutex::new(Vec::new()));
        let accepted = peers.clone();
        std::thread::spawn(move || {
            for peer in listener.incoming().filter_map(|s| s.ok()?.peer_addr().ok()) {
                accepted.lock().expect("peers").push(peer);
            }
        });
        Listener { port: addr.port(), addr, peers, markers: Mutex::default() }
    }

    /// How many connections were made to it before this call. A connect that returned is
    /// queued but maybe not yet accepted by the thread: this connects a marker of its own
    /// and waits until the thread accepted it, so every earlier connection is counted (the
    /// accept queue is in order), and an assertion of 0 is not just early.
    pub fn accepted(&self) -> u32 {
        let marker = std::net::TcpStream::connect(self.addr).expect("connect the marker");
        let me = marker.local_addr().expect("the marker's address");
        let mut markers = self.markers.lock().expect("markers");
        markers.insert(me);
        let marker_at = |peers: &[std::net::SocketAddr]| peers.iter().position(|p| *p == me);
        counted_before(&self.peers, marker_at, |p| !markers.contains(p), &self.addr)
    }
}

/// A unix socket listener at `path` that counts the connections made to it.
pub struct UnixListener {
    pub path: PathBuf,
    /// For each connection its thread accepted, in order: whether it was this process's
    /// own (a marker; the tests' commands are other processes).
    peers: Arc<Mutex<Vec<bool>>>,
    markers: Mutex<usize>,
}

impl UnixListener {
    pub fn at(path: PathBuf) -> UnixListener {
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let peers = Arc::new(Mutex::new(Vec::new()));
        let accepted = peers.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().filter_map(Result::ok) {
                let mine = peer_pid(&stream) == Some(std::process::id());
                accepted.lock().expect("peers").push(mine);
            }
        });
        UnixListener { path, peers, markers: Mutex::default() }
    }

    /// How many connections other processes made to it before this call (see
    /// [`Listener::accepted`]).
    pub fn accepted(&self) -> u32 {
        let mut markers = self.markers.lock().expect("markers");
        let _marker =
            std::os::unix::net::UnixStream::connect(&self.path).expect("connect the marker");
        *markers += 1;
        // This call's marker is the latest of this process's connections.
        let nth = *markers - 1;
        let marker_at = |peers: &[bool]| {
            peers.iter().enumerate().filter(|(_, mine)| **mine).nth(nth).map(|(at, _)| at)
        };
        counted_before(&self.peers, marker_at, |mine| !mine, &self.path.display())
    }
}

/// The connections before the marker (found by `marker_at`) that `counts` counts, once the
/// listener's thread accepted the marker.
fn counted_before<P>(
    peers: &Mutex<Vec<P>>,
    marker_at: impl Fn(&[P]) -> Option<usize>,
    counts: impl Fn(&P) -> bool,
    at: &dyn std::fmt::Display,
) -> u32 {
    crate::wait::eventually(
        Duration::from_secs(10),
        Duration::from_millis(5),
        || {
            let peers = peers.lock().expect("peers");
            let marker = marker_at(&peers).ok_or(())?;
            let counted = peers[..marker].iter().filter(|p| counts(p)).count();
            Ok(u32::try_from(counted).expect("fewer than 4 billion connections"))
        },
        |()| format!("the listener at {at} never accepted the test's marker"),
    )
}

/// The pid of a unix socket's peer, as it was when it connected.
fn peer_pid(stream: &std::os::unix::net::UnixStream) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes and `len` is `cred`'s size; the
    // descriptor is the stream's, open for the call.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    (rc == 0).then(|| u32::try_from(cred.pid).ok()).flatten()
}

/// A UDP port on loopback nobody reads (the datagram only has to be sent).
pub fn udp_port() -> (std::net::UdpSocket, u16) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let port = socket.local_addr().expect("addr").port();
    (socket, port)
}

#[cfg(test)]
mod tests {
    use super::Listener;

    #[test]
    fn every_connection_made_is_counted_and_the_markers_never() {
        let listener = Listener::start();
        assert_eq!(listener.accepted(), 0);
        let addr = ("127.0.0.1", listener.port);
        let open: Vec<_> = (0..3).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
        // Asked at once after the connects returned: the accepting thread may not have run.
        assert_eq!(listener.accepted(), 3);
        assert_eq!(listener.accepted(), 3);
        drop(open);
        std::net::TcpStream::connect(addr).unwrap();
        assert_eq!(listener.accepted(), 4);
    }
}
