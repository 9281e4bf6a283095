//! Whether time can fix an apiserver error ([`classify`]), and the error a call that
//! failed for good ends with ([`RetryError`]), with its exit code.

use std::error::Error as StdError;
use std::time::Duration;

use thiserror::Error;

use super::client::Throttled;
use crate::exit::Exit;

/// A call that failed for good. `what` names the call, e.g. `apply HelmRelease flux-system/x`.
#[derive(Debug, Error)]
pub enum RetryError {
    #[error(
        "{what}: the apiserver stayed unreachable, throttling or failing for {}s ({attempts} attempts); last error: {last}",
        elapsed.as_secs()
    )]
    Unreachable {
        what: String,
        elapsed: Duration,
        attempts: u32,
        last: String,
    },
    #[error("{what}: forbidden: cannot {verb} {resource}: {message}")]
    Forbidden {
        what: String,
        verb: String,
        resource: String,
        message: String,
    },
    #[error("{what}: unauthorized (HTTP 401): {message}")]
    Unauthorized { what: String, message: String },
    /// 400 or 422: the request (in practice, a manifest) was rejected.
    #[error("{what}: rejected as invalid: {message}")]
    Invalid { what: String, message: String },
    #[error("{what}: not found: {message}")]
    NotFound { what: String, message: String },
    #[error("{what}: conflict: {message}")]
    Conflict { what: String, message: String },
    /// Discovery found no such kind or group.
    #[error("{what}: not served by the apiserver: {message}")]
    NotServed { what: String, message: String },
    #[error("{what}: HTTP {code}: {message}")]
    Api {
        what: String,
        code: u16,
        message: String,
    },
    /// The server's certificate was refused: TLS verification is on, and the kubeconfig's
    /// certificate authority does not vouch for it.
    #[error(
        "{what}: TLS verification failed: the apiserver's certificate is not trusted ({cause}); \
         check the certificate-authority of the kubeconfig's cluster, or pass \
         --insecure-skip-tls-verify to skip verification (unsafe)"
    )]
    Tls { what: String, cause: String },
    /// A failure on our side that retrying cannot fix: TLS setup, credentials plugin,
    /// an undecodable answer.
    #[error("{what}: {message}")]
    Client { what: String, message: String },
}

impl RetryError {
    /// Unreachable → 6; Forbidden and Unauthorized → 8; Invalid (the apiserver rejected what
    /// we sent, i.e. the manifest) → 3; an untrusted certificate → 9; anything else is
    /// unexpected → 1.
    pub fn exit(&self) -> Exit {
        match self {
            RetryError::Unreachable { .. } => Exit::ApiserverUnreachable,
            RetryError::Forbidden { .. } | RetryError::Unauthorized { .. } => {
                Exit::PermissionDenied
            }
            RetryError::Invalid { .. } => Exit::BadInput,
            RetryError::Tls { .. } => Exit::TlsUntrusted,
            RetryError::NotFound { .. }
            | RetryError::Conflict { .. }
            | RetryError::NotServed { .. }
            | RetryError::Api { .. }
            | RetryError::Client { .. } => Exit::Internal,
        }
    }
}

/// Whether time can fix an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Retry, after at least `retry_after` when the server said so.
    Transient {
        retry_after: Option<Duration>,
    },
    Permanent,
}

pub(super) const TRANSIENT: Class = Class::Transient { retry_after: None };

/// Sorts an error into transient or permanent. Pure, so it is unit-tested on built errors.
pub fn classify(err: &kube::Error) -> Class {
    use kube::Error as E;
    match err {
        E::Api(status) => classify_status(status),
        E::Service(inner) => classify_transport(inner.as_ref()),
        E::HyperError(inner) => classify_transport(inner),
        E::ReadEvents(_) => TRANSIENT,
        _ => Class::Permanent,
    }
}

fn classify_status(status: &kube::core::Status) -> Class {
    // An etcd hiccup can surface under several codes; the text is what identifies it.
    let etcd_hiccup = [
        "etcdserver: leader changed",
        "etcdserver: request timed out",
    ]
    .iter()
    .any(|m| status.message.contains(m));
    let retry_after = status
        .details
        .as_ref()
        .map(|d| d.retry_after_seconds)
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(s.into()));
    match status.code {
        408 | 429 | 500 | 502 | 503 | 504 => Class::Transient { retry_after },
        _ if etcd_hiccup => Class::Transient { retry_after },
        _ => Class::Permanent,
    }
}

/// Transport failures (refused, reset, timed out, TLS handshake cut short) are transient,
/// except certificate problems, which the next attempt would meet again.
fn classify_transport(err: &(dyn StdError + 'static)) -> Class {
    let mut next: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(t) = e.downcast_ref::<Throttled>() {
            return Class::Transient {
                retry_after: Some(t.retry_after),
            };
        }
        next = e.source();
    }
    if certificate_error(err).is_some() {
        return Class::Permanent;
    }
    TRANSIENT
}

/// The rustls certificate error somewhere in an error's chain.
fn certificate_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut next: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(tls) = e
            .downcast_ref::<rustls::Error>()
            .filter(|t| is_certificate_error(t))
        {
            return Some(tls);
        }
        // io::Error::source() skips its payload, which hyper-rustls nests two deep
        // (an io::Error in an io::Error); look at the payload itself.
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = certificate_error(inner)
        {
            return Some(tls);
        }
        next = e.source();
    }
    None
}

/// Why the server's certificate was refused, when that is what failed the request.
pub fn untrusted_certificate(err: &kube::Error) -> Option<String> {
    let tls = match err {
        kube::Error::Service(inner) => certificate_error(inner.as_ref()),
        kube::Error::HyperError(inner) => certificate_error(inner),
        _ => None,
    }?;
    Some(tls.to_string())
}

fn is_certificate_error(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
    )
}

/// The permanent error for a final failure.
pub(crate) fn permanent(what: &str, err: &kube::Error) -> RetryError {
    let what = what.to_owned();
    let status = match err {
        kube::Error::Api(status) => status,
        kube::Error::Discovery(e) => {
            return RetryError::NotServed {
                what,
                message: e.to_string(),
            };
        }
        other => {
            if let Some(cause) = untrusted_certificate(other) {
                return RetryError::Tls { what, cause };
            }
            return RetryError::Client {
                what,
                message: other.to_string(),
            };
        }
    };
    let message = status.message.clone();
    match status.code {
        401 => RetryError::Unauthorized { what, message },
        403 => {
            let (verb, resource) = forbidden_parts(status);
            RetryError::Forbidden {
                what,
                verb,
                resource,
                message,
            }
        }
        400 | 422 => RetryError::Invalid { what, message },
        404 => RetryError::NotFound { what, message },
        409 => RetryError::Conflict { what, message },
        code => RetryError::Api {
            what,
            code,
            message,
        },
    }
}

/// Verb and resource of a 403. The RBAC authorizer words its refusals as
/// `User "u" cannot <verb> resource "<resource>" in API group "<group>" ...`;
/// other authorizers may not, so fall back to the details the Status carries.
fn forbidden_parts(status: &kube::core::Status) -> (String, String) {
    let msg = &status.message;
    let verb = msg
        .split_once(" cannot ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("")
        .to_owned();
    let quoted_after = |marker: &str| {
        msg.split_once(marker)
            .and_then(|(_, rest)| rest.split('"').nth(1))
            .map(str::to_owned)
    };
    let resource = match (quoted_after(" resource "), quoted_after(" in API group ")) {
        (Some(r), Some(g)) if !g.is_empty() => format!("{r}.{g}"),
        (Some(r), _) => r,
        _ => status
            .details
            .as_ref()
            .map(|d| match d.group.as_str() {
                "" => d.kind.clone(),
                g => format!("{}.{g}", d.kind),
            })
            .unwrap_or_default(),
    };
    (verb, resource)
}
