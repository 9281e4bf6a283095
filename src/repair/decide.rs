//! What `repair` decides from the objects it read: pure functions, so each rule is a unit
//! test.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::DynamicObject;

use super::{RESTARTED_AT, REVISION_ANNOTATION, TEMPLATE_HASH_LABEL};
use crate::apply::{MANAGED_BY_LABEL, TOOL};
use crate::health::judge::{Health, judge_helm_release, pod_name, pod_symptom};
use crate::health::signatures::match_signatures;

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

    pub(crate) fn skip(&mut self, resource: String, reason: impl Into<String>) {
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

pub(super) fn is_ours(meta: &ObjectMeta) -> bool {
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

pub(super) fn controller_of<'a>(meta: &'a ObjectMeta, kind: &str) -> Option<&'a OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true) && o.kind == kind)
}

pub(super) fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::{Value, json};

    pub(crate) fn hr(labels: Value, spec: Value, status: Value) -> DynamicObject {
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

    pub(crate) fn ours() -> Value {
        json!({MANAGED_BY_LABEL: TOOL})
    }

    /// The status of a release whose retries are exhausted: Ready False and Stalled.
    pub(crate) fn stalled() -> Value {
        json!({"conditions": [ready("False", "RetriesExceeded", 2),
            {"type": "Stalled", "status": "True", "reason": "RetriesExceeded", "message": "x",
             "observedGeneration": 2, "lastTransitionTime": "2026-01-01T00:00:00Z"}]})
    }

    pub(crate) fn ready(status: &str, reason: &str, observed: i64) -> Value {
        json!({"type": "Ready", "status": status, "reason": reason, "message": "m",
               "observedGeneration": observed, "lastTransitionTime": "2026-01-01T00:00:00Z"})
    }

    #[test]
    fn releases_are_reset_when_stalled_and_nudged_when_not_ready() {
        assert!(matches!(
            decide_release(&hr(ours(), json!({}), stalled())),
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

    pub(crate) const UID: &str = "d-uid";

    pub(crate) fn deployment(
        paused: bool,
        observed: i64,
        restarted_at: Option<&str>,
    ) -> Deployment {
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

    pub(crate) fn pod(name: &str, hash: &str, restarts: i32) -> Pod {
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

    pub(crate) fn sets() -> Vec<ReplicaSet> {
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
