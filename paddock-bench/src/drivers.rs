//! Drivers for `cargo xtask bench pipeline`: `paddock-bench pipeline` and `audit-query`.
//!
//! `pipeline` pushes synthetic kernel records, byte for byte what the probes write,
//! through the daemon's own data path at a fixed rate, on one CPU: a bounded "ring" the
//! size of the kernel's ring buffer (a full ring loses the record, as the kernel's does),
//! decode, attribution, the judge (a phase in flag mode, with a learned baseline), the hub,
//! and its sinks (metrics, alerts, and the audit store). It prints one JSON line of what
//! happened. `audit-query` times one-page queries on an investigation of a million
//! events.
use std::{
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use agent_common::event::{
    COMM_LEN, ConnectRecord, ExecRecord, Header, KIND_CONNECT, KIND_EXEC, KIND_OPEN, OP_CONNECT4,
    OpenRecord, PATH_LEN,
};
use anyhow::Context as _;
use chrono::Utc;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use agent_daemon::{
    baseline::{Baseline, Mode, Set},
    enforce::{Enforce, KillOrder},
    hub::Hub,
    identity::Phase,
    judge::Judge,
    kernel::{
        SlotCounters, TrackError,
        decode::{decode, record_bytes as bytes},
        reader::FromKernel,
    },
    lifecycle::{Investigation, Lifecycle, admin::AdminRequest},
    pipeline::{Pipeline, PipelineStats},
    sinks::{
        alerts::{AlertRouter, AlertsConfig},
        audit::{AuditConfig, AuditStore, writer::AuditStats},
        metrics::{self, EventMetrics},
    },
};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Ring and decode only: the baseline the other stages are compared with.
    Decode,
    /// Decode, attribution, judge, hub, metrics and alerts sinks.
    Pipeline,
    /// All of it, with the audit store.
    Full,
}

#[derive(clap::Args, Debug)]
pub struct PipelineArgs {
    /// Records per second offered to the ring.
    #[arg(long)]
    pub rate: u64,
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    #[arg(long, value_enum, default_value = "full")]
    pub stage: Stage,
    /// The emulated ring buffer's size (the daemon's default is 4 MiB).
    #[arg(long, default_value_t = 4 << 20)]
    pub ring_bytes: usize,
    /// The CPU the whole process is pinned to.
    #[arg(long, default_value_t = 0)]
    pub cpu: usize,
}

/// Pin this process (and every thread it starts from now on) to `cpu`.
fn pin(cpu: usize) -> anyhow::Result<()> {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error())
                .context(format!("cannot pin to CPU {cpu}"));
        }
    }
    Ok(())
}

fn fill(dst: &mut [u8], text: &str) {
    dst[..text.len()].copy_from_slice(text.as_bytes());
}

/// The records of one investigation: 85% reads of 977 files, 10% execs, 5% connects.
fn templates(slot: u16, instance: u32) -> Vec<Arc<Vec<u8>>> {
    let header = |kind, pid: u32| {
        let mut comm = [0u8; COMM_LEN];
        fill(&mut comm, "agent");
        Header {
            ktime_ns: 0,
            cgroup_id: 4242,
            kind,
            slot,
            phase: Phase::ReadOnly.kernel_id(),
            _pad: 0,
            instance,
            pid,
            tgid: pid,
            ppid: 1000,
            uid: 1000,
            gid: 1000,
            comm,
        }
    };
    (0..1000u32)
        .map(|i| {
            let pid = 1001 + i % 7;
            let record = match i % 20 {
                0 | 10 => {
                    // SAFETY: all-zero is a valid `ExecRecord` (plain integers and arrays).
                    let mut r: ExecRecord = unsafe { std::mem::zeroed() };
                    r.header = header(KIND_EXEC, pid);
                    fill(&mut r.path, "/usr/bin/cat");
                    let args = format!("cat\0/srv/data/file-{}.txt\0", i % 977);
                    fill(&mut r.args, &args);
                    r.argc = 2;
                    r.args_len = args.len() as u32;
                    bytes(&r)
                }
                5 => {
                    // SAFETY: as above.
                    let mut r: ConnectRecord = unsafe { std::mem::zeroed() };
                    r.header = header(KIND_CONNECT, pid);
                    r.op = OP_CONNECT4;
                    r.sock_type = libc::SOCK_STREAM as u32;
                    r.protocol = libc::IPPROTO_TCP as u32;
                    r.port = 443;
                    r.family = libc::AF_INET as u16;
                    r.addr[..4].copy_from_slice(&[10, 0, 0, 9]);
                    bytes(&r)
                }
                _ => {
                    let mut path = [0u8; PATH_LEN];
                    fill(&mut path, &format!("/srv/data/file-{}.txt", i % 977));
                    let r = OpenRecord {
                        header: header(KIND_OPEN, pid),
                        flags: libc::O_RDONLY as u32,
                        fmode: 1,
                        via: 0,
                        status: 0,
                        path,
                    };
                    bytes(&r)
                }
            };
            Arc::new(record)
        })
        .collect()
}

fn investigation(slot: u16, instance: u32) -> Investigation {
    Investigation {
        slot,
        instance,
        id: format!("bench-{instance}").parse().expect("a valid id"),
        phase: Phase::ReadOnly,
        agent: "bench".into(),
        source: "bench",
        pod: None,
        cgroup: format!("/bench/{instance}"),
        dir: PathBuf::from(format!("/nonexistent/bench/{instance}")),
        started: Utc::now(),
        resumed: false,
        doomed: false,
    }
}

/// Peak resident set size of this process, in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn cpu_seconds() -> f64 {
    // SAFETY: `rusage` is plain integers: all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

/// The bench's enforcement: no kernel behind the data path, so policies go nowhere; the
/// phase flags (no verdict kills), so no kill order comes.
struct NoKernel;

impl Enforce for NoKernel {
    fn apply(&self, _: Phase, _: Mode, _: &Baseline) -> Result<Vec<Set>, TrackError> {
        Ok(Vec::new())
    }

    fn kill(&self, order: KillOrder) {
        eprintln!("paddock-bench: a kill order in a phase that flags: {order:?}");
    }
}

pub fn pipeline(args: PipelineArgs) -> anyhow::Result<i32> {
    pin(args.cpu)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(run_pipeline(&args))?;
    println!("{report}");
    Ok(0)
}

async fn run_pipeline(args: &PipelineArgs) -> anyhow::Result<serde_json::Value> {
    let dir = tempfile::Builder::new().prefix("paddock-bench-").tempdir()?;
    let (records_tx, records_rx) = mpsc::channel::<FromKernel>(64 * 1024);
    let (lifecycle_tx, lifecycle_rx) = mpsc::channel(1024);
    let hub = Hub::new(4096);
    let shutdown = CancellationToken::new();
    let pipeline_stats = Arc::new(PipelineStats::default());
    let audit_stats = Arc::new(AuditStats::default());
    let mut tasks = Vec::new();
    if args.stage != Stage::Decode {
        let alerts = AlertRouter::new(&AlertsConfig::default())?;
        tasks.push(tokio::spawn(alerts.run(hub.add_sink("alerts", 16 * 1024), shutdown.clone())));
        let event_metrics = EventMetrics::new();
        tasks.push(tokio::spawn(metrics::run_sink(
            event_metrics,
            hub.add_sink("metrics", agent_daemon::daemon::METRICS_QUEUE),
        )));
        if args.stage == Stage::Full {
            let config = AuditConfig::default();
            let store = AuditStore::open(&dir.path().join("audit.db"), &config)?;
            tasks.push(tokio::spawn(agent_daemon::sinks::audit::writer::run_writer(
                store,
                hub.add_sink("audit", agent_daemon::sinks::audit::AuditConfig::default().queue),
                audit_stats.clone(),
                shutdown.clone(),
            )));
        }
        let (judge, _) = Judge::open(agent_daemon::baseline::store::Store::open(dir.path())?)?;
        let pipeline = Pipeline::new(
            records_rx,
            lifecycle_rx,
            hub.clone(),
            pipeline_stats.clone(),
            judge,
            NoKernel,
            Arc::default(),
        );
        tasks.push(tokio::spawn(pipeline.run()));
        // Learn: one investigation does the whole mix once, then the phase flags.
        lifecycle_tx.send(Lifecycle::Begin(investigation(1, 1))).await?;
        for record in templates(1, 1) {
            records_tx.send(FromKernel::Record(decode(&record)?)).await?;
        }
        barrier(&records_tx).await;
        let (done, ended) = oneshot::channel();
        let counters = SlotCounters::default();
        let emptied_at = Utc::now();
        lifecycle_tx
            .send(Lifecycle::End { slot: 1, instance: 1, counters, emptied_at, done })
            .await?;
        ended.await?;
        let (reply, answer) = oneshot::channel();
        let set = AdminRequest::SetMode { phase: Phase::ReadOnly, mode: Mode::Flag };
        lifecycle_tx.send(Lifecycle::Admin(set, reply)).await?;
        answer.await?.map_err(anyhow::Error::msg)?;
        lifecycle_tx.send(Lifecycle::Begin(investigation(2, 2))).await?;
    } else {
        drop(records_rx);
    }
    let warm_published = hub.published.load(Ordering::Relaxed);
    let warm_stored = wait_stored(&audit_stats, warm_published, args.stage).await;

    // The ring: as many records as the kernel's buffer would hold (each record plus the
    // ring's 8-byte header, rounded to 8).
    let flood = templates(2, 2);
    let average =
        flood.iter().map(|r| (r.len() + 8).next_multiple_of(8)).sum::<usize>() / flood.len();
    let (ring_tx, ring_rx) =
        std::sync::mpsc::sync_channel::<Arc<Vec<u8>>>(args.ring_bytes / average);
    let (rate, seconds) = (args.rate, args.seconds);
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let generator = std::thread::spawn(move || {
        let (mut sent, mut lost) = (0u64, 0u64);
        let total = rate * seconds;
        let start = Instant::now();
        while sent + lost < total {
            let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
            while sent + lost < due {
                let record = flood[((sent + lost) % flood.len() as u64) as usize].clone();
                match ring_tx.try_send(record) {
                    Ok(()) => sent += 1,
                    Err(_) => lost += 1,
                }
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        (sent, lost)
    });
    let decode_only = args.stage == Stage::Decode;
    let out = records_tx.clone();
    let reader = std::thread::spawn(move || {
        let (mut read, mut malformed) = (0u64, 0u64);
        while let Ok(first) = ring_rx.recv() {
            let mut batch = vec![first];
            while batch.len() < 4096 {
                match ring_rx.try_recv() {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            for bytes in batch {
                match decode(&bytes) {
                    Ok(record) => {
                        read += 1;
                        if !decode_only && out.blocking_send(FromKernel::Record(record)).is_err() {
                            return (read, malformed);
                        }
                    }
                    Err(_) => malformed += 1,
                }
            }
        }
        (read, malformed)
    });
    let (sent, lost) =
        tokio::task::spawn_blocking(move || generator.join()).await?.expect("generator");
    let offered_for = started.elapsed();
    let (read, malformed) =
        tokio::task::spawn_blocking(move || reader.join()).await?.expect("reader");
    if !decode_only {
        barrier(&records_tx).await;
    }
    let published = hub.published.load(Ordering::Relaxed);
    let stored = wait_stored(&audit_stats, published, args.stage).await;
    let drained_after = started.elapsed().saturating_sub(offered_for);
    let cpu = cpu_seconds() - cpu_before;
    let sink_drops: u64 = hub.sink_drops().iter().map(|(_, n)| n).sum();
    shutdown.cancel();
    drop(lifecycle_tx);
    drop(records_tx);
    Ok(json!({
        "stage": format!("{:?}", args.stage).to_lowercase(),
        "rate": rate,
        "seconds": seconds,
        "offered": rate * seconds,
        "ring_records": args.ring_bytes / average,
        "lost": lost,
        "sent": sent,
        "decoded": read,
        "malformed": malformed,
        "unattributed": pipeline_stats.unattributed.load(Ordering::Relaxed),
        "published": published - warm_published,
        "sink_drops": sink_drops,
        "stored": stored.saturating_sub(warm_stored),
        "drain_ms": drained_after.as_millis() as u64,
        "cpu_seconds": cpu,
        "peak_rss_kib": peak_rss_kib(),
    }))
}

/// Wait until everything sent before has gone through the pipeline.
async fn barrier(records: &mpsc::Sender<FromKernel>) {
    let (ack, done) = oneshot::channel();
    if records.send(FromKernel::Barrier(ack)).await.is_ok() {
        let _ = done.await;
    }
}

/// Wait (at most 30 s) until the audit store holds `published` events; what it holds.
async fn wait_stored(stats: &AuditStats, published: u64, stage: Stage) -> u64 {
    if stage != Stage::Full {
        return 0;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stored = stats.stored.load(Ordering::Relaxed);
        if stored + stats.failed.load(Ordering::Relaxed) >= published || Instant::now() > deadline {
            return stored;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    /// Events of the investigation queried.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
}

/// Fill the store at `path` with `events` events of `investigations` investigations taking
/// turns, as decoded from kernel records and stored by the real writer.
pub fn fill_store(path: &std::path::Path, events: u64, investigations: u32) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let store = AuditStore::open(path, &AuditConfig { max_bytes: 0, ..Default::default() })?;
        let (tx, rx) = mpsc::channel(64 * 1024);
        let stats = Arc::new(AuditStats::default());
        let writer = tokio::spawn(agent_daemon::sinks::audit::writer::run_writer(
            store,
            rx,
            stats.clone(),
            CancellationToken::new(),
        ));
        let mut sources: Vec<_> = (1..=investigations.max(1))
            .map(|i| {
                let slot = u16::try_from(i).unwrap_or(u16::MAX);
                let attribution = agent_daemon::pipeline::Attributor::new(investigation(slot, i));
                (attribution, templates(slot, i).into_iter().cycle())
            })
            .collect();
        let mut sent = 0;
        'fill: loop {
            for (attribution, records) in &mut sources {
                let record = decode(&records.next().expect("cycle"))?;
                if let Some(event) = attribution.event(record) {
                    tx.send(Arc::new(event)).await?;
                }
                sent += 1;
                if sent >= events {
                    break 'fill;
                }
            }
        }
        drop(tx);
        writer.await?;
        anyhow::Ok(())
    })
}

/// Fill a store with `events` events of one investigation (through the real writer), then
/// time one-page queries on it.
pub fn audit_query(args: QueryArgs) -> anyhow::Result<i32> {
    let dir = tempfile::Builder::new().prefix("paddock-bench-").tempdir()?;
    let path = dir.path().join("audit.db");
    let started = Instant::now();
    fill_store(&path, args.events, 1)?;
    let filled = started.elapsed();
    let store = AuditStore::open_read_only(&path)?;
    let id = "bench-1".parse()?;
    let time = |cursor: Option<&str>, kind: Option<&str>| -> anyhow::Result<f64> {
        let filter = agent_daemon::sinks::audit::EventFilter {
            kind: kind.map(str::to_owned),
            ..Default::default()
        };
        let cursor = cursor.map(str::parse).transpose()?;
        let mut times = Vec::new();
        for _ in 0..21 {
            let start = Instant::now();
            let page = store.events(&id, &filter, cursor, 100)?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
            anyhow::ensure!(page.events.len() == 100, "a page of 100");
        }
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    };
    let middle = (args.events / 2).to_string();
    let report = json!({
        "events": args.events,
        "fill_seconds": filled.as_secs_f64(),
        "file_mib": std::fs::metadata(&path).map(|m| m.len() >> 20).unwrap_or(0),
        "first_page_ms": time(None, None)?,
        "middle_page_ms": time(Some(&middle), None)?,
        "middle_page_of_execs_ms": time(Some(&middle), Some("exec"))?,
    });
    println!("{report}");
    Ok(0)
}
