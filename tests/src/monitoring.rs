//! Real monitoring servers for the output tests, one set per test: Prometheus (the Debian
//! package's `prometheus`) scraping a daemon, Alertmanager (`prometheus-alertmanager`), and a
//! small webhook receiver that records what it is sent and can go down and come back.
use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::eventually;

pub use crate::dashboard::{DashboardQuery, dashboard_queries, load_dashboard, substitute};

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

/// The scrape (and rule evaluation) interval of the tests' Prometheus, in seconds.
pub const SCRAPE_INTERVAL_S: u64 = 1;

/// The job name the tests' Prometheus scrapes the daemon as: the README's, which the
/// alerting rules expect.
pub const JOB: &str = "paddock";

/// A Prometheus scraping `target` (`host:port`) every second.
pub struct Prometheus {
    server: Server,
    pub url: String,
    /// What it scrapes (`host:port`): the `instance` label of the daemon's series.
    pub target: String,
}

/// One sample of an instant query: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Prometheus {
    pub fn start(target: &str) -> Prometheus {
        Prometheus::start_with_rules(target, &[])
    }

    /// A Prometheus that also evaluates the alerting rules of `rule_files` (every second).
    pub fn start_with_rules(target: &str, rule_files: &[PathBuf]) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        let rules: String =
            rule_files.iter().map(|f| format!("  - {:?}\n", f.display().to_string())).collect();
        let rules = if rules.is_empty() { String::new() } else { format!("rule_files:\n{rules}") };
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: {SCRAPE_INTERVAL_S}s, evaluation_interval: {SCRAPE_INTERVAL_S}s}}\n\
                 {rules}\
                 scrape_configs:\n  - job_name: {JOB}\n    \
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
        Prometheus { server, url, target: target.to_owned() }
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
        eventually(
            Duration::from_secs(20),
            Duration::from_millis(250),
            || {
                let result = self.query(promql);
                if wanted(&result) { Ok(result) } else { Err(result) }
            },
            |result| {
                format!(
                    "{promql}: still {result:?} after 20 s\nprometheus log:\n{}",
                    self.server.log()
                )
            },
        )
    }

    /// The state of its scrape target: `up`, with the last error.
    pub fn target_health(&self) -> String {
        let targets: Value = reqwest::blocking::get(format!("{}/api/v1/targets", self.url))
            .and_then(|r| r.json())
            .expect("targets");
        targets["data"]["activeTargets"].to_string()
    }
}

impl Prometheus {
    /// `GET /api/v1/<path>`'s `data`.
    fn api(&self, path: &str) -> Value {
        let response: Value = reqwest::blocking::get(format!("{}/api/v1/{path}", self.url))
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("/api/v1/{path}: {e}"));
        assert_eq!(response["status"], "success", "/api/v1/{path}: {response}");
        response["data"].clone()
    }

    /// Every rule it loaded (`/api/v1/rules`), once each has been evaluated (its health is
    /// `unknown` until then; rules are evaluated every second), or as they are after 20 s.
    pub fn evaluated_rules(&self) -> Vec<LoadedRule> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let rules: Vec<LoadedRule> = self.api("rules")["groups"]
                .as_array()
                .expect("groups")
                .iter()
                .flat_map(|g| {
                    g["rules"].as_array().expect("rules").iter().map(move |r| LoadedRule {
                        group: g["name"].as_str().unwrap_or_default().into(),
                        name: r["name"].as_str().unwrap_or_default().into(),
                        health: r["health"].as_str().unwrap_or_default().into(),
                        last_error: r["lastError"].as_str().unwrap_or_default().into(),
                    })
                })
                .collect();
            let evaluated = !rules.is_empty() && rules.iter().all(|r| r.health != "unknown");
            if evaluated || Instant::now() > deadline {
                return rules;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The alerts of its rules that are pending or firing (`/api/v1/alerts`).
    pub fn alerts(&self) -> Vec<Value> {
        self.api("alerts")["alerts"].as_array().expect("alerts").clone()
    }
}

/// A file of `deploy/monitoring/` (the alerting rules, the dashboard).
pub fn monitoring_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .join("deploy/monitoring")
        .join(name)
}

/// A rule as Prometheus reports it.
#[derive(Debug, Clone)]
pub struct LoadedRule {
    pub group: String,
    pub name: String,
    /// `ok`, `err`, or `unknown` (not evaluated yet).
    pub health: String,
    pub last_error: String,
}

/// The alert names of each group of a rules file.
pub fn alerts_in_rules_file(path: &Path) -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file: Value =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let as_array = |v: &Value| v.as_array().cloned().unwrap_or_default();
    as_array(&file["groups"])
        .iter()
        .map(|g| {
            let alerts = as_array(&g["rules"])
                .iter()
                .map(|r| r["alert"].as_str().unwrap_or("(not an alert)").to_owned())
                .collect();
            (g["name"].as_str().unwrap_or_default().to_owned(), alerts)
        })
        .collect()
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
