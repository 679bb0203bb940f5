//! A tiny HTTP/1.1 server for the delivery tests: it records each request and answers with
//! the status its script gives for that request's number.
use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};

#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// Never answer: the client times out.
pub const HANG: u16 = 0;

pub struct Server {
    pub addr: SocketAddr,
    pub requests: mpsc::UnboundedReceiver<Request>,
    hits: Arc<AtomicUsize>,
}

impl Server {
    /// Serve on a free loopback port.
    pub async fn start(script: impl Fn(usize) -> u16 + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Server::on(listener, script)
    }

    pub fn on(
        listener: TcpListener,
        script: impl Fn(usize) -> u16 + Send + Sync + 'static,
    ) -> Server {
        let addr = listener.local_addr().unwrap();
        let (tx, requests) = mpsc::unbounded_channel();
        let hits = Arc::new(AtomicUsize::new(0));
        let (script, counter) = (Arc::new(script), hits.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (tx, script, counter) = (tx.clone(), script.clone(), counter.clone());
                tokio::spawn(async move {
                    if let Some(request) = read_request(stream, &*script, &counter).await {
                        let _ = tx.send(request);
                    }
                });
            }
        });
        Server { addr, requests, hits }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests answered or being answered so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub async fn next(&mut self) -> Request {
        tokio::time::timeout(std::time::Duration::from_secs(10), self.requests.recv())
            .await
            .expect("a request within 10 s")
            .expect("server running")
    }
}

async fn read_request(
    mut stream: TcpStream,
    script: &(dyn Fn(usize) -> u16 + Send + Sync),
    hits: &AtomicUsize,
) -> Option<Request> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = data[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let status = script(hits.fetch_add(1, Ordering::SeqCst));
    let request = Request { method, path, headers, body };
    if status == HANG {
        // Hold the connection open until the client gives up.
        let _ = stream.read(&mut chunk).await;
        return Some(request);
    }
    let text = format!("status {status}");
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
    Some(request)
}
