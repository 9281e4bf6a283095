//! The test world's kubelet for the labelled pods of one namespace on the fake node, as
//! tests/world/support/kubelet/mod.rs describes; scripts/demo starts it in the background. It
//! runs the real external-dns for external-dns's image and the PowerDNS webhook
//! (examples/pdns-webhook.rs, built beside it) for the webhook sidecar's. Stops (killing its processes) on
//! SIGINT or SIGTERM.
//!
//!     kubelet NAMESPACE WORK_DIR
//!
//! with KUBECONFIG and EXTERNAL_DNS_BIN from `scripts/testenv env`.

#[path = "../tests/world/support/kubelet/mod.rs"]
mod kubelet;

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kubelet::{Image, Kubelet, KubeletConfig};
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [namespace, work_dir] = args.as_slice() else {
        anyhow::bail!("usage: kubelet NAMESPACE WORK_DIR");
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
    let kubelet = Kubelet::start(
        kube::Client::try_from(config)?,
        KubeletConfig {
            namespace: namespace.clone(),
            images: vec![
                Image::external_dns(PathBuf::from(env("EXTERNAL_DNS_BIN")?)),
                Image::pdns_webhook(Image::pdns_webhook_beside(&std::env::current_exe()?)),
            ],
            kubeconfig,
            work_dir: PathBuf::from(work_dir),
            apiserver: None,
        },
    );
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    kubelet.stop().await;
    Ok(())
}
