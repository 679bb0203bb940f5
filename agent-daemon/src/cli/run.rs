//! `paddock run --investigation-id ID --phase P -- CMD [ARGS...]`: ask the daemon for a
//! tracked cgroup, start CMD directly inside it (clone3 with CLONE_INTO_CGROUP, so the very
//! first instruction is already watched), wait, and pass its exit status through.
use std::{
    ffi::{CString, OsString},
    fs::File,
    io,
    os::unix::{ffi::OsStrExt as _, io::AsRawFd as _},
    path::Path,
    time::{Duration, Instant},
};

use super::{
    EXIT_KILLED, EXIT_PADDOCK_ERROR,
    client::{Client, ClientError},
};
use crate::{
    api::protocol::{Reply, Request},
    identity::{InvestigationId, Phase},
};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The investigation's id (a Kubernetes label value).
    #[arg(long)]
    pub investigation_id: String,
    /// Its trust phase: shadow, read-only, limited-write or autonomous.
    #[arg(long)]
    pub phase: String,
    /// Run the command as this user (a name or a uid), with its groups, instead of as the
    /// caller: the investigation then has none of root's powers.
    #[arg(long)]
    pub user: Option<String>,
    /// Run the command with this group (a name or a gid) as its only group.
    #[arg(long)]
    pub group: Option<String>,
    /// If the daemon goes away while the command runs (a restart, a crash), how long to
    /// wait once the command has exited for a daemon to come back and say how the
    /// investigation went. The kernel keeps enforcing meanwhile.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    pub rejoin_timeout: u64,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<OsString>,
}

/// Exit status for a command that could not be executed, as shells use them.
const EXIT_NOT_FOUND: i32 = 127;
const EXIT_CANNOT_EXEC: i32 = 126;

pub fn main(args: RunArgs, socket: &Path) -> i32 {
    match run(args, socket) {
        Ok(code) => code,
        Err(RunError::Paddock(e)) => {
            eprintln!("paddock run: {e:#}");
            EXIT_PADDOCK_ERROR
        }
        Err(RunError::Exec { program, source }) => {
            eprintln!("paddock run: cannot execute {program:?}: {source}");
            if source.kind() == io::ErrorKind::NotFound { EXIT_NOT_FOUND } else { EXIT_CANNOT_EXEC }
        }
    }
}

enum RunError {
    Paddock(anyhow::Error),
    Exec { program: String, source: io::Error },
}

impl<E: Into<anyhow::Error>> From<E> for RunError {
    fn from(e: E) -> Self {
        RunError::Paddock(e.into())
    }
}

fn run(args: RunArgs, socket: &Path) -> Result<i32, RunError> {
    // Checked here too, so a bad argument is refused before anything is made.
    let id: InvestigationId = args.investigation_id.parse()?;
    let phase: Phase = args.phase.parse()?;
    let argv: Vec<CString> = args
        .command
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("the command contains a NUL byte"))?;

    let identity = Identity::resolve(args.user.as_deref(), args.group.as_deref())?;
    let mut client = Client::connect(socket)?;
    client.send(&Request::Run { investigation_id: id.to_string(), phase: phase.to_string() })?;
    let Reply::Ready { cgroup, instance, pids_cgroup } = client.expect_reply()? else {
        return Err(
            anyhow::anyhow!("the daemon did not make a cgroup for the investigation").into()
        );
    };
    let cgroup_dir = File::open(&cgroup)
        .map_err(|e| anyhow::anyhow!("cannot open cgroup {}: {e}", cgroup.display()))?;

    let pids_procs = pids_cgroup.map(|dir| dir.join("cgroup.procs"));
    let child =
        spawn_in_cgroup(&cgroup_dir, &cgroup, pids_procs.as_deref(), &argv, identity.as_ref())
            .map_err(|source| match source {
                SpawnError::Exec(source) => RunError::Exec {
                    program: args.command[0].to_string_lossy().into_owned(),
                    source,
                },
                SpawnError::Other(e) => RunError::Paddock(e.into()),
            })?;
    let status = wait_ignoring_interrupts(child)?;

    let answer = client.send(&Request::Exited { status }).and_then(|()| client.expect_reply());
    let answer = match answer {
        Err(ClientError::Io { .. } | ClientError::Closed) => {
            rejoin(socket, &id, instance, status, Duration::from_secs(args.rejoin_timeout))?
        }
        other => other?,
    };
    let Reply::Outcome { killed } = answer else {
        return Err(anyhow::anyhow!("the daemon did not say how the investigation went").into());
    };
    if let Some(reason) = killed {
        eprintln!("paddock: investigation {id} was killed: {reason}");
        return Ok(EXIT_KILLED);
    }
    Ok(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        EXIT_PADDOCK_ERROR
    })
}

/// The daemon that started the investigation is gone: wait for one that adopted it, and ask
/// it how the investigation went.
fn rejoin(
    socket: &Path,
    id: &InvestigationId,
    instance: u32,
    status: i32,
    timeout: Duration,
) -> Result<Reply, anyhow::Error> {
    eprintln!(
        "paddock run: lost the daemon while investigation {id} ran; waiting up to {}s for a \
         daemon to adopt it and say how it went (the kernel kept enforcing meanwhile)",
        timeout.as_secs()
    );
    let deadline = Instant::now() + timeout;
    let request = Request::Rejoin { investigation_id: id.to_string(), instance, status };
    loop {
        let asked = Client::connect(socket).and_then(|mut client| {
            client.send(&request)?;
            client.expect_reply()
        });
        match asked {
            Ok(reply) => return Ok(reply),
            Err(ClientError::Daemon(message)) => {
                return Err(anyhow::anyhow!(
                    "the daemon cannot say how investigation {id} went: {message}"
                ));
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "no daemon came back within {}s ({e}): how investigation {id} went is not \
                     known here; a daemon that adopts it later records it in the audit store",
                    timeout.as_secs()
                ));
            }
        }
    }
}

enum SpawnError {
    /// The command itself could not be executed.
    Exec(io::Error),
    Other(io::Error),
}

/// `struct clone_args` (linux/sched.h), up to `cgroup` (Linux 5.7).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Who the command runs as, when not as the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
}

/// A user's uid, primary gid and name, by name or number.
fn user(spec: &str) -> anyhow::Result<(libc::uid_t, libc::gid_t, CString)> {
    // SAFETY: a C struct of integers and pointers: all zeroes (null pointers) is valid.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let rc = match spec.parse::<libc::uid_t>() {
        // SAFETY: getpwuid_r/getpwnam_r with a zeroed passwd, a buffer of the size given and
        // an out-pointer; what they point into is read before `buf` goes.
        Ok(uid) => unsafe {
            libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut found)
        },
        Err(_) => {
            let name = CString::new(spec)?;
            // SAFETY: as above.
            unsafe {
                libc::getpwnam_r(
                    name.as_ptr(),
                    &mut pw,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    &mut found,
                )
            }
        }
    };
    if rc != 0 || found.is_null() {
        anyhow::bail!("--user {spec}: no such user");
    }
    // SAFETY: getpw*_r succeeded: pw_name points into `buf`, NUL-terminated.
    let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) }.to_owned();
    Ok((pw.pw_uid, pw.pw_gid, name))
}

/// A group's gid, by name or number.
fn group(spec: &str) -> anyhow::Result<libc::gid_t> {
    if let Ok(gid) = spec.parse() {
        return Ok(gid);
    }
    let name = CString::new(spec)?;
    // SAFETY: a C struct of integers and pointers: all zeroes (null pointers) is valid.
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16 * 1024];
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in `user`.
    let rc = unsafe {
        libc::getgrnam_r(name.as_ptr(), &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut found)
    };
    if rc != 0 || found.is_null() {
        anyhow::bail!("--group {spec}: no such group");
    }
    Ok(gr.gr_gid)
}

impl Identity {
    fn resolve(
        user_spec: Option<&str>,
        group_spec: Option<&str>,
    ) -> anyhow::Result<Option<Identity>> {
        // SAFETY: no arguments.
        let (mut uid, mut gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let mut groups = Vec::new();
        if user_spec.is_none() && group_spec.is_none() {
            return Ok(None);
        }
        if let Some(spec) = user_spec {
            let (u, g, name) = user(spec)?;
            (uid, gid) = (u, g);
            let mut list = vec![0 as libc::gid_t; 256];
            let mut n = list.len() as libc::c_int;
            // SAFETY: a NUL-terminated name, a buffer of `n` gids and its length.
            if unsafe { libc::getgrouplist(name.as_ptr(), g, list.as_mut_ptr(), &mut n) } >= 0 {
                list.truncate(n.max(0) as usize);
                groups = list;
            } else {
                groups = vec![g];
            }
        }
        if let Some(spec) = group_spec {
            gid = group(spec)?;
            groups = vec![gid];
        }
        Ok(Some(Identity { uid, gid, groups }))
    }
}

/// Set on the errno the child reports when it could not join the pids cgroup.
const JOIN_FAILED: i32 = 0x4000_0000;

/// Start `argv` as a child process that begins life inside the cgroup `dir`, and joins the
/// cgroup v1 pids cgroup whose `cgroup.procs` file is `pids_procs` (if any) before it
/// executes.
///
/// A close-on-exec pipe reports an exec failure (its errno) back to the parent. Falls back
/// to fork + writing the child's pid to `cgroup.procs` on kernels without clone3.
fn spawn_in_cgroup(
    dir: &File,
    dir_path: &Path,
    pids_procs: Option<&Path>,
    argv: &[CString],
    identity: Option<&Identity>,
) -> Result<libc::pid_t, SpawnError> {
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let procs = CString::new(dir_path.join("cgroup.procs").as_os_str().as_bytes())
        .map_err(|e| SpawnError::Other(io::Error::other(e)))?;
    // Opened here (close-on-exec), written by the child: see below.
    let pids_file = pids_procs
        .map(|path| std::fs::OpenOptions::new().write(true).open(path))
        .transpose()
        .map_err(|e| {
            SpawnError::Other(io::Error::other(format!(
                "cannot open the investigation's pids cgroup ({}): {e}",
                pids_procs.map(|p| p.display().to_string()).unwrap_or_default()
            )))
        })?;
    let pids_fd = pids_file.as_ref().map(|f| f.as_raw_fd());
    let mut fds = [0; 2];
    // SAFETY: a valid two-int array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(SpawnError::Other(io::Error::last_os_error()));
    }
    let (read_end, write_end) = (fds[0], fds[1]);
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: dir.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 without CLONE_VM behaves as fork; this program is single-threaded here.
    let mut pid = unsafe {
        libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>())
    } as libc::pid_t;
    let mut join_by_hand = false;
    if pid < 0 {
        let err = io::Error::last_os_error();
        if !matches!(
            err.raw_os_error(),
            Some(libc::ENOSYS) | Some(libc::E2BIG) | Some(libc::EINVAL)
        ) {
            return Err(SpawnError::Other(err));
        }
        // SAFETY: as fork(2); single-threaded.
        pid = unsafe { libc::fork() };
        join_by_hand = true;
    }
    if pid == 0 {
        // The child: only async-signal-safe calls from here to exec.
        // SAFETY: valid fds, NUL-terminated strings, and a NULL-terminated argv.
        unsafe {
            libc::close(read_end);
            if join_by_hand {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 || libc::write(fd, b"0\n".as_ptr().cast(), 2) != 2 {
                    let errno = *libc::__errno_location();
                    libc::write(write_end, (&errno as *const i32).cast(), 4);
                    libc::_exit(EXIT_PADDOCK_ERROR);
                }
                libc::close(fd);
            }
            // Into the pids cgroup (v1) while still privileged: from here on every fork of the
            // investigation counts against its pids.max. Through the parent's descriptor (it
            // closes at exec), so the investigation itself opens nothing for this.
            if let Some(fd) = pids_fd
                && libc::write(fd, b"0\n".as_ptr().cast(), 2) != 2
            {
                let errno = *libc::__errno_location() | JOIN_FAILED;
                libc::write(write_end, (&errno as *const i32).cast(), 4);
                libc::_exit(EXIT_PADDOCK_ERROR);
            }
            // Groups first, then the gid, then the uid (after which none can be changed).
            if let Some(id) = identity
                && (libc::setgroups(id.groups.len(), id.groups.as_ptr()) != 0
                    || libc::setgid(id.gid) != 0
                    || libc::setuid(id.uid) != 0)
            {
                let errno = *libc::__errno_location();
                libc::write(write_end, (&errno as *const i32).cast(), 4);
                libc::_exit(EXIT_PADDOCK_ERROR);
            }
            libc::execvp(ptrs[0], ptrs.as_ptr());
            let errno = *libc::__errno_location();
            libc::write(write_end, (&errno as *const i32).cast(), 4);
            libc::_exit(EXIT_NOT_FOUND);
        }
    }
    // SAFETY: our own fds.
    unsafe { libc::close(write_end) };
    if pid < 0 {
        // SAFETY: our own fd.
        unsafe { libc::close(read_end) };
        return Err(SpawnError::Other(io::Error::last_os_error()));
    }
    let mut errno = 0i32;
    // SAFETY: reading at most 4 bytes into an i32.
    let n = unsafe { libc::read(read_end, (&mut errno as *mut i32).cast(), 4) };
    // SAFETY: our own fd.
    unsafe { libc::close(read_end) };
    if n == 4 {
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        if errno & JOIN_FAILED != 0 {
            let e = io::Error::from_raw_os_error(errno & !JOIN_FAILED);
            let procs = pids_procs.map(|p| p.display().to_string()).unwrap_or_default();
            return Err(SpawnError::Other(io::Error::other(format!(
                "cannot join the investigation's pids cgroup ({procs}): {e}"
            ))));
        }
        return Err(SpawnError::Exec(io::Error::from_raw_os_error(errno)));
    }
    Ok(pid)
}

/// Wait for `pid`; Ctrl-C and Ctrl-\ go to the command (same process group), not to us.
fn wait_ignoring_interrupts(pid: libc::pid_t) -> io::Result<i32> {
    // SAFETY: setting dispositions of two signals to SIG_IGN in this process only (the
    // child has already exec'd with its own).
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            return Ok(status);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}
