//! Load the embedded kernel object, configure it and attach every program.
use std::{fs::File, path::PathBuf};

use agent_common::{
    config::Config as KernelConfig,
    names::{maps, programs},
};
use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{Array, HashMap, LpmTrie, MapData, MapError, PerCpuArray, RingBuf},
    programs::{
        CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr, ProgramError,
        RawTracePoint, TracePoint,
    },
};

use super::{btf, tracking::KernelMaps};

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

pub struct LoadOptions {
    pub ring_buffer_bytes: u32,
    pub btf_path: PathBuf,
    pub daemon_tgid: u32,
    /// cgroups the egress programs attach to (their whole subtree is covered).
    pub egress_cgroups: Vec<PathBuf>,
}

/// The loaded programs (attached for as long as this lives) and their maps.
pub struct Kernel {
    _ebpf: Ebpf,
    pub maps: KernelMaps,
    ring: Option<RingBuf<MapData>>,
    /// "program (hook)" for every attached program.
    pub attached: Vec<String>,
}

const RAW_TRACEPOINTS: [(&str, &str); 4] = [
    (programs::SYS_ENTER, "sys_enter"),
    (programs::PROCESS_FORK, "sched_process_fork"),
    (programs::PROCESS_EXIT, "sched_process_exit"),
    (programs::CGROUP_ATTACH, "cgroup_attach_task"),
];

/// (program, category, name). No `syscalls:*` tracepoint: enabling any of them switches on
/// the kernel's generic syscall tracing for every syscall; `sys_enter` handles those calls.
const TRACEPOINTS: [(&str, &str, &str); 2] = [
    (programs::PROCESS_EXEC, "sched", "sched_process_exec"),
    (programs::CGROUP_MKDIR, "cgroup", "cgroup_mkdir"),
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
        let task = btf::task_offsets(&options.btf_path)?;
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(maps::EVENTS, options.ring_buffer_bytes)
            .load(PROBES)
            .map_err(KernelError::Load)?;

        let mut config: Array<MapData, KernelConfig> = take(&mut ebpf, maps::CONFIG)?;
        let value = KernelConfig { daemon_tgid: options.daemon_tgid, enabled: 1, task };
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
            allowed_execs: take::<HashMap<_, _, _>>(&mut ebpf, maps::ALLOWED_EXECS)?,
            allowed_egress: take::<LpmTrie<_, _, _>>(&mut ebpf, maps::ALLOWED_EGRESS)?,
        };
        let ring: RingBuf<MapData> = take(&mut ebpf, maps::EVENTS)?;
        let mut kernel = Kernel { _ebpf: ebpf, maps, ring: Some(ring), attached: Vec::new() };
        kernel.attach_all(&options.egress_cgroups)?;
        Ok(kernel)
    }

    fn attach_all(&mut self, egress_cgroups: &[PathBuf]) -> Result<(), KernelError> {
        let ebpf = &mut self._ebpf;
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

        // Attached through BPF links (Linux >= 5.7), which always allow other programs on the
        // same cgroup; the kernel refuses an explicit BPF_F_ALLOW_MULTI there.
        let mode = CgroupAttachMode::default();
        for dir in egress_cgroups {
            let cgroup = File::open(dir)
                .map_err(|source| KernelError::OpenCgroup { path: dir.clone(), source })?;
            let hook = format!("cgroup {}", dir.display());
            for name in SOCK_ADDR {
                let program: &mut CgroupSockAddr = ebpf
                    .program_mut(name)
                    .and_then(|p| p.try_into().ok())
                    .ok_or(KernelError::MissingProgram { program: name })?;
                program.attach(&cgroup, mode).map_err(program_error(name, hook.clone()))?;
                self.attached.push(format!("{name} ({hook})"));
            }
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
