//! Connecting to the cluster: a kubeconfig (explicit, `$KUBECONFIG`, `~/.kube/config`, or the
//! in-cluster service account) turned into a client tuned by [`crate::retry`].

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};
use thiserror::Error;

use crate::exit::Exit;
use crate::retry;

/// Where the cluster is, as the user said it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterConfig {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

/// The kubeconfig is the user's input: every way it can be wrong is bad input (exit 3).
/// An unreachable server is found later, by the first request, and reported as such.
#[derive(Debug, Error)]
pub enum ConnectError {
    // The kube errors already carry their causes in their messages, so they are shown
    // inline and not chained again.
    #[error("kubeconfig {}: {error}", path.display())]
    Unreadable {
        path: PathBuf,
        error: kube::config::KubeconfigError,
    },
    #[error("kubeconfig: {0}")]
    Invalid(kube::config::KubeconfigError),
    #[error("no cluster configured: {0} (set --kubeconfig or KUBECONFIG)")]
    NotFound(kube::config::InferConfigError),
    #[error("cannot build a client from the kubeconfig: {0}")]
    Client(kube::Error),
}

impl ConnectError {
    pub fn exit(&self) -> Exit {
        Exit::BadInput
    }
}

/// Installs the process's one rustls crypto provider (ring), shared by kube and reqwest.
/// Two providers in one process make rustls refuse to pick one at run time.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub async fn client(cluster: &ClusterConfig) -> Result<kube::Client, ConnectError> {
    install_crypto_provider();
    let options = KubeConfigOptions {
        context: cluster.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match &cluster.kubeconfig {
        Some(path) => from_file(path, &options).await?,
        None if cluster.context.is_some() => {
            let kubeconfig = Kubeconfig::read().map_err(ConnectError::Invalid)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(ConnectError::Invalid)?
        }
        None => kube::Config::infer()
            .await
            .map_err(ConnectError::NotFound)?,
    };
    retry::client(config).map_err(ConnectError::Client)
}

async fn from_file(path: &Path, options: &KubeConfigOptions) -> Result<kube::Config, ConnectError> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|error| ConnectError::Unreadable {
        path: path.to_owned(),
        error,
    })?;
    kube::Config::from_custom_kubeconfig(kubeconfig, options)
        .await
        .map_err(|error| ConnectError::Unreadable {
            path: path.to_owned(),
            error,
        })
}
