//! Listeners and ports for the tests' egress.
use std::sync::{
    Arc,
    atomic::{AtomicU32, Ordering},
};

/// A TCP listener on loopback that counts accepted connections.
pub struct Listener {
    pub port: u16,
    pub accepted: Arc<AtomicU32>,
}

impl Listener {
    pub fn start() -> Listener {
        Listener::at("127.0.0.1:0".parse().expect("an address"))
    }

    /// A listener on `addr` (port 0: any free port).
    pub fn at(addr: std::net::SocketAddr) -> Listener {
        let listener = std::net::TcpListener::bind(addr).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = Arc::new(AtomicU32::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stream.is_ok() {
                    count.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Listener { port, accepted }
    }
}

/// A UDP port on loopback nobody reads (the datagram only has to be sent).
pub fn udp_port() -> (std::net::UdpSocket, u16) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let port = socket.local_addr().expect("addr").port();
    (socket, port)
}
