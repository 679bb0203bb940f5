//! `paddock daemon`: put the pieces together, serve until SIGTERM or SIGINT, take them apart.
use std::{
    fs::File,
    io::{Read as _, Seek as _, Write as _},
    os::unix::{fs::OpenOptionsExt as _, io::AsRawFd as _},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context as _, bail};
use chrono::Utc;
use tokio::{net::UnixListener, signal::unix::SignalKind, sync::mpsc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    api::{control, http, state::State},
    baseline::store::Store,
    config::{Config, OnStop},
    enforce::{self, Enforcer},
    hub::Hub,
    judge::{self, Judge},
    kernel::{
        self, Kernel, LoadOptions,
        metrics::KernelGauges,
        mounts,
        reader::{Reader, ReaderStats},
    },
    metrics::{self, EventMetrics},
    pipeline::{Pipeline, PipelineStats},
    sinks::{
        audit::{self, AuditStore, writer::AuditStats},
        export::{ExportMetrics, Exports},
    },
    workloads::{Tracker, kubernetes, local::LocalSource, saved::SavedRuns},
};

/// Kernel records decoded and waiting for the pipeline (two reader batches, about 2 MiB).
/// Beyond it the reader waits and the kernel's ring buffer (`kernel.ring_buffer_bytes`)
/// holds the rest, compactly; what that cannot hold is lost and counted per investigation.
pub const RECORDS_QUEUE: usize = 8 * 1024;
/// Events waiting for the metrics sink, which only counts them.
pub const METRICS_QUEUE: usize = 16 * 1024;

/// How long a stopping daemon lets exports catch up with the store.
pub const EXPORT_DRAIN: Duration = Duration::from_secs(10);

/// The `[[export]]` tasks, reading the audit store at `audit`.
fn start_exports(
    config: &Config,
    audit: Option<&Path>,
    metrics: &ExportMetrics,
) -> anyhow::Result<Option<Exports>> {
    let Some(audit) = audit.filter(|_| !config.export.is_empty()) else { return Ok(None) };
    let node = config.export_node().unwrap_or_else(|| "unknown".into());
    Ok(Some(Exports::start(&config.export, audit, &node, metrics)?))
}

/// Hold `<socket>.lock` for the daemon's lifetime: one daemon per socket.
fn lock(socket: &Path) -> anyhow::Result<File> {
    let path = PathBuf::from(format!("{}.lock", socket.display()));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(&path)
        .with_context(|| format!("cannot open lock file {}", path.display()))?;
    // SAFETY: a valid fd; LOCK_NB never blocks.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        bail!(
            "another paddock daemon (pid {}) already serves {} (lock {} is held)",
            holder.trim(),
            socket.display(),
            path.display()
        );
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}

/// The id of group `name`, if it exists.
fn group_id(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: a C struct of integers and pointers: all zeroes (null pointers) is valid.
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16 * 1024];
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: getgrnam_r with a zeroed group, a buffer of the size given and an out-pointer;
    // the result borrows from `buf` and `group`, read before they go.
    let rc = unsafe {
        libc::getgrnam_r(name.as_ptr(), &mut group, buf.as_mut_ptr().cast(), buf.len(), &mut found)
    };
    (rc == 0 && !found.is_null()).then_some(group.gr_gid)
}

/// The control socket at `path`, mode 0660, owned by root and `gid` (root's group when there
/// is none). Bound under a temporary name and renamed into place once its mode and owner
/// are set, so nobody can connect in between.
fn control_socket(path: &Path, gid: Option<u32>) -> anyhow::Result<UnixListener> {
    let tmp = PathBuf::from(format!("{}.new-{}", path.display(), std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener =
        UnixListener::bind(&tmp).with_context(|| format!("cannot listen on {}", tmp.display()))?;
    std::os::unix::fs::chown(&tmp, Some(0), Some(gid.unwrap_or(0)))
        .with_context(|| format!("cannot give {} to root and its group", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o660))
        .with_context(|| format!("cannot set the mode of {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot put the control socket at {}", path.display()))?;
    Ok(listener)
}

/// The kernel's share of `[limits]`: the rate as records per CPU and 100 ms window.
fn limits(config: &Config) -> crate::kernel::Limits {
    const WINDOW_NS: u64 = 100_000_000;
    let cpus = aya::util::nr_cpus().map(|n| n.max(1) as u64).unwrap_or(1);
    let per_window = config.limits.records_per_second as u64 * WINDOW_NS / 1_000_000_000;
    crate::kernel::Limits {
        records_per_window: if per_window == 0 {
            0
        } else {
            per_window.div_ceil(cpus).max(1) as u32
        },
        window_ns: WINDOW_NS,
        task_quota: config.limits.processes,
        cgroup_quota: config.limits.cgroups,
        max_tracked_processes: config.kernel.max_tracked_processes,
        policy_maps: crate::kernel::PolicyMaps::of(&config.kernel),
        dns_ttl_s: (config.dns.min_ttl_s, config.dns.max_ttl_s),
    }
}

/// Log records the kernel could not deliver, as they happen (never silent).
async fn report_losses(state: Arc<State>, shutdown: CancellationToken) {
    let mut last = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let lost = state.lost();
        let total: u64 = lost.values().sum();
        if total > last {
            tracing::warn!(lost_since_last_report = total - last, lost_total = total, by_kind = ?lost,
                "kernel ring buffer full: records lost");
            last = total;
        }
    }
}

/// Read each running investigation's counters once a second, for its envelope.
async fn sample(tracker: Arc<Tracker>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => tracker.sample().await,
            () = shutdown.cancelled() => return,
        }
    }
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let socket = config.daemon.socket.clone();
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))?;
    }
    let _lock = lock(&socket)?;
    std::fs::create_dir_all(&config.daemon.state_dir).with_context(|| {
        format!("cannot make state directory {}", config.daemon.state_dir.display())
    })?;
    // Baselines, phase modes and the audit trail are the daemon's alone.
    std::fs::set_permissions(
        &config.daemon.state_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .with_context(|| format!("cannot make {} private", config.daemon.state_dir.display()))?;

    let http_listener = tokio::net::TcpListener::bind(config.http.listen)
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

    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let keep = config.daemon.on_stop == OnStop::KeepEnforcing;
    let local_parent = cgroup2.mount_point.join(&config.local.cgroup_parent);
    let local = LocalSource::new(local_parent.clone(), shutdown.clone(), tasks.clone(), keep)
        .with_context(|| format!("cannot prepare cgroup {}", local_parent.display()))?;
    let pids = pids_for(&config, &cgroup2.mount_point);
    let local = local.with_pids(pids.clone());

    let kube_parent = cgroup2.mount_point.join(&config.kubernetes.cgroup_parent);
    let mut egress_cgroups = vec![local_parent.clone()];
    if config.kubernetes.enabled {
        egress_cgroups.push(kubernetes::egress_root(&config.kubernetes, &kube_parent));
    }
    let mut kernel = Kernel::load(&LoadOptions {
        ring_buffer_bytes: kc.ring_buffer_bytes,
        btf_path: kc.btf_path.clone(),
        daemon_tgid: std::process::id(),
        root_cgroup: cgroup2.mount_point.clone(),
        egress_cgroups,
        limits: limits(&config),
        pin_dir: kc.pin_dir.clone(),
        bpffs: kc.bpffs.clone(),
    })?;
    for missing in &kernel.missing {
        tracing::warn!(what = %missing, "a kernel hook is missing");
    }
    report_generation(&kernel);
    let probes = kernel.attached.clone();
    let ring = kernel.take_ring().context("ring buffer already taken")?;
    let kernel = Arc::new(Mutex::new(kernel));

    let saved = SavedRuns::open(&config.daemon.state_dir)?;
    let (to_adopt, unreadable) = saved.load()?;
    for problem in unreadable {
        tracing::error!(%problem, "a saved investigation cannot be adopted");
    }
    let store = Store::open(&config.daemon.state_dir)?;
    let (mut judge, problems) = Judge::open(store).context("cannot load the baselines")?;
    judge.set_fail_closed(config.enforcement.fail_closed);
    judge.set_caps(config.baseline.clone());
    let cluster_phases = config.kubernetes.enabled
        && config.kubernetes.phases == kubernetes::config::PhaseHome::Cluster;
    if cluster_phases {
        judge.bind_cluster();
    }
    config.warn_policy_shortfalls();
    for problem in problems {
        tracing::error!(problem = %problem, "baseline refused at start");
    }
    let (kill_tx, kill_rx) = mpsc::unbounded_channel();
    let enforcer = Enforcer::new(kernel.clone(), kill_tx, config.enforcement.fail_closed);
    let outcomes = enforcer.outcomes.clone();
    tokio::spawn(enforce::kill::run(kill_rx, Some(kernel.clone())));

    let hub = Hub::new(config.daemon.recent_events);
    let reader_stats = Arc::new(ReaderStats::default());
    let pipeline_stats = Arc::new(PipelineStats::default());
    let (records_tx, records_rx) = mpsc::channel(RECORDS_QUEUE);
    let (lifecycle_tx, lifecycle_rx) = mpsc::channel(1024);
    let (reader, flush) = Reader::new(ring, records_tx.clone(), reader_stats.clone())?;
    let mut alerts_config = config.alerts.clone();
    if alerts_config.node.is_none() {
        alerts_config.node = config.node_name();
    }
    let alerts = crate::sinks::alerts::AlertRouter::new(&alerts_config)
        .context("cannot set up alert routing")?;
    let mut alert_stats = alerts.stats();
    if !alert_stats.is_empty() {
        tracing::info!(node = alerts.node(), receivers = alert_stats.len(), "alert routing on");
    }
    tokio::spawn(alerts.run(hub.add_sink("alerts", 16 * 1024), shutdown.clone()));
    let audit_cancel = CancellationToken::new();
    let (audit_path, audit_stats, audit_task) = if config.audit.enabled {
        let path = config.audit_path();
        let resuming: Vec<(u32, String)> =
            to_adopt.iter().map(|a| (a.instance, a.id.to_string())).collect();
        let store = AuditStore::open_resuming(&path, &config.audit, &resuming)
            .with_context(|| format!("cannot open the audit store {}", path.display()))?;
        let stats = Arc::new(AuditStats::default());
        let task = tokio::spawn(audit::writer::run_writer(
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
    let exports = start_exports(&config, audit_path.as_deref(), &export_metrics)?;
    let summaries = Arc::default();
    let event_metrics = EventMetrics::new();
    tokio::spawn(metrics::run_sink(event_metrics.clone(), hub.add_sink("metrics", METRICS_QUEUE)));
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
    let pipeline_task = tokio::spawn(pipeline.run());

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
    report_retired(&retired);
    tracker.settle();
    for ring in retired.rings {
        crate::kernel::reader::drain_once(ring, &records_tx, &reader_stats).await;
    }
    drop(records_tx);
    let reader_task = tokio::spawn(reader.run(shutdown.clone()));
    tracker.judge_doomed(&adopted.doomed).await;
    let adopted_dirs: Vec<PathBuf> = adopted.local.iter().map(|a| a.cgroup.clone()).collect();
    if let Err(e) = local.sweep(&adopted_dirs) {
        tracing::warn!(cgroup = %local_parent.display(), error = %e, "cannot look for stale cgroups");
    }
    for active in adopted.local {
        local.resume(&tracker, active);
    }
    // Not ready until the workload sources have synced (the pod list, when enabled).
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(!config.kubernetes.enabled));
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
            shutdown.clone(),
            tasks.clone(),
        )
        .await?;
        alert_stats.push(started.deliveries);
        kube_stats = Some(started.stats);
    }
    let phases = if cluster_phases {
        Some(
            crate::cluster::start(
                &config.kubernetes,
                lifecycle_tx,
                config.baseline.clone(),
                shutdown.clone(),
                &tasks,
            )
            .await?,
        )
    } else {
        drop(lifecycle_tx);
        None
    };
    let admin_gid = group_id(&config.daemon.socket_group);
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
        audit: audit_path.clone().zip(audit_stats.clone()),
        admin_gid,
        refusals: Arc::default(),
        phases: phases.clone(),
    });

    match std::fs::remove_file(&socket) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            bail!("cannot remove stale socket {}: {e}", socket.display())
        }
        _ => {}
    }
    let listener = control_socket(&socket, admin_gid)?;
    tracing::info!(socket = %socket.display(), probes = state.probes.len(), "paddock daemon ready");

    let control = tokio::spawn(control::serve(listener, state.clone(), shutdown.clone()));
    // Each component registers its own families; the kernel's are read on an interval,
    // so a scrape never takes the kernel's lock.
    let mut registry = metrics::registry();
    event_metrics.register(&mut registry);
    let kernel_gauges = Arc::new(KernelGauges::default());
    kernel_gauges.refresh(&state.kernel.lock().unwrap_or_else(|e| e.into_inner()));
    kernel_gauges.register(&mut registry);
    state.reader_stats.register(&mut registry);
    state.pipeline_stats.register(&mut registry);
    state.hub.register(&mut registry);
    state.refusals.register(&mut registry);
    judge::metrics::register(summaries.clone(), &mut registry);
    crate::sinks::alerts::register_receivers(alert_stats, &mut registry);
    if let Some(audit) = &audit_stats {
        audit.register(&mut registry);
    }
    if let Some(kube) = &kube_stats {
        kube.register(&mut registry);
    }
    export_metrics.register(&mut registry);
    registry.register_collector(Box::new(match &phases {
        Some(phases) => metrics::evidence::EvidenceCollector::Cluster(phases.clone()),
        None => metrics::evidence::EvidenceCollector::Node(summaries.clone()),
    }));
    let http_state = Arc::new(http::HttpState {
        registry,
        ready,
        phases: phases.clone(),
        token,
        audit: audit_path,
    });
    let http_task = tokio::spawn(http::serve(
        http_listener,
        http::router(http_state, crate::api::audit::routes()),
        shutdown.clone(),
    ));
    tracing::info!(address = %http_address, "serving /metrics, /healthz, /readyz and /v1");
    tokio::spawn(report_losses(state.clone(), shutdown.clone()));
    tokio::spawn(sample(state.tracker.clone(), shutdown.clone()));
    tokio::spawn(kernel::metrics::sample(state.kernel.clone(), kernel_gauges, shutdown.clone()));

    let mut term = tokio::signal::unix::signal(SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
    shutdown.cancel();
    let _ = control.await;
    let _ = http_task.await;
    let _ = std::fs::remove_file(&socket);
    tasks.close();
    tasks.wait().await;
    // Investigations have ended (their events drained); stop the reader, then the pipeline.
    let _ = reader_task.await;
    // The parent cgroup goes too when nothing is left in it.
    if std::fs::remove_dir(&local_parent).is_ok() {
        tracing::debug!(cgroup = %local_parent.display(), "removed the local cgroup parent");
    }
    {
        let mut kernel = state.kernel.lock().unwrap_or_else(|e| e.into_inner());
        if keep {
            kernel.leave_enforcing();
        } else {
            kernel.detach_on_exit();
        }
    }
    drop(state);
    if tokio::time::timeout(Duration::from_secs(2), pipeline_task).await.is_err() {
        tracing::warn!("event pipeline still busy at exit");
    }
    // Every event is published by now: the audit writer stores what is queued, then stops.
    audit_cancel.cancel();
    if let Some(task) = audit_task
        && tokio::time::timeout(Duration::from_secs(10), task).await.is_err()
    {
        tracing::warn!("audit store writer still busy at exit");
    }
    // Then exports send what was stored, within a bound.
    if let Some(exports) = exports {
        exports.stop(EXPORT_DRAIN).await;
    }
    if keep {
        tracing::info!(
            "paddock daemon stopped; its programs stay attached and enforcing (daemon.on_stop = keep-enforcing)"
        );
    } else {
        tracing::info!("programs detached; paddock daemon stopped");
    }
    Ok(())
}

/// Say which pinned state this daemon runs on.
fn report_generation(kernel: &Kernel) {
    let g = &kernel.generation;
    match (g.maps_adopted, g.programs_adopted) {
        (true, true) => {
            tracing::info!(programs = %g.links_dir.display(), maps = %g.maps_dir.display(),
            "adopted the running programs and their maps: no gap in tracking or enforcement")
        }
        (true, false) => {
            tracing::info!(programs = %g.links_dir.display(), maps = %g.maps_dir.display(),
            "adopted the maps; attached this build's programs beside the running ones (those go once the investigations are adopted)")
        }
        (false, _) if !g.carried_from.is_empty() => {
            tracing::info!(maps = %g.maps_dir.display(), from = ?g.carried_from,
            "new map layout: carried the earlier maps' state over; earlier programs keep enforcing until this generation is filled")
        }
        (false, _) => {
            tracing::info!(programs = %g.links_dir.display(), maps = %g.maps_dir.display(),
            "attached new programs and maps")
        }
    }
    if g.maps_adopted {
        let lost: u64 = kernel.maps.lost().map(|l| l.iter().sum()).unwrap_or(0);
        if lost > 0 {
            tracing::warn!(
                lost_records = lost,
                "records the kernel could not keep while no daemon read them (or earlier): lost, counted against their investigations"
            );
        }
    }
}

fn report_retired(retired: &crate::kernel::Retired) {
    for dir in &retired.links {
        tracing::info!(programs = %dir.display(), "detached an earlier generation of programs");
    }
    for dir in &retired.unreadable {
        tracing::warn!(maps = %dir.display(),
            "an earlier generation's maps had another layout version: the records its programs wrote while no daemon ran are not read, and processes it tracked outside their investigations' cgroups are not carried over");
    }
}

/// `paddock daemon --cleanup`: remove everything a daemon leaves pinned and the record of
/// running investigations; their processes run on, untracked (said for each).
pub fn cleanup(config: &Config) -> anyhow::Result<()> {
    let removed = crate::kernel::pins::cleanup(&config.kernel.pin_dir, &config.kernel.bpffs)?;
    for path in &removed {
        println!("unpinned {}", path.display());
    }
    let dir = config.daemon.state_dir.join("running");
    if dir.is_dir() {
        let saved = SavedRuns::open(&config.daemon.state_dir)?;
        let (running, _) = saved.load()?;
        for active in &running {
            println!(
                "forgot investigation {} (instance {}, cgroup {}): its processes, if any, are no longer tracked",
                active.id,
                active.instance,
                active.cgroup.display()
            );
        }
        saved.clear()?;
    }
    if removed.is_empty() {
        println!("nothing pinned at {}", config.kernel.pin_dir.display());
    }
    Ok(())
}

/// Where pids.max is set for the local investigations of `config` (said in the log).
fn pids_for(config: &Config, v2_mount: &Path) -> Arc<crate::workloads::pids::Pids> {
    let pids = crate::workloads::pids::Pids::detect(
        config.phases.clone(),
        v2_mount,
        &v2_mount.join(&config.local.cgroup_parent),
        &config.local.cgroup_parent,
        &config.kernel.mountinfo_path,
    );
    pids.log(config.limits.processes);
    Arc::new(pids)
}
