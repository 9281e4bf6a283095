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

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::Selector;
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::apply::{MANAGED_BY_LABEL, TOOL};
use crate::health::judge::{Health, judge_helm_release, pod_name, pod_symptom};
use crate::health::signatures::match_signatures;
use crate::health::target::{helm_release_resource, selection};
use crate::health::{PodSelection, Target, TargetKind};
use crate::retry::{RetryError, RetryPolicy, list_selected, with_retry};

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

/// A restart that did not help within this long is not repeated: the kubelet's crash
/// back-off tops out at 5 minutes, so pods still crash-looping this soon after a fresh
/// start failed again on their own, and the cause is not a passing one.
pub const RESTART_COOLDOWN: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `requestedAt`: reconcile now.
    RequestReconcile,
    /// `requestedAt` and `resetAt`: reset the failure counters, then reconcile.
    ResetFailures,
    /// `kubectl.kubernetes.io/restartedAt` on the pod template: replace every pod.
    RolloutRestart,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::RequestReconcile => "requested-reconcile",
            Action::ResetFailures => "reset-failures",
            Action::RolloutRestart => "rollout-restart",
        }
    }
}

/// A change made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairAction {
    /// "Kind namespace/name".
    pub resource: String,
    pub action: Action,
    pub reason: String,
}

/// Something that looked wrong, or could not be looked at, and was left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub resource: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    pub actions: Vec<RepairAction>,
    pub skipped: Vec<Skipped>,
}

impl RepairReport {
    /// Nothing was changed.
    pub fn nothing_done(&self) -> bool {
        self.actions.is_empty()
    }

    fn skip(&mut self, resource: String, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            resource,
            reason: reason.into(),
        });
    }
}

/// What to do with a HelmRelease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseRepair {
    /// Ready: nothing.
    None,
    RequestReconcile {
        reason: String,
    },
    ResetFailures {
        reason: String,
    },
    /// Not ours, or suspended on purpose: hands off, its pods included.
    Skip {
        reason: String,
    },
}

fn is_ours(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .is_some_and(|v| v == TOOL)
}

/// Decides on a HelmRelease from the verdict `wait` would give it.
pub fn decide_release(hr: &DynamicObject) -> ReleaseRepair {
    if !is_ours(&hr.metadata) {
        return ReleaseRepair::Skip {
            reason: format!(
                "not managed by catalyst-bootstrap (no {MANAGED_BY_LABEL}={TOOL} label)"
            ),
        };
    }
    if hr.data["spec"]["suspend"].as_bool() == Some(true) {
        return ReleaseRepair::Skip {
            reason: "suspended on purpose: resume it with `flux resume helmrelease` first"
                .to_owned(),
        };
    }
    match judge_helm_release(hr) {
        Health::Ready => ReleaseRepair::None,
        // Stalled (retries exhausted, a missing rollback target, ...): only a reset of the
        // failure counters makes helm-controller try again.
        failed @ Health::Failed { .. } => ReleaseRepair::ResetFailures {
            reason: failed.describe(),
        },
        Health::Progressing { reason } => ReleaseRepair::RequestReconcile {
            reason: format!("not ready ({reason})"),
        },
    }
}

/// What to do with a Deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartDecision {
    /// No crash loop.
    None,
    Restart {
        reason: String,
    },
    /// Crash-looping, but a restart is not the remedy now.
    Skip {
        reason: String,
    },
}

fn controller_of<'a>(meta: &'a ObjectMeta, kind: &str) -> Option<&'a OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true) && o.kind == kind)
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

/// Decides whether a rollout restart is warranted for `d`, given ReplicaSets and pods that
/// include its own (others are ignored) and the current time.
///
/// A restart is warranted when, and only when, a pod of the Deployment's current template
/// is in CrashLoopBackOff after at least [`crate::health::judge::CRASH_LOOP_RESTARTS`]
/// restarts (the count at which `wait` fails it), and:
/// - the Deployment is not paused (kubectl refuses that too: nothing would roll out);
/// - its controller has seen its current generation, and the crash-looping pod runs the
///   current ReplicaSet's template. Pods of an older template are being replaced by a
///   rollout already; restarting would only start another;
/// - it was not restarted less than [`RESTART_COOLDOWN`] ago.
///
/// Why a restart helps a pod that crash-loops on the current template: the loop's cause
/// can be transient while the loop outlives it. On a fresh cluster external-dns exits
/// when its start-up cache sync misses its 60 s deadline on a saturated apiserver; once the
/// apiserver has settled, the kubelet still waits out an exponential back-off (up to 5
/// minutes) between attempts, and a restarted pod starts at once with none. When the
/// cause is permanent (bad credentials, a policy dropping egress) a restart does not help,
/// which is what the cool-down detects: the restarted pods crash-loop again, and the
/// next `repair` leaves them to the diagnosis of `wait` instead of restarting in a loop.
pub fn decide_restart(
    d: &Deployment,
    replica_sets: &[ReplicaSet],
    pods: &[Pod],
    now: Option<Timestamp>,
) -> RestartDecision {
    let uid = d.metadata.uid.as_deref();
    let owned: Vec<&ReplicaSet> = replica_sets
        .iter()
        .filter(|rs| controller_of(&rs.metadata, "Deployment").map(|o| o.uid.as_str()) == uid)
        .collect();
    let owned_names: BTreeSet<&str> = owned
        .iter()
        .filter_map(|rs| rs.metadata.name.as_deref())
        .collect();
    let crashing: Vec<(&Pod, crate::health::judge::Symptom)> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            controller_of(&p.metadata, "ReplicaSet")
                .is_some_and(|o| owned_names.contains(o.name.as_str()))
        })
        .filter_map(|p| pod_symptom(p).map(|s| (p, s)))
        .filter(|(_, s)| s.reason == "CrashLoopBackOff" && s.is_immediate())
        .collect();
    if crashing.is_empty() {
        return RestartDecision::None;
    }
    let skip = |reason: String| RestartDecision::Skip { reason };
    let spec = d.spec.as_ref();
    if spec.and_then(|s| s.paused) == Some(true) {
        return skip("its pods crash-loop, but it is paused: resume it first".to_owned());
    }
    let generation = d.metadata.generation.unwrap_or(0);
    let observed = d
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .unwrap_or(0);
    if observed < generation {
        return skip(format!(
            "its pods crash-loop, but a rollout is pending: the Deployment controller has not \
             seen generation {generation} yet"
        ));
    }
    let revision = annotation(&d.metadata, REVISION_ANNOTATION);
    let current_hash = owned
        .iter()
        .find(|rs| revision.is_some() && annotation(&rs.metadata, REVISION_ANNOTATION) == revision)
        .and_then(|rs| label(&rs.metadata, TEMPLATE_HASH_LABEL));
    let Some(current_hash) = current_hash else {
        return skip("its pods crash-loop, but its current ReplicaSet is not known yet".to_owned());
    };
    let Some((pod, symptom)) = crashing
        .iter()
        .find(|(p, _)| label(&p.metadata, TEMPLATE_HASH_LABEL) == Some(current_hash))
    else {
        return skip(format!(
            "{} crash-loops on an older template; the rollout in progress replaces it",
            pod_name(crashing[0].0)
        ));
    };
    let template = spec.and_then(|s| s.template.metadata.as_ref());
    if let Some(at) = template.and_then(|m| annotation(m, RESTARTED_AT))
        && let (Ok(at), Some(now)) = (at.parse::<Timestamp>(), now)
        && now.duration_since(at) < SignedDuration::from_secs(RESTART_COOLDOWN.as_secs() as i64)
    {
        return skip(format!(
            "{} crash-loops again after the restart at {at}, less than {}m ago: the cause is \
             not a passing one (see the diagnosis of `wait`)",
            pod_name(pod),
            RESTART_COOLDOWN.as_secs() / 60
        ));
    }
    let mut reason = format!(
        "{} is in CrashLoopBackOff after {} restarts on the current template",
        pod_name(pod),
        symptom.restarts
    );
    if let Some(cause) = match_signatures(symptom.last_message.as_deref()).first() {
        reason.push_str(&format!(" (known cause: {})", cause.id));
    }
    RestartDecision::Restart { reason }
}

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
    let mut report = RepairReport::default();
    for target in targets {
        match target.kind {
            TargetKind::HelmRelease => {
                repair_release(client, target, policy, &now, &mut report).await?
            }
            TargetKind::Deployment => {
                repair_deployment_target(client, target, policy, &now, &mut report).await?
            }
        }
    }
    Ok(report)
}

async fn repair_release(
    client: &Client,
    target: &Target,
    policy: &RetryPolicy,
    now: &impl Fn() -> String,
    report: &mut RepairReport,
) -> Result<(), RetryError> {
    let resource = target.resource();
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &target.namespace, &helm_release_resource());
    let what = format!("get {resource}");
    let Some(hr) = with_retry(policy, &what, || api.get_opt(&target.name)).await? else {
        report.skip(resource, "not created: run `apply` first");
        return Ok(());
    };
    let uid = hr.metadata.uid.as_deref();
    let (action, reason, patch) = match decide_release(&hr) {
        ReleaseRepair::Skip { reason } => {
            report.skip(resource, reason);
            return Ok(());
        }
        ReleaseRepair::None => (None, String::new(), Value::Null),
        ReleaseRepair::RequestReconcile { reason } => (
            Some(Action::RequestReconcile),
            reason,
            json!({"metadata": {"uid": uid, "annotations": { REQUESTED_AT: now() }}}),
        ),
        ReleaseRepair::ResetFailures { reason } => (
            Some(Action::ResetFailures),
            reason,
            reset_patch(uid, &now()),
        ),
    };
    if let Some(action) = action {
        merge_patch(&api, &target.name, &resource, patch, policy).await?;
        report.actions.push(RepairAction {
            resource: resource.clone(),
            action,
            reason,
        });
    }
    if let PodSelection::Labels { namespace, labels } = &target.pods
        && let (Some(release), Some(selector)) =
            (labels.get(INSTANCE_LABEL), selection(&target.pods))
    {
        restart_release_deployments(client, namespace, &selector, release, policy, now, report)
            .await?;
    }
    Ok(())
}

/// Finds the Deployments behind the release's pods (pod → ReplicaSet → Deployment) and
/// restarts those Helm created for `release` when [`decide_restart`] says so.
async fn restart_release_deployments(
    client: &Client,
    namespace: &str,
    selector: &Selector,
    release: &str,
    policy: &RetryPolicy,
    now: &impl Fn() -> String,
    report: &mut RepairReport,
) -> Result<(), RetryError> {
    let pods = list_selected::<Pod>(client, namespace, selector, policy).await?;
    let pod_owners: BTreeSet<&str> = pods
        .iter()
        .filter_map(|p| controller_of(&p.metadata, "ReplicaSet"))
        .map(|o| o.name.as_str())
        .collect();
    if pod_owners.is_empty() {
        return Ok(());
    }
    let replica_sets = list_selected::<ReplicaSet>(client, namespace, selector, policy).await?;
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
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    for name in deployments {
        let resource = format!("Deployment {namespace}/{name}");
        let what = format!("get {resource}");
        let Some(d) = with_retry(policy, &what, || api.get_opt(name)).await? else {
            continue;
        };
        let helm_release = annotation(&d.metadata, HELM_RELEASE_NAME);
        let helm_namespace = annotation(&d.metadata, HELM_RELEASE_NAMESPACE);
        if helm_release != Some(release) || helm_namespace != Some(namespace) {
            // Not knowing the cause, stay quiet unless it would have been restarted.
            if let RestartDecision::Restart { .. } = decide_restart(&d, &replica_sets, &pods, None)
            {
                report.skip(
                    resource,
                    format!(
                        "its pods crash-loop, but Helm did not create it for release \
                         {namespace}/{release} ({HELM_RELEASE_NAME}, {HELM_RELEASE_NAMESPACE})"
                    ),
                );
            }
            continue;
        }
        restart_if_warranted(client, &d, resource, policy, now, report).await?;
    }
    Ok(())
}

/// A Deployment target is repaired only when `apply` created it.
async fn repair_deployment_target(
    client: &Client,
    target: &Target,
    policy: &RetryPolicy,
    now: &impl Fn() -> String,
    report: &mut RepairReport,
) -> Result<(), RetryError> {
    let resource = target.resource();
    let api: Api<Deployment> = Api::namespaced(client.clone(), &target.namespace);
    let what = format!("get {resource}");
    let Some(d) = with_retry(policy, &what, || api.get_opt(&target.name)).await? else {
        report.skip(resource, "not created: run `apply` first");
        return Ok(());
    };
    if !is_ours(&d.metadata) {
        report.skip(
            resource,
            format!("not managed by catalyst-bootstrap (no {MANAGED_BY_LABEL}={TOOL} label)"),
        );
        return Ok(());
    }
    restart_if_warranted(client, &d, resource, policy, now, report).await
}

async fn restart_if_warranted(
    client: &Client,
    d: &Deployment,
    resource: String,
    policy: &RetryPolicy,
    now: &impl Fn() -> String,
    report: &mut RepairReport,
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
    let replica_sets = list_selected::<ReplicaSet>(client, namespace, &selector, policy).await?;
    let pods = list_selected::<Pod>(client, namespace, &selector, policy).await?;
    let stamp = now();
    match decide_restart(d, &replica_sets, &pods, stamp.parse().ok()) {
        RestartDecision::None => {}
        RestartDecision::Skip { reason } => report.skip(resource, reason),
        RestartDecision::Restart { reason } => {
            let patch = json!({
                "metadata": {"uid": d.metadata.uid},
                "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}},
            });
            let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
            merge_patch(&api, name, &resource, patch, policy).await?;
            report.actions.push(RepairAction {
                resource,
                action: Action::RolloutRestart,
                reason,
            });
        }
    }
    Ok(())
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
    use super::*;
    use serde_json::json;

    fn hr(labels: Value, spec: Value, status: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "helm.toolkit.fluxcd.io/v2",
            "kind": "HelmRelease",
            "metadata": {"name": "external-dns", "namespace": "ns", "generation": 2,
                         "labels": labels},
            "spec": spec,
            "status": status,
        }))
        .unwrap()
    }

    fn ours() -> Value {
        json!({MANAGED_BY_LABEL: TOOL})
    }

    fn ready(status: &str, reason: &str, observed: i64) -> Value {
        json!({"type": "Ready", "status": status, "reason": reason, "message": "m",
               "observedGeneration": observed, "lastTransitionTime": "2026-01-01T00:00:00Z"})
    }

    #[test]
    fn releases_are_reset_when_stalled_and_nudged_when_not_ready() {
        let stalled = json!({"conditions": [ready("False", "RetriesExceeded", 2),
            {"type": "Stalled", "status": "True", "reason": "RetriesExceeded", "message": "x",
             "observedGeneration": 2, "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
        assert!(matches!(
            decide_release(&hr(ours(), json!({}), stalled)),
            ReleaseRepair::ResetFailures { reason } if reason.starts_with("RetriesExceeded")
        ));
        // Failures beyond the remediation retries count as exhausted even without Stalled.
        let exhausted = json!({"lastAttemptedReleaseAction": "install", "installFailures": 1,
                               "conditions": [ready("False", "InstallFailed", 2)]});
        assert!(matches!(
            decide_release(&hr(ours(), json!({}), exhausted)),
            ReleaseRepair::ResetFailures { .. }
        ));
        for status in [
            json!(null),
            json!({"conditions": [ready("True", "UpgradeSucceeded", 1)]}),
            json!({"conditions": [ready("Unknown", "Progressing", 2)]}),
        ] {
            assert!(
                matches!(
                    decide_release(&hr(ours(), json!({}), status.clone())),
                    ReleaseRepair::RequestReconcile { .. }
                ),
                "{status}"
            );
        }
        let healthy = json!({"conditions": [ready("True", "UpgradeSucceeded", 2)]});
        assert_eq!(
            decide_release(&hr(ours(), json!({}), healthy)),
            ReleaseRepair::None
        );
    }

    #[test]
    fn foreign_or_suspended_releases_are_left_alone() {
        let stalled = json!({"conditions": [ready("False", "RetriesExceeded", 2)]});
        for labels in [
            json!(null),
            json!({MANAGED_BY_LABEL: "Helm"}),
            json!({"app": "x"}),
        ] {
            assert!(
                matches!(
                    decide_release(&hr(labels.clone(), json!({}), stalled.clone())),
                    ReleaseRepair::Skip { reason } if reason.contains("not managed by")
                ),
                "{labels}"
            );
        }
        assert!(matches!(
            decide_release(&hr(ours(), json!({"suspend": true}), stalled)),
            ReleaseRepair::Skip { reason } if reason.contains("suspended")
        ));
    }

    const UID: &str = "d-uid";

    fn deployment(paused: bool, observed: i64, restarted_at: Option<&str>) -> Deployment {
        let annotations = restarted_at.map_or(json!({}), |at| json!({RESTARTED_AT: at}));
        serde_json::from_value(json!({
            "metadata": {"name": "external-dns", "namespace": "ns", "uid": UID, "generation": 2,
                         "annotations": {REVISION_ANNOTATION: "2"}},
            "spec": {"paused": paused, "selector": {"matchLabels": {"app": "x"}},
                     "template": {"metadata": {"labels": {"app": "x"}, "annotations": annotations},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": {"observedGeneration": observed},
        }))
        .unwrap()
    }

    fn owner(kind: &str, name: &str, uid: &str) -> Value {
        json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid,
                "controller": true}])
    }

    fn replica_set(hash: &str, revision: &str, owner_uid: &str) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": format!("external-dns-{hash}"), "namespace": "ns",
                         "labels": {"app": "x", TEMPLATE_HASH_LABEL: hash},
                         "annotations": {REVISION_ANNOTATION: revision},
                         "ownerReferences": owner("Deployment", "external-dns", owner_uid)},
        }))
        .unwrap()
    }

    fn pod(name: &str, hash: &str, restarts: i32) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns",
                         "labels": {"app": "x", TEMPLATE_HASH_LABEL: hash},
                         "ownerReferences": owner("ReplicaSet", &format!("external-dns-{hash}"), "rs")},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "containerStatuses": [{
                "name": "c", "image": "i", "imageID": "", "ready": false,
                "restartCount": restarts,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                    "message": "failed to sync *v1.Node: context deadline exceeded"}}}]},
        }))
        .unwrap()
    }

    fn sets() -> Vec<ReplicaSet> {
        vec![replica_set("old", "1", UID), replica_set("cur", "2", UID)]
    }

    fn now() -> Option<Timestamp> {
        "2026-03-01T12:00:00Z".parse().ok()
    }

    fn skip_reason(d: RestartDecision) -> String {
        match d {
            RestartDecision::Skip { reason } => reason,
            other => panic!("expected Skip, got {other:?}"),
        }
    }

    #[test]
    fn a_crash_loop_on_the_current_template_is_restarted() {
        let d = deployment(false, 2, None);
        let decision = decide_restart(&d, &sets(), &[pod("p1", "cur", 4)], now());
        assert_eq!(
            decision,
            RestartDecision::Restart {
                reason: "ns/p1 is in CrashLoopBackOff after 4 restarts on the current template \
                         (known cause: apiserver-cache-sync)"
                    .to_owned()
            }
        );
        // An earlier restart beyond the cool-down, or one we cannot read, does not hold it up.
        for at in ["2026-03-01T11:50:00Z", "yesterday"] {
            let d = deployment(false, 2, Some(at));
            assert!(matches!(
                decide_restart(&d, &sets(), &[pod("p1", "cur", 4)], now()),
                RestartDecision::Restart { .. }
            ));
        }
    }

    #[test]
    fn no_restart_without_a_settled_crash_loop_of_its_own() {
        let d = deployment(false, 2, None);
        // Too few restarts yet: `wait` would not fail it either.
        assert_eq!(
            decide_restart(&d, &sets(), &[pod("p1", "cur", 2)], now()),
            RestartDecision::None
        );
        // Pods of another Deployment's ReplicaSet do not count.
        let foreign = vec![replica_set("cur", "2", "other-uid")];
        assert_eq!(
            decide_restart(&d, &foreign, &[pod("p1", "cur", 9)], now()),
            RestartDecision::None
        );
        assert_eq!(
            decide_restart(&d, &sets(), &[], now()),
            RestartDecision::None
        );
    }

    #[test]
    fn a_restart_is_not_the_remedy_for_every_crash_loop() {
        let crashing = [pod("p1", "cur", 4)];
        let old = [pod("p0", "old", 7)];
        let unknown_set = [replica_set("cur", "1", UID)];
        let known = sets();
        let cases = [
            (
                deployment(true, 2, None),
                &known[..],
                &crashing[..],
                "paused",
            ),
            (
                deployment(false, 1, None),
                &known,
                &crashing,
                "rollout is pending",
            ),
            (deployment(false, 2, None), &known, &old, "older template"),
            (
                deployment(false, 2, None),
                &unknown_set,
                &crashing,
                "current ReplicaSet is not known",
            ),
            (
                deployment(false, 2, Some("2026-03-01T11:58:00Z")),
                &known,
                &crashing,
                "crash-loops again after the restart",
            ),
        ];
        for (deployment, sets, pods, why) in cases {
            let reason = skip_reason(decide_restart(&deployment, sets, pods, now()));
            assert!(reason.contains(why), "{why}: {reason}");
        }
    }
}
