//! Resolving kinds to API resources, and waiting for the CRDs that serve them.
//!
//! In a bootstrap the kit is often applied while Flux or Cilium is still installing its CRDs;
//! an unknown kind is therefore waited for, with a message naming the CRD and the component
//! that installs it, rather than failed at once.

use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{ApiResource, GroupVersionKind};
use kube::discovery::{self, Scope};

use super::ApplyError;
use crate::retry::{Jitter, RetryError, RetryPolicy, Schedule, with_retry};

/// A kind the kit uses that is served by a CRD, and who installs that CRD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrdSource {
    pub group: &'static str,
    pub kind: &'static str,
    pub crd: &'static str,
    pub installer: &'static str,
}

const fn crd(
    group: &'static str,
    kind: &'static str,
    crd: &'static str,
    installer: &'static str,
) -> CrdSource {
    CrdSource {
        group,
        kind,
        crd,
        installer,
    }
}

const HELM_CONTROLLER: &str = "Flux helm-controller";
const SOURCE_CONTROLLER: &str = "Flux source-controller";
const GATEWAY_API: &str = "the Gateway API CRDs (standard channel)";

/// The CRD-backed kinds a bootstrap kit can contain.
pub const KNOWN_CRDS: &[CrdSource] = &[
    crd(
        "helm.toolkit.fluxcd.io",
        "HelmRelease",
        "helmreleases.helm.toolkit.fluxcd.io",
        HELM_CONTROLLER,
    ),
    crd(
        "source.toolkit.fluxcd.io",
        "HelmRepository",
        "helmrepositories.source.toolkit.fluxcd.io",
        SOURCE_CONTROLLER,
    ),
    crd(
        "source.toolkit.fluxcd.io",
        "OCIRepository",
        "ocirepositories.source.toolkit.fluxcd.io",
        SOURCE_CONTROLLER,
    ),
    crd(
        "source.toolkit.fluxcd.io",
        "HelmChart",
        "helmcharts.source.toolkit.fluxcd.io",
        SOURCE_CONTROLLER,
    ),
    crd(
        "source.toolkit.fluxcd.io",
        "GitRepository",
        "gitrepositories.source.toolkit.fluxcd.io",
        SOURCE_CONTROLLER,
    ),
    crd(
        "kustomize.toolkit.fluxcd.io",
        "Kustomization",
        "kustomizations.kustomize.toolkit.fluxcd.io",
        "Flux kustomize-controller",
    ),
    crd(
        "cilium.io",
        "CiliumNetworkPolicy",
        "ciliumnetworkpolicies.cilium.io",
        "Cilium",
    ),
    crd(
        "cilium.io",
        "CiliumClusterwideNetworkPolicy",
        "ciliumclusterwidenetworkpolicies.cilium.io",
        "Cilium",
    ),
    crd(
        "gateway.networking.k8s.io",
        "GatewayClass",
        "gatewayclasses.gateway.networking.k8s.io",
        GATEWAY_API,
    ),
    crd(
        "gateway.networking.k8s.io",
        "Gateway",
        "gateways.gateway.networking.k8s.io",
        GATEWAY_API,
    ),
    crd(
        "gateway.networking.k8s.io",
        "HTTPRoute",
        "httproutes.gateway.networking.k8s.io",
        GATEWAY_API,
    ),
    crd(
        "gateway.networking.k8s.io",
        "GRPCRoute",
        "grpcroutes.gateway.networking.k8s.io",
        GATEWAY_API,
    ),
    crd(
        "gateway.networking.k8s.io",
        "ReferenceGrant",
        "referencegrants.gateway.networking.k8s.io",
        GATEWAY_API,
    ),
];

/// A kind that is not served (yet), described for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingCrd {
    pub kind: String,
    pub api_version: String,
    /// The CRD's name; for kinds outside [`KNOWN_CRDS`] the conventional `<plural>.<group>`.
    pub crd: String,
    pub installer: String,
}

impl MissingCrd {
    pub fn of(gvk: &GroupVersionKind) -> MissingCrd {
        let known = KNOWN_CRDS
            .iter()
            .find(|c| c.group == gvk.group && c.kind == gvk.kind);
        let (crd, installer) = match known {
            Some(c) => (c.crd.to_owned(), c.installer.to_owned()),
            None => (
                format!("{}.{}", ApiResource::from_gvk(gvk).plural, gvk.group),
                "no component catalyst-bootstrap knows of".to_owned(),
            ),
        };
        MissingCrd {
            kind: gvk.kind.clone(),
            api_version: gvk.api_version(),
            crd,
            installer,
        }
    }
}

/// Built-in API groups are never installed later: a kind missing there is a typo.
fn is_builtin_group(group: &str) -> bool {
    let crd_backed = KNOWN_CRDS.iter().any(|c| c.group == group);
    !crd_backed && (group.is_empty() || !group.contains('.') || group.ends_with(".k8s.io"))
}

/// An API resource and whether it is namespaced.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// Resolves a kind with discovery, waiting up to `timeout` for a CRD to serve it.
/// `waiting` is told once, when the wait starts.
pub(crate) async fn resolve(
    client: &Client,
    policy: &RetryPolicy,
    gvk: &GroupVersionKind,
    file_name: &str,
    timeout: Duration,
    mut waiting: impl FnMut(&MissingCrd),
) -> Result<Resolved, ApplyError> {
    let started = Instant::now();
    let mut polls = Schedule::new(
        Duration::from_millis(500),
        Duration::from_secs(5),
        Jitter::None,
    );
    let mut told = false;
    let what = format!("discover {} in {}", gvk.kind, gvk.api_version());
    loop {
        match with_retry(policy, &what, || discovery::pinned_kind(client, gvk)).await {
            Ok((resource, caps)) => {
                return Ok(Resolved {
                    resource,
                    namespaced: caps.scope == Scope::Namespaced,
                });
            }
            // A group/version nobody serves answers 404; a served group without the kind
            // fails in discovery. Both mean "no CRD (yet)".
            Err(RetryError::NotFound { .. } | RetryError::NotServed { .. }) => {}
            Err(other) => return Err(other.into()),
        }
        if is_builtin_group(&gvk.group) {
            return Err(ApplyError::Manifest {
                file: file_name.to_owned(),
                message: format!(
                    "the apiserver serves no kind {} in {}",
                    gvk.kind,
                    gvk.api_version()
                ),
            });
        }
        let missing = MissingCrd::of(gvk);
        let waited = started.elapsed();
        if waited >= timeout {
            return Err(ApplyError::CrdTimeout { missing, waited });
        }
        if !told {
            waiting(&missing);
            told = true;
        }
        tokio::time::sleep(polls.next_delay().min(timeout - waited)).await;
    }
}

/// The preferred API resource of a group-kind, or `None` when nothing serves it (then no
/// object of it can exist, and there is nothing to prune).
pub(crate) async fn resolve_group_kind(
    client: &Client,
    policy: &RetryPolicy,
    group: &str,
    kind: &str,
) -> Result<Option<Resolved>, ApplyError> {
    let what = format!("discover group {group:?}");
    match with_retry(policy, &what, || discovery::group(client, group)).await {
        Ok(api_group) => Ok(api_group
            .recommended_kind(kind)
            .map(|(resource, caps)| Resolved {
                resource,
                namespaced: caps.scope == Scope::Namespaced,
            })),
        Err(RetryError::NotFound { .. } | RetryError::NotServed { .. }) => Ok(None),
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_kinds_name_their_crd_and_installer() {
        let hr = MissingCrd::of(&GroupVersionKind::gvk(
            "helm.toolkit.fluxcd.io",
            "v2",
            "HelmRelease",
        ));
        assert_eq!(hr.crd, "helmreleases.helm.toolkit.fluxcd.io");
        assert_eq!(hr.installer, "Flux helm-controller");
        assert_eq!(hr.api_version, "helm.toolkit.fluxcd.io/v2");
        let cnp = MissingCrd::of(&GroupVersionKind::gvk(
            "cilium.io",
            "v2",
            "CiliumNetworkPolicy",
        ));
        assert_eq!(
            (cnp.crd.as_str(), cnp.installer.as_str()),
            ("ciliumnetworkpolicies.cilium.io", "Cilium")
        );
        for c in KNOWN_CRDS {
            assert!(c.crd.ends_with(&format!(".{}", c.group)), "{}", c.crd);
        }
    }

    #[test]
    fn unknown_kinds_get_the_conventional_crd_name() {
        let w = MissingCrd::of(&GroupVersionKind::gvk(
            "test.catalyst.openova.io",
            "v1",
            "Widget",
        ));
        assert_eq!(w.crd, "widgets.test.catalyst.openova.io");
        let p = MissingCrd::of(&GroupVersionKind::gvk("example.com", "v1", "Policy"));
        assert_eq!(p.crd, "policies.example.com");
    }

    #[test]
    fn builtin_groups_are_not_waited_for() {
        for g in ["", "apps", "networking.k8s.io", "rbac.authorization.k8s.io"] {
            assert!(is_builtin_group(g), "{g}");
        }
        for g in [
            "gateway.networking.k8s.io",
            "cilium.io",
            "helm.toolkit.fluxcd.io",
            "test.catalyst.openova.io",
        ] {
            assert!(!is_builtin_group(g), "{g}");
        }
    }
}
