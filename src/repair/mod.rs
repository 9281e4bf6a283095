//! `repair`: unsticks what a fresh cluster leaves stuck, touching only objects this tool
//! owns, in the ways their controllers define for it.
//!
//! - A kit HelmRelease whose retries are exhausted (or that helm-controller otherwise
//!   Stalled) gets what `flux reconcile helmrelease --reset` writes: the annotations
//!   `reconcile.fluxcd.io/requestedAt` and `reconcile.fluxcd.io/resetAt` set to one fresh
//!   token. helm-controller resets the failure counters only when the two are equal and
//!   the token is new (helm-controller api/v2 `ShouldHandleResetRequest`), then tries
//!   again. Any other HelmRelease that is not Ready gets only `requestedAt`: reconcile now
//!   instead of at the next interval.
//! - The Deployment Helm created for such a release gets `kubectl rollout restart` (the
//!   pod template annotation `kubectl.kubernetes.io/restartedAt`) when its pods crash-loop
//!   on its current template; see [`decide_restart`] for exactly when.
//!
//! Every write is a JSON merge patch under its own field manager, [`FIELD_MANAGER`], so
//! the field ownership `apply` records (and its next run) are left as they were, and
//! carries the UID of the object that was judged, so an object replaced in the meantime
//! is not written (the apiserver rejects a UID change).

//!
//! The decisions are pure functions of the objects read ([`decide`]); this module reads
//! the objects and writes what they decide.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::Selector;
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::apply::{MANAGED_BY_LABEL, TOOL};
use crate::health::target::{helm_release_resource, selection};
use crate::health::{PodSelection, Target, TargetKind};
use crate::retry::{RetryError, RetryPolicy, list_selected, with_retry};

mod decide;

pub use decide::{
    Action, RESTART_COOLDOWN, ReleaseRepair, RepairAction, RepairReport, RestartDecision, Skipped,
    decide_release, decide_restart,
};
use decide::{annotation, controller_of, is_ours};

/// The field manager of every repair write; `apply`'s is [`crate::apply::FIELD_MANAGER`].
pub const FIELD_MANAGER: &str = "catalyst-bootstrap-repair";
/// Flux (fluxcd/pkg apis/meta `ReconcileRequestAnnotation`): reconcile now.
pub use crate::health::judge::RECONCILE_REQUEST_ANNOTATION as REQUESTED_AT;
/// helm-controller (api/v2 `ResetRequestAnnotation`): reset the failure counters; only
/// honoured when equal to [`REQUESTED_AT`].
pub const RESET_AT: &str = "reconcile.fluxcd.io/resetAt";
/// What `kubectl rollout restart` sets on the pod template (kubectl's
/// polymorphichelpers/objectrestarter.go).
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// Helm records the release owning each object it created in these annotations.
pub const HELM_RELEASE_NAME: &str = "meta.helm.sh/release-name";
pub const HELM_RELEASE_NAMESPACE: &str = "meta.helm.sh/release-namespace";
/// The label charts give the pods of a release (see [`Target::with_release_pods`]).
const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// Repairs what can be repaired among `targets`, as [`decide_release`] and
/// [`decide_restart`] decide. `now` gives the current time in RFC 3339 (e.g.
/// `jiff::Timestamp::now().to_string()`): the token of Flux requests and the value of
/// `restartedAt`. helm-controller handles a token once, so it must differ between runs.
pub async fn repair(
    client: &Client,
    targets: &[Target],
    policy: &RetryPolicy,
    now: impl Fn() -> String,
) -> Result<RepairReport, RetryError> {
    let mut repairer = Repairer {
        client,
        policy,
        now,
        report: RepairReport::default(),
    };
    for target in targets {
        match target.kind {
            TargetKind::HelmRelease => repairer.release(target).await?,
            TargetKind::Deployment => repairer.deployment_target(target).await?,
        }
    }
    Ok(repairer.report)
}

/// One run of `repair`: what it reads and writes with, and what it did.
struct Repairer<'a, F> {
    client: &'a Client,
    policy: &'a RetryPolicy,
    now: F,
    report: RepairReport,
}

impl<F: Fn() -> String> Repairer<'_, F> {
    async fn release(&mut self, target: &Target) -> Result<(), RetryError> {
        let resource = target.resource();
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &target.namespace,
            &helm_release_resource(),
        );
        let Some(hr) = self.get_target(&api, target).await? else {
            return Ok(());
        };
        let uid = hr.metadata.uid.as_deref();
        let (action, reason, patch) = match decide_release(&hr) {
            ReleaseRepair::Skip { reason } => {
                self.report.skip(resource, reason);
                return Ok(());
            }
            ReleaseRepair::None => (None, String::new(), Value::Null),
            ReleaseRepair::RequestReconcile { reason } => (
                Some(Action::RequestReconcile),
                reason,
                json!({"metadata": {"uid": uid, "annotations": { REQUESTED_AT: (self.now)() }}}),
            ),
            ReleaseRepair::ResetFailures { reason } => (
                Some(Action::ResetFailures),
                reason,
                reset_patch(uid, &(self.now)()),
            ),
        };
        if let Some(action) = action {
            merge_patch(&api, &target.name, &resource, patch, self.policy).await?;
            self.report.actions.push(RepairAction {
                resource: resource.clone(),
                action,
                reason,
            });
        }
        if let PodSelection::Labels { namespace, labels } = &target.pods
            && let (Some(release), Some(selector)) =
                (labels.get(INSTANCE_LABEL), selection(&target.pods))
        {
            self.restart_release_deployments(namespace, &selector, release)
                .await?;
        }
        Ok(())
    }

    /// The target's object; `None`, noted in the report, when `apply` has not created it.
    async fn get_target<K>(
        &mut self,
        api: &Api<K>,
        target: &Target,
    ) -> Result<Option<K>, RetryError>
    where
        K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let resource = target.resource();
        let what = format!("get {resource}");
        let found = with_retry(self.policy, &what, || api.get_opt(&target.name)).await?;
        if found.is_none() {
            self.report.skip(resource, "not created: run `apply` first");
        }
        Ok(found)
    }

    /// Finds the Deployments behind the release's pods (pod → ReplicaSet → Deployment) and
    /// restarts those Helm created for `release` when [`decide_restart`] says so.
    async fn restart_release_deployments(
        &mut self,
        namespace: &str,
        selector: &Selector,
        release: &str,
    ) -> Result<(), RetryError> {
        let pods = list_selected::<Pod>(self.client, namespace, selector, self.policy).await?;
        let pod_owners: BTreeSet<&str> = pods
            .iter()
            .filter_map(|p| controller_of(&p.metadata, "ReplicaSet"))
            .map(|o| o.name.as_str())
            .collect();
        if pod_owners.is_empty() {
            return Ok(());
        }
        let replica_sets =
            list_selected::<ReplicaSet>(self.client, namespace, selector, self.policy).await?;
        let deployments: BTreeSet<&str> = replica_sets
            .iter()
            .filter(|rs| {
                rs.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| pod_owners.contains(n))
            })
            .filter_map(|rs| controller_of(&rs.metadata, "Deployment"))
            .map(|o| o.name.as_str())
            .collect();
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        for name in deployments {
            let resource = format!("Deployment {namespace}/{name}");
            let what = format!("get {resource}");
            let Some(d) = with_retry(self.policy, &what, || api.get_opt(name)).await? else {
                continue;
            };
            let helm_release = annotation(&d.metadata, HELM_RELEASE_NAME);
            let helm_namespace = annotation(&d.metadata, HELM_RELEASE_NAMESPACE);
            if helm_release != Some(release) || helm_namespace != Some(namespace) {
                // Not knowing the cause, stay quiet unless it would have been restarted.
                if let RestartDecision::Restart { .. } =
                    decide_restart(&d, &replica_sets, &pods, None)
                {
                    self.report.skip(
                        resource,
                        format!(
                            "its pods crash-loop, but Helm did not create it for release \
                             {namespace}/{release} ({HELM_RELEASE_NAME}, {HELM_RELEASE_NAMESPACE})"
                        ),
                    );
                }
                continue;
            }
            self.restart_if_warranted(&d, resource).await?;
        }
        Ok(())
    }

    /// A Deployment target is repaired only when `apply` created it.
    async fn deployment_target(&mut self, target: &Target) -> Result<(), RetryError> {
        let resource = target.resource();
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &target.namespace);
        let Some(d) = self.get_target(&api, target).await? else {
            return Ok(());
        };
        if !is_ours(&d.metadata) {
            self.report.skip(
                resource,
                format!("not managed by catalyst-bootstrap (no {MANAGED_BY_LABEL}={TOOL} label)"),
            );
            return Ok(());
        }
        self.restart_if_warranted(&d, resource).await
    }

    async fn restart_if_warranted(
        &mut self,
        d: &Deployment,
        resource: String,
    ) -> Result<(), RetryError> {
        let namespace = d.metadata.namespace.as_deref().unwrap_or_default();
        let name = d.metadata.name.as_deref().unwrap_or_default();
        let Some(selector) = d
            .spec
            .as_ref()
            .and_then(|s| Selector::try_from(s.selector.clone()).ok())
        else {
            return Ok(());
        };
        let replica_sets =
            list_selected::<ReplicaSet>(self.client, namespace, &selector, self.policy).await?;
        let pods = list_selected::<Pod>(self.client, namespace, &selector, self.policy).await?;
        let stamp = (self.now)();
        match decide_restart(d, &replica_sets, &pods, stamp.parse().ok()) {
            RestartDecision::None => {}
            RestartDecision::Skip { reason } => self.report.skip(resource, reason),
            RestartDecision::Restart { reason } => {
                let patch = json!({
                    "metadata": {"uid": d.metadata.uid},
                    "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}},
                });
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
                merge_patch(&api, name, &resource, patch, self.policy).await?;
                self.report.actions.push(RepairAction {
                    resource,
                    action: Action::RolloutRestart,
                    reason,
                });
            }
        }
        Ok(())
    }
}

/// What `flux reconcile helmrelease --reset` writes, as a merge patch carrying the UID of
/// the HelmRelease judged: `requestedAt` and `resetAt` set to one fresh `token`.
pub(crate) fn reset_patch(uid: Option<&str>, token: &str) -> Value {
    json!({"metadata": {"uid": uid, "annotations": { REQUESTED_AT: token, RESET_AT: token }}})
}

/// The parameters of every repair write: its own field manager.
pub(crate) fn write_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

/// A merge patch of fixed values: repeating it after a lost answer changes nothing more.
async fn merge_patch<K>(
    api: &Api<K>,
    name: &str,
    resource: &str,
    patch: Value,
    policy: &RetryPolicy,
) -> Result<(), RetryError>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = write_params();
    let patch = Patch::Merge(&patch);
    let what = format!("patch {resource}");
    with_retry(policy, &what, || api.patch(name, &params, &patch)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use http::Method;
    use serde_json::{Value, json};

    use super::decide::tests::{UID, deployment, hr, ours, pod, sets, stalled};
    use super::*;
    use crate::recorded::{apiserver, exchange, not_found};

    const RELEASE: &str = "/apis/helm.toolkit.fluxcd.io/v2/namespaces/ns/helmreleases/external-dns";
    const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/ns/deployments/external-dns";
    const TOKEN: &str = "2026-03-01T12:00:00Z";

    fn with_uid(mut object: Value, uid: &str) -> Value {
        object["metadata"]["uid"] = json!(uid);
        object
    }

    fn stalled_release(labels: Value) -> Value {
        with_uid(
            serde_json::to_value(hr(labels, json!({}), stalled())).unwrap(),
            "hr-uid",
        )
    }

    async fn run(
        targets: &[Target],
        script: Vec<crate::recorded::Exchange>,
    ) -> (RepairReport, Vec<crate::recorded::Seen>) {
        let (client, answering) = apiserver(script);
        let report = repair(&client, targets, &RetryPolicy::default(), || {
            TOKEN.to_owned()
        })
        .await
        .unwrap();
        drop(client);
        (report, answering.await.unwrap())
    }

    #[tokio::test]
    async fn a_stalled_release_gets_one_reset_patch_under_repairs_field_manager() {
        let release = stalled_release(ours());
        let (report, seen) = run(
            &[Target::helm_release("ns", "external-dns")],
            vec![
                exchange(Method::GET, RELEASE, 200, release.clone()),
                exchange(Method::PATCH, RELEASE, 200, release),
            ],
        )
        .await;
        let patch = &seen[1];
        assert_eq!(patch.query("fieldManager"), Some(FIELD_MANAGER));
        assert_eq!(
            patch.content_type.as_deref(),
            Some("application/merge-patch+json")
        );
        assert_eq!(patch.body, reset_patch(Some("hr-uid"), TOKEN));
        assert_eq!(report.actions.len(), 1, "{report:?}");
        assert_eq!(report.actions[0].action, Action::ResetFailures);
        assert!(report.skipped.is_empty(), "{report:?}");
    }

    /// Targets that are missing, or not ours, are read, noted and never written; a
    /// Deployment that is not ours does not even get its ReplicaSets and pods listed.
    #[tokio::test]
    async fn targets_missing_or_not_ours_are_noted_and_never_written() {
        let foreign = json!({"app.kubernetes.io/managed-by": "Helm"});
        let cases = [
            (
                "missing",
                (404, not_found("helmreleases", "external-dns")),
                (404, not_found("deployments", "external-dns")),
                "not created: run `apply` first",
            ),
            (
                "not ours",
                (200, stalled_release(foreign)),
                (
                    200,
                    serde_json::to_value(deployment(false, 2, None)).unwrap(),
                ),
                "not managed by catalyst-bootstrap",
            ),
        ];
        for (case, (release_status, release), (deployment_status, deployment), reason) in cases {
            let (report, seen) = run(
                &[
                    Target::helm_release("ns", "external-dns"),
                    Target::deployment("ns", "external-dns"),
                ],
                vec![
                    exchange(Method::GET, RELEASE, release_status, release),
                    exchange(Method::GET, DEPLOYMENT, deployment_status, deployment),
                ],
            )
            .await;
            assert_eq!(seen.len(), 2, "{case}");
            assert!(report.nothing_done(), "{case}: {report:?}");
            let skipped: Vec<&str> = report.skipped.iter().map(|s| s.resource.as_str()).collect();
            assert_eq!(
                skipped,
                ["HelmRelease ns/external-dns", "Deployment ns/external-dns"],
                "{case}"
            );
            assert!(
                report.skipped.iter().all(|s| s.reason.starts_with(reason)),
                "{case}: {report:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_crash_looping_deployment_of_ours_is_restarted_once_with_its_uid() {
        let mut owned = serde_json::to_value(deployment(false, 2, None)).unwrap();
        owned["metadata"]["labels"] = ours();
        let list = |kind: &str, items: Value| {
            json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "7"},
                   "items": items})
        };
        let (report, seen) = run(
            &[Target::deployment("ns", "external-dns")],
            vec![
                exchange(Method::GET, DEPLOYMENT, 200, owned.clone()),
                exchange(
                    Method::GET,
                    "/apis/apps/v1/namespaces/ns/replicasets",
                    200,
                    list("ReplicaSetList", serde_json::to_value(sets()).unwrap()),
                ),
                exchange(
                    Method::GET,
                    "/api/v1/namespaces/ns/pods",
                    200,
                    list("PodList", json!([pod("p", "cur", 5)])),
                ),
                exchange(Method::PATCH, DEPLOYMENT, 200, owned),
            ],
        )
        .await;
        // The lists are narrowed to the Deployment's own selector.
        assert_eq!(seen[1].query("labelSelector"), Some("app%3Dx"));
        assert_eq!(seen[2].query("labelSelector"), Some("app%3Dx"));
        assert_eq!(
            seen[3].body,
            json!({"metadata": {"uid": UID},
                   "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: TOKEN}}}}})
        );
        assert_eq!(seen[3].query("fieldManager"), Some(FIELD_MANAGER));
        assert_eq!(report.actions.len(), 1, "{report:?}");
        assert_eq!(report.actions[0].action, Action::RolloutRestart);
    }
}
