//! Steps that put paddock under load: a fork bomb that stops by itself, and a flood of
//! opens of files paddock has not seen lately. Each writes what it did to a file as one
//! line of `key=value` pairs, for the test or benchmark to read.
use std::{
    ffi::CString,
    sync::atomic::{AtomicI64, AtomicU64, Ordering},
    time::{Duration, Instant},
};

type Step = Result<(), String>;

/// Counters every process of the bomb shares (an anonymous shared mapping).
#[repr(C)]
struct Shared {
    live: AtomicI64,
    peak: AtomicI64,
    made: AtomicU64,
    eagain: AtomicU64,
    other: AtomicU64,
}

fn shared() -> Result<&'static Shared, String> {
    // SAFETY: a fresh anonymous shared mapping, zeroed by the kernel (a valid `Shared` of
    // atomics), kept for the life of every process that inherits it.
    unsafe {
        let map = libc::mmap(
            std::ptr::null_mut(),
            std::mem::size_of::<Shared>(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if map == libc::MAP_FAILED {
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        Ok(&*(map as *const Shared))
    }
}

/// `fork-bomb:MS:CAP:FILE`: every process forks as fast as it can, and so does every child,
/// for MS milliseconds, never more than CAP alive at once (a bound of the test's own, in case
/// nothing else holds the bomb); each reaps its children as it goes. Then all exit, and the
/// first process writes `made=N eagain=N other=N peak=N` to FILE: forks that worked, forks
/// refused with EAGAIN (pids.max), other failures, most processes alive at once.
pub fn fork_bomb(arg: &str) -> Step {
    let mut parts = arg.splitn(3, ':');
    let (ms, cap, file) = (parts.next(), parts.next(), parts.next());
    let (Some(ms), Some(cap), Some(file)) = (ms, cap, file) else {
        return Err("fork-bomb: want MS:CAP:FILE".into());
    };
    let ms: u64 = ms.parse().map_err(|e| format!("fork-bomb: {e}"))?;
    let cap: i64 = cap.parse().map_err(|e| format!("fork-bomb: {e}"))?;
    let s = shared()?;
    s.live.store(1, Ordering::SeqCst);
    s.peak.store(1, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_millis(ms);
    let root = std::process::id();
    while Instant::now() < deadline {
        // SAFETY: reaping our own children, without blocking.
        while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
        if s.live.load(Ordering::SeqCst) >= cap {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        // SAFETY: fork in a single-threaded process; the child only touches the shared
        // atomics, calls waitpid/fork/_exit and reads the clock.
        match unsafe { libc::fork() } {
            0 => {
                let live = s.live.fetch_add(1, Ordering::SeqCst) + 1;
                s.peak.fetch_max(live, Ordering::SeqCst);
            }
            pid if pid > 0 => {
                s.made.fetch_add(1, Ordering::SeqCst);
            }
            _ => {
                let errno = std::io::Error::last_os_error().raw_os_error();
                let counter = if errno == Some(libc::EAGAIN) { &s.eagain } else { &s.other };
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    if std::process::id() != root {
        s.live.fetch_sub(1, Ordering::SeqCst);
        // SAFETY: leaving a forked child without running the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    // The others are leaving; wait until they have (their orphans are reaped by init).
    let waited = Instant::now();
    while s.live.load(Ordering::SeqCst) > 1 && waited.elapsed() < Duration::from_secs(30) {
        // SAFETY: as above.
        while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
        std::thread::sleep(Duration::from_millis(5));
    }
    let line = format!(
        "made={} eagain={} other={} peak={}\n",
        s.made.load(Ordering::SeqCst),
        s.eagain.load(Ordering::SeqCst),
        s.other.load(Ordering::SeqCst),
        s.peak.load(Ordering::SeqCst)
    );
    std::fs::write(file, line).map_err(|e| format!("fork-bomb: {file}: {e}"))
}

/// `open-cycle:DIR:N:MS:FILE`: make files `DIR/f0` .. `DIR/f{N-1}` (if missing), then open
/// and close them read-only in turn as fast as possible for MS milliseconds, and write
/// `opens=N seconds=S` to FILE. With N larger than the kernel's memory of what an
/// investigation read lately, nearly every open is news to paddock: a record offered.
pub fn open_cycle(arg: &str) -> Step {
    let parts: Vec<&str> = arg.split(':').collect();
    let [dir, n, ms, file] = parts.as_slice() else {
        return Err("open-cycle: want DIR:N:MS:FILE".into());
    };
    let n: usize = n.parse().map_err(|e| format!("open-cycle: {e}"))?;
    let ms: u64 = ms.parse().map_err(|e| format!("open-cycle: {e}"))?;
    let paths: Vec<CString> = (0..n)
        .map(|i| CString::new(format!("{dir}/f{i}")).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    for path in &paths {
        // SAFETY: a NUL-terminated path; the descriptor is closed at once.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CREAT, 0o644) };
        if fd < 0 {
            return Err(format!("open-cycle: create: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: our own descriptor.
        unsafe { libc::close(fd) };
    }
    let started = Instant::now();
    let deadline = started + Duration::from_millis(ms);
    let mut opens = 0u64;
    'outer: loop {
        for path in &paths {
            // SAFETY: as above.
            let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY) };
            if fd >= 0 {
                // SAFETY: our own descriptor.
                unsafe { libc::close(fd) };
            }
            opens += 1;
            if opens.is_multiple_of(1024) && Instant::now() >= deadline {
                break 'outer;
            }
        }
    }
    let line = format!("opens={opens} seconds={:.3}\n", started.elapsed().as_secs_f64());
    std::fs::write(file, line).map_err(|e| format!("open-cycle: {file}: {e}"))
}

/// `connect-cycle:N:MS:FILE`: connect one UDP socket to 127.0.0.1 ports 1..=N in turn as
/// fast as possible for MS milliseconds (no packet is sent), and write `connects=N
/// seconds=S` to FILE. Each connect is a record paddock is offered (connects are never
/// de-duplicated), at a lower cost per record than an open.
pub fn connect_cycle(arg: &str) -> Step {
    let parts: Vec<&str> = arg.split(':').collect();
    let [n, ms, file] = parts.as_slice() else {
        return Err("connect-cycle: want N:MS:FILE".into());
    };
    let n: u16 = n.parse().map_err(|e| format!("connect-cycle: {e}"))?;
    let ms: u64 = ms.parse().map_err(|e| format!("connect-cycle: {e}"))?;
    // SAFETY: a plain socket call.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    if fd < 0 {
        return Err(format!("connect-cycle: socket: {}", std::io::Error::last_os_error()));
    }
    let started = Instant::now();
    let deadline = started + Duration::from_millis(ms);
    let mut connects = 0u64;
    let mut port = 0u16;
    loop {
        port = port % n.max(1) + 1;
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes([127, 0, 0, 1]) },
            sin_zero: [0; 8],
        };
        // SAFETY: a valid socket and a sockaddr_in of the size given.
        unsafe {
            libc::connect(
                fd,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        connects += 1;
        if connects.is_multiple_of(1024) && Instant::now() >= deadline {
            break;
        }
    }
    // SAFETY: our own descriptor.
    unsafe { libc::close(fd) };
    let line = format!("connects={connects} seconds={:.3}\n", started.elapsed().as_secs_f64());
    std::fs::write(file, line).map_err(|e| format!("connect-cycle: {file}: {e}"))
}
