//! The tricks an agent that has read paddock's source would try, one step each (see the
//! list in `main.rs`). Each does exactly one thing and reports failure only when the trick
//! itself could not be attempted; whether paddock saw it is for the test to find out.
use std::{ffi::CString, io::Write as _, os::fd::AsRawFd as _};

type Step = Result<(), String>;

fn os(e: std::io::Error, what: &str) -> String {
    format!("{what}: {e}")
}

fn c(path: &str) -> Result<CString, String> {
    CString::new(path).map_err(|e| e.to_string())
}

/// `int 0x80` with `nr` and up to three arguments (ebx, ecx, edx): the 32-bit entry, from
/// this 64-bit process.
#[cfg(target_arch = "x86_64")]
fn int80(nr: u32, a: u32, b: u32, c: u32) -> i32 {
    let ret: i32;
    // SAFETY: a software interrupt into the kernel's 32-bit syscall entry; the arguments
    // are plain numbers or pointers below 4 GiB that the caller owns.
    unsafe {
        std::arch::asm!(
            "push rbx",
            "mov ebx, {a:e}",
            "int 0x80",
            "pop rbx",
            a = in(reg) a,
            inlateout("eax") nr as i32 => ret,
            in("ecx") b,
            in("edx") c,
        );
    }
    ret
}

/// `int80:NR`: a 32-bit syscall without arguments (20 is `getpid`).
pub fn int80_call(arg: &str) -> Step {
    let nr: u32 = arg.parse().map_err(|e| format!("int80: {e}"))?;
    let ret = int80(nr, 0, 0, 0);
    println!("int80 {nr} -> {ret}");
    Ok(())
}

/// `int80-open:PATH`: `open(PATH, O_RDONLY)` through `int 0x80` (32-bit number 5, which
/// is `fstat` in the 64-bit table). The path sits in a page below 4 GiB.
pub fn int80_open(path: &str) -> Step {
    let path = c(path)?;
    // SAFETY: a fresh anonymous mapping below 4 GiB (MAP_32BIT), ours.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
            -1,
            0,
        )
    };
    if page == libc::MAP_FAILED {
        return Err(os(std::io::Error::last_os_error(), "mmap"));
    }
    let bytes = path.as_bytes_with_nul();
    // SAFETY: the page is 4096 bytes, writable, and the path is shorter.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), page.cast(), bytes.len()) };
    let fd = int80(5, page as u32, libc::O_RDONLY as u32, 0);
    println!("int80 open -> {fd}");
    Ok(())
}

/// `x32:NR`: syscall `NR` with the x32 ABI's bit set.
pub fn x32(arg: &str) -> Step {
    let nr: i64 = arg.parse().map_err(|e| format!("x32: {e}"))?;
    // SAFETY: a syscall the kernel refuses (ENOSYS) where x32 is not built in.
    let ret = unsafe { libc::syscall(0x4000_0000 | nr) };
    println!("x32 {nr} -> {ret}");
    Ok(())
}

/// `raw-syscall:NR`: a syscall number outside every table.
pub fn raw_syscall(arg: &str) -> Step {
    let nr: i64 = arg.parse().map_err(|e| format!("raw-syscall: {e}"))?;
    // SAFETY: an unassigned number: ENOSYS.
    let ret = unsafe { libc::syscall(nr) };
    println!("syscall {nr} -> {ret}");
    Ok(())
}

/// `escape:DIR`: move this process into cgroup DIR (write its pid to `cgroup.procs`).
pub fn escape(dir: &str) -> Step {
    let procs = format!("{dir}/cgroup.procs");
    std::fs::write(&procs, std::process::id().to_string()).map_err(|e| os(e, &procs))
}

/// `leader-exit`: the rest of the steps run in a second thread, and this (the main,
/// leader) thread exits alone: the process lives on in the other thread. (The raw `exit`
/// syscall ends only the calling thread, as `pthread_exit` does in the kernel; Rust's main
/// cannot unwind through `pthread_exit` itself.)
pub fn leader_exit(rest: Vec<String>) -> ! {
    std::thread::spawn(move || {
        // Let the leader be gone before acting.
        std::thread::sleep(std::time::Duration::from_millis(200));
        for step in &rest {
            if let Err(e) = super::step(step) {
                eprintln!("paddock-test-actor: {e}");
                std::process::exit(2);
            }
        }
        std::process::exit(0);
    });
    loop {
        // SAFETY: `exit` (not `exit_group`) ends only this thread; the process goes on in
        // the one spawned above.
        unsafe { libc::syscall(libc::SYS_exit, 0) };
    }
}

/// `open-race:ALLOWED:SECRET:N`: open the path in one buffer N times while a second thread
/// keeps switching that buffer between ALLOWED and SECRET, and on until an open got the
/// secret (for at most 10 s: on a loaded machine the switching thread may not run beside
/// the opener for a while). Prints how many opens got the secret file (by inode), the ones
/// a tracer that reads the caller's memory could be fooled about. Both paths must be the
/// same length.
pub fn open_race(arg: &str) -> Step {
    let mut parts = arg.split(':');
    let (Some(allowed), Some(secret), Some(n)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("open-race: want ALLOWED:SECRET:N".into());
    };
    if allowed.len() != secret.len() {
        return Err("open-race: the two paths must be the same length".into());
    }
    let n: u32 = n.parse().map_err(|e| format!("open-race: {e}"))?;
    use std::os::unix::fs::MetadataExt as _;
    let secret_ino = std::fs::metadata(secret).map_err(|e| os(e, secret))?.ino();
    let buf: &'static mut [u8] = Box::leak(c(allowed)?.into_bytes_with_nul().into_boxed_slice());
    let addr = buf.as_mut_ptr() as usize;
    let (a, s) = (c(allowed)?, c(secret)?);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut which = false;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let src = if which { a.as_bytes() } else { s.as_bytes() };
                // SAFETY: the leaked buffer lives forever and holds `src.len() + 1` bytes;
                // the race with the opener is the point.
                unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), addr as *mut u8, src.len()) };
                which = !which;
            }
        })
    };
    let mut got_secret = 0;
    let mut opens = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while opens < n || (got_secret == 0 && std::time::Instant::now() < deadline) {
        opens += 1;
        // SAFETY: a NUL-terminated path (whichever one it is at the moment).
        let fd = unsafe { libc::open(addr as *const libc::c_char, libc::O_RDONLY) };
        if fd >= 0 {
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: a valid fd and out-pointer.
            if unsafe { libc::fstat(fd, &mut st) } == 0 && st.st_ino == secret_ino {
                got_secret += 1;
            }
            // SAFETY: our fd.
            unsafe { libc::close(fd) };
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = flipper.join();
    println!("open-race: {got_secret} of {opens} opens got {secret}");
    Ok(())
}

/// Path operations: `rename:A:B`, `link:A:B`, `symlink:TARGET:LINK`, `unlink:P`,
/// `mkdir:P`, `truncate:P`.
pub fn path_op(verb: &str, arg: &str) -> Step {
    let two = || arg.split_once(':').ok_or(format!("{verb}: want A:B"));
    match verb {
        "rename" => {
            let (a, b) = two()?;
            std::fs::rename(a, b).map_err(|e| os(e, verb))
        }
        "link" => {
            let (a, b) = two()?;
            std::fs::hard_link(a, b).map_err(|e| os(e, verb))
        }
        "symlink" => {
            let (target, link) = two()?;
            std::os::unix::fs::symlink(target, link).map_err(|e| os(e, verb))
        }
        "unlink" => std::fs::remove_file(arg).map_err(|e| os(e, verb)),
        "mkdir" => std::fs::create_dir(arg).map_err(|e| os(e, verb)),
        "truncate" => {
            let path = c(arg)?;
            // SAFETY: a NUL-terminated path.
            if unsafe { libc::truncate(path.as_ptr(), 0) } != 0 {
                return Err(os(std::io::Error::last_os_error(), verb));
            }
            Ok(())
        }
        other => Err(format!("unknown path operation {other}")),
    }
}

/// `unlink-unreadable`: `unlink` of a path the kernel cannot read (an unmapped address):
/// the call fails with EFAULT, and paddock cannot say which path was meant.
pub fn unlink_unreadable() -> Step {
    // SAFETY: the kernel checks the address and fails the call; nothing is dereferenced here.
    let r = unsafe { libc::unlink(8 as *const libc::c_char) };
    println!("unlink-unreadable -> {r}");
    Ok(())
}

/// `uring-read:FILE`: read FILE through io_uring (an ordinary event loop's read).
/// `uring-open:FILE`: open FILE through io_uring (IORING_OP_OPENAT), then read it.
pub fn uring(verb: &str, path: &str) -> Step {
    use io_uring::{IoUring, opcode, types};
    let mut ring = IoUring::new(4).map_err(|e| os(e, "io_uring_setup"))?;
    let file;
    let fd = if verb == "uring-open" {
        let name = c(path)?;
        let open = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), name.as_ptr())
            .flags(libc::O_RDONLY)
            .build();
        // SAFETY: `name` outlives the submission, which is waited for below.
        unsafe { ring.submission().push(&open) }.map_err(|e| e.to_string())?;
        ring.submit_and_wait(1).map_err(|e| os(e, "io_uring_enter"))?;
        let cqe = ring.completion().next().ok_or("no completion")?;
        if cqe.result() < 0 {
            return Err(format!(
                "uring open: {}",
                std::io::Error::from_raw_os_error(-cqe.result())
            ));
        }
        cqe.result()
    } else {
        file = std::fs::File::open(path).map_err(|e| os(e, path))?;
        file.as_raw_fd()
    };
    let mut buf = vec![0u8; 64];
    let read = opcode::Read::new(types::Fd(fd), buf.as_mut_ptr(), buf.len() as u32).build();
    // SAFETY: `buf` outlives the submission, which is waited for below.
    unsafe { ring.submission().push(&read) }.map_err(|e| e.to_string())?;
    ring.submit_and_wait(1).map_err(|e| os(e, "io_uring_enter"))?;
    Ok(())
}

/// `exec-fd:PATH`: run PATH through a descriptor (`execveat(fd, "", AT_EMPTY_PATH)`) in a
/// child, and wait for it. `exec-memfd:PATH`: copy PATH into a memfd first and run that.
pub fn exec_fd(verb: &str, path: &str) -> Step {
    let fd = if verb == "exec-memfd" {
        let name = c("payload")?;
        // SAFETY: a new anonymous file.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
        if fd < 0 {
            return Err(os(std::io::Error::last_os_error(), "memfd_create"));
        }
        // Copied with plain reads and writes: no syscall the benign runs did not make.
        let src = std::fs::File::open(path).map_err(|e| os(e, path))?;
        let mut buf = [0u8; 65536];
        loop {
            // SAFETY: reads into a buffer of the size given, writes what was read.
            let n = unsafe { libc::read(src.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            // SAFETY: as above.
            unsafe { libc::write(fd, buf.as_ptr().cast(), n as usize) };
        }
        fd
    } else {
        let file = std::fs::File::open(path).map_err(|e| os(e, path))?;
        std::os::fd::IntoRawFd::into_raw_fd(file)
    };
    let empty = c("")?;
    let argv0 = c(path)?;
    let argv = [argv0.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    // SAFETY: fork in a process whose other threads (none) hold no locks we need; the
    // child only execs or exits.
    match unsafe { libc::fork() } {
        0 => {
            // SAFETY: valid descriptor, strings and arrays.
            unsafe {
                libc::syscall(
                    libc::SYS_execveat,
                    fd,
                    empty.as_ptr(),
                    argv.as_ptr(),
                    envp.as_ptr(),
                    libc::AT_EMPTY_PATH,
                );
                libc::_exit(127);
            }
        }
        -1 => Err(os(std::io::Error::last_os_error(), "fork")),
        child => {
            let mut status = 0;
            // SAFETY: our child.
            unsafe { libc::waitpid(child, &mut status, 0) };
            Ok(())
        }
    }
}

/// `memfd`: make a memfd and write to it (what a runtime does with one, short of running it).
pub fn memfd() -> Step {
    let name = c("scratch")?;
    // SAFETY: a new anonymous file, written and closed.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
    if fd < 0 {
        return Err(os(std::io::Error::last_os_error(), "memfd_create"));
    }
    // SAFETY: our fd, taken over by the File.
    let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    file.write_all(b"scratch").map_err(|e| os(e, "write memfd"))
}

/// Sockets by kind: `raw-socket` (IPv4 raw ICMP), `packet-socket` (AF_PACKET),
/// `ping-socket` (an unprivileged ICMP echo socket). Each is made and closed.
pub fn socket(verb: &str) -> Step {
    let (family, kind, protocol) = match verb {
        "raw-socket" => (libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
        "packet-socket" => {
            (libc::AF_PACKET, libc::SOCK_RAW, (libc::ETH_P_ALL as u16).to_be() as i32)
        }
        "ping-socket" => (libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP),
        other => return Err(format!("unknown socket kind {other}")),
    };
    // SAFETY: plain socket creation.
    let fd = unsafe { libc::socket(family, kind, protocol) };
    println!("{verb} -> {fd}");
    if fd >= 0 {
        // SAFETY: our fd.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// `unix-connect:PATH`: connect to the unix socket at PATH (a refusal is not an error: what
/// paddock did about it is the test's question) and send a line on success.
pub fn unix_connect(path: &str) -> Step {
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(mut stream) => {
            let _ = stream.write_all(b"from the investigation\n");
            println!("unix-connect {path}: connected");
        }
        Err(e) => println!("unix-connect {path}: {e}"),
    }
    Ok(())
}

/// `unix-flood:PATH:BYTES`: connect to the unix socket PATH, send BYTES bytes with no
/// newline (a request line that never ends), then print how much went out and the first
/// line that came back.
pub fn unix_flood(arg: &str) -> Step {
    use std::io::BufRead as _;
    let (path, bytes) = arg.rsplit_once(':').ok_or("unix-flood: PATH:BYTES")?;
    let bytes: usize = bytes.parse().map_err(|e| format!("unix-flood: {e}"))?;
    let mut stream =
        std::os::unix::net::UnixStream::connect(path).map_err(|e| os(e, "unix-flood: connect"))?;
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < bytes {
        match stream.write(&chunk[..chunk.len().min(bytes - sent)]) {
            Ok(n) => sent += n,
            Err(_) => break, // the other end hung up
        }
    }
    let mut reply = String::new();
    let _ = std::io::BufReader::new(&stream).read_line(&mut reply);
    println!("unix-flood sent {sent}");
    println!("unix-flood reply {}", reply.trim_end());
    Ok(())
}

/// `mptcp-connect:ADDR`: a Multipath TCP connect to ADDR (host:port).
pub fn mptcp_connect(addr: &str) -> Step {
    let addr: std::net::SocketAddrV4 = addr.parse().map_err(|e| format!("mptcp-connect: {e}"))?;
    // SAFETY: plain socket creation; IPPROTO_MPTCP is 262.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 262) };
    if fd < 0 {
        return Err(os(std::io::Error::last_os_error(), "mptcp socket"));
    }
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*addr.ip()).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: a valid sockaddr of the size given.
    let r = unsafe {
        libc::connect(
            fd,
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of_val(&sin) as u32,
        )
    };
    println!("mptcp-connect {addr} -> {r}");
    // SAFETY: our fd.
    unsafe { libc::close(fd) };
    Ok(())
}

/// `connect-mapped:PORT`: a TCP connect to `::ffff:127.0.0.1` PORT from an IPv6 socket.
pub fn connect_mapped(port: &str) -> Step {
    let port: u16 = port.parse().map_err(|e| format!("connect-mapped: {e}"))?;
    let addr = std::net::SocketAddr::new("::ffff:127.0.0.1".parse().expect("an address"), port);
    let r = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2));
    println!("connect-mapped {addr} -> {:?}", r.map(|_| ()));
    Ok(())
}
