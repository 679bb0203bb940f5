//! Load the embedded kernel object, configure it and attach every program.
use std::{fs::File, path::PathBuf};

use agent_common::{
    config::Config as KernelConfig,
    names::{maps, programs},
};
use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{Array, HashMap, LpmTrie, MapData, MapError, PerCpuArray, ProgramArray, RingBuf},
    programs::{
        CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSock, CgroupSockAddr, ProgramError,
        RawTracePoint, TracePoint,
    },
};

use super::{btf, sideload, tracking::KernelMaps};

/// The kernel programs, built by `build.rs` from `agent-ebpf`.
static PROBES: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/paddock-probes"));

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(
        "this paddock binary was built without its kernel programs (AYA_BUILD_SKIP): rebuild \
         it with `cargo xtask build`"
    )]
    NoProbes,
    #[error("cannot load the kernel programs: {0}")]
    Load(#[source] EbpfError),
    #[error("kernel program {program} is missing from the object")]
    MissingProgram { program: &'static str },
    #[error("cannot load or attach kernel program {program} ({hook}): {source}")]
    Program { program: &'static str, hook: String, source: ProgramError },
    #[error("kernel map {map} is missing from the object")]
    MissingMap { map: &'static str },
    #[error("kernel map {map}: {source}")]
    Map { map: &'static str, source: MapError },
    #[error(transparent)]
    Btf(#[from] btf::BtfError),
    #[error("cannot open cgroup {path} to attach the egress programs: {source}")]
    OpenCgroup { path: PathBuf, source: std::io::Error },
}

/// What the programs are told at load time (see `agent_common::config::Config`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub records_per_window: u32,
    pub window_ns: u64,
    pub task_quota: u32,
    pub cgroup_quota: u32,
    /// Entries of the process map (all investigations together).
    pub max_tracked_processes: u32,
    /// Entries of the policy maps (the phases that enforce, together).
    pub policy_maps: super::policy::PolicyMaps,
}

pub struct LoadOptions {
    pub ring_buffer_bytes: u32,
    pub btf_path: PathBuf,
    pub daemon_tgid: u32,
    /// The root of the cgroup v2 hierarchy: connects, sends and socket creation are judged
    /// for every socket below it, so a tracked process cannot walk out of the hooks by
    /// moving itself to another cgroup.
    pub root_cgroup: PathBuf,
    /// cgroups whose egress bytes are counted (their whole subtree is covered).
    pub egress_cgroups: Vec<PathBuf>,
    pub limits: Limits,
}

/// The loaded programs (attached for as long as this lives) and their maps.
pub struct Kernel {
    _ebpf: Ebpf,
    /// The unix-socket hooks, loaded beside aya (see `sideload`); `None` on kernels
    /// without them.
    _unix: Option<sideload::Sideloaded>,
    /// The tail-call array (its entries live as long as it does).
    _tails: Option<ProgramArray<MapData>>,
    pub maps: KernelMaps,
    ring: Option<RingBuf<MapData>>,
    /// "program (hook)" for every attached program.
    pub attached: Vec<String>,
    /// Hooks this kernel lacks, and what goes unjudged without them.
    pub missing: Vec<String>,
}

const RAW_TRACEPOINTS: [(&str, &str); 5] = [
    (programs::SYS_ENTER, "sys_enter"),
    (programs::PROCESS_FORK, "sched_process_fork"),
    (programs::PROCESS_EXEC, "sched_process_exec"),
    (programs::PROCESS_EXIT, "sched_process_exit"),
    (programs::CGROUP_ATTACH, "cgroup_attach_task"),
];

/// (program, category, name).
const TRACEPOINTS: [(&str, &str, &str); 1] = [(programs::CGROUP_MKDIR, "cgroup", "cgroup_mkdir")];

/// The exits of the calls that open files: the open is reported with the file the kernel
/// opened. These `syscalls:*` tracepoints add one check of a bitmap to every syscall's exit
/// on the node (the kernel's syscall tracing is on anyway for `sys_enter`).
const OPEN_EXITS: [&str; 5] = [
    "sys_exit_open",
    "sys_exit_openat",
    "sys_exit_openat2",
    "sys_exit_creat",
    "sys_exit_open_by_handle_at",
];

const SOCK_ADDR: [&str; 4] =
    [programs::CONNECT4, programs::CONNECT6, programs::SENDMSG4, programs::SENDMSG6];

fn take<T: TryFrom<aya::maps::Map, Error = MapError>>(
    ebpf: &mut Ebpf,
    map: &'static str,
) -> Result<T, KernelError> {
    let raw = ebpf.take_map(map).ok_or(KernelError::MissingMap { map })?;
    T::try_from(raw).map_err(|source| KernelError::Map { map, source })
}

fn program_error(
    program: &'static str,
    hook: impl Into<String>,
) -> impl FnOnce(ProgramError) -> KernelError {
    let hook = hook.into();
    move |source| KernelError::Program { program, hook, source }
}

impl Kernel {
    pub fn load(options: &LoadOptions) -> Result<Kernel, KernelError> {
        if PROBES.is_empty() {
            return Err(KernelError::NoProbes);
        }
        let offsets = btf::kernel_offsets(&options.btf_path)?;
        let limits = options.limits;
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(maps::EVENTS, options.ring_buffer_bytes)
            .map_max_entries(maps::TASKS, limits.max_tracked_processes)
            .map_max_entries(maps::ALLOWED_PATHS, limits.policy_maps.paths)
            .map_max_entries(maps::ALLOWED_EGRESS, limits.policy_maps.egress)
            .map_max_entries(maps::ALLOWED_SOCKETS, limits.policy_maps.sockets)
            .load(PROBES)
            .map_err(KernelError::Load)?;

        let root = File::open(&options.root_cgroup).map_err(|source| KernelError::OpenCgroup {
            path: options.root_cgroup.clone(),
            source,
        })?;
        let mut missing = Vec::new();
        let unix = match sideload::load(
            PROBES,
            &ebpf,
            &[
                (programs::CONNECT_UNIX, sideload::BPF_CGROUP_UNIX_CONNECT),
                (programs::SENDMSG_UNIX, sideload::BPF_CGROUP_UNIX_SENDMSG),
            ],
            &root,
        ) {
            Ok(loaded) => Some(loaded),
            Err(e) => {
                missing.push(format!(
                    "unix socket hooks (Linux 6.7+): connects to unix sockets are not judged ({e})"
                ));
                None
            }
        };

        // Written after the side-loaded programs took their references to every map (a
        // map taken from aya is no longer listed for them); until then they are quiet.
        let mut config: Array<MapData, KernelConfig> = take(&mut ebpf, maps::CONFIG)?;
        let value = KernelConfig {
            daemon_tgid: options.daemon_tgid,
            enabled: 1,
            records_per_window: limits.records_per_window,
            task_quota: limits.task_quota,
            window_ns: limits.window_ns,
            cgroup_quota: limits.cgroup_quota,
            _pad: 0,
            offsets,
        };
        config.set(0, value, 0).map_err(|source| KernelError::Map { map: maps::CONFIG, source })?;

        let maps = KernelMaps {
            tracked: take::<HashMap<_, _, _>>(&mut ebpf, maps::TRACKED)?,
            fast: take::<Array<_, _>>(&mut ebpf, maps::FAST)?,
            tasks: take::<HashMap<_, _, _>>(&mut ebpf, maps::TASKS)?,
            tasks_fast: take::<Array<_, _>>(&mut ebpf, maps::TASKS_FAST)?,
            paths: take::<HashMap<_, _, _>>(&mut ebpf, maps::CGROUP_PATHS)?,
            slots: take::<Array<_, _>>(&mut ebpf, maps::SLOTS)?,
            syscalls: take::<PerCpuArray<_, _>>(&mut ebpf, maps::SYSCALL_COUNTS)?,
            egress: take::<PerCpuArray<_, _>>(&mut ebpf, maps::EGRESS)?,
            lost: take::<PerCpuArray<_, _>>(&mut ebpf, maps::LOST)?,
            phase_policy: take::<Array<_, _>>(&mut ebpf, maps::PHASE_POLICY)?,
            allowed_paths: take::<HashMap<_, _, _>>(&mut ebpf, maps::ALLOWED_PATHS)?,
            allowed_egress: take::<LpmTrie<_, _, _>>(&mut ebpf, maps::ALLOWED_EGRESS)?,
            allowed_sockets: take::<HashMap<_, _, _>>(&mut ebpf, maps::ALLOWED_SOCKETS)?,
            capacity: limits.max_tracked_processes,
        };
        let ring: RingBuf<MapData> = take(&mut ebpf, maps::EVENTS)?;
        let mut kernel = Kernel {
            _ebpf: ebpf,
            _unix: unix,
            _tails: None,
            maps,
            ring: Some(ring),
            attached: Vec::new(),
            missing,
        };
        if kernel._unix.is_some() {
            let hook = format!("cgroup {}", options.root_cgroup.display());
            for name in [programs::CONNECT_UNIX, programs::SENDMSG_UNIX] {
                kernel.attached.push(format!("{name} ({hook})"));
            }
        }
        kernel.attach_all(&root, &options.root_cgroup, &options.egress_cgroups, &offsets)?;
        Ok(kernel)
    }

    fn attach_all(
        &mut self,
        root: &File,
        root_path: &std::path::Path,
        egress_cgroups: &[PathBuf],
        offsets: &agent_common::config::KernelOffsets,
    ) -> Result<(), KernelError> {
        let ebpf = &mut self._ebpf;
        // Tail-call targets: loaded, placed in `TAILS`, attached to nothing.
        let name = programs::PATH_OP;
        let program: &mut RawTracePoint = ebpf
            .program_mut(name)
            .ok_or(KernelError::MissingProgram { program: name })?
            .try_into()
            .map_err(program_error(name, "tail call"))?;
        program.load().map_err(program_error(name, "tail call"))?;
        let fd =
            program.fd().map_err(program_error(name, "tail call"))?.try_clone().map_err(|e| {
                KernelError::Program {
                    program: name,
                    hook: "tail call".into(),
                    source: ProgramError::IOError(e),
                }
            })?;
        let mut tails: ProgramArray<MapData> = take(ebpf, maps::TAILS)?;
        tails
            .set(agent_common::names::tails::TAIL_PATH_OP, &fd, 0)
            .map_err(|source| KernelError::Map { map: maps::TAILS, source })?;
        self._tails = Some(tails);
        self.attached.push(format!("{name} (tail call of {})", programs::SYS_ENTER));

        for (name, hook) in RAW_TRACEPOINTS {
            let program: &mut RawTracePoint = ebpf
                .program_mut(name)
                .ok_or(KernelError::MissingProgram { program: name })?
                .try_into()
                .map_err(program_error(name, hook))?;
            program.load().map_err(program_error(name, hook))?;
            program.attach(hook).map_err(program_error(name, hook))?;
            self.attached.push(format!("{name} (raw_tp/{hook})"));
        }
        for (name, category, tp) in TRACEPOINTS {
            let hook = format!("tracepoint/{category}/{tp}");
            let program: &mut TracePoint = ebpf
                .program_mut(name)
                .ok_or(KernelError::MissingProgram { program: name })?
                .try_into()
                .map_err(program_error(name, hook.clone()))?;
            program.load().map_err(program_error(name, hook.clone()))?;
            program.attach(category, tp).map_err(program_error(name, hook.clone()))?;
            self.attached.push(format!("{name} ({hook})"));
        }
        let name = programs::OPEN_EXIT;
        let program: &mut TracePoint = ebpf
            .program_mut(name)
            .ok_or(KernelError::MissingProgram { program: name })?
            .try_into()
            .map_err(program_error(name, "tracepoint/syscalls"))?;
        program.load().map_err(program_error(name, "tracepoint/syscalls"))?;
        for tp in OPEN_EXITS {
            let hook = format!("tracepoint/syscalls/{tp}");
            program.attach("syscalls", tp).map_err(program_error(name, hook.clone()))?;
            self.attached.push(format!("{name} ({hook})"));
        }
        if btf::has_io_uring(offsets) {
            let (name, hook) = (programs::URING_SUBMIT, "io_uring_submit_req");
            let program: &mut RawTracePoint = ebpf
                .program_mut(name)
                .ok_or(KernelError::MissingProgram { program: name })?
                .try_into()
                .map_err(program_error(name, hook))?;
            program.load().map_err(program_error(name, hook))?;
            program.attach(hook).map_err(program_error(name, hook))?;
            self.attached.push(format!("{name} (raw_tp/{hook})"));
        } else {
            self.missing.push("io_uring (not in this kernel's BTF): nothing to judge".into());
        }
        for name in SOCK_ADDR {
            let program: &mut CgroupSockAddr = ebpf
                .program_mut(name)
                .ok_or(KernelError::MissingProgram { program: name })?
                .try_into()
                .map_err(program_error(name, "cgroup"))?;
            program.load().map_err(program_error(name, "cgroup"))?;
        }
        let skb: &mut CgroupSkb = ebpf
            .program_mut(programs::SKB_EGRESS)
            .ok_or(KernelError::MissingProgram { program: programs::SKB_EGRESS })?
            .try_into()
            .map_err(program_error(programs::SKB_EGRESS, "cgroup_skb/egress"))?;
        skb.load().map_err(program_error(programs::SKB_EGRESS, "cgroup_skb/egress"))?;

        let create: &mut CgroupSock = ebpf
            .program_mut(programs::SOCK_CREATE)
            .ok_or(KernelError::MissingProgram { program: programs::SOCK_CREATE })?
            .try_into()
            .map_err(program_error(programs::SOCK_CREATE, "cgroup/sock_create"))?;
        create.load().map_err(program_error(programs::SOCK_CREATE, "cgroup/sock_create"))?;

        // Attached through BPF links (Linux >= 5.7), which always allow other programs on the
        // same cgroup; the kernel refuses an explicit BPF_F_ALLOW_MULTI there.
        let mode = CgroupAttachMode::default();
        let hook = format!("cgroup {}", root_path.display());
        for name in SOCK_ADDR {
            let program: &mut CgroupSockAddr = ebpf
                .program_mut(name)
                .and_then(|p| p.try_into().ok())
                .ok_or(KernelError::MissingProgram { program: name })?;
            program.attach(root, mode).map_err(program_error(name, hook.clone()))?;
            self.attached.push(format!("{name} ({hook})"));
        }
        let create: &mut CgroupSock = ebpf
            .program_mut(programs::SOCK_CREATE)
            .and_then(|p| p.try_into().ok())
            .ok_or(KernelError::MissingProgram { program: programs::SOCK_CREATE })?;
        create.attach(root, mode).map_err(program_error(programs::SOCK_CREATE, hook.clone()))?;
        self.attached.push(format!("{} ({hook}, sock_create)", programs::SOCK_CREATE));
        for dir in egress_cgroups {
            let cgroup = File::open(dir)
                .map_err(|source| KernelError::OpenCgroup { path: dir.clone(), source })?;
            let hook = format!("cgroup {}", dir.display());
            let skb: &mut CgroupSkb = ebpf
                .program_mut(programs::SKB_EGRESS)
                .and_then(|p| p.try_into().ok())
                .ok_or(KernelError::MissingProgram { program: programs::SKB_EGRESS })?;
            skb.attach(&cgroup, CgroupSkbAttachType::Egress, mode)
                .map_err(program_error(programs::SKB_EGRESS, hook.clone()))?;
            self.attached.push(format!("{} ({hook}, egress)", programs::SKB_EGRESS));
        }
        Ok(())
    }

    /// The ring buffer, for the reader task; `None` once taken.
    pub fn take_ring(&mut self) -> Option<RingBuf<MapData>> {
        self.ring.take()
    }
}

/// Load only the empty `sys_enter` program and attach it: the cost floor that
/// `cargo xtask bench overhead` measures paddock against. Detached when dropped.
pub fn attach_empty_hook() -> Result<Ebpf, KernelError> {
    if PROBES.is_empty() {
        return Err(KernelError::NoProbes);
    }
    let mut ebpf = EbpfLoader::new().load(PROBES).map_err(KernelError::Load)?;
    let name = programs::BENCH_EMPTY;
    let program: &mut RawTracePoint = ebpf
        .program_mut(name)
        .ok_or(KernelError::MissingProgram { program: name })?
        .try_into()
        .map_err(program_error(name, "sys_enter"))?;
    program.load().map_err(program_error(name, "sys_enter"))?;
    program.attach("sys_enter").map_err(program_error(name, "sys_enter"))?;
    Ok(ebpf)
}
