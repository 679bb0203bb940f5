//! Does exactly what a test asks, once per step, so tests can count what paddock saw.
//!
//! `paddock-test-actor STEP [STEP...]` where a step is one of:
//! - `exec:PATH[:ARG]`   run PATH (fork + exec) and wait for it
//! - `write:FILE`        create FILE and write a line to it
//! - `read:FILE`         open FILE read-only and read it
//! - `connect:ADDR`      TCP connect to ADDR (host:port); a refusal is not an error
//! - `udp:ADDR`          send one UDP datagram to ADDR
//! - `getppid:N`         call getppid(2) N times
//! - `fstat`             the 64-bit fstat(2) syscall itself, on stdin
//! - `personality`       call personality(2) to read the execution domain (a syscall
//!   ordinary programs never make)
//! - `sleep:MS`          sleep
//! - `touch-many:DIR:N`  create N files in DIR as fast as possible
//! - `open-many:FILE:N`  open FILE for writing (no create) and close it, N times
//! - `daemonize`         double-fork and setsid; the rest of the steps run in the grandchild
//!   while the original process exits at once
//! - `pid:FILE`          write this process's pid to FILE
//! - `open-mapped:FILE`  open the path written in FILE, passing a pointer into a fresh,
//!   never-touched mapping of FILE (the path is not paged in when the syscall starts)
//!
//! and the evasion tricks of `evasion.rs`:
//! - `leader-exit`       the rest of the steps run in a second thread; the main thread
//!   calls `pthread_exit` (the process lives on without its leader)
//! - `int80:NR`, `int80-open:PATH`   a 32-bit syscall through `int 0x80`
//! - `x32:NR`, `raw-syscall:NR`      an x32 syscall, a number outside the tables
//! - `escape:DIR`        move this process into cgroup DIR
//! - `open-race:ALLOWED:SECRET:N`    open a path another thread keeps switching
//! - `rename:A:B`, `link:A:B`, `symlink:T:L`, `unlink:P`, `mkdir:P`, `truncate:P`,
//!   `unlink-unreadable` (a path at an address nobody can read)
//! - `uring-read:FILE`, `uring-open:FILE`   io_uring read, io_uring open + read
//! - `exec-fd:PATH`, `exec-memfd:PATH`      run PATH through a descriptor / a memfd copy
//! - `memfd`             make and write a memfd (without running it)
//! - `raw-socket`, `packet-socket`, `ping-socket`, `unix-connect:PATH`
//! - `mptcp-connect:ADDR`, `connect-mapped:PORT`
//!
//! and the loads of `load.rs`:
//! - `fork-bomb:MS:CAP:FILE`   every process forks for MS ms (at most CAP alive); the
//!   outcome (forks made, refused with EAGAIN, most alive at once) goes to FILE
//! - `open-cycle:DIR:N:MS:FILE`   open N files of DIR in turn for MS ms; the count to FILE
//! - `connect-cycle:N:MS:FILE`   UDP-connect to 127.0.0.1 ports 1..=N in turn for MS ms
//!
//! and the lookups of `dns.rs`:
//! - `resolve:SERVER:NAME:TYPE`        ask resolver SERVER (IPv4, port 53) for NAME (A, AAAA)
//! - `dial:SERVER:NAME:TYPE:PORT`      resolve, then connect to each address on PORT
//! - `race:SERVER:NAME:FILE:PORT`      resolve from an unconnected socket whose port and
//!   query id go to FILE, take every reply for a second, connect to all they gave
//! - `dial-tcp:SERVER:NAME:PORT`       resolve over TCP, then connect to each address
//! - `resolve6:NAME:plain|hop`        ask [::1]:53, with a hop-by-hop header if `hop`
//! - `dns-serve:ADDR:NAME:IP:MS`, `dns-loop:SERVER:NAME:N:FILE`, `echo-serve:ADDR:MS`,
//!   `echo-loop:ADDR:N:FILE`   the loads of `cargo xtask bench dns`
mod dns;
mod evasion;
mod load;

use std::{
    io::{Read as _, Write as _},
    net::{TcpStream, UdpSocket},
    process::Command,
    time::Duration,
};

fn step(step: &str) -> Result<(), String> {
    if let Some(result) = trick(step) {
        return result;
    }
    let (verb, arg) = step.split_once(':').unwrap_or((step, ""));
    let fail = |e: std::io::Error| format!("{step}: {e}");
    match verb {
        "exec" => {
            let mut parts = arg.splitn(2, ':');
            let path = parts.next().unwrap_or_default();
            let mut cmd = Command::new(path);
            if let Some(a) = parts.next() {
                cmd.arg(a);
            }
            cmd.status().map_err(fail)?;
        }
        "write" => {
            let mut f = std::fs::File::create(arg).map_err(fail)?;
            writeln!(f, "written by paddock-test-actor").map_err(fail)?;
        }
        "read" => {
            let mut s = String::new();
            std::fs::File::open(arg).and_then(|mut f| f.read_to_string(&mut s)).map_err(fail)?;
        }
        "connect" => {
            let addr = arg.parse().map_err(|e| format!("{step}: {e}"))?;
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(2));
        }
        "udp" => {
            let socket = UdpSocket::bind("127.0.0.1:0").map_err(fail)?;
            socket.send_to(b"paddock", arg).map_err(fail)?;
        }
        "getppid" => {
            let n: u64 = arg.parse().map_err(|e| format!("{step}: {e}"))?;
            for _ in 0..n {
                // SAFETY: no arguments, cannot fail.
                unsafe { libc::getppid() };
            }
        }
        "fstat" => {
            // SAFETY: fstat(0) into a zeroed buffer of the right size; the 64-bit syscall
            // itself (glibc would use newfstatat).
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            unsafe { libc::syscall(libc::SYS_fstat, 0, &mut st) };
        }
        "personality" => {
            // SAFETY: 0xffffffff only queries the current persona.
            unsafe { libc::personality(0xffff_ffff) };
        }
        "sleep" => std::thread::sleep(Duration::from_millis(arg.parse().unwrap_or(0))),
        "touch-many" => {
            let (dir, n) = arg.rsplit_once(':').ok_or(format!("{step}: want DIR:N"))?;
            let n: u64 = n.parse().map_err(|e| format!("{step}: {e}"))?;
            for i in 0..n {
                std::fs::File::create(format!("{dir}/f{i}")).map_err(fail)?;
            }
        }
        "open-many" => {
            let (file, n) = arg.rsplit_once(':').ok_or(format!("{step}: want FILE:N"))?;
            let n: u64 = n.parse().map_err(|e| format!("{step}: {e}"))?;
            for _ in 0..n {
                std::fs::OpenOptions::new().write(true).open(file).map_err(fail)?;
            }
        }
        "pid" => std::fs::write(arg, std::process::id().to_string()).map_err(fail)?,
        "open-mapped" => open_mapped(arg).map_err(fail)?,
        other => return Err(format!("unknown step {other:?}")),
    }
    Ok(())
}

/// The evasion tricks; `None` when `step` is not one.
fn trick(step: &str) -> Option<Result<(), String>> {
    let (verb, arg) = step.split_once(':').unwrap_or((step, ""));
    Some(match verb {
        "int80" => evasion::int80_call(arg),
        "int80-open" => evasion::int80_open(arg),
        "x32" => evasion::x32(arg),
        "raw-syscall" => evasion::raw_syscall(arg),
        "escape" => evasion::escape(arg),
        "open-race" => evasion::open_race(arg),
        "rename" | "link" | "symlink" | "unlink" | "mkdir" | "truncate" => {
            evasion::path_op(verb, arg)
        }
        "unlink-unreadable" => evasion::unlink_unreadable(),
        "uring-read" | "uring-open" => evasion::uring(verb, arg),
        "exec-fd" | "exec-memfd" => evasion::exec_fd(verb, arg),
        "memfd" => evasion::memfd(),
        "raw-socket" | "packet-socket" | "ping-socket" => evasion::socket(verb),
        "unix-connect" => evasion::unix_connect(arg),
        "unix-flood" => evasion::unix_flood(arg),
        "mptcp-connect" => evasion::mptcp_connect(arg),
        "connect-mapped" => evasion::connect_mapped(arg),
        "fork-bomb" => load::fork_bomb(arg),
        "open-cycle" => load::open_cycle(arg),
        "connect-cycle" => load::connect_cycle(arg),
        "resolve" => dns::resolve(arg),
        "dial" => dns::dial(arg),
        "race" => dns::race(arg),
        "resolve6" => dns::resolve6(arg),
        "dial-tcp" => dns::dial_tcp(arg),
        "dns-serve" => dns::serve(arg),
        "dns-loop" => dns::lookup_loop(arg),
        "echo-serve" => dns::echo_serve(arg),
        "echo-loop" => dns::echo_loop(arg),
        _ => return None,
    })
}

fn open_mapped(file: &str) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd as _;
    let f = std::fs::File::open(file)?;
    let len = f.metadata()?.len() as usize;
    // SAFETY: a fresh read-only private mapping of a whole file; the pointer is handed to
    // the kernel as a path and the mapping outlives the call.
    unsafe {
        let map = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            f.as_raw_fd(),
            0,
        );
        if map == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let fd = libc::openat(libc::AT_FDCWD, map as *const libc::c_char, libc::O_RDONLY);
        if fd >= 0 {
            libc::close(fd);
        }
        libc::munmap(map, len);
    }
    Ok(())
}

fn main() {
    let steps: Vec<String> = std::env::args().skip(1).collect();
    let mut rest = steps.as_slice();
    while let Some((first, tail)) = rest.split_first() {
        if first == "leader-exit" {
            evasion::leader_exit(tail.to_vec());
        } else if first == "daemonize" {
            // SAFETY: fork/setsid/_exit in a single-threaded program.
            unsafe {
                if libc::fork() != 0 {
                    libc::_exit(0);
                }
                libc::setsid();
                if libc::fork() != 0 {
                    libc::_exit(0);
                }
            }
        } else if let Err(e) = step(first) {
            eprintln!("paddock-test-actor: {e}");
            std::process::exit(2);
        }
        rest = tail;
    }
}
