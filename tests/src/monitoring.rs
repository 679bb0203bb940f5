//! Real monitoring servers for the output tests, one set per test: Prometheus (the Debian
//! package's `prometheus`) scraping a daemon, Alertmanager (`prometheus-alertmanager`), and a
//! small webhook receiver that records what it is sent and can go down and come back.
use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::Value;

/// A free loopback port (bound and released: the server binds it a moment later).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A child server process, killed and reaped when dropped; its log is kept for failures.
struct Server {
    child: Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn spawn(program: &str, args: &[String], dir: tempfile::TempDir) -> Server {
        let log = dir.path().join("server.log");
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {program} ({e}): `cargo xtask setup` installs it")
            });
        Server { child, log, _dir: dir }
    }

    fn wait_ready(&mut self, url: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if reqwest::blocking::get(url).is_ok_and(|r| r.status().is_success()) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{url}: server exited ({status}):\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "{url} not ready after 30 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Prometheus scraping `target` (`host:port`) every second.
pub struct Prometheus {
    server: Server,
    pub url: String,
}

/// One sample of an instant query: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Prometheus {
    pub fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
                 scrape_configs:\n  - job_name: paddock\n    \
                 static_configs: [{{targets: ['{target}']}}]\n"
            ),
        )
        .expect("write prometheus.yml");
        let port = free_port();
        let args = vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ];
        let mut server = Server::spawn("prometheus", &args, dir);
        let url = format!("http://127.0.0.1:{port}");
        server.wait_ready(&format!("{url}/-/ready"));
        Prometheus { server, url }
    }

    /// An instant query's vector.
    pub fn query(&self, promql: &str) -> Vec<Sample> {
        let response = reqwest::blocking::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", promql)])
            .send()
            .and_then(|r| r.json::<Value>())
            .unwrap_or_else(|e| panic!("query {promql}: {e}"));
        assert_eq!(response["status"], "success", "{promql}: {response}");
        response["data"]["result"]
            .as_array()
            .expect("a vector")
            .iter()
            .map(|s| Sample {
                labels: serde_json::from_value(s["metric"].clone()).expect("labels"),
                value: s["value"][1].as_str().and_then(|v| v.parse().ok()).expect("value"),
            })
            .collect()
    }

    /// Query until `wanted` holds for the result (a scrape is a second away), or panic
    /// with the last result.
    pub fn wait_for(&self, promql: &str, wanted: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let result = self.query(promql);
            if wanted(&result) {
                return result;
            }
            assert!(
                Instant::now() < deadline,
                "{promql}: still {result:?} after 20 s\nprometheus log:\n{}",
                self.server.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The state of its scrape target: `up`, with the last error.
    pub fn target_health(&self) -> String {
        let targets: Value = reqwest::blocking::get(format!("{}/api/v1/targets", self.url))
            .and_then(|r| r.json())
            .expect("targets");
        targets["data"]["activeTargets"].to_string()
    }
}

/// An Alertmanager with one do-nothing receiver: the tests read alerts back from its API.
pub struct Alertmanager {
    _server: Server,
    pub url: String,
}

impl Alertmanager {
    pub fn start() -> Alertmanager {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route: {receiver: 'null', group_wait: 0s, group_interval: 1s, repeat_interval: 1h}\n\
             receivers: [{name: 'null'}]\n",
        )
        .expect("write alertmanager.yml");
        let port = free_port();
        let args = vec![
            format!("--config.file={}", config.display()),
            format!("--storage.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--cluster.listen-address=".into(),
        ];
        let mut server = Server::spawn("prometheus-alertmanager", &args, dir);
        let url = format!("http://127.0.0.1:{port}");
        server.wait_ready(&format!("{url}/-/ready"));
        Alertmanager { _server: server, url }
    }

    /// The alerts it holds (`GET /api/v2/alerts`).
    pub fn alerts(&self) -> Vec<Value> {
        let alerts: Value = reqwest::blocking::get(format!("{}/api/v2/alerts", self.url))
            .and_then(|r| r.json())
            .expect("alerts");
        alerts.as_array().expect("an array").clone()
    }
}

/// One request a webhook received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// A minimal HTTP/1.1 webhook on a fixed port: answers 200 to every POST and records it.
/// `stop` closes the port (connections are refused); `start_again` opens it again.
pub struct Webhook {
    pub port: u16,
    pub received: Arc<Mutex<Vec<Received>>>,
    stopping: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Webhook {
    pub fn start() -> Webhook {
        let mut hook = Webhook {
            port: free_port(),
            received: Arc::default(),
            stopping: Arc::default(),
            thread: None,
        };
        hook.start_again();
        hook
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    pub fn start_again(&mut self) {
        assert!(self.thread.is_none(), "already listening");
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("bind the webhook port");
        self.stopping.store(false, Ordering::SeqCst);
        let (received, stopping) = (self.received.clone(), self.stopping.clone());
        self.thread = Some(std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(stream) = stream
                    && let Some(request) = serve(stream)
                {
                    received.lock().unwrap().push(request);
                }
            }
        }));
    }

    pub fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stopping.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(("127.0.0.1", self.port)); // wake the accept
            thread.join().expect("webhook thread");
        }
    }

    pub fn bodies(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Read one request (headers, then Content-Length bytes) and answer 200.
fn serve(stream: TcpStream) -> Option<Received> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let mut stream = stream;
    stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").ok()?;
    Some(Received { headers, body })
}

/// `sha256=<hex>` of HMAC-SHA256 over `body` with `secret`, as a receiver checks it
/// (computed with `openssl`, independently of the daemon's code).
pub fn expected_signature(secret: &str, body: &[u8], scratch: &Path) -> String {
    let file = scratch.join("body.json");
    std::fs::write(&file, body).expect("write body");
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", secret, "-r"])
        .arg(&file)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    format!("sha256={}", text.split_whitespace().next().expect("a digest"))
}
