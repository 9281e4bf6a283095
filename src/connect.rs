//! Connecting to the cluster: a kubeconfig (explicit, `$KUBECONFIG`, `~/.kube/config`, or the
//! in-cluster service account) turned into a client tuned by [`crate::retry`].

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};
use thiserror::Error;

use crate::exit::Exit;
use crate::retry;

/// Where the cluster is, as the user said it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterConfig {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// Skip verifying the apiserver's certificate. Only ever by the user's explicit flag:
    /// a kubeconfig that asks for it on its own is refused ([`ConnectError::InsecureKubeconfig`]).
    pub insecure_skip_tls_verify: bool,
}

/// What the user is told, on stderr and as an event, whenever verification is off.
pub const INSECURE_WARNING: &str = "--insecure-skip-tls-verify: the apiserver's TLS certificate is \
     not verified; anyone on the network path can impersonate it and receive the credentials \
     sent to it";

/// The kubeconfig is the user's input: every way it can be wrong is bad input (exit 3).
/// An unreachable server is found later, by the first request, and reported as such.
///
/// Messages hold only the first line of kube's own: its YAML errors go on to quote the
/// kubeconfig's lines, which hold client keys and tokens.
#[derive(Debug, Error)]
pub enum ConnectError {
    #[error("kubeconfig {where_}: {problem}")]
    Kubeconfig { where_: String, problem: String },
    #[error("kubeconfig {where_}: {what} `{context}` is not in the file; expected one of: {known}")]
    UnknownContext {
        where_: String,
        /// `--context` or `current-context`.
        what: &'static str,
        context: String,
        known: String,
    },
    #[error(
        "no cluster configured: {0}; expected --kubeconfig FILE, $KUBECONFIG, ~/.kube/config \
         or an in-cluster service account"
    )]
    NotFound(String),
    #[error(
        "kubeconfig {where_}: its client certificate, client key or certificate authority \
         cannot be used: {problem}"
    )]
    Client { where_: String, problem: String },
    /// Verification is skipped only on the command line, where it is visible and deliberate.
    #[error(
        "kubeconfig {where_}: cluster {server} sets insecure-skip-tls-verify: true, and \
         catalyst-bootstrap never skips TLS verification silently; expected \
         certificate-authority or certificate-authority-data for the cluster, or pass \
         --insecure-skip-tls-verify to accept an unverified apiserver"
    )]
    InsecureKubeconfig { where_: String, server: String },
}

impl ConnectError {
    pub fn exit(&self) -> Exit {
        Exit::BadInput
    }
}

/// The first line of an error's message: the problem and its position, never a quote of
/// the file.
fn first_line(error: &impl std::fmt::Display) -> String {
    error
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Installs the process's one rustls crypto provider (ring), shared by kube and reqwest.
/// Two providers in one process make rustls refuse to pick one at run time.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The client of the chosen cluster, timing every request into `pressure` (the run's
/// [`crate::retry::RetryPolicy::pressure`]).
pub async fn client(
    cluster: &ClusterConfig,
    pressure: &crate::health::pressure::Pressure,
) -> Result<kube::Client, ConnectError> {
    install_crypto_provider();
    let options = KubeConfigOptions {
        context: cluster.context.clone(),
        ..KubeConfigOptions::default()
    };
    let where_ = match &cluster.kubeconfig {
        Some(path) => path.display().to_string(),
        None => std::env::var("KUBECONFIG").unwrap_or_else(|_| "~/.kube/config".into()),
    };
    let invalid = |e: kube::config::KubeconfigError| ConnectError::Kubeconfig {
        where_: where_.clone(),
        problem: first_line(&e),
    };
    let mut config = match &cluster.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(invalid)?;
            from_kubeconfig(kubeconfig, &options, &where_).await?
        }
        None if cluster.context.is_some() => {
            let kubeconfig = Kubeconfig::read().map_err(invalid)?;
            from_kubeconfig(kubeconfig, &options, &where_).await?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| ConnectError::NotFound(first_line(&e)))?,
    };
    if cluster.insecure_skip_tls_verify {
        config.accept_invalid_certs = true;
    } else if config.accept_invalid_certs {
        return Err(ConnectError::InsecureKubeconfig {
            where_,
            server: config.cluster_url.to_string(),
        });
    }
    retry::client(config, pressure).map_err(|e| ConnectError::Client {
        where_,
        problem: first_line(&e),
    })
}

/// The client configuration of the chosen context, after checking that the context exists
/// (kube's own message would name the context without saying it is missing).
async fn from_kubeconfig(
    kubeconfig: Kubeconfig,
    options: &KubeConfigOptions,
    where_: &str,
) -> Result<kube::Config, ConnectError> {
    let chosen = match &options.context {
        Some(context) => Some(("--context", context.clone())),
        None => kubeconfig
            .current_context
            .clone()
            .map(|c| ("current-context", c)),
    };
    let known: Vec<String> = kubeconfig
        .contexts
        .iter()
        .map(|c| format!("`{}`", c.name))
        .collect();
    let known = if known.is_empty() {
        "none (the file defines no contexts)".to_owned()
    } else {
        known.join(", ")
    };
    match chosen {
        Some((what, context)) if !kubeconfig.contexts.iter().any(|c| c.name == context) => {
            return Err(ConnectError::UnknownContext {
                where_: where_.to_owned(),
                what,
                context,
                known,
            });
        }
        Some(_) => {}
        None => {
            return Err(ConnectError::Kubeconfig {
                where_: where_.to_owned(),
                problem: format!(
                    "sets no current-context and no --context was given; expected \
                     current-context or --context naming one of its contexts: {known}"
                ),
            });
        }
    }
    kube::Config::from_custom_kubeconfig(kubeconfig, options)
        .await
        .map_err(|e| ConnectError::Kubeconfig {
            where_: where_.to_owned(),
            problem: first_line(&e),
        })
}
