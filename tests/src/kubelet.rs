//! What the Kubernetes tests do in a kubelet's place on this machine: the cgroups a
//! systemd + containerd kubelet makes for a BestEffort pod, below a test folder of the
//! cgroup v2 hierarchy, and processes started inside a container's cgroup.
use std::{
    io::Write as _,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command},
};

/// Where the cgroup v2 hierarchy is mounted.
pub fn cgroup2_mount() -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    mountinfo
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .and_then(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .expect("a cgroup2 mount")
}

/// A test folder holding `kubepods.slice/kubepods-besteffort.slice`; everything in it is
/// killed and removed when dropped.
pub struct Kubepods {
    /// Relative to the cgroup v2 mount: the daemon's `kubernetes.cgroup_parent`.
    pub relative: String,
    pub root: PathBuf,
}

impl Default for Kubepods {
    fn default() -> Self {
        Kubepods::new()
    }
}

impl Kubepods {
    pub fn new() -> Kubepods {
        let relative = format!("paddock-k8s-test-{}-{}", std::process::id(), crate::unique());
        let root = cgroup2_mount().join(&relative);
        std::fs::create_dir_all(root.join("kubepods.slice/kubepods-besteffort.slice"))
            .expect("make the kubepods cgroups");
        Kubepods { relative, root }
    }

    /// The pod's cgroup (not made).
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        let uid = uid.replace('-', "_");
        self.root.join(format!(
            "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid}.slice"
        ))
    }

    /// Make the pod's and its container's cgroups, as the kubelet and containerd do.
    pub fn make_container(&self, pod_uid: &str, container_id: &str) -> PathBuf {
        let dir = self.pod_dir(pod_uid).join(format!("cri-containerd-{container_id}.scope"));
        std::fs::create_dir_all(&dir).expect("make the container cgroup");
        dir
    }
}

impl Drop for Kubepods {
    fn drop(&mut self) {
        let _ = std::fs::write(self.root.join("cgroup.kill"), "1");
        for _ in 0..100 {
            if remove_tree(&self.root).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

fn remove_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_tree(&entry.path())?;
        }
    }
    std::fs::remove_dir(dir)
}

/// A random container id, 64 hex digits as containerd makes them.
pub fn container_id() -> String {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .expect("urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Start `cmd` inside the cgroup `dir`: the child moves itself there (writes `0` to
/// `cgroup.procs`, opened beforehand) just before it execs, so nothing of the test's own
/// code runs inside.
pub fn spawn_in(dir: &Path, mut cmd: Command) -> Child {
    let procs = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.procs"))
        .expect("open cgroup.procs");
    let mut procs = Some(procs);
    // SAFETY: only a write(2) on an already open file between fork and exec.
    unsafe {
        cmd.pre_exec(move || match procs.as_mut() {
            Some(f) => f.write_all(b"0"),
            None => Ok(()),
        });
    }
    cmd.env_remove("LD_LIBRARY_PATH").spawn().expect("spawn in the cgroup")
}
