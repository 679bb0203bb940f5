//! Load the embedded kernel object, configure it and attach every program (`attach`),
//! pinned (see `pins`): the maps of this layout are adopted when an earlier daemon left them, and so are
//! its attached programs when they are this build's, on the same hooks. Otherwise this
//! daemon's programs are attached beside the running ones, which it retires
//! ([`Kernel::retire_previous`]) once its own maps hold everything the old ones knew.
use std::{fs::File, path::PathBuf};

use agent_common::{
    config::Config as KernelConfig,
    hash::fnv1a,
    names::{maps, programs},
};
use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{Array, HashMap, LpmTrie, MapData, MapError, PerCpuArray, ProgramArray, RingBuf},
    programs::ProgramError,
};

use super::{
    attach::{Pinner, pinned_programs},
    btf,
    pins::{self, Pins, Previous},
    sideload,
    tracking::KernelMaps,
};

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
    #[error(transparent)]
    Pins(#[from] pins::PinError),
    #[error("cannot pin the link of {program} ({hook}) at {path}: {reason}")]
    PinLink { program: &'static str, hook: String, path: PathBuf, reason: String },
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
    /// How long a DNS answer binds its addresses to a name, at least and at most (seconds).
    pub dns_ttl_s: (u32, u32),
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
    /// Where programs, links and maps are pinned (below `bpffs`).
    pub pin_dir: PathBuf,
    pub bpffs: PathBuf,
}

/// Which pinned state this daemon runs on.
pub struct Generation {
    pins: Pins,
    pub maps_dir: PathBuf,
    pub links_dir: PathBuf,
    /// The maps were there: their state (what is tracked, counters, records waiting in the
    /// ring buffer) is an earlier daemon's, kept by the kernel meanwhile.
    pub maps_adopted: bool,
    /// The programs were there, attached: this daemon attached none.
    pub programs_adopted: bool,
    /// Maps of an earlier layout of this version whose entries were copied into ours.
    pub carried_from: Vec<PathBuf>,
    /// What earlier daemons left that this one retires.
    pub(super) previous: Previous,
}

/// The loaded programs (attached for as long as this lives) and their maps.
pub struct Kernel {
    pub(super) _ebpf: Ebpf,
    /// The unix-socket hooks, loaded beside aya (see `sideload`); `None` on kernels
    /// without them.
    _unix: Option<sideload::Sideloaded>,
    /// The tail-call array (its entries live as long as it does).
    pub(super) _tails: Option<ProgramArray<MapData>>,
    pub maps: KernelMaps,
    ring: Option<RingBuf<MapData>>,
    /// "program (hook)" for every attached program.
    pub attached: Vec<String>,
    /// Hooks this kernel lacks, and what goes unjudged without them.
    pub missing: Vec<String>,
    pub generation: Generation,
}

pub(super) fn take<T: TryFrom<aya::maps::Map, Error = MapError>>(
    ebpf: &mut Ebpf,
    map: &'static str,
) -> Result<T, KernelError> {
    let raw = ebpf.take_map(map).ok_or(KernelError::MissingMap { map })?;
    T::try_from(raw).map_err(|source| KernelError::Map { map, source })
}

/// What the programs attach to beyond their fixed hooks: part of a generation's name.
fn hooks_hash(options: &LoadOptions, io_uring: bool) -> u64 {
    let text = format!(
        "root={};egress={:?};io_uring={io_uring}",
        options.root_cgroup.display(),
        options.egress_cgroups
    );
    fnv1a(text.as_bytes())
}

impl Generation {
    pub fn pins_root(&self) -> PathBuf {
        self.pins.root.clone()
    }
}

impl Kernel {
    pub fn load(options: &LoadOptions) -> Result<Kernel, KernelError> {
        if PROBES.is_empty() {
            return Err(KernelError::NoProbes);
        }
        let offsets = btf::kernel_offsets(&options.btf_path)?;
        let limits = options.limits;
        let overrides = [
            (maps::EVENTS, options.ring_buffer_bytes),
            (maps::TASKS, limits.max_tracked_processes),
            (maps::ALLOWED_PATHS, limits.policy_maps.paths),
            (maps::ALLOWED_EGRESS, limits.policy_maps.egress),
            (maps::ALLOWED_SOCKETS, limits.policy_maps.sockets),
            (maps::ALLOWED_NAMES, limits.policy_maps.names),
        ];
        let layout = pins::layout(PROBES, &overrides)?;
        let object = fnv1a(PROBES);
        let hooks = hooks_hash(options, btf::has_io_uring(&offsets));
        let pins = Pins::open(&options.pin_dir, &options.bpffs)?;
        let (maps_dir, maps_adopted) = pins.maps_dir(layout)?;
        let names: Vec<String> = aya_obj::Object::parse(PROBES)
            .map_err(|e| KernelError::Pins(pins::PinError::Object(e.to_string())))?
            .maps
            .into_keys()
            .filter(|n| n.starts_with("PADDOCK_"))
            .collect();
        let mut loader = EbpfLoader::new();
        for (map, entries) in overrides {
            loader.map_max_entries(map, entries);
        }
        for name in &names {
            let path = if name == maps::DOOMED {
                pins.root.join(pins::DOOMED_PIN)
            } else {
                maps_dir.join(name)
            };
            loader.map_pin_path(name.as_str(), path);
        }
        let mut ebpf = loader.load(PROBES).map_err(KernelError::Load)?;

        let root = File::open(&options.root_cgroup).map_err(|source| KernelError::OpenCgroup {
            path: options.root_cgroup.clone(),
            source,
        })?;
        let adoptable = pins.complete_links(layout, object, hooks)?;
        let mut missing = Vec::new();
        let mut pinner = None;
        let mut unix = None;
        if adoptable.is_none() {
            let mut links = Pinner::new(pins.new_links()?);
            unix = match sideload::load(
                PROBES,
                &ebpf,
                &[
                    (programs::CONNECT_UNIX, sideload::BPF_CGROUP_UNIX_CONNECT),
                    (programs::SENDMSG_UNIX, sideload::BPF_CGROUP_UNIX_SENDMSG),
                ],
                &root,
                |program| links.path(program),
            ) {
                Ok(loaded) => Some(loaded),
                Err(e) => {
                    missing.push(format!(
                        "unix socket hooks (Linux 6.7+): connects to unix sockets are not judged ({e})"
                    ));
                    None
                }
            };
            pinner = Some(links);
        }

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
            dns_min_ttl_s: limits.dns_ttl_s.0,
            offsets,
            dns_max_ttl_s: limits.dns_ttl_s.1,
            _pad: 0,
        };
        config.set(0, value, 0).map_err(|source| KernelError::Map { map: maps::CONFIG, source })?;

        let maps = KernelMaps {
            config,
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
            allowed_names: take::<HashMap<_, _, _>>(&mut ebpf, maps::ALLOWED_NAMES)?,
            doomed_by: take::<Array<_, _>>(&mut ebpf, maps::DOOMED)?,
            capacity: limits.max_tracked_processes,
        };
        let ring: RingBuf<MapData> = take(&mut ebpf, maps::EVENTS)?;
        let links_dir =
            adoptable.clone().unwrap_or_else(|| pinner.as_ref().expect("made above").dir.clone());
        let previous = pins.previous(&links_dir, &maps_dir)?;
        let mut kernel = Kernel {
            _ebpf: ebpf,
            _unix: unix,
            _tails: None,
            maps,
            ring: Some(ring),
            attached: Vec::new(),
            missing,
            generation: Generation {
                pins,
                maps_dir,
                links_dir: links_dir.clone(),
                maps_adopted,
                programs_adopted: adoptable.is_some(),
                carried_from: Vec::new(),
                previous,
            },
        };
        // Fresh maps beside older ones of this version: copy what they hold first, so these
        // programs start from what the running ones know.
        if !maps_adopted {
            kernel.carry_previous(layout);
        }
        match pinner {
            None => kernel.attached = pinned_programs(&links_dir),
            Some(mut links) => {
                if kernel._unix.is_some() {
                    let hook = format!("cgroup {}", options.root_cgroup.display());
                    for name in [programs::CONNECT_UNIX, programs::SENDMSG_UNIX] {
                        kernel.attached.push(format!("{name} ({hook})"));
                    }
                }
                kernel.attach_all(&root, options, &offsets, &mut links)?;
                let done = kernel.generation.pins.complete(&links.dir, layout, object, hooks)?;
                kernel.generation.links_dir = done;
            }
        }
        Ok(kernel)
    }

    /// The ring buffer, for the reader task; `None` once taken.
    pub fn take_ring(&mut self) -> Option<RingBuf<MapData>> {
        self.ring.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The object `paddock` ships holds the product's programs and nothing else: the
    /// benchmarks' programs live in an object of their own (`agent-ebpf-bench`).
    #[test]
    fn the_shipped_object_holds_the_products_programs_only() {
        let object = aya_obj::Object::parse(PROBES).expect("the embedded object parses");
        let mut names: Vec<&str> = object.programs.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut product = vec![
            programs::SYS_ENTER,
            programs::PROCESS_FORK,
            programs::PROCESS_EXEC,
            programs::PROCESS_EXIT,
            programs::CGROUP_MKDIR,
            programs::CGROUP_ATTACH,
            programs::CONNECT4,
            programs::CONNECT6,
            programs::SENDMSG4,
            programs::SENDMSG6,
            programs::SKB_EGRESS,
            programs::SKB_INGRESS,
            programs::SOCK_CREATE,
            programs::CONNECT_UNIX,
            programs::SENDMSG_UNIX,
            programs::OPEN_EXIT,
            programs::URING_SUBMIT,
            programs::PATH_OP,
        ];
        product.sort_unstable();
        assert_eq!(names, product);
    }
}
