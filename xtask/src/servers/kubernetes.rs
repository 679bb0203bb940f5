//! A real Kubernetes control plane for the integration tests: etcd (Debian's `etcd-server`),
//! kube-apiserver and kube-controller-manager 1.20 built once from Debian's source package
//! `kubernetes` (see PLATFORM.md). No kubelet or scheduler: pods stay Pending and tests write
//! pod status themselves.
//!
//! The contract with the tests (`tests/src/kube.rs`):
//! - `PADDOCK_TEST_KUBECONFIG`: an admin kubeconfig for https://127.0.0.1:16443, CA embedded,
//!   token `admin-token`;
//! - `PADDOCK_TEST_K8S_DIR`: the run directory, with `pki/ca.crt` and `tokens.csv`;
//! - static tokens: `admin-token` (system:masters), `paddock-token`, the daemon's
//!   ServiceAccount `paddock-system:paddock` (for RBAC tests), and `nobody-token`, a
//!   ServiceAccount `paddock-system:nobody` that nothing binds.
use std::{
    fs,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};

use super::{succeeds, terminate, wait_until};
use crate::{
    setup::apt,
    util::{self, output},
};

pub const ETCD_PORT: u16 = 23790;
pub const ETCD_PEER_PORT: u16 = 23800;
pub const APISERVER_PORT: u16 = 16443;

/// `base` moved by `PADDOCK_K8S_PORT_OFFSET` (default 0), for a machine where another
/// control plane holds the usual ports; the tests read the address from the kubeconfig.
fn port(base: u16) -> u16 {
    let offset = std::env::var("PADDOCK_K8S_PORT_OFFSET").ok().and_then(|o| o.parse::<u16>().ok());
    base + offset.unwrap_or(0)
}
pub const ADMIN_TOKEN: &str = "admin-token";

/// Static tokens: token, user, uid, groups.
const TOKENS: &str = "\
admin-token,test-admin,uid-admin,system:masters
paddock-token,system:serviceaccount:paddock-system:paddock,uid-paddock,\"system:serviceaccounts,system:serviceaccounts:paddock-system,system:authenticated\"
nobody-token,system:serviceaccount:paddock-system:nobody,uid-nobody,\"system:serviceaccounts,system:serviceaccounts:paddock-system,system:authenticated\"
";

/// Only what the tests need: cascading deletes, namespace cleanup, Job -> Pod, default
/// ServiceAccounts. Never podgc or nodelifecycle: without kubelets they would delete pods.
const CONTROLLERS: &str = "garbagecollector,namespace,job,serviceaccount";

/// What the one-off build needs besides the packages `setup` always installs.
const BUILD_PACKAGES: &[&str] =
    &["golang-go", "dpkg-dev", "make", "rsync", "golang-github-modern-go-reflect2-dev"];
const BINARIES: [&str; 2] = ["kube-apiserver", "kube-controller-manager"];
/// Written beside the binaries once built the way below; binaries without it (or with an
/// older text) are rebuilt.
const BUILD_STAMP: &str = "kubernetes 1.20.2 from Debian's source package, reflect2 1.0.2\n";
/// Kubernetes 1.20 vendors reflect2 1.0.1, which breaks under Go >= 1.18: every JSON answer
/// about a Pod, Job, ServiceAccount... ends in a nil-pointer panic in the apiserver (only
/// kubectl's tables and protobuf get through). Debian packages the fixed 1.0.2, same API.
const REFLECT2: &str = "/usr/share/gocode/src/github.com/modern-go/reflect2";

fn cache() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(PathBuf::from(home).join(".cache/k8s-testenv"))
}

fn bin(name: &str) -> anyhow::Result<PathBuf> {
    Ok(cache()?.join("bin").join(name))
}

/// Where `cargo xtask test` and `cargo xtask k8s` run it: certificates, tokens, kubeconfig,
/// etcd data, logs and pid files. Kept after a run, for the logs.
pub fn run_dir() -> PathBuf {
    util::root().join("target/k8s-testenv")
}

/// Build kube-apiserver and kube-controller-manager from Debian's source package into
/// `~/.cache/k8s-testenv/bin`, unless they are there (about 8 minutes on 2 cores).
pub fn build() -> anyhow::Result<()> {
    let bins = cache()?.join("bin");
    let stamp = bins.join("BUILD");
    if BINARIES.iter().all(|b| bins.join(b).is_file())
        && fs::read_to_string(&stamp).is_ok_and(|s| s == BUILD_STAMP)
    {
        return Ok(());
    }
    println!("setup: building {} 1.20 from Debian's source package", BINARIES.join(" and "));
    deb_src()?;
    apt(BUILD_PACKAGES)?;
    let (dl, src, home) = (cache()?.join("dl"), cache()?.join("src"), cache()?.join("home"));
    for dir in [&dl, &src, &home] {
        let _ = fs::remove_dir_all(dir);
    }
    fs::create_dir_all(&dl)?;
    fs::create_dir_all(&bins)?;
    util::run(
        Command::new("apt-get").args(["source", "--download-only", "kubernetes"]).current_dir(&dl),
    )?;
    let dsc = fs::read_dir(&dl)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "dsc"))
        .context("apt-get source gave no .dsc file")?;
    util::run(Command::new("dpkg-source").arg("-x").arg(&dsc).arg(&src).stdout(Stdio::null()))?;
    let vendored = src.join("vendor/github.com/modern-go/reflect2");
    fs::remove_dir_all(&vendored).context("the source has no vendored reflect2")?;
    util::run(Command::new("cp").arg("-rL").arg(REFLECT2).arg(&vendored))?;
    util::run(
        Command::new("make")
            .arg(format!("WHAT={}", BINARIES.map(|b| format!("cmd/{b}")).join(" ")))
            .current_dir(&src)
            .env("HOME", &home)
            .env("CGO_ENABLED", "0"),
    )?;
    for b in BINARIES {
        // copy, then rename: a running old binary stays untouched
        let new = bins.join(format!(".{b}.new"));
        fs::copy(src.join("_output/bin").join(b), &new)?;
        fs::rename(&new, bins.join(b))?;
    }
    fs::write(&stamp, BUILD_STAMP)?;
    // the tree and the Go cache are about 2.5 GB
    for dir in [&dl, &src, &home] {
        let _ = fs::remove_dir_all(dir);
    }
    println!("setup: {}", output(Command::new(bins.join("kube-apiserver")).arg("--version"))?);
    Ok(())
}

/// `apt-get source` needs deb-src entries: a copy of the machine's own Debian entries.
fn deb_src() -> anyhow::Result<()> {
    let dir = Path::new("/etc/apt/sources.list.d");
    let has_src = fs::read_dir(dir)?.filter_map(Result::ok).any(|e| {
        fs::read_to_string(e.path())
            .is_ok_and(|t| t.lines().any(|l| l.starts_with("Types:") && l.contains("deb-src")))
    });
    if !has_src {
        let own = fs::read_to_string(dir.join("debian.sources"))
            .context("no deb-src entries and no /etc/apt/sources.list.d/debian.sources to copy")?;
        let text: String = own
            .lines()
            .map(|l| if l.trim() == "Types: deb" { "Types: deb-src" } else { l })
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(dir.join("debian-src.sources"), text)?;
    }
    util::run(Command::new("apt-get").args(["update", "-qq"]))
}

/// A running control plane. Dropping it stops every process it started (controller
/// manager, apiserver, etcd), unless `detach` left them running for a developer.
pub struct Kubernetes {
    dir: PathBuf,
    /// In start order; stopped in reverse.
    children: Vec<(&'static str, Child)>,
}

impl Kubernetes {
    /// Start etcd, kube-apiserver and kube-controller-manager in `dir`, ready when this
    /// returns. Stopped when the value is dropped; `tied` also has the kernel kill them if
    /// xtask dies without dropping it (SIGKILL, a crash).
    pub fn start(dir: &Path, tied: bool) -> anyhow::Result<Kubernetes> {
        for b in BINARIES {
            if !bin(b)?.is_file() {
                bail!("{} is missing: run `cargo xtask setup`", bin(b)?.display());
            }
        }
        for port in [ETCD_PORT, ETCD_PEER_PORT, APISERVER_PORT].map(port) {
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
                bail!(
                    "port {port} on 127.0.0.1 is taken: another test control plane? \
                     (`cargo xtask k8s stop` stops the one `cargo xtask k8s start` left; \
                     PADDOCK_K8S_PORT_OFFSET=N moves every port by N)"
                );
            }
        }
        fs::create_dir_all(dir.join("pki"))?;
        pki(&dir.join("pki"))?;
        fs::write(dir.join("tokens.csv"), TOKENS)?;
        kubeconfig(dir)?;
        let _ = fs::remove_dir_all(dir.join("etcd-data"));
        let mut k8s = Kubernetes { dir: dir.to_path_buf(), children: Vec::new() };
        k8s.etcd(tied)?;
        k8s.apiserver(tied)?;
        k8s.controller_manager(tied)?;
        Ok(k8s)
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// The environment the integration tests read.
    pub fn test_env(&self) -> [(&'static str, PathBuf); 2] {
        test_env(&self.dir)
    }

    /// Leave the processes running (their pid files let `stop_dir` end them).
    pub fn detach(mut self) {
        self.children.clear();
    }

    fn spawn(&mut self, name: &'static str, cmd: &mut Command, tied: bool) -> anyhow::Result<()> {
        let log = fs::File::create(self.dir.join(format!("{name}.log")))?;
        // Their own process group: ^C in the terminal reaches the tests, not the servers,
        // which are stopped in order when this value is dropped.
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).process_group(0);
        if tied {
            // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().with_context(|| format!("cannot start {name}: {cmd:?}"))?;
        fs::write(self.dir.join(format!("{name}.pid")), child.id().to_string())?;
        self.children.push((name, child));
        Ok(())
    }

    /// Wait for the last started process to answer `probe`.
    fn wait(&mut self, within: u64, probe: impl FnMut() -> bool) -> anyhow::Result<()> {
        let (name, child) = self.children.last_mut().context("nothing started")?;
        let log = self.dir.join(format!("{name}.log"));
        wait_until(name, Duration::from_secs(within), child, &log, probe)
    }

    fn etcd(&mut self, tied: bool) -> anyhow::Result<()> {
        let client = format!("http://127.0.0.1:{}", port(ETCD_PORT));
        let peer = format!("http://127.0.0.1:{}", port(ETCD_PEER_PORT));
        self.spawn(
            "etcd",
            Command::new("etcd")
                .args(["--name", "paddock-test", "--data-dir"])
                .arg(self.dir.join("etcd-data"))
                .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
                .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
                .args(["--initial-cluster", &format!("paddock-test={peer}")]),
            tied,
        )?;
        let health = format!("{client}/health");
        self.wait(30, || succeeds(Command::new("curl").args(["-sf", &health])))
    }

    fn apiserver(&mut self, tied: bool) -> anyhow::Result<()> {
        let pki = self.dir.join("pki");
        let path = |f: &str| format!("{}", pki.join(f).display());
        self.spawn(
            "apiserver",
            Command::new(bin("kube-apiserver")?).args([
                &format!("--etcd-servers=http://127.0.0.1:{}", port(ETCD_PORT)),
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                &format!("--secure-port={}", port(APISERVER_PORT)),
                "--insecure-port=0",
                "--endpoint-reconciler-type=none",
                &format!("--tls-cert-file={}", path("apiserver.crt")),
                &format!("--tls-private-key-file={}", path("apiserver.key")),
                &format!("--client-ca-file={}", path("ca.crt")),
                &format!("--token-auth-file={}", self.dir.join("tokens.csv").display()),
                "--authorization-mode=RBAC",
                "--anonymous-auth=false",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                &format!("--service-account-key-file={}", path("sa.pub")),
                &format!("--service-account-signing-key-file={}", path("sa.key")),
                "--service-cluster-ip-range=10.0.0.0/24",
                // no token controller: pods would wait for ServiceAccount token Secrets
                "--disable-admission-plugins=ServiceAccount",
                "--allow-privileged=true",
                // Job ttlSecondsAfterFinished (our example Job sets it): beta and on by
                // default from 1.21, alpha in 1.20
                "--feature-gates=TTLAfterFinished=true",
            ]),
            tied,
        )?;
        let ca = pki.join("ca.crt");
        self.wait(60, || get(&ca, "/readyz"))?;
        // the `default` namespace appears a moment after readyz
        self.wait(30, || get(&ca, "/api/v1/namespaces/default"))
    }

    fn controller_manager(&mut self, tied: bool) -> anyhow::Result<()> {
        let kubeconfig = self.kubeconfig();
        self.spawn(
            "controller-manager",
            Command::new(bin("kube-controller-manager")?)
                .arg(format!("--kubeconfig={}", kubeconfig.display()))
                .arg(format!("--controllers={CONTROLLERS}"))
                .args(["--leader-elect=false", "--port=0", "--secure-port=0"])
                .arg("--use-service-account-credentials=false"),
            tied,
        )?;
        let ca = self.dir.join("pki/ca.crt");
        // the serviceaccount controller is running once it made `default` in `default`
        self.wait(30, || get(&ca, "/api/v1/namespaces/default/serviceaccounts/default"))
    }

    fn stop(&mut self) {
        while let Some((name, mut child)) = self.children.pop() {
            terminate(child.id(), Duration::from_secs(10), || {
                matches!(child.try_wait(), Ok(Some(_)))
            });
            let _ = fs::remove_file(self.dir.join(format!("{name}.pid")));
        }
    }
}

impl Drop for Kubernetes {
    fn drop(&mut self) {
        self.stop();
    }
}

/// GET `path` from the apiserver as admin; true on a 2xx answer.
fn get(ca: &Path, path: &str) -> bool {
    succeeds(
        Command::new("curl")
            // HTTP/2 answers with a body end in a stream error with this curl and Go 1.19
            .args(["-sf", "--http1.1", "--max-time", "5", "--cacert"])
            .arg(ca)
            .args(["-H", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
            .arg(format!("https://127.0.0.1:{}{path}", port(APISERVER_PORT))),
    )
}

pub fn test_env(dir: &Path) -> [(&'static str, PathBuf); 2] {
    [
        ("PADDOCK_TEST_KUBECONFIG", dir.join("kubeconfig")),
        ("PADDOCK_TEST_K8S_DIR", dir.to_path_buf()),
    ]
}

/// Stop what `cargo xtask k8s start` left running in `dir`, by the recorded pids.
pub fn stop_dir(dir: &Path) -> anyhow::Result<()> {
    for name in ["controller-manager", "apiserver", "etcd"] {
        let file = dir.join(format!("{name}.pid"));
        let Ok(text) = fs::read_to_string(&file) else { continue };
        let pid: u32 =
            text.trim().parse().with_context(|| format!("bad pid in {}", file.display()))?;
        // only if the pid still names that program (pids are reused)
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if ["etcd", "kube-apiserver", "kube-controller"].iter().any(|c| comm.trim().starts_with(c))
        {
            println!("k8s: stopping {name} ({pid})");
            terminate(pid, Duration::from_secs(10), || false);
        }
        fs::remove_file(&file)?;
    }
    Ok(())
}

/// A CA, the apiserver's serving certificate (127.0.0.1, localhost) and the ServiceAccount
/// signing key; made once per run directory.
fn pki(dir: &Path) -> anyhow::Result<()> {
    if dir.join("apiserver.crt").is_file() && dir.join("sa.pub").is_file() {
        return Ok(());
    }
    let openssl = |args: &[&str]| output(Command::new("openssl").args(args).current_dir(dir));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "3650",
        "-subj",
        "/CN=paddock-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ])?;
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=kube-apiserver",
        "-keyout",
        "apiserver.key",
        "-out",
        "apiserver.csr",
    ])?;
    fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "apiserver.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "3650",
        "-extfile",
        "ext.cnf",
        "-out",
        "apiserver.crt",
    ])?;
    openssl(&["genrsa", "-out", "sa.key", "2048"])?;
    openssl(&["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"])?;
    Ok(())
}

/// An admin kubeconfig with the CA embedded (JSON is YAML too).
fn kubeconfig(dir: &Path) -> anyhow::Result<()> {
    let ca =
        output(Command::new("openssl").args(["base64", "-A", "-in"]).arg(dir.join("pki/ca.crt")))?;
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "paddock-test", "cluster": {
            "server": format!("https://127.0.0.1:{}", port(APISERVER_PORT)),
            "certificate-authority-data": ca,
        }}],
        "users": [{"name": "admin", "user": {"token": ADMIN_TOKEN}}],
        "contexts": [{"name": "paddock-test", "context": {"cluster": "paddock-test", "user": "admin"}}],
        "current-context": "paddock-test",
    });
    fs::write(dir.join("kubeconfig"), serde_json::to_string_pretty(&config)? + "\n")?;
    Ok(())
}
