//! io_uring operation names, as the kernel numbers them (`enum io_uring_op`, Linux 6.18).
//! Opcode 63 and above are one name, `other`.

const NAMES: [&str; 63] = [
    "nop",
    "readv",
    "writev",
    "fsync",
    "read_fixed",
    "write_fixed",
    "poll_add",
    "poll_remove",
    "sync_file_range",
    "sendmsg",
    "recvmsg",
    "timeout",
    "timeout_remove",
    "accept",
    "async_cancel",
    "link_timeout",
    "connect",
    "fallocate",
    "openat",
    "close",
    "files_update",
    "statx",
    "read",
    "write",
    "fadvise",
    "madvise",
    "send",
    "recv",
    "openat2",
    "epoll_ctl",
    "splice",
    "provide_buffers",
    "remove_buffers",
    "tee",
    "shutdown",
    "renameat",
    "unlinkat",
    "mkdirat",
    "symlinkat",
    "linkat",
    "msg_ring",
    "fsetxattr",
    "setxattr",
    "fgetxattr",
    "getxattr",
    "socket",
    "uring_cmd",
    "send_zc",
    "sendmsg_zc",
    "read_multishot",
    "waitid",
    "futex_wait",
    "futex_wake",
    "futex_waitv",
    "fixed_fd_install",
    "ftruncate",
    "bind",
    "listen",
    "recv_zc",
    "epoll_wait",
    "readv_fixed",
    "writev_fixed",
    "pipe",
];

/// Opcodes from here up share one name (the kernel's bitmap of them has 64 bits).
pub const OTHER: u32 = 63;

pub fn name(opcode: u32) -> &'static str {
    NAMES.get(opcode as usize).copied().unwrap_or("other")
}

/// The opcode's bit in a phase policy: its number, or [`OTHER`].
pub fn bit(name: &str) -> Option<u32> {
    if name == "other" {
        return Some(OTHER);
    }
    NAMES.iter().position(|n| *n == name).map(|i| i as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_bits_agree() {
        assert_eq!(name(18), "openat");
        assert_eq!(name(22), "read");
        assert_eq!(name(70), "other");
        for opcode in 0..=OTHER {
            assert_eq!(bit(name(opcode)), Some(opcode));
        }
        assert_eq!(bit("nonsense"), None);
    }
}
