//! Struct member offsets from the running kernel's BTF (`/sys/kernel/btf/vmlinux`), so the
//! kernel programs can read `task_struct` fields without compile-time headers.
//!
//! Only what is needed is parsed: the type section is walked to find `struct task_struct`
//! and its direct members. Layout per the kernel's `Documentation/bpf/btf.rst`.
use std::path::{Path, PathBuf};

use agent_common::config::TaskOffsets;

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;

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

/// The (struct, member) pairs the programs read, each a direct member.
const WANTED: [(&str, &str); 8] = [
    ("task_struct", "real_parent"),
    ("task_struct", "tgid"),
    ("task_struct", "pid"),
    ("task_struct", "exit_code"),
    ("task_struct", "cgroups"),
    ("css_set", "dfl_cgrp"),
    ("cgroup", "kn"),
    ("kernfs_node", "id"),
];

/// Read the offsets the programs need from the BTF file at `path`.
pub fn task_offsets(path: &Path) -> Result<TaskOffsets, BtfError> {
    let data = std::fs::read(path)
        .map_err(|source| BtfError::Missing { path: path.to_path_buf(), source })?;
    let mut offsets = [0u32; WANTED.len()];
    for (strukt, members) in ["task_struct", "css_set", "cgroup", "kernfs_node"]
        .into_iter()
        .map(|name| (name, struct_members(&data, name)))
    {
        let members =
            members.map_err(|what| BtfError::Malformed { path: path.to_path_buf(), what })?;
        for (i, (s, member)) in WANTED.iter().enumerate() {
            if *s != strukt {
                continue;
            }
            offsets[i] = members
                .iter()
                .find(|(name, _)| name == member)
                .map(|(_, bits)| bits / 8)
                .ok_or(BtfError::NoMember { path: path.to_path_buf(), strukt: s, member })?;
        }
    }
    Ok(TaskOffsets {
        real_parent: offsets[0],
        tgid: offsets[1],
        pid: offsets[2],
        exit_code: offsets[3],
        cgroups: offsets[4],
        css_set_dfl_cgrp: offsets[5],
        cgroup_kn: offsets[6],
        kernfs_node_id: offsets[7],
    })
}

fn u32_at(data: &[u8], at: usize) -> Result<u32, String> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| format!("truncated at byte {at}"))
}

/// The direct members of the first struct named `wanted`: (name, bit offset).
pub fn struct_members(data: &[u8], wanted: &str) -> Result<Vec<(String, u32)>, String> {
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
    let name = |off: u32| -> Result<&str, String> {
        let tail =
            strings.get(off as usize..).ok_or(format!("string offset {off} out of bounds"))?;
        let end = tail.iter().position(|&b| b == 0).ok_or("unterminated string")?;
        std::str::from_utf8(&tail[..end]).map_err(|_| format!("string at {off} is not UTF-8"))
    };
    let mut at = 0;
    while at < types.len() {
        let (name_off, info) = (u32_at(types, at)?, u32_at(types, at + 4)?);
        let (kind, vlen, kind_flag) = ((info >> 24) & 0x1f, (info & 0xffff) as usize, info >> 31);
        at += 12;
        if kind == KIND_STRUCT && name(name_off)? == wanted {
            let mut members = Vec::with_capacity(vlen);
            for i in 0..vlen {
                let m = at + i * 12;
                let offset = u32_at(types, m + 8)?;
                let bits = if kind_flag == 1 { offset & 0x00ff_ffff } else { offset };
                members.push((name(u32_at(types, m)?)?.to_owned(), bits));
            }
            return Ok(members);
        }
        at += match kind {
            1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
            3 => 12,                      // ARRAY
            4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
            6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
            2 | 7..=12 | 16 | 18 => 0,    // PTR, FWD, TYPEDEF, modifiers, FUNC, FLOAT, TYPE_TAG
            other => return Err(format!("unknown BTF kind {other} at type byte {}", at - 12)),
        };
    }
    Err(format!("no struct {wanted}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob with an INT, a PTR, an ENUM of two values and the four structs read.
    fn blob() -> Vec<u8> {
        let strings: &[u8] = b"\0int\0task_struct\0pid\0tgid\0real_parent\0exit_code\0e\0A\0B\0cgroups\0css_set\0dfl_cgrp\0cgroup\0kn\0kernfs_node\0id\0";
        let off = |s: &str| {
            let needle = format!("\0{s}\0");
            strings.windows(needle.len()).position(|w| w == needle.as_bytes()).unwrap() as u32 + 1
        };
        let mut types = Vec::new();
        let mut push = |words: &[u32]| words.iter().for_each(|w| types.extend(w.to_le_bytes()));
        push(&[off("int"), 1 << 24, 4, 0x20]); // INT
        push(&[0, 2 << 24, 1]); // PTR
        push(&[off("e"), (6 << 24) | 2, 4, off("A"), 0, off("B"), 1]); // ENUM
        push(&[off("task_struct"), (4 << 24) | 5, 4096]);
        push(&[off("pid"), 1, 8 * 100]);
        push(&[off("tgid"), 1, 8 * 104]);
        push(&[off("real_parent"), 2, 8 * 200]);
        push(&[off("exit_code"), 1, 8 * 300]);
        push(&[off("cgroups"), 2, 8 * 400]);
        push(&[off("css_set"), (4 << 24) | 1, 256]);
        push(&[off("dfl_cgrp"), 2, 8 * 24]);
        push(&[off("cgroup"), (4 << 24) | 1, 1024]);
        push(&[off("kn"), 2, 8 * 32]);
        // kind_flag set: bitfield-style offsets (low 24 bits).
        push(&[off("kernfs_node"), (1 << 31) | (4 << 24) | 1, 128]);
        push(&[off("id"), 1, (8 << 24) | (8 * 40)]);
        let mut data = Vec::new();
        data.extend(BTF_MAGIC.to_le_bytes());
        data.extend([1, 0]);
        for w in [24u32, 0, types.len() as u32, types.len() as u32, strings.len() as u32] {
            data.extend(w.to_le_bytes());
        }
        data.extend(types);
        data.extend(strings);
        data
    }

    #[test]
    fn finds_task_struct_offsets_past_other_kinds() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), blob()).unwrap();
        let offsets = task_offsets(file.path()).unwrap();
        assert_eq!(
            offsets,
            TaskOffsets {
                real_parent: 200,
                tgid: 104,
                pid: 100,
                exit_code: 300,
                cgroups: 400,
                css_set_dfl_cgrp: 24,
                cgroup_kn: 32,
                kernfs_node_id: 40,
            }
        );
    }

    #[test]
    fn missing_file_names_the_path_and_the_kernel_option() {
        let err = task_offsets(Path::new("/nonexistent/vmlinux")).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/vmlinux"), "{err}");
        assert!(err.contains("CONFIG_DEBUG_INFO_BTF"), "{err}");
    }

    #[test]
    fn truncated_or_foreign_data_is_refused_not_misread() {
        let data = blob();
        for cut in [0, 10, 30, data.len() - 20] {
            assert!(struct_members(&data[..cut], "task_struct").is_err(), "cut at {cut}");
        }
        assert!(struct_members(b"ELF not btf at all.....", "task_struct").is_err());
        assert_eq!(struct_members(&data, "mm_struct").unwrap_err(), "no struct mm_struct");
    }

    #[test]
    fn reads_this_machines_kernel_when_it_has_btf() {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        if !path.exists() {
            eprintln!("skipped: no {}", path.display());
            return;
        }
        let offsets = task_offsets(path).unwrap();
        assert!(offsets.tgid == offsets.pid + 4, "pid and tgid are adjacent: {offsets:?}");
        assert!(offsets.real_parent > offsets.tgid, "{offsets:?}");
    }
}
