//! Building a daemon, in the order the pieces need each other: files and listeners, the
//! kernel, the baselines, the sinks and the pipeline, then what an earlier daemon left
//! running, then the workload sources. Every task started here is in one of the two
//! trackers of [`Tasks`], so that stopping waits for all of them.
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, atomic::AtomicBool},
};

use anyhow::{Context as _, bail};
use aya::maps::{MapData, RingBuf};
use chrono::Utc;
use tokio::{net::TcpListener, sync::mpsc, task::JoinHandle};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{RECORDS_QUEUE, report, settings, socket};
use crate::{
    api::state::State,
    baseline::store::Store,
    cluster::sync::Phases,
    config::{Config, OnStop},
    enforce::{self, Enforcer},
    hub::Hub,
    judge::{Judge, PhaseSummary},
    kernel::{Kernel, LoadOptions, mounts, reader::ReaderStats},
    pipeline::{Pipeline, PipelineStats},
    sinks::{
        alerts::{AlertRouter, ReceiverStats},
        audit::{self, AuditStore, writer::AuditStats},
        export::{ExportMetrics, Exports},
        metrics::{self, EventMetrics},
    },
    workloads::{
        Tracker,
        kubernetes::{self, KubeStats},
        local::LocalSource,
        saved::SavedRuns,
    },
};

/// Where the daemon's tasks are tracked.
pub(super) struct Tasks {
    /// Cancelled to stop: the sources, servers and loops watch it.
    pub shutdown: CancellationToken,
    /// The workload sources' tasks (one per running investigation and watch): waited for
    /// first, so every investigation has ended and its events are in before the data path
    /// stops.
    pub workloads: TaskTracker,
    /// Every other task: the data path, sinks, servers and loops. Those that must stop in
    /// order are also awaited by their handles.
    pub daemon: TaskTracker,
}

/// The data path's tasks, stopped in this order.
pub(super) struct DataPath {
    pub reader: JoinHandle<()>,
    pub pipeline: JoinHandle<()>,
    /// Stops the audit writer once it stored what is queued.
    pub audit_cancel: CancellationToken,
    pub audit: Option<JoinHandle<()>>,
    pub exports: Option<Exports>,
}

/// What serving needs: the state the control socket and HTTP answer from, and each
/// component's counters to register.
pub(super) struct Built {
    pub tasks: Tasks,
    pub data: DataPath,
    pub state: Arc<State>,
    pub socket: PathBuf,
    /// Held for the daemon's lifetime.
    pub _lock: std::fs::File,
    pub http_listener: TcpListener,
    pub http_address: SocketAddr,
    pub token: Option<String>,
    /// The local investigations' cgroup parent, removed at exit when empty.
    pub local_parent: PathBuf,
    pub keep: bool,
    pub ready: Arc<AtomicBool>,
    pub phases: Option<Arc<Phases>>,
    pub summaries: Arc<Mutex<Vec<PhaseSummary>>>,
    pub event_metrics: EventMetrics,
    pub receivers: Vec<Arc<ReceiverStats>>,
    pub audit_stats: Option<Arc<AuditStats>>,
    pub kube_stats: Option<Arc<KubeStats>>,
    pub export_metrics: ExportMetrics,
    pub audit_path: Option<PathBuf>,
}

/// The state directory, private to the daemon (baselines, phase modes, the audit trail).
fn state_dir(config: &Config) -> anyhow::Result<()> {
    let dir = &config.daemon.state_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot make state directory {}", dir.display()))?;
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .with_context(|| format!("cannot make {} private", dir.display()))
}

/// The sinks fed by the hub: alerts, the audit store and its exports, the event metrics.
struct Sinks {
    receivers: Vec<Arc<ReceiverStats>>,
    audit_path: Option<PathBuf>,
    audit_stats: Option<Arc<AuditStats>>,
    audit_cancel: CancellationToken,
    audit: Option<JoinHandle<()>>,
    exports: Option<Exports>,
    export_metrics: ExportMetrics,
    event_metrics: EventMetrics,
}

fn start_sinks(
    config: &Config,
    hub: &Hub,
    resuming: &[(u32, String)],
    tasks: &Tasks,
) -> anyhow::Result<Sinks> {
    let mut alerts_config = config.alerts.clone();
    if alerts_config.node.is_none() {
        alerts_config.node = config.node_name();
    }
    let alerts = AlertRouter::new(&alerts_config).context("cannot set up alert routing")?;
    let receivers = alerts.stats();
    if !receivers.is_empty() {
        tracing::info!(node = alerts.node(), receivers = receivers.len(), "alert routing on");
    }
    tasks.daemon.spawn(alerts.run(hub.add_sink("alerts", 16 * 1024), tasks.shutdown.clone()));
    let audit_cancel = CancellationToken::new();
    let (audit_path, audit_stats, audit) = if config.audit.enabled {
        let path = config.audit_path();
        let store = AuditStore::open_resuming(&path, &config.audit, resuming)
            .with_context(|| format!("cannot open the audit store {}", path.display()))?;
        let stats = Arc::new(AuditStats::default());
        let task = tasks.daemon.spawn(audit::writer::run_writer(
            store,
            hub.add_sink("audit", config.audit.queue),
            stats.clone(),
            audit_cancel.clone(),
        ));
        tracing::info!(path = %path.display(), "audit store open");
        (Some(path), Some(stats), Some(task))
    } else {
        tracing::warn!("audit store disabled (audit.enabled = false): no forensic trail is kept");
        (None, None, None)
    };
    let export_metrics = ExportMetrics::default();
    let exports = match audit_path.as_deref().filter(|_| !config.export.is_empty()) {
        Some(audit) => {
            let node = config.export_node().unwrap_or_else(|| "unknown".into());
            Some(Exports::start(&config.export, audit, &node, &export_metrics)?)
        }
        None => None,
    };
    let event_metrics = EventMetrics::new();
    tasks.daemon.spawn(metrics::run_sink(
        event_metrics.clone(),
        hub.add_sink("metrics", super::METRICS_QUEUE),
    ));
    Ok(Sinks {
        receivers,
        audit_path,
        audit_stats,
        audit_cancel,
        audit,
        exports,
        export_metrics,
        event_metrics,
    })
}

/// The baselines and phase modes, as the configuration says to judge them.
fn open_judge(config: &Config, cluster_phases: bool) -> anyhow::Result<Judge> {
    let store = Store::open(&config.daemon.state_dir)?;
    let (mut judge, problems) = Judge::open(store).context("cannot load the baselines")?;
    judge.set_fail_closed(config.enforcement.fail_closed);
    judge.set_caps(config.baseline.clone());
    if cluster_phases {
        judge.bind_cluster();
    }
    config.warn_policy_shortfalls();
    for problem in problems {
        tracing::error!(problem = %problem, "baseline refused at start");
    }
    Ok(judge)
}

/// The kernel as loaded: its programs and maps, the ring buffer for the reader, the names of
/// the attached programs.
struct Loaded {
    kernel: Arc<Mutex<Kernel>>,
    ring: RingBuf<MapData>,
    probes: Vec<String>,
}

/// The programs and maps, loaded and attached (or adopted from an earlier daemon), with the
/// ring buffer taken out for the reader and the names of the attached programs.
fn load_kernel(
    config: &Config,
    root_cgroup: &Path,
    local_parent: &Path,
    kube_parent: &Path,
) -> anyhow::Result<Loaded> {
    let kc = &config.kernel;
    let mut egress_cgroups = vec![local_parent.to_path_buf()];
    if config.kubernetes.enabled {
        egress_cgroups.push(kubernetes::egress_root(&config.kubernetes, kube_parent));
    }
    let mut kernel = Kernel::load(&LoadOptions {
        ring_buffer_bytes: kc.ring_buffer_bytes,
        btf_path: kc.btf_path.clone(),
        daemon_tgid: std::process::id(),
        root_cgroup: root_cgroup.to_path_buf(),
        egress_cgroups,
        limits: settings::limits(config),
        pin_dir: kc.pin_dir.clone(),
        bpffs: kc.bpffs.clone(),
    })?;
    for missing in &kernel.missing {
        tracing::warn!(what = %missing, "a kernel hook is missing");
    }
    report::report_generation(&kernel);
    let probes = kernel.attached.clone();
    let ring = kernel.take_ring().context("ring buffer already taken")?;
    Ok(Loaded { kernel: Arc::new(Mutex::new(kernel)), ring, probes })
}

pub(super) async fn build(config: &Config) -> anyhow::Result<Built> {
    let socket = config.daemon.socket.clone();
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))?;
    }
    let lock = socket::lock(&socket)?;
    state_dir(config)?;
    let http_listener = TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen on {} (http.listen)", config.http.listen))?;
    let token = config.http.token()?;
    let http_address = http_listener.local_addr()?;

    let kc = &config.kernel;
    if !kc.btf_path.exists() {
        bail!(
            "kernel BTF not found at {}: paddock needs a kernel built with CONFIG_DEBUG_INFO_BTF=y",
            kc.btf_path.display()
        );
    }
    let cgroup2 = mounts::cgroup2(&kc.mountinfo_path)?;
    if mounts::ensure_mounted("tracefs", &kc.tracefs, &kc.mountinfo_path)? {
        tracing::info!(path = %kc.tracefs.display(), "mounted tracefs");
    }
    if mounts::ensure_mounted("bpf", &kc.bpffs, &kc.mountinfo_path)? {
        tracing::info!(path = %kc.bpffs.display(), "mounted bpffs");
    }

    let tasks = Tasks {
        shutdown: CancellationToken::new(),
        workloads: TaskTracker::new(),
        daemon: TaskTracker::new(),
    };
    let keep = config.daemon.on_stop == OnStop::KeepEnforcing;
    let local_parent = cgroup2.mount_point.join(&config.local.cgroup_parent);
    let local = LocalSource::new(
        local_parent.clone(),
        tasks.shutdown.clone(),
        tasks.workloads.clone(),
        keep,
    )
    .with_context(|| format!("cannot prepare cgroup {}", local_parent.display()))?;
    let pids = settings::pids_for(config, &cgroup2.mount_point);
    let local = local.with_pids(pids.clone());

    let kube_parent = cgroup2.mount_point.join(&config.kubernetes.cgroup_parent);
    let Loaded { kernel, ring, probes } =
        load_kernel(config, &cgroup2.mount_point, &local_parent, &kube_parent)?;

    let saved = SavedRuns::open(&config.daemon.state_dir)?;
    let (to_adopt, unreadable) = saved.load()?;
    for problem in unreadable {
        tracing::error!(%problem, "a saved investigation cannot be adopted");
    }
    let cluster_phases = config.kubernetes.enabled
        && config.kubernetes.phases == kubernetes::config::PhaseHome::Cluster;
    let judge = open_judge(config, cluster_phases)?;
    let (kill_tx, kill_rx) = mpsc::unbounded_channel();
    let enforcer = Enforcer::new(kernel.clone(), kill_tx, config.enforcement.fail_closed);
    let outcomes = enforcer.outcomes.clone();
    tasks.daemon.spawn(enforce::kill::run(kill_rx, Some(kernel.clone())));

    let hub = Hub::new(config.daemon.recent_events);
    let reader_stats = Arc::new(ReaderStats::default());
    let pipeline_stats = Arc::new(PipelineStats::default());
    let (records_tx, records_rx) = mpsc::channel(RECORDS_QUEUE);
    let (lifecycle_tx, lifecycle_rx) = mpsc::channel(1024);
    let (reader, flush) =
        crate::kernel::reader::Reader::new(ring, records_tx.clone(), reader_stats.clone())?;
    let resuming: Vec<(u32, String)> =
        to_adopt.iter().map(|a| (a.instance, a.id.to_string())).collect();
    let sinks = start_sinks(config, &hub, &resuming, &tasks)?;
    let summaries = Arc::default();
    let mut pipeline = Pipeline::new(
        records_rx,
        lifecycle_rx,
        hub.clone(),
        pipeline_stats.clone(),
        judge,
        enforcer,
        Arc::clone(&summaries),
    );
    pipeline
        .enforce_all()
        .map_err(anyhow::Error::msg)
        .context("cannot load the phases' policies into the kernel")?;
    let pipeline_task = tasks.daemon.spawn(pipeline.run());

    // Adopt what an earlier daemon left running, before the ring buffer is read: records
    // the kernel kept for them meanwhile are theirs.
    let tracker = Arc::new(
        Tracker::new(kernel.clone(), lifecycle_tx.clone(), flush, cgroup2, saved)
            .keeping_on_stop(keep),
    );
    let adopted = tracker.adopt(to_adopt).await;
    for refused in &adopted.refused {
        tracing::error!(%refused, "a saved investigation cannot be adopted");
    }
    if !adopted.stale.is_empty() {
        tracing::warn!(instances = ?adopted.stale, "the kernel tracked investigations no saved state names: untracked");
    }
    // Every running investigation is in this generation's maps: earlier programs go.
    let retired = kernel.lock().unwrap_or_else(|e| e.into_inner()).retire_previous();
    report::report_retired(&retired);
    tracker.settle();
    for ring in retired.rings {
        crate::kernel::reader::drain_once(ring, &records_tx, &reader_stats).await;
    }
    drop(records_tx);
    let reader_task = tasks.daemon.spawn(reader.run(tasks.shutdown.clone()));
    tracker.judge_doomed(&adopted.doomed).await;
    let adopted_dirs: Vec<PathBuf> = adopted.local.iter().map(|a| a.cgroup.clone()).collect();
    if let Err(e) = local.sweep(&adopted_dirs) {
        tracing::warn!(cgroup = %local_parent.display(), error = %e, "cannot look for stale cgroups");
    }
    for active in adopted.local {
        local.resume(&tracker, active);
    }
    // Not ready until the workload sources have synced (the pod list, when enabled).
    let ready = Arc::new(AtomicBool::new(!config.kubernetes.enabled));
    let mut receivers = sinks.receivers;
    let mut kube_stats = None;
    if config.kubernetes.enabled {
        let started = kubernetes::start(
            &config.kubernetes,
            kubernetes::Shared {
                tracker: tracker.clone(),
                hub: hub.clone(),
                ready: ready.clone(),
                parent: kube_parent,
                keep_on_stop: keep,
                pids,
            },
            tasks.shutdown.clone(),
            tasks.workloads.clone(),
            &tasks.daemon,
        )
        .await?;
        receivers.push(started.deliveries);
        kube_stats = Some(started.stats);
    }
    let phases = if cluster_phases {
        Some(
            crate::cluster::start(
                &config.kubernetes,
                lifecycle_tx,
                config.baseline.clone(),
                tasks.shutdown.clone(),
                &tasks.workloads,
            )
            .await?,
        )
    } else {
        drop(lifecycle_tx);
        None
    };
    let admin_gid = socket::group_id(&config.daemon.socket_group);
    if admin_gid.is_none() {
        tracing::warn!(
            group = %config.daemon.socket_group,
            "the control socket's group does not exist: only root may use the socket"
        );
    }
    let state = Arc::new(State {
        tracker,
        hub,
        local,
        outcomes,
        kernel,
        reader_stats,
        pipeline_stats,
        started: Utc::now(),
        probes,
        http_address,
        audit: sinks.audit_path.clone().zip(sinks.audit_stats.clone()),
        admin_gid,
        refusals: Arc::default(),
        phases: phases.clone(),
    });
    Ok(Built {
        tasks,
        data: DataPath {
            reader: reader_task,
            pipeline: pipeline_task,
            audit_cancel: sinks.audit_cancel,
            audit: sinks.audit,
            exports: sinks.exports,
        },
        state,
        socket,
        _lock: lock,
        http_listener,
        http_address,
        token,
        local_parent,
        keep,
        ready,
        phases,
        summaries,
        event_metrics: sinks.event_metrics,
        receivers,
        audit_stats: sinks.audit_stats,
        kube_stats,
        export_metrics: sinks.export_metrics,
        audit_path: sinks.audit_path,
    })
}
