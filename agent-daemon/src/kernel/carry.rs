//! Carrying map entries from an earlier generation's pinned maps to this one's, when the two
//! share a layout version but not their sizes (`kernel.max_tracked_processes` or the ring
//! buffer changed): the key and value formats are the same, so entries copy byte for byte.
//! Maps of another version are never read.
use std::{
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd},
    path::Path,
};

use super::bpf_sys::{
    BPF_MAP_GET_NEXT_KEY, BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_OBJ_GET_INFO_BY_FD, bpf,
    obj_get,
};

const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_MAP_TYPE_PERCPU_HASH: u32 = 5;
const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;
const BPF_MAP_TYPE_LRU_HASH: u32 = 9;
const BPF_MAP_TYPE_LRU_PERCPU_HASH: u32 = 10;
const BPF_MAP_TYPE_LPM_TRIE: u32 = 11;
const BPF_ANY: u64 = 0;
const BPF_NOEXIST: u64 = 1;

/// What a copy did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub entries: u64,
    /// Entries the new map had no room for (smaller than the old), or that it had already.
    pub left: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CarryError {
    #[error("cannot open pinned map {path}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("map {path}: {what}")]
    Mismatch { path: String, what: String },
    #[error("map {path}: {call}: {source}")]
    Call { path: String, call: &'static str, source: std::io::Error },
}

#[derive(Debug, Clone, Copy)]
struct Info {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
}

#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// `struct bpf_map_info` up to the fields read here, and room for the rest (zero).
#[repr(C)]
#[derive(Default)]
struct MapInfo {
    map_type: u32,
    id: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    rest: [u64; 12],
}

fn info(fd: BorrowedFd<'_>) -> std::io::Result<Info> {
    let mut raw = MapInfo::default();
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<MapInfo>() as u32,
        info: &mut raw as *mut MapInfo as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(Info {
        map_type: raw.map_type,
        key_size: raw.key_size,
        value_size: raw.value_size,
        max_entries: raw.max_entries,
    })
}

#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

fn elem(
    cmd: libc::c_long,
    fd: BorrowedFd<'_>,
    key: *const u8,
    value: *mut u8,
    flags: u64,
) -> std::io::Result<()> {
    let mut attr = ElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        _pad: 0,
        key: key as u64,
        value: value as u64,
        flags,
    };
    bpf(cmd, &mut attr).map(|_| ())
}

/// Copy every entry of the map pinned at `from` into the one pinned at `to`; with
/// `overwrite` off, entries `to` already has are kept.
pub fn copy(from: &Path, to: &Path, overwrite: bool) -> Result<Copied, CarryError> {
    let name = to.display().to_string();
    let open = |path: &Path| {
        obj_get(path)
            .map_err(|source| CarryError::Open { path: path.display().to_string(), source })
    };
    let (old, new) = (open(from)?, open(to)?);
    let call = |call, source| CarryError::Call { path: name.clone(), call, source };
    let a = info(old.as_fd()).map_err(|e| call("BPF_OBJ_GET_INFO_BY_FD", e))?;
    let b = info(new.as_fd()).map_err(|e| call("BPF_OBJ_GET_INFO_BY_FD", e))?;
    if (a.map_type, a.key_size, a.value_size) != (b.map_type, b.key_size, b.value_size) {
        return Err(CarryError::Mismatch {
            path: name,
            what: format!("type, key and value sizes {a:?} and {b:?} differ"),
        });
    }
    let per_cpu = matches!(
        a.map_type,
        BPF_MAP_TYPE_PERCPU_HASH | BPF_MAP_TYPE_PERCPU_ARRAY | BPF_MAP_TYPE_LRU_PERCPU_HASH
    );
    let cpus =
        if per_cpu { aya::util::nr_cpus().map_err(|(_, e)| call("possible CPUs", e))? } else { 1 };
    let value_len = if per_cpu {
        (a.value_size as usize).div_ceil(8) * 8 * cpus
    } else {
        a.value_size as usize
    };
    let mut value = vec![0u8; value_len];
    let flags = if overwrite { BPF_ANY } else { BPF_NOEXIST };
    let mut copied = Copied::default();
    let put = |key: &[u8], value: &mut [u8], copied: &mut Copied| -> Result<(), CarryError> {
        match elem(BPF_MAP_UPDATE_ELEM, new.as_fd(), key.as_ptr(), value.as_mut_ptr(), flags) {
            Ok(()) => copied.entries += 1,
            // Full (a smaller map), or already there (not overwriting).
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::E2BIG | libc::EEXIST | libc::ENOSPC)) =>
            {
                copied.left += 1
            }
            Err(e) => return Err(call("BPF_MAP_UPDATE_ELEM", e)),
        }
        Ok(())
    };
    match a.map_type {
        BPF_MAP_TYPE_ARRAY | BPF_MAP_TYPE_PERCPU_ARRAY => {
            for index in 0..a.max_entries {
                let key = index.to_ne_bytes();
                elem(BPF_MAP_LOOKUP_ELEM, old.as_fd(), key.as_ptr(), value.as_mut_ptr(), 0)
                    .map_err(|e| call("BPF_MAP_LOOKUP_ELEM", e))?;
                if index >= b.max_entries {
                    copied.left += u64::from(value.iter().any(|&v| v != 0));
                    continue;
                }
                put(&key, &mut value, &mut copied)?;
            }
        }
        BPF_MAP_TYPE_HASH
        | BPF_MAP_TYPE_PERCPU_HASH
        | BPF_MAP_TYPE_LRU_HASH
        | BPF_MAP_TYPE_LRU_PERCPU_HASH
        | BPF_MAP_TYPE_LPM_TRIE => {
            let mut key = vec![0u8; a.key_size as usize];
            let mut next = vec![0u8; a.key_size as usize];
            let mut first = true;
            loop {
                let from_key = if first { std::ptr::null() } else { key.as_ptr() };
                match elem(BPF_MAP_GET_NEXT_KEY, old.as_fd(), from_key, next.as_mut_ptr(), 0) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break,
                    Err(e) => return Err(call("BPF_MAP_GET_NEXT_KEY", e)),
                }
                first = false;
                std::mem::swap(&mut key, &mut next);
                match elem(BPF_MAP_LOOKUP_ELEM, old.as_fd(), key.as_ptr(), value.as_mut_ptr(), 0) {
                    Ok(()) => put(&key, &mut value, &mut copied)?,
                    // Removed meanwhile (an exit, an LRU eviction).
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                    Err(e) => return Err(call("BPF_MAP_LOOKUP_ELEM", e)),
                }
            }
        }
        other => {
            return Err(CarryError::Mismatch {
                path: name,
                what: format!("map type {other} is not copied"),
            });
        }
    }
    Ok(copied)
}
