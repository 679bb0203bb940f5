//! `cargo xtask k8s start|stop|env`: the integration tests' Kubernetes control plane, left
//! running for a developer (kubectl, or `cargo test -p paddock-tests` with its environment).
use clap::Subcommand;

use crate::servers::kubernetes::{self, Kubernetes};

#[derive(Subcommand)]
pub enum Action {
    /// Start etcd, kube-apiserver and kube-controller-manager and leave them running.
    Start,
    /// Stop what `start` left running.
    Stop,
    /// Print the environment (shell `export` lines) that points tests and kubectl at it.
    Env,
}

pub fn run(action: Action) -> anyhow::Result<()> {
    let dir = kubernetes::run_dir();
    match action {
        Action::Start => {
            crate::setup::run_setup_steps()?;
            Kubernetes::start(&dir, false)?.detach();
            println!("k8s: running; logs in {}; stop with `cargo xtask k8s stop`", dir.display());
            print_env(&dir);
        }
        Action::Stop => kubernetes::stop_dir(&dir)?,
        Action::Env => print_env(&dir),
    }
    Ok(())
}

fn print_env(dir: &std::path::Path) {
    for (key, value) in kubernetes::test_env(dir) {
        println!("export {key}={}", value.display());
    }
    println!("export KUBECONFIG={}", dir.join("kubeconfig").display());
}
