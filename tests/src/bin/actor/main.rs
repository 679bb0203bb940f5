//! Does exactly what a test asks, once per step, so tests can count what paddock saw.
//!
//! `paddock-test-actor STEP [STEP...]` where a step is one of:
//! - `exec:PATH[:ARG]`   run PATH (fork + exec) and wait for it
//! - `write:FILE`        create FILE and write a line to it
//! - `read:FILE`         open FILE read-only and read it
//! - `connect:ADDR`      TCP connect to ADDR (host:port); a refusal is not an error
//! - `udp:ADDR`          send one UDP datagram to ADDR
//! - `getppid:N`         call getppid(2) N times
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
use std::{
    io::{Read as _, Write as _},
    net::{TcpStream, UdpSocket},
    process::Command,
    time::Duration,
};

fn step(step: &str) -> Result<(), String> {
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
        if first == "daemonize" {
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
