//! Runs the real external-dns for the external-dns pods of one namespace on the test
//! world's fake node, as tests/support/pod_runner.rs describes; scripts/demo starts it in
//! the background. Stops (killing its processes) on SIGINT or SIGTERM.
//!
//!     pod-runner NAMESPACE SELECTOR WORK_DIR
//!
//! with KUBECONFIG and EXTERNAL_DNS_BIN from `scripts/testenv env`.

#[path = "../tests/support/pod_runner.rs"]
mod pod_runner;

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};
use pod_runner::{PodRunner, RunnerConfig};
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [namespace, selector, work_dir] = args.as_slice() else {
        anyhow::bail!("usage: pod-runner NAMESPACE SELECTOR WORK_DIR");
    };
    let env = |name: &str| {
        std::env::var(name).map_err(|_| anyhow::anyhow!("{name} is not set (scripts/testenv env)"))
    };
    let kubeconfig = PathBuf::from(env("KUBECONFIG")?);
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&kubeconfig)?,
        &KubeConfigOptions::default(),
    )
    .await?;
    let runner = PodRunner::start(
        kube::Client::try_from(config)?,
        RunnerConfig {
            namespace: namespace.clone(),
            selector: selector.clone(),
            binary: PathBuf::from(env("EXTERNAL_DNS_BIN")?),
            kubeconfig,
            work_dir: PathBuf::from(work_dir),
        },
    );
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    runner.stop().await;
    Ok(())
}
