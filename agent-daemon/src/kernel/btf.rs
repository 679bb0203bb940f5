//! Struct member offsets from the running kernel's BTF (`/sys/kernel/btf/vmlinux`), so the
//! kernel programs can read kernel structs without compile-time headers.
//!
//! The type section is walked once into a table; a member is named by a dotted path
//! (`file.f_path.dentry`) whose steps may pass through anonymous structs and unions, as
//! recent kernels wrap many fields. Layout per the kernel's `Documentation/bpf/btf.rst`.
use std::path::{Path, PathBuf};

use agent_common::config::KernelOffsets;

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
/// Kinds that only qualify another type: typedef, volatile, const, restrict, type tag.
const QUALIFIERS: [u32; 5] = [8, 9, 10, 11, 18];

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error(
        "kernel BTF not found at {path}: paddock needs a kernel built with \
         CONFIG_DEBUG_INFO_BTF=y ({source})"
    )]
    Missing { path: PathBuf, source: std::io::Error },
    #[error("kernel BTF at {path} is malformed: {what}")]
    Malformed { path: PathBuf, what: String },
    #[error("kernel BTF at {path} has no member {member} in struct {strukt}")]
    NoMember { path: PathBuf, strukt: &'static str, member: &'static str },
}

struct Type {
    name: String,
    kind: u32,
    /// The referenced type for qualifiers and pointers.
    target: u32,
    /// (name, type id, bit offset) for structs and unions.
    members: Vec<(String, u32, u32)>,
}

/// The types of a BTF blob.
pub struct Btf {
    types: Vec<Type>,
}

fn u32_at(data: &[u8], at: usize) -> Result<u32, String> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| format!("truncated at byte {at}"))
}

impl Btf {
    pub fn parse(data: &[u8]) -> Result<Btf, String> {
        if data.len() < 24 || u16::from_le_bytes([data[0], data[1]]) != BTF_MAGIC {
            return Err("bad magic (not little-endian BTF)".into());
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let (type_off, type_len) = (u32_at(data, 8)? as usize, u32_at(data, 12)? as usize);
        let (str_off, str_len) = (u32_at(data, 16)? as usize, u32_at(data, 20)? as usize);
        let types = data
            .get(hdr_len + type_off..hdr_len + type_off + type_len)
            .ok_or("type section out of bounds")?;
        let strings = data
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or("string section out of bounds")?;
        let name = |off: u32| -> Result<String, String> {
            let tail =
                strings.get(off as usize..).ok_or(format!("string offset {off} out of bounds"))?;
            let end = tail.iter().position(|&b| b == 0).ok_or("unterminated string")?;
            String::from_utf8(tail[..end].to_vec())
                .map_err(|_| format!("string at {off} is not UTF-8"))
        };
        // Type ids start at 1; id 0 is void.
        let mut table = vec![Type { name: String::new(), kind: 0, target: 0, members: Vec::new() }];
        let mut at = 0;
        while at < types.len() {
            let (name_off, info, size_or_type) =
                (u32_at(types, at)?, u32_at(types, at + 4)?, u32_at(types, at + 8)?);
            let (kind, vlen, kind_flag) =
                ((info >> 24) & 0x1f, (info & 0xffff) as usize, info >> 31);
            at += 12;
            let mut members = Vec::new();
            if kind == KIND_STRUCT || kind == KIND_UNION {
                members.reserve(vlen);
                for i in 0..vlen {
                    let m = at + i * 12;
                    let offset = u32_at(types, m + 8)?;
                    let bits = if kind_flag == 1 { offset & 0x00ff_ffff } else { offset };
                    members.push((name(u32_at(types, m)?)?, u32_at(types, m + 4)?, bits));
                }
            }
            table.push(Type { name: name(name_off)?, kind, target: size_or_type, members });
            at += match kind {
                1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
                3 => 12,                      // ARRAY
                4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
                6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
                2 | 7..=12 | 16 | 18 => 0,    // PTR, FWD, TYPEDEF, modifiers, FUNC, FLOAT, TYPE_TAG
                other => return Err(format!("unknown BTF kind {other} at type byte {}", at - 12)),
            };
        }
        Ok(Btf { types: table })
    }

    /// The struct or union a type id stands for, through qualifiers.
    fn resolve(&self, mut id: u32) -> Option<&Type> {
        for _ in 0..16 {
            let t = self.types.get(id as usize)?;
            if QUALIFIERS.contains(&t.kind) {
                id = t.target;
                continue;
            }
            return (t.kind == KIND_STRUCT || t.kind == KIND_UNION).then_some(t);
        }
        None
    }

    /// The bit offset of member `name` in `t`, looking inside anonymous members; and the
    /// member's type id.
    fn member(&self, t: &Type, name: &str, depth: u32) -> Option<(u32, u32)> {
        for (member, type_id, bits) in &t.members {
            if member == name {
                return Some((*bits, *type_id));
            }
        }
        if depth > 4 {
            return None;
        }
        t.members.iter().filter(|(member, _, _)| member.is_empty()).find_map(|(_, id, bits)| {
            let inner = self.resolve(*id)?;
            self.member(inner, name, depth + 1).map(|(b, id)| (bits + b, id))
        })
    }

    /// The byte offset of the dotted member `path` from the start of struct `strukt`.
    pub fn offset(&self, strukt: &str, path: &str) -> Option<u32> {
        let mut t = self.types.iter().find(|t| t.kind == KIND_STRUCT && t.name == strukt)?;
        let mut bits = 0;
        let steps: Vec<&str> = path.split('.').collect();
        for (i, step) in steps.iter().enumerate() {
            let (b, id) = self.member(t, step, 0)?;
            bits += b;
            if i + 1 < steps.len() {
                t = self.resolve(id)?;
            }
        }
        (bits % 8 == 0).then_some(bits / 8)
    }
}

/// Read the offsets the programs need from the BTF file at `path`. Those of io_uring are
/// 0 when the kernel has no io_uring (the io_uring program is then not attached).
pub fn kernel_offsets(path: &Path) -> Result<KernelOffsets, BtfError> {
    let data = std::fs::read(path)
        .map_err(|source| BtfError::Missing { path: path.to_path_buf(), source })?;
    let btf =
        Btf::parse(&data).map_err(|what| BtfError::Malformed { path: path.to_path_buf(), what })?;
    let need = |strukt: &'static str, member: &'static str| {
        btf.offset(strukt, member).ok_or(BtfError::NoMember {
            path: path.to_path_buf(),
            strukt,
            member,
        })
    };
    let uring = |strukt: &str, member: &str| btf.offset(strukt, member).unwrap_or(0);
    let uring_cmd = uring("io_kiocb", "cmd");
    Ok(KernelOffsets {
        real_parent: need("task_struct", "real_parent")?,
        tgid: need("task_struct", "tgid")?,
        pid: need("task_struct", "pid")?,
        exit_code: need("task_struct", "exit_code")?,
        cgroups: need("task_struct", "cgroups")?,
        css_set_dfl_cgrp: need("css_set", "dfl_cgrp")?,
        cgroup_kn: need("cgroup", "kn")?,
        kernfs_node_id: need("kernfs_node", "id")?,
        thread_status: if cfg!(target_arch = "x86_64") {
            need("task_struct", "thread_info.status")?
        } else {
            0
        },
        signal: need("task_struct", "signal")?,
        signal_live: need("signal_struct", "live")?,
        files: need("task_struct", "files")?,
        files_fdt: need("files_struct", "fdt")?,
        fdt_max_fds: need("fdtable", "max_fds")?,
        fdt_fd: need("fdtable", "fd")?,
        fs: need("task_struct", "fs")?,
        fs_root_mnt: need("fs_struct", "root.mnt")?,
        fs_root_dentry: need("fs_struct", "root.dentry")?,
        fs_pwd_mnt: need("fs_struct", "pwd.mnt")?,
        fs_pwd_dentry: need("fs_struct", "pwd.dentry")?,
        file_mnt: need("file", "f_path.mnt")?,
        file_dentry: need("file", "f_path.dentry")?,
        file_mode: need("file", "f_mode")?,
        dentry_parent: need("dentry", "d_parent")?,
        dentry_name: need("dentry", "d_name.name")?,
        dentry_hash_pprev: need("dentry", "d_hash.pprev")?,
        vfsmount_root: need("vfsmount", "mnt_root")?,
        mount_mnt: need("mount", "mnt")?,
        mount_parent: need("mount", "mnt_parent")?,
        mount_mountpoint: need("mount", "mnt_mountpoint")?,
        bprm_file: need("linux_binprm", "file")?,
        bprm_filename: need("linux_binprm", "filename")?,
        req_opcode: uring("io_kiocb", "opcode"),
        uring_open_dfd: uring_cmd + uring("io_open", "dfd"),
        uring_open_filename: uring_cmd + uring("io_open", "filename"),
        uring_open_flags: uring_cmd + uring("io_open", "how.flags"),
        filename_name: need("filename", "name")?,
        sock_cgroup: need("sock", "sk_cgrp_data.cgroup")?,
        cgroup_root: need("cgroup", "root")?,
        cgroup_root_hierarchy_id: need("cgroup_root", "hierarchy_id")?,
    })
}

/// Whether the kernel's BTF knows io_uring requests (the io_uring program needs them).
pub fn has_io_uring(offsets: &KernelOffsets) -> bool {
    offsets.req_opcode != 0 && offsets.uring_open_filename != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob with `struct inner { int a; int b; }`, and `struct outer { int x; union {
    /// struct inner in; }; }` (the union anonymous), to check paths through both.
    fn blob() -> Vec<u8> {
        let mut strings = b"\0int\0inner\0a\0b\0outer\0x\0in\0".to_vec();
        let s = |name: &str, strings: &[u8]| {
            let needle = format!("\0{name}\0");
            strings.windows(needle.len()).position(|w| w == needle.as_bytes()).unwrap() as u32 + 1
        };
        let mut types = Vec::new();
        let mut push = |words: &[u32]| words.iter().for_each(|w| types.extend(w.to_le_bytes()));
        // 1: int (4 bytes)
        push(&[s("int", &strings), 1 << 24, 4, 32]);
        // 2: struct inner { a @0, b @32 bits }
        push(&[s("inner", &strings), (KIND_STRUCT << 24) | 2, 8]);
        push(&[s("a", &strings), 1, 0, s("b", &strings), 1, 32]);
        // 3: anonymous union { struct inner in @0 }
        push(&[0, (KIND_UNION << 24) | 1, 8]);
        push(&[s("in", &strings), 2, 0]);
        // 4: struct outer { int x @0; union @64 bits }
        push(&[s("outer", &strings), (KIND_STRUCT << 24) | 2, 16]);
        push(&[s("x", &strings), 1, 0, 0, 3, 64]);
        strings.push(0);
        let mut data = Vec::new();
        data.extend(BTF_MAGIC.to_le_bytes());
        data.extend([1u8, 0]);
        data.extend(24u32.to_le_bytes());
        data.extend(0u32.to_le_bytes());
        data.extend((types.len() as u32).to_le_bytes());
        data.extend((types.len() as u32).to_le_bytes());
        data.extend((strings.len() as u32).to_le_bytes());
        data.extend(types);
        data.extend(strings);
        data
    }

    #[test]
    fn dotted_paths_pass_through_anonymous_members() {
        let btf = Btf::parse(&blob()).unwrap();
        assert_eq!(btf.offset("outer", "x"), Some(0));
        assert_eq!(btf.offset("outer", "in"), Some(8), "inside the anonymous union");
        assert_eq!(btf.offset("outer", "in.b"), Some(12));
        assert_eq!(btf.offset("inner", "b"), Some(4));
        assert_eq!(btf.offset("outer", "in.c"), None);
        assert_eq!(btf.offset("nowhere", "x"), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Btf::parse(b"").is_err());
        assert!(Btf::parse(&[0x9f, 0xeb, 1, 0, 24, 0, 0, 0, 0, 0, 0, 0, 255, 0, 0, 0]).is_err());
        let mut truncated = blob();
        truncated.truncate(40);
        assert!(Btf::parse(&truncated).is_err());
    }

    #[test]
    fn this_kernel_has_every_offset_the_programs_read() {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        if !path.exists() {
            eprintln!("skipped: no kernel BTF here");
            return;
        }
        let o = kernel_offsets(path).unwrap();
        assert!(o.file_dentry > o.file_mnt, "{o:?}");
        assert_eq!(o.file_dentry - o.file_mnt, 8, "struct path is (mnt, dentry)");
        assert!(o.dentry_name > 0 && o.signal_live > 0, "{o:?}");
    }
}
