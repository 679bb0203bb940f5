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
/// A static token of [`NOBODY_USER`], a ServiceAccount that nothing binds.
pub const NOBODY_TOKEN: &str = "nobody-token";
pub const NOBODY_USER: &str = "system:serviceaccount:paddock-system:nobody";

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

/// The field manager of the tests' server-side applies.
const MANAGER: &str = "paddock-tests";

/// The documents of `deploy/<file>`.
pub fn deploy_manifest(file: &str) -> Vec<serde_json::Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

/// Server-side apply of `doc` (really, or as a dry run), forcing conflicts: idempotent.
/// The object as the server has (or would have) it.
pub async fn apply(
    client: &kube::Client,
    doc: &serde_json::Value,
    dry_run: bool,
) -> Result<serde_json::Value, String> {
    use kube::{
        Api,
        api::{DynamicObject, Patch, PatchParams},
        core::GroupVersionKind,
        discovery::{Scope, pinned_kind},
    };
    let object: DynamicObject = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let types = object.types.as_ref().ok_or("no apiVersion or kind")?;
    let gvk = GroupVersionKind::try_from(types).map_err(|e| e.to_string())?;
    let (resource, caps) = pinned_kind(client, &gvk).await.map_err(|e| format!("{e}"))?;
    let api: Api<DynamicObject> = match (&caps.scope, &object.metadata.namespace) {
        (Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
        (Scope::Namespaced, None) => return Err("namespaced, but no metadata.namespace".into()),
    };
    let name = object.metadata.name.as_deref().ok_or("no metadata.name")?;
    let mut params = PatchParams::apply(MANAGER).force();
    params.dry_run = dry_run;
    let applied = api.patch(name, &params, &Patch::Apply(doc)).await.map_err(|e| e.to_string())?;
    serde_json::to_value(applied).map_err(|e| e.to_string())
}
