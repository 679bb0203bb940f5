//! The Kubernetes control plane `cargo xtask test` runs for the tests (see
//! `xtask/src/servers/kubernetes.rs`): where it is, and clients for its two identities.
use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};

/// A static token of `system:masters`.
pub const ADMIN_TOKEN: &str = "admin-token";
/// A static token of [`PADDOCK_USER`], the daemon's ServiceAccount as `deploy/` makes it,
/// with the groups a ServiceAccount has.
pub const PADDOCK_TOKEN: &str = "paddock-token";
pub const PADDOCK_USER: &str = "system:serviceaccount:paddock-system:paddock";

/// Where the test control plane is.
#[derive(Debug, Clone)]
pub struct KubeEnv {
    /// An admin kubeconfig (`PADDOCK_TEST_KUBECONFIG`), the CA embedded.
    pub kubeconfig: PathBuf,
    /// The run directory (`PADDOCK_TEST_K8S_DIR`): `pki/ca.crt`, `tokens.csv`, logs.
    pub dir: PathBuf,
    /// The apiserver's URL, `https://127.0.0.1:16443`.
    pub server: String,
    /// The CA that signed the apiserver's certificate, PEM.
    pub ca_pem: String,
}

fn env_path(name: &str) -> PathBuf {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| {
        panic!("{name} is not set: run the integration tests through `cargo xtask test`")
    })
}

/// The test control plane; panics with what to do when the tests were not started by
/// `cargo xtask test` (they fail, they do not skip).
pub fn kube_env() -> KubeEnv {
    let kubeconfig = env_path("PADDOCK_TEST_KUBECONFIG");
    let dir = env_path("PADDOCK_TEST_K8S_DIR");
    let config = Kubeconfig::read_from(&kubeconfig)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", kubeconfig.display()));
    let server = config
        .clusters
        .iter()
        .find_map(|c| c.cluster.as_ref()?.server.clone())
        .unwrap_or_else(|| panic!("{} names no server", kubeconfig.display()));
    let ca = dir.join("pki/ca.crt");
    let ca_pem = std::fs::read_to_string(&ca)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", ca.display()));
    KubeEnv { kubeconfig, dir, server, ca_pem }
}

impl KubeEnv {
    /// A client that authenticates with `token` ([`ADMIN_TOKEN`] or [`PADDOCK_TOKEN`]).
    pub async fn client(&self, token: &str) -> kube::Client {
        let mut config = Kubeconfig::read_from(&self.kubeconfig)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", self.kubeconfig.display()));
        for user in &mut config.auth_infos {
            if let Some(auth) = user.auth_info.as_mut() {
                auth.token = Some(token.to_owned().into());
            }
        }
        let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
            .await
            .unwrap_or_else(|e| panic!("kubeconfig {}: {e}", self.kubeconfig.display()));
        kube::Client::try_from(config).unwrap_or_else(|e| panic!("kube client: {e}"))
    }
}

/// A client of the test control plane for `token`.
pub async fn kube_client(token: &str) -> kube::Client {
    kube_env().client(token).await
}

/// The HTTP status of a failed call (403 Forbidden, 404...), if the server answered.
pub fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}
