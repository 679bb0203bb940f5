//! The unix-socket hooks (`cgroup/connect_unix`, `cgroup/sendmsg_unix`, Linux 6.7+), which
//! aya 0.14 cannot load: it knows no unix attach types, and a sock_addr program must be
//! loaded for the attach type it is attached with. Here the same kernel object is parsed
//! again with aya-obj (aya's own parser), its map references are pointed at the maps aya
//! already made (so these programs share every map with the others), and the two programs
//! are loaded and linked to the cgroup with `bpf(2)`.
//!
//! A kernel without these hooks (before 6.7) refuses the load; the daemon then runs
//! without unix-socket judging and says so.
use std::{
    collections::HashSet,
    ffi::CString,
    fs::File,
    os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
    path::PathBuf,
};

use aya::{Ebpf, maps::Map};

use super::bpf_sys::{BPF_BTF_LOAD, BPF_LINK_CREATE, BPF_PROG_LOAD, bpf, obj_pin};

/// The program type and attach types used here (`include/uapi/linux/bpf.h`).
const BPF_PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
pub const BPF_CGROUP_UNIX_CONNECT: u32 = 49;
pub const BPF_CGROUP_UNIX_SENDMSG: u32 = 50;

#[derive(Debug, thiserror::Error)]
pub enum SideloadError {
    #[error("cannot parse the kernel object for {program}: {message}")]
    Parse { program: &'static str, message: String },
    #[error("kernel program {program} is missing from the object")]
    Missing { program: &'static str },
    #[error("the kernel refuses to load {program}: {source}{log}")]
    Load { program: &'static str, source: std::io::Error, log: String },
    #[error("cannot attach {program} to the cgroup: {source}")]
    Attach { program: &'static str, source: std::io::Error },
    #[error("cannot pin the link of {program} at {path}: {source}")]
    Pin { program: &'static str, path: PathBuf, source: std::io::Error },
}

/// Loaded programs and their links; dropping this detaches them.
#[derive(Default)]
pub struct Sideloaded {
    _programs: Vec<OwnedFd>,
    _links: Vec<OwnedFd>,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
}

#[repr(C)]
#[derive(Default)]
struct BtfLoadAttr {
    btf: u64,
    btf_log_buf: u64,
    btf_size: u32,
    btf_log_size: u32,
    btf_log_level: u32,
}

#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
}

/// The map data behind a map of any kind the programs use.
fn map_fd(map: &Map) -> Option<RawFd> {
    let data = match map {
        Map::Array(m)
        | Map::HashMap(m)
        | Map::LruHashMap(m)
        | Map::PerCpuArray(m)
        | Map::PerCpuHashMap(m)
        | Map::PerCpuLruHashMap(m)
        | Map::LpmTrie(m)
        | Map::ProgramArray(m)
        | Map::RingBuf(m) => m,
        _ => return None,
    };
    Some(data.fd().as_fd().as_raw_fd())
}

/// Load `programs` (name, attach type) from `object` against `ebpf`'s maps, attach each
/// to `cgroup` and pin its link where `pin_path` says.
pub fn load(
    object: &[u8],
    ebpf: &Ebpf,
    programs: &[(&'static str, u32)],
    cgroup: &File,
    mut pin_path: impl FnMut(&'static str) -> PathBuf,
) -> Result<Sideloaded, SideloadError> {
    let first = programs.first().map_or("", |(name, _)| name);
    let parse_err = |message: String| SideloadError::Parse { program: first, message };
    let mut obj = aya_obj::Object::parse(object).map_err(|e| parse_err(e.to_string()))?;
    let text_sections: HashSet<usize> = obj.functions.keys().map(|(section, _)| *section).collect();
    let fds: Vec<(String, RawFd)> =
        ebpf.maps().filter_map(|(name, map)| map_fd(map).map(|fd| (name.to_owned(), fd))).collect();
    let wanted: Vec<(String, RawFd, aya_obj::Map)> = fds
        .into_iter()
        .filter_map(|(name, fd)| obj.maps.get(&name).cloned().map(|m| (name, fd, m)))
        .collect();
    obj.relocate_maps(wanted.iter().map(|(n, fd, m)| (n.as_str(), *fd, m)), &text_sections)
        .map_err(|e| parse_err(e.to_string()))?;
    obj.relocate_calls(&text_sections).map_err(|e| parse_err(e.to_string()))?;
    // The programs' BTF: the verifier wants function info for `bpf_loop` callbacks. This
    // kernel is new enough (6.7+) for every BTF feature, so nothing is sanitised away.
    let features = aya_obj::btf::BtfFeatures::new(true, true, true, true, true, true, true, true);
    let btf = obj
        .fixup_and_sanitize_btf(&features)
        .map_err(|e| parse_err(e.to_string()))?
        .ok_or_else(|| parse_err("the object carries no BTF".into()))?
        .to_bytes();
    let mut attr =
        BtfLoadAttr { btf: btf.as_ptr() as u64, btf_size: btf.len() as u32, ..Default::default() };
    let btf_fd = bpf(BPF_BTF_LOAD, &mut attr).map_err(|source| SideloadError::Load {
        program: first,
        source,
        log: " (loading the object's BTF)".into(),
    })?;
    // SAFETY: a new fd the kernel just gave us.
    let btf_fd = unsafe { OwnedFd::from_raw_fd(btf_fd) };
    let license = CString::new("Dual MIT/GPL").expect("no NUL");
    let mut loaded = Sideloaded::default();
    for &(program, attach_type) in programs {
        let key =
            obj.programs.get(program).ok_or(SideloadError::Missing { program })?.function_key();
        let function = obj.functions.get(&key).ok_or(SideloadError::Missing { program })?;
        let mut name = [0u8; 16];
        for (dst, src) in name.iter_mut().zip(program.bytes().take(15)) {
            *dst = src;
        }
        let func_info = function.func_info.func_info_bytes();
        let line_info = function.line_info.line_info_bytes();
        let load = |log: &mut Vec<u8>| {
            let mut attr = ProgLoadAttr {
                prog_btf_fd: btf_fd.as_raw_fd() as u32,
                func_info_rec_size: function.func_info_rec_size as u32,
                func_info: func_info.as_ptr() as u64,
                func_info_cnt: function.func_info.num_info,
                line_info_rec_size: function.line_info_rec_size as u32,
                line_info: line_info.as_ptr() as u64,
                line_info_cnt: function.line_info.num_info,
                prog_type: BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
                insn_cnt: function.instructions.len() as u32,
                insns: function.instructions.as_ptr() as u64,
                license: license.as_ptr() as u64,
                log_level: if log.is_empty() { 0 } else { 1 },
                log_size: log.len() as u32,
                log_buf: if log.is_empty() { 0 } else { log.as_mut_ptr() as u64 },
                prog_name: name,
                expected_attach_type: attach_type,
                ..Default::default()
            };
            bpf(BPF_PROG_LOAD, &mut attr)
        };
        // Without a log first; on failure again with one, to say why.
        let prog = load(&mut Vec::new()).or_else(|_| {
            let mut log = vec![0u8; 4 << 20];
            load(&mut log).map_err(|source| {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                let text = String::from_utf8_lossy(&log[..end]);
                let tail: Vec<&str> = text.lines().rev().take(6).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                SideloadError::Load { program, source, log: format!("\n{}", tail.join("\n")) }
            })
        })?;
        // SAFETY: a new fd the kernel just gave us, owned from here on.
        let prog = unsafe { OwnedFd::from_raw_fd(prog) };
        let mut link = LinkCreateAttr {
            prog_fd: prog.as_raw_fd() as u32,
            target_fd: cgroup.as_raw_fd() as u32,
            attach_type,
            flags: 0,
        };
        let link = bpf(BPF_LINK_CREATE, &mut link)
            .map_err(|source| SideloadError::Attach { program, source })?;
        loaded._programs.push(prog);
        // SAFETY: as above.
        let link = unsafe { OwnedFd::from_raw_fd(link) };
        let path = pin_path(program);
        obj_pin(link.as_fd(), &path).map_err(|source| SideloadError::Pin {
            program,
            path: path.clone(),
            source,
        })?;
        loaded._links.push(link);
    }
    Ok(loaded)
}
