//! Attaching the loaded programs to their hooks, each through a BPF link pinned in the
//! generation's directory (numbered in attach order), so the programs stay attached when
//! this daemon stops and the next one can adopt them.
use std::{
    fs::File,
    path::{Path, PathBuf},
};

use agent_common::names::{maps, programs};
use aya::{
    Ebpf,
    maps::{MapData, ProgramArray},
    pin::PinError as AyaPinError,
    programs::{
        CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSock, CgroupSockAddr, Program,
        ProgramError, RawTracePoint, TracePoint,
        links::{FdLink, LinkError},
    },
};

use super::{
    btf,
    load::{Kernel, KernelError, LoadOptions, take},
};

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

fn program_error(
    program: &'static str,
    hook: impl Into<String>,
) -> impl FnOnce(ProgramError) -> KernelError {
    let hook = hook.into();
    move |source| KernelError::Program { program, hook, source }
}

/// The object's program `name` as a `P` (a program of another type is an error of `hook`).
fn program_as<'a, P>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
    hook: &str,
) -> Result<&'a mut P, KernelError>
where
    &'a mut P: TryFrom<&'a mut Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(KernelError::MissingProgram { program: name })?
        .try_into()
        .map_err(program_error(name, hook))
}

/// [`program_as`], loaded into the kernel by `load` (the type's own `load`, e.g.
/// `RawTracePoint::load`, which names the type).
fn load_program<'a, P>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
    hook: &str,
    load: fn(&mut P) -> Result<(), ProgramError>,
) -> Result<&'a mut P, KernelError>
where
    &'a mut P: TryFrom<&'a mut Program, Error = ProgramError>,
{
    let program = program_as::<P>(ebpf, name, hook)?;
    load(program).map_err(program_error(name, hook))?;
    Ok(program)
}

/// Pins links in one generation's directory, numbered in attach order.
pub(super) struct Pinner {
    pub(super) dir: PathBuf,
    next: usize,
}

impl Pinner {
    pub(super) fn new(dir: PathBuf) -> Pinner {
        Pinner { dir, next: 0 }
    }

    pub(super) fn path(&mut self, program: &str) -> PathBuf {
        self.next += 1;
        self.dir.join(format!("{:02}_{program}", self.next))
    }

    fn pin(
        &mut self,
        program: &'static str,
        hook: &str,
        link: Result<FdLink, LinkError>,
    ) -> Result<(), KernelError> {
        let path = self.path(program);
        let failed = |reason: String| KernelError::PinLink {
            program,
            hook: hook.to_owned(),
            path: path.clone(),
            reason,
        };
        let link = link.map_err(|e| {
            failed(format!("{e} (pinning needs BPF links for this hook: Linux 5.15 or later)"))
        })?;
        // The pin holds the link: dropping ours leaves it attached.
        link.pin(&path).map_err(|e: AyaPinError| failed(e.to_string()))?;
        Ok(())
    }
}

/// "program (hook)" for each link pinned in `dir`, from the names `Pinner` gave them.
pub(super) fn pinned_programs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let program = n.split_once('_').map_or(n.as_str(), |(_, p)| p);
            format!("{program} (adopted, pinned at {})", dir.join(&n).display())
        })
        .collect()
}

impl Kernel {
    pub(super) fn attach_all(
        &mut self,
        root: &File,
        options: &LoadOptions,
        offsets: &agent_common::config::KernelOffsets,
        pins: &mut Pinner,
    ) -> Result<(), KernelError> {
        let ebpf = &mut self._ebpf;
        // Tail-call targets: loaded, placed in `TAILS`, attached to nothing (the map holds
        // them while it is pinned).
        let name = programs::PATH_OP;
        let program = load_program(ebpf, name, "tail call", RawTracePoint::load)?;
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
            let program = load_program(ebpf, name, hook, RawTracePoint::load)?;
            let id = program.attach(hook).map_err(program_error(name, hook))?;
            let link = program.take_link(id).map_err(program_error(name, hook))?;
            pins.pin(name, hook, Ok(link.into()))?;
            self.attached.push(format!("{name} (raw_tp/{hook})"));
        }
        for (name, category, tp) in TRACEPOINTS {
            let hook = format!("tracepoint/{category}/{tp}");
            let program = load_program(ebpf, name, &hook, TracePoint::load)?;
            let id = program.attach(category, tp).map_err(program_error(name, hook.clone()))?;
            let link = program.take_link(id).map_err(program_error(name, hook.clone()))?;
            pins.pin(name, &hook, FdLink::try_from(link))?;
            self.attached.push(format!("{name} ({hook})"));
        }
        let name = programs::OPEN_EXIT;
        let program = load_program(ebpf, name, "tracepoint/syscalls", TracePoint::load)?;
        for tp in OPEN_EXITS {
            let hook = format!("tracepoint/syscalls/{tp}");
            let id = program.attach("syscalls", tp).map_err(program_error(name, hook.clone()))?;
            let link = program.take_link(id).map_err(program_error(name, hook.clone()))?;
            pins.pin(name, &hook, FdLink::try_from(link))?;
            self.attached.push(format!("{name} ({hook})"));
        }
        if btf::has_io_uring(offsets) {
            let (name, hook) = (programs::URING_SUBMIT, "io_uring_submit_req");
            let program = load_program(ebpf, name, hook, RawTracePoint::load)?;
            let id = program.attach(hook).map_err(program_error(name, hook))?;
            let link = program.take_link(id).map_err(program_error(name, hook))?;
            pins.pin(name, hook, Ok(link.into()))?;
            self.attached.push(format!("{name} (raw_tp/{hook})"));
        } else {
            self.missing.push("io_uring (not in this kernel's BTF): nothing to judge".into());
        }
        for name in SOCK_ADDR {
            load_program(ebpf, name, "cgroup", CgroupSockAddr::load)?;
        }
        for (name, hook) in [
            (programs::SKB_EGRESS, "cgroup_skb/egress"),
            (programs::SKB_INGRESS, "cgroup_skb/ingress"),
        ] {
            load_program(ebpf, name, hook, CgroupSkb::load)?;
        }
        load_program(ebpf, programs::SOCK_CREATE, "cgroup/sock_create", CgroupSock::load)?;

        // Attached through BPF links (Linux >= 5.7), which always allow other programs on the
        // same cgroup (an earlier generation's among them); the kernel refuses an explicit
        // BPF_F_ALLOW_MULTI there.
        let mode = CgroupAttachMode::default();
        let hook = format!("cgroup {}", options.root_cgroup.display());
        for name in SOCK_ADDR {
            let program: &mut CgroupSockAddr = program_as(ebpf, name, &hook)?;
            let id = program.attach(root, mode).map_err(program_error(name, hook.clone()))?;
            let link = program.take_link(id).map_err(program_error(name, hook.clone()))?;
            pins.pin(name, &hook, FdLink::try_from(link))?;
            self.attached.push(format!("{name} ({hook})"));
        }
        let name = programs::SOCK_CREATE;
        let create: &mut CgroupSock = program_as(ebpf, name, &hook)?;
        let id = create.attach(root, mode).map_err(program_error(name, hook.clone()))?;
        let link = create.take_link(id).map_err(program_error(name, hook.clone()))?;
        pins.pin(name, &hook, FdLink::try_from(link))?;
        self.attached.push(format!("{name} ({hook}, sock_create)"));
        for dir in &options.egress_cgroups {
            let cgroup = File::open(dir)
                .map_err(|source| KernelError::OpenCgroup { path: dir.clone(), source })?;
            let hook = format!("cgroup {}", dir.display());
            for (name, direction, label) in [
                (programs::SKB_EGRESS, CgroupSkbAttachType::Egress, "egress"),
                (programs::SKB_INGRESS, CgroupSkbAttachType::Ingress, "ingress"),
            ] {
                let skb: &mut CgroupSkb = program_as(ebpf, name, &hook)?;
                let id = skb
                    .attach(&cgroup, direction, mode)
                    .map_err(program_error(name, hook.clone()))?;
                let link = skb.take_link(id).map_err(program_error(name, hook.clone()))?;
                pins.pin(name, &format!("{hook} {label}"), FdLink::try_from(link))?;
                self.attached.push(format!("{name} ({hook}, {label})"));
            }
        }
        Ok(())
    }
}
